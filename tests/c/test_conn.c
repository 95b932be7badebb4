/*
 * Unit tests of csrc/server/cz_conn (cz_conn.h): the connection engine
 * without sockets. A transport is simulated here: bytes in through
 * cz_conn_feed(), output taken with cz_conn_out_peek()/cz_conn_out_sent(),
 * a clock in env.now. Answers: whole, streamed (chunked, fixed length,
 * close-delimited), file ranges, upgrades; pipelining, backpressure,
 * deadlines, shutdown, EOF.
 *
 * Plain C: CHECK counts; the last line is "N passed, M failed"; the exit
 * status is non-zero when anything failed. Run under ASan/UBSan/LSan.
 */
#define _GNU_SOURCE
#include "check.h"
#include "cz_conn.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define S(lit) (lit), (sizeof(lit) - 1)

/* ---- the application: what each route does ------------------------------ */

enum { APP_HELLO, APP_DEFER, APP_STREAM, APP_FIXED, APP_FILE, APP_UPGRADE, APP_SILENT };

static const char *const g_patterns[] = {"/", "/defer", "/stream", "/fixed", "/file", "/ws", "/silent"};

typedef struct {
    cz_conn_env_t env;
    cz_conn_t c;
    uint64_t now;
    int dispatched, drained;
    int deferred; /* a request waits */
    char up[256]; /* bytes the upgraded hook got */
    size_t up_len;
    int up_eof;
    char out[65536]; /* what the transport sent */
    size_t out_len;
} rig_t;

static cz_allocator_t *A;
static cz_router_t *R;
static rig_t G;

static uint64_t now_ms(void *ctx, int fresh) {
    (void)ctx;
    (void)fresh;
    return G.now;
}

static cz_http_response_t text(int status, const char *body) {
    cz_http_response_t r;
    memset(&r, 0, sizeof(r));
    r.status = status;
    r.content_type = (cz_http_str_t){"text/plain", 10};
    r.body = (cz_http_str_t){body, strlen(body)};
    return r;
}

static cz_conn_dispatch_t dispatch(void *ctx, cz_conn_t *c, const cz_http_request_t *req, const cz_match_t *m) {
    (void)ctx;
    (void)req;
    G.dispatched++;
    int app = (int)(intptr_t)m->handler;
    cz_http_response_t r = text(200, "hi");
    switch (app) {
    case APP_HELLO: cz_conn_respond(c, &r); break;
    case APP_DEFER: G.deferred = 1; return CZ_CONN_PENDING;
    case APP_UPGRADE: {
        cz_http_header_t h = {{S("Upgrade")}, {S("websocket")}};
        cz_http_response_t u;
        memset(&u, 0, sizeof(u));
        u.status = 101;
        u.headers = &h;
        u.num_headers = 1;
        CHECK(cz_conn_upgrade(c, &u) == CZ_HTTP_OK);
        break;
    }
    default: break; /* the test drives the answer, or none (APP_SILENT) */
    }
    if (app == APP_STREAM || app == APP_FIXED || app == APP_FILE) {
        G.deferred = 1;
        return CZ_CONN_PENDING;
    }
    return CZ_CONN_DONE;
}

static void upgraded(void *ctx, cz_conn_t *c, const char *data, size_t len) {
    (void)ctx;
    (void)c;
    if (!data) {
        G.up_eof = 1;
        return;
    }
    memcpy(G.up + G.up_len, data, len);
    G.up_len += len;
}

static void drained(void *ctx, cz_conn_t *c) {
    (void)ctx;
    (void)c;
    G.drained++;
}

static void rig(size_t max_write_buffer) {
    memset(&G, 0, sizeof(G));
    G.now = 1000;
    G.env = (cz_conn_env_t){
        .alloc = A,
        .router = R,
        .max_write_buffer = max_write_buffer,
        .header_timeout_ms = 10,
        .body_timeout_ms = 20,
        .keepalive_timeout_ms = 30,
        .write_timeout_ms = 40,
        .now = now_ms,
        .dispatch = dispatch,
        .upgraded = upgraded,
        .drained = drained,
    };
    cz_conn_init(&G.c, &G.env);
}

static void feed(const char *s) {
    cz_conn_feed(&G.c, s, strlen(s));
}

/* Send everything queued, reading file ranges; `max` bytes per peek (0: all). */
static void drain(size_t max) {
    cz_conn_seg_t seg;
    while (cz_conn_out_peek(&G.c, &seg)) {
        size_t n = max && seg.len > max ? max : seg.len;
        if (seg.base) {
            memcpy(G.out + G.out_len, seg.base, n);
        } else {
            CHECK(pread(seg.fd, G.out + G.out_len, n, (off_t)seg.offset) == (ssize_t)n);
        }
        G.out_len += n;
        G.out[G.out_len] = '\0';
        cz_conn_out_sent(&G.c, n);
    }
}

static int sent_has(const char *needle) {
    return strstr(G.out, needle) != NULL;
}

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

static void done(void) {
    cz_conn_destroy(&G.c);
}

/* ---- tests -------------------------------------------------------------- */

