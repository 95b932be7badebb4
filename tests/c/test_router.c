/*
 * Unit tests of csrc/router (cz_router). Plain C, no framework.
 *
 * Build and run (malloc backend, sanitizers on):
 *   gcc -std=c11 -O1 -g -Wall -Wextra -Werror -fsanitize=address,undefined \
 *       -Icsrc/memory -Icsrc/router csrc/memory/cz_*.c \
 *       csrc/router/cz_router.c tests/c/test_router.c -DCZ_NO_JEMALLOC \
 *       -o /tmp/test_router && /tmp/test_router
 *
 * Allocation-failure injection (GNU ld), which checks that every failed
 * registration leaves the router unchanged and leaks nothing:
 *   add  -DCZ_TEST_FAULTS -Wl,--wrap=cz_malloc -Wl,--wrap=cz_realloc
 *
 * Prints one line per failed check (file:line: expression) and finally
 * "N passed, M failed"; exits non-zero when anything failed.
 */
#include "cz_memory.h"
#include "cz_router.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int g_pass, g_fail;

#define CHECK(expr)                                                                                                    \
    do {                                                                                                               \
        if (expr) {                                                                                                    \
            g_pass++;                                                                                                  \
        } else {                                                                                                       \
            g_fail++;                                                                                                  \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #expr);                                   \
        }                                                                                                              \
    } while (0)

static cz_allocator_t *g_alloc;
static char g_err[1024];
static char g_handlers[64]; /* &g_handlers[i] is handler i */

#define H(i) ((void *)&g_handlers[(i)])

/* ---- allocation-failure injection ------------------------------------------- */

#ifdef CZ_TEST_FAULTS
static long g_fault_at = -1; /* fail the call with this ordinal; -1 = never */
static long g_calls;

static int fault_now(void) {
    return g_fault_at >= 0 && g_calls++ == g_fault_at;
}

void *__real_cz_malloc(cz_allocator_t *a, cz_purpose_t p, size_t size);
void *__real_cz_realloc(cz_allocator_t *a, cz_purpose_t p, void *ptr, size_t size);
void *__wrap_cz_malloc(cz_allocator_t *a, cz_purpose_t p, size_t size);
void *__wrap_cz_realloc(cz_allocator_t *a, cz_purpose_t p, void *ptr, size_t size);

void *__wrap_cz_malloc(cz_allocator_t *a, cz_purpose_t p, size_t size) {
    return fault_now() ? NULL : __real_cz_malloc(a, p, size);
}

void *__wrap_cz_realloc(cz_allocator_t *a, cz_purpose_t p, void *ptr, size_t size) {
    return fault_now() ? NULL : __real_cz_realloc(a, p, ptr, size);
}
#endif

/* ---- helpers ------------------------------------------------------------------ */

static int add(cz_router_t *r, const char *method, const char *pattern, void *handler) {
    return cz_router_add(r, method, strlen(method), pattern, strlen(pattern), handler, NULL, g_err, sizeof g_err);
}

static cz_match_status_t match(const cz_router_t *r, const char *method, const char *path, cz_match_t *m) {
    return cz_router_match(r, method, strlen(method), path, strlen(path), m);
}

/* Is parameter i of m named `name` with value `value` in `path`? */
static int param_is(const cz_match_t *m, const char *path, uint32_t i, const char *name, const char *value) {
    const cz_param_t *p = &m->params[i];
    return i < m->nparams && p->name_len == strlen(name) && memcmp(p->name, name, p->name_len) == 0 &&
           p->len == strlen(value) && memcmp(path + p->offset, value, p->len) == 0;
}

static int found(const cz_router_t *r, const char *method, const char *path, void *handler) {
    cz_match_t m;
    return match(r, method, path, &m) == CZ_MATCH_FOUND && m.handler == handler;
}

static int not_found(const cz_router_t *r, const char *method, const char *path) {
    cz_match_t m;
    return match(r, method, path, &m) == CZ_MATCH_NOT_FOUND;
}

static size_t static_bytes(void) {
    cz_memory_stats_t st;
    cz_allocator_stats(g_alloc, &st);
    return st.purpose[CZ_MEM_STATIC].allocated;
}

