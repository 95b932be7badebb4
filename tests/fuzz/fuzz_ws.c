/*
 * fuzz_ws — libFuzzer harness for csrc/ws: the opening handshake, the frame
 * parser fed reads split where the input says, permessage-deflate in both
 * directions, with allocation-failure injection.
 *
 * Input: a 5-byte header, then the bytes the client sends.
 *   byte 0  options:
 *           bit 0  permessage-deflate negotiated (bit 5 clear)
 *           bit 1  the client promised no context takeover (our inflater is
 *                  freed after each message)
 *           bit 2  we take no context over (our deflater is freed after each)
 *           bit 3  small limits: max_frame 300, max_message 700
 *           bit 4  echo messages compressed (with deflate on)
 *           bit 5  the bytes start with an HTTP request: its handshake is
 *                  judged (policy: deflate on, subprotocols "chat" and
 *                  "superchat") and the frames after it are read with what
 *                  was negotiated
 *           bit 6  the server closes first (cz_ws_close before any read)
 *           bit 7  client_max_window_bits=9 negotiated (rx_window_bits 9;
 *                  the inflater keeps 32 KiB whatever the peer was told)
 *   byte 1  >= 0x80: the (byte - 0x7f)-th allocation through cz_memory fails
 *   bytes 2-4  read sizes, used in turn: (b & 0x3f) * (b & 0x80 ? 37 : 1),
 *           0 meaning all that is left
 *
 * Checked on every input:
 *   - the feed contract: consumed <= len; NEED_MORE consumes everything;
 *     CLOSE and ERROR are final (sticky, nothing consumed); payload views
 *     are never NULL; every read lives in its own heap block, freed right
 *     after its event is handled (a view kept too long is a use-after-free);
 *   - events: TEXT is valid UTF-8 (by a decoder written here), messages are
 *     within max_message, control payloads within 125, CLOSE codes valid or
 *     1005 with a UTF-8 reason, ERROR codes 1002/1007/1009, 1011 only with
 *     an injected failure; the assembly buffer never exceeds max_message;
 *   - the control frames written back parse: unmasked, FIN, PONG or CLOSE,
 *     <= 125 bytes, one close at most and nothing after it; a pong only
 *     for a ping, and none after our close;
 *   - echo: every message is written back with cz_ws_write (compressed
 *     with option bit 4), the output re-masked and read by a second
 *     connection whose inflater matches our deflater: it reads back the
 *     same messages, in order;
 *   - split invariance: without injected failures, the same bytes in one
 *     read give the same events (kind, code, payload digest);
 *   - without an extension, a reference model of RFC 6455 5.2-5.5 and 7.4
 *     written here (frame by frame over the whole input, no state machine)
 *     predicts the same events, the same error and code;
 *   - the UTF-8 validator against the reference decoder on the raw input,
 *     whole and byte by byte (verdict and first bad offset);
 *   - handshake: the status is 101, 400 or 426; on 101 the accept value is
 *     that of the request's key, the negotiated window bits are in range,
 *     and cz_ws_handshake_write succeeds;
 *   - no leak: the allocator is back where it started after each input.
 */
#define ZLIB_CONST
#include "fuzz_common.h"

#include "cz_http.h"
#include "cz_memory.h"
#include "cz_ws.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HDR_LEN    5
#define MAX_EVENTS 256

enum {
    OPT_DEFLATE = 1,
    OPT_RX_NCT = 2,
    OPT_TX_NCT = 4,
    OPT_SMALL = 8,
    OPT_ECHO_Z = 16,
    OPT_HANDSHAKE = 32,
    OPT_CLOSE_FIRST = 64,
    OPT_RX_BITS9 = 128
};

static cz_allocator_t *g_alloc;
static int g_verbose;

/* ---- reference UTF-8 decoder (code points, then the rules) ------------------- */

/* Offset of the first byte that makes s invalid, n when valid and complete,
 * n + 1 when valid but cut inside a character. A prefix is invalid as soon
 * as no continuation can make it a scalar value in its shortest form: the
 * lead byte for C0, C1, F5-F7 and F8-FF, the second byte for overlong
 * 3- and 4-byte forms, surrogates and values above U+10FFFF. */
