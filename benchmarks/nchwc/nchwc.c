/* nchwc.c: a standalone prototype of float32 convolution in the blocked channel layout NCHW8c
 * (issue 10, session 16). Evidence for deciding whether a layout pass is worth building: it is
 * not part of the runtime and no build of the runtime compiles it. See README.md beside it.
 *
 * Layouts (8 channels per block = one AVX2 vector; a channel count that is not a multiple of 8
 * is padded with zero channels):
 *   activation        x[C/8][H][W][8]                  channel c = 8 * block + lane
 *   conv weights      w[OC/8][IC/8][8 ic][KH][KW][8 oc] packed once, offline (as at export)
 *   depthwise weights w[C/8][KH][KW][8]
 *
 * Arithmetic: every output element is ONE sequential FMA chain over (ic, kh, kw) in that order
 * (the order of dsedge's REF and AVX2 float convs: DESIGN.md section 3, avx2_f32.h), taps that
 * fall in the zero padding are skipped, then + bias, then max(0, .) when ReLU is asked. So a
 * scalar fmaf() chain in NCHW gives the same bits; `nchwc check` asserts that, and the error
 * against a float64 sum.
 *
 * Kernels (AVX2 + FMA, one thread):
 *   conv: a register tile of NO output pixels of one output row x NF blocks of 8 output
 *     channels (NO * NF <= 12 accumulators); for each (ic, kh, kw) the NF weight vectors are
 *     loaded once and each of the NO input scalars is broadcast and multiplied into NF
 *     accumulators. No im2col: the taps are read in place. Input channel blocks are taken in
 *     chunks whose weights fit in L1; a chunk's partial sums are stored to the output row and
 *     reloaded by the next chunk (the same FMA chain, continued). Rows clip their kh range at
 *     the top/bottom padding; output columns whose window crosses the left/right padding run as
 *     1-pixel tiles with a clipped kw range. A 1x1 stride-1 unpadded conv is run as one row of
 *     H*W pixels.
 *   depthwise: the 8 channels of a block in the lanes, NO output pixels per step, one vector
 *     load of the input per tap and pixel.
 *   reorders NCHW <-> NCHW8c: 8x8 in-register transposes (8 channel planes x 8 pixels), a
 *     scalar tail, zero channels written for the padding.
 *
 * Usage:
 *   nchwc check                                   numerics on a set of shapes (exit 1 on failure)
 *   nchwc conv IC OC H W K S P [REPS]             JSON: min ms of each tile shape, the reorders
 *   nchwc dw C H W K S P [REPS]                   JSON: min ms of the depthwise conv, the reorders
 *   nchwc maxpool C H W K S P [REPS]              JSON: min ms of an NCHW8c MaxPool (a plain loop)
 */
#define _POSIX_C_SOURCE 200809L
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define AI static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 16")

static int ceil8(int c) { return (c + 7) / 8 * 8; }
static int imin(int a, int b) { return a < b ? a : b; }
static int imax(int a, int b) { return a > b ? a : b; }

/* ---------------------------------------------------------------- geometry */

typedef struct {
    int IC, OC, H, W, KH, KW, SH, SW, PH, PW; /* PH, PW: top and left padding (bottom/right: by OH, OW) */
    int OH, OW, ICB, OCB;                     /* ICB, OCB: channel blocks (padded channels included) */
    int relu;
    int chunk;                                /* input channel blocks per L1 chunk (conv) */
} conv_t;

static conv_t geom(int IC, int OC, int H, int W, int K, int S, int P, int relu) {
    conv_t p = {IC, OC, H, W, K, K, S, S, P, P, 0, 0, ceil8(IC) / 8, ceil8(OC) / 8, relu, 0};
    p.OH = (H + 2 * P - K) / S + 1;
    p.OW = (W + 2 * P - K) / S + 1;
    return p;
}

/* ---------------------------------------------------------------- reorders */

AI void tr8x8(__m256 r[8]) {
    __m256 t[8], s[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int h = 0; h < 2; h++) {   /* rows 0-3 (h = 0) and 4-7 (h = 1) */
        s[4 * h + 0] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0x44);
        s[4 * h + 1] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0xEE);
        s[4 * h + 2] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0x44);
        s[4 * h + 3] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0xEE);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm256_permute2f128_ps(s[i], s[4 + i], 0x20);
        r[4 + i] = _mm256_permute2f128_ps(s[i], s[4 + i], 0x31);
    }
}

/* src[C][HW] -> dst[ceil8(C)/8][HW][8] */
static void nchw_to_nchw8c(const float *src, int C, int HW, float *dst) {
    for (int cb = 0; cb < ceil8(C) / 8; cb++) {
        int nc = imin(8, C - 8 * cb);
        const float *s = src + (size_t)8 * cb * HW;
        float *d = dst + (size_t)8 * cb * HW;
        int p = 0;
        if (nc == 8) {
            for (; p + 8 <= HW; p += 8) {
                __m256 r[8];
                for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(s + (size_t)i * HW + p);
                tr8x8(r);
                for (int i = 0; i < 8; i++) _mm256_storeu_ps(d + (size_t)(p + i) * 8, r[i]);
            }
        }
        for (; p < HW; p++)
            for (int i = 0; i < 8; i++) d[(size_t)p * 8 + i] = i < nc ? s[(size_t)i * HW + p] : 0.0f;
    }
}

/* src[ceil8(C)/8][HW][8] -> dst[C][HW] (the padding channels dropped) */
static void nchw8c_to_nchw(const float *src, int C, int HW, float *dst) {
    for (int cb = 0; cb < ceil8(C) / 8; cb++) {
        int nc = imin(8, C - 8 * cb);
        const float *s = src + (size_t)8 * cb * HW;
        float *d = dst + (size_t)8 * cb * HW;
        int p = 0;
        if (nc == 8) {
            for (; p + 8 <= HW; p += 8) {
                __m256 r[8];
                for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(s + (size_t)(p + i) * 8);
                tr8x8(r);
                for (int i = 0; i < 8; i++) _mm256_storeu_ps(d + (size_t)i * HW + p, r[i]);
            }
        }
        for (; p < HW; p++)
            for (int i = 0; i < nc; i++) d[(size_t)i * HW + p] = s[(size_t)p * 8 + i];
    }
}

