/*
 * cz_ws_handshake — SHA-1, base64, Sec-WebSocket-Accept, the opening
 * handshake (RFC 6455 4.2) and the permessage-deflate offer (RFC 7692 7.1).
 * Nothing here allocates: views point into the request, the extension
 * answer is built in the verdict's own array.
 */
#include "cz_ws.h"

#include <stdio.h>
#include <string.h>

/* ===== SHA-1 (FIPS 180-4) ================================================= */

static uint32_t rol(uint32_t x, unsigned n) {
    return (x << n) | (x >> (32 - n));
}

static void sha1_block(uint32_t h[5], const uint8_t *p) {
    uint32_t w[80], a, b, c, d, e, t;
    int i;

    for (i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 |
               (uint32_t)p[4 * i + 3];
    for (i = 16; i < 80; i++) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) f = (b & c) | (~b & d), k = 0x5A827999u;
        else if (i < 40) f = b ^ c ^ d, k = 0x6ED9EBA1u;
        else if (i < 60) f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDCu;
        else f = b ^ c ^ d, k = 0xCA62C1D6u;
        t = rol(a, 5) + f + e + k + w[i];
        e = d, d = c, c = rol(b, 30), b = a, a = t;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
}

void cz_ws_sha1_init(cz_ws_sha1_t *s) {
    s->h[0] = 0x67452301u;
    s->h[1] = 0xEFCDAB89u;
    s->h[2] = 0x98BADCFEu;
    s->h[3] = 0x10325476u;
    s->h[4] = 0xC3D2E1F0u;
    s->bytes = 0;
    s->used = 0;
}

void cz_ws_sha1_update(cz_ws_sha1_t *s, const void *data, size_t len) {
    const uint8_t *p = data;

    s->bytes += len;
    while (len > 0) {
        size_t n = 64 - s->used;
        if (n > len) n = len;
        memcpy(s->block + s->used, p, n);
        s->used += n;
        p += n;
        len -= n;
        if (s->used == 64) {
            sha1_block(s->h, s->block);
            s->used = 0;
        }
    }
}

