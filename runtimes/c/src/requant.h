/* requant.h: the one requantisation rule of the int8 kernels, and the helpers they share.
 *
 * The rule (docs/quant-arith.md §3, DESIGN.md §3), identical to dsedge/quant/arith.py:
 *
 *     y = clamp(zp_out + (((int64)acc * M + 2^(n-1)) >> n), qmin, qmax)
 *
 * with M in [0, 2^31), n in [1, 62] (checked at load by every kernel that reads them) and
 * |acc| < 2^32, so acc * M + 2^(n-1) < 2^63 never overflows. `>>` is an arithmetic shift
 * (floor division by 2^n): implementation-defined for a negative int64_t in C11 but
 * arithmetic on every compiler and target the runtime supports; the static assertion below
 * refuses to build where it is not. Adding 2^(n-1) before the floor makes the rounding
 * "round half up" (towards +inf): 2.5 -> 3, -2.5 -> -2. A multiplier >= 1 is still this
 * multiply and right shift: nothing is ever shifted left.
 *
 * Add/Sub use the same shift on a sum of two scaled terms (dse_i8_round_shift); Concat's
 * rescale is the rule applied to (q - zp_in).
 *
 * The helpers after the rule (attribute and parameter decoding, the output stage of weighted
 * ops) are defined in kernels/ref/conv_i8.c and used by every int8 kernel file.
 */
#ifndef DSEDGE_REQUANT_H
#define DSEDGE_REQUANT_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "internal.h"

_Static_assert(((int64_t)-1 >> 1) == -1 && ((int64_t)-5 >> 1) == -3,
               "dsedge needs an arithmetic right shift of negative int64_t (floor division)");
_Static_assert((int32_t)-1 >> 1 == -1, "dsedge needs an arithmetic right shift of negative int32_t");

/* (t + 2^(n-1)) >> n: floor(t / 2^n + 1/2), n in [1, 62], |t| < 2^62. */
static inline int64_t dse_i8_round_shift(int64_t t, int n) {
    return (t + ((int64_t)1 << (n - 1))) >> n;
}

static inline int8_t dse_i8_clamp(int64_t v, int qmin, int qmax) {
    v = v < qmin ? qmin : v;      /* two selects (conditional moves), no branch */
    v = v > qmax ? qmax : v;
    return (int8_t)v;
}

/* The requantisation rule; |acc| < 2^32, 0 <= M < 2^31, 1 <= n <= 62. */
static inline int8_t dse_requant(int64_t acc, int32_t M, int n, int zp_out, int qmin, int qmax) {
    return dse_i8_clamp(zp_out + dse_i8_round_shift(acc * M, n), qmin, qmax);
}

/* A16W8 (kernels/ref/a16w8.c, docs/quant-arith.md §15): the rule above on an int64 accumulator,
 * evaluated exactly (as with unbounded integers) and clamped to int16, 0 <= M < 2^31, 1 <= n <= 62:
 *   n >= 32: acc = a1 * 2^32 + a0 (a0 in [0, 2^32)), floor((acc*M + 2^(n-1)) / 2^n)
 *            = (a1*M + ((a0*M + 2^(n-1)) >> 32)) >> (n - 32)   (a0*M + 2^(n-1) < 2^64 unsigned,
 *            |a1*M| < 2^62);
 *   n <  32: M >= 2^30 there (only (0, 62) has M = 0), so |acc| >= 2^31 saturates an int16 output
 *            either way: acc is clamped to [-2^31, 2^31] and the ordinary rule runs in int64. */
static inline int16_t dse_requant_wide(int64_t acc, int32_t M, int n, int zp_out, int qmin, int qmax) {
    int64_t y;
    if (n >= 32) {
        const uint64_t low = (((uint64_t)acc & 0xFFFFFFFFu) * (uint64_t)M + ((uint64_t)1 << (n - 1))) >> 32;
        y = ((acc >> 32) * M + (int64_t)low) >> (n - 32);
    } else {
        const int64_t lim = (int64_t)1 << 31, a = acc < -lim ? -lim : acc > lim ? lim : acc;
        y = dse_i8_round_shift(a * M, n);
    }
    y += zp_out;
    y = y < qmin ? qmin : y;
    y = y > qmax ? qmax : y;
    return (int16_t)y;
}

