/* conv_transpose_i8.c (AVX2): int8 ConvTranspose, 1-D and 2-D (groups, strides, dilations, pads,
 * output_padding), int8 or float_out outputs, byte-identical with REF (kernels/ref/
 * conv_transpose_i8.c; 3-D nodes are left to it).
 *
 * Arithmetic (docs/quant-arith.md §4, REF's form): acc = bias + sum over the (input channel, tap)
 * pairs reaching an output of (x - zp_in) * w. Integer sums are exact in any order: the sum of
 * one tap over the input channels is a GEMM, taps are then added in int32. Products are exact
 * (vpmaddwd of int16 pairs: x - zp_in in [-255, 255], w in [-127, 127], two products per int32
 * lane), no sum leaves int32 (REF's check bounds K * 255 * 127 with K = C/group * taps, and this
 * check max|bias| + K * 255 * 127 < 2^31, so bias is added in int32 where REF adds it in
 * int64), then the requantisation rule of i8_avx2.h (8 lanes of one channel) or float_out as
 * REF ((float)acc * scale, the clamps in REF's operand order); single elements through REF's
 * dse_i8_store.
 *
 * GEMM (pixels in lanes): for a block of output channels, the weights of every (m, tap) row are
 * first paired per input channel pair (int32 = w[2p] | w[2p+1] << 16, from the stored layout
 * (C, M/group, kH, kW), layout 0) into scratch; the input columns of one input row likewise
 * (x[2p] - zp | x[2p+1] - zp << 16, 0 outside the row); a tile of up to 6 rows x 16 columns keeps
 * 12 int32 accumulators, per channel pair two loads of x and per row one broadcast and two
 * vpmaddwd.
 * Two paths, as the float32 variant (kernels/avx2/conv_transpose.c; dse__convt_plan in
 * src/internal.h gives them and the scratch):
 *   - DIRECT ((k - 1) * d < s on both axes: every output receives at most one tap): per input
 *     row, blocks of JC input columns, the GEMM of every (m, tap) row into an int32 block, then
 *     each row requantised to its output positions (two adjacent taps at stride 2 interleaved);
 *     outputs no tap reaches get bias alone;
 *   - GENERAL (overlapping taps): per output row, chunks of sw * QC output columns as int32
 *     split by the W stride into phases; each tap's GEMM over the input columns reaching the
 *     chunk is added to its phase, then the requantisation interleaves the phases.
 * Threads: (image, group, block of output channels, band of rows) parts with their worker's
 * scratch, each writing its own outputs. */
#include "isa.h"

#if DSE_ARCH_X86_64
#include "i8_avx2.h"

typedef struct ci8_job {
    const dse_ctx *cx;
    dse_convt_plan pl;
    dse_i8_out o;
    const int8_t *x, *w;
    const int32_t *bias;
    void *y;
    size_t C, O, G, cg, mg, T, isz, osz, nmb, nbands;
    size_t IH, IW, OH, OW, KH, KW, sh, sw, dh, dw;
    long long pbh, pbw;
    int cols_full;   /* DIRECT: every output column is reached by some kw from some input column */
} ci8_job;

/* max|bias| + K * 255 * 127 < 2^31: every int32 sum, bias included, is exact */
static int ci8_bias_fits(const dse_model *m, const dse_node *n, size_t O, size_t K) {
    const dse_tensor *b = &m->tensors[n->in[2]];
    const int32_t *bd = (const int32_t *)b->cdata;
    int64_t big = 0;
    for (size_t c = 0; c < O; c++) {
        const int64_t v = bd[c] < 0 ? -(int64_t)bd[c] : bd[c];
        if (v > big) big = v;
    }
    return big + (int64_t)K * 255 * 127 < ((int64_t)1 << 31);
}

