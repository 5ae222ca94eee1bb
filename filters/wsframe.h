/*
 * wsframe: a passive RFC 6455 WebSocket parser for one direction of a
 * stream. After a 101 the proxy relays the bytes unchanged and feeds a copy
 * here, in whatever pieces they arrive; complete messages come back through
 * a callback: opcode, sizes (on the wire and inflated), a capped capture of
 * the payload, close code and reason.
 *
 * Why not libwslay: wslay is an endpoint library -- it drives the I/O
 * through its own callbacks, applies the masking rules of one role (and
 * fails the connection on a violation) and knows nothing of
 * permessage-deflate. An observer needs none of that: it reads both roles,
 * records a mask bit where the RFC says there should be none instead of
 * refusing it, and must inflate RFC 7692 messages to show them.
 *
 * Bounded: at most 14 header bytes and capture_max payload bytes per
 * message are kept; the rest is counted, never buffered, so a huge frame or
 * a deflate bomb costs no more memory than a small one (inflating goes
 * through a fixed 16 KiB scratch buffer). Pure: no sockets, no logging.
 * Text is not checked for UTF-8: an observer records what it sees.
 */
#ifndef PEEPHOLE_WSFRAME_H
#define PEEPHOLE_WSFRAME_H

#include <stddef.h>
#include <stdint.h>

enum wsframe_opcode {
	WSFRAME_CONT = 0x0,
	WSFRAME_TEXT = 0x1,
	WSFRAME_BINARY = 0x2,
	WSFRAME_CLOSE = 0x8,
	WSFRAME_PING = 0x9,
	WSFRAME_PONG = 0xa
};

#define WSFRAME_HEADER_MAX 14   /* 2 + 8-byte length + 4-byte mask key */
#define WSFRAME_CONTROL_MAX 125 /* RFC 6455 5.5 */

/* Negotiated permessage-deflate (RFC 7692). */
struct wsframe_deflate {
	int enabled;
	int client_no_context_takeover, server_no_context_takeover;
	int client_max_window_bits, server_max_window_bits; /* 8..15 */
};

/*
 * Parse a Sec-WebSocket-Extensions value (the server's 101 answer, which is
 * what was agreed): a comma-separated list of extensions, each a token with
 * ";"-separated parameters, a parameter value a token or quoted string.
 * Unknown extensions are skipped (after their syntax is checked). Returns 0
 * with out filled (out->enabled says if permessage-deflate was agreed; both
 * window sizes 15 unless given), or -1 when the value is malformed: bad
 * syntax, permessage-deflate listed twice, or a permessage-deflate
 * parameter unknown, repeated, out of range (window bits 8..15) or with a
 * value where none belongs. A *_max_window_bits without a value (allowed in
 * an offer) means 15.
 */
int wsframe_parse_extensions(const char *value, size_t len,
    struct wsframe_deflate *out) __attribute__((warn_unused_result));

struct wsframe_msg {
	int dir;             /* 0 client->server, 1 server->client */
	int opcode;          /* of the first frame: enum wsframe_opcode */
	uint64_t size;       /* payload bytes of the message, inflated */
	uint64_t wire_bytes; /* payload bytes on the wire, all fragments */
	int compressed;      /* RSV1 on the first frame: permessage-deflate */
	int fragments;       /* frames it took (saturates at INT_MAX) */
	/*
	 * The captured payload, unmasked and inflated, len <= capture_max;
	 * valid during the callback only. Never NULL.
	 */
	const unsigned char *data;
	size_t len;
	int truncated; /* size > len */
	/*
	 * Close frames: the status code, -1 when the body is empty; -1 for
	 * other opcodes. close_reason points into data (so it is cut at
	 * capture_max too); NULL with length 0 when there is none.
	 */
	int close_code;
	const char *close_reason;
	size_t close_reason_len;
};

typedef void (*wsframe_msg_cb)(void *arg, const struct wsframe_msg *m);

struct wsframe;

/*
 * A parser for one direction (dir is copied into every message). Keeps at
 * most capture_max payload bytes per message; pmd (copied; NULL means no
 * extension) enables permessage-deflate, with this direction's parameters:
 * client_* for dir 0, server_* for dir 1. NULL on ENOMEM or a pmd window
 * size outside 8..15. Free with wsframe_free.
 */
struct wsframe *wsframe_new(int dir, size_t capture_max,
    const struct wsframe_deflate *pmd) __attribute__((warn_unused_result));

/* Free p and all it holds; NULL is fine. */
void wsframe_free(struct wsframe *p);

/*
 * Feed len more bytes of the direction (any split: the same bytes give the
 * same callbacks and result however they are cut). cb(arg, m) is called for
 * each complete message, in stream order; a control frame inside a
 * fragmented message is reported as its own message when it completes.
 * Returns 0, or -1 once the stream is not valid WebSocket (bad opcode,
 * reserved bits without an extension, continuation without a start, a new
 * message inside a fragmented one, control frame over 125 bytes or
 * fragmented, a close body of 1 byte, 64-bit length with the top bit set,
 * inflate error, out of memory for the inflater): then wsframe_error(p)
 * says why and every later call returns -1 at once. A mask bit is honoured
 * in either direction, never refused.
 */
int wsframe_feed(struct wsframe *p, const unsigned char *buf, size_t len,
    wsframe_msg_cb cb, void *arg) __attribute__((warn_unused_result));

/* Why the stream was refused, a short sentence; NULL while it is fine. */
const char *wsframe_error(const struct wsframe *p);

/*
 * Bytes held by the parser right now, for memory accounting: the object,
 * the capture buffer, the inflate scratch buffer and zlib's own state
 * (counted through zlib's allocator hooks, so its window is included).
 */
size_t wsframe_memory(const struct wsframe *p);

#endif
