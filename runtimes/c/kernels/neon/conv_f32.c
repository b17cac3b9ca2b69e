/* conv_f32.c (NEON): float32 Conv on arm64 with fused multiply-adds. Same geometry and
 * attributes as kernels/ref/conv.c (1 to 3 spatial axes, groups, strides, dilations, pads, fused
 * clamp); float32 weights and bias (float16 ones are left to REF). Three paths:
 *   - GEMM (1x1, unit strides, no padding, any rank and group; with group 1 also weights in layout 8,
 *     panels of 32 output channels: one SGEMM call per panel, A(i, k) 32 floats apart in k, which
 *     the SGEMM takes one element at a time): Y[M, P] = W[M, C] X[C, P] per
 *     image and group, straight on NCHW (x's channel rows are B's rows), by the SGEMM of
 *     sgemm.c; with the planned scratch, B's columns are packed into panels a chunk at a time,
 *     else read in place;
 *   - DW (1-D/2-D with one input channel per group: depthwise, with any depth multiplier, and
 *     single-channel inputs): per output channel, straight from the input plane, no scratch;
 *     per output row, the columns whose every tap column lies inside the input 8 or 4 at a time
 *     in vector lanes (stride 1: contiguous loads; stride 2: ld2 de-interleaves; else
 *     gathered), the border columns one at a time;
 *   - IM2COL (every other conv: 1-D to 3-D): tiles of nt output pixels of one image and group
 *     gathered as a row-major K x nt block in scratch (dse_f32_conv_im2col, kernels/ref/loops.c,
 *     shared with the AVX2 variant), then the SGEMM with the weights as stored;
 *   - IMGS (group 1, a batch of images of fewer than 16 output pixels each, when its scratch,
 *     dse__conv_f32_imgs_plan, was planned; before the paths above): tiles across the images
 *     (column u = image u / P, pixel u % P) gathered as a row-major K x nt block
 *     (dse_f32_conv_im2col_imgs), the SGEMM into C (M x TW) in scratch, copied out per image (the
 *     AVX2 variant's IMGS path: each image's sums are those of the paths above).
 * Reduction order per output element: one FMA chain from 0 over k = (c, kd, kh, kw) ascending
 * (REF's order; DW: the taps (kh, kw)), padding taps included as 0 * w (REF skips them: the same
 * sum up to the sign of a zero, NaN for an infinite weight), then + bias, then the clamp
 * (compare-and-select, REF's). That is also the arithmetic of every AVX2 float Conv path
 * (kernels/avx2/conv.c): the two variants give the same bytes. Tolerance against REF:
 * src/neon_f32.h.
 *
 * Scratch: the exporter plans every float Conv's scratch as dse__conv_f32_scratch_plan (kernels/ref/conv.c:
 * the larger of the direct paths' dse__conv_f32_plan and the AVX2 Winograd variant's; dsedge/export/
 * scratch.py), whatever the target, and this check reports that plan. This variant uses at most
 * dse__conv_f32_plan: GEMM,
 * the packing buffer 4 * dse__sgemm_pack_floats(K) (the plan; when the region is not free at
 * the node, none: B in place); DW, none; IM2COL, 4 * K * nt, nt = the pixels whose K x nt block
 * the plan holds (every plan holds at least one; at most max(16, 32768 / K), a multiple of 8
 * below P). An artifact whose scratch region holds a tensor live at the node
 * (dse__scratch_free) leaves IM2COL convs to REF.
 * Threads: GEMM and IM2COL over (image, group, tile of pixels, block of output channels), each
 * part with its worker's scratch; DW over (image, output channel). */
#include "neon_f32.h"
#include "conv_imgs.h"

#if DSE_NEON_F32

enum { NEON_CF_GEMM, NEON_CF_DW, NEON_CF_IM2COL };

static int neon_cf_path(const dse_conv_geom *g) {
    int unit = 1;
    for (int i = 0; i < 3; i++) unit &= g->k[i] == 1 && g->s[i] == 1 && g->pb[i] == 0 && g->pe[i] == 0;
    if (unit) return NEON_CF_GEMM;
    const int flat = g->in[0] == 1 && g->k[0] == 1 && g->pb[0] == 0 && g->pe[0] == 0;   /* 1-D or 2-D */
    return flat && g->C == g->G ? NEON_CF_DW : NEON_CF_IM2COL;
}

