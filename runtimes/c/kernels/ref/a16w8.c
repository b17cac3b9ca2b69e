/* a16w8.c: Conv (any group, 1-D to 3-D), Gemm (transA 0) and MatMul (constant 2-D B) with int16
 * activations and int8 weights (A16W8), bit-exact with dsedge/quant/kinds/a16w8.py
 * (docs/quant-arith.md §15). Portable C only: no optimised variant exists, these run everywhere.
 *
 * Operands: x int16 (symmetric: INT zp_in = 0), w int8 CONST in the plain layout (weights in
 * [-127, 127], the check refuses -128), bias int32 CONST[C], y int16 (INT zp_out = 0; qmin <= qmax
 * in [-32768, 32767]); TENSOR M, shift int32[C] (0 <= M < 2^31, 1 <= shift <= 62); float_out 0.
 *
 *     acc = bias_q[c] + sum over the taps inside the input of x_q * w_q     (int64)
 *
 * Padding contributes 0 (zp_in = 0). |x_q| <= 32768 and |w_q| <= 127, so with K products per
 * output (the check refuses K > 2^24) |acc| <= 2^31 + K * 32768 * 127 < 2^47: int64 never
 * overflows (an int32 accumulator would only be safe for K <= 516). The result goes through
 * dse_requant_wide (requant.h): §3's rule evaluated exactly on the int64 accumulator, to int16.
 * No scratch. Output channels (Conv: batch x channel planes; Gemm/MatMul: rows) over cx's threads.
 */
#include "requant.h"

#define A16_MAX_K ((size_t)1 << 24)

typedef struct a16_out {
    const int32_t *M, *shift;
    int qmin, qmax;
} a16_out;

/* Operands shared by the three ops (w's C channels of K products each, `w_ok`: its shape agrees)
 * and the output parameters. */
static int a16_operands(const dse_model *m, const dse_node *n, size_t C, size_t K, a16_out *o, dse_why *why) {
    const dse_tensor *x = dse__t(m, n->in[0]), *w = dse__t(m, n->in[1]), *b = dse__t(m, n->in[2]);
    const dse_tensor *y = dse__t(m, n->out[0]);
    if (!x || !w || !b || !y || x->dtype != DSE_DTYPE_INT16 || y->dtype != DSE_DTYPE_INT16 ||
        w->dtype != DSE_DTYPE_INT8 || w->storage != DSE_STORAGE_CONST || w->layout != DSE_LAYOUT_PLAIN ||
        b->dtype != DSE_DTYPE_INT32 || b->storage != DSE_STORAGE_CONST || b->numel != C) {
        DSE_WHYF(why, A16_NEEDS_OPERANDS, NULL, C, 0, 0, 0);
        return 1;
    }
    if (K > A16_MAX_K) { DSE_WHYF(why, A16_PRODUCTS_PER_OUTPUT, NULL, K, 0, 0, 0); return 1; }
    const int8_t *wd = (const int8_t *)w->cdata;
    for (size_t i = 0; i < w->nbytes; i++)
        if (wd[i] == -128) { DSE_WHY(why, CONV_I8_WEIGHT_VALUE_128_INT8); return 1; }
    int64_t zi = dse__attr_int(n, DSE_A_zp_in, 1), zo = dse__attr_int(n, DSE_A_zp_out, 1);
    int64_t fo = dse__attr_int(n, DSE_A_float_out, 0);
    int64_t lo = dse__attr_int(n, DSE_A_qmin, -32768), hi = dse__attr_int(n, DSE_A_qmax, 32767);
    o->M = dse_i8_tensor_attr(m, n, DSE_A_M, DSE_DTYPE_INT32, C);
    o->shift = dse_i8_tensor_attr(m, n, DSE_A_shift, DSE_DTYPE_INT32, C);
    if (zi != 0 || zo != 0 || fo != 0 || lo < -32768 || hi > 32767 || lo > hi || !o->M || !o->shift) {
        DSE_WHYF(why, A16_NEEDS_PARAMS, NULL, C, 0, 0, 0);
        return 1;
    }
    if (!dse_i8_mult_ok(o->M, o->shift, C)) { DSE_WHY(why, CONV_I8_REQUANTISATION_MULTIPLIERS_OUT_RANGE); return 1; }
    o->qmin = (int)lo, o->qmax = (int)hi;
    return 0;
}

