/* argmax.c: ArgMax / ArgMin over one axis (attributes axis, keepdims, select_last_index) of a
 * float32, int8, uint8, int32 or int64 tensor; int64 indices out. As numpy's argmax/argmin:
 * the first extreme element wins (the last one with select_last_index = 1), and a NaN counts
 * as the extreme (the first NaN, or the last with select_last_index). */
#include "internal.h"

static int elem_ok(int dt) {
    return dt == DSE_DTYPE_FLOAT32 || dt == DSE_DTYPE_INT8 || dt == DSE_DTYPE_UINT8 || dt == DSE_DTYPE_INT32 || dt == DSE_DTYPE_INT64;
}

int dse__check_argmax(const dse_model *m, const dse_node *n, dse_why *why) {
    const dse_tensor *x = n->n_in == 1 ? dse__t(m, n->in[0]) : NULL, *y = n->n_out == 1 ? dse__t(m, n->out[0]) : NULL;
    if (!x || !y || !elem_ok(x->dtype) || y->dtype != DSE_DTYPE_INT64 || x->rank == 0) goto bad;
    int64_t axis = dse__attr_int(n, DSE_A_axis, 0);
    if (axis < 0) axis += x->rank;
    if (axis < 0 || axis >= (int64_t)x->rank || x->dims[axis] == 0) goto bad;
    int keep = dse__attr_int(n, DSE_A_keepdims, 1) != 0;
    size_t want[DSE_MAX_RANK];
    unsigned r = 0;
    for (unsigned d = 0; d < x->rank; d++) {
        if ((int64_t)d != axis) want[r++] = x->dims[d];
        else if (keep) want[r++] = 1;
    }
    if (y->rank != r || memcmp(y->dims, want, r * sizeof want[0]) != 0) goto bad;
    return 0;
bad:
    DSE_WHY(why, ARGMAX_NEEDS_FLOAT32_INT8_UINT8);
    return 1;
}

static double load(const uint8_t *p, int dt, size_t i, int *nan) {
    switch (dt) {
    case DSE_DTYPE_FLOAT32: { float f; memcpy(&f, p + 4 * i, 4); *nan = f != f; return f; }
    case DSE_DTYPE_INT8: return (int8_t)p[i];
    case DSE_DTYPE_UINT8: return p[i];
    case DSE_DTYPE_INT32: { int32_t v; memcpy(&v, p + 4 * i, 4); return v; }
    default: { int64_t v; memcpy(&v, p + 8 * i, 8); return (double)v; }
    }
}

static void arg(const dse_model *m, const dse_node *n, uint8_t *arena, int want_max) {
    const dse_tensor *xt = &m->tensors[n->in[0]];
    const uint8_t *x = dse__data(m, arena, n->in[0]);
    int64_t *y = dse__data(m, arena, n->out[0]);
    int64_t axis = dse__attr_int(n, DSE_A_axis, 0);
    if (axis < 0) axis += xt->rank;
    const int last = dse__attr_int(n, DSE_A_select_last_index, 0) != 0, dt = xt->dtype;
    size_t outer = 1, inner = 1, len = xt->dims[axis];
    for (int64_t d = 0; d < axis; d++) outer *= xt->dims[d];
    for (unsigned d = (unsigned)axis + 1; d < xt->rank; d++) inner *= xt->dims[d];
    for (size_t o = 0; o < outer; o++)
        for (size_t in = 0; in < inner; in++) {
            const size_t base = o * len * inner + in;
            size_t best = last ? len - 1 : 0;
            int bnan = 0, nan = 0;
            double bv = load(x, dt, base + best * inner, &bnan);
            for (size_t j = 1; j < len && !bnan; j++) {
                const size_t k = last ? len - 1 - j : j;
                nan = 0;
                double v = load(x, dt, base + k * inner, &nan);   /* int64 -> double: order kept except ties beyond 2^53 */
                if (nan || (want_max ? v > bv : v < bv)) { best = k; bv = v; bnan = nan; }
            }
            y[o * inner + in] = (int64_t)best;
        }
}

void dse_i64_argmax__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) { (void)cx; arg(m, n, arena, 1); }
void dse_i64_argmin__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) { (void)cx; arg(m, n, arena, 0); }