void cz_ws_sha1_final(cz_ws_sha1_t *s, uint8_t digest[20]) {
    uint64_t bits = s->bytes * 8;
    int i;

    s->block[s->used++] = 0x80;
    if (s->used > 56) {
        memset(s->block + s->used, 0, 64 - s->used);
        sha1_block(s->h, s->block);
        s->used = 0;
    }
    memset(s->block + s->used, 0, 56 - s->used);
    for (i = 0; i < 8; i++) s->block[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
    sha1_block(s->h, s->block);
    for (i = 0; i < 20; i++) digest[i] = (uint8_t)(s->h[i / 4] >> (24 - 8 * (i % 4)));
}

/* ===== base64 ============================================================= */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t cz_ws_base64(const uint8_t *in, size_t n, char *out) {
    size_t i, o = 0;

    for (i = 0; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = B64[v >> 18];
        out[o++] = B64[(v >> 12) & 63];
        out[o++] = B64[(v >> 6) & 63];
        out[o++] = B64[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = B64[v >> 18];
        out[o++] = B64[(v >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = B64[v >> 18];
        out[o++] = B64[(v >> 12) & 63];
        out[o++] = B64[(v >> 6) & 63];
        out[o++] = '=';
    }
    return o;
}

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

void cz_ws_accept_key(const char *key, size_t key_len, char out[29]) {
    cz_ws_sha1_t s;
    uint8_t d[20];

    cz_ws_sha1_init(&s);
    cz_ws_sha1_update(&s, key, key_len);
    cz_ws_sha1_update(&s, WS_GUID, sizeof(WS_GUID) - 1);
    cz_ws_sha1_final(&s, d);
    cz_ws_base64(d, 20, out);
    out[28] = '\0';
}

/* ===== header lists ======================================================== */

static int is_tchar(unsigned char c) {
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int is_ows(char c) {
    return c == ' ' || c == '\t';
}

static int is_b64(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* Next element of a comma-separated list in s[*pos..len): trimmed, possibly
 * empty (RFC 9110 5.6.1: empty elements are ignored by recipients).
 * Returns 0 at the end. */
static int list_next(cz_http_str_t s, size_t *pos, cz_http_str_t *el) {
    size_t i = *pos, b, e;

    if (i > s.len) return 0;
    b = i;
    while (i < s.len && s.base[i] != ',') i++;
    e = i;
    *pos = i + 1;
    while (b < e && is_ows(s.base[b])) b++;
    while (e > b && is_ows(s.base[e - 1])) e--;
    el->base = s.base + b;
    el->len = e - b;
    return 1;
}

/* 1 when a field named `name` holds the token `tok` (lower-case) in its
 * list, over all such fields. */
static int has_token(const cz_http_request_t *r, const char *name, size_t nlen, const char *tok, size_t tlen) {
    size_t i;

    for (i = 0; i < r->num_headers; i++) {
        size_t pos = 0;
        cz_http_str_t el;
        if (!cz_http_ieq(r->headers[i].name, name, nlen)) continue;
        while (list_next(r->headers[i].value, &pos, &el))
            if (cz_http_ieq(el, tok, tlen)) return 1;
    }
    return 0;
}

static size_t count_fields(const cz_http_request_t *r, const char *name, size_t nlen, const cz_http_str_t **first) {
    size_t i, n = 0;

    *first = NULL;
    for (i = 0; i < r->num_headers; i++)
        if (cz_http_ieq(r->headers[i].name, name, nlen)) {
            if (!n) *first = &r->headers[i].value;
            n++;
        }
    return n;
}

/* ===== permessage-deflate offers (RFC 7692 7.1) ============================ */

enum {
    P_SNCT = 1, /* server_no_context_takeover */
    P_CNCT = 2, /* client_no_context_takeover */
    P_SMWB = 4, /* server_max_window_bits */
    P_CMWB = 8  /* client_max_window_bits */
};

typedef struct {
    int is_pmd;     /* the extension being read is permessage-deflate */
    int bad;        /* it has a parameter that declines it */
    unsigned seen;  /* P_* */
    int smwb, cmwb; /* values; cmwb 0 when given without value */
} offer_t;

/* A window-bits value: 8..15 in plain decimal ("08" is not 1*DIGIT's
 * intent and no client sends it; declined). */
static int window_bits(const char *v, size_t n) {
    if (n == 1 && v[0] >= '8' && v[0] <= '9') return v[0] - '0';
    if (n == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5') return 10 + (v[1] - '0');
    return -1;
}

static void offer_param(offer_t *o, cz_http_str_t name, const char *v, size_t vlen, int has_v) {
    unsigned bit;

    if (!o->is_pmd || o->bad) return;
    if (cz_http_ieq(name, "server_no_context_takeover", 26)) bit = P_SNCT;
    else if (cz_http_ieq(name, "client_no_context_takeover", 26)) bit = P_CNCT;
    else if (cz_http_ieq(name, "server_max_window_bits", 22)) bit = P_SMWB;
    else if (cz_http_ieq(name, "client_max_window_bits", 22)) bit = P_CMWB;
    else {
        o->bad = 1; /* unknown parameter */
        return;
    }
    if (o->seen & bit) {
        o->bad = 1; /* repeated */
        return;
    }
    o->seen |= bit;
    if (bit == P_SNCT || bit == P_CNCT) {
        if (has_v) o->bad = 1;
    } else if (bit == P_SMWB) {
        o->smwb = has_v ? window_bits(v, vlen) : -1; /* value required */
        if (o->smwb < 0) o->bad = 1;
    } else {
        o->cmwb = has_v ? window_bits(v, vlen) : 0;
        if (o->cmwb < 0) o->bad = 1;
    }
}

static uint8_t clamp_bits(uint8_t v, uint8_t lo, uint8_t dflt) {
    if (v == 0) return dflt;
    if (v < lo) return lo;
    return v > 15 ? 15 : v;
}

/* Accept offer `o` under `pol` into hs; 0 when it must be declined. */
static int offer_accept(const offer_t *o, const cz_ws_policy_t *pol, cz_ws_handshake_t *hs) {
    cz_ws_deflate_t *d = &hs->deflate;
    uint8_t smax = clamp_bits(pol->server_max_window_bits, 8, 15);
    uint8_t cmax = clamp_bits(pol->client_max_window_bits, 8, 15);
    size_t n;
    int w;

    memset(d, 0, sizeof(*d));
    d->enabled = 1;
    d->tx_window_bits = (o->seen & P_SMWB) && o->smwb < smax ? (uint8_t)o->smwb : smax;
    d->tx_no_context_takeover = (o->seen & P_SNCT) || pol->server_no_context_takeover;
    d->rx_no_context_takeover = (o->seen & P_CNCT) || pol->client_no_context_takeover;
    if (o->seen & P_CMWB) d->rx_window_bits = o->cmwb && o->cmwb < cmax ? (uint8_t)o->cmwb : cmax;
    else d->rx_window_bits = 15; /* the client will use up to 32 KiB */
    d->mem_level = pol->mem_level >= 1 && pol->mem_level <= 9 ? pol->mem_level : 8;
    d->level = pol->level >= 0 && pol->level <= 9 && pol->level != 0 ? pol->level : -1;

    n = (size_t)snprintf(hs->extension, sizeof(hs->extension), "permessage-deflate");
    if (d->tx_no_context_takeover)
        n += (size_t)snprintf(hs->extension + n, sizeof(hs->extension) - n, "; server_no_context_takeover");
    if (d->rx_no_context_takeover)
        n += (size_t)snprintf(hs->extension + n, sizeof(hs->extension) - n, "; client_no_context_takeover");
    if ((o->seen & P_SMWB) || d->tx_window_bits < 15) {
        w = d->tx_window_bits;
        n += (size_t)snprintf(hs->extension + n, sizeof(hs->extension) - n, "; server_max_window_bits=%d", w);
    }
    if (o->seen & P_CMWB) {
        w = d->rx_window_bits;
        n += (size_t)snprintf(hs->extension + n, sizeof(hs->extension) - n, "; client_max_window_bits=%d", w);
    }
    (void)n; /* at most 128 bytes: fits */
    return 1;
}

/*
 * Parse one Sec-WebSocket-Extensions value (RFC 6455 9.1):
 *   1#( token *( ";" token [ "=" ( token / quoted-string ) ] ) )
 * and accept the first acceptable permessage-deflate offer when none is yet.
 * Returns -1 when the value does not parse.
 */
static int parse_extensions(cz_http_str_t s, const cz_ws_policy_t *pol, cz_ws_handshake_t *hs) {
    size_t i = 0, n = s.len;
    const char *p = s.base;

    for (;;) {
        offer_t o;
        cz_http_str_t name;
        size_t b;

        while (i < n && (is_ows(p[i]) || p[i] == ',')) i++;
        if (i == n) return 0;
        b = i;
        while (i < n && is_tchar((unsigned char)p[i])) i++;
        if (i == b) return -1;
        memset(&o, 0, sizeof(o));
        name.base = p + b;
        name.len = i - b;
        o.is_pmd = cz_http_ieq(name, "permessage-deflate", 18);
        while (i < n && is_ows(p[i])) i++;
        while (i < n && p[i] == ';') {
            cz_http_str_t pname;
            char val[8];
            size_t vlen = 0;
            int has_v = 0, too_long = 0;

            i++;
            while (i < n && is_ows(p[i])) i++;
            b = i;
            while (i < n && is_tchar((unsigned char)p[i])) i++;
            if (i == b) return -1;
            pname.base = p + b;
            pname.len = i - b;
            while (i < n && is_ows(p[i])) i++;
            if (i < n && p[i] == '=') {
                has_v = 1;
                i++;
                while (i < n && is_ows(p[i])) i++;
                if (i < n && p[i] == '"') {
                    /* quoted-string; the unescaped value must be a token
                     * (RFC 6455 9.1), which a window size is */
                    for (i++;; i++) {
                        char c;
                        if (i >= n) return -1;
                        c = p[i];
                        if (c == '"') break;
                        if (c == '\\') {
                            if (++i >= n) return -1;
                            c = p[i];
                        }
                        if (!is_tchar((unsigned char)c)) return -1;
                        if (vlen < sizeof(val)) val[vlen++] = c;
                        else too_long = 1;
                    }
                    i++;
                    if (vlen == 0) return -1;
                } else {
                    b = i;
                    while (i < n && is_tchar((unsigned char)p[i])) {
                        if (vlen < sizeof(val)) val[vlen++] = p[i];
                        else too_long = 1;
                        i++;
                    }
                    if (i == b) return -1;
                }
                while (i < n && is_ows(p[i])) i++;
            }
            /* a value too long to be a window size reads as an empty
             * one, which no parameter accepts */
            offer_param(&o, pname, val, too_long ? 0 : vlen, has_v);
        }
        if (i < n && p[i] != ',') return -1;
        if (o.is_pmd && !o.bad && pol->deflate && !hs->deflate.enabled) offer_accept(&o, pol, hs);
    }
}

/* ===== the handshake ======================================================== */

static int refuse(cz_ws_handshake_t *hs, int status, const char *why) {
    hs->status = status;
    hs->reason = why;
    memset(&hs->deflate, 0, sizeof(hs->deflate));
    hs->extension[0] = '\0';
    hs->subprotocol.base = "";
    hs->subprotocol.len = 0;
    return status;
}

#define N(lit) lit, sizeof(lit) - 1

int cz_ws_is_upgrade(const cz_http_request_t *req) {
    return has_token(req, N("upgrade"), N("websocket"));
}

int cz_ws_handshake_check(const cz_http_request_t *req, const cz_ws_policy_t *policy, cz_ws_handshake_t *hs) {
    static const cz_ws_policy_t none;
    const cz_http_str_t *key, *ver;
    size_t i, nkey, nver;

    if (!policy) policy = &none;
    memset(hs, 0, sizeof(*hs));
    refuse(hs, 0, "");

    if (!has_token(req, N("upgrade"), N("websocket"))) return refuse(hs, 426, "no Upgrade: websocket");
    nver = count_fields(req, N("sec-websocket-version"), &ver);
    if (nver > 1) return refuse(hs, 400, "repeated Sec-WebSocket-Version");
    if (nver == 0 || ver->len != 2 || memcmp(ver->base, "13", 2) != 0)
        return refuse(hs, 426, "Sec-WebSocket-Version is not 13");
    if (req->method_id != HTTP_GET) return refuse(hs, 400, "handshake method is not GET");
    if (req->http_major != 1 || req->http_minor < 1) return refuse(hs, 400, "handshake is not HTTP/1.1");
    if (req->has_body) return refuse(hs, 400, "handshake with a body");
    if (!has_token(req, N("connection"), N("upgrade"))) return refuse(hs, 400, "no Connection: upgrade");
    nkey = count_fields(req, N("sec-websocket-key"), &key);
    if (nkey != 1) return refuse(hs, 400, nkey ? "repeated Sec-WebSocket-Key" : "no Sec-WebSocket-Key");
    /* base64 of 16 bytes: 22 symbols, the last carrying 2 bits, then "==" */
    if (key->len != 24 || key->base[22] != '=' || key->base[23] != '=' || key->base[21] == '\0' ||
        !strchr("AQgw", key->base[21]))
        return refuse(hs, 400, "Sec-WebSocket-Key is not 16 bytes in base64");
    for (i = 0; i < 21; i++)
        if (!is_b64(key->base[i])) return refuse(hs, 400, "Sec-WebSocket-Key is not 16 bytes in base64");

    /* subprotocol: first of the client's list that the application speaks */
    for (i = 0; i < req->num_headers; i++) {
        size_t pos = 0, j;
        cz_http_str_t el;
        if (!cz_http_ieq(req->headers[i].name, N("sec-websocket-protocol"))) continue;
        while (list_next(req->headers[i].value, &pos, &el)) {
            if (el.len == 0) continue;
            if (!cz_http_is_token(el)) return refuse(hs, 400, "Sec-WebSocket-Protocol is not a list of tokens");
            for (j = 0; j < policy->num_subprotocols && hs->subprotocol.len == 0; j++)
                if (policy->subprotocols[j].len == el.len && memcmp(policy->subprotocols[j].base, el.base, el.len) == 0)
                    hs->subprotocol = el;
        }
    }
    for (i = 0; i < req->num_headers; i++)
        if (cz_http_ieq(req->headers[i].name, N("sec-websocket-extensions")) &&
            parse_extensions(req->headers[i].value, policy, hs) < 0)
            return refuse(hs, 400, "Sec-WebSocket-Extensions does not parse");

    cz_ws_accept_key(key->base, key->len, hs->accept);
    hs->status = 101;
    hs->reason = "";
    return 101;
}

/* ===== answers =============================================================== */

/* field-value: VCHAR, obs-text, SP, HTAB (no CR/LF: no header injection) */
static int field_text_ok(cz_http_str_t s) {
    size_t i;

    for (i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.base[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) return 0;
    }
    return 1;
}

static size_t put(char *d, const char *s, size_t n) {
    memcpy(d, s, n);
    return n;
}

int cz_ws_handshake_write(cz_http_buf_t *out, const cz_ws_handshake_t *hs, const cz_http_header_t *extra,
                          size_t num_extra) {
    static const char head[] = "HTTP/1.1 101 Switching Protocols\r\n"
                               "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: ";
    size_t need = sizeof(head) - 1 + 28 + 2 + 2, ext = strlen(hs->extension), i, n;
    char *d;
    int rc;

    if (hs->status != 101) return CZ_HTTP_EINVAL;
    if (hs->subprotocol.len) need += sizeof("Sec-WebSocket-Protocol: \r\n") - 1 + hs->subprotocol.len;
    if (ext) need += sizeof("Sec-WebSocket-Extensions: \r\n") - 1 + ext;
    for (i = 0; i < num_extra; i++) {
        if (!cz_http_is_token(extra[i].name) || !field_text_ok(extra[i].value) ||
            (extra[i].value.len && !extra[i].value.base))
            return CZ_HTTP_EINVAL;
        need += extra[i].name.len + 2 + extra[i].value.len + 2;
    }
    rc = cz_http_buf_reserve(out, need);
    if (rc != CZ_HTTP_OK) return rc;
    d = out->data + out->len;
    n = put(d, head, sizeof(head) - 1);
    n += put(d + n, hs->accept, 28);
    n += put(d + n, "\r\n", 2);
    if (hs->subprotocol.len) {
        n += put(d + n, N("Sec-WebSocket-Protocol: "));
        n += put(d + n, hs->subprotocol.base, hs->subprotocol.len);
        n += put(d + n, "\r\n", 2);
    }
    if (ext) {
        n += put(d + n, N("Sec-WebSocket-Extensions: "));
        n += put(d + n, hs->extension, ext);
        n += put(d + n, "\r\n", 2);
    }
    for (i = 0; i < num_extra; i++) {
        n += put(d + n, extra[i].name.base, extra[i].name.len);
        n += put(d + n, ": ", 2);
        if (extra[i].value.len) n += put(d + n, extra[i].value.base, extra[i].value.len);
        n += put(d + n, "\r\n", 2);
    }
    n += put(d + n, "\r\n", 2);
    out->len += n;
    return CZ_HTTP_OK;
}

int cz_ws_handshake_write_refusal(cz_http_buf_t *out, const cz_http_date_t *date, const cz_ws_handshake_t *hs) {
    static const char body[] = "{\"detail\":\"Upgrade Required\"}";
    cz_http_header_t h[2];
    cz_http_response_t r;

    if (hs->status != 426) return cz_http_write_error(out, date, hs->status == 101 ? 400 : hs->status, NULL, 1, 0, 0);
    /* RFC 6455 4.4: the versions we speak; RFC 9110 15.5.22: a 426 names
     * the protocol to upgrade to */
    h[0].name.base = "Upgrade";
    h[0].name.len = 7;
    h[0].value.base = "websocket";
    h[0].value.len = 9;
    h[1].name.base = "Sec-WebSocket-Version";
    h[1].name.len = 21;
    h[1].value.base = "13";
    h[1].value.len = 2;
    memset(&r, 0, sizeof(r));
    r.status = 426;
    r.headers = h;
    r.num_headers = 2;
    r.content_type.base = "application/json";
    r.content_type.len = sizeof("application/json") - 1;
    r.body.base = body;
    r.body.len = sizeof(body) - 1;
    r.http_minor = 1;
    r.keep_alive = 0;
    return cz_http_response_write(out, date, &r);
}
