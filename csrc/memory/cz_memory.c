/*
 * cz_memory — see cz_memory.h for the contract.
 *
 * Build switches (set by CMake, see cmake/Platform.cmake):
 *   CZ_HAVE_JEMALLOC  jemalloc (prefixed je_) is linked in.
 */
#define _GNU_SOURCE
#include "cz_memory.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__GLIBC__)
#include <malloc.h>
#define cz_libc_usable(p) malloc_usable_size((void *)(p))
#define CZ_HAVE_MALLINFO2 (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
#elif defined(__APPLE__)
#include <malloc/malloc.h>
#define cz_libc_usable(p) malloc_size(p)
#define CZ_HAVE_MALLINFO2 0
#elif defined(_WIN32)
#include <malloc.h>
#define cz_libc_usable(p) _msize((void *)(p))
#define CZ_HAVE_MALLINFO2 0
#else
#include <malloc.h>
#define cz_libc_usable(p) malloc_usable_size((void *)(p))
#define CZ_HAVE_MALLINFO2 0
#endif

#if defined(CZ_NO_JEMALLOC)
#undef CZ_HAVE_JEMALLOC
#endif

#ifdef CZ_HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

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
    cz_backend_t backend;
    cz_counter_t count[CZ_MEM_PURPOSES];
    _Alignas(64) atomic_size_t total;
    atomic_size_t peak;
#ifdef CZ_HAVE_JEMALLOC
    unsigned arena[CZ_MEM_PURPOSES];
    int flags[CZ_MEM_PURPOSES];
    int arenas_created;
#endif
};

static const char *const purpose_names[CZ_MEM_PURPOSES] = {
    "request", "response", "cache", "static", "task", "general",
};

const char *cz_purpose_name(cz_purpose_t p) {
    return (unsigned)p < CZ_MEM_PURPOSES ? purpose_names[p] : "unknown";
}

const char *cz_backend_name(cz_backend_t b) {
    return b == CZ_BACKEND_JEMALLOC ? "jemalloc" : "malloc";
}

cz_backend_t cz_allocator_backend(const cz_allocator_t *a) {
    return a->backend;
}

/* ---- accounting ------------------------------------------------------------ */

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

/* ---- jemalloc backend ---------------------------------------------------------- */

#ifdef CZ_HAVE_JEMALLOC

int cz_jemalloc_compiled(void) {
    return 1;
}

const char *cz_jemalloc_version(void) {
    const char *v = NULL;
    size_t sz = sizeof(v);
    if (je_mallctl("version", &v, &sz, NULL, 0) != 0) return NULL;
    return v;
}

int cz_jemalloc_debug(void) {
    bool dbg = false;
    size_t sz = sizeof(dbg);
    if (je_mallctl("config.debug", &dbg, &sz, NULL, 0) != 0) return 0;
    return dbg ? 1 : 0;
}

static void arena_ctl(unsigned arena, const char *op) {
    char name[64];
    snprintf(name, sizeof(name), "arena.%u.%s", arena, op);
    je_mallctl(name, NULL, NULL, NULL, 0);
}

static void jemalloc_teardown(cz_allocator_t *a) {
    for (int i = 0; i < a->arenas_created; i++) arena_ctl(a->arena[i], "destroy");
    a->arenas_created = 0;
}

static int jemalloc_start(cz_allocator_t *a, char *reason, size_t reason_len) {
    const char *inject = getenv("CATZILLA_TEST_JEMALLOC_INIT_FAIL");
    if (inject && strcmp(inject, "1") == 0) {
        snprintf(reason, reason_len,
                 "jemalloc initialization failed: arenas.create refused "
                 "(simulated by CATZILLA_TEST_JEMALLOC_INIT_FAIL=1)");
        return -1;
    }
    for (int p = 0; p < CZ_MEM_PURPOSES; p++) {
        unsigned idx = 0;
        size_t sz = sizeof(idx);
        int err = je_mallctl("arenas.create", &idx, &sz, NULL, 0);
        if (err != 0) {
            snprintf(reason, reason_len, "jemalloc initialization failed: arenas.create returned %s (%d)",
                     strerror(err), err);
            jemalloc_teardown(a);
            return -1;
        }
        a->arena[p] = idx;
        a->flags[p] = (int)MALLOCX_ARENA(idx) | MALLOCX_TCACHE_NONE;
        a->arenas_created = p + 1;
    }
    return 0;
}

#define IS_JE(a) ((a)->backend == CZ_BACKEND_JEMALLOC)

#else /* !CZ_HAVE_JEMALLOC */

int cz_jemalloc_compiled(void) {
    return 0;
}
const char *cz_jemalloc_version(void) {
    return NULL;
}
int cz_jemalloc_debug(void) {
    return 0;
}
#define IS_JE(a) 0

