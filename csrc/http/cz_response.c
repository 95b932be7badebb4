/*
 * cz_response — response serialization, the Date cache, canned errors.
 *
 * A response is measured and validated first, then written with one
 * reservation: nothing is appended unless all of it is valid, and the
 * output buffer grows at most once per response. See cz_http.h.
 */
#include "cz_http.h"

#include <assert.h>
#include <string.h>

#define LIT(s) (s), (sizeof(s) - 1)

/* ---- reason phrases (RFC 9110 section 15) ------------------------------- */

const char *cz_http_reason(int status) {
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 207: return "Multi-Status";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 418: return "I'm a teapot";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 423: return "Locked";
    case 424: return "Failed Dependency";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 507: return "Insufficient Storage";
    case 511: return "Network Authentication Required";
    default: return "";
    }
}

/* ---- output buffer ------------------------------------------------------ */

void cz_http_buf_init(cz_http_buf_t *b, cz_allocator_t *a, size_t max) {
    b->data = NULL;
    b->len = b->cap = 0;
    b->max = max ? max : SIZE_MAX / 2;
    b->alloc = a;
}

int cz_http_buf_grow(cz_http_buf_t *b, size_t extra) {
    size_t need, n;
    char *nd;

    if (extra > b->max - b->len) return CZ_HTTP_E2BIG;
    need = b->len + extra;
    if (need <= b->cap) return CZ_HTTP_OK;
    n = b->cap < 256 ? 256 : b->cap;
    while (n < need) n = n > b->max / 2 ? b->max : n * 2;
    if (n > b->max) n = b->max;
    nd = b->data ? cz_realloc(b->alloc, CZ_MEM_RESPONSE, b->data, n) : cz_malloc(b->alloc, CZ_MEM_RESPONSE, n);
    if (!nd) return CZ_HTTP_ENOMEM;
    b->data = nd;
    b->cap = n;
    return CZ_HTTP_OK;
}

void cz_http_buf_reset(cz_http_buf_t *b, size_t keep) {
    b->len = 0;
    if (b->cap > keep) {
        cz_free(b->alloc, CZ_MEM_RESPONSE, b->data);
        b->data = NULL;
        b->cap = 0;
    }
}

