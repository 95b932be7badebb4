/*
 * fuzz_request — libFuzzer harness for the C request path of the server:
 * bytes of one connection, split at points the input chooses (as TCP
 * would), through cz_http_parser_feed() driven the way conn_process() in
 * csrc/server/cz_server.c drives it (events NEED_MORE / HEADERS / REQUEST /
 * ERROR, one request at a time, pipelined bytes kept while a request is
 * busy, 100-continue, keep-alive and close), then cz_answer_route() (the
 * server's own code: cz_router_match() on a fixed router, and the answers
 * the server gives by itself: OPTIONS 204, 405 + Allow, trailing-slash 307,
 * 404), then for the application's requests the response:
 * cz_http_response_write() (or _head + append), cz_http_write_error(), with
 * header values taken from the request (header injection checks).
 *
 * Input layout (see README.md):
 *   byte 0      options (bit 0-1 limits preset, 2 deferred answers,
 *               3 small write buffer, 4 bounded output buffer,
 *               5 server stopping, 6 embedder answers 404s, 7 no Date)
 *   byte 1      >= 0x80: fail the (byte - 0x7f)-th allocation; else none
 *   bytes 2-4   read sizes, used in turn: (b & 0x3f) * (b & 0x80 ? 37 : 1),
 *               0 meaning "everything left"
 *   the rest    the bytes the client sends
 *
 * Checked on every input (abort = crash for libFuzzer):
 *   - ASan/UBSan: every read and write; each read's bytes live in their own
 *     heap block that is freed right after cz_http_parser_feed() returns,
 *     so a request view into the read buffer is a use-after-free;
 *   - the parser's contract: consumed <= len, NEED_MORE consumes all,
 *     HEADERS only for a body, sticky errors with a 4xx/5xx status (500
 *     only under injected allocation failure), and each request's fields
 *     (target form, Host count, framing headers, keep-alive, limits, body
 *     length);
 *   - split invariance: the requests (and the final error) equal those of
 *     the same bytes fed in one piece;
 *   - the router's answer: params inside the path, status consistent;
 *   - cz_answer_route(): who answers (application or server), and what the
 *     server wrote, checked against an oracle written here: 204 + Allow for
 *     OPTIONS, 405 + Allow, 307 + Location (the other trailing-slash form,
 *     query kept, never "//host" or "/\host": those are 404), 404; the Allow
 *     and Location values are compared byte for byte; on failure nothing is
 *     appended and the connection closes after what is queued;
 *   - every response: all-or-nothing on error, CZ_HTTP_EINVAL exactly when
 *     a header name/value or reason is invalid, and the serialized bytes
 *     parse back with llhttp (HTTP_RESPONSE) into exactly the responses
 *     written: status, number of header fields (no injected field),
 *     Content-Length and body length, keep-alive/close, nothing after a
 *     "Connection: close";
 *   - leaks: the allocator's live bytes and blocks are back to their start
 *     value after every input.
 */
#include "fuzz_common.h"

#include "cz_answer.h"
#include "cz_http.h"
#include "cz_memory.h"
#include "cz_router.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HDR_LEN 5
#define OUT_KEEP (16u * 1024u) /* as cz_server.c */

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
static int g_verbose;            /* FUZZ_VERBOSE=1: one line per input */

/* ---- the application: a fixed router ---------------------------------------- */

enum { MODE_ECHO, MODE_STATUS, MODE_STREAM, MODE_EMPTY };

typedef struct {
    const char *method;
    const char *pattern;
    int status;
    int mode;
} route_t;

static const route_t g_routes[] = {
    {"GET", "/", 200, MODE_ECHO},
    {"GET", "/health", 204, MODE_EMPTY},
    {"GET", "/items", 200, MODE_ECHO},
    {"POST", "/items", 201, MODE_ECHO},
    {"GET", "/items/{item_id}", 200, MODE_ECHO},
    {"PUT", "/items/{item_id}", 200, MODE_ECHO},
    {"PATCH", "/items/{item_id}", 200, MODE_ECHO},
    {"DELETE", "/items/{item_id}", 204, MODE_EMPTY},
    {"GET", "/items/{item_id}/reviews/{review_id}", 200, MODE_ECHO},
    {"GET", "/users/me", 200, MODE_ECHO},
    {"GET", "/users/{user_id}", 200, MODE_ECHO},
    {"GET", "/users/{user_id}/posts/", 200, MODE_ECHO},
    {"HEAD", "/users/{user_id}/posts/", 200, MODE_EMPTY},
    {"GET", "/files/{path:path}", 200, MODE_STREAM},
    {"GET", "/static/{rest:path}", 200, MODE_ECHO},
    {"POST", "/upload", 201, MODE_STREAM},
    {"PUT", "/upload", 201, MODE_STREAM},
    {"OPTIONS", "/cors", 204, MODE_EMPTY},
    {"GET", "/status/{code}", 0, MODE_STATUS},
    {"POST", "/status/{code}", 0, MODE_STATUS},
    {"PURGE", "/cache/{key}", 200, MODE_EMPTY},
    {"GET", "/cache/{key}", 304, MODE_EMPTY},
    {"GET", "/redirect/", 200, MODE_ECHO},
    {"GET", "/a/b/c/d/e/f", 200, MODE_ECHO},
    {"GET", "/search", 200, MODE_ECHO},
    {"POST", "/search", 200, MODE_ECHO},
    {"GET", "/{page}", 200, MODE_ECHO},
};
#define NROUTES (sizeof(g_routes) / sizeof(g_routes[0]))

