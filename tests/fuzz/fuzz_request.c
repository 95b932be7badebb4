/*
 * fuzz_request — libFuzzer harness for the C request path of the server:
 * the bytes of one connection, split at points the input chooses (as TCP
 * would), through the connection engine itself (cz_conn.c, as cz_server.c
 * drives it): cz_conn_feed(), the parser, cz_answer_route() on a fixed
 * router (the server's own answers: OPTIONS 204, 405 + Allow,
 * trailing-slash 307, 404), the application's answers (whole responses,
 * streamed bodies with a known length or chunked, file ranges, deferred
 * answers), request bodies read as they arrive (routes /stream/{how}:
 * env->route_streams_body, env->body, cz_conn_body_next(); {how} says when
 * the application takes each piece and answers, see stream_step()), and
 * the output queue taken by a transport made of the input (partial writes,
 * a full socket, timeouts, EOF). Then the same bytes through the parser
 * alone, in the input's reads, bodies handed out in pieces
 * (cz_http_parser_pass_body()) where the input says.
 *
 * Input layout (see README.md):
 *   byte 0      options (bit 0-1 limits preset, 2 deferred answers,
 *               3 small write buffer, 4 bounded output buffer,
 *               5 server stopping, 6 embedder answers 404s, 7 no Date)
 *   byte 1      >= 0x80: fail the (byte - 0x7f)-th allocation; else bit 6:
 *               let every deadline pass after the input (with options 2
 *               and 5: the stop's deadline passes before a deferred
 *               request is answered), bits 0-5: the
 *               socket takes (bits * 7) bytes per turn (0: all)
 *   bytes 2-4   read sizes, used in turn: (b & 0x3f) * (b & 0x80 ? 37 : 1),
 *               0 meaning "everything left"; bit 6 of byte 2 + k % 3: in
 *               the parser-alone pass, the k-th request with a body has
 *               it handed out in pieces (otherwise stored); bit 6 of
 *               byte 4 also turns accounting on (env->answered,
 *               env->clock_ns; the seeds' '@' and 'A' have it set)
 *   the rest    the bytes the client sends
 *
 * Checked on every input (abort = crash for libFuzzer):
 *   - ASan/UBSan: every read and write; each read's bytes live in their own
 *     heap block that is freed right after cz_conn_feed() returns, so a
 *     request view into the read buffer is a use-after-free;
 *   - each complete request's contract (cz_http.h), field by field, as it
 *     reaches cz_answer_route() (wrapped with -Wl,--wrap);
 *   - split invariance: the requests (and the end: input, error, close)
 *     equal those of the same bytes parsed in one piece; a body streamed
 *     to the application counts as the concatenation of its pieces (in
 *     the one-piece parse it is stored whole);
 *   - streamed request bodies (env->body): dispatched at the head only
 *     when the route streams and the body is not whole in hand (chunked:
 *     always), with no body in the request; pieces never empty, in order,
 *     each the parser's view, within the route's bound and Content-Length,
 *     their total the body (Content-Length at the end); nothing read and
 *     no deadline while a piece waits; cz_conn_body_next() once per piece
 *     (CZ_CONN_ESTATE otherwise); a status (400, 413, 431 from the parser,
 *     413 past the route's bound, 408 at the body deadline) comes after
 *     the request was answered with it, Connection: close, a late answer
 *     refused; an answer before the end closes the connection; the stop's
 *     deadline answers 503; no request routed or dispatched twice, none
 *     left with the application at the end;
 *   - the parser alone, bodies in pieces: the feed contract, pass_body
 *     only right after CZ_HTTP_HEADERS, pieces never empty and views into
 *     the bytes the feed consumed, body_len, bounds, an empty body at the
 *     REQUEST of a passed body, and the same requests and end as the
 *     one-piece parse (each passed body the concatenation of its pieces);
 *   - the router's answer: params inside the path, status consistent;
 *   - cz_answer_route(): who answers (application or server), and what the
 *     server wrote, checked against an oracle written here: 204 + Allow for
 *     OPTIONS, 405 + Allow, 307 + Location (the other trailing-slash form,
 *     query kept, never "//host" or "/\host": those are 404), 404; the Allow
 *     and Location values are compared byte for byte;
 *   - what the connection decides for each answer (keep-alive, HTTP/1.0,
 *     HEAD; no keep-alive before a streamed body's end, or after trailer
 *     fields saying close; when stopping, keep-alive while bytes read wait
 *     unparsed), computed here independently; every answering call's result:
 *     CZ_HTTP_EINVAL exactly when a header name/value or reason is invalid
 *     (then a 500), all-or-nothing on error, and after an unanswered request
 *     nothing more is sent;
 *   - every byte sent parses back with llhttp (HTTP_RESPONSE) into exactly
 *     the responses expected: status, number of header fields (no injected
 *     field), Content-Length or chunked and the body's length, keep-alive or
 *     close, nothing after a "Connection: close"; 100 Continue only as an
 *     interim answer; a stream cut short only at the very end;
 *   - files handed to the connection are closed once it is destroyed;
 *   - the connection's totals: env->bytes_in is every byte fed,
 *     env->bytes_out every byte the transport took, env->requests every
 *     request routed, env->abandoned only after the client's EOF;
 *   - accounting (bit 6 of byte 4), against cz_conn.h: each request routed
 *     (application or the router's own answer) is reported at most once,
 *     before the next is routed, for that request (method, target,
 *     version intact), with its route index (CZ_CONN_NO_ROUTE for the
 *     server's answers and a not_found application), the env->clock_ns
 *     value read when it was dispatched (never behind an earlier one), a
 *     status of 100..999, and bytes_out the last bytes queued: at the end,
 *     the bytes of every report parse as exactly one response (llhttp)
 *     with that status (one cut by a failed cz_conn_stream_end() may end
 *     short); an answer queued by a call is reported inside it; a request
 *     left unreported was dropped (the client left, its answer could not
 *     be queued, out of memory, a timeout); no clock is read without
 *     env->answered;
 *   - cz_metrics (sized for the router; growing it keeps every figure)
 *     fed each report: its figures equal a model kept here (count per
 *     method and status class, bucket, sum, observed; route index past
 *     the table: the "no route" slot) and add up;
 *   - cz_accesslog, both formats, for each report and again with the
 *     request's body (any bytes) as its target; the client is the
 *     request's X-Forwarded-For (client bytes: tabs, quotes, bytes past
 *     ASCII), cut at 64: each line one line of printable ASCII ending in
 *     its only '\n'; COMMON byte for byte against a reference (the
 *     request the only quoted field); JSON parsed by a strict RFC 8259
 *     reader (escapes, UTF-8, surrogates, numbers) with exactly its eight
 *     members, each string decoding back to the bytes logged (target,
 *     client, method; past ASCII as U+0080..U+00FF) and each number the
 *     one logged; into a 64 KiB batch (E2BIG with nothing appended, then
 *     into an empty one) and into a buffer bounded by the clock (E2BIG with
 *     nothing appended, or the same line within the bound);
 *   - leaks: the allocator's live bytes and blocks are back to their start
 *     value after every input.
 */
#define _GNU_SOURCE
#include "fuzz_common.h"

#include "cz_accesslog.h"
#include "cz_answer.h"
#include "cz_cond.h"
#include "cz_conn.h"
#include "cz_files.h"
#include "cz_http.h"
#include "cz_memory.h"
#include "cz_metrics.h"
#include "cz_router.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HDR_LEN 5

enum {
    OPT_LIMITS = 0x03,
    OPT_DEFER = 0x04,
    OPT_SMALL_WBUF = 0x08,
    OPT_SMALL_OUT = 0x10,
    OPT_STOPPING = 0x20,
    OPT_NOT_FOUND = 0x40,
    OPT_NO_DATE = 0x80
};

static cz_allocator_t *g_alloc;  /* requests and responses (leak-checked) */
static cz_allocator_t *g_static; /* the router */
static cz_router_t *g_router;
static int g_verbose; /* FUZZ_VERBOSE=1: one line per input */

/* ---- the application: a fixed router ---------------------------------------- */

/* STREAM: body in pieces with a known length; CHUNKED: length unknown;
 * FILE: a range of a file the response owns. */
enum { MODE_ECHO, MODE_STATUS, MODE_STREAM, MODE_EMPTY, MODE_CHUNKED, MODE_FILE, MODE_STATIC };

typedef struct {
    const char *method;
    const char *pattern;
    int status;
    int mode;
    uint64_t max_body; /* the route's own body bound (0: the parser's) */
    int streams;       /* reads its body as it arrives (env->route_streams_body) */
} route_t;

static const route_t g_routes[] = {
    {"GET", "/", 200, MODE_ECHO, 0, 0},
    {"GET", "/health", 204, MODE_EMPTY, 0, 0},
    {"GET", "/items", 200, MODE_ECHO, 0, 0},
    {"POST", "/items", 201, MODE_ECHO, 4, 0}, /* the engine's own 413 past 4 bytes */
    {"GET", "/items/{item_id}", 200, MODE_ECHO, 0, 0},
    {"PUT", "/items/{item_id}", 200, MODE_ECHO, 0, 0},
    {"PATCH", "/items/{item_id}", 200, MODE_ECHO, 0, 0},
    {"DELETE", "/items/{item_id}", 204, MODE_EMPTY, 0, 0},
    {"GET", "/items/{item_id}/reviews/{review_id}", 200, MODE_ECHO, 0, 0},
    {"GET", "/users/me", 200, MODE_ECHO, 0, 0},
    {"GET", "/users/{user_id}", 200, MODE_ECHO, 0, 0},
    {"GET", "/users/{user_id}/posts/", 200, MODE_ECHO, 0, 0},
    {"HEAD", "/users/{user_id}/posts/", 200, MODE_EMPTY, 0, 0},
    {"GET", "/files/{path:path}", 200, MODE_STREAM, 0, 0},
    {"GET", "/static/{rest:path}", 200, MODE_ECHO, 0, 0},
    {"POST", "/upload", 201, MODE_STREAM, 0, 0},
    {"PUT", "/upload", 201, MODE_STREAM, 0, 0},
    {"OPTIONS", "/cors", 204, MODE_EMPTY, 0, 0},
    {"GET", "/status/{code}", 0, MODE_STATUS, 0, 0},
    {"POST", "/status/{code}", 0, MODE_STATUS, 0, 0},
    {"PURGE", "/cache/{key}", 200, MODE_EMPTY, 0, 0},
    {"GET", "/cache/{key}", 304, MODE_EMPTY, 0, 0},
    {"GET", "/redirect/", 200, MODE_ECHO, 0, 0},
    {"GET", "/a/b/c/d/e/f", 200, MODE_ECHO, 0, 0},
    {"GET", "/search", 200, MODE_ECHO, 0, 0},
    {"POST", "/search", 200, MODE_ECHO, 0, 0},
    {"GET", "/{page}", 200, MODE_ECHO, 0, 0},
    {"GET", "/chunks/{n}", 200, MODE_CHUNKED, 0, 0},
    {"POST", "/chunks/{n}", 200, MODE_CHUNKED, 0, 0},
    {"GET", "/download/{name}", 200, MODE_FILE, 0, 0},
    {"GET", "/assets/{path:path}", 0, MODE_STATIC, 0, 0},
    {"GET", "/assets/", 0, MODE_STATIC, 0, 0},
    /* bodies read as they arrive: {how} says when the application takes
     * each piece and answers (see stream_step()) */
    {"POST", "/stream/{how}", 201, MODE_ECHO, 0, 1},
    {"PUT", "/stream/{how}", 200, MODE_STREAM, 8, 1},
};

/* A static directory (made at start-up under /tmp) with a secret beside it
 * that no answer may ever carry. */
#define SECRET "TOPSECRET-0f9e"
static cz_static_t *g_static_dir;
#define NROUTES (sizeof(g_routes) / sizeof(g_routes[0]))

/* env->route_max_body: the engine answers 413 past a route's own bound
 * (the parser's bound is the preset's). */
static uint64_t route_max_body(void *ctx, uint32_t route_index) {
    (void)ctx;
    FUZZ_CHECK(route_index < NROUTES);
    return g_routes[route_index].max_body;
}

/* env->route_streams_body */
static int route_streams_body(void *ctx, uint32_t route_index, const cz_http_request_t *req) {
    (void)ctx;
    FUZZ_CHECK(route_index < NROUTES && req != NULL && req->has_body);
    return g_routes[route_index].streams;
}

/* ---- per-input configuration ---------------------------------------------- */

typedef struct {
    unsigned opts;
    cz_http_limits_t limits;
    size_t max_write_buffer; /* cz_server_config_t.max_write_buffer */
    size_t out_max;          /* cz_http_buf_init max (0: unbounded) */
    size_t split[3];         /* read sizes; 0: all that is left */
    cz_http_date_t date;
    const cz_http_date_t *datep;
} cfg_t;

static cfg_t C;

static void set_limits(unsigned preset) {
    cz_http_limits_t *l = &C.limits;

    cz_http_limits_default(l);
    switch (preset) {
    case 1:
        l->max_url = 64, l->max_header_bytes = 256, l->max_headers = 8;
        l->max_body = 256, l->retain = 128;
        break;
    case 2:
        l->max_url = 8, l->max_header_bytes = 24, l->max_headers = 2;
        l->max_body = 8, l->retain = 1;
        break;
    case 3:
        l->max_url = 1, l->max_header_bytes = 1, l->max_headers = 1;
        l->max_body = 1, l->retain = 1;
        break;
    default: break;
    }
}

/* ---- response oracle: llhttp parses what we wrote ---------------------------- */

/* A header field whose value is compared byte for byte (server answers). */
enum { WANT_NONE, WANT_ALLOW, WANT_LOCATION };

typedef struct {
    int status;
    int head;          /* answer to HEAD: body not sent */
    size_t nfields;    /* header fields expected */
    int has_length;    /* Content-Length expected */
    int chunked;       /* Transfer-Encoding: chunked expected */
    uint64_t body_len; /* its value */
    int keep_alive;
    int want;    /* WANT_*: exactly one such field, with this value */
    int any;     /* a static file answer: only well-formed, and no secret */
    char *value; /* (heap, owned by the queue) */
    size_t value_len;
} expect_t;

typedef struct {
    llhttp_t ll;
    llhttp_settings_t st;
    expect_t *q;
    size_t qhead, qtail, qcap;
    size_t expected; /* responses ever expected (qtail moves back) */
    size_t nfields;
    uint64_t body;
    int in_msg;
    int closed;  /* a "Connection: close" response was parsed */
    int interim; /* the message being parsed is a 100 Continue */
    size_t responses;
    /* the field being parsed, and the value of the wanted one */
    char fname[16];
    size_t fname_len;
    int in_want;
    size_t nwant;
    char *val;
    size_t val_len, val_cap;
} verifier_t;

static verifier_t *ver_of(llhttp_t *ll) {
    return (verifier_t *)ll->data;
}

static int v_begin(llhttp_t *ll) {
    verifier_t *v = ver_of(ll);

    FUZZ_CHECK(!v->closed); /* nothing after Connection: close */
    v->in_msg = 1;
    v->interim = 0;
    v->nfields = 0;
    v->body = 0;
    v->fname_len = 0;
    v->in_want = 0;
    v->nwant = 0;
    return 0;
}

