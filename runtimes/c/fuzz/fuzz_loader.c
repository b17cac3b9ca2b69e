/* fuzz_loader.c: libFuzzer target for the .dse loader (and, through it, every kernel's `check`
 * and `run`).
 *
 *   make -C runtimes/c fuzz && runtimes/c/build/fuzz_loader CORPUS_DIR runtimes/c/tests/corpus
 *
 * Algorithm, per input:
 *  1. Copy the bytes into a 64-byte-aligned buffer (the loader requires the alignment).
 *  2. A mutated file almost never passes the CRC, which would stop the fuzzer at the first
 *     check; so when the header's table size is in range, rewrite the table CRC (and the
 *     weight CRC when flag bit 0 is set and the blob range is in bounds) of the copy. Only
 *     the checksum fields change: every other byte reaches the parser as mutated.
 *  3. Load with DSE_LOAD_VERIFY_WEIGHTS. Anything but DSE_OK must come with a message.
 *  4. If the model loads, create a session and set every input: a guarded input
 *     (metadata "guard.<name>", docs/format.md 4.2) gets its guard bytes so the run is not
 *     refused, every other input gets bytes taken from the file itself, repeated (so float
 *     inputs see NaN, inf, huge and denormal values, integer inputs out-of-range indices), then run
 *     once (models whose arena exceeds 256 MB, or whose work bound dse_fuzz_work_bound exceeds
 *     1e9 steps, are loaded but not run: the fuzzer's memory and time limits, not the
 *     runtime's). After a successful load nothing may fault, read out of bounds or leak: the
 *     sanitizers (ASan, UBSan, LSan) turn any such bug into a crash.
 *
 * dse_fuzz_one() is the whole check and is shared with replay_main.c, the sanitizer replay
 * of the committed corpus in CI (no libFuzzer needed there). */
#include <stdlib.h>
#include <string.h>

#include "dsedge.h"
#include "fuzz_loader.h"
#include "internal.h"   /* the loaded model's nodes and tensors, for dse_fuzz_work_bound */

#define DSE_FUZZ_MAX_ARENA ((size_t)256 << 20)
#ifndef DSE_FUZZ_MAX_WORK
#define DSE_FUZZ_MAX_WORK 1e9   /* -D: another bound (measuring it) */
#endif

/* An upper bound on the steps of one run, from the kernel list's aliasing trait alone: a kernel
 * that may work in place (SAME: elementwise and views, element i read before it is written;
 * SLICE: Concat) does a bounded number of steps per element it reads or writes; no other kernel
 * does more than (elements it reads) x (elements it writes) (a MatMul M*N*K <= (M*K + K*N)(M*N),
 * a Conv |out| * K <= |W| * |out|, a reduction |in| <= |in| * |out|; pooling windows visit
 * only their taps inside the input, internal.h dse__tap_range). Summed over the nodes. It is
 * the fuzzer's time limit, as DSE_FUZZ_MAX_ARENA is its memory limit: a valid 448-byte file asks
 * for a 1000x1000x1000 float MatMul (8 s per run in this build); such a model is loaded and
 * checked but not run. 1e9 steps at the few ns a step costs here: a few seconds at most. */
double dse_fuzz_work_bound(const dse_model *m) {
    double w = 0;
    for (size_t i = 0; i < m->n_nodes; i++) {
        const dse_node *n = &m->nodes[i];
        double ei = 1, eo = 1;
        for (uint32_t k = 0; k < n->n_in; k++) if (n->in[k] != DSE_NONE) ei += (double)m->tensors[n->in[k]].numel;
        for (uint32_t k = 0; k < n->n_out; k++) if (n->out[k] != DSE_NONE) eo += (double)m->tensors[n->out[k]].numel;
        w += dse__kernel_alias(n->kernel) != DSE_ALIAS_NONE ? ei + eo : ei * eo;
    }
    return w;
}

static uint32_t crc32(uint32_t crc, const uint8_t *p, size_t n) {
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++) crc = (crc & 1) ? 0xEDB88320u ^ (crc >> 1) : crc >> 1;
    }
    return ~crc;
}

