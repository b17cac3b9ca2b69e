/* split.c: Split for any dtype along any axis.
 *
 * Sizes come from the constant `split` input (int64), else from the `num_outputs` attribute
 * (ceil(dim / n) for all but the last, as the numpy reference), else from the outputs'
 * shapes; `check` verifies that they add up to the input's axis and match every present
 * output. With outer = product of the dims before `axis`, input row o is cut into one piece
 * per output: outer x n_outputs memcpys. Absent outputs (DSE_NONE) are skipped. */
#include "internal.h"

#define MAX_SPLIT 64

static int64_t get_axis(const dse_node *n, unsigned rank) {
    int64_t a = dse__attr_int(n, "axis", 0);
    return a < 0 ? a + (int64_t)rank : a;
}

/* Split sizes into s[n->n_out]; 0 when consistent with input and outputs. */
static int sizes(const dse_model *m, const dse_node *n, int64_t *s, char *msg, size_t cap) {
    const dse_tensor *x = &m->tensors[n->in[0]];
    int64_t axis = get_axis(n, x->rank), dim;
    if (axis < 0 || axis >= (int64_t)x->rank) { snprintf(msg, cap, "axis out of range for rank %u", x->rank); return 1; }
    dim = (int64_t)x->dims[axis];
    int64_t no = dse__attr_int(n, "num_outputs", 0);
    if (n->n_in > 1 && n->in[1] != DSE_NONE) {
        if (dse__mv_const_ints(m, n->in[1], s, MAX_SPLIT) != (long)n->n_out) { snprintf(msg, cap, "split must be a constant int64 tensor with one size per output"); return 1; }
    } else if (no > 0) {
        if (no != (int64_t)n->n_out) { snprintf(msg, cap, "num_outputs=%lld but the node has %u outputs", (long long)no, n->n_out); return 1; }
        int64_t chunk = (dim + no - 1) / no;
        for (int64_t k = 0; k < no; k++) s[k] = k < no - 1 ? chunk : dim - chunk * (no - 1);
    } else {
        for (uint32_t k = 0; k < n->n_out; k++) {
            const dse_tensor *y = dse__t(m, n->out[k]);
            if (!y || y->rank != x->rank) { snprintf(msg, cap, "without split/num_outputs every output must be present"); return 1; }
            s[k] = (int64_t)y->dims[axis];
        }
    }
    int64_t sum = 0;
    for (uint32_t k = 0; k < n->n_out; k++) {
        if (s[k] < 0 || s[k] > dim) { snprintf(msg, cap, "split size %lld out of range", (long long)s[k]); return 1; }
        sum += s[k];
        const dse_tensor *y = dse__t(m, n->out[k]);
        if (!y) continue;
        if (y->dtype != x->dtype || y->rank != x->rank) { snprintf(msg, cap, "output %u has another dtype or rank than the input", k); return 1; }
        for (unsigned d = 0; d < x->rank; d++)
            if (y->dims[d] != (d == axis ? (size_t)s[k] : x->dims[d])) { snprintf(msg, cap, "output %u has the wrong shape", k); return 1; }
    }
    if (sum != dim) { snprintf(msg, cap, "split sizes add up to %lld, the axis has %lld", (long long)sum, (long long)dim); return 1; }
    return 0;
}

int dse__check_split(const dse_model *m, const dse_node *n, char *msg, size_t cap) {
    const dse_tensor *x = n->n_in >= 1 ? dse__t(m, n->in[0]) : NULL;
    int64_t s[MAX_SPLIT];
    if (!x || !dse__mv_esize(x->dtype) || x->rank == 0) { snprintf(msg, cap, "needs a data input of rank >= 1 and a whole-byte dtype"); return 1; }
    return sizes(m, n, s, msg, cap);
}

void dse_any_split__ref(const dse_model *m, const dse_node *n, uint8_t *arena, uint8_t *scratch) {
    (void)scratch;
    const dse_tensor *x = &m->tensors[n->in[0]];
    int64_t s[MAX_SPLIT];
    char msg[8];
    sizes(m, n, s, msg, sizeof msg);
    int64_t axis = get_axis(n, x->rank);
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