int dse__check_i8_conv_transpose_avx2(const dse_model *m, const dse_node *n, dse_why *why) {
    if (dse_i8_conv_transpose_check(m, n, why)) return 1;   /* REF's checks; they set the plan */
    const dse_tensor *x = &m->tensors[n->in[0]], *w = &m->tensors[n->in[1]], *y = &m->tensors[n->out[0]];
    if (x->rank > 4 || w->layout != DSE_LAYOUT_PLAIN) return 1;
    const int64_t group = dse__attr_int(n, DSE_A_group, 1);
    size_t KS = 1;
    for (unsigned d = 2; d < w->rank; d++) KS *= w->dims[d];
    const size_t cg = w->dims[0] / (size_t)group, mg = w->dims[1];
    if (!ci8_bias_fits(m, n, mg * (size_t)group, cg * KS)) return 1;
    dse_i8_geom g;
    dse_why tmp;
    if (dse_i8_geom_read(n, x, y, w->dims + 2, &g, &tmp)) return 1;
    dse_convt_plan p;
    const size_t need = dse__convt_plan((size_t)g.sp, cg, mg, (size_t)g.k[1], (size_t)g.k[2], (size_t)g.s[1], (size_t)g.s[2],
                                        (size_t)g.d[1], (size_t)g.d[2], 1, &p);
    /* no variant path, or an artifact planned before this kernel (tensors may live there): REF */
    if (!need || need > why->scratch_plan || !dse__scratch_free(m, n, need)) return 1;
    why->scratch = need;
    return 0;
}

static inline int32_t ci8_pair(int a, int b) { return (int32_t)((uint32_t)(uint16_t)(int16_t)a | (uint32_t)(uint16_t)(int16_t)b << 16); }

/* The weight pairs of output channels [m0, m0 + mbk) of a group (wg: its first input channel):
 * w2[(mm * T + t) * Kp2 + p] = (w[2p][m0 + mm][t], w[2p + 1][m0 + mm][t]) (0 past the channels). */
static void ci8_pack_w(const ci8_job *j, int32_t *w2, const int8_t *wg, size_t m0, size_t mbk) {
    const size_t T = j->T, Kp2 = j->pl.Kp2, cs = j->mg * T;
    for (size_t mm = 0; mm < mbk; mm++)
        for (size_t t = 0; t < T; t++) {
            const int8_t *s = wg + (m0 + mm) * T + t;
            int32_t *d = w2 + (mm * T + t) * Kp2;
            for (size_t p = 0; p < Kp2; p++) d[p] = ci8_pair(s[2 * p * cs], 2 * p + 1 < j->cg ? s[(2 * p + 1) * cs] : 0);
        }
}

/* The x pairs of input row xr (channel 0 of the group; channel c at xr + c * isz), columns
 * c0 .. c0 + n - 1 (c0 may be negative): x2[p * ld + u] = (x[2p][c0 + u] - zp, x[2p + 1][..] - zp),
 * 0 outside [0, IW) and past the channels. */
