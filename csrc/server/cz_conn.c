/* cz_conn — see cz_conn.h for the contract. */
#include "cz_conn.h"

#include "cz_answer.h"

#include <string.h>
#include <unistd.h>

#define OUT_KEEP  (16u * 1024u) /* output buffer capacity kept between responses */
#define LINGER_MS 1000u         /* a 408 gets this long to be written before the close */

enum { SEG_NONE = 0, SEG_BYTES, SEG_FILE };

/* ---- output queue ------------------------------------------------------------------------------ */

static cz_conn_out_t *seg_at(cz_conn_t *c, unsigned i) {
    return &c->out[(c->head_seg + i) % CZ_CONN_SEGS];
}

static void seg_clear(cz_conn_t *c, cz_conn_out_t *s) {
    if (s->kind == SEG_FILE && s->fd >= 0) close(s->fd);
    s->fd = -1;
    s->sent = 0;
    s->offset = s->len = 0;
    s->kind = SEG_NONE;
    cz_http_buf_reset(&s->buf, c->env->out_max && c->env->out_max < OUT_KEEP ? c->env->out_max : OUT_KEEP);
}

/* The bytes segment output is appended to: the last one unless it was
 * peeked (its memory must not move) or is a file; NULL when the queue is full. */
static cz_http_buf_t *out_tail(cz_conn_t *c) {
    if (c->nseg) {
        cz_conn_out_t *t = seg_at(c, c->nseg - 1u);
        if (t->kind == SEG_BYTES && !(c->taken && c->nseg == 1)) return &t->buf;
    }
    if (c->nseg == CZ_CONN_SEGS) return NULL;
    cz_conn_out_t *t = seg_at(c, c->nseg++);
    t->kind = SEG_BYTES;
    t->sent = 0;
    return &t->buf;
}

/* Drop an empty bytes segment left at the tail by a failed append. */
static void out_trim(cz_conn_t *c) {
    if (!c->nseg) return;
    cz_conn_out_t *t = seg_at(c, c->nseg - 1u);
    if (t->kind == SEG_BYTES && t->buf.len == 0 && !(c->taken && c->nseg == 1)) {
        seg_clear(c, t);
        c->nseg--;
    }
}

uint64_t cz_conn_out_pending(const cz_conn_t *c) {
    uint64_t n = 0;
    for (unsigned i = 0; i < c->nseg; i++) {
        const cz_conn_out_t *s = &c->out[(c->head_seg + i) % CZ_CONN_SEGS];
        n += (s->kind == SEG_FILE ? s->len : s->buf.len) - s->sent;
    }
    return n;
}

size_t cz_conn_out_held(const cz_conn_t *c) {
    size_t n = 0;
    for (unsigned i = 0; i < c->nseg; i++) {
        const cz_conn_out_t *s = &c->out[(c->head_seg + i) % CZ_CONN_SEGS];
        if (s->kind == SEG_BYTES) n += s->buf.len;
    }
    return n;
}

/* No more requests are parsed while this is true: the client reads slowly. */
static int out_full(const cz_conn_t *c) {
    return c->nseg >= CZ_CONN_SEGS - 1u || cz_conn_out_held(c) > c->env->max_write_buffer;
}

int cz_conn_out_peek(cz_conn_t *c, cz_conn_seg_t *seg) {
    while (c->nseg) {
        cz_conn_out_t *s = seg_at(c, 0);
        uint64_t size = s->kind == SEG_FILE ? s->len : s->buf.len;
        if (s->sent < size) {
            c->taken = 1;
            seg->len = (size_t)(size - s->sent);
            if (s->kind == SEG_FILE) {
                seg->base = NULL;
                seg->fd = s->fd;
                seg->offset = s->offset + s->sent;
            } else {
                seg->base = s->buf.data + s->sent;
                seg->fd = -1;
                seg->offset = 0;
            }
            return 1;
        }
        seg_clear(c, s); /* empty (e.g. nothing was appended after all) */
        c->head_seg = (uint8_t)((c->head_seg + 1u) % CZ_CONN_SEGS);
        c->nseg--;
        c->taken = 0;
    }
    return 0;
}

static void keepalive_deadline(cz_conn_t *c, int fresh) {
    c->deadline = c->env->now(c->env->ctx, fresh) + c->env->keepalive_timeout_ms;
}

