/* cz_cond — see cz_cond.h for the contract. */
#include "cz_cond.h"

#include <string.h>

#define LIT(s) (s), (sizeof(s) - 1)

/* ---- HTTP-date ----------------------------------------------------------- */

/* Days since 1970-01-01 of a civil date (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int month_of(const char *s) {
    static const char names[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    for (int i = 0; i < 12; i++)
        if (memcmp(names + 3 * i, s, 3) == 0) return i + 1;
    return 0;
}

/* `n` digits at p into *v. */
static int digits(const char *p, int n, int *v) {
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return -1;
        *v = *v * 10 + (p[i] - '0');
    }
    return 0;
}

/* "hh:mm:ss" at p. */
static int clock_of(const char *p, int *secs) {
    int h, m, s;
    if (digits(p, 2, &h) || p[2] != ':' || digits(p + 3, 2, &m) || p[5] != ':' || digits(p + 6, 2, &s)) return -1;
    if (h > 23 || m > 59 || s > 60) return -1;
    *secs = h * 3600 + m * 60 + s;
    return 0;
}

static int make_time(int year, int mon, int day, int secs, int64_t *t) {
    static const unsigned char mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (!mon || day < 1 || day > mdays[mon - 1]) return -1;
    *t = days_from_civil(year, (unsigned)mon, (unsigned)day) * 86400 + secs;
    return 0;
}

int cz_cond_parse_date(cz_http_str_t s, int64_t *t) {
    const char *p = s.base;
    size_t n = s.len;
    int day, year, secs;
    /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
    if (n == 29 && p[3] == ',' && p[4] == ' ' && p[7] == ' ' && p[11] == ' ' && p[16] == ' ' &&
        memcmp(p + 25, " GMT", 4) == 0) {
        if (digits(p + 5, 2, &day) || digits(p + 12, 4, &year) || clock_of(p + 17, &secs)) return -1;
        return make_time(year, month_of(p + 8), day, secs, t);
    }
    /* asctime: "Sun Nov  6 08:49:37 1994" */
    if (n == 24 && p[3] == ' ' && p[7] == ' ' && p[10] == ' ' && p[19] == ' ') {
        if (digits(p + 9, 1, &day) || clock_of(p + 11, &secs) || digits(p + 20, 4, &year)) return -1;
        if (p[8] != ' ') {
            int tens;
            if (digits(p + 8, 1, &tens)) return -1;
            day += tens * 10;
        }
        return make_time(year, month_of(p + 4), day, secs, t);
    }
    /* RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT" */
    const char *comma = memchr(p, ',', n);
    if (comma && (size_t)(p + n - comma) == 24 && comma[1] == ' ' && comma[4] == '-' && comma[8] == '-' &&
        comma[11] == ' ' && memcmp(comma + 20, " GMT", 4) == 0) {
        if (digits(comma + 2, 2, &day) || digits(comma + 9, 2, &year) || clock_of(comma + 12, &secs)) return -1;
        year += year < 70 ? 2000 : 1900;
        return make_time(year, month_of(comma + 5), day, secs, t);
    }
    return -1;
}

/* ---- entity tags --------------------------------------------------------- */

typedef struct {
    cz_http_str_t opaque; /* the quoted string, quotes included */
    int weak;
} etag_t;

static etag_t etag_of(cz_http_str_t s) {
    etag_t e = {s, 0};
    if (s.len >= 2 && s.base[0] == 'W' && s.base[1] == '/') {
        e.weak = 1;
        e.opaque.base += 2;
        e.opaque.len -= 2;
    }
    return e;
}

/* Does the list `v` ("*", or entity-tags separated by commas) hold one
 * matching `tag`? `weak`: weak comparison. -1 when the list does not parse. */
static int list_matches(cz_http_str_t v, const etag_t *tag, int weak) {
    size_t i = 0;
    int found = 0;
    while (i < v.len) {
        while (i < v.len && (v.base[i] == ' ' || v.base[i] == '\t' || v.base[i] == ',')) i++;
        if (i == v.len) break;
        if (v.base[i] == '*') {
            found = 1;
            i++;
            continue;
        }
        size_t start = i;
        if (v.len - i >= 2 && v.base[i] == 'W' && v.base[i + 1] == '/') i += 2;
        if (i == v.len || v.base[i] != '"') return -1;
        const char *close = memchr(v.base + i + 1, '"', v.len - i - 1);
        if (!close) return -1;
        i = (size_t)(close - v.base) + 1;
        etag_t e = etag_of((cz_http_str_t){v.base + start, i - start});
        if (tag->opaque.len && e.opaque.len == tag->opaque.len &&
            memcmp(e.opaque.base, tag->opaque.base, e.opaque.len) == 0 && (weak || (!e.weak && !tag->weak)))
            found = 1;
    }
    return found;
}

/* Every field named `name`, read as one list. 1 matched, 0 not, -1 absent. */
static int header_matches(const cz_http_request_t *req, const char *name, size_t nlen, const etag_t *tag, int weak) {
    int present = 0, found = 0;
    for (size_t i = 0; i < req->num_headers; i++) {
        if (!cz_http_ieq(req->headers[i].name, name, nlen)) continue;
        present = 1;
        if (list_matches(req->headers[i].value, tag, weak) > 0) found = 1;
    }
    return present ? found : -1;
}

