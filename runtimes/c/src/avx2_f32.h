/* avx2_f32.h: what the float32 AVX2 kernels (kernels/avx2/{sgemm,conv,gemm,matmul,unary,binary,
 * pool,softmax}.c) share: the register-blocked SGEMM drivers of sgemm.c and the vector exp.
 *
 * These kernels exist only on x86-64 and not in a build with -DDSE_REF_FLOAT (the reference
 * float kernels only: identical float bytes on every target, DESIGN.md §3); then
 * DSE_AVX2_F32 is 0, the files compile to nothing and kernels_x86.inc does not list them.
 *
 * Results differ from the REF kernels within the tolerance stated in docs/kernels.md
 * ("Optimised float variants"): sums use FMA (one rounding per multiply-add), in the REF
 * order over k (sequential), so a sum differs from REF by at most the difference between
 * fused and unfused rounding; exp/sigmoid/tanh/erf are float32 polynomials. Every float
 * kernel's result is the same for any thread count (each output element is computed by one
 * part, in one order). */
#ifndef DSEDGE_AVX2_F32_H
#define DSEDGE_AVX2_F32_H

#include "isa.h"

#if DSE_ARCH_X86_64 && !defined(DSE_REF_FLOAT)
#define DSE_AVX2_F32 1
#include <immintrin.h>

/* Sanitizer builds (the tests' ASan/UBSan/TSan runs): the register-tile templates are not forced
 * inline nor unrolled (DSE_AI, DSE_UNROLL below). The same code, called instead of expanded:
 * forced, clang -O1 -fsanitize=address,undefined spent 519 s on sgemm.c and 76 s on conv.c
 * (10 s and 3 s without). Release builds are unchanged. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define DSE_AVX2_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(undefined_behavior_sanitizer)
#define DSE_AVX2_SANITIZED 1
#endif
#endif

/* Fully unrolls the next loop (the register tiles' loops over rows/columns: their trip counts
 * are constants after inlining; unrolled, their accumulators stay in registers). */
#if defined(DSE_AVX2_SANITIZED)
#define DSE_UNROLL
#if defined(__GNUC__) && !defined(__clang__)
/* not inlined, GCC cannot see that the N-vector helpers fill what they read (N is a constant
 * only after inlining): a false -Wmaybe-uninitialized */
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#else
#define DSE_UNROLL _Pragma("GCC unroll 16")
#endif

