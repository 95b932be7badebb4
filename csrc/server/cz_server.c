/* cz_server — see cz_server.h for the contract. */
#define _GNU_SOURCE
#include "cz_server.h"

#include "cz_answer.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include <sys/sendfile.h>

#define READ_CHUNK      (64u * 1024u)
#define FILE_CHUNK      (64u * 1024u) /* a file range while the socket is full: one pread at a time */
#define FILE_LOWAT_FROM (1u << 20)    /* a file range this long keeps little of itself unsent (send_file) */
#define FILE_LOWAT      (16 * 1024)   /* that many bytes: TCP_NOTSENT_LOWAT */
#define SWEEP_MS        CZ_SERVER_SWEEP_MS
#define LINGER_MS       1000u       /* after the stop's deadline: for the 503s to be written */
#define PRESSURE_SNDBUF (64 * 1024) /* a new client's kernel send buffer while output memory is scarce */

typedef struct cz_completion {
    struct cz_completion *next;
    cz_conn_t *conn;
    void *item;
    int release; /* it answers a hold (cz_server_post), or not (cz_server_post_more) */
} cz_completion_t;

/* Socket facts, one flags word (the connection's own state is cz_conn's).
 * SOCK_LOWAT: TCP_NOTSENT_LOWAT is set (a long file range was sent).
 * SOCK_UNIX: a Unix domain socket's connection (a uv_pipe_t; no peer address). */
enum { SOCK_OPEN = 1, SOCK_READING = 2, SOCK_WRITING = 4, SOCK_WAKE = 8, SOCK_LOWAT = 16, SOCK_UNIX = 32 };

/* A listening socket or a connection: TCP, or a Unix domain socket. Both
 * are libuv streams; everything but init, accept and peer lookup goes
 * through uv_stream_t / uv_handle_t. */
typedef union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
} stream_u;

#define STREAM(u) (&(u)->stream)
#define HANDLE(u) (&(u)->handle)

typedef struct sock {
    cz_conn_t conn; /* first: the embedder's cz_conn_t * is this */
    stream_u io;
    cz_server_t *srv;
    struct sock *prev, *next;
    uv_write_t wreq;
    size_t wlen;            /* bytes of the write in flight */
    char *chunk;            /* a file range's bytes while the socket is full */
    struct sock *wake_next; /* in the server's wake list (SOCK_WAKE) */
    unsigned refs;          /* the handle, one per pending completion, one while in the wake list */
    unsigned flags;
    size_t held;          /* output memory counted in the server's output_held */
    uint64_t stall_since; /* loop ms: since when it has made no progress (see cz_server.h) */
    size_t wq_mark;       /* write queue size at the last progress check */
    uint8_t client[16];   /* peer address (IPv4 mapped into IPv6), when clients are counted */
    char peer[48];        /* cz_conn_peer_text(): "" until asked */
} sock_t;

/* Connections per client address (max_connections_per_client): an
 * open-addressing table, linear probing, deletion by backward shift. */
typedef struct {
    uint8_t addr[16];
    uint32_t count; /* 0: free */
} client_t;

struct cz_server {
    uv_loop_t loop;
    stream_u listener;
    int listener_open; /* listener initialized (it is closed with the loop) */
    int listener_unix; /* it is a Unix domain socket (a uv_pipe_t) */
    uv_timer_t sweep, deadline_timer;
    uv_prepare_t before_poll; /* releases the embedder's lock before the loop blocks */
    uv_idle_t wake;           /* runs the wake list; keeps the poll from blocking meanwhile */
    sock_t *wake_head;
    uv_async_t wakeup;
    uv_signal_t sigint, sigterm;
    uv_mutex_t lock; /* guards `posted`, `stop_requested` and `finished` */
    cz_completion_t *posted_head, *posted_tail;
    int stop_requested;
    int finished; /* the loop's handles are closing: posts are refused */
    cz_allocator_t *alloc;
    cz_server_config_t cfg;
    cz_server_hooks_t hooks;
    cz_conn_env_t env; /* what every connection shares */
    cz_http_date_t date;
    char *rbuf; /* one read buffer for the whole loop */
    sock_t *socks;
    cz_server_counters_t counters;
    unsigned inflight; /* requests answered later through cz_server_post() */
    client_t *clients; /* max_connections_per_client: a power of two over 2 * max_connections entries */
    size_t nclients;
    int port, listening, stopping, loop_ready, locked;
    int expired; /* the stop's deadline and its linger passed: in-flight work is not waited for */
};

static uint64_t ms(double seconds) {
    return seconds <= 0 ? 0 : (uint64_t)(seconds * 1000.0);
}

void cz_server_config_default(cz_server_config_t *c) {
    memset(c, 0, sizeof(*c));
    c->max_connections = CZ_SERVER_DEFAULT_MAX_CONNECTIONS;
    c->header_timeout = CZ_SERVER_DEFAULT_HEADER_TIMEOUT;
    c->body_timeout = CZ_SERVER_DEFAULT_BODY_TIMEOUT;
    c->keepalive_timeout = CZ_SERVER_DEFAULT_KEEPALIVE_TIMEOUT;
    c->write_timeout = CZ_SERVER_DEFAULT_WRITE_TIMEOUT;
    c->shutdown_timeout = CZ_SERVER_DEFAULT_SHUTDOWN_TIMEOUT;
    c->max_write_buffer = CZ_SERVER_DEFAULT_MAX_WRITE_BUFFER;
    c->max_write_buffer_total = CZ_SERVER_DEFAULT_MAX_WRITE_TOTAL;
    c->backlog = 1024;
    cz_http_limits_default(&c->http);
}

static void sock_sync(sock_t *k);
static void sock_unref(sock_t *k);
static void maybe_finish_stop(cz_server_t *s);

static sock_t *sock_of(const cz_conn_t *c) {
    return (sock_t *)(uintptr_t)c;
}

