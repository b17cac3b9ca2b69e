/* avx512vnni/zmm_core.h: the 512-bit parts of the VNNI GEMM core (included by kernels/avxvnni/conv_i8.c
 * in its DSE_VNNI_512 compile, kernels/avx512vnni/conv_i8.c): the zmm helpers (or their ymm-pair
 * emulation), the 16-channel x 1-16-column microkernels and the 16-lane int8 output stage. Not a
 * standalone header: it uses that file's VN() names and includes. */
/* -- the 512-bit microkernel (AVX512-VNNI only) --------------------------------------------------- *
 * 16 channels (two 8-channel weight blocks side by side in one zmm: the first `wstep` bytes
 * before the second, vinserti64x4) x NR (1-16) columns, i.e. up to four column groups of the
 * byte tile (group g at a + 4g*Kp; each full group holds 4 columns x 4 k per k-block, the
 * tile's last group nr columns), in up to 16 zmm accumulators; per k-block one weight zmm, one
 * 4-byte broadcast and one vpdpbusd per column. The same products summed into the same int32
 * lanes (modulo 2^32) as the 256-bit kernel's, in another order of k-blocks' additions only:
 * the wrapped sums are the same integers. out[j] = channels 0-7 of column j, out[16 + j]
 * channels 8-15. NB 1: the second block is zero (not read). The channel sums of the weights
 * (fb) come from VN(zsums8), once per band and block, not from the first column call.
 * The emulation build (-DDSE_EMULATE_VNNI, AVX2) runs the same code on pairs of ymm halves. */
#if defined(DSE_EMULATE_VNNI)
typedef struct { __m256i lo, hi; } VN(z);
#define VZ VN(z)
VN_TARGET static inline VZ VN(z_zero)(void) { VZ r = {_mm256_setzero_si256(), _mm256_setzero_si256()}; return r; }
VN_TARGET static inline VZ VN(z_w)(const int8_t *p, size_t wstep, int nb) {
    VZ r = {_mm256_loadu_si256((const __m256i *)(const void *)p),
            nb > 1 ? _mm256_loadu_si256((const __m256i *)(const void *)(p + wstep)) : _mm256_setzero_si256()};
    return r;
}
VN_TARGET static inline VZ VN(z_bcast)(const uint8_t *p) {
    const __m256i x = _mm256_broadcastd_epi32(_mm_loadu_si32(p));
    VZ r = {x, x};
    return r;
}
VN_TARGET static inline VZ VN(z_ones)(void) { VZ r = {_mm256_set1_epi8(1), _mm256_set1_epi8(1)}; return r; }
VN_TARGET static inline VZ VN(z_dp)(VZ acc, VZ x, VZ w) {
    VZ r = {VN_DPBUSD(acc.lo, x.lo, w.lo), VN_DPBUSD(acc.hi, x.hi, w.hi)};
    return r;
}
#define VZ_LO(v) ((v).lo)
#define VZ_HI(v) ((v).hi)
#else
#define VZ __m512i
VN_TARGET static inline VZ VN(z_zero)(void) { return _mm512_setzero_si512(); }
VN_TARGET static inline VZ VN(z_w)(const int8_t *p, size_t wstep, int nb) {
    const __m512i lo = _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(const void *)p));
    return nb > 1 ? _mm512_inserti64x4(lo, _mm256_loadu_si256((const __m256i *)(const void *)(p + wstep)), 1)
                  : _mm512_inserti64x4(_mm512_setzero_si512(), _mm512_castsi512_si256(lo), 0);
}
VN_TARGET static inline VZ VN(z_bcast)(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);   /* vpbroadcastd zmm, m32: a load, no shuffle */
}
VN_TARGET static inline VZ VN(z_ones)(void) { return _mm512_set1_epi8(1); }
VN_TARGET static inline VZ VN(z_dp)(VZ acc, VZ x, VZ w) { return _mm512_dpbusd_epi32(acc, x, w); }
#define VZ_LO(v) _mm512_castsi512_si256(v)
#define VZ_HI(v) _mm512_extracti64x4_epi64(v, 1)
#endif

