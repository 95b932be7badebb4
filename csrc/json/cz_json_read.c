#include "cz_json_read.h"

#include <string.h>

/* Where the reader is in the grammar. */
enum {
    S_VALUE,      /* a value: the document's, an array item after ',', or an object member's after ':' */
    S_FIRST_ITEM, /* after '[': a value or ']' */
    S_FIRST_KEY,  /* after '{': a key or '}' */
    S_AFTER,      /* after a value: ',' or the closing bracket, or the end at level 0 */
    S_DONE,       /* CZ_JSON_T_END returned */
    S_FAILED      /* CZ_JSON_T_ERROR returned */
};

/* Bytes a string scan stops at: '"', '\\', the controls, and any byte >= 0x80
 * (UTF-8 is decoded and checked one sequence at a time). */
static const unsigned char STRING_STOP[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* The four hex digits at p (at least 4 bytes readable), or -1. */
static long hex4(const unsigned char *p) {
    int a = hexval(p[0]), b = hexval(p[1]), c = hexval(p[2]), d = hexval(p[3]);
    if ((a | b | c | d) < 0) return -1;
    return ((long)a << 12) | ((long)b << 8) | ((long)c << 4) | (long)d;
}

static int is_high(uint32_t c) {
    return c >= 0xD800 && c <= 0xDBFF;
}

static int is_low(uint32_t c) {
    return c >= 0xDC00 && c <= 0xDFFF;
}

/* Length of the UTF-8 sequence at p (< end), with its code point in *cp, or 0
 * when it is not UTF-8. Surrogates (ED A0..BF xx) pass, as Python's
 * 'surrogatepass' decoding lets them. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end, uint32_t *cp) {
    unsigned char c = p[0];
    size_t avail = (size_t)(end - p);
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        if (avail < 2 || (p[1] & 0xC0) != 0x80) return 0;
        *cp = ((uint32_t)(c & 0x1F) << 6) | (p[1] & 0x3F);
        return 2;
    }
    if (c >= 0xE0 && c <= 0xEF) {
        if (avail < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && p[1] < 0xA0) return 0; /* overlong */
        *cp = ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (avail < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) return 0;
        if (c == 0xF0 && p[1] < 0x90) return 0; /* overlong */
        if (c == 0xF4 && p[1] > 0x8F) return 0; /* beyond U+10FFFF */
        *cp = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(p[1] & 0x3F) << 12) | ((uint32_t)(p[2] & 0x3F) << 6) |
              (p[3] & 0x3F);
        return 4;
    }
    return 0;
}

static cz_json_token_kind_t fail(cz_json_reader_t *r, cz_json_error_t e, const unsigned char *at) {
    r->state = S_FAILED;
    r->error = e;
    r->error_at = (size_t)(at - r->begin);
    return CZ_JSON_T_ERROR;
}

void cz_json_read_init(cz_json_reader_t *r, const void *data, size_t len) {
    memset(r, 0, sizeof *r);
    const unsigned char *b = data ? data : (const void *)""; /* no arithmetic on NULL, even + 0 */
    if (!data) len = 0;
    r->begin = r->p = b;
    r->end = b + len;
    r->state = S_VALUE;
    /* json.detect_encoding: UTF-32 and UTF-16 byte order marks, then a NUL
     * among the first two bytes (of 4 or more, or of exactly 2). */
    int wide = 0;
    if (len >= 4 && ((b[0] == 0 && b[1] == 0 && b[2] == 0xFE && b[3] == 0xFF) ||
                     (b[0] == 0xFF && b[1] == 0xFE && b[2] == 0 && b[3] == 0)))
        wide = 1;
    else if (len >= 2 && ((b[0] == 0xFE && b[1] == 0xFF) || (b[0] == 0xFF && b[1] == 0xFE))) wide = 1;
    else if (len >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF) r->p += 3; /* utf-8-sig */
    else if ((len >= 4 || len == 2) && (b[0] == 0 || b[1] == 0)) wide = 1;
    if (wide) fail(r, CZ_JSON_EENCODING, b);
}

static const unsigned char *skip_ws(const unsigned char *p, const unsigned char *end) {
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
    return p;
}

