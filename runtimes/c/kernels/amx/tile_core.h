/* amx/tile_core.h: the AMX Conv core (included by kernels/avxvnni/conv_i8.c in its DSE_VNNI_AMX
 * compile, kernels/amx/conv_i8.c, after conv_px.h). Not a standalone header: it uses that file's
 * VN() names, the pixels-in-lanes tile (VN(pack_conv_px)) and output stage (VN(px_store)).
 *
 * AMX (Sapphire Rapids and later) multiplies whole tiles: tdpbsud C += A * B with A 16 rows x 64
 * signed bytes, B 16 rows x 64 unsigned bytes read as 16 k-blocks x (16 columns x 4 k), C 16 x 16
 * int32: C[m][n] += sum_{j<16, t<4} A[m][4j + t] * B[j][4n + t], products exact, the sums wrapping
 * modulo 2^32 and never saturating (as vpdpbusd). The pixels-in-lanes tile is exactly B's layout:
 * column group q's k-blocks kb are 64 bytes each (16 pixels x 4 k of u = x ^ 0x80) at
 * (q * Kt + kb) * 64, so 16 consecutive k-blocks are one B tile (stride 64), and C's row m is
 * output channel m's 16 pixels: the same (channel, pixel) sums as the avx512vnni core, handed to
 * the same output stage (fb = bias - (128 + zp_in) * sum_k w, VN(px_store)).
 *
 * A is 16 output channels x 64 consecutive k of the weights, which layout 1 (8 channels x 4 k per
 * 32-byte block) does not hold as rows: each tile of 16 columns' work first repacks the weights
 * of the channels it computes (32 at a time) into the scratch, rows of 64 k (a transpose of
 * dwords, three vpermt2d stages), k past K zero. K <= 64: the tiles are configured to the Kb
 * k-blocks (B Kb rows, A 4 Kb bytes a row); larger K: the tile's k-blocks rounded up to 16 (Kt),
 * the extra ones holding zeros (VN(pack_conv_px)) against zero weights.
 * Microkernel: 2 A tiles (32 channels) x 2 B tiles (32 pixels) into 4 C tiles, per 64 k four
 * tile loads and four tdpbsud; C stored to a [32][32] int32 buffer, each channel's 32 pixels
 * contiguous for VN(px_store). Tiles of fewer than 32 channels or pixels run the 1-tile forms.
 * Tile registers: 0-3 C, 4-5 A, 6-7 B; configured (ldtilecfg, palette 1, all 16 x 64) at the start
 * of each tile's work and released (tilerelease) after it, so no state outlives a call.
 *
 * The emulation build (-DDSE_EMULATE_VNNI) computes the same sums in C over the same buffers. */

/* the tile's k-blocks: Kb when one tile holds them (K <= 64: the tiles configured to Kb rows of B,
 * 4 Kb bytes of A), else rounded up to whole 64-k tile rows */
static inline size_t VN(amx_kt)(size_t Kb) { return Kb <= 16 ? Kb : (Kb + 15) / 16 * 16; }
/* the repacked weights' bytes: 2 A tiles of 16 rows x 64 bytes per chunk of 64 k */
static inline size_t VN(amx_wbuf_bytes)(size_t Kt) { return 2048 * ((Kt + 15) / 16); }
/* The band (convs of one or two spatial axes with strides 1 or 2, not 1x1 unpadded stride 1): the
 * input rows a tile reads are copied, zp-padded, into sh x sw phase planes per channel (plane
 * (fh, fw) row i, column j = the padded input's row i * sh + fh, column j * sw + fw; stride 1: the
 * padded rows themselves; only the phases a tap reads), all Wq = ceil((pad + IW + pad) / sw) wide. The tile's columns are
 * positions of the grid of OH rows x Wq, so that k-row (c, kh, kw) of the tile is one linear run
 * of plane ((kh dh) % sh, (kw dw) % sw) of channel c from row (kh dh) / sh, column (kw dw) / sw;
 * the Wq - OW positions at each row's end are computed and not stored (their lanes masked out by
 * the output stage). Taken when they are at most a third of a row (ResNet-50's stride-1 3x3 convs:
 * 0.39 -> 0.29 ms on 56 x 56, 0.36 -> 0.22 on 28 x 28, 0.33 -> 0.21 on 14 x 14, AMX host).
 * Returns Wq, or 0 for the im2col stage. */
static inline long long VN(amx_band_wp)(const dse_i8_geom *g) {
    if (g->in[0] != 1 || g->out[0] != 1 || g->k[0] != 1 || g->s[1] > 2 || g->s[2] > 2) return 0;
    if (g->k[1] == 1 && g->k[2] == 1 && g->s[1] == 1 && g->s[2] == 1 && !g->pb[1] && !g->pe[1] && !g->pb[2] &&
        !g->pe[2])
        return 0;   /* (direct) */
    const long long Wq = (g->in[2] + g->pb[2] + g->pe[2] + g->s[2] - 1) / g->s[2], OW = g->out[2];
    return Wq >= 8 && (Wq - OW) * 2 <= OW ? Wq : 0;
}
/* the phase planes a tap reads along an axis of stride st, kernel k, dilation d (1x1 or an even
 * dilation: only phase 0) */
