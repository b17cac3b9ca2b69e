/* act_quantize.c (NEON, arm64): dsedge.ActFnQuantize, REF's bytes where the model's Sigmoid kernel is
 * the NEON one (kernels/ref/act_quantize.c explains the node): f(x) by the vectorised functions of
 * src/neon_f32.h (dse__neon_act_fn_row: SiLU x * sigmoid(x) with the NEON Sigmoid kernel's sigmoid,
 * then the product; HardSwish exact), then QuantizeLinear's rule (requant.h dse_quantize_block, the
 * REF QuantizeLinear kernel's code, which arm64 runs). Blocks of 256 elements through a stack
 * buffer, over the session's threads. */
#include "neon_f32.h"

#if DSE_NEON_F32
#include "requant.h"

int dse__check_act_quantize_neon(const dse_model *m, const dse_node *n, dse_why *why) {
    dse_act_q p;
    if (dse__act_q_params(m, n, &p, why)) return 1;
    why->act_fns = dse__act_fns(m, 1);   /* the vectorised sigmoid: SiLU only where the NEON Sigmoid runs */
    return 0;
}

#define NEON_ACT_Q_BLOCK 256
typedef struct neon_act_q_args { const float *x; int8_t *y; size_t n; dse_act_q p; } neon_act_q_args;

static void neon_act_q_range(void *arg, size_t begin, size_t end, unsigned worker) {
    (void)worker;
    const neon_act_q_args *a = arg;
    float t[NEON_ACT_Q_BLOCK];
    int32_t q[DSE_Q_BLOCK];
    for (size_t b = begin; b < end; b++) {
        const size_t i0 = b * NEON_ACT_Q_BLOCK, c = a->n - i0 < NEON_ACT_Q_BLOCK ? a->n - i0 : NEON_ACT_Q_BLOCK;
        memcpy(t, a->x + i0, c * sizeof *t);
        dse__neon_act_fn_row(a->p.fn, t, c);
        size_t j = 0;
        for (; j + DSE_Q_BLOCK <= c; j += DSE_Q_BLOCK) {
            dse_quantize_block(t + j, a->p.s, a->p.zp, -128, 127, q);
            for (size_t k = 0; k < DSE_Q_BLOCK; k++) a->y[i0 + j + k] = (int8_t)q[k];
        }
        for (; j < c; j++) a->y[i0 + j] = dse_quantize1(t[j], a->p.s, a->p.zp);
    }
}

void dse_i8_act_quantize__neon(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    neon_act_q_args a;
    dse_why why;
    dse__act_q_params(m, n, &a.p, &why);
    a.x = dse__data(m, arena, n->in[0]);
    a.y = dse__data(m, arena, n->out[0]);
    a.n = m->tensors[n->out[0]].numel;
    const size_t nb = (a.n + NEON_ACT_Q_BLOCK - 1) / NEON_ACT_Q_BLOCK;
    dse__parallel(cx, nb, 64, neon_act_q_range, &a);
}

#endif
