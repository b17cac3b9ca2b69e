/* avx512vnni/conv_px.h: the avx512vnni Conv with pixels in lanes (included by kernels/avxvnni/conv_i8.c
 * in its DSE_VNNI_512 compile, after the GEMM core and the Conv job it uses). Not a standalone
 * header: it uses that file's VN() names, zmm_core.h's helpers and its includes. */
/* -- avx512vnni Conv: pixels in lanes -------------------------------------------------------------
 * A Conv's output is NCHW: each channel's pixels are contiguous. With 16 pixels in the lanes of a
 * zmm (one column group of the tile: 16 columns x 4 k per k-block, 64 bytes, u = x ^ 0x80) and a
 * channel's 4 weight bytes of the k-block broadcast from the packed layout (layout 1 holds them as
 * one dword of the 8-channel block), vpdpbusd sums the same products into the same int32 (pixel,
 * channel) sums as the channels-in-lanes core above; each channel's results are then 16
 * consecutive output bytes (no transpose). Microkernel: the 8 channels of one weight block x up to
 * 3 column groups (48 pixels) in 24 zmm accumulators, per k-block 3 loads of 64 bytes, 8 weight
 * broadcasts and 24 vpdpbusd (11 loads per 24 products' instructions, against 19 per 16 in the
 * 16 x 16 core). Tile: T columns rounded up to 16 (the last group's extra columns are computed
 * from whatever the stage holds and never stored), group g at g * Kb * 64 bytes. The correction
 * fb = bias - (128 + zp_in) * sum_k w per channel (VN(zsums8)), the output stage per channel:
 * the requantisation rule in int64 lanes (vpmuldq, vpsravq: exact for every shift) or float_out
 * as REF. Used for tiles of at least 16 columns; smaller images take the core above. */
#define VN_PXG 3   /* column groups per microkernel call */

/* 16 columns x 4 k as one 64-byte group block (VN(put16)'s interleave, stored in a row). Written out
 * rather than through VN(put16)'s array: from an array gcc emits one 64-byte store, with which the
 * packing took 3x as long (perf, ResNet-50 int8) */
VN_TARGET static inline void VN(put16px)(uint8_t *dst, __m128i r0, __m128i r1, __m128i r2, __m128i r3) {
    const __m128i flip = _mm_set1_epi8((char)0x80);
    const __m128i t01l = _mm_unpacklo_epi8(r0, r1), t01h = _mm_unpackhi_epi8(r0, r1);
    const __m128i t23l = _mm_unpacklo_epi8(r2, r3), t23h = _mm_unpackhi_epi8(r2, r3);
    _mm_storeu_si128((__m128i *)(void *)dst, _mm_xor_si128(_mm_unpacklo_epi16(t01l, t23l), flip));
    _mm_storeu_si128((__m128i *)(void *)(dst + 16), _mm_xor_si128(_mm_unpackhi_epi16(t01l, t23l), flip));
    _mm_storeu_si128((__m128i *)(void *)(dst + 32), _mm_xor_si128(_mm_unpacklo_epi16(t01h, t23h), flip));
    _mm_storeu_si128((__m128i *)(void *)(dst + 48), _mm_xor_si128(_mm_unpackhi_epi16(t01h, t23h), flip));
}

#if defined(DSE_VNNI_AMX)
VN_TARGET static void VN(amx_pack_band)(uint8_t *a, const VN(conv_job) *J, const int8_t *xb, size_t p0, size_t T,
                                        int8_t *band);
#endif