static inline long long VN(amx_phases)(long long st, long long k, long long d) { return st == 1 || k == 1 || d % 2 == 0 ? 1 : 2; }
/* rows of each phase plane of the band of a tile of T16 positions starting anywhere: the output
 * rows they touch (at most OH + 1 + 15 / Wq: the last group's lanes past the image), and the
 * taps' rows below them */
static inline size_t VN(amx_band_rows)(const dse_i8_geom *g, long long Wq, size_t T16) {
    size_t r = (T16 - 1 + (size_t)Wq - 1) / (size_t)Wq + 1;
    if (r > (size_t)g->out[1] + 1 + 15 / (size_t)Wq) r = (size_t)g->out[1] + 1 + 15 / (size_t)Wq;
    return r + (size_t)((g->k[1] - 1) * g->d[1] / g->s[1]);
}
/* where the repacked weights (32 channels x Kt * 4 bytes) start in the worker's scratch: after the
 * pixels-in-lanes tile of T columns (rounded up to 16) and its im2col stage (or band), 64-aligned */
static inline size_t VN(amx_wbuf_off)(const dse_i8_geom *g, long long Wp, size_t C, size_t Kt, size_t T) {
    const size_t T16 = (T + 15) / 16 * 16, SR = (T + 31) / 16 * 16;
    const size_t planes = Wp ? (size_t)(VN(amx_phases)(g->s[1], g->k[1], g->d[1]) * VN(amx_phases)(g->s[2], g->k[2], g->d[2])) : 0;
    const size_t extra = Wp ? (C * planes * VN(amx_band_rows)(g, Wp, T16) + 1) * (size_t)Wp + 64 : 4 * SR;
    return (T16 * Kt * 4 + extra + 63) / 64 * 64;
}

/* the scratch of a node of P pixels per image: with the band of row width Wp (or 0: the stage), its
 * tiles at most DSE_I8_PACK_TILE of the positions (the kernel's may be narrower) */
static inline size_t VN(amx_need)(const dse_i8_geom *g, long long Wp, size_t C, size_t Kt, size_t P) {
    const size_t PT = Wp ? (size_t)(g->out[1] * Wp) : P, T = PT < DSE_I8_PACK_TILE ? PT : DSE_I8_PACK_TILE;
    return VN(amx_wbuf_off)(g, Wp, C, Kt, T) + VN(amx_wbuf_bytes)(Kt);
}

/* The AMX Conv takes what the VNNI kernels take (dse__check_i8_conv_vnni: layout-1 weights, group 1,
 * exact int32 sums) with at least 16 output pixels per image (smaller images: the avx512vnni core)
 * when the planned scratch holds its tile (k rounded up to 64) and the repacked weights. */
int dse__check_i8_conv_amx(const dse_model *m, const dse_node *n, dse_why *why) {
    if (dse__check_i8_conv_vnni(m, n, why)) return 1;
    const dse_tensor *x = &m->tensors[n->in[0]], *w = &m->tensors[n->in[1]], *y = &m->tensors[n->out[0]];
    const size_t O = w->dims[0], K = w->numel / O, P = y->numel / (y->dims[0] * O);
    /* small images, and K < 48: the avx512vnni kernel (one tile product of fewer than 12 k-blocks does
     * too little to pay for the tiles' stores and reloads: MobileNetV2's stem and K 16-32 1x1 convs
     * 10-25 % slower on AMX) */
    if (P < 16 || K < 48) return 1;
    dse_i8_geom g;
    dse_why tmp;
    dse_i8_geom_read(n, x, y, w->dims + 2, &g, &tmp);
    VN(geom_unit_w)(&g);   /* (as the kernel) */
    const size_t Kt = VN(amx_kt)((K + 3) / 4);
    const long long Wp = VN(amx_band_wp)(&g);
    for (int band = Wp != 0; band >= 0; band--) {   /* the band where the plan holds it, else the im2col stage */
        const size_t need = VN(amx_need)(&g, band ? Wp : 0, x->dims[1], Kt, P);
        if (need <= why->scratch_plan && dse__scratch_free(m, n, need)) {
            why->scratch = need;
            return 0;
        }
    }
    return 1;
}

#if defined(DSE_EMULATE_VNNI)
/* channels r0 .. r0 + nch - 1 (r0 a multiple of 8, nch <= 32) of layout-1 weights (Kb k-blocks per
 * 8-channel band) as A tiles: tile i (channels r0 + 16i ..) chunk kc at buf + (i * KC + kc) * 1024,
 * row c = 64 k of channel r0 + 16i + c; channels >= nch and k >= 4 Kb zero */
