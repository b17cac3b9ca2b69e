/* avx2/i8_avx2.h: what the AVX2 int8 Conv files share (conv_i8.c: checks, GEMM core, Conv,
 * Gemm, MatMul; dwconv_i8.c: depthwise; winograd_i8.c: Winograd F(2x2, 3x3)): the scratch plans
 * of the depthwise and Winograd paths (the check and the run must agree), the exact
 * requantisation of 8 int32 lanes, the thread split. See conv_i8.c's header for the arithmetic. */
#ifndef DSE_AVX2_I8_AVX2_H
#define DSE_AVX2_I8_AVX2_H

#include <immintrin.h>

#include "requant.h"

/* Depthwise: int16 phase rows of the input (a ring, or the whole plane when it fits), a zero
 * row and the padded int8 row the conversion goes through. Whole plane: every row is converted
 * before any is read (freshly stored rows read at other offsets stall store forwarding); ring:
 * the rows of two consecutive output rows, converted one output row ahead. */
typedef struct avx2_dw_plan {
    long long ring, L, sw, whole;   /* ring rows (IH when whole), int16 per phase row, phases */
    size_t rows_bytes;
} avx2_dw_plan;

static inline void avx2_dw_plan_of(const dse_i8_geom *g, size_t budget, avx2_dw_plan *p) {
    const long long OWr = (g->out[2] + 15) / 16 * 16;
    p->sw = g->s[2];
    p->L = (OWr + (g->k[2] - 1) * g->d[2] / g->s[2] + 1 + 15) / 16 * 16;
    const size_t row = (size_t)(p->sw * p->L) * 2, tmp = (size_t)(p->sw * p->L) + 64;
    p->whole = (size_t)(g->in[1] + 1) * row + tmp <= budget;
    p->ring = p->whole ? g->in[1] : (g->k[1] - 1) * g->d[1] + 1 + g->s[1];
    p->rows_bytes = (size_t)(p->ring + 1) * row + tmp;
}

/* Depthwise on small planes (OW < AVX2_DWB_MAX_OW): blocks of 8 channels with the channels in
 * the lanes (a plane of 7 or 14 pixels per row leaves most of 16 pixel lanes empty). Scratch: the
 * block's padded input as int16 [PH][PW][8] (x - zp_in, 0 in the padding), 8 int8 rows of PW
 * bytes (a row of each channel with the padding as zp_in) and the int8 outputs [P][8] + 16.
 * 0 when the node does not take the path (float output, more than 64 taps, wide planes). */
/* 1x1 convs up to this K take the pixels-in-lanes form (avx2_i8_tile_T, conv_i8.c): its int16 pair
 * tile of T rounded up to 16 columns then fits the plan (2 * Kp * 15 <= 4096); and so do those up
 * to AVX2_I8_TRANS_KMAX with at least 256 pixels (no rounding of the tile). The 7-bit-weight
 * kernels (conv_i8_w7.c) leave these to it; the int4-weight kernels (conv_i8_w4.c) run it on their
 * weights (dse_i8_conv_trans_w4_run_avx2). */
#define AVX2_I8_TRANS_K 128
#define AVX2_I8_TRANS_KMAX 256
static inline int avx2_i8_trans_k(size_t K, size_t P) {
    return K <= AVX2_I8_TRANS_K || (P >= DSE_I8_PACK_TILE && K <= AVX2_I8_TRANS_KMAX);
}
/* its scratch: the int16 pair tile of T = min(P, 256) pixels rounded up to 16 */
static inline size_t avx2_i8_trans_need(size_t K, size_t P) {
    const size_t T = P < DSE_I8_PACK_TILE ? P : DSE_I8_PACK_TILE;
    return (K + 1) / 2 * 4 * ((T + 15) / 16 * 16);
}

#define AVX2_DWB_MAX_OW 16
static inline size_t avx2_dwb_need(const dse_i8_geom *g, int float_out) {
    const long long OH = g->out[1], OW = g->out[2], KH = g->k[1], KW = g->k[2];
    if (float_out || OW >= AVX2_DWB_MAX_OW || KH * KW > 64 || OH < 1 || OW < 1) return 0;
    const long long PH = (OH - 1) * g->s[1] + (KH - 1) * g->d[1] + 1, PW = (OW - 1) * g->s[2] + (KW - 1) * g->d[2] + 1;
    const long long PWr = (PW + 7) / 8 * 8;
    return (size_t)(PH * PWr * 16 + 8 * PWr + OH * OW * 8 + 16 + 64);
}

