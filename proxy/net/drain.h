/*
 * drain: the end of a client connection (CONN_DRAIN). Loop thread only.
 */
#ifndef PEEPHOLE_DRAIN_H
#define PEEPHOLE_DRAIN_H

struct conn;

/* DRAIN's entry work: linger once the client's output is out. */
void drain_enter(struct conn *c);

/* Send FIN (and close_notify over TLS) and read briefly; with TLS records
 * still queued on the socket, look again shortly. */
void drain_linger(struct conn *c);

/* The client sent more while draining: read and drop it. */
void drain_client_read(struct conn *c);

/* DRAIN's deadline passed. */
void drain_timeout(struct conn *c);

#endif
