/*
 * cz_memory — the one allocator layer of Catzilla.
 *
 * Every allocation the C core makes goes through an allocator handle
 * (cz_allocator_t) bound to one Catzilla app, and is tagged with a purpose.
 * The backend is chosen when the handle is created and never changes; two
 * handles in one process may use different backends. A pointer must be
 * freed through the handle and purpose it was allocated with: pointers
 * never cross backends. Each backend is one file behind the interface of
 * cz_backend.h; this file's functions check, account and dispatch.
 *
 * Backends
 *   jemalloc  one arena per purpose (arenas.create), used with
 *             MALLOCX_TCACHE_NONE: thread caches would keep freed blocks
 *             out of their arena and mix arenas of different apps, which
 *             would make per-app and per-purpose statistics wrong. The hot
 *             path keeps allocations few (buffers are reused per
 *             connection), so the cache is not missed.
 *   mimalloc  mimalloc's thread-local heaps (a heap serves only the thread
 *             that made it, and the core allocates from several threads),
 *             with per-purpose accounting of usable sizes; resident and
 *             committed figures are mimalloc's, for the process.
 *   malloc    libc, with per-purpose accounting of usable sizes.
 *
 * Process heap (process scope)
 *   One handle per process may also take the interpreter's memory: the
 *   process heap, a dedicated jemalloc arena (or mimalloc's heaps) that
 *   the Python layer's allocator hooks call. Blocks made before the switch
 *   stay with the allocator that made them: cz_process_heap_owns() says,
 *   for any address, whether the process heap made it.
 *     jemalloc  the process heap's arena takes its extents (extent hooks)
 *               from one reserved range of address space, so ownership is
 *               one comparison; blocks use jemalloc's thread caches (only
 *               this arena ever uses them, so they never mix arenas).
 *     mimalloc  ownership is mimalloc's segment map (mi_is_in_heap_region).
 *   The process heap is never closed: its blocks live as long as the
 *   objects in them, after every handle is destroyed. It survives fork.
 *
 * Thread safety: allocation, free and statistics may be called from any
 * thread; counters are relaxed atomics. Tuning calls are thread-safe too.
 */
#ifndef CZ_MEMORY_H
#define CZ_MEMORY_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    CZ_MEM_REQUEST = 0, /* request buffers, headers, bodies */
    CZ_MEM_RESPONSE,    /* serialized responses, write buffers */
    CZ_MEM_CACHE,       /* caches that outlive one request */
    CZ_MEM_STATIC,      /* routes and other app-lifetime data */
    CZ_MEM_TASK,        /* background and async task state */
    CZ_MEM_GENERAL,     /* everything else */
    CZ_MEM_PURPOSES
} cz_purpose_t;

typedef enum { CZ_BACKEND_MALLOC = 0, CZ_BACKEND_JEMALLOC = 1, CZ_BACKEND_MIMALLOC = 2, CZ_BACKENDS } cz_backend_t;

typedef struct cz_allocator cz_allocator_t;

/* Statistics of one purpose. Sizes in bytes. */
typedef struct {
    size_t allocated; /* live bytes (usable sizes) */
    uint64_t nmalloc; /* allocations so far */
    uint64_t nfree;   /* frees so far */
    size_t active;    /* jemalloc: bytes of pages backing live blocks; malloc: = allocated */
    size_t resident;  /* jemalloc: arena resident bytes; malloc: = allocated */
    size_t dirty;     /* jemalloc: unused pages not yet returned to the OS; malloc: 0 */
} cz_purpose_stats_t;

