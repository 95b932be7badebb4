/*
 * cz_accesslog — access log lines formatted in C, appended to a buffer the
 * embedder hands to its logger in batches (py_server.c: 64 KiB, or every
 * timer sweep), so logging a request costs no call into Python.
 *
 * Formats (one line each, ending in '\n'):
 *
 *   COMMON  the Common Log Format:
 *           127.0.0.1 - - [30/Nov/2026:20:49:36 +0000] "GET /x?y=1 HTTP/1.1" 200 123
 *           (the last field: bytes of the answer, head included; "-" for 0)
 *   JSON    one JSON object per line:
 *           {"time":"2026-11-30T20:49:36Z","client":"127.0.0.1","method":"GET",
 *            "path":"/x?y=1","http":"1.1","status":200,"bytes":123,"duration_ms":0.042}
 *
 * Request-target bytes that could break a line are escaped: '"', '\' and
 * bytes outside 0x20..0x7e as \xHH (COMMON) or \" \\ \u00HH (JSON).
 * So every byte appended is ASCII ('\n' or 0x20..0x7e): the embedder may
 * hand a batch on as text without decoding it (py_server.c does).
 * Timestamps are UTC, formatted once per second (a cz_accesslog_t per loop).
 * Memory: only the output buffer's (cz_http_buf_t, CZ_MEM_RESPONSE).
 */
#ifndef CZ_ACCESSLOG_H
#define CZ_ACCESSLOG_H

#include <stdint.h>
#include <time.h>

#include "cz_http.h"

typedef enum { CZ_ACCESSLOG_COMMON = 0, CZ_ACCESSLOG_JSON } cz_accesslog_format_t;

/* One entry: what is known of a request once its answer is queued. */
typedef struct {
    const cz_http_request_t *req;
    const char *client; /* peer address as text, or NULL ("-") */
    int status;
    uint64_t bytes;       /* of the answer, head included */
    uint64_t duration_ns; /* dispatch to answer queued */
    time_t when;          /* wall clock, seconds */
} cz_accesslog_entry_t;

typedef struct {
    cz_accesslog_format_t format;
    time_t cached;  /* second of `stamp` */
    char stamp[40]; /* "[30/Nov/2026:20:49:36 +0000]" or "2026-11-30T20:49:36Z" */
    size_t stamp_len;
} cz_accesslog_t;

void cz_accesslog_init(cz_accesslog_t *l, cz_accesslog_format_t format);
/* Append the line of `e` to `out`: CZ_HTTP_OK, or ENOMEM / E2BIG with
 * nothing appended. */
int cz_accesslog_append(cz_accesslog_t *l, cz_http_buf_t *out, const cz_accesslog_entry_t *e);

#endif /* CZ_ACCESSLOG_H */