/* dse__avx2_mask(n): the first n (0..8) lanes on, for masked loads and stores of a tail. */
static const int32_t dse__avx2_masks[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
static inline __attribute__((always_inline)) DSE_TARGET_AVX2 __m256i dse__avx2_mask(size_t n) {
    return _mm256_loadu_si256((const __m256i *)(dse__avx2_masks + 8 - (n > 8 ? 8 : n)));
}

/* The SGEMM contract (dse_sgemm, every field): src/internal.h. */
DSE_INTERNAL DSE_TARGET_AVX2 void dse__avx2_sgemm(const dse_sgemm *g, size_t i0, size_t i1, size_t j0, size_t j1);
/* The same sum for B given transposed and k contiguous in both: A(i,k) = A[i*sai + k],
 * B(k,j) = B[j*ldb + k] (Gemm transB, matrix-vector products). The sum over k is split into 8
 * interleaved partial sums (lane l takes k = l mod 8), added pairwise at the end. */
DSE_INTERNAL DSE_TARGET_AVX2 void dse__avx2_sgemm_dot(const dse_sgemm *g, size_t i0, size_t i1, size_t j0, size_t j1);

/* A float Conv's geometry for the AVX2 variants (conv.c, winograd.c): REF's checks, float32
 * weights and bias (float16 ones: REF), and the node's scratch plan in why->scratch_plan. */
DSE_INTERNAL int dse__avx2_conv_f32_geom(const dse_model *m, const dse_node *n, dse_conv_geom *g, dse_why *why);

/* One zero-padded input row split by a column stride sw: padded column q = c + pl (c the input
 * column, zero outside [0, IW)) goes to phase q % sw at index q / sw, phase f at br + f * PS, L
 * floats per phase (conv.c's depthwise and band paths, winograd.c's input tiles). */
DSE_INTERNAL DSE_TARGET_AVX2 void dse__avx2_fill_row(float *br, size_t PS, const float *xr, size_t IW, size_t pl, size_t sw, size_t L);

/* The vector functions below work on N (1..4) vectors at once, statement by statement, so that
 * the N long dependency chains interleave (one chain is latency-bound on AMD Zen); the
 * one-vector forms are dse__avx2_exp(x) etc. */
#if defined(DSE_AVX2_SANITIZED)
#define DSE_AI static inline DSE_TARGET_AVX2
#else
#define DSE_AI static inline __attribute__((always_inline)) DSE_TARGET_AVX2
#endif
#define DSE_VL(N) DSE_UNROLL for (int v_ = 0; v_ < (N); v_++)
#define DSE_C(v) _mm256_set1_ps(v)

/* exp(x): x = n ln2 + r (Cody-Waite, |r| <= ln2/2), exp(r) by Cephes' degree-7 polynomial
 * (FMA), times 2^n as two exact powers of two (so subnormal results round once, correctly).
 * x >= 88.7228394 -> +inf, x <= -104 -> 0, NaN stays NaN. Error over every finite float32:
 * docs/kernels.md ("Optimised float variants"). */
DSE_AI void dse__avx2_exp_n(const int N, const __m256 *x, __m256 *y) {
    __m256 xc[4], n[4], r[4], p[4];
    __m256i ni[4];
    DSE_VL(N) xc[v_] = _mm256_min_ps(_mm256_max_ps(x[v_], DSE_C(-104.0f)), DSE_C(88.72283935546875f));
    DSE_VL(N) n[v_] = _mm256_round_ps(_mm256_mul_ps(xc[v_], DSE_C(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    DSE_VL(N) r[v_] = _mm256_fnmadd_ps(n[v_], DSE_C(0.693359375f), xc[v_]);
    DSE_VL(N) r[v_] = _mm256_fnmadd_ps(n[v_], DSE_C(-2.12194440e-4f), r[v_]);
    DSE_VL(N) p[v_] = _mm256_fmadd_ps(DSE_C(1.9875691500e-4f), r[v_], DSE_C(1.3981999507e-3f));
    DSE_VL(N) p[v_] = _mm256_fmadd_ps(p[v_], r[v_], DSE_C(8.3334519073e-3f));
    DSE_VL(N) p[v_] = _mm256_fmadd_ps(p[v_], r[v_], DSE_C(4.1665795894e-2f));
    DSE_VL(N) p[v_] = _mm256_fmadd_ps(p[v_], r[v_], DSE_C(1.6666665459e-1f));
    DSE_VL(N) p[v_] = _mm256_fmadd_ps(p[v_], r[v_], DSE_C(5.0000001201e-1f));
    DSE_VL(N) p[v_] = _mm256_fmadd_ps(p[v_], _mm256_mul_ps(r[v_], r[v_]), _mm256_add_ps(r[v_], DSE_C(1.0f)));
    DSE_VL(N) ni[v_] = _mm256_cvtps_epi32(n[v_]);
    DSE_VL(N) {
        const __m256i n1 = _mm256_srai_epi32(ni[v_], 1), n2 = _mm256_sub_epi32(ni[v_], n1), bias = _mm256_set1_epi32(127);
        const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
        const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
        y[v_] = _mm256_mul_ps(_mm256_mul_ps(p[v_], s1), s2);
    }
    DSE_VL(N) y[v_] = _mm256_blendv_ps(y[v_], x[v_], _mm256_cmp_ps(x[v_], x[v_], _CMP_UNORD_Q));   /* NaN stays */
}

/* sigmoid(x) = 1 / (1 + exp(-x)): e = exp(-|x|), then 1 / (1 + e) for x >= 0 and e / (1 + e)
 * below (no cancellation; subnormal results kept). */
DSE_AI void dse__avx2_sigmoid_n(const int N, const __m256 *x, __m256 *y) {
    __m256 m[4], e[4];
    DSE_VL(N) m[v_] = _mm256_or_ps(x[v_], DSE_C(-0.0f));   /* -|x| */
    dse__avx2_exp_n(N, m, e);
    DSE_VL(N) y[v_] = _mm256_div_ps(_mm256_blendv_ps(e[v_], DSE_C(1.0f), _mm256_cmp_ps(x[v_], _mm256_setzero_ps(), _CMP_GE_OQ)),
                                    _mm256_add_ps(DSE_C(1.0f), e[v_]));
}

/* tanh: |x| < 0.625 by Cephes' odd polynomial, else 1 - 2 / (exp(2|x|) + 1); sign of x. */
DSE_AI void dse__avx2_tanh_n(const int N, const __m256 *x, __m256 *y) {
    __m256 a[4], z[4], p[4], e[4], a2[4];
    DSE_VL(N) a[v_] = _mm256_andnot_ps(DSE_C(-0.0f), x[v_]);
    DSE_VL(N) a2[v_] = _mm256_add_ps(a[v_], a[v_]);
    dse__avx2_exp_n(N, a2, e);
    DSE_VL(N) z[v_] = _mm256_mul_ps(a[v_], a[v_]);
    DSE_VL(N) p[v_] = _mm256_fmadd_ps(DSE_C(-5.70498872745e-3f), z[v_], DSE_C(2.06390887954e-2f));
    DSE_VL(N) p[v_] = _mm256_fmadd_ps(p[v_], z[v_], DSE_C(-5.37397155531e-2f));
    DSE_VL(N) p[v_] = _mm256_fmadd_ps(p[v_], z[v_], DSE_C(1.33314422036e-1f));
    DSE_VL(N) p[v_] = _mm256_fmadd_ps(p[v_], z[v_], DSE_C(-3.33332819422e-1f));
    DSE_VL(N) {
        const __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p[v_], z[v_]), a[v_], a[v_]);
        const __m256 big = _mm256_sub_ps(DSE_C(1.0f), _mm256_div_ps(DSE_C(2.0f), _mm256_add_ps(e[v_], DSE_C(1.0f))));
        const __m256 t = _mm256_blendv_ps(big, small, _mm256_cmp_ps(a[v_], DSE_C(0.625f), _CMP_LT_OQ));
        y[v_] = _mm256_or_ps(t, _mm256_and_ps(x[v_], DSE_C(-0.0f)));   /* sign of x (NaN stays NaN) */
    }
}

/* erf: |x| < 0.875 by an odd polynomial, else 1 - erfc with erfc from exp (below); sign of x. */
DSE_AI void dse__avx2_erf_n(const int N, const __m256 *x, __m256 *y) {
    __m256 a[4], ac[4], t[4], q[4], arg[4], ex[4], p[4], z[4];
    DSE_VL(N) a[v_] = _mm256_andnot_ps(DSE_C(-0.0f), x[v_]);
    /* 0.875 <= |x| < 4: erfc = t exp(-x^2 + Q(t)), t = 1 / (1 + |x|/2), Q of degree 9 (Numerical
     * Recipes' erfcc, relative error < 1.2e-7); from 4 on erf = 1 in float32 (|x| is clamped at 4:
     * no subnormal exp, which is slow) */
    DSE_VL(N) ac[v_] = _mm256_min_ps(a[v_], DSE_C(4.0f));
    DSE_VL(N) t[v_] = _mm256_div_ps(DSE_C(1.0f), _mm256_fmadd_ps(DSE_C(0.5f), ac[v_], DSE_C(1.0f)));
    DSE_VL(N) q[v_] = _mm256_fmadd_ps(DSE_C(1.70872770e-1f), t[v_], DSE_C(-8.22152230e-1f));
    DSE_VL(N) q[v_] = _mm256_fmadd_ps(q[v_], t[v_], DSE_C(1.48851587e+0f));
    DSE_VL(N) q[v_] = _mm256_fmadd_ps(q[v_], t[v_], DSE_C(-1.13520398e+0f));
    DSE_VL(N) q[v_] = _mm256_fmadd_ps(q[v_], t[v_], DSE_C(2.78868080e-1f));
    DSE_VL(N) q[v_] = _mm256_fmadd_ps(q[v_], t[v_], DSE_C(-1.86288060e-1f));
    DSE_VL(N) q[v_] = _mm256_fmadd_ps(q[v_], t[v_], DSE_C(9.67841800e-2f));
    DSE_VL(N) q[v_] = _mm256_fmadd_ps(q[v_], t[v_], DSE_C(3.74091960e-1f));
    DSE_VL(N) q[v_] = _mm256_fmadd_ps(q[v_], t[v_], DSE_C(1.00002368e+0f));
    DSE_VL(N) q[v_] = _mm256_fmadd_ps(q[v_], t[v_], DSE_C(-1.26551223e+0f));
    DSE_VL(N) arg[v_] = _mm256_fnmadd_ps(ac[v_], ac[v_], q[v_]);
    dse__avx2_exp_n(N, arg, ex);
    /* |x| < 0.875: x * P(x^2), P a degree-6 least-squares fit of erf(x)/x (relative error 3e-10) */
    DSE_VL(N) z[v_] = _mm256_mul_ps(a[v_], a[v_]);
    DSE_VL(N) p[v_] = _mm256_fmadd_ps(DSE_C(8.643969340482727e-05f), z[v_], DSE_C(-0.0008203426259569824f));
    DSE_VL(N) p[v_] = _mm256_fmadd_ps(p[v_], z[v_], DSE_C(0.005206031259149313f));
    DSE_VL(N) p[v_] = _mm256_fmadd_ps(p[v_], z[v_], DSE_C(-0.026861267164349556f));
    DSE_VL(N) p[v_] = _mm256_fmadd_ps(p[v_], z[v_], DSE_C(0.11283726245164871f));
    DSE_VL(N) p[v_] = _mm256_fmadd_ps(p[v_], z[v_], DSE_C(-0.37612634897232056f));
    DSE_VL(N) {
        /* a * (c0 + z p) with c0 = 2/sqrt(pi) as hi + lo: one rounding at the end */
        const __m256 small = _mm256_fmadd_ps(a[v_], DSE_C(1.12837922573089599609375f),
                                             _mm256_fmadd_ps(a[v_], DSE_C(-5.8635382771e-08f),
                                                             _mm256_mul_ps(_mm256_mul_ps(a[v_], z[v_]), p[v_])));
        __m256 big = _mm256_sub_ps(DSE_C(1.0f), _mm256_mul_ps(t[v_], ex[v_]));
        big = _mm256_blendv_ps(big, DSE_C(1.0f), _mm256_cmp_ps(a[v_], DSE_C(4.0f), _CMP_GE_OQ));
        __m256 r = _mm256_blendv_ps(big, small, _mm256_cmp_ps(a[v_], DSE_C(0.875f), _CMP_LT_OQ));
        r = _mm256_or_ps(r, _mm256_and_ps(x[v_], DSE_C(-0.0f)));
        y[v_] = _mm256_blendv_ps(r, x[v_], _mm256_cmp_ps(x[v_], x[v_], _CMP_UNORD_Q));   /* NaN stays (min_ps dropped it) */
    }
}

DSE_AI __m256 dse__avx2_exp(__m256 x) { __m256 y; dse__avx2_exp_n(1, &x, &y); return y; }
DSE_AI __m256 dse__avx2_sigmoid(__m256 x) { __m256 y; dse__avx2_sigmoid_n(1, &x, &y); return y; }
DSE_AI __m256 dse__avx2_tanh(__m256 x) { __m256 y; dse__avx2_tanh_n(1, &x, &y); return y; }
DSE_AI __m256 dse__avx2_erf(__m256 x) { __m256 y; dse__avx2_erf_n(1, &x, &y); return y; }

#else
#define DSE_AVX2_F32 0
#endif

#endif
