# build.mk: THE build manifest of the dsedge C runtime: its sources, source groups and flags.
#
# Every builder reads this file instead of keeping its own list: the Makefile (`include`),
# CMakeLists.txt (file(STRINGS) + regex), the Python build of the bindings (setup.py and
# dsedge.runtime, via runtimes/python/_build.py), the bundle exporter (dsedge/export/bundle.py),
# runtimes/c/fuzz/*.sh and the tests that compile the library themselves (_build.py helpers).
# tests/runtime/test_build_manifest.py checks that the groups cover exactly the .c files on disk
# and that each builder's source list and flags come from here.
#
# Format, so that make, CMake and Python read it the same way: one `NAME = value` per line
# (value: words separated by spaces, possibly none), comment lines start with '#'; no
# continuation lines, no make functions or `$(...)` references, no quotes. Source entries are
# glob patterns relative to runtimes/c, each expanded in sorted order.

# -- flags every build uses (DESIGN.md §3): C11, no FP contraction; never -ffast-math or
# -march=native, so every target computes the same bytes
DSE_STD = -std=c11 -ffp-contract=off
DSE_WARN = -Wall -Wextra
# added where the build is ours to fail (Makefile, CMake, tests); not in setup.py or bundles,
# which compile on the user's machine with whatever compiler is there
DSE_WERROR = -Werror
DSE_INCLUDE_DIRS = include src
DSE_LIBS = m pthread

# -- optimisation profiles. Per-file builds (Makefile, CMake Release, the Python bindings):
DSE_OPT = -O2
# Link lines of bundles and of cross builds (the tests' programs run under qemu). zig cc builds
# its libc and compiler_rt once per target, mode and strip setting, about a minute each: the mode
# follows the link's -O (none: Debug, plus a UBSan runtime) and any strip flag sets stripping, so
# every such link names both, the same way.
DSE_LINK_OPT = -O2
DSE_LINK_STRIP = -Wl,--strip-all
# Bundles (`dsedge export`, runtimes/c/README.md "Bundle build") compile the library as a
# cold unit (COLD) and a hot unit (HOT: DSE_HOT_SOURCES and every ISA group); "default" is
# what bundles use, the others exist to measure that choice (benchmarks/sizes.py).
DSE_BUNDLE_PROFILES = default size speed
DSE_PROFILE_default_COLD = -Os
DSE_PROFILE_default_HOT = -O2
DSE_PROFILE_size_COLD = -Os
DSE_PROFILE_size_HOT = -Os
DSE_PROFILE_speed_COLD = -O2
DSE_PROFILE_speed_HOT = -O2
# every bundle unit: no debug info, no unwind tables (C needs no unwinding), no .comment
DSE_BUNDLE_FLAGS = -g0 -fno-asynchronous-unwind-tables -fno-unwind-tables -fno-ident

# -- sources. The library is DSE_CORE_SOURCES + the sources of every ISA group; every .c file
# under src/ and kernels/ belongs to exactly one of them.
DSE_CORE_SOURCES = src/*.c kernels/ref/*.c
# core sources that bundles compile with the HOT optimisation (the inner loops of Conv, Gemm
# and MatMul); every ISA group is hot as well
DSE_HOT_SOURCES = kernels/ref/loops.c

# ISA groups: optimised kernel variants (docs/kernels.md, "Optimised variants") for one
# architecture (x86_64, arm64 or armv7). Their code uses function target attributes (src/isa.h)
# and compiles to nothing on another architecture, so FLAGS is empty; when set, a builder adds
# it to that group's files only, and only when compiling for ARCH.
DSE_ISA_GROUPS = avx2 avxvnni avx512vnni amx neon neon_dotprod neon_i8mm neon_fp16 neon32
DSE_ISA_avx2_ARCH = x86_64
DSE_ISA_avx2_SOURCES = kernels/avx2/*.c
DSE_ISA_avx2_FLAGS =
DSE_ISA_avxvnni_ARCH = x86_64
DSE_ISA_avxvnni_SOURCES = kernels/avxvnni/*.c
DSE_ISA_avxvnni_FLAGS =
DSE_ISA_avx512vnni_ARCH = x86_64
DSE_ISA_avx512vnni_SOURCES = kernels/avx512vnni/*.c
DSE_ISA_avx512vnni_FLAGS =
DSE_ISA_amx_ARCH = x86_64
DSE_ISA_amx_SOURCES = kernels/amx/*.c
DSE_ISA_amx_FLAGS =
DSE_ISA_neon_ARCH = arm64
DSE_ISA_neon_SOURCES = kernels/neon/*.c
DSE_ISA_neon_FLAGS =
DSE_ISA_neon_dotprod_ARCH = arm64
DSE_ISA_neon_dotprod_SOURCES = kernels/neon_dotprod/*.c
DSE_ISA_neon_dotprod_FLAGS =
DSE_ISA_neon_i8mm_ARCH = arm64
DSE_ISA_neon_i8mm_SOURCES = kernels/neon_i8mm/*.c
DSE_ISA_neon_i8mm_FLAGS =
DSE_ISA_neon_fp16_ARCH = arm64
DSE_ISA_neon_fp16_SOURCES = kernels/neon_fp16/*.c
DSE_ISA_neon_fp16_FLAGS =
# neon32: the armv7 NEON variants, kernels/neon's int8 sources compiled for armv7 (each
# kernels/neon32/<op>.c includes kernels/neon/<op>.c; NEON per function: src/isa.h)
DSE_ISA_neon32_ARCH = armv7
DSE_ISA_neon32_SOURCES = kernels/neon32/*.c
DSE_ISA_neon32_FLAGS =
