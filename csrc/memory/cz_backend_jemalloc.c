/*
 * The jemalloc backend (je_-prefixed, linked statically): one arena per
 * purpose per handle, and the process heap (see cz_memory.h).
 *
 * Build switch: CZ_HAVE_JEMALLOC (cmake/Jemalloc.cmake); CZ_NO_JEMALLOC
 * turns it off for the fuzzers.
 */
#define _GNU_SOURCE
#include "cz_backend.h"

#if defined(CZ_NO_JEMALLOC)
#undef CZ_HAVE_JEMALLOC
#endif

#ifndef CZ_HAVE_JEMALLOC

const cz_backend_ops_t *cz_backend_jemalloc_ops(void) {
    return NULL;
}
int cz_jemalloc_debug(void) {
    return 0;
}

#else

#include <errno.h>
#include <jemalloc/jemalloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const char *jb_version(void) {
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

static int arena_decay(unsigned arena, long dirty_ms, long muzzy_ms) {
    char name[64];
    ssize_t d = dirty_ms, m = muzzy_ms;
    snprintf(name, sizeof(name), "arena.%u.dirty_decay_ms", arena);
    if (je_mallctl(name, NULL, NULL, &d, sizeof(d)) != 0) return -1;
    snprintf(name, sizeof(name), "arena.%u.muzzy_decay_ms", arena);
    if (je_mallctl(name, NULL, NULL, &m, sizeof(m)) != 0) return -1;
    return 0;
}

static size_t stat_size(unsigned arena, const char *field) {
    char name[96];
    size_t v = 0, sz = sizeof(v);
    snprintf(name, sizeof(name), "stats.arenas.%u.%s", arena, field);
    if (je_mallctl(name, &v, &sz, NULL, 0) != 0) return 0;
    return v;
}

static uint64_t stat_u64(unsigned arena, const char *field) {
    char name[96];
    uint64_t v = 0;
    size_t sz = sizeof(v);
    snprintf(name, sizeof(name), "stats.arenas.%u.%s", arena, field);
    if (je_mallctl(name, &v, &sz, NULL, 0) != 0) return 0;
    return v;
}

static size_t refresh_epoch(void) {
    uint64_t epoch = 1;
    size_t esz = sizeof(epoch);
    je_mallctl("epoch", &epoch, &esz, &epoch, esz);
    size_t page = 4096, psz = sizeof(page);
    je_mallctl("arenas.page", &page, &psz, NULL, 0);
    return page;
}

/* One arena's figures; `counts` also reads its allocation counters. */
static void arena_stats(unsigned i, size_t page, cz_purpose_stats_t *s, int counts) {
    s->allocated = stat_size(i, "small.allocated") + stat_size(i, "large.allocated");
    s->active = stat_size(i, "pactive") * page;
    s->dirty = (stat_size(i, "pdirty") + stat_size(i, "pmuzzy")) * page;
    s->resident = stat_size(i, "resident");
    if (counts) {
        s->nmalloc = stat_u64(i, "small.nmalloc") + stat_u64(i, "large.nmalloc");
        s->nfree = stat_u64(i, "small.ndalloc") + stat_u64(i, "large.ndalloc");
    }
}

/* ---- handle memory --------------------------------------------------------------- */

static void jb_close(cz_backend_state_t *st) {
    for (int i = 0; i < st->opened; i++) arena_ctl((unsigned)st->slot[i], "destroy");
    st->opened = 0;
}

static int jb_open(cz_backend_state_t *st, char *reason, size_t reason_len) {
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
            jb_close(st);
            return -1;
        }
        st->slot[p] = idx;
        st->flags[p] = (int)MALLOCX_ARENA(idx) | MALLOCX_TCACHE_NONE;
        st->opened = p + 1;
    }
    return 0;
}

static void *jb_alloc(cz_backend_state_t *st, cz_purpose_t p, size_t size, int zero) {
    return je_mallocx(size, st->flags[p] | (zero ? MALLOCX_ZERO : 0));
}

static void *jb_realloc(cz_backend_state_t *st, cz_purpose_t p, void *ptr, size_t size) {
    return je_rallocx(ptr, size, st->flags[p]);
}

static void jb_free(cz_backend_state_t *st, cz_purpose_t p, void *ptr) {
    (void)st;
    (void)p;
    je_dallocx(ptr, MALLOCX_TCACHE_NONE);
}

static size_t jb_usable(const void *ptr) {
    return je_sallocx(ptr, 0);
}

