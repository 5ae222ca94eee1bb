/*
 * web: the web UI server (`peephole run --web`, `peephole web`). It runs
 * on a thread of its own with its own libevent loop (evhttp); SQLite is
 * read on reader threads beside it, never on that loop, and the actions
 * that write (replay, retry) run peephole's own commands as child
 * processes. Everything it serves needs the token it prints at start.
 */
#ifndef PEEPHOLE_WEB_H
#define PEEPHOLE_WEB_H

#include <stddef.h>
#include <stdio.h>

struct web;

/* Where the UI listens when --web is given without an address. */
#define WEB_DEFAULT_LISTEN "127.0.0.1:8081"

struct web_opts {
	const char *listen;   /* "[ADDR:]PORT" (IP literal); NULL: default */
	const char *password; /* NULL: none; required off loopback */
	const char *db_path;  /* the capture to serve */
	int readonly;         /* `peephole web`: replay and retry refused */
	/* handed to `peephole replay` run for the UI, so that it resolves and
	 * trusts origins as the proxy does */
	const char *upstream_ca;
	int insecure_upstream;
	char *const *dns_servers; /* "ip[:port]" each */
	int ndns;
	const char *hosts_file;
	FILE *announce; /* the "web UI: URL" line goes here */
};

/*
 * Parse "[ADDR:]PORT" ("8081", "127.0.0.1:8081", "[::1]:8081",
 * "localhost:8081") into host (an IP literal) and port; port 0 picks a
 * free one. 0, or -1 with a message in err.
 */
int web_parse_listen(const char *spec, char *host, size_t hostlen,
    unsigned *port, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Check o, open the database on the reader threads, bind the listener,
 * start the server thread and print "web UI: http://ADDR:PORT/?token=T"
 * on o->announce. NULL with a message in err when any of it fails
 * (nothing is left running). Main thread.
 */
struct web *web_start(const struct web_opts *o, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Stop the server: close the listener and every request, end the child
 * commands, join the threads and free everything. NULL does nothing. */
void web_stop(struct web *w);

#endif
