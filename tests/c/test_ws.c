/*
 * Unit tests of csrc/ws (cz_ws.h): SHA-1/base64/accept, the handshake and
 * the permessage-deflate negotiation, framing (RFC 6455 5.7 examples, every
 * length class, every 1002 case), close codes, UTF-8 (1007, fail-fast),
 * limits (1009), permessage-deflate (RFC 7692 7.2.3 examples, context
 * takeover, bomb limit), and allocation failures.
 *
 * Plain C: CHECK counts; the last line is "N passed, M failed"; the exit
 * status is non-zero when anything failed. Linked with
 * -Wl,--wrap=cz_malloc,... so that the N-th allocation can be made to fail.
 */
#define ZLIB_CONST
#include "check.h"
#include "cz_ws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static cz_allocator_t *A;

/* ---- allocation failures ------------------------------------------------ */

static long g_fail_at, g_calls, g_faults;

static void fault_arm(long at) {
    g_fail_at = at;
    g_calls = 0;
    g_faults = 0;
}

static int fault_now(void) {
    if (g_fail_at <= 0 || ++g_calls != g_fail_at) return 0;
    g_faults++;
    return 1;
}

void *__real_cz_malloc(cz_allocator_t *a, cz_purpose_t p, size_t size);
void *__real_cz_calloc(cz_allocator_t *a, cz_purpose_t p, size_t n, size_t size);
void *__real_cz_realloc(cz_allocator_t *a, cz_purpose_t p, void *ptr, size_t size);
void *__wrap_cz_malloc(cz_allocator_t *a, cz_purpose_t p, size_t size);
void *__wrap_cz_calloc(cz_allocator_t *a, cz_purpose_t p, size_t n, size_t size);
void *__wrap_cz_realloc(cz_allocator_t *a, cz_purpose_t p, void *ptr, size_t size);

void *__wrap_cz_malloc(cz_allocator_t *a, cz_purpose_t p, size_t size) {
    return fault_now() ? NULL : __real_cz_malloc(a, p, size);
}
void *__wrap_cz_calloc(cz_allocator_t *a, cz_purpose_t p, size_t n, size_t size) {
    return fault_now() ? NULL : __real_cz_calloc(a, p, n, size);
}
void *__wrap_cz_realloc(cz_allocator_t *a, cz_purpose_t p, void *ptr, size_t size) {
    return fault_now() ? NULL : __real_cz_realloc(a, p, ptr, size);
}

static size_t live_bytes(void) {
    cz_memory_stats_t st;
    cz_allocator_stats(A, &st);
    return st.allocated;
}

/* ---- helpers ------------------------------------------------------------- */

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

typedef struct {
    uint8_t *d;
    size_t len, cap;
} bytes_t;

static void b_put(bytes_t *b, const void *p, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) cap *= 2;
        b->d = realloc(b->d, cap);
        if (!b->d) exit(2);
        b->cap = cap;
    }
    if (n) memcpy(b->d + b->len, p, n);
    b->len += n;
}

static void b_free(bytes_t *b) {
    free(b->d);
    memset(b, 0, sizeof(*b));
}

static const uint8_t KEY[4] = {0x37, 0xfa, 0x21, 0x3d};

/* A client frame: masked with KEY unless `unmasked`. */
static void frame(bytes_t *b, int fin, int rsv, unsigned op, const void *payload, size_t len, int unmasked) {
    uint8_t hdr[CZ_WS_MAX_HEADER];
    size_t h = cz_ws_frame_header(hdr, fin, 0, op, len, unmasked ? NULL : KEY), at;

    hdr[0] |= (uint8_t)(rsv << 4); /* rsv: bit 2 = RSV1, 1 = RSV2, 0 = RSV3 */
    b_put(b, hdr, h);
    at = b->len;
    b_put(b, payload, len);
    if (!unmasked) cz_ws_mask(b->d + at, len, KEY, 0);
}

/* Raw header bytes + masked payload, for hand-made (invalid) headers. */
static void raw_frame(bytes_t *b, const uint8_t *hdr, size_t h, const void *payload, size_t len) {
    size_t at;
    b_put(b, hdr, h);
    b_put(b, KEY, 4);
    at = b->len;
    b_put(b, payload, len);
    cz_ws_mask(b->d + at, len, KEY, 0);
}

/* What a connection produced. */
#define MAX_EV 64
typedef struct {
    int n;
    int ev[MAX_EV];
    unsigned code[MAX_EV];
    char *data[MAX_EV];
    size_t len[MAX_EV];
    size_t consumed_at_end; /* bytes consumed when the run stopped */
    bytes_t control;        /* control frames flushed */
} run_t;

static void run_free(run_t *r) {
    int i;
    for (i = 0; i < r->n; i++) free(r->data[i]);
    b_free(&r->control);
    memset(r, 0, sizeof(*r));
}

/*
 * Deliver `in` to `ws` in reads of `step` bytes (0: one read), the way the
 * engine will: unconsumed bytes are kept and fed again after the event.
 * Each feed gets a fresh heap copy, freed when the event is handled.
 */
static void drive(cz_ws_t *ws, const uint8_t *in, size_t len, size_t step, run_t *r) {
    uint8_t *pending = NULL;
    size_t plen = 0, pos = 0, total = 0;
    cz_http_buf_t out;
    int broken = 0;

    memset(r, 0, sizeof(*r));
    cz_http_buf_init(&out, A, 0);
    while (pos < len || plen) {
        size_t n = step && step < len - pos ? step : len - pos, used = 0;
        uint8_t *buf = xmalloc(plen + n);
        cz_ws_event_t ev;

        if (plen) memcpy(buf, pending, plen);
        memcpy(buf + plen, in + pos, n);
        pos += n;
        free(pending);
        pending = NULL;
        ev = cz_ws_feed(ws, (char *)buf, plen + n, &used);
        broken += used > plen + n;
        total += used;
        if (ev != CZ_WS_NEED_MORE && r->n < MAX_EV) {
            cz_http_str_t p = cz_ws_payload(ws);
            broken += p.base == NULL;
            r->ev[r->n] = ev;
            r->code[r->n] = cz_ws_close_code(ws);
            r->data[r->n] = xmalloc(p.len);
            memcpy(r->data[r->n], p.base, p.len);
            r->len[r->n] = p.len;
            r->n++;
        }
        broken += cz_ws_flush_control(ws, &out) != CZ_WS_OK;
        if (ev == CZ_WS_NEED_MORE) broken += used != plen + n; /* NEED_MORE consumes everything */
        plen = plen + n - used;
        if (plen) {
            pending = xmalloc(plen);
            memcpy(pending, buf + used, plen);
        }
        free(buf);
        if (ev == CZ_WS_CLOSE || ev == CZ_WS_ERROR) {
            size_t again = 7;
            CHECK(cz_ws_feed(ws, (char *)"x", 1, &again) == ev && again == 0); /* sticky */
            break;
        }
        if (ev == CZ_WS_NEED_MORE && pos == len) break;
    }
    free(pending);
    CHECK(broken == 0);
    r->consumed_at_end = total;
    b_put(&r->control, out.data, out.len);
    cz_http_buf_free(&out);
}

/* Run `in` through a fresh connection with every split in {whole, 1, 2, 3,
 * 7, 100} and check they agree; the whole-read run is left in *r. */
static void run_all(const uint8_t *in, size_t len, const cz_ws_limits_t *lim, const cz_ws_deflate_t *pmd, run_t *r,
                    const char *name) {
    static const size_t steps[] = {1, 2, 3, 7, 100};
    size_t s, before = live_bytes();
    cz_ws_t ws;
    int i;

    cz_ws_init(&ws, A, lim, pmd);
    drive(&ws, in, len, 0, r);
    cz_ws_destroy(&ws);
    for (s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
        run_t o;
        cz_ws_init(&ws, A, lim, pmd);
        drive(&ws, in, len, steps[s], &o);
        cz_ws_destroy(&ws);
        CHECKC(o.n == r->n, name);
        for (i = 0; i < o.n && i < r->n; i++) {
            CHECKC(o.ev[i] == r->ev[i] && o.code[i] == r->code[i], name);
            CHECKC(o.len[i] == r->len[i] && memcmp(o.data[i], r->data[i], o.len[i]) == 0, name);
        }
        CHECKC(o.control.len == r->control.len &&
                   (!o.control.len || memcmp(o.control.d, r->control.d, o.control.len) == 0),
               name);
        run_free(&o);
    }
    CHECKC(live_bytes() == before, name);
}

/* One event expected. */
static void expect_one(const uint8_t *in, size_t len, const cz_ws_limits_t *lim, const cz_ws_deflate_t *pmd, int ev,
                       unsigned code, const void *data, size_t dlen, const char *name) {
    run_t r;
    run_all(in, len, lim, pmd, &r, name);
    CHECKC(r.n >= 1, name);
    if (r.n >= 1) {
        CHECKC(r.ev[0] == ev, name);
        CHECKC(r.code[0] == code, name);
        if (data) CHECKC(r.len[0] == dlen && memcmp(r.data[0], data, dlen) == 0, name);
    }
    if (ev == CZ_WS_ERROR && r.n >= 1) {
        /* the close frame with the code went out */
        CHECKC(r.control.len >= 4 && r.control.d[0] == 0x88 && ((unsigned)r.control.d[2] << 8 | r.control.d[3]) == code,
               name);
    }
    run_free(&r);
}

static void expect_error(const bytes_t *b, const cz_ws_limits_t *lim, const cz_ws_deflate_t *pmd, unsigned code,
                         const char *name) {
    expect_one(b->d, b->len, lim, pmd, CZ_WS_ERROR, code, NULL, 0, name);
}

/* 1 when `needle` (n bytes) occurs in hay[0..len) */
static int has_bytes(const void *hay, size_t len, const char *needle, size_t n) {
    const char *h = hay;
    size_t i;
    for (i = 0; i + n <= len; i++)
        if (memcmp(h + i, needle, n) == 0) return 1;
    return 0;
}

static int hexeq(const uint8_t *d, size_t n, const char *hex) {
    size_t i;
    char tmp[3] = {0};
    if (strlen(hex) != 2 * n) return 0;
    for (i = 0; i < n; i++) {
        tmp[0] = hex[2 * i];
        tmp[1] = hex[2 * i + 1];
        if (strtoul(tmp, NULL, 16) != d[i]) return 0;
    }
    return 1;
}

static size_t unhex(const char *hex, uint8_t *out) {
    size_t i, n = strlen(hex) / 2;
    char tmp[3] = {0};
    for (i = 0; i < n; i++) {
        tmp[0] = hex[2 * i];
        tmp[1] = hex[2 * i + 1];
        out[i] = (uint8_t)strtoul(tmp, NULL, 16);
    }
    return n;
}

/* ---- SHA-1, base64, accept ----------------------------------------------- */

