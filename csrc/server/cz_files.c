/* cz_files — see cz_files.h for the contract. */
#define _GNU_SOURCE
#include "cz_files.h"

#include "cz_cond.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/openat2.h>
#include <sys/syscall.h>
#endif

#define LIT(s)        (s), (sizeof(s) - 1)
#define EXTRA_HEADERS 6 /* ETag, Last-Modified, Accept-Ranges, Content-Range, Content-Encoding, Vary */
#define STACK_HEADERS 24

/* ---- one open file as the answer --------------------------------------------------------------- */

static const cz_http_header_t *find_header(const cz_http_header_t *hs, size_t n, const char *lower, size_t len) {
    for (size_t i = 0; i < n; i++)
        if (cz_http_ieq(hs[i].name, lower, len)) return &hs[i];
    return NULL;
}

/* The answer for a file whose body is `fd`, or `bytes` (all st_size of them,
 * fd -1) when it is held in memory. */
static int respond_with(cz_conn_t *c, const cz_http_response_t *head, int fd, const char *bytes,
                        const struct stat *st) {
    char etag[64], range[80];
    cz_http_date_t modified;
    cz_http_date_init(&modified, st->st_mtime);
#ifdef __APPLE__
    int64_t mtime_ns = (int64_t)st->st_mtimespec.tv_sec * 1000000000 + st->st_mtimespec.tv_nsec;
#else
    int64_t mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
#endif
    /* The file's modification time and size: a new version, a new tag. */
    int elen = snprintf(etag, sizeof(etag), "\"%" PRIx64 "-%" PRIx64 "\"", (uint64_t)mtime_ns, (uint64_t)st->st_size);
    const cz_http_header_t *user_etag = find_header(head->headers, head->num_headers, LIT("etag"));
    cz_cond_file_t f = {(uint64_t)st->st_size, (int64_t)st->st_mtime,
                        user_etag ? user_etag->value : (cz_http_str_t){etag, (size_t)elen}};
    cz_cond_answer_t ans = {200, 0, (uint64_t)st->st_size};
    const cz_http_request_t *req = cz_conn_request(c);
    if (head->status == 200 && req) cz_cond_decide(req, &f, &ans);

    size_t cap = head->num_headers + EXTRA_HEADERS;
    cz_http_header_t stack[STACK_HEADERS], *hs = stack;
    cz_allocator_t *alloc = c->env->alloc;
    if (cap > STACK_HEADERS && !(hs = cz_malloc(alloc, CZ_MEM_RESPONSE, cap * sizeof(*hs)))) {
        if (fd >= 0) close(fd);
        return cz_conn_respond_error(c, 500, NULL);
    }
    size_t n = 0;
    for (size_t i = 0; i < head->num_headers; i++) {
        const cz_http_header_t *h = &head->headers[i];
        /* 304 describes the file without carrying it; 416 is an error body */
        int about_body = cz_http_ieq(h->name, LIT("content-type")) ||
                         cz_http_ieq(h->name, LIT("content-disposition")) ||
                         cz_http_ieq(h->name, LIT("content-encoding"));
        if ((ans.status == 304 || ans.status == 416) && about_body) continue;
        hs[n++] = *h;
    }
    if (!user_etag) hs[n++] = (cz_http_header_t){{LIT("ETag")}, {etag, (size_t)elen}};
    if (!find_header(head->headers, head->num_headers, LIT("last-modified")))
        hs[n++] = (cz_http_header_t){{LIT("Last-Modified")}, {modified.str, CZ_HTTP_DATE_LEN}};
    if (ans.status != 304 && !find_header(head->headers, head->num_headers, LIT("accept-ranges")))
        hs[n++] = (cz_http_header_t){{LIT("Accept-Ranges")}, {LIT("bytes")}};
    if (ans.status == 206) {
        int k = snprintf(range, sizeof(range), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, ans.offset,
                         ans.offset + ans.length - 1, f.size);
        hs[n++] = (cz_http_header_t){{LIT("Content-Range")}, {range, (size_t)k}};
    } else if (ans.status == 416) {
        int k = snprintf(range, sizeof(range), "bytes */%" PRIu64, f.size);
        hs[n++] = (cz_http_header_t){{LIT("Content-Range")}, {range, (size_t)k}};
    }
    cz_http_response_t r = *head;
    r.headers = hs;
    r.num_headers = n;
    r.status = ans.status == 200 ? head->status : ans.status;
    int rc;
    if ((ans.status == 200 || ans.status == 206) && bytes) {
        r.body = (cz_http_str_t){bytes + ans.offset, (size_t)ans.length};
        rc = cz_conn_respond(c, &r);
    } else if (ans.status == 200 || ans.status == 206) {
        rc = cz_conn_respond_file(c, &r, fd, ans.offset, ans.length);
    } else {
        if (fd >= 0) close(fd);
        if (ans.status == 412) {
            rc = cz_conn_respond_error(c, 412, NULL);
        } else if (ans.status == 416) {
            static const char body[] = "{\"detail\":\"Range Not Satisfiable\"}";
            r.content_type = (cz_http_str_t){LIT("application/json")};
            r.body = (cz_http_str_t){body, sizeof(body) - 1};
            rc = cz_conn_respond(c, &r);
        } else {
            r.content_type = (cz_http_str_t){NULL, 0};
            r.body = (cz_http_str_t){"", 0};
            rc = cz_conn_respond(c, &r);
        }
    }
    if (hs != stack) cz_free(alloc, CZ_MEM_RESPONSE, hs);
    return rc;
}

