/* rnn.c: fp32 LSTM and GRU (ONNX semantics): direction forward / reverse / bidirectional,
 * layout 0 (X: T,B,I) or 1 (B,T,I), default activations only (LSTM f=sigmoid g=h=tanh; GRU
 * f=sigmoid g=tanh; a node carrying `activations`/`activation_alpha`/`activation_beta` is
 * refused), optional B, sequence_lens, initial_h, initial_c, P (peepholes), clip,
 * input_forget, linear_before_reset; optional outputs Y, Y_h, Y_c. W/R/B/P may be float16.
 *
 * One direction at a time, one time step at a time, every batch row, every hidden unit j:
 *     gate_q[j] = (dot(x_t, W[qH + j]) + dot(h_prev, R[qH + j])) + (Wb[qH + j] + Rb[qH + j])
 * (dots sequential over I and H; absent B counts as 0), then the ONNX cell with the runtime's
 * own sigmoid/tanh (mathf.c):
 *   LSTM (gates i o f c): i = f(clip(gi + Pi*c)); f = input_forget ? 1 - i : f(clip(gf + Pf*c));
 *     c' = f*c + i*g(clip(gc)); o = f(clip(go + Po*c')); h' = o*h(c')
 *   GRU (gates z r h): z = f(clip((xz + Wbz) + (hz + Rbz))), r likewise,
 *     linear_before_reset=0: hh = g(clip(((xh + Wbh) + dot(r*h, Rh[j])) + Rbh))
 *     linear_before_reset=1: hh = g(clip((xh + Wbh) + r*(dot(h, Rh[j]) + Rbh)));
 *     h' = (1 - z)*hh + z*h
 * (the grouping of each sum is the numpy reference's). Rows whose sequence has ended
 * (t >= sequence_lens[b]) keep their state and get Y = 0; the reverse direction reads each
 * row's sequence backwards from its own length and writes Y at the same (reversed) positions.
 *
 * Scratch (the plan's scratch region, docs/kernels.md): 3 * B * H float32 — h, h_next and
 * c (LSTM) or r / r*h (GRU); `check` refuses a plan that gives less. The exporter plans more,
 * dse__rnn_f32_plan (internal.h): what the optimised variants use (kernels/avx2/rnn.c). */
#include "internal.h"
#include "mathf.h"


typedef dse_rnn_geom rnn_geom;

static int rnn_fh(const dse_tensor *t) { return t && (t->dtype == DSE_DTYPE_FLOAT32 || t->dtype == DSE_DTYPE_FLOAT16); }
static int dims_are(const dse_tensor *t, size_t r, size_t a, size_t b, size_t c, size_t d) {
    size_t v[4] = {a, b, c, d};
    if (!t || t->rank != r) return 0;
    for (size_t i = 0; i < r; i++) if (t->dims[i] != v[i]) return 0;
    return 1;
}

