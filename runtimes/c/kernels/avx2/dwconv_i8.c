/* avx2/dwconv_i8.c: int8 depthwise Conv for x86-64 AVX2 (group == C_in == C_out, layout 0, 1-D or
 * 2-D), byte-identical with the REF kernel (kernels/ref/conv_i8.c); called by dse_i8_conv__avx2
 * (conv_i8.c, whose check accepts the node and whose header states the arithmetic).
 *
 * Per channel plane, input rows are converted once into int16 x - zp_in rows with their padding
 * (0) and split by the stride's phase (row_phi[j] = x_padded[j*sw + phi]), kept in a ring of
 * (kh-1)*dh + 1 rows (or the whole plane when the scratch holds it: avx2_dw_plan_of,
 * i8_avx2.h), so that every tap reads 16 consecutive int16 for 16 consecutive outputs; taps are
 * taken in pairs (two rows interleaved with vpunpck[lh]wd, one vpmaddwd against the broadcast
 * weight pair). The pack of 16 int32 back to bytes undoes the unpack's lane order.
 *
 * 3x3 kernels on output rows of 8 or more (int8 output, dilation 1, column stride 1 or 2) take
 * pairs of adjacent input columns instead (avx2_dw3_plan_of, i8_avx2.h): taps kw = 0, 1 of
 * output j are the pair j = (t[sw*j], t[sw*j + 1]), kw = 2 the low half of the pair j + 2/sw,
 * so 8 outputs cost five vpmaddwd on whole vectors with the weights in registers; stride-1 rows
 * are converted once into int16 pairs, stride-2 rows are their own byte pairs; two output rows
 * per step where the rows allow; a requantisation without the clamps for n >= 33 (below).
 * Other output rows narrower than 16 take blocks of 8 channels in the lanes (at the end of the file).
 * Threads: dse__parallel over (image, channel) planes (or 8-channel blocks), each with its
 * worker's scratch. */
#include "isa.h"

#if DSE_ARCH_X86_64
#include "i8_avx2.h"

/* -- the planes ---------------------------------------------------------------------------------- */

typedef struct avx2_i8_dw_job {
    const dse_ctx *cx;
    const int8_t *x, *w;
    size_t xn;   /* x's bytes */
    const int32_t *bias;
    const dse_i8_out *o;
    void *y;
    const dse_i8_geom *g;
    long long C;
    avx2_dw_plan dp;
    avx2_dw3_plan p3;
} avx2_i8_dw_job;

/* The int16 phase rows of input row ih of plane xc (converted on first use in ring mode). */
DSE_TARGET_AVX2 static inline const int16_t *avx2_i8_dw_get(const avx2_i8_dw_job *J, int16_t *rows, int8_t *tmp, long long *tag,
                                                            const int8_t *xc, long long ih) {
    const dse_i8_geom *g = J->g;
    const long long rowlen = J->dp.sw * J->dp.L, slot = J->dp.whole ? ih : ih % J->dp.ring;
    int16_t *rs = rows + slot * rowlen;
    if (!J->dp.whole && tag[slot] != ih) {
        avx2_i8_dw_row(rs, xc + ih * g->in[2], tmp, g->in[2], g->pb[2], J->dp.sw, J->dp.L, J->o->zp_in);
        tag[slot] = ih;
    }
    return rs;
}

