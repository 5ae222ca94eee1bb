/*
 * server: the running proxy — listeners on the main thread, the workers,
 * signal handling and the orderly stop (stop accepting, let in-flight
 * exchanges finish within shutdown-grace, flush the store).
 */
#ifndef PEEPHOLE_SERVER_H
#define PEEPHOLE_SERVER_H

#include <stdint.h>
#include <sys/socket.h>

struct config;
struct learned;
struct onboard;
struct replaydb;
struct store;
struct tls;
struct worker;

struct server {
	const struct config *cfg;
	struct store *store;
	struct worker **workers;
	int nworkers;
	struct tls *tls;         /* CA, forging, both TLS contexts */
	struct learned *learned; /* host:ports whose clients pin */
	struct onboard *onboard; /* the proxy's own pages: CA, PAC */
	struct replaydb *replay; /* --replay-from: answer from a capture */
	int64_t t_start_us;
};

/*
 * Run until SIGINT/SIGTERM. store may be NULL (record-flows no); replay is
 * NULL, or a capture to answer from. Both are closed before returning.
 * Returns the process exit status.
 */
int server_run(
    const struct config *cfg, struct store *store, struct replaydb *replay);

/* 1 if the address (with its port) is one of our own listeners: a name
 * that resolves to the proxy itself. Any thread. */
int server_is_self_addr(const struct server *srv, const struct sockaddr *sa);

/* 1 if host:port names one of our own listeners. Any thread. */
int server_is_self(const struct server *srv, const char *host, unsigned port);

#endif
