/* gemm_f32.c (NEON): float32 Gemm and MatMul on arm64 with the SGEMM of sgemm.c.
 *
 * Gemm: Y = alpha * op(A) @ op(B) + beta * C, clamp (kernels/ref/gemm.c). transB = 0 (any
 * transA: A read with its strides) by the broadcast tile, transB = 1 (transA = 0) by the
 * dot-product tile; C of rank 0, 1 or 2 broadcast as REF. Per element REF's order: the sum over
 * k (FMA chains, src/neon_f32.h), * alpha when alpha != 1, + C or C * beta when C is present and
 * beta != 0, the clamp. Float16 B or C and transA with transB are left to REF
 * (dse__check_gemm_f32_opt, kernels/ref/gemm.c, shared with the AVX2 variant).
 * MatMul: numpy semantics as kernels/ref/matmul.c (batched with broadcasting, 1-D operands), B
 * float32 (a constant or an activation); each batch's [M, K] x [K, N] by the broadcast tile
 * (the dot-product tile when N = 1: the column is k-contiguous), then the clamp. Float16 B: REF
 * (dse__check_matmul_f32_opt, kernels/ref/matmul.c).
 * Scratch: the packing buffer the plan gives Gemm with transB = 0 and MatMul with N > 1
 * (4 * dse__sgemm_pack_floats(K), as the AVX2 variant: the same plan), used when the region is
 * free at the node, else B is read in place. Setup and threads as the AVX2 variants'
 * (dse__gemm_f32_opt_run, dse__matmul_f32_opt_run, dse_f32_sgemm_batched: src/internal.h): the
 * (batch, block of rows or columns) parts of every batch; with packing, whole packing chunks of
 * columns (each part packs its own). */
#include "neon_f32.h"

#if DSE_NEON_F32

/* the 8 x 8 broadcast tile and the 2 x 4 dot-product tile of sgemm.c */
#define NEON_GF_ISA {dse__neon_sgemm, dse__neon_sgemm_dot, 8, 8, 2, 4}

void dse_f32_gemm__neon(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    const dse_sgemm_isa isa = NEON_GF_ISA;
    dse__gemm_f32_opt_run(m, n, arena, cx, &isa);
}

void dse_f32_matmul__neon(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    const dse_sgemm_isa isa = NEON_GF_ISA;
    dse__matmul_f32_opt_run(m, n, arena, cx, &isa);
}

#undef NEON_GF_ISA
#endif
