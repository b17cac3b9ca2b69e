/* avx2/winograd_i8.c: int8 3x3 stride-1 Conv (group 1, 2-D) as Winograd F(2x2, 3x3) on integers,
 * exact, for x86-64 AVX2: byte-identical with the REF kernel (kernels/ref/conv_i8.c). The plan
 * (which nodes, the blocks, the scratch) and the arithmetic's proof: avx2_wino_plan_of in
 * i8_avx2.h; called by dse_i8_conv__avx2 (conv_i8.c). Threads: dse__parallel over (image, tile
 * row block) or, for whole-image plans, (image, chunk of output-channel bands). */
#include "isa.h"

#if DSE_ARCH_X86_64
#include "i8_avx2.h"

/* 8 channels x 4 tiles over Kb k-blocks of int16 weights (64 bytes: channels 0-3 x 4 c, then
 * 4-7): the raw accumulators (out[2j], out[2j+1] = column j's channels 0-3 / 4-7 lane pairs). */
DSE_TARGET_AVX2 static void avx2_i8_mk4w(const int16_t *a, const int16_t *wb, size_t Kb, __m256i *out) {
    __asm__ volatile(
        "vpxor %%xmm0, %%xmm0, %%xmm0\n\t"
        "vpxor %%xmm1, %%xmm1, %%xmm1\n\t"
        "vpxor %%xmm2, %%xmm2, %%xmm2\n\t"
        "vpxor %%xmm3, %%xmm3, %%xmm3\n\t"
        "vpxor %%xmm4, %%xmm4, %%xmm4\n\t"
        "vpxor %%xmm5, %%xmm5, %%xmm5\n\t"
        "vpxor %%xmm6, %%xmm6, %%xmm6\n\t"
        "vpxor %%xmm7, %%xmm7, %%xmm7\n\t"
        "test %[kb], %[kb]\n\t"
        "jz 2f\n\t"
        ".p2align 4\n"
        "1:\n\t"
        "vmovdqu (%[w]), %%ymm8\n\t"
        "vmovdqu 32(%[w]), %%ymm9\n\t"
        "vpbroadcastq (%[a]), %%ymm10\n\t"
        "vpbroadcastq 8(%[a]), %%ymm11\n\t"
        "vpmaddwd %%ymm10, %%ymm8, %%ymm12\n\t"
        "vpmaddwd %%ymm10, %%ymm9, %%ymm13\n\t"
        "vpmaddwd %%ymm11, %%ymm8, %%ymm14\n\t"
        "vpmaddwd %%ymm11, %%ymm9, %%ymm15\n\t"
        "vpaddd %%ymm12, %%ymm0, %%ymm0\n\t"
        "vpaddd %%ymm13, %%ymm1, %%ymm1\n\t"
        "vpaddd %%ymm14, %%ymm2, %%ymm2\n\t"
        "vpaddd %%ymm15, %%ymm3, %%ymm3\n\t"
        "vpbroadcastq 16(%[a]), %%ymm10\n\t"
        "vpbroadcastq 24(%[a]), %%ymm11\n\t"
        "vpmaddwd %%ymm10, %%ymm8, %%ymm12\n\t"
        "vpmaddwd %%ymm10, %%ymm9, %%ymm13\n\t"
        "vpmaddwd %%ymm11, %%ymm8, %%ymm14\n\t"
        "vpmaddwd %%ymm11, %%ymm9, %%ymm15\n\t"
        "vpaddd %%ymm12, %%ymm4, %%ymm4\n\t"
        "vpaddd %%ymm13, %%ymm5, %%ymm5\n\t"
        "vpaddd %%ymm14, %%ymm6, %%ymm6\n\t"
        "vpaddd %%ymm15, %%ymm7, %%ymm7\n\t"
        "add $64, %[w]\n\t"
        "add $32, %[a]\n\t"
        "dec %[kb]\n\t"
        "jnz 1b\n"
        "2:\n\t"
        "vmovdqu %%ymm0, (%[out])\n\t"
        "vmovdqu %%ymm1, 32(%[out])\n\t"
        "vmovdqu %%ymm2, 64(%[out])\n\t"
        "vmovdqu %%ymm3, 96(%[out])\n\t"
        "vmovdqu %%ymm4, 128(%[out])\n\t"
        "vmovdqu %%ymm5, 160(%[out])\n\t"
        "vmovdqu %%ymm6, 192(%[out])\n\t"
        "vmovdqu %%ymm7, 224(%[out])\n\t"
        : [w] "+r"(wb), [a] "+r"(a), [kb] "+r"(Kb)
        : [out] "r"(out)
        : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
          "xmm12", "xmm13", "xmm14", "xmm15", "memory", "cc");
}

