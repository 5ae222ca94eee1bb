/*
 * worker: one thread, one event_base, one evdns_base. The main thread
 * accepts and hands each client socket to a worker (round robin); from then
 * on everything about that connection happens on the worker's loop.
 *
 * Internal to proxy/net: the struct is shared by conn, upstream and resolve.
 */
#ifndef PEEPHOLE_WORKER_H
#define PEEPHOLE_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

struct config;
struct conn;
struct event;
struct event_base;
struct evdns_base;
struct server;
struct store;
struct upstream;
struct dns_cache;

struct worker_pending {
	struct worker_pending *next;
	int fd;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	int listener; /* index into cfg->listen */
};

TAILQ_HEAD(conn_list, conn);
TAILQ_HEAD(upstream_list, upstream);

struct worker {
	int idx;
	pthread_t thread;
	int started;
	struct event_base *base;
	struct evdns_base *dns;
	const struct config *cfg;
	struct store *store; /* NULL when flows are not recorded */
	struct server *srv;

	pthread_mutex_t lock; /* guards pending */
	struct worker_pending *pending;
	struct event *accept_ev;   /* activated by the main thread */
	struct event *shutdown_ev; /* activated by the main thread */
	struct event *drain_ev;    /* activated by the store writer */
	struct event *grace_ev;    /* shutdown grace period over */
	struct event *reap_ev;     /* frees w->reaped (conn_worker_reap) */
	int shutting_down;

	struct conn_list conns;        /* every live client connection */
	struct conn_list store_wait;   /* paused until the store drains */
	struct conn_list reaped;       /* closed, freed by reap_ev */
	struct upstream_list idle_ups; /* pooled upstream connections */
	int nidle_ups;
	struct dns_cache *dns_cache;

	/* Counters: written by this worker only, read by whichever worker
	 * renders the status page, so atomic; relaxed is enough, they order
	 * nothing. */
	_Atomic uint64_t accepted;
	_Atomic uint64_t exchanges;
	_Atomic int live;
};

/* Create a worker with its own event_base and evdns; NULL on failure. */
struct worker *worker_new(
    int idx, const struct config *cfg, struct store *store, struct server *srv)
    __attribute__((warn_unused_result));

/* Start its thread. 0 / -1. */
int worker_start(struct worker *w) __attribute__((warn_unused_result));

/* Hand an accepted socket to w (main thread). Ownership of fd moves. */
void worker_hand_fd(struct worker *w, int fd, const struct sockaddr *sa,
    socklen_t salen, int listener);

/* Ask w to finish in-flight exchanges and stop (main thread). */
void worker_shutdown(struct worker *w);

/* Wait for the thread to end (after worker_shutdown). */
void worker_join(struct worker *w);

/* Join if still running, then free. NULL ok. */
void worker_free(struct worker *w);

/* Called by conn when its last connection closed during shutdown. */
void worker_maybe_exit(struct worker *w);

#endif
