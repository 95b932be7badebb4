/*
 * cz_request — request assembly on top of llhttp (strict: no lenient flag).
 *
 * llhttp validates the syntax and the framing; this file stores the request
 * (URL and fields in one bounded arena, body in a bounded buffer), enforces
 * the limits, and adds the checks llhttp leaves to the application: target
 * form, single SP in the request line, protocol and version, Host, the exact
 * Transfer-Encoding, CONNECT. See cz_http.h for the contract.
 *
 * Parsing pauses (llhttp_pause style, by returning HPE_PAUSED from the
 * callback) after each complete request and after the head of a request
 * with a body, so the server handles requests one at a time.
 */
#include "cz_http.h"

#include <string.h>

enum cz_http_state {
    ST_IDLE = 0, /* between requests: nothing of the next one seen yet */
    ST_HEAD,     /* request line and fields */
    ST_BODY,     /* head complete: body and trailer fields */
    ST_DONE,     /* request handed out; next feed starts the next one */
    ST_ERROR
};

enum {
    SEEN_URL = 1,   /* first URL byte checked */
    SEEN_PROTO = 2, /* first protocol byte checked */
    SEEN_FIELDS = 4 /* fields_start known */
};

/* Request line bytes besides the target: leading empty lines a client may
 * send after a body (RFC 9112 2.2), the longest method llhttp knows
 * ("VERSION-CONTROL"), two SP, "HTTP/1.1", CRLF. */
#define REQUEST_LINE_SLACK 64u

#define HEAD_FIRST_CAP 1024u
#define BODY_FIRST_CAP 4096u
/* A declared Content-Length up to this is allocated at once (one
 * allocation, no waste); a larger one starts here and doubles. */
#define BODY_CL_FIRST_MAX (64u * 1024u)
#define HDRS_FIRST_CAP    16u
#define LIMIT_MAX         (SIZE_MAX / 4)

/* ---- small helpers ------------------------------------------------------ */

static cz_http_parser_t *parser_of(llhttp_t *ll) {
    return (cz_http_parser_t *)ll->data;
}

/* Stream position of a pointer inside the data being executed. */
static uint64_t pos_of(const cz_http_parser_t *p, const char *at) {
    return p->base + (uint64_t)(at - p->cur);
}