/* Depthwise 3x3 (2-D, dilation 1, column stride 1 or 2, row stride 1 to 3, any padding, int8
 * output) on output rows of AVX2_DW3_MIN_OW or more (dwconv_i8.c; taken before the channel blocks
 * above, which it beats from 8 outputs a row: 28 -> 14 at stride 2 in 0.44x the time, 14x14 in
 * 0.93x). Output j's taps are pairs of
 * input columns: kw = 0, 1 the pair j, kw = 2 the low half of the pair j + 2/sw, where the pair j
 * is (t[sw*j], t[sw*j + 1]), t an input row with its padding (zp_in).
 * - Column stride 1: each input row becomes once a row of NP int16 pairs (x - zp_in) in a ring of
 *   R = 8 rows, with a zero row; T = 4 padded int8 rows of TL bytes on the way. Row stride 1: two
 *   output rows per step (pairs).
 * - Column stride 2 (direct): the pairs are the padded int8 rows' byte pairs as they are, in a
 *   ring of T = 16 rows (two output rows per step) or, when that exceeds the budget, 8 rows (one
 *   output row per step), with a row of padding.
 * NP: the output row rounded up to 8 (outputs go in vectors of 8), + 2/sw, rounded up to 8; TL =
 * NP * sw + 64; cnt: the bytes of an input row that a padded row holds (pw + cnt <= NP * sw + 32).
 * Returns the scratch bytes (p->need) of the first form within `budget`, 0 when the node does
 * not take the path. */
#define AVX2_DW3_MIN_OW 8   /* (the row loops step back from OW by 8) */
typedef struct avx2_dw3_plan {
    long long NP, R, T, TL, cnt, pairs, ahead, direct;
    size_t need;
} avx2_dw3_plan;
static inline size_t avx2_dw3_plan_of(const dse_i8_geom *g, int float_out, size_t budget, avx2_dw3_plan *p) {
    const long long OW = g->out[2], sw = g->s[2], sh = g->s[1], IW = g->in[2], pw = g->pb[2];
    if (float_out || g->sp != 2 || g->k[1] != 3 || g->k[2] != 3 || g->d[1] != 1 || g->d[2] != 1 || (sw != 1 && sw != 2) ||
        sh < 1 || sh > 3 || OW < AVX2_DW3_MIN_OW || g->out[1] < 1)
        return 0;
    p->NP = ((OW + 7) / 8 * 8 + 2 / sw + 7) / 8 * 8;
    p->TL = p->NP * sw + 64;
    const long long room = p->NP * sw + 32 - pw;
    p->cnt = IW < room ? IW : (room > 0 ? room : 0);
    p->direct = sw == 2;
    if (p->direct) {
        for (long long T = 16; T >= 8; T /= 2) {
            p->R = 0, p->T = T, p->pairs = T == 16, p->ahead = 0;
            p->need = (size_t)((T + 1) * p->TL);
            if (p->need <= budget) return p->need;
        }
        return 0;
    }
    p->R = 8, p->T = 4, p->pairs = sh == 1, p->ahead = sh == 1 ? 2 : sh;
    p->need = (size_t)(p->R + 1) * (size_t)p->NP * 4 + (size_t)(p->T * p->TL);
    return p->need <= budget ? p->need : 0;
}

/* n bytes from src to dst (vector moves; n of any size, possibly 0). */
DSE_TARGET_AVX2 static inline void avx2_i8_pad_copy(int8_t *d, const int8_t *row, long long cnt) {
    if (cnt >= 32) {
        for (long long i = 0; i + 32 <= cnt; i += 32) _mm256_storeu_si256((__m256i *)(d + i), _mm256_loadu_si256((const __m256i *)(row + i)));
        _mm256_storeu_si256((__m256i *)(d + cnt - 32), _mm256_loadu_si256((const __m256i *)(row + cnt - 32)));
    } else if (cnt >= 16) {
        _mm_storeu_si128((__m128i *)d, _mm_loadu_si128((const __m128i *)row));
        _mm_storeu_si128((__m128i *)(d + cnt - 16), _mm_loadu_si128((const __m128i *)(row + cnt - 16)));
    } else if (cnt >= 8) {
        memcpy(d, row, 8), memcpy(d + cnt - 8, row + cnt - 8, 8);
    } else if (cnt >= 4) {
        memcpy(d, row, 4), memcpy(d + cnt - 4, row + cnt - 4, 4);
    } else {
        for (long long i = 0; i < cnt; i++) d[i] = row[i];
    }
}

/* -- Winograd F(2x2, 3x3), exact in int32 ------------------------------------------------------- */

/* 3x3 convolutions with stride 1 and dilation 1 (group 1, 2-D) as F(2x2, 3x3) on integers:
 * 4 Y = A^T [ (G' g G'^T) (.) (B^T d B) ] A per 2x2 output tile, d the 4x4 input patch of
 * x - zp_in (0 outside the input), g the 3x3 weights, G' = 2 G = [2 0 0; 1 1 1; 1 -1 1; 0 0 2]
 * (integer), B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], A^T = [1 1 1 0; 0 1 -1 -1].
 * |B^T d B| <= 4 * 255 and |G' g G'^T| <= 9 * 127 fit int16, so the 16 channel sums per tile
 * (M_ij = sum_c U_ij,c V_ij,c) are GEMMs on the same vpmaddwd microkernel with int16 weights.
 * The sums are computed in wrapping int32 arithmetic, i.e. exactly modulo 2^32; the result
 * 4 Y = 4 * sum (x - zp) w has |4 Y| <= 4 * K * 255 * 127 < 2^31 when K <= 16577 (the check),
 * so the wrapped int32 value is the true one and >> 2 is the exact division. Then bias and the
 * requantisation as everywhere. 2.25x fewer multiplies than the direct form.
 * Blocks: R tile rows of TWp tiles (the tile row rounded up to 4, at most 64), so that groups of
 * 4 tiles never straddle tile rows; V = B^T d B of a block for all channels (int16, the GEMM
 * column layout per ij), U = G' g G'^T for UB bands of 8 output channels (int16, [ij][c/4][8][4]);
 * V is recomputed once per band chunk. Scratch: V, U, the input's int16 phase rows. */