/* w[OC][IC][KH][KW] -> groups of NF output blocks (the last group: the blocks left),
 * [OCB/NF][ICB][8 ic][KH][KW][nf][8 oc]: a tile's NF weight vectors for one (ic, kh, kw) are
 * contiguous, one pointer for all. Zeros for padded channels. Done once, offline (at export). */
static void pack_conv_weights(const conv_t *p, int NF, const float *w, float *pw) {
    size_t KK = (size_t)p->KH * p->KW;
    memset(pw, 0, sizeof(float) * p->OCB * p->ICB * 64 * KK);
    for (int oc = 0; oc < p->OC; oc++) {
        int ob = oc / 8, g0 = ob / NF * NF, nf = imin(NF, p->OCB - g0);
        float *gw = pw + (size_t)g0 * p->ICB * 64 * KK;   /* the group's start */
        for (int ic = 0; ic < p->IC; ic++)
            for (size_t k = 0; k < KK; k++)
                gw[((((size_t)(ic / 8) * 8 + ic % 8) * KK + k) * nf + (ob - g0)) * 8 + oc % 8] =
                    w[((size_t)oc * p->IC + ic) * KK + k];
    }
}

/* ---------------------------------------------------------------- conv */

/* Arguments of one tile: NO pixels (oh, ow0 ..) x NF output blocks (ocb ..: a weight group's
 * start), input blocks [icb0, icb1), taps kh in [kh0, kh1), kw in [kw0, kw1). */
typedef struct {
    int oh, ow0, ocb, icb0, icb1, kh0, kh1, kw0, kw1, first, last;
} tile_args;

/* One register tile. NO, NF, KC, SC, KR are constants after inlining. KC > 0: a KC x KC kernel
 * (constant tap loops, unrolled) whose rows lie inside the input (KR = 0) or all but the first
 * (KR = 1, the top padding) or the last (KR = 2, the bottom padding), and whose columns lie inside
 * the input when NO > 1; SC > 0: its column stride; 0: taken from p and a at run time (other
 * kernels, rows clipped otherwise). */
AI void conv_tile(const conv_t *p, const int NO, const int NF, const int KC, const int SC, const int KR,
                  const float *x, const float *w, const float *bias, float *y, const tile_args *a) {
    const int KH = KC ? KC : p->KH, KW = KC ? KC : p->KW, W = p->W, SW = SC ? SC : p->SW;
    /* KC: a constant kh range; the whole kw range too in multi-pixel tiles, a's in 1-pixel tiles
     * (the border columns) */
    const int kh0 = KC ? (KR == 1 ? 1 : 0) : a->kh0, kh1 = KC ? (KR == 2 ? KC - 1 : KC) : a->kh1;
    const int kw0 = KC && NO > 1 ? 0 : a->kw0, kw1 = KC && NO > 1 ? KC : a->kw1;
    const size_t ysb = (size_t)p->OH * p->OW * 8;   /* output block stride */
    const size_t xsb = (size_t)p->H * W * 8;        /* input block stride */
    float *yp = y + a->ocb * ysb + ((size_t)a->oh * p->OW + a->ow0) * 8;
    __m256 acc[4][12];
    UNROLL for (int f = 0; f < NF; f++) UNROLL for (int o = 0; o < NO; o++)
        acc[f][o] = a->first ? _mm256_setzero_ps() : _mm256_loadu_ps(yp + f * ysb + o * 8);
    const ptrdiff_t ih0 = (ptrdiff_t)a->oh * p->SH - p->PH, iw0 = (ptrdiff_t)a->ow0 * SW - p->PW;
    const float *wg = w + (size_t)a->ocb * p->ICB * 64 * KH * KW;   /* this group's weights */
    for (int icb = a->icb0; icb < a->icb1; icb++) {
        const float *xb = x + icb * xsb + (ih0 * W + iw0) * 8;
        const float *wb = wg + (size_t)icb * 8 * KH * KW * NF * 8;
        /* one input channel's taps, (kh, kw) in order: NF weight vectors, NO broadcasts each */
#define CONV_TAPS(ic)                                                                                      \
    UNROLL for (int kh = kh0; kh < kh1; kh++) {                                                            \
        const float *xr = xb + (ptrdiff_t)kh * W * 8 + (ic);                                              \
        const float *wr = wb + (((size_t)(ic) * KH + kh) * KW) * NF * 8;                                  \
        UNROLL for (int kw = kw0; kw < kw1; kw++) {                                                        \
            __m256 wv[4];                                                                                  \
            UNROLL for (int f = 0; f < NF; f++) wv[f] = _mm256_loadu_ps(wr + (kw * NF + f) * 8);          \
            UNROLL for (int o = 0; o < NO; o++) {                                                          \
                __m256 b = _mm256_broadcast_ss(xr + ((ptrdiff_t)o * SW + kw) * 8);                        \
                UNROLL for (int f = 0; f < NF; f++) acc[f][o] = _mm256_fmadd_ps(b, wv[f], acc[f][o]);     \
            }                                                                                              \
        }                                                                                                  \
    }
        if (KC == 1) {   /* 1x1: the 8 channels of the block unrolled (8 x NO x NF FMAs) */
            UNROLL for (int ic = 0; ic < 8; ic++) { CONV_TAPS(ic) }
        } else {         /* 3x3: 9 taps unrolled per channel; other kernels: loops */
            for (int ic = 0; ic < 8; ic++) { CONV_TAPS(ic) }
        }
#undef CONV_TAPS
    }
    if (a->last) {
        UNROLL for (int f = 0; f < NF; f++) {
            __m256 bv = _mm256_loadu_ps(bias + (a->ocb + f) * 8);
            UNROLL for (int o = 0; o < NO; o++) {
                acc[f][o] = _mm256_add_ps(acc[f][o], bv);
                if (p->relu) acc[f][o] = _mm256_max_ps(acc[f][o], _mm256_setzero_ps());
            }
        }
    }
    UNROLL for (int f = 0; f < NF; f++) UNROLL for (int o = 0; o < NO; o++)
        _mm256_storeu_ps(yp + f * ysb + o * 8, acc[f][o]);
}

typedef void (*tile_fn)(const conv_t *, const float *, const float *, const float *, float *, const tile_args *);
/* tile_NO_NF: any kernel and stride; tile_NO_NF_kKsS: a K x K kernel, stride S, rows inside the
 * input; _t, _b: its first / last row in the padding */