static int lower(int c) {
    return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

/* Case-insensitive equality of `s[0..n)` with a lower-case literal. */
#define IEQ(s, n, lit) cz_http_ieq((cz_http_str_t){(s), (n)}, lit, sizeof(lit) - 1)

/* Record an error; the parser stays in ST_ERROR until reset. Returns the
 * value a data callback gives llhttp to stop it (non-data callbacks return
 * -1, see fail_cb). */
static int fail(cz_http_parser_t *p, int status, const char *reason) {
    if (p->state != ST_ERROR) {
        p->state = ST_ERROR;
        p->status = status;
        p->reason = reason;
        p->req.keep_alive = 0;
    }
    return HPE_USER;
}

static int fail_cb(cz_http_parser_t *p, int status, const char *reason) {
    fail(p, status, reason);
    return -1;
}

/*
 * Grow a block to hold `need` elements of `elem` bytes: doubling, at least
 * `first`, at most `limit` (callers guarantee need <= limit). Returns the
 * block, or NULL with the old block untouched.
 */
static void *grow(cz_allocator_t *a, void *ptr, size_t *cap, size_t need, size_t limit, size_t first, size_t elem) {
    size_t n = *cap > limit / 2 ? limit : *cap * 2;
    void *np;

    if (n < first) n = first;
    if (n < need) n = need;
    if (n > limit) n = limit;
    if (n > SIZE_MAX / elem) return NULL;
    np = ptr ? cz_realloc(a, CZ_MEM_REQUEST, ptr, n * elem) : cz_malloc(a, CZ_MEM_REQUEST, n * elem);
    if (np) *cap = n;
    return np;
}

/* Append to the head arena. Callers checked the limits, so this is bounded
 * by max_url + max_header_bytes. */
static int head_append(cz_http_parser_t *p, const char *at, size_t len) {
    size_t need = p->head_len + len;

    if (need > p->head_cap) {
        size_t limit = p->limits.max_url + p->limits.max_header_bytes;
        char *nb = grow(p->alloc, p->head, &p->head_cap, need, limit, HEAD_FIRST_CAP, 1);
        if (!nb) return fail(p, 500, "out of memory");
        p->head = nb;
    }
    memcpy(p->head + p->head_len, at, len);
    p->head_len = need;
    return 0;
}

static void free_head(cz_http_parser_t *p) {
    cz_free(p->alloc, CZ_MEM_REQUEST, p->head);
    p->head = NULL;
    p->head_cap = 0;
}

static void free_body(cz_http_parser_t *p) {
    cz_free(p->alloc, CZ_MEM_REQUEST, p->body);
    p->body = NULL;
    p->body_cap = 0;
}

/* Keep buffers for the next request unless one request made them big. */
static void release_big(cz_http_parser_t *p) {
    if (p->head_cap > p->limits.retain) free_head(p);
    if (p->body_cap > p->limits.retain) free_body(p);
}

/* ---- request line ------------------------------------------------------- */

static int on_message_begin(llhttp_t *ll) {
    cz_http_parser_t *p = parser_of(ll);

    release_big(p);
    p->head_len = p->url_len = p->mark = 0;
    p->nhdrs = 0;
    p->body_len = 0;
    p->pass = 0;
    p->trailer_bytes = p->trailer_fields = p->ext_bytes = 0;
    p->seen = 0;
    p->hosts = p->tes = p->te_chunked = p->expect = 0;
    p->proto_len = 0;
    memset(&p->req, 0, sizeof(p->req));
    p->state = ST_HEAD;
    return 0;
}

static int on_method(llhttp_t *ll, const char *at, size_t len) {
    cz_http_parser_t *p = parser_of(ll);

    p->method_end = pos_of(p, at + len);
    return 0;
}

static int on_method_complete(llhttp_t *ll) {
    /* A tunnel is not something this server offers; llhttp would also hand
     * the rest of the connection over as opaque bytes. */
    if (ll->method == HTTP_CONNECT) return fail_cb(parser_of(ll), 501, "CONNECT not supported");
    /* "PRI * HTTP/2.0" only starts the HTTP/2 connection preface */
    if (ll->method == HTTP_PRI) return fail_cb(parser_of(ll), 400, "HTTP/2 connection preface");
    return 0;
}

static int on_url(llhttp_t *ll, const char *at, size_t len) {
    cz_http_parser_t *p = parser_of(ll);

    /* llhttp accepts several SP between method and target; one exactly is
     * the grammar, and a stricter parser in front would disagree. */
    if (!(p->seen & SEEN_URL)) {
        p->seen |= SEEN_URL;
        if (pos_of(p, at) != p->method_end + 1) return fail(p, 400, "extra whitespace in request line");
    }
    if (len > p->limits.max_url - p->head_len) return fail(p, 414, "request-target too long");
    p->url_end = pos_of(p, at + len);
    return head_append(p, at, len);
}

/* Origin-form only ("/..."), or "*" for OPTIONS. Absolute-form would make
 * the target's authority and Host disagree; authority-form is CONNECT's. */
static int check_target(cz_http_parser_t *p) {
    const char *t = p->head;
    size_t n = p->url_len;

    if (n == 1 && t[0] == '*') {
        if (p->ll.method != HTTP_OPTIONS) return fail_cb(p, 400, "'*' target is only for OPTIONS");
        return 0;
    }
    if (n == 0 || t[0] != '/') return fail_cb(p, 400, "request-target must start with '/'");
    if (memchr(t, '#', n)) return fail_cb(p, 400, "fragment in request-target");
    return 0;
}

static int on_url_complete(llhttp_t *ll) {
    cz_http_parser_t *p = parser_of(ll);

    p->url_len = p->mark = p->head_len;
    return check_target(p);
}

static int on_protocol(llhttp_t *ll, const char *at, size_t len) {
    cz_http_parser_t *p = parser_of(ll);

    if (!(p->seen & SEEN_PROTO)) {
        p->seen |= SEEN_PROTO;
        if (pos_of(p, at) != p->url_end + 1) return fail(p, 400, "extra whitespace in request line");
    }
    /* llhttp also speaks RTSP/ and ICE/; only HTTP/ is ours. */
    if (len > sizeof(p->proto) - p->proto_len) return fail(p, 400, "protocol is not HTTP");
    memcpy(p->proto + p->proto_len, at, len);
    p->proto_len = (uint8_t)(p->proto_len + len);
    return 0;
}

static int on_protocol_complete(llhttp_t *ll) {
    cz_http_parser_t *p = parser_of(ll);

    if (p->proto_len != 4 || memcmp(p->proto, "HTTP", 4) != 0) return fail_cb(p, 400, "protocol is not HTTP");
    return 0;
}

static int on_version(llhttp_t *ll, const char *at, size_t len) {
    cz_http_parser_t *p = parser_of(ll);

    /* The request line up to its version, leading empty lines included, is
     * bounded by check_head_size() only where a read ends inside it, and
     * leading empty lines make no callback: in one read they were not
     * bounded at all, so the same bytes were refused or accepted depending
     * on how they were split (found by tests/fuzz). Check it here too. */
    if (!(p->seen & SEEN_FIELDS) && pos_of(p, at) - p->msg_start > (uint64_t)p->limits.max_url + REQUEST_LINE_SLACK)
        return fail(p, 400, "request line too long");
    /* strict llhttp requires CRLF right after the version */
    p->fields_start = pos_of(p, at + len) + 2;
    p->seen |= SEEN_FIELDS;
    return 0;
}

static int on_version_complete(llhttp_t *ll) {
    /* llhttp accepts 0.9, 1.0, 1.1 and 2.0; HTTP/2 needs its own framing
     * and HTTP/0.9 has no headers to frame anything. */
    if (ll->http_major != 1 || ll->http_minor > 1) return fail_cb(parser_of(ll), 400, "HTTP version not supported");
    return 0;
}

/* ---- header fields ------------------------------------------------------ */

/* Trailer fields (after a chunked body) are counted and dropped: nothing in
 * them may change the framing, and the head is already handed out. */
static int trailer_bytes(cz_http_parser_t *p, size_t len) {
    if (len > p->limits.max_header_bytes - p->trailer_bytes) return fail(p, 431, "trailer section too large");
    p->trailer_bytes += len;
    return 0;
}

/*
 * Bound the raw size of the header section, whitespace included (this also
 * bounds the head arena). `due` is the least that must still follow in the
 * line (":" CRLF after a name, CRLF after a value), so a line is measured
 * whole as soon as its value is read.
 */
static int field_bytes(cz_http_parser_t *p, const char *at, size_t len, unsigned due) {
    if (pos_of(p, at + len) + due - p->fields_start > p->limits.max_header_bytes)
        return fail(p, 431, "header section too large");
    return head_append(p, at, len);
}

static int on_header_field(llhttp_t *ll, const char *at, size_t len) {
    cz_http_parser_t *p = parser_of(ll);

    if (p->state == ST_BODY) return trailer_bytes(p, len);
    return field_bytes(p, at, len, 3);
}

static int on_header_value(llhttp_t *ll, const char *at, size_t len) {
    cz_http_parser_t *p = parser_of(ll);

    if (p->state == ST_BODY) return trailer_bytes(p, len);
    return field_bytes(p, at, len, 2);
}

static int on_header_field_complete(llhttp_t *ll) {
    cz_http_parser_t *p = parser_of(ll);

    if (p->state == ST_BODY) return 0;
    if (p->nhdrs >= p->limits.max_headers) return fail_cb(p, 431, "too many header fields");
    if (p->nhdrs == p->hdrs_cap) {
        cz_http_header_t *nh =
            grow(p->alloc, p->hdrs, &p->hdrs_cap, p->nhdrs + 1, p->limits.max_headers, HDRS_FIRST_CAP, sizeof(*nh));
        if (!nh) return fail_cb(p, 500, "out of memory");
        p->hdrs = nh;
    }
    p->hdrs[p->nhdrs].name.len = p->head_len - p->mark;
    p->mark = p->head_len;
    return 0;
}

/* Host = uri-host [ ":" port ] (RFC 9112 3.2, RFC 3986 3.2.2); empty is
 * allowed. Anything else (a '/', '@', SP, ...) means two components could
 * read two different authorities out of it: 400. */
static int valid_host(const char *s, size_t n) {
    size_t i = 0;

    if (n && s[0] == '[') { /* IP-literal: hex, ':', '.', IPvFuture letters */
        for (i = 1; i < n && s[i] != ']'; i++) {
            unsigned char c = (unsigned char)s[i];
            if (!(c == ':' || c == '.' || (c >= '0' && c <= '9') || (lower(c) >= 'a' && lower(c) <= 'z'))) return 0;
        }
        if (i == n) return 0;
        i++;
    } else { /* reg-name / IPv4: unreserved, pct-encoded, sub-delims */
        for (; i < n && s[i] != ':'; i++) {
            unsigned char c = (unsigned char)s[i];
            if (!((c >= '0' && c <= '9') || (lower(c) >= 'a' && lower(c) <= 'z') || c == '.' ||
                  (c != '\0' && strchr("-._~%!$&'()*+,;=", c))))
                return 0;
        }
    }
    if (i == n) return 1;
    if (s[i++] != ':') return 0;
    for (; i < n; i++) /* port = *DIGIT */
        if (s[i] < '0' || s[i] > '9') return 0;
    return 1;
}

static uint8_t sat_inc(uint8_t v) {
    return v == UINT8_MAX ? v : (uint8_t)(v + 1);
}

/*
 * A name that is not Content-Length or Transfer-Encoding but becomes one when
 * '_' is read as '-' and runs of them as one ("Transfer_Encoding",
 * "Content--Length"). A front end that folds names that way (CGI-style
 * mappings do) would frame the request differently from us: reject it.
 */
static int framing_lookalike(const char *name, size_t n) {
    /* Folding keeps the first letter and never lengthens a name. */
    if (n < 14 || (lower((unsigned char)name[0]) != 'c' && lower((unsigned char)name[0]) != 't')) return 0;
    char folded[sizeof("transfer-encoding")] = {0};
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char c = (char)lower((unsigned char)name[i]);
        if (c == '_') c = '-';
        if (c == '-' && k > 0 && folded[k - 1] == '-') continue;
        if (k == sizeof(folded) - 1) return 0;
        folded[k++] = c;
    }
    int framing = (k == 14 && memcmp(folded, "content-length", 14) == 0) ||
                  (k == 17 && memcmp(folded, "transfer-encoding", 17) == 0);
    return framing && !IEQ(name, n, "content-length") && !IEQ(name, n, "transfer-encoding");
}

