/*
 * The mimalloc backend (pinned source compiled in, symbols hidden).
 *
 * mimalloc's heaps are thread-local (a heap allocates only for the thread
 * that made it), and the core allocates one purpose from several threads,
 * so blocks come from each thread's default heap and purposes exist in
 * cz_memory.c's accounting.
 *
 * All of mimalloc's memory in the process comes from one range of address
 * space reserved when the backend is first opened (PROT_NONE; mimalloc
 * commits with mprotect and decommits with MADV_DONTNEED), given to it as
 * its only arena (mi_manage_os_memory_ex, with mi_option_limit_os_alloc),
 * so that an address is mimalloc's exactly when it lies in the range: the
 * process heap's ownership test. (mimalloc's own segment map,
 * mi_is_in_heap_region, covers only the first 20 TiB of addresses; Linux
 * maps much higher.) Relaxed counters here give the process heap's live
 * bytes.
 *
 * Build switch: CZ_HAVE_MIMALLOC (cmake/Mimalloc.cmake).
 */
#include "cz_backend.h"

#if defined(CZ_NO_MIMALLOC)
#undef CZ_HAVE_MIMALLOC
#endif

#ifndef CZ_HAVE_MIMALLOC

const cz_backend_ops_t *cz_backend_mimalloc_ops(void) {
    return NULL;
}

#else

#include <errno.h>
#include <mimalloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static const char *mb_version_string(void) {
    static char v[16];
    int n = mi_version(); /* e.g. 209 for 2.0.9 */
    snprintf(v, sizeof(v), "%d.%d.%d", n / 100, (n / 10) % 10, n % 10);
    return v;
}

/* Committed bytes of all of mimalloc in the process. */
static size_t mb_committed(void) {
    size_t commit = 0;
    mi_process_info(NULL, NULL, NULL, NULL, NULL, &commit, NULL, NULL);
    return commit;
}

/* Live bytes of the process heap (zero until it is open). */
static struct {
    _Alignas(64) atomic_size_t bytes;
    atomic_uint_fast64_t nmalloc, nfree;
} g_heap;

static size_t heap_bytes(void) {
    return atomic_load_explicit(&g_heap.bytes, memory_order_relaxed);
}

/* ---- the reserved range ------------------------------------------------------------- */

#define RESERVE_MAX ((size_t)256 << 30)
#define RESERVE_MIN ((size_t)1 << 30)
#define ARENA_ALIGN ((size_t)32 << 20) /* mimalloc's segment and arena block size */

static struct {
    uintptr_t base, end;
    int status; /* 0 not tried, 1 reserved, -1 failed */
    char why[160];
} g_range;
static pthread_mutex_t g_range_lock = PTHREAD_MUTEX_INITIALIZER;

