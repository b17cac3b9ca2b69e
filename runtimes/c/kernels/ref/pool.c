/* pool.c: fp32 MaxPool (optional int64 Indices output, storage_order 0/1), AveragePool
 * (count_include_pad, ceil_mode, dilations), GlobalAveragePool, GlobalMaxPool; 1 to 3 spatial
 * axes, normalised to (D, H, W) as in conv.c.
 *
 * Window geometry (attributes explicit per docs/kernels.md): on each axis the padded span is
 * span = in + pad_begin + pad_end - ((k - 1) * dilation + 1); out = floor(span / stride) + 1,
 * or with ceil_mode ceil(span / stride) + 1, minus one when that last window would start in
 * the end padding; `check` verifies the output tensor has that size.
 *
 * MaxPool: the first maximum in row-major window order (strict >), taps outside the input
 * skipped; Indices is the flat input index (storage_order 0: row-major N,C,D,H,W; 1: the
 * spatial index is column-major). Exact, so identical to numpy.
 * AveragePool: the window sum is taken as numpy's reference does (separable, last axis
 * innermost): for kd: { for kh: { row = x[kw=0]; for kw >= 1: row = row + x[kw] }; plane =
 * plane + row (first row: plane = row) }; total likewise over kd; taps in padding or beyond
 * the input count as 0 (only the taps inside are visited, dse__tap_range: a +0.0 tap changes a
 * sum only from -0.0 to +0.0, so a window with padding taps ends with + 0.0f). Then
 * y = total / count, count = product over axes of the taps inside [0, in)
 * (count_include_pad=0) or inside [-pad_begin, in + pad_end) (=1). Bit-identical to the numpy
 * reference.
 * GlobalAveragePool: sequential sum over the spatial elements in memory order, then / count
 * (numpy's mean sums pairwise: ~1e-6 relative). GlobalMaxPool: exact (NaN propagates). */
#include <math.h>   /* INFINITY only */

#include "internal.h"

typedef struct pool_geom {
    size_t NC, in[3], out[3];
    int64_t k[3], s[3], d[3], pb[3], pe[3];
} pool_geom;

static int pool_mkgeom(const dse_model *m, const dse_node *n, pool_geom *g, dse_why *why) {
    const dse_tensor *x = n->n_in == 1 ? dse__t(m, n->in[0]) : NULL, *y = dse__t(m, n->out[0]);
    if (!x || !y || x->dtype != DSE_DTYPE_FLOAT32 || y->dtype != DSE_DTYPE_FLOAT32 || x->rank < 3 || x->rank > 5 ||
        y->rank != x->rank || y->dims[0] != x->dims[0] || y->dims[1] != x->dims[1]) {
        DSE_WHY(why, POOL_NEEDS_ONE_FLOAT32_INPUT);
        return 1;
    }
    size_t nd = x->rank - 2, o = 3 - nd;
    if (dse__nn_spatial(n, nd, NULL, g->k, g->s, g->d, g->pb, g->pe)) {
        DSE_WHY(why, POOL_KERNEL_SHAPE_STRIDES_DILATIONS);
        return 1;
    }
    const int ceil_mode = dse__attr_int(n, DSE_A_ceil_mode, 0) != 0;
    g->NC = x->dims[0] * x->dims[1];
    for (int i = 0; i < 3; i++) {
        g->in[i] = (size_t)i < o ? 1 : x->dims[2 + i - o];
        g->out[i] = (size_t)i < o ? 1 : y->dims[2 + i - o];
        int64_t span = (int64_t)g->in[i] + g->pb[i] + g->pe[i] - ((g->k[i] - 1) * g->d[i] + 1), want = -1;
        if (span >= 0) {
            if (ceil_mode) {
                want = (span + g->s[i] - 1) / g->s[i] + 1;
                if ((want - 1) * g->s[i] >= (int64_t)g->in[i] + g->pb[i]) want--;
            } else {
                want = span / g->s[i] + 1;
            }
        }
        if ((int64_t)g->out[i] != want) {
            DSE_WHYF(why, CONV_SPATIAL_AXIS_OUTPUT_BUT, NULL, i - (int)o, g->out[i], want, 0);
            return 1;
        }
    }
    return 0;
}

int dse__check_maxpool_f32(const dse_model *m, const dse_node *n, dse_why *why) { return dse__maxpool_f32_valid(m, n, why); }

