/* run_one.c: run one .dse model on inputs read from files and write its outputs, for tests
 * that compare targets byte for byte (e.g. the arm64 build under qemu-aarch64).
 *
 *     run_one model.dse out.bin [in0.bin in1.bin ...]
 *
 * Each input file holds exactly the input's bytes (dse_session_set_input checks the size);
 * out.bin receives every output's bytes, concatenated in output order. Exit status 0 on
 * success, else 1 with the runtime's message on stderr. */
#include <stdio.h>
#include <stdlib.h>

#include "dsedge.h"

static void *read_all(const char *path, size_t *len, size_t align) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    size_t cap = ((size_t)(n > 0 ? n : 1) + align - 1) / align * align;
    void *buf = aligned_alloc(align, cap);
    if (buf && n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n) { free(buf); buf = NULL; }
    fclose(f);
    *len = n > 0 ? (size_t)n : 0;
    return buf;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: run_one model.dse out.bin [inputs...]\n"); return 2; }
    size_t len;
    void *buf = read_all(argv[1], &len, 64);
    dse_model *m = NULL;
    dse_session *s = NULL;
    dse_error e = {DSE_OK, ""};
    if (!buf || dse_model_load(buf, len, &m, &e) != DSE_OK || dse_session_create(m, NULL, 0, &s, &e) != DSE_OK) {
        fprintf(stderr, "load %s: %s\n", argv[1], buf ? e.message : "cannot read");
        return 1;
    }
    if ((size_t)(argc - 3) != dse_model_input_count(m)) { fprintf(stderr, "model has %zu inputs\n", dse_model_input_count(m)); return 1; }
    for (int i = 3; i < argc; i++) {
        size_t n;
        void *in = read_all(argv[i], &n, 64);
        if (!in || dse_session_set_input(s, (size_t)(i - 3), in, n, &e) != DSE_OK) { fprintf(stderr, "input %s: %s\n", argv[i], e.message); return 1; }
        free(in);
    }
    if (dse_session_run(s, &e) != DSE_OK) { fprintf(stderr, "run: %s\n", e.message); return 1; }
    FILE *out = fopen(argv[2], "wb");
    for (size_t i = 0; out && i < dse_model_output_count(m); i++) {
        const void *p;
        size_t n;
        dse_session_get_output(s, i, &p, &n);
        if (fwrite(p, 1, n, out) != n) { fclose(out); out = NULL; }
    }
    if (!out || fclose(out) != 0) { fprintf(stderr, "cannot write %s\n", argv[2]); return 1; }
    dse_session_free(s);
    dse_model_free(m);
    free(buf);
    return 0;
}
