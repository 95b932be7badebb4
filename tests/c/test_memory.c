/* Unit tests of the allocator layer (csrc/memory), for both backends. */
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
    int injected =
        getenv("CATZILLA_TEST_JEMALLOC_INIT_FAIL") && strcmp(getenv("CATZILLA_TEST_JEMALLOC_INIT_FAIL"), "1") == 0;
    if (wanted == CZ_BACKEND_JEMALLOC && cz_jemalloc_compiled() && !injected) {
        CHECK(cz_allocator_backend(a) == CZ_BACKEND_JEMALLOC);
        CHECK(reason[0] == '\0');
    } else {
        CHECK(cz_allocator_backend(a) == CZ_BACKEND_MALLOC);
        /* A refused jemalloc always says why. */
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

int main(void) {
    printf("jemalloc compiled: %d version: %s\n", cz_jemalloc_compiled(),
           cz_jemalloc_version() ? cz_jemalloc_version() : "-");
    CHECK(strcmp(cz_purpose_name(CZ_MEM_REQUEST), "request") == 0);
    CHECK(strcmp(cz_purpose_name(CZ_MEM_GENERAL), "general") == 0);
    test_backend(CZ_BACKEND_MALLOC);
    test_backend(CZ_BACKEND_JEMALLOC);
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
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