void cz_conn_out_sent(cz_conn_t *c, size_t n) {
    if (!c->nseg || !c->taken) return;
    cz_conn_out_t *s = seg_at(c, 0);
    uint64_t size = s->kind == SEG_FILE ? s->len : s->buf.len;
    s->sent += n;
    c->taken = 0;
    c->out_sent += n;
    ((cz_conn_env_t *)c->env)->bytes_out += n;
    if (s->sent < size) return;
    seg_clear(c, s);
    c->head_seg = (uint8_t)((c->head_seg + 1u) % CZ_CONN_SEGS);
    c->nseg--;
    if (c->nseg) return;
    /* The last of the output went out: an idle connection's keep-alive
     * clock starts over; a stream or upgraded connection waits on nobody. */
    if (c->state == CZ_CONN_IDLE) keepalive_deadline(c, 0);
    else if (c->state == CZ_CONN_STREAM || c->state == CZ_CONN_UPGRADED) c->deadline = 0;
}

void cz_conn_out_blocked(cz_conn_t *c) {
    /* A client that does not read its responses gets write_timeout. */
    if (c->state != CZ_CONN_BUSY) c->deadline = c->env->now(c->env->ctx, 0) + c->env->write_timeout_ms;
}

/* ---- life ------------------------------------------------------------------------------------------ */

void cz_conn_init(cz_conn_t *c, const cz_conn_env_t *env) {
    memset(c, 0, sizeof(*c));
    c->env = env;
    cz_http_parser_init(&c->parser, env->alloc, env->limits);
    for (unsigned i = 0; i < CZ_CONN_SEGS; i++) {
        cz_http_buf_init(&c->out[i].buf, env->alloc, env->out_max);
        c->out[i].fd = -1;
    }
    c->state = CZ_CONN_IDLE;
    c->keep_alive = 1;
    c->http_minor = 1;
    c->deadline = env->now(env->ctx, 0) + env->header_timeout_ms;
}

void cz_conn_destroy(cz_conn_t *c) {
    cz_http_parser_destroy(&c->parser);
    for (unsigned i = 0; i < CZ_CONN_SEGS; i++) {
        c->out[i].kind = c->out[i].kind == SEG_FILE ? SEG_FILE : SEG_NONE;
        seg_clear(c, &c->out[i]);
        cz_http_buf_free(&c->out[i].buf);
    }
    c->nseg = 0;
    cz_free(c->env->alloc, CZ_MEM_REQUEST, c->held);
    c->held = NULL;
    c->held_len = 0;
    c->state = CZ_CONN_CLOSED;
}

cz_conn_state_t cz_conn_state(const cz_conn_t *c) {
    return (cz_conn_state_t)c->state;
}
cz_mem_tally_t *cz_conn_tally(cz_conn_t *c) {
    return &c->tally;
}
int cz_conn_is_open(const cz_conn_t *c) {
    return c->state != CZ_CONN_CLOSED;
}

void cz_conn_abort(cz_conn_t *c) {
    c->state = CZ_CONN_CLOSED;
    c->deadline = 0;
}

/* Nothing more is read; the socket closes once the output is written. */
static void closing(cz_conn_t *c) {
    if (c->state == CZ_CONN_CLOSED) return;
    c->state = CZ_CONN_CLOSING;
    cz_free(c->env->alloc, CZ_MEM_REQUEST, c->held);
    c->held = NULL;
    c->held_len = 0;
}

const cz_http_request_t *cz_conn_request(const cz_conn_t *c) {
    return c->state == CZ_CONN_BUSY || c->state == CZ_CONN_STREAM ? cz_http_parser_request(&c->parser) : NULL;
}

/* ---- answering ---------------------------------------------------------------------------------------- */

/* The server stops and nothing read is left to answer after this request. */
static int stop_closes(const cz_conn_t *c) {
    return c->env->stopping && !c->held && !c->input_left;
}

/* A streamed body's progress (body_flow). */
enum { BODY_NONE = 0, BODY_OPEN, BODY_WAITING, BODY_ENDED, BODY_FAILED };

/* Whether the response being written may leave the connection open: not
 * while the body it answers is still arriving (its rest is not read). */
static int keeps_alive(const cz_conn_t *c) {
    return c->keep_alive && !c->input_ended && !stop_closes(c) &&
           (c->body_flow == BODY_NONE || c->body_flow == BODY_ENDED);
}

