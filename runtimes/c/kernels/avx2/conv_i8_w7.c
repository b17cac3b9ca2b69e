/* avx2/conv_i8_w7.c: int8 Conv (group 1), Gemm and MatMul whose weights all lie in [-64, 63]
 * (7-bit weights: `dsedge quantize --weights int7`, or any int8 weights in that range), on AVX2
 * without VNNI: `dse_i8_{conv,gemm,matmul}_w7__avx2`, byte-identical with REF.
 *
 * The VNNI kernels' source (kernels/avxvnni/conv_i8.c: u = x ^ 0x80 against signed weights, the
 * (128 + zp_in) * sum w fold) compiled with DSE_VNNI_W7, where each vpdpbusd is vpmaddubsw +
 * vpmaddwd(1s) + vpaddd. vpmaddubsw adds two u8 x s8 products into a saturating int16; with
 * |w| <= 64 a pair is at most 255 * 64 * 2 = 32640 < 32767, so it never saturates and the sums
 * are exact. That is the instruction onnxruntime's u8s8 kernels use on AVX2 with full 8-bit
 * weights, where pairs up to 65280 saturate (wrong sums). Half the widening work and activation
 * bytes of the int16-pair AVX2 kernel (kernels/avx2/conv_i8.c), which takes what this refuses. */
#define DSE_VNNI_W7 1
#include "../avxvnni/conv_i8.c"
#undef DSE_VNNI_W7
