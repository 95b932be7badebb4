/*
 * cz_answer — what the server answers by itself once a request is routed:
 * OPTIONS with Allow (204), a known path with another method (405 + Allow),
 * the other trailing-slash form (307, as Starlette's redirect_slashes), and
 * 404. No sockets here: the server and the fuzz harness run the same code.
 */
#ifndef CZ_ANSWER_H
#define CZ_ANSWER_H

#include "cz_http.h"
#include "cz_memory.h"
#include "cz_router.h"

/* Where and how an answer is written (as in cz_http_response_t). */
typedef struct {
    cz_http_buf_t *out;
    const cz_http_date_t *date; /* NULL: no Date header */
    int http_minor, keep_alive, head;
} cz_answer_to_t;

typedef enum {
    CZ_ANSWER_APP = 0, /* the application answers: *m holds the match */
    CZ_ANSWER_DONE     /* the answer was appended to `to->out` (or could not be: see *rc) */
} cz_answer_t;

/*
 * Route `req` with `router` into *m and decide who answers. The application
 * does for FOUND, and for NOT_FOUND without a trailing-slash alternative when
 * `app_not_found` is set. Otherwise the answer is appended and *rc receives
 * the serializer's result (CZ_HTTP_OK, CZ_HTTP_ENOMEM or CZ_HTTP_E2BIG; on
 * failure nothing was appended). A 307 never points to "//host" or
 * "/\host" (another site, for browsers): such a path is answered 404.
 * `alloc` (CZ_MEM_RESPONSE) holds a Location while it is written.
 */
cz_answer_t cz_answer_route(const cz_router_t *router, cz_allocator_t *alloc, const cz_http_request_t *req,
                            int app_not_found, const cz_answer_to_t *to, cz_match_t *m, int *rc);

#endif /* CZ_ANSWER_H */