/* ---- clients ------------------------------------------------------------------------------- */

static size_t client_hash(const uint8_t *a, size_t mask) {
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    for (int i = 0; i < 16; i++) h = (h ^ a[i]) * 1099511628211u;
    return (size_t)h & mask;
}

/* The table's entry for `a`, or the free one where it would go. */
static client_t *client_slot(cz_server_t *s, const uint8_t *a) {
    size_t mask = s->nclients - 1, i = client_hash(a, mask);
    while (s->clients[i].count && memcmp(s->clients[i].addr, a, 16) != 0) i = (i + 1) & mask;
    return &s->clients[i];
}

static void client_release(cz_server_t *s, const uint8_t *a) {
    client_t *e = client_slot(s, a);
    if (!e->count || --e->count) return;
    /* Backward shift: later entries of the run move up into the hole. */
    size_t mask = s->nclients - 1, hole = (size_t)(e - s->clients), j = hole;
    for (;;) {
        j = (j + 1) & mask;
        if (!s->clients[j].count) break;
        size_t home = client_hash(s->clients[j].addr, mask);
        /* it may fill the hole unless its home lies cyclically in (hole, j] */
        if ((j > hole && (home <= hole || home > j)) || (j < hole && home <= hole && home > j)) {
            s->clients[hole] = s->clients[j];
            s->clients[j].count = 0;
            hole = j;
        }
    }
}

/* The peer of `k` as 16 bytes; -1 when it has none (e.g. a Unix socket). */
static int peer_key(sock_t *k, uint8_t *out) {
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if ((k->flags & SOCK_UNIX) || uv_tcp_getpeername(&k->io.tcp, (struct sockaddr *)&ss, &len) != 0) return -1;
    if (ss.ss_family == AF_INET6) {
        memcpy(out, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
    } else if (ss.ss_family == AF_INET) {
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        memcpy(out, mapped, 12);
        memcpy(out + 12, &((struct sockaddr_in *)&ss)->sin_addr, 4);
    } else {
        return -1;
    }
    return 0;
}

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

/* cfg.memory_per_request: what the loop thread allocates while it works
 * for connection `k` is counted in its tally (cz_conn_answered_t.mem).
 * Left before anything may free `k` (sock_unref). */
static void tally_enter(sock_t *k) {
    if (k->srv->cfg.memory_per_request) cz_mem_tally_enter(cz_conn_tally(&k->conn));
}

static void tally_leave(cz_server_t *s) {
    if (s->cfg.memory_per_request) cz_mem_tally_enter(NULL);
}

/* The lock taken by the first hook call of a loop iteration is kept for
 * every callback of that iteration (a busy loop gets many reads from one
 * poll) and released here, just before the loop polls and may block. */
static void on_before_poll(uv_prepare_t *h) {
    hooks_leave(h->data);
}

/* ---- cz_conn's environment: the hooks, under the lock ----------------------------------- */

static uint64_t env_now(void *ctx, int fresh) {
    cz_server_t *s = ctx;
    if (fresh) uv_update_time(&s->loop);
    return uv_now(&s->loop);
}

static cz_conn_dispatch_t env_dispatch(void *ctx, cz_conn_t *c, const cz_http_request_t *req, const cz_match_t *m) {
    cz_server_t *s = ctx;
    hooks_enter(s);
    if (s->hooks.request(s->hooks.ctx, c, req, m) != CZ_CONN_PENDING) return CZ_CONN_DONE;
    sock_of(c)->refs++; /* until the completion has run */
    s->inflight++;
    return CZ_CONN_PENDING;
}

static void env_upgraded(void *ctx, cz_conn_t *c, const char *data, size_t len) {
    cz_server_t *s = ctx;
    hooks_enter(s);
    s->hooks.upgraded(s->hooks.ctx, c, data, len);
}

static uint64_t env_route_max_body(void *ctx, uint32_t route_index) {
    cz_server_t *s = ctx;
    return s->hooks.route_max_body(s->hooks.ctx, route_index); /* no Python: no lock */
}

static void env_upgraded_event(void *ctx, cz_conn_t *c, cz_conn_upgraded_event_t event) {
    cz_server_t *s = ctx;
    hooks_enter(s);
    s->hooks.upgraded_event(s->hooks.ctx, c, event);
}

static int env_route_streams_body(void *ctx, uint32_t route_index, const cz_http_request_t *req) {
    cz_server_t *s = ctx;
    return s->hooks.route_streams_body(s->hooks.ctx, route_index, req); /* no Python: no lock */
}

static void env_body(void *ctx, cz_conn_t *c, const char *data, size_t len, int status) {
    cz_server_t *s = ctx;
    hooks_enter(s);
    s->hooks.body(s->hooks.ctx, c, data, len, status);
}

static void env_answered(void *ctx, cz_conn_t *c, const cz_conn_answered_t *a) {
    cz_server_t *s = ctx;
    hooks_enter(s);
    s->hooks.answered(s->hooks.ctx, c, a);
}

static uint64_t env_clock_ns(void *ctx) {
    (void)ctx;
    return uv_hrtime();
}

static void env_drained(void *ctx, cz_conn_t *c) {
    cz_server_t *s = ctx;
    hooks_enter(s);
    s->hooks.drained(s->hooks.ctx, c);
}

/* Streams asked to go on: one piece each per loop iteration; upgraded
 * connections given output from elsewhere: written. */
static void on_wake(uv_idle_t *h) {
    cz_server_t *s = h->data;
    sock_t *list = s->wake_head;
    s->wake_head = NULL;
    uv_idle_stop(h);
    while (list) {
        sock_t *k = list;
        list = k->wake_next;
        k->flags &= ~(unsigned)SOCK_WAKE;
        cz_conn_state_t st = (k->flags & SOCK_OPEN) ? cz_conn_state(&k->conn) : CZ_CONN_CLOSED;
        if (st == CZ_CONN_STREAM && s->hooks.drained) {
            hooks_enter(s);
            tally_enter(k);
            s->hooks.drained(s->hooks.ctx, &k->conn);
            cz_conn_resume(&k->conn);
            sock_sync(k);
            tally_leave(s);
        } else if (st == CZ_CONN_UPGRADED) {
            sock_sync(k); /* output appended from another connection's hook */
        }
        sock_unref(k);
    }
}

void cz_server_hold(cz_conn_t *c) {
    sock_of(c)->refs++;
    sock_of(c)->srv->inflight++;
}

void cz_server_wake(cz_conn_t *c) {
    sock_t *k = sock_of(c);
    cz_server_t *s = k->srv;
    if (k->flags & SOCK_WAKE) return;
    k->flags |= SOCK_WAKE;
    k->refs++;
    k->wake_next = s->wake_head;
    s->wake_head = k;
    uv_idle_start(&s->wake, on_wake);
}

/* ---- socket lifetime ------------------------------------------------------------------ */

static void sock_unref(sock_t *k) {
    if (--k->refs > 0) return;
    cz_server_t *s = k->srv;
    cz_conn_destroy(&k->conn);
    cz_free(s->alloc, CZ_MEM_RESPONSE, k->chunk);
    cz_free(s->alloc, CZ_MEM_REQUEST, k);
    maybe_finish_stop(s);
}

static void on_sock_closed(uv_handle_t *h) {
    sock_unref((sock_t *)h->data);
}

static void sock_close(sock_t *k) {
    if (!(k->flags & SOCK_OPEN)) return;
    cz_server_t *s = k->srv;
    k->flags &= ~(unsigned)SOCK_OPEN;
    cz_conn_abort(&k->conn); /* the embedder sees cz_conn_is_open() == 0 */
    if (k->conn.user && s->hooks.closed) {
        hooks_enter(s);
        s->hooks.closed(s->hooks.ctx, &k->conn);
    }
    if (k->prev) k->prev->next = k->next;
    else s->socks = k->next;
    if (k->next) k->next->prev = k->prev;
    k->prev = k->next = NULL;
    s->counters.active_connections--;
    if (s->clients && !(k->flags & SOCK_UNIX)) client_release(s, k->client);
    s->counters.output_held -= k->held;
    k->held = 0;
    uv_close(HANDLE(&k->io), on_sock_closed);
}

/* ---- reading -------------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    cz_server_t *s = ((sock_t *)h->data)->srv;
    /* The read callback consumes the buffer before the loop reads again. */
    buf->base = s->rbuf;
    buf->len = READ_CHUNK;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
    sock_t *k = stream->data;
    cz_server_t *s = k->srv;
    tally_enter(k);
    if (nread < 0) {
        /* EOF or error: nothing more is read; what is in progress is answered. */
        uv_read_stop(stream);
        k->flags &= ~(unsigned)SOCK_READING;
        cz_conn_eof(&k->conn);
    } else if (nread > 0) {
        cz_http_date_update(&k->srv->date, time(NULL));
        /* A body arriving in full reads is progress; a trickle is not. */
        if ((size_t)nread >= CZ_SERVER_SLOW_READER_BPS / 4u) k->stall_since = uv_now(&k->srv->loop);
        cz_conn_feed(&k->conn, buf->base, (size_t)nread);
    }
    sock_sync(k);
    tally_leave(s);
}

