/* resize_nearest.c: Resize with mode "nearest" (and nearest Upsample) for any dtype.
 *
 * Semantics are the numpy reference's (dsedge/ops/nn.py: resize, _resize_plan,
 * _source_coords, _nearest_index), which follow onnxruntime:
 *  - Plan: `sizes` (constant int64, one per resized axis) wins over `scales` (constant
 *    float32). With sizes and keep_aspect_ratio_policy "stretch", scale = f32(size) / f32(in);
 *    with "not_larger"/"not_smaller" one scale min/max of those ratios applies to every
 *    resized axis and out = floor(scale * in + 0.5) (float64). With scales, out =
 *    trunc(f32(in) * scale). `check` recomputes the output shape and compares it with the
 *    tensor table. When the output shape equals the input's, the op is a copy.
 *  - Each resized axis maps output index i to a source coordinate in float32 (exactly the
 *    reference's operation order; -ffp-contract=off keeps every product and quotient rounded
 *    to float32): half_pixel (i + 0.5) / s - 0.5; half_pixel_symmetric (in float64 after a
 *    float32 offset); pytorch_half_pixel (0 when out == 1); align_corners
 *    i * (in - 1) / (out - 1); asymmetric i / s; tf_half_pixel_for_nn (i + 0.5) / s;
 *    tf_crop_and_resize from the constant float32 roi, where a coordinate outside
 *    [0, in - 1] gives `extrapolation_value` for the whole element.
 *  - The coordinate is rounded by nearest_mode: round_prefer_floor (halves go down),
 *    round_prefer_ceil (halves away from zero, as sign(x) * floor(|x| + 0.5) in float32),
 *    floor, ceil, and "simple" (opset-10 Resize / Upsample: ceil when the scale < 1, else
 *    trunc); then clamped to [0, in - 1]. floor/ceil/trunc are done through an int64
 *    conversion (no libm); coordinates beyond ±4e18 (unreachable for valid scales) clamp by
 *    sign, NaN gives index 0 (what numpy gives on x86).
 * An axis whose output size and scale are both unchanged is not resampled (identity), as in
 * the reference. The output is produced row by row (a row = the last axis); the last axis'
 * source indices are computed once per run into a small stack table when it has at most
 * 1024 entries (else per element), the outer axes' once per row; an output row whose source
 * row equals the previous one's is a copy of the row just written. No scratch, no allocation.
 *
 * Dispatch: registered for every dtype after the float32 Resize kernel, which takes the
 * float32 nodes it accepts; the loader falls through to this kernel for the rest (e.g.
 * half_pixel_symmetric or tf_crop_and_resize in float32). */
#include "internal.h"

enum { C_HALF_PIXEL, C_HALF_PIXEL_SYM, C_PYTORCH, C_ALIGN, C_ASYM, C_TF_NN, C_CROP };
enum { N_RPF, N_RPC, N_FLOOR, N_CEIL, N_SIMPLE };
#define CACHE 1024

typedef struct {
    int ctm, nm, copy;
    uint8_t resample[DSE_MAX_RANK];
    float scale[DSE_MAX_RANK], roi0[DSE_MAX_RANK], roi1[DSE_MAX_RANK];
    uint8_t extrap[8];
} rplan;

static int lookup(const char *s, const char *const *names, int n) {
    for (int k = 0; k < n; k++)
        if (!strcmp(s, names[k])) return k;
    return -1;
}

static float const_f32(const dse_tensor *t, size_t k) {
    float v;
    memcpy(&v, t->cdata + 4 * k, 4);
    return v;
}

/* float32 -> float16 bits, round to nearest even (numpy's astype), overflow to inf. */
static uint16_t f32_to_f16(float f) {
    uint32_t x, ax;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return (uint16_t)(sign | (ax > 0x7f800000u ? 0x7e00u : 0x7c00u));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);   /* >= 65520 rounds to inf */
    if (ax < 0x33000000u) return sign;                            /* < 2^-25 rounds to 0 */
    uint32_t mant, h, rem, half;
    int e = (int)(ax >> 23) - 127;
    if (e >= -14) {   /* normal half */
        mant = ax & 0x7fffffu;
        h = ((uint32_t)(e + 15) << 10) | (mant >> 13);
        rem = mant & 0x1fffu;
        half = 0x1000u;
    } else {          /* subnormal half: units of 2^-24, shift in [14, 24] */
        unsigned sh = (unsigned)(-(e + 1));
        mant = (ax & 0x7fffffu) | 0x800000u;
        h = mant >> sh;
        rem = mant & ((1u << sh) - 1u);
        half = 1u << (sh - 1);
    }
    if (rem > half || (rem == half && (h & 1u))) h++;   /* a carry into the exponent is right */
    return (uint16_t)(sign | h);
}

