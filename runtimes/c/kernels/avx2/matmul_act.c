/* matmul_act.c (AVX2): the MatMul of two int8 activations, the bytes of kernels/ref/matmul_act.c
 * (REF's check: the same nodes; no scratch).
 *
 * Arithmetic: acc = sum_k (a - za)(b - zb) exactly in int32, as REF: the differences are int16
 * lanes (|.| <= 255) and vpmaddwd adds the products of two consecutive k, (a_k - za)(b_k - zb) +
 * (a_k+1 - za)(b_k+1 - zb) (|.| <= 130050: exact, never the instruction's one saturating case);
 * every partial sum stays below K * 255 * 255 < 2^31 (the check's K <= 33025), so the order of
 * the sum does not matter. Then the requantisation rule in 8 lanes (avx2_i8_requant, i8_avx2.h:
 * exact, REF's bytes), or for float_out (float)acc * out_scale (vcvtdq2ps rounds to nearest even
 * like C's conversion, one float32 multiply) and the clamps in REF's operand order (vmaxps /
 * vminps return the second operand on NaN or equality, as REF's `if`s keep v).
 * Tiles: 4 rows of A x 16 columns of B per item (8 int32 accumulators); two rows k, k+1 of B's
 * tile are widened to int16 and interleaved (vpunpck{l,h}wd: pairs per column), and each row of
 * A gives one broadcast pair. A tile narrower than 16 columns goes through a copy padded with zb
 * (difference 0). Items (batch x row block x column tile) over the session's threads.
 */
#include "isa.h"

#if DSE_ARCH_X86_64
#include <immintrin.h>

#include "i8_avx2.h"

#define MMA_RB 4
#define MMA_NT 16

int dse__check_i8_matmul_act_avx2(const dse_model *m, const dse_node *n, dse_why *why) {
    dse_mm_geom g;
    dse_i8_out o;
    dse_i8_mma_store st;
    int za, zb;
    return dse_i8_matmul_act_valid(m, n, &g, &za, &zb, &o, &st, why);
}

typedef struct {
    const dse_i8_mma *p;
    size_t mb, nb;
    avx2_i8_rq q;
} mma_avx2_job;

/* 16 int8 of B at column j0 minus zb as int16 (columns past tn: zb, i.e. 0). */
DSE_TARGET_AVX2 static inline __m256i mma_avx2_brow(const int8_t *b, size_t tn, int zb, __m256i zbv) {
    if (tn == MMA_NT) return _mm256_sub_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)b)), zbv);
    int8_t t[MMA_NT];
    memset(t, zb, sizeof t);
    memcpy(t, b, tn);
    return _mm256_sub_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)t)), zbv);
}

