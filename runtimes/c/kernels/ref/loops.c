/* loops.c: the inner loops of the compute-bound reference kernels, int8 and float32 Conv
 * (plain, grouped, depthwise) and the row-times-matrix core of Gemm and MatMul.
 *
 * They are plain functions of arrays, shapes and already-validated parameters: their kernels
 * (conv.c, conv_i8.c, gemm.c, gemm_i8.c, matmul.c, matmul_i8.c) read the node's attributes,
 * check it at load and call them at run time. Kept apart so that `dsedge export` can compile
 * this file for speed (-O2) and the rest of the library for size (-Os): a deployed bundle is
 * small and its hot loops are fast (runtimes/c/README.md). The arithmetic, and its order, is
 * each kernel's documented one (see the kernel's file); nothing here changes a result byte.
 *
 * Threads: each loop cuts its outputs into items (an output row of a Conv; a row times a tile
 * of columns of a Gemm) and hands ranges of items to the session's threads (dse__parallel).
 * An item is computed whole by one thread in the serial order, so every thread count gives
 * the same bytes. Nodes too small to pay for a hand-off run on the caller's thread.
 */
#include "requant.h"
#include "mathf.h"

#define TILE 64   /* int32 accumulators kept on the stack per output-row tile */

/* -- int8 (docs/quant-arith.md §4; conv_i8.c and gemm_i8.c explain the arithmetic) --------- */

/* Work below which a node is not split (multiply-adds per range): a hand-off costs a few
 * microseconds, a range should cost much more. */
#define LOOPS_MIN_MACS ((size_t)DSE_PAR_MIN_WORK)   /* internal.h */

static size_t loops_grain(size_t work_per_item) {
    return work_per_item >= LOOPS_MIN_MACS ? 1 : LOOPS_MIN_MACS / (work_per_item ? work_per_item : 1);
}

typedef struct {
    const int8_t *x, *w;
    const int32_t *bias;
    void *y;
    const dse_i8_out *o;
    const dse_i8_geom *g;
    long long C, O, Cg;
    int layout;   /* w: 0 row-major, 1 packed (group 1: W[O][Cg*kernel], internal.h dse__n8k4_index) */
} loops_i8_conv_job;

/* Output rows [r0, r1) of all N * O * OD * OH rows (each row: OW outputs, written by one range). */
static void loops_i8_conv_rows(void *arg, size_t r0, size_t r1, unsigned worker) {
    (void)worker;
    const loops_i8_conv_job *j = arg;
    const int8_t *x = j->x, *w = j->w;
    const int32_t *bias = j->bias;
    const dse_i8_out *o = j->o;
    const dse_i8_geom *g = j->g;
    const long long C = j->C, O = j->O, Cg = j->Cg, Og = O / (C / Cg);
    const long long ID = g->in[0], IH = g->in[1], IW = g->in[2], OD = g->out[0], OH = g->out[1], OW = g->out[2];
    const long long KD = g->k[0], KH = g->k[1], KW = g->k[2], KS = KD * KH * KW, sw = g->s[2], dw = g->d[2];
    const size_t Kb = (size_t)(Cg * KS + 3) / 4;   /* layout 1: k-blocks per 8-row band */
    const int zp = o->zp_in, layout = j->layout;
    size_t idx = r0 * (size_t)OW;   /* output element index, row-major (N, O, D, H, W) */
    for (size_t r = r0; r < r1; r++) {
        const long long oh = (long long)(r % (size_t)OH), od = (long long)(r / (size_t)OH % (size_t)OD);
        const long long boc = (long long)(r / ((size_t)OH * (size_t)OD)), oc = boc % O, b = boc / O;
        const int8_t *xg = x + (b * C + oc / Og * Cg) * ID * IH * IW;
        const int8_t *wo = layout ? w : w + oc * Cg * KS;
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
            for (long long t = 0; t < tn; t++, idx++)
                dse_i8_store(o, j->y, idx, (size_t)oc, (int64_t)acc[t] + bias[oc]);
        }
    }
}

void dse_i8_conv_loop(const dse_ctx *cx, const int8_t *x, const int8_t *w, int layout, const int32_t *bias, void *y,
                      const dse_i8_out *o, const dse_i8_geom *g, long long N, long long C, long long O, long long Cg) {
    loops_i8_conv_job j = {x, w, bias, y, o, g, C, O, Cg, layout};
    const size_t rows = (size_t)(N * O * g->out[0] * g->out[1]);
    dse__parallel(cx, rows, loops_grain((size_t)(g->out[2] * Cg * g->k[0] * g->k[1] * g->k[2])), loops_i8_conv_rows, &j);
}

typedef struct {
    const int8_t *x, *w;
    size_t K, N, nb;
    int transB, layout;   /* layout 1/2: w is the packed W[N][K] (transB ignored) */
    const int32_t *bias;
    const dse_i8_out *o;
    void *y;
} loops_i8_gemm_job;

