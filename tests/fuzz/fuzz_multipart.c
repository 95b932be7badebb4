/*
 * libFuzzer harness of csrc/multipart (cz_multipart.h): boundary extraction
 * and the streaming parser, fed in reads the input chooses, with
 * allocation failures injected (fuzz_common.h). See README.md for the input
 * format and what is checked.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cz_multipart.h"
#include "cz_spool.h"
#include "fuzz_common.h"

#include <fcntl.h>
#include <unistd.h>

static cz_allocator_t *g_alloc;
static int g_verbose;

/* What one run produced: a digest of the completed parts, the outcome, and
 * the parts themselves (for the re-parse check). */
typedef struct {
    char *buf; /* reconstructed body, when built */
    size_t len, cap;
} sbuf_t;

static void sb_put(sbuf_t *b, const void *d, size_t n) {
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->buf = realloc(b->buf, b->cap);
        if (!b->buf) abort();
    }
    if (n) memcpy(b->buf + b->len, d, n);
    b->len += n;
}

typedef struct {
    uint64_t digest;      /* completed parts: headers, decoded fields, data */
    uint64_t named;       /* completed parts: name, filename and data only (what cz_spool keeps) */
    size_t parts;         /* completed parts */
    size_t files, fields; /* of them, with and without filename */
    int done;
    int status;
    const char *reason;
    sbuf_t rebuilt; /* the parts written back as a plain body */
} outcome_t;

static uint64_t str_digest(uint64_t h, cz_multipart_str_t s) {
    FUZZ_CHECK(s.base != NULL);
    h = fnv_u64(h, s.len);
    return fnv(h, s.base, s.len);
}

static int is_bchar(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != 0 && strchr("'()+_,-./:=? ", c) != NULL);
}

/*
 * Feed `body` through a parser with these limits, in reads of the sizes
 * `sizes[0..nsizes)` used in turn (0: all that is left). Each read is a
 * heap copy freed after its events, so a view that outlives it is a
 * use-after-free. `rebuild`: write the parts back as a canonical body.
 */
