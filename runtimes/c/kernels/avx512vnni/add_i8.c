/* avx512vnni/add_i8.c: int8 Add and Sub on 16 lanes (`dse_i8_{add,sub}__avx512vnni`), compiled from
 * kernels/avx2/add_i8.c with DSE_ADD_I8_512 (that file states the arithmetic; REF's bytes). */
#define DSE_ADD_I8_512 1
#include "../avx2/add_i8.c"
#undef DSE_ADD_I8_512