/* The tile of image xb, columns p0..p0+T-1 (T rounded up to 16 in the layout) */
VN_TARGET static void VN(pack_conv_px)(uint8_t *a, const VN(conv_job) *J, const int8_t *xb, size_t p0, size_t T) {
    const dse_i8_geom *g = J->g;
    const size_t K = J->G.K, Kb = J->Kt, G16 = (T + 15) / 16;   /* (Kb: the tile's k-blocks, J->Kt) */
    const int zp = J->G.o->zp_in;
    const size_t isz = (size_t)(g->in[0] * g->in[1] * g->in[2]);
    int8_t pad[16];
    memset(pad, zp, 16);
    if (J->direct) {   /* k-row c = channel c's pixels p0.. (contiguous) */
        for (size_t kb = 0; kb < Kb; kb++) {
            const int8_t *src[4];
            for (size_t c = 0; c < 4; c++) src[c] = 4 * kb + c < K ? xb + (4 * kb + c) * isz + p0 : NULL;
            for (size_t q = 0; q < G16; q++) {
                __m128i r[4];
                if (16 * q + 16 <= T) {
                    for (int c = 0; c < 4; c++)
                        r[c] = _mm_loadu_si128((const __m128i *)(const void *)(src[c] ? src[c] + 16 * q : pad));
                } else {
                    int8_t tmp[4][16];
                    for (int c = 0; c < 4; c++) {
                        memset(tmp[c], zp, 16);
                        if (src[c]) memcpy(tmp[c], src[c] + 16 * q, T - 16 * q);
                        r[c] = _mm_loadu_si128((const __m128i *)(const void *)tmp[c]);
                    }
                }
                VN(put16px)(a + (q * Kb + kb) * 64, r[0], r[1], r[2], r[3]);
            }
        }
        return;
    }
    int8_t *stage = (int8_t *)(a + G16 * 16 * Kb * 4);
#if defined(DSE_VNNI_AMX)
    if (J->Wp) {   /* the AMX band (kernels/amx/tile_core.h): every k-row one linear run of the padded rows */
        VN(amx_pack_band)(a, J, xb, p0, T, stage);
        return;
    }
#endif
    const size_t SR = (T + 31) / 16 * 16;   /* a stage row: T bytes, then up to 16 more read */
    for (size_t c = 0; c < 4; c++) memset(stage + c * SR + T, zp, SR - T);   /* (the columns never stored) */
    const avx2_i8_pix pix = avx2_i8_pix_of(g, p0);
    avx2_i8_tap tap = avx2_i8_tap_of(g, 0);
    for (size_t kb = 0; kb < Kb; kb++) {
        if (4 * kb >= K) {   /* (AMX's k-blocks past K: zero weights; their bytes only need to be set) */
            for (size_t q = 0; q < G16; q++) memset(a + (q * Kb + kb) * 64, 0, 64);
            continue;
        }
        avx2_i8_stage_kblock(stage, SR, g, xb, &tap, pix, kb, K, T, zp);
        for (size_t q = 0; q < G16; q++)
            VN(put16px)(a + (q * Kb + kb) * 64, _mm_loadu_si128((const __m128i *)(const void *)(stage + 16 * q)),
                        _mm_loadu_si128((const __m128i *)(const void *)(stage + SR + 16 * q)),
                        _mm_loadu_si128((const __m128i *)(const void *)(stage + 2 * SR + 16 * q)),
                        _mm_loadu_si128((const __m128i *)(const void *)(stage + 3 * SR + 16 * q)));
    }
}