static size_t ref_utf8(const uint8_t *s, size_t n) {
    size_t i = 0;

    while (i < n) {
        uint8_t c = s[i];
        size_t len, k;
        uint32_t cp;

        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xE0) == 0xC0) len = 2, cp = c & 0x1F;
        else if ((c & 0xF0) == 0xE0) len = 3, cp = c & 0x0F;
        else if ((c & 0xF8) == 0xF0) len = 4, cp = c & 0x07;
        else return i;
        if ((len == 2 && cp < 2) || (len == 4 && cp > 4)) return i;
        for (k = 1; k < len; k++) {
            if (i + k >= n) return n + 1;
            if ((s[i + k] & 0xC0) != 0x80) return i + k;
            cp = cp << 6 | (s[i + k] & 0x3F);
            if (k == 1 && len >= 3) {
                unsigned r = 6u * (unsigned)(len - 2);
                uint32_t lo = len == 3 ? 0x800 : 0x10000;
                uint32_t min = cp << r, max = min | ((1u << r) - 1);
                if (max < lo || min > 0x10FFFF || (min >= 0xD800 && max <= 0xDFFF)) return i + 1;
            }
        }
        i += len;
    }
    return n;
}

/* The same verdict from cz_ws_utf8: n valid, n + 1 cut, else first bad. */
static size_t cz_utf8(const uint8_t *s, size_t n, int bytewise) {
    cz_ws_utf8_t u;
    size_t bad = 0, i;

    cz_ws_utf8_init(&u);
    if (!bytewise) {
        if (cz_ws_utf8_feed(&u, s, n, &bad) != 0) return bad;
    } else {
        for (i = 0; i < n; i++)
            if (cz_ws_utf8_feed(&u, s + i, 1, &bad) != 0) return i;
    }
    return cz_ws_utf8_complete(&u) ? n : n + 1;
}

/* ---- the echo peer ----------------------------------------------------------- */

typedef struct {
    cz_ws_t sender; /* our side writing the echo */
    cz_ws_t reader; /* a peer reading it (frames re-masked) */
    cz_http_buf_t out;
    int compress;
    int disabled; /* a write failed (injected): stop echoing */
} echo_t;

static const uint8_t KEY[4] = {0xa1, 0x02, 0xf3, 0x7c};

/* Our unmasked frame(s) in out[0..len) as a client's masked ones. */
static uint8_t *remask(const uint8_t *s, size_t n, size_t *outlen) {
    uint8_t *d = xmalloc(n + n / 2 + 64);
    size_t pos = 0, o = 0;

    while (pos < n) {
        uint8_t len7;
        size_t h, plen = 0, i;
        FUZZ_CHECK(n - pos >= 2);
        FUZZ_CHECK((s[pos + 1] & 0x80) == 0); /* server frames are never masked */
        len7 = s[pos + 1] & 0x7F;
        h = len7 == 126 ? 4 : len7 == 127 ? 10 : 2;
        FUZZ_CHECK(n - pos >= h);
        if (len7 == 126) plen = (size_t)s[pos + 2] << 8 | s[pos + 3];
        else if (len7 == 127)
            for (i = 0; i < 8; i++) plen = plen << 8 | s[pos + 2 + i];
        else plen = len7;
        /* minimal length encoding */
        FUZZ_CHECK(h == (plen < 126 ? 2u : plen <= 0xFFFF ? 4u : 10u));
        FUZZ_CHECK(n - pos - h >= plen);
        memcpy(d + o, s + pos, h);
        d[o + 1] |= 0x80;
        memcpy(d + o + h, KEY, 4);
        memcpy(d + o + h + 4, s + pos + h, plen);
        cz_ws_mask(d + o + h + 4, plen, KEY, 0);
        o += h + 4 + plen;
        pos += h + plen;
    }
    *outlen = o;
    return d;
}

