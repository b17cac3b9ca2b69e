/* dyn_lstm.c: onnxruntime's com.microsoft DynamicQuantizeLSTM, bit-exact with
 * dsedge/ops/quantized.py (dynamic_quantize_lstm), which follows onnxruntime's CPU kernel.
 *
 * Inputs X [T, B, I] float32; W [D, I, 4H], R [D, H, 4H] uint8/int8 (transposed, gates i o f c
 * along 4H); optional B [D, 8H] (Wb, Rb), sequence_lens (constant, all T), initial_h,
 * initial_c [D, B, H]; no P; W_scale, R_scale float32 and W_zero_point, R_zero_point
 * uint8/int8, each [D] or [D, 4H] (one scale per column; the first zero point of a
 * direction is used). Attributes direction, hidden_size, clip, input_forget, activations (one
 * comma-separated STRING of 3*D names of Sigmoid/Tanh/Relu; default Sigmoid,Tanh,Tanh).
 * Outputs Y [T, D, B, H], Y_h, Y_c [D, B, H], each optional.
 *
 * Per direction (the reverse one walks t = T-1 .. 0 and writes Y at t):
 *   xq = DynamicQuantizeLinear(X) (all time steps at once; dynamic_quantize.c's rule)
 *   xw = float32(sum (xq - zx) * (W - wz)) * (sx * W_scale[col])        rows T*B, cols 4H
 *   each step: hq = DynamicQuantizeLinear(h) (the B x H state); hr likewise with R;
 *     gates = (xw[t] + hr) + (Wb + Rb); clip (when set) to [-clip, clip];
 *     i = f(gi); f = input_forget ? 1 - i : f(gf); c = f*c + i*g(gc); o = f(go); h = o*h(c)
 * The integer sums are exact (input and hidden sizes <= 33025: |sum| < 2^31), converted to
 * float32 (round to nearest even); all float arithmetic float32 in the order written.
 * Sigmoid and Tanh are MLAS's rational approximations (onnxruntime's), each multiply-add of
 * their Horner steps evaluated in float64 and rounded once to float32, as the reference does.
 *
 * Scratch: xq (T*B*I bytes, rounded up to 16), xw (T*B*4H floats), hq (B*H bytes, rounded up
 * to 16), gates (B*4H int32, then float32 in place), h, c (B*H floats each); dsedge/export/
 * scratch.py `dse_f32_dynamicquantizelstm__ref`. The plan adds what the optimised variants use
 * for their integer products after it (dse_int_gemm_plan, requant.h); they share this run
 * (dse__dyn_lstm_run), with their own product function. */
#include <math.h>

#include "requant.h"

enum { DYNL_X, DYNL_W, DYNL_R, DYNL_B, DYNL_SEQ, DYNL_H0, DYNL_C0, DYNL_P, DYNL_WS, DYNL_WZ, DYNL_RS, DYNL_RZ, DYNL_NIN };
enum { DYNL_SIGMOID = DSE_DYNL_SIGMOID, DYNL_TANH = DSE_DYNL_TANH, DYNL_RELU = DSE_DYNL_RELU };

typedef struct dynl_geom {
    size_t T, B, I, H, D, wsn, rsn;   /* wsn/rsn: scales per direction (1 or 4H) */
    int reverse_only, act[6];
} dynl_geom;

static size_t dynl_a16(size_t v) { return (v + 15) / 16 * 16; }

static size_t dynl_scratch(const dynl_geom *g) {
    return dynl_a16(g->T * g->B * g->I) + 4 * g->T * g->B * 4 * g->H + dynl_a16(g->B * g->H) + 4 * g->B * 4 * g->H +
           8 * g->B * g->H;
}

static int dynl_dims(const dse_tensor *t, size_t r, size_t a, size_t b, size_t c, size_t d) {
    size_t v[4] = {a, b, c, d};
    if (!t || t->rank != r) return 0;
    for (size_t i = 0; i < r; i++) if (t->dims[i] != v[i]) return 0;
    return 1;
}

