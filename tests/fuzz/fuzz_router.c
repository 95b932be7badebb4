/*
 * fuzz_router — libFuzzer harness for cz_router: registration of patterns
 * taken from the input, then matching, both checked against a small
 * reference model written independently of the radix tree (a list of
 * routes, matched segment by segment).
 *
 * Input: lines separated by '\n' (any other byte, '\r' and NUL included,
 * belongs to the line):
 *   +METHOD pattern   register (METHOD: bytes up to the first space)
 *   ?METHOD path      match
 *   !c                the next registration fails its ((c % 32) + 1)-th
 *                     allocation (allocation-failure injection)
 *   anything else     match the whole line as a path with GET
 *
 * Checked on every input:
 *   - registration: the result code the model predicts (EMETHOD, ESYNTAX,
 *     ELIMIT, ECONFLICT, EDUPLICATE, ENOMEM when a failure was injected,
 *     OK); on failure the router is unchanged (route and node counts, and
 *     every later match); the index of a new route; the error message is
 *     NUL-terminated, printable, and never written past errlen;
 *   - matching: FOUND / METHOD_NOT_ALLOWED / NOT_FOUND, the route chosen
 *     (static beats parameter beats catch-all, segment by segment, with
 *     backtracking; HEAD falls back to GET per pattern), its handler and
 *     parameters, the allowed set and the Allow header, the slash hint;
 *     every registered route is also matched on paths built from its own
 *     pattern;
 *   - introspection: route_count, route_at, method_bit, method_name;
 *   - no leak: the router's allocator is back at its start after destroy.
 */
#include "fuzz_common.h"

#include "cz_memory.h"
#include "cz_router.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ADDS    64
#define MAX_MATCHES 96
#define ERRBUF      512

static cz_allocator_t *g_alloc;

/* ---- the model ------------------------------------------------------------------ */

enum { K_STATIC = 0, K_PARAM = 1, K_CATCHALL = 2 };

typedef struct {
    int kind;
    size_t off, len; /* static: bytes of the pattern; wildcard: its name */
    size_t open;     /* wildcard: offset of its '{' */
} mtok_t;

typedef struct {
    char method[CZ_ROUTER_METHOD_MAX + 1];
    size_t mlen;
    char *pat;
    size_t plen;
    mtok_t tok[2 * CZ_ROUTER_MAX_PARAMS + 2];
    size_t ntok;
    void *handler;
} mroute_t;

typedef struct {
    mroute_t route[MAX_ADDS];
    size_t n;
    char ext[CZ_ROUTER_MAX_EXT_METHODS][CZ_ROUTER_METHOD_MAX + 1];
    size_t ext_len[CZ_ROUTER_MAX_EXT_METHODS];
    size_t next;
} model_t;

static const char *const std_names[7] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};

static int m_tchar(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int m_static_byte(unsigned char c) {
    return c > 0x20 && c != 0x7f && c != '{' && c != '}' && c != '?' && c != '#';
}

static int m_name(const char *s, size_t n) {
    size_t i;

    if (n == 0 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_')) return 0;
    for (i = 1; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (c >= '0' && c <= '9'))) return 0;
    }
    return 1;
}

/* Bit of a method in the model (0: unknown). */
static uint32_t m_bit(const model_t *M, const char *m, size_t n) {
    size_t i;

    for (i = 0; i < 7; i++)
        if (strlen(std_names[i]) == n && memcmp(std_names[i], m, n) == 0) return 1u << i;
    for (i = 0; i < M->next; i++)
        if (M->ext_len[i] == n && memcmp(M->ext[i], m, n) == 0) return 1u << (7 + i);
    return 0;
}

/*
 * The pattern grammar, segment by segment: 0 valid; bit 0 the grammar is
 * broken; bit 1 a limit is exceeded. Fills tokens when valid.
 */