static void VN(amx_pack_w)(int8_t *buf, const int8_t *w, size_t Kb, size_t KC, size_t r0, size_t nch) {
    memset(buf, 0, 2 * KC * 1024);
    for (size_t c = 0; c < nch; c++)
        for (size_t kb = 0; kb < Kb; kb++)
            memcpy(buf + ((c / 16) * KC + kb / 16) * 1024 + (c % 16) * 64 + (kb % 16) * 4,
                   w + ((r0 + c) / 8 * Kb + kb) * 32 + (c % 8) * 4, 4);
}
/* the microkernel's sums, as tdpbsud forms them (A signed, B unsigned, wrapping int32; kr k-blocks a
 * chunk, the tiles' configuration) */
#define VN_AMX_BEGIN(kr) (void)(kr)
#define VN_AMX_END() (void)0
static void VN(amx_mk)(const int8_t *w, size_t wstep, const uint8_t *b, size_t gstep, size_t KC, size_t kr, int32_t *c,
                       int NA, int NB) {
    for (int ai = 0; ai < NA; ai++)
        for (int bj = 0; bj < NB; bj++)
            for (size_t r = 0; r < 16; r++)
                for (size_t col = 0; col < 16; col++) {
                    uint32_t s = 0;
                    for (size_t kc = 0; kc < KC; kc++)
                        for (size_t j = 0; j < kr; j++)
                            for (size_t t = 0; t < 4; t++)
                                s += (uint32_t)((int32_t)w[ai * wstep + kc * 1024 + r * 64 + 4 * j + t] *
                                                (int32_t)b[bj * gstep + kc * 1024 + j * 64 + 4 * col + t]);
                    c[(16 * (size_t)ai + r) * 32 + 16 * (size_t)bj + col] = (int32_t)s;
                }
}
#else
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} VN(tilecfg);

/* tiles 0-3 (C) 16 x 64 bytes, 4-5 (A) 16 x 4 kr, 6-7 (B) kr x 64: kr k-blocks per chunk */
VN_TARGET static void VN(amx_begin)(size_t kr) {
    VN(tilecfg) cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int i = 0; i < 8; i++) cfg.colsb[i] = 64, cfg.rows[i] = 16;
    cfg.colsb[4] = cfg.colsb[5] = (uint16_t)(4 * kr);
    cfg.rows[6] = cfg.rows[7] = (uint8_t)kr;
    _tile_loadconfig(&cfg);
}
#define VN_AMX_BEGIN(kr) VN(amx_begin)(kr)
#define VN_AMX_END() _tile_release()

/* as the emulation's VN(amx_pack_w): each 8-channel band's 16 k-blocks of a chunk (512 bytes, 8 zmm
 * of [2 kb][8 channels] dwords) transposed to 8 rows of [16 kb] dwords by three vpermt2d stages
 * (4 channels x 4 kb, 2 x 8, 1 x 16 per vector); k-blocks past Kb masked to zero */
VN_TARGET static void VN(amx_pack_w)(int8_t *buf, const int8_t *w, size_t Kb, size_t KC, size_t r0, size_t nch) {
    const __m512i iA0 = _mm512_setr_epi32(0, 8, 16, 24, 1, 9, 17, 25, 2, 10, 18, 26, 3, 11, 19, 27);
    const __m512i iA1 = _mm512_setr_epi32(4, 12, 20, 28, 5, 13, 21, 29, 6, 14, 22, 30, 7, 15, 23, 31);
    const __m512i iB0 = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
    const __m512i iB1 = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
    const __m512i iC0 = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
    const __m512i iC1 = _mm512_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
    const size_t nband = nch > 16 ? 4 : 2;
    for (size_t b8 = 0; b8 < nband; b8++) {
        int8_t *dst = buf + (b8 / 2) * KC * 1024 + (b8 % 2) * 512;
        if (8 * b8 >= nch) {
            for (size_t kc = 0; kc < KC; kc++) memset(dst + kc * 1024, 0, 512);
            continue;
        }
        const int8_t *src = w + (r0 / 8 + b8) * Kb * 32;
        for (size_t kc = 0; kc < KC; kc++, dst += 1024) {
            const size_t nb = Kb - 16 * kc < 16 ? Kb - 16 * kc : 16;   /* valid k-blocks of the chunk */
            __m512i v[8], uA[4][2], uB[2][2][2];
            for (size_t j = 0; j < 8; j++) {
                const __mmask16 mk = (__mmask16)((2 * j < nb ? 0x00FFu : 0u) | (2 * j + 1 < nb ? 0xFF00u : 0u));
                v[j] = _mm512_maskz_loadu_epi32(mk, src + (16 * kc + 2 * j) * 32);
            }
            for (int p = 0; p < 4; p++) {
                uA[p][0] = _mm512_permutex2var_epi32(v[2 * p], iA0, v[2 * p + 1]);
                uA[p][1] = _mm512_permutex2var_epi32(v[2 * p], iA1, v[2 * p + 1]);
            }
            for (int q = 0; q < 2; q++)
                for (int h = 0; h < 2; h++) {
                    uB[q][h][0] = _mm512_permutex2var_epi32(uA[2 * q][h], iB0, uA[2 * q + 1][h]);
                    uB[q][h][1] = _mm512_permutex2var_epi32(uA[2 * q][h], iB1, uA[2 * q + 1][h]);
                }
            for (int h = 0; h < 2; h++)
                for (int g = 0; g < 2; g++) {
                    const int c = 4 * h + 2 * g;
                    _mm512_storeu_si512(dst + c * 64, _mm512_permutex2var_epi32(uB[0][h][g], iC0, uB[1][h][g]));
                    _mm512_storeu_si512(dst + (c + 1) * 64, _mm512_permutex2var_epi32(uB[0][h][g], iC1, uB[1][h][g]));
                }
        }
    }
}