/* The string whose opening quote is at r->p. */
static cz_json_token_kind_t scan_string(cz_json_reader_t *r, cz_json_token_t *t, cz_json_token_kind_t kind) {
    const unsigned char *p = r->p + 1, *end = r->end;
    size_t chars = 0;
    uint32_t maxchar = 0;
    int escaped = 0;
    t->s = p;
    for (;;) {
        const unsigned char *run = p;
        while (p < end && !STRING_STOP[*p]) p++;
        if (p > run) {
            /* ASCII: only the str kind depends on maxchar, and it is the same for any value below 0x80. */
            chars += (size_t)(p - run);
            if (maxchar < 0x7F) maxchar = 0x7F;
        }
        if (p >= end) return fail(r, CZ_JSON_ESYNTAX, end); /* unterminated */
        unsigned char c = *p;
        if (c == '"') break;
        if (c == '\\') {
            escaped = 1;
            if (end - p < 2) return fail(r, CZ_JSON_ESYNTAX, end);
            uint32_t cp;
            switch (p[1]) {
            case '"':
            case '\\':
            case '/':
                cp = p[1];
                p += 2;
                break;
            case 'b':
                cp = '\b';
                p += 2;
                break;
            case 'f':
                cp = '\f';
                p += 2;
                break;
            case 'n':
                cp = '\n';
                p += 2;
                break;
            case 'r':
                cp = '\r';
                p += 2;
                break;
            case 't':
                cp = '\t';
                p += 2;
                break;
            case 'u': {
                long h = end - p >= 6 ? hex4(p + 2) : -1;
                if (h < 0) return fail(r, CZ_JSON_ESYNTAX, p);
                cp = (uint32_t)h;
                p += 6;
                /* A high surrogate escape followed by a low one is one code point. */
                if (is_high(cp) && end - p >= 6 && p[0] == '\\' && p[1] == 'u') {
                    long lo = hex4(p + 2);
                    if (lo < 0) return fail(r, CZ_JSON_ESYNTAX, p);
                    if (is_low((uint32_t)lo)) {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
                        p += 6;
                    }
                }
                break;
            }
            default: return fail(r, CZ_JSON_ESYNTAX, p);
            }
            chars++;
            if (cp < 0x80) cp = 0x7F; /* "\u0000" included: for maxchar, all ASCII is 0x7F */
            if (cp > maxchar) maxchar = cp;
            continue;
        }
        if (c < 0x20) return fail(r, CZ_JSON_ESYNTAX, p); /* a control character */
        uint32_t cp;
        size_t n = utf8_seq(p, end, &cp);
        if (n == 0) return fail(r, CZ_JSON_EUTF8, p);
        p += n;
        chars++;
        if (cp > maxchar) maxchar = cp;
    }
    t->kind = kind;
    t->len = (size_t)(p - t->s);
    t->chars = chars;
    t->maxchar = maxchar;
    t->escaped = escaped;
    r->p = p + 1;
    return kind;
}

static int is_digit(unsigned char c) {
    return c >= '0' && c <= '9';
}

/* The number (or -Infinity) at r->p, whose first byte is '-' or a digit. */
static cz_json_token_kind_t scan_number(cz_json_reader_t *r, cz_json_token_t *t) {
    const unsigned char *p = r->p, *end = r->end, *start = p;
    cz_json_token_kind_t kind = CZ_JSON_T_INT;
    if (*p == '-') {
        p++;
        if (end - p >= 8 && memcmp(p, "Infinity", 8) == 0) {
            r->p = p + 8;
            return t->kind = CZ_JSON_T_NEG_INFINITY;
        }
        if (p >= end || !is_digit(*p)) return fail(r, CZ_JSON_ESYNTAX, start);
    }
    if (*p == '0') {
        p++; /* one digit only: "01" is 0 followed by an error */
    } else {
        while (p < end && is_digit(*p)) p++;
    }
    if (end - p >= 2 && p[0] == '.' && is_digit(p[1])) {
        p += 2;
        while (p < end && is_digit(*p)) p++;
        kind = CZ_JSON_T_FLOAT;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        const unsigned char *q = p + 1;
        if (q < end && (*q == '+' || *q == '-')) q++;
        if (q < end && is_digit(*q)) {
            while (q < end && is_digit(*q)) q++;
            p = q;
            kind = CZ_JSON_T_FLOAT;
        } /* else the number ends before the 'e', as json's pattern backtracks */
    }
    t->kind = kind;
    t->s = start;
    t->len = (size_t)(p - start);
    r->p = p;
    return kind;
}

static cz_json_token_kind_t literal(cz_json_reader_t *r, cz_json_token_t *t, const char *word, size_t n,
                                    cz_json_token_kind_t kind) {
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0) return fail(r, CZ_JSON_ESYNTAX, r->p);
    r->p += n;
    return t->kind = kind;
}

static int in_object(const cz_json_reader_t *r) {
    unsigned d = r->depth - 1;
    return (r->objects[d >> 3] >> (d & 7)) & 1;
}

static cz_json_token_kind_t open_container(cz_json_reader_t *r, cz_json_token_t *t, int object) {
    if (r->depth >= CZ_JSON_MAX_DEPTH) return fail(r, CZ_JSON_EDEPTH, r->p);
    unsigned d = r->depth++;
    if (object) r->objects[d >> 3] |= (uint8_t)(1u << (d & 7));
    else r->objects[d >> 3] &= (uint8_t)~(1u << (d & 7));
    r->p++;
    r->state = object ? S_FIRST_KEY : S_FIRST_ITEM;
    return t->kind = object ? CZ_JSON_T_OBJECT : CZ_JSON_T_ARRAY;
}

static cz_json_token_kind_t close_container(cz_json_reader_t *r, cz_json_token_t *t) {
    int object = in_object(r);
    r->depth--;
    r->p++;
    r->state = S_AFTER;
    return t->kind = object ? CZ_JSON_T_OBJECT_END : CZ_JSON_T_ARRAY_END;
}