void cz_http_buf_free(cz_http_buf_t *b) {
    cz_free(b->alloc, CZ_MEM_RESPONSE, b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* ---- Date --------------------------------------------------------------- */

/* IMF-fixdate covers years 0000..9999; 253402300799 is 9999-12-31 23:59:59. */
#define DATE_MAX_SEC INT64_C(253402300799)

/* Civil date of a day count since 1970-01-01 (H. Hinnant's algorithm:
 * exact, no tables, no locale or time zone, unlike gmtime/strftime). */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
    int64_t era;
    unsigned doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = (unsigned)(z - era * 146097);
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static void put2(char *w, unsigned v) {
    w[0] = (char)('0' + v / 10);
    w[1] = (char)('0' + v % 10);
}

static void format_date(char *out, int64_t t) {
    static const char wday[7][4] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};
    static const char mon[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    int64_t days = t / 86400, y;
    unsigned secs = (unsigned)(t % 86400), m, d;

    civil_from_days(days, &y, &m, &d);
    /* "Sun, 06 Nov 1994 08:49:37 GMT" */
    memcpy(out, wday[days % 7], 3);
    memcpy(out + 3, ", ", 2);
    put2(out + 5, d);
    out[7] = ' ';
    memcpy(out + 8, mon[m - 1], 3);
    out[11] = ' ';
    put2(out + 12, (unsigned)(y / 100));
    put2(out + 14, (unsigned)(y % 100));
    out[16] = ' ';
    put2(out + 17, secs / 3600);
    out[19] = ':';
    put2(out + 20, secs / 60 % 60);
    out[22] = ':';
    put2(out + 23, secs % 60);
    memcpy(out + 25, " GMT", 5); /* with the NUL */
}

static int64_t clamp_time(time_t now) {
    int64_t t = (int64_t)now;

    return t < 0 ? 0 : t > DATE_MAX_SEC ? DATE_MAX_SEC : t;
}

void cz_http_date_init(cz_http_date_t *d, time_t now) {
    d->sec = INT64_MIN;
    d->str[0] = '\0';
    cz_http_date_update(d, now);
}

int cz_http_date_update(cz_http_date_t *d, time_t now) {
    int64_t t = clamp_time(now);

    if (t == d->sec) return 0;
    format_date(d->str, t);
    d->sec = t;
    return 1;
}

/* ---- validation --------------------------------------------------------- */

/* tchar of RFC 9110 5.6.2 */
static int is_tchar(unsigned char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

int cz_http_is_token(cz_http_str_t s) {
    size_t i;

    if (!s.base || s.len == 0) return 0;
    for (i = 0; i < s.len; i++)
        if (!is_tchar((unsigned char)s.base[i])) return 0;
    return 1;
}

/* field-value / reason-phrase: VCHAR, obs-text, SP, HTAB. Any other control
 * character, CR and LF above all, would let the text start a new line. */
static int is_field_text(cz_http_str_t s) {
    size_t i;

    if (!s.base) return s.len == 0;
    for (i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.base[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) return 0;
    }
    return 1;
}

enum { H_PLAIN, H_DROP, H_DATE, H_SERVER, H_CTYPE };

static int classify(cz_http_str_t name) {
    if (cz_http_ieq(name, LIT("content-length")) || cz_http_ieq(name, LIT("transfer-encoding")) ||
        cz_http_ieq(name, LIT("connection")))
        return H_DROP;
    if (cz_http_ieq(name, LIT("date"))) return H_DATE;
    if (cz_http_ieq(name, LIT("server"))) return H_SERVER;
    if (cz_http_ieq(name, LIT("content-type"))) return H_CTYPE;
    return H_PLAIN;
}

/* ---- serialization ------------------------------------------------------ */

/* Everything decided before writing. */
typedef struct {
    cz_http_str_t reason;
    char clen[24];
    size_t clen_len;
    int date, server, ctype, length, chunked, body;
    const char *connection;
    size_t size;
} plan_t;

static int add(size_t *acc, size_t n) {
    if (n > SIZE_MAX - *acc) return -1;
    *acc += n;
    return 0;
}

static size_t u64_to_dec(char *out, uint64_t v) {
    char tmp[24];
    size_t n = 0, i;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
    return n;
}

static int plan_headers(plan_t *pl, const cz_http_response_t *r) {
    size_t i;

    for (i = 0; i < r->num_headers; i++) {
        const cz_http_header_t *h = &r->headers[i];
        int kind;

        if (!cz_http_is_token(h->name) || !is_field_text(h->value)) return -1;
        kind = classify(h->name);
        if (kind == H_DROP) continue;
        if (kind == H_DATE) pl->date = 0;
        else if (kind == H_SERVER) pl->server = 0;
        else if (kind == H_CTYPE) pl->ctype = 0;
        if (add(&pl->size, h->name.len + 4) || add(&pl->size, h->value.len)) return -1;
    }
    return 0;
}

static int plan(plan_t *pl, const cz_http_date_t *date, const cz_http_response_t *r, int with_body) {
    int bodyless = r->status < 200 || r->status == 204 || r->status == 304;

    if (r->status < 100 || r->status > 999) return -1;
    pl->reason = r->reason;
    if (!pl->reason.base) {
        pl->reason.base = cz_http_reason(r->status);
        pl->reason.len = strlen(pl->reason.base);
    }
    if (!is_field_text(pl->reason)) return -1;
    pl->date = date && date->str[0] != '\0';
    pl->server = 1;
    pl->ctype = r->content_type.base != NULL;
    if (pl->ctype && !is_field_text(r->content_type)) return -1;
    if (r->framing < CZ_HTTP_FRAME_LENGTH || r->framing > CZ_HTTP_FRAME_UPGRADE ||
        (r->framing == CZ_HTTP_FRAME_UPGRADE && r->status != 101) ||
        (r->framing == CZ_HTTP_FRAME_CHUNKED && r->http_minor == 0))
        return -1;
    pl->length = !bodyless && r->framing == CZ_HTTP_FRAME_LENGTH;
    pl->chunked = !bodyless && r->framing == CZ_HTTP_FRAME_CHUNKED;
    pl->body = with_body && pl->length && !r->head && r->body.len > 0;
    if (pl->body && !r->body.base) return -1;
    pl->connection = r->framing == CZ_HTTP_FRAME_UPGRADE                   ? "Connection: Upgrade\r\n"
                     : !r->keep_alive || r->framing == CZ_HTTP_FRAME_CLOSE ? "Connection: close\r\n"
                     : r->http_minor == 0                                  ? "Connection: keep-alive\r\n"
                                                                           : NULL;
    pl->size = sizeof("HTTP/1.1 200 \r\n") - 1 + pl->reason.len + 2; /* + blank line */
    if (plan_headers(pl, r)) return -1;
    if (pl->date) pl->size += sizeof("Date: \r\n") - 1 + CZ_HTTP_DATE_LEN;
    if (pl->server) pl->size += sizeof("Server: catzilla\r\n") - 1;
    if (pl->ctype && add(&pl->size, sizeof("Content-Type: \r\n") - 1 + r->content_type.len)) return -1;
    if (pl->length) {
        pl->clen_len = u64_to_dec(pl->clen, (uint64_t)r->body.len);
        pl->size += sizeof("Content-Length: \r\n") - 1 + pl->clen_len;
    }
    if (pl->chunked) pl->size += sizeof("Transfer-Encoding: chunked\r\n") - 1;
    if (pl->connection) pl->size += strlen(pl->connection);
    if (pl->body && add(&pl->size, r->body.len)) return -1;
    return 0;
}

static char *put(char *w, const char *s, size_t n) {
    memcpy(w, s, n);
    return w + n;
}

static char *put_field(char *w, const char *name, size_t nlen, const char *value, size_t vlen) {
    w = put(w, name, nlen);
    w = put(w, ": ", 2);
    if (vlen) w = put(w, value, vlen);
    return put(w, "\r\n", 2);
}

static char *write_planned(char *w, const plan_t *pl, const cz_http_date_t *date, const cz_http_response_t *r) {
    char code[3];
    size_t i;

    code[0] = (char)('0' + r->status / 100);
    code[1] = (char)('0' + r->status / 10 % 10);
    code[2] = (char)('0' + r->status % 10);
    w = put(w, LIT("HTTP/1.1 "));
    w = put(w, code, 3);
    w = put(w, " ", 1);
    if (pl->reason.len) w = put(w, pl->reason.base, pl->reason.len);
    w = put(w, "\r\n", 2);
    if (pl->date) w = put_field(w, LIT("Date"), date->str, CZ_HTTP_DATE_LEN);
    if (pl->server) w = put(w, LIT("Server: catzilla\r\n"));
    for (i = 0; i < r->num_headers; i++) {
        const cz_http_header_t *h = &r->headers[i];
        if (classify(h->name) != H_DROP) w = put_field(w, h->name.base, h->name.len, h->value.base, h->value.len);
    }
    if (pl->ctype) w = put_field(w, LIT("Content-Type"), r->content_type.base, r->content_type.len);
    if (pl->length) w = put_field(w, LIT("Content-Length"), pl->clen, pl->clen_len);
    if (pl->chunked) w = put(w, LIT("Transfer-Encoding: chunked\r\n"));
    if (pl->connection) w = put(w, pl->connection, strlen(pl->connection));
    w = put(w, "\r\n", 2);
    if (pl->body) w = put(w, r->body.base, r->body.len);
    return w;
}

static int write_response(cz_http_buf_t *out, const cz_http_date_t *date, const cz_http_response_t *r, int with_body) {
    plan_t pl;
    char *end;
    int rc;

    memset(&pl, 0, sizeof(pl));
    if (plan(&pl, date, r, with_body)) return CZ_HTTP_EINVAL;
    rc = cz_http_buf_reserve(out, pl.size);
    if (rc != CZ_HTTP_OK) return rc;
    end = write_planned(out->data + out->len, &pl, date, r);
    assert(end == out->data + out->len + pl.size); /* plan and writer agree */
    out->len = (size_t)(end - out->data);
    return CZ_HTTP_OK;
}

int cz_http_response_write(cz_http_buf_t *out, const cz_http_date_t *date, const cz_http_response_t *r) {
    return write_response(out, date, r, 1);
}

int cz_http_response_write_head(cz_http_buf_t *out, const cz_http_date_t *date, const cz_http_response_t *r) {
    return write_response(out, date, r, 0);
}

int cz_http_write_chunk(cz_http_buf_t *out, const void *data, size_t len) {
    static const char hex[] = "0123456789abcdef";
    char size[2 * sizeof(size_t) + 2];
    size_t n = 0, v, total;
    int rc;

    if (len == 0) return cz_http_buf_append(out, LIT("0\r\n\r\n"));
    for (v = len; v; v >>= 4) n++;
    for (v = len, total = n; v; v >>= 4) size[--total] = hex[v & 15];
    size[n++] = '\r';
    size[n++] = '\n';
    if (len > SIZE_MAX / 2) return CZ_HTTP_E2BIG;
    total = n + len + 2;
    rc = cz_http_buf_reserve(out, total);
    if (rc != CZ_HTTP_OK) return rc;
    memcpy(out->data + out->len, size, n);
    memcpy(out->data + out->len + n, data, len);
    memcpy(out->data + out->len + n + len, "\r\n", 2);
    out->len += total;
    return CZ_HTTP_OK;
}

/* ---- canned errors ------------------------------------------------------ */

int cz_http_write_error(cz_http_buf_t *out, const cz_http_date_t *date, int status, const char *allow, int http_minor,
                        int keep_alive, int head) {
    /* longest phrase is well under 64 bytes and holds no '"' or '\\' */
    char body[128];
    const char *detail = cz_http_reason(status);
    cz_http_header_t allow_h;
    cz_http_response_t r;
    size_t n = 0, dlen;

    if (status < 400 || status > 599) return CZ_HTTP_EINVAL;
    if (!detail[0]) detail = status < 500 ? "Bad Request" : "Internal Server Error";
    dlen = strlen(detail);
    memcpy(body + n, "{\"detail\":\"", 11);
    n += 11;
    memcpy(body + n, detail, dlen);
    n += dlen;
    memcpy(body + n, "\"}", 2);
    n += 2;

    memset(&r, 0, sizeof(r));
    r.status = status;
    r.content_type.base = "application/json";
    r.content_type.len = sizeof("application/json") - 1;
    r.body.base = body;
    r.body.len = n;
    r.http_minor = http_minor;
    r.keep_alive = keep_alive;
    r.head = head;
    if (status == 405) {
        /* RFC 9110 15.5.6: a 405 MUST list the allowed methods */
        allow_h.name.base = "Allow";
        allow_h.name.len = 5;
        allow_h.value.base = allow ? allow : "";
        allow_h.value.len = allow ? strlen(allow) : 0;
        r.headers = &allow_h;
        r.num_headers = 1;
    }
    return cz_http_response_write(out, date, &r);
}