static int m_validate(const char *p, size_t n, mroute_t *out) {
    int bad = 0;
    size_t i, s, slashes = 0, nwild = 0, names_off[64], names_len[64];

    if (n == 0 || p[0] != '/') return 1;
    if (n > CZ_ROUTER_MAX_PATTERN) bad |= 2;
    for (i = 0; i < n; i++) slashes += p[i] == '/';
    if (slashes > CZ_ROUTER_MAX_SEGMENTS) bad |= 2;
    if (out) out->ntok = 0;
    s = 1; /* segment start, after its '/' */
    for (;;) {
        size_t e = s, len, k;
        while (e < n && p[e] != '/') e++;
        len = e - s;
        if (memchr(p + s, '{', len) || memchr(p + s, '}', len)) {
            const char *inner = p + s + 1, *colon;
            size_t ilen = len >= 2 ? len - 2 : 0, nlen;
            int kind = K_PARAM;
            if (len < 3 || p[s] != '{' || p[e - 1] != '}' || memchr(inner, '{', ilen) || memchr(inner, '}', ilen)) {
                bad |= 1;
                /* a broken one may still be counted first: either error then */
                if (p[s] == '{') {
                    if (nwild < 64) names_len[nwild] = SIZE_MAX; /* a name nothing equals */
                    if (++nwild > CZ_ROUTER_MAX_PARAMS) bad |= 2;
                }
            } else {
                colon = memchr(inner, ':', ilen);
                nlen = colon ? (size_t)(colon - inner) : ilen;
                if (colon) {
                    size_t clen = ilen - nlen - 1;
                    if (clen != 4 || memcmp(colon + 1, "path", 4) != 0) bad |= 1;
                    kind = K_CATCHALL;
                    if (e != n) bad |= 1; /* catch-all: last segment only */
                }
                if (!m_name(inner, nlen)) bad |= 1;
                for (k = 0; k < nwild && k < 64; k++)
                    if (names_len[k] == nlen && memcmp(p + names_off[k], inner, nlen) == 0) bad |= 1;
                if (nwild < 64) {
                    names_off[nwild] = (size_t)(inner - p);
                    names_len[nwild] = nlen;
                }
                nwild++;
                if (nwild > CZ_ROUTER_MAX_PARAMS) bad |= 2;
                if (out && !bad) {
                    /* the static run before it ends with this segment's '/' */
                    mtok_t *t = &out->tok[out->ntok++];
                    t->kind = kind;
                    t->off = (size_t)(inner - p);
                    t->len = nlen;
                    t->open = s;
                }
            }
        } else {
            for (k = s; k < e; k++)
                if (!m_static_byte((unsigned char)p[k])) bad |= 1;
        }
        if (e >= n) break;
        s = e + 1;
    }
    if (out && !bad) {
        /* insert the static runs between the wildcards */
        mtok_t w[2 * CZ_ROUTER_MAX_PARAMS + 2];
        size_t nw = out->ntok, at = 0, j;
        memcpy(w, out->tok, nw * sizeof(*w));
        out->ntok = 0;
        for (j = 0; j < nw; j++) {
            mtok_t *st = &out->tok[out->ntok++];
            st->kind = K_STATIC;
            st->off = at;
            st->len = w[j].open - at;
            out->tok[out->ntok++] = w[j];
            at = w[j].off + w[j].len + (w[j].kind == K_CATCHALL ? 6 : 1);
        }
        if (at < n) {
            mtok_t *st = &out->tok[out->ntok++];
            st->kind = K_STATIC;
            st->off = at;
            st->len = n - at;
        }
    }
    return bad;
}

typedef struct {
    size_t off, len;
} mparam_t;

/* Does route R match path? Params in pattern order; rank[i]: 0 static,
 * 1 parameter, 2 catch-all byte (the priority order of the router). */
static int m_match(const mroute_t *R, const char *path, size_t n, mparam_t *ps, size_t *np, unsigned char *rank) {
    size_t pos = 0, t, k = 0;

    for (t = 0; t < R->ntok; t++) {
        const mtok_t *tk = &R->tok[t];
        if (tk->kind == K_STATIC) {
            if (n - pos < tk->len || memcmp(path + pos, R->pat + tk->off, tk->len) != 0) return 0;
            if (rank) memset(rank + pos, 0, tk->len);
            pos += tk->len;
        } else if (tk->kind == K_PARAM) {
            size_t e = pos;
            while (e < n && path[e] != '/') e++;
            if (e == pos) return 0;
            ps[k].off = pos;
            ps[k].len = e - pos;
            k++;
            if (rank) memset(rank + pos, 1, e - pos);
            pos = e;
        } else {
            if (pos == n) return 0;
            ps[k].off = pos;
            ps[k].len = n - pos;
            k++;
            if (rank) memset(rank + pos, 2, n - pos);
            pos = n;
        }
    }
    *np = k;
    return pos == n;
}

