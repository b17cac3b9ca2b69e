/* mul_i8.c (AVX2): int8 Mul, the bytes of kernels/ref/mul_i8.c.
 *
 * The rule (docs/quant-arith.md §6, §3): p = (a - za) * (b - zb) in int32 (|p| <= 65025),
 * y = clamp(zp + ((p * M + 2^(n-1)) >> n), qmin, qmax), int64 product, >> arithmetic.
 * Sixteen products at a time, in int32 lanes ordered [0-3, 8-11] and [4-7, 12-15] (what the
 * 16-bit unpacks give, and what packs_epi32 puts back in order):
 * - a row where one operand is constant (k = its value minus its zero point; a per-channel or
 *   scalar operand): the varying bytes v widened to int16 and paired with 1, times the pair
 *   (k, -zv * k) by vpmaddwd: v * k - zv * k = (v - zv) * k (|zv * k| <= 32640: int16);
 * - a row where both vary: a - za and b - zb in int16 (|.| <= 255), their product's low and
 *   high halves (vpmullw, vpmulhw) interleaved into int32.
 * Requantisation of 8 int32 lanes, exactly: p * M by vpmuldq on the even and the odd lanes,
 * t = p * M + 2^(n-1) + 2^62, which lies in [0, 2^63) (|p * M| < 2^48), so the logical shift
 * t >>> n is r + 2^(62-n) exactly (2^n divides 2^62), r = (p * M + 2^(n-1)) >> n. Its low 32
 * bits are r + (2^(62-n) mod 2^32) modulo 2^32; adding zp - (2^(62-n) mod 2^32) in wrapping
 * int32 gives zp + r exactly when |r| < 2^31 - 128. That holds without help when n >= 17; for
 * smaller shifts p is first clamped to [-L, L], L = 2^max(0, n + 8 - e) (2^e <= M < 2^(e+1)):
 * L * M >= 2^(n+8), so every |p| > L saturates the output (|r| >= 256) as L does (the rule is
 * monotone in p), and |r| <= 2^max(e+1-n, 9) + 1 < 2^31 after the clamp. (Every shift takes
 * the clamp when L < 65025; with no clamp and n >= 32 the odd lanes are shifted by n - 32
 * instead, which leaves the low 32 bits of t >>> n in their high halves: one blend.) Then
 * saturating packs to int16 and int8 and qmin/qmax on bytes: clamp(zp + r, qmin, qmax).
 * Rows come from the elementwise walker (kernels/ref/binary.c), 32 outputs per step, then 16,
 * then the last < 16 through a local copy (so a row never reads past its end, and an output
 * placed over its input is read before it is written); other strides (one element, or a
 * row of one element) take REF's formula. */
#include "isa.h"

#if DSE_ARCH_X86_64
#include <immintrin.h>

#include "requant.h"

typedef struct mul_avx2 {
    dse_i8_mulp q;
    int fast;            /* no clamp of p and n >= 32 */
    int32_t L, zoff;     /* clamp of p; zp - (2^(62-n) mod 2^32), wrapping */
    int64_t C;           /* 2^(n-1) + 2^62 */
} mul_avx2;

typedef struct mul_vk {
    __m256i M, C, L, nL, zoff, zv, zw, kk, one, qmin, qmax;
    __m128i sh, sh32;
} mul_vk;

/* 8 products (int32) -> zp + r (int32) */
DSE_TARGET_AVX2 static inline __m256i mul_i8_rq8(__m256i p, const mul_vk *k, int fast) {
    if (!fast) p = _mm256_min_epi32(_mm256_max_epi32(p, k->nL), k->L);
    __m256i pe = _mm256_mul_epi32(p, k->M), po = _mm256_mul_epi32(_mm256_srli_epi64(p, 32), k->M);
    pe = _mm256_srl_epi64(_mm256_add_epi64(pe, k->C), k->sh);
    __m256i r;
    if (fast) {
        po = _mm256_srl_epi64(_mm256_add_epi64(po, k->C), k->sh32);
        r = _mm256_blend_epi32(pe, po, 0xAA);
    } else {
        po = _mm256_srl_epi64(_mm256_add_epi64(po, k->C), k->sh);
        r = _mm256_blend_epi32(pe, _mm256_slli_epi64(po, 32), 0xAA);
    }
    return _mm256_add_epi32(r, k->zoff);
}

/* 16 outputs as int16 (saturated), in order: v (and w when both) at 16 bytes each. */
DSE_TARGET_AVX2 static inline __m256i mul_i8_16(const int8_t *v, const int8_t *w, const mul_vk *k, int both, int fast) {
    const __m256i dv = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)v));
    __m256i p0, p1;
    if (both) {
        const __m256i da = _mm256_sub_epi16(dv, k->zv);
        const __m256i db = _mm256_sub_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)w)), k->zw);
        const __m256i lo = _mm256_mullo_epi16(da, db), hi = _mm256_mulhi_epi16(da, db);
        p0 = _mm256_unpacklo_epi16(lo, hi), p1 = _mm256_unpackhi_epi16(lo, hi);
    } else {
        p0 = _mm256_madd_epi16(_mm256_unpacklo_epi16(dv, k->one), k->kk);
        p1 = _mm256_madd_epi16(_mm256_unpackhi_epi16(dv, k->one), k->kk);
    }
    return _mm256_packs_epi32(mul_i8_rq8(p0, k, fast), mul_i8_rq8(p1, k, fast));
}