static void run(const char *boundary, size_t blen, const char *body, size_t len, const cz_multipart_limits_t *lim,
                const uint8_t *sizes, size_t nsizes, int faults, int rebuild, outcome_t *o) {
    cz_multipart_t p;
    size_t off = 0, turn = 0;
    uint64_t part_h = FNV_INIT, part_n = FNV_INIT, part_data = 0;
    int in_part = 0;
    cz_multipart_event_t ev = CZ_MULTIPART_NEED_MORE;
    const cz_multipart_limits_t *L;

    memset(o, 0, sizeof(*o));
    o->digest = o->named = FNV_INIT;
    FUZZ_CHECK(cz_multipart_init(&p, g_alloc, boundary, blen, lim) == 0);
    L = &p.limits;
    if (rebuild) {
        sb_put(&o->rebuilt, "--", 2);
        sb_put(&o->rebuilt, boundary, blen);
    }
    for (;;) {
        size_t want = nsizes ? sizes[turn++ % nsizes] : 0;
        size_t n = (want == 0 || want > len - off) ? len - off : want;
        char *copy = xmemdup(body + off, n);
        const char *d = copy;
        size_t left = n;

        while (left) {
            size_t used = 99999;
            ev = cz_multipart_feed(&p, d, left, &used);
            FUZZ_CHECK(used <= left);
            FUZZ_CHECK(cz_multipart_held(&p) < blen + 4);
            if (ev == CZ_MULTIPART_NEED_MORE) FUZZ_CHECK(used == left);
            if (ev == CZ_MULTIPART_PART_BEGIN) {
                const cz_multipart_part_t *pt = cz_multipart_part(&p);
                FUZZ_CHECK(!in_part);
                in_part = 1;
                part_h = FNV_INIT;
                part_data = 0;
                part_h = str_digest(part_h, pt->name);
                part_n = str_digest(fnv_u64(FNV_INIT, pt->has_filename), pt->name);
                if (pt->has_filename) part_n = str_digest(part_n, pt->filename);
                part_h = fnv_u64(part_h, pt->has_filename * 4u + pt->has_filename_plain * 2u + pt->has_filename_star);
                if (pt->has_filename) part_h = str_digest(part_h, pt->filename);
                part_h = str_digest(part_h, pt->filename_plain);
                part_h = str_digest(part_h, pt->content_type);
                FUZZ_CHECK(pt->num_headers >= 1 && pt->num_headers <= L->max_headers);
                FUZZ_CHECK(pt->has_filename == (pt->has_filename_plain || pt->has_filename_star));
                if (!pt->has_filename_star && pt->has_filename)
                    FUZZ_CHECK(pt->filename.len == pt->filename_plain.len &&
                               memcmp(pt->filename.base, pt->filename_plain.base, pt->filename.len) == 0);
                if (rebuild) sb_put(&o->rebuilt, "\r\n", 2);
                for (size_t i = 0; i < pt->num_headers; i++) {
                    cz_multipart_str_t hn = pt->headers[i].name, hv = pt->headers[i].value;
                    part_h = str_digest(str_digest(part_h, hn), hv);
                    FUZZ_CHECK(hn.len > 0 && memchr(hn.base, ':', hn.len) == NULL);
                    FUZZ_CHECK(memchr(hv.base, '\r', hv.len) == NULL && memchr(hv.base, '\n', hv.len) == NULL);
                    FUZZ_CHECK(hv.len == 0 || (hv.base[0] != ' ' && hv.base[hv.len - 1] != ' '));
                    if (rebuild) {
                        sb_put(&o->rebuilt, hn.base, hn.len);
                        sb_put(&o->rebuilt, ": ", 2);
                        sb_put(&o->rebuilt, hv.base, hv.len);
                        sb_put(&o->rebuilt, "\r\n", 2);
                    }
                }
                if (rebuild) sb_put(&o->rebuilt, "\r\n", 2);
            } else if (ev == CZ_MULTIPART_PART_DATA) {
                cz_multipart_str_t v = cz_multipart_data(&p);
                uintptr_t b = (uintptr_t)v.base, e = b + v.len;
                int in_input = b >= (uintptr_t)d && e <= (uintptr_t)(d + used);
                int in_parser = b >= (uintptr_t)&p && e <= (uintptr_t)(&p + 1);
                FUZZ_CHECK(in_part && v.len > 0 && (in_input || in_parser));
                part_h = fnv(part_h, v.base, v.len);
                part_n = fnv(part_n, v.base, v.len);
                part_data += v.len;
                if (rebuild) sb_put(&o->rebuilt, v.base, v.len);
            } else if (ev == CZ_MULTIPART_PART_END) {
                const cz_multipart_part_t *pt = cz_multipart_part(&p);
                FUZZ_CHECK(in_part);
                FUZZ_CHECK(part_data <= (pt->has_filename ? L->max_file_size : L->max_field_size));
                in_part = 0;
                o->parts++;
                *(pt->has_filename ? &o->files : &o->fields) += 1;
                FUZZ_CHECK(o->parts <= L->max_parts && o->files <= L->max_files && o->fields <= L->max_fields);
                o->digest = fnv_u64(fnv_u64(o->digest, part_h), part_data);
                o->named = fnv_u64(fnv_u64(o->named, part_n), part_data);
                if (rebuild) {
                    sb_put(&o->rebuilt, "\r\n--", 4);
                    sb_put(&o->rebuilt, boundary, blen);
                }
            } else if (ev == CZ_MULTIPART_DONE) {
                FUZZ_CHECK(!in_part);
            }
            d += used;
            left -= used;
            if (ev == CZ_MULTIPART_ERROR || ev == CZ_MULTIPART_DONE) break;
        }
        free(copy);
        off += n;
        if (ev == CZ_MULTIPART_ERROR || ev == CZ_MULTIPART_DONE || off >= len) break;
    }
    if (ev != CZ_MULTIPART_ERROR && ev != CZ_MULTIPART_DONE) ev = cz_multipart_finish(&p);
    FUZZ_CHECK(cz_multipart_finish(&p) == ev);
    if (ev == CZ_MULTIPART_DONE) {
        o->done = 1;
        if (rebuild) sb_put(&o->rebuilt, "--", 2);
    } else {
        size_t used = 1;
        FUZZ_CHECK(ev == CZ_MULTIPART_ERROR);
        o->status = cz_multipart_status(&p);
        o->reason = cz_multipart_reason(&p);
        FUZZ_CHECK(o->reason && strncmp(o->reason, "multipart: ", 11) == 0);
        FUZZ_CHECK(o->status == 400 || o->status == 413 || (o->status == 500 && faults));
        FUZZ_CHECK(cz_multipart_feed(&p, "x", 1, &used) == CZ_MULTIPART_ERROR && used == 0);
    }
    /* reset gives a parser that takes a plain body */
    if (!faults && blen + 4 <= L->max_total) {
        static const char plain[] = "\r\n--";
        size_t used;
        cz_multipart_reset(&p);
        FUZZ_CHECK(cz_multipart_feed(&p, plain + 2, 2, &used) == CZ_MULTIPART_NEED_MORE);
        FUZZ_CHECK(cz_multipart_feed(&p, boundary, blen, &used) == CZ_MULTIPART_NEED_MORE);
        FUZZ_CHECK(cz_multipart_feed(&p, "--", 2, &used) == CZ_MULTIPART_DONE);
    }
    cz_multipart_destroy(&p);
}