/* Remember what the end-of-head checks need. */
static int inspect_field(cz_http_parser_t *p, const char *name, size_t nlen, const char *value, size_t vlen) {
    if (framing_lookalike(name, nlen)) {
        return fail_cb(p, 400, "header name mimics a framing header");
    } else if (IEQ(name, nlen, "host")) {
        p->hosts = sat_inc(p->hosts);
        if (!valid_host(value, vlen)) return fail_cb(p, 400, "invalid Host");
    } else if (IEQ(name, nlen, "transfer-encoding")) {
        p->tes = sat_inc(p->tes);
        p->te_chunked = (uint8_t)IEQ(value, vlen, "chunked");
    } else if (IEQ(name, nlen, "expect")) {
        if (IEQ(value, vlen, "100-continue")) p->expect = 1;
    }
    return 0;
}

static int on_header_value_complete(llhttp_t *ll) {
    cz_http_parser_t *p = parser_of(ll);
    cz_http_header_t *h;

    if (p->state == ST_BODY) {
        if (++p->trailer_fields > p->limits.max_headers) return fail_cb(p, 431, "too many trailer fields");
        return 0;
    }
    /* llhttp drops leading OWS but keeps trailing OWS; drop it from the
     * arena so names and values stay back to back. */
    while (p->head_len > p->mark && (p->head[p->head_len - 1] == ' ' || p->head[p->head_len - 1] == '\t'))
        p->head_len--;
    h = &p->hdrs[p->nhdrs++];
    h->value.len = p->head_len - p->mark;
    p->mark = p->head_len;
    return inspect_field(p, p->head + p->mark - h->value.len - h->name.len, h->name.len,
                         p->head + p->mark - h->value.len, h->value.len);
}