/* QuantizeLinear of DSE_Q_BLOCK floats, q[j] = clamp(nearbyintf(x[j] / s) + zp, lo, hi), NaN -> zp,
 * in a form compilers vectorise (kernels/ref/quantize.c explains it; also the int8 output of
 * the float Elementwise kernel). */
#define DSE_Q_BLOCK 16
static inline void dse_quantize_block(const float *x, float s, int zp, int lo, int hi, int32_t *q) {
    uint32_t rb[DSE_Q_BLOCK], mb[DSE_Q_BLOCK];
    for (size_t j = 0; j < DSE_Q_BLOCK; j++) {
        const float r = x[j] / s, m = r + 12582912.0f;
        memcpy(&rb[j], &r, 4);
        memcpy(&mb[j], &m, 4);
    }
    for (size_t j = 0; j < DSE_Q_BLOCK; j++) {
        int32_t mag = (int32_t)(rb[j] & 0x7FFFFFFFu), neg = (int32_t)(rb[j] >> 31);
        int32_t v = (int32_t)(mb[j] & 0x7FFFFFu) - 0x400000;
        v = mag >= 0x44000000 ? 1024 - 2048 * neg : v;          /* |r| >= 512 */
        v += zp;
        v = v > lo ? v : lo;
        v = v < hi ? v : hi;
        q[j] = mag > 0x7F800000 ? zp : v;                        /* NaN */
    }
}

/* dsedge.ActFnQuantize (kernels/ref/act_quantize.c): y = QuantizeLinear(f(x), q_scale, q_zp), f the
 * fused activation function act_fn (DSE_ACT_FN_*). Reads and checks the node (0 when valid; shared
 * by the REF and optimised variants, which set why->act_fns for the sigmoid they apply). */
typedef struct dse_act_q { int fn, zp; float s; } dse_act_q;
DSE_SHARED int dse__act_q_params(const dse_model *m, const dse_node *n, dse_act_q *p, dse_why *why);
/* QuantizeLinear per tensor (kernels/ref/quantize.c): its scale and zero point of output dtype qtype (0 when
 * both are valid constants; the REF check's reading, shared by the optimised variants). */
DSE_SHARED int dse__quantize_params(const dse_model *m, const dse_node *n, int qtype, float *scale, int *zp);
/* QuantizeLinear's scalar rule (kernels/ref/quantize.c's tail: the bytes of dse_quantize_block). */
static inline int8_t dse_quantize1(float x, float s, int zp) {
    const float r = nearbyintf(x / s);
    int32_t q = r != r ? zp : r <= -512.0f ? -128 : r >= 512.0f ? 127 : (int32_t)r + zp;
    q = q < -128 ? -128 : q > 127 ? 127 : q;
    return (int8_t)q;
}

/* -- shared helpers (kernels/ref/conv_i8.c) -------------------------------------------------- */

/* An int8 zero point / clamp bound must lie in [-128, 127]. */
#define DSE_I8_OK(v) ((v) >= -128 && (v) <= 127)

/* Data of the constant tensor named by TENSOR attribute `key` (DSE_A_<name>), when it exists and has
 * `dtype` and exactly `numel` elements; else NULL. */
DSE_SHARED const void *dse_i8_tensor_attr(const dse_model *m, const dse_node *n, int key, int dtype, size_t numel);

/* 1 when every (M, n) pair is valid: 0 <= M < 2^31 and 1 <= n <= 62. */
DSE_INTERNAL int dse_i8_mult_ok(const int32_t *M, const int32_t *shift, size_t count);

/* The output stage of a weighted op (Conv, ConvTranspose, Gemm, MatMul): an int32
 * accumulator per output element becomes int8 through the rule (per-channel M, n, then
 * qmin/qmax), or with float_out float32 = (float)acc * out_scale[c] clamped to
 * [act_min, act_max] in float. */