static void echo(echo_t *e, cz_ws_event_t ev, cz_http_str_t msg) {
    unsigned op = ev == CZ_WS_TEXT ? CZ_WS_OP_TEXT : CZ_WS_OP_BINARY;
    size_t before = e->out.len, n, used = 0;
    uint8_t *c;
    long faults = g_faults;
    int rc;
    cz_ws_event_t got;

    if (e->disabled) return;
    rc = cz_ws_write(&e->sender, &e->out, op, msg.base, msg.len, e->compress);
    if (rc != CZ_WS_OK) {
        FUZZ_CHECK(rc == CZ_WS_ENOMEM && g_faults > faults);
        FUZZ_CHECK(e->out.len == before);
        e->disabled = 1; /* the peer would now be one message behind */
        return;
    }
    c = remask((const uint8_t *)e->out.data + before, e->out.len - before, &n);
    cz_http_buf_reset(&e->out, 4096);
    got = cz_ws_feed(&e->reader, (char *)c, n, &used);
    if (got == CZ_WS_ERROR) {
        /* only memory may stop the peer: its limits let the message in */
        FUZZ_CHECK(cz_ws_close_code(&e->reader) == 1011 && g_faults > 0);
        e->disabled = 1;
        free(c);
        return;
    }
    FUZZ_CHECK(got == ev);
    FUZZ_CHECK(used == n);
    {
        cz_http_str_t back = cz_ws_payload(&e->reader);
        FUZZ_CHECK(back.len == msg.len && (msg.len == 0 || memcmp(back.base, msg.base, msg.len) == 0));
    }
    free(c);
}

/* ---- one connection ------------------------------------------------------------ */

typedef struct {
    int n;
    uint64_t digest[MAX_EVENTS];
    int end; /* last event: CLOSE, ERROR or NEED_MORE */
    unsigned code;
} record_t;

static void record(record_t *r, cz_ws_event_t ev, unsigned code, cz_http_str_t p) {
    if (r->n < MAX_EVENTS) {
        uint64_t h = fnv_u64(FNV_INIT, (uint64_t)ev);
        h = fnv_u64(h, code);
        h = fnv(h, p.base, p.len);
        r->digest[r->n] = h;
    }
    r->n++;
}

/* The control frames we wrote: PONG or CLOSE, unmasked, FIN, <= 125; one
 * close at most, last. Returns the number of pongs. */
static int check_control(const uint8_t *s, size_t n, int *closes) {
    size_t pos = 0;
    int pongs = 0;

    while (pos < n) {
        size_t plen;
        FUZZ_CHECK(n - pos >= 2);
        FUZZ_CHECK(*closes == 0); /* nothing after a close */
        FUZZ_CHECK(s[pos] == (0x80 | CZ_WS_OP_PONG) || s[pos] == (0x80 | CZ_WS_OP_CLOSE));
        plen = s[pos + 1];
        FUZZ_CHECK(plen <= 125);
        FUZZ_CHECK(n - pos - 2 >= plen);
        if (s[pos] == (0x80 | CZ_WS_OP_CLOSE)) {
            (*closes)++;
            FUZZ_CHECK(plen != 1);
            if (plen >= 2) {
                unsigned code = (unsigned)s[pos + 2] << 8 | s[pos + 3];
                FUZZ_CHECK(cz_ws_close_code_valid(code));
                FUZZ_CHECK(ref_utf8(s + pos + 4, plen - 2) == plen - 2);
            }
        } else {
            pongs++;
        }
        pos += 2 + plen;
    }
    return pongs;
}

typedef struct {
    cz_ws_limits_t lim;
    cz_ws_deflate_t pmd;
    size_t split[3];
    int opts;
} conf_t;