#endif

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
    a->backend = CZ_BACKEND_MALLOC;
    if (wanted == CZ_BACKEND_JEMALLOC) {
#ifdef CZ_HAVE_JEMALLOC
        if (jemalloc_start(a, reason, reason_len) == 0) a->backend = CZ_BACKEND_JEMALLOC;
#else
        snprintf(reason, reason_len, "jemalloc is not compiled into this build");
#endif
    }
    return a;
}

void cz_allocator_destroy(cz_allocator_t *a) {
    if (!a) return;
#ifdef CZ_HAVE_JEMALLOC
    if (IS_JE(a)) jemalloc_teardown(a);
#endif
    free(a);
}

/* ---- allocation ------------------------------------------------------------------ */

size_t cz_usable_size(const cz_allocator_t *a, const void *ptr) {
    (void)a;
    if (!ptr) return 0;
#ifdef CZ_HAVE_JEMALLOC
    if (IS_JE(a)) return je_sallocx(ptr, 0);
#endif
    return cz_libc_usable(ptr);
}

void *cz_malloc(cz_allocator_t *a, cz_purpose_t p, size_t size) {
    if (size > CZ_MAX_ALLOC || (unsigned)p >= CZ_MEM_PURPOSES) return NULL;
    if (size == 0) size = 1;
    void *ptr;
#ifdef CZ_HAVE_JEMALLOC
    if (IS_JE(a)) {
        ptr = je_mallocx(size, a->flags[p]);
        if (ptr) account_alloc(a, p, je_sallocx(ptr, 0));
        return ptr;
    }
#endif
    ptr = malloc(size);
    if (ptr) account_alloc(a, p, cz_libc_usable(ptr));
    return ptr;
}

void *cz_calloc(cz_allocator_t *a, cz_purpose_t p, size_t n, size_t size) {
    if (size != 0 && n > CZ_MAX_ALLOC / size) return NULL;
    size_t total = n * size;
    if (total > CZ_MAX_ALLOC || (unsigned)p >= CZ_MEM_PURPOSES) return NULL;
    if (total == 0) total = 1;
    void *ptr;
#ifdef CZ_HAVE_JEMALLOC
    if (IS_JE(a)) {
        ptr = je_mallocx(total, a->flags[p] | MALLOCX_ZERO);
        if (ptr) account_alloc(a, p, je_sallocx(ptr, 0));
        return ptr;
    }
#endif
    ptr = calloc(1, total);
    if (ptr) account_alloc(a, p, cz_libc_usable(ptr));
    return ptr;
}

void *cz_realloc(cz_allocator_t *a, cz_purpose_t p, void *ptr, size_t size) {
    if (!ptr) return cz_malloc(a, p, size);
    if (size > CZ_MAX_ALLOC || (unsigned)p >= CZ_MEM_PURPOSES) return NULL;
    if (size == 0) size = 1;
    size_t old = cz_usable_size(a, ptr);
    void *np;
#ifdef CZ_HAVE_JEMALLOC
    if (IS_JE(a)) {
        np = je_rallocx(ptr, size, a->flags[p]);
        if (!np) return NULL;
        size_t now = je_sallocx(np, 0);
        account_free(a, p, old);
        account_alloc(a, p, now);
        return np;
    }
#endif
    np = realloc(ptr, size);
    if (!np) return NULL;
    account_free(a, p, old);
    account_alloc(a, p, cz_libc_usable(np));
    return np;
}

