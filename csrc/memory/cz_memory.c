/*
 * cz_memory — see cz_memory.h for the contract. Checks, accounting and
 * dispatch; the backends are cz_backend_*.c behind cz_backend.h.
 */
#define _GNU_SOURCE
#include "cz_memory.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cz_backend.h"

/* Same guard as redis' zmalloc: a size this large is a caller bug or an
 * overflow, never a real request. */
#define CZ_MAX_ALLOC (SIZE_MAX / 2)

/* One cache line per purpose so that counters of different purposes
 * updated from different threads do not share a line. */
typedef struct {
    _Alignas(64) atomic_size_t bytes;
    atomic_uint_fast64_t nmalloc;
    atomic_uint_fast64_t nfree;
} cz_counter_t;

struct cz_allocator {
    const cz_backend_ops_t *ops;
    cz_backend_state_t state;
    atomic_int owns_heap;
    cz_counter_t count[CZ_MEM_PURPOSES];
    _Alignas(64) atomic_size_t total;
    atomic_size_t peak;
};

static const char *const purpose_names[CZ_MEM_PURPOSES] = {
    "request", "response", "cache", "static", "task", "general",
};

const char *cz_purpose_name(cz_purpose_t p) {
    return (unsigned)p < CZ_MEM_PURPOSES ? purpose_names[p] : "unknown";
}

/* ---- backends ------------------------------------------------------------------ */

static const cz_backend_ops_t *backend_ops(cz_backend_t b) {
    switch (b) {
    case CZ_BACKEND_MALLOC: return &cz_backend_malloc;
    case CZ_BACKEND_JEMALLOC: return cz_backend_jemalloc_ops();
    case CZ_BACKEND_MIMALLOC: return cz_backend_mimalloc_ops();
    default: return NULL;
    }
}

static const char *const backend_names[CZ_BACKENDS] = {"malloc", "jemalloc", "mimalloc"};

const char *cz_backend_name(cz_backend_t b) {
    return (unsigned)b < CZ_BACKENDS ? backend_names[b] : "unknown";
}

int cz_backend_parse(const char *name) {
    for (int b = 0; name && b < CZ_BACKENDS; b++) {
        if (strcmp(name, backend_names[b]) == 0) return b;
    }
    return -1;
}

int cz_backend_compiled(cz_backend_t b) {
    return backend_ops(b) != NULL;
}

const char *cz_backend_version(cz_backend_t b) {
    const cz_backend_ops_t *ops = backend_ops(b);
    return ops && ops->version ? ops->version() : NULL;
}

int cz_jemalloc_compiled(void) {
    return cz_backend_compiled(CZ_BACKEND_JEMALLOC);
}

const char *cz_jemalloc_version(void) {
    return cz_backend_version(CZ_BACKEND_JEMALLOC);
}

cz_backend_t cz_allocator_backend(const cz_allocator_t *a) {
    return a->ops->id;
}

/* ---- accounting ------------------------------------------------------------ */

/* The calling thread's tally (cz_mem_tally_enter), or NULL. */
static _Thread_local cz_mem_tally_t *tls_tally;

cz_mem_tally_t *cz_mem_tally_enter(cz_mem_tally_t *t) {
    cz_mem_tally_t *prev = tls_tally;
    tls_tally = t;
    return prev;
}

void cz_mem_tally_reset(cz_mem_tally_t *t) {
    memset(t, 0, sizeof(*t));
}

uint64_t cz_mem_tally_total(const cz_mem_tally_t *t) {
    uint64_t n = 0;
    for (int p = 0; p < CZ_MEM_PURPOSES; p++) n += t->allocated[p];
    return n;
}

/* `grown` bytes more held for purpose `p` (negative: freed). */
static inline void tally(cz_purpose_t p, int64_t grown) {
    cz_mem_tally_t *t = tls_tally;
    if (!t) return;
    if (grown > 0) t->allocated[p] += (uint64_t)grown;
    t->held += grown;
    if (t->held > t->peak) t->peak = t->held;
}

