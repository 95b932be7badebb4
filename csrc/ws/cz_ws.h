/*
 * cz_ws — the WebSocket protocol (RFC 6455) with permessage-deflate
 * (RFC 7692), server side, transport-free: bytes in, events and bytes out.
 *
 * This header is the whole contract of csrc/ws/. Three parts:
 *
 *   Handshake   cz_ws_handshake_check() judges a request that
 *               cz_http_parser_feed() returned (CZ_HTTP_REQUEST) and either
 *               accepts it (status 101: cz_ws_handshake_write() appends the
 *               "101 Switching Protocols" head, with Sec-WebSocket-Accept,
 *               the chosen subprotocol and the negotiated extension) or
 *               refuses it with 400 or 426 (cz_ws_handshake_write_refusal()).
 *   Receiving   cz_ws_t is the state of one connection after the 101. It is
 *               fed the connection's bytes, split anywhere, and stops at
 *               each event: a complete message, a ping (a pong is queued),
 *               a pong, a close (the reply is queued), or an error (a close
 *               frame with the status to send is queued).
 *   Sending     cz_ws_frame_header() writes a frame header into the caller's
 *               memory so the payload is written from where it is;
 *               cz_ws_write() appends header and payload (compressed or not)
 *               to a cz_http_buf_t, the payload copied once.
 *
 * Upgrade hand-off. After CZ_HTTP_REQUEST for a request with `upgrade` set,
 * the connection calls cz_ws_handshake_check(); on 101 it appends the head,
 * stops using the HTTP parser, initialises a cz_ws_t with the negotiated
 * cz_ws_deflate_t (hs.deflate), and feeds it the bytes left after the
 * request (data + consumed: a client may send frames right behind the
 * handshake). From then on every read goes to cz_ws_feed(); after each event
 * the connection calls cz_ws_flush_control() to move owed control frames
 * (pong, close) into its output. hs.subprotocol points into the request:
 * write the 101 before the HTTP parser is reset or destroyed. After CLOSE or
 * ERROR the connection writes what is queued and closes TCP. Timeouts (idle,
 * a message that never ends) are the engine's: nothing here reads a clock.
 *
 * Memory: every allocation goes through cz_memory: the receive side (message
 * assembly, the inflater) as CZ_MEM_REQUEST, the send side (the deflater; the
 * output buffers are the caller's) as CZ_MEM_RESPONSE. zlib allocates through
 * the same handle (zalloc/zfree hooks). Control frames use fixed storage in
 * cz_ws_t, so a ping flood costs no memory (only the latest ping is answered,
 * as RFC 6455 5.5.3 allows). Bounds per connection: the assembly buffer <=
 * max_message; inflater ~7 KiB + 32 KiB (always the full window: see
 * rx_window_bits); deflater about
 * 2^(tx_window_bits+2) + 2^(mem_level+9) (256 KiB at 15/8), created on the
 * first compressed message in each direction and, with no context
 * takeover, freed after each message.
 *
 * Threads: no global mutable state (SHA-1, base64 and the validators are
 * pure). One cz_ws_t per connection, used by one thread at a time.
 */
#ifndef CZ_WS_H
#define CZ_WS_H

#include <stddef.h>
#include <stdint.h>

#include "cz_http.h"
#include "cz_memory.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ===== common ============================================================ */

/* Result codes of the functions that return int. */
enum {
    CZ_WS_OK = 0,
    CZ_WS_EINVAL = -1, /* bad argument (opcode, close code, reason length) */
    CZ_WS_ENOMEM = -2, /* allocation failed; nothing appended */
    CZ_WS_E2BIG = -3   /* the output buffer's bound; nothing appended */
};

/* Opcodes (RFC 6455 5.2). */
enum {
    CZ_WS_OP_CONT = 0x0,
    CZ_WS_OP_TEXT = 0x1,
    CZ_WS_OP_BINARY = 0x2,
    CZ_WS_OP_CLOSE = 0x8,
    CZ_WS_OP_PING = 0x9,
    CZ_WS_OP_PONG = 0xA
};

