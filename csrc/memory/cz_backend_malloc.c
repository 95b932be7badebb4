/*
 * The malloc backend: libc. Purposes exist only in cz_memory.c's accounting;
 * active, resident and dirty describe the whole process (glibc does not
 * separate callers); fragmentation is the app's own (0: see cz_memory.h). No process heap: libc already is the
 * interpreter's allocator.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "cz_backend.h"

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

static int m_open(cz_backend_state_t *st, char *reason, size_t reason_len) {
    (void)st;
    (void)reason;
    (void)reason_len;
    return 0;
}

static void m_close(cz_backend_state_t *st) {
    (void)st;
}

static void *m_alloc(cz_backend_state_t *st, cz_purpose_t p, size_t size, int zero) {
    (void)st;
    (void)p;
    return zero ? calloc(1, size) : malloc(size);
}

static void *m_realloc(cz_backend_state_t *st, cz_purpose_t p, void *ptr, size_t size) {
    (void)st;
    (void)p;
    return realloc(ptr, size);
}

static void m_free(cz_backend_state_t *st, cz_purpose_t p, void *ptr) {
    (void)st;
    (void)p;
    free(ptr);
}

static size_t m_usable(const void *ptr) {
    return cz_libc_usable(ptr);
}

double cz_glibc_frag_percent(void) {
#if CZ_HAVE_MALLINFO2
    struct mallinfo2 mi = mallinfo2();
    return cz_frag_percent(mi.arena, mi.uordblks);
#else
    return -1.0;
#endif
}

static void m_stats(cz_backend_state_t *st, cz_memory_stats_t *out) {
    (void)st;
    size_t allocated = cz_stats_from_accounting(out);
    /* The app's blocks are whole blocks of glibc's: the layer sees no free
     * space of its own. glibc's free bytes are every caller's (the
     * interpreter's first): process_fragmentation_percent, not this. */
    out->fragmentation_percent = cz_frag_percent(allocated, allocated);
    out->fragmentation_process_wide = 0;
#if CZ_HAVE_MALLINFO2
    struct mallinfo2 mi = mallinfo2();
    /* arena: heap obtained with brk/arenas; hblkhd: mmapped blocks.
     * uordblks+hblkhd is in use, fordblks is free but held. */
    out->active = mi.uordblks + mi.hblkhd;
    out->resident = cz_process_rss();
    if (out->resident == 0) out->resident = mi.arena + mi.hblkhd;
    out->dirty = mi.fordblks;
    out->process_wide = 1;
#else
    out->active = out->resident = allocated;
    out->dirty = 0;
    out->process_wide = 0;
#endif
}

static int m_set_decay(cz_backend_state_t *st, long dirty_ms, long muzzy_ms) {
    (void)st;
    (void)dirty_ms;
    (void)muzzy_ms;
    return 0;
}

static void m_purge(cz_backend_state_t *st) {
    (void)st;
#if defined(__GLIBC__)
    malloc_trim(0);
#endif
}

static void m_decay_tick(cz_backend_state_t *st) {
    (void)st;
}

const cz_backend_ops_t cz_backend_malloc = {
    .id = CZ_BACKEND_MALLOC,
    .name = "malloc",
    .version = NULL,
    .open = m_open,
    .close = m_close,
    .alloc = m_alloc,
    .realloc = m_realloc,
    .free = m_free,
    .usable = m_usable,
    .stats = m_stats,
    .set_decay = m_set_decay,
    .purge = m_purge,
    .decay_tick = m_decay_tick,
};
