/* quantize.c: QuantizeLinear, float32 -> int8 (or uint8 for a graph output under
 * `--io-dtype uint8`), per tensor (docs/kernels.md, docs/quant-arith.md §10):
 * y = clamp(nearbyintf(x / scale) + zp, -128, 127)  (uint8: 0, 255)
 * with one float32 division and round half to even (nearbyintf in the default rounding
 * mode), as ONNX / onnxruntime / arith.quantize. Inputs: x float32, scale float32 constant
 * (one element), zero point of y's dtype (constant, one element, absent = 0). A NaN input gives zp
 * (NaN quantises as 0.0, as dsedge.ops.quantize_linear and arith.quantize; the spec leaves it open).
 */
#include <math.h>

#include "requant.h"
#include "mathf.h"

int dse__quantize_params(const dse_model *m, const dse_node *n, int qtype, float *scale, int *zp) {
    const dse_tensor *s = n->n_in >= 2 ? dse__t(m, n->in[1]) : NULL, *z = n->n_in >= 3 ? dse__t(m, n->in[2]) : NULL;
    if (!s || s->dtype != DSE_DTYPE_FLOAT32 || s->numel != 1 || s->storage != DSE_STORAGE_CONST) return 1;
    if (z && (z->dtype != qtype || z->numel != 1 || z->storage != DSE_STORAGE_CONST)) return 1;
    memcpy(scale, s->cdata, sizeof *scale);
    *zp = !z ? 0 : qtype == DSE_DTYPE_UINT8 ? *(const uint8_t *)z->cdata
                                            : *(const int8_t *)z->cdata;
    return !(*scale > 0.0f) || !isfinite(*scale);
}

int dse__check_quantize_i8(const dse_model *m, const dse_node *n, dse_why *why) {
    const dse_tensor *x = n->n_in >= 1 ? dse__t(m, n->in[0]) : NULL, *y = n->n_out == 1 ? dse__t(m, n->out[0]) : NULL;
    float s;
    int zp;
    if (!x || !y || x->dtype != DSE_DTYPE_FLOAT32 || (y->dtype != DSE_DTYPE_INT8 && y->dtype != DSE_DTYPE_UINT8) ||
        x->numel != y->numel || n->n_in > 3 || dse__quantize_params(m, n, y->dtype, &s, &zp)) {
        DSE_WHY(why, QUANTIZE_QUANTIZELINEAR_NEEDS_FLOAT32_X);
        return 1;
    }
    return 0;
}

/* The loop, blocked so that compilers vectorise it (GCC -O2 vectorises loops of a known count,
 * and does not if-convert float compares, so every select below is on integers): per element
 * r = x / s (one float32 division), then, on the bits of r and of r + 1.5 * 2^23:
 *   - |r| < 2^22: r + 1.5 * 2^23 rounds r half to even to an integer (the default rounding
 *     mode, as nearbyintf), which sits in the low 23 bits of the sum, offset by 2^22;
 *   - |r| >= 512 (and +-inf): saturates to lo / hi whatever zp is (|zp| <= 255);
 *   - NaN: zp.
 * The same result as clamp(nearbyintf(r) + zp, lo, hi) for every r. */
typedef struct quant_args { const float *x; void *y; float s; int zp, lo, hi, u8; } quant_args;
#define Q_BLOCK DSE_Q_BLOCK
static void quant_block(const quant_args *a, size_t i0) {
    int32_t q[Q_BLOCK];
    dse_quantize_block(a->x + i0, a->s, a->zp, a->lo, a->hi, q);
    if (a->u8) {
        uint8_t *y = (uint8_t *)a->y + i0;     /* local pointers: a byte store may alias *a */
        for (size_t j = 0; j < Q_BLOCK; j++) y[j] = (uint8_t)q[j];
    } else {
        int8_t *y = (int8_t *)a->y + i0;
        for (size_t j = 0; j < Q_BLOCK; j++) y[j] = (int8_t)q[j];
    }
}