/* ---- end of head -------------------------------------------------------- */

/* Checks RFC 9112 puts on the application, in the order of their section. */
static int check_head(cz_http_parser_t *p) {
    const llhttp_t *ll = &p->ll;

    if (!(p->seen & SEEN_PROTO)) return fail_cb(p, 400, "missing HTTP version");
    if (p->hosts > 1) return fail_cb(p, 400, "multiple Host fields");
    if (p->hosts == 0 && ll->http_minor == 1) return fail_cb(p, 400, "missing Host");
    if (p->tes) {
        /* RFC 9112 6.1: HTTP/1.0 framing with Transfer-Encoding is faulty */
        if (ll->http_minor == 0) return fail_cb(p, 400, "Transfer-Encoding in HTTP/1.0");
        if (ll->flags & F_CONTENT_LENGTH) return fail_cb(p, 400, "Content-Length with Transfer-Encoding");
        if (p->tes != 1 || !p->te_chunked)
            return (ll->flags & F_CHUNKED) ? fail_cb(p, 501, "unsupported transfer coding")
                                           : fail_cb(p, 400, "invalid Transfer-Encoding");
    }
    if ((ll->flags & F_CONTENT_LENGTH) && ll->content_length > p->limits.max_body)
        return fail_cb(p, 413, "body too large");
    return 0;
}

