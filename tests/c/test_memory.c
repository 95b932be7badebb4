/* Unit tests of the allocator layer (csrc/memory), for both backends. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cz_memory.h"

static int passed, failed;
#define CHECK(expr)                                                                                                    \
    do {                                                                                                               \
        if (expr) {                                                                                                    \
            passed++;                                                                                                  \
        } else {                                                                                                       \
            failed++;                                                                                                  \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #expr);                                   \
        }                                                                                                              \
    } while (0)

static size_t allocated(cz_allocator_t *a, int purpose) {
    cz_memory_stats_t st;
    cz_allocator_stats(a, &st);
    return purpose < 0 ? st.allocated : st.purpose[purpose].allocated;
}

static void test_backend(cz_backend_t wanted) {
    char reason[256];
    cz_allocator_t *a = cz_allocator_create(wanted, reason, sizeof(reason));
    CHECK(a != NULL);
    if (!a) return;
    const char *inject =
        getenv(wanted == CZ_BACKEND_MIMALLOC ? "CATZILLA_TEST_MIMALLOC_INIT_FAIL" : "CATZILLA_TEST_JEMALLOC_INIT_FAIL");
    int injected = inject && strcmp(inject, "1") == 0;
    if (wanted != CZ_BACKEND_MALLOC && cz_backend_compiled(wanted) && !injected) {
        CHECK(cz_allocator_backend(a) == wanted);
        CHECK(reason[0] == '\0');
    } else {
        CHECK(cz_allocator_backend(a) == CZ_BACKEND_MALLOC);
        /* A refused backend always says why. */
        CHECK((wanted == CZ_BACKEND_MALLOC) == (reason[0] == '\0'));
    }
    printf("backend %s (wanted %s) %s\n", cz_backend_name(cz_allocator_backend(a)), cz_backend_name(wanted), reason);

    /* Every purpose moves by what it allocated, and only it. */
    for (int p = 0; p < CZ_MEM_PURPOSES; p++) {
        size_t before_total = allocated(a, -1), before = allocated(a, p);
        void *blocks[64];
        size_t sum = 0;
        for (int i = 0; i < 64; i++) {
            blocks[i] = cz_malloc(a, (cz_purpose_t)p, 100 + (size_t)i * 1000);
            CHECK(blocks[i] != NULL);
            memset(blocks[i], 1, 100 + (size_t)i * 1000);
            sum += cz_usable_size(a, blocks[i]);
        }
        CHECK(allocated(a, p) - before == sum);
        CHECK(allocated(a, -1) - before_total == sum);
        for (int q = 0; q < CZ_MEM_PURPOSES; q++) {
            if (q != p) CHECK(allocated(a, q) == 0);
        }
        for (int i = 0; i < 64; i++) cz_free(a, (cz_purpose_t)p, blocks[i]);
        CHECK(allocated(a, p) == before);
    }

    /* realloc keeps contents and accounting; calloc zeroes. */
    char *s = cz_malloc(a, CZ_MEM_REQUEST, 16);
    CHECK(s != NULL);
    memcpy(s, "catzilla", 9);
    s = cz_realloc(a, CZ_MEM_REQUEST, s, 1 << 20);
    CHECK(s != NULL && strcmp(s, "catzilla") == 0);
    CHECK(allocated(a, CZ_MEM_REQUEST) == cz_usable_size(a, s));
    unsigned char *z = cz_calloc(a, CZ_MEM_RESPONSE, 1000, 10);
    CHECK(z != NULL);
    int zero = 1;
    for (int i = 0; z && i < 10000; i++) zero &= z[i] == 0;
    CHECK(zero);
    char *d = cz_strndup(a, CZ_MEM_GENERAL, "hello world", 5);
    CHECK(d != NULL && strcmp(d, "hello") == 0);
    cz_free(a, CZ_MEM_REQUEST, s);
    cz_free(a, CZ_MEM_RESPONSE, z);
    cz_free(a, CZ_MEM_GENERAL, d);
    CHECK(allocated(a, -1) == 0);

    /* Overflow and absurd sizes give NULL, not a crash or a tiny block. */
    CHECK(cz_malloc(a, CZ_MEM_GENERAL, SIZE_MAX) == NULL);
    CHECK(cz_calloc(a, CZ_MEM_GENERAL, SIZE_MAX / 2, 4) == NULL);
    CHECK(cz_malloc(a, (cz_purpose_t)99, 10) == NULL);
    void *keep = cz_malloc(a, CZ_MEM_GENERAL, 32);
    CHECK(cz_realloc(a, CZ_MEM_GENERAL, keep, SIZE_MAX) == NULL);
    cz_free(a, CZ_MEM_GENERAL, keep); /* still valid after the failed realloc */
    cz_free(a, CZ_MEM_GENERAL, NULL);

    /* Counts and peak. */
    cz_memory_stats_t st;
    cz_allocator_stats(a, &st);
    CHECK(st.nmalloc == st.nfree);
    CHECK(st.nmalloc >= 6 * 64);
    CHECK(st.peak_allocated >= (1u << 20));
    CHECK(st.fragmentation_percent >= 0.0 && st.fragmentation_percent <= 100.0);

    /* A spike, then purge: dirty memory goes back to the OS. */
    enum { N = 4096 };
    void **spike = malloc(N * sizeof(void *));
    for (int i = 0; i < N; i++) {
        spike[i] = cz_malloc(a, CZ_MEM_CACHE, 4096);
        memset(spike[i], 7, 4096);
    }
    for (int i = 0; i < N; i++) cz_free(a, CZ_MEM_CACHE, spike[i]);
    free(spike);
    CHECK(cz_allocator_set_decay(a, -1, -1) == 0);
    cz_allocator_purge(a);
    cz_allocator_decay_tick(a);
    cz_allocator_stats(a, &st);
    if (cz_allocator_backend(a) == CZ_BACKEND_JEMALLOC) CHECK(st.dirty == 0);
    CHECK(st.allocated == 0);

    cz_allocator_destroy(a);
}

