/* avx512vnni/dwconv.c: the float32 depthwise 3x3 Conv read directly from the NCHW planes (the DW3
 * path of kernels/avx2/conv.c, kernels/avx2/dwconv.c explains it) on 512-bit vectors: 16 output
 * columns per vector where AVX2 has 8, for the avx512vnni float Conv (ISA avx512vnni: AVX-512 F,
 * which every AVX512-VNNI CPU has; not in the VNNI emulation build).
 *
 * The same bytes as the AVX2 DW3: each output is one FMA chain from +0 over the taps in REF's order
 * (kh, kw), padding taps included (w * 0), then + bias, the clamp (max with lo, min with hi), then
 * HardSwish by the AVX2 code on each half (dse__avx512_act_fn_inline) or SiLU/GELU over the plane
 * after (d->act_row). Tiles of R output rows x one vector as there (R = 8, 4, 1 for stride 1 in H;
 * 2, 1 for stride 2), each input row loaded once for the tile's rows that use it. Stride 1 in W:
 * loads at columns c, c + 1, c + 2; stride 2: the even and odd columns of two vectors (c, c + 16) and
 * the even ones of (c + 2, c + 18), taken by vpermt2ps, lanes in output order. Vectors whose columns
 * leave [0, IW) load with masks (fault-suppressing, 0 outside the input); a row's last vector ends at
 * its end (its columns before computed again: the same bytes) or, on rows narrower than 16, is
 * stored with a mask. */
#include "avx2_f32.h"

#if DSE_AVX512_F32

#if defined(DSE_AVX2_SANITIZED)
#define W_AI static inline DSE_TARGET_AVX512VNNI
#else
#define W_AI static inline __attribute__((always_inline)) DSE_TARGET_AVX512VNNI
#endif

