/*
 * cz_http — HTTP/1.1 request assembly (on llhttp) and response serialization.
 *
 * This header is the whole contract of csrc/http/. Two halves:
 *
 *   Request side   cz_http_parser_t turns the bytes of one connection, split
 *                  anywhere, into complete requests, one at a time, in order.
 *                  Strict: anything that could be framed two ways (request
 *                  smuggling) is an error that closes the connection.
 *   Response side  cz_http_response_write() serializes a status line, the
 *                  standard headers, user headers and the body into one
 *                  contiguous buffer (cz_http_buf_t) for a single write.
 *
 * Memory: every allocation goes through cz_memory, request buffers as
 * CZ_MEM_REQUEST, response buffers as CZ_MEM_RESPONSE. Every buffer has a
 * bound. No function here keeps global mutable state: one parser per
 * connection, one date cache per event loop; nothing is thread-safe by itself,
 * nothing needs to be shared between threads.
 */
#ifndef CZ_HTTP_H
#define CZ_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "cz_memory.h"
#include "llhttp.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ===== common ============================================================ */

/* A view of bytes owned by someone else; never NUL-terminated. `base` is
 * never NULL in anything this module hands out (empty views point at ""). */
typedef struct {
    const char *base;
    size_t len;
} cz_http_str_t;

typedef struct {
    cz_http_str_t name;  /* as sent (case kept); a token */
    cz_http_str_t value; /* leading and trailing whitespace removed */
} cz_http_header_t;

/* 1 when `s` is a non-empty RFC 9110 token (method and field names). */
int cz_http_is_token(cz_http_str_t s);

/* 1 when `s` equals `lower` (lower-case, `len` bytes) ignoring ASCII case:
 * how field names are compared. Inline: the parser calls it per field. */
static inline int cz_http_ieq(cz_http_str_t s, const char *lower, size_t len) {
    if (s.len != len) return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s.base[i];
        if (c >= 'A' && c <= 'Z') c = (char)(c + ('a' - 'A'));
        if (c != lower[i]) return 0;
    }
    return 1;
}

/* Standard reason phrase of a status code (RFC 9110), "" when unknown. */
const char *cz_http_reason(int status);

/* ===== request side ======================================================
 *
 * Strictness. llhttp runs with no lenient flag; on top of it this module
 * refuses (status in brackets; after any error the connection is closed):
 *   - a target that is not origin-form ("/..."), or "*" outside OPTIONS,
 *     or holds a '#': absolute-form too, it would let the target's authority
 *     and Host disagree [400];
 *   - more than one SP between the request-line parts [400];
 *   - a protocol other than HTTP/ (llhttp also speaks RTSP/ and ICE/), no
 *     version at all (HTTP/0.9) [400]; versions other than 1.0 and 1.1 that
 *     llhttp parses (0.9, 2.0) and the HTTP/2 preface [400: like every other
 *     request this server cannot frame, rather than 505];
 *   - CONNECT [501];
 *   - a missing Host in HTTP/1.1, more than one Host, a Host that is not
 *     uri-host[:port] [400] (RFC 9112 3.2);
 *   - Transfer-Encoding in HTTP/1.0 [400] (RFC 9112 6.1), together with
 *     Content-Length [400], or other than exactly one field "chunked": with
 *     chunked last (e.g. "gzip, chunked") [501], otherwise [400];
 *   - Content-Length above max_body [413] as soon as the head is complete,
 *     a chunk that would pass it [413] before its data is read.
 * llhttp itself refuses (all [400]): two Content-Length fields, even equal
 * ones; Content-Length with Transfer-Encoding; a bad Content-Length; chunked
 * not last; bad chunk sizes (overflow, sign, spaces, "0x"), missing CRLF
 * after chunk data; obs-fold; whitespace before ':'; bare CR or LF; NUL and
 * other controls; bad method tokens (only methods llhttp knows pass);
 * HTTP/1.2, 3.0 and other unknown versions.
 * Accepted on purpose: the characters | { } ^ " < > and backslash in the
 * target (llhttp allows them; they frame nothing), obs-text in field
 * values, leading empty lines (bounded), and Upgrade requests, served as
 * plain requests (see `upgrade`).
 */

