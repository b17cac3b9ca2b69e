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
#include "mathf.h"

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
/* That SGEMM's driver (kernels/avx2/sgemm.c), shared by the 512-bit one: columns [j0, j1) in chunks of equal
 * whole panels of 16 (at most dse__sgemm_pack_cols(K) columns; none with per-tap offsets), each with g->pack
 * and at least 48 rows packed by pack_first (its first 6 rows' tiles store the panels they read), the
 * other rows by blocks(g', i0 + 6, i1, 0, chunk) on the panels; else blocks(g, i0, i1, jc, je). */
typedef void (*dse_sgemm_pack_first_fn)(const dse_sgemm *g, size_t i0, size_t jc, size_t je, float *dst);
DSE_INTERNAL void dse__sgemm_chunks(const dse_sgemm *g, size_t i0, size_t i1, size_t j0, size_t j1, dse_sgemm_pack_first_fn pack_first,
                                    dse_sgemm_fn blocks);
/* The same sum for B given transposed and k contiguous in both: A(i,k) = A[i*sai + k],
 * B(k,j) = B[j*ldb + k] (Gemm transB, matrix-vector products). The sum over k is split into 8
 * interleaved partial sums (lane l takes k = l mod 8), added pairwise at the end. */
DSE_INTERNAL DSE_TARGET_AVX2 void dse__avx2_sgemm_dot(const dse_sgemm *g, size_t i0, size_t i1, size_t j0, size_t j1);

/* The fused activation function that the tiles do not apply (not DSE_ACT_FN_INLINE: SiLU, GELU) over
 * rows [i, i + mr), product columns [jc, je) of C just stored (with a column map, the stored part of
 * each output row), by dse__avx2_act_fn_row: the AVX2 SGEMM's row blocks, and the 512-bit one's. */
typedef void (*dse_act_row_fn)(int fn, float *y, size_t n);   /* dse__avx2_act_fn_row or the 512-bit one */
DSE_INTERNAL DSE_TARGET_AVX2 void dse__avx2_sgemm_act_rows(const dse_sgemm *g, size_t i, size_t mr, size_t jc, size_t je, dse_act_row_fn row);
/* The float Conv's O32 path (conv.c, layout-8 weights: panels of 32 output channels, k-major): one
 * chunk of kn k of one panel for pixels [pa, pb) of one image, the sums of pixel p and channel c at
 * buf[p * 32 + c] (zero when `first`, else from the previous chunk), the epilogue after the `last`
 * one (+ bias[c], the clamp, an inline activation function: the SGEMM epilogue's operations). */
typedef struct dse_o32_chunk {
    const float *wp, *x;   /* the panel at the chunk's first k (32 floats per k), x's row of that k */
    size_t P, kn;          /* floats per row of x, k in the chunk */
    const float *bias;     /* the panel's 32, or NULL */
    int act, act_fn;
    float lo, hi;
    int first, last;
} dse_o32_chunk;
typedef void (*dse_o32_fn)(const dse_o32_chunk *c, size_t pa, size_t pb, float *buf);
#if DSE_VNNI_OK && !defined(DSE_EMULATE_VNNI)
/* dse__avx2_act_fn_row on 16 lanes (kernels/avx512vnni/act_quantize.c: the same operations per lane,
 * so the same bytes): the fused SiLU/GELU of the 512-bit float Conv, Gemm and MatMul */
DSE_INTERNAL void dse__avx512_act_fn_row(int fn, float *y, size_t n);
/* The O32 chunk on 512-bit vectors, up to 12 pixels x 32 channels a tile (kernels/avx512vnni/sgemm.c) */
DSE_INTERNAL void dse__avx512_o32_chunk(const dse_o32_chunk *c, size_t pa, size_t pb, float *buf);
/* The same SGEMM on 512-bit tiles (kernels/avx512vnni/sgemm.c, ISA avx512vnni): the AVX2 one's bytes
 * (each element's FMA chain and epilogue are the same operations); the avx512vnni float Conv, Gemm
 * and MatMul use it where the AVX2 ones use dse__avx2_sgemm. */
