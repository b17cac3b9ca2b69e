/* neon_f32.h: what the float32 arm64 kernels (kernels/neon/{sgemm,conv_f32,gemm_f32,unary,softmax}.c)
 * share: the register-blocked SGEMM drivers of sgemm.c, the clamp, and the vector exp, sigmoid,
 * tanh and erf (src/vec_mathf.h, the AVX2 kernels' arithmetic).
 *
 * These kernels exist only on arm64 (Advanced SIMD is baseline there: ISA `neon`) and not in a
 * build with -DDSE_REF_FLOAT (the reference float kernels only: identical float bytes on every
 * target, DESIGN.md §3); then DSE_NEON_F32 is 0, the files compile to nothing and
 * kernels_arm64.inc does not list them.
 *
 * Arithmetic: every sum is a chain of fused multiply-adds (fmla: one rounding per term) from 0
 * in a stated order over k; the epilogue is REF's, operation by operation (× alpha, + bias,
 * + C or C·beta, then the clamp by compare-and-select, so NaN and -0 behave as REF's `if`s).
 * So an output differs from REF's only by fused against unfused rounding (and, for the
 * dot-product tile, the order of four partial sums): within the tolerance stated in
 * docs/kernels.md ("Optimised float variants", arm64): |neon - ref| <= 4 (K + 1) 2^-24 S per
 * element, S the sum of the absolute values of the terms (and bias, C). Every result is the
 * same for any thread count (each output element is computed by one part, in one order). */
#ifndef DSEDGE_NEON_F32_H
#define DSEDGE_NEON_F32_H

#include "isa.h"
#include "mathf.h"

#if DSE_ARCH_ARM64
#include <arm_neon.h>
/* HardSwish of 4 floats with REF's bytes (mathf.h dse_hardswishf): x * (1/6), + 0.5 (no fmla), the
 * clip to [0, 1] by fmax then fmin (a NaN propagates as np.clip keeps it; v = x/6 + 0.5 is never -0,
 * so fmax's +0 > -0 never differs from REF's compare), times x; not canonical. The NEON HardSwish
 * (kernels/neon/unary.c, an exact kernel kept with -DDSE_REF_FLOAT) and the fused `act_fn` 1
 * (dse__neon_act_fn, below) both use it. */
static inline float32x4_t dse__neon_hardswish(float32x4_t x) {
    float32x4_t v = vaddq_f32(vmulq_f32(x, vdupq_n_f32((float)(1.0 / 6.0))), vdupq_n_f32(0.5f));
    v = vminq_f32(vdupq_n_f32(1.0f), vmaxq_f32(vdupq_n_f32(0.0f), v));
    return vmulq_f32(x, v);
}
#endif

#if DSE_ARCH_ARM64 && !defined(DSE_REF_FLOAT)
#define DSE_NEON_F32 1
#include <arm_neon.h>

/* for the register-tile templates: forced inline (their row and column counts are constants
 * after inlining) and their loops over rows fully unrolled (accumulators stay in registers) */
#define DSE_NEON_AI static inline __attribute__((always_inline))
#define DSE_NEON_UNROLL _Pragma("GCC unroll 8")

/* REF's clamp `v = v < lo ? lo : v; v = v > hi ? hi : v` on 4 lanes (not fmin/fmax: those
 * differ on -0 against +0 and on NaN bounds). */
DSE_NEON_AI float32x4_t dse__neon_clamp(float32x4_t v, float32x4_t lo, float32x4_t hi) {
    v = vbslq_f32(vcltq_f32(v, lo), lo, v);
    return vbslq_f32(vcgtq_f32(v, hi), hi, v);
}

/* C[i, j] for i in [i0, i1), j in [j0, j1) by the dse_sgemm contract (src/internal.h) without
 * boff, bpanel and the column map (all 0): B(k,j) = B[k*ldb + j] (j contiguous). Tiles of up
 * to 8 rows x 8 columns (16 accumulators); per element one FMA chain over k ascending, then
 * the epilogue. Reads whole 8-float rows of B where they end inside B's K x ldb region (the
 * extra lanes never stored), a copy of the row's real columns elsewhere. With g->pack and at
 * least 32 rows, each chunk of dse__sgemm_pack_cols(K) columns is first copied into panels of
 * 8 columns (zero padded) in g->pack (dse__sgemm_pack_floats(K) floats). */
DSE_INTERNAL void dse__neon_sgemm(const dse_sgemm *g, size_t i0, size_t i1, size_t j0, size_t j1);
/* The same product for B given transposed and k contiguous in both: A(i,k) = A[i*sai + k]
 * (sak must be 1), B(k,j) = B[j*ldb + k] (Gemm transB, MatMul with N = 1). Each element's sum is
 * split into 8 partial sums (lane l takes k = l mod 8, one FMA chain each; the last K % 8 terms
 * as one more step, 0 x 0 in the lanes past K), added ((l0 + l4) + (l2 + l6)) + ((l1 + l5) +
 * (l3 + l7)); then the epilogue. */
DSE_INTERNAL void dse__neon_sgemm_dot(const dse_sgemm *g, size_t i0, size_t i1, size_t j0, size_t j1);

/* exp, sigmoid, tanh, erf: dse__neon_exp_n(N, x, y) etc. (N vectors of 4 at once) and the
 * one-vector forms dse__neon_exp(x) etc., from the template shared with the AVX2 kernels
 * (src/vec_mathf.h): every step is the AVX2 code's operation (fmla/fmls exactly where AVX2 has
 * an FMA; x86's minps/maxps and blendv by compare and bit-select), so both give the same bytes. */