/* The tile products of both cores (the conv's below, Gemm/MatMul's further down): NA (1, 2) A tiles
 * (a0, a1) x NB (1, 2) B tiles (b0, b1) over KC chunks of 64 k (A rows lda bytes apart, advancing ak
 * bytes a chunk; B rows ldb apart, advancing bk), into the C tiles stored at c (int32, rows ldc
 * apart; the second B's cw elements on, the second A's 16 rows down). SS: tdpbssd (B signed), else
 * tdpbsud (B unsigned). Tiles 0-3 C, 4-5 A, 6-7 B. */
VN_TARGET static inline __attribute__((always_inline)) void VN(amx_tiles)(const int8_t *a0, const int8_t *a1, size_t lda,
                                                                          size_t ak, const void *b0v, const void *b1v,
                                                                          size_t ldb, size_t bk, size_t KC, int32_t *c,
                                                                          size_t ldc, size_t cw, const int NA,
                                                                          const int NB, const int SS) {
    const uint8_t *b0 = b0v, *b1 = b1v;
    _tile_zero(0);
    if (NB > 1) _tile_zero(1);
    if (NA > 1) _tile_zero(2);
    if (NA > 1 && NB > 1) _tile_zero(3);
    for (size_t kc = 0; kc < KC; kc++, a0 += ak, a1 += ak, b0 += bk, b1 += bk) {
        _tile_loadd(4, a0, lda);
        _tile_loadd(6, b0, ldb);
        if (NA > 1) _tile_loadd(5, a1, lda);
        if (NB > 1) _tile_loadd(7, b1, ldb);
        if (SS) {
            _tile_dpbssd(0, 4, 6);
            if (NB > 1) _tile_dpbssd(1, 4, 7);
            if (NA > 1) _tile_dpbssd(2, 5, 6);
            if (NA > 1 && NB > 1) _tile_dpbssd(3, 5, 7);
        } else {
            _tile_dpbsud(0, 4, 6);
            if (NB > 1) _tile_dpbsud(1, 4, 7);
            if (NA > 1) _tile_dpbsud(2, 5, 6);
            if (NA > 1 && NB > 1) _tile_dpbsud(3, 5, 7);
        }
    }
    _tile_stored(0, c, 4 * ldc);
    if (NB > 1) _tile_stored(1, c + cw, 4 * ldc);
    if (NA > 1) _tile_stored(2, c + 16 * ldc, 4 * ldc);
    if (NA > 1 && NB > 1) _tile_stored(3, c + 16 * ldc + cw, 4 * ldc);
}
/* the Conv's: NA A tiles of repacked weights (the second wstep bytes after the first) x NB B tiles
 * (column groups of the pixels-in-lanes tile, gstep apart), c[(16 ai + r) * 32 + 16 bj + col] */
#define VN_AMX_MK(NA, NB)                                                                                            \
    VN_TARGET static void VN(amx_mk##NA##NB)(const int8_t *w, size_t wstep, const uint8_t *b, size_t gstep,           \
                                             size_t KC, int32_t *c) {                                                 \
        VN(amx_tiles)(w, w + (NA > 1 ? wstep : 0), 64, 1024, b, b + (NB > 1 ? gstep : 0), 64, 1024, KC, c, 32, 16, NA, \
                      NB, 0);                                                                                         \
    }
VN_AMX_MK(1, 1) VN_AMX_MK(1, 2) VN_AMX_MK(2, 1) VN_AMX_MK(2, 2)
#undef VN_AMX_MK
VN_TARGET static void VN(amx_mk)(const int8_t *w, size_t wstep, const uint8_t *b, size_t gstep, size_t KC, size_t kr,
                                 int32_t *c, int NA, int NB) {
    (void)kr;   /* (the tiles' configuration) */
    if (NA > 1) (NB > 1 ? VN(amx_mk22) : VN(amx_mk21))(w, wstep, b, gstep, KC, c);
    else (NB > 1 ? VN(amx_mk12) : VN(amx_mk11))(w, wstep, b, gstep, KC, c);
}
#endif

