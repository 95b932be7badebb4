/* cz_server — see cz_server.h for the contract. */
#define _GNU_SOURCE
#include "cz_server.h"

#include "cz_answer.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define READ_CHUNK (64u * 1024u)
#define OUT_KEEP (16u * 1024u)      /* output buffer capacity kept between responses */
#define SWEEP_MS 250u               /* timeout resolution */

typedef enum { CONN_IDLE, CONN_HEAD, CONN_BODY, CONN_BUSY } conn_state_t;

typedef struct cz_completion {
    struct cz_completion *next;
    cz_conn_t *conn;
    void *item;
} cz_completion_t;

struct cz_conn {
    uv_tcp_t tcp;
    cz_server_t *srv;
    cz_conn_t *prev, *next;
    cz_http_parser_t parser;
    char *pending;              /* unparsed bytes waiting for the current request to end */
    size_t pending_len;
    cz_http_buf_t out[2];       /* out[cur] collects; the other may be in flight */
    int cur, writing;           /* writing: 1 while out[cur ^ 1] is being written */
    uv_write_t wreq;
    uint64_t deadline;          /* loop ms; 0: none */
    unsigned refs;              /* the handle, plus one per pending completion */
    conn_state_t state;
    uint8_t open, closing, reading, head, keep_alive, http_minor, timed_out;
};

struct cz_server {
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_timer_t sweep, deadline_timer;
    uv_prepare_t before_poll;   /* releases the embedder's lock before the loop blocks */
    uv_async_t wakeup;
    uv_signal_t sigint, sigterm;
    uv_mutex_t lock;            /* guards `posted` and `stop_requested` */
    cz_completion_t *posted_head, *posted_tail;
    int stop_requested;
    cz_allocator_t *alloc;
    const cz_router_t *router;
    cz_server_config_t cfg;
    cz_server_hooks_t hooks;
    cz_http_date_t date;
    char *rbuf;                 /* one read buffer for the whole loop */
    int rbuf_busy;
    cz_conn_t *conns;
    cz_server_counters_t counters;
    unsigned inflight;          /* requests answered later through cz_server_post() */
    int port, listening, stopping, loop_ready, locked;
};

static uint64_t ms(double seconds) { return seconds <= 0 ? 0 : (uint64_t)(seconds * 1000.0); }

void cz_server_config_default(cz_server_config_t *c) {
    memset(c, 0, sizeof(*c));
    c->max_connections = CZ_SERVER_DEFAULT_MAX_CONNECTIONS;
    c->header_timeout = CZ_SERVER_DEFAULT_HEADER_TIMEOUT;
    c->body_timeout = CZ_SERVER_DEFAULT_BODY_TIMEOUT;
    c->keepalive_timeout = CZ_SERVER_DEFAULT_KEEPALIVE_TIMEOUT;
    c->write_timeout = CZ_SERVER_DEFAULT_WRITE_TIMEOUT;
    c->shutdown_timeout = CZ_SERVER_DEFAULT_SHUTDOWN_TIMEOUT;
    c->max_write_buffer = CZ_SERVER_DEFAULT_MAX_WRITE_BUFFER;
    c->backlog = 1024;
    cz_http_limits_default(&c->http);
}

static void conn_close(cz_conn_t *c);
static void conn_process(cz_conn_t *c, const char *data, size_t len);
static void conn_flush(cz_conn_t *c);
static void maybe_finish_stop(cz_server_t *s);

/* ---- the embedder's lock --------------------------------------------------------------- */

static void hooks_enter(cz_server_t *s) {
    if (s->locked) return;
    if (s->hooks.lock) s->hooks.lock(s->hooks.ctx);
    s->locked = 1;
}

static void hooks_leave(cz_server_t *s) {
    if (!s->locked) return;
    s->locked = 0;
    if (s->hooks.unlock) s->hooks.unlock(s->hooks.ctx);
}

/* The lock taken by the first hook call of a loop iteration is kept for
 * every callback of that iteration (a busy loop gets many reads from one
 * poll) and released here, just before the loop polls and may block. */
static void on_before_poll(uv_prepare_t *h) { hooks_leave(h->data); }

/* ---- connection lifetime ------------------------------------------------------------ */

