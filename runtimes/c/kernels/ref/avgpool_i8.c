/* avgpool_i8.c: int8 AveragePool (1-D, 2-D, 3-D; strides, pads, ceil_mode,
 * count_include_pad), bit-exact with intref.avgpool_int8.
 *
 * Arithmetic (docs/quant-arith.md §5): acc = sum (x - zp_in) over the window's positions
 * inside the input (padding contributes 0), int32 (255 * window < 2^31, checked); no integer
 * division: the divisor of each output position ("count", onnxruntime's rule) selects one
 * requantisation multiplier from the node's table. Per axis: start = o*stride - pad_begin,
 * end = min(start + k, L + pad_end); count_include_pad = 1: end - start, else
 * min(end, L) - max(start, 0); the count is the product over the axes. The table is three
 * TENSOR attributes mult_count (ascending), mult_M, mult_shift (int32[k]); the check proves
 * that every count the geometry produces is in it, so run cannot miss.
 */
#include "requant.h"

typedef struct avgp {
    dse_i8_geom g;
    int cip, zp_in, zp_out;
    size_t nm;
    const int32_t *cnt, *M, *sh;
} avgp;

static long long avgpool_i8_out_len(long long L, long long k, long long s, long long pb, long long pe, int ceil_mode) {
    long long span = L + pb + pe - k;
    if (span < 0) return -1;
    long long o = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    if (ceil_mode && (o - 1) * s >= L + pb) o--;
    return o;
}

/* count of output position o along slot j, and the input range [lo, hi) it sums */
static long long axis_count(const avgp *p, int j, long long o, long long *lo, long long *hi) {
    const dse_i8_geom *g = &p->g;
    long long start = o * g->s[j] - g->pb[j], end = start + g->k[j];
    if (end > g->in[j] + g->pe[j]) end = g->in[j] + g->pe[j];
    *lo = start < 0 ? 0 : start;
    *hi = start + g->k[j] < g->in[j] ? start + g->k[j] : g->in[j];
    return p->cip ? end - start : (end < g->in[j] ? end : g->in[j]) - *lo;
}

static long long find_count(const avgp *p, long long c) {   /* binary search, -1 if absent */
    size_t lo = 0, hi = p->nm;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->cnt[mid] == c) return (long long)mid;
        if (p->cnt[mid] < c) lo = mid + 1; else hi = mid;
    }
    return -1;
}

static int avgpool_i8_read_params(const dse_model *m, const dse_node *n, avgp *p, dse_why *why) {
    const dse_tensor *x = &m->tensors[n->in[0]], *y = &m->tensors[n->out[0]];
    if (dse_i8_geom_read(n, x, y, NULL, &p->g, why)) return 1;
    int64_t cip = dse__attr_int(n, DSE_A_count_include_pad, 0), zi = dse__attr_int(n, DSE_A_zp_in, 1000), zo = dse__attr_int(n, DSE_A_zp_out, 1000);
    const dse_attr *a = dse__attr(n, DSE_A_mult_count, DSE_ATTR_TENSOR);
    p->nm = a ? m->tensors[a->i].numel : 0;
    p->cnt = dse_i8_tensor_attr(m, n, DSE_A_mult_count, DSE_DTYPE_INT32, p->nm);
    p->M = dse_i8_tensor_attr(m, n, DSE_A_mult_M, DSE_DTYPE_INT32, p->nm);
    p->sh = dse_i8_tensor_attr(m, n, DSE_A_mult_shift, DSE_DTYPE_INT32, p->nm);
    if ((cip != 0 && cip != 1) || !DSE_I8_OK(zi) || !DSE_I8_OK(zo) || !p->cnt || !p->M || !p->sh || !p->nm) {
        DSE_WHY(why, AVGPOOL_I8_NEEDS_COUNT_INCLUDE_PAD);
        return 1;
    }
    p->cip = (int)cip, p->zp_in = (int)zi, p->zp_out = (int)zo;
    return 0;
}

