/*
 * cz_json_read — a JSON tokenizer and validator for request bodies:
 * Python-free and transport-free. A reader walks one document held in
 * memory and hands out one token per call; csrc/python/py_json_read.c
 * builds Python values from the tokens.
 *
 * What is JSON here
 *   Exactly what Python's json.loads accepts in UTF-8 bytes, so that the
 *   values built from the tokens are json.loads's: RFC 8259 plus the
 *   literals NaN, Infinity and -Infinity; whitespace is space, tab, LF and
 *   CR only. Refused as json.loads refuses them: trailing commas, comments,
 *   single quotes, leading zeros ("01"), a '+' sign, control characters
 *   (U+0000..U+001F) inside strings, unknown escapes ("\x"), "\u" without
 *   four hex digits, anything but whitespace after the value.
 *   A number ends where json's number pattern ends
 *   (-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?): "1." and "1e" leave a
 *   '.' or 'e' behind, which is then an error.
 *
 * Encoding
 *   The input is UTF-8, optionally after one UTF-8 byte order mark (skipped,
 *   as json.loads's utf-8-sig does). Surrogates encoded as UTF-8 (ED A0..BF
 *   xx) are accepted, as json.loads's 'surrogatepass' decoding accepts them;
 *   any other byte sequence that is not UTF-8 is CZ_JSON_EUTF8. Input that
 *   json's detect_encoding takes for UTF-16 or UTF-32 (a UTF-16/32 byte order
 *   mark, or a NUL among the first two bytes) is CZ_JSON_EENCODING: callers
 *   leave it to json.loads. Bytes outside strings are checked by the
 *   grammar, which allows ASCII only there.
 *
 * Strings
 *   A string token gives the bytes between its quotes, the number of code
 *   points it decodes to and the largest of them, so a caller can size the
 *   result before decoding; cz_json_string_next decodes one code point.
 *   "\uD83D\uDE00" (a high surrogate escape followed by a low one) is one
 *   code point, U+1F600; a lone surrogate escape ("\uD800") stays a lone
 *   surrogate code point, as in json.loads. Raw surrogates (UTF-8 encoded)
 *   are never paired, as json.loads does not pair them either.
 *
 * Limits
 *   Nesting deeper than CZ_JSON_MAX_DEPTH arrays and objects is
 *   CZ_JSON_EDEPTH (json.loads goes as deep as the interpreter's recursion
 *   limit allows, then raises RecursionError). Inputs up to SIZE_MAX bytes;
 *   numbers and strings are not limited here (the Python layer applies the
 *   interpreter's limit on integer digits).
 *
 * Memory and threads
 *   The reader allocates nothing: its state, the nesting stack included, is
 *   the cz_json_reader_t (about 100 bytes), and tokens point into the
 *   input, which must stay alive and unchanged while they are used. Readers
 *   share nothing; one reader is used by one thread at a time.
 *
 * Errors
 *   The first error ends the document: cz_json_read_next returns
 *   CZ_JSON_T_ERROR from then on, with reader.error and reader.error_at (a
 *   byte offset into the input, BOM included) describing it;
 *   cz_json_read_strerror names it.
 */
#ifndef CZ_JSON_READ_H
#define CZ_JSON_READ_H

#include <stddef.h>
#include <stdint.h>

#define CZ_JSON_MAX_DEPTH 512u /* arrays and objects open at once */

typedef enum {
    CZ_JSON_T_END = 0, /* the document is complete: one value, then only whitespace */
    CZ_JSON_T_ERROR,   /* see reader.error and reader.error_at */
    CZ_JSON_T_OBJECT,  /* '{': keys and values follow, then CZ_JSON_T_OBJECT_END */
    CZ_JSON_T_OBJECT_END,
    CZ_JSON_T_ARRAY, /* '[': values follow, then CZ_JSON_T_ARRAY_END */
    CZ_JSON_T_ARRAY_END,
    CZ_JSON_T_KEY,    /* a string in key position (its ':' is consumed); its value follows */
    CZ_JSON_T_STRING, /* a string value */
    CZ_JSON_T_INT,    /* a number without fraction or exponent: text in s/len */
    CZ_JSON_T_FLOAT,  /* a number with a fraction or an exponent: text in s/len */
    CZ_JSON_T_TRUE,
    CZ_JSON_T_FALSE,
    CZ_JSON_T_NULL,
    CZ_JSON_T_NAN,         /* NaN */
    CZ_JSON_T_INFINITY,    /* Infinity */
    CZ_JSON_T_NEG_INFINITY /* -Infinity */
} cz_json_token_kind_t;

typedef enum {
    CZ_JSON_EOK = 0,
    CZ_JSON_ESYNTAX,  /* not JSON: an unexpected byte at error_at, or the input ended early */
    CZ_JSON_EUTF8,    /* a string holds a byte sequence that is not UTF-8 (starting at error_at) */
    CZ_JSON_EDEPTH,   /* the '[' or '{' at error_at opens level CZ_JSON_MAX_DEPTH + 1 */
    CZ_JSON_EENCODING /* UTF-16 or UTF-32 input (json's detection); error_at is 0 */
} cz_json_error_t;

typedef struct {
    cz_json_token_kind_t kind;
    /* KEY and STRING: the bytes between the quotes, escapes as written.
     * INT and FLOAT: the number's text, sign included. Otherwise unset. */
    const unsigned char *s;
    size_t len;
    /* KEY and STRING: code points once decoded; the largest of them, except
     * that it is 0x7F when all are ASCII (enough to choose a str's kind) and
     * 0 for ""; and whether there is any escape (without one, the bytes are
     * the string's UTF-8, surrogates possibly included). */
    size_t chars;
    uint32_t maxchar;
    int escaped;
} cz_json_token_t;

typedef struct {
    const unsigned char *begin, *p, *end;
    unsigned depth; /* arrays and objects open */
    int state;
    cz_json_error_t error;
    size_t error_at;
    uint8_t objects[CZ_JSON_MAX_DEPTH / 8]; /* bit d: level d+1 is an object */
} cz_json_reader_t;

/* Start reading the `len` bytes at `data` (need not be NUL-terminated; may
 * be NULL when `len` is 0).
 * Detects the encoding: for UTF-16/32 input the first token is an error
 * (CZ_JSON_EENCODING). */
void cz_json_read_init(cz_json_reader_t *r, const void *data, size_t len);

/* The next token. After CZ_JSON_T_END or CZ_JSON_T_ERROR, the same again. */
cz_json_token_kind_t cz_json_read_next(cz_json_reader_t *r, cz_json_token_t *t);

/* Decode the code point at *p inside the bytes of a KEY or STRING token that
 * cz_json_read_next returned, and advance *p past it (past both escapes of
 * a surrogate pair). Call it `chars` times from t.s. Reads nothing beyond
 * the string's closing quote (t.s[t.len]). */
uint32_t cz_json_string_next(const unsigned char **p);

/* A fixed English description of an error ("" for CZ_JSON_EOK). */
const char *cz_json_read_strerror(cz_json_error_t error);

#endif