static DSE_TARGET_AVX2 void ci8_pack_x(const ci8_job *j, int32_t *x2, size_t ld, const int8_t *xr, long long c0, size_t n) {
    const long long IW = (long long)j->IW;
    const int zp = j->o.zp_in;
    const __m256i z = _mm256_set1_epi16((int16_t)zp);
    const __m128i z8 = _mm_set1_epi16((int16_t)zp);
    for (size_t p = 0; p < j->pl.Kp2; p++) {
        const int8_t *r0 = xr + 2 * p * j->isz, *r1 = 2 * p + 1 < j->cg ? r0 + j->isz : NULL;
        int32_t *d = x2 + p * ld;
        size_t u = 0;
        while (u < n) {
            const long long c = c0 + (long long)u;
            if (c >= 0 && c + 16 <= IW && u + 16 <= n) {
                const __m256i a = _mm256_sub_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(r0 + c))), z);
                const __m256i b = r1 ? _mm256_sub_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(r1 + c))), z)
                                     : _mm256_setzero_si256();
                const __m256i lo = _mm256_unpacklo_epi16(a, b), hi = _mm256_unpackhi_epi16(a, b);   /* u 0-3, 8-11 | 4-7, 12-15 */
                _mm256_storeu_si256((__m256i *)(d + u), _mm256_permute2x128_si256(lo, hi, 0x20));
                _mm256_storeu_si256((__m256i *)(d + u + 8), _mm256_permute2x128_si256(lo, hi, 0x31));
                u += 16;
            } else if (c >= 0 && c + 8 <= IW && u + 8 <= n) {
                const __m128i a = _mm_sub_epi16(_mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)(r0 + c))), z8);
                const __m128i b = r1 ? _mm_sub_epi16(_mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)(r1 + c))), z8)
                                     : _mm_setzero_si128();
                _mm_storeu_si128((__m128i *)(d + u), _mm_unpacklo_epi16(a, b));
                _mm_storeu_si128((__m128i *)(d + u + 4), _mm_unpackhi_epi16(a, b));
                u += 8;
            } else {
                const int in = c >= 0 && c < IW;
                d[u++] = ci8_pair(in ? r0[c] - zp : 0, in && r1 ? r1[c] - zp : 0);
            }
        }
    }
}

/* MR rows x W (8 or 16) columns: c[r * ldc + u] (= or +=) sum_p madd(x2[p * ldx + u], w2[r * rs + p])
 * for u < nr (whole vectors of x2 are read: the caller packed them). */
static inline __attribute__((always_inline)) DSE_TARGET_AVX2 void ci8_tile(const int32_t *w2, size_t rs, const int32_t *x2,
                                                                             size_t ldx, size_t Kp2, const int MR, const int W,
                                                                             int32_t *c, size_t ldc, size_t nr, int accum) {
    __m256i a0[6], a1[6];
    _Pragma("GCC unroll 6")
    for (int r = 0; r < MR; r++) a0[r] = a1[r] = _mm256_setzero_si256();
    for (size_t p = 0; p < Kp2; p++, x2 += ldx) {
        const __m256i xa = _mm256_loadu_si256((const __m256i *)x2);
        const __m256i xb = W == 16 ? _mm256_loadu_si256((const __m256i *)(x2 + 8)) : xa;
        _Pragma("GCC unroll 6")
        for (int r = 0; r < MR; r++) {
            const __m256i wv = _mm256_set1_epi32(w2[(size_t)r * rs + p]);
            a0[r] = _mm256_add_epi32(a0[r], _mm256_madd_epi16(xa, wv));
            if (W == 16) a1[r] = _mm256_add_epi32(a1[r], _mm256_madd_epi16(xb, wv));
        }
    }
    _Pragma("GCC unroll 6")
    for (int r = 0; r < MR; r++) {
        int32_t *cr = c + (size_t)r * ldc;
        if (nr == (size_t)W) {
            __m256i v0 = a0[r], v1 = a1[r];
            if (accum) {
                v0 = _mm256_add_epi32(v0, _mm256_loadu_si256((const __m256i *)cr));
                if (W == 16) v1 = _mm256_add_epi32(v1, _mm256_loadu_si256((const __m256i *)(cr + 8)));
            }
            _mm256_storeu_si256((__m256i *)cr, v0);
            if (W == 16) _mm256_storeu_si256((__m256i *)(cr + 8), v1);
        } else {
            int32_t t[16];
            _mm256_storeu_si256((__m256i *)t, a0[r]);
            if (W == 16) _mm256_storeu_si256((__m256i *)(t + 8), a1[r]);
            for (size_t u = 0; u < nr; u++) cr[u] = accum ? cr[u] + t[u] : t[u];
        }
    }
}

#define CI8_TILE(MR, W)                                                                                                \
    static DSE_TARGET_AVX2 void ci8_tile##MR##_##W(const int32_t *w2, size_t rs, const int32_t *x2, size_t ldx, size_t Kp2, \
                                                   int32_t *c, size_t ldc, size_t nr, int accum) {                      \
        ci8_tile(w2, rs, x2, ldx, Kp2, MR, W, c, ldc, nr, accum);                                                      \
    }