static void conn_unref(cz_conn_t *c) {
    if (--c->refs > 0) return;
    cz_server_t *s = c->srv;
    cz_http_parser_destroy(&c->parser);
    cz_http_buf_free(&c->out[0]);
    cz_http_buf_free(&c->out[1]);
    cz_free(s->alloc, CZ_MEM_REQUEST, c->pending);
    cz_free(s->alloc, CZ_MEM_REQUEST, c);
    maybe_finish_stop(s);
}

static void on_conn_closed(uv_handle_t *h) { conn_unref((cz_conn_t *)h->data); }

static void conn_close(cz_conn_t *c) {
    if (!c->open) return;
    cz_server_t *s = c->srv;
    c->open = 0;
    if (c->prev) c->prev->next = c->next;
    else s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
    s->counters.active_connections--;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static size_t conn_queued(const cz_conn_t *c) { return c->out[0].len + c->out[1].len; }

/* ---- reading -------------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    cz_server_t *s = ((cz_conn_t *)h->data)->srv;
    /* The read callback consumes the buffer before the loop reads again. */
    buf->base = s->rbuf;
    buf->len = READ_CHUNK;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
    cz_conn_t *c = stream->data;
    if (nread < 0) {
        /* EOF or error: what was received is answered if it is in progress,
         * but nothing more is read. */
        uv_read_stop(stream);
        c->reading = 0;
        if (c->state == CONN_BUSY || c->writing) c->closing = 1;
        else conn_close(c);
        return;
    }
    if (nread == 0) return;
    cz_server_t *s = c->srv;
    cz_http_date_update(&s->date, time(NULL));
    conn_process(c, buf->base, (size_t)nread);
    conn_flush(c);
}

static void conn_read_start(cz_conn_t *c) {
    if (!c->open || c->reading || c->closing) return;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) c->reading = 1;
}

static void conn_read_stop(cz_conn_t *c) {
    if (!c->reading) return;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = 0;
}

/* Keep the unparsed bytes until the connection can go on; stop reading so
 * that they stay bounded by one read. */
static void conn_keep(cz_conn_t *c, const char *data, size_t len) {
    conn_read_stop(c);
    if (len == 0) return;
    char *p = cz_malloc(c->srv->alloc, CZ_MEM_REQUEST, len);
    if (!p) {
        conn_close(c);
        return;
    }
    memcpy(p, data, len);
    c->pending = p;
    c->pending_len = len;
}

/* Go on with a connection after its request was answered or its output drained. */
static void conn_resume(cz_conn_t *c) {
    if (!c->open || c->state == CONN_BUSY) return;
    if (conn_queued(c) > c->srv->cfg.max_write_buffer) return;
    if (c->pending) {
        char *p = c->pending;
        size_t n = c->pending_len;
        c->pending = NULL;
        c->pending_len = 0;
        conn_process(c, p, n);
        cz_free(c->srv->alloc, CZ_MEM_REQUEST, p);
    }
    if (c->open && !c->pending && c->state != CONN_BUSY && !c->closing) conn_read_start(c);
    conn_flush(c);
}

/* ---- responding --------------------------------------------------------------------------- */

/* Whether the response being written may leave the connection open. */
static int conn_keeps_alive(const cz_conn_t *c) {
    return c->keep_alive && !c->closing && !c->srv->stopping;
}

static void request_done(cz_conn_t *c) {
    cz_server_t *s = c->srv;
    c->state = CONN_IDLE;
    cz_http_parser_done(&c->parser);
    /* The handler may have run for a while: the loop's clock is from before it. */
    uv_update_time(&s->loop);
    c->deadline = uv_now(&s->loop) + ms(s->cfg.keepalive_timeout);
    if (!c->keep_alive || s->stopping) c->closing = 1;
}

int cz_conn_respond(cz_conn_t *c, const cz_http_response_t *r) {
    cz_http_response_t resp = *r;
    resp.http_minor = c->http_minor;
    resp.keep_alive = conn_keeps_alive(c);
    resp.head = c->head;
    if (!resp.keep_alive) c->keep_alive = 0;
    int rc = cz_http_response_write(&c->out[c->cur], &c->srv->date, &resp);
    if (rc == CZ_HTTP_EINVAL) {
        rc = cz_http_write_error(&c->out[c->cur], &c->srv->date, 500, NULL, c->http_minor,
                                 resp.keep_alive, c->head);
    }
    if (rc != CZ_HTTP_OK) c->keep_alive = 0; /* out of memory: close after what is queued */
    return rc;
}

