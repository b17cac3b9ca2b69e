/* add.c: fp32 Add with numpy broadcasting (the walker in binary.c) and the fused activation
 * clamp of docs/kernels.md: y = min(max(a + b, act_min), act_max) with FLOAT attributes
 * act_min/act_max (absent = unbounded). One IEEE add per element: exact sums, the same on
 * every target; NaN stays NaN (canonical 0x7FC00000). Also the shared same-shape check. */
#include "internal.h"
#include "mathf.h"

int dse__check_same_shape(const dse_model *m, const dse_node *n, int dtype, dse_why *why) {
    const dse_tensor *x = n->n_in == 1 ? dse__t(m, n->in[0]) : NULL, *y = dse__t(m, n->out[0]);
    if (!x || !y || n->n_out != 1 || x->dtype != dtype || y->dtype != dtype || x->rank != y->rank ||
        memcmp(x->dims, y->dims, x->rank * sizeof x->dims[0]) != 0) {
        DSE_WHYF(why, ADD_NEEDS_ONE_INPUT_ONE, dse_dtype_name(dtype), 0, 0, 0, 0);
        return 1;
    }
    return 0;
}

static void row_add(uint8_t *yb, const uint8_t *const *x, const size_t *s, uint32_t nx, size_t len, const dse_ew_ctx *c) {
    (void)nx;
    float *y = (float *)yb;
    const float *a = (const float *)x[0], *b = (const float *)x[1], lo = c->f[0], hi = c->f[1];
    for (size_t i = 0; i < len; i++) {
        float v = a[i * s[0]] + b[i * s[1]];
        v = (v > lo || v != v) ? v : lo;   /* numpy maximum/minimum: NaN stays, ties take the bound */
        v = (v < hi || v != v) ? v : hi;
        y[i] = dse_canonf(v);
    }
}

void dse_f32_add__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    const float inf = dse_u2f(0x7F800000u);
    dse_ew_ctx c = {{dse__attr_float(n, DSE_A_act_min, -inf), dse__attr_float(n, DSE_A_act_max, inf), 0, 0}, {0, 0}, 4};
    dse__ew_walk(m, n, arena, 2, row_add, &c);
}
