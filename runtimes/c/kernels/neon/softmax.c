/* softmax.c (NEON, arm64): float32 Softmax and LogSoftmax, the arithmetic of kernels/avx2/softmax.c
 * element by element (the geometry of kernels/ref/softmax.c: lines of `len` elements along `axis`,
 * or the whole trailing block with coerce_2d; check dse__check_softmax_f32_opt, shared with AVX2):
 *   - lines with inner stride 1 (the last axis): max, then sum = 8 partial sums of exp(x - max)
 *     (partial sum l: elements l mod 8, in two vectors of 4; the last L % 8 elements as one more
 *     step padded with exp(-inf) = 0) added ((s0 + s4) + (s2 + s6)) + ((s1 + s5) + (s3 + s7)),
 *     AVX2's horizontal sum; then y = exp(x - max) / sum (LogSoftmax: (x - max) - log(sum), log
 *     from mathf.c);
 *   - lines with inner >= 8: 4 neighbouring lines per instruction (the last inner % 4 one by one),
 *     each in REF's order (max as REF, sum sequential along the line): only exp differs from REF.
 * exp is src/vec_mathf.h's (AVX2's), so every input gives the AVX2 kernels' bytes; a line with a
 * NaN or +inf (or only -inf) gives the canonical NaN everywhere, as REF and AVX2.
 * Threads: blocks of lines. */
#include "neon_f32.h"
#include "mathf.h"

#if DSE_NEON_F32

static inline float32x4_t nsm_canon(float32x4_t y) {   /* NaN -> 0x7FC00000, as REF */
    return vbslq_f32(vceqq_f32(y, y), y, vreinterpretq_f32_u32(vdupq_n_u32(0x7FC00000u)));
}

/* lines along the last axis: [begin, end) of outer */
static void nsm_rows(void *arg, size_t begin, size_t end, unsigned worker) {
    (void)worker;
    const dse_softmax_job *j = arg;
    const size_t L = j->len, L8 = L & ~(size_t)7;
    for (size_t o = begin; o < end; o++) {
        const float *x = j->x + o * L;
        float *y = j->y + o * L;
        float32x4_t mv = vdupq_n_f32(-__builtin_inff());
        size_t k = 0;
        for (; k < L8; k += 4) mv = vmaxq_f32(mv, vld1q_f32(x + k));
        float mx = vmaxvq_f32(mv);   /* (a NaN in the line makes the sum, so every output, NaN) */
        for (; k < L; k++) if (!(x[k] <= mx)) mx = x[k];
        const float32x4_t mb = vdupq_n_f32(mx);
        float32x4_t s0 = vdupq_n_f32(0.0f), s1 = vdupq_n_f32(0.0f);   /* partial sums 0-3, 4-7 */
        for (k = 0; k < L8; k += 8) {
            float32x4_t v[2] = {vsubq_f32(vld1q_f32(x + k), mb), vsubq_f32(vld1q_f32(x + k + 4), mb)}, e[2];
            dse__neon_exp_n(2, v, e);
            s0 = vaddq_f32(s0, e[0]);
            s1 = vaddq_f32(s1, e[1]);
            if (!j->logsm) { vst1q_f32(y + k, e[0]); vst1q_f32(y + k + 4, e[1]); }
        }
        if (k < L) {
            float t[8];
            for (size_t q = 0; q < 8; q++) t[q] = k + q < L ? x[k + q] - mx : -__builtin_inff();
            float32x4_t v[2] = {vld1q_f32(t), vld1q_f32(t + 4)}, e[2];
            dse__neon_exp_n(2, v, e);
            s0 = vaddq_f32(s0, e[0]);
            s1 = vaddq_f32(s1, e[1]);
            vst1q_f32(t, e[0]);
            vst1q_f32(t + 4, e[1]);
            if (!j->logsm) for (size_t q = 0; k + q < L; q++) y[k + q] = t[q];
        }
        const float32x4_t s = vaddq_f32(s0, s1);   /* lane l: s_l + s_(l+4) */
        const float sum = (vgetq_lane_f32(s, 0) + vgetq_lane_f32(s, 2)) + (vgetq_lane_f32(s, 1) + vgetq_lane_f32(s, 3));
        if (j->logsm) {
            const float ls = dse_logf(sum);
            const float32x4_t lv = vdupq_n_f32(ls);
            for (k = 0; k + 4 <= L; k += 4) vst1q_f32(y + k, nsm_canon(vsubq_f32(vsubq_f32(vld1q_f32(x + k), mb), lv)));
            for (; k < L; k++) y[k] = dse_canonf((x[k] - mx) - ls);
        } else {
            const float32x4_t sb = vdupq_n_f32(sum);
            for (k = 0; k + 4 <= L; k += 4) vst1q_f32(y + k, nsm_canon(vdivq_f32(vld1q_f32(y + k), sb)));
            for (; k < L; k++) y[k] = dse_canonf(y[k] / sum);
        }
    }
}

/* 4 neighbouring lines (inner >= 8) from line i of block o, each lane in REF's order. */
static void nsm_cols_block(const dse_softmax_job *j, size_t o, size_t i) {
    const size_t L = j->len, S = j->inner;
    const float *x = j->x + o * L * S + i;
    float *y = j->y + o * L * S + i;
    float32x4_t mx = vld1q_f32(x);
    for (size_t k = 1; k < L; k++) {   /* REF: if (!(v <= mx)) mx = v */
        const float32x4_t v = vld1q_f32(x + k * S);
        mx = vbslq_f32(vcleq_f32(v, mx), mx, v);
    }
    float32x4_t sum = vdupq_n_f32(0.0f);
    if (j->logsm) {
        for (size_t k = 0; k < L; k++) sum = vaddq_f32(sum, dse__neon_exp(vsubq_f32(vld1q_f32(x + k * S), mx)));
        float t[4];
        vst1q_f32(t, sum);
        for (int q = 0; q < 4; q++) t[q] = dse_logf(t[q]);
        const float32x4_t ls = vld1q_f32(t);
        for (size_t k = 0; k < L; k++) vst1q_f32(y + k * S, nsm_canon(vsubq_f32(vsubq_f32(vld1q_f32(x + k * S), mx), ls)));
    } else {
        for (size_t k = 0; k < L; k++) {
            const float32x4_t e = dse__neon_exp(vsubq_f32(vld1q_f32(x + k * S), mx));
            vst1q_f32(y + k * S, e);
            sum = vaddq_f32(sum, e);
        }
        for (size_t k = 0; k < L; k++) vst1q_f32(y + k * S, nsm_canon(vdivq_f32(vld1q_f32(y + k * S), sum)));
    }
}

/* exp of one value by the vector function (the strided lines left over, REF's order) */
static float nsm_exp1(float v) { return vgetq_lane_f32(dse__neon_exp(vdupq_n_f32(v)), 0); }

static const dse_softmax_isa nsm_isa = {nsm_rows, nsm_cols_block, nsm_exp1, 4};

void dse_f32_softmax__neon(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) { dse__softmax_f32_opt_run(m, n, arena, cx, 0, &nsm_isa); }
void dse_f32_logsoftmax__neon(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) { dse__softmax_f32_opt_run(m, n, arena, cx, 1, &nsm_isa); }

#endif
