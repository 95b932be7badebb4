/*
 * cz_router — compressed radix tree router. Contract in cz_router.h.
 *
 * Tree
 *   A static node holds a label (any bytes, '/' included) and its static
 *   children, found by the first byte of their label (index[] sorted
 *   ascending, parallel to children[]; one allocation for both). A node
 *   whose label ends with '/' may also have one parameter child and one
 *   catch-all child; their label is the parameter name. A parameter node
 *   has only static children (the rest of the pattern starts with '/'); a
 *   catch-all node is always a leaf. A node where routes end has a method
 *   bitmask and one route index per bit set, stored in bit order, so the
 *   route of a method is routes[popcount(methods & (bit - 1))].
 *
 * Registration is all-or-nothing
 *   locate() walks the tree read-only, reports duplicates and conflicts,
 *   and finds where the pattern leaves the tree. plan_build() then
 *   allocates every new piece (nodes, the one child array that grows, the
 *   endpoint array, the route table slot, the pattern copy) without
 *   touching the tree, and plan_commit() links them in with operations
 *   that cannot fail. Out of memory therefore never leaves a half-inserted
 *   route or a phantom parameter that would make a later route conflict.
 *
 * Every node is also on a singly linked list, so destroy needs no
 * recursion however deep the tree.
 */
#include "cz_router.h"

#include <stddef.h>
#include <string.h>

enum { NODE_STATIC = 0, NODE_PARAM, NODE_CATCHALL };

typedef struct cz_node cz_node;
struct cz_node {
    cz_node *next_all;    /* list of every node of the router */
    cz_node **children;   /* static children, ordered like index[] */
    unsigned char *index; /* first label byte of each static child, ascending */
    cz_node *param;       /* {name} child, or NULL */
    cz_node *catchall;    /* {name:path} child, or NULL */
    uint32_t *routes;     /* one route index per bit of `methods`, in bit order */
    uint32_t methods;     /* methods of the routes ending here */
    uint32_t origin;      /* route that created the node, named in conflict messages */
    uint32_t len;         /* bytes of prefix[] */
    uint16_t nchildren;   /* <= 256: children differ in their first byte */
    uint8_t kind;
    char prefix[]; /* label (static) or name (wildcard), NUL-terminated */
};

typedef struct {
    char *pattern; /* NUL-terminated copy */
    size_t pattern_len;
    void *handler;
    uint32_t method; /* one bit */
} cz_route_t;

struct cz_router {
    cz_allocator_t *alloc;
    cz_node *root;  /* empty label; every pattern hangs below it */
    cz_node *nodes; /* every node, linked through next_all */
    size_t nnodes;
    cz_route_t *routes; /* indexed by route index */
    size_t nroutes;
    size_t routes_cap;
    size_t next; /* extension methods registered */
    uint8_t ext_len[CZ_ROUTER_MAX_EXT_METHODS];
    char ext_name[CZ_ROUTER_MAX_EXT_METHODS][CZ_ROUTER_METHOD_MAX + 1];
};

#define CZ_PURPOSE CZ_MEM_STATIC

/* ===================================================================== */
/* small helpers                                                          */
/* ===================================================================== */

static const char *const std_names[CZ_METHOD_STANDARD_COUNT] = {"GET",   "HEAD",   "POST",   "PUT",
                                                                "PATCH", "DELETE", "OPTIONS"};
static const uint8_t std_lens[CZ_METHOD_STANDARD_COUNT] = {3, 4, 4, 3, 5, 6, 7};

/* Portable popcount; registration and HEAD/GET selection are its only users. */
static uint32_t popcount32(uint32_t x) {
    x = x - ((x >> 1) & 0x55555555u);
    x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u);
    x = (x + (x >> 4)) & 0x0f0f0f0fu;
    return (x * 0x01010101u) >> 24;
}

/* Position of `bit`'s route in a node's routes[]. */
static uint32_t route_rank(uint32_t methods, uint32_t bit) {
    return popcount32(methods & (bit - 1u));
}

