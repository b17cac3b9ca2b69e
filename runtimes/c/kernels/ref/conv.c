/* conv.c: fp32 Conv (1-D, 2-D and 3-D; groups, depthwise, strides, dilations, explicit pads;
 * float16 weights widened exactly; fused clamp `act_min`/`act_max`), and the small helpers the
 * other float NN kernels share (fp16 widening, spatial-attribute reading).
 *
 * Layout N C [D] [H] W; weights M C/group kD kH kW; optional bias [M]. Spatial axes are
 * normalised to three (D, H, W) by prepending axes of size 1 (kernel 1, stride 1, no pad), so
 * one loop nest serves every rank. The attributes come from docs/kernels.md: `kernel_shape`,
 * `strides`, `pads` (all begins then all ends), `dilations`, `group` are always present.
 *
 * Reduction order (the same on every target, -ffp-contract=off): for each output element,
 *     acc = 0; for c in [0, C/group): for kd: for kh: for kw: if the tap is inside the input
 *         acc = acc + x * w          (taps in the zero padding are skipped)
 *     y = acc + bias[m];  y = min(max(y, act_min), act_max)
 * i.e. one sequential float32 sum over K = C/group * kD*kH*kW in weight order, then the
 * bias. numpy's reference sums with BLAS (another order): they agree to ~1e-6 relative. */
#include <math.h>   /* INFINITY only */

#include "internal.h"

/* IEEE binary16 -> binary32, exact (every half is a float). */
float dse__nn_half(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1f, f = h & 0x3ffu, bits;
    if (e == 0x1f) bits = sign | 0x7f800000u | (f << 13);                 /* inf / NaN */
    else if (e) bits = sign | ((e + 112u) << 23) | (f << 13);              /* normal */
    else if (!f) bits = sign;                                              /* +-0 */
    else {                                                                 /* subnormal: normalise */
        e = 113;
        while (!(f & 0x400u)) { f <<= 1; e--; }
        bits = sign | (e << 23) | ((f & 0x3ffu) << 13);
    }
    float v;
    memcpy(&v, &bits, 4);
    return v;
}

/* Element i of a float32 or float16 tensor's data, as float32. */
float dse__nn_ld(const dse_tensor *t, const void *p, size_t i) {
    if (t->dtype == DSE_DTYPE_FLOAT16) return dse__nn_half(((const uint16_t *)p)[i]);
    return ((const float *)p)[i];
}

/* Reads kernel_shape/strides/dilations/pads for `nd` (1..3) spatial axes into arrays of three
 * (D, H, W; leading unused axes get kernel 1, stride 1, dilation 1, pad 0). kernel_shape may
 * be absent when `k_from` (the weight's spatial dims) is given. Returns 0 or non-zero if an
 * attribute is missing, has the wrong length or an out-of-range value. */
int dse__nn_spatial(const dse_node *n, size_t nd, const size_t *k_from, int64_t k[3], int64_t s[3], int64_t d[3],
                    int64_t pb[3], int64_t pe[3]) {
    int64_t a[6];
    if (nd < 1 || nd > 3) return 1;
    size_t o = 3 - nd;
    for (int i = 0; i < 3; i++) k[i] = s[i] = d[i] = 1, pb[i] = pe[i] = 0;
    int c = dse__attr_ints(n, "kernel_shape", a, 6);
    if (c < 0 && k_from) { for (size_t i = 0; i < nd; i++) a[i] = (int64_t)k_from[i]; c = (int)nd; }
    if (c != (int)nd) return 1;
    for (size_t i = 0; i < nd; i++) { if (a[i] < 1 || (k_from && (size_t)a[i] != k_from[i])) return 1; k[o + i] = a[i]; }
    if ((c = dse__attr_ints(n, "strides", a, 6)) >= 0) {
        if (c != (int)nd) return 1;
        for (size_t i = 0; i < nd; i++) { if (a[i] < 1 || a[i] > 0x7fffffff) return 1; s[o + i] = a[i]; }
    }
    if ((c = dse__attr_ints(n, "dilations", a, 6)) >= 0) {
        if (c != (int)nd) return 1;
        for (size_t i = 0; i < nd; i++) { if (a[i] < 1 || a[i] > 0x7fffffff) return 1; d[o + i] = a[i]; }
    }
    if ((c = dse__attr_ints(n, "pads", a, 6)) >= 0) {
        if (c != 2 * (int)nd) return 1;
        for (size_t i = 0; i < 2 * nd; i++) if (a[i] < 0 || a[i] > 0x7fffffff) return 1;
        for (size_t i = 0; i < nd; i++) { pb[o + i] = a[i]; pe[o + i] = a[nd + i]; }
    }
    if (k[0] > 0x7fffffff || k[1] > 0x7fffffff || k[2] > 0x7fffffff) return 1;
    return 0;
}