typedef struct dse_i8_out {
    int zp_in, zp_out, qmin, qmax, float_out;
    const int32_t *M, *shift;
    const float *scale;
    float act_min, act_max;
} dse_i8_out;

/* Reads and validates the attributes above for `channels` output channels (used by check,
 * where it sets the reason in why and returns non-zero, and again by run). */
DSE_SHARED int dse_i8_out_params(const dse_model *m, const dse_node *n, size_t channels, dse_i8_out *o, dse_why *why);

/* Operand checks of a weighted node: x int8, w int8 constant with no -128 (weights are
 * symmetric, [-127, 127]: this also bounds the accumulator), bias int32 constant[C],
 * output int8 or (float_out) float32; K products per output must satisfy
 * K * 255 * 127 < 2^31 (the export's overflow proof, docs/quant-arith.md §4). */
DSE_INTERNAL int dse_i8_weighted_operands(const dse_model *m, const dse_node *n, size_t channels, size_t K, dse_why *why);

static inline void dse_i8_store(const dse_i8_out *o, void *y, size_t idx, size_t c, int64_t acc) {
    if (o->float_out) {
        float v = (float)acc * o->scale[c];     /* int -> float32 rounds to nearest even */
        if (v < o->act_min) v = o->act_min;
        if (v > o->act_max) v = o->act_max;
        ((float *)y)[idx] = v;
    } else {
        ((int8_t *)y)[idx] = dse_requant(acc, o->M[c], o->shift[c], o->zp_out, o->qmin, o->qmax);
    }
}

/* Numpy broadcasting of two int8 inputs onto the int8 output (the elementwise walker of
 * kernels/ref/binary.c then walks them). */
DSE_INTERNAL int dse_i8_check_broadcast(const dse_model *m, const dse_node *n, dse_why *why);

/* int8 Add/Sub parameters (kernels/ref/add_i8.c): zero points, output clamp, the shared shift n
 * and the two multipliers; 0 when valid (shared by the REF and optimised Add kernels). */
typedef struct dse_i8_addp { int za, zb, zp, qmin, qmax, n; int64_t Ma, Mb; } dse_i8_addp;
DSE_SHARED int dse_i8_add_params(const dse_node *n, dse_i8_addp *p);

/* int8 Mul parameters (kernels/ref/mul_i8.c): zero points, output zero point and clamp, the
 * multiplier and shift; 0 when valid (shared by the REF and optimised Mul kernels). */
typedef struct dse_i8_mulp { int za, zb, zp, qmin, qmax, n; int32_t M; } dse_i8_mulp;
DSE_SHARED int dse_i8_mul_params(const dse_node *n, dse_i8_mulp *p);

/* Spatial geometry of Conv/ConvTranspose/pools, for 1 to 3 spatial axes stored in the last
 * slots (a 1-D op uses slot 2 only; unused slots are 1 / 0). Attributes kernel_shape
 * (default: `kernel` when given), strides (1), pads (0), dilations (1). */
typedef struct dse_i8_geom {
    int sp;
    long long in[3], out[3], k[3], s[3], d[3], pb[3], pe[3];
} dse_i8_geom;

DSE_SHARED int dse_i8_geom_read(const dse_node *n, const dse_tensor *x, const dse_tensor *y, const size_t *kernel,
                     dse_i8_geom *g, dse_why *why);

/* The shapes of a Conv (x, w of x's rank >= 3, y): channels, groups and the output's spatial
 * size agree with the geometry, which is read into g (the int8 and the dynamic Conv checks). */
DSE_INTERNAL int dse_i8_conv_shapes(const dse_node *n, const dse_tensor *x, const dse_tensor *w, const dse_tensor *y,
                                    dse_i8_geom *g, dse_why *why);

/* Rows of x (rows x K) times w + bias[N], through the output stage: the core of int8 Gemm
 * and MatMul (kernels/ref/loops.c), on cx's threads. w is (K x N) row-major (layout 0, transB 0), (N x K)
 * row-major (layout 0, transB 1), or packed (layout 1 or 2: the W[N][K] view, transB ignored;
 * internal.h, dse__n8k4_index). */