typedef struct avx2_i8_wino_job {
    const dse_ctx *cx;
    const int8_t *x, *w;   /* w: packed W[O][C*9] (layout 1) */
    const int32_t *bias;
    const dse_i8_out *o;
    void *y;
    const dse_i8_geom *g;
    size_t C, O;
    avx2_wino_plan wp;
    size_t blocks;         /* per image */
    size_t split;          /* whole-image plans: band chunks per image (threads) */
} avx2_i8_wino_job;

/* U of bands b0..b0+nb-1: U[band][ij][c/4][o%8][c%4] = (G' g G'^T)_ij of W[o][c], 0 past O or C.
 * Four channels at a time: tap t of channels c0..c0+3 (k = 9c + t, nine 32-byte weight blocks
 * of the band from k = 9 c0) is gathered into [o][c] byte order with one vpshufb per channel
 * (the byte of row o stays in its 128-bit lane), so the transformed values come out in the
 * U block order directly; the last, partial quad per element. */
DSE_TARGET_AVX2 static void avx2_i8_wino_u(int16_t *U, const avx2_i8_wino_job *J, long long b0, long long nb) {
    const avx2_wino_plan *wp = &J->wp;
    const size_t Kb9 = (J->C * 9 + 3) / 4, band = 16 * (size_t)wp->Kb * 32, C4 = J->C / 4 * 4;
    __m256i mask[9][4];
    for (int t = 0; t < 9; t++)
        for (int c = 0; c < 4; c++) {
            int8_t mb[32];
            for (int i = 0; i < 32; i++) mb[i] = (i & 3) == c ? (int8_t)((i & ~3 & 15) + ((c + t) & 3)) : (int8_t)-128;
            memcpy(&mask[t][c], mb, 32);
        }
    for (long long b = 0; b < nb; b++) {
        int16_t *Ub = U + (size_t)b * band;
        const size_t ob = (size_t)(b0 + b);
        const int8_t *wband = J->w + ob * Kb9 * 32;
        if (ob * 8 >= J->O) { memset(Ub, 0, band * 2); continue; }
        for (size_t c0 = 0; c0 < C4; c0 += 4) {
            const int8_t *blk = wband + (9 * c0 / 4) * 32;
            __m256i tap[9][2];
            for (int t = 0; t < 9; t++) {
                __m256i v = _mm256_setzero_si256();
                for (int c = 0; c < 4; c++)
                    v = _mm256_or_si256(v, _mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *)(blk + ((9 * c + t) >> 2) * 32)), mask[t][c]));
                tap[t][0] = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(v));        /* o 0-3 x c 0-3 */
                tap[t][1] = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(v, 1));   /* o 4-7 x c 0-3 */
            }
            for (int h = 0; h < 2; h++) {
                __m256i tt[4][3];
                for (int j = 0; j < 3; j++) {   /* G' g, column j */
                    const __m256i g0 = tap[j][h], g1 = tap[3 + j][h], g2 = tap[6 + j][h];
                    tt[0][j] = _mm256_add_epi16(g0, g0);
                    tt[1][j] = _mm256_add_epi16(_mm256_add_epi16(g0, g1), g2);
                    tt[2][j] = _mm256_add_epi16(_mm256_sub_epi16(g0, g1), g2);
                    tt[3][j] = _mm256_add_epi16(g2, g2);
                }
                for (int i = 0; i < 4; i++) {   /* (G' g) G'^T */
                    const __m256i t0 = tt[i][0], t1 = tt[i][1], t2 = tt[i][2];
                    const __m256i u[4] = {_mm256_add_epi16(t0, t0), _mm256_add_epi16(_mm256_add_epi16(t0, t1), t2),
                                          _mm256_add_epi16(_mm256_sub_epi16(t0, t1), t2), _mm256_add_epi16(t2, t2)};
                    for (int j = 0; j < 4; j++)
                        _mm256_storeu_si256((__m256i *)(Ub + ((size_t)(4 * i + j) * (size_t)wp->Kb + c0 / 4) * 32 + (size_t)h * 16), u[j]);
                }
            }
        }
        for (size_t c = C4; c < (size_t)wp->Cp; c++)   /* the partial quad: 0 past C */
            for (size_t oi = 0; oi < 8; oi++) {
                const size_t o = ob * 8 + oi;
                int32_t gg[9] = {0}, t[4][3];
                if (o < J->O && c < J->C)
                    for (int k = 0; k < 9; k++) gg[k] = J->w[dse__n8k4_index(Kb9, o, c * 9 + (size_t)k)];
                for (int j = 0; j < 3; j++) {
                    const int32_t g0 = gg[j], g1 = gg[3 + j], g2 = gg[6 + j];
                    t[0][j] = 2 * g0, t[1][j] = g0 + g1 + g2, t[2][j] = g0 - g1 + g2, t[3][j] = 2 * g2;
                }
                for (int i = 0; i < 4; i++) {
                    const int32_t u[4] = {2 * t[i][0], t[i][0] + t[i][1] + t[i][2], t[i][0] - t[i][1] + t[i][2], 2 * t[i][2]};
                    for (int j = 0; j < 4; j++) Ub[((size_t)(4 * i + j) * (size_t)wp->Kb + c / 4) * 32 + oi * 4 + c % 4] = (int16_t)u[j];
                }
            }
    }
}

