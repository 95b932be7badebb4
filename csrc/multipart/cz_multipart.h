/*
 * cz_multipart — a streaming multipart/form-data parser (RFC 7578, with the
 * framing of RFC 2046 5.1.1).
 *
 * This header is the whole contract of csrc/multipart/. Transport-free:
 * bytes in, split anywhere, events out, one at a time.
 *
 *   cz_multipart_boundary()  the boundary parameter of a Content-Type value
 *   cz_multipart_t           the parser of one request body
 *
 * Framing. The body is a preamble (skipped, bounded), then parts, each
 * introduced by a delimiter line "--" boundary transport-padding CRLF, and a
 * close delimiter "--" boundary "--"; after it the epilogue is ignored. Inside
 * the body a delimiter is always CRLF "--" boundary: that CRLF belongs to the
 * delimiter, not to the part's data. Once CRLF "--" boundary has been seen it
 * is a delimiter; what follows must be "--" (close) or LWSP* CRLF (padding:
 * spaces and tabs), anything else is an error (RFC 2046: the boundary must not
 * occur in the data, so a clash means a broken body, not data).
 * Text that looks like a delimiter but is not one ("--boundary" without the
 * CRLF before it, "\r\n--bound" cut short) is data.
 *
 * Part headers. Field lines end in CRLF; a bare LF, a bare CR, a control
 * character other than HTAB, a folded line (obs-fold), a line without ':' or
 * with whitespace before it, an empty field name are errors [400], as in
 * python-multipart, which also requires CRLF. Names are matched without case.
 * Every part needs exactly one Content-Disposition of type "form-data" with a
 * `name` parameter; at most one Content-Type. Parameters are tokens or
 * quoted-strings (backslash escapes undone); OWS around ';' and '=' is
 * allowed. `filename*` (RFC 8187: UTF-8 or ISO-8859-1, percent-encoded) is
 * decoded to UTF-8 and, when present, is what `filename` reports; the raw
 * `filename` parameter is kept in `filename_plain`. Filenames are returned as
 * sent (no path stripping, no %22 decoding): sanitizing is the application's.
 *
 * Errors. Every error is final: the parser stays in CZ_MULTIPART_ERROR, with
 * cz_multipart_status() 400 (malformed, or past a form's own limits: the
 * files, fields and field size a form may have, as Starlette answers them),
 * 413 (a size limit) or 500 (out of memory) and a static reason naming the
 * problem, "multipart: ..." (docs/multipart.md lists them). Nothing after an error is parsed.
 *
 * Memory. One buffer per parser for the header section of the current part
 * (purpose CZ_MEM_REQUEST, grown on demand, at most 2 * max_header_bytes: the
 * raw lines, then the decoded parameter values) and one array of header views
 * (at most max_headers). Both are kept from part to part and freed by
 * cz_multipart_destroy(). Part data is never copied: PART_DATA views point
 * into the caller's input, or into the parser's copy of the delimiter for
 * bytes held back across feeds (held bytes are always a prefix of
 * CRLF "--" boundary, so at most boundary length + 4 of them).
 *
 * Threads. No global state; one parser per body, not thread-safe by itself.
 */
#ifndef CZ_MULTIPART_H
#define CZ_MULTIPART_H

#include <stddef.h>
#include <stdint.h>

#include "cz_memory.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A view of bytes owned by someone else; never NUL-terminated. `base` is
 * never NULL in anything this module hands out (empty views point at ""). */
typedef struct {
    const char *base;
    size_t len;
} cz_multipart_str_t;

/* RFC 2046: 1..70 characters. */
#define CZ_MULTIPART_BOUNDARY_MAX 70u
/* Bytes held back at most: CRLF "--" boundary. */
#define CZ_MULTIPART_HOLD_MAX (CZ_MULTIPART_BOUNDARY_MAX + 4u)

/*
 * Extract the boundary from a Content-Type field value, e.g.
 * `multipart/form-data; boundary="----x"`. The media type must be
 * multipart/form-data (case-insensitive), parameters are `;`-separated
 * token=token or token=quoted-string with OWS around `;` and `=`; exactly one
 * `boundary` parameter; its value 1..70 characters of RFC 2046 bchars
 * (DIGIT ALPHA ' ( ) + _ , - . / : = ? and space), not ending in a space.
 * On success copies it to `out` (not NUL-terminated), sets *out_len and
 * returns 0. Otherwise returns the status to answer, 415 when the media type
 * is not multipart/form-data and 400 for everything else, and sets *reason
 * (static) when `reason` is not NULL. Never allocates.
 */