DSE_SHARED void dse_i8_gemm_rows(const dse_ctx *cx, const int8_t *x, size_t rows, size_t K, const int8_t *w, int layout,
                                 size_t N, int transB, const int32_t *bias, const dse_i8_out *o, void *y);

/* The int8 Conv loop nest over N batches, O output channels of Cg input channels each (C in
 * all), geometry g, output stage o (kernels/ref/loops.c; conv_i8.c explains it), on cx's threads; w row-major
 * (layout 0) or, with group 1, layout 1 (W[O][Cg*kernel]). */
DSE_SHARED void dse_i8_conv_loop(const dse_ctx *cx, const int8_t *x, const int8_t *w, int layout, const int32_t *bias,
                                 void *y, const dse_i8_out *o, const dse_i8_geom *g, long long N, long long C, long long O,
                                 long long Cg);

/* W4A8 loops (kernels/ref/loops.c; w4a8.c explains the arithmetic): the int8 Conv loop nest and
 * the Gemm core with int4 weights w, one row of ceil(K/2) bytes per output channel (layouts 3/4;
 * blocked = 0) or the 16-byte N8K4 blocks of layouts 6/7 (blocked = 1), times the group
 * multipliers mul[c * ceil(K/group) + k/group] (mul NULL: per channel). */
DSE_SHARED void dse_w4_conv_loop(const dse_ctx *cx, const int8_t *x, const uint8_t *w, int blocked, const int8_t *mul,
                                 size_t group, const int32_t *bias, void *y, const dse_i8_out *o, const dse_i8_geom *g,
                                 long long N, long long C, long long O, long long Cg);
DSE_SHARED void dse_w4_gemm_rows(const dse_ctx *cx, const int8_t *x, size_t rows, size_t K, const uint8_t *w, int blocked,
                                 const int8_t *mul, size_t group, size_t N, const int32_t *bias, const dse_i8_out *o, void *y);

/* MatMul of two int8 activations (kernels/ref/matmul_act.c explains it; loop in kernels/ref/loops.c):
 * numpy MatMul of A and B (geometry g: batch axes broadcast, 1-D operands), y = the output stage
 * o (one M/shift or one out_scale: channel 0) of acc = sum_k (a - za)(b - zb), exact in int32 for
 * K <= DSE_MMA_MAX_K; rows of the output over cx's threads. */
#define DSE_MMA_MAX_K 33025   /* K * 255 * 255 < 2^31 */
typedef struct dse_i8_mma {
    const int8_t *a, *b;
    void *y;
    const dse_mm_geom *g;
    int za, zb;
    const dse_i8_out *o;
} dse_i8_mma;
DSE_SHARED void dse_i8_matmul_act_loop(const dse_ctx *cx, const dse_i8_mma *p);
/* Reads and checks the node (operands, geometry into g, parameters into o; M/shift/out_scale
 * point into *store): 0 when valid (shared by the REF and optimised variants). */
typedef struct dse_i8_mma_store { int32_t M, shift; float scale; } dse_i8_mma_store;
DSE_SHARED int dse_i8_matmul_act_valid(const dse_model *m, const dse_node *n, dse_mm_geom *g, int *za, int *zb,
                                       dse_i8_out *o, dse_i8_mma_store *store, dse_why *why);

/* Integer MACs of pre-quantised ONNX models (MatMulInteger, ConvInteger, DynamicQuantizeLSTM;
 * kernels/ref/loops.c): uint8 (u8 = 1) or int8 operands and zero points, int32 outputs equal to
 * the exact sum of (a - za) * (b - zb) modulo 2^32 (what the numpy reference's int32 cast gives).
 * MatMul: A (M x K) times B (K x N), both row-major; za: NULL (0), one value (za_step 0) or one
 * per row (za_step 1); zb: likewise per column; y (M x N). */
