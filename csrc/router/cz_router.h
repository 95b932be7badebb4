/*
 * cz_router — Catzilla's HTTP router: a compressed radix tree mapping
 * (method, path) to an opaque handler.
 *
 * Patterns
 *   Every pattern starts with '/'. A segment is either literal bytes or a
 *   parameter that spans the whole segment:
 *     /users/me            static
 *     /users/{id}          parameter: one or more bytes up to the next '/'
 *     /files/{rest:path}   catch-all: one or more bytes, slashes included,
 *                          up to the end of the path; last segment only
 *   Names match [A-Za-z_][A-Za-z0-9_]*. Other converters ({id:int}) are
 *   rejected: type conversion belongs to the Python layer, which passes
 *   the router plain {id}. A catch-all never matches the empty string, so
 *   /files/{rest:path} does not match "/files/" (register that separately).
 *   Literal bytes may be any byte except controls, space, DEL, '{', '}',
 *   '?' and '#'; bytes >= 0x80 are allowed (raw UTF-8).
 *
 * Matching
 *   On the raw path as given: no percent-decoding, no dot-segment or
 *   duplicate-slash normalization (the server decides on those before or
 *   after routing). Any byte sequence is a valid input, NUL included.
 *   At each level a static continuation wins over a parameter, which wins
 *   over a catch-all; when the preferred branch dead-ends (no route for
 *   the rest of the path, or none for this method) the search backtracks,
 *   so /users/me and /users/{id} coexist and /users/me/posts still matches
 *   /users/{id}/posts. The search visits each tree node at most once.
 *   /users and /users/ are different routes.
 *
 * Methods
 *   Method tokens are case-sensitive (RFC 9110). The seven standard
 *   methods have fixed bits; any other token is an extension method and
 *   gets one of CZ_ROUTER_MAX_EXT_METHODS per-router bits when first
 *   registered. A HEAD request uses the GET route of a pattern when that
 *   pattern has no explicit HEAD route (the choice is per pattern: the
 *   best-ranked pattern with HEAD or GET wins).
 *
 * Memory and threads
 *   Everything is allocated from the allocator given at creation, purpose
 *   CZ_MEM_STATIC, and released by cz_router_destroy. Registration is
 *   all-or-nothing: a failed cz_router_add (any error, out-of-memory
 *   included) leaves the router exactly as it was. Matching never
 *   allocates and only reads the tree, so any number of threads may match
 *   concurrently; registration must not overlap with anything else.
 */
#ifndef CZ_ROUTER_H
#define CZ_ROUTER_H

#include <stddef.h>
#include <stdint.h>

#include "cz_memory.h"

/* ---- limits ----------------------------------------------------------------
 * They bound stack use of matching (recursion depth <= segments of the
 * deepest pattern) and the size of cz_match_t. */
#define CZ_ROUTER_MAX_PATTERN     2048u      /* bytes of one pattern */
#define CZ_ROUTER_MAX_SEGMENTS    128u       /* '/'-separated segments of one pattern */
#define CZ_ROUTER_MAX_PARAMS      16u        /* parameters (catch-all included) of one pattern */
#define CZ_ROUTER_MAX_ROUTES      (1u << 24) /* routes of one router */
#define CZ_ROUTER_METHOD_MAX      32u        /* bytes of one method token */
#define CZ_ROUTER_MAX_EXT_METHODS 16u        /* distinct extension methods of one router */

/* ---- methods ---------------------------------------------------------------- */
#define CZ_METHOD_GET            (1u << 0)
#define CZ_METHOD_HEAD           (1u << 1)
#define CZ_METHOD_POST           (1u << 2)
#define CZ_METHOD_PUT            (1u << 3)
#define CZ_METHOD_PATCH          (1u << 4)
#define CZ_METHOD_DELETE         (1u << 5)
#define CZ_METHOD_OPTIONS        (1u << 6)
#define CZ_METHOD_STANDARD_COUNT 7u
/* Extension method k (0-based, in order of first registration) has bit
 * (1u << (CZ_METHOD_STANDARD_COUNT + k)). */

/* Buffer size that always holds cz_router_allow_header's output:
 * the standard names and separators (44 bytes), every extension method
 * with its ", " separator, and the NUL. */
#define CZ_ROUTER_ALLOW_MAX (44u + CZ_ROUTER_MAX_EXT_METHODS * (2u + CZ_ROUTER_METHOD_MAX) + 1u)

typedef struct cz_router cz_router_t;

/* ---- errors ----------------------------------------------------------------- */
typedef enum {
    CZ_ROUTER_OK = 0,
    CZ_ROUTER_EINVAL,     /* NULL router/pattern/method pointer with non-zero length */
    CZ_ROUTER_ENOMEM,     /* allocator refused; router unchanged */
    CZ_ROUTER_EMETHOD,    /* method is not an HTTP token or is longer than CZ_ROUTER_METHOD_MAX */
    CZ_ROUTER_ESYNTAX,    /* malformed pattern: no leading '/', bad byte, braces,
                           * empty or bad name, parameter not a whole segment,
                           * catch-all not last, unknown converter, repeated name */
    CZ_ROUTER_ELIMIT,     /* a CZ_ROUTER_MAX_* limit would be exceeded */
    CZ_ROUTER_EDUPLICATE, /* same method and same pattern already registered */
    CZ_ROUTER_ECONFLICT   /* a parameter or catch-all at the same position
                           * has a different name in an existing route */
} cz_router_err_t;

/* Short static description of an error code ("duplicate route", ...). */
const char *cz_router_strerror(int err);

