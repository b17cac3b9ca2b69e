/* compare.c: Equal, Less, Greater, LessOrEqual, GreaterOrEqual (float32, int64 or int32
 * operands of one dtype, numpy broadcasting) and And, Or, Xor (bool), Not (bool), IsNaN and
 * IsInf (float32); every output is bool (one byte, 0 or 1). IEEE comparisons: any comparison
 * with NaN is false, -0 == +0. Inputs are walked by the broadcasting walker in binary.c. */
#include "internal.h"
#include "mathf.h"

#define CMP_ROW(NAME, T, OP)                                                                       \
    static inline uint8_t op_##NAME(T a, T b, const dse_ew_ctx *c) { (void)c; return (uint8_t)(a OP b); } \
    static void row_##NAME(uint8_t *y, const uint8_t *const *x, const size_t *s, uint32_t nx, size_t len, \
                           const dse_ew_ctx *c) {                                                  \
        (void)nx;                                                                                  \
        DSE_EW_ROW2(uint8_t, y, T, (const T *)x[0], s[0], T, (const T *)x[1], s[1], len, op_##NAME, c); \
    }
#define CMP(NAME, OP)                                                                              \
    CMP_ROW(NAME##_f32, float, OP)                                                                 \
    CMP_ROW(NAME##_i64, int64_t, OP)                                                               \
    CMP_ROW(NAME##_i32, int32_t, OP)                                                               \
    void dse_bool_##NAME##__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) { \
        int dt = m->tensors[n->in[0]].dtype;                                                       \
        dse__ew_walk(m, n, arena, 2, dt == DSE_DTYPE_FLOAT32 ? row_##NAME##_f32 : dt == DSE_DTYPE_INT64 ? row_##NAME##_i64 : row_##NAME##_i32, NULL, cx); \
    }
CMP(equal, ==)
CMP(less, <)
CMP(greater, >)
CMP(lessorequal, <=)
CMP(greaterorequal, >=)

#define LOGIC(NAME, EXPR)                                                                          \
    static inline uint8_t op_##NAME(uint8_t xa, uint8_t xb, const dse_ew_ctx *c) {                 \
        (void)c;                                                                                   \
        const int a = xa != 0, b = xb != 0;                                                        \
        return (uint8_t)(EXPR);                                                                    \
    }                                                                                              \
    static void row_##NAME(uint8_t *y, const uint8_t *const *x, const size_t *s, uint32_t nx, size_t len, \
                           const dse_ew_ctx *c) {                                                  \
        (void)nx;                                                                                  \
        DSE_EW_ROW2(uint8_t, y, uint8_t, x[0], s[0], uint8_t, x[1], s[1], len, op_##NAME, c);      \
    }                                                                                              \
    void dse_bool_##NAME##__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) { \
        dse__ew_walk(m, n, arena, 2, row_##NAME, NULL, cx);                                        \
    }
LOGIC(and, a && b)
LOGIC(or, a || b)
LOGIC(xor, a != b)

static int check_two(const dse_model *m, const dse_node *n, int bool_in, dse_why *why) {
    const dse_tensor *a = n->n_in == 2 ? dse__t(m, n->in[0]) : NULL, *b = n->n_in == 2 ? dse__t(m, n->in[1]) : NULL;
    int dt = a ? a->dtype : 0;
    if (!a || !b || b->dtype != dt || n->n_out != 1 || dse__t(m, n->out[0])->dtype != DSE_DTYPE_BOOL ||
        (bool_in ? dt != DSE_DTYPE_BOOL : dt != DSE_DTYPE_FLOAT32 && dt != DSE_DTYPE_INT64 && dt != DSE_DTYPE_INT32)) {
        DSE_WHYF(why, COMPARE_NEEDS_TWO_INPUTS_ONE, bool_in ? "bool" : "float32/int64/int32", 0, 0, 0, 0);
        return 1;
    }
    return dse__ew_check_broadcast(m, n, 2, why);
}
int dse__check_compare(const dse_model *m, const dse_node *n, dse_why *why) { return check_two(m, n, 0, why); }
int dse__check_logic(const dse_model *m, const dse_node *n, dse_why *why) { return check_two(m, n, 1, why); }

/* One-input bool-output ops: Not (bool in), IsNaN / IsInf (float32 in). */
static int check_one(const dse_model *m, const dse_node *n, int in_dtype, dse_why *why) {
    const dse_tensor *x = n->n_in == 1 ? dse__t(m, n->in[0]) : NULL, *y = n->n_out == 1 ? dse__t(m, n->out[0]) : NULL;
    if (!x || !y || x->dtype != in_dtype || y->dtype != DSE_DTYPE_BOOL || x->rank != y->rank ||
        memcmp(x->dims, y->dims, x->rank * sizeof x->dims[0]) != 0) {
        DSE_WHYF(why, COMPARE_NEEDS_ONE_INPUT_BOOL, dse_dtype_name(in_dtype), 0, 0, 0, 0);
        return 1;
    }
    return 0;
}
int dse__check_not(const dse_model *m, const dse_node *n, dse_why *why) { return check_one(m, n, DSE_DTYPE_BOOL, why); }
int dse__check_isnan(const dse_model *m, const dse_node *n, dse_why *why) { return check_one(m, n, DSE_DTYPE_FLOAT32, why); }

void dse_bool_not__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    const uint8_t *x = dse__data(m, arena, n->in[0]);
    uint8_t *y = dse__data(m, arena, n->out[0]);
    for (size_t i = 0, e = m->tensors[n->out[0]].numel; i < e; i++) y[i] = x[i] == 0;
}

void dse_bool_isnan__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    const float *x = dse__data(m, arena, n->in[0]);
    uint8_t *y = dse__data(m, arena, n->out[0]);
    for (size_t i = 0, e = m->tensors[n->out[0]].numel; i < e; i++) y[i] = x[i] != x[i];
}

/* IsInf: attributes detect_negative, detect_positive (default 1). */
void dse_bool_isinf__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    const float *x = dse__data(m, arena, n->in[0]);
    uint8_t *y = dse__data(m, arena, n->out[0]);
    const int neg = dse__attr_int(n, DSE_A_detect_negative, 1) != 0, pos = dse__attr_int(n, DSE_A_detect_positive, 1) != 0;
    const uint32_t pinf = 0x7F800000u, ninf = 0xFF800000u;
    for (size_t i = 0, e = m->tensors[n->out[0]].numel; i < e; i++) {
        const uint32_t u = dse_f2u(x[i]);
        y[i] = (uint8_t)((pos && u == pinf) || (neg && u == ninf));
    }
}