/* Report the request being answered to env->answered (once). */
static void report(cz_conn_t *c) {
    if (!c->reporting) return;
    c->reporting = 0;
    uint64_t bytes = c->out_sent + cz_conn_out_pending(c) - c->out_mark;
    /* Nothing could be queued (out of memory, a bounded output buffer):
     * the request got no answer, the connection closes; not reported. */
    if (!bytes) return;
    cz_conn_answered_t a = {
        .req = cz_http_parser_request(&c->parser),
        .route_index = c->route,
        .status = c->status,
        .bytes_out = bytes,
        .started_ns = c->started_ns,
        .mem = &c->tally,
    };
    c->env->answered(c->env->ctx, c, &a);
}

/* The current request is answered (its response is queued, or closing). */
static void request_done(cz_conn_t *c) {
    report(c);
    cz_mem_tally_reset(&c->tally);
    int body_left = c->body_flow != BODY_NONE && c->body_flow != BODY_ENDED;
    c->body_flow = BODY_NONE;
    cz_http_parser_done(&c->parser);
    if (!c->keep_alive || c->input_ended || stop_closes(c) || body_left) {
        closing(c);
        return;
    }
    c->state = CZ_CONN_IDLE;
    /* The handler may have run for a while: the clock is from before it. */
    keepalive_deadline(c, 1);
}

/* Fill in what the connection decides about a response. */
static cz_http_response_t answer_of(cz_conn_t *c, const cz_http_response_t *r) {
    cz_http_response_t resp = *r;
    c->status = (uint16_t)r->status;
    resp.http_minor = c->http_minor;
    resp.keep_alive = keeps_alive(c);
    resp.head = c->is_head;
    if (!resp.keep_alive) c->keep_alive = 0;
    return resp;
}

/* Write a canned error for the current request; on failure the next
 * response would pass for this one's: close after what is queued. */
static int write_error(cz_conn_t *c, int status, const char *allow) {
    cz_http_buf_t *out = out_tail(c);
    int keep = keeps_alive(c);
    if (!keep) c->keep_alive = 0;
    c->status = (uint16_t)status;
    int rc =
        out ? cz_http_write_error(out, c->env->date, status, allow, c->http_minor, keep, c->is_head) : CZ_HTTP_E2BIG;
    if (rc != CZ_HTTP_OK) {
        c->keep_alive = 0;
        out_trim(c);
    }
    return rc;
}

/* Serialize `resp` (head only when `head_only`), 500 when invalid. */
static int write_answer(cz_conn_t *c, const cz_http_response_t *resp, int head_only) {
    cz_http_buf_t *out = out_tail(c);
    int rc = !out        ? CZ_HTTP_E2BIG
             : head_only ? cz_http_response_write_head(out, c->env->date, resp)
                         : cz_http_response_write(out, c->env->date, resp);
    if (rc == CZ_HTTP_EINVAL) {
        write_error(c, 500, NULL);
        return rc;
    }
    if (rc != CZ_HTTP_OK) {
        c->keep_alive = 0; /* out of memory: close after what is queued */
        out_trim(c);
    }
    return rc;
}

int cz_conn_respond(cz_conn_t *c, const cz_http_response_t *r) {
    if (c->state != CZ_CONN_BUSY) return CZ_CONN_ESTATE;
    cz_http_response_t resp = answer_of(c, r);
    int rc = write_answer(c, &resp, 0);
    request_done(c);
    return rc;
}

int cz_conn_respond_error(cz_conn_t *c, int status, const char *allow) {
    if (c->state != CZ_CONN_BUSY) return CZ_CONN_ESTATE;
    int rc = write_error(c, status, allow);
    request_done(c);
    return rc;
}

static int bodyless(int status) {
    return status < 200 || status == 204 || status == 304;
}

int cz_conn_respond_file(cz_conn_t *c, const cz_http_response_t *r, int fd, uint64_t offset, uint64_t length) {
    if (c->state != CZ_CONN_BUSY) {
        if (fd >= 0) close(fd);
        return CZ_CONN_ESTATE;
    }
    cz_http_response_t resp = answer_of(c, r);
    resp.framing = CZ_HTTP_FRAME_LENGTH;
    resp.body = (cz_http_str_t){NULL, (size_t)length};
    int body = length && !resp.head && !bodyless(resp.status), rc;
    if (body && c->nseg + 2u > CZ_CONN_SEGS) {
        /* No room for the head and the range together (requests are parsed
         * with room for both, so this is a misuse): never a head without
         * its body. */
        c->keep_alive = 0;
        rc = CZ_HTTP_E2BIG;
    } else {
        rc = write_answer(c, &resp, 1);
    }
    if (rc == CZ_HTTP_OK && body) {
        cz_conn_out_t *s = seg_at(c, c->nseg++);
        s->kind = SEG_FILE;
        s->fd = fd;
        s->offset = offset;
        s->len = length;
        s->sent = 0;
        fd = -1;
    }
    if (fd >= 0) close(fd);
    request_done(c);
    return rc;
}