/* ---- writing ------------------------------------------------------------------------------- */

static void on_write(uv_write_t *w, int status) {
    sock_t *k = w->data;
    k->flags &= ~(unsigned)SOCK_WRITING;
    if (status < 0 || !(k->flags & SOCK_OPEN)) {
        sock_close(k);
    } else {
        tally_enter(k);
        cz_conn_out_sent(&k->conn, k->wlen);
        k->stall_since = uv_now(&k->srv->loop);
        cz_conn_resume(&k->conn); /* may answer held pipelined requests: hooks */
        sock_sync(k);
        tally_leave(k->srv); /* k lives until its write's hold is let go below */
    }
    sock_unref(k); /* the write's hold */
}

static int sock_write(sock_t *k, const char *base, size_t len) {
    uv_buf_t ub = uv_buf_init((char *)(uintptr_t)base, (unsigned)len);
    k->wreq.data = k;
    if (uv_write(&k->wreq, STREAM(&k->io), &ub, 1, on_write) != 0) return -1;
    k->wlen = len;
    k->wq_mark = len;
    k->refs++;
    k->flags |= SOCK_WRITING;
    cz_conn_out_blocked(&k->conn);
    return 0;
}

/* A file range: sendfile while the socket takes it; when it is full, one
 * bounded chunk through uv_write, which waits for the socket. 1: all of the
 * segment went out now; 0: a write is in flight; -1: close.
 *
 * For a long range the socket keeps at most FILE_LOWAT bytes unsent (once
 * per connection; bytes in flight are not limited). Without it sendfile
 * fills the whole send buffer (up to tcp_wmem's 4 MiB) with unsent pages,
 * which the client's ACKs then transmit from softirq on the CPU that takes
 * them (on loopback, the client's own), and a client that stops reading
 * holds all of it in kernel memory (3.8 MB of send queue for a 10 MiB file,
 * 32 KB with it). With it, the socket is writable again as soon as the
 * little left is on the wire, and sendfile, from the loop, transmits as it
 * queues: this more than doubled the requests/s of 10 MiB files at -c8 on
 * loopback. */
