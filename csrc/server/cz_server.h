/*
 * cz_server — the libuv side of the HTTP/1.1 server: the loop, the listening
 * socket (TCP or Unix domain: see "listening" below), each connection's
 * socket, timers and signals. What a connection
 * does with its bytes is cz_conn's (transport-free, cz_conn.h); what happens
 * to a routed request is the embedder's business, through cz_server_hooks_t.
 *
 * Per connection: bytes read go to cz_conn_feed(); the output cz_conn
 * queues is written at once with uv_try_write() when the socket takes it
 * (no write request, no poll change), else with one uv_write() at a time;
 * file ranges go out with sendfile(2), or a bounded pread() + uv_write()
 * chunk while the socket is full; a connection that sends a range of 1 MiB
 * or more keeps at most 16 KiB unsent in the kernel from then on
 * (TCP_NOTSENT_LOWAT, where the platform has it). Reading stops whenever
 * cz_conn says so (busy, output over max_write_buffer, closing).
 *
 * Threads: everything runs on the thread that called cz_server_run() (or
 * steps the server: see "driven by another event loop"), except
 * cz_server_post() and cz_server_stop(), which any thread may call.
 *
 * Memory: connections and read leftovers use CZ_MEM_REQUEST; output and file
 * chunks CZ_MEM_RESPONSE; completions CZ_MEM_TASK.
 */
#ifndef CZ_SERVER_H
#define CZ_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "cz_conn.h"
#include "cz_http.h"
#include "cz_memory.h"
#include "cz_router.h"

typedef struct cz_server cz_server_t;

typedef struct {
    size_t max_connections;            /* beyond it, a stalled one gives way, or the new one is closed */
    size_t max_connections_per_client; /* per peer address (IPv4 or IPv6); 0: no limit */
    double header_timeout;             /* s from a request's first byte to its full head (408, close) */
    double body_timeout;               /* s without a body byte while reading a body (close) */
    double keepalive_timeout;          /* s an idle keep-alive connection is kept */
    double write_timeout;              /* s a queued response may wait for the client to read it */
    double shutdown_timeout;           /* s in-flight requests get after stop, then connections close */
    size_t max_write_buffer;           /* queued output over this stops reading from the client */
    size_t max_write_buffer_total;     /* output held for all clients; over it, the slowest readers close */
    int backlog;
    int reuse_port;     /* SO_REUSEPORT, for workers sharing a port */
    int handle_signals; /* SIGINT/SIGTERM start a graceful stop */
    cz_http_limits_t http;
    size_t max_body; /* requests to routes without their own limit; 0: http.max_body */
    /* Count what the loop thread allocates while working for each
     * connection in its tally, reported per request in
     * cz_conn_answered_t.mem (needs hooks.answered); 0: no tally is kept. */
    int memory_per_request;
} cz_server_config_t;

#define CZ_SERVER_DEFAULT_MAX_CONNECTIONS   10000u
#define CZ_SERVER_DEFAULT_HEADER_TIMEOUT    10.0
#define CZ_SERVER_DEFAULT_BODY_TIMEOUT      30.0
#define CZ_SERVER_DEFAULT_KEEPALIVE_TIMEOUT 5.0
#define CZ_SERVER_DEFAULT_WRITE_TIMEOUT     30.0
#define CZ_SERVER_DEFAULT_SHUTDOWN_TIMEOUT  10.0
#define CZ_SERVER_DEFAULT_MAX_WRITE_BUFFER  (1u * 1024u * 1024u)
#define CZ_SERVER_DEFAULT_MAX_WRITE_TOTAL   (32u * 1024u * 1024u)
/* A connection is stalled when, for this long, it has not sent a whole
 * request, nor read its answers at CZ_SERVER_SLOW_READER_BPS or more.
 * Stalled connections are closed, longest stalled first, when a new client
 * finds max_connections reached, or when the output held for all clients
 * passes max_write_buffer_total. Under pressure (3/4 of max_connections in
 * use) a request head gets CZ_SERVER_PRESSURE_HEADER_TIMEOUT at most. */
#define CZ_SERVER_STALL_GRACE_MS          1000u
#define CZ_SERVER_SLOW_READER_BPS         (16u * 1024u)
#define CZ_SERVER_PRESSURE_HEADER_TIMEOUT 2.0
/* The timers' resolution: deadlines are checked (and hooks.flush asked) this often. */
#define CZ_SERVER_SWEEP_MS 250u

void cz_server_config_default(cz_server_config_t *c);