static int v_field(llhttp_t *ll, const char *at, size_t len) {
    verifier_t *v = ver_of(ll);
    size_t room = sizeof(v->fname) - v->fname_len;

    memcpy(v->fname + v->fname_len, at, len < room ? len : room);
    v->fname_len += len < room ? len : room;
    return 0;
}

static int v_field_complete(llhttp_t *ll) {
    verifier_t *v = ver_of(ll);
    int want = v->qhead < v->qtail ? v->q[v->qhead].want : WANT_NONE;

    v->nfields++;
    v->in_want = (want == WANT_ALLOW && ieq_lit(v->fname, v->fname_len, "allow")) ||
                 (want == WANT_LOCATION && ieq_lit(v->fname, v->fname_len, "location"));
    if (v->in_want) {
        v->nwant++;
        v->val_len = 0;
    }
    v->fname_len = 0;
    return 0;
}

static int v_value(llhttp_t *ll, const char *at, size_t len) {
    verifier_t *v = ver_of(ll);

    if (!v->in_want) return 0;
    if (v->val_len + len > v->val_cap) {
        char *nv;
        v->val_cap = (v->val_len + len) * 2;
        nv = realloc(v->val, v->val_cap);
        if (!nv) abort();
        v->val = nv;
    }
    memcpy(v->val + v->val_len, at, len);
    v->val_len += len;
    return 0;
}

static int v_value_complete(llhttp_t *ll) {
    ver_of(ll)->in_want = 0;
    return 0;
}

static int v_headers_complete(llhttp_t *ll) {
    verifier_t *v = ver_of(ll);
    const expect_t *e;

    if (ll->status_code == 100 && v->nfields == 0) {
        /* the connection's own interim answer to "Expect: 100-continue"
         * (a handler's 100 has at least a Server field) */
        v->interim = 1;
        return 0;
    }
    FUZZ_CHECK(v->qhead < v->qtail); /* a response we did not write */
    e = &v->q[v->qhead];
    if (e->any) return e->head ? 1 : 0;

    if (ll->status_code != e->status || v->nfields != e->nfields) {
        fprintf(stderr, "response: status %d (want %d), %zu fields (want %zu)\n", ll->status_code, e->status,
                v->nfields, e->nfields);
        FUZZ_CHECK(0);
    }
    if (e->want != WANT_NONE) {
        FUZZ_CHECK(v->nwant == 1);
        if (v->val_len != e->value_len || memcmp(v->val, e->value, e->value_len) != 0) {
            fprintf(stderr, "response %d: %s \"%.*s\" (want \"%.*s\")\n", e->status,
                    e->want == WANT_ALLOW ? "Allow" : "Location", (int)v->val_len, v->val ? v->val : "",
                    (int)e->value_len, e->value);
            FUZZ_CHECK(0);
        }
    }
    if (e->want == WANT_LOCATION) {
        /* a redirect to "//host", or "/\host" that browsers read as
         * "//host", sends the client to another site */
        FUZZ_CHECK(e->status == 307 && v->val_len > 0 && v->val[0] == '/');
        FUZZ_CHECK(v->val_len < 2 || (v->val[1] != '/' && v->val[1] != '\\'));
    }
    if (e->has_length) {
        FUZZ_CHECK((ll->flags & F_CONTENT_LENGTH) != 0);
        FUZZ_CHECK(ll->content_length == e->body_len);
    } else {
        FUZZ_CHECK((ll->flags & F_CONTENT_LENGTH) == 0);
    }
    FUZZ_CHECK(((ll->flags & F_CHUNKED) != 0) == e->chunked);
    return e->head ? 1 : 0; /* 1: no body follows (HEAD) */
}

static int v_body(llhttp_t *ll, const char *at, size_t len) {
    verifier_t *v = ver_of(ll);
    if (!v->interim && v->q[v->qhead].any) FUZZ_CHECK(memmem(at, len, SECRET, sizeof(SECRET) - 1) == NULL);
    v->body += len;
    return 0;
}

static int v_message_complete(llhttp_t *ll) {
    verifier_t *v = ver_of(ll);
    const expect_t *e;

    if (v->interim) {
        v->in_msg = 0;
        return 0;
    }
    e = &v->q[v->qhead];
    if (!e->any) FUZZ_CHECK(v->body == (e->head ? 0 : e->body_len));
    FUZZ_CHECK(llhttp_should_keep_alive(ll) == e->keep_alive);
    if (!e->keep_alive) v->closed = 1;
    free(v->q[v->qhead].value);
    v->qhead++;
    v->in_msg = 0;
    v->responses++;
    return 0;
}

static void ver_init(verifier_t *v) {
    memset(v, 0, sizeof(*v));
    llhttp_settings_init(&v->st);
    v->st.on_message_begin = v_begin;
    v->st.on_header_field = v_field;
    v->st.on_header_field_complete = v_field_complete;
    v->st.on_header_value = v_value;
    v->st.on_header_value_complete = v_value_complete;
    v->st.on_headers_complete = v_headers_complete;
    v->st.on_body = v_body;
    v->st.on_message_complete = v_message_complete;
    llhttp_init(&v->ll, HTTP_RESPONSE, &v->st);
    v->ll.data = v;
}

static void ver_free(verifier_t *v) {
    size_t i;

    for (i = v->qhead; i < v->qtail; i++) free(v->q[i].value);
    free(v->q);
    free(v->val);
}

/* Queue a response; the returned entry is valid until the next call. */
static expect_t *ver_expect(verifier_t *v, const expect_t *e) {
    if (v->qtail == v->qcap) {
        size_t live = v->qtail - v->qhead;
        if (v->qhead > 0) {
            memmove(v->q, v->q + v->qhead, live * sizeof(*v->q));
            v->qhead = 0;
            v->qtail = live;
        }
        if (v->qtail == v->qcap) {
            expect_t *nq;
            v->qcap = v->qcap ? v->qcap * 2 : 16;
            nq = realloc(v->q, v->qcap * sizeof(*nq));
            if (!nq) abort();
            v->q = nq;
        }
    }
    v->expected++;
    v->q[v->qtail] = *e;
    return &v->q[v->qtail++];
}

/* Everything sent parses as the expected responses (the last one may be
 * unfinished: the caller checks the end). */
static void ver_check(verifier_t *v, const char *data, size_t len) {
    const char *p = data;
    size_t n = len;

    while (n > 0) {
        llhttp_errno_t e = llhttp_execute(&v->ll, p, n);
        size_t used;

        if (e == HPE_OK) break;
        if (e == HPE_PAUSED_UPGRADE) { /* a handler's 101: go on */
            used = (size_t)(llhttp_get_error_pos(&v->ll) - p);
            p += used;
            n -= used;
            llhttp_resume_after_upgrade(&v->ll);
            continue;
        }
        fprintf(stderr, "response bytes do not parse: %s (%s)\n---\n%.*s\n---\n", llhttp_errno_name(e),
                llhttp_get_error_reason(&v->ll), (int)(len > 4000 ? 4000 : len), data);
        FUZZ_CHECK(0);
    }
}

/* ---- what a response must look like ------------------------------------------- */

