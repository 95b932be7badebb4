/* Private glue between cz_ws.c (framing) and cz_ws_deflate.c (zlib). */
#ifndef CZ_WS_INTERNAL_H
#define CZ_WS_INTERNAL_H

#include "cz_ws.h"

/* Make room for `extra` more bytes in the assembly buffer, growing it
 * geometrically (never above max_message). 0, or -1 when out of memory
 * or over the bound. */
int cz_ws__msg_reserve(cz_ws_t *ws, size_t extra);

/* Inflate `n` (unmasked) payload bytes of a compressed message into the
 * assembly buffer, validating text as it comes. 0, or the close code to
 * fail with (1002 bad data, 1007 bad UTF-8, 1009 too big, 1011 memory). */
unsigned cz_ws__inflate(cz_ws_t *ws, const uint8_t *in, size_t n);
/* The compressed message is complete (the tail was inflated). 0, or
 * 1011 when the window could not be carried over a final block. */
unsigned cz_ws__inflate_done(cz_ws_t *ws);

/* cz_ws_write() of a compressed TEXT/BINARY message. */
int cz_ws__deflate_write(cz_ws_t *ws, cz_http_buf_t *out, unsigned opcode, const void *data, size_t len);

/* Free both zlib streams. */
void cz_ws__z_destroy(cz_ws_t *ws);

#endif