typedef struct avx2_wino_plan {
    long long TH, TW, TWp, R, T, UB, L, Cp, Kb, nbands;
    size_t need, v_off, u_off, rows_off;
} avx2_wino_plan;

/* 1 when the node takes the Winograd path within `budget` bytes of scratch (fills wp). */
static inline int avx2_wino_plan_of(const dse_i8_geom *g, size_t C, size_t O, size_t budget, avx2_wino_plan *wp) {
    if (g->sp != 2 || g->k[1] != 3 || g->k[2] != 3 || g->s[1] != 1 || g->s[2] != 1 || g->d[1] != 1 || g->d[2] != 1)
        return 0;
    if (C < 8 || 9 * C > 16577 || g->out[1] < 4 || g->out[2] < 4 || g->out[1] * g->out[2] < 36) return 0;
    wp->TH = (g->out[1] + 1) / 2, wp->TW = (g->out[2] + 1) / 2, wp->TWp = (wp->TW + 3) / 4 * 4;
    if (wp->TWp > 64) return 0;
    wp->Cp = (long long)(C + 3) / 4 * 4, wp->Kb = wp->Cp / 4, wp->nbands = (long long)(O + 7) / 8;
    wp->L = (wp->TWp + 15) / 16 * 16 + 16;                  /* int16 per phase row: tiles + 1, 16-wide reads */
    const size_t rows = 2 * (4 * 2 * (size_t)wp->L * 2) + (size_t)wp->L * 2 * 2 + 128;   /* 4 rows x 2 phases, zero row, tmp */
    const size_t u1 = 16 * (size_t)wp->Kb * 64, vrow = 16 * (size_t)wp->TWp * (size_t)wp->Cp * 2;
    /* whole image: V once (all tile rows), U per chunk of bands; else one tile row per block,
     * V recomputed once per chunk of UB bands (so as many bands per chunk as fit) */
    for (int whole = 1; whole >= 0; whole--) {
        const long long R = whole ? wp->TH : 1;
        const size_t v = vrow * (size_t)R;
        if (v + u1 + rows > budget) continue;
        long long UB = (long long)((budget - v - rows) / u1);
        if (UB > wp->nbands) UB = wp->nbands;
        wp->R = R, wp->T = R * wp->TWp, wp->UB = UB;
        wp->v_off = 0, wp->u_off = v, wp->rows_off = v + (size_t)UB * u1;
        wp->need = wp->rows_off + rows;
        return 1;
    }
    return 0;
}

/* -- requantisation of 8 int32 lanes ------------------------------------------------------------ */

/* Two exact forms of the rule, per 8 channels (lane i: channel c[i]):
 * fast, when every n >= 31 (a multiplier < 1, the usual case): acc is first clamped to
 *   [-L, L] with L = min(2^31 - 1, 2^(n + 8 - e)), 2^e <= M < 2^(e+1) (beyond L the output
 *   saturates anyway: the rule is monotone in acc and |f(L)| >= 256 > qmax - qmin), so
 *   |r| <= 512 for r = (p + 2^(n-1)) >> n, p = acc * M; t = p + 2^(n-1) + B * 2^n with
 *   B = 2^min(9, 62 - n) is then in [0, 2^64) and t >>> n (logical) = r + B exactly, a small
 *   int32: zp_out - B is added and qmin/qmax applied in int32;
 * general: (p + 2^(n-1)) >> n as a logical shift of p xor its sign mask (AVX2 has no 64-bit
 *   arithmetic shift), clamped to [qmin - zp_out, qmax - zp_out] in int64, then + zp_out. */
typedef struct avx2_i8_rq {
    int fast;
    __m256i M, Mo, sh_e, sh_o;       /* M (int32 lanes); M of odd lanes in the low halves; shifts */
    __m256i L, nL, C_e, C_o, zpB;    /* fast form */
    __m256i rnd_e, rnd_o, lo, hi;    /* general form */
    __m256i zp, qmin, qmax;
} avx2_i8_rq;

DSE_TARGET_AVX2 static inline void avx2_i8_rq_init1(avx2_i8_rq *q, const dse_i8_out *o, size_t c);

