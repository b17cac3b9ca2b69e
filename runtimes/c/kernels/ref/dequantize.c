/* dequantize.c: DequantizeLinear, int8 or uint8 -> float32, per tensor (docs/kernels.md,
 * docs/quant-arith.md §10):  y = (float)(q - zp) * scale, one float32 rounding, as ONNX /
 * onnxruntime / arith.dequantize. Inputs: x int8 (uint8 for a graph input under
 * `--io-dtype uint8`), scale float32 constant (one element), zero point of x's dtype
 * (constant, one element, absent = 0).
 */
#include <math.h>

#include "requant.h"

static int dequantize_scalar_params(const dse_model *m, const dse_node *n, int qtype, float *scale, int *zp) {
    const dse_tensor *s = n->n_in >= 2 ? dse__t(m, n->in[1]) : NULL, *z = n->n_in >= 3 ? dse__t(m, n->in[2]) : NULL;
    if (!s || s->dtype != DSE_DTYPE_FLOAT32 || s->numel != 1 || s->storage != DSE_STORAGE_CONST) return 1;
    if (z && (z->dtype != qtype || z->numel != 1 || z->storage != DSE_STORAGE_CONST)) return 1;
    memcpy(scale, s->cdata, sizeof *scale);
    *zp = !z ? 0 : qtype == DSE_DTYPE_UINT8 ? *(const uint8_t *)z->cdata
                                            : *(const int8_t *)z->cdata;
    return !isfinite(*scale);
}

int dse__check_dequantize_i8(const dse_model *m, const dse_node *n, dse_why *why) {
    const dse_tensor *x = n->n_in >= 1 ? dse__t(m, n->in[0]) : NULL, *y = n->n_out == 1 ? dse__t(m, n->out[0]) : NULL;
    float s;
    int zp;
    if (x && x->dtype == DSE_DTYPE_INT16) { DSE_WHY(why, DEQUANTIZE_OTHER_DTYPE); return 1; }   /* dse_i16_dequantize__ref's */
    if (!x || !y || (x->dtype != DSE_DTYPE_INT8 && x->dtype != DSE_DTYPE_UINT8) || y->dtype != DSE_DTYPE_FLOAT32 ||
        x->numel != y->numel || n->n_in > 3 || dequantize_scalar_params(m, n, x->dtype, &s, &zp)) {
        DSE_WHY(why, DEQUANTIZE_DEQUANTIZELINEAR_NEEDS_INT8_X);
        return 1;
    }
    return 0;
}

typedef struct dq_args { const void *x; float *y; float s; int zp, u8; } dq_args;

static void dq_range(void *arg, size_t begin, size_t end, unsigned worker) {
    (void)worker;
    const dq_args *a = arg;
    const float s = a->s;
    const int zp = a->zp;
    float *y = a->y + begin;
    size_t len = end - begin;
    if (a->u8) {
        const uint8_t *x = (const uint8_t *)a->x + begin;
        DSE_EW_LOOP(float, y, len, (float)(x[i] - zp) * s);
    } else {
        const int8_t *x = (const int8_t *)a->x + begin;
        DSE_EW_LOOP(float, y, len, (float)(x[i] - zp) * s);
    }
}

void dse_i8_dequantize__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    dq_args a;
    a.x = dse__data(m, arena, n->in[0]);
    a.y = dse__data(m, arena, n->out[0]);
    int qtype = m->tensors[n->in[0]].dtype;
    dequantize_scalar_params(m, n, qtype, &a.s, &a.zp);
    a.u8 = qtype == DSE_DTYPE_UINT8;
    dse__parallel(cx, m->tensors[n->out[0]].numel, 16384, dq_range, &a);
}

/* int16 x (A16W8 results, docs/quant-arith.md §15): y = (float)(q - zp) * scale, as above. */
int dse__check_dequantize_i16(const dse_model *m, const dse_node *n, dse_why *why) {
    const dse_tensor *x = n->n_in >= 1 ? dse__t(m, n->in[0]) : NULL, *y = n->n_out == 1 ? dse__t(m, n->out[0]) : NULL;
    const dse_tensor *s = n->n_in >= 2 ? dse__t(m, n->in[1]) : NULL, *z = n->n_in >= 3 ? dse__t(m, n->in[2]) : NULL;
    float sc;
    if (x && x->dtype != DSE_DTYPE_INT16) { DSE_WHY(why, DEQUANTIZE_OTHER_DTYPE); return 1; }   /* dse_i8_dequantize__ref's */
    if (!x || !y || !s || y->dtype != DSE_DTYPE_FLOAT32 || x->numel != y->numel ||
        n->n_in > 3 || s->dtype != DSE_DTYPE_FLOAT32 || s->numel != 1 || s->storage != DSE_STORAGE_CONST ||
        (z && (z->dtype != DSE_DTYPE_INT16 || z->numel != 1 || z->storage != DSE_STORAGE_CONST))) {
        DSE_WHY(why, DEQUANTIZE_I16_NEEDS);
        return 1;
    }
    memcpy(&sc, s->cdata, sizeof sc);
    if (!isfinite(sc)) { DSE_WHY(why, DEQUANTIZE_I16_NEEDS); return 1; }
    return 0;
}

typedef struct dq16_args { const int16_t *x; float *y; float s; int zp; } dq16_args;

static void dq16_range(void *arg, size_t begin, size_t end, unsigned worker) {
    (void)worker;
    const dq16_args *a = arg;
    const float s = a->s;
    const int zp = a->zp;
    const int16_t *x = a->x + begin;
    float *y = a->y + begin;
    size_t len = end - begin;
    DSE_EW_LOOP(float, y, len, (float)(x[i] - zp) * s);
}

void dse_i16_dequantize__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    dq16_args a;
    a.x = dse__data(m, arena, n->in[0]);
    a.y = dse__data(m, arena, n->out[0]);
    memcpy(&a.s, m->tensors[n->in[1]].cdata, sizeof a.s);
    a.zp = n->n_in >= 3 && n->in[2] != DSE_NONE ? *(const int16_t *)m->tensors[n->in[2]].cdata : 0;
    dse__parallel(cx, m->tensors[n->out[0]].numel, 16384, dq16_range, &a);
}
