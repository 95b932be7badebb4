/* cz_accesslog — see cz_accesslog.h for the contract. */
#include "cz_accesslog.h"

#include <stdio.h>
#include <string.h>

static const char HEX[] = "0123456789abcdef";
static const char *const MONTHS[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* Bytes that go into a line as they are: printable ASCII but '"' and '\\'. */
/* clang-format off */
#define R16(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
static const uint8_t PLAIN[256] = {
    R16(0), R16(0),                                     /* 0x00..0x1f: controls */
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,     /* 0x20..0x2f: '"' */
    R16(1), R16(1),                                     /* 0x30..0x4f */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,     /* 0x50..0x5f: '\\' */
    R16(1),                                             /* 0x60..0x6f */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0,     /* 0x70..0x7f: DEL */
    R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), /* 0x80..0xff */
};
#undef R16
/* clang-format on */

void cz_accesslog_init(cz_accesslog_t *l, cz_accesslog_format_t format) {
    memset(l, 0, sizeof(*l));
    l->format = format;
    l->cached = (time_t)-1;
}

static void stamp(cz_accesslog_t *l, time_t when) {
    if (when == l->cached) return;
    struct tm tm;
    gmtime_r(&when, &tm);
    if (l->format == CZ_ACCESSLOG_JSON)
        snprintf(l->stamp, sizeof(l->stamp), "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    else
        snprintf(l->stamp, sizeof(l->stamp), "[%02d/%s/%04d:%02d:%02d:%02d +0000]", tm.tm_mday, MONTHS[tm.tm_mon % 12],
                 tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    l->stamp_len = strlen(l->stamp);
    l->cached = when;
}

/* Append `s` escaped; `p` has room for 6 bytes per input byte. One table
 * lookup per byte (a usual target has nothing to escape). */
static char *escape(char *p, cz_http_str_t s, int json) {
    const unsigned char *b = (const unsigned char *)s.base;
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = b[i];
        if (PLAIN[c]) {
            *p++ = (char)c;
            continue;
        }
        if (json && (c == '"' || c == '\\')) {
            *p++ = '\\';
            *p++ = (char)c;
        } else if (json) {
            memcpy(p, "\\u00", 4);
            p[4] = HEX[c >> 4];
            p[5] = HEX[c & 15];
            p += 6;
        } else {
            *p++ = '\\';
            *p++ = 'x';
            *p++ = HEX[c >> 4];
            *p++ = HEX[c & 15];
        }
    }
    return p;
}

static char *put(char *p, const char *s, size_t n) {
    memcpy(p, s, n);
    return p + n;
}
#define PUT(p, lit) put((p), (lit), sizeof(lit) - 1)

static char *put_u64(char *p, uint64_t v) {
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v);
    while (n) *p++ = tmp[--n];
    return p;
}

int cz_accesslog_append(cz_accesslog_t *l, cz_http_buf_t *out, const cz_accesslog_entry_t *e) {
    const cz_http_request_t *r = e->req;
    const char *client = e->client && *e->client ? e->client : "-";
    size_t clen = strlen(client);
    if (clen > 64) clen = 64;
    /* Worst case: every byte of the target, method and client escaped to 6,
     * plus the fixed fields. */
    size_t need = 6u * (r->target.len + r->method.len + clen) + 256u;
    int rc = cz_http_buf_reserve(out, need);
    if (rc != CZ_HTTP_OK) return rc;
    stamp(l, e->when);
    int status = e->status > 0 && e->status < 1000 ? e->status : 0;
    char *p = out->data + out->len;
    if (l->format == CZ_ACCESSLOG_JSON) {
        p = PUT(p, "{\"time\":\"");
        p = put(p, l->stamp, l->stamp_len);
        p = PUT(p, "\",\"client\":\"");
        p = escape(p, (cz_http_str_t){client, clen}, 1);
        p = PUT(p, "\",\"method\":\"");
        p = escape(p, r->method, 1);
        p = PUT(p, "\",\"path\":\"");
        p = escape(p, r->target, 1);
        p = PUT(p, "\",\"http\":\"1.");
        *p++ = (char)('0' + (r->http_minor & 1));
        p = PUT(p, "\",\"status\":");
        p = put_u64(p, (uint64_t)status);
        p = PUT(p, ",\"bytes\":");
        p = put_u64(p, e->bytes);
        p = PUT(p, ",\"duration_ms\":");
        uint64_t us = e->duration_ns / 1000u;
        p = put_u64(p, us / 1000u);
        *p++ = '.';
        char frac[3] = {(char)('0' + us / 100u % 10u), (char)('0' + us / 10u % 10u), (char)('0' + us % 10u)};
        p = put(p, frac, 3);
        p = PUT(p, "}\n");
    } else {
        p = escape(p, (cz_http_str_t){client, clen}, 0);
        p = PUT(p, " - - ");
        p = put(p, l->stamp, l->stamp_len);
        p = PUT(p, " \"");
        p = escape(p, r->method, 0);
        *p++ = ' ';
        p = escape(p, r->target, 0);
        p = PUT(p, " HTTP/1.");
        *p++ = (char)('0' + (r->http_minor & 1));
        p = PUT(p, "\" ");
        p = put_u64(p, (uint64_t)status);
        *p++ = ' ';
        if (e->bytes) p = put_u64(p, e->bytes);
        else *p++ = '-';
        *p++ = '\n';
    }
    out->len = (size_t)(p - out->data);
    return CZ_HTTP_OK;
}