void dse_fuzz_fix_crc(uint8_t *buf, size_t size) {
    if (size < 64) return;
    uint64_t tsize, boff, bsize;
    uint32_t flags;
    memcpy(&flags, buf + 12, 4);
    memcpy(&tsize, buf + 24, 8);
    memcpy(&boff, buf + 32, 8);
    memcpy(&bsize, buf + 40, 8);
    if ((flags & 1) && boff <= size && bsize <= size - boff) {   /* first: it lies inside the table CRC's range */
        uint32_t c = crc32(0, buf + boff, (size_t)bsize);
        memcpy(buf + 48, &c, 4);
    }
    if (tsize <= size - 64) {
        uint32_t c = crc32(crc32(0, buf, 60), buf + 64, (size_t)tsize);
        memcpy(buf + 60, &c, 4);
    }
}

/* The guard of input `name` into *g: 1 if there is one. */
static int guard_of(const dse_model *m, const char *name, dse_meta *g) {
    for (size_t k = 0; k < dse_model_metadata_count(m); k++) {
        if (dse_model_metadata_at(m, k, g) != DSE_OK || g->type != DSE_META_BYTES) continue;
        if (strncmp(g->key, "guard.", 6) == 0 && strcmp(g->key + 6, name) == 0) return 1;
    }
    return 0;
}

dse_status dse_fuzz_one(const uint8_t *data, size_t size, dse_status *run_status, dse_error *err) {
    dse_error local;
    if (!err) err = &local;
    err->code = DSE_OK;
    err->message[0] = '\0';
    *run_status = DSE_ERR_STATE;   /* "not run" */
    uint8_t *buf = aligned_alloc(64, (size + 64) / 64 * 64);
    if (!buf) return DSE_ERR_NOMEM;
    if (size) memcpy(buf, data, size);
    dse_fuzz_fix_crc(buf, size);
    dse_model *m = NULL;
    dse_status st = dse_model_load_ex(buf, size, DSE_LOAD_VERIFY_WEIGHTS, &m, err);
    if (st != DSE_OK) {
        if (!err->message[0] || m) abort();   /* an error always has a message and no model */
        free(buf);
        return st;
    }
    dse_session *s = NULL;
    /* the fuzzer's memory limit, not the runtime's: a loaded model may ask for any arena the
     * platform can address, and allocating gigabytes per input would stop the fuzzer */
    dse_status rs = dse_arena_size(m) > DSE_FUZZ_MAX_ARENA || dse_fuzz_work_bound(m) > DSE_FUZZ_MAX_WORK
                        ? DSE_ERR_NOMEM : dse_session_create(m, NULL, 0, &s, err);
    for (size_t i = 0; rs == DSE_OK && i < dse_model_input_count(m); i++) {
        dse_tensor_info ti;
        if (dse_model_input(m, i, &ti) != DSE_OK) abort();
        dse_meta g;
        int guarded = guard_of(m, ti.name, &g);
        uint8_t *x = malloc(ti.nbytes ? ti.nbytes : 1);
        if (!x) { rs = DSE_ERR_NOMEM; break; }
        if (guarded && g.size == ti.nbytes) {
            if (ti.nbytes) memcpy(x, g.bytes, ti.nbytes);
        } else {   /* the file's bytes at stride 7 for the first size bytes, then that block repeated:
                    * per-byte index arithmetic over a 128 MB input took the fuzz build seconds */
            const size_t head = ti.nbytes < size ? ti.nbytes : size;
            for (size_t k = 0; k < head; k++) x[k] = data[(k * 7 + i) % size];
            if (!size && ti.nbytes) x[0] = 0;
            for (size_t have = head ? head : 1; have < ti.nbytes;) {
                const size_t c = have < ti.nbytes - have ? have : ti.nbytes - have;
                memcpy(x + have, x, c);
                have += c;
            }
        }
        rs = dse_session_set_input(s, i, x, ti.nbytes, err);
        free(x);
    }
    if (rs == DSE_OK) rs = dse_session_run(s, err);
    for (size_t i = 0; rs == DSE_OK && i < dse_model_output_count(m); i++) {   /* touch the output's bytes */
        const void *p;
        size_t nb;
        if (dse_session_get_output(s, i, &p, &nb) != DSE_OK) abort();
        volatile uint8_t sum = 0;   /* every 64th byte and the last: each cache line, both ends */
        for (size_t k = 0; k < nb; k += 64) sum ^= ((const uint8_t *)p)[k];
        if (nb) sum ^= ((const uint8_t *)p)[nb - 1];
        (void)sum;
    }
    *run_status = rs;
    dse_session_free(s);
    dse_model_free(m);
    free(buf);
    return st;
}

#ifndef DSE_FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    dse_status rs;
    dse_fuzz_one(data, size, &rs, NULL);
    return 0;
}
#endif
