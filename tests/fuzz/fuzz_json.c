/*
 * fuzz_json — libFuzzer harness for cz_json_read (csrc/json), the
 * tokenizer and validator under request.json(). No Python: the reader is
 * Python-free, and the Python values built from its tokens are checked
 * against json.loads by tests/framework/test_json_read.py.
 *
 * Input: the document, as is.
 *
 * Checked on every input:
 *   - acceptance: the reader ends with CZ_JSON_T_END exactly when a
 *     reference parser written independently here (recursive descent over
 *     the bytes, its own UTF-8 decoder, json's encoding detection) accepts
 *     the input, and stops with CZ_JSON_EDEPTH exactly when the reference
 *     finds a 513th level of nesting first; error_at is within the input;
 *   - tokens: arrays and objects balance, keys come only where an object
 *     expects one, number text matches json's number pattern and INT has
 *     neither fraction nor exponent; a string's `chars` code points decode
 *     with cz_json_string_next to exactly its bytes, each a code point
 *     (<= U+10FFFF), maxchar as the header defines it, `escaped` exactly when
 *     there is a backslash;
 *   - round trip: an accepted document written back canonically (no
 *     whitespace, strings with only the necessary escapes, surrogates as
 *     raw UTF-8 so they do not pair) is accepted again and written back to
 *     the same bytes.
 */
#include "fuzz_common.h"

#include "cz_json_read.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- the reference ------------------------------------------------------------ */

enum { REF_OK, REF_DEPTH, REF_OTHER };

typedef struct {
    const uint8_t *p, *e;
    int depth_error;
} ref_t;

