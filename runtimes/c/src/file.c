/* file.c: dse_model_load_file — map the file read-only (POSIX mmap), or read it into a
 * 64-byte aligned heap buffer where mapping is unavailable or fails. The model owns the
 * mapping/buffer and releases it in dse_model_free. */
#if !defined(_WIN32)
#define _POSIX_C_SOURCE 200809L
#endif
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#define DSE_HAVE_MMAP 1
#endif

void dse__release_file(dse_model *m) {
    if (!m->owned) return;
#ifdef DSE_HAVE_MMAP
    if (m->owned_is_map) { munmap(m->owned, m->owned_len); return; }
#endif
    free(m->owned);
}

static dse_status load_owned(void *p, size_t len, int is_map, unsigned flags, dse_model **out, dse_error *err) {
    dse_status st = dse_model_load_ex(p, len, flags, out, err);
    if (st == DSE_OK) {
        (*out)->owned = p;
        (*out)->owned_len = len;
        (*out)->owned_is_map = is_map;
        return st;
    }
#ifdef DSE_HAVE_MMAP
    if (is_map) { munmap(p, len); return st; }
#endif
    free(p);
    return st;
}

dse_status dse_model_load_file(const char *path, unsigned flags, dse_model **out, dse_error *err) {
    if (!path || !out) { dse__set_error(err, DSE_ERR_ARGUMENT, "path or out is NULL"); return DSE_ERR_ARGUMENT; }
    *out = NULL;
#ifdef DSE_HAVE_MMAP
    int fd = open(path, O_RDONLY);
    if (fd < 0) { dse__set_error(err, DSE_ERR_IO, "%s: cannot open", path); return DSE_ERR_IO; }
    struct stat sb;
    if (fstat(fd, &sb) == 0 && sb.st_size > 0 && (unsigned long long)sb.st_size <= SIZE_MAX) {
        void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p != MAP_FAILED) {
            close(fd);
            return load_owned(p, (size_t)sb.st_size, 1, flags, out, err);
        }
    }
    close(fd);
#endif
    FILE *f = fopen(path, "rb");
    if (!f) { dse__set_error(err, DSE_ERR_IO, "%s: cannot open", path); return DSE_ERR_IO; }
    size_t cap = 1 << 16, len = 0;
    unsigned char *buf = NULL;
    for (;;) {   /* read in growing, 64-byte aligned chunks (the size may not be knowable) */
        unsigned char *nb = aligned_alloc(64, cap);
        if (!nb) { free(buf); fclose(f); dse__set_error(err, DSE_ERR_NOMEM, "%s: out of memory", path); return DSE_ERR_NOMEM; }
        if (buf) memcpy(nb, buf, len);
        free(buf);
        buf = nb;
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap) break;
        if (cap > SIZE_MAX / 2) { free(buf); fclose(f); dse__set_error(err, DSE_ERR_RANGE, "%s: too large", path); return DSE_ERR_RANGE; }
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) { free(buf); dse__set_error(err, DSE_ERR_IO, "%s: read error", path); return DSE_ERR_IO; }
    return load_owned(buf, len, 0, flags, out, err);
}