/* Fused clamp: returns 1 and the bounds when `act_min` or `act_max` is present. */
int dse__nn_act(const dse_node *n, float *lo, float *hi) {
    const dse_attr *a = dse__attr(n, "act_min", DSE_ATTR_FLOAT), *b = dse__attr(n, "act_max", DSE_ATTR_FLOAT);
    *lo = a ? a->f : -INFINITY;
    *hi = b ? b->f : INFINITY;
    return a || b;
}

static int is_f(const dse_tensor *t) { return t && t->dtype == DSE_DTYPE_FLOAT32; }
static int is_fh(const dse_tensor *t) { return t && (t->dtype == DSE_DTYPE_FLOAT32 || t->dtype == DSE_DTYPE_FLOAT16); }

typedef struct conv_geom {
    size_t N, C, M, G, in[3], out[3];
    int64_t k[3], s[3], d[3], pb[3], pe[3];
} conv_geom;

static int conv_geom_read(const dse_model *m, const dse_node *n, conv_geom *g, char *msg, size_t cap) {
    const dse_tensor *x = n->n_in >= 2 ? dse__t(m, n->in[0]) : NULL, *w = n->n_in >= 2 ? dse__t(m, n->in[1]) : NULL;
    const dse_tensor *b = n->n_in >= 3 ? dse__t(m, n->in[2]) : NULL, *y = dse__t(m, n->out[0]);
    if (n->n_in < 2 || n->n_in > 3 || n->n_out != 1 || !is_f(x) || !is_fh(w) || !is_f(y) || (n->n_in == 3 && n->in[2] != DSE_NONE && !is_fh(b)) ||
        x->rank < 3 || x->rank > 5 || w->rank != x->rank || y->rank != x->rank) {
        snprintf(msg, cap, "Conv needs float32 x (N,C,spatial 1-3 axes), float32/float16 w of the same rank, optional bias, float32 y");
        return 1;
    }
    size_t nd = x->rank - 2, o = 3 - nd;
    int64_t grp = dse__attr_int(n, "group", 1);
    g->N = x->dims[0]; g->C = x->dims[1]; g->M = w->dims[0];
    if (grp < 1 || g->C % (size_t)grp || g->M % (size_t)grp || w->dims[1] * (size_t)grp != g->C) {
        snprintf(msg, cap, "group %lld does not fit %zu input channels and weight shape", (long long)grp, g->C);
        return 1;
    }
    g->G = (size_t)grp;
    if (dse__nn_spatial(n, nd, w->dims + 2, g->k, g->s, g->d, g->pb, g->pe)) {
        snprintf(msg, cap, "kernel_shape/strides/dilations/pads missing, of the wrong length or not matching the weight");
        return 1;
    }
    if (b && b->numel != g->M) { snprintf(msg, cap, "bias has %zu elements, expected %zu", b->numel, g->M); return 1; }
    if (y->dims[0] != g->N || y->dims[1] != g->M) { snprintf(msg, cap, "output shape does not match (N, M)"); return 1; }
    for (int i = 0; i < 3; i++) {
        g->in[i] = (size_t)i < o ? 1 : x->dims[2 + i - o];
        size_t want = 0;
        int64_t span = (int64_t)g->in[i] + g->pb[i] + g->pe[i] - ((g->k[i] - 1) * g->d[i] + 1);
        if (span >= 0) want = (size_t)(span / g->s[i]) + 1;
        g->out[i] = (size_t)i < o ? 1 : y->dims[2 + i - o];
        if (span < 0 || g->out[i] != want) {
            snprintf(msg, cap, "spatial axis %d: output %zu, but the geometry gives %zu", i - (int)o, g->out[i], want);
            return 1;
        }
    }
    return 0;
}

