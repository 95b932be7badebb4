/*
 * wsload: a single-threaded epoll WebSocket load generator (RFC 6455 client
 * side only), for benchmarks/websockets.py.
 *
 *   wsload echo      --port P [--path /] --conns N --size S [--binary]
 *                    [--warmup s] [--duration s]
 *   wsload broadcast --port P [--path /broadcast] --conns N --size S [...]
 *   wsload idle      --port P [--path /] --conns N
 *
 * echo       every connection sends one message, waits for its echo, sends
 *            the next (closed loop, one message in flight per connection);
 *            latency = send to echo received.
 * broadcast  every connection subscribes; connection 0 publishes one message,
 *            the server sends it to all N connections (the publisher too); the
 *            next message is published when all N received the previous one
 *            (or after a 5 s timeout). Latency = publish to each receipt.
 * idle       opens N connections, prints "READY opened failed" and keeps them
 *            open (answering pings) until stdin reaches EOF.
 *
 * The client never offers an extension (no permessage-deflate). Frames are
 * masked with a fixed key and built once. The result is one JSON line on
 * stdout: messages, seconds, messages/s, latency percentiles in us, errors,
 * and the generator's own CPU seconds over the measured window (so that its
 * ceiling, messages per CPU-second, can be reported beside each result).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

enum { ST_CONNECTING, ST_HANDSHAKE, ST_OPEN, ST_CLOSED };
enum { M_ECHO, M_BROADCAST, M_IDLE };

typedef struct {
    int fd;
    int state;
    int id;
    /* handshake response accumulation */
    char hs[4096];
    size_t hslen;
    /* frame parser */
    uint8_t hdr[14];
    int hlen;
    uint64_t payload_left;
    int opcode;     /* opcode of the frame being read */
    int msg_opcode; /* opcode of the message (first frame) */
    int fin;
    uint64_t msg_len;
    uint8_t ctl[128];
    int ctl_len;
    /* pending write */
    const uint8_t *wptr;
    size_t wleft;
    int want_out;
    uint64_t sent_at;
} conn_t;

