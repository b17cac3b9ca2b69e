/* conv.c (AVX2): float32 Conv with FMA. Same geometry and attributes as kernels/ref/conv.c
 * (1 to 3 spatial axes, groups, strides, dilations, pads, fused clamp); float32 weights and
 * bias (float16 ones are left to REF). The paths of dse__conv_f32_plan (kernels/ref/conv.c), all
 * giving each output element one sequential FMA chain in REF's tap order (c, kd, kh, kw),
 * then + bias, then the clamp:
 *   - GEMM (1x1, unit strides, no padding): Y[M, P] = W[M, C] X[C, P] per image and group, x's
 *     columns packed by the SGEMM (or read in place when the artifact planned no scratch);
 *   - O32 (GEMM with the weight in layout 8, which the exporter chooses for small images: panels
 *     of 32 output channels, k-major, docs/format.md §4.4): the output channels in the lanes, a
 *     tile of 3 pixels x 32 channels (12 accumulators; per k 4 vectors of the panel and 3
 *     broadcast pixels of x's row k), k in chunks of CONV_O32_KC (the panel's chunk and x's stay
 *     in L1; the accumulators wait in scratch between chunks: the same float chain), then the
 *     epilogue and an 8x8 transpose into the output rows (conv_o32_task). A 7x7 image (49
 *     pixels) fills every lane, where the SGEMM's 16-pixel tiles leave a 1-column tail;
 *   - DW8 (depthwise, narrow or strided rows): 8 channels at a time, the zero-padded
 *     planes transposed (lane = channel), 4 output pixels per step, transposed back;
 *   - DW (other depthwise 1-D/2-D): per channel, the zero-padded plane split by the W stride
 *     into phases goes to scratch, then tiles of output rows x 8-column vectors (3x3: the
 *     weights broadcast once per channel);
 *   - DW3 (a DW8 or DW node that is 2-D, 3x3, dilation 1, strides 1 or 2: dwconv.c): per channel,
 *     the plane read where it lies (no copy), tiles of output rows x one 8-column vector;
 *   - BAND1/BANDS (other 1-D/2-D): for a band of output rows, every input channel's rows go to
 *     scratch, zero-padded (BAND1, unit strides: as they are, so that the band's outputs are
 *     rows of the padded width of which OW columns are stored) or once per kernel column kw
 *     (BANDS: shifted by kw, strided by sw, rows split by sh); each tap (c, kh, kw) is then a
 *     row of B at its offset in that buffer (B(k, j) = buf[off[k] + j]): the SGEMM with the
 *     weights as stored, reading B in place (nothing gathered per tap);
 *     BANDS runs as BANDT (conv_bandt_fill) where it fits BANDS' floats and copies no more: one plane
 *     per tap, so that B is row-major (1x1 strided convs, bands of few rows);
 *   - IM2COL (3-D): tiles of up to 128 output pixels gathered as panels of 16 x K
 *     (dse_f32_conv_im2col, kernels/ref/loops.c);
 *   - IMGS (group 1, images of fewer than 16 output pixels in a batch of several: 1-D convs over
 *     frames, small feature maps; dse__conv_f32_imgs_plan, taken before the paths above when its
 *     scratch was planned): the product of one image is too narrow for the SGEMM's tiles, so a tile
 *     runs across images, column u = (image u / P, pixel u % P), gathered as im2col panels of 16 x K,
 *     into C (M x TW) in scratch, then copied out per image.
 * Taps in the zero padding are multiplied in (0 * w) where REF skips them: the sum is the same
 * up to the sign of a zero (and NaN for an infinite weight). The scratch is planned by the
 * exporter for every float Conv; an artifact planned with less (written before this kernel), or
 * whose scratch region holds a tensor live at this node, is refused here (dse__scratch_free) so
 * REF runs it (the GEMM path runs without scratch). Threads: the work is split over (image, group, band or
 * tile, block of output channels), or (image, channel) for depthwise; each part writes its
 * own outputs, with its own scratch. */
#include "avx2_f32.h"
#include "conv_imgs.h"

#if DSE_AVX2_F32

#define CONV_NT 128   /* output pixels per im2col tile (dse__conv_f32_plan) */

int dse__avx2_conv_f32_geom(const dse_model *m, const dse_node *n, dse_conv_geom *g, dse_why *why) {
    if (dse__conv_f32_geom(m, n, g, why)) return 1;
    const dse_tensor *w = dse__t(m, n->in[1]), *b = n->n_in == 3 ? dse__t(m, n->in[2]) : NULL;
    if (w->dtype != DSE_DTYPE_FLOAT32 || (b && b->dtype != DSE_DTYPE_FLOAT32)) {
        DSE_WHYF(why, F32_AVX2_NOT_COVERED, "float16 weights", 0, 0, 0, 0);
        return 1;
    }
    why->scratch_plan = dse__conv_f32_scratch_plan(g);   /* the direct and the Winograd variants' */
    why->act_fns = dse__act_fns(m, 1);   /* every path applies it (the SGEMM tile, DW, DW8, Winograd), SiLU
                                          * with the AVX2 Sigmoid's bytes (avx2_f32.h dse__avx2_act_fn_n) */
    return 0;
}

/* O32: the scratch of one part, the accumulators of 32 channels x P pixels (p-major) */
static size_t conv_o32_scratch(const dse_conv_geom *g) { return 4 * 32 * g->out[0] * g->out[1] * g->out[2]; }

