/* conv_i8.c (neon): int8 Conv with group 1 and packed weights (layout 1, W[O][C*kernel]) on
 * arm64, any kernel, stride, dilation, padding, 1 to 3 spatial axes; the baseline NEON variant
 * and the driver the dotprod variant shares (arithmetic: i8_neon.h).
 *
 * Per image, the output pixels go in tiles of T (n->scratch / K16 rows, K16 = K rounded up to
 * 16; about 96 KiB, at most 256 pixels: within the plan's 2 * K4 * min(P, 256) + 4096 bytes).
 * A tile's im2col rows (row = one output pixel, K16 bytes: the input values of its taps in
 * W's (c, kd, kh, kw) order, zp_in where a tap falls in the padding, zeros past K) are built
 * in the worker's scratch eight k at a time: eight k-rows along the pixels (copies of input
 * row segments, memset for padding), then 8x8 byte transposes into the pixel rows. The GEMM
 * driver (gemm_i8.c) multiplies them with the packed weights; its 8-pixel x 8-channel tiles
 * are transposed again into the NCHW output. 1x1 convolutions take the same path (their im2col
 * is a transpose). Threads split (image, tile) pairs; each uses its own scratch.
 */
#include "i8_neon.h"

#if DSE_ARCH_ARM64
#include <arm_neon.h>

#define NEON_CONV_TILE_BYTES ((size_t)96 * 1024)

/* The tile size of a Conv with P output pixels per image and K16-byte rows given scratch_size
 * bytes of scratch: 0 when not even one row (or 8 when P >= 8) fits. */
static size_t neon_conv_tile(size_t P, size_t K16, size_t scratch_size) {
    size_t T = NEON_CONV_TILE_BYTES / K16;
    T = T < 8 ? 8 : T > 256 ? 256 : T / 8 * 8;
    if (T > P) T = P;
    if (T * K16 > scratch_size) {
        T = scratch_size / K16;
        if (T > 8) T = T / 8 * 8;
        if (T < 8 && T < P) T = 0;
    }
    return T;
}

int dse__check_i8_conv_packed(const dse_model *m, const dse_node *n, dse_why *why) {
    if (dse_i8_ref_check_conv(m, n, why)) return 1;
    const dse_tensor *x = &m->tensors[n->in[0]], *w = &m->tensors[n->in[1]], *y = &m->tensors[n->out[0]];
    size_t K = w->dims[1], P = 1;
    for (unsigned d = 2; d < w->rank; d++) K *= w->dims[d], P *= y->dims[d];
    if (dse__attr_int(n, DSE_A_group, 1) != 1) { DSE_WHYF(why, I8_NEON_NEEDS_PACKED_WEIGHTS, NULL, 1, 0, 0, 0); return 1; }
    if (dse_i8_neon_packed_operands(m, n, 1, w->dims[0], K, why)) return 1;
    (void)x;
    const size_t K16 = (K + 15) / 16 * 16, T = neon_conv_tile(P, K16, m->scratch_size);
    if (!T && P) {
        DSE_WHYF(why, I8_NEON_SCRATCH_TOO_SMALL, NULL, K16 * (P < 8 ? P : 8), m->scratch_size, 0, 0);
        return 1;
    }
    why->scratch = T * K16;
    why->scratch_plan = dse_i8_packed_plan(K, P);
    return 0;
}

typedef struct neon_conv_args {
    dse_i8_gemm_job jb;        /* x, rows, ybase are set per tile */
    const int8_t *x;
    const dse_i8_geom *g;
    const dse_ctx *cx;
    size_t C, P, T, ntiles, K16, img_in, img_out;
} neon_conv_args;

/* k-row k of the tile's im2col matrix: for output pixels p0 .. p0 + tn - 1 of image xb, the
 * input value at tap k (zp where it falls in the padding) -> dst[0 .. tn) */
