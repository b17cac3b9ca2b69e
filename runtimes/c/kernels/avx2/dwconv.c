/* dwconv.c (AVX2): the float32 depthwise 3x3 Conv (2-D, one input and one output channel per
 * group, dilation 1, strides 1 or 2 on each axis, any padding) read directly from the NCHW planes:
 * the DW3 path of kernels/avx2/conv.c (which takes such nodes from its DW and DW8 paths).
 *
 * Vectors run along W: 8 output columns. An output vector at column ow of output row oh reads,
 * for tap (kh, kw), input row oh*sh + kh - pt and the input columns c + kw + sw*l (lane l,
 * c = ow*sw - pl) where they lie in x: with sw = 1, three unaligned loads per input row (columns
 * c, c + 1, c + 2); with sw = 2, loads at c, c + 8, c + 2, c + 10, their even and odd columns
 * taken by vshufps (the lanes then hold the outputs in the order 0 1 4 5 2 3 6 7, put back by
 * one vpermpd per output vector). A tile is R output rows x 1 vector (R = 8 for sh = 1, 2 for
 * sh = 2): each input row is loaded once for the outputs of the tile that use it. Vectors whose
 * columns leave [0, IW) (the edges, narrow planes) load with vmaskmovps, the columns outside the
 * input as 0; input rows in the zero padding are read from a zero row (zrow, IW floats of the
 * worker's scratch). Nothing is copied: no padded plane, no transpose. (Measured, BENCHMARKS.md
 * session 17: tap-outer orders with the row vectors or the weights as FMA memory operands, tiles
 * of 4 x 2 vectors, and other stride-2 tile heights were no faster with gcc 12.)
 *
 * Arithmetic: the bytes of conv.c's DW and DW8 paths. Each output is one FMA chain from +0 over
 * the taps in REF's order (kh, kw), the taps in the zero padding included (w * 0: the sum is
 * REF's up to the sign of a zero, and NaN for an infinite weight, as those paths), then + bias,
 * then the clamp (max with lo, min with hi), then the fused activation function: HardSwish in
 * the tile's epilogue, SiLU over the channel's plane after (dse__avx2_act_fn_row, while it is
 * in L1/L2). One channel plane is one part of the work (conv.c splits over image x channel), so
 * the bytes do not depend on the thread count. */
#include "avx2_f32.h"

#if DSE_AVX2_F32

int dse__avx2_dw3_takes(const dse_conv_geom *g) {
    return g->G == g->C && g->M == g->C && g->in[0] == 1 && g->k[0] == 1 && g->pb[0] == 0 && g->pe[0] == 0 &&
           g->k[1] == 3 && g->k[2] == 3 && g->d[1] == 1 && g->d[2] == 1 && (g->s[1] == 1 || g->s[1] == 2) &&
           (g->s[2] == 1 || g->s[2] == 2) && g->in[2] < ((size_t)1 << 30);   /* (columns as int32 lanes) */
}

/* The lanes l whose input column c + l lies in [0, IW). */
DSE_AI __m256i dw3_mask(ptrdiff_t c, size_t IW) {
    const __m256i col = _mm256_add_epi32(_mm256_set1_epi32((int)c), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    return _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_setzero_si256(), col),
                               _mm256_cmpgt_epi32(_mm256_set1_epi32((int)IW), col));
}

/* 8 floats of row r from column c: a plain load, or (EDGE) a masked one (0 outside the input). */
DSE_AI __m256 dw3_ld(const int EDGE, const float *r, ptrdiff_t c, __m256i m) {
    if (!EDGE) return _mm256_loadu_ps(r + c);
    return _mm256_maskload_ps((const float *)((uintptr_t)r + (uintptr_t)(c * (ptrdiff_t)sizeof(float))), m);
}

/* One tile: R output rows x V vectors of 8 columns from input column c (SW = 2: lanes in the
 * shuffled order; the callers use V = 1). rows[i]: input row i of the tile (oh0*SH + i - pt, or
 * zrow); acc[r][v] takes tap (kh, kw) from input row r*SH + kh. Input row by row: its three
 * vectors (kw = 0, 1, 2; SW = 2: shuffled from four loads) go to the output rows that use it, so
 * each acc[r][v] sees its taps in (kh, kw) order: R x V independent FMA chains. */