int cz_conn_respond_error(cz_conn_t *c, int status, const char *allow) {
    int keep = conn_keeps_alive(c);
    if (!keep) c->keep_alive = 0;
    int rc = cz_http_write_error(&c->out[c->cur], &c->srv->date, status, allow, c->http_minor, keep,
                                 c->head);
    /* Unanswered, the next pipelined response would pass for this one's. */
    if (rc != CZ_HTTP_OK) c->keep_alive = 0;
    return rc;
}

static void on_write(uv_write_t *w, int status) {
    cz_conn_t *c = w->data;
    cz_server_t *s = c->srv;
    c->writing = 0;
    cz_http_buf_reset(&c->out[c->cur ^ 1], OUT_KEEP);
    if (status < 0 || !c->open) {
        conn_close(c);
        conn_unref(c); /* the write's hold */
        return;
    }
    if (c->out[c->cur].len) {
        conn_flush(c);
    } else if (c->closing && c->state != CONN_BUSY) {
        conn_close(c);
    } else {
        if (c->state == CONN_IDLE) {
            uv_update_time(&s->loop);
            c->deadline = uv_now(&s->loop) + ms(s->cfg.keepalive_timeout);
        }
        conn_resume(c); /* may answer buffered pipelined requests: hooks */
    }
    conn_unref(c);
}

static void conn_flush(cz_conn_t *c) {
    if (!c->open || c->writing) return;
    cz_http_buf_t *b = &c->out[c->cur];
    if (b->len == 0) {
        if (c->closing && c->state != CONN_BUSY) conn_close(c);
        return;
    }
    uv_buf_t ub = uv_buf_init(b->data, (unsigned)b->len);
    if (c->reading && !c->pending && !c->closing) {
        /* Most answers fit the socket buffer: written now, with no write
         * request, completion callback or poll change. A connection with
         * more to do (held input, closing) takes the request's path. */
        int n = uv_try_write((uv_stream_t *)&c->tcp, &ub, 1);
        if (n == (int)b->len) { /* the keep-alive clock request_done() started goes on */
            cz_http_buf_reset(b, OUT_KEEP);
            return;
        }
        if (n < 0 && n != UV_EAGAIN) {
            conn_close(c);
            return;
        }
        if (n > 0) ub = uv_buf_init(b->data + n, (unsigned)(b->len - (size_t)n));
    }
    c->wreq.data = c;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &ub, 1, on_write) != 0) {
        conn_close(c);
        return;
    }
    c->refs++;
    c->writing = 1;
    c->cur ^= 1;
    /* A client that does not read its responses gets write_timeout. */
    c->deadline = uv_now(&c->srv->loop) + ms(c->srv->cfg.write_timeout);
}

/* ---- requests ------------------------------------------------------------------------------ */

/* Route one complete request and answer it (or leave it pending). */
static void conn_request(cz_conn_t *c, const cz_http_request_t *req) {
    cz_server_t *s = c->srv;
    s->counters.requests++;
    c->state = CONN_BUSY;
    c->deadline = 0;
    c->head = req->method_id == HTTP_HEAD;
    c->keep_alive = req->keep_alive && !s->stopping;
    c->http_minor = (uint8_t)req->http_minor;

    cz_match_t m;
    int keep = conn_keeps_alive(c), rc;
    cz_answer_to_t to = {&c->out[c->cur], &s->date, c->http_minor, keep, c->head};
    if (cz_answer_route(s->router, s->alloc, req, s->hooks.not_found, &to, &m, &rc) == CZ_ANSWER_APP) {
        hooks_enter(s);
        if (s->hooks.request(s->hooks.ctx, c, req, &m) == CZ_DISPATCH_PENDING) {
            c->refs++;
            s->inflight++;
            return;
        }
    } else if (rc != CZ_HTTP_OK || !keep) {
        c->keep_alive = 0; /* unanswered, or answered with Connection: close */
    }
    request_done(c);
}

