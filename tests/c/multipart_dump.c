/*
 * Test-only CLI for tests/multipart: parses a multipart/form-data body with
 * csrc/multipart until the parser is reachable from Python.
 *
 *   multipart_dump CONTENT-TYPE [FEED-SIZE] < body
 *
 * Feeds the body FEED-SIZE bytes at a time (default: all at once) and prints
 * one JSON object per line; every string is hex-encoded bytes, so that any
 * byte survives:
 *   {"part":{"name":H,"filename":H|null,"filename_plain":H|null,
 *            "filename_star":0|1,"content_type":H|null,"headers":[[H,H],...],
 *            "body":H}}
 *   {"done":1}                                   the close delimiter was seen
 *   {"error":STATUS,"reason":"multipart: ..."}   (reason is plain ASCII)
 * Exit status 0 in both cases, 2 on a usage or I/O error.
 */
#include "cz_multipart.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void hex(const char *s, size_t n) {
    putchar('"');
    for (size_t i = 0; i < n; i++) printf("%02x", (unsigned char)s[i]);
    putchar('"');
}

static void hex_or_null(cz_multipart_str_t s, int present) {
    if (present) hex(s.base, s.len);
    else fputs("null", stdout);
}

int main(int argc, char **argv) {
    char boundary[CZ_MULTIPART_BOUNDARY_MAX];
    size_t blen = 0, len = 0, cap = 1 << 16, step, off = 0;
    const char *why = NULL;
    char *body, *part_body = NULL;
    size_t pb_len = 0, pb_cap = 0;
    cz_allocator_t *a;
    cz_multipart_t p;
    cz_multipart_event_t ev = CZ_MULTIPART_NEED_MORE;
    int status;

    if (argc < 2) {
        fprintf(stderr, "usage: %s CONTENT-TYPE [FEED-SIZE] < body\n", argv[0]);
        return 2;
    }
    body = malloc(cap);
    if (!body) return 2;
    for (;;) {
        size_t r = fread(body + len, 1, cap - len, stdin);
        len += r;
        if (len < cap) break;
        char *nb = realloc(body, cap * 2);
        if (!nb) {
            free(body);
            return 2;
        }
        body = nb;
        cap *= 2;
    }
    a = cz_allocator_create(CZ_BACKEND_MALLOC, NULL, 0);
    if (!a) return 2;
    step = argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) : 0;
    if (step == 0) step = len ? len : 1;

    status = cz_multipart_boundary(argv[1], strlen(argv[1]), boundary, &blen, &why);
    if (status) {
        printf("{\"error\":%d,\"reason\":\"%s\"}\n", status, why);
        return 0;
    }
    cz_multipart_init(&p, a, boundary, blen, NULL);
    for (;;) {
        size_t n = len - off < step ? len - off : step, used = 0;

        if (off == len) {
            ev = cz_multipart_finish(&p);
            break;
        }
        /* one feed of up to `step` bytes, driven until it is consumed */
        {
            const char *d = body + off;
            size_t left = n;
            while (left) {
                ev = cz_multipart_feed(&p, d, left, &used);
                d += used;
                left -= used;
                if (ev == CZ_MULTIPART_ERROR || ev == CZ_MULTIPART_DONE) break;
                if (ev == CZ_MULTIPART_PART_BEGIN) {
                    pb_len = 0;
                } else if (ev == CZ_MULTIPART_PART_DATA) {
                    cz_multipart_str_t v = cz_multipart_data(&p);
                    if (pb_len + v.len > pb_cap) {
                        char *nb = realloc(part_body, (pb_len + v.len) * 2);
                        if (!nb) return 2;
                        part_body = nb;
                        pb_cap = (pb_len + v.len) * 2;
                    }
                    memcpy(part_body + pb_len, v.base, v.len);
                    pb_len += v.len;
                } else if (ev == CZ_MULTIPART_PART_END) {
                    const cz_multipart_part_t *pt = cz_multipart_part(&p);
                    fputs("{\"part\":{\"name\":", stdout);
                    hex(pt->name.base, pt->name.len);
                    fputs(",\"filename\":", stdout);
                    hex_or_null(pt->filename, pt->has_filename);
                    fputs(",\"filename_plain\":", stdout);
                    hex_or_null(pt->filename_plain, pt->has_filename_plain);
                    printf(",\"filename_star\":%d,\"content_type\":", pt->has_filename_star);
                    hex_or_null(pt->content_type, pt->content_type.len > 0);
                    fputs(",\"headers\":[", stdout);
                    for (size_t i = 0; i < pt->num_headers; i++) {
                        fputs(i ? ",[" : "[", stdout);
                        hex(pt->headers[i].name.base, pt->headers[i].name.len);
                        putchar(',');
                        hex(pt->headers[i].value.base, pt->headers[i].value.len);
                        putchar(']');
                    }
                    fputs("],\"body\":", stdout);
                    hex(part_body ? part_body : "", pb_len);
                    fputs("}}\n", stdout);
                }
            }
        }
        if (ev == CZ_MULTIPART_ERROR || ev == CZ_MULTIPART_DONE) break;
        off += n;
    }
    if (ev == CZ_MULTIPART_DONE) puts("{\"done\":1}");
    else printf("{\"error\":%d,\"reason\":\"%s\"}\n", cz_multipart_status(&p), cz_multipart_reason(&p));
    cz_multipart_destroy(&p);
    cz_allocator_destroy(a);
    free(part_body);
    free(body);
    return 0;
}
