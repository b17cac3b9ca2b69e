/* maxpool_i8.c: int8 MaxPool (1-D, 2-D, 3-D; strides, pads, dilations, ceil_mode) and
 * GlobalMaxPool, bit-exact with intref.maxpool_int8. Byte-moving: the output shares the
 * input's (scale, zp). Padding is -128, not zp (docs/quant-arith.md §7): a tap outside the
 * input (padding, or past the end with ceil_mode) contributes -128, i.e. the maximum starts
 * at -128 and only taps inside the input are read. Output length per axis as ONNX:
 * floor or ceil((L + pb + pe - ((k-1)*d+1)) / s) + 1, with ceil_mode minus one when the last
 * window would start at or beyond L + pb. The Indices output is not supported.
 */
#include "requant.h"

static long long maxpool_i8_out_len(const dse_i8_geom *g, int j, int ceil_mode) {
    long long span = g->in[j] + g->pb[j] + g->pe[j] - ((g->k[j] - 1) * g->d[j] + 1);
    if (span < 0) return -1;
    long long o = (ceil_mode ? (span + g->s[j] - 1) / g->s[j] : span / g->s[j]) + 1;
    if (ceil_mode && (o - 1) * g->s[j] >= g->in[j] + g->pb[j]) o--;
    return o;
}

static int check_io(const dse_model *m, const dse_node *n, const dse_tensor **x, const dse_tensor **y) {
    *x = n->n_in == 1 ? dse__t(m, n->in[0]) : NULL;
    *y = n->n_out >= 1 ? dse__t(m, n->out[0]) : NULL;
    for (uint32_t k = 1; k < n->n_out; k++)
        if (n->out[k] != DSE_NONE) return 1;
    return !*x || !*y || (*x)->dtype != DSE_DTYPE_INT8 || (*y)->dtype != DSE_DTYPE_INT8 || (*x)->rank != (*y)->rank ||
           (*x)->rank < 3 || (*y)->dims[0] != (*x)->dims[0] || (*y)->dims[1] != (*x)->dims[1];
}

int dse_i8_maxpool_check(const dse_model *m, const dse_node *n, dse_why *why) {   /* (shared with the AVX2 variant) */
    const dse_tensor *x, *y;
    dse_i8_geom g;
    if (check_io(m, n, &x, &y)) {
        DSE_WHY(why, MAXPOOL_I8_INT8_MAXPOOL_NEEDS_ONE);
        return 1;
    }
    if (dse_i8_geom_read(n, x, y, NULL, &g, why)) return 1;
    int64_t ceil_mode = dse__attr_int(n, DSE_A_ceil_mode, 0);
    for (int j = 0; j < 3; j++)
        if (g.out[j] != maxpool_i8_out_len(&g, j, (int)ceil_mode)) {
            DSE_WHY(why, MAXPOOL_I8_OUTPUT_SIZE_DOES_NOT);
            return 1;
        }
    return 0;
}

int dse__check_i8_maxpool(const dse_model *m, const dse_node *n, dse_why *why) {
    return dse_i8_maxpool_check(m, n, why);
}

/* 1-D and 2-D pooling by rows (the maximum is exact, so its order is free): for each output
 * row, the element-wise maximum of the input rows its windows cover (inside the input) goes
 * to a stack row, whose windows then give the output row; a window's taps outside the input
 * are skipped, and an all-outside window stays -128, as in the general loop below. */
