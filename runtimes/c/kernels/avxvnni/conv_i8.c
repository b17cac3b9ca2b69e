/* avxvnni/conv_i8.c: int8 Conv (group 1), Gemm and MatMul with packed weights on x86-64 with
 * VNNI (vpdpbusd), byte-identical with the REF kernels (kernels/ref/conv_i8.c, gemm_i8.c,
 * matmul_i8.c) and with the AVX2 variants (kernels/avx2/conv_i8.c).
 *
 * One source, two variants: compiled as it is, it defines the AVX-VNNI kernels
 * (`dse_i8_{conv,gemm,matmul}__avxvnni`: VEX vpdpbusd on ymm, `_mm256_dpbusd_avx_epi32`; Alder
 * Lake, Sapphire Rapids, Zen 5) and the checks both variants share; kernels/avx512vnni/conv_i8.c
 * defines DSE_VNNI_512 and includes it for the AVX512-VNNI kernels (`...__avx512vnni`: 512-bit
 * vpdpbusd on zmm; Cascade Lake, Ice Lake, Sapphire Rapids, Zen 4): the same GEMM core with a 16
 * channels x 16 columns microkernel, and for Conv a pixels-in-lanes core (the DSE_VNNI_512 parts
 * below, docs/kernels.md). Every
 * static name goes through VN() (vnni256_ / vnni512_), since bundles compile both files in one
 * unit. With -DDSE_EMULATE_VNNI (tests only: make EMULATE_VNNI=<mask>) both compile for AVX2
 * with the exact emulation of vnni_emul.h. Two more compiles for AVX2 without VNNI: DSE_VNNI_W7
 * (kernels/avx2/conv_i8_w7.c: int8 weights in [-64, 63], vpdpbusd as vpmaddubsw + vpmaddwd) and
 * DSE_VNNI_W4 (kernels/avx2/conv_i8_w4.c: per-channel int4 weights in layouts 6/7, 16-byte blocks
 * expanded to int8, vpmaddubsw pair sums added in int16 over 8 k-blocks; its microkernel, weight
 * buffer and checks are the `#if defined(DSE_VNNI_W4)` parts below).
 *
 * Arithmetic (docs/quant-arith.md §4, REF's integer): acc = bias + sum_k (x - zp_in) * w.
 * vpdpbusd multiplies unsigned bytes by signed bytes, 4 products summed into each int32 lane,
 * wrapping, no intermediate int16 (so no saturation). x is int8: u = x ^ 0x80 = x + 128 is the
 * unsigned byte, so
 *     acc = sum_k u * w + fb,   fb[r] = bias[r] - (128 + zp_in) * sum_k w[r][k]
 * where the im2col padding holds zp_in (u - 128 - zp_in = 0 there) and k >= K has w = 0 (the
 * layouts' zero padding). Every sum is taken modulo 2^32 (vpdpbusd, vpaddd, vpmulld wrap); the
 * true acc lies in int32 (the check asks max|bias| + K*255*127 < 2^31, as the AVX2 variant), so
 * the wrapped value is the true one. fb's channel sums come from the same vpdpbusd against
 * bytes 1, in the first column group of each tile. Then the AVX2 requantisation of 8 lanes
 * (i8_avx2.h, avx2_i8_requant) or float_out as REF ((float)acc * scale, the clamps in REF's
 * operand order).
 *
 * GEMM core: Y[r][p] = W[r][k] X[k][p], W in layout 1/2 (docs/format.md §4.4: 32-byte blocks of
 * 8 output channels x 4 consecutive k, exactly vpdpbusd's signed operand for 8 channels), X
 * packed per tile of at most DSE_I8_PACK_TILE columns (output pixels of one image, or rows of x)
 * into the scratch as bytes u: columns in groups of 4, group g at g*4*Kp bytes, holding for each
 * k-block its nr (<= 4) columns x 4 k. Microkernel: 16 channels (two weight blocks) x 4 columns
 * in 8 accumulators; per k-block two 32-byte weight loads, per column a 4-byte broadcast, two
 * vpdpbusd. Conv: a 1x1 stride-1 unpadded conv packs straight from the input rows (a 4 x 16 byte
 * transpose per k-block), others through the AVX2 variant's im2col stage (avx2_i8_im2col_tap: 4
 * k-rows of the tile's pixels at a time). No Winograd and no depthwise path: depthwise and
 * grouped convs (layout 0) are refused and go on to the AVX2 kernels. Scratch: the byte tile,
 * Kp * min(P, 256) bytes, plus for Conv the stage (4 rows of T + 32 bytes rounded to 16): half
 * of the AVX2 variant's, inside the same plan (dse_i8_gemm_scratch_plan).
 *
 * Threads: as AVX2, (image, tile) pairs (rows tiles for Gemm/MatMul; a Conv's tiles narrowed to
 * give each thread one at least), split into chunks of 8-channel bands when there are still few
 * tiles; each part packs with its worker's scratch and writes its own output bytes.
 */
#include "isa.h"

#if DSE_ARCH_X86_64 && (DSE_VNNI_OK || defined(DSE_VNNI_W7) || defined(DSE_VNNI_W4))   /* (an older compiler: no VNNI variants; internal.h) */
#include "../avx2/i8_avx2.h"
#include "vnni_emul.h"

#if defined(DSE_VNNI_512)
#define VN(name) vnni512_##name
#define VN_KERNEL(name) name##__avx512vnni
#define VN_TARGET DSE_TARGET_AVX512VNNI
#define VN_DPBUSD(acc, a, b) _mm256_dpbusd_epi32(acc, a, b)
#else
#define VN(name) vnni256_##name
#define VN_KERNEL(name) name##__avxvnni
#define VN_TARGET DSE_TARGET_AVXVNNI
#define VN_DPBUSD(acc, a, b) _mm256_dpbusd_avx_epi32(acc, a, b)
#endif
#if defined(DSE_VNNI_AMX)   /* kernels/amx/conv_i8.c: the 512-bit compile, its Conv on AMX tiles */
#undef VN
#undef VN_KERNEL
#undef VN_TARGET
#define VN(name) amx_##name
#define VN_KERNEL(name) name##__amx
#define VN_TARGET DSE_TARGET_AMX
#endif
#if defined(DSE_EMULATE_VNNI)
#undef VN_TARGET
#undef VN_DPBUSD
#define VN_TARGET DSE_TARGET_AVX2
#define VN_DPBUSD(acc, a, b) dse_vnni_emul_dpbusd(acc, a, b)
#endif
#if defined(DSE_VNNI_W7)   /* kernels/avx2/conv_i8_w7.c: vpmaddubsw, exact for weights in [-64, 63] */
#undef VN
#undef VN_KERNEL
#undef VN_TARGET
#undef VN_DPBUSD
#define VN(name) w7avx2_##name
#define VN_KERNEL(name) name##_w7__avx2
#define VN_TARGET DSE_TARGET_AVX2
#define VN_DPBUSD(acc, a, b) dse_w7_dpbusd(acc, a, b)
/* vpdpbusd for 7-bit weights: vpmaddubsw's int16 pair sums u0*w0 + u1*w1 (u in 0..255, w in
 * -64..63) lie in [-32640, 32130], so its saturation never acts; vpmaddwd against 1s adds the
 * pairs into int32 lanes, vpaddd wraps as vpdpbusd does. */
DSE_TARGET_AVX2 static inline __m256i dse_w7_dpbusd(__m256i acc, __m256i a, __m256i b) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1)));
}
#endif
#if defined(DSE_VNNI_W4)   /* kernels/avx2/conv_i8_w4.c: int4 weights (layouts 6/7), vpmaddubsw summed in int16 */
#undef VN
#undef VN_KERNEL
#undef VN_TARGET
#undef VN_DPBUSD
#define VN(name) w4avx2_##name
#define VN_KERNEL(name) name##_w4__avx2
#define VN_TARGET DSE_TARGET_AVX2
#define VN_WBLK 16   /* bytes of one 8-channel x 4-k weight block: 32 int4 nibbles */
#else
#define VN_WBLK 32   /* layouts 1/2: 32 int8 */
#endif

/* -- checks (plain C, shared by both VNNI variants: defined once, in the AVX-VNNI compile; the
 * W7 compile defines its own, which also ask for weights in [-64, 63]; the W4 compile its own on
 * the W4A8 REF checks, for per-channel int4 weights in layouts 6/7) ---------------------------- */
