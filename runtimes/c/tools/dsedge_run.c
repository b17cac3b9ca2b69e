/* dsedge_run.c: `dsedge-run`, the command-line runner of a .dse model (static, libc only).
 *
 *   dsedge-run model.dse [--input NAME=FILE.npy ...] [--output-dir DIR] [--repeat N] [--threads N] [--info]
 *              [--profile] [--ref] [--no-amx] [--no-avx512] [--json]
 *
 * Each --input gives one graph input as a .npy file (npy.h: versions 1-3, 0-d shapes too);
 * with a single-input model the NAME= may be left out. The element type and shape must equal
 * the model's exactly (no implicit casts). After one inference each output is written to
 * DIR/<output name>.npy (DIR is created if needed), the name used verbatim as a relative path: '/' makes folders; an
 * absolute name, an empty path component, '.' or '..' is refused (a model cannot write
 * outside DIR). An unnamed output is written as output<index>.npy.
 *
 * --repeat N runs N timed inferences (after the first, untimed one, whose outputs are the
 * ones written) and prints on stdout
 *     latency_ms min=<..> median=<..> mean=<..> runs=<N>
 *     peak_rss_kb=<..>
 * where latency is wall-clock time (CLOCK_MONOTONIC) of dse_session_run alone and peak RSS is
 * VmHWM of /proc/self/status (Linux; it restarts at exec, unlike getrusage's ru_maxrss, which
 * keeps the forking parent's peak), else ru_maxrss. --info prints the inputs, outputs and metadata keys.
 * --threads N runs each inference on N threads (the session option; default 1). A summary of
 * each output goes to stderr. Exit status: 0 ok, 1 a load or run error, 2 a usage error.
 *
 * --profile times every node (dse_session_run_profile) over N runs after the first (N from
 * --repeat, default 10) and prints a table of the nodes sorted by median time (index, op, node
 * name, the kernel chosen at load and its ISA, median ms, % of the sum of medians), then the
 * same per op. --ref loads with DSE_LOAD_REF_KERNELS (the portable reference kernels only, to
 * compare with the optimised variants in one process). --json prints the --profile or
 * --repeat results as one JSON object on stdout instead.
 * All memory is allocated before the first inference. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "dsedge.h"
#include "npy.h"

static void usage(void) {
    fprintf(stderr,
            "usage: dsedge-run MODEL.dse [--input NAME=FILE.npy]... [--output-dir DIR] [--repeat N] [--threads N] [--info]\n"
            "                  [--profile] [--ref] [--no-amx] [--no-avx512] [--json]\n"
            "  --threads N            run each inference on N threads (default 1; same outputs)\n"
            "  --input NAME=FILE.npy  a graph input (NAME= optional for a single-input model)\n"
            "  --output-dir DIR       write each output to DIR/<output name>.npy\n"
            "  --repeat N             time N more runs; print latency min/median/mean and peak RSS\n"
            "  --info                 print the model's inputs, outputs and metadata keys\n"
            "  --profile              time each node over N runs (--repeat N, default 10): per-node and per-op tables\n"
            "  --ref                  use only the reference kernels (DSE_LOAD_REF_KERNELS)\n"
            "  --no-amx               not the AMX kernels on an AMX CPU (DSE_LOAD_NO_AMX)\n"
            "  --no-avx512            not the AVX-512 kernels (avx512vnni, amx) on such a CPU (DSE_LOAD_NO_AVX512)\n"
            "  --json                 print the --profile / --repeat results as JSON on stdout\n");
}

static void print_shape(FILE *f, const dse_tensor_info *t) {
    fputc('[', f);
    for (size_t d = 0; d < t->rank; d++) fprintf(f, d ? ", %zu" : "%zu", t->dims[d]);
    fputc(']', f);
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static long peak_rss_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0) { kb = strtol(line + 6, NULL, 10); break; }
    if (f) fclose(f);
    if (kb < 0) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        kb = (long)ru.ru_maxrss;
    }
    return kb;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void json_str(const char *str) {
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)str; *p; p++) {
        if (*p == '"' || *p == '\\') printf("\\%c", *p);
        else if (*p < 0x20) printf("\\u%04x", *p);
        else putchar(*p);
    }
    putchar('"');
}

static double median_of(double *v, size_t n) {   /* sorts v */
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static const double *sort_key;   /* cmp_desc: indices by sort_key[i], largest first, then by index */
static int cmp_desc(const void *a, const void *b) {
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    if (sort_key[i] != sort_key[j]) return sort_key[i] < sort_key[j] ? 1 : -1;
    return (i > j) - (i < j);
}