/* V of the block of tile rows th0..th0+R-1 of image xb: V[ij][group][c/4][tile%4][c%4]. */
DSE_TARGET_AVX2 static void avx2_i8_wino_v(int16_t *V, int16_t *rows, const avx2_i8_wino_job *J, const int8_t *xb, long long th0,
                                           long long R) {
    const avx2_wino_plan *wp = &J->wp;
    const dse_i8_geom *g = J->g;
    const long long IH = g->in[1], IW = g->in[2], L = wp->L, TWp = wp->TWp;
    const size_t T = (size_t)(R * TWp), Cp = (size_t)wp->Cp, isz = (size_t)(IH * IW);
    int16_t *ph = rows, *zero = rows + 8 * L;   /* 4 input rows x 2 phases (even, odd); a zero row, 2 phases */
    int8_t *tmp = (int8_t *)(zero + 2 * L);
    memset(zero, 0, (size_t)L * 4);
    int16_t vt[4][16][64];   /* 4 channels x 16 ij x the row's tiles */
    for (long long r = 0; r < R; r++) {
        const long long th = th0 + r;
        for (size_t c0 = 0; c0 < Cp; c0 += 4) {
            for (size_t cc = 0; cc < 4; cc++) {
                const size_t c = c0 + cc;
                if (c >= J->C) { memset(vt[cc], 0, sizeof vt[cc]); continue; }
                const int16_t *pr[4];
                for (int i = 0; i < 4; i++) {
                    const long long ih = 2 * th - g->pb[1] + i;
                    pr[i] = zero;
                    if (ih < 0 || ih >= IH) continue;
                    avx2_i8_dw_row(ph + (size_t)(i * 2 * L), xb + c * isz + (size_t)(ih * IW), tmp, IW, g->pb[2], 2, L, J->o->zp_in);
                    pr[i] = ph + i * 2 * L;
                }
                for (long long tw0 = 0; tw0 < TWp; tw0 += 16) {
                    __m256i h[4][4];
                    for (int i = 0; i < 4; i++) {   /* columns 2tw..2tw+3 = even[tw], odd[tw], even[tw+1], odd[tw+1] */
                        const __m256i d0 = _mm256_loadu_si256((const __m256i *)(pr[i] + tw0));
                        const __m256i d1 = _mm256_loadu_si256((const __m256i *)(pr[i] + L + tw0));
                        const __m256i d2 = _mm256_loadu_si256((const __m256i *)(pr[i] + tw0 + 1));
                        const __m256i d3 = _mm256_loadu_si256((const __m256i *)(pr[i] + L + tw0 + 1));
                        h[i][0] = _mm256_sub_epi16(d0, d2), h[i][1] = _mm256_add_epi16(d1, d2);
                        h[i][2] = _mm256_sub_epi16(d2, d1), h[i][3] = _mm256_sub_epi16(d1, d3);
                    }
                    for (int j = 0; j < 4; j++) {
                        _mm256_storeu_si256((__m256i *)(vt[cc][0 * 4 + j] + tw0), _mm256_sub_epi16(h[0][j], h[2][j]));
                        _mm256_storeu_si256((__m256i *)(vt[cc][1 * 4 + j] + tw0), _mm256_add_epi16(h[1][j], h[2][j]));
                        _mm256_storeu_si256((__m256i *)(vt[cc][2 * 4 + j] + tw0), _mm256_sub_epi16(h[2][j], h[1][j]));
                        _mm256_storeu_si256((__m256i *)(vt[cc][3 * 4 + j] + tw0), _mm256_sub_epi16(h[1][j], h[3][j]));
                    }
                }
            }
            /* [c][tile] -> per group of 4 tiles [tile][c], 16 tiles at a time */
            for (long long tw0 = 0; tw0 < TWp; tw0 += 16) {
                const size_t t0 = (size_t)(r * TWp + tw0);
                const long long ng = (TWp - tw0 < 16 ? TWp - tw0 : 16) / 4;
                for (int ij = 0; ij < 16; ij++) {
                    const __m256i v0 = _mm256_loadu_si256((const __m256i *)(vt[0][ij] + tw0));
                    const __m256i v1 = _mm256_loadu_si256((const __m256i *)(vt[1][ij] + tw0));
                    const __m256i v2 = _mm256_loadu_si256((const __m256i *)(vt[2][ij] + tw0));
                    const __m256i v3 = _mm256_loadu_si256((const __m256i *)(vt[3][ij] + tw0));
                    const __m256i a = _mm256_unpacklo_epi16(v0, v1), b = _mm256_unpackhi_epi16(v0, v1);
                    const __m256i c = _mm256_unpacklo_epi16(v2, v3), d = _mm256_unpackhi_epi16(v2, v3);
                    const __m256i e = _mm256_unpacklo_epi32(a, c), f = _mm256_unpackhi_epi32(a, c);
                    const __m256i gg = _mm256_unpacklo_epi32(b, d), hh = _mm256_unpackhi_epi32(b, d);
                    const __m256i grp[4] = {_mm256_permute2x128_si256(e, f, 0x20), _mm256_permute2x128_si256(gg, hh, 0x20),
                                            _mm256_permute2x128_si256(e, f, 0x31), _mm256_permute2x128_si256(gg, hh, 0x31)};
                    int16_t *base = V + (size_t)ij * T * Cp + (t0 / 4) * 4 * Cp + c0 * 4;
                    for (long long q = 0; q < ng; q++) _mm256_storeu_si256((__m256i *)(base + (size_t)q * 4 * Cp), grp[q]);
                }
            }
        }
    }
}