/*
 * The same body through cz_spool (the reads the input asks for, files past
 * 8 bytes spilled to temporary files): the outcome of the parser alone, and
 * the same parts (name, filename, data read back from memory or the file).
 */
static void run_spool(const char *boundary, size_t blen, const char *body, size_t len, const cz_multipart_limits_t *lim,
                      const uint8_t *sizes, size_t nsizes, int faults, const outcome_t *ref) {
    char ct[CZ_MULTIPART_BOUNDARY_MAX + 40];
    int cl = snprintf(ct, sizeof(ct), "multipart/form-data; boundary=\"%.*s\"", (int)blen, boundary);
    const char *why = NULL;
    cz_spool_t s;
    size_t off = 0, turn = 0;
    int st = cz_spool_init(&s, g_alloc, ct, (size_t)cl, lim, 8, NULL, &why);
    FUZZ_CHECK(st == 0);
    while (!st && off < len) {
        size_t want = nsizes ? sizes[turn++ % nsizes] : 0;
        size_t n = (want == 0 || want > len - off) ? len - off : want;
        char *copy = xmemdup(body + off, n); /* a view kept past the call is a use-after-free */
        st = cz_spool_feed(&s, copy, n);
        free(copy);
        off += n;
    }
    if (!st) st = cz_spool_finish(&s);
    FUZZ_CHECK(st == cz_spool_status(&s));
    int fds[64], nfds = 0;
    if (faults && st == 500) {
        /* an allocation failed: refused, nothing kept (checked by the leak check) */
    } else if (st) {
        FUZZ_CHECK(!ref->done && st == ref->status && cz_spool_reason(&s) == ref->reason);
    } else {
        uint64_t named = FNV_INIT;
        size_t parts = 0;
        FUZZ_CHECK(ref->done);
        for (const cz_spool_part_t *p = cz_spool_parts(&s); p; p = p->next) {
            uint64_t h = str_digest(fnv_u64(FNV_INIT, p->has_filename), p->name);
            if (p->has_filename) h = str_digest(h, p->filename);
            FUZZ_CHECK(p->fd < 0 || p->has_filename);                    /* only files spill */
            FUZZ_CHECK((p->fd >= 0) == (p->has_filename && p->len > 8)); /* and only past the threshold */
            if (p->fd >= 0) {
                char buf[4096];
                uint64_t at = 0;
                while (at < p->len) {
                    ssize_t r = pread(p->fd, buf, sizeof(buf), (off_t)at);
                    FUZZ_CHECK(r > 0);
                    h = fnv(h, buf, (size_t)r);
                    at += (uint64_t)r;
                }
                FUZZ_CHECK(at == p->len);
                if (nfds < 64) fds[nfds++] = p->fd;
            } else if (p->len) {
                h = fnv(h, p->data, (size_t)p->len);
            }
            named = fnv_u64(fnv_u64(named, h), p->len);
            parts++;
        }
        FUZZ_CHECK(parts == ref->parts && named == ref->named);
    }
    cz_spool_destroy(&s);
    for (int i = 0; i < nfds; i++) FUZZ_CHECK(fcntl(fds[i], F_GETFD) < 0); /* every file closed */
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    g_verbose = getenv("FUZZ_VERBOSE") != NULL;
    g_alloc = cz_allocator_create(CZ_BACKEND_MALLOC, NULL, 0);
    if (!g_alloc) abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mem_mark_t start = mem_mark(g_alloc);
    cz_multipart_limits_t lim, *limp = NULL;
    char boundary[CZ_MULTIPART_BOUNDARY_MAX];
    size_t blen = 0, sizes_n = 3;
    const char *body;
    size_t len;
    const char *why = NULL;
    uint8_t opt, fault;
    uint8_t sizes[3];
    long fault_at = 0;
    static outcome_t a, b, c;

    if (size < 5) return 0;
    opt = data[0];
    fault = data[1];
    for (int i = 0; i < 3; i++) {
        uint8_t s = data[2 + i];
        sizes[i] = (uint8_t)(s == '@' ? 0 : s == 'A' ? 1 : (s & 0x3f));
    }
    data += 5;
    size -= 5;

    /* bits 0-1: limits */
    memset(&lim, 0, sizeof(lim));
    switch (opt & 3) {
    case 1:
        lim.max_parts = 4;
        lim.max_header_bytes = 96;
        lim.max_headers = 3;
        lim.max_field_size = 16;
        lim.max_file_size = 40;
        lim.max_total = 400;
        lim.max_files = 2;
        lim.max_fields = 3;
        limp = &lim;
        break;
    case 2:
        lim.max_parts = 1;
        lim.max_header_bytes = 48;
        lim.max_headers = 1;
        lim.max_field_size = 1;
        lim.max_file_size = 1;
        lim.max_total = 64;
        limp = &lim;
        break;
    case 3:
        lim.max_parts = 2;
        lim.max_header_bytes = 200;
        lim.max_headers = 8;
        lim.max_field_size = 300;
        lim.max_total = 1000;
        limp = &lim;
        break;
    default: break;
    }

    if (opt & 4) {
        /* the first line is a Content-Type value */
        const uint8_t *nl = memchr(data, '\n', size);
        size_t ctlen = nl ? (size_t)(nl - data) : size;
        char *ct = xmemdup(data, ctlen);
        int st = cz_multipart_boundary(ct, ctlen, boundary, &blen, &why);

        if (st == 0) {
            char canon[CZ_MULTIPART_BOUNDARY_MAX + 40], again[CZ_MULTIPART_BOUNDARY_MAX];
            size_t alen = 0;
            int cl;

            FUZZ_CHECK(blen >= 1 && blen <= CZ_MULTIPART_BOUNDARY_MAX);
            for (size_t i = 0; i < blen; i++) FUZZ_CHECK(is_bchar((unsigned char)boundary[i]));
            FUZZ_CHECK(boundary[blen - 1] != ' ');
            /* the canonical form gives the same boundary back */
            cl = snprintf(canon, sizeof(canon), "multipart/form-data; boundary=\"%.*s\"", (int)blen, boundary);
            FUZZ_CHECK(cz_multipart_boundary(canon, (size_t)cl, again, &alen, NULL) == 0);
            FUZZ_CHECK(alen == blen && memcmp(again, boundary, blen) == 0);
        } else {
            FUZZ_CHECK((st == 400 || st == 415) && why && strncmp(why, "multipart: ", 11) == 0);
        }
        free(ct);
        if (st != 0) {
            mem_expect(g_alloc, start, "boundary");
            return 0;
        }
        body = nl ? (const char *)nl + 1 : "";
        len = nl ? size - ctlen - 1 : 0;
    } else {
        memcpy(boundary, "XyZ", 3);
        blen = 3;
        body = (const char *)data;
        len = size;
    }

    if (fault >= 0x80) fault_at = fault - 0x7f;

    /* 1: the reads the input asks for, with a failure injected */
    fault_arm(fault_at);
    run(boundary, blen, body, len, limp, sizes, sizes_n, fault_at != 0, 0, &a);
    fault_arm(0);
    mem_expect(g_alloc, start, "split run");

    /* 2: whole, no failure: the same parts and outcome (split invariance) */
    run(boundary, blen, body, len, limp, NULL, 0, 0, 1, &b);
    mem_expect(g_alloc, start, "whole run");
    if (!(fault_at && a.status == 500)) {
        FUZZ_CHECK(a.done == b.done && a.status == b.status);
        if (a.reason != b.reason && g_verbose) fprintf(stderr, "split: %s / whole: %s\n", a.reason, b.reason);
        FUZZ_CHECK(a.reason == b.reason);
        FUZZ_CHECK(a.parts == b.parts && a.digest == b.digest);
    }

    /* 4: cz_spool over the same reads: the same outcome and parts */
    fault_arm(fault_at);
    run_spool(boundary, blen, body, len, limp, sizes, sizes_n, fault_at != 0, &b);
    fault_arm(0);
    mem_expect(g_alloc, start, "spool run");

    /* 3: a body written back from the events parses to the same parts */
    if (b.done) {
        cz_multipart_limits_t loose;
        static const uint8_t ones[1] = {1};

        cz_multipart_limits_default(&loose);
        loose.max_parts = SIZE_MAX;
        loose.max_field_size = SIZE_MAX;
        if (limp) loose.max_headers = limp->max_headers > loose.max_headers ? limp->max_headers : loose.max_headers;
        run(boundary, blen, b.rebuilt.buf, b.rebuilt.len, &loose, NULL, 0, 0, 0, &c);
        if (!(c.status == 413 && strcmp(c.reason, "multipart: part header too large") == 0)) {
            FUZZ_CHECK(c.done && c.parts == b.parts && c.digest == b.digest);
            if (b.rebuilt.len < 2048) {
                run(boundary, blen, b.rebuilt.buf, b.rebuilt.len, &loose, ones, 1, 0, 0, &c);
                FUZZ_CHECK(c.done && c.parts == b.parts && c.digest == b.digest);
            }
        }
    }
    if (g_verbose)
        fprintf(stderr, "multipart: %zu bytes, boundary %.*s, %zu parts, %s%s\n", len, (int)blen, boundary, b.parts,
                b.done ? "done" : "error ", b.done ? "" : b.reason);
    free(b.rebuilt.buf);
    free(a.rebuilt.buf);
    free(c.rebuilt.buf);
    mem_expect(g_alloc, start, "input");
    return 0;
}