/* Items [i0, i1) of rows x nb: item i is row i / nb, output columns [TILE * (i % nb), +TILE). */
static void loops_i8_gemm_part(void *arg, size_t i0, size_t i1, unsigned worker) {
    (void)worker;
    const loops_i8_gemm_job *jb = arg;
    const size_t K = jb->K, N = jb->N;
    const int32_t zp = jb->o->zp_in;
    for (size_t i = i0; i < i1; i++) {
        const size_t r = i / jb->nb, j0 = i % jb->nb * TILE, tn = N - j0 < TILE ? N - j0 : TILE;
        const int8_t *xr = jb->x + r * K;
        if (jb->layout) {   /* packed W[N][K]: row j's k-block kb is 4 bytes at ((j/8)*Kb + kb)*32 + (j%8)*4 */
            const size_t Kb = (K + 3) / 4;
            for (size_t j = j0; j < j0 + tn; j++) {
                const int8_t *band = jb->w + dse__n8k4_index(Kb, j, 0);
                int32_t acc = 0;
                for (size_t k = 0; k < K; k++) acc += ((int32_t)xr[k] - zp) * band[(k >> 2) * 32 + (k & 3)];
                dse_i8_store(jb->o, jb->y, r * N + j, j, (int64_t)acc + jb->bias[j]);
            }
            continue;
        }
        if (jb->transB) {
            for (size_t j = j0; j < j0 + tn; j++) {
                const int8_t *wr = jb->w + j * K;
                int32_t acc = 0;
                for (size_t k = 0; k < K; k++) acc += ((int32_t)xr[k] - zp) * wr[k];
                dse_i8_store(jb->o, jb->y, r * N + j, j, (int64_t)acc + jb->bias[j]);
            }
            continue;
        }
        int32_t acc[TILE] = {0};
        for (size_t k = 0; k < K; k++) {
            const int32_t xv = (int32_t)xr[k] - zp;
            const int8_t *wr = jb->w + k * N + j0;
            for (size_t j = 0; j < tn; j++) acc[j] += xv * wr[j];
        }
        for (size_t j = 0; j < tn; j++) dse_i8_store(jb->o, jb->y, r * N + j0 + j, j0 + j, (int64_t)acc[j] + jb->bias[j0 + j]);
    }
}

void dse_i8_gemm_rows(const dse_ctx *cx, const int8_t *x, size_t rows, size_t K, const int8_t *w, int layout, size_t N,
                      int transB, const int32_t *bias, const dse_i8_out *o, void *y) {
    loops_i8_gemm_job j = {x, w, K, N, (N + TILE - 1) / TILE, transB, layout, bias, o, y};
    dse__parallel(cx, rows * j.nb, loops_grain(K * (N < TILE ? N : TILE)), loops_i8_gemm_part, &j);
}

/* -- int4 weights, int8 activations (W4A8; kernels/ref/w4a8.c explains the arithmetic) -------- */

/* W[r][k] of an int4 row packed along K (layouts 3/4): the low nibble for even k, sign-extended. */
static inline int32_t w4_at(const uint8_t *row, size_t k) {
    const int32_t b = row[k >> 1];
    return (((k & 1) ? b >> 4 : b & 15) ^ 8) - 8;
}

/* Row r of int4 weights: rows of ceil(K/2) bytes (layouts 3/4), or in the N8K4 blocks of layouts
 * 6/7 (internal.h: byte ((r/8)*Kb + k/4)*16 + (r%4)*4 + k%4, nibble (r%8)/4): p is the row's byte
 * for k = 0 and shift its nibble. */
typedef struct {
    const uint8_t *p;
    int shift, blocked;
} w4_row;

static inline w4_row w4_row_of(const uint8_t *w, int blocked, size_t K, size_t r) {
    w4_row rw = {w + r * ((K + 1) / 2), 0, 0};
    if (blocked) rw.p = w + (r >> 3) * ((K + 3) / 4) * 16 + (r & 3) * 4, rw.shift = (r & 4) ? 4 : 0, rw.blocked = 1;
    return rw;
}

static inline int32_t w4_get(const w4_row *rw, size_t k) {
    if (!rw->blocked) return w4_at(rw->p, k);
    return (((rw->p[(k >> 2) * 16 + (k & 3)] >> rw->shift) & 15) ^ 8) - 8;
}

typedef struct {
    const int8_t *x;
    const uint8_t *w;
    int blocked;         /* layouts 6/7 */
    const int8_t *mul;   /* NULL: per channel; else mul[oc * G + k / group] */
    size_t group, G;
    const int32_t *bias;
    void *y;
    const dse_i8_out *o;
    const dse_i8_geom *g;
    long long C, O, Cg;
} loops_w4_conv_job;

/* The int8 Conv loop nest (loops_i8_conv_rows) with each tap's weight m * q read from the int4
 * row: the same integers as the reference's int8 weights m * q. */
