/* dyn_i8.c: dynamically quantised Conv / Gemm / MatMul (no calibration: `dsedge quantize`
 * without --calib), bit-exact with dsedge/quant/kinds/weighted.py:Dynamic.run (docs/quant-arith.md §12).
 *
 * Node: x float32, w int8 constant (symmetric per output channel, [-127, 127]), bias float32
 * constant [C]; output float32; INT `dynamic` = 1, T(float32[C]) `w_scale`; optional
 * `act_min`/`act_max`.
 * Per run, everything in float32 (no FMA: -ffp-contract=off), in this order:
 *   lo = min(x, 0), hi = max(x, 0)            (NaN elements are skipped)
 *   s = (hi - lo) / 255                        (s = 1 when not > 0 or not finite)
 *   zp_u8 = nearbyint(clamp(0 - lo / s, 0, 255)), zp = zp_u8 - 128
 *   x_q = clamp(nearbyint(x / s) + zp, -128, 127)        (NaN -> zp), as QuantizeLinear
 *   acc[c] = sum (x_q - zp) * w_q             (int32, exact; padded taps contribute 0)
 *   y = (float)acc * (s * w_scale[c])  then  y = y + bias[c],  then the clamp act_min/act_max.
 * The accumulation reuses the int8 loop nests (kernels/ref/loops.c: they sum (x_q - zp_in) * w_q
 * over the taps inside the input, plus an int32 bias, here zero) with the float output stage
 * (unclamped), then adds the float bias and clamps.
 * Scratch: x_q (numel(x) bytes, rounded up to 16), then a zero int32[C], then scale float[C]
 * (dsedge/export/scratch.py, `dse_f32_<op>_dyn__ref`).
 */
#include <math.h>

#include "requant.h"

typedef struct dyn_i8_params {
    const float *w_scale, *bias;
    float act_min, act_max;
    size_t C, K;
} dyn_i8_params;

static size_t dyn_i8_scratch(size_t numel_x, size_t C) {
    return ((numel_x + 15) / 16) * 16 + 8 * C;
}

/* Operands and attributes shared by the three ops; `axis` is w's output-channel axis. */
static int dyn_i8_operands(const dse_model *m, const dse_node *n, int axis, dyn_i8_params *p, dse_why *why) {
    const dse_tensor *x = n->n_in == 3 ? dse__t(m, n->in[0]) : NULL, *w = n->n_in == 3 ? dse__t(m, n->in[1]) : NULL;
    const dse_tensor *b = n->n_in == 3 ? dse__t(m, n->in[2]) : NULL, *y = n->n_out == 1 ? dse__t(m, n->out[0]) : NULL;
    if (dse__attr_int(n, DSE_A_dynamic, 0) != 1) { DSE_WHY(why, DYN_I8_NOT_FOR_THIS_NODE); return 1; }
    if (!x || !w || !b || !y || x->dtype != DSE_DTYPE_FLOAT32 || y->dtype != DSE_DTYPE_FLOAT32 ||
        w->dtype != DSE_DTYPE_INT8 || w->storage != DSE_STORAGE_CONST || w->rank < 2 ||
        b->dtype != DSE_DTYPE_FLOAT32 || b->storage != DSE_STORAGE_CONST) {
        DSE_WHY(why, DYN_I8_NEEDS_FLOAT32_X);
        return 1;
    }
    size_t C = w->dims[axis], K = C ? w->numel / C : 0;
    p->C = C, p->K = K;
    p->w_scale = dse_i8_tensor_attr(m, n, DSE_A_w_scale, DSE_DTYPE_FLOAT32, C);
    p->bias = (const float *)b->cdata;
    p->act_min = dse__attr_float(n, DSE_A_act_min, -INFINITY);
    p->act_max = dse__attr_float(n, DSE_A_act_max, INFINITY);
    if (!p->w_scale || b->numel != C || !(p->act_min <= p->act_max)) {
        DSE_WHYF(why, DYN_I8_NEEDS_TENSOR_W_SCALE, NULL, C, 0, 0, 0);
        return 1;
    }
    if (K > 0x7fffffff / (255 * 127)) { DSE_WHYF(why, CONV_I8_PRODUCTS_PER_OUTPUT_EXCEED, NULL, K, 0, 0, 0); return 1; }
    for (size_t c = 0; c < C; c++)
        if (!(p->w_scale[c] > 0.0f) || !isfinite(p->w_scale[c])) { DSE_WHYF(why, DYN_I8_NEEDS_TENSOR_W_SCALE, NULL, C, 0, 0, 0); return 1; }
    /* weights in [-127, 127]: with |x_q - zp| <= 255 this bounds the int32 accumulator */
    const int8_t *wd = (const int8_t *)w->cdata;
    for (size_t i = 0; i < w->numel; i++)
        if (wd[i] == -128) { DSE_WHY(why, CONV_I8_WEIGHT_VALUE_128_INT8); return 1; }
    size_t need = dyn_i8_scratch(x->numel, C);
    if (m->scratch_size < need) { DSE_WHYF(why, RNN_NEEDS_BYTES_SCRATCH_PLAN, NULL, need, m->scratch_size, 0, 0); return 1; }
    why->scratch = need;   /* the loader bounds the arena by it and keeps operands out of it */
    return 0;
}