CI8_TILE(1, 8) CI8_TILE(2, 8) CI8_TILE(3, 8) CI8_TILE(4, 8) CI8_TILE(5, 8) CI8_TILE(6, 8)
CI8_TILE(1, 16) CI8_TILE(2, 16) CI8_TILE(3, 16) CI8_TILE(4, 16) CI8_TILE(5, 16) CI8_TILE(6, 16)
#undef CI8_TILE

/* rows x ncols: rows in blocks of at most 6 (as even as possible), columns in tiles of 16 (a last
 * one of 8 when it has at most 8) */
static DSE_TARGET_AVX2 void ci8_gemm(const int32_t *w2, size_t rs, size_t rows, const int32_t *x2, size_t ldx, size_t Kp2,
                                     size_t ncols, int32_t *c, size_t ldc, int accum) {
    if (!rows || !ncols) return;
    const size_t nb = (rows + 5) / 6, base = rows / nb, extra = rows % nb;
    for (size_t blk = 0, i = 0; blk < nb; blk++) {
        const size_t mr = base + (blk < extra);
        const int32_t *w = w2 + i * rs;
        int32_t *ci = c + i * ldc;
        for (size_t u = 0; u < ncols; u += 16) {
            const size_t nr = ncols - u < 16 ? ncols - u : 16;
            const int32_t *xu = x2 + u;
            int32_t *cu = ci + u;
            if (nr > 8) {
                switch (mr) {
                case 6: ci8_tile6_16(w, rs, xu, ldx, Kp2, cu, ldc, nr, accum); break;
                case 5: ci8_tile5_16(w, rs, xu, ldx, Kp2, cu, ldc, nr, accum); break;
                case 4: ci8_tile4_16(w, rs, xu, ldx, Kp2, cu, ldc, nr, accum); break;
                case 3: ci8_tile3_16(w, rs, xu, ldx, Kp2, cu, ldc, nr, accum); break;
                case 2: ci8_tile2_16(w, rs, xu, ldx, Kp2, cu, ldc, nr, accum); break;
                default: ci8_tile1_16(w, rs, xu, ldx, Kp2, cu, ldc, nr, accum); break;
                }
            } else {
                switch (mr) {
                case 6: ci8_tile6_8(w, rs, xu, ldx, Kp2, cu, ldc, nr, accum); break;
                case 5: ci8_tile5_8(w, rs, xu, ldx, Kp2, cu, ldc, nr, accum); break;
                case 4: ci8_tile4_8(w, rs, xu, ldx, Kp2, cu, ldc, nr, accum); break;
                case 3: ci8_tile3_8(w, rs, xu, ldx, Kp2, cu, ldc, nr, accum); break;
                case 2: ci8_tile2_8(w, rs, xu, ldx, Kp2, cu, ldc, nr, accum); break;
                default: ci8_tile1_8(w, rs, xu, ldx, Kp2, cu, ldc, nr, accum); break;
                }
            }
        }
        i += mr;
    }
}

/* -- output stage ----------------------------------------------------------------------------------- */

/* 8 sums of channel m (bias added): the int8 values as int32 lanes */
static inline __attribute__((always_inline)) DSE_TARGET_AVX2 __m256i ci8_q(__m256i v, const avx2_i8_rq *q) {
    return avx2_i8_requant(v, q);
}

/* float_out: (float)acc * scale, then max(act_min, v) and min(act_max, v) in REF's operand order */
static inline __attribute__((always_inline)) DSE_TARGET_AVX2 __m256 ci8_f(__m256i v, __m256 scale, __m256 fmin, __m256 fmax) {
    return _mm256_min_ps(fmax, _mm256_max_ps(fmin, _mm256_mul_ps(_mm256_cvtepi32_ps(v), scale)));
}