#if !defined(DSE_VNNI_AMX)   /* (the AMX compile has its own microkernel: kernels/amx/tile_core.h) */
/* out[i * VN_PXG + g] = the sums of channel i (< 8) over the column group g (< NG) */
VN_TARGET static inline __attribute__((always_inline)) void VN(mkpx_body)(const uint8_t *a, size_t gstep, const int8_t *wb,
                                                                          size_t Kb, VZ *out, const int NG) {
    VZ c[8][VN_PXG];
    for (int i = 0; i < 8; i++)
        for (int g = 0; g < NG; g++) c[i][g] = VN(z_zero)();
    for (size_t kb = 0; kb < Kb; kb++, wb += 32, a += 64) {
        VZ x[VN_PXG];
        for (int g = 0; g < NG; g++) x[g] = VN_ZLOAD64(a + (size_t)g * gstep);
        for (int i = 0; i < 8; i++) {
            const VZ w = VN(z_bcast)((const uint8_t *)(wb + 4 * i));
            for (int g = 0; g < NG; g++) c[i][g] = VN(z_dp)(c[i][g], x[g], w);
        }
    }
    for (int i = 0; i < 8; i++)
        for (int g = 0; g < NG; g++) out[i * VN_PXG + g] = c[i][g];
}
#if defined(DSE_EMULATE_VNNI)
VN_TARGET static void VN(mkpx1)(const uint8_t *a, size_t gstep, const int8_t *wb, size_t Kb, VZ *out) {
    VN(mkpx_body)(a, gstep, wb, Kb, out, 1);
}
VN_TARGET static void VN(mkpx2)(const uint8_t *a, size_t gstep, const int8_t *wb, size_t Kb, VZ *out) {
    VN(mkpx_body)(a, gstep, wb, Kb, out, 2);
}
VN_TARGET static void VN(mkpx3)(const uint8_t *a, size_t gstep, const int8_t *wb, size_t Kb, VZ *out) {
    VN(mkpx_body)(a, gstep, wb, Kb, out, 3);
}
#else
/* 8 channels x NG (1-3) groups in assembly (gcc keeps the intrinsics' accumulators of NG < 3 in
 * memory and copies the tied ones of NG 3): zmm(NG * i + g) the sums of channel i, group g;
 * zmm24-26 the groups' 64 bytes; zmm27/28 a channel's broadcast weights. The same operations as
 * mkpx_body(NG); out[3 * i + g] as there. */