static void sha1_hex(const void *d, size_t n, size_t reps, char out[41]) {
    cz_ws_sha1_t s;
    uint8_t dg[20];
    size_t i;
    cz_ws_sha1_init(&s);
    for (i = 0; i < reps; i++) cz_ws_sha1_update(&s, d, n);
    cz_ws_sha1_final(&s, dg);
    for (i = 0; i < 20; i++) snprintf(out + 2 * i, 3, "%02x", dg[i]);
}

static void test_sha1(void) {
    char h[41];
    static const char *a64 = "0123456701234567012345670123456701234567012345670123456701234567";

    sha1_hex("", 0, 1, h);
    CHECK(strcmp(h, "da39a3ee5e6b4b0d3255bfef95601890afd80709") == 0);
    sha1_hex("abc", 3, 1, h);
    CHECK(strcmp(h, "a9993e364706816aba3e25717850c26c9cd0d89d") == 0);
    sha1_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, 1, h);
    CHECK(strcmp(h, "84983e441c3bd26ebaae4aa1f95129e5e54670f1") == 0);
    sha1_hex("a", 1, 1000000, h);
    CHECK(strcmp(h, "34aa973cd4c4daa4f61eeb2bdbad27316534016f") == 0);
    /* FIPS 180 long message test: "0123456701234567..." x 10 = 640 bytes */
    sha1_hex(a64, 64, 10, h);
    CHECK(strcmp(h, "dea356a2cddd90c7a7ecedc5ebb563934f460452") == 0);
}

static void test_base64_accept(void) {
    char o[64], acc[29];
    size_t n;

    n = cz_ws_base64((const uint8_t *)"", 0, o);
    CHECK(n == 0);
    n = cz_ws_base64((const uint8_t *)"f", 1, o);
    CHECK(n == 4 && memcmp(o, "Zg==", 4) == 0);
    n = cz_ws_base64((const uint8_t *)"fo", 2, o);
    CHECK(n == 4 && memcmp(o, "Zm8=", 4) == 0);
    n = cz_ws_base64((const uint8_t *)"foo", 3, o);
    CHECK(n == 4 && memcmp(o, "Zm9v", 4) == 0);
    n = cz_ws_base64((const uint8_t *)"foobar", 6, o);
    CHECK(n == 8 && memcmp(o, "Zm9vYmFy", 8) == 0);
    /* RFC 6455 1.3 */
    cz_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, acc);
    CHECK(strcmp(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0);
}

/* ---- handshake --------------------------------------------------------------- */

static cz_http_parser_t g_hp;
static int g_hp_live;

/* Parse `raw` (one request) and judge it. The request stays valid until
 * the next call. Returns the status, -1 when the request does not parse. */
static int hs_check(const char *raw, const cz_ws_policy_t *pol, cz_ws_handshake_t *hs) {
    size_t used = 0;
    if (g_hp_live) cz_http_parser_destroy(&g_hp);
    cz_http_parser_init(&g_hp, A, NULL);
    g_hp_live = 1;
    size_t len = strlen(raw), pos = 0;
    cz_http_event_t ev;
    do { /* a request with a body stops at HEADERS first */
        ev = cz_http_parser_feed(&g_hp, raw + pos, len - pos, &used);
        pos += used;
    } while (ev == CZ_HTTP_HEADERS);
    if (ev != CZ_HTTP_REQUEST) return -1;
    return cz_ws_handshake_check(cz_http_parser_request(&g_hp), pol, hs);
}

#define GOOD_HEAD                                                                                                      \
    "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"                                         \
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"                                           \
    "Sec-WebSocket-Version: 13\r\n"