typedef struct dse_int_mm {
    const void *a, *b, *za, *zb;
    int a_u8, b_u8, za_u8, zb_u8;
    size_t za_step, zb_step, M, K, N;
    int32_t *y;
} dse_int_mm;
DSE_SHARED void dse_int_matmul(const dse_ctx *cx, const dse_int_mm *p);
/* Conv: x (N, C, spatial) with scalar zero point zx, w (O, Cg, kernel) row-major with wz NULL,
 * one value (wz_step 0) or one per output channel (wz_step 1); geometry g; y (N, O, spatial). */
typedef struct dse_int_conv {
    const void *x, *w, *wz;
    int x_u8, w_u8, wz_u8;
    int32_t zx;
    size_t wz_step;
    const dse_i8_geom *g;
    long long N, C, O, Cg;
    int32_t *y;
} dse_int_conv;
DSE_SHARED void dse_int_conv_loop(const dse_ctx *cx, const dse_int_conv *p);

/* Scratch planned for ConvInteger, MatMulInteger and DynamicQuantizeLSTM: what the optimised
 * variants use (kernels/avx2/integer.c; the REF kernels use none besides DynamicQuantizeLSTM's
 * own): `rows` rows of the broadcast operand as int16 pairs (4 * rows * ceil(K/2) bytes: Conv's
 * weights, all O of them; MatMul's A, DSE_INT_MM_ROWS rows at a time) and one panel of 16
 * columns of the other (64 * ceil(K/2)). dsedge/export/scratch.py: int_gemm_plan. */
#define DSE_INT_MM_ROWS 64
static inline size_t dse_int_gemm_plan(size_t rows, size_t K) {
    if (!rows || !K) return 0;
    return (4 * rows + 64) * ((K + 1) / 2);
}
/* The REF checks of ConvInteger, MatMulInteger and DynamicQuantizeLSTM without the scratch
 * (conv_integer.c, matmul_integer.c, dyn_lstm.c), for the optimised variants; `plan` (may be
 * NULL) gets the op's scratch plan; DynamicQuantizeLSTM's `ref_bytes` what REF uses of it. */
DSE_SHARED int dse__conv_integer_valid(const dse_model *m, const dse_node *n, size_t *plan, dse_why *why);
DSE_SHARED int dse__matmul_integer_valid(const dse_model *m, const dse_node *n, size_t *plan, dse_why *why);
DSE_SHARED int dse__dyn_lstm_valid(const dse_model *m, const dse_node *n, size_t *ref_bytes, size_t *plan, dse_why *why);
/* DynamicQuantizeLSTM's run (dyn_lstm.c) with its integer products computed by ops->mm (REF:
 * dse_int_matmul; the same int32 results from any; mm_arg passed through) and its activations
 * y[i] = act(kind, x[i]) for i < n (x == y allowed) by ops->act (REF: dyn_lstm.c's MLAS sigmoid
 * / tanh and relu, element by element; a variant must give the same bits). */
typedef void (*dse_int_mm_fn)(const dse_ctx *cx, const dse_int_mm *p, void *mm_arg);
/* MatMulInteger's node (kernels/ref/matmul_integer.c): numpy's batch walk over A and B, each
 * batch's M x K x N product given to mm (REF: dse_int_matmul; the AVX2 variant its own core). */
DSE_SHARED void dse__matmul_integer_run(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx,
                                        dse_int_mm_fn mm, void *mm_arg);
enum { DSE_DYNL_SIGMOID, DSE_DYNL_TANH, DSE_DYNL_RELU };
typedef struct dse_dyn_lstm_ops {
    dse_int_mm_fn mm;
    void *mm_arg;
    void (*act)(int kind, const float *x, float *y, size_t n);
} dse_dyn_lstm_ops;
DSE_SHARED void dse__dyn_lstm_run(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx, const dse_dyn_lstm_ops *ops);