#define DSE_AVX512_F32 1
DSE_INTERNAL DSE_TARGET_AVX512VNNI void dse__avx512_sgemm(const dse_sgemm *g, size_t i0, size_t i1, size_t j0, size_t j1);
#else
#define DSE_AVX512_F32 0
#endif

/* A float Conv's geometry for the AVX2 variants (conv.c, winograd.c): REF's checks, float32
 * weights and bias (float16 ones: REF), and the node's scratch plan in why->scratch_plan. */
DSE_INTERNAL int dse__avx2_conv_f32_geom(const dse_model *m, const dse_node *n, dse_conv_geom *g, dse_why *why);

/* One zero-padded input row split by a column stride sw: padded column q = c + pl (c the input
 * column, zero outside [0, IW)) goes to phase q % sw at index q / sw, phase f at br + f * PS, L
 * floats per phase (conv.c's depthwise and band paths, winograd.c's input tiles). */
DSE_INTERNAL DSE_TARGET_AVX2 void dse__avx2_fill_row(float *br, size_t PS, const float *xr, size_t IW, size_t pl, size_t sw, size_t L);

/* The direct depthwise 3x3 float Conv (kernels/avx2/dwconv.c, conv.c's DW3 path): whether a node's
 * geometry takes it (2-D depthwise, 3x3, dilation 1, strides 1 or 2), its per-node constants, and
 * one channel's plane (zrow: IW zero floats, for the input rows in the padding). */
typedef struct dse_dw3 {
    size_t IH, IW, OH, OW, pt, pl, sh, sw;
    size_t v0, v1;   /* the output columns [v0, v1) whose vectors read only inside the row */
    int act, act_fn;
    float lo, hi;
    const float *zrow;
    dse_act_row_fn act_row;   /* the fused SiLU/GELU over a plane (dse_act_row_fn) */
} dse_dw3;
DSE_INTERNAL int dse__avx2_dw3_takes(const dse_conv_geom *g);
DSE_INTERNAL void dse__avx2_dw3_init(dse_dw3 *d, const dse_conv_geom *g, int act, float lo, float hi, int act_fn);
DSE_INTERNAL DSE_TARGET_AVX2 void dse__avx2_dw3_plane(const dse_dw3 *d, const float *xc, const float *wc, const float *bc, float *yc);
/* One plane by an ISA's four plane functions, indexed (sw - 1) * 2 + (sh - 1), then the fused SiLU/GELU
 * over it (d->act_row): the DW3 entry of each ISA (kernels/avx2/dwconv.c). */
typedef void (*dse_dw3_plane_fn)(const dse_dw3 *d, const float *xc, const float *wc, const float *bc, float *yc);
DSE_INTERNAL void dse__dw3_run(const dse_dw3 *d, dse_dw3_plane_fn const planes[4], const float *xc, const float *wc,
                               const float *bc, float *yc);
#if DSE_AVX512_F32
/* The same on 16 output columns per vector (kernels/avx512vnni/dwconv.c): the same bytes */
DSE_INTERNAL void dse__avx512_dw3_plane(const dse_dw3 *d, const float *xc, const float *wc, const float *bc, float *yc);
#endif

/* The vector functions below work on N (1..4) vectors at once, statement by statement, so that
 * the N long dependency chains interleave (one chain is latency-bound on AMD Zen); the
 * one-vector forms are dse__avx2_exp(x) etc. */
#if defined(DSE_AVX2_SANITIZED)
#define DSE_AI static inline DSE_TARGET_AVX2
#else
#define DSE_AI static inline __attribute__((always_inline)) DSE_TARGET_AVX2
#endif
#define DSE_VL(N) DSE_UNROLL for (int v_ = 0; v_ < (N); v_++)