typedef struct {
    cz_match_status_t status;
    const mroute_t *route;
    mparam_t params[CZ_ROUTER_MAX_PARAMS + 1];
    size_t nparams;
    uint32_t allowed;
    cz_slash_hint_t slash;
} mresult_t;

/* Best route for (want, path): returns it, or NULL; seen gets the methods of
 * every route matching the path. */
static const mroute_t *m_best(const model_t *M, uint32_t want, uint32_t exact, const char *path, size_t n,
                              uint32_t *seen, mparam_t *bp, size_t *bnp) {
    unsigned char *rank = xmalloc(n + 1), *best_rank = xmalloc(n + 1);
    const mroute_t *best = NULL;
    size_t i;

    *seen = 0;
    for (i = 0; i < M->n; i++) {
        const mroute_t *R = &M->route[i];
        mparam_t ps[CZ_ROUTER_MAX_PARAMS + 1];
        size_t np = 0;
        uint32_t bit = m_bit(M, R->method, R->mlen);
        int cmp;

        if (!m_match(R, path, n, ps, &np, rank)) continue;
        *seen |= bit;
        if (!(bit & want)) continue;
        cmp = best ? memcmp(rank, best_rank, n) : -1;
        /* same rank: the same pattern; the exact method beats GET for HEAD */
        if (cmp < 0 || (cmp == 0 && bit == exact)) {
            best = R;
            memcpy(best_rank, rank, n);
            memcpy(bp, ps, np * sizeof(*ps));
            *bnp = np;
        }
    }
    free(rank);
    free(best_rank);
    return best;
}

static void m_route(const model_t *M, const char *method, size_t mlen, const char *path, size_t n, mresult_t *out) {
    uint32_t bit = m_bit(M, method, mlen);
    uint32_t want = bit == CZ_METHOD_HEAD ? (CZ_METHOD_HEAD | CZ_METHOD_GET) : bit;
    uint32_t seen = 0, unused;
    mparam_t tmp[CZ_ROUTER_MAX_PARAMS + 1];
    size_t tn;

    memset(out, 0, sizeof(*out));
    out->route = m_best(M, want, bit, path, n, &seen, out->params, &out->nparams);
    if (out->route) {
        out->status = CZ_MATCH_FOUND;
        return;
    }
    if (seen) {
        out->status = CZ_MATCH_METHOD_NOT_ALLOWED;
        out->allowed = seen | ((seen & CZ_METHOD_GET) ? CZ_METHOD_HEAD : 0);
        return;
    }
    out->status = CZ_MATCH_NOT_FOUND;
    if (n == 0 || want == 0) return;
    if (path[n - 1] == '/') {
        if (n > 1 && m_best(M, want, bit, path, n - 1, &unused, tmp, &tn)) out->slash = CZ_SLASH_REMOVE;
    } else {
        char *p2 = xmalloc(n + 1);
        memcpy(p2, path, n);
        p2[n] = '/';
        if (m_best(M, want, bit, p2, n + 1, &unused, tmp, &tn)) out->slash = CZ_SLASH_ADD;
        free(p2);
    }
}

/* Allow header the model expects. */
static size_t m_allow(const model_t *M, uint32_t methods, char *buf) {
    size_t n = 0, i;

    if (methods & CZ_METHOD_GET) methods |= CZ_METHOD_HEAD;
    methods |= CZ_METHOD_OPTIONS;
    for (i = 0; i < 7 + M->next; i++) {
        const char *name = i < 7 ? std_names[i] : M->ext[i - 7];
        size_t len = i < 7 ? strlen(name) : M->ext_len[i - 7];
        if (!(methods & (1u << i))) continue;
        if (n) {
            memcpy(buf + n, ", ", 2);
            n += 2;
        }
        memcpy(buf + n, name, len);
        n += len;
    }
    buf[n] = '\0';
    return n;
}

/* ---- checks ------------------------------------------------------------------------ */

static void dump_case(const char *what, const char *method, size_t mlen, const char *s, size_t n) {
    fprintf(stderr, "%s: method \"%.*s\", \"%.*s\"\n", what, (int)mlen, method, (int)n, s);
}