static int send_file(sock_t *k, const cz_conn_seg_t *seg) {
    uv_os_fd_t sockfd;
    if (uv_fileno(HANDLE(&k->io), &sockfd) != 0) return -1;
#ifdef TCP_NOTSENT_LOWAT
    if (seg->len >= FILE_LOWAT_FROM && !(k->flags & SOCK_LOWAT)) {
        int lowat = FILE_LOWAT;
        setsockopt(sockfd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof(lowat)); /* a hint: failure is harmless */
        k->flags |= SOCK_LOWAT;
    }
#endif
    off_t off = (off_t)seg->offset;
    size_t want = seg->len > (1u << 30) ? (1u << 30) : seg->len;
    ssize_t n = sendfile(sockfd, seg->fd, &off, want);
    if (n > 0) {
        cz_conn_out_sent(&k->conn, (size_t)n);
        return 1; /* peek again: the rest, or the next segment */
    }
    if (n == 0) return -1; /* the file shrank: never send a wrong length */
    if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
    if (!k->chunk && !(k->chunk = cz_malloc(k->srv->alloc, CZ_MEM_RESPONSE, FILE_CHUNK))) return -1;
    size_t len = seg->len < FILE_CHUNK ? seg->len : FILE_CHUNK;
    ssize_t r = pread(seg->fd, k->chunk, len, (off_t)seg->offset);
    if (r <= 0) return -1;
    return sock_write(k, k->chunk, (size_t)r) == 0 ? 0 : -1;
}

/* Write what cz_conn queued. 1 when all of it went out now. */
static int sock_flush(sock_t *k) {
    cz_conn_seg_t seg;
    while ((k->flags & (SOCK_OPEN | SOCK_WRITING)) == SOCK_OPEN && cz_conn_out_peek(&k->conn, &seg)) {
        if (!seg.base) {
            int rc = send_file(k, &seg);
            if (rc < 0) sock_close(k);
            if (rc <= 0) return 0;
            continue;
        }
        /* Most answers fit the socket buffer: written now, with no write
         * request, completion callback or poll change. */
        uv_buf_t ub = uv_buf_init((char *)(uintptr_t)seg.base, (unsigned)seg.len);
        int n = uv_try_write(STREAM(&k->io), &ub, 1);
        if (n == (int)seg.len) {
            cz_conn_out_sent(&k->conn, seg.len);
            continue;
        }
        if (n < 0 && n != UV_EAGAIN) {
            sock_close(k);
            return 0;
        }
        if (n > 0) cz_conn_out_sent(&k->conn, (size_t)n);
        if (n > 0 && !cz_conn_out_peek(&k->conn, &seg)) return 1;
        if (sock_write(k, seg.base, seg.len) != 0) sock_close(k);
        return 0;
    }
    return (k->flags & (SOCK_OPEN | SOCK_WRITING)) == SOCK_OPEN;
}

/* ---- slow clients ------------------------------------------------------------------------------ */

/* The connection that has made no progress for the longest time, at least
 * `grace` ms; when `holding`, only one that holds output. NULL if none. */
static sock_t *most_stalled(cz_server_t *s, uint64_t grace, int holding) {
    uint64_t now = uv_now(&s->loop);
    sock_t *victim = NULL;
    for (sock_t *k = s->socks; k; k = k->next) {
        cz_conn_state_t st = cz_conn_state(&k->conn);
        if (st == CZ_CONN_BUSY || (holding && !k->held) || now - k->stall_since < grace) continue;
        if (!victim || k->stall_since < victim->stall_since) victim = k;
    }
    return victim;
}

static void evict(sock_t *k) {
    k->srv->counters.evicted++;
    sock_close(k);
}

/* Count what `k` holds; past the total bound, close the slowest readers. */
static void account_output(sock_t *k) {
    cz_server_t *s = k->srv;
    size_t held = (k->flags & SOCK_OPEN) ? cz_conn_out_held(&k->conn) : 0;
    s->counters.output_held += held;
    s->counters.output_held -= k->held;
    k->held = held;
    while (s->cfg.max_write_buffer_total && s->counters.output_held > s->cfg.max_write_buffer_total) {
        /* Stalled ones first; then, the bound being a bound, whoever has
         * made no progress for the longest time. */
        sock_t *victim = most_stalled(s, CZ_SERVER_STALL_GRACE_MS, 1);
        if (!victim) victim = most_stalled(s, 0, 1);
        if (!victim) break;
        evict(victim);
    }
}

/* Sweep: a write that moved at least the slow-reader rate is progress. */
static void check_progress(sock_t *k, uint64_t now) {
    if (!(k->flags & SOCK_WRITING)) return;
    size_t q = uv_stream_get_write_queue_size(STREAM(&k->io));
    if (k->wq_mark >= q && k->wq_mark - q >= (size_t)CZ_SERVER_SLOW_READER_BPS * SWEEP_MS / 1000u) {
        k->stall_since = now;
        k->wq_mark = q;
    }
}

/* After anything happened to a connection: write its output, go on with
 * held input when the output went out at once, close it when it is done,
 * and read from it only when it wants input. */
static void sock_sync(sock_t *k) {
    while (sock_flush(k) && cz_conn_resume(&k->conn)) {}
    account_output(k);
    if (!(k->flags & SOCK_OPEN)) return;
    cz_conn_state_t st = cz_conn_state(&k->conn);
    /* Working for it, or everything it asked for is sent: not stalled. */
    if (st == CZ_CONN_BUSY || st == CZ_CONN_STREAM || st == CZ_CONN_UPGRADED ||
        (st == CZ_CONN_IDLE && !(k->flags & SOCK_WRITING) && cz_conn_out_pending(&k->conn) == 0))
        k->stall_since = uv_now(&k->srv->loop);
    if (st == CZ_CONN_CLOSED ||
        (st == CZ_CONN_CLOSING && !(k->flags & SOCK_WRITING) && cz_conn_out_pending(&k->conn) == 0)) {
        sock_close(k);
        return;
    }
    int want = cz_conn_wants_input(&k->conn);
    if (want && !(k->flags & SOCK_READING)) {
        if (uv_read_start(STREAM(&k->io), on_alloc, on_read) == 0) k->flags |= SOCK_READING;
    } else if (!want && (k->flags & SOCK_READING)) {
        uv_read_stop(STREAM(&k->io));
        k->flags &= ~(unsigned)SOCK_READING;
    }
}