typedef struct {
    void *ctx;
    /* Taken before the first hook call of a loop iteration and released
     * before the loop next polls (and may block), so one lock (e.g. the GIL)
     * covers every request and completion of the iteration. Either may be
     * NULL. Never held while the loop waits, nor after cz_server_run(). */
    void (*lock)(void *ctx);
    void (*unlock)(void *ctx);
    /*
     * A request whose route was FOUND, or any request with status
     * NOT_FOUND when `not_found` is set (the embedder answers 404s itself).
     * `req` and the params of `m` stay valid until the request is answered.
     */
    cz_conn_dispatch_t (*request)(void *ctx, cz_conn_t *c, const cz_http_request_t *req, const cz_match_t *m);
    int not_found;
    /* A completion posted with cz_server_post(), on the loop thread. Unless
     * cz_conn_state() is still BUSY (the client went away meanwhile, or the
     * stop's deadline answered 503), release what `item` holds and do not
     * respond. Returns 1 when the request is left pending again (the hook
     * called cz_server_hold() and something will post), else 0. */
    int (*complete)(void *ctx, cz_conn_t *c, void *item);
    /* The shutdown deadline passed with requests still pending (they have
     * been answered 503): make them complete now (e.g. cancel them). The
     * loop waits for them one more second at most. */
    void (*expired)(void *ctx);
    /* cz_conn_env_t's upgraded and upgraded_event (may be NULL). */
    void (*upgraded)(void *ctx, cz_conn_t *c, const char *data, size_t len);
    void (*upgraded_event)(void *ctx, cz_conn_t *c, cz_conn_upgraded_event_t event);
    /* cz_conn_env_t's route_max_body: a route's own body limit, or 0 for
     * http.max_body (which must be the largest). May be NULL. */
    uint64_t (*route_max_body)(void *ctx, uint32_t route_index);
    /* cz_conn_env_t's route_streams_body and body (both or neither; NULL:
     * bodies are read whole before dispatch). */
    int (*route_streams_body)(void *ctx, uint32_t route_index, const cz_http_request_t *req);
    void (*body)(void *ctx, cz_conn_t *c, const char *data, size_t len, int status);
    /* A STREAM connection can take more of its body: its queued output fell
     * under max_write_buffer, or cz_server_wake() asked. May be NULL. */
    void (*drained)(void *ctx, cz_conn_t *c);
    /* The socket of a connection whose `user` is set is closing (the
     * client went away, a write failed, the server stops): release what
     * `user` holds and set it to NULL. May be NULL. */
    void (*closed)(void *ctx, cz_conn_t *c);
    /* cz_conn_env_t's answered (clock: uv_hrtime), under the lock: a
     * request's answer is queued (metrics, access log). NULL: no request
     * is accounted and no clock is read. */
    void (*answered)(void *ctx, cz_conn_t *c, const cz_conn_answered_t *a);
    /* Every sweep of the timers (CZ_SERVER_SWEEP_MS), and once more as the
     * loop ends: when flush_pending (no lock) says 1, flush (under the lock)
     * hands on what was gathered, e.g. access log lines that were held for a
     * bigger batch. Both or neither. */
    int (*flush_pending)(void *ctx);
    void (*flush)(void *ctx);
} cz_server_hooks_t;

/* Create a server; `router` and `alloc` must outlive it. NULL on failure. */
cz_server_t *cz_server_create(cz_allocator_t *alloc, const cz_router_t *router, const cz_server_config_t *config,
                              const cz_server_hooks_t *hooks);
void cz_server_destroy(cz_server_t *s);

/* ---- listening: one listener per server, set before cz_server_run() ----------------------
 *
 * The listener is a TCP socket (uv_tcp_t) or a Unix domain socket
 * (uv_pipe_t); its connections are of the same kind. A Unix socket's
 * connections have no peer address: cz_conn_peer() fails, cz_conn_peer_text()
 * is "", and max_connections_per_client does not apply to them (they all
 * come from the local proxy). Each function returns 0 (or an fd), or a
 * negative libuv error with a one-line message in err (what, where, why);
 * UV_EALREADY when the server listens already. */

/* Bind host:port (SO_REUSEADDR; SO_REUSEPORT when config.reuse_port) and listen. */
int cz_server_listen(cz_server_t *s, const char *host, int port, char *err, size_t errlen);
/* Listen on an already bound stream socket `fd` the caller holds (inherited
 * from a supervisor, systemd, circus...): AF_INET, AF_INET6 or AF_UNIX,
 * told apart by getsockname(). listen() is called again (harmless on a
 * listening socket; config.backlog). The server serves a duplicate
 * (F_DUPFD_CLOEXEC) and closes it when it stops: `fd` stays the caller's,
 * so processes sharing it (workers forked with it) all accept on the one
 * socket, and a worker that stops drops none of its queued connections.
 * Not a socket, not a stream, another family: UV_ENOTSOCK / UV_EINVAL. */
int cz_server_listen_fd(cz_server_t *s, int fd, char *err, size_t errlen);
/* No server needed: a listening Unix domain socket bound at `path`, for
 * cz_server_listen_fd() (in this process or in forked workers). A socket
 * file already at `path` is replaced if no server answers on it (a stale
 * one: its permissions are kept), refused if one does (UV_EADDRINUSE);
 * anything else at `path` is refused (UV_EEXIST). A new file gets mode
 * 0666 (a proxy running as another user can connect; the directory's
 * permissions decide who reaches it). Returns the fd (SOCK_CLOEXEC, the
 * caller's to close), listening with `backlog` (<= 0: SOMAXCONN). The
 * caller removes the file when done; nothing here does. */