/* Scratch planned for an int8 Conv (group 1 or depthwise), Gemm or MatMul with K products per
 * output and P output pixels per image (Conv) or rows (Gemm/MatMul): what the optimised
 * variants may use (one int16 tile of at most DSE_I8_PACK_TILE columns of K rounded up to 4,
 * plus 4096 bytes); the REF kernels use none. dsedge/export/scratch.py: packed_gemm_plan. */
#define DSE_I8_PACK_TILE 256
static inline size_t dse_i8_gemm_scratch_plan(size_t K, size_t P) {
    if (!K || !P) return 0;
    return 2 * ((K + 3) / 4 * 4) * (P < DSE_I8_PACK_TILE ? P : DSE_I8_PACK_TILE) + 4096;
}

/* Scratch planned for an int8 Conv with group 1 (N images, P output pixels each): the GEMM plan, or,
 * when the images are small (P < 16) and several (the AVX2 variant runs tiles across the images,
 * kernels/avx2/conv_i8.c), dse_i8_conv_imgs_tile(K, P, N) = T columns: the int16 tile (2 * Kp * T),
 * the [T][K] im2row stage and 4096 bytes. dsedge/export/scratch.py: conv_i8_plan. */
static inline size_t dse_i8_conv_imgs_tile(size_t K, size_t P, size_t N) {
    if (!K || !P || P >= 16 || N < 2) return 0;
    size_t T = N * P, cap = 65536 / K;
    if (cap < 16) cap = 16;
    if (T > cap) T = cap;
    return T < DSE_I8_PACK_TILE ? T : DSE_I8_PACK_TILE;
}
static inline size_t dse_i8_conv_scratch_plan(size_t K, size_t P, size_t N) {
    const size_t T = dse_i8_conv_imgs_tile(K, P, N), g = dse_i8_gemm_scratch_plan(K, P);
    const size_t b = T ? 2 * ((K + 3) / 4 * 4) * T + K * T + 4096 : 0;
    return b > g ? b : g;
}

/* Scratch planned for a W4A8 depthwise Conv (C channels of K taps, P output pixels): the int8
 * depthwise plan and the int8 expansion of its weights, C * K rounded up to 64 bytes, which the AVX2
 * W4 depthwise kernel (kernels/avx2/dwconv_i8_w4.c) keeps at its end; dsedge/export/scratch.py. */
static inline size_t dse_w4_dw_weight_bytes(size_t C, size_t K) { return (C * K + 63) / 64 * 64; }
static inline size_t dse_w4_dw_scratch_plan(size_t C, size_t K, size_t P) {
    return K && P ? dse_i8_gemm_scratch_plan(K, P) + dse_w4_dw_weight_bytes(C, K) : 0;
}

/* One output pixel's im2col row of an int8 Conv with group 1 (the optimised variants' small tiles:
 * kernels/avx2/conv_i8.c, kernels/neon/conv_i8.c): d[k] for k < C * KD * KH * KW in W's order
 * (c, kd, kh, kw), the input at pixel q's tap of image xb (C planes of in[0] * in[1] * in[2]), zp where
 * the tap falls in the padding; each (c, kd, kh)'s KW taps one run (a copy where they lie inside the
 * row with dilation 1). */
static inline void dse_i8_im2row_pixel(const int8_t *xb, const dse_i8_geom *g, size_t C, size_t q, int8_t zp, int8_t *d) {
    const long long ID = g->in[0], IH = g->in[1], IW = g->in[2], KD = g->k[0], KH = g->k[1], KW = g->k[2];
    const size_t isz = (size_t)(ID * IH * IW);
    const long long p = (long long)q, dw = g->d[2];
    const long long oz = p / (g->out[2] * g->out[1]) * g->s[0] - g->pb[0];
    const long long oy = p / g->out[2] % g->out[1] * g->s[1] - g->pb[1];
    const long long ox = p % g->out[2] * g->s[2] - g->pb[2];
    const int inside_w = dw == 1 && ox >= 0 && ox + KW <= IW;
    for (size_t c = 0; c < C; c++, xb += isz)
        for (long long kd = 0; kd < KD; kd++)
            for (long long kh = 0; kh < KH; kh++, d += KW) {
                const long long id = oz + kd * g->d[0], ih = oy + kh * g->d[1];
                if (id < 0 || id >= ID || ih < 0 || ih >= IH) {
                    memset(d, zp, (size_t)KW);
                    continue;
                }
                const int8_t *row = xb + (id * IH + ih) * IW;
                if (inside_w && KW > 8)
                    memcpy(d, row + ox, (size_t)KW);
                else if (inside_w)
                    for (long long kw = 0; kw < KW; kw++) d[kw] = row[ox + kw];
                else
                    for (long long kw = 0; kw < KW; kw++) {
                        const long long iw = ox + kw * dw;
                        d[kw] = iw >= 0 && iw < IW ? row[iw] : zp;
                    }
            }
}

