/*
 * Unit tests of csrc/multipart (cz_multipart.h): boundary extraction, the
 * RFC 7578 examples, split invariance (every input cut at every byte, and 1
 * byte per feed), filename*, CRLF edge cases, limits, malformed input and
 * allocation failures (cz_malloc/cz_realloc are wrapped at link time, see
 * CMakeLists.txt).
 *
 * Plain C: CHECK counts; the last line is "N passed, M failed"; the exit
 * status is non-zero when anything failed. Run under ASan/UBSan/LSan.
 */
#include "check.h"
#include "cz_multipart.h"
#include "cz_spool.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S(lit) (lit), (sizeof(lit) - 1)

static cz_allocator_t *A;

/* ---- allocation-failure injection (link-time --wrap) --------------------- */

static long g_fail_at; /* fail the N-th allocation from now on; 0: none */
static long g_allocs;

void *__real_cz_malloc(cz_allocator_t *a, cz_purpose_t p, size_t size);
void *__real_cz_realloc(cz_allocator_t *a, cz_purpose_t p, void *ptr, size_t size);
void *__wrap_cz_malloc(cz_allocator_t *a, cz_purpose_t p, size_t size);
void *__wrap_cz_realloc(cz_allocator_t *a, cz_purpose_t p, void *ptr, size_t size);

static int fault(void) {
    return g_fail_at > 0 && ++g_allocs == g_fail_at;
}
void *__wrap_cz_malloc(cz_allocator_t *a, cz_purpose_t p, size_t size) {
    return fault() ? NULL : __real_cz_malloc(a, p, size);
}
void *__wrap_cz_realloc(cz_allocator_t *a, cz_purpose_t p, void *ptr, size_t size) {
    return fault() ? NULL : __real_cz_realloc(a, p, ptr, size);
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);

    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

/* ---- a driver: events as text ---------------------------------------------- */

typedef struct {
    char log[65536];
    size_t len;
    int status; /* error status, 0 if none */
    const char *reason;
    int done;
    int broken; /* contract violations seen while feeding */
    size_t max_held;
    size_t data_events;
} outcome_t;

static void put(outcome_t *o, const char *s, size_t n) {
    if (n > sizeof(o->log) - 1 - o->len) n = sizeof(o->log) - 1 - o->len;
    memcpy(o->log + o->len, s, n);
    o->len += n;
    o->log[o->len] = '\0';
}

static void puts_(outcome_t *o, const char *s) {
    put(o, s, strlen(s));
}

static void put_str(outcome_t *o, const char *tag, cz_multipart_str_t s) {
    puts_(o, tag);
    o->broken += s.base == NULL;
    if (s.base) put(o, s.base, s.len);
}

static void dump_part(outcome_t *o, const cz_multipart_part_t *pt) {
    put_str(o, "[BEGIN name=", pt->name);
    if (pt->has_filename) put_str(o, " filename=", pt->filename);
    if (pt->has_filename_plain) put_str(o, " plain=", pt->filename_plain);
    if (pt->has_filename_star) puts_(o, " star");
    if (pt->content_type.len) put_str(o, " ct=", pt->content_type);
    for (size_t i = 0; i < pt->num_headers; i++) {
        put_str(o, " |", pt->headers[i].name);
        put_str(o, ":", pt->headers[i].value);
    }
    puts_(o, "]");
}

/*
 * Feed `in` in segments ending at cuts[0..ncuts) and len (step > 0: step
 * bytes at a time instead), each segment a fresh heap copy freed right
 * after the events it produced were used, so that a view outliving its
 * input is caught by ASan. Data events are logged without separators, so
 * outcomes of different splits compare equal.
 */
static void run(const char *in, size_t len, const size_t *cuts, size_t ncuts, size_t step,
                const cz_multipart_limits_t *lim, outcome_t *o) {
    cz_multipart_t p;
    size_t start = 0, seg = 0;
    int in_data = 0;

    memset(o, 0, sizeof(*o));
    if (cz_multipart_init(&p, A, "XyZ", 3, lim) != 0) {
        o->broken++;
        return;
    }
    for (;;) {
        size_t end = step ? (len - start < step ? len : start + step) : (seg < ncuts ? cuts[seg] : len);
        size_t n = end - start;
        char *copy = xmalloc(n);
        const char *d = copy;
        cz_multipart_event_t ev = CZ_MULTIPART_NEED_MORE;

        memcpy(copy, in + start, n);
        while (n) {
            size_t used = 0;
            ev = cz_multipart_feed(&p, d, n, &used);
            o->broken += used > n;
            if (cz_multipart_held(&p) > o->max_held) o->max_held = cz_multipart_held(&p);
            if (ev == CZ_MULTIPART_PART_DATA) {
                cz_multipart_str_t v = cz_multipart_data(&p);
                /* a view into this input (within what was consumed) or into
                 * the parser (held delimiter bytes) */
                int inside = v.base >= d && v.base + v.len <= d + used;
                int parser = (uintptr_t)v.base >= (uintptr_t)&p && (uintptr_t)(v.base + v.len) <= (uintptr_t)(&p + 1);
                o->broken += !(inside || parser) || v.len == 0;
                if (!in_data) puts_(o, "[DATA ");
                in_data = 1;
                put(o, v.base, v.len);
                o->data_events++;
            } else if (ev != CZ_MULTIPART_NEED_MORE) {
                if (in_data) puts_(o, "]");
                in_data = 0;
            }
            if (ev == CZ_MULTIPART_NEED_MORE) o->broken += used != n;
            if (ev == CZ_MULTIPART_PART_BEGIN) dump_part(o, cz_multipart_part(&p));
            else if (ev == CZ_MULTIPART_PART_END) puts_(o, "[END]");
            d += used;
            n -= used;
            if (ev == CZ_MULTIPART_ERROR || ev == CZ_MULTIPART_DONE) break;
            o->broken += used == 0 && ev == CZ_MULTIPART_NEED_MORE && n;
        }
        free(copy);
        if (ev == CZ_MULTIPART_ERROR) break;
        start = end;
        seg++;
        if (ev == CZ_MULTIPART_DONE) {
            /* the epilogue: DONE again, everything consumed */
            size_t used = 0;
            o->broken += cz_multipart_feed(&p, S("epilogue"), &used) != CZ_MULTIPART_DONE || used != 8;
            break;
        }
        if (start >= len) {
            ev = cz_multipart_finish(&p);
            break;
        }
    }
    if (cz_multipart_finish(&p) == CZ_MULTIPART_DONE) {
        o->done = 1;
        puts_(o, "[DONE]");
    } else {
        size_t used = 1;
        o->status = cz_multipart_status(&p);
        o->reason = cz_multipart_reason(&p);
        o->broken += o->reason == NULL || strncmp(o->reason, "multipart: ", 11) != 0;
        /* sticky */
        o->broken += cz_multipart_feed(&p, "x", 1, &used) != CZ_MULTIPART_ERROR || used != 0;
    }
    cz_multipart_destroy(&p);
}