int cz_server_unix_socket(const char *path, int backlog, char *err, size_t errlen);
/* No server needed: a TCP socket bound at host:port with SO_REUSEADDR and
 * SO_REUSEPORT, listening with `backlog` (<= 0: SOMAXCONN), for
 * cz_server_listen_fd(). A supervisor makes one per worker slot: the kernel
 * spreads connections over them as over workers' own SO_REUSEPORT sockets,
 * and a worker's replacement accepts on the same socket, so the connections
 * queued on it when the old worker stops are not reset. Returns the fd
 * (SOCK_CLOEXEC, the caller's to close) or a negative libuv error with a
 * message in err. */
int cz_server_tcp_socket(const char *host, int port, int backlog, char *err, size_t errlen);
/* The bound TCP port (useful after port 0); 0 for a Unix socket. */
int cz_server_port(const cz_server_t *s);

/* Serve until stopped and every connection is closed. Returns 0. */
int cz_server_run(cz_server_t *s);

/* ---- driven by another event loop ---------------------------------------------------------
 *
 * Instead of cz_server_run(), so that one thread serves HTTP and runs
 * another loop (asyncio's), with no hand-off between threads: call
 * cz_server_start() once, then cz_server_step() whenever cz_server_fd() is
 * readable, and again once cz_server_timeout() milliseconds have passed
 * since the last step. A step runs one iteration of the loop without
 * blocking; hooks.lock is held at most for the step's duration. The
 * thread that steps is "the loop thread" of everything below. */
void cz_server_start(cz_server_t *s);
/* 1 while the server serves; 0 once it has finished (as cz_server_run()
 * returns): then cz_server_destroy(). */
int cz_server_step(cz_server_t *s);
/* A descriptor that polls readable when a step has work (the loop's epoll). */
int cz_server_fd(const cz_server_t *s);
/* Milliseconds until a step is due with no input (timers); -1: none. */
int cz_server_timeout(const cz_server_t *s);

/* Begin a graceful stop: stop accepting; read what already reached open
 * connections; close idle ones; answer every request read (Connection:
 * close). At shutdown_timeout, requests still with the application are
 * answered 503 and streams closed; a second later the loop ends whatever
 * still runs. Any thread. */
void cz_server_stop(cz_server_t *s);

/* Hand a completion to the loop thread (any thread). The connection is held
 * until hooks.complete has run. Returns 0, -1 if out of memory, or -2 once
 * the server has finished (its stop's deadline passed): the item was not
 * taken and nobody will answer. */
int cz_server_post(cz_server_t *s, cz_conn_t *c, void *item);
/* As cz_server_post(), but the completion answers no hold: for a series of
 * posts (a stream's pieces) made while a hold taken for the whole series
 * keeps the connection; the series ends with one cz_server_post(). Posts
 * from one thread run in the order they were made. */
int cz_server_post_more(cz_server_t *s, cz_conn_t *c, void *item);
/* As cz_server_post() (more: cz_server_post_more()), from the thread that
 * steps a driven server, which steps it soon: the completion waits for that
 * step (no wake-up). */
int cz_server_post_quiet(cz_server_t *s, cz_conn_t *c, void *item, int more);

/* ---- connections (loop thread only) ---------------------------------------------------- */

/* Answers go through cz_conn.h (cz_conn_respond() and friends). After
 * answering a request left pending, from outside a hook (hooks.complete
 * is inside one), call nothing: the server resumes the connection itself. */

/* STREAM: call hooks.drained for `c` at the next loop iteration, once, so
 * that a producer makes one piece per iteration and other connections are
 * served in between. UPGRADED: write what was appended to its output
 * (cz_conn_out_buffer) from outside its own hooks, e.g. by a broadcast
 * handled in another connection's completion, once for any number of calls
 * in one iteration. */
void cz_server_wake(cz_conn_t *c);
/* Something will be posted for `c` (cz_server_post): keep it until
 * hooks.complete has run. Taken by the server itself for PENDING requests. */
void cz_server_hold(cz_conn_t *c);

/* Peer address as text and port; 0, or -1 (a Unix socket's connection, or
 * a peer that cannot be read). */
int cz_conn_peer(const cz_conn_t *c, char *host, size_t hostlen, int *port);
/* The peer address as text, looked up once per connection ("" when it
 * cannot be read); valid while the connection is. */
const char *cz_conn_peer_text(cz_conn_t *c);
cz_server_t *cz_conn_server(const cz_conn_t *c);

/* Counters, for tests and statistics. */
typedef struct {
    uint64_t accepted, rejected, requests, active_connections;
    uint64_t abandoned;   /* requests whose client left before their answer was sent */
    uint64_t evicted;     /* stalled connections closed for a new client or for memory */
    uint64_t output_held; /* bytes of output held now for all clients */
    uint64_t bytes_in;    /* read from clients */
    uint64_t bytes_out;   /* sent to clients (file ranges included) */
} cz_server_counters_t;
void cz_server_counters(const cz_server_t *s, cz_server_counters_t *out);

#endif /* CZ_SERVER_H */
