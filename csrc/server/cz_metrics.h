/*
 * cz_metrics — per-route request accounting, kept in C so that a scrape of
 * /metrics costs nothing per request: counts by method and status class,
 * and a latency histogram, in one array indexed by the router's route
 * index (plus one slot for requests no route took: 404, 405, OPTIONS and
 * redirects answered by the server itself). No sockets, no Python: the
 * embedder calls cz_metrics_observe() once per answered request (see
 * cz_conn_env_t.answered) and reads the figures when scraped.
 *
 * Latency is from when the request was dispatched to when its whole answer
 * was queued, in nanoseconds; the histogram's buckets are the upper bounds
 * CZ_METRICS_BOUNDS_NS (Prometheus "le", cumulated by the reader) and +Inf.
 * Memory per route, when the embedder measures it, is what each request's
 * connection allocated through cz_memory (cz_mem_tally_t), summed per
 * purpose, with the largest one request held (cz_metrics_observe_memory).
 *
 * Memory: one CZ_MEM_GENERAL array, grown by cz_metrics_reserve() (not
 * while observing). Threads: none; the embedder serializes calls (the
 * loop thread observes; a reader on another thread may see counters a few
 * requests apart, never torn: every field is one aligned 64-bit word).
 */
#ifndef CZ_METRICS_H
#define CZ_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "cz_memory.h"

/* Method slots: the common methods, then every other one. */
typedef enum {
    CZ_METRICS_GET = 0,
    CZ_METRICS_HEAD,
    CZ_METRICS_POST,
    CZ_METRICS_PUT,
    CZ_METRICS_DELETE,
    CZ_METRICS_PATCH,
    CZ_METRICS_OPTIONS,
    CZ_METRICS_OTHER,
    CZ_METRICS_METHODS
} cz_metrics_method_t;

/* Status classes 1xx..5xx (index class - 1; anything else counts as 5xx). */
#define CZ_METRICS_CLASSES 5
/* Finite histogram bounds, in ns (0.5 ms .. 10 s); one more bucket is +Inf. */
#define CZ_METRICS_BUCKETS 14
extern const uint64_t CZ_METRICS_BOUNDS_NS[CZ_METRICS_BUCKETS];

/* One route's figures. */
typedef struct {
    uint64_t count[CZ_METRICS_METHODS][CZ_METRICS_CLASSES];
    uint64_t bucket[CZ_METRICS_BUCKETS + 1]; /* per bucket (not cumulated); the last: over every bound */
    uint64_t sum_ns;                         /* of every latency observed */
    uint64_t observed;                       /* = sum of bucket[] */
    /* Memory (cz_metrics_observe_memory): per purpose, the bytes the
     * layer handed out for its requests (cz_mem_tally_t.allocated); how
     * many requests were measured; the most one of them held at once. */
    uint64_t mem_allocated[CZ_MEM_PURPOSES];
    uint64_t mem_python; /* cz_mem_tally_t.python, summed */
    uint64_t mem_requests;
    uint64_t mem_peak;
} cz_metrics_route_t;

typedef struct {
    cz_allocator_t *alloc;
    cz_metrics_route_t *routes; /* nroutes + 1: the last is "no route" */
    size_t nroutes;
    uint64_t answered; /* requests observed, all routes */
} cz_metrics_t;

/* Takes no memory yet. */
void cz_metrics_init(cz_metrics_t *m, cz_allocator_t *alloc);
void cz_metrics_destroy(cz_metrics_t *m);
/* Room (zeroed) for routes 0 .. nroutes - 1 and the "no route" slot, whose
 * figures are kept. 0, or -1 when out of memory (nothing changed). */
int cz_metrics_reserve(cz_metrics_t *m, size_t nroutes);
/* The slot of `method_id` (llhttp's HTTP_GET, ...). */
cz_metrics_method_t cz_metrics_method(int method_id);
/* One answered request. A route index >= nroutes counts as "no route";
 * nothing is counted before cz_metrics_reserve() succeeded. */
void cz_metrics_observe(cz_metrics_t *m, uint32_t route_index, int method_id, int status, uint64_t ns);
/* One answered request's memory (its connection's tally); the same
 * route rules as cz_metrics_observe(). */
void cz_metrics_observe_memory(cz_metrics_t *m, uint32_t route_index, const cz_mem_tally_t *t);
/* The figures of `route_index`, or of "no route" for an index >= nroutes;
 * NULL before cz_metrics_reserve(). */
const cz_metrics_route_t *cz_metrics_route(const cz_metrics_t *m, uint32_t route_index);

#endif /* CZ_METRICS_H */