static void test_handshake(void) {
    static const struct {
        const char *raw;
        int status;
    } T[] = {
        {GOOD_HEAD "\r\n", 101},
        {"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: WebSocket\r\nConnection: keep-alive, UPGRADE\r\n"
         "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\nSec-WebSocket-Version: 13\r\n\r\n",
         101},
        {"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c, websocket\r\nConnection: Upgrade\r\n"
         "Connection: x\r\nSec-WebSocket-Key: /////////////////////w==\r\n"
         "Sec-WebSocket-Version: 13\r\n\r\n",
         101},
        /* 426: no websocket upgrade, or not version 13 */
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 426},
        {"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket/13\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
         426},
        {"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
         426},
        {"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
         426},
        {"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13, 8\r\n\r\n",
         426},
        /* 400 */
        {GOOD_HEAD "Sec-WebSocket-Version: 13\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
         400},
        {"GET / HTTP/1.0\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
         400},
        {GOOD_HEAD "Content-Length: 2\r\n\r\nab", 400},
        {"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
         400},
        {"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Version: 13\r\n\r\n",
         400},
        {GOOD_HEAD "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=\r\nSec-WebSocket-Version: 13\r\n\r\n",
         400},
        {"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==\r\nSec-WebSocket-Version: 13\r\n\r\n",
         400},
        {"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub2*jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
         400},
        {"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==AA\r\nSec-WebSocket-Version: 13\r\n\r\n",
         400},
        {GOOD_HEAD "Sec-WebSocket-Protocol: chat, a b\r\n\r\n", 400},
        {GOOD_HEAD "Sec-WebSocket-Extensions: permessage-deflate; =1\r\n\r\n", 400},
        {GOOD_HEAD "Sec-WebSocket-Extensions: permessage-deflate; x=\"1\r\n\r\n", 400},
        {GOOD_HEAD "Sec-WebSocket-Extensions: a b\r\n\r\n", 400},
    };
    cz_ws_handshake_t hs;
    size_t i;
    char ctx[64];

    for (i = 0; i < sizeof(T) / sizeof(T[0]); i++) {
        int st = hs_check(T[i].raw, NULL, &hs);
        snprintf(ctx, sizeof(ctx), "handshake row %zu: got %d", i, st);
        CHECKC(st == T[i].status, ctx);
        CHECKC(hs.status == st && hs.reason != NULL, ctx);
        CHECKC((st == 101) == (hs.reason[0] == '\0'), ctx);
    }

    /* an upgrade request, valid or not, as a route that also answers HTTP tells it */
    CHECK(hs_check(GOOD_HEAD "\r\n", NULL, &hs) == 101);
    CHECK(cz_ws_is_upgrade(cz_http_parser_request(&g_hp)));
    CHECK(hs_check("GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: h2c, WebSocket\r\n\r\n", NULL, &hs) == 426);
    CHECK(cz_ws_is_upgrade(cz_http_parser_request(&g_hp)));
    CHECK(hs_check("GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n", NULL, &hs) == 426);
    CHECK(!cz_ws_is_upgrade(cz_http_parser_request(&g_hp)));
    CHECK(hs_check("GET /chat HTTP/1.1\r\nHost: a\r\n\r\n", NULL, &hs) == 426);
    CHECK(!cz_ws_is_upgrade(cz_http_parser_request(&g_hp)));

    /* the accept value and the 101 head */
    {
        cz_http_buf_t out;
        cz_http_header_t extra = {{"X-A", 3}, {"b", 1}}, bad = {{"X-A", 3}, {"b\r\nc", 4}};
        static const char want[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                   "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nX-A: b\r\n\r\n";
        CHECK(hs_check(GOOD_HEAD "\r\n", NULL, &hs) == 101);
        CHECK(strcmp(hs.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0);
        CHECK(hs.subprotocol.len == 0 && hs.extension[0] == '\0' && !hs.deflate.enabled);
        cz_http_buf_init(&out, A, 0);
        CHECK(cz_ws_handshake_write(&out, &hs, &extra, 1) == CZ_HTTP_OK);
        CHECK(out.len == sizeof(want) - 1 && memcmp(out.data, want, out.len) == 0);
        CHECK(cz_ws_handshake_write(&out, &hs, &bad, 1) == CZ_HTTP_EINVAL);
        CHECK(out.len == sizeof(want) - 1);
        cz_http_buf_free(&out);
        cz_http_buf_init(&out, A, 50);
        CHECK(cz_ws_handshake_write(&out, &hs, NULL, 0) == CZ_HTTP_E2BIG && out.len == 0);
        cz_http_buf_free(&out);
    }
    /* refusals */
    {
        cz_http_buf_t out;
        cz_http_buf_init(&out, A, 0);
        CHECK(hs_check("GET / HTTP/1.1\r\nHost: a\r\n\r\n", NULL, &hs) == 426);
        CHECK(cz_ws_handshake_write_refusal(&out, NULL, &hs) == CZ_HTTP_OK);
        CHECK(memcmp(out.data, "HTTP/1.1 426 Upgrade Required\r\n", 31) == 0);
        CHECK(has_bytes(out.data, out.len, "Sec-WebSocket-Version: 13\r\n", 27) != 0);
        CHECK(has_bytes(out.data, out.len, "Upgrade: websocket\r\n", 20) != 0);
        CHECK(has_bytes(out.data, out.len, "Connection: close\r\n", 19) != 0);
        cz_http_buf_reset(&out, 0);
        CHECK(hs_check(GOOD_HEAD "Sec-WebSocket-Version: 13\r\n\r\n", NULL, &hs) == 400);
        CHECK(cz_ws_handshake_write_refusal(&out, NULL, &hs) == CZ_HTTP_OK);
        CHECK(memcmp(out.data, "HTTP/1.1 400 Bad Request\r\n", 26) == 0);
        cz_http_buf_free(&out);
    }
    /* subprotocols: the client's order, case-sensitive */
    {
        cz_http_str_t sp[] = {{"superchat", 9}, {"chat", 4}};
        cz_ws_policy_t pol;
        memset(&pol, 0, sizeof(pol));
        pol.subprotocols = sp;
        pol.num_subprotocols = 2;
        CHECK(hs_check(GOOD_HEAD "Sec-WebSocket-Protocol: chat, superchat\r\n\r\n", &pol, &hs) == 101);
        CHECK(hs.subprotocol.len == 4 && memcmp(hs.subprotocol.base, "chat", 4) == 0);
        CHECK(hs_check(GOOD_HEAD "Sec-WebSocket-Protocol: x\r\nSec-WebSocket-Protocol: ,superchat\r\n\r\n", &pol,
                       &hs) == 101);
        CHECK(hs.subprotocol.len == 9);
        CHECK(hs_check(GOOD_HEAD "Sec-WebSocket-Protocol: Chat\r\n\r\n", &pol, &hs) == 101);
        CHECK(hs.subprotocol.len == 0);
        CHECK(hs_check(GOOD_HEAD "Sec-WebSocket-Protocol: chat\r\n\r\n", NULL, &hs) == 101);
        CHECK(hs.subprotocol.len == 0);
        {
            cz_http_buf_t out;
            cz_http_buf_init(&out, A, 0);
            CHECK(hs_check(GOOD_HEAD "Sec-WebSocket-Protocol: chat\r\n\r\n", &pol, &hs) == 101);
            CHECK(cz_ws_handshake_write(&out, &hs, NULL, 0) == CZ_HTTP_OK);
            CHECK(has_bytes(out.data, out.len, "\r\nSec-WebSocket-Protocol: chat\r\n", 32) != 0);
            cz_http_buf_free(&out);
        }
    }
}

/* permessage-deflate negotiation (RFC 7692 7.1) */
static void test_negotiation(void) {
    static const struct {
        const char *offer;          /* Sec-WebSocket-Extensions value(s) */
        int smwb, cmwb, snct, cnct; /* policy */
        const char *answer;         /* "" declined */
        int rx_bits, tx_bits, rx_nct, tx_nct;
    } T[] = {
        {"permessage-deflate", 0, 0, 0, 0, "permessage-deflate", 15, 15, 0, 0},
        {"permessage-deflate; client_max_window_bits", 0, 0, 0, 0, "permessage-deflate; client_max_window_bits=15", 15,
         15, 0, 0},
        {"permessage-deflate; client_max_window_bits", 0, 10, 0, 0, "permessage-deflate; client_max_window_bits=10", 10,
         15, 0, 0},
        {"permessage-deflate; client_max_window_bits=\"12\"", 0, 0, 0, 0,
         "permessage-deflate; client_max_window_bits=12", 12, 15, 0, 0},
        {"permessage-deflate; client_max_window_bits=8", 0, 0, 0, 0, "permessage-deflate; client_max_window_bits=8", 8,
         15, 0, 0},
        {"permessage-deflate; server_max_window_bits=10", 0, 0, 0, 0, "permessage-deflate; server_max_window_bits=10",
         15, 10, 0, 0},
        {"permessage-deflate; server_max_window_bits=12", 11, 0, 0, 0, "permessage-deflate; server_max_window_bits=11",
         15, 11, 0, 0},
        {"permessage-deflate", 11, 0, 0, 0, "permessage-deflate; server_max_window_bits=11", 15, 11, 0, 0},
        {"permessage-deflate; server_no_context_takeover; client_no_context_takeover", 0, 0, 0, 0,
         "permessage-deflate; server_no_context_takeover; client_no_context_takeover", 15, 15, 1, 1},
        {"permessage-deflate", 0, 0, 1, 1, "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
         15, 15, 1, 1},
        {"PerMessage-Deflate ; Server_No_Context_Takeover", 0, 0, 0, 0,
         "permessage-deflate; server_no_context_takeover", 15, 15, 0, 1},
        /* 8: deflated with 9, which stays within 256 bytes */
        {"permessage-deflate; server_max_window_bits=8", 0, 0, 0, 0, "permessage-deflate; server_max_window_bits=8", 15,
         8, 0, 0},
        {"permessage-deflate", 8, 0, 0, 0, "permessage-deflate; server_max_window_bits=8", 15, 8, 0, 0},
        /* declined offers; the next is tried */
        {"permessage-deflate; server_max_window_bits", 0, 0, 0, 0, "", 0, 0, 0, 0},
        {"permessage-deflate; server_max_window_bits=16", 0, 0, 0, 0, "", 0, 0, 0, 0},
        {"permessage-deflate; server_max_window_bits=7", 0, 0, 0, 0, "", 0, 0, 0, 0},
        {"permessage-deflate; server_max_window_bits=010", 0, 0, 0, 0, "", 0, 0, 0, 0},
        {"permessage-deflate; client_max_window_bits=1234567890", 0, 0, 0, 0, "", 0, 0, 0, 0},
        {"permessage-deflate; x", 0, 0, 0, 0, "", 0, 0, 0, 0},
        {"permessage-deflate; server_no_context_takeover=1", 0, 0, 0, 0, "", 0, 0, 0, 0},
        {"permessage-deflate; client_no_context_takeover; client_no_context_takeover", 0, 0, 0, 0, "", 0, 0, 0, 0},
        {"permessage-deflate; server_max_window_bits=7, permessage-deflate", 0, 0, 0, 0, "permessage-deflate", 15, 15,
         0, 0},
        {"x-webkit-deflate-frame, permessage-deflate; client_max_window_bits", 0, 0, 0, 0,
         "permessage-deflate; client_max_window_bits=15", 15, 15, 0, 0},
        {"foo; bar=\"baz\", permessage-deflate; server_max_window_bits=9; client_max_window_bits=9", 0, 0, 0, 0,
         "permessage-deflate; server_max_window_bits=9; client_max_window_bits=9", 9, 9, 0, 0},
    };
    size_t i;
    char raw[512], ctx[96];
    cz_ws_handshake_t hs;

    for (i = 0; i < sizeof(T) / sizeof(T[0]); i++) {
        cz_ws_policy_t pol;
        memset(&pol, 0, sizeof(pol));
        pol.deflate = 1;
        pol.server_max_window_bits = (uint8_t)T[i].smwb;
        pol.client_max_window_bits = (uint8_t)T[i].cmwb;
        pol.server_no_context_takeover = (uint8_t)T[i].snct;
        pol.client_no_context_takeover = (uint8_t)T[i].cnct;
        snprintf(raw, sizeof(raw), GOOD_HEAD "Sec-WebSocket-Extensions: %s\r\n\r\n", T[i].offer);
        snprintf(ctx, sizeof(ctx), "negotiation row %zu", i);
        CHECKC(hs_check(raw, &pol, &hs) == 101, ctx);
        CHECKC(strcmp(hs.extension, T[i].answer) == 0, ctx);
        CHECKC(hs.deflate.enabled == (T[i].answer[0] != 0), ctx);
        if (hs.deflate.enabled) {
            CHECKC(hs.deflate.rx_window_bits == T[i].rx_bits, ctx);
            CHECKC(hs.deflate.tx_window_bits == T[i].tx_bits, ctx);
            CHECKC(hs.deflate.rx_no_context_takeover == T[i].rx_nct, ctx);
            CHECKC(hs.deflate.tx_no_context_takeover == T[i].tx_nct, ctx);
        }
        /* with deflate off in the policy, never */
        pol.deflate = 0;
        CHECKC(hs_check(raw, &pol, &hs) == 101 && !hs.deflate.enabled && !hs.extension[0], ctx);
    }
    /* the answer carries the negotiated extension */
    {
        cz_ws_policy_t pol;
        cz_http_buf_t out;
        static const char want[] =
            "\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=15\r\n\r\n";
        memset(&pol, 0, sizeof(pol));
        pol.deflate = 1;
        cz_http_buf_init(&out, A, 0);
        CHECK(hs_check(GOOD_HEAD "Sec-WebSocket-Extensions: permessage-deflate; "
                                 "client_max_window_bits\r\n\r\n",
                       &pol, &hs) == 101);
        CHECK(cz_ws_handshake_write(&out, &hs, NULL, 0) == CZ_HTTP_OK);
        CHECK(out.len > sizeof(want) && memcmp(out.data + out.len - (sizeof(want) - 1), want, sizeof(want) - 1) == 0);
        cz_http_buf_free(&out);
    }
    /* two fields: the first acceptable offer across them */
    {
        cz_ws_policy_t pol;
        memset(&pol, 0, sizeof(pol));
        pol.deflate = 1;
        CHECK(hs_check(GOOD_HEAD "Sec-WebSocket-Extensions: permessage-deflate; y\r\n"
                                 "Sec-WebSocket-Extensions: permessage-deflate; "
                                 "client_no_context_takeover\r\n\r\n",
                       &pol, &hs) == 101);
        CHECK(strcmp(hs.extension, "permessage-deflate; client_no_context_takeover") == 0);
    }
}

/* ---- framing ------------------------------------------------------------------ */

static void test_rfc_examples(void) {
    uint8_t in[64];
    size_t n;
    run_t r;
    cz_ws_t ws;
    cz_http_buf_t out;
    uint8_t hdr[CZ_WS_MAX_HEADER];

    /* 5.7: a single-frame masked text message */
    n = unhex("818537fa213d7f9f4d5158", in);
    expect_one(in, n, NULL, NULL, CZ_WS_TEXT, 0, "Hello", 5, "masked Hello");
    /* a single-frame unmasked text message: what the server writes, and
     * what it refuses to read from a client */
    cz_ws_init(&ws, A, NULL, NULL);
    cz_http_buf_init(&out, A, 0);
    CHECK(cz_ws_write(&ws, &out, CZ_WS_OP_TEXT, "Hello", 5, 0) == CZ_WS_OK);
    CHECK(hexeq((uint8_t *)out.data, out.len, "810548656c6c6f"));
    /* unmasked ping, as a server would send it */
    cz_http_buf_reset(&out, 0);
    CHECK(cz_ws_write(&ws, &out, CZ_WS_OP_PING, "Hello", 5, 0) == CZ_WS_OK);
    CHECK(hexeq((uint8_t *)out.data, out.len, "890548656c6c6f"));
    cz_http_buf_free(&out);
    cz_ws_destroy(&ws);
    n = unhex("810548656c6c6f", in);
    expect_one(in, n, NULL, NULL, CZ_WS_ERROR, 1002, NULL, 0, "unmasked Hello");

    /* fragmented unmasked text: the headers the writer makes */
    CHECK(cz_ws_frame_header(hdr, 0, 0, CZ_WS_OP_TEXT, 3, NULL) == 2 && hdr[0] == 0x01 && hdr[1] == 0x03);
    CHECK(cz_ws_frame_header(hdr, 1, 0, CZ_WS_OP_CONT, 2, NULL) == 2 && hdr[0] == 0x80 && hdr[1] == 0x02);
    /* and the same masked, from a client */
    {
        bytes_t b = {0};
        frame(&b, 0, 0, CZ_WS_OP_TEXT, "Hel", 3, 0);
        frame(&b, 1, 0, CZ_WS_OP_CONT, "lo", 2, 0);
        expect_one(b.d, b.len, NULL, NULL, CZ_WS_TEXT, 0, "Hello", 5, "fragmented Hello");
        b_free(&b);
    }
    /* masked ping -> PING and an unmasked pong with its data */
    n = unhex("898537fa213d7f9f4d5158", in);
    run_all(in, n, NULL, NULL, &r, "ping");
    CHECK(r.n == 1 && r.ev[0] == CZ_WS_PING && r.len[0] == 5 && memcmp(r.data[0], "Hello", 5) == 0);
    CHECK(hexeq(r.control.d, r.control.len, "8a0548656c6c6f"));
    run_free(&r);
    /* masked pong (5.7's example) */
    n = unhex("8a8537fa213d7f9f4d5158", in);
    expect_one(in, n, NULL, NULL, CZ_WS_PONG, 0, "Hello", 5, "pong");

    /* 256 bytes and 64 KiB binary: the header bytes */
    CHECK(cz_ws_frame_header(hdr, 1, 0, CZ_WS_OP_BINARY, 256, NULL) == 4 && hexeq(hdr, 4, "827e0100"));
    CHECK(cz_ws_frame_header(hdr, 1, 0, CZ_WS_OP_BINARY, 65536, NULL) == 10 && hexeq(hdr, 10, "827f0000000000010000"));
    CHECK(cz_ws_frame_header(hdr, 1, 0, CZ_WS_OP_BINARY, 256, KEY) == 8 && hexeq(hdr, 8, "82fe010037fa213d"));
}

static void test_lengths(void) {
    static const size_t L[] = {0, 1, 125, 126, 127, 65535, 65536, 65537, 256, 100000};
    size_t i, j;

    for (i = 0; i < sizeof(L) / sizeof(L[0]); i++) {
        bytes_t b = {0};
        uint8_t *p = xmalloc(L[i]);
        uint8_t hdr[CZ_WS_MAX_HEADER];
        char ctx[48];
        size_t h = cz_ws_frame_header(hdr, 1, 0, CZ_WS_OP_BINARY, L[i], NULL);

        snprintf(ctx, sizeof(ctx), "length %zu", L[i]);
        CHECKC(h == (L[i] < 126 ? 2u : L[i] < 65536 ? 4u : 10u), ctx);
        for (j = 0; j < L[i]; j++) p[j] = (uint8_t)(j * 7 + 3);
        frame(&b, 1, 0, CZ_WS_OP_BINARY, p, L[i], 0);
        /* many splits of a 100 KB frame are slow with 1-byte reads: fine */
        expect_one(b.d, b.len, NULL, NULL, CZ_WS_BINARY, 0, p, L[i], ctx);
        /* the writer: header then payload */
        {
            cz_ws_t ws;
            cz_http_buf_t out;
            cz_ws_init(&ws, A, NULL, NULL);
            cz_http_buf_init(&out, A, 0);
            CHECKC(cz_ws_write(&ws, &out, CZ_WS_OP_BINARY, p, L[i], 0) == CZ_WS_OK, ctx);
            CHECKC(out.len == h + L[i] && memcmp(out.data, hdr, h) == 0 &&
                       (L[i] == 0 || memcmp(out.data + h, p, L[i]) == 0),
                   ctx);
            cz_http_buf_free(&out);
            cz_ws_destroy(&ws);
        }
        free(p);
        b_free(&b);
    }
}

static void test_protocol_errors(void) {
    uint8_t pay[200];
    bytes_t b = {0};
    cz_ws_deflate_t pmd;

    memset(pay, 'a', sizeof(pay));
    memset(&pmd, 0, sizeof(pmd));
    pmd.enabled = 1;

#define RESET() (b.len = 0)
    /* non-minimal lengths and the 64-bit MSB */
    {
        static const uint8_t h1[] = {0x82, 0xFE, 0x00, 0x7D};
        static const uint8_t h2[] = {0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
        static const uint8_t h3[] = {0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1};
        static const uint8_t h4[] = {0x82, 0xFE, 0x00, 0x7E}; /* minimal: fine */
        RESET();
        raw_frame(&b, h1, 4, pay, 125);
        expect_error(&b, NULL, NULL, 1002, "16-bit length 125");
        RESET();
        raw_frame(&b, h2, 10, pay, 0);
        expect_error(&b, NULL, NULL, 1002, "64-bit length 65535");
        RESET();
        raw_frame(&b, h3, 10, pay, 0);
        expect_error(&b, NULL, NULL, 1002, "64-bit MSB");
        RESET();
        raw_frame(&b, h4, 4, pay, 126);
        expect_one(b.d, b.len, NULL, NULL, CZ_WS_BINARY, 0, pay, 126, "16-bit 126");
    }
    /* control frames: > 125, fragmented */
    {
        static const uint8_t h1[] = {0x89, 0xFE, 0x00, 0x7E};
        RESET();
        raw_frame(&b, h1, 4, pay, 126);
        expect_error(&b, NULL, NULL, 1002, "ping of 126");
        RESET();
        frame(&b, 0, 0, CZ_WS_OP_PING, "x", 1, 0);
        expect_error(&b, NULL, NULL, 1002, "fragmented ping");
        RESET();
        frame(&b, 1, 0, CZ_WS_OP_PING, pay, 125, 0);
        expect_one(b.d, b.len, NULL, NULL, CZ_WS_PING, 0, pay, 125, "ping of 125");
    }
    /* continuation without start, new message during a fragmented one */
    RESET();
    frame(&b, 1, 0, CZ_WS_OP_CONT, "x", 1, 0);
    expect_error(&b, NULL, NULL, 1002, "continuation without start");
    RESET();
    frame(&b, 0, 0, CZ_WS_OP_TEXT, "x", 1, 0);
    frame(&b, 1, 0, CZ_WS_OP_BINARY, "y", 1, 0);
    expect_error(&b, NULL, NULL, 1002, "new message inside fragmented");
    RESET();
    frame(&b, 0, 0, CZ_WS_OP_TEXT, "x", 1, 0);
    frame(&b, 0, 0, CZ_WS_OP_TEXT, "y", 1, 0);
    expect_error(&b, NULL, NULL, 1002, "new text inside fragmented");
    /* reserved bits and opcodes */
    {
        int rsv;
        unsigned op;
        char ctx[40];
        for (rsv = 1; rsv < 8; rsv++) {
            RESET();
            frame(&b, 1, rsv, CZ_WS_OP_TEXT, "x", 1, 0);
            snprintf(ctx, sizeof(ctx), "rsv %d", rsv);
            expect_error(&b, NULL, NULL, 1002, ctx);
            /* with deflate only RSV1 (= 4) alone is allowed: "x" is no deflate data, but
             * RSV2/RSV3 fail first */
            if (rsv != 4) expect_error(&b, NULL, &pmd, 1002, ctx);
        }
        for (op = 3; op < 16; op++) {
            if (op >= 8 && op <= 10) continue;
            RESET();
            frame(&b, 1, 0, op, "x", 1, 0);
            snprintf(ctx, sizeof(ctx), "opcode %u", op);
            expect_error(&b, NULL, NULL, 1002, ctx);
        }
        /* RSV1 on a control frame or a continuation, even with deflate */
        RESET();
        frame(&b, 1, 4, CZ_WS_OP_PING, "", 0, 0);
        expect_error(&b, NULL, &pmd, 1002, "rsv1 ping");
        RESET();
        frame(&b, 0, 0, CZ_WS_OP_BINARY, "x", 1, 0);
        frame(&b, 1, 4, CZ_WS_OP_CONT, "y", 1, 0);
        expect_error(&b, NULL, &pmd, 1002, "rsv1 continuation");
    }
    /* unmasked */
    RESET();
    frame(&b, 1, 0, CZ_WS_OP_BINARY, "x", 1, 1);
    expect_error(&b, NULL, NULL, 1002, "unmasked");
    b_free(&b);
#undef RESET
}

static void test_fragments_and_control(void) {
    bytes_t b = {0};
    run_t r;

    /* pings between fragments; the pong of each; a pong too */
    frame(&b, 0, 0, CZ_WS_OP_TEXT, "frag", 4, 0);
    frame(&b, 1, 0, CZ_WS_OP_PING, "p1", 2, 0);
    frame(&b, 0, 0, CZ_WS_OP_CONT, "", 0, 0);
    frame(&b, 1, 0, CZ_WS_OP_PONG, "q", 1, 0);
    frame(&b, 1, 0, CZ_WS_OP_CONT, "ment", 4, 0);
    frame(&b, 1, 0, CZ_WS_OP_BINARY, "", 0, 0);
    frame(&b, 1, 0, CZ_WS_OP_CLOSE,
          "\x03\xe8"
          "bye",
          5, 0);
    run_all(b.d, b.len, NULL, NULL, &r, "fragments with control");
    CHECK(r.n == 5);
    CHECK(r.ev[0] == CZ_WS_PING && r.len[0] == 2 && memcmp(r.data[0], "p1", 2) == 0);
    CHECK(r.ev[1] == CZ_WS_PONG && r.len[1] == 1);
    CHECK(r.ev[2] == CZ_WS_TEXT && r.len[2] == 8 && memcmp(r.data[2], "fragment", 8) == 0);
    CHECK(r.ev[3] == CZ_WS_BINARY && r.len[3] == 0);
    CHECK(r.ev[4] == CZ_WS_CLOSE && r.code[4] == 1000 && r.len[4] == 3 && memcmp(r.data[4], "bye", 3) == 0);
    /* pong "p1", then the close echo: code only */
    CHECK(hexeq(r.control.d, r.control.len,
                "8a027031"
                "880203e8"));
    run_free(&r);

    /* two pings before a flush: only the latest is answered (5.5.3) */
    {
        cz_ws_t ws;
        cz_http_buf_t out;
        size_t used;
        b.len = 0;
        frame(&b, 1, 0, CZ_WS_OP_PING, "a", 1, 0);
        frame(&b, 1, 0, CZ_WS_OP_PING, "bb", 2, 0);
        cz_ws_init(&ws, A, NULL, NULL);
        cz_http_buf_init(&out, A, 0);
        CHECK(cz_ws_feed(&ws, (char *)b.d, b.len, &used) == CZ_WS_PING && used == 7);
        CHECK(cz_ws_control_pending(&ws));
        CHECK(cz_ws_feed(&ws, (char *)b.d + 7, b.len - 7, &used) == CZ_WS_PING);
        CHECK(cz_ws_flush_control(&ws, &out) == CZ_WS_OK);
        CHECK(hexeq((uint8_t *)out.data, out.len, "8a026262"));
        CHECK(!cz_ws_control_pending(&ws));
        /* a bounded output too small: nothing moves */
        {
            cz_http_buf_t small;
            cz_http_buf_init(&small, A, 3);
            CHECK(cz_ws_close(&ws, 1001, "going", 5) == CZ_WS_OK);
            CHECK(cz_ws_close(&ws, 1000, NULL, 0) == CZ_WS_EINVAL); /* once */
            CHECK(cz_ws_flush_control(&ws, &small) == CZ_WS_E2BIG && small.len == 0);
            CHECK(cz_ws_control_pending(&ws));
            CHECK(cz_ws_flush_control(&ws, &out) == CZ_WS_OK);
            CHECK(hexeq((uint8_t *)out.data, out.len,
                        "8a026262"
                        "880703e9676f696e67"));
            cz_http_buf_free(&small);
        }
        cz_http_buf_free(&out);
        cz_ws_destroy(&ws);
    }
    b_free(&b);
}

static void test_close(void) {
    static const struct {
        unsigned code;
        int valid;
    } C[] = {{0, 0},    {999, 0},  {1000, 1}, {1001, 1}, {1002, 1}, {1003, 1}, {1004, 0},
             {1005, 0}, {1006, 0}, {1007, 1}, {1008, 1}, {1009, 1}, {1010, 1}, {1011, 1},
             {1012, 1}, {1013, 1}, {1014, 1}, {1015, 0}, {1016, 0}, {1100, 0}, {2000, 0},
             {2999, 0}, {3000, 1}, {3999, 1}, {4000, 1}, {4999, 1}, {5000, 0}, {65535, 0}};
    size_t i;
    bytes_t b = {0};
    char ctx[40];

    for (i = 0; i < sizeof(C) / sizeof(C[0]); i++) {
        uint8_t p[2] = {(uint8_t)(C[i].code >> 8), (uint8_t)C[i].code};
        snprintf(ctx, sizeof(ctx), "close code %u", C[i].code);
        CHECKC(cz_ws_close_code_valid(C[i].code) == C[i].valid, ctx);
        b.len = 0;
        frame(&b, 1, 0, CZ_WS_OP_CLOSE, p, 2, 0);
        if (C[i].valid) {
            run_t r;
            run_all(b.d, b.len, NULL, NULL, &r, ctx);
            CHECKC(r.n == 1 && r.ev[0] == CZ_WS_CLOSE && r.code[0] == C[i].code && r.len[0] == 0, ctx);
            CHECKC(r.control.len == 4 && r.control.d[0] == 0x88 && r.control.d[1] == 2 &&
                       memcmp(r.control.d + 2, p, 2) == 0,
                   ctx);
            run_free(&r);
        } else {
            expect_error(&b, NULL, NULL, 1002, ctx);
        }
    }
    /* empty close: 1005 reported, an empty close back */
    {
        run_t r;
        b.len = 0;
        frame(&b, 1, 0, CZ_WS_OP_CLOSE, "", 0, 0);
        run_all(b.d, b.len, NULL, NULL, &r, "empty close");
        CHECK(r.n == 1 && r.ev[0] == CZ_WS_CLOSE && r.code[0] == 1005);
        CHECK(hexeq(r.control.d, r.control.len, "8800"));
        run_free(&r);
    }
    b.len = 0;
    frame(&b, 1, 0, CZ_WS_OP_CLOSE, "\x03", 1, 0);
    expect_error(&b, NULL, NULL, 1002, "close of 1 byte");
    b.len = 0;
    frame(&b, 1, 0, CZ_WS_OP_CLOSE, "\x03\xe8\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80", 16, 0);
    expect_error(&b, NULL, NULL, 1007, "close reason not UTF-8");
    b.len = 0;
    frame(&b, 1, 0, CZ_WS_OP_CLOSE, "\x03\xe8\xce", 3, 0);
    expect_error(&b, NULL, NULL, 1007, "close reason cut");

    /* our close first: the peer's close is not echoed; nothing after */
    {
        cz_ws_t ws;
        cz_http_buf_t out;
        size_t used;
        cz_ws_init(&ws, A, NULL, NULL);
        cz_http_buf_init(&out, A, 0);
        CHECK(cz_ws_close(&ws, 999, NULL, 0) == CZ_WS_EINVAL);
        CHECK(cz_ws_close(&ws, 0, "x", 1) == CZ_WS_EINVAL);
        {
            char r124[124];
            memset(r124, 'r', sizeof(r124));
            CHECK(cz_ws_close(&ws, 1000, r124, 124) == CZ_WS_EINVAL);
        }
        CHECK(cz_ws_close(&ws, 4000, "done", 4) == CZ_WS_OK);
        CHECK(cz_ws_write(&ws, &out, CZ_WS_OP_TEXT, "x", 1, 0) == CZ_WS_EINVAL);
        CHECK(cz_ws_flush_control(&ws, &out) == CZ_WS_OK);
        CHECK(hexeq((uint8_t *)out.data, out.len,
                    "8806"
                    "0fa0"
                    "646f6e65"));
        CHECK(cz_ws_flush_control(&ws, &out) == CZ_WS_OK && out.len == 8); /* once */
        b.len = 0;
        frame(&b, 1, 0, CZ_WS_OP_PING, "z", 1, 0); /* no pong after our close */
        frame(&b, 1, 0, CZ_WS_OP_CLOSE, "\x03\xe8", 2, 0);
        CHECK(cz_ws_feed(&ws, (char *)b.d, b.len, &used) == CZ_WS_PING);
        CHECK(!cz_ws_control_pending(&ws));
        CHECK(cz_ws_feed(&ws, (char *)b.d + used, b.len - used, &used) == CZ_WS_CLOSE);
        CHECK(cz_ws_close_code(&ws) == 1000 && !cz_ws_control_pending(&ws));
        cz_http_buf_free(&out);
        cz_ws_destroy(&ws);
    }
    /* an error after our close: no second close frame */
    {
        cz_ws_t ws;
        size_t used;
        cz_ws_init(&ws, A, NULL, NULL);
        CHECK(cz_ws_close(&ws, 1000, NULL, 0) == CZ_WS_OK);
        CHECK(cz_ws_feed(&ws, (char *)"\x81\x01", 2, &used) == CZ_WS_ERROR);
        CHECK(cz_ws_close_code(&ws) == 1002);
        CHECK(ws.close_out_len == 4 && ws.close_out[3] == (1000 & 0xff));
        cz_ws_destroy(&ws);
    }
    b_free(&b);
}

/* ---- UTF-8 -------------------------------------------------------------------- */

static void test_utf8(void) {
    static const struct {
        const char *hex;
        int ok; /* 1 valid and complete, 0 invalid at `at`, 2 valid but cut */
        size_t at;
    } U[] = {
        {"", 1, 0},
        {"48656c6c6f", 1, 0},
        {"cebae1bdb9cf83cebcceb5", 1, 0}, /* κόσμε */
        {"f48fbfbf", 1, 0},               /* U+10FFFF */
        {"efbfbf", 1, 0},                 /* U+FFFF */
        {"ed9fbf", 1, 0},                 /* U+D7FF */
        {"ee8080", 1, 0},                 /* U+E000 */
        {"c280", 1, 0},                   /* U+0080 */
        {"f0908080", 1, 0},               /* U+10000 */
        {"c080", 0, 0},                   /* overlong NUL */
        {"c1bf", 0, 0},
        {"e08080", 0, 1}, /* overlong */
        {"e09fbf", 0, 1},
        {"f08fbfbf", 0, 1},
        {"eda080", 0, 1},   /* U+D800 */
        {"edbfbf", 0, 1},   /* U+DFFF */
        {"f4908080", 0, 1}, /* U+110000 */
        {"f5808080", 0, 0},
        {"ff", 0, 0},
        {"80", 0, 0},
        {"4142bf", 0, 2},
        {"cebae1bdb9cf83cebcceb5eda080656469746564", 0, 12}, /* Autobahn 6.4.x */
        {"c2", 2, 0},
        {"e282", 2, 0},
        {"e282414243", 0, 2},
        {"f4", 2, 0},
        {"414243444546474849", 1, 0},
        {"4142434445464748c3a9", 1, 0},
        {"41424344454647484980", 0, 9},
    };
    size_t i, k;
    char ctx[64];

    for (i = 0; i < sizeof(U) / sizeof(U[0]); i++) {
        uint8_t d[64];
        size_t n = unhex(U[i].hex, d), bad = 999;
        cz_ws_utf8_t u;
        int rc;

        snprintf(ctx, sizeof(ctx), "utf8 %s", U[i].hex);
        cz_ws_utf8_init(&u);
        rc = cz_ws_utf8_feed(&u, d, n, &bad);
        if (U[i].ok == 0) CHECKC(rc == -1 && bad == U[i].at, ctx);
        else CHECKC(rc == 0 && cz_ws_utf8_complete(&u) == (U[i].ok == 1), ctx);
        /* byte by byte: the same verdict, at the same byte */
        cz_ws_utf8_init(&u);
        rc = 0;
        for (k = 0; k < n && rc == 0; k++) rc = cz_ws_utf8_feed(&u, d + k, 1, NULL);
        if (U[i].ok == 0) CHECKC(rc == -1 && k - 1 == U[i].at, ctx);
        else CHECKC(rc == 0 && cz_ws_utf8_complete(&u) == (U[i].ok == 1), ctx);
    }

    /* text messages */
    {
        bytes_t b = {0};
        uint8_t d[64];
        size_t n = unhex("cebae1bdb9cf83cebcceb5eda080656469746564", d);
        frame(&b, 1, 0, CZ_WS_OP_TEXT, d, n, 0);
        expect_error(&b, NULL, NULL, 1007, "text with surrogate");
        /* fail fast: only the frame's header and first 13 bytes (up to the bad byte)
         * have arrived, the frame is not complete and no error yet would be
         * too late */
        {
            cz_ws_t ws;
            size_t used;
            uint8_t *c = xmalloc(b.len);
            memcpy(c, b.d, b.len);
            cz_ws_init(&ws, A, NULL, NULL);
            CHECK(cz_ws_feed(&ws, (char *)c, 6 + 13, &used) == CZ_WS_ERROR);
            CHECK(cz_ws_close_code(&ws) == 1007);
            cz_ws_destroy(&ws);
            free(c);
        }
        /* mid-fragment: the first fragment's bad prefix fails it */
        b.len = 0;
        frame(&b, 0, 0, CZ_WS_OP_TEXT, d, 13, 0);
        {
            cz_ws_t ws;
            size_t used;
            cz_ws_init(&ws, A, NULL, NULL);
            CHECK(cz_ws_feed(&ws, (char *)b.d, b.len, &used) == CZ_WS_ERROR);
            CHECK(cz_ws_close_code(&ws) == 1007);
            cz_ws_destroy(&ws);
        }
        /* a character split across fragments is fine */
        b.len = 0;
        frame(&b, 0, 0, CZ_WS_OP_TEXT, d, 1, 0);
        frame(&b, 0, 0, CZ_WS_OP_CONT, d + 1, 2, 0);
        frame(&b, 1, 0, CZ_WS_OP_CONT, d + 3, 8, 0);
        expect_one(b.d, b.len, NULL, NULL, CZ_WS_TEXT, 0, d, 11, "split character");
        /* ... but a message must not end inside one */
        b.len = 0;
        frame(&b, 0, 0, CZ_WS_OP_TEXT, d, 1, 0);
        frame(&b, 1, 0, CZ_WS_OP_CONT, d + 1, 2, 0);
        expect_error(&b, NULL, NULL, 1007, "text ends mid-character");
        b.len = 0;
        frame(&b, 1, 0, CZ_WS_OP_TEXT, d, 1, 0);
        expect_error(&b, NULL, NULL, 1007, "single frame ends mid-character");
        /* binary is not checked */
        b.len = 0;
        frame(&b, 1, 0, CZ_WS_OP_BINARY, "\xff", 1, 0);
        expect_one(b.d, b.len, NULL, NULL, CZ_WS_BINARY, 0, "\xff", 1, "binary ff");
        b_free(&b);
    }
}

/* ---- limits ----------------------------------------------------------------------- */

static void test_limits(void) {
    cz_ws_limits_t lim;
    bytes_t b = {0};
    uint8_t p[300];

    memset(p, 'x', sizeof(p));
    memset(&lim, 0, sizeof(lim));
    lim.max_frame = 100;
    lim.max_message = 150;
    frame(&b, 1, 0, CZ_WS_OP_BINARY, p, 100, 0);
    expect_one(b.d, b.len, &lim, NULL, CZ_WS_BINARY, 0, p, 100, "frame at limit");
    b.len = 0;
    frame(&b, 1, 0, CZ_WS_OP_BINARY, p, 101, 0);
    expect_error(&b, &lim, NULL, 1009, "frame over limit");
    /* the error comes with the header, before the payload */
    {
        cz_ws_t ws;
        size_t used;
        cz_ws_init(&ws, A, &lim, NULL);
        CHECK(cz_ws_feed(&ws, (char *)b.d, 6, &used) == CZ_WS_ERROR && cz_ws_close_code(&ws) == 1009);
        cz_ws_destroy(&ws);
    }
    b.len = 0;
    frame(&b, 0, 0, CZ_WS_OP_TEXT, p, 100, 0);
    frame(&b, 1, 0, CZ_WS_OP_CONT, p, 50, 0);
    expect_one(b.d, b.len, &lim, NULL, CZ_WS_TEXT, 0, p, 150, "message at limit");
    b.len = 0;
    frame(&b, 0, 0, CZ_WS_OP_TEXT, p, 100, 0);
    frame(&b, 1, 0, CZ_WS_OP_CONT, p, 51, 0);
    expect_error(&b, &lim, NULL, 1009, "message over limit");
    /* control frames are not data: max_frame does not apply below 125 */
    b.len = 0;
    frame(&b, 1, 0, CZ_WS_OP_PING, p, 120, 0);
    expect_one(b.d, b.len, &lim, NULL, CZ_WS_PING, 0, p, 120, "ping over max_frame");
    /* a big assembled message: its buffer is let go once it is handled */
    {
        cz_ws_t ws;
        size_t used;
        uint8_t big[5000];
        memset(big, 'b', sizeof(big));
        memset(&lim, 0, sizeof(lim));
        lim.retain = 1024;
        b.len = 0;
        frame(&b, 0, 0, CZ_WS_OP_BINARY, big, 3000, 0);
        frame(&b, 1, 0, CZ_WS_OP_CONT, big, 2000, 0);
        frame(&b, 0, 0, CZ_WS_OP_BINARY, big, 10, 0);
        frame(&b, 1, 0, CZ_WS_OP_CONT, big, 10, 0);
        cz_ws_init(&ws, A, &lim, NULL);
        CHECK(!cz_ws_in_message(&ws));
        CHECK(cz_ws_feed(&ws, (char *)b.d, 3, &used) == CZ_WS_NEED_MORE && used == 3);
        CHECK(cz_ws_in_message(&ws));
        CHECK(cz_ws_feed(&ws, (char *)b.d + 3, b.len - 3, &used) == CZ_WS_BINARY);
        CHECK(3 + used == 2 * 8 + 5000);
        CHECK(cz_ws_payload(&ws).len == 5000 && ws.msg_cap >= 5000);
        CHECK(!cz_ws_in_message(&ws));
        CHECK(cz_ws_feed(&ws, (char *)b.d + 5016, 0, &used) == CZ_WS_NEED_MORE);
        CHECK(ws.msg == NULL && ws.msg_cap == 0); /* over retain: freed */
        CHECK(cz_ws_feed(&ws, (char *)b.d + 5016, b.len - 5016, &used) == CZ_WS_BINARY);
        CHECK(cz_ws_payload(&ws).len == 20 && ws.msg_cap == 1024);
        CHECK(cz_ws_feed(&ws, NULL, 0, &used) == CZ_WS_NEED_MORE && ws.msg_cap == 1024); /* kept */
        cz_ws_destroy(&ws);
    }
    /* defaults */
    cz_ws_limits_default(&lim);
    CHECK(lim.max_frame == CZ_WS_DEFAULT_MAX_FRAME && lim.max_message == 16u * 1024 * 1024);
    b_free(&b);
}

/* ---- permessage-deflate ----------------------------------------------------------- */

static cz_ws_deflate_t pmd_on(int rx_nct, int tx_nct) {
    cz_ws_deflate_t d;
    memset(&d, 0, sizeof(d));
    d.enabled = 1;
    d.rx_window_bits = 15;
    d.tx_window_bits = 15;
    d.rx_no_context_takeover = (uint8_t)rx_nct;
    d.tx_no_context_takeover = (uint8_t)tx_nct;
    d.level = -1;
    return d;
}

/* A server frame (unmasked) turned into the client frame with the same
 * header bits and payload, so a cz_ws_t can read what cz_ws_write wrote. */
static void server_to_client(const uint8_t *s, size_t n, bytes_t *b) {
    size_t pos = 0;
    while (pos < n) {
        uint8_t len7 = s[pos + 1] & 0x7f;
        size_t h = len7 == 126 ? 4 : len7 == 127 ? 10 : 2, plen = 0, i, at;
        if (len7 == 126) plen = (size_t)s[pos + 2] << 8 | s[pos + 3];
        else if (len7 == 127)
            for (i = 0; i < 8; i++) plen = plen << 8 | s[pos + 2 + i];
        else plen = len7;
        b_put(b, s + pos, h);
        b->d[b->len - h + 1] |= 0x80;
        b_put(b, KEY, 4);
        at = b->len;
        b_put(b, s + pos + h, plen);
        cz_ws_mask(b->d + at, plen, KEY, 0);
        pos += h + plen;
    }
}

/* Raw deflate of `in` as a permessage-deflate sender would (fresh stream,
 * sync flush, tail removed). */
static size_t client_deflate(const void *in, size_t n, uint8_t *out, size_t cap) {
    z_stream z;
    size_t len;
    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) return 0;
    z.next_in = in;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    deflate(&z, Z_SYNC_FLUSH);
    len = cap - z.avail_out;
    deflateEnd(&z);
    return len >= 4 ? len - 4 : 0;
}

static void test_deflate(void) {
    cz_ws_deflate_t on = pmd_on(0, 0), rx_nct = pmd_on(1, 0);
    bytes_t b = {0};
    uint8_t d[64];
    size_t n;
    run_t r;

    /* RFC 7692 7.2.3.1: "Hello" in one compressed frame */
    n = unhex("f248cdc9c90700", d);
    frame(&b, 1, 4, CZ_WS_OP_TEXT, d, n, 0);
    expect_one(b.d, b.len, NULL, &on, CZ_WS_TEXT, 0, "Hello", 5, "7.2.3.1");
    /* without the extension, RSV1 is an error */
    expect_error(&b, NULL, NULL, 1002, "rsv1 without deflate");
    /* 7.2.3.1 fragmented: the compressed bytes in two frames */
    b.len = 0;
    frame(&b, 0, 4, CZ_WS_OP_TEXT, d, 3, 0);
    frame(&b, 1, 0, CZ_WS_OP_CONT, d + 3, n - 3, 0);
    expect_one(b.d, b.len, NULL, &on, CZ_WS_TEXT, 0, "Hello", 5, "7.2.3.1 fragmented");
    /* 7.2.3.2: the second "Hello" refers to the first (context takeover) */
    b.len = 0;
    frame(&b, 1, 4, CZ_WS_OP_TEXT, d, n, 0);
    n = unhex("f200110000", d);
    frame(&b, 1, 4, CZ_WS_OP_TEXT, d, n, 0);
    run_all(b.d, b.len, NULL, &on, &r, "7.2.3.2");
    CHECK(r.n == 2 && r.ev[1] == CZ_WS_TEXT && r.len[1] == 5 && memcmp(r.data[1], "Hello", 5) == 0);
    run_free(&r);
    /* ... which a peer that promised no context takeover must not do */
    run_all(b.d, b.len, NULL, &rx_nct, &r, "7.2.3.2 no takeover");
    CHECK(r.n == 2 && r.ev[0] == CZ_WS_TEXT && r.ev[1] == CZ_WS_ERROR && r.code[1] == 1002);
    run_free(&r);
    /* 7.2.3.3: a stored block; 7.2.3.4: BFINAL; 7.2.3.5: two blocks; 7.2.3.6: empty */
    b.len = 0;
    n = unhex("000500faff48656c6c6f00", d);
    frame(&b, 1, 4, CZ_WS_OP_TEXT, d, n, 0);
    expect_one(b.d, b.len, NULL, &on, CZ_WS_TEXT, 0, "Hello", 5, "7.2.3.3");
    b.len = 0;
    n = unhex("f348cdc9c90700", d);
    frame(&b, 1, 4, CZ_WS_OP_TEXT, d, n, 0);
    n = unhex("f248cdc9c90700", d); /* after a final block: a new stream */
    frame(&b, 1, 4, CZ_WS_OP_TEXT, d, n, 0);
    n = unhex("f200110000", d); /* which still has the window */
    frame(&b, 1, 4, CZ_WS_OP_TEXT, d, n, 0);
    run_all(b.d, b.len, NULL, &on, &r, "7.2.3.4");
    CHECK(r.n == 3 && r.ev[0] == CZ_WS_TEXT && r.len[0] == 5 && r.ev[1] == CZ_WS_TEXT && r.len[1] == 5 &&
          memcmp(r.data[1], "Hello", 5) == 0);
    CHECK(r.n == 3 && r.ev[2] == CZ_WS_TEXT && r.len[2] == 5 && memcmp(r.data[2], "Hello", 5) == 0);
    run_free(&r);
    b.len = 0;
    n = unhex("f24805000000ffffcac9c90700", d);
    frame(&b, 1, 4, CZ_WS_OP_TEXT, d, n, 0);
    expect_one(b.d, b.len, NULL, &on, CZ_WS_TEXT, 0, "Hello", 5, "7.2.3.5");
    b.len = 0;
    frame(&b, 1, 4, CZ_WS_OP_BINARY, "\x00", 1, 0);
    expect_one(b.d, b.len, NULL, &on, CZ_WS_BINARY, 0, "", 0, "7.2.3.6 empty");
    /* not deflate data -> 1002; inflated text not UTF-8 -> 1007 */
    b.len = 0;
    frame(&b, 1, 4, CZ_WS_OP_BINARY, "\xff\xff\xff\xff", 4, 0);
    expect_error(&b, NULL, &on, 1002, "bad deflate data");
    {
        uint8_t c[64];
        size_t cn = client_deflate("ab\xed\xa0\x80", 5, c, sizeof(c));
        b.len = 0;
        frame(&b, 1, 4, CZ_WS_OP_TEXT, c, cn, 0);
        expect_error(&b, NULL, &on, 1007, "compressed text not UTF-8");
    }

    /* the writer: 7.2.3.1's bytes from a fresh deflater */
    {
        cz_ws_t ws;
        cz_http_buf_t out;
        cz_ws_init(&ws, A, NULL, &on);
        cz_http_buf_init(&out, A, 0);
        CHECK(cz_ws_write(&ws, &out, CZ_WS_OP_TEXT, "Hello", 5, 1) == CZ_WS_OK);
        CHECK(hexeq((uint8_t *)out.data, out.len, "c107f248cdc9c90700"));
        /* 7.2.3.2: with the window shared, the second is a back-reference */
        cz_http_buf_reset(&out, 0);
        CHECK(cz_ws_write(&ws, &out, CZ_WS_OP_TEXT, "Hello", 5, 1) == CZ_WS_OK);
        CHECK(hexeq((uint8_t *)out.data, out.len, "c105f200110000"));
        /* compress 0: plain */
        cz_http_buf_reset(&out, 0);
        CHECK(cz_ws_write(&ws, &out, CZ_WS_OP_TEXT, "Hello", 5, 0) == CZ_WS_OK);
        CHECK(hexeq((uint8_t *)out.data, out.len, "810548656c6c6f"));
        /* the empty message: one 0x00 (7.2.3.6) */
        cz_http_buf_reset(&out, 0);
        CHECK(cz_ws_write(&ws, &out, CZ_WS_OP_BINARY, "", 0, 1) == CZ_WS_OK);
        CHECK(hexeq((uint8_t *)out.data, out.len, "c20100"));
        cz_http_buf_free(&out);
        cz_ws_destroy(&ws);
    }
    /* no context takeover on the send side: same bytes twice, no deflater kept */
    {
        cz_ws_deflate_t tx_nct = pmd_on(0, 1);
        cz_ws_t ws;
        cz_http_buf_t out;
        cz_ws_init(&ws, A, NULL, &tx_nct);
        cz_http_buf_init(&out, A, 0);
        CHECK(cz_ws_write(&ws, &out, CZ_WS_OP_TEXT, "Hello", 5, 1) == CZ_WS_OK);
        CHECK(ws.zout == NULL);
        CHECK(cz_ws_write(&ws, &out, CZ_WS_OP_TEXT, "Hello", 5, 1) == CZ_WS_OK);
        CHECK(hexeq((uint8_t *)out.data, out.len, "c107f248cdc9c90700c107f248cdc9c90700"));
        cz_http_buf_free(&out);
        cz_ws_destroy(&ws);
    }
    /* round trips over every length class, both takeover modes */
    {
        static const size_t L[] = {0, 1, 100, 125, 126, 1000, 65535, 65536, 70000, 300000};
        int mode;
        for (mode = 0; mode < 2; mode++) {
            cz_ws_deflate_t tx = pmd_on(0, mode), rx = pmd_on(mode, 0);
            cz_ws_t sender;
            cz_http_buf_t out;
            bytes_t cb = {0};
            size_t i, j;
            run_t rr;
            uint8_t *msgs[10];

            cz_ws_init(&sender, A, NULL, &tx);
            cz_http_buf_init(&out, A, 0);
            for (i = 0; i < 10; i++) {
                msgs[i] = xmalloc(L[i]);
                for (j = 0; j < L[i]; j++) /* compressible, and some noise */
                    msgs[i][j] = (uint8_t)((j % 13) < 10 ? 'a' + (j % 7) : (j * 2654435761u) >> 24);
                CHECK(cz_ws_write(&sender, &out, CZ_WS_OP_BINARY, msgs[i], L[i], 1) == CZ_WS_OK);
            }
            server_to_client((uint8_t *)out.data, out.len, &cb);
            {
                cz_ws_t recv;
                cz_ws_init(&recv, A, NULL, &rx);
                drive(&recv, cb.d, cb.len, 0, &rr);
                cz_ws_destroy(&recv);
            }
            CHECK(rr.n == 10);
            for (i = 0; i < 10 && i < (size_t)rr.n; i++)
                CHECK(rr.ev[i] == CZ_WS_BINARY && rr.len[i] == L[i] && memcmp(rr.data[i], msgs[i], L[i]) == 0);
            for (i = 0; i < 10; i++) free(msgs[i]);
            run_free(&rr);
            b_free(&cb);
            cz_http_buf_free(&out);
            cz_ws_destroy(&sender);
        }
    }
    /* the bomb limit: 1 MiB of zeros in ~1 KB */
    {
        size_t big = 1u << 20, cn;
        uint8_t *z = calloc(1, big), *c = xmalloc(big);
        cz_ws_limits_t lim;
        memset(&lim, 0, sizeof(lim));
        lim.max_message = 65536;
        cn = client_deflate(z, big, c, big);
        CHECK(cn > 0 && cn < 4096);
        b.len = 0;
        frame(&b, 1, 4, CZ_WS_OP_BINARY, c, cn, 0);
        expect_error(&b, &lim, &on, 1009, "bomb");
        /* exactly at the limit, and one over */
        cn = client_deflate(z, 65536, c, big);
        b.len = 0;
        frame(&b, 1, 4, CZ_WS_OP_BINARY, c, cn, 0);
        expect_one(b.d, b.len, &lim, &on, CZ_WS_BINARY, 0, z, 65536, "inflated at limit");
        cn = client_deflate(z, 65537, c, big);
        b.len = 0;
        frame(&b, 1, 4, CZ_WS_OP_BINARY, c, cn, 0);
        expect_error(&b, &lim, &on, 1009, "inflated one over");
        free(z);
        free(c);
    }
    /* E2BIG from a bounded output leaves it as it was, and the next
     * message still decodes (the deflater was reset) */
    {
        cz_ws_t ws;
        cz_http_buf_t out, small;
        bytes_t cb = {0};
        run_t rr;
        uint8_t noise[2000];
        size_t i;
        for (i = 0; i < sizeof(noise); i++) noise[i] = (uint8_t)((i * 2654435761u) >> 13);
        cz_ws_init(&ws, A, NULL, &on);
        cz_http_buf_init(&out, A, 0);
        cz_http_buf_init(&small, A, 500);
        CHECK(cz_ws_write(&ws, &out, CZ_WS_OP_TEXT, "Hello", 5, 1) == CZ_WS_OK);
        CHECK(cz_ws_write(&ws, &small, CZ_WS_OP_BINARY, noise, sizeof(noise), 1) == CZ_WS_E2BIG);
        CHECK(small.len == 0);
        CHECK(cz_ws_write(&ws, &out, CZ_WS_OP_TEXT, "Hello", 5, 1) == CZ_WS_OK);
        server_to_client((uint8_t *)out.data, out.len, &cb);
        {
            cz_ws_t recv;
            cz_ws_init(&recv, A, NULL, &on);
            drive(&recv, cb.d, cb.len, 0, &rr);
            cz_ws_destroy(&recv);
        }
        CHECK(rr.n == 2 && rr.ev[1] == CZ_WS_TEXT && rr.len[1] == 5);
        run_free(&rr);
        b_free(&cb);
        cz_http_buf_free(&small);
        cz_http_buf_free(&out);
        cz_ws_destroy(&ws);
    }
    b_free(&b);
}

/* ---- allocation failures ---------------------------------------------------------- */

/* Run `in` with the k-th allocation failing, for every k until a run
 * with no failure: the run ends either as without failures or with 1011,
 * and everything is freed. */
static void fail_each(const uint8_t *in, size_t len, const cz_ws_deflate_t *pmd, int want_ev, size_t want_len,
                      const char *name) {
    long k;
    for (k = 1; k < 1000; k++) {
        size_t before = live_bytes();
        cz_ws_t ws;
        run_t r;
        long faults;
        cz_ws_init(&ws, A, NULL, pmd);
        fault_arm(k);
        drive(&ws, in, len, 5, &r);
        faults = g_faults;
        fault_arm(0);
        cz_ws_destroy(&ws);
        CHECKC(r.n >= 1, name);
        if (r.n >= 1) {
            if (faults)
                CHECKC((r.ev[r.n - 1] == CZ_WS_ERROR && r.code[r.n - 1] == 1011) ||
                           (r.ev[r.n - 1] == want_ev && r.len[r.n - 1] == want_len),
                       name);
            else CHECKC(r.ev[r.n - 1] == want_ev && r.len[r.n - 1] == want_len, name);
        }
        run_free(&r);
        CHECKC(live_bytes() == before, name);
        if (!faults) break;
    }
    CHECKC(k > 1, name); /* something was allocated */
}

/* Raw deflate with `bits` (zlib makes 8 into 9 only for its own wrapper:
 * raw 8 is refused, so the caller passes 9 for a 256-byte promise),
 * keeping the stream for context takeover; sync flush, tail removed. */
static size_t stream_deflate(z_stream *z, const void *in, size_t n, uint8_t *out, size_t cap) {
    size_t len;
    z->next_in = in;
    z->avail_in = (uInt)n;
    z->next_out = out;
    z->avail_out = (uInt)cap;
    if (deflate(z, Z_SYNC_FLUSH) != Z_OK) return 0;
    len = cap - z->avail_out;
    return len >= 4 && z->avail_in == 0 ? len - 4 : 0;
}

static void noise(uint8_t *d, size_t n, uint32_t seed) {
    size_t i;
    for (i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        d[i] = (uint8_t)(seed >> 16);
    }
}

/* Inflate a permessage-deflate payload (tail added) with a raw window of
 * `bits`, one output byte per call, so that zlib's distance check is exact:
 * nothing of the current call's output counts, only the window. 1 when
 * out[0..n) is what came out. */
static int strict_inflate(z_stream *z, const uint8_t *in, size_t len, uint8_t *out, size_t n) {
    static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};
    size_t got = 0;
    int part;

    for (part = 0; part < 2; part++) {
        z->next_in = part ? tail : in;
        z->avail_in = (uInt)(part ? 4 : len);
        while (z->avail_in > 0 || part == 1) {
            uint8_t one;
            int rc;
            z->next_out = &one;
            z->avail_out = 1;
            rc = inflate(z, Z_SYNC_FLUSH);
            if (rc != Z_OK && rc != Z_BUF_ERROR) return 0;
            if (z->avail_out == 0) {
                if (got == n || one != out[got]) return 0;
                got++;
            } else if (z->avail_in == 0) {
                break;
            }
        }
    }
    return got == n;
}

