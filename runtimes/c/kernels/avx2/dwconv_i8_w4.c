/* avx2/dwconv_i8_w4.c: int8 depthwise Conv with int4 weights (W4A8, layout 3, per channel or with
 * group multipliers; docs/quant-arith.md §13) on x86-64 AVX2: `dse_i8_dwconv_w4__avx2`, byte-identical
 * with the W4A8 REF kernel (kernels/ref/w4a8.c).
 *
 * The W4A8 result is the int8 weighted op's on the int8 weights w8 = m * q (|w8| <= 7 * 18 = 126), so
 * the run expands the node's C x K codes (K = the kernel's taps, at most 128) once into int8 [C][K] at
 * the end of its scratch and runs the int8 AVX2 depthwise kernel (dwconv_i8.c: its plans, arithmetic
 * and threads) on them with the scratch before that. The check is the W4A8 REF check, the int8 AVX2
 * kernel's depthwise conditions (group == C_in == C_out, 1-D or 2-D, K <= 128, max|bias| +
 * K * 255 * 127 < 2^31) and its scratch plan plus the expanded weights (C * K rounded up to 64 bytes),
 * which the exporter plans for int4 depthwise nodes (dsedge/export/scratch.py, requant.h
 * dse_w4_dw_scratch_plan). An artifact planned without it runs REF. */
#include "isa.h"

#if DSE_ARCH_X86_64
#include "i8_avx2.h"

int dse__check_i8_dwconv_w4(const dse_model *m, const dse_node *n, dse_why *why) {
    if (dse_w4_conv_check(m, n, why)) return 1;   /* REF's: operands, codes, multipliers, geometry, params */
    const dse_tensor *x = &m->tensors[n->in[0]], *w = &m->tensors[n->in[1]], *y = &m->tensors[n->out[0]];
    const size_t C = x->dims[1], O = w->dims[0], K = O ? w->numel / O : 0;
    const int64_t group = dse__attr_int(n, DSE_A_group, 1);
    if (group == 1 || !(group == (int64_t)C && O == C && w->dims[1] == 1) || x->rank > 4 || K > 128 || !y->numel ||
        w->layout != DSE_LAYOUT_I4)
        return 1;
    const int32_t *bd = (const int32_t *)m->tensors[n->in[2]].cdata;
    int64_t big = 0;
    for (size_t c = 0; c < O; c++) {
        const int64_t v = bd[c] < 0 ? -(int64_t)bd[c] : bd[c];
        if (v > big) big = v;
    }
    if (big + (int64_t)K * 255 * 127 >= ((int64_t)1 << 31)) return 1;   /* the int8 kernel's bound */
    dse_i8_geom g;
    dse_why tmp;
    dse_i8_geom_read(n, x, y, w->dims + 2, &g, &tmp);
    const size_t extra = dse_w4_dw_weight_bytes(C, K);
    const size_t need = dse_i8_dwconv_scratch_avx2(m, n, &g, (int)dse__attr_int(n, DSE_A_float_out, 0), why->scratch_plan,
                                                   extra);
    if (need == (size_t)-1) return 1;
    why->scratch = need + extra;
    return 0;
}

DSE_TARGET_AVX2 void dse_i8_dwconv_w4__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    const dse_tensor *xt = &m->tensors[n->in[0]], *wt = &m->tensors[n->in[1]], *yt = &m->tensors[n->out[0]];
    const size_t C = wt->dims[0], K = wt->numel / C, Kh = (K + 1) / 2, budget = n->scratch - dse_w4_dw_weight_bytes(C, K);
    dse_i8_out o;
    dse_i8_geom g;
    dse_why why;
    dse_i8_out_params(m, n, C, &o, &why);
    dse_i8_geom_read(n, xt, yt, wt->dims + 2, &g, &why);
    const int64_t group = dse__attr_int(n, DSE_A_w4_group, 0);
    const int8_t *mul = group ? dse_i8_tensor_attr(m, n, DSE_A_w4_mul, DSE_DTYPE_INT8, C * ((K + (size_t)group - 1) / (size_t)group))
                              : NULL;
    const size_t G = group ? (K + (size_t)group - 1) / (size_t)group : 1;
    const uint8_t *q = wt->cdata;
    int8_t *w8 = (int8_t *)dse__worker_scratch(cx, 0) + budget;   /* read by every worker, written before they run */
    for (size_t c = 0; c < C; c++) {   /* row c: ceil(K/2) bytes, low nibble first */
        const uint8_t *qr = q + c * Kh;
        int8_t *wr = w8 + c * K;
        for (size_t i = 0; i < K / 2; i++)
            wr[2 * i] = (int8_t)(((qr[i] & 15) ^ 8) - 8), wr[2 * i + 1] = (int8_t)(((qr[i] >> 4) ^ 8) - 8);
        if (K & 1) wr[K - 1] = (int8_t)(((qr[K / 2] & 15) ^ 8) - 8);
        if (mul)
            for (size_t k = 0; k < K; k++) wr[k] = (int8_t)(wr[k] * mul[c * G + k / (size_t)group]);
    }
    dse_i8_dwconv_run_avx2(m, n, arena, cx, &o, &g, w8, budget);
}

#endif