/* The process heap: once per process, ownership by address, and it stays
 * usable after the handle that opened it is gone. */
static void test_process_heap(void) {
    char reason[256];
    CHECK(cz_process_heap_backend() == -1);
    CHECK(cz_process_heap_owns(&reason) == 0);
    cz_allocator_t *ma = cz_allocator_create(CZ_BACKEND_MALLOC, NULL, 0);
    CHECK(cz_process_heap_open(ma, reason, sizeof(reason)) == -1);
    CHECK(strstr(reason, "malloc backend has no process heap") != NULL);
    cz_backend_t b = cz_jemalloc_compiled() ? CZ_BACKEND_JEMALLOC : CZ_BACKEND_MIMALLOC;
    cz_allocator_t *a = cz_allocator_create(b, NULL, 0);
    if (cz_allocator_backend(a) == CZ_BACKEND_MALLOC) {
        printf("process heap: no backend with one in this build or environment\n");
        cz_allocator_destroy(a);
        cz_allocator_destroy(ma);
        return;
    }
    CHECK(cz_process_heap_open(a, reason, sizeof(reason)) == 0);
    CHECK(cz_process_heap_backend() == (int)b);
    CHECK(cz_allocator_owns_process_heap(a) && !cz_allocator_owns_process_heap(ma));
    CHECK(cz_process_heap_open(a, reason, sizeof(reason)) == -1);
    CHECK(strstr(reason, "already governs") != NULL);

    enum { N = 2000 };
    void *mine[N], *theirs[N];
    for (int i = 0; i < N; i++) {
        size_t size = 1 + (size_t)(i * 37) % 70000;
        mine[i] = cz_process_heap_alloc(size, i % 2);
        theirs[i] = malloc(size);
        CHECK(mine[i] && theirs[i]);
        if (i % 2) CHECK(((unsigned char *)mine[i])[size - 1] == 0);
        memset(mine[i], 0x5a, size);
        CHECK(cz_process_heap_owns(mine[i]) && cz_process_heap_owns((char *)mine[i] + size - 1));
        CHECK(!cz_process_heap_owns(theirs[i]));
    }
    cz_memory_stats_t st;
    cz_allocator_stats(a, &st);
    CHECK(st.with_process_heap && st.process_heap.allocated > 0 && st.allocated >= st.process_heap.allocated);
    for (int i = 0; i < N; i += 2) {
        void *grown = cz_process_heap_realloc(mine[i], 200000);
        CHECK(grown && cz_process_heap_owns(grown) && ((unsigned char *)grown)[0] == 0x5a);
        mine[i] = grown;
    }
    cz_allocator_destroy(a); /* the heap stays */
    CHECK(cz_process_heap_backend() == (int)b);
    for (int i = 0; i < N; i++) {
        cz_process_heap_free(mine[i]);
        free(theirs[i]);
    }
    cz_purpose_stats_t hs;
    cz_process_heap_stats(&hs);
    printf("process heap (%s): %zu bytes live after freeing, %zu resident\n", cz_backend_name(b), hs.allocated,
           hs.resident);
    cz_allocator_destroy(ma);
}

/* Allocates and frees on another thread: never counted in the main thread's tally. */
static void *other_thread(void *arg) {
    cz_allocator_t *a = arg;
    void *p = cz_malloc(a, CZ_MEM_TASK, 4096);
    cz_free(a, CZ_MEM_TASK, p);
    return cz_malloc(a, CZ_MEM_TASK, 8192);
}

