/*
 * The C unit tests' checks: CHECK(e) counts a pass or prints the failing
 * expression with its place; CHECKC(e, ctx) adds a context text (a table
 * row, say). check_summary() prints "N passed, M failed" as the last line
 * and returns the exit status (non-zero when anything failed).
 */
#ifndef CZ_TEST_CHECK_H
#define CZ_TEST_CHECK_H

#include <stdio.h>

static int g_pass, g_fail;

#define CHECK(e)       check_((e) != 0, __FILE__, __LINE__, #e, NULL)
#define CHECKC(e, ctx) check_((e) != 0, __FILE__, __LINE__, #e, (ctx))

static inline void check_(int ok, const char *file, int line, const char *expr, const char *ctx) {
    if (ok) {
        g_pass++;
        return;
    }
    g_fail++;
    fprintf(stderr, "%s:%d: CHECK failed: %s%s%s\n", file, line, expr, ctx ? "  -- " : "", ctx ? ctx : "");
}

static inline int check_summary(void) {
    printf("%d passed, %d failed\n", g_pass, g_fail);
    return g_fail != 0;
}

#endif /* CZ_TEST_CHECK_H */
