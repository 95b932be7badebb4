/*
 * Unit tests of csrc/http/cz_cond (cz_cond.h): HTTP-dates in their three
 * forms, entity-tag comparison, the order of the conditional fields, byte
 * ranges.
 *
 * Plain C: CHECK counts; the last line is "N passed, M failed"; the exit
 * status is non-zero when anything failed.
 */
#include "check.h"
#include "cz_cond.h"

#include <stdio.h>
#include <string.h>

static cz_http_str_t str(const char *s) {
    return (cz_http_str_t){s, strlen(s)};
}

static void test_dates(void) {
    static const struct {
        const char *text;
        int ok;
        int64_t t;
    } rows[] = {
        {"Sun, 06 Nov 1994 08:49:37 GMT", 1, 784111777},
        {"Sunday, 06-Nov-94 08:49:37 GMT", 1, 784111777},
        {"Sun Nov  6 08:49:37 1994", 1, 784111777},
        {"Thu, 01 Jan 1970 00:00:00 GMT", 1, 0},
        {"Sat, 29 Feb 2020 23:59:59 GMT", 1, 1583020799},
        {"Fri, 31 Dec 9999 23:59:59 GMT", 1, 253402300799},
        {"Thursday, 01-Jan-15 00:00:00 GMT", 1, 1420070400},
        {"Sun Nov 16 08:49:37 1994", 1, 784111777 + 10 * 86400},
        {"Sun, 06 Nov 1994 08:49:37 UTC", 0, 0},
        {"Sun, 31 Nov 1994 08:49:37 GMT", 0, 0},
        {"Sun, 06 Foo 1994 08:49:37 GMT", 0, 0},
        {"Sun, 06 Nov 1994 24:49:37 GMT", 0, 0},
        {"Sun, 6 Nov 1994 08:49:37 GMT", 0, 0},
        {"784111777", 0, 0},
        {"", 0, 0},
        {"Sun Nov  x 08:49:37 1994", 0, 0},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const char *ctx = rows[i].text;
        int64_t t = -1;
        int rc = cz_cond_parse_date(str(rows[i].text), &t);
        CHECKC((rc == 0) == rows[i].ok, ctx);
        if (rows[i].ok) CHECKC(t == rows[i].t, ctx);
    }
}

/* A request with `method` and up to two header fields. */
static cz_http_request_t request(int method, cz_http_header_t *h, const char *n1, const char *v1, const char *n2,
                                 const char *v2) {
    cz_http_request_t r;
    memset(&r, 0, sizeof(r));
    r.method_id = method;
    r.headers = h;
    if (n1) h[r.num_headers++] = (cz_http_header_t){str(n1), str(v1)};
    if (n2) h[r.num_headers++] = (cz_http_header_t){str(n2), str(v2)};
    return r;
}