static void run_whole(const char *in, size_t len, const cz_multipart_limits_t *lim, outcome_t *o) {
    run(in, len, NULL, 0, 0, lim, o);
}

static int same_log(const outcome_t *a, const outcome_t *b) {
    return a->len == b->len && memcmp(a->log, b->log, a->len) == 0;
}

/* The same events for the input whole, byte by byte, and cut in two and in
 * three at every position. */
static void check_split(const char *name, const char *in, size_t len, const cz_multipart_limits_t *lim) {
    static outcome_t whole, other;
    int same = 1;

    run_whole(in, len, lim, &whole);
    CHECKC(whole.broken == 0, name);
    CHECKC(whole.max_held <= CZ_MULTIPART_HOLD_MAX && whole.max_held <= 3 + 4, name);
    run(in, len, NULL, 0, 1, lim, &other);
    CHECKC(other.broken == 0 && other.max_held <= 3 + 4, name);
    CHECKC((whole.status || same_log(&whole, &other)) && whole.status == other.status && whole.reason == other.reason,
           name);
    if (!whole.status && !same_log(&whole, &other)) fprintf(stderr, "  whole: %s\n  bytes: %s\n", whole.log, other.log);
    for (size_t i = 0; i <= len && same; i++) {
        size_t cut[2] = {i, 0};
        run(in, len, cut, 1, 0, lim, &other);
        same = other.broken == 0 && (whole.status || same_log(&whole, &other)) && whole.status == other.status &&
               whole.reason == other.reason;
        for (size_t j = i; j <= len && same; j += 3) {
            cut[1] = j;
            run(in, len, cut, 2, 0, lim, &other);
            same = other.broken == 0 && (whole.status || same_log(&whole, &other)) && whole.status == other.status &&
                   whole.reason == other.reason;
        }
    }
    CHECKC(same, name);
}

/* ---- boundary ------------------------------------------------------------------ */

