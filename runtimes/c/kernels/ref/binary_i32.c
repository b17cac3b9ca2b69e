/* binary_i32.c: int32 Add, Sub, Mul with numpy broadcasting (the walker of binary.c), as in
 * onnxruntime quantize_dynamic models (ConvInteger/MatMulInteger + an int32 bias). Two's
 * complement wrap-around on overflow, as numpy's int32 arithmetic: computed in uint32 (no
 * signed overflow in C), converted back without an implementation-defined cast. */
#include "internal.h"

static inline int32_t bi32_wrap(uint32_t v) { return v < 0x80000000u ? (int32_t)v : (int32_t)(v - 0x80000000u) + INT32_MIN; }
static inline int32_t bi32_add(int32_t a, int32_t b, const dse_ew_ctx *c) { (void)c; return bi32_wrap((uint32_t)a + (uint32_t)b); }
static inline int32_t bi32_sub(int32_t a, int32_t b, const dse_ew_ctx *c) { (void)c; return bi32_wrap((uint32_t)a - (uint32_t)b); }
static inline int32_t bi32_mul(int32_t a, int32_t b, const dse_ew_ctx *c) { (void)c; return bi32_wrap((uint32_t)a * (uint32_t)b); }

#define BI32(NAME)                                                                                 \
    static void bi32_row_##NAME(uint8_t *yb, const uint8_t *const *x, const size_t *s, uint32_t nx, size_t len, \
                                const dse_ew_ctx *c) {                                             \
        (void)nx;                                                                                  \
        int32_t *y = (int32_t *)yb;                                                                \
        DSE_EW_ROW2(int32_t, y, int32_t, (const int32_t *)x[0], s[0], int32_t, (const int32_t *)x[1], s[1], len, bi32_##NAME, c); \
    }                                                                                              \
    void dse_i32_##NAME##__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) { \
        dse__ew_walk(m, n, arena, 2, bi32_row_##NAME, NULL, cx);                                   \
    }
BI32(add)
BI32(sub)
BI32(mul)

int dse__check_binary_i32(const dse_model *m, const dse_node *n, dse_why *why) {
    const dse_tensor *a = n->n_in == 2 ? dse__t(m, n->in[0]) : NULL, *b = n->n_in == 2 ? dse__t(m, n->in[1]) : NULL;
    const dse_tensor *y = n->n_out == 1 ? dse__t(m, n->out[0]) : NULL;
    if (!a || !b || !y || a->dtype != DSE_DTYPE_INT32 || b->dtype != DSE_DTYPE_INT32 || y->dtype != DSE_DTYPE_INT32) {
        DSE_WHY(why, BINARY_I32_NEEDS_INT32_INPUTS);
        return 1;
    }
    return dse__ew_check_broadcast(m, n, 2, why);
}
