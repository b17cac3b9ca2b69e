/* elementwise.c (NEON, arm64): the float dsedge.Elementwise program kernel (kernels/ref/elementwise.c)
 * compiled as an arm64 variant: the same block loop (src/ew_program.h, part 2) and the same IEEE
 * operations in the same order (no contraction: -ffp-contract=off), so REF's bytes (also in a
 * -DDSE_REF_FLOAT build). NEON is baseline on arm64, so in the per-file builds this is REF's own
 * code; bundles compile it in their -O2 unit, where the compiler vectorises the block loops, while
 * REF's copy is in the -Os unit (runtimes/c/README.md, "Bundle build"). */
#include "isa.h"

#if DSE_ARCH_ARM64
#include "ew_program.h"

#define EW_FN(name) name##_neon
#define EW_TARGET DSE_TARGET_NEON
#include "ew_program.h"

void dse_f32_elementwise__neon(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    ew_prog p;
    dse__ew_bind(m, n, arena, 0, &p);
    dse__parallel(cx, (p.numel + EW_BLOCK - 1) / EW_BLOCK, 128, ew_blocks_neon, &p);
}

#endif