int dse__rnn_f32_geom(const dse_model *m, const dse_node *n, int lstm, dse_rnn_geom *g, dse_why *why) {
    const size_t max_in = lstm ? 8 : 6, max_out = lstm ? 3 : 2;
    const dse_tensor *in[8] = {0};
    for (uint32_t k = 0; k < n->n_in && k < 8; k++) in[k] = dse__t(m, n->in[k]);
    const dse_tensor *x = in[0], *w = in[1], *r = in[2];
    g->lstm = lstm;
    g->G = lstm ? 4 : 3;
    if (n->n_in < 3 || n->n_in > max_in || n->n_out < 1 || n->n_out > max_out || !x || x->dtype != DSE_DTYPE_FLOAT32 ||
        x->rank != 3 || !rnn_fh(w) || w->rank != 3 || !rnn_fh(r) || r->rank != 3) {
        DSE_WHYF(why, RNN_NEEDS_FLOAT32_X_3, NULL, max_in, max_out, 0, 0);
        return 1;
    }
    if (dse__attr(n, DSE_A_activations, DSE_ATTR_STRING) || dse__attr(n, DSE_A_activations, DSE_ATTR_INTS) ||
        dse__attr(n, DSE_A_activation_alpha, DSE_ATTR_FLOATS) || dse__attr(n, DSE_A_activation_beta, DSE_ATTR_FLOATS)) {
        DSE_WHY(why, RNN_ONLY_DEFAULT_ACTIVATIONS_SUPPORTED);
        return 1;
    }
    const char *dir = dse__attr_str(n, DSE_A_direction, "forward");
    g->D = strcmp(dir, "bidirectional") == 0 ? 2 : 1;
    g->reverse_only = strcmp(dir, "reverse") == 0;
    if (g->D == 1 && !g->reverse_only && strcmp(dir, "forward")) { DSE_WHYF(why, RNN_DIRECTION_NOT_SUPPORTED, dir, 0, 0, 0, 0); return 1; }
    int64_t lay = dse__attr_int(n, DSE_A_layout, 0);
    if (lay != 0 && lay != 1) { DSE_WHY(why, RNN_LAYOUT_0_1); return 1; }
    g->layout = (int)lay;
    g->T = x->dims[lay ? 1 : 0]; g->B = x->dims[lay ? 0 : 1]; g->I = x->dims[2];
    g->H = r->dims[2];
    int64_t hs = dse__attr_int(n, DSE_A_hidden_size, (int64_t)g->H);
    if (hs != (int64_t)g->H || !dims_are(w, 3, g->D, g->G * g->H, g->I, 0) || !dims_are(r, 3, g->D, g->G * g->H, g->H, 0)) {
        DSE_WHY(why, RNN_W_R_SHAPES_DO);
        return 1;
    }
    if (in[3] && (!rnn_fh(in[3]) || !dims_are(in[3], 2, g->D, 2 * g->G * g->H, 0, 0))) { DSE_WHYF(why, RNN_B_DIRS, NULL, 2 * g->G * g->H, 0, 0, 0); return 1; }
    if (in[4] && ((in[4]->dtype != DSE_DTYPE_INT32 && in[4]->dtype != DSE_DTYPE_INT64) || !dims_are(in[4], 1, g->B, 0, 0, 0))) {
        DSE_WHY(why, RNN_SEQUENCE_LENS_INT32_INT64);
        return 1;
    }
    for (int k = 5; k <= (lstm ? 6 : 5); k++) {
        const dse_tensor *s = in[k];
        if (s && (s->dtype != DSE_DTYPE_FLOAT32 || !(lay ? dims_are(s, 3, g->B, g->D, g->H, 0) : dims_are(s, 3, g->D, g->B, g->H, 0)))) {
            DSE_WHY(why, RNN_INITIAL_STATES_FLOAT32_Y);
            return 1;
        }
    }
    if (lstm && in[7] && (!rnn_fh(in[7]) || !dims_are(in[7], 2, g->D, 3 * g->H, 0, 0))) { DSE_WHYF(why, RNN_P_DIRS, NULL, 3 * g->H, 0, 0, 0); return 1; }
    const dse_tensor *y = dse__t(m, n->out[0]);
    if (y && (y->dtype != DSE_DTYPE_FLOAT32 || !(lay ? dims_are(y, 4, g->B, g->T, g->D, g->H) : dims_are(y, 4, g->T, g->D, g->B, g->H)))) {
        DSE_WHY(why, RNN_Y_FLOAT32_ONNX_SHAPE);
        return 1;
    }
    for (uint32_t k = 1; k < n->n_out; k++) {
        const dse_tensor *s = dse__t(m, n->out[k]);
        if (s && (s->dtype != DSE_DTYPE_FLOAT32 || !(lay ? dims_are(s, 3, g->B, g->D, g->H, 0) : dims_are(s, 3, g->D, g->B, g->H, 0)))) {
            DSE_WHY(why, RNN_Y_H_Y_C);
            return 1;
        }
    }
    if (!lstm && dse__attr_int(n, DSE_A_linear_before_reset, 0) > 1) { DSE_WHY(why, RNN_LINEAR_BEFORE_RESET_0); return 1; }
    return 0;
}

static int rnn_mkgeom(const dse_model *m, const dse_node *n, int lstm, rnn_geom *g, dse_why *why) {
    if (dse__rnn_f32_geom(m, n, lstm, g, why)) return 1;
    const size_t need = 3 * g->B * g->H * sizeof(float), plan = dse__rnn_f32_plan(g);
    if (m->scratch_size < need) { DSE_WHYF(why, RNN_NEEDS_BYTES_SCRATCH_PLAN, NULL, need, m->scratch_size, 0, 0); return 1; }
    why->scratch = need;
    why->scratch_plan = plan > need ? plan : need;   /* planned for the optimised variants */
    return 0;
}

