/* replay_main.c: replay .dse files through the fuzz target's check (fuzz_loader.c) without
 * libFuzzer, for the sanitizer build in CI and for coverage.
 *
 *   dse_fuzz_replay [--fix-crc-to DIR] FILE_OR_DIR...
 *
 * For each file (directories: their regular files, sorted by name) prints one line
 * "<load status> <run status> <path>: <message>", where the run status is -1 when the model
 * did not load. A crash, sanitizer report or leak aborts the process: that is the bug.
 * `--fix-crc-to DIR` instead writes each file, CRCs rewritten as the fuzz target does, to DIR
 * under the same name (turns a libFuzzer corpus into one the plain loader reaches past the
 * checksum with). */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_loader.h"

static const char *fix_dir;

static void one(const char *path, const char *base) {
    FILE *f = fopen(path, "rb");
    if (!f) { printf("io -1 %s: cannot open\n", path); return; }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *data = malloc(n > 0 ? (size_t)n : 1);
    if (!data || (n > 0 && fread(data, 1, (size_t)n, f) != (size_t)n)) { fclose(f); free(data); printf("io -1 %s: cannot read\n", path); return; }
    fclose(f);
    if (fix_dir) {
        char out[4096];
        snprintf(out, sizeof out, "%s/%s", fix_dir, base);
        dse_fuzz_fix_crc(data, (size_t)n);
        FILE *o = fopen(out, "wb");
        if (!o || fwrite(data, 1, (size_t)n, o) != (size_t)n) { fprintf(stderr, "cannot write %s\n", out); exit(1); }
        fclose(o);
    } else {
        dse_error e;
        dse_status rs;
        dse_status st = dse_fuzz_one(data, (size_t)n, &rs, &e);
        printf("%d %d %s: %s\n", (int)st, st == DSE_OK ? (int)rs : -1, path, st == DSE_OK && rs == DSE_OK ? "ok" : e.message);
    }
    free(data);
}

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
    int a = 1;
    if (argc > 2 && strcmp(argv[1], "--fix-crc-to") == 0) { fix_dir = argv[2]; a = 3; }
    for (; a < argc; a++) {
        struct stat sb;
        if (stat(argv[a], &sb) != 0) { printf("io -1 %s: missing\n", argv[a]); continue; }
        if (!S_ISDIR(sb.st_mode)) { const char *b = strrchr(argv[a], '/'); one(argv[a], b ? b + 1 : argv[a]); continue; }
        DIR *d = opendir(argv[a]);
        if (!d) continue;
        size_t k = 0, cap = 256;
        char **names = malloc(cap * sizeof *names);
        for (struct dirent *de; names && (de = readdir(d));) {
            if (de->d_name[0] == '.') continue;
            if (k == cap) { char **nn = realloc(names, (cap *= 2) * sizeof *names); if (!nn) break; names = nn; }
            names[k++] = strdup(de->d_name);
        }
        closedir(d);
        if (!names) continue;
        qsort(names, k, sizeof names[0], cmp);
        for (size_t i = 0; i < k; i++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[a], names[i]);
            if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) one(path, names[i]);
            free(names[i]);
        }
        free(names);
    }
    return 0;
}