static void loops_w4_conv_rows(void *arg, size_t r0, size_t r1, unsigned worker) {
    (void)worker;
    const loops_w4_conv_job *j = arg;
    const int8_t *x = j->x;
    const int32_t *bias = j->bias;
    const dse_i8_out *o = j->o;
    const dse_i8_geom *g = j->g;
    const long long C = j->C, O = j->O, Cg = j->Cg, Og = O / (C / Cg);
    const long long ID = g->in[0], IH = g->in[1], IW = g->in[2], OD = g->out[0], OH = g->out[1], OW = g->out[2];
    const long long KD = g->k[0], KH = g->k[1], KW = g->k[2], KS = KD * KH * KW, sw = g->s[2], dw = g->d[2];
    const size_t K = (size_t)(Cg * KS);
    const int zp = o->zp_in;
    size_t idx = r0 * (size_t)OW;
    for (size_t r = r0; r < r1; r++) {
        const long long oh = (long long)(r % (size_t)OH), od = (long long)(r / (size_t)OH % (size_t)OD);
        const long long boc = (long long)(r / ((size_t)OH * (size_t)OD)), oc = boc % O, b = boc / O;
        const int8_t *xg = x + (b * C + oc / Og * Cg) * ID * IH * IW;
        const w4_row wo = w4_row_of(j->w, j->blocked, K, (size_t)oc);
        const int8_t *mo = j->mul ? j->mul + (size_t)oc * j->G : NULL;
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
                        const long long k0 = ((ci * KD + kd) * KH + kh) * KW;
                        for (long long kw = 0; kw < KW; kw++) {
                            const size_t k = (size_t)(k0 + kw);
                            const int32_t wv = w4_get(&wo, k) * (mo ? (int32_t)mo[k / j->group] : 1);
                            const long long off = kw * dw - g->pb[2];
                            long long lo = off >= 0 ? 0 : (-off + sw - 1) / sw;
                            long long hi = IW - 1 - off < 0 ? 0 : (IW - 1 - off) / sw + 1;
                            if (lo < ow0) lo = ow0;
                            if (hi > ow0 + tn) hi = ow0 + tn;
                            for (long long ow = lo; ow < hi; ow++)
                                acc[ow - ow0] += ((int32_t)xr[ow * sw + off] - zp) * wv;
                        }
                    }
                }
            for (long long t = 0; t < tn; t++, idx++)
                dse_i8_store(o, j->y, idx, (size_t)oc, (int64_t)acc[t] + bias[oc]);
        }
    }
}

void dse_w4_conv_loop(const dse_ctx *cx, const int8_t *x, const uint8_t *w, int blocked, const int8_t *mul, size_t group,
                      const int32_t *bias, void *y, const dse_i8_out *o, const dse_i8_geom *g, long long N, long long C,
                      long long O, long long Cg) {
    const size_t K = (size_t)(Cg * g->k[0] * g->k[1] * g->k[2]);
    loops_w4_conv_job j = {x, w, blocked, mul, group, group ? (K + group - 1) / group : 1, bias, y, o, g, C, O, Cg};
    const size_t rows = (size_t)(N * O * g->out[0] * g->out[1]);
    dse__parallel(cx, rows, loops_grain((size_t)g->out[2] * K), loops_w4_conv_rows, &j);
}

typedef struct {
    const int8_t *x;
    const uint8_t *w;
    int blocked;
    const int8_t *mul;
    size_t group, G, K, N, nb;
    const int32_t *bias;
    const dse_i8_out *o;
    void *y;
} loops_w4_gemm_job;

/* Items [i0, i1) of rows x nb: row i / nb times the W rows (output columns) [TILE * (i % nb), +TILE),
 * each a dot product along K: per group the partial sum of (x - zp) * q, then acc += m * partial. */
static void loops_w4_gemm_part(void *arg, size_t i0, size_t i1, unsigned worker) {
    (void)worker;
    const loops_w4_gemm_job *jb = arg;
    const size_t K = jb->K, N = jb->N, gs = jb->mul ? jb->group : K;
    const int32_t zp = jb->o->zp_in;
    for (size_t i = i0; i < i1; i++) {
        const size_t r = i / jb->nb, j0 = i % jb->nb * TILE, tn = N - j0 < TILE ? N - j0 : TILE;
        const int8_t *xr = jb->x + r * K;
        for (size_t j = j0; j < j0 + tn; j++) {
            const w4_row wr = w4_row_of(jb->w, jb->blocked, K, j);
            int32_t acc = 0;
            for (size_t k0 = 0, gi = 0; k0 < K; k0 += gs, gi++) {
                const size_t k1 = K - k0 < gs ? K : k0 + gs;
                int32_t part = 0;
                if (wr.blocked)
                    for (size_t k = k0; k < k1; k++)
                        part += ((int32_t)xr[k] - zp) * (((((int32_t)wr.p[(k >> 2) * 16 + (k & 3)] >> wr.shift) & 15) ^ 8) - 8);
                else
                    for (size_t k = k0; k < k1; k++) part += ((int32_t)xr[k] - zp) * w4_at(wr.p, k);
                acc += jb->mul ? (int32_t)jb->mul[j * jb->G + gi] * part : part;
            }
            dse_i8_store(jb->o, jb->y, r * N + j, j, (int64_t)acc + jb->bias[j]);
        }
    }
}

void dse_w4_gemm_rows(const dse_ctx *cx, const int8_t *x, size_t rows, size_t K, const uint8_t *w, int blocked,
                      const int8_t *mul, size_t group, size_t N, const int32_t *bias, const dse_i8_out *o, void *y) {
    loops_w4_gemm_job j = {x, w, blocked, mul, group, group ? (K + group - 1) / group : 1, K, N, (N + TILE - 1) / TILE, bias, o, y};
    dse__parallel(cx, rows * j.nb, loops_grain(K * (N < TILE ? N : TILE)), loops_w4_gemm_part, &j);
}

/* -- float32 (reduction orders: conv.c, gemm.c, matmul.c) -------------------------------------- */

static float ld(const void *p, int f16, size_t i) {
    return f16 ? dse__f16_to_f32(((const uint16_t *)p)[i]) : ((const float *)p)[i];
}

typedef struct {
    const dse_conv_geom *g;
    const float *x;
    const void *w, *b;
    int w16, b16, act;
    float lo, hi;
    int act_fn;
    float *y;
    int o32;   /* the weight in layout 8 (internal.h dse__o32_index) */
} loops_f32_conv_job;

