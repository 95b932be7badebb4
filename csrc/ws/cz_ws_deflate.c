/*
 * cz_ws_deflate — permessage-deflate (RFC 7692 7.2) on zlib's raw streams.
 *
 * zlib allocates through cz_memory (zalloc/zfree with the connection as
 * opaque): the inflater as CZ_MEM_REQUEST, the deflater as CZ_MEM_RESPONSE,
 * so both are accounted per app and fail like any other allocation.
 * Inflated bytes go straight into the assembly buffer, whose bound
 * (max_message) is the decompression-bomb limit; deflated bytes go straight
 * into the caller's output buffer behind the frame header.
 */
#define ZLIB_CONST
#include <limits.h>
#include <string.h>
#include <zlib.h>

#include "cz_ws.h"
#include "cz_ws_internal.h"

static voidpf zalloc_p(cz_ws_t *ws, cz_purpose_t p, uInt items, uInt size) {
    if (size && items > SIZE_MAX / size) return Z_NULL;
    return cz_malloc(ws->alloc, p, (size_t)items * size);
}
static voidpf zalloc_rx(voidpf o, uInt items, uInt size) {
    return zalloc_p(o, CZ_MEM_REQUEST, items, size);
}
static voidpf zalloc_tx(voidpf o, uInt items, uInt size) {
    return zalloc_p(o, CZ_MEM_RESPONSE, items, size);
}
static void zfree_rx(voidpf o, voidpf ptr) {
    cz_free(((cz_ws_t *)o)->alloc, CZ_MEM_REQUEST, ptr);
}
static void zfree_tx(voidpf o, voidpf ptr) {
    cz_free(((cz_ws_t *)o)->alloc, CZ_MEM_RESPONSE, ptr);
}

static void zin_end(cz_ws_t *ws) {
    z_stream *z = ws->zin;

    if (!z) return;
    inflateEnd(z);
    cz_free(ws->alloc, CZ_MEM_REQUEST, z);
    ws->zin = NULL;
}

static void zout_end(cz_ws_t *ws) {
    z_stream *z = ws->zout;

    if (!z) return;
    deflateEnd(z);
    cz_free(ws->alloc, CZ_MEM_RESPONSE, z);
    ws->zout = NULL;
}

void cz_ws__z_destroy(cz_ws_t *ws) {
    zin_end(ws);
    zout_end(ws);
}

static z_stream *zin(cz_ws_t *ws) {
    z_stream *z = ws->zin;

    if (z) return z;
    z = cz_malloc(ws->alloc, CZ_MEM_REQUEST, sizeof(*z));
    if (!z) return NULL;
    memset(z, 0, sizeof(*z));
    z->zalloc = zalloc_rx;
    z->zfree = zfree_rx;
    z->opaque = ws;
    /* Always the full 32 KiB window, whatever client_max_window_bits says.
     * zlib checks a back-reference against the bytes its window holds plus
     * the bytes this inflate() call has already written, not against
     * 2^windowBits: with a smaller window, a peer that reaches further back
     * than it promised would be read or refused depending on where its
     * bytes were split into reads (and where the assembly buffer grew).
     * With 2^15 no distance DEFLATE can encode is out of reach, so every
     * stream inflates the same however it arrives; a peer within its
     * promise (a zlib deflater asked for 8 uses 9, reaching 250 bytes
     * back) is read as before. The cost: 32 KiB instead of 2^bits. */
    if (inflateInit2(z, -15) != Z_OK) {
        cz_free(ws->alloc, CZ_MEM_REQUEST, z);
        return NULL;
    }
    ws->zin = z;
    return z;
}

static z_stream *zout(cz_ws_t *ws) {
    z_stream *z = ws->zout;
    /* zlib refuses a raw deflater with 8 bits; with 9 it never reaches more
     * than 512 - 262 = 250 bytes back (MAX_DIST), within a 256-byte window,
     * as zlib itself relies on when it turns a zlib-wrapped 8 into 9 */
    int bits = ws->pmd.tx_window_bits < 9 ? 9 : ws->pmd.tx_window_bits;

    if (z) return z;
    z = cz_malloc(ws->alloc, CZ_MEM_RESPONSE, sizeof(*z));
    if (!z) return NULL;
    memset(z, 0, sizeof(*z));
    z->zalloc = zalloc_tx;
    z->zfree = zfree_tx;
    z->opaque = ws;
    if (deflateInit2(z, ws->pmd.level, Z_DEFLATED, -bits, ws->pmd.mem_level, Z_DEFAULT_STRATEGY) != Z_OK) {
        cz_free(ws->alloc, CZ_MEM_RESPONSE, z);
        return NULL;
    }
    ws->zout = z;
    return z;
}