#if defined(DSE_VNNI_W7)
#define VC(name) w7_##name
#define VC_CHECK(op) dse__check_i8_##op##_w7
#elif defined(DSE_VNNI_W4)
#define VC(name) w4x_##name
#define VC_CHECK(op) dse__check_i8_##op##_w4
#define VC_REF_CHECK(op) dse_w4_##op##_check   /* REF's W4 checks: operands, codes in [-7, 7], geometry */
#else
#define VC(name) vnni_##name
#define VC_CHECK(op) dse__check_i8_##op##_vnni
#endif
#if !defined(VC_REF_CHECK)
#define VC_REF_CHECK(op) dse_i8_##op##_check   /* REF's checks: operands, geometry, params */
#endif
#if !defined(DSE_VNNI_512)

/* The sums this kernel forms are exact: max|bias| + K * 255 * 127 < 2^31, the true accumulator
 * fits int32 (else REF, which adds the bias in int64, or AVX2, which refuses it too); for the W7
 * variant also every weight byte (the layouts' padding is 0) in [-64, 63], so that no vpmaddubsw
 * pair sum reaches 32768. W4: codes in [-7, 7] (REF's check refuses -8), so max|bias| +
 * K * 255 * 7 < 2^31. */
static int VC(i8_sums_exact)(const dse_model *m, const dse_node *n, size_t C, size_t K) {
    const int32_t *bd = (const int32_t *)m->tensors[n->in[2]].cdata;
#if defined(DSE_VNNI_W7)
    const dse_tensor *wt = &m->tensors[n->in[1]];
    for (size_t i = 0; i < wt->nbytes; i++)
        if ((int8_t)wt->cdata[i] < -64 || (int8_t)wt->cdata[i] > 63) return 0;
#endif
    int64_t big = 0;
    for (size_t c = 0; c < C; c++) {
        const int64_t v = bd[c] < 0 ? -(int64_t)bd[c] : bd[c];
        if (v > big) big = v;
    }
#if defined(DSE_VNNI_W4)
    return big + (int64_t)K * 255 * 7 < ((int64_t)1 << 31);
#else
    return big + (int64_t)K * 255 * 127 < ((int64_t)1 << 31);
#endif
}

/* the byte tile of T = min(P, 256) columns of Kp, and for Conv the im2col stage */
static size_t VC(i8_scratch)(size_t K, size_t P, int stage) {
    const size_t T = P < DSE_I8_PACK_TILE ? P : DSE_I8_PACK_TILE;
#if defined(DSE_VNNI_W4) || defined(DSE_VNNI_W7)
    const size_t Tr = T;
#else   /* avx512vnni's pixels-in-lanes Conv tile: whole groups of 16 columns (tiles of 16 or more) */
    const size_t Tr = T >= 16 ? (T + 15) / 16 * 16 : T;
#endif
    return (K + 3) / 4 * 4 * Tr + (stage ? 4 * ((T + 31) / 16 * 16) : 0);
}

/* the scratch the file planned for the node holds `need` (an artifact planned before these
 * kernels, or with tensors in the scratch region at this node: the next kernel) */
static int VC(i8_fits)(const dse_model *m, const dse_node *n, dse_why *why, size_t need) {
    if (need > why->scratch_plan || !dse__scratch_free(m, n, need)) return 1;
    why->scratch = need;
    return 0;
}

#if defined(DSE_VNNI_W4)
/* W4: a tile of more than one column group (T > 4) expands each band's weights once into a buffer
 * of 16 channels x Kp int8 after the byte tile and the Conv stage (32-aligned) when the plan holds
 * it (always for T >= 16: the int8 plan is twice the byte tile plus 4096 bytes), else every column
 * group expands them again. The kernel uses the buffer when the check accepted its scratch. */
static size_t VC(w4_buf_off)(size_t K, size_t P) { return (VC(i8_scratch)(K, P, 1) + 31) / 32 * 32; }
static size_t VC(w4_buf_need)(size_t K, size_t P) {
    return P > 4 ? VC(w4_buf_off)(K, P) + (K + 3) / 4 * 4 * 16 : (size_t)-1;
}
/* the scratch of a node with K products and P columns: with the buffer when it fits, else without */
static int VC(w4_fits)(const dse_model *m, const dse_node *n, dse_why *why, size_t K, size_t P, int stage) {
    return VC(i8_fits)(m, n, why, VC(w4_buf_need)(K, P)) && VC(i8_fits)(m, n, why, VC(i8_scratch)(K, P, stage));
}
#endif

int VC_CHECK(conv)(const dse_model *m, const dse_node *n, dse_why *why) {
    if (VC_REF_CHECK(conv)(m, n, why)) return 1;
#if defined(DSE_VNNI_W4)
    const int wlayout = DSE_LAYOUT_I4_N8K4;   /* per channel, group 1 (REF's check); every geometry: no int8 fallback */
#else
    const int wlayout = DSE_LAYOUT_N8K4;
#endif
    const dse_tensor *w = &m->tensors[n->in[1]], *y = &m->tensors[n->out[0]];
    const size_t O = w->dims[0];
    size_t K = w->dims[1];
    for (unsigned d = 2; d < w->rank; d++) K *= w->dims[d];
    const size_t P = y->dims[0] && O ? y->numel / (y->dims[0] * O) : 0;
    if (dse__attr_int(n, DSE_A_group, 1) != 1 || w->layout != wlayout || !P || !VC(i8_sums_exact)(m, n, O, K))
        return 1;   /* depthwise, grouped, layout-0 artifacts: the next kernel */
#if defined(DSE_VNNI_W7)
    {   /* a 3x3 stride-1 conv the AVX2 variant runs as Winograd (2.25x fewer multiplies): leave it */
        dse_i8_geom g;
        dse_why tmp;
        avx2_wino_plan wp;
        const size_t plan = why->scratch_plan < m->scratch_size ? why->scratch_plan : m->scratch_size;
        dse_i8_geom_read(n, &m->tensors[n->in[0]], y, w->dims + 2, &g, &tmp);
        if (avx2_wino_plan_of(&g, w->dims[1], O, plan, &wp)) return 1;
        int direct = 1;   /* and a 1x1 stride-1 unpadded conv it runs pixels-in-lanes (small K) */
        for (int i = 0; i < 3; i++) direct &= g.k[i] == 1 && g.s[i] == 1 && g.pb[i] == 0 && g.pe[i] == 0;
        if (direct && avx2_i8_trans_k(K, P)) return 1;
    }
#endif
#if defined(DSE_VNNI_W4)
    {   /* a 1x1 stride-1 unpadded conv with small K: the int8 kernel's pixels-in-lanes form (its output
         * stage has no transposes, which dominate at small K) on these weights */
        dse_i8_geom g;
        dse_why tmp;
        dse_i8_geom_read(n, &m->tensors[n->in[0]], y, w->dims + 2, &g, &tmp);
        int direct = 1;
        for (int i = 0; i < 3; i++) direct &= g.k[i] == 1 && g.s[i] == 1 && g.pb[i] == 0 && g.pe[i] == 0;
        if (direct && avx2_i8_trans_k(K, P)) return VC(i8_fits)(m, n, why, avx2_i8_trans_need(K, P));
    }
    return VC(w4_fits)(m, n, why, K, P, 1);
#else
    return VC(i8_fits)(m, n, why, VC(i8_scratch)(K, P, 1));
#endif
}

int VC_CHECK(gemm)(const dse_model *m, const dse_node *n, dse_why *why) {
    if (VC_REF_CHECK(gemm)(m, n, why)) return 1;
    const dse_tensor *x = &m->tensors[n->in[0]], *w = &m->tensors[n->in[1]], *y = &m->tensors[n->out[0]];
    const size_t K = x->dims[1], N = y->dims[1];
#if defined(DSE_VNNI_W4)
    const int packed = w->layout == DSE_LAYOUT_I4_N8K4 || w->layout == DSE_LAYOUT_I4_N8K4_T;
#else
    const int packed = w->layout != DSE_LAYOUT_PLAIN;
#endif
    if (!packed || !x->dims[0] || !N || !VC(i8_sums_exact)(m, n, N, K)) return 1;
#if defined(DSE_VNNI_W4)
    return VC(w4_fits)(m, n, why, K, x->dims[0], 0);
#else
    return VC(i8_fits)(m, n, why, VC(i8_scratch)(K, x->dims[0], 0));
#endif
}