/* Feed in[0..len) to a fresh connection in the configured reads. */
static void run(const conf_t *cf, const uint8_t *in, size_t len, int whole, int do_echo, record_t *rec) {
    cz_ws_t ws;
    echo_t e;
    cz_http_buf_t out;
    char *pending = NULL;
    size_t plen = 0, pos = 0, turn = 0;
    int closes = 0, pings = 0, pongs = 0, close_first = (cf->opts & OPT_CLOSE_FIRST) != 0;
    long faults_at_start = g_faults;

    memset(rec, 0, sizeof(*rec));
    cz_ws_init(&ws, g_alloc, &cf->lim, &cf->pmd);
    cz_http_buf_init(&out, g_alloc, 0);
    if (do_echo) {
        cz_ws_deflate_t peer = cf->pmd;
        cz_ws_limits_t plim = ws.limits;
        /* one frame per message, and compressed it may outgrow the message */
        plim.max_frame = plim.max_message + plim.max_message / 8 + 1024;
        /* the peer inflates what we deflate */
        peer.rx_no_context_takeover = cf->pmd.tx_no_context_takeover;
        peer.rx_window_bits = cf->pmd.tx_window_bits;
        memset(&e, 0, sizeof(e));
        cz_ws_init(&e.sender, g_alloc, &cf->lim, &cf->pmd);
        cz_ws_init(&e.reader, g_alloc, &plim, &peer);
        cz_http_buf_init(&e.out, g_alloc, 0);
        e.compress = (cf->opts & OPT_ECHO_Z) != 0;
    }
    if (close_first) {
        FUZZ_CHECK(cz_ws_close(&ws, 1001, "bye", 3) == CZ_WS_OK);
        FUZZ_CHECK(cz_ws_close(&ws, 1000, NULL, 0) == CZ_WS_EINVAL);
        if (cz_ws_flush_control(&ws, &out) == CZ_WS_OK) check_control((const uint8_t *)out.data, out.len, &closes);
        FUZZ_CHECK(cz_ws_write(&ws, &out, CZ_WS_OP_TEXT, "x", 1, 0) == CZ_WS_EINVAL);
    }

    for (;;) {
        size_t n = whole ? len - pos : cf->split[turn++ % 3], used = 0, again = 1;
        char *buf;
        cz_ws_event_t ev;
        cz_http_str_t p;
        size_t before_out = out.len;

        if (n == 0 || n > len - pos) n = len - pos;
        if (n == 0 && plen == 0) break;
        buf = xmalloc(plen + n);
        if (plen) memcpy(buf, pending, plen);
        memcpy(buf + plen, in + pos, n);
        pos += n;
        free(pending);
        pending = NULL;
        ev = cz_ws_feed(&ws, buf, plen + n, &used);
        FUZZ_CHECK(used <= plen + n);
        FUZZ_CHECK(ws.msg_cap <= ws.limits.max_message);
        p = cz_ws_payload(&ws);
        FUZZ_CHECK(p.base != NULL);
        switch (ev) {
        case CZ_WS_NEED_MORE:
            FUZZ_CHECK(used == plen + n);
            FUZZ_CHECK(p.len == 0);
            break;
        case CZ_WS_TEXT:
            FUZZ_CHECK(ref_utf8((const uint8_t *)p.base, p.len) == p.len);
            /* fall through */
        case CZ_WS_BINARY:
            FUZZ_CHECK(p.len <= ws.limits.max_message);
            FUZZ_CHECK(!cz_ws_in_message(&ws));
            if (do_echo) echo(&e, ev, p);
            break;
        case CZ_WS_PING:
            pings++;
            FUZZ_CHECK(p.len <= 125);
            /* a pong is owed, unless we closed first */
            FUZZ_CHECK(close_first ? ws.pong_len == 0 : cz_ws_control_pending(&ws));
            break;
        case CZ_WS_PONG: FUZZ_CHECK(p.len <= 125); break;
        case CZ_WS_CLOSE: {
            unsigned code = cz_ws_close_code(&ws);
            FUZZ_CHECK(code == 1005 || cz_ws_close_code_valid(code));
            FUZZ_CHECK(code != 1005 || p.len == 0);
            FUZZ_CHECK(ref_utf8((const uint8_t *)p.base, p.len) == p.len);
            if (!close_first) FUZZ_CHECK(cz_ws_control_pending(&ws)); /* the echo */
            break;
        }
        case CZ_WS_ERROR: {
            unsigned code = cz_ws_close_code(&ws);
            FUZZ_CHECK(code == 1002 || code == 1007 || code == 1009 || code == 1011);
            FUZZ_CHECK(code != 1011 || g_faults > faults_at_start);
            break;
        }
        default: FUZZ_CHECK(0);
        }
        if (ev != CZ_WS_NEED_MORE) record(rec, ev, cz_ws_close_code(&ws), p);
        if (ev == CZ_WS_CLOSE || ev == CZ_WS_ERROR) {
            rec->code = cz_ws_close_code(&ws);
            FUZZ_CHECK(cz_ws_feed(&ws, buf, plen + n, &again) == ev && again == 0);
        }
        if (cz_ws_flush_control(&ws, &out) == CZ_WS_OK) {
            if (out.len > before_out)
                pongs += check_control((const uint8_t *)out.data + before_out, out.len - before_out, &closes);
            cz_http_buf_reset(&out, 4096);
        } else {
            FUZZ_CHECK(g_faults > 0);
        }
        plen = plen + n - used;
        if (plen) {
            pending = xmalloc(plen);
            memcpy(pending, buf + used, plen);
        }
        free(buf);
        rec->end = ev;
        if (ev == CZ_WS_CLOSE || ev == CZ_WS_ERROR) break;
        if (ev == CZ_WS_NEED_MORE && pos == len) break;
    }
    if (rec->end != CZ_WS_CLOSE && rec->end != CZ_WS_ERROR) rec->end = CZ_WS_NEED_MORE; /* the input ran out */
    FUZZ_CHECK(pongs <= pings);
    if (close_first) FUZZ_CHECK(pongs == 0);
    free(pending);
    if (do_echo) {
        cz_ws_destroy(&e.sender);
        cz_ws_destroy(&e.reader);
        cz_http_buf_free(&e.out);
    }
    cz_http_buf_free(&out);
    cz_ws_destroy(&ws);
}

