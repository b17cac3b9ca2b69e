/* add_i8.c: int8 Add and Sub with numpy broadcasting, bit-exact with intref.add_int8 /
 * sub_int8, and the broadcasting helpers shared with int8 Mul.
 *
 * Arithmetic (docs/quant-arith.md §6): one shared shift n for both terms and one rounding,
 *     t = (a - za) * Ma  ±  (b - zb) * Mb          (int64, |t| < 2^40)
 *     y = clamp(zp_out + ((t + 2^(n-1)) >> n), qmin, qmax)
 * Broadcasting: each input is aligned to the output's trailing axes, a broadcast axis gets
 * stride 0, and the output is walked in row-major order with one index counter per axis.
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

void dse_i8_broadcast_strides(const dse_model *m, const dse_node *n, size_t stride[2][DSE_MAX_RANK]) {
    const dse_tensor *y = &m->tensors[n->out[0]];
    for (int k = 0; k < 2; k++) {
        const dse_tensor *x = &m->tensors[n->in[k]];
        size_t s = 1;
        for (unsigned d = 0; d < y->rank; d++) stride[k][d] = 0;
        for (int d = (int)x->rank - 1; d >= 0; d--) {
            stride[k][y->rank - x->rank + (unsigned)d] = x->dims[d] == 1 ? 0 : s;
            s *= x->dims[d];
        }
    }
}

typedef struct addp { int za, zb, zp, qmin, qmax, n; int64_t Ma, Mb; } addp;

static int add_params(const dse_node *n, addp *p) {
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
    if (add_params(n, &p)) {
        DSE_WHY(why, ADD_I8_NEEDS_INT_ZA_ZB);
        return 1;
    }
    return 0;
}

static void add_sub(const dse_model *m, const dse_node *n, uint8_t *arena, int64_t sign) {
    const dse_tensor *y = &m->tensors[n->out[0]];
    const int8_t *a = dse__data(m, arena, n->in[0]), *b = dse__data(m, arena, n->in[1]);
    int8_t *out = dse__data(m, arena, n->out[0]);
    size_t stride[2][DSE_MAX_RANK], idx[DSE_MAX_RANK] = {0}, oa = 0, ob = 0;
    addp p;
    add_params(n, &p);
    const int64_t Mb = sign * p.Mb;
    dse_i8_broadcast_strides(m, n, stride);
    for (size_t i = 0; i < y->numel; i++) {
        int64_t t = (int64_t)(a[oa] - p.za) * p.Ma + (int64_t)(b[ob] - p.zb) * Mb;
        out[i] = dse_i8_clamp(p.zp + dse_i8_round_shift(t, p.n), p.qmin, p.qmax);
        for (int d = (int)y->rank - 1; d >= 0; d--) {   /* advance the counter, carry left */
            oa += stride[0][d];
            ob += stride[1][d];
            if (++idx[d] < y->dims[d]) break;
            oa -= stride[0][d] * idx[d];
            ob -= stride[1][d] * idx[d];
            idx[d] = 0;
        }
    }
}

void dse_i8_add__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    add_sub(m, n, arena, 1);
}

void dse_i8_sub__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    add_sub(m, n, arena, -1);
}
