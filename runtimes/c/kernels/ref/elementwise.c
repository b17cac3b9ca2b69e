/* elementwise.c: a float32 dsedge.Elementwise node, y = f(x), f a short program of elementwise
 * steps on x and scalar constants (passes/simplify.py collapse_unary: x * clip(x + 3, 0, 6) / 6,
 * leaky or clamped activations written as arithmetic, ...), run in one pass instead of one pass
 * per step. The exporter keeps a float Elementwise as one node when every step is one of the
 * ops below, else it expands the program back into separate nodes (docs/kernels.md).
 *
 * Attributes: INTS `program`, steps one after the other, each `op, nargs, arg...`: op the
 * step's op id (dsedge_ops.h), arg k >= 0 the value k (0 is x, k >= 1 the result of step k - 1),
 * arg -1 - j the constant j, arg DSE_EW_ABSENT an omitted optional input (Clip's bounds);
 * FLOATS `consts`; INT `result`, the value that is y. Step attributes travel as constants:
 * LeakyRelu (x, alpha), HardSigmoid (x, alpha, beta). With FLOAT `q_scale` and INT `q_zp` the
 * output is int8, QuantizeLinear of f(x) (a float program whose only reader quantises it,
 * fused by the exporter; the bytes of quantize.c).
 *
 * Each step computes, element by element, exactly what the op's own float32 kernel computes
 * (binary.c, add.c, relu.c, unary.c: one IEEE operation or numpy's maximum/minimum rule, NaN
 * canonical), so the bytes are those of the expanded nodes and of the numpy reference. The
 * tensor is processed in blocks of EW_BLOCK elements, all the block's values on the stack (about
 * 18 KB), and blocks are split over the session's threads. x may be y (in place): a block's x is read
 * into its value 0 before the block's y is written. */
#include "ew_program.h"

/* The ops a step may be, with their argument counts (min, max). */
static int ew_arity(int op, int *lo, int *hi) {
    switch (op) {
    case DSE_OP_ADD: case DSE_OP_SUB: case DSE_OP_MUL: case DSE_OP_DIV: case DSE_OP_MIN: case DSE_OP_MAX:
    case DSE_OP_LEAKYRELU: *lo = *hi = 2; return 1;
    case DSE_OP_NEG: case DSE_OP_ABS: case DSE_OP_RELU: case DSE_OP_SQRT: case DSE_OP_RECIPROCAL: case DSE_OP_FLOOR:
    case DSE_OP_CEIL: case DSE_OP_ROUND: case DSE_OP_SIGN: case DSE_OP_HARDSWISH: case DSE_OP_SOFTSIGN:
        *lo = *hi = 1; return 1;
    case DSE_OP_HARDSIGMOID: *lo = *hi = 3; return 1;
    case DSE_OP_CLIP: *lo = 1; *hi = 3; return 1;
    default: return 0;
    }
}

/* Decodes and validates the program; 0 when it is well formed. */
int dse__ew_read(const dse_model *m, const dse_node *n, ew_prog *p) {
    const dse_attr *ca = dse__attr(n, DSE_A_consts, DSE_ATTR_FLOATS);
    int64_t v[3 * EW_MAX_STEPS + 2 * EW_MAX_STEPS];
    int nv = dse__attr_ints(n, DSE_A_program, v, sizeof v / sizeof v[0]);
    p->n_consts = ca ? (int)ca->n : 0;
    if (nv <= 0 || p->n_consts > EW_MAX_CONSTS) return 1;
    for (int j = 0; j < p->n_consts; j++) memcpy(&p->c[j], ca->raw + 4 * j, 4);
    p->n_steps = 0;
    for (int at = 0; at < nv;) {
        if (p->n_steps == EW_MAX_STEPS || at + 2 > nv) return 1;
        ew_step *s = &p->step[p->n_steps];
        int lo, hi;
        if (v[at] < 0 || v[at] > INT32_MAX || !ew_arity((int)v[at], &lo, &hi)) return 1;
        s->op = (int)v[at];
        s->n = v[at + 1] >= lo && v[at + 1] <= hi ? (int)v[at + 1] : -1;
        if (s->n < 0 || at + 2 + s->n > nv) return 1;
        for (int k = 0; k < s->n; k++) {
            const int64_t a = v[at + 2 + k];
            const int ok = (a >= 0 && a <= p->n_steps) || (a < 0 && -1 - a < p->n_consts) ||
                           (a == DSE_EW_ABSENT && s->op == DSE_OP_CLIP && k > 0);
            if (!ok) return 1;
            s->arg[k] = (int)a;
        }
        at += 2 + s->n;
        p->n_steps++;
    }
    for (int k = 0; k < p->n_steps; k++) {
        ew_step *s = &p->step[k];
        s->bk = 0;
        if (s->op == DSE_OP_CLIP) {
            int bk = 1;
            for (int j = 1; j < 3; j++) {
                const int a = j < s->n ? s->arg[j] : DSE_EW_ABSENT;
                bk &= a == DSE_EW_ABSENT || (a < 0 && p->c[-1 - a] == p->c[-1 - a]);
            }
            s->bk = bk;
        }
    }
    int64_t r = dse__attr_int(n, DSE_A_result, -1);
    if (r < 0 || r > p->n_steps) return 1;
    p->result = (int)r;
    p->x = NULL, p->y = NULL;
    p->numel = m->tensors[n->out[0]].numel;
    return 0;
}

