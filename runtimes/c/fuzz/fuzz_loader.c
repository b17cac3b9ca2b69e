/* fuzz_loader.c: libFuzzer target for the .dse loader.
 *
 *   make -C runtimes/c fuzz && runtimes/c/build/fuzz_loader runtimes/c/tests/corpus
 *
 * A mutated file almost never passes the CRC, which would stop the fuzzer at the first
 * check; so when the header's table size is in range, the target rewrites the table CRC
 * (and the weight CRC when flagged) of its copy before loading. If the model loads, it runs
 * one inference on zero inputs: after a successful load nothing may fault. */
#include <stdlib.h>
#include <string.h>

#include "dsedge.h"

static uint32_t crc32(uint32_t crc, const uint8_t *p, size_t n) {
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++) crc = (crc & 1) ? 0xEDB88320u ^ (crc >> 1) : crc >> 1;
    }
    return ~crc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *buf = aligned_alloc(64, (size + 64) / 64 * 64);
    if (!buf) return 0;
    memcpy(buf, data, size);
    if (size >= 64) {
        uint64_t tsize, boff, bsize;
        uint32_t flags;
        memcpy(&flags, buf + 12, 4);
        memcpy(&tsize, buf + 24, 8);
        memcpy(&boff, buf + 32, 8);
        memcpy(&bsize, buf + 40, 8);
        if (tsize <= size - 64) {
            uint32_t c = crc32(crc32(0, buf, 60), buf + 64, (size_t)tsize);
            memcpy(buf + 60, &c, 4);
        }
        if ((flags & 1) && boff <= size && bsize <= size - boff) {
            uint32_t c = crc32(0, buf + boff, (size_t)bsize);
            memcpy(buf + 48, &c, 4);
        }
    }
    dse_model *m = NULL;
    if (dse_model_load_ex(buf, size, DSE_LOAD_VERIFY_WEIGHTS, &m, NULL) == DSE_OK) {
        dse_session *s = NULL;
        if (dse_session_create(m, NULL, 0, &s, NULL) == DSE_OK) {
            for (size_t i = 0; i < dse_model_input_count(m); i++) {
                dse_tensor_info ti;
                dse_model_input(m, i, &ti);
                void *z = calloc(1, ti.nbytes ? ti.nbytes : 1);
                if (z) dse_session_set_input(s, i, z, ti.nbytes, NULL);
                free(z);
            }
            dse_session_run(s, NULL);
            dse_session_free(s);
        }
        dse_model_free(m);
    }
    free(buf);
    return 0;
}