static void test_decisions(void) {
    static const struct {
        int method;
        const char *n1, *v1, *n2, *v2;
        int status;
        uint64_t offset, length;
    } rows[] = {
        {HTTP_GET, NULL, NULL, NULL, NULL, 200, 0, 100},
        /* If-None-Match: weak comparison; 304 for GET/HEAD, 412 otherwise */
        {HTTP_GET, "If-None-Match", "\"abc\"", NULL, NULL, 304, 0, 100},
        {HTTP_GET, "If-None-Match", "W/\"abc\"", NULL, NULL, 304, 0, 100},
        {HTTP_HEAD, "If-None-Match", "\"x\", \"abc\"", NULL, NULL, 304, 0, 100},
        {HTTP_GET, "If-None-Match", "*", NULL, NULL, 304, 0, 100},
        {HTTP_GET, "If-None-Match", "\"other\"", NULL, NULL, 200, 0, 100},
        {HTTP_POST, "If-None-Match", "\"abc\"", NULL, NULL, 412, 0, 100},
        /* If-None-Match wins over If-Modified-Since */
        {HTTP_GET, "If-None-Match", "\"other\"", "If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT", 200, 0, 100},
        {HTTP_GET, "If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT", NULL, NULL, 304, 0, 100},
        {HTTP_GET, "If-Modified-Since", "Sun, 06 Nov 1994 08:49:36 GMT", NULL, NULL, 200, 0, 100},
        {HTTP_GET, "If-Modified-Since", "not a date", NULL, NULL, 200, 0, 100},
        {HTTP_POST, "If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT", NULL, NULL, 200, 0, 100},
        /* If-Match: strong comparison */
        {HTTP_GET, "If-Match", "\"abc\"", NULL, NULL, 200, 0, 100},
        {HTTP_GET, "If-Match", "W/\"abc\"", NULL, NULL, 412, 0, 100},
        {HTTP_PUT, "If-Match", "\"nope\"", NULL, NULL, 412, 0, 100},
        {HTTP_GET, "If-Match", "*", NULL, NULL, 200, 0, 100},
        {HTTP_GET, "If-Unmodified-Since", "Sun, 06 Nov 1994 08:49:36 GMT", NULL, NULL, 412, 0, 100},
        {HTTP_GET, "If-Unmodified-Since", "Sun, 06 Nov 1994 08:49:37 GMT", NULL, NULL, 200, 0, 100},
        {HTTP_GET, "If-Match", "\"abc\"", "If-Unmodified-Since", "Sun, 06 Nov 1994 08:49:36 GMT", 200, 0, 100},
        /* ranges */
        {HTTP_GET, "Range", "bytes=0-9", NULL, NULL, 206, 0, 10},
        {HTTP_GET, "Range", "bytes=90-", NULL, NULL, 206, 90, 10},
        {HTTP_GET, "Range", "bytes=-5", NULL, NULL, 206, 95, 5},
        {HTTP_GET, "Range", "bytes=-500", NULL, NULL, 206, 0, 100},
        {HTTP_GET, "Range", "bytes=50-5000", NULL, NULL, 206, 50, 50},
        {HTTP_GET, "Range", "bytes= 1-2 ,", NULL, NULL, 206, 1, 2},
        {HTTP_GET, "Range", "bytes=100-", NULL, NULL, 416, 0, 0},
        {HTTP_GET, "Range", "bytes=-0", NULL, NULL, 416, 0, 0},
        {HTTP_GET, "Range", "bytes=0-1,5-6", NULL, NULL, 200, 0, 100},
        {HTTP_GET, "Range", "bytes=0-1,500-600", NULL, NULL, 200, 0, 100},
        {HTTP_GET, "Range", "bytes=500-600,700-", NULL, NULL, 416, 0, 0},
        {HTTP_GET, "Range", "bytes=5-1", NULL, NULL, 200, 0, 100},
        {HTTP_GET, "Range", "items=0-1", NULL, NULL, 200, 0, 100},
        {HTTP_GET, "Range", "bytes=a-b", NULL, NULL, 200, 0, 100},
        {HTTP_GET, "Range", "bytes=99999999999999999999-", NULL, NULL, 200, 0, 100},
        {HTTP_HEAD, "Range", "bytes=0-9", NULL, NULL, 200, 0, 100},
        {HTTP_GET, "Range", "bytes=0-9", "If-Range", "\"abc\"", 206, 0, 10},
        {HTTP_GET, "Range", "bytes=0-9", "If-Range", "W/\"abc\"", 200, 0, 100},
        {HTTP_GET, "Range", "bytes=0-9", "If-Range", "\"old\"", 200, 0, 100},
        {HTTP_GET, "Range", "bytes=0-9", "If-Range", "Sun, 06 Nov 1994 08:49:37 GMT", 206, 0, 10},
        {HTTP_GET, "Range", "bytes=0-9", "If-Range", "Sun, 06 Nov 1994 08:49:38 GMT", 200, 0, 100},
    };
    cz_cond_file_t f = {100, 784111777, {"\"abc\"", 5}}; /* modified Sun, 06 Nov 1994 08:49:37 GMT */
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char ctx[200];
        snprintf(ctx, sizeof(ctx), "row %zu: %s: %s / %s: %s", i, rows[i].n1 ? rows[i].n1 : "-",
                 rows[i].v1 ? rows[i].v1 : "", rows[i].n2 ? rows[i].n2 : "-", rows[i].v2 ? rows[i].v2 : "");
        cz_http_header_t h[2];
        cz_http_request_t r = request(rows[i].method, h, rows[i].n1, rows[i].v1, rows[i].n2, rows[i].v2);
        cz_cond_answer_t a;
        cz_cond_decide(&r, &f, &a);
        CHECKC(a.status == rows[i].status, ctx);
        if (a.status == 200 || a.status == 206) CHECKC(a.offset == rows[i].offset && a.length == rows[i].length, ctx);
    }
    /* an empty file has no satisfiable range */
    {
        const char *ctx = "empty file";
        cz_cond_file_t empty = {0, 0, {"", 0}};
        cz_http_header_t h[2];
        cz_http_request_t r = request(HTTP_GET, h, "Range", "bytes=0-", NULL, NULL);
        cz_cond_answer_t a;
        cz_cond_decide(&r, &empty, &a);
        CHECKC(a.status == 416, ctx);
    }
}

int main(void) {
    test_dates();
    test_decisions();
    return check_summary();
}
