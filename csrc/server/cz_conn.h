/*
 * cz_conn — one HTTP/1.1 connection as a state machine, free of sockets,
 * timers and threads: the transport feeds it the bytes it reads, takes from
 * it the bytes (or file ranges) to send, and tells it the time. The libuv
 * server (cz_server.c) and the fuzz harness (tests/fuzz/fuzz_request.c)
 * drive this same code.
 *
 *   bytes in --cz_conn_feed--> parse (cz_http) --> route (cz_answer) -->
 *   env->dispatch (the application) --> cz_conn_respond* --> output queue
 *   --cz_conn_out_peek/cz_conn_out_sent--> transport
 *
 * States (one field, cz_conn_state()):
 *
 *   IDLE      between requests: keep-alive deadline
 *   HEAD      part of a request head received: header deadline
 *   BODY      head complete, body being read: body deadline
 *   BUSY      a complete request is with the application; no deadline
 *   STREAM    its response is being produced piece by piece (cz_conn_stream_*)
 *   UPGRADED  a 101 was queued: every byte read goes to env->upgraded
 *   CLOSING   nothing more is read or answered; the transport closes the
 *             socket once cz_conn_out_pending() is 0
 *   CLOSED    the transport closes the socket now (and calls nothing else
 *             but cz_conn_destroy())
 *
 *   IDLE -> HEAD -> BODY -> BUSY -> IDLE (keep-alive) | CLOSING
 *   HEAD -> BUSY (a streamed body: read while BUSY, see env->body)
 *   BUSY -> STREAM -> IDLE | CLOSING        BUSY -> UPGRADED -> CLOSING
 *   any -> CLOSING (parse error, timeout, stop) -> CLOSED
 *
 * One request at a time, in arrival order: bytes of pipelined requests are
 * kept unparsed (a copy, at most one read) until the response before them
 * is complete and the queued output is under env->max_write_buffer, so
 * responses always leave in request order and a client that does not read
 * cannot make the server buffer more than one answer beyond that bound.
 *
 * Answering. env->dispatch is called for each routed request the
 * application answers. It answers now (cz_conn_respond(), _respond_error(),
 * _respond_file(), _stream_begin(), _upgrade() before returning
 * CZ_CONN_DONE) or later (returns CZ_CONN_PENDING, then calls one of them
 * from the transport's thread; the transport then calls cz_conn_resume()).
 * A request left unanswered by a hook that returned DONE is answered 500.
 * Re-entrancy: no function here calls env->dispatch except cz_conn_feed()
 * and cz_conn_resume(); responding never parses the next request.
 *
 * Output is a short queue of segments: bytes (CZ_MEM_RESPONSE buffers) or a
 * range of an open file. cz_conn_out_peek() hands the transport the first
 * unsent segment; its memory stays put until cz_conn_out_sent() (output
 * produced meanwhile goes to a later segment), so it can be written
 * asynchronously without a copy.
 *
 * Accounting. env->bytes_in and env->bytes_out count every byte fed and
 * sent. With env->answered set, each request that reached the application
 * or the router's own answers (404, 405, OPTIONS, redirects) is reported
 * once, when its whole answer is queued (a stream at its end, an upgrade
 * at its 101): status, bytes queued for it (head included) and the
 * env->clock_ns time it was dispatched at. A request whose client left
 * first (counted in env->abandoned), a body over its bound answered 413
 * before dispatch, a malformed or timed-out request head, and a request
 * whose answer could not be queued at all (out of memory, out_max) are not
 * reported. A request dispatched before its body (env->body) whose body
 * then fails is reported with the status it was answered (400, 408, 413,
 * 431); its req->body is empty (the pieces were views).
 *
 * Time is the transport's monotonic clock in milliseconds (env->now).
 * Memory: parser and held input use CZ_MEM_REQUEST, output CZ_MEM_RESPONSE.
 * Threads: none of its own; every call on one connection from one thread.
 */
#ifndef CZ_CONN_H
#define CZ_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "cz_http.h"
#include "cz_memory.h"
#include "cz_router.h"

