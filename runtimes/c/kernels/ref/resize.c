/* resize.c: fp32 Resize (inputs X, roi, scales, sizes — constants; attributes as ONNX opset
 * 18+ with defaults written out), modes resize_nearest (nearest_mode round_prefer_floor,
 * round_prefer_ceil, floor, ceil, and dsedge's "simple" for opset-10 Resize / Upsample:
 * ceil when downsampling, else truncate) and linear (multi-linear over any resized axes);
 * coordinate_transformation_mode half_pixel, pytorch_half_pixel, align_corners, asymmetric,
 * tf_half_pixel_for_nn. keep_aspect_ratio_policy "stretch" only; cubic, half_pixel_symmetric
 * and tf_crop_and_resize are refused by `check`.
 *
 * The scale of a resized axis is scales[j] (float32) or, when sizes are given,
 * (float)sizes[j] / (float)in. The source coordinate of output index o is computed in float32
 * with onnxruntime's formulas (as the numpy reference does):
 *     half_pixel (o + 0.5) / scale - 0.5    pytorch_half_pixel: same, 0 when out == 1
 *     align_corners o * (in - 1) / (out - 1) (0 when out == 1)   asymmetric o / scale
 *     tf_half_pixel_for_nn (o + 0.5) / scale
 * nearest: the rounded coordinate clipped to [0, in - 1]. linear: xc = clip(coord, 0, in - 1),
 * i1 = (int)xc, i2 = min(i1 + 1, in - 1), w2 = xc - i1, w1 = i2 - xc (both 0.5 when i1 == i2).
 * As the reference resamples one axis after the other (lowest axis first), the value is
 * combined in that nesting: with resized axes a < b,
 *     y = (x[a1,b1]*wa1 + x[a2,b1]*wa2) * wb1 + (x[a1,b2]*wa1 + x[a2,b2]*wa2) * wb2
 * which is bit-identical to the reference. Axes with out == in and scale 1 are untouched; when
 * the output shape equals the input shape the data is copied. When only the last two axes are
 * resized (images), the per-axis indices and weights are tabled instead of recomputed per
 * element (resize_hw); the values are the same expressions. */
#include "internal.h"

enum { CT_HALF, CT_PYTORCH, CT_ALIGN, CT_ASYM, CT_TFNN };
enum { NM_RPF, NM_RPC, NM_FLOOR, NM_CEIL, NM_SIMPLE };

typedef struct rz {
    size_t rank, in[DSE_MAX_RANK], out[DSE_MAX_RANK], stride[DSE_MAX_RANK];
    float scale[DSE_MAX_RANK];
    int active[DSE_MAX_RANK], linear, ct, nm, copy;
} rz;