/* What we write with server_max_window_bits=8 (deflated with 9) is read by a
 * 256-byte window, message after message with the context kept; 15 is not
 * (the check is strict). */
static void test_deflate_window8(void) {
    static const uint8_t tx_bits[] = {8, 15};
    uint8_t msg[1200];
    size_t i, k;

    for (i = 0; i < sizeof(tx_bits); i++) {
        cz_ws_deflate_t pmd = pmd_on(0, 0);
        cz_http_buf_t out;
        cz_ws_t ws;
        z_stream z;
        int all = 1;

        pmd.tx_window_bits = tx_bits[i];
        cz_ws_init(&ws, A, NULL, &pmd);
        cz_http_buf_init(&out, A, 0);
        memset(&z, 0, sizeof(z));
        CHECK(inflateInit2(&z, -8) == Z_OK);
        for (k = 0; k < 6; k++) {
            size_t h;
            /* repeats from 100 to 700 bytes back (and, from the second
             * message on, of the previous one: the same noise prefix) */
            noise(msg, 400, (uint32_t)(k % 2 + 1));
            memcpy(msg + 400, msg + 300, 100);
            memcpy(msg + 500, msg + 250, 50);
            memcpy(msg + 550, msg + 250, 60);
            memcpy(msg + 610, msg + 100, 300);
            memcpy(msg + 910, msg + 210, 290);
            cz_http_buf_reset(&out, 0);
            CHECK(cz_ws_write(&ws, &out, CZ_WS_OP_BINARY, msg, sizeof(msg), 1) == CZ_WS_OK);
            h = (((uint8_t *)out.data)[1] & 0x7f) == 126 ? 4 : 2;
            CHECK(out.len > h && (((uint8_t *)out.data)[0] & 0x40));
            all = all && strict_inflate(&z, (uint8_t *)out.data + h, out.len - h, msg, sizeof(msg));
            /* (once the reader failed, it reads nothing more) */
        }
        if (tx_bits[i] == 8) CHECKC(all, "tx 8 read by a 256-byte window");
        else CHECKC(!all, "tx 15 is not: the strict reader sees it");
        inflateEnd(&z);
        cz_http_buf_free(&out);
        cz_ws_destroy(&ws);
    }
}