typedef struct cz_conn cz_conn_t;

typedef enum {
    CZ_CONN_IDLE = 0,
    CZ_CONN_HEAD,
    CZ_CONN_BODY,
    CZ_CONN_BUSY,
    CZ_CONN_STREAM,
    CZ_CONN_UPGRADED,
    CZ_CONN_CLOSING,
    CZ_CONN_CLOSED
} cz_conn_state_t;

/* What env->dispatch did with a request. */
typedef enum {
    CZ_CONN_DONE = 0, /* answered (or the connection will be answered 500) */
    CZ_CONN_PENDING   /* answered later, then the transport calls cz_conn_resume() */
} cz_conn_dispatch_t;

/* What env->upgraded_event reports about an UPGRADED connection. */
typedef enum {
    CZ_CONN_UPGRADED_TIMER = 0, /* the time set with cz_conn_set_timer() came */
    CZ_CONN_UPGRADED_STOP       /* the server stops: say goodbye (it closes at the stop's deadline) */
} cz_conn_upgraded_event_t;

/* What env->answered reports about one request. */
typedef struct {
    const cz_http_request_t *req; /* valid during the call */
    uint32_t route_index;         /* the router's, or CZ_CONN_NO_ROUTE */
    int status;                   /* of its answer */
    uint64_t bytes_out;           /* queued for its answer, head included */
    uint64_t started_ns;          /* env->clock_ns() when it was dispatched */
    /* What was allocated while the connection worked on this request, from
     * the end of its previous request to this answer (its head, body,
     * handler call and answer): the connection's tally, which the transport
     * makes current around its calls (cz_conn_tally()); zeros otherwise.
     * Valid during the call. */
    const cz_mem_tally_t *mem;
} cz_conn_answered_t;

#define CZ_CONN_NO_ROUTE UINT32_MAX /* answered by the router itself, or by a not_found application */

/* Shared by every connection of one server; must outlive them. */
typedef struct {
    cz_allocator_t *alloc;
    const cz_router_t *router;
    const cz_http_limits_t *limits; /* of the parser */
    const cz_http_date_t *date;     /* NULL: no Date header */
    size_t max_write_buffer;        /* queued output above it: no more requests parsed */
    size_t out_max;                 /* bound of one output segment; 0: none */
    uint64_t header_timeout_ms;     /* first byte of a request to its full head (408) */
    uint64_t body_timeout_ms;       /* without a body byte (408) */
    uint64_t keepalive_timeout_ms;  /* idle between requests (close) */
    uint64_t write_timeout_ms;      /* output not taken by the client (close) */
    int not_found;                  /* the application answers 404s itself */
    /* The body limit of requests to the route at `route_index` (router
     * index), or 0 for max_body; NULL: max_body for every route. Asked
     * when a request head is complete: a declared or received body over it
     * is answered 413 and the connection closes. limits->max_body must be
     * the largest of them (the parser's own bound). */
    uint64_t max_body;
    uint64_t (*route_max_body)(void *ctx, uint32_t route_index);
    /* 1 when the route at `route_index` reads the body of `req` (its head
     * complete) as a stream: the request is dispatched now (unless the
     * whole body is already in hand) and the body reaches env->body.
     * NULL: none. */
    int (*route_streams_body)(void *ctx, uint32_t route_index, const cz_http_request_t *req);
    int stopping;       /* set by the transport: answer, then close */
    uint64_t requests;  /* complete requests read (all connections) */
    uint64_t abandoned; /* requests whose client left before their answer was sent */
    uint64_t bytes_in;  /* read from clients (all connections) */
    uint64_t bytes_out; /* sent to clients (all connections) */

    void *ctx;
    /* The transport's clock; `fresh` asks for the time now rather than the
     * value cached at the start of the loop iteration. */
    uint64_t (*now)(void *ctx, int fresh);
    /* A routed request the application answers (see "Answering"). `req`
     * and the params of `m` stay valid until it is answered. */
    cz_conn_dispatch_t (*dispatch)(void *ctx, cz_conn_t *c, const cz_http_request_t *req, const cz_match_t *m);
    /* UPGRADED: bytes read (a view, valid during the call), or len 0 and
     * data NULL once the peer has finished sending. May be NULL if nobody
     * upgrades. */
    void (*upgraded)(void *ctx, cz_conn_t *c, const char *data, size_t len);
    /* UPGRADED: a timer or the stop (see cz_conn_upgraded_event_t). May be
     * NULL: a timer then closes the connection, a stop closes it at once. */
    void (*upgraded_event)(void *ctx, cz_conn_t *c, cz_conn_upgraded_event_t event);
    /* BUSY, a request dispatched before its body (route_streams_body): a
     * piece of the body (a view, valid during the call), then len 0 with
     * status 0 at its end. Nothing more is read until cz_conn_body_next()
     * (which may be called from inside this call). status != 0: the body
     * cannot complete (413 over its limit, 400 malformed, 431 trailer
     * fields too large, 408 too slow); the request has been answered with
     * it and the connection closes.
     * Required with route_streams_body. */
    void (*body)(void *ctx, cz_conn_t *c, const char *data, size_t len, int status);
    /* Accounting (see "Accounting"); NULL: none, and no clock is read.
     * clock_ns is required with answered. */
    void (*answered)(void *ctx, cz_conn_t *c, const cz_conn_answered_t *a);
    uint64_t (*clock_ns)(void *ctx);
    /* STREAM or UPGRADED: queued output fell back under max_write_buffer
     * after cz_conn_writable() said 0; the producer may go on. May be NULL. */
    void (*drained)(void *ctx, cz_conn_t *c);
} cz_conn_env_t;

