/*
 * Unit tests of csrc/http (cz_http.h): request assembly on llhttp, strictness,
 * limits, pipelining, 100-continue, keep-alive, response serialization.
 *
 * Plain C: CHECK counts; the last line is "N passed, M failed"; the exit
 * status is non-zero when anything failed. Run under ASan/UBSan/LSan.
 */
#include "check.h"
#include "cz_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S(lit) (lit), (sizeof(lit) - 1)

static cz_allocator_t *A;

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);

    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

/* ---- a simulated server ------------------------------------------------- */

/* What a connection produced: a text dump of every request (so whole,
 * byte-by-byte and split feeds can be compared), HEADERS events, error. */
typedef struct {
    char log[16384];
    size_t loglen;
    int requests;
    int headers_events;
    int expect_at_headers; /* expect_continue seen at a HEADERS event */
    int status;            /* error status, 0 if none */
    const char *reason;
    int broken; /* per-feed invariants violated (checked once per run) */
} outcome_t;

static void logf_(outcome_t *o, const char *s, size_t n) {
    if (n > sizeof(o->log) - 1 - o->loglen) n = sizeof(o->log) - 1 - o->loglen;
    memcpy(o->log + o->loglen, s, n);
    o->loglen += n;
    o->log[o->loglen] = '\0';
}

static void log_str(outcome_t *o, const char *tag, cz_http_str_t s) {
    logf_(o, tag, strlen(tag));
    o->broken += s.base == NULL;
    if (s.base) logf_(o, s.base, s.len);
}

static void dump_request(outcome_t *o, const cz_http_request_t *r) {
    char tmp[160];
    size_t i;

    log_str(o, "M=", r->method);
    log_str(o, " T=", r->target);
    log_str(o, " P=", r->path);
    log_str(o, " Q=", r->query);
    snprintf(tmp, sizeof(tmp), " V=%d.%d KA=%d EXP=%d UP=%d CH=%d CL=%llu HB=%d H=[", r->http_major, r->http_minor,
             r->keep_alive, r->expect_continue, r->upgrade, r->chunked, (unsigned long long)r->content_length,
             r->has_body);
    logf_(o, tmp, strlen(tmp));
    for (i = 0; i < r->num_headers; i++) {
        log_str(o, "", r->headers[i].name);
        log_str(o, ":", r->headers[i].value);
        logf_(o, "|", 1);
    }
    log_str(o, "] B=", r->body);
    logf_(o, "\n", 1);
}

/*
 * Deliver `in` in segments ending at cuts[0..ncuts) and at len, the way a
 * server would: feed what it holds, keep what was not consumed, feed again
 * when the request is answered. Each feed gets a fresh heap copy that is
 * freed right after the call, so ASan catches any view into caller memory.
 */
static void run_cuts(const char *in, size_t len, const size_t *cuts, size_t ncuts, const cz_http_limits_t *lim,
                     outcome_t *o) {
    cz_http_parser_t p;
    size_t start = 0, seg, guard = 0;

    memset(o, 0, sizeof(*o));
    cz_http_parser_init(&p, A, lim);
    for (seg = 0; seg <= ncuts; seg++) {
        size_t avail = seg < ncuts ? cuts[seg] : len;

        while (start < avail && guard++ < 100000) {
            size_t n = avail - start, used = 0;
            char *copy = xmalloc(n);
            cz_http_event_t ev;

            memcpy(copy, in + start, n);
            ev = cz_http_parser_feed(&p, copy, n, &used);
            free(copy);
            o->broken += used > n;
            start += used;
            if (ev == CZ_HTTP_ERROR) {
                o->status = cz_http_parser_status(&p);
                o->reason = cz_http_parser_reason(&p);
                o->broken += o->status < 400 || o->reason == NULL;
                /* sticky */
                o->broken += cz_http_parser_feed(&p, "x", 1, &used) != CZ_HTTP_ERROR || used != 0;
                goto out;
            }
            if (ev == CZ_HTTP_HEADERS) {
                const cz_http_request_t *r = cz_http_parser_request(&p);
                o->headers_events++;
                o->expect_at_headers |= r->expect_continue;
                o->broken += !r->has_body || r->body.len != 0;
            } else if (ev == CZ_HTTP_REQUEST) {
                o->requests++;
                dump_request(o, cz_http_parser_request(&p));
            } else {
                o->broken += used != n;
                break;
            }
        }
    }
out:
    o->broken += guard >= 100000;
    cz_http_parser_destroy(&p);
    CHECK(o->broken == 0);
}

static void run_whole(const char *in, size_t len, const cz_http_limits_t *lim, outcome_t *o) {
    run_cuts(in, len, NULL, 0, lim, o);
}

static void run_bytewise(const char *in, size_t len, const cz_http_limits_t *lim, outcome_t *o) {
    size_t *cuts = xmalloc((len ? len : 1) * sizeof(*cuts));
    size_t i;

    for (i = 0; i + 1 < len; i++) cuts[i] = i + 1;
    run_cuts(in, len, cuts, len ? len - 1 : 0, lim, o);
    free(cuts);
}

static int same_outcome(const outcome_t *a, const outcome_t *b) {
    return a->requests == b->requests && a->status == b->status && a->headers_events == b->headers_events &&
           strcmp(a->log, b->log) == 0;
}

/* ---- malformed and smuggling requests ----------------------------------- */

typedef struct {
    const char *name;
    const char *in;
    size_t len;
    int status;
    const char *who; /* substring of the reason: shows which check fired */
} bad_row_t;

#define H11 "Host: a\r\n"