static cz_router_t *new_router(void) {
    cz_router_t *r = cz_router_create(g_alloc);
    CHECK(r != NULL);
    return r;
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_static_and_root(void) {
    cz_router_t *r = new_router();
    cz_match_t m;

    CHECK(not_found(r, "GET", "/"));
    CHECK(add(r, "GET", "/", H(0)) == CZ_ROUTER_OK);
    CHECK(add(r, "GET", "/users", H(1)) == CZ_ROUTER_OK);
    CHECK(add(r, "GET", "/users/", H(2)) == CZ_ROUTER_OK);
    CHECK(add(r, "GET", "/users/me", H(3)) == CZ_ROUTER_OK);
    CHECK(add(r, "GET", "/user", H(4)) == CZ_ROUTER_OK);
    CHECK(add(r, "GET", "/u", H(5)) == CZ_ROUTER_OK);
    CHECK(add(r, "GET", "/caf\xc3\xa9", H(6)) == CZ_ROUTER_OK);

    CHECK(found(r, "GET", "/", H(0)));
    CHECK(found(r, "GET", "/users", H(1)));
    CHECK(found(r, "GET", "/users/", H(2)));
    CHECK(found(r, "GET", "/users/me", H(3)));
    CHECK(found(r, "GET", "/user", H(4)));
    CHECK(found(r, "GET", "/u", H(5)));
    CHECK(found(r, "GET", "/caf\xc3\xa9", H(6)));
    CHECK(not_found(r, "GET", "/us"));
    CHECK(not_found(r, "GET", "/usersx"));
    CHECK(not_found(r, "GET", "/users/m"));
    CHECK(not_found(r, "GET", "/users/me/"));
    CHECK(not_found(r, "GET", "/USERS"));
    CHECK(not_found(r, "GET", "//"));

    CHECK(match(r, "GET", "/users/me", &m) == CZ_MATCH_FOUND);
    CHECK(m.route_index == 3 && m.nparams == 0 && m.status == CZ_MATCH_FOUND);
    cz_router_destroy(r);
}

static void test_priority_and_backtracking(void) {
    cz_router_t *r = new_router();
    cz_match_t m;
    const char *p;

    CHECK(add(r, "GET", "/users/me", H(0)) == CZ_ROUTER_OK);
    CHECK(add(r, "GET", "/users/{id}", H(1)) == CZ_ROUTER_OK);
    CHECK(add(r, "GET", "/users/{id}/posts", H(2)) == CZ_ROUTER_OK);
    CHECK(add(r, "GET", "/users/{rest:path}", H(3)) == CZ_ROUTER_OK);
    CHECK(add(r, "GET", "/users/me/settings", H(4)) == CZ_ROUTER_OK);
    CHECK(add(r, "GET", "/users/mexico/flag", H(5)) == CZ_ROUTER_OK);

    CHECK(found(r, "GET", "/users/me", H(0))); /* static beats parameter */
    p = "/users/42";
    CHECK(match(r, "GET", p, &m) == CZ_MATCH_FOUND && m.handler == H(1));
    CHECK(m.nparams == 1 && param_is(&m, p, 0, "id", "42"));
    p = "/users/me/posts"; /* backtrack from static "me" */
    CHECK(match(r, "GET", p, &m) == CZ_MATCH_FOUND && m.handler == H(2));
    CHECK(m.nparams == 1 && param_is(&m, p, 0, "id", "me"));
    CHECK(found(r, "GET", "/users/me/settings", H(4))); /* static all the way */
    p = "/users/mexico";                                /* label "me" is a prefix only */
    CHECK(match(r, "GET", p, &m) == CZ_MATCH_FOUND && m.handler == H(1));
    CHECK(param_is(&m, p, 0, "id", "mexico"));
    CHECK(found(r, "GET", "/users/mexico/flag", H(5)));
    p = "/users/mexico/posts";
    CHECK(match(r, "GET", p, &m) == CZ_MATCH_FOUND && m.handler == H(2));
    CHECK(param_is(&m, p, 0, "id", "mexico"));
    p = "/users/me/other/x"; /* parameter dead-ends: catch-all */
    CHECK(match(r, "GET", p, &m) == CZ_MATCH_FOUND && m.handler == H(3));
    CHECK(m.nparams == 1 && param_is(&m, p, 0, "rest", "me/other/x"));
    p = "/users/42/posts/"; /* catch-all keeps trailing slash */
    CHECK(match(r, "GET", p, &m) == CZ_MATCH_FOUND && m.handler == H(3));
    CHECK(param_is(&m, p, 0, "rest", "42/posts/"));
    CHECK(not_found(r, "GET", "/users/")); /* wildcards need >= 1 byte */
    CHECK(not_found(r, "GET", "/users"));
    p = "/users//x"; /* empty segment: catch-all only */
    CHECK(match(r, "GET", p, &m) == CZ_MATCH_FOUND && m.handler == H(3));
    CHECK(param_is(&m, p, 0, "rest", "/x"));
    cz_router_destroy(r);

    /* Backtracking on the method: the static route exists but not for GET. */
    r = new_router();
    CHECK(add(r, "POST", "/a/b", H(0)) == CZ_ROUTER_OK);
    CHECK(add(r, "GET", "/a/{x}", H(1)) == CZ_ROUTER_OK);
    CHECK(add(r, "DELETE", "/a/{p:path}", H(2)) == CZ_ROUTER_OK);
    CHECK(found(r, "POST", "/a/b", H(0)));
    CHECK(found(r, "GET", "/a/b", H(1)));
    CHECK(found(r, "DELETE", "/a/b", H(2)));
    CHECK(match(r, "PUT", "/a/b", &m) == CZ_MATCH_METHOD_NOT_ALLOWED);
    CHECK(m.allowed == (CZ_METHOD_GET | CZ_METHOD_HEAD | CZ_METHOD_POST | CZ_METHOD_DELETE));
    CHECK(match(r, "PUT", "/a/b/c", &m) == CZ_MATCH_METHOD_NOT_ALLOWED && m.allowed == CZ_METHOD_DELETE);
    cz_router_destroy(r);

    /* Parameter at the root, and parameter versus catch-all at one level. */
    r = new_router();
    CHECK(add(r, "GET", "/{page}", H(0)) == CZ_ROUTER_OK);
    CHECK(add(r, "GET", "/{page}/{b}/c", H(1)) == CZ_ROUTER_OK);
    CHECK(add(r, "GET", "/{all:path}", H(2)) == CZ_ROUTER_OK);
    CHECK(found(r, "GET", "/index", H(0)));
    CHECK(found(r, "GET", "/x/y/c", H(1)));
    CHECK(found(r, "GET", "/x/y/d", H(2)));
    CHECK(found(r, "GET", "/index/", H(2)));
    CHECK(not_found(r, "GET", "/"));
    cz_router_destroy(r);
}

static void test_params(void) {
    cz_router_t *r = new_router();
    cz_match_t m;
    char pat[512], path[512];
    size_t i;
    const char *p;

    CHECK(add(r, "GET", "/org/{org}/repo/{repo_2}/blob/{path:path}", H(0)) == CZ_ROUTER_OK);
    CHECK(add(r, "GET", "/org/{org}/repo/{repo_2}", H(1)) == CZ_ROUTER_OK);
    CHECK(add(r, "GET", "/org/{org}", H(2)) == CZ_ROUTER_OK);

    p = "/org/cat%20zilla/repo/core/blob/src/a/b.c";
    CHECK(match(r, "GET", p, &m) == CZ_MATCH_FOUND && m.handler == H(0) && m.nparams == 3);
    CHECK(param_is(&m, p, 0, "org", "cat%20zilla"));
    CHECK(param_is(&m, p, 1, "repo_2", "core"));
    CHECK(param_is(&m, p, 2, "path", "src/a/b.c"));
    CHECK(m.params[0].name[m.params[0].name_len] == '\0');
    p = "/org/x/repo/y";
    CHECK(match(r, "GET", p, &m) == CZ_MATCH_FOUND && m.handler == H(1) && m.nparams == 2);
    CHECK(param_is(&m, p, 1, "repo_2", "y"));
    p = "/org/x";
    CHECK(match(r, "GET", p, &m) == CZ_MATCH_FOUND && m.nparams == 1 && param_is(&m, p, 0, "org", "x"));
    CHECK(not_found(r, "GET", "/org/x/repo/y/blob"));
    CHECK(not_found(r, "GET", "/org/x/repo/y/blob/"));
    CHECK(not_found(r, "GET", "/org//repo/y"));
    cz_router_destroy(r);

    /* The maximum number of parameters is accepted and captured. */
    r = new_router();
    strcpy(pat, "");
    strcpy(path, "");
    for (i = 0; i < CZ_ROUTER_MAX_PARAMS; i++) {
        size_t pl = strlen(pat), ql = strlen(path);
        snprintf(pat + pl, sizeof pat - pl, "/{p%zu}", i);
        snprintf(path + ql, sizeof path - ql, "/v%zu", i);
    }
    CHECK(add(r, "GET", pat, H(0)) == CZ_ROUTER_OK);
    CHECK(match(r, "GET", path, &m) == CZ_MATCH_FOUND && m.nparams == CZ_ROUTER_MAX_PARAMS);
    CHECK(param_is(&m, path, 0, "p0", "v0"));
    CHECK(param_is(&m, path, 15, "p15", "v15"));
    cz_router_destroy(r);
}

/* Expect `rc` from registering (method, pattern) and every needle in the message. */
static void expect_error(cz_router_t *r, const char *method, const char *pattern, size_t plen, int rc,
                         const char *needle1, const char *needle2, int line) {
    size_t routes = cz_router_route_count(r), nodes = cz_router_node_count(r), bytes = static_bytes();
    int got = cz_router_add(r, method, strlen(method), pattern, plen, H(9), NULL, g_err, sizeof g_err);
    int ok = got == rc && strstr(g_err, cz_router_strerror(rc)) != NULL &&
             (needle1 == NULL || strstr(g_err, needle1) != NULL) && (needle2 == NULL || strstr(g_err, needle2) != NULL);
    CHECK(ok);
    /* A refused registration changes nothing and allocates nothing. */
    CHECK(cz_router_route_count(r) == routes && cz_router_node_count(r) == nodes && static_bytes() == bytes);
    if (!ok) fprintf(stderr, "  (line %d) rc=%d message: %s\n", line, got, g_err);
}

#define EXPECT_ERROR(r, m, pat, rc, n1, n2) expect_error((r), (m), (pat), strlen(pat), (rc), (n1), (n2), __LINE__)

static void test_errors(void) {
    cz_router_t *r = new_router();
    char big[CZ_ROUTER_MAX_PATTERN + 2];
    char pat[1024];
    char small[16];
    size_t i;
    int rc;

    CHECK(add(r, "GET", "/users/{id}", H(0)) == CZ_ROUTER_OK);
    CHECK(add(r, "GET", "/files/{p:path}", H(1)) == CZ_ROUTER_OK);

    EXPECT_ERROR(r, "GET", "/users/{id}", CZ_ROUTER_EDUPLICATE, "GET \"/users/{id}\"", "route #0");
    EXPECT_ERROR(r, "GET", "/users/{name}", CZ_ROUTER_ECONFLICT, "{name}", "{id}");
    EXPECT_ERROR(r, "POST", "/users/{name}/x", CZ_ROUTER_ECONFLICT, "route #0 (GET \"/users/{id}\")", NULL);
    EXPECT_ERROR(r, "GET", "/files/{rest:path}", CZ_ROUTER_ECONFLICT, "{rest:path}", "{p:path}");
    CHECK(add(r, "POST", "/users/{id}", H(2)) == CZ_ROUTER_OK);  /* other method: fine */
    CHECK(add(r, "GET", "/files/{name}", H(3)) == CZ_ROUTER_OK); /* param beside catch-all: fine */

    EXPECT_ERROR(r, "GET", "/f/{p:path}/x", CZ_ROUTER_ESYNTAX, "catch-all", "not the last segment");
    EXPECT_ERROR(r, "GET", "/f/{p:path}x", CZ_ROUTER_ESYNTAX, "not the last segment", NULL);
    EXPECT_ERROR(r, "GET", "/a/{id", CZ_ROUTER_ESYNTAX, "unclosed '{' at offset 3", NULL);
    EXPECT_ERROR(r, "GET", "/a/{id/x}", CZ_ROUTER_ESYNTAX, "unclosed '{'", NULL);
    EXPECT_ERROR(r, "GET", "/a/{id:path", CZ_ROUTER_ESYNTAX, "unclosed '{'", NULL);
    EXPECT_ERROR(r, "GET", "/a/id}", CZ_ROUTER_ESYNTAX, "unmatched '}' at offset 5", NULL);
    EXPECT_ERROR(r, "GET", "/a/{{id}}", CZ_ROUTER_ESYNTAX, "nested '{'", NULL);
    EXPECT_ERROR(r, "GET", "/a{id}", CZ_ROUTER_ESYNTAX, "'{' inside a segment", NULL);
    EXPECT_ERROR(r, "GET", "/a/{id}x", CZ_ROUTER_ESYNTAX, "'}' inside a segment", NULL);
    EXPECT_ERROR(r, "GET", "/a/{}", CZ_ROUTER_ESYNTAX, "empty parameter name", NULL);
    EXPECT_ERROR(r, "GET", "/a/{:path}", CZ_ROUTER_ESYNTAX, "empty parameter name", NULL);
    EXPECT_ERROR(r, "GET", "/a/{1d}", CZ_ROUTER_ESYNTAX, "starts with a digit", NULL);
    EXPECT_ERROR(r, "GET", "/a/{i-d}", CZ_ROUTER_ESYNTAX, "bad byte in parameter name", "offset 5");
    EXPECT_ERROR(r, "GET", "/a b", CZ_ROUTER_ESYNTAX, "bad byte 0x20 at offset 2", "\"/a b\"");
    EXPECT_ERROR(r, "GET", "/a\x01", CZ_ROUTER_ESYNTAX, "bad byte 0x01", "\"/a\\x01\"");
    expect_error(r, "GET", "/a\0b", 4, CZ_ROUTER_ESYNTAX, "bad byte 0x00 at offset 2", "\"/a\\x00b\"", __LINE__);
    EXPECT_ERROR(r, "GET", "/a\x7f", CZ_ROUTER_ESYNTAX, "bad byte 0x7f", NULL);
    EXPECT_ERROR(r, "GET", "/search?q={q}", CZ_ROUTER_ESYNTAX, "query string", NULL);
    EXPECT_ERROR(r, "GET", "/a#frag", CZ_ROUTER_ESYNTAX, "fragment", NULL);
    EXPECT_ERROR(r, "GET", "users", CZ_ROUTER_ESYNTAX, "does not start with '/'", "\"users\"");
    EXPECT_ERROR(r, "GET", "", CZ_ROUTER_ESYNTAX, "does not start with '/'", NULL);
    EXPECT_ERROR(r, "GET", "/a/{id:int}", CZ_ROUTER_ESYNTAX, "unsupported converter 'int'", NULL);
    EXPECT_ERROR(r, "GET", "/a/{x}/b/{x}", CZ_ROUTER_ESYNTAX, "parameter name 'x' is used twice", NULL);

    /* Limits. */
    big[0] = '/';
    memset(big + 1, 'a', sizeof big - 1);
    expect_error(r, "GET", big, CZ_ROUTER_MAX_PATTERN + 1, CZ_ROUTER_ELIMIT, "2049 bytes long (max 2048)", "...\"",
                 __LINE__);
    CHECK(cz_router_add(r, "GET", 3, big, CZ_ROUTER_MAX_PATTERN, H(4), NULL, g_err, sizeof g_err) == CZ_ROUTER_OK);
    pat[0] = '\0';
    for (i = 0; i <= CZ_ROUTER_MAX_PARAMS; i++) snprintf(pat + strlen(pat), sizeof pat - strlen(pat), "/{p%zu}", i);
    EXPECT_ERROR(r, "GET", pat, CZ_ROUTER_ELIMIT, "more than 16 parameters", NULL);
    pat[0] = '\0';
    for (i = 0; i <= CZ_ROUTER_MAX_SEGMENTS; i++) strcat(pat, "/s");
    EXPECT_ERROR(r, "GET", pat, CZ_ROUTER_ELIMIT, "more than 128 segments", NULL);
    pat[strlen(pat) - 2] = '\0'; /* exactly 128 segments */
    CHECK(add(r, "GET", pat, H(5)) == CZ_ROUTER_OK);

    /* Methods. */
    EXPECT_ERROR(r, "", "/m", CZ_ROUTER_EMETHOD, "method is empty", NULL);
    EXPECT_ERROR(r, "GE T", "/m", CZ_ROUTER_EMETHOD, "not an HTTP token", "\"GE T\"");
    EXPECT_ERROR(r, "GET\r\n", "/m", CZ_ROUTER_EMETHOD, "\"GET\\x0d\\x0a\"", NULL);
    EXPECT_ERROR(r, "ABCDEFGHIJABCDEFGHIJABCDEFGHIJABC", "/m", CZ_ROUTER_EMETHOD, "longer than 32 bytes", NULL);
    for (i = 0; i < CZ_ROUTER_MAX_EXT_METHODS; i++) {
        char name[16];
        snprintf(name, sizeof name, "X-EXT%zu", i);
        CHECK(add(r, name, "/ext", H(6)) == CZ_ROUTER_OK);
    }
    EXPECT_ERROR(r, "ONEMORE", "/ext", CZ_ROUTER_ELIMIT, "more than 16 distinct extension methods", NULL);
    CHECK(add(r, "X-EXT3", "/ext2", H(7)) == CZ_ROUTER_OK); /* known extension still fine */

    /* Arguments and message buffers. */
    CHECK(cz_router_add(NULL, "GET", 3, "/", 1, H(0), NULL, g_err, sizeof g_err) == CZ_ROUTER_EINVAL);
    CHECK(strstr(g_err, "router is NULL") != NULL);
    CHECK(cz_router_add(r, "GET", 3, NULL, 5, H(0), NULL, g_err, sizeof g_err) == CZ_ROUTER_EINVAL);
    CHECK(cz_router_add(r, "GET", 3, "/users/{id}", 11, H(0), NULL, NULL, 0) == CZ_ROUTER_EDUPLICATE);
    memset(small, 'Z', sizeof small);
    rc = cz_router_add(r, "GET", 3, "/users/{id}", 11, H(0), NULL, small, sizeof small);
    CHECK(rc == CZ_ROUTER_EDUPLICATE && strlen(small) == sizeof small - 1 && strncmp(small, "duplicate", 9) == 0);
    CHECK(strcmp(cz_router_strerror(12345), "unknown router error") == 0);
    cz_router_destroy(r);
}

static void test_405_and_allow(void) {
    cz_router_t *r = new_router();
    cz_match_t m;
    char buf[CZ_ROUTER_ALLOW_MAX];
    char tiny[8];
    size_t n;

    CHECK(add(r, "GET", "/items", H(0)) == CZ_ROUTER_OK);
    CHECK(add(r, "POST", "/items", H(1)) == CZ_ROUTER_OK);
    CHECK(add(r, "DELETE", "/items/{id}", H(2)) == CZ_ROUTER_OK);
    CHECK(add(r, "PURGE", "/items/{id}", H(3)) == CZ_ROUTER_OK);
    CHECK(add(r, "OPTIONS", "/opt", H(4)) == CZ_ROUTER_OK);

    CHECK(match(r, "PUT", "/items", &m) == CZ_MATCH_METHOD_NOT_ALLOWED);
    CHECK(m.allowed == (CZ_METHOD_GET | CZ_METHOD_HEAD | CZ_METHOD_POST) && m.slash == CZ_SLASH_NONE);
    n = cz_router_allow_header(r, m.allowed, buf, sizeof buf);
    CHECK(strcmp(buf, "GET, HEAD, POST, OPTIONS") == 0 && n == strlen(buf));

    CHECK(match(r, "GET", "/items/7", &m) == CZ_MATCH_METHOD_NOT_ALLOWED);
    n = cz_router_allow_header(r, m.allowed, buf, sizeof buf);
    CHECK(strcmp(buf, "DELETE, OPTIONS, PURGE") == 0 && n == 22);
    CHECK(found(r, "PURGE", "/items/7", H(3)));
    CHECK(cz_router_method_bit(r, "PURGE", 5) == (1u << CZ_METHOD_STANDARD_COUNT));

    /* Unknown and lowercase methods: the path matches, so 405. */
    CHECK(match(r, "BREW", "/items", &m) == CZ_MATCH_METHOD_NOT_ALLOWED);
    CHECK(match(r, "get", "/items", &m) == CZ_MATCH_METHOD_NOT_ALLOWED);
    CHECK(cz_router_match(r, NULL, 0, "/items", 6, &m) == CZ_MATCH_METHOD_NOT_ALLOWED);
    CHECK(not_found(r, "BREW", "/nothing"));

    /* OPTIONS: found where registered, otherwise 405 with the Allow set. */
    CHECK(found(r, "OPTIONS", "/opt", H(4)));
    CHECK(match(r, "OPTIONS", "/items", &m) == CZ_MATCH_METHOD_NOT_ALLOWED);
    CHECK(match(r, "GET", "/opt", &m) == CZ_MATCH_METHOD_NOT_ALLOWED && m.allowed == CZ_METHOD_OPTIONS);
    cz_router_allow_header(r, m.allowed, buf, sizeof buf);
    CHECK(strcmp(buf, "OPTIONS") == 0);

    /* Bounded output: never a cut header. */
    memset(tiny, 'Z', sizeof tiny);
    n = cz_router_allow_header(r, CZ_METHOD_GET | CZ_METHOD_POST, tiny, sizeof tiny);
    CHECK(n == strlen("GET, HEAD, POST, OPTIONS") && tiny[0] == '\0');
    CHECK(cz_router_allow_header(r, CZ_METHOD_GET, NULL, 0) == strlen("GET, HEAD, OPTIONS"));
    n = cz_router_allow_header(r, 0, buf, 8);
    CHECK(n == 7 && strcmp(buf, "OPTIONS") == 0);
    n = cz_router_allow_header(r, 0, buf, 7); /* no room for the NUL */
    CHECK(n == 7 && buf[0] == '\0');
    n = cz_router_allow_header(r, 0xffffffffu, buf, sizeof buf);
    CHECK(n < sizeof buf && strcmp(buf, "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, PURGE") == 0);
    cz_router_destroy(r);
}

static void test_allow_max(void) {
    cz_router_t *r = new_router();
    char buf[CZ_ROUTER_ALLOW_MAX];
    char name[CZ_ROUTER_METHOD_MAX + 1];
    size_t i, n;

    for (i = 0; i < CZ_ROUTER_MAX_EXT_METHODS; i++) {
        memset(name, 'A' + (int)i, CZ_ROUTER_METHOD_MAX);
        CHECK(cz_router_add(r, name, CZ_ROUTER_METHOD_MAX, "/x", 2, H(0), NULL, g_err, sizeof g_err) == CZ_ROUTER_OK);
    }
    n = cz_router_allow_header(r, 0xffffffffu, buf, sizeof buf);
    CHECK(n == CZ_ROUTER_ALLOW_MAX - 1 && strlen(buf) == n);
    cz_router_destroy(r);
}

static void test_head(void) {
    cz_router_t *r = new_router();
    cz_match_t m;

    CHECK(add(r, "GET", "/a", H(0)) == CZ_ROUTER_OK);
    CHECK(add(r, "GET", "/b", H(1)) == CZ_ROUTER_OK);
    CHECK(add(r, "HEAD", "/b", H(2)) == CZ_ROUTER_OK);
    CHECK(add(r, "POST", "/c", H(3)) == CZ_ROUTER_OK);
    CHECK(add(r, "HEAD", "/d", H(4)) == CZ_ROUTER_OK);

    CHECK(match(r, "HEAD", "/a", &m) == CZ_MATCH_FOUND && m.handler == H(0) && m.route_index == 0);
    CHECK(found(r, "HEAD", "/b", H(2)));
    CHECK(found(r, "GET", "/b", H(1)));
    CHECK(match(r, "HEAD", "/c", &m) == CZ_MATCH_METHOD_NOT_ALLOWED && m.allowed == CZ_METHOD_POST);
    CHECK(match(r, "GET", "/d", &m) == CZ_MATCH_METHOD_NOT_ALLOWED && m.allowed == CZ_METHOD_HEAD);
    CHECK(match(r, "POST", "/a", &m) == CZ_MATCH_METHOD_NOT_ALLOWED);
    CHECK(m.allowed == (CZ_METHOD_GET | CZ_METHOD_HEAD));
    cz_router_destroy(r);
}

static void test_trailing_slash(void) {
    cz_router_t *r = new_router();
    cz_match_t m;

    CHECK(add(r, "GET", "/users", H(0)) == CZ_ROUTER_OK);
    CHECK(add(r, "GET", "/docs/", H(1)) == CZ_ROUTER_OK);
    CHECK(add(r, "GET", "/x/{id}/", H(2)) == CZ_ROUTER_OK);
    CHECK(add(r, "GET", "/files/{p:path}", H(3)) == CZ_ROUTER_OK);
    CHECK(add(r, "GET", "/both", H(4)) == CZ_ROUTER_OK);
    CHECK(add(r, "GET", "/both/", H(5)) == CZ_ROUTER_OK);
    CHECK(add(r, "POST", "/post/", H(6)) == CZ_ROUTER_OK);

    CHECK(match(r, "GET", "/users/", &m) == CZ_MATCH_NOT_FOUND && m.slash == CZ_SLASH_REMOVE);
    CHECK(match(r, "GET", "/docs", &m) == CZ_MATCH_NOT_FOUND && m.slash == CZ_SLASH_ADD);
    CHECK(match(r, "HEAD", "/docs", &m) == CZ_MATCH_NOT_FOUND && m.slash == CZ_SLASH_ADD);
    CHECK(match(r, "GET", "/x/42", &m) == CZ_MATCH_NOT_FOUND && m.slash == CZ_SLASH_ADD);
    CHECK(match(r, "GET", "/x/", &m) == CZ_MATCH_NOT_FOUND && m.slash == CZ_SLASH_NONE);
    CHECK(match(r, "GET", "/files", &m) == CZ_MATCH_NOT_FOUND && m.slash == CZ_SLASH_NONE);
    CHECK(match(r, "GET", "/files/a/", &m) == CZ_MATCH_FOUND && param_is(&m, "/files/a/", 0, "p", "a/"));
    CHECK(found(r, "GET", "/both", H(4)) && found(r, "GET", "/both/", H(5)));
    CHECK(match(r, "GET", "/users//", &m) == CZ_MATCH_NOT_FOUND && m.slash == CZ_SLASH_NONE);
    CHECK(match(r, "GET", "/nope", &m) == CZ_MATCH_NOT_FOUND && m.slash == CZ_SLASH_NONE);
    /* The hint is for the same method. */
    CHECK(match(r, "GET", "/post", &m) == CZ_MATCH_NOT_FOUND && m.slash == CZ_SLASH_NONE);
    CHECK(match(r, "POST", "/post", &m) == CZ_MATCH_NOT_FOUND && m.slash == CZ_SLASH_ADD);
    CHECK(match(r, "PUT", "/users/", &m) == CZ_MATCH_NOT_FOUND && m.slash == CZ_SLASH_NONE);
    /* 405 takes precedence over the hint. */
    CHECK(match(r, "POST", "/users", &m) == CZ_MATCH_METHOD_NOT_ALLOWED && m.slash == CZ_SLASH_NONE);
    /* Root: "/" never suggests "", and "" suggests nothing. */
    CHECK(match(r, "GET", "/", &m) == CZ_MATCH_NOT_FOUND && m.slash == CZ_SLASH_NONE);
    CHECK(match(r, "GET", "", &m) == CZ_MATCH_NOT_FOUND && m.slash == CZ_SLASH_NONE);
    CHECK(add(r, "GET", "/", H(7)) == CZ_ROUTER_OK);
    CHECK(match(r, "GET", "", &m) == CZ_MATCH_NOT_FOUND && m.slash == CZ_SLASH_NONE);
    CHECK(found(r, "GET", "/", H(7)));
    cz_router_destroy(r);
}

static void test_many_routes(void) {
    enum { N = 5000 };
    cz_router_t *r = new_router();
    cz_route_info_t info;
    cz_match_t m;
    char pat[128], path[128], want[32];
    size_t i;
    uint32_t idx;
    int all_added = 1, all_found = 1, all_listed = 1;

    for (i = 0; i < N; i++) {
        const char *method = i % 3 == 0 ? "GET" : i % 3 == 1 ? "POST" : "PUT";
        switch (i % 4) {
        case 0: snprintf(pat, sizeof pat, "/api/v1/resource%zu", i); break;
        case 1: snprintf(pat, sizeof pat, "/api/v1/r%zu/{id}", i); break;
        case 2: snprintf(pat, sizeof pat, "/g/%zu/items/{item}/detail", i); break;
        default: snprintf(pat, sizeof pat, "/s%zu/{rest:path}", i); break;
        }
        if (cz_router_add(r, method, strlen(method), pat, strlen(pat), H(i % 64), &idx, g_err, sizeof g_err) !=
                CZ_ROUTER_OK ||
            idx != i)
            all_added = 0;
    }
    CHECK(all_added);
    CHECK(cz_router_route_count(r) == N);

    for (i = 0; i < N; i++) {
        const char *method = i % 3 == 0 ? "GET" : i % 3 == 1 ? "POST" : "PUT";
        int ok;
        snprintf(want, sizeof want, "v%zu", i * 7);
        switch (i % 4) {
        case 0: snprintf(path, sizeof path, "/api/v1/resource%zu", i); break;
        case 1: snprintf(path, sizeof path, "/api/v1/r%zu/%s", i, want); break;
        case 2: snprintf(path, sizeof path, "/g/%zu/items/%s/detail", i, want); break;
        default:
            snprintf(path, sizeof path, "/s%zu/%s/x/y", i, want);
            strcat(want, "/x/y");
            break;
        }
        ok = match(r, method, path, &m) == CZ_MATCH_FOUND && m.route_index == i && m.handler == H(i % 64);
        if (ok && i % 4 != 0)
            ok = m.nparams == 1 && m.params[0].len == strlen(want) &&
                 memcmp(path + m.params[0].offset, want, m.params[0].len) == 0;
        if (!ok) {
            all_found = 0;
            fprintf(stderr, "  route %zu not found as expected: %s\n", i, path);
        }
        if (cz_router_route_at(r, i, &info) != 0 || info.index != i || strcmp(info.method, method) != 0 ||
            info.method_len != strlen(method) || info.handler != H(i % 64) || info.pattern_len != strlen(info.pattern))
            all_listed = 0;
    }
    CHECK(all_found);
    CHECK(all_listed);
    CHECK(cz_router_route_at(r, N, &info) == -1);
    CHECK(cz_router_route_at(r, 1, &info) == 0 && strcmp(info.pattern, "/api/v1/r1/{id}") == 0);
    CHECK(not_found(r, "GET", "/api/v1/resource5001"));
    CHECK(not_found(r, "GET", "/api/v1/resource"));
    CHECK(match(r, "GET", "/api/v1/resource4", &m) == CZ_MATCH_METHOD_NOT_ALLOWED);
    cz_router_destroy(r);
}

static void test_hostile_paths(void) {
    static char big[65536 + 1];
    cz_router_t *r = new_router();
    cz_match_t m;
    size_t i;

    CHECK(add(r, "GET", "/", H(0)) == CZ_ROUTER_OK);
    CHECK(add(r, "GET", "/users/{id}", H(1)) == CZ_ROUTER_OK);
    CHECK(add(r, "GET", "/users/{id}/posts/{post}", H(2)) == CZ_ROUTER_OK);
    CHECK(add(r, "GET", "/static/{p:path}", H(3)) == CZ_ROUTER_OK);
    CHECK(add(r, "GET", "/a/b/c", H(4)) == CZ_ROUTER_OK);
    CHECK(add(r, "GET", "/{x}/{y}/{z}", H(5)) == CZ_ROUTER_OK);

    CHECK(not_found(r, "GET", ""));
    CHECK(cz_router_match(r, "GET", 3, NULL, 0, &m) == CZ_MATCH_NOT_FOUND);
    CHECK(cz_router_match(r, "GET", 3, NULL, 5, &m) == CZ_MATCH_NOT_FOUND);
    CHECK(cz_router_match(NULL, "GET", 3, "/", 1, &m) == CZ_MATCH_NOT_FOUND);
    CHECK(cz_router_match(r, "GET", 3, "/", 1, NULL) == CZ_MATCH_NOT_FOUND);
    CHECK(not_found(r, "GET", "//"));
    CHECK(not_found(r, "GET", "///"));
    CHECK(not_found(r, "GET", "users"));
    CHECK(not_found(r, "GET", "/users//posts/1"));
    CHECK(found(r, "GET", "/users/..", H(1))); /* no normalization */
    CHECK(found(r, "GET", "/../../..", H(5)));
    CHECK(found(r, "GET", "/users/%2e%2e", H(1)));
    CHECK(found(r, "GET", "/users/\xff\xfe\x80", H(1))); /* not UTF-8: just bytes */
    CHECK(cz_router_match(r, "GET", 3, "/users/a\0b", 10, &m) == CZ_MATCH_FOUND && m.params[0].len == 3);
    CHECK(cz_router_match(r, "GET", 3, "/a/b/\0", 6, &m) == CZ_MATCH_FOUND && m.handler == H(5));
    CHECK(cz_router_match(r, "GET", 3, "/\0", 2, &m) == CZ_MATCH_NOT_FOUND);
    CHECK(cz_router_match(r, "G\0T", 3, "/", 1, &m) == CZ_MATCH_METHOD_NOT_ALLOWED);

    /* 64 KB paths: one long segment, all slashes, many segments, catch-all. */
    big[0] = '/';
    memset(big + 1, 'a', sizeof big - 2);
    CHECK(cz_router_match(r, "GET", 3, big, sizeof big - 1, &m) == CZ_MATCH_NOT_FOUND);
    memset(big, '/', sizeof big - 1);
    CHECK(cz_router_match(r, "GET", 3, big, sizeof big - 1, &m) == CZ_MATCH_NOT_FOUND);
    for (i = 0; i + 1 < sizeof big - 1; i += 2) {
        big[i] = '/';
        big[i + 1] = 'a';
    }
    CHECK(cz_router_match(r, "GET", 3, big, sizeof big - 1, &m) == CZ_MATCH_NOT_FOUND);
    memcpy(big, "/users/", 7);
    CHECK(cz_router_match(r, "GET", 3, big, sizeof big - 1, &m) == CZ_MATCH_NOT_FOUND);
    memcpy(big, "/static/", 8);
    CHECK(cz_router_match(r, "GET", 3, big, sizeof big - 1, &m) == CZ_MATCH_FOUND && m.handler == H(3));
    CHECK(m.nparams == 1 && m.params[0].offset == 8 && m.params[0].len == sizeof big - 1 - 8);
    memset(big + 8, '\0', sizeof big - 9);
    CHECK(cz_router_match(r, "GET", 3, big, sizeof big - 1, &m) == CZ_MATCH_FOUND && m.handler == H(3));

    /* A 64 KB method is simply unknown. */
    memset(big, 'G', sizeof big - 1);
    CHECK(cz_router_match(r, big, sizeof big - 1, "/", 1, &m) == CZ_MATCH_METHOD_NOT_ALLOWED);
    cz_router_destroy(r);
}

/* Backtracking through every level of the deepest allowed pattern: a
 * catch-all at each depth, only the shallowest one for GET. */
static void test_deep_backtracking(void) {
    static char pat[CZ_ROUTER_MAX_PATTERN], path[CZ_ROUTER_MAX_PATTERN];
    cz_router_t *r = new_router();
    cz_match_t m;
    size_t d, len;
    int ok = 1;

    for (d = 1; d < CZ_ROUTER_MAX_SEGMENTS; d++) {
        pat[0] = '\0';
        for (len = 0; len < d; len++) strcat(pat, "/s");
        strcat(pat, "/{p:path}");
        ok &= add(r, d == 1 ? "GET" : "POST", pat, H(d % 64)) == CZ_ROUTER_OK;
    }
    CHECK(ok);
    path[0] = '\0';
    for (len = 0; len + 1 < CZ_ROUTER_MAX_SEGMENTS; len++) strcat(path, "/s");
    strcat(path, "/x");
    CHECK(match(r, "GET", path, &m) == CZ_MATCH_FOUND && m.handler == H(1) && m.nparams == 1);
    CHECK(m.params[0].offset == 3 && m.params[0].len == strlen(path) - 3);
    CHECK(match(r, "POST", path, &m) == CZ_MATCH_FOUND && m.route_index == CZ_ROUTER_MAX_SEGMENTS - 2);
    CHECK(match(r, "PUT", path, &m) == CZ_MATCH_METHOD_NOT_ALLOWED);
    CHECK(m.allowed == (CZ_METHOD_GET | CZ_METHOD_HEAD | CZ_METHOD_POST));
    cz_router_destroy(r);
}

/* Shapes of the tree that registration must handle in any order. */
static void test_insertion_orders(void) {
    static const char *const pats[] = {
        "/",       "/a",          "/ab",         "/abc", "/abd",      "/a/",    "/a/{x}",
        "/a/{x}/", "/a/{x}/y",    "/a/{p:path}", "/a/b", "/a/bc/{z}", "/b/{y}", "/b/{y}/{p:path}",
        "/b/c",    "/abcdef/{q}", "/abcd",
    };
    enum { NP = sizeof pats / sizeof pats[0] };
    static const char *const probes[][2] = {
        {"/", "/"},
        {"/a", "/a"},
        {"/ab", "/ab"},
        {"/abc", "/abc"},
        {"/abd", "/abd"},
        {"/a/", "/a/"},
        {"/a/1", "/a/{x}"},
        {"/a/1/", "/a/{x}/"},
        {"/a/1/y", "/a/{x}/y"},
        {"/a/1/z", "/a/{p:path}"},
        {"/a/b", "/a/b"},
        {"/a/bc/9", "/a/bc/{z}"},
        {"/a/bc", "/a/{x}"},
        {"/b/1", "/b/{y}"},
        {"/b/1/2/3", "/b/{y}/{p:path}"},
        {"/b/c", "/b/c"},
        {"/abcdef/1", "/abcdef/{q}"},
        {"/abcd", "/abcd"},
        {"/b/c/d", "/b/{y}/{p:path}"},
    };
    size_t order, i;
    int ok = 1;

    /* Forward, backward and a stride permutation. */
    for (order = 0; order < 3; order++) {
        cz_router_t *r = new_router();
        cz_route_info_t info;
        cz_match_t m;
        for (i = 0; i < NP; i++) {
            size_t k = order == 0 ? i : order == 1 ? NP - 1 - i : (i * 7) % NP;
            if (cz_router_add(r, "GET", 3, pats[k], strlen(pats[k]), H(k), NULL, g_err, sizeof g_err) != CZ_ROUTER_OK) {
                ok = 0;
                fprintf(stderr, "  order %zu: %s: %s\n", order, pats[k], g_err);
            }
        }
        for (i = 0; i < sizeof probes / sizeof probes[0]; i++) {
            if (match(r, "GET", probes[i][0], &m) != CZ_MATCH_FOUND ||
                cz_router_route_at(r, m.route_index, &info) != 0 || strcmp(info.pattern, probes[i][1]) != 0) {
                ok = 0;
                fprintf(stderr, "  order %zu: %s did not match %s\n", order, probes[i][0], probes[i][1]);
            }
        }
        cz_router_destroy(r);
    }
    CHECK(ok);
}

static void test_memory_accounting(void) {
    size_t before = static_bytes();
    cz_router_t *r = new_router();
    CHECK(add(r, "GET", "/x/{id}", H(0)) == CZ_ROUTER_OK);
    CHECK(static_bytes() > before);
    cz_router_destroy(r);
    CHECK(static_bytes() == before);
    cz_router_destroy(NULL);
    CHECK(cz_router_create(NULL) == NULL);
    CHECK(cz_router_route_count(NULL) == 0 && cz_router_node_count(NULL) == 0);
}

#ifdef CZ_TEST_FAULTS
/* Fail allocation k (k = 0, 1, ...) of a registration sequence: each
 * refused add must leave the router unchanged and succeed when retried. */
static void test_allocation_failures(void) {
    static const char *const seq[][2] = {
        {"GET", "/"},
        {"GET", "/users"},
        {"GET", "/users/{id}"},
        {"POST", "/users/{id}"},
        {"GET", "/user"},
        {"PURGE", "/users/{id}/cache"},
        {"GET", "/users/{rest:path}"},
        {"GET", "/us"},
        {"HEAD", "/usx/{a}/{b}"},
        {"GET", "/users/{id}/posts"},
        {"GET", "/users/{id}/p"},
    };
    enum { NS = sizeof seq / sizeof seq[0] };
    size_t base = static_bytes();
    long k;
    int ok = 1, injected = 1;

    for (k = 0; injected && k < 10000; k++) {
        cz_router_t *r;
        size_t i;
        g_calls = 0;
        g_fault_at = k;
        r = cz_router_create(g_alloc);
        if (r == NULL) {
            g_fault_at = -1;
            continue; /* the fault hit creation */
        }
        for (i = 0; i < NS; i++) {
            size_t routes = cz_router_route_count(r), nodes = cz_router_node_count(r);
            const char *m = seq[i][0], *p = seq[i][1];
            int rc = cz_router_add(r, m, strlen(m), p, strlen(p), H(i), NULL, g_err, sizeof g_err);
            if (rc == CZ_ROUTER_ENOMEM) {
                ok &= cz_router_route_count(r) == routes && cz_router_node_count(r) == nodes;
                ok &= strstr(g_err, "out of memory") != NULL;
                g_fault_at = -1;
                rc = cz_router_add(r, m, strlen(m), p, strlen(p), H(i), NULL, g_err, sizeof g_err);
            }
            if (rc != CZ_ROUTER_OK) {
                ok = 0;
                fprintf(stderr, "  fault %ld: %s %s: %s\n", k, m, p, g_err);
            }
        }
        injected = g_fault_at == -1;
        g_fault_at = -1;
        for (i = 0; i < NS; i++) {
            cz_match_t mt;
            char path[64];
            const char *p = seq[i][1];
            if (strcmp(p, "/users/{id}") == 0 || strcmp(p, "/users/{rest:path}") == 0) continue; /* checked below */
            snprintf(path, sizeof path, "%s", p);
            if (strchr(path, '{') != NULL) continue;
            ok &= cz_router_match(r, seq[i][0], strlen(seq[i][0]), path, strlen(path), &mt) == CZ_MATCH_FOUND &&
                  mt.handler == H(i);
        }
        ok &= found(r, "GET", "/users/7", H(2)) && found(r, "POST", "/users/7", H(3));
        ok &= found(r, "PURGE", "/users/7/cache", H(5)) && found(r, "GET", "/users/7/x/y", H(6));
        ok &= found(r, "HEAD", "/usx/1/2", H(8)) && found(r, "GET", "/users/7/posts", H(9));
        ok &= found(r, "GET", "/users/7/p", H(10));
        cz_router_destroy(r);
        ok &= static_bytes() == base;
    }
    CHECK(ok);
    CHECK(k > 20); /* the injection really ran through many allocation points */
}
#endif

/* ---- differential test against a naive reference ------------------------------
 * The reference matches every route on its own and ranks the matching ones
 * by their per-byte kind string (static < parameter < catch-all, compared
 * left to right), which is the priority the tree's backtracking search
 * implements. */

#define REF_MAX 128

typedef struct {
    char method[8];
    char pattern[64];
} ref_route_t;

static uint32_t g_seed = 12345;

static uint32_t rnd(uint32_t n) {
    g_seed = g_seed * 1103515245u + 12345u;
    return (g_seed >> 16) % n;
}

/* Does `pat` match path[0..n)? kinds[i] gets 0/1/2 (static/param/catch-all)
 * for path byte i; params are recorded as (offset, len) pairs. */
static int ref_match(const char *pat, const char *path, size_t n, char *kinds, size_t *params, size_t *nparams) {
    size_t i = 0, j = 0;
    *nparams = 0;
    while (pat[i] != '\0') {
        if (pat[i] == '{') {
            const char *close = strchr(pat + i, '}');
            int catchall = close[-1] == 'h' && strstr(pat + i, ":path}") == close - 5;
            size_t end = j;
            if (catchall) end = n;
            else
                while (end < n && path[end] != '/') end++;
            if (end == j) return 0;
            memset(kinds + j, catchall ? 2 : 1, end - j);
            params[2 * *nparams] = j;
            params[2 * *nparams + 1] = end - j;
            (*nparams)++;
            j = end;
            i = (size_t)(close - pat) + 1;
        } else {
            if (j == n || pat[i] != path[j]) return 0;
            kinds[j++] = 0;
            i++;
        }
    }
    return j == n;
}

/* Would `pat` be refused next to `q` as a conflict (same position, same
 * kind of wildcard, other name)? */
static int ref_conflicts(const char *pat, const char *q) {
    size_t k;
    for (k = 0; pat[k] != '\0' && q[k] != '\0'; k++) {
        if (pat[k] == '{' && q[k] == '{') {
            const char *pc = strchr(pat + k, '}'), *qc = strchr(q + k, '}');
            int pcat = strstr(pat + k, ":path}") == pc - 5, qcat = strstr(q + k, ":path}") == qc - 5;
            if (pcat == qcat && (pc - pat != qc - q || memcmp(pat + k, q + k, (size_t)(pc - pat) - k) != 0)) return 1;
        }
        if (pat[k] != q[k]) return 0;
    }
    return 0;
}

static uint32_t ref_bit(const char *m) {
    return strcmp(m, "GET") == 0 ? CZ_METHOD_GET : strcmp(m, "HEAD") == 0 ? CZ_METHOD_HEAD : CZ_METHOD_POST;
}

/* Best route for (method, path) or -1; fills seen. */
static int ref_best(const ref_route_t *rt, size_t nr, const char *method, const char *path, size_t n, uint32_t *seen,
                    size_t *params, size_t *nparams) {
    char kinds[64], best_kinds[64];
    size_t pr[2 * CZ_ROUTER_MAX_PARAMS], np, i;
    uint32_t bit = ref_bit(method), want = bit == CZ_METHOD_HEAD ? CZ_METHOD_HEAD | CZ_METHOD_GET : bit;
    int best = -1;
    *seen = 0;
    for (i = 0; i < nr; i++) {
        uint32_t b = ref_bit(rt[i].method);
        int cmp;
        if (!ref_match(rt[i].pattern, path, n, kinds, pr, &np)) continue;
        *seen |= b;
        if ((b & want) == 0) continue;
        cmp = best < 0 ? -1 : memcmp(kinds, best_kinds, n);
        /* Same pattern (equal kinds): the exact method beats HEAD's GET fallback. */
        if (cmp < 0 || (cmp == 0 && b == bit)) {
            best = (int)i;
            memcpy(best_kinds, kinds, n);
            memcpy(params, pr, sizeof pr);
            *nparams = np;
        }
    }
    return best;
}

/* A random route pattern (wild = 0: static only, 1: with parameters,
 * 2: with catch-alls too) or, with wild < 0, a random request path. */
static void random_pattern(char *out, int wild) {
    static const char *const segs[] = {"a", "b", "ab", "", "{x}", "{y}", "{p:path}", "{q:path}"};
    static const char *const psegs[] = {"a", "b", "ab", "ba", "", "x", "a.b"};
    static const uint32_t nsegs[] = {4, 6, 8};
    uint32_t depth = rnd(4) + (wild >= 0 ? 1 : 0), d;
    out[0] = '\0';
    for (d = 0; d < depth; d++) {
        const char *s = wild < 0 ? psegs[rnd(7)] : segs[rnd(nsegs[wild])];
        strcat(out, "/");
        strcat(out, s);
        if (strchr(s, ':') != NULL) return; /* a catch-all ends the pattern */
    }
    if (out[0] == '\0' || rnd(3) == 0) strcat(out, "/");
}

/* Does the wildcard `w` occur twice in pat? (a syntax error, tested elsewhere) */
static int repeats(const char *pat, const char *w) {
    const char *first = strstr(pat, w);
    return first != NULL && strstr(first + 1, w) != NULL;
}

static void test_differential(void) {
    static const char *const methods[] = {"GET", "POST", "HEAD"};
    int round, ok = 1;

    for (round = 0; round < 60; round++) {
        cz_router_t *r = new_router();
        ref_route_t rt[REF_MAX];
        size_t nr = 0, q, i;
        int attempt;

        for (attempt = 0; attempt < 60 && nr < REF_MAX; attempt++) {
            ref_route_t cand;
            int expect = CZ_ROUTER_OK, rc;
            snprintf(cand.method, sizeof cand.method, "%s", methods[rnd(3)]);
            random_pattern(cand.pattern, round % 3);
            if (repeats(cand.pattern, "{x}") || repeats(cand.pattern, "{y}")) continue;
            for (i = 0; i < nr && expect == CZ_ROUTER_OK; i++) {
                if (ref_conflicts(cand.pattern, rt[i].pattern)) expect = CZ_ROUTER_ECONFLICT;
                else if (strcmp(cand.pattern, rt[i].pattern) == 0 && strcmp(cand.method, rt[i].method) == 0)
                    expect = CZ_ROUTER_EDUPLICATE;
            }
            rc = add(r, cand.method, cand.pattern, H(nr % 64));
            if (rc != expect) {
                ok = 0;
                fprintf(stderr, "  round %d: add %s %s: rc %d, expected %d (%s)\n", round, cand.method, cand.pattern,
                        rc, expect, g_err);
            }
            if (rc == CZ_ROUTER_OK) rt[nr++] = cand;
        }

        for (q = 0; q < 300; q++) {
            char path[64];
            const char *method = methods[rnd(3)];
            size_t n, params[2 * CZ_ROUTER_MAX_PARAMS], np = 0;
            uint32_t seen, seen2;
            cz_match_t m;
            int best, good;

            random_pattern(path, -1);
            n = strlen(path);
            best = ref_best(rt, nr, method, path, n, &seen, params, &np);
            match(r, method, path, &m);
            if (best >= 0) {
                good = m.status == CZ_MATCH_FOUND && m.route_index == (uint32_t)best && m.nparams == np;
                for (i = 0; good && i < np; i++)
                    good = m.params[i].offset == params[2 * i] && m.params[i].len == params[2 * i + 1];
            } else if (seen != 0) {
                good = m.status == CZ_MATCH_METHOD_NOT_ALLOWED &&
                       m.allowed == (seen | ((seen & CZ_METHOD_GET) != 0 ? CZ_METHOD_HEAD : 0));
            } else {
                cz_slash_hint_t hint = CZ_SLASH_NONE;
                char other[66];
                if (n > 1 && path[n - 1] == '/') {
                    if (ref_best(rt, nr, method, path, n - 1, &seen2, params, &np) >= 0) hint = CZ_SLASH_REMOVE;
                } else if (n > 0 && path[n - 1] != '/') {
                    snprintf(other, sizeof other, "%s/", path);
                    if (ref_best(rt, nr, method, other, n + 1, &seen2, params, &np) >= 0) hint = CZ_SLASH_ADD;
                }
                good = m.status == CZ_MATCH_NOT_FOUND && m.slash == hint;
            }
            if (!good) {
                ok = 0;
                fprintf(stderr, "  round %d: %s %s: router status %d route %u, reference %d\n", round, method, path,
                        (int)m.status, m.route_index, best);
            }
        }
        cz_router_destroy(r);
    }
    CHECK(ok);
}

int main(void) {
    char reason[256];
    g_alloc = cz_allocator_create(CZ_BACKEND_MALLOC, reason, sizeof reason);
    if (g_alloc == NULL) {
        fprintf(stderr, "cannot create allocator\n");
        return 2;
    }

    test_static_and_root();
    test_priority_and_backtracking();
    test_params();
    test_errors();
    test_405_and_allow();
    test_allow_max();
    test_head();
    test_trailing_slash();
    test_many_routes();
    test_hostile_paths();
    test_deep_backtracking();
    test_insertion_orders();
    test_differential();
    test_memory_accounting();
#ifdef CZ_TEST_FAULTS
    test_allocation_failures();
#endif

    {
        cz_memory_stats_t st;
        cz_allocator_stats(g_alloc, &st);
        CHECK(st.purpose[CZ_MEM_STATIC].allocated == 0);
        CHECK(st.purpose[CZ_MEM_STATIC].nmalloc == st.purpose[CZ_MEM_STATIC].nfree);
    }
    cz_allocator_destroy(g_alloc);

    printf("%d passed, %d failed\n", g_pass, g_fail);
    return g_fail == 0 ? 0 : 1;
}
