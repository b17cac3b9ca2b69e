/* avx512vnni/conv_i8.c: the AVX512-VNNI variants of the int8 Conv (group 1), Gemm and MatMul
 * (`dse_i8_{conv,gemm,matmul}__avx512vnni`: 512-bit vpdpbusd, AVX512F/BW/VL), compiled from
 * kernels/avxvnni/conv_i8.c with DSE_VNNI_512 (that file explains the arithmetic and the zmm
 * microkernels; the checks are defined there, once, for both variants). */
#define DSE_VNNI_512 1
#include "../avxvnni/conv_i8.c"
#undef DSE_VNNI_512
