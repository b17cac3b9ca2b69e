/* elementwise.c (AVX2): the float dsedge.Elementwise program kernel (kernels/ref/elementwise.c)
 * compiled for AVX2: the same block loop (src/ew_program.h, part 2), whose loops the compiler
 * vectorises eight lanes wide instead of four; the same IEEE operations in the same order (no
 * contraction: -ffp-contract=off), so REF's bytes, float and int8 outputs alike. */
#include "isa.h"

#if DSE_ARCH_X86_64
#include "ew_program.h"

#include "quantize_avx2.h"

/* int8 output: QuantizeLinear of a block, 32 lanes at a time (quantize_avx2.h: REF's bits) */
DSE_TARGET_AVX2 static inline void ew_quantize_avx2(const float *r, int8_t *y, float s, int zp) {
    const __m256 vs = _mm256_set1_ps(s);
    const __m256i vz = _mm256_set1_epi32(zp), lo = _mm256_set1_epi32(-128), hi = _mm256_set1_epi32(127);
    for (int j = 0; j < EW_BLOCK; j += 32) avx2_q32(r + j, y + j, vs, vz, lo, hi, 0);
}

#define EW_FN(name) name##_avx2
#define EW_TARGET DSE_TARGET_AVX2
#define EW_QUANTIZE ew_quantize_avx2
#include "ew_program.h"

void dse_f32_elementwise__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    ew_prog p;
    dse__ew_bind(m, n, arena, 0, &p);
    dse__parallel(cx, (p.numel + EW_BLOCK - 1) / EW_BLOCK, 128, ew_blocks_avx2, &p);
}

void dse_i8_elementwise__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    ew_prog p;
    dse__ew_bind(m, n, arena, 1, &p);
    dse__parallel(cx, (p.numel + EW_BLOCK - 1) / EW_BLOCK, 128, ew_blocks_avx2, &p);
}

#endif