/* ---- per-input configuration ---------------------------------------------- */

typedef struct {
    unsigned opts;
    cz_http_limits_t limits;
    size_t max_write_buffer;   /* cz_server_config_t.max_write_buffer */
    size_t out_max;            /* cz_http_buf_init max (0: unbounded) */
    size_t split[3];           /* read sizes; 0: all that is left */
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
    default:
        break;
    }
}

/* ---- response oracle: llhttp parses what we wrote ---------------------------- */

/* A header field whose value is compared byte for byte (server answers). */
enum { WANT_NONE, WANT_ALLOW, WANT_LOCATION };

typedef struct {
    int status;
    int head;            /* answer to HEAD: body not sent */
    size_t nfields;      /* header fields expected */
    int has_length;      /* Content-Length expected */
    uint64_t body_len;   /* its value */
    int keep_alive;
    int want;            /* WANT_*: exactly one such field, with this value */
    char *value;         /* (heap, owned by the queue) */
    size_t value_len;
} expect_t;

typedef struct {
    llhttp_t ll;
    llhttp_settings_t st;
    expect_t *q;
    size_t qhead, qtail, qcap;
    size_t expected;     /* responses ever expected (qtail moves back) */
    size_t nfields;
    uint64_t body;
    int in_msg;
    int closed;          /* a "Connection: close" response was parsed */
    size_t responses;
    /* the field being parsed, and the value of the wanted one */
    char fname[16];
    size_t fname_len;
    int in_want;
    size_t nwant;
    char *val;
    size_t val_len, val_cap;
} verifier_t;

static verifier_t *ver_of(llhttp_t *ll) { return (verifier_t *)ll->data; }