DSE_TARGET_AVX2 static inline void avx2_i8_rq_init(avx2_i8_rq *q, const dse_i8_out *o, const size_t *c, int count) {
    if (count == 8 && c[0] == c[7] && c[0] == c[1] && c[0] == c[2] && c[0] == c[3] && c[0] == c[4] && c[0] == c[5] &&
        c[0] == c[6]) {   /* one channel in every lane (depthwise): each quantity once */
        avx2_i8_rq_init1(q, o, c[0]);
        return;
    }
    int32_t Mv[8] = {0}, Lv[8], nLv[8], zb[8];
    int64_t re[4] = {0}, ro[4] = {0}, se[4] = {1, 1, 1, 1}, so[4] = {1, 1, 1, 1}, ce[4] = {0}, co[4] = {0};
    q->fast = !o->float_out;
    for (int i = 0; i < 8; i++) {
        const size_t ch = c[i < count ? i : 0];
        const int sh = o->float_out ? 31 : o->shift[ch];
        const uint32_t M = o->float_out || i >= count ? 0 : (uint32_t)o->M[ch];
        /* L = 2^(n + 8 - e), M in [2^e, 2^(e+1)): L * M in [2^(n+8), 2^(n+9)) */
        int64_t L = 0x7fffffff, B = (int64_t)1 << (62 - sh < 9 ? 62 - sh : 9);
        if (M) {
            const int e = 31 - __builtin_clz(M);
            if (sh >= 31 && sh + 8 - e < 31) L = (int64_t)1 << (sh + 8 - e);   /* (only the fast form uses L) */
        }
        q->fast &= sh >= 31;
        Mv[i] = (int32_t)M, Lv[i] = (int32_t)L, nLv[i] = (int32_t)-L, zb[i] = o->zp_out - (int32_t)(sh >= 31 ? B : 0);
        const int64_t rnd = (int64_t)1 << (sh - 1), C = sh >= 31 ? rnd + B * ((int64_t)1 << sh) : 0;
        if (i & 1) ro[i / 2] = rnd, so[i / 2] = sh, co[i / 2] = C;
        else re[i / 2] = rnd, se[i / 2] = sh, ce[i / 2] = C;
    }
    int64_t mo[4];
    for (int i = 0; i < 4; i++) mo[i] = (uint32_t)Mv[2 * i + 1];
    memcpy(&q->M, Mv, 32), memcpy(&q->Mo, mo, 32), memcpy(&q->sh_e, se, 32), memcpy(&q->sh_o, so, 32);
    memcpy(&q->L, Lv, 32), memcpy(&q->nL, nLv, 32), memcpy(&q->C_e, ce, 32), memcpy(&q->C_o, co, 32), memcpy(&q->zpB, zb, 32);
    memcpy(&q->rnd_e, re, 32), memcpy(&q->rnd_o, ro, 32);
    int64_t lo = o->qmin - o->zp_out, hi = o->qmax - o->zp_out;
    int64_t lv[4] = {lo, lo, lo, lo}, hv[4] = {hi, hi, hi, hi};
    int32_t zv[8], qn[8], qx[8];
    for (int i = 0; i < 8; i++) zv[i] = o->zp_out, qn[i] = o->qmin, qx[i] = o->qmax;
    memcpy(&q->lo, lv, 32), memcpy(&q->hi, hv, 32), memcpy(&q->zp, zv, 32), memcpy(&q->qmin, qn, 32), memcpy(&q->qmax, qx, 32);
}

/* avx2_i8_rq_init with channel c in all 8 lanes. */
DSE_TARGET_AVX2 static inline void avx2_i8_rq_init1(avx2_i8_rq *q, const dse_i8_out *o, size_t c) {
    const int sh = o->float_out ? 31 : o->shift[c];
    const uint32_t M = o->float_out ? 0 : (uint32_t)o->M[c];
    int64_t L = 0x7fffffff, B = (int64_t)1 << (62 - sh < 9 ? 62 - sh : 9);
    if (M) {
        const int e = 31 - __builtin_clz(M);
        if (sh >= 31 && sh + 8 - e < 31) L = (int64_t)1 << (sh + 8 - e);
    }
    const int64_t rnd = (int64_t)1 << (sh - 1), C = sh >= 31 ? rnd + B * ((int64_t)1 << sh) : 0;
    q->fast = !o->float_out && sh >= 31;
    q->M = _mm256_set1_epi32((int32_t)M), q->Mo = _mm256_set1_epi64x((int64_t)M);
    q->sh_e = q->sh_o = _mm256_set1_epi64x(sh);
    q->L = _mm256_set1_epi32((int32_t)L), q->nL = _mm256_set1_epi32((int32_t)-L);
    q->C_e = q->C_o = _mm256_set1_epi64x(C);
    q->zpB = _mm256_set1_epi32(o->zp_out - (int32_t)(sh >= 31 ? B : 0));
    q->rnd_e = q->rnd_o = _mm256_set1_epi64x(rnd);
    q->lo = _mm256_set1_epi64x(o->qmin - o->zp_out), q->hi = _mm256_set1_epi64x(o->qmax - o->zp_out);
    q->zp = _mm256_set1_epi32(o->zp_out), q->qmin = _mm256_set1_epi32(o->qmin), q->qmax = _mm256_set1_epi32(o->qmax);
}