int dse__check_conv_f32_avx2(const dse_model *m, const dse_node *n, dse_why *why) {
    dse_conv_geom g;
    if (dse__avx2_conv_f32_geom(m, n, &g, why)) return 1;
    dse_conv_plan p;
    size_t need = dse__conv_f32_plan(&g, &p);
    if (dse__t(m, n->in[1])->layout == DSE_LAYOUT_F32_O32) {   /* O32: a 1x1 conv, group 1, with its scratch */
        if (p.path != DSE_CONV_GEMM || g.G != 1 || !dse__scratch_free(m, n, conv_o32_scratch(&g))) {
            DSE_WHYF(why, F32_AVX2_NOT_COVERED, "layout-8 weights of a conv that is not 1x1 with group 1, or no scratch", 0, 0, 0, 0);
            return 1;
        }
        why->scratch = conv_o32_scratch(&g);
        why->packed = 1u << 1;
        return 0;
    }
    if (p.path == DSE_CONV_DW8 && !dse__scratch_free(m, n, need)) need = dse__conv_f32_plan_dw(&g, &p);   /* an older plan */
    if (p.path == DSE_CONV_BANDS && !dse__scratch_free(m, n, need))   /* an older plan: smaller bands */
        need = dse__conv_f32_plan_bands(&g, &p, DSE_CONV_BANDS_FLOATS_V1);
    if (p.path == DSE_CONV_GEMM && !dse__scratch_free(m, n, need)) {   /* runs, reading x in place */
        why->scratch = 0;
        return 0;
    }
    const size_t imgs = dse__conv_f32_imgs_plan(&g, NULL);
    if (imgs && dse__scratch_free(m, n, imgs)) {   /* IMGS runs (else the path above, with its scratch) */
        why->scratch = imgs;
        return 0;
    }
    if (!dse__scratch_free(m, n, need)) {
        DSE_WHYF(why, F32_AVX2_NOT_COVERED, "scratch not planned", 0, 0, 0, 0);
        return 1;
    }
    why->scratch = need;
    return 0;
}

typedef struct conv_job {
    const dse_ctx *cx;
    dse_conv_geom g;
    dse_conv_plan pl;
    int path;
    size_t cg, mg, K, P, isz, ntiles, msplit, mchunk;
    const float *x, *w, *b, *xend;   /* xend: the end of x (DW8 reads no further) */
    int pack;                        /* GEMM: the scratch to pack x's columns was planned */
    float *y;
    int act, act_fn;
    float lo, hi;
    size_t tw;                       /* IMGS: columns per tile (0: another path) */
    int dw3;                         /* DW3: depthwise 3x3 read in place (dwconv.c), for DW and DW8 */
    dse_dw3 d3;
    int bandt;                       /* BANDS as one plane per tap (conv_bandt_fill) */
    size_t o32_split, o32_chunk;     /* O32: parts per panel of 32 channels, pixels per part */
    dse_sgemm_fn sgemm;              /* dse__avx2_sgemm, or the 512-bit one (the avx512vnni kernel) */
    dse_o32_fn o32;                  /* O32's chunks: conv_o32_chunk_avx2, or the 512-bit one */
    dse_act_row_fn act_row;          /* the fused SiLU/GELU over stored outputs: 8 or 16 lanes, the same bytes */
    dse_dw3_plane_fn dw3_plane;      /* DW3: 8 or 16 columns */
} conv_job;