#define VM_F float32x4_t
#define VM_I int32x4_t
#define VM_AI DSE_NEON_AI
#define VM_NAME(f) dse__neon_##f
#define VM_VL(N) DSE_NEON_UNROLL for (int v_ = 0; v_ < (N); v_++)
#define VM_C(c) vdupq_n_f32(c)
#define VM_ADD(a, b) vaddq_f32(a, b)
#define VM_SUB(a, b) vsubq_f32(a, b)
#define VM_MUL(a, b) vmulq_f32(a, b)
#define VM_DIV(a, b) vdivq_f32(a, b)
#define VM_FMA(a, b, c) vfmaq_f32(c, a, b)
#define VM_FNMA(a, b, c) vfmsq_f32(c, a, b)
#define VM_MIN(a, b) vbslq_f32(vcltq_f32(a, b), a, b)
#define VM_MAX(a, b) vbslq_f32(vcgtq_f32(a, b), a, b)
#define VM_RINT(a) vrndnq_f32(a)
#define VM_CVT(a) vcvtnq_s32_f32(a)
#define VM_ISRA1(i) vshrq_n_s32(i, 1)
#define VM_IADD(i, j) vaddq_s32(i, j)
#define VM_ISUB(i, j) vsubq_s32(i, j)
#define VM_I127 vdupq_n_s32(127)
#define VM_EXP2I(i) vreinterpretq_f32_s32(vshlq_n_s32(i, 23))
#define VM_BITS_(op, a, b) vreinterpretq_f32_u32(op(vreinterpretq_u32_f32(a), vreinterpretq_u32_f32(b)))
#define VM_OR(a, b) VM_BITS_(vorrq_u32, a, b)
#define VM_AND(a, b) VM_BITS_(vandq_u32, a, b)
#define VM_ANDNOT(a, b) VM_BITS_(vbicq_u32, b, a)
#define VM_BLEND(a, b, m) vbslq_f32(m, b, a)
#define VM_GE(a, b) vcgeq_f32(a, b)
#define VM_LT(a, b) vcltq_f32(a, b)
#define VM_ISNAN(a) vmvnq_u32(vceqq_f32(a, a))
#include "vec_mathf.h"
#undef VM_BITS_

/* A fused activation function (INT act_fn, internal.h; fn != 0) of N vectors of outputs after the
 * clamp, in place, NaN canonical: the separate float32 nodes' bytes as the NEON kernels give them
 * (HardSwish: dse__neon_hardswish, REF's bytes; SiLU: dse__neon_silu_n, 4 vectors at a time as the
 * Sigmoid kernel takes them, so that their long dependency chains interleave). */
DSE_NEON_AI void dse__neon_act_fn_n(int fn, const int N, float32x4_t *v) {
    if (fn == DSE_ACT_FN_GELU) {   /* x * (1 + erf(x / sqrt 2)) * 0.5: the Erf kernel's erf, 4 vectors at a time */
        DSE_NEON_UNROLL
        for (int k = 0; k < N; k += 4) {
            const int n = N - k < 4 ? N - k : 4;
            float32x4_t t[4], e[4];
            DSE_NEON_UNROLL
            for (int q = 0; q < n; q++) t[q] = vdivq_f32(v[k + q], vdupq_n_f32(1.41421353816986083984375f));
            dse__neon_erf_n(n, t, e);
            DSE_NEON_UNROLL
            for (int q = 0; q < n; q++) v[k + q] = vmulq_f32(vmulq_f32(v[k + q], vaddq_f32(e[q], vdupq_n_f32(1.0f))), vdupq_n_f32(0.5f));
        }
    } else if (fn == DSE_ACT_FN_SILU) {
        DSE_NEON_UNROLL
        for (int k = 0; k < N; k += 4) {
            const int n = N - k < 4 ? N - k : 4;
            float32x4_t y[4];
            dse__neon_silu_n(n, v + k, y);   /* (vec_mathf.h: the Sigmoid kernel's sigmoid, times x) */
            for (int q = 0; q < n; q++) v[k + q] = y[q];
        }
    } else {   /* DSE_ACT_FN_HARDSWISH (the checks take no other) */
        for (int k = 0; k < N; k++) v[k] = dse__neon_hardswish(v[k]);
    }
    for (int k = 0; k < N; k++) v[k] = vbslq_f32(vceqq_f32(v[k], v[k]), v[k], vreinterpretq_f32_u32(vdupq_n_u32(0x7FC00000u)));
}
/* The same of one vector. */
DSE_NEON_AI float32x4_t dse__neon_act_fn(int fn, float32x4_t x) { dse__neon_act_fn_n(fn, 1, &x); return x; }
/* The same of one vector in an epilogue, for the functions applied there (DSE_ACT_FN_INLINE:
 * HardSwish): only their code is inlined. */
DSE_NEON_AI float32x4_t dse__neon_act_fn_inline(int fn, float32x4_t x) {
    (void)fn;
    dse__neon_act_fn_n(DSE_ACT_FN_HARDSWISH, 1, &x);
    return x;
}
/* The same of y[0 .. n) in place: a post-pass over outputs the caller just wrote, while they are in
 * L1/L2 (kernels/neon/sgemm.c: its epilogues; conv_f32.c: the depthwise planes), 4 vectors at a time. */
DSE_INTERNAL void dse__neon_act_fn_row(int fn, float *y, size_t n);
/* The same of one output (a scalar epilogue): lane 0 of the vector form, so the same bytes. */
DSE_NEON_AI float dse__neon_act_fn1(int fn, float x) { return vgetq_lane_f32(dse__neon_act_fn(fn, vdupq_n_f32(x)), 0); }

#else
#define DSE_NEON_F32 0
#endif

#endif
