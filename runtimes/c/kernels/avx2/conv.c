/* conv.c (AVX2): float32 Conv with FMA. Same geometry and attributes as kernels/ref/conv.c
 * (1 to 3 spatial axes, groups, strides, dilations, pads, fused clamp); float32 weights and
 * bias (float16 ones are left to REF). The paths of dse__conv_f32_plan (kernels/ref/conv.c), all
 * giving each output element one sequential FMA chain in REF's tap order (c, kd, kh, kw),
 * then + bias, then the clamp:
 *   - GEMM (1x1, unit strides, no padding): Y[M, P] = W[M, C] X[C, P] per image and group,
 *     the SGEMM reading x in place;
 *   - DW (depthwise 1-D/2-D): per channel, the zero-padded plane split by the W stride into
 *     phases goes to scratch, then tiles of output rows x 8-column vectors;
 *   - BAND1/BANDS (other 1-D/2-D): for a band of output rows, every input channel's rows go to
 *     scratch, zero-padded (BAND1, unit strides: as they are, so that the band's outputs are
 *     rows of the padded width of which OW columns are stored) or once per kernel column kw
 *     (BANDS: shifted by kw, strided by sw, rows split by sh); each tap (c, kh, kw) is then a
 *     row of B at its offset in that buffer (B(k, j) = buf[off[k] + j]): the SGEMM with the
 *     weights as stored, reading B in place (nothing gathered per tap);
 *   - IM2COL (3-D): tiles of up to 128 output pixels gathered as panels of 16 x K.
 * Taps in the zero padding are multiplied in (0 * w) where REF skips them: the sum is the same
 * up to the sign of a zero (and NaN for an infinite weight). The scratch is planned by the
 * exporter for every float Conv; an artifact planned with less (written before this kernel)
 * is refused here, so REF runs it. Threads: the work is split over (image, group, band or
 * tile, block of output channels), or (image, channel) for depthwise; each part writes its
 * own outputs, with its own scratch. */
#include "avx2_f32.h"

#if DSE_AVX2_F32

#define CONV_NT 128   /* output pixels per im2col tile (dse__conv_f32_plan) */

int dse__check_conv_f32_avx2(const dse_model *m, const dse_node *n, dse_why *why) {
    dse_conv_geom g;
    if (dse__conv_f32_geom(m, n, &g, why)) return 1;
    const dse_tensor *w = dse__t(m, n->in[1]), *b = n->n_in == 3 ? dse__t(m, n->in[2]) : NULL;
    if (w->dtype != DSE_DTYPE_FLOAT32 || (b && b->dtype != DSE_DTYPE_FLOAT32)) {
        DSE_WHYF(why, F32_AVX2_NOT_COVERED, "float16 weights", 0, 0, 0, 0);
        return 1;
    }
    dse_conv_plan p;
    const size_t need = dse__conv_f32_plan(&g, &p);
    if (!dse__scratch_free(m, n, need)) {
        DSE_WHYF(why, F32_AVX2_NOT_COVERED, "scratch not planned", 0, 0, 0, 0);
        return 1;
    }
    why->scratch = need;
    why->scratch_plan = need;
    return 0;
}

typedef struct conv_job {
    const dse_ctx *cx;
    dse_conv_geom g;
    dse_conv_plan pl;
    int path;
    size_t cg, mg, K, P, isz, ntiles, msplit, mchunk;
    const float *x, *w, *b;
    float *y;
    int act;
    float lo, hi;
} conv_job;

/* im2col of output pixels [p0, p0 + nt) of one image and group into panels of 16 pixels:
 * dst[(p / 16) * K * 16 + k * 16 + p % 16] = x tap k of pixel p (0 in the padding); the last
 * panel's columns past nt are zeroed. */
