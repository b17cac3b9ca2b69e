/* cast.c: Cast between float32, float16, int64, int32, int8, uint8 and bool (the output
 * tensor's dtype is the target; the `to` attribute, when present, must agree).
 *
 * Rules (numpy's astype where numpy is defined):
 *   float32 -> float16  round to nearest, ties to even, subnormal halves included; >= 65520
 *                       -> inf; NaN keeps its sign and top 10 payload bits (a payload that
 *                       becomes 0 turns into 1), exactly numpy's npy_floatbits_to_halfbits.
 *   float16 -> float32  exact (subnormals normalised; NaN payload shifted up).
 *   float -> integer    truncate toward zero. Where C and numpy are undefined/platform-specific
 *                       (NaN, out of range) dsedge defines: NaN -> 0, out of range saturates
 *                       to the target's min/max (numpy on x86 wraps through int32 instead).
 *   integer -> integer  two's-complement cast_wrap (numpy's astype), without implementation-defined
 *                       signed conversions; integer -> float32 rounds to nearest even (C).
 *   x -> bool           x != 0 (NaN -> true); bool -> x gives 0 or 1.
 * Every element goes through one of: float32 (for float sources), int64 (integer sources). */
#include "internal.h"
#include "mathf.h"

static int supported(int dt) {
    return dt == DSE_DTYPE_FLOAT32 || dt == DSE_DTYPE_FLOAT16 || dt == DSE_DTYPE_INT64 || dt == DSE_DTYPE_INT32 ||
           dt == DSE_DTYPE_INT8 || dt == DSE_DTYPE_UINT8 || dt == DSE_DTYPE_BOOL;
}

/* ONNX TensorProto element type of a dsedge dtype (for the `to` attribute). */
static int onnx_type(int dt) {
    switch (dt) {
    case DSE_DTYPE_FLOAT32: return 1;
    case DSE_DTYPE_UINT8: return 2;
    case DSE_DTYPE_INT8: return 3;
    case DSE_DTYPE_INT32: return 6;
    case DSE_DTYPE_INT64: return 7;
    case DSE_DTYPE_BOOL: return 9;
    case DSE_DTYPE_FLOAT16: return 10;
    default: return -1;
    }
}

int dse__check_cast(const dse_model *m, const dse_node *n, dse_why *why) {
    const dse_tensor *x = n->n_in == 1 ? dse__t(m, n->in[0]) : NULL, *y = n->n_out == 1 ? dse__t(m, n->out[0]) : NULL;
    if (!x || !y || !supported(x->dtype) || !supported(y->dtype) || x->rank != y->rank ||
        memcmp(x->dims, y->dims, x->rank * sizeof x->dims[0]) != 0 ||
        dse__attr_int(n, DSE_A_to, onnx_type(y->dtype)) != onnx_type(y->dtype)) {
        DSE_WHY(why, CAST_CASTS_BETWEEN_FLOAT32_FLOAT16);
        return 1;
    }
    return 0;
}


uint16_t dse__f32_to_f16(float v) {
    const uint32_t f = dse_f2u(v), sign = (f >> 16) & 0x8000u, a = f & 0x7FFFFFFFu;
    if (a >= 0x7F800000u) {                                   /* inf, NaN */
        if (a == 0x7F800000u) return (uint16_t)(sign | 0x7C00u);
        uint32_t h = 0x7C00u | ((a & 0x7FFFFFu) >> 13);
        return (uint16_t)(sign | (h == 0x7C00u ? 0x7C01u : h));
    }
    if (a >= 0x477FF000u) return (uint16_t)(sign | 0x7C00u);  /* >= 65520: rounds to inf */
    uint32_t q, rem, half;
    if (a < 0x38800000u) {                                    /* below 2^-14: a subnormal half */
        if (a <= 0x33000000u) return (uint16_t)sign;          /* <= 2^-25: 0 (2^-25 ties to even 0) */
        const uint32_t e = a >> 23, mant = (a & 0x7FFFFFu) | 0x800000u, sh = 126u - e;   /* sh in [14, 24] */
        q = mant >> sh, rem = mant & ((1u << sh) - 1u), half = 1u << (sh - 1u);
    } else {                                                  /* normal: rebias the exponent */
        const uint32_t r = a - 0x38000000u;
        q = r >> 13, rem = r & 0x1FFFu, half = 0x1000u;
    }
    if (rem > half || (rem == half && (q & 1u))) q++;         /* may carry into the exponent */
    return (uint16_t)(sign | q);
}

float dse__f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1Fu, mant = h & 0x3FFu;
    if (e == 0x1F) return dse_u2f(sign | 0x7F800000u | (mant << 13));
    if (e == 0) {
        if (mant == 0) return dse_u2f(sign);
        e = 113;
        while (!(mant & 0x400u)) { mant <<= 1; e--; }
        return dse_u2f(sign | (e << 23) | ((mant & 0x3FFu) << 13));
    }
    return dse_u2f(sign | ((e + 112u) << 23) | (mant << 13));
}

/* float -> integer in [lo, hi]: truncation, NaN -> 0, saturation. */
static int64_t f2i(float v, int64_t lo, int64_t hi) {
    if (v != v) return 0;
    if (v <= (float)lo) return lo;                            /* (float)lo is exact: -2^k */
    if (v >= (float)hi + 1.0f) return hi;                     /* hi + 1 = 2^k, exact as a float */
    return (int64_t)v;
}