int dse__check_lstm_f32(const dse_model *m, const dse_node *n, dse_why *why) {
    rnn_geom g;
    return rnn_mkgeom(m, n, 1, &g, why);
}
int dse__check_gru_f32(const dse_model *m, const dse_node *n, dse_why *why) {
    rnn_geom g;
    return rnn_mkgeom(m, n, 0, &g, why);
}

typedef struct wv { const dse_tensor *t; const void *p; } wv;   /* a float32/float16 weight view */
static float at(wv v, size_t i) { return v.t->dtype == DSE_DTYPE_FLOAT32 ? ((const float *)v.p)[i] : dse__nn_ld(v.t, v.p, i); }
static float clipv(float v, int has, float c) { if (!has) return v; v = v < -c ? -c : v; return v > c ? c : v; }

static float dotw(const float *a, wv w, size_t off, size_t len) {
    float s = 0.0f;
    for (size_t k = 0; k < len; k++) s = s + a[k] * at(w, off + k);
    return s;
}

static void rnn_run(const dse_model *m, const dse_node *n, uint8_t *arena, uint8_t *scratch, int lstm) {
    rnn_geom g;
    dse_why why;
    rnn_mkgeom(m, n, lstm, &g, &why);
    const size_t T = g.T, B = g.B, I = g.I, H = g.H, G = g.G;
    const dse_tensor *tin[8] = {0};
    const void *pin[8] = {0};
    for (uint32_t k = 0; k < n->n_in && k < 8; k++)
        if (n->in[k] != DSE_NONE) { tin[k] = &m->tensors[n->in[k]]; pin[k] = dse__data(m, arena, n->in[k]); }
    const float *X = pin[0];
    const wv W = {tin[1], pin[1]}, R = {tin[2], pin[2]}, Bv = {tin[3], pin[3]}, P = {lstm ? tin[7] : NULL, lstm ? pin[7] : NULL};
    const float *h0 = pin[5], *c0 = lstm ? pin[6] : NULL;
    float *Y = n->out[0] != DSE_NONE ? dse__data(m, arena, n->out[0]) : NULL;
    float *Yh = n->n_out >= 2 && n->out[1] != DSE_NONE ? dse__data(m, arena, n->out[1]) : NULL;
    float *Yc = lstm && n->n_out >= 3 && n->out[2] != DSE_NONE ? dse__data(m, arena, n->out[2]) : NULL;
    const dse_attr *ca = dse__attr(n, DSE_A_clip, DSE_ATTR_FLOAT);
    const int hasclip = ca != NULL;
    const float clip = ca ? ca->f : 0.0f;
    const int ifg = lstm && dse__attr_int(n, DSE_A_input_forget, 0) != 0, lbr = !lstm && dse__attr_int(n, DSE_A_linear_before_reset, 0) != 0;
    float *h = (float *)(void *)scratch, *hn = h + B * H, *aux = hn + B * H;   /* aux: c (LSTM) or r / r*h (GRU) */
    /* strides: X[t][b] row, Y[t][d][b] row, state[d][b] row, per layout */
    const size_t xt = g.layout ? I : B * I, xb = g.layout ? T * I : I;
    const size_t yt = g.layout ? g.D * H : g.D * B * H, yd = g.layout ? H : B * H, yb = g.layout ? T * g.D * H : H;
    const size_t sd = g.layout ? H : B * H, sb = g.layout ? g.D * H : H;
    for (size_t d = 0; d < g.D; d++) {
        const int rev = g.reverse_only || d == 1;
        for (size_t b = 0; b < B; b++)
            for (size_t j = 0; j < H; j++) {
                h[b * H + j] = h0 ? h0[d * sd + b * sb + j] : 0.0f;
                if (lstm) aux[b * H + j] = c0 ? c0[d * sd + b * sb + j] : 0.0f;
            }
        const size_t wo = d * G * H * I, ro = d * G * H * H, bo = d * 2 * G * H, po = d * 3 * H;
        for (size_t t = 0; t < T; t++) {
            for (size_t b = 0; b < B; b++) {
                size_t len = T;
                if (tin[4]) {
                    int64_t l = tin[4]->dtype == DSE_DTYPE_INT32 ? ((const int32_t *)pin[4])[b] : ((const int64_t *)pin[4])[b];
                    len = l < 0 ? 0 : (l > (int64_t)T ? T : (size_t)l);
                }
                if (t >= len) {                                  /* sequence over: state kept, Y = 0 */
                    if (Y) for (size_t j = 0; j < H; j++) Y[t * yt + d * yd + b * yb + j] = 0.0f;
                    memcpy(hn + b * H, h + b * H, H * sizeof(float));
                    continue;
                }
                const size_t ts = rev ? len - 1 - t : t;
                const float *xr = X + ts * xt + b * xb, *hp = h + b * H;
                float *hr = hn + b * H, *ar = aux + b * H;
                if (lstm) {
                    for (size_t j = 0; j < H; j++) {
                        float gq[4];
                        for (size_t q = 0; q < 4; q++) {
                            const size_t row = q * H + j;
                            const float bias = Bv.t ? at(Bv, bo + row) + at(Bv, bo + 4 * H + row) : 0.0f;
                            gq[q] = (dotw(xr, W, wo + row * I, I) + dotw(hp, R, ro + row * H, H)) + bias;
                        }
                        const float cp = ar[j];
                        float gi = gq[0], go = gq[1], gf = gq[2], gc = gq[3];
                        if (P.t) { gi = gi + at(P, po + j) * cp; gf = gf + at(P, po + 2 * H + j) * cp; }
                        const float i = dse_sigmoidf(clipv(gi, hasclip, clip));
                        const float f = ifg ? 1.0f - i : dse_sigmoidf(clipv(gf, hasclip, clip));
                        const float c = f * cp + i * dse_tanhf(clipv(gc, hasclip, clip));
                        if (P.t) go = go + at(P, po + H + j) * c;
                        const float o = dse_sigmoidf(clipv(go, hasclip, clip));
                        ar[j] = c;
                        hr[j] = o * dse_tanhf(c);
                    }
                } else {
                    for (size_t j = 0; j < H; j++) {                /* z (kept in hr) and r (in ar) */
                        float gq[2];
                        for (size_t q = 0; q < 2; q++) {
                            const size_t row = q * H + j;
                            float xq = dotw(xr, W, wo + row * I, I), hq = dotw(hp, R, ro + row * H, H);
                            if (Bv.t) { xq = xq + at(Bv, bo + row); hq = hq + at(Bv, bo + 3 * H + row); }
                            gq[q] = dse_sigmoidf(clipv(xq + hq, hasclip, clip));
                        }
                        hr[j] = gq[0];
                        ar[j] = lbr ? gq[1] : gq[1] * hp[j];
                    }
                    for (size_t j = 0; j < H; j++) {
                        const size_t row = 2 * H + j;
                        float xh = dotw(xr, W, wo + row * I, I), v;
                        const float rb = Bv.t ? at(Bv, bo + 3 * H + row) : 0.0f;
                        if (Bv.t) xh = xh + at(Bv, bo + row);
                        if (lbr) v = xh + ar[j] * (dotw(hp, R, ro + row * H, H) + rb);
                        else v = (xh + dotw(ar, R, ro + row * H, H)) + rb;
                        const float hh = dse_tanhf(clipv(v, hasclip, clip)), z = hr[j];
                        hr[j] = (1.0f - z) * hh + z * hp[j];
                    }
                }
                if (Y) for (size_t j = 0; j < H; j++) Y[ts * yt + d * yd + b * yb + j] = hr[j];
            }
            memcpy(h, hn, B * H * sizeof(float));
        }
        for (size_t b = 0; b < B; b++)
            for (size_t j = 0; j < H; j++) {
                if (Yh) Yh[d * sd + b * sb + j] = h[b * H + j];
                if (Yc) Yc[d * sd + b * sb + j] = aux[b * H + j];
            }
    }
}

void dse_f32_lstm__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) { rnn_run(m, n, arena, cx->scratch, 1); }
void dse_f32_gru__ref(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) { rnn_run(m, n, arena, cx->scratch, 0); }
