/*
 * cz_cond — conditional requests and byte ranges for a file (RFC 9110
 * sections 13 and 14): given a request and the file's validators (size,
 * modification time, entity tag), decide what to answer: the whole file,
 * one range of it, 304, 412 or 416. No I/O, no allocation: the file
 * responses of the server and, later, its static files use the same rules.
 *
 * Order of evaluation (RFC 9110 13.2.2):
 *   1. If-Match: no listed tag matches the file's (strong comparison; "*"
 *      always matches an existing file) -> 412.
 *   2. otherwise If-Unmodified-Since (a valid HTTP-date): modified after
 *      it -> 412.
 *   3. If-None-Match: a listed tag matches (weak comparison, or "*") ->
 *      304 for GET and HEAD, 412 otherwise.
 *   4. otherwise, for GET and HEAD, If-Modified-Since (valid date):
 *      not modified since -> 304.
 *   5. Range, for GET only, in bytes: one satisfiable range -> 206; none
 *      satisfiable -> 416; several ranges -> the whole file (200: no
 *      multipart/byteranges); a Range that does not parse, or another unit,
 *      is ignored (200). If-Range that does not match (a strong tag equal
 *      to the file's, or a date equal to its modification time) -> 200.
 * Dates are accepted in all three HTTP-date forms (IMF-fixdate, RFC 850,
 * asctime); a field with an invalid date is ignored, as the RFC says.
 *
 * Threads: pure functions.
 */
#ifndef CZ_COND_H
#define CZ_COND_H

#include <stdint.h>

#include "cz_http.h"

typedef struct {
    uint64_t size;
    int64_t mtime;      /* seconds since the epoch */
    cz_http_str_t etag; /* with its quotes, "W/" for a weak one; len 0: none */
} cz_cond_file_t;

typedef struct {
    int status;      /* 200, 206, 304, 412 or 416 */
    uint64_t offset; /* 200/206: the bytes to send */
    uint64_t length;
} cz_cond_answer_t;

/* Decide the answer to `req` for a file described by `f`. */
void cz_cond_decide(const cz_http_request_t *req, const cz_cond_file_t *f, cz_cond_answer_t *out);

/* Parse an HTTP-date (any of the three forms) into *t (seconds since the
 * epoch). 0 on success, -1 when it is not one. */
int cz_cond_parse_date(cz_http_str_t s, int64_t *t);

#endif /* CZ_COND_H */
