/* isa.h: compiling an optimised kernel variant for its instruction set.
 *
 * Every file of kernels/<isa>/ is compiled with the same flags as the rest of the library
 * (no -mavx2 / -march: one flag set for every build, and the library still loads on a CPU
 * without the ISA), wraps its whole body in `#if DSE_ARCH_<arch>` (it compiles to nothing
 * on other architectures) and marks each function that uses the ISA with DSE_TARGET_<ISA>,
 * which enables the instructions for that function only; the loader calls it only when the
 * CPU has them (src/cpu.c). Intrinsics headers are included inside the #if. */
#ifndef DSEDGE_ISA_H
#define DSEDGE_ISA_H

#include "internal.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(DSE_REF_ONLY)
#define DSE_ARCH_X86_64 1
#define DSE_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
#define DSE_TARGET_AVXVNNI __attribute__((target("avx2,fma,f16c,avxvnni")))
#define DSE_TARGET_AVX512VNNI __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
#define DSE_TARGET_AMX __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,amx-tile,amx-int8")))
#else
#define DSE_ARCH_X86_64 0
#endif

#if defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(DSE_REF_ONLY)
#define DSE_ARCH_ARM64 1
#define DSE_TARGET_NEON
#if defined(__clang__)
#define DSE_TARGET_NEON_DOTPROD __attribute__((target("neon,dotprod")))
#define DSE_TARGET_NEON_I8MM __attribute__((target("neon,dotprod,i8mm")))
#define DSE_TARGET_NEON_FP16 __attribute__((target("arch=armv8.2-a+fp16")))
#else
#define DSE_TARGET_NEON_DOTPROD __attribute__((target("arch=armv8.2-a+dotprod")))
#define DSE_TARGET_NEON_I8MM __attribute__((target("arch=armv8.6-a+dotprod+i8mm")))
#define DSE_TARGET_NEON_FP16 __attribute__((target("arch=armv8.2-a+fp16")))
#endif
#else
#define DSE_ARCH_ARM64 0
#endif

/* armv7: the library is built for ARMv7-A VFPv3-D16 hard float without NEON (dsedge/export/bundle.py),
 * so it still runs on cores without NEON; DSE_TARGET_NEON32 enables NEON for one function, and
 * DSE_TARGET_NEON (empty on arm64, where NEON is baseline) is the same there, so the arm64 int8
 * sources compile for armv7 too (kernels/neon32/, with kernels/neon/neon_a32.h for the
 * AArch64-only intrinsics). DSE_NEON32_OK (internal.h): the compiler can. */
#if DSE_NEON32_OK
#define DSE_ARCH_ARM32 1
#if defined(__clang__)   /* NEON needs the 32 double registers, which a D16 build has switched off */
#define DSE_TARGET_NEON32 __attribute__((target("neon,d32")))
#else
#define DSE_TARGET_NEON32 __attribute__((target("fpu=neon")))
#endif
#define DSE_TARGET_NEON DSE_TARGET_NEON32
#else
#define DSE_ARCH_ARM32 0
#endif

#endif