/* The 4 tiles of group gi of block (image b, tile rows th0..): outputs through A^T M A / 4,
 * bias, the output stage. m: the raw accumulators [ij][tile j][2]. */
DSE_TARGET_AVX2 static void avx2_i8_wino_out(const avx2_i8_wino_job *J, const __m256i (*m)[8], size_t b, long long th, long long tw0,
                                             size_t o0, const avx2_i8_rq *q, __m256i bias) {
    const dse_i8_geom *g = J->g;
    const dse_i8_out *o = J->o;
    const long long OH = g->out[1], OW = g->out[2];
    const size_t nc = J->O - o0 < 8 ? J->O - o0 : 8, P = (size_t)(OH * OW);
    int32_t res[4][4][8];   /* tile, output (00, 01, 10, 11), channel */
    for (int j = 0; j < 4; j++) {
        __m256i y[4][2];
        for (int hv = 0; hv < 2; hv++) {
            __m256i r0[4], r1[4];
            for (int s = 0; s < 4; s++) {
                const __m256i m0 = m[s][2 * j + hv], m1 = m[4 + s][2 * j + hv], m2 = m[8 + s][2 * j + hv], m3 = m[12 + s][2 * j + hv];
                r0[s] = _mm256_add_epi32(_mm256_add_epi32(m0, m1), m2);
                r1[s] = _mm256_sub_epi32(_mm256_sub_epi32(m1, m2), m3);
            }
            y[0][hv] = _mm256_add_epi32(_mm256_add_epi32(r0[0], r0[1]), r0[2]);
            y[1][hv] = _mm256_sub_epi32(_mm256_sub_epi32(r0[1], r0[2]), r0[3]);
            y[2][hv] = _mm256_add_epi32(_mm256_add_epi32(r1[0], r1[1]), r1[2]);
            y[3][hv] = _mm256_sub_epi32(_mm256_sub_epi32(r1[1], r1[2]), r1[3]);
        }
        for (int k = 0; k < 4; k++) {
            __m256i v = _mm256_permute4x64_epi64(_mm256_hadd_epi32(y[k][0], y[k][1]), 0xD8);
            v = _mm256_srai_epi32(v, 2);   /* 4 Y -> Y: exact */
            if (o->float_out) _mm256_storeu_si256((__m256i *)res[j][k], v);
            else _mm256_storeu_si256((__m256i *)res[j][k], avx2_i8_requant(_mm256_add_epi32(v, bias), q));
        }
    }
    if (!o->float_out && 2 * tw0 + 8 <= OW) {   /* 8 whole columns: per channel and row, 8 bytes */
        const __m256i tr = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15,
                                            0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
        for (int di = 0; di < 2; di++) {
            const long long oh = 2 * th + di;
            if (oh >= OH) break;
            __m256i c[8];   /* column 2j + dj = tile j, output (di, dj) */
            for (int col = 0; col < 8; col++) c[col] = _mm256_loadu_si256((const __m256i *)res[col >> 1][2 * di + (col & 1)]);
            __m256i b0 = _mm256_packs_epi16(_mm256_packs_epi32(c[0], c[1]), _mm256_packs_epi32(c[2], c[3]));
            __m256i b1 = _mm256_packs_epi16(_mm256_packs_epi32(c[4], c[5]), _mm256_packs_epi32(c[6], c[7]));
            b0 = _mm256_shuffle_epi8(b0, tr), b1 = _mm256_shuffle_epi8(b1, tr);   /* dword ch: its 4 columns */
            int64_t q[8];
            _mm256_storeu_si256((__m256i *)q, _mm256_unpacklo_epi32(b0, b1));        /* ch 0, 1, 4, 5 */
            _mm256_storeu_si256((__m256i *)(q + 4), _mm256_unpackhi_epi32(b0, b1));  /* ch 2, 3, 6, 7 */
            static const int at[8] = {0, 1, 4, 5, 2, 3, 6, 7};   /* q index of channel i */
            int8_t *yb = (int8_t *)J->y + (b * J->O + o0) * P + (size_t)(oh * OW + 2 * tw0);
            for (size_t i = 0; i < nc; i++) memcpy(yb + i * P, &q[at[i]], 8);
        }
        return;
    }
    for (int j = 0; j < 4; j++) {
        const long long tw = tw0 + j;
        for (int k = 0; k < 4; k++) {
            const long long oh = 2 * th + (k >> 1), ow = 2 * tw + (k & 1);
            if (oh >= OH || ow >= OW) continue;
            const size_t idx = (b * J->O + o0) * P + (size_t)(oh * OW + ow);
            if (o->float_out)
                for (size_t i = 0; i < nc; i++) dse_i8_store(o, J->y, idx + i * P, o0 + i, (int64_t)res[j][k][i] + J->bias[o0 + i]);
            else
                for (size_t i = 0; i < nc; i++) ((int8_t *)J->y)[idx + i * P] = (int8_t)res[j][k][i];
        }
    }
}