static void test_boundary(void) {
    static const struct {
        const char *ct;
        int status;
        const char *boundary; /* or the reason */
    } rows[] = {
        {"multipart/form-data; boundary=abc", 0, "abc"},
        {"Multipart/Form-Data;boundary=abc", 0, "abc"},
        {"multipart/form-data; BOUNDARY=abc", 0, "abc"},
        {"multipart/form-data; boundary=\"a b c\"", 0, "a b c"},
        {"multipart/form-data; boundary=\"a\\bc\"", 0, "abc"},
        {"multipart/form-data; charset=utf-8; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW", 0,
         "----WebKitFormBoundary7MA4YWxkTrZu0gW"},
        {"multipart/form-data; boundary=abc; charset=\"x;y\"", 0, "abc"},
        {"multipart/form-data;  boundary= TestBoundary ", 0, "TestBoundary"},
        {"multipart/form-data; boundary=b'()+_,-./:=?", 0, "b'()+_,-./:=?"},
        {"multipart/form-data; boundary=abc;", 0, "abc"},
        {"multipart/form-data; boundary="
         "1234567890123456789012345678901234567890123456789012345678901234567890",
         0, "1234567890123456789012345678901234567890123456789012345678901234567890"},
        {"multipart/form-data; boundary="
         "12345678901234567890123456789012345678901234567890123456789012345678901",
         400, "multipart: boundary longer than 70 characters"},
        {"multipart/form-data", 400, "multipart: no boundary parameter in Content-Type"},
        {"multipart/form-data; charset=utf-8", 400, "multipart: no boundary parameter in Content-Type"},
        {"multipart/form-data; boundary=", 400, "multipart: bad Content-Type parameters"},
        {"multipart/form-data; boundary=\"\"", 400, "multipart: empty boundary"},
        {"multipart/form-data; boundary=\"abc \"", 400, "multipart: boundary ends in a space"},
        {"multipart/form-data; boundary=\"ab\"c\"", 400, "multipart: bad Content-Type parameters"},
        {"multipart/form-data; boundary=\"abc", 400, "multipart: unterminated quoted string in Content-Type"},
        {"multipart/form-data; boundary=\"abc\\", 400, "multipart: unterminated quoted string in Content-Type"},
        {"multipart/form-data; boundary=\"a@b\"", 400, "multipart: boundary has a character RFC 2046 does not allow"},
        {"multipart/form-data; boundary=\"a\tb\"", 400, "multipart: boundary has a character RFC 2046 does not allow"},
        {"multipart/form-data; boundary=a; boundary=a", 400, "multipart: more than one boundary parameter"},
        {"multipart/form-data; boundary", 400, "multipart: bad Content-Type parameters"},
        {"multipart/form-data boundary=abc", 400, "multipart: bad Content-Type parameters"},
        {"multipart/mixed; boundary=abc", 415, "multipart: Content-Type is not multipart/form-data"},
        {"text/plain", 415, "multipart: Content-Type is not multipart/form-data"},
        {"", 415, "multipart: Content-Type is not multipart/form-data"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char out[CZ_MULTIPART_BOUNDARY_MAX];
        size_t n = 99;
        const char *why = NULL;
        int st = cz_multipart_boundary(rows[i].ct, strlen(rows[i].ct), out, &n, &why);

        CHECKC(st == rows[i].status, rows[i].ct);
        if (st == 0) CHECKC(n == strlen(rows[i].boundary) && memcmp(out, rows[i].boundary, n) == 0, rows[i].ct);
        else CHECKC(why && strcmp(why, rows[i].boundary) == 0, rows[i].ct);
    }
    {
        /* reason may be NULL */
        char out[CZ_MULTIPART_BOUNDARY_MAX];
        size_t n;
        CHECK(cz_multipart_boundary(S("text/plain"), out, &n, NULL) == 415);
    }
    {
        cz_multipart_t p;
        CHECK(cz_multipart_init(&p, A, "", 0, NULL) == -1);
        CHECK(cz_multipart_init(&p, A, "x", CZ_MULTIPART_BOUNDARY_MAX + 1, NULL) == -1);
    }
}

/* ---- well-formed bodies ----------------------------------------------------------- */

static void expect_log(const char *name, const char *body, size_t len, const char *want) {
    static outcome_t o;

    run_whole(body, len, NULL, &o);
    CHECKC(o.broken == 0 && o.done, name);
    CHECKC(strcmp(o.log, want) == 0, name);
    if (strcmp(o.log, want) != 0) fprintf(stderr, "  got:  %s\n  want: %s\n", o.log, want);
    check_split(name, body, len, NULL);
}

static void test_good(void) {
    /* RFC 7578 4.1-4.2 style: a field and a file (section 4's example) */
    expect_log("rfc7578",
               S("--XyZ\r\n"
                 "Content-Disposition: form-data; name=\"field1\"\r\n"
                 "Content-Type: text/plain;charset=UTF-8\r\n"
                 "Content-Transfer-Encoding: quoted-printable\r\n"
                 "\r\n"
                 "Joe owes =E2=82=AC100.\r\n"
                 "--XyZ--\r\n"),
               "[BEGIN name=field1 ct=text/plain;charset=UTF-8 |Content-Disposition:form-data; "
               "name=\"field1\" |Content-Type:text/plain;charset=UTF-8 "
               "|Content-Transfer-Encoding:quoted-printable][DATA Joe owes =E2=82=AC100.][END][DONE]");
    expect_log("rfc7578 _charset_ and file",
               S("--XyZ\r\n"
                 "content-disposition: form-data; name=\"_charset_\"\r\n\r\n"
                 "iso-8859-1\r\n"
                 "--XyZ\r\n"
                 "Content-Disposition: form-data; name=\"files\"; filename=\"file1.txt\"\r\n"
                 "Content-Type: text/plain\r\n\r\n"
                 "...contents of file1.txt...\r\n"
                 "--XyZ--"),
               "[BEGIN name=_charset_ |content-disposition:form-data; name=\"_charset_\"]"
               "[DATA iso-8859-1][END]"
               "[BEGIN name=files filename=file1.txt plain=file1.txt ct=text/plain "
               "|Content-Disposition:form-data; name=\"files\"; filename=\"file1.txt\" "
               "|Content-Type:text/plain][DATA ...contents of file1.txt...][END][DONE]");
    expect_log("preamble, padding, epilogue",
               S("This is the preamble.\r\n--XyZ\r\n"
                 "Content-Disposition: form-data; name=a\r\n\r\n1\r\n"
                 "--XyZ \t \r\n"
                 "Content-Disposition: form-data;name=\"b\"\r\n\r\n\r\n"
                 "--XyZ--\r\nepilogue --XyZ\r\n"),
               "[BEGIN name=a |Content-Disposition:form-data; name=a][DATA 1][END]"
               "[BEGIN name=b |Content-Disposition:form-data;name=\"b\"][END][DONE]");
    expect_log("preamble ending right before the delimiter",
               S("\r\n--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n--XyZ--"),
               "[BEGIN name=a |Content-Disposition:form-data; name=a][DATA v][END][DONE]");
    expect_log("empty form", S("--XyZ--\r\n"), "[DONE]");
    expect_log("OWS, trailing ';', 4-byte UTF-8 in filename*",
               S("--XyZ\r\n"
                 "Content-Disposition:form-data ; name = \"a\" ; filename*=utf-8''%F0%9F%98%80 ;  \r\n"
                 "X-Empty:\r\n"
                 "X-Pad: \t v \t \r\n\r\nv\r\n--XyZ--"),
               "[BEGIN name=a filename=\xf0\x9f\x98\x80 star "
               "|Content-Disposition:form-data ; name = \"a\" ; filename*=utf-8''%F0%9F%98%80 ;"
               " |X-Empty: |X-Pad:v][DATA v][END][DONE]");
    expect_log("quoted-pair and empty file",
               S("--XyZ\r\n"
                 "Content-Disposition: form-data; name=\"a\\\"b\"; filename=\"\"\r\n\r\n"
                 "\r\n--XyZ--"),
               "[BEGIN name=a\"b filename= plain= |Content-Disposition:form-data; "
               "name=\"a\\\"b\"; filename=\"\"][END][DONE]");
    expect_log("filename* utf-8 preferred",
               S("--XyZ\r\n"
                 "Content-Disposition: form-data; name=f; filename=\"a.pdf\"; "
                 "filename*=UTF-8''%E6%96%87%E6%A1%A3.pdf\r\n\r\nx\r\n--XyZ--"),
               "[BEGIN name=f filename=\xe6\x96\x87\xe6\xa1\xa3.pdf plain=a.pdf star "
               "|Content-Disposition:form-data; name=f; filename=\"a.pdf\"; "
               "filename*=UTF-8''%E6%96%87%E6%A1%A3.pdf][DATA x][END][DONE]");
    expect_log("filename* latin-1, language",
               S("--XyZ\r\n"
                 "Content-Disposition: form-data; name=f; filename*=iso-8859-1'fr'caf%E9.txt\r\n"
                 "\r\nx\r\n--XyZ--"),
               "[BEGIN name=f filename=caf\xc3\xa9.txt star |Content-Disposition:form-data; name=f; "
               "filename*=iso-8859-1'fr'caf%E9.txt][DATA x][END][DONE]");
}

/* ---- CRLF edge cases --------------------------------------------------------- */

static void test_crlf(void) {
    expect_log("delimiter-like text in data",
               S("--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\n"
                 "--XyZ\r\n\r\n-XyZ\r\n--Xy\r\r\n--X\r\n-"
                 "\r\n--XyZ--"),
               "[BEGIN name=a |Content-Disposition:form-data; name=a]"
               "[DATA --XyZ\r\n\r\n-XyZ\r\n--Xy\r\r\n--X\r\n-][END][DONE]");
    expect_log("data ending in CR, CRs, CRLFs",
               S("--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\n"
                 "\r\r\r\n\r\n\r\r\n--XyZ--"),
               "[BEGIN name=a |Content-Disposition:form-data; name=a][DATA \r\r\r\n\r\n\r][END][DONE]");
    {
        static const char body[] = "--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\n"
                                   "\0\xff\r\0\r\n--XyZ--";
        static outcome_t o;
        static const char want[] = "[DATA \0\xff\r\0][END][DONE]";
        const char *at;

        run_whole(body, sizeof(body) - 1, NULL, &o);
        check_split("binary data with NUL", body, sizeof(body) - 1, NULL);
        at = memchr(o.log, ']', o.len);
        CHECK(o.done && at && o.len - (size_t)(at + 1 - o.log) == sizeof(want) - 1 &&
              memcmp(at + 1, want, sizeof(want) - 1) == 0);
    }
    {
        /* a held "\r\n--Xy" prefix released as data comes from the parser's
         * own copy; bytes in the input come from the input */
        static outcome_t o;
        static const char body[] = "--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\n"
                                   "ab\r\n--Xyq\r\n--XyZ--";
        run(body, sizeof(body) - 1, NULL, 0, 1, NULL, &o);
        CHECK(o.done && o.broken == 0 && o.max_held == 6);
    }
}

/* ---- malformed input ------------------------------------------------------------- */

#define CD "Content-Disposition: form-data; name=a\r\n"

static void test_malformed(void) {
    static const struct {
        const char *body;
        const char *reason;
    } rows[] = {
        {"", "multipart: no boundary line in the body"},
        {"hello world", "multipart: no boundary line in the body"},
        {"--XyA\r\n" CD "\r\nv\r\n--XyA--", "multipart: no boundary line in the body"},
        {"--XyZ\r\n", "multipart: missing closing boundary"},
        {"--XyZ\r\n" CD "\r\nv", "multipart: missing closing boundary"},
        {"--XyZ\r\n" CD "\r\nv\r\n--Xy", "multipart: missing closing boundary"},
        {"--XyZ\r\n" CD "\r\nv\r\n--XyZ", "multipart: body ends inside a boundary line"},
        {"--XyZ\r\n" CD "\r\nv\r\n--XyZ-", "multipart: missing closing boundary"},
        {"--XyZ\r\n" CD "\r\nv\r\n--XyZ\r\n", "multipart: missing closing boundary"},
        {"--XyZ\r\n" CD, "multipart: body ends inside part headers"},
        {"--XyZ", "multipart: body ends inside a boundary line"},
        {"--XyZ\r", "multipart: body ends inside a boundary line"},
        {"--XyZ\n" CD "\r\nv\r\n--XyZ--", "multipart: bare LF after a boundary (CRLF required)"},
        {"--XyZ\rx", "multipart: boundary line not ended by CRLF"},
        {"--XyZx\r\n", "multipart: boundary followed by other text"},
        {"--XyZ-x", "multipart: boundary followed by other text"},
        {"--XyZ \tx\r\n", "multipart: boundary followed by other text"},
        {"--XyZ\r\n" CD "\r\nv\r\n--XyZx\r\n", "multipart: boundary followed by other text"},
        {"--XyZ\r\nContent-Disposition form-data; name=a\r\n\r\nv\r\n--XyZ--", "multipart: part header without colon"},
        {"--XyZ\r\n" CD "value\r\n--XyZ--", "multipart: part header without colon"},
        {"--XyZ\r\nContent-Type: text/plain\r\n\r\nv\r\n--XyZ--", "multipart: part without Content-Disposition"},
        {"--XyZ\r\n\r\nv\r\n--XyZ--", "multipart: part without Content-Disposition"},
        {"--XyZ\r\nContent-Disposition: form-data\r\n\r\nv\r\n--XyZ--", "multipart: part without a name"},
        {"--XyZ\r\nContent-Disposition: form-data; filename=\"a\"\r\n\r\nv\r\n--XyZ--",
         "multipart: part without a name"},
        {"--XyZ\r\nContent-Disposition: attachment; name=a\r\n\r\nv\r\n--XyZ--",
         "multipart: Content-Disposition is not form-data"},
        {"--XyZ\r\nContent-Disposition: form-data; name=\"a\r\n\r\nv\r\n--XyZ--",
         "multipart: unterminated quoted string in Content-Disposition"},
        {"--XyZ\r\nContent-Disposition: form-data; name=\"a\\\"\r\n\r\nv\r\n--XyZ--",
         "multipart: unterminated quoted string in Content-Disposition"},
        {"--XyZ\r\nContent-Disposition: form-data; name=a; name=b\r\n\r\nv\r\n--XyZ--",
         "multipart: duplicate parameter in Content-Disposition"},
        {"--XyZ\r\nContent-Disposition: form-data; name=\r\n\r\nv\r\n--XyZ--",
         "multipart: bad Content-Disposition parameter value"},
        {"--XyZ\r\nContent-Disposition: form-data; name=a b\r\n\r\nv\r\n--XyZ--",
         "multipart: bad Content-Disposition parameters"},
        {"--XyZ\r\nContent-Disposition: form-data; !!!invalid!!!\r\n\r\nv\r\n--XyZ--",
         "multipart: bad Content-Disposition parameters"},
        {"--XyZ\r\n" CD CD "\r\nv\r\n--XyZ--", "multipart: duplicate Content-Disposition in part"},
        {"--XyZ\r\n" CD "Content-Type: a\r\ncontent-type: b\r\n\r\nv\r\n--XyZ--",
         "multipart: duplicate Content-Type in part"},
        {"--XyZ\r\nContent-Disposition: form-data;\r\n name=a\r\n\r\nv\r\n--XyZ--",
         "multipart: folded part header (obs-fold)"},
        {"--XyZ\r\nContent-Disposition: form-data; name=a\n\r\nv\r\n--XyZ--",
         "multipart: bare LF in part header (CRLF required)"},
        {"--XyZ\r\nContent-Disposition: form-data; name=a\rx\r\n\r\nv\r\n--XyZ--",
         "multipart: CR without LF in part header"},
        {"--XyZ\r\nContent-Disposition: form-data; name=\"a\x01\"\r\n\r\nv\r\n--XyZ--",
         "multipart: control character in part header"},
        {"--XyZ\r\nX Y: z\r\n" CD "\r\nv\r\n--XyZ--", "multipart: bad part header name"},
        {"--XyZ\r\nX-Y : z\r\n" CD "\r\nv\r\n--XyZ--", "multipart: bad part header name"},
        {"--XyZ\r\n: z\r\n" CD "\r\nv\r\n--XyZ--", "multipart: empty part header name"},
        {"--XyZ\r\nContent-Disposition: form-data; name=a; filename*=UTF-8''%FF\r\n\r\nv\r\n--XyZ--",
         "multipart: filename* is not valid UTF-8"},
        {"--XyZ\r\nContent-Disposition: form-data; name=a; filename*=UTF-8''%C0%AF\r\n\r\nv\r\n--XyZ--",
         "multipart: filename* is not valid UTF-8"},
        {"--XyZ\r\nContent-Disposition: form-data; name=a; filename*=UTF-8''%ED%A0%80\r\n\r\nv\r\n--XyZ--",
         "multipart: filename* is not valid UTF-8"},
        {"--XyZ\r\nContent-Disposition: form-data; name=a; filename*=UTF-8''a%0A\r\n\r\nv\r\n--XyZ--",
         "multipart: control character in filename*"},
        {"--XyZ\r\nContent-Disposition: form-data; name=a; filename*=UTF-8''a%4\r\n\r\nv\r\n--XyZ--",
         "multipart: bad filename* (RFC 8187)"},
        {"--XyZ\r\nContent-Disposition: form-data; name=a; filename*=UTF-8'a.txt\r\n\r\nv\r\n--XyZ--",
         "multipart: bad filename* (RFC 8187)"},
        {"--XyZ\r\nContent-Disposition: form-data; name=a; filename*=a.txt\r\n\r\nv\r\n--XyZ--",
         "multipart: bad filename* (RFC 8187)"},
        {"--XyZ\r\nContent-Disposition: form-data; name=a; filename*=koi8-r''a\r\n\r\nv\r\n--XyZ--",
         "multipart: filename* charset is not UTF-8 or ISO-8859-1"},
        {"--XyZ\r\nContent-Disposition: form-data; name=a; filename*=UTF-8''%G0\r\n\r\nv\r\n--XyZ--",
         "multipart: bad filename* (RFC 8187)"},
        {"--XyZ\r\nContent-Disposition: form-data; name=a; filename*=\"UTF-8''a b\"\r\n\r\nv\r\n--XyZ--",
         "multipart: bad filename* (RFC 8187)"},
        {"--XyZ\r\nContent-Disposition: form-data; name=a; filename*=UTF-8''%F4%90%80%80\r\n\r\nv\r\n--XyZ--",
         "multipart: filename* is not valid UTF-8"},
        {"--XyZ\r\nContent-Disposition: form-data; name=a; filename*=UTF-8''%F0%9F%98\r\n\r\nv\r\n--XyZ--",
         "multipart: filename* is not valid UTF-8"},
        {"--XyZ\r\nContent-Disposition: form-data; name=a; filename=b; filename=c\r\n\r\nv\r\n--XyZ--",
         "multipart: duplicate parameter in Content-Disposition"},
        {"--XyZ\r\nContent-Disposition: form-data; name=a; filename*=UTF-8''b; filename*=UTF-8''c\r\n\r\nv\r\n--XyZ--",
         "multipart: duplicate parameter in Content-Disposition"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        static outcome_t o;
        const char *b = rows[i].body;

        run_whole(b, strlen(b), NULL, &o);
        CHECKC(o.broken == 0 && !o.done && o.status == 400, b);
        CHECKC(o.reason && strcmp(o.reason, rows[i].reason) == 0, b);
        if (o.reason && strcmp(o.reason, rows[i].reason) != 0) fprintf(stderr, "  got: %s\n", o.reason);
        check_split(b, b, strlen(b), NULL);
    }
}

/* ---- limits --------------------------------------------------------------------------- */

static void expect_error(const char *name, const char *body, size_t len, const cz_multipart_limits_t *lim, int status,
                         const char *reason) {
    static outcome_t o;

    run_whole(body, len, lim, &o);
    CHECKC(o.broken == 0 && o.status == status, name);
    CHECKC(o.reason && strcmp(o.reason, reason) == 0, name);
    if (o.reason && strcmp(o.reason, reason) != 0) fprintf(stderr, "  got: %s\n", o.reason);
    check_split(name, body, len, lim);
}

static void expect_ok(const char *name, const char *body, size_t len, const cz_multipart_limits_t *lim) {
    static outcome_t o;

    run_whole(body, len, lim, &o);
    CHECKC(o.broken == 0 && o.done, name);
}

static void test_limits(void) {
    cz_multipart_limits_t l, d;
    static char big[70000];
    size_t n;

    cz_multipart_limits_default(&d);
    CHECK(d.max_parts == 1000 && d.max_header_bytes == 16384 && d.max_headers == 32 && d.max_field_size == 1048576 &&
          d.max_file_size == SIZE_MAX && d.max_total == SIZE_MAX && d.max_files == SIZE_MAX &&
          d.max_fields == SIZE_MAX);

    memset(&l, 0, sizeof(l));
    l.max_parts = 2;
    expect_ok("2 parts", S("--XyZ\r\n" CD "\r\n1\r\n--XyZ\r\n" CD "\r\n2\r\n--XyZ--"), &l);
    expect_error("3 parts", S("--XyZ\r\n" CD "\r\n1\r\n--XyZ\r\n" CD "\r\n2\r\n--XyZ\r\n" CD "\r\n3\r\n--XyZ--"), &l,
                 413, "multipart: too many parts");

    memset(&l, 0, sizeof(l));
    l.max_field_size = 3;
    expect_ok("field of 3", S("--XyZ\r\n" CD "\r\nabc\r\n--XyZ--"), &l);
    expect_error("field of 4", S("--XyZ\r\n" CD "\r\nabcd\r\n--XyZ--"), &l, 400, "multipart: field too large");
    /* a file is not a field */
    expect_ok("file of 4", S("--XyZ\r\nContent-Disposition: form-data; name=a; filename=b\r\n\r\nabcd\r\n--XyZ--"), &l);
    l.max_file_size = 2;
    expect_error("file of 3", S("--XyZ\r\nContent-Disposition: form-data; name=a; filename=b\r\n\r\nabc\r\n--XyZ--"),
                 &l, 413, "multipart: file too large");
    expect_error("file* of 3",
                 S("--XyZ\r\nContent-Disposition: form-data; name=a; filename*=utf-8''b\r\n\r\nabc\r\n--XyZ--"), &l,
                 413, "multipart: file too large");

    /* files and fields counted apart (Starlette's max_files / max_fields) */
#define FILE_PART  "--XyZ\r\nContent-Disposition: form-data; name=f; filename=x\r\n\r\nv\r\n"
#define FIELD_PART "--XyZ\r\n" CD "\r\nv\r\n"
    memset(&l, 0, sizeof(l));
    l.max_files = 1;
    l.max_fields = 2;
    expect_ok("1 file, 2 fields", S(FIELD_PART FILE_PART FIELD_PART "--XyZ--"), &l);
    expect_error("2 files", S(FILE_PART FIELD_PART FILE_PART "--XyZ--"), &l, 400, "multipart: too many files");
    expect_error("3 fields", S(FIELD_PART FILE_PART FIELD_PART FIELD_PART "--XyZ--"), &l, 400,
                 "multipart: too many fields");
    {
        cz_multipart_t p; /* both bounded: they bound the parts, past the default 1000 */
        l.max_files = 700;
        l.max_fields = 800;
        CHECK(cz_multipart_init(&p, A, "XyZ", 3, &l) == 0 && p.limits.max_parts == 1501);
        cz_multipart_destroy(&p);
    }
#undef FILE_PART
#undef FIELD_PART

    memset(&l, 0, sizeof(l));
    l.max_header_bytes = 44; /* CD is 40 bytes, +2 for the blank line */
    expect_ok("header of 42", S("--XyZ\r\n" CD "\r\nv\r\n--XyZ--"), &l);
    l.max_header_bytes = 41;
    expect_error("header of 42 > 41", S("--XyZ\r\n" CD "\r\nv\r\n--XyZ--"), &l, 413,
                 "multipart: part header too large");
    expect_error("preamble > 41", S("0123456789012345678901234567890123456789xxxxxxxxxx\r\n--XyZ\r\n"), &l, 400,
                 "multipart: no boundary line at the start of the body");
    expect_ok("preamble of 41", S("01234567890123456789012345678901234567890\r\n--XyZ--"), &l);
    expect_error("padding > 41", S("--XyZ                                            \r\n"), &l, 400,
                 "multipart: too much padding after a boundary");

    memset(&l, 0, sizeof(l));
    l.max_headers = 2;
    expect_ok("2 headers", S("--XyZ\r\n" CD "X: y\r\n\r\nv\r\n--XyZ--"), &l);
    expect_error("3 headers", S("--XyZ\r\n" CD "X: y\r\nZ: w\r\n\r\nv\r\n--XyZ--"), &l, 413,
                 "multipart: too many part headers");

    memset(&l, 0, sizeof(l));
    {
        static const char body[] = "--XyZ\r\n" CD "\r\nv\r\n--XyZ--";
        l.max_total = sizeof(body) - 1;
        expect_ok("total exact", S(body), &l);
        l.max_total = sizeof(body) - 2;
        expect_error("total - 1", S(body), &l, 413, "multipart: body too large");
    }

    /* defaults: a 1 MiB field passes, one byte more does not; a big header
     * section grows the buffer up to 16 KiB */
    {
        size_t fs = 1024 * 1024;
        char *body = xmalloc(fs + 100);
        static outcome_t o;

        n = (size_t)sprintf(body, "--XyZ\r\n" CD "\r\n");
        memset(body + n, 'a', fs);
        memcpy(body + n + fs, "\r\n--XyZ--", 9);
        run_whole(body, n + fs + 9, NULL, &o);
        CHECK(o.done && o.broken == 0 && o.data_events == 1);
        memset(body + n, 'a', fs + 1);
        memcpy(body + n + fs + 1, "\r\n--XyZ--", 9);
        run_whole(body, n + fs + 10, NULL, &o);
        CHECK(o.status == 400 && strcmp(o.reason, "multipart: field too large") == 0);
        free(body);
    }
    {
        static outcome_t o;
        /* header section = 40 (CD) + "X: " + k + CRLF + blank line = 47 + k */
        for (size_t k = 16384 - 47; k <= 16384 - 46; k++) {
            n = (size_t)sprintf(big, "--XyZ\r\n" CD "X: ");
            memset(big + n, 'h', k);
            n += k;
            n += (size_t)sprintf(big + n, "\r\n\r\nv\r\n--XyZ--");
            run_whole(big, n, NULL, &o);
            if (k == 16384 - 47) CHECK(o.done && o.broken == 0);
            else CHECK(o.status == 413 && strcmp(o.reason, "multipart: part header too large") == 0);
        }
    }
}

/* ---- allocation failures ------------------------------------------------------------- */

static void test_alloc_failures(void) {
    static char body[40000];
    size_t n = (size_t)sprintf(body, "--XyZ\r\n" CD "X: ");
    cz_memory_stats_t st;

    memset(body + n, 'h', 3000);
    n += 3000;
    n += (size_t)sprintf(body + n, "\r\n\r\nv\r\n--XyZ\r\n"
                                   "Content-Disposition: form-data; name=\"b\"; filename*=utf-8''x\r\n"
                                   "\r\nw\r\n--XyZ--");
    /* every allocation the parser makes, failed in turn: 500, nothing leaks */
    for (long at = 1;; at++) {
        static outcome_t o;

        g_fail_at = at;
        g_allocs = 0;
        run_whole(body, n, NULL, &o);
        g_fail_at = 0;
        if (o.done) {
            CHECK(at > 2); /* there were allocations to fail */
            break;
        }
        CHECK(o.broken == 0 && o.status == 500 && strcmp(o.reason, "multipart: out of memory") == 0);
        if (at > 50) {
            CHECK(!"allocation loop does not end");
            break;
        }
    }
    cz_allocator_stats(A, &st);
    CHECK(st.purpose[CZ_MEM_REQUEST].allocated == 0);
}

/* ---- reset and reuse ------------------------------------------------------------------ */

static void test_reset(void) {
    cz_multipart_t p;
    size_t used;
    static const char body[] = "--XyZ\r\n" CD "\r\nv\r\n--XyZ--";

    CHECK(cz_multipart_init(&p, A, "XyZ", 3, NULL) == 0);
    CHECK(cz_multipart_feed(&p, S("garbage"), &used) == CZ_MULTIPART_NEED_MORE && used == 7);
    CHECK(cz_multipart_feed(&p, S("\r\n--XyZx"), &used) == CZ_MULTIPART_ERROR);
    CHECK(cz_multipart_status(&p) == 400);
    cz_multipart_reset(&p);
    CHECK(cz_multipart_status(&p) == 0 && cz_multipart_reason(&p) == NULL);
    CHECK(cz_multipart_feed(&p, S(body), &used) == CZ_MULTIPART_PART_BEGIN);
    CHECK(cz_multipart_part(&p)->name.len == 1 && cz_multipart_part(&p)->name.base[0] == 'a');
    cz_multipart_destroy(&p);
    cz_multipart_destroy(&p); /* twice is harmless */

    /* a part's views last through PART_END; once the next part's headers
     * begin, the part shows as empty, not as stale memory */
    {
        static const char two[] = "--XyZ\r\n" CD "\r\nv\r\n--XyZ\r\nContent-Disposition: form-data; name=bb\r\n";
        const char *d = two;
        size_t n = sizeof(two) - 1;
        cz_multipart_event_t ev;

        CHECK(cz_multipart_init(&p, A, "XyZ", 3, NULL) == 0);
        do {
            ev = cz_multipart_feed(&p, d, n, &used);
            d += used;
            n -= used;
        } while (ev != CZ_MULTIPART_PART_END);
        CHECK(cz_multipart_part(&p)->name.len == 1 && cz_multipart_part(&p)->name.base[0] == 'a');
        CHECK(cz_multipart_feed(&p, d, n, &used) == CZ_MULTIPART_NEED_MORE && used == n);
        CHECK(cz_multipart_part(&p)->name.len == 0 && cz_multipart_part(&p)->name.base != NULL &&
              cz_multipart_part(&p)->num_headers == 0);
        cz_multipart_destroy(&p);
    }
}

/* ---- cz_spool: parts kept as they arrive, files spilled to disk ---------- */

static const char SPOOL_BODY[] = "--zz\r\n"
                                 "Content-Disposition: form-data; name=\"note\"\r\n\r\n"
                                 "hello\r\n"
                                 "--zz\r\n"
                                 "Content-Disposition: form-data; name=\"f\"; filename=\"a.bin\"\r\n"
                                 "Content-Type: application/octet-stream\r\n\r\n"
                                 "0123456789abcdefghijklmnopqrstuvwxyz\r\n"
                                 "--zz\r\n"
                                 "Content-Disposition: form-data; name=\"g\"; filename=\"s.txt\"\r\n\r\n"
                                 "tiny\r\n"
                                 "--zz--\r\n";

static void test_spool(void) {
    const char *ct = "multipart/form-data; boundary=zz", *reason = NULL;
    size_t len = sizeof(SPOOL_BODY) - 1;
    /* every split point: the same parts; a file past 16 bytes goes to disk */
    for (size_t cut = 0; cut <= len; cut += 7) {
        cz_spool_t s;
        CHECK(cz_spool_init(&s, A, ct, strlen(ct), NULL, 16, NULL, &reason) == 0);
        CHECK(cz_spool_feed(&s, SPOOL_BODY, cut) == 0);
        CHECK(cz_spool_feed(&s, SPOOL_BODY + cut, len - cut) == 0);
        CHECK(cz_spool_finish(&s) == 0);
        const cz_spool_part_t *p = cz_spool_parts(&s);
        CHECK(p && !p->has_filename && p->fd < 0 && p->len == 5 && memcmp(p->data, "hello", 5) == 0);
        CHECK(p && p->name.len == 4 && memcmp(p->name.base, "note", 4) == 0);
        p = p ? p->next : NULL;
        CHECK(p && p->has_filename && p->fd >= 0 && p->len == 36 && p->data == NULL);
        if (p && p->fd >= 0) {
            char back[36];
            CHECK(pread(p->fd, back, sizeof(back), 0) == 36 &&
                  memcmp(back, "0123456789abcdefghijklmnopqrstuvwxyz", 36) == 0);
            CHECK(p->content_type.len == 24 && p->filename.len == 5 && memcmp(p->filename.base, "a.bin", 5) == 0);
        }
        p = p ? p->next : NULL;
        CHECK(p && p->has_filename && p->fd < 0 && p->len == 4 && !p->next); /* small: stays in memory */
        cz_spool_destroy(&s);
    }
    /* a taken descriptor is the caller's; the others close with the spool */
    cz_spool_t s;
    CHECK(cz_spool_init(&s, A, ct, strlen(ct), NULL, 16, NULL, &reason) == 0);
    CHECK(cz_spool_feed(&s, SPOOL_BODY, len) == 0 && cz_spool_finish(&s) == 0);
    int fd = cz_spool_take_fd(((cz_spool_part_t *)cz_spool_parts(&s))->next);
    CHECK(fd >= 0);
    cz_spool_destroy(&s);
    CHECK(fd >= 0 && close(fd) == 0);
    /* truncated: 400 naming it; a bad Content-Type: 415/400 */
    CHECK(cz_spool_init(&s, A, ct, strlen(ct), NULL, 16, NULL, &reason) == 0);
    CHECK(cz_spool_feed(&s, SPOOL_BODY, len - 12) == 0 && cz_spool_finish(&s) == 400 && cz_spool_reason(&s) != NULL);
    cz_spool_destroy(&s);
    CHECK(cz_spool_init(&s, A, "text/plain", 10, NULL, 0, NULL, &reason) == 415 && reason != NULL);
    cz_spool_destroy(&s);
    /* a temporary directory that does not exist: 500, nothing kept */
    CHECK(cz_spool_init(&s, A, ct, strlen(ct), NULL, 16, "/nonexistent-catzilla-dir", &reason) == 0);
    CHECK(cz_spool_feed(&s, SPOOL_BODY, len) == 500 && s.error != 0);
    CHECK(strstr(cz_spool_reason(&s), "temporary file") != NULL);
    cz_spool_destroy(&s);
}

int main(void) {
    char why[128] = "";
    cz_memory_stats_t st;

    A = cz_allocator_create(CZ_BACKEND_MALLOC, why, sizeof(why));
    if (!A) {
        fprintf(stderr, "no allocator: %s\n", why);
        return 2;
    }
    test_boundary();
    test_good();
    test_crlf();
    test_malformed();
    test_limits();
    test_alloc_failures();
    test_reset();
    test_spool();

    cz_allocator_stats(A, &st);
    CHECK(st.purpose[CZ_MEM_REQUEST].allocated == 0);
    CHECK(st.purpose[CZ_MEM_REQUEST].nmalloc == st.purpose[CZ_MEM_REQUEST].nfree);
    cz_allocator_destroy(A);

    return check_summary();
}