#define SLICE ((size_t)UINT_MAX / 2)

unsigned cz_ws__inflate(cz_ws_t *ws, const uint8_t *in, size_t n) {
    z_stream *z = zin(ws);
    size_t left = n;
    uint8_t probe;

    if (!z) return CZ_WS_CLOSE_INTERNAL;
    if (ws->zin_done) return 0; /* after a final block: the rest (the tail) is not DEFLATE */
    z->next_in = in;
    z->avail_in = 0;
    for (;;) {
        size_t room, made;
        uInt before;
        int rc, probing = 0;

        if (z->avail_in == 0 && left > 0) {
            z->avail_in = (uInt)(left < SLICE ? left : SLICE);
            left -= z->avail_in;
        }
        if (ws->msg_len == ws->msg_cap) {
            if (ws->msg_len >= ws->limits.max_message) probing = 1; /* full: any further byte is one too many */
            else if (cz_ws__msg_reserve(ws, 1) != 0) return CZ_WS_CLOSE_INTERNAL;
        }
        if (probing) {
            z->next_out = &probe;
            z->avail_out = 1;
        } else {
            room = ws->msg_cap - ws->msg_len;
            z->next_out = (Bytef *)ws->msg + ws->msg_len;
            z->avail_out = (uInt)(room < SLICE ? room : SLICE);
        }
        before = z->avail_out;
        rc = inflate(z, Z_SYNC_FLUSH);
        made = before - z->avail_out;
        if (made) {
            if (probing) return CZ_WS_CLOSE_TOO_BIG;
            if (ws->msg_op == CZ_WS_OP_TEXT && cz_ws_utf8_feed(&ws->utf8, ws->msg + ws->msg_len, made, NULL) != 0)
                return CZ_WS_CLOSE_INVALID_DATA;
            ws->msg_len += made;
        }
        if (rc == Z_STREAM_END) {
            /* a final block (BFINAL, RFC 7692 7.2.3.4): the message's data
             * ends here; the tail and anything after it are ignored */
            ws->zin_done = 1;
            break;
        }
        if (rc == Z_MEM_ERROR) return CZ_WS_CLOSE_INTERNAL;
        if (rc != Z_OK && rc != Z_BUF_ERROR) return CZ_WS_CLOSE_PROTOCOL; /* not a deflate stream */
        /* room left means all output of the input given is out */
        if (z->avail_in == 0 && left == 0 && z->avail_out > 0) break;
        if (rc == Z_BUF_ERROR && made == 0 && z->avail_in == 0 && left == 0) break;
    }
    z->next_in = NULL;
    return 0;
}

unsigned cz_ws__inflate_done(cz_ws_t *ws) {
    z_stream *z = ws->zin;
    unsigned code = 0;

    if (ws->pmd.rx_no_context_takeover) {
        zin_end(ws); /* the next message needs no history: hold no memory */
    } else if (ws->zin_done && z) {
        /* the stream ended (BFINAL) but the window is still the peer's
         * context: carry it into the next stream */
        uInt n = 0;
        Bytef *dict = cz_malloc(ws->alloc, CZ_MEM_REQUEST, (size_t)1 << 15);
        if (!dict || inflateGetDictionary(z, dict, &n) != Z_OK || inflateReset(z) != Z_OK ||
            (n && inflateSetDictionary(z, dict, n) != Z_OK)) {
            zin_end(ws);
            code = CZ_WS_CLOSE_INTERNAL;
        }
        if (dict) cz_free(ws->alloc, CZ_MEM_REQUEST, dict);
    }
    ws->zin_done = 0;
    return code;
}

static size_t header_size(size_t len) {
    return len < 126 ? 2 : len <= 0xFFFF ? 4 : 10;
}

