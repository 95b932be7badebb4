/*
 * cz_memory — the one allocator layer of Catzilla.
 *
 * Every allocation the C core makes goes through an allocator handle
 * (cz_allocator_t) bound to one Catzilla app, and is tagged with a purpose.
 * The backend (jemalloc or libc malloc) is chosen when the handle is
 * created and never changes; two handles in one process may use different
 * backends. A pointer must be freed through the handle and purpose it was
 * allocated with: pointers never cross backends.
 *
 * Backends
 *   jemalloc  one arena per purpose (arenas.create), used with
 *             MALLOCX_TCACHE_NONE: thread caches would keep freed blocks
 *             out of their arena and mix arenas of different apps, which
 *             would make per-app and per-purpose statistics wrong. The hot
 *             path keeps allocations few (buffers are reused per
 *             connection), so the cache is not missed.
 *   malloc    libc, with per-purpose accounting of usable sizes.
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

typedef enum { CZ_BACKEND_MALLOC = 0, CZ_BACKEND_JEMALLOC = 1 } cz_backend_t;

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
     * keeps committed for live blocks that holds no live data.
     * jemalloc: (active - allocated) / active over the app's arenas.
     * malloc:   free bytes inside the heap / heap size, for the whole
     *           process (glibc does not separate callers).
     * The denominator is at least 4 MiB: below that, the granularity of
     * part-used slabs would dominate a small, idle app's figure.
     */
    double fragmentation_percent;
    int process_wide; /* 1 when active/resident/dirty/fragmentation cover the whole process */
} cz_memory_stats_t;

/* ---- build facts -------------------------------------------------------- */

/* 1 when jemalloc is compiled into this build. */
int cz_jemalloc_compiled(void);
/* jemalloc version string, or NULL when not compiled in. */
const char *cz_jemalloc_version(void);
/* 1 when the compiled-in jemalloc was built with --enable-debug. */
int cz_jemalloc_debug(void);

/* ---- lifecycle ------------------------------------------------------------ */

/*
 * Create a handle. With CZ_BACKEND_JEMALLOC the jemalloc backend is tried
 * first; when it is not compiled in or fails to start (arena creation
 * refused, or CATZILLA_TEST_JEMALLOC_INIT_FAIL=1 in the environment), the
 * handle falls back to malloc and `reason` (if not NULL) receives why.
 * Returns NULL only when the handle itself cannot be allocated.
 */
cz_allocator_t *cz_allocator_create(cz_backend_t wanted, char *reason, size_t reason_len);

/* Destroy a handle. All its blocks must have been freed. */
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
 * of this handle: how long freed pages stay dirty before they are returned
 * to the OS. No-op for malloc. Returns 0 on success.
 */
int cz_allocator_set_decay(cz_allocator_t *a, long dirty_ms, long muzzy_ms);

/*
 * Return unused memory to the OS now: jemalloc purges this handle's
 * arenas; malloc calls malloc_trim(0) where glibc has it.
 * Returns the bytes of dirty memory that were released (best effort).
 */
size_t cz_allocator_purge(cz_allocator_t *a);

/* Let jemalloc's decay run for idle arenas (no allocation activity would
 * otherwise trigger it). No-op for malloc. */
void cz_allocator_decay_tick(cz_allocator_t *a);

#endif /* CZ_MEMORY_H */
