/*
 * Unit tests of csrc/json/cz_json_read (cz_json_read.h): token streams,
 * where and why documents are refused, string decoding (escapes, surrogate
 * pairs, lone surrogates, UTF-8), the nesting limit and encoding detection.
 *
 * Plain C: CHECK counts; the last line is "N passed, M failed"; the exit
 * status is non-zero when anything failed.
 */
#include "check.h"
#include "cz_json_read.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The tokens of a document as letters: { } [ ] k(ey) s(tring) i(nt) f(loat)
 * t(rue) F(alse) n(ull) N(aN) I(nfinity) M(inus infinity), then E (end) or
 * X (error). The input is copied to an exactly sized buffer. */
static void tokens(const char *doc, size_t len, char *out, size_t cap, cz_json_reader_t *r) {
    static const char letter[] = {'E', 'X', '{', '}', '[', ']', 'k', 's', 'i', 'f', 't', 'F', 'n', 'N', 'I', 'M'};
    char *copy = malloc(len ? len : 1);
    memcpy(copy, doc, len);
    cz_json_token_t t;
    size_t n = 0;
    cz_json_read_init(r, copy, len);
    for (;;) {
        cz_json_token_kind_t k = cz_json_read_next(r, &t);
        if (n + 1 < cap) out[n++] = letter[k];
        if (k == CZ_JSON_T_END || k == CZ_JSON_T_ERROR) break;
    }
    out[n] = '\0';
    free(copy);
}

static void test_token_streams(void) {
    static const struct {
        const char *doc;
        const char *want;
        cz_json_error_t error;
        size_t at;
    } rows[] = {
        {"0", "iE", CZ_JSON_EOK, 0},
        {" [1, 2.5, -3e2] ", "[iff]E", CZ_JSON_EOK, 0},
        {"{\"a\": {\"b\": []}, \"c\": null}", "{k{k[]}kn}E", CZ_JSON_EOK, 0},
        {"[true,false,null,NaN,Infinity,-Infinity]", "[tFnNIM]E", CZ_JSON_EOK, 0},
        {"\xef\xbb\xbf\"x\"", "sE", CZ_JSON_EOK, 0},
        {"", "X", CZ_JSON_ESYNTAX, 0},
        {"[1,]", "[iX", CZ_JSON_ESYNTAX, 3},
        {"{\"a\":1,}", "{kiX", CZ_JSON_ESYNTAX, 7},
        {"01", "iX", CZ_JSON_ESYNTAX, 1},
        {"1.", "iX", CZ_JSON_ESYNTAX, 1},
        {"1e+", "iX", CZ_JSON_ESYNTAX, 1},
        {"-", "X", CZ_JSON_ESYNTAX, 0},
        {"+1", "X", CZ_JSON_ESYNTAX, 0},
        {"[1 2]", "[iX", CZ_JSON_ESYNTAX, 3},
        {"{\"a\" 1}", "{X", CZ_JSON_ESYNTAX, 5},
        {"{'a':1}", "{X", CZ_JSON_ESYNTAX, 1},
        {"/**/1", "X", CZ_JSON_ESYNTAX, 0},
        {"\"a\nb\"", "X", CZ_JSON_ESYNTAX, 2},
        {"\"\\x\"", "X", CZ_JSON_ESYNTAX, 1},
        {"\"\\u12g4\"", "X", CZ_JSON_ESYNTAX, 1},
        {"\"abc", "X", CZ_JSON_ESYNTAX, 4},
        {"\"\xff\"", "X", CZ_JSON_EUTF8, 1},
        {"\"\xc0\x80\"", "X", CZ_JSON_EUTF8, 1},
        {"\"\xf4\x90\x80\x80\"", "X", CZ_JSON_EUTF8, 1},
        {"nul", "X", CZ_JSON_ESYNTAX, 0},
        {"truex", "tX", CZ_JSON_ESYNTAX, 4},
        {"-Inf", "X", CZ_JSON_ESYNTAX, 0},
        {"1 2", "iX", CZ_JSON_ESYNTAX, 2},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const char *ctx = rows[i].doc;
        char got[64];
        cz_json_reader_t r;
        tokens(rows[i].doc, strlen(rows[i].doc), got, sizeof got, &r);
        CHECKC(strcmp(got, rows[i].want) == 0, ctx);
        CHECKC(r.error == rows[i].error, ctx);
        if (rows[i].error != CZ_JSON_EOK) CHECKC(r.error_at == rows[i].at, ctx);
    }
}

/* Decodes the one string of `doc` into `cp`; returns its chars (or -1). */
static long decode(const char *doc, uint32_t *cp, size_t cap, cz_json_token_t *t) {
    cz_json_reader_t r;
    cz_json_read_init(&r, doc, strlen(doc));
    if (cz_json_read_next(&r, t) != CZ_JSON_T_STRING || t->chars > cap) return -1;
    const unsigned char *p = t->s;
    for (size_t i = 0; i < t->chars; i++) cp[i] = cz_json_string_next(&p);
    if (p != t->s + t->len) return -1;
    return (long)t->chars;
}

