/*
 * ws: the record of a WebSocket. The frames are relayed unchanged by the
 * tunnel (relay.c) or the h2 stream (RFC 8441); a copy of each direction
 * is parsed (filters/wsframe.c) and every message goes to the store in
 * batches, tied to the exchange that opened it (conn id, seq). Memory is
 * bounded: a message keeps at most body-capture-bytes, a batch goes out
 * every WS_BATCH_MSGS messages or WS_BATCH_BYTES bytes. Loop thread only.
 */
#ifndef PEEPHOLE_WS_H
#define PEEPHOLE_WS_H

#include <stddef.h>
#include <stdint.h>

struct conn;
struct evbuffer;
struct head;
struct ws;

#define WS_BATCH_MSGS 64
#define WS_BATCH_BYTES ((size_t)1 << 20)

/*
 * A record for the WebSocket that exchange seq of c opened; extensions is
 * the server's Sec-WebSocket-Extensions value (what was agreed), NULL for
 * none. NULL when nothing is recorded (no store) or on ENOMEM (logged).
 */
struct ws *ws_new(struct conn *c, int seq, const char *extensions);

/* An HTTP/1.1 exchange that just switched protocols: a WebSocket when
 * both heads say so. Sets c->ws. */
void ws_start_h1(struct conn *c);

/* Bytes of direction dir (0 client->server, 1 server->client): parsed
 * from a copy, never consumed. */
void ws_feed(struct ws *w, struct conn *c, int dir, const void *p, size_t n);
void ws_feed_evbuffer(
    struct ws *w, struct conn *c, int dir, struct evbuffer *in);

/* The WebSocket ended: the last batch goes to the store; w is freed. */
void ws_end(struct ws *w, struct conn *c);

#endif
