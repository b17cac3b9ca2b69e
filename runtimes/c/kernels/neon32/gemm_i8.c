/* gemm_i8.c (neon32): kernels/neon/gemm_i8.c, the arm64 source, compiled for armv7 NEON (not a copy:
 * kernels/neon/i8_neon.h, "armv7"). That file compiles to nothing on armv7 unless included here. */
#define DSE_NEON32_UNIT 1
#include "../neon/gemm_i8.c"
#undef DSE_NEON32_UNIT