/* Close status codes (RFC 6455 7.4.1) this module sends or reports. */
enum {
    CZ_WS_CLOSE_NORMAL = 1000,
    CZ_WS_CLOSE_GOING_AWAY = 1001,
    CZ_WS_CLOSE_PROTOCOL = 1002, /* framing or extension violated */
    CZ_WS_CLOSE_UNSUPPORTED = 1003,
    CZ_WS_CLOSE_NO_STATUS = 1005,    /* reported for a close without code; never sent */
    CZ_WS_CLOSE_ABNORMAL = 1006,     /* never sent (connection lost) */
    CZ_WS_CLOSE_INVALID_DATA = 1007, /* text not UTF-8 */
    CZ_WS_CLOSE_POLICY = 1008,
    CZ_WS_CLOSE_TOO_BIG = 1009, /* over max_frame / max_message */
    CZ_WS_CLOSE_INTERNAL = 1011 /* out of memory */
};

/* Largest control frame payload (RFC 6455 5.5). */
#define CZ_WS_MAX_CONTROL 125u
/* Largest frame header: 2 + 8 (64-bit length) + 4 (mask). */
#define CZ_WS_MAX_HEADER 14u

/*
 * 1 when `code` may appear in a Close frame (RFC 6455 7.4): 1000-1003,
 * 1007-1014 (1012-1014 registered with IANA since) and 3000-4999. Never
 * 1004-1006, 1015, below 1000 or 1016-2999.
 */
int cz_ws_close_code_valid(unsigned code);

/* ---- UTF-8 -----------------------------------------------------------------
 * Incremental validator: text is fed in pieces cut anywhere (inside a
 * character too). It rejects at the first byte that cannot belong to valid
 * UTF-8 (overlong forms, surrogates U+D800-DFFF, above U+10FFFF, stray
 * continuation bytes, bytes C0, C1, F5-FF), so an invalid prefix fails
 * before the message (or the frame) is complete, as Autobahn 6.x requires. */
typedef struct {
    uint8_t need;   /* continuation bytes still expected */
    uint8_t lo, hi; /* range of the next byte (80..BF unless just after a lead) */
} cz_ws_utf8_t;

static inline void cz_ws_utf8_init(cz_ws_utf8_t *u) {
    u->need = 0;
    u->lo = 0x80;
    u->hi = 0xBF;
}
/* 0 when s[0..n) continues valid UTF-8; -1 otherwise, with *bad (when not
 * NULL) the offset of the first invalid byte. The state is undefined after
 * -1. */
int cz_ws_utf8_feed(cz_ws_utf8_t *u, const void *s, size_t n, size_t *bad);
/* 1 when the text fed so far ends on a character boundary. */
static inline int cz_ws_utf8_complete(const cz_ws_utf8_t *u) {
    return u->need == 0;
}

/* ---- SHA-1 and base64 (for Sec-WebSocket-Accept; exposed for tests) --------- */
typedef struct {
    uint32_t h[5];
    uint64_t bytes;
    uint8_t block[64];
    size_t used;
} cz_ws_sha1_t;

void cz_ws_sha1_init(cz_ws_sha1_t *s);
void cz_ws_sha1_update(cz_ws_sha1_t *s, const void *data, size_t len);
void cz_ws_sha1_final(cz_ws_sha1_t *s, uint8_t digest[20]);

/* Standard base64 with padding into `out` (4 * ceil(n / 3) bytes, no NUL). */
size_t cz_ws_base64(const uint8_t *in, size_t n, char *out);

/* Sec-WebSocket-Accept of a key: base64(SHA-1(key + GUID)), 28 chars + NUL. */
void cz_ws_accept_key(const char *key, size_t key_len, char out[29]);

/* ===== handshake ========================================================= */

/*
 * Negotiated permessage-deflate, as seen from this end: rx is what the peer
 * sends us (inflated here), tx what we send. The handshake fills it for the
 * server; a test client swaps the directions.
 */
