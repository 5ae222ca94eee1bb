/*
 * conn: one client connection and everything it owns — the client
 * bufferevent, the current upstream, both llhttp parsers, the exchange being
 * recorded. A state machine; all teardown goes through conn_close(), which
 * makes the connection inert; the memory is freed later from the worker's reap
 * event, so no callback further up the stack can touch freed memory.
 * Worker loop thread only.
 */
#ifndef PEEPHOLE_CONN_H
#define PEEPHOLE_CONN_H

#include <sys/socket.h>

struct worker;

/* Take over an accepted socket (ownership of fd moves). 0 / -1. */
int conn_accept(struct worker *w, int fd, const struct sockaddr *sa,
    socklen_t salen, int listener) __attribute__((warn_unused_result));

/* Shutdown began: close idle connections, finish the others. */
void conn_worker_shutdown(struct worker *w);

/* Grace period over: close every connection left. */
void conn_worker_close_all(struct worker *w);

/* The store drained: resume connections that were waiting for it. */
void conn_worker_store_drained(struct worker *w);

/* Free the connections closed since the last call (the reap event, and
 * once more when the loop has ended). */
void conn_worker_reap(struct worker *w);

#endif