DSE_TARGET_AVX2 static void mma_avx2_items(void *arg, size_t i0, size_t i1, unsigned worker) {
    (void)worker;
    const mma_avx2_job *j = arg;
    const dse_i8_mma *p = j->p;
    const dse_mm_geom *g = p->g;
    const dse_i8_out *o = p->o;
    const size_t M = g->M, K = g->K, N = g->N, per = j->mb * j->nb;
    const int za = p->za, zb = p->zb;
    const __m256i zbv = _mm256_set1_epi16((int16_t)zb);
    const __m256 scale = _mm256_set1_ps(o->float_out ? o->scale[0] : 0.0f);
    const __m256 amin = _mm256_set1_ps(o->act_min), amax = _mm256_set1_ps(o->act_max);
    for (size_t it = i0; it < i1; it++) {
        const size_t bi = it / per, rest = it % per, r0 = rest / j->nb * MMA_RB, j0 = rest % j->nb * MMA_NT;
        const size_t rn = M - r0 < MMA_RB ? M - r0 : MMA_RB, tn = N - j0 < MMA_NT ? N - j0 : MMA_NT;
        size_t offa = 0, offb = 0, q = bi;
        for (int d = (int)g->nb - 1; d >= 0; d--) {
            const size_t x = q % g->bdims[d];
            q /= g->bdims[d];
            offa += x * g->sa[d], offb += x * g->sb[d];
        }
        const int8_t *A = p->a + offa + r0 * K, *B = p->b + offb + j0;
        __m256i lo_acc[MMA_RB], hi_acc[MMA_RB];
        for (int r = 0; r < MMA_RB; r++) lo_acc[r] = hi_acc[r] = _mm256_setzero_si256();
        size_t k = 0;
        for (; k + 1 < K; k += 2) {
            const __m256i b0 = mma_avx2_brow(B + k * N, tn, zb, zbv), b1 = mma_avx2_brow(B + (k + 1) * N, tn, zb, zbv);
            const __m256i lo = _mm256_unpacklo_epi16(b0, b1), hi = _mm256_unpackhi_epi16(b0, b1);
            for (size_t r = 0; r < rn; r++) {
                const uint32_t a0 = (uint16_t)(int16_t)(A[r * K + k] - za), a1 = (uint16_t)(int16_t)(A[r * K + k + 1] - za);
                const __m256i av = _mm256_set1_epi32((int32_t)(a0 | a1 << 16));
                lo_acc[r] = _mm256_add_epi32(lo_acc[r], _mm256_madd_epi16(lo, av));
                hi_acc[r] = _mm256_add_epi32(hi_acc[r], _mm256_madd_epi16(hi, av));
            }
        }
        if (k < K) {   /* odd K: the last k paired with zeros */
            const __m256i b0 = mma_avx2_brow(B + k * N, tn, zb, zbv), b1 = _mm256_setzero_si256();
            const __m256i lo = _mm256_unpacklo_epi16(b0, b1), hi = _mm256_unpackhi_epi16(b0, b1);
            for (size_t r = 0; r < rn; r++) {
                const __m256i av = _mm256_set1_epi32((int32_t)(uint16_t)(int16_t)(A[r * K + k] - za));
                lo_acc[r] = _mm256_add_epi32(lo_acc[r], _mm256_madd_epi16(lo, av));
                hi_acc[r] = _mm256_add_epi32(hi_acc[r], _mm256_madd_epi16(hi, av));
            }
        }
        const size_t y0 = (bi * M + r0) * N + j0;
        for (size_t r = 0; r < rn; r++) {
            /* unpack{lo,hi} work per 128-bit lane: lo holds columns 0-3, 8-11; hi 4-7, 12-15 */
            const __m256i c0 = _mm256_permute2x128_si256(lo_acc[r], hi_acc[r], 0x20);
            const __m256i c1 = _mm256_permute2x128_si256(lo_acc[r], hi_acc[r], 0x31);
            if (o->float_out) {
                float v[MMA_NT];
                __m256 f0 = _mm256_mul_ps(_mm256_cvtepi32_ps(c0), scale), f1 = _mm256_mul_ps(_mm256_cvtepi32_ps(c1), scale);
                f0 = _mm256_min_ps(amax, _mm256_max_ps(amin, f0));
                f1 = _mm256_min_ps(amax, _mm256_max_ps(amin, f1));
                float *y = (float *)p->y + y0 + r * N;
                if (tn == MMA_NT) {
                    _mm256_storeu_ps(y, f0);
                    _mm256_storeu_ps(y + 8, f1);
                } else {
                    _mm256_storeu_ps(v, f0);
                    _mm256_storeu_ps(v + 8, f1);
                    memcpy(y, v, tn * sizeof(float));
                }
            } else {
                const __m256i q0 = avx2_i8_requant(c0, &j->q), q1 = avx2_i8_requant(c1, &j->q);
                const __m256i w = _mm256_permute4x64_epi64(_mm256_packs_epi32(q0, q1), 0xD8);   /* 16 int16, in order */
                const __m128i b8 = _mm_packs_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
                int8_t *y = (int8_t *)p->y + y0 + r * N;
                if (tn == MMA_NT) {
                    _mm_storeu_si128((__m128i *)(void *)y, b8);
                } else {
                    int8_t v[MMA_NT];
                    _mm_storeu_si128((__m128i *)(void *)v, b8);
                    memcpy(y, v, tn);
                }
            }
        }
    }
}

void dse_i8_matmul_act__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    dse_mm_geom g;
    dse_i8_out o;
    dse_i8_mma_store st;
    dse_why why;
    dse_i8_mma p;
    dse_i8_matmul_act_valid(m, n, &g, &p.za, &p.zb, &o, &st, &why);
    p.a = dse__data(m, arena, n->in[0]), p.b = dse__data(m, arena, n->in[1]), p.y = dse__data(m, arena, n->out[0]);
    p.g = &g, p.o = &o;
    size_t nbatch = 1;
    for (size_t d = 0; d < g.nb; d++) nbatch *= g.bdims[d];
    if (!g.M || !g.N || !nbatch) return;
    mma_avx2_job j;
    j.p = &p, j.mb = (g.M + MMA_RB - 1) / MMA_RB, j.nb = (g.N + MMA_NT - 1) / MMA_NT;
    if (!o.float_out) avx2_i8_rq_init1(&j.q, &o, 0);
    const size_t items = nbatch * j.mb * j.nb;
    dse__parallel(cx, items, dse__grain(items, (uint64_t)items * MMA_RB * MMA_NT * (g.K ? g.K : 1)), mma_avx2_items, &j);
}

#endif
