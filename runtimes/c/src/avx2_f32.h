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

/* Fully unrolls the next loop (the register tiles' loops over rows/columns: their trip counts
 * are constants after inlining; unrolled, their accumulators stay in registers). */
#define DSE_UNROLL _Pragma("GCC unroll 16")

/* dse__avx2_mask(n): the first n (0..8) lanes on, for masked loads and stores of a tail. */
static const int32_t dse__avx2_masks[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
static inline __attribute__((always_inline)) DSE_TARGET_AVX2 __m256i dse__avx2_mask(size_t n) {
    return _mm256_loadu_si256((const __m256i *)(dse__avx2_masks + 8 - (n > 8 ? 8 : n)));
}

/* C[i, j] for i in [i0, i1), j in [j0, j1) of
 *     v = sum_k A(i,k) B(k,j)           (k ascending, FMA)
 *     v = v * alpha                     (when use_alpha)
 *     v = v + bias_m[i]                 (when bias_m)
 *     v = v + Cm(i,j)  or  Cm(i,j)*beta (cmode 1 / 2; Cm(i,j) = Cm[i*csi + j*csj], csj 0 or 1)
 *     v = min(max(v, lo), hi)           (when act)
 * A(i,k) = A[i*sai + k*sak]; B(k,j) = B[k*ldb + j] (j contiguous), or, with bpanel != 0, B is
 * packed in panels of 16 columns: B(k,j) = B[(j/16)*bpanel + k*16 + j%16] (j counted from 0
 * at the start of the packed tile: the caller passes j0 = 0 relative to it and C shifted), or,
 * with boff, B(k,j) = B[boff[k] + j] (rows anywhere; B must have 16 floats of slack after
 * the last column any row is read to). C(i,j) = C[i*ldc + j], or, with a column map cw != 0,
 * C[i*ldc + (j / cw) * cv + j % cw], stored only where j % cw < cv (output rows of cv columns
 * computed as rows of cw). */
typedef struct dse_sgemm {
    size_t K;
    const float *A; size_t sai, sak;
    const float *B; size_t ldb, bpanel;
    const size_t *boff;
    float *C; size_t ldc, cw, cv;
    int use_alpha; float alpha;
    const float *bias_m;
    int cmode; const float *Cm; size_t csi, csj; float beta;
    int act; float lo, hi;
} dse_sgemm;
DSE_INTERNAL DSE_TARGET_AVX2 void dse__avx2_sgemm(const dse_sgemm *g, size_t i0, size_t i1, size_t j0, size_t j1);
/* The same sum for B given transposed and k contiguous in both: A(i,k) = A[i*sai + k],
 * B(k,j) = B[j*ldb + k] (Gemm transB, matrix-vector products). The sum over k is split into 8
 * interleaved partial sums (lane l takes k = l mod 8), added pairwise at the end. */
DSE_INTERNAL DSE_TARGET_AVX2 void dse__avx2_sgemm_dot(const dse_sgemm *g, size_t i0, size_t i1, size_t j0, size_t j1);

/* exp(x) for 8 floats: x = n ln2 + r (Cody-Waite, |r| <= ln2/2), exp(r) by Cephes' degree-7
 * polynomial (FMA), times 2^n as two exact powers of two (so subnormal results round once,
 * correctly). x >= 88.7228394 -> +inf, x <= -104 -> 0, NaN stays NaN. Error over every
 * finite float32: docs/kernels.md ("Optimised float variants"). */
static inline __attribute__((always_inline)) DSE_TARGET_AVX2 __m256 dse__avx2_exp(__m256 x) {
    __m256 xc = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-104.0f)), _mm256_set1_ps(88.72283935546875f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i ni = _mm256_cvtps_epi32(n), n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    const __m256i bias = _mm256_set1_epi32(127);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    __m256 y = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
    return _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));   /* NaN stays */
}

/* sigmoid(x) = 1 / (1 + exp(-x)): e = exp(-|x|), then 1 / (1 + e) for x >= 0 and e / (1 + e)
 * below (no cancellation; subnormal results kept). */