/* Quantise x into the scratch with its run-time range; zero the int32 bias, fill
 * scale[c] = s * w_scale[c]; set up the float output stage (zp_in = zp, unclamped). */
static const int8_t *dyn_i8_prepare(const dse_model *m, const dse_node *n, const dyn_i8_params *p, uint8_t *arena,
                                    uint8_t *scratch, int32_t **fbias, dse_i8_out *o) {
    const dse_tensor *xt = &m->tensors[n->in[0]];
    const float *x = dse__data(m, arena, n->in[0]);
    size_t numel = xt->numel;
    float lo = 0.0f, hi = 0.0f;
    for (size_t i = 0; i < numel; i++) {
        float v = x[i];
        if (v < lo) lo = v;
        if (v > hi) hi = v;
    }
    float s = (hi - lo) / 255.0f;
    if (!(s > 0.0f) || !isfinite(s)) s = 1.0f;
    float z = 0.0f - lo / s;
    z = z < 0.0f ? 0.0f : z > 255.0f ? 255.0f : z;
    int zp = (int)nearbyintf(z) - 128;
    int8_t *xq = (int8_t *)scratch;
    for (size_t i = 0; i < numel; i++) {
        float r = nearbyintf(x[i] / s);
        xq[i] = r != r ? (int8_t)zp : r <= -256.0f ? (int8_t)-128 : r >= 256.0f ? (int8_t)127
                : dse_i8_clamp((int64_t)r + zp, -128, 127);
    }
    int32_t *fb = (int32_t *)(scratch + ((numel + 15) / 16) * 16);
    float *sc = (float *)(fb + p->C);
    for (size_t c = 0; c < p->C; c++) {
        fb[c] = 0;
        sc[c] = s * p->w_scale[c];
    }
    memset(o, 0, sizeof *o);
    o->float_out = 1;
    o->zp_in = zp;
    o->scale = sc;
    o->act_min = -INFINITY;
    o->act_max = INFINITY;
    *fbias = fb;
    return xq;
}

/* y[i] = clamp(y[i] + bias[c], act_min, act_max), c = (i / inner) % C */
static void dyn_i8_finish(float *y, size_t numel, size_t C, size_t inner, const dyn_i8_params *p) {
    for (size_t i = 0; i < numel; i++) {
        float v = y[i] + p->bias[(i / inner) % C];
        if (v < p->act_min) v = p->act_min;
        if (v > p->act_max) v = p->act_max;
        y[i] = v;
    }
}

/* -- Conv ------------------------------------------------------------------------------------- */

int dse__check_dyn_conv(const dse_model *m, const dse_node *n, dse_why *why) {
    dyn_i8_params p;
    if (dyn_i8_operands(m, n, 0, &p, why)) return 1;
    const dse_tensor *x = dse__t(m, n->in[0]), *w = dse__t(m, n->in[1]), *y = dse__t(m, n->out[0]);
    if (x->rank < 3 || w->rank != x->rank) { DSE_WHY(why, CONV_I8_NEEDS_1_3_SPATIAL); return 1; }
    dse_i8_geom g;
    return dse_i8_conv_shapes(n, x, w, y, &g, why);
}