int cz_files_respond(cz_conn_t *c, const cz_http_response_t *head, int fd, const struct stat *st) {
    return respond_with(c, head, fd, NULL, st);
}

/* ---- a static directory ------------------------------------------------------------------------------ */

typedef struct {
    char *ext; /* lower case */
    char *type;
} media_t;

/* A small file held in memory: its bytes and the status they were read
 * with; valid while the name still has that device, inode, size and mtime. */
typedef struct {
    uint64_t hash; /* of the name; 0: a free slot */
    char *name;    /* decoded path, NUL-terminated; the bytes follow it */
    const char *bytes;
    struct stat st;
    uint64_t used; /* the cache's clock when last served */
} cached_t;

struct cz_static {
    cz_allocator_t *alloc;
    cached_t *cache; /* max_entries slots, or NULL: no cache */
    size_t max_entries, max_file, max_bytes, cached_bytes;
    uint64_t clock;
    int dirfd;
    char *root; /* the directory's real path, for the fallback check */
    size_t root_len;
    unsigned flags;
    media_t *types; /* sorted by ext */
    size_t ntypes, cap;
};

cz_static_t *cz_static_create(cz_allocator_t *a, const char *directory, unsigned flags, char *err, size_t errlen) {
    char real[PATH_MAX];
    int fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || !realpath(directory, real)) {
        snprintf(err, errlen, "cannot open directory %s: %s", directory, strerror(errno));
        if (fd >= 0) close(fd);
        return NULL;
    }
    cz_static_t *s = cz_calloc(a, CZ_MEM_STATIC, 1, sizeof(*s));
    size_t len = strlen(real);
    char *root = s ? cz_malloc(a, CZ_MEM_STATIC, len + 1) : NULL;
    if (!root) {
        cz_free(a, CZ_MEM_STATIC, s);
        close(fd);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    memcpy(root, real, len + 1);
    s->alloc = a;
    s->dirfd = fd;
    s->root = root;
    s->root_len = len;
    s->flags = flags;
    return s;
}

void cz_static_destroy(cz_static_t *s) {
    if (!s) return;
    for (size_t i = 0; s->cache && i < s->max_entries; i++) cz_free(s->alloc, CZ_MEM_STATIC, s->cache[i].name);
    cz_free(s->alloc, CZ_MEM_STATIC, s->cache);
    for (size_t i = 0; i < s->ntypes; i++) cz_free(s->alloc, CZ_MEM_STATIC, s->types[i].ext);
    cz_free(s->alloc, CZ_MEM_STATIC, s->types);
    cz_free(s->alloc, CZ_MEM_STATIC, s->root);
    close(s->dirfd);
    cz_free(s->alloc, CZ_MEM_STATIC, s);
}

