/* transpose.c: Transpose for any dtype and any permutation up to rank 8.
 *
 * Output axis d walks input axis perm[d], so the output is one strided walk of the input
 * (dse__mv_copy_strided) with stride[d] = input row-major stride of axis perm[d]. Axes that
 * stay adjacent and in order after the permutation merge into one longer contiguous run. */
#include "internal.h"

/* perm from the attribute (absent: reversed axes, as ONNX); 0 when it is a permutation of
 * rank axes that maps the input's dims onto the output's. */
int dse__transpose_perm(const dse_model *m, const dse_node *n, int64_t *perm) {
    const dse_tensor *x = &m->tensors[n->in[0]], *y = &m->tensors[n->out[0]];
    int np_ = dse__attr_ints(n, DSE_A_perm, perm, DSE_MAX_RANK);
    if (np_ < 0) {
        if (dse__attr(n, DSE_A_perm, DSE_ATTR_INTS) || x->rank > DSE_MAX_RANK) return 1;
        for (unsigned d = 0; d < x->rank; d++) perm[d] = (int64_t)x->rank - 1 - d;
        np_ = (int)x->rank;
    }
    if ((unsigned)np_ != x->rank || y->rank != x->rank) return 1;
    unsigned seen = 0;
    for (unsigned d = 0; d < x->rank; d++) {
        int64_t p = perm[d];
        if (p < 0 || p >= (int64_t)x->rank || (seen >> p & 1u) || y->dims[d] != x->dims[p]) return 1;
        seen |= 1u << p;
    }
    return 0;
}

int dse__check_transpose(const dse_model *m, const dse_node *n, dse_why *why) {
    int64_t perm[DSE_MAX_RANK];
    if (n->n_out != 1 || dse__mv_check_io(m, n, why)) {
        if (!why->id) DSE_WHY(why, RESHAPE_NEEDS_DATA_INPUT_ONE);
        return 1;
    }
    if (dse__transpose_perm(m, n, perm)) {
        DSE_WHY(why, TRANSPOSE_PERM_NOT_PERMUTATION_INPUT);
        return 1;
    }
    return 0;
}

void dse_any_transpose__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    const dse_tensor *x = &m->tensors[n->in[0]], *y = &m->tensors[n->out[0]];
    int64_t perm[DSE_MAX_RANK], xs[DSE_MAX_RANK], stride[DSE_MAX_RANK];
    dse__transpose_perm(m, n, perm);
    dse__mv_row_strides(x, xs);
    for (unsigned d = 0; d < y->rank; d++) stride[d] = xs[perm[d]];
    dse__mv_copy_strided(dse__data(m, arena, n->out[0]), dse__data(m, arena, n->in[0]), dse__mv_esize(x->dtype),
                         y->rank, y->dims, stride);
}