typedef struct {
    uint8_t enabled;                /* permessage-deflate in use */
    uint8_t rx_no_context_takeover; /* the peer resets its compressor per
                                       message: the inflater is freed after
                                       each message */
    uint8_t tx_no_context_takeover; /* we reset (free) our compressor after
                                       each message */
    uint8_t rx_window_bits;         /* 8..15, the window the peer was told
                                       to stay within; the inflater keeps
                                       32 KiB anyway, so that a peer that
                                       does not is read the same whatever
                                       the splits */
    uint8_t tx_window_bits;         /* 8..15, the window we promised; 8 is
                                       deflated with 9, which reaches at
                                       most 250 bytes back */
    uint8_t mem_level;              /* deflate memLevel 1..9 (0: 8) */
    int8_t level;                   /* compression level 0..9, -1 default */
} cz_ws_deflate_t;

/* The server's policy for handshakes. Zero-initialised: no subprotocol,
 * no compression. */
typedef struct {
    /* Subprotocols the application speaks. The client's list is read in
     * its order and the first one found here is chosen (compared
     * case-sensitively, RFC 6455 4.1). None in common: no
     * Sec-WebSocket-Protocol in the answer (the client decides). */
    const cz_http_str_t *subprotocols;
    size_t num_subprotocols;
    /* permessage-deflate: accept the first acceptable offer. */
    uint8_t deflate;
    uint8_t server_no_context_takeover; /* ask for it even if not offered
                                           (less memory: our deflater lives
                                           for one message) */
    uint8_t client_no_context_takeover; /* ask the client for it (our
                                           inflater lives for one message) */
    uint8_t server_max_window_bits;     /* 8..15, 0: 15; an offer with a
                                           smaller value lowers it */
    uint8_t client_max_window_bits;     /* 8..15, 0: 15; sent only when the
                                           client offered the parameter */
    uint8_t mem_level;                  /* 1..9, 0: 8 */
    int8_t level;                       /* 0..9, 0: zlib's default (6) */
} cz_ws_policy_t;

/* Verdict of a handshake. Views point into the request (valid while it is). */
typedef struct {
    int status;                /* 101 accept; 400 or 426 refuse */
    const char *reason;        /* static, for logs; "" on 101 */
    char accept[29];           /* Sec-WebSocket-Accept (NUL-terminated) */
    cz_http_str_t subprotocol; /* chosen; len 0 when none */
    cz_ws_deflate_t deflate;   /* negotiated; enabled 0 when not */
    char extension[160];       /* Sec-WebSocket-Extensions value, "" if none */
} cz_ws_handshake_t;

/*
 * Judge an opening handshake (RFC 6455 4.2.1). Refused with
 *   426 (+ "Sec-WebSocket-Version: 13", "Upgrade: websocket"): no Upgrade
 *        field with the token "websocket", or Sec-WebSocket-Version other
 *        than exactly "13";
 *   400: not GET, not HTTP/1.1, a body, no "upgrade" token in Connection,
 *        Sec-WebSocket-Key missing, repeated or not the base64 of 16 bytes,
 *        Sec-WebSocket-Version repeated, a Sec-WebSocket-Protocol or
 *        Sec-WebSocket-Extensions field that does not parse.
 * Upgrade and Connection are comma-separated lists over all their fields,
 * compared ignoring case. A permessage-deflate offer with an unknown,
 * repeated or invalid parameter is declined (RFC 7692 5.1), not refused;
 * the next offer is tried. Never allocates. Returns hs->status.
 */
int cz_ws_handshake_check(const cz_http_request_t *req, const cz_ws_policy_t *policy, cz_ws_handshake_t *hs);

/* Whether `req` asks for a WebSocket (an Upgrade field with the token
 * "websocket"), valid or not: a route that also answers plain HTTP hands
 * such a request to cz_ws_handshake_check(), any other to its HTTP handler. */
int cz_ws_is_upgrade(const cz_http_request_t *req);

/* Append "HTTP/1.1 101 Switching Protocols" with Upgrade, Connection,
 * Sec-WebSocket-Accept and, when chosen, Sec-WebSocket-Protocol and
 * Sec-WebSocket-Extensions. `extra` headers (may be NULL) are checked as by
 * cz_http_response_write(). CZ_HTTP_OK / EINVAL / ENOMEM / E2BIG, nothing
 * appended on error. */
int cz_ws_handshake_write(cz_http_buf_t *out, const cz_ws_handshake_t *hs, const cz_http_header_t *extra,
                          size_t num_extra);