static int is_tchar(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int valid_token(cz_http_str_t s) {
    size_t i;

    if (!s.base || s.len == 0) return 0;
    for (i = 0; i < s.len; i++)
        if (!is_tchar((unsigned char)s.base[i])) return 0;
    return 1;
}

static int valid_text(cz_http_str_t s) {
    size_t i;

    if (!s.base) return s.len == 0;
    for (i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.base[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) return 0;
    }
    return 1;
}

/* Independent of cz_response.c: would it refuse the response (EINVAL)? */
static int response_invalid(const cz_http_response_t *r, int with_body) {
    size_t i;
    int bodyless = r->status < 200 || r->status == 204 || r->status == 304;

    if (r->status < 100 || r->status > 999) return 1;
    if (r->reason.base && !valid_text(r->reason)) return 1;
    if (r->content_type.base && !valid_text(r->content_type)) return 1;
    for (i = 0; i < r->num_headers; i++)
        if (!valid_token(r->headers[i].name) || !valid_text(r->headers[i].value)) return 1;
    if (with_body && !bodyless && !r->head && r->body.len > 0 && !r->body.base) return 1;
    return 0;
}

/* What `r` must look like once written (computed while its views live). */
static expect_t response_expect(const cz_http_response_t *r) {
    expect_t e;
    size_t i;
    int udate = 0, userver = 0, uctype = 0;
    int bodyless = r->status < 200 || r->status == 204 || r->status == 304;

    memset(&e, 0, sizeof(e));
    for (i = 0; i < r->num_headers; i++) {
        const cz_http_str_t *n = &r->headers[i].name;
        if (ieq_lit(n->base, n->len, "content-length") || ieq_lit(n->base, n->len, "transfer-encoding") ||
            ieq_lit(n->base, n->len, "connection"))
            continue;
        udate |= ieq_lit(n->base, n->len, "date");
        userver |= ieq_lit(n->base, n->len, "server");
        uctype |= ieq_lit(n->base, n->len, "content-type");
        e.nfields++;
    }
    e.nfields += (C.datep && !udate) + !userver + (r->content_type.base && !uctype) +
                 (!bodyless && r->framing != CZ_HTTP_FRAME_CLOSE) +
                 (!r->keep_alive || r->http_minor == 0 || r->framing == CZ_HTTP_FRAME_CLOSE);
    e.status = r->status;
    e.head = r->head;
    e.has_length = !bodyless && r->framing == CZ_HTTP_FRAME_LENGTH;
    e.chunked = !bodyless && r->framing == CZ_HTTP_FRAME_CHUNKED;
    e.body_len = bodyless ? 0 : r->body.len;
    e.keep_alive = r->keep_alive && r->framing != CZ_HTTP_FRAME_CLOSE;
    return e;
}

static expect_t *expect_response(verifier_t *v, const cz_http_response_t *r) {
    expect_t e = response_expect(r);
    return ver_expect(v, &e);
}

static expect_t *expect_error(verifier_t *v, int status, int minor, int keep, int head) {
    const char *detail = cz_http_reason(status);
    expect_t e;

    if (!detail[0]) detail = status < 500 ? "Bad Request" : "Internal Server Error";
    memset(&e, 0, sizeof(e));
    e.status = status;
    e.head = head;
    /* Date, Server, [Allow], Content-Type, Content-Length, [Connection] */
    e.nfields = (C.datep != NULL) + 1 + (status == 405) + 1 + 1 + (!keep || minor == 0);
    e.has_length = 1;
    e.body_len = strlen("{\"detail\":\"\"}") + strlen(detail);
    e.keep_alive = keep;
    return ver_expect(v, &e);
}

/* ---- the connection: cz_conn driven by a transport made of the input -------------- */

enum { END_INPUT, END_ERROR, END_CLOSE_REQ, END_CLOSE_OTHER };

#define MAX_DIGESTS 512
#define MAX_FILES   64
#define MAX_HOW     32

/* What the application does with a streamed body later, on a turn of the
 * transport (settle()): take the waiting piece, answer, or answer once the
 * transport has read again (or the input is over). */
enum { LATER_NONE, LATER_TAKE, LATER_ANSWER, LATER_ANSWER_AFTER_READ };

/* A request whose body reaches env->body piece by piece (a route with
 * `streams`, its body not in hand when its head was read). */
typedef struct {
    int active;         /* dispatched, not answered, the connection still has it */
    int ended;          /* env->body said the body is complete */
    int waiting;        /* a piece was given and not taken (cz_conn_body_next) */
    int later;          /* LATER_*: what settle() does at its next turn */
    size_t later_reads; /* reads when LATER_ANSWER_AFTER_READ was decided */
    char how[MAX_HOW];  /* the route's {how}: one letter per decision, in turn */
    size_t how_len, step;
    cz_match_t match; /* of the request (params point into its path) */
    uint64_t limit;   /* its body bound: the route's, or the parser's */
    size_t nerr;      /* canned errors written when it was dispatched */
    char *got;        /* the pieces, concatenated (heap) */
    size_t len, cap, pieces;
} sbody_t;

typedef struct {
    cz_conn_env_t env;
    cz_conn_t conn;
    verifier_t v;
    uint64_t now;     /* the transport's clock, ms */
    int eof;          /* cz_conn_eof() was called */
    int deferred;     /* a request waits for its answer (OPT_DEFER) */
    int expire;       /* stopping, deferred and timeouts: the stop's deadline passes before the answer */
    cz_match_t match; /* of the deferred request */
    /* a body being streamed: the rest of `body`, `piece` bytes at a time */
    cz_http_str_t body;
    size_t piece;
    int streaming, cut;   /* cut: a stream ended early (connection closes) */
    size_t unanswered_at; /* responses expected when a request went
                             unanswered (nothing may follow); SIZE_MAX: none */
    int bounded;          /* a CZ_HTTP_E2BIG was seen */
    int route_cut;        /* a body over its route's limit was answered 413 */
    int last_keep_alive;  /* of the last complete request */
    int files[MAX_FILES]; /* files handed to the connection */
    size_t nfiles;
    /* transcript, compared with a one-piece parse */
    uint64_t digest[MAX_DIGESTS];
    size_t nreq;
    char *out; /* everything the transport sent, for the verifier */
    size_t out_len, out_cap;
    size_t quota;                               /* bytes the "socket" takes per turn; 0: all */
    size_t reads;                               /* cz_conn_feed() calls */
    size_t fed;                                 /* bytes given to cz_conn_feed() */
    int input_done;                             /* every read is done (or the connection reads no more) */
    int in_timeout;                             /* inside cz_conn_timeout() */
    size_t routed_app, dispatched;              /* requests routed to the application, dispatched */
    uint64_t routed;                            /* requests routed (cz_answer_route) */
    sbody_t sb;                                 /* a streamed request body */
    int sb_early;                               /* a streamed request was answered before its body's end */
    size_t sb_bodies;                           /* streamed bodies that completed */
    size_t sb_dispatched, sb_pieces, sb_failed; /* for FUZZ_VERBOSE */
    /* the last canned error written (every one is expected by the
     * cz_http_write_error wrapper; callers check it is the right one) */
    size_t nerr;
    int err_status, err_minor, err_keep, err_head;
    expect_t *err;
} harness_t;

static harness_t H;

/* accounting (env->answered), see "accounting" below */
#define ACCOUNT_BIT  0x40          /* of byte 4 */
#define LOG_MAX      (64u * 1024u) /* an access log batch (py_server.c hands them on at 64 KiB) */
#define LOG_BODY_MAX 4096u         /* of a body logged as a request target */
#define CLIENT_MAX   64u           /* of the client address kept in a line (cz_accesslog.c) */
#define CLIENT_COPY  (CLIENT_MAX + 16u)

/* One report: where its answer lies in everything queued on the connection. */
typedef struct {
    uint64_t start, end;
    int status;
    int head; /* answer to HEAD: no body follows its head */
    int cut;  /* reported by a cz_conn_stream_end() that failed: may end short */
} span_t;

typedef struct {
    int on;
    /* the request routed last, until it is reported */
    int open;
    int method_id, http_minor, head;
    char *target;
    size_t target_len;
    uint32_t route;
    uint64_t started;
    /* the clock (ns): the last value, and whether the connection read it */
    uint64_t clock;
    size_t clock_calls;
    int conn_read_clock;
    uint64_t last_started;
    /* every report */
    span_t *spans;
    size_t nspans, spans_cap;
    uint64_t reported_end; /* end of the last report's answer */
    uint64_t reports;
    /* cz_metrics, and a model of its figures */
    cz_metrics_t m;
    int m_ok;
    cz_metrics_route_t model[NROUTES + 1];
    /* cz_accesslog: both formats, into one batch */
    cz_accesslog_t common, json;
    cz_http_buf_t log;
    time_t when;
    size_t lines;
} acct_t;

static acct_t A;

/* A routed request not reported yet (with accounting on). */
static int acct_unreported(void) {
    return A.on && A.open;
}

/* Reports so far; acct_cut(n): the report made since n (if any) ends a
 * stream whose end failed, its answer may be short. */
static size_t acct_spans(void) {
    return A.nspans;
}

static void acct_cut(size_t n) {
    if (A.nspans > n) A.spans[n].cut = 1;
}

static uint64_t hstr(uint64_t h, cz_http_str_t s) {
    h = fnv_u64(h, s.len);
    return fnv(h, s.base, s.len);
}

static uint64_t request_digest(const cz_http_request_t *r) {
    uint64_t h = FNV_INIT;
    size_t i;

    h = fnv_u64(h, (uint64_t)r->method_id);
    h = hstr(h, r->target);
    h = fnv_u64(h, (uint64_t)(r->http_major * 10 + r->http_minor));
    for (i = 0; i < r->num_headers; i++) {
        h = hstr(h, r->headers[i].name);
        h = hstr(h, r->headers[i].value);
    }
    h = hstr(h, r->body);
    h = fnv_u64(h, r->content_length);
    h = fnv_u64(h, (uint64_t)r->has_body << 4 | (uint64_t)r->chunked << 3 | (uint64_t)r->keep_alive << 2 |
                       (uint64_t)r->expect_continue << 1 | r->upgrade);
    return h;
}

static int is_digits(const char *s, size_t n) {
    size_t i;

    if (n == 0) return 0;
    for (i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    return 1;
}

/* Is `tok` one of the comma-separated options of a Connection value? */
static int has_option(cz_http_str_t v, const char *tok) {
    size_t i = 0;

    while (i < v.len) {
        size_t s, e;
        while (i < v.len && (v.base[i] == ' ' || v.base[i] == '\t' || v.base[i] == ',')) i++;
        s = i;
        while (i < v.len && v.base[i] != ',') i++;
        e = i;
        while (e > s && (v.base[e - 1] == ' ' || v.base[e - 1] == '\t')) e--;
        if (e > s && ieq_lit(v.base + s, e - s, tok)) return 1;
    }
    return 0;
}

/* The contract of cz_http_request_t (cz_http.h), checked field by field;
 * `passed`: its body is handed out in pieces, none of it is here. */
static void check_request(const cz_http_request_t *r, int passed) {
    const cz_http_limits_t *l = &C.limits;
    size_t i, hosts = 0, tes = 0, cls = 0, raw = 0;
    int close_opt = 0, ka_opt = 0, expect = 0;

    FUZZ_CHECK(r->method.base && r->method.len > 0);
    FUZZ_CHECK(strlen(llhttp_method_name((llhttp_method_t)r->method_id)) == r->method.len);
    FUZZ_CHECK(memcmp(llhttp_method_name((llhttp_method_t)r->method_id), r->method.base, r->method.len) == 0);
    FUZZ_CHECK(r->method_id != HTTP_CONNECT && r->method_id != HTTP_PRI);
    FUZZ_CHECK(r->target.base && r->path.base && r->query.base && r->body.base);
    FUZZ_CHECK(r->target.len <= l->max_url);
    if (r->target.len == 1 && r->target.base[0] == '*') {
        FUZZ_CHECK(r->method_id == HTTP_OPTIONS);
    } else {
        FUZZ_CHECK(r->target.len > 0 && r->target.base[0] == '/');
        FUZZ_CHECK(memchr(r->target.base, '#', r->target.len) == NULL);
    }
    for (i = 0; i < r->target.len; i++) {
        unsigned char c = (unsigned char)r->target.base[i];
        FUZZ_CHECK(c > 0x20 && c < 0x7f);
    }
    /* path = target up to the first '?', query after it */
    FUZZ_CHECK(r->path.base == r->target.base);
    FUZZ_CHECK(memchr(r->path.base, '?', r->path.len) == NULL);
    if (r->path.len < r->target.len) {
        FUZZ_CHECK(r->target.base[r->path.len] == '?');
        FUZZ_CHECK(r->query.base == r->target.base + r->path.len + 1);
        FUZZ_CHECK(r->query.len == r->target.len - r->path.len - 1);
    } else {
        FUZZ_CHECK(r->query.len == 0);
    }
    FUZZ_CHECK(r->http_major == 1 && (r->http_minor == 0 || r->http_minor == 1));
    FUZZ_CHECK(r->num_headers <= l->max_headers);
    FUZZ_CHECK(r->num_headers == 0 || r->headers != NULL);
    for (i = 0; i < r->num_headers; i++) {
        cz_http_str_t n = r->headers[i].name, v = r->headers[i].value;
        size_t k;

        FUZZ_CHECK(valid_token(n));
        FUZZ_CHECK(v.base != NULL);
        if (v.len) {
            FUZZ_CHECK(v.base[0] != ' ' && v.base[0] != '\t');
            FUZZ_CHECK(v.base[v.len - 1] != ' ' && v.base[v.len - 1] != '\t');
        }
        for (k = 0; k < v.len; k++) {
            unsigned char c = (unsigned char)v.base[k];
            FUZZ_CHECK(c >= 0x20 || c == '\t');
            FUZZ_CHECK(c != 0x7f);
        }
        raw += n.len + v.len;
        if (ieq_lit(n.base, n.len, "host")) {
            hosts++;
        } else if (ieq_lit(n.base, n.len, "transfer-encoding")) {
            tes++;
            FUZZ_CHECK(ieq_lit(v.base, v.len, "chunked"));
        } else if (ieq_lit(n.base, n.len, "content-length")) {
            cls++;
            FUZZ_CHECK(is_digits(v.base, v.len));
        } else if (ieq_lit(n.base, n.len, "connection")) {
            close_opt |= has_option(v, "close");
            ka_opt |= has_option(v, "keep-alive");
        } else if (ieq_lit(n.base, n.len, "expect")) {
            expect |= ieq_lit(v.base, v.len, "100-continue");
        }
    }
    FUZZ_CHECK(raw <= l->max_header_bytes);
    FUZZ_CHECK(hosts <= 1);
    if (r->http_minor == 1) FUZZ_CHECK(hosts == 1);
    /* framing: exactly one of none, Content-Length, chunked */
    FUZZ_CHECK(cls <= 1);
    FUZZ_CHECK(!(cls && tes));
    FUZZ_CHECK(r->chunked == (tes == 1));
    FUZZ_CHECK(tes <= 1);
    if (r->chunked) FUZZ_CHECK(r->http_minor == 1 && r->content_length == 0);
    FUZZ_CHECK(r->content_length <= l->max_body);
    if (cls == 0) FUZZ_CHECK(r->content_length == 0);
    FUZZ_CHECK(r->has_body == (r->chunked || r->content_length > 0));
    /* "close" wins; HTTP/1.0 needs "keep-alive" */
    if (close_opt) FUZZ_CHECK(r->keep_alive == 0);
    if (r->http_minor == 0 && !ka_opt) FUZZ_CHECK(r->keep_alive == 0);
    FUZZ_CHECK(r->expect_continue == (expect && r->http_minor == 1 && r->has_body));
    FUZZ_CHECK(r->body.len <= l->max_body);
    if (passed) FUZZ_CHECK(r->has_body && r->body.len == 0);
    else if (!r->chunked) FUZZ_CHECK(r->body.len == r->content_length);
}

static void check_match(const cz_http_request_t *req, const cz_match_t *m) {
    uint32_t i;

    if (m->status == CZ_MATCH_FOUND) {
        const route_t *rt = m->handler;
        FUZZ_CHECK(rt >= g_routes && rt < g_routes + NROUTES);
        FUZZ_CHECK(m->route_index == (uint32_t)(rt - g_routes));
        FUZZ_CHECK(m->nparams <= CZ_ROUTER_MAX_PARAMS);
        FUZZ_CHECK(strcmp(rt->method, req->method.base) == 0 ||
                   (req->method_id == HTTP_HEAD && strcmp(rt->method, "GET") == 0));
        for (i = 0; i < m->nparams; i++) {
            const cz_param_t *p = &m->params[i];
            FUZZ_CHECK(p->len > 0 && p->offset + p->len <= req->path.len);
            FUZZ_CHECK(p->name && strlen(p->name) == p->name_len);
            FUZZ_CHECK(strstr(rt->pattern, p->name) != NULL);
        }
        FUZZ_CHECK(m->allowed == 0 && m->slash == CZ_SLASH_NONE);
    } else if (m->status == CZ_MATCH_METHOD_NOT_ALLOWED) {
        FUZZ_CHECK(m->allowed != 0 && m->slash == CZ_SLASH_NONE);
    } else {
        FUZZ_CHECK(m->status == CZ_MATCH_NOT_FOUND && m->allowed == 0);
        if (m->slash == CZ_SLASH_REMOVE) FUZZ_CHECK(req->path.len > 1 && req->path.base[req->path.len - 1] == '/');
        if (m->slash == CZ_SLASH_ADD) FUZZ_CHECK(req->path.len > 0 && req->path.base[req->path.len - 1] != '/');
    }
}

/* Whether an answer to `req` keeps the connection: not after the client's
 * EOF, nor before the end of a body being streamed (its rest is not read);
 * when the server stops, only while input read after it waits: bytes given
 * to the connection that its parser has not consumed yet. */
static int keeps_alive(const cz_http_request_t *req) {
    int more_read = H.fed > H.conn.parser.base;
    int body_left = H.sb.active && !H.sb.ended;
    return req->keep_alive && !H.eof && !body_left && (!(C.opts & OPT_STOPPING) || more_read);
}

/* Written independently of cz_conn.c: what an answer to `req` must say about
 * the connection (keep-alive, HTTP version, HEAD). */
static cz_http_response_t as_sent(const cz_http_request_t *req, const cz_http_response_t *r) {
    cz_http_response_t resp = *r;

    resp.http_minor = req->http_minor;
    resp.keep_alive = keeps_alive(req);
    resp.head = req->method_id == HTTP_HEAD;
    return resp;
}

/* A request went unanswered: the connection must close after what is
 * queued, or the next response would pass for this one's. */
static void unanswered(void) {
    if (H.unanswered_at == SIZE_MAX) H.unanswered_at = H.v.expected;
}

/* A failed write: out of memory only under injected faults, too big only
 * with a bounded output buffer. */
static void failed_write(int rc) {
    FUZZ_CHECK((rc == CZ_HTTP_ENOMEM && g_faults > 0) || (rc == CZ_HTTP_E2BIG && C.out_max > 0));
    if (rc == CZ_HTTP_E2BIG) H.bounded = 1;
    unanswered();
}

/* Exactly one canned error was written since `nerr`: `status`, framed as
 * the answer to a request with these minor/keep-alive/head. */
static expect_t *saw_error(size_t nerr, int status, int minor, int keep, int head) {
    FUZZ_CHECK(H.nerr == nerr + 1);
    FUZZ_CHECK(H.err_status == status && H.err_minor == minor && H.err_keep == keep && H.err_head == head);
    return H.err;
}

/* The outcome of a call that answers: `wrote` tells whether bytes were queued. */
static void check_answer(const cz_http_response_t *resp, const expect_t *e, int rc, int invalid, int wrote,
                         size_t nerr) {
    FUZZ_CHECK((rc == CZ_HTTP_EINVAL) == invalid);
    if (wrote) FUZZ_CHECK(!acct_unreported()); /* reported once its answer is queued */
    if (rc == CZ_HTTP_OK) {
        FUZZ_CHECK(wrote);
        ver_expect(&H.v, e);
    } else if (rc == CZ_HTTP_EINVAL) {
        /* replaced by a 500 when that could be written */
        if (wrote) saw_error(nerr, 500, resp->http_minor, resp->keep_alive, resp->head);
        else unanswered();
    } else {
        FUZZ_CHECK(!wrote);
        failed_write(rc);
    }
}

static void stream_more(cz_conn_t *c);

/* cz_cond on the request's own Range and validators, against a reference
 * made here for what must hold whatever the fields say. */
static void check_conditions(const cz_http_request_t *req, uint64_t size) {
    cz_cond_file_t f = {size, 784111777, {"\"v1\"", 4}};
    cz_cond_answer_t a;
    const cz_http_str_t *range = cz_http_request_header(req, "range", 5);
    int64_t t;
    size_t i;

    memset(&a, 0xa5, sizeof(a));
    cz_cond_decide(req, &f, &a);
    FUZZ_CHECK(a.status == 200 || a.status == 206 || a.status == 304 || a.status == 412 || a.status == 416);
    if (a.status == 200) FUZZ_CHECK(a.offset == 0 && a.length == size);
    if (a.status == 206) {
        FUZZ_CHECK(range != NULL && req->method_id == HTTP_GET);
        FUZZ_CHECK(a.length > 0 && a.offset < size && a.length <= size - a.offset);
    }
    if (a.status == 416) FUZZ_CHECK(range != NULL && req->method_id == HTTP_GET);
    if (a.status == 304) FUZZ_CHECK(req->method_id == HTTP_GET || req->method_id == HTTP_HEAD);
    /* no condition fields, no range: the whole file */
    for (i = 0; i < req->num_headers; i++) {
        cz_http_str_t n = req->headers[i].name;
        if (n.len > 3 && ieq_lit(n.base, 3, "if-")) return;
        if (cz_cond_parse_date(req->headers[i].value, &t) == 0)
            FUZZ_CHECK(t >= -62135596800LL && t < 253402300800LL); /* years 1..9999 */
    }
    if (!range) FUZZ_CHECK(a.status == 200);
}

/* The embedder's handler: a response built from the request's own bytes,
 * sent the way the route's mode says. */
static void handler(cz_conn_t *c, const cz_http_request_t *req, const cz_match_t *m) {
    enum { MAXH = 24 };
    const route_t *rt = m->status == CZ_MATCH_FOUND ? m->handler : NULL;
    static cz_http_header_t h[MAXH];
    static char names[CZ_ROUTER_MAX_PARAMS][48];
    cz_http_response_t r, resp;
    expect_t e;
    const cz_http_str_t *ct;
    size_t nh = 0, i;
    int mode = rt ? rt->mode : MODE_ECHO, rc, invalid;
    uint64_t before = cz_conn_out_pending(c);
    size_t nerr = H.nerr;

    memset(&r, 0, sizeof(r));
    r.status = rt ? rt->status : 404;
    if (mode == MODE_STATUS) {
        /* /status/{code}: any three digits, 1xx..9xx */
        const cz_param_t *p = &m->params[0];
        const char *s = req->path.base + p->offset;
        if (p->len != 3 || !is_digits(s, 3) || s[0] == '0') {
            resp = as_sent(req, &r);
            rc = cz_conn_respond_error(c, 422, NULL);
            if (rc == CZ_HTTP_OK) saw_error(nerr, 422, req->http_minor, resp.keep_alive, resp.head);
            else failed_write(rc);
            return;
        }
        r.status = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
    }
    if (mode != MODE_EMPTY) {
        /* request fields echoed: names and values from the client */
        for (i = 0; i < req->num_headers && nh < 8; i++) h[nh++] = req->headers[i];
        for (i = 0; rt && i < m->nparams && nh < MAXH - 3; i++) {
            const cz_param_t *p = &m->params[i];
            int k = snprintf(names[i], sizeof(names[i]), "X-Param-%s", p->name);
            h[nh].name.base = names[i];
            h[nh].name.len = (size_t)k;
            h[nh].value.base = req->path.base + p->offset;
            h[nh].value.len = p->len;
            nh++;
        }
        if (req->query.len) {
            h[nh].name.base = "X-Query";
            h[nh].name.len = 7;
            h[nh].value = req->query;
            nh++;
        }
        /* a body starting with '!' is a header value: CR, LF, NUL, ... */
        if (req->body.len > 0 && req->body.base[0] == '!') {
            h[nh].name.base = "X-Body";
            h[nh].name.len = 6;
            h[nh].value.base = req->body.base + 1;
            h[nh].value.len = req->body.len - 1 > 64 ? 64 : req->body.len - 1;
            nh++;
        }
        /* "?r=<reason>": a reason phrase from the client */
        if (req->query.len >= 2 && memcmp(req->query.base, "r=", 2) == 0) {
            r.reason.base = req->query.base + 2;
            r.reason.len = req->query.len - 2;
        }
        ct = cz_http_request_header(req, "content-type", 12);
        if (ct) r.content_type = *ct;
        r.body = req->body;
    } else {
        r.body.base = "";
        r.body.len = 0;
    }
    r.headers = h;
    r.num_headers = nh;

    if (mode == MODE_STATIC) {
        cz_http_str_t rest = {"", 0};
        expect_t any;
        if (m->nparams) rest = (cz_http_str_t){req->path.base + m->params[0].offset, m->params[0].len};
        resp = as_sent(req, &r);
        cz_static_serve(g_static_dir, c, req, rest);
        FUZZ_CHECK(cz_conn_state(c) != CZ_CONN_BUSY);
        if (cz_conn_out_pending(c) > before || H.nerr > nerr) {
            if (H.nerr > nerr) /* a canned error: the wrapper expects it already */
                return;
            memset(&any, 0, sizeof(any));
            any.any = 1;
            any.head = resp.head;
            any.keep_alive = resp.keep_alive;
            ver_expect(&H.v, &any);
        } else {
            unanswered();
        }
        return;
    }
    if (mode == MODE_FILE) {
        /* a file of a size taken from the path, sent from offset 3 */
        size_t size = (req->path.len * 131u) % 3000u + 3u, k;
        char *bytes = xmalloc(size);
        int fd = memfd_create("fuzz", MFD_CLOEXEC);
        FUZZ_CHECK(fd >= 0 && H.nfiles < MAX_FILES);
        for (k = 0; k < size; k++) bytes[k] = (char)('a' + k % 26);
        FUZZ_CHECK(write(fd, bytes, size) == (ssize_t)size);
        free(bytes);
        H.files[H.nfiles++] = fd;
        check_conditions(req, size - 3);
        resp = as_sent(req, &r);
        resp.body.base = NULL;
        resp.body.len = size - 3;
        invalid = response_invalid(&resp, 0);
        e = response_expect(&resp);
        rc = cz_conn_respond_file(c, &r, fd, 3, size - 3);
        check_answer(&resp, &e, rc, invalid, cz_conn_out_pending(c) > before, nerr);
    } else if (mode == MODE_STREAM || mode == MODE_CHUNKED) {
        int64_t length = mode == MODE_STREAM ? (int64_t)req->body.len : -1;
        int bodyless = r.status < 200 || r.status == 204 || r.status == 304;
        resp = as_sent(req, &r);
        resp.framing = length >= 0            ? CZ_HTTP_FRAME_LENGTH
                       : req->http_minor == 0 ? CZ_HTTP_FRAME_CLOSE
                                              : CZ_HTTP_FRAME_CHUNKED;
        invalid = response_invalid(&resp, 0);
        e = response_expect(&resp);
        rc = cz_conn_stream_begin(c, &r, length);
        if (rc < 0) {
            check_answer(&resp, &e, rc, invalid, cz_conn_out_pending(c) > before, nerr);
            return;
        }
        FUZZ_CHECK(!invalid);
        FUZZ_CHECK(rc == (!resp.head && !bodyless && length != 0 ? 1 : 0));
        ver_expect(&H.v, &e);
        if (rc == 1) {
            H.streaming = 1;
            H.body = req->body;
            /* pieces of 1..16 bytes, from the body's length */
            H.piece = req->body.len % 16 + 1;
            stream_more(c);
        }
    } else {
        resp = as_sent(req, &r);
        invalid = response_invalid(&resp, 1);
        e = response_expect(&resp);
        rc = cz_conn_respond(c, &r);
        check_answer(&resp, &e, rc, invalid, cz_conn_out_pending(c) > before, nerr);
    }
}

/* Go on with the body being streamed while the connection takes it. */
static void stream_more(cz_conn_t *c) {
    while (H.streaming) {
        int rc;
        if (H.body.len == 0) {
            size_t spans = acct_spans();
            H.streaming = 0;
            rc = cz_conn_stream_end(c);
            if (rc != CZ_HTTP_OK) {
                failed_write(rc);
                H.cut = 1;
                acct_cut(spans);
            }
            FUZZ_CHECK(cz_conn_state(c) != CZ_CONN_STREAM);
            return;
        }
        if (!cz_conn_writable(c)) return; /* env->drained calls back */
        size_t n = H.body.len < H.piece ? H.body.len : H.piece;
        rc = cz_conn_stream_write(c, H.body.base, n);
        if (rc != CZ_HTTP_OK) {
            /* the body cannot be whole: the connection closes after what is queued */
            failed_write(rc);
            H.streaming = 0;
            H.cut = 1;
            cz_conn_close(c);
            FUZZ_CHECK(cz_conn_state(c) == CZ_CONN_CLOSING);
            return;
        }
        H.body.base += n;
        H.body.len -= n;
    }
}

/* ---- the application reading a body as it arrives (routes with `streams`) ------------ */

/*
 * The next decision about the streamed body, from the letters of the
 * route's {how}, in turn:
 *   n  now: the piece is taken inside env->body; at the body's end the
 *      answer is given inside it
 *   l  later: at the transport's next turn (settle())
 *   r  at the end of the body: answer once the transport has read again,
 *      or when it reads no more; at a piece, as `l` (nothing is read while
 *      a piece waits)
 *   x  answer now, even before the body's end (at the dispatch: inside
 *      env->dispatch, before any of the body)
 *   y  answer at the next turn, even before the body's end (a waiting
 *      piece stays untaken)
 * Any other letter is `n`, or `l` with the deferred-answers option.
 */
static char stream_step(void) {
    char ch = H.sb.how_len ? H.sb.how[H.sb.step % H.sb.how_len] : 'n';

    H.sb.step++;
    if (ch != 'n' && ch != 'l' && ch != 'r' && ch != 'x' && ch != 'y') ch = (C.opts & OPT_DEFER) ? 'l' : 'n';
    return ch;
}

/* A streamed request was dispatched at its head (called from the
 * cz_answer_route wrapper, `m` its route). */
static void stream_begin(const cz_http_request_t *req, const cz_match_t *m) {
    const route_t *rt = m->handler;
    const cz_param_t *how = &m->params[0];

    FUZZ_CHECK(m->status == CZ_MATCH_FOUND && rt->streams && m->nparams == 1);
    H.sb.active = 1;
    H.sb.ended = H.sb.waiting = 0;
    H.sb.later = LATER_NONE;
    H.sb.how_len = how->len < MAX_HOW ? how->len : MAX_HOW;
    memcpy(H.sb.how, req->path.base + how->offset, H.sb.how_len);
    H.sb.step = 0;
    H.sb.match = *m;
    H.sb.limit = rt->max_body && rt->max_body < C.limits.max_body ? rt->max_body : C.limits.max_body;
    H.sb.nerr = H.nerr;
    H.sb.len = H.sb.pieces = 0;
}

/* The application takes the waiting piece: the connection reads on. */
static void stream_take(cz_conn_t *c) {
    FUZZ_CHECK(H.sb.waiting && cz_conn_body_streaming(c));
    FUZZ_CHECK(cz_conn_body_next(c) == CZ_HTTP_OK);
    FUZZ_CHECK(cz_conn_body_next(c) == CZ_CONN_ESTATE); /* once per piece */
    H.sb.waiting = 0;
}

/* The application answers, with the body received so far (the whole body
 * once it ended): the route's handler on the request with that body. */
static void stream_answer(cz_conn_t *c) {
    const cz_http_request_t *req = cz_conn_request(c);
    cz_http_request_t r;
    int ended = H.sb.ended;

    FUZZ_CHECK(req != NULL && cz_conn_state(c) == CZ_CONN_BUSY);
    FUZZ_CHECK(cz_conn_body_streaming(c) == !ended);
    r = *req;
    r.body.base = H.sb.got ? H.sb.got : "";
    r.body.len = H.sb.len;
    handler(c, &r, &H.sb.match); /* its oracle knows the body is not over (keeps_alive()) */
    H.sb.active = 0;
    H.sb.later = LATER_NONE;
    H.sb.waiting = 0;
    if (!ended) {
        /* the rest of the body is not read: the connection closes after the answer */
        H.sb_early = 1;
        FUZZ_CHECK(!cz_conn_body_streaming(c) && cz_conn_body_next(c) == CZ_CONN_ESTATE);
        FUZZ_CHECK(cz_conn_state(c) == CZ_CONN_CLOSING || cz_conn_state(c) == CZ_CONN_CLOSED ||
                   cz_conn_state(c) == CZ_CONN_STREAM);
        FUZZ_CHECK(!cz_conn_wants_input(c) || cz_conn_state(c) == CZ_CONN_STREAM);
    }
}

/* The connection dropped the streamed request without the application
 * answering it (the client left, or out of memory): it stops. */
static void stream_gone(cz_conn_t *c) {
    if (!H.sb.active || cz_conn_state(c) == CZ_CONN_BUSY) return;
    FUZZ_CHECK(cz_conn_state(c) == CZ_CONN_CLOSED);
    H.sb.active = 0;
    H.sb.later = LATER_NONE;
}

static cz_conn_dispatch_t stream_dispatch(cz_conn_t *c) {
    FUZZ_CHECK(cz_conn_body_streaming(c) && !H.sb.waiting);
    FUZZ_CHECK(cz_conn_body_next(c) == CZ_CONN_ESTATE); /* no piece waits yet */
    switch (stream_step()) {
    case 'x': stream_answer(c); return CZ_CONN_DONE;
    case 'y': H.sb.later = LATER_ANSWER; break;
    default: break;
    }
    return CZ_CONN_PENDING; /* answered once its body is read */
}

/* env->body: a piece of the streamed body, its end, or why it cannot end. */
static void env_body(void *ctx, cz_conn_t *c, const char *data, size_t len, int status) {
    const cz_http_request_t *req;
    cz_http_request_t whole;

    (void)ctx;
    FUZZ_CHECK(c == &H.conn);
    /* only for the request dispatched before its body, one piece at a time */
    FUZZ_CHECK(H.sb.active && !H.sb.ended && !H.sb.waiting);
    if (status) {
        cz_http_response_t late = {.status = 200};
        int parser = cz_http_parser_status(&c->parser);

        FUZZ_CHECK(data == NULL && len == 0);
        /* why: the parser's error (400 malformed, 413 over its bound, 431
         * trailer fields), the route's bound passed (413), or the body
         * deadline (408) */
        if (parser) FUZZ_CHECK(status == parser && (parser == 400 || parser == 413 || parser == 431));
        else if (status == 413) FUZZ_CHECK(cz_http_parser_body_len(&c->parser) > H.sb.limit);
        else FUZZ_CHECK(status == 408 && H.in_timeout);
        /* the request has been answered with it, and the connection closes */
        FUZZ_CHECK(cz_conn_state(c) == CZ_CONN_CLOSING || cz_conn_state(c) == CZ_CONN_CLOSED);
        FUZZ_CHECK(!cz_conn_body_streaming(c) && cz_conn_body_next(c) == CZ_CONN_ESTATE);
        FUZZ_CHECK(!cz_conn_wants_input(c));
        FUZZ_CHECK(cz_conn_respond(c, &late) == CZ_CONN_ESTATE); /* the handler's late answer */
        if (H.nerr > H.sb.nerr) {
            FUZZ_CHECK(H.nerr == H.sb.nerr + 1 && H.err_status == status && !H.err_keep);
        } else {
            FUZZ_CHECK(g_faults > 0 || C.out_max > 0); /* it could not be written */
            unanswered();
        }
        H.sb.active = 0;
        H.sb.later = LATER_NONE;
        H.sb_failed++;
        return;
    }
    req = cz_conn_request(c);
    FUZZ_CHECK(cz_conn_state(c) == CZ_CONN_BUSY && req != NULL);
    if (data) {
        /* a piece: never empty, in order, within the bounds */
        FUZZ_CHECK(len > 0 && cz_conn_body_streaming(c));
        FUZZ_CHECK(req->body.base == data && req->body.len == len);
        if (H.sb.len + len > H.sb.cap) {
            H.sb.cap = (H.sb.len + len) * 2;
            H.sb.got = realloc(H.sb.got, H.sb.cap);
            FUZZ_CHECK(H.sb.got != NULL);
        }
        memcpy(H.sb.got + H.sb.len, data, len);
        H.sb.len += len;
        H.sb.pieces++;
        H.sb_pieces++;
        FUZZ_CHECK(H.sb.len <= H.sb.limit);
        FUZZ_CHECK(req->chunked || H.sb.len <= req->content_length);
        FUZZ_CHECK(cz_http_parser_body_len(&c->parser) == H.sb.len);
        H.sb.waiting = 1;
        /* nothing more is read until it is taken, and no deadline runs */
        FUZZ_CHECK(!cz_conn_wants_input(c) && cz_conn_deadline(c) == 0);
        switch (stream_step()) {
        case 'x': stream_answer(c); break;
        case 'y': H.sb.later = LATER_ANSWER; break;
        case 'l':
        case 'r': H.sb.later = LATER_TAKE; break;
        default: stream_take(c); break;
        }
        return;
    }
    /* the end: the pieces are the whole body; the request counts as read
     * now (its digest, with that body, is compared with the one-piece parse) */
    FUZZ_CHECK(len == 0 && !cz_conn_body_streaming(c) && cz_conn_body_next(c) == CZ_CONN_ESTATE);
    FUZZ_CHECK(req->body.len == 0); /* a passed body is not stored */
    FUZZ_CHECK(req->chunked || H.sb.len == req->content_length);
    FUZZ_CHECK(cz_http_parser_body_len(&c->parser) == H.sb.len);
    H.sb.ended = 1;
    H.sb_bodies++;
    whole = *req;
    whole.body.base = H.sb.got ? H.sb.got : "";
    whole.body.len = H.sb.len;
    check_request(&whole, 0);
    H.last_keep_alive = whole.keep_alive;
    if (H.nreq < MAX_DIGESTS) H.digest[H.nreq] = request_digest(&whole);
    H.nreq++;
    switch (stream_step()) {
    case 'l':
    case 'y': H.sb.later = LATER_ANSWER; break;
    case 'r':
        H.sb.later = LATER_ANSWER_AFTER_READ;
        H.sb.later_reads = H.reads;
        break;
    default: stream_answer(c); break;
    }
}

/* ---- cz_conn's environment ----------------------------------------------------------- */

static uint64_t env_now(void *ctx, int fresh) {
    (void)ctx;
    (void)fresh;
    return H.now;
}

static cz_conn_dispatch_t env_dispatch(void *ctx, cz_conn_t *c, const cz_http_request_t *req, const cz_match_t *m) {
    (void)ctx;
    FUZZ_CHECK(cz_conn_state(c) == CZ_CONN_BUSY && cz_conn_request(c) == req);
    FUZZ_CHECK(++H.dispatched == H.routed_app); /* each routed request once */
    if (H.sb.active) return stream_dispatch(c);
    FUZZ_CHECK(!cz_conn_body_streaming(c));
    if (C.opts & OPT_DEFER) {
        H.match = *m; /* answered later, by settle() */
        H.deferred = 1;
        return CZ_CONN_PENDING;
    }
    handler(c, req, m);
    return CZ_CONN_DONE;
}

static void env_drained(void *ctx, cz_conn_t *c) {
    (void)ctx;
    FUZZ_CHECK(H.streaming && cz_conn_state(c) == CZ_CONN_STREAM);
    stream_more(c);
}

/* ---- accounting: env->answered, cz_metrics, cz_accesslog (bit 6 of byte 4) ------------ */

/* env->clock_ns: steps of 1 ns .. 34 s, never behind the transport's clock. */
static uint64_t env_clock_ns(void *ctx) {
    uint64_t floor = H.now * 1000000u, next;

    (void)ctx;
    FUZZ_CHECK(A.on); /* without env->answered no clock is read */
    next = A.clock + ((uint64_t)1 << (A.clock_calls * 7u % 36u));
    A.clock_calls++;
    A.clock = next > floor ? next : floor;
    A.conn_read_clock = 1;
    return A.clock;
}

/* A request was routed (the cz_answer_route wrapper): it is reported once
 * its whole answer is queued, unless it is dropped with the connection.
 * `app`: the application answers it. */
static void acct_routed(const cz_http_request_t *req, const cz_match_t *m, int app) {
    if (!A.on) return;
    FUZZ_CHECK(!A.open);           /* the one before was reported, or the connection dropped it */
    FUZZ_CHECK(A.conn_read_clock); /* its dispatch time was read just now */
    A.conn_read_clock = 0;
    A.open = 1;
    A.method_id = req->method_id;
    A.http_minor = req->http_minor;
    A.head = req->method_id == HTTP_HEAD;
    free(A.target);
    A.target = xmemdup(req->target.len ? req->target.base : "", req->target.len ? req->target.len : 1);
    A.target_len = req->target.len;
    A.route = app && m->status == CZ_MATCH_FOUND ? m->route_index : CZ_CONN_NO_ROUTE;
    A.started = A.clock;
}

/* -- cz_metrics against a model -- */

static unsigned ref_method(int id) {
    switch (id) {
    case HTTP_GET: return CZ_METRICS_GET;
    case HTTP_HEAD: return CZ_METRICS_HEAD;
    case HTTP_POST: return CZ_METRICS_POST;
    case HTTP_PUT: return CZ_METRICS_PUT;
    case HTTP_DELETE: return CZ_METRICS_DELETE;
    case HTTP_PATCH: return CZ_METRICS_PATCH;
    case HTTP_OPTIONS: return CZ_METRICS_OPTIONS;
    default: return CZ_METRICS_OTHER;
    }
}

/* The Prometheus bucket of a latency: the first bound not below it, else +Inf. */
static unsigned ref_bucket(uint64_t ns) {
    static const uint64_t ms_x10[CZ_METRICS_BUCKETS] = {5,    10,   25,   50,    100,   250,   500,
                                                        1000, 2500, 5000, 10000, 25000, 50000, 100000};
    unsigned b;

    for (b = 0; b < CZ_METRICS_BUCKETS; b++)
        if (ns <= ms_x10[b] * 100000u) return b;
    return CZ_METRICS_BUCKETS;
}

/* A slot's figures add up: every count is one observation in one bucket. */
static void metrics_add_up(const cz_metrics_route_t *r) {
    uint64_t counts = 0, buckets = 0;
    unsigned i, k;

    for (i = 0; i < CZ_METRICS_METHODS; i++)
        for (k = 0; k < CZ_METRICS_CLASSES; k++) counts += r->count[i][k];
    for (i = 0; i <= CZ_METRICS_BUCKETS; i++) buckets += r->bucket[i];
    FUZZ_CHECK(counts == r->observed && buckets == r->observed);
}

static void metrics_compare(void) {
    uint64_t total = 0;
    size_t i;

    FUZZ_CHECK(A.m.answered == A.reports);
    for (i = 0; i <= NROUTES; i++) {
        const cz_metrics_route_t *got = cz_metrics_route(&A.m, (uint32_t)i);
        FUZZ_CHECK(got != NULL && memcmp(got, &A.model[i], sizeof(*got)) == 0);
        metrics_add_up(got);
        total += got->observed;
    }
    FUZZ_CHECK(total == A.reports);
}

static void acct_metrics(const cz_conn_answered_t *a, uint64_t ns) {
    size_t slot = a->route_index < NROUTES ? a->route_index : NROUTES;
    cz_metrics_route_t *w = &A.model[slot];
    const cz_metrics_route_t *got;
    int st = a->status;

    FUZZ_CHECK(a->route_index < NROUTES || a->route_index == CZ_CONN_NO_ROUTE);
    cz_metrics_observe(&A.m, a->route_index, a->req->method_id, a->status, ns);
    w->count[ref_method(a->req->method_id)][st >= 100 && st < 600 ? st / 100 - 1 : CZ_METRICS_CLASSES - 1]++;
    w->bucket[ref_bucket(ns)]++;
    w->sum_ns += ns;
    w->observed++;
    got = cz_metrics_route(&A.m, a->route_index);
    FUZZ_CHECK(got == cz_metrics_route(&A.m, (uint32_t)slot));
    FUZZ_CHECK(memcmp(got, w, sizeof(*w)) == 0);
    metrics_add_up(got);
    FUZZ_CHECK(A.m.answered == A.reports);
}

/* -- cz_accesslog: one line, printable ASCII; COMMON byte for byte, JSON parsed back -- */

typedef struct {
    char *p;
    size_t n, cap;
} sbuf_t;

static void sb_put(sbuf_t *b, const char *s, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        FUZZ_CHECK(b->p != NULL);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void sb_str(sbuf_t *b, const char *s) {
    sb_put(b, s, strlen(s));
}

/* COMMON: printable ASCII but '"' and '\' as is, every other byte \xHH */
static void sb_common(sbuf_t *b, const char *s, size_t n) {
    size_t i;
    char x[8];

    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\') {
            sb_put(b, (const char *)&ch, 1);
        } else {
            snprintf(x, sizeof(x), "\\x%02x", ch);
            sb_put(b, x, 4);
        }
    }
}

/* The client as a line shows it: "-" for none, at most CLIENT_MAX bytes. */
static cz_http_str_t log_client(const cz_accesslog_entry_t *e) {
    size_t n = e->client ? strlen(e->client) : 0;

    if (n == 0) return (cz_http_str_t){"-", 1};
    return (cz_http_str_t){e->client, n > CLIENT_MAX ? CLIENT_MAX : n};
}

static int log_status(int status) {
    return status > 0 && status < 1000 ? status : 0;
}

static void common_expect(sbuf_t *b, const cz_accesslog_entry_t *e) {
    cz_http_str_t client = log_client(e);
    const cz_http_request_t *r = e->req;
    struct tm tm;
    char s[64];

    sb_common(b, client.base, client.len);
    FUZZ_CHECK(gmtime_r(&e->when, &tm) != NULL);
    FUZZ_CHECK(strftime(s, sizeof(s), " - - [%d/%b/%Y:%H:%M:%S +0000] \"", &tm) > 0);
    sb_str(b, s);
    sb_common(b, r->method.base, r->method.len);
    sb_str(b, " ");
    sb_common(b, r->target.base, r->target.len);
    snprintf(s, sizeof(s), " HTTP/1.%d\" %d ", r->http_minor, log_status(e->status));
    sb_str(b, s);
    if (e->bytes) snprintf(s, sizeof(s), "%llu\n", (unsigned long long)e->bytes);
    else snprintf(s, sizeof(s), "-\n");
    sb_str(b, s);
}

/* A small JSON reader: one object of string and number members, strictly
 * by RFC 8259 (no control character unescaped, valid escapes, UTF-8, no
 * lone surrogate); strings are decoded to code points. */
#define JSON_MEMBERS 16

typedef struct {
    const char *key;
    size_t key_len;
    int is_str;
    uint32_t *cp; /* string: code points */
    size_t ncp;
    const char *num; /* number: its text */
    size_t num_len;
} jmember_t;

typedef struct {
    const char *p, *end;
    uint32_t *pool; /* room for one code point per byte of the line */
    size_t pool_used;
} jreader_t;

static int j_hex4(jreader_t *j, uint32_t *v) {
    int i;

    if (j->end - j->p < 4) return 0;
    *v = 0;
    for (i = 0; i < 4; i++) {
        char ch = *j->p++;
        *v <<= 4;
        if (ch >= '0' && ch <= '9') *v |= (uint32_t)(ch - '0');
        else if (ch >= 'a' && ch <= 'f') *v |= (uint32_t)(ch - 'a' + 10);
        else if (ch >= 'A' && ch <= 'F') *v |= (uint32_t)(ch - 'A' + 10);
        else return 0;
    }
    return 1;
}

/* A UTF-8 sequence starting at j->p (its first byte >= 0x80). */
static int j_utf8(jreader_t *j, uint32_t *cp) {
    const unsigned char *s = (const unsigned char *)j->p;
    size_t left = (size_t)(j->end - j->p), n, i;
    uint32_t v, min;

    if (s[0] >= 0xc2 && s[0] <= 0xdf) n = 2, v = s[0] & 0x1fu, min = 0x80;
    else if (s[0] >= 0xe0 && s[0] <= 0xef) n = 3, v = s[0] & 0x0fu, min = 0x800;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4) n = 4, v = s[0] & 0x07u, min = 0x10000;
    else return 0;
    if (left < n) return 0;
    for (i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        v = v << 6 | (s[i] & 0x3fu);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
    j->p += n;
    *cp = v;
    return 1;
}

/* A string; j->p just past its opening quote. */
static int j_string(jreader_t *j, uint32_t **out, size_t *n) {
    uint32_t *cp = j->pool + j->pool_used;

    *n = 0;
    for (;;) {
        unsigned char ch;
        uint32_t v;

        if (j->p >= j->end) return 0;
        ch = (unsigned char)*j->p;
        if (ch == '"') {
            j->p++;
            break;
        }
        if (ch < 0x20) return 0; /* a control character must be escaped */
        if (ch >= 0x80) {
            if (!j_utf8(j, &v)) return 0;
        } else if (ch != '\\') {
            v = ch;
            j->p++;
        } else {
            if (++j->p >= j->end) return 0;
            switch (*j->p++) {
            case '"': v = '"'; break;
            case '\\': v = '\\'; break;
            case '/': v = '/'; break;
            case 'b': v = '\b'; break;
            case 'f': v = '\f'; break;
            case 'n': v = '\n'; break;
            case 'r': v = '\r'; break;
            case 't': v = '\t'; break;
            case 'u':
                if (!j_hex4(j, &v)) return 0;
                if (v >= 0xdc00 && v <= 0xdfff) return 0; /* a lone low surrogate */
                if (v >= 0xd800 && v <= 0xdbff) {
                    uint32_t lo;
                    if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u') return 0;
                    j->p += 2;
                    if (!j_hex4(j, &lo) || lo < 0xdc00 || lo > 0xdfff) return 0;
                    v = 0x10000 + ((v - 0xd800) << 10) + (lo - 0xdc00);
                }
                break;
            default: return 0;
            }
        }
        cp[(*n)++] = v;
    }
    *out = cp;
    j->pool_used += *n;
    return 1;
}

/* A number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int j_number(jreader_t *j) {
    const char *s = j->p;

    if (j->p < j->end && *j->p == '-') j->p++;
    if (j->p >= j->end) return 0;
    if (*j->p == '0') j->p++;
    else if (*j->p >= '1' && *j->p <= '9')
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
    else return 0;
    if (j->p < j->end && *j->p == '.') {
        const char *d = ++j->p;
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
        if (j->p == d) return 0;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        const char *d;
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-')) j->p++;
        d = j->p;
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
        if (j->p == d) return 0;
    }
    return j->p > s;
}

static void j_ws(jreader_t *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

/* The whole of [p, end) is one object; its members into `mem`. */
static int j_object(jreader_t *j, jmember_t *mem, size_t *nmem) {
    *nmem = 0;
    j_ws(j);
    if (j->p >= j->end || *j->p++ != '{') return 0;
    j_ws(j);
    if (j->p < j->end && *j->p == '}') {
        j->p++;
    } else {
        for (;;) {
            jmember_t *m;
            uint32_t *key;
            size_t klen, i;
            if (*nmem == JSON_MEMBERS) return 0;
            m = &mem[(*nmem)++];
            memset(m, 0, sizeof(*m));
            if (j->p >= j->end || *j->p++ != '"') return 0;
            m->key = j->p;
            if (!j_string(j, &key, &klen)) return 0;
            m->key_len = klen;
            for (i = 0; i < klen; i++)
                if (key[i] > 0x7f || (m->key[i] != (char)key[i])) return 0; /* plain ASCII keys here */
            j_ws(j);
            if (j->p >= j->end || *j->p++ != ':') return 0;
            j_ws(j);
            if (j->p < j->end && *j->p == '"') {
                j->p++;
                m->is_str = 1;
                if (!j_string(j, &m->cp, &m->ncp)) return 0;
            } else {
                m->num = j->p;
                if (!j_number(j)) return 0;
                m->num_len = (size_t)(j->p - m->num);
            }
            j_ws(j);
            if (j->p >= j->end) return 0;
            if (*j->p == ',') {
                j->p++;
                j_ws(j);
                continue;
            }
            if (*j->p++ != '}') return 0;
            break;
        }
    }
    j_ws(j);
    return j->p == j->end;
}

static const jmember_t *j_member(const jmember_t *mem, size_t n, const char *key) {
    const jmember_t *found = NULL;
    size_t i;

    for (i = 0; i < n; i++) {
        if (mem[i].key_len == strlen(key) && memcmp(mem[i].key, key, mem[i].key_len) == 0) {
            FUZZ_CHECK(found == NULL); /* no member twice */
            found = &mem[i];
        }
    }
    FUZZ_CHECK(found != NULL);
    return found;
}

/* A string member holds exactly these bytes, one code point each (bytes
 * past ASCII are U+0080..U+00FF, as cz_accesslog.h says). */
static void j_bytes(const jmember_t *m, const char *s, size_t n) {
    size_t i;

    FUZZ_CHECK(m->is_str && m->ncp == n);
    for (i = 0; i < n; i++) FUZZ_CHECK(m->cp[i] == (unsigned char)s[i]);
}

static void j_text(const jmember_t *m, const char *s) {
    FUZZ_CHECK(!m->is_str && m->num_len == strlen(s) && memcmp(m->num, s, m->num_len) == 0);
}

static void json_check(const char *line, size_t n, const cz_accesslog_entry_t *e) {
    jreader_t j = {line, line + n, xmalloc((n + 1) * sizeof(uint32_t)), 0};
    jmember_t mem[JSON_MEMBERS];
    size_t nmem;
    cz_http_str_t client = log_client(e);
    struct tm tm;
    char s[64];
    uint64_t us = e->duration_ns / 1000u;

    if (!j_object(&j, mem, &nmem)) {
        fprintf(stderr, "access log: not a JSON object: %.*s\n", (int)n, line);
        FUZZ_CHECK(0);
    }
    FUZZ_CHECK(nmem == 8);
    FUZZ_CHECK(gmtime_r(&e->when, &tm) != NULL);
    FUZZ_CHECK(strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%SZ", &tm) > 0);
    j_bytes(j_member(mem, nmem, "time"), s, strlen(s));
    j_bytes(j_member(mem, nmem, "client"), client.base, client.len);
    j_bytes(j_member(mem, nmem, "method"), e->req->method.base, e->req->method.len);
    j_bytes(j_member(mem, nmem, "path"), e->req->target.base, e->req->target.len);
    snprintf(s, sizeof(s), "1.%d", e->req->http_minor);
    j_bytes(j_member(mem, nmem, "http"), s, 3);
    snprintf(s, sizeof(s), "%d", log_status(e->status));
    j_text(j_member(mem, nmem, "status"), s);
    snprintf(s, sizeof(s), "%llu", (unsigned long long)e->bytes);
    j_text(j_member(mem, nmem, "bytes"), s);
    snprintf(s, sizeof(s), "%llu.%03llu", (unsigned long long)(us / 1000u), (unsigned long long)(us % 1000u));
    j_text(j_member(mem, nmem, "duration_ms"), s);
    free(j.pool);
}

/* Append the line of `e` to the batch and check it. */
static void log_check(cz_accesslog_t *l, const cz_accesslog_entry_t *e) {
    size_t before = A.log.len, n, i;
    int rc = cz_accesslog_append(l, &A.log, e);
    const char *line;

    if (rc == CZ_HTTP_E2BIG) {
        /* the batch is full: nothing appended; the embedder hands it on */
        FUZZ_CHECK(A.log.len == before && before > 0);
        cz_http_buf_reset(&A.log, 0);
        before = 0;
        rc = cz_accesslog_append(l, &A.log, e);
    }
    FUZZ_CHECK(rc == CZ_HTTP_OK);
    FUZZ_CHECK(A.log.len <= A.log.cap && A.log.len > before); /* nothing written past the buffer */
    line = A.log.data + before;
    n = A.log.len - before;
    A.lines++;
    {
        /* the same line into a buffer of a bound taken from the clock:
         * E2BIG with nothing appended, or the line within the bound */
        size_t bound = 64u + (size_t)(A.clock % 1500u);
        cz_http_buf_t one;
        cz_http_buf_init(&one, g_alloc, bound);
        rc = cz_accesslog_append(l, &one, e);
        if (rc == CZ_HTTP_OK)
            FUZZ_CHECK(one.len <= bound && one.len <= one.cap && one.len == n && memcmp(one.data, line, n) == 0);
        else FUZZ_CHECK(rc == CZ_HTTP_E2BIG && one.len == 0);
        cz_http_buf_free(&one);
    }
    /* one line: printable ASCII (py_server.c decodes it as ASCII), one '\n' at its end */
    FUZZ_CHECK(line[n - 1] == '\n');
    for (i = 0; i + 1 < n; i++) {
        unsigned char ch = (unsigned char)line[i];
        if (ch < 0x20 || ch >= 0x7f) {
            fprintf(stderr, "access log: byte 0x%02x at %zu: %.*s\n", ch, i, (int)n, line);
            FUZZ_CHECK(0);
        }
    }
    if (l->format == CZ_ACCESSLOG_JSON) {
        json_check(line, n - 1, e);
    } else {
        sbuf_t want = {NULL, 0, 0};
        size_t quotes = 0;
        common_expect(&want, e);
        if (want.n != n || memcmp(want.p, line, n) != 0) {
            fprintf(stderr, "access log: %.*s\n      want: %.*s", (int)n, line, (int)want.n, want.p);
            FUZZ_CHECK(0);
        }
        free(want.p);
        /* the request is the only quoted field, and nothing inside it is a quote */
        for (i = 0; i < n; i++) quotes += line[i] == '"';
        FUZZ_CHECK(quotes == 2);
    }
}

/* The access log lines of an answered request: as it came, and with its
 * body (any bytes: controls, quotes, invalid UTF-8) as the target. The
 * client is the request's X-Forwarded-For (a proxy's word: the client's
 * own bytes), else none. */
static void acct_log(const cz_conn_answered_t *a, uint64_t ns) {
    const cz_http_str_t *xff = cz_http_request_header(a->req, "x-forwarded-for", 15);
    char client[CLIENT_COPY + 1];
    cz_http_request_t as_body;
    cz_accesslog_entry_t e;

    memset(&e, 0, sizeof(e));
    if (xff) {
        size_t n = xff->len < CLIENT_COPY ? xff->len : CLIENT_COPY;
        memcpy(client, xff->base, n);
        client[n] = '\0';
        e.client = client;
    }
    e.req = a->req;
    e.status = a->status;
    e.bytes = a->bytes_out;
    e.duration_ns = ns;
    e.when = A.when + (time_t)(A.reports / 2); /* a second every other line: the stamp cache hit and missed */
    log_check(&A.common, &e);
    log_check(&A.json, &e);
    if (a->req->body.len) {
        as_body = *a->req;
        as_body.target.base = a->req->body.base;
        as_body.target.len = a->req->body.len < LOG_BODY_MAX ? a->req->body.len : LOG_BODY_MAX;
        e.req = &as_body;
        e.status = (int)(ns % 1200u); /* out of range too (logged as 0) */
        log_check(&A.common, &e);
        log_check(&A.json, &e);
    }
}

/* env->answered: checked against cz_conn.h's contract, then fed to
 * cz_metrics and cz_accesslog as py_server.c does. */
static void env_answered(void *ctx, cz_conn_t *c, const cz_conn_answered_t *a) {
    long fault_at = g_fault_at;
    const cz_http_request_t *req;
    uint64_t queued, now;
    span_t *s;

    (void)ctx;
    g_fault_at = 0; /* the hook's own allocations are not the connection's: no fault there */
    FUZZ_CHECK(A.on && c == &H.conn && a != NULL && a->req != NULL);
    /* once, for the request routed last, which is still intact */
    FUZZ_CHECK(A.open);
    A.open = 0;
    req = a->req;
    FUZZ_CHECK(req->method_id == A.method_id && req->http_minor == A.http_minor);
    FUZZ_CHECK(req->target.len == A.target_len && memcmp(req->target.base, A.target, A.target_len) == 0);
    FUZZ_CHECK(a->route_index == A.route);
    FUZZ_CHECK(a->started_ns == A.started && a->started_ns >= A.last_started);
    A.last_started = a->started_ns;
    FUZZ_CHECK(a->status >= 100 && a->status <= 999);
    /* its answer is all queued now, and is the last bytes queued (checked
     * against the wire at the end) */
    queued = H.out_len + cz_conn_out_pending(c);
    if (a->bytes_out == 0 || a->bytes_out > queued - A.reported_end) {
        fprintf(stderr, "answered: %d, %llu bytes; %llu queued since the last report\n", a->status,
                (unsigned long long)a->bytes_out, (unsigned long long)(queued - A.reported_end));
        FUZZ_CHECK(0);
    }
    if (A.nspans == A.spans_cap) {
        A.spans_cap = A.spans_cap ? A.spans_cap * 2 : 16;
        A.spans = realloc(A.spans, A.spans_cap * sizeof(*A.spans));
        FUZZ_CHECK(A.spans != NULL);
    }
    s = &A.spans[A.nspans++];
    s->start = queued - a->bytes_out;
    s->end = queued;
    s->status = a->status;
    s->head = A.head;
    s->cut = 0;
    A.reported_end = queued;
    /* the connection's totals: every byte fed, every byte taken */
    FUZZ_CHECK(H.env.bytes_in == H.fed && H.env.bytes_out == H.out_len);
    now = env_clock_ns(NULL);
    A.conn_read_clock = 0;
    FUZZ_CHECK(now >= a->started_ns);
    A.reports++;
    if (A.m_ok) acct_metrics(a, now - a->started_ns);
    acct_log(a, now - a->started_ns);
    g_fault_at = fault_at;
}

typedef struct {
    int begins, completes, status, head;
} span_parse_t;

static int sp_begin(llhttp_t *ll) {
    ((span_parse_t *)ll->data)->begins++;
    return 0;
}

static int sp_headers(llhttp_t *ll) {
    span_parse_t *sp = ll->data;
    sp->status = ll->status_code;
    return sp->head ? 1 : 0;
}

static int sp_complete(llhttp_t *ll) {
    ((span_parse_t *)ll->data)->completes++;
    return 0;
}

/* The bytes a report counted are exactly one response, with its status. */
static void check_span(const span_t *s) {
    llhttp_settings_t st;
    llhttp_t ll;
    span_parse_t sp;
    llhttp_errno_t e;

    memset(&sp, 0, sizeof(sp));
    sp.head = s->head;
    llhttp_settings_init(&st);
    st.on_message_begin = sp_begin;
    st.on_headers_complete = sp_headers;
    st.on_message_complete = sp_complete;
    llhttp_init(&ll, HTTP_RESPONSE, &st);
    ll.data = &sp;
    e = llhttp_execute(&ll, H.out + s->start, (size_t)(s->end - s->start));
    if (e == HPE_PAUSED_UPGRADE) FUZZ_CHECK(llhttp_get_error_pos(&ll) == H.out + s->end); /* a 101: its head */
    else FUZZ_CHECK(e == HPE_OK);
    /* a body delimited by the close ends the output */
    if (sp.completes == 0 && !s->cut && s->end == H.out_len) FUZZ_CHECK(llhttp_finish(&ll) == HPE_OK);
    if (sp.begins != 1 || sp.status != s->status || (!s->cut && sp.completes != 1)) {
        fprintf(stderr, "answered %d with %llu bytes; the wire there: %d messages, status %d\n---\n%.*s\n---\n",
                s->status, (unsigned long long)(s->end - s->start), sp.begins, sp.status,
                (int)(s->end - s->start > 2000 ? 2000 : s->end - s->start), H.out + s->start);
        FUZZ_CHECK(0);
    }
}

static void acct_start(const uint8_t *data, size_t size) {
    free(A.target);
    free(A.spans);
    memset(&A, 0, sizeof(A));
    A.on = size >= HDR_LEN && (data[4] & ACCOUNT_BIT) != 0;
    if (!A.on) return;
    /* cz_metrics sized for the fixed router (before faults are armed) */
    cz_metrics_init(&A.m, g_alloc);
    A.m_ok = cz_metrics_reserve(&A.m, NROUTES) == 0;
    FUZZ_CHECK(A.m_ok);
    cz_accesslog_init(&A.common, CZ_ACCESSLOG_COMMON);
    cz_accesslog_init(&A.json, CZ_ACCESSLOG_JSON);
    cz_http_buf_init(&A.log, g_alloc, LOG_MAX);
    /* wall clock: a second from the input, in 1970 .. 9999 */
    A.when = (time_t)(fnv(FNV_INIT ^ 0x5a, data, size < 16 ? size : 16) % 253402300000u);
}

/* After the input: every report's answer is on the wire as counted, the
 * figures are the model's, and a request left unreported was dropped. */
static void acct_finish(int aborted, long faults, int timeouts) {
    size_t i;

    if (!A.on) return;
    FUZZ_CHECK(H.env.requests == A.reports + (uint64_t)A.open);
    if (A.open) {
        /* the client left, or its answer could not be queued (or completed) */
        FUZZ_CHECK(H.env.abandoned > 0 || H.unanswered_at != SIZE_MAX || H.cut || aborted || faults > 0 || timeouts);
    }
    for (i = 0; i < A.nspans; i++) {
        if (A.spans[i].end > H.out_len) { /* never sent: the connection closed at once */
            FUZZ_CHECK(aborted);
            continue;
        }
        check_span(&A.spans[i]);
    }
    if (A.m_ok) {
        metrics_compare();
        /* more routes: every figure is kept, the new ones are zero */
        FUZZ_CHECK(cz_metrics_reserve(&A.m, NROUTES + 3) == 0);
        FUZZ_CHECK(memcmp(cz_metrics_route(&A.m, 2000), &A.model[NROUTES], sizeof(A.model[0])) == 0);
        for (i = 0; i < NROUTES; i++)
            FUZZ_CHECK(memcmp(cz_metrics_route(&A.m, (uint32_t)i), &A.model[i], sizeof(A.model[0])) == 0);
        for (i = NROUTES; i < NROUTES + 3; i++) FUZZ_CHECK(cz_metrics_route(&A.m, (uint32_t)i)->observed == 0);
    }
    cz_metrics_destroy(&A.m);
    cz_http_buf_free(&A.log);
    free(A.target);
    free(A.spans);
    A.target = NULL;
    A.spans = NULL;
}

/* ---- the server's own answers: an oracle for cz_answer_route() ------------------ */

/* what OPTIONS * lists (cz_answer.h) */
#define ALL_METHODS (CZ_METHOD_GET | CZ_METHOD_POST | CZ_METHOD_PUT | CZ_METHOD_PATCH | CZ_METHOD_DELETE)

/* Is `req` the application's to answer? (cz_answer.h) */
static int app_answers(const cz_http_request_t *req, const cz_match_t *m) {
    if (req->method_id == HTTP_OPTIONS && req->target.len == 1 && req->target.base[0] == '*') return 0;
    return m->status == CZ_MATCH_FOUND ||
           (m->status == CZ_MATCH_NOT_FOUND && (C.opts & OPT_NOT_FOUND) && m->slash == CZ_SLASH_NONE);
}

/* A response of the server's own: a status, one field, no body. */
static expect_t *expect_one(const cz_answer_to_t *to, int status, const char *name, const char *value, size_t len) {
    cz_http_header_t h;
    cz_http_response_t r;

    h.name.base = name;
    h.name.len = strlen(name);
    h.value.base = value;
    h.value.len = len;
    memset(&r, 0, sizeof(r));
    r.status = status;
    r.headers = &h;
    r.num_headers = 1;
    r.body.base = "";
    r.body.len = 0;
    r.http_minor = to->http_minor;
    r.keep_alive = to->keep_alive;
    r.head = to->head;
    return expect_response(&H.v, &r);
}

/* 204 (OPTIONS) or 405, with the methods of `allowed` in Allow. */
static void expect_allow(const cz_answer_to_t *to, int status, uint32_t allowed, size_t nerr) {
    char allow[CZ_ROUTER_ALLOW_MAX];
    size_t n = cz_router_allow_header(g_router, allowed, allow, sizeof(allow));
    expect_t *e;

    FUZZ_CHECK(n < sizeof(allow) && strlen(allow) == n); /* never cut for this router */
    if (status == 204) e = expect_one(to, 204, "Allow", allow, n);
    else e = saw_error(nerr, 405, to->http_minor, to->keep_alive, to->head);
    e->want = WANT_ALLOW;
    e->value = xmemdup(allow, n);
    e->value_len = n;
}

/* 307 to the other trailing-slash form of the path, query kept; 404 when
 * that would be "//host" or "/\host" (another site, for browsers). */
static void expect_redirect(const cz_answer_to_t *to, const cz_http_request_t *req, cz_slash_hint_t hint, size_t nerr) {
    char *loc = xmalloc(req->path.len + 2 + req->query.len);
    size_t n = req->path.len;
    expect_t *e;

    memcpy(loc, req->path.base, n);
    if (hint == CZ_SLASH_ADD) loc[n++] = '/';
    else n--;
    if (n >= 2 && (loc[1] == '/' || loc[1] == '\\')) {
        free(loc);
        saw_error(nerr, 404, to->http_minor, to->keep_alive, to->head);
        return;
    }
    if (req->query.len) {
        loc[n++] = '?';
        memcpy(loc + n, req->query.base, req->query.len);
        n += req->query.len;
    }
    e = expect_one(to, 307, "Location", loc, n);
    e->want = WANT_LOCATION;
    e->value = loc;
    e->value_len = n;
}

/* What cz_answer_route() must have appended for `req`, routed as *m. */
static void expect_answer(const cz_answer_to_t *to, const cz_http_request_t *req, const cz_match_t *m, size_t nerr) {
    int options = req->method_id == HTTP_OPTIONS;

    if (options && req->target.len == 1 && req->target.base[0] == '*') expect_allow(to, 204, ALL_METHODS, nerr);
    else if (m->status == CZ_MATCH_METHOD_NOT_ALLOWED) expect_allow(to, options ? 204 : 405, m->allowed, nerr);
    else if (m->slash != CZ_SLASH_NONE) expect_redirect(to, req, m->slash, nerr);
    else saw_error(nerr, 404, to->http_minor, to->keep_alive, to->head);
}

/*
 * Every complete request the connection reads passes through
 * cz_answer_route() (the harness is linked with --wrap=cz_answer_route):
 * the request's contract is checked and recorded, and the answer the
 * connection asks for is checked against this oracle.
 */
cz_answer_t __real_cz_answer_route(const cz_router_t *router, cz_allocator_t *alloc, const cz_http_request_t *req,
                                   int app_not_found, const cz_answer_to_t *to, cz_match_t *m, int *rc);
cz_answer_t __wrap_cz_answer_route(const cz_router_t *router, cz_allocator_t *alloc, const cz_http_request_t *req,
                                   int app_not_found, const cz_answer_to_t *to, cz_match_t *m, int *rc);

cz_answer_t __wrap_cz_answer_route(const cz_router_t *router, cz_allocator_t *alloc, const cz_http_request_t *req,
                                   int app_not_found, const cz_answer_to_t *to, cz_match_t *m, int *rc) {
    size_t before = to->out->len, nerr = H.nerr;
    long faults = g_faults;
    cz_answer_t who;
    /* dispatched at its head, its body to come piece by piece (env->body) */
    int passed = cz_conn_body_streaming(&H.conn);
    uint64_t in_hand = H.fed - H.conn.parser.base; /* read, not parsed */
    const route_t *rt;

    FUZZ_CHECK(!H.sb.active); /* one request at a time: none is routed twice */
    check_request(req, passed);
    if (passed) {
        H.sb.active = 1; /* counted once its body is complete (env_body) */
        H.sb.ended = 0;  /* not the last streamed body's (keeps_alive() below) */
        H.sb_dispatched++;
    } else {
        H.last_keep_alive = req->keep_alive;
        if (H.nreq < MAX_DIGESTS) H.digest[H.nreq] = request_digest(req);
        H.nreq++;
    }
    FUZZ_CHECK(router == g_router && alloc == g_alloc);
    FUZZ_CHECK(app_not_found == ((C.opts & OPT_NOT_FOUND) != 0));
    FUZZ_CHECK(to->date == C.datep);
    FUZZ_CHECK(to->http_minor == req->http_minor);
    FUZZ_CHECK(to->head == (req->method_id == HTTP_HEAD));
    FUZZ_CHECK(to->keep_alive == keeps_alive(req));

    memset(m, 0xa5, sizeof(*m)); /* all of it must be set */
    who = __real_cz_answer_route(router, alloc, req, app_not_found, to, m, rc);
    check_match(req, m);
    /* a route that streams gets its request at the head exactly when the
     * body is not whole in hand (chunked: never known to be) */
    rt = m->status == CZ_MATCH_FOUND ? m->handler : NULL;
    if (passed) FUZZ_CHECK(rt && rt->streams && (req->chunked || req->content_length > in_hand));
    if (rt && rt->streams && req->chunked) FUZZ_CHECK(passed);
    if (passed) stream_begin(req, m);
    H.routed++;
    acct_routed(req, m, app_answers(req, m));
    if (app_answers(req, m)) {
        FUZZ_CHECK(who == CZ_ANSWER_APP);
        FUZZ_CHECK(to->out->len == before);
        H.routed_app++;
        return who;
    }
    FUZZ_CHECK(!passed);
    FUZZ_CHECK(who == CZ_ANSWER_DONE);
    if (*rc == CZ_HTTP_OK) {
        expect_answer(to, req, m, nerr);
    } else {
        FUZZ_CHECK(g_faults > faults || *rc == CZ_HTTP_E2BIG);
        FUZZ_CHECK(to->out->len == before); /* all-or-nothing */
        failed_write(*rc);
    }
    return who;
}

/* Every canned error response (cz_conn's parse errors, 408, 500, and the
 * answers above) is expected here, as written; its callers check that it
 * is the one they meant (saw_error). */
int __real_cz_http_write_error(cz_http_buf_t *out, const cz_http_date_t *date, int status, const char *allow,
                               int http_minor, int keep_alive, int head);
int __wrap_cz_http_write_error(cz_http_buf_t *out, const cz_http_date_t *date, int status, const char *allow,
                               int http_minor, int keep_alive, int head);

int __wrap_cz_http_write_error(cz_http_buf_t *out, const cz_http_date_t *date, int status, const char *allow,
                               int http_minor, int keep_alive, int head) {
    size_t before = out->len;
    int rc = __real_cz_http_write_error(out, date, status, allow, http_minor, keep_alive, head);

    FUZZ_CHECK(date == C.datep);
    if (rc != CZ_HTTP_OK) {
        FUZZ_CHECK(rc == CZ_HTTP_ENOMEM || rc == CZ_HTTP_E2BIG);
        FUZZ_CHECK(out->len == before); /* all-or-nothing */
        return rc;
    }
    H.nerr++;
    H.err_status = status;
    if (status == 413 && cz_http_parser_status(&H.conn.parser) == 0) H.route_cut = 1; /* not the parser's own */
    H.err_minor = http_minor;
    H.err_keep = keep_alive;
    H.err_head = head;
    H.err = expect_error(&H.v, status, http_minor, keep_alive, head);
    return rc;
}

/* ---- the transport --------------------------------------------------------------------- */

static void sent_append(const char *data, size_t len) {
    if (H.out_len + len > H.out_cap) {
        H.out_cap = (H.out_len + len) * 2;
        H.out = realloc(H.out, H.out_cap);
        FUZZ_CHECK(H.out != NULL);
    }
    memcpy(H.out + H.out_len, data, len);
    H.out_len += len;
}

/* The socket takes up to H.quota bytes (0: all): 1 when something went out. */
static int drain(cz_conn_t *c) {
    size_t budget = H.quota ? H.quota : SIZE_MAX;
    int sent = 0;
    cz_conn_seg_t seg;

    while (budget && cz_conn_out_peek(c, &seg)) {
        size_t n = seg.len < budget ? seg.len : budget;
        FUZZ_CHECK(seg.len > 0);
        if (seg.base) {
            sent_append(seg.base, n);
        } else {
            char buf[512];
            ssize_t r;
            if (n > sizeof(buf)) n = sizeof(buf);
            r = pread(seg.fd, buf, n, (off_t)seg.offset);
            FUZZ_CHECK(r == (ssize_t)n);
            sent_append(buf, n);
        }
        cz_conn_out_sent(c, n);
        budget -= n;
        sent = 1;
    }
    if (cz_conn_out_pending(c)) cz_conn_out_blocked(c);
    return sent;
}

/* Run the connection until it waits for input (or closes): write its
 * output, answer deferred requests, resume it. */
static void settle_turns(cz_conn_t *c) {
    size_t guard = 0;

    while (cz_conn_is_open(c)) {
        int progress = drain(c);
        FUZZ_CHECK(guard++ < 1000000);
        if (H.deferred) {
            const cz_http_request_t *req = cz_conn_request(c);
            FUZZ_CHECK(req != NULL && cz_conn_state(c) == CZ_CONN_BUSY);
            check_request(req, 0); /* still intact while the request is busy */
            H.deferred = 0;
            if (H.expire) {
                /* answered 503 by the engine; the handler's late answer is refused */
                cz_http_response_t late = {.status = 200};
                cz_conn_expire(c);
                FUZZ_CHECK(cz_conn_state(c) != CZ_CONN_BUSY);
                FUZZ_CHECK(cz_conn_respond(c, &late) == CZ_CONN_ESTATE);
            } else {
                handler(c, req, &H.match);
            }
            progress = 1;
        }
        stream_gone(c);
        if (H.sb.active && H.sb.later &&
            (H.sb.later != LATER_ANSWER_AFTER_READ || H.reads > H.sb.later_reads || H.input_done)) {
            /* the streamed body's application, on a later turn */
            int later = H.sb.later;
            H.sb.later = LATER_NONE;
            if (H.expire) {
                /* the stop's deadline passes first: 503, the late answer refused */
                cz_http_response_t late = {.status = 200};
                cz_conn_expire(c);
                FUZZ_CHECK(cz_conn_state(c) != CZ_CONN_BUSY && !cz_conn_body_streaming(c));
                FUZZ_CHECK(cz_conn_respond(c, &late) == CZ_CONN_ESTATE);
                FUZZ_CHECK(cz_conn_body_next(c) == CZ_CONN_ESTATE);
                H.sb.active = 0;
            } else if (later == LATER_TAKE) {
                stream_take(c);
                FUZZ_CHECK(cz_conn_wants_input(c) == (c->held == NULL && !H.eof));
            } else {
                stream_answer(c);
            }
            progress = 1;
        }
        progress |= cz_conn_resume(c);
        stream_gone(c);
        if (cz_conn_state(c) == CZ_CONN_CLOSING && cz_conn_out_pending(c) == 0)
            return; /* the transport closes the socket */
        if (!progress && !cz_conn_out_pending(c)) return;
    }
}

static void settle(cz_conn_t *c) {
    settle_turns(c);
    stream_gone(c);
}

static int conn_done(cz_conn_t *c) {
    cz_conn_state_t st = cz_conn_state(c);
    return st == CZ_CONN_CLOSED || (st == CZ_CONN_CLOSING && cz_conn_out_pending(c) == 0);
}

/* ---- the one-piece reference parse ------------------------------------------------- */

/* What a parse of the bytes gave: each request (digest, body included),
 * and the end. */
typedef struct {
    uint64_t digest[MAX_DIGESTS];
    size_t n;   /* complete requests */
    int end;    /* END_INPUT, END_ERROR or END_CLOSE_REQ */
    int status; /* of END_ERROR */
} transcript_t;

static transcript_t g_whole, g_pieces;
static size_t g_pieces_seen; /* CZ_HTTP_BODY events of the last pieces_parse() (FUZZ_VERBOSE) */

static void transcript_add(transcript_t *t, const cz_http_request_t *r) {
    if (t->n < MAX_DIGESTS) t->digest[t->n] = request_digest(r);
    t->n++;
}

/* The bytes in one piece, bodies stored: the reference. */
static void one_piece(const char *in, size_t len, transcript_t *t) {
    cz_http_parser_t p;
    char *copy = xmemdup(in, len);
    const char *data = copy;
    size_t left = len;

    t->n = 0;
    t->end = END_INPUT;
    t->status = 0;
    cz_http_parser_init(&p, g_alloc, &C.limits);
    while (left > 0) {
        size_t used = 0;
        cz_http_event_t ev = cz_http_parser_feed(&p, data, left, &used);
        data += used;
        left -= used;
        if (ev == CZ_HTTP_REQUEST) {
            const cz_http_request_t *r = cz_http_parser_request(&p);
            transcript_add(t, r);
            if (!r->keep_alive) {
                t->end = END_CLOSE_REQ;
                break;
            }
        } else if (ev == CZ_HTTP_ERROR) {
            t->end = END_ERROR;
            t->status = cz_http_parser_status(&p);
            break;
        } else if (ev == CZ_HTTP_NEED_MORE) {
            break;
        }
    }
    cz_http_parser_destroy(&p);
    free(copy);
}

/* Two parses of the same bytes give the same requests (body bytes
 * included, however they came) and the same end; only the status of an
 * error may differ: an input broken in two ways may be refused for either,
 * depending on where the reads end (e.g. a target over max_url that also
 * holds a NUL: 414 when the long part arrives first, 400 when the NUL is
 * in the same read). */
static void same_transcript(const char *what, const transcript_t *a, const transcript_t *b) {
    size_t i;

    for (i = 0; i < a->n && i < b->n && i < MAX_DIGESTS; i++) {
        if (a->digest[i] != b->digest[i]) {
            fprintf(stderr, "%s: request #%zu differs from the one-piece parse\n", what, i);
            FUZZ_CHECK(0);
        }
    }
    if (a->n != b->n || a->end != b->end) {
        fprintf(stderr, "%s: %zu requests, end %d; one piece: %zu requests, end %d, status %d\n", what, a->n, a->end,
                b->n, b->end, b->status);
        FUZZ_CHECK(0);
    }
}

/* The connection's requests against the same bytes parsed in one piece;
 * `end` is how the connection ended, `stopped_early` when it closed for a
 * reason of its own (stopping, a failed write, an answer before a body's
 * end). */
static void reference_parse(const transcript_t *whole, int end, int stopped_early) {
    transcript_t *t = &g_pieces;
    size_t i;

    t->n = H.nreq;
    t->end = end;
    t->status = 0;
    for (i = 0; i < H.nreq && i < MAX_DIGESTS; i++) t->digest[i] = H.digest[i];
    if (stopped_early) {
        /* the connection stopped early: a prefix */
        FUZZ_CHECK(H.nreq <= whole->n);
        for (i = 0; i < H.nreq && i < MAX_DIGESTS; i++) FUZZ_CHECK(H.digest[i] == whole->digest[i]);
        return;
    }
    same_transcript("connection", t, whole);
}

/* ---- the parser alone, bodies handed out in pieces --------------------------------- */

/*
 * The bytes through cz_http_parser_feed() in the input's read sizes, each
 * read in its own heap block freed once parsed; the k-th request with a
 * body has it handed out (cz_http_parser_pass_body(), CZ_HTTP_BODY) when
 * bit k % 3 of `pass` is set, and stored otherwise. After a piece that
 * ends a read, an empty feed follows when the pieces so far are odd
 * (otherwise the next read goes on), and always at the end of the bytes.
 * Checked: the feed contract (consumed, NEED_MORE takes all, HEADERS only
 * with a body, ERROR sticky), pass_body only right after HEADERS, pieces
 * never empty, views into the bytes this feed consumed, in order, the
 * count of body bytes, the bounds, an empty body at the REQUEST of a
 * passed body; the transcript, with each passed body the concatenation of
 * its pieces, is compared with the one-piece parse.
 */
static void pieces_parse(const char *in, size_t len, unsigned pass, transcript_t *t) {
    cz_http_parser_t p;
    size_t pos = 0, turn = 0, bodies = 0, pieces = 0, got_len = 0, got_cap = 0;
    char *got = NULL;
    int passing = 0, last_body = 0, done = 0;

    t->n = 0;
    t->end = END_INPUT;
    t->status = 0;
    g_pieces_seen = 0;
    cz_http_parser_init(&p, g_alloc, &C.limits);
    FUZZ_CHECK(cz_http_parser_pass_body(&p) == -1); /* only right after a head */
    while (!done && (pos < len || last_body)) {
        size_t n = 0, off = 0;
        cz_http_event_t ev;
        char *chunk;

        if (pos < len) {
            n = C.split[turn++ % 3];
            if (n == 0 || n > len - pos) n = len - pos;
        }
        chunk = xmemdup(in + pos, n);
        pos += n;
        do {
            const cz_http_request_t *r;
            const char *at = chunk + off;
            size_t used = 0;
            cz_http_request_t copy;

            ev = cz_http_parser_feed(&p, at, n - off, &used);
            FUZZ_CHECK(used <= n - off);
            off += used;
            r = cz_http_parser_request(&p);
            last_body = ev == CZ_HTTP_BODY;
            switch (ev) {
            case CZ_HTTP_NEED_MORE: FUZZ_CHECK(off == n); break;
            case CZ_HTTP_HEADERS:
                FUZZ_CHECK(r->has_body && r->body.len == 0 && cz_http_parser_body_len(&p) == 0);
                passing = (pass >> (bodies++ % 3)) & 1u;
                got_len = 0;
                if (passing) FUZZ_CHECK(cz_http_parser_pass_body(&p) == 0);
                break;
            case CZ_HTTP_BODY:
                FUZZ_CHECK(passing && cz_http_parser_in_request(&p));
                FUZZ_CHECK(r->body.len > 0 && r->body.base >= at && r->body.base + r->body.len <= chunk + off);
                if (got_len + r->body.len > got_cap) {
                    got_cap = (got_len + r->body.len) * 2;
                    got = realloc(got, got_cap);
                    FUZZ_CHECK(got != NULL);
                }
                memcpy(got + got_len, r->body.base, r->body.len);
                got_len += r->body.len;
                pieces++;
                g_pieces_seen++;
                FUZZ_CHECK(cz_http_parser_body_len(&p) == got_len && got_len <= C.limits.max_body);
                FUZZ_CHECK(r->chunked || got_len <= r->content_length);
                FUZZ_CHECK(cz_http_parser_pass_body(&p) == -1);
                break;
            case CZ_HTTP_REQUEST:
                copy = *r;
                if (passing) {
                    FUZZ_CHECK(r->body.len == 0 && (r->chunked || got_len == r->content_length));
                    copy.body.base = got ? got : "";
                    copy.body.len = got_len;
                }
                FUZZ_CHECK(cz_http_parser_pass_body(&p) == -1);
                check_request(&copy, 0);
                transcript_add(t, &copy);
                passing = 0;
                if (!r->keep_alive) {
                    t->end = END_CLOSE_REQ;
                    done = 1;
                }
                break;
            case CZ_HTTP_ERROR:
            default:
                FUZZ_CHECK(ev == CZ_HTTP_ERROR);
                t->end = END_ERROR;
                t->status = cz_http_parser_status(&p);
                FUZZ_CHECK(cz_http_parser_feed(&p, "", 0, &used) == CZ_HTTP_ERROR && used == 0); /* sticky */
                done = 1;
                break;
            }
        } while (!done && (off < n || (ev == CZ_HTTP_BODY && (pieces & 1u))));
        free(chunk);
    }
    /* a reset parser takes a plain request (within every preset's
     * limits), whatever came before */
    {
        static const char plain[] = "GET / HTTP/1.0\r\n\r\n";
        size_t used = 0;
        cz_http_parser_reset(&p);
        FUZZ_CHECK(cz_http_parser_feed(&p, plain, sizeof(plain) - 1, &used) == CZ_HTTP_REQUEST);
        FUZZ_CHECK(used == sizeof(plain) - 1 && cz_http_parser_request(&p)->method_id == HTTP_GET);
    }
    cz_http_parser_destroy(&p);
    free(got);
}

/* ---- libFuzzer entry points ------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    char err[256];
    size_t i;

    (void)argc;
    (void)argv;
    g_verbose = getenv("FUZZ_VERBOSE") != NULL;
    g_alloc = cz_allocator_create(CZ_BACKEND_MALLOC, NULL, 0);
    g_static = cz_allocator_create(CZ_BACKEND_MALLOC, NULL, 0);
    g_router = g_alloc && g_static ? cz_router_create(g_static) : NULL;
    if (!g_router) abort();
    {
        /* the static directory: site/ with files, a symlink out, a secret beside it */
        char dir[] = "/tmp/cz-fuzz-static-XXXXXX", path[256];
        static const char *const files[][2] = {{"site/a.txt", "alpha"},      {"site/sub/index.html", "<p>sub</p>"},
                                               {"site/404.html", "missing"}, {"site/a.txt.gz", "gz"},
                                               {"site/b.bin", "bravo"},      {"site/c.bin", "charlie"},
                                               {"site/d.bin", "delta"},      {"secret", SECRET}};
        FUZZ_CHECK(mkdtemp(dir) != NULL);
        snprintf(path, sizeof(path), "%s/site", dir);
        FUZZ_CHECK(mkdir(path, 0700) == 0);
        snprintf(path, sizeof(path), "%s/site/sub", dir);
        FUZZ_CHECK(mkdir(path, 0700) == 0);
        for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
            FILE *f;
            snprintf(path, sizeof(path), "%s/%s", dir, files[i][0]);
            f = fopen(path, "w");
            FUZZ_CHECK(f && fputs(files[i][1], f) >= 0 && fclose(f) == 0);
        }
        snprintf(path, sizeof(path), "%s/site/escape", dir);
        FUZZ_CHECK(symlink("../secret", path) == 0);
        snprintf(path, sizeof(path), "%s/site", dir);
        g_static_dir = cz_static_create(g_static, path, CZ_STATIC_HTML | CZ_STATIC_PRECOMPRESSED, err, sizeof(err));
        FUZZ_CHECK(g_static_dir && cz_static_add_type(g_static_dir, "txt", "text/plain") == 0 &&
                   cz_static_add_type(g_static_dir, "html", "text/html") == 0 &&
                   cz_static_add_type(g_static_dir, "bin", "application/octet-stream") == 0);
        /* a tiny cache: two entries, so hits, misses and evictions all happen */
        FUZZ_CHECK(cz_static_set_cache(g_static_dir, 2, 64, 100) == 0);
    }
    for (i = 0; i < NROUTES; i++) {
        const route_t *rt = &g_routes[i];
        if (cz_router_add(g_router, rt->method, strlen(rt->method), rt->pattern, strlen(rt->pattern), (void *)rt, NULL,
                          err, sizeof(err)) != 0) {
            fprintf(stderr, "route %s %s: %s\n", rt->method, rt->pattern, err);
            abort();
        }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *in = (const char *)data + HDR_LEN;
    size_t len, pos = 0, turn = 0, i;
    mem_mark_t start;
    cz_conn_t *c = &H.conn;
    uint64_t t;
    long faults;
    int end, early, timeouts, aborted, state;

    if (size < HDR_LEN) return 0;
    len = size - HDR_LEN;
    memset(&C, 0, sizeof(C));
    C.opts = data[0];
    set_limits(C.opts & OPT_LIMITS);
    C.max_write_buffer = (C.opts & OPT_SMALL_WBUF) ? 64 : 4u * 1024u * 1024u;
    C.out_max = (C.opts & OPT_SMALL_OUT) ? 300 : 0;
    for (i = 0; i < 3; i++) C.split[i] = (size_t)(data[2 + i] & 0x3f) * ((data[2 + i] & 0x80) ? 37 : 1);
    /* the Date cache, at a second taken from the input (clamped to 0..9999 AD) */
    t = fnv(FNV_INIT, data, size < 16 ? size : 16);
    cz_http_date_init(&C.date, (time_t)((int64_t)t >> 24));
    FUZZ_CHECK(strlen(C.date.str) == CZ_HTTP_DATE_LEN);
    FUZZ_CHECK(memcmp(C.date.str + 25, " GMT", 4) == 0 && C.date.str[3] == ',');
    C.datep = (C.opts & OPT_NO_DATE) ? NULL : &C.date;
    /* without an injected fault, byte 1 picks the transport's manners */
    timeouts = data[1] < 0x80 && (data[1] & 0x40);

    memset(&H, 0, sizeof(H));
    A.on = (data[4] & ACCOUNT_BIT) != 0;
    H.unanswered_at = SIZE_MAX;
    H.quota = data[1] < 0x80 ? (size_t)(data[1] & 0x3f) * 7u : 0;
    H.expire = timeouts && (C.opts & OPT_STOPPING) && (C.opts & OPT_DEFER);
    H.now = 1000;
    H.env = (cz_conn_env_t){
        .alloc = g_alloc,
        .router = g_router,
        .limits = &C.limits,
        .date = C.datep,
        .max_write_buffer = C.max_write_buffer,
        .out_max = C.out_max,
        .header_timeout_ms = 10000,
        .body_timeout_ms = 30000,
        .keepalive_timeout_ms = 5000,
        .write_timeout_ms = 30000,
        .not_found = (C.opts & OPT_NOT_FOUND) != 0,
        .stopping = (C.opts & OPT_STOPPING) != 0,
        .now = env_now,
        .dispatch = env_dispatch,
        .drained = env_drained,
        .route_max_body = route_max_body,
        .route_streams_body = route_streams_body,
        .body = env_body,
        .answered = A.on ? env_answered : NULL,
        .clock_ns = env_clock_ns, /* read only with env->answered */
    };
    ver_init(&H.v);

    start = mem_mark(g_alloc);
    acct_start(data, size);
    fault_arm(data[1] >= 0x80 ? data[1] - 0x7f : 0);
    cz_conn_init(c, &H.env);

    /* reads, as the loop delivers them; a read happens only when wanted */
    while (pos < len && cz_conn_wants_input(c)) {
        size_t n = C.split[turn++ % 3];
        char *chunk;

        if (n == 0 || n > len - pos) n = len - pos;
        /* the read's bytes are gone after the call: views into them would be use-after-free */
        chunk = xmemdup(in + pos, n);
        H.reads++;
        H.fed += n;
        cz_conn_feed(c, chunk, n);
        free(chunk);
        pos += n;
        H.now += 1;
        settle(c);
    }
    /* nothing more is read: an answer waiting for a read is given now */
    H.input_done = 1;
    settle(c);
    if (timeouts) {
        /* the client goes quiet: every deadline passes */
        size_t guard = 0;
        while (cz_conn_is_open(c) && !conn_done(c) && cz_conn_deadline(c)) {
            FUZZ_CHECK(guard++ < 16);
            H.now = cz_conn_deadline(c);
            H.in_timeout = 1;
            cz_conn_timeout(c);
            H.in_timeout = 0;
            settle(c);
        }
    }
    if (cz_conn_is_open(c) && !conn_done(c)) {
        /* the client finished sending: what it asked is answered */
        H.eof = 1;
        cz_conn_eof(c);
        stream_gone(c); /* a streamed request is abandoned */
        settle(c);
    }
    FUZZ_CHECK(!H.sb.active); /* a streamed request is answered, or gone with the connection */
    FUZZ_CHECK(cz_conn_state(c) != CZ_CONN_BUSY && cz_conn_state(c) != CZ_CONN_STREAM);
    FUZZ_CHECK(!cz_conn_is_open(c) || cz_conn_out_pending(c) == 0 || conn_done(c));

    /* no more injected failures: the checks below are about the main run */
    faults = g_faults;
    fault_arm(0);

    /* closed at once with output still queued: out of memory (held input
     * could not be kept) or a write that timed out, nothing else */
    aborted = cz_conn_state(c) == CZ_CONN_CLOSED && cz_conn_out_pending(c) > 0;
    if (aborted) FUZZ_CHECK(faults > 0 || timeouts);

    /* what was sent parses as exactly the responses expected, nothing
     * after an unanswered request, and only a cut stream ends early */
    ver_check(&H.v, H.out, H.out_len);
    if (!H.cut && !aborted) {
        if (H.v.in_msg) /* a close-delimited body ends with the connection */
            FUZZ_CHECK(llhttp_finish(&H.v.ll) == HPE_OK);
        FUZZ_CHECK(!H.v.in_msg);            /* whole responses only */
        FUZZ_CHECK(H.v.qhead == H.v.qtail); /* every response written was seen */
    }
    if (H.unanswered_at != SIZE_MAX) FUZZ_CHECK(H.v.expected == H.unanswered_at);
    /* the connection's totals: every byte fed, every byte the transport took,
     * every request routed */
    FUZZ_CHECK(H.env.bytes_in == H.fed && H.env.bytes_out == H.out_len);
    FUZZ_CHECK(H.env.requests == H.routed);
    FUZZ_CHECK(H.env.abandoned <= 1 && (H.env.abandoned == 0 || H.eof));
    acct_finish(aborted, faults, timeouts);

    end = cz_http_parser_status(&c->parser) ? END_ERROR : END_INPUT;
    if (end == END_INPUT && H.nreq && !H.last_keep_alive) end = END_CLOSE_REQ;
    early = (C.opts & OPT_STOPPING) || faults || H.bounded || H.cut || aborted || H.unanswered_at != SIZE_MAX ||
            timeouts || H.route_cut || H.sb_early;
    state = (int)cz_conn_state(c);
    cz_conn_destroy(c);
    FUZZ_CHECK(cz_conn_state(c) == CZ_CONN_CLOSED);
    for (i = 0; i < H.nfiles; i++) /* the connection closed every file it was given */
        FUZZ_CHECK(fcntl(H.files[i], F_GETFD) == -1 && errno == EBADF);
    ver_free(&H.v);
    free(H.out);
    free(H.sb.got);

    /* the same bytes in one piece give the same requests */
    one_piece(in, pos, &g_whole);
    if (faults == 0) reference_parse(&g_whole, end, early);
    /* and so do all the bytes through the parser alone, in the input's
     * reads, bodies handed out in pieces where bit 6 of bytes 2-4 says */
    if (pos != len) one_piece(in, len, &g_whole);
    pieces_parse(in, len, (data[2] >> 6 & 1u) | (data[3] >> 5 & 2u) | (data[4] >> 4 & 4u), &g_pieces);
    same_transcript("parser, bodies in pieces", &g_pieces, &g_whole);
    if (g_verbose)
        fprintf(stderr,
                "fuzz_request: opts 0x%02x, %zu requests, %zu responses, end %d, "
                "faults %ld, %zu/%zu bytes read, state %d; streamed bodies: %zu dispatched, %zu pieces, "
                "%zu complete, %zu failed, %d answered early; parser alone: %zu pieces; "
                "accounting: %s, %llu reported, %zu log lines\n",
                C.opts, H.nreq, H.v.responses, end, faults, pos, len, state, H.sb_dispatched, H.sb_pieces, H.sb_bodies,
                H.sb_failed, H.sb_early, g_pieces_seen, A.on ? "on" : "off", (unsigned long long)A.reports, A.lines);
    mem_expect(g_alloc, start, "request path");
    return 0;
}
