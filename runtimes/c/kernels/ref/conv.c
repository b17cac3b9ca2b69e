/* conv.c: fp32 Conv (1-D, 2-D and 3-D; groups, depthwise, strides, dilations, explicit pads;
 * float16 weights widened exactly; fused clamp `act_min`/`act_max`), and the small helpers the
 * other float NN kernels share (float32/float16 element load, spatial attributes, the clamp).
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
 * bias. numpy's reference sums with BLAS (another order): they agree to ~1e-6 relative.
 * The loop nest is dse_f32_conv_loop (kernels/ref/loops.c); this file reads and checks. */
#include <math.h>   /* INFINITY only */

#include "internal.h"

/* Element i of a float32 or float16 tensor's data, as float32. */
float dse__nn_ld(const dse_tensor *t, const void *p, size_t i) {
    if (t->dtype == DSE_DTYPE_FLOAT16) return dse__f16_to_f32(((const uint16_t *)p)[i]);
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
    int c = dse__attr_ints(n, DSE_A_kernel_shape, a, 6);
    if (c < 0 && k_from) { for (size_t i = 0; i < nd; i++) a[i] = (int64_t)k_from[i]; c = (int)nd; }
    if (c != (int)nd) return 1;
    for (size_t i = 0; i < nd; i++) { if (a[i] < 1 || (k_from && (size_t)a[i] != k_from[i])) return 1; k[o + i] = a[i]; }
    if ((c = dse__attr_ints(n, DSE_A_strides, a, 6)) >= 0) {
        if (c != (int)nd) return 1;
        for (size_t i = 0; i < nd; i++) { if (a[i] < 1 || a[i] > 0x7fffffff) return 1; s[o + i] = a[i]; }
    }
    if ((c = dse__attr_ints(n, DSE_A_dilations, a, 6)) >= 0) {
        if (c != (int)nd) return 1;
        for (size_t i = 0; i < nd; i++) { if (a[i] < 1 || a[i] > 0x7fffffff) return 1; d[o + i] = a[i]; }
    }
    if ((c = dse__attr_ints(n, DSE_A_pads, a, 6)) >= 0) {
        if (c != 2 * (int)nd) return 1;
        for (size_t i = 0; i < 2 * nd; i++) if (a[i] < 0 || a[i] > 0x7fffffff) return 1;
        for (size_t i = 0; i < nd; i++) { pb[o + i] = a[i]; pe[o + i] = a[nd + i]; }
    }
    if (k[0] > 0x7fffffff || k[1] > 0x7fffffff || k[2] > 0x7fffffff) return 1;
    return 0;
}

/* Fused clamp: returns 1 and the bounds when `act_min` or `act_max` is present. */
int dse__nn_act(const dse_node *n, float *lo, float *hi) {
    const dse_attr *a = dse__attr(n, DSE_A_act_min, DSE_ATTR_FLOAT), *b = dse__attr(n, DSE_A_act_max, DSE_ATTR_FLOAT);
    *lo = a ? a->f : -INFINITY;
    *hi = b ? b->f : INFINITY;
    return a || b;
}

static int is_f(const dse_tensor *t) { return t && t->dtype == DSE_DTYPE_FLOAT32; }
static int is_fh(const dse_tensor *t) { return t && (t->dtype == DSE_DTYPE_FLOAT32 || t->dtype == DSE_DTYPE_FLOAT16); }

static int conv_geom_read(const dse_model *m, const dse_node *n, dse_conv_geom *g, dse_why *why) {
    const dse_tensor *x = n->n_in >= 2 ? dse__t(m, n->in[0]) : NULL, *w = n->n_in >= 2 ? dse__t(m, n->in[1]) : NULL;
    const dse_tensor *b = n->n_in >= 3 ? dse__t(m, n->in[2]) : NULL, *y = dse__t(m, n->out[0]);
    if (n->n_in < 2 || n->n_in > 3 || n->n_out != 1 || !is_f(x) || !is_fh(w) || !is_f(y) || (n->n_in == 3 && n->in[2] != DSE_NONE && !is_fh(b)) ||
        x->rank < 3 || x->rank > 5 || w->rank != x->rank || y->rank != x->rank) {
        DSE_WHY(why, CONV_NEEDS_FLOAT32_X_N);
        return 1;
    }
    size_t nd = x->rank - 2, o = 3 - nd;
    int64_t grp = dse__attr_int(n, DSE_A_group, 1);
    g->N = x->dims[0]; g->C = x->dims[1]; g->M = w->dims[0];
    if (grp < 1 || g->C % (size_t)grp || g->M % (size_t)grp || w->dims[1] * (size_t)grp != g->C) {
        DSE_WHYF(why, CONV_GROUP_DOES_NOT_FIT, NULL, grp, g->C, 0, 0);
        return 1;
    }
    g->G = (size_t)grp;
    if (dse__nn_spatial(n, nd, w->dims + 2, g->k, g->s, g->d, g->pb, g->pe)) {
        DSE_WHY(why, CONV_KERNEL_SHAPE_STRIDES_DILATIONS);
        return 1;
    }
    if (b && b->numel != g->M) { DSE_WHYF(why, CONV_BIAS_HAS_ELEMENTS_EXPECTED, NULL, b->numel, g->M, 0, 0); return 1; }
    if (y->dims[0] != g->N || y->dims[1] != g->M) { DSE_WHY(why, CONV_OUTPUT_SHAPE_DOES_NOT); return 1; }
    for (int i = 0; i < 3; i++) {
        g->in[i] = (size_t)i < o ? 1 : x->dims[2 + i - o];
        size_t want = 0;
        int64_t span = (int64_t)g->in[i] + g->pb[i] + g->pe[i] - ((g->k[i] - 1) * g->d[i] + 1);
        if (span >= 0) want = (size_t)(span / g->s[i]) + 1;
        g->out[i] = (size_t)i < o ? 1 : y->dims[2 + i - o];
        if (span < 0 || g->out[i] != want) {
            DSE_WHYF(why, CONV_SPATIAL_AXIS_OUTPUT_BUT, NULL, i - (int)o, g->out[i], want, 0);
            return 1;
        }
    }
    return 0;
}

int dse__check_conv_f32(const dse_model *m, const dse_node *n, dse_why *why) {
    dse_conv_geom g;
    return conv_geom_read(m, n, &g, why);
}

void dse_f32_conv__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    dse_conv_geom g;
    dse_why why;
    conv_geom_read(m, n, &g, &why);   /* validated at load */
    const dse_tensor *wt = &m->tensors[n->in[1]];
    const dse_tensor *bt = n->n_in == 3 ? dse__t(m, n->in[2]) : NULL;
    float lo, hi;
    int act = dse__nn_act(n, &lo, &hi);
    dse_f32_conv_loop(cx, &g, dse__data(m, arena, n->in[0]), dse__data(m, arena, n->in[1]), wt->dtype == DSE_DTYPE_FLOAT16,
                      bt ? dse__data(m, arena, n->in[2]) : NULL, bt && bt->dtype == DSE_DTYPE_FLOAT16, act, lo, hi,
                      dse__data(m, arena, n->out[0]));
}