/* activations: NULL = defaults; else 3*D comma-separated names, case-insensitive */
static int dynl_acts(const char *s, dynl_geom *g) {
    for (size_t k = 0; k < 3 * g->D; k++) g->act[k] = k % 3 == 0 ? DYNL_SIGMOID : DYNL_TANH;
    if (!s) return 0;
    static const char names[3][8] = {"sigmoid", "tanh", "relu"};
    for (size_t k = 0; k < 3 * g->D; k++) {
        char w[8];
        size_t len = 0;
        while (*s && *s != ',') {
            if (len == sizeof w) return 1;
            char ch = *s++;
            w[len++] = (char)(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
        }
        int found = -1;
        for (int a = 0; a < 3; a++)
            if (len == strlen(names[a]) && memcmp(w, names[a], len) == 0) found = a;
        if (found < 0) return 1;
        g->act[k] = found;
        if (k + 1 < 3 * g->D) { if (*s != ',') return 1; s++; }
    }
    return *s != 0;
}

static int dynl_geom_read(const dse_model *m, const dse_node *n, dynl_geom *g, dse_why *why) {
    const dse_tensor *in[DYNL_NIN] = {0};
    for (uint32_t k = 0; k < n->n_in && k < DYNL_NIN; k++) in[k] = dse__t(m, n->in[k]);
    const dse_tensor *x = in[DYNL_X], *w = in[DYNL_W], *r = in[DYNL_R];
    const char *dir = dse__attr_str(n, DSE_A_direction, "forward");
    g->D = strcmp(dir, "bidirectional") == 0 ? 2 : 1;
    g->reverse_only = strcmp(dir, "reverse") == 0;
    int64_t hs = dse__attr_int(n, DSE_A_hidden_size, r && r->rank == 3 ? (int64_t)r->dims[1] : 0);
    if (n->n_in < DYNL_NIN - 1 || n->n_in > DYNL_NIN || n->n_out < 1 || n->n_out > 3 || !x || x->dtype != DSE_DTYPE_FLOAT32 ||
        x->rank != 3 || !dse__int_byte_operand(w) || !dse__int_byte_operand(r) || hs < 1 ||
        (g->D == 1 && !g->reverse_only && strcmp(dir, "forward"))) {
        DSE_WHYF(why, DYNLSTM_NEEDS_X_W_R, NULL, hs, 0, 0, 0);
        return 1;
    }
    g->T = x->dims[0], g->B = x->dims[1], g->I = x->dims[2], g->H = (size_t)hs;
    const size_t H = g->H, D = g->D;
    if (!dynl_dims(w, 3, D, g->I, 4 * H, 0) || !dynl_dims(r, 3, D, H, 4 * H, 0)) {
        DSE_WHYF(why, DYNLSTM_NEEDS_X_W_R, NULL, hs, 0, 0, 0);
        return 1;
    }
    const dse_tensor *seq = in[DYNL_SEQ];
    int bad = (in[DYNL_B] && (in[DYNL_B]->dtype != DSE_DTYPE_FLOAT32 || !dynl_dims(in[DYNL_B], 2, D, 8 * H, 0, 0))) ||
              in[DYNL_P] != NULL;
    for (int k = DYNL_H0; k <= DYNL_C0; k++)
        bad |= in[k] && (in[k]->dtype != DSE_DTYPE_FLOAT32 || !dynl_dims(in[k], 3, D, g->B, H, 0));
    if (seq) {
        bad |= seq->storage != DSE_STORAGE_CONST || (seq->dtype != DSE_DTYPE_INT32 && seq->dtype != DSE_DTYPE_INT64) || seq->numel != g->B;
        for (size_t i = 0; !bad && i < seq->numel; i++) {
            const uint8_t *p = seq->cdata;
            int64_t v;
            if (seq->dtype == DSE_DTYPE_INT32) { int32_t v32; memcpy(&v32, p + 4 * i, 4); v = v32; } else memcpy(&v, p + 8 * i, 8);
            bad |= v != (int64_t)g->T;
        }
    }
    if (bad) { DSE_WHY(why, DYNLSTM_OPTIONAL_INPUTS); return 1; }
    const dse_tensor *ws = in[DYNL_WS], *wz = in[DYNL_WZ], *rs = in[DYNL_RS], *rz = in[DYNL_RZ];
    if (!ws || !rs || !wz || !rz || ws->dtype != DSE_DTYPE_FLOAT32 || rs->dtype != DSE_DTYPE_FLOAT32 ||
        !dse__int_byte_operand(wz) || !dse__int_byte_operand(rz) || (ws->numel != D && ws->numel != D * 4 * H) ||
        (rs->numel != D && rs->numel != D * 4 * H) || (wz->numel != D && wz->numel != D * 4 * H) ||
        (rz->numel != D && rz->numel != D * 4 * H)) {
        DSE_WHY(why, DYNLSTM_SCALES_ZERO_POINTS);
        return 1;
    }
    g->wsn = ws->numel / D, g->rsn = rs->numel / D;
    if (dse__attr(n, DSE_A_activation_alpha, DSE_ATTR_FLOATS) || dse__attr(n, DSE_A_activation_beta, DSE_ATTR_FLOATS) ||
        dse__attr(n, DSE_A_activations, DSE_ATTR_INTS) ||
        dynl_acts(dse__attr(n, DSE_A_activations, DSE_ATTR_STRING) ? dse__attr_str(n, DSE_A_activations, "") : NULL, g)) {
        DSE_WHYF(why, DYNLSTM_ACTIVATIONS, NULL, 3 * D, 0, 0, 0);
        return 1;
    }
    for (uint32_t k = 0; k < n->n_out; k++) {
        const dse_tensor *o = dse__t(m, n->out[k]);
        if (o && (o->dtype != DSE_DTYPE_FLOAT32 || !(k == 0 ? dynl_dims(o, 4, g->T, D, g->B, H) : dynl_dims(o, 3, D, g->B, H, 0))))
            bad = 1;
    }
    if (bad || g->I > 33025 || H > 33025) { DSE_WHY(why, DYNLSTM_OUTPUTS); return 1; }
    return 0;
}

/* the plan: REF's scratch, then the optimised variants' packing of the integer products (requant.h) */
static size_t dynl_plan(const dynl_geom *g) {
    const size_t rows = g->T * g->B < DSE_INT_MM_ROWS ? g->T * g->B : DSE_INT_MM_ROWS;
    return dynl_scratch(g) + dse_int_gemm_plan(rows, g->I > g->H ? g->I : g->H);
}

int dse__dyn_lstm_valid(const dse_model *m, const dse_node *n, size_t *ref_bytes, size_t *plan, dse_why *why) {
    dynl_geom g;
    if (dynl_geom_read(m, n, &g, why)) return 1;
    if (ref_bytes) *ref_bytes = dynl_scratch(&g);
    if (plan) *plan = dynl_plan(&g);
    return 0;
}

int dse__check_dyn_lstm(const dse_model *m, const dse_node *n, dse_why *why) {
    dynl_geom g;
    if (dynl_geom_read(m, n, &g, why)) return 1;
    const size_t need = dynl_scratch(&g);
    if (m->scratch_size < need) { DSE_WHYF(why, RNN_NEEDS_BYTES_SCRATCH_PLAN, NULL, need, m->scratch_size, 0, 0); return 1; }
    why->scratch = need;
    why->scratch_plan = dynl_plan(&g);
    return 0;
}

/* -- MLAS's logistic and tanh (onnxruntime), as dsedge/ops/quantized.py evaluates them ------- */

static float dynl_fma(float a, float b, float c) { return (float)((double)a * (double)b + (double)c); }

static float dynl_horner(float v2, const float *c, int n) {
    float acc = dynl_fma(v2, c[0], c[1]);
    for (int k = 2; k < n; k++) acc = dynl_fma(acc, v2, c[k]);
    return acc;
}

static float dynl_logistic(float x) {
    static const float P[5] = {4.37031012579801e-11f, 1.15627324459942e-07f, 6.08574864600143e-05f,
                               8.51377133304701e-03f, 2.48287947061529e-01f};
    static const float Q[6] = {6.10247389755681e-13f, 5.76102136993427e-09f, 6.29106785017040e-06f,
                               1.70198817374094e-03f, 1.16817656904453e-01f, 9.93151921023180e-01f};
    float v = x < -18.0f ? -18.0f : x > 18.0f ? 18.0f : x;   /* NaN stays NaN */
    float v2 = v * v;
    float p = dynl_horner(v2, P, 5) * v;
    float y = p / dynl_horner(v2, Q, 6) + 0.5f;
    return y < 0.0f ? 0.0f : y > 1.0f ? 1.0f : y;
}

static float dynl_tanh(float x) {
    static const float P[7] = {-2.76076847742355e-16f, 2.00018790482477e-13f, -8.60467152213735e-11f,
                               5.12229709037114e-08f, 1.48572235717979e-05f, 6.37261928875436e-04f, 4.89352455891786e-03f};
    static const float Q[4] = {1.19825839466702e-06f, 1.18534705686654e-04f, 2.26843463243900e-03f, 4.89352518554385e-03f};
    float v = x < -9.0f ? -9.0f : x > 9.0f ? 9.0f : x;
    float v2 = v * v;
    float p = dynl_horner(v2, P, 7) * v;
    return p / dynl_horner(v2, Q, 4);
}

static float dynl_act(int a, float x) {
    switch (a) {
    case DYNL_SIGMOID: return dynl_logistic(x);
    case DYNL_TANH: return dynl_tanh(x);
    default: return (x > 0.0f || x != x) ? x : 0.0f;   /* numpy maximum(x, 0): NaN stays, -0 -> +0 */
    }
}

/* out (rows x N floats) = float32(sum (aq - za) * (w - wz)) * (s * scale[col]); wz points at
 * the direction's zero point. The int32 sums are written to out's bytes first and converted in
 * place. */
static void dynl_qgemm(const dse_ctx *cx, dse_int_mm_fn mm, void *mm_arg, const uint8_t *aq, const uint8_t *za, float s, size_t rows,
                       size_t K, const void *w, int w_u8, const void *wz, int wz_u8, const float *scale, size_t nscale, size_t N,
                       uint8_t *out) {
    dse_int_mm p;
    memset(&p, 0, sizeof p);
    p.a = aq, p.a_u8 = 1, p.za = za, p.za_u8 = 1;
    p.b = w, p.b_u8 = w_u8, p.zb = wz, p.zb_u8 = wz_u8;
    p.M = rows, p.K = K, p.N = N, p.y = (int32_t *)(void *)out;
    mm(cx, &p, mm_arg);
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < N; j++) {
            int32_t v;
            memcpy(&v, out + 4 * (r * N + j), 4);
            const float f = (float)v * (s * scale[nscale == 1 ? 0 : j]);
            memcpy(out + 4 * (r * N + j), &f, 4);
        }
}