/* Turn the arena offsets into views; the arena no longer moves. */
static void build_request(cz_http_parser_t *p) {
    cz_http_request_t *r = &p->req;
    const llhttp_t *ll = &p->ll;
    const char *cur = p->head + p->url_len;
    const char *q;
    size_t i;

    r->method_id = ll->method;
    r->method.base = llhttp_method_name((llhttp_method_t)ll->method);
    r->method.len = strlen(r->method.base);
    r->target.base = p->head;
    r->target.len = p->url_len;
    q = memchr(p->head, '?', p->url_len);
    r->path.base = p->head;
    r->path.len = q ? (size_t)(q - p->head) : p->url_len;
    r->query.base = q ? q + 1 : p->head + p->url_len;
    r->query.len = p->url_len - r->path.len - (q ? 1 : 0);
    r->http_major = ll->http_major;
    r->http_minor = ll->http_minor;
    for (i = 0; i < p->nhdrs; i++) {
        p->hdrs[i].name.base = cur;
        cur += p->hdrs[i].name.len;
        p->hdrs[i].value.base = cur;
        cur += p->hdrs[i].value.len;
    }
    r->headers = p->hdrs;
    r->num_headers = p->nhdrs;
    r->body.base = "";
    r->body.len = 0;
    r->chunked = (ll->flags & F_CHUNKED) ? 1 : 0;
    r->content_length = (ll->flags & F_CONTENT_LENGTH) ? ll->content_length : 0;
    r->has_body = r->chunked || r->content_length > 0;
    /* llhttp lets "keep-alive" win over "close" in HTTP/1.0; close wins
     * here whatever the version (RFC 9112 9.3) */
    r->keep_alive = llhttp_should_keep_alive(ll) && !(ll->flags & F_CONNECTION_CLOSE);
    r->expect_continue = p->expect && r->http_minor == 1 && r->has_body;
    r->upgrade = ll->upgrade;
}

