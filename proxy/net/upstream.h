/*
 * upstream: one connection from peephole to an origin, and the per-worker
 * pool of idle ones kept for reuse (keyed by host:port as the client named
 * it). A pooled upstream that the origin closes or that idles past
 * upstream-idle-timeout is freed by the pool. Worker loop thread only.
 */
#ifndef PEEPHOLE_UPSTREAM_H
#define PEEPHOLE_UPSTREAM_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

struct bufferevent;
struct event;
struct ssl_st;
struct worker;

struct upstream {
	TAILQ_ENTRY(upstream) link; /* in w->idle_ups while pooled */
	struct worker *w;
	struct bufferevent *bev; /* owns the socket */
	char host[256];
	unsigned port;
	int tls;      /* the bufferevent is an OpenSSL one */
	int end_seen; /* its close was seen once and put back (conn.c) */
	int verified; /* its certificate passed (intercept_up_ready) */
	int64_t t_tls_start_us; /* TLS: when the handshake began (the TCP
				   connect done), 0 before */
	/* what opening it took, µs, -1 unknown: the first exchange on it
	 * reports these (an intercepted tunnel opens its origin leg before
	 * the client's first request) */
	int64_t dns_us, connect_us, tls_us;
	char ip[INET6_ADDRSTRLEN];
	int ip_port;
	int uses; /* exchanges carried so far */
	int64_t t_idle_us;
	struct event *idle_ev;
};

/* A new, unconnected upstream for host:port; NULL on failure. */
struct upstream *upstream_new(struct worker *w, const char *host, unsigned port)
    __attribute__((warn_unused_result));

/* The same over TLS: ssl (owned by the upstream from now on) is a client
 * SSL; the handshake runs after the TCP connect. NULL on failure. */
struct upstream *upstream_new_tls(struct worker *w, const char *host,
    unsigned port, struct ssl_st *ssl) __attribute__((warn_unused_result));

/* Free (closing the socket). NULL ok. */
void upstream_free(struct upstream *u);

/* Note the peer address once connected (for logging). */
void upstream_set_peer(struct upstream *u, const struct sockaddr *sa);

/* Take an idle pooled upstream for host:port (TLS or not), or NULL. */
struct upstream *upstream_pool_get(
    struct worker *w, const char *host, unsigned port, int tls);

/* Return u to the pool (or free it when the pool is full). */
void upstream_pool_put(struct upstream *u);

/* Free every pooled upstream (worker shutdown). */
void upstream_pool_clear(struct worker *w);

#endif