DSE_TARGET_AVX2 static inline __m256i avx2_i8_rq_half(__m256i p, __m256i rnd, __m256i sh, __m256i lo, __m256i hi) {
    p = _mm256_add_epi64(p, rnd);
    __m256i s = _mm256_cmpgt_epi64(_mm256_setzero_si256(), p);
    p = _mm256_xor_si256(_mm256_srlv_epi64(_mm256_xor_si256(p, s), sh), s);   /* arithmetic >> sh */
    p = _mm256_blendv_epi8(p, lo, _mm256_cmpgt_epi64(lo, p));
    return _mm256_blendv_epi8(p, hi, _mm256_cmpgt_epi64(p, hi));
}

/* acc (int32, bias included) -> clamp(zp_out + round_shift(acc * M, n), qmin, qmax) as int32 lanes */
DSE_TARGET_AVX2 static inline __m256i avx2_i8_requant(__m256i acc, const avx2_i8_rq *q) {
    if (q->fast) {
        acc = _mm256_min_epi32(_mm256_max_epi32(acc, q->nL), q->L);
        __m256i pe = _mm256_mul_epi32(acc, q->M), po = _mm256_mul_epi32(_mm256_srli_epi64(acc, 32), q->Mo);
        pe = _mm256_srlv_epi64(_mm256_add_epi64(pe, q->C_e), q->sh_e);
        po = _mm256_srlv_epi64(_mm256_add_epi64(po, q->C_o), q->sh_o);
        __m256i r = _mm256_add_epi32(_mm256_blend_epi32(pe, _mm256_slli_epi64(po, 32), 0xAA), q->zpB);
        return _mm256_min_epi32(_mm256_max_epi32(r, q->qmin), q->qmax);
    }
    __m256i pe = _mm256_mul_epi32(acc, q->M);
    __m256i po = _mm256_mul_epi32(_mm256_srli_epi64(acc, 32), q->Mo);
    pe = avx2_i8_rq_half(pe, q->rnd_e, q->sh_e, q->lo, q->hi);
    po = avx2_i8_rq_half(po, q->rnd_o, q->sh_o, q->lo, q->hi);
    return _mm256_add_epi32(_mm256_blend_epi32(pe, _mm256_slli_epi64(po, 32), 0xAA), q->zp);
}

/* The output stage of 8 channels r0..r0+nc-1 x nr (<= 4; float output <= 8) columns p..p+nr-1 of a GEMM-like node
 * writing Y[r][c] at y + r*ys_r + c*ys_p (elements): acc[j] = the int32 accumulators of column j
 * (bias included). Float output: REF's output stage, (float)acc * scale (fscale: the channels'
 * scales), then max(act_min, v) and min(act_max, v) in that operand order, which keep v when
 * equal (REF keeps -0.0 against a 0.0 bound) and NaN; int8: requantised (q), packed and stored
 * per channel (ys_p == 1, Conv NCHW) or per row (Gemm/MatMul). Shared by the AVX2 and VNNI
 * GEMM cores. */
