/* elementwise.c (AVX2): the float dsedge.Elementwise program kernel (kernels/ref/elementwise.c)
 * compiled for AVX2: the same block loop (src/ew_program.h, part 2), whose loops the compiler
 * vectorises eight lanes wide instead of four; the same IEEE operations in the same order (no
 * contraction: -ffp-contract=off), so REF's bytes, float and int8 outputs alike, except the
 * transcendental steps (Exp, Sigmoid, Tanh, Erf), which are the AVX2 Exp/Sigmoid/Tanh/Erf
 * kernels' float32 polynomials (src/vec_mathf.h; their bytes, within docs/kernels.md's
 * tolerance of REF), or REF's own functions in a -DDSE_REF_FLOAT build. */
#include "isa.h"

#if DSE_ARCH_X86_64
#include "ew_program.h"
#include "avx2_f32.h"

#include "quantize_avx2.h"

/* int8 output: QuantizeLinear of a block, 32 lanes at a time (quantize_avx2.h: REF's bits) */
DSE_TARGET_AVX2 static inline void ew_quantize_avx2(const float *r, int8_t *y, float s, int zp) {
    const __m256 vs = _mm256_set1_ps(s);
    const __m256i vz = _mm256_set1_epi32(zp), lo = _mm256_set1_epi32(-128), hi = _mm256_set1_epi32(127);
    for (int j = 0; j < EW_BLOCK; j += 32) avx2_q32(r + j, y + j, vs, vz, lo, hi, 0);
}

#if DSE_AVX2_F32
/* a transcendental step over a block: four vectors per call, as the standalone kernels (unary.c) */
#define EW_VMATH(o, a, FN)                                                              \
    for (int i_ = 0; i_ < EW_BLOCK; i_ += 32) {                                         \
        __m256 x_[4], y_[4];                                                            \
        for (int k_ = 0; k_ < 4; k_++) x_[k_] = _mm256_loadu_ps((a) + i_ + 8 * k_);     \
        FN(4, x_, y_);                                                                  \
        for (int k_ = 0; k_ < 4; k_++) _mm256_storeu_ps((o) + i_ + 8 * k_, y_[k_]);     \
    }
#define EW_EXP(o, a) EW_VMATH(o, a, dse__avx2_exp_n)
#define EW_SIGMOID(o, a) EW_VMATH(o, a, dse__avx2_sigmoid_n)
#define EW_TANH(o, a) EW_VMATH(o, a, dse__avx2_tanh_n)
#define EW_ERF(o, a) EW_VMATH(o, a, dse__avx2_erf_n)
#endif
#define EW_FN(name) name##_avx2
#define EW_TARGET DSE_TARGET_AVX2
#define EW_QUANTIZE ew_quantize_avx2
#include "ew_program.h"
#undef EW_VMATH

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