static int extrap_bytes(int dtype, float f, uint8_t *out) {
    memset(out, 0, 8);
    double t = (double)(int64_t)(f > -9e18f && f < 9e18f ? f : 0.0f);   /* trunc toward zero, as numpy's astype */
    int64_t i = (int64_t)t;
    switch (dtype) {
        case DSE_DTYPE_FLOAT32: memcpy(out, &f, 4); return 0;
        case DSE_DTYPE_FLOAT64: { double d = f; memcpy(out, &d, 8); return 0; }
        case DSE_DTYPE_FLOAT16: { uint16_t h = f32_to_f16(f); memcpy(out, &h, 2); return 0; }
        case DSE_DTYPE_BOOL: out[0] = f != 0.0f; return 0;
        case DSE_DTYPE_INT8: if (i < -128 || i > 127) return 1; out[0] = (uint8_t)i; return 0;
        case DSE_DTYPE_UINT8: if (i < 0 || i > 255) return 1; out[0] = (uint8_t)i; return 0;
        case DSE_DTYPE_INT16: case DSE_DTYPE_UINT16:
            if (dtype == DSE_DTYPE_INT16 ? (i < -32768 || i > 32767) : (i < 0 || i > 65535)) return 1;
            out[0] = (uint8_t)i; out[1] = (uint8_t)((uint64_t)i >> 8); return 0;
        case DSE_DTYPE_INT32: case DSE_DTYPE_UINT32:
            if (dtype == DSE_DTYPE_INT32 ? (i < INT32_MIN || i > INT32_MAX) : (i < 0 || i > (int64_t)UINT32_MAX)) return 1;
            for (int k = 0; k < 4; k++) out[k] = (uint8_t)((uint64_t)i >> (8 * k));
            return 0;
        case DSE_DTYPE_INT64: case DSE_DTYPE_UINT64:
            if (f <= -9e18f || f >= 9e18f || (dtype == DSE_DTYPE_UINT64 && i < 0)) return 1;
            for (int k = 0; k < 8; k++) out[k] = (uint8_t)((uint64_t)i >> (8 * k));
            return 0;
        default: return 1;
    }
}