static void ref_ws(ref_t *r) {
    while (r->p < r->e && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r')) r->p++;
}

static int ref_hex(uint8_t c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* One UTF-8 sequence by counting the lead byte's ones; surrogates allowed. */
static int ref_utf8(ref_t *r) {
    uint8_t c = *r->p;
    int n = 0;
    while (n < 8 && (c & (0x80 >> n))) n++;
    if (n < 2 || n > 4 || r->e - r->p < n) return 0;
    uint32_t cp = c & (0x7F >> n);
    for (int i = 1; i < n; i++) {
        if ((r->p[i] >> 6) != 2) return 0;
        cp = (cp << 6) | (r->p[i] & 0x3F);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || cp > 0x10FFFF) return 0;
    r->p += n;
    return 1;
}

static int ref_string(ref_t *r) {
    r->p++; /* the quote */
    for (;;) {
        if (r->p >= r->e) return 0;
        uint8_t c = *r->p;
        if (c == '"') {
            r->p++;
            return 1;
        }
        if (c < 0x20) return 0;
        if (c == '\\') {
            if (r->e - r->p < 2) return 0;
            c = r->p[1];
            if (c == 'u') {
                if (r->e - r->p < 6) return 0;
                for (int i = 2; i < 6; i++)
                    if (!ref_hex(r->p[i])) return 0;
                r->p += 6;
            } else if (c && strchr("\"\\/bfnrt", c)) {
                r->p += 2;
            } else {
                return 0;
            }
        } else if (c >= 0x80) {
            if (!ref_utf8(r)) return 0;
        } else {
            r->p++;
        }
    }
}

static int ref_digit(ref_t *r) {
    return r->p < r->e && *r->p >= '0' && *r->p <= '9';
}

static int ref_word(ref_t *r, const char *w) {
    size_t n = strlen(w);
    if ((size_t)(r->e - r->p) < n || memcmp(r->p, w, n) != 0) return 0;
    r->p += n;
    return 1;
}

static int ref_value(ref_t *r, int level);

static int ref_container(ref_t *r, int level, uint8_t close) {
    if (level > (int)CZ_JSON_MAX_DEPTH) {
        r->depth_error = 1;
        return 0;
    }
    r->p++;
    ref_ws(r);
    if (r->p < r->e && *r->p == close) {
        r->p++;
        return 1;
    }
    for (;;) {
        if (close == '}') {
            ref_ws(r);
            if (r->p >= r->e || *r->p != '"' || !ref_string(r)) return 0;
            ref_ws(r);
            if (r->p >= r->e || *r->p != ':') return 0;
            r->p++;
        }
        if (!ref_value(r, level)) return 0;
        ref_ws(r);
        if (r->p >= r->e) return 0;
        if (*r->p == close) {
            r->p++;
            return 1;
        }
        if (*r->p != ',') return 0;
        r->p++;
    }
}

static int ref_value(ref_t *r, int level) {
    ref_ws(r);
    if (r->p >= r->e) return 0;
    switch (*r->p) {
    case '[': return ref_container(r, level + 1, ']');
    case '{': return ref_container(r, level + 1, '}');
    case '"': return ref_string(r);
    case 't': return ref_word(r, "true");
    case 'f': return ref_word(r, "false");
    case 'n': return ref_word(r, "null");
    case 'N': return ref_word(r, "NaN");
    case 'I': return ref_word(r, "Infinity");
    default: break;
    }
    if (ref_word(r, "-Infinity")) return 1;
    if (*r->p == '-') r->p++;
    if (!ref_digit(r)) return 0;
    if (*r->p++ != '0')
        while (ref_digit(r)) r->p++;
    if (r->e - r->p >= 2 && r->p[0] == '.' && r->p[1] >= '0' && r->p[1] <= '9') {
        r->p++;
        while (ref_digit(r)) r->p++;
    }
    if (r->p < r->e && (*r->p == 'e' || *r->p == 'E')) {
        const uint8_t *back = r->p;
        r->p++;
        if (r->p < r->e && (*r->p == '+' || *r->p == '-')) r->p++;
        if (!ref_digit(r)) {
            r->p = back; /* json's pattern gives the exponent up */
        } else {
            while (ref_digit(r)) r->p++;
        }
    }
    return 1;
}

static int ref_read(const uint8_t *d, size_t n) {
    /* json.detect_encoding, written from its documentation. */
    if (n >= 4 && (!memcmp(d, "\x00\x00\xfe\xff", 4) || !memcmp(d, "\xff\xfe\x00\x00", 4))) return REF_OTHER;
    if (n >= 2 && (!memcmp(d, "\xfe\xff", 2) || !memcmp(d, "\xff\xfe", 2))) return REF_OTHER;
    ref_t r = {d, d + n, 0};
    if (n >= 3 && !memcmp(d, "\xef\xbb\xbf", 3)) {
        r.p += 3;
    } else if ((n >= 4 || n == 2) && (d[0] == 0 || d[1] == 0)) {
        return REF_OTHER;
    }
    if (!ref_value(&r, 0)) return r.depth_error ? REF_DEPTH : REF_OTHER;
    ref_ws(&r);
    return r.p == r.e ? REF_OK : REF_OTHER;
}

/* ---- the reader, checked, and written back canonically ---------------------------- */

typedef struct {
    uint8_t *buf;
    size_t len, cap;
} out_t;

static void put(out_t *o, const void *s, size_t n) {
    FUZZ_CHECK(o->len + n <= o->cap);
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static void put_cp(out_t *o, uint32_t c) {
    uint8_t b[6];
    size_t n;
    if (c == '"' || c == '\\') {
        b[0] = '\\', b[1] = (uint8_t)c, n = 2;
    } else if (c < 0x20) {
        static const char hex[] = "0123456789abcdef";
        memcpy(b, "\\u00", 4);
        b[4] = (uint8_t)hex[c >> 4], b[5] = (uint8_t)hex[c & 15], n = 6;
    } else if (c < 0x80) {
        b[0] = (uint8_t)c, n = 1;
    } else if (c < 0x800) {
        b[0] = (uint8_t)(0xC0 | (c >> 6)), b[1] = (uint8_t)(0x80 | (c & 0x3F)), n = 2;
    } else if (c < 0x10000) { /* surrogates too: raw, so that they never pair */
        b[0] = (uint8_t)(0xE0 | (c >> 12)), b[1] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
        b[2] = (uint8_t)(0x80 | (c & 0x3F)), n = 3;
    } else {
        b[0] = (uint8_t)(0xF0 | (c >> 18)), b[1] = (uint8_t)(0x80 | ((c >> 12) & 0x3F));
        b[2] = (uint8_t)(0x80 | ((c >> 6) & 0x3F)), b[3] = (uint8_t)(0x80 | (c & 0x3F)), n = 4;
    }
    put(o, b, n);
}

static void check_string(const cz_json_token_t *t, out_t *o) {
    const unsigned char *p = t->s, *end = t->s + t->len;
    uint32_t max = 0;
    FUZZ_CHECK((memchr(t->s, '\\', t->len) != NULL) == (t->escaped != 0));
    put(o, "\"", 1);
    for (size_t i = 0; i < t->chars; i++) {
        FUZZ_CHECK(p < end);
        uint32_t c = cz_json_string_next(&p);
        FUZZ_CHECK(p <= end && c <= 0x10FFFF);
        if (c > max) max = c;
        put_cp(o, c);
    }
    FUZZ_CHECK(p == end);
    FUZZ_CHECK(t->maxchar == (t->chars == 0 ? 0 : max < 0x80 ? 0x7F : max));
    put(o, "\"", 1);
}

/* json's number pattern, matched exactly by the token's text. */
static void check_number(const cz_json_token_t *t) {
    const unsigned char *p = t->s, *e = t->s + t->len;
    int frac = 0, exp = 0;
    if (p < e && *p == '-') p++;
    FUZZ_CHECK(p < e && *p >= '0' && *p <= '9');
    if (*p == '0') {
        p++;
    } else {
        while (p < e && *p >= '0' && *p <= '9') p++;
    }
    if (p < e && *p == '.') {
        p++, frac = 1;
        FUZZ_CHECK(p < e && *p >= '0' && *p <= '9');
        while (p < e && *p >= '0' && *p <= '9') p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++, exp = 1;
        if (p < e && (*p == '+' || *p == '-')) p++;
        FUZZ_CHECK(p < e && *p >= '0' && *p <= '9');
        while (p < e && *p >= '0' && *p <= '9') p++;
    }
    FUZZ_CHECK(p == e);
    FUZZ_CHECK((t->kind == CZ_JSON_T_FLOAT) == (frac || exp));
}

/* Reads d; returns the final token kind and the reader's error; writes the
 * document canonically to o when it is accepted. */
static cz_json_token_kind_t walk(const uint8_t *d, size_t n, out_t *o, cz_json_error_t *error) {
    cz_json_reader_t r;
    cz_json_token_t t;
    uint8_t first[CZ_JSON_MAX_DEPTH + 1], object[CZ_JSON_MAX_DEPTH + 1];
    unsigned depth = 0;
    int after_key = 0, tokens = 0;
    cz_json_read_init(&r, d, n);
    first[0] = 1;
    object[0] = 0;
    for (;;) {
        cz_json_token_kind_t k = cz_json_read_next(&r, &t);
        if (k == CZ_JSON_T_END || k == CZ_JSON_T_ERROR) {
            *error = r.error;
            FUZZ_CHECK((k == CZ_JSON_T_ERROR) == (r.error != CZ_JSON_EOK));
            FUZZ_CHECK(r.error_at <= n);
            if (k == CZ_JSON_T_END) FUZZ_CHECK(depth == 0 && !after_key && tokens > 0);
            /* Repeats itself. */
            FUZZ_CHECK(cz_json_read_next(&r, &t) == k && r.error == *error);
            return k;
        }
        tokens++;
        int closing = k == CZ_JSON_T_OBJECT_END || k == CZ_JSON_T_ARRAY_END;
        if (k == CZ_JSON_T_KEY) {
            FUZZ_CHECK(depth > 0 && object[depth] && !after_key);
        } else if (closing) {
            FUZZ_CHECK(depth > 0 && !after_key && object[depth] == (k == CZ_JSON_T_OBJECT_END));
        } else {
            FUZZ_CHECK(depth == 0 ? tokens == 1 : (object[depth] ? after_key : 1));
        }
        /* The comma before a key, or before an array item. */
        if (!closing && !after_key && depth > 0) {
            if (!first[depth]) put(o, ",", 1);
            first[depth] = 0;
        }
        after_key = 0;
        switch (k) {
        case CZ_JSON_T_OBJECT:
        case CZ_JSON_T_ARRAY:
            FUZZ_CHECK(depth < CZ_JSON_MAX_DEPTH);
            depth++;
            first[depth] = 1;
            object[depth] = k == CZ_JSON_T_OBJECT;
            put(o, k == CZ_JSON_T_OBJECT ? "{" : "[", 1);
            break;
        case CZ_JSON_T_OBJECT_END:
        case CZ_JSON_T_ARRAY_END:
            depth--;
            put(o, k == CZ_JSON_T_OBJECT_END ? "}" : "]", 1);
            break;
        case CZ_JSON_T_KEY:
            check_string(&t, o);
            put(o, ":", 1);
            after_key = 1;
            break;
        case CZ_JSON_T_STRING: check_string(&t, o); break;
        case CZ_JSON_T_INT:
        case CZ_JSON_T_FLOAT:
            check_number(&t);
            put(o, t.s, t.len);
            break;
        case CZ_JSON_T_TRUE: put(o, "true", 4); break;
        case CZ_JSON_T_FALSE: put(o, "false", 5); break;
        case CZ_JSON_T_NULL: put(o, "null", 4); break;
        case CZ_JSON_T_NAN: put(o, "NaN", 3); break;
        case CZ_JSON_T_INFINITY: put(o, "Infinity", 8); break;
        case CZ_JSON_T_NEG_INFINITY: put(o, "-Infinity", 9); break;
        default: FUZZ_CHECK(!"unknown token");
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* Escapes only ever grow a code point's bytes threefold ("\n" -> "\u000a"). */
    out_t one = {xmalloc(3 * size + 16), 0, 3 * size + 16};
    cz_json_error_t error;
    cz_json_token_kind_t k = walk(data, size, &one, &error);
    int ref = ref_read(data, size);
    FUZZ_CHECK((k == CZ_JSON_T_END) == (ref == REF_OK));
    FUZZ_CHECK((error == CZ_JSON_EDEPTH) == (ref == REF_DEPTH));
    FUZZ_CHECK(cz_json_read_strerror(error) != NULL);
    if (k == CZ_JSON_T_END) {
        uint8_t *copy = xmemdup(one.buf, one.len); /* exactly sized: ASan sees any over-read */
        out_t two = {xmalloc(3 * one.len + 16), 0, 3 * one.len + 16};
        FUZZ_CHECK(walk(copy, one.len, &two, &error) == CZ_JSON_T_END);
        FUZZ_CHECK(two.len == one.len && memcmp(two.buf, one.buf, one.len) == 0);
        free(two.buf);
        free(copy);
    }
    free(one.buf);
    return 0;
}