int VC_CHECK(matmul)(const dse_model *m, const dse_node *n, dse_why *why) {
    if (VC_REF_CHECK(matmul)(m, n, why)) return 1;
    const dse_tensor *w = &m->tensors[n->in[1]], *y = &m->tensors[n->out[0]];
    const size_t K = w->dims[0], N = w->dims[1], rows = N ? y->numel / N : 0;
#if defined(DSE_VNNI_W4)
    const int wlayout = DSE_LAYOUT_I4_N8K4_T;
#else
    const int wlayout = DSE_LAYOUT_N8K4_T;
#endif
    if (w->layout != wlayout || !rows || !VC(i8_sums_exact)(m, n, N, K)) return 1;
#if defined(DSE_VNNI_W4)
    return VC(w4_fits)(m, n, why, K, rows, 0);
#else
    return VC(i8_fits)(m, n, why, VC(i8_scratch)(K, rows, 0));
#endif
}

#endif

/* -- the microkernel ----------------------------------------------------------------------------- */

/* NB (1, 2) blocks of 8 channels (the second `wstep` bytes after the first) x NR (1-4) columns
 * of the byte tile a over Kb k-blocks: out[4b + j] = the raw sums sum_k u * w of block b, column
 * j; with WS also ws[b] = the channel sums of the weights (vpdpbusd against bytes 1). */
#if defined(DSE_VNNI_W4)
/* W4: a 16-byte int4 block (layouts 6/7: byte j holds element j in its low nibble, j + 16 in its
 * high nibble) as layout 1's 32 int8: loaded into both lanes (vbroadcasti128), the high lane's
 * qwords shifted right by 4, the nibbles masked, sign-extended by a vpshufb table. */
#define VN_W4_CONSTS                                                                                      \
    const __m256i lut = _mm256_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, -8, -7, -6, -5, -4, -3, -2, -1,          \
                                         0, 1, 2, 3, 4, 5, 6, 7, -8, -7, -6, -5, -4, -3, -2, -1);         \
    const __m256i m4 = _mm256_set1_epi8(0x0F), sh = _mm256_setr_epi64x(0, 0, 4, 4);
VN_TARGET static inline __attribute__((always_inline)) __m256i VN(w4_block)(const int8_t *p, __m256i lut, __m256i m4,
                                                                              __m256i sh) {
    const __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)p));
    return _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srlv_epi64(v, sh), m4));
}

/* The nb (1, 2) weight blocks of 8 channels (the second `wstep` bytes after the first) over Kb
 * k-blocks expanded once per tile and band into buf, [kb][nb][32] int8 (L1-resident: the tile's
 * column groups reuse them), and their channel sums ws[b] (int32 lane = channel): vpmaddubsw
 * against bytes 1 gives pair sums of at most 14, added in int16 over 2048 k-blocks (<= 28672). */
VN_TARGET static void VN(w4_expand)(const int8_t *wb, size_t wstep, size_t Kb, int nb, int8_t *buf, __m256i *ws) {
    VN_W4_CONSTS
    const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
    __m256i s0 = _mm256_setzero_si256(), s1 = s0;
    for (size_t kb0 = 0; kb0 < Kb; kb0 += 2048) {
        const size_t kn = Kb - kb0 < 2048 ? Kb - kb0 : 2048;
        __m256i t0 = _mm256_setzero_si256(), t1 = t0;
        for (size_t i = 0; i < kn; i++, wb += 16) {
            const __m256i w0 = VN(w4_block)(wb, lut, m4, sh);
            _mm256_storeu_si256((__m256i *)(void *)buf, w0);
            t0 = _mm256_add_epi16(t0, _mm256_maddubs_epi16(ones8, w0));
            if (nb > 1) {
                const __m256i w1 = VN(w4_block)(wb + wstep, lut, m4, sh);
                _mm256_storeu_si256((__m256i *)(void *)(buf + 32), w1);
                t1 = _mm256_add_epi16(t1, _mm256_maddubs_epi16(ones8, w1));
            }
            buf += 32 * (size_t)nb;
        }
        s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(t0, ones16));
        s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(t1, ones16));
    }
    ws[0] = s0, ws[1] = s1;
}

/* vpmaddubsw's int16 pair sums u0*q0 + u1*q1 (u in 0..255, q in -7..7) lie in [-3570, 3570], so the
 * pair sums of up to 9 k-blocks add exactly in int16 lanes (vpaddw): the sums are taken in int16 over
 * chunks of 8 k-blocks (|.| <= 28560), then widened by vpmaddwd against 1s into the int32 sums. One
 * multiply per k-block and column instead of vpdpbusd's emulation's two: REF's integers. BUF: the
 * weights come expanded from VN(w4_expand)'s buffer (wb; wstep unused), else each block is expanded
 * here from the packed weights (WS: with the channel sums, as the VNNI kernel's). */
VN_TARGET static inline __attribute__((always_inline)) void VN(mk_body)(const uint8_t *a, const int8_t *wb, size_t wstep,
                                                                        size_t Kb, __m256i *out, __m256i *ws,
                                                                        const int NB, const int NR, const int WS,
                                                                        const int BUF) {
    VN_W4_CONSTS
    const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
    __m256i c00 = _mm256_setzero_si256(), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00, c13 = c00;
    __m256i s0 = c00, s1 = c00;
    for (size_t kb0 = 0; kb0 < Kb; kb0 += 8) {
        const size_t kn = Kb - kb0 < 8 ? Kb - kb0 : 8;
        __m256i h00 = _mm256_setzero_si256(), h01 = h00, h02 = h00, h03 = h00, h10 = h00, h11 = h00, h12 = h00, h13 = h00;
        __m256i t0 = h00, t1 = h00;
        for (size_t i = 0; i < kn; i++, a += 4 * NR) {
            __m256i w0, w1;
            if (BUF) {
                w0 = _mm256_loadu_si256((const __m256i *)(const void *)wb);
                w1 = NB > 1 ? _mm256_loadu_si256((const __m256i *)(const void *)(wb + 32)) : w0;
                wb += 32 * NB;
            } else {
                w0 = VN(w4_block)(wb, lut, m4, sh);
                w1 = NB > 1 ? VN(w4_block)(wb + wstep, lut, m4, sh) : w0;
                wb += VN_WBLK;
            }
#define VN_COL(j)                                                                   \
    if (NR > j) {                                                                   \
        const __m256i x = _mm256_broadcastd_epi32(_mm_loadu_si32(a + 4 * j));      \
        h0##j = _mm256_add_epi16(h0##j, _mm256_maddubs_epi16(x, w0));               \
        if (NB > 1) h1##j = _mm256_add_epi16(h1##j, _mm256_maddubs_epi16(x, w1));   \
    }
            VN_COL(0) VN_COL(1) VN_COL(2) VN_COL(3)
#undef VN_COL
            if (WS) {
                t0 = _mm256_add_epi16(t0, _mm256_maddubs_epi16(ones8, w0));
                if (NB > 1) t1 = _mm256_add_epi16(t1, _mm256_maddubs_epi16(ones8, w1));
            }
        }
#define VN_WIDEN(c, h) c = _mm256_add_epi32(c, _mm256_madd_epi16(h, ones16))
        VN_WIDEN(c00, h00);
        if (NR > 1) VN_WIDEN(c01, h01);
        if (NR > 2) VN_WIDEN(c02, h02);
        if (NR > 3) VN_WIDEN(c03, h03);
        if (NB > 1) {
            VN_WIDEN(c10, h10);
            if (NR > 1) VN_WIDEN(c11, h11);
            if (NR > 2) VN_WIDEN(c12, h12);
            if (NR > 3) VN_WIDEN(c13, h13);
        }
        if (WS) {
            VN_WIDEN(s0, t0);
            if (NB > 1) VN_WIDEN(s1, t1);
        }
#undef VN_WIDEN
    }
    out[0] = c00, out[1] = c01, out[2] = c02, out[3] = c03;
    if (NB > 1) out[4] = c10, out[5] = c11, out[6] = c12, out[7] = c13;
    if (WS) ws[0] = s0, ws[1] = s1;
}
#else
VN_TARGET static inline __attribute__((always_inline)) void VN(mk_body)(const uint8_t *a, const int8_t *wb, size_t wstep,
                                                                        size_t Kb, __m256i *out, __m256i *ws,
                                                                        const int NB, const int NR, const int WS) {
    const __m256i ones = _mm256_set1_epi8(1);
    __m256i c00 = _mm256_setzero_si256(), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00, c13 = c00;
    __m256i s0 = c00, s1 = c00;
    for (size_t kb = 0; kb < Kb; kb++, wb += 32, a += 4 * NR) {
        const __m256i w0 = _mm256_loadu_si256((const __m256i *)(const void *)wb);
        const __m256i w1 = NB > 1 ? _mm256_loadu_si256((const __m256i *)(const void *)(wb + wstep)) : w0;
#define VN_COL(j)                                                         \
    if (NR > j) {   /* a broadcast load (vpbroadcastd m32: no shuffle) */ \
        const __m256i x = _mm256_broadcastd_epi32(_mm_loadu_si32(a + 4 * j)); \
        c0##j = VN_DPBUSD(c0##j, x, w0);                                  \
        if (NB > 1) c1##j = VN_DPBUSD(c1##j, x, w1);                      \
    }
        VN_COL(0) VN_COL(1) VN_COL(2) VN_COL(3)
#undef VN_COL
        if (WS) {
            s0 = VN_DPBUSD(s0, ones, w0);
            if (NB > 1) s1 = VN_DPBUSD(s1, ones, w1);
        }
    }
    out[0] = c00, out[1] = c01, out[2] = c02, out[3] = c03;
    if (NB > 1) out[4] = c10, out[5] = c11, out[6] = c12, out[7] = c13;
    if (WS) ws[0] = s0, ws[1] = s1;
}
#endif