#define MP_ROW 4096
static void maxpool_rows(const dse_i8_geom *g, long long planes, const int8_t *x, int8_t *y) {
    const long long H = g->in[1], W = g->in[2], OH = g->out[1], OW = g->out[2];
    const long long K = g->k[2], S = g->s[2], D = g->d[2], P = g->pb[2];
    /* the output columns whose windows lie inside the row: [lo, hi) */
    long long lo = (P + S - 1) / S, hi = W - (K - 1) * D - 1 + P < 0 ? 0 : (W - (K - 1) * D - 1 + P) / S + 1;
    if (hi > OW) hi = OW;
    if (lo > hi) lo = hi;
    int8_t vmax[MP_ROW];
    for (long long pl = 0; pl < planes; pl++) {
        const int8_t *xp = x + pl * H * W;
        for (long long oh = 0; oh < OH; oh++, y += OW) {
            int first = 1;
            int64_t k0, k1;   /* the kernel rows inside the input */
            dse__tap_range(oh * g->s[1] - g->pb[1], g->k[1], g->d[1], 0, H, &k0, &k1);
            for (long long kb = k0; kb < k1; kb++) {
                const long long ih = oh * g->s[1] + kb * g->d[1] - g->pb[1];
                const int8_t *row = xp + ih * W;
                if (first) memcpy(vmax, row, (size_t)W);
                else DSE_EW_LOOP(int8_t, vmax, (size_t)W, row[i] > vmax[i] ? row[i] : vmax[i]);
                first = 0;
            }
            if (first) {                                  /* no input row: every window is padding */
                memset(y, -128, (size_t)OW);
                continue;
            }
            for (long long ow = 0; ow < OW; ow++) {
                if (ow == lo && S == 1 && hi > lo) {      /* the inside columns, one tap at a time */
                    const int8_t *v0 = vmax + lo - P;
                    int8_t *yo = y + lo;
                    memcpy(yo, v0, (size_t)(hi - lo));
                    for (long long kc = 1; kc < K; kc++) {
                        const int8_t *vk = v0 + kc * D;
                        DSE_EW_LOOP(int8_t, yo, (size_t)(hi - lo), vk[i] > yo[i] ? vk[i] : yo[i]);
                    }
                    ow = hi - 1;
                    continue;
                }
                const long long w0 = ow * S - P;
                int v = -128;
                int64_t c0, c1;
                dse__tap_range(w0, K, D, 0, W, &c0, &c1);
                for (long long kc = c0; kc < c1; kc++) {
                    const long long iw = w0 + kc * D;
                    if (vmax[iw] > v) v = vmax[iw];
                }
                y[ow] = (int8_t)v;
            }
        }
    }
}

void dse_i8_maxpool__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    const dse_tensor *xt = &m->tensors[n->in[0]], *yt = &m->tensors[n->out[0]];
    const int8_t *x = dse__data(m, arena, n->in[0]);
    int8_t *y = dse__data(m, arena, n->out[0]);
    dse_i8_geom g;
    dse_why why;
    dse_i8_geom_read(n, xt, yt, NULL, &g, &why);
    const long long planes = (long long)(xt->dims[0] * xt->dims[1]), plane = g.in[0] * g.in[1] * g.in[2];
    if (g.in[0] == 1 && g.out[0] == 1 && g.k[0] == 1 && g.pb[0] == 0 && g.in[2] <= MP_ROW) {
        maxpool_rows(&g, planes, x, y);
        return;
    }
    size_t idx = 0;
    for (long long pl = 0; pl < planes; pl++) {
        const int8_t *xp = x + pl * plane;
        for (long long a = 0; a < g.out[0]; a++)
            for (long long b = 0; b < g.out[1]; b++)
                for (long long c = 0; c < g.out[2]; c++, idx++) {
                    int v = -128;
                    const long long o3[3] = {a, b, c};
                    int64_t t0[3], t1[3];   /* the taps inside the input, per axis */
                    for (int j = 0; j < 3; j++)
                        dse__tap_range(o3[j] * g.s[j] - g.pb[j], g.k[j], g.d[j], 0, g.in[j], &t0[j], &t1[j]);
                    for (long long ka = t0[0]; ka < t1[0]; ka++) {
                        long long id = a * g.s[0] + ka * g.d[0] - g.pb[0];
                        for (long long kb = t0[1]; kb < t1[1]; kb++) {
                            long long ih = b * g.s[1] + kb * g.d[1] - g.pb[1];
                            const int8_t *row = xp + (id * g.in[1] + ih) * g.in[2];
                            for (long long kc = t0[2]; kc < t1[2]; kc++) {
                                long long iw = c * g.s[2] + kc * g.d[2] - g.pb[2];
                                if (row[iw] > v) v = row[iw];
                            }
                        }
                    }
                    y[idx] = (int8_t)v;
                }
    }
}

/* GlobalMaxPool: the maximum of each (N, C) plane; output (N, C, 1, ...). */
int dse__check_i8_global_maxpool(const dse_model *m, const dse_node *n, dse_why *why) {
    const dse_tensor *x, *y;
    int bad = check_io(m, n, &x, &y);
    for (unsigned d = 2; !bad && d < y->rank; d++) bad = y->dims[d] != 1 || x->dims[d] == 0;
    if (bad) {
        DSE_WHY(why, MAXPOOL_I8_INT8_GLOBALMAXPOOL_NEEDS_INT8);
        return 1;
    }
    return 0;
}

void dse_i8_global_maxpool__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    const dse_tensor *xt = &m->tensors[n->in[0]];
    const int8_t *x = dse__data(m, arena, n->in[0]);
    int8_t *y = dse__data(m, arena, n->out[0]);
    size_t planes = xt->dims[0] * xt->dims[1], plane = planes ? xt->numel / planes : 0;
    for (size_t p = 0; p < planes; p++) {
        int8_t v = -128;
        for (size_t i = 0; i < plane; i++) v = x[p * plane + i] > v ? x[p * plane + i] : v;
        y[p] = v;
    }
}