static DSE_TARGET_AVX2 void conv_pack(const conv_job *j, const float *xg, size_t p0, size_t nt, float *dst) {
    const dse_conv_geom *g = &j->g;
    const size_t K = j->K, OW = g->out[2], OHW = g->out[1] * g->out[2];
    const size_t IH = g->in[1], IW = g->in[2], ID = g->in[0];
    const size_t npan = (nt + 15) / 16;
    if (nt % 16) {
        float *last = dst + (npan - 1) * K * 16;
        for (size_t k = 0; k < K; k++) memset(last + k * 16 + nt % 16, 0, (16 - nt % 16) * sizeof(float));
    }
    /* the tile's output rows: segments of consecutive pixels (at most one per pixel) */
    size_t seg_d[CONV_NT], seg_h[CONV_NT], seg_w[CONV_NT], seg_n[CONV_NT], nseg = 0;
    for (size_t p = p0; p < p0 + nt; nseg++) {
        seg_d[nseg] = p / OHW; seg_h[nseg] = p / OW % g->out[1]; seg_w[nseg] = p % OW;
        seg_n[nseg] = OW - seg_w[nseg] < p0 + nt - p ? OW - seg_w[nseg] : p0 + nt - p;
        p += seg_n[nseg];
    }
    size_t k = 0;
    for (size_t c = 0; c < j->cg; c++)
        for (int64_t kd = 0; kd < g->k[0]; kd++)
            for (int64_t kh = 0; kh < g->k[1]; kh++)
                for (int64_t kw = 0; kw < g->k[2]; kw++, k++) {
                    const int64_t offw = kw * g->d[2] - g->pb[2], sw = g->s[2];
                    /* output columns whose tap lies inside [0, IW): ow in [wlo, whi) */
                    const int64_t wlo = offw >= 0 ? 0 : (-offw + sw - 1) / sw;
                    const int64_t whi = (int64_t)IW - 1 - offw < 0 ? 0 : ((int64_t)IW - 1 - offw) / sw + 1;
                    size_t p = p0;
                    for (size_t sg = 0; sg < nseg; sg++) {
                        const size_t od = seg_d[sg], oh = seg_h[sg], ow0 = seg_w[sg], cnt = seg_n[sg];
                        const int64_t id = (int64_t)od * g->s[0] + kd * g->d[0] - g->pb[0];
                        const int64_t ih = (int64_t)oh * g->s[1] + kh * g->d[1] - g->pb[1];
                        const int rok = id >= 0 && id < (int64_t)ID && ih >= 0 && ih < (int64_t)IH;
                        const float *row = rok ? xg + ((c * ID + (size_t)id) * IH + (size_t)ih) * IW : NULL;
                        /* columns [ow0, ow0 + cnt): zero before wlo and from whi, else the tap */
                        int64_t a0 = wlo > (int64_t)ow0 ? wlo : (int64_t)ow0, a1 = whi < (int64_t)(ow0 + cnt) ? whi : (int64_t)(ow0 + cnt);
                        if (!rok || a1 < a0) a0 = a1 = (int64_t)(ow0 + cnt);
                        size_t q = p - p0, lane = q % 16;
                        float *d = dst + (q / 16) * K * 16 + k * 16 + lane;
                        const size_t jump = K * 16 - 16;   /* from lane 15 of a panel to lane 0 of the next */
                        int64_t ow = (int64_t)ow0;
                        for (; ow < a0; ow++) { *d++ = 0.0f; if (++lane == 16) { lane = 0; d += jump; } }
                        const float *src = rok ? row + ow * sw + offw : xg;   /* unused when !rok */
                        for (; ow < a1; ow++, src += sw) { *d++ = *src; if (++lane == 16) { lane = 0; d += jump; } }
                        for (; ow < (int64_t)(ow0 + cnt); ow++) { *d++ = 0.0f; if (++lane == 16) { lane = 0; d += jump; } }
                        p += cnt;
                    }
                }
}

/* One padded input row split by the W stride: padded column q = c + pl (c the input column,
 * zero outside [0, IW)) goes to phase q % sw at index q / sw, phase f at br + f * PS, L floats
 * per phase. */
