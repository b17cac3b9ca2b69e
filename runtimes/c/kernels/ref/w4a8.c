/* w4a8.c: int8 Conv (any group, 1-D to 3-D), Gemm (transA 0) and MatMul (constant 2-D B) with
 * int4 weights (W4A8), bit-exact with dsedge/quant/kinds/weighted.py W4A8 (docs/quant-arith.md §13).
 *
 * Weights: an int4 CONST in layout 3 (Conv, Gemm transB 1: W[C][K] rows) or 4 (Gemm transB 0,
 * MatMul: the rows of B's transpose), each output channel's K codes packed along K in its own
 * ceil(K/2) bytes, low nibble first, two's complement, codes in [-7, 7] (the check refuses -8);
 * or, per channel (w4_group 0) on Conv with group 1, Gemm and MatMul, the same views in layout 6 / 7
 * (the int8 layouts' N8K4 blocks of 8 rows x 4 k, 16 bytes each: internal.h), which the AVX2
 * kernels (kernels/avx2/conv_i8_w4.c) read; the checks then give the int8 kernels' scratch plan (and for
 * depthwise Conv the int8 depthwise plan plus its weights expanded to int8: kernels/avx2/dwconv_i8_w4.c).
 * INT `w4_group` = 0: one scale per channel; G > 0: the int8 TENSOR `w4_mul` [C][ceil(K/G)] holds
 * integer multipliers m in [1, 18] of each group of G consecutive k, and the real weight is
 * s[c] * m * q. Either way the result is the int8 weighted op's with the int8 weights m * q:
 *     acc = bias_q[c] + sum_g m[c, g] * sum_{k in g} (x_q - zp_in) * q[c, k]
 * in int32 (exact: the check proves K * 255 * 7 * max(m) < 2^31), bias added in int64, then the
 * requantisation rule of §3 with the node's per-channel M, shift (or float_out), as conv_i8.c.
 * Conv multiplies each tap's m * q into a tile of outputs (the int8 loop nest), Gemm/MatMul sum
 * each group's partial product then scale it by m; both are the same integer. No scratch.
 */
#include "requant.h"

typedef struct {
    const uint8_t *w;
    const int8_t *mul;
    size_t group;
    int blocked;   /* layout 6/7 */
} w4_weights;

/* Operands shared by the three ops: x int8, w int4 CONST in `layout` (3 or 4) with C rows of K, or
 * in its blocked form (6 or 7) when blocked_ok (Conv: group 1) and w4_group is 0, bias int32[C]
 * CONST, y int8 (float32 with float_out); the group multipliers; the bound. */
static int w4_operands(const dse_model *m, const dse_node *n, size_t C, size_t K, int layout, int blocked_ok, w4_weights *q,
                       dse_why *why) {
    const dse_tensor *x = dse__t(m, n->in[0]), *w = dse__t(m, n->in[1]), *b = dse__t(m, n->in[2]);
    const dse_tensor *y = dse__t(m, n->out[0]);
    const int blocked_layout = layout == DSE_LAYOUT_I4 ? DSE_LAYOUT_I4_N8K4 : DSE_LAYOUT_I4_N8K4_T;
    int fo = (int)dse__attr_int(n, DSE_A_float_out, 0);
    if (!x || !w || !b || !y || x->dtype != DSE_DTYPE_INT8 || w->dtype != DSE_DTYPE_INT4 || w->storage != DSE_STORAGE_CONST ||
        (w->layout != layout && w->layout != blocked_layout) || b->dtype != DSE_DTYPE_INT32 ||
        b->storage != DSE_STORAGE_CONST || b->numel != C || y->dtype != (fo ? DSE_DTYPE_FLOAT32 : DSE_DTYPE_INT8)) {
        DSE_WHYF(why, W4_NEEDS_OPERANDS, fo ? "float32 (float_out)" : "int8", layout, C, blocked_layout, 0);
        return 1;
    }
    int64_t group = dse__attr_int(n, DSE_A_w4_group, -1);
    if (group < 0 || group > 0x7fffffff) { DSE_WHY(why, W4_GROUP); return 1; }
    q->w = w->cdata;
    q->group = (size_t)group;
    q->mul = NULL;
    q->blocked = w->layout == blocked_layout;
    if (q->blocked && (group || !blocked_ok)) { DSE_WHYF(why, W4_BLOCKED_LAYOUT, NULL, w->layout, 0, 0, 0); return 1; }
    int mmax = 1;
    if (group) {
        size_t G = K ? (K + (size_t)group - 1) / (size_t)group : 0;
        q->mul = dse_i8_tensor_attr(m, n, DSE_A_w4_mul, DSE_DTYPE_INT8, C * G);
        if (!q->mul) { DSE_WHYF(why, W4_GROUP_MULTIPLIERS, NULL, C, G, 0, 0); return 1; }
        for (size_t i = 0; i < C * G; i++) {
            if (q->mul[i] < 1 || q->mul[i] > 18) { DSE_WHYF(why, W4_GROUP_MULTIPLIERS, NULL, C, G, 0, 0); return 1; }
            if (q->mul[i] > mmax) mmax = q->mul[i];
        }
    }
    if ((uint64_t)K * 255u * 7u * (uint64_t)mmax > 0x7fffffffu) {
        DSE_WHYF(why, W4_PRODUCTS_PER_OUTPUT_EXCEED, NULL, K, mmax, 0, 0);
        return 1;
    }
    for (size_t i = 0; i < w->nbytes; i++)   /* every byte holds two codes or padding nibbles (0) */
        if ((q->w[i] & 15) == 8 || (q->w[i] >> 4) == 8) { DSE_WHY(why, W4_CODE_8); return 1; }
    why->packed |= 2u;   /* input 1 is read in its packed layout */
    return 0;
}