DSE_TARGET_AVX2 static void avx2_i8_dw_task(void *arg, size_t begin, size_t end, unsigned worker) {
    const avx2_i8_dw_job *J = arg;
    const dse_i8_geom *g = J->g;
    const dse_i8_out *o = J->o;
    const long long IH = g->in[1], IW = g->in[2], OH = g->out[1], OW = g->out[2], KH = g->k[1], KW = g->k[2];
    const long long sh = g->s[1], sw = g->s[2], dh = g->d[1], dw = g->d[2], L = J->dp.L, ring = J->dp.ring;
    const long long taps = KH * KW, npairs = (taps + 1) / 2, rowlen = sw * L;
    int16_t *rows = (int16_t *)(void *)dse__worker_scratch(J->cx, worker);
    int16_t *zero = rows + ring * rowlen;   /* sw * L zeros: a row of padding */
    int8_t *tmp = (int8_t *)(zero + rowlen);
    memset(zero, 0, (size_t)rowlen * 2);
    long long tkh[128], toff[128], tag[64];
    for (long long t = 0; t < taps; t++) {   /* tap t = (kh, kw): its row and its offset in the phase rows */
        const long long kw = t % KW, u = kw * dw;
        tkh[t] = t / KW, toff[t] = (u % sw) * L + u / sw;
    }
    for (size_t pl = begin; pl < end; pl++) {
        const size_t c = pl % (size_t)J->C;
        const int8_t *xc = J->x + pl * (size_t)(IH * IW);
        const int8_t *wc = J->w + c * (size_t)taps;
        if (J->dp.whole)
            for (long long ih = 0; ih < IH; ih++) avx2_i8_dw_row(rows + ih * rowlen, xc + ih * IW, tmp, IW, g->pb[2], sw, L, o->zp_in);
        else
            for (long long i = 0; i < ring; i++) tag[i] = -1;
        avx2_i8_rq q;   /* one channel in every lane */
        const size_t cc[8] = {c, c, c, c, c, c, c, c};
        avx2_i8_rq_init(&q, o, cc, 8);
        const __m256i bias = _mm256_set1_epi32(J->bias[c]);
        int32_t wp[64];
        for (long long pi = 0; pi < npairs; pi++) {
            const long long t0 = 2 * pi, t1 = 2 * pi + 1;
            const int16_t w0 = wc[t0], w1 = t1 < taps ? wc[t1] : 0;
            wp[pi] = (int32_t)((uint32_t)(uint16_t)w0 | (uint32_t)(uint16_t)w1 << 16);
        }
        for (long long oh = 0; oh < OH; oh++) {
            const int16_t *rp[64], *pa[64], *pb[64];
            for (long long kh = 0; kh < KH; kh++) {
                const long long ih = oh * sh + kh * dh - g->pb[1];
                rp[kh] = ih >= 0 && ih < IH ? avx2_i8_dw_get(J, rows, tmp, tag, xc, ih) : zero;
            }
            if (!J->dp.whole && oh + 1 < OH)   /* the next output row's new rows, ahead of their use */
                for (long long kh = 0; kh < KH; kh++) {
                    const long long ih = (oh + 1) * sh + kh * dh - g->pb[1];
                    if (ih >= 0 && ih < IH) avx2_i8_dw_get(J, rows, tmp, tag, xc, ih);
                }
            for (long long pi = 0; pi < npairs; pi++) {
                const long long t0 = 2 * pi, t1 = 2 * pi + 1 < taps ? 2 * pi + 1 : 2 * pi;
                pa[pi] = rp[tkh[t0]] + toff[t0], pb[pi] = rp[tkh[t1]] + toff[t1];
            }
            const size_t yrow = (pl * (size_t)OH + (size_t)oh) * (size_t)OW;
            for (long long ow = 0; ow < OW; ow += 16) {
                __m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256();
                for (long long pi = 0; pi < npairs; pi++) {
                    const __m256i va = _mm256_loadu_si256((const __m256i *)(pa[pi] + ow));
                    const __m256i vb = _mm256_loadu_si256((const __m256i *)(pb[pi] + ow));
                    const __m256i wv = _mm256_set1_epi32(wp[pi]);
                    lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(va, vb), wv));
                    hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(va, vb), wv));
                }
                /* lo: outputs 0-3, 8-11; hi: 4-7, 12-15 */
                const long long nw = OW - ow < 16 ? OW - ow : 16;
                const size_t yi = yrow + (size_t)ow;
                if (o->float_out) {   /* dse_i8_store's float: (float)(acc + bias) * scale (exact int32:
                                       * the check's bound), then max(act_min, v), min(act_max, v) in that
                                       * operand order (keeps v when equal, and NaN), 16 outputs in order */
                    const __m256i bv = _mm256_set1_epi32(J->bias[c]);
                    const __m256 sc = _mm256_set1_ps(o->scale[c]), fmin = _mm256_set1_ps(o->act_min), fmax = _mm256_set1_ps(o->act_max);
                    const __m256i a0 = _mm256_permute2x128_si256(lo, hi, 0x20), a1 = _mm256_permute2x128_si256(lo, hi, 0x31);
                    const __m256 f0 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(a0, bv)), sc);
                    const __m256 f1 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(a1, bv)), sc);
                    float *yf = (float *)J->y + yi;
                    float t[16];
                    float *d = nw == 16 ? yf : t;
                    _mm256_storeu_ps(d, _mm256_min_ps(fmax, _mm256_max_ps(fmin, f0)));
                    _mm256_storeu_ps(d + 8, _mm256_min_ps(fmax, _mm256_max_ps(fmin, f1)));
                    if (nw < 16) for (long long j = 0; j < nw; j++) yf[j] = t[j];
                    continue;
                }
                __m256i rl = avx2_i8_requant(_mm256_add_epi32(lo, bias), &q), rh = avx2_i8_requant(_mm256_add_epi32(hi, bias), &q);
                __m256i p16 = _mm256_packs_epi32(rl, rh);   /* lane 0: outputs 0-7, lane 1: 8-15 */
                __m128i b8 = _mm_packs_epi16(_mm256_castsi256_si128(p16), _mm256_extracti128_si256(p16, 1));
                int8_t *yp = (int8_t *)J->y + yi;
                if (nw == 16) _mm_storeu_si128((__m128i *)yp, b8);
                else {
                    int8_t t[16];
                    _mm_storeu_si128((__m128i *)t, b8);
                    for (long long j = 0; j < nw; j++) yp[j] = t[j];
                }
            }
        }
    }
}

/* -- 3x3 on output rows of 8 or more: pairs of taps prepared per input row ------------------ */

/* A plane's input rows go through two stages, in increasing row order: the row is copied into
 * a padded int8 row (one of T buffers whose padding columns were set to zp_in once), sh rows
 * before it is converted into its int16 pairs (a ring slot of R); the pairs of an output row
 * are made while the previous output row is computed. So no load reads bytes stored shortly
 * before at another offset (a failed store forwarding stalls). */
typedef struct avx2_dw3_state {
    long long conv_hi, pad_hi;   /* the last row converted, the last row padded (-1: none yet) */
    int32_t *rows;
    int8_t *tmp;
    const int8_t *xc;
} avx2_dw3_state;

/* The next input row of the plane (st->conv_hi + 1) into its ring slot of int16 pairs
 * (avx2_dw3_plan_of, i8_avx2.h: H[j] = (t[sw*j], t[sw*j + 1]) - zp_in), padding the rows up to
 * sh rows ahead first. */