int cz_multipart_boundary(const char *content_type, size_t len, char out[CZ_MULTIPART_BOUNDARY_MAX], size_t *out_len,
                          const char **reason);

/*
 * Limits of one parser. Zero in a field means "use the default"; for the
 * unbounded ones pass SIZE_MAX to say so explicitly (0 means the default,
 * which is unbounded anyway).
 */
typedef struct {
    size_t max_parts;        /* parts in the body (default 1000, or
                                max_files + max_fields + 1 when both
                                are set)                                -> 413 */
    size_t max_header_bytes; /* one part's header section, its field
                                lines with their CRLFs and the blank
                                line                                    -> 413;
                                also the preamble and the transport
                                padding after a boundary                -> 400 */
    size_t max_headers;      /* field lines of one part                 -> 413 */
    size_t max_field_size;   /* data of a part without filename         -> 400 */
    size_t max_file_size;    /* data of a part with filename (or
                                filename*); default unbounded           -> 413 */
    size_t max_total;        /* bytes fed in all (epilogue included);
                                default unbounded: the HTTP layer's
                                max_body usually bounds it              -> 413 */
    size_t max_files;        /* parts with filename; default unbounded  -> 400 */
    size_t max_fields;       /* parts without; default unbounded        -> 400 */
} cz_multipart_limits_t;

#define CZ_MULTIPART_DEFAULT_MAX_PARTS        1000u
#define CZ_MULTIPART_DEFAULT_MAX_HEADER_BYTES (16u * 1024u)
#define CZ_MULTIPART_DEFAULT_MAX_HEADERS      32u
#define CZ_MULTIPART_DEFAULT_MAX_FIELD_SIZE   (1024u * 1024u)
#define CZ_MULTIPART_DEFAULT_MAX_FILE_SIZE    SIZE_MAX
#define CZ_MULTIPART_DEFAULT_MAX_TOTAL        SIZE_MAX
#define CZ_MULTIPART_DEFAULT_MAX_FILES        SIZE_MAX
#define CZ_MULTIPART_DEFAULT_MAX_FIELDS       SIZE_MAX

/* Fill `l` with the defaults above. */
void cz_multipart_limits_default(cz_multipart_limits_t *l);

typedef struct {
    cz_multipart_str_t name;  /* as sent (case kept) */
    cz_multipart_str_t value; /* leading and trailing OWS removed */
} cz_multipart_header_t;

/*
 * The part of the last CZ_MULTIPART_PART_BEGIN. Every view points into the
 * parser's header buffer (or to "") and stays valid through the part's
 * PART_DATA and PART_END events, until the next part's header bytes are
 * fed (the feed after PART_END may begin them), cz_multipart_reset() or
 * _destroy(). Copy what must outlive the part by the time of PART_END.
 * Once the next part's headers begin, cz_multipart_part() shows an empty
 * part (views of ""), never stale memory.
 */
typedef struct {
    cz_multipart_str_t name;              /* `name`, escapes undone; may be
                                             empty ("name=\"\""), never absent */
    cz_multipart_str_t filename;          /* decoded filename* when present,
                                             else filename; valid only when
                                             has_filename */
    cz_multipart_str_t filename_plain;    /* the `filename` parameter, escapes
                                             undone ("" when absent) */
    cz_multipart_str_t content_type;      /* Content-Type value, "" when none */
    const cz_multipart_header_t *headers; /* every field line, in order */
    size_t num_headers;
    uint8_t has_filename;       /* filename or filename* present
                                   (even empty: a file input with no
                                   file chosen sends filename="") */
    uint8_t has_filename_plain; /* the `filename` parameter present */
    uint8_t has_filename_star;  /* the `filename*` parameter present */
} cz_multipart_part_t;