/*
 * Limits of one parser. Exceeding one is an error with the status noted.
 * Zero in a field means "use the default".
 */
typedef struct {
    size_t max_url;          /* request-target bytes                  -> 414 */
    size_t max_header_bytes; /* raw header section (field lines with
                                their CRLFs), and separately the
                                trailer fields of a chunked body      -> 431 */
    size_t max_headers;      /* field lines (and trailer fields)      -> 431 */
    size_t max_body;         /* body bytes after de-chunking; checked
                                against Content-Length at end of head -> 413 */
    size_t retain;           /* a buffer whose capacity grew above this is
                                released when the next request begins, so an
                                idle keep-alive connection holds little */
} cz_http_limits_t;

#define CZ_HTTP_DEFAULT_MAX_URL          8192u
#define CZ_HTTP_DEFAULT_MAX_HEADER_BYTES 16384u
#define CZ_HTTP_DEFAULT_MAX_HEADERS      100u
#define CZ_HTTP_DEFAULT_MAX_BODY         (1024u * 1024u)
#define CZ_HTTP_DEFAULT_RETAIN           16384u

/* Fill `l` with the defaults above. */
void cz_http_limits_default(cz_http_limits_t *l);

/*
 * One parsed request. Every view points into the parser's own buffers (or to
 * static strings) and stays valid until the next cz_http_parser_feed() that
 * begins another request, or cz_http_parser_reset()/destroy().
 */
typedef struct {
    cz_http_str_t method;            /* "GET", ... (static storage) */
    int method_id;                   /* llhttp_method_t: HTTP_GET, HTTP_POST, ... */
    cz_http_str_t target;            /* raw request-target: origin-form, or "*" */
    cz_http_str_t path;              /* target up to the first '?' (not decoded) */
    cz_http_str_t query;             /* after the first '?', without it; may be empty */
    int http_major;                  /* 1 */
    int http_minor;                  /* 0 or 1 */
    const cz_http_header_t *headers; /* in arrival order, duplicates kept */
    size_t num_headers;
    cz_http_str_t body;      /* whole body, de-chunked; complete only at
                                CZ_HTTP_REQUEST (empty at CZ_HTTP_HEADERS);
                                one piece at CZ_HTTP_BODY, empty at the
                                REQUEST of a passed body */
    uint64_t content_length; /* declared Content-Length, 0 when none */
    uint8_t has_body;        /* Content-Length > 0 or chunked */
    uint8_t chunked;         /* Transfer-Encoding: chunked */
    uint8_t keep_alive;      /* llhttp_should_keep_alive(): HTTP/1.1 unless
                                "Connection: close"; HTTP/1.0 only with
                                "Connection: keep-alive"; a "close" option
                                wins over "keep-alive" in both */
    uint8_t expect_continue; /* HTTP/1.1, "Expect: 100-continue" and a body is
                                to come: see CZ_HTTP_HEADERS */
    uint8_t upgrade;         /* client asked for Upgrade: ignored, the request
                                is served as plain HTTP/1.1 (RFC 9110 7.8 lets
                                a server ignore Upgrade); never answer 101 */
} cz_http_request_t;