DSE_TARGET_AVX2 static void avx2_i8_dw3_next(const avx2_i8_dw_job *J, avx2_dw3_state *st) {
    const dse_i8_geom *g = J->g;
    const avx2_dw3_plan *p = &J->p3;
    const long long NP = p->NP, IH = g->in[1], IW = g->in[2], ih = ++st->conv_hi;
    int32_t *H = st->rows + (ih & (p->R - 1)) * NP;
    const long long ahead = ih + p->ahead < IH ? ih + p->ahead : IH - 1;
    while (st->pad_hi < ahead) {   /* the padded int8 rows up to p->ahead rows ahead */
        const long long r = ++st->pad_hi;
        if (p->cnt > 0) avx2_i8_pad_copy(st->tmp + (r & (p->T - 1)) * p->TL + g->pb[2], st->xc + r * IW, p->cnt);
    }
    const int8_t *t = st->tmp + (ih & (p->T - 1)) * p->TL;
    const __m256i z = _mm256_set1_epi16((int16_t)J->o->zp_in);
    if (g->s[2] == 1) {   /* interleave the bytes of t and t + 1 */
        long long j = 0;
        for (; j + 16 <= NP; j += 16) {
            const __m128i a = _mm_loadu_si128((const __m128i *)(t + j)), b = _mm_loadu_si128((const __m128i *)(t + j + 1));
            _mm256_storeu_si256((__m256i *)(H + j), _mm256_sub_epi16(_mm256_cvtepi8_epi16(_mm_unpacklo_epi8(a, b)), z));
            _mm256_storeu_si256((__m256i *)(H + j + 8), _mm256_sub_epi16(_mm256_cvtepi8_epi16(_mm_unpackhi_epi8(a, b)), z));
        }
        if (j < NP) {   /* 8 more */
            const __m128i a = _mm_loadl_epi64((const __m128i *)(t + j)), b = _mm_loadl_epi64((const __m128i *)(t + j + 1));
            _mm256_storeu_si256((__m256i *)(H + j), _mm256_sub_epi16(_mm256_cvtepi8_epi16(_mm_unpacklo_epi8(a, b)), z));
        }
    } else {   /* stride 2: t as it is */
        for (long long j = 0; j < NP; j += 8)
            _mm256_storeu_si256((__m256i *)(H + j), _mm256_sub_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(t + 2 * j))), z));
    }
}

/* 8 outputs (j .. j+7) from the rows' pairs at j (taps kw = 0, 1) and j + d (kw = 2), into acc
 * (the sums without the bias): five vpmaddwd, the kw = 2 taps of rows 0 and 1 joined into one pair
 * (the low halves of two rows' pairs), that of row 2 against (w, 0). V: the vector type's prefix
 * (_mm256 for 8 outputs, _mm for 4), LD(row, k): the pairs k.. of a row. */
#define AVX2_DW3_MAC(V, LD, acc, j, r0, r1, r2)                                                                             \
    {                                                                                                                       \
        const VEC_##V c0 = LD(r0, (j) + d), c1 = V##_slli_epi32(LD(r1, (j) + d), 16);                                        \
        const VEC_##V m0 = V##_madd_epi16(LD(r0, j), W_##V(w0)), m1 = V##_madd_epi16(LD(r1, j), W_##V(w1));                  \
        const VEC_##V m2 = V##_madd_epi16(LD(r2, j), W_##V(w2)), m3 = V##_madd_epi16(V##_blend_epi16(c0, c1, 0xAA), W_##V(w3)); \
        const VEC_##V m4 = V##_madd_epi16(LD(r2, (j) + d), W_##V(w4));                                                       \
        acc = V##_add_epi32(V##_add_epi32(m0, V##_add_epi32(m1, m2)), V##_add_epi32(m3, m4));                               \
    }
#define VEC__mm256 __m256i
#define VEC__mm __m128i
#define W__mm256(w) (w)
#define W__mm(w) _mm256_castsi256_si128(w)
/* int16 pair rows (stride 1: int32 per pair) */
#define AVX2_DW3_H8(h, k) _mm256_loadu_si256((const __m256i *)((h) + (k)))
#define AVX2_DW3_H4(h, k) _mm_loadu_si128((const __m128i *)((h) + (k)))
/* padded int8 rows (stride 2: the pair k is bytes 2k, 2k + 1, widened here; the rows hold x itself,
 * the zero point is in the bias) */
#define AVX2_DW3_B8(t, k) _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)((t) + 2 * (k))))
#define AVX2_DW3_B4(t, k) _mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)((t) + 2 * (k))))

/* One channel's requantisation. For n >= 33 (fast; the plan's fast form covers n >= 31): with
 * acc = s + bias (s the sums above), t = s * M + C, C = bias * M + 2^(n-1) + 2^62 in wrapping
 * uint64 arithmetic, equals acc * M + 2^(n-1) + 2^62, which lies in [0, 2^63) (|acc * M| < 2^62:
 * acc is an exact int32, the check's bound), so a logical shift gives r + 2^(62-n) exactly,
 * r = (acc * M + 2^(n-1)) >> n, |r| <= 2^(62-n) <= 2^29. Even lanes shift by n (result in the low
 * half), odd lanes by n - 32 (result in the high half), one blend, minus B = 2^(62-n): r in int32,
 * without clamping acc first. Then saturation to int16 (packs), zp_out added saturating,
 * saturation to int8 (packs) and qmin/qmax on bytes: the same bytes as clamp(zp_out + r, qmin,
 * qmax), every saturated value staying beyond the int8 range. Otherwise the plan's requantisation
 * (i8_avx2.h, q) of s + bias. */
typedef struct avx2_dw3_rq {
    int fast;
    __m256i M, C, B, bias, zp16;
    __m128i se, so, qmin, qmax;
} avx2_dw3_rq;

DSE_TARGET_AVX2 static inline __m256i avx2_dw3_rq8(const avx2_dw3_rq *R, __m256i s) {
    const __m256i e = _mm256_srl_epi64(_mm256_add_epi64(_mm256_mul_epi32(s, R->M), R->C), R->se);
    const __m256i o = _mm256_srl_epi64(_mm256_add_epi64(_mm256_mul_epi32(_mm256_shuffle_epi32(s, 0xF5), R->M), R->C), R->so);
    return _mm256_sub_epi32(_mm256_blend_epi32(e, o, 0xAA), R->B);
}

/* 16 bytes: the 8 outputs of s0, then those of s1 */
DSE_TARGET_AVX2 static inline __m128i avx2_dw3_bytes16(const avx2_dw3_rq *R, const avx2_i8_rq *q, int fast, __m256i s0,
                                                       __m256i s1) {
    if (fast) {   /* packs: [0-3, 8-11 | 4-7, 12-15] -> qwords 0, 2, 1, 3 */
        const __m256i p = _mm256_permute4x64_epi64(_mm256_adds_epi16(_mm256_packs_epi32(avx2_dw3_rq8(R, s0), avx2_dw3_rq8(R, s1)), R->zp16), 0xD8);
        return _mm_min_epi8(_mm_max_epi8(_mm_packs_epi16(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1)), R->qmin), R->qmax);
    }
    const __m256i p = _mm256_permute4x64_epi64(_mm256_packs_epi32(avx2_i8_requant(_mm256_add_epi32(s0, R->bias), q),
                                                                  avx2_i8_requant(_mm256_add_epi32(s1, R->bias), q)), 0xD8);
    return _mm_packs_epi16(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
}

