/* loops.c: the inner loops of the compute-bound reference kernels, int8 and float32 Conv
 * (plain, grouped, depthwise) and the row-times-matrix core of Gemm and MatMul.
 *
 * They are plain functions of arrays, shapes and already-validated parameters: their kernels
 * (conv.c, conv_i8.c, gemm.c, gemm_i8.c, matmul.c, matmul_i8.c) read the node's attributes,
 * check it at load and call them at run time. Kept apart so that `dsedge export` can compile
 * this file for speed (-O2) and the rest of the library for size (-Os): a deployed bundle is
 * small and its hot loops are fast (runtimes/c/README.md). The arithmetic, and its order, is
 * each kernel's documented one (see the kernel's file); nothing here changes a result byte.
 */
#include "requant.h"

#define TILE 64   /* int32 accumulators kept on the stack per output-row tile */

/* -- int8 (docs/quant-arith.md §4; conv_i8.c and gemm_i8.c explain the arithmetic) --------- */

void dse_i8_conv_loop(const int8_t *x, const int8_t *w, int layout, const int32_t *bias, void *y, const dse_i8_out *o,
                      const dse_i8_geom *g, long long N, long long C, long long O, long long Cg) {
    const long long Og = O / (C / Cg);
    const long long ID = g->in[0], IH = g->in[1], IW = g->in[2], OD = g->out[0], OH = g->out[1], OW = g->out[2];
    const long long KD = g->k[0], KH = g->k[1], KW = g->k[2], KS = KD * KH * KW, sw = g->s[2], dw = g->d[2];
    const size_t Kb = (size_t)(Cg * KS + 3) / 4;   /* layout 1: k-blocks per 8-row band */
    const int zp = o->zp_in;
    size_t idx = 0;   /* output element index, row-major (N, O, D, H, W) */
    for (long long b = 0; b < N; b++)
        for (long long oc = 0; oc < O; oc++) {
            const int8_t *xg = x + (b * C + oc / Og * Cg) * ID * IH * IW;
            const int8_t *wo = layout ? w : w + oc * Cg * KS;
            for (long long od = 0; od < OD; od++)
                for (long long oh = 0; oh < OH; oh++)
                    for (long long ow0 = 0; ow0 < OW; ow0 += TILE) {
                        const long long tn = OW - ow0 < TILE ? OW - ow0 : TILE;
                        int32_t acc[TILE] = {0};
                        for (long long ci = 0; ci < Cg; ci++)
                            for (long long kd = 0; kd < KD; kd++) {
                                const long long id = od * g->s[0] + kd * g->d[0] - g->pb[0];
                                if (id < 0 || id >= ID) continue;
                                for (long long kh = 0; kh < KH; kh++) {
                                    const long long ih = oh * g->s[1] + kh * g->d[1] - g->pb[1];
                                    if (ih < 0 || ih >= IH) continue;
                                    const int8_t *xr = xg + ((ci * ID + id) * IH + ih) * IW;
                                    const long long k0 = ((ci * KD + kd) * KH + kh) * KW;   /* k of kw = 0 */
                                    for (long long kw = 0; kw < KW; kw++) {
                                        const int32_t wv = layout ? wo[dse__n8k4_index(Kb, (size_t)oc, (size_t)(k0 + kw))] : wo[k0 + kw];
                                        const long long off = kw * dw - g->pb[2];   /* iw = ow * sw + off */
                                        long long lo = off >= 0 ? 0 : (-off + sw - 1) / sw;
                                        long long hi = IW - 1 - off < 0 ? 0 : (IW - 1 - off) / sw + 1;
                                        if (lo < ow0) lo = ow0;
                                        if (hi > ow0 + tn) hi = ow0 + tn;
                                        for (long long ow = lo; ow < hi; ow++)
                                            acc[ow - ow0] += ((int32_t)xr[ow * sw + off] - zp) * wv;
                                    }
                                }
                            }
                        for (long long j = 0; j < tn; j++, idx++)
                            dse_i8_store(o, y, idx, (size_t)oc, (int64_t)acc[j] + bias[oc]);
                    }
        }
}