/* Per-request tallies: what the thread allocates while a tally is current. */
static void test_tally(cz_backend_t wanted) {
    cz_allocator_t *a = cz_allocator_create(wanted, NULL, 0);
    CHECK(a != NULL);
    if (!a) return;
    void *before = cz_malloc(a, CZ_MEM_REQUEST, 1000); /* made before: not counted, its free is */
    cz_mem_tally_t t;
    cz_mem_tally_reset(&t);
    CHECK(cz_mem_tally_enter(&t) == NULL);
    void *p = cz_malloc(a, CZ_MEM_REQUEST, 3000);
    size_t u = cz_usable_size(a, p);
    CHECK(t.allocated[CZ_MEM_REQUEST] == u && t.held == (int64_t)u && t.peak == (int64_t)u);
    /* a realloc counts its growth only */
    p = cz_realloc(a, CZ_MEM_REQUEST, p, 60000);
    size_t u2 = cz_usable_size(a, p);
    CHECK(u2 >= 60000 && t.allocated[CZ_MEM_REQUEST] == u2 && t.held == (int64_t)u2);
    void *q = cz_calloc(a, CZ_MEM_RESPONSE, 10, 100);
    size_t uq = cz_usable_size(a, q);
    CHECK(t.allocated[CZ_MEM_RESPONSE] == uq && t.peak == (int64_t)(u2 + uq));
    CHECK(cz_mem_tally_total(&t) == u2 + uq);
    cz_free(a, CZ_MEM_REQUEST, p);
    cz_free(a, CZ_MEM_RESPONSE, q);
    CHECK(t.held == 0 && t.peak == (int64_t)(u2 + uq) && cz_mem_tally_total(&t) == u2 + uq);
    size_t ub = cz_usable_size(a, before);
    cz_free(a, CZ_MEM_REQUEST, before);
    CHECK(t.held == -(int64_t)ub && t.peak == (int64_t)(u2 + uq));
    /* another thread's allocations are its own */
    pthread_t th;
    void *from_thread = NULL;
    CHECK(pthread_create(&th, NULL, other_thread, a) == 0);
    CHECK(pthread_join(th, &from_thread) == 0);
    CHECK(t.allocated[CZ_MEM_TASK] == 0 && from_thread != NULL);
    cz_free(a, CZ_MEM_TASK, from_thread); /* a free on this thread counts */
    CHECK(t.allocated[CZ_MEM_TASK] == 0 && t.held < -(int64_t)ub);
    /* left: nothing more is counted */
    CHECK(cz_mem_tally_enter(NULL) == &t);
    uint64_t total = cz_mem_tally_total(&t);
    void *r = cz_malloc(a, CZ_MEM_GENERAL, 500);
    cz_free(a, CZ_MEM_GENERAL, r);
    CHECK(cz_mem_tally_total(&t) == total);
    cz_mem_tally_reset(&t);
    CHECK(cz_mem_tally_total(&t) == 0 && t.held == 0 && t.peak == 0);
    cz_allocator_destroy(a);
}

int main(void) {
    printf("jemalloc compiled: %d version: %s\n", cz_jemalloc_compiled(),
           cz_jemalloc_version() ? cz_jemalloc_version() : "-");
    CHECK(strcmp(cz_purpose_name(CZ_MEM_REQUEST), "request") == 0);
    CHECK(strcmp(cz_purpose_name(CZ_MEM_GENERAL), "general") == 0);
    test_backend(CZ_BACKEND_MALLOC);
    test_backend(CZ_BACKEND_JEMALLOC);
    test_backend(CZ_BACKEND_MIMALLOC);
    CHECK(cz_backend_parse("mimalloc") == CZ_BACKEND_MIMALLOC && cz_backend_parse("tcmalloc") == -1);
    /* Two handles with different backends side by side. */
    cz_allocator_t *je = cz_allocator_create(CZ_BACKEND_JEMALLOC, NULL, 0);
    cz_allocator_t *ma = cz_allocator_create(CZ_BACKEND_MALLOC, NULL, 0);
    void *p1 = cz_malloc(je, CZ_MEM_STATIC, 1000), *p2 = cz_malloc(ma, CZ_MEM_STATIC, 1000);
    CHECK(allocated(je, CZ_MEM_STATIC) >= 1000 && allocated(ma, CZ_MEM_STATIC) >= 1000);
    cz_free(je, CZ_MEM_STATIC, p1);
    cz_free(ma, CZ_MEM_STATIC, p2);
    CHECK(allocated(je, -1) == 0 && allocated(ma, -1) == 0);
    cz_allocator_destroy(je);
    cz_allocator_destroy(ma);
    test_process_heap();
    test_tally(CZ_BACKEND_MALLOC);
    test_tally(CZ_BACKEND_JEMALLOC);
    test_tally(CZ_BACKEND_MIMALLOC);
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