static void conn_process(cz_conn_t *c, const char *data, size_t len) {
    cz_server_t *s = c->srv;
    while (c->open) {
        if (c->state == CONN_BUSY || c->closing || conn_queued(c) > s->cfg.max_write_buffer) {
            if (!c->closing) conn_keep(c, data, len);
            return;
        }
        if (len == 0) return;
        size_t used = 0;
        cz_http_event_t ev = cz_http_parser_feed(&c->parser, data, len, &used);
        data += used;
        len -= used;
        switch (ev) {
        case CZ_HTTP_NEED_MORE:
            if (c->state == CONN_IDLE) {
                c->state = CONN_HEAD;
                c->deadline = uv_now(&s->loop) + ms(s->cfg.header_timeout);
            } else if (c->state == CONN_BODY) {
                c->deadline = uv_now(&s->loop) + ms(s->cfg.body_timeout);
            }
            return;
        case CZ_HTTP_HEADERS: {
            const cz_http_request_t *req = cz_http_parser_request(&c->parser);
            c->state = CONN_BODY;
            c->deadline = uv_now(&s->loop) + ms(s->cfg.body_timeout);
            if (req->expect_continue && len == 0) {
                cz_http_buf_append(&c->out[c->cur], CZ_HTTP_100_CONTINUE,
                                   sizeof(CZ_HTTP_100_CONTINUE) - 1);
            }
            break;
        }
        case CZ_HTTP_REQUEST:
            conn_request(c, cz_http_parser_request(&c->parser));
            break;
        case CZ_HTTP_ERROR:
        default:
            c->state = CONN_IDLE;
            c->closing = 1;
            cz_http_write_error(&c->out[c->cur], &s->date, cz_http_parser_status(&c->parser), NULL,
                                1, 0, 0);
            conn_read_stop(c);
            return;
        }
    }
}

/* ---- accepting ------------------------------------------------------------------------------- */