void dse_i8_gemm_rows(const int8_t *x, size_t rows, size_t K, const int8_t *w, int layout, size_t N, int transB,
                      const int32_t *bias, const dse_i8_out *o, void *y) {
    const int32_t zp = o->zp_in;
    const size_t Kb = (K + 3) / 4;
    for (size_t r = 0; r < rows; r++) {
        const int8_t *xr = x + r * K;
        if (layout) {   /* packed W[N][K]: row j's k-block kb is 4 bytes at ((j/8)*Kb + kb)*32 + (j%8)*4 */
            for (size_t j = 0; j < N; j++) {
                const int8_t *band = w + dse__n8k4_index(Kb, j, 0);
                int32_t acc = 0;
                for (size_t k = 0; k < K; k++) acc += ((int32_t)xr[k] - zp) * band[(k >> 2) * 32 + (k & 3)];
                dse_i8_store(o, y, r * N + j, j, (int64_t)acc + bias[j]);
            }
            continue;
        }
        if (transB) {
            for (size_t j = 0; j < N; j++) {
                const int8_t *wr = w + j * K;
                int32_t acc = 0;
                for (size_t k = 0; k < K; k++) acc += ((int32_t)xr[k] - zp) * wr[k];
                dse_i8_store(o, y, r * N + j, j, (int64_t)acc + bias[j]);
            }
            continue;
        }
        for (size_t j0 = 0; j0 < N; j0 += TILE) {
            const size_t tn = N - j0 < TILE ? N - j0 : TILE;
            int32_t acc[TILE] = {0};
            for (size_t k = 0; k < K; k++) {
                const int32_t xv = (int32_t)xr[k] - zp;
                const int8_t *wr = w + k * N + j0;
                for (size_t j = 0; j < tn; j++) acc[j] += xv * wr[j];
            }
            for (size_t j = 0; j < tn; j++) dse_i8_store(o, y, r * N + j0 + j, j0 + j, (int64_t)acc[j] + bias[j0 + j]);
        }
    }
}

/* -- float32 (reduction orders: conv.c, gemm.c, matmul.c) -------------------------------------- */

static float ld(const void *p, int f16, size_t i) {
    return f16 ? dse__f16_to_f32(((const uint16_t *)p)[i]) : ((const float *)p)[i];
}

void dse_f32_conv_loop(const dse_conv_geom *g, const float *x, const void *w, int w16, const void *b, int b16,
                       int act, float lo, float hi, float *y) {
    const size_t cg = g->C / g->G, mg = g->M / g->G;
    const size_t isz = g->in[0] * g->in[1] * g->in[2], osz = g->out[0] * g->out[1] * g->out[2];
    const size_t ksz = (size_t)(g->k[0] * g->k[1] * g->k[2]);
    for (size_t bi = 0; bi < g->N; bi++)
        for (size_t oc = 0; oc < g->M; oc++) {
            const float *xg = x + (bi * g->C + oc / mg * cg) * isz;
            const size_t wbase = oc * cg * ksz;
            const float bias = b ? ld(b, b16, oc) : 0.0f;
            float *yo = y + (bi * g->M + oc) * osz;
            for (size_t od = 0; od < g->out[0]; od++)
                for (size_t oh = 0; oh < g->out[1]; oh++)
                    for (size_t ow = 0; ow < g->out[2]; ow++) {
                        float acc = 0.0f;
                        const int64_t d0 = (int64_t)od * g->s[0] - g->pb[0], h0 = (int64_t)oh * g->s[1] - g->pb[1],
                                      w0 = (int64_t)ow * g->s[2] - g->pb[2];
                        for (size_t c = 0; c < cg; c++) {
                            const float *xc = xg + c * isz;
                            size_t wi = wbase + c * ksz;
                            for (int64_t kd = 0; kd < g->k[0]; kd++) {
                                const int64_t id = d0 + kd * g->d[0];
                                if (id < 0 || id >= (int64_t)g->in[0]) { wi += (size_t)(g->k[1] * g->k[2]); continue; }
                                for (int64_t kh = 0; kh < g->k[1]; kh++) {
                                    const int64_t ih = h0 + kh * g->d[1];
                                    if (ih < 0 || ih >= (int64_t)g->in[1]) { wi += (size_t)g->k[2]; continue; }
                                    const float *xr = xc + ((size_t)id * g->in[1] + (size_t)ih) * g->in[2];
                                    for (int64_t kw = 0; kw < g->k[2]; kw++, wi++) {
                                        const int64_t iw = w0 + kw * g->d[2];
                                        if (iw < 0 || iw >= (int64_t)g->in[2]) continue;
                                        const float wv = w16 ? dse__f16_to_f32(((const uint16_t *)w)[wi]) : ((const float *)w)[wi];
                                        acc = acc + xr[iw] * wv;
                                    }
                                }
                            }
                        }
                        float v = b ? acc + bias : acc;
                        if (act) { v = v < lo ? lo : v; v = v > hi ? hi : v; }
                        yo[(od * g->out[1] + oh) * g->out[2] + ow] = v;
                    }
        }
}

void dse_f32_gemm_rows(const float *A, size_t sai, size_t sak, const void *B, int b16, size_t sbk, size_t sbj,
                       size_t M, size_t K, size_t N, float *Y) {
    for (size_t i = 0; i < M; i++) {
        float *yr = Y + i * N;
        for (size_t j = 0; j < N; j++) yr[j] = 0.0f;
        for (size_t k = 0; k < K; k++) {
            const float av = A[i * sai + k * sak];
            if (!b16) {
                const float *br = (const float *)B + k * sbk;
                for (size_t j = 0; j < N; j++) yr[j] = yr[j] + av * br[j * sbj];
            } else {
                for (size_t j = 0; j < N; j++) yr[j] = yr[j] + av * ld(B, 1, k * sbk + j * sbj);
            }
        }
    }
}