/* What cz_http_parser_feed() stopped for. */
typedef enum {
    /* All `len` bytes consumed, no request yet: feed more when it arrives. */
    CZ_HTTP_NEED_MORE = 0,
    /*
     * The head of a request that has a body is complete; the body has not
     * been read (parsing paused right after the blank line). Request fields
     * except `body` are set. If req->expect_continue, the server may now
     * write CZ_HTTP_100_CONTINUE (RFC 9110 10.1.1; it may skip it when body
     * bytes are already in hand, i.e. *consumed < len). Then feed the rest.
     */
    CZ_HTTP_HEADERS,
    /*
     * A complete request (body included). Parsing is paused right after it:
     * bytes past *consumed belong to the next (pipelined) request; keep them
     * and feed them once this request is answered. When req->keep_alive is 0
     * the connection must be closed after the response: do not feed again.
     */
    CZ_HTTP_REQUEST,
    /*
     * After cz_http_parser_pass_body(): one piece of the body (de-chunked),
     * req->body a view into the bytes just fed, valid until the next feed.
     * Parsing is paused right after it; feed the rest (an empty feed may
     * complete the request: the piece was its last).
     */
    CZ_HTTP_BODY,
    /*
     * The request is invalid or over a limit. Answer
     * cz_http_parser_status() (cz_http_write_error() builds it) and close.
     * The parser stays in this state: every later feed returns it again.
     */
    CZ_HTTP_ERROR
} cz_http_event_t;

/*
 * The parser of one connection. Embed it (libuv style) or allocate it; the
 * fields are private except through the functions below.
 */
typedef struct cz_http_parser {
    llhttp_t ll;
    cz_allocator_t *alloc;
    cz_http_limits_t limits;
    cz_http_request_t req;

    /* URL, then header names and values, back to back (views are made when
     * the head is complete, because the buffer may move while it grows). */
    char *head;
    size_t head_len, head_cap;
    size_t url_len;         /* head[0 .. url_len) is the target */
    size_t mark;            /* start of the name or value being read */
    cz_http_header_t *hdrs; /* .len set while parsing, .base at the end */
    size_t nhdrs, hdrs_cap;

    char *body;
    size_t body_len, body_cap;

    /* Stream positions (bytes since init/reset) for checks that span
     * reads: single SP in the request line, raw head size. */
    const char *cur;    /* data of the llhttp_execute() call running */
    uint64_t base;      /* position of cur[0] */
    uint64_t msg_start; /* where the current request's bytes began */
    uint64_t method_end, url_end, fields_start;
    size_t trailer_bytes, trailer_fields, ext_bytes;

    int status;         /* error status, 0 while fine */
    const char *reason; /* static string, NULL while fine */
    uint8_t state;      /* private cz_http_state enum */
    uint8_t event;      /* event of the pause being returned */
    uint8_t seen;       /* private bits: url, protocol, fields_start */
    uint8_t hosts, tes; /* Host / Transfer-Encoding field count (sat.) */
    uint8_t te_chunked; /* sole Transfer-Encoding is exactly "chunked" */
    uint8_t expect;     /* "Expect: 100-continue" seen */
    uint8_t pass;       /* body handed out piece by piece, not stored */
    uint8_t proto_len;
    char proto[4]; /* protocol name, must be "HTTP" */
} cz_http_parser_t;

/* "HTTP/1.1 100 Continue" interim response, for CZ_HTTP_HEADERS. */
#define CZ_HTTP_100_CONTINUE "HTTP/1.1 100 Continue\r\n\r\n"

/*
 * Set up `p`; takes no memory yet (buffers are made on first use).
 * `limits` NULL means defaults; zero fields mean their default.
 */
void cz_http_parser_init(cz_http_parser_t *p, cz_allocator_t *a, const cz_http_limits_t *limits);

/* Start over for a new connection: any request and error are forgotten;
 * buffers are kept unless above limits.retain. */
void cz_http_parser_reset(cz_http_parser_t *p);

/* The last request has been answered and its views are no longer used:
 * buffers it grew above limits.retain are released now, so that a
 * keep-alive connection idling after a big request holds little. */
void cz_http_parser_done(cz_http_parser_t *p);

/* Free everything `p` holds. `p` may be init'ed again afterwards. */
void cz_http_parser_destroy(cz_http_parser_t *p);

/*
 * Parse `data[0..len)`, bytes as they came from the socket, split anywhere.
 * Stops at the first event; *consumed tells how many bytes were used (the
 * caller feeds data + *consumed later; those bytes are not copied). A call
 * with len 0 just acknowledges the previous event.
 */
cz_http_event_t cz_http_parser_feed(cz_http_parser_t *p, const char *data, size_t len, size_t *consumed);