static void jb_stats(cz_backend_state_t *st, cz_memory_stats_t *out) {
    size_t page = refresh_epoch();
    out->active = out->resident = out->dirty = 0;
    size_t allocated = 0;
    for (int p = 0; p < CZ_MEM_PURPOSES; p++) {
        cz_purpose_stats_t *s = &out->purpose[p];
        arena_stats((unsigned)st->slot[p], page, s, 0);
        allocated += s->allocated;
        out->active += s->active;
        out->resident += s->resident;
        out->dirty += s->dirty;
    }
    out->fragmentation_percent = cz_frag_percent(out->active, allocated);
    out->process_wide = 0;
}

static int jb_set_decay(cz_backend_state_t *st, long dirty_ms, long muzzy_ms) {
    for (int p = 0; p < CZ_MEM_PURPOSES; p++) {
        if (arena_decay((unsigned)st->slot[p], dirty_ms, muzzy_ms) != 0) return -1;
    }
    return 0;
}

static void jb_purge(cz_backend_state_t *st) {
    for (int p = 0; p < CZ_MEM_PURPOSES; p++) arena_ctl((unsigned)st->slot[p], "purge");
}

static void jb_decay_tick(cz_backend_state_t *st) {
    for (int p = 0; p < CZ_MEM_PURPOSES; p++) arena_ctl((unsigned)st->slot[p], "decay");
}

/* ---- process heap ------------------------------------------------------------------ */

/*
 * The heap's arena gets every extent from one range of address space
 * reserved at open (PROT_NONE, so it costs neither memory nor commit
 * charge), carved by a bump pointer and made writable as it is handed out.
 * Extents jemalloc gives back are retained by jemalloc for reuse (dalloc
 * opts out); their pages are returned to the OS with MADV_DONTNEED (forced
 * purge). So an address is the heap's exactly when it lies in the range.
 * When the range is used up, the arena's allocations fail and the caller
 * falls back to the allocator it had before.
 */
#define HEAP_RESERVE_MAX ((size_t)256 << 30)
#define HEAP_RESERVE_MIN ((size_t)1 << 30)

static struct {
    uintptr_t base, end;
    _Alignas(64) atomic_uintptr_t next;
    unsigned arena;
    size_t page;
} g_heap;

