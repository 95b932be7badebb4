/* cz_spool — multipart/form-data parts kept in memory or spilled to unnamed
 * temporary files (see cz_spool.h). */
#define _GNU_SOURCE
#include "cz_spool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DATA_FIRST_CAP 4096u

int cz_spool_init(cz_spool_t *s, cz_allocator_t *a, const char *content_type, size_t ct_len,
                  const cz_multipart_limits_t *limits, size_t memory_max, const char *tmpdir, const char **reason) {
    char boundary[CZ_MULTIPART_BOUNDARY_MAX];
    size_t blen;

    memset(s, 0, sizeof(*s));
    s->alloc = a;
    s->memory_max = memory_max ? memory_max : CZ_SPOOL_DEFAULT_MEMORY_MAX;
    s->tmpdir = tmpdir ? tmpdir : "/tmp";
    /* a parser with a placeholder boundary, so destroy() is always valid */
    cz_multipart_init(&s->mp, a, "-", 1, limits);
    int status = cz_multipart_boundary(content_type, ct_len, boundary, &blen, &s->reason);
    if (status) {
        s->status = status;
        if (!s->reason) s->reason = "multipart: bad Content-Type";
        *reason = s->reason;
        return status;
    }
    cz_multipart_destroy(&s->mp);
    cz_multipart_init(&s->mp, a, boundary, blen, limits);
    return 0;
}

static int fail(cz_spool_t *s, int status, const char *reason) {
    if (!s->status) {
        s->status = status;
        s->reason = reason;
    }
    return s->status;
}

static size_t meta_size(const cz_multipart_part_t *mp) {
    size_t n = mp->name.len + mp->filename.len + mp->content_type.len;
    for (size_t i = 0; i < mp->num_headers; i++) n += mp->headers[i].name.len + mp->headers[i].value.len;
    return n;
}

/* Copy `v` to *at and return a view of the copy. */
static cz_multipart_str_t put(char **at, cz_multipart_str_t v) {
    cz_multipart_str_t out = {*at, v.len};
    if (v.len) memcpy(*at, v.base, v.len);
    *at += v.len;
    return out;
}

/* A record for the part that begins: the struct, its header views, then
 * every string, in one block. */
static int part_begin(cz_spool_t *s) {
    const cz_multipart_part_t *mp = cz_multipart_part(&s->mp);
    size_t hdrs = mp->num_headers * sizeof(cz_multipart_header_t);
    size_t size = sizeof(cz_spool_part_t) + hdrs + meta_size(mp);
    cz_spool_part_t *p = cz_malloc(s->alloc, CZ_MEM_REQUEST, size);
    if (!p) return fail(s, 500, "multipart: out of memory");
    memset(p, 0, sizeof(*p));
    cz_multipart_header_t *h = (cz_multipart_header_t *)(p + 1);
    char *at = (char *)h + hdrs;
    for (size_t i = 0; i < mp->num_headers; i++) {
        h[i].name = put(&at, mp->headers[i].name);
        h[i].value = put(&at, mp->headers[i].value);
    }
    p->headers = h;
    p->num_headers = mp->num_headers;
    p->name = put(&at, mp->name);
    p->filename = put(&at, mp->has_filename ? mp->filename : (cz_multipart_str_t){"", 0});
    p->content_type = put(&at, mp->content_type);
    p->has_filename = mp->has_filename;
    p->fd = -1;
    if (s->tail) s->tail->next = p;
    else s->head = p;
    s->tail = p;
    s->cur = p;
    return 0;
}

static int write_all(int fd, const char *data, size_t len) {
    while (len) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static int open_tmp(const char *dir) {
#ifdef O_TMPFILE
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0) return fd;
    if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) return -1;
#endif
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/catzilla-upload-XXXXXX", dir) >= (int)sizeof(path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd2 = mkostemp(path, O_CLOEXEC);
    if (fd2 >= 0) unlink(path); /* unnamed from now on */
    return fd2;
}

