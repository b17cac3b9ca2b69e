/* add.c: fp32 Add with numpy broadcasting (ranks up to DSE_MAX_RANK).
 *
 * Each input is aligned to the output's trailing axes; a broadcast axis gets stride 0. The
 * output is walked in row-major order with an index counter per axis, so one float add per
 * element and no reduction: results are exact IEEE sums, the same on every target. */
#include "internal.h"

int dse__check_same_shape(const dse_model *m, const dse_node *n, int dtype, char *msg, size_t cap) {
    const dse_tensor *x = n->n_in == 1 ? dse__t(m, n->in[0]) : NULL, *y = dse__t(m, n->out[0]);
    if (!x || !y || n->n_out != 1 || x->dtype != dtype || y->dtype != dtype || x->rank != y->rank ||
        memcmp(x->dims, y->dims, x->rank * sizeof x->dims[0]) != 0) {
        snprintf(msg, cap, "needs one %s input and one output of the same shape", dse_dtype_name(dtype));
        return 1;
    }
    return 0;
}

int dse__check_binary_f32(const dse_model *m, const dse_node *n, char *msg, size_t cap) {
    const dse_tensor *y = dse__t(m, n->out[0]);
    if (n->n_in != 2 || n->n_out != 1 || !y || y->dtype != DSE_DTYPE_FLOAT32) goto bad;
    for (int k = 0; k < 2; k++) {
        const dse_tensor *x = dse__t(m, n->in[k]);
        if (!x || x->dtype != DSE_DTYPE_FLOAT32 || x->rank > y->rank) goto bad;
        for (unsigned d = 0; d < x->rank; d++) {
            size_t xd = x->dims[d], yd = y->dims[y->rank - x->rank + d];
            if (xd != yd && xd != 1) goto bad;
        }
    }
    for (unsigned d = 0; d < y->rank; d++) {   /* the output is exactly the broadcast shape */
        size_t want = 1;
        for (int k = 0; k < 2; k++) {
            const dse_tensor *x = dse__t(m, n->in[k]);
            int xd = (int)d - (int)(y->rank - x->rank);
            if (xd >= 0 && x->dims[xd] != 1) want = x->dims[xd];
        }
        if (y->dims[d] != want) goto bad;
    }
    return 0;
bad:
    snprintf(msg, cap, "needs two float32 inputs that broadcast to the float32 output's shape");
    return 1;
}

void dse_f32_add__ref(const dse_model *m, const dse_node *n, uint8_t *arena, uint8_t *scratch) {
    (void)scratch;
    const dse_tensor *y = &m->tensors[n->out[0]];
    const float *in[2];
    size_t stride[2][DSE_MAX_RANK] = {{0}}, idx[DSE_MAX_RANK] = {0}, off[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        const dse_tensor *x = &m->tensors[n->in[k]];
        in[k] = dse__data(m, arena, n->in[k]);
        size_t s = 1;
        for (int d = (int)x->rank - 1; d >= 0; d--) {
            stride[k][y->rank - x->rank + (unsigned)d] = x->dims[d] == 1 ? 0 : s;
            s *= x->dims[d];
        }
    }
    float *out = dse__data(m, arena, n->out[0]);
    for (size_t i = 0; i < y->numel; i++) {
        out[i] = in[0][off[0]] + in[1][off[1]];
        for (int d = (int)y->rank - 1; d >= 0; d--) {   /* advance the counter, carry left */
            off[0] += stride[0][d];
            off[1] += stride[1][d];
            if (++idx[d] < y->dims[d]) break;
            off[0] -= stride[0][d] * idx[d];
            off[1] -= stride[1][d] * idx[d];
            idx[d] = 0;
        }
    }
}