static int on_headers_complete(llhttp_t *ll) {
    cz_http_parser_t *p = parser_of(ll);

    if (check_head(p) != 0) return -1;
    build_request(p);
    p->state = ST_BODY;
    if (!p->req.has_body) return 0; /* message complete follows at once */
    p->event = CZ_HTTP_HEADERS;
    return HPE_PAUSED;
}

/* ---- body --------------------------------------------------------------- */

static int on_chunk_header(llhttp_t *ll) {
    cz_http_parser_t *p = parser_of(ll);

    /* content_length holds this chunk's size: refuse before reading it */
    if (ll->content_length > p->limits.max_body - p->body_len) return fail_cb(p, 413, "body too large");
    return 0;
}

static int on_chunk_extension(llhttp_t *ll, const char *at, size_t len) {
    cz_http_parser_t *p = parser_of(ll);

    (void)at;
    /* never stored, but a client must not stream them forever */
    if (len > p->limits.max_header_bytes - p->ext_bytes) return fail(p, 400, "chunk extensions too long");
    p->ext_bytes += len;
    return 0;
}

static int on_body(llhttp_t *ll, const char *at, size_t len) {
    cz_http_parser_t *p = parser_of(ll);
    size_t need;

    if (len > p->limits.max_body - p->body_len) return fail(p, 413, "body too large");
    if (p->pass) { /* handed out as a view: CZ_HTTP_BODY (llhttp may report empty spans) */
        if (len == 0) return 0;
        p->body_len += len;
        p->req.body.base = at;
        p->req.body.len = len;
        p->event = CZ_HTTP_BODY;
        return HPE_PAUSED;
    }
    need = p->body_len + len;
    if (need > p->body_cap) {
        /* a declared length is the exact bound; grow toward it only as
         * bytes arrive, so a lying client does not make us reserve it */
        size_t limit = p->req.chunked ? p->limits.max_body : (size_t)p->req.content_length;
        size_t first = p->req.chunked ? BODY_FIRST_CAP : limit < BODY_CL_FIRST_MAX ? limit : BODY_CL_FIRST_MAX;
        char *nb = grow(p->alloc, p->body, &p->body_cap, need, limit, first, 1);
        if (!nb) return fail(p, 500, "out of memory");
        p->body = nb;
    }
    memcpy(p->body + p->body_len, at, len);
    p->body_len = need;
    return 0;
}

static int on_message_complete(llhttp_t *ll) {
    cz_http_parser_t *p = parser_of(ll);
    cz_http_request_t *r = &p->req;

    r->body.base = "";
    r->body.len = 0;
    if (p->body_len && !p->pass) {
        r->body.base = p->body;
        r->body.len = p->body_len;
    }
    /* llhttp also reads Connection from trailer fields; agree with it, or
     * it would refuse the next request while we said keep-alive. */
    r->keep_alive = r->keep_alive && llhttp_should_keep_alive(ll);
    p->state = ST_DONE;
    p->event = CZ_HTTP_REQUEST;
    return HPE_PAUSED;
}

static const llhttp_settings_t cz_settings = {
    .on_message_begin = on_message_begin,
    .on_method = on_method,
    .on_url = on_url,
    .on_protocol = on_protocol,
    .on_version = on_version,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_chunk_extension_name = on_chunk_extension,
    .on_chunk_extension_value = on_chunk_extension,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
    .on_protocol_complete = on_protocol_complete,
    .on_url_complete = on_url_complete,
    .on_method_complete = on_method_complete,
    .on_version_complete = on_version_complete,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value_complete = on_header_value_complete,
    .on_chunk_header = on_chunk_header,
};