int dse__check_i8_avgpool(const dse_model *m, const dse_node *n, dse_why *why) {
    const dse_tensor *x = n->n_in == 1 ? dse__t(m, n->in[0]) : NULL, *y = n->n_out == 1 ? dse__t(m, n->out[0]) : NULL;
    if (!x || !y || x->dtype != DSE_DTYPE_INT8 || y->dtype != DSE_DTYPE_INT8 || x->rank != y->rank || x->rank < 3 ||
        y->dims[0] != x->dims[0] || y->dims[1] != x->dims[1]) {
        DSE_WHY(why, AVGPOOL_I8_INT8_AVERAGEPOOL_NEEDS_ONE);
        return 1;
    }
    avgp p;
    if (avgpool_i8_read_params(m, n, &p, why)) return 1;
    int64_t ceil_mode = dse__attr_int(n, DSE_A_ceil_mode, 0);
    long long window = 1;
    for (int j = 0; j < 3; j++) {
        window *= p.g.k[j];
        if (p.g.d[j] != 1 || window > 0x7fffffff / 255 ||
            p.g.out[j] != avgpool_i8_out_len(p.g.in[j], p.g.k[j], p.g.s[j], p.g.pb[j], p.g.pe[j], (int)ceil_mode)) {
            DSE_WHY(why, AVGPOOL_I8_OUTPUT_SIZE_DOES_NOT);
            return 1;
        }
    }
    for (size_t i = 0; i < p.nm; i++)
        if (p.cnt[i] < 1 || (i && p.cnt[i] <= p.cnt[i - 1]) || !dse_i8_mult_ok(p.M + i, p.sh + i, 1)) {
            DSE_WHY(why, AVGPOOL_I8_MULT_COUNT_1_ASCENDING);
            return 1;
        }
    long long lo, hi;
    for (long long a = 0; a < p.g.out[0]; a++)
        for (long long b = 0; b < p.g.out[1]; b++)
            for (long long c = 0; c < p.g.out[2]; c++) {
                long long cnt = axis_count(&p, 0, a, &lo, &hi) * axis_count(&p, 1, b, &lo, &hi) * axis_count(&p, 2, c, &lo, &hi);
                if (find_count(&p, cnt) < 0) {
                    DSE_WHYF(why, AVGPOOL_I8_NO_MULTIPLIER_WINDOW_COUNT, NULL, cnt, 0, 0, 0);
                    return 1;
                }
            }
    return 0;
}

void dse_i8_avgpool__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    const dse_tensor *xt = &m->tensors[n->in[0]];
    const int8_t *x = dse__data(m, arena, n->in[0]);
    int8_t *y = dse__data(m, arena, n->out[0]);
    avgp p;
    dse_why why;
    avgpool_i8_read_params(m, n, &p, &why);
    const dse_i8_geom *g = &p.g;
    const long long planes = (long long)(xt->dims[0] * xt->dims[1]), plane = g->in[0] * g->in[1] * g->in[2];
    size_t idx = 0;
    for (long long pl = 0; pl < planes; pl++) {
        const int8_t *xp = x + pl * plane;
        for (long long a = 0; a < g->out[0]; a++) {
            long long d0, d1, h0, h1, w0, w1;
            long long ca = axis_count(&p, 0, a, &d0, &d1);
            for (long long b = 0; b < g->out[1]; b++) {
                long long cb = ca * axis_count(&p, 1, b, &h0, &h1);
                for (long long c = 0; c < g->out[2]; c++, idx++) {
                    long long k = find_count(&p, cb * axis_count(&p, 2, c, &w0, &w1));
                    int32_t acc = 0;
                    for (long long id = d0; id < d1; id++)
                        for (long long ih = h0; ih < h1; ih++) {
                            const int8_t *row = xp + (id * g->in[1] + ih) * g->in[2];
                            for (long long iw = w0; iw < w1; iw++) acc += row[iw] - p.zp_in;
                        }
                    y[idx] = dse_requant(acc, p.M[k], p.sh[k], p.zp_out, -128, 127);
                }
            }
        }
    }
}