/* Append the refusal of hs (400 or 426) in cz_http_write_error()'s shape,
 * "Connection: close" (the connection is to be closed after it). */
int cz_ws_handshake_write_refusal(cz_http_buf_t *out, const cz_http_date_t *date, const cz_ws_handshake_t *hs);

/* ===== one connection ====================================================== */

/* Limits of one connection; zero fields mean the default. */
typedef struct {
    uint64_t max_frame;   /* payload bytes of one data frame    -> 1009 */
    uint64_t max_message; /* payload bytes of one message, after
                             decompression (the bomb limit)     -> 1009 */
    size_t retain;        /* the assembly buffer is freed between messages
                             when its capacity grew above this */
} cz_ws_limits_t;

#define CZ_WS_DEFAULT_MAX_FRAME   (16u * 1024u * 1024u)
#define CZ_WS_DEFAULT_MAX_MESSAGE (16u * 1024u * 1024u)
#define CZ_WS_DEFAULT_RETAIN      (64u * 1024u)

void cz_ws_limits_default(cz_ws_limits_t *l);

/* What cz_ws_feed() stopped for. */
typedef enum {
    CZ_WS_NEED_MORE = 0, /* all bytes consumed, no event */
    CZ_WS_TEXT,          /* a complete text message (valid UTF-8) */
    CZ_WS_BINARY,        /* a complete binary message */
    CZ_WS_PING,          /* a ping; its pong is queued (cz_ws_flush_control) */
    CZ_WS_PONG,          /* a pong (payload: its application data) */
    CZ_WS_CLOSE,         /* the peer's close: cz_ws_close_code()/payload is
                            the reason; the echo is queued unless we sent a
                            close first. The connection is to be closed once
                            the output is written (the server closes TCP
                            first, RFC 6455 7.1.1) */
    CZ_WS_ERROR          /* protocol violation or limit: a close frame with
                            cz_ws_close_code() (1002, 1007, 1009 or 1011) is
                            queued unless one was sent; write it, close */
} cz_ws_event_t;

/* One connection. Embed it; the fields are private. */
typedef struct cz_ws {
    cz_allocator_t *alloc;
    cz_ws_limits_t limits;
    cz_ws_deflate_t pmd;

    /* frame being read */
    uint8_t hdr[CZ_WS_MAX_HEADER];
    uint8_t hdr_len, hdr_need;
    uint8_t opcode, fin, rsv1, masked;
    uint8_t mask[4];
    uint64_t remaining; /* payload bytes of this frame not read yet */
    uint64_t frame_pos; /* payload bytes of this frame read (mask phase) */

    /* message being assembled */
    uint8_t msg_op; /* TEXT / BINARY while fragmented, 0 otherwise */
    uint8_t msg_compressed;
    uint8_t state;      /* private */
    uint8_t event;      /* event being returned (private) */
    uint8_t zin_done;   /* the inflater saw the end of a stream */
    uint8_t close_sent; /* a close frame has been queued */
    uint16_t close_code;
    cz_ws_utf8_t utf8;
    char *msg; /* CZ_MEM_REQUEST, cap <= max_message */
    size_t msg_len, msg_cap;
    cz_http_str_t payload; /* of the last event */

    /* control frame being read (payload unmasked) */
    uint8_t ctrl[CZ_WS_MAX_CONTROL];
    uint8_t ctrl_len;

    /* owed control frames, ready to write */
    uint8_t pong[2 + CZ_WS_MAX_CONTROL];
    uint8_t pong_len;
    uint8_t close_out[2 + CZ_WS_MAX_CONTROL];
    uint8_t close_out_len;
    uint8_t close_flushed;

    void *zin, *zout; /* z_stream *, made on first use */
} cz_ws_t;

/*
 * Set up `ws` for a server connection; takes no memory yet. `limits` NULL
 * or zero fields: defaults. `pmd` NULL or not enabled: no compression
 * (a frame with RSV1 is then an error).
 */
void cz_ws_init(cz_ws_t *ws, cz_allocator_t *a, const cz_ws_limits_t *limits, const cz_ws_deflate_t *pmd);

