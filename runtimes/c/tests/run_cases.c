/* run_cases.c: run many one-node (or small) .dse models listed on stdin and say which kernel
 * each node got, for tests that compare optimised kernel variants with the numpy reference
 * across targets (e.g. the arm64 NEON / dotprod kernels under qemu-aarch64 -cpu ...).
 *
 *     run_cases [-ref] [-reps N] [-threads N] < list    each line: model.dse out.bin [in0.bin ...]
 *
 * For each line: load (with -ref: DSE_LOAD_REF_KERNELS), create a session (-threads: that many
 * threads per run, default 1), run (N times, default 1), write every
 * output's bytes concatenated to out.bin, and print one line to stdout: the kernel names of the
 * model's nodes (space-separated) and the mean run time in microseconds (rough: under qemu it
 * measures the emulation). Reads the loaded model's internals (src/internal.h): a test tool,
 * not part of the library. Exit status 0 when every line ran, else 1 with the message on stderr. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

static void *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    size_t cap = ((size_t)(n > 0 ? n : 1) + 63) / 64 * 64;
    void *buf = aligned_alloc(64, cap);
    if (buf && n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n) { free(buf); buf = NULL; }
    fclose(f);
    *len = n > 0 ? (size_t)n : 0;
    return buf;
}

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int run_line(char *line, unsigned flags, int reps, unsigned threads) {
    char *argv[66];
    int argc = 0;
    for (char *t = strtok(line, " \t\r\n"); t && argc < 66; t = strtok(NULL, " \t\r\n")) argv[argc++] = t;
    if (argc == 0) return 0;
    if (argc < 2) { fprintf(stderr, "bad line\n"); return 1; }
    size_t len;
    void *buf = read_all(argv[0], &len);
    dse_model *m = NULL;
    dse_session *s = NULL;
    dse_error e = {DSE_OK, ""};
    dse_session_options opt = {sizeof opt, threads};
    if (!buf || dse_model_load_ex(buf, len, flags, &m, &e) != DSE_OK ||
        dse_session_create_ex(m, NULL, 0, &opt, &s, &e) != DSE_OK) {
        fprintf(stderr, "load %s: %s\n", argv[0], buf ? e.message : "cannot read");
        dse_model_free(m);   /* NULL when the load failed */
        free(buf);
        return 1;
    }
    if ((size_t)(argc - 2) != dse_model_input_count(m)) { fprintf(stderr, "%s has %zu inputs\n", argv[0], dse_model_input_count(m)); return 1; }
    for (int i = 2; i < argc; i++) {
        size_t n;
        void *in = read_all(argv[i], &n);
        if (!in || dse_session_set_input(s, (size_t)(i - 2), in, n, &e) != DSE_OK) { fprintf(stderr, "input %s: %s\n", argv[i], e.message); return 1; }
        free(in);
    }
    double t0 = now_us();
    for (int r = 0; r < reps; r++)
        if (dse_session_run(s, &e) != DSE_OK) { fprintf(stderr, "run %s: %s\n", argv[0], e.message); return 1; }
    double us = (now_us() - t0) / reps;
    FILE *out = fopen(argv[1], "wb");
    for (size_t i = 0; out && i < dse_model_output_count(m); i++) {
        const void *p;
        size_t n;
        dse_session_get_output(s, i, &p, &n);
        if (fwrite(p, 1, n, out) != n) { fclose(out); out = NULL; }
    }
    if (!out || fclose(out) != 0) { fprintf(stderr, "cannot write %s\n", argv[1]); return 1; }
    for (size_t k = 0; k < m->n_nodes; k++) printf("%s ", dse__kernel_name(m->nodes[k].kernel));
    printf("%.1f\n", us);
    fflush(stdout);
    dse_session_free(s);
    dse_model_free(m);
    free(buf);
    return 0;
}

int main(int argc, char **argv) {
    unsigned flags = 0;
    int reps = 1;
    unsigned threads = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-ref")) flags |= DSE_LOAD_REF_KERNELS;
        else if (!strcmp(argv[i], "-reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-threads") && i + 1 < argc) threads = (unsigned)atoi(argv[++i]);
        else { fprintf(stderr, "usage: run_cases [-ref] [-reps N] [-threads N] < list\n"); return 2; }
    }
    if (reps < 1) reps = 1;
    static char line[8192];
    int bad = 0;
    while (fgets(line, sizeof line, stdin)) bad |= run_line(line, flags, reps, threads);
    return bad;
}