static int buf_err(int rc) {
    return rc == CZ_HTTP_ENOMEM ? CZ_WS_ENOMEM : CZ_WS_E2BIG;
}

int cz_ws__deflate_write(cz_ws_t *ws, cz_http_buf_t *out, unsigned opcode, const void *data, size_t len) {
    static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};
    z_stream *z = len ? zout(ws) : NULL;
    size_t start = out->len, hb, produced = 0, clen, real;
    uint8_t hdr[CZ_WS_MAX_HEADER];
    uLong bound;
    int rc, err = CZ_WS_OK;

    if (len == 0) {
        /* RFC 7692 7.2.3.6: one 0x00 (with the tail, an empty stored block);
         * zlib has nothing to flush after a previous message's flush */
        rc = cz_http_buf_reserve(out, 3);
        if (rc != CZ_HTTP_OK) return buf_err(rc);
        out->data[out->len] = (char)(0xC0 | opcode); /* FIN, RSV1 */
        out->data[out->len + 1] = 1;
        out->data[out->len + 2] = 0;
        out->len += 3;
        return CZ_WS_OK;
    }
    if (!z) return CZ_WS_ENOMEM;
    if (len > SIZE_MAX / 4) return CZ_WS_E2BIG;
    /* the header goes before the payload, which deflate writes in place:
     * its size is guessed from deflate's bound and corrected (one move of
     * the compressed bytes) only when the actual size lands in another
     * length class */
    bound = deflateBound(z, (uLong)len) + 16;
    hb = header_size(bound);
    rc = cz_http_buf_reserve(out, hb + bound);
    if (rc != CZ_HTTP_OK) {
        err = buf_err(rc);
        goto fail;
    }
    {
        size_t left = len;
        z->next_in = data;
        z->avail_in = 0;
        for (;;) {
            size_t room = out->cap - start - hb - produced;
            uInt before;
            int flush;

            if (z->avail_in == 0 && left > 0) {
                z->avail_in = (uInt)(left < SLICE ? left : SLICE);
                left -= z->avail_in;
            }
            if (room == 0) {
                rc = cz_http_buf_reserve(out, hb + produced + 256 + produced / 2);
                if (rc != CZ_HTTP_OK) {
                    err = buf_err(rc);
                    goto fail;
                }
                room = out->cap - start - hb - produced;
            }
            flush = left == 0 ? Z_SYNC_FLUSH : Z_NO_FLUSH;
            z->next_out = (Bytef *)out->data + start + hb + produced;
            z->avail_out = (uInt)(room < SLICE ? room : SLICE);
            before = z->avail_out;
            rc = deflate(z, flush);
            produced += before - z->avail_out;
            if (rc != Z_OK && rc != Z_BUF_ERROR) {
                err = CZ_WS_ENOMEM; /* Z_STREAM_ERROR: the state is unusable */
                goto fail;
            }
            if (flush == Z_SYNC_FLUSH && z->avail_in == 0 && z->avail_out > 0) break; /* flushed completely */
        }
        z->next_in = NULL;
    }
    /* a sync flush ends with an empty stored block; RFC 7692 7.2.1 drops it */
    if (produced < 4 || memcmp(out->data + start + hb + produced - 4, tail, 4) != 0) {
        err = CZ_WS_ENOMEM;
        goto fail;
    }
    clen = produced - 4;
    real = header_size(clen);
    if (real != hb) {
        if (real > hb) {
            rc = cz_http_buf_reserve(out, real + clen);
            if (rc != CZ_HTTP_OK) {
                err = buf_err(rc);
                goto fail;
            }
        }
        memmove(out->data + start + real, out->data + start + hb, clen);
    }
    cz_ws_frame_header(hdr, 1, 1, opcode, clen, NULL);
    memcpy(out->data + start, hdr, real);
    out->len = start + real + clen;
    if (ws->pmd.tx_no_context_takeover) zout_end(ws); /* the next message starts afresh: hold no memory */
    return CZ_WS_OK;

fail:
    /* the peer has seen nothing of this message; a fresh deflater is
     * always understood (nothing obliges it to refer to the window) */
    out->len = start;
    zout_end(ws);
    return err;
}
