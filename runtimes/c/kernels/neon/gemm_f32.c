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
 * (dse__gemm_f32_sgemm, dse__matmul_f32_sgemm, dse_f32_sgemm_batched: src/internal.h): the
 * (batch, block of rows or columns) parts of every batch; with packing, whole packing chunks of
 * columns (each part packs its own). */
#include "neon_f32.h"

#if DSE_NEON_F32

void dse_f32_gemm__neon(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    dse_mm_geom g;
    dse_sgemm s;
    memset(&g, 0, sizeof g);   /* one batch */
    dse__gemm_f32_sgemm(m, n, arena, &s, &g.M, &g.N);
    g.K = s.K;
    const int dot = dse__attr_int(n, DSE_A_transB, 0) != 0, pack = !dot && n->scratch && n->scratch >= 4 * dse__sgemm_pack_floats(g.K);
    dse_f32_sgemm_batched(cx, &g, &s, dot ? dse__neon_sgemm_dot : dse__neon_sgemm, pack, dot ? 2 : 8, dot ? 4 : 8);
}

void dse_f32_matmul__neon(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    dse_mm_geom g;
    dse_sgemm s;
    dse__matmul_f32_sgemm(m, n, arena, &g, &s);
    const int dot = g.N == 1, pack = !dot && n->scratch && n->scratch >= 4 * dse__sgemm_pack_floats(g.K);
    dse_f32_sgemm_batched(cx, &g, &s, dot ? dse__neon_sgemm_dot : dse__neon_sgemm, pack, dot ? 2 : 8, dot ? 4 : 8);
}

#endif