VN_TARGET static void VN(mkpx1)(const uint8_t *a, size_t gstep, const int8_t *wb, size_t Kb, VZ *out) {
    (void)gstep;
    __asm__ volatile(
        "vpxord %%zmm0, %%zmm0, %%zmm0\n\t"
        "vpxord %%zmm1, %%zmm1, %%zmm1\n\t"
        "vpxord %%zmm2, %%zmm2, %%zmm2\n\t"
        "vpxord %%zmm3, %%zmm3, %%zmm3\n\t"
        "vpxord %%zmm4, %%zmm4, %%zmm4\n\t"
        "vpxord %%zmm5, %%zmm5, %%zmm5\n\t"
        "vpxord %%zmm6, %%zmm6, %%zmm6\n\t"
        "vpxord %%zmm7, %%zmm7, %%zmm7\n\t"
        "test %[kb], %[kb]\n\t"
        "jz 2f\n\t"
        ".p2align 4\n"
        "1:\n\t"
        "vmovdqu64 (%[a0]), %%zmm24\n\t"
        "vpbroadcastd 0(%[w]), %%zmm27\n\t"
        "vpdpbusd %%zmm27, %%zmm24, %%zmm0\n\t"
        "vpbroadcastd 4(%[w]), %%zmm28\n\t"
        "vpdpbusd %%zmm28, %%zmm24, %%zmm1\n\t"
        "vpbroadcastd 8(%[w]), %%zmm27\n\t"
        "vpdpbusd %%zmm27, %%zmm24, %%zmm2\n\t"
        "vpbroadcastd 12(%[w]), %%zmm28\n\t"
        "vpdpbusd %%zmm28, %%zmm24, %%zmm3\n\t"
        "vpbroadcastd 16(%[w]), %%zmm27\n\t"
        "vpdpbusd %%zmm27, %%zmm24, %%zmm4\n\t"
        "vpbroadcastd 20(%[w]), %%zmm28\n\t"
        "vpdpbusd %%zmm28, %%zmm24, %%zmm5\n\t"
        "vpbroadcastd 24(%[w]), %%zmm27\n\t"
        "vpdpbusd %%zmm27, %%zmm24, %%zmm6\n\t"
        "vpbroadcastd 28(%[w]), %%zmm28\n\t"
        "vpdpbusd %%zmm28, %%zmm24, %%zmm7\n\t"
        "add $32, %[w]\n\t"
        "add $64, %[a0]\n\t"
        "dec %[kb]\n\t"
        "jnz 1b\n"
        "2:\n\t"
        "vmovdqu64 %%zmm0, 0(%[out])\n\t"
        "vmovdqu64 %%zmm1, 192(%[out])\n\t"
        "vmovdqu64 %%zmm2, 384(%[out])\n\t"
        "vmovdqu64 %%zmm3, 576(%[out])\n\t"
        "vmovdqu64 %%zmm4, 768(%[out])\n\t"
        "vmovdqu64 %%zmm5, 960(%[out])\n\t"
        "vmovdqu64 %%zmm6, 1152(%[out])\n\t"
        "vmovdqu64 %%zmm7, 1344(%[out])\n\t"
        "vzeroupper\n\t"
        : [w] "+r"(wb), [a0] "+r"(a), [kb] "+r"(Kb)
        : [out] "r"(out)
        : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm24", "xmm27", "xmm28", "memory", "cc");
}
VN_TARGET static void VN(mkpx2)(const uint8_t *a, size_t gstep, const int8_t *wb, size_t Kb, VZ *out) {
    const uint8_t *a1 = a + 1 * gstep;
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
        "vmovdqu64 (%[a0]), %%zmm24\n\t"
        "vmovdqu64 (%[a1]), %%zmm25\n\t"
        "vpbroadcastd 0(%[w]), %%zmm27\n\t"
        "vpdpbusd %%zmm27, %%zmm24, %%zmm0\n\t"
        "vpdpbusd %%zmm27, %%zmm25, %%zmm1\n\t"
        "vpbroadcastd 4(%[w]), %%zmm28\n\t"
        "vpdpbusd %%zmm28, %%zmm24, %%zmm2\n\t"
        "vpdpbusd %%zmm28, %%zmm25, %%zmm3\n\t"
        "vpbroadcastd 8(%[w]), %%zmm27\n\t"
        "vpdpbusd %%zmm27, %%zmm24, %%zmm4\n\t"
        "vpdpbusd %%zmm27, %%zmm25, %%zmm5\n\t"
        "vpbroadcastd 12(%[w]), %%zmm28\n\t"
        "vpdpbusd %%zmm28, %%zmm24, %%zmm6\n\t"
        "vpdpbusd %%zmm28, %%zmm25, %%zmm7\n\t"
        "vpbroadcastd 16(%[w]), %%zmm27\n\t"
        "vpdpbusd %%zmm27, %%zmm24, %%zmm8\n\t"
        "vpdpbusd %%zmm27, %%zmm25, %%zmm9\n\t"
        "vpbroadcastd 20(%[w]), %%zmm28\n\t"
        "vpdpbusd %%zmm28, %%zmm24, %%zmm10\n\t"
        "vpdpbusd %%zmm28, %%zmm25, %%zmm11\n\t"
        "vpbroadcastd 24(%[w]), %%zmm27\n\t"
        "vpdpbusd %%zmm27, %%zmm24, %%zmm12\n\t"
        "vpdpbusd %%zmm27, %%zmm25, %%zmm13\n\t"
        "vpbroadcastd 28(%[w]), %%zmm28\n\t"
        "vpdpbusd %%zmm28, %%zmm24, %%zmm14\n\t"
        "vpdpbusd %%zmm28, %%zmm25, %%zmm15\n\t"
        "add $32, %[w]\n\t"
        "add $64, %[a0]\n\t"
        "add $64, %[a1]\n\t"
        "dec %[kb]\n\t"
        "jnz 1b\n"
        "2:\n\t"
        "vmovdqu64 %%zmm0, 0(%[out])\n\t"
        "vmovdqu64 %%zmm1, 64(%[out])\n\t"
        "vmovdqu64 %%zmm2, 192(%[out])\n\t"
        "vmovdqu64 %%zmm3, 256(%[out])\n\t"
        "vmovdqu64 %%zmm4, 384(%[out])\n\t"
        "vmovdqu64 %%zmm5, 448(%[out])\n\t"
        "vmovdqu64 %%zmm6, 576(%[out])\n\t"
        "vmovdqu64 %%zmm7, 640(%[out])\n\t"
        "vmovdqu64 %%zmm8, 768(%[out])\n\t"
        "vmovdqu64 %%zmm9, 832(%[out])\n\t"
        "vmovdqu64 %%zmm10, 960(%[out])\n\t"
        "vmovdqu64 %%zmm11, 1024(%[out])\n\t"
        "vmovdqu64 %%zmm12, 1152(%[out])\n\t"
        "vmovdqu64 %%zmm13, 1216(%[out])\n\t"
        "vmovdqu64 %%zmm14, 1344(%[out])\n\t"
        "vmovdqu64 %%zmm15, 1408(%[out])\n\t"
        "vzeroupper\n\t"
        : [w] "+r"(wb), [a0] "+r"(a), [a1] "+r"(a1), [kb] "+r"(Kb)
        : [out] "r"(out)
        : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm24", "xmm25", "xmm27", "xmm28", "memory", "cc");
}
VN_TARGET static void VN(mkpx3)(const uint8_t *a, size_t gstep, const int8_t *wb, size_t Kb, VZ *out) {
    const uint8_t *a1 = a + 1 * gstep, *a2 = a + 2 * gstep;
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
        "vpxord %%zmm16, %%zmm16, %%zmm16\n\t"
        "vpxord %%zmm17, %%zmm17, %%zmm17\n\t"
        "vpxord %%zmm18, %%zmm18, %%zmm18\n\t"
        "vpxord %%zmm19, %%zmm19, %%zmm19\n\t"
        "vpxord %%zmm20, %%zmm20, %%zmm20\n\t"
        "vpxord %%zmm21, %%zmm21, %%zmm21\n\t"
        "vpxord %%zmm22, %%zmm22, %%zmm22\n\t"
        "vpxord %%zmm23, %%zmm23, %%zmm23\n\t"
        "test %[kb], %[kb]\n\t"
        "jz 2f\n\t"
        ".p2align 4\n"
        "1:\n\t"
        "vmovdqu64 (%[a0]), %%zmm24\n\t"
        "vmovdqu64 (%[a1]), %%zmm25\n\t"
        "vmovdqu64 (%[a2]), %%zmm26\n\t"
        "vpbroadcastd 0(%[w]), %%zmm27\n\t"
        "vpdpbusd %%zmm27, %%zmm24, %%zmm0\n\t"
        "vpdpbusd %%zmm27, %%zmm25, %%zmm1\n\t"
        "vpdpbusd %%zmm27, %%zmm26, %%zmm2\n\t"
        "vpbroadcastd 4(%[w]), %%zmm28\n\t"
        "vpdpbusd %%zmm28, %%zmm24, %%zmm3\n\t"
        "vpdpbusd %%zmm28, %%zmm25, %%zmm4\n\t"
        "vpdpbusd %%zmm28, %%zmm26, %%zmm5\n\t"
        "vpbroadcastd 8(%[w]), %%zmm27\n\t"
        "vpdpbusd %%zmm27, %%zmm24, %%zmm6\n\t"
        "vpdpbusd %%zmm27, %%zmm25, %%zmm7\n\t"
        "vpdpbusd %%zmm27, %%zmm26, %%zmm8\n\t"
        "vpbroadcastd 12(%[w]), %%zmm28\n\t"
        "vpdpbusd %%zmm28, %%zmm24, %%zmm9\n\t"
        "vpdpbusd %%zmm28, %%zmm25, %%zmm10\n\t"
        "vpdpbusd %%zmm28, %%zmm26, %%zmm11\n\t"
        "vpbroadcastd 16(%[w]), %%zmm27\n\t"
        "vpdpbusd %%zmm27, %%zmm24, %%zmm12\n\t"
        "vpdpbusd %%zmm27, %%zmm25, %%zmm13\n\t"
        "vpdpbusd %%zmm27, %%zmm26, %%zmm14\n\t"
        "vpbroadcastd 20(%[w]), %%zmm28\n\t"
        "vpdpbusd %%zmm28, %%zmm24, %%zmm15\n\t"
        "vpdpbusd %%zmm28, %%zmm25, %%zmm16\n\t"
        "vpdpbusd %%zmm28, %%zmm26, %%zmm17\n\t"
        "vpbroadcastd 24(%[w]), %%zmm27\n\t"
        "vpdpbusd %%zmm27, %%zmm24, %%zmm18\n\t"
        "vpdpbusd %%zmm27, %%zmm25, %%zmm19\n\t"
        "vpdpbusd %%zmm27, %%zmm26, %%zmm20\n\t"
        "vpbroadcastd 28(%[w]), %%zmm28\n\t"
        "vpdpbusd %%zmm28, %%zmm24, %%zmm21\n\t"
        "vpdpbusd %%zmm28, %%zmm25, %%zmm22\n\t"
        "vpdpbusd %%zmm28, %%zmm26, %%zmm23\n\t"
        "add $32, %[w]\n\t"
        "add $64, %[a0]\n\t"
        "add $64, %[a1]\n\t"
        "add $64, %[a2]\n\t"
        "dec %[kb]\n\t"
        "jnz 1b\n"
        "2:\n\t"
        "vmovdqu64 %%zmm0, 0(%[out])\n\t"
        "vmovdqu64 %%zmm1, 64(%[out])\n\t"
        "vmovdqu64 %%zmm2, 128(%[out])\n\t"
        "vmovdqu64 %%zmm3, 192(%[out])\n\t"
        "vmovdqu64 %%zmm4, 256(%[out])\n\t"
        "vmovdqu64 %%zmm5, 320(%[out])\n\t"
        "vmovdqu64 %%zmm6, 384(%[out])\n\t"
        "vmovdqu64 %%zmm7, 448(%[out])\n\t"
        "vmovdqu64 %%zmm8, 512(%[out])\n\t"
        "vmovdqu64 %%zmm9, 576(%[out])\n\t"
        "vmovdqu64 %%zmm10, 640(%[out])\n\t"
        "vmovdqu64 %%zmm11, 704(%[out])\n\t"
        "vmovdqu64 %%zmm12, 768(%[out])\n\t"
        "vmovdqu64 %%zmm13, 832(%[out])\n\t"
        "vmovdqu64 %%zmm14, 896(%[out])\n\t"
        "vmovdqu64 %%zmm15, 960(%[out])\n\t"
        "vmovdqu64 %%zmm16, 1024(%[out])\n\t"
        "vmovdqu64 %%zmm17, 1088(%[out])\n\t"
        "vmovdqu64 %%zmm18, 1152(%[out])\n\t"
        "vmovdqu64 %%zmm19, 1216(%[out])\n\t"
        "vmovdqu64 %%zmm20, 1280(%[out])\n\t"
        "vmovdqu64 %%zmm21, 1344(%[out])\n\t"
        "vmovdqu64 %%zmm22, 1408(%[out])\n\t"
        "vmovdqu64 %%zmm23, 1472(%[out])\n\t"
        "vzeroupper\n\t"
        : [w] "+r"(wb), [a0] "+r"(a), [a1] "+r"(a1), [a2] "+r"(a2), [kb] "+r"(Kb)
        : [out] "r"(out)
        : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "memory", "cc");
}
#endif