int cz_conn_stream_begin(cz_conn_t *c, const cz_http_response_t *r, int64_t length) {
    if (c->state != CZ_CONN_BUSY) return CZ_CONN_ESTATE;
    cz_http_response_t resp = answer_of(c, r);
    if (length >= 0) {
        resp.framing = CZ_HTTP_FRAME_LENGTH;
        resp.body = (cz_http_str_t){NULL, (size_t)length};
    } else if (c->http_minor == 0) {
        resp.framing = CZ_HTTP_FRAME_CLOSE; /* HTTP/1.0 has no chunks */
        c->keep_alive = 0;
    } else {
        resp.framing = CZ_HTTP_FRAME_CHUNKED;
    }
    int rc = write_answer(c, &resp, 1);
    if (rc != CZ_HTTP_OK || resp.head || bodyless(resp.status) || length == 0) {
        request_done(c);
        return rc == CZ_HTTP_OK ? 0 : rc;
    }
    c->framing = (uint8_t)resp.framing;
    c->producer_waits = 0;
    c->stream_left = length >= 0 ? (uint64_t)length : 0;
    c->state = CZ_CONN_STREAM;
    return 1;
}

int cz_conn_stream_write(cz_conn_t *c, const void *data, size_t len) {
    if (c->state != CZ_CONN_STREAM) return CZ_CONN_ESTATE;
    if (len == 0) return CZ_HTTP_OK;
    if (c->framing == CZ_HTTP_FRAME_LENGTH && len > c->stream_left) return CZ_HTTP_EINVAL;
    cz_http_buf_t *out = out_tail(c);
    int rc = !out                                  ? CZ_HTTP_E2BIG
             : c->framing == CZ_HTTP_FRAME_CHUNKED ? cz_http_write_chunk(out, data, len)
                                                   : cz_http_buf_append(out, data, len);
    if (rc != CZ_HTTP_OK) {
        out_trim(c);
        return rc;
    }
    if (c->framing == CZ_HTTP_FRAME_LENGTH) c->stream_left -= len;
    return CZ_HTTP_OK;
}

int cz_conn_stream_end(cz_conn_t *c) {
    if (c->state != CZ_CONN_STREAM) return CZ_CONN_ESTATE;
    int rc = CZ_HTTP_OK;
    if (c->framing == CZ_HTTP_FRAME_CHUNKED) {
        cz_http_buf_t *out = out_tail(c);
        rc = out ? cz_http_write_chunk(out, NULL, 0) : CZ_HTTP_E2BIG;
        if (rc != CZ_HTTP_OK) out_trim(c);
    } else if (c->framing == CZ_HTTP_FRAME_LENGTH && c->stream_left) {
        rc = CZ_HTTP_EINVAL;
    }
    /* A body that cannot be ended properly ends with the connection. */
    if (rc != CZ_HTTP_OK || c->framing == CZ_HTTP_FRAME_CLOSE) c->keep_alive = 0;
    c->state = CZ_CONN_BUSY;
    request_done(c);
    return rc;
}

int cz_conn_body_next(cz_conn_t *c) {
    if (c->state != CZ_CONN_BUSY || c->body_flow != BODY_WAITING) return CZ_CONN_ESTATE;
    c->body_flow = BODY_OPEN;
    c->deadline = c->env->now(c->env->ctx, 0) + c->env->body_timeout_ms;
    return CZ_HTTP_OK;
}

int cz_conn_body_streaming(const cz_conn_t *c) {
    return c->state == CZ_CONN_BUSY && (c->body_flow == BODY_OPEN || c->body_flow == BODY_WAITING);
}

void cz_conn_set_timer(cz_conn_t *c, uint64_t ms) {
    if (c->state != CZ_CONN_UPGRADED) return;
    c->timer = ms ? c->env->now(c->env->ctx, 0) + ms : 0;
}

void cz_conn_pause_input(cz_conn_t *c, int paused) {
    c->input_paused = paused ? 1 : 0;
}

int cz_conn_writable(cz_conn_t *c) {
    int ok = c->nseg < CZ_CONN_SEGS && cz_conn_out_held(c) <= c->env->max_write_buffer;
    if (!ok) c->producer_waits = 1;
    return ok;
}