/* dst[j] = src[2j] for j < n (src[2n - 2] the last byte read: masked loads past it) */
VN_TARGET static inline void VN(even_bytes)(int8_t *dst, const int8_t *src, size_t n) {
#if defined(DSE_EMULATE_VNNI)
    for (size_t j = 0; j < n; j++) dst[j] = src[2 * j];
#else
    for (size_t j = 0; j < n; j += 32) {   /* 63 bytes -> their 32 even ones (vpmovwb) */
        const size_t m = n - j < 32 ? n - j : 32;
        const __m512i v = _mm512_maskz_loadu_epi8((__mmask64)((1ull << (2 * m - 1)) - 1), src + 2 * j);
        _mm256_mask_storeu_epi8(dst + j, (__mmask32)(m == 32 ? 0xFFFFFFFFu : (1u << m) - 1), _mm512_cvtepi16_epi8(v));
    }
#endif
}

/* The tile of positions p0 .. p0 + T - 1 of image xb on the band: the rows it reads copied with
 * their zp padding into band ([C][rows][Wp]: band row r = input row p0 / Wp - pad + r, column j =
 * input column j - pad), then each k-block's 4 k-rows read as 16-byte runs straight from it */
VN_TARGET static void VN(amx_pack_band)(uint8_t *a, const VN(conv_job) *J, const int8_t *xb, size_t p0, size_t T,
                                        int8_t *band) {
    const dse_i8_geom *g = J->g;
    const size_t K = J->G.K, Kt = J->Kt, G16 = (T + 15) / 16, Wq = (size_t)J->Wp;
    const long long IH = g->in[1], IW = g->in[2], ph = g->pb[1], pw = g->pb[2], KH = g->k[1], KW = g->k[2];
    const long long sh = g->s[1], sw = g->s[2];
    const long long nfh = VN(amx_phases)(sh, KH, g->d[1]), nfw = VN(amx_phases)(sw, KW, g->d[2]);   /* the planes read */
    const int zp = J->G.o->zp_in;
    const size_t r_lo = p0 / Wq, rows = (p0 + 16 * G16 - 1) / Wq - r_lo + 1 + (size_t)((KH - 1) * g->d[1] / sh);
    const size_t psz = rows * Wq, csz = (size_t)(nfh * nfw) * psz;   /* a phase plane's bytes, a channel's */
    for (long long c = 0; c < J->C; c++)
        for (long long fh = 0; fh < nfh; fh++)
            for (size_t r = 0; r < rows; r++) {
                const long long ih = ((long long)(r_lo + r)) * sh + fh - ph;
                const int8_t *row = ih >= 0 && ih < IH ? xb + ((size_t)c * (size_t)IH + (size_t)ih) * (size_t)IW : NULL;
                for (long long fw = 0; fw < nfw; fw++) {
                    int8_t *dst = band + (size_t)c * csz + (size_t)(fh * nfw + fw) * psz + r * Wq;
                    if (!row) {
                        memset(dst, zp, Wq);
                        continue;
                    }
                    if (sw == 1) {
                        memset(dst, zp, (size_t)pw);
                        memcpy(dst + pw, row, (size_t)IW);
                        memset(dst + pw + IW, zp, Wq - (size_t)(pw + IW));
                        continue;
                    }
                    /* column j: padded column 2j + fw, input column 2j + fw - pw, in the row for j in [j0, j1) */
                    const long long j0 = (pw - fw + 1) / 2, last = IW - 1 + pw - fw;
                    const long long j1 = last < 0 || last / 2 + 1 < j0 ? j0 : last / 2 + 1;
                    memset(dst, zp, (size_t)j0);
                    VN(even_bytes)(dst + j0, row + 2 * j0 + fw - pw, (size_t)(j1 - j0));
                    memset(dst + j1, zp, Wq - (size_t)j1);
                }
            }
    memset(band + (size_t)J->C * csz, zp, Wq + 64);   /* the last runs' overreach: a row (a tap's column) and a group */
    int8_t pad[16];
    memset(pad, zp, 16);
    const size_t base = p0 - r_lo * Wq;
    const int lh = sh == 2, lw = sw == 2;   /* (strides 1 or 2: / and % as shifts and masks) */
    long long kc = 0, kh = 0, kw = 0;        /* k = (kc * KH + kh) * KW + kw, stepped */
    for (size_t kb = 0; kb < Kt; kb++) {
        if (4 * kb >= K) {   /* k-blocks past K: zero weights */
            for (size_t q = 0; q < G16; q++) memset(a + (q * Kt + kb) * 64, 0, 64);
            continue;
        }
        const int8_t *src[4];
        for (size_t t = 0; t < 4; t++) {
            if (4 * kb + t >= K) {
                src[t] = NULL;
                continue;
            }
            const long long u = kh * g->d[1], v = kw * g->d[2];
            src[t] = band + (size_t)kc * csz + (size_t)((u & lh) * nfw + (v & lw)) * psz + (size_t)(u >> lh) * Wq +
                     (size_t)(v >> lw) + base;
            if (++kw == KW) {
                kw = 0;
                if (++kh == KH) kh = 0, kc++;
            }
        }
        for (size_t q = 0; q < G16; q++) {
            __m128i r[4];
            for (int t = 0; t < 4; t++)
                r[t] = _mm_loadu_si128((const __m128i *)(const void *)(src[t] ? src[t] + 16 * q : pad));
            VN(put16px)(a + (q * Kt + kb) * 64, r[0], r[1], r[2], r[3]);
        }
    }
}