void cz_free(cz_allocator_t *a, cz_purpose_t p, void *ptr) {
    if (!ptr || (unsigned)p >= CZ_MEM_PURPOSES) return;
#ifdef CZ_HAVE_JEMALLOC
    if (IS_JE(a)) {
        account_free(a, p, je_sallocx(ptr, 0));
        je_dallocx(ptr, MALLOCX_TCACHE_NONE);
        return;
    }
#endif
    account_free(a, p, cz_libc_usable(ptr));
    free(ptr);
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

static double frag_percent(size_t held, size_t used) {
    if (used >= held) return 0.0;
    return 100.0 * (double)(held - used) / (double)(held > CZ_FRAG_FLOOR ? held : CZ_FRAG_FLOOR);
}

#ifdef CZ_HAVE_JEMALLOC
static size_t je_stat_size(unsigned arena, const char *field) {
    char name[96];
    size_t v = 0, sz = sizeof(v);
    snprintf(name, sizeof(name), "stats.arenas.%u.%s", arena, field);
    if (je_mallctl(name, &v, &sz, NULL, 0) != 0) return 0;
    return v;
}

static void jemalloc_stats(cz_allocator_t *a, cz_memory_stats_t *out) {
    uint64_t epoch = 1;
    size_t esz = sizeof(epoch);
    je_mallctl("epoch", &epoch, &esz, &epoch, esz);
    size_t page = 4096, psz = sizeof(page);
    je_mallctl("arenas.page", &page, &psz, NULL, 0);
    out->allocated = out->active = out->resident = out->dirty = 0;
    for (int p = 0; p < CZ_MEM_PURPOSES; p++) {
        cz_purpose_stats_t *s = &out->purpose[p];
        unsigned i = a->arena[p];
        s->allocated = je_stat_size(i, "small.allocated") + je_stat_size(i, "large.allocated");
        s->active = je_stat_size(i, "pactive") * page;
        s->dirty = (je_stat_size(i, "pdirty") + je_stat_size(i, "pmuzzy")) * page;
        s->resident = je_stat_size(i, "resident");
        out->allocated += s->allocated;
        out->active += s->active;
        out->resident += s->resident;
        out->dirty += s->dirty;
    }
    out->fragmentation_percent = frag_percent(out->active, out->allocated);
    out->process_wide = 0;
}
#endif

/* Resident set size of the process, or 0 where /proc is not there. glibc's
 * heap size would not do: it still counts pages malloc_trim returned. */
static size_t process_rss(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    unsigned long size = 0, resident = 0;
    int n = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return n == 2 && page > 0 ? (size_t)resident * (size_t)page : 0;
}

static void libc_stats(cz_memory_stats_t *out) {
    out->allocated = 0;
    for (int p = 0; p < CZ_MEM_PURPOSES; p++) {
        cz_purpose_stats_t *s = &out->purpose[p];
        s->active = s->resident = s->allocated;
        s->dirty = 0;
        out->allocated += s->allocated;
    }
#if CZ_HAVE_MALLINFO2
    struct mallinfo2 mi = mallinfo2();
    /* arena: heap obtained with brk/arenas; hblkhd: mmapped blocks.
     * uordblks+hblkhd is in use, fordblks is free but held. */
    out->active = mi.uordblks + mi.hblkhd;
    out->resident = process_rss();
    if (out->resident == 0) out->resident = mi.arena + mi.hblkhd;
    out->dirty = mi.fordblks;
    out->fragmentation_percent = frag_percent(mi.arena, mi.uordblks);
    out->process_wide = 1;
#else
    out->active = out->resident = out->allocated;
    out->dirty = 0;
    out->fragmentation_percent = 0.0;
    out->process_wide = 0;
#endif
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
#ifdef CZ_HAVE_JEMALLOC
    if (IS_JE(a)) {
        jemalloc_stats(a, out);
        if (out->peak_allocated < out->allocated) out->peak_allocated = out->allocated;
        return;
    }
#endif
    libc_stats(out);
}

/* ---- tuning ------------------------------------------------------------------------ */

int cz_allocator_set_decay(cz_allocator_t *a, long dirty_ms, long muzzy_ms) {
    (void)a;
    (void)dirty_ms;
    (void)muzzy_ms;
#ifdef CZ_HAVE_JEMALLOC
    if (!IS_JE(a)) return 0;
    for (int p = 0; p < CZ_MEM_PURPOSES; p++) {
        char name[64];
        ssize_t d = dirty_ms, m = muzzy_ms;
        snprintf(name, sizeof(name), "arena.%u.dirty_decay_ms", a->arena[p]);
        if (je_mallctl(name, NULL, NULL, &d, sizeof(d)) != 0) return -1;
        snprintf(name, sizeof(name), "arena.%u.muzzy_decay_ms", a->arena[p]);
        if (je_mallctl(name, NULL, NULL, &m, sizeof(m)) != 0) return -1;
    }
#endif
    return 0;
}

size_t cz_allocator_purge(cz_allocator_t *a) {
    cz_memory_stats_t before, after;
    cz_allocator_stats(a, &before);
#ifdef CZ_HAVE_JEMALLOC
    if (IS_JE(a)) {
        for (int p = 0; p < CZ_MEM_PURPOSES; p++) arena_ctl(a->arena[p], "purge");
        cz_allocator_stats(a, &after);
        return before.dirty > after.dirty ? before.dirty - after.dirty : 0;
    }
#endif
#if defined(__GLIBC__)
    malloc_trim(0);
#endif
    cz_allocator_stats(a, &after);
    return before.dirty > after.dirty ? before.dirty - after.dirty : 0;
}

void cz_allocator_decay_tick(cz_allocator_t *a) {
    (void)a;
#ifdef CZ_HAVE_JEMALLOC
    if (!IS_JE(a)) return;
    for (int p = 0; p < CZ_MEM_PURPOSES; p++) arena_ctl(a->arena[p], "decay");
#endif
}
