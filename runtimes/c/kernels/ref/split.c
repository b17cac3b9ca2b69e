/* split.c: Split for any dtype along any axis.
 *
 * Sizes come from the constant `split` input (int64), else from the `num_outputs` attribute
 * (ceil(dim / n) for all but the last, as the numpy reference), else from the outputs'
 * shapes; `check` verifies that they add up to the input's axis and match every present
 * output. With outer = product of the dims before `axis`, input row o is cut into one piece
 * per output: outer x n_outputs memcpys. Absent outputs (DSE_NONE) are skipped. */
#include "internal.h"

#define MAX_SPLIT 64

static int64_t split_get_axis(const dse_node *n, unsigned rank) {
    int64_t a = dse__attr_int(n, DSE_A_axis, 0);
    return a < 0 ? a + (int64_t)rank : a;
}

/* Split sizes into s[n->n_out]; 0 when consistent with input and outputs. */
static int sizes(const dse_model *m, const dse_node *n, int64_t *s, dse_why *why) {
    const dse_tensor *x = &m->tensors[n->in[0]];
    int64_t axis = split_get_axis(n, x->rank), dim;
    if (axis < 0 || axis >= (int64_t)x->rank) { DSE_WHYF(why, GATHER_AXIS_OUT_RANGE_RANK, NULL, x->rank, 0, 0, 0); return 1; }
    dim = (int64_t)x->dims[axis];
    int64_t no = dse__attr_int(n, DSE_A_num_outputs, 0);
    if (n->n_in > 1 && n->in[1] != DSE_NONE) {
        if (dse__mv_const_ints(m, n->in[1], s, MAX_SPLIT) != (long)n->n_out) { DSE_WHY(why, SPLIT_CONSTANT_INT64_TENSOR_ONE); return 1; }
    } else if (no > 0) {
        if (no != (int64_t)n->n_out) { DSE_WHYF(why, SPLIT_NUM_OUTPUTS_BUT_NODE, NULL, no, n->n_out, 0, 0); return 1; }
        int64_t chunk = (dim + no - 1) / no;
        for (int64_t k = 0; k < no; k++) s[k] = k < no - 1 ? chunk : dim - chunk * (no - 1);
    } else {
        for (uint32_t k = 0; k < n->n_out; k++) {
            const dse_tensor *y = dse__t(m, n->out[k]);
            if (!y || y->rank != x->rank) { DSE_WHY(why, SPLIT_WITHOUT_SPLIT_NUM_OUTPUTS); return 1; }
            s[k] = (int64_t)y->dims[axis];
        }
    }
    int64_t sum = 0;
    for (uint32_t k = 0; k < n->n_out; k++) {
        if (s[k] < 0 || s[k] > dim) { DSE_WHYF(why, SPLIT_SIZE_OUT_RANGE, NULL, s[k], 0, 0, 0); return 1; }
        sum += s[k];
        const dse_tensor *y = dse__t(m, n->out[k]);
        if (!y) continue;
        if (y->dtype != x->dtype || y->rank != x->rank) { DSE_WHYF(why, SPLIT_OUTPUT_HAS_ANOTHER_DTYPE, NULL, k, 0, 0, 0); return 1; }
        for (unsigned d = 0; d < x->rank; d++)
            if (y->dims[d] != (d == axis ? (size_t)s[k] : x->dims[d])) { DSE_WHYF(why, SPLIT_OUTPUT_HAS_WRONG_SHAPE, NULL, k, 0, 0, 0); return 1; }
    }
    if (sum != dim) { DSE_WHYF(why, SPLIT_SIZES_ADD_UP_AXIS, NULL, sum, dim, 0, 0); return 1; }
    return 0;
}

int dse__check_split(const dse_model *m, const dse_node *n, dse_why *why) {
    const dse_tensor *x = n->n_in >= 1 ? dse__t(m, n->in[0]) : NULL;
    int64_t s[MAX_SPLIT];
    if (!x || !dse__mv_esize(x->dtype) || x->rank == 0) { DSE_WHY(why, SPLIT_NEEDS_DATA_INPUT_RANK); return 1; }
    return sizes(m, n, s, why);
}

void dse_any_split__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    const dse_tensor *x = &m->tensors[n->in[0]];
    int64_t s[MAX_SPLIT];
    dse_why why;
    sizes(m, n, s, &why);
    int64_t axis = split_get_axis(n, x->rank);
    size_t outer = 1, inner = dse__mv_esize(x->dtype), pos = 0;
    for (unsigned d = 0; d < (unsigned)axis; d++) outer *= x->dims[d];
    for (unsigned d = (unsigned)axis + 1; d < x->rank; d++) inner *= x->dims[d];
    size_t in_row = x->dims[axis] * inner;
    const uint8_t *src = dse__data(m, arena, n->in[0]);
    for (uint32_t k = 0; k < n->n_out; k++) {
        size_t row = (size_t)s[k] * inner;
        if (n->out[k] != DSE_NONE && row) {
            uint8_t *dst = dse__data(m, arena, n->out[k]);
            for (size_t o = 0; o < outer; o++)
                if (dst + o * row != src + o * in_row + pos) memmove(dst + o * row, src + o * in_row + pos, row);
        }
        pos += row;
    }
}