/* IM2COL: output pixels per tile (see the header); 0 when the plan holds none. */
static size_t neon_cf_tile(size_t K, size_t P, size_t plan) {
    size_t nt = K ? plan / 4 / K : 0;
    const size_t cap = K < 32768 / 16 ? 32768 / K : 16;
    if (nt > cap) nt = cap;
    if (nt >= P) return P;
    return nt >= 8 ? nt / 8 * 8 : nt;
}

int dse__check_conv_f32_neon(const dse_model *m, const dse_node *n, dse_why *why) {
    dse_conv_geom g;
    if (dse__conv_f32_geom(m, n, &g, why)) return 1;
    const dse_tensor *w = dse__t(m, n->in[1]), *b = n->n_in == 3 ? dse__t(m, n->in[2]) : NULL;
    if (w->dtype != DSE_DTYPE_FLOAT32 || (b && b->dtype != DSE_DTYPE_FLOAT32)) {
        DSE_WHYF(why, F32_OPT_NOT_COVERED, "float16 weights", 0, 0, 0, 0);
        return 1;
    }
    dse_why w16 = {0, NULL, {0, 0, 0, 0}, 0, 0, 0, 0};
    if ((m->isas & DSE_ISA_BIT(NEON_FP16)) && !dse__fp16_check(m, n, &w16)) {   /* an fp16-arithmetic node the NEON
        * fp16 kernel left (no scratch for it): REF's binary16 on a core that has FP16, not float32 */
        DSE_WHYF(why, F32_OPT_NOT_COVERED, "fp16 arithmetic", 0, 0, 0, 0);
        return 1;
    }
    dse_conv_plan pl;
    const size_t plan = dse__conv_f32_plan_bands(&g, &pl, DSE_CONV_BANDS_FLOATS_V1);   /* (its tiles: as before) */
    const int path = neon_cf_path(&g);
    why->scratch_plan = dse__conv_f32_scratch_plan(&g);   /* what the exporter plans: every float Conv variant's */
    why->act_fns = dse__act_fns(m, 1);   /* every path applies it (the SGEMM epilogue, over each DW plane):
                                          * dse__neon_act_fn_n, SiLU with the NEON Sigmoid's bytes */
    if (w->layout == DSE_LAYOUT_F32_O32) {   /* layout 8 (internal.h): the GEMM path, A read per panel of 32 rows */
        if (path != NEON_CF_GEMM || g.G != 1 || g.out[0] * g.out[1] * g.out[2] < 2) {
            DSE_WHYF(why, F32_OPT_NOT_COVERED, "layout-8 weights of a conv that is not 1x1 with group 1", 0, 0, 0, 0);
            return 1;
        }
        why->scratch = dse__scratch_free(m, n, plan) ? plan : 0;
        why->packed = 1u << 1;
        return 0;
    }
    const size_t imgs = dse__conv_f32_imgs_plan(&g, NULL);
    if (imgs && dse__scratch_free(m, n, imgs)) {   /* IMGS runs */
        why->scratch = imgs;
        return 0;
    }
    if (path == NEON_CF_DW) {
        why->scratch = 0;
        return 0;
    }
    if (path == NEON_CF_GEMM) {
        why->scratch = dse__scratch_free(m, n, plan) ? plan : 0;   /* else: x read in place */
        return 0;
    }
    const size_t nt = neon_cf_tile(pl.K, g.out[0] * g.out[1] * g.out[2], plan), need = 4 * pl.K * nt;
    if (!nt || !dse__scratch_free(m, n, need)) {
        DSE_WHYF(why, F32_OPT_NOT_COVERED, "scratch not planned", 0, 0, 0, 0);
        return 1;
    }
    why->scratch = need;
    return 0;
}

typedef struct neon_cf_job {
    const dse_ctx *cx;
    dse_conv_geom g;
    int path, pack, act, act_fn, o32;   /* o32: the weight in layout 8 (GEMM path, group 1) */
    size_t cg, mg, K, P, isz, nt, ntiles, msplit, mchunk;
    const float *x, *w, *b, *xend;   /* xend: the end of x (no vector load reads past it) */
    float *y;
    float lo, hi;
    size_t tw;   /* IMGS: columns per tile */
} neon_cf_job;

/* DW: 4 input columns p, p + s, p + 2s, p + 3s (all inside the row) */
DSE_NEON_AI float32x4_t neon_cf_ld(const float *p, size_t s, const float *xend) {
    if (s == 1) return vld1q_f32(p);
    if (s == 2 && (size_t)(xend - p) >= 8) return vld2q_f32(p).val[0];
    float32x4_t v = vdupq_n_f32(0.0f);
    v = vld1q_lane_f32(p, v, 0);
    v = vld1q_lane_f32(p + s, v, 1);
    v = vld1q_lane_f32(p + 2 * s, v, 2);
    return vld1q_lane_f32(p + 3 * s, v, 3);
}