/* The request of the last CZ_HTTP_HEADERS / CZ_HTTP_REQUEST event. */
const cz_http_request_t *cz_http_parser_request(const cz_http_parser_t *p);

/* 1 while part of a request has been received (head or body pending):
 * the connection is not idle (keep-alive timeout vs. request timeout). */
int cz_http_parser_in_request(const cz_http_parser_t *p);

/* Body bytes (de-chunked) received so far of the current request. */
size_t cz_http_parser_body_len(const cz_http_parser_t *p);

/* Right after CZ_HTTP_HEADERS: hand this request's body out piece by piece
 * (CZ_HTTP_BODY events, zero-copy views) rather than storing it; limits
 * still apply to the total. -1 at any other time. */
int cz_http_parser_pass_body(cz_http_parser_t *p);

/* After CZ_HTTP_ERROR: the status to answer (400, 413, 414, 431, 500 or
 * 501) and a short reason for logs (static). 0 / NULL before any error. */
int cz_http_parser_status(const cz_http_parser_t *p);
const char *cz_http_parser_reason(const cz_http_parser_t *p);

/* First header named `name` (case-insensitive), or NULL. */
const cz_http_str_t *cz_http_request_header(const cz_http_request_t *r, const char *name, size_t name_len);

/* ===== response side ===================================================== */

/* Result codes of the response side. */
enum {
    CZ_HTTP_OK = 0,
    CZ_HTTP_EINVAL = -1, /* bad status, reason, header name or value: the
                            server should answer 500 instead */
    CZ_HTTP_ENOMEM = -2, /* allocation failed */
    CZ_HTTP_E2BIG = -3   /* would exceed the buffer's bound */
};

/* A growable output buffer (CZ_MEM_RESPONSE). Appends are all-or-nothing:
 * on error `len` is what it was. */
typedef struct {
    char *data;
    size_t len, cap;
    size_t max; /* bound on cap */
    cz_allocator_t *alloc;
} cz_http_buf_t;

/* `max` 0 means SIZE_MAX/2. Takes no memory yet. */
void cz_http_buf_init(cz_http_buf_t *b, cz_allocator_t *a, size_t max);
/* Grow the storage for `extra` more bytes: cz_http_buf_reserve's slow half. */
int cz_http_buf_grow(cz_http_buf_t *b, size_t extra);
/* Make room for `extra` more bytes. CZ_HTTP_OK / ENOMEM / E2BIG. Inline:
 * most pieces (a header, a JSON token) fit, and cap never exceeds max. */
static inline int cz_http_buf_reserve(cz_http_buf_t *b, size_t extra) {
    return extra <= b->cap - b->len ? CZ_HTTP_OK : cz_http_buf_grow(b, extra);
}
/* Append bytes (e.g. a streamed body part). */
static inline int cz_http_buf_append(cz_http_buf_t *b, const void *data, size_t len) {
    int rc = cz_http_buf_reserve(b, len);
    if (rc != CZ_HTTP_OK) return rc;
    if (len) memcpy(b->data + b->len, data, len);
    b->len += len;
    return CZ_HTTP_OK;
}
/* Empty the buffer for reuse; its storage is freed if cap > keep. */
void cz_http_buf_reset(cz_http_buf_t *b, size_t keep);
void cz_http_buf_free(cz_http_buf_t *b);

/*
 * IMF-fixdate cache ("Sun, 06 Nov 1994 08:49:37 GMT"). One per event loop;
 * the server calls cz_http_date_update() from a timer or once per loop
 * iteration; the string is rebuilt only when the second changed.
 */
typedef struct {
    int64_t sec;  /* second the string shows; INT64_MIN: none */
    char str[32]; /* NUL-terminated, CZ_HTTP_DATE_LEN chars */
} cz_http_date_t;

#define CZ_HTTP_DATE_LEN 29

void cz_http_date_init(cz_http_date_t *d, time_t now);
/* Returns 1 when the string changed, 0 when `now` is the cached second. */
int cz_http_date_update(cz_http_date_t *d, time_t now);