#endif

/* One channel's output stage over ng column groups (cols valid columns from column p): int8 by
 * the requantisation rule (docs/quant-arith.md §4) in int64 lanes, or float_out as REF. vm (the AMX
 * band): group g's valid lanes vm[g], stored one after the other from element voff[g] of yrow
 * (cols unused); NULL: the first cols columns, contiguous. */
VN_TARGET static void VN(px_store)(const dse_i8_out *o, size_t ch, int32_t fb, const VZ *acc, int ng, size_t cols,
                                   void *yrow, const uint16_t *vm, const size_t *voff) {
#if defined(DSE_EMULATE_VNNI)
    avx2_i8_rq q;
    avx2_i8_rq_init1(&q, o, ch);
    const __m256i f = _mm256_set1_epi32(fb);
    const __m256 fs = _mm256_set1_ps(o->float_out ? o->scale[ch] : 0.0f), fmin = _mm256_set1_ps(o->act_min),
                 fmax = _mm256_set1_ps(o->act_max);
    for (int g = 0; g < ng; g++) {
        const __m256i h[2] = {_mm256_add_epi32(acc[g].lo, f), _mm256_add_epi32(acc[g].hi, f)};
        if (vm) {   /* the valid lanes, packed */
            size_t at = voff[g];
            for (int e = 0; e < 2; e++) {
                float tf[8];
                int32_t ti[8];
                if (o->float_out)
                    _mm256_storeu_ps(tf, _mm256_min_ps(fmax, _mm256_max_ps(fmin, _mm256_mul_ps(_mm256_cvtepi32_ps(h[e]), fs))));
                else
                    _mm256_storeu_si256((__m256i *)(void *)ti, avx2_i8_requant(h[e], &q));
                for (int l = 0; l < 8; l++)
                    if (vm[g] >> (8 * e + l) & 1) {
                        if (o->float_out) ((float *)yrow)[at++] = tf[l];
                        else ((int8_t *)yrow)[at++] = (int8_t)ti[l];
                    }
            }
            continue;
        }
        for (int e = 0; e < 2; e++) {
            const size_t c0 = (size_t)(16 * g + 8 * e);
            if (c0 >= cols) break;
            const size_t nv = cols - c0 < 8 ? cols - c0 : 8;
            if (o->float_out) {
                float t[8];
                _mm256_storeu_ps(t, _mm256_min_ps(fmax, _mm256_max_ps(fmin, _mm256_mul_ps(_mm256_cvtepi32_ps(h[e]), fs))));
                memcpy((float *)yrow + c0, t, nv * 4);
            } else {
                int32_t t[8];
                _mm256_storeu_si256((__m256i *)(void *)t, avx2_i8_requant(h[e], &q));
                for (size_t l = 0; l < nv; l++) ((int8_t *)yrow)[c0 + l] = (int8_t)t[l];
            }
        }
    }
#else
    const __m512i f = _mm512_set1_epi32(fb);
    if (o->float_out) {
        const __m512 fs = _mm512_set1_ps(o->scale[ch]), fmin = _mm512_set1_ps(o->act_min), fmax = _mm512_set1_ps(o->act_max);
        for (int g = 0; g < ng; g++) {
            const __m512 v = _mm512_min_ps(fmax, _mm512_max_ps(fmin, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(acc[g], f)), fs)));
            if (vm) {
                _mm512_mask_compressstoreu_ps((float *)yrow + voff[g], (__mmask16)vm[g], v);
                continue;
            }
            const size_t c0 = 16 * (size_t)g, nv = cols - c0 < 16 ? cols - c0 : 16;
            if (nv == 16) _mm512_storeu_ps((float *)yrow + c0, v);
            else _mm512_mask_storeu_ps((float *)yrow + c0, (__mmask16)((1u << nv) - 1), v);
        }
        return;
    }
    const int n = o->shift[ch];
    const __m512i M = _mm512_set1_epi64((uint32_t)o->M[ch]), rnd = _mm512_set1_epi64((int64_t)1 << (n - 1)),
                  sh = _mm512_set1_epi64(n), lo = _mm512_set1_epi64(o->qmin - o->zp_out),
                  hi = _mm512_set1_epi64(o->qmax - o->zp_out), zp = _mm512_set1_epi32(o->zp_out);
    for (int g = 0; g < ng; g++) {
        const __m512i v = _mm512_add_epi32(acc[g], f);   /* the true sum (wrapping: exact, the check's bound) */
        __m512i pe = _mm512_mul_epi32(v, M), po = _mm512_mul_epi32(_mm512_srli_epi64(v, 32), M);
        pe = _mm512_srav_epi64(_mm512_add_epi64(pe, rnd), sh);
        po = _mm512_srav_epi64(_mm512_add_epi64(po, rnd), sh);
        pe = _mm512_min_epi64(_mm512_max_epi64(pe, lo), hi);
        po = _mm512_min_epi64(_mm512_max_epi64(po, lo), hi);
        const __m512i r = _mm512_add_epi32(_mm512_mask_blend_epi32(0xAAAA, pe, _mm512_slli_epi64(po, 32)), zp);
        if (vm) {   /* the valid lanes packed to the front, then as many bytes */
            const __mmask16 mk = (__mmask16)vm[g];
            _mm512_mask_cvtepi32_storeu_epi8((int8_t *)yrow + voff[g], (__mmask16)((1u << __builtin_popcount(mk)) - 1),
                                             _mm512_maskz_compress_epi32(mk, r));
            continue;
        }
        const size_t c0 = 16 * (size_t)g, nv = cols - c0 < 16 ? cols - c0 : 16;
        if (nv == 16) _mm_storeu_si128((__m128i *)(void *)((int8_t *)yrow + c0), _mm512_cvtepi32_epi8(r));
        else _mm512_mask_cvtepi32_storeu_epi8((int8_t *)yrow + c0, (__mmask16)((1u << nv) - 1), r);
    }