/* The date of the last field named `name`, if present and valid. */
static int header_date(const cz_http_request_t *req, const char *name, size_t nlen, int64_t *t) {
    const cz_http_str_t *v = cz_http_request_header(req, name, nlen);
    return v && cz_cond_parse_date(*v, t) == 0;
}

/* ---- ranges -------------------------------------------------------------- */

enum { RANGE_IGNORE, RANGE_ONE, RANGE_MANY, RANGE_NONE_SATISFIABLE };

static int parse_pos(const char *p, size_t n, uint64_t *v) {
    if (n == 0 || n > 19) return -1; /* fits in 63 bits */
    *v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return -1;
        *v = *v * 10 + (uint64_t)(p[i] - '0');
    }
    return 0;
}

/* "bytes=a-b, c-, -n": how many ranges, and the first satisfiable one. */
static int parse_ranges(cz_http_str_t v, uint64_t size, uint64_t *off, uint64_t *len) {
    if (v.len < 6 || memcmp(v.base, "bytes=", 6) != 0) return RANGE_IGNORE; /* another unit */
    size_t i = 6;
    int specs = 0, satisfiable = 0;
    while (i < v.len) {
        while (i < v.len && (v.base[i] == ' ' || v.base[i] == '\t')) i++;
        size_t start = i;
        while (i < v.len && v.base[i] != ',') i++;
        size_t end = i;
        while (end > start && (v.base[end - 1] == ' ' || v.base[end - 1] == '\t')) end--;
        if (i < v.len) i++;         /* the comma */
        if (end == start) continue; /* empty list elements are allowed */
        const char *dash = memchr(v.base + start, '-', end - start);
        if (!dash) return RANGE_IGNORE;
        size_t a_len = (size_t)(dash - (v.base + start)), b_len = (size_t)(v.base + end - dash - 1);
        uint64_t a = 0, b = 0, o, l;
        if (a_len == 0) { /* suffix: the last b bytes */
            if (parse_pos(dash + 1, b_len, &b)) return RANGE_IGNORE;
            if (b == 0 || size == 0) {
                specs++;
                continue;
            }
            l = b < size ? b : size;
            o = size - l;
        } else {
            if (parse_pos(v.base + start, a_len, &a)) return RANGE_IGNORE;
            if (b_len && (parse_pos(dash + 1, b_len, &b) || b < a)) return RANGE_IGNORE;
            if (a >= size) {
                specs++;
                continue;
            }
            uint64_t last = b_len && b < size - 1 ? b : size - 1;
            o = a;
            l = last - a + 1;
        }
        if (!satisfiable) {
            *off = o;
            *len = l;
        }
        specs++;
        satisfiable++;
    }
    if (specs == 0) return RANGE_IGNORE;
    if (!satisfiable) return RANGE_NONE_SATISFIABLE;
    return specs == 1 ? RANGE_ONE : RANGE_MANY;
}

/* If-Range: a strong tag equal to the file's, or its exact date. */
static int if_range_holds(cz_http_str_t v, const cz_cond_file_t *f, const etag_t *tag) {
    if (v.len && (v.base[0] == '"' || (v.len > 1 && v.base[0] == 'W' && v.base[1] == '/'))) {
        etag_t e = etag_of(v);
        return !e.weak && !tag->weak && tag->opaque.len && e.opaque.len == tag->opaque.len &&
               memcmp(e.opaque.base, tag->opaque.base, e.opaque.len) == 0;
    }
    int64_t t;
    return cz_cond_parse_date(v, &t) == 0 && t == f->mtime;
}

/* ---- the decision -------------------------------------------------------- */

void cz_cond_decide(const cz_http_request_t *req, const cz_cond_file_t *f, cz_cond_answer_t *out) {
    etag_t tag = etag_of(f->etag);
    int safe = req->method_id == HTTP_GET || req->method_id == HTTP_HEAD;
    int64_t t;
    int m;

    out->status = 200;
    out->offset = 0;
    out->length = f->size;

    if ((m = header_matches(req, LIT("if-match"), &tag, 0)) >= 0) {
        if (!m) {
            out->status = 412;
            return;
        }
    } else if (header_date(req, LIT("if-unmodified-since"), &t) && f->mtime > t) {
        out->status = 412;
        return;
    }
    if ((m = header_matches(req, LIT("if-none-match"), &tag, 1)) >= 0) {
        if (m) {
            out->status = safe ? 304 : 412;
            return;
        }
    } else if (safe && header_date(req, LIT("if-modified-since"), &t) && f->mtime <= t) {
        out->status = 304;
        return;
    }
    if (req->method_id != HTTP_GET) return;
    const cz_http_str_t *range = cz_http_request_header(req, LIT("range"));
    if (!range) return;
    const cz_http_str_t *if_range = cz_http_request_header(req, LIT("if-range"));
    if (if_range && !if_range_holds(*if_range, f, &tag)) return;
    uint64_t off = 0, len = 0;
    switch (parse_ranges(*range, f->size, &off, &len)) {
    case RANGE_ONE:
        out->status = 206;
        out->offset = off;
        out->length = len;
        return;
    case RANGE_NONE_SATISFIABLE:
        out->status = 416;
        out->length = 0;
        return;
    default: return; /* ignored, or several ranges: the whole file */
    }
}