static DSE_TARGET_AVX2 void conv_fill_row(float *br, size_t PS, const float *xr, size_t IW, size_t pl, size_t sw, size_t L) {
    const __m256 z = _mm256_setzero_ps();
    if (sw == 1) {   /* [pl zeros][x row][zeros to L] */
        size_t c = 0;
        for (; c < pl; c++) br[c] = 0.0f;
        float *d = br + pl;
        for (c = 0; c + 8 <= IW; c += 8) _mm256_storeu_ps(d + c, _mm256_loadu_ps(xr + c));
        for (; c < IW; c++) d[c] = xr[c];
        for (c = pl + IW; c < L; c++) br[c] = 0.0f;
        return;
    }
    size_t c = 0;
    if (sw == 2) {   /* deinterleave 16 columns at a time: even ones to one phase, odd to the other */
        /* column c (even) -> padded q = c + pl: phase pl & 1, index c / 2 + pl / 2;
         * column c + 1 -> phase 1 - (pl & 1), index c / 2 + (pl + 1) / 2 */
        float *ev = br + (pl & 1) * PS + pl / 2, *od = br + (1 - (pl & 1)) * PS + (pl + 1) / 2;
        for (; c + 16 <= IW && c + pl + 17 <= 2 * L; c += 16) {   /* (stays inside both phases) */
            const __m256 a = _mm256_loadu_ps(xr + c), b = _mm256_loadu_ps(xr + c + 8);
            const __m256 e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)), o = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
            _mm256_storeu_ps(ev + c / 2, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0))));
            _mm256_storeu_ps(od + c / 2, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), _MM_SHUFFLE(3, 1, 2, 0))));
        }
    }
    /* the rest, phase by phase (no division per element): padded columns q = ph + t*sw */
    for (size_t ph = 0; ph < sw; ph++) {
        float *d = br + ph * PS;
        size_t t = 0, q = ph;
        for (; t < L && q < pl; t++, q += sw) d[t] = 0.0f;                /* left padding */
        if (c && q - pl < c) { t = (pl + c - ph + sw - 1) / sw; q = ph + t * sw; }   /* done by the vector loop */
        for (; t < L && q - pl < IW; t++, q += sw) d[t] = xr[q - pl];
        for (; t + 8 <= L; t += 8) _mm256_storeu_ps(d + t, z);            /* right padding */
        for (; t < L; t++) d[t] = 0.0f;
    }
}

/* Depthwise tile: R output rows x V vectors of 8 columns (of the last one only OW % 8 are
 * stored when mlast), from output row oh and column ow: acc = fma over the taps, + bias,
 * clamp, store. Loads read whole vectors: past a phase row's end they read the next one, or
 * the 8 floats of slack after the plane (lanes never stored). */
#define CONV_AI static inline __attribute__((always_inline)) DSE_TARGET_AVX2
CONV_AI void conv_dw_tile(const conv_job *j, const int R, const int V, const int mlast, const float *prow, size_t rstep,
                          const uint64_t *tab, const float *wc, const float *bc, float *yr, size_t OW, size_t ow) {
    const size_t taps = (size_t)(j->g.k[1] * j->g.k[2]);
    __m256 acc[4][4];
    DSE_UNROLL
    for (int r = 0; r < R; r++)
        DSE_UNROLL
        for (int v = 0; v < V; v++) acc[r][v] = _mm256_setzero_ps();
    for (size_t t = 0; t < taps; t++) {
        const __m256 wv = _mm256_broadcast_ss(wc + t);
        const float *src = prow + tab[t] + ow;
        DSE_UNROLL
        for (int r = 0; r < R; r++)
            DSE_UNROLL
            for (int v = 0; v < V; v++) {
                acc[r][v] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(src + r * rstep + 8 * v), acc[r][v]);
            }
    }
    const __m256 bias = _mm256_set1_ps(bc ? *bc : 0.0f), lo = _mm256_set1_ps(j->lo), hi = _mm256_set1_ps(j->hi);
    DSE_UNROLL
    for (int r = 0; r < R; r++)
        DSE_UNROLL
        for (int v = 0; v < V; v++) {
            __m256 y = acc[r][v];
            if (bc) y = _mm256_add_ps(y, bias);
            if (j->act) y = _mm256_min_ps(hi, _mm256_max_ps(lo, y));
            float *d = yr + r * OW + ow + 8 * v;
            if (mlast && v == V - 1) {   /* OW % 8 columns (no vmaskmovps: slow on AMD Zen) */
                float t[8];
                _mm256_storeu_ps(t, y);
                for (size_t l = 0; l < OW % 8; l++) d[l] = t[l];
            } else {
                _mm256_storeu_ps(d, y);
            }
        }
}