/* -- Conv ---------------------------------------------------------------------------------------- */

int dse__check_a16_conv(const dse_model *m, const dse_node *n, dse_why *why) {
    const dse_tensor *x = n->n_in == 3 ? dse__t(m, n->in[0]) : NULL, *w = n->n_in == 3 ? dse__t(m, n->in[1]) : NULL;
    const dse_tensor *y = n->n_out == 1 ? dse__t(m, n->out[0]) : NULL;
    if (!x || !w || !y || x->rank < 3 || w->rank != x->rank) { DSE_WHY(why, A16_CONV_NEEDS_X); return 1; }
    size_t O = w->dims[0], K = w->dims[1];
    for (unsigned d = 2; d < w->rank; d++) K = K <= A16_MAX_K ? K * w->dims[d] : K;   /* saturates above the bound */
    a16_out o;
    if (a16_operands(m, n, O, K, &o, why)) return 1;
    dse_i8_geom g;
    return dse_i8_conv_shapes(n, x, w, y, &g, why);
}

typedef struct conv_args {
    const int16_t *x;
    const int8_t *w;
    const int32_t *bias;
    int16_t *y;
    const a16_out *o;
    const dse_i8_geom *g;
    long long C, O, Cg;
} conv_args;

/* planes [begin, end) of the output, plane = batch * O + output channel */
static void conv_planes(void *arg, size_t begin, size_t end, unsigned worker) {
    (void)worker;
    const conv_args *a = arg;
    const dse_i8_geom *g = a->g;
    const long long Og = a->O / (a->C / a->Cg), in_plane = g->in[0] * g->in[1] * g->in[2];
    const long long kvol = g->k[0] * g->k[1] * g->k[2], out_plane = g->out[0] * g->out[1] * g->out[2];
    for (size_t p = begin; p < end; p++) {
        const long long b = (long long)p / a->O, oc = (long long)p % a->O, c0 = oc / Og * a->Cg;
        const int8_t *wo = a->w + oc * a->Cg * kvol;
        int16_t *yp = a->y + (long long)p * out_plane;
        const int32_t M = a->o->M[oc];
        const int sh = a->o->shift[oc];
        for (long long o0 = 0; o0 < g->out[0]; o0++)
            for (long long o1 = 0; o1 < g->out[1]; o1++)
                for (long long o2 = 0; o2 < g->out[2]; o2++) {
                    int64_t acc = a->bias[oc];
                    for (long long c = 0; c < a->Cg; c++) {
                        const int16_t *xc = a->x + (b * a->C + c0 + c) * in_plane;
                        const int8_t *wc = wo + c * kvol;
                        for (long long k0 = 0; k0 < g->k[0]; k0++) {
                            const long long i0 = o0 * g->s[0] - g->pb[0] + k0 * g->d[0];
                            if (i0 < 0 || i0 >= g->in[0]) continue;
                            for (long long k1 = 0; k1 < g->k[1]; k1++) {
                                const long long i1 = o1 * g->s[1] - g->pb[1] + k1 * g->d[1];
                                if (i1 < 0 || i1 >= g->in[1]) continue;
                                const int16_t *xr = xc + (i0 * g->in[1] + i1) * g->in[2];
                                const int8_t *wr = wc + (k0 * g->k[1] + k1) * g->k[2];
                                for (long long k2 = 0; k2 < g->k[2]; k2++) {
                                    const long long i2 = o2 * g->s[2] - g->pb[2] + k2 * g->d[2];
                                    if (i2 >= 0 && i2 < g->in[2]) acc += (int64_t)xr[i2] * wr[k2];
                                }
                            }
                        }
                    }
                    yp[(o0 * g->out[1] + o1) * g->out[2] + o2] = dse_requant_wide(acc, M, sh, 0, a->o->qmin, a->o->qmax);
                }
    }
}

