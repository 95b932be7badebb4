/* cz_metrics (per-route counts and histograms) and cz_accesslog (lines). */
#define _GNU_SOURCE
#include "cz_accesslog.h"
#include "cz_metrics.h"

#include "check.h"

#include <string.h>

static void test_metrics(cz_allocator_t *a) {
    cz_metrics_t m;
    cz_metrics_init(&m, a);
    cz_metrics_observe(&m, 0, HTTP_GET, 200, 1); /* before reserve: not counted */
    CHECK(m.answered == 0 && cz_metrics_route(&m, 0) == NULL);
    CHECK(cz_metrics_reserve(&m, 2) == 0);
    cz_metrics_observe(&m, 0, HTTP_GET, 200, 100000);          /* 0.1 ms: first bucket */
    cz_metrics_observe(&m, 0, HTTP_GET, 204, 500000);          /* on the bound: that bucket */
    cz_metrics_observe(&m, 0, HTTP_HEAD, 304, 600000);         /* second */
    cz_metrics_observe(&m, 1, HTTP_POST, 503, 20000000000ull); /* over every bound: +Inf */
    cz_metrics_observe(&m, 7, HTTP_GET, 404, 1000);            /* no such route: the last slot */
    cz_metrics_observe(&m, UINT32_MAX, HTTP_PROPFIND, 999, 1000);
    const cz_metrics_route_t *r0 = cz_metrics_route(&m, 0), *r1 = cz_metrics_route(&m, 1);
    const cz_metrics_route_t *none = cz_metrics_route(&m, 99);
    CHECK(r0->count[CZ_METRICS_GET][1] == 2 && r0->count[CZ_METRICS_HEAD][2] == 1);
    CHECK(r0->bucket[0] == 2 && r0->bucket[1] == 1 && r0->observed == 3 && r0->sum_ns == 1200000);
    CHECK(r1->count[CZ_METRICS_POST][4] == 1 && r1->bucket[CZ_METRICS_BUCKETS] == 1);
    CHECK(none->count[CZ_METRICS_GET][3] == 1 && none->count[CZ_METRICS_OTHER][4] == 1 && none->observed == 2);
    CHECK(m.answered == 6);
    /* growing keeps every figure, "no route" included */
    CHECK(cz_metrics_reserve(&m, 10) == 0);
    CHECK(cz_metrics_route(&m, 0)->observed == 3 && cz_metrics_route(&m, 10)->observed == 2);
    CHECK(cz_metrics_route(&m, 5)->observed == 0);
    cz_metrics_destroy(&m);
}

static void test_metrics_memory(cz_allocator_t *a) {
    cz_metrics_t m;
    cz_metrics_init(&m, a);
    cz_mem_tally_t t;
    cz_mem_tally_reset(&t);
    t.allocated[CZ_MEM_REQUEST] = 1000;
    t.allocated[CZ_MEM_RESPONSE] = 300;
    t.held = 200;
    t.peak = 1300;
    t.python = 70;
    cz_metrics_observe_memory(&m, 0, &t); /* before reserve: not counted */
    CHECK(cz_metrics_reserve(&m, 2) == 0);
    CHECK(cz_metrics_route(&m, 0)->mem_requests == 0);
    cz_metrics_observe_memory(&m, 0, &t);
    t.peak = 500;
    cz_metrics_observe_memory(&m, 0, &t);
    t.peak = -10; /* freed more than it made: holds nothing */
    cz_metrics_observe_memory(&m, 9, &t);
    cz_metrics_observe_memory(&m, 1, NULL); /* nothing measured: not counted */
    const cz_metrics_route_t *r0 = cz_metrics_route(&m, 0), *none = cz_metrics_route(&m, 9);
    CHECK(r0->mem_requests == 2 && r0->mem_peak == 1300);
    CHECK(r0->mem_allocated[CZ_MEM_REQUEST] == 2000 && r0->mem_allocated[CZ_MEM_RESPONSE] == 600);
    CHECK(r0->mem_allocated[CZ_MEM_TASK] == 0 && r0->mem_python == 140);
    CHECK(none->mem_requests == 1 && none->mem_peak == 0 && none->mem_allocated[CZ_MEM_REQUEST] == 1000);
    CHECK(cz_metrics_route(&m, 1)->mem_requests == 0);
    CHECK(m.answered == 0); /* memory is not a request count */
    cz_metrics_destroy(&m);
}

static cz_http_request_t request(const char *method, int method_id, const char *target) {
    cz_http_request_t r;
    memset(&r, 0, sizeof(r));
    r.method = (cz_http_str_t){method, strlen(method)};
    r.method_id = method_id;
    r.target = (cz_http_str_t){target, strlen(target)};
    r.http_major = 1;
    r.http_minor = 1;
    return r;
}

