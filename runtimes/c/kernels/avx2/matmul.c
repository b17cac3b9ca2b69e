/* matmul.c (AVX2): float32 MatMul (numpy semantics as kernels/ref/matmul.c: batched with
 * broadcasting, 1-D operands), B float32 (a constant or an activation: attention's products
 * too). Each batch's [M, K] x [K, N] by the SGEMM of sgemm.c (the broadcast kernel; the
 * dot-product kernel when N = 1), the sum over k by FMA, then the clamp. Float16 B is left to
 * REF (dse__check_matmul_f32_opt, kernels/ref/matmul.c). Setup and threads: dse__matmul_f32_sgemm,
 * dse_f32_sgemm_batched (the (batch, block of rows or columns) parts of every batch; src/internal.h). */
#include "avx2_f32.h"

#if DSE_AVX2_F32

void dse_f32_matmul__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    dse_mm_geom g;
    dse_sgemm s;
    dse__matmul_f32_sgemm(m, n, arena, &g, &s);
    const int dot = g.N == 1, pack = !dot && n->scratch && n->scratch >= 4 * dse__sgemm_pack_floats(g.K);
    dse_f32_sgemm_batched(cx, &g, &s, dot ? dse__avx2_sgemm_dot : dse__avx2_sgemm, pack, dot ? 3 : 6, dot ? 8 : 16);
}

#endif