/* dse__avx2_fill_row (avx2_f32.h): one padded input row split into its W-stride phases. */
void dse__avx2_fill_row(float *br, size_t PS, const float *xr, size_t IW, size_t pl, size_t sw, size_t L) {
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
 * clamp, store (the fused activation function: over the whole plane after, conv_dw_rows9). Loads read whole vectors: past a phase row's end they read the next one, or
 * the 8 floats of slack after the plane (lanes never stored). TAPS = 9 (3x3): the weights are
 * broadcast once per channel (wv) and the taps unrolled; TAPS = 0: any count, weights read per
 * tap. */
DSE_AI void conv_dw_tile(const conv_job *j, const int TAPS, const int R, const int V, const int mlast, const float *prow,
                          size_t rstep, const uint64_t *tab, const float *wc, const __m256 *wv, const float *bc, float *yr,
                          size_t OW, size_t ow) {
    const size_t taps = TAPS ? (size_t)TAPS : (size_t)(j->g.k[1] * j->g.k[2]);
    __m256 acc[4][4];
    DSE_UNROLL
    for (int r = 0; r < R; r++)
        DSE_UNROLL
        for (int v = 0; v < V; v++) acc[r][v] = _mm256_setzero_ps();
    DSE_UNROLL
    for (size_t t = 0; t < taps; t++) {
        const __m256 w = TAPS ? wv[t] : _mm256_broadcast_ss(wc + t);
        const float *src = prow + tab[t] + ow;
        DSE_UNROLL
        for (int r = 0; r < R; r++)
            DSE_UNROLL
            for (int v = 0; v < V; v++) acc[r][v] = _mm256_fmadd_ps(w, _mm256_loadu_ps(src + r * rstep + 8 * v), acc[r][v]);
    }
    const __m256 bias = _mm256_set1_ps(bc ? *bc : 0.0f), lo = _mm256_set1_ps(j->lo), hi = _mm256_set1_ps(j->hi);
    DSE_UNROLL
    for (int r = 0; r < R; r++)
        DSE_UNROLL
        for (int v = 0; v < V; v++) {
            __m256 y = acc[r][v];
            if (bc) y = _mm256_add_ps(y, bias);
            if (j->act) y = _mm256_min_ps(hi, _mm256_max_ps(lo, y));
            if (j->act_fn && DSE_ACT_FN_INLINE(j->act_fn)) y = dse__avx2_act_fn_inline(j->act_fn, y);
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

/* The output rows of one channel from its padded plane (buf): tiles of 4 rows x 1 vector when a
 * row is one vector, 2 x 2 when two, else 1 row x 4 vectors (then the rest of the row). */
DSE_AI void conv_dw_rows(const conv_job *j, const int TAPS, const float *buf, size_t rstep, const uint64_t *tab,
                          const float *wc, const float *bc, float *yc) {
    const size_t OH = j->g.out[1], OW = j->g.out[2], nvec = (OW + 7) / 8;
    const int ml = OW % 8 != 0;
    __m256 wv[9];
    uint64_t off[9];
    const uint64_t *tb = tab;
    if (TAPS) {
        DSE_UNROLL
        for (int t = 0; t < TAPS; t++) { wv[t] = _mm256_broadcast_ss(wc + t); off[t] = tab[t]; }
        tb = off;
    }
#define CONV_DW_T(R, V, M, oh, ow) \
    conv_dw_tile(j, TAPS, R, V, M, buf + (oh) * rstep, rstep, tb, wc, wv, bc, yc + (oh) * OW, OW, ow)
    size_t oh = 0;
    if (nvec == 1) {
        for (; oh + 4 <= OH; oh += 4) { if (ml) CONV_DW_T(4, 1, 1, oh, 0); else CONV_DW_T(4, 1, 0, oh, 0); }
        if (oh + 2 <= OH) { if (ml) CONV_DW_T(2, 1, 1, oh, 0); else CONV_DW_T(2, 1, 0, oh, 0); oh += 2; }
        if (oh < OH) { if (ml) CONV_DW_T(1, 1, 1, oh, 0); else CONV_DW_T(1, 1, 0, oh, 0); }
        return;
    }
    if (nvec == 2) {
        for (; oh + 2 <= OH; oh += 2) { if (ml) CONV_DW_T(2, 2, 1, oh, 0); else CONV_DW_T(2, 2, 0, oh, 0); }
        if (oh < OH) { if (ml) CONV_DW_T(1, 2, 1, oh, 0); else CONV_DW_T(1, 2, 0, oh, 0); }
        return;
    }
    for (; oh < OH; oh++) {
        size_t ow = 0, v = nvec;
        for (; v > 4 || (v == 4 && !ml); v -= 4, ow += 32) CONV_DW_T(1, 4, 0, oh, ow);
        switch (v) {
        case 4: CONV_DW_T(1, 3, 0, oh, ow); CONV_DW_T(1, 1, 1, oh, ow + 24); break;   /* 3 full + 1 partial */
        case 3: if (ml) CONV_DW_T(1, 3, 1, oh, ow); else CONV_DW_T(1, 3, 0, oh, ow); break;
        case 2: if (ml) CONV_DW_T(1, 2, 1, oh, ow); else CONV_DW_T(1, 2, 0, oh, ow); break;
        case 1: if (ml) CONV_DW_T(1, 1, 1, oh, ow); else CONV_DW_T(1, 1, 0, oh, ow); break;
        default: break;
        }
    }
#undef CONV_DW_T
}

/* (SiLU over the channel's plane while it is in L1/L2: its sigmoid then runs 4 vectors at a time, as
 * fast as the Sigmoid kernel's and without its pass over memory; in each tile's epilogue it was
 * slower than the separate Sigmoid and Mul. HardSwish: in the tile, DSE_ACT_FN_INLINE) */
static DSE_TARGET_AVX2 void conv_dw_rows9(const conv_job *j, const float *buf, size_t rstep, const uint64_t *tab,
                                          const float *wc, const float *bc, float *yc) {
    conv_dw_rows(j, 9, buf, rstep, tab, wc, bc, yc);
    if (j->act_fn && !DSE_ACT_FN_INLINE(j->act_fn)) j->act_row(j->act_fn, yc, j->g.out[1] * j->g.out[2]);
}
static DSE_TARGET_AVX2 void conv_dw_rows_any(const conv_job *j, const float *buf, size_t rstep, const uint64_t *tab,
                                             const float *wc, const float *bc, float *yc) {
    conv_dw_rows(j, 0, buf, rstep, tab, wc, bc, yc);
    if (j->act_fn && !DSE_ACT_FN_INLINE(j->act_fn)) j->act_row(j->act_fn, yc, j->g.out[1] * j->g.out[2]);
}

/* Depthwise: one channel. The padded plane (PH rows; per row sw phases of L floats, phase q
 * holding padded columns q, q + sw, ...) goes to buf; then tiles of output rows x columns,
 * acc = fma over the taps (kh, kw) of w * plane[oh*sh + kh*dh][ow*sw + kw*dw] (the tap's
 * offset tab[t]), in tap order. */
static DSE_TARGET_AVX2 void conv_dw_channel(const conv_job *j, const float *xc, const float *wc, const float *bc, float *yc,
                                            const uint64_t *tab, float *buf) {
    const dse_conv_geom *g = &j->g;
    const size_t IH = g->in[1], IW = g->in[2];
    const size_t pt = (size_t)g->pb[1], pl = (size_t)g->pb[2], sw = (size_t)g->s[2];
    const size_t PH = IH + pt + (size_t)g->pe[1], PW = IW + pl + (size_t)g->pe[2], L = (PW + sw - 1) / sw;
    for (size_t r = 0; r < PH; r++) {
        float *br = buf + r * sw * L;
        if (r < pt || r - pt >= IH) { memset(br, 0, sw * L * sizeof(float)); continue; }
        dse__avx2_fill_row(br, L, xc + (r - pt) * IW, IW, pl, sw, L);
    }
    const size_t rstep = (size_t)g->s[1] * sw * L;
    if (g->k[1] * g->k[2] == 9) conv_dw_rows9(j, buf, rstep, tab, wc, bc, yc);
    else conv_dw_rows_any(j, buf, rstep, tab, wc, bc, yc);
}

/* DW8: the 8x8 transpose of r[0..7] (rows) into columns. */
DSE_AI void conv_tr8(__m256 *r) {
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)), u1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 u2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)), u3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 u4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0)), u5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 u6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0)), u7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20); r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20); r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31); r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31); r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