/* Y[r_begin..r_end)[p0 .. p0 + T) of one image from the pixels-in-lanes tile a (T columns, Kt
 * k-blocks per column group), the weights repacked into wbuf 32 channels at a time */
VN_TARGET static void VN(amx_tile)(const VN(gemm) *G, const VN(conv_job) *J, const uint8_t *a, size_t T, size_t p0,
                                   int8_t *wbuf) {
    const size_t Kt = J->Kt, Kb = G->Kb, KC = (Kt + 15) / 16, kr = Kt < 16 ? Kt : 16, gstep = Kt * 64, G16 = (T + 15) / 16;
    uint16_t vm[DSE_I8_PACK_TILE / 16];   /* the band: each group's valid lanes and where they go */
    size_t voff[DSE_I8_PACK_TILE / 16];
    const uint16_t *vmp = NULL;
    const size_t *vop = NULL;
    size_t yo = p0;   /* the tile's first output element in a channel's row */
    if (J->Wp) {
        const size_t Wp = (size_t)J->Wp, OW = (size_t)J->OW;
        for (size_t q = 0; q < G16; q++) {
            vm[q] = 0, voff[q] = 0;
            for (size_t l = 16; l-- > 0;) {
                const size_t s = p0 + 16 * q + l;
                if (s < p0 + T && s % Wp < OW) vm[q] |= (uint16_t)(1u << l), voff[q] = s / Wp * OW + s % Wp - p0 / Wp * OW;
            }
        }
        vmp = vm, vop = voff, yo = p0 / Wp * OW;
    }
    const dse_i8_out *o = G->o;
    const size_t esz = o->float_out ? 4 : 1;
    int32_t cbuf[32 * 32] __attribute__((aligned(64)));
    VN_AMX_BEGIN(kr);
    for (size_t r0 = G->r_begin; r0 < G->r_end; r0 += 32) {
        const size_t nch = G->r_end - r0 < 32 ? G->r_end - r0 : 32;
        const int na = nch > 16 ? 2 : 1;
        VN(amx_pack_w)(wbuf, G->w, Kb, KC, r0, nch);
        int32_t fb[32];
        for (size_t b8 = 0; 8 * b8 < nch; b8++) {   /* bias - (128 + zp_in) * sum_k w, wrapping (the total is exact) */
            int32_t wsum[8];
            _mm256_storeu_si256((__m256i *)(void *)wsum, VN(zsums8)(G->w + (r0 / 8 + b8) * Kb * 32, Kb));
            for (size_t i = 0; i < 8 && 8 * b8 + i < nch; i++)
                fb[8 * b8 + i] = (int32_t)((uint32_t)G->bias[r0 + 8 * b8 + i] - (uint32_t)(128 + o->zp_in) * (uint32_t)wsum[i]);
        }
        for (size_t q = 0; q < G16; q += 2) {
            const int nb = G16 - q > 1 ? 2 : 1;
            VN(amx_mk)(wbuf, KC * 1024, a + q * gstep, gstep, KC, kr, cbuf, na, nb);
            const size_t c0 = 16 * q, cols = T - c0 < 16 * (size_t)nb ? T - c0 : 16 * (size_t)nb;
            for (size_t i = 0; i < nch; i++)
                VN(px_store)(o, r0 + i, fb[i], (const VZ *)(const void *)(cbuf + 32 * i), nb, cols,
                             (uint8_t *)G->y + ((r0 + i) * G->ys_r + (vmp ? yo : p0 + c0)) * esz,
                             vmp ? vmp + q : NULL, vop ? vop + q : NULL);
        }
    }
    VN_AMX_END();
}


