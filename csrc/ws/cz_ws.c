/*
 * cz_ws — WebSocket framing (RFC 6455 5): the receive state machine, owed
 * control frames, close codes, UTF-8 validation and frame serialization.
 * The zlib half is in cz_ws_deflate.c, the handshake in cz_ws_handshake.c.
 */
#include "cz_ws.h"
#include "cz_ws_internal.h"

#include <string.h>

enum { ST_HEADER = 0, ST_PAYLOAD, ST_DONE };

/* ===== close codes and UTF-8 ============================================= */

int cz_ws_close_code_valid(unsigned code) {
    if (code >= 3000 && code <= 4999) return 1;
    if (code < 1000 || code > 1014) return 0;
    return code != 1004 && code != 1005 && code != 1006;
}

int cz_ws_utf8_feed(cz_ws_utf8_t *u, const void *s, size_t n, size_t *bad) {
    const uint8_t *p = s;
    uint8_t need = u->need, lo = u->lo, hi = u->hi;
    size_t i = 0;

    while (i < n) {
        uint8_t c = p[i];

        if (need) {
            if (c < lo || c > hi) goto fail;
            need--;
            lo = 0x80;
            hi = 0xBF;
            i++;
            continue;
        }
        if (c < 0x80) {
            /* ASCII runs, 8 bytes at a time */
            while (i + 8 <= n) {
                uint64_t w;
                memcpy(&w, p + i, 8);
                if (w & UINT64_C(0x8080808080808080)) break;
                i += 8;
            }
            while (i < n && p[i] < 0x80) i++;
            continue;
        }
        /* the ranges of RFC 3629 4: they exclude overlongs (C0, C1, E0 80-9F,
         * F0 80-8F), surrogates (ED A0-BF) and > U+10FFFF (F4 90+, F5-FF) */
        if (c >= 0xC2 && c <= 0xDF) need = 1;
        else if (c == 0xE0) need = 2, lo = 0xA0;
        else if (c == 0xED) need = 2, hi = 0x9F;
        else if (c >= 0xE1 && c <= 0xEF) need = 2;
        else if (c == 0xF0) need = 3, lo = 0x90;
        else if (c >= 0xF1 && c <= 0xF3) need = 3;
        else if (c == 0xF4) need = 3, hi = 0x8F;
        else goto fail;
        i++;
    }
    u->need = need;
    u->lo = lo;
    u->hi = hi;
    return 0;
fail:
    if (bad) *bad = i;
    return -1;
}

/* ===== frames ============================================================== */