VN_TARGET static inline __attribute__((always_inline)) void VN(mkz_body)(const uint8_t *a, size_t Kp, const int8_t *wb,
                                                                         size_t wstep, size_t Kb, __m256i *out,
                                                                         const int NB, const int NR) {
    /* column j: group j / 4 (stride 4 * (its column count) bytes per k-block), slot j % 4 */
    const uint8_t *p0 = a, *p1 = a + 4 * Kp, *p2 = a + 8 * Kp, *p3 = a + 12 * Kp;
    const size_t st0 = 4 * (size_t)(NR > 4 ? 4 : NR), st1 = 4 * (size_t)(NR > 8 ? 4 : NR - 4),
                 st2 = 4 * (size_t)(NR > 12 ? 4 : NR - 8), st3 = 4 * (size_t)(NR - 12);
    VZ c0 = VN(z_zero)(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0,
       c11 = c0, c12 = c0, c13 = c0, c14 = c0, c15 = c0;
    for (size_t kb = 0; kb < Kb; kb++, wb += 32) {
        const VZ w = VN(z_w)(wb, wstep, NB);
#define VN_ZCOL(j, G, sl)                                                         \
    if (NR > j) c##j = VN(z_dp)(c##j, VN(z_bcast)(p##G + kb * st##G + 4 * sl), w);
        VN_ZCOL(0, 0, 0) VN_ZCOL(1, 0, 1) VN_ZCOL(2, 0, 2) VN_ZCOL(3, 0, 3)
        VN_ZCOL(4, 1, 0) VN_ZCOL(5, 1, 1) VN_ZCOL(6, 1, 2) VN_ZCOL(7, 1, 3)
        VN_ZCOL(8, 2, 0) VN_ZCOL(9, 2, 1) VN_ZCOL(10, 2, 2) VN_ZCOL(11, 2, 3)
        VN_ZCOL(12, 3, 0) VN_ZCOL(13, 3, 1) VN_ZCOL(14, 3, 2) VN_ZCOL(15, 3, 3)
#undef VN_ZCOL
    }
#define VN_ZOUT(j)                                  \
    if (NR > j) {                                   \
        out[j] = VZ_LO(c##j);                       \
        if (NB > 1) out[16 + j] = VZ_HI(c##j);      \
    }
    VN_ZOUT(0) VN_ZOUT(1) VN_ZOUT(2) VN_ZOUT(3) VN_ZOUT(4) VN_ZOUT(5) VN_ZOUT(6) VN_ZOUT(7)
    VN_ZOUT(8) VN_ZOUT(9) VN_ZOUT(10) VN_ZOUT(11) VN_ZOUT(12) VN_ZOUT(13) VN_ZOUT(14) VN_ZOUT(15)
#undef VN_ZOUT
}

/* 64 consecutive bytes as one zmm (a group block of the pixels-in-lanes tile; two k-blocks of weights) */
#if defined(DSE_EMULATE_VNNI)
#define VN_ZLOAD64(p) VN(z_load64)(p)
VN_TARGET static inline VZ VN(z_load64)(const uint8_t *p) {
    VZ r = {_mm256_loadu_si256((const __m256i *)(const void *)p), _mm256_loadu_si256((const __m256i *)(const void *)(p + 32))};
    return r;
}
#else
#define VN_ZLOAD64(p) _mm512_loadu_si512((const void *)(p))
#endif

/* The channel sums of one 8-channel weight block over Kb k-blocks (vpdpbusd against bytes 1), two
 * consecutive k-blocks per 64-byte load, four independent chains (a band's correction, once per
 * tile: a single chain of Kb dependent vpdpbusd took 8 % of ResNet-50; both cores) */
VN_TARGET static __m256i VN(zsums8)(const int8_t *wb, size_t Kb) {
    const VZ ones = VN(z_ones)();
    VZ s0 = VN(z_zero)(), s1 = s0, s2 = s0, s3 = s0;
    size_t kb = 0;
    const uint8_t *w = (const uint8_t *)wb;
    for (; kb + 8 <= Kb; kb += 8, w += 256) {
        s0 = VN(z_dp)(s0, ones, VN_ZLOAD64(w));
        s1 = VN(z_dp)(s1, ones, VN_ZLOAD64(w + 64));
        s2 = VN(z_dp)(s2, ones, VN_ZLOAD64(w + 128));
        s3 = VN(z_dp)(s3, ones, VN_ZLOAD64(w + 192));
    }
    for (; kb + 2 <= Kb; kb += 2, w += 64) s0 = VN(z_dp)(s0, ones, VN_ZLOAD64(w));
    if (kb < Kb) s1 = VN(z_dp)(s1, ones, VN(z_w)((const int8_t *)w, 0, 1));
    /* (vpdpbusd's unsigned operand is the bytes 1, its signed one the weights) */
    const __m256i a = _mm256_add_epi32(_mm256_add_epi32(VZ_LO(s0), VZ_HI(s0)), _mm256_add_epi32(VZ_LO(s1), VZ_HI(s1)));
    const __m256i b = _mm256_add_epi32(_mm256_add_epi32(VZ_LO(s2), VZ_HI(s2)), _mm256_add_epi32(VZ_LO(s3), VZ_HI(s3)));
    return _mm256_add_epi32(a, b);
}

#define VN_MKZ(NR)                                                                                                 \
    VN_TARGET __attribute__((unused)) static void VN(mkz1_##NR)(const uint8_t *a, size_t Kp, const int8_t *wb,       \
                                                                size_t wstep, size_t Kb, __m256i *out) {             \
        VN(mkz_body)(a, Kp, wb, wstep, Kb, out, 1, NR);                                                              \
    }                                                                                                                \
    VN_TARGET __attribute__((unused)) static void VN(mkz2_##NR)(const uint8_t *a, size_t Kp, const int8_t *wb,       \
                                                                size_t wstep, size_t Kb, __m256i *out) {             \
        VN(mkz_body)(a, Kp, wb, wstep, Kb, out, 2, NR);                                                              \
    }
VN_MKZ(1) VN_MKZ(2) VN_MKZ(3) VN_MKZ(4) VN_MKZ(5) VN_MKZ(6) VN_MKZ(7) VN_MKZ(8)
VN_MKZ(9) VN_MKZ(10) VN_MKZ(11) VN_MKZ(12) VN_MKZ(13) VN_MKZ(14) VN_MKZ(15) VN_MKZ(16)
#undef VN_MKZ

#if !defined(DSE_EMULATE_VNNI)
/* The main case (16 channels x 16 columns, no weight sums) in assembly, as the W4 kernels: gcc 12
 * copies every accumulator each k-block and spills two (vpdpbusd's tied operand). Registers:
 * zmm0-15 the sums of columns 0-15, zmm16 the k-block's weights (the two 8-channel blocks, the
 * second `wstep` bytes on), zmm17/18 a column's broadcast bytes. The same operations, the same
 * sums as mkz_body(2, 16). */
#define VN_ZDP(off, base, acc, t)                                                  \
        "vpbroadcastd " #off "(%[" #base "]), %%zmm" #t "\n\t"                   \
        "vpdpbusd %%zmm16, %%zmm" #t ", %%zmm" #acc "\n\t"
#define VN_ZST(j)                                                                  \
        "vmovdqu64 %%ymm" #j ", " #j "*32(%[out])\n\t"                           \
        "vextracti64x4 $1, %%zmm" #j ", (16+" #j ")*32(%[out])\n\t"
VN_TARGET static void VN(mkz2_16_asm)(const uint8_t *a, size_t Kp, const int8_t *wb, size_t wstep, size_t Kb,
                                      __m256i *out) {
    const uint8_t *p1 = a + 4 * Kp, *p2 = a + 8 * Kp, *p3 = a + 12 * Kp;
    __asm__ volatile(
        "vpxord %%zmm0, %%zmm0, %%zmm0\n\t"
        "vpxord %%zmm1, %%zmm1, %%zmm1\n\t"
        "vpxord %%zmm2, %%zmm2, %%zmm2\n\t"
        "vpxord %%zmm3, %%zmm3, %%zmm3\n\t"
        "vpxord %%zmm4, %%zmm4, %%zmm4\n\t"
        "vpxord %%zmm5, %%zmm5, %%zmm5\n\t"
        "vpxord %%zmm6, %%zmm6, %%zmm6\n\t"
        "vpxord %%zmm7, %%zmm7, %%zmm7\n\t"
        "vpxord %%zmm8, %%zmm8, %%zmm8\n\t"
        "vpxord %%zmm9, %%zmm9, %%zmm9\n\t"
        "vpxord %%zmm10, %%zmm10, %%zmm10\n\t"
        "vpxord %%zmm11, %%zmm11, %%zmm11\n\t"
        "vpxord %%zmm12, %%zmm12, %%zmm12\n\t"
        "vpxord %%zmm13, %%zmm13, %%zmm13\n\t"
        "vpxord %%zmm14, %%zmm14, %%zmm14\n\t"
        "vpxord %%zmm15, %%zmm15, %%zmm15\n\t"
        "test %[kb], %[kb]\n\t"
        "jz 2f\n\t"
        ".p2align 4\n"
        "1:\n\t"
        "vmovdqu64 (%[w]), %%ymm16\n\t"
        "vinserti64x4 $1, (%[w],%[ws]), %%zmm16, %%zmm16\n\t"
        VN_ZDP(0, p0, 0, 17) VN_ZDP(4, p0, 1, 18) VN_ZDP(8, p0, 2, 17) VN_ZDP(12, p0, 3, 18)
        VN_ZDP(0, p1, 4, 17) VN_ZDP(4, p1, 5, 18) VN_ZDP(8, p1, 6, 17) VN_ZDP(12, p1, 7, 18)
        VN_ZDP(0, p2, 8, 17) VN_ZDP(4, p2, 9, 18) VN_ZDP(8, p2, 10, 17) VN_ZDP(12, p2, 11, 18)
        VN_ZDP(0, p3, 12, 17) VN_ZDP(4, p3, 13, 18) VN_ZDP(8, p3, 14, 17) VN_ZDP(12, p3, 15, 18)
        "add $32, %[w]\n\t"
        "add $16, %[p0]\n\t"
        "add $16, %[p1]\n\t"
        "add $16, %[p2]\n\t"
        "add $16, %[p3]\n\t"
        "dec %[kb]\n\t"
        "jnz 1b\n"
        "2:\n\t"
        VN_ZST(0) VN_ZST(1) VN_ZST(2) VN_ZST(3) VN_ZST(4) VN_ZST(5) VN_ZST(6) VN_ZST(7)
        VN_ZST(8) VN_ZST(9) VN_ZST(10) VN_ZST(11) VN_ZST(12) VN_ZST(13) VN_ZST(14) VN_ZST(15)
        "vzeroupper\n\t"
        : [w] "+r"(wb), [p0] "+r"(a), [p1] "+r"(p1), [p2] "+r"(p2), [p3] "+r"(p3), [kb] "+r"(Kb)
        : [out] "r"(out), [ws] "r"(wstep)
        : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12",
          "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "memory", "cc");
}
#undef VN_ZDP
#undef VN_ZST
#define VN_MKZ2_16 VN(mkz2_16_asm)
#else
#define VN_MKZ2_16 VN(mkz2_16)
#endif

typedef void (*VN(mkz_fn))(const uint8_t *, size_t, const int8_t *, size_t, size_t, __m256i *);
static const VN(mkz_fn) VN(mkz_tab)[2][16] = {   /* [nb - 1][nr - 1] */
    {VN(mkz1_1), VN(mkz1_2), VN(mkz1_3), VN(mkz1_4), VN(mkz1_5), VN(mkz1_6), VN(mkz1_7), VN(mkz1_8), VN(mkz1_9), VN(mkz1_10), VN(mkz1_11), VN(mkz1_12), VN(mkz1_13), VN(mkz1_14), VN(mkz1_15), VN(mkz1_16)},
    {VN(mkz2_1), VN(mkz2_2), VN(mkz2_3), VN(mkz2_4), VN(mkz2_5), VN(mkz2_6), VN(mkz2_7), VN(mkz2_8), VN(mkz2_9), VN(mkz2_10), VN(mkz2_11), VN(mkz2_12), VN(mkz2_13), VN(mkz2_14), VN(mkz2_15), VN_MKZ2_16}};
#undef VN_MKZ2_16
#define VN_CW 16   /* columns per microkernel call */

#if !defined(DSE_EMULATE_VNNI)
/* The int8 output stage of a whole 16-channel x 16-column call (both weight blocks full, the
 * fast requantisation form for both: every shift >= 31), 16 lanes at a time: the AVX2 form of
 * avx2_i8_requant (i8_avx2.h) on zmm, lane for lane the same operations (the two bands' ymm
 * parameters side by side), vpmovdb (exact: the values are already in [qmin, qmax]); then per
 * column 16 channel bytes: a Gemm/MatMul row stores them as they are, a Conv (NCHW) needs each
 * channel's 16 columns, a 16x16 byte transpose (4 rounds of unpacks). */
typedef struct VN(zrq) { __m512i M, Mo, sh_e, sh_o, L, nL, C_e, C_o, zpB, qmin, qmax, fb; } VN(zrq);
#define VN_Z2(a, b) _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1)
VN_TARGET static inline void VN(zrq_init)(VN(zrq) *z, const avx2_i8_rq *q, const __m256i *fb) {
    z->M = VN_Z2(q[0].M, q[1].M), z->Mo = VN_Z2(q[0].Mo, q[1].Mo), z->sh_e = VN_Z2(q[0].sh_e, q[1].sh_e);
    z->sh_o = VN_Z2(q[0].sh_o, q[1].sh_o), z->L = VN_Z2(q[0].L, q[1].L), z->nL = VN_Z2(q[0].nL, q[1].nL);
    z->C_e = VN_Z2(q[0].C_e, q[1].C_e), z->C_o = VN_Z2(q[0].C_o, q[1].C_o), z->zpB = VN_Z2(q[0].zpB, q[1].zpB);
    z->qmin = VN_Z2(q[0].qmin, q[1].qmin), z->qmax = VN_Z2(q[0].qmax, q[1].qmax), z->fb = VN_Z2(fb[0], fb[1]);
}
VN_TARGET static inline __m128i VN(zrq_bytes)(const VN(zrq) *z, __m256i lo, __m256i hi) {
    __m512i acc = _mm512_add_epi32(VN_Z2(lo, hi), z->fb);
    acc = _mm512_min_epi32(_mm512_max_epi32(acc, z->nL), z->L);
    __m512i pe = _mm512_mul_epi32(acc, z->M), po = _mm512_mul_epi32(_mm512_srli_epi64(acc, 32), z->Mo);
    pe = _mm512_srlv_epi64(_mm512_add_epi64(pe, z->C_e), z->sh_e);
    po = _mm512_srlv_epi64(_mm512_add_epi64(po, z->C_o), z->sh_o);
    __m512i r = _mm512_add_epi32(_mm512_mask_blend_epi32(0xAAAA, pe, _mm512_slli_epi64(po, 32)), z->zpB);
    r = _mm512_min_epi32(_mm512_max_epi32(r, z->qmin), z->qmax);
    return _mm512_cvtepi32_epi8(r);
}
VN_TARGET static void VN(zstore16)(const VN(zrq) *z, const __m256i *acc, int8_t *y, size_t ys_r, size_t ys_p) {
    __m128i r[16];
    for (int j = 0; j < 16; j++) r[j] = VN(zrq_bytes)(z, acc[j], acc[16 + j]);
    if (ys_p != 1) {   /* Gemm/MatMul: row j holds the 16 channels */
        for (int j = 0; j < 16; j++) _mm_storeu_si128((__m128i *)(void *)(y + (size_t)j * ys_p), r[j]);
        return;
    }
    __m128i t[16], u[16], v[16];
    for (int j = 0; j < 16; j += 2) t[j] = _mm_unpacklo_epi8(r[j], r[j + 1]), t[j + 1] = _mm_unpackhi_epi8(r[j], r[j + 1]);
    /* t[2i] / t[2i+1]: rows 2i, 2i+1, channels 0-7 / 8-15 */
    for (int R = 0; R < 4; R++) {   /* rows 4R..4R+3: u[4R + q] = channels 4q..4q+3 x those 4 rows */
        const __m128i a0 = t[4 * R], a1 = t[4 * R + 1], b0 = t[4 * R + 2], b1 = t[4 * R + 3];
        u[4 * R] = _mm_unpacklo_epi16(a0, b0), u[4 * R + 1] = _mm_unpackhi_epi16(a0, b0);
        u[4 * R + 2] = _mm_unpacklo_epi16(a1, b1), u[4 * R + 3] = _mm_unpackhi_epi16(a1, b1);
    }
    for (int P = 0; P < 2; P++)   /* rows 8P..8P+7: v[8P + 2q + h] = channels 4q+2h, 4q+2h+1 */
        for (int q = 0; q < 4; q++) {
            const __m128i a = u[8 * P + q], b = u[8 * P + 4 + q];
            v[8 * P + 2 * q] = _mm_unpacklo_epi32(a, b), v[8 * P + 2 * q + 1] = _mm_unpackhi_epi32(a, b);
        }
    for (int i = 0; i < 8; i++) {   /* channels 2i, 2i+1: rows 0-7 from v[i], 8-15 from v[8 + i] */
        _mm_storeu_si128((__m128i *)(void *)(y + (size_t)(2 * i) * ys_r), _mm_unpacklo_epi64(v[i], v[8 + i]));
        _mm_storeu_si128((__m128i *)(void *)(y + (size_t)(2 * i + 1) * ys_r), _mm_unpackhi_epi64(v[i], v[8 + i]));
    }
}
#undef VN_Z2
#define VN_ZSTORE 1
#endif