static int pick(const char *s, const char *const *names, int n) {
    for (int i = 0; i < n; i++) if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

static int resize_plan(const dse_model *m, const dse_node *n, rz *z, dse_why *why) {
    const dse_tensor *x = n->n_in >= 1 ? dse__t(m, n->in[0]) : NULL, *y = dse__t(m, n->out[0]);
    const dse_tensor *sc = n->n_in >= 3 ? dse__t(m, n->in[2]) : NULL, *sz = n->n_in >= 4 ? dse__t(m, n->in[3]) : NULL;
    if (!x || !y || n->n_in > 4 || n->n_out != 1 || x->dtype != DSE_DTYPE_FLOAT32 || y->dtype != DSE_DTYPE_FLOAT32 ||
        y->rank != x->rank || x->rank < 1) {
        DSE_WHY(why, RESIZE_NEEDS_FLOAT32_INPUT_OUTPUT);
        return 1;
    }
    static const char *const modes[] = {"nearest", "linear"};
    static const char *const cts[] = {"half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn"};
    static const char *const nms[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil", "simple"};
    int mode = pick(dse__attr_str(n, DSE_A_mode, "nearest"), modes, 2);
    z->ct = pick(dse__attr_str(n, DSE_A_coordinate_transformation_mode, "half_pixel"), cts, 5);
    z->nm = pick(dse__attr_str(n, DSE_A_nearest_mode, "round_prefer_floor"), nms, 5);
    if (mode < 0 || z->ct < 0 || z->nm < 0 || strcmp(dse__attr_str(n, DSE_A_keep_aspect_ratio_policy, "stretch"), "stretch") ||
        (mode == 1 && dse__attr_int(n, DSE_A_antialias, 0))) {
        DSE_WHY(why, RESIZE_UNSUPPORTED_MODE_COORDINATE_TRANSFORMATION);
        return 1;
    }
    z->linear = mode == 1;
    z->rank = x->rank;
    int64_t axes[DSE_MAX_RANK];
    int na = dse__attr_ints(n, DSE_A_axes, axes, DSE_MAX_RANK);
    if (na < 0) { na = (int)x->rank; for (int i = 0; i < na; i++) axes[i] = i; }
    int seen[DSE_MAX_RANK] = {0};
    for (int j = 0; j < na; j++) {
        if (axes[j] < 0) axes[j] += (int64_t)x->rank;
        if (axes[j] < 0 || axes[j] >= (int64_t)x->rank || seen[axes[j]]++) { DSE_WHY(why, RESIZE_BAD_AXES); return 1; }
    }
    const int use_scales = sc && sc->numel > 0;
    if (use_scales ? (sc->dtype != DSE_DTYPE_FLOAT32 || sc->numel != (size_t)na || sc->storage != DSE_STORAGE_CONST)
                   : (!sz || sz->dtype != DSE_DTYPE_INT64 || sz->numel != (size_t)na || sz->storage != DSE_STORAGE_CONST)) {
        DSE_WHY(why, RESIZE_NEEDS_CONSTANT_FLOAT32_SCALES);
        return 1;
    }
    const float *sv = use_scales ? (const float *)(const void *)sc->cdata : NULL;
    const int64_t *zv = use_scales ? NULL : (const int64_t *)(const void *)sz->cdata;
    size_t s = 1;
    z->copy = 1;
    for (int d = (int)x->rank - 1; d >= 0; d--) {
        z->in[d] = x->dims[d]; z->out[d] = y->dims[d]; z->stride[d] = s; s *= x->dims[d];
        z->scale[d] = 1.0f; z->active[d] = 0;
        if (z->in[d] != z->out[d]) z->copy = 0;
    }
    for (int j = 0; j < na; j++) {
        size_t a = (size_t)axes[j], want;
        if (use_scales) {
            float f = sv[j], p = (float)z->in[a] * f;
            if (!(f > 0.0f) || !(p < 2147483648.0f)) { DSE_WHYF(why, RESIZE_SCALE_ON_AXIS_NOT, NULL, a, 0, 0, 0); return 1; }
            z->scale[a] = f;
            want = (size_t)p;
        } else {
            if (zv[j] < 1 || zv[j] > 0x7fffffff || !z->in[a]) { DSE_WHYF(why, RESIZE_SIZE_ON_AXIS_NOT, NULL, a, 0, 0, 0); return 1; }
            want = (size_t)zv[j];
            z->scale[a] = (float)want / (float)z->in[a];
        }
        if (want != z->out[a] || !z->in[a]) { DSE_WHYF(why, RESIZE_AXIS_OUTPUT_BUT_SCALES, NULL, a, z->out[a], want, 0); return 1; }
        z->active[a] = !(z->out[a] == z->in[a] && z->scale[a] == 1.0f);
    }
    return 0;
}

int dse__check_resize_f32(const dse_model *m, const dse_node *n, dse_why *why) {
    rz z;
    return resize_plan(m, n, &z, why);
}

static float trunc_(float v) {       /* |v| < 2^40 here: exact through int64 */
    return (float)(int64_t)v;
}
static float floor_(float v) { float t = trunc_(v); return t > v ? t - 1.0f : t; }
static float ceil_(float v) { float t = trunc_(v); return t < v ? t + 1.0f : t; }

static float resize_coord(const rz *z, size_t a, size_t o) {
    const float fo = (float)o, sc = z->scale[a];
    float c;
    switch (z->ct) {
    case CT_HALF: c = (fo + 0.5f) / sc - 0.5f; break;
    case CT_PYTORCH: c = z->out[a] > 1 ? (fo + 0.5f) / sc - 0.5f : 0.0f; break;
    case CT_ALIGN: c = z->out[a] == 1 ? 0.0f : fo * (float)(z->in[a] - 1) / (float)(z->out[a] - 1); break;
    case CT_ASYM: c = fo / sc; break;
    default: c = (fo + 0.5f) / sc; break;
    }
    return c < -1e12f ? -1e12f : c > 1e12f ? 1e12f : c;   /* NaN cannot occur: scale > 0 */
}

static size_t resize_nearest(const rz *z, size_t a, float c) {
    float r;
    int nm = z->nm;
    if (nm == NM_SIMPLE) nm = z->scale[a] < 1.0f ? NM_CEIL : -1;
    switch (nm) {
    case NM_RPF:
        if (c == trunc_(c) + 0.5f) { r = floor_(c); break; }
        /* fall through */
    case NM_RPC: { float h = floor_((c < 0 ? -c : c) + 0.5f); r = c < 0 ? -h : (c > 0 ? h : 0.0f); break; }
    case NM_FLOOR: r = floor_(c); break;
    case NM_CEIL: r = ceil_(c); break;
    default: r = trunc_(c); break;
    }
    if (r <= 0.0f) return 0;
    return r >= (float)(z->in[a] - 1) ? z->in[a] - 1 : (size_t)r;
}

/* Linear resampling of axis a at output index o: source indices i1 <= i2 and weights. */
static void lin_axis(const rz *z, size_t a, size_t o, size_t *i1, size_t *i2, float *w1, float *w2) {
    const float c = resize_coord(z, a, o);
    const float hi = (float)(z->in[a] - 1), xc = c < 0.0f ? 0.0f : (c > hi ? hi : c);
    size_t a1 = (size_t)xc;
    if (a1 > z->in[a] - 1) a1 = z->in[a] - 1;
    const size_t a2 = a1 + 1 < z->in[a] ? a1 + 1 : z->in[a] - 1;
    *i1 = a1, *i2 = a2;
    if (a1 == a2) *w1 = *w2 = 0.5f;
    else *w2 = xc - (float)a1, *w1 = (float)a2 - xc;
}

/* multi-linear value: resized axes list ax[0..L] ascending; the highest combines last */
static float lin(const float *x, const size_t *ax, int L, size_t base, const size_t *i1, const size_t *i2,
                 const float *w1, const float *w2, const size_t *stride) {
    if (L < 0) return x[base];
    const size_t a = ax[L];
    return lin(x, ax, L - 1, base + i1[a] * stride[a], i1, i2, w1, w2, stride) * w1[a] +
           lin(x, ax, L - 1, base + i2[a] * stride[a], i1, i2, w1, w2, stride) * w2[a];
}

/* The common case, only the last two axes resized (images, NCHW): the last axis' source
 * columns and weights are computed once per run for up to RZ_CHUNK output columns at a time
 * (a stack table), the second-to-last's once per output row, and each value is lin()'s
 * expression for those axes, in the same order. */
#define RZ_CHUNK 256
#define RZ_ROWS 2048

/* y[j] = s[j / 2], j < n (y and s do not overlap: the compiler may vectorise it) */
static void rz_twice(float *restrict y, const float *restrict s, size_t n) {
    for (size_t i = 0; i < n / 2; i++) {
        const float v = s[i];
        y[2 * i] = v;
        y[2 * i + 1] = v;
    }
    if (n % 2) y[n - 1] = s[n / 2];
}
static void resize_hw(const rz *z, const float *x, float *y) {
    const size_t r = z->rank, W = z->out[r - 1], Wi = z->in[r - 1];
    const size_t H = r >= 2 ? z->out[r - 2] : 1, Hi = r >= 2 ? z->in[r - 2] : 1;
    const int ah = r >= 2 && z->active[r - 2], aw = z->active[r - 1];
    size_t planes = 1;
    for (size_t d = 0; d + 2 < r; d++) planes *= z->out[d];
    uint32_t c1[RZ_CHUNK], c2[RZ_CHUNK];
    float cw1[RZ_CHUNK], cw2[RZ_CHUNK];
    for (size_t c0 = 0; c0 < W; c0 += RZ_CHUNK) {
        const size_t cn = W - c0 < RZ_CHUNK ? W - c0 : RZ_CHUNK;
        int twice = !z->linear && c0 % 2 == 0;   /* nearest, each source column twice: 2x upsampling */
        for (size_t j = 0; j < cn; j++) {
            size_t i1 = c0 + j, i2 = c0 + j;
            cw1[j] = cw2[j] = 0.0f;
            if (aw && z->linear) lin_axis(z, r - 1, c0 + j, &i1, &i2, &cw1[j], &cw2[j]);
            else if (aw) i1 = i2 = resize_nearest(z, r - 1, resize_coord(z, r - 1, c0 + j));
            c1[j] = (uint32_t)i1, c2[j] = (uint32_t)i2;
            twice &= i1 == (c0 + j) / 2;
        }
        uint32_t hrow[RZ_ROWS];   /* nearest: each output row's source row, when H fits */
        const int tabled = !z->linear && H <= RZ_ROWS;
        for (size_t oh = 0; tabled && oh < H; oh++)
            hrow[oh] = (uint32_t)(ah ? resize_nearest(z, r - 2, resize_coord(z, r - 2, oh)) : oh);
        for (size_t p = 0; p < planes; p++) {
            size_t prev = (size_t)-1;   /* nearest: the source row of the output row just written */
            for (size_t oh = 0; oh < H; oh++) {
                size_t h1 = oh, h2 = oh;
                float wh1 = 0.0f, wh2 = 0.0f;
                if (tabled) h1 = h2 = hrow[oh];
                else if (ah && z->linear) lin_axis(z, r - 2, oh, &h1, &h2, &wh1, &wh2);
                else if (ah) h1 = h2 = resize_nearest(z, r - 2, resize_coord(z, r - 2, oh));
                const float *r1 = x + (p * Hi + h1) * Wi, *r2 = x + (p * Hi + h2) * Wi;
                float *yo = y + (p * H + oh) * W + c0;
                if (!z->linear && h1 == prev) {   /* the same source row: copy the row just written */
                    memcpy(yo, yo - W, cn * sizeof(float));
                } else if (!z->linear && twice) {
                    rz_twice(yo, r1 + c0 / 2, cn);
                } else if (!z->linear)
                    for (size_t j = 0; j < cn; j++) yo[j] = r1[c1[j]];
                else if (ah && aw)
                    for (size_t j = 0; j < cn; j++)
                        yo[j] = (r1[c1[j]] * wh1 + r2[c1[j]] * wh2) * cw1[j] + (r1[c2[j]] * wh1 + r2[c2[j]] * wh2) * cw2[j];
                else if (aw)
                    for (size_t j = 0; j < cn; j++) yo[j] = r1[c1[j]] * cw1[j] + r1[c2[j]] * cw2[j];
                else
                    for (size_t j = 0; j < cn; j++) yo[j] = r1[c0 + j] * wh1 + r2[c0 + j] * wh2;
                prev = z->linear ? (size_t)-1 : h1;
            }
        }
    }
}

void dse_f32_resize__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    rz z;
    dse_why why;
    resize_plan(m, n, &z, &why);
    const float *x = dse__data(m, arena, n->in[0]);
    float *y = dse__data(m, arena, n->out[0]);
    const dse_tensor *yt = &m->tensors[n->out[0]];
    if (z.copy) { memmove(y, x, yt->nbytes); return; }
    if (yt->numel == 0) return;
    int outer_active = 0;
    for (size_t d = 0; d + 2 < z.rank; d++) outer_active |= z.active[d];
    if (!outer_active && z.out[z.rank - 1] <= UINT32_MAX) {
        resize_hw(&z, x, y);
        return;
    }
    size_t ax[DSE_MAX_RANK], i1[DSE_MAX_RANK] = {0}, i2[DSE_MAX_RANK] = {0}, idx[DSE_MAX_RANK] = {0};
    float w1[DSE_MAX_RANK], w2[DSE_MAX_RANK];
    int L = -1;
    for (size_t d = 0; d < z.rank; d++) if (z.active[d]) ax[++L] = d;
    for (size_t e = 0; e < yt->numel; e++) {
        size_t base = 0;
        for (size_t d = 0; d < z.rank; d++) {
            if (!z.active[d]) { base += idx[d] * z.stride[d]; continue; }
            const float c = resize_coord(&z, d, idx[d]);
            if (!z.linear) { base += resize_nearest(&z, d, c) * z.stride[d]; continue; }
            lin_axis(&z, d, idx[d], &i1[d], &i2[d], &w1[d], &w2[d]);
        }
        y[e] = z.linear ? lin(x, ax, L, base, i1, i2, w1, w2, z.stride) : x[base];
        for (int d = (int)z.rank - 1; d >= 0; d--) { if (++idx[d] < z.out[d]) break; idx[d] = 0; }
    }
}