int dse__check_conv_f32(const dse_model *m, const dse_node *n, char *msg, size_t cap) {
    conv_geom g;
    return conv_geom_read(m, n, &g, msg, cap);
}

void dse_f32_conv__ref(const dse_model *m, const dse_node *n, uint8_t *arena, uint8_t *scratch) {
    (void)scratch;
    conv_geom g;
    char msg[8];
    conv_geom_read(m, n, &g, msg, sizeof msg);   /* validated at load */
    const dse_tensor *wt = &m->tensors[n->in[1]];
    const dse_tensor *bt = n->n_in == 3 ? dse__t(m, n->in[2]) : NULL;
    const float *x = dse__data(m, arena, n->in[0]);
    const void *w = dse__data(m, arena, n->in[1]);
    const void *b = bt ? dse__data(m, arena, n->in[2]) : NULL;
    float *y = dse__data(m, arena, n->out[0]);
    float lo, hi;
    int act = dse__nn_act(n, &lo, &hi);
    int w16 = wt->dtype == DSE_DTYPE_FLOAT16;
    const size_t cg = g.C / g.G, mg = g.M / g.G;
    const size_t isz = g.in[0] * g.in[1] * g.in[2], osz = g.out[0] * g.out[1] * g.out[2];
    const size_t ksz = (size_t)(g.k[0] * g.k[1] * g.k[2]);
    for (size_t bi = 0; bi < g.N; bi++)
        for (size_t oc = 0; oc < g.M; oc++) {
            const float *xg = x + (bi * g.C + oc / mg * cg) * isz;
            const size_t wbase = oc * cg * ksz;
            const float bias = b ? dse__nn_ld(bt, b, oc) : 0.0f;
            float *yo = y + (bi * g.M + oc) * osz;
            for (size_t od = 0; od < g.out[0]; od++)
                for (size_t oh = 0; oh < g.out[1]; oh++)
                    for (size_t ow = 0; ow < g.out[2]; ow++) {
                        float acc = 0.0f;
                        const int64_t d0 = (int64_t)od * g.s[0] - g.pb[0], h0 = (int64_t)oh * g.s[1] - g.pb[1], w0 = (int64_t)ow * g.s[2] - g.pb[2];
                        for (size_t c = 0; c < cg; c++) {
                            const float *xc = xg + c * isz;
                            size_t wi = wbase + c * ksz;
                            for (int64_t kd = 0; kd < g.k[0]; kd++) {
                                const int64_t id = d0 + kd * g.d[0];
                                if (id < 0 || id >= (int64_t)g.in[0]) { wi += (size_t)(g.k[1] * g.k[2]); continue; }
                                for (int64_t kh = 0; kh < g.k[1]; kh++) {
                                    const int64_t ih = h0 + kh * g.d[1];
                                    if (ih < 0 || ih >= (int64_t)g.in[1]) { wi += (size_t)g.k[2]; continue; }
                                    const float *xr = xc + ((size_t)id * g.in[1] + (size_t)ih) * g.in[2];
                                    for (int64_t kw = 0; kw < g.k[2]; kw++, wi++) {
                                        const int64_t iw = w0 + kw * g.d[2];
                                        if (iw < 0 || iw >= (int64_t)g.in[2]) continue;
                                        const float wv = w16 ? dse__nn_half(((const uint16_t *)w)[wi]) : ((const float *)w)[wi];
                                        acc = acc + xr[iw] * wv;
                                    }
                                }
                            }
                        }
                        float v = b ? acc + bias : acc;
                        if (act) { v = v < lo ? lo : v; v = v > hi ? hi : v; }
                        yo[(od * g.out[1] + oh) * g.out[2] + ow] = v;
                    }
        }
}