/* Output rows [r0, r1) of all N * M * OD * OH rows (each: OW outputs, written by one range). */
static void loops_f32_conv_rows(void *arg, size_t r0, size_t r1, unsigned worker) {
    (void)worker;
    const loops_f32_conv_job *j = arg;
    const dse_conv_geom *g = j->g;
    const void *w = j->w, *b = j->b;
    const int w16 = j->w16;
    const size_t cg = g->C / g->G, mg = g->M / g->G;
    const size_t isz = g->in[0] * g->in[1] * g->in[2], osz = g->out[0] * g->out[1] * g->out[2];
    const size_t ksz = (size_t)(g->k[0] * g->k[1] * g->k[2]);
    for (size_t r = r0; r < r1; r++) {
        const size_t oh = r % g->out[1], od = r / g->out[1] % g->out[0], boc = r / (g->out[1] * g->out[0]);
        const size_t oc = boc % g->M, bi = boc / g->M;
        const float *xg = j->x + (bi * g->C + oc / mg * cg) * isz;
        /* tap k of output channel oc: w[wbase + k * wstep] (layout 0: oc * K + k; layout 8: its panel) */
        const size_t wbase = j->o32 ? dse__o32_index(oc, 0, cg * ksz) : oc * cg * ksz, wstep = j->o32 ? 32 : 1;
        const float bias = b ? ld(b, j->b16, oc) : 0.0f;
        float *yo = j->y + (bi * g->M + oc) * osz;
        for (size_t ow = 0; ow < g->out[2]; ow++) {
            float acc = 0.0f;
            const int64_t d0 = (int64_t)od * g->s[0] - g->pb[0], h0 = (int64_t)oh * g->s[1] - g->pb[1],
                          w0 = (int64_t)ow * g->s[2] - g->pb[2];
            for (size_t c = 0; c < cg; c++) {
                const float *xc = xg + c * isz;
                size_t wi = c * ksz;
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
                            const size_t wx = wbase + wi * wstep;
                            const float wv = w16 ? dse__f16_to_f32(((const uint16_t *)w)[wx]) : ((const float *)w)[wx];
                            acc = acc + xr[iw] * wv;
                        }
                    }
                }
            }
            float v = b ? acc + bias : acc;
            if (j->act) { v = v < j->lo ? j->lo : v; v = v > j->hi ? j->hi : v; }
            if (j->act_fn) v = dse__act_fnf(j->act_fn, v);
            yo[(od * g->out[1] + oh) * g->out[2] + ow] = v;
        }
    }
}

void dse_f32_conv_loop(const dse_ctx *cx, const dse_conv_geom *g, const float *x, const void *w, int w16, const void *b,
                       int b16, int act, float lo, float hi, int act_fn, float *y) {
    loops_f32_conv_job j = {g, x, w, b, w16 == 1, b16, act, lo, hi, act_fn, y, w16 == 2};
    const size_t rows = g->N * g->M * g->out[0] * g->out[1];
    dse__parallel(cx, rows, loops_grain(g->out[2] * (g->C / g->G) * (size_t)(g->k[0] * g->k[1] * g->k[2])), loops_f32_conv_rows, &j);
}

/* dse_f32_conv_im2col (internal.h): per tap k, the tile's pixels output row by output row; in a
 * row, the columns whose tap lies inside [0, IW) are copied (stride sw), the others are 0. */
void dse_f32_conv_im2col(const dse_conv_geom *g, size_t cg, const float *xg, size_t p0, size_t nt, size_t pw, float *dst) {
    const size_t K = cg * (size_t)(g->k[0] * g->k[1] * g->k[2]), OW = g->out[2], OH = g->out[1];
    const size_t IH = g->in[1], IW = g->in[2], ID = g->in[0];
    if (nt % pw) {
        float *last = dst + nt / pw * K * pw;
        for (size_t k = 0; k < K; k++) memset(last + k * pw + nt % pw, 0, (pw - nt % pw) * sizeof(float));
    }
    const size_t jump = K * pw - pw;   /* from the last column of a panel to the first of the next */
    size_t k = 0;
    for (size_t c = 0; c < cg; c++)
        for (int64_t kd = 0; kd < g->k[0]; kd++)
            for (int64_t kh = 0; kh < g->k[1]; kh++)
                for (int64_t kw = 0; kw < g->k[2]; kw++, k++) {
                    const int64_t offw = kw * g->d[2] - g->pb[2], sw = g->s[2];
                    /* output columns whose tap lies inside [0, IW): ow in [wlo, whi) */
                    const int64_t wlo = offw >= 0 ? 0 : (-offw + sw - 1) / sw;
                    const int64_t whi = (int64_t)IW - 1 - offw < 0 ? 0 : ((int64_t)IW - 1 - offw) / sw + 1;
                    size_t od = p0 / (OH * OW), oh = p0 / OW % OH, ow0 = p0 % OW, q = 0, lane = 0;
                    float *d = dst + k * pw;
                    while (q < nt) {   /* a segment: columns [ow0, ow0 + cnt) of output row (od, oh) */
                        const size_t cnt = OW - ow0 < nt - q ? OW - ow0 : nt - q;
                        const int64_t id = (int64_t)od * g->s[0] + kd * g->d[0] - g->pb[0];
                        const int64_t ih = (int64_t)oh * g->s[1] + kh * g->d[1] - g->pb[1];
                        const int rok = id >= 0 && id < (int64_t)ID && ih >= 0 && ih < (int64_t)IH;
                        /* zero before a0 and from a1, else the tap */
                        int64_t a0 = wlo > (int64_t)ow0 ? wlo : (int64_t)ow0, a1 = whi < (int64_t)(ow0 + cnt) ? whi : (int64_t)(ow0 + cnt);
                        if (!rok || a1 < a0) a0 = a1 = (int64_t)(ow0 + cnt);
                        int64_t ow = (int64_t)ow0;
                        for (; ow < a0; ow++) { *d++ = 0.0f; if (++lane == pw) { lane = 0; d += jump; } }
                        const float *src = rok ? xg + ((c * ID + (size_t)id) * IH + (size_t)ih) * IW + ow * sw + offw : xg;
                        for (; ow < a1; ow++, src += sw) { *d++ = *src; if (++lane == pw) { lane = 0; d += jump; } }
                        for (; ow < (int64_t)(ow0 + cnt); ow++) { *d++ = 0.0f; if (++lane == pw) { lane = 0; d += jump; } }
                        q += cnt;
                        ow0 = 0;
                        if (++oh == OH) oh = 0, od++;
                    }
                }
}