static void dynl_ref_mm(const dse_ctx *cx, const dse_int_mm *p, void *mm_arg) {
    (void)mm_arg;
    dse_int_matmul(cx, p);
}

static void dynl_ref_act(int kind, const float *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = dynl_act(kind, x[i]);
}

void dse_f32_dynamicquantizelstm__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    const dse_dyn_lstm_ops ops = {dynl_ref_mm, NULL, dynl_ref_act};
    dse__dyn_lstm_run(m, n, arena, cx, &ops);
}

void dse__dyn_lstm_run(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx, const dse_dyn_lstm_ops *ops) {
    dynl_geom g;
    dse_why why;
    dynl_geom_read(m, n, &g, &why);
    const size_t T = g.T, Bt = g.B, I = g.I, H = g.H, G = 4 * H;
    const dse_tensor *wt = &m->tensors[n->in[DYNL_W]], *rt = &m->tensors[n->in[DYNL_R]];
    const dse_tensor *wzt = &m->tensors[n->in[DYNL_WZ]], *rzt = &m->tensors[n->in[DYNL_RZ]];
    const float *X = dse__data(m, arena, n->in[DYNL_X]);
    const uint8_t *W = dse__data(m, arena, n->in[DYNL_W]), *R = dse__data(m, arena, n->in[DYNL_R]);
    const float *Bias = n->in[DYNL_B] != DSE_NONE ? dse__data(m, arena, n->in[DYNL_B]) : NULL;
    const float *H0 = n->in[DYNL_H0] != DSE_NONE ? dse__data(m, arena, n->in[DYNL_H0]) : NULL;
    const float *C0 = n->in[DYNL_C0] != DSE_NONE ? dse__data(m, arena, n->in[DYNL_C0]) : NULL;
    const float *WS = dse__data(m, arena, n->in[DYNL_WS]), *RS = dse__data(m, arena, n->in[DYNL_RS]);
    const void *WZ = dse__data(m, arena, n->in[DYNL_WZ]), *RZ = dse__data(m, arena, n->in[DYNL_RZ]);
    float *Y = n->out[0] != DSE_NONE ? dse__data(m, arena, n->out[0]) : NULL;
    float *YH = n->n_out > 1 && n->out[1] != DSE_NONE ? dse__data(m, arena, n->out[1]) : NULL;
    float *YC = n->n_out > 2 && n->out[2] != DSE_NONE ? dse__data(m, arena, n->out[2]) : NULL;
    const int has_clip = dse__attr(n, DSE_A_clip, DSE_ATTR_FLOAT) != NULL;
    const float clip = dse__attr_float(n, DSE_A_clip, 0.0f);
    const int input_forget = dse__attr_int(n, DSE_A_input_forget, 0) != 0;

    uint8_t *xq = cx->scratch, *xw = xq + dynl_a16(T * Bt * I), *hq = xw + 4 * T * Bt * G;
    uint8_t *gb = hq + dynl_a16(Bt * H);
    float *h = (float *)(void *)(gb + 4 * Bt * G), *c = h + Bt * H;
    float sx, sh;
    uint8_t zx, zh;
    dse__dynq_params(X, T * Bt * I, &sx, &zx);
    dse__dynq_quantize(X, T * Bt * I, sx, zx, xq);
    for (size_t d = 0; d < g.D; d++) {
        const int rev = g.reverse_only || d == 1;
        const int *act = g.act + 3 * d;
        dynl_qgemm(cx, ops->mm, ops->mm_arg, xq, &zx, sx, T * Bt, I, W + d * I * G, wt->dtype == DSE_DTYPE_UINT8, (const uint8_t *)WZ + d * (wzt->numel / g.D), wzt->dtype == DSE_DTYPE_UINT8,
                   WS + d * g.wsn, g.wsn, G, xw);
        for (size_t i = 0; i < Bt * H; i++) {
            h[i] = H0 ? H0[d * Bt * H + i] : 0.0f;
            c[i] = C0 ? C0[d * Bt * H + i] : 0.0f;
        }
        for (size_t step = 0; step < T; step++) {
            const size_t t = rev ? T - 1 - step : step;
            dse__dynq_params(h, Bt * H, &sh, &zh);
            dse__dynq_quantize(h, Bt * H, sh, zh, hq);
            dynl_qgemm(cx, ops->mm, ops->mm_arg, hq, &zh, sh, Bt, H, R + d * H * G, rt->dtype == DSE_DTYPE_UINT8, (const uint8_t *)RZ + d * (rzt->numel / g.D), rzt->dtype == DSE_DTYPE_UINT8,
                       RS + d * g.rsn, g.rsn, G, gb);
            const float *xwt = (const float *)(const void *)xw + t * Bt * G;
            float *gates = (float *)(void *)gb;
            for (size_t b = 0; b < Bt; b++) {
                float *gr = gates + b * G;
                for (size_t j = 0; j < G; j++) {
                    const float bias = Bias ? Bias[d * 2 * G + j] + Bias[d * 2 * G + G + j] : 0.0f;
                    float v = (xwt[b * G + j] + gr[j]) + bias;
                    if (has_clip) { v = v < -clip ? -clip : v; v = v > clip ? clip : v; }
                    gr[j] = v;
                }
                /* i = f(gi), o = f(go), f = f(gf) (unused with input_forget), g = g(gc) in place; then
                 * c = f*c + i*g and h = o * h(c), per element */
                ops->act(act[0], gr, gr, 3 * H);
                ops->act(act[1], gr + 3 * H, gr + 3 * H, H);
                for (size_t j = 0; j < H; j++) {
                    const float i_ = gr[j], f_ = input_forget ? 1.0f - i_ : gr[2 * H + j];
                    c[b * H + j] = f_ * c[b * H + j] + i_ * gr[3 * H + j];
                }
                ops->act(act[2], c + b * H, h + b * H, H);
                for (size_t j = 0; j < H; j++) h[b * H + j] = gr[H + j] * h[b * H + j];
            }
            if (Y) memcpy(Y + ((t * g.D + d) * Bt) * H, h, Bt * H * sizeof(float));
        }
        if (YH) memcpy(YH + d * Bt * H, h, Bt * H * sizeof(float));
        if (YC) memcpy(YC + d * Bt * H, c, Bt * H * sizeof(float));
    }
}