int dse__check_w4_conv(const dse_model *m, const dse_node *n, dse_why *why) { return dse_w4_conv_check(m, n, why); }

int dse_w4_conv_check(const dse_model *m, const dse_node *n, dse_why *why) {
    const dse_tensor *x = n->n_in == 3 ? dse__t(m, n->in[0]) : NULL, *w = n->n_in == 3 ? dse__t(m, n->in[1]) : NULL;
    const dse_tensor *y = n->n_out == 1 ? dse__t(m, n->out[0]) : NULL;
    if (!x || !w || !y || w->dtype != DSE_DTYPE_INT4) { DSE_WHY(why, W4_NOT_INT4); return 1; }
    if (x->rank < 3 || w->rank != x->rank) { DSE_WHY(why, CONV_I8_INT8_CONV_NEEDS_X); return 1; }
    size_t O = w->dims[0], K = w->dims[1];
    for (unsigned d = 2; d < w->rank; d++) K *= w->dims[d];
    w4_weights q;
    if (w4_operands(m, n, O, K, DSE_LAYOUT_I4, dse__attr_int(n, DSE_A_group, 1) == 1, &q, why)) return 1;
    dse_i8_geom g;
    if (dse_i8_conv_shapes(n, x, w, y, &g, why)) return 1;
    dse_i8_out o;
    if (dse_i8_out_params(m, n, O, &o, why)) return 1;
    const size_t P = y->dims[0] && O ? y->numel / (y->dims[0] * O) : 0;
    const int64_t cgroup = dse__attr_int(n, DSE_A_group, 1);
    if (q.blocked)   /* planned for the AVX2 variants (REF uses none): int8's GEMM plan */
        why->scratch_plan = dse_i8_gemm_scratch_plan(K, P);
    else if (cgroup != 1 && cgroup == (int64_t)x->dims[1] && O == x->dims[1] && w->dims[1] == 1)   /* depthwise: + int8 weights */
        why->scratch_plan = dse_w4_dw_scratch_plan(O, K, P);
    return 0;
}

void dse_i8_conv_w4__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    const dse_tensor *xt = &m->tensors[n->in[0]], *wt = &m->tensors[n->in[1]], *yt = &m->tensors[n->out[0]];
    size_t K = wt->dims[1];
    for (unsigned d = 2; d < wt->rank; d++) K *= wt->dims[d];
    dse_i8_out o;
    dse_i8_geom g;
    dse_why why = {0};
    w4_weights q;
    w4_operands(m, n, wt->dims[0], K, DSE_LAYOUT_I4, 1, &q, &why);
    dse_i8_out_params(m, n, wt->dims[0], &o, &why);
    dse_i8_geom_read(n, xt, yt, wt->dims + 2, &g, &why);
    dse_w4_conv_loop(cx, dse__data(m, arena, n->in[0]), q.w, q.blocked, q.mul, q.group, dse__data(m, arena, n->in[2]),
                     dse__data(m, arena, n->out[0]), &o, &g, (long long)xt->dims[0], (long long)xt->dims[1],
                     (long long)wt->dims[0], (long long)wt->dims[1]);
}