#define CONV_DW_TILE(R, V, ML)                                                                               \
    static DSE_TARGET_AVX2 void conv_dw_tile##R##V##ML(const conv_job *j, const float *prow, size_t rstep,     \
                                                      const uint64_t *tab, const float *wc, const float *bc, \
                                                      float *yr, size_t OW, size_t ow) {         \
        conv_dw_tile(j, R, V, ML, prow, rstep, tab, wc, bc, yr, OW, ow);                                 \
    }
CONV_DW_TILE(1, 4, 0)
CONV_DW_TILE(1, 1, 0)
CONV_DW_TILE(1, 1, 1)
CONV_DW_TILE(1, 2, 0)
CONV_DW_TILE(1, 2, 1)
CONV_DW_TILE(1, 3, 0)
CONV_DW_TILE(1, 3, 1)
CONV_DW_TILE(2, 2, 0)
CONV_DW_TILE(2, 2, 1)
CONV_DW_TILE(4, 1, 0)
CONV_DW_TILE(4, 1, 1)
CONV_DW_TILE(3, 1, 0)
CONV_DW_TILE(3, 1, 1)
CONV_DW_TILE(2, 1, 0)
CONV_DW_TILE(2, 1, 1)

typedef void (*conv_dw_tile_fn)(const conv_job *, const float *, size_t, const uint64_t *, const float *, const float *,
                                float *, size_t, size_t);

/* Depthwise: one channel. The padded plane (PH rows; per row sw phases of L floats, phase q
 * holding padded columns q, q + sw, ...) goes to buf; then tiles of output rows x columns,
 * acc = fma over the taps (kh, kw) of w * plane[oh*sh + kh*dh][ow*sw + kw*dw] (the tap's
 * offset tab[t]), in tap order. */
static DSE_TARGET_AVX2 void conv_dw_channel(const conv_job *j, const float *xc, const float *wc, const float *bc, float *yc,
                                            const uint64_t *tab, float *buf) {
    const dse_conv_geom *g = &j->g;
    const size_t IH = g->in[1], IW = g->in[2], OH = g->out[1], OW = g->out[2];
    const size_t pt = (size_t)g->pb[1], pl = (size_t)g->pb[2], sw = (size_t)g->s[2];
    const size_t PH = IH + pt + (size_t)g->pe[1], PW = IW + pl + (size_t)g->pe[2], L = (PW + sw - 1) / sw;
    for (size_t r = 0; r < PH; r++) {
        float *br = buf + r * sw * L;
        if (r < pt || r - pt >= IH) { memset(br, 0, sw * L * sizeof(float)); continue; }
        conv_fill_row(br, L, xc + (r - pt) * IW, IW, pl, sw, L);
    }
    const size_t rstep = (size_t)g->s[1] * sw * L, nvec = (OW + 7) / 8, ml = OW % 8 != 0;
    /* rows per tile: 4 when a row is one vector, 2 when two, else 1 */
    const size_t R = nvec == 1 ? 4 : nvec == 2 ? 2 : 1;
    conv_dw_tile_fn rowfn = nvec == 1 ? (ml ? conv_dw_tile111 : conv_dw_tile110)
                          : nvec == 2 ? (ml ? conv_dw_tile121 : conv_dw_tile120) : NULL;
    conv_dw_tile_fn rows3 = ml ? conv_dw_tile311 : conv_dw_tile310, rows2 = ml ? conv_dw_tile211 : conv_dw_tile210;
    conv_dw_tile_fn tilefn = nvec == 1 ? (ml ? conv_dw_tile411 : conv_dw_tile410)
                           : nvec == 2 ? (ml ? conv_dw_tile221 : conv_dw_tile220) : NULL;
    for (size_t oh = 0; oh < OH;) {
        float *yr = yc + oh * OW;
        const float *prow = buf + oh * rstep;
        if (R > 1) {
            if (oh + R <= OH) { tilefn(j, prow, rstep, tab, wc, bc, yr, OW, 0); oh += R; }
            else if (R == 4 && oh + 3 <= OH) { rows3(j, prow, rstep, tab, wc, bc, yr, OW, 0); oh += 3; }
            else if (R == 4 && oh + 2 <= OH) { rows2(j, prow, rstep, tab, wc, bc, yr, OW, 0); oh += 2; }
            else { rowfn(j, prow, rstep, tab, wc, bc, yr, OW, 0); oh++; }
            continue;
        }
        size_t ow = 0, v = nvec;
        for (; v > 4 || (v == 4 && !ml); v -= 4, ow += 32) conv_dw_tile140(j, prow, rstep, tab, wc, bc, yr, OW, ow);
        switch (v) {
        case 4: conv_dw_tile130(j, prow, rstep, tab, wc, bc, yr, OW, ow); ow += 24;   /* 3 full + 1 masked */
                conv_dw_tile111(j, prow, rstep, tab, wc, bc, yr, OW, ow); break;
        case 3: (ml ? conv_dw_tile131 : conv_dw_tile130)(j, prow, rstep, tab, wc, bc, yr, OW, ow); break;
        case 2: (ml ? conv_dw_tile121 : conv_dw_tile120)(j, prow, rstep, tab, wc, bc, yr, OW, ow); break;
        case 1: (ml ? conv_dw_tile111 : conv_dw_tile110)(j, prow, rstep, tab, wc, bc, yr, OW, ow); break;
        default: break;
        }
        oh++;
    }
}