/* One output row of output channel m (element index yrow of its first column) from F int32 rows:
 * src[f][q] + bias goes to column base[f] + q * sw for q < cnt[f] (skipped outside [0, OW)).
 * Two rows at stride 2 with base[1] = base[0] + 1 interleave 16 outputs at a time; stride 1
 * stores 8 at a time; everything else element by element through REF's dse_i8_store. */
static DSE_TARGET_AVX2 void ci8_store(const ci8_job *j, size_t yrow, size_t m, const int32_t *const *src, const long long *base,
                                      const size_t *cnt, size_t F) {
    const dse_i8_out *o = &j->o;
    const long long OW = (long long)j->OW, sw = (long long)j->sw;
    const int32_t bias = j->bias[m];
    const __m256i bv = _mm256_set1_epi32(bias);
    avx2_i8_rq q;
    __m256 fs = _mm256_setzero_ps(), fmin = _mm256_set1_ps(o->act_min), fmax = _mm256_set1_ps(o->act_max);
    avx2_i8_rq_init1(&q, o, m);
    if (o->float_out) fs = _mm256_set1_ps(o->scale[m]);
    int8_t *y8 = (int8_t *)j->y + yrow;
    float *yf = (float *)j->y + yrow;
    long long v0 = 0, v1 = 0;   /* q in [v0, v1): stored by the vector loop for every source */
    if (F == 2 && sw == 2 && base[1] == base[0] + 1) {
        v0 = base[0] >= 0 ? 0 : (1 - base[0]) / 2;
        long long e = (OW - base[0]) / 2;
        if (e > (long long)cnt[0]) e = (long long)cnt[0];
        if (e > (long long)cnt[1]) e = (long long)cnt[1];
        for (v1 = v0; v1 + 8 <= e; v1 += 8) {
            const __m256i a = _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)(src[0] + v1)), bv);
            const __m256i b = _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)(src[1] + v1)), bv);
            const long long at = base[0] + 2 * v1;
            if (o->float_out) {
                const __m256 fa = ci8_f(a, fs, fmin, fmax), fb = ci8_f(b, fs, fmin, fmax);
                const __m256 lo = _mm256_unpacklo_ps(fa, fb), hi = _mm256_unpackhi_ps(fa, fb);
                _mm256_storeu_ps(yf + at, _mm256_permute2f128_ps(lo, hi, 0x20));
                _mm256_storeu_ps(yf + at + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
            } else {
                const __m256i ra = ci8_q(a, &q), rb = ci8_q(b, &q);
                /* a0 b0 a1 b1 a2 b2 a3 b3 | a4 b4 ... a7 b7 as int16, then bytes */
                const __m256i w = _mm256_packs_epi32(_mm256_unpacklo_epi32(ra, rb), _mm256_unpackhi_epi32(ra, rb));
                const __m256i bb = _mm256_permute4x64_epi64(_mm256_packs_epi16(w, w), 0x08);
                _mm_storeu_si128((__m128i *)(y8 + at), _mm256_castsi256_si128(bb));
            }
        }
    } else if (F == 1 && sw == 1) {
        v0 = base[0] >= 0 ? 0 : -base[0];
        long long e = OW - base[0];
        if (e > (long long)cnt[0]) e = (long long)cnt[0];
        for (v1 = v0; v1 + 8 <= e; v1 += 8) {
            const __m256i a = _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)(src[0] + v1)), bv);
            const long long at = base[0] + v1;
            if (o->float_out) {
                _mm256_storeu_ps(yf + at, ci8_f(a, fs, fmin, fmax));
            } else {
                __m256i w = _mm256_packs_epi32(ci8_q(a, &q), _mm256_setzero_si256());   /* v0-3 0 | v4-7 0 */
                w = _mm256_packs_epi16(w, w);
                const int32_t lo = _mm256_cvtsi256_si32(w), hi = _mm256_extract_epi32(w, 4);
                memcpy(y8 + at, &lo, 4);
                memcpy(y8 + at + 4, &hi, 4);
            }
        }
    }
    if (v1 < v0) v1 = v0;
    for (size_t f = 0; f < F; f++)
        for (long long u = 0; u < (long long)cnt[f]; u++) {
            if (u == v0 && v1 > v0) u = v1;
            if (u >= (long long)cnt[f]) break;
            const long long ow = base[f] + u * sw;
            if (ow >= 0 && ow < OW) dse_i8_store(o, j->y, yrow + (size_t)ow, m, (int64_t)src[f][u] + bias);
        }
}