#define F32_TILE 256   /* float outputs of one row per work item: its sums stay in L1 */

typedef struct {
    const float *A;
    size_t sai, sak;
    const void *B;
    int b16;
    size_t sbk, sbj, K, N, nb;
    float *Y;
} loops_f32_gemm_job;

/* Items [i0, i1) of M x nb: item i is row i / nb, columns [F32_TILE * (i % nb), +F32_TILE); each
 * output is the one sequential sum over k, whatever the split. */
static void loops_f32_gemm_part(void *arg, size_t i0, size_t i1, unsigned worker) {
    (void)worker;
    const loops_f32_gemm_job *jb = arg;
    const size_t K = jb->K, N = jb->N, sbk = jb->sbk, sbj = jb->sbj;
    for (size_t it = i0; it < i1; it++) {
        const size_t i = it / jb->nb, j0 = it % jb->nb * F32_TILE, j1 = N - j0 < F32_TILE ? N : j0 + F32_TILE;
        float *yr = jb->Y + i * N;
        for (size_t j = j0; j < j1; j++) yr[j] = 0.0f;
        for (size_t k = 0; k < K; k++) {
            const float av = jb->A[i * jb->sai + k * jb->sak];
            if (!jb->b16) {
                const float *br = (const float *)jb->B + k * sbk;
                for (size_t j = j0; j < j1; j++) yr[j] = yr[j] + av * br[j * sbj];
            } else if (jb->b16 >= 2) {   /* layout 9: B[K][N] (2), or B stored [N][K] (3, Gemm transB) */
                const float *bf = (const float *)jb->B;
                for (size_t j = j0; j < j1; j++)
                    yr[j] = yr[j] + av * bf[jb->b16 == 2 ? dse__p16_index(k, j, K, N) : dse__p16_index(j, k, N, K)];
            } else {
                for (size_t j = j0; j < j1; j++) yr[j] = yr[j] + av * ld(jb->B, 1, k * sbk + j * sbj);
            }
        }
    }
}

void dse_f32_gemm_rows(const dse_ctx *cx, const float *A, size_t sai, size_t sak, const void *B, int b16, size_t sbk,
                       size_t sbj, size_t M, size_t K, size_t N, float *Y) {
    loops_f32_gemm_job j = {A, sai, sak, B, b16, sbk, sbj, K, N, (N + F32_TILE - 1) / F32_TILE, Y};
    dse__parallel(cx, M * j.nb, loops_grain(K * (N < F32_TILE ? N : F32_TILE)), loops_f32_gemm_part, &j);
}

/* -- the optimised float Gemm/MatMul driver (dse_f32_sgemm_batched, internal.h) ------------- */

typedef struct {
    const dse_ctx *cx;
    const dse_mm_geom *g;
    const dse_sgemm *s;
    dse_sgemm_fn fn;
    int pack, by_rows, p16;   /* p16: B one [K][N] matrix in layout 9, N >= 16 (internal.h dse__p16_index) */
    size_t rb, cb, per;   /* per batch: `per` parts of rb rows or cb columns (p16: cb a multiple of 16) */
} loops_sgemm_job;

static void loops_sgemm_parts(void *arg, size_t begin, size_t end, unsigned worker) {
    const loops_sgemm_job *j = arg;
    const dse_mm_geom *g = j->g;
    for (size_t it = begin; it < end; it++) {
        const size_t bi = it / j->per, part = it % j->per;
        size_t offa, offb;
        dse__mm_batch(g, bi, &offa, &offb);
        dse_sgemm s = *j->s;
        s.A += offa; s.B += offb; s.C += bi * g->M * g->N;
        s.pack = j->pack ? (float *)(void *)dse__worker_scratch(j->cx, worker) : NULL;
        size_t i0 = 0, i1 = g->M, j0 = 0, j1 = g->N;
        if (j->by_rows) { i0 = part * j->rb; i1 = i0 + j->rb < g->M ? i0 + j->rb : g->M; }
        else { j0 = part * j->cb; j1 = j0 + j->cb < g->N ? j0 + j->cb : g->N; }
        if (!j->p16) {
            j->fn(&s, i0, i1, j0, j1);
            continue;
        }
        /* layout 9: the columns of whole panels read in place as the kernel's packed panels of 16,
         * then the last N % 16 columns as a row-major [K][N % 16] matrix; every element is the same
         * chain of the broadcast kernel as with B plain (same bytes) */
        const size_t n16 = g->N / 16 * 16;
        s.pack = NULL;
        if (j0 < n16) {
            dse_sgemm q = s;
            q.bpanel = 16 * g->K; q.ldb = 16;
            j->fn(&q, i0, i1, j0, j1 < n16 ? j1 : n16);
        }
        if (j1 > n16) {
            dse_sgemm q = s;
            q.B += n16 * g->K; q.ldb = g->N - n16;
            q.C += n16;
            if (q.cmode) q.Cm += n16 * q.csj;
            j->fn(&q, i0, i1, (j0 > n16 ? j0 : n16) - n16, j1 - n16);
        }
    }
}