static void check_match(cz_router_t *r, const model_t *M, const char *method, size_t mlen, const char *path, size_t n) {
    cz_match_t got;
    mresult_t want;
    uint32_t i;

    memset(&got, 0x5a, sizeof(got));
    cz_router_match(r, method, mlen, path, n, &got);
    m_route(M, method, mlen, path, n, &want);
    if (got.status != want.status) {
        dump_case("match status", method, mlen, path, n);
        fprintf(stderr, "router %d, model %d\n", got.status, want.status);
        FUZZ_CHECK(0);
    }
    if (got.status == CZ_MATCH_FOUND) {
        if (got.handler != want.route->handler) {
            dump_case("matched route", method, mlen, path, n);
            fprintf(stderr, "router: route #%u; model: \"%s\"\n", got.route_index, want.route->pat);
            FUZZ_CHECK(0);
        }
        FUZZ_CHECK(got.route_index == (uint32_t)(want.route - M->route));
        FUZZ_CHECK(got.nparams == want.nparams);
        for (i = 0; i < got.nparams; i++) {
            const mtok_t *tk = NULL;
            size_t t, k = 0;
            for (t = 0; t < want.route->ntok; t++) {
                if (want.route->tok[t].kind == K_STATIC) continue;
                if (k++ == i) {
                    tk = &want.route->tok[t];
                    break;
                }
            }
            FUZZ_CHECK(tk != NULL);
            FUZZ_CHECK(got.params[i].offset == want.params[i].off);
            FUZZ_CHECK(got.params[i].len == want.params[i].len);
            FUZZ_CHECK(got.params[i].name_len == tk->len);
            FUZZ_CHECK(memcmp(got.params[i].name, want.route->pat + tk->off, tk->len) == 0);
            FUZZ_CHECK(got.params[i].name[tk->len] == '\0');
        }
    } else if (got.status == CZ_MATCH_METHOD_NOT_ALLOWED) {
        char a[CZ_ROUTER_ALLOW_MAX], b[CZ_ROUTER_ALLOW_MAX], small[8];
        size_t na, nb, ns;
        if (got.allowed != want.allowed) {
            dump_case("allowed", method, mlen, path, n);
            fprintf(stderr, "router 0x%x, model 0x%x\n", got.allowed, want.allowed);
            FUZZ_CHECK(0);
        }
        na = cz_router_allow_header(r, got.allowed, a, sizeof(a));
        nb = m_allow(M, want.allowed, b);
        FUZZ_CHECK(na == nb && strcmp(a, b) == 0);
        /* a cut Allow header is never produced */
        ns = cz_router_allow_header(r, got.allowed, small, sizeof(small));
        FUZZ_CHECK(ns == na);
        FUZZ_CHECK(ns < sizeof(small) ? strcmp(small, b) == 0 : small[0] == '\0');
        FUZZ_CHECK(cz_router_allow_header(r, got.allowed, NULL, 0) == na);
    } else {
        if (got.slash != want.slash) {
            dump_case("slash hint", method, mlen, path, n);
            fprintf(stderr, "router %d, model %d\n", got.slash, want.slash);
            FUZZ_CHECK(0);
        }
    }
}

/* Paths built from a route's own pattern. */
static void check_route_paths(cz_router_t *r, const model_t *M, const mroute_t *R) {
    static const char *const pv[3] = {"v", "%2F\xff", "me"};
    static const char *const cv[3] = {"a/b", "/", "x/"};
    char path[CZ_ROUTER_MAX_PATTERN * 2 + 64];
    size_t variant;

    for (variant = 0; variant < 3; variant++) {
        size_t n = 0, t;
        for (t = 0; t < R->ntok; t++) {
            const mtok_t *tk = &R->tok[t];
            const char *s = tk->kind == K_STATIC ? R->pat + tk->off : tk->kind == K_PARAM ? pv[variant] : cv[variant];
            size_t len = tk->kind == K_STATIC ? tk->len : strlen(s);
            memcpy(path + n, s, len);
            n += len;
        }
        check_match(r, M, R->method, R->mlen, path, n);
        if (strcmp(R->method, "GET") == 0) check_match(r, M, "HEAD", 4, path, n);
        /* and the slash hints around it */
        if (n > 1) check_match(r, M, R->method, R->mlen, path, n - 1);
        path[n] = '/';
        check_match(r, M, R->method, R->mlen, path, n + 1);
    }
}