/* ---- accepting ------------------------------------------------------------------------------- */

static void on_connection(uv_stream_t *server, int status) {
    cz_server_t *s = server->data;
    if (status < 0) return;
    sock_t *k = cz_calloc(s->alloc, CZ_MEM_REQUEST, 1, sizeof(*k));
    if (!k) return;
    k->srv = s;
    k->refs = 1;
    if (s->listener_unix) {
        uv_pipe_init(&s->loop, &k->io.pipe, 0);
        k->flags = SOCK_UNIX;
    } else {
        uv_tcp_init(&s->loop, &k->io.tcp);
    }
    HANDLE(&k->io)->data = k;
    cz_conn_init(&k->conn, &s->env);
    k->stall_since = uv_now(&s->loop);
    if (!s->stopping && s->counters.active_connections >= s->cfg.max_connections) {
        /* At the limit, a stalled connection gives way to the new client. */
        sock_t *victim = most_stalled(s, CZ_SERVER_STALL_GRACE_MS, 0);
        if (victim) evict(victim);
    }
    if (uv_accept(server, STREAM(&k->io)) != 0 || s->stopping ||
        s->counters.active_connections >= s->cfg.max_connections) {
        s->counters.rejected++;
        uv_close(HANDLE(&k->io), on_sock_closed);
        return;
    }
    if (s->clients && !(k->flags & SOCK_UNIX)) { /* a Unix socket's clients are all one local peer */
        client_t *e = peer_key(k, k->client) == 0 ? client_slot(s, k->client) : NULL;
        if (!e || e->count >= s->cfg.max_connections_per_client) {
            s->counters.rejected++;
            uv_close(HANDLE(&k->io), on_sock_closed);
            return;
        }
        if (!e->count) memcpy(e->addr, k->client, 16);
        e->count++;
    }
    s->counters.accepted++;
    s->counters.active_connections++;
    if (!(k->flags & SOCK_UNIX)) uv_tcp_nodelay(&k->io.tcp, 1);
    if (s->cfg.max_write_buffer_total && s->counters.output_held > s->cfg.max_write_buffer_total / 2u) {
        /* Output memory is scarce: this client's kernel buffer is capped
         * too, so a slow reader costs little to serve and to close. */
        uv_os_fd_t fd;
        int size = PRESSURE_SNDBUF;
        if (uv_fileno(HANDLE(&k->io), &fd) == 0) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    }
    k->flags |= SOCK_OPEN;
    k->next = s->socks;
    if (s->socks) s->socks->prev = k;
    s->socks = k;
    sock_sync(k);
}

/* ---- timers, stop, completions ------------------------------------------------------------------ */

static void flush_hook(cz_server_t *s) {
    if (!s->hooks.flush || !s->hooks.flush_pending(s->hooks.ctx)) return;
    hooks_enter(s);
    s->hooks.flush(s->hooks.ctx);
}

static void on_sweep(uv_timer_t *t) {
    cz_server_t *s = t->data;
    uint64_t now = uv_now(&s->loop);
    flush_hook(s);
    cz_http_date_update(&s->date, time(NULL));
    /* Under pressure, a request head gets less time. */
    int pressure = s->counters.active_connections >= s->cfg.max_connections / 4u * 3u;
    uint64_t head_max = ms(CZ_SERVER_PRESSURE_HEADER_TIMEOUT);
    for (sock_t *k = s->socks, *next; k; k = next) {
        next = k->next;
        check_progress(k, now);
        uint64_t d = cz_conn_deadline(&k->conn);
        cz_conn_state_t st = cz_conn_state(&k->conn);
        if (pressure && (st == CZ_CONN_HEAD || st == CZ_CONN_BODY) && now - k->stall_since >= head_max) d = now;
        if (!d || now < d) continue;
        tally_enter(k);
        cz_conn_timeout(&k->conn);
        sock_sync(k);
        tally_leave(s);
    }
}

static void close_handle(uv_handle_t *h) {
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

/* The loop's own handles; once they are closed, uv_run() returns. */
static void close_loop_handles(cz_server_t *s) {
    uv_mutex_lock(&s->lock);
    s->finished = 1;
    uv_mutex_unlock(&s->lock);
    close_handle((uv_handle_t *)&s->sweep);
    close_handle((uv_handle_t *)&s->deadline_timer);
    close_handle((uv_handle_t *)&s->before_poll);
    close_handle((uv_handle_t *)&s->wake);
    close_handle((uv_handle_t *)&s->wakeup);
    close_handle((uv_handle_t *)&s->sigint);
    close_handle((uv_handle_t *)&s->sigterm);
}

static void maybe_finish_stop(cz_server_t *s) {
    /* Requests in flight will post their completion: the wakeup handle
     * must stay open for them. */
    if (!s->stopping || s->socks || (s->inflight && !s->expired) || !s->loop_ready) return;
    close_loop_handles(s);
}

/* The 503s had their time: close what is left; work still running (a
 * handler that ignores cancellation, a blocking one) is not waited for. */
static void on_linger_end(uv_timer_t *t) {
    cz_server_t *s = t->data;
    s->expired = 1;
    for (sock_t *k = s->socks, *next; k; k = next) {
        next = k->next;
        sock_close(k);
    }
    maybe_finish_stop(s);
}

/* Every request read before the stop is answered: those still with the
 * application get 503 now, and their handlers are cancelled. */
static void on_shutdown_deadline(uv_timer_t *t) {
    cz_server_t *s = t->data;
    for (sock_t *k = s->socks, *next; k; k = next) {
        next = k->next;
        cz_conn_expire(&k->conn);
        sock_sync(k);
    }
    if (s->inflight && s->hooks.expired) {
        hooks_enter(s);
        s->hooks.expired(s->hooks.ctx);
    }
    hooks_leave(s);
    uv_timer_start(&s->deadline_timer, on_linger_end, LINGER_MS, 0);
    maybe_finish_stop(s);
}

/* Requests that reached the socket before the stop (e.g. while a handler
 * held the loop) are read now, so they are answered rather than dropped. */
static void drain_input(sock_t *k) {
    uv_os_fd_t fd;
    if (!(k->flags & SOCK_READING) || uv_fileno(HANDLE(&k->io), &fd) != 0) return;
    while ((k->flags & SOCK_OPEN) && cz_conn_wants_input(&k->conn)) {
        ssize_t n = recv(fd, k->srv->rbuf, READ_CHUNK, MSG_DONTWAIT);
        if (n > 0) {
            cz_conn_feed(&k->conn, k->srv->rbuf, (size_t)n);
        } else {
            if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) cz_conn_eof(&k->conn);
            if (n < 0 && errno == EINTR) continue;
            return;
        }
    }
}