/* fast form only: bytes 0-3 the 4 outputs of s0, 4-7 those of s1 */
DSE_TARGET_AVX2 static inline __m128i avx2_dw3_bytes8(const avx2_dw3_rq *R, __m128i s0, __m128i s1) {
    const __m128i M = _mm256_castsi256_si128(R->M), C = _mm256_castsi256_si128(R->C), B = _mm256_castsi256_si128(R->B);
#define AVX2_DW3_RQ4(s)                                                                                                     \
    _mm_sub_epi32(_mm_blend_epi32(_mm_srl_epi64(_mm_add_epi64(_mm_mul_epi32(s, M), C), R->se),                             \
                                  _mm_srl_epi64(_mm_add_epi64(_mm_mul_epi32(_mm_shuffle_epi32(s, 0xF5), M), C), R->so), 0xA), B)
    const __m128i v = _mm_adds_epi16(_mm_packs_epi32(AVX2_DW3_RQ4(s0), AVX2_DW3_RQ4(s1)), _mm256_castsi256_si128(R->zp16));
#undef AVX2_DW3_RQ4
    return _mm_min_epi8(_mm_max_epi8(_mm_packs_epi16(v, v), R->qmin), R->qmax);
}

/* Output row y from rows r0-r2: 16 outputs per step, then 8, then the last 4 (fast form: 128-bit
 * vectors) or 8 ending at OW (some outputs again: the same bytes). */
#define AVX2_DW3_ROW(FAST, LD8, LD4, y, r0, r1, r2)                                                                             \
    {                                                                                                                       \
        long long ow = 0;                                                                                                   \
        for (; ow + 16 <= OW; ow += 16) {                                                                                   \
            __m256i s0, s1;                                                                                                 \
            AVX2_DW3_MAC(_mm256, LD8, s0, ow, r0, r1, r2);                                                                  \
            AVX2_DW3_MAC(_mm256, LD8, s1, ow + 8, r0, r1, r2);                                                              \
            _mm_storeu_si128((__m128i *)((y) + ow), avx2_dw3_bytes16(&R, &q, FAST, s0, s1));                                         \
        }                                                                                                                   \
        while (ow < OW) {                                                                                                   \
            if (FAST && OW - ow <= 4) {                                                                                     \
                __m128i s0;                                                                                                 \
                AVX2_DW3_MAC(_mm, LD4, s0, OW - 4, r0, r1, r2);                                                             \
                const int32_t v = _mm_cvtsi128_si32(avx2_dw3_bytes8(&R, s0, s0));                                          \
                memcpy((y) + OW - 4, &v, 4);                                                                                \
                break;                                                                                                      \
            }                                                                                                               \
            const long long at = ow + 8 <= OW ? ow : OW - 8;                                                                \
            __m256i s0;                                                                                                     \
            AVX2_DW3_MAC(_mm256, LD8, s0, at, r0, r1, r2);                                                                  \
            _mm_storel_epi64((__m128i *)((y) + at), avx2_dw3_bytes16(&R, &q, FAST, s0, s0));                                         \
            ow = at + 8;                                                                                                    \
        }                                                                                                                   \
    }

/* Output rows oh and oh + 1 (stride 1: rows h0-h2 and h1-h3), 8 outputs of each per step, then
 * the last 4 of each or 8 ending at OW as in AVX2_DW3_ROW. */
/* Two output rows yr, yr2 from rows h0-h2 and g0-g2, 8 outputs of each per step, then the last 4
 * of each or 8 ending at OW as in AVX2_DW3_ROW. */
#define AVX2_DW3_PAIRS(FAST, LD8, LD4, yr, yr2, h0, h1, h2, g0, g1, g2)                                                 \
    {                                                                                                                   \
        long long ow = 0;                                                                                               \
        for (; ow + 8 <= OW; ow += 8) {                                                                                 \
            __m256i s0, s1;                                                                                             \
            AVX2_DW3_MAC(_mm256, LD8, s0, ow, h0, h1, h2);                                                              \
            AVX2_DW3_MAC(_mm256, LD8, s1, ow, g0, g1, g2);                                                              \
            const __m128i b8 = avx2_dw3_bytes16(&R, &q, FAST, s0, s1);                                                  \
            _mm_storel_epi64((__m128i *)((yr) + ow), b8);                                                               \
            _mm_storel_epi64((__m128i *)((yr2) + ow), _mm_unpackhi_epi64(b8, b8));                                      \
        }                                                                                                               \
        if (ow < OW && FAST && OW - ow <= 4) {                                                                          \
            __m128i s0, s1;                                                                                             \
            AVX2_DW3_MAC(_mm, LD4, s0, OW - 4, h0, h1, h2);                                                             \
            AVX2_DW3_MAC(_mm, LD4, s1, OW - 4, g0, g1, g2);                                                             \
            const __m128i b8 = avx2_dw3_bytes8(&R, s0, s1);                                                             \
            const int32_t v0 = _mm_cvtsi128_si32(b8), v1 = _mm_extract_epi32(b8, 1);                                    \
            memcpy((yr) + OW - 4, &v0, 4), memcpy((yr2) + OW - 4, &v1, 4);                                              \
        } else if (ow < OW) {                                                                                           \
            __m256i s0, s1;                                                                                             \
            AVX2_DW3_MAC(_mm256, LD8, s0, OW - 8, h0, h1, h2);                                                          \
            AVX2_DW3_MAC(_mm256, LD8, s1, OW - 8, g0, g1, g2);                                                          \
            const __m128i b8 = avx2_dw3_bytes16(&R, &q, FAST, s0, s1);                                                  \
            _mm_storel_epi64((__m128i *)((yr) + OW - 8), b8);                                                           \
            _mm_storel_epi64((__m128i *)((yr2) + OW - 8), _mm_unpackhi_epi64(b8, b8));                                  \
        }                                                                                                               \
    }