int cz_static_set_cache(cz_static_t *s, size_t max_entries, size_t max_file, size_t max_bytes) {
    for (size_t i = 0; s->cache && i < s->max_entries; i++) cz_free(s->alloc, CZ_MEM_STATIC, s->cache[i].name);
    cz_free(s->alloc, CZ_MEM_STATIC, s->cache);
    s->cache = NULL;
    s->cached_bytes = 0;
    s->max_entries = s->max_file = s->max_bytes = 0;
    if (!max_entries || !max_file || !max_bytes) return 0;
    if (!(s->cache = cz_calloc(s->alloc, CZ_MEM_STATIC, max_entries, sizeof(*s->cache)))) return -1;
    s->max_entries = max_entries;
    s->max_file = max_file;
    s->max_bytes = max_bytes;
    return 0;
}

static uint64_t name_hash(const char *name) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a, never 0 below */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) h = (h ^ *p) * 1099511628211ULL;
    return h | 1;
}

static void cache_drop(cz_static_t *s, cached_t *e) {
    s->cached_bytes -= (size_t)e->st.st_size;
    cz_free(s->alloc, CZ_MEM_STATIC, e->name);
    memset(e, 0, sizeof(*e));
}

static int same_file(const struct stat *a, const struct stat *b) {
#ifdef __APPLE__
    int same_time =
        a->st_mtimespec.tv_sec == b->st_mtimespec.tv_sec && a->st_mtimespec.tv_nsec == b->st_mtimespec.tv_nsec;
#else
    int same_time = a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
#endif
    return same_time && a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size;
}

/* The cached file `name`, still the same on disk, or NULL (a stale entry is dropped). */
static cached_t *cache_find(cz_static_t *s, const char *name) {
    uint64_t h = name_hash(name);
    for (size_t i = 0; i < s->max_entries; i++) {
        cached_t *e = &s->cache[i];
        if (e->hash != h || strcmp(e->name, name) != 0) continue;
        struct stat now;
        /* The entry was filled through a safe open: a name that now leads
         * elsewhere (another inode) or a changed file misses. */
        if (fstatat(s->dirfd, name[0] ? name : ".", &now, 0) != 0 || !same_file(&now, &e->st)) {
            cache_drop(s, e);
            return NULL;
        }
        e->used = ++s->clock;
        return e;
    }
    return NULL;
}

/* Keep a small file's bytes (read from `fd`, which stays open). */
static void cache_fill(cz_static_t *s, const char *name, int fd, const struct stat *st) {
    size_t size = (size_t)st->st_size, nlen = strlen(name);
    if (size > s->max_file || size > s->max_bytes) return;
    cached_t *slot = NULL;
    while (s->cached_bytes + size > s->max_bytes || !slot) {
        cached_t *oldest = NULL;
        slot = NULL;
        for (size_t i = 0; i < s->max_entries; i++) {
            cached_t *e = &s->cache[i];
            if (!e->hash) slot = slot ? slot : e;
            else if (!oldest || e->used < oldest->used) oldest = e;
        }
        if (slot && s->cached_bytes + size <= s->max_bytes) break;
        if (!oldest) return;
        cache_drop(s, oldest); /* least recently served first */
    }
    char *block = cz_malloc(s->alloc, CZ_MEM_STATIC, nlen + 1 + size);
    if (!block) return;
    memcpy(block, name, nlen + 1);
    if (pread(fd, block + nlen + 1, size, 0) != (ssize_t)size) { /* changed meanwhile: not kept */
        cz_free(s->alloc, CZ_MEM_STATIC, block);
        return;
    }
    *slot = (cached_t){name_hash(name), block, block + nlen + 1, *st, ++s->clock};
    s->cached_bytes += size;
}

static int media_cmp(const void *a, const void *b) {
    return strcmp(((const media_t *)a)->ext, ((const media_t *)b)->ext);
}