/* -- Gemm / MatMul on tiles --------------------------------------------------------------------------
 * Y[rows][N] = x[rows][K] W + bias through the output stage, W in layout 1 or 2 (the W[N][K] view:
 * 32-byte blocks of 8 channels x 4 k, each 8-channel band's k-blocks consecutive). With K a
 * multiple of 64 both operands are tiles as they lie: A = 16 rows of x, 64 k (K bytes apart), B =
 * 16 k-blocks of one band (32 bytes apart: 8 channels x 4 k a row), C = 16 rows x 8 channels of
 * int32, by tdpbssd (signed x by signed w, exact, wrapping: the check's bound as for the VNNI
 * kernels). acc = sum_k x w + bias - zp_in * sum_k w (VN(zsums8)); each C row is 8 channels of one
 * output row, requantised by the AVX2 output stage (avx2_i8_store_tile, 8 channels in the lanes).
 * Microkernel: 2 A (32 rows) x 2 B (16 channels) into 4 C tiles; 1-tile forms for tails; rows past
 * the last are read from a zero-padded copy of the last rows in the scratch (16 K bytes). Work: row
 * blocks of 32 x channel blocks of 16 over the session's threads. */
static int VN(amx_rows_ok)(const dse_model *m, const dse_node *n, dse_why *why, size_t rows, size_t K) {
    if (K % 64 || rows < 16) return 1;   /* (K: the tiles' rows of x; few rows: avx512vnni) */
    const size_t need = 16 * K;
    if (need > why->scratch_plan || !dse__scratch_free(m, n, need)) return 1;
    why->scratch = need;
    return 0;
}
int dse__check_i8_gemm_amx(const dse_model *m, const dse_node *n, dse_why *why) {
    if (dse__check_i8_gemm_vnni(m, n, why)) return 1;
    const dse_tensor *x = &m->tensors[n->in[0]];
    return VN(amx_rows_ok)(m, n, why, x->dims[0], x->dims[1]);
}
int dse__check_i8_matmul_amx(const dse_model *m, const dse_node *n, dse_why *why) {
    if (dse__check_i8_matmul_vnni(m, n, why)) return 1;
    const dse_tensor *w = &m->tensors[n->in[1]], *y = &m->tensors[n->out[0]];
    return VN(amx_rows_ok)(m, n, why, y->numel / w->dims[1], w->dims[0]);
}

#if defined(DSE_EMULATE_VNNI)
#define VN_AMX_ROWS_BEGIN() (void)0
/* c[(16 ai + r) * 16 + 8 bj + ch] = sum_k a_ai[r * lda + k] * W(band bj)[k][ch], as tdpbssd forms it */
static void VN(amx_rows_mk)(const int8_t *a0, const int8_t *a1, size_t lda, const int8_t *b0, size_t bstep, size_t KC,
                            int32_t *c, int NA, int NB) {
    for (int ai = 0; ai < NA; ai++)
        for (int bj = 0; bj < NB; bj++)
            for (size_t r = 0; r < 16; r++)
                for (size_t ch = 0; ch < 8; ch++) {
                    uint32_t s = 0;
                    const int8_t *a = (ai ? a1 : a0) + r * lda, *b = b0 + (size_t)bj * bstep;
                    for (size_t k = 0; k < 64 * KC; k++)
                        s += (uint32_t)((int32_t)a[k] * (int32_t)b[(k / 4) * 32 + ch * 4 + k % 4]);
                    c[(16 * (size_t)ai + r) * 16 + 8 * (size_t)bj + ch] = (int32_t)s;
                }
}
#else
/* tiles 0-3 (C) 16 x 32 bytes, 4-5 (A) 16 x 64, 6-7 (B) 16 x 32 */
VN_TARGET static void VN(amx_rows_begin)(void) {
    VN(tilecfg) cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int i = 0; i < 8; i++) cfg.colsb[i] = i == 4 || i == 5 ? 64 : 32, cfg.rows[i] = 16;
    _tile_loadconfig(&cfg);
}
#define VN_AMX_ROWS_BEGIN() VN(amx_rows_begin)()
#define VN_AMX_RMK(NA, NB)                                                                                          \
    VN_TARGET static void VN(amx_rmk##NA##NB)(const int8_t *a0, const int8_t *a1, size_t lda, const int8_t *b0,       \
                                              size_t bstep, size_t KC, int32_t *c) {                                  \
        VN(amx_tiles)(a0, a1, lda, 64, b0, b0 + (NB > 1 ? bstep : 0), 32, 512, KC, c, 16, 8, NA, NB, 1);              \
    }
VN_AMX_RMK(1, 1) VN_AMX_RMK(1, 2) VN_AMX_RMK(2, 1) VN_AMX_RMK(2, 2)
#undef VN_AMX_RMK
VN_TARGET static void VN(amx_rows_mk)(const int8_t *a0, const int8_t *a1, size_t lda, const int8_t *b0, size_t bstep,
                                      size_t KC, int32_t *c, int NA, int NB) {
    if (NA > 1) (NB > 1 ? VN(amx_rmk22) : VN(amx_rmk21))(a0, a1, lda, b0, bstep, KC, c);
    else (NB > 1 ? VN(amx_rmk12) : VN(amx_rmk11))(a0, a1, lda, b0, bstep, KC, c);
}
#endif