/* DW8: channels [c0, c0 + nc) (nc <= 8) of image img. Their zero-padded planes go to T as 8
 * floats per padded pixel (lane = channel; lanes past nc are 0), the outputs to O likewise,
 * 4 output pixels at a time (each lane one FMA chain over the taps in REF's order, then bias,
 * clamp), then transposed back into y. */
static DSE_TARGET_AVX2 void conv_dw8_block(const conv_job *j, size_t img, size_t c0, size_t nc, float *T) {
    const dse_conv_geom *g = &j->g;
    const size_t IH = g->in[1], IW = g->in[2], OH = g->out[1], OW = g->out[2];
    const size_t pt = (size_t)g->pb[1], pl = (size_t)g->pb[2];
    const size_t PH = IH + pt + (size_t)g->pe[1], PW = IW + pl + (size_t)g->pe[2];
    const size_t KH = (size_t)g->k[1], KW = (size_t)g->k[2], taps = KH * KW;
    const size_t sh = (size_t)g->s[1], sw = (size_t)g->s[2], dh = (size_t)g->d[1], dw = (size_t)g->d[2];
    float *O = T + 8 * PH * PW;
    const float *x = j->x + (img * g->C + c0) * j->isz;
    float *y = j->y + (img * g->C + c0) * j->P;
    const __m256 z = _mm256_setzero_ps();
    for (size_t r = 0; r < PH; r++) {   /* the transposed padded planes */
        float *tr = T + 8 * r * PW;
        if (r < pt || r - pt >= IH) { for (size_t q = 0; q < PW; q++) _mm256_storeu_ps(tr + 8 * q, z); continue; }
        for (size_t q = 0; q < pl; q++) _mm256_storeu_ps(tr + 8 * q, z);
        for (size_t q = pl + IW; q < PW; q++) _mm256_storeu_ps(tr + 8 * q, z);
        const float *xr = x + (r - pt) * IW;
        for (size_t c = 0; c < IW; c += 8) {   /* 8 columns of the 8 channels, transposed */
            __m256 v[8];
            const size_t n = IW - c < 8 ? IW - c : 8;
            DSE_UNROLL
            for (int l = 0; l < 8; l++) {
                const float *src = xr + (size_t)l * j->isz + c;
                if ((size_t)l >= nc) v[l] = z;
                else if (n == 8 || src + 8 <= j->xend) v[l] = _mm256_loadu_ps(src);   /* extra lanes: never stored */
                else { float t[8] = {0}; for (size_t q = 0; q < n; q++) t[q] = src[q]; v[l] = _mm256_loadu_ps(t); }
            }
            conv_tr8(v);
            DSE_UNROLL
            for (int l = 0; l < 8; l++) if ((size_t)l < n) _mm256_storeu_ps(tr + 8 * (pl + c + (size_t)l), v[l]);
        }
    }
    __m256 wv[25];   /* the taps' weights of the 8 channels (taps <= 25: larger kernels use the DW path) */
    float wt[8];
    for (size_t t = 0; t < taps; t++) {
        for (size_t l = 0; l < 8; l++) wt[l] = l < nc ? j->w[(c0 + l) * taps + t] : 0.0f;
        wv[t] = _mm256_loadu_ps(wt);
    }
    for (size_t l = 0; l < 8; l++) wt[l] = l < nc && j->b ? j->b[c0 + l] : 0.0f;
    const __m256 bias = _mm256_loadu_ps(wt), lo = _mm256_set1_ps(j->lo), hi = _mm256_set1_ps(j->hi);
    const size_t P = OH * OW;
    size_t ph = 0, pw = 0;   /* the output pixel p = ph * OW + pw, advanced without dividing */
    for (size_t p = 0; p < P; p += 4) {
        __m256 acc[4];
        size_t base[4];
        DSE_UNROLL
        for (int q = 0; q < 4; q++) {   /* pixel p + q; past the end: the last pixel again (not stored) */
            base[q] = 8 * (ph * sh * PW + pw * sw);
            acc[q] = z;
            if (p + (size_t)q + 1 < P && ++pw == OW) { pw = 0; ph++; }   /* to pixel p + q + 1 */
        }
        const float *tt = T;
        for (size_t kh = 0, t = 0; kh < KH; kh++, tt += 8 * dh * PW)
            for (size_t kw = 0; kw < KW; kw++, t++) {
                const float *src = tt + 8 * kw * dw;
                DSE_UNROLL
                for (int q = 0; q < 4; q++) acc[q] = _mm256_fmadd_ps(wv[t], _mm256_loadu_ps(src + base[q]), acc[q]);
            }
        DSE_UNROLL
        for (int q = 0; q < 4; q++) {
            __m256 v = acc[q];
            if (j->b) v = _mm256_add_ps(v, bias);
            if (j->act) v = _mm256_min_ps(hi, _mm256_max_ps(lo, v));
            if (j->act_fn && DSE_ACT_FN_INLINE(j->act_fn)) v = dse__avx2_act_fn_inline(j->act_fn, v);
            if (p + (size_t)q < P) _mm256_storeu_ps(O + 8 * (p + (size_t)q), v);
        }
    }
    if (j->act_fn && !DSE_ACT_FN_INLINE(j->act_fn)) j->act_row(j->act_fn, O, 8 * P);   /* the 8 channels' planes while in L1/L2 */
    for (size_t p = 0; p < P; p += 8) {   /* back to planes, 8 pixels of the 8 channels at a time */
        __m256 v[8];
        const size_t n = P - p < 8 ? P - p : 8;
        DSE_UNROLL
        for (int l = 0; l < 8; l++) v[l] = (size_t)l < n ? _mm256_loadu_ps(O + 8 * (p + (size_t)l)) : z;
        conv_tr8(v);
        DSE_UNROLL
        for (int l = 0; l < 8; l++) {
            if ((size_t)l >= nc) continue;
            float *d = y + (size_t)l * j->P + p;
            if (n == 8) { _mm256_storeu_ps(d, v[l]); continue; }
            float t[8];
            _mm256_storeu_ps(t, v[l]);
            for (size_t q = 0; q < n; q++) d[q] = t[q];
        }
    }
}