static void check_introspection(cz_router_t *r, const model_t *M) {
    size_t i;

    FUZZ_CHECK(cz_router_route_count(r) == M->n);
    FUZZ_CHECK(cz_router_node_count(r) >= 1);
    for (i = 0; i < M->n; i++) {
        cz_route_info_t info;
        const mroute_t *R = &M->route[i];
        FUZZ_CHECK(cz_router_route_at(r, i, &info) == 0);
        FUZZ_CHECK(info.index == i && info.handler == R->handler);
        FUZZ_CHECK(info.method_len == R->mlen && memcmp(info.method, R->method, R->mlen) == 0);
        FUZZ_CHECK(info.method[R->mlen] == '\0');
        FUZZ_CHECK(info.pattern_len == R->plen && memcmp(info.pattern, R->pat, R->plen) == 0);
        FUZZ_CHECK(info.pattern[R->plen] == '\0');
    }
    {
        cz_route_info_t info;
        FUZZ_CHECK(cz_router_route_at(r, M->n, &info) == -1);
    }
    for (i = 0; i < 7 + M->next; i++) {
        size_t len = 0;
        const char *name = cz_router_method_name(r, 1u << i, &len);
        FUZZ_CHECK(name != NULL && strlen(name) == len);
        FUZZ_CHECK(cz_router_method_bit(r, name, len) == (1u << i));
        FUZZ_CHECK(m_bit(M, name, len) == (1u << i));
    }
    FUZZ_CHECK(cz_router_method_name(r, 1u << (7 + M->next), NULL) == NULL);
}

/* Registration, against the model's prediction. */
static void do_add(cz_router_t *r, model_t *M, const char *method, size_t mlen, const char *pat, size_t plen,
                   long fault, size_t errlen) {
    char err[ERRBUF + 16];
    size_t routes = cz_router_route_count(r), nodes = cz_router_node_count(r), i;
    uint32_t index = 0xdeadbeef;
    mroute_t nr;
    int expect = CZ_ROUTER_OK, alt = -1, rc, v;
    void *handler = (void *)(uintptr_t)(0x1000 + M->n);

    memset(err, 0xAA, sizeof(err));
    memset(&nr, 0, sizeof(nr));
    /* the model's verdict, in the order of the contract */
    if (mlen == 0 || mlen > CZ_ROUTER_METHOD_MAX) {
        expect = CZ_ROUTER_EMETHOD;
    } else {
        for (i = 0; i < mlen; i++)
            if (!m_tchar((unsigned char)method[i])) expect = CZ_ROUTER_EMETHOD;
        if (expect == CZ_ROUTER_OK && m_bit(M, method, mlen) == 0 && M->next == CZ_ROUTER_MAX_EXT_METHODS)
            expect = CZ_ROUTER_ELIMIT;
    }
    if (expect == CZ_ROUTER_OK) {
        v = m_validate(pat, plen, &nr);
        if (v == 1) expect = CZ_ROUTER_ESYNTAX;
        else if (v == 2) expect = CZ_ROUTER_ELIMIT;
        else if (v == 3) expect = CZ_ROUTER_ESYNTAX, alt = CZ_ROUTER_ELIMIT;
    }
    if (expect == CZ_ROUTER_OK) {
        nr.pat = (char *)pat;
        for (i = 0; i < M->n && expect == CZ_ROUTER_OK; i++) {
            const mroute_t *R = &M->route[i];
            size_t a, b;
            for (a = 0; a < nr.ntok && expect == CZ_ROUTER_OK; a++) {
                const mtok_t *w = &nr.tok[a];
                if (w->kind == K_STATIC) continue;
                for (b = 0; b < R->ntok; b++) {
                    const mtok_t *x = &R->tok[b];
                    if (x->kind == w->kind && x->open == w->open && memcmp(R->pat, pat, w->open) == 0 &&
                        (x->len != w->len || memcmp(R->pat + x->off, pat + w->off, w->len) != 0))
                        expect = CZ_ROUTER_ECONFLICT;
                }
            }
        }
        for (i = 0; i < M->n && expect == CZ_ROUTER_OK; i++) {
            const mroute_t *R = &M->route[i];
            if (R->mlen == mlen && memcmp(R->method, method, mlen) == 0 && R->plen == plen &&
                memcmp(R->pat, pat, plen) == 0)
                expect = CZ_ROUTER_EDUPLICATE;
        }
    }

    fault_arm(fault);
    rc = cz_router_add(r, method, mlen, pat, plen, handler, &index, err, errlen);
    if (g_faults) {
        FUZZ_CHECK(expect == CZ_ROUTER_OK);
        expect = CZ_ROUTER_ENOMEM;
    }
    fault_arm(0);
    if (rc != expect && rc != alt) {
        dump_case("registration", method, mlen, pat, plen);
        fprintf(stderr, "router %d (%s), model %d\n", rc, errlen ? err : "-", expect);
        FUZZ_CHECK(0);
    }
    /* the message: bounded, terminated, printable */
    for (i = errlen; i < sizeof(err); i++) FUZZ_CHECK((unsigned char)err[i] == 0xAA);
    if (errlen > 0) {
        size_t len = strnlen(err, errlen);
        FUZZ_CHECK(len < errlen);
        for (i = 0; i < len; i++) FUZZ_CHECK(err[i] >= 0x20 && err[i] < 0x7f);
        if (rc != CZ_ROUTER_OK && errlen > 32) FUZZ_CHECK(len > 0);
        if (rc == CZ_ROUTER_OK) FUZZ_CHECK(len == 0);
    }
    if (rc != CZ_ROUTER_OK) {
        FUZZ_CHECK(index == 0xdeadbeef);
        FUZZ_CHECK(cz_router_route_count(r) == routes);
        FUZZ_CHECK(cz_router_node_count(r) == nodes);
        return;
    }
    FUZZ_CHECK(index == M->n);
    FUZZ_CHECK(cz_router_route_count(r) == routes + 1);
    FUZZ_CHECK(M->n < MAX_ADDS);
    if (m_bit(M, method, mlen) == 0) {
        memcpy(M->ext[M->next], method, mlen);
        M->ext[M->next][mlen] = '\0';
        M->ext_len[M->next] = mlen;
        M->next++;
    }
    nr.pat = xmemdup(pat, plen);
    nr.plen = plen;
    memcpy(nr.method, method, mlen);
    nr.method[mlen] = '\0';
    nr.mlen = mlen;
    nr.handler = handler;
    M->route[M->n++] = nr;
}