int dse__check_elementwise_f32(const dse_model *m, const dse_node *n, dse_why *why) {
    ew_prog p;
    if (dse__check_same_shape(m, n, DSE_DTYPE_FLOAT32, why)) return 1;
    if (dse__ew_read(m, n, &p) || dse__attr(n, DSE_A_q_scale, DSE_ATTR_FLOAT)) {
        DSE_WHY(why, ELEMENTWISE_FLOAT_PROGRAM_NOT);
        return 1;
    }
    return 0;
}

/* The int8 form (after the int8 table kernel, which takes the nodes with a `table`): float32
 * x, int8 y of x's shape, FLOAT q_scale > 0 (finite), INT q_zp in [-128, 127]. */
int dse__check_elementwise_i8(const dse_model *m, const dse_node *n, dse_why *why) {
    const dse_tensor *x = n->n_in == 1 ? dse__t(m, n->in[0]) : NULL, *y = n->n_out == 1 ? dse__t(m, n->out[0]) : NULL;
    ew_prog p;
    const float s = dse__attr_float(n, DSE_A_q_scale, -1.0f);
    const int64_t zp = dse__attr_int(n, DSE_A_q_zp, 1000);
    if (!x || !y || x->dtype != DSE_DTYPE_FLOAT32 || y->dtype != DSE_DTYPE_INT8 || x->rank != y->rank ||
        memcmp(x->dims, y->dims, x->rank * sizeof x->dims[0]) || dse__ew_read(m, n, &p) || !(s > 0.0f) ||
        !(s < dse_u2f(0x7F800000u)) || zp < -128 || zp > 127) {
        DSE_WHY(why, ELEMENTWISE_QUANTISED_NEEDS_FLOAT32);
        return 1;
    }
    return 0;
}

void dse__ew_bind(const dse_model *m, const dse_node *n, uint8_t *arena, int quant, ew_prog *p) {
    dse__ew_read(m, n, p);
    p->quant = quant;
    p->unit[0] = 0.0f, p->unit[1] = 1.0f;
    p->q_scale = dse__attr_float(n, DSE_A_q_scale, 1.0f);
    p->q_zp = (int)dse__attr_int(n, DSE_A_q_zp, 0);
    p->x = dse__data(m, arena, n->in[0]);
    p->y = dse__data(m, arena, n->out[0]);
}

/* the portable copy of the block loop (ew_program.h, part 2) */
#define EW_FN(name) name##_ref
#define EW_TARGET
#include "ew_program.h"

void dse__ew_step_ref(const ew_step *s, float *o, const float *a, const float *b, const float *c, const float *unit) {
    ew_step_run_ref(s, o, a, b, c, unit);
}

void dse_f32_elementwise__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    ew_prog p;
    dse__ew_bind(m, n, arena, 0, &p);
    dse__parallel(cx, (p.numel + EW_BLOCK - 1) / EW_BLOCK, 128, ew_blocks_ref, &p);
}

void dse_i8_elementwise__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    ew_prog p;
    dse__ew_bind(m, n, arena, 1, &p);
    dse__parallel(cx, (p.numel + EW_BLOCK - 1) / EW_BLOCK, 128, ew_blocks_ref, &p);
}