int dse__check_w4_gemm(const dse_model *m, const dse_node *n, dse_why *why) { return dse_w4_gemm_check(m, n, why); }

int dse_w4_gemm_check(const dse_model *m, const dse_node *n, dse_why *why) {
    const dse_tensor *x = n->n_in == 3 ? dse__t(m, n->in[0]) : NULL, *w = n->n_in == 3 ? dse__t(m, n->in[1]) : NULL;
    const dse_tensor *y = n->n_out == 1 ? dse__t(m, n->out[0]) : NULL;
    if (!x || !w || !y || w->dtype != DSE_DTYPE_INT4) { DSE_WHY(why, W4_NOT_INT4); return 1; }
    size_t K, N;
    if (dse_gemm_shapes(m, n, &K, &N, why)) return 1;
    int64_t tb = dse__attr_int(n, DSE_A_transB, 0);
    w4_weights q;
    if (w4_operands(m, n, N, K, tb ? DSE_LAYOUT_I4 : DSE_LAYOUT_I4_T, 1, &q, why)) return 1;
    dse_i8_out o;
    if (dse_i8_out_params(m, n, N, &o, why)) return 1;
    if (q.blocked) why->scratch_plan = dse_i8_gemm_scratch_plan(K, x->dims[0]);   /* the AVX2 variant's */
    return 0;
}

void dse_i8_gemm_w4__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    const dse_tensor *x = &m->tensors[n->in[0]], *y = &m->tensors[n->out[0]];
    size_t K = x->dims[1], N = y->dims[1];
    dse_i8_out o;
    dse_why why = {0};
    w4_weights q;
    w4_operands(m, n, N, K, dse__attr_int(n, DSE_A_transB, 0) ? DSE_LAYOUT_I4 : DSE_LAYOUT_I4_T, 1, &q, &why);
    dse_i8_out_params(m, n, N, &o, &why);
    dse_w4_gemm_rows(cx, dse__data(m, arena, n->in[0]), x->dims[0], K, q.w, q.blocked, q.mul, q.group, N,
                     dse__data(m, arena, n->in[2]), &o, dse__data(m, arena, n->out[0]));
}

int dse__check_w4_matmul(const dse_model *m, const dse_node *n, dse_why *why) { return dse_w4_matmul_check(m, n, why); }

int dse_w4_matmul_check(const dse_model *m, const dse_node *n, dse_why *why) {
    const dse_tensor *x = n->n_in == 3 ? dse__t(m, n->in[0]) : NULL, *w = n->n_in == 3 ? dse__t(m, n->in[1]) : NULL;
    const dse_tensor *y = n->n_out == 1 ? dse__t(m, n->out[0]) : NULL;
    if (!x || !w || !y || w->dtype != DSE_DTYPE_INT4) { DSE_WHY(why, W4_NOT_INT4); return 1; }
    size_t K, N;
    if (dse_matmul_shapes(m, n, &K, &N, why)) return 1;
    w4_weights q;
    if (w4_operands(m, n, N, K, DSE_LAYOUT_I4_T, 1, &q, why)) return 1;
    dse_i8_out o;
    if (dse_i8_out_params(m, n, N, &o, why)) return 1;
    if (q.blocked && N) why->scratch_plan = dse_i8_gemm_scratch_plan(K, y->numel / N);   /* the AVX2 variant's */
    return 0;
}

void dse_i8_matmul_w4__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    const dse_tensor *w = &m->tensors[n->in[1]], *y = &m->tensors[n->out[0]];
    size_t K = w->dims[0], N = w->dims[1];
    dse_i8_out o;
    dse_why why = {0};
    w4_weights q;
    w4_operands(m, n, N, K, DSE_LAYOUT_I4_T, 1, &q, &why);
    dse_i8_out_params(m, n, N, &o, &why);
    dse_w4_gemm_rows(cx, dse__data(m, arena, n->in[0]), N ? y->numel / N : 0, K, q.w, q.blocked, q.mul, q.group, N,
                     dse__data(m, arena, n->in[2]), &o, dse__data(m, arena, n->out[0]));
}