int dse__maxpool_f32_valid(const dse_model *m, const dse_node *n, dse_why *why) {
    pool_geom g;
    if (n->n_out < 1 || n->n_out > 2) { DSE_WHY(why, POOL_MAXPOOL_HAS_1_2); return 1; }
    if (pool_mkgeom(m, n, &g, why)) return 1;
    const dse_tensor *y = dse__t(m, n->out[0]), *ix = n->n_out == 2 ? dse__t(m, n->out[1]) : NULL;
    if (ix && (ix->dtype != DSE_DTYPE_INT64 || ix->rank != y->rank || memcmp(ix->dims, y->dims, y->rank * sizeof y->dims[0]))) {
        DSE_WHY(why, POOL_INDICES_INT64_OUTPUT_SHAPE);
        return 1;
    }
    int64_t so = dse__attr_int(n, DSE_A_storage_order, 0);
    if (so != 0 && so != 1) { DSE_WHY(why, POOL_STORAGE_ORDER_0_1); return 1; }
    return 0;
}

int dse__check_avgpool_f32(const dse_model *m, const dse_node *n, dse_why *why) { return dse__avgpool_f32_valid(m, n, why); }

int dse__avgpool_f32_valid(const dse_model *m, const dse_node *n, dse_why *why) {
    pool_geom g;
    if (n->n_out != 1) { DSE_WHY(why, POOL_AVERAGEPOOL_HAS_ONE_OUTPUT); return 1; }
    return pool_mkgeom(m, n, &g, why);
}

void dse_f32_maxpool__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    pool_geom g;
    dse_why why;
    pool_mkgeom(m, n, &g, &why);
    const float *x = dse__data(m, arena, n->in[0]);
    float *y = dse__data(m, arena, n->out[0]);
    int64_t *yi = n->n_out == 2 && n->out[1] != DSE_NONE ? dse__data(m, arena, n->out[1]) : NULL;
    const int col = dse__attr_int(n, DSE_A_storage_order, 0) == 1;
    const size_t isz = g.in[0] * g.in[1] * g.in[2], osz = g.out[0] * g.out[1] * g.out[2];
    for (size_t c = 0; c < g.NC; c++) {
        const float *xc = x + c * isz;
        for (size_t od = 0; od < g.out[0]; od++)
            for (size_t oh = 0; oh < g.out[1]; oh++)
                for (size_t ow = 0; ow < g.out[2]; ow++) {
                    float best = -INFINITY;
                    int64_t bd = -1, bh = 0, bw = 0;
                    const int64_t o3[3] = {(int64_t)od, (int64_t)oh, (int64_t)ow};
                    int64_t t0[3], t1[3];   /* the taps inside the input, per axis (others are skipped) */
                    for (int a = 0; a < 3; a++)
                        dse__tap_range(o3[a] * g.s[a] - g.pb[a], g.k[a], g.d[a], 0, (int64_t)g.in[a], &t0[a], &t1[a]);
                    for (int64_t kd = t0[0]; kd < t1[0]; kd++) {
                        const int64_t id = o3[0] * g.s[0] - g.pb[0] + kd * g.d[0];
                        for (int64_t kh = t0[1]; kh < t1[1]; kh++) {
                            const int64_t ih = o3[1] * g.s[1] - g.pb[1] + kh * g.d[1];
                            const float *xr = xc + ((size_t)id * g.in[1] + (size_t)ih) * g.in[2];
                            for (int64_t kw = t0[2]; kw < t1[2]; kw++) {
                                const int64_t iw = o3[2] * g.s[2] - g.pb[2] + kw * g.d[2];
                                if (bd < 0 || xr[iw] > best) { best = xr[iw]; bd = id; bh = ih; bw = iw; }
                            }
                        }
                    }
                    const size_t oi = c * osz + (od * g.out[1] + oh) * g.out[2] + ow;
                    y[oi] = best;
                    if (yi) {
                        if (bd < 0) bd = 0;
                        const int64_t sp = col ? (bw * (int64_t)g.in[1] + bh) * (int64_t)g.in[0] + bd
                                               : (bd * (int64_t)g.in[1] + bh) * (int64_t)g.in[2] + bw;
                        yi[oi] = (int64_t)(c * isz) + sp;
                    }
                }
    }
}