/* DW: one output pixel (column ow of the row whose first tap row is h0); taps in the padding as 0 */
static float neon_cf_dw_px(const neon_cf_job *j, const float *xc, const float *wc, float bias, int64_t h0, size_t ow) {
    const dse_conv_geom *g = &j->g;
    const int64_t IH = (int64_t)g->in[1], IW = (int64_t)g->in[2], KH = g->k[1], KW = g->k[2];
    const int64_t w0 = (int64_t)ow * g->s[2] - g->pb[2];
    float acc = 0.0f;
    for (int64_t kh = 0; kh < KH; kh++) {
        const int64_t ih = h0 + kh * g->d[1];
        const float *xr = ih >= 0 && ih < IH ? xc + ih * IW : NULL;
        for (int64_t kw = 0; kw < KW; kw++) {
            const int64_t iw = w0 + kw * g->d[2];
            acc = __builtin_fmaf(xr && iw >= 0 && iw < IW ? xr[iw] : 0.0f, wc[kh * KW + kw], acc);
        }
    }
    float v = j->b ? acc + bias : acc;
    if (j->act) { v = v < j->lo ? j->lo : v; v = v > j->hi ? j->hi : v; }
    if (j->act_fn && DSE_ACT_FN_INLINE(j->act_fn)) v = vgetq_lane_f32(dse__neon_act_fn_inline(j->act_fn, vdupq_n_f32(v)), 0);
    return v;
}

/* DW: V (1 or 2) vectors of 4 output pixels from column ow (every tap column inside the input;
 * rows in the padding as 0) */
DSE_NEON_AI void neon_cf_dw_vec(const neon_cf_job *j, const int V, const float *xc, const float *wc, float bias, int64_t h0,
                                size_t ow, float *yr) {
    const dse_conv_geom *g = &j->g;
    const int64_t IH = (int64_t)g->in[1], IW = (int64_t)g->in[2], KH = g->k[1], KW = g->k[2], dw = g->d[2];
    const size_t sw = (size_t)g->s[2];
    const float32x4_t zero = vdupq_n_f32(0.0f);
    float32x4_t acc[2] = {zero, zero};
    for (int64_t kh = 0; kh < KH; kh++) {
        const int64_t ih = h0 + kh * g->d[1];
        if (ih < 0 || ih >= IH) {
            for (int64_t kw = 0; kw < KW; kw++) {
                acc[0] = vfmaq_n_f32(acc[0], zero, wc[kh * KW + kw]);
                if (V == 2) acc[1] = vfmaq_n_f32(acc[1], zero, wc[kh * KW + kw]);
            }
            continue;
        }
        const float *xr = xc + ih * IW + ((int64_t)ow * g->s[2] - g->pb[2]);   /* tap kw = 0 of column ow */
        for (int64_t kw = 0; kw < KW; kw++) {
            const float wv = wc[kh * KW + kw], *p = xr + kw * dw;
            acc[0] = vfmaq_n_f32(acc[0], neon_cf_ld(p, sw, j->xend), wv);
            if (V == 2) acc[1] = vfmaq_n_f32(acc[1], neon_cf_ld(p + 4 * sw, sw, j->xend), wv);
        }
    }
    const float32x4_t bv = vdupq_n_f32(bias), lo = vdupq_n_f32(j->lo), hi = vdupq_n_f32(j->hi);
    for (int v = 0; v < V; v++) {
        float32x4_t y = acc[v];
        if (j->b) y = vaddq_f32(y, bv);
        if (j->act) y = dse__neon_clamp(y, lo, hi);
        if (j->act_fn && DSE_ACT_FN_INLINE(j->act_fn)) y = dse__neon_act_fn_inline(j->act_fn, y);
        vst1q_f32(yr + ow + 4 * (size_t)v, y);
    }
}