/* ---- a reference model of the framing (no extension) ------------------------------
 *
 * Written from RFC 6455 5.2-5.5 and 7.4, frame by frame over the whole
 * input, without the parser's state machine: what the connection must
 * report when the same bytes are read. */

static void model(const uint8_t *in, size_t len, const cz_ws_limits_t *lim, record_t *rec) {
    uint8_t *msg = NULL;
    size_t msg_len = 0, pos = 0;
    int msg_op = 0;
    cz_http_str_t none = {"", 0};

    memset(rec, 0, sizeof(*rec));
#define M_END(E, C)                                                                                                    \
    do {                                                                                                               \
        record(rec, (E), (C), none);                                                                                   \
        rec->end = (E);                                                                                                \
        rec->code = (C);                                                                                               \
        goto done;                                                                                                     \
    } while (0)
    for (;;) {
        uint8_t b0, b1, *p;
        unsigned op, l7, rsv;
        int fin, control;
        size_t need, avail, i;
        uint64_t plen;

        rec->end = CZ_WS_NEED_MORE;
        if (len - pos < 2) goto done;
        b0 = in[pos];
        b1 = in[pos + 1];
        fin = b0 >> 7;
        rsv = (b0 >> 4) & 7;
        op = b0 & 15;
        l7 = b1 & 0x7F;
        control = op >= 8;
        /* everything the first two bytes decide is a protocol error */
        if (rsv || (op >= 3 && op <= 7) || op >= 11 || (control && (!fin || l7 > 125)) || (op == 0 && !msg_op) ||
            ((op == 1 || op == 2) && msg_op) || !(b1 & 0x80))
            M_END(CZ_WS_ERROR, 1002);
        need = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + 4;
        if (len - pos < need) goto done;
        plen = l7;
        if (l7 == 126) {
            plen = (uint64_t)in[pos + 2] << 8 | in[pos + 3];
            if (plen < 126) M_END(CZ_WS_ERROR, 1002);
        } else if (l7 == 127) {
            plen = 0;
            for (i = 0; i < 8; i++) plen = plen << 8 | in[pos + 2 + i];
            if ((plen >> 63) || plen <= 0xFFFF) M_END(CZ_WS_ERROR, 1002);
        }
        if (!control && (plen > lim->max_frame || plen > lim->max_message - msg_len)) M_END(CZ_WS_ERROR, 1009);
        avail = len - pos - need < plen ? len - pos - need : (size_t)plen;
        p = xmalloc(avail);
        for (i = 0; i < avail; i++) p[i] = in[pos + need + i] ^ in[pos + need - 4 + (i & 3)];
        if (control) {
            cz_http_str_t v = {(const char *)p, avail};
            if (avail < plen) {
                free(p);
                goto done;
            }
            if (op == CZ_WS_OP_PING || op == CZ_WS_OP_PONG) {
                record(rec, op == CZ_WS_OP_PING ? CZ_WS_PING : CZ_WS_PONG, 0, v);
            } else if (avail == 1) {
                free(p);
                M_END(CZ_WS_ERROR, 1002);
            } else if (avail == 0) {
                record(rec, CZ_WS_CLOSE, 1005, v);
                rec->end = CZ_WS_CLOSE;
                rec->code = 1005;
                free(p);
                goto done;
            } else {
                unsigned code = (unsigned)p[0] << 8 | p[1];
                int valid =
                    (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
                if (!valid) {
                    free(p);
                    M_END(CZ_WS_ERROR, 1002);
                }
                if (ref_utf8(p + 2, avail - 2) != avail - 2) {
                    free(p);
                    M_END(CZ_WS_ERROR, 1007);
                }
                v.base += 2;
                v.len -= 2;
                record(rec, CZ_WS_CLOSE, code, v);
                rec->end = CZ_WS_CLOSE;
                rec->code = code;
                free(p);
                goto done;
            }
            free(p);
            pos += need + avail;
            continue;
        }
        if (op != 0) msg_op = (int)op;
        msg = realloc(msg, msg_len + avail + 1);
        FUZZ_CHECK(msg != NULL);
        memcpy(msg + msg_len, p, avail);
        msg_len += avail;
        free(p);
        /* text fails at the first bad byte that has arrived */
        if (msg_op == 1 && ref_utf8(msg, msg_len) < msg_len) M_END(CZ_WS_ERROR, 1007);
        if (avail < plen) goto done;
        pos += need + avail;
        if (fin) {
            cz_http_str_t v = {(const char *)msg, msg_len};
            if (msg_op == 1 && ref_utf8(msg, msg_len) != msg_len) M_END(CZ_WS_ERROR, 1007);
            record(rec, msg_op == 1 ? CZ_WS_TEXT : CZ_WS_BINARY, 0, v);
            msg_op = 0;
            msg_len = 0;
        }
    }
done:
    free(msg);
#undef M_END
}

/* ---- the handshake --------------------------------------------------------------- */

/* Judge the request at the start of in[0..len); fills cf->pmd from it.
 * Returns the bytes the request took, or 0 when there are no frames to read. */
static size_t handshake(const uint8_t *in, size_t len, conf_t *cf) {
    static const cz_http_str_t sp[] = {{"chat", 4}, {"superchat", 9}};
    cz_http_parser_t hp;
    cz_ws_handshake_t hs;
    cz_ws_policy_t pol;
    size_t used = 0, pos = 0;
    cz_http_event_t ev;
    char *copy = xmemdup(in, len);
    int st;

    memset(&pol, 0, sizeof(pol));
    pol.subprotocols = sp;
    pol.num_subprotocols = 2;
    pol.deflate = 1;
    pol.server_no_context_takeover = (cf->opts & OPT_TX_NCT) != 0;
    pol.client_no_context_takeover = (cf->opts & OPT_RX_NCT) != 0;
    pol.client_max_window_bits = (cf->opts & OPT_RX_BITS9) ? 9 : 0;
    cz_http_parser_init(&hp, g_alloc, NULL);
    do {
        ev = cz_http_parser_feed(&hp, copy + pos, len - pos, &used);
        pos += used;
    } while (ev == CZ_HTTP_HEADERS);
    if (ev != CZ_HTTP_REQUEST) {
        cz_http_parser_destroy(&hp);
        free(copy);
        return 0;
    }
    st = cz_ws_handshake_check(cz_http_parser_request(&hp), &pol, &hs);
    FUZZ_CHECK(st == 101 || st == 400 || st == 426);
    FUZZ_CHECK(hs.status == st && hs.reason != NULL);
    if (st == 101) {
        const cz_http_str_t *key = cz_http_request_header(cz_http_parser_request(&hp), "sec-websocket-key", 17);
        char acc[29];
        cz_http_buf_t out;
        int rc;

        FUZZ_CHECK(key != NULL && key->len == 24);
        cz_ws_accept_key(key->base, key->len, acc);
        FUZZ_CHECK(strcmp(acc, hs.accept) == 0);
        FUZZ_CHECK(hs.subprotocol.len == 0 || hs.subprotocol.len == 4 || hs.subprotocol.len == 9);
        if (hs.deflate.enabled) {
            FUZZ_CHECK(hs.deflate.rx_window_bits >= 8 && hs.deflate.rx_window_bits <= 15);
            FUZZ_CHECK(hs.deflate.tx_window_bits >= 8 && hs.deflate.tx_window_bits <= 15);
            FUZZ_CHECK(strncmp(hs.extension, "permessage-deflate", 18) == 0);
        } else {
            FUZZ_CHECK(hs.extension[0] == '\0');
        }
        cz_http_buf_init(&out, g_alloc, 0);
        rc = cz_ws_handshake_write(&out, &hs, NULL, 0);
        FUZZ_CHECK(rc == CZ_HTTP_OK || (rc == CZ_HTTP_ENOMEM && g_faults > 0));
        if (rc == CZ_HTTP_OK) FUZZ_CHECK(out.len > 40 && memcmp(out.data, "HTTP/1.1 101 ", 13) == 0);
        cz_http_buf_free(&out);
        cf->pmd = hs.deflate;
    } else {
        cz_http_buf_t out;
        int rc;
        cz_http_buf_init(&out, g_alloc, 0);
        rc = cz_ws_handshake_write_refusal(&out, NULL, &hs);
        FUZZ_CHECK(rc == CZ_HTTP_OK || (rc == CZ_HTTP_ENOMEM && g_faults > 0));
        cz_http_buf_free(&out);
    }
    cz_http_parser_destroy(&hp);
    free(copy);
    return st == 101 ? pos : 0;
}

/* ---- libFuzzer entry points ---------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    g_verbose = getenv("FUZZ_VERBOSE") != NULL;
    g_alloc = cz_allocator_create(CZ_BACKEND_MALLOC, NULL, 0);
    if (!g_alloc) abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *in = data + HDR_LEN;
    size_t len, i, skip = 0;
    mem_mark_t start;
    conf_t cf;
    record_t split, whole;
    long faults;

    if (size < HDR_LEN) return 0;
    len = size - HDR_LEN;
    memset(&cf, 0, sizeof(cf));
    cf.opts = data[0];
    for (i = 0; i < 3; i++) cf.split[i] = (size_t)(data[2 + i] & 0x3f) * ((data[2 + i] & 0x80) ? 37 : 1);
    if (cf.opts & OPT_SMALL) {
        cf.lim.max_frame = 300;
        cf.lim.max_message = 700;
        cf.lim.retain = 256;
    }
    if (cf.opts & OPT_DEFLATE) {
        cf.pmd.enabled = 1;
        cf.pmd.rx_no_context_takeover = (cf.opts & OPT_RX_NCT) != 0;
        cf.pmd.tx_no_context_takeover = (cf.opts & OPT_TX_NCT) != 0;
        cf.pmd.rx_window_bits = (cf.opts & OPT_RX_BITS9) ? 9 : 15;
        cf.pmd.tx_window_bits = 15;
        cf.pmd.level = -1;
    }

    /* the UTF-8 validator against the reference, on the raw bytes */
    {
        size_t r = ref_utf8(in, len);
        FUZZ_CHECK(cz_utf8(in, len, 0) == r);
        FUZZ_CHECK(cz_utf8(in, len, 1) == r);
    }

    start = mem_mark(g_alloc);
    fault_arm(data[1] >= 0x80 ? data[1] - 0x7f : 0);
    if (cf.opts & OPT_HANDSHAKE) {
        memset(&cf.pmd, 0, sizeof(cf.pmd));
        skip = handshake(in, len, &cf);
        if (skip == 0) {
            fault_arm(0);
            mem_expect(g_alloc, start, "handshake");
            return 0;
        }
    }
    run(&cf, in + skip, len - skip, 0, 1, &split);
    faults = g_faults;
    fault_arm(0);
    mem_expect(g_alloc, start, "ws split run");

    if (faults == 0) {
        int k, n;
        run(&cf, in + skip, len - skip, 1, 0, &whole);
        mem_expect(g_alloc, start, "ws whole run");
        if (split.n != whole.n || split.end != whole.end || split.code != whole.code) {
            fprintf(stderr,
                    "split changed the outcome: %d events end %d code %u; whole: %d "
                    "events end %d code %u\n",
                    split.n, split.end, split.code, whole.n, whole.end, whole.code);
            FUZZ_CHECK(0);
        }
        n = split.n < MAX_EVENTS ? split.n : MAX_EVENTS;
        for (k = 0; k < n; k++) FUZZ_CHECK(split.digest[k] == whole.digest[k]);
        /* without an extension: what the model says */
        if (!cf.pmd.enabled) {
            record_t m;
            cz_ws_limits_t lim;
            cz_ws_limits_default(&lim);
            if (cf.lim.max_frame) lim = cf.lim;
            model(in + skip, len - skip, &lim, &m);
            if (m.n != whole.n || m.end != whole.end || m.code != whole.code) {
                fprintf(stderr,
                        "model: %d events end %d code %u; parser: %d events end %d "
                        "code %u\n",
                        m.n, m.end, m.code, whole.n, whole.end, whole.code);
                FUZZ_CHECK(0);
            }
            n = m.n < MAX_EVENTS ? m.n : MAX_EVENTS;
            for (k = 0; k < n; k++) FUZZ_CHECK(m.digest[k] == whole.digest[k]);
        }
    }
    if (g_verbose)
        fprintf(stderr,
                "fuzz_ws: opts 0x%02x, %d events, end %d, code %u, faults %ld, "
                "handshake %zu bytes\n",
                cf.opts, split.n, split.end, split.code, faults, skip);
    return 0;
}
