/* concat_i8.c: int8 Concat with per-input copy or requantisation, bit-exact with
 * intref.concat_int8 (docs/quant-arith.md §7).
 *
 * Input i is copied when rescale[i] = 0 (same (scale, zp) as the output), else rescaled with
 * the rule on (q - zps_in[i]): clamp(zp_out + (((int64)(q - zp_i) * M_i + 2^(n_i-1)) >> n_i)).
 * Attributes: INT axis (may be negative), zp_out; INTS zps_in, rescale, rescale_M,
 * rescale_shift (one entry per input). Without the INTS (a plain byte-moving int8 Concat)
 * every input is copied. A rescaled input goes through a 256-entry table of the rule, made
 * once per run. Layout: the output is `outer` blocks (product of the axes before
 * `axis`), each the inputs' blocks one after the other.
 */
#include "requant.h"

typedef struct catp {
    int axis, zp_out;
    int64_t zp[64], re[64], M[64], sh[64];
} catp;

static int concat_i8_read_params(const dse_model *m, const dse_node *n, catp *p) {
    const dse_tensor *y = &m->tensors[n->out[0]];
    int64_t ax = dse__attr_int(n, DSE_A_axis, 0), zo = dse__attr_int(n, DSE_A_zp_out, 0);
    if (ax < 0) ax += y->rank;
    if (ax < 0 || ax >= y->rank || !DSE_I8_OK(zo)) return 1;
    p->axis = (int)ax, p->zp_out = (int)zo;
    int a = dse__attr_ints(n, DSE_A_zps_in, p->zp, 64), b = dse__attr_ints(n, DSE_A_rescale, p->re, 64);
    int c = dse__attr_ints(n, DSE_A_rescale_M, p->M, 64), d = dse__attr_ints(n, DSE_A_rescale_shift, p->sh, 64);
    if (a < 0 && b < 0 && c < 0 && d < 0) {   /* plain copy */
        for (uint32_t i = 0; i < n->n_in; i++) p->re[i] = 0;
        return 0;
    }
    if (a != (int)n->n_in || b != a || c != a || d != a) return 1;
    for (int i = 0; i < a; i++) {
        if (p->re[i] != 0 && p->re[i] != 1) return 1;
        if (p->re[i] && (!DSE_I8_OK(p->zp[i]) || p->M[i] < 0 || p->M[i] > 0x7fffffff || p->sh[i] < 1 || p->sh[i] > 62))
            return 1;
    }
    return 0;
}

int dse__check_i8_concat(const dse_model *m, const dse_node *n, dse_why *why) {
    const dse_tensor *y = n->n_out == 1 ? dse__t(m, n->out[0]) : NULL;
    catp p;
    if (!y || y->dtype != DSE_DTYPE_INT8 || n->n_in < 1 || concat_i8_read_params(m, n, &p)) {
        DSE_WHY(why, CONCAT_I8_INT8_CONCAT_NEEDS_INT8);
        return 1;
    }
    size_t total = 0;
    for (uint32_t i = 0; i < n->n_in; i++) {
        const dse_tensor *x = dse__t(m, n->in[i]);
        if (!x || x->dtype != DSE_DTYPE_INT8 || x->rank != y->rank) goto bad;
        for (unsigned d = 0; d < y->rank; d++)
            if (d != (unsigned)p.axis && x->dims[d] != y->dims[d]) goto bad;
        total += x->dims[p.axis];
    }
    if (total == y->dims[p.axis]) return dse__concat_check_alias(m, n, (unsigned)p.axis, why);
bad:
    DSE_WHY(why, CONCAT_I8_INPUTS_INT8_OUTPUT_RANK);
    return 1;
}

void dse_i8_concat__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    const dse_tensor *y = &m->tensors[n->out[0]];
    int8_t *out = dse__data(m, arena, n->out[0]);
    catp p;
    concat_i8_read_params(m, n, &p);
    size_t outer = 1, inner = 1;
    for (int d = 0; d < p.axis; d++) outer *= y->dims[d];
    for (unsigned d = (unsigned)p.axis + 1; d < y->rank; d++) inner *= y->dims[d];
    size_t row = y->dims[p.axis] * inner, pos = 0;
    for (uint32_t i = 0; i < n->n_in; i++) {
        const int8_t *x = dse__data(m, arena, n->in[i]);
        size_t blk = m->tensors[n->in[i]].dims[p.axis] * inner;
        int8_t lut[256];                                 /* the rescale of every int8 value */
        if (p.re[i])
            for (int q = -128; q < 128; q++)
                lut[q + 128] = dse_requant(q - p.zp[i], (int32_t)p.M[i], (int)p.sh[i], p.zp_out, -128, 127);
        for (size_t o = 0; o < outer; o++) {
            int8_t *dst = out + o * row + pos;
            const int8_t *src = x + o * blk;
            if (!p.re[i]) {
                if (dst != src) memcpy(dst, src, blk);   /* src == dst: the plan placed it there */
                continue;
            }
            for (size_t e = 0; e < blk; e++) dst[e] = lut[src[e] + 128];
        }
        pos += blk;
    }
}