/* "L:" rows are refused by llhttp (reason is llhttp's), "O:" rows by us. */
static const bad_row_t bad_rows[] = {
    {"L: CL then TE", S("POST / HTTP/1.1\r\n" H11 "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
     400, "Transfer-Encoding can't be present with Content-Length"},
    {"L: TE then CL", S("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n"),
     400, "Content-Length can't be present with Transfer-Encoding"},
    {"L: two CL, different", S("POST / HTTP/1.1\r\n" H11 "Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"), 400,
     "Duplicate Content-Length"},
    {"L: two CL, equal", S("POST / HTTP/1.1\r\n" H11 "Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc"), 400,
     "Duplicate Content-Length"},
    {"L: CL list", S("POST / HTTP/1.1\r\n" H11 "Content-Length: 3, 3\r\n\r\nabc"), 400, "Content-Length"},
    {"L: CL sign", S("POST / HTTP/1.1\r\n" H11 "Content-Length: +3\r\n\r\nabc"), 400, "Content-Length"},
    {"L: CL negative", S("POST / HTTP/1.1\r\n" H11 "Content-Length: -1\r\n\r\n"), 400, "Content-Length"},
    {"L: CL overflow", S("POST / HTTP/1.1\r\n" H11 "Content-Length: 99999999999999999999999\r\n\r\n"), 400,
     "Content-Length overflow"},
    {"L: CL empty", S("POST / HTTP/1.1\r\n" H11 "Content-Length:\r\n\r\n"), 400, "Empty Content-Length"},
    {"O: TE gzip only", S("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: gzip\r\n\r\n"), 400,
     "invalid Transfer-Encoding"},
    {"O: TE not exactly chunked", S("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunkedx\r\n\r\n"), 400,
     "invalid Transfer-Encoding"},
    {"L: TE chunked not final", S("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked, gzip\r\n\r\n"), 400,
     "Transfer-Encoding"},
    {"O: TE gzip, chunked", S("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"), 501,
     "unsupported transfer coding"},
    {"O: TE gzip + TE chunked",
     S("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 501,
     "unsupported transfer coding"},
    {"L: TE chunked twice",
     S("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400,
     "Transfer-Encoding"},
    {"O: TE in HTTP/1.0", S("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400,
     "Transfer-Encoding in HTTP/1.0"},
    {"L: chunk size overflow",
     S("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n10000000000000000\r\nx\r\n0\r\n\r\n"), 400,
     "Chunk size overflow"},
    {"L: chunk size negative",
     S("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n"), 400, "chunk size"},
    {"L: chunk size trailing SP",
     S("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n"), 400, "chunk size"},
    {"L: chunk size leading SP",
     S("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n"), 400, "chunk size"},
    {"L: chunk size 0x", S("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n"),
     400, "chunk size"},
    {"L: chunk size empty", S("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n\r\nhello\r\n0\r\n\r\n"),
     400, ""},
    {"L: chunk data without CRLF",
     S("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n5\r\nhelloX0\r\n\r\n"), 400, "after chunk data"},
    {"L: chunk data bare LF", S("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n"),
     400, ""},
    {"L: chunk size bare LF", S("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n"),
     400, "CR"},
    {"L: obs-fold", S("GET / HTTP/1.1\r\n" H11 "X: a\r\n b\r\n\r\n"), 400, "whitespace after header value"},
    {"L: obs-fold tab", S("GET / HTTP/1.1\r\n" H11 "X: a\r\n\tb\r\n\r\n"), 400, "whitespace after header value"},
    {"L: SP before colon", S("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), 400, "Invalid header token"},
    {"L: HTAB before colon", S("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"), 400, "Invalid header token"},
    {"L: SP in field name", S("GET / HTTP/1.1\r\n" H11 "X Y: a\r\n\r\n"), 400, "Invalid header token"},
    {"L: empty field name", S("GET / HTTP/1.1\r\n" H11 ": a\r\n\r\n"), 400, "Invalid header token"},
    {"L: first line starts with SP field", S("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), 400, ""},
    {"L: bare LF after field", S("GET / HTTP/1.1\r\n" H11 "X: y\nZ: w\r\n\r\n"), 400, "CR"},
    {"L: bare LF ends head", S("GET / HTTP/1.1\r\n" H11 "\n"), 400, ""},
    {"L: bare LF after request line", S("GET / HTTP/1.1\n" H11 "\r\n"), 400, "CRLF"},
    {"L: bare CR in value", S("GET / HTTP/1.1\r\n" H11 "X: a\rb: c\r\n\r\n"), 400, "LF"},
    {"L: bare CR in request line", S("GET /\r HTTP/1.1\r\n" H11 "\r\n"), 400, ""},
    {"L: NUL in value", S("GET / HTTP/1.1\r\n" H11 "X: a\0b\r\n\r\n"), 400, "header value char"},
    {"L: NUL in name", S("GET / HTTP/1.1\r\n" H11 "X\0: b\r\n\r\n"), 400, "header token"},
    {"L: NUL in target", S("GET /\0 HTTP/1.1\r\n" H11 "\r\n"), 400, "url"},
    {"L: NUL before method", S("\0GET / HTTP/1.1\r\n" H11 "\r\n"), 400, "method"},
    {"L: CTL in value",
     S("GET / HTTP/1.1\r\n" H11 "X: a\x01"
       "b\r\n\r\n"),
     400, "header value char"},
    {"L: DEL in value",
     S("GET / HTTP/1.1\r\n" H11 "X: a\x7f"
       "b\r\n\r\n"),
     400, "header value char"},
    {"L: invalid method char", S("G@T / HTTP/1.1\r\n" H11 "\r\n"), 400, "method"},
    {"L: unknown method", S("FOO / HTTP/1.1\r\n" H11 "\r\n"), 400, "method"},
    {"L: RTSP-only method over HTTP", S("DESCRIBE / HTTP/1.1\r\n" H11 "\r\n"), 400, "Invalid method for HTTP"},
    {"L: lower-case method", S("get / HTTP/1.1\r\n" H11 "\r\n"), 400, "method"},
    {"L: HTAB after method", S("GET\t/ HTTP/1.1\r\n" H11 "\r\n"), 400, "method"},
    {"O: absolute-form", S("GET http://a/p HTTP/1.1\r\n" H11 "\r\n"), 400, "must start with '/'"},
    {"O: absolute-form https", S("GET https://a:443/ HTTP/1.1\r\n" H11 "\r\n"), 400, "must start with '/'"},
    {"L: relative target", S("GET a/b HTTP/1.1\r\n" H11 "\r\n"), 400, "url"},
    {"O: '*' with GET", S("GET * HTTP/1.1\r\n" H11 "\r\n"), 400, "only for OPTIONS"},
    {"O: CONNECT authority-form", S("CONNECT a:443 HTTP/1.1\r\n" H11 "\r\n"), 501, "CONNECT"},
    {"O: CONNECT origin-form", S("CONNECT / HTTP/1.1\r\n" H11 "\r\n"), 501, "CONNECT"},
    {"O: fragment", S("GET /a#b HTTP/1.1\r\n" H11 "\r\n"), 400, "fragment"},
    {"L: SP in target", S("GET /a b HTTP/1.1\r\n" H11 "\r\n"), 400, ""},
    {"L: non-ASCII target", S("GET /\xc3\xa9 HTTP/1.1\r\n" H11 "\r\n"), 400, "url"},
    {"O: two SP after method", S("GET  / HTTP/1.1\r\n" H11 "\r\n"), 400, "extra whitespace"},
    {"O: two SP before version", S("GET /  HTTP/1.1\r\n" H11 "\r\n"), 400, "extra whitespace"},
    {"L: SP after version", S("GET / HTTP/1.1 \r\n" H11 "\r\n"), 400, "CRLF"},
    {"O: HTTP/2.0", S("GET / HTTP/2.0\r\n" H11 "\r\n"), 400, "version not supported"},
    {"O: HTTP/0.9 with version", S("GET / HTTP/0.9\r\n\r\n"), 400, "version not supported"},
    {"L: HTTP/1.2", S("GET / HTTP/1.2\r\n" H11 "\r\n"), 400, "Invalid HTTP version"},
    {"L: HTTP/3.0", S("GET / HTTP/3.0\r\n" H11 "\r\n"), 400, "Invalid HTTP version"},
    {"L: lower-case http", S("GET / http/1.1\r\n" H11 "\r\n"), 400, ""},
    {"O: HTTP/0.9 simple request", S("GET /\r\n\r\n"), 400, "missing HTTP version"},
    {"O: RTSP", S("GET / RTSP/1.0\r\n\r\n"), 400, "not HTTP"},
    {"O: RTSP method", S("DESCRIBE / RTSP/1.0\r\n\r\n"), 400, "not HTTP"},
    {"O: ICE", S("SOURCE / ICE/1.0\r\n\r\n"), 400, "not HTTP"},
    {"O: HTTP/2 preface", S("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 400, "HTTP/2 connection preface"},
    {"O: missing Host (1.1)", S("GET / HTTP/1.1\r\nX: y\r\n\r\n"), 400, "missing Host"},
    {"O: two Host", S("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400, "multiple Host"},
    {"O: two Host, equal", S("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n"), 400, "multiple Host"},
    {"O: two Host (1.0)", S("GET / HTTP/1.0\r\nHost: a\r\nHOST: b\r\n\r\n"), 400, "multiple Host"},
    {"O: Transfer_Encoding look-alike", S("POST / HTTP/1.1\r\n" H11 "Transfer_Encoding: chunked\r\n\r\n"), 400,
     "mimics a framing header"},
    {"O: Content_Length look-alike", S("POST / HTTP/1.1\r\n" H11 "Content_Length: 5\r\n\r\n"), 400,
     "mimics a framing header"},
    {"O: Transfer---Encoding look-alike", S("POST / HTTP/1.1\r\n" H11 "Transfer---Encoding: chunked\r\n\r\n"), 400,
     "mimics a framing header"},
    {"O: Host with SP", S("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), 400, "invalid Host"},
    {"O: Host with path", S("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), 400, "invalid Host"},
    {"O: Host with userinfo", S("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"), 400, "invalid Host"},
    {"O: Host bad port", S("GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n"), 400, "invalid Host"},
    {"O: Host unclosed IP-literal", S("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n"), 400, "invalid Host"},
    {"L: data after Connection: close",
     S("GET / HTTP/1.1\r\n" H11 "Connection: close\r\n\r\nGET / HTTP/1.1\r\n" H11 "\r\n"), 400, "Connection: close"},
};

static void test_bad_requests(void) {
    size_t i;

    for (i = 0; i < sizeof(bad_rows) / sizeof(bad_rows[0]); i++) {
        const bad_row_t *row = &bad_rows[i];
        outcome_t whole, bytes;
        char ctx[256];

        run_whole(row->in, row->len, NULL, &whole);
        run_bytewise(row->in, row->len, NULL, &bytes);
        snprintf(ctx, sizeof(ctx), "[%s] whole: %d %s; bytewise: %d %s", row->name, whole.status,
                 whole.reason ? whole.reason : "-", bytes.status, bytes.reason ? bytes.reason : "-");
        CHECKC(whole.status == row->status, ctx);
        CHECKC(bytes.status == row->status, ctx);
        CHECKC(whole.reason && strstr(whole.reason, row->who), ctx);
        CHECKC(bytes.reason && strstr(bytes.reason, row->who), ctx);
        if (getenv("CZ_TEST_VERBOSE"))
            printf("%-34s -> %d  %s\n", row->name, whole.status, whole.reason ? whole.reason : "-");
    }
}

/* ---- good requests ------------------------------------------------------ */

typedef struct {
    const char *name;
    const char *in;
    size_t len;
    const char *dump; /* expected log */
} good_row_t;

static const good_row_t good_rows[] = {
    {"GET with query and OWS",
     S("GET /items/1?q=a%20b&x=1 HTTP/1.1\r\nHost: example.com\r\nX-Empty:\r\nX-Pad: \t v v \t \r\nAccept: "
       "*/*\r\n\r\n"),
     "M=GET T=/items/1?q=a%20b&x=1 P=/items/1 Q=q=a%20b&x=1 V=1.1 KA=1 EXP=0 UP=0 CH=0 CL=0 HB=0 "
     "H=[Host:example.com|X-Empty:|X-Pad:v v|Accept:*/*|] B=\n"},
    {"POST with Content-Length",
     S("POST /submit HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"a\": [1, "
       "2]}"),
     "M=POST T=/submit P=/submit Q= V=1.1 KA=1 EXP=0 UP=0 CH=0 CL=13 HB=1 "
     "H=[Host:a|Content-Type:application/json|Content-Length:13|] B={\"a\": [1, 2]}\n"},
    {"chunked with extension and trailer",
     S("PUT /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n5;name=val\r\nhello\r\n1\r\n "
       "\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n"),
     "M=PUT T=/up P=/up Q= V=1.1 KA=1 EXP=0 UP=0 CH=1 CL=0 HB=1 "
     "H=[Host:a|Transfer-Encoding:Chunked|] B=hello 0123456789\n"},
    {"OPTIONS *", S("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"),
     "M=OPTIONS T=* P=* Q= V=1.1 KA=1 EXP=0 UP=0 CH=0 CL=0 HB=0 H=[Host:a|] B=\n"},
    {"HTTP/1.0 keep-alive, no Host, empty query", S("\r\nHEAD /x? HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
     "M=HEAD T=/x? P=/x Q= V=1.0 KA=1 EXP=0 UP=0 CH=0 CL=0 HB=0 H=[Connection:keep-alive|] B=\n"},
    {"Upgrade ignored, next request parsed",
     S("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nGET /2 HTTP/1.1\r\nHost: "
       "a\r\n\r\n"),
     "M=GET T=/ws P=/ws Q= V=1.1 KA=1 EXP=0 UP=1 CH=0 CL=0 HB=0 H=[Host:a|Connection:Upgrade|Upgrade:websocket|] B=\n"
     "M=GET T=/2 P=/2 Q= V=1.1 KA=1 EXP=0 UP=0 CH=0 CL=0 HB=0 H=[Host:a|] B=\n"},
    {"Upgrade h2c with body",
     S("POST / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: "
       "AAMAAABkAAQAAP__\r\nContent-Length: 2\r\n\r\nab"
       "GET /n HTTP/1.1\r\nHost: a\r\n\r\n"),
     "M=POST T=/ P=/ Q= V=1.1 KA=1 EXP=0 UP=1 CH=0 CL=2 HB=1 H=[Host:a|Connection:Upgrade, "
     "HTTP2-Settings|Upgrade:h2c|HTTP2-Settings:AAMAAABkAAQAAP__|Content-Length:2|] B=ab\n"
     "M=GET T=/n P=/n Q= V=1.1 KA=1 EXP=0 UP=0 CH=0 CL=0 HB=0 H=[Host:a|] B=\n"},
    {"Host forms",
     S("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\nGET / HTTP/1.1\r\nHost: ex-1.b_c.com:\r\n\r\nGET / HTTP/1.0\r\nHost: "
       "10.0.0.1:80\r\n\r\n"),
     "M=GET T=/ P=/ Q= V=1.1 KA=1 EXP=0 UP=0 CH=0 CL=0 HB=0 H=[Host:[::1]:8080|] B=\n"
     "M=GET T=/ P=/ Q= V=1.1 KA=1 EXP=0 UP=0 CH=0 CL=0 HB=0 H=[Host:ex-1.b_c.com:|] B=\n"
     "M=GET T=/ P=/ Q= V=1.0 KA=0 EXP=0 UP=0 CH=0 CL=0 HB=0 H=[Host:10.0.0.1:80|] B=\n"},
    {"obs-text in value, empty Host", S("GET //double HTTP/1.1\r\nHost:\r\nX: caf\xc3\xa9\r\n\r\n"),
     "M=GET T=//double P=//double Q= V=1.1 KA=1 EXP=0 UP=0 CH=0 CL=0 HB=0 H=[Host:|X:caf\xc3\xa9|] B=\n"},
};

static void test_good_requests(void) {
    size_t i, cut;

    for (i = 0; i < sizeof(good_rows) / sizeof(good_rows[0]); i++) {
        const good_row_t *row = &good_rows[i];
        outcome_t whole, bytes, split;
        char ctx[512];

        run_whole(row->in, row->len, NULL, &whole);
        snprintf(ctx, sizeof(ctx), "[%.64s] status %d (%.64s); got:\n%.300s", row->name, whole.status,
                 whole.reason ? whole.reason : "-", whole.log);
        CHECKC(whole.status == 0, ctx);
        CHECKC(strcmp(whole.log, row->dump) == 0, ctx);
        run_bytewise(row->in, row->len, NULL, &bytes);
        CHECKC(same_outcome(&whole, &bytes), row->name);
        /* every two-piece split */
        for (cut = 1; cut < row->len; cut++) {
            run_cuts(row->in, row->len, &cut, 1, NULL, &split);
            if (!same_outcome(&whole, &split)) {
                snprintf(ctx, sizeof(ctx), "[%s] split at %zu", row->name, cut);
                CHECKC(0, ctx);
                break;
            }
        }
        CHECKC(cut == row->len, row->name);
    }
}

/* ---- pipelining --------------------------------------------------------- */

static void test_pipelining(void) {
    static const char in[] = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
                             "POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
                             "GET /3?z HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    size_t len = sizeof(in) - 1, off = 0, used;
    cz_http_parser_t p;
    const cz_http_request_t *r;
    cz_http_event_t ev;

    cz_http_parser_init(&p, A, NULL);
    /* one read holding three requests: processed one at a time, in order */
    ev = cz_http_parser_feed(&p, in, len, &used);
    CHECK(ev == CZ_HTTP_REQUEST);
    CHECK(used == strlen("GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"));
    r = cz_http_parser_request(&p);
    CHECK(r->target.len == 2 && memcmp(r->target.base, "/1", 2) == 0);
    CHECK(r->keep_alive == 1);
    off += used;

    ev = cz_http_parser_feed(&p, in + off, len - off, &used);
    CHECK(ev == CZ_HTTP_HEADERS); /* a body follows: head reported first */
    CHECK(r->method_id == HTTP_POST && r->body.len == 0);
    off += used;
    ev = cz_http_parser_feed(&p, in + off, len - off, &used);
    CHECK(ev == CZ_HTTP_REQUEST);
    CHECK(used == 5);
    CHECK(r->body.len == 5 && memcmp(r->body.base, "hello", 5) == 0);
    CHECK(r->path.len == 2 && memcmp(r->path.base, "/2", 2) == 0);
    off += used;

    ev = cz_http_parser_feed(&p, in + off, len - off, &used);
    CHECK(ev == CZ_HTTP_REQUEST);
    off += used;
    CHECK(off == len);
    CHECK(r->query.len == 1 && r->query.base[0] == 'z');
    CHECK(r->keep_alive == 0);
    cz_http_parser_destroy(&p);

    /* the same bytes, by the simulated server, whole and one byte at a time */
    {
        outcome_t a, b;
        run_whole(in, len, NULL, &a);
        run_bytewise(in, len, NULL, &b);
        CHECK(a.requests == 3 && a.status == 0 && a.headers_events == 1);
        CHECK(same_outcome(&a, &b));
        CHECK(strstr(a.log, "T=/1") < strstr(a.log, "T=/2") && strstr(a.log, "T=/2") < strstr(a.log, "T=/3?z"));
    }
}

/* ---- chunked ------------------------------------------------------------ */

static void test_chunked(void) {
    static const char in[] = "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "3\r\nabc\r\n"
                             "0010\r\n0123456789abcdef\r\n"
                             "1;a=b;c\r\nZ\r\n"
                             "0\r\n\r\n";
    outcome_t o, b;
    cz_http_limits_t lim;

    run_whole(in, sizeof(in) - 1, NULL, &o);
    CHECK(o.status == 0 && o.requests == 1 && o.headers_events == 1);
    CHECK(strstr(o.log, "B=abc0123456789abcdefZ\n") != NULL);
    CHECK(strstr(o.log, "CH=1") != NULL);
    run_bytewise(in, sizeof(in) - 1, NULL, &b);
    CHECK(same_outcome(&o, &b));

    /* empty chunked body */
    run_whole(S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), NULL, &o);
    CHECK(o.status == 0 && o.requests == 1 && strstr(o.log, "B=\n") != NULL);

    /* the body limit applies to the sum of chunks, before a chunk is read */
    cz_http_limits_default(&lim);
    lim.max_body = 20;
    run_whole(in, sizeof(in) - 1, &lim, &o); /* 3 + 16 + 1 = 20: fits */
    CHECK(o.status == 0 && o.requests == 1);
    lim.max_body = 19;
    run_whole(in, sizeof(in) - 1, &lim, &o);
    CHECK(o.status == 413);
    {
        /* a single huge chunk is refused at its size line */
        static const char big[] = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nfffffff\r\n";
        cz_http_parser_t p;
        size_t used;
        cz_http_parser_init(&p, A, &lim);
        CHECK(cz_http_parser_feed(&p, big, sizeof(big) - 1, &used) == CZ_HTTP_HEADERS);
        CHECK(cz_http_parser_feed(&p, big + used, sizeof(big) - 1 - used, &used) == CZ_HTTP_ERROR);
        CHECK(cz_http_parser_status(&p) == 413);
        cz_http_parser_destroy(&p);
    }
    /* trailer fields are dropped but bounded */
    lim.max_body = 0;
    lim.max_header_bytes = 64;
    run_whole(S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
                "X-T: 0123456789012345678901234567890123456789012345678901234567890123456789\r\n\r\n"),
              &lim, &o);
    CHECK(o.status == 431);
    /* chunk extensions are not stored but bounded */
    run_whole(
        S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
          "1;0123456789012345678901234567890123456789=0123456789012345678901234567890123456789\r\nx\r\n0\r\n\r\n"),
        &lim, &o);
    CHECK(o.status == 400 && o.reason && strstr(o.reason, "chunk extensions"));
}

/* ---- 100-continue ------------------------------------------------------- */

static void test_expect_continue(void) {
    static const char head[] = "POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-Continue\r\n\r\n";
    cz_http_parser_t p;
    const cz_http_request_t *r;
    size_t used;
    outcome_t o;

    cz_http_parser_init(&p, A, NULL);
    CHECK(!cz_http_parser_in_request(&p));
    /* head only: the server learns about the expectation before any body */
    CHECK(cz_http_parser_feed(&p, head, sizeof(head) - 1, &used) == CZ_HTTP_HEADERS);
    CHECK(cz_http_parser_in_request(&p));
    CHECK(used == sizeof(head) - 1);
    r = cz_http_parser_request(&p);
    CHECK(r->expect_continue == 1 && r->has_body == 1 && r->content_length == 5);
    CHECK(cz_http_request_header(r, S("expect")) != NULL);
    CHECK(cz_http_parser_feed(&p, "", 0, &used) == CZ_HTTP_NEED_MORE && used == 0);
    CHECK(cz_http_parser_feed(&p, "hel", 3, &used) == CZ_HTTP_NEED_MORE && used == 3);
    CHECK(cz_http_parser_feed(&p, "lo", 2, &used) == CZ_HTTP_REQUEST && used == 2);
    CHECK(r->body.len == 5 && memcmp(r->body.base, "hello", 5) == 0);
    CHECK(!cz_http_parser_in_request(&p));
    CHECK(cz_http_request_header(r, S("content-LENGTH")) != NULL);
    CHECK(cz_http_request_header(r, S("content-lengt")) == NULL);
    CHECK(cz_http_request_header(r, S("x-missing")) == NULL);
    cz_http_parser_destroy(&p);

    CHECK(strlen(CZ_HTTP_100_CONTINUE) == 25);

    /* byte-by-byte: the HEADERS event still comes before any body byte */
    run_bytewise(S("POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello"), NULL, &o);
    CHECK(o.headers_events == 1 && o.expect_at_headers == 1 && o.requests == 1);
    /* HTTP/1.0 clients' expectations are ignored (RFC 9110 10.1.1) */
    run_whole(S("POST /u HTTP/1.0\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello"), NULL, &o);
    CHECK(o.headers_events == 1 && o.expect_at_headers == 0 && strstr(o.log, "EXP=0"));
    /* no body, no HEADERS event and nothing to continue */
    run_whole(S("GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n"), NULL, &o);
    CHECK(o.headers_events == 0 && o.requests == 1 && strstr(o.log, "EXP=0"));
    /* other expectations are ignored */
    run_whole(S("POST / HTTP/1.1\r\nHost: a\r\nExpect: teapot\r\nContent-Length: 1\r\n\r\nx"), NULL, &o);
    CHECK(o.status == 0 && o.expect_at_headers == 0);
}

/* ---- limits ------------------------------------------------------------- */

static char *repeat(const char *prefix, char c, size_t n, const char *suffix, size_t *len) {
    size_t a = strlen(prefix), b = strlen(suffix);
    char *s = xmalloc(a + n + b + 1);

    memcpy(s, prefix, a);
    memset(s + a, c, n);
    memcpy(s + a + n, suffix, b + 1);
    *len = a + n + b;
    return s;
}

static void test_limits(void) {
    cz_http_limits_t lim;
    outcome_t o, b;
    size_t len;
    char *s;

    cz_http_limits_default(&lim);
    CHECK(lim.max_url == CZ_HTTP_DEFAULT_MAX_URL && lim.max_body == CZ_HTTP_DEFAULT_MAX_BODY);

    /* 414: the target alone may be max_url long */
    lim.max_url = 32;
    s = repeat("GET /", 'a', 31, " HTTP/1.1\r\nHost: a\r\n\r\n", &len);
    run_whole(s, len, &lim, &o);
    CHECK(o.status == 0 && o.requests == 1);
    free(s);
    s = repeat("GET /", 'a', 32, " HTTP/1.1\r\nHost: a\r\n\r\n", &len);
    run_whole(s, len, &lim, &o);
    run_bytewise(s, len, &lim, &b);
    CHECK(o.status == 414 && b.status == 414);
    free(s);
    /* default limit, target never finished: refused while it streams */
    s = repeat("GET /", 'a', CZ_HTTP_DEFAULT_MAX_URL + 10, "", &len);
    run_whole(s, len, NULL, &o);
    CHECK(o.status == 414);
    free(s);

    /* 431: raw header section bytes */
    cz_http_limits_default(&lim);
    lim.max_header_bytes = 64;
    /* "Host: a\r\n" (9) + "X: " + 50 + "\r\n" (55) = 64 */
    s = repeat("GET / HTTP/1.1\r\nHost: a\r\nX: ", 'v', 50, "\r\n\r\n", &len);
    run_whole(s, len, &lim, &o);
    run_bytewise(s, len, &lim, &b);
    CHECK(o.status == 0 && b.status == 0);
    free(s);
    s = repeat("GET / HTTP/1.1\r\nHost: a\r\nX: ", 'v', 51, "\r\n\r\n", &len);
    run_whole(s, len, &lim, &o);
    run_bytewise(s, len, &lim, &b);
    CHECK(o.status == 431 && b.status == 431);
    free(s);
    /* whitespace padding stores nothing but still counts */
    s = repeat("GET / HTTP/1.1\r\nHost: a\r\nX:", ' ', 100, "v\r\n\r\n", &len);
    run_whole(s, len, &lim, &o);
    CHECK(o.status == 431);
    free(s);
    s = repeat("GET / HTTP/1.1\r\nHost: a\r\nX:", ' ', 100, "", &len); /* never ends */
    run_bytewise(s, len, &lim, &o);
    CHECK(o.status == 431);
    free(s);
    /* empty lines before a request are bounded too */
    {
        char junk[CZ_HTTP_DEFAULT_MAX_URL + 100];
        size_t i;
        for (i = 0; i + 1 < sizeof(junk); i += 2) {
            junk[i] = '\r';
            junk[i + 1] = '\n';
        }
        run_whole(junk, sizeof(junk), NULL, &o);
        CHECK(o.status == 400 && o.reason && strstr(o.reason, "request line too long"));
    }
    /* ... also when a request follows them in the same read (fuzz regression:
     * in one piece they were accepted, split they were refused) */
    cz_http_limits_default(&lim);
    lim.max_url = 16; /* request line bound: 16 + 64 */
    {
        static const char req[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        char in[200];
        size_t i, k;
        /* 34 empty lines + "GET / HTTP/" (11) = 79 bytes before the version: fine;
         * 35 empty lines: 81 > 80, refused however it is split */
        for (k = 34; k <= 35; k++) {
            for (i = 0; i < k; i++) {
                in[2 * i] = '\r';
                in[2 * i + 1] = '\n';
            }
            memcpy(in + 2 * k, req, sizeof(req) - 1);
            len = 2 * k + sizeof(req) - 1;
            run_whole(in, len, &lim, &o);
            run_bytewise(in, len, &lim, &b);
            if (k == 34) {
                CHECK(o.status == 0 && o.requests == 1 && same_outcome(&o, &b));
            } else {
                CHECK(o.status == 400 && o.reason && strstr(o.reason, "request line too long"));
                CHECK(b.status == 400 && b.reason && strstr(b.reason, "request line too long"));
            }
        }
    }

    /* 431: number of fields */
    cz_http_limits_default(&lim);
    lim.max_headers = 3;
    run_whole(S("GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\nC: 2\r\n\r\n"), &lim, &o);
    CHECK(o.status == 0);
    run_whole(S("GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\nC: 2\r\nD: 3\r\n\r\n"), &lim, &o);
    CHECK(o.status == 431 && o.reason && strstr(o.reason, "too many"));

    /* 413: decided from Content-Length when the head ends, before the body */
    cz_http_limits_default(&lim);
    lim.max_body = 10;
    run_whole(S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789"), &lim, &o);
    CHECK(o.status == 0 && strstr(o.log, "B=0123456789\n"));
    {
        static const char head[] = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n";
        cz_http_parser_t p;
        size_t used;
        cz_http_parser_init(&p, A, &lim);
        CHECK(cz_http_parser_feed(&p, head, sizeof(head) - 1, &used) == CZ_HTTP_ERROR);
        CHECK(cz_http_parser_status(&p) == 413);
        CHECK(cz_http_parser_request(&p)->keep_alive == 0);
        cz_http_parser_destroy(&p);
    }
    /* huge declared length with the default limit */
    run_whole(S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1048577\r\n\r\n"), NULL, &o);
    CHECK(o.status == 413);
    /* huge limits are cut, not overflowed */
    lim.max_url = lim.max_header_bytes = lim.max_headers = lim.max_body = lim.retain = SIZE_MAX;
    run_whole(S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok"), &lim, &o);
    CHECK(o.status == 0 && strstr(o.log, "B=ok\n"));
    /* zero fields mean defaults */
    memset(&lim, 0, sizeof(lim));
    run_whole(S("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), &lim, &o);
    CHECK(o.status == 0 && o.requests == 1);
}

/*
 * Whatever the bytes, the outcome must not depend on how they were split:
 * mutate good and pipelined inputs (fixed seed) and compare whole,
 * byte-by-byte and a random three-piece split.
 */
static uint32_t lcg(uint32_t *state) {
    *state = *state * 1664525u + 1013904223u;
    return *state >> 8;
}

static void test_split_invariance(void) {
    static const char alphabet[] = " \t\r\n\0:;,-0aA\x80\x7f/?#*";
    uint32_t seed = 12345;
    char buf[512];
    int round, diffs = 0, errors = 0;

    for (round = 0; round < 3000; round++) {
        const good_row_t *row = &good_rows[lcg(&seed) % (sizeof(good_rows) / sizeof(good_rows[0]))];
        size_t len = row->len, pos, cuts[2];
        outcome_t whole, bytes, split;
        int k, edits = 1 + (int)(lcg(&seed) % 3);

        memcpy(buf, row->in, len);
        for (k = 0; k < edits && len > 2; k++) {
            pos = lcg(&seed) % len;
            switch (lcg(&seed) % 3) {
            case 0: /* replace */ buf[pos] = alphabet[lcg(&seed) % (sizeof(alphabet) - 1)]; break;
            case 1: /* delete */
                memmove(buf + pos, buf + pos + 1, len - pos - 1);
                len--;
                break;
            default: /* insert */
                if (len < sizeof(buf)) {
                    memmove(buf + pos + 1, buf + pos, len - pos);
                    buf[pos] = alphabet[lcg(&seed) % (sizeof(alphabet) - 1)];
                    len++;
                }
                break;
            }
        }
        cuts[0] = 1 + lcg(&seed) % (len - 1);
        cuts[1] = cuts[0] + lcg(&seed) % (len - cuts[0]);
        run_whole(buf, len, NULL, &whole);
        run_bytewise(buf, len, NULL, &bytes);
        run_cuts(buf, len, cuts, 2, NULL, &split);
        errors += whole.status != 0;
        if (!same_outcome(&whole, &bytes) || !same_outcome(&whole, &split)) diffs++;
    }
    CHECK(diffs == 0);
    CHECK(errors > 1000); /* the mutations did reach the error paths */
}

/* ---- keep-alive --------------------------------------------------------- */

static void test_keep_alive(void) {
    static const struct {
        const char *in;
        size_t len;
        int ka;
    } rows[] = {
        {S("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 1},
        {S("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"), 0},
        {S("GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\n"), 0},
        {S("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n"), 0},
        {S("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n"), 1},
        {S("GET / HTTP/1.0\r\n\r\n"), 0},
        {S("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), 1},
        {S("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), 1},
        {S("GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n"), 0},
        {S("POST / HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx"), 1},
    };
    size_t i;

    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        outcome_t o;
        char ctx[64];

        run_whole(rows[i].in, rows[i].len, NULL, &o);
        snprintf(ctx, sizeof(ctx), "keep-alive row %zu", i);
        CHECKC(o.status == 0 && o.requests == 1, ctx);
        CHECKC(strstr(o.log, rows[i].ka ? "KA=1" : "KA=0") != NULL, ctx);
    }
}

/* ---- memory: reuse, release, reset -------------------------------------- */

static size_t req_allocated(void) {
    cz_memory_stats_t st;
    cz_allocator_stats(A, &st);
    return st.purpose[CZ_MEM_REQUEST].allocated;
}

static uint64_t req_nmalloc(void) {
    cz_memory_stats_t st;
    cz_allocator_stats(A, &st);
    return st.purpose[CZ_MEM_REQUEST].nmalloc;
}

static void feed_all(cz_http_parser_t *p, const char *in, size_t len, int *requests) {
    size_t off = 0, used;

    while (off < len) {
        cz_http_event_t ev = cz_http_parser_feed(p, in + off, len - off, &used);
        off += used;
        if (ev == CZ_HTTP_ERROR) return;
        if (ev == CZ_HTTP_REQUEST) (*requests)++;
    }
}

static void test_memory(void) {
    static const char small[] = "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc";
    cz_http_parser_t p;
    cz_http_limits_t lim;
    uint64_t before;
    size_t len, big_alloc;
    int n = 0;
    char *big;

    CHECK(req_allocated() == 0);
    cz_http_limits_default(&lim);
    lim.retain = 4096;
    cz_http_parser_init(&p, A, &lim);
    CHECK(req_allocated() == 0); /* init takes nothing */
    feed_all(&p, small, sizeof(small) - 1, &n);
    before = req_nmalloc();
    feed_all(&p, small, sizeof(small) - 1, &n);
    feed_all(&p, small, sizeof(small) - 1, &n);
    CHECK(n == 3);
    CHECK(req_nmalloc() == before); /* buffers reused, no allocation per request */

    /* a big body grows the buffer; the next request gives it back */
    big = repeat("POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n", 'z', 100000, "", &len);
    feed_all(&p, big, len, &n);
    CHECK(n == 4);
    CHECK(cz_http_parser_request(&p)->body.len == 100000);
    big_alloc = req_allocated();
    CHECK(big_alloc >= 100000);
    feed_all(&p, small, sizeof(small) - 1, &n);
    CHECK(n == 5);
    CHECK(req_allocated() < 8192);
    free(big);

    /* reset after an error: a fresh connection works */
    feed_all(&p, S("BAD\r\n\r\n"), &n);
    CHECK(cz_http_parser_status(&p) == 400);
    cz_http_parser_reset(&p);
    CHECK(cz_http_parser_status(&p) == 0 && cz_http_parser_reason(&p) == NULL);
    feed_all(&p, small, sizeof(small) - 1, &n);
    CHECK(n == 6);
    cz_http_parser_destroy(&p);
    CHECK(req_allocated() == 0);

    /* destroy in the middle of a request frees everything */
    cz_http_parser_init(&p, A, NULL);
    feed_all(&p, S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc"), &n);
    cz_http_parser_destroy(&p);
    CHECK(req_allocated() == 0);
}

/* ---- response side ------------------------------------------------------ */

static int buf_is(const cz_http_buf_t *b, const char *s) {
    size_t n = strlen(s);
    int ok = b->len == n && memcmp(b->data, s, n) == 0;

    if (!ok) fprintf(stderr, "got:\n%.*s\nexpected:\n%s\n", (int)b->len, b->data ? b->data : "", s);
    return ok;
}

#define STR(lit) ((cz_http_str_t){(lit), sizeof(lit) - 1})

static void test_date(void) {
    cz_http_date_t d;
    time_t t;

    cz_http_date_init(&d, 784111777);
    CHECK(strcmp(d.str, "Sun, 06 Nov 1994 08:49:37 GMT") == 0);
    CHECK(strlen(d.str) == CZ_HTTP_DATE_LEN);
    CHECK(cz_http_date_update(&d, 784111777) == 0); /* same second: untouched */
    CHECK(cz_http_date_update(&d, 784111778) == 1);
    CHECK(strcmp(d.str, "Sun, 06 Nov 1994 08:49:38 GMT") == 0);
    cz_http_date_update(&d, 0);
    CHECK(strcmp(d.str, "Thu, 01 Jan 1970 00:00:00 GMT") == 0);
    cz_http_date_update(&d, 951782400);
    CHECK(strcmp(d.str, "Tue, 29 Feb 2000 00:00:00 GMT") == 0);
    cz_http_date_update(&d, 4107542400);
    CHECK(strcmp(d.str, "Mon, 01 Mar 2100 00:00:00 GMT") == 0);
    cz_http_date_update(&d, (time_t)2147483648LL);
    CHECK(strcmp(d.str, "Tue, 19 Jan 2038 03:14:08 GMT") == 0);
    /* agree with the C library over a spread of times */
    for (t = 0; t < (time_t)4102444800LL; t += (time_t)86399 * 37 + 13) {
        char ref[64];
        struct tm *tm = gmtime(&t);
        strftime(ref, sizeof(ref), "%a, %d %b %Y %H:%M:%S GMT", tm);
        cz_http_date_update(&d, t);
        if (strcmp(ref, d.str) != 0) {
            CHECKC(0, ref);
            break;
        }
    }
    CHECK(t >= (time_t)4102444800LL);
}

static void test_response(void) {
    cz_http_date_t d;
    cz_http_buf_t b;
    cz_http_response_t r;
    cz_http_header_t h[3];
    size_t keep;

    cz_http_date_init(&d, 784111777);
    cz_http_buf_init(&b, A, 0);

    /* exact bytes of a simple response */
    memset(&r, 0, sizeof(r));
    r.status = 200;
    r.http_minor = 1;
    r.keep_alive = 1;
    r.content_type = STR("text/plain; charset=utf-8");
    r.body = STR("hello");
    h[0].name = STR("X-Id");
    h[0].value = STR("42");
    r.headers = h;
    r.num_headers = 1;
    CHECK(cz_http_response_write(&b, &d, &r) == CZ_HTTP_OK);
    CHECK(buf_is(&b, "HTTP/1.1 200 OK\r\n"
                     "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                     "Server: catzilla\r\n"
                     "X-Id: 42\r\n"
                     "Content-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: 5\r\n"
                     "\r\n"
                     "hello"));

    /* HEAD: the length the body would have, no body */
    cz_http_buf_reset(&b, 1 << 20);
    r.head = 1;
    r.num_headers = 0;
    r.content_type.base = NULL;
    CHECK(cz_http_response_write(&b, NULL, &r) == CZ_HTTP_OK);
    CHECK(buf_is(&b, "HTTP/1.1 200 OK\r\nServer: catzilla\r\nContent-Length: 5\r\n\r\n"));
    cz_http_buf_reset(&b, 1 << 20);
    r.body.base = NULL; /* HEAD: only the length is needed */
    r.body.len = 1234;
    CHECK(cz_http_response_write(&b, NULL, &r) == CZ_HTTP_OK);
    CHECK(buf_is(&b, "HTTP/1.1 200 OK\r\nServer: catzilla\r\nContent-Length: 1234\r\n\r\n"));
    r.head = 0;
    CHECK(cz_http_response_write(&b, NULL, &r) == CZ_HTTP_EINVAL); /* GET needs the bytes */

    /* closing, HTTP/1.0 keep-alive, custom reason, appended (pipelined) */
    cz_http_buf_reset(&b, 1 << 20);
    r.keep_alive = 0;
    r.status = 201;
    r.reason = STR("Made");
    r.body = STR("");
    CHECK(cz_http_response_write(&b, NULL, &r) == CZ_HTTP_OK);
    r.keep_alive = 1;
    r.http_minor = 0;
    r.reason.base = NULL;
    r.reason.len = 0;
    r.status = 599; /* no phrase known: empty reason */
    CHECK(cz_http_response_write(&b, NULL, &r) == CZ_HTTP_OK);
    CHECK(buf_is(&b, "HTTP/1.1 201 Made\r\nServer: catzilla\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                     "HTTP/1.1 599 \r\nServer: catzilla\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n"));
    r.http_minor = 1;

    /* 204 and 304: no Content-Length, no body */
    cz_http_buf_reset(&b, 1 << 20);
    r.status = 204;
    r.body = STR("ignored");
    CHECK(cz_http_response_write(&b, NULL, &r) == CZ_HTTP_OK);
    r.status = 304;
    CHECK(cz_http_response_write(&b, NULL, &r) == CZ_HTTP_OK);
    CHECK(buf_is(&b, "HTTP/1.1 204 No Content\r\nServer: catzilla\r\n\r\n"
                     "HTTP/1.1 304 Not Modified\r\nServer: catzilla\r\n\r\n"));

    /* framing headers from the user are dropped; Date/Server/Content-Type replace ours */
    cz_http_buf_reset(&b, 1 << 20);
    r.status = 200;
    r.body = STR("ab");
    r.content_type = STR("text/plain");
    h[0].name = STR("content-length");
    h[0].value = STR("999");
    h[1].name = STR("Server");
    h[1].value = STR("mine");
    h[2].name = STR("Content-Type");
    h[2].value = STR("text/html");
    r.headers = h;
    r.num_headers = 3;
    CHECK(cz_http_response_write(&b, &d, &r) == CZ_HTTP_OK);
    CHECK(buf_is(&b, "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                     "Server: mine\r\nContent-Type: text/html\r\nContent-Length: 2\r\n\r\nab"));

    /* head only, for a body written from its own memory */
    cz_http_buf_reset(&b, 1 << 20);
    r.num_headers = 0;
    r.content_type.base = NULL;
    r.body = STR("0123456789");
    CHECK(cz_http_response_write_head(&b, NULL, &r) == CZ_HTTP_OK);
    CHECK(buf_is(&b, "HTTP/1.1 200 OK\r\nServer: catzilla\r\nContent-Length: 10\r\n\r\n"));

    /* header injection and other invalid input: EINVAL, nothing appended */
    {
        static const struct {
            const char *name;
            size_t nlen;
            const char *value;
            size_t vlen;
        } bad[] = {
            {S("X"), S("a\r\nSet-Cookie: x=1")},
            {S("X"), S("a\nb")},
            {S("X"), S("a\rb")},
            {S("X"), S("a\0b")},
            {S("X"), S("a\x01"
                       "b")},
            {S("X"), S("a\x7f"
                       "b")},
            {S("X\r\nY"), S("v")},
            {S("X Y"), S("v")},
            {S("X:Y"), S("v")},
            {S("X\0"), S("v")},
            {S(""), S("v")},
            {S("X(1)"), S("v")},
        };
        size_t i, before;

        cz_http_buf_reset(&b, 1 << 20);
        CHECK(cz_http_buf_append(&b, "keep", 4) == CZ_HTTP_OK);
        before = b.len;
        for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            char ctx[32];
            h[0].name.base = bad[i].name;
            h[0].name.len = bad[i].nlen;
            h[0].value.base = bad[i].value;
            h[0].value.len = bad[i].vlen;
            r.headers = h;
            r.num_headers = 1;
            snprintf(ctx, sizeof(ctx), "injection row %zu", i);
            CHECKC(cz_http_response_write(&b, &d, &r) == CZ_HTTP_EINVAL, ctx);
            CHECKC(b.len == before, ctx);
        }
        /* HTAB and obs-text are fine in a value */
        h[0].name = STR("X-Ok");
        h[0].value = STR("a\tb\xc3\xa9");
        r.headers = h;
        CHECK(cz_http_response_write(&b, NULL, &r) == CZ_HTTP_OK);
        b.len = before;
        r.num_headers = 0;
        r.reason = STR("OK\r\nX: y");
        CHECK(cz_http_response_write(&b, NULL, &r) == CZ_HTTP_EINVAL);
        r.reason.base = NULL;
        r.reason.len = 0;
        r.content_type = STR("text/html\r\nX: y");
        CHECK(cz_http_response_write(&b, NULL, &r) == CZ_HTTP_EINVAL);
        r.content_type.base = NULL;
        r.status = 99;
        CHECK(cz_http_response_write(&b, NULL, &r) == CZ_HTTP_EINVAL);
        r.status = 1000;
        CHECK(cz_http_response_write(&b, NULL, &r) == CZ_HTTP_EINVAL);
        CHECK(b.len == before);
        r.status = 200;
    }

    /* the buffer's bound */
    {
        cz_http_buf_t small;
        cz_http_buf_init(&small, A, 64);
        r.body = STR("0123456789012345678901234567890123456789");
        CHECK(cz_http_response_write(&small, NULL, &r) == CZ_HTTP_E2BIG);
        CHECK(small.len == 0);
        r.body = STR("");
        CHECK(cz_http_response_write(&small, NULL, &r) == CZ_HTTP_OK);
        CHECK(small.len <= 64 && small.cap <= 64);
        cz_http_buf_free(&small);
    }

    /* reset keeps small storage, frees big storage */
    cz_http_buf_reset(&b, 1 << 20);
    keep = b.cap;
    CHECK(keep > 0 && b.data != NULL && b.len == 0);
    cz_http_buf_reset(&b, 0);
    CHECK(b.data == NULL && b.cap == 0);
    cz_http_buf_free(&b);
}

static void test_errors(void) {
    cz_http_date_t d;
    cz_http_buf_t b;

    cz_http_date_init(&d, 784111777);
    cz_http_buf_init(&b, A, 0);

    CHECK(cz_http_write_error(&b, &d, 404, NULL, 1, 1, 0) == CZ_HTTP_OK);
    CHECK(buf_is(&b, "HTTP/1.1 404 Not Found\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                     "Server: catzilla\r\nContent-Type: application/json\r\nContent-Length: 22\r\n\r\n"
                     "{\"detail\":\"Not Found\"}"));
    cz_http_buf_reset(&b, 1 << 20);
    CHECK(cz_http_write_error(&b, NULL, 405, "GET, HEAD", 1, 1, 0) == CZ_HTTP_OK);
    CHECK(buf_is(&b, "HTTP/1.1 405 Method Not Allowed\r\nServer: catzilla\r\nAllow: GET, HEAD\r\n"
                     "Content-Type: application/json\r\nContent-Length: 31\r\n\r\n"
                     "{\"detail\":\"Method Not Allowed\"}"));
    cz_http_buf_reset(&b, 1 << 20);
    CHECK(cz_http_write_error(&b, NULL, 405, "GET\r\nX: y", 1, 1, 0) == CZ_HTTP_EINVAL);
    CHECK(b.len == 0);
    CHECK(cz_http_write_error(&b, NULL, 413, NULL, 1, 0, 0) == CZ_HTTP_OK);
    CHECK(buf_is(&b, "HTTP/1.1 413 Content Too Large\r\nServer: catzilla\r\n"
                     "Content-Type: application/json\r\nContent-Length: 30\r\nConnection: close\r\n\r\n"
                     "{\"detail\":\"Content Too Large\"}"));
    cz_http_buf_reset(&b, 1 << 20);
    CHECK(cz_http_write_error(&b, NULL, 500, NULL, 1, 1, 1) == CZ_HTTP_OK); /* HEAD */
    CHECK(buf_is(&b, "HTTP/1.1 500 Internal Server Error\r\nServer: catzilla\r\n"
                     "Content-Type: application/json\r\nContent-Length: 34\r\n\r\n"));
    cz_http_buf_reset(&b, 1 << 20);
    {
        static const int codes[] = {400, 414, 431, 501, 503, 505};
        size_t i;
        for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
            char want[96];
            b.len = 0;
            CHECK(cz_http_write_error(&b, NULL, codes[i], NULL, 1, 0, 0) == CZ_HTTP_OK);
            snprintf(want, sizeof(want), "{\"detail\":\"%s\"}", cz_http_reason(codes[i]));
            CHECKC(b.len > strlen(want) && memcmp(b.data + b.len - strlen(want), want, strlen(want)) == 0, want);
        }
    }
    CHECK(cz_http_write_error(&b, NULL, 200, NULL, 1, 1, 0) == CZ_HTTP_EINVAL);
    cz_http_buf_free(&b);
}

int main(void) {
    char why[128] = "";
    cz_memory_stats_t st;

    A = cz_allocator_create(CZ_BACKEND_MALLOC, why, sizeof(why));
    if (!A) {
        fprintf(stderr, "no allocator: %s\n", why);
        return 2;
    }
    test_bad_requests();
    test_good_requests();
    test_pipelining();
    test_chunked();
    test_expect_continue();
    test_limits();
    test_keep_alive();
    test_split_invariance();
    test_memory();
    test_date();
    test_response();
    test_errors();

    /* everything taken through the allocator was given back */
    cz_allocator_stats(A, &st);
    CHECK(st.purpose[CZ_MEM_REQUEST].allocated == 0);
    CHECK(st.purpose[CZ_MEM_RESPONSE].allocated == 0);
    CHECK(st.purpose[CZ_MEM_REQUEST].nmalloc == st.purpose[CZ_MEM_REQUEST].nfree);
    CHECK(st.purpose[CZ_MEM_RESPONSE].nmalloc == st.purpose[CZ_MEM_RESPONSE].nfree);
    cz_allocator_destroy(A);

    return check_summary();
}