DSE_TARGET_AVX2 static void avx2_i8_dw3_task(void *arg, size_t begin, size_t end, unsigned worker) {
    const avx2_i8_dw_job *J = arg;
    const dse_i8_geom *g = J->g;
    const dse_i8_out *o = J->o;
    const avx2_dw3_plan *p = &J->p3;
    const long long IH = g->in[1], IW = g->in[2], OH = g->out[1], OW = g->out[2], sh = g->s[1], pt = g->pb[1];
    const long long NP = p->NP, d = 2 / g->s[2];
    avx2_dw3_state st;
    st.rows = (int32_t *)(void *)dse__worker_scratch(J->cx, worker);
    int32_t *zero = st.rows + p->R * NP;
    st.tmp = p->direct ? (int8_t *)st.rows : (int8_t *)(zero + NP);
    int8_t *bzero = st.tmp + p->T * p->TL;   /* direct: a row of padding */
    if (!p->direct) memset(zero, 0, (size_t)NP * 4);
    memset(st.tmp, o->zp_in, (size_t)((p->T + p->direct) * p->TL));   /* the padding columns, for good */
    avx2_dw3_rq R;
    R.qmin = _mm_set1_epi8((char)o->qmin), R.qmax = _mm_set1_epi8((char)o->qmax);
    R.zp16 = _mm256_set1_epi16((int16_t)o->zp_out);
    for (size_t pl = begin; pl < end; pl++) {
        const size_t c = pl % (size_t)J->C;
        st.xc = J->x + pl * (size_t)(IH * IW);
        st.pad_hi = st.conv_hi = -1;
        const int8_t *wc = J->w + c * 9;
#define AVX2_DW3_PAIR(a, b) _mm256_set1_epi32((int32_t)((uint32_t)(uint16_t)(int16_t)(a) | (uint32_t)(uint16_t)(int16_t)(b) << 16))
        const __m256i w0 = AVX2_DW3_PAIR(wc[0], wc[1]), w1 = AVX2_DW3_PAIR(wc[3], wc[4]), w2 = AVX2_DW3_PAIR(wc[6], wc[7]);
        const __m256i w3 = AVX2_DW3_PAIR(wc[2], wc[5]), w4 = AVX2_DW3_PAIR(wc[8], 0);
#undef AVX2_DW3_PAIR
        /* the direct rows hold x (padding zp_in): their bias takes - zp_in * sum(w); int32 sums wrap to the
         * exact accumulator (it fits int32) */
        const int64_t b64 = (int64_t)J->bias[c] - (p->direct ? (int64_t)o->zp_in * (wc[0] + wc[1] + wc[2] + wc[3] + wc[4] + wc[5] + wc[6] + wc[7] + wc[8]) : 0);
        const int n = o->shift[c];
        R.fast = n >= 33;
        R.bias = _mm256_set1_epi32((int32_t)(uint32_t)(uint64_t)b64);
        avx2_i8_rq q;
        avx2_i8_rq_init1(&q, o, c);
        R.M = _mm256_set1_epi32(o->M[c]);
        R.C = _mm256_set1_epi64x(R.fast ? (int64_t)((uint64_t)b64 * (uint64_t)(uint32_t)o->M[c] + ((uint64_t)1 << (n - 1)) + ((uint64_t)1 << 62)) : 0);
        R.se = _mm_cvtsi32_si128(n), R.so = _mm_cvtsi32_si128(n - 32);
        R.B = _mm256_set1_epi32(R.fast ? (int32_t)1 << (62 - n) : 0);
        int8_t *yc = (int8_t *)J->y + pl * (size_t)(OH * OW);
        const long long S = p->pairs ? 2 : 1;   /* output rows per step */
        if (p->direct) {   /* stride 2: the padded int8 rows, one step ahead */
            for (long long oh = 0; oh < OH; oh += S) {
                const long long nxt = oh + 2 * S - 1 < OH ? oh + 2 * S - 1 : OH - 1, top = nxt * sh - pt + 2;
                const long long lim = top < IH - 1 ? top : IH - 1;
                while (st.pad_hi < lim) {
                    const long long r = ++st.pad_hi;
                    if (p->cnt > 0) avx2_i8_pad_copy(st.tmp + (r & (p->T - 1)) * p->TL + g->pb[2], st.xc + r * IW, p->cnt);
                }
                const int8_t *tr[6];
                for (long long k = 0; k < 3 + sh * (S - 1); k++) {
                    const long long ih = oh * sh + k - pt;
                    tr[k] = ih >= 0 && ih < IH ? st.tmp + (ih & (p->T - 1)) * p->TL : bzero;
                }
                int8_t *yr = yc + oh * OW;
                if (S == 1 || oh + 1 == OH) {
                    if (R.fast) AVX2_DW3_ROW(1, AVX2_DW3_B8, AVX2_DW3_B4, yr, tr[0], tr[1], tr[2])
                    else AVX2_DW3_ROW(0, AVX2_DW3_B8, AVX2_DW3_B4, yr, tr[0], tr[1], tr[2])
                    continue;
                }
                const int8_t *t0 = tr[0], *t1 = tr[1], *t2 = tr[2], *u0 = tr[sh], *u1 = tr[sh + 1], *u2 = tr[sh + 2];
                int8_t *yr2 = yr + OW;
                if (R.fast) AVX2_DW3_PAIRS(1, AVX2_DW3_B8, AVX2_DW3_B4, yr, yr2, t0, t1, t2, u0, u1, u2)
                else AVX2_DW3_PAIRS(0, AVX2_DW3_B8, AVX2_DW3_B4, yr, yr2, t0, t1, t2, u0, u1, u2)
            }
            continue;
        }
        for (long long oh = 0; oh < OH; oh += S) {
            /* rows converted: [0, conv_hi], the last R in the ring; convert up to the next step's last row */
            const long long nxt = oh + 2 * S - 1 < OH ? oh + 2 * S - 1 : OH - 1;
            const long long top = nxt * sh - pt + 2, lim = top < IH - 1 ? top : IH - 1;
            while (st.conv_hi < lim) avx2_i8_dw3_next(J, &st);
            const int32_t *hr[6];
            for (long long k = 0; k < 3 + sh * (S - 1); k++) {
                const long long ih = oh * sh + k - pt;
                hr[k] = ih >= 0 && ih < IH ? st.rows + (ih & (p->R - 1)) * NP : zero;
            }
            int8_t *yr = yc + oh * OW;
            if (S == 1 || oh + 1 == OH) {
                if (R.fast) AVX2_DW3_ROW(1, AVX2_DW3_H8, AVX2_DW3_H4, yr, hr[0], hr[1], hr[2])
                else AVX2_DW3_ROW(0, AVX2_DW3_H8, AVX2_DW3_H4, yr, hr[0], hr[1], hr[2])
                continue;
            }
            /* two output rows (stride 1: rows 0-2 and 1-3), 8 outputs of each per step, the last 4 of
             * each or 8 ending at OW as in AVX2_DW3_ROW */
            const int32_t *h0 = hr[0], *h1 = hr[1], *h2 = hr[2], *h3 = hr[3];
            int8_t *yr2 = yr + OW;
            if (R.fast) AVX2_DW3_PAIRS(1, AVX2_DW3_H8, AVX2_DW3_H4, yr, yr2, h0, h1, h2, h1, h2, h3)
            else AVX2_DW3_PAIRS(0, AVX2_DW3_H8, AVX2_DW3_H4, yr, yr2, h0, h1, h2, h1, h2, h3)
        }
    }
}
#undef AVX2_DW3_MAC
#undef VEC__mm256
#undef VEC__mm
#undef W__mm256
#undef W__mm
#undef AVX2_DW3_H8
#undef AVX2_DW3_H4
#undef AVX2_DW3_B8
#undef AVX2_DW3_B4
#undef AVX2_DW3_ROW
#undef AVX2_DW3_PAIRS