/* ---- libFuzzer entry points ------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    g_alloc = cz_allocator_create(CZ_BACKEND_MALLOC, NULL, 0);
    if (!g_alloc) abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *in = (const char *)data, *end = in + size;
    mem_mark_t start = mem_mark(g_alloc);
    model_t *M = xmalloc(sizeof(*M));
    cz_router_t *r;
    size_t adds = 0, matches = 0, i;
    long fault = 0;

    memset(M, 0, sizeof(*M));
    fault_arm(0);
    r = cz_router_create(g_alloc);
    FUZZ_CHECK(r != NULL);
    while (in < end) {
        const char *nl = memchr(in, '\n', (size_t)(end - in));
        const char *line = in, *sp;
        size_t n = nl ? (size_t)(nl - in) : (size_t)(end - in);

        in = nl ? nl + 1 : end;
        if (n >= 1 && line[0] == '!') {
            fault = n >= 2 ? (long)((unsigned char)line[1] % 32) + 1 : 1;
            continue;
        }
        if (n >= 1 && (line[0] == '+' || line[0] == '?')) {
            sp = memchr(line + 1, ' ', n - 1);
            const char *m = line + 1, *s = sp ? sp + 1 : line + n;
            size_t mlen = sp ? (size_t)(sp - m) : n - 1, slen = (size_t)(line + n - s);
            if (line[0] == '+') {
                if (adds >= MAX_ADDS) continue;
                /* now and then a short or no error buffer */
                do_add(r, M, m, mlen, s, slen, fault, adds % 5 == 4 ? adds % 11 : ERRBUF);
                fault = 0;
                adds++;
            } else if (matches++ < MAX_MATCHES) {
                check_match(r, M, m, mlen, s, slen);
            }
        } else if (matches++ < MAX_MATCHES) {
            check_match(r, M, "GET", 3, line, n);
        }
    }
    check_introspection(r, M);
    for (i = 0; i < M->n; i++) check_route_paths(r, M, &M->route[i]);
    cz_router_destroy(r);
    for (i = 0; i < M->n; i++) free(M->route[i].pat);
    free(M);
    mem_expect(g_alloc, start, "router");
    return 0;
}