/* 1 when output position o + pb is i * s + k * d for some tap k < K and input i < L */
static int ci8_reached(long long o, long long pb, size_t K, size_t d, size_t s, size_t L) {
    for (size_t k = 0; k < K; k++) {
        const long long t = o + pb - (long long)(k * d);
        if (t >= 0 && t % (long long)s == 0 && t / (long long)s < (long long)L) return 1;
    }
    return 0;
}

/* An output row no tap reaches: REF's value of acc = 0 (bias alone) everywhere */
static void ci8_fill(const ci8_job *j, size_t yrow, size_t m) {
    float v[1];
    dse_i8_store(&j->o, v, 0, m, (int64_t)j->bias[m]);
    if (!j->o.float_out) {
        memset((int8_t *)j->y + yrow, ((int8_t *)v)[0], j->OW);
        return;
    }
    float *yf = (float *)j->y + yrow;
    for (size_t i = 0; i < j->OW; i++) yf[i] = v[0];
}

/* DIRECT: input rows [ih0, ih1) of one image and group, output channels [m0, m1) of the group;
 * yg: the element index of the group's first output channel in this image, mo its channel index. */
static DSE_TARGET_AVX2 void ci8_direct(const ci8_job *j, const int8_t *xg, const int8_t *wg, size_t yg, size_t mo, size_t m0, size_t m1,
                                       size_t ih0, size_t ih1, uint8_t *scr) {
    const size_t T = j->T, KW = j->KW, JC = j->pl.JC, IW = j->IW, OH = j->OH, OW = j->OW, Kp2 = j->pl.Kp2;
    int32_t *w2 = (int32_t *)(void *)scr, *x2 = (int32_t *)(void *)(scr + j->pl.x2_off), *buf = (int32_t *)(void *)(scr + j->pl.acc_off);
    long long own0 = ih0 ? (long long)(ih0 * j->sh) - j->pbh : 0, own1 = ih1 < j->IH ? (long long)(ih1 * j->sh) - j->pbh : (long long)OH;
    own0 = own0 < 0 ? 0 : own0 > (long long)OH ? (long long)OH : own0;
    own1 = own1 < own0 ? own0 : own1 > (long long)OH ? (long long)OH : own1;
    for (long long oh = own0; oh < own1; oh++)
        if (!j->cols_full || !ci8_reached(oh, j->pbh, j->KH, j->dh, j->sh, j->IH))
            for (size_t m = m0; m < m1; m++) ci8_fill(j, yg + (m * OH + (size_t)oh) * OW, mo + m);
    ci8_pack_w(j, w2, wg, m0, m1 - m0);
    for (size_t ih = ih0; ih < ih1; ih++)
        for (size_t iw0 = 0; iw0 < IW; iw0 += JC) {
            const size_t jn = IW - iw0 < JC ? IW - iw0 : JC;
            ci8_pack_x(j, x2, JC, xg + ih * IW, (long long)iw0, (jn + 7) / 8 * 8);
            ci8_gemm(w2, Kp2, (m1 - m0) * T, x2, JC, Kp2, jn, buf, JC, 0);
            for (size_t m = m0; m < m1; m++)
                for (size_t kh = 0; kh < j->KH; kh++) {
                    const long long oh = (long long)(ih * j->sh + kh * j->dh) - j->pbh;
                    if (oh < 0 || oh >= (long long)OH) continue;
                    const int32_t *src[64];
                    long long base[64];
                    size_t cnt[64];
                    for (size_t kw = 0; kw < KW; kw++) {
                        src[kw] = buf + ((m - m0) * T + kh * KW + kw) * JC;
                        base[kw] = (long long)(iw0 * j->sw + kw * j->dw) - j->pbw;
                        cnt[kw] = jn;
                    }
                    ci8_store(j, yg + (m * OH + (size_t)oh) * OW, mo + m, src, base, cnt, KW);
                }
        }
}