static int v_begin(llhttp_t *ll) {
    verifier_t *v = ver_of(ll);

    FUZZ_CHECK(v->qhead < v->qtail); /* a response we did not write */
    FUZZ_CHECK(!v->closed);          /* nothing after Connection: close */
    v->in_msg = 1;
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
    int want = v->q[v->qhead].want;

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

    if (!v->in_want)
        return 0;
    if (v->val_len + len > v->val_cap) {
        char *nv;
        v->val_cap = (v->val_len + len) * 2;
        nv = realloc(v->val, v->val_cap);
        if (!nv)
            abort();
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
    const expect_t *e = &v->q[v->qhead];

    if (ll->status_code != e->status || v->nfields != e->nfields) {
        fprintf(stderr, "response: status %d (want %d), %zu fields (want %zu)\n",
                ll->status_code, e->status, v->nfields, e->nfields);
        FUZZ_CHECK(0);
    }
    if (e->want != WANT_NONE) {
        FUZZ_CHECK(v->nwant == 1);
        if (v->val_len != e->value_len || memcmp(v->val, e->value, e->value_len) != 0) {
            fprintf(stderr, "response %d: %s \"%.*s\" (want \"%.*s\")\n", e->status,
                    e->want == WANT_ALLOW ? "Allow" : "Location", (int)v->val_len,
                    v->val ? v->val : "", (int)e->value_len, e->value);
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
    FUZZ_CHECK((ll->flags & F_CHUNKED) == 0);
    return e->head ? 1 : 0; /* 1: no body follows (HEAD) */
}

static int v_body(llhttp_t *ll, const char *at, size_t len) {
    (void)at;
    ver_of(ll)->body += len;
    return 0;
}

static int v_message_complete(llhttp_t *ll) {
    verifier_t *v = ver_of(ll);
    const expect_t *e = &v->q[v->qhead];

    FUZZ_CHECK(v->body == (e->head || !e->has_length ? 0 : e->body_len));
    FUZZ_CHECK(llhttp_should_keep_alive(ll) == e->keep_alive);
    if (!e->keep_alive)
        v->closed = 1;
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

    for (i = v->qhead; i < v->qtail; i++)
        free(v->q[i].value);
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
            if (!nq)
                abort();
            v->q = nq;
        }
    }
    v->expected++;
    v->q[v->qtail] = *e;
    return &v->q[v->qtail++];
}

/* Everything written so far must parse as exactly the expected responses. */
static void ver_check(verifier_t *v, const char *data, size_t len) {
    const char *p = data;
    size_t n = len;

    while (n > 0) {
        llhttp_errno_t e = llhttp_execute(&v->ll, p, n);
        size_t used;

        if (e == HPE_OK)
            break;
        if (e == HPE_PAUSED_UPGRADE) { /* a handler's 101: go on */
            used = (size_t)(llhttp_get_error_pos(&v->ll) - p);
            p += used;
            n -= used;
            llhttp_resume_after_upgrade(&v->ll);
            continue;
        }
        fprintf(stderr, "response bytes do not parse: %s (%s)\n---\n%.*s\n---\n",
                llhttp_errno_name(e), llhttp_get_error_reason(&v->ll),
                (int)(len > 4000 ? 4000 : len), data);
        FUZZ_CHECK(0);
    }
    FUZZ_CHECK(!v->in_msg);          /* whole responses only */
    FUZZ_CHECK(v->qhead == v->qtail); /* every response written was seen */
}

/* ---- what a response must look like ------------------------------------------- */

static int is_tchar(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int valid_token(cz_http_str_t s) {
    size_t i;

    if (!s.base || s.len == 0)
        return 0;
    for (i = 0; i < s.len; i++)
        if (!is_tchar((unsigned char)s.base[i]))
            return 0;
    return 1;
}

static int valid_text(cz_http_str_t s) {
    size_t i;

    if (!s.base)
        return s.len == 0;
    for (i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.base[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return 0;
    }
    return 1;
}

/* Independent of cz_response.c: would it refuse the response (EINVAL)? */
static int response_invalid(const cz_http_response_t *r, int with_body) {
    size_t i;
    int bodyless = r->status < 200 || r->status == 204 || r->status == 304;

    if (r->status < 100 || r->status > 999)
        return 1;
    if (r->reason.base && !valid_text(r->reason))
        return 1;
    if (r->content_type.base && !valid_text(r->content_type))
        return 1;
    for (i = 0; i < r->num_headers; i++)
        if (!valid_token(r->headers[i].name) || !valid_text(r->headers[i].value))
            return 1;
    if (with_body && !bodyless && !r->head && r->body.len > 0 && !r->body.base)
        return 1;
    return 0;
}

static expect_t *expect_response(verifier_t *v, const cz_http_response_t *r) {
    expect_t e;
    size_t i;
    int udate = 0, userver = 0, uctype = 0;
    int bodyless = r->status < 200 || r->status == 204 || r->status == 304;

    memset(&e, 0, sizeof(e));
    for (i = 0; i < r->num_headers; i++) {
        const cz_http_str_t *n = &r->headers[i].name;
        if (ieq_lit(n->base, n->len, "content-length") ||
            ieq_lit(n->base, n->len, "transfer-encoding") ||
            ieq_lit(n->base, n->len, "connection"))
            continue;
        udate |= ieq_lit(n->base, n->len, "date");
        userver |= ieq_lit(n->base, n->len, "server");
        uctype |= ieq_lit(n->base, n->len, "content-type");
        e.nfields++;
    }
    e.nfields += (C.datep && !udate) + !userver + (r->content_type.base && !uctype) +
                 !bodyless + (!r->keep_alive || r->http_minor == 0);
    e.status = r->status;
    e.head = r->head;
    e.has_length = !bodyless;
    e.body_len = r->body.len;
    e.keep_alive = r->keep_alive;
    return ver_expect(v, &e);
}

static expect_t *expect_error(verifier_t *v, int status, int minor, int keep, int head) {
    const char *detail = cz_http_reason(status);
    expect_t e;

    if (!detail[0])
        detail = status < 500 ? "Bad Request" : "Internal Server Error";
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

/* ---- the connection: conn_process() of cz_server.c, synchronously ---------------- */

enum { CONN_IDLE, CONN_HEAD, CONN_BODY, CONN_BUSY };
enum { END_INPUT, END_ERROR, END_CLOSE_REQ, END_CLOSE_OTHER };

#define MAX_DIGESTS 512

typedef struct {
    cz_http_parser_t parser;
    cz_http_buf_t out;
    char *pending;
    size_t pending_len;
    int state;
    int open, closing, reading;
    int head, keep_alive, http_minor;
    cz_match_t match;             /* of the deferred request */
    verifier_t v;
    /* transcript, compared with a one-piece parse */
    uint64_t digest[MAX_DIGESTS];
    size_t nreq;
    int end;
    int error_status;
} conn_t;

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
    h = fnv_u64(h, (uint64_t)r->has_body << 4 | (uint64_t)r->chunked << 3 |
                       (uint64_t)r->keep_alive << 2 | (uint64_t)r->expect_continue << 1 |
                       r->upgrade);
    return h;
}

static int is_digits(const char *s, size_t n) {
    size_t i;

    if (n == 0)
        return 0;
    for (i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

/* Is `tok` one of the comma-separated options of a Connection value? */
static int has_option(cz_http_str_t v, const char *tok) {
    size_t i = 0;

    while (i < v.len) {
        size_t s, e;
        while (i < v.len && (v.base[i] == ' ' || v.base[i] == '\t' || v.base[i] == ','))
            i++;
        s = i;
        while (i < v.len && v.base[i] != ',')
            i++;
        e = i;
        while (e > s && (v.base[e - 1] == ' ' || v.base[e - 1] == '\t'))
            e--;
        if (e > s && ieq_lit(v.base + s, e - s, tok))
            return 1;
    }
    return 0;
}

/* The contract of cz_http_request_t (cz_http.h), checked field by field. */
static void check_request(const cz_http_request_t *r, int at_headers) {
    const cz_http_limits_t *l = &C.limits;
    size_t i, hosts = 0, tes = 0, cls = 0, raw = 0;
    int close_opt = 0, ka_opt = 0, expect = 0;

    FUZZ_CHECK(r->method.base && r->method.len > 0);
    FUZZ_CHECK(strlen(llhttp_method_name((llhttp_method_t)r->method_id)) == r->method.len);
    FUZZ_CHECK(memcmp(llhttp_method_name((llhttp_method_t)r->method_id), r->method.base,
                      r->method.len) == 0);
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
    if (r->http_minor == 1)
        FUZZ_CHECK(hosts == 1);
    /* framing: exactly one of none, Content-Length, chunked */
    FUZZ_CHECK(cls <= 1);
    FUZZ_CHECK(!(cls && tes));
    FUZZ_CHECK(r->chunked == (tes == 1));
    FUZZ_CHECK(tes <= 1);
    if (r->chunked)
        FUZZ_CHECK(r->http_minor == 1 && r->content_length == 0);
    FUZZ_CHECK(r->content_length <= l->max_body);
    if (cls == 0)
        FUZZ_CHECK(r->content_length == 0);
    FUZZ_CHECK(r->has_body == (r->chunked || r->content_length > 0));
    /* "close" wins; HTTP/1.0 needs "keep-alive" */
    if (close_opt)
        FUZZ_CHECK(r->keep_alive == 0);
    if (r->http_minor == 0 && !ka_opt)
        FUZZ_CHECK(r->keep_alive == 0);
    FUZZ_CHECK(r->expect_continue == (expect && r->http_minor == 1 && r->has_body));
    FUZZ_CHECK(r->body.len <= l->max_body);
    if (at_headers) {
        FUZZ_CHECK(r->has_body && r->body.len == 0);
    } else if (!r->chunked) {
        FUZZ_CHECK(r->body.len == r->content_length);
    }
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
        if (m->slash == CZ_SLASH_REMOVE)
            FUZZ_CHECK(req->path.len > 1 && req->path.base[req->path.len - 1] == '/');
        if (m->slash == CZ_SLASH_ADD)
            FUZZ_CHECK(req->path.len > 0 && req->path.base[req->path.len - 1] != '/');
    }
}

/* ---- responding: cz_conn_respond() / cz_conn_respond_error() ------------------- */

static int write_error(conn_t *c, int status, const char *allow, int minor, int keep, int head) {
    size_t before = c->out.len;
    int rc = cz_http_write_error(&c->out, C.datep, status, allow, minor, keep, head);

    if (rc == CZ_HTTP_OK) {
        expect_error(&c->v, status, minor, keep, head);
    } else {
        FUZZ_CHECK(rc == CZ_HTTP_ENOMEM || rc == CZ_HTTP_E2BIG);
        FUZZ_CHECK(c->out.len == before); /* all-or-nothing */
    }
    return rc;
}

/* cz_conn_respond(); `stream`: write_head + append, as a server writing a
 * large body from its own memory would. */
static int conn_respond(conn_t *c, const cz_http_response_t *r, int stream) {
    cz_http_response_t resp = *r;
    size_t before = c->out.len;
    int rc, invalid;

    resp.http_minor = c->http_minor;
    resp.keep_alive = c->keep_alive && !c->closing && !(C.opts & OPT_STOPPING);
    resp.head = c->head;
    if (!resp.keep_alive)
        c->keep_alive = 0;
    invalid = response_invalid(&resp, !stream);
    if (stream) {
        rc = cz_http_response_write_head(&c->out, C.datep, &resp);
        if (rc == CZ_HTTP_OK && !resp.head && resp.body.len > 0) {
            int bodyless = resp.status < 200 || resp.status == 204 || resp.status == 304;
            if (!bodyless) {
                rc = cz_http_buf_append(&c->out, resp.body.base, resp.body.len);
                if (rc != CZ_HTTP_OK) {
                    c->out.len = before; /* drop the head too: keep the stream whole */
                }
            }
        }
    } else {
        rc = cz_http_response_write(&c->out, C.datep, &resp);
    }
    FUZZ_CHECK((rc == CZ_HTTP_EINVAL) == invalid);
    if (rc == CZ_HTTP_OK)
        expect_response(&c->v, &resp);
    else
        FUZZ_CHECK(c->out.len == before);
    if (rc == CZ_HTTP_EINVAL)
        rc = write_error(c, 500, NULL, c->http_minor, resp.keep_alive, c->head);
    if (rc != CZ_HTTP_OK)
        c->keep_alive = 0; /* out of memory: close after what is queued */
    return rc;
}

/* cz_conn_respond_error() */
static int conn_respond_error(conn_t *c, int status, const char *allow) {
    int keep = c->keep_alive && !c->closing && !(C.opts & OPT_STOPPING);
    int rc;

    if (!keep)
        c->keep_alive = 0;
    rc = write_error(c, status, allow, c->http_minor, keep, c->head);
    if (rc != CZ_HTTP_OK)
        c->keep_alive = 0; /* unanswered: close after what is queued */
    return rc;
}

/* The embedder's handler: a response built from the request's own bytes. */
static void handler(conn_t *c, const cz_http_request_t *req, const cz_match_t *m) {
    enum { MAXH = 24 };
    const route_t *rt = m->status == CZ_MATCH_FOUND ? m->handler : NULL;
    cz_http_header_t h[MAXH];
    char names[CZ_ROUTER_MAX_PARAMS][48];
    cz_http_response_t r;
    const cz_http_str_t *ct;
    size_t nh = 0, i;
    int mode = rt ? rt->mode : MODE_ECHO;

    memset(&r, 0, sizeof(r));
    r.status = rt ? rt->status : 404;
    if (mode == MODE_STATUS) {
        /* /status/{code}: any three digits, 1xx..9xx */
        const cz_param_t *p = &m->params[0];
        const char *s = req->path.base + p->offset;
        if (p->len != 3 || !is_digits(s, 3)) {
            conn_respond_error(c, 422, NULL);
            return;
        }
        r.status = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
        if (r.status < 100) {
            conn_respond_error(c, 422, NULL);
            return;
        }
    }
    if (mode != MODE_EMPTY) {
        /* request fields echoed: names and values from the client */
        for (i = 0; i < req->num_headers && nh < 8; i++)
            h[nh++] = req->headers[i];
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
        if (ct)
            r.content_type = *ct;
        r.body = req->body;
    } else {
        r.body.base = "";
        r.body.len = 0;
    }
    r.headers = h;
    r.num_headers = nh;
    conn_respond(c, &r, mode == MODE_STREAM);
}

static void request_done(conn_t *c) {
    c->state = CONN_IDLE;
    if (!c->keep_alive || (C.opts & OPT_STOPPING))
        c->closing = 1;
}

/* ---- the server's own answers: an oracle for cz_answer_route() ------------------ */

/* what OPTIONS * lists (cz_answer.h) */
#define ALL_METHODS \
    (CZ_METHOD_GET | CZ_METHOD_POST | CZ_METHOD_PUT | CZ_METHOD_PATCH | CZ_METHOD_DELETE)

/* Is `req` the application's to answer? (cz_answer.h) */
static int app_answers(const cz_http_request_t *req, const cz_match_t *m) {
    if (req->method_id == HTTP_OPTIONS && req->target.len == 1 && req->target.base[0] == '*')
        return 0;
    return m->status == CZ_MATCH_FOUND ||
           (m->status == CZ_MATCH_NOT_FOUND && (C.opts & OPT_NOT_FOUND) &&
            m->slash == CZ_SLASH_NONE);
}

/* A response of the server's own: a status, one field, no body. */
static expect_t *expect_one(conn_t *c, int status, const char *name, const char *value,
                            size_t len, int keep) {
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
    r.http_minor = c->http_minor;
    r.keep_alive = keep;
    r.head = c->head;
    return expect_response(&c->v, &r);
}

/* 204 (OPTIONS) or 405, with the methods of `allowed` in Allow. */
static void expect_allow(conn_t *c, int status, uint32_t allowed, int keep) {
    char allow[CZ_ROUTER_ALLOW_MAX];
    size_t n = cz_router_allow_header(g_router, allowed, allow, sizeof(allow));
    expect_t *e;

    FUZZ_CHECK(n < sizeof(allow) && strlen(allow) == n); /* never cut for this router */
    if (status == 204)
        e = expect_one(c, 204, "Allow", allow, n, keep);
    else
        e = expect_error(&c->v, 405, c->http_minor, keep, c->head);
    e->want = WANT_ALLOW;
    e->value = xmemdup(allow, n);
    e->value_len = n;
}

/* 307 to the other trailing-slash form of the path, query kept; 404 when
 * that would be "//host" or "/\host" (another site, for browsers). */
static void expect_redirect(conn_t *c, const cz_http_request_t *req, cz_slash_hint_t hint,
                            int keep) {
    char *loc = xmalloc(req->path.len + 2 + req->query.len);
    size_t n = req->path.len;
    expect_t *e;

    memcpy(loc, req->path.base, n);
    if (hint == CZ_SLASH_ADD)
        loc[n++] = '/';
    else
        n--;
    if (n >= 2 && (loc[1] == '/' || loc[1] == '\\')) {
        free(loc);
        expect_error(&c->v, 404, c->http_minor, keep, c->head);
        return;
    }
    if (req->query.len) {
        loc[n++] = '?';
        memcpy(loc + n, req->query.base, req->query.len);
        n += req->query.len;
    }
    e = expect_one(c, 307, "Location", loc, n, keep);
    e->want = WANT_LOCATION;
    e->value = loc;
    e->value_len = n;
}

/* What cz_answer_route() must have appended for `req`, routed as *m. */
static void expect_answer(conn_t *c, const cz_http_request_t *req, const cz_match_t *m,
                          int keep) {
    int options = req->method_id == HTTP_OPTIONS;

    if (options && req->target.len == 1 && req->target.base[0] == '*')
        expect_allow(c, 204, ALL_METHODS, keep);
    else if (m->status == CZ_MATCH_METHOD_NOT_ALLOWED)
        expect_allow(c, options ? 204 : 405, m->allowed, keep);
    else if (m->slash != CZ_SLASH_NONE)
        expect_redirect(c, req, m->slash, keep);
    else
        expect_error(&c->v, 404, c->http_minor, keep, c->head);
}

/* conn_request() of cz_server.c: route, then the server answers or the
 * application does (now, or later when answers are deferred). */
static void conn_request(conn_t *c, const cz_http_request_t *req) {
    size_t before = c->out.len, expected = c->v.expected;
    long faults = g_faults;
    cz_answer_to_t to;
    cz_answer_t who;
    cz_match_t m;
    int keep, rc = -1;

    c->state = CONN_BUSY;
    c->head = req->method_id == HTTP_HEAD;
    c->keep_alive = req->keep_alive && !(C.opts & OPT_STOPPING);
    c->http_minor = req->http_minor;

    keep = c->keep_alive && !c->closing && !(C.opts & OPT_STOPPING);
    to.out = &c->out;
    to.date = C.datep;
    to.http_minor = c->http_minor;
    to.keep_alive = keep;
    to.head = c->head;
    memset(&m, 0xa5, sizeof(m)); /* all of it must be set */
    who = cz_answer_route(g_router, g_alloc, req, (C.opts & OPT_NOT_FOUND) != 0, &to, &m, &rc);
    check_match(req, &m);
    if (app_answers(req, &m)) {
        FUZZ_CHECK(who == CZ_ANSWER_APP);
        FUZZ_CHECK(c->out.len == before);
        if (C.opts & OPT_DEFER) {
            c->match = m; /* answered later, from conn_complete() */
            return;
        }
        handler(c, req, &m);
    } else {
        FUZZ_CHECK(who == CZ_ANSWER_DONE);
        if (rc == CZ_HTTP_OK) {
            expect_answer(c, req, &m, keep);
        } else {
            FUZZ_CHECK((rc == CZ_HTTP_ENOMEM && g_faults > faults) ||
                       (rc == CZ_HTTP_E2BIG && C.out_max > 0));
            FUZZ_CHECK(c->out.len == before); /* all-or-nothing */
        }
        if (rc != CZ_HTTP_OK || !keep)
            c->keep_alive = 0; /* unanswered, or answered with Connection: close */
    }
    request_done(c);
    /* an unanswered request must not leave the connection open: the next
     * response would pass for this one's */
    FUZZ_CHECK(c->v.expected > expected || c->closing);
}

static void conn_record(conn_t *c, int end) {
    if (c->end == END_INPUT)
        c->end = end;
}

static size_t conn_queued(const conn_t *c) { return c->out.len; }

/* Keep unparsed bytes while the connection cannot go on (takes `buf`). */
static void conn_keep(conn_t *c, char *buf, size_t len) {
    c->reading = 0;
    if (len == 0) {
        free(buf);
        return;
    }
    FUZZ_CHECK(c->pending == NULL);
    c->pending = buf;
    c->pending_len = len;
}

/*
 * conn_process() of cz_server.c. `buf` (heap, owned) holds `len` bytes.
 * After every feed the bytes left are moved to a new block and the fed one
 * is freed, so the request views are used only after their input is gone.
 */
static void conn_process(conn_t *c, char *buf, size_t len) {
    const char *data = buf;

    while (c->open) {
        size_t used = 0, rest;
        cz_http_event_t ev;
        char *nb;

        if (c->state == CONN_BUSY || c->closing || conn_queued(c) > C.max_write_buffer) {
            if (!c->closing) {
                /* conn_keep() */
                char *kept = len ? xmemdup(data, len) : NULL;
                free(buf);
                conn_keep(c, kept, len);
                return;
            }
            break;
        }
        if (len == 0)
            break;
        ev = cz_http_parser_feed(&c->parser, data, len, &used);
        FUZZ_CHECK(used <= len);
        rest = len - used;
        nb = rest ? xmemdup(data + used, rest) : NULL;
        free(buf);
        buf = nb;
        data = nb;
        len = rest;
        switch (ev) {
        case CZ_HTTP_NEED_MORE:
            FUZZ_CHECK(len == 0);
            FUZZ_CHECK(used > 0);
            if (c->state == CONN_IDLE)
                c->state = CONN_HEAD;
            break;
        case CZ_HTTP_HEADERS: {
            const cz_http_request_t *req = cz_http_parser_request(&c->parser);
            FUZZ_CHECK(cz_http_parser_in_request(&c->parser));
            check_request(req, 1);
            c->state = CONN_BODY;
            if (req->expect_continue && len == 0) {
                expect_t e = {.status = 100, .keep_alive = 1};
                if (cz_http_buf_append(&c->out, CZ_HTTP_100_CONTINUE,
                                       sizeof(CZ_HTTP_100_CONTINUE) - 1) == CZ_HTTP_OK)
                    ver_expect(&c->v, &e);
            }
            continue;
        }
        case CZ_HTTP_REQUEST: {
            const cz_http_request_t *req = cz_http_parser_request(&c->parser);
            FUZZ_CHECK(!cz_http_parser_in_request(&c->parser));
            check_request(req, 0);
            if (c->nreq < MAX_DIGESTS)
                c->digest[c->nreq] = request_digest(req);
            c->nreq++;
            conn_request(c, req);
            if (!req->keep_alive)
                conn_record(c, END_CLOSE_REQ);
            else if (c->closing)
                conn_record(c, END_CLOSE_OTHER);
            continue;
        }
        case CZ_HTTP_ERROR:
        default: {
            size_t again = 1;
            int st = cz_http_parser_status(&c->parser);
            FUZZ_CHECK(ev == CZ_HTTP_ERROR);
            FUZZ_CHECK(st == 400 || st == 413 || st == 414 || st == 431 || st == 500 ||
                       st == 501 || st == 505);
            FUZZ_CHECK(st != 500 || g_faults > 0); /* 500: out of memory only */
            FUZZ_CHECK(cz_http_parser_reason(&c->parser) != NULL);
            /* sticky */
            FUZZ_CHECK(cz_http_parser_feed(&c->parser, "GET", 3, &again) == CZ_HTTP_ERROR);
            FUZZ_CHECK(again == 0);
            c->error_status = st;
            conn_record(c, END_ERROR);
            c->state = CONN_IDLE;
            c->closing = 1;
            write_error(c, st, NULL, 1, 0, 0);
            c->reading = 0;
            break;
        }
        }
        break;
    }
    free(buf);
}

/* The loop wrote the output: check it and empty the buffer. */
static void conn_flush(conn_t *c) {
    ver_check(&c->v, c->out.data, c->out.len);
    cz_http_buf_reset(&c->out, OUT_KEEP);
}

/* A deferred request is answered: hooks.complete, request_done, conn_resume. */
static void conn_complete(conn_t *c) {
    const cz_http_request_t *req = cz_http_parser_request(&c->parser);
    size_t expected = c->v.expected;

    check_request(req, 0); /* still intact while the request is busy */
    handler(c, req, &c->match);
    request_done(c);
    FUZZ_CHECK(c->v.expected > expected || c->closing); /* as in conn_request() */
}

static void conn_resume(conn_t *c) {
    if (!c->open || c->state == CONN_BUSY)
        return;
    if (conn_queued(c) > C.max_write_buffer)
        return;
    if (c->pending) {
        char *p = c->pending;
        size_t n = c->pending_len;
        c->pending = NULL;
        c->pending_len = 0;
        conn_process(c, p, n);
    }
    if (c->open && !c->pending && c->state != CONN_BUSY && !c->closing)
        c->reading = 1;
}

/* ---- the one-piece reference parse ------------------------------------------------- */

static void reference_parse(const char *in, size_t len, const conn_t *c) {
    cz_http_parser_t p;
    char *copy = xmemdup(in, len);
    const char *data = copy;
    size_t n = 0, left = len;
    int end = END_INPUT, status = 0;

    cz_http_parser_init(&p, g_alloc, &C.limits);
    while (left > 0) {
        size_t used = 0;
        cz_http_event_t ev = cz_http_parser_feed(&p, data, left, &used);
        data += used;
        left -= used;
        if (ev == CZ_HTTP_REQUEST) {
            const cz_http_request_t *r = cz_http_parser_request(&p);
            if (n < MAX_DIGESTS && n < c->nreq && c->digest[n] != request_digest(r)) {
                fprintf(stderr, "split changed request #%zu\n", n);
                FUZZ_CHECK(0);
            }
            n++;
            if (!r->keep_alive) {
                end = END_CLOSE_REQ;
                break;
            }
        } else if (ev == CZ_HTTP_ERROR) {
            end = END_ERROR;
            status = cz_http_parser_status(&p);
            break;
        } else if (ev == CZ_HTTP_NEED_MORE) {
            break;
        }
    }
    cz_http_parser_destroy(&p);
    free(copy);
    if (c->end == END_CLOSE_OTHER) {
        FUZZ_CHECK(c->nreq <= n); /* the server stopped early: a prefix */
        return;
    }
    /* An input broken in two ways may be refused for either, depending on
     * where the reads end (e.g. a target over max_url that also holds a
     * NUL: 414 when the long part arrives first, 400 when the NUL is in
     * the same read): the status may differ, the outcome may not. */
    if (n != c->nreq || end != c->end) {
        fprintf(stderr,
                "split changed the outcome: split %zu requests, end %d, status %d; "
                "whole %zu requests, end %d, status %d\n",
                c->nreq, c->end, c->error_status, n, end, status);
        FUZZ_CHECK(0);
    }
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
    if (!g_router)
        abort();
    for (i = 0; i < NROUTES; i++) {
        const route_t *rt = &g_routes[i];
        if (cz_router_add(g_router, rt->method, strlen(rt->method), rt->pattern,
                          strlen(rt->pattern), (void *)rt, NULL, err, sizeof(err)) != 0) {
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
    conn_t *c;
    uint64_t t;
    long faults;

    if (size < HDR_LEN)
        return 0;
    len = size - HDR_LEN;
    memset(&C, 0, sizeof(C));
    C.opts = data[0];
    set_limits(C.opts & OPT_LIMITS);
    C.max_write_buffer = (C.opts & OPT_SMALL_WBUF) ? 64 : 4u * 1024u * 1024u;
    C.out_max = (C.opts & OPT_SMALL_OUT) ? 300 : 0;
    for (i = 0; i < 3; i++)
        C.split[i] = (size_t)(data[2 + i] & 0x3f) * ((data[2 + i] & 0x80) ? 37 : 1);
    /* the Date cache, at a second taken from the input (clamped to 0..9999 AD) */
    t = fnv(FNV_INIT, data, size < 16 ? size : 16);
    cz_http_date_init(&C.date, (time_t)((int64_t)t >> 24));
    FUZZ_CHECK(strlen(C.date.str) == CZ_HTTP_DATE_LEN);
    FUZZ_CHECK(memcmp(C.date.str + 25, " GMT", 4) == 0 && C.date.str[3] == ',');
    C.datep = (C.opts & OPT_NO_DATE) ? NULL : &C.date;

    start = mem_mark(g_alloc);
    fault_arm(data[1] >= 0x80 ? data[1] - 0x7f : 0);

    c = xmalloc(sizeof(*c));
    memset(c, 0, sizeof(*c));
    cz_http_parser_init(&c->parser, g_alloc, &C.limits);
    cz_http_buf_init(&c->out, g_alloc, C.out_max);
    ver_init(&c->v);
    c->open = 1;
    c->reading = 1;
    c->keep_alive = 1;
    c->http_minor = 1;
    c->state = CONN_IDLE;

    /* reads, as the loop delivers them; a read happens only while reading */
    while (c->open && pos < len) {
        size_t n = C.split[turn++ % 3], guard = 0;

        if (!c->reading || c->closing)
            break;
        if (n == 0 || n > len - pos)
            n = len - pos;
        conn_process(c, xmemdup(in + pos, n), n);
        pos += n;
        conn_flush(c);
        /* deferred answers complete and written output drains, until the
         * connection wants to read again (or closes) */
        while (c->open && !c->closing &&
               (c->state == CONN_BUSY || c->pending || !c->reading)) {
            FUZZ_CHECK(guard++ < 1000000);
            if (c->state == CONN_BUSY)
                conn_complete(c);
            conn_resume(c);
            conn_flush(c);
        }
        if (c->closing)
            c->open = 0;
    }
    if (c->state == CONN_BUSY) { /* EOF while a request is in flight: answer it */
        conn_complete(c);
        conn_flush(c);
    }
    if (!c->closing && c->end == END_INPUT && (C.opts & OPT_STOPPING) == 0)
        FUZZ_CHECK(pos == len);
    if (c->end == END_CLOSE_REQ && (C.opts & OPT_STOPPING))
        c->end = END_CLOSE_OTHER;
    if (c->end == END_INPUT && c->closing)
        c->end = END_CLOSE_OTHER;

    /* no more injected failures: the checks below are about the main run */
    faults = g_faults;
    fault_arm(0);

    /* after any of that, reset must give a clean connection */
    if ((C.opts & OPT_LIMITS) == 0 && faults == 0) {
        static const char ok[] = "GET /x?y HTTP/1.1\r\nHost: a\r\n\r\n";
        size_t used = 0;
        cz_http_parser_reset(&c->parser);
        FUZZ_CHECK(!cz_http_parser_in_request(&c->parser));
        FUZZ_CHECK(cz_http_parser_feed(&c->parser, ok, sizeof(ok) - 1, &used) ==
                   CZ_HTTP_REQUEST);
        FUZZ_CHECK(used == sizeof(ok) - 1);
        FUZZ_CHECK(cz_http_parser_request(&c->parser)->path.len == 2);
    }

    if (g_verbose)
        fprintf(stderr, "fuzz_request: opts 0x%02x, %zu requests, %zu responses, end %d, "
                "status %d, faults %ld, %zu/%zu bytes read\n", C.opts, c->nreq,
                c->v.responses, c->end, c->error_status, faults, pos, len);
    cz_http_parser_destroy(&c->parser);
    cz_http_buf_free(&c->out);
    free(c->pending);
    ver_free(&c->v);

    /* the same bytes in one piece give the same requests */
    if (faults == 0)
        reference_parse(in, len, c);
    free(c);
    mem_expect(g_alloc, start, "request path");
    return 0;
}
