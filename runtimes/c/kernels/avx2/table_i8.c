/* table_i8.c (AVX2): the int8 table kernel, y = table[x + 128], the bytes of
 * kernels/ref/table_i8.c.
 *
 * 32 lookups at a time with vpshufb, which looks 16-entry tables up by the low four bits of
 * each byte and gives 0 for a byte whose top bit is set. The 256-entry table is 16 rows of 16
 * (both 128-bit lanes hold the row); for row h the index byte is u - 16h (u = x + 128 as an
 * unsigned byte, wrapping) plus 0x70 with unsigned saturation: below 0x80 (a lookup) exactly
 * when u is in row h, then its low four bits are u's; every other byte gets 0 from that row,
 * so OR-ing the 16 rows' results gives table[u]. The tail is the REF loop. */
#include "isa.h"

#if DSE_ARCH_X86_64
#include <immintrin.h>

#include "requant.h"

DSE_TARGET_AVX2 void dse_i8_table__avx2(const dse_model *m, const dse_node *n, uint8_t *arena, const dse_ctx *cx) {
    (void)cx;
    const int8_t *x = dse__data(m, arena, n->in[0]);
    const int8_t *table = dse_i8_tensor_attr(m, n, DSE_A_table, DSE_DTYPE_INT8, 256);
    int8_t *y = dse__data(m, arena, n->out[0]);
    const size_t e = m->tensors[n->out[0]].numel;
    __m256i rows[16];
    for (int h = 0; h < 16; h++)
        rows[h] = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)(table + 16 * h)));
    const __m256i flip = _mm256_set1_epi8((char)0x80), step = _mm256_set1_epi8(16), bias = _mm256_set1_epi8(0x70);
    size_t i = 0;
    for (; i + 32 <= e; i += 32) {
        __m256i u = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(const void *)(x + i)), flip);
        __m256i r = _mm256_setzero_si256();
        for (int h = 0; h < 16; h++) {
            r = _mm256_or_si256(r, _mm256_shuffle_epi8(rows[h], _mm256_adds_epu8(u, bias)));
            u = _mm256_sub_epi8(u, step);
        }
        _mm256_storeu_si256((__m256i *)(void *)(y + i), r);
    }
    for (; i < e; i++) y[i] = table[x[i] + 128];
}

#endif