/* Per-node profile buffers, allocated before the first inference. */
typedef struct profile_buf {
    size_t runs, nodes;
    uint64_t *ns;        /* runs x nodes */
    double *col, *med, *mn, *op_ms;
    size_t *order, *op_count;
    int *op_id;
} profile_buf;

static int profile_alloc(profile_buf *p, size_t runs, size_t nodes) {
    memset(p, 0, sizeof *p);
    p->runs = runs, p->nodes = nodes;
    size_t n = nodes ? nodes : 1, r = runs ? runs : 1;
    if (r > SIZE_MAX / sizeof(uint64_t) / n) return 1;
    p->ns = calloc(r * n, sizeof *p->ns);
    p->col = calloc(r > n ? r : n, sizeof *p->col);
    p->med = calloc(n, sizeof *p->med), p->mn = calloc(n, sizeof *p->mn), p->op_ms = calloc(n, sizeof *p->op_ms);
    p->order = calloc(n, sizeof *p->order), p->op_count = calloc(n, sizeof *p->op_count);
    p->op_id = calloc(n, sizeof *p->op_id);
    return !p->ns || !p->col || !p->med || !p->mn || !p->op_ms || !p->order || !p->op_count || !p->op_id;
}

static void profile_free(profile_buf *p) {
    free(p->ns), free(p->col), free(p->med), free(p->mn), free(p->op_ms), free(p->order), free(p->op_count), free(p->op_id);
}

static void profile_print(const dse_model *m, profile_buf *p, const char *path, int ref, int as_json) {
    size_t nn = p->nodes, runs = p->runs, nops = 0;
    double sum = 0;
    for (size_t r = 0; r < runs; r++) {   /* median over runs of the per-run total */
        double t = 0;
        for (size_t k = 0; k < nn; k++) t += (double)p->ns[r * nn + k] / 1e6;
        p->col[r] = t;
    }
    double total = runs ? median_of(p->col, runs) : 0;
    for (size_t k = 0; k < nn; k++) {
        for (size_t r = 0; r < runs; r++) p->col[r] = (double)p->ns[r * nn + k] / 1e6;
        p->med[k] = median_of(p->col, runs);
        p->mn[k] = p->col[0];
        sum += p->med[k];
        p->order[k] = k;
        int op = dse_model_node_op(m, k);
        size_t j = 0;
        while (j < nops && p->op_id[j] != op) j++;
        if (j == nops) p->op_id[nops++] = op;
        p->op_ms[j] += p->med[k];
        p->op_count[j]++;
    }
    double pct = sum > 0 ? 100.0 / sum : 0;
    if (as_json) {
        printf("{\"model\": ");
        json_str(path);
        printf(", \"runtime\": \"%s\", \"runs\": %zu, \"ref_kernels\": %s, \"total_ms\": %.6f, \"sum_ms\": %.6f, "
               "\"peak_rss_kb\": %ld, \"nodes\": [", dse_version(), runs, ref ? "true" : "false", total, sum, peak_rss_kb());
        for (size_t k = 0; k < nn; k++) {
            printf("%s\n  {\"index\": %zu, \"op\": ", k ? "," : "", k);
            json_str(dse_op_name(dse_model_node_op(m, k)));
            printf(", \"name\": ");
            json_str(dse_model_node_name(m, k));
            printf(", \"kernel\": ");
            json_str(dse_model_node_kernel(m, k));
            printf(", \"isa\": ");
            json_str(dse_model_node_isa(m, k));
            printf(", \"median_ms\": %.6f, \"min_ms\": %.6f, \"percent\": %.3f}", p->med[k], p->mn[k], p->med[k] * pct);
        }
        printf("],\n \"ops\": [");
    } else {
        printf("profile %s: %zu nodes, %zu runs, %s kernels; median run %.4f ms (sum of node medians %.4f ms)\n",
               path, nn, runs, ref ? "reference" : "chosen", total, sum);
        printf("%5s %5s  %-22s %-28s %-30s %-12s %11s %6s\n", "rank", "node", "op", "name", "kernel", "isa", "median_ms", "%");
        sort_key = p->med;
        qsort(p->order, nn, sizeof *p->order, cmp_desc);
        for (size_t i = 0; i < nn; i++) {
            size_t k = p->order[i];
            printf("%5zu %5zu  %-22s %-28s %-30s %-12s %11.4f %6.2f\n", i + 1, k, dse_op_name(dse_model_node_op(m, k)),
                   dse_model_node_name(m, k), dse_model_node_kernel(m, k), dse_model_node_isa(m, k), p->med[k],
                   p->med[k] * pct);
        }
        printf("per op:\n%-22s %6s %11s %6s\n", "op", "nodes", "total_ms", "%");
    }
    for (size_t j = 0; j < nops; j++) p->order[j] = j;
    sort_key = p->op_ms;
    qsort(p->order, nops, sizeof *p->order, cmp_desc);
    for (size_t i = 0; i < nops; i++) {
        size_t j = p->order[i];
        if (as_json) {
            printf("%s\n  {\"op\": ", i ? "," : "");
            json_str(dse_op_name(p->op_id[j]));
            printf(", \"nodes\": %zu, \"ms\": %.6f, \"percent\": %.3f}", p->op_count[j], p->op_ms[j], p->op_ms[j] * pct);
        } else {
            printf("%-22s %6zu %11.4f %6.2f\n", dse_op_name(p->op_id[j]), p->op_count[j], p->op_ms[j], p->op_ms[j] * pct);
        }
    }
    if (as_json) printf("]}\n");
}

