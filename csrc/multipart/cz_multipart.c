/*
 * cz_multipart — streaming multipart/form-data parser. The contract is in
 * cz_multipart.h; this file only says why where the code does not.
 */
#define _GNU_SOURCE /* memmem */
#include "cz_multipart.h"

#include <string.h>

enum {
    ST_PREAMBLE = 0, /* before the first delimiter: bytes discarded */
    ST_AFTER_DELIM,  /* CRLF "--" boundary just matched */
    ST_PAD,          /* transport padding (SP/HT) after the boundary */
    ST_DELIM_LF,     /* CR of the boundary line seen, LF expected */
    ST_CLOSE_DASH,   /* "--" boundary "-" seen, second '-' expected */
    ST_HEADERS,      /* a part's header section, copied to hbuf */
    ST_BODY,         /* a part's data */
    ST_DONE,
    ST_ERROR
};

/* Not an event: the state machine goes on with the next bytes. */
#define CONTINUE (-1)

#define HBUF_MIN 512u

static const char EMPTY[] = "";

/* ---- small helpers ---------------------------------------------------------- */

static int is_tchar(unsigned char c) {
    /* RFC 9110 token characters */
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int is_bchar(unsigned char c) {
    /* RFC 2046 bcharsnospace plus space */
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return 1;
    return c != 0 && strchr("'()+_,-./:=? ", c) != NULL;
}

static unsigned char lower(unsigned char c) {
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

static int ieq(const char *s, size_t n, const char *lit) {
    size_t m = strlen(lit);

    if (n != m) return 0;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)s[i]) != (unsigned char)lit[i]) return 0;
    return 1;
}

static size_t skip_ows(const char *s, size_t i, size_t n) {
    while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
    return i;
}

/*
 * A parameter value at s[*i]: a quoted-string (escapes undone, written to
 * `out`) or a token (obs-text allowed: some clients send raw UTF-8 filenames
 * unquoted). Returns 0 and sets *val, or -1 with *why.
 */