/* -- small planes: 8 channels in the lanes ------------------------------------------------------ */

/* A block: channels c0..c0+7 of one image (avx2_dwb_need, i8_avx2.h, sizes the scratch). The
 * padded input of the output region becomes int16 X[PH][PW][8] = x - zp_in (0 in the padding;
 * an 8x8 int16 transpose of 8 pixels of 8 channel rows). Output pixels go in pairs: a tap pair
 * (a, b) loads both pixels' 8 channels of tap a (one 128-bit half each) and of tap b, vpunpck[lh]wd
 * gives [pixel p: channels 0-3 | pixel p+1: channels 0-3] (lo) and channels 4-7 (hi) as int16
 * pairs (a, b), and one vpmaddwd against the pair's weights per half adds both taps in int32 —
 * the plane kernel's sums in another lane order, so the same bytes. Requantised per lane's
 * channel, the pair's 16 bytes are stored pixel-major, then transposed to the 8 output planes. */
DSE_TARGET_AVX2 static void avx2_i8_dwb_block(const avx2_i8_dw_job *J, size_t img, size_t c0, uint8_t *scratch) {
    const dse_i8_geom *g = J->g;
    const dse_i8_out *o = J->o;
    const long long IH = g->in[1], IW = g->in[2], OH = g->out[1], OW = g->out[2], KH = g->k[1], KW = g->k[2];
    const long long sh = g->s[1], sw = g->s[2], dh = g->d[1], dw = g->d[2], pt = g->pb[1], pl = g->pb[2];
    const long long PH = (OH - 1) * sh + (KH - 1) * dh + 1, PW = (OW - 1) * sw + (KW - 1) * dw + 1, PWr = (PW + 7) / 8 * 8;
    const long long taps = KH * KW, npairs = (taps + 1) / 2, P = OH * OW;
    const size_t C = (size_t)J->C, nc = C - c0 < 8 ? C - c0 : 8;
    int16_t *X = (int16_t *)(void *)scratch;                  /* [PH][PWr][8] */
    int8_t *T = (int8_t *)(X + PH * PWr * 8) + 8 * PWr;        /* [P][8] + 16 (after 8 * PWr bytes no longer used) */
    const __m128i zp16 = _mm_set1_epi16((int16_t)o->zp_in);
    /* the padded input: zero (x - zp_in = 0 in the padding), then each input row's columns in
     * groups of 8 pixels, the 8 channels' bytes (x - zp_in as int16) transposed to pixel-major.
     * (No call per channel row: on 7x7 planes the memset + memcpy of 8 channel rows per padded
     * row took most of the block's time.) */
    memset(X, 0, (size_t)(PH * PWr) * 16);
    const long long n_in = pl < PW ? (IW < PW - pl ? IW : PW - pl) : 0;   /* input columns inside the padded row */
    const __m128i zp8 = _mm_set1_epi8((char)o->zp_in);
    const int8_t *xend = J->x + J->xn;   /* the end of x */
    for (long long ph = 0; ph < PH && n_in > 0; ph++) {
        const long long ih = ph - pt;
        if (ih < 0 || ih >= IH) continue;
        int16_t *xr = X + (ph * PWr + pl) * 8;
        const int8_t *xc = J->x + ((img * C + c0) * (size_t)IH + (size_t)ih) * (size_t)IW;
        for (long long c = 0; c < n_in; c += 8) {
            const long long cnt = n_in - c < 8 ? n_in - c : 8;
            /* lanes < cnt: the row's bytes; the others zp_in. A short group reads 8 bytes where x
             * has them (the next row's: blended away) — not bytes stored just before, which
             * would stall the load (no store forwarding from byte stores) */
            const __m128i keep = _mm_cmpgt_epi8(_mm_set1_epi8((char)cnt), _mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
            __m128i r[8];
            for (size_t j = 0; j < 8; j++) {
                __m128i b = zp8;   /* a channel past nc, or the columns past cnt: zp_in, i.e. 0 */
                if (j < nc) {
                    const int8_t *src = xc + j * (size_t)IH * (size_t)IW + c;
                    if (cnt == 8) {
                        b = _mm_loadl_epi64((const __m128i *)(const void *)src);
                    } else if (src + 8 <= xend) {
                        b = _mm_blendv_epi8(zp8, _mm_loadl_epi64((const __m128i *)(const void *)src), keep);
                    } else {   /* the end of x */
                        int8_t t[8];
                        for (long long q = 0; q < 8; q++) t[q] = q < cnt ? src[q] : (int8_t)o->zp_in;
                        b = _mm_loadl_epi64((const __m128i *)(const void *)t);
                    }
                }
                r[j] = _mm_sub_epi16(_mm_cvtepi8_epi16(b), zp16);
            }
            const __m128i t0 = _mm_unpacklo_epi16(r[0], r[1]), t1 = _mm_unpackhi_epi16(r[0], r[1]);
            const __m128i t2 = _mm_unpacklo_epi16(r[2], r[3]), t3 = _mm_unpackhi_epi16(r[2], r[3]);
            const __m128i t4 = _mm_unpacklo_epi16(r[4], r[5]), t5 = _mm_unpackhi_epi16(r[4], r[5]);
            const __m128i t6 = _mm_unpacklo_epi16(r[6], r[7]), t7 = _mm_unpackhi_epi16(r[6], r[7]);
            const __m128i u0 = _mm_unpacklo_epi32(t0, t2), u1 = _mm_unpackhi_epi32(t0, t2);
            const __m128i u2 = _mm_unpacklo_epi32(t1, t3), u3 = _mm_unpackhi_epi32(t1, t3);
            const __m128i u4 = _mm_unpacklo_epi32(t4, t6), u5 = _mm_unpackhi_epi32(t4, t6);
            const __m128i u6 = _mm_unpacklo_epi32(t5, t7), u7 = _mm_unpackhi_epi32(t5, t7);
            const __m128i px[8] = {_mm_unpacklo_epi64(u0, u4), _mm_unpackhi_epi64(u0, u4), _mm_unpacklo_epi64(u1, u5),
                                   _mm_unpackhi_epi64(u1, u5), _mm_unpacklo_epi64(u2, u6), _mm_unpackhi_epi64(u2, u6),
                                   _mm_unpacklo_epi64(u3, u7), _mm_unpackhi_epi64(u3, u7)};
            __m128i *d = (__m128i *)(void *)(xr + c * 8);
            for (long long q = 0; q < cnt; q++) _mm_storeu_si128(d + q, px[q]);   /* pixel c + q: its 8 channels */
        }
    }
    /* per tap pair: the offsets (int16 elements) and the weights of channels 0-3 / 4-7 in both lanes */
    long long off_a[32], off_b[32];
    __m256i wlo[32], whi[32];
    for (long long pi = 0; pi < npairs; pi++) {
        const long long ta = 2 * pi, tb = 2 * pi + 1 < taps ? 2 * pi + 1 : 2 * pi;
        off_a[pi] = (ta / KW * dh * PWr + ta % KW * dw) * 8, off_b[pi] = (tb / KW * dh * PWr + tb % KW * dw) * 8;
        int16_t wv[16];
        for (size_t j = 0; j < 8; j++) {
            const size_t c = c0 + (j < nc ? j : 0);
            const int8_t *wc = J->w + c * (size_t)taps;
            wv[2 * j] = j < nc ? wc[ta] : 0;
            wv[2 * j + 1] = j < nc && 2 * pi + 1 < taps ? wc[2 * pi + 1] : 0;
        }
        const __m128i w03 = _mm_loadu_si128((const __m128i *)wv), w47 = _mm_loadu_si128((const __m128i *)(wv + 8));
        wlo[pi] = _mm256_set_m128i(w03, w03), whi[pi] = _mm256_set_m128i(w47, w47);
    }
    size_t clo[8], chi[8];
    for (size_t j = 0; j < 4; j++) {
        clo[j] = clo[j + 4] = c0 + (j < nc ? j : 0);
        chi[j] = chi[j + 4] = c0 + (j + 4 < nc ? j + 4 : 0);
    }
    avx2_i8_rq qlo, qhi;
    avx2_i8_rq_init(&qlo, o, clo, 8), avx2_i8_rq_init(&qhi, o, chi, 8);
    const __m256i blo = _mm256_setr_epi32(J->bias[clo[0]], J->bias[clo[1]], J->bias[clo[2]], J->bias[clo[3]],
                                          J->bias[clo[0]], J->bias[clo[1]], J->bias[clo[2]], J->bias[clo[3]]);
    const __m256i bhi = _mm256_setr_epi32(J->bias[chi[0]], J->bias[chi[1]], J->bias[chi[2]], J->bias[chi[3]],
                                          J->bias[chi[0]], J->bias[chi[1]], J->bias[chi[2]], J->bias[chi[3]]);
    for (long long oh = 0; oh < OH; oh++) {
        const int16_t *xrow = X + oh * sh * PWr * 8;
        for (long long ow = 0; ow < OW; ow += 2) {
            const long long step = ow + 1 < OW ? sw * 8 : 0;   /* an odd last pixel: its own twice */
            const int16_t *p0 = xrow + ow * sw * 8;
            __m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256();
            for (long long pi = 0; pi < npairs; pi++) {
                const int16_t *a = p0 + off_a[pi], *b = p0 + off_b[pi];
                const __m256i va = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)a)),
                                                           _mm_loadu_si128((const __m128i *)(a + step)), 1);
                const __m256i vb = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)b)),
                                                           _mm_loadu_si128((const __m128i *)(b + step)), 1);
                lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(va, vb), wlo[pi]));
                hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(va, vb), whi[pi]));
            }
            const __m256i rl = avx2_i8_requant(_mm256_add_epi32(lo, blo), &qlo);
            const __m256i rh = avx2_i8_requant(_mm256_add_epi32(hi, bhi), &qhi);
            const __m256i p16 = _mm256_packs_epi32(rl, rh);   /* lane 0: pixel p channels 0-7, lane 1: p+1 */
            _mm_storeu_si128((__m128i *)(T + (oh * OW + ow) * 8),
                             _mm_packs_epi16(_mm256_castsi256_si128(p16), _mm256_extracti128_si256(p16, 1)));
        }
    }
    /* [P][8] -> the 8 output planes, 8 pixels at a time */
    int8_t *y = (int8_t *)J->y + (img * C + c0) * (size_t)P;
    const __m128i pairs = _mm_setr_epi8(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
    long long p = 0;
    for (; p + 8 <= P; p += 8) {
        const __m128i a = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(T + p * 8)), pairs);        /* c: p, p+1 */
        const __m128i b = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(T + p * 8 + 16)), pairs);   /* p+2, p+3 */
        const __m128i c = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(T + p * 8 + 32)), pairs);
        const __m128i d = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(T + p * 8 + 48)), pairs);
        const __m128i ab0 = _mm_unpacklo_epi16(a, b), ab1 = _mm_unpackhi_epi16(a, b);   /* channels 0-3 / 4-7, 4 pixels */
        const __m128i cd0 = _mm_unpacklo_epi16(c, d), cd1 = _mm_unpackhi_epi16(c, d);
        __m128i ch[4] = {_mm_unpacklo_epi32(ab0, cd0), _mm_unpackhi_epi32(ab0, cd0),     /* channels 0,1 | 2,3 */
                         _mm_unpacklo_epi32(ab1, cd1), _mm_unpackhi_epi32(ab1, cd1)};    /* 4,5 | 6,7 */
        for (size_t j = 0; j < nc; j++) {
            const __m128i v = ch[j / 2];
            _mm_storel_epi64((__m128i *)(y + j * (size_t)P + p), j % 2 ? _mm_unpackhi_epi64(v, v) : v);
        }
    }
    for (; p < P; p++)
        for (size_t j = 0; j < nc; j++) y[j * (size_t)P + p] = T[p * 8 + j];
}