/* GENERAL: output rows [oh0, oh1) of one image and group, output channels [m0, m1). */
static DSE_TARGET_AVX2 void ci8_general(const ci8_job *j, const int8_t *xg, const int8_t *wg, size_t yg, size_t mo, size_t m0, size_t m1,
                                        size_t oh0, size_t oh1, uint8_t *scr) {
    const size_t T = j->T, KW = j->KW, QC = j->pl.QC, XW = j->pl.XW, sw = j->sw, IW = j->IW, OW = j->OW, ld = sw * QC;
    const size_t mbk = m1 - m0, Kp2 = j->pl.Kp2, OH = j->OH;
    int32_t *w2 = (int32_t *)(void *)scr, *x2 = (int32_t *)(void *)(scr + j->pl.x2_off), *acc = (int32_t *)(void *)(scr + j->pl.acc_off);
    ci8_pack_w(j, w2, wg, m0, mbk);
    for (size_t oh = oh0; oh < oh1; oh++)
        for (size_t ow0 = 0; ow0 < OW; ow0 += ld) {
            size_t qn[16];
            for (size_t f = 0; f < sw; f++) {
                const size_t left = OW > ow0 + f ? (OW - ow0 - f + sw - 1) / sw : 0;
                qn[f] = left < QC ? left : QC;
            }
            memset(acc, 0, mbk * ld * sizeof(int32_t));
            /* the first input column any tap of this chunk reads */
            const long long cb = dse_i8_floordiv((long long)ow0 + j->pbw - (long long)((KW - 1) * j->dw), (long long)sw);
            for (size_t kh = 0; kh < j->KH; kh++) {
                const long long th = (long long)oh + j->pbh - (long long)(kh * j->dh);
                if (th < 0 || th % (long long)j->sh || th / (long long)j->sh >= (long long)j->IH) continue;
                const size_t ih = (size_t)(th / (long long)j->sh);
                ci8_pack_x(j, x2, XW, xg + ih * IW, cb, XW);
                for (size_t kw = 0; kw < KW; kw++) {
                    const long long off = (long long)(kw * j->dw) - j->pbw, r = ((off - (long long)ow0) % (long long)sw + (long long)sw) % (long long)sw;
                    const size_t f = (size_t)r;
                    const long long e = ((long long)ow0 + r - off) / (long long)sw;   /* iw = q + e */
                    long long q0 = e < 0 ? -e : 0, q1 = (long long)IW - e;
                    if (q1 > (long long)qn[f]) q1 = (long long)qn[f];
                    if (q0 >= q1) continue;
                    ci8_gemm(w2 + (kh * KW + kw) * Kp2, T * Kp2, mbk, x2 + (q0 + e - cb), XW, Kp2, (size_t)(q1 - q0),
                             acc + f * QC + (size_t)q0, ld, 1);
                }
            }
            for (size_t m = m0; m < m1; m++) {
                const int32_t *src[16];
                long long base[16];
                for (size_t f = 0; f < sw; f++) src[f] = acc + (m - m0) * ld + f * QC, base[f] = (long long)(ow0 + f);
                ci8_store(j, yg + (m * OH + oh) * OW, mo + m, src, base, qn, sw);
            }
        }
}