void dse_f32_sgemm_batched(const dse_ctx *cx, const dse_mm_geom *g, const dse_sgemm *s, dse_sgemm_fn fn, int pack,
                           size_t rt, size_t ct, int p16) {
    size_t nbatch = 1;
    for (size_t d = 0; d < g->nb; d++) nbatch *= g->bdims[d];
    if (!nbatch || !g->M || !g->N) return;
    p16 = p16 && g->N >= 16;   /* (fewer columns: layout 9 is the plain bytes) */
    loops_sgemm_job j = {cx, g, s, fn, pack && !p16, 0, p16, 0, 0, 0};
    const size_t threads = dse__threads(cx);
    /* layout 9 (no copy to make): parts of columns as with packing (each part streams its columns of
     * B once, every row against them from L2) when there are enough panels for the threads */
    if (p16 && (g->N + 15) / 16 >= 2 * threads) pack = 1;
    if (p16) ct = (ct + 15) / 16 * 16;
    if (pack && threads == 1) {   /* parts of whole packing chunks of columns (each packs its own once) */
        const size_t pc = dse__sgemm_pack_cols(g->K), chunks = (g->N + pc - 1) / pc;
        size_t parts = (2 + nbatch - 1) / nbatch;
        if (parts > chunks) parts = chunks;
        j.cb = pc * ((chunks + parts - 1) / parts);
        j.per = (g->N + j.cb - 1) / j.cb;
    } else if (pack) {
        /* threads: parts of whole panels of 16 columns, about 2 per thread overall, each packing its
         * own columns (in chunks of at most dse__sgemm_pack_cols(K)). Whole packing chunks made the
         * parts uneven: N = 384 at K = 384 (chunks of 160) was 3 parts, 2 on one thread (MiniLM's
         * projections: 1.17x on 2 threads, now ~1.9x). */
        const size_t panels = (g->N + 15) / 16;
        size_t parts = (2 * threads + nbatch - 1) / nbatch;
        if (parts > panels) parts = panels;
        j.cb = 16 * ((panels + parts - 1) / parts);
        j.per = (g->N + j.cb - 1) / j.cb;
    } else {
        j.rb = rt * ((g->M + rt * 8 - 1) / (rt * 8));   /* at most ~8 row parts per batch */
        j.cb = ct;
        const size_t rows = (g->M + j.rb - 1) / j.rb;
        size_t cols = (g->N + j.cb - 1) / j.cb;
        j.by_rows = nbatch * rows >= 2 * threads || rows >= cols;
        /* B beyond L2 (1 MiB) and at least as wide as A is tall: parts of rows would each stream all
         * of B from memory (a 40-row Gemm with an 8210 x 1024 weight read it 7 times: 17 ms, now
         * 10 ms); parts of columns read it once and A from cache. The kernel blocks each part's
         * columns itself, and every element is the same tile arithmetic (same bytes). */
        if (j.by_rows && nbatch == 1 && (uint64_t)g->K * g->N > (1u << 18) && g->N >= g->M && cols >= 2 * threads) {
            const size_t cparts = 8 * threads < cols ? 8 * threads : cols;
            j.by_rows = 0;
            j.cb = ct * ((cols + cparts - 1) / cparts);
            cols = (g->N + j.cb - 1) / j.cb;
        }
        j.per = j.by_rows ? rows : cols;
    }
    dse__parallel(cx, nbatch * j.per, dse__grain(nbatch * j.per, (uint64_t)nbatch * g->M * g->N * g->K), loops_sgemm_parts, &j);
}

/* -- integer MACs of pre-quantised ONNX models (conv_integer.c, matmul_integer.c, dyn_lstm.c) --
 * Operands uint8 or int8, zero points applied as (x - zx) * (w - zw); the sum is taken in
 * uint32, i.e. exactly modulo 2^32: the int32 the numpy reference gets (its exact float64 sum
 * cast to int64 then int32), whatever K. Each output is one item's sequential sum. */

static inline int32_t loops_u32_to_i32(uint32_t v) {   /* two's complement, no implementation-defined cast */
    return v < 0x80000000u ? (int32_t)v : (int32_t)(v - 0x80000000u) + INT32_MIN;
}

static inline int32_t loops_int_at(const void *p, int u8, size_t i) {
    return u8 ? (int32_t)((const uint8_t *)p)[i] : (int32_t)((const int8_t *)p)[i];
}

/* -- MatMul of two int8 activations (matmul_act.c explains the arithmetic) ------------------- */

#define MMA_RB 4   /* rows of A per item: each strip of B is read once for them */

typedef struct {
    const dse_i8_mma *p;
    size_t mb, nb;   /* row blocks and column tiles per batch */
} loops_mma_job;