/* Check an output name and create its folders under dir; path receives dir/name.npy. */
static int output_path(const char *dir, const char *name, char *path, size_t cap) {
    if (name[0] == '/') { fprintf(stderr, "dsedge-run: output name '%s' is an absolute path: refused\n", name); return 1; }
    for (const char *p = name;;) {   /* every component non-empty, not '.' or '..' */
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')) {
            fprintf(stderr, "dsedge-run: output name '%s' has an empty, '.' or '..' path component: refused\n", name);
            return 1;
        }
        if (!e) break;
        p = e + 1;
    }
    int len = snprintf(path, cap, "%s/%s.npy", dir, name);
    if (len < 0 || (size_t)len >= cap) { fprintf(stderr, "dsedge-run: output path too long\n"); return 1; }
    for (char *p = path + 1; (p = strchr(p, '/')) != NULL; p++) {   /* mkdir -p: DIR and the name's folders */
        *p = 0;
        if (mkdir(path, 0777) != 0 && errno != EEXIST) { fprintf(stderr, "dsedge-run: cannot create folder %s\n", path); return 1; }
        *p = '/';
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *model_path = NULL, *out_dir = NULL;
    const char *in_args[256];
    int n_in_args = 0, info = 0, profile = 0, ref = 0, no_amx = 0, no_avx512 = 0, as_json = 0;
    long repeat = 0, threads = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--input") == 0 && i + 1 < argc) {
            if (n_in_args == 256) { fprintf(stderr, "dsedge-run: too many --input\n"); return 2; }
            in_args[n_in_args++] = argv[++i];
        } else if (strcmp(a, "--output-dir") == 0 && i + 1 < argc) out_dir = argv[++i];
        else if (strcmp(a, "--repeat") == 0 && i + 1 < argc) {
            char *end;
            repeat = strtol(argv[++i], &end, 10);
            if (*end || repeat < 0 || repeat > 100000000L) { fprintf(stderr, "dsedge-run: --repeat needs a count >= 0\n"); return 2; }
        } else if (strcmp(a, "--threads") == 0 && i + 1 < argc) {
            char *end;
            threads = strtol(argv[++i], &end, 10);
            if (*end || threads < 1 || threads > DSE_MAX_THREADS) { fprintf(stderr, "dsedge-run: --threads needs a count from 1 to %d\n", DSE_MAX_THREADS); return 2; }
        } else if (strcmp(a, "--info") == 0) info = 1;
        else if (strcmp(a, "--profile") == 0) profile = 1;
        else if (strcmp(a, "--ref") == 0) ref = 1;
        else if (strcmp(a, "--no-amx") == 0) no_amx = 1;
        else if (strcmp(a, "--no-avx512") == 0) no_avx512 = 1;
        else if (strcmp(a, "--json") == 0) as_json = 1;
        else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) { usage(); return 0; }
        else if (a[0] == '-' && a[1]) { fprintf(stderr, "dsedge-run: unknown or incomplete option %s\n", a); usage(); return 2; }
        else if (!model_path) model_path = a;
        else { fprintf(stderr, "dsedge-run: unexpected argument %s\n", a); usage(); return 2; }
    }
    if (!model_path) { usage(); return 2; }
    if (as_json && !profile && !repeat) { fprintf(stderr, "dsedge-run: --json goes with --profile or --repeat\n"); return 2; }
    { const uint16_t one = 1; if (*(const uint8_t *)&one != 1) { fprintf(stderr, "dsedge-run: big-endian hosts are not supported\n"); return 1; } }

    dse_model *m = NULL;
    dse_error e;
    if (dse_model_load_file(model_path, (ref ? DSE_LOAD_REF_KERNELS : 0u) | (no_amx ? DSE_LOAD_NO_AMX : 0u) | (no_avx512 ? DSE_LOAD_NO_AVX512 : 0u), &m, &e) != DSE_OK) {
        fprintf(stderr, "dsedge-run: %s: %s (%s)\n", model_path, e.message, dse_status_string(e.code));
        return 1;
    }
    size_t ni = dse_model_input_count(m), no = dse_model_output_count(m);
    if (info) {
        dse_tensor_info t;
        printf("model %s: %zu nodes, arena %zu bytes, runtime %s\n", model_path, dse_model_node_count(m), dse_arena_size(m), dse_version());
        for (size_t i = 0; i < ni + no; i++) {
            if (i < ni) dse_model_input(m, i, &t); else dse_model_output(m, i - ni, &t);
            printf("%s %s %s ", i < ni ? "input" : "output", t.name, dse_dtype_name(t.dtype));
            print_shape(stdout, &t);
            if (t.quant == DSE_QUANT_TENSOR) printf(" scale=%.9g zero_point=%d", (double)t.scales[0], (int)t.zero_points[0]);
            printf("\n");
        }
        for (size_t i = 0; i < dse_model_metadata_count(m); i++) {
            dse_meta md;
            dse_model_metadata_at(m, i, &md);
            printf("metadata %s\n", md.key);
        }
    }
    int rc = 1;
    npy_array *arrays = calloc(ni ? ni : 1, sizeof *arrays);
    double *times = calloc(repeat ? (size_t)repeat : 1, sizeof *times);
    dse_session *s = NULL;
    profile_buf prof;
    int prof_fail = profile_alloc(&prof, profile ? (repeat ? (size_t)repeat : 10) : 0, profile ? dse_model_node_count(m) : 0);
    if (!arrays || !times || prof_fail) { fprintf(stderr, "dsedge-run: out of memory\n"); goto done; }
    for (int k = 0; k < n_in_args; k++) {
        const char *arg = in_args[k], *eq = strchr(arg, '='), *file = arg;
        int idx = -1;
        if (eq) {
            char name[1024];
            size_t n = (size_t)(eq - arg);
            if (n < sizeof name) {
                memcpy(name, arg, n);
                name[n] = 0;
                idx = dse_model_find_input(m, name);
                if (idx >= 0) file = eq + 1;
            }
        }
        if (idx < 0) {
            if (ni == 1 && !eq) idx = 0;
            else {
                fprintf(stderr, "dsedge-run: --input %s: no such input; the model's inputs are:", arg);
                for (size_t i = 0; i < ni; i++) { dse_tensor_info t; dse_model_input(m, i, &t); fprintf(stderr, " %s", t.name); }
                fprintf(stderr, "\n");
                rc = 2;
                goto done;
            }
        }
        dse_tensor_info t;
        dse_model_input(m, (size_t)idx, &t);
        if (arrays[idx].data) { fprintf(stderr, "dsedge-run: input %s given twice\n", t.name); rc = 2; goto done; }
        char msg[256];
        if (npy_read(file, &arrays[idx], msg, sizeof msg)) { fprintf(stderr, "dsedge-run: %s: %s\n", file, msg); rc = 2; goto done; }
        int same = arrays[idx].rank == t.rank && arrays[idx].dtype == (int)t.dtype;
        for (size_t d = 0; same && d < t.rank; d++) same = arrays[idx].dims[d] == t.dims[d];
        if (!same || arrays[idx].nbytes != t.nbytes) {
            fprintf(stderr, "dsedge-run: %s: input %s expects %s ", file, t.name, dse_dtype_name(t.dtype));
            print_shape(stderr, &t);
            dse_tensor_info got = {0};
            got.rank = arrays[idx].rank;
            memcpy(got.dims, arrays[idx].dims, sizeof got.dims);
            fprintf(stderr, ", the file holds %s ", dse_dtype_name(arrays[idx].dtype));
            print_shape(stderr, &got);
            fprintf(stderr, "\n");
            rc = 2;
            goto done;
        }
    }
    for (size_t i = 0; i < ni; i++)
        if (!arrays[i].data) {
            dse_tensor_info t;
            dse_model_input(m, i, &t);
            if (info && n_in_args == 0) { rc = 0; goto done; }   /* --info alone: nothing to run */
            fprintf(stderr, "dsedge-run: input %s is missing (--input %s=FILE.npy)\n", t.name, t.name);
            rc = 2;
            goto done;
        }
    dse_session_options opt = {sizeof opt, (unsigned)threads};
    if (dse_session_create_ex(m, NULL, 0, &opt, &s, &e) != DSE_OK) { fprintf(stderr, "dsedge-run: %s\n", e.message); goto done; }
    for (size_t i = 0; i < ni; i++)
        if (dse_session_set_input(s, i, arrays[i].data, arrays[i].nbytes, &e) != DSE_OK) { fprintf(stderr, "dsedge-run: %s\n", e.message); goto done; }
    if (dse_session_run(s, &e) != DSE_OK) { fprintf(stderr, "dsedge-run: run failed: %s\n", e.message); goto done; }
    for (size_t i = 0; i < no; i++) {
        dse_tensor_info t;
        const void *data;
        size_t nbytes;
        dse_model_output(m, i, &t);
        dse_session_get_output(s, i, &data, &nbytes);
        fprintf(stderr, "output %s: %s ", t.name, dse_dtype_name(t.dtype));
        print_shape(stderr, &t);
        fprintf(stderr, "\n");
        if (out_dir) {
            char path[4096], fallback[32], msg[256];
            const char *name = t.name;
            if (!name[0]) { snprintf(fallback, sizeof fallback, "output%zu", i); name = fallback; }
            if (output_path(out_dir, name, path, sizeof path)) goto done;
            if (npy_write(path, t.dtype, t.rank, t.dims, data, nbytes, msg, sizeof msg)) { fprintf(stderr, "dsedge-run: %s: %s\n", path, msg); goto done; }
        }
    }
    if (profile) {
        for (size_t r = 0; r < prof.runs; r++)
            if (dse_session_run_profile(s, prof.ns + r * prof.nodes, &e) != DSE_OK) {
                fprintf(stderr, "dsedge-run: --profile: %s (%s)\n", e.message, dse_status_string(e.code));
                goto done;
            }
        profile_print(m, &prof, model_path, ref, as_json);
    } else if (repeat > 0) {
        for (long r = 0; r < repeat; r++) {
            double t0 = now_ms();
            dse_session_run(s, NULL);
            times[r] = now_ms() - t0;
        }
        double sum = 0;
        for (long r = 0; r < repeat; r++) sum += times[r];
        qsort(times, (size_t)repeat, sizeof *times, cmp_double);
        double med = repeat % 2 ? times[repeat / 2] : (times[repeat / 2 - 1] + times[repeat / 2]) / 2;
        if (as_json)
            printf("{\"latency_ms\": {\"min\": %.6f, \"median\": %.6f, \"mean\": %.6f}, \"runs\": %ld, \"ref_kernels\": %s, "
                   "\"peak_rss_kb\": %ld}\n", times[0], med, sum / (double)repeat, repeat, ref ? "true" : "false", peak_rss_kb());
        else {
            printf("latency_ms min=%.4f median=%.4f mean=%.4f runs=%ld\n", times[0], med, sum / (double)repeat, repeat);
            printf("peak_rss_kb=%ld\n", peak_rss_kb());
        }
    }
    rc = 0;
done:
    dse_session_free(s);
    for (size_t i = 0; arrays && i < ni; i++) free(arrays[i].data);
    free(arrays);
    free(times);
    profile_free(&prof);
    dse_model_free(m);
    return rc;
}