#define DEF_TILE1(no, nf, suf, kc, sc, kr)                                                               \
    static void tile_##no##_##nf##suf(const conv_t *p, const float *x, const float *w, const float *b,   \
                                      float *y, const tile_args *a) {                                    \
        conv_tile(p, no, nf, kc, sc, kr, x, w, b, y, a);                                                 \
    }
#define DEF_TILE(no, nf)                                                                                 \
    DEF_TILE1(no, nf, , 0, 0, 0) DEF_TILE1(no, nf, _k1s1, 1, 1, 0) DEF_TILE1(no, nf, _k1s2, 1, 2, 0)     \
    DEF_TILE1(no, nf, _k3s1, 3, 1, 0) DEF_TILE1(no, nf, _k3s2, 3, 2, 0)                                  \
    DEF_TILE1(no, nf, _k3s1t, 3, 1, 1) DEF_TILE1(no, nf, _k3s2t, 3, 2, 1)                                \
    DEF_TILE1(no, nf, _k3s1b, 3, 1, 2) DEF_TILE1(no, nf, _k3s2b, 3, 2, 2)
DEF_TILE(1, 1) DEF_TILE(2, 1) DEF_TILE(3, 1) DEF_TILE(4, 1) DEF_TILE(5, 1) DEF_TILE(6, 1) DEF_TILE(7, 1)
DEF_TILE(8, 1) DEF_TILE(9, 1) DEF_TILE(10, 1) DEF_TILE(11, 1) DEF_TILE(12, 1) DEF_TILE(1, 2) DEF_TILE(2, 2)
DEF_TILE(3, 2) DEF_TILE(4, 2) DEF_TILE(5, 2) DEF_TILE(6, 2) DEF_TILE(1, 3) DEF_TILE(2, 3) DEF_TILE(3, 3)
DEF_TILE(4, 3) DEF_TILE(1, 4) DEF_TILE(2, 4) DEF_TILE(3, 4)
/* TILES*[nf][no]: NO * NF <= 12 (the accumulators in 12 of the 16 ymm registers) */
static const tile_fn TILES[5][13] = {
    {0},
    {0, tile_1_1, tile_2_1, tile_3_1, tile_4_1, tile_5_1, tile_6_1, tile_7_1, tile_8_1, tile_9_1, tile_10_1,
        tile_11_1, tile_12_1},
    {0, tile_1_2, tile_2_2, tile_3_2, tile_4_2, tile_5_2, tile_6_2},
    {0, tile_1_3, tile_2_3, tile_3_3, tile_4_3},
    {0, tile_1_4, tile_2_4, tile_3_4},
};
static const tile_fn TILES_K1S1[5][13] = {
    {0},
    {0, tile_1_1_k1s1, tile_2_1_k1s1, tile_3_1_k1s1, tile_4_1_k1s1, tile_5_1_k1s1, tile_6_1_k1s1,
        tile_7_1_k1s1, tile_8_1_k1s1, tile_9_1_k1s1, tile_10_1_k1s1, tile_11_1_k1s1, tile_12_1_k1s1},
    {0, tile_1_2_k1s1, tile_2_2_k1s1, tile_3_2_k1s1, tile_4_2_k1s1, tile_5_2_k1s1, tile_6_2_k1s1},
    {0, tile_1_3_k1s1, tile_2_3_k1s1, tile_3_3_k1s1, tile_4_3_k1s1},
    {0, tile_1_4_k1s1, tile_2_4_k1s1, tile_3_4_k1s1},
};
static const tile_fn TILES_K1S2[5][13] = {
    {0},
    {0, tile_1_1_k1s2, tile_2_1_k1s2, tile_3_1_k1s2, tile_4_1_k1s2, tile_5_1_k1s2, tile_6_1_k1s2,
        tile_7_1_k1s2, tile_8_1_k1s2, tile_9_1_k1s2, tile_10_1_k1s2, tile_11_1_k1s2, tile_12_1_k1s2},
    {0, tile_1_2_k1s2, tile_2_2_k1s2, tile_3_2_k1s2, tile_4_2_k1s2, tile_5_2_k1s2, tile_6_2_k1s2},
    {0, tile_1_3_k1s2, tile_2_3_k1s2, tile_3_3_k1s2, tile_4_3_k1s2},
    {0, tile_1_4_k1s2, tile_2_4_k1s2, tile_3_4_k1s2},
};
static const tile_fn TILES_K3S1[5][13] = {
    {0},
    {0, tile_1_1_k3s1, tile_2_1_k3s1, tile_3_1_k3s1, tile_4_1_k3s1, tile_5_1_k3s1, tile_6_1_k3s1,
        tile_7_1_k3s1, tile_8_1_k3s1, tile_9_1_k3s1, tile_10_1_k3s1, tile_11_1_k3s1, tile_12_1_k3s1},
    {0, tile_1_2_k3s1, tile_2_2_k3s1, tile_3_2_k3s1, tile_4_2_k3s1, tile_5_2_k3s1, tile_6_2_k3s1},
    {0, tile_1_3_k3s1, tile_2_3_k3s1, tile_3_3_k3s1, tile_4_3_k3s1},
    {0, tile_1_4_k3s1, tile_2_4_k3s1, tile_3_4_k3s1},
};
static const tile_fn TILES_K3S2[5][13] = {
    {0},
    {0, tile_1_1_k3s2, tile_2_1_k3s2, tile_3_1_k3s2, tile_4_1_k3s2, tile_5_1_k3s2, tile_6_1_k3s2,
        tile_7_1_k3s2, tile_8_1_k3s2, tile_9_1_k3s2, tile_10_1_k3s2, tile_11_1_k3s2, tile_12_1_k3s2},
    {0, tile_1_2_k3s2, tile_2_2_k3s2, tile_3_2_k3s2, tile_4_2_k3s2, tile_5_2_k3s2, tile_6_2_k3s2},
    {0, tile_1_3_k3s2, tile_2_3_k3s2, tile_3_3_k3s2, tile_4_3_k3s2},
    {0, tile_1_4_k3s2, tile_2_4_k3s2, tile_3_4_k3s2},
};
static const tile_fn TILES_K3S1T[5][13] = {
    {0},
    {0, tile_1_1_k3s1t, tile_2_1_k3s1t, tile_3_1_k3s1t, tile_4_1_k3s1t, tile_5_1_k3s1t, tile_6_1_k3s1t,
        tile_7_1_k3s1t, tile_8_1_k3s1t, tile_9_1_k3s1t, tile_10_1_k3s1t, tile_11_1_k3s1t, tile_12_1_k3s1t},
    {0, tile_1_2_k3s1t, tile_2_2_k3s1t, tile_3_2_k3s1t, tile_4_2_k3s1t, tile_5_2_k3s1t, tile_6_2_k3s1t},
    {0, tile_1_3_k3s1t, tile_2_3_k3s1t, tile_3_3_k3s1t, tile_4_3_k3s1t},
    {0, tile_1_4_k3s1t, tile_2_4_k3s1t, tile_3_4_k3s1t},
};
static const tile_fn TILES_K3S2T[5][13] = {
    {0},
    {0, tile_1_1_k3s2t, tile_2_1_k3s2t, tile_3_1_k3s2t, tile_4_1_k3s2t, tile_5_1_k3s2t, tile_6_1_k3s2t,
        tile_7_1_k3s2t, tile_8_1_k3s2t, tile_9_1_k3s2t, tile_10_1_k3s2t, tile_11_1_k3s2t, tile_12_1_k3s2t},
    {0, tile_1_2_k3s2t, tile_2_2_k3s2t, tile_3_2_k3s2t, tile_4_2_k3s2t, tile_5_2_k3s2t, tile_6_2_k3s2t},
    {0, tile_1_3_k3s2t, tile_2_3_k3s2t, tile_3_3_k3s2t, tile_4_3_k3s2t},
    {0, tile_1_4_k3s2t, tile_2_4_k3s2t, tile_3_4_k3s2t},
};
static const tile_fn TILES_K3S1B[5][13] = {
    {0},
    {0, tile_1_1_k3s1b, tile_2_1_k3s1b, tile_3_1_k3s1b, tile_4_1_k3s1b, tile_5_1_k3s1b, tile_6_1_k3s1b,
        tile_7_1_k3s1b, tile_8_1_k3s1b, tile_9_1_k3s1b, tile_10_1_k3s1b, tile_11_1_k3s1b, tile_12_1_k3s1b},
    {0, tile_1_2_k3s1b, tile_2_2_k3s1b, tile_3_2_k3s1b, tile_4_2_k3s1b, tile_5_2_k3s1b, tile_6_2_k3s1b},
    {0, tile_1_3_k3s1b, tile_2_3_k3s1b, tile_3_3_k3s1b, tile_4_3_k3s1b},
    {0, tile_1_4_k3s1b, tile_2_4_k3s1b, tile_3_4_k3s1b},
};
static const tile_fn TILES_K3S2B[5][13] = {
    {0},
    {0, tile_1_1_k3s2b, tile_2_1_k3s2b, tile_3_1_k3s2b, tile_4_1_k3s2b, tile_5_1_k3s2b, tile_6_1_k3s2b,
        tile_7_1_k3s2b, tile_8_1_k3s2b, tile_9_1_k3s2b, tile_10_1_k3s2b, tile_11_1_k3s2b, tile_12_1_k3s2b},
    {0, tile_1_2_k3s2b, tile_2_2_k3s2b, tile_3_2_k3s2b, tile_4_2_k3s2b, tile_5_2_k3s2b, tile_6_2_k3s2b},
    {0, tile_1_3_k3s2b, tile_2_3_k3s2b, tile_3_3_k3s2b, tile_4_3_k3s2b},
    {0, tile_1_4_k3s2b, tile_2_4_k3s2b, tile_3_4_k3s2b},
};

