/*
 * replay internals, shared by the files of `peephole replay` and by
 * nothing else: the options, one job per send of a logged request, and the
 * run that holds them. replay.c is the command (options, set-up, exit
 * status), replay_load.c loads the originals and builds each request,
 * replay_client.c sends them on the loop and parses the answers,
 * replay_record.c turns a finished job into rows, replay_print.c prints
 * the comparison.
 */
#ifndef PEEPHOLE_CLI_REPLAY_INT_H
#define PEEPHOLE_CLI_REPLAY_INT_H

#include <arpa/inet.h>
#include <llhttp.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/store/store.h"

#define REPLAY_CMD "replay"
#define REPLAY_MAX_EDITS 64

struct bufferevent;
struct event;
struct event_base;
struct evbuffer;
struct evdns_base;
struct resolve_req;

struct replay_opts {
	const char *db, *filter, *via, *body_file, *upstream_ca;
	char via_host[256];
	unsigned via_port;
	const char *set[REPLAY_MAX_EDITS], *remove[REPLAY_MAX_EDITS];
	int nset, nremove;
	const char *resolve[REPLAY_MAX_EDITS];
	int nresolve;
	/* resolve as a proxy with these settings does (the web UI passes its
	 * proxy's): dns-server, repeatable, and hosts-file */
	const char *dns[REPLAY_MAX_EDITS], *hosts_file;
	int ndns;
	int64_t repeat, concurrency, timeout_s;
	int allow_truncated, insecure, json, diff;
	int64_t *ids;
	size_t nids;
};

enum replay_phase {
	REPLAY_WAITING,
	REPLAY_RESOLVING,
	REPLAY_CONNECTING,
	REPLAY_PROXY_CONNECT,
	REPLAY_TLS,
	REPLAY_EXCHANGE,
	REPLAY_DONE
};

struct replay_run;

/* One send of one logged request. */
struct replay_job {
	struct replay_run *run;
	int64_t orig_id, conn_id, new_id;
	/* the original, for the comparison */
	int orig_status;
	int64_t orig_size, orig_total_us;
	char *orig_sha;
	int orig_truncated;
	char *orig_headers, *orig_reason; /* --diff */
	/* what to send */
	char *method, *scheme, *host, *url, *req_headers;
	char *sent_headers; /* the fields as sent, for the record */
	uint64_t sent_head_bytes, sent_body_bytes;
	struct store_body sent_body; /* captured as the proxy would */
	unsigned port;
	struct evbuffer *request;
	int is_head, tls;
	char *refused; /* not sent, and why */
	/* the exchange */
	enum replay_phase phase;
	struct resolve_req *dns;
	struct bufferevent *bev, *raw;
	struct event *timer;
	llhttp_t parser;
	struct evbuffer *resp_head; /* "Name: value\r\n" lines */
	int in_value;
	EVP_MD_CTX *sha;
	char resp_sha[65];
	struct store_body body;
	size_t body_room;
	uint64_t resp_total;
	int resp_truncated;
	int status, resp_done;
	char reason[64];
	size_t reason_len;
	/* --diff: the answer as received, kept past the record */
	char *resp_headers;
	unsigned char *resp_copy;
	size_t resp_copy_len;
	char server_ip[INET6_ADDRSTRLEN], tls_desc[128];
	unsigned server_port;
	int64_t t_start, t_dns, t_connected, t_sent, t_first, t_end;
	uint64_t sent_bytes, recv_bytes;
	char *error;
	char connect_buf[512];
	size_t connect_len;
};

struct replay_run {
	const struct replay_opts *o;
	struct event_base *base;
	struct evdns_base *dns;
	SSL_CTX *ctx;
	struct store *st;
	struct replay_job *jobs;
	size_t njobs, next, active, done;
	size_t capture; /* body-capture-limit */
};

/*
 * Load every selected original into run->jobs (o->repeat times each),
 * each with its request built (--body FILE of file_len bytes, -1 without).
 * CLI_OK, CLI_USAGE or CLI_ERROR (printed). replay_load.c.
 */
int replay_load(sqlite3 *db, const struct replay_opts *o,
    struct replay_run *run, int64_t file_len)
    __attribute__((warn_unused_result));

/* Free what job j holds (not j itself). replay_load.c. */
void replay_job_free(struct replay_job *j);

/*
 * Run every job of run to its end on run->base, then close the store so
 * the last rows are written. replay_client.c.
 */
void replay_dispatch(struct replay_run *run);

/*
 * Submit finished job j to the store as a connection row and a request
 * row (replay_of = the original). The sent head and body and the captured
 * answer move to the records. replay_record.c.
 */
void replay_record(struct replay_job *j);

/* Print every job of run, as text or (json) a JSON array; db holds the
 * originals' bodies for --diff. replay_print.c. */
void replay_print(sqlite3 *db, const struct replay_run *run, int json);

#endif