static int resize_nearest_plan(const dse_model *m, const dse_node *n, rplan *p, dse_why *why) {
    static const char *const CTM[] = {"half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
                                      "asymmetric", "tf_half_pixel_for_nn", "tf_crop_and_resize"};
    static const char *const NM[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil", "simple"};
    const dse_tensor *x = &m->tensors[n->in[0]], *y = &m->tensors[n->out[0]];
    const dse_tensor *roi = NULL, *scales = NULL, *sizes = NULL;
    unsigned r = x->rank;
    const char *policy = "stretch";
    memset(p, 0, sizeof *p);
    if (strcmp(dse__attr_str(n, DSE_A_mode, "nearest"), "nearest")) { DSE_WHYF(why, RESIZE_NEAREST_MODE_NOT_NEAREST, dse__attr_str(n, DSE_A_mode, ""), 0, 0, 0, 0); return 1; }
    if (n->op == DSE_OP_UPSAMPLE) {   /* opset 7-9: (X, scales), asymmetric, legacy rounding */
        scales = n->n_in > 1 ? dse__t(m, n->in[1]) : NULL;
        p->ctm = C_ASYM;
        p->nm = N_SIMPLE;
    } else {
        roi = n->n_in > 1 ? dse__t(m, n->in[1]) : NULL;
        scales = n->n_in > 2 ? dse__t(m, n->in[2]) : NULL;
        sizes = n->n_in > 3 ? dse__t(m, n->in[3]) : NULL;
        p->ctm = lookup(dse__attr_str(n, DSE_A_coordinate_transformation_mode, "half_pixel"), CTM, 7);
        p->nm = lookup(dse__attr_str(n, DSE_A_nearest_mode, "round_prefer_floor"), NM, 5);
        policy = dse__attr_str(n, DSE_A_keep_aspect_ratio_policy, "stretch");
        if (p->ctm < 0 || p->nm < 0) { DSE_WHY(why, RESIZE_NEAREST_UNKNOWN_COORDINATE_TRANSFORMATION_MODE); return 1; }
    }
    if (y->rank != r) { DSE_WHY(why, RESIZE_NEAREST_OUTPUT_RANK_DIFFERS_FROM); return 1; }
    int64_t ax[DSE_MAX_RANK];
    int na = dse__attr_ints(n, DSE_A_axes, ax, DSE_MAX_RANK);
    if (na < 0) {
        if (dse__attr(n, DSE_A_axes, DSE_ATTR_INTS)) { DSE_WHY(why, RESIZE_NEAREST_TOO_MANY_AXES); return 1; }
        na = (int)r;
        for (int j = 0; j < na; j++) ax[j] = j;
    }
    unsigned seen = 0;
    for (int j = 0; j < na; j++) {
        if (ax[j] < 0) ax[j] += r;
        if (ax[j] < 0 || ax[j] >= (int64_t)r || (seen >> ax[j] & 1u)) { DSE_WHY(why, RESIZE_NEAREST_AXES_OUT_RANGE_REPEATED); return 1; }
        seen |= 1u << ax[j];
    }
    size_t out[DSE_MAX_RANK];
    for (unsigned d = 0; d < r; d++) { out[d] = x->dims[d]; p->scale[d] = 1.0f; p->roi0[d] = 0.0f; p->roi1[d] = 1.0f; }
    if (sizes && sizes->numel) {
        int64_t sz[DSE_MAX_RANK];
        if (dse__mv_const_ints(m, n->in[3], sz, DSE_MAX_RANK) != na) { DSE_WHY(why, RESIZE_NEAREST_SIZES_CONSTANT_INT64_TENSOR); return 1; }
        if (!strcmp(policy, "stretch")) {
            for (int j = 0; j < na; j++) {
                if (sz[j] < 0 || sz[j] > INT32_MAX) { DSE_WHY(why, RESIZE_NEAREST_SIZE_OUT_RANGE); return 1; }
                out[ax[j]] = (size_t)sz[j];
                p->scale[ax[j]] = x->dims[ax[j]] ? (float)sz[j] / (float)x->dims[ax[j]] : 1.0f;
            }
        } else if (!strcmp(policy, "not_larger") || !strcmp(policy, "not_smaller")) {
            int larger = !strcmp(policy, "not_smaller");
            float s = 0.0f;
            for (int j = 0; j < na; j++) {
                if (sz[j] < 0 || sz[j] > INT32_MAX || !x->dims[ax[j]]) { DSE_WHY(why, RESIZE_NEAREST_SIZE_OUT_RANGE_EMPTY); return 1; }
                float q = (float)sz[j] / (float)x->dims[ax[j]];
                if (j == 0 || (larger ? q > s : q < s)) s = q;
            }
            for (int j = 0; j < na; j++) {
                double o = (double)s * (double)x->dims[ax[j]] + 0.5;
                if (!(o >= 0.0 && o < 2147483648.0)) { DSE_WHY(why, RESIZE_NEAREST_OUTPUT_SIZE_OUT_RANGE); return 1; }
                double t = (double)(int64_t)o;
                out[ax[j]] = (size_t)(t > o ? t - 1.0 : t);
                p->scale[ax[j]] = s;
            }
        } else {
            DSE_WHYF(why, RESIZE_NEAREST_KEEP_ASPECT_RATIO_POLICY, policy, 0, 0, 0, 0);
            return 1;
        }
    } else if (scales && scales->numel) {
        if (scales->storage != DSE_STORAGE_CONST || scales->dtype != DSE_DTYPE_FLOAT32 || scales->numel != (size_t)na) {
            DSE_WHY(why, RESIZE_NEAREST_SCALES_CONSTANT_FLOAT32_TENSOR); return 1;
        }
        for (int j = 0; j < na; j++) {
            float s = const_f32(scales, (size_t)j), o = (float)x->dims[ax[j]] * s;
            if (!(s > 0.0f) || !(o < 2147483648.0f)) { DSE_WHY(why, RESIZE_NEAREST_SCALE_POSITIVE_GIVE_SIZE); return 1; }
            out[ax[j]] = (size_t)(int64_t)o;
            p->scale[ax[j]] = s;
        }
    } else {
        DSE_WHY(why, RESIZE_NEAREST_NEEDS_CONSTANT_SCALES_SIZES);
        return 1;
    }
    p->copy = 1;
    for (unsigned d = 0; d < r; d++) {
        if (y->dims[d] != out[d]) { DSE_WHYF(why, RESIZE_NEAREST_OUTPUT_DIM_RESIZE_PLAN, NULL, d, y->dims[d], out[d], 0); return 1; }
        if (out[d] != x->dims[d]) p->copy = 0;
    }
    if (p->ctm == C_CROP) {
        if (roi && roi->numel) {
            if (roi->storage != DSE_STORAGE_CONST || roi->dtype != DSE_DTYPE_FLOAT32 || roi->numel != 2 * (size_t)na) {
                DSE_WHY(why, RESIZE_NEAREST_ROI_CONSTANT_FLOAT32_TENSOR); return 1;
            }
            for (int j = 0; j < na; j++) {
                p->roi0[ax[j]] = const_f32(roi, (size_t)j);
                p->roi1[ax[j]] = const_f32(roi, (size_t)(j + na));
            }
        }
        if (extrap_bytes(x->dtype, dse__attr_float(n, DSE_A_extrapolation_value, 0.0f), p->extrap)) {
            DSE_WHYF(why, RESIZE_NEAREST_EXTRAPOLATION_VALUE_NOT_REPRESENTABLE, dse_dtype_name(x->dtype), 0, 0, 0, 0); return 1;
        }
    }
    for (unsigned d = 0; d < r; d++) {
        p->resample[d] = !(out[d] == x->dims[d] && p->scale[d] == 1.0f && p->ctm != C_CROP);
        if (!p->copy && p->resample[d] && x->dims[d] == 0 && out[d] > 0 && y->numel) {
            DSE_WHYF(why, RESIZE_NEAREST_CANNOT_RESIZE_EMPTY_AXIS, NULL, d, 0, 0, 0); return 1;
        }
    }
    return 0;
}

int dse__check_resize_nearest(const dse_model *m, const dse_node *n, dse_why *why) {
    rplan p;
    if (n->n_out != 1 || dse__mv_check_io(m, n, why)) {
        if (!why->id) DSE_WHY(why, RESHAPE_NEEDS_DATA_INPUT_ONE);
        return 1;
    }
    return resize_nearest_plan(m, n, &p, why);
}

static float trunc_f(float v) { return (float)(int64_t)v; }   /* |v| < 2^62: defined, exact */
static float floor_f(float v) { float t = trunc_f(v); return t > v ? t - 1.0f : t; }
static float ceil_f(float v) { float t = trunc_f(v); return t < v ? t + 1.0f : t; }

/* The reference's float32 source coordinate of output index i along one axis. */
static float resize_nearest_coord(int ctm, size_t i, size_t n_out, size_t n_in, float s, float r0, float r1) {
    float x = (float)i;
    switch (ctm) {
        case C_HALF_PIXEL: return (x + 0.5f) / s - 0.5f;
        case C_HALF_PIXEL_SYM: {
            float adj = (float)n_out / (s * (float)n_in), center = (float)n_in / 2.0f, off = center * (1.0f - adj);
            return (float)(((double)off + ((double)x + 0.5) / (double)s) - 0.5);
        }
        case C_PYTORCH: return n_out > 1 ? (x + 0.5f) / s - 0.5f : 0.0f;
        case C_ALIGN: return n_out == 1 ? 0.0f : x * (float)(n_in - 1) / (float)(n_out - 1);
        case C_ASYM: return x / s;
        case C_TF_NN: return (x + 0.5f) / s;
        default:
            if (n_out > 1) return r0 * (float)(n_in - 1) + (x * (r1 - r0) * (float)(n_in - 1)) / (float)(n_out - 1);
            return (float)(0.5 * ((double)r0 + (double)r1) * (double)(n_in - 1));
    }
}

static int64_t resize_nearest_nearest(float xo, int nm, int down, size_t n_in) {
    int64_t last = (int64_t)n_in - 1, i;
    if (xo != xo) return 0;
    if (xo >= 4e18f) return last;
    if (xo <= -4e18f) return 0;
    float r, sg = xo > 0.0f ? 1.0f : xo < 0.0f ? -1.0f : 0.0f;
    switch (nm) {
        case N_RPF: r = xo == trunc_f(xo) + 0.5f ? floor_f(xo) : sg * floor_f(sg * xo + 0.5f); break;
        case N_RPC: r = sg * floor_f(sg * xo + 0.5f); break;
        case N_FLOOR: r = floor_f(xo); break;
        case N_CEIL: r = ceil_f(xo); break;
        default: r = down ? ceil_f(xo) : trunc_f(xo); break;
    }
    i = (int64_t)r;
    return i < 0 ? 0 : i > last ? last : i;
}

/* Source index along axis d for output index i; -1 = outside the crop (extrapolate). */
static int64_t src_of(const rplan *p, unsigned d, size_t i, size_t n_out, size_t n_in) {
    if (!p->resample[d]) return (int64_t)i;
    float xo = resize_nearest_coord(p->ctm, i, n_out, n_in, p->scale[d], p->roi0[d], p->roi1[d]);
    if (p->ctm == C_CROP && (xo < 0.0f || xo > (float)(n_in - 1))) return -1;
    return resize_nearest_nearest(xo, p->nm, p->scale[d] < 1.0f, n_in);
}

void dse_any_resize__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    const dse_tensor *x = &m->tensors[n->in[0]], *y = &m->tensors[n->out[0]];
    rplan p;
    dse_why why;
    resize_nearest_plan(m, n, &p, &why);
    const uint8_t *src = dse__data(m, arena, n->in[0]);
    uint8_t *dst = dse__data(m, arena, n->out[0]);
    if (p.copy) {
        if (src != dst) memmove(dst, src, y->nbytes);
        return;
    }
    if (y->numel == 0) return;
    size_t es = dse__mv_esize(x->dtype), idx[DSE_MAX_RANK] = {0};
    int64_t xs[DSE_MAX_RANK];
    dse__mv_row_strides(x, xs);
    unsigned last = y->rank - 1;
    size_t w = y->dims[last], wi = x->dims[last];
    int32_t cache[CACHE];
    int cached = w <= CACHE;
    for (size_t o = 0; cached && o < w; o++) cache[o] = (int32_t)src_of(&p, last, o, w, wi);
    int64_t prev_off = -1;   /* source row of the previous output row (-1: none / outside) */
    for (;;) {
        int64_t off = 0;
        int outside = 0;
        for (unsigned d = 0; d < last; d++) {
            int64_t s = src_of(&p, d, idx[d], y->dims[d], x->dims[d]);
            if (s < 0) outside = 1;
            else off += s * xs[d];
        }
        if (!outside && off == prev_off) {   /* upsampled outer axis: repeat the row just written */
            memcpy(dst, dst - w * es, w * es);
        } else if (outside) {
            dse__mv_fill(dst, w, p.extrap, es);
        } else if (!p.resample[last]) {
            memcpy(dst, src + (size_t)off * es, w * es);
        } else {
            const uint8_t *row = src + (size_t)off * es;
            for (size_t o = 0; o < w; o++) {
                int64_t s = cached ? cache[o] : src_of(&p, last, o, w, wi);
                memcpy(dst + o * es, s < 0 ? p.extrap : row + (size_t)s * es, es);
            }
        }
        prev_off = outside ? -1 : off;
        dst += w * es;
        int d = (int)last - 1;
        for (; d >= 0; d--) {
            if (++idx[d] < y->dims[d]) break;
            idx[d] = 0;
        }
        if (d < 0) return;
    }
}

void dse_any_upsample__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    dse_any_resize__ref(m, n, arena, cx);
}