static void neon_conv_krow(const int8_t *xb, const dse_i8_geom *g, size_t k, size_t p0, size_t tn, int8_t zp,
                           int8_t *dst) {
    const long long KD = g->k[0], KH = g->k[1], KW = g->k[2], KS = KD * KH * KW;
    const long long ID = g->in[0], IH = g->in[1], IW = g->in[2], OH = g->out[1], OW = g->out[2];
    const long long c = (long long)k / KS, r = (long long)k % KS, kd = r / (KH * KW), kh = r / KW % KH, kw = r % KW;
    const long long sw = g->s[2], off = kw * g->d[2] - g->pb[2];   /* iw = ow * sw + off */
    /* the output columns whose tap is inside the row: [lo, hi) */
    const long long lo = off >= 0 ? 0 : (-off + sw - 1) / sw, hi = IW - 1 - off < 0 ? 0 : (IW - 1 - off) / sw + 1;
    const int8_t *xc = xb + c * ID * IH * IW;
    long long ow = (long long)(p0 % (size_t)OW), t = (long long)(p0 / (size_t)OW), oh = t % OH, od = t / OH;
    size_t q = 0;
    while (q < tn) {
        const long long len = OW - ow < (long long)(tn - q) ? OW - ow : (long long)(tn - q);
        const long long id = od * g->s[0] + kd * g->d[0] - g->pb[0], ih = oh * g->s[1] + kh * g->d[1] - g->pb[1];
        int8_t *d = dst + q;
        if (id < 0 || id >= ID || ih < 0 || ih >= IH) {
            memset(d, zp, (size_t)len);
        } else {
            const int8_t *xr = xc + (id * IH + ih) * IW;
            const long long e0 = ow + len, a = lo < ow ? ow : lo > e0 ? e0 : lo, e = hi < a ? a : hi > e0 ? e0 : hi;
            memset(d, zp, (size_t)(a - ow));
            if (sw == 1) {
                memcpy(d + (a - ow), xr + a + off, (size_t)(e - a));
            } else {
                for (long long u = a; u < e; u++) d[u - ow] = xr[u * sw + off];
            }
            memset(d + (e - ow), zp, (size_t)(e0 - e));
        }
        q += (size_t)len;
        ow = 0;
        if (++oh == OH) oh = 0, od++;
    }
}

/* the im2col rows of pixels p0 .. p0 + tn - 1 (tn <= 256) of image xb: rows[q * K16 + k] */
static void neon_conv_im2col(const int8_t *xb, const dse_i8_geom *g, size_t K, size_t K16, size_t p0, size_t tn,
                             int8_t zp, int8_t *rows) {
    int8_t tmp[8][256 + 8];
    const size_t tp = (tn + 7) / 8 * 8;
    for (size_t kc = 0; kc < K16; kc += 8) {
        for (size_t r = 0; r < 8; r++) {
            if (kc + r < K) neon_conv_krow(xb, g, kc + r, p0, tn, zp, tmp[r]);
            else memset(tmp[r], 0, tn);
            memset(tmp[r] + tn, 0, tp - tn);
        }
        for (size_t q = 0; q < tn; q += 8)
            dse_i8_neon_tr8x8(&tmp[0][q], sizeof tmp[0], rows + q * K16 + kc, K16, (int)(tn - q < 8 ? tn - q : 8));
    }
}

static void neon_conv_task(void *arg, size_t begin, size_t end, unsigned worker) {
    const neon_conv_args *a = (const neon_conv_args *)arg;
    int8_t *rows = (int8_t *)dse__worker_scratch(a->cx, worker);
    dse_i8_gemm_job jb = a->jb;
    for (size_t t = begin; t < end; t++) {
        const size_t b = t / a->ntiles, p0 = t % a->ntiles * a->T, tn = a->P - p0 < a->T ? a->P - p0 : a->T;
        neon_conv_im2col(a->x + b * a->img_in, a->g, jb.K, a->K16, p0, tn, (int8_t)jb.o->zp_in, rows);
        jb.x = rows, jb.rows = tn, jb.ybase = b * a->img_out + p0;
        dse_i8_neon_gemm_blocks(&jb, 0, (jb.R + 7) / 8);
    }
}

void dse_i8_neon_conv_run(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx, dse_i8_mk_fn mk) {
    const dse_tensor *xt = &m->tensors[n->in[0]], *wt = &m->tensors[n->in[1]], *yt = &m->tensors[n->out[0]];
    dse_i8_out o;
    dse_i8_geom g;
    dse_why why;
    dse_i8_out_params(m, n, wt->dims[0], &o, &why);
    dse_i8_geom_read(n, xt, yt, wt->dims + 2, &g, &why);
    const size_t C = xt->dims[1], R = wt->dims[0], K = C * (size_t)(g.k[0] * g.k[1] * g.k[2]), K16 = (K + 15) / 16 * 16;
    const size_t P = (size_t)(g.out[0] * g.out[1] * g.out[2]), T = n->scratch / K16;
    if (!P || !R || !xt->dims[0] || !T) return;
    neon_conv_args a = {{mk, NULL, dse__data(m, arena, n->in[1]), 0, K, K16, R, 1, dse__data(m, arena, n->in[2]), &o,
                         dse__data(m, arena, n->out[0]), 0, P, 1},
                        dse__data(m, arena, n->in[0]), &g, cx, C, P, T, (P + T - 1) / T, K16,
                        C * (size_t)(g.in[0] * g.in[1] * g.in[2]), R * P};
    dse__parallel(cx, xt->dims[0] * a.ntiles, 1, neon_conv_task, &a);
}

void dse_i8_conv__neon(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    dse_i8_neon_conv_run(m, n, arena, cx, dse_i8_mk__neon);
}

#endif