/* HardSwish of 8 floats with REF's bytes (mathf.h dse_hardswishf: x * (1/6), + 0.5 without FMA,
 * np.clip to [0, 1] keeping NaN, times x; not canonical): the AVX2 HardSwish (unary.c) and the fused
 * `act_fn` 1 of the float Conv kernels (dse__avx2_act_fn, below). The clip is maxps then minps with v as
 * the second operand, which they return when either is NaN (NaN kept, as REF) or both are equal;
 * v = x/6 + 0.5 is never -0 (a sum with 0.5 rounds to +0), so no signed-zero case differs. */
DSE_AI __m256 dse__avx2_hardswish(__m256 x) {
    __m256 v = _mm256_add_ps(_mm256_mul_ps(x, _mm256_set1_ps((float)(1.0 / 6.0))), _mm256_set1_ps(0.5f));
    v = _mm256_min_ps(_mm256_set1_ps(1.0f), _mm256_max_ps(_mm256_setzero_ps(), v));
    return _mm256_mul_ps(x, v);
}
/* exp, sigmoid, tanh, erf: dse__avx2_exp_n(N, x, y) etc. (N vectors at once) and the one-vector
 * forms dse__avx2_exp(x) etc., from the template shared with the NEON kernels (src/vec_mathf.h:
 * the same operations in the same order, so both give the same bytes). */
#define VM_F __m256
#define VM_I __m256i
#define VM_AI DSE_AI
#define VM_NAME(f) dse__avx2_##f
#define VM_VL(N) DSE_VL(N)
#define VM_C(c) _mm256_set1_ps(c)
#define VM_ADD(a, b) _mm256_add_ps(a, b)
#define VM_SUB(a, b) _mm256_sub_ps(a, b)
#define VM_MUL(a, b) _mm256_mul_ps(a, b)
#define VM_DIV(a, b) _mm256_div_ps(a, b)
#define VM_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VM_FNMA(a, b, c) _mm256_fnmadd_ps(a, b, c)
#define VM_MIN(a, b) _mm256_min_ps(a, b)
#define VM_MAX(a, b) _mm256_max_ps(a, b)
#define VM_RINT(a) _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define VM_CVT(a) _mm256_cvtps_epi32(a)
#define VM_ISRA1(i) _mm256_srai_epi32(i, 1)
#define VM_IADD(i, j) _mm256_add_epi32(i, j)
#define VM_ISUB(i, j) _mm256_sub_epi32(i, j)
#define VM_I127 _mm256_set1_epi32(127)
#define VM_EXP2I(i) _mm256_castsi256_ps(_mm256_slli_epi32(i, 23))
#define VM_OR(a, b) _mm256_or_ps(a, b)
#define VM_AND(a, b) _mm256_and_ps(a, b)
#define VM_ANDNOT(a, b) _mm256_andnot_ps(a, b)
#define VM_BLEND(a, b, m) _mm256_blendv_ps(a, b, m)
#define VM_GE(a, b) _mm256_cmp_ps(a, b, _CMP_GE_OQ)
#define VM_LT(a, b) _mm256_cmp_ps(a, b, _CMP_LT_OQ)
#define VM_ISNAN(a) _mm256_cmp_ps(a, a, _CMP_UNORD_Q)
#include "vec_mathf.h"

/* A fused activation function (INT act_fn, internal.h; fn != 0) of N vectors of outputs after the
 * clamp, in place, NaN canonical: the separate float32 nodes' bytes as the AVX2 kernels give them
 * (HardSwish: dse__avx2_hardswish, REF's bytes; SiLU: dse__avx2_silu_n, 4 vectors at a time as the
 * Sigmoid kernel takes them, so that their long dependency chains interleave). N: a constant after
 * inlining (an epilogue's register tile). */