/* BAND*: each tap's offset in the band buffer. BAND1: tap (c, kh, kw) reads channel c's padded
 * rows from row kh*dh, column kw*dw; BANDS: channel c's plane (kw, (kh*dh) % sh) from row
 * (kh*dh) / sh. */
static void conv_band_offsets(const conv_job *j, uint64_t *tab) {
    const dse_conv_geom *g = &j->g;
    const size_t sh = (size_t)g->s[1], OW = g->out[2], PL = j->pl.NRp * OW;
    size_t k = 0;
    for (size_t c = 0; c < j->cg; c++)
        for (size_t kh = 0; kh < (size_t)g->k[1]; kh++)
            for (size_t kw = 0; kw < (size_t)g->k[2]; kw++, k++) {
                const size_t y = kh * (size_t)g->d[1];
                if (j->path == DSE_CONV_BAND1) tab[k] = c * j->pl.CS + y * j->pl.Lw + kw * (size_t)g->d[2];
                else tab[k] = c * j->pl.CS + (kw * sh + y % sh) * PL + y / sh * OW;
            }
}

/* BAND1: the band from output row oh0: channel c's row i is padded input row oh0 + i (Lw floats,
 * zero outside the input); then 16 floats of slack. */
static DSE_TARGET_AVX2 void conv_band1_fill(const conv_job *j, const float *xg, size_t oh0, float *band) {
    const dse_conv_geom *g = &j->g;
    const size_t IH = g->in[1], IW = g->in[2], pt = (size_t)g->pb[1], pl = (size_t)g->pb[2], Lw = j->pl.Lw;
    for (size_t c = 0; c < j->cg; c++) {
        const float *xc = xg + c * j->isz;
        float *bc = band + c * j->pl.CS;
        for (size_t i = 0; i < j->pl.NRp; i++) {
            const size_t y = oh0 + i;
            if (y < pt || y - pt >= IH) memset(bc + i * Lw, 0, Lw * sizeof(float));
            else conv_fill_row(bc + i * Lw, Lw, xc + (y - pt) * IW, IW, pl, 1, Lw);
        }
    }
    memset(band + j->cg * j->pl.CS, 0, 16 * sizeof(float));
}

/* BANDS: the band from output row oh0: channel c's plane (kw, fy) row i column ow holds the input
 * at padded row oh0*sh + fy + i*sh, padded column ow*sw + kw*dw (zero outside the input); then
 * 16 floats of slack. */