static void account_alloc(cz_allocator_t *a, cz_purpose_t p, size_t usable) {
    cz_counter_t *c = &a->count[p];
    atomic_fetch_add_explicit(&c->bytes, usable, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->nmalloc, 1, memory_order_relaxed);
    size_t total = atomic_fetch_add_explicit(&a->total, usable, memory_order_relaxed) + usable;
    size_t peak = atomic_load_explicit(&a->peak, memory_order_relaxed);
    while (total > peak &&
           !atomic_compare_exchange_weak_explicit(&a->peak, &peak, total, memory_order_relaxed, memory_order_relaxed)) {
    }
}

static void account_free(cz_allocator_t *a, cz_purpose_t p, size_t usable) {
    cz_counter_t *c = &a->count[p];
    atomic_fetch_sub_explicit(&c->bytes, usable, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->nfree, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&a->total, usable, memory_order_relaxed);
}

/* ---- lifecycle ------------------------------------------------------------------ */

cz_allocator_t *cz_allocator_create(cz_backend_t wanted, char *reason, size_t reason_len) {
    char scratch[1];
    if (!reason || reason_len == 0) {
        reason = scratch;
        reason_len = sizeof(scratch);
    }
    reason[0] = '\0';
    /* The handle itself is bookkeeping of the process, not of the app:
     * it comes from libc so that it never depends on the backend it names. */
    cz_allocator_t *a = aligned_alloc(64, (sizeof(*a) + 63) & ~(size_t)63);
    if (!a) return NULL;
    memset(a, 0, sizeof(*a));
    a->ops = &cz_backend_malloc;
    if (wanted != CZ_BACKEND_MALLOC) {
        const cz_backend_ops_t *ops = backend_ops(wanted);
        if (!ops) {
            snprintf(reason, reason_len, "%s is not compiled into this build", cz_backend_name(wanted));
        } else if (ops->open(&a->state, reason, reason_len) == 0) {
            a->ops = ops;
        } else {
            memset(&a->state, 0, sizeof(a->state));
        }
    }
    return a;
}

/* The handle that owns the process heap, for its tuning calls. */
static _Atomic(cz_allocator_t *) g_heap_owner;

void cz_allocator_destroy(cz_allocator_t *a) {
    if (!a) return;
    cz_allocator_t *self = a;
    atomic_compare_exchange_strong(&g_heap_owner, &self, NULL);
    a->ops->close(&a->state);
    free(a);
}

/* ---- allocation ------------------------------------------------------------------ */

size_t cz_usable_size(const cz_allocator_t *a, const void *ptr) {
    return ptr ? a->ops->usable(ptr) : 0;
}

void *cz_malloc(cz_allocator_t *a, cz_purpose_t p, size_t size) {
    if (size > CZ_MAX_ALLOC || (unsigned)p >= CZ_MEM_PURPOSES) return NULL;
    void *ptr = a->ops->alloc(&a->state, p, size ? size : 1, 0);
    if (ptr) {
        size_t usable = a->ops->usable(ptr);
        account_alloc(a, p, usable);
        tally(p, (int64_t)usable);
    }
    return ptr;
}

void *cz_calloc(cz_allocator_t *a, cz_purpose_t p, size_t n, size_t size) {
    if (size != 0 && n > CZ_MAX_ALLOC / size) return NULL;
    size_t total = n * size;
    if (total > CZ_MAX_ALLOC || (unsigned)p >= CZ_MEM_PURPOSES) return NULL;
    void *ptr = a->ops->alloc(&a->state, p, total ? total : 1, 1);
    if (ptr) {
        size_t usable = a->ops->usable(ptr);
        account_alloc(a, p, usable);
        tally(p, (int64_t)usable);
    }
    return ptr;
}

void *cz_realloc(cz_allocator_t *a, cz_purpose_t p, void *ptr, size_t size) {
    if (!ptr) return cz_malloc(a, p, size);
    if (size > CZ_MAX_ALLOC || (unsigned)p >= CZ_MEM_PURPOSES) return NULL;
    size_t old = a->ops->usable(ptr);
    void *np = a->ops->realloc(&a->state, p, ptr, size ? size : 1);
    if (!np) return NULL;
    size_t usable = a->ops->usable(np);
    account_free(a, p, old);
    account_alloc(a, p, usable);
    tally(p, (int64_t)usable - (int64_t)old);
    return np;
}