DSE_TARGET_AVX2 static inline __m256i mul_i8_bytes(__m256i w0, __m256i w1, const mul_vk *k) {
    const __m256i b = _mm256_permute4x64_epi64(_mm256_packs_epi16(w0, w1), 0xD8);
    return _mm256_min_epi8(_mm256_max_epi8(b, k->qmin), k->qmax);
}

/* y[0, len) from v (and w when both), len >= 1 */
DSE_TARGET_AVX2 static inline void mul_i8_run(int8_t *y, const int8_t *v, const int8_t *w, size_t len, const mul_vk *k,
                                              int both, int fast) {
    size_t i = 0;
    for (; i + 32 <= len; i += 32) {
        const __m256i w0 = mul_i8_16(v + i, w + i, k, both, fast), w1 = mul_i8_16(v + i + 16, w + i + 16, k, both, fast);
        _mm256_storeu_si256((__m256i *)(void *)(y + i), mul_i8_bytes(w0, w1, k));
    }
    if (i + 16 <= len) {
        const __m256i w0 = mul_i8_16(v + i, w + i, k, both, fast);
        _mm_storeu_si128((__m128i *)(void *)(y + i), _mm256_castsi256_si128(mul_i8_bytes(w0, w0, k)));
        i += 16;
    }
    if (i < len) {
        const size_t r = len - i;
        int8_t tv[16] = {0}, tw[16] = {0}, ty[16];
        memcpy(tv, v + i, r);
        if (both) memcpy(tw, w + i, r);
        const __m256i w0 = mul_i8_16(tv, tw, k, both, fast);
        _mm_storeu_si128((__m128i *)(void *)ty, _mm256_castsi256_si128(mul_i8_bytes(w0, w0, k)));
        memcpy(y + i, ty, r);
    }
}

DSE_TARGET_AVX2 static void row_mul_avx2(uint8_t *yb, const uint8_t *const *x, const size_t *s, uint32_t nx, size_t len,
                                         const dse_ew_ctx *c) {
    (void)nx;
    const mul_avx2 *p = c->p;
    const dse_i8_mulp *q = &p->q;
    int8_t *y = (int8_t *)yb;
    const int8_t *a = (const int8_t *)x[0], *b = (const int8_t *)x[1];
    const size_t sa = s[0], sb = s[1];
    if (sa > 1 || sb > 1 || (sa | sb) == 0) {   /* REF's formula */
        for (size_t i = 0; i < len; i++)
            y[i] = dse_requant((int32_t)(a[i * sa] - q->za) * (b[i * sb] - q->zb), q->M, q->n, q->zp, q->qmin, q->qmax);
        return;
    }
    const int both = sa == 1 && sb == 1;
    const int8_t *v = sa == 1 ? a : b;         /* a varying operand */
    const int zv = sa == 1 ? q->za : q->zb;
    const int kc = both ? 0 : sa == 1 ? b[0] - q->zb : a[0] - q->za;   /* the constant's (x - z) */
    mul_vk k;
    k.M = _mm256_set1_epi64x(q->M), k.C = _mm256_set1_epi64x(p->C);
    k.L = _mm256_set1_epi32(p->L), k.nL = _mm256_set1_epi32(-p->L), k.zoff = _mm256_set1_epi32(p->zoff);
    k.zv = _mm256_set1_epi16((int16_t)q->za), k.zw = _mm256_set1_epi16((int16_t)q->zb);
    k.kk = _mm256_set1_epi32((int32_t)((uint32_t)(uint16_t)kc | (uint32_t)(uint16_t)(int16_t)(-zv * kc) << 16));
    k.one = _mm256_set1_epi16(1);
    k.qmin = _mm256_set1_epi8((char)q->qmin), k.qmax = _mm256_set1_epi8((char)q->qmax);
    k.sh = _mm_cvtsi32_si128(q->n), k.sh32 = _mm_cvtsi32_si128(q->n >= 32 ? q->n - 32 : 0);
    if (both) {
        if (p->fast) mul_i8_run(y, a, b, len, &k, 1, 1);
        else mul_i8_run(y, a, b, len, &k, 1, 0);
    } else {
        if (p->fast) mul_i8_run(y, v, v, len, &k, 0, 1);
        else mul_i8_run(y, v, v, len, &k, 0, 0);
    }
}

void dse_i8_mul__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    mul_avx2 p;
    dse_i8_mul_params(n, &p.q);
    const int sh = p.q.n;
    const uint32_t M = (uint32_t)p.q.M;
    long long L = 65025;                           /* |p| <= 65025: no clamp */
    if (M) {
        const int e = 31 - __builtin_clz(M), x = sh + 8 - e;
        if (x < 16) L = x <= 0 ? 1 : 1LL << x;
    }
    p.L = (int32_t)L;
    p.fast = L >= 65025 && sh >= 32;
    p.C = ((int64_t)1 << (sh - 1)) + ((int64_t)1 << 62);
    const uint32_t off = sh >= 31 ? (uint32_t)((uint64_t)1 << (62 - sh)) : 0;   /* 2^(62-n) mod 2^32 */
    p.zoff = (int32_t)((uint32_t)p.q.zp - off);
    dse_ew_ctx c = {{0, 0, 0, 0}, {0, 0}, 1, &p};
    dse__ew_walk(m, n, arena, 2, row_mul_avx2, &c, cx);
}

#endif