/* One piece of output. */
typedef struct {
    const char *base; /* bytes, or NULL for a file range */
    size_t len;       /* bytes left to send of this segment (> 0) */
    int fd;           /* file range: the file (owned by the connection) */
    uint64_t offset;  /* file range: where the unsent part starts */
} cz_conn_seg_t;

#define CZ_CONN_SEGS 4 /* output segments queued at most */

typedef struct {
    uint8_t kind;      /* private: none, bytes, file */
    cz_http_buf_t buf; /* bytes */
    int fd;
    uint64_t offset, len;
    size_t sent; /* of this segment, already written */
} cz_conn_out_t;

/* Embed it (libuv style); fields are private except through the calls below. */
struct cz_conn {
    const cz_conn_env_t *env;
    cz_http_parser_t parser;
    cz_conn_out_t out[CZ_CONN_SEGS]; /* a ring: out[head] is sent first */
    uint8_t head_seg, nseg, taken;   /* taken: out[head_seg] was peeked */
    uint8_t state;                   /* cz_conn_state_t */
    uint8_t keep_alive;              /* of the current request and its answer */
    uint8_t is_head;                 /* the current request is HEAD */
    uint8_t http_minor;
    uint8_t framing;        /* STREAM: private cz_http framing */
    uint8_t input_ended;    /* the peer finished sending */
    uint8_t producer_waits; /* STREAM: cz_conn_writable() said 0 */
    uint8_t input_left;     /* unparsed input follows the request being dispatched */
    uint8_t body_flow;      /* BUSY: private, a streamed body's progress */
    uint8_t input_paused;   /* UPGRADED: the application stopped reading */
    char *held;             /* unparsed input waiting for the current request */
    size_t held_len;
    uint64_t deadline;    /* env->now ms; 0: none */
    uint64_t timer;       /* UPGRADED: cz_conn_set_timer()'s, env->now ms; 0: none */
    uint64_t stream_left; /* STREAM with a known length: bytes still due */
    uint64_t body_limit;  /* BODY: this request's bound (env->max_body or its route's) */
    void *user;           /* the embedder's (e.g. a stream's producer); never touched here */
    /* accounting (env->answered): the request being answered */
    uint64_t started_ns;
    uint64_t out_mark;    /* output total (sent + queued) when it was dispatched */
    uint64_t out_sent;    /* bytes sent on this connection */
    uint32_t route;       /* its route index, or CZ_CONN_NO_ROUTE */
    uint16_t status;      /* of its answer */
    uint8_t reporting;    /* a dispatched request is not reported yet */
    cz_mem_tally_t tally; /* memory of the request under way (see cz_conn_answered_t.mem) */
};