/* two's-complement wrap of v into the target integer dtype */
static int64_t cast_wrap(int64_t v, int dt) {
    uint64_t u = (uint64_t)v;
    switch (dt) {
    case DSE_DTYPE_INT32: { uint32_t w = (uint32_t)u; return w >= 0x80000000u ? (int64_t)w - 0x100000000ll : (int64_t)w; }
    case DSE_DTYPE_INT8: { uint32_t w = (uint8_t)u; return w >= 0x80u ? (int64_t)w - 0x100 : (int64_t)w; }
    case DSE_DTYPE_UINT8: return (int64_t)(uint8_t)u;
    default: return v;
    }
}

static void range_of(int dt, int64_t *lo, int64_t *hi) {
    switch (dt) {
    case DSE_DTYPE_INT32: *lo = INT32_MIN; *hi = INT32_MAX; break;
    case DSE_DTYPE_INT8: *lo = -128; *hi = 127; break;
    case DSE_DTYPE_UINT8: *lo = 0; *hi = 255; break;
    default: *lo = INT64_MIN; *hi = INT64_MAX; break;
    }
}

void dse_any_cast__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    const dse_tensor *xt = &m->tensors[n->in[0]], *yt = &m->tensors[n->out[0]];
    const uint8_t *x = dse__data(m, arena, n->in[0]);
    uint8_t *y = dse__data(m, arena, n->out[0]);
    const int sd = xt->dtype, dd = yt->dtype;
    int64_t lo, hi;
    range_of(dd, &lo, &hi);
    if (sd == dd) { memmove(y, x, yt->nbytes); return; }
    /* The common conversions as plain loops the compiler vectorises (the same values as the
     * general loop below: an integer converts to float32 with one rounding, whatever its
     * width; int64 -> int32 keeps the low 32 bits, which is cast_wrap). Cast is not in place
     * (alias NONE), so the loops need no care about overlap. */
    const size_t e = yt->numel;
    if (dd == DSE_DTYPE_FLOAT32 && (sd == DSE_DTYPE_BOOL || sd == DSE_DTYPE_UINT8)) {
        float *yf = (float *)(void *)y;
        DSE_EW_LOOP(float, yf, e, (float)x[i]);
        return;
    }
    if (dd == DSE_DTYPE_FLOAT32 && sd == DSE_DTYPE_INT8) {
        const int8_t *xs = (const int8_t *)x;
        float *yf = (float *)(void *)y;
        DSE_EW_LOOP(float, yf, e, (float)xs[i]);
        return;
    }
    if (dd == DSE_DTYPE_FLOAT32 && sd == DSE_DTYPE_INT32) {
        const int32_t *xs = (const int32_t *)(const void *)x;
        float *yf = (float *)(void *)y;
        DSE_EW_LOOP(float, yf, e, (float)xs[i]);
        return;
    }
    if (dd == DSE_DTYPE_INT64 && sd == DSE_DTYPE_INT32) {
        const int32_t *xs = (const int32_t *)(const void *)x;
        int64_t *yl = (int64_t *)(void *)y;
        DSE_EW_LOOP(int64_t, yl, e, (int64_t)xs[i]);
        return;
    }
    if (dd == DSE_DTYPE_INT32 && sd == DSE_DTYPE_INT64) {
        const uint64_t *xs = (const uint64_t *)(const void *)x;
        uint32_t *yw = (uint32_t *)(void *)y;
        DSE_EW_LOOP(uint32_t, yw, e, (uint32_t)xs[i]);
        return;
    }
    for (size_t i = 0; i < yt->numel; i++) {
        int isf = 0;
        float f = 0.0f;
        int64_t v = 0;
        switch (sd) {                                         /* load */
        case DSE_DTYPE_FLOAT32: memcpy(&f, x + 4 * i, 4); isf = 1; break;
        case DSE_DTYPE_FLOAT16: { uint16_t h; memcpy(&h, x + 2 * i, 2); f = dse__f16_to_f32(h); isf = 1; break; }
        case DSE_DTYPE_INT64: memcpy(&v, x + 8 * i, 8); break;
        case DSE_DTYPE_INT32: { int32_t w; memcpy(&w, x + 4 * i, 4); v = w; break; }
        case DSE_DTYPE_INT8: v = (int8_t)x[i]; break;
        default: v = x[i]; break;                             /* uint8, bool */
        }
        switch (dd) {                                         /* store */
        case DSE_DTYPE_FLOAT32: { float o = isf ? f : (float)v; memcpy(y + 4 * i, &o, 4); break; }
        case DSE_DTYPE_FLOAT16: { uint16_t h = dse__f32_to_f16(isf ? f : (float)v); memcpy(y + 2 * i, &h, 2); break; }
        case DSE_DTYPE_BOOL: y[i] = (uint8_t)(isf ? f != 0.0f : v != 0); break;
        default: {
            int64_t o = isf ? f2i(f, lo, hi) : cast_wrap(v, dd);
            if (dd == DSE_DTYPE_INT64) memcpy(y + 8 * i, &o, 8);
            else if (dd == DSE_DTYPE_INT32) { int32_t w = (int32_t)o; memcpy(y + 4 * i, &w, 4); }
            else y[i] = (uint8_t)(o & 0xFF);                  /* int8 two's complement / uint8 */
        }
        }
    }
}