static void begin_stop(cz_server_t *s) {
    if (s->stopping) return;
    s->stopping = 1;
    s->env.stopping = 1;
    if (s->listening) {
        close_handle(HANDLE(&s->listener));
        s->listening = 0;
    }
    /* A second SIGINT (Ctrl+C again) kills at once; SIGTERM stays handled,
     * since a supervisor's SIGTERM may follow a terminal's SIGINT. */
    uv_signal_stop(&s->sigint);
    for (sock_t *k = s->socks, *next; k; k = next) {
        next = k->next;
        drain_input(k);
        cz_conn_shutdown(&k->conn);
        sock_sync(k);
    }
    uv_timer_start(&s->deadline_timer, on_shutdown_deadline, ms(s->cfg.shutdown_timeout), 0);
    uv_unref((uv_handle_t *)&s->deadline_timer);
    maybe_finish_stop(s);
}

static void on_signal(uv_signal_t *h, int signum) {
    (void)signum;
    begin_stop(h->data);
}

/* Run the completions posted so far (on_wakeup, and each step of a driven
 * server, which takes quiet posts). */
static void run_posted(cz_server_t *s) {
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
        tally_enter(sock_of(c));
        int again = s->hooks.complete(s->hooks.ctx, c, list->item);
        int release = list->release;
        /* made by the posting thread, outside any tally: not the request's to count */
        tally_leave(s);
        cz_free(s->alloc, CZ_MEM_TASK, list);
        tally_enter(sock_of(c));
        if (release) s->inflight--;
        if (cz_conn_is_open(c)) {
            /* A completion that answered nothing would leave the next
             * response passing for this request's. */
            if (release && !again && cz_conn_state(c) == CZ_CONN_BUSY) cz_conn_respond_error(c, 500, NULL);
            cz_conn_resume(c);
            sock_sync(sock_of(c));
        }
        tally_leave(s);
        if (release) sock_unref(sock_of(c));
        list = next;
    }
    if (stop) begin_stop(s);
    maybe_finish_stop(s);
}

static void on_wakeup(uv_async_t *a) {
    run_posted(a->data);
}

static int post(cz_server_t *s, cz_conn_t *c, void *item, int release, int wake) {
    cz_completion_t *p = cz_malloc(s->alloc, CZ_MEM_TASK, sizeof(*p));
    if (!p) return -1;
    p->next = NULL;
    p->conn = c;
    p->item = item;
    p->release = release;
    uv_mutex_lock(&s->lock);
    if (s->finished) {
        uv_mutex_unlock(&s->lock);
        cz_free(s->alloc, CZ_MEM_TASK, p);
        return -2;
    }
    if (s->posted_tail) s->posted_tail->next = p;
    else s->posted_head = p;
    s->posted_tail = p;
    uv_mutex_unlock(&s->lock);
    if (wake) uv_async_send(&s->wakeup);
    return 0;
}

int cz_server_post(cz_server_t *s, cz_conn_t *c, void *item) {
    return post(s, c, item, 1, 1);
}

int cz_server_post_more(cz_server_t *s, cz_conn_t *c, void *item) {
    return post(s, c, item, 0, 1);
}

int cz_server_post_quiet(cz_server_t *s, cz_conn_t *c, void *item, int more) {
    return post(s, c, item, !more, 0);
}

void cz_server_stop(cz_server_t *s) {
    uv_mutex_lock(&s->lock);
    s->stop_requested = 1;
    int ready = s->loop_ready;
    uv_mutex_unlock(&s->lock);
    if (ready) uv_async_send(&s->wakeup);
}

/* ---- lifecycle ------------------------------------------------------------------------------------- */