DSE_TARGET_AVX2 static inline void avx2_i8_store_tile(void *y, size_t ys_r, size_t ys_p, const dse_i8_out *o, size_t r0,
                                                      int nc, const __m256i *acc, int nr, size_t p, const avx2_i8_rq *q,
                                                      __m256 fscale) {
    if (o->float_out) {
        const __m256 fmin = _mm256_set1_ps(o->act_min), fmax = _mm256_set1_ps(o->act_max);
        __m256 t[8];
        for (int j = 0; j < 8; j++)
            t[j] = j < nr ? _mm256_min_ps(fmax, _mm256_max_ps(fmin, _mm256_mul_ps(_mm256_cvtepi32_ps(acc[j]), fscale)))
                          : _mm256_setzero_ps();
        float *yf = (float *)y;
        if (ys_p == 1) {   /* Conv (NCHW): an 8x8 transpose (columns x channels), then nr floats per channel */
            __m256 u[8], w[8];
            for (int j = 0; j < 8; j += 2) u[j] = _mm256_unpacklo_ps(t[j], t[j + 1]), u[j + 1] = _mm256_unpackhi_ps(t[j], t[j + 1]);
            for (int j = 0; j < 8; j += 4) {
                w[j] = _mm256_shuffle_ps(u[j], u[j + 2], 0x44), w[j + 1] = _mm256_shuffle_ps(u[j], u[j + 2], 0xEE);
                w[j + 2] = _mm256_shuffle_ps(u[j + 1], u[j + 3], 0x44), w[j + 3] = _mm256_shuffle_ps(u[j + 1], u[j + 3], 0xEE);
            }
            for (int i = 0; i < 4; i++)   /* row i: channel i's columns 0-7 */
                t[i] = _mm256_permute2f128_ps(w[i], w[i + 4], 0x20), t[i + 4] = _mm256_permute2f128_ps(w[i], w[i + 4], 0x31);
            for (int i = 0; i < nc; i++) {
                float *d = yf + (r0 + (size_t)i) * ys_r + p;
                if (nr == 8) _mm256_storeu_ps(d, t[i]);
                else if (nr == 4) _mm_storeu_ps(d, _mm256_castps256_ps128(t[i]));
                else {
                    float b[8];
                    _mm256_storeu_ps(b, t[i]);
                    memcpy(d, b, (size_t)nr * 4);
                }
            }
        } else {
            float b[8];
            for (int j = 0; j < nr; j++) _mm256_storeu_ps(b, t[j]), memcpy(yf + r0 + (p + (size_t)j) * ys_p, b, (size_t)nc * 4);
        }
        return;
    }
    __m256i v[4];
    for (int j = 0; j < 4; j++) v[j] = j < nr ? avx2_i8_requant(acc[j], q) : q->zp;
    /* bytes: lane 0 [j][c0..3], lane 1 [j][c4..7] */
    const __m256i b8 = _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
    int8_t *yb = (int8_t *)y;
    if (ys_p == 1) {   /* Conv (NCHW): per channel, nr consecutive pixels */
        const __m256i tr = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15,
                                            0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
        int32_t cb[8];
        _mm256_storeu_si256((__m256i *)(void *)cb, _mm256_shuffle_epi8(b8, tr));   /* dword c = channel c's 4 bytes */
        if (nr == 4)
            for (int i = 0; i < nc; i++) memcpy(yb + (r0 + (size_t)i) * ys_r + p, &cb[i], 4);
        else
            for (int i = 0; i < nc; i++) memcpy(yb + (r0 + (size_t)i) * ys_r + p, &cb[i], (size_t)nr);
    } else {           /* Gemm/MatMul (rows x N): per row, nc consecutive channels */
        int64_t rb[4];
        _mm256_storeu_si256((__m256i *)(void *)rb, _mm256_permutevar8x32_epi32(b8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
        if (nc == 8)
            for (int j = 0; j < nr; j++) memcpy(yb + r0 * ys_r + (p + (size_t)j) * ys_p, &rb[j], 8);
        else
            for (int j = 0; j < nr; j++) memcpy(yb + r0 * ys_r + (p + (size_t)j) * ys_p, &rb[j], (size_t)nc);
    }
}

/* Parts of a GEMM-like node for dse__parallel: `units` column tiles, each split into `split`
 * chunks of 8-row bands when there are few tiles for the session's threads (a part then packs
 * its tile itself; consecutive parts of one tile on one worker pack it once). */
static inline size_t avx2_i8_split(const dse_ctx *cx, size_t units, size_t R) {
    const size_t T = dse__threads(cx), bands = (R + 7) / 8;
    if (T <= 1 || units >= 4 * T) return 1;
    return T < bands ? T : bands;
}

/* The padded int8 row: tmp[0, n) = zp except tmp[pw + i] = row[i] for the i < IW with pw + i < n
 * (vector stores: tmp must hold n rounded up to 32 bytes). */
DSE_TARGET_AVX2 static inline void avx2_i8_pad_row(int8_t *tmp, const int8_t *row, long long IW, long long pw, long long n,
                                                   int zp) {
    const __m256i zb = _mm256_set1_epi8((char)zp);
    for (long long i = 0; i < n; i += 32) _mm256_storeu_si256((__m256i *)(tmp + i), zb);
    const long long cnt = pw + IW <= n ? IW : (n > pw ? n - pw : 0);   /* bytes of the row that are used */
    avx2_i8_pad_copy(tmp + pw, row, cnt);
}

/* One im2col row of a Conv tile (group 1): st[0, T) = the tap k of output pixels p0..p0+T-1 of
 * image xb (C x ID x IH x IW; pixels row-major over (od, oh, ow)), zp where the tap falls in the
 * padding or k >= K; k = ((ci * KD + kd) * KH + kh) * KW + kw. st must hold T + 16 bytes (16-byte
 * copies may overrun). Shared by the AVX2 and VNNI GEMM cores' im2col stages. */
/* A tile's first pixel p0 as (od, oh, ow), and a tap k as (ci, kd, kh, kw): found once per tile
 * and stepped per k (avx2_i8_tap_next) by the callers that stage every k of a tile, so that no
 * row pays the divisions. */
typedef struct { long long ow, oh, od; } avx2_i8_pix;
typedef struct { long long kw, kh, kd, ci; } avx2_i8_tap;
static inline avx2_i8_pix avx2_i8_pix_of(const dse_i8_geom *g, size_t p0) {
    const long long q0 = (long long)p0, OH = g->out[1], OW = g->out[2];
    avx2_i8_pix p = {q0 % OW, q0 / OW % OH, q0 / (OW * OH)};
    return p;
}
static inline avx2_i8_tap avx2_i8_tap_of(const dse_i8_geom *g, size_t k) {
    const size_t KD = (size_t)g->k[0], KH = (size_t)g->k[1], KW = (size_t)g->k[2];
    avx2_i8_tap t = {(long long)(k % KW), (long long)(k / KW % KH), (long long)(k / (KW * KH) % KD), (long long)(k / (KW * KH * KD))};
    return t;
}
static inline void avx2_i8_tap_next(avx2_i8_tap *t, const dse_i8_geom *g) {   /* k + 1 */
    if (++t->kw == g->k[2]) {
        t->kw = 0;
        if (++t->kh == g->k[1]) {
            t->kh = 0;
            if (++t->kd == g->k[0]) t->kd = 0, t->ci++;
        }
    }
}

/* n bytes (n >= 16: 16-byte copies, the last one overlapping; 4-15: two overlapping 8- or 4-byte
 * copies; fewer: bytes), src and dst apart: no library call for a row segment */
DSE_TARGET_AVX2 static inline void avx2_i8_copy(int8_t *d, const int8_t *src, size_t n) {
    if (n < 16) {
        if (n >= 8) {
            uint64_t u, v;
            memcpy(&u, src, 8), memcpy(&v, src + n - 8, 8);
            memcpy(d, &u, 8), memcpy(d + n - 8, &v, 8);
        } else if (n >= 4) {
            uint32_t u, v;
            memcpy(&u, src, 4), memcpy(&v, src + n - 4, 4);
            memcpy(d, &u, 4), memcpy(d + n - 4, &v, 4);
        } else {
            for (size_t j = 0; j < n; j++) d[j] = src[j];
        }
        return;
    }
    size_t j = 0;
    for (; j + 16 < n; j += 16) _mm_storeu_si128((__m128i *)(void *)(d + j), _mm_loadu_si128((const __m128i *)(const void *)(src + j)));
    _mm_storeu_si128((__m128i *)(void *)(d + n - 16), _mm_loadu_si128((const __m128i *)(const void *)(src + n - 16)));
}

/* n bytes of zp at d, where d + 16 may be overwritten (the im2col stage: what follows is written
 * later, and a stage row has 16 bytes of room after T): one 16-byte store for n <= 16 */
DSE_TARGET_AVX2 static inline void avx2_i8_fill(int8_t *d, __m128i zpv, size_t n) {
    if (n <= 16) { _mm_storeu_si128((__m128i *)(void *)d, zpv); return; }
    size_t j = 0;
    for (; j + 16 < n; j += 16) _mm_storeu_si128((__m128i *)(void *)(d + j), zpv);
    _mm_storeu_si128((__m128i *)(void *)(d + n - 16), zpv);
}

/* the im2col row of tap t (a k < K) for the T pixels from pix on */
DSE_TARGET_AVX2 static inline void avx2_i8_im2col_tap(int8_t *st, const dse_i8_geom *g, const int8_t *xb,
                                                      const avx2_i8_tap *t, avx2_i8_pix pix, size_t T, int zp) {
    const long long ID = g->in[0], IH = g->in[1], IW = g->in[2], OH = g->out[1], OW = g->out[2];
    const long long sd = g->s[0], sh = g->s[1], sw = g->s[2], dd = g->d[0], dh = g->d[1], dw = g->d[2];
    const size_t isz = (size_t)(ID * IH * IW);
    const long long ow_s = pix.ow, oh_s = pix.oh, od_s = pix.od;
    const long long kw = t->kw, kh = t->kh, kd = t->kd, ci = t->ci;
    const int8_t *xc = xb + (size_t)ci * isz;
    const __m128i zpv = _mm_set1_epi8((char)zp);
    const long long off = kw * dw - g->pb[2];   /* iw = ow * sw + off */
    /* output columns whose tap is inside the input row: [lo, hi) */
    const long long lo = off >= 0 ? 0 : (-off + sw - 1) / sw;
    const long long hi = IW - 1 - off < 0 ? 0 : (IW - 1 - off) / sw + 1 < OW ? (IW - 1 - off) / sw + 1 : OW;
    long long ow = ow_s, oh = oh_s, od = od_s;
    size_t pos = 0;
    while (pos < T) {
        const size_t seg = (size_t)(OW - ow) < T - pos ? (size_t)(OW - ow) : T - pos;   /* rest of this output row */
        const long long id = od * sd + kd * dd - g->pb[0], ih = oh * sh + kh * dh - g->pb[1];
        int8_t *dst = st + pos;
        if (id < 0 || id >= ID || ih < 0 || ih >= IH || lo >= hi) {
            avx2_i8_fill(dst, zpv, seg);
        } else {
            const int8_t *row = xc + (id * IH + ih) * IW;
            const long long e = ow + (long long)seg;
            const long long a0 = ow > lo ? ow : lo, b0 = e < hi ? e : hi;   /* inside: [a0, b0) */
            if (a0 > ow) avx2_i8_fill(dst, zpv, (size_t)((a0 < e ? a0 : e) - ow));
            if (b0 > a0) {
                int8_t *d = dst + (a0 - ow);
                const int8_t *src = row + a0 * sw + off;
                long long n = b0 - a0, j = 0;
                if (sw == 1) {
                    avx2_i8_copy(d, src, (size_t)n);
                } else if (sw == 2) {
                    const __m128i ev = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
                    for (; j + 16 <= n && (a0 + j + 15) * 2 + off + 2 <= IW; j += 16) {   /* 32 bytes in the row */
                        __m128i l = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(src + 2 * j)), ev);
                        __m128i h = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(src + 2 * j + 16)), ev);
                        _mm_storeu_si128((__m128i *)(d + j), _mm_unpacklo_epi64(l, h));
                    }
                    for (; j < n; j++) d[j] = src[2 * j];
                } else {
                    for (; j < n; j++) d[j] = src[j * sw];
                }
            }
            if (e > b0) avx2_i8_fill(dst + ((b0 > ow ? b0 : ow) - ow), zpv, (size_t)(e - (b0 > ow ? b0 : ow)));
        }
        pos += seg;
        ow = 0;
        if (++oh == OH) oh = 0, od++;
    }
}

