/* cpu.c: which instruction sets this CPU offers the kernel variants (DSE_ISA_*, internal.h).
 *
 * x86-64: cpuid leaf 1 (FMA, F16C, OSXSAVE, AVX) and leaf 7 (AVX2, AVX-512 F/BW/VL/VNNI;
 * subleaf 1: AVX-VNNI), and xgetbv: the OS must save the ymm (and for AVX-512 the opmask and
 * zmm) state, or the instructions fault. AMX (leaf 7 EDX: AMX-TILE, AMX-INT8) also needs the tile
 * state enabled in XCR0 and, on Linux, the process's permission to use it (arch_prctl
 * ARCH_REQ_XCOMP_PERM for XTILEDATA: granted once per process, asking again is harmless; refused,
 * or not Linux: no AMX). arm64: Advanced SIMD is baseline; dot product, i8mm
 * and fp16 arithmetic come from getauxval(AT_HWCAP/AT_HWCAP2) on Linux and Android, and are
 * taken as absent elsewhere (no way to ask without the OS). armv7: HWCAP_NEON. Any other
 * target: REF only. Read on every load (a few instructions): no global state. */
#include "internal.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#if DSE_AMX_OK
/* arch_prctl(ARCH_REQ_XCOMP_PERM 0x1023, XFEATURE_XTILEDATA 18): the raw x86-64 Linux system call
 * (number 158), so that no libc (glibc, musl) needs to declare syscall() in a -std=c11 unit */
static long x86_req_xtiledata(void) {
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "0"(158L), "D"(0x1023L), "S"(18L) : "rcx", "r11", "memory");
    return ret;
}
#endif

#if defined(DSE_EMULATE_VNNI)
/* emulation test builds only: the mask the next load reports (1 AVX-VNNI, 2 AVX512-VNNI, 4 AMX, 0 none),
 * DSE_EMULATE_VNNI to start with; a test sets it (ctypes) before a load, so one build serves
 * every variant */
__attribute__((visibility("default"))) int dse__emulate_vnni_mask = DSE_EMULATE_VNNI;
#endif

static unsigned x86_isas(void) {
    unsigned a, b, c, d, isas = 0;
    if (!__get_cpuid(0, &a, &b, &c, &d) || a < 7) return 0;
    __get_cpuid(1, &a, &b, &c, &d);
    int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, f16c = (c >> 29) & 1;
    if (!osxsave || !avx) return 0;
    unsigned xlo, xhi;
    __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
    (void)xhi;
    int ymm_os = (xlo & 6) == 6, zmm_os = (xlo & 0xe6) == 0xe6;
    __cpuid_count(7, 0, a, b, c, d);
    int avx2 = (b >> 5) & 1, avx512f = (b >> 16) & 1, avx512bw = (b >> 30) & 1, avx512vl = (b >> 31) & 1;
    int vnni512 = (c >> 11) & 1, amx = ((d >> 24) & 1) && ((d >> 25) & 1);   /* AMX-TILE, AMX-INT8 */
    unsigned max7 = a;
    if (ymm_os && avx2 && fma && f16c) isas |= DSE_ISA_BIT(AVX2);
    if (zmm_os && (isas & DSE_ISA_BIT(AVX2)) && avx512f && avx512bw && avx512vl && vnni512) isas |= DSE_ISA_BIT(AVX512VNNI);
    if (max7 >= 1) {
        __cpuid_count(7, 1, a, b, c, d);
        if ((isas & DSE_ISA_BIT(AVX2)) && ((a >> 4) & 1)) isas |= DSE_ISA_BIT(AVXVNNI);
    }
#if DSE_AMX_OK
    /* XCR0 bits 17/18 (XTILECFG, XTILEDATA), then the permission (ARCH_REQ_XCOMP_PERM 0x1023,
     * XFEATURE_XTILEDATA 18) */
    if (amx && (isas & DSE_ISA_BIT(AVX512VNNI)) && ((xlo >> 17) & 3) == 3 &&
        x86_req_xtiledata() == 0)
        isas |= DSE_ISA_BIT(AMX);
#else
    (void)amx;
#endif
#if defined(DSE_EMULATE_VNNI)
    /* test builds only (make EMULATE_VNNI=<mask>): the VNNI kernels are compiled for AVX2 with an
     * exact emulation of vpdpbusd (kernels/avxvnni/vnni_emul.h), and this CPU is said to have the
     * VNNI ISAs of the mask (dse__emulate_vnni_mask: 1 AVX-VNNI, 2 AVX512-VNNI, 4 AMX) when it has AVX2,
     * whatever it really has;
     * mask 0 hides VNNI (a VNNI CPU then runs the AVX2 kernels: timing one against the other) */
    isas &= ~(DSE_ISA_BIT(AVXVNNI) | DSE_ISA_BIT(AVX512VNNI) | DSE_ISA_BIT(AMX));
    if (isas & DSE_ISA_BIT(AVX2)) {
        if (dse__emulate_vnni_mask & 1) isas |= DSE_ISA_BIT(AVXVNNI);
        if (dse__emulate_vnni_mask & 2) isas |= DSE_ISA_BIT(AVX512VNNI);
        if (dse__emulate_vnni_mask & 4) isas |= DSE_ISA_BIT(AMX);   /* (kernels/amx/tile_core.h's emulation) */
    }
#endif
    return isas;
}
#endif

#if (defined(__aarch64__) || defined(__arm__)) && (defined(__linux__) || defined(__ANDROID__))
#include <sys/auxv.h>
#endif

unsigned dse__cpu_isas(void) {
    unsigned isas = DSE_ISA_BIT(REF);
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    isas |= x86_isas();
#elif defined(__aarch64__)
    isas |= DSE_ISA_BIT(NEON);
#if defined(__linux__) || defined(__ANDROID__)
    unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
    if (hw & (1ul << 20)) isas |= DSE_ISA_BIT(NEON_DOTPROD);   /* HWCAP_ASIMDDP */
    if (hw & (1ul << 10)) isas |= DSE_ISA_BIT(NEON_FP16);      /* HWCAP_ASIMDHP */
    if (hw2 & (1ul << 13)) isas |= DSE_ISA_BIT(NEON_I8MM);     /* HWCAP2_I8MM */
#endif
#elif defined(__arm__) && (defined(__linux__) || defined(__ANDROID__))
    if (getauxval(AT_HWCAP) & (1ul << 12)) isas |= DSE_ISA_BIT(NEON);   /* HWCAP_NEON */
#endif
    return isas;
}

const char *dse__isa_name(int isa) {
    static const char names[DSE_ISA_COUNT_][14] = {"ref", "avx2", "avx512vnni", "avxvnni", "neon", "neon-dotprod",
                                                    "neon-i8mm", "neon-fp16", "amx"};
    return isa >= 0 && isa < DSE_ISA_COUNT_ ? names[isa] : "?";
}