static inline __attribute__((always_inline)) DSE_TARGET_AVX2 __m256 dse__avx2_sigmoid(__m256 x) {
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256 e = dse__avx2_exp(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x)));   /* exp(-|x|) in (0, 1] */
    const __m256 num = _mm256_blendv_ps(e, one, _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GE_OQ));
    return _mm256_div_ps(num, _mm256_add_ps(one, e));
}

/* tanh: |x| < 0.625 by Cephes' odd polynomial, else 1 - 2 / (exp(2|x|) + 1); sign of x. */
static inline __attribute__((always_inline)) DSE_TARGET_AVX2 __m256 dse__avx2_tanh(__m256 x) {
    const __m256 a = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x), one = _mm256_set1_ps(1.0f);
    const __m256 z = _mm256_mul_ps(a, a);   /* |x| < 0.625: Cephes' tanhf polynomial */
    __m256 p = _mm256_set1_ps(-5.70498872745e-3f);
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(2.06390887954e-2f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-5.37397155531e-2f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(1.33314422036e-1f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-3.33332819422e-1f));
    const __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, z), a, a);
    const __m256 e = dse__avx2_exp(_mm256_add_ps(a, a));
    const __m256 big = _mm256_sub_ps(one, _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, one)));
    const __m256 y = _mm256_blendv_ps(big, small, _mm256_cmp_ps(a, _mm256_set1_ps(0.625f), _CMP_LT_OQ));
    return _mm256_or_ps(y, _mm256_and_ps(x, _mm256_set1_ps(-0.0f)));   /* sign of x (NaN stays NaN) */
}

/* erf: |x| < 0.875 by an odd polynomial, else 1 - erfc with erfc from exp (below); sign of x. */
static inline __attribute__((always_inline)) DSE_TARGET_AVX2 __m256 dse__avx2_erf(__m256 x) {
    const __m256 a = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x), one = _mm256_set1_ps(1.0f), z = _mm256_mul_ps(a, a);
    /* |x| < 0.875: x * P(x^2), P a degree-6 least-squares fit of erf(x)/x (relative error 3e-10) */
    __m256 p = _mm256_set1_ps(8.643969340482727e-05f);
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-0.0008203426259569824f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(0.005206031259149313f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-0.026861267164349556f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(0.11283726245164871f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-0.37612634897232056f));
    /* a * (c0 + z p) with c0 = 2/sqrt(pi) as hi + lo: one rounding at the end */
    const __m256 small = _mm256_fmadd_ps(a, _mm256_set1_ps(1.12837922573089599609375f),
                                         _mm256_fmadd_ps(a, _mm256_set1_ps(-5.8635382771e-08f), _mm256_mul_ps(_mm256_mul_ps(a, z), p)));
    /* 0.875 <= |x| < 4: erfc = t exp(-x^2 + Q(t)), t = 1 / (1 + |x|/2), Q of degree 9 (Numerical
     * Recipes' erfcc, relative error < 1.2e-7); from 4 on erf = 1 in float32 */
    const __m256 ac = _mm256_min_ps(a, _mm256_set1_ps(4.0f));   /* no subnormal exp (slow) where erf = 1 */
    const __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(0.5f), ac, one));
    __m256 q = _mm256_set1_ps(1.70872770e-1f);
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(-8.22152230e-1f));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(1.48851587e+0f));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(-1.13520398e+0f));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(2.78868080e-1f));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(-1.86288060e-1f));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(9.67841800e-2f));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(3.74091960e-1f));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(1.00002368e+0f));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(-1.26551223e+0f));
    const __m256 erfc = _mm256_mul_ps(t, dse__avx2_exp(_mm256_fnmadd_ps(ac, ac, q)));
    __m256 big = _mm256_sub_ps(one, erfc);
    big = _mm256_blendv_ps(big, one, _mm256_cmp_ps(a, _mm256_set1_ps(4.0f), _CMP_GE_OQ));
    __m256 y = _mm256_blendv_ps(big, small, _mm256_cmp_ps(a, _mm256_set1_ps(0.875f), _CMP_LT_OQ));
    y = _mm256_or_ps(y, _mm256_and_ps(x, _mm256_set1_ps(-0.0f)));
    return _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));   /* NaN stays (min_ps dropped it) */
}

#else
#define DSE_AVX2_F32 0
#endif

#endif