void dse_f32_conv_dyn__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    const dse_tensor *xt = &m->tensors[n->in[0]], *wt = &m->tensors[n->in[1]], *yt = &m->tensors[n->out[0]];
    dyn_i8_params p;
    dse_why why;
    dyn_i8_operands(m, n, 0, &p, &why);
    dse_i8_geom g;
    dse_i8_geom_read(n, xt, yt, wt->dims + 2, &g, &why);
    int32_t *fb;
    dse_i8_out o;
    const int8_t *xq = dyn_i8_prepare(m, n, &p, arena, cx->scratch, &fb, &o);
    float *y = dse__data(m, arena, n->out[0]);
    dse_i8_conv_loop(cx, xq, dse__data(m, arena, n->in[1]), DSE_LAYOUT_PLAIN, fb, y, &o, &g, (long long)xt->dims[0], (long long)xt->dims[1],
                     (long long)wt->dims[0], (long long)wt->dims[1]);
    size_t inner = 1;
    for (unsigned d = 2; d < yt->rank; d++) inner *= yt->dims[d];
    dyn_i8_finish(y, yt->numel, p.C, inner, &p);
}

/* -- Gemm (transA 0, transB 0/1) and MatMul (w K x N) ----------------------------------------- */

int dse__check_dyn_gemm(const dse_model *m, const dse_node *n, dse_why *why) {
    int64_t ta = dse__attr_int(n, DSE_A_transA, 0), tb = dse__attr_int(n, DSE_A_transB, 0);
    if (ta != 0 || (tb != 0 && tb != 1)) { DSE_WHY(why, GEMM_I8_INT8_GEMM_NEEDS_2); return 1; }
    dyn_i8_params p;
    if (dyn_i8_operands(m, n, tb ? 0 : 1, &p, why)) return 1;
    const dse_tensor *x = dse__t(m, n->in[0]), *w = dse__t(m, n->in[1]), *y = dse__t(m, n->out[0]);
    if (x->rank != 2 || w->rank != 2 || y->rank != 2) { DSE_WHY(why, GEMM_I8_INT8_GEMM_NEEDS_2); return 1; }
    size_t K = x->dims[1], N = tb ? w->dims[0] : w->dims[1];
    if ((tb ? w->dims[1] : w->dims[0]) != K || y->dims[0] != x->dims[0] || y->dims[1] != N) {
        DSE_WHYF(why, GEMM_I8_SHAPES_DO_NOT_AGREE, NULL, x->dims[0], x->dims[1], w->dims[0], w->dims[1]);
        return 1;
    }
    return 0;
}

int dse__check_dyn_matmul(const dse_model *m, const dse_node *n, dse_why *why) {
    dyn_i8_params p;
    if (dyn_i8_operands(m, n, 1, &p, why)) return 1;
    const dse_tensor *x = dse__t(m, n->in[0]), *w = dse__t(m, n->in[1]), *y = dse__t(m, n->out[0]);
    if (x->rank < 1 || w->rank != 2 || y->rank != (x->rank > 1 ? x->rank : 1)) {
        DSE_WHY(why, MATMUL_I8_INT8_MATMUL_NEEDS_X);
        return 1;
    }
    size_t K = w->dims[0], N = w->dims[1];
    int bad = x->dims[x->rank - 1] != K || y->dims[y->rank - 1] != N;
    for (unsigned d = 0; d + 1 < x->rank; d++) bad |= y->dims[d] != x->dims[d];
    if (bad) { DSE_WHYF(why, MATMUL_I8_SHAPES_DO_NOT_AGREE, NULL, x->dims[x->rank - 1], K, N, 0); return 1; }
    return 0;
}

static void dyn_i8_rows(const dse_model *m, const dse_node *n, int transB, uint8_t *arena, const dse_ctx *cx) {
    const dse_tensor *xt = &m->tensors[n->in[0]], *yt = &m->tensors[n->out[0]];
    dyn_i8_params p;
    dse_why why;
    dyn_i8_operands(m, n, transB ? 0 : 1, &p, &why);
    int32_t *fb;
    dse_i8_out o;
    const int8_t *xq = dyn_i8_prepare(m, n, &p, arena, cx->scratch, &fb, &o);
    size_t N = p.C, K = xt->dims[xt->rank - 1];
    float *y = dse__data(m, arena, n->out[0]);
    dse_i8_gemm_rows(cx, xq, N ? yt->numel / N : 0, K, dse__data(m, arena, n->in[1]), DSE_LAYOUT_PLAIN, N, transB, fb, &o, y);
    dyn_i8_finish(y, yt->numel, N, 1, &p);
}

void dse_f32_gemm_dyn__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    dyn_i8_rows(m, n, (int)dse__attr_int(n, DSE_A_transB, 0), arena, cx);
}

void dse_f32_matmul_dyn__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    dyn_i8_rows(m, n, 0, arena, cx);
}