static void test_strings(void) {
    static const struct {
        const char *doc;
        long chars;
        uint32_t cp[4];
        uint32_t maxchar;
    } rows[] = {
        {"\"\"", 0, {0}, 0},
        {"\"ab\"", 2, {'a', 'b'}, 0x7F},
        {"\"\\n\\/\"", 2, {'\n', '/'}, 0x7F},
        {"\"\\u00e9\"", 1, {0xE9}, 0xE9},
        {"\"\xc3\xa9\xe2\x82\xac\"", 2, {0xE9, 0x20AC}, 0x20AC},
        {"\"\\ud83d\\ude00\"", 1, {0x1F600}, 0x1F600},
        {"\"\\ud800\"", 1, {0xD800}, 0xD800},
        {"\"\\ud800\\u0041\"", 2, {0xD800, 'A'}, 0xD800},
        {"\"\\udc00\\ud800\"", 2, {0xDC00, 0xD800}, 0xDC00},
        {"\"\xed\xa0\x80\xed\xb0\x80\"", 2, {0xD800, 0xDC00}, 0xDC00}, /* raw surrogates never pair */
        {"\"\xf4\x8f\xbf\xbf\"", 1, {0x10FFFF}, 0x10FFFF},
        {"\"\\u0000\x7f\"", 2, {0, 0x7F}, 0x7F},
        {"\"\\u0000\"", 1, {0}, 0x7F}, /* all ASCII: 0x7F, even for U+0000 alone */
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const char *ctx = rows[i].doc;
        uint32_t cp[8];
        cz_json_token_t t;
        long n = decode(rows[i].doc, cp, 8, &t);
        CHECKC(n == rows[i].chars, ctx);
        CHECKC(t.maxchar == rows[i].maxchar, ctx);
        CHECKC(t.escaped == (strchr(rows[i].doc, '\\') != NULL), ctx);
        for (long k = 0; k < n && k < 4; k++) CHECKC(cp[k] == rows[i].cp[k], ctx);
    }
}

static void test_depth(void) {
    size_t n = CZ_JSON_MAX_DEPTH + 1;
    char *doc = malloc(2 * n);
    memset(doc, '[', n);
    memset(doc + n, ']', n);
    char got[4];
    cz_json_reader_t r;
    /* exactly the limit: read */
    cz_json_read_init(&r, doc + 1, 2 * n - 2);
    cz_json_token_t t;
    size_t count = 0;
    while (cz_json_read_next(&r, &t) != CZ_JSON_T_END && count < 4 * n) count++;
    CHECKC(r.error == CZ_JSON_EOK && count == 2 * CZ_JSON_MAX_DEPTH, "512 levels");
    /* one more: refused at the bracket that opens it */
    tokens(doc, 2 * n, got, sizeof got, &r);
    CHECKC(r.error == CZ_JSON_EDEPTH && r.error_at == CZ_JSON_MAX_DEPTH, "513 levels");
    CHECK(strcmp(cz_json_read_strerror(CZ_JSON_EDEPTH), "arrays and objects nested deeper than 512 levels") == 0);
    free(doc);
}

static void test_encodings(void) {
    static const struct {
        const char *doc;
        size_t len;
        cz_json_error_t error;
    } rows[] = {
        {"\xff\xfe[\0]\0", 6, CZ_JSON_EENCODING}, /* UTF-16 LE with BOM */
        {"\xfe\xff\0[\0]", 6, CZ_JSON_EENCODING}, /* UTF-16 BE with BOM */
        {"\0\0\xfe\xff\0\0\0"
         "1",
         8, CZ_JSON_EENCODING},            /* UTF-32 BE with BOM */
        {"1\0", 2, CZ_JSON_EENCODING},     /* two bytes, a NUL: UTF-16 LE */
        {"[\0\0\0", 4, CZ_JSON_EENCODING}, /* UTF-32 LE */
        {"1\0\0", 3, CZ_JSON_ESYNTAX},     /* three bytes: UTF-8, then NUL is an error */
        {"\xef\xbb\xbf"
         "1",
         4, CZ_JSON_EOK}, /* UTF-8 BOM skipped */
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char got[16], ctx[32];
        cz_json_reader_t r;
        snprintf(ctx, sizeof ctx, "encoding row %zu", i);
        tokens(rows[i].doc, rows[i].len, got, sizeof got, &r);
        CHECKC(r.error == rows[i].error, ctx);
    }
}

static void test_empty_null(void) {
    cz_json_reader_t r;
    cz_json_token_t t;
    cz_json_read_init(&r, NULL, 0);
    CHECK(cz_json_read_next(&r, &t) == CZ_JSON_T_ERROR && r.error == CZ_JSON_ESYNTAX && r.error_at == 0);
}

int main(void) {
    test_empty_null();
    test_token_streams();
    test_strings();
    test_depth();
    test_encodings();
    return check_summary();
}