static DSE_TARGET_AVX2 void ci8_task(void *arg, size_t begin, size_t end, unsigned worker) {
    const ci8_job *j = arg;
    uint8_t *scr = dse__worker_scratch(j->cx, worker);
    const size_t rows = j->pl.direct ? j->IH : j->OH;
    for (size_t it = begin; it < end; it++) {
        size_t r = it;
        const size_t band = r % j->nbands; r /= j->nbands;
        const size_t mbi = r % j->nmb; r /= j->nmb;
        const size_t grp = r % j->G, img = r / j->G;
        const size_t r0 = rows * band / j->nbands, r1 = rows * (band + 1) / j->nbands;
        const size_t m0 = mbi * j->pl.mb, m1 = m0 + j->pl.mb < j->mg ? m0 + j->pl.mb : j->mg;
        const int8_t *xg = j->x + (img * j->C + grp * j->cg) * j->isz, *wg = j->w + grp * j->cg * j->mg * j->T;
        const size_t yg = (img * j->O + grp * j->mg) * j->osz;
        if (j->pl.direct) ci8_direct(j, xg, wg, yg, grp * j->mg, m0, m1, r0, r1, scr);
        else ci8_general(j, xg, wg, yg, grp * j->mg, m0, m1, r0, r1, scr);
    }
}

DSE_TARGET_AVX2 void dse_i8_conv_transpose__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    const dse_tensor *xt = &m->tensors[n->in[0]], *wt = &m->tensors[n->in[1]], *yt = &m->tensors[n->out[0]];
    ci8_job j;
    dse_why why;
    dse_i8_geom g;
    memset(&j, 0, sizeof j);
    j.cx = cx;
    j.G = (size_t)dse__attr_int(n, DSE_A_group, 1);
    j.C = wt->dims[0], j.mg = wt->dims[1], j.cg = j.C / j.G, j.O = j.mg * j.G;
    dse_i8_out_params(m, n, j.O, &j.o, &why);
    dse_i8_geom_read(n, xt, yt, wt->dims + 2, &g, &why);
    j.IH = (size_t)g.in[1], j.IW = (size_t)g.in[2], j.OH = (size_t)g.out[1], j.OW = (size_t)g.out[2];
    j.KH = (size_t)g.k[1], j.KW = (size_t)g.k[2], j.sh = (size_t)g.s[1], j.sw = (size_t)g.s[2];
    j.dh = (size_t)g.d[1], j.dw = (size_t)g.d[2], j.pbh = g.pb[1], j.pbw = g.pb[2];
    dse__convt_plan((size_t)g.sp, j.cg, j.mg, j.KH, j.KW, j.sh, j.sw, j.dh, j.dw, 1, &j.pl);
    j.T = j.pl.T, j.isz = j.IH * j.IW, j.osz = j.OH * j.OW;
    j.x = dse__data(m, arena, n->in[0]), j.w = dse__data(m, arena, n->in[1]);
    j.bias = dse__data(m, arena, n->in[2]), j.y = dse__data(m, arena, n->out[0]);
    const size_t N = xt->dims[0];
    if (!j.osz || !j.O || !N) return;
    j.cols_full = 1;
    for (size_t ow = 0; ow < j.OW && j.cols_full; ow++) j.cols_full = ci8_reached((long long)ow, j.pbw, j.KW, j.dw, j.sw, j.IW);
    j.nmb = (j.mg + j.pl.mb - 1) / j.pl.mb;
    const size_t threads = dse__threads(cx), units = N * j.G * j.nmb, rows = j.pl.direct ? j.IH : j.OH;
    j.nbands = 1;
    if (threads > 1 && units < 4 * threads) {   /* few channel blocks: bands of rows too */
        j.nbands = (4 * threads + units - 1) / units;
        if (j.nbands > rows) j.nbands = rows;
        if (!j.nbands) j.nbands = 1;
    }
    dse__parallel(cx, units * j.nbands, 1, ci8_task, &j);
}

#endif
