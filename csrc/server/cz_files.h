/*
 * cz_files — answering a connection with a file, and serving a directory of
 * static files, without Python.
 *
 *   cz_files_respond()  an open file as the answer to the connection's
 *                       request: ETag and Last-Modified from its status,
 *                       conditional requests and a byte range (cz_cond.h),
 *                       the body sent from the file by the transport
 *                       (cz_conn_respond_file: sendfile). FileResponse's way.
 *   cz_static_*         a directory mounted under a URL prefix: the rest of
 *                       the request path is decoded, checked and opened
 *                       beneath the directory, then answered as above.
 *
 * Path safety (cz_static_serve): the path is percent-decoded once; a NUL, a
 * backslash, a "." or ".." segment, or more than CZ_STATIC_PATH_MAX bytes
 * answer 404. On Linux the file is opened with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_MAGICLINKS) relative to the directory, so no symlink or race
 * leads outside it; elsewhere (or when openat2 is refused) the real path is
 * resolved and must lie in the directory. With CZ_STATIC_FOLLOW_SYMLINKS,
 * symlinks may point anywhere (Starlette's follow_symlink=True).
 *
 * Answers of cz_static_serve: GET and HEAD only (405 otherwise); a regular
 * file as cz_files_respond does; a directory with CZ_STATIC_HTML: its
 * index.html (a 307 to the path with a trailing slash first, so relative
 * links work); nothing found: 404, or with CZ_STATIC_HTML the directory's
 * 404.html with status 404. With CZ_STATIC_PRECOMPRESSED, for text,
 * JavaScript, JSON, XML (SVG) and WebAssembly files, "<file>.br" or
 * "<file>.gz" is sent instead when it exists and the request's
 * Accept-Encoding takes it, with Content-Encoding and "Vary:
 * Accept-Encoding" (Vary also on the plain file when a variant exists).
 * Content-Type comes from the file name's extension through the table
 * given with cz_static_add_type() ("application/octet-stream" otherwise;
 * text types get "; charset=utf-8").
 *
 * Memory: the static directory, its type table and its cache of small
 * files use CZ_MEM_STATIC; nothing else is allocated per request (paths are
 * decoded on the stack). Threads: one cz_static_t serves the connections
 * of one loop (its cache changes as it serves); create and destroy it
 * outside the loop.
 */
#ifndef CZ_FILES_H
#define CZ_FILES_H

#include <sys/stat.h>

#include "cz_conn.h"
#include "cz_http.h"
#include "cz_memory.h"

/* Answer the connection's current request (BUSY) with open file `fd`, whose
 * status is *st, and `head`'s status and headers (Content-Type among them).
 * The connection owns `fd` from this call on. With status 200 the request's
 * conditions and Range apply. Returns cz_conn_respond*'s result. */
int cz_files_respond(cz_conn_t *c, const cz_http_response_t *head, int fd, const struct stat *st);

#define CZ_STATIC_PATH_MAX 1024u /* decoded bytes of a request path under the mount */

enum {
    CZ_STATIC_HTML = 1,            /* index.html for directories, 404.html */
    CZ_STATIC_FOLLOW_SYMLINKS = 2, /* symlinks may leave the directory */
    CZ_STATIC_PRECOMPRESSED = 4    /* .br / .gz variants */
};

typedef struct cz_static cz_static_t;

/* A directory to serve. NULL with a message in `err` when it cannot be
 * opened (it is opened once, here). */
cz_static_t *cz_static_create(cz_allocator_t *a, const char *directory, unsigned flags, char *err, size_t errlen);
void cz_static_destroy(cz_static_t *s);

/* Map an extension (without the dot, any case, e.g. "css") to a media type.
 * 0, or -1 when out of memory or the text is not a valid field value. */
int cz_static_add_type(cz_static_t *s, const char *ext, const char *type);

/* Keep up to `max_entries` files of at most `max_file` bytes, `max_bytes`
 * in all, in memory (CZ_MEM_STATIC): the least recently served go first. A
 * cached file is checked against the name's status on every request
 * (device, inode, size, mtime: fstatat, no open) and read again when it
 * changed; files with precompressed variants are not cached. Any zero turns
 * the cache off (the default). 0, or -1 when out of memory (cache off). */
int cz_static_set_cache(cz_static_t *s, size_t max_entries, size_t max_file, size_t max_bytes);

/* Answer the connection's request (BUSY) for `path`, the raw (still
 * percent-encoded) rest of the URL path under the mount, without a leading
 * slash; "" is the directory itself. Not reentrant (the cache). */
void cz_static_serve(cz_static_t *s, cz_conn_t *c, const cz_http_request_t *req, cz_http_str_t path);

#endif /* CZ_FILES_H */
