/* expand.c: Expand for any dtype (constant int64 shape; numpy broadcasting both ways).
 *
 * The output shape is broadcast(input shape, shape) — `check` recomputes it and compares
 * with the tensor table. The input is aligned to the output's trailing axes; an input axis
 * of size 1 (or a missing leading axis) gets element stride 0, so the output is one strided
 * walk of the input (dse__mv_copy_strided), merging broadcast runs where possible. */
#include "internal.h"

int dse__check_expand(const dse_model *m, const dse_node *n, dse_why *why) {
    if (n->n_in != 2 || n->n_out != 1 || dse__mv_check_io(m, n, why)) {
        if (!why->id) DSE_WHY(why, EXPAND_NEEDS_DATA_SHAPE_ONE);
        return 1;
    }
    const dse_tensor *x = &m->tensors[n->in[0]], *y = &m->tensors[n->out[0]];
    int64_t s[DSE_MAX_RANK];
    long k = dse__mv_const_ints(m, n->in[1], s, DSE_MAX_RANK);
    if (k < 0 || k > DSE_MAX_RANK) { DSE_WHY(why, EXPAND_SHAPE_CONSTANT_INT64_TENSOR); return 1; }
    unsigned r = (unsigned)k > x->rank ? (unsigned)k : x->rank;
    if (y->rank != r) { DSE_WHYF(why, EXPAND_OUTPUT_RANK_BROADCAST_GIVES, NULL, y->rank, r, 0, 0); return 1; }
    for (unsigned d = 0; d < r; d++) {
        int xd = (int)d - (int)(r - x->rank), sd = (int)d - (int)(r - (unsigned)k);
        int64_t a = xd >= 0 ? (int64_t)x->dims[xd] : 1, b = sd >= 0 ? s[sd] : 1, want;
        if (a == b || b == 1) want = a;
        else if (a == 1 && b >= 0) want = b;
        else { DSE_WHYF(why, EXPAND_INPUT_DIM_DOES_NOT, NULL, a, b, 0, 0); return 1; }
        if ((int64_t)y->dims[d] != want) { DSE_WHYF(why, EXPAND_OUTPUT_DIM_BROADCAST_GIVES, NULL, d, y->dims[d], want, 0); return 1; }
    }
    return 0;
}

void dse_any_expand__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    const dse_tensor *x = &m->tensors[n->in[0]], *y = &m->tensors[n->out[0]];
    int64_t xs[DSE_MAX_RANK], stride[DSE_MAX_RANK];
    dse__mv_row_strides(x, xs);
    for (unsigned d = 0; d < y->rank; d++) {
        int xd = (int)d - (int)(y->rank - x->rank);
        stride[d] = xd >= 0 && x->dims[xd] != 1 ? xs[xd] : 0;
    }
    dse__mv_copy_strided(dse__data(m, arena, n->out[0]), dse__data(m, arena, n->in[0]), dse__mv_esize(x->dtype),
                         y->rank, y->dims, stride);
}