/*
 * The inflater's window against what the peer does, every split agreeing
 * (run_all): a peer told client_max_window_bits=9 that reaches 600 bytes
 * back anyway was read whole and refused (1002) when the reference came in
 * a later read than the bytes it refers to, since zlib measures a distance
 * against its window plus the current call's output, not 2^windowBits. Now
 * the inflater keeps 32 KiB, and the message reads the same in every split.
 */
static void test_deflate_window(void) {
    static const uint8_t bits[] = {8, 9, 12, 15};
    uint8_t msg[664], msg2[300], c[1024];
    bytes_t b = {0};
    size_t i, n;
    z_stream z;
    run_t r;

    noise(msg, 600, 7);
    memcpy(msg + 600, msg, 64); /* a back-reference 600 bytes back */
    noise(msg2, 200, 11);
    memcpy(msg2 + 200, msg + 500, 100); /* into the previous message */
    for (i = 0; i < sizeof(bits); i++) {
        cz_ws_deflate_t pmd = pmd_on(0, 0);
        char name[64];
        pmd.rx_window_bits = bits[i];

        /* a peer that ignores the window it was given (it deflates with 15) */
        memset(&z, 0, sizeof(z));
        CHECK(deflateInit2(&z, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK);
        b.len = 0;
        n = stream_deflate(&z, msg, sizeof(msg), c, sizeof(c));
        CHECK(n > 0 && n < sizeof(msg)); /* the repeat was found */
        frame(&b, 1, 4, CZ_WS_OP_BINARY, c, n, 0);
        n = stream_deflate(&z, msg2, sizeof(msg2), c, sizeof(c));
        CHECK(n > 0);
        frame(&b, 1, 4, CZ_WS_OP_BINARY, c, n, 0);
        deflateEnd(&z);
        snprintf(name, sizeof(name), "window %u, peer at 15", bits[i]);
        run_all(b.d, b.len, NULL, &pmd, &r, name);
        CHECKC(r.n == 2 && r.ev[0] == CZ_WS_BINARY && r.len[0] == sizeof(msg) &&
                   memcmp(r.data[0], msg, sizeof(msg)) == 0,
               name);
        CHECKC(r.n == 2 && r.ev[1] == CZ_WS_BINARY && r.len[1] == sizeof(msg2) &&
                   memcmp(r.data[1], msg2, sizeof(msg2)) == 0,
               name);
        run_free(&r);

        /* a peer within it (8 is deflated with 9, which reaches 250 back) */
        memset(&z, 0, sizeof(z));
        CHECK(deflateInit2(&z, 9, Z_DEFLATED, -(bits[i] < 9 ? 9 : bits[i]), 8, Z_DEFAULT_STRATEGY) == Z_OK);
        b.len = 0;
        n = stream_deflate(&z, msg, sizeof(msg), c, sizeof(c));
        frame(&b, 1, 4, CZ_WS_OP_BINARY, c, n, 0);
        n = stream_deflate(&z, msg2, sizeof(msg2), c, sizeof(c));
        frame(&b, 1, 4, CZ_WS_OP_BINARY, c, n, 0);
        deflateEnd(&z);
        snprintf(name, sizeof(name), "window %u, peer within", bits[i]);
        run_all(b.d, b.len, NULL, &pmd, &r, name);
        CHECKC(r.n == 2 && r.len[0] == sizeof(msg) && memcmp(r.data[0], msg, sizeof(msg)) == 0, name);
        CHECKC(r.n == 2 && r.len[1] == sizeof(msg2) && memcmp(r.data[1], msg2, sizeof(msg2)) == 0, name);
        run_free(&r);
    }
    /* a reference before anything was written is refused in every split:
     * a stored block of 4 bytes, then a fixed block with a match of
     * length 3 at distance 5 */
    {
        static const uint8_t far[] = {0x00, 0x04, 0x00, 0xfb, 0xff, 'a', 'b', 'c', 'd', 0x02, 0x12, 0x00};
        cz_ws_deflate_t pmd = pmd_on(0, 0);
        pmd.rx_window_bits = 9;
        b.len = 0;
        frame(&b, 1, 4, CZ_WS_OP_BINARY, far, sizeof(far), 0);
        run_all(b.d, b.len, NULL, &pmd, &r, "distance before the stream");
        CHECK(r.n == 1 && r.ev[0] == CZ_WS_ERROR && r.code[0] == 1002);
        run_free(&r);
    }
    b_free(&b);
}

static void test_alloc_failures(void) {
    cz_ws_deflate_t on = pmd_on(0, 0), nct = pmd_on(1, 1);
    bytes_t b = {0};
    uint8_t p[5000], c[6000];
    size_t i, cn;

    for (i = 0; i < sizeof(p); i++) p[i] = (uint8_t)('a' + i % 26);
    frame(&b, 0, 0, CZ_WS_OP_BINARY, p, 3000, 0);
    frame(&b, 1, 0, CZ_WS_OP_CONT, p + 3000, 2000, 0);
    fail_each(b.d, b.len, NULL, CZ_WS_BINARY, 5000, "fragmented assembly");
    cn = client_deflate(p, sizeof(p), c, sizeof(c));
    b.len = 0;
    frame(&b, 1, 4, CZ_WS_OP_TEXT, c, cn, 0);
    fail_each(b.d, b.len, &on, CZ_WS_TEXT, 5000, "inflate");
    fail_each(b.d, b.len, &nct, CZ_WS_TEXT, 5000, "inflate no takeover");
    /* a final block: the window is carried into the next stream */
    {
        uint8_t d[16];
        size_t n = unhex("f348cdc9c90700", d);
        b.len = 0;
        frame(&b, 1, 4, CZ_WS_OP_TEXT, d, n, 0);
        n = unhex("f200110000", d);
        frame(&b, 1, 4, CZ_WS_OP_TEXT, d, n, 0);
        fail_each(b.d, b.len, &on, CZ_WS_TEXT, 5, "inflate after BFINAL");
    }

    /* the deflater: ENOMEM, nothing appended, then it works */
    {
        long k;
        for (k = 1; k < 100; k++) {
            size_t before = live_bytes();
            cz_ws_t ws;
            cz_http_buf_t out;
            int rc;
            long faults;
            cz_ws_init(&ws, A, NULL, &on);
            cz_http_buf_init(&out, A, 0);
            fault_arm(k);
            rc = cz_ws_write(&ws, &out, CZ_WS_OP_TEXT, p, sizeof(p), 1);
            faults = g_faults;
            fault_arm(0);
            if (faults) CHECK(rc == CZ_WS_ENOMEM && out.len == 0);
            else CHECK(rc == CZ_WS_OK && out.len > 0);
            CHECK(cz_ws_write(&ws, &out, CZ_WS_OP_TEXT, p, sizeof(p), 1) == CZ_WS_OK);
            cz_http_buf_free(&out);
            cz_ws_destroy(&ws);
            CHECK(live_bytes() == before);
            if (!faults) break;
        }
        CHECK(k > 2);
    }
    b_free(&b);
}

/* ---- the hand-off: a handshake and frames in one read ------------------------- */

static void test_handoff(void) {
    static const char req[] = GOOD_HEAD "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n";
    cz_http_parser_t hp;
    cz_ws_handshake_t hs;
    cz_ws_policy_t pol;
    bytes_t b = {0};
    size_t used = 0, used2 = 0;
    uint8_t d[16];
    size_t n = unhex("f248cdc9c90700", d);
    cz_ws_t ws;

    b_put(&b, req, sizeof(req) - 1);
    frame(&b, 1, 4, CZ_WS_OP_TEXT, d, n, 0);
    memset(&pol, 0, sizeof(pol));
    pol.deflate = 1;
    cz_http_parser_init(&hp, A, NULL);
    CHECK(cz_http_parser_feed(&hp, (char *)b.d, b.len, &used) == CZ_HTTP_REQUEST);
    CHECK(used == sizeof(req) - 1);
    CHECK(cz_http_parser_request(&hp)->upgrade);
    CHECK(cz_ws_handshake_check(cz_http_parser_request(&hp), &pol, &hs) == 101);
    cz_ws_init(&ws, A, NULL, &hs.deflate);
    CHECK(cz_ws_feed(&ws, (char *)b.d + used, b.len - used, &used2) == CZ_WS_TEXT);
    CHECK(cz_ws_payload(&ws).len == 5 && memcmp(cz_ws_payload(&ws).base, "Hello", 5) == 0);
    CHECK(used + used2 == b.len);
    CHECK(!cz_ws_in_message(&ws));
    cz_ws_destroy(&ws);
    cz_http_parser_destroy(&hp);
    b_free(&b);
}

int main(void) {
    A = cz_allocator_create(CZ_BACKEND_MALLOC, NULL, 0);
    if (!A) return 2;
    test_sha1();
    test_base64_accept();
    test_handshake();
    test_negotiation();
    test_rfc_examples();
    test_lengths();
    test_protocol_errors();
    test_fragments_and_control();
    test_close();
    test_utf8();
    test_limits();
    test_deflate();
    test_deflate_window();
    test_deflate_window8();
    test_alloc_failures();
    test_handoff();
    if (g_hp_live) cz_http_parser_destroy(&g_hp);
    CHECK(live_bytes() == 0);
    cz_allocator_destroy(A);
    return check_summary();
}
