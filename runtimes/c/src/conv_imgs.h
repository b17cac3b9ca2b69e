/* conv_imgs.h: the float Conv IMGS path's im2col (kernels/avx2/conv.c, kernels/neon/conv_f32.c;
 * dse__conv_f32_imgs_plan, kernels/ref/conv.c): group 1, columns [u0, u0 + nt) across the batch x
 * (column u: image u / P, pixel u % P), nt <= DSE_CONV_IMGS_TW, as panels of pw columns
 * (dst[(u / pw) * K * pw + k * pw + u % pw]; pw = nt: a row-major K x nt block), per tap k in REF's
 * order (c, kd, kh, kw), each column's input or 0 in the padding. A header so that each optimised
 * variant compiles it in its own (hot) unit. */
#ifndef DSE_CONV_IMGS_H
#define DSE_CONV_IMGS_H
#include "internal.h"

static inline void dse_f32_conv_im2col_imgs(const dse_conv_geom *g, const float *x, size_t u0, size_t nt, size_t pw, float *dst) {
    const size_t K = g->C * (size_t)(g->k[0] * g->k[1] * g->k[2]), OW = g->out[2], OHW = g->out[1] * g->out[2];
    const size_t P = g->out[0] * OHW, isz = g->in[0] * g->in[1] * g->in[2];
    const int64_t ID = (int64_t)g->in[0], IH = (int64_t)g->in[1], IW = (int64_t)g->in[2];
    int64_t oz[DSE_CONV_IMGS_TW], oy[DSE_CONV_IMGS_TW], ox[DSE_CONV_IMGS_TW];
    const float *xb[DSE_CONV_IMGS_TW];
    if (nt > DSE_CONV_IMGS_TW) return;   /* (the plan's tiles are at most this wide) */
    for (size_t u = 0; u < nt; u++) {
        const size_t img = (u0 + u) / P, p = (u0 + u) % P;
        oz[u] = (int64_t)(p / OHW) * g->s[0] - g->pb[0];
        oy[u] = (int64_t)(p / OW % g->out[1]) * g->s[1] - g->pb[1];
        ox[u] = (int64_t)(p % OW) * g->s[2] - g->pb[2];
        xb[u] = x + img * g->C * isz;
    }
    if (nt % pw) {   /* the last panel's lanes past nt */
        float *last = dst + nt / pw * K * pw;
        for (size_t k = 0; k < K; k++) memset(last + k * pw + nt % pw, 0, (pw - nt % pw) * sizeof(float));
    }
    size_t k = 0;
    for (size_t c = 0; c < g->C; c++)
        for (int64_t kd = 0; kd < g->k[0]; kd++)
            for (int64_t kh = 0; kh < g->k[1]; kh++)
                for (int64_t kw = 0; kw < g->k[2]; kw++, k++) {
                    const int64_t dz = kd * g->d[0], dy = kh * g->d[1], dx = kw * g->d[2];
                    const size_t co = c * isz;
                    for (size_t u = 0; u < nt; u++) {
                        const int64_t id = oz[u] + dz, ih = oy[u] + dy, iw = ox[u] + dx;
                        const int in = (uint64_t)id < (uint64_t)ID && (uint64_t)ih < (uint64_t)IH && (uint64_t)iw < (uint64_t)IW;
                        dst[u / pw * K * pw + k * pw + u % pw] = in ? xb[u][co + (size_t)((id * IH + ih) * IW + iw)] : 0.0f;
                    }
                }
}

/* The tile width with th threads: where the batch's NP columns make fewer tiles of tw than threads,
 * narrower tiles (multiples of mult) rather than parts of one tile that would each gather it. */
static inline size_t dse_conv_imgs_tw(size_t tw, size_t NP, size_t th, size_t mult) {
    if (th <= 1 || NP >= th * tw) return tw;
    const size_t w = ((NP + th - 1) / th + mult - 1) / mult * mult;
    return w < tw ? w : tw;
}

/* The product's columns [0, nt) (columns u0 .. u0 + nt - 1 of the batch), rows [m0, m1), from C
 * (row stride tw) to y (N x M x P), image by image. */
static inline void dse_conv_imgs_store(float *y, const float *cb, size_t tw, size_t u0, size_t nt, size_t P, size_t M,
                                       size_t m0, size_t m1) {
    for (size_t u = 0; u < nt;) {
        const size_t img = (u0 + u) / P, p = (u0 + u) % P, cnt = P - p < nt - u ? P - p : nt - u;
        float *yi = y + img * M * P + p;
        for (size_t i = m0; i < m1; i++) memcpy(yi + i * P, cb + i * tw + u, cnt * sizeof(float));
        u += cnt;
    }
}

#endif
