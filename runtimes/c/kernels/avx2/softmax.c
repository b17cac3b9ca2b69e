/* softmax.c (AVX2): float32 Softmax and LogSoftmax (the geometry of kernels/ref/softmax.c:
 * lines of `len` elements along `axis`, or the whole trailing block with coerce_2d).
 *   - lines with inner stride 1 (the last axis): 8 elements per instruction along the line;
 *     max, then sum = the 8 lane sums of exp(x - max) (lane l: elements l mod 8, then added
 *     pairwise), then y = exp(x - max) / sum (LogSoftmax: (x - max) - log(sum), log from
 *     mathf.c);
 *   - lines with inner >= 8: 8 neighbouring lines per instruction, each lane in REF's order
 *     (max as REF, sum sequential along the line): only exp differs from REF.
 * exp is the polynomial of src/avx2_f32.h (4 vectors at a time along a line: their chains
 * interleave): results within the tolerance of docs/kernels.md. NaN
 * outputs (a line with a NaN or +inf, or only -inf) are the canonical 0x7FC00000, as REF's.
 * Check: dse__check_softmax_f32_opt (kernels/ref/softmax.c, shared with kernels/neon/softmax.c,
 * which does the same arithmetic per element).
 * Threads: blocks of lines. */
#include "avx2_f32.h"
#include "mathf.h"

#if DSE_AVX2_F32

static DSE_TARGET_AVX2 inline __m256 sm_canon(__m256 y) {   /* NaN -> 0x7FC00000, as REF */
    return _mm256_blendv_ps(y, _mm256_castsi256_ps(_mm256_set1_epi32(0x7FC00000)), _mm256_cmp_ps(y, y, _CMP_UNORD_Q));
}

static DSE_TARGET_AVX2 float sm_hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

/* lines along the last axis: [begin, end) of outer */
static DSE_TARGET_AVX2 void sm_rows(void *arg, size_t begin, size_t end, unsigned worker) {
    (void)worker;
    const dse_softmax_job *j = arg;
    const size_t L = j->len, L8 = L & ~(size_t)7;
    for (size_t o = begin; o < end; o++) {
        const float *x = j->x + o * L;
        float *y = j->y + o * L;
        __m256 mv = _mm256_set1_ps(-__builtin_inff());
        size_t k = 0;
        for (; k < L8; k += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(x + k));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mv), _mm256_extractf128_ps(mv, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        float mx = _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)));
        for (; k < L; k++) if (!(x[k] <= mx)) mx = x[k];
        /* (a NaN in the line makes the sum, so every output, NaN, as in REF) */
        const __m256 mb = _mm256_set1_ps(mx);
        __m256 sv = _mm256_setzero_ps();
        /* 4 vectors' exps at once (one exp is a latency-bound chain: ~35 cycles a vector alone),
         * added to the lane sums in element order: the bytes of one vector at a time */
        for (k = 0; k + 32 <= L8; k += 32) {
            __m256 v[4], e[4];
            for (int q = 0; q < 4; q++) v[q] = _mm256_sub_ps(_mm256_loadu_ps(x + k + 8 * q), mb);
            dse__avx2_exp_n(4, v, e);
            for (int q = 0; q < 4; q++) {
                sv = _mm256_add_ps(sv, e[q]);
                if (!j->logsm) _mm256_storeu_ps(y + k + 8 * q, e[q]);
            }
        }
        for (; k < L8; k += 8) {
            const __m256 v = _mm256_sub_ps(_mm256_loadu_ps(x + k), mb);
            const __m256 e = dse__avx2_exp(v);
            sv = _mm256_add_ps(sv, e);
            if (!j->logsm) _mm256_storeu_ps(y + k, e);
        }
        if (k < L) {
            float t[8];
            for (size_t q = 0; q < 8; q++) t[q] = k + q < L ? x[k + q] - mx : -__builtin_inff();
            const __m256 e = dse__avx2_exp(_mm256_loadu_ps(t));
            sv = _mm256_add_ps(sv, e);
            _mm256_storeu_ps(t, e);
            if (!j->logsm) for (size_t q = 0; k + q < L; q++) y[k + q] = t[q];
        }
        const float sum = sm_hsum(sv);
        if (j->logsm) {
            const __m256 ls = _mm256_set1_ps(dse_logf(sum));
            for (k = 0; k < L8; k += 8) _mm256_storeu_ps(y + k, sm_canon(_mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(x + k), mb), ls)));
            for (; k < L; k++) y[k] = dse_canonf((x[k] - mx) - dse_logf(sum));
        } else {
            const __m256 sb = _mm256_set1_ps(sum);
            for (k = 0; k < L8; k += 8) _mm256_storeu_ps(y + k, sm_canon(_mm256_div_ps(_mm256_loadu_ps(y + k), sb)));
            for (; k < L; k++) y[k] = dse_canonf(y[k] / sum);
        }
    }
}

/* 8 neighbouring lines (inner >= 8) from line i of block o. */
static DSE_TARGET_AVX2 void sm_cols_block(const dse_softmax_job *j, size_t o, size_t i) {
    const size_t L = j->len, S = j->inner;
    const float *x = j->x + o * L * S + i;
    float *y = j->y + o * L * S + i;
    __m256 mx = _mm256_loadu_ps(x);
    for (size_t k = 1; k < L; k++) {   /* REF: if (!(v <= mx)) mx = v */
        const __m256 v = _mm256_loadu_ps(x + k * S);
        mx = _mm256_blendv_ps(mx, v, _mm256_cmp_ps(v, mx, _CMP_NLE_UQ));
    }
    __m256 sum = _mm256_setzero_ps();
    if (j->logsm) {
        for (size_t k = 0; k < L; k++) sum = _mm256_add_ps(sum, dse__avx2_exp(_mm256_sub_ps(_mm256_loadu_ps(x + k * S), mx)));
        float t[8];
        _mm256_storeu_ps(t, sum);
        for (int q = 0; q < 8; q++) t[q] = dse_logf(t[q]);
        const __m256 ls = _mm256_loadu_ps(t);
        for (size_t k = 0; k < L; k++) _mm256_storeu_ps(y + k * S, sm_canon(_mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(x + k * S), mx), ls)));
    } else {
        for (size_t k = 0; k < L; k++) {
            const __m256 e = dse__avx2_exp(_mm256_sub_ps(_mm256_loadu_ps(x + k * S), mx));
            _mm256_storeu_ps(y + k * S, e);
            sum = _mm256_add_ps(sum, e);
        }
        for (size_t k = 0; k < L; k++) _mm256_storeu_ps(y + k * S, sm_canon(_mm256_div_ps(_mm256_loadu_ps(y + k * S), sum)));
    }
}

/* exp of one value by the vector function (the strided lines left over, REF's order) */
static DSE_TARGET_AVX2 float sm_exp1(float v) { return _mm256_cvtss_f32(dse__avx2_exp(_mm256_set1_ps(v))); }

static const dse_softmax_isa sm_isa = {sm_rows, sm_cols_block, sm_exp1, 8};

void dse_f32_softmax__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) { dse__softmax_f32_opt_run(m, n, arena, cx, 0, &sm_isa); }
void dse_f32_logsoftmax__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) { dse__softmax_f32_opt_run(m, n, arena, cx, 1, &sm_isa); }

#endif