/* ---- public ------------------------------------------------------------- */

void cz_http_limits_default(cz_http_limits_t *l) {
    l->max_url = CZ_HTTP_DEFAULT_MAX_URL;
    l->max_header_bytes = CZ_HTTP_DEFAULT_MAX_HEADER_BYTES;
    l->max_headers = CZ_HTTP_DEFAULT_MAX_HEADERS;
    l->max_body = CZ_HTTP_DEFAULT_MAX_BODY;
    l->retain = CZ_HTTP_DEFAULT_RETAIN;
}

/* Zero means default; absurd values are cut so that sums of limits (the
 * head arena holds max_url + max_header_bytes) cannot overflow. */
static size_t pick(size_t v, size_t dflt) {
    return v == 0 ? dflt : v > LIMIT_MAX ? LIMIT_MAX : v;
}

static void set_limits(cz_http_limits_t *dst, const cz_http_limits_t *src) {
    cz_http_limits_default(dst);
    if (!src) return;
    dst->max_url = pick(src->max_url, dst->max_url);
    dst->max_header_bytes = pick(src->max_header_bytes, dst->max_header_bytes);
    dst->max_headers = pick(src->max_headers, dst->max_headers);
    dst->max_body = pick(src->max_body, dst->max_body);
    dst->retain = pick(src->retain, dst->retain);
}

/* Connection-level state back to "nothing seen"; buffers untouched. */
static void start_connection(cz_http_parser_t *p) {
    llhttp_init(&p->ll, HTTP_REQUEST, &cz_settings);
    p->ll.data = p;
    memset(&p->req, 0, sizeof(p->req));
    p->head_len = p->url_len = p->mark = 0;
    p->nhdrs = 0;
    p->body_len = 0;
    p->pass = 0;
    p->cur = NULL;
    p->base = p->msg_start = 0;
    p->method_end = p->url_end = p->fields_start = 0;
    p->trailer_bytes = p->trailer_fields = p->ext_bytes = 0;
    p->status = 0;
    p->reason = NULL;
    p->state = ST_IDLE;
    p->event = CZ_HTTP_NEED_MORE;
    p->seen = 0;
    p->hosts = p->tes = p->te_chunked = p->expect = 0;
    p->proto_len = 0;
}

void cz_http_parser_init(cz_http_parser_t *p, cz_allocator_t *a, const cz_http_limits_t *limits) {
    p->alloc = a;
    set_limits(&p->limits, limits);
    p->head = NULL;
    p->head_cap = 0;
    p->hdrs = NULL;
    p->hdrs_cap = 0;
    p->body = NULL;
    p->body_cap = 0;
    start_connection(p);
}

void cz_http_parser_done(cz_http_parser_t *p) {
    release_big(p);
}

void cz_http_parser_reset(cz_http_parser_t *p) {
    release_big(p);
    start_connection(p);
}

void cz_http_parser_destroy(cz_http_parser_t *p) {
    free_head(p);
    free_body(p);
    cz_free(p->alloc, CZ_MEM_REQUEST, p->hdrs);
    p->hdrs = NULL;
    p->hdrs_cap = 0;
    start_connection(p);
}

/* Status for an llhttp error that none of our callbacks caused. */
static void fail_llhttp(cz_http_parser_t *p, llhttp_errno_t e) {
    const char *why = llhttp_get_error_reason(&p->ll);

    if (p->state == ST_ERROR) return; /* a callback of ours said why */
    if (!why) why = llhttp_errno_name(e);
    switch (e) {
    case HPE_PAUSED_H2_UPGRADE: fail(p, 400, "HTTP/2 connection preface"); break;
    case HPE_CLOSED_CONNECTION: fail(p, 400, "data after Connection: close"); break;
    default: fail(p, 400, why); break;
    }
}