static void *heap_extent_alloc(extent_hooks_t *h, void *new_addr, size_t size, size_t alignment, bool *zero,
                               bool *commit, unsigned arena_ind) {
    (void)h;
    (void)arena_ind;
    if (alignment < g_heap.page) alignment = g_heap.page;
    uintptr_t cur = atomic_load_explicit(&g_heap.next, memory_order_relaxed);
    for (;;) {
        uintptr_t start = (cur + alignment - 1) & ~(uintptr_t)(alignment - 1);
        if (new_addr && (uintptr_t)new_addr != start) return NULL;
        if (start < cur || start > g_heap.end || size > g_heap.end - start) return NULL;
        if (atomic_compare_exchange_weak_explicit(&g_heap.next, &cur, start + size, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            /* Never touched before: zero-filled once writable. A failed
             * mprotect (out of commit charge) loses this stretch of
             * address space, not memory. */
            if (mprotect((void *)start, size, PROT_READ | PROT_WRITE) != 0) return NULL;
            *zero = true;
            *commit = true;
            return (void *)start;
        }
    }
}

/* Opt out: jemalloc keeps the extent (retained) and reuses it. */
static bool heap_extent_dalloc(extent_hooks_t *h, void *addr, size_t size, bool committed, unsigned arena_ind) {
    (void)h, (void)addr, (void)size, (void)committed, (void)arena_ind;
    return true;
}

static void heap_extent_destroy(extent_hooks_t *h, void *addr, size_t size, bool committed, unsigned arena_ind) {
    (void)h, (void)committed, (void)arena_ind;
    madvise(addr, size, MADV_DONTNEED);
}

/* Pages stay writable for their whole life: commit succeeds, decommit
 * opts out (jemalloc then purges instead). */
static bool heap_extent_commit(extent_hooks_t *h, void *addr, size_t size, size_t offset, size_t length,
                               unsigned arena_ind) {
    (void)h, (void)addr, (void)size, (void)offset, (void)length, (void)arena_ind;
    return false;
}

static bool heap_extent_decommit(extent_hooks_t *h, void *addr, size_t size, size_t offset, size_t length,
                                 unsigned arena_ind) {
    (void)h, (void)addr, (void)size, (void)offset, (void)length, (void)arena_ind;
    return true;
}

static bool heap_extent_purge_forced(extent_hooks_t *h, void *addr, size_t size, size_t offset, size_t length,
                                     unsigned arena_ind) {
    (void)h, (void)size, (void)arena_ind;
    return madvise((char *)addr + offset, length, MADV_DONTNEED) != 0;
}

/* Any two extents of the range may be split or merged. */
static bool heap_extent_split(extent_hooks_t *h, void *addr, size_t size, size_t size_a, size_t size_b, bool committed,
                              unsigned arena_ind) {
    (void)h, (void)addr, (void)size, (void)size_a, (void)size_b, (void)committed, (void)arena_ind;
    return false;
}

static bool heap_extent_merge(extent_hooks_t *h, void *addr_a, size_t size_a, void *addr_b, size_t size_b,
                              bool committed, unsigned arena_ind) {
    (void)h, (void)addr_a, (void)size_a, (void)addr_b, (void)size_b, (void)committed, (void)arena_ind;
    return false;
}

/* purge_lazy (MADV_FREE) is left out on purpose: lazily freed pages still
 * count in RSS, and jemalloc falls back to the forced purge. */
static extent_hooks_t g_heap_hooks = {
    .alloc = heap_extent_alloc,
    .dalloc = heap_extent_dalloc,
    .destroy = heap_extent_destroy,
    .commit = heap_extent_commit,
    .decommit = heap_extent_decommit,
    .purge_lazy = NULL,
    .purge_forced = heap_extent_purge_forced,
    .split = heap_extent_split,
    .merge = heap_extent_merge,
};

static int jb_heap_open(char *reason, size_t reason_len) {
    long page = sysconf(_SC_PAGESIZE);
    g_heap.page = page > 0 ? (size_t)page : 4096;
    void *base = MAP_FAILED;
    size_t size = HEAP_RESERVE_MAX;
    for (; size >= HEAP_RESERVE_MIN; size /= 2) {
        // cppcheck-suppress invalidFunctionArg ; fd -1 is what MAP_ANONYMOUS takes
        base = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (base != MAP_FAILED) break;
    }
    if (base == MAP_FAILED) {
        snprintf(reason, reason_len, "could not reserve address space for the process heap: %s", strerror(errno));
        return -1;
    }
    g_heap.base = (uintptr_t)base;
    g_heap.end = g_heap.base + size;
    atomic_store(&g_heap.next, g_heap.base);
    extent_hooks_t *hooks = &g_heap_hooks;
    unsigned idx = 0;
    size_t sz = sizeof(idx);
    int err = je_mallctl("arenas.create", &idx, &sz, &hooks, sizeof(hooks));
    if (err != 0) {
        munmap(base, size);
        g_heap.base = g_heap.end = 0;
        snprintf(reason, reason_len, "jemalloc refused the process heap's arena: %s (%d)", strerror(err), err);
        return -1;
    }
    g_heap.arena = idx;
    return 0;
}

static void *jb_heap_alloc(size_t size, int zero) {
    return je_mallocx(size, (int)MALLOCX_ARENA(g_heap.arena) | (zero ? MALLOCX_ZERO : 0));
}

static void *jb_heap_realloc(void *ptr, size_t size) {
    return je_rallocx(ptr, size, (int)MALLOCX_ARENA(g_heap.arena));
}

static void jb_heap_free(void *ptr) {
    je_dallocx(ptr, 0);
}

static int jb_heap_owns(const void *ptr) {
    return (uintptr_t)ptr - g_heap.base < g_heap.end - g_heap.base;
}

static void jb_heap_stats(cz_purpose_stats_t *out) {
    arena_stats(g_heap.arena, refresh_epoch(), out, 1);
}

static void jb_heap_set_decay(long dirty_ms, long muzzy_ms) {
    arena_decay(g_heap.arena, dirty_ms, muzzy_ms);
}

static void jb_heap_purge(void) {
    /* Blocks this thread's cache holds would keep their pages. */
    je_mallctl("thread.tcache.flush", NULL, NULL, NULL, 0);
    arena_ctl(g_heap.arena, "purge");
}

static void jb_heap_decay_tick(void) {
    arena_ctl(g_heap.arena, "decay");
}

static const cz_backend_ops_t ops = {
    .id = CZ_BACKEND_JEMALLOC,
    .name = "jemalloc",
    .version = jb_version,
    .open = jb_open,
    .close = jb_close,
    .alloc = jb_alloc,
    .realloc = jb_realloc,
    .free = jb_free,
    .usable = jb_usable,
    .stats = jb_stats,
    .set_decay = jb_set_decay,
    .purge = jb_purge,
    .decay_tick = jb_decay_tick,
    .heap_open = jb_heap_open,
    .heap_alloc = jb_heap_alloc,
    .heap_realloc = jb_heap_realloc,
    .heap_free = jb_heap_free,
    .heap_owns = jb_heap_owns,
    .heap_stats = jb_heap_stats,
    .heap_set_decay = jb_heap_set_decay,
    .heap_purge = jb_heap_purge,
    .heap_decay_tick = jb_heap_decay_tick,
};

const cz_backend_ops_t *cz_backend_jemalloc_ops(void) {
    return &ops;
}

#endif /* CZ_HAVE_JEMALLOC */
