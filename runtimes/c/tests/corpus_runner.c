/* corpus_runner.c: load every .dse file given (files or directories of files), and run one
 * inference with zero inputs on each that loads. Prints "<status> <file>: <message>" per
 * file; exits 0 unless a file crashes the process (which is the bug this hunts, under the
 * sanitizer build). Also a minimal dsedge-run: `dse_corpus --run model.dse` prints the
 * outputs of a zero-input inference as hex (`--run-ref`: with the REF kernels only,
 * DSE_LOAD_REF_KERNELS, whose bytes are the same on every target). */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dsedge.h"

static int run_one(const char *path, int dump, unsigned flags) {
    FILE *f = fopen(path, "rb");
    if (!f) { printf("io %s\n", path); return 1; }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    size_t cap = ((size_t)(n > 0 ? n : 1) + 63) / 64 * 64;
    unsigned char *buf = aligned_alloc(64, cap);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) { fclose(f); free(buf); printf("io %s\n", path); return 1; }
    fclose(f);
    dse_model *m = NULL;
    dse_error e;
    dse_status st = dse_model_load_ex(buf, (size_t)n, DSE_LOAD_VERIFY_WEIGHTS | flags, &m, &e);
    if (st == DSE_OK) {
        dse_session *s = NULL;
        st = dse_session_create(m, NULL, 0, &s, &e);
        for (size_t i = 0; st == DSE_OK && i < dse_model_input_count(m); i++) {
            dse_tensor_info ti;
            dse_model_input(m, i, &ti);
            void *zeros = calloc(1, ti.nbytes ? ti.nbytes : 1);
            st = zeros ? dse_session_set_input(s, i, zeros, ti.nbytes, &e) : DSE_ERR_NOMEM;
            free(zeros);
        }
        if (st == DSE_OK) st = dse_session_run(s, &e);
        for (size_t i = 0; st == DSE_OK && i < dse_model_output_count(m); i++) {
            const void *p;
            size_t nb;
            dse_session_get_output(s, i, &p, &nb);
            unsigned sum = 0;
            for (size_t k = 0; k < nb; k++) sum += ((const unsigned char *)p)[k];
            if (dump) {
                printf("output %zu:", i);
                for (size_t k = 0; k < nb; k++) printf(" %02x", ((const unsigned char *)p)[k]);
                printf("\n");
            }
            (void)sum;
        }
        dse_session_free(s);
        dse_model_free(m);
        if (st == DSE_OK) e.message[0] = '\0';
    }
    printf("%d %s: %s\n", (int)st, path, st == DSE_OK ? "ok" : e.message);
    free(buf);
    return 0;
}

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--run") == 0) return run_one(argv[2], 1, 0);
    if (argc == 3 && strcmp(argv[1], "--run-ref") == 0) return run_one(argv[2], 1, DSE_LOAD_REF_KERNELS);
    for (int a = 1; a < argc; a++) {
        struct stat sb;
        if (stat(argv[a], &sb) == 0 && S_ISDIR(sb.st_mode)) {
            DIR *d = opendir(argv[a]);
            if (!d) continue;
            char *names[4096];
            size_t k = 0;
            for (struct dirent *de; (de = readdir(d)) && k < 4096;)
                if (de->d_name[0] != '.') names[k++] = strdup(de->d_name);
            closedir(d);
            qsort(names, k, sizeof names[0], cmp);
            for (size_t i = 0; i < k; i++) {
                char path[4096];
                snprintf(path, sizeof path, "%s/%s", argv[a], names[i]);
                run_one(path, 0, 0);
                free(names[i]);
            }
        } else {
            run_one(argv[a], 0, 0);
        }
    }
    return 0;
}