/* Bands b0..b0+nb-1 (their U at U) of the tile rows th0.. of image b, from the block's V (T tiles). */
DSE_TARGET_AVX2 static void avx2_i8_wino_block(const avx2_i8_wino_job *J, const int16_t *V, size_t T, long long th0, size_t b,
                                               const int16_t *U, long long b0, long long nb) {
    const avx2_wino_plan *wp = &J->wp;
    const size_t Cp = (size_t)wp->Cp, band = 16 * (size_t)wp->Kb * 32;
    __m256i m[16][8];
    for (long long bi = 0; bi < nb; bi++) {
        const size_t o0 = (size_t)(b0 + bi) * 8;
        const size_t nc = J->O - o0 < 8 ? J->O - o0 : 8;
        size_t ch[8];
        int32_t bv[8] = {0};
        for (size_t i = 0; i < 8; i++) ch[i] = o0 + (i < nc ? i : 0), bv[i] = i < nc ? J->bias[o0 + i] : 0;
        __m256i bias;
        memcpy(&bias, bv, 32);
        avx2_i8_rq q;
        avx2_i8_rq_init(&q, J->o, ch, (int)nc);
        const int16_t *Ub = U + (size_t)bi * band;
        for (size_t gi = 0; gi < T / 4; gi++) {
            const long long th = th0 + (long long)(gi * 4) / wp->TWp, tw0 = (long long)(gi * 4) % wp->TWp;
            if (tw0 >= wp->TW) continue;   /* padding tiles of the row */
            for (int ij = 0; ij < 16; ij++)
                avx2_i8_mk4w(V + (size_t)ij * T * Cp + gi * 4 * Cp, Ub + (size_t)ij * (size_t)wp->Kb * 32, (size_t)wp->Kb, m[ij]);
            avx2_i8_wino_out(J, (const __m256i(*)[8])m, b, th, tw0, o0, &q, bias);
        }
    }
}