/* DW: output channel oc of image img (its input channel: oc / mg). */
static void neon_cf_dw(const neon_cf_job *j, size_t img, size_t oc) {
    const dse_conv_geom *g = &j->g;
    const size_t OH = g->out[1], OW = g->out[2];
    const int64_t IW = (int64_t)g->in[2], KW = g->k[2], sw = g->s[2], pl = g->pb[2];
    const float *xc = j->x + (img * g->C + oc / j->mg) * j->isz, *wc = j->w + oc * (size_t)(g->k[1] * KW);
    const float bias = j->b ? j->b[oc] : 0.0f;
    float *yc = j->y + (img * g->M + oc) * j->P;
    /* the columns [wlo, whi) whose taps kw = 0 .. KW-1 all lie inside [0, IW) */
    int64_t wlo = pl > 0 ? (pl + sw - 1) / sw : 0;
    const int64_t last = IW - 1 - (KW - 1) * g->d[2] + pl;   /* ow * sw <= last */
    int64_t whi = last < 0 ? 0 : last / sw + 1;
    if (whi > (int64_t)OW) whi = (int64_t)OW;
    if (wlo > whi) wlo = whi;
    for (size_t oh = 0; oh < OH; oh++) {
        float *yr = yc + oh * OW;
        const int64_t h0 = (int64_t)oh * g->s[1] - g->pb[1];
        size_t ow = 0;
        for (; ow < (size_t)wlo; ow++) yr[ow] = neon_cf_dw_px(j, xc, wc, bias, h0, ow);
        for (; ow + 8 <= (size_t)whi; ow += 8) neon_cf_dw_vec(j, 2, xc, wc, bias, h0, ow, yr);
        for (; ow + 4 <= (size_t)whi; ow += 4) neon_cf_dw_vec(j, 1, xc, wc, bias, h0, ow, yr);
        for (; ow < OW; ow++) yr[ow] = neon_cf_dw_px(j, xc, wc, bias, h0, ow);
    }
    if (j->act_fn && !DSE_ACT_FN_INLINE(j->act_fn)) dse__neon_act_fn_row(j->act_fn, yc, OH * OW);   /* SiLU: over the plane while in L1/L2 */
}

static void neon_cf_task(void *arg, size_t begin, size_t end, unsigned worker) {
    const neon_cf_job *j = arg;
    const dse_conv_geom *g = &j->g;
    float *scratch = (float *)(void *)dse__worker_scratch(j->cx, worker);
    for (size_t it = begin; it < end; it++) {
        if (j->path == NEON_CF_DW) {   /* it: image * M + output channel */
            neon_cf_dw(j, it / g->M, it % g->M);
            continue;
        }
        size_t r = it;
        const size_t mc = r % j->msplit; r /= j->msplit;
        const size_t tile = r % j->ntiles; r /= j->ntiles;
        const size_t grp = r % g->G, img = r / g->G;
        const size_t p0 = tile * j->nt, cnt = j->P - p0 < j->nt ? j->P - p0 : j->nt;
        const size_t m0 = mc * j->mchunk, m1 = m0 + j->mchunk < j->mg ? m0 + j->mchunk : j->mg;
        if (m0 >= m1) continue;
        const float *xg = j->x + (img * g->C + grp * j->cg) * j->isz;
        float *yg = j->y + (img * g->M + grp * j->mg) * j->P;
        dse_sgemm s;
        memset(&s, 0, sizeof s);
        s.K = j->K;
        s.A = j->w + grp * j->mg * j->K; s.sai = j->K; s.sak = 1;
        s.ldc = j->P;
        s.bias_m = j->b ? j->b + grp * j->mg : NULL;
        s.act = j->act; s.lo = j->lo; s.hi = j->hi; s.act_fn = j->act_fn;
        if (j->path == NEON_CF_GEMM && j->P == 1) {   /* a 1x1 conv on a 1x1 image: matrix-vector products */
            s.B = xg; s.ldb = j->K; s.C = yg; s.ldc = 1;
            dse__neon_sgemm_dot(&s, m0, m1, 0, 1);
        } else if (j->path == NEON_CF_GEMM && j->o32) {   /* layout 8: one call per panel, A(i, k) = A[i + 32 k] */
            s.B = xg; s.ldb = j->isz; s.C = yg;
            s.pack = j->pack ? scratch : NULL;
            for (size_t q = m0 / 32; 32 * q < m1; q++) {
                const size_t i0 = 32 * q > m0 ? 32 * q : m0, i1 = 32 * q + 32 < m1 ? 32 * q + 32 : m1;
                s.A = j->w + 32 * q * (j->K - 1); s.sai = 1; s.sak = 32;   /* row i of panel q at w + 32 q K + i - 32 q */
                dse__neon_sgemm(&s, i0, i1, p0, p0 + cnt);
            }
        } else if (j->path == NEON_CF_GEMM) {   /* B = the image's K x P channel rows, columns [p0, p0 + cnt) */
            s.B = xg; s.ldb = j->isz; s.C = yg;
            s.pack = j->pack ? scratch : NULL;
            dse__neon_sgemm(&s, m0, m1, p0, p0 + cnt);
        } else {
            dse_f32_conv_im2col(g, j->cg, xg, p0, cnt, cnt, scratch);
            s.B = scratch; s.ldb = cnt; s.C = yg + p0;
            dse__neon_sgemm(&s, m0, m1, 0, cnt);
        }
    }
}