/* The whole conv, NCHW8c in and out, with tiles of NO pixels x NF output blocks; w packed for NF. */
static void conv_nchw8c(const conv_t *p, int NO, int NF, const float *x, const float *w, const float *bias, float *y) {
    /* interior output columns: every kw tap inside the input row */
    int ow_lo = imin(p->OW, (p->PW + p->SW - 1) / p->SW);
    int ow_hi = p->W - p->KW + p->PW >= 0 ? imin(p->OW, (p->W - p->KW + p->PW) / p->SW + 1) : 0;
    if (ow_hi < ow_lo) ow_hi = ow_lo;
    int chunk = p->chunk > 0 ? p->chunk : p->ICB;
    int sq = p->KH == p->KW && p->SW <= 2 && (p->KH == 1 || p->KH == 3);
    const tile_fn(*fast)[13] = !sq ? TILES : p->KH == 1 ? (p->SW == 1 ? TILES_K1S1 : TILES_K1S2)
                                                        : (p->SW == 1 ? TILES_K3S1 : TILES_K3S2);
    const tile_fn(*top)[13] = p->SW == 1 ? TILES_K3S1T : TILES_K3S2T;      /* 3x3: first row clipped */
    const tile_fn(*bottom)[13] = p->SW == 1 ? TILES_K3S1B : TILES_K3S2B;   /* 3x3: last row clipped */
    for (int ocb = 0; ocb < p->OCB; ocb += NF) {
        int nf = imin(NF, p->OCB - ocb);
        for (int oh = 0; oh < p->OH; oh++) {
            int ih = oh * p->SH - p->PH;
            tile_args a = {oh, 0, ocb, 0, 0, imax(0, -ih), imin(p->KH, p->H - ih), 0, 0, 0, 0};
            /* the unrolled forms for rows whose kh range is whole, or clipped by one row (3x3) */
            const tile_fn(*full)[13] = a.kh0 == 0 && a.kh1 == p->KH ? fast
                                       : sq && p->KH == 3 && a.kh0 == 1 && a.kh1 == 3 ? top
                                       : sq && p->KH == 3 && a.kh0 == 0 && a.kh1 == 2 ? bottom : TILES;
            for (a.icb0 = 0; a.icb0 < p->ICB; a.icb0 = a.icb1) {
                a.icb1 = imin(p->ICB, a.icb0 + chunk);
                a.first = a.icb0 == 0;
                a.last = a.icb1 == p->ICB;
                for (int ow = 0; ow < p->OW;) {
                    if (ow < ow_lo || ow >= ow_hi) {   /* a border column: 1 pixel, kw clipped */
                        int iw = ow * p->SW - p->PW;
                        a.ow0 = ow, a.kw0 = imax(0, -iw), a.kw1 = imin(p->KW, p->W - iw);
                        full[nf][1](p, x, w, bias, y, &a);
                        ow++;
                    } else {
                        int no = imin(NO, ow_hi - ow);
                        a.ow0 = ow, a.kw0 = 0, a.kw1 = p->KW;
                        full[nf][no](p, x, w, bias, y, &a);
                        ow += no;
                    }
                }
            }
        }
    }
}

