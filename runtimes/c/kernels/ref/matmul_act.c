/* matmul_act.c: int8 MatMul of two activations (attention scores Q·Kᵀ, attention·V),
 * bit-exact with dsedge/quant/intref.py matmul_act_int8 (docs/quant-arith.md §14; the kind is
 * dsedge/quant/kinds/matmul.py).
 *
 * Operands: A and B int8 (activations in the arena, or a quantised constant; plain layout) with
 * numpy/ONNX MatMul shapes: 1-D operands, batch axes broadcast (dse__matmul_geom); output int8,
 * or float32 when INT float_out = 1. No bias input (a weighted MatMul has three inputs and a
 * constant B: its kernels take it, this check refuses it).
 * Attributes: INT za, zb (the operands' zero points), zp_out, qmin, qmax, float_out; INT M, shift
 * (the one multiplier of (s_a * s_b) / s_out), or with float_out FLOAT out_scale
 * (= float32(s_a * s_b)) and act_min / act_max.
 *
 * Arithmetic: acc = sum_k (a - za)(b - zb) in int32. Each product has |.| <= 255 * 255 and the
 * check refuses K > 33025 (K * 255 * 255 >= 2^31), so every partial sum fits and the order of
 * the sum does not matter. Then the requantisation rule (requant.h), or float_out's
 * (float)acc * out_scale clamped in float32 (dse_i8_store, as the weighted kernels).
 * Loop (kernels/ref/loops.c dse_i8_matmul_act_loop): output rows (batch x M) over the session's
 * threads; per row, tiles of up to 64 columns accumulate over k reading B's row k. No scratch.
 */
#include <float.h>
#include <math.h>

#include "requant.h"

int dse_i8_matmul_act_valid(const dse_model *m, const dse_node *n, dse_mm_geom *g, int *za, int *zb, dse_i8_out *o,
                            dse_i8_mma_store *st, dse_why *why) {
    const dse_tensor *a = n->n_in == 2 ? dse__t(m, n->in[0]) : NULL, *b = a ? dse__t(m, n->in[1]) : NULL;
    const dse_tensor *y = n->n_out == 1 ? dse__t(m, n->out[0]) : NULL;
    const int64_t fo = dse__attr_int(n, DSE_A_float_out, 0);
    memset(g, 0, sizeof *g);
    if (!dse__attr(n, DSE_A_zb, DSE_ATTR_INT)) {   /* a weighted or float MatMul: the other kernels' */
        DSE_WHY(why, MATMUL_ACT_NOT_FOR_THIS_NODE);
        return 1;
    }
    if (!a || !b || !y || a->dtype != DSE_DTYPE_INT8 || b->dtype != DSE_DTYPE_INT8 || a->layout != DSE_LAYOUT_PLAIN ||
        b->layout != DSE_LAYOUT_PLAIN || y->dtype != (fo == 1 ? DSE_DTYPE_FLOAT32 : DSE_DTYPE_INT8) ||
        dse__matmul_geom(a, b, y, g)) {
        DSE_WHY(why, MATMUL_ACT_NEEDS_INT8_A_B);
        return 1;
    }
    if (g->K > DSE_MMA_MAX_K) {
        DSE_WHYF(why, MATMUL_ACT_K_TOO_LARGE, NULL, g->K, 0, 0, 0);
        return 1;
    }
    const int64_t ia = dse__attr_int(n, DSE_A_za, 1000), ib = dse__attr_int(n, DSE_A_zb, 1000);
    memset(o, 0, sizeof *o);
    memset(st, 0, sizeof *st);
    int bad = !DSE_I8_OK(ia) || !DSE_I8_OK(ib) || (fo != 0 && fo != 1);
    if (!bad && fo) {
        o->float_out = 1;
        st->scale = dse__attr_float(n, DSE_A_out_scale, -1.0f);
        o->act_min = dse__attr_float(n, DSE_A_act_min, -INFINITY);
        o->act_max = dse__attr_float(n, DSE_A_act_max, INFINITY);
        bad = !(st->scale >= 0.0f && st->scale <= FLT_MAX) || !(o->act_min <= o->act_max);
        o->scale = &st->scale;
    } else if (!bad) {
        const int64_t zo = dse__attr_int(n, DSE_A_zp_out, 1000), lo = dse__attr_int(n, DSE_A_qmin, -128);
        const int64_t hi = dse__attr_int(n, DSE_A_qmax, 127), M = dse__attr_int(n, DSE_A_M, -1);
        const int64_t sh = dse__attr_int(n, DSE_A_shift, 0);
        bad = !DSE_I8_OK(zo) || !DSE_I8_OK(lo) || !DSE_I8_OK(hi) || lo > hi || M < 0 || M > 0x7fffffff || sh < 1 ||
              sh > 62;
        if (!bad) {
            st->M = (int32_t)M, st->shift = (int32_t)sh;
            o->M = &st->M, o->shift = &st->shift;
            o->zp_out = (int)zo, o->qmin = (int)lo, o->qmax = (int)hi;
        }
    }
    if (bad) {
        DSE_WHY(why, MATMUL_ACT_NEEDS_INT_ZA_ZB);
        return 1;
    }
    *za = (int)ia, *zb = (int)ib;
    return 0;
}

int dse__check_i8_matmul_act(const dse_model *m, const dse_node *n, dse_why *why) {
    dse_mm_geom g;
    dse_i8_out o;
    dse_i8_mma_store st;
    int za, zb;
    return dse_i8_matmul_act_valid(m, n, &g, &za, &zb, &o, &st, why);
}

void dse_i8_matmul_act__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    dse_mm_geom g;
    dse_i8_out o;
    dse_i8_mma_store st;
    dse_why why;
    dse_i8_mma p;
    dse_i8_matmul_act_valid(m, n, &g, &p.za, &p.zb, &o, &st, &why);
    p.a = dse__data(m, arena, n->in[0]), p.b = dse__data(m, arena, n->in[1]), p.y = dse__data(m, arena, n->out[0]);
    p.g = &g, p.o = &o;
    dse_i8_matmul_act_loop(cx, &p);
}
