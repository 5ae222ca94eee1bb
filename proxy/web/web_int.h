/*
 * web internals, shared by the files of proxy/web/ and nothing else: the
 * server object, requests held open across threads, the reader threads'
 * jobs, Server-Sent Events and child commands.
 */
#ifndef PEEPHOLE_WEB_INT_H
#define PEEPHOLE_WEB_INT_H

#include <jansson.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proxy/web/web_auth.h"
#include "proxy/web/webq.h"

struct event;
struct event_base;
struct evhttp;
struct evhttp_request;
struct evbuffer;
struct sqlite3;
struct web_job;
struct web_sse;
struct web_child;

/* Reader threads, each with its own read-only SQLite connection: a slow
 * body search on one leaves the other for the rest of the UI. */
#define WEB_READERS 2
/* Jobs waiting for a reader before new requests get 503. */
#define WEB_QUEUE_MAX 256
/* Live event streams at once; more get 503. */
#define WEB_SSE_MAX 32
/* The proxy's dns-server settings handed to replay. */
#define WEB_DNS_MAX 8
/* Child commands at once (replay, retry, HAR, curl). */
#define WEB_CHILDREN_MAX 8

struct web {
	struct event_base *base;
	struct evhttp *http;
	struct event *stop_ev; /* web_stop: end the loop */
	struct event *done_ev; /* a reader finished jobs */
	struct event *tick_ev; /* SSE polling and heartbeats */
	pthread_t thread;
	int thread_started;

	char host[64]; /* listen address, an IP literal */
	unsigned port;
	char token[WEB_SECRET_HEX + 1];   /* printed; X-Peephole-Token */
	char session[WEB_SECRET_HEX + 1]; /* the cookie's value */
	char *password;
	char *db_path;
	char *upstream_ca;
	int insecure_upstream;
	char *dns_servers[WEB_DNS_MAX];
	int ndns;
	char *hosts_file;
	int readonly;
	char exe[4096]; /* this binary, for child commands */

	/* the reader threads and their queues (mu guards the rest) */
	pthread_t readers[WEB_READERS];
	int nreaders; /* threads that took their connection */
	int nstarted; /* threads to join */
	struct sqlite3 *dbs[WEB_READERS];
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct web_job *queue, *queue_tail;
	struct web_job *done, *done_tail;
	int nqueued;
	int stopping;

	/* web thread only */
	int closing; /* stopping: finished jobs are no longer answered */
	struct web_sse *sse;
	int nsse;
	struct web_child *children;
	int nchildren;
};

/*
 * A request answered later (by a job, a child command or as an event
 * stream). evhttp may end the connection first: its close callback then
 * clears req (freeing a request evhttp has let go of), so whoever holds a
 * web_req checks req before answering. Web thread.
 */
struct web_req {
	struct evhttp_request *req;
};

struct web_req *web_req_hold(struct evhttp_request *req);
/* Detach from the connection's close callback and free wr (not req). */
void web_req_release(struct web_req *wr);
/*
 * Take the request out of *wrp and release the holder (*wrp becomes
 * NULL): the request (NULL when its client left) is then the caller's to
 * answer. Answer only after this: ending a reply can free the request at
 * once (evhttp_send_done), and the holder must not look at it after.
 */
struct evhttp_request *web_req_take(struct web_req **wrp);
/* Drop req's connection without finishing the answer (a stream that
 * failed half-way must not look complete). */
void web_req_abort(struct evhttp_request *req);

/* ---- replies (web.c); each sends and finishes req ---- */
void web_reply_json(struct evhttp_request *req, int status, json_t *o);
void web_reply_error(struct evhttp_request *req, int status, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));
void web_reply_bytes(struct evhttp_request *req, int status, const char *type,
    const void *data, size_t len);
/* The headers every answer carries (nosniff, no framing, no referrer). */
void web_add_common_headers(struct evhttp_request *req);
/* Start a 200 answer whose body follows in chunks (an event stream, a
 * HAR): over HTTP/1.1 chunked; over HTTP/1.0 until the connection
 * closes. */
void web_stream_start(struct evhttp_request *req);

/* ---- jobs on the reader threads (web_reader.c) ---- */
enum web_job_kind {
	WEB_JOB_FLOWS,
	WEB_JOB_CONNS,
	WEB_JOB_FLOW,
	WEB_JOB_BODY,
	WEB_JOB_DOMAINS,
	WEB_JOB_STREAMS,
	WEB_JOB_STREAM,
	WEB_JOB_PASSTHROUGH,
	WEB_JOB_CURSOR,  /* SSE: where "now" is */
	WEB_JOB_CHANGES, /* SSE: what is new past a cursor */
	WEB_JOB_CHECK,   /* a filter's syntax, before a child runs */
};

struct web_job {
	struct web_job *next;
	enum web_job_kind kind;
	struct web *w;
	/* what it answers: a request, or an event stream */
	struct web_req *wr;
	struct web_sse *sse;
	/* for a filter check: what to run after */
	void (*then)(struct web_job *j, struct evhttp_request *req);
	char *arg; /* child argument (HAR's filter) */

	/* inputs */
	int64_t id;
	struct webq_page page;
	char *filter; /* owned; page.filter points here */
	int raw, resp, download, limit;
	struct webq_cursor cursor;

	/* results; an answer's JSON is serialised on the reader (text) */
	json_t *json;
	char *text;
	struct webq_blob blob;
	struct webq_err err;
	int failed;
};

struct web_job *web_job_new(struct web *w, enum web_job_kind kind);
void web_job_free(struct web_job *j);
/* Queue j for a reader. 0, or -1 when the queue is full (j not taken). */
int web_job_submit(struct web_job *j) __attribute__((warn_unused_result));
/* Start / stop the readers; open their databases. 0 / -1 (err). */
int web_readers_start(struct web *w, char *err, size_t errlen);
void web_readers_stop(struct web *w);
/* done_ev's callback: hand finished jobs to their owners. Web thread. */
void web_readers_done_cb(int fd, short what, void *arg);

/* ---- the API (web_api.c) ---- */
/* Route an authenticated /api/ request. Web thread. */
void web_api_route(struct web *w, struct evhttp_request *req, const char *path,
    const char *query);
/* A finished request job: answer its request. */
void web_api_job_done(struct web_job *j);

/* ---- Server-Sent Events (web_sse.c) ---- */
void web_sse_open(struct web *w, struct evhttp_request *req, const char *query);
void web_sse_job_done(struct web_job *j);
void web_sse_tick(struct web *w);
void web_sse_close_all(struct web *w);

/* ---- child commands (web_spawn.c) ---- */
/*
 * Run `peephole ARGV...` with the capture's --db and answer wr from its
 * standard output: collected and handed to done (JSON commands), or
 * streamed to the client as it comes (stream_type set: HAR). Takes wr.
 */
int web_spawn(struct web *w, struct web_req *wr, char *const *argv,
    const char *stream_type, const char *filename,
    void (*done)(struct web *w, struct web_req *wr, int status,
	struct evbuffer *out, const char *errtext));
void web_spawn_kill_all(struct web *w);
/* Each tick: a child whose streaming client left is ended. */
void web_spawn_tick(struct web *w);

#endif
