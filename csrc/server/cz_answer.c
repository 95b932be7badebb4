/* cz_answer — see cz_answer.h for the contract. */
#include "cz_answer.h"

#include <string.h>

#define ALL_METHODS (CZ_METHOD_GET | CZ_METHOD_POST | CZ_METHOD_PUT | CZ_METHOD_PATCH | CZ_METHOD_DELETE)

static int write_one(const cz_answer_to_t *to, int status, const char *name, const char *value, size_t len) {
    cz_http_header_t h = {{name, strlen(name)}, {value, len}};
    cz_http_response_t r = {0};
    r.status = status;
    r.headers = &h;
    r.num_headers = 1;
    r.body = (cz_http_str_t){"", 0};
    r.http_minor = to->http_minor;
    r.keep_alive = to->keep_alive;
    r.head = to->head;
    return cz_http_response_write(to->out, to->date, &r);
}

static int write_error(const cz_answer_to_t *to, int status, const char *allow) {
    return cz_http_write_error(to->out, to->date, status, allow, to->http_minor, to->keep_alive, to->head);
}

static int answer_options(const cz_router_t *router, const cz_answer_to_t *to, uint32_t allowed) {
    char allow[CZ_ROUTER_ALLOW_MAX];
    size_t n = cz_router_allow_header(router, allowed, allow, sizeof(allow));
    return write_one(to, 204, "Allow", allow, n < sizeof(allow) ? n : 0);
}

static int redirect_slash(cz_allocator_t *alloc, const cz_http_request_t *req, cz_slash_hint_t hint,
                          const cz_answer_to_t *to) {
    size_t cap = req->path.len + 2 + req->query.len;
    char *loc = cz_malloc(alloc, CZ_MEM_RESPONSE, cap);
    if (!loc) return CZ_HTTP_ENOMEM;
    size_t n = req->path.len;
    memcpy(loc, req->path.base, n);
    if (hint == CZ_SLASH_ADD) loc[n++] = '/';
    else n--;
    int rc;
    if (n > 1 && (loc[1] == '/' || loc[1] == '\\')) {
        rc = write_error(to, 404, NULL); /* an open redirect otherwise */
    } else {
        if (req->query.len) {
            loc[n++] = '?';
            memcpy(loc + n, req->query.base, req->query.len);
            n += req->query.len;
        }
        rc = write_one(to, 307, "Location", loc, n);
    }
    cz_free(alloc, CZ_MEM_RESPONSE, loc);
    return rc;
}

cz_answer_t cz_answer_route(const cz_router_t *router, cz_allocator_t *alloc, const cz_http_request_t *req,
                            int app_not_found, const cz_answer_to_t *to, cz_match_t *m, int *rc) {
    cz_router_match(router, req->method.base, req->method.len, req->path.base, req->path.len, m);
    int options = req->method_id == HTTP_OPTIONS;
    if (options && req->target.len == 1 && req->target.base[0] == '*') {
        *rc = answer_options(router, to, ALL_METHODS);
    } else if (m->status == CZ_MATCH_FOUND ||
               (m->status == CZ_MATCH_NOT_FOUND && app_not_found && m->slash == CZ_SLASH_NONE)) {
        return CZ_ANSWER_APP;
    } else if (m->status == CZ_MATCH_METHOD_NOT_ALLOWED) {
        if (options) {
            *rc = answer_options(router, to, m->allowed);
        } else {
            char allow[CZ_ROUTER_ALLOW_MAX];
            cz_router_allow_header(router, m->allowed, allow, sizeof(allow));
            *rc = write_error(to, 405, allow);
        }
    } else if (m->slash != CZ_SLASH_NONE) {
        *rc = redirect_slash(alloc, req, m->slash, to);
    } else {
        *rc = write_error(to, 404, NULL);
    }
    /* Nothing of ours is an invalid response; should one be, 500 says so. */
    if (*rc == CZ_HTTP_EINVAL) *rc = write_error(to, 500, NULL);
    return CZ_ANSWER_DONE;
}
