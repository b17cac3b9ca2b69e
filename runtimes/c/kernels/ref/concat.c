/* concat.c: Concat for any dtype along any axis (the byte-moving form; an int8 Concat that
 * requantises an input, attribute `rescale` non-zero, belongs to the int8 kernel).
 *
 * With outer = product of the dims before `axis` and row_k = (dims[axis..] of input k) bytes,
 * output row o is the concatenation of row o of every input: outer x n_inputs memcpys. When
 * the planner placed an input directly into its slice of the output (possible when outer is
 * 1), the source already is the destination and the copy is skipped. Absent inputs
 * (DSE_NONE) are skipped, as the numpy reference drops None inputs. */
#include "internal.h"

static int64_t concat_get_axis(const dse_node *n, unsigned rank) {
    int64_t a = dse__attr_int(n, DSE_A_axis, INT64_MIN);
    return a == INT64_MIN ? -1 : a < 0 ? a + (int64_t)rank : a;
}

int dse__check_concat(const dse_model *m, const dse_node *n, dse_why *why) {
    const dse_tensor *y = dse__t(m, n->out[0]);
    if (!y || n->n_out != 1 || !dse__mv_esize(y->dtype)) { DSE_WHY(why, CONCAT_NEEDS_ONE_OUTPUT_WHOLE); return 1; }
    int64_t axis = concat_get_axis(n, y->rank);
    if (axis < 0 || axis >= (int64_t)y->rank) { DSE_WHYF(why, CONCAT_AXIS_ATTRIBUTE_MISSING_OUT, NULL, y->rank, 0, 0, 0); return 1; }
    int64_t rs[DSE_MAX_RANK * 2];
    int nr = dse__attr_ints(n, DSE_A_rescale, rs, 2 * DSE_MAX_RANK);
    for (int k = 0; k < nr; k++)
        if (rs[k]) { DSE_WHYF(why, CONCAT_INPUT_REQUANTISED_RESCALE_1, NULL, k, 0, 0, 0); return 1; }
    if (dse__attr(n, DSE_A_rescale, DSE_ATTR_INTS) && nr < 0) { DSE_WHY(why, CONCAT_RESCALE_ATTRIBUTE_TOO_LONG); return 1; }
    size_t total = 0, present = 0;
    for (uint32_t k = 0; k < n->n_in; k++) {
        const dse_tensor *x = dse__t(m, n->in[k]);
        if (!x) continue;
        present++;
        if (x->dtype != y->dtype || x->rank != y->rank) { DSE_WHYF(why, CONCAT_INPUT_HAS_ANOTHER_DTYPE, NULL, k, 0, 0, 0); return 1; }
        for (unsigned d = 0; d < y->rank; d++)
            if (d != axis && x->dims[d] != y->dims[d]) { DSE_WHYF(why, CONCAT_INPUT_DIFFERS_FROM_OUTPUT, NULL, k, 0, 0, 0); return 1; }
        total += x->dims[axis];
    }
    if (!present || total != y->dims[axis]) { DSE_WHYF(why, CONCAT_INPUTS_SIZES_ALONG_AXIS, NULL, axis, 0, 0, 0); return 1; }
    return dse__concat_check_alias(m, n, (unsigned)axis, why);
}

/* The loader lets a Concat input lie inside the output (kernel trait SLICE, internal.h); it
 * is right only where the copy is skipped: the input is exactly its slice, which is one
 * contiguous range only when outer is 1. Shapes have been checked by the caller. */
int dse__concat_check_alias(const dse_model *m, const dse_node *n, unsigned axis, dse_why *why) {
    const dse_tensor *y = &m->tensors[n->out[0]];
    size_t outer = 1, inner = dse__mv_esize(y->dtype), pos = 0;
    for (unsigned d = 0; d < axis; d++) outer *= y->dims[d];
    for (unsigned d = axis + 1; d < y->rank; d++) inner *= y->dims[d];
    for (uint32_t k = 0; k < n->n_in; k++) {
        const dse_tensor *x = dse__t(m, n->in[k]);
        if (!x) continue;
        size_t row = x->dims[axis] * inner;
        if (x->storage == DSE_STORAGE_ARENA && x->nbytes && y->nbytes && x->offset < y->offset + y->nbytes &&
            y->offset < x->offset + x->nbytes && (outer != 1 || x->offset != y->offset + pos)) {
            DSE_WHYF(why, CONCAT_INPUT_OVERLAPS_NOT_AT_SLICE, NULL, k, 0, 0, 0);
            return 1;
        }
        pos += row;
    }
    return 0;
}

void dse_any_concat__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    const dse_tensor *y = &m->tensors[n->out[0]];
    int64_t axis = concat_get_axis(n, y->rank);
    size_t es = dse__mv_esize(y->dtype), outer = 1, inner = es;
    for (unsigned d = 0; d < (unsigned)axis; d++) outer *= y->dims[d];
    for (unsigned d = (unsigned)axis + 1; d < y->rank; d++) inner *= y->dims[d];
    size_t out_row = y->dims[axis] * inner, pos = 0;
    uint8_t *out = dse__data(m, arena, n->out[0]);
    for (uint32_t k = 0; k < n->n_in; k++) {
        if (n->in[k] == DSE_NONE) continue;
        const dse_tensor *x = &m->tensors[n->in[k]];
        const uint8_t *src = dse__data(m, arena, n->in[k]);
        size_t row = x->dims[axis] * inner;
        for (size_t o = 0; o < outer && row; o++) {
            uint8_t *dst = out + o * out_row + pos;
            if (dst != src + o * row) memmove(dst, src + o * row, row);
        }
        pos += row;
    }
}