static DSE_TARGET_AVX2 void conv_band_fill(const conv_job *j, const float *xg, size_t oh0, float *band) {
    const dse_conv_geom *g = &j->g;
    const size_t sh = (size_t)g->s[1], sw = (size_t)g->s[2], OW = g->out[2], NRp = j->pl.NRp, PL = NRp * OW;
    const size_t IH = g->in[1], IW = g->in[2], pt = (size_t)g->pb[1];
    for (size_t c = 0; c < j->cg; c++) {
        const float *xc = xg + c * j->isz;
        float *bc = band + c * j->pl.CS;
        for (size_t fy = 0; fy < sh; fy++)
            for (size_t i = 0; i < NRp; i++) {
                const size_t y = oh0 * sh + fy + i * sh;   /* padded row */
                const int live = y >= pt && y - pt < IH;
                const float *xr = live ? xc + (y - pt) * IW : NULL;
                for (size_t kw = 0; kw < (size_t)g->k[2]; kw++) {
                    float *d = bc + (kw * sh + fy) * PL + i * OW;
                    if (!live) { memset(d, 0, OW * sizeof(float)); continue; }
                    /* d[ow] = x[ow*sw + off] for the columns inside the input, else 0 */
                    const int64_t off = (int64_t)kw * g->d[2] - g->pb[2], s = (int64_t)sw;
                    int64_t lo = off >= 0 ? 0 : (-off + s - 1) / s;
                    int64_t hi = (int64_t)IW - 1 - off < 0 ? 0 : ((int64_t)IW - 1 - off) / s + 1;
                    if (hi > (int64_t)OW) hi = (int64_t)OW;
                    if (lo > hi) lo = hi;
                    int64_t ow = 0;
                    for (; ow < lo; ow++) d[ow] = 0.0f;
                    const float *src = xr + ow * s + off;
                    if (s == 1) {
                        for (; ow + 8 <= hi; ow += 8, src += 8) _mm256_storeu_ps(d + ow, _mm256_loadu_ps(src));
                    } else if (s == 2) {   /* the even ones of 16 (reads src[15]: inside the row while ow + 8 < hi) */
                        for (; ow + 8 < hi; ow += 8, src += 16) {
                            const __m256 a = _mm256_loadu_ps(src), b = _mm256_loadu_ps(src + 8);
                            const __m256 e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
                            _mm256_storeu_ps(d + ow, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0))));
                        }
                    }
                    for (; ow < hi; ow++, src += s) d[ow] = *src;
                    for (; ow < (int64_t)OW; ow++) d[ow] = 0.0f;
                }
            }
    }
    memset(band + j->cg * j->pl.CS, 0, 16 * sizeof(float));
}