/* ---------------------------------------------------------------- depthwise */

AI void dw_tile(const conv_t *p, const int NO, const float *x, const float *w, const float *bias, float *y,
                int cb, int oh, int ow0, int kh0, int kh1, int kw0, int kw1) {
    const int KH = p->KH, KW = p->KW, W = p->W, SW = p->SW;
    const float *xb = x + (size_t)cb * p->H * W * 8;
    const float *wb = w + (size_t)cb * KH * KW * 8;
    const ptrdiff_t ih0 = (ptrdiff_t)oh * p->SH - p->PH, iw0 = (ptrdiff_t)ow0 * SW - p->PW;
    __m256 acc[8];
    UNROLL for (int o = 0; o < NO; o++) acc[o] = _mm256_setzero_ps();
    for (int kh = kh0; kh < kh1; kh++) {
        const float *xr = xb + ((ih0 + kh) * W + iw0) * 8;
        for (int kw = kw0; kw < kw1; kw++) {
            __m256 wv = _mm256_loadu_ps(wb + (kh * KW + kw) * 8);
            UNROLL for (int o = 0; o < NO; o++)
                acc[o] = _mm256_fmadd_ps(_mm256_loadu_ps(xr + ((ptrdiff_t)o * SW + kw) * 8), wv, acc[o]);
        }
    }
    __m256 bv = _mm256_loadu_ps(bias + cb * 8);
    float *yp = y + (((size_t)cb * p->OH + oh) * p->OW + ow0) * 8;
    UNROLL for (int o = 0; o < NO; o++) {
        __m256 v = _mm256_add_ps(acc[o], bv);
        if (p->relu) v = _mm256_max_ps(v, _mm256_setzero_ps());
        _mm256_storeu_ps(yp + o * 8, v);
    }
}

/* The interior of one output row of a 3x3 depthwise conv whose 3 input rows are all inside the
 * input (SC: the column stride, a constant): the 9 weight vectors held in registers, NO pixels per
 * step (NO accumulators), then single pixels. Same FMA chain per output as dw_tile. */
AI void dw_row3(const conv_t *p, const int SC, const int NO, const float *x, const __m256 wv[9], __m256 bv,
                float *yrow, int ow, int ow_hi, ptrdiff_t ih) {
    const size_t W8 = (size_t)p->W * 8;
    const float *x0 = x + ih * (ptrdiff_t)W8;
    for (; ow + NO <= ow_hi; ow += NO) {
        const float *xr = x0 + ((ptrdiff_t)ow * SC - p->PW) * 8;
        __m256 acc[8];
        UNROLL for (int o = 0; o < NO; o++) acc[o] = _mm256_setzero_ps();
        UNROLL for (int kh = 0; kh < 3; kh++) UNROLL for (int kw = 0; kw < 3; kw++)
            UNROLL for (int o = 0; o < NO; o++)
                acc[o] = _mm256_fmadd_ps(_mm256_loadu_ps(xr + kh * W8 + (o * SC + kw) * 8), wv[kh * 3 + kw], acc[o]);
        UNROLL for (int o = 0; o < NO; o++) {
            __m256 v = _mm256_add_ps(acc[o], bv);
            if (p->relu) v = _mm256_max_ps(v, _mm256_setzero_ps());
            _mm256_storeu_ps(yrow + ((size_t)ow + o) * 8, v);
        }
    }
    for (; ow < ow_hi; ow++) {
        const float *xr = x0 + ((ptrdiff_t)ow * SC - p->PW) * 8;
        __m256 acc = _mm256_setzero_ps();
        UNROLL for (int kh = 0; kh < 3; kh++) UNROLL for (int kw = 0; kw < 3; kw++)
            acc = _mm256_fmadd_ps(_mm256_loadu_ps(xr + kh * W8 + kw * 8), wv[kh * 3 + kw], acc);
        acc = _mm256_add_ps(acc, bv);
        if (p->relu) acc = _mm256_max_ps(acc, _mm256_setzero_ps());
        _mm256_storeu_ps(yrow + (size_t)ow * 8, acc);
    }
}

#define DW_NO 4   /* output pixels per step (4 accumulators + the loads in flight) */
static void dw_nchw8c(const conv_t *p, const float *x, const float *w, const float *bias, float *y) {
    int ow_lo = imin(p->OW, (p->PW + p->SW - 1) / p->SW);
    int ow_hi = p->W - p->KW + p->PW >= 0 ? imin(p->OW, (p->W - p->KW + p->PW) / p->SW + 1) : 0;
    if (ow_hi < ow_lo) ow_hi = ow_lo;
    int fast3 = p->KH == 3 && p->KW == 3 && p->SW <= 2;
    for (int cb = 0; cb < p->OCB; cb++) {
        __m256 wv[9], bv = _mm256_loadu_ps(bias + cb * 8);
        for (int k = 0; k < 9; k++) wv[k] = fast3 ? _mm256_loadu_ps(w + ((size_t)cb * 9 + k) * 8) : _mm256_setzero_ps();
        const float *xb = x + (size_t)cb * p->H * p->W * 8;
        for (int oh = 0; oh < p->OH; oh++) {
            int ih = oh * p->SH - p->PH, kh0 = imax(0, -ih), kh1 = imin(p->KH, p->H - ih);
            int ow = 0;
            for (; ow < ow_lo; ow++) {
                int iw = ow * p->SW - p->PW;
                dw_tile(p, 1, x, w, bias, y, cb, oh, ow, kh0, kh1, imax(0, -iw), imin(p->KW, p->W - iw));
            }
            float *yrow = y + ((size_t)cb * p->OH + oh) * p->OW * 8;
            if (fast3 && kh0 == 0 && kh1 == 3) {
                if (p->SW == 1) dw_row3(p, 1, 6, xb, wv, bv, yrow, ow, ow_hi, ih);
                else dw_row3(p, 2, 4, xb, wv, bv, yrow, ow, ow_hi, ih);
                ow = ow_hi;
            }
            for (; ow + DW_NO <= ow_hi; ow += DW_NO) dw_tile(p, DW_NO, x, w, bias, y, cb, oh, ow, kh0, kh1, 0, p->KW);
            for (; ow < ow_hi; ow++) dw_tile(p, 1, x, w, bias, y, cb, oh, ow, kh0, kh1, 0, p->KW);
            for (; ow < p->OW; ow++) {
                int iw = ow * p->SW - p->PW;
                dw_tile(p, 1, x, w, bias, y, cb, oh, ow, kh0, kh1, imax(0, -iw), imin(p->KW, p->W - iw));
            }
        }
    }
}

