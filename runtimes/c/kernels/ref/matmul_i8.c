/* matmul_i8.c: int8 MatMul with a constant 2-D right operand w (K x N) and any leading batch
 * axes on x (..., K), bit-exact with intref.matmul_int8: every row of x goes through the
 * Gemm core (gemm_i8.c, transB 0); per-column M/shift (the last output axis). The third
 * input is the int32 bias[N] (a fused following Add; zeros when there was none).
 */
#include "requant.h"

int dse__check_i8_matmul(const dse_model *m, const dse_node *n, dse_why *why) { return dse_i8_matmul_check(m, n, why); }

int dse_matmul_shapes(const dse_model *m, const dse_node *n, size_t *K_, size_t *N_, dse_why *why) {
    const dse_tensor *x = n->n_in == 3 ? dse__t(m, n->in[0]) : NULL, *w = n->n_in == 3 ? dse__t(m, n->in[1]) : NULL;
    const dse_tensor *y = n->n_out == 1 ? dse__t(m, n->out[0]) : NULL;
    if (!x || !w || !y || x->rank < 1 || w->rank != 2 || y->rank != (x->rank > 1 ? x->rank : 1)) {
        DSE_WHY(why, MATMUL_I8_INT8_MATMUL_NEEDS_X);
        return 1;
    }
    size_t K = w->dims[0], N = w->dims[1];
    int bad = x->dims[x->rank - 1] != K || y->dims[y->rank - 1] != N;
    for (unsigned d = 0; d + 1 < x->rank; d++) bad |= y->dims[d] != x->dims[d];
    if (x->rank == 1) bad |= y->dims[0] != N;
    if (bad) { DSE_WHYF(why, MATMUL_I8_SHAPES_DO_NOT_AGREE, NULL, x->dims[x->rank - 1], K, N, 0); return 1; }
    *K_ = K, *N_ = N;
    return 0;
}

int dse_i8_matmul_check(const dse_model *m, const dse_node *n, dse_why *why) {
    size_t K, N;
    if (dse_matmul_shapes(m, n, &K, &N, why)) return 1;
    const dse_tensor *w = dse__t(m, n->in[1]), *y = dse__t(m, n->out[0]);
    if (dse_i8_weighted_operands(m, n, N, K, why)) return 1;
    if (dse_i8_weight_layout_ok(w, DSE_LAYOUT_N8K4_T, why)) return 1;
    dse_i8_out o;
    if (dse_i8_out_params(m, n, N, &o, why)) return 1;
    why->scratch_plan = dse_i8_gemm_scratch_plan(K, N ? y->numel / N : 0);   /* the optimised variants' */
    return 0;
}

void dse_i8_matmul__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    const dse_tensor *w = &m->tensors[n->in[1]], *y = &m->tensors[n->out[0]];
    size_t K = w->dims[0], N = w->dims[1];
    dse_i8_out o;
    dse_why why;
    dse_i8_out_params(m, n, N, &o, &why);
    dse_i8_gemm_rows(cx, dse__data(m, arena, n->in[0]), N ? y->numel / N : 0, K, dse__data(m, arena, n->in[1]), w->layout, N,
                     0, dse__data(m, arena, n->in[2]), &o, dse__data(m, arena, n->out[0]));
}

int dse_i8_ref_check_matmul(const dse_model *m, const dse_node *n, dse_why *why) { return dse__check_i8_matmul(m, n, why); }
