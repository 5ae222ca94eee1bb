/*
 * replaydb: a capture to answer from (`run --replay-from DB`). At start the
 * logged exchanges that got a complete answer are indexed by method and URL
 * (with ignored query parameters left out, and with the request body's
 * hash when bodies must match). Workers look requests up; the response
 * head and body are read from the file on the replaydb's own reader thread
 * and handed back to the worker's event loop, a slice at a time, so no
 * event loop waits on the disk and no body is held whole.
 *
 * Several logged answers to the same request are served in the order they
 * were logged; once each has been served, the last one keeps answering
 * (an app that polls keeps working offline).
 */
#ifndef PEEPHOLE_REPLAYDB_H
#define PEEPHOLE_REPLAYDB_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evbuffer;
struct replaydb;
struct replaydb_read;

struct replaydb_opts {
	const char *path;    /* the capture */
	const char *filter;  /* NULL, or only exchanges matching it */
	int match_body;      /* the request body must match too */
	char *const *ignore; /* query parameter names left out of the match */
	int nignore;
};

/*
 * Open and index the capture. Main thread, before the workers start. NULL
 * with a message in err; *usage is set when the filter was bad.
 */
struct replaydb *replaydb_open(const struct replaydb_opts *o, int *usage,
    char *err, size_t errlen) __attribute__((warn_unused_result));

/* Start the reader thread. 0 / -1. */
int replaydb_start(struct replaydb *db) __attribute__((warn_unused_result));

/* Exchanges indexed. */
size_t replaydb_count(const struct replaydb *db);

/* 1 if bodies take part in matching (--match-body). */
int replaydb_match_body(const struct replaydb *db);

/* A request, as the lookup sees it. */
struct replaydb_key {
	const char *method;
	const char *scheme; /* "http" | "https" */
	const char *host;
	unsigned port;
	const char *path;
	const char *query; /* NULL: none */
	/* hex SHA-256 of the request body, "" for none; NULL: not known
	 * (ignored unless match_body) */
	const char *body_sha;
};

/*
 * The logged exchange to answer k with: its id (> 0), claimed so the next
 * identical request gets the next logged answer. 0 when nothing matches,
 * with the reason in why. With match_body and k->body_sha NULL, returns
 * -1 when some exchange has this method and URL (read the body, then ask
 * again), else 0. Any thread.
 */
int64_t replaydb_find(struct replaydb *db, const struct replaydb_key *k,
    char *why, size_t whylen);

/* What a read hands back, on the requesting worker's thread. */
struct replaydb_chunk {
	const char *error; /* NULL, or why the read failed */
	/* with offset 0 only: the logged response */
	int status;
	const char *resp_headers; /* "Name: value\r\n" lines */
	uint64_t body_len;        /* bytes of body the file holds */
	int64_t body_rowid;       /* pass to later reads; 0: no body */
	struct evbuffer *data;    /* this slice; the callback may take it */
};

typedef void (*replaydb_read_cb)(struct replaydb_chunk *ch, void *arg);

/*
 * Read exchange id's response: with offset 0 its head and the first slice
 * of body, later the slice at offset of the body in row body_rowid. At
 * most max bytes. cb runs on base's thread (never inside this call).
 * NULL on ENOMEM.
 */
struct replaydb_read *replaydb_read(struct replaydb *db, int64_t id,
    int64_t body_rowid, uint64_t offset, size_t max, struct event_base *base,
    replaydb_read_cb cb, void *arg) __attribute__((warn_unused_result));

/* The requester is going away: cb will not run. On base's thread. */
void replaydb_read_cancel(struct replaydb_read *r);

/* Stop the reader and free everything, reads never delivered included.
 * After the workers have stopped. NULL does nothing. */
void replaydb_close(struct replaydb *db);

/* Build the match key of a request into buf: "METHOD scheme://host:port
 * path?query" with ignored parameters left out. Exposed for tests. */
int replaydb_key_text(const struct replaydb_key *k, char *const *ignore,
    int nignore, char *buf, size_t buflen);

#endif