/* The 4 im2col rows of k-block kb (k = 4 kb + c at stage + c * SR; k >= K: zp), the tap stepped
 * from row to row: the stage of the AVX2 and VNNI GEMM cores' general Conv path */
DSE_TARGET_AVX2 static inline void avx2_i8_stage_kblock(int8_t *stage, size_t SR, const dse_i8_geom *g, const int8_t *xb,
                                                        avx2_i8_tap *tap, avx2_i8_pix pix, size_t kb, size_t K, size_t T,
                                                        int zp) {
    for (size_t c = 0; c < 4; c++) {
        if (4 * kb + c >= K) { memset(stage + c * SR, zp, T); continue; }
        avx2_i8_im2col_tap(stage + c * SR, g, xb, tap, pix, T, zp);
        avx2_i8_tap_next(tap, g);
    }
}

/* (depthwise and Winograd) Input row `row` (IW bytes) into phase rows dst[phi * L + j] = x_padded[j*sw + phi] - zp (0 in
 * the padding, x_padded[u] = row[u - pw]), through tmp (sw * L + 64 bytes): the padded int8 row
 * (padding = zp) written with vector stores, then converted 16 outputs at a time (stride 1: a
 * 16-byte load; stride 2: a 32-byte load split into even and odd bytes). */
DSE_TARGET_AVX2 static inline void avx2_i8_dw_row(int16_t *dst, const int8_t *row, int8_t *tmp, long long IW, long long pw,
                                           long long sw, long long L, int zp) {
    const __m256i z = _mm256_set1_epi16((int16_t)zp);
    avx2_i8_pad_row(tmp, row, IW, pw, sw * L + 32, zp);
    if (sw == 1) {
        for (long long j = 0; j < L; j += 16)
            _mm256_storeu_si256((__m256i *)(dst + j), _mm256_sub_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(tmp + j))), z));
    } else if (sw == 2) {
        const __m256i ev = _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15,
                                            0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
        for (long long j = 0; j < L; j += 16) {
            __m256i v = _mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *)(tmp + 2 * j)), ev);
            v = _mm256_permute4x64_epi64(v, 0xD8);   /* evens 0-15 | odds 0-15 */
            _mm256_storeu_si256((__m256i *)(dst + j), _mm256_sub_epi16(_mm256_cvtepi8_epi16(_mm256_castsi256_si128(v)), z));
            _mm256_storeu_si256((__m256i *)(dst + L + j), _mm256_sub_epi16(_mm256_cvtepi8_epi16(_mm256_extracti128_si256(v, 1)), z));
        }
    } else {
        for (long long phi = 0; phi < sw; phi++)
            for (long long j = 0; j < L; j++) dst[phi * L + j] = (int16_t)(tmp[j * sw + phi] - zp);
    }
}