/* Set up a new connection (takes no memory yet) in IDLE with the header
 * deadline running. `env` must outlive it. */
void cz_conn_init(cz_conn_t *c, const cz_conn_env_t *env);
/* Free everything, close queued files. The state becomes CLOSED. */
void cz_conn_destroy(cz_conn_t *c);

cz_conn_state_t cz_conn_state(const cz_conn_t *c);
/* The connection's memory tally: a transport that accounts memory per
 * request makes it current (cz_mem_tally_enter) around every call it makes
 * for the connection; it is reset when each request is done. */
cz_mem_tally_t *cz_conn_tally(cz_conn_t *c);
/* 1 until CLOSED: responses may still be queued. */
int cz_conn_is_open(const cz_conn_t *c);

/* ---- the transport's side ------------------------------------------------------------ */

/* Bytes read from the client (a view, valid during the call: what must be
 * kept is copied). May dispatch requests. */
void cz_conn_feed(cz_conn_t *c, const char *data, size_t len);
/* The peer finished sending (EOF or read error). An idle connection
 * becomes CLOSED (after its held pipelined requests are answered); a
 * BUSY or STREAM one becomes CLOSED at once and counts as abandoned:
 * nobody reads its answer, so the application stops producing it. */
void cz_conn_eof(cz_conn_t *c);
/* 1 when the transport should read: in IDLE, HEAD, BODY (with queued
 * output within max_write_buffer), BUSY and STREAM (to see the client
 * leave) or UPGRADED, with no held input. */
int cz_conn_wants_input(const cz_conn_t *c);
/* Go on after a deferred answer or after output was sent: parse held
 * input (may dispatch), and call env->drained for a producer that waits.
 * 1 when held input was parsed (more output may be queued). */
int cz_conn_resume(cz_conn_t *c);

/* Deadline (env->now ms) or 0. Call cz_conn_timeout() once it has passed. */
uint64_t cz_conn_deadline(const cz_conn_t *c);
/* The deadline passed: a partial request is answered 408 and the
 * connection closes; an idle or stalled one becomes CLOSED. */
void cz_conn_timeout(cz_conn_t *c);
/* The server stops: an idle connection gets CZ_CONN_STOP_GRACE_MS for a
 * request already on its way (answered with Connection: close), then
 * closes; the others close after the answers to what was read (each says
 * Connection: close). */
#define CZ_CONN_STOP_GRACE_MS 1000u
void cz_conn_shutdown(cz_conn_t *c);
/* The stop's deadline passed: a request still with the application is
 * answered 503 (Connection: close) and a later answer is refused
 * (CZ_CONN_ESTATE); a stream or upgraded connection closes after what is
 * queued; a partial request is dropped. */
void cz_conn_expire(cz_conn_t *c);
/* Close now, whatever is queued (write error, the server gives up). */
void cz_conn_abort(cz_conn_t *c);

/* First unsent segment into *seg; 0 when nothing is queued. The segment's
 * memory stays valid until cz_conn_out_sent(). */
int cz_conn_out_peek(cz_conn_t *c, cz_conn_seg_t *seg);
/* `n` bytes of the peeked segment were written (n <= seg.len). */
void cz_conn_out_sent(cz_conn_t *c, size_t n);
/* A write could not complete at once: the write deadline starts. */
void cz_conn_out_blocked(cz_conn_t *c);
/* Bytes (and file bytes) queued and not yet sent. */
uint64_t cz_conn_out_pending(const cz_conn_t *c);
/* Memory the output queue holds: a buffer being written counts whole until
 * it is done, a file range not at all. */
size_t cz_conn_out_held(const cz_conn_t *c);

/* ---- the application's side (BUSY unless said; transport thread) ----------------------- */

