/* add_i8.c: int8 Add and Sub with numpy broadcasting, bit-exact with intref.add_int8 /
 * sub_int8, and the broadcast check shared with int8 Mul.
 *
 * Arithmetic (docs/quant-arith.md §6): one shared shift n for both terms and one rounding,
 *     t = (a - za) * Ma  ±  (b - zb) * Mb          (int64, |t| < 2^40)
 *     y = clamp(zp_out + ((t + 2^(n-1)) >> n), qmin, qmax)
 * Broadcasting: each input is aligned to the output's trailing axes, a broadcast axis gets
 * stride 0; the output is walked by the elementwise walker of binary.c (merged axes, rows).
 */
#include "requant.h"

int dse_i8_check_broadcast(const dse_model *m, const dse_node *n, dse_why *why) {
    const dse_tensor *y = n->n_out == 1 ? dse__t(m, n->out[0]) : NULL;
    if (n->n_in != 2 || !y || y->dtype != DSE_DTYPE_INT8) goto bad;
    for (int k = 0; k < 2; k++) {
        const dse_tensor *x = dse__t(m, n->in[k]);
        if (!x || x->dtype != DSE_DTYPE_INT8 || x->rank > y->rank) goto bad;
    }
    for (unsigned d = 0; d < y->rank; d++) {   /* the output is exactly the broadcast shape */
        size_t want = 1;
        for (int k = 0; k < 2; k++) {
            const dse_tensor *x = dse__t(m, n->in[k]);
            int xd = (int)d - (int)(y->rank - x->rank);
            if (xd < 0 || x->dims[xd] == 1) continue;
            if (want != 1 && want != x->dims[xd]) goto bad;
            want = x->dims[xd];
        }
        if (y->dims[d] != want) goto bad;
    }
    return 0;
bad:
    DSE_WHY(why, ADD_I8_NEEDS_TWO_INT8_INPUTS);
    return 1;
}

typedef dse_i8_addp addp;

int dse_i8_add_params(const dse_node *n, dse_i8_addp *p) {
    int64_t za = dse__attr_int(n, DSE_A_za, 1000), zb = dse__attr_int(n, DSE_A_zb, 1000), zo = dse__attr_int(n, DSE_A_zp_out, 1000);
    int64_t lo = dse__attr_int(n, DSE_A_qmin, -128), hi = dse__attr_int(n, DSE_A_qmax, 127), sh = dse__attr_int(n, DSE_A_shift, 0);
    int64_t Ma = dse__attr_int(n, DSE_A_Ma, -1), Mb = dse__attr_int(n, DSE_A_Mb, -1);
    if (!DSE_I8_OK(za) || !DSE_I8_OK(zb) || !DSE_I8_OK(zo) || !DSE_I8_OK(lo) || !DSE_I8_OK(hi) || lo > hi ||
        sh < 1 || sh > 62 || Ma < 0 || Ma > 0x7fffffff || Mb < 0 || Mb > 0x7fffffff)
        return 1;
    *p = (addp){(int)za, (int)zb, (int)zo, (int)lo, (int)hi, (int)sh, Ma, Mb};
    return 0;
}

int dse__check_i8_add(const dse_model *m, const dse_node *n, dse_why *why) {
    addp p;
    if (dse_i8_check_broadcast(m, n, why)) return 1;
    if (dse_i8_add_params(n, &p)) {
        DSE_WHY(why, ADD_I8_NEEDS_INT_ZA_ZB);
        return 1;
    }
    return 0;
}

/* Rows of the walker (binary.c): the products (q - z) * M of both inputs are two 256-entry
 * int64 tables made once per run, the rounding constant 2^(n-1) folded into a's, so each
 * element is two loads, an add, the shift and the clamp: the same integers as the formula. */
typedef struct add_tabs { int64_t ta[256], tb[256]; int zp, qmin, qmax, n; } add_tabs;

static void row_add_i8(uint8_t *yb, const uint8_t *const *x, const size_t *s, uint32_t nx, size_t len,
                       const dse_ew_ctx *c) {
    (void)nx;
    const add_tabs *t = c->p;
    const int64_t *ta = t->ta, *tb = t->tb;
    const int zp = t->zp, lo = t->qmin, hi = t->qmax, sh = t->n;   /* locals: a byte store may alias *t */
    int8_t *y = (int8_t *)yb;
    const int8_t *a = (const int8_t *)x[0], *b = (const int8_t *)x[1];
    const size_t sa = s[0], sb = s[1];
#define ADD_ONE(TA, TB) ((int8_t)dse_i8_clamp(zp + (((TA) + (TB)) >> sh), lo, hi))
    if (sa == 1 && sb == 1) {
        DSE_EW_LOOP(int8_t, y, len, ADD_ONE(ta[a[i] + 128], tb[b[i] + 128]));
    } else if (sb == 0) {                             /* b constant along the row */
        const int64_t kb = tb[b[0] + 128];
        DSE_EW_LOOP(int8_t, y, len, ADD_ONE(ta[a[i * sa] + 128], kb));
    } else if (sa == 0) {
        const int64_t ka = ta[a[0] + 128];
        DSE_EW_LOOP(int8_t, y, len, ADD_ONE(ka, tb[b[i * sb] + 128]));
    } else {
        for (size_t i = 0; i < len; i++) y[i] = ADD_ONE(ta[a[i * sa] + 128], tb[b[i * sb] + 128]);
    }
#undef ADD_ONE
}

static void add_sub(const dse_model *m, const dse_node *n, uint8_t *arena, int64_t sign, const dse_ctx *cx) {
    addp p;
    dse_i8_add_params(n, &p);
    add_tabs t;
    const int64_t Mb = sign * p.Mb, half = (int64_t)1 << (p.n - 1);
    for (int q = -128; q < 128; q++) {
        t.ta[q + 128] = (int64_t)(q - p.za) * p.Ma + half;
        t.tb[q + 128] = (int64_t)(q - p.zb) * Mb;
    }
    t.zp = p.zp, t.qmin = p.qmin, t.qmax = p.qmax, t.n = p.n;
    dse_ew_ctx c = {{0, 0, 0, 0}, {0, 0}, 1, &t};
    dse__ew_walk(m, n, arena, 2, row_add_i8, &c, cx);
}

void dse_i8_add__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    add_sub(m, n, arena, 1, cx);
}

void dse_i8_sub__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    add_sub(m, n, arena, -1, cx);
}
