/* mul_i8.c: int8 Mul with numpy broadcasting, bit-exact with intref.mul_int8.
 *
 * Arithmetic (docs/quant-arith.md §6): p = (a - za) * (b - zb) in int32 (|p| <= 65025), then
 * the requantisation rule with (M, shift) of (s_a * s_b) / s_out. Broadcasting as in
 * add_i8.c (shared helpers): strides of 0 on broadcast axes, one counter per output axis.
 */
#include "requant.h"

typedef struct mulp { int za, zb, zp, qmin, qmax, n; int32_t M; } mulp;

static int mul_params(const dse_node *n, mulp *p) {
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
    if (mul_params(n, &p)) {
        DSE_WHY(why, MUL_I8_NEEDS_INT_ZA_ZB);
        return 1;
    }
    return 0;
}

void dse_i8_mul__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    const dse_tensor *y = &m->tensors[n->out[0]];
    const int8_t *a = dse__data(m, arena, n->in[0]), *b = dse__data(m, arena, n->in[1]);
    int8_t *out = dse__data(m, arena, n->out[0]);
    size_t stride[2][DSE_MAX_RANK], idx[DSE_MAX_RANK] = {0}, oa = 0, ob = 0;
    mulp p;
    mul_params(n, &p);
    dse_i8_broadcast_strides(m, n, stride);
    for (size_t i = 0; i < y->numel; i++) {
        int32_t prod = (a[oa] - p.za) * (b[ob] - p.zb);
        out[i] = dse_requant(prod, p.M, p.n, p.zp, p.qmin, p.qmax);
        for (int d = (int)y->rank - 1; d >= 0; d--) {
            oa += stride[0][d];
            ob += stride[1][d];
            if (++idx[d] < y->dims[d]) break;
            oa -= stride[0][d] * idx[d];
            ob -= stride[1][d] * idx[d];
            idx[d] = 0;
        }
    }
}