int cz_conn_upgrade(cz_conn_t *c, const cz_http_response_t *r) {
    if (c->state != CZ_CONN_BUSY || !c->env->upgraded) return CZ_CONN_ESTATE;
    cz_http_response_t resp = answer_of(c, r);
    resp.framing = CZ_HTTP_FRAME_UPGRADE;
    resp.keep_alive = 1;
    int rc = write_answer(c, &resp, 0);
    if (rc != CZ_HTTP_OK || c->input_ended || c->env->stopping) {
        c->keep_alive = 0;
        request_done(c);
        return rc == CZ_HTTP_OK ? CZ_CONN_ESTATE : rc;
    }
    report(c);
    cz_mem_tally_reset(&c->tally);
    /* No more HTTP on this connection: its parser's buffers go now, so an
     * idle upgraded connection holds little (the parser stays valid). */
    cz_http_parser_destroy(&c->parser);
    cz_http_parser_init(&c->parser, c->env->alloc, c->env->limits);
    c->state = CZ_CONN_UPGRADED;
    c->deadline = 0;
    return CZ_HTTP_OK;
}

cz_http_buf_t *cz_conn_out_buffer(cz_conn_t *c) {
    return c->state == CZ_CONN_UPGRADED ? out_tail(c) : NULL;
}

void cz_conn_close(cz_conn_t *c) {
    if (c->state == CZ_CONN_STREAM) c->keep_alive = 0;
    if (c->state == CZ_CONN_UPGRADED || c->state == CZ_CONN_STREAM) closing(c);
}

/* ---- requests ---------------------------------------------------------------------------------------------- */

/* Route one complete request and answer it (or leave it pending). */
static void on_request(cz_conn_t *c, const cz_http_request_t *req) {
    cz_conn_env_t *env = (cz_conn_env_t *)c->env;
    env->requests++;
    c->state = CZ_CONN_BUSY;
    c->deadline = 0;
    c->is_head = req->method_id == HTTP_HEAD;
    c->keep_alive = req->keep_alive;
    c->http_minor = (uint8_t)req->http_minor;

    cz_match_t m;
    int keep = keeps_alive(c), rc;
    cz_http_buf_t *out = out_tail(c);
    if (!out) { /* cannot happen: requests are parsed only with room in the queue */
        c->keep_alive = 0;
        request_done(c);
        return;
    }
    cz_answer_to_t to = {out, env->date, c->http_minor, keep, c->is_head};
    size_t before = out->len;
    if (env->answered) {
        c->reporting = 1;
        c->started_ns = env->clock_ns(env->ctx);
        c->out_mark = c->out_sent + cz_conn_out_pending(c);
        c->route = CZ_CONN_NO_ROUTE;
        c->status = 0;
    }
    if (cz_answer_route(env->router, env->alloc, req, env->not_found, &to, &m, &rc) == CZ_ANSWER_APP) {
        if (m.status == CZ_MATCH_FOUND) c->route = m.route_index;
        /* An empty tail must not hold a queue slot while the application
         * answers: a file answer needs two (the fuzzer finds this). */
        out_trim(c);
        if (env->dispatch(env->ctx, c, req, &m) == CZ_CONN_PENDING) return;
        /* The hook says it answered: a request it left open would leave
         * the next response passing for this one's. */
        if (c->state == CZ_CONN_BUSY) cz_conn_respond_error(c, 500, NULL);
        return;
    }
    /* The router's own answer: its status is in its status line ("HTTP/1.1 404"). */
    if (rc == CZ_HTTP_OK && out->len >= before + 12u) {
        const char *d = out->data + before + 9u;
        c->status = (uint16_t)((d[0] - '0') * 100 + (d[1] - '0') * 10 + (d[2] - '0'));
    }
    if (rc != CZ_HTTP_OK || !keep) c->keep_alive = 0; /* unanswered, or answered with Connection: close */
    if (rc != CZ_HTTP_OK) out_trim(c);
    request_done(c);
}

/* Keep the unparsed bytes until the connection can go on. They stay
 * bounded by one read: nothing more is read meanwhile. */
static void hold(cz_conn_t *c, const char *data, size_t len) {
    if (len == 0) return;
    char *p = cz_malloc(c->env->alloc, CZ_MEM_REQUEST, len);
    if (!p) {
        cz_conn_abort(c);
        return;
    }
    memcpy(p, data, len);
    c->held = p;
    c->held_len = len;
}