/* Move a file part's bytes from memory to a temporary file. */
static int spill(cz_spool_t *s, cz_spool_part_t *p) {
    p->fd = open_tmp(s->tmpdir);
    if (p->fd < 0 || write_all(p->fd, p->data, (size_t)p->len) < 0) {
        s->error = errno;
        return fail(s, 500, "multipart: cannot write a temporary file");
    }
    cz_free(s->alloc, CZ_MEM_REQUEST, p->data);
    p->data = NULL;
    p->cap = 0;
    return 0;
}

static int part_data(cz_spool_t *s, cz_multipart_str_t d) {
    cz_spool_part_t *p = s->cur;
    if (p->has_filename && p->fd < 0 && p->len + d.len > s->memory_max && spill(s, p)) return s->status;
    if (p->fd >= 0) {
        if (write_all(p->fd, d.base, d.len) < 0) {
            s->error = errno;
            return fail(s, 500, "multipart: cannot write a temporary file");
        }
        p->len += d.len;
        return 0;
    }
    if (p->len + d.len > p->cap) {
        size_t cap = p->cap ? p->cap : DATA_FIRST_CAP;
        while (cap < p->len + d.len) cap *= 2;
        char *nd = cz_realloc(s->alloc, CZ_MEM_REQUEST, p->data, cap);
        if (!nd) return fail(s, 500, "multipart: out of memory");
        p->data = nd;
        p->cap = cap;
    }
    memcpy(p->data + p->len, d.base, d.len);
    p->len += d.len;
    return 0;
}

/* Handle one parser event; 0 or the error status. */
static int on_event(cz_spool_t *s, cz_multipart_event_t ev) {
    switch (ev) {
    case CZ_MULTIPART_PART_BEGIN: return part_begin(s);
    case CZ_MULTIPART_PART_DATA: return part_data(s, cz_multipart_data(&s->mp));
    case CZ_MULTIPART_PART_END: s->cur = NULL; return 0;
    case CZ_MULTIPART_DONE: s->done = 1; return 0;
    case CZ_MULTIPART_ERROR: return fail(s, cz_multipart_status(&s->mp), cz_multipart_reason(&s->mp));
    case CZ_MULTIPART_NEED_MORE:
    default: return 0;
    }
}

int cz_spool_feed(cz_spool_t *s, const char *data, size_t len) {
    while (!s->status && len) {
        size_t used = 0;
        cz_multipart_event_t ev = cz_multipart_feed(&s->mp, data, len, &used);
        data += used;
        len -= used;
        if (on_event(s, ev)) break;
        if (ev == CZ_MULTIPART_NEED_MORE || ev == CZ_MULTIPART_DONE) break; /* all consumed */
    }
    return s->status;
}

int cz_spool_finish(cz_spool_t *s) {
    if (s->status) return s->status;
    if (!s->done) on_event(s, cz_multipart_finish(&s->mp));
    if (!s->status && !s->done) fail(s, 400, "multipart: body truncated");
    return s->status;
}

const cz_spool_part_t *cz_spool_parts(const cz_spool_t *s) {
    return s->head;
}

int cz_spool_take_fd(cz_spool_part_t *p) {
    int fd = p->fd;
    p->fd = -1;
    return fd;
}

int cz_spool_status(const cz_spool_t *s) {
    return s->status;
}

const char *cz_spool_reason(const cz_spool_t *s) {
    return s->reason;
}

void cz_spool_destroy(cz_spool_t *s) {
    cz_spool_part_t *p = s->head;
    while (p) {
        cz_spool_part_t *next = p->next;
        if (p->fd >= 0) close(p->fd);
        cz_free(s->alloc, CZ_MEM_REQUEST, p->data);
        cz_free(s->alloc, CZ_MEM_REQUEST, p);
        p = next;
    }
    s->head = s->tail = s->cur = NULL;
    cz_multipart_destroy(&s->mp);
}