/* Items [i0, i1) of batch x row block x column tile: acc = sum_k (a - za)(b - zb) exactly in
 * int32 (K <= DSE_MMA_MAX_K), then the output stage. */
static void loops_mma_items(void *arg, size_t i0, size_t i1, unsigned worker) {
    (void)worker;
    const loops_mma_job *j = arg;
    const dse_i8_mma *p = j->p;
    const dse_mm_geom *g = p->g;
    const size_t M = g->M, K = g->K, N = g->N, per = j->mb * j->nb;
    const int za = p->za, zb = p->zb;
    for (size_t it = i0; it < i1; it++) {
        const size_t bi = it / per, rest = it % per, r0 = rest / j->nb * MMA_RB, j0 = rest % j->nb * TILE;
        const size_t rn = M - r0 < MMA_RB ? M - r0 : MMA_RB, tn = N - j0 < TILE ? N - j0 : TILE;
        size_t offa = 0, offb = 0, q = bi;
        for (int d = (int)g->nb - 1; d >= 0; d--) {   /* this batch's matrices (broadcast axes: stride 0) */
            const size_t x = q % g->bdims[d];
            q /= g->bdims[d];
            offa += x * g->sa[d], offb += x * g->sb[d];
        }
        const int8_t *A = p->a + offa + r0 * K, *B = p->b + offb + j0;
        /* the differences fit int16 (|.| <= 255), their products int32; a whole tile of TILE
         * lanes (zeros past tn) so that the compiler vectorises the fixed-length loops */
        int32_t acc[MMA_RB][TILE];
        int16_t bv[TILE];
        memset(acc, 0, sizeof acc);
        memset(bv, 0, sizeof bv);
        for (size_t k = 0; k < K; k++) {
            const int8_t *bk = B + k * N;
            if (tn == TILE)
                for (size_t c = 0; c < TILE; c++) bv[c] = (int16_t)(bk[c] - zb);
            else
                for (size_t c = 0; c < tn; c++) bv[c] = (int16_t)(bk[c] - zb);
            for (size_t r = 0; r < rn; r++) {
                const int16_t av = (int16_t)(A[r * K + k] - za);
                int32_t *ar = acc[r];
                for (size_t c = 0; c < TILE; c++) ar[c] += (int32_t)av * bv[c];
            }
        }
        const size_t y0 = (bi * M + r0) * N + j0;
        for (size_t r = 0; r < rn; r++)
            for (size_t c = 0; c < tn; c++) dse_i8_store(p->o, p->y, y0 + r * N + c, 0, acc[r][c]);
    }
}

void dse_i8_matmul_act_loop(const dse_ctx *cx, const dse_i8_mma *p) {
    const dse_mm_geom *g = p->g;
    size_t nbatch = 1;
    for (size_t d = 0; d < g->nb; d++) nbatch *= g->bdims[d];
    if (!g->M || !g->N || !nbatch) return;
    loops_mma_job j = {p, (g->M + MMA_RB - 1) / MMA_RB, (g->N + TILE - 1) / TILE};
    dse__parallel(cx, nbatch * j.mb * j.nb, loops_grain(g->K * MMA_RB * (g->N < TILE ? g->N : TILE)), loops_mma_items, &j);
}

#define INT_RB 4   /* rows of A per MatMulInteger item: each B strip is read once for them */

/* Items [i0, i1) of row blocks x column tiles: rows [INT_RB * (i / nb), +INT_RB), columns
 * [TILE * (i % nb), +TILE). acc = sum_k (a - za) * b, then - zb[j] * sum_k (a - za). */
#define LOOPS_INT_MM(NAME, TB)                                                                       \
    static void NAME(void *arg, size_t i0, size_t i1, unsigned worker) {                            \
        (void)worker;                                                                                \
        const dse_int_mm *p = arg;                                                                   \
        const size_t K = p->K, N = p->N, nb = (N + TILE - 1) / TILE;                                 \
        const TB *B = p->b;                                                                          \
        for (size_t it = i0; it < i1; it++) {                                                        \
            const size_t r0 = it / nb * INT_RB, j0 = it % nb * TILE, tn = N - j0 < TILE ? N - j0 : TILE; \
            const size_t rn = p->M - r0 < INT_RB ? p->M - r0 : INT_RB;                               \
            uint32_t acc[INT_RB][TILE], sum[INT_RB];                                                 \
            int32_t za[INT_RB];                                                                      \
            for (size_t r = 0; r < rn; r++) {                                                        \
                za[r] = p->za ? loops_int_at(p->za, p->za_u8, (r0 + r) * p->za_step) : 0;            \
                sum[r] = 0;                                                                          \
                for (size_t j = 0; j < tn; j++) acc[r][j] = 0;                                       \
            }                                                                                        \
            for (size_t k = 0; k < K; k++) {                                                         \
                const TB *bk = B + k * N + j0;                                                       \
                for (size_t r = 0; r < rn; r++) {                                                    \
                    const int32_t av = loops_int_at(p->a, p->a_u8, (r0 + r) * K + k) - za[r];        \
                    sum[r] += (uint32_t)av;                                                          \
                    uint32_t *ar = acc[r];                                                           \
                    for (size_t j = 0; j < tn; j++) ar[j] += (uint32_t)(av * (int32_t)bk[j]);         \
                }                                                                                    \
            }                                                                                        \
            for (size_t r = 0; r < rn; r++)                                                          \
                for (size_t j = 0; j < tn; j++) {                                                    \
                    const int32_t zb = p->zb ? loops_int_at(p->zb, p->zb_u8, (j0 + j) * p->zb_step) : 0; \
                    p->y[(r0 + r) * N + j0 + j] = loops_u32_to_i32(acc[r][j] - (uint32_t)zb * sum[r]); \
                }                                                                                    \
        }                                                                                            \
    }
