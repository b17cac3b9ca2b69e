/* slice.c: Slice for any dtype (constant int64/int32 starts, ends, axes, steps; any steps,
 * negative ones included).
 *
 * Per sliced axis the bounds follow ONNX (and the numpy reference's _slice_bounds): negative
 * starts/ends count from the end; with step > 0 both clamp to [0, dim]; with step < 0 the
 * start clamps to [0, dim-1] and the end to [-1, dim-1] (-1: through index 0). The count is
 * ceil((end - start) / step) when positive, else 0, computed without overflow for any int64
 * (INT64_MAX / INT64_MIN ends and steps included). The output is then one strided walk of
 * the input starting at sum(start[d] * stride[d]) with element strides stride[d] * step[d]
 * (negative for reversed axes). */
#include "internal.h"

/* Per input axis: first index and step; 0 when the output shape matches. */
static int slice_plan(const dse_model *m, const dse_node *n, int64_t *first, int64_t *step, dse_why *why) {
    const dse_tensor *x = &m->tensors[n->in[0]], *y = &m->tensors[n->out[0]];
    int64_t st[DSE_MAX_RANK], en[DSE_MAX_RANK], ax[DSE_MAX_RANK], sp[DSE_MAX_RANK];
    unsigned r = x->rank;
    if (n->n_in < 3 || y->rank != r) { DSE_WHY(why, SLICE_NEEDS_DATA_STARTS_ENDS); return 1; }
    long k = dse__mv_const_ints(m, n->in[1], st, DSE_MAX_RANK);
    if (k < 0 || k > (long)r || dse__mv_const_ints(m, n->in[2], en, DSE_MAX_RANK) != k) {
        DSE_WHY(why, SLICE_STARTS_ENDS_CONSTANT_INT64); return 1;
    }
    if (n->n_in > 3 && n->in[3] != DSE_NONE) {
        if (dse__mv_const_ints(m, n->in[3], ax, DSE_MAX_RANK) != k) { DSE_WHY(why, SLICE_AXES_CONSTANT_INT64_TENSOR); return 1; }
    } else {
        for (long j = 0; j < k; j++) ax[j] = j;
    }
    if (n->n_in > 4 && n->in[4] != DSE_NONE) {
        if (dse__mv_const_ints(m, n->in[4], sp, DSE_MAX_RANK) != k) { DSE_WHY(why, SLICE_STEPS_CONSTANT_INT64_TENSOR); return 1; }
    } else {
        for (long j = 0; j < k; j++) sp[j] = 1;
    }
    size_t out[DSE_MAX_RANK];
    unsigned seen = 0;
    for (unsigned d = 0; d < r; d++) { first[d] = 0; step[d] = 1; out[d] = x->dims[d]; }
    for (long j = 0; j < k; j++) {
        int64_t a = ax[j] < 0 ? ax[j] + (int64_t)r : ax[j];
        if (a < 0 || a >= (int64_t)r || (seen >> a & 1u)) { DSE_WHYF(why, PAD_AXIS_OUT_RANGE_REPEATED, NULL, ax[j], 0, 0, 0); return 1; }
        seen |= 1u << a;
        int64_t dim = (int64_t)x->dims[a], s = st[j], e = en[j], t = sp[j], cnt;
        if (t == 0) { DSE_WHYF(why, SLICE_STEP_0_ON_AXIS, NULL, a, 0, 0, 0); return 1; }
        if (dim == 0) { first[a] = 0; step[a] = 1; out[a] = 0; continue; }
        if (s < 0) s += dim;   /* dim <= 2^31: no overflow either way */
        if (e < 0) e += dim;
        if (t > 0) {
            s = s < 0 ? 0 : s > dim ? dim : s;
            e = e < 0 ? 0 : e > dim ? dim : e;
            cnt = e > s ? 1 + (e - s - 1) / t : 0;
        } else {
            s = s < 0 ? 0 : s > dim - 1 ? dim - 1 : s;
            e = e < -1 ? -1 : e > dim - 1 ? dim - 1 : e;
            uint64_t ut = (uint64_t)0 - (uint64_t)t;   /* |t|, also for INT64_MIN */
            cnt = s > e ? 1 + (int64_t)((uint64_t)(s - e - 1) / ut) : 0;
        }
        first[a] = cnt ? s : 0;
        step[a] = cnt > 1 ? t : 1;   /* |t| < dim when two or more elements are taken */
        out[a] = (size_t)cnt;
    }
    for (unsigned d = 0; d < r; d++)
        if (y->dims[d] != out[d]) { DSE_WHYF(why, SLICE_OUTPUT_DIM_SLICE_GIVES, NULL, d, y->dims[d], out[d], 0); return 1; }
    return 0;
}

int dse__check_slice(const dse_model *m, const dse_node *n, dse_why *why) {
    int64_t first[DSE_MAX_RANK], step[DSE_MAX_RANK];
    if (n->n_out != 1 || dse__mv_check_io(m, n, why)) {
        if (!why->id) DSE_WHY(why, RESHAPE_NEEDS_DATA_INPUT_ONE);
        return 1;
    }
    return slice_plan(m, n, first, step, why);
}

void dse_any_slice__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    const dse_tensor *x = &m->tensors[n->in[0]], *y = &m->tensors[n->out[0]];
    int64_t first[DSE_MAX_RANK], step[DSE_MAX_RANK], xs[DSE_MAX_RANK], stride[DSE_MAX_RANK], base = 0;
    dse_why why;
    slice_plan(m, n, first, step, &why);
    if (y->numel == 0) return;
    dse__mv_row_strides(x, xs);
    for (unsigned d = 0; d < x->rank; d++) {
        base += first[d] * xs[d];
        stride[d] = xs[d] * step[d];
    }
    size_t es = dse__mv_esize(x->dtype);
    const uint8_t *src = (const uint8_t *)dse__data(m, arena, n->in[0]) + (size_t)base * es;
    dse__mv_copy_strided(dse__data(m, arena, n->out[0]), src, es, y->rank, y->dims, stride);
}