static void test_whole_answer(void) {
    rig(1 << 20);
    CHECK(cz_conn_state(&G.c) == CZ_CONN_IDLE && cz_conn_wants_input(&G.c));
    CHECK(cz_conn_deadline(&G.c) == 1010); /* header timeout from the start */
    feed("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(G.dispatched == 1 && cz_conn_state(&G.c) == CZ_CONN_IDLE);
    CHECK(cz_conn_deadline(&G.c) == 1030); /* keep-alive */
    drain(0);
    CHECK(strcmp(G.out, "HTTP/1.1 200 OK\r\nServer: catzilla\r\nContent-Type: text/plain\r\n"
                        "Content-Length: 2\r\n\r\nhi") == 0);
    CHECK(cz_conn_out_pending(&G.c) == 0);
    /* a respond outside BUSY is refused */
    cz_http_response_t r = text(200, "x");
    CHECK(cz_conn_respond(&G.c, &r) == CZ_CONN_ESTATE);
    CHECK(cz_conn_stream_write(&G.c, "x", 1) == CZ_CONN_ESTATE);
    CHECK(cz_conn_out_buffer(&G.c) == NULL);
    done();
}

static void test_pipelined_deferred(void) {
    rig(1 << 20);
    feed("GET /defer HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(G.dispatched == 1 && cz_conn_state(&G.c) == CZ_CONN_BUSY);
    CHECK(!cz_conn_wants_input(&G.c));  /* the second request is held */
    CHECK(cz_conn_deadline(&G.c) == 0); /* no deadline while busy */
    cz_http_response_t r = text(201, "first");
    CHECK(cz_conn_respond(&G.c, &r) == CZ_HTTP_OK);
    CHECK(G.dispatched == 1); /* responding never parses the next request */
    CHECK(cz_conn_resume(&G.c) == 1);
    CHECK(G.dispatched == 2 && cz_conn_wants_input(&G.c));
    drain(0);
    CHECK(strstr(G.out, "201 Created") < strstr(G.out, "200 OK")); /* in order */
    done();
}

static void test_unanswered_is_500(void) {
    rig(1 << 20);
    feed("GET /silent HTTP/1.1\r\nHost: a\r\n\r\n");
    drain(0);
    CHECK(sent_has("HTTP/1.1 500 Internal Server Error"));
    CHECK(cz_conn_state(&G.c) == CZ_CONN_IDLE);
    done();
}

static void test_stream_chunked(void) {
    rig(1 << 20);
    feed("GET /stream HTTP/1.1\r\nHost: a\r\n\r\n");
    cz_http_response_t r = text(200, "");
    CHECK(cz_conn_stream_begin(&G.c, &r, -1) == 1);
    CHECK(cz_conn_state(&G.c) == CZ_CONN_STREAM);
    CHECK(cz_conn_request(&G.c) != NULL);
    CHECK(cz_conn_stream_write(&G.c, S("hello")) == CZ_HTTP_OK);
    CHECK(cz_conn_stream_write(&G.c, "", 0) == CZ_HTTP_OK); /* nothing: no terminator */
    char big[300];
    memset(big, 'z', sizeof(big));
    CHECK(cz_conn_stream_write(&G.c, big, sizeof(big)) == CZ_HTTP_OK);
    CHECK(cz_conn_stream_end(&G.c) == CZ_HTTP_OK);
    CHECK(cz_conn_state(&G.c) == CZ_CONN_IDLE);
    drain(7);
    CHECK(sent_has("Transfer-Encoding: chunked\r\n"));
    CHECK(!sent_has("Content-Length"));
    CHECK(sent_has("\r\n\r\n5\r\nhello\r\n12c\r\nzzz"));
    CHECK(G.out_len > 5 && memcmp(G.out + G.out_len - 5, "0\r\n\r\n", 5) == 0);
    done();
}

static void test_stream_fixed_length(void) {
    rig(1 << 20);
    feed("GET /fixed HTTP/1.1\r\nHost: a\r\n\r\n");
    cz_http_response_t r = text(200, "");
    CHECK(cz_conn_stream_begin(&G.c, &r, 8) == 1);
    CHECK(cz_conn_stream_write(&G.c, S("12345")) == CZ_HTTP_OK);
    CHECK(cz_conn_stream_write(&G.c, S("6789")) == CZ_HTTP_EINVAL); /* past the length */
    CHECK(cz_conn_stream_write(&G.c, S("678")) == CZ_HTTP_OK);
    CHECK(cz_conn_stream_end(&G.c) == CZ_HTTP_OK);
    CHECK(cz_conn_state(&G.c) == CZ_CONN_IDLE);
    drain(0);
    CHECK(sent_has("Content-Length: 8\r\n") && sent_has("\r\n\r\n12345678"));
    done();

    /* a body that ends short closes the connection: never a wrong length */
    rig(1 << 20);
    feed("GET /fixed HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(cz_conn_stream_begin(&G.c, &r, 8) == 1);
    CHECK(cz_conn_stream_write(&G.c, S("123")) == CZ_HTTP_OK);
    CHECK(cz_conn_stream_end(&G.c) == CZ_HTTP_EINVAL);
    CHECK(cz_conn_state(&G.c) == CZ_CONN_CLOSING);
    done();
}

static void test_stream_http10_and_head(void) {
    rig(1 << 20);
    feed("GET /stream HTTP/1.0\r\n\r\n");
    cz_http_response_t r = text(200, "");
    CHECK(cz_conn_stream_begin(&G.c, &r, -1) == 1);
    CHECK(cz_conn_stream_write(&G.c, S("raw")) == CZ_HTTP_OK);
    CHECK(cz_conn_stream_end(&G.c) == CZ_HTTP_OK);
    CHECK(cz_conn_state(&G.c) == CZ_CONN_CLOSING); /* the close ends the body */
    drain(0);
    CHECK(sent_has("Connection: close\r\n\r\nraw") && !sent_has("chunked") && !sent_has("Content-Length"));
    done();

    rig(1 << 20);
    feed("HEAD /stream HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(cz_conn_stream_begin(&G.c, &r, -1) == 0); /* no body for HEAD */
    CHECK(cz_conn_state(&G.c) == CZ_CONN_IDLE);
    drain(0);
    CHECK(sent_has("Transfer-Encoding: chunked\r\n") && G.out_len > 4 &&
          memcmp(G.out + G.out_len - 4, "\r\n\r\n", 4) == 0);
    done();
}

static void test_stream_backpressure(void) {
    rig(16);
    feed("GET /stream HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    cz_http_response_t r = text(200, "");
    CHECK(cz_conn_stream_begin(&G.c, &r, -1) == 1);
    CHECK(!cz_conn_writable(&G.c)); /* the head alone is over 16 bytes */
    CHECK(!cz_conn_wants_input(&G.c));
    cz_conn_resume(&G.c);
    CHECK(G.drained == 0); /* nothing was sent yet */
    drain(0);
    cz_conn_resume(&G.c);
    CHECK(G.drained == 1 && cz_conn_writable(&G.c));
    cz_conn_resume(&G.c);
    CHECK(G.drained == 1); /* once per wait */
    CHECK(cz_conn_stream_write(&G.c, S("more than sixteen bytes")) == CZ_HTTP_OK);
    CHECK(cz_conn_stream_end(&G.c) == CZ_HTTP_OK);
    CHECK(G.dispatched == 1);
    CHECK(cz_conn_resume(&G.c) == 0); /* output queued over the bound: the next request waits */
    drain(0);
    CHECK(cz_conn_resume(&G.c) == 1 && G.dispatched == 2);
    done();
}

static int memfile(const char *content) {
    int fd = memfd_create("test", MFD_CLOEXEC);
    CHECK(fd >= 0 && write(fd, content, strlen(content)) == (ssize_t)strlen(content));
    return fd;
}

static void test_file_range(void) {
    rig(1 << 20);
    feed("GET /file HTTP/1.1\r\nHost: a\r\n\r\n");
    int fd = memfile("0123456789");
    cz_http_response_t r = text(206, "");
    CHECK(cz_conn_respond_file(&G.c, &r, fd, 2, 5) == CZ_HTTP_OK);
    CHECK(cz_conn_state(&G.c) == CZ_CONN_IDLE);
    CHECK(cz_conn_out_pending(&G.c) > 5);
    cz_conn_seg_t seg;
    CHECK(cz_conn_out_peek(&G.c, &seg) && seg.base != NULL);
    cz_conn_out_sent(&G.c, seg.len);
    CHECK(cz_conn_out_peek(&G.c, &seg) && seg.base == NULL && seg.fd == fd && seg.offset == 2 && seg.len == 5);
    cz_conn_out_sent(&G.c, 2); /* a partial send */
    CHECK(cz_conn_out_peek(&G.c, &seg) && seg.offset == 4 && seg.len == 3);
    cz_conn_out_sent(&G.c, 3);
    CHECK(cz_conn_out_pending(&G.c) == 0);
    CHECK(fcntl(fd, F_GETFD) == -1 && errno == EBADF); /* closed once sent */
    done();

    /* HEAD: the head only, the file closed at once */
    rig(1 << 20);
    feed("HEAD /file HTTP/1.1\r\nHost: a\r\n\r\n");
    fd = memfile("0123456789");
    CHECK(cz_conn_respond_file(&G.c, &r, fd, 0, 10) == CZ_HTTP_OK);
    CHECK(fcntl(fd, F_GETFD) == -1 && errno == EBADF);
    drain(0);
    CHECK(sent_has("Content-Length: 10\r\n") && G.out_len > 4 && memcmp(G.out + G.out_len - 4, "\r\n\r\n", 4) == 0);
    done();

    /* dropped with the connection: closed by cz_conn_destroy() */
    rig(1 << 20);
    feed("GET /file HTTP/1.1\r\nHost: a\r\n\r\n");
    fd = memfile("0123456789");
    CHECK(cz_conn_respond_file(&G.c, &r, fd, 0, 10) == CZ_HTTP_OK);
    done();
    CHECK(fcntl(fd, F_GETFD) == -1 && errno == EBADF);
}

static void test_peeked_bytes_stay(void) {
    rig(1 << 20);
    feed("GET /defer HTTP/1.1\r\nHost: a\r\n\r\n");
    cz_http_response_t r = text(200, "one");
    cz_conn_respond(&G.c, &r);
    cz_conn_seg_t seg;
    CHECK(cz_conn_out_peek(&G.c, &seg));
    const char *base = seg.base;
    size_t len = seg.len;
    /* more output while the first is in flight goes elsewhere */
    feed("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(G.dispatched == 2);
    CHECK(cz_conn_out_peek(&G.c, &seg) && seg.base == base && seg.len == len);
    cz_conn_out_sent(&G.c, len);
    CHECK(cz_conn_out_peek(&G.c, &seg) && seg.base != base && memmem(seg.base, seg.len, "hi", 2));
    done();
}

static void test_upgrade(void) {
    rig(1 << 20);
    feed("GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nframe-1");
    CHECK(cz_conn_state(&G.c) == CZ_CONN_UPGRADED);
    CHECK(G.up_len == 7 && memcmp(G.up, "frame-1", 7) == 0); /* bytes after the request */
    CHECK(cz_conn_wants_input(&G.c) && cz_conn_deadline(&G.c) == 0);
    feed("frame-2");
    CHECK(G.up_len == 14);
    cz_http_buf_t *out = cz_conn_out_buffer(&G.c);
    CHECK(out && cz_http_buf_append(out, S("pong")) == CZ_HTTP_OK);
    drain(0);
    CHECK(sent_has("HTTP/1.1 101 Switching Protocols\r\n") && sent_has("Upgrade: websocket\r\n") &&
          sent_has("Connection: Upgrade\r\n\r\npong") && !sent_has("Content-Length"));
    cz_conn_eof(&G.c);
    CHECK(G.up_eof);
    cz_conn_close(&G.c);
    CHECK(cz_conn_state(&G.c) == CZ_CONN_CLOSING);
    done();
}

static void test_backpressure_holds_requests(void) {
    rig(8);
    feed("GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(G.dispatched == 1 && !cz_conn_wants_input(&G.c));
    while (G.dispatched < 3) {
        int before = G.dispatched;
        drain(0);
        cz_conn_resume(&G.c);
        CHECK(G.dispatched == before + 1);
        if (G.dispatched == before) break;
    }
    drain(0);
    CHECK(count(G.out, "200 OK") == 3 && cz_conn_wants_input(&G.c));
    done();
}

static void test_deadlines(void) {
    /* a partial head: 408, then the close */
    rig(1 << 20);
    feed("GET / HTTP/1.1\r\nHo");
    CHECK(cz_conn_state(&G.c) == CZ_CONN_HEAD && cz_conn_deadline(&G.c) == 1010);
    G.now = 1010;
    cz_conn_timeout(&G.c);
    CHECK(cz_conn_state(&G.c) == CZ_CONN_CLOSING && !cz_conn_wants_input(&G.c));
    drain(0);
    CHECK(sent_has("HTTP/1.1 408 Request Timeout") && sent_has("Connection: close"));
    done();

    /* idle keep-alive: closed */
    rig(1 << 20);
    feed("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    drain(0);
    G.now = cz_conn_deadline(&G.c);
    cz_conn_timeout(&G.c);
    CHECK(cz_conn_state(&G.c) == CZ_CONN_CLOSED);
    done();

    /* a body that stops: 408 too */
    rig(1 << 20);
    feed("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab");
    CHECK(cz_conn_state(&G.c) == CZ_CONN_BODY && cz_conn_deadline(&G.c) == 1020);
    done();

    /* output the client does not take: write_timeout */
    rig(1 << 20);
    feed("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    cz_conn_out_blocked(&G.c);
    CHECK(cz_conn_deadline(&G.c) == 1040);
    done();
}

static void test_eof_and_shutdown(void) {
    rig(1 << 20);
    cz_conn_eof(&G.c);
    CHECK(cz_conn_state(&G.c) == CZ_CONN_CLOSED); /* idle: closed at once */
    done();

    /* EOF while busy: the client left; the request is abandoned, a late
     * answer is refused */
    rig(1 << 20);
    feed("GET /defer HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(cz_conn_wants_input(&G.c)); /* read while busy, to see the client leave */
    cz_conn_eof(&G.c);
    CHECK(cz_conn_state(&G.c) == CZ_CONN_CLOSED);
    CHECK(G.env.abandoned == 1);
    cz_http_response_t r = text(200, "late");
    CHECK(cz_conn_respond(&G.c, &r) == CZ_CONN_ESTATE);
    done();

    /* stopping: idle gets a moment for a request on its way, answered with
     * close; then the deadline closes it. A busy request is answered with close. */
    rig(1 << 20);
    G.env.stopping = 1;
    cz_conn_shutdown(&G.c);
    CHECK(cz_conn_state(&G.c) == CZ_CONN_IDLE && cz_conn_deadline(&G.c) == G.now + CZ_CONN_STOP_GRACE_MS);
    feed("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    drain(0);
    CHECK(sent_has("HTTP/1.1 200 OK") && sent_has("Connection: close\r\n"));
    CHECK(cz_conn_state(&G.c) == CZ_CONN_CLOSING);
    done();
    rig(1 << 20);
    G.env.stopping = 1;
    cz_conn_shutdown(&G.c);
    G.now += CZ_CONN_STOP_GRACE_MS;
    cz_conn_timeout(&G.c);
    CHECK(cz_conn_state(&G.c) == CZ_CONN_CLOSED);
    done();
    rig(1 << 20);
    feed("GET /defer HTTP/1.1\r\nHost: a\r\n\r\n");
    G.env.stopping = 1;
    cz_conn_shutdown(&G.c);
    CHECK(cz_conn_state(&G.c) == CZ_CONN_BUSY);
    cz_conn_respond(&G.c, &r);
    CHECK(cz_conn_state(&G.c) == CZ_CONN_CLOSING);
    drain(0);
    CHECK(sent_has("Connection: close\r\n"));
    done();

    /* stopping: pipelined requests already read are answered, in order */
    rig(1 << 20);
    feed("GET /defer HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    G.env.stopping = 1;
    cz_conn_respond(&G.c, &r);
    cz_conn_shutdown(&G.c);
    cz_conn_resume(&G.c);
    drain(0);
    CHECK(count(G.out, "HTTP/1.1 200 OK") == 2 && sent_has("late") && sent_has("hi"));
    CHECK(count(G.out, "Connection: close\r\n") == 1);
    CHECK(cz_conn_state(&G.c) == CZ_CONN_CLOSING);
    done();

    /* the stop's deadline: a request still busy is answered 503, close */
    rig(1 << 20);
    feed("GET /defer HTTP/1.1\r\nHost: a\r\n\r\n");
    G.env.stopping = 1;
    cz_conn_expire(&G.c);
    CHECK(cz_conn_state(&G.c) == CZ_CONN_CLOSING);
    CHECK(cz_conn_respond(&G.c, &r) == CZ_CONN_ESTATE); /* the handler's late answer */
    drain(0);
    CHECK(sent_has("HTTP/1.1 503 ") && sent_has("Connection: close\r\n"));
    done();
}

static void test_parse_error(void) {
    rig(1 << 20);
    feed("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
    CHECK(cz_conn_state(&G.c) == CZ_CONN_CLOSING && G.dispatched == 0);
    feed("GET / HTTP/1.1\r\nHost: a\r\n\r\n"); /* dropped */
    drain(0);
    CHECK(sent_has("HTTP/1.1 400 Bad Request") && count(G.out, "HTTP/1.1") == 1);
    done();
}

static uint64_t route_limit(void *ctx, uint32_t route_index) {
    (void)ctx;
    return route_index == 1 ? 10u : 0u; /* "/defer": 10 bytes; the others: env.max_body */
}

static void test_body_limits(void) {
    /* declared over the route's limit: 413 before any body byte, then close */
    rig(1 << 20);
    G.env.max_body = 5;
    G.env.route_max_body = route_limit;
    feed("GET /defer HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n");
    drain(0);
    CHECK(sent_has("HTTP/1.1 413 ") && sent_has("Connection: close\r\n") && G.dispatched == 0);
    CHECK(cz_conn_state(&G.c) == CZ_CONN_CLOSING);
    done();
    /* within the route's limit, over the app's: answered */
    rig(1 << 20);
    G.env.max_body = 5;
    G.env.route_max_body = route_limit;
    feed("GET /defer HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789");
    CHECK(G.dispatched == 1 && cz_conn_state(&G.c) == CZ_CONN_BUSY);
    done();
    /* another route keeps the app's limit; a chunked body is cut as it passes it */
    rig(1 << 20);
    G.env.max_body = 5;
    G.env.route_max_body = route_limit;
    feed("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n");
    CHECK(cz_conn_state(&G.c) == CZ_CONN_BODY);
    feed("4\r\nefgh\r\n");
    drain(0);
    CHECK(sent_has("HTTP/1.1 413 ") && G.dispatched == 0 && cz_conn_state(&G.c) == CZ_CONN_CLOSING);
    done();
}

/* ---- streamed request bodies (route_streams_body, env.body) ---------------- */

static struct {
    char got[256];
    size_t len;
    int pieces, ended, status;
    int take_at_once;  /* the body hook takes each piece inside the call */
    int answer_at_end; /* the body hook answers inside the call at the body's end */
    int status_state;  /* the connection's state when the hook heard a status */
    int late_answer;   /* what an answer inside that call got */
} B;

static int streams_defer(void *ctx, uint32_t route_index, const cz_http_request_t *req) {
    (void)ctx;
    (void)req;
    return route_index == 1; /* "/defer" */
}

static void body_hook(void *ctx, cz_conn_t *c, const char *data, size_t len, int status) {
    (void)ctx;
    if (status) {
        cz_http_response_t r = text(200, "late");
        B.status = status;
        B.status_state = cz_conn_state(c);
        B.late_answer = cz_conn_respond(c, &r);
        return;
    }
    if (!data) {
        B.ended++;
        if (B.answer_at_end) {
            cz_http_response_t r = text(200, "ok");
            CHECK(cz_conn_respond(c, &r) == CZ_HTTP_OK);
        }
        return;
    }
    CHECK(len > 0 && B.len + len <= sizeof(B.got));
    memcpy(B.got + B.len, data, len);
    B.len += len;
    B.pieces++;
    if (B.take_at_once) CHECK(cz_conn_body_next(c) == CZ_HTTP_OK);
}

static void stream_rig(void) {
    rig(1 << 20);
    memset(&B, 0, sizeof(B));
    G.env.route_streams_body = streams_defer;
    G.env.body = body_hook;
    G.env.max_body = 64;
}

/* The application takes the waiting piece; the transport resumes. */
static void take(void) {
    CHECK(cz_conn_body_next(&G.c) == CZ_HTTP_OK);
    cz_conn_resume(&G.c);
}

static void test_streamed_body(void) {
    /* dispatched at the head; one piece at a time, reading stops meanwhile */
    stream_rig();
    feed("GET /defer HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n");
    CHECK(G.dispatched == 1 && cz_conn_state(&G.c) == CZ_CONN_BUSY && cz_conn_body_streaming(&G.c));
    CHECK(cz_conn_wants_input(&G.c) && B.pieces == 0);
    feed("0123");
    CHECK(B.pieces == 1 && B.len == 4 && !cz_conn_wants_input(&G.c));
    CHECK(cz_conn_body_next(&G.c) == CZ_HTTP_OK && cz_conn_body_next(&G.c) == CZ_CONN_ESTATE);
    cz_conn_resume(&G.c);
    CHECK(cz_conn_wants_input(&G.c));
    /* the last piece and a pipelined request in one read: the request is held */
    feed("456789GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(B.pieces == 2 && B.ended == 0 && !cz_conn_wants_input(&G.c));
    take(); /* an empty feed completes the body */
    CHECK(B.ended == 1 && memcmp(B.got, "0123456789", 10) == 0 && !cz_conn_body_streaming(&G.c));
    cz_http_response_t r = text(200, "ok");
    CHECK(cz_conn_respond(&G.c, &r) == CZ_HTTP_OK);
    cz_conn_resume(&G.c); /* the pipelined GET / */
    drain(0);
    CHECK(count(G.out, "HTTP/1.1 200 OK") == 2 && !sent_has("Connection: close") && G.dispatched == 2);
    CHECK(cz_conn_state(&G.c) == CZ_CONN_IDLE);
    done();

    /* a body in hand with its head is read whole: no streaming */
    stream_rig();
    feed("GET /defer HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc");
    CHECK(G.dispatched == 1 && B.pieces == 0 && !cz_conn_body_streaming(&G.c));
    CHECK(cz_conn_request(&G.c)->body.len == 3);
    done();

    /* chunked, taken inside the hook: pieces de-chunked, the end reported */
    stream_rig();
    B.take_at_once = 1;
    feed("GET /defer HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n");
    CHECK(B.pieces == 2 && B.len == 5 && B.ended == 0 && cz_conn_wants_input(&G.c));
    feed("0\r\n\r\n");
    CHECK(B.ended == 1 && memcmp(B.got, "abcde", 5) == 0);
    done();

    /* a chunked body passing the limit: the hook hears 413, the client gets it, then close */
    stream_rig();
    B.take_at_once = 1;
    feed("GET /defer HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 20 && cz_conn_state(&G.c) == CZ_CONN_BUSY; i++) feed("8\r\n01234567\r\n");
    drain(0);
    CHECK(B.status == 413 && sent_has("HTTP/1.1 413 ") && sent_has("Connection: close"));
    CHECK(cz_conn_state(&G.c) == CZ_CONN_CLOSING);
    /* the hook heard it once the request was answered: an answer there is refused */
    CHECK(B.status_state == CZ_CONN_CLOSING && B.late_answer == CZ_CONN_ESTATE && !sent_has("late"));
    CHECK(cz_conn_respond(&G.c, &r) == CZ_CONN_ESTATE); /* the handler's late answer */
    done();

    /* answered before the body's end: Connection: close, the rest is not read */
    stream_rig();
    feed("GET /defer HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n01");
    CHECK(cz_conn_respond(&G.c, &r) == CZ_HTTP_OK);
    drain(0);
    CHECK(sent_has("HTTP/1.1 200 OK") && sent_has("Connection: close") && cz_conn_state(&G.c) == CZ_CONN_CLOSING);
    CHECK(cz_conn_body_next(&G.c) == CZ_CONN_ESTATE);
    done();

    /* a body that stops coming: 408 once the body deadline passes; not while a piece waits */
    stream_rig();
    feed("GET /defer HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n01");
    CHECK(cz_conn_deadline(&G.c) == 0); /* the application holds the piece */
    take();
    CHECK(cz_conn_deadline(&G.c) == G.now + 20);
    G.now += 21;
    cz_conn_timeout(&G.c);
    drain(0);
    CHECK(B.status == 408 && sent_has("HTTP/1.1 408 ") && cz_conn_state(&G.c) == CZ_CONN_CLOSING);
    done();

    /* the client leaves mid-body: abandoned */
    stream_rig();
    feed("GET /defer HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n01");
    cz_conn_eof(&G.c);
    CHECK(G.env.abandoned == 1 && cz_conn_state(&G.c) == CZ_CONN_CLOSED);
    done();

    /* a malformed chunk: 400 */
    stream_rig();
    B.take_at_once = 1;
    feed("GET /defer HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
    drain(0);
    CHECK(B.status == 400 && sent_has("HTTP/1.1 400 ") && cz_conn_state(&G.c) == CZ_CONN_CLOSING);
    done();

    /* trailer fields saying "Connection: close": the answer says so too
     * (the parser takes nothing more; the pipelined GET is not answered 400) */
    stream_rig();
    B.take_at_once = B.answer_at_end = 1;
    feed("GET /defer HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    feed("2\r\nab\r\n0\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    drain(0);
    CHECK(B.ended == 1 && count(G.out, "HTTP/1.1 200 OK") == 1 && sent_has("Connection: close"));
    CHECK(!sent_has("HTTP/1.1 400 ") && cz_conn_state(&G.c) == CZ_CONN_CLOSING);
    done();

    /* the server stops; a request read with the body's end and answered
     * inside the hook: it is answered too, the last answer closes */
    stream_rig();
    G.env.stopping = 1;
    B.take_at_once = B.answer_at_end = 1;
    feed("GET /defer HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n");
    feed("abcGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    drain(0);
    CHECK(B.ended == 1 && G.dispatched == 2 && count(G.out, "HTTP/1.1 200 OK") == 2);
    CHECK(count(G.out, "Connection: close") == 1 && cz_conn_state(&G.c) == CZ_CONN_CLOSING);
    done();
}

/* ---- accounting: env->answered ---------------------------------------------------------- */

static struct {
    int calls;
    cz_conn_answered_t last;
    char target[64];
    size_t body_len;    /* of a->req */
    cz_mem_tally_t mem; /* *a->mem */
} g_acc;

static void on_answered(void *ctx, cz_conn_t *c, const cz_conn_answered_t *a) {
    (void)ctx;
    (void)c;
    g_acc.calls++;
    g_acc.last = *a;
    g_acc.mem = *a->mem;
    g_acc.body_len = a->req->body.len;
    snprintf(g_acc.target, sizeof(g_acc.target), "%.*s", (int)a->req->target.len, a->req->target.base);
}

static uint64_t clock_ns(void *ctx) {
    (void)ctx;
    return 777;
}

static void rig_accounting(void) {
    rig(1 << 20);
    memset(&g_acc, 0, sizeof(g_acc));
    G.env.answered = on_answered;
    G.env.clock_ns = clock_ns;
}

static void test_accounting(void) {
    /* a whole answer: its route, status and every byte queued for it */
    rig_accounting();
    const char *get = "GET /?q=1 HTTP/1.1\r\nHost: a\r\n\r\n";
    feed(get);
    CHECK(g_acc.calls == 1);
    CHECK(g_acc.last.route_index == APP_HELLO && g_acc.last.status == 200 && g_acc.last.started_ns == 777);
    CHECK(strcmp(g_acc.target, "/?q=1") == 0);
    drain(0);
    CHECK(g_acc.last.bytes_out == G.out_len);
    CHECK(G.env.bytes_in == strlen(get) && G.env.bytes_out == G.out_len);
    /* the router's own answers: no route, the status of their status line */
    size_t before = G.out_len;
    feed("GET /nope HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(g_acc.calls == 2 && g_acc.last.route_index == CZ_CONN_NO_ROUTE && g_acc.last.status == 404);
    drain(0);
    CHECK(g_acc.last.bytes_out == G.out_len - before);
    feed("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
    CHECK(g_acc.calls == 3 && g_acc.last.route_index == CZ_CONN_NO_ROUTE && g_acc.last.status == 405);
    drain(0);
    CHECK(G.env.bytes_out == G.out_len);
    /* a stream is reported at its end, with all its pieces */
    before = G.out_len;
    feed("GET /stream HTTP/1.1\r\nHost: a\r\n\r\n");
    cz_http_response_t r = text(201, "");
    CHECK(cz_conn_stream_begin(&G.c, &r, -1) == 1);
    drain(0);
    CHECK(cz_conn_stream_write(&G.c, S("hello")) == CZ_HTTP_OK);
    CHECK(g_acc.calls == 3);
    CHECK(cz_conn_stream_end(&G.c) == CZ_HTTP_OK);
    CHECK(g_acc.calls == 4 && g_acc.last.status == 201 && g_acc.last.route_index == APP_STREAM);
    drain(3);
    CHECK(g_acc.last.bytes_out == G.out_len - before);
    /* a deferred answer; an unanswered request (500) */
    feed("GET /defer HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(g_acc.calls == 4);
    cz_http_response_t d = text(404, "gone");
    CHECK(cz_conn_respond(&G.c, &d) == CZ_HTTP_OK);
    CHECK(g_acc.calls == 5 && g_acc.last.status == 404 && g_acc.last.route_index == APP_DEFER);
    feed("GET /silent HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(g_acc.calls == 6 && g_acc.last.status == 500);
    done();
    /* an upgrade is reported at its 101; an abandoned request is not reported */
    rig_accounting();
    feed("GET /ws HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(g_acc.calls == 1 && g_acc.last.status == 101);
    done();
    rig_accounting();
    feed("GET /defer HTTP/1.1\r\nHost: a\r\n\r\n");
    cz_conn_eof(&G.c);
    CHECK(g_acc.calls == 0 && G.env.abandoned == 1);
    done();
    /* an answer that could not be queued at all (a bounded output buffer):
     * no answer, the connection closes, nothing is reported (it was reported
     * as status 0 for the router's own answers, with 0 bytes) */
    rig_accounting();
    G.env.out_max = 64;
    done();
    cz_conn_init(&G.c, &G.env);
    feed("GET /nope HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(g_acc.calls == 0 && cz_conn_out_pending(&G.c) == 0 && cz_conn_state(&G.c) == CZ_CONN_CLOSING);
    done();
    cz_conn_init(&G.c, &G.env);
    feed("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(g_acc.calls == 0 && G.dispatched == 1 && cz_conn_state(&G.c) == CZ_CONN_CLOSING);
    done();
    /* a streamed body that fails after a piece: reported with its status,
     * and the request keeps no view of the piece (its read is freed by then:
     * a use-after-free for whoever read req->body) */
    rig_accounting();
    memset(&B, 0, sizeof(B));
    G.env.route_streams_body = streams_defer;
    G.env.body = body_hook;
    G.env.max_body = 64;
    B.take_at_once = 1;
    feed("GET /defer HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    char *piece = strdup("3\r\nabc\r\n");
    cz_conn_feed(&G.c, piece, strlen(piece));
    free(piece);
    CHECK(B.pieces == 1 && cz_conn_request(&G.c)->body.len == 0);
    feed("zz\r\n");
    CHECK(B.status == 400 && g_acc.calls == 1 && g_acc.last.status == 400 && g_acc.body_len == 0);
    done();
    /* memory: what was allocated while the transport had made the
     * connection's tally current, reported with the request, then reset */
    rig_accounting();
    char big[4096];
    snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: %03000d\r\n\r\n", 0);
    CHECK(cz_mem_tally_enter(cz_conn_tally(&G.c)) == NULL);
    feed(big);
    CHECK(cz_mem_tally_enter(NULL) == cz_conn_tally(&G.c));
    CHECK(g_acc.calls == 1 && g_acc.last.mem != NULL);
    CHECK(g_acc.mem.allocated[CZ_MEM_RESPONSE] > 0 && g_acc.mem.peak > 0);
    CHECK(cz_mem_tally_total(&g_acc.mem) >= g_acc.mem.allocated[CZ_MEM_RESPONSE]);
    CHECK(cz_mem_tally_total(cz_conn_tally(&G.c)) == 0 && cz_conn_tally(&G.c)->peak == 0);
    drain(0);
    /* a transport that does not enter the tally: zeros */
    feed(get);
    CHECK(g_acc.calls == 2 && cz_mem_tally_total(&g_acc.mem) == 0 && g_acc.mem.peak == 0);
    done();
    /* without the hook nothing is reported and no clock is read */
    rig(1 << 20);
    memset(&g_acc, 0, sizeof(g_acc));
    feed(get);
    CHECK(g_acc.calls == 0);
    done();
}

int main(void) {
    char err[256];
    A = cz_allocator_create(CZ_BACKEND_MALLOC, NULL, 0);
    R = cz_router_create(A);
    for (size_t i = 0; i < sizeof(g_patterns) / sizeof(g_patterns[0]); i++) {
        if (cz_router_add(R, S("GET"), g_patterns[i], strlen(g_patterns[i]), (void *)(intptr_t)i, NULL, err,
                          sizeof(err)) != 0) {
            fprintf(stderr, "route %s: %s\n", g_patterns[i], err);
            return 2;
        }
    }
    cz_memory_stats_t st;
    cz_allocator_stats(A, &st);
    size_t idle = st.allocated;
    test_whole_answer();
    test_pipelined_deferred();
    test_unanswered_is_500();
    test_stream_chunked();
    test_stream_fixed_length();
    test_stream_http10_and_head();
    test_stream_backpressure();
    test_file_range();
    test_peeked_bytes_stay();
    test_upgrade();
    test_backpressure_holds_requests();
    test_deadlines();
    test_eof_and_shutdown();
    test_body_limits();
    test_streamed_body();
    test_parse_error();
    test_accounting();
    cz_allocator_stats(A, &st);
    CHECK(st.allocated == idle); /* every connection gave back all it took */
    cz_router_destroy(R);
    cz_allocator_destroy(A);
    return check_summary();
}