int cz_static_add_type(cz_static_t *s, const char *ext, const char *type) {
    size_t el = strlen(ext), tl = strlen(type);
    if (el == 0 || el > 32 || tl == 0 || tl > 120) return -1;
    for (size_t i = 0; i < tl; i++) /* it becomes a header value */
        if ((unsigned char)type[i] < 0x20 || type[i] == 0x7f) return -1;
    if (s->ntypes == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        media_t *nt = s->types ? cz_realloc(s->alloc, CZ_MEM_STATIC, s->types, cap * sizeof(*nt))
                               : cz_malloc(s->alloc, CZ_MEM_STATIC, cap * sizeof(*nt));
        if (!nt) return -1;
        s->types = nt;
        s->cap = cap;
    }
    /* one block: "ext\0type\0" */
    char *block = cz_malloc(s->alloc, CZ_MEM_STATIC, el + tl + 2);
    if (!block) return -1;
    for (size_t i = 0; i < el; i++) block[i] = (char)(ext[i] >= 'A' && ext[i] <= 'Z' ? ext[i] + 32 : ext[i]);
    block[el] = '\0';
    memcpy(block + el + 1, type, tl + 1);
    /* kept sorted for bsearch; a repeated extension takes the newer type */
    size_t lo = 0, hi = s->ntypes;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(s->types[mid].ext, block) < 0) lo = mid + 1;
        else hi = mid;
    }
    if (lo < s->ntypes && strcmp(s->types[lo].ext, block) == 0) {
        cz_free(s->alloc, CZ_MEM_STATIC, s->types[lo].ext);
    } else {
        memmove(s->types + lo + 1, s->types + lo, (s->ntypes - lo) * sizeof(*s->types));
        s->ntypes++;
    }
    s->types[lo] = (media_t){block, block + el + 1};
    return 0;
}