/* Statistics of one allocator handle. */
typedef struct {
    cz_purpose_stats_t purpose[CZ_MEM_PURPOSES];
    size_t allocated;      /* sum over purposes */
    size_t peak_allocated; /* highest `allocated` seen since creation */
    uint64_t nmalloc, nfree;
    size_t active;   /* see cz_purpose_stats_t; malloc: heap in use (process) */
    size_t resident; /* jemalloc: sum over the app's arenas; malloc: the process's RSS */
    size_t dirty;    /* jemalloc: sum of dirty+muzzy; malloc: free bytes in the heap (process) */
    /*
     * External fragmentation, 0..100: the share of memory the allocator
     * keeps committed for the app's live blocks that holds no live data,
     * i.e. what the app's tuning (purge, decay) can act on.
     * jemalloc: (active - allocated) / active over the app's arenas.
     * mimalloc: (committed - live) / committed; committed is the process's.
     * malloc:   over the app's accounted purposes, whose blocks are all
     *           it knows (active = allocated): 0. glibc's free bytes belong
     *           to every caller of the process; they are
     *           process_fragmentation_percent.
     * The denominator is at least 4 MiB: below that, the granularity of
     * part-used slabs would dominate a small, idle app's figure.
     */
    double fragmentation_percent;
    int fragmentation_process_wide; /* 1 when fragmentation_percent covers the whole process (mimalloc) */
    /* glibc's heap, whole process, any backend: free bytes inside the heap /
     * heap size (mallinfo2), 0..100 with the same floor; -1 without glibc. */
    double process_fragmentation_percent;
    int process_wide; /* 1 when active/resident/dirty cover the whole process */
    /* The process heap, when this handle owns it (with_process_heap = 1):
     * its figures are also in the totals above. */
    int with_process_heap;
    cz_purpose_stats_t process_heap;
} cz_memory_stats_t;

/* ---- build facts -------------------------------------------------------- */

/* 1 when backend `b` is compiled into this build (malloc always is). */
int cz_backend_compiled(cz_backend_t b);
/* Version string of backend `b`'s library, or NULL (malloc, or not compiled). */
const char *cz_backend_version(cz_backend_t b);
/* Parse "malloc" / "jemalloc" / "mimalloc"; -1 for anything else. */
int cz_backend_parse(const char *name);

/* 1 when jemalloc is compiled into this build. */
int cz_jemalloc_compiled(void);
/* jemalloc version string, or NULL when not compiled in. */
const char *cz_jemalloc_version(void);
/* 1 when the compiled-in jemalloc was built with --enable-debug. */
int cz_jemalloc_debug(void);

/* ---- lifecycle ------------------------------------------------------------ */

/*
 * Create a handle. The `wanted` backend is tried first; when it is not
 * compiled in or fails to start (jemalloc: arena creation refused;
 * simulated by CATZILLA_TEST_JEMALLOC_INIT_FAIL=1, and for mimalloc by
 * CATZILLA_TEST_MIMALLOC_INIT_FAIL=1), the handle falls back to malloc and
 * `reason` (if not NULL) receives why.
 * Returns NULL only when the handle itself cannot be allocated.
 */
cz_allocator_t *cz_allocator_create(cz_backend_t wanted, char *reason, size_t reason_len);

/* Destroy a handle. All its blocks must have been freed. The process heap,
 * if this handle opened it, stays. */
void cz_allocator_destroy(cz_allocator_t *a);

cz_backend_t cz_allocator_backend(const cz_allocator_t *a);
const char *cz_backend_name(cz_backend_t b);
const char *cz_purpose_name(cz_purpose_t p);

/* ---- allocation: NULL on failure or size overflow; never aborts --------- */

void *cz_malloc(cz_allocator_t *a, cz_purpose_t p, size_t size);
void *cz_calloc(cz_allocator_t *a, cz_purpose_t p, size_t n, size_t size);
/* On failure returns NULL and leaves `ptr` valid. */
void *cz_realloc(cz_allocator_t *a, cz_purpose_t p, void *ptr, size_t size);
void cz_free(cz_allocator_t *a, cz_purpose_t p, void *ptr);
char *cz_strndup(cz_allocator_t *a, cz_purpose_t p, const char *s, size_t n);
/* Usable size of a block of this handle. */
size_t cz_usable_size(const cz_allocator_t *a, const void *ptr);

/* ---- statistics and tuning ------------------------------------------------- */

/* Fill `out` with fresh figures (refreshes jemalloc's stats epoch). */
void cz_allocator_stats(cz_allocator_t *a, cz_memory_stats_t *out);