static int is_alpha(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_digit(unsigned char c) {
    return c >= '0' && c <= '9';
}

static int is_name_start(unsigned char c) {
    return is_alpha(c) || c == '_';
}

static int is_name_char(unsigned char c) {
    return is_name_start(c) || is_digit(c);
}

/* RFC 9110 tchar: the bytes a method token may contain. */
static int is_tchar(unsigned char c) {
    return is_alpha(c) || is_digit(c) || (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* Bytes allowed literally in a pattern. Braces are syntax; '?' and '#'
 * would start a query or fragment, which never reach the router. */
static int is_static_byte(unsigned char c) {
    return c > 0x20 && c != 0x7f && c != '{' && c != '}' && c != '?' && c != '#';
}

/* ===================================================================== */
/* error messages: a bounded string builder that truncates silently       */
/* ===================================================================== */

typedef struct {
    char *buf;
    size_t cap;
    size_t len;
} cz_msg_t;

static void msg_putc(cz_msg_t *m, char c) {
    if (m->len + 1 < m->cap) {
        m->buf[m->len++] = c;
        m->buf[m->len] = '\0';
    }
}

static void msg_puts(cz_msg_t *m, const char *s) {
    while (*s != '\0') msg_putc(m, *s++);
}

static void msg_putu(cz_msg_t *m, size_t v) {
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (n > 0) msg_putc(m, tmp[--n]);
}

static void msg_puthex(cz_msg_t *m, unsigned char c) {
    static const char hex[] = "0123456789abcdef";
    msg_putc(m, hex[c >> 4]);
    msg_putc(m, hex[c & 15]);
}

static void msg_putn(cz_msg_t *m, const char *s, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) msg_putc(m, s[i]);
}

/* Quote user bytes; escape what is not printable so that a message never
 * carries raw control bytes into logs or exceptions; shorten long input. */
static void msg_quote(cz_msg_t *m, const char *s, size_t n) {
    const size_t shown = n > 96 ? 96 : n;
    size_t i;
    msg_putc(m, '"');
    for (i = 0; i < shown; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            msg_putc(m, '\\');
            msg_putc(m, (char)c);
        } else if (c >= 0x20 && c < 0x7f) {
            msg_putc(m, (char)c);
        } else {
            msg_puts(m, "\\x");
            msg_puthex(m, c);
        }
    }
    if (shown < n) msg_puts(m, "...");
    msg_putc(m, '"');
}

/* A valid method prints bare in messages; anything else is quoted. */
static int method_is_token(const char *m, size_t n) {
    size_t i;
    if (n == 0 || n > CZ_ROUTER_METHOD_MAX) return 0;
    for (i = 0; i < n; i++) {
        if (!is_tchar((unsigned char)m[i])) return 0;
    }
    return 1;
}

/* State of one cz_router_add call, mostly for error messages. */
typedef struct {
    cz_router_t *r;
    const char *method;
    size_t method_len;
    const char *pat;
    size_t plen;
    cz_msg_t msg;
} cz_addctx_t;

/* Start the message "<error> for METHOD "pattern": " and return `code`,
 * so that callers can append the details and return the code. */
static int add_error(cz_addctx_t *c, int code) {
    c->msg.len = 0;
    if (c->msg.cap > 0) c->msg.buf[0] = '\0';
    msg_puts(&c->msg, cz_router_strerror(code));
    msg_puts(&c->msg, " for ");
    if (method_is_token(c->method, c->method_len)) msg_putn(&c->msg, c->method, c->method_len);
    else msg_quote(&c->msg, c->method, c->method_len);
    msg_putc(&c->msg, ' ');
    msg_quote(&c->msg, c->pat, c->plen);
    msg_puts(&c->msg, ": ");
    return code;
}

/* add_error plus "<what> at offset N". */
static int pattern_error(cz_addctx_t *c, int code, const char *what, size_t offset) {
    add_error(c, code);
    msg_puts(&c->msg, what);
    msg_puts(&c->msg, " at offset ");
    msg_putu(&c->msg, offset);
    return code;
}

const char *cz_router_strerror(int err) {
    switch (err) {
    case CZ_ROUTER_OK: return "success";
    case CZ_ROUTER_EINVAL: return "invalid argument";
    case CZ_ROUTER_ENOMEM: return "out of memory";
    case CZ_ROUTER_EMETHOD: return "invalid method";
    case CZ_ROUTER_ESYNTAX: return "malformed route pattern";
    case CZ_ROUTER_ELIMIT: return "route limit exceeded";
    case CZ_ROUTER_EDUPLICATE: return "duplicate route";
    case CZ_ROUTER_ECONFLICT: return "route conflict";
    default: return "unknown router error";
    }
}

/* ===================================================================== */
/* methods                                                                */
/* ===================================================================== */

static uint32_t std_method_bit(const char *m, size_t n) {
    switch (n) {
    case 3:
        if (memcmp(m, "GET", 3) == 0) return CZ_METHOD_GET;
        if (memcmp(m, "PUT", 3) == 0) return CZ_METHOD_PUT;
        break;
    case 4:
        if (memcmp(m, "HEAD", 4) == 0) return CZ_METHOD_HEAD;
        if (memcmp(m, "POST", 4) == 0) return CZ_METHOD_POST;
        break;
    case 5:
        if (memcmp(m, "PATCH", 5) == 0) return CZ_METHOD_PATCH;
        break;
    case 6:
        if (memcmp(m, "DELETE", 6) == 0) return CZ_METHOD_DELETE;
        break;
    case 7:
        if (memcmp(m, "OPTIONS", 7) == 0) return CZ_METHOD_OPTIONS;
        break;
    default: break;
    }
    return 0;
}

static uint32_t ext_bit(size_t k) {
    return 1u << (CZ_METHOD_STANDARD_COUNT + k);
}

uint32_t cz_router_method_bit(const cz_router_t *r, const char *method, size_t method_len) {
    uint32_t bit;
    size_t k;
    if (r == NULL || method == NULL || method_len == 0) return 0;
    bit = std_method_bit(method, method_len);
    if (bit != 0) return bit;
    for (k = 0; k < r->next; k++) {
        if (r->ext_len[k] == method_len && memcmp(r->ext_name[k], method, method_len) == 0) return ext_bit(k);
    }
    return 0;
}

const char *cz_router_method_name(const cz_router_t *r, uint32_t bit, size_t *len) {
    size_t i;
    if (r == NULL || bit == 0 || (bit & (bit - 1u)) != 0) return NULL;
    for (i = 0; i < CZ_METHOD_STANDARD_COUNT + r->next; i++) {
        if (bit != (1u << i)) continue;
        if (i < CZ_METHOD_STANDARD_COUNT) {
            if (len != NULL) *len = std_lens[i];
            return std_names[i];
        }
        if (len != NULL) *len = r->ext_len[i - CZ_METHOD_STANDARD_COUNT];
        return r->ext_name[i - CZ_METHOD_STANDARD_COUNT];
    }
    return NULL;
}

/* Validate the method of a registration and find its bit; a new
 * extension method gets the next free bit, claimed only on commit. */
static int resolve_method(cz_addctx_t *c, uint32_t *bit, int *is_new) {
    size_t i;
    *is_new = 0;
    if (c->method_len == 0) {
        add_error(c, CZ_ROUTER_EMETHOD);
        msg_puts(&c->msg, "method is empty");
        return CZ_ROUTER_EMETHOD;
    }
    if (c->method_len > CZ_ROUTER_METHOD_MAX) {
        add_error(c, CZ_ROUTER_EMETHOD);
        msg_puts(&c->msg, "method is longer than ");
        msg_putu(&c->msg, CZ_ROUTER_METHOD_MAX);
        msg_puts(&c->msg, " bytes");
        return CZ_ROUTER_EMETHOD;
    }
    for (i = 0; i < c->method_len; i++) {
        if (!is_tchar((unsigned char)c->method[i]))
            return pattern_error(c, CZ_ROUTER_EMETHOD, "method is not an HTTP token: bad byte", i);
    }
    *bit = cz_router_method_bit(c->r, c->method, c->method_len);
    if (*bit != 0) return CZ_ROUTER_OK;
    if (c->r->next == CZ_ROUTER_MAX_EXT_METHODS) {
        add_error(c, CZ_ROUTER_ELIMIT);
        msg_puts(&c->msg, "more than ");
        msg_putu(&c->msg, CZ_ROUTER_MAX_EXT_METHODS);
        msg_puts(&c->msg, " distinct extension methods");
        return CZ_ROUTER_ELIMIT;
    }
    *bit = ext_bit(c->r->next);
    *is_new = 1;
    return CZ_ROUTER_OK;
}

/* ===================================================================== */
/* pattern parsing                                                        */
/* ===================================================================== */

/* A pattern is a run of tokens: static bytes and wildcards alternate,
 * starting with static bytes (the leading '/'). */
typedef struct {
    uint8_t kind; /* NODE_* */
    size_t off;   /* static: the bytes; wildcard: the name */
    size_t len;
} cz_tok_t;

#define CZ_MAX_TOKENS (2u * CZ_ROUTER_MAX_PARAMS + 1u)

typedef struct {
    cz_tok_t tok[CZ_MAX_TOKENS];
    size_t ntok;
    size_t nwild;
} cz_parsed_t;

static int bad_byte(cz_addctx_t *c, size_t at) {
    unsigned char b = (unsigned char)c->pat[at];
    if (b == '?' || b == '#') {
        return pattern_error(c, CZ_ROUTER_ESYNTAX,
                             b == '?' ? "'?' starts a query string; patterns match the path only"
                                      : "'#' starts a fragment; patterns match the path only",
                             at);
    }
    add_error(c, CZ_ROUTER_ESYNTAX);
    msg_puts(&c->msg, "bad byte 0x");
    msg_puthex(&c->msg, b);
    msg_puts(&c->msg, " at offset ");
    msg_putu(&c->msg, at);
    msg_puts(&c->msg, " (controls, space and DEL are not allowed)");
    return CZ_ROUTER_ESYNTAX;
}

/* Scan the static run starting at *i up to the next '{' or the end. */
static int parse_static(cz_addctx_t *c, size_t *i, size_t *segments) {
    for (; *i < c->plen && c->pat[*i] != '{'; (*i)++) {
        unsigned char b = (unsigned char)c->pat[*i];
        if (b == '/') {
            if (++*segments > CZ_ROUTER_MAX_SEGMENTS) {
                add_error(c, CZ_ROUTER_ELIMIT);
                msg_puts(&c->msg, "more than ");
                msg_putu(&c->msg, CZ_ROUTER_MAX_SEGMENTS);
                msg_puts(&c->msg, " segments");
                return CZ_ROUTER_ELIMIT;
            }
        } else if (b == '}') {
            return pattern_error(c, CZ_ROUTER_ESYNTAX, "unmatched '}'", *i);
        } else if (!is_static_byte(b)) {
            return bad_byte(c, *i);
        }
    }
    return CZ_ROUTER_OK;
}

/* Read the optional ":converter" at *j (inside braces opened at `open`);
 * leaves *j on the closing '}'. */
static int parse_converter(cz_addctx_t *c, size_t open, size_t *j, uint8_t *kind) {
    const char *p = c->pat;
    size_t conv = *j + 1, k = conv;
    *kind = NODE_PARAM;
    if (p[*j] != ':') return CZ_ROUTER_OK;
    while (k < c->plen && is_name_char((unsigned char)p[k])) k++;
    if (k == c->plen || p[k] != '}')
        return pattern_error(c, CZ_ROUTER_ESYNTAX,
                             k < c->plen && p[k] != '/' ? "bad byte in converter" : "unclosed '{'",
                             k < c->plen && p[k] != '/' ? k : open);
    if (k - conv != 4 || memcmp(p + conv, "path", 4) != 0) {
        add_error(c, CZ_ROUTER_ESYNTAX);
        msg_puts(&c->msg, "unsupported converter '");
        msg_putn(&c->msg, p + conv, k - conv);
        msg_putc(&c->msg, '\'');
        msg_puts(&c->msg, " at offset ");
        msg_putu(&c->msg, conv);
        msg_puts(&c->msg, " (only {name:path} is supported; types are converted in Python)");
        return CZ_ROUTER_ESYNTAX;
    }
    *kind = NODE_CATCHALL;
    *j = k;
    return CZ_ROUTER_OK;
}

static int check_new_name(cz_addctx_t *c, const cz_parsed_t *ps, size_t name, size_t len) {
    size_t t;
    if (ps->nwild == CZ_ROUTER_MAX_PARAMS) {
        add_error(c, CZ_ROUTER_ELIMIT);
        msg_puts(&c->msg, "more than ");
        msg_putu(&c->msg, CZ_ROUTER_MAX_PARAMS);
        msg_puts(&c->msg, " parameters");
        return CZ_ROUTER_ELIMIT;
    }
    for (t = 0; t < ps->ntok; t++) {
        const cz_tok_t *tk = &ps->tok[t];
        if (tk->kind != NODE_STATIC && tk->len == len && memcmp(c->pat + tk->off, c->pat + name, len) == 0) {
            add_error(c, CZ_ROUTER_ESYNTAX);
            msg_puts(&c->msg, "parameter name '");
            msg_putn(&c->msg, c->pat + name, len);
            msg_puts(&c->msg, "' is used twice");
            return CZ_ROUTER_ESYNTAX;
        }
    }
    return CZ_ROUTER_OK;
}

/* Parse the wildcard whose '{' is at *i; on success *i is past its '}'. */
static int parse_wildcard(cz_addctx_t *c, size_t *i, cz_parsed_t *ps) {
    const char *p = c->pat;
    const size_t n = c->plen, open = *i, name = open + 1;
    size_t j = name, name_end, after;
    uint8_t kind;
    int rc;

    if (p[open - 1] != '/')
        return pattern_error(c, CZ_ROUTER_ESYNTAX, "'{' inside a segment (a parameter is a whole segment)", open);
    while (j < n && is_name_char((unsigned char)p[j])) j++;
    if (j == n || p[j] == '/') return pattern_error(c, CZ_ROUTER_ESYNTAX, "unclosed '{'", open);
    if (p[j] != '}' && p[j] != ':')
        return pattern_error(c, CZ_ROUTER_ESYNTAX,
                             p[j] == '{' ? "nested '{'" : "bad byte in parameter name (allowed: [A-Za-z0-9_])", j);
    if (j == name) return pattern_error(c, CZ_ROUTER_ESYNTAX, "empty parameter name", open);
    if (!is_name_start((unsigned char)p[name]))
        return pattern_error(c, CZ_ROUTER_ESYNTAX, "parameter name starts with a digit", name);
    rc = check_new_name(c, ps, name, j - name);
    if (rc != CZ_ROUTER_OK) return rc;
    name_end = j;
    rc = parse_converter(c, open, &j, &kind);
    if (rc != CZ_ROUTER_OK) return rc;
    after = j + 1;
    if (after < n && kind == NODE_CATCHALL)
        return pattern_error(c, CZ_ROUTER_ESYNTAX, "catch-all {name:path} is not the last segment", open);
    if (after < n && p[after] != '/')
        return pattern_error(c, CZ_ROUTER_ESYNTAX, "'}' inside a segment (a parameter is a whole segment)", j);
    /* check_new_name bounded nwild, so tok[] (2 * MAX_PARAMS + 1) has room. */
    ps->tok[ps->ntok].kind = kind;
    ps->tok[ps->ntok].off = name;
    ps->tok[ps->ntok].len = name_end - name;
    ps->ntok++;
    ps->nwild++;
    *i = after;
    return CZ_ROUTER_OK;
}

static int parse_pattern(cz_addctx_t *c, cz_parsed_t *ps) {
    size_t i = 0, segments = 0;
    int rc;

    ps->ntok = 0;
    ps->nwild = 0;
    if (c->plen == 0 || c->pat[0] != '/')
        return pattern_error(c, CZ_ROUTER_ESYNTAX, "pattern does not start with '/'", 0);
    if (c->plen > CZ_ROUTER_MAX_PATTERN) {
        add_error(c, CZ_ROUTER_ELIMIT);
        msg_puts(&c->msg, "pattern is ");
        msg_putu(&c->msg, c->plen);
        msg_puts(&c->msg, " bytes long (max ");
        msg_putu(&c->msg, CZ_ROUTER_MAX_PATTERN);
        msg_putc(&c->msg, ')');
        return CZ_ROUTER_ELIMIT;
    }
    while (i < c->plen) {
        size_t start = i;
        rc = parse_static(c, &i, &segments);
        if (rc != CZ_ROUTER_OK) return rc;
        /* Never empty: a wildcard is always preceded by its own '/'. */
        ps->tok[ps->ntok].kind = NODE_STATIC;
        ps->tok[ps->ntok].off = start;
        ps->tok[ps->ntok].len = i - start;
        ps->ntok++;
        if (i < c->plen) {
            rc = parse_wildcard(c, &i, ps);
            if (rc != CZ_ROUTER_OK) return rc;
        }
    }
    return CZ_ROUTER_OK;
}

/* ===================================================================== */
/* nodes                                                                  */
/* ===================================================================== */

static cz_node *node_alloc(cz_router_t *r, uint8_t kind, const char *s, size_t len, uint32_t origin) {
    cz_node *n = cz_malloc(r->alloc, CZ_PURPOSE, offsetof(cz_node, prefix) + len + 1);
    if (n == NULL) return NULL;
    memset(n, 0, offsetof(cz_node, prefix));
    if (len > 0) memcpy(n->prefix, s, len);
    n->prefix[len] = '\0';
    n->len = (uint32_t)len;
    n->kind = kind;
    n->origin = origin;
    return n;
}

static void node_free(cz_router_t *r, cz_node *n) {
    cz_free(r->alloc, CZ_PURPOSE, n->children);
    cz_free(r->alloc, CZ_PURPOSE, n->routes);
    cz_free(r->alloc, CZ_PURPOSE, n);
}

/*
 * Slot of n's static child starting with byte b, or NULL. The index is
 * sorted: a short scan that stops early for the usual handful of
 * children, binary search for wide nodes (up to 256). Inline code beats
 * a libc call at these sizes.
 */
static cz_node **child_slot(const cz_node *n, unsigned char b) {
    const unsigned char *idx = n->index;
    size_t lo = 0, hi = n->nchildren;
    while (hi - lo > 8) {
        size_t mid = lo + (hi - lo) / 2;
        if (idx[mid] == b) return &n->children[mid];
        if (idx[mid] < b) lo = mid + 1;
        else hi = mid;
    }
    for (; lo < hi && idx[lo] <= b; lo++) {
        if (idx[lo] == b) return &n->children[lo];
    }
    return NULL;
}

/*
 * Allocate a child array holding base[0..cnt) (first bytes bidx[]) plus,
 * when `add` is not NULL, `add` in its sorted place. The pointers and the
 * index share one block: the index follows the pointers, which keeps it
 * aligned and makes growth a single allocation.
 */
static int kids_build(cz_router_t *r, cz_node *const *base, const unsigned char *bidx, size_t cnt, cz_node *add,
                      cz_node ***kids, unsigned char **idx) {
    const size_t total = cnt + (add != NULL);
    cz_node **k = cz_malloc(r->alloc, CZ_PURPOSE, total * (sizeof(cz_node *) + 1));
    unsigned char *x;
    size_t i, o = 0;
    if (k == NULL) return -1;
    x = (unsigned char *)(k + total);
    for (i = 0; i < cnt; i++) {
        if (add != NULL && (unsigned char)add->prefix[0] < bidx[i]) {
            k[o] = add;
            x[o++] = (unsigned char)add->prefix[0];
            add = NULL;
        }
        k[o] = base[i];
        x[o++] = bidx[i];
    }
    if (add != NULL) {
        k[o] = add;
        x[o] = (unsigned char)add->prefix[0];
    }
    *kids = k;
    *idx = x;
    return 0;
}

/* ===================================================================== */
/* registration                                                           */
/* ===================================================================== */

/* Where a new pattern leaves the existing tree. */
typedef struct {
    cz_node *node;   /* deepest existing node on the pattern's path */
    size_t tok, off; /* first token (and byte in it) not in the tree */
    cz_node **slot;  /* non-NULL: this child of `node` must be split ... */
    size_t common;   /* ... after its first `common` label bytes */
} cz_spot_t;

static int conflict_error(cz_addctx_t *c, const cz_tok_t *tk, const cz_node *w) {
    const cz_route_t *owner = &c->r->routes[w->origin];
    const char *suffix = tk->kind == NODE_CATCHALL ? ":path}" : "}";
    size_t mlen = 0;
    const char *mname = cz_router_method_name(c->r, owner->method, &mlen);

    add_error(c, CZ_ROUTER_ECONFLICT);
    msg_putc(&c->msg, '{');
    msg_putn(&c->msg, c->pat + tk->off, tk->len);
    msg_puts(&c->msg, suffix);
    msg_puts(&c->msg, " at offset ");
    msg_putu(&c->msg, tk->off - 1);
    msg_puts(&c->msg, " conflicts with {");
    msg_putn(&c->msg, w->prefix, w->len);
    msg_puts(&c->msg, suffix);
    msg_puts(&c->msg, " at the same position in route #");
    msg_putu(&c->msg, w->origin);
    msg_puts(&c->msg, " (");
    msg_puts(&c->msg, mname != NULL ? mname : "?");
    msg_putc(&c->msg, ' ');
    msg_quote(&c->msg, owner->pattern, owner->pattern_len);
    msg_puts(&c->msg, "); one position takes one parameter name");
    return CZ_ROUTER_ECONFLICT;
}

static int duplicate_error(cz_addctx_t *c, const cz_node *n, uint32_t bit) {
    add_error(c, CZ_ROUTER_EDUPLICATE);
    msg_puts(&c->msg, "already registered as route #");
    msg_putu(&c->msg, n->routes[route_rank(n->methods, bit)]);
    return CZ_ROUTER_EDUPLICATE;
}

static size_t common_prefix(const char *a, size_t alen, const char *b, size_t blen) {
    size_t i = 0, n = alen < blen ? alen : blen;
    while (i < n && a[i] == b[i]) i++;
    return i;
}

static void spot_set(cz_spot_t *sp, cz_node *n, size_t tok, size_t off) {
    sp->node = n;
    sp->tok = tok;
    sp->off = off;
}

/*
 * Walk the tree along the pattern without changing it. Reports a
 * duplicate or a conflicting wildcard name; otherwise fills *sp.
 */
static int locate(cz_addctx_t *c, const cz_parsed_t *ps, uint32_t bit, cz_spot_t *sp) {
    cz_node *n = c->r->root;
    size_t t;

    sp->slot = NULL;
    sp->common = 0;
    for (t = 0; t < ps->ntok; t++) {
        const cz_tok_t *tk = &ps->tok[t];
        const char *s = c->pat + tk->off;
        if (tk->kind == NODE_STATIC) {
            size_t k = 0;
            while (k < tk->len) {
                cz_node **slot = child_slot(n, (unsigned char)s[k]);
                size_t l;
                if (slot == NULL) {
                    spot_set(sp, n, t, k);
                    return CZ_ROUTER_OK;
                }
                l = common_prefix((*slot)->prefix, (*slot)->len, s + k, tk->len - k);
                if (l < (*slot)->len) {
                    sp->slot = slot;
                    sp->common = l;
                    spot_set(sp, n, t, k);
                    return CZ_ROUTER_OK;
                }
                k += l;
                n = *slot;
            }
        } else {
            cz_node *w = tk->kind == NODE_PARAM ? n->param : n->catchall;
            if (w == NULL) {
                spot_set(sp, n, t, 0);
                return CZ_ROUTER_OK;
            }
            if (w->len != tk->len || memcmp(w->prefix, s, tk->len) != 0) return conflict_error(c, tk, w);
            n = w;
        }
    }
    if ((n->methods & bit) != 0) return duplicate_error(c, n, bit);
    spot_set(sp, n, ps->ntok, 0);
    return CZ_ROUTER_OK;
}

/* Everything a registration allocates, prepared before the tree changes. */
typedef struct {
    cz_node *fresh; /* new nodes, linked through next_all */
    size_t nfresh;
    cz_node *split; /* replaces *spot.slot, or NULL */
    cz_node *head;  /* first node of the new chain, or NULL */
    cz_node *final; /* node where the route ends */
    cz_node **kids; /* spot.node's grown child array (static head) */
    unsigned char *kidx;
    uint32_t *routes; /* final's grown endpoint array */
    char *pattern;    /* copy for the route table */
} cz_plan_t;

static cz_node *plan_node(cz_router_t *r, cz_plan_t *pl, uint8_t kind, const char *s, size_t len) {
    cz_node *n = node_alloc(r, kind, s, len, (uint32_t)r->nroutes);
    if (n != NULL) {
        n->next_all = pl->fresh;
        pl->fresh = n;
        pl->nfresh++;
    }
    return n;
}

/* Attach `child` below `parent`, both new (owned by the plan). */
static int plan_link(cz_router_t *r, cz_node *parent, cz_node *child) {
    if (child->kind == NODE_PARAM) parent->param = child;
    else if (child->kind == NODE_CATCHALL) parent->catchall = child;
    else if (kids_build(r, NULL, NULL, 0, child, &parent->children, &parent->index) != 0) return CZ_ROUTER_ENOMEM;
    else parent->nchildren = 1;
    return CZ_ROUTER_OK;
}

/* New nodes for tokens [t, ntok); the first one starts at byte `off`. */
static int plan_chain(cz_addctx_t *c, const cz_parsed_t *ps, size_t t, size_t off, cz_plan_t *pl) {
    cz_node *prev = NULL;
    for (; t < ps->ntok; t++, off = 0) {
        const cz_tok_t *tk = &ps->tok[t];
        cz_node *n = plan_node(c->r, pl, tk->kind, c->pat + tk->off + off, tk->len - off);
        if (n == NULL) return CZ_ROUTER_ENOMEM;
        if (prev == NULL) pl->head = n;
        else if (plan_link(c->r, prev, n) != CZ_ROUTER_OK) return CZ_ROUTER_ENOMEM;
        prev = n;
    }
    pl->final = prev;
    return CZ_ROUTER_OK;
}

/* The split node: the first `common` bytes of the old child's label, with
 * the old child (label shortened on commit) and the new chain below. */
static int plan_split(cz_addctx_t *c, const cz_parsed_t *ps, const cz_spot_t *sp, cz_plan_t *pl) {
    cz_node *old = *sp->slot;
    cz_node *const base[1] = {old};
    const unsigned char bidx[1] = {(unsigned char)old->prefix[sp->common]};
    size_t t = sp->tok, off = sp->off + sp->common;
    cz_node *s;
    int rc;

    s = pl->split = plan_node(c->r, pl, NODE_STATIC, old->prefix, sp->common);
    if (s == NULL) return CZ_ROUTER_ENOMEM;
    if (off == ps->tok[t].len) {
        t++;
        off = 0;
    }
    rc = plan_chain(c, ps, t, off, pl);
    if (rc != CZ_ROUTER_OK) return rc;
    if (pl->head != NULL && pl->head->kind != NODE_STATIC) {
        if (pl->head->kind == NODE_PARAM) s->param = pl->head;
        else s->catchall = pl->head;
    }
    if (kids_build(c->r, base, bidx, 1, pl->head != NULL && pl->head->kind == NODE_STATIC ? pl->head : NULL,
                   &s->children, &s->index) != 0)
        return CZ_ROUTER_ENOMEM;
    s->nchildren = (uint16_t)(pl->head != NULL && pl->head->kind == NODE_STATIC ? 2 : 1);
    if (pl->final == NULL) pl->final = s;
    return CZ_ROUTER_OK;
}

/* final's endpoint array with route `idx` added for `bit`. */
static int plan_routes(cz_router_t *r, cz_plan_t *pl, uint32_t bit, uint32_t idx) {
    const cz_node *f = pl->final;
    const uint32_t cnt = popcount32(f->methods), at = route_rank(f->methods, bit);
    uint32_t *a = cz_malloc(r->alloc, CZ_PURPOSE, (cnt + 1) * sizeof *a);
    if (a == NULL) return CZ_ROUTER_ENOMEM;
    if (at > 0) memcpy(a, f->routes, at * sizeof *a);
    a[at] = idx;
    if (cnt > at) memcpy(a + at + 1, f->routes + at, (cnt - at) * sizeof *a);
    pl->routes = a;
    return CZ_ROUTER_OK;
}

/* Room for one more route. Growing first is harmless if a later step fails. */
static int reserve_route(cz_router_t *r) {
    size_t cap;
    cz_route_t *grown;
    if (r->nroutes < r->routes_cap) return CZ_ROUTER_OK;
    cap = r->routes_cap == 0 ? 16 : r->routes_cap * 2;
    grown = cz_realloc(r->alloc, CZ_PURPOSE, r->routes, cap * sizeof *grown);
    if (grown == NULL) return CZ_ROUTER_ENOMEM;
    r->routes = grown;
    r->routes_cap = cap;
    return CZ_ROUTER_OK;
}

static void plan_rollback(cz_router_t *r, cz_plan_t *pl) {
    while (pl->fresh != NULL) {
        cz_node *n = pl->fresh;
        pl->fresh = n->next_all;
        node_free(r, n);
    }
    cz_free(r->alloc, CZ_PURPOSE, pl->kids);
    cz_free(r->alloc, CZ_PURPOSE, pl->routes);
    cz_free(r->alloc, CZ_PURPOSE, pl->pattern);
}

static int plan_build(cz_addctx_t *c, const cz_parsed_t *ps, const cz_spot_t *sp, uint32_t bit, cz_plan_t *pl) {
    cz_router_t *r = c->r;
    int rc;

    memset(pl, 0, sizeof *pl);
    if (reserve_route(r) != CZ_ROUTER_OK) return CZ_ROUTER_ENOMEM;
    pl->pattern = cz_malloc(r->alloc, CZ_PURPOSE, c->plen + 1);
    if (pl->pattern == NULL) return CZ_ROUTER_ENOMEM;
    memcpy(pl->pattern, c->pat, c->plen);
    pl->pattern[c->plen] = '\0';

    if (sp->slot != NULL) {
        rc = plan_split(c, ps, sp, pl);
    } else if (sp->tok < ps->ntok) {
        rc = plan_chain(c, ps, sp->tok, sp->off, pl);
        if (rc == CZ_ROUTER_OK && pl->head->kind == NODE_STATIC &&
            kids_build(r, sp->node->children, sp->node->index, sp->node->nchildren, pl->head, &pl->kids, &pl->kidx) !=
                0)
            rc = CZ_ROUTER_ENOMEM;
    } else {
        pl->final = sp->node;
        rc = CZ_ROUTER_OK;
    }
    if (rc != CZ_ROUTER_OK) return rc;
    return plan_routes(r, pl, bit, (uint32_t)r->nroutes);
}

/* Link the prepared pieces in. Nothing here can fail. */
static void plan_commit(cz_router_t *r, const cz_spot_t *sp, cz_plan_t *pl, uint32_t bit, void *handler, size_t plen) {
    cz_node *n = sp->node;
    cz_route_t *rt;

    if (pl->split != NULL) {
        cz_node *old = *sp->slot;
        memmove(old->prefix, old->prefix + sp->common, old->len - sp->common + 1);
        old->len -= (uint32_t)sp->common;
        *sp->slot = pl->split;
    } else if (pl->head != NULL && pl->head->kind == NODE_STATIC) {
        cz_free(r->alloc, CZ_PURPOSE, n->children);
        n->children = pl->kids;
        n->index = pl->kidx;
        n->nchildren++;
    } else if (pl->head != NULL) {
        if (pl->head->kind == NODE_PARAM) n->param = pl->head;
        else n->catchall = pl->head;
    }

    cz_free(r->alloc, CZ_PURPOSE, pl->final->routes);
    pl->final->routes = pl->routes;
    pl->final->methods |= bit;

    while (pl->fresh != NULL) {
        cz_node *f = pl->fresh;
        pl->fresh = f->next_all;
        f->next_all = r->nodes;
        r->nodes = f;
    }
    r->nnodes += pl->nfresh;

    rt = &r->routes[r->nroutes++];
    rt->pattern = pl->pattern;
    rt->pattern_len = plen;
    rt->handler = handler;
    rt->method = bit;
}

int cz_router_add(cz_router_t *r, const char *method, size_t method_len, const char *pattern, size_t pattern_len,
                  void *handler, uint32_t *index_out, char *err, size_t errlen) {
    cz_addctx_t c;
    cz_parsed_t ps;
    cz_spot_t sp;
    cz_plan_t pl;
    uint32_t bit = 0;
    int is_new = 0, rc;

    c.r = r;
    c.method = method != NULL ? method : "";
    c.method_len = method != NULL ? method_len : 0;
    c.pat = pattern != NULL ? pattern : "";
    c.plen = pattern != NULL ? pattern_len : 0;
    c.msg.buf = err;
    c.msg.cap = err != NULL ? errlen : 0;
    c.msg.len = 0;
    if (c.msg.cap > 0) err[0] = '\0';

    if (r == NULL || (method == NULL && method_len > 0) || (pattern == NULL && pattern_len > 0)) {
        add_error(&c, CZ_ROUTER_EINVAL);
        msg_puts(&c.msg, r == NULL ? "router is NULL" : "NULL string with a non-zero length");
        return CZ_ROUTER_EINVAL;
    }
    rc = resolve_method(&c, &bit, &is_new);
    if (rc == CZ_ROUTER_OK) rc = parse_pattern(&c, &ps);
    if (rc == CZ_ROUTER_OK && r->nroutes >= CZ_ROUTER_MAX_ROUTES) {
        rc = add_error(&c, CZ_ROUTER_ELIMIT);
        msg_puts(&c.msg, "the router already holds the maximum number of routes");
    }
    if (rc == CZ_ROUTER_OK) rc = locate(&c, &ps, bit, &sp);
    if (rc != CZ_ROUTER_OK) return rc;

    rc = plan_build(&c, &ps, &sp, bit, &pl);
    if (rc != CZ_ROUTER_OK) {
        plan_rollback(r, &pl);
        add_error(&c, rc);
        msg_puts(&c.msg, "the allocator refused memory; the router is unchanged");
        return rc;
    }
    if (is_new) {
        memcpy(r->ext_name[r->next], method, method_len);
        r->ext_name[r->next][method_len] = '\0';
        r->ext_len[r->next] = (uint8_t)method_len;
        r->next++;
    }
    if (index_out != NULL) *index_out = (uint32_t)r->nroutes;
    plan_commit(r, &sp, &pl, bit, handler, c.plen);
    return CZ_ROUTER_OK;
}

/* ===================================================================== */
/* matching                                                               */
/* ===================================================================== */

typedef struct {
    const char *path;
    size_t len;    /* bytes of path[] */
    size_t total;  /* len, plus one virtual trailing '/' when probing */
    uint32_t want; /* methods a route node must have one of */
    uint32_t seen; /* methods of every route node matching the path */
    const cz_node *found;
    uint32_t nparams;
    cz_param_t *params; /* NULL when only probing */
} cz_search_t;

static unsigned char byte_at(const cz_search_t *s, size_t pos) {
    return pos < s->len ? (unsigned char)s->path[pos] : (unsigned char)'/';
}

/* memcmp(a, b, n) == 0 for the short labels of a radix tree, inline:
 * 8 bytes at a time, then the tail. */
static int bytes_equal(const char *a, const char *b, size_t n) {
    for (; n >= 8; a += 8, b += 8, n -= 8) {
        uint64_t x, y;
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        if (x != y) return 0;
    }
    for (; n > 0; n--) {
        if (*a++ != *b++) return 0;
    }
    return 1;
}

/* Does c's label match the path at pos? Its first byte already matched
 * through the index. The virtual slash can only be the last byte of the
 * path, hence of the label. */
static int label_matches(const cz_node *c, size_t pos, const cz_search_t *s) {
    const size_t n = c->len;
    if (n > s->total - pos) return 0;
    if (pos + n <= s->len) return bytes_equal(s->path + pos + 1, c->prefix + 1, n - 1);
    /* n == 1: the label is "/" and the index already matched it. */
    return n == 1 || (c->prefix[n - 1] == '/' && bytes_equal(s->path + pos + 1, c->prefix + 1, n - 2));
}

/* End of the segment starting at pos: the next '/' or the end of path. */
static size_t segment_end(const cz_search_t *s, size_t pos) {
    const char *slash;
    if (pos >= s->len) return pos;
    slash = memchr(s->path + pos, '/', s->len - pos);
    return slash != NULL ? (size_t)(slash - s->path) : s->len;
}

static int push_param(cz_search_t *s, const cz_node *w, size_t pos, size_t len) {
    if (s->nparams >= CZ_ROUTER_MAX_PARAMS) /* registration makes this unreachable */
        return 0;
    if (s->params != NULL) {
        cz_param_t *p = &s->params[s->nparams];
        p->name = w->prefix;
        p->name_len = w->len;
        p->offset = pos;
        p->len = len;
    }
    s->nparams++;
    return 1;
}

/* The whole path has been consumed at n: is it a route for us? */
static int visit(const cz_node *n, cz_search_t *s) {
    if (n->methods == 0) return 0;
    s->seen |= n->methods;
    if ((n->methods & s->want) == 0) return 0;
    s->found = n;
    return 1;
}

static int search(const cz_node *n, size_t pos, cz_search_t *s);

static int try_param(const cz_node *w, size_t pos, cz_search_t *s) {
    size_t end = segment_end(s, pos);
    if (end == pos || !push_param(s, w, pos, end - pos)) return 0;
    if (search(w, end, s)) return 1;
    s->nparams--;
    return 0;
}

/* pos < total here, so the catch-all takes the non-empty rest. */
static int try_catchall(const cz_node *w, size_t pos, cz_search_t *s) {
    if (!push_param(s, w, pos, s->total - pos)) return 0;
    if (visit(w, s)) return 1;
    s->nparams--;
    return 0;
}

/*
 * Depth-first search in priority order: static, parameter, catch-all.
 * A node is reached at one path position only (labels have fixed length,
 * a parameter takes exactly one segment), so each node is visited at
 * most once. Recursion happens only where a wildcard offers an
 * alternative, i.e. at most once per pattern segment plus once per
 * parameter; static descents are a loop.
 */
static int search(const cz_node *n, size_t pos, cz_search_t *s) {
    for (;;) {
        const cz_node *c;
        cz_node **slot;

        if (pos == s->total) return visit(n, s);
        slot = child_slot(n, byte_at(s, pos));
        c = slot != NULL && label_matches(*slot, pos, s) ? *slot : NULL;
        if (n->param == NULL && n->catchall == NULL) {
            if (c == NULL) return 0;
            pos += c->len;
            n = c;
            continue;
        }
        if (c != NULL && search(c, pos + c->len, s)) return 1;
        if (n->param != NULL && try_param(n->param, pos, s)) return 1;
        return n->catchall != NULL && try_catchall(n->catchall, pos, s);
    }
}

static void search_init(cz_search_t *s, const char *path, size_t len, int virtual_slash, uint32_t want,
                        cz_param_t *params) {
    s->path = path;
    s->len = len;
    s->total = len + (virtual_slash != 0);
    s->want = want;
    s->seen = 0;
    s->found = NULL;
    s->nparams = 0;
    s->params = params;
}

/* Would the method be FOUND with one trailing slash added or removed? */
static cz_slash_hint_t slash_hint(const cz_router_t *r, const char *path, size_t len, uint32_t want) {
    cz_search_t s;
    if (len == 0 || want == 0) return CZ_SLASH_NONE;
    if (path[len - 1] == '/') {
        if (len == 1) return CZ_SLASH_NONE;
        search_init(&s, path, len - 1, 0, want, NULL);
        return search(r->root, 0, &s) ? CZ_SLASH_REMOVE : CZ_SLASH_NONE;
    }
    search_init(&s, path, len, 1, want, NULL);
    return search(r->root, 0, &s) ? CZ_SLASH_ADD : CZ_SLASH_NONE;
}

cz_match_status_t cz_router_match(const cz_router_t *r, const char *method, size_t method_len, const char *path,
                                  size_t path_len, cz_match_t *out) {
    cz_search_t s;
    uint32_t bit, want;

    if (out == NULL) return CZ_MATCH_NOT_FOUND;
    out->status = CZ_MATCH_NOT_FOUND;
    out->handler = NULL;
    out->route_index = 0;
    out->nparams = 0;
    out->allowed = 0;
    out->slash = CZ_SLASH_NONE;
    if (r == NULL || (path == NULL && path_len > 0)) return CZ_MATCH_NOT_FOUND;
    if (path == NULL) path = "";

    bit = cz_router_method_bit(r, method, method_len);
    want = bit == CZ_METHOD_HEAD ? CZ_METHOD_HEAD | CZ_METHOD_GET : bit;
    search_init(&s, path, path_len, 0, want, out->params);
    if (search(r->root, 0, &s)) {
        const cz_node *f = s.found;
        /* HEAD falls back to GET on the node that matched. */
        const uint32_t use = (f->methods & bit) != 0 ? bit : CZ_METHOD_GET;
        const uint32_t idx = f->routes[route_rank(f->methods, use)];
        out->status = CZ_MATCH_FOUND;
        out->handler = r->routes[idx].handler;
        out->route_index = idx;
        out->nparams = s.nparams;
        return CZ_MATCH_FOUND;
    }
    if (s.seen != 0) {
        out->status = CZ_MATCH_METHOD_NOT_ALLOWED;
        out->allowed = s.seen | ((s.seen & CZ_METHOD_GET) != 0 ? CZ_METHOD_HEAD : 0);
        return CZ_MATCH_METHOD_NOT_ALLOWED;
    }
    out->slash = slash_hint(r, path, path_len, want);
    return CZ_MATCH_NOT_FOUND;
}

size_t cz_router_allow_header(const cz_router_t *r, uint32_t methods, char *buf, size_t buflen) {
    size_t i, need = 0, count;
    const char *name;
    size_t len = 0;

    if (r == NULL) {
        if (buf != NULL && buflen > 0) buf[0] = '\0';
        return 0;
    }
    if ((methods & CZ_METHOD_GET) != 0) methods |= CZ_METHOD_HEAD;
    methods |= CZ_METHOD_OPTIONS;
    count = CZ_METHOD_STANDARD_COUNT + r->next;
    /* Pass 1 measures, pass 2 writes only if everything fits. */
    for (i = 0; i < count; i++) {
        if ((methods & (1u << i)) != 0 && cz_router_method_name(r, 1u << i, &len) != NULL)
            need += (need > 0 ? 2 : 0) + len;
    }
    if (buf == NULL || buflen == 0) return need;
    if (need >= buflen) {
        buf[0] = '\0';
        return need;
    }
    buf[0] = '\0';
    for (i = 0, need = 0; i < count; i++) {
        if ((methods & (1u << i)) == 0 || (name = cz_router_method_name(r, 1u << i, &len)) == NULL) continue;
        if (need > 0) {
            memcpy(buf + need, ", ", 2);
            need += 2;
        }
        memcpy(buf + need, name, len);
        need += len;
    }
    buf[need] = '\0';
    return need;
}

/* ===================================================================== */
/* lifecycle and introspection                                            */
/* ===================================================================== */

cz_router_t *cz_router_create(cz_allocator_t *a) {
    cz_router_t *r;
    if (a == NULL) return NULL;
    r = cz_malloc(a, CZ_PURPOSE, sizeof *r);
    if (r == NULL) return NULL;
    memset(r, 0, sizeof *r);
    r->alloc = a;
    r->root = node_alloc(r, NODE_STATIC, "", 0, 0);
    if (r->root == NULL) {
        cz_free(a, CZ_PURPOSE, r);
        return NULL;
    }
    r->nodes = r->root;
    r->nnodes = 1;
    return r;
}

void cz_router_destroy(cz_router_t *r) {
    size_t i;
    if (r == NULL) return;
    while (r->nodes != NULL) {
        cz_node *n = r->nodes;
        r->nodes = n->next_all;
        node_free(r, n);
    }
    for (i = 0; i < r->nroutes; i++) cz_free(r->alloc, CZ_PURPOSE, r->routes[i].pattern);
    cz_free(r->alloc, CZ_PURPOSE, r->routes);
    cz_free(r->alloc, CZ_PURPOSE, r);
}

size_t cz_router_route_count(const cz_router_t *r) {
    return r != NULL ? r->nroutes : 0;
}

int cz_router_route_at(const cz_router_t *r, size_t index, cz_route_info_t *out) {
    const cz_route_t *rt;
    if (r == NULL || out == NULL || index >= r->nroutes) return -1;
    rt = &r->routes[index];
    out->method = cz_router_method_name(r, rt->method, &out->method_len);
    out->pattern = rt->pattern;
    out->pattern_len = rt->pattern_len;
    out->handler = rt->handler;
    out->index = (uint32_t)index;
    return 0;
}

size_t cz_router_node_count(const cz_router_t *r) {
    return r != NULL ? r->nnodes : 0;
}