/* The lanes l whose input column c + l lies in [0, IW). */
W_AI __mmask16 w3_mask(ptrdiff_t c, size_t IW) {
    const __m512i col = _mm512_add_epi32(_mm512_set1_epi32((int)c), _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    return _mm512_cmpge_epi32_mask(col, _mm512_setzero_si512()) & _mm512_cmplt_epi32_mask(col, _mm512_set1_epi32((int)IW));
}

/* 16 floats of row r from column c: a plain load, or (EDGE) a masked one (0 outside the input). */
W_AI __m512 w3_ld(const int EDGE, const float *r, ptrdiff_t c, size_t IW) {
    const float *p = (const float *)((uintptr_t)r + (uintptr_t)(c * (ptrdiff_t)sizeof(float)));
    return EDGE ? _mm512_maskz_loadu_ps(w3_mask(c, IW), p) : _mm512_loadu_ps(p);
}

/* One tile: R output rows x 16 columns from input column c; rows[i]: input row i of the tile. */
W_AI void w3_tile(const int SW, const int SH, const int R, const int EDGE, const float *const *rows, ptrdiff_t c, size_t IW,
                  const __m512 *wb, __m512 *acc) {
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    DSE_UNROLL
    for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps();
    DSE_UNROLL
    for (int i = 0; i < (R - 1) * SH + 3; i++) {
        __m512 d[3];
        if (SW == 1) {
            DSE_UNROLL
            for (int kw = 0; kw < 3; kw++) d[kw] = w3_ld(EDGE, rows[i], c + kw, IW);
        } else {
            const __m512 a = w3_ld(EDGE, rows[i], c, IW), b = w3_ld(EDGE, rows[i], c + 16, IW);
            const __m512 a2 = w3_ld(EDGE, rows[i], c + 2, IW), b2 = w3_ld(EDGE, rows[i], c + 18, IW);
            d[0] = _mm512_permutex2var_ps(a, ev, b);
            d[1] = _mm512_permutex2var_ps(a, od, b);
            d[2] = _mm512_permutex2var_ps(a2, ev, b2);
        }
        DSE_UNROLL
        for (int r = 0; r < R; r++) {
            const int kh = i - r * SH;
            if (kh < 0 || kh > 2) continue;
            DSE_UNROLL
            for (int kw = 0; kw < 3; kw++) acc[r] = _mm512_fmadd_ps(wb[kh * 3 + kw], d[kw], acc[r]);
        }
    }
}

/* Bias, clamp, inline activation and the store of the tile's rows at column ow, n (<= 16) columns. */
W_AI void w3_store(const dse_dw3 *d, const int R, __m512 *acc, const float *bc, float *yr, size_t ow, size_t n) {
    const __m512 bias = _mm512_set1_ps(bc ? *bc : 0.0f), lo = _mm512_set1_ps(d->lo), hi = _mm512_set1_ps(d->hi);
    DSE_UNROLL
    for (int r = 0; r < R; r++) {
        __m512 y = acc[r];
        if (bc) y = _mm512_add_ps(y, bias);
        if (d->act) y = _mm512_min_ps(hi, _mm512_max_ps(lo, y));
        if (d->act_fn && DSE_ACT_FN_INLINE(d->act_fn)) y = dse__avx512_act_fn_inline(d->act_fn, y);
        float *o = yr + (size_t)r * d->OW + ow;
        if (n >= 16) _mm512_storeu_ps(o, y);
        else _mm512_mask_storeu_ps(o, dse__avx512_mask(n), y);
    }
}

/* R output rows from row oh0, 16 columns at a time; plain loads for the vectors in [v0, v1). */
W_AI void w3_rows(const dse_dw3 *d, const int SW, const int SH, const int R, const float *xc, size_t oh0, const __m512 *wb,
                  const float *bc, float *yc, size_t v0, size_t v1) {
    const float *rows[(8 - 1) * 2 + 3];
    DSE_UNROLL
    for (int i = 0; i < (R - 1) * SH + 3; i++) {
        const ptrdiff_t ih = (ptrdiff_t)(oh0 * SH) + i - (ptrdiff_t)d->pt;
        rows[i] = ih >= 0 && ih < (ptrdiff_t)d->IH ? xc + (size_t)ih * d->IW : d->zrow;
    }
    float *yr = yc + oh0 * d->OW;
    const size_t OW = d->OW;
    __m512 acc[8];
    size_t ow = 0;
    for (; ow + 16 <= OW; ow += 16) {
        const ptrdiff_t c = (ptrdiff_t)(ow * SW) - (ptrdiff_t)d->pl;
        if (ow >= v0 && ow < v1) w3_tile(SW, SH, R, 0, rows, c, d->IW, wb, acc);
        else w3_tile(SW, SH, R, 1, rows, c, d->IW, wb, acc);
        w3_store(d, R, acc, bc, yr, ow, 16);
    }
    if (ow < OW) {   /* the last vector, ending at the row's end (or masked: rows of fewer than 16) */
        ow = OW >= 16 ? OW - 16 : 0;
        const ptrdiff_t c = (ptrdiff_t)(ow * SW) - (ptrdiff_t)d->pl;
        if (ow >= v0 && ow < v1) w3_tile(SW, SH, R, 0, rows, c, d->IW, wb, acc);
        else w3_tile(SW, SH, R, 1, rows, c, d->IW, wb, acc);
        w3_store(d, R, acc, bc, yr, ow, OW >= 16 ? 16 : OW);
    }
}

W_AI void w3_plane(const dse_dw3 *d, const int SW, const int SH, const float *xc, const float *wc, const float *bc, float *yc) {
    __m512 wb[9];
    DSE_UNROLL
    for (int t = 0; t < 9; t++) wb[t] = _mm512_set1_ps(wc[t]);
    /* interior vectors: ow with c = ow*SW - pl >= 0 and c + span <= IW (span: the columns the loads
     * read, 18 for SW 1, 34 for SW 2) */
    const size_t span = SW == 1 ? 18 : 34, v0 = (d->pl + SW - 1) / SW;
    const size_t v1 = d->IW + d->pl >= span ? (d->IW + d->pl - span) / SW + 1 : 0;
    size_t oh = 0;
    const size_t OH = d->OH;
    if (SH == 1) {
        for (; oh + 8 <= OH; oh += 8) w3_rows(d, SW, SH, 8, xc, oh, wb, bc, yc, v0, v1);
        if (oh + 4 <= OH) w3_rows(d, SW, SH, 4, xc, oh, wb, bc, yc, v0, v1), oh += 4;
        if (oh < OH && OH >= 4) w3_rows(d, SW, SH, 4, xc, OH - 4, wb, bc, yc, v0, v1), oh = OH;   /* again rows before */
    } else {
        for (; oh + 2 <= OH; oh += 2) w3_rows(d, SW, SH, 2, xc, oh, wb, bc, yc, v0, v1);
        if (oh < OH && OH >= 2) w3_rows(d, SW, SH, 2, xc, OH - 2, wb, bc, yc, v0, v1), oh = OH;
    }
    for (; oh < OH; oh++) w3_rows(d, SW, SH, 1, xc, oh, wb, bc, yc, v0, v1);
}

static DSE_TARGET_AVX512VNNI void w3_plane_11(const dse_dw3 *d, const float *xc, const float *wc, const float *bc, float *yc) {
    w3_plane(d, 1, 1, xc, wc, bc, yc);
}
static DSE_TARGET_AVX512VNNI void w3_plane_21(const dse_dw3 *d, const float *xc, const float *wc, const float *bc, float *yc) {
    w3_plane(d, 1, 2, xc, wc, bc, yc);
}
static DSE_TARGET_AVX512VNNI void w3_plane_12(const dse_dw3 *d, const float *xc, const float *wc, const float *bc, float *yc) {
    w3_plane(d, 2, 1, xc, wc, bc, yc);
}
static DSE_TARGET_AVX512VNNI void w3_plane_22(const dse_dw3 *d, const float *xc, const float *wc, const float *bc, float *yc) {
    w3_plane(d, 2, 2, xc, wc, bc, yc);
}

void dse__avx512_dw3_plane(const dse_dw3 *d, const float *xc, const float *wc, const float *bc, float *yc) {
    static dse_dw3_plane_fn const planes[4] = {w3_plane_11, w3_plane_21, w3_plane_12, w3_plane_22};
    dse__dw3_run(d, planes, xc, wc, bc, yc);
}

#endif