/* The REF checks of int8 Conv, Gemm and MatMul (kernels/ref/conv_i8.c, gemm_i8.c, matmul_i8.c),
 * shared with the optimised variants, which accept a subset of what REF accepts (DSE_SHARED:
 * the variants are in the bundle's other compilation unit). */
DSE_SHARED int dse_i8_conv_check(const dse_model *m, const dse_node *n, dse_why *why);
DSE_SHARED int dse_i8_maxpool_check(const dse_model *m, const dse_node *n, dse_why *why);   /* maxpool_i8.c */
DSE_SHARED int dse_i8_conv_transpose_check(const dse_model *m, const dse_node *n, dse_why *why);   /* conv_transpose_i8.c */
DSE_SHARED int dse_i8_gemm_check(const dse_model *m, const dse_node *n, dse_why *why);
DSE_SHARED int dse_i8_matmul_check(const dse_model *m, const dse_node *n, dse_why *why);
/* The same for the W4A8 REF kernels (kernels/ref/w4a8.c), shared with the AVX2 W4 variants. */
DSE_SHARED int dse_w4_conv_check(const dse_model *m, const dse_node *n, dse_why *why);
DSE_SHARED int dse_w4_gemm_check(const dse_model *m, const dse_node *n, dse_why *why);
DSE_SHARED int dse_w4_matmul_check(const dse_model *m, const dse_node *n, dse_why *why);
/* The operand count and shapes of a weighted Gemm (x[M,K], w[K,N] or [N,K] with transB, bias;
 * y[M,N]; transA 0) and MatMul (x[...,K], w[K,N], bias; y[...,N]): K and N, or the reason in why.
 * Shared by the int8, W4A8 and A16W8 checks (gemm_i8.c, matmul_i8.c). */
DSE_INTERNAL int dse_gemm_shapes(const dse_model *m, const dse_node *n, size_t *K, size_t *N, dse_why *why);
DSE_INTERNAL int dse_matmul_shapes(const dse_model *m, const dse_node *n, size_t *K, size_t *N, dse_why *why);

/* The layout a weighted node's weights may have: Conv (group 1) 0/1, Gemm 0 or 1 (transB 1) /
 * 2 (transB 0), MatMul 0/2 (kernel checks: CONV_I8_WEIGHT_LAYOUT). Sets why->packed when
 * packed. Returns non-zero (after DSE_WHYF) when w's layout is not one of them. */
DSE_INTERNAL int dse_i8_weight_layout_ok(const dse_tensor *w, int allowed, dse_why *why);

/* floor(a / b) for b > 0 */
static inline long long dse_i8_floordiv(long long a, long long b) {
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}


/* The REF int8 Conv / Gemm / MatMul checks, for optimised variants that accept what REF accepts
 * and more conditions of their own: shared (the REF checks themselves are internal to the
 * bundle's cold unit, the variants live in the hot one; README.md, "Bundle build"). */
DSE_SHARED int dse_i8_ref_check_conv(const dse_model *m, const dse_node *n, dse_why *why);
DSE_SHARED int dse_i8_ref_check_gemm(const dse_model *m, const dse_node *n, dse_why *why);
DSE_SHARED int dse_i8_ref_check_matmul(const dse_model *m, const dse_node *n, dse_why *why);

#endif
