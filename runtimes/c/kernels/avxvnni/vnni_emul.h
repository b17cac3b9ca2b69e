/* avxvnni/vnni_emul.h: an exact AVX2 emulation of vpdpbusd, for testing the VNNI kernels on a
 * CPU without VNNI (neither qemu 7.2 nor 10.0 executes vpdpbusd).
 *
 * vpdpbusd (non-saturating): for each int32 lane i,
 *     acc[i] += a[4i]*b[4i] + a[4i+1]*b[4i+1] + a[4i+2]*b[4i+2] + a[4i+3]*b[4i+3]
 * with a unsigned bytes, b signed bytes, products exact, the sum wrapping modulo 2^32.
 * Emulated exactly: the even and odd bytes of each 16-bit lane widened to int16 (a zero-
 * extended: 0..255; b sign-extended: -128..127), one vpmaddwd per half (|a0*b0 + a2*b2| <=
 * 65280, exact in int32), the two halves and acc added with vpaddd (wrapping, as vpdpbusd).
 * Never vpmaddubsw: its int16 pair sums saturate.
 *
 * Used only in a build with -DDSE_EMULATE_VNNI (make EMULATE_VNNI=<mask>): the VNNI kernel files
 * then compile with the AVX2 target and this function, and src/cpu.c reports the VNNI ISAs of
 * <mask> (1 AVX-VNNI, 2 AVX512-VNNI) on a CPU with AVX2, so the loader chooses those rows. */
#ifndef DSE_AVXVNNI_VNNI_EMUL_H
#define DSE_AVXVNNI_VNNI_EMUL_H

#include <immintrin.h>

DSE_TARGET_AVX2 static inline __m256i dse_vnni_emul_dpbusd(__m256i acc, __m256i a, __m256i b) {
    const __m256i lo8 = _mm256_set1_epi16(0x00ff);
    const __m256i ae = _mm256_and_si256(a, lo8), ao = _mm256_srli_epi16(a, 8);                     /* zero-extended */
    const __m256i be = _mm256_srai_epi16(_mm256_slli_epi16(b, 8), 8), bo = _mm256_srai_epi16(b, 8);   /* sign-extended */
    return _mm256_add_epi32(acc, _mm256_add_epi32(_mm256_madd_epi16(ae, be), _mm256_madd_epi16(ao, bo)));
}

#endif
