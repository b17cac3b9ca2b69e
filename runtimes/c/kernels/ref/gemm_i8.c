/* gemm_i8.c: int8 Gemm (transA 0, transB 0/1), bit-exact with intref.gemm_int8; its
 * row-times-matrix core, shared with int8 MatMul, is dse_i8_gemm_rows (kernels/ref/loops.c).
 *
 * acc[r, j] = bias[j] + sum_k (x[r, k] - zp_in) * w(k, j): the same integer as the
 * reference's sum x*w + (bias - zp_in * sum w) (docs/quant-arith.md §4); int32 sum (the
 * check bounds K * 255 * 127 < 2^31), bias added in int64, then the per-column (output
 * channel = last axis) requantisation, or float_out. alpha and beta were folded into the
 * scales by the quantiser; the int8 node carries them for information only.
 *
 * Loops: transB = 1 (w is N x K) is a dot product of two contiguous rows per output;
 * transB = 0 (w is K x N) accumulates a stack tile of TILE output columns, walking each
 * weight row contiguously. No scratch memory.
 */
#include "requant.h"

int dse__check_i8_gemm(const dse_model *m, const dse_node *n, dse_why *why) { return dse_i8_gemm_check(m, n, why); }

int dse_gemm_shapes(const dse_model *m, const dse_node *n, size_t *K_, size_t *N_, dse_why *why) {
    const dse_tensor *x = n->n_in == 3 ? dse__t(m, n->in[0]) : NULL, *w = n->n_in == 3 ? dse__t(m, n->in[1]) : NULL;
    const dse_tensor *y = n->n_out == 1 ? dse__t(m, n->out[0]) : NULL;
    int64_t ta = dse__attr_int(n, DSE_A_transA, 0), tb = dse__attr_int(n, DSE_A_transB, 0);
    if (!x || !w || !y || x->rank != 2 || w->rank != 2 || y->rank != 2 || ta != 0 || (tb != 0 && tb != 1)) {
        DSE_WHY(why, GEMM_I8_INT8_GEMM_NEEDS_2);
        return 1;
    }
    size_t K = x->dims[1], N = tb ? w->dims[0] : w->dims[1];
    if ((tb ? w->dims[1] : w->dims[0]) != K || y->dims[0] != x->dims[0] || y->dims[1] != N) {
        DSE_WHYF(why, GEMM_I8_SHAPES_DO_NOT_AGREE, NULL, x->dims[0], x->dims[1], w->dims[0], w->dims[1]);
        return 1;
    }
    *K_ = K, *N_ = N;
    return 0;
}

int dse_i8_gemm_check(const dse_model *m, const dse_node *n, dse_why *why) {
    size_t K, N;
    if (dse_gemm_shapes(m, n, &K, &N, why)) return 1;
    const dse_tensor *x = dse__t(m, n->in[0]), *w = dse__t(m, n->in[1]);
    int64_t tb = dse__attr_int(n, DSE_A_transB, 0);
    if (dse_i8_weighted_operands(m, n, N, K, why)) return 1;
    if (dse_i8_weight_layout_ok(w, tb ? DSE_LAYOUT_N8K4 : DSE_LAYOUT_N8K4_T, why)) return 1;
    dse_i8_out o;
    if (dse_i8_out_params(m, n, N, &o, why)) return 1;
    why->scratch_plan = dse_i8_gemm_scratch_plan(K, x->dims[0]);   /* the optimised variants' */
    return 0;
}

void dse_i8_gemm__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    const dse_tensor *x = &m->tensors[n->in[0]], *y = &m->tensors[n->out[0]];
    dse_i8_out o;
    dse_why why;
    dse_i8_out_params(m, n, y->dims[1], &o, &why);
    dse_i8_gemm_rows(cx, dse__data(m, arena, n->in[0]), x->dims[0], x->dims[1], dse__data(m, arena, n->in[1]),
                     m->tensors[n->in[1]].layout, y->dims[1], (int)dse__attr_int(n, DSE_A_transB, 0),
                     dse__data(m, arena, n->in[2]), &o, dse__data(m, arena, n->out[0]));
}

int dse_i8_ref_check_gemm(const dse_model *m, const dse_node *n, dse_why *why) { return dse__check_i8_gemm(m, n, why); }