/* The body bound of the request whose head is complete (its route's), and
 * whether its route reads the body as a stream. */
static uint64_t body_limit_of(const cz_conn_t *c, const cz_http_request_t *req, int *stream) {
    const cz_conn_env_t *env = c->env;
    uint64_t limit = env->max_body ? env->max_body : c->parser.limits.max_body;
    *stream = 0;
    if (!env->route_max_body && !env->route_streams_body) return limit;
    cz_match_t m;
    if (cz_router_match(env->router, req->method.base, req->method.len, req->path.base, req->path.len, &m) !=
        CZ_MATCH_FOUND)
        return limit;
    *stream = env->route_streams_body && env->body && env->route_streams_body(env->ctx, m.route_index, req);
    uint64_t own = env->route_max_body ? env->route_max_body(env->ctx, m.route_index) : 0;
    return own ? own : limit;
}

/* A body over its route's bound: 413, then close (the rest is not read). */
static void too_large(cz_conn_t *c) {
    cz_http_buf_t *out = out_tail(c);
    if (out && cz_http_write_error(out, c->env->date, 413, NULL, 1, 0, 0) != CZ_HTTP_OK) out_trim(c);
    closing(c);
}

/* A streamed body cannot complete: the client gets that status, the
 * connection closes, then the application hears why (its request is
 * answered by then: a late answer is refused). */
static void body_fail(cz_conn_t *c, int status) {
    c->body_flow = BODY_FAILED;
    if (c->state == CZ_CONN_BUSY) cz_conn_respond_error(c, status, NULL);
    c->env->body(c->env->ctx, c, NULL, 0, status);
}

/* Parse a streamed body (BUSY, BODY_OPEN) until a piece waits for the
 * application, the input runs out or the body ends; data and len: the rest. */
static void body_pump(cz_conn_t *c, const char **data, size_t *len) {
    const cz_conn_env_t *env = c->env;
    while (c->state == CZ_CONN_BUSY && c->body_flow == BODY_OPEN) {
        size_t used = 0;
        cz_http_event_t ev = cz_http_parser_feed(&c->parser, *data, *len, &used);
        *data += used;
        *len -= used;
        switch (ev) {
        case CZ_HTTP_NEED_MORE: c->deadline = env->now(env->ctx, 0) + env->body_timeout_ms; return;
        case CZ_HTTP_BODY: {
            if (cz_http_parser_body_len(&c->parser) > c->body_limit) {
                body_fail(c, 413); /* a chunked body that passed its bound */
                return;
            }
            const cz_http_request_t *req = cz_http_parser_request(&c->parser);
            c->body_flow = BODY_WAITING;
            env->body(env->ctx, c, req->body.base, req->body.len, 0); /* may take it at once */
            /* The piece is a view into this read, which the transport frees
             * after it: the request (cz_conn_request(), env->answered) must
             * not keep it. */
            c->parser.req.body = (cz_http_str_t){"", 0};
            break;
        }
        case CZ_HTTP_REQUEST:
            c->body_flow = BODY_ENDED;
            /* trailer fields may say "Connection: close" (the parser then
             * takes no more requests) */
            if (!cz_http_parser_request(&c->parser)->keep_alive) c->keep_alive = 0;
            /* an answer given inside env->body: input read past the body
             * waits for it (a stop answers it too) */
            c->input_left = *len > 0;
            env->body(env->ctx, c, NULL, 0, 0);
            c->input_left = 0;
            return;
        default: body_fail(c, cz_http_parser_status(&c->parser)); return;
        }
    }
}

