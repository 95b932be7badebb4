/* cz_metrics — see cz_metrics.h for the contract. */
#include "cz_metrics.h"

#include "llhttp.h"
#include <string.h>

const uint64_t CZ_METRICS_BOUNDS_NS[CZ_METRICS_BUCKETS] = {
    500000ull,    1000000ull,   2500000ull,   5000000ull,    10000000ull,   25000000ull,   50000000ull,
    100000000ull, 250000000ull, 500000000ull, 1000000000ull, 2500000000ull, 5000000000ull, 10000000000ull,
};

void cz_metrics_init(cz_metrics_t *m, cz_allocator_t *alloc) {
    memset(m, 0, sizeof(*m));
    m->alloc = alloc;
}

void cz_metrics_destroy(cz_metrics_t *m) {
    cz_free(m->alloc, CZ_MEM_GENERAL, m->routes);
    m->routes = NULL;
    m->nroutes = 0;
}

int cz_metrics_reserve(cz_metrics_t *m, size_t nroutes) {
    if (m->routes && nroutes <= m->nroutes) return 0;
    if (nroutes > SIZE_MAX / sizeof(cz_metrics_route_t) - 1u) return -1;
    cz_metrics_route_t *r = cz_calloc(m->alloc, CZ_MEM_GENERAL, nroutes + 1u, sizeof(*r));
    if (!r) return -1;
    if (m->routes) {
        memcpy(r, m->routes, m->nroutes * sizeof(*r));
        r[nroutes] = m->routes[m->nroutes]; /* "no route" stays last */
        cz_free(m->alloc, CZ_MEM_GENERAL, m->routes);
    }
    m->routes = r;
    m->nroutes = nroutes;
    return 0;
}

cz_metrics_method_t cz_metrics_method(int method_id) {
    switch (method_id) {
    case HTTP_GET: return CZ_METRICS_GET;
    case HTTP_HEAD: return CZ_METRICS_HEAD;
    case HTTP_POST: return CZ_METRICS_POST;
    case HTTP_PUT: return CZ_METRICS_PUT;
    case HTTP_DELETE: return CZ_METRICS_DELETE;
    case HTTP_PATCH: return CZ_METRICS_PATCH;
    case HTTP_OPTIONS: return CZ_METRICS_OPTIONS;
    default: return CZ_METRICS_OTHER;
    }
}

void cz_metrics_observe(cz_metrics_t *m, uint32_t route_index, int method_id, int status, uint64_t ns) {
    if (!m->routes) return;
    cz_metrics_route_t *r = &m->routes[route_index < m->nroutes ? route_index : m->nroutes];
    int cls = status >= 100 && status < 600 ? status / 100 - 1 : CZ_METRICS_CLASSES - 1;
    r->count[cz_metrics_method(method_id)][cls]++;
    unsigned b = 0;
    while (b < CZ_METRICS_BUCKETS && ns > CZ_METRICS_BOUNDS_NS[b]) b++;
    r->bucket[b]++;
    r->sum_ns += ns;
    r->observed++;
    m->answered++;
}

void cz_metrics_observe_memory(cz_metrics_t *m, uint32_t route_index, const cz_mem_tally_t *t) {
    if (!m->routes || !t) return;
    cz_metrics_route_t *r = &m->routes[route_index < m->nroutes ? route_index : m->nroutes];
    for (int p = 0; p < CZ_MEM_PURPOSES; p++) r->mem_allocated[p] += t->allocated[p];
    r->mem_python += t->python;
    r->mem_requests++;
    if (t->peak > 0 && (uint64_t)t->peak > r->mem_peak) r->mem_peak = (uint64_t)t->peak;
}

const cz_metrics_route_t *cz_metrics_route(const cz_metrics_t *m, uint32_t route_index) {
    if (!m->routes) return NULL;
    return &m->routes[route_index < m->nroutes ? route_index : m->nroutes];
}