#endif
}

#if !defined(DSE_VNNI_AMX)
/* Y[r_begin..r_end)[p0 .. p0 + T) of one image from the pixels-in-lanes tile a (T columns) */
VN_TARGET static void VN(px_tile)(const VN(gemm) *G, const uint8_t *a, size_t T, size_t p0) {
    const size_t Kb = G->Kb, gstep = Kb * 64, G16 = (T + 15) / 16;
    const dse_i8_out *o = G->o;
    const size_t esz = o->float_out ? 4 : 1;
    for (size_t r0 = G->r_begin; r0 < G->r_end; r0 += 8) {
        const int8_t *wb = G->w + (r0 / 8) * Kb * 32;
        const int nc = G->r_end - r0 < 8 ? (int)(G->r_end - r0) : 8;
        int32_t wsum[8], fb[8];
        _mm256_storeu_si256((__m256i *)(void *)wsum, VN(zsums8)(wb, Kb));
        for (int i = 0; i < nc; i++)   /* bias - (128 + zp_in) * sum_k w, wrapping (the total is exact) */
            fb[i] = (int32_t)((uint32_t)G->bias[r0 + (size_t)i] - (uint32_t)(128 + o->zp_in) * (uint32_t)wsum[i]);
        for (size_t q = 0; q < G16; q += VN_PXG) {
            const int ng = G16 - q < VN_PXG ? (int)(G16 - q) : VN_PXG;
            VZ acc[8 * VN_PXG];
            const uint8_t *aq = a + q * gstep;
            if (ng == 3) VN(mkpx3)(aq, gstep, wb, Kb, acc);
            else if (ng == 2) VN(mkpx2)(aq, gstep, wb, Kb, acc);
            else VN(mkpx1)(aq, gstep, wb, Kb, acc);
            const size_t c0 = 16 * q, cols = T - c0 < 16 * (size_t)ng ? T - c0 : 16 * (size_t)ng;
            for (int i = 0; i < nc; i++)
                VN(px_store)(o, r0 + (size_t)i, fb[i], acc + i * VN_PXG, ng, cols,
                             (uint8_t *)G->y + ((r0 + (size_t)i) * G->ys_r + p0 + c0) * esz, NULL, NULL);
        }
    }
}
#endif