LOOPS_INT_MM(loops_int_mm_u8, uint8_t)
LOOPS_INT_MM(loops_int_mm_i8, int8_t)

void dse_int_matmul(const dse_ctx *cx, const dse_int_mm *p) {
    const size_t nb = (p->N + TILE - 1) / TILE, items = (p->M + INT_RB - 1) / INT_RB * nb;
    if (p->M == 0 || p->N == 0) return;
    dse__parallel(cx, items, loops_grain(p->K * INT_RB * (p->N < TILE ? p->N : TILE)),
                  p->b_u8 ? loops_int_mm_u8 : loops_int_mm_i8, (void *)(uintptr_t)p);
}

/* Output rows [r0, r1) of all N * O * OD * OH rows, as loops_i8_conv_rows: the taps inside the
 * input only (a padded tap is x = zx, which adds 0), weights centred per tap. */
#define LOOPS_INT_CONV(NAME, TX)                                                                     \
    static void NAME(void *arg, size_t r0, size_t r1, unsigned worker) {                            \
        (void)worker;                                                                                \
        const dse_int_conv *j = arg;                                                                 \
        const TX *x = j->x;                                                                          \
        const dse_i8_geom *g = j->g;                                                                 \
        const long long C = j->C, O = j->O, Cg = j->Cg, Og = O / (C / Cg);                           \
        const long long ID = g->in[0], IH = g->in[1], IW = g->in[2], OD = g->out[0], OH = g->out[1], OW = g->out[2]; \
        const long long KD = g->k[0], KH = g->k[1], KW = g->k[2], KS = KD * KH * KW, sw = g->s[2], dw = g->d[2]; \
        const int32_t zx = j->zx;                                                                    \
        for (size_t r = r0; r < r1; r++) {                                                           \
            const long long oh = (long long)(r % (size_t)OH), od = (long long)(r / (size_t)OH % (size_t)OD); \
            const long long boc = (long long)(r / ((size_t)OH * (size_t)OD)), oc = boc % O, b = boc / O; \
            const TX *xg = x + (b * C + oc / Og * Cg) * ID * IH * IW;                                \
            const int32_t zw = j->wz ? loops_int_at(j->wz, j->wz_u8, (size_t)oc * j->wz_step) : 0;   \
            int32_t *yr = j->y + (size_t)r * (size_t)OW;                                             \
            for (long long ow0 = 0; ow0 < OW; ow0 += TILE) {                                         \
                const long long tn = OW - ow0 < TILE ? OW - ow0 : TILE;                              \
                uint32_t acc[TILE] = {0};                                                            \
                for (long long ci = 0; ci < Cg; ci++)                                                \
                    for (long long kd = 0; kd < KD; kd++) {                                          \
                        const long long id = od * g->s[0] + kd * g->d[0] - g->pb[0];                 \
                        if (id < 0 || id >= ID) continue;                                            \
                        for (long long kh = 0; kh < KH; kh++) {                                      \
                            const long long ih = oh * g->s[1] + kh * g->d[1] - g->pb[1];             \
                            if (ih < 0 || ih >= IH) continue;                                        \
                            const TX *xr = xg + ((ci * ID + id) * IH + ih) * IW;                     \
                            const size_t k0 = (size_t)(oc * Cg * KS + ((ci * KD + kd) * KH + kh) * KW); \
                            for (long long kw = 0; kw < KW; kw++) {                                  \
                                const int32_t wv = loops_int_at(j->w, j->w_u8, k0 + (size_t)kw) - zw; \
                                const long long off = kw * dw - g->pb[2];                            \
                                long long lo = off >= 0 ? 0 : (-off + sw - 1) / sw;                  \
                                long long hi = IW - 1 - off < 0 ? 0 : (IW - 1 - off) / sw + 1;       \
                                if (lo < ow0) lo = ow0;                                              \
                                if (hi > ow0 + tn) hi = ow0 + tn;                                    \
                                for (long long ow = lo; ow < hi; ow++)                               \
                                    acc[ow - ow0] += (uint32_t)(((int32_t)xr[ow * sw + off] - zx) * wv); \
                            }                                                                        \
                        }                                                                            \
                    }                                                                                \
                for (long long t = 0; t < tn; t++) yr[ow0 + t] = loops_u32_to_i32(acc[t]);           \
            }                                                                                        \
        }                                                                                            \
    }
LOOPS_INT_CONV(loops_int_conv_u8, uint8_t)
LOOPS_INT_CONV(loops_int_conv_i8, int8_t)

void dse_int_conv_loop(const dse_ctx *cx, const dse_int_conv *p) {
    const dse_i8_geom *g = p->g;
    const size_t rows = (size_t)(p->N * p->O * g->out[0] * g->out[1]);
    dse__parallel(cx, rows, loops_grain((size_t)(g->out[2] * p->Cg * g->k[0] * g->k[1] * g->k[2])),
                  p->x_u8 ? loops_int_conv_u8 : loops_int_conv_i8, (void *)(uintptr_t)p);
}