static void test_accesslog(cz_allocator_t *a) {
    cz_http_buf_t out;
    cz_http_buf_init(&out, a, 0);
    cz_accesslog_t l;
    cz_accesslog_init(&l, CZ_ACCESSLOG_COMMON);
    cz_http_request_t req = request("GET", HTTP_GET, "/a?b=\"c\\\x01");
    cz_accesslog_entry_t e = {&req, "127.0.0.1", 200, 123, 1500000, 1796072066};
    CHECK(cz_accesslog_append(&l, &out, &e) == CZ_HTTP_OK);
    e.client = NULL;
    e.bytes = 0;
    e.status = 404;
    req.http_minor = 0;
    CHECK(cz_accesslog_append(&l, &out, &e) == CZ_HTTP_OK);
    const char *want = "127.0.0.1 - - [30/Nov/2026:20:54:26 +0000] \"GET /a?b=\\x22c\\x5c\\x01 HTTP/1.1\" 200 123\n"
                       "- - - [30/Nov/2026:20:54:26 +0000] \"GET /a?b=\\x22c\\x5c\\x01 HTTP/1.0\" 404 -\n";
    CHECKC(out.len == strlen(want) && memcmp(out.data, want, out.len) == 0, out.data);
    cz_http_buf_reset(&out, 0);
    cz_accesslog_init(&l, CZ_ACCESSLOG_JSON);
    req.http_minor = 1;
    e = (cz_accesslog_entry_t){&req, "::1", 201, 7, 1234567, 1796072066};
    CHECK(cz_accesslog_append(&l, &out, &e) == CZ_HTTP_OK);
    const char *json = "{\"time\":\"2026-11-30T20:54:26Z\",\"client\":\"::1\",\"method\":\"GET\","
                       "\"path\":\"/a?b=\\\"c\\\\\\u0001\",\"http\":\"1.1\",\"status\":201,\"bytes\":7,"
                       "\"duration_ms\":1.234}\n";
    CHECKC(out.len == strlen(json) && memcmp(out.data, json, out.len) == 0, out.data);
    /* a client of bytes that are all escaped (6 each in JSON): room is
     * reserved for them (the line was written past the buffer's bound) */
    char client[80];
    memset(client, 0x01, sizeof(client) - 1);
    client[sizeof(client) - 1] = '\0';
    cz_http_request_t root = request("GET", HTTP_GET, "/");
    e = (cz_accesslog_entry_t){&root, client, 200, 1, 0, 1796072066};
    cz_http_buf_t bounded;
    cz_http_buf_init(&bounded, a, 400); /* under the JSON line (> 500 bytes) */
    int rc = cz_accesslog_append(&l, &bounded, &e);
    CHECK(rc == CZ_HTTP_E2BIG || (rc == CZ_HTTP_OK && bounded.len <= 400));
    CHECK(rc != CZ_HTTP_OK || bounded.len <= bounded.cap);
    cz_http_buf_free(&bounded);
    cz_http_buf_reset(&out, 0);
    CHECK(cz_accesslog_append(&l, &out, &e) == CZ_HTTP_OK && out.len <= out.cap);
    CHECK(out.len > 64 * 6 && memmem(out.data, out.len, "\"client\":\"\\u0001", 16) != NULL);
    /* a bounded buffer: the line does not fit, nothing is appended */
    cz_http_buf_t small;
    cz_http_buf_init(&small, a, 16);
    CHECK(cz_accesslog_append(&l, &small, &e) == CZ_HTTP_E2BIG && small.len == 0);
    cz_http_buf_free(&small);
    cz_http_buf_free(&out);
}

/* Every byte value in a target: the plain ones (printable ASCII but '"' and
 * '\\') are copied in runs, every other one is escaped, and every byte of
 * the line is ASCII (the embedder hands it on as text undecoded). */
static void test_accesslog_every_byte(cz_allocator_t *a) {
    char target[1 + 256 + 3];
    target[0] = '/';
    for (int i = 0; i < 256; i++) target[1 + i] = (char)i;
    memcpy(target + 257, "end", 3);
    cz_http_request_t req = request("GET", HTTP_GET, "/");
    req.target = (cz_http_str_t){target, sizeof(target)};
    for (int json = 0; json < 2; json++) {
        cz_http_buf_t out;
        cz_http_buf_init(&out, a, 0);
        cz_accesslog_t l;
        cz_accesslog_init(&l, json ? CZ_ACCESSLOG_JSON : CZ_ACCESSLOG_COMMON);
        cz_accesslog_entry_t e = {&req, "10.0.0.1", 200, 1, 0, 1796072066};
        CHECK(cz_accesslog_append(&l, &out, &e) == CZ_HTTP_OK);
        size_t newlines = 0;
        for (size_t i = 0; i < out.len; i++) {
            unsigned char c = (unsigned char)out.data[i];
            CHECK(c == '\n' || (c >= 0x20 && c < 0x7f));
            newlines += c == '\n';
        }
        CHECK(newlines == 1 && out.data[out.len - 1] == '\n');
        /* the plain bytes 0x20..0x7e (but '"' and '\\') in one run, as they are */
        CHECK(memmem(out.data, out.len, " !", 2) != NULL && memmem(out.data, out.len, "#$%&'()*+,-./0", 14) != NULL);
        CHECK(memmem(out.data, out.len, "XYZ[", 4) != NULL && memmem(out.data, out.len, "]^_`a", 5) != NULL);
        CHECK(memmem(out.data, out.len, "xyz{|}~", 7) != NULL);
        const char *del = json ? "~\\u007f\\u0080" : "~\\x7f\\x80";
        CHECK(memmem(out.data, out.len, del, strlen(del)) != NULL);
        const char *tail = json ? "\\u00ffend\"" : "\\xffend HTTP/1.1\"";
        CHECK(memmem(out.data, out.len, tail, strlen(tail)) != NULL);
        cz_http_buf_free(&out);
    }
}

int main(void) {
    cz_allocator_t *a = cz_allocator_create(CZ_BACKEND_MALLOC, NULL, 0);
    test_metrics(a);
    test_metrics_memory(a);
    test_accesslog(a);
    test_accesslog_every_byte(a);
    cz_memory_stats_t st;
    cz_allocator_stats(a, &st);
    CHECK(st.allocated == 0);
    cz_allocator_destroy(a);
    return check_summary();
}
