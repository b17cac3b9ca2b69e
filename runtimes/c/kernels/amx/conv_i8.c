/* amx/conv_i8.c: the AMX variant of the int8 Conv (group 1; `dse_i8_conv__amx`: tdpbsud on tiles of
 * 16 channels x 16 pixels, AMX-TILE + AMX-INT8 with AVX512-VNNI), compiled from
 * kernels/avxvnni/conv_i8.c with DSE_VNNI_512 and DSE_VNNI_AMX: the avx512vnni Conv (its
 * pixels-in-lanes tile, output stage and threads) with the microkernel of kernels/amx/tile_core.h,
 * which explains the arithmetic. Gemm and MatMul stay with avx512vnni. Linux only (DSE_AMX_OK):
 * the process asks for the tile state (src/cpu.c). */
#include "isa.h"

#if DSE_AMX_OK
#define DSE_VNNI_512 1
#define DSE_VNNI_AMX 1
#include "../avxvnni/conv_i8.c"
#undef DSE_VNNI_AMX
#undef DSE_VNNI_512
#endif