#if defined(DSE_VNNI_W4)
#define VN_MK_BODY(NB, NR, WS) VN(mk_body)(a, wb, wstep, Kb, out, ws, NB, NR, WS, 0)
#define VN_MK_BUF(NB, NR)                                                                                              \
    VN_TARGET static void VN(mk##NB##NR##b)(const uint8_t *a, const int8_t *wb, size_t Kb, __m256i *out) {             \
        VN(mk_body)(a, wb, 0, Kb, out, NULL, NB, NR, 0, 1);                                                            \
    }
#else
#define VN_MK_BODY(NB, NR, WS) VN(mk_body)(a, wb, wstep, Kb, out, ws, NB, NR, WS)
#define VN_MK_BUF(NB, NR)
#endif
#define VN_MK(NB, NR)                                                                                                 \
    VN_TARGET static void VN(mk##NB##NR)(const uint8_t *a, const int8_t *wb, size_t wstep, size_t Kb, __m256i *out) { \
        __m256i *ws = NULL;                                                                                           \
        VN_MK_BODY(NB, NR, 0);                                                                                        \
    }                                                                                                                 \
    VN_TARGET static void VN(mk##NB##NR##s)(const uint8_t *a, const int8_t *wb, size_t wstep, size_t Kb, __m256i *out, \
                                            __m256i *ws) {                                                            \
        VN_MK_BODY(NB, NR, 1);                                                                                        \
    }                                                                                                                 \
    VN_MK_BUF(NB, NR)
#if !defined(DSE_VNNI_512)   /* the 512-bit variant has its own microkernels (below) */
VN_MK(1, 1) VN_MK(1, 2) VN_MK(1, 3) VN_MK(1, 4) VN_MK(2, 1) VN_MK(2, 2) VN_MK(2, 3) VN_MK(2, 4)
#endif
#undef VN_MK
#undef VN_MK_BODY
#undef VN_MK_BUF

#if defined(DSE_VNNI_W4)
/* The main W4 microkernels (16 channels x 4 columns, no weight sums) in assembly: compilers keep
 * the 8 int16 sums, the 2 weight blocks, the table, mask and shift constants and the products
 * poorly (gcc 12 spills three sums and reloads the mask every k-block). Registers: ymm0-3 the int16
 * sums of columns 0-3 for channels 0-7, ymm4-7 for channels 8-15, ymm8/9 the two weight blocks as
 * int8, ymm10 a column's broadcast, ymm11/15 products, ymm12 the sign table, ymm13 the nibble mask,
 * ymm14 the lane shifts; the int32 sums live in out[], widened by vpmaddwd against 1s every 8
 * k-blocks (the int16 bound, above). mk24x_asm expands each block from the packed weights (wstep: the
 * second band's offset), mk24b_asm reads them expanded from VN(w4_expand)'s buffer ([kb][2][32]). The
 * same operations, the same sums as mk_body(2, 4, no WS, BUF 0 / 1). */
static const int8_t VN(w4_consts)[128] __attribute__((aligned(32))) = {
    0, 1, 2, 3, 4, 5, 6, 7, -8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7, -8, -7, -6, -5, -4, -3, -2, -1,
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0,
    1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0};

#define VN_W4_LOAD_EXPAND                                                                  \
        "vbroadcasti128 (%[w]), %%ymm8\n\t"                                                \
        "vbroadcasti128 (%[w],%[ws]), %%ymm9\n\t"                                          \
        "vpsrlvq %%ymm14, %%ymm8, %%ymm8\n\t"                                              \
        "vpsrlvq %%ymm14, %%ymm9, %%ymm9\n\t"                                              \
        "vpand %%ymm13, %%ymm8, %%ymm8\n\t"                                                \
        "vpand %%ymm13, %%ymm9, %%ymm9\n\t"                                                \
        "vpshufb %%ymm8, %%ymm12, %%ymm8\n\t"                                              \
        "vpshufb %%ymm9, %%ymm12, %%ymm9\n\t"                                              \
        "add $16, %[w]\n\t"
#define VN_W4_LOAD_BUF                                                                     \
        "vmovdqu (%[w]), %%ymm8\n\t"                                                       \
        "vmovdqu 32(%[w]), %%ymm9\n\t"                                                     \
        "add $64, %[w]\n\t"
