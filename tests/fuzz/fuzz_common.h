/*
 * Shared by the libFuzzer harnesses in tests/fuzz (each harness is its own
 * program and includes this once).
 *
 *   FUZZ_CHECK(cond)   abort with a message when an invariant is broken
 *                      (libFuzzer then saves the input as a crash).
 *   mem_mark()/leak check
 *                      live bytes and live blocks of an allocator handle;
 *                      every input must end where it started.
 *   fault injection    the harness is linked with
 *                      -Wl,--wrap=cz_malloc,--wrap=cz_calloc,--wrap=cz_realloc
 *                      so that every allocation the C core makes through
 *                      cz_memory passes through fault_now(): with
 *                      g_fault_at = N > 0 the N-th call (counted from the
 *                      last fault_arm()) returns NULL, exactly once. The
 *                      allocator itself is the real malloc backend.
 */
#ifndef CZ_FUZZ_COMMON_H
#define CZ_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cz_memory.h"

#define FUZZ_CHECK(cond)                                                                                               \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond);                          \
            abort();                                                                                                   \
        }                                                                                                              \
    } while (0)

/* ---- leak check ----------------------------------------------------------- */

typedef struct {
    size_t allocated; /* live bytes (usable sizes) */
    uint64_t blocks;  /* nmalloc - nfree */
} mem_mark_t;

static inline mem_mark_t mem_mark(cz_allocator_t *a) {
    cz_memory_stats_t st;
    mem_mark_t m;

    cz_allocator_stats(a, &st);
    m.allocated = st.allocated;
    m.blocks = st.nmalloc - st.nfree;
    return m;
}

static inline void mem_expect(cz_allocator_t *a, mem_mark_t start, const char *what) {
    mem_mark_t now = mem_mark(a);

    if (now.allocated != start.allocated || now.blocks != start.blocks) {
        fprintf(stderr,
                "fuzz: leak in %s: allocated %zu -> %zu bytes, live blocks "
                "%llu -> %llu\n",
                what, start.allocated, now.allocated, (unsigned long long)start.blocks, (unsigned long long)now.blocks);
        abort();
    }
}

/* ---- allocation-failure injection ------------------------------------------ */

static long g_fault_at;    /* fail this call (1-based) after fault_arm(); 0: never */
static long g_alloc_calls; /* calls since fault_arm() */
static long g_faults;      /* faults injected since fault_arm() */

static inline void fault_arm(long at) {
    g_fault_at = at;
    g_alloc_calls = 0;
    g_faults = 0;
}

static inline int fault_now(void) {
    if (g_fault_at <= 0 || ++g_alloc_calls != g_fault_at) return 0;
    g_faults++;
    return 1;
}

void *__real_cz_malloc(cz_allocator_t *a, cz_purpose_t p, size_t size);
void *__real_cz_calloc(cz_allocator_t *a, cz_purpose_t p, size_t n, size_t size);
void *__real_cz_realloc(cz_allocator_t *a, cz_purpose_t p, void *ptr, size_t size);
void *__wrap_cz_malloc(cz_allocator_t *a, cz_purpose_t p, size_t size);
void *__wrap_cz_calloc(cz_allocator_t *a, cz_purpose_t p, size_t n, size_t size);
void *__wrap_cz_realloc(cz_allocator_t *a, cz_purpose_t p, void *ptr, size_t size);

void *__wrap_cz_malloc(cz_allocator_t *a, cz_purpose_t p, size_t size) {
    return fault_now() ? NULL : __real_cz_malloc(a, p, size);
}

void *__wrap_cz_calloc(cz_allocator_t *a, cz_purpose_t p, size_t n, size_t size) {
    return fault_now() ? NULL : __real_cz_calloc(a, p, n, size);
}

void *__wrap_cz_realloc(cz_allocator_t *a, cz_purpose_t p, void *ptr, size_t size) {
    return fault_now() ? NULL : __real_cz_realloc(a, p, ptr, size);
}

/* ---- small helpers ----------------------------------------------------------- */

static inline void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);

    if (!p) abort();
    return p;
}

static inline void *xmemdup(const void *s, size_t n) {
    void *p = xmalloc(n);

    if (n) memcpy(p, s, n);
    return p;
}

static inline int lower_ascii(int c) {
    return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

/* Case-insensitive equality with a lower-case literal. */
static inline int ieq_lit(const char *s, size_t n, const char *lit) {
    size_t i, m = strlen(lit);

    if (n != m) return 0;
    for (i = 0; i < n; i++)
        if (lower_ascii((unsigned char)s[i]) != lit[i]) return 0;
    return 1;
}

static inline uint64_t fnv(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    size_t i;

    for (i = 0; i < n; i++) {
        h ^= p[i];
        h *= UINT64_C(1099511628211);
    }
    return h;
}

static inline uint64_t fnv_u64(uint64_t h, uint64_t v) {
    return fnv(h, &v, sizeof(v));
}

#define FNV_INIT UINT64_C(14695981039346656037)

#endif /* CZ_FUZZ_COMMON_H */