void cz_free(cz_allocator_t *a, cz_purpose_t p, void *ptr) {
    if (!ptr || (unsigned)p >= CZ_MEM_PURPOSES) return;
    size_t usable = a->ops->usable(ptr);
    account_free(a, p, usable);
    tally(p, -(int64_t)usable);
    a->ops->free(&a->state, p, ptr);
}

char *cz_strndup(cz_allocator_t *a, cz_purpose_t p, const char *s, size_t n) {
    if (n >= CZ_MAX_ALLOC) return NULL;
    char *d = cz_malloc(a, p, n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* ---- statistics ------------------------------------------------------------------- */

/* Below this much held memory, slab and page granularity (part-used slabs
 * in each of the six arenas) dominates and says nothing a user can act on:
 * it is the floor of the denominator, so that a small idle app reads a few
 * percent and a health check's "< 10%" trips only on waste over 400 KiB. */
#define CZ_FRAG_FLOOR ((size_t)4 << 20)

double cz_frag_percent(size_t held, size_t used) {
    if (used >= held) return 0.0;
    return 100.0 * (double)(held - used) / (double)(held > CZ_FRAG_FLOOR ? held : CZ_FRAG_FLOOR);
}

/* Resident set size of the process, or 0 where /proc is not there. glibc's
 * heap size would not do: it still counts pages malloc_trim returned. */
size_t cz_process_rss(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    unsigned long size = 0, resident = 0;
    int n = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return n == 2 && page > 0 ? (size_t)resident * (size_t)page : 0;
}

size_t cz_stats_from_accounting(cz_memory_stats_t *out) {
    size_t allocated = 0;
    for (int p = 0; p < CZ_MEM_PURPOSES; p++) {
        cz_purpose_stats_t *s = &out->purpose[p];
        s->active = s->resident = s->allocated;
        s->dirty = 0;
        allocated += s->allocated;
    }
    return allocated;
}

void cz_allocator_stats(cz_allocator_t *a, cz_memory_stats_t *out) {
    memset(out, 0, sizeof(*out));
    for (int p = 0; p < CZ_MEM_PURPOSES; p++) {
        cz_counter_t *c = &a->count[p];
        out->purpose[p].allocated = atomic_load_explicit(&c->bytes, memory_order_relaxed);
        out->purpose[p].nmalloc = atomic_load_explicit(&c->nmalloc, memory_order_relaxed);
        out->purpose[p].nfree = atomic_load_explicit(&c->nfree, memory_order_relaxed);
        out->nmalloc += out->purpose[p].nmalloc;
        out->nfree += out->purpose[p].nfree;
    }
    out->peak_allocated = atomic_load_explicit(&a->peak, memory_order_relaxed);
    a->ops->stats(&a->state, out);
    out->allocated = 0;
    for (int p = 0; p < CZ_MEM_PURPOSES; p++) out->allocated += out->purpose[p].allocated;
    if (cz_allocator_owns_process_heap(a)) {
        cz_purpose_stats_t *h = &out->process_heap;
        out->with_process_heap = 1;
        a->ops->heap_stats(h);
        out->allocated += h->allocated;
        out->nmalloc += h->nmalloc;
        out->nfree += h->nfree;
        if (!out->process_wide) {
            out->active += h->active;
            out->resident += h->resident;
            out->dirty += h->dirty;
            out->fragmentation_percent = cz_frag_percent(out->active, out->allocated);
        }
    }
    if (out->peak_allocated < out->allocated) out->peak_allocated = out->allocated;
    out->process_fragmentation_percent = cz_glibc_frag_percent();
}

/* ---- process heap ------------------------------------------------------------------ */

/* Set once, before any hook can call the heap; never cleared. */
static const cz_backend_ops_t *_Atomic g_heap;

int cz_process_heap_open(cz_allocator_t *a, char *reason, size_t reason_len) {
    char scratch[1];
    if (!reason || reason_len == 0) {
        reason = scratch;
        reason_len = sizeof(scratch);
    }
    reason[0] = '\0';
    static atomic_flag taken = ATOMIC_FLAG_INIT;
    const cz_backend_ops_t *ops = a->ops;
    if (!ops->heap_open) {
        snprintf(reason, reason_len, "the %s backend has no process heap", ops->name);
        return -1;
    }
    if (atomic_flag_test_and_set(&taken)) {
        snprintf(reason, reason_len, "another allocator already governs this process's memory");
        return -1;
    }
    if (ops->heap_open(reason, reason_len) != 0) {
        atomic_flag_clear(&taken);
        return -1;
    }
    atomic_store(&g_heap, ops);
    atomic_store(&g_heap_owner, a);
    return 0;
}

int cz_process_heap_hand_over(cz_allocator_t *from, cz_allocator_t *to) {
    if (from->ops != to->ops) return -1;
    cz_allocator_t *expected = from;
    return atomic_compare_exchange_strong(&g_heap_owner, &expected, to) ? 0 : -1;
}

int cz_process_heap_backend(void) {
    const cz_backend_ops_t *h = atomic_load_explicit(&g_heap, memory_order_acquire);
    return h ? (int)h->id : -1;
}

int cz_allocator_owns_process_heap(const cz_allocator_t *a) {
    return atomic_load(&g_heap_owner) == a;
}

/* The hooks run on every interpreter allocation: relaxed loads of a
 * pointer that never changes once set. */
#define HEAP() atomic_load_explicit(&g_heap, memory_order_relaxed)

void *cz_process_heap_alloc(size_t size, int zero) {
    if (size > CZ_MAX_ALLOC) return NULL;
    void *p = HEAP()->heap_alloc(size ? size : 1, zero);
    cz_mem_tally_t *t = tls_tally;
    if (t && p) t->python += size; /* the size asked: no usable-size lookup on this path */
    return p;
}

void *cz_process_heap_realloc(void *ptr, size_t size) {
    if (size > CZ_MAX_ALLOC) return NULL;
    cz_mem_tally_t *t = tls_tally;
    if (!t) return HEAP()->heap_realloc(ptr, size ? size : 1);
    size_t old = HEAP()->usable(ptr);
    void *p = HEAP()->heap_realloc(ptr, size ? size : 1);
    if (p && size > old) t->python += size - old;
    return p;
}

void cz_process_heap_free(void *ptr) {
    HEAP()->heap_free(ptr);
}

int cz_process_heap_owns(const void *ptr) {
    const cz_backend_ops_t *h = HEAP();
    return h && ptr && h->heap_owns(ptr);
}

void cz_process_heap_stats(cz_purpose_stats_t *out) {
    memset(out, 0, sizeof(*out));
    const cz_backend_ops_t *h = atomic_load(&g_heap);
    if (h) h->heap_stats(out);
}

/* ---- tuning ------------------------------------------------------------------------ */

int cz_allocator_set_decay(cz_allocator_t *a, long dirty_ms, long muzzy_ms) {
    if (a->ops->set_decay(&a->state, dirty_ms, muzzy_ms) != 0) return -1;
    if (cz_allocator_owns_process_heap(a) && a->ops->heap_set_decay) a->ops->heap_set_decay(dirty_ms, muzzy_ms);
    return 0;
}

size_t cz_allocator_purge(cz_allocator_t *a) {
    cz_memory_stats_t before, after;
    cz_purpose_stats_t hb, ha;
    int heap = cz_allocator_owns_process_heap(a) && a->ops->heap_purge;
    cz_allocator_stats(a, &before);
    if (heap) cz_process_heap_stats(&hb);
    a->ops->purge(&a->state);
    if (heap) a->ops->heap_purge();
    cz_allocator_stats(a, &after);
    size_t released = before.dirty > after.dirty ? before.dirty - after.dirty : 0;
    if (heap) {
        cz_process_heap_stats(&ha);
        if (hb.dirty > ha.dirty) released += hb.dirty - ha.dirty;
    }
    return released;
}

void cz_allocator_decay_tick(cz_allocator_t *a) {
    a->ops->decay_tick(&a->state);
    if (cz_allocator_owns_process_heap(a) && a->ops->heap_decay_tick) a->ops->heap_decay_tick();
}