cz_server_t *cz_server_create(cz_allocator_t *alloc, const cz_router_t *router, const cz_server_config_t *config,
                              const cz_server_hooks_t *hooks) {
    cz_server_t *s = cz_calloc(alloc, CZ_MEM_GENERAL, 1, sizeof(*s));
    if (!s) return NULL;
    s->alloc = alloc;
    if (config) s->cfg = *config;
    else cz_server_config_default(&s->cfg);
    s->hooks = *hooks;
    s->env = (cz_conn_env_t){
        .alloc = alloc,
        .router = router,
        .limits = &s->cfg.http,
        .date = &s->date,
        .max_write_buffer = s->cfg.max_write_buffer,
        .header_timeout_ms = ms(s->cfg.header_timeout),
        .body_timeout_ms = ms(s->cfg.body_timeout),
        .keepalive_timeout_ms = ms(s->cfg.keepalive_timeout),
        .write_timeout_ms = ms(s->cfg.write_timeout),
        .not_found = hooks->not_found,
        .max_body = s->cfg.max_body,
        .route_max_body = hooks->route_max_body ? env_route_max_body : NULL,
        .route_streams_body = hooks->route_streams_body && hooks->body ? env_route_streams_body : NULL,
        .body = hooks->body ? env_body : NULL,
        .ctx = s,
        .now = env_now,
        .dispatch = env_dispatch,
        .upgraded = hooks->upgraded ? env_upgraded : NULL,
        .upgraded_event = hooks->upgraded_event ? env_upgraded_event : NULL,
        .drained = hooks->drained ? env_drained : NULL,
        .answered = hooks->answered ? env_answered : NULL,
        .clock_ns = env_clock_ns,
    };
    s->rbuf = cz_malloc(alloc, CZ_MEM_REQUEST, READ_CHUNK);
    if (s->cfg.max_connections_per_client) {
        /* A power of two over twice the connections: probes stay short. */
        size_t n = 16;
        while (n < 2 * s->cfg.max_connections && n < ((size_t)1 << 30)) n <<= 1;
        s->clients = cz_calloc(alloc, CZ_MEM_GENERAL, n, sizeof(client_t));
        s->nclients = s->clients ? n : 0;
    }
    if (!s->rbuf || (s->cfg.max_connections_per_client && !s->clients) || uv_loop_init(&s->loop) != 0) {
        cz_free(alloc, CZ_MEM_GENERAL, s->clients);
        cz_free(alloc, CZ_MEM_REQUEST, s->rbuf);
        cz_free(alloc, CZ_MEM_GENERAL, s);
        return NULL;
    }
    uv_mutex_init(&s->lock);
    s->loop.data = s;
    cz_http_date_init(&s->date, time(NULL));
    uv_timer_init(&s->loop, &s->sweep);
    s->sweep.data = s;
    uv_timer_init(&s->loop, &s->deadline_timer);
    s->deadline_timer.data = s;
    uv_idle_init(&s->loop, &s->wake);
    s->wake.data = s;
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

/* A TCP socket bound to host:port (SO_REUSEADDR, and SO_REUSEPORT when
 * reuse_port): its fd, or a negative libuv error with a message in err. */
static int bind_socket(const char *host, int port, int reuse_port, char *err, size_t errlen) {
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
    if (!rc && reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) rc = -errno;
#else
    (void)reuse_port;
#endif
    if (!rc && bind(fd, res->ai_addr, res->ai_addrlen) < 0) rc = -errno;
    freeaddrinfo(res);
    if (rc) {
        if (fd >= 0) close(fd);
        snprintf(err, errlen, "cannot bind %s:%d: %s", host, port, uv_strerror(rc));
        return rc;
    }
    return fd;
}

/* Listen on `fd` (a stream socket of `family`), which the listener takes
 * (closed with it, or here on failure). `what` names it in messages. */
static int listen_on(cz_server_t *s, int fd, int family, const char *what, char *err, size_t errlen) {
    int rc;
    s->listener_unix = family == AF_UNIX;
    if (s->listener_unix) {
        uv_pipe_init(&s->loop, &s->listener.pipe, 0);
        s->listener_open = 1;
        rc = uv_pipe_open(&s->listener.pipe, fd);
    } else {
        uv_tcp_init(&s->loop, &s->listener.tcp);
        s->listener_open = 1;
        rc = uv_tcp_open(&s->listener.tcp, fd);
    }
    HANDLE(&s->listener)->data = s;
    if (rc) {
        close(fd); /* not the handle's: it took nothing */
        snprintf(err, errlen, "cannot serve %s: %s", what, uv_strerror(rc));
        return rc;
    }
    rc = uv_listen(STREAM(&s->listener), s->cfg.backlog, on_connection);
    if (rc) {
        snprintf(err, errlen, "cannot listen on %s: %s", what, uv_strerror(rc));
        return rc;
    }
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (!s->listener_unix && uv_tcp_getsockname(&s->listener.tcp, (struct sockaddr *)&ss, &len) == 0) {
        s->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                           : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    s->listening = 1;
    return 0;
}

static int listener_taken(cz_server_t *s, char *err, size_t errlen) {
    if (!s->listener_open) return 0;
    snprintf(err, errlen, "this server listens already");
    return UV_EALREADY;
}

int cz_server_listen(cz_server_t *s, const char *host, int port, char *err, size_t errlen) {
    int rc = listener_taken(s, err, errlen);
    if (rc) return rc;
    int fd = bind_socket(host, port, s->cfg.reuse_port, err, errlen);
    if (fd < 0) return fd;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int family = getsockname(fd, (struct sockaddr *)&ss, &len) == 0 ? ss.ss_family : AF_INET;
    char what[300];
    snprintf(what, sizeof(what), "%s:%d", host, port);
    return listen_on(s, fd, family, what, err, errlen);
}

int cz_server_tcp_socket(const char *host, int port, int backlog, char *err, size_t errlen) {
    int fd = bind_socket(host, port, 1, err, errlen);
    if (fd < 0) return fd;
    if (listen(fd, backlog > 0 ? backlog : SOMAXCONN) < 0) {
        int rc = -errno;
        close(fd);
        snprintf(err, errlen, "cannot listen on %s:%d: %s", host, port, uv_strerror(rc));
        return rc;
    }
    return fd;
}

int cz_server_listen_fd(cz_server_t *s, int fd, char *err, size_t errlen) {
    int rc = listener_taken(s, err, errlen);
    if (rc) return rc;
    int type = 0;
    socklen_t tlen = sizeof(type);
    if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) < 0) {
        rc = fd < 0 ? UV_EBADF : -errno;
        if (rc == UV_EBADF) snprintf(err, errlen, "fd %d is not an open file descriptor", fd);
        else if (rc == UV_ENOTSOCK) snprintf(err, errlen, "fd %d is not a socket", fd);
        else snprintf(err, errlen, "fd %d: %s", fd, uv_strerror(rc));
        return rc;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (type != SOCK_STREAM || getsockname(fd, (struct sockaddr *)&ss, &len) < 0 ||
        (ss.ss_family != AF_INET && ss.ss_family != AF_INET6 && ss.ss_family != AF_UNIX)) {
        snprintf(err, errlen, "fd %d is not a TCP or Unix stream socket", fd);
        return UV_EINVAL;
    }
    int own = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (own < 0) {
        rc = -errno;
        snprintf(err, errlen, "fd %d: cannot duplicate it: %s", fd, uv_strerror(rc));
        return rc;
    }
    char what[32];
    snprintf(what, sizeof(what), "fd %d", fd);
    return listen_on(s, own, ss.ss_family, what, err, errlen);
}

/* What connecting to the Unix socket at `sa` says: 0 (a server listens),
 * or an errno (ECONNREFUSED: nobody does, the file is stale). */
static int probe_unix(const struct sockaddr_un *sa) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return errno;
    int e = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0 ? 0 : errno;
    close(fd);
    return e;
}

