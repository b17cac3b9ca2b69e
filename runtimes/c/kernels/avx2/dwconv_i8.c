/* avx2/dwconv_i8.c: int8 depthwise Conv for x86-64 AVX2 (group == C_in == C_out, layout 0, 1-D or
 * 2-D), byte-identical with the REF kernel (kernels/ref/conv_i8.c); called by dse_i8_conv__avx2
 * (conv_i8.c, whose check accepts the node and whose header states the arithmetic).
 *
 * Per channel plane, input rows are converted once into int16 x - zp_in rows with their padding
 * (0) and split by the stride's phase (row_phi[j] = x_padded[j*sw + phi]), kept in a ring of
 * (kh-1)*dh + 1 rows (or the whole plane when the scratch holds it: avx2_dw_plan_of,
 * i8_avx2.h), so that every tap reads 16 consecutive int16 for 16 consecutive outputs; taps are
 * taken in pairs (two rows interleaved with vpunpck[lh]wd, one vpmaddwd against the broadcast
 * weight pair). The pack of 16 int32 back to bytes undoes the unpack's lane order. Threads:
 * dse__parallel over (image, channel) planes, each with its worker's scratch. */
#include "isa.h"

#if DSE_ARCH_X86_64
#include "i8_avx2.h"

/* -- the planes ---------------------------------------------------------------------------------- */

typedef struct avx2_i8_dw_job {
    const dse_ctx *cx;
    const int8_t *x, *w;
    const int32_t *bias;
    const dse_i8_out *o;
    void *y;
    const dse_i8_geom *g;
    long long C;
    avx2_dw_plan dp;
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

DSE_TARGET_AVX2 void dse_i8_dwconv_run_avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx,
                                            const dse_i8_out *o, const dse_i8_geom *g) {
    const size_t O = m->tensors[n->in[1]].dims[0], NB = m->tensors[n->in[0]].dims[0];
    avx2_i8_dw_job J = {cx, dse__data(m, arena, n->in[0]), dse__data(m, arena, n->in[1]), dse__data(m, arena, n->in[2]),
                        o, dse__data(m, arena, n->out[0]), g, (long long)O, {0, 0, 0, 0, 0}};
    avx2_dw_plan_of(g, n->scratch, &J.dp);
    dse__parallel(cx, NB * O, dse__grain(NB * O, (uint64_t)m->tensors[n->out[0]].numel * (uint64_t)(g->k[0] * g->k[1] * g->k[2])),
                  avx2_i8_dw_task, &J);
}

#endif