static DSE_TARGET_AVX2 void conv_task(void *arg, size_t begin, size_t end, unsigned worker) {
    const conv_job *j = arg;
    const dse_conv_geom *g = &j->g;
    float *scratch = (float *)dse__worker_scratch(j->cx, worker);
    const size_t osz = j->P;
    for (size_t it = begin; it < end; it++) {
        if (j->path == DSE_CONV_DW) {
            const size_t nc = it, c = nc % g->C, taps = (size_t)(g->k[1] * g->k[2]);   /* nc: image * C + channel */
            uint64_t *tab = (uint64_t *)(void *)scratch;
            if (it == begin) {   /* each tap's offset in the padded plane (after the table) */
                const size_t KW = (size_t)g->k[2], sw = (size_t)g->s[2];
                const size_t L = (g->in[2] + (size_t)(g->pb[2] + g->pe[2]) + sw - 1) / sw;
                for (size_t t = 0; t < taps; t++) {
                    const size_t off = t % KW * (size_t)g->d[2];
                    tab[t] = t / KW * (size_t)g->d[1] * sw * L + off % sw * L + off / sw;
                }
            }
            conv_dw_channel(j, j->x + nc * j->isz, j->w + c * taps, j->b ? j->b + c : NULL, j->y + nc * osz, tab,
                            (float *)(void *)(tab + taps));
            continue;
        }
        size_t r = it;
        const size_t mc = r % j->msplit; r /= j->msplit;
        const size_t tile = r % j->ntiles; r /= j->ntiles;
        const size_t grp = r % g->G, img = r / g->G;
        size_t p0 = tile * CONV_NT, nt = j->P - p0 < CONV_NT ? j->P - p0 : CONV_NT;
        if (j->path == DSE_CONV_BAND1 || j->path == DSE_CONV_BANDS) {   /* a band of output rows: tile = its index */
            const size_t OW = g->out[2], rows = g->out[1] - tile * j->pl.R < j->pl.R ? g->out[1] - tile * j->pl.R : j->pl.R;
            p0 = tile * j->pl.R * OW;
            nt = j->path == DSE_CONV_BAND1 ? (rows - 1) * j->pl.Lw + OW : rows * OW;   /* BAND1: rows of Lw */
        }
        const size_t m0 = mc * j->mchunk, m1 = m0 + j->mchunk < j->mg ? m0 + j->mchunk : j->mg;
        if (m0 >= m1) continue;
        const float *xg = j->x + (img * g->C + grp * j->cg) * j->isz;
        float *yg = j->y + (img * g->M + grp * j->mg) * osz;
        dse_sgemm s;
        memset(&s, 0, sizeof s);
        s.K = j->K;
        s.A = j->w + grp * j->mg * j->K; s.sai = j->K; s.sak = 1;
        s.C = yg + p0; s.ldc = osz;
        s.bias_m = j->b ? j->b + grp * j->mg : NULL;
        s.act = j->act; s.lo = j->lo; s.hi = j->hi;
        if (j->path == DSE_CONV_GEMM) {
            s.B = xg + p0; s.ldb = j->isz;
        } else if (j->path == DSE_CONV_BAND1 || j->path == DSE_CONV_BANDS) {
            uint64_t *tab = (uint64_t *)(void *)scratch;
            float *band = (float *)(void *)(tab + j->K);
            if (sizeof(size_t) != sizeof(uint64_t)) continue;   /* (x86-64 only) */
            conv_band_offsets(j, tab);
            if (j->path == DSE_CONV_BAND1) {
                conv_band1_fill(j, xg, tile * j->pl.R, band);
                s.cw = j->pl.Lw; s.cv = g->out[2];
            } else {
                conv_band_fill(j, xg, tile * j->pl.R, band);
            }
            s.B = band; s.boff = (const size_t *)(const void *)tab;
        } else {
            conv_pack(j, xg, p0, nt, scratch);
            s.B = scratch; s.bpanel = j->K * 16; s.ldb = 16;
        }
        dse__avx2_sgemm(&s, m0, m1, 0, nt);
    }
}

void dse_f32_conv__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    conv_job j;
    dse_why why;
    memset(&j, 0, sizeof j);
    dse__conv_f32_geom(m, n, &j.g, &why);   /* validated at load */
    const dse_conv_geom *g = &j.g;
    j.cx = cx;
    dse__conv_f32_plan(g, &j.pl);
    j.path = j.pl.path;
    j.cg = g->C / g->G; j.mg = g->M / g->G;
    j.K = j.cg * (size_t)(g->k[0] * g->k[1] * g->k[2]);
    j.P = g->out[0] * g->out[1] * g->out[2];
    j.isz = g->in[0] * g->in[1] * g->in[2];
    j.x = dse__data(m, arena, n->in[0]);
    j.w = dse__data(m, arena, n->in[1]);
    j.b = n->n_in == 3 && n->in[2] != DSE_NONE ? dse__data(m, arena, n->in[2]) : NULL;
    j.y = dse__data(m, arena, n->out[0]);
    j.act = dse__nn_act(n, &j.lo, &j.hi);
    if (!j.P || !g->M) return;
    size_t items;
    if (j.path == DSE_CONV_DW) {
        items = g->N * g->C;
    } else {
        j.ntiles = j.path == DSE_CONV_BAND1 || j.path == DSE_CONV_BANDS ? (g->out[1] + j.pl.R - 1) / j.pl.R
                                                                        : (j.P + CONV_NT - 1) / CONV_NT;
        const size_t threads = dse__threads(cx), units = g->N * g->G * j.ntiles;
        j.msplit = 1;
        if (threads > 1 && units < 4 * threads) {   /* too few tiles to share: split the channels */
            size_t blocks = (j.mg + 5) / 6;
            j.msplit = threads * 4 / units + 1;
            if (j.msplit > blocks) j.msplit = blocks;
        }
        j.mchunk = ((j.mg + 5) / 6 + j.msplit - 1) / j.msplit * 6;
        items = units * j.msplit;
    }
    dse__parallel(cx, items, 1, conv_task, &j);
}

#endif