static void quant_range(void *arg, size_t begin, size_t end, unsigned worker) {
    (void)worker;
    const quant_args *a = arg;
    size_t i = begin * Q_BLOCK, e = end * Q_BLOCK;
    for (; i < e; i += Q_BLOCK) quant_block(a, i);
}

void dse_i8_quantize__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    quant_args a;
    a.x = dse__data(m, arena, n->in[0]);
    a.y = dse__data(m, arena, n->out[0]);
    int qtype = m->tensors[n->out[0]].dtype;
    dse__quantize_params(m, n, qtype, &a.s, &a.zp);
    a.u8 = qtype == DSE_DTYPE_UINT8;
    a.lo = a.u8 ? 0 : -128, a.hi = a.u8 ? 255 : 127;
    size_t e = m->tensors[n->out[0]].numel, blocks = e / Q_BLOCK;
    dse__parallel(cx, blocks, 1024, quant_range, &a);
    for (size_t i = blocks * Q_BLOCK; i < e; i++) {           /* the tail, one element at a time */
        float r = nearbyintf(a.x[i] / a.s);
        int32_t q = r != r ? a.zp : r <= -512.0f ? a.lo : r >= 512.0f ? a.hi : (int32_t)r + a.zp;
        q = q < a.lo ? a.lo : q > a.hi ? a.hi : q;
        if (a.u8) ((uint8_t *)a.y)[i] = (uint8_t)q;
        else ((int8_t *)a.y)[i] = (int8_t)q;
    }
}

/* int16 y (A16W8 operands, docs/quant-arith.md §15): the same rule, clamp(nearbyintf(x / s) + zp,
 * -32768, 32767), NaN -> zp, element by element (|r| >= 2^17 saturates whatever zp is). */
int dse__check_quantize_i16(const dse_model *m, const dse_node *n, dse_why *why) {
    const dse_tensor *x = n->n_in >= 1 ? dse__t(m, n->in[0]) : NULL, *y = n->n_out == 1 ? dse__t(m, n->out[0]) : NULL;
    const dse_tensor *s = n->n_in >= 2 ? dse__t(m, n->in[1]) : NULL, *z = n->n_in >= 3 ? dse__t(m, n->in[2]) : NULL;
    float sc;
    if (!x || !y || !s || x->dtype != DSE_DTYPE_FLOAT32 || y->dtype != DSE_DTYPE_INT16 || x->numel != y->numel ||
        n->n_in > 3 || s->dtype != DSE_DTYPE_FLOAT32 || s->numel != 1 || s->storage != DSE_STORAGE_CONST ||
        (z && (z->dtype != DSE_DTYPE_INT16 || z->numel != 1 || z->storage != DSE_STORAGE_CONST))) {
        DSE_WHY(why, QUANTIZE_I16_NEEDS);
        return 1;
    }
    memcpy(&sc, s->cdata, sizeof sc);
    if (!(sc > 0.0f) || !isfinite(sc)) { DSE_WHY(why, QUANTIZE_I16_NEEDS); return 1; }
    return 0;
}

typedef struct q16_args { const float *x; int16_t *y; float s; int zp; } q16_args;

static void q16_range(void *arg, size_t begin, size_t end, unsigned worker) {
    (void)worker;
    const q16_args *a = arg;
    for (size_t i = begin; i < end; i++) {
        float r = nearbyintf(a->x[i] / a->s);
        int32_t q = r != r ? a->zp : r <= -131072.0f ? -32768 : r >= 131072.0f ? 32767 : (int32_t)r + a->zp;
        a->y[i] = (int16_t)(q < -32768 ? -32768 : q > 32767 ? 32767 : q);
    }
}

void dse_i16_quantize__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    q16_args a;
    a.x = dse__data(m, arena, n->in[0]);
    a.y = dse__data(m, arena, n->out[0]);
    memcpy(&a.s, m->tensors[n->in[1]].cdata, sizeof a.s);
    a.zp = n->n_in >= 3 && n->in[2] != DSE_NONE ? *(const int16_t *)m->tensors[n->in[2]].cdata : 0;
    dse__parallel(cx, m->tensors[n->out[0]].numel, 16384, q16_range, &a);
}