/* One response. Zero-initialize, then fill what applies. */
typedef struct {
    int status;                      /* 100..999 */
    cz_http_str_t reason;            /* base NULL: cz_http_reason(status) */
    const cz_http_header_t *headers; /* user headers, written in order */
    size_t num_headers;
    cz_http_str_t content_type; /* base NULL: no Content-Type unless a
                                   user header has one */
    cz_http_str_t body;         /* base may be NULL when the body is not
                                   written (head, write_head): only its
                                   length is used then */
    int http_minor;             /* of the request: 1, or 0 for HTTP/1.0 */
    int keep_alive;             /* 0: "Connection: close"; 1 on an HTTP/1.0
                                   request: "Connection: keep-alive" */
    int head;                   /* answering HEAD: Content-Length of the
                                   body, body not written */
    int framing;                /* CZ_HTTP_FRAME_*: how the body ends */
} cz_http_response_t;

/* How a response's body is delimited (cz_http_response_t.framing). */
enum {
    CZ_HTTP_FRAME_LENGTH = 0, /* Content-Length: body.len (the default) */
    CZ_HTTP_FRAME_CHUNKED,    /* "Transfer-Encoding: chunked", no body here:
                                 pieces follow with cz_http_write_chunk() */
    CZ_HTTP_FRAME_CLOSE,      /* no length, no body here: the body ends with
                                 the connection ("Connection: close") */
    CZ_HTTP_FRAME_UPGRADE     /* a 101: "Connection: Upgrade", nothing else */
};

/*
 * Append the response to `out`: "HTTP/1.1 <status> <reason>", Date (when
 * `date` is not NULL), "Server: catzilla", user headers, Content-Type,
 * Content-Length, Connection, blank line, body. Appending lets pipelined
 * responses share one write.
 *
 * User headers: a name that is not a token, or a value with a control
 * character (CR, LF, NUL, ... ; HTAB is allowed) -> CZ_HTTP_EINVAL, nothing
 * written (header injection). Content-Length, Transfer-Encoding and
 * Connection from user headers are dropped: framing and connection handling
 * are the serializer's and the server's. A user Date, Server or Content-Type
 * replaces the standard one.
 *
 * 1xx, 204 and 304 are written without Content-Length and without body
 * (RFC 9110 8.6, 15.3.5, 15.4.5); otherwise the framing decides:
 * Content-Length (the default), Transfer-Encoding: chunked, or neither
 * with "Connection: close" (CZ_HTTP_FRAME_CLOSE).
 */
int cz_http_response_write(cz_http_buf_t *out, const cz_http_date_t *date, const cz_http_response_t *r);

/*
 * As cz_http_response_write() without the body: only r->body.len is used
 * (Content-Length). For large bodies that the server writes from their own
 * memory (uv_write with two buffers) instead of copying them.
 */
int cz_http_response_write_head(cz_http_buf_t *out, const cz_http_date_t *date, const cz_http_response_t *r);

/*
 * Append one chunk of a CZ_HTTP_FRAME_CHUNKED body ("<hex>\r\n<data>\r\n");
 * `len` 0 appends the last chunk ("0\r\n\r\n"). All-or-nothing.
 */
int cz_http_write_chunk(cz_http_buf_t *out, const void *data, size_t len);

/*
 * Append a canned error response with a JSON body in FastAPI's shape,
 * {"detail":"<reason phrase>"}, e.g. for 400, 404, 405, 413, 414, 431, 500,
 * 503 (any status 400..599 works). `allow` (may be NULL) is the Allow header
 * of a 405, e.g. "GET, HEAD". For parser errors pass http_minor 1 and
 * keep_alive 0.
 */
int cz_http_write_error(cz_http_buf_t *out, const cz_http_date_t *date, int status, const char *allow, int http_minor,
                        int keep_alive, int head);

#ifdef __cplusplus
}
#endif

#endif /* CZ_HTTP_H */