size_t cz_ws_frame_header(uint8_t *hdr, int fin, int rsv1, unsigned opcode, uint64_t len, const uint8_t mask[4]) {
    size_t n;
    int i;

    hdr[0] = (uint8_t)((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | (opcode & 0x0F));
    if (len < 126) {
        hdr[1] = (uint8_t)len;
        n = 2;
    } else if (len <= 0xFFFF) {
        hdr[1] = 126;
        hdr[2] = (uint8_t)(len >> 8);
        hdr[3] = (uint8_t)len;
        n = 4;
    } else {
        hdr[1] = 127;
        for (i = 0; i < 8; i++) hdr[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        n = 10;
    }
    if (mask) {
        hdr[1] |= 0x80;
        memcpy(hdr + n, mask, 4);
        n += 4;
    }
    return n;
}

void cz_ws_mask(uint8_t *data, size_t len, const uint8_t key[4], uint64_t pos) {
    uint8_t k[8];
    size_t i = 0;
    int j;

    /* the key rotated to this payload position, twice, for 8-byte steps */
    for (j = 0; j < 8; j++) k[j] = key[(pos + (unsigned)j) & 3];
    if (len >= 8) {
        uint64_t kw;
        memcpy(&kw, k, 8);
        for (; i + 8 <= len; i += 8) {
            uint64_t w;
            memcpy(&w, data + i, 8);
            w ^= kw;
            memcpy(data + i, &w, 8);
        }
    }
    for (; i < len; i++) data[i] ^= k[i & 7];
}

/* ===== one connection ======================================================= */

void cz_ws_limits_default(cz_ws_limits_t *l) {
    l->max_frame = CZ_WS_DEFAULT_MAX_FRAME;
    l->max_message = CZ_WS_DEFAULT_MAX_MESSAGE;
    l->retain = CZ_WS_DEFAULT_RETAIN;
}

void cz_ws_init(cz_ws_t *ws, cz_allocator_t *a, const cz_ws_limits_t *limits, const cz_ws_deflate_t *pmd) {
    memset(ws, 0, sizeof(*ws));
    ws->alloc = a;
    cz_ws_limits_default(&ws->limits);
    if (limits) {
        if (limits->max_frame) ws->limits.max_frame = limits->max_frame;
        if (limits->max_message) ws->limits.max_message = limits->max_message;
        if (limits->retain) ws->limits.retain = limits->retain;
    }
    /* the assembly buffer's size is a size_t */
    if (ws->limits.max_message > SIZE_MAX / 2) ws->limits.max_message = SIZE_MAX / 2;
    if (pmd && pmd->enabled) {
        ws->pmd = *pmd;
        if (ws->pmd.rx_window_bits < 8 || ws->pmd.rx_window_bits > 15) ws->pmd.rx_window_bits = 15;
        if (ws->pmd.tx_window_bits < 8 || ws->pmd.tx_window_bits > 15) ws->pmd.tx_window_bits = 15;
        if (ws->pmd.mem_level < 1 || ws->pmd.mem_level > 9) ws->pmd.mem_level = 8;
        if (ws->pmd.level < -1 || ws->pmd.level > 9) ws->pmd.level = -1;
    }
    ws->hdr_need = 2;
    ws->payload.base = "";
    cz_ws_utf8_init(&ws->utf8);
}

static void msg_free(cz_ws_t *ws) {
    if (ws->msg) cz_free(ws->alloc, CZ_MEM_REQUEST, ws->msg);
    ws->msg = NULL;
    ws->msg_len = ws->msg_cap = 0;
}

void cz_ws_destroy(cz_ws_t *ws) {
    msg_free(ws);
    cz_ws__z_destroy(ws);
    ws->state = ST_DONE;
}

int cz_ws__msg_reserve(cz_ws_t *ws, size_t extra) {
    size_t want, cap;
    char *p;

    if (extra <= ws->msg_cap - ws->msg_len) return 0;
    if (extra > ws->limits.max_message - ws->msg_len) return -1;
    want = ws->msg_len + extra;
    /* grow as bytes arrive, not by the declared length: a frame header alone
     * must not make us allocate max_frame */
    cap = ws->msg_cap < 1024 ? 1024 : ws->msg_cap;
    while (cap < want) cap = cap > SIZE_MAX / 4 ? want : cap * 2;
    if (cap > ws->limits.max_message) cap = (size_t)ws->limits.max_message;
    p = cz_realloc(ws->alloc, CZ_MEM_REQUEST, ws->msg, cap);
    if (!p) return -1;
    ws->msg = p;
    ws->msg_cap = cap;
    return 0;
}

static void queue_close(cz_ws_t *ws, unsigned code, const char *reason, size_t len) {
    uint8_t *c = ws->close_out;

    c[0] = 0x80 | CZ_WS_OP_CLOSE;
    if (code == 0) {
        c[1] = 0;
        ws->close_out_len = 2;
    } else {
        c[1] = (uint8_t)(2 + len);
        c[2] = (uint8_t)(code >> 8);
        c[3] = (uint8_t)code;
        if (len) memcpy(c + 4, reason, len);
        ws->close_out_len = (uint8_t)(4 + len);
    }
    ws->close_sent = 1;
}

static cz_ws_event_t fail(cz_ws_t *ws, unsigned code, const char *why) {
    ws->close_code = (uint16_t)code;
    if (!ws->close_sent) queue_close(ws, code, why, strlen(why));
    ws->state = ST_DONE;
    ws->event = CZ_WS_ERROR;
    ws->payload.base = "";
    ws->payload.len = 0;
    return CZ_WS_ERROR;
}

static const char *fail_reason(unsigned code) {
    switch (code) {
    case CZ_WS_CLOSE_INVALID_DATA: return "invalid UTF-8";
    case CZ_WS_CLOSE_TOO_BIG: return "message too big";
    case CZ_WS_CLOSE_INTERNAL: return "out of memory";
    default: return "protocol error";
    }
}

/* The first two header bytes are in: everything they alone decide. */
static const char *check_first(cz_ws_t *ws, unsigned *need) {
    uint8_t b0 = ws->hdr[0], b1 = ws->hdr[1];
    unsigned op = b0 & 0x0F, len7 = b1 & 0x7F;
    int control = op >= 0x8;

    if (b0 & 0x30) return "reserved bit set";
    if (op > CZ_WS_OP_BINARY && op < CZ_WS_OP_CLOSE) return "reserved opcode";
    if (op > CZ_WS_OP_PONG) return "reserved opcode";
    if (b0 & 0x40) {
        /* RSV1 is permessage-deflate's, on a message's first frame only */
        if (!ws->pmd.enabled || control || op == CZ_WS_OP_CONT) return "reserved bit set";
    }
    if (control) {
        if (!(b0 & 0x80)) return "fragmented control frame";
        if (len7 > CZ_WS_MAX_CONTROL) return "control frame too long";
    } else if (op == CZ_WS_OP_CONT) {
        if (!ws->msg_op) return "continuation without a message";
    } else if (ws->msg_op) {
        return "new message inside a fragmented one";
    }
    if (!(b1 & 0x80)) return "unmasked client frame";
    *need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + 4;
    return NULL;
}

static cz_ws_event_t control_end(cz_ws_t *ws) {
    const uint8_t *c = ws->ctrl;
    size_t n = ws->ctrl_len;

    ws->payload.base = (const char *)ws->ctrl;
    ws->payload.len = n;
    switch (ws->opcode) {
    case CZ_WS_OP_PING:
        /* the latest ping wins (RFC 6455 5.5.3); nothing after our close */
        if (!ws->close_sent) {
            ws->pong[0] = 0x80 | CZ_WS_OP_PONG;
            ws->pong[1] = (uint8_t)n;
            if (n) memcpy(ws->pong + 2, c, n);
            ws->pong_len = (uint8_t)(2 + n);
        }
        return ws->event = CZ_WS_PING;
    case CZ_WS_OP_PONG: return ws->event = CZ_WS_PONG;
    default: /* CLOSE */
        if (n == 1) return fail(ws, CZ_WS_CLOSE_PROTOCOL, "close payload of 1 byte");
        if (n == 0) {
            ws->close_code = CZ_WS_CLOSE_NO_STATUS;
        } else {
            unsigned code = (unsigned)c[0] << 8 | c[1];
            cz_ws_utf8_t u;
            if (!cz_ws_close_code_valid(code)) return fail(ws, CZ_WS_CLOSE_PROTOCOL, "invalid close code");
            cz_ws_utf8_init(&u);
            if (cz_ws_utf8_feed(&u, c + 2, n - 2, NULL) != 0 || !cz_ws_utf8_complete(&u))
                return fail(ws, CZ_WS_CLOSE_INVALID_DATA, "invalid UTF-8 in close reason");
            ws->close_code = (uint16_t)code;
            ws->payload.base = (const char *)c + 2;
            ws->payload.len = n - 2;
        }
        /* echo the code (RFC 6455 5.5.1), not the reason */
        if (!ws->close_sent) queue_close(ws, n ? ws->close_code : 0, NULL, 0);
        ws->state = ST_DONE;
        return ws->event = CZ_WS_CLOSE;
    }
}

static cz_ws_event_t message_end(cz_ws_t *ws) {
    static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};

    if (ws->msg_compressed) {
        /* RFC 7692 7.2.2: the sender removed the empty stored block's tail */
        unsigned code = cz_ws__inflate(ws, tail, 4);
        if (!code) code = cz_ws__inflate_done(ws);
        if (code) return fail(ws, code, fail_reason(code));
    }
    if (ws->msg_op == CZ_WS_OP_TEXT && !cz_ws_utf8_complete(&ws->utf8))
        return fail(ws, CZ_WS_CLOSE_INVALID_DATA, "invalid UTF-8");
    ws->payload.base = ws->msg ? ws->msg : "";
    ws->payload.len = ws->msg_len;
    ws->event = ws->msg_op == CZ_WS_OP_TEXT ? CZ_WS_TEXT : CZ_WS_BINARY;
    ws->msg_op = 0;
    ws->msg_compressed = 0;
    return (cz_ws_event_t)ws->event;
}

/* The previous event is done with: its message buffer can be reused. */
static void acknowledge(cz_ws_t *ws) {
    if (ws->event == CZ_WS_TEXT || ws->event == CZ_WS_BINARY) {
        ws->msg_len = 0;
        if (ws->msg_cap > ws->limits.retain) msg_free(ws);
    }
    ws->event = CZ_WS_NEED_MORE;
    ws->payload.base = "";
    ws->payload.len = 0;
}

cz_ws_event_t cz_ws_feed(cz_ws_t *ws, char *data, size_t len, size_t *consumed) {
    size_t pos = 0;

    *consumed = 0;
    if (ws->state == ST_DONE) return (cz_ws_event_t)ws->event;
    acknowledge(ws);

    while (pos < len || (ws->state == ST_PAYLOAD && ws->remaining == 0)) {
        if (ws->state == ST_HEADER) {
            size_t take = (size_t)(ws->hdr_need - ws->hdr_len);
            unsigned need;
            const char *why;
            uint64_t plen;

            if (take > len - pos) take = len - pos;
            memcpy(ws->hdr + ws->hdr_len, data + pos, take);
            pos += take;
            ws->hdr_len = (uint8_t)(ws->hdr_len + take);
            if (ws->hdr_len < 2) break;
            if (ws->hdr_need == 2) {
                why = check_first(ws, &need);
                if (why) {
                    *consumed = pos;
                    return fail(ws, CZ_WS_CLOSE_PROTOCOL, why);
                }
                ws->hdr_need = (uint8_t)need;
                continue; /* the rest of the header */
            }
            if (ws->hdr_len < ws->hdr_need) break;

            /* the whole header */
            plen = ws->hdr[1] & 0x7F;
            if (plen == 126) {
                plen = (uint64_t)ws->hdr[2] << 8 | ws->hdr[3];
                if (plen < 126) {
                    *consumed = pos;
                    return fail(ws, CZ_WS_CLOSE_PROTOCOL, "length not minimal");
                }
            } else if (plen == 127) {
                int i;
                plen = 0;
                for (i = 0; i < 8; i++) plen = plen << 8 | ws->hdr[2 + i];
                if (plen >> 63) {
                    *consumed = pos;
                    return fail(ws, CZ_WS_CLOSE_PROTOCOL, "length with the high bit set");
                }
                if (plen <= 0xFFFF) {
                    *consumed = pos;
                    return fail(ws, CZ_WS_CLOSE_PROTOCOL, "length not minimal");
                }
            }
            memcpy(ws->mask, ws->hdr + ws->hdr_need - 4, 4);
            ws->opcode = ws->hdr[0] & 0x0F;
            ws->fin = (ws->hdr[0] & 0x80) != 0;
            ws->rsv1 = (ws->hdr[0] & 0x40) != 0;
            ws->remaining = plen;
            ws->frame_pos = 0;
            ws->hdr_len = 0;
            ws->hdr_need = 2;
            if (ws->opcode >= CZ_WS_OP_CLOSE) {
                ws->ctrl_len = 0;
            } else {
                if (plen > ws->limits.max_frame) {
                    *consumed = pos;
                    return fail(ws, CZ_WS_CLOSE_TOO_BIG, "frame too big");
                }
                if (ws->opcode != CZ_WS_OP_CONT) {
                    ws->msg_op = ws->opcode;
                    ws->msg_compressed = ws->rsv1;
                    ws->msg_len = 0;
                    cz_ws_utf8_init(&ws->utf8);
                }
                /* compressed: the inflated size is checked as it grows */
                if (!ws->msg_compressed && plen > ws->limits.max_message - ws->msg_len) {
                    *consumed = pos;
                    return fail(ws, CZ_WS_CLOSE_TOO_BIG, "message too big");
                }
            }
            ws->state = ST_PAYLOAD;
            continue;
        }

        /* ST_PAYLOAD */
        {
            size_t avail = len - pos;
            uint8_t *chunk = (uint8_t *)data + pos;
            cz_ws_event_t ev;

            if (avail > ws->remaining) avail = (size_t)ws->remaining;
            if (ws->opcode >= CZ_WS_OP_CLOSE) {
                memcpy(ws->ctrl + ws->ctrl_len, chunk, avail);
                cz_ws_mask(ws->ctrl + ws->ctrl_len, avail, ws->mask, ws->frame_pos);
                ws->ctrl_len = (uint8_t)(ws->ctrl_len + avail);
            } else if (ws->fin && ws->opcode != CZ_WS_OP_CONT && !ws->rsv1 && ws->frame_pos == 0 &&
                       avail == ws->remaining) {
                /* a whole unfragmented message in this read: unmasked in
                 * place and handed out where it is, not copied */
                size_t bad;
                cz_ws_mask(chunk, avail, ws->mask, 0);
                if (ws->opcode == CZ_WS_OP_TEXT &&
                    (cz_ws_utf8_feed(&ws->utf8, chunk, avail, &bad) != 0 || !cz_ws_utf8_complete(&ws->utf8))) {
                    *consumed = pos + avail;
                    return fail(ws, CZ_WS_CLOSE_INVALID_DATA, "invalid UTF-8");
                }
                pos += avail;
                ws->remaining = 0;
                ws->state = ST_HEADER;
                ws->msg_op = 0;
                ws->msg_compressed = 0;
                ws->payload.base = (const char *)chunk;
                ws->payload.len = avail;
                ws->event = ws->opcode == CZ_WS_OP_TEXT ? CZ_WS_TEXT : CZ_WS_BINARY;
                *consumed = pos;
                return (cz_ws_event_t)ws->event;
            } else if (avail) {
                cz_ws_mask(chunk, avail, ws->mask, ws->frame_pos);
                if (ws->msg_compressed) {
                    unsigned code = cz_ws__inflate(ws, chunk, avail);
                    if (code) {
                        *consumed = pos + avail;
                        return fail(ws, code, fail_reason(code));
                    }
                } else {
                    size_t bad;
                    /* validated before it is kept: an invalid prefix fails
                     * now, not when the frame or message ends */
                    if (ws->msg_op == CZ_WS_OP_TEXT && cz_ws_utf8_feed(&ws->utf8, chunk, avail, &bad) != 0) {
                        *consumed = pos + bad;
                        return fail(ws, CZ_WS_CLOSE_INVALID_DATA, "invalid UTF-8");
                    }
                    if (cz_ws__msg_reserve(ws, avail) != 0) {
                        *consumed = pos;
                        return fail(ws, CZ_WS_CLOSE_INTERNAL, "out of memory");
                    }
                    memcpy(ws->msg + ws->msg_len, chunk, avail);
                    ws->msg_len += avail;
                }
            }
            pos += avail;
            ws->remaining -= avail;
            ws->frame_pos += avail;
            if (ws->remaining > 0) break; /* pos == len */
            ws->state = ST_HEADER;
            if (ws->opcode >= CZ_WS_OP_CLOSE) ev = control_end(ws);
            else if (ws->fin) ev = message_end(ws);
            else continue;
            *consumed = pos;
            return ev;
        }
    }
    *consumed = pos;
    return CZ_WS_NEED_MORE;
}

cz_http_str_t cz_ws_payload(const cz_ws_t *ws) {
    return ws->payload;
}

unsigned cz_ws_close_code(const cz_ws_t *ws) {
    return ws->event == CZ_WS_CLOSE || ws->event == CZ_WS_ERROR ? ws->close_code : 0;
}

int cz_ws_in_message(const cz_ws_t *ws) {
    return ws->state == ST_PAYLOAD || ws->hdr_len > 0 || ws->msg_op != 0;
}

int cz_ws_control_pending(const cz_ws_t *ws) {
    return ws->pong_len > 0 || (ws->close_out_len > 0 && !ws->close_flushed);
}

int cz_ws_flush_control(cz_ws_t *ws, cz_http_buf_t *out) {
    size_t close_len = ws->close_flushed ? 0 : ws->close_out_len;
    int rc;

    if (ws->pong_len + close_len == 0) return CZ_WS_OK;
    rc = cz_http_buf_reserve(out, ws->pong_len + close_len);
    if (rc != CZ_HTTP_OK) return rc == CZ_HTTP_ENOMEM ? CZ_WS_ENOMEM : CZ_WS_E2BIG;
    memcpy(out->data + out->len, ws->pong, ws->pong_len);
    out->len += ws->pong_len;
    memcpy(out->data + out->len, ws->close_out, close_len);
    out->len += close_len;
    ws->pong_len = 0;
    if (close_len) ws->close_flushed = 1;
    return CZ_WS_OK;
}

int cz_ws_close(cz_ws_t *ws, unsigned code, const char *reason, size_t reason_len) {
    if (ws->close_sent) return CZ_WS_EINVAL;
    if (code == 0 ? reason_len != 0 : (!cz_ws_close_code_valid(code) || reason_len > 123 || (reason_len && !reason)))
        return CZ_WS_EINVAL;
    queue_close(ws, code, reason, reason_len);
    ws->pong_len = 0; /* nothing is owed after a close */
    return CZ_WS_OK;
}

int cz_ws_write(cz_ws_t *ws, cz_http_buf_t *out, unsigned opcode, const void *data, size_t len, int compress) {
    uint8_t hdr[CZ_WS_MAX_HEADER];
    size_t h;
    int rc;

    if (opcode != CZ_WS_OP_TEXT && opcode != CZ_WS_OP_BINARY && opcode != CZ_WS_OP_PING && opcode != CZ_WS_OP_PONG)
        return CZ_WS_EINVAL;
    if (opcode >= CZ_WS_OP_CLOSE && len > CZ_WS_MAX_CONTROL) return CZ_WS_EINVAL;
    if (ws->close_sent || (len && !data)) return CZ_WS_EINVAL; /* RFC 6455 5.5.1: nothing after our close */
    if (compress && ws->pmd.enabled && opcode < CZ_WS_OP_CLOSE) return cz_ws__deflate_write(ws, out, opcode, data, len);
    h = cz_ws_frame_header(hdr, 1, 0, opcode, len, NULL);
    if (len > SIZE_MAX / 2) return CZ_WS_E2BIG;
    rc = cz_http_buf_reserve(out, h + len);
    if (rc != CZ_HTTP_OK) return rc == CZ_HTTP_ENOMEM ? CZ_WS_ENOMEM : CZ_WS_E2BIG;
    memcpy(out->data + out->len, hdr, h);
    if (len) memcpy(out->data + out->len + h, data, len);
    out->len += h + len;
    return CZ_WS_OK;
}