cz_json_token_kind_t cz_json_read_next(cz_json_reader_t *r, cz_json_token_t *t) {
    const unsigned char *end = r->end;
    switch (r->state) {
    case S_DONE: return t->kind = CZ_JSON_T_END;
    case S_FAILED: return t->kind = CZ_JSON_T_ERROR;
    case S_AFTER:
        r->p = skip_ws(r->p, end);
        if (r->depth == 0) {
            if (r->p != end) return fail(r, CZ_JSON_ESYNTAX, r->p); /* extra data */
            r->state = S_DONE;
            return t->kind = CZ_JSON_T_END;
        }
        if (r->p == end) return fail(r, CZ_JSON_ESYNTAX, end);
        if (*r->p == (in_object(r) ? '}' : ']')) return close_container(r, t);
        if (*r->p != ',') return fail(r, CZ_JSON_ESYNTAX, r->p);
        r->p++;
        if (in_object(r)) goto key;
        goto value;
    case S_FIRST_KEY:
        r->p = skip_ws(r->p, end);
        if (r->p < end && *r->p == '}') return close_container(r, t);
        goto key;
    case S_FIRST_ITEM:
        r->p = skip_ws(r->p, end);
        if (r->p < end && *r->p == ']') return close_container(r, t);
        goto value;
    default: goto value;
    }

key:
    r->p = skip_ws(r->p, end);
    if (r->p == end || *r->p != '"') return fail(r, CZ_JSON_ESYNTAX, r->p);
    if (scan_string(r, t, CZ_JSON_T_KEY) == CZ_JSON_T_ERROR) return CZ_JSON_T_ERROR;
    r->p = skip_ws(r->p, end);
    if (r->p == end || *r->p != ':') return fail(r, CZ_JSON_ESYNTAX, r->p);
    r->p++;
    r->state = S_VALUE;
    return CZ_JSON_T_KEY;

value:
    r->p = skip_ws(r->p, end);
    if (r->p == end) return fail(r, CZ_JSON_ESYNTAX, end);
    r->state = S_AFTER;
    switch (*r->p) {
    case '{': return open_container(r, t, 1);
    case '[': return open_container(r, t, 0);
    case '"': return scan_string(r, t, CZ_JSON_T_STRING);
    case '-':
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9': return scan_number(r, t);
    case 't': return literal(r, t, "true", 4, CZ_JSON_T_TRUE);
    case 'f': return literal(r, t, "false", 5, CZ_JSON_T_FALSE);
    case 'n': return literal(r, t, "null", 4, CZ_JSON_T_NULL);
    case 'N': return literal(r, t, "NaN", 3, CZ_JSON_T_NAN);
    case 'I': return literal(r, t, "Infinity", 8, CZ_JSON_T_INFINITY);
    default: return fail(r, CZ_JSON_ESYNTAX, r->p);
    }
}

uint32_t cz_json_string_next(const unsigned char **pp) {
    const unsigned char *p = *pp;
    uint32_t cp;
    if (*p == '\\') {
        switch (p[1]) {
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
            cp = (uint32_t)hex4(p + 2);
            /* The reader checked the pair: a low surrogate escape after a high
             * one belongs to it. The closing quote guarantees 6 bytes here
             * whenever p[6] is a backslash. */
            if (is_high(cp) && p[6] == '\\' && p[7] == 'u') {
                long lo = hex4(p + 8);
                if (lo >= 0 && is_low((uint32_t)lo)) {
                    *pp = p + 12;
                    return 0x10000 + ((cp - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
                }
            }
            *pp = p + 6;
            return cp;
        default: cp = p[1]; break; /* '"', '\\', '/' */
        }
        *pp = p + 2;
        return cp;
    }
    if (*p < 0x80) {
        *pp = p + 1;
        return *p;
    }
    /* Checked UTF-8: the lead byte gives the length. */
    if (*p >= 0xF0) {
        cp = ((uint32_t)(p[0] & 0x07) << 18) | ((uint32_t)(p[1] & 0x3F) << 12) | ((uint32_t)(p[2] & 0x3F) << 6) |
             (p[3] & 0x3F);
        *pp = p + 4;
    } else if (*p >= 0xE0) {
        cp = ((uint32_t)(p[0] & 0x0F) << 12) | ((uint32_t)(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
        *pp = p + 3;
    } else {
        cp = ((uint32_t)(p[0] & 0x1F) << 6) | (p[1] & 0x3F);
        *pp = p + 2;
    }
    return cp;
}

const char *cz_json_read_strerror(cz_json_error_t error) {
    switch (error) {
    case CZ_JSON_EOK: return "";
    case CZ_JSON_ESYNTAX: return "not JSON";
    case CZ_JSON_EUTF8: return "a string is not valid UTF-8";
    case CZ_JSON_EDEPTH: return "arrays and objects nested deeper than 512 levels";
    case CZ_JSON_EENCODING: return "UTF-16 or UTF-32 input";
    }
    return "unknown error";
}
