/* act_quantize.c: dsedge.ActFnQuantize (op 1002), a float activation function then a per-tensor
 * int8 QuantizeLinear in one pass (docs/kernels.md "dsedge.ActFnQuantize"):
 *     y[i] = QuantizeLinear(f(x[i]), q_scale, q_zp)      (clamp(nearbyintf(v / s) + zp, -128, 127), NaN -> zp)
 * f = INT act_fn (src/internal.h DSE_ACT_FN_*: 1 HardSwish, 2 SiLU x * sigmoid(x), 3 GELU). The exporter
 * writes it for a float SiLU whose only reader quantises it (dsedge/export/dse.py
 * `_fuse_act_fn_quantize`), so its bytes must be those of the separate nodes it replaces (Sigmoid,
 * Mul, QuantizeLinear) on every ISA: f is the one of the Sigmoid kernel the loader gives the model
 * (dse__act_fns: this kernel applies mathf.h's dse__act_fnf, i.e. REF's Sigmoid; the AVX2 and NEON
 * variants the vectorised sigmoid), and the quantisation is QuantizeLinear's rule (dse_quantize_block,
 * the same bytes as its scalar form). The loader gives the node only to a kernel whose act_fns mask
 * has act_fn (else the next one), so a model whose Sigmoid runs vectorised never gets this one's SiLU.
 * Work: blocks of 256 elements, parts of at least 64 blocks (16384 elements: the AVX2 Sigmoid
 * kernel's grain) over the session's threads, each block through a stack buffer (one read of x,
 * one write of y). No scratch.
 */
#include <math.h>

#include "mathf.h"
#include "requant.h"

int dse__act_q_params(const dse_model *m, const dse_node *n, dse_act_q *p, dse_why *why) {
    const dse_tensor *x = n->n_in == 1 ? dse__t(m, n->in[0]) : NULL, *y = n->n_out == 1 ? dse__t(m, n->out[0]) : NULL;
    const dse_attr *s = dse__attr(n, DSE_A_q_scale, DSE_ATTR_FLOAT);
    const int64_t fn = dse__attr_int(n, DSE_A_act_fn, 0), zp = dse__attr_int(n, DSE_A_q_zp, 1000);
    if (!x || !y || !s || x->dtype != DSE_DTYPE_FLOAT32 || y->dtype != DSE_DTYPE_INT8 || x->numel != y->numel ||
        (fn != DSE_ACT_FN_HARDSWISH && fn != DSE_ACT_FN_SILU && fn != DSE_ACT_FN_GELU) || !(s->f > 0.0f) || !isfinite(s->f) || !DSE_I8_OK(zp)) {
        DSE_WHY(why, ACT_Q_NEEDS_FLOAT32_X_INT8);
        return 1;
    }
    p->fn = (int)fn, p->zp = (int)zp, p->s = s->f;
    return 0;
}

int dse__check_act_quantize(const dse_model *m, const dse_node *n, dse_why *why) {
    dse_act_q p;
    if (dse__act_q_params(m, n, &p, why)) return 1;
    why->act_fns = dse__act_fns(m, 0);   /* mathf.h dse__act_fnf: SiLU only where REF's Sigmoid runs */
    return 0;
}

#define ACT_Q_BLOCK 256
typedef struct act_q_args { const float *x; int8_t *y; size_t n; dse_act_q p; } act_q_args;

static void act_q_range(void *arg, size_t begin, size_t end, unsigned worker) {
    (void)worker;
    const act_q_args *a = arg;
    float t[ACT_Q_BLOCK];
    int32_t q[DSE_Q_BLOCK];
    for (size_t b = begin; b < end; b++) {
        const size_t i0 = b * ACT_Q_BLOCK, c = a->n - i0 < ACT_Q_BLOCK ? a->n - i0 : ACT_Q_BLOCK;
        for (size_t j = 0; j < c; j++) t[j] = dse__act_fnf(a->p.fn, a->x[i0 + j]);
        size_t j = 0;
        for (; j + DSE_Q_BLOCK <= c; j += DSE_Q_BLOCK) {
            dse_quantize_block(t + j, a->p.s, a->p.zp, -128, 127, q);
            for (size_t k = 0; k < DSE_Q_BLOCK; k++) a->y[i0 + j + k] = (int8_t)q[k];
        }
        for (; j < c; j++) a->y[i0 + j] = dse_quantize1(t[j], a->p.s, a->p.zp);
    }
}

void dse_i8_act_quantize__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    act_q_args a;
    dse_why why;
    dse__act_q_params(m, n, &a.p, &why);
    a.x = dse__data(m, arena, n->in[0]);
    a.y = dse__data(m, arena, n->out[0]);
    a.n = m->tensors[n->out[0]].numel;
    const size_t nb = (a.n + ACT_Q_BLOCK - 1) / ACT_Q_BLOCK;
    dse__parallel(cx, nb, 64, act_q_range, &a);
}