DSE_TARGET_AVX2 static void avx2_i8_dwb_task(void *arg, size_t begin, size_t end, unsigned worker) {
    const avx2_i8_dw_job *J = arg;
    const size_t nb = ((size_t)J->C + 7) / 8;
    uint8_t *scratch = dse__worker_scratch(J->cx, worker);
    for (size_t it = begin; it < end; it++) avx2_i8_dwb_block(J, it / nb, it % nb * 8, scratch);
}

size_t dse_i8_dwconv_scratch_avx2(const dse_model *m, const dse_node *n, const dse_i8_geom *g, int fo, size_t plan,
                                  size_t extra) {
    if (plan < extra) return (size_t)-1;
    plan -= extra;
    const size_t cap = m->scratch_size > extra ? m->scratch_size - extra : 0, budget = plan < cap ? plan : cap;
    avx2_dw3_plan p3;   /* 3x3 on rows of 8 or more: pairs of taps */
    if (avx2_dw3_plan_of(g, fo, budget, &p3) && dse__scratch_free(m, n, p3.need + extra)) return p3.need;
    const size_t nb = avx2_dwb_need(g, fo);
    if (nb && nb <= plan && dse__scratch_free(m, n, nb + extra)) return nb;   /* small planes: channel blocks */
    avx2_dw_plan dp;
    avx2_dw_plan_of(g, budget, &dp);
    if (!dp.whole && dp.ring > 64) return (size_t)-1;
    /* more than the plan, or an artifact planned before this kernel (tensors may live in the
     * scratch region at this node): the next kernel */
    if (dp.rows_bytes > plan || !dse__scratch_free(m, n, dp.rows_bytes + extra)) return (size_t)-1;
    return dp.rows_bytes;
}