/* the depthwise and Winograd runs (dwconv_i8.c, winograd_i8.c), called by dse_i8_conv__avx2 with the
 * node's output parameters and geometry; the Winograd run returns 0 (and does nothing) when the
 * node's plan does not take that path. The depthwise run reads the int8 weights w ([C][taps]: the
 * node's, or the int4 kernel's expansion, dwconv_i8_w4.c) and plans within `budget` bytes of each
 * worker's scratch; dse_i8_dwconv_scratch_avx2 is its check's choice: the scratch its first plan
 * that fits takes within `plan` bytes minus `extra` (the bytes from the scratch offset up to that
 * and `extra` more holding no live tensor), or (size_t)-1 when none fits. */
DSE_TARGET_AVX2 DSE_INTERNAL void dse_i8_dwconv_run_avx2(const dse_model *m, const dse_node *n, uint8_t *arena,
                                                        const dse_ctx *cx, const dse_i8_out *o, const dse_i8_geom *g,
                                                        const int8_t *w, size_t budget);
/* The pixels-in-lanes form of dse_i8_conv__avx2 (1x1 stride-1 unpadded convs with avx2_i8_trans_k) on
 * per-channel int4 weights in layout 6: the W4 kernel (conv_i8_w4.c) runs those through it. Scratch:
 * avx2_i8_trans_need. */
DSE_TARGET_AVX2 DSE_INTERNAL void dse_i8_conv_trans_w4_run_avx2(const dse_model *m, const dse_node *n, uint8_t *arena,
                                                               const dse_ctx *cx, const dse_i8_out *o, const dse_i8_geom *g);
DSE_INTERNAL size_t dse_i8_dwconv_scratch_avx2(const dse_model *m, const dse_node *n, const dse_i8_geom *g, int float_out,
                                               size_t plan, size_t extra);
DSE_TARGET_AVX2 DSE_INTERNAL int dse_i8_wino_run_avx2(const dse_model *m, const dse_node *n, uint8_t *arena,
                                                     const dse_ctx *cx, const dse_i8_out *o, const dse_i8_geom *g);

#endif