/* Result codes: CZ_HTTP_OK, CZ_HTTP_EINVAL, CZ_HTTP_ENOMEM, CZ_HTTP_E2BIG,
 * or CZ_CONN_ESTATE when the call does not fit the state. */
#define CZ_CONN_ESTATE (-10)

/* The request being answered (BUSY, STREAM), or NULL. A body streamed to
 * env->body is not in it (body empty). */
const cz_http_request_t *cz_conn_request(const cz_conn_t *c);

/* Answer with a whole response. Keep-alive, HTTP/1.0 and HEAD are handled
 * here. An invalid response (bad header) is replaced by a 500; when nothing
 * could be queued (out of memory) the connection closes after what is. */
int cz_conn_respond(cz_conn_t *c, const cz_http_response_t *r);
/* Answer a canned JSON error ({"detail": reason phrase}); `allow` for 405. */
int cz_conn_respond_error(cz_conn_t *c, int status, const char *allow);
/* Answer with `length` bytes of file `fd` from `offset` (r->body is
 * ignored; Content-Length is `length`). The connection owns `fd` from this
 * call on, whatever the result, and closes it when sent or dropped. */
int cz_conn_respond_file(cz_conn_t *c, const cz_http_response_t *r, int fd, uint64_t offset, uint64_t length);

/* Begin a response whose body comes in pieces: `length` bytes when known
 * (Content-Length), or -1: chunked for HTTP/1.1, until the close for
 * HTTP/1.0. Returns 1: STREAM, write the body; 0: no body is sent (HEAD,
 * 1xx/204/304) and the request is answered; < 0 an error code (the
 * request is answered 500 when it was EINVAL). */
int cz_conn_stream_begin(cz_conn_t *c, const cz_http_response_t *r, int64_t length);
/* STREAM: queue a piece of the body (framed as begun). Writing past a known
 * length is CZ_HTTP_EINVAL. */
int cz_conn_stream_write(cz_conn_t *c, const void *data, size_t len);
/* STREAM: the body is complete. A known length not reached closes the
 * connection (the client sees a short body, never a wrong one). */
int cz_conn_stream_end(cz_conn_t *c);
/* BUSY with a streamed body: the piece given to env->body was taken, read
 * on. CZ_CONN_ESTATE when no piece waits. The transport then calls
 * cz_conn_resume() (a hook.complete is followed by it anyway). An answer
 * sent before the body's end closes the connection after it. */
int cz_conn_body_next(cz_conn_t *c);
/* 1 while the current request's body is streamed and not complete. */
int cz_conn_body_streaming(const cz_conn_t *c);

/* 1 while queued output is within max_write_buffer: a producer pauses at 0
 * and goes on at env->drained (called once per 0 seen). */
int cz_conn_writable(cz_conn_t *c);

/* Answer with `r` (status 101, the Upgrade header among r->headers) and
 * hand the connection over: UPGRADED. Input already read past the request
 * reaches env->upgraded as soon as the hook that upgraded returns (or at
 * the next cz_conn_resume() for a deferred answer). */
int cz_conn_upgrade(cz_conn_t *c, const cz_http_response_t *r);
/* UPGRADED: the buffer to append raw output to (e.g. a frame written in
 * place), or NULL in another state. Valid until the next call on `c`. */
cz_http_buf_t *cz_conn_out_buffer(cz_conn_t *c);
/* UPGRADED: env->upgraded_event(CZ_CONN_UPGRADED_TIMER) in `ms` (0: no
 * timer), e.g. for keep-alive pings. One timer per connection. */
void cz_conn_set_timer(cz_conn_t *c, uint64_t ms);

/* UPGRADED: stop (1) or resume (0) reading, e.g. while the application has
 * not taken the messages already read. The transport asks
 * cz_conn_wants_input() again after the call that changed it. */
void cz_conn_pause_input(cz_conn_t *c, int paused);

/* UPGRADED or STREAM: close once what is queued is sent. */
void cz_conn_close(cz_conn_t *c);

#endif /* CZ_CONN_H */
