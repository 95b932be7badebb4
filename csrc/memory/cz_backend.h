/*
 * cz_backend — the interface one allocator backend implements (internal to
 * csrc/memory). cz_memory.c is the only caller: it validates sizes and
 * purposes, keeps the per-purpose accounting and dispatches here, so that a
 * backend is one file that only allocates and reports.
 *
 * Two kinds of memory
 *   handle memory   the C core's blocks of one cz_allocator_t, tagged with
 *                   a purpose; a backend may keep one arena or heap per
 *                   purpose in the handle's slots.
 *   process heap    the interpreter's memory (process scope): one per
 *                   process, opened once, never closed (its blocks live as
 *                   long as the objects in them). `heap_owns` must answer
 *                   for any address, also ones the backend never made: it
 *                   is how a free finds the allocator that made a block.
 *
 * Contract of every function pointer
 *   - Called from any thread; must be thread-safe.
 *   - Sizes are already checked (non-zero, below CZ_MAX_ALLOC).
 *   - `alloc` with `zero` returns zeroed memory.
 *   - A NULL `heap_open` means the backend cannot govern the process.
 *   - `stats` fills active/resident/dirty/fragmentation_percent/process_wide
 *     (and fragmentation_process_wide) of `out`, whose per-purpose `allocated`, `nmalloc`, `nfree` are
 *     already set from the accounting (a backend with exact figures of its
 *     own may overwrite `allocated`).
 */
#ifndef CZ_BACKEND_H
#define CZ_BACKEND_H

#include <stdint.h>

#include "cz_memory.h"

/* Per-handle state a backend may use: one slot per purpose. */
typedef struct {
    uintptr_t slot[CZ_MEM_PURPOSES];
    int flags[CZ_MEM_PURPOSES];
    int opened; /* slots in use, for teardown after a partial open */
} cz_backend_state_t;

typedef struct {
    cz_backend_t id;
    const char *name;
    /* Version string of the library, or NULL. */
    const char *(*version)(void);

    /* 0 on success; -1 with `reason` filled (the handle falls back to malloc). */
    int (*open)(cz_backend_state_t *st, char *reason, size_t reason_len);
    void (*close)(cz_backend_state_t *st);
    void *(*alloc)(cz_backend_state_t *st, cz_purpose_t p, size_t size, int zero);
    /* NULL on failure, `ptr` then still valid. */
    void *(*realloc)(cz_backend_state_t *st, cz_purpose_t p, void *ptr, size_t size);
    void (*free)(cz_backend_state_t *st, cz_purpose_t p, void *ptr);
    size_t (*usable)(const void *ptr);
    void (*stats)(cz_backend_state_t *st, cz_memory_stats_t *out);
    /* 0 on success; no-op (0) where the backend has no decay. */
    int (*set_decay)(cz_backend_state_t *st, long dirty_ms, long muzzy_ms);
    void (*purge)(cz_backend_state_t *st);
    void (*decay_tick)(cz_backend_state_t *st);

    /* ---- process heap (NULL members: not supported) ---- */
    int (*heap_open)(char *reason, size_t reason_len);
    void *(*heap_alloc)(size_t size, int zero);
    void *(*heap_realloc)(void *ptr, size_t size);
    void (*heap_free)(void *ptr);
    int (*heap_owns)(const void *ptr);
    void (*heap_stats)(cz_purpose_stats_t *out);
    void (*heap_set_decay)(long dirty_ms, long muzzy_ms);
    void (*heap_purge)(void);
    void (*heap_decay_tick)(void);
} cz_backend_ops_t;

/* The backends of this build; those not compiled in are NULL. */
extern const cz_backend_ops_t cz_backend_malloc;
const cz_backend_ops_t *cz_backend_jemalloc_ops(void);
const cz_backend_ops_t *cz_backend_mimalloc_ops(void);

/* Shared by the backends: fragmentation with the 4 MiB floor (see
 * cz_memory_stats_t), and the process's resident set size (0 if unknown). */
double cz_frag_percent(size_t held, size_t used);
size_t cz_process_rss(void);
/* glibc's heap fragmentation for the whole process (see
 * cz_memory_stats_t.process_fragmentation_percent); -1 without glibc. */
double cz_glibc_frag_percent(void);
/* For a backend without per-purpose figures of its own: each purpose's
 * active and resident are its accounted bytes, dirty 0. Returns their sum. */
size_t cz_stats_from_accounting(cz_memory_stats_t *out);

#endif /* CZ_BACKEND_H */