void dse_i16_conv__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    const dse_tensor *xt = &m->tensors[n->in[0]], *wt = &m->tensors[n->in[1]], *yt = &m->tensors[n->out[0]];
    size_t K = wt->dims[1];
    for (unsigned d = 2; d < wt->rank; d++) K *= wt->dims[d];
    dse_why why = {0};
    a16_out o;
    dse_i8_geom g;
    a16_operands(m, n, wt->dims[0], K, &o, &why);
    dse_i8_geom_read(n, xt, yt, wt->dims + 2, &g, &why);
    conv_args a = {dse__data(m, arena, n->in[0]), dse__data(m, arena, n->in[1]), dse__data(m, arena, n->in[2]),
                   dse__data(m, arena, n->out[0]), &o, &g, (long long)xt->dims[1], (long long)wt->dims[0],
                   (long long)wt->dims[1]};
    const size_t planes = xt->dims[0] * wt->dims[0];
    dse__parallel(cx, planes, dse__grain(planes, (uint64_t)yt->numel * K), conv_planes, &a);
}

/* -- Gemm and MatMul: rows of x (rows x K) times W + bias[N] ------------------------------------- */

typedef struct rows_args {
    const int16_t *x;
    const int8_t *w;
    const int32_t *bias;
    int16_t *y;
    const a16_out *o;
    size_t K, N;
    int transB;          /* 1: w is N x K, else K x N */
} rows_args;

static void gemm_rows(void *arg, size_t begin, size_t end, unsigned worker) {
    (void)worker;
    const rows_args *a = arg;
    const size_t K = a->K, N = a->N;
    for (size_t r = begin; r < end; r++) {
        const int16_t *xr = a->x + r * K;
        for (size_t j = 0; j < N; j++) {
            int64_t acc = a->bias[j];
            if (a->transB) {
                const int8_t *wr = a->w + j * K;
                for (size_t k = 0; k < K; k++) acc += (int64_t)xr[k] * wr[k];
            } else {
                for (size_t k = 0; k < K; k++) acc += (int64_t)xr[k] * a->w[k * N + j];
            }
            a->y[r * N + j] = dse_requant_wide(acc, a->o->M[j], a->o->shift[j], 0, a->o->qmin, a->o->qmax);
        }
    }
}

static void run_rows(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx, size_t rows, size_t K,
                     size_t N, int transB) {
    dse_why why = {0};
    a16_out o;
    a16_operands(m, n, N, K, &o, &why);
    rows_args a = {dse__data(m, arena, n->in[0]), dse__data(m, arena, n->in[1]), dse__data(m, arena, n->in[2]),
                   dse__data(m, arena, n->out[0]), &o, K, N, transB};
    dse__parallel(cx, rows, dse__grain(rows, (uint64_t)rows * K * N), gemm_rows, &a);
}

int dse__check_a16_gemm(const dse_model *m, const dse_node *n, dse_why *why) {
    size_t K, N;
    if (dse_gemm_shapes(m, n, &K, &N, why)) return 1;
    a16_out o;
    return a16_operands(m, n, N, K, &o, why);
}

void dse_i16_gemm__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    const dse_tensor *x = &m->tensors[n->in[0]], *y = &m->tensors[n->out[0]];
    run_rows(m, n, arena, cx, x->dims[0], x->dims[1], y->dims[1], (int)dse__attr_int(n, DSE_A_transB, 0));
}

int dse__check_a16_matmul(const dse_model *m, const dse_node *n, dse_why *why) {
    size_t K, N;
    if (dse_matmul_shapes(m, n, &K, &N, why)) return 1;
    a16_out o;
    return a16_operands(m, n, N, K, &o, why);
}

void dse_i16_matmul__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    const dse_tensor *w = &m->tensors[n->in[1]], *y = &m->tensors[n->out[0]];
    size_t K = w->dims[0], N = w->dims[1];
    run_rows(m, n, arena, cx, N ? y->numel / N : 0, K, N, 0);
}