typedef struct VN(amx_rows_job) {
    const dse_ctx *cx;
    const int8_t *x, *w;
    const int32_t *bias;
    const dse_i8_out *o;
    void *y;
    size_t rows, K, N, RB;   /* RB: row blocks of 32 */
} VN(amx_rows_job);

VN_TARGET static void VN(amx_rows_task)(void *arg, size_t begin, size_t end, unsigned worker) {
    const VN(amx_rows_job) *J = arg;
    int8_t *tail = (int8_t *)dse__worker_scratch(J->cx, worker);
    const size_t K = J->K, KC = K / 64, Kb = K / 4, N = J->N;
    const dse_i8_out *o = J->o;
    int32_t cbuf[32 * 16] __attribute__((aligned(64)));
    avx2_i8_rq q[2];
    __m256i fb[2];
    __m256 fs[2];
    int nc[2] = {0, 0};
    size_t qn0 = (size_t)-1;   /* the channel block q, fb, fs, nc belong to */
    VN_AMX_ROWS_BEGIN();
    for (size_t t = begin; t < end; t++) {   /* channel-block major: a block's weights stay in cache over the rows */
        const size_t r0 = t % J->RB * 32, n0 = t / J->RB * 16, nr = J->rows - r0 < 32 ? J->rows - r0 : 32;
        const int na = nr > 16 ? 2 : 1, nb = N - n0 > 8 ? 2 : 1;
        const int8_t *a[2] = {J->x + r0 * K, na > 1 ? J->x + (r0 + 16) * K : J->x + r0 * K};
        for (int i = 0; i < na; i++)
            if (nr < 16 * (size_t)(i + 1)) {   /* the last rows, zero-padded to 16 */
                memset(tail, 0, 16 * K);
                memcpy(tail, a[i], (nr - 16 * (size_t)i) * K);
                a[i] = tail;
            }
        const int8_t *wb = J->w + (n0 / 8) * Kb * 32;
        VN(amx_rows_mk)(a[0], a[1], K, wb, Kb * 32, KC, cbuf, na, nb);
        if (n0 != qn0) {   /* a new channel block: its output stage and fb = bias - zp_in * sum_k w, once */
            for (int b = 0; b < nb; b++) {
                const size_t ch0 = n0 + 8 * (size_t)b;
                nc[b] = N - ch0 < 8 ? (int)(N - ch0) : 8;
                size_t ch[8];
                int32_t bv[8] = {0};
                float sv[8] = {0};
                for (int i = 0; i < 8; i++) {
                    ch[i] = ch0 + (size_t)(i < nc[b] ? i : 0);
                    if (i < nc[b]) bv[i] = J->bias[ch0 + (size_t)i], sv[i] = o->float_out ? o->scale[ch0 + (size_t)i] : 0.0f;
                }
                avx2_i8_rq_init(&q[b], o, ch, nc[b]);
                fb[b] = _mm256_sub_epi32(_mm256_loadu_si256((const __m256i *)(const void *)bv),
                                         _mm256_mullo_epi32(_mm256_set1_epi32(o->zp_in), VN(zsums8)(wb + (size_t)b * Kb * 32, Kb)));
                fs[b] = _mm256_loadu_ps(sv);
            }
            qn0 = n0;
        }
        for (int b = 0; b < nb; b++) {
            const size_t ch0 = n0 + 8 * (size_t)b;
            const int gw = o->float_out ? 8 : 4;   /* rows per store */
            for (size_t j = 0; j < nr; j += (size_t)gw) {
                const int cnt = nr - j < (size_t)gw ? (int)(nr - j) : gw;
                __m256i v[8];
                for (int i = 0; i < cnt; i++)
                    v[i] = _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)(const void *)(cbuf + (j + (size_t)i) * 16 + 8 * b)), fb[b]);
                avx2_i8_store_tile(J->y, 1, N, o, ch0, nc[b], v, cnt, r0 + j, &q[b], fs[b]);
            }
        }
    }
    VN_AMX_END();
}

/* rows x K times the packed W[N][K] (layout 1 or 2): the rows core of the Gemm / MatMul entry points
 * (kernels/avxvnni/conv_i8.c) in the AMX compile */
VN_TARGET static void VN(rows)(const dse_ctx *cx, const dse_node *n, const int8_t *x, size_t rows, size_t K,
                               const int8_t *w, size_t N, const int32_t *bias, const dse_i8_out *o, void *y) {
    (void)n;
    VN(amx_rows_job) J = {cx, x, w, bias, o, y, rows, K, N, (rows + 31) / 32};
    const size_t units = J.RB * ((N + 15) / 16);
    dse__parallel(cx, units, dse__grain(units, (uint64_t)rows * K * N), VN(amx_rows_task), &J);
}

#undef VN_AMX_ROWS_BEGIN
#undef VN_AMX_BEGIN
#undef VN_AMX_END