/* BAND*: each tap's offset in the band buffer. BAND1: tap (c, kh, kw) reads channel c's padded
 * rows from row kh*dh, column kw*dw; BANDS: channel c's plane (kw, (kh*dh) % sh) from row
 * (kh*dh) / sh. */
static void conv_band_offsets(const conv_job *j, size_t *tab) {
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
            else dse__avx2_fill_row(bc + i * Lw, Lw, xc + (y - pt) * IW, IW, pl, 1, Lw);
        }
    }
    memset(band + j->cg * j->pl.CS, 0, 16 * sizeof(float));
}

/* d[ow] = the zero-padded input row xr (NULL: a padding row) at padded column ow*sw + kw*dw, for ow < OW. */
DSE_AI void conv_band_row(const dse_conv_geom *g, const float *xr, size_t kw, float *d) {
    const size_t sw = (size_t)g->s[2], OW = g->out[2], IW = g->in[2];
    if (!xr) { memset(d, 0, OW * sizeof(float)); return; }
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

/* BANDS as one plane per tap (BANDT: taken where R rows of it fit the BANDS plan's floats): for a
 * band of `rows` output rows from oh0, tap k = (c, kh, kw) gets plane k of Lw = R * OW floats (rounded
 * up to 16 where that fits) whose row i
 * holds the zero-padded input at padded row (oh0 + i)*sh + kh*dh, padded column ow*sw + kw*dw: B is
 * then a row-major K x (rows * OW) matrix (ldb: the plane) that the SGEMM reads with whole, consecutive
 * vectors per k (no per-tap offset and prefetch: 77 % -> 87 % of the FMA peak on yolo's 16 -> 32
 * 3x3/2 product). It copies kH*kW (not kW*sh) rows per output row and channel. */
static DSE_TARGET_AVX2 void conv_bandt_fill(const conv_job *j, const float *xg, size_t oh0, size_t rows, float *band) {
    const dse_conv_geom *g = &j->g;
    const size_t sh = (size_t)g->s[1], OW = g->out[2], PL = j->pl.Lw, IH = g->in[1], IW = g->in[2];
    const size_t pt = (size_t)g->pb[1], KH = (size_t)g->k[1], KW = (size_t)g->k[2];
    float *d = band;
    for (size_t c = 0; c < j->cg; c++) {
        const float *xc = xg + c * j->isz;
        for (size_t kh = 0; kh < KH; kh++)
            for (size_t kw = 0; kw < KW; kw++, d += PL)
                for (size_t i = 0; i < rows; i++) {
                    const size_t y = (oh0 + i) * sh + kh * (size_t)g->d[1];   /* padded row */
                    conv_band_row(g, y >= pt && y - pt < IH ? xc + (y - pt) * IW : NULL, kw, d + i * OW);
                }
    }
}

/* BANDS: the band from output row oh0: channel c's plane (kw, fy) row i column ow holds the input
 * at padded row oh0*sh + fy + i*sh, padded column ow*sw + kw*dw (zero outside the input); then
 * 16 floats of slack. */
static DSE_TARGET_AVX2 void conv_band_fill(const conv_job *j, const float *xg, size_t oh0, float *band) {
    const dse_conv_geom *g = &j->g;
    const size_t sh = (size_t)g->s[1], OW = g->out[2], NRp = j->pl.NRp, PL = NRp * OW;
    const size_t IH = g->in[1], IW = g->in[2], pt = (size_t)g->pb[1];
    for (size_t c = 0; c < j->cg; c++) {
        const float *xc = xg + c * j->isz;
        float *bc = band + c * j->pl.CS;
        for (size_t fy = 0; fy < sh; fy++)
            for (size_t i = 0; i < NRp; i++) {
                const size_t y = oh0 * sh + fy + i * sh;   /* padded row */
                const int live = y >= pt && y - pt < IH;
                const float *xr = live ? xc + (y - pt) * IW : NULL;
                for (size_t kw = 0; kw < (size_t)g->k[2]; kw++) conv_band_row(g, xr, kw, bc + (kw * sh + fy) * PL + i * OW);
            }
    }
    memset(band + j->cg * j->pl.CS, 0, 16 * sizeof(float));
}

/* IMGS: part `it` = tile * msplit + chunk of output channels. */
static DSE_TARGET_AVX2 void conv_imgs_task(void *arg, size_t begin, size_t end, unsigned worker) {
    const conv_job *j = arg;
    float *panels = (float *)dse__worker_scratch(j->cx, worker), *cb = panels + j->K * j->tw;
    const size_t total = j->g.N * j->P, M = j->g.M;
    size_t packed = (size_t)-1;
    for (size_t it = begin; it < end; it++) {
        const size_t tile = it / j->msplit, mc = it % j->msplit, u0 = tile * j->tw;
        const size_t nt = total - u0 < j->tw ? total - u0 : j->tw;
        const size_t m0 = mc * j->mchunk, m1 = m0 + j->mchunk < M ? m0 + j->mchunk : M;
        if (m0 >= m1) continue;
        if (tile != packed) dse_f32_conv_im2col_imgs(&j->g, j->x, u0, nt, 16, panels), packed = tile;
        dse_sgemm s;
        memset(&s, 0, sizeof s);
        s.K = j->K;
        s.A = j->w; s.sai = j->K; s.sak = 1;
        s.B = panels; s.bpanel = j->K * 16; s.ldb = 16;
        s.C = cb; s.ldc = j->tw;
        s.bias_m = j->b;
        s.act = j->act; s.lo = j->lo; s.hi = j->hi; s.act_fn = j->act_fn;
        j->sgemm(&s, m0, m1, 0, nt);
        dse_conv_imgs_store(j->y, cb, j->tw, u0, nt, j->P, M, m0, m1);
    }
}

/* O32 (the header): NP (1..3) pixels from p0 x 32 output channels over kn k of one chunk; acc in
 * buf[p * 32 + c] (pixel p of the image, channel c of the panel) from the previous chunk unless
 * `first`; after the `last` chunk, the epilogue of sgemm.c's tiles (+ bias, clamp, an inline
 * activation function), in the same operations. wp: the panel at the chunk's first k (32 floats
 * per k), x: x's row of that k (P floats per k). */
#define CONV_O32_KC 64
DSE_AI void conv_o32_tile(const dse_o32_chunk *c, const int NP, size_t p0, float *buf) {
    __m256 acc[3][4];
    DSE_UNROLL
    for (int a = 0; a < NP; a++)
        DSE_UNROLL
        for (int v = 0; v < 4; v++) acc[a][v] = c->first ? _mm256_setzero_ps() : _mm256_loadu_ps(buf + (p0 + (size_t)a) * 32 + 8 * (size_t)v);
    const float *xp = c->x + p0, *wp = c->wp;
    for (size_t k = 0; k < c->kn; k++, wp += 32, xp += c->P) {
        const __m256 w0 = _mm256_loadu_ps(wp), w1 = _mm256_loadu_ps(wp + 8), w2 = _mm256_loadu_ps(wp + 16), w3 = _mm256_loadu_ps(wp + 24);
        DSE_UNROLL
        for (int a = 0; a < NP; a++) {
            const __m256 xb = _mm256_broadcast_ss(xp + a);
            acc[a][0] = _mm256_fmadd_ps(xb, w0, acc[a][0]);
            acc[a][1] = _mm256_fmadd_ps(xb, w1, acc[a][1]);
            acc[a][2] = _mm256_fmadd_ps(xb, w2, acc[a][2]);
            acc[a][3] = _mm256_fmadd_ps(xb, w3, acc[a][3]);
        }
    }
    DSE_UNROLL
    for (int a = 0; a < NP; a++)
        DSE_UNROLL
        for (int v = 0; v < 4; v++) {
            __m256 o = acc[a][v];
            if (c->last) {
                if (c->bias) o = _mm256_add_ps(o, _mm256_loadu_ps(c->bias + 8 * v));
                if (c->act) o = _mm256_min_ps(_mm256_set1_ps(c->hi), _mm256_max_ps(_mm256_set1_ps(c->lo), o));
                if (c->act_fn && DSE_ACT_FN_INLINE(c->act_fn)) o = dse__avx2_act_fn_inline(c->act_fn, o);
            }
            _mm256_storeu_ps(buf + (p0 + (size_t)a) * 32 + 8 * (size_t)v, o);
        }
}
static DSE_NOINLINE DSE_TARGET_AVX2 void conv_o32_tile3(const dse_o32_chunk *c, size_t p0, float *buf) { conv_o32_tile(c, 3, p0, buf); }
static DSE_NOINLINE DSE_TARGET_AVX2 void conv_o32_tile2(const dse_o32_chunk *c, size_t p0, float *buf) { conv_o32_tile(c, 2, p0, buf); }
static DSE_NOINLINE DSE_TARGET_AVX2 void conv_o32_tile1(const dse_o32_chunk *c, size_t p0, float *buf) { conv_o32_tile(c, 1, p0, buf); }

/* O32: one chunk's pixels [pa, pb) in tiles of 3 pixels (dse_o32_fn, avx2_f32.h) */
static void conv_o32_chunk_avx2(const dse_o32_chunk *c, size_t pa, size_t pb, float *buf) {
    size_t p = pa;
    for (; p + 3 <= pb; p += 3) conv_o32_tile3(c, p, buf);
    if (pb - p == 2) conv_o32_tile2(c, p, buf);
    else if (pb - p == 1) conv_o32_tile1(c, p, buf);
}

/* O32: part `it` = (image * (M / 32) + panel) * o32_split + pixel range */
static DSE_TARGET_AVX2 void conv_o32_task(void *arg, size_t begin, size_t end, unsigned worker) {
    const conv_job *j = arg;
    float *buf = (float *)(void *)dse__worker_scratch(j->cx, worker);
    const size_t P = j->P, K = j->K, panels = j->g.M / 32;
    for (size_t it = begin; it < end; it++) {
        const size_t part = it % j->o32_split, pi = it / j->o32_split, q = pi % panels, img = pi / panels;
        const size_t pa = part * j->o32_chunk, pb = pa + j->o32_chunk < P ? pa + j->o32_chunk : P;
        if (pa >= pb) continue;
        const float *x = j->x + img * K * P, *wq = j->w + q * 32 * K, *bias = j->b ? j->b + 32 * q : NULL;
        dse_o32_chunk c = {NULL, NULL, P, 0, bias, j->act, j->act_fn, j->lo, j->hi, 0, 0};
        for (size_t k0 = 0; k0 < K; k0 += CONV_O32_KC) {
            c.kn = K - k0 < CONV_O32_KC ? K - k0 : CONV_O32_KC;
            c.first = k0 == 0, c.last = k0 + c.kn == K;
            c.wp = wq + k0 * 32, c.x = x + k0 * P;
            j->o32(&c, pa, pb, buf);
        }
        /* buf[p][c] -> y[32 q + c][p] for p in [pa, pb) */
        float *y = j->y + (img * j->g.M + 32 * q) * P;
        size_t p = pa;
        for (; p + 8 <= pb; p += 8)
            for (size_t c = 0; c < 32; c += 8) {
                __m256 r[8];
                DSE_UNROLL
                for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(buf + (p + (size_t)i) * 32 + c);
                conv_tr8(r);   /* (DW8's) */
                DSE_UNROLL
                for (int i = 0; i < 8; i++) _mm256_storeu_ps(y + (c + (size_t)i) * P + p, r[i]);
            }
        for (size_t c = 0; c < 32; c++)
            for (size_t t = p; t < pb; t++) y[c * P + t] = buf[t * 32 + c];
        if (j->act_fn && !DSE_ACT_FN_INLINE(j->act_fn))   /* SiLU: over the part's stretch of each row */
            for (size_t c = 0; c < 32; c++) j->act_row(j->act_fn, y + c * P + pa, pb - pa);
    }
}

static DSE_TARGET_AVX2 void conv_task(void *arg, size_t begin, size_t end, unsigned worker) {
    const conv_job *j = arg;
    const dse_conv_geom *g = &j->g;
    float *scratch = (float *)dse__worker_scratch(j->cx, worker);
    const size_t osz = j->P;
    if (j->dw3) {   /* it: image * C + channel; the zero row in the worker's scratch */
        dse_dw3 d = j->d3;
        memset(scratch, 0, g->in[2] * sizeof(float));
        d.zrow = scratch;
        for (size_t it = begin; it < end; it++)
            j->dw3_plane(&d, j->x + it * j->isz, j->w + it % g->C * 9, j->b ? j->b + it % g->C : NULL, j->y + it * osz);
        return;
    }
    size_t filled = (size_t)-1;   /* the band or tile in scratch: it / msplit */
    for (size_t it = begin; it < end; it++) {
        if (j->path == DSE_CONV_DW8) {   /* it: image * ceil(C / 8) + block */
            const size_t nb = (g->C + 7) / 8, c0 = it % nb * 8;
            conv_dw8_block(j, it / nb, c0, g->C - c0 < 8 ? g->C - c0 : 8, scratch);
            continue;
        }
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
        s.act = j->act; s.lo = j->lo; s.hi = j->hi; s.act_fn = j->act_fn;
        if (j->path == DSE_CONV_GEMM && j->P == 1) {   /* a 1x1 conv on a 1x1 image (squeeze-excitation,
                                               * pooled heads): matrix-vector products, 8 k per FMA */
            s.B = xg; s.ldb = j->K; s.C = yg; s.ldc = 1;
            dse__avx2_sgemm_dot(&s, m0, m1, 0, 1);
            continue;
        }
        if (j->path == DSE_CONV_GEMM) {   /* B = the whole K x isz input, columns [p0, p0 + nt): the
                                               * tail tiles' vector reads are bounded by B's end */
            s.B = xg; s.ldb = j->isz; s.C = yg;
            s.pack = j->pack ? scratch : NULL;
            j->sgemm(&s, m0, m1, p0, p0 + nt);
            continue;
        }
        /* the band or tile in the worker's scratch: filled once for the consecutive parts of it that this
         * range holds (its blocks of output channels: with threads, a few bands split by channels) */
        const int fresh = it / j->msplit != filled;
        filled = it / j->msplit;
        if (j->bandt) {
            const size_t rows = nt / g->out[2];
            if (fresh) conv_bandt_fill(j, xg, tile * j->pl.R, rows, scratch);
            s.B = scratch; s.ldb = j->pl.Lw;
        } else if (j->path == DSE_CONV_BAND1 || j->path == DSE_CONV_BANDS) {
            size_t *tab = (size_t *)(void *)scratch;   /* 8 bytes per tap (x86-64) */
            float *band = (float *)(void *)(tab + j->K);
            if (fresh) conv_band_offsets(j, tab);
            if (j->path == DSE_CONV_BAND1) {
                if (fresh) conv_band1_fill(j, xg, tile * j->pl.R, band);
                s.cw = j->pl.Lw; s.cv = g->out[2];
            } else if (fresh) {
                conv_band_fill(j, xg, tile * j->pl.R, band);
            }
            s.B = band; s.boff = tab;
        } else {
            if (fresh) dse_f32_conv_im2col(g, j->cg, xg, p0, nt, 16, scratch);
            s.B = scratch; s.bpanel = j->K * 16; s.ldb = 16;
        }
        j->sgemm(&s, m0, m1, 0, nt);
    }
}

static void conv_run(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx, dse_sgemm_fn sgemm, dse_o32_fn o32,
                     dse_act_row_fn act_row, dse_dw3_plane_fn dw3_plane) {
    conv_job j;
    dse_why why;
    memset(&j, 0, sizeof j);
    j.sgemm = sgemm, j.o32 = o32, j.act_row = act_row, j.dw3_plane = dw3_plane;
    dse__conv_f32_geom(m, n, &j.g, &why);   /* validated at load */
    const dse_conv_geom *g = &j.g;
    j.cx = cx;
    j.pack = n->scratch >= dse__conv_f32_plan(g, &j.pl);
    if (j.pl.path == DSE_CONV_DW8 && !j.pack) dse__conv_f32_plan_dw(g, &j.pl);   /* the check found DW's scratch only */
    if (j.pl.path == DSE_CONV_BANDS && !j.pack)   /* an older artifact's bands (the check found their scratch) */
        j.pack = n->scratch >= dse__conv_f32_plan_bands(g, &j.pl, DSE_CONV_BANDS_FLOATS_V1);
    j.path = j.pl.path;
    j.cg = g->C / g->G; j.mg = g->M / g->G;
    if (j.path == DSE_CONV_BANDS && j.pack) {
        /* BANDT where its planes of R rows (R * OW floats, rounded up to 16 where that fits: aligned
         * rows of B) fit the BANDS plan's floats and it copies no more per output row than BANDS
         * (kH*kW*OW against kW*sh*NRp*OW / R_BANDS: 1x1 strided convs, or BANDS bands of few rows as
         * resnet50's 3x3/2 of 128 channels; yolo's 3x3/2 with bands of 7 rows ran 5-17 % slower as
         * BANDT) */
        const size_t taps = (size_t)(g->k[1] * g->k[2]), OW = g->out[2];
        size_t R = j.pl.CS / (taps * OW);
        if (R > g->out[1]) R = g->out[1];
        if (R && (size_t)g->k[1] * j.pl.R <= (size_t)g->s[1] * j.pl.NRp) {
            const size_t al = (R * OW + 15) / 16 * 16;
            j.bandt = 1, j.pl.R = R, j.pl.Lw = taps * al <= j.pl.CS ? al : R * OW;   /* Lw: the plane's floats */
        }
    }
    j.K = j.cg * (size_t)(g->k[0] * g->k[1] * g->k[2]);
    j.P = g->out[0] * g->out[1] * g->out[2];
    j.isz = g->in[0] * g->in[1] * g->in[2];
    j.x = dse__data(m, arena, n->in[0]);
    j.xend = j.x + m->tensors[n->in[0]].numel;
    j.w = dse__data(m, arena, n->in[1]);
    j.b = n->n_in == 3 && n->in[2] != DSE_NONE ? dse__data(m, arena, n->in[2]) : NULL;
    j.y = dse__data(m, arena, n->out[0]);
    j.act = dse__nn_act(n, &j.lo, &j.hi);
    j.act_fn = dse__nn_act_fn(n);
    if (!j.P || !g->M) return;
    if (m->tensors[n->in[1]].layout == DSE_LAYOUT_F32_O32) {   /* O32 (the check took only 1x1, group 1) */
        const size_t threads = dse__threads(cx), units = g->N * (g->M / 32);
        j.o32_split = 1;
        if (threads > 1 && units < 4 * threads) {   /* too few panels to share: split the pixels too */
            j.o32_split = (4 * threads + units - 1) / units;
            if (j.o32_split > j.P / 24) j.o32_split = j.P / 24 ? j.P / 24 : 1;
        }
        j.o32_chunk = (j.P + j.o32_split - 1) / j.o32_split;
        j.o32_chunk = (j.o32_chunk + 2) / 3 * 3;
        const size_t items = units * j.o32_split;
        dse__parallel(cx, items, dse__grain(items, (uint64_t)g->N * g->M * j.P * j.K), conv_o32_task, &j);
        return;
    }
    const size_t imgs = dse__conv_f32_imgs_plan(g, &j.tw);
    if (imgs && n->scratch >= imgs) {   /* IMGS: the check found its scratch */
        const size_t threads = dse__threads(cx);
        j.tw = dse_conv_imgs_tw(j.tw, g->N * j.P, threads, 16);
        const size_t units = (g->N * j.P + j.tw - 1) / j.tw;
        j.msplit = 1;
        if (threads > 1 && units < 4 * threads) {   /* too few tiles to share: split the channels */
            size_t blocks = (g->M + 5) / 6;
            j.msplit = threads * 4 / units + 1;
            if (j.msplit > blocks) j.msplit = blocks;
        }
        j.mchunk = ((g->M + 5) / 6 + j.msplit - 1) / j.msplit * 6;
        dse__parallel(cx, units * j.msplit, dse__grain(units * j.msplit, (uint64_t)g->N * g->M * j.P * j.K), conv_imgs_task, &j);
        return;
    }
    j.tw = 0;
    size_t items;
    j.dw3 = (j.path == DSE_CONV_DW8 || j.path == DSE_CONV_DW) && dse__avx2_dw3_takes(g);
    if (j.dw3) {
        dse__avx2_dw3_init(&j.d3, g, j.act, j.lo, j.hi, j.act_fn);
        j.d3.act_row = j.act_row;
        items = g->N * g->C;
    } else if (j.path == DSE_CONV_DW8) {
        items = g->N * ((g->C + 7) / 8);
    } else if (j.path == DSE_CONV_DW) {
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
    dse__parallel(cx, items, dse__grain(items, (uint64_t)g->N * g->M * j.P * (j.path == DSE_CONV_DW8 || j.path == DSE_CONV_DW ? (size_t)(g->k[0] * g->k[1] * g->k[2]) : j.K)),
                  conv_task, &j);
}

void dse_f32_conv__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    conv_run(m, n, arena, cx, dse__avx2_sgemm, conv_o32_chunk_avx2, dse__avx2_act_fn_row, dse__avx2_dw3_plane);
}

#if DSE_AVX512_F32
/* avx512vnni: the same paths and bytes, the SGEMM's and O32's tiles on 512-bit vectors
 * (kernels/avx512vnni/sgemm.c), DW3 on 16 columns (kernels/avx512vnni/dwconv.c); DW8 and DW as above */
void dse_f32_conv__avx512vnni(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    conv_run(m, n, arena, cx, dse__avx512_sgemm, dse__avx512_o32_chunk, dse__avx512_act_fn_row, dse__avx512_dw3_plane);
}
#endif

#endif