DSE_TARGET_AVX2 void dse_i8_dwconv_run_avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx,
                                            const dse_i8_out *o, const dse_i8_geom *g, const int8_t *w, size_t budget) {
    const size_t O = m->tensors[n->in[1]].dims[0], NB = m->tensors[n->in[0]].dims[0];
    avx2_i8_dw_job J = {cx, dse__data(m, arena, n->in[0]), w, m->tensors[n->in[0]].numel, dse__data(m, arena, n->in[2]),
                        o, dse__data(m, arena, n->out[0]), g, (long long)O, {0, 0, 0, 0, 0}, {0, 0, 0, 0, 0, 0, 0, 0, 0}};
    const uint64_t work = (uint64_t)m->tensors[n->out[0]].numel * (uint64_t)(g->k[0] * g->k[1] * g->k[2]);
    if (avx2_dw3_plan_of(g, o->float_out, budget, &J.p3)) {   /* within the node's scratch: the check's order */
        dse__parallel(cx, NB * O, dse__grain(NB * O, work), avx2_i8_dw3_task, &J);
        return;
    }
    const size_t nb = avx2_dwb_need(g, o->float_out);
    if (nb && nb <= budget) {
        const size_t items = NB * ((O + 7) / 8);
        dse__parallel(cx, items, dse__grain(items, work), avx2_i8_dwb_task, &J);
        return;
    }
    avx2_dw_plan_of(g, budget, &J.dp);
    dse__parallel(cx, NB * O, dse__grain(NB * O, work), avx2_i8_dw_task, &J);
}

#endif