typedef enum {
    /* All `len` bytes consumed (some may be held back): feed more, or call
     * cz_multipart_finish() when the body has ended. */
    CZ_MULTIPART_NEED_MORE = 0,
    /* A part's headers are complete: cz_multipart_part(). */
    CZ_MULTIPART_PART_BEGIN,
    /* Data of the current part: cz_multipart_data(). The view points into
     * the `data` just fed (valid as long as the caller keeps those bytes)
     * or into the parser (valid until the next feed). Never empty. */
    CZ_MULTIPART_PART_DATA,
    /* The current part is complete (its delimiter was seen). */
    CZ_MULTIPART_PART_END,
    /* The close delimiter was seen; the rest (epilogue) is ignored: later
     * feeds consume everything and return DONE again. */
    CZ_MULTIPART_DONE,
    /* Malformed or over a limit: cz_multipart_status()/_reason(). Final. */
    CZ_MULTIPART_ERROR
} cz_multipart_event_t;

/* The parser of one body. Embed it or allocate it; fields are private. */
typedef struct cz_multipart {
    cz_allocator_t *alloc;
    cz_multipart_limits_t limits;

    char delim[CZ_MULTIPART_HOLD_MAX]; /* CRLF "--" boundary */
    size_t dlen;
    size_t matched; /* bytes of delim matched (held back) so far */

    char *hbuf; /* the current part's header section */
    size_t hlen, hcap;
    size_t line_start; /* start of the field line being read */
    cz_multipart_header_t *hdrs;
    size_t nhdrs, hdrs_cap;
    size_t pad; /* transport padding bytes after a boundary */

    cz_multipart_part_t part;
    cz_multipart_str_t data; /* of the last PART_DATA */
    uint64_t part_size;      /* data bytes of the current part */
    size_t part_limit;       /* its bound (field or file size) */
    size_t parts;            /* parts begun */
    size_t files, fields;    /* of them, with and without filename */
    uint64_t total;          /* bytes consumed */

    int status;         /* error status, 0 while fine */
    const char *reason; /* static, NULL while fine */
    uint8_t state;      /* private */
} cz_multipart_t;

/*
 * Set up `p` for a body with this boundary (as cz_multipart_boundary() gives
 * it: 1..CZ_MULTIPART_BOUNDARY_MAX bytes; the caller must have validated it).
 * `limits` NULL means defaults, zero fields their default. Takes no memory
 * yet. Returns 0, or -1 when boundary_len is out of range.
 */
int cz_multipart_init(cz_multipart_t *p, cz_allocator_t *a, const char *boundary, size_t boundary_len,
                      const cz_multipart_limits_t *limits);

/* Start over for another body with the same boundary and limits (buffers
 * kept). */
void cz_multipart_reset(cz_multipart_t *p);

/* Free what `p` holds. It may be init'ed again afterwards. */
void cz_multipart_destroy(cz_multipart_t *p);

/*
 * Parse `data[0..len)`, the next bytes of the body, split anywhere. Stops at
 * the first event; *consumed tells how many bytes were used: feed
 * data + *consumed next (those bytes are not copied). A PART_DATA view into
 * `data` lies within data[0..*consumed). NEED_MORE consumes everything.
 */
cz_multipart_event_t cz_multipart_feed(cz_multipart_t *p, const char *data, size_t len, size_t *consumed);

/*
 * The body has ended (no more bytes will come). Returns DONE when the close
 * delimiter was seen, else ERROR (400: truncated in the preamble, headers or
 * data; the reason says where), or the ERROR already reported.
 */
cz_multipart_event_t cz_multipart_finish(cz_multipart_t *p);

/* The part of the last PART_BEGIN (see cz_multipart_part_t for lifetimes). */
const cz_multipart_part_t *cz_multipart_part(const cz_multipart_t *p);

/* The bytes of the last PART_DATA. */
cz_multipart_str_t cz_multipart_data(const cz_multipart_t *p);

/* Bytes held back now (a possible delimiter start), <= boundary length + 4.
 * For tests and the fuzz harness. */
size_t cz_multipart_held(const cz_multipart_t *p);

/* After ERROR: 400, 413 or 500 and a static reason; 0 / NULL before. */
int cz_multipart_status(const cz_multipart_t *p);
const char *cz_multipart_reason(const cz_multipart_t *p);

#ifdef __cplusplus
}
#endif

#endif /* CZ_MULTIPART_H */
