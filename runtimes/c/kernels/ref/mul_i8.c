/* mul_i8.c: int8 Mul with numpy broadcasting, bit-exact with intref.mul_int8.
 *
 * Arithmetic (docs/quant-arith.md §6): p = (a - za) * (b - zb) in int32 (|p| <= 65025), then
 * the requantisation rule with (M, shift) of (s_a * s_b) / s_out. Broadcasting: the
 * elementwise walker of binary.c (rows with strides 0 or 1).
 */
#include "requant.h"

typedef dse_i8_mulp mulp;

int dse_i8_mul_params(const dse_node *n, dse_i8_mulp *p) {
    int64_t za = dse__attr_int(n, DSE_A_za, 1000), zb = dse__attr_int(n, DSE_A_zb, 1000), zo = dse__attr_int(n, DSE_A_zp_out, 1000);
    int64_t lo = dse__attr_int(n, DSE_A_qmin, -128), hi = dse__attr_int(n, DSE_A_qmax, 127), sh = dse__attr_int(n, DSE_A_shift, 0);
    int64_t M = dse__attr_int(n, DSE_A_M, -1);
    if (!DSE_I8_OK(za) || !DSE_I8_OK(zb) || !DSE_I8_OK(zo) || !DSE_I8_OK(lo) || !DSE_I8_OK(hi) || lo > hi ||
        sh < 1 || sh > 62 || M < 0 || M > 0x7fffffff)
        return 1;
    *p = (mulp){(int)za, (int)zb, (int)zo, (int)lo, (int)hi, (int)sh, (int32_t)M};
    return 0;
}

int dse__check_i8_mul(const dse_model *m, const dse_node *n, dse_why *why) {
    mulp p;
    if (dse_i8_check_broadcast(m, n, why)) return 1;
    if (dse_i8_mul_params(n, &p)) {
        DSE_WHY(why, MUL_I8_NEEDS_INT_ZA_ZB);
        return 1;
    }
    return 0;
}

/* A row of the walker (binary.c). Where one input is constant along a long row (a per-channel
 * scale: [N,C,H,W] x [1,C,1,1]), the row is a 256-entry table of the other input, made with
 * the same formula; else the formula per element. */
static void row_mul_i8(uint8_t *yb, const uint8_t *const *x, const size_t *s, uint32_t nx, size_t len,
                       const dse_ew_ctx *c) {
    (void)nx;
    const mulp *p = c->p;
    const int za = p->za, zb = p->zb, zp = p->zp, lo = p->qmin, hi = p->qmax, sh = p->n;   /* locals: a byte */
    const int32_t M = p->M;                                                             /* store may alias *p */
    int8_t *y = (int8_t *)yb;
    const int8_t *a = (const int8_t *)x[0], *b = (const int8_t *)x[1];
    const size_t sa = s[0], sb = s[1];
#define MUL_ONE(A, B) dse_requant(((A) - za) * ((B) - zb), M, sh, zp, lo, hi)
    if (len >= 128 && (sa == 0) != (sb == 0)) {
        int8_t lut[256];
        const int8_t *v = sa == 0 ? b : a;            /* the input that varies along the row */
        const size_t sv = sa == 0 ? sb : sa;
        const int k = sa == 0 ? a[0] : b[0];
        for (int q = -128; q < 128; q++) lut[q + 128] = sa == 0 ? MUL_ONE(k, q) : MUL_ONE(q, k);
        DSE_EW_LOOP(int8_t, y, len, lut[v[i * sv] + 128]);
        return;
    }
    if (sa == 1 && sb == 1) DSE_EW_LOOP(int8_t, y, len, MUL_ONE(a[i], b[i]));
    else for (size_t i = 0; i < len; i++) y[i] = MUL_ONE(a[i * sa], b[i * sb]);
#undef MUL_ONE
}

void dse_i8_mul__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    mulp p;
    dse_i8_mul_params(n, &p);
    dse_ew_ctx c = {{0, 0, 0, 0}, {0, 0}, 1, &p};
    dse__ew_walk(m, n, arena, 2, row_mul_i8, &c, cx);
}