static int param_value(const char *s, size_t n, size_t *i, char *out, cz_multipart_str_t *val, const char **why) {
    size_t j = *i;

    if (j < n && s[j] == '"') {
        size_t w = 0;
        for (j++; j < n; j++) {
            char c = s[j];
            if (c == '"') break;
            if (c == '\\') {
                /* quoted-pair; a backslash before the end is not one */
                if (++j == n) break;
                c = s[j];
            }
            out[w++] = c;
        }
        if (j >= n) {
            *why = "multipart: unterminated quoted string in Content-Disposition";
            return -1;
        }
        *i = j + 1;
        val->base = w ? out : EMPTY;
        val->len = w;
        return 0;
    }
    while (j < n && (is_tchar((unsigned char)s[j]) || (unsigned char)s[j] >= 0x80)) j++;
    if (j == *i) {
        *why = "multipart: bad Content-Disposition parameter value";
        return -1;
    }
    val->base = s + *i;
    val->len = j - *i;
    *i = j;
    return 0;
}

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    c = lower(c);
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* 1 when s[0..n) is well-formed UTF-8 (no overlongs, surrogates, > U+10FFFF). */
static int valid_utf8(const unsigned char *s, size_t n) {
    size_t i = 0;

    while (i < n) {
        unsigned char c = s[i];
        size_t k;
        uint32_t cp;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            k = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3;
            cp = c & 0x07;
        } else return 0;
        if (n - i <= k) return 0;
        for (size_t m = 1; m <= k; m++) {
            if ((s[i + m] & 0xc0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + m] & 0x3f);
        }
        if ((k == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return 0;
        i += k + 1;
    }
    return 1;
}

/*
 * RFC 8187 ext-value: charset "'" [language] "'" value-chars, decoded to
 * UTF-8 in `out` (never longer than the input: %XX is 3 bytes, its UTF-8 at
 * most 2). Raw characters other than '%' are taken as they are (lenient on
 * which ASCII punctuation is escaped), but controls, non-ASCII raw bytes,
 * invalid UTF-8 and decoded controls are refused.
 */
static int decode_ext_value(cz_multipart_str_t v, char *out, cz_multipart_str_t *res, const char **why) {
    const char *q1 = memchr(v.base, '\'', v.len);
    const char *q2;
    int latin1;
    size_t w = 0, i;

    *why = "multipart: bad filename* (RFC 8187)";
    if (!q1) return -1;
    if (ieq(v.base, (size_t)(q1 - v.base), "utf-8")) latin1 = 0;
    else if (ieq(v.base, (size_t)(q1 - v.base), "iso-8859-1")) latin1 = 1;
    else {
        *why = "multipart: filename* charset is not UTF-8 or ISO-8859-1";
        return -1;
    }
    q2 = memchr(q1 + 1, '\'', v.len - (size_t)(q1 + 1 - v.base));
    if (!q2) return -1;
    for (i = (size_t)(q2 + 1 - v.base); i < v.len; i++) {
        unsigned char c = (unsigned char)v.base[i];
        if (c == '%') {
            int hi, lo;
            if (v.len - i < 3 || (hi = hexval((unsigned char)v.base[i + 1])) < 0 ||
                (lo = hexval((unsigned char)v.base[i + 2])) < 0)
                return -1;
            c = (unsigned char)(hi * 16 + lo);
            i += 2;
        } else if (c <= 0x20 || c >= 0x7f) {
            return -1;
        }
        if (c < 0x20 || c == 0x7f) {
            *why = "multipart: control character in filename*";
            return -1;
        }
        if (latin1 && c >= 0x80) {
            out[w++] = (char)(0xc0 | (c >> 6));
            out[w++] = (char)(0x80 | (c & 0x3f));
        } else {
            out[w++] = (char)c;
        }
    }
    if (!latin1 && !valid_utf8((const unsigned char *)out, w)) {
        *why = "multipart: filename* is not valid UTF-8";
        return -1;
    }
    res->base = w ? out : EMPTY;
    res->len = w;
    return 0;
}

/* ---- boundary ------------------------------------------------------------------ */

int cz_multipart_boundary(const char *ct, size_t n, char out[CZ_MULTIPART_BOUNDARY_MAX], size_t *out_len,
                          const char **reason) {
    const char *ignored = NULL;
    const char **why = reason ? reason : &ignored;
    size_t i, j, found = 0;

    *out_len = 0;
    i = skip_ows(ct, 0, n);
    j = i;
    while (j < n && ct[j] != ';' && ct[j] != ' ' && ct[j] != '\t') j++;
    if (!ieq(ct + i, j - i, "multipart/form-data")) {
        *why = "multipart: Content-Type is not multipart/form-data";
        return 415;
    }
    i = j;
    for (;;) {
        size_t name, name_len;
        char val[CZ_MULTIPART_BOUNDARY_MAX + 1];
        size_t vlen = 0;

        i = skip_ows(ct, i, n);
        if (i == n) break;
        if (ct[i] != ';') {
            *why = "multipart: bad Content-Type parameters";
            return 400;
        }
        i = skip_ows(ct, i + 1, n);
        if (i == n) break; /* a trailing ';' is harmless */
        name = i;
        while (i < n && is_tchar((unsigned char)ct[i])) i++;
        name_len = i - name;
        i = skip_ows(ct, i, n);
        if (name_len == 0 || i == n || ct[i] != '=') {
            *why = "multipart: bad Content-Type parameters";
            return 400;
        }
        i = skip_ows(ct, i + 1, n);
        /* read the value (any parameter's, to find where it ends) */
        if (i < n && ct[i] == '"') {
            for (i++; i < n && ct[i] != '"'; i++) {
                if (ct[i] == '\\' && ++i == n) break;
                if (vlen <= CZ_MULTIPART_BOUNDARY_MAX) val[vlen] = ct[i];
                vlen++;
            }
            if (i >= n) {
                *why = "multipart: unterminated quoted string in Content-Type";
                return 400;
            }
            i++;
        } else {
            while (i < n && is_tchar((unsigned char)ct[i])) {
                if (vlen <= CZ_MULTIPART_BOUNDARY_MAX) val[vlen] = ct[i];
                vlen++;
                i++;
            }
            /* bchars that are not tchars ('(' ')' ',' '/' ':' '=' '?') end
             * a token; a boundary holding them must be quoted (RFC 2045),
             * but browsers and python-multipart take them unquoted: go on
             * to the next ';' or whitespace for the boundary parameter. */
            if (ieq(ct + name, name_len, "boundary"))
                while (i < n && ct[i] != ';' && ct[i] != ' ' && ct[i] != '\t' && is_bchar((unsigned char)ct[i])) {
                    if (vlen <= CZ_MULTIPART_BOUNDARY_MAX) val[vlen] = ct[i];
                    vlen++;
                    i++;
                }
            if (vlen == 0) {
                *why = "multipart: bad Content-Type parameters";
                return 400;
            }
        }
        if (!ieq(ct + name, name_len, "boundary")) continue;
        if (found++) {
            *why = "multipart: more than one boundary parameter";
            return 400;
        }
        if (vlen == 0) {
            *why = "multipart: empty boundary";
            return 400;
        }
        if (vlen > CZ_MULTIPART_BOUNDARY_MAX) {
            *why = "multipart: boundary longer than 70 characters";
            return 400;
        }
        for (size_t k = 0; k < vlen; k++)
            if (!is_bchar((unsigned char)val[k])) {
                *why = "multipart: boundary has a character RFC 2046 does not allow";
                return 400;
            }
        if (val[vlen - 1] == ' ') {
            *why = "multipart: boundary ends in a space";
            return 400;
        }
        memcpy(out, val, vlen);
        *out_len = vlen;
    }
    if (!found) {
        *why = "multipart: no boundary parameter in Content-Type";
        return 400;
    }
    return 0;
}

/* ---- lifecycle --------------------------------------------------------------- */

void cz_multipart_limits_default(cz_multipart_limits_t *l) {
    l->max_parts = CZ_MULTIPART_DEFAULT_MAX_PARTS;
    l->max_header_bytes = CZ_MULTIPART_DEFAULT_MAX_HEADER_BYTES;
    l->max_headers = CZ_MULTIPART_DEFAULT_MAX_HEADERS;
    l->max_field_size = CZ_MULTIPART_DEFAULT_MAX_FIELD_SIZE;
    l->max_file_size = CZ_MULTIPART_DEFAULT_MAX_FILE_SIZE;
    l->max_total = CZ_MULTIPART_DEFAULT_MAX_TOTAL;
    l->max_files = CZ_MULTIPART_DEFAULT_MAX_FILES;
    l->max_fields = CZ_MULTIPART_DEFAULT_MAX_FIELDS;
}

static void clear_part(cz_multipart_t *p) {
    memset(&p->part, 0, sizeof(p->part));
    p->part.name.base = p->part.filename.base = EMPTY;
    p->part.filename_plain.base = p->part.content_type.base = EMPTY;
    p->part.headers = p->hdrs;
    p->data.base = EMPTY;
    p->data.len = 0;
}

void cz_multipart_reset(cz_multipart_t *p) {
    /* The body is read as if a CRLF came first, so that a body starting
     * with "--boundary" (no preamble) matches the delimiter CRLF "--"
     * boundary like every later one. */
    p->matched = 2;
    p->hlen = p->line_start = 0;
    p->nhdrs = 0;
    p->pad = 0;
    p->part_size = 0;
    p->part_limit = 0;
    p->parts = p->files = p->fields = 0;
    p->total = 0;
    p->status = 0;
    p->reason = NULL;
    p->state = ST_PREAMBLE;
    clear_part(p);
}

int cz_multipart_init(cz_multipart_t *p, cz_allocator_t *a, const char *boundary, size_t boundary_len,
                      const cz_multipart_limits_t *limits) {
    cz_multipart_limits_t d;

    memset(p, 0, sizeof(*p));
    if (boundary_len == 0 || boundary_len > CZ_MULTIPART_BOUNDARY_MAX) return -1;
    p->alloc = a;
    cz_multipart_limits_default(&d);
    if (limits) {
        if (limits->max_parts) d.max_parts = limits->max_parts;
        if (limits->max_header_bytes) d.max_header_bytes = limits->max_header_bytes;
        if (limits->max_headers) d.max_headers = limits->max_headers;
        if (limits->max_field_size) d.max_field_size = limits->max_field_size;
        if (limits->max_file_size) d.max_file_size = limits->max_file_size;
        if (limits->max_total) d.max_total = limits->max_total;
        if (limits->max_files) d.max_files = limits->max_files;
        if (limits->max_fields) d.max_fields = limits->max_fields;
        /* Files and fields both bounded: they bound the parts, one over so
         * that the part past them is read up to its headers and named. */
        if (!limits->max_parts && limits->max_files && limits->max_fields)
            d.max_parts = limits->max_files >= SIZE_MAX - limits->max_fields
                              ? SIZE_MAX
                              : limits->max_files + limits->max_fields + 1;
    }
    /* hbuf holds the raw section and its decoded values: keep 2x in size_t */
    if (d.max_header_bytes > SIZE_MAX / 4) d.max_header_bytes = SIZE_MAX / 4;
    p->limits = d;
    memcpy(p->delim, "\r\n--", 4);
    memcpy(p->delim + 4, boundary, boundary_len);
    p->dlen = boundary_len + 4;
    cz_multipart_reset(p);
    return 0;
}

void cz_multipart_destroy(cz_multipart_t *p) {
    if (p->hbuf) cz_free(p->alloc, CZ_MEM_REQUEST, p->hbuf);
    if (p->hdrs) cz_free(p->alloc, CZ_MEM_REQUEST, p->hdrs);
    p->hbuf = NULL;
    p->hdrs = NULL;
    p->hcap = p->hdrs_cap = 0;
    p->hlen = p->nhdrs = 0;
    clear_part(p);
}

/* ---- errors ------------------------------------------------------------------- */

static int fail(cz_multipart_t *p, int status, const char *reason) {
    p->status = status;
    p->reason = reason;
    p->state = ST_ERROR;
    return CZ_MULTIPART_ERROR;
}

#define OOM(p) fail((p), 500, "multipart: out of memory")

/* hbuf with room for `need` bytes (need <= 2 * max_header_bytes). */
static int hbuf_reserve(cz_multipart_t *p, size_t need) {
    size_t cap;
    char *nb;

    if (need <= p->hcap) return 0;
    cap = p->hcap ? p->hcap : HBUF_MIN;
    while (cap < need) cap *= 2;
    if (cap > 2 * p->limits.max_header_bytes)
        cap = need > 2 * p->limits.max_header_bytes ? need : 2 * p->limits.max_header_bytes;
    nb = cz_realloc(p->alloc, CZ_MEM_REQUEST, p->hbuf, cap);
    if (!nb) return -1;
    p->hbuf = nb;
    p->hcap = cap;
    return 0;
}

/* ---- part headers --------------------------------------------------------------- */

/* Checks of one complete field line hbuf[s..e) (CRLF excluded). */
static int check_line(cz_multipart_t *p, size_t s, size_t e) {
    const char *h = p->hbuf;
    const char *colon;

    if (++p->nhdrs > p->limits.max_headers) return fail(p, 413, "multipart: too many part headers");
    if (h[s] == ' ' || h[s] == '\t') return fail(p, 400, "multipart: folded part header (obs-fold)");
    colon = memchr(h + s, ':', e - s);
    if (!colon) return fail(p, 400, "multipart: part header without colon");
    for (const char *c = h + s; c < colon; c++)
        if (!is_tchar((unsigned char)*c)) return fail(p, 400, "multipart: bad part header name");
    if (colon == h + s) return fail(p, 400, "multipart: empty part header name");
    return CONTINUE;
}

/* Content-Disposition: form-data; name=...; filename=...; filename*=... */
static int parse_disposition(cz_multipart_t *p, cz_multipart_str_t v, char **w) {
    cz_multipart_part_t *part = &p->part;
    const char *s = v.base;
    size_t n = v.len, i = 0;
    int seen_name = 0, seen_fn = 0, seen_fns = 0;
    cz_multipart_str_t fns = {EMPTY, 0};
    const char *why = NULL;

    while (i < n && s[i] != ';' && s[i] != ' ' && s[i] != '\t') i++;
    if (!ieq(s, i, "form-data")) return fail(p, 400, "multipart: Content-Disposition is not form-data");
    for (;;) {
        size_t name, name_len;
        cz_multipart_str_t val;

        i = skip_ows(s, i, n);
        if (i == n) break;
        if (s[i] != ';') return fail(p, 400, "multipart: bad Content-Disposition parameters");
        i = skip_ows(s, i + 1, n);
        if (i == n) break;
        name = i;
        while (i < n && is_tchar((unsigned char)s[i])) i++;
        name_len = i - name;
        i = skip_ows(s, i, n);
        if (name_len == 0 || i == n || s[i] != '=')
            return fail(p, 400, "multipart: bad Content-Disposition parameters");
        i = skip_ows(s, i + 1, n);
        if (param_value(s, n, &i, *w, &val, &why) < 0) return fail(p, 400, why);
        if (val.base == *w) *w += val.len;
        if (ieq(s + name, name_len, "name")) {
            if (seen_name++) return fail(p, 400, "multipart: duplicate parameter in Content-Disposition");
            part->name = val;
        } else if (ieq(s + name, name_len, "filename")) {
            if (seen_fn++) return fail(p, 400, "multipart: duplicate parameter in Content-Disposition");
            part->filename_plain = val;
        } else if (ieq(s + name, name_len, "filename*")) {
            if (seen_fns++) return fail(p, 400, "multipart: duplicate parameter in Content-Disposition");
            fns = val;
        }
        /* other parameters are ignored (RFC 7578 4.2 defines no others) */
    }
    if (!seen_name) return fail(p, 400, "multipart: part without a name");
    if (seen_fns) {
        if (decode_ext_value(fns, *w, &part->filename, &why) < 0) return fail(p, 400, why);
        *w += part->filename.len;
        part->has_filename_star = 1;
    } else {
        part->filename = part->filename_plain;
    }
    part->has_filename = (uint8_t)(seen_fn || seen_fns);
    part->has_filename_plain = (uint8_t)seen_fn;
    return CONTINUE;
}

/* The blank line ended hbuf[0..hlen): views, Content-Disposition, PART_BEGIN. */
static int headers_done(cz_multipart_t *p) {
    size_t n = p->nhdrs, s = 0, k = 0;
    const cz_multipart_header_t *cd = NULL, *ctype = NULL;
    char *w;
    int rc;

    /* Decoded values go after the raw section; none is longer than its raw
     * form, so hlen more bytes are enough, and nothing moves afterwards. */
    if (hbuf_reserve(p, 2 * p->hlen + 1) < 0) return OOM(p);
    if (n > p->hdrs_cap) {
        cz_multipart_header_t *nh =
            n > SIZE_MAX / sizeof(*nh) ? NULL : cz_realloc(p->alloc, CZ_MEM_REQUEST, p->hdrs, n * sizeof(*nh));
        if (!nh) return OOM(p);
        p->hdrs = nh;
        p->hdrs_cap = n;
    }
    clear_part(p);
    while (k < n) {
        const char *line = p->hbuf + s;
        const char *eol = memchr(line, '\r', p->hlen - s); /* checked: CRLF */
        const char *colon = memchr(line, ':', (size_t)(eol - line));
        const char *vb = colon + 1, *ve = eol;
        cz_multipart_header_t *h = &p->hdrs[k++];

        while (vb < ve && (*vb == ' ' || *vb == '\t')) vb++;
        while (ve > vb && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
        h->name.base = line;
        h->name.len = (size_t)(colon - line);
        h->value.base = vb < ve ? vb : EMPTY;
        h->value.len = (size_t)(ve - vb);
        if (ieq(h->name.base, h->name.len, "content-disposition")) {
            if (cd) return fail(p, 400, "multipart: duplicate Content-Disposition in part");
            cd = h;
        } else if (ieq(h->name.base, h->name.len, "content-type")) {
            if (ctype) return fail(p, 400, "multipart: duplicate Content-Type in part");
            ctype = h;
        }
        s = (size_t)(eol - p->hbuf) + 2;
    }
    p->part.headers = n ? p->hdrs : NULL;
    p->part.num_headers = n;
    if (!cd) return fail(p, 400, "multipart: part without Content-Disposition");
    w = p->hbuf + p->hlen;
    rc = parse_disposition(p, cd->value, &w);
    if (rc != CONTINUE) return rc;
    if (ctype) p->part.content_type = ctype->value;
    /* Counted apart, as Starlette's max_files and max_fields (a form's own rules: 400). */
    if (p->part.has_filename ? ++p->files > p->limits.max_files : ++p->fields > p->limits.max_fields)
        return fail(p, 400, p->part.has_filename ? "multipart: too many files" : "multipart: too many fields");
    p->part_limit = p->part.has_filename ? p->limits.max_file_size : p->limits.max_field_size;
    p->part_size = 0;
    p->state = ST_BODY;
    return CZ_MULTIPART_PART_BEGIN;
}

/* Copy header bytes, line by line, until the blank line. */
static int on_headers(cz_multipart_t *p, const char *d, size_t n, size_t *pos) {
    size_t i = *pos;
    int rc = CONTINUE;

    while (i < n) {
        unsigned char c = (unsigned char)d[i];
        int after_cr = p->hlen > p->line_start && p->hbuf[p->hlen - 1] == '\r';

        if (p->hlen >= p->limits.max_header_bytes) {
            rc = fail(p, 413, "multipart: part header too large");
            break;
        }
        if (after_cr && c != '\n') {
            rc = fail(p, 400, "multipart: CR without LF in part header");
            break;
        }
        if (!after_cr && c == '\n') {
            rc = fail(p, 400, "multipart: bare LF in part header (CRLF required)");
            break;
        }
        if ((c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7f) {
            rc = fail(p, 400, "multipart: control character in part header");
            break;
        }
        if (hbuf_reserve(p, p->hlen + 1) < 0) {
            rc = OOM(p);
            break;
        }
        p->hbuf[p->hlen++] = (char)c;
        i++;
        if (c != '\n') continue;
        if (p->hlen - p->line_start == 2) { /* the blank line */
            rc = headers_done(p);
            break;
        }
        rc = check_line(p, p->line_start, p->hlen - 2);
        if (rc != CONTINUE) break;
        p->line_start = p->hlen;
    }
    *pos = i;
    return rc;
}

/* ---- delimiters and data ------------------------------------------------------------ */

/* CRLF "--" boundary has been consumed. */
static int on_delimiter(cz_multipart_t *p) {
    int in_part = p->state == ST_BODY;

    p->state = ST_AFTER_DELIM;
    p->pad = 0;
    return in_part ? CZ_MULTIPART_PART_END : CONTINUE;
}

/* Bytes d[0..n) that are not a delimiter: part data, or preamble (dropped;
 * its bound is checked by the caller). */
static int emit(cz_multipart_t *p, const char *d, size_t n) {
    if (p->state == ST_PREAMBLE) return CONTINUE;
    if (n > p->part_limit - p->part_size) /* a field's size is the form's rule (400, as Starlette's max_part_size) */
        return p->part.has_filename ? fail(p, 413, "multipart: file too large")
                                    : fail(p, 400, "multipart: field too large");
    p->part_size += n;
    p->data.base = d;
    p->data.len = n;
    return CZ_MULTIPART_PART_DATA;
}

/* PREAMBLE and BODY: find CRLF "--" boundary, pass on what is before it. */
static int on_data(cz_multipart_t *p, const char *d, size_t n, size_t *pos) {
    size_t i = *pos, start, end, k;
    int full = 0;

    if (p->matched) {
        /* a delimiter prefix held from the last feed: continue matching */
        k = p->matched;
        while (i < n && k < p->dlen && d[i] == p->delim[k]) {
            i++;
            k++;
        }
        *pos = i;
        if (k == p->dlen) {
            p->matched = 0;
            return on_delimiter(p);
        }
        if (i == n) {
            p->matched = k;
            return CONTINUE;
        }
        /* Not a delimiter: the held bytes are data. They equal delim[0..k)
         * (the ones matched in this feed too), so the view is the parser's
         * own copy. The mismatching byte is looked at again: it may be the
         * CR of a real delimiter (no later byte of delim is a CR, so no
         * other restart point exists). */
        p->matched = 0;
        return emit(p, p->delim, k);
    }
    start = i;
    /* The first whole delimiter (memmem skips through file data several
     * bytes at a time; a CR every 256 bytes of binary data made a memchr
     * per CR the parser's main cost); else the first CR in the last dlen-1
     * bytes whose rest is a prefix of the delimiter (held for the next feed). */
    const char *m = memmem(d + i, n - i, p->delim, p->dlen);
    if (m) {
        end = (size_t)(m - d);
        full = 1;
    } else {
        size_t tail = n - i < p->dlen - 1 ? n - i : p->dlen - 1;
        const char *cr = memchr(d + n - tail, '\r', tail);
        end = n;
        while (cr) {
            size_t r = (size_t)(cr - d), j;
            for (j = r, k = 0; j < n && d[j] == p->delim[k]; j++, k++);
            if (j == n) {
                end = r;
                break;
            }
            cr = memchr(cr + 1, '\r', n - r - 1);
        }
    }
    if (end > start) {
        *pos = end;
        return emit(p, d + start, end - start);
    }
    if (full) {
        *pos = start + p->dlen;
        return on_delimiter(p);
    }
    if (start < n) { /* a delimiter prefix up to the end of the input */
        p->matched = n - start;
        *pos = n;
    }
    return CONTINUE;
}

/* The bytes after a boundary, one at a time (a few per part). */
static int on_boundary_line(cz_multipart_t *p, unsigned char c) {
    switch (p->state) {
    case ST_AFTER_DELIM:
    case ST_PAD:
        if (c == '-' && p->state == ST_AFTER_DELIM) {
            p->state = ST_CLOSE_DASH;
            return CONTINUE;
        }
        if (c == ' ' || c == '\t') {
            if (++p->pad > p->limits.max_header_bytes)
                return fail(p, 400, "multipart: too much padding after a boundary");
            p->state = ST_PAD;
            return CONTINUE;
        }
        if (c == '\r') {
            p->state = ST_DELIM_LF;
            return CONTINUE;
        }
        if (c == '\n') return fail(p, 400, "multipart: bare LF after a boundary (CRLF required)");
        return fail(p, 400, "multipart: boundary followed by other text");
    case ST_DELIM_LF:
        if (c != '\n') return fail(p, 400, "multipart: boundary line not ended by CRLF");
        if (++p->parts > p->limits.max_parts) return fail(p, 413, "multipart: too many parts");
        p->state = ST_HEADERS;
        p->hlen = p->line_start = 0;
        p->nhdrs = 0;
        /* hbuf is about to be overwritten: the last part's views go */
        clear_part(p);
        return CONTINUE;
    default: /* ST_CLOSE_DASH */
        if (c != '-') return fail(p, 400, "multipart: boundary followed by other text");
        p->state = ST_DONE;
        return CZ_MULTIPART_DONE;
    }
}

cz_multipart_event_t cz_multipart_feed(cz_multipart_t *p, const char *data, size_t len, size_t *consumed) {
    size_t pos = 0, n = len;
    int rc = CONTINUE;

    *consumed = 0;
    if (p->state == ST_ERROR) return CZ_MULTIPART_ERROR;
    if (p->state == ST_DONE) {
        p->total += len; /* the epilogue, ignored */
        *consumed = len;
        return CZ_MULTIPART_DONE;
    }
    /* Bytes past max_total are not looked at: an error once reached. */
    if (p->limits.max_total - p->total < n) n = (size_t)(p->limits.max_total - p->total);
    while (rc == CONTINUE && pos < n) {
        switch (p->state) {
        case ST_PREAMBLE:
            rc = on_data(p, data, n, &pos);
            /* The preamble (what comes before the CRLF of the first
             * delimiter) is at most max_header_bytes. Held bytes may be that
             * CRLF: they do not count yet, so every split decides alike. */
            if (rc == CONTINUE && p->state == ST_PREAMBLE &&
                p->total + pos > (uint64_t)p->limits.max_header_bytes + p->matched)
                rc = fail(p, 400, "multipart: no boundary line at the start of the body");
            break;
        case ST_BODY: rc = on_data(p, data, n, &pos); break;
        case ST_HEADERS: rc = on_headers(p, data, n, &pos); break;
        default:
            rc = on_boundary_line(p, (unsigned char)data[pos]);
            if (p->state != ST_ERROR) pos++;
            break;
        }
    }
    p->total += pos;
    *consumed = pos;
    if (rc == CONTINUE) {
        if (n < len) return (cz_multipart_event_t)fail(p, 413, "multipart: body too large");
        return CZ_MULTIPART_NEED_MORE;
    }
    if (rc == CZ_MULTIPART_DONE && pos < len) {
        /* the epilogue in this feed: consumed and ignored */
        p->total += len - pos;
        *consumed = len;
    }
    return (cz_multipart_event_t)rc;
}

cz_multipart_event_t cz_multipart_finish(cz_multipart_t *p) {
    switch (p->state) {
    case ST_DONE: return CZ_MULTIPART_DONE;
    case ST_ERROR: return CZ_MULTIPART_ERROR;
    case ST_PREAMBLE: return (cz_multipart_event_t)fail(p, 400, "multipart: no boundary line in the body");
    case ST_HEADERS:
        if (p->hlen == 0) /* "--boundary" CRLF, then nothing */
            return (cz_multipart_event_t)fail(p, 400, "multipart: missing closing boundary");
        return (cz_multipart_event_t)fail(p, 400, "multipart: body ends inside part headers");
    case ST_BODY:
    case ST_CLOSE_DASH: return (cz_multipart_event_t)fail(p, 400, "multipart: missing closing boundary");
    default: return (cz_multipart_event_t)fail(p, 400, "multipart: body ends inside a boundary line");
    }
}

const cz_multipart_part_t *cz_multipart_part(const cz_multipart_t *p) {
    return &p->part;
}

cz_multipart_str_t cz_multipart_data(const cz_multipart_t *p) {
    return p->data;
}

size_t cz_multipart_held(const cz_multipart_t *p) {
    /* preamble bytes are dropped, never handed out: none held */
    return p->state == ST_BODY ? p->matched : 0;
}

int cz_multipart_status(const cz_multipart_t *p) {
    return p->status;
}

const char *cz_multipart_reason(const cz_multipart_t *p) {
    return p->reason;
}
