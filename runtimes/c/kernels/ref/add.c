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

static inline float op_add(float a, float b, const dse_ew_ctx *c) { (void)c; return dse_canonf(a + b); }
static inline float op_add_clamp(float a, float b, const dse_ew_ctx *c) {
    float v = a + b;
    v = (v > c->f[0] || v != v) ? v : c->f[0];   /* numpy maximum/minimum: NaN stays, ties take the bound */
    v = (v < c->f[1] || v != v) ? v : c->f[1];
    return dse_canonf(v);
}

static void row_add(uint8_t *yb, const uint8_t *const *x, const size_t *s, uint32_t nx, size_t len, const dse_ew_ctx *c) {
    (void)nx;
    float *y = (float *)yb;
    DSE_EW_ROW2(float, y, float, (const float *)x[0], s[0], float, (const float *)x[1], s[1], len, op_add, c);
}

static void row_add_clamp(uint8_t *yb, const uint8_t *const *x, const size_t *s, uint32_t nx, size_t len,
                          const dse_ew_ctx *c) {
    (void)nx;
    float *y = (float *)yb;
    DSE_EW_ROW2(float, y, float, (const float *)x[0], s[0], float, (const float *)x[1], s[1], len, op_add_clamp, c);
}

void dse_f32_add__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    const float inf = dse_u2f(0x7F800000u);
    dse_ew_ctx c = {{dse__attr_float(n, DSE_A_act_min, -inf), dse__attr_float(n, DSE_A_act_max, inf), 0, 0}, {0, 0}, 4, NULL};
    /* Unbounded (the usual case): the clamp changes nothing (a NaN stays NaN, +-inf stay), so
     * the plain sum, which vectorises. */
    int clamp = !(c.f[0] == -inf && c.f[1] == inf);
    dse__ew_walk(m, n, arena, 2, clamp ? row_add_clamp : row_add, &c, cx);
}
