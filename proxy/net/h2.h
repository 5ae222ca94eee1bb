/*
 * h2: the HTTP/2 codec of a connection whose client agreed on h2 (ALPN on
 * intercepted TLS, or the h2c preface inside a tunnel). nghttp2 runs both
 * legs: peephole is the client's server and the origin's client, and each
 * client stream becomes one origin stream and one recorded exchange. The
 * header blocks go on as they came, in their order, re-encoded only
 * because HPACK demands it. An origin that speaks only HTTP/1.1 gets each
 * stream as an HTTP/1.1 request (h2_h1.c).
 *
 * Flow control carries back-pressure per stream: a stream's window opens
 * again only as far as the other leg has taken its bytes, so a slow reader
 * on one stream holds at most H2_STREAM_WINDOW bytes in peephole and does
 * not stall the others (the connection windows are opened on receipt).
 * Loop thread only.
 */
#ifndef PEEPHOLE_H2_H
#define PEEPHOLE_H2_H

struct conn;

/*
 * The client leg speaks h2 from here (its TLS is up, or its preface is
 * buffered): set up both sessions and enter CONN_H2. The origin leg is
 * c->dial.up_idle (kept by intercept) or c->up; h2 when the origin agreed
 * on h2 (alpn_server), else HTTP/1.1. Closes c on failure.
 */
void h2_start(struct conn *c);

/* CONN_H2's callbacks: bytes from either side, room on either side. */
void h2_client_read(struct conn *c);
void h2_client_write(struct conn *c);
void h2_up_read(struct conn *c);
void h2_up_write(struct conn *c);
/* the origin connection closed or failed */
void h2_up_event(struct conn *c, short what);
/* the client sent its FIN, or its socket failed */
void h2_client_eof(struct conn *c);
/* CONN_H2's idle deadline passed */
void h2_timeout(struct conn *c);
/* Free the codec (conn_free), records submitted first (conn_close). */
void h2_close(struct conn *c, const char *why);
void h2_free(struct conn *c);

#endif