/* IMGS: part `it` = tile * msplit + chunk of output channels (B: K x nt, then C: M x tw). */
static void neon_cf_imgs_task(void *arg, size_t begin, size_t end, unsigned worker) {
    const neon_cf_job *j = arg;
    float *B = (float *)(void *)dse__worker_scratch(j->cx, worker), *cb = B + j->K * j->tw;
    const size_t total = j->g.N * j->P, M = j->g.M;
    size_t packed = (size_t)-1;
    for (size_t it = begin; it < end; it++) {
        const size_t tile = it / j->msplit, mc = it % j->msplit, u0 = tile * j->tw;
        const size_t nt = total - u0 < j->tw ? total - u0 : j->tw;
        const size_t m0 = mc * j->mchunk, m1 = m0 + j->mchunk < M ? m0 + j->mchunk : M;
        if (m0 >= m1) continue;
        if (tile != packed) dse_f32_conv_im2col_imgs(&j->g, j->x, u0, nt, nt, B), packed = tile;
        dse_sgemm s;
        memset(&s, 0, sizeof s);
        s.K = j->K;
        s.A = j->w; s.sai = j->K; s.sak = 1;
        s.B = B; s.ldb = nt;
        s.C = cb; s.ldc = j->tw;
        s.bias_m = j->b;
        s.act = j->act; s.lo = j->lo; s.hi = j->hi; s.act_fn = j->act_fn;
        dse__neon_sgemm(&s, m0, m1, 0, nt);
        dse_conv_imgs_store(j->y, cb, j->tw, u0, nt, j->P, M, m0, m1);
    }
}

void dse_f32_conv__neon(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    neon_cf_job j;
    dse_why why;
    memset(&j, 0, sizeof j);
    dse__conv_f32_geom(m, n, &j.g, &why);   /* validated at load */
    const dse_conv_geom *g = &j.g;
    dse_conv_plan pl;
    const size_t plan = dse__conv_f32_plan_bands(g, &pl, DSE_CONV_BANDS_FLOATS_V1);
    j.cx = cx;
    j.path = neon_cf_path(g);
    j.cg = g->C / g->G; j.mg = g->M / g->G;
    j.K = pl.K;
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
    j.o32 = m->tensors[n->in[1]].layout == DSE_LAYOUT_F32_O32;
    const size_t imgs = dse__conv_f32_imgs_plan(g, &j.tw);
    if (imgs && n->scratch >= imgs && !j.o32) {   /* IMGS: the check found its scratch */
        const size_t threads = dse__threads(cx);
        j.tw = dse_conv_imgs_tw(j.tw, g->N * j.P, threads, 8);
        const size_t units = (g->N * j.P + j.tw - 1) / j.tw, blocks = (g->M + 7) / 8;
        j.msplit = 1;
        if (threads > 1 && units < 4 * threads) {
            j.msplit = threads * 4 / units + 1;
            if (j.msplit > blocks) j.msplit = blocks;
        }
        j.mchunk = (blocks + j.msplit - 1) / j.msplit * 8;
        dse__parallel(cx, units * j.msplit, dse__grain(units * j.msplit, (uint64_t)g->N * g->M * j.P * j.K), neon_cf_imgs_task, &j);
        return;
    }
    size_t items;
    if (j.path == NEON_CF_DW) {
        items = g->N * g->M;
    } else {
        if (j.path == NEON_CF_GEMM) {
            j.pack = n->scratch && n->scratch >= plan;
            j.nt = dse__sgemm_pack_cols(j.K);   /* a packing chunk per part */
        } else {
            j.nt = neon_cf_tile(j.K, j.P, plan);
        }
        j.ntiles = (j.P + j.nt - 1) / j.nt;
        const size_t threads = dse__threads(cx), units = g->N * g->G * j.ntiles, blocks = (j.mg + 7) / 8;
        j.msplit = 1;
        if (threads > 1 && units < 4 * threads) {   /* too few tiles to share: split the channels */
            j.msplit = threads * 4 / units + 1;
            if (j.msplit > blocks) j.msplit = blocks;
        }
        j.mchunk = (blocks + j.msplit - 1) / j.msplit * 8;
        items = units * j.msplit;
    }
    dse__parallel(cx, items, dse__grain(items, (uint64_t)g->N * g->M * j.P * j.K), neon_cf_task, &j);
}

#endif
