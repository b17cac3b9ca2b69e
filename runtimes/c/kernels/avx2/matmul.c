/* matmul.c (AVX2): float32 MatMul (numpy semantics as kernels/ref/matmul.c: batched with
 * broadcasting, 1-D operands), B float32 (a constant or an activation: attention's products
 * too). Each batch's [M, K] x [K, N] by the SGEMM of sgemm.c (the broadcast kernel; the
 * dot-product kernel when N = 1), the sum over k by FMA, then the clamp. Float16 B is left to
 * REF (dse__check_matmul_f32_opt, kernels/ref/matmul.c). Setup and threads: dse__matmul_f32_opt_run,
 * dse_f32_sgemm_batched (the (batch, block of rows or columns) parts of every batch; src/internal.h). */
#include "avx2_f32.h"

#if DSE_AVX2_F32

void dse_f32_matmul__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    const dse_sgemm_isa isa = {dse__avx2_sgemm, dse__avx2_sgemm_dot, 6, 16, 3, 8};
    dse__matmul_f32_opt_run(m, n, arena, cx, &isa);
}

#endif