#define VN_W4_ASM(NAME, LOAD)                                                              \
VN_TARGET static void VN(NAME)(const uint8_t *a, const int8_t *wb, size_t wstep, size_t Kb, __m256i *out) { \
    size_t cnt;                                                                            \
    __asm__ volatile(                                                                      \
        "vmovdqa (%[c]), %%ymm12\n\t"                                                      \
        "vmovdqa 32(%[c]), %%ymm13\n\t"                                                    \
        "vmovdqa 64(%[c]), %%ymm14\n\t"                                                    \
        "vpxor %%xmm0, %%xmm0, %%xmm0\n\t"                                                 \
        "vmovdqu %%ymm0, 0(%[out])\n\t"                                         \
        "vmovdqu %%ymm0, 32(%[out])\n\t"                                         \
        "vmovdqu %%ymm0, 64(%[out])\n\t"                                         \
        "vmovdqu %%ymm0, 96(%[out])\n\t"                                         \
        "vmovdqu %%ymm0, 128(%[out])\n\t"                                         \
        "vmovdqu %%ymm0, 160(%[out])\n\t"                                         \
        "vmovdqu %%ymm0, 192(%[out])\n\t"                                         \
        "vmovdqu %%ymm0, 224(%[out])\n\t"                                         \
        "test %[kb], %[kb]\n\t"                                                            \
        "jz 3f\n"                                                                          \
        "1:\n\t"                                                                           \
        "mov $8, %[cnt]\n\t"                                                               \
        "cmp %[cnt], %[kb]\n\t"                                                            \
        "cmovb %[kb], %[cnt]\n\t"                                                          \
        "sub %[cnt], %[kb]\n\t"                                                            \
        "vpxor %%xmm0, %%xmm0, %%xmm0\n\t"                                      \
        "vpxor %%xmm1, %%xmm1, %%xmm1\n\t"                                      \
        "vpxor %%xmm2, %%xmm2, %%xmm2\n\t"                                      \
        "vpxor %%xmm3, %%xmm3, %%xmm3\n\t"                                      \
        "vpxor %%xmm4, %%xmm4, %%xmm4\n\t"                                      \
        "vpxor %%xmm5, %%xmm5, %%xmm5\n\t"                                      \
        "vpxor %%xmm6, %%xmm6, %%xmm6\n\t"                                      \
        "vpxor %%xmm7, %%xmm7, %%xmm7\n\t"                                      \
        ".p2align 4\n"                                                                     \
        "2:\n\t"                                                                           \
        LOAD                                                                               \
        "vpbroadcastd 0(%[a]), %%ymm10\n\t"                                          \
        "vpmaddubsw %%ymm8, %%ymm10, %%ymm11\n\t"                                        \
        "vpmaddubsw %%ymm9, %%ymm10, %%ymm15\n\t"                                        \
        "vpaddw %%ymm11, %%ymm0, %%ymm0\n\t"                                           \
        "vpaddw %%ymm15, %%ymm4, %%ymm4\n\t"                                           \
        "vpbroadcastd 4(%[a]), %%ymm10\n\t"                                          \
        "vpmaddubsw %%ymm8, %%ymm10, %%ymm11\n\t"                                        \
        "vpmaddubsw %%ymm9, %%ymm10, %%ymm15\n\t"                                        \
        "vpaddw %%ymm11, %%ymm1, %%ymm1\n\t"                                           \
        "vpaddw %%ymm15, %%ymm5, %%ymm5\n\t"                                           \
        "vpbroadcastd 8(%[a]), %%ymm10\n\t"                                          \
        "vpmaddubsw %%ymm8, %%ymm10, %%ymm11\n\t"                                        \
        "vpmaddubsw %%ymm9, %%ymm10, %%ymm15\n\t"                                        \
        "vpaddw %%ymm11, %%ymm2, %%ymm2\n\t"                                           \
        "vpaddw %%ymm15, %%ymm6, %%ymm6\n\t"                                           \
        "vpbroadcastd 12(%[a]), %%ymm10\n\t"                                          \
        "vpmaddubsw %%ymm8, %%ymm10, %%ymm11\n\t"                                        \
        "vpmaddubsw %%ymm9, %%ymm10, %%ymm15\n\t"                                        \
        "vpaddw %%ymm11, %%ymm3, %%ymm3\n\t"                                           \
        "vpaddw %%ymm15, %%ymm7, %%ymm7\n\t"                                           \
        "add $16, %[a]\n\t"                                                                \
        "dec %[cnt]\n\t"                                                                   \
        "jnz 2b\n\t"                                                                       \
        "vpmaddwd 96(%[c]), %%ymm0, %%ymm0\n\t"                                     \
        "vpmaddwd 96(%[c]), %%ymm1, %%ymm1\n\t"                                     \
        "vpmaddwd 96(%[c]), %%ymm2, %%ymm2\n\t"                                     \
        "vpmaddwd 96(%[c]), %%ymm3, %%ymm3\n\t"                                     \
        "vpmaddwd 96(%[c]), %%ymm4, %%ymm4\n\t"                                     \
        "vpmaddwd 96(%[c]), %%ymm5, %%ymm5\n\t"                                     \
        "vpmaddwd 96(%[c]), %%ymm6, %%ymm6\n\t"                                     \
        "vpmaddwd 96(%[c]), %%ymm7, %%ymm7\n\t"                                     \
        "vpaddd 0(%[out]), %%ymm0, %%ymm0\n\t"                                 \
        "vpaddd 32(%[out]), %%ymm1, %%ymm1\n\t"                                 \
        "vpaddd 64(%[out]), %%ymm2, %%ymm2\n\t"                                 \
        "vpaddd 96(%[out]), %%ymm3, %%ymm3\n\t"                                 \
        "vpaddd 128(%[out]), %%ymm4, %%ymm4\n\t"                                 \
        "vpaddd 160(%[out]), %%ymm5, %%ymm5\n\t"                                 \
        "vpaddd 192(%[out]), %%ymm6, %%ymm6\n\t"                                 \
        "vpaddd 224(%[out]), %%ymm7, %%ymm7\n\t"                                 \
        "vmovdqu %%ymm0, 0(%[out])\n\t"                                       \
        "vmovdqu %%ymm1, 32(%[out])\n\t"                                       \
        "vmovdqu %%ymm2, 64(%[out])\n\t"                                       \
        "vmovdqu %%ymm3, 96(%[out])\n\t"                                       \
        "vmovdqu %%ymm4, 128(%[out])\n\t"                                       \
        "vmovdqu %%ymm5, 160(%[out])\n\t"                                       \
        "vmovdqu %%ymm6, 192(%[out])\n\t"                                       \
        "vmovdqu %%ymm7, 224(%[out])\n\t"                                       \
        "test %[kb], %[kb]\n\t"                                                            \
        "jnz 1b\n"                                                                         \
        "3:\n\t"                                                                           \
        : [w] "+r"(wb), [a] "+r"(a), [kb] "+r"(Kb), [cnt] "=&r"(cnt)                       \
        : [out] "r"(out), [ws] "r"(wstep), [c] "r"(VN(w4_consts))                          \
        : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", \
          "xmm12", "xmm13", "xmm14", "xmm15", "memory", "cc");                             \
}
VN_W4_ASM(mk24x_asm, VN_W4_LOAD_EXPAND)
VN_W4_ASM(mk24b_asm, VN_W4_LOAD_BUF)
#undef VN_W4_ASM
#undef VN_W4_LOAD_EXPAND
#undef VN_W4_LOAD_BUF
#undef VN_W4_CONSTS
#endif

#if !defined(DSE_VNNI_512)
VN_TARGET static void VN(mk)(const uint8_t *a, const int8_t *wb, size_t wstep, size_t Kb, int nb, int nr, __m256i *out,
                             __m256i *ws) {
#define VN_MK_CASE(NB, NR)                                                   \
    case NB * 10 + NR:                                                       \
        if (ws) VN(mk##NB##NR##s)(a, wb, wstep, Kb, out, ws);                \
        else VN(mk##NB##NR)(a, wb, wstep, Kb, out);                          \
        return;
#if defined(DSE_VNNI_W4)   /* wstep 0: the band's weights expanded in a buffer (VN(w4_expand)), ws NULL */
#define VN_MK_BCASE(NB, NR) case NB * 10 + NR: VN(mk##NB##NR##b)(a, wb, Kb, out); return;
    if (nb == 2 && nr == 4 && !ws) {
        if (wstep) VN(mk24x_asm)(a, wb, wstep, Kb, out);
        else VN(mk24b_asm)(a, wb, wstep, Kb, out);
        return;
    }
    if (!wstep) {
        switch (nb * 10 + nr) {
            VN_MK_BCASE(1, 1) VN_MK_BCASE(1, 2) VN_MK_BCASE(1, 3) VN_MK_BCASE(1, 4)
            VN_MK_BCASE(2, 1) VN_MK_BCASE(2, 2) VN_MK_BCASE(2, 3) VN_MK_BCASE(2, 4)
        default: return;
        }
    }
#undef VN_MK_BCASE
#endif
    switch (nb * 10 + nr) {
        VN_MK_CASE(1, 1) VN_MK_CASE(1, 2) VN_MK_CASE(1, 3) VN_MK_CASE(1, 4)
        VN_MK_CASE(2, 1) VN_MK_CASE(2, 2) VN_MK_CASE(2, 3) VN_MK_CASE(2, 4)
    default: return;
    }
#undef VN_MK_CASE
}
#endif

#if defined(DSE_VNNI_512)
#include "../avx512vnni/zmm_core.h"
#else
#define VN_CW 4
#endif

/* -- the GEMM core ------------------------------------------------------------------------------ */

/* What a GEMM-like node writes: Y[r][p] at y + r*ys_r + p*ys_p (elements), for r < R rows
 * (output channels) and p < the tile's columns. */
typedef struct VN(gemm) {
    const int8_t *w;             /* packed W[R][K] */
    size_t R, K, Kb;
    const int32_t *bias;
    const dse_i8_out *o;
    void *y;
    size_t ys_r, ys_p;
    size_t r_begin, r_end;       /* the rows (multiples of 8, or R) this part computes */
#if defined(DSE_VNNI_W4)
    size_t wbuf_off;             /* the expanded-weights buffer's offset in the worker's scratch (0: none) */
    int8_t *wbuf;                /* the task's buffer, or NULL */
#endif
} VN(gemm);

#if defined(DSE_VNNI_W4)
/* the buffer offset a node's kernel uses (its check's decision: the accepted scratch holds it) */
static size_t VN(w4_wbuf)(const dse_node *n, size_t K, size_t P) {
    return n->scratch >= VC(w4_buf_need)(K, P) ? VC(w4_buf_off)(K, P) : 0;
}
#define VN_SET_WBUF(G, a) (G).wbuf = (G).wbuf_off ? (int8_t *)(a) + (G).wbuf_off : NULL
#else
#define VN_SET_WBUF(G, a) (void)0
#endif

static void VN(part_rows)(VN(gemm) *G, size_t chunk, size_t split) {
    const size_t bands = (G->R + 7) / 8, per = (bands + split - 1) / split;
    G->r_begin = chunk * per * 8 < G->R ? chunk * per * 8 : G->R;
    G->r_end = (chunk + 1) * per * 8 < G->R ? (chunk + 1) * per * 8 : G->R;
}

/* Y[:, p0 + 0..T-1] for the rows [G->r_begin, G->r_end) from the packed byte tile a (T columns). */
VN_TARGET static void VN(gemm_tile)(const VN(gemm) *G, const uint8_t *a, size_t T, size_t p0) {
    const size_t Kp = G->Kb * 4, wstep = G->Kb * VN_WBLK;
    const dse_i8_out *o = G->o;
    const __m256i zc = _mm256_set1_epi32(128 + o->zp_in);
    for (size_t r0 = G->r_begin; r0 < G->r_end; r0 += 16) {
        const int nb = G->r_end - r0 > 8 ? 2 : 1;
        const int8_t *wb = G->w + (r0 / 8) * wstep;
        size_t wst = wstep;
        int have_ws = 0;
        __m256i wsum[2];
#if defined(DSE_VNNI_W4)
        if (G->wbuf) {   /* the band expanded once for all the tile's column groups, with its sums */
            VN(w4_expand)(wb, wstep, G->Kb, nb, G->wbuf, wsum);
            wb = G->wbuf, wst = 0, have_ws = 1;
        }
#endif
        avx2_i8_rq q[2];
        __m256i bias[2], fb[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
        __m256 fscale[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
        int nc[2] = {0, 0};
        for (int b = 0; b < nb; b++) {
            const size_t rb = r0 + 8 * (size_t)b;
            nc[b] = G->R - rb < 8 ? (int)(G->R - rb) : 8;
            size_t ch[8];
            int32_t bv[8] = {0};
            float sv[8] = {0};
            for (int i = 0; i < 8; i++) {
                ch[i] = rb + (size_t)(i < nc[b] ? i : 0);
                if (i < nc[b]) bv[i] = G->bias[rb + (size_t)i], sv[i] = o->float_out ? o->scale[rb + (size_t)i] : 0.0f;
            }
            memcpy(&bias[b], bv, 32);
            fscale[b] = _mm256_loadu_ps(sv);
            avx2_i8_rq_init(&q[b], o, ch, nc[b]);
            if (have_ws) fb[b] = _mm256_sub_epi32(bias[b], _mm256_mullo_epi32(zc, wsum[b]));
        }
#if defined(DSE_VNNI_512)
        if (!have_ws) {   /* the band's channel sums first: every column call is then the plain kernel */
            for (int b = 0; b < nb; b++)
                fb[b] = _mm256_sub_epi32(bias[b], _mm256_mullo_epi32(zc, VN(zsums8)(wb + (size_t)b * wst, G->Kb)));
            have_ws = 1;
        }
#endif
#if defined(VN_ZSTORE)
        VN(zrq) zq;
        memset(&zq, 0, sizeof zq);   /* (set below when used; gcc cannot tell) */
        const int zfast = nb == 2 && nc[0] == 8 && nc[1] == 8 && !o->float_out && q[0].fast && q[1].fast;
        if (zfast) VN(zrq_init)(&zq, q, fb);
#endif
        for (size_t c0 = 0; c0 < T; c0 += VN_CW) {
            const int nr = T - c0 < VN_CW ? (int)(T - c0) : VN_CW;
            __m256i acc[2 * VN_CW], ws[2];
#if defined(DSE_VNNI_512)
            VN(mkz_tab)[nb - 1][nr - 1](a + c0 * Kp, Kp, wb, wst, G->Kb, acc);
#else
            VN(mk)(a + c0 * Kp, wb, wst, G->Kb, nb, nr, acc, c0 || have_ws ? NULL : ws);
#endif
            if (!c0 && !have_ws)   /* fb = bias - (128 + zp_in) * sum_k w (wrapping: the total is exact) */
                for (int b = 0; b < nb; b++) fb[b] = _mm256_sub_epi32(bias[b], _mm256_mullo_epi32(zc, ws[b]));
#if defined(VN_ZSTORE)
            if (zfast && nr == 16) {
                VN(zstore16)(&zq, acc, (int8_t *)G->y + r0 * G->ys_r + (p0 + c0) * G->ys_p, G->ys_r, G->ys_p);
                continue;
            }
#endif
            const int gw = o->float_out && VN_CW > 4 ? 8 : 4;   /* columns per store: float output 8 (a transpose) */
            for (int b = 0; b < nb; b++)
                for (int g = 0; gw * g < nr; g++) {
                    const int ng = nr - gw * g < gw ? nr - gw * g : gw;
                    __m256i v[8];
                    for (int j = 0; j < ng; j++) v[j] = _mm256_add_epi32(acc[VN_CW * b + gw * g + j], fb[b]);
                    avx2_i8_store_tile(G->y, G->ys_r, G->ys_p, o, r0 + 8 * (size_t)b, nc[b], v, ng,
                                       p0 + c0 + (size_t)(gw * g), &q[b], fscale[b]);
                }
        }
    }
}

/* 16 columns x 4 k (r[c] = 16 int8 of k-row c) into the tile at columns q..q+15 (groups of 4;
 * a short last group has nr columns), k-block kb, as bytes u = x ^ 0x80. */
VN_TARGET static inline void VN(put16)(uint8_t *a, size_t T, size_t Kp, size_t q, size_t kb, __m128i r0, __m128i r1,
                                       __m128i r2, __m128i r3) {
    const __m128i flip = _mm_set1_epi8((char)0x80);
    const __m128i t01l = _mm_unpacklo_epi8(r0, r1), t01h = _mm_unpackhi_epi8(r0, r1);
    const __m128i t23l = _mm_unpacklo_epi8(r2, r3), t23h = _mm_unpackhi_epi8(r2, r3);
    const __m128i g[4] = {_mm_unpacklo_epi16(t01l, t23l), _mm_unpackhi_epi16(t01l, t23l), _mm_unpacklo_epi16(t01h, t23h),
                          _mm_unpackhi_epi16(t01h, t23h)};   /* g[i]: columns 4i..4i+3, 4 k each */
    for (int i = 0; i < 4; i++) {
        const size_t c0 = q + 4 * (size_t)i;
        if (c0 >= T) break;
        const __m128i v = _mm_xor_si128(g[i], flip);
        const size_t nr = T - c0 < 4 ? T - c0 : 4;
        uint8_t *dst = a + c0 * Kp + kb * 4 * nr;
        if (nr == 4) _mm_storeu_si128((__m128i *)(void *)dst, v);
        else {
            uint8_t tmp[16];
            _mm_storeu_si128((__m128i *)(void *)tmp, v);
            memcpy(dst, tmp, nr * 4);
        }
    }
}

/* -- Gemm / MatMul (their rows core: the AMX compile has its own, kernels/amx/tile_core.h) ------- */
#if !defined(DSE_VNNI_AMX)

typedef struct VN(rows_job) {
    VN(gemm) G;
    const dse_ctx *cx;
    const int8_t *x;   /* rows x K */
    size_t rows, T, split;
} VN(rows_job);

/* Tile of rows r0..r0+T-1 of x (rows x K): a[group][kb][j][4] = x[r][4kb + c] ^ 0x80 (0 past K). */
VN_TARGET static void VN(pack_rows)(uint8_t *a, const int8_t *x, size_t K, size_t r0, size_t T) {
    const size_t Kb = (K + 3) / 4, Kp = Kb * 4, K16 = K / 16 * 16;
    const __m128i flip = _mm_set1_epi8((char)0x80);
    for (size_t c0 = 0; c0 < T; c0 += 4) {
        const size_t nr = T - c0 < 4 ? T - c0 : 4;
        const int8_t *xr[4];
        for (size_t j = 0; j < 4; j++) xr[j] = x + (r0 + c0 + (j < nr ? j : 0)) * K;
        uint8_t *ag = a + c0 * Kp;
        for (size_t k = 0; k < K16; k += 16) {   /* 4 rows x 16 k: a 4x4 transpose of dwords */
            const __m128i v0 = _mm_loadu_si128((const __m128i *)(const void *)(xr[0] + k));
            const __m128i v1 = _mm_loadu_si128((const __m128i *)(const void *)(xr[1] + k));
            const __m128i v2 = _mm_loadu_si128((const __m128i *)(const void *)(xr[2] + k));
            const __m128i v3 = _mm_loadu_si128((const __m128i *)(const void *)(xr[3] + k));
            const __m128i t0 = _mm_unpacklo_epi32(v0, v1), t1 = _mm_unpackhi_epi32(v0, v1);
            const __m128i t2 = _mm_unpacklo_epi32(v2, v3), t3 = _mm_unpackhi_epi32(v2, v3);
            const __m128i b[4] = {_mm_unpacklo_epi64(t0, t2), _mm_unpackhi_epi64(t0, t2), _mm_unpacklo_epi64(t1, t3),
                                  _mm_unpackhi_epi64(t1, t3)};   /* b[i]: k-block k/4 + i, rows 0..3 */
            for (size_t i = 0; i < 4; i++) {
                const __m128i v = _mm_xor_si128(b[i], flip);
                uint8_t *dst = ag + (k / 4 + i) * 4 * nr;
                if (nr == 4) _mm_storeu_si128((__m128i *)(void *)dst, v);
                else {
                    uint8_t tmp[16];
                    _mm_storeu_si128((__m128i *)(void *)tmp, v);
                    memcpy(dst, tmp, nr * 4);
                }
            }
        }
        for (size_t k = K16; k < Kp; k++)
            for (size_t j = 0; j < nr; j++)
                ag[(k / 4) * 4 * nr + j * 4 + (k & 3)] = (uint8_t)(k < K ? (uint8_t)xr[j][k] ^ 0x80u : 0u);
    }
}

VN_TARGET static void VN(rows_task)(void *arg, size_t begin, size_t end, unsigned worker) {
    const VN(rows_job) *J = arg;
    uint8_t *a = dse__worker_scratch(J->cx, worker);
    size_t packed = (size_t)-1;
    for (size_t t = begin; t < end; t++) {
        const size_t tile = t / J->split, r0 = tile * J->T, T = J->rows - r0 < J->T ? J->rows - r0 : J->T;
        if (tile != packed) VN(pack_rows)(a, J->x, J->G.K, r0, T), packed = tile;
        VN(gemm) G = J->G;
        VN_SET_WBUF(G, a);
        VN(part_rows)(&G, t % J->split, J->split);
        VN(gemm_tile)(&G, a, T, r0);
    }
}

/* rows x K times the packed W[N][K] (layout 1 or 2) */
VN_TARGET static void VN(rows)(const dse_ctx *cx, const dse_node *n, const int8_t *x, size_t rows, size_t K,
                               const int8_t *w, size_t N, const int32_t *bias, const dse_i8_out *o, void *y) {
    VN(rows_job) J;
    J.G.w = w, J.G.R = N, J.G.K = K, J.G.Kb = (K + 3) / 4, J.G.bias = bias, J.G.o = o, J.G.y = y;
    J.G.ys_r = 1, J.G.ys_p = N;
#if defined(DSE_VNNI_W4)
    J.G.wbuf_off = VN(w4_wbuf)(n, K, rows);
#else
    (void)n;
#endif
    J.cx = cx, J.x = x, J.rows = rows, J.T = rows < DSE_I8_PACK_TILE ? rows : DSE_I8_PACK_TILE;
    const size_t tiles = (rows + J.T - 1) / J.T;
    J.split = avx2_i8_split(cx, tiles, N);
    dse__parallel(cx, tiles * J.split, dse__grain(tiles * J.split, (uint64_t)rows * K * N), VN(rows_task), &J);
}

#endif

/* -- Conv, group 1 ------------------------------------------------------------------------------ */

typedef struct VN(conv_job) {
    VN(gemm) G;
    const dse_ctx *cx;
    const int8_t *x;
    const dse_i8_geom *g;
    long long C;          /* input channels */
    size_t P, T, tiles;   /* output pixels per image, tile width, tiles per image */
    size_t split;         /* band chunks per tile (avx2_i8_split) */
    int direct;           /* 1x1, stride 1, no padding: k-row c is input channel c */
    int px;               /* avx512vnni: the pixels-in-lanes tile and core (kernels/avx512vnni/conv_px.h) */
    size_t Kt;            /* pixels in lanes: the tile's k-blocks (Kb; AMX: rounded up to 16) */
    size_t wbuf_off;      /* AMX: the repacked weights' offset in the worker's scratch */
    size_t Pt;            /* the positions tiled per image: P, or (AMX band) OH x Wp */
    long long Wp, OW;     /* AMX band (kernels/amx/tile_core.h): the padded row width and the output's; Wp 0: none */
} VN(conv_job);

/* an innermost spatial axis of size 1 everywhere (TF/JAX's (H, 1) "1-D" convs): shifted out, as the
 * AVX2 variant does, so that the im2col copies rows of OH pixels */
static void VN(geom_unit_w)(dse_i8_geom *g) {
    for (int shift = 0; shift < 2 && g->in[2] == 1 && g->out[2] == 1 && g->k[2] == 1 && g->pb[2] == 0 && g->pe[2] == 0 &&
                        (g->in[0] > 1 || g->in[1] > 1); shift++) {
        long long *ax[7] = {g->in, g->out, g->k, g->s, g->d, g->pb, g->pe};
        const long long unit[7] = {1, 1, 1, 1, 1, 0, 0};
        for (int i = 0; i < 7; i++) ax[i][2] = ax[i][1], ax[i][1] = ax[i][0], ax[i][0] = unit[i];
    }
}

/* The im2col byte tile of image xb (C x ID x IH x IW): columns p0..p0+T-1 (output pixels,
 * row-major over (od, oh, ow)), k = ((ci * KD + kd) * KH + kh) * KW + kw; padding and k >= K: zp. */
VN_TARGET static void VN(pack_conv)(uint8_t *a, const VN(conv_job) *J, const int8_t *xb, size_t p0, size_t T) {
    const dse_i8_geom *g = J->g;
    const size_t K = J->G.K, Kb = J->G.Kb, Kp = Kb * 4;
    const int zp = J->G.o->zp_in;
    const size_t isz = (size_t)(g->in[0] * g->in[1] * g->in[2]);
    int8_t pad[16];
    memset(pad, zp, 16);
    if (J->direct) {   /* k-row c = channel c's pixels p0.. (contiguous) */
        for (size_t kb = 0; kb < Kb; kb++) {
            const int8_t *src[4];
            for (size_t c = 0; c < 4; c++) src[c] = 4 * kb + c < K ? xb + (4 * kb + c) * isz + p0 : pad;
            size_t q = 0;
            for (; q + 16 <= T; q += 16) {
                __m128i r[4];
                for (int c = 0; c < 4; c++)
                    r[c] = _mm_loadu_si128((const __m128i *)(const void *)(src[c] == pad ? pad : src[c] + q));
                VN(put16)(a, T, Kp, q, kb, r[0], r[1], r[2], r[3]);
            }
            if (q < T) {
                int8_t tmp[4][16];
                for (int c = 0; c < 4; c++) {
                    memset(tmp[c], zp, 16);
                    if (src[c] != pad) memcpy(tmp[c], src[c] + q, T - q);
                }
                VN(put16)(a, T, Kp, q, kb, _mm_loadu_si128((const __m128i *)(const void *)tmp[0]),
                          _mm_loadu_si128((const __m128i *)(const void *)tmp[1]),
                          _mm_loadu_si128((const __m128i *)(const void *)tmp[2]),
                          _mm_loadu_si128((const __m128i *)(const void *)tmp[3]));
            }
        }
        return;
    }
    /* general: per k-block, its 4 im2col rows staged as int8 after the tile, then transposed */
    const size_t SR = (T + 31) / 16 * 16;   /* a stage row, with room for a 16-byte overrun */
    int8_t *stage = (int8_t *)(a + T * Kp);
    const avx2_i8_pix pix = avx2_i8_pix_of(g, p0);
    avx2_i8_tap tap = avx2_i8_tap_of(g, 0);
    for (size_t kb = 0; kb < Kb; kb++) {
        avx2_i8_stage_kblock(stage, SR, g, xb, &tap, pix, kb, K, T, zp);
        for (size_t q = 0; q < T; q += 16)
            VN(put16)(a, T, Kp, q, kb, _mm_loadu_si128((const __m128i *)(const void *)(stage + q)),
                      _mm_loadu_si128((const __m128i *)(const void *)(stage + SR + q)),
                      _mm_loadu_si128((const __m128i *)(const void *)(stage + 2 * SR + q)),
                      _mm_loadu_si128((const __m128i *)(const void *)(stage + 3 * SR + q)));
    }
}

#if defined(DSE_VNNI_512)
#include "../avx512vnni/conv_px.h"
#endif
#if defined(DSE_VNNI_AMX)
#include "../amx/tile_core.h"
#endif

VN_TARGET static void VN(conv_task)(void *arg, size_t begin, size_t end, unsigned worker) {
    const VN(conv_job) *J = arg;
    uint8_t *a = dse__worker_scratch(J->cx, worker);
    const size_t isz = (size_t)(J->g->in[0] * J->g->in[1] * J->g->in[2]);
    size_t packed = (size_t)-1;
    for (size_t t = begin; t < end; t++) {
        const size_t u = t / J->split, b = u / J->tiles, p0 = u % J->tiles * J->T, T = J->Pt - p0 < J->T ? J->Pt - p0 : J->T;
        if (u != packed) {
#if defined(DSE_VNNI_512)
            if (J->px) VN(pack_conv_px)(a, J, J->x + b * (size_t)J->C * isz, p0, T);
            else
#endif
                VN(pack_conv)(a, J, J->x + b * (size_t)J->C * isz, p0, T);
            packed = u;
        }
        VN(gemm) G = J->G;
        VN_SET_WBUF(G, a);
        VN(part_rows)(&G, t % J->split, J->split);
        G.y = J->G.o->float_out ? (void *)((float *)G.y + b * G.R * J->P) : (void *)((int8_t *)G.y + b * G.R * J->P);
#if defined(DSE_VNNI_512)
        if (J->px) {
#if defined(DSE_VNNI_AMX)
            VN(amx_tile)(&G, J, a, T, p0, (int8_t *)(a + J->wbuf_off));
#else
            VN(px_tile)(&G, a, T, p0);
#endif
            continue;
        }
#endif
        VN(gemm_tile)(&G, a, T, p0);
    }
}

VN_TARGET void VN_KERNEL(dse_i8_conv)(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    const dse_tensor *xt = &m->tensors[n->in[0]], *wt = &m->tensors[n->in[1]], *yt = &m->tensors[n->out[0]];
    dse_i8_out o;
    dse_i8_geom g;
    dse_why why;
    dse_i8_out_params(m, n, wt->dims[0], &o, &why);
    dse_i8_geom_read(n, xt, yt, wt->dims + 2, &g, &why);
    const size_t O = wt->dims[0], NB = xt->dims[0], P = yt->numel / (NB * O);
    VN(geom_unit_w)(&g);
    VN(conv_job) J;
    const size_t K = wt->numel / O;
#if defined(DSE_VNNI_W4)
    {   /* small-K 1x1: the pixels-in-lanes form (the check's condition) */
        int direct = 1;
        for (int i = 0; i < 3; i++) direct &= g.k[i] == 1 && g.s[i] == 1 && g.pb[i] == 0 && g.pe[i] == 0;
        if (direct && avx2_i8_trans_k(K, P)) {
            dse_i8_conv_trans_w4_run_avx2(m, n, arena, cx, &o, &g);
            return;
        }
    }
#endif
    J.G.w = dse__data(m, arena, n->in[1]), J.G.R = O, J.G.K = K, J.G.Kb = (K + 3) / 4;
    J.G.bias = dse__data(m, arena, n->in[2]), J.G.o = &o, J.G.y = dse__data(m, arena, n->out[0]);
    J.G.ys_r = P, J.G.ys_p = 1;
#if defined(DSE_VNNI_W4)
    J.G.wbuf_off = VN(w4_wbuf)(n, K, P);
#endif
    J.cx = cx, J.x = dse__data(m, arena, n->in[0]), J.g = &g, J.C = (long long)xt->dims[1], J.P = P;
    J.Pt = P, J.Wp = 0, J.OW = 0;
#if defined(DSE_VNNI_AMX)
    J.Wp = VN(amx_band_wp)(&g);
    if (J.Wp && VN(amx_need)(&g, J.Wp, (size_t)xt->dims[1], VN(amx_kt)(J.G.Kb), P) > n->scratch) J.Wp = 0;   /* (the check's choice) */
    if (J.Wp) J.Pt = (size_t)(g.out[1] * J.Wp), J.OW = g.out[2];
#endif
    const size_t PT = J.Pt;   /* (the tiles below: of P pixels, or of the AMX band's positions) */
    J.T = PT < DSE_I8_PACK_TILE ? PT : DSE_I8_PACK_TILE;
    int tile_threads = 1;   /* with threads, a tile per thread (each packs its own) */
#if defined(DSE_VNNI_AMX)
    /* AMX repacks the weights per tile: where they outweigh the image (O > positions: ResNet's 14x14
     * and 7x7 layers), split the channels over the threads instead, each thread reading its share of
     * the weights once rather than all of them (resnet50 int8 on 2 threads: 12.4 -> 11.6 ms) */
    tile_threads = O <= PT;
#endif
    if (PT >= 64) {   /* as the AVX2 variant: tiles of equal width (multiples of 16), and with threads at
                      * least one per thread, else two parts of one tile (channel bands) would each pack
                      * it (a 1x1 conv on a 14x14 image: 1.3-1.45x on 2 threads, packing twice) */
        size_t nt = (PT + DSE_I8_PACK_TILE - 1) / DSE_I8_PACK_TILE;
        const size_t th = dse__threads(cx);
        if (th > 1 && NB * nt < th && tile_threads) nt = (th + NB - 1) / NB;
        const size_t T = ((PT + nt - 1) / nt + 15) / 16 * 16;
        J.T = T < J.T ? T : J.T;
    }
#if defined(DSE_VNNI_512)
    else if (PT >= 32 && dse__threads(cx) > 1 && NB < dse__threads(cx) && tile_threads) {
        /* pixels in lanes on a small image (ResNet's 7x7): a column tile per thread (whole groups of
         * 16), rather than every thread packing the image's one tile for a share of the channels */
        const size_t th = dse__threads(cx), nt = th < PT / 16 ? th : PT / 16;
        const size_t T = ((PT + nt - 1) / nt + 15) / 16 * 16;
        J.T = T < J.T ? T : J.T;
    }
#endif
    J.direct = 1;
    for (int i = 0; i < 3; i++) J.direct &= g.k[i] == 1 && g.s[i] == 1 && g.pb[i] == 0 && g.pe[i] == 0;
    J.tiles = (PT + J.T - 1) / J.T;
    J.split = avx2_i8_split(cx, NB * J.tiles, O);
    J.px = 0, J.Kt = J.G.Kb, J.wbuf_off = 0;
#if defined(DSE_VNNI_512)
    J.px = J.T >= 16;   /* pixels in lanes: tiles of at least one column group */
#endif
#if defined(DSE_VNNI_AMX)
    J.Kt = VN(amx_kt)(J.G.Kb), J.wbuf_off = VN(amx_wbuf_off)(&g, J.Wp, (size_t)J.C, J.Kt, J.T);
#endif
    dse__parallel(cx, NB * J.tiles * J.split, dse__grain(NB * J.tiles * J.split, (uint64_t)NB * P * K * O), VN(conv_task), &J);
}

/* -- Gemm / MatMul entry points (VN(rows): the core above, or the AMX one) ------------------------ */

VN_TARGET void VN_KERNEL(dse_i8_gemm)(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    const dse_tensor *x = &m->tensors[n->in[0]], *y = &m->tensors[n->out[0]];
    dse_i8_out o;
    dse_why why;
    dse_i8_out_params(m, n, y->dims[1], &o, &why);
    VN(rows)(cx, n, dse__data(m, arena, n->in[0]), x->dims[0], x->dims[1], dse__data(m, arena, n->in[1]), y->dims[1],
             dse__data(m, arena, n->in[2]), &o, dse__data(m, arena, n->out[0]));
}

VN_TARGET void VN_KERNEL(dse_i8_matmul)(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    const dse_tensor *w = &m->tensors[n->in[1]], *y = &m->tensors[n->out[0]];
    const size_t K = w->dims[0], N = w->dims[1];
    dse_i8_out o;
    dse_why why;
    dse_i8_out_params(m, n, N, &o, &why);
    VN(rows)(cx, n, dse__data(m, arena, n->in[0]), y->numel / N, K, dse__data(m, arena, n->in[1]), N,
             dse__data(m, arena, n->in[2]), &o, dse__data(m, arena, n->out[0]));
}

#undef VN
#undef VN_KERNEL
#undef VN_TARGET
#undef VN_DPBUSD
#undef VN_WBLK
#undef VN_SET_WBUF
#undef VN_CW
#undef VN_ZSTORE
#undef VN_PXG
#undef VN_AMX_EMUL
#undef VN_ZLOAD64
#undef VZ
#undef VZ_LO
#undef VZ_HI
#undef VC
#undef VC_CHECK
#undef VC_REF_CHECK

#endif