static int g_mode = M_ECHO, g_port = 0, g_conns = 64, g_binary = 0, g_epfd;
static size_t g_size = 32;
static const char *g_path = "/";
static double g_warmup = 2.0, g_duration = 5.0;
static conn_t *g_c;
static uint8_t *g_frame;
static size_t g_frame_len;
static const uint8_t MASK[4] = {0x37, 0xfa, 0x21, 0x3d};
static int g_opened, g_failed, g_open_now, g_closed_by_peer, g_bad_len, g_timeouts;
static int g_measuring;
static uint64_t g_msgs, g_bytes;
static uint32_t *g_lat; /* us */
static size_t g_nlat, g_caplat;
/* broadcast state */
static uint64_t g_round_start;
static int g_round_got, g_round_active;
static uint64_t g_rounds;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void ep_mod(conn_t *c, int out) {
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
    c->want_out = out;
    epoll_ctl(g_epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_close(conn_t *c, int by_peer) {
    if (c->state == ST_CLOSED) return;
    if (c->state == ST_OPEN) g_open_now--;
    else g_failed++;
    if (by_peer && c->state == ST_OPEN) g_closed_by_peer++;
    epoll_ctl(g_epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->state = ST_CLOSED;
}

static void flush_out(conn_t *c) {
    while (c->wleft) {
        ssize_t n = send(c->fd, c->wptr, c->wleft, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (!c->want_out) ep_mod(c, 1);
                return;
            }
            conn_close(c, 1);
            return;
        }
        c->wptr += n;
        c->wleft -= (size_t)n;
    }
    if (c->want_out) ep_mod(c, 0);
}

static void send_msg(conn_t *c) {
    if (c->state != ST_OPEN || c->wleft) return;
    c->wptr = g_frame;
    c->wleft = g_frame_len;
    c->sent_at = now_ns();
    flush_out(c);
}

static void send_control(conn_t *c, int opcode, const uint8_t *p, int len) {
    uint8_t f[2 + 4 + 125];
    if (len > 125) len = 125;
    f[0] = (uint8_t)(0x80 | opcode);
    f[1] = (uint8_t)(0x80 | len);
    memcpy(f + 2, MASK, 4);
    for (int i = 0; i < len; i++) f[6 + i] = p[i] ^ MASK[i & 3];
    /* control frames are tiny: best effort, outside the pending data write */
    if (!c->wleft) (void)send(c->fd, f, (size_t)(6 + len), MSG_NOSIGNAL);
}

static void record(uint64_t since) {
    if (!g_measuring) return;
    g_msgs++;
    if (g_nlat < g_caplat) g_lat[g_nlat++] = (uint32_t)((now_ns() - since) / 1000);
}

static void publish(void) {
    g_round_start = now_ns();
    g_round_got = 0;
    g_round_active = 1;
    conn_t *p = &g_c[0];
    if (p->state == ST_OPEN) {
        p->wptr = g_frame;
        p->wleft = g_frame_len;
        flush_out(p);
    }
}

static void on_message(conn_t *c, uint64_t len) {
    if (len != g_size) g_bad_len++;
    if (g_measuring) g_bytes += len;
    if (g_mode == M_ECHO) {
        record(c->sent_at);
        send_msg(c);
    } else if (g_mode == M_BROADCAST) {
        if (!g_round_active) return;
        record(g_round_start);
        if (++g_round_got >= g_open_now) {
            g_rounds++;
            publish();
        }
    }
}

static void on_open(conn_t *c) {
    c->state = ST_OPEN;
    g_opened++;
    g_open_now++;
    if (g_mode == M_ECHO) send_msg(c);
}

static void frame_done(conn_t *c) {
    if (c->opcode >= 8) {
        if (c->opcode == 9) send_control(c, 10, c->ctl, c->ctl_len);
        else if (c->opcode == 8) conn_close(c, 1);
        return;
    }
    if (c->fin) {
        on_message(c, c->msg_len);
        c->msg_len = 0;
    }
}

static void feed(conn_t *c, const uint8_t *d, size_t n) {
    while (n && c->state == ST_OPEN) {
        if (c->payload_left) {
            size_t take = n < c->payload_left ? n : (size_t)c->payload_left;
            if (c->opcode >= 8) {
                for (size_t i = 0; i < take && c->ctl_len < 125; i++) c->ctl[c->ctl_len++] = d[i];
            } else {
                c->msg_len += take;
            }
            c->payload_left -= take;
            d += take;
            n -= take;
            if (!c->payload_left) frame_done(c);
            continue;
        }
        c->hdr[c->hlen++] = *d++;
        n--;
        if (c->hlen < 2) continue;
        int len7 = c->hdr[1] & 0x7f;
        int need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((c->hdr[1] & 0x80) ? 4 : 0);
        if (c->hlen < need) continue;
        uint64_t plen = (uint64_t)len7;
        if (len7 == 126) plen = ((uint64_t)c->hdr[2] << 8) | c->hdr[3];
        else if (len7 == 127) {
            plen = 0;
            for (int i = 0; i < 8; i++) plen = (plen << 8) | c->hdr[2 + i];
        }
        c->opcode = c->hdr[0] & 0x0f;
        c->fin = c->hdr[0] >> 7;
        c->hlen = 0;
        c->ctl_len = 0;
        if (c->opcode != 0 && c->opcode < 8) c->msg_opcode = c->opcode;
        c->payload_left = plen;
        if (!plen) frame_done(c);
    }
}

static void on_readable(conn_t *c) {
    static uint8_t buf[1 << 18];
    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n > 0) {
            if (c->state == ST_HANDSHAKE) {
                size_t room = sizeof c->hs - 1 - c->hslen;
                size_t take = (size_t)n < room ? (size_t)n : room;
                memcpy(c->hs + c->hslen, buf, take);
                c->hslen += take;
                c->hs[c->hslen] = 0;
                char *end = strstr(c->hs, "\r\n\r\n");
                if (!end) {
                    if (c->hslen >= sizeof c->hs - 1) conn_close(c, 0);
                    continue;
                }
                if (strncmp(c->hs, "HTTP/1.1 101", 12) != 0 || !strcasestr(c->hs, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")) {
                    if (getenv("WSLOAD_DEBUG")) fprintf(stderr, "handshake refused: %.200s\n", c->hs);
                    conn_close(c, 0);
                    return;
                }
                size_t hdr_len = (size_t)(end + 4 - c->hs);
                on_open(c);
                /* bytes after the response header, from this read */
                size_t before = c->hslen - take; /* bytes that came from earlier reads */
                if (hdr_len < c->hslen) {
                    size_t off = hdr_len - before;
                    feed(c, buf + off, (size_t)n - off);
                }
                continue;
            }
            feed(c, buf, (size_t)n);
            if (c->state == ST_CLOSED) return;
            continue;
        }
        if (n == 0) {
            conn_close(c, 1);
            return;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        if (errno == EINTR) continue;
        conn_close(c, 1);
        return;
    }
}

static char g_req[1024];
static size_t g_req_len;

static int g_next_to_connect, g_inflight;

static void start_connect(conn_t *c) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        perror("socket");
        c->state = ST_CLOSED;
        g_failed++;
        return;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->state = ST_CONNECTING;
    g_inflight++;
    int r = connect(c->fd, (struct sockaddr *)&sa, sizeof sa);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    c->want_out = 1;
    epoll_ctl(g_epfd, EPOLL_CTL_ADD, c->fd, &ev);
    if (r < 0 && errno != EINPROGRESS) {
        g_inflight--;
        conn_close(c, 0);
    }
}

static void on_writable(conn_t *c) {
    if (c->state == ST_CONNECTING) {
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) {
            conn_close(c, 0);
            return;
        }
        c->state = ST_HANDSHAKE;
        ssize_t n = send(c->fd, g_req, g_req_len, MSG_NOSIGNAL);
        if (n != (ssize_t)g_req_len) {
            conn_close(c, 0);
            return;
        }
        ep_mod(c, 0);
        return;
    }
    flush_out(c);
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(double p) {
    if (!g_nlat) return 0;
    size_t i = (size_t)(p / 100.0 * (double)(g_nlat - 1) + 0.5);
    return g_lat[i];
}

static void loop_until(uint64_t deadline, int stop_when_connected) {
    struct epoll_event evs[512];
    int stdin_watch = g_mode == M_IDLE;
    for (;;) {
        uint64_t t = now_ns();
        if (deadline && t >= deadline) return;
        while (g_next_to_connect < g_conns && g_inflight < 128) start_connect(&g_c[g_next_to_connect++]);
        if (stop_when_connected && g_next_to_connect >= g_conns && g_inflight == 0) return;
        int ms = deadline ? (int)((deadline - t) / 1000000 + 1) : 1000;
        if (ms > 100) ms = 100;
        int n = epoll_wait(g_epfd, evs, 512, ms);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL) { /* stdin */
                char b[256];
                if (read(0, b, sizeof b) <= 0 && stdin_watch) return;
                continue;
            }
            conn_t *c = evs[i].data.ptr;
            int was_pending = c->state == ST_CONNECTING || c->state == ST_HANDSHAKE;
            if (c->state == ST_CLOSED) continue;
            if (evs[i].events & (EPOLLERR | EPOLLHUP) && c->state == ST_CONNECTING) conn_close(c, 0);
            else if (evs[i].events & EPOLLOUT) on_writable(c);
            if (c->state != ST_CLOSED && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) on_readable(c);
            if (was_pending && c->state != ST_CONNECTING && c->state != ST_HANDSHAKE) g_inflight--;
        }
        if (g_mode == M_BROADCAST && g_round_active && now_ns() - g_round_start > 5000000000ull) {
            g_timeouts++;
            publish();
        }
    }
}