/* Bytes that produce no callback (leading empty lines, OWS) still count
 * toward the head limits; checked after each llhttp_execute(). */
static void check_head_size(cz_http_parser_t *p) {
    if (p->state != ST_IDLE && p->state != ST_HEAD) return;
    if (p->state == ST_HEAD && (p->seen & SEEN_FIELDS)) {
        /* fields_start may lie ahead while the request line's CRLF is
         * still due; +2: the blank line ending the section */
        if (p->base > p->fields_start && p->base - p->fields_start > (uint64_t)p->limits.max_header_bytes + 2)
            fail(p, 431, "header section too large");
    } else if (p->base - p->msg_start > (uint64_t)p->limits.max_url + REQUEST_LINE_SLACK) {
        fail(p, 400, "request line too long");
    }
}

cz_http_event_t cz_http_parser_feed(cz_http_parser_t *p, const char *data, size_t len, size_t *consumed) {
    size_t used = 0;
    /* A piece handed out may have ended the body: llhttp completes the
     * request without input, so run it once even on an empty feed. */
    int run = p->event == CZ_HTTP_BODY;

    *consumed = 0;
    if (p->state == ST_ERROR) return CZ_HTTP_ERROR;
    if (p->state == ST_DONE) p->state = ST_IDLE;
    p->event = CZ_HTTP_NEED_MORE;
    while ((used < len || run) && p->event == CZ_HTTP_NEED_MORE) {
        llhttp_errno_t e;

        run = 0;
        p->cur = data ? data + used : "";
        e = llhttp_execute(&p->ll, p->cur, len - used);
        if (e == HPE_OK) {
            p->base += len - used;
            used = len;
        } else if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
            size_t n = (size_t)(llhttp_get_error_pos(&p->ll) - p->cur);

            p->base += n;
            used += n;
            if (e == HPE_PAUSED) llhttp_resume(&p->ll);
            else /* Upgrade is ignored: go on parsing HTTP/1.1 */ llhttp_resume_after_upgrade(&p->ll);
        } else {
            fail_llhttp(p, e);
        }
        if (p->state == ST_ERROR) break;
        check_head_size(p);
        if (p->state == ST_ERROR) break;
    }
    p->cur = NULL;
    *consumed = used;
    if (p->state == ST_ERROR) return CZ_HTTP_ERROR;
    if (p->event == CZ_HTTP_REQUEST) p->msg_start = p->base;
    return (cz_http_event_t)p->event;
}

const cz_http_request_t *cz_http_parser_request(const cz_http_parser_t *p) {
    return &p->req;
}

size_t cz_http_parser_body_len(const cz_http_parser_t *p) {
    return p->body_len;
}

int cz_http_parser_pass_body(cz_http_parser_t *p) {
    if (p->state != ST_BODY || p->event != CZ_HTTP_HEADERS) return -1;
    p->pass = 1;
    return 0;
}

int cz_http_parser_in_request(const cz_http_parser_t *p) {
    return p->state == ST_HEAD || p->state == ST_BODY;
}

int cz_http_parser_status(const cz_http_parser_t *p) {
    return p->status;
}

const char *cz_http_parser_reason(const cz_http_parser_t *p) {
    return p->reason;
}

const cz_http_str_t *cz_http_request_header(const cz_http_request_t *r, const char *name, size_t name_len) {
    size_t i, j;

    for (i = 0; i < r->num_headers; i++) {
        const cz_http_str_t *n = &r->headers[i].name;

        if (n->len != name_len) continue;
        for (j = 0; j < name_len; j++)
            if (lower((unsigned char)n->base[j]) != lower((unsigned char)name[j])) break;
        if (j == name_len) return &r->headers[i].value;
    }
    return NULL;
}