DSE_AI void dse__avx2_act_fn_n(int fn, const int N, __m256 *v) {
    if (fn == DSE_ACT_FN_GELU) {   /* x * (1 + erf(x / sqrt 2)) * 0.5: the Erf kernel's erf, 4 vectors at a time */
        DSE_UNROLL
        for (int k = 0; k < N; k += 4) {
            const int n = N - k < 4 ? N - k : 4;
            __m256 t[4], e[4];
            DSE_UNROLL
            for (int q = 0; q < n; q++) t[q] = _mm256_div_ps(v[k + q], _mm256_set1_ps(1.41421353816986083984375f));
            dse__avx2_erf_n(n, t, e);
            DSE_UNROLL
            for (int q = 0; q < n; q++) v[k + q] = _mm256_mul_ps(_mm256_mul_ps(v[k + q], _mm256_add_ps(e[q], _mm256_set1_ps(1.0f))), _mm256_set1_ps(0.5f));
        }
    } else if (fn == DSE_ACT_FN_SILU) {
        DSE_UNROLL
        for (int k = 0; k < N; k += 4) {
            const int n = N - k < 4 ? N - k : 4;
            __m256 y[4];
            dse__avx2_silu_n(n, v + k, y);   /* (vec_mathf.h: the Sigmoid kernel's sigmoid, times x) */
            DSE_UNROLL
            for (int q = 0; q < n; q++) v[k + q] = y[q];
        }
    } else {   /* DSE_ACT_FN_HARDSWISH (the checks take no other) */
        DSE_UNROLL
        for (int k = 0; k < N; k++) v[k] = dse__avx2_hardswish(v[k]);
    }
    DSE_UNROLL
    for (int k = 0; k < N; k++)
        v[k] = _mm256_blendv_ps(v[k], _mm256_castsi256_ps(_mm256_set1_epi32(0x7FC00000)), _mm256_cmp_ps(v[k], v[k], _CMP_UNORD_Q));
}
/* The same of one vector. */
DSE_AI __m256 dse__avx2_act_fn(int fn, __m256 x) { dse__avx2_act_fn_n(fn, 1, &x); return x; }
/* The same of one vector in an epilogue, for the functions applied there (DSE_ACT_FN_INLINE:
 * HardSwish): only their code is inlined. */
DSE_AI __m256 dse__avx2_act_fn_inline(int fn, __m256 x) {
    (void)fn;
    dse__avx2_act_fn_n(DSE_ACT_FN_HARDSWISH, 1, &x);
    return x;
}
/* The same of y[0 .. n) in place (any alignment): a pass over outputs the caller just wrote and that
 * are still in L1/L2 (sgemm.c's row blocks, conv.c's depthwise planes, winograd.c's rows). */
DSE_INTERNAL DSE_TARGET_AVX2 void dse__avx2_act_fn_row(int fn, float *y, size_t n);
/* The same of one output (a scalar epilogue): lane 0 of the vector form, so the same bytes. */
DSE_AI float dse__avx2_act_fn1(int fn, float x) { return _mm256_cvtss_f32(dse__avx2_act_fn(fn, _mm256_set1_ps(x))); }
#if DSE_AVX512_F32
/* dse__avx512_mask(n): the first n (0..16) lanes on, for masked loads and stores of a tail */
static inline __attribute__((always_inline)) __mmask16 dse__avx512_mask(size_t n) {
    return n >= 16 ? (__mmask16)0xFFFFu : (__mmask16)((1u << n) - 1u);
}
/* dse__avx2_act_fn_inline of 16 lanes (the 512-bit float kernels' epilogues): the AVX2 code on each half */
static inline __attribute__((always_inline)) DSE_TARGET_AVX512VNNI __m512 dse__avx512_act_fn_inline(int fn, __m512 v) {
    const __m256 lo = dse__avx2_act_fn_inline(fn, _mm512_castps512_ps256(v));
    const __m256 hi = dse__avx2_act_fn_inline(fn, _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(lo)), _mm256_castps_pd(hi), 1));
}
#endif

#else
#define DSE_AVX2_F32 0
#define DSE_AVX512_F32 0
#endif

#endif