/* ---------------------------------------------------------------- max pooling */

/* MaxPool K x K, stride S, pad P on NCHW8c: one vmaxps per tap and 8 channels; taps in the
 * padding skipped. (vmaxps returns its second operand when either is NaN: the runtime's NaN rule
 * would need the same care as its NCHW kernel; the prototype only times the layout.) */
static void maxpool_nchw8c(const conv_t *p, const float *x, float *y) {
    for (int cb = 0; cb < p->ICB; cb++) {
        const float *xb = x + (size_t)cb * p->H * p->W * 8;
        float *yb = y + (size_t)cb * p->OH * p->OW * 8;
        for (int oh = 0; oh < p->OH; oh++) {
            int ih = oh * p->SH - p->PH, kh0 = imax(0, -ih), kh1 = imin(p->KH, p->H - ih);
            for (int ow = 0; ow < p->OW; ow++) {
                int iw = ow * p->SW - p->PW, kw0 = imax(0, -iw), kw1 = imin(p->KW, p->W - iw);
                __m256 m = _mm256_set1_ps(-INFINITY);
                for (int kh = kh0; kh < kh1; kh++)
                    for (int kw = kw0; kw < kw1; kw++)
                        m = _mm256_max_ps(m, _mm256_loadu_ps(xb + ((size_t)(ih + kh) * p->W + iw + kw) * 8));
                _mm256_storeu_ps(yb + ((size_t)oh * p->OW + ow) * 8, m);
            }
        }
    }
}

/* ---------------------------------------------------------------- references (NCHW, scalar) */

/* out: the FMA chain in (ic, kh, kw) order + bias (+ ReLU): the bits the kernels must give;
 * out64: the same sum in float64; mag: sum |x * w| + |b| per output (for the error bound). */
static void ref_conv(const conv_t *p, int groups, const float *x, const float *w, const float *b, float *out,
                     double *out64, double *mag) {
    int icg = p->IC / groups, ocg = p->OC / groups;
    for (int oc = 0; oc < p->OC; oc++)
        for (int oh = 0; oh < p->OH; oh++)
            for (int ow = 0; ow < p->OW; ow++) {
                float acc = 0.0f;
                double a64 = 0.0, m = 0.0;
                int g = oc / ocg;
                for (int i = 0; i < icg; i++)
                    for (int kh = 0; kh < p->KH; kh++)
                        for (int kw = 0; kw < p->KW; kw++) {
                            int ih = oh * p->SH - p->PH + kh, iw = ow * p->SW - p->PW + kw;
                            if (ih < 0 || ih >= p->H || iw < 0 || iw >= p->W) continue;
                            float xv = x[((size_t)(g * icg + i) * p->H + ih) * p->W + iw];
                            float wv = w[(((size_t)oc * icg + i) * p->KH + kh) * p->KW + kw];
                            acc = fmaf(xv, wv, acc);
                            a64 += (double)xv * wv;
                            m += fabs((double)xv * wv);
                        }
                acc = acc + b[oc];
                a64 += b[oc];
                if (p->relu) acc = acc > 0.0f ? acc : 0.0f, a64 = a64 > 0.0 ? a64 : 0.0;
                size_t o = ((size_t)oc * p->OH + oh) * p->OW + ow;
                out[o] = acc, out64[o] = a64, mag[o] = m + fabs(b[oc]);
            }
}

/* ---------------------------------------------------------------- helpers */

static float *alloc_f(size_t n) {
    float *q = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    if (!q) { fprintf(stderr, "out of memory\n"); exit(2); }
    return q;
}

static uint64_t rng_state = 88172645463325252ull;
static float frand(void) {   /* xorshift64, uniform in [-1, 1) */
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) / (double)(1 << 23) - 1.0);
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

/* A problem: random NCHW x, weights, bias; the packed forms. dw: depthwise (groups = C). */
typedef struct {
    conv_t p;
    int dw;
    float *x, *w, *b, *x8, *w8, *b8, *y8, *y;
    float *wnf[5];   /* conv weights packed for NF = 1..4 */
} problem;

static problem make(int IC, int OC, int H, int W, int K, int S, int P, int relu, int dw) {
    problem q = {geom(IC, OC, H, W, K, S, P, relu), dw, 0, 0, 0, 0, 0, 0, 0, 0, {0}};
    conv_t *p = &q.p;
    size_t KK = (size_t)K * K, nw = dw ? (size_t)OC * KK : (size_t)OC * IC * KK;
    q.x = alloc_f((size_t)IC * H * W), q.w = alloc_f(nw), q.b = alloc_f(OC);
    for (size_t i = 0; i < (size_t)IC * H * W; i++) q.x[i] = frand();
    for (size_t i = 0; i < nw; i++) q.w[i] = frand() * 0.25f;
    for (int i = 0; i < OC; i++) q.b[i] = frand();
    q.x8 = alloc_f((size_t)p->ICB * 8 * H * W);
    q.y8 = alloc_f((size_t)p->OCB * 8 * p->OH * p->OW);
    q.y = alloc_f((size_t)OC * p->OH * p->OW);
    q.b8 = alloc_f((size_t)p->OCB * 8);
    memset(q.b8, 0, sizeof(float) * p->OCB * 8);
    memcpy(q.b8, q.b, sizeof(float) * OC);
    if (dw) {   /* [C][1][KH][KW] -> [C/8][KH][KW][8] */
        q.w8 = alloc_f((size_t)p->OCB * 8 * KK);
        memset(q.w8, 0, sizeof(float) * p->OCB * 8 * KK);
        for (int c = 0; c < OC; c++)
            for (size_t k = 0; k < KK; k++) q.w8[((size_t)(c / 8) * KK + k) * 8 + c % 8] = q.w[c * KK + k];
    } else {
        for (int nf = 1; nf <= 4; nf++) {
            q.wnf[nf] = alloc_f((size_t)p->OCB * p->ICB * 64 * KK);
            pack_conv_weights(p, nf, q.w, q.wnf[nf]);
        }
    }
    /* a 1x1, stride-1, unpadded conv is one long row: the 1x1 "pointwise" form */
    return q;
}