void dse_f32_avgpool__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    pool_geom g;
    dse_why why;
    pool_mkgeom(m, n, &g, &why);
    const int incl = dse__attr_int(n, DSE_A_count_include_pad, 0) != 0;
    const float *x = dse__data(m, arena, n->in[0]);
    float *y = dse__data(m, arena, n->out[0]);
    const size_t isz = g.in[0] * g.in[1] * g.in[2], osz = g.out[0] * g.out[1] * g.out[2];
    for (size_t c = 0; c < g.NC; c++) {
        const float *xc = x + c * isz;
        for (size_t od = 0; od < g.out[0]; od++)
            for (size_t oh = 0; oh < g.out[1]; oh++)
                for (size_t ow = 0; ow < g.out[2]; ow++) {
                    const int64_t o3[3] = {(int64_t)od, (int64_t)oh, (int64_t)ow};
                    int64_t cnt = 1, t0[3], t1[3], c0, c1;
                    int pad = 0;   /* the window has taps outside the input */
                    for (int a = 0; a < 3; a++) {
                        const int64_t base = o3[a] * g.s[a] - g.pb[a];
                        dse__tap_range(base, g.k[a], g.d[a], 0, (int64_t)g.in[a], &t0[a], &t1[a]);
                        pad |= t1[a] - t0[a] < g.k[a];
                        if (incl) dse__tap_range(base, g.k[a], g.d[a], -g.pb[a], (int64_t)g.in[a] + g.pe[a], &c0, &c1);
                        else c0 = t0[a], c1 = t1[a];
                        cnt *= c1 - c0;
                    }
                    /* The sums over the taps inside only, in the same nesting and order: a padding
                     * tap's +0.0 changes a partial sum only when that is -0.0, so it changes the
                     * window's sum only from -0.0 to +0.0 (a sum is -0.0 only when every term is),
                     * which the final + 0.0f does. */
                    float total = 0.0f;
                    for (int64_t kd = t0[0]; kd < t1[0]; kd++) {
                        const int64_t id = o3[0] * g.s[0] - g.pb[0] + kd * g.d[0];
                        float plane = 0.0f;
                        for (int64_t kh = t0[1]; kh < t1[1]; kh++) {
                            const int64_t ih = o3[1] * g.s[1] - g.pb[1] + kh * g.d[1];
                            const float *xr = xc + ((size_t)id * g.in[1] + (size_t)ih) * g.in[2];
                            float row = 0.0f;
                            for (int64_t kw = t0[2]; kw < t1[2]; kw++) {
                                const float v = xr[o3[2] * g.s[2] - g.pb[2] + kw * g.d[2]];
                                row = kw == t0[2] ? v : row + v;
                            }
                            plane = kh == t0[1] ? row : plane + row;
                        }
                        total = kd == t0[0] ? plane : total + plane;
                    }
                    if (pad) total = total + 0.0f;
                    y[c * osz + (od * g.out[1] + oh) * g.out[2] + ow] = total / (float)cnt;
                }
    }
}

static int check_global(const dse_model *m, const dse_node *n, dse_why *why) {
    const dse_tensor *x = n->n_in == 1 ? dse__t(m, n->in[0]) : NULL, *y = dse__t(m, n->out[0]);
    int ok = x && y && n->n_out == 1 && x->dtype == DSE_DTYPE_FLOAT32 && y->dtype == DSE_DTYPE_FLOAT32 && x->rank >= 2 &&
             y->rank == x->rank && y->dims[0] == x->dims[0] && y->dims[1] == x->dims[1] && x->numel > 0;
    for (unsigned d = 2; ok && d < y->rank; d++) ok = y->dims[d] == 1;
    if (!ok) { DSE_WHY(why, POOL_NEEDS_FLOAT32_INPUT_N); return 1; }
    return 0;
}
int dse__check_global_pool_f32(const dse_model *m, const dse_node *n, dse_why *why) { return check_global(m, n, why); }

void dse_f32_global_avgpool__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    const dse_tensor *xt = &m->tensors[n->in[0]];
    const size_t nc = xt->dims[0] * xt->dims[1], sp = xt->numel / nc;
    const float *x = dse__data(m, arena, n->in[0]);
    float *y = dse__data(m, arena, n->out[0]);
    size_t c = 0;
    for (; c + 4 <= nc; c += 4) {             /* four channels side by side: independent sums */
        const float *x0 = x + c * sp, *x1 = x0 + sp, *x2 = x1 + sp, *x3 = x2 + sp;
        float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
        for (size_t i = 0; i < sp; i++) a0 = a0 + x0[i], a1 = a1 + x1[i], a2 = a2 + x2[i], a3 = a3 + x3[i];
        y[c] = a0 / (float)sp, y[c + 1] = a1 / (float)sp, y[c + 2] = a2 / (float)sp, y[c + 3] = a3 / (float)sp;
    }
    for (; c < nc; c++) {
        float acc = 0.0f;
        for (size_t i = 0; i < sp; i++) acc = acc + x[c * sp + i];
        y[c] = acc / (float)sp;
    }
}

void dse_f32_global_maxpool__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    const dse_tensor *xt = &m->tensors[n->in[0]];
    const size_t nc = xt->dims[0] * xt->dims[1], sp = xt->numel / nc;
    const float *x = dse__data(m, arena, n->in[0]);
    float *y = dse__data(m, arena, n->out[0]);
    for (size_t c = 0; c < nc; c++) {
        float best = x[c * sp];
        for (size_t i = 1; i < sp; i++) { const float v = x[c * sp + i]; if (!(v <= best)) best = v; }
        y[c] = best;
    }
}