static const char *media_type_of(const cz_static_t *s, const char *name) {
    const char *dot = strrchr(name, '.'), *slash = strrchr(name, '/');
    if (!dot || (slash && dot < slash) || !dot[1] || strlen(dot + 1) > 32) return "application/octet-stream";
    char ext[33];
    size_t i = 0;
    for (const char *p = dot + 1; *p; p++) ext[i++] = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    ext[i] = '\0';
    media_t key = {ext, NULL};
    const media_t *m = s->ntypes ? bsearch(&key, s->types, s->ntypes, sizeof(*s->types), media_cmp) : NULL;
    return m ? m->type : "application/octet-stream";
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decode `path` into `out` (NUL-terminated, relative, segments
 * joined by single slashes). -1 for anything that could leave the directory
 * or name something odd: NUL, backslash, "." or "..", too long. */
static int decode_path(cz_http_str_t path, char *out, size_t cap) {
    size_t n = 0, seg = 0;
    for (size_t i = 0; i <= path.len; i++) {
        char ch;
        if (i == path.len) {
            ch = '/';
        } else if (path.base[i] == '%') {
            if (i + 2 >= path.len) return -1;
            int hi = hexval(path.base[i + 1]), lo = hexval(path.base[i + 2]);
            if (hi < 0 || lo < 0) return -1;
            ch = (char)(hi << 4 | lo);
            i += 2;
        } else {
            ch = path.base[i];
        }
        if (ch == '\0' || ch == '\\') return -1;
        if (ch != '/') {
            if (n + 1 >= cap) return -1;
            out[n++] = ch;
            continue;
        }
        /* a segment ends at out[seg..n) */
        size_t len = n - seg;
        if (len == 0) continue; /* empty segments ("a//b", a leading slash) are dropped */
        if ((len == 1 && out[seg] == '.') || (len == 2 && out[seg] == '.' && out[seg + 1] == '.')) return -1;
        if (n + 1 >= cap) return -1;
        out[n++] = '/';
        seg = n;
    }
    if (n && out[n - 1] == '/') n--;
    out[n] = '\0';
    return (int)n;
}

/* Open `rel` beneath the directory (see the header). -1 with errno. */
static int open_beneath(const cz_static_t *s, const char *rel, int flags) {
    if (rel[0] == '\0') rel = ".";
    if (s->flags & CZ_STATIC_FOLLOW_SYMLINKS) return openat(s->dirfd, rel, flags | O_CLOEXEC);
#if defined(__linux__) && defined(SYS_openat2)
    struct open_how how;
    memset(&how, 0, sizeof(how));
    how.flags = (uint64_t)(flags | O_CLOEXEC);
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    int fd = (int)syscall(SYS_openat2, s->dirfd, rel, &how, sizeof(how));
    if (fd >= 0 || (errno != ENOSYS && errno != EPERM)) return fd;
#endif
    /* No openat2: the real path must lie in the directory. */
    char joined[PATH_MAX], real[PATH_MAX];
    if ((size_t)snprintf(joined, sizeof(joined), "%s/%s", s->root, rel) >= sizeof(joined) || !realpath(joined, real))
        return -1;
    if (strncmp(real, s->root, s->root_len) != 0 || (real[s->root_len] != '/' && real[s->root_len] != '\0')) {
        errno = EXDEV;
        return -1;
    }
    return open(real, flags | O_CLOEXEC);
}

/* Is `coding` acceptable to the request (Accept-Encoding, q > 0)? */
static int accepts(const cz_http_request_t *req, const char *coding, size_t clen) {
    int star = 0;
    for (size_t h = 0; h < req->num_headers; h++) {
        if (!cz_http_ieq(req->headers[h].name, LIT("accept-encoding"))) continue;
        cz_http_str_t v = req->headers[h].value;
        size_t i = 0;
        while (i < v.len) {
            while (i < v.len && (v.base[i] == ' ' || v.base[i] == ',' || v.base[i] == '\t')) i++;
            size_t t0 = i;
            while (i < v.len && v.base[i] != ',' && v.base[i] != ';' && v.base[i] != ' ') i++;
            cz_http_str_t tok = {v.base + t0, i - t0};
            int zero = 0;
            while (i < v.len && v.base[i] != ',') {
                /* ";q=0", ";q=0.000" refuse the coding */
                if ((v.base[i] == 'q' || v.base[i] == 'Q') && i + 1 < v.len && v.base[i + 1] == '=') {
                    size_t k = i + 2;
                    zero = k < v.len && v.base[k] == '0';
                    for (k++; zero && k < v.len && v.base[k] != ',' && v.base[k] != ' ' && v.base[k] != ';'; k++)
                        if (v.base[k] != '.' && v.base[k] != '0') zero = 0;
                }
                i++;
            }
            if (tok.len == 1 && tok.base[0] == '*') star = zero ? -1 : 1;
            else if (cz_http_ieq(tok, coding, clen)) return !zero;
        }
    }
    return star > 0;
}

static void redirect_slash(cz_conn_t *c, const cz_http_request_t *req) {
    char loc[CZ_STATIC_PATH_MAX * 3 + 16];
    size_t n = req->path.len;
    if (n + 2 + req->query.len > sizeof(loc)) {
        cz_conn_respond_error(c, 404, NULL);
        return;
    }
    memcpy(loc, req->path.base, n);
    loc[n++] = '/';
    if (req->query.len) {
        loc[n++] = '?';
        memcpy(loc + n, req->query.base, req->query.len);
        n += req->query.len;
    }
    cz_http_header_t h = {{LIT("Location")}, {loc, n}};
    cz_http_response_t r = {0};
    r.status = 307;
    r.headers = &h;
    r.num_headers = 1;
    r.body = (cz_http_str_t){"", 0};
    cz_conn_respond(c, &r);
}

/* Types worth keeping precompressed; for the rest (images, archives, ...)
 * no variant is looked for, which saves two lookups per request. */
static int compressible(const char *type) {
    return strncmp(type, "text/", 5) == 0 || strstr(type, "javascript") || strstr(type, "json") ||
           strstr(type, "xml") || strstr(type, "wasm");
}

static const struct {
    const char *coding, *suffix;
} VARIANTS[] = {{"br", ".br"}, {"gzip", ".gz"}};

/* Which precompressed variant of `rel` (`len` bytes, room for 4 more) to
 * send: its index in VARIANTS, or -1; *any is set when one exists at all. */
static int pick_variant(const cz_static_t *s, const cz_http_request_t *req, char *rel, size_t len, const char *type,
                        int *any) {
    int pick = -1;
    *any = 0;
    if (!(s->flags & CZ_STATIC_PRECOMPRESSED) || len + 4 >= CZ_STATIC_PATH_MAX || !compressible(type)) return -1;
    for (int v = 0; v < 2; v++) {
        struct stat vst;
        memcpy(rel + len, VARIANTS[v].suffix, 4);
        if (fstatat(s->dirfd, rel, &vst, 0) != 0 || !S_ISREG(vst.st_mode)) continue;
        *any = 1;
        if (pick < 0 && accepts(req, VARIANTS[v].coding, strlen(VARIANTS[v].coding))) pick = v;
    }
    rel[len] = '\0';
    return pick;
}

/* Send `rel` (`len` bytes): the file open as `fd` (st), or its cached bytes
 * (`hit`, fd -1), or the precompressed variant the request takes. */
static void send_found(cz_static_t *s, cz_conn_t *c, const cz_http_request_t *req, char *rel, size_t len, int fd,
                       struct stat *st, const cached_t *hit, int status) {
    const char *type = media_type_of(s, rel);
    char ctype[160];
    int k = snprintf(ctype, sizeof(ctype), "%s%s", type,
                     strncmp(type, "text/", 5) == 0 && !strstr(type, "charset") ? "; charset=utf-8" : "");
    cz_http_header_t hs[2];
    size_t nh = 0;
    int any = 0, pick = status == 200 ? pick_variant(s, req, rel, len, type, &any) : -1;
    if (pick >= 0) {
        struct stat vst;
        memcpy(rel + len, VARIANTS[pick].suffix, 4);
        int vfd = open_beneath(s, rel, O_RDONLY);
        rel[len] = '\0';
        if (vfd >= 0 && fstat(vfd, &vst) == 0 && S_ISREG(vst.st_mode)) {
            if (fd >= 0) close(fd);
            fd = vfd;
            *st = vst;
            hit = NULL;
            hs[nh++] =
                (cz_http_header_t){{LIT("Content-Encoding")}, {VARIANTS[pick].coding, strlen(VARIANTS[pick].coding)}};
        } else if (vfd >= 0) {
            close(vfd);
        }
    }
    if (any) hs[nh++] = (cz_http_header_t){{LIT("Vary")}, {LIT("Accept-Encoding")}};
    if (!hit && !nh && status == 200 && s->cache) cache_fill(s, rel, fd, st); /* files without variants */
    cz_http_response_t r = {0};
    r.status = status;
    r.content_type = (cz_http_str_t){ctype, (size_t)k};
    r.headers = hs;
    r.num_headers = nh;
    if (hit) {
        struct stat cst = hit->st;
        respond_with(c, &r, -1, hit->bytes, &cst);
    } else {
        cz_files_respond(c, &r, fd, st);
    }
}

/* Open `rel` (a regular file) into *fd / *st; 0 when found. */
static int open_file(const cz_static_t *s, const char *rel, int *fd, struct stat *st, int *is_dir) {
    *is_dir = 0;
    *fd = open_beneath(s, rel, O_RDONLY);
    if (*fd < 0) return -1;
    if (fstat(*fd, st) == 0 && S_ISREG(st->st_mode)) return 0;
    *is_dir = S_ISDIR(st->st_mode);
    close(*fd);
    *fd = -1;
    return -1;
}

void cz_static_serve(cz_static_t *s, cz_conn_t *c, const cz_http_request_t *req, cz_http_str_t path) {
    if (req->method_id != HTTP_GET && req->method_id != HTTP_HEAD) {
        cz_conn_respond_error(c, 405, "GET, HEAD");
        return;
    }
    char rel[CZ_STATIC_PATH_MAX + 16]; /* room for "/index.html" and ".br" */
    int len = decode_path(path, rel, CZ_STATIC_PATH_MAX);
    int fd, is_dir;
    struct stat st;
    if (len >= 0) {
        const cached_t *hit = s->cache ? cache_find(s, rel) : NULL;
        if (hit) {
            send_found(s, c, req, rel, (size_t)len, -1, &st, hit, 200);
            return;
        }
        if (open_file(s, rel, &fd, &st, &is_dir) == 0) {
            send_found(s, c, req, rel, (size_t)len, fd, &st, NULL, 200);
            return;
        }
        if (is_dir && (s->flags & CZ_STATIC_HTML)) {
            size_t n = (size_t)len;
            memcpy(rel + n, n ? "/index.html" : "index.html", n ? 12 : 11);
            n += n ? 11 : 10;
            if (open_file(s, rel, &fd, &st, &is_dir) == 0) {
                if (req->path.len && req->path.base[req->path.len - 1] != '/') {
                    close(fd);
                    redirect_slash(c, req);
                    return;
                }
                send_found(s, c, req, rel, n, fd, &st, NULL, 200);
                return;
            }
        }
    }
    if (s->flags & CZ_STATIC_HTML) {
        memcpy(rel, "404.html", 9);
        if (open_file(s, rel, &fd, &st, &is_dir) == 0) {
            send_found(s, c, req, rel, 8, fd, &st, NULL, 404);
            return;
        }
    }
    cz_conn_respond_error(c, 404, NULL);
}
