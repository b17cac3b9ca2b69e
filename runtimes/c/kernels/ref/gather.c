/* gather.c: Gather and GatherElements for any data dtype, int64 or int32 indices.
 *
 * Gather: with outer = product of the data dims before `axis` and a block = the data dims
 * after it, output = for each outer row, for each index i (row-major over the indices'
 * shape), the block data[row, i, :] — one memcpy per index. GatherElements: the output has
 * the indices' shape; element p reads data at p with its `axis` coordinate replaced by
 * indices[p] (the indices may be smaller than the data off the axis, as onnxruntime allows).
 *
 * Indices may be computed at run time, so they are checked at RUN time: a negative index
 * counts from the end (i + dim); an index still outside [0, dim) does not read anything and
 * its output block is filled with real zero — zero bytes, or the zero point when the output
 * is a per-tensor quantised int8/uint8 tensor. (ONNX calls such an index an error and
 * onnxruntime fails the run; the session here cannot fail mid-run, so it gives this defined,
 * recognisable value instead, and never reads out of bounds.) */
#include "internal.h"

static int64_t gather_get_axis(const dse_node *n, unsigned rank) {
    int64_t a = dse__attr_int(n, DSE_A_axis, 0);
    return a < 0 ? a + (int64_t)rank : a;
}

static int64_t index_at(const uint8_t *p, int is64, size_t i) {
    if (is64) { int64_t v; memcpy(&v, p + 8 * i, 8); return v; }
    int32_t v;
    memcpy(&v, p + 4 * i, 4);
    return v;
}

/* idx in [-dim, dim) -> [0, dim); anything else -> -1 */
static int64_t gather_wrap(int64_t idx, int64_t dim) {
    if (idx < 0) idx += dim;   /* idx >= INT64_MIN and dim < 2^31: no overflow */
    return idx >= 0 && idx < dim ? idx : -1;
}

static int check_common(const dse_model *m, const dse_node *n, dse_why *why) {
    if (n->n_in != 2 || n->n_out != 1 || dse__mv_check_io(m, n, why)) {
        if (!why->id) DSE_WHY(why, GATHER_NEEDS_DATA_INDICES_ONE);
        return 1;
    }
    const dse_tensor *x = &m->tensors[n->in[0]], *i = dse__t(m, n->in[1]);
    int64_t axis = gather_get_axis(n, x->rank);
    if (!i || (i->dtype != DSE_DTYPE_INT64 && i->dtype != DSE_DTYPE_INT32)) { DSE_WHY(why, GATHER_INDICES_INT64_INT32); return 1; }
    if (axis < 0 || axis >= (int64_t)x->rank) { DSE_WHYF(why, GATHER_AXIS_OUT_RANGE_RANK, NULL, x->rank, 0, 0, 0); return 1; }
    return 0;
}

int dse__check_gather(const dse_model *m, const dse_node *n, dse_why *why) {
    if (check_common(m, n, why)) return 1;
    const dse_tensor *x = &m->tensors[n->in[0]], *i = &m->tensors[n->in[1]], *y = &m->tensors[n->out[0]];
    unsigned axis = (unsigned)gather_get_axis(n, x->rank), r = 0;
    size_t want[2 * DSE_MAX_RANK];
    for (unsigned d = 0; d < axis; d++) want[r++] = x->dims[d];
    for (unsigned d = 0; d < i->rank; d++) want[r++] = i->dims[d];
    for (unsigned d = axis + 1; d < x->rank; d++) want[r++] = x->dims[d];
    if (y->rank != r || memcmp(y->dims, want, r * sizeof want[0]) != 0) {
        DSE_WHY(why, GATHER_OUTPUT_SHAPE_NOT_DATA);
        return 1;
    }
    return 0;
}

void dse_any_gather__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    const dse_tensor *x = &m->tensors[n->in[0]], *it = &m->tensors[n->in[1]], *y = &m->tensors[n->out[0]];
    unsigned axis = (unsigned)gather_get_axis(n, x->rank);
    size_t es = dse__mv_esize(x->dtype), outer = 1, block = 1;
    for (unsigned d = 0; d < axis; d++) outer *= x->dims[d];
    for (unsigned d = axis + 1; d < x->rank; d++) block *= x->dims[d];
    int64_t dim = (int64_t)x->dims[axis];
    const uint8_t *src = dse__data(m, arena, n->in[0]), *ip = dse__data(m, arena, n->in[1]);
    uint8_t *dst = dse__data(m, arena, n->out[0]), zero[8];
    dse__mv_zero_elem(y, zero);
    int is64 = it->dtype == DSE_DTYPE_INT64;
    size_t bb = block * es;
    for (size_t o = 0; o < outer; o++) {
        const uint8_t *row = src + o * (size_t)dim * bb;
        for (size_t j = 0; j < it->numel; j++, dst += bb) {
            int64_t k = gather_wrap(index_at(ip, is64, j), dim);
            if (k >= 0) memcpy(dst, row + (size_t)k * bb, bb);
            else dse__mv_fill(dst, block, zero, es);
        }
    }
}

int dse__check_gather_elements(const dse_model *m, const dse_node *n, dse_why *why) {
    if (check_common(m, n, why)) return 1;
    const dse_tensor *x = &m->tensors[n->in[0]], *i = &m->tensors[n->in[1]], *y = &m->tensors[n->out[0]];
    unsigned axis = (unsigned)gather_get_axis(n, x->rank);
    if (i->rank != x->rank || y->rank != x->rank || memcmp(y->dims, i->dims, x->rank * sizeof x->dims[0]) != 0) {
        DSE_WHY(why, GATHER_DATA_INDICES_OUTPUT_HAVE);
        return 1;
    }
    for (unsigned d = 0; d < x->rank; d++)
        if (d != axis && i->dims[d] > x->dims[d]) { DSE_WHYF(why, GATHER_INDICES_DIM_EXCEEDS_DATA, NULL, d, 0, 0, 0); return 1; }
    return 0;
}

void dse_any_gather_elements__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    const dse_tensor *x = &m->tensors[n->in[0]], *it = &m->tensors[n->in[1]], *y = &m->tensors[n->out[0]];
    unsigned axis = (unsigned)gather_get_axis(n, x->rank), r = x->rank;
    if (y->numel == 0) return;
    size_t es = dse__mv_esize(x->dtype), idx[DSE_MAX_RANK] = {0};
    int64_t xs[DSE_MAX_RANK], dim = (int64_t)x->dims[axis], off = 0;   /* off: data offset without the axis term */
    dse__mv_row_strides(x, xs);
    const uint8_t *src = dse__data(m, arena, n->in[0]), *ip = dse__data(m, arena, n->in[1]);
    uint8_t *dst = dse__data(m, arena, n->out[0]), zero[8];
    dse__mv_zero_elem(y, zero);
    int is64 = it->dtype == DSE_DTYPE_INT64;
    for (size_t j = 0; j < y->numel; j++, dst += es) {
        int64_t k = gather_wrap(index_at(ip, is64, j), dim);
        if (k >= 0) memcpy(dst, src + (size_t)(off + k * xs[axis]) * es, es);
        else memcpy(dst, zero, es);
        for (int d = (int)r - 1; d >= 0; d--) {
            if (++idx[d] < it->dims[d]) { if ((unsigned)d != axis) off += xs[d]; break; }
            if ((unsigned)d != axis) off -= xs[d] * (int64_t)(idx[d] - 1);
            idx[d] = 0;
        }
    }
}