static void process(cz_conn_t *c, const char *data, size_t len) {
    const cz_conn_env_t *env = c->env;
    while (len || (c->state == CZ_CONN_BUSY && c->body_flow == BODY_OPEN)) {
        switch (c->state) {
        case CZ_CONN_UPGRADED: env->upgraded(env->ctx, c, data, len); return;
        case CZ_CONN_BUSY:
            if (c->body_flow == BODY_OPEN) {
                body_pump(c, &data, &len);
                if (c->state == CZ_CONN_BUSY && c->body_flow == BODY_OPEN) return; /* all read */
                continue;
            }
            hold(c, data, len);
            return;
        case CZ_CONN_STREAM: hold(c, data, len); return;
        case CZ_CONN_CLOSING:
        case CZ_CONN_CLOSED: return; /* nothing more is read: dropped */
        default: break;
        }
        if (out_full(c)) {
            hold(c, data, len);
            return;
        }
        size_t used = 0;
        cz_http_event_t ev = cz_http_parser_feed(&c->parser, data, len, &used);
        data += used;
        len -= used;
        switch (ev) {
        case CZ_HTTP_NEED_MORE:
            if (c->state == CZ_CONN_IDLE) {
                c->state = CZ_CONN_HEAD;
                c->deadline = env->now(env->ctx, 0) + env->header_timeout_ms;
            } else if (c->state == CZ_CONN_BODY) {
                if (cz_http_parser_body_len(&c->parser) > c->body_limit) {
                    too_large(c); /* a chunked body that passed its bound */
                    return;
                }
                c->deadline = env->now(env->ctx, 0) + env->body_timeout_ms;
            }
            return;
        case CZ_HTTP_HEADERS: {
            const cz_http_request_t *req = cz_http_parser_request(&c->parser);
            c->state = CZ_CONN_BODY;
            c->deadline = env->now(env->ctx, 0) + env->body_timeout_ms;
            int stream;
            c->body_limit = body_limit_of(c, req, &stream);
            if (req->content_length > c->body_limit) {
                too_large(c); /* said before any of it is read */
                return;
            }
            if (req->expect_continue && len == 0) {
                cz_http_buf_t *out = out_tail(c);
                if (!out ||
                    cz_http_buf_append(out, CZ_HTTP_100_CONTINUE, sizeof(CZ_HTTP_100_CONTINUE) - 1) != CZ_HTTP_OK)
                    out_trim(c); /* the client sends the body anyway after a while */
            }
            /* A body already in hand is read whole: the handler gets it at once. */
            if (stream && (req->chunked || req->content_length > len) && cz_http_parser_pass_body(&c->parser) == 0) {
                c->body_flow = BODY_OPEN;
                on_request(c, req);
            }
            break;
        }
        case CZ_HTTP_REQUEST:
            if (c->state == CZ_CONN_BODY && cz_http_parser_request(&c->parser)->body.len > c->body_limit) {
                too_large(c);
                return;
            }
            c->input_left = len > 0;
            on_request(c, cz_http_parser_request(&c->parser));
            c->input_left = 0;
            break;
        case CZ_HTTP_ERROR:
        default: {
            /* HTTP/1.1, Connection: close, whatever the request said. */
            cz_http_buf_t *out = out_tail(c);
            if (out &&
                cz_http_write_error(out, env->date, cz_http_parser_status(&c->parser), NULL, 1, 0, 0) != CZ_HTTP_OK)
                out_trim(c);
            closing(c);
            return;
        }
        }
    }
}

void cz_conn_feed(cz_conn_t *c, const char *data, size_t len) {
    ((cz_conn_env_t *)c->env)->bytes_in += len;
    if (c->held) { /* the transport read while it should not: keep order */
        size_t n = c->held_len + len;
        char *p = cz_realloc(c->env->alloc, CZ_MEM_REQUEST, c->held, n);
        if (!p) {
            cz_conn_abort(c);
            return;
        }
        memcpy(p + c->held_len, data, len);
        c->held = p;
        c->held_len = n;
        return;
    }
    process(c, data, len);
}

int cz_conn_resume(cz_conn_t *c) {
    int went_on = 0;
    if (c->state == CZ_CONN_BUSY && c->body_flow == BODY_OPEN) { /* a piece was taken: read on */
        char *p = c->held;
        size_t n = c->held_len;
        c->held = NULL;
        c->held_len = 0;
        process(c, p ? p : "", n);
        cz_free(c->env->alloc, CZ_MEM_REQUEST, p);
        went_on = n > 0 || c->state != CZ_CONN_BUSY || c->body_flow != BODY_OPEN;
    } else if (c->held && c->state != CZ_CONN_BUSY && c->state != CZ_CONN_STREAM && !out_full(c)) {
        char *p = c->held;
        size_t n = c->held_len;
        c->held = NULL;
        c->held_len = 0;
        process(c, p, n);
        cz_free(c->env->alloc, CZ_MEM_REQUEST, p);
        went_on = 1;
    }
    if (c->state == CZ_CONN_IDLE && c->input_ended && !c->held) closing(c);
    if ((c->state == CZ_CONN_STREAM || c->state == CZ_CONN_UPGRADED) && c->producer_waits && c->env->drained &&
        cz_conn_writable(c)) {
        c->producer_waits = 0;
        c->env->drained(c->env->ctx, c);
    }
    return went_on;
}

