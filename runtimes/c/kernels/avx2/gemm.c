/* gemm.c (AVX2): float32 Gemm, Y = alpha * op(A) @ op(B) + beta * C, clamp, with the SGEMM of
 * sgemm.c: transB = 0 by the broadcast kernel (any transA), transB = 1 by the dot-product
 * kernel (transA = 0). Per element the REF order of kernels/ref/gemm.c: the sum over k
 * (FMA), * alpha, + C or C * beta, the clamp. Float16 B or C, and transA with transB, are
 * left to REF (dse__check_gemm_f32_opt, kernels/ref/gemm.c). Setup and threads: dse__gemm_f32_opt_run,
 * dse_f32_sgemm_batched (blocks of rows, or of columns when there are few rows; src/internal.h). */
#include "avx2_f32.h"

#if DSE_AVX2_F32

void dse_f32_gemm__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    const dse_sgemm_isa isa = {dse__avx2_sgemm, dse__avx2_sgemm_dot, 6, 16, 3, 8};
    dse__gemm_f32_opt_run(m, n, arena, cx, &isa);
}

#endif
