/* avx2/conv_i8_w4.c: int8 Conv (group 1), Gemm and MatMul with per-channel int4 weights (W4A8,
 * docs/quant-arith.md §13, w4_group 0) in layouts 6/7 (the int8 layouts' N8K4 blocks, 16 bytes
 * each: docs/format.md §4.4), on AVX2 without VNNI: `dse_i8_{conv,gemm,matmul}_w4__avx2`,
 * byte-identical with the W4A8 REF kernels (kernels/ref/w4a8.c).
 *
 * The VNNI kernels' source (kernels/avxvnni/conv_i8.c: u = x ^ 0x80 against signed weights, the
 * (128 + zp_in) * sum w fold, the packing, im2col and output stages) compiled with DSE_VNNI_W4: each
 * weight block is expanded from its 16 bytes to layout 1's 32 int8 (a 128-bit broadcast load,
 * a shift of the high lane by 4, a nibble mask and a vpshufb sign-extension table) and multiplied
 * with vpmaddubsw. With codes in [-7, 7] a u8 x s8 pair sum is at most 255 * 7 * 2 = 3570 in
 * magnitude, so vpmaddubsw never saturates and 8 k-blocks of pair sums add exactly in int16
 * (<= 28560) before one vpmaddwd widens them: one multiply per k-block and column where the
 * 7-bit kernel (conv_i8_w7.c) needs two. Every Conv geometry with group 1 (1-3 spatial axes,
 * strides, dilations, padding, 1x1 with any K) takes this kernel: these nodes have no int8
 * weights for the AVX2 Winograd or pixels-in-lanes paths, so the only other kernel is REF. */
#define DSE_VNNI_W4 1
#include "../avxvnni/conv_i8.c"
#undef DSE_VNNI_W4
