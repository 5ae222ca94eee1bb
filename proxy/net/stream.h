/*
 * stream: what peephole records about a stream it relays without reading
 * it — timing of first and last byte each way, reads, an event series
 * (capped, handed to the store in batches so a long stream never holds it
 * all), mmTLS record headers for WeChat's longlink, TCP_INFO of both
 * sockets over time (tcpsample.h) and at close. Worker loop thread only.
 */
#ifndef PEEPHOLE_STREAM_H
#define PEEPHOLE_STREAM_H

#include <stddef.h>
#include <stdint.h>

struct conn;
struct evbuffer;
struct store_conn;
struct store_tcpinfo;

enum stream_dir { STREAM_UP = 0, STREAM_DOWN = 1 };

/* Start recording c's stream (a tunnel begins). mmtls: parse record
 * headers both ways. 0 / -1 (ENOMEM: the stream is relayed unrecorded). */
int stream_start(struct conn *c, int mmtls);

/* Relaying starts: sample TCP_INFO of both sockets over time
 * (tcpsample.h). 0 / -1 (ENOMEM: relayed unsampled). */
int stream_sample_start(struct conn *c) __attribute__((warn_unused_result));

/* The connection closes: no more sampling (conn_quiesce). */
void stream_quiesce(struct conn *c);

/* Bytes read in direction dir are in `in`, about to be relayed. */
void stream_on_read(struct conn *c, enum stream_dir dir, struct evbuffer *in);

/* An mmTLS shortlink exchange (HTTP POST /mmtls/<hex>) begins: its two
 * bodies are fresh record streams. 0 / -1. */
int stream_shortlink_begin(struct conn *c);

/* Body bytes of an mmTLS shortlink exchange. */
void stream_on_body(
    struct conn *c, enum stream_dir dir, const char *at, size_t len);

/* The origin connection of the stream is up. */
void stream_upstream_connected(struct conn *c);

/* Who ended it, first one wins: "client-fin", "server-rst", ... */
void stream_closed_by(struct conn *c, const char *who);

/* Snapshot TCP_INFO of fd into *out. 1 if known, 0 if not. */
int stream_tcpinfo(int fd, struct store_tcpinfo *out);

/* Take the server socket's TCP_INFO now (before the upstream is freed). */
void stream_snap_server(struct conn *c, int fd);

/* At close: flush the events and fill the stream fields of the row. */
void stream_finish(
    struct conn *c, struct store_conn *sc, int client_fd, int server_fd);

/* Free c's stream state. */
void stream_free(struct conn *c);

#endif