static void usage(void) {
    fprintf(stderr, "usage: wsload echo|broadcast|idle --port P [--path /] [--conns N] [--size S] [--binary] "
                    "[--warmup s] [--duration s]\n");
    exit(2);
}

int main(int argc, char **argv) {
    if (argc < 2) usage();
    if (!strcmp(argv[1], "echo")) g_mode = M_ECHO;
    else if (!strcmp(argv[1], "broadcast")) g_mode = M_BROADCAST, g_path = "/broadcast";
    else if (!strcmp(argv[1], "idle")) g_mode = M_IDLE;
    else usage();
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--binary")) {
            g_binary = 1;
            continue;
        }
        if (!v) usage();
        i++;
        if (!strcmp(a, "--port")) g_port = atoi(v);
        else if (!strcmp(a, "--path")) g_path = v;
        else if (!strcmp(a, "--conns")) g_conns = atoi(v);
        else if (!strcmp(a, "--size")) g_size = (size_t)atol(v);
        else if (!strcmp(a, "--warmup")) g_warmup = atof(v);
        else if (!strcmp(a, "--duration")) g_duration = atof(v);
        else usage();
    }
    if (!g_port || g_conns < 1) usage();
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);

    g_req_len =
        (size_t)snprintf(g_req, sizeof g_req,
                         "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                         g_path, g_port);
    /* the message: printable ASCII (valid UTF-8 for text frames), masked once */
    g_frame = malloc(g_size + 14);
    size_t h = 0;
    g_frame[h++] = (uint8_t)(0x80 | (g_binary ? 2 : 1));
    if (g_size < 126) g_frame[h++] = (uint8_t)(0x80 | g_size);
    else if (g_size < 65536) {
        g_frame[h++] = 0x80 | 126;
        g_frame[h++] = (uint8_t)(g_size >> 8);
        g_frame[h++] = (uint8_t)g_size;
    } else {
        g_frame[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--) g_frame[h++] = (uint8_t)((uint64_t)g_size >> (8 * i));
    }
    memcpy(g_frame + h, MASK, 4);
    h += 4;
    for (size_t i = 0; i < g_size; i++) g_frame[h + i] = (uint8_t)('a' + i % 26) ^ MASK[i & 3];
    g_frame_len = h + g_size;

    g_c = calloc((size_t)g_conns, sizeof *g_c);
    for (int i = 0; i < g_conns; i++) g_c[i].id = i, g_c[i].fd = -1;
    g_epfd = epoll_create1(EPOLL_CLOEXEC);
    g_caplat = 64u << 20;
    g_lat = malloc(g_caplat * sizeof *g_lat);

    uint64_t t0 = now_ns();
    if (g_mode == M_IDLE) {
        loop_until(0, 1);
        double secs = (now_ns() - t0) / 1e9;
        printf("READY %d %d %.3f\n", g_open_now, g_failed, secs);
        fflush(stdout);
        fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
        epoll_ctl(g_epfd, EPOLL_CTL_ADD, 0, &ev);
        loop_until(0, 0);
        printf("{\"mode\":\"idle\",\"opened\":%d,\"failed\":%d,\"open_at_end\":%d,\"closed_by_peer\":%d}\n", g_opened,
               g_failed, g_open_now, g_closed_by_peer);
        return 0;
    }
    /* connect everyone (bounded in-flight), at most 60 s */
    loop_until(t0 + 60000000000ull, 1);
    double connect_s = (now_ns() - t0) / 1e9;
    if (g_mode == M_BROADCAST && g_open_now > 0) publish();
    loop_until(now_ns() + (uint64_t)(g_warmup * 1e9), 0);
    g_measuring = 1;
    double c0 = cpu_s();
    uint64_t m0 = now_ns();
    loop_until(m0 + (uint64_t)(g_duration * 1e9), 0);
    double secs = (now_ns() - m0) / 1e9;
    double cpu = cpu_s() - c0;
    g_measuring = 0;
    qsort(g_lat, g_nlat, sizeof *g_lat, cmp_u32);
    printf("{\"mode\":\"%s\",\"conns\":%d,\"size\":%zu,\"binary\":%d,\"opened\":%d,\"failed\":%d,\"open_at_end\":%d,"
           "\"closed_by_peer\":%d,\"bad_len\":%d,\"timeouts\":%d,\"connect_s\":%.3f,\"seconds\":%.3f,"
           "\"messages\":%llu,\"bytes\":%llu,\"msgs_per_s\":%.1f,\"rounds\":%llu,\"p50_us\":%.0f,\"p90_us\":%.0f,"
           "\"p99_us\":%.0f,\"p999_us\":%.0f,\"max_us\":%.0f,\"client_cpu_s\":%.3f}\n",
           argv[1], g_conns, g_size, g_binary, g_opened, g_failed, g_open_now, g_closed_by_peer, g_bad_len, g_timeouts,
           connect_s, secs, (unsigned long long)g_msgs, (unsigned long long)g_bytes, g_msgs / secs,
           (unsigned long long)g_rounds, pct(50), pct(90), pct(99), pct(99.9), g_nlat ? (double)g_lat[g_nlat - 1] : 0,
           cpu);
    return 0;
}