static void run(problem *q, int NO, int NF) {
    conv_t p = q->p;
    if (!q->dw && p.KH == 1 && p.KW == 1 && p.SH == 1 && p.SW == 1 && p.PH == 0 && p.PW == 0)
        p.W = p.OW = p.H * p.W, p.H = p.OH = 1;
    if (q->dw) dw_nchw8c(&p, q->x8, q->w8, q->b8, q->y8);
    else conv_nchw8c(&p, NO, NF, q->x8, q->wnf[NF], q->b8, q->y8);
}

static void drop(problem *q) {
    free(q->x), free(q->w), free(q->b), free(q->x8), free(q->w8), free(q->b8), free(q->y8), free(q->y);
    for (int nf = 1; nf <= 4; nf++) free(q->wnf[nf]);
}

/* ---------------------------------------------------------------- check */

static const int CONFIGS[][2] = {{3, 4}, {4, 3}, {6, 2}, {12, 1}};   /* (NO, NF) */
#define NCONFIG 4

static int check_one(int IC, int OC, int H, int W, int K, int S, int P, int relu, int dw, int chunk) {
    problem q = make(IC, OC, H, W, K, S, P, relu, dw);
    q.p.chunk = chunk;
    size_t n = (size_t)OC * q.p.OH * q.p.OW;
    float *ref = alloc_f(n);
    double *r64 = malloc(n * sizeof(double)), *mag = malloc(n * sizeof(double));
    ref_conv(&q.p, dw ? IC : 1, q.x, q.w, q.b, ref, r64, mag);
    int bad = 0;
    for (int c = 0; c < (dw ? 1 : NCONFIG); c++) {
        memset(q.y8, 0xff, sizeof(float) * q.p.OCB * 8 * q.p.OH * q.p.OW);   /* NaN: unwritten shows */
        nchw_to_nchw8c(q.x, IC, H * W, q.x8);
        run(&q, CONFIGS[c][0], CONFIGS[c][1]);
        nchw8c_to_nchw(q.y8, OC, q.p.OH * q.p.OW, q.y);
        size_t diff = 0;
        double err = 0, rel = 0;   /* max |y - y64|, and in units of 2^-24 * K * sum|x w| */
        int K_ = (dw ? 1 : IC) * K * K + 1;
        for (size_t i = 0; i < n; i++) {
            if (memcmp(&q.y[i], &ref[i], 4) != 0 && !(q.y[i] == 0.0f && ref[i] == 0.0f)) diff++;
            double e = fabs(q.y[i] - r64[i]);
            if (!(e <= err)) err = e;   /* NaN propagates */
            double u = e / (ldexp(1.0, -24) * K_ * (mag[i] > 0 ? mag[i] : 1e-30));
            if (!(u <= rel)) rel = u;
        }
        int ok = diff == 0 && rel <= 1.0;
        printf("%s %s IC=%d OC=%d %dx%d K=%d S=%d P=%d relu=%d chunk=%d tile=%dx%d: %zu/%zu differ from the fmaf "
               "chain, max |err| vs float64 %.3g (%.3f of the K*eps bound)\n",
               ok ? "ok  " : "FAIL", dw ? "dw  " : "conv", IC, OC, H, W, K, S, P, relu, chunk, CONFIGS[c][0],
               CONFIGS[c][1], diff, n, err, rel);
        bad += !ok;
    }
    free(ref), free(r64), free(mag), drop(&q);
    return bad;
}

static int check(void) {
    int bad = 0;
    /* conv: the benchmarked shapes, scaled down, and odd ones (channels not a multiple of 8, odd
     * sizes, padding on every side, strides, 1x1 long rows, chunked input channels) */
    bad += check_one(16, 32, 40, 40, 3, 2, 1, 0, 0, 0);
    bad += check_one(16, 32, 41, 37, 3, 2, 1, 1, 0, 1);
    bad += check_one(32, 32, 20, 20, 3, 1, 1, 1, 0, 0);
    bad += check_one(64, 128, 14, 14, 3, 2, 1, 0, 0, 2);
    bad += check_one(160, 960, 7, 7, 1, 1, 0, 0, 0, 0);
    bad += check_one(960, 160, 7, 7, 1, 1, 0, 1, 0, 16);
    bad += check_one(64, 255, 10, 10, 1, 1, 0, 0, 0, 0);
    bad += check_one(3, 16, 33, 31, 3, 2, 1, 1, 0, 0);
    bad += check_one(20, 12, 9, 11, 5, 1, 2, 0, 0, 0);
    bad += check_one(24, 40, 12, 12, 7, 2, 3, 1, 0, 1);
    bad += check_one(8, 8, 3, 3, 3, 1, 1, 0, 0, 0);     /* no interior column at all */
    bad += check_one(512, 64, 6, 6, 1, 2, 0, 0, 0, 0);  /* strided 1x1 (resnet downsample) */
    /* depthwise 3x3, stride 1 and 2 */
    bad += check_one(96, 96, 112, 112, 3, 2, 1, 0, 1, 0);
    bad += check_one(144, 144, 56, 56, 3, 1, 1, 1, 1, 0);
    bad += check_one(20, 20, 13, 9, 3, 2, 1, 1, 1, 0);
    bad += check_one(960, 960, 7, 7, 3, 1, 1, 0, 1, 0);
    bad += check_one(8, 8, 2, 2, 3, 2, 1, 0, 1, 0);
    /* max pooling: equal to a scalar max over the window's taps inside the input */
    {
        conv_t p = geom(20, 20, 15, 13, 3, 2, 1, 0);
        size_t nx = (size_t)20 * 15 * 13, ny = (size_t)20 * p.OH * p.OW;
        float *x = alloc_f(nx), *x8 = alloc_f((size_t)24 * 15 * 13), *y8 = alloc_f((size_t)24 * p.OH * p.OW),
              *yv = alloc_f(ny);
        for (size_t i = 0; i < nx; i++) x[i] = frand();
        nchw_to_nchw8c(x, 20, 15 * 13, x8);
        maxpool_nchw8c(&p, x8, y8);
        nchw8c_to_nchw(y8, 20, p.OH * p.OW, yv);
        int ok = 1;
        for (int c = 0; c < 20; c++)
            for (int oh = 0; oh < p.OH; oh++)
                for (int ow = 0; ow < p.OW; ow++) {
                    float m = -INFINITY;
                    for (int kh = 0; kh < 3; kh++)
                        for (int kw = 0; kw < 3; kw++) {
                            int ih = oh * 2 - 1 + kh, iw = ow * 2 - 1 + kw;
                            if (ih >= 0 && ih < 15 && iw >= 0 && iw < 13 && x[((size_t)c * 15 + ih) * 13 + iw] > m)
                                m = x[((size_t)c * 15 + ih) * 13 + iw];
                        }
                    ok &= yv[((size_t)c * p.OH + oh) * p.OW + ow] == m;
                }
        printf("%s maxpool 3x3/2 pad 1, C=20 15x13\n", ok ? "ok  " : "FAIL");
        bad += !ok;
        free(x), free(x8), free(y8), free(yv);
    }
    /* the reorders round trip exactly, C not a multiple of 8 and HW not a multiple of 8 */
    {
        int C = 27, HW = 61;
        float *a = alloc_f((size_t)C * HW), *b8 = alloc_f((size_t)32 * HW), *c = alloc_f((size_t)C * HW);
        for (int i = 0; i < C * HW; i++) a[i] = frand();
        nchw_to_nchw8c(a, C, HW, b8);
        nchw8c_to_nchw(b8, C, HW, c);
        int ok = memcmp(a, c, sizeof(float) * C * HW) == 0;
        for (int p = 0; p < HW; p++)
            for (int l = 3; l < 8; l++) ok &= b8[((size_t)3 * HW + p) * 8 + l] == 0.0f;
        for (int i = 0; i < C && ok; i++)
            for (int p = 0; p < HW; p++) ok &= b8[((size_t)(i / 8) * HW + p) * 8 + i % 8] == a[(size_t)i * HW + p];
        printf("%s reorder round trip C=%d HW=%d\n", ok ? "ok  " : "FAIL", C, HW);
        bad += !ok;
        free(a), free(b8), free(c);
    }
    printf("%s\n", bad ? "FAILED" : "all ok");
    return bad ? 1 : 0;
}