/* ---- lifecycle ---------------------------------------------------------------- */

/* Create an empty router using allocator `a` (which must outlive it).
 * Returns NULL when `a` is NULL or memory runs out. */
cz_router_t *cz_router_create(cz_allocator_t *a);

/* Free everything the router allocated. NULL is a no-op. */
void cz_router_destroy(cz_router_t *r);

/* ---- registration --------------------------------------------------------------- */

/*
 * Register `handler` for (method, pattern). Neither string needs a NUL;
 * both are copied. On success returns CZ_ROUTER_OK and stores the new
 * route's index (0, 1, 2, ... in registration order) in *index_out when
 * not NULL. On failure returns a cz_router_err_t, leaves the router
 * unchanged and, when err/errlen allow, writes a NUL-terminated message
 * naming the method, the offending pattern (non-printable bytes escaped,
 * long patterns shortened) and, for duplicates and conflicts, the route
 * already registered.
 */
int cz_router_add(cz_router_t *r, const char *method, size_t method_len, const char *pattern, size_t pattern_len,
                  void *handler, uint32_t *index_out, char *err, size_t errlen);

/* ---- matching ------------------------------------------------------------------ */

typedef enum {
    CZ_MATCH_NOT_FOUND = 0,
    CZ_MATCH_FOUND,
    CZ_MATCH_METHOD_NOT_ALLOWED /* the path matches, the method does not */
} cz_match_status_t;

/* Suggested redirect when the path is not found (Starlette's
 * redirect_slashes): the same method would be FOUND on the path with one
 * trailing '/' added or removed. */
typedef enum {
    CZ_SLASH_NONE = 0,
    CZ_SLASH_ADD,   /* "/users" not found, "/users/" found */
    CZ_SLASH_REMOVE /* "/users/" not found, "/users" found */
} cz_slash_hint_t;

/* One captured parameter. The value is not copied: it is
 * path[offset .. offset+len) of the path passed to cz_router_match. */
typedef struct {
    const char *name; /* owned by the router, NUL-terminated */
    size_t name_len;
    size_t offset;
    size_t len;
} cz_param_t;

typedef struct {
    cz_match_status_t status;
    /* FOUND: */
    void *handler;
    uint32_t route_index;
    uint32_t nparams; /* params[0 .. nparams) in pattern order */
    cz_param_t params[CZ_ROUTER_MAX_PARAMS];
    /* METHOD_NOT_ALLOWED: the methods that would be FOUND on this path
     * (HEAD included wherever GET is; OPTIONS only if registered). Feed
     * to cz_router_allow_header. 0 otherwise. */
    uint32_t allowed;
    /* NOT_FOUND: see cz_slash_hint_t. CZ_SLASH_NONE otherwise. */
    cz_slash_hint_t slash;
} cz_match_t;

/*
 * Route (method, path) into *out and return out->status. Neither string
 * needs a NUL; `path` is the path only (no query string), raw bytes.
 * Never allocates; the result's params point into `path` and into the
 * router. An unknown method still yields METHOD_NOT_ALLOWED when the path
 * matches. Only the fields listed for the returned status are meaningful.
 * OPTIONS without an explicit OPTIONS route yields METHOD_NOT_ALLOWED
 * (or NOT_FOUND); the server is expected to answer it itself with the
 * Allow header.
 */
cz_match_status_t cz_router_match(const cz_router_t *r, const char *method, size_t method_len, const char *path,
                                  size_t path_len, cz_match_t *out);

/*
 * Write the value of an Allow header for `methods` (typically
 * cz_match_t.allowed) into buf: standard methods in the order GET, HEAD,
 * POST, PUT, PATCH, DELETE, OPTIONS, then extension methods in
 * registration order, separated by ", ". HEAD is added when GET is present
 * and OPTIONS is always added, as the server answers OPTIONS itself.
 * Returns the length of the full value (without NUL). The value is
 * written NUL-terminated only when it fits (return < buflen); otherwise
 * buf receives "" (when buflen > 0) so that a cut header is never sent.
 * A buffer of CZ_ROUTER_ALLOW_MAX bytes always suffices.
 */
size_t cz_router_allow_header(const cz_router_t *r, uint32_t methods, char *buf, size_t buflen);

/* ---- methods ------------------------------------------------------------------- */

/* Bit of a method token for this router: a standard method or an
 * extension already registered. 0 when unknown. */
uint32_t cz_router_method_bit(const cz_router_t *r, const char *method, size_t method_len);

/* Name of the method with bit `bit` (exactly one bit set), NUL-terminated,
 * length in *len when not NULL; NULL when the bit names no method. */
const char *cz_router_method_name(const cz_router_t *r, uint32_t bit, size_t *len);

/* ---- introspection ------------------------------------------------------------------ */

typedef struct {
    const char *method; /* NUL-terminated, owned by the router */
    size_t method_len;
    const char *pattern; /* NUL-terminated copy, owned by the router */
    size_t pattern_len;
    void *handler;
    uint32_t index;
} cz_route_info_t;

/* Number of registered routes; their indexes are 0 .. count-1. */
size_t cz_router_route_count(const cz_router_t *r);

/* Describe route `index` in *out. Returns 0, or -1 when out of range.
 * Iterate with: for (i = 0; i < count; i++) cz_router_route_at(r, i, &info). */
int cz_router_route_at(const cz_router_t *r, size_t index, cz_route_info_t *out);

/* Number of tree nodes (for tests and memory diagnostics). */
size_t cz_router_node_count(const cz_router_t *r);

#endif /* CZ_ROUTER_H */
