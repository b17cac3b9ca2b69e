/* mathf.h: the runtime's own float math (no libm transcendental; DESIGN.md §3).
 *
 * Every function here gives the same bits on every target (x86_64, arm64, armv7) when built
 * with -std=c11 -ffp-contract=off: the algorithms use only IEEE-754 +, -, *, / and
 * conversions (double internally), integer bit manipulation, and no libm call. Accuracy
 * against the exact result (measured over dense float32 sweeps in
 * tests/runtime/test_kernels_f32_ew.py): <= 1 ulp for exp, expm1, log, tanh, sigmoid, erf,
 * erfc, sin, cos, pow, gelu and softplus. Any NaN result is the canonical quiet NaN
 * 0x7FC00000 (x86 and ARM differ in the NaN they generate, so results are canonicalised).
 * See mathf.c for the algorithms. */
#ifndef DSEDGE_MATHF_H
#define DSEDGE_MATHF_H

#include <stdint.h>
#include <string.h>

#define DSE_NAN_BITS 0x7FC00000u

#ifndef DSE_INTERNAL   /* linkage of internal functions: see internal.h */
#define DSE_INTERNAL
#endif
#ifndef DSE_SHARED
#define DSE_SHARED
#endif

static inline uint32_t dse_f2u(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }
static inline float dse_u2f(uint32_t u) { float x; memcpy(&x, &u, 4); return x; }
/* x, or the canonical quiet NaN when x is any NaN (same bytes on every target). */
static inline float dse_canonf(float x) { return x != x ? dse_u2f(DSE_NAN_BITS) : x; }

/* HardSwish x * clip(x*(1/6) + 0.5, 0, 1) as numpy (np.clip: a NaN stays), the separate
 * multiply and add (-ffp-contract=off): REF's HardSwish and the fused `act_fn` 1 (not canonical). */
static inline float dse_hardswishf(float x) {
    float v = x * (float)(1.0 / 6.0) + 0.5f;
    v = (v > 0.0f || v != v) ? v : 0.0f;
    v = (v < 1.0f || v != v) ? v : 1.0f;
    return x * v;
}

DSE_INTERNAL float dse_expf(float x);
DSE_INTERNAL float dse_expm1f(float x);
DSE_SHARED float dse_logf(float x);        /* (shared: the AVX2 LogSoftmax calls it) */
DSE_INTERNAL float dse_tanhf(float x);
DSE_SHARED float dse_sigmoidf(float x);      /* 1 / (1 + exp(-x)) (shared: the fused SiLU of kernels/ref/loops.c) */
DSE_SHARED float dse_erff(float x);         /* (shared: the fused GELU of kernels/ref/loops.c) */
#if defined(__GNUC__)
__attribute__((unused))   /* no kernel uses it yet (tests do): no warning in the one-unit build */
#endif
DSE_INTERNAL float dse_erfcf(float x);
DSE_INTERNAL float dse_sinf(float x);
DSE_INTERNAL float dse_cosf(float x);
DSE_INTERNAL float dse_powf(float x, float y); /* C99 Annex F special cases */
DSE_INTERNAL float dse_fmodf(float x, float y);/* exact, sign of x (C fmod) */
DSE_SHARED float dse_rintf(float x);         /* round half to even (shared: the AVX2 elementwise program) */
DSE_SHARED float dse_floorf(float x);  /* (shared: the AVX2 elementwise program) */
DSE_SHARED float dse_ceilf(float x);  /* (shared: the AVX2 elementwise program) */
DSE_INTERNAL float dse_geluf(float x);         /* x/2 (1 + erf(x/sqrt 2)), erfc form for x < 0 (no cancellation) */
DSE_INTERNAL float dse_gelu_tanhf(float x);    /* x/2 (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3))) = x sigmoid(2u) */
DSE_INTERNAL float dse_softplusf(float x);     /* log(1 + exp(x)) */

/* SiLU x * sigmoid(x) with REF's Sigmoid (dse_sigmoidf), as REF's Sigmoid then Mul kernels give it
 * (not canonical): the fused `act_fn` 2 of the REF float Conv kernels. */
static inline float dse_siluf(float x) { return x * dse_sigmoidf(x); }

/* GELU as PyTorch exports it, x * (1 + erf(x / sqrt 2)) * 0.5, with REF's Erf (dse_erff) and one
 * rounding per step, as REF's Div, Erf, Add, Mul and Mul kernels give it (not canonical): the fused
 * `act_fn` 3 of the REF float Conv kernels. */
static inline float dse_gelu_chainf(float x) {
    const float e = dse_erff(x / 1.41421353816986083984375f);   /* float32(sqrt 2) */
    return (x * (e + 1.0f)) * 0.5f;
}

/* A fused activation function (INT act_fn: 1 HardSwish, 2 SiLU, 3 GELU; internal.h DSE_ACT_FN_*) of a
 * float kernel's output, after its clamp, with REF's bytes of the separate float32 nodes (NaN canonical). */
static inline float dse__act_fnf(int fn, float v) {
    return dse_canonf(fn == 2 /* DSE_ACT_FN_SILU */ ? dse_siluf(v) : fn == 1 /* HARDSWISH */ ? dse_hardswishf(v)
                      : fn == 3 /* GELU */ ? dse_gelu_chainf(v) : v);
}

#endif
