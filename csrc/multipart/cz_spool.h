/*
 * cz_spool — a multipart/form-data body taken as it arrives and kept as its
 * parts: fields in memory, files in memory up to a threshold and then in an
 * anonymous temporary file, so an upload of any size costs the server a
 * bounded amount of memory.
 *
 * This header is its whole contract. Transport-free: body bytes in (split
 * anywhere), parts out once the body is complete; the parsing is
 * cz_multipart's (its limits and errors apply unchanged).
 *
 * Files. A part with a filename keeps up to `memory_max` bytes in memory;
 * the first byte past it moves the part to a temporary file in `tmpdir`,
 * opened with O_TMPFILE (no name, gone once its descriptor closes, even if
 * the process dies) or, where that is not supported, created with mkstemp()
 * and unlinked at once. Writes go straight to the file (the kernel's page
 * cache), so the part's memory is given back as soon as it spills.
 *
 * Errors. Every error is final and returned as an HTTP status with a static
 * reason: cz_multipart's 400/413/500, 500 "multipart: cannot write a
 * temporary file" when the disk refuses (ENOSPC, EIO; errno is kept in
 * `error`). Nothing is left on disk after an error: the files are unnamed.
 *
 * Ownership and lifetimes. Parts (and their files) belong to the spool until
 * cz_spool_destroy(), except a file descriptor taken with
 * cz_spool_take_fd(), which then belongs to the caller. Part views point into
 * the part's own block and live as long as the spool.
 *
 * Memory: part records, field and in-memory file data from the allocator
 * (CZ_MEM_REQUEST). Threads: one spool per body, not thread-safe by itself.
 */
#ifndef CZ_SPOOL_H
#define CZ_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "cz_memory.h"
#include "cz_multipart.h"

/* Starlette's SpooledTemporaryFile threshold. */
#define CZ_SPOOL_DEFAULT_MEMORY_MAX (1024u * 1024u)

typedef struct cz_spool_part {
    cz_multipart_str_t name;
    cz_multipart_str_t filename; /* valid when has_filename */
    cz_multipart_str_t content_type;
    const cz_multipart_header_t *headers;
    size_t num_headers;
    uint8_t has_filename;
    /* The data: in memory (data, len), or in the file `fd` (len bytes from
     * offset 0) once it spilled. */
    char *data;
    uint64_t len;
    size_t cap;
    int fd; /* -1: in memory */
    struct cz_spool_part *next;
} cz_spool_part_t;

typedef struct {
    cz_allocator_t *alloc;
    cz_multipart_t mp;
    size_t memory_max;
    const char *tmpdir; /* borrowed: must outlive the spool */
    cz_spool_part_t *head, *tail;
    cz_spool_part_t *cur; /* the part being received */
    int status;           /* 0 while fine */
    const char *reason;   /* static */
    int error;            /* errno of a failed file operation */
    uint8_t done;         /* the close delimiter was seen */
} cz_spool_t;

/*
 * Set up `s` for a body of this Content-Type (must be multipart/form-data
 * with a valid boundary). `limits` NULL: cz_multipart's defaults;
 * `memory_max` 0: CZ_SPOOL_DEFAULT_MEMORY_MAX; `tmpdir` NULL: "/tmp".
 * Returns 0, or the status to answer (415 not multipart/form-data, 400 bad
 * boundary) with *reason set; `s` needs cz_spool_destroy() either way.
 */
int cz_spool_init(cz_spool_t *s, cz_allocator_t *a, const char *content_type, size_t ct_len,
                  const cz_multipart_limits_t *limits, size_t memory_max, const char *tmpdir, const char **reason);

/* The next bytes of the body. 0, or the (final) error status. */
int cz_spool_feed(cz_spool_t *s, const char *data, size_t len);

/* The body ended. 0 when it was complete (close delimiter seen), else the
 * error status (400 truncated, or the earlier error). */
int cz_spool_finish(cz_spool_t *s);

/* The complete parts, in order (after cz_spool_finish() returned 0). */
const cz_spool_part_t *cz_spool_parts(const cz_spool_t *s);

/* The caller takes the part's file descriptor (-1 when in memory). */
int cz_spool_take_fd(cz_spool_part_t *p);

/* The status and reason of the error, 0 / NULL while fine. */
int cz_spool_status(const cz_spool_t *s);
const char *cz_spool_reason(const cz_spool_t *s);

/* Free every part, close every file not taken. */
void cz_spool_destroy(cz_spool_t *s);

#endif /* CZ_SPOOL_H */