/* Parts: whole-image plans (R == TH): part t = image t / split, bands of chunk t % split, V once
 * per image; row plans: part t = (image, tile row), all bands, V once per chunk of UB bands. */
DSE_TARGET_AVX2 static void avx2_i8_wino_task(void *arg, size_t begin, size_t end, unsigned worker) {
    const avx2_i8_wino_job *J = arg;
    const avx2_wino_plan *wp = &J->wp;
    uint8_t *S = dse__worker_scratch(J->cx, worker);
    int16_t *V = (int16_t *)(void *)(S + wp->v_off), *U = (int16_t *)(void *)(S + wp->u_off), *rows = (int16_t *)(void *)(S + wp->rows_off);
    const size_t isz = (size_t)(J->g->in[1] * J->g->in[2]);
    if (wp->R == wp->TH) {
        size_t have = (size_t)-1;
        for (size_t t = begin; t < end; t++) {
            const size_t b = t / J->split, part = t % J->split, per = ((size_t)wp->nbands + J->split - 1) / J->split;
            const long long p0 = (long long)(part * per), p1 = (long long)((part + 1) * per) < wp->nbands ? (long long)((part + 1) * per) : wp->nbands;
            if (p0 >= p1) continue;
            if (b != have) avx2_i8_wino_v(V, rows, J, J->x + b * J->C * isz, 0, wp->TH), have = b;
            for (long long b0 = p0; b0 < p1; b0 += wp->UB) {
                const long long nb = p1 - b0 < wp->UB ? p1 - b0 : wp->UB;
                avx2_i8_wino_u(U, J, b0, nb);
                avx2_i8_wino_block(J, V, (size_t)wp->T, 0, b, U, b0, nb);
            }
        }
        return;
    }
    for (long long b0 = 0; b0 < wp->nbands; b0 += wp->UB) {
        const long long nb = wp->nbands - b0 < wp->UB ? wp->nbands - b0 : wp->UB;
        avx2_i8_wino_u(U, J, b0, nb);
        for (size_t t = begin; t < end; t++) {
            const size_t b = t / J->blocks;
            const long long th0 = (long long)(t % J->blocks);
            avx2_i8_wino_v(V, rows, J, J->x + b * J->C * isz, th0, 1);
            avx2_i8_wino_block(J, V, (size_t)wp->TWp, th0, b, U, b0, nb);
        }
    }
}

DSE_TARGET_AVX2 int dse_i8_wino_run_avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx,
                                         const dse_i8_out *o, const dse_i8_geom *g) {
    const dse_tensor *xt = &m->tensors[n->in[0]];
    const size_t O = m->tensors[n->in[1]].dims[0], NB = xt->dims[0];
    avx2_wino_plan wp;
    if (!avx2_wino_plan_of(g, m->tensors[n->in[1]].dims[1], O, n->scratch, &wp)) return 0;
    avx2_i8_wino_job W = {cx, dse__data(m, arena, n->in[0]), dse__data(m, arena, n->in[1]), dse__data(m, arena, n->in[2]),
                          o, dse__data(m, arena, n->out[0]), g, xt->dims[1], O, wp, 0, 1};
    W.blocks = (size_t)((wp.TH + wp.R - 1) / wp.R);
    W.split = wp.R == wp.TH ? avx2_i8_split(cx, NB, O) : 1;
    const size_t parts = wp.R == wp.TH ? NB * W.split : NB * W.blocks;   /* work: 4 multiplies per 9 of the direct form */
    dse__parallel(cx, parts, dse__grain(parts, (uint64_t)m->tensors[n->out[0]].numel * xt->dims[1] * 4), avx2_i8_wino_task, &W);
    return 1;
}

#endif