/* ---------------------------------------------------------------- bench */

/* min ms over `reps` runs (after 3 warm-up runs) of fn(q, NO, NF) */
#define TIME_MIN(reps, stmt)                                              \
    ({                                                                    \
        double best_ = 1e30;                                              \
        for (int r_ = 0; r_ < (reps) + 3; r_++) {                         \
            double t0_ = now_ms();                                        \
            stmt;                                                         \
            double t_ = now_ms() - t0_;                                   \
            if (r_ >= 3 && t_ < best_) best_ = t_;                        \
        }                                                                 \
        best_;                                                            \
    })

static int bench(int dw, int IC, int OC, int H, int W, int K, int S, int P, int reps, int chunk) {
    problem q = make(IC, OC, H, W, K, S, P, 0, dw);
    conv_t *p = &q.p;
    if (chunk < 0) {   /* default: the chunk's weights (NF = 4) in 24 of L1's 32 KiB */
        size_t per = (size_t)4 * 64 * p->KH * p->KW * sizeof(float);
        chunk = imax(1, (int)(24576 / per));
    }
    p->chunk = chunk;
    nchw_to_nchw8c(q.x, IC, H * W, q.x8);
    printf("{\"op\": \"%s\", \"IC\": %d, \"OC\": %d, \"H\": %d, \"W\": %d, \"K\": %d, \"S\": %d, \"P\": %d, "
           "\"chunk\": %d, \"reps\": %d",
           dw ? "dw" : "conv", IC, OC, H, W, K, S, P, chunk, reps);
    double best = 1e30;
    const char *best_tile = "dw";
    static char names[NCONFIG][16];
    for (int c = 0; c < (dw ? 1 : NCONFIG); c++) {
        double t = TIME_MIN(reps, run(&q, CONFIGS[c][0], CONFIGS[c][1]));
        snprintf(names[c], sizeof names[c], "%dx%d", CONFIGS[c][0], CONFIGS[c][1]);
        if (!dw) printf(", \"tile_%s\": %.4f", names[c], t);
        if (t < best) best = t, best_tile = dw ? "dw" : names[c];
    }
    double tin = TIME_MIN(reps, nchw_to_nchw8c(q.x, IC, H * W, q.x8));
    double tout = TIME_MIN(reps, nchw8c_to_nchw(q.y8, OC, p->OH * p->OW, q.y));
    printf(", \"conv_ms\": %.4f, \"tile\": \"%s\", \"reorder_in_ms\": %.4f, \"reorder_out_ms\": %.4f}\n", best,
           best_tile, tin, tout);
    drop(&q);
    return 0;
}

static int bench_pool(int C, int H, int W, int K, int S, int P, int reps) {
    conv_t p = geom(C, C, H, W, K, S, P, 0);
    size_t nx = (size_t)p.ICB * 8 * H * W;
    float *x = alloc_f(nx), *y = alloc_f((size_t)p.ICB * 8 * p.OH * p.OW);
    for (size_t i = 0; i < nx; i++) x[i] = frand();
    double t = TIME_MIN(reps, maxpool_nchw8c(&p, x, y));
    printf("{\"op\": \"maxpool\", \"C\": %d, \"H\": %d, \"W\": %d, \"K\": %d, \"S\": %d, \"P\": %d, "
           "\"reps\": %d, \"pool_ms\": %.4f}\n", C, H, W, K, S, P, reps, t);
    free(x), free(y);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "check")) return check();
    if (argc >= 9 && !strcmp(argv[1], "conv"))
        return bench(0, atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atoi(argv[6]), atoi(argv[7]),
                     atoi(argv[8]), argc > 9 ? atoi(argv[9]) : 200, argc > 10 ? atoi(argv[10]) : -1);
    if (argc >= 8 && !strcmp(argv[1], "dw"))
        return bench(1, atoi(argv[2]), atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atoi(argv[6]),
                     atoi(argv[7]), argc > 8 ? atoi(argv[8]) : 200, 0);
    if (argc >= 8 && !strcmp(argv[1], "maxpool"))
        return bench_pool(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atoi(argv[6]), atoi(argv[7]),
                          argc > 8 ? atoi(argv[8]) : 200);
    fprintf(stderr, "usage: nchwc check | conv IC OC H W K S P [REPS [CHUNK]] | dw C H W K S P [REPS] | "
                    "maxpool C H W K S P [REPS]\n");
    return 2;
}