DSE_AI void dw3_tile(const int SW, const int SH, const int R, const int V, const int EDGE, const float *const *rows,
                     ptrdiff_t c, size_t IW, const __m256 *wb, __m256 (*acc)[2]) {
    DSE_UNROLL
    for (int r = 0; r < R; r++)
        DSE_UNROLL
        for (int v = 0; v < V; v++) acc[r][v] = _mm256_setzero_ps();
    DSE_UNROLL
    for (int i = 0; i < (R - 1) * SH + 3; i++) {
        __m256 d[2][3];
        const int V1 = SW == 1 ? V : 0, V2 = SW == 2 ? V : 0;   /* (a plain bound: GCC at -O0 refuses the
                                                                   unroll pragma on a compound condition) */
        DSE_UNROLL
        for (int v = 0; v < V1; v++) {
            DSE_UNROLL
            for (int kw = 0; kw < 3; kw++) d[v][kw] = dw3_ld(EDGE, rows[i], c + 8 * v + kw, EDGE ? dw3_mask(c + 8 * v + kw, IW) : _mm256_setzero_si256());
        }
        DSE_UNROLL
        for (int v = 0; v < V2; v++) {
            const ptrdiff_t cc = c + 16 * v;
            __m256i m0 = _mm256_setzero_si256(), m1 = m0, m2 = m0, m3 = m0;
            if (EDGE) m0 = dw3_mask(cc, IW), m1 = dw3_mask(cc + 8, IW), m2 = dw3_mask(cc + 2, IW), m3 = dw3_mask(cc + 10, IW);
            const __m256 a = dw3_ld(EDGE, rows[i], cc, m0), b = dw3_ld(EDGE, rows[i], cc + 8, m1);
            const __m256 a2 = dw3_ld(EDGE, rows[i], cc + 2, m2), b2 = dw3_ld(EDGE, rows[i], cc + 10, m3);
            d[v][0] = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
            d[v][1] = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
            d[v][2] = _mm256_shuffle_ps(a2, b2, _MM_SHUFFLE(2, 0, 2, 0));
        }
        DSE_UNROLL
        for (int r = 0; r < R; r++) {
            const int kh = i - r * SH;
            if (kh < 0 || kh > 2) continue;
            DSE_UNROLL
            for (int kw = 0; kw < 3; kw++) {
                DSE_UNROLL
                for (int v = 0; v < V; v++) acc[r][v] = _mm256_fmadd_ps(wb[kh * 3 + kw], d[v][kw], acc[r][v]);
            }
        }
    }
}

/* Bias, clamp, inline activation and the store of output row r's vectors at column ow (n columns
 * in all, n <= 8 V; more: the plane's rows from the tile's first on). A partial vector (a row of
 * fewer than 8 columns) is stored whole when its extra lanes land in the plane's rows below, which
 * are stored after (the tile's rows in order, then the next tiles). */
DSE_AI void dw3_store(const dse_dw3 *d, const int SW, const int R, const int V, __m256 (*acc)[2], const float *bc,
                      float *yr, size_t ow, size_t n, size_t more) {
    const __m256 bias = _mm256_set1_ps(bc ? *bc : 0.0f), lo = _mm256_set1_ps(d->lo), hi = _mm256_set1_ps(d->hi);
    DSE_UNROLL
    for (int r = 0; r < R; r++)
        DSE_UNROLL
        for (int v = 0; v < V; v++) {
            __m256 y = acc[r][v];
            if (SW == 2) y = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(y), _MM_SHUFFLE(3, 1, 2, 0)));
            if (bc) y = _mm256_add_ps(y, bias);
            if (d->act) y = _mm256_min_ps(hi, _mm256_max_ps(lo, y));
            if (d->act_fn && DSE_ACT_FN_INLINE(d->act_fn)) y = dse__avx2_act_fn_inline(d->act_fn, y);
            float *o = yr + (size_t)r * d->OW + ow + 8 * (size_t)v;
            const size_t k = n - 8 * (size_t)v;
            if (k >= 8 || ow + 8 * (size_t)v + 8 <= (more - (size_t)r) * d->OW) {
                _mm256_storeu_ps(o, y);
            } else {   /* (no vmaskmovps store: slow on AMD Zen) */
                float t[8];
                _mm256_storeu_ps(t, y);
                for (size_t l = 0; l < k; l++) o[l] = t[l];
            }
        }
}

/* R output rows from row oh0, vector by vector (V = 1; the last one ends at the row's end, its
 * columns before computed again with the same bytes, when the row has 8 or more), with plain loads
 * when the vector's columns lie inside [v0, v1), else masked ones. */
DSE_AI void dw3_rows(const dse_dw3 *d, const int SW, const int SH, const int R, const int V, const float *xc, size_t oh0,
                     const __m256 *wb, const float *bc, float *yc) {
    const float *rows[(8 - 1) * 2 + 3];
    DSE_UNROLL
    for (int i = 0; i < (R - 1) * SH + 3; i++) {
        const ptrdiff_t ih = (ptrdiff_t)(oh0 * SH) + i - (ptrdiff_t)d->pt;
        rows[i] = ih >= 0 && ih < (ptrdiff_t)d->IH ? xc + (size_t)ih * d->IW : d->zrow;
    }
    float *yr = yc + oh0 * d->OW;
    const size_t OW = d->OW;
    __m256 acc[8][2];
    size_t ow = 0;
    for (; ow + 8 <= OW; ow += 8) {
        const ptrdiff_t c = (ptrdiff_t)(ow * SW) - (ptrdiff_t)d->pl;
        if (ow >= d->v0 && ow < d->v1) dw3_tile(SW, SH, R, V, 0, rows, c, d->IW, wb, acc);
        else dw3_tile(SW, SH, R, V, 1, rows, c, d->IW, wb, acc);
        dw3_store(d, SW, R, V, acc, bc, yr, ow, 8, d->OH - oh0);
    }
    if (ow < OW) {   /* the last vector, ending at the row's end */
        ow = OW >= 8 ? OW - 8 : 0;
        const ptrdiff_t c = (ptrdiff_t)(ow * SW) - (ptrdiff_t)d->pl;
        if (ow >= d->v0 && ow < d->v1) dw3_tile(SW, SH, R, V, 0, rows, c, d->IW, wb, acc);
        else dw3_tile(SW, SH, R, V, 1, rows, c, d->IW, wb, acc);
        dw3_store(d, SW, R, V, acc, bc, yr, ow, OW >= 8 ? 8 : OW, d->OH - oh0);
    }
}

