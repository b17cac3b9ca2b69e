/* tile.c: Tile for any dtype (constant int64 repeats, one per axis, each >= 0).
 *
 * Output element p reads input element (p[d] mod dims[d]) per axis. The output is produced
 * row by row (a row = the last axis): for each output row the source row follows from the
 * outer indices modulo the input dims, and the input row is copied repeats[last] times. */
#include "internal.h"

int dse__check_tile(const dse_model *m, const dse_node *n, dse_why *why) {
    if (n->n_in != 2 || n->n_out != 1 || dse__mv_check_io(m, n, why)) {
        if (!why->id) DSE_WHY(why, TILE_NEEDS_DATA_REPEATS_ONE);
        return 1;
    }
    const dse_tensor *x = &m->tensors[n->in[0]], *y = &m->tensors[n->out[0]];
    int64_t rep[DSE_MAX_RANK];
    if (dse__mv_const_ints(m, n->in[1], rep, DSE_MAX_RANK) != (long)x->rank || y->rank != x->rank) {
        DSE_WHY(why, TILE_REPEATS_CONSTANT_INT64_TENSOR);
        return 1;
    }
    for (unsigned d = 0; d < x->rank; d++)
        if (rep[d] < 0 || rep[d] > INT32_MAX || y->dims[d] != x->dims[d] * (uint64_t)rep[d]) { DSE_WHYF(why, TILE_OUTPUT_DIM_NOT_INPUT, NULL, d, 0, 0, 0); return 1; }
    return 0;
}

void dse_any_tile__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    const dse_tensor *x = &m->tensors[n->in[0]], *y = &m->tensors[n->out[0]];
    if (y->numel == 0) return;
    size_t es = dse__mv_esize(x->dtype), idx[DSE_MAX_RANK] = {0};
    int64_t xs[DSE_MAX_RANK];
    dse__mv_row_strides(x, xs);
    const uint8_t *src = dse__data(m, arena, n->in[0]);
    uint8_t *dst = dse__data(m, arena, n->out[0]);
    if (x->rank == 0) { memcpy(dst, src, es); return; }
    unsigned r = x->rank, last = r - 1;
    size_t in_row = x->dims[last] * es, reps = y->dims[last] / x->dims[last];
    for (;;) {
        size_t off = 0;   /* source row: outer indices modulo the input dims */
        for (unsigned d = 0; d < last; d++) off += (idx[d] % x->dims[d]) * (size_t)xs[d];
        for (size_t k = 0; k < reps; k++, dst += in_row) memcpy(dst, src + off * es, in_row);
        int d = (int)last - 1;
        for (; d >= 0; d--) {
            if (++idx[d] < y->dims[d]) break;
            idx[d] = 0;
        }
        if (d < 0) return;
    }
}