/*
 * Set decay times (milliseconds; -1 = never purge) for the jemalloc arenas
 * of this handle (and of the process heap, if this handle opened it): how
 * long freed pages stay dirty before they are returned to the OS. No-op
 * for malloc and mimalloc. Returns 0 on success.
 */
int cz_allocator_set_decay(cz_allocator_t *a, long dirty_ms, long muzzy_ms);

/*
 * Return unused memory to the OS now: jemalloc purges this handle's
 * arenas; mimalloc collects its heaps; malloc calls malloc_trim(0) where
 * glibc has it. With the process heap, that too.
 * Returns the bytes of dirty memory that were released (best effort).
 */
size_t cz_allocator_purge(cz_allocator_t *a);

/* Let jemalloc's decay run for idle arenas (no allocation activity would
 * otherwise trigger it). No-op for malloc. */
void cz_allocator_decay_tick(cz_allocator_t *a);

/* ---- per-request tallies -------------------------------------------------------
 *
 * A tally counts what the calling thread allocates and frees through the
 * layer (any handle) while it is the thread's current tally: how the
 * server attributes memory to the request a connection is working on.
 * Only the thread that set a tally updates it (no atomics); a thread
 * without one pays one thread-local load per allocation. Blocks made
 * outside it (by other threads, or between tallies: an async handler's
 * completion posted by its asyncio task) are not counted. The interpreter's blocks from the
 * process heap (process scope) are counted apart, in `python`: they are
 * what reaches the hooks, i.e. objects over pymalloc's 512 bytes and
 * pymalloc's own arenas (1 MiB), not each small object.
 */
typedef struct {
    uint64_t allocated[CZ_MEM_PURPOSES]; /* usable bytes of new blocks; a realloc counts its growth */
    int64_t held;                        /* allocated minus freed (frees of older blocks count too) */
    int64_t peak;                        /* the highest `held` since the tally was reset */
    uint64_t python;                     /* bytes asked of the process heap; a realloc counts its growth */
} cz_mem_tally_t;

/* Make `t` (or NULL: none) the calling thread's tally; returns the previous one. */
cz_mem_tally_t *cz_mem_tally_enter(cz_mem_tally_t *t);
/* Zero `t` (start counting a new request). */
void cz_mem_tally_reset(cz_mem_tally_t *t);
/* Sum of t->allocated over purposes. */
uint64_t cz_mem_tally_total(const cz_mem_tally_t *t);

/* ---- process heap -------------------------------------------------------- */

/*
 * Open the process heap on handle `a`'s backend. Once per process: returns
 * 0 when it is now open and `a` owns it, -1 with `reason` filled otherwise
 * (already open, backend without a process heap such as malloc, address
 * space reservation refused). `a` reports the heap as its "python" figures
 * and its tuning calls reach it until it is destroyed; the heap itself stays.
 */
int cz_process_heap_open(cz_allocator_t *a, char *reason, size_t reason_len);
/* Give the process heap's ownership from handle `from` (which owns it) to
 * `to`, of the same backend: 0, or -1 when `from` does not own it or the
 * backends differ. How a heap opened before any app (at import) passes to
 * the app that asks for it. */
int cz_process_heap_hand_over(cz_allocator_t *from, cz_allocator_t *to);
/* The backend of the process heap, or -1 when none is open. */
int cz_process_heap_backend(void);
/* 1 when `a` opened the process heap and still owns it. */
int cz_allocator_owns_process_heap(const cz_allocator_t *a);

/* Allocation on the open process heap; NULL on failure (the caller then
 * uses the allocator it had before). Never call before a successful open. */
void *cz_process_heap_alloc(size_t size, int zero);
/* `ptr` must be owned by the process heap. NULL on failure, `ptr` valid. */
void *cz_process_heap_realloc(void *ptr, size_t size);
void cz_process_heap_free(void *ptr);
/* 1 when the open process heap made the block at `ptr`; 0 for any other
 * address, also when no heap is open. */
int cz_process_heap_owns(const void *ptr);
/* Figures of the process heap (zeros when none is open). */
void cz_process_heap_stats(cz_purpose_stats_t *out);

#endif /* CZ_MEMORY_H */