int cz_server_unix_socket(const char *path, int backlog, char *err, size_t errlen) {
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    size_t plen = strlen(path);
    if (plen == 0 || plen >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "cannot bind unix:%s: %s", path,
                 plen ? "the path is too long for a Unix socket (107 bytes at most)" : "the path is empty");
        return plen ? UV_ENAMETOOLONG : UV_EINVAL;
    }
    memcpy(sa.sun_path, path, plen);
    mode_t mode = 0666; /* a proxy running as another user can connect; the directory decides who gets there */
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen, "cannot bind unix:%s: the path exists and is not a socket", path);
            return UV_EEXIST;
        }
        int e = probe_unix(&sa);
        if (e == ECONNREFUSED) { /* stale: its server is gone; the new one keeps its permissions */
            mode = st.st_mode & 07777;
            unlink(path);
        } else if (e == 0 || e == EAGAIN) {
            snprintf(err, errlen, "cannot bind unix:%s: the address is already in use (another server?)", path);
            return UV_EADDRINUSE;
        } else if (e != ENOENT) { /* ENOENT: it went meanwhile */
            snprintf(err, errlen, "cannot bind unix:%s: %s", path, uv_strerror(-e));
            return -e;
        }
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rc = fd < 0 ? -errno : 0;
    if (!rc && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) rc = -errno;
    int bound = !rc;
    if (!rc && chmod(path, mode) < 0) rc = -errno;
    if (!rc && listen(fd, backlog > 0 ? backlog : SOMAXCONN) < 0) rc = -errno;
    if (rc) {
        if (bound) unlink(path);
        if (fd >= 0) close(fd);
        snprintf(err, errlen, "cannot bind unix:%s: %s", path,
                 rc == UV_EADDRINUSE ? "the address is already in use (another server?)" : uv_strerror(rc));
        return rc;
    }
    return fd;
}

int cz_server_port(const cz_server_t *s) {
    return s->port;
}

void cz_server_start(cz_server_t *s) {
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
}

int cz_server_run(cz_server_t *s) {
    cz_server_start(s);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    flush_hook(s);
    hooks_leave(s); /* the last iteration's, if the loop ended holding it */
    return 0;
}

int cz_server_step(cz_server_t *s) {
    run_posted(s);
    int alive = uv_run(&s->loop, UV_RUN_NOWAIT) != 0;
    if (!alive) flush_hook(s);
    hooks_leave(s); /* the lock is never held between steps */
    return alive;
}

int cz_server_fd(const cz_server_t *s) {
    return uv_backend_fd(&s->loop);
}

int cz_server_timeout(const cz_server_t *s) {
    return uv_backend_timeout(&s->loop);
}

void cz_server_destroy(cz_server_t *s) {
    if (!s) return;
    /* Close whatever run() did not (e.g. it was never called). */
    s->stopping = 1;
    s->env.stopping = 1;
    for (sock_t *k = s->socks, *next; k; k = next) {
        next = k->next;
        sock_close(k);
    }
    if (s->listener_open) close_handle(HANDLE(&s->listener));
    close_loop_handles(s);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    /* Completions posted after the loop's last turn: their items are
     * released (the connections are closed). Work never posted keeps its
     * connection's memory until the allocator goes. */
    uv_mutex_lock(&s->lock);
    cz_completion_t *list = s->posted_head;
    s->posted_head = s->posted_tail = NULL;
    uv_mutex_unlock(&s->lock);
    while (list) {
        cz_completion_t *next = list->next;
        hooks_enter(s);
        s->hooks.complete(s->hooks.ctx, list->conn, list->item);
        if (list->release) sock_unref(sock_of(list->conn));
        cz_free(s->alloc, CZ_MEM_TASK, list);
        list = next;
    }
    hooks_leave(s);
    uv_loop_close(&s->loop);
    uv_mutex_destroy(&s->lock);
    cz_free(s->alloc, CZ_MEM_GENERAL, s->clients);
    cz_free(s->alloc, CZ_MEM_REQUEST, s->rbuf);
    cz_free(s->alloc, CZ_MEM_GENERAL, s);
}

const char *cz_conn_peer_text(cz_conn_t *c) {
    sock_t *k = sock_of(c);
    int port;
    if (!k->peer[0] && cz_conn_peer(c, k->peer, sizeof(k->peer), &port) != 0) k->peer[0] = '\0';
    return k->peer;
}

cz_server_t *cz_conn_server(const cz_conn_t *c) {
    return sock_of(c)->srv;
}

int cz_conn_peer(const cz_conn_t *c, char *host, size_t hostlen, int *port) {
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    const sock_t *k = sock_of(c);
    if ((k->flags & (SOCK_OPEN | SOCK_UNIX)) != SOCK_OPEN ||
        uv_tcp_getpeername(&k->io.tcp, (struct sockaddr *)&ss, &len) != 0)
        return -1;
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

void cz_server_counters(const cz_server_t *s, cz_server_counters_t *out) {
    *out = s->counters;
    out->requests = s->env.requests;
    out->abandoned = s->env.abandoned;
    out->bytes_in = s->env.bytes_in;
    out->bytes_out = s->env.bytes_out;
}