/* Free everything `ws` holds. It may be init'ed again. */
void cz_ws_destroy(cz_ws_t *ws);

/*
 * Parse data[0..len): the connection's bytes, split anywhere. The payload
 * of client frames is unmasked IN PLACE: data[0..*consumed) is modified,
 * bytes after it are not. Stops at the first event; *consumed tells how
 * many bytes were used; feed the rest after handling the event. A call with
 * len 0 just acknowledges the previous event.
 *
 * After CZ_WS_CLOSE or CZ_WS_ERROR the state is final: every later call
 * returns the same event and consumes nothing.
 */
cz_ws_event_t cz_ws_feed(cz_ws_t *ws, char *data, size_t len, size_t *consumed);

/*
 * The payload of the last event: the message (TEXT/BINARY), the ping or
 * pong data, the close reason (CLOSE; valid UTF-8), or empty. It points
 * into `data` of the feed (a single-frame, uncompressed message that came
 * in one read is not copied) or into `ws`; valid until the next
 * cz_ws_feed() or cz_ws_destroy() and, when into `data`, while the caller
 * keeps those bytes.
 */
cz_http_str_t cz_ws_payload(const cz_ws_t *ws);

/* CLOSE: the peer's code (1005 when its close had none). ERROR: the code
 * we sent or will send. 0 otherwise. */
unsigned cz_ws_close_code(const cz_ws_t *ws);

/* 1 while part of a message or frame has been received. */
int cz_ws_in_message(const cz_ws_t *ws);

/*
 * Move owed control frames (the latest pong, then a close) to `out`.
 * CZ_WS_OK (also when nothing was owed), CZ_WS_ENOMEM / E2BIG: nothing
 * moved, try again later. Call after each event and after cz_ws_close().
 */
int cz_ws_flush_control(cz_ws_t *ws, cz_http_buf_t *out);

/* 1 when a control frame is owed (cz_ws_flush_control has work). */
int cz_ws_control_pending(const cz_ws_t *ws);

/*
 * Start the close handshake: queue a close frame with `code` (valid per
 * cz_ws_close_code_valid(), or 0 for a close without code, then no reason)
 * and `reason` (<= 123 bytes, UTF-8; not checked). EINVAL on a bad code or
 * length, or when a close was already queued. The peer's close then comes
 * as CZ_WS_CLOSE, not echoed.
 */
int cz_ws_close(cz_ws_t *ws, unsigned code, const char *reason, size_t reason_len);

/* ===== sending ============================================================ */

/*
 * Write a frame header for `len` payload bytes into hdr (CZ_WS_MAX_HEADER
 * bytes) and return its size: 2, 4 or 10, +4 with a mask. The length is
 * encoded in the fewest bytes (RFC 6455 5.2). `mask` NULL for a server
 * frame; a client frame (tests) passes the key and masks the payload with
 * cz_ws_mask(). `rsv1` marks a compressed message's first frame.
 */
size_t cz_ws_frame_header(uint8_t *hdr, int fin, int rsv1, unsigned opcode, uint64_t len, const uint8_t mask[4]);

/* XOR data[0..len) with the key, starting `pos` bytes into the payload. */
void cz_ws_mask(uint8_t *data, size_t len, const uint8_t key[4], uint64_t pos);

/*
 * Append one whole message (a single frame; TEXT, BINARY, PING or PONG)
 * to `out`. `compress` (TEXT/BINARY, when the handshake enabled
 * permessage-deflate) deflates it straight into `out`; otherwise the payload
 * is copied once. Text is not validated (the caller's strings are UTF-8).
 * Control payloads > 125 bytes: EINVAL; any message once a close is
 * queued (ours, an echo, or the parser's error): EINVAL, as nothing may
 * follow a close (RFC 6455 5.5.1). Errors leave `out` as it was (a
 * failed compression also resets the compressor, which the peer tolerates:
 * back-references into its window are never required).
 */
int cz_ws_write(cz_ws_t *ws, cz_http_buf_t *out, unsigned opcode, const void *data, size_t len, int compress);

#ifdef __cplusplus
}
#endif

#endif /* CZ_WS_H */