static int reserve_range(void) {
    pthread_mutex_lock(&g_range_lock);
    if (g_range.status == 0) {
        g_range.status = -1;
        void *raw = MAP_FAILED;
        size_t size = RESERVE_MAX;
        for (; size >= RESERVE_MIN; size /= 2) {
            // cppcheck-suppress invalidFunctionArg ; fd -1 is what MAP_ANONYMOUS takes
            raw = mmap(NULL, size + ARENA_ALIGN, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            if (raw != MAP_FAILED) break;
        }
        if (raw == MAP_FAILED) {
            snprintf(g_range.why, sizeof(g_range.why), "could not reserve address space for mimalloc: %s",
                     strerror(errno));
        } else {
            uintptr_t start = ((uintptr_t)raw + ARENA_ALIGN - 1) & ~(uintptr_t)(ARENA_ALIGN - 1);
            mi_arena_id_t id;
            if (!mi_manage_os_memory_ex((void *)start, size, false, false, true, -1, false, &id)) {
                munmap(raw, size + ARENA_ALIGN);
                snprintf(g_range.why, sizeof(g_range.why), "mimalloc refused its arena");
            } else {
                mi_option_enable(mi_option_limit_os_alloc);
                g_range.base = start;
                g_range.end = start + size;
                g_range.status = 1;
            }
        }
    }
    int status = g_range.status;
    pthread_mutex_unlock(&g_range_lock);
    return status;
}

static int in_range(const void *p) {
    return (uintptr_t)p - g_range.base < g_range.end - g_range.base;
}

/* ---- handle memory --------------------------------------------------------------- */

static int mb_open(cz_backend_state_t *st, char *reason, size_t reason_len) {
    (void)st;
    const char *inject = getenv("CATZILLA_TEST_MIMALLOC_INIT_FAIL");
    if (inject && strcmp(inject, "1") == 0) {
        snprintf(reason, reason_len,
                 "mimalloc initialization failed (simulated by CATZILLA_TEST_MIMALLOC_INIT_FAIL=1)");
        return -1;
    }
    if (reserve_range() != 1) {
        snprintf(reason, reason_len, "mimalloc initialization failed: %s", g_range.why);
        return -1;
    }
    return 0;
}

static void mb_close(cz_backend_state_t *st) {
    (void)st;
}

static void *mb_alloc(cz_backend_state_t *st, cz_purpose_t p, size_t size, int zero) {
    (void)st;
    (void)p;
    return zero ? mi_zalloc(size) : mi_malloc(size);
}

static void *mb_realloc(cz_backend_state_t *st, cz_purpose_t p, void *ptr, size_t size) {
    (void)st;
    (void)p;
    return mi_realloc(ptr, size);
}

static void mb_free(cz_backend_state_t *st, cz_purpose_t p, void *ptr) {
    (void)st;
    (void)p;
    mi_free(ptr);
}

static size_t mb_usable(const void *ptr) {
    return mi_usable_size(ptr);
}

static void mb_stats(cz_backend_state_t *st, cz_memory_stats_t *out) {
    (void)st;
    size_t allocated = cz_stats_from_accounting(out);
    /* mimalloc does not separate callers: committed memory is the
     * process's, like malloc's heap figures. */
    out->active = allocated;
    out->resident = mb_committed();
    out->dirty = 0;
    out->fragmentation_percent = cz_frag_percent(out->resident, allocated + heap_bytes());
    out->fragmentation_process_wide = 1;
    out->process_wide = 1;
}

static int mb_set_decay(cz_backend_state_t *st, long dirty_ms, long muzzy_ms) {
    (void)st;
    (void)dirty_ms;
    (void)muzzy_ms;
    return 0;
}

static void mb_purge(cz_backend_state_t *st) {
    (void)st;
    mi_collect(true);
}

static void mb_decay_tick(cz_backend_state_t *st) {
    (void)st;
    mi_collect(false);
}

/* ---- process heap ------------------------------------------------------------------ */

static int mb_heap_open(char *reason, size_t reason_len) {
    (void)reason;
    (void)reason_len;
    return 0;
}

static void heap_count(void *p) {
    atomic_fetch_add_explicit(&g_heap.bytes, mi_usable_size(p), memory_order_relaxed);
    atomic_fetch_add_explicit(&g_heap.nmalloc, 1, memory_order_relaxed);
}

static void *mb_heap_alloc(size_t size, int zero) {
    void *p = zero ? mi_zalloc(size) : mi_malloc(size);
    if (p && !in_range(p)) {
        /* Cannot happen with the arena limit in force; if it did, the block
         * would be freed by the wrong allocator: give it back, and the
         * caller uses the one it had. */
        mi_free(p);
        return NULL;
    }
    if (p) heap_count(p);
    return p;
}

static void *mb_heap_realloc(void *ptr, size_t size) {
    size_t old = mi_usable_size(ptr);
    void *p = mi_realloc(ptr, size);
    if (p) {
        atomic_fetch_sub_explicit(&g_heap.bytes, old, memory_order_relaxed);
        atomic_fetch_add_explicit(&g_heap.bytes, mi_usable_size(p), memory_order_relaxed);
    }
    return p;
}

static void mb_heap_free(void *ptr) {
    atomic_fetch_sub_explicit(&g_heap.bytes, mi_usable_size(ptr), memory_order_relaxed);
    atomic_fetch_add_explicit(&g_heap.nfree, 1, memory_order_relaxed);
    mi_free(ptr);
}

static int mb_heap_owns(const void *ptr) {
    return in_range(ptr);
}

static void mb_heap_stats(cz_purpose_stats_t *out) {
    out->allocated = heap_bytes();
    out->nmalloc = atomic_load_explicit(&g_heap.nmalloc, memory_order_relaxed);
    out->nfree = atomic_load_explicit(&g_heap.nfree, memory_order_relaxed);
    out->active = out->allocated;
    size_t commit = mb_committed();
    out->resident = commit > out->allocated ? commit : out->allocated;
    out->dirty = 0;
}

static void mb_heap_purge(void) {
    mi_collect(true);
}

static void mb_heap_decay_tick(void) {
    mi_collect(false);
}

static const cz_backend_ops_t ops = {
    .id = CZ_BACKEND_MIMALLOC,
    .name = "mimalloc",
    .version = mb_version_string,
    .open = mb_open,
    .close = mb_close,
    .alloc = mb_alloc,
    .realloc = mb_realloc,
    .free = mb_free,
    .usable = mb_usable,
    .stats = mb_stats,
    .set_decay = mb_set_decay,
    .purge = mb_purge,
    .decay_tick = mb_decay_tick,
    .heap_open = mb_heap_open,
    .heap_alloc = mb_heap_alloc,
    .heap_realloc = mb_heap_realloc,
    .heap_free = mb_heap_free,
    .heap_owns = mb_heap_owns,
    .heap_stats = mb_heap_stats,
    .heap_set_decay = NULL,
    .heap_purge = mb_heap_purge,
    .heap_decay_tick = mb_heap_decay_tick,
};

const cz_backend_ops_t *cz_backend_mimalloc_ops(void) {
    return &ops;
}

#endif /* CZ_HAVE_MIMALLOC */