static void on_connection(uv_stream_t *server, int status) {
    cz_server_t *s = server->data;
    if (status < 0) return;
    cz_conn_t *c = cz_calloc(s->alloc, CZ_MEM_REQUEST, 1, sizeof(*c));
    if (!c) return;
    c->srv = s;
    c->refs = 1;
    uv_tcp_init(&s->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 || s->stopping ||
        s->counters.active_connections >= s->cfg.max_connections) {
        s->counters.rejected++;
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    s->counters.accepted++;
    s->counters.active_connections++;
    uv_tcp_nodelay(&c->tcp, 1);
    cz_http_parser_init(&c->parser, s->alloc, &s->cfg.http);
    cz_http_buf_init(&c->out[0], s->alloc, 0);
    cz_http_buf_init(&c->out[1], s->alloc, 0);
    c->open = 1;
    c->state = CONN_IDLE;
    c->keep_alive = 1;
    c->http_minor = 1;
    c->deadline = uv_now(&s->loop) + ms(s->cfg.header_timeout);
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    conn_read_start(c);
}

/* ---- timers, stop, completions ------------------------------------------------------------------ */

static void on_sweep(uv_timer_t *t) {
    cz_server_t *s = t->data;
    uint64_t now = uv_now(&s->loop);
    cz_http_date_update(&s->date, time(NULL));
    for (cz_conn_t *c = s->conns, *next; c; c = next) {
        next = c->next;
        if (!c->deadline || now < c->deadline || c->state == CONN_BUSY) continue;
        if ((c->state == CONN_HEAD || c->state == CONN_BODY) && !c->writing && !c->timed_out) {
            /* Part of a request arrived, the rest did not: say so, then close. */
            c->timed_out = 1;
            c->closing = 1;
            conn_read_stop(c);
            cz_http_write_error(&c->out[c->cur], &s->date, 408, NULL, 1, 0, 0);
            c->deadline = now + 1000;
            conn_flush(c);
        } else {
            conn_close(c);
        }
    }
}

static void close_handle(uv_handle_t *h) {
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

/* The loop's own handles; once they are closed, uv_run() returns. */
static void close_loop_handles(cz_server_t *s) {
    close_handle((uv_handle_t *)&s->sweep);
    close_handle((uv_handle_t *)&s->deadline_timer);
    close_handle((uv_handle_t *)&s->before_poll);
    close_handle((uv_handle_t *)&s->wakeup);
    close_handle((uv_handle_t *)&s->sigint);
    close_handle((uv_handle_t *)&s->sigterm);
}

static void maybe_finish_stop(cz_server_t *s) {
    /* Requests in flight will post their completion: the wakeup handle
     * must stay open for them. */
    if (!s->stopping || s->conns || s->inflight || !s->loop_ready) return;
    close_loop_handles(s);
}

static void on_shutdown_deadline(uv_timer_t *t) {
    cz_server_t *s = t->data;
    if (s->inflight && s->hooks.expired) {
        hooks_enter(s);
        s->hooks.expired(s->hooks.ctx);
        hooks_leave(s);
    }
    for (cz_conn_t *c = s->conns, *next; c; c = next) {
        next = c->next;
        conn_close(c);
    }
}

static void begin_stop(cz_server_t *s) {
    if (s->stopping) return;
    s->stopping = 1;
    if (s->listening) {
        close_handle((uv_handle_t *)&s->listener);
        s->listening = 0;
    }
    uv_signal_stop(&s->sigint);
    uv_signal_stop(&s->sigterm);
    for (cz_conn_t *c = s->conns, *next; c; c = next) {
        next = c->next;
        c->closing = 1;
        /* Idle and half-received requests are not in flight: close now. */
        if (c->state != CONN_BUSY && !c->writing) conn_close(c);
    }
    uv_timer_start(&s->deadline_timer, on_shutdown_deadline, ms(s->cfg.shutdown_timeout), 0);
    uv_unref((uv_handle_t *)&s->deadline_timer);
    maybe_finish_stop(s);
}

static void on_signal(uv_signal_t *h, int signum) {
    (void)signum;
    begin_stop(h->data);
}

static void on_wakeup(uv_async_t *a) {
    cz_server_t *s = a->data;
    uv_mutex_lock(&s->lock);
    cz_completion_t *list = s->posted_head;
    s->posted_head = s->posted_tail = NULL;
    int stop = s->stop_requested;
    uv_mutex_unlock(&s->lock);
    cz_http_date_update(&s->date, time(NULL));
    while (list) {
        cz_completion_t *next = list->next;
        cz_conn_t *c = list->conn;
        hooks_enter(s);
        s->hooks.complete(s->hooks.ctx, c, list->item);
        cz_free(s->alloc, CZ_MEM_TASK, list);
        s->inflight--;
        if (c->open) {
            request_done(c);
            conn_resume(c);
        }
        conn_unref(c);
        list = next;
    }
    if (stop) begin_stop(s);
    maybe_finish_stop(s);
}

int cz_server_post(cz_server_t *s, cz_conn_t *c, void *item) {
    cz_completion_t *p = cz_malloc(s->alloc, CZ_MEM_TASK, sizeof(*p));
    if (!p) return -1;
    p->next = NULL;
    p->conn = c;
    p->item = item;
    uv_mutex_lock(&s->lock);
    if (s->posted_tail) s->posted_tail->next = p;
    else s->posted_head = p;
    s->posted_tail = p;
    uv_mutex_unlock(&s->lock);
    uv_async_send(&s->wakeup);
    return 0;
}

void cz_server_stop(cz_server_t *s) {
    uv_mutex_lock(&s->lock);
    s->stop_requested = 1;
    int ready = s->loop_ready;
    uv_mutex_unlock(&s->lock);
    if (ready) uv_async_send(&s->wakeup);
}

/* ---- lifecycle ------------------------------------------------------------------------------------- */

cz_server_t *cz_server_create(cz_allocator_t *alloc, const cz_router_t *router,
                              const cz_server_config_t *config, const cz_server_hooks_t *hooks) {
    cz_server_t *s = cz_calloc(alloc, CZ_MEM_GENERAL, 1, sizeof(*s));
    if (!s) return NULL;
    s->alloc = alloc;
    s->router = router;
    if (config) s->cfg = *config;
    else cz_server_config_default(&s->cfg);
    s->hooks = *hooks;
    s->rbuf = cz_malloc(alloc, CZ_MEM_REQUEST, READ_CHUNK);
    if (!s->rbuf || uv_loop_init(&s->loop) != 0) {
        cz_free(alloc, CZ_MEM_REQUEST, s->rbuf);
        cz_free(alloc, CZ_MEM_GENERAL, s);
        return NULL;
    }
    uv_mutex_init(&s->lock);
    s->loop.data = s;
    cz_http_date_init(&s->date, time(NULL));
    uv_tcp_init(&s->loop, &s->listener);
    s->listener.data = s;
    uv_timer_init(&s->loop, &s->sweep);
    s->sweep.data = s;
    uv_timer_init(&s->loop, &s->deadline_timer);
    s->deadline_timer.data = s;
    uv_prepare_init(&s->loop, &s->before_poll);
    s->before_poll.data = s;
    uv_async_init(&s->loop, &s->wakeup, on_wakeup);
    s->wakeup.data = s;
    uv_signal_init(&s->loop, &s->sigint);
    s->sigint.data = s;
    uv_signal_init(&s->loop, &s->sigterm);
    s->sigterm.data = s;
    uv_mutex_lock(&s->lock);
    s->loop_ready = 1;
    uv_mutex_unlock(&s->lock);
    return s;
}

static int bind_socket(cz_server_t *s, const char *host, int port, char *err, size_t errlen) {
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(host, portstr, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "cannot resolve host %s: %s", host, gai_strerror(gai));
        return UV_EINVAL;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1, rc = 0;
    if (fd < 0) rc = -errno;
    if (!rc && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0) rc = -errno;
#ifdef SO_REUSEPORT
    if (!rc && s->cfg.reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
        rc = -errno;
#endif
    if (!rc && bind(fd, res->ai_addr, res->ai_addrlen) < 0) rc = -errno;
    freeaddrinfo(res);
    if (!rc) rc = uv_tcp_open(&s->listener, fd);
    if (rc) {
        if (fd >= 0) close(fd);
        snprintf(err, errlen, "cannot bind %s:%d: %s", host, port, uv_strerror(rc));
    }
    return rc;
}

int cz_server_listen(cz_server_t *s, const char *host, int port, char *err, size_t errlen) {
    int rc = bind_socket(s, host, port, err, errlen);
    if (rc) return rc;
    rc = uv_listen((uv_stream_t *)&s->listener, s->cfg.backlog, on_connection);
    if (rc) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", host, port, uv_strerror(rc));
        return rc;
    }
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len) == 0) {
        s->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                           : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    s->listening = 1;
    return 0;
}

int cz_server_port(const cz_server_t *s) { return s->port; }

int cz_server_run(cz_server_t *s) {
    uv_timer_start(&s->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
    uv_prepare_start(&s->before_poll, on_before_poll);
    uv_unref((uv_handle_t *)&s->before_poll); /* it never keeps the loop alive */
    if (s->cfg.handle_signals) {
        uv_signal_start(&s->sigint, on_signal, SIGINT);
        uv_signal_start(&s->sigterm, on_signal, SIGTERM);
    }
    uv_mutex_lock(&s->lock);
    int stop = s->stop_requested;
    uv_mutex_unlock(&s->lock);
    if (stop) begin_stop(s);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    hooks_leave(s); /* the last iteration's, if the loop ended holding it */
    return 0;
}

void cz_server_destroy(cz_server_t *s) {
    if (!s) return;
    /* Close whatever run() did not (e.g. it was never called). */
    s->stopping = 1;
    for (cz_conn_t *c = s->conns, *next; c; c = next) {
        next = c->next;
        conn_close(c);
    }
    close_handle((uv_handle_t *)&s->listener);
    close_loop_handles(s);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    uv_loop_close(&s->loop);
    uv_mutex_destroy(&s->lock);
    cz_free(s->alloc, CZ_MEM_REQUEST, s->rbuf);
    cz_free(s->alloc, CZ_MEM_GENERAL, s);
}

int cz_conn_is_open(const cz_conn_t *c) { return c->open; }

const cz_http_request_t *cz_conn_request(const cz_conn_t *c) {
    return c->state == CONN_BUSY ? cz_http_parser_request(&c->parser) : NULL;
}
cz_server_t *cz_conn_server(const cz_conn_t *c) { return c->srv; }

int cz_conn_peer(const cz_conn_t *c, char *host, size_t hostlen, int *port) {
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (!c->open || uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0) return -1;
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        uv_ip6_name(a, host, hostlen);
        *port = ntohs(a->sin6_port);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        uv_ip4_name(a, host, hostlen);
        *port = ntohs(a->sin_port);
    }
    return 0;
}

void cz_server_counters(const cz_server_t *s, cz_server_counters_t *out) { *out = s->counters; }