/* The plane: tiles of 8 output rows (stride 1; 4 for stride 2), then one of 4 (2), then the last
 * rows by a tile of 4 (2) ending at the last row, which computes again (the same bytes) rows stored
 * before; the tile's rows are as many FMA chains, 8 or 4 in flight (FMA's latency is 4 cycles). */
DSE_AI void dw3_plane(const dse_dw3 *d, const int SW, const int SH, const float *xc, const float *wc, const float *bc,
                      float *yc) {
    __m256 wb[9];   /* the weights, broadcast once per plane */
    DSE_UNROLL
    for (int t = 0; t < 9; t++) wb[t] = _mm256_broadcast_ss(wc + t);
    size_t oh = 0;
    const size_t OH = d->OH;
    if (SH == 1) {
        for (; oh + 8 <= OH; oh += 8) dw3_rows(d, SW, SH, 8, 1, xc, oh, wb, bc, yc);
        if (oh + 4 <= OH) dw3_rows(d, SW, SH, 4, 1, xc, oh, wb, bc, yc), oh += 4;
        if (oh < OH && OH >= 4) dw3_rows(d, SW, SH, 4, 1, xc, OH - 4, wb, bc, yc), oh = OH;   /* again rows before */
    } else {
        for (; oh + 2 <= OH; oh += 2) dw3_rows(d, SW, SH, 2, 1, xc, oh, wb, bc, yc);
        if (oh < OH && OH >= 2) dw3_rows(d, SW, SH, 2, 1, xc, OH - 2, wb, bc, yc), oh = OH;
    }
    for (; oh < OH; oh++) dw3_rows(d, SW, SH, 1, 1, xc, oh, wb, bc, yc);
}

static DSE_TARGET_AVX2 void dw3_plane_11(const dse_dw3 *d, const float *xc, const float *wc, const float *bc, float *yc) {
    dw3_plane(d, 1, 1, xc, wc, bc, yc);
}
static DSE_TARGET_AVX2 void dw3_plane_21(const dse_dw3 *d, const float *xc, const float *wc, const float *bc, float *yc) {
    dw3_plane(d, 1, 2, xc, wc, bc, yc);
}
static DSE_TARGET_AVX2 void dw3_plane_12(const dse_dw3 *d, const float *xc, const float *wc, const float *bc, float *yc) {
    dw3_plane(d, 2, 1, xc, wc, bc, yc);
}
static DSE_TARGET_AVX2 void dw3_plane_22(const dse_dw3 *d, const float *xc, const float *wc, const float *bc, float *yc) {
    dw3_plane(d, 2, 2, xc, wc, bc, yc);
}

void dse__avx2_dw3_init(dse_dw3 *d, const dse_conv_geom *g, int act, float lo, float hi, int act_fn) {
    memset(d, 0, sizeof *d);
    d->IH = g->in[1], d->IW = g->in[2], d->OH = g->out[1], d->OW = g->out[2];
    d->pt = (size_t)g->pb[1], d->pl = (size_t)g->pb[2], d->sh = (size_t)g->s[1], d->sw = (size_t)g->s[2];
    d->act = act, d->lo = lo, d->hi = hi, d->act_fn = act_fn;
    d->act_row = dse__avx2_act_fn_row;
    /* interior vectors: ow a multiple of 8 with c = ow*sw - pl >= 0 and c + span <= IW (span: the
     * columns the loads read, 10 for sw 1, 18 for sw 2) */
    const size_t span = d->sw == 1 ? 10 : 18;
    d->v0 = (d->pl + d->sw - 1) / d->sw;
    d->v1 = d->IW + d->pl >= span ? (d->IW + d->pl - span) / d->sw + 1 : 0;   /* ow < v1 <=> ow*sw + span <= IW + pl */
}

void dse__dw3_run(const dse_dw3 *d, dse_dw3_plane_fn const planes[4], const float *xc, const float *wc, const float *bc, float *yc) {
    planes[(d->sw - 1) * 2 + (d->sh - 1)](d, xc, wc, bc, yc);
    if (d->act_fn && !DSE_ACT_FN_INLINE(d->act_fn)) d->act_row(d->act_fn, yc, d->OH * d->OW);
}

void dse__avx2_dw3_plane(const dse_dw3 *d, const float *xc, const float *wc, const float *bc, float *yc) {
    static dse_dw3_plane_fn const planes[4] = {dw3_plane_11, dw3_plane_21, dw3_plane_12, dw3_plane_22};
    dse__dw3_run(d, planes, xc, wc, bc, yc);
}

#endif