int cz_conn_wants_input(const cz_conn_t *c) {
    switch (c->state) {
    case CZ_CONN_IDLE:
    case CZ_CONN_HEAD:
    case CZ_CONN_BODY: return !c->held && !c->input_ended && !out_full(c);
    case CZ_CONN_UPGRADED: return !c->input_ended && !c->input_paused;
    case CZ_CONN_BUSY:
    case CZ_CONN_STREAM:
        /* Read while a request is answered, so a client that leaves is
         * seen at once (a pipelined request is held meanwhile: one read);
         * a streamed body waits for the application to take its piece. */
        return !c->held && !c->input_ended && c->body_flow != BODY_WAITING;
    default: return 0;
    }
}

void cz_conn_eof(cz_conn_t *c) {
    c->input_ended = 1;
    switch (c->state) {
    case CZ_CONN_UPGRADED: c->env->upgraded(c->env->ctx, c, NULL, 0); return;
    case CZ_CONN_BUSY:
    case CZ_CONN_STREAM:
        /* Nobody reads the answer (a half-close counts as leaving, as in
         * Go and uvicorn): the application stops now, the slot is free. */
        ((cz_conn_env_t *)c->env)->abandoned++;
        cz_conn_abort(c);
        return;
    case CZ_CONN_CLOSING:
    case CZ_CONN_CLOSED: return;
    default:
        /* Held pipelined requests are still answered (cz_conn_resume). */
        if (c->held) return;
        if (cz_conn_out_pending(c)) closing(c);
        else cz_conn_abort(c);
    }
}

/* ---- time ------------------------------------------------------------------------------------------------- */

uint64_t cz_conn_deadline(const cz_conn_t *c) {
    if (c->state == CZ_CONN_UPGRADED && c->timer && (!c->deadline || c->timer < c->deadline)) return c->timer;
    return c->state == CZ_CONN_BUSY && c->body_flow != BODY_OPEN ? 0 : c->deadline;
}

void cz_conn_timeout(cz_conn_t *c) {
    switch (c->state) {
    case CZ_CONN_HEAD:
    case CZ_CONN_BODY:
        if (!c->taken) {
            /* Part of a request arrived, the rest did not: say so, then close. */
            cz_http_buf_t *out = out_tail(c);
            if (out && cz_http_write_error(out, c->env->date, 408, NULL, 1, 0, 0) != CZ_HTTP_OK) out_trim(c);
            closing(c);
            c->deadline = c->env->now(c->env->ctx, 0) + LINGER_MS;
            return;
        }
        cz_conn_abort(c);
        return;
    case CZ_CONN_BUSY:
        if (c->body_flow == BODY_OPEN) body_fail(c, 408); /* the client stopped sending it */
        return;
    case CZ_CONN_UPGRADED:
        if (c->deadline && c->env->now(c->env->ctx, 0) >= c->deadline) { /* the client does not read */
            cz_conn_abort(c);
            return;
        }
        c->timer = 0;
        if (c->env->upgraded_event) c->env->upgraded_event(c->env->ctx, c, CZ_CONN_UPGRADED_TIMER);
        else cz_conn_abort(c);
        return;
    default: cz_conn_abort(c);
    }
}

void cz_conn_shutdown(cz_conn_t *c) {
    switch (c->state) {
    case CZ_CONN_IDLE:
        /* Held pipelined requests were read: they are answered first. */
        if (c->held) return;
        if (c->taken || c->nseg) {
            closing(c);
            return;
        }
        /* Its client may be sending the next request right now: a moment to
         * answer it (Connection: close) rather than a close under it, which
         * the client would see as a failed request. */
        c->deadline = c->env->now(c->env->ctx, 1) + CZ_CONN_STOP_GRACE_MS;
        return;
    case CZ_CONN_UPGRADED:
        if (c->env->upgraded_event) c->env->upgraded_event(c->env->ctx, c, CZ_CONN_UPGRADED_STOP);
        else closing(c);
        return;
    default: return; /* the request under way is answered with Connection: close (env->stopping) */
    }
}

void cz_conn_expire(cz_conn_t *c) {
    switch (c->state) {
    case CZ_CONN_BUSY: cz_conn_respond_error(c, 503, NULL); return; /* Connection: close (env->stopping) */
    case CZ_CONN_STREAM:
    case CZ_CONN_UPGRADED: closing(c); return;
    case CZ_CONN_CLOSING:
    case CZ_CONN_CLOSED: return;
    default:
        if (c->taken || c->nseg) closing(c);
        else cz_conn_abort(c);
    }
}
