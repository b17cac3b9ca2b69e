/* softmax_i8.c: int8 Softmax with fixed output qparams (1/256, -128), bit-exact with
 * intref.softmax_int8 (docs/quant-arith.md §9).
 *
 * Along the softmax axis: d = max(q) - q (0..255), e = exp_table[d] (int32, fixed point
 * 2^20, built at export), S = sum e (int64; S >= exp_table[0] > 0, checked), and
 *     y = min(127, -128 + (512*e + S) / (2*S))
 * with an integer division of non-negative int64 values (truncation = floor, so C and numpy
 * agree): round half up of 256*e/S. Three passes over each slice (max, sum, output), no
 * scratch. Attributes: TENSOR exp_table int32[256]; axis (>= 0, negative accepted);
 * coerce_2d = 1 (opset < 13) reduces over all axes from `axis` on, 0 over `axis` only.
 */
#include "requant.h"

int dse__check_i8_softmax(const dse_model *m, const dse_node *n, dse_why *why) {
    const dse_tensor *x = n->n_in == 1 ? dse__t(m, n->in[0]) : NULL, *y = n->n_out == 1 ? dse__t(m, n->out[0]) : NULL;
    const int32_t *t = dse_i8_tensor_attr(m, n, DSE_A_exp_table, DSE_DTYPE_INT32, 256);
    int64_t ax = dse__attr_int(n, DSE_A_axis, -1), c2 = dse__attr_int(n, DSE_A_coerce_2d, 0);
    int bad = !x || !y || !t || x->dtype != DSE_DTYPE_INT8 || y->dtype != DSE_DTYPE_INT8 || x->rank != y->rank ||
              x->rank < 1 || (c2 != 0 && c2 != 1);
    if (!bad) {
        if (ax < 0) ax += x->rank;
        bad = ax < 0 || ax >= x->rank || memcmp(x->dims, y->dims, x->rank * sizeof x->dims[0]) != 0 || t[0] <= 0;
        for (int i = 0; !bad && i < 256; i++) bad = t[i] < 0;
    }
    if (bad) {
        DSE_WHY(why, SOFTMAX_I8_INT8_SOFTMAX_NEEDS_INT8);
        return 1;
    }
    return 0;
}

void dse_i8_softmax__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    const dse_tensor *xt = &m->tensors[n->in[0]];
    const int8_t *x = dse__data(m, arena, n->in[0]);
    int8_t *y = dse__data(m, arena, n->out[0]);
    const int32_t *t = dse_i8_tensor_attr(m, n, DSE_A_exp_table, DSE_DTYPE_INT32, 256);
    int64_t ax = dse__attr_int(n, DSE_A_axis, -1);
    if (ax < 0) ax += xt->rank;
    size_t outer = 1, len = 1, inner = 1;
    for (int d = 0; d < (int)xt->rank; d++) {
        if (d < ax) outer *= xt->dims[d];
        else if (d == ax || dse__attr_int(n, DSE_A_coerce_2d, 0)) len *= xt->dims[d];
        else inner *= xt->dims[d];
    }
    for (size_t o = 0; o < outer; o++)
        for (size_t i = 0; i < inner; i++) {
            const size_t base = o * len * inner + i;
            int mx = -128;
            for (size_t k = 0; k < len; k++) mx = x[base + k * inner] > mx ? x[base + k * inner] : mx;
            int64_t S = 0;
            for (size_t k = 0; k < len; k++) S += t[mx - x[base + k * inner]];
            for (size_t k = 0; k < len; k++) {
                int64_t v = -128 + (512 * (int64_t)t[mx - x[base + k * inner]] + S) / (2 * S);
                y[base + k * inner] = (int8_t)(v > 127 ? 127 : v);
            }
        }
}
