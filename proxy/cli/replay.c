/*
 * replay: `peephole replay` — send logged requests again, straight to their
 * origins or through a proxy, on one event loop, a bounded number at a
 * time. Names are resolved and origins' certificates verified by the
 * proxy's own code (proxy/net/resolve.c, proxy/net/tls.c). Each replay is
 * recorded as a new request (replay_of = the original) through the flow store's
 * writer, and the command prints the original and the replay side by side.
 */
#include "proxy/cli/cli.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proxy/cli/args.h"
#include "proxy/store/db.h"
#include "proxy/cli/diff.h"
#include "proxy/store/readable.h"
#include "proxy/cli/replay.h"
#include "proxy/cli/output.h"
#include "proxy/store/requrl.h"
#include "proxy/store/select.h"
#include "proxy/http/head.h"
#include "conf/config.h"
#include "proxy/log.h"
#include "proxy/net/record.h"
#include "proxy/net/resolve.h"
#include "proxy/net/tls.h"
#include "proxy/store/store.h"

#define REPLAY_CMD "replay"
#define REPLAY_MAX_EDITS 64

static const char replay_help[] =
    "usage: peephole replay [ID...] [--filter EXPR] [options]\n"
    "\n"
    "Send logged requests again — method, URL, headers and body as\n"
    "captured — and print each original beside its replay: status, size,\n"
    "time and whether the response body matched. Each replay is recorded\n"
    "as a new request with replay_of naming the original.\n"
    "\n"
    "  --filter EXPR          the requests matching a filter expression\n"
    "  --via HOST:PORT        through this HTTP proxy (CONNECT for https)\n"
    "  --set-header 'N: V'    replace (or add) header N; repeatable\n"
    "  --remove-header N      drop header N; repeatable\n"
    "  --body FILE            send FILE as the body instead\n"
    "  --repeat N             send each request N times (default 1)\n"
    "  --concurrency N        at most N in flight (default 1)\n"
    "  --allow-truncated      send a body the log cut short, as logged\n"
    "  --resolve HOST:ADDR    connect to ADDR for HOST (as curl); "
    "repeatable\n"
    "  --upstream-ca FILE     also trust FILE (PEM) for origins\n"
    "  --insecure-upstream    do not verify origin certificates\n"
    "  --timeout SECONDS      per replay, from start to end (default 30)\n"
    "  --diff                 show how each answer differs: status,\n"
    "                         end-to-end headers, and the bodies decoded\n"
    "                         (JSON by path, text as a unified diff,\n"
    "                         binary by size and SHA-256)\n"
    "  --json                 print a JSON array instead\n"
    "  --db FILE              database (default " CLI_DEFAULT_DB ")\n"
    "  --help                 print this help\n"
    "\n"
    "Exit status: 0 when every replay got a response, 1 when one failed or\n"
    "was refused, 2 for usage errors.\n";

struct replay_opts {
	const char *db, *filter, *via, *body_file, *upstream_ca;
	char via_host[256];
	unsigned via_port;
	const char *set[REPLAY_MAX_EDITS], *remove[REPLAY_MAX_EDITS];
	int nset, nremove;
	const char *resolve[REPLAY_MAX_EDITS];
	int nresolve;
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

static llhttp_settings_t replay_settings;

static void replay_start_next(struct replay_run *run);
static void replay_finish(struct replay_job *j, const char *error);

/* ---- building the request ---- */

/* Not sent again: the hop-by-hop fields, and the framing the replay
 * computes itself. */
static int
replay_hop_by_hop(const char *name, size_t n, const char *headers)
{
	return head_text_is_hop(name, n, headers) ||
	    (n == 14 && strncasecmp(name, "content-length", 14) == 0) ||
	    (n == 6 && strncasecmp(name, "expect", 6) == 0);
}

static int
replay_named(const char *name, size_t n, const char *const *list, int count)
{
	for (int i = 0; i < count; i++) {
		size_t k = strcspn(list[i], ":");
		while (k > 0 && list[i][k - 1] == ' ')
			k--;
		if (k == n && strncasecmp(list[i], name, n) == 0)
			return 1;
	}
	return 0;
}

char *
replay_fields(const char *logged, const char *const *set, int nset,
    const char *const *remove, int nremove, const char *host,
    const char *method, int64_t body_len)
{
	struct evbuffer *f = evbuffer_new();
	struct head_text_iter it;
	const char *name;
	int have_host = 0;
	size_t flen, nl;
	char *out = NULL;

	if (f == NULL)
		return NULL;
	head_text_init(&it, logged);
	while (head_text_next(&it, &name, &nl, NULL, NULL))
		if (!replay_hop_by_hop(name, nl, logged) &&
		    !replay_named(name, nl, remove, nremove) &&
		    !replay_named(name, nl, set, nset)) {
			char *line = head_text_line(&it);
			if (line == NULL) {
				evbuffer_free(f);
				return NULL;
			}
			evbuffer_add_printf(f, "%s\r\n", line);
			free(line);
			if (nl == 4 && strncasecmp(name, "host", 4) == 0)
				have_host = 1;
		}
	for (int i = 0; i < nset; i++) {
		evbuffer_add_printf(f, "%s\r\n", set[i]);
		if (strncasecmp(set[i], "host:", 5) == 0)
			have_host = 1;
	}
	if (!have_host && !replay_named("host", 4, remove, nremove))
		evbuffer_add_printf(f, "Host: %s\r\n", host);
	/* a body, or a method that takes one: its real length */
	if (body_len > 0 || strcmp(method, "POST") == 0 ||
	    strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0)
		evbuffer_add_printf(
		    f, "Content-Length: %lld\r\n", (long long)body_len);
	evbuffer_add_printf(f, "Connection: close\r\n");
	flen = evbuffer_get_length(f);
	if ((out = malloc(flen + 1)) != NULL) {
		evbuffer_copyout(f, out, flen);
		out[flen] = '\0';
	}
	evbuffer_free(f);
	return out;
}

/*
 * The request to send: line, fields (replay_fields), body — logged, or
 * --body FILE, streamed from the file by the evbuffer.
 */
static int
replay_build(struct replay_job *j, const struct replay_opts *o,
    const char *path, const char *query, const unsigned char *body, size_t blen,
    int64_t file_len)
{
	struct evbuffer *b = j->request = evbuffer_new();
	int rc = -1;

	if (b == NULL ||
	    (j->sent_headers = replay_fields(j->req_headers, o->set, o->nset,
		 o->remove, o->nremove, j->host, j->method,
		 file_len >= 0 ? file_len : (int64_t)blen)) == NULL)
		goto out;
	/* through a proxy, plain http takes the absolute form */
	if (o->via != NULL && !j->tls)
		evbuffer_add_printf(b, "%s %s HTTP/1.1\r\n", j->method, j->url);
	else
		evbuffer_add_printf(b, "%s %s%s%s HTTP/1.1\r\n", j->method,
		    path && *path ? path : "/", query ? "?" : "",
		    query ? query : "");
	evbuffer_add_printf(b, "%s\r\n", j->sent_headers);
	j->sent_head_bytes = evbuffer_get_length(b);
	if (file_len >= 0) {
		int fd = open(o->body_file, O_RDONLY | O_CLOEXEC);
		if (fd == -1 || evbuffer_add_file(b, fd, 0, file_len) == -1) {
			if (fd != -1)
				close(fd);
			goto out;
		}
		j->sent_body_bytes = (uint64_t)file_len;
		/* the record keeps what the capture limit allows */
		size_t keep = (uint64_t)file_len < j->run->capture
		    ? (size_t)file_len
		    : j->run->capture;
		if (keep > 0 && (j->sent_body.data = malloc(keep)) != NULL &&
		    pread(fd, j->sent_body.data, keep, 0) == (ssize_t)keep)
			j->sent_body.len = keep;
	} else if (blen > 0) {
		evbuffer_add(b, body, blen);
		j->sent_body_bytes = blen;
		if ((j->sent_body.data = malloc(blen)) != NULL) {
			memcpy(j->sent_body.data, body, blen);
			j->sent_body.len = blen;
		}
	}
	j->sent_body.total = j->sent_body_bytes;
	j->sent_body.truncated = j->sent_body.total > j->sent_body.len;
	rc = 0;
out:
	return rc;
}

/* ---- the response ---- */

static int
replay_on_status(llhttp_t *p)
{
	struct replay_job *j = p->data;

	if (j->t_first == 0)
		j->t_first = now_us();
	return 0;
}

static int
replay_on_reason(llhttp_t *p, const char *at, size_t len)
{
	struct replay_job *j = p->data;
	size_t room = sizeof(j->reason) - 1 - j->reason_len;

	if (len > room)
		len = room;
	memcpy(j->reason + j->reason_len, at, len);
	j->reason_len += len;
	j->reason[j->reason_len] = '\0';
	return 0;
}

static int
replay_on_field(llhttp_t *p, const char *at, size_t len)
{
	struct replay_job *j = p->data;

	if (j->in_value)
		evbuffer_add(j->resp_head, "\r\n", 2);
	j->in_value = 0;
	evbuffer_add(j->resp_head, at, len);
	return 0;
}

static int
replay_on_value(llhttp_t *p, const char *at, size_t len)
{
	struct replay_job *j = p->data;

	if (!j->in_value)
		evbuffer_add(j->resp_head, ": ", 2);
	j->in_value = 1;
	evbuffer_add(j->resp_head, at, len);
	return 0;
}

static int
replay_on_headers(llhttp_t *p)
{
	struct replay_job *j = p->data;

	if (j->in_value)
		evbuffer_add(j->resp_head, "\r\n", 2);
	j->in_value = 0;
	if (p->status_code >= 100 && p->status_code < 200) {
		/* an interim answer: forget it, the final one follows */
		evbuffer_drain(j->resp_head, evbuffer_get_length(j->resp_head));
		j->reason_len = 0;
		j->reason[0] = '\0';
		return 0;
	}
	j->status = p->status_code;
	/* a HEAD answer has no body, whatever its length says */
	return j->is_head ? 1 : 0;
}

static int
replay_on_body(llhttp_t *p, const char *at, size_t len)
{
	struct replay_job *j = p->data;
	size_t cap = j->run->capture, take;

	EVP_DigestUpdate(j->sha, at, len);
	j->body.total += len;
	if (j->body.len < cap) {
		take = len < cap - j->body.len ? len : cap - j->body.len;
		if (j->body.len + take > j->body_room) {
			size_t room = j->body_room ? j->body_room * 2 : 16384;
			while (room < j->body.len + take)
				room *= 2;
			if (room > cap)
				room = cap;
			unsigned char *nd = realloc(j->body.data, room);
			if (nd == NULL)
				return -1;
			j->body.data = nd;
			j->body_room = room;
		}
		memcpy(j->body.data + j->body.len, at, take);
		j->body.len += take;
	}
	j->body.truncated = j->body.total > j->body.len;
	return 0;
}

static int
replay_on_complete(llhttp_t *p)
{
	struct replay_job *j = p->data;

	if (p->status_code >= 100 && p->status_code < 200)
		return 0;
	j->resp_done = 1;
	return HPE_PAUSED;
}

static void
replay_read_response(struct replay_job *j)
{
	struct evbuffer *in = bufferevent_get_input(j->bev);

	while (!j->resp_done && evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		if (j->t_first == 0)
			j->t_first = now_us();
		enum llhttp_errno e =
		    llhttp_execute(&j->parser, v.iov_base, v.iov_len);
		j->recv_bytes += v.iov_len;
		evbuffer_drain(in, v.iov_len);
		if (e == HPE_PAUSED)
			break;
		if (e != HPE_OK) {
			char why[200];
			snprintf(why, sizeof(why), "malformed response: %s",
			    llhttp_get_error_reason(&j->parser));
			replay_finish(j, why);
			return;
		}
	}
	if (j->resp_done)
		replay_finish(j, NULL);
}

/* ---- the connection ---- */

static void replay_readcb(struct bufferevent *bev, void *arg);
static void replay_eventcb(struct bufferevent *bev, short what, void *arg);

static void
replay_send(struct replay_job *j)
{
	j->phase = REPLAY_EXCHANGE;
	j->t_sent = now_us();
	j->sent_bytes = evbuffer_get_length(j->request);
	bufferevent_setcb(j->bev, replay_readcb, NULL, replay_eventcb, j);
	if (bufferevent_write_buffer(j->bev, j->request) == -1)
		replay_finish(j, "cannot send the request");
	bufferevent_enable(j->bev, EV_READ | EV_WRITE);
}

static void
replay_start_tls(struct replay_job *j)
{
	SSL *ssl = tls_origin_ssl_new(j->run->ctx, j->host, j->host);
	struct bufferevent *f = NULL;

	if (ssl != NULL)
		f = bufferevent_openssl_filter_new(j->run->base, j->bev, ssl,
		    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (f == NULL) {
		SSL_free(ssl);
		replay_finish(j, "cannot set up TLS");
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(f, 1);
	j->raw = j->bev;
	j->bev = f;
	j->phase = REPLAY_TLS;
	bufferevent_setcb(f, NULL, NULL, replay_eventcb, j);
	bufferevent_enable(f, EV_READ | EV_WRITE);
}

/* The origin's handshake is done: its certificate judged as the proxy
 * judges it (unless --insecure-upstream), then the request. */
static void
replay_tls_done(struct replay_job *j)
{
	SSL *ssl = bufferevent_openssl_get_ssl(j->bev);
	const char *verr;
	char why[300];

	if (!j->run->o->insecure && (verr = tls_origin_error(ssl)) != NULL) {
		snprintf(
		    why, sizeof(why), "origin certificate rejected: %s", verr);
		replay_finish(j, why);
		return;
	}
	tls_describe(ssl, j->tls_desc, sizeof(j->tls_desc));
	replay_send(j);
}

/* After TCP (and the proxy's 200 to CONNECT): TLS, or the request. */
static void
replay_connected(struct replay_job *j)
{
	if (j->tls)
		replay_start_tls(j);
	else
		replay_send(j);
}

static void
replay_readcb(struct bufferevent *bev, void *arg)
{
	struct replay_job *j = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	if (j->phase == REPLAY_PROXY_CONNECT) {
		/* the proxy's answer to CONNECT: a head, then our TLS */
		struct evbuffer_ptr end =
		    evbuffer_search(in, "\r\n\r\n", 4, NULL);
		if (end.pos == -1 ||
		    (size_t)end.pos + 4 > sizeof(j->connect_buf) - 1) {
			if (end.pos != -1) {
				replay_finish(j,
				    "the proxy's CONNECT answer is "
				    "too long");
				return;
			}
			if (evbuffer_get_length(in) >=
			    sizeof(j->connect_buf) - 1)
				replay_finish(j,
				    "the proxy's CONNECT answer is "
				    "too long");
			return;
		}
		evbuffer_remove(in, j->connect_buf, (size_t)end.pos + 4);
		j->connect_buf[end.pos] = '\0';
		if (strncmp(j->connect_buf, "HTTP/1.", 7) != 0 ||
		    strncmp(j->connect_buf + 8, " 200", 4) != 0) {
			char why[300];
			snprintf(why, sizeof(why),
			    "the proxy refused CONNECT: %.*s",
			    (int)strcspn(j->connect_buf, "\r\n"),
			    j->connect_buf);
			replay_finish(j, why);
			return;
		}
		replay_connected(j);
		return;
	}
	replay_read_response(j);
}

/* TCP is up (to the origin, or to --via's proxy), or TLS is. */
static void
replay_on_connected(struct replay_job *j)
{
	if (j->phase == REPLAY_TLS) {
		replay_tls_done(j);
		return;
	}
	if (j->phase != REPLAY_CONNECTING)
		return;
	j->t_connected = now_us();
	if (j->run->o->via != NULL && j->tls) {
		/* CONNECT to the origin through the proxy */
		j->phase = REPLAY_PROXY_CONNECT;
		bufferevent_setcb(
		    j->bev, replay_readcb, NULL, replay_eventcb, j);
		evbuffer_add_printf(bufferevent_get_output(j->bev),
		    "CONNECT %s:%u HTTP/1.1\r\nHost: %s:%u\r\n\r\n", j->host,
		    j->port, j->host, j->port);
		bufferevent_enable(j->bev, EV_READ | EV_WRITE);
		return;
	}
	replay_connected(j);
}

/* The peer closed: the end of a body read until close, else an error. */
static void
replay_on_eof(struct replay_job *j)
{
	if (j->phase == REPLAY_EXCHANGE) {
		replay_read_response(j);
		if (j->phase == REPLAY_DONE)
			return;
		if (llhttp_finish(&j->parser) == HPE_OK && j->status > 0) {
			j->resp_done = 1;
			replay_finish(j, NULL);
			return;
		}
	}
	replay_finish(j,
	    j->status > 0 ? "the origin closed mid-response"
			  : "the origin closed without answering");
}

/* A socket or TLS error: end the job saying which. */
static void
replay_on_error(struct replay_job *j)
{
	char why[300];

	if (j->phase == REPLAY_TLS) {
		SSL *ssl = bufferevent_openssl_get_ssl(j->bev);
		long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
		unsigned long e = bufferevent_get_openssl_error(j->bev);
		if (v != X509_V_OK)
			snprintf(why, sizeof(why),
			    "origin certificate rejected: %s",
			    X509_verify_cert_error_string(v));
		else
			snprintf(why, sizeof(why), "TLS handshake failed: %s",
			    e ? ERR_reason_error_string(e)
			      : "connection closed");
		replay_finish(j, why);
		return;
	}
	snprintf(why, sizeof(why), "%s %s:%u: %s",
	    j->phase == REPLAY_CONNECTING ? "cannot connect to" : "error with",
	    j->server_ip, j->server_port,
	    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	replay_finish(j, why);
}

static void
replay_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct replay_job *j = arg;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED)
		replay_on_connected(j);
	else if (what & BEV_EVENT_EOF)
		replay_on_eof(j);
	else
		replay_on_error(j);
}

static void
replay_resolved(const struct resolve_result *res, void *arg)
{
	struct replay_job *j = arg;
	const struct sockaddr_in *sin;
	char why[300];

	j->dns = NULL;
	j->t_dns = now_us();
	if (res->error != 0 || res->naddrs == 0) {
		snprintf(why, sizeof(why), "cannot resolve %s: %s",
		    j->run->o->via ? j->run->o->via_host : j->host,
		    evutil_gai_strerror(res->error));
		replay_finish(j, why);
		return;
	}
	(void)resolve_addr_text(
	    &res->addrs[0], j->server_ip, sizeof(j->server_ip));
	/* sin_port and sin6_port share their place */
	sin = (const struct sockaddr_in *)&res->addrs[0];
	j->server_port = ntohs(sin->sin_port);
	j->bev =
	    bufferevent_socket_new(j->run->base, -1, BEV_OPT_CLOSE_ON_FREE);
	j->phase = REPLAY_CONNECTING;
	if (j->bev == NULL) {
		replay_finish(j, "out of memory");
		return;
	}
	bufferevent_setcb(j->bev, NULL, NULL, replay_eventcb, j);
	if (bufferevent_socket_connect(j->bev,
		(const struct sockaddr *)&res->addrs[0],
		(int)res->addrlens[0]) == -1) {
		snprintf(why, sizeof(why), "cannot connect to %s:%u",
		    j->server_ip, j->server_port);
		replay_finish(j, why);
	}
}

static void
replay_timeoutcb(evutil_socket_t fd, short what, void *arg)
{
	struct replay_job *j = arg;
	char why[64];

	(void)fd;
	(void)what;
	snprintf(why, sizeof(why), "no answer within %llds",
	    (long long)j->run->o->timeout_s);
	replay_finish(j, why);
}

/* The address to connect to: --resolve's, else the name. */
static const char *
replay_address(const struct replay_opts *o, const char *host)
{
	size_t n = strlen(host);

	for (int i = 0; i < o->nresolve; i++)
		if (strncasecmp(o->resolve[i], host, n) == 0 &&
		    o->resolve[i][n] == ':')
			return o->resolve[i] + n + 1;
	return host;
}

static void
replay_begin(struct replay_job *j)
{
	const struct replay_opts *o = j->run->o;
	struct resolve_ctx rctx = {j->run->base, j->run->dns, NULL, NULL};
	struct timeval tv = {(time_t)o->timeout_s, 0};

	j->run->active++;
	j->t_start = now_us();
	j->conn_id = store_next_conn_id(j->run->st);
	if (j->conn_id < 0) {
		/* nothing can be stored without an id: said, not recorded */
		replay_finish(j, "no connection id: the database is locked");
		return;
	}
	j->timer = evtimer_new(j->run->base, replay_timeoutcb, j);
	j->resp_head = evbuffer_new();
	j->sha = EVP_MD_CTX_new();
	if (j->timer == NULL || j->resp_head == NULL || j->sha == NULL ||
	    EVP_DigestInit_ex(j->sha, EVP_sha256(), NULL) != 1) {
		replay_finish(j, "out of memory");
		return;
	}
	evtimer_add(j->timer, &tv);
	llhttp_init(&j->parser, HTTP_RESPONSE, &replay_settings);
	j->parser.data = j;
	j->phase = REPLAY_RESOLVING;
	/* each replay looks its name up afresh (no cache): its DNS time is
	 * its own; the callback runs on a later turn of the loop */
	if (o->via != NULL)
		j->dns = resolve_start_ctx(
		    &rctx, o->via_host, o->via_port, replay_resolved, j);
	else
		j->dns = resolve_start_ctx(&rctx, replay_address(o, j->host),
		    j->port, replay_resolved, j);
	if (j->dns == NULL)
		replay_finish(j, "out of memory");
}

/* ---- the end of one replay ---- */

/* The connection row of a replay: one request, its own connection. */
static void
replay_record_conn(const struct replay_job *j, struct store_conn *c)
{
	c->id = j->conn_id;
	c->listener = strdup("replay");
	c->client_ip = strdup("-");
	c->target_host = strdup(j->host);
	c->target_port = (int)j->port;
	c->server_ip = j->server_ip[0] ? strdup(j->server_ip) : NULL;
	c->server_port = (int)j->server_port;
	c->protocol = strdup(j->tls ? "tls" : "http");
	c->t_accept_us = j->t_start;
	c->t_close_us = j->t_end;
	c->bytes_to_server = j->sent_bytes;
	c->bytes_from_server = j->recv_bytes;
	c->nrequests = 1;
	c->close_reason = strdup(j->error ? "error" : "done");
	c->error = j->error ? strdup(j->error) : NULL;
	c->tls_server = j->tls_desc[0] ? strdup(j->tls_desc) : NULL;
}

/* The path and query of r as sent (the URL's, after its authority). */
static void
replay_record_path(const struct replay_job *j, struct store_request *r)
{
	const char *u = strstr(j->url, "://");
	const char *p = u ? strchr(u + 3, '/') : NULL;
	const char *q = p ? strchr(p, '?') : NULL;

	r->path = p ? strndup(p, q ? (size_t)(q - p) : strlen(p)) : strdup("/");
	r->query = q ? strdup(q + 1) : NULL;
}

/*
 * The answer into r: status, head, and the captured body, which moves to
 * the record (its size stays in j for the report). With --diff, j keeps
 * its own copies of the head and body for the comparison.
 */
static void
replay_record_response(struct replay_job *j, struct store_request *r)
{
	size_t hl;

	if (j->status > 0) {
		r->status = j->status;
		r->resp_version = strdup("1.1");
		hl = evbuffer_get_length(j->resp_head);
		r->resp_headers = malloc(hl + 1);
		if (r->resp_headers != NULL) {
			evbuffer_copyout(j->resp_head, r->resp_headers, hl);
			r->resp_headers[hl] = '\0';
		}
		r->resp_header_bytes = hl;
		if (j->run->o->diff && r->resp_headers != NULL)
			j->resp_headers = strdup(r->resp_headers);
	}
	if (j->run->o->diff && j->body.len > 0 &&
	    (j->resp_copy = malloc(j->body.len)) != NULL) {
		memcpy(j->resp_copy, j->body.data, j->body.len);
		j->resp_copy_len = j->body.len;
	}
	/* the capture goes to the record; its size stays for the report */
	j->resp_total = j->body.total;
	j->resp_truncated = j->body.truncated;
	r->resp_body = j->body;
	memset(&j->body, 0, sizeof(j->body));
}

static void
replay_record(struct replay_job *j)
{
	struct store_rec *rec = store_rec_new(STORE_REC_REQUEST);
	struct store_rec *crec = store_rec_new(STORE_REC_CONN);
	struct store_request *r;

	if (rec == NULL || crec == NULL || j->conn_id < 0) {
		store_rec_free(rec);
		store_rec_free(crec);
		return;
	}
	r = &rec->u.req;
	r->conn_id = j->conn_id;
	r->seq = 1;
	r->t_start_us = j->t_start;
	r->client_ip = strdup("-");
	r->scheme = strdup(j->scheme);
	r->method = strdup(j->method);
	r->host = strdup(j->host);
	r->port = (int)j->port;
	replay_record_path(j, r);
	r->req_version = strdup("1.1");
	r->req_headers = j->sent_headers;
	j->sent_headers = NULL;
	r->req_header_bytes = j->sent_head_bytes;
	r->req_body = j->sent_body;
	memset(&j->sent_body, 0, sizeof(j->sent_body));
	replay_record_response(j, r);
	{
		size_t n;
		const char *v =
		    head_text_find(r->resp_headers, "content-type", &n);
		if (v != NULL)
			r->content_type = strndup(v, n);
	}
	r->server_ip = j->server_ip[0] ? strdup(j->server_ip) : NULL;
	r->server_port = (int)j->server_port;
	r->dns_us = j->t_dns ? j->t_dns - j->t_start : -1;
	r->connect_us = j->t_connected ? j->t_connected - j->t_dns : -1;
	r->ttfb_us = j->t_first && j->t_sent ? j->t_first - j->t_sent : -1;
	r->total_us = j->t_end - j->t_start;
	r->error = j->error ? strdup(j->error) : NULL;
	r->replay_of = j->orig_id;

	replay_record_conn(j, &crec->u.conn);
	(void)store_submit(j->run->st, crec);
	(void)store_submit(j->run->st, rec);
}

static void
replay_next_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	replay_start_next(arg);
}

static void
replay_finish(struct replay_job *j, const char *error)
{
	struct replay_run *run = j->run;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;

	if (j->phase == REPLAY_DONE)
		return;
	j->phase = REPLAY_DONE;
	j->t_end = now_us();
	if (error != NULL)
		j->error = strdup(error);
	if (j->sha != NULL && error == NULL &&
	    EVP_DigestFinal_ex(j->sha, md, &mdlen) == 1)
		for (unsigned i = 0; i < mdlen; i++)
			snprintf(j->resp_sha + 2 * i, 3, "%02x", md[i]);
	resolve_cancel(j->dns);
	j->dns = NULL;
	if (j->timer != NULL)
		event_free(j->timer);
	j->timer = NULL;
	if (j->bev != NULL)
		bufferevent_free(j->bev); /* the filter frees j->raw */
	else if (j->raw != NULL)
		bufferevent_free(j->raw);
	j->bev = j->raw = NULL;
	replay_record(j);
	run->active--;
	run->done++;
	/* the next one from the loop, not from this stack: a run of
	 * replays that fail at once must not nest */
	if (event_base_once(
		run->base, -1, EV_TIMEOUT, replay_next_cb, run, NULL) == -1)
		replay_start_next(run);
}

static void
replay_start_next(struct replay_run *run)
{
	while (run->active < (size_t)run->o->concurrency &&
	    run->next < run->njobs) {
		struct replay_job *j = &run->jobs[run->next++];
		if (j->refused != NULL) {
			run->done++;
			continue;
		}
		replay_begin(j);
	}
	if (run->done == run->njobs)
		event_base_loopbreak(run->base);
}

/* ---- loading the originals ---- */

static char *
replay_dup(sqlite3_stmt *st, const char *name)
{
	const char *t = out_col_text(st, name);

	return t ? strdup(t) : NULL;
}

/*
 * Whether row st is to be refused rather than sent: not an HTTP request,
 * or its body cut at the capture limit (unless --allow-truncated or
 * --body). 1 with the reason in j->refused, else 0.
 */
static int
replay_job_refused(sqlite3_stmt *st, struct replay_job *j,
    const struct replay_opts *o, int64_t file_len)
{
	const char *scheme = out_col_text(st, "scheme");
	char why[300];

	if (out_col_text(st, "method") == NULL || scheme == NULL ||
	    (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
		snprintf(why, sizeof(why),
		    "#%lld is %s: there is no HTTP request to send again",
		    (long long)j->orig_id,
		    scheme && strcmp(scheme, "connect") == 0
			? "a CONNECT tunnel (its requests have their own ids)"
			: "not a readable request");
		j->refused = strdup(why);
		return 1;
	}
	if (out_col_int(st, "req_body_truncated") && file_len < 0 &&
	    !o->allow_truncated) {
		snprintf(why, sizeof(why),
		    "#%lld's body was truncated at the capture limit (%lld "
		    "bytes logged): not sent (--allow-truncated sends what was "
		    "kept, --body FILE another body)",
		    (long long)j->orig_id,
		    (long long)out_col_int(st, "req_body_size"));
		j->refused = strdup(why);
		return 1;
	}
	return 0;
}

/* Fill job j from request row st (already stepped). 0 / -1. */
static int
replay_job_load(sqlite3 *db, sqlite3_stmt *st, struct replay_job *j,
    const struct replay_opts *o, int64_t file_len)
{
	const char *scheme = out_col_text(st, "scheme");
	const char *method = out_col_text(st, "method");
	unsigned char *body = NULL;
	size_t blen = 0;
	int rc;

	j->orig_id = out_col_int(st, "id");
	j->orig_status = (int)out_col_int(st, "status");
	j->orig_size = out_col_int(st, "resp_body_size");
	j->orig_total_us = out_col_int(st, "total_us");
	j->orig_sha = replay_dup(st, "resp_body_sha");
	j->orig_truncated = (int)out_col_int(st, "resp_body_truncated");
	if (o->diff) {
		j->orig_headers = replay_dup(st, "resp_headers");
		j->orig_reason = replay_dup(st, "resp_reason");
	}
	if (replay_job_refused(st, j, o, file_len))
		return 0;
	j->method = strdup(method);
	j->scheme = strdup(scheme);
	j->host = replay_dup(st, "host");
	j->port = (unsigned)out_col_int(st, "port");
	j->req_headers = replay_dup(st, "req_headers");
	j->tls = strcmp(scheme, "https") == 0;
	j->is_head = strcmp(method, "HEAD") == 0;
	j->url = requrl_format(scheme, method, j->host, (int)j->port,
	    out_col_text(st, "path"), out_col_text(st, "query"));
	if (j->host == NULL || j->url == NULL)
		return -1;
	if (file_len < 0 && out_col_text(st, "req_body_sha") != NULL &&
	    db_body(db, out_col_text(st, "req_body_sha"), &body, &blen) == -1)
		return -1;
	rc = replay_build(j, o, out_col_text(st, "path"),
	    out_col_text(st, "query"), body, blen, file_len);
	free(body);
	return rc;
}

static void
replay_job_free(struct replay_job *j)
{
	free(j->orig_sha);
	free(j->orig_headers);
	free(j->orig_reason);
	free(j->resp_headers);
	free(j->resp_copy);
	free(j->method);
	free(j->scheme);
	free(j->host);
	free(j->url);
	free(j->req_headers);
	free(j->sent_headers);
	free(j->refused);
	free(j->error);
	free(j->body.data);
	free(j->sent_body.data);
	if (j->request != NULL)
		evbuffer_free(j->request);
	if (j->resp_head != NULL)
		evbuffer_free(j->resp_head);
	EVP_MD_CTX_free(j->sha);
}

/* ---- output ---- */

static const char *
replay_match(const struct replay_job *j)
{
	if (j->error != NULL || j->orig_sha == NULL || j->orig_truncated ||
	    j->resp_truncated)
		return j->orig_sha == NULL && j->error == NULL &&
			j->resp_total == 0 && j->orig_size == 0
		    ? "same"
		    : "unknown";
	return strcmp(j->orig_sha, j->resp_sha) == 0 ? "same" : "differs";
}

/* The original's stored response body (sha) as a malloc'd copy in *out,
 * *len; 0, or -1 when it is gone. */
static int
replay_orig_body(sqlite3 *db, const char *sha, unsigned char **out, size_t *len)
{
	*out = NULL;
	*len = 0;
	if (sha == NULL)
		return 0;
	return db_body(db, sha, out, len) == 1 ? 0 : -1;
}

/*
 * --diff: how job j's answer differs from its original's, as the object
 * diff_print prints: status, end-to-end headers, the bodies decoded per
 * their Content-Encoding. A new reference, NULL when there is no answer
 * to compare.
 */
static json_t *
replay_diff(sqlite3 *db, const struct replay_job *j)
{
	struct readable ro, rr;
	unsigned char *ob = NULL;
	size_t olen = 0;
	json_t *d, *body = NULL;
	char note[400];

	if (j->refused != NULL || j->status == 0)
		return NULL;
	d = json_object();
	json_object_set_new(d, "status",
	    json_pack("{s:b,s:i,s:i,s:o,s:o}", "same",
		j->orig_status == j->status, "original", j->orig_status,
		"replay", j->status, "original_reason",
		out_json_str(j->orig_reason), "replay_reason",
		out_json_str(j->reason)));
	json_object_set_new(
	    d, "headers", diff_headers(j->orig_headers, j->resp_headers));
	if (replay_orig_body(db, j->orig_sha, &ob, &olen) == -1) {
		json_object_set_new(d, "body", json_null());
		json_object_set_new(d, "body_note",
		    json_string("the original's body is no longer in the "
				"database"));
		return d;
	}
	readable_body(j->orig_headers, ob ? (const void *)ob : "", olen, &ro);
	readable_body(j->resp_headers,
	    j->resp_copy ? (const void *)j->resp_copy : "", j->resp_copy_len,
	    &rr);
	body = diff_bodies(ro.data, ro.len, rr.data, rr.len);
	if (body != NULL) {
		snprintf(note, sizeof(note), "%s%s%s%s%s%s",
		    ro.note[0] ? "original: " : "", ro.note,
		    ro.note[0] && rr.note[0] ? "; " : "",
		    rr.note[0] ? "replay: " : "", rr.note,
		    j->orig_truncated || j->resp_truncated
			? (ro.note[0] || rr.note[0]
				  ? "; cut at the capture limit"
				  : "cut at the capture limit")
			: "");
		if (note[0])
			json_object_set_new(body, "note", json_string(note));
		json_object_set_new(d, "body", body);
	}
	readable_free(&ro);
	readable_free(&rr);
	free(ob);
	return d;
}

/* Job j as an object of the --json array. A new reference. */
static json_t *
replay_job_json(
    sqlite3 *db, const struct replay_run *run, const struct replay_job *j)
{
	double ot = (double)j->orig_total_us / 1000.0;
	double nt = (double)(j->t_end - j->t_start) / 1000.0;
	json_t *o;

	if (j->refused != NULL)
		return json_pack("{s:I,s:n,s:s}", "id", (json_int_t)j->orig_id,
		    "replay_id", "refused", j->refused);
	o = json_object();
	json_object_set_new(o, "id", json_integer(j->orig_id));
	json_object_set_new(o, "replay_id",
	    j->new_id > 0 ? json_integer(j->new_id) : json_null());
	json_object_set_new(o, "method", json_string(j->method));
	json_object_set_new(o, "url", out_json_str(j->url));
	json_object_set_new(o, "original",
	    json_pack("{s:i,s:I,s:f}", "status", j->orig_status, "size",
		(json_int_t)j->orig_size, "time_ms", ot));
	json_object_set_new(o, "replay",
	    json_pack("{s:i,s:I,s:f,s:o}", "status", j->status, "size",
		(json_int_t)j->resp_total, "time_ms", nt, "error",
		out_json_str(j->error)));
	json_object_set_new(o, "body", json_string(replay_match(j)));
	if (run->o->diff) {
		json_t *d = replay_diff(db, j);
		json_object_set_new(o, "diff", d ? d : json_null());
	}
	return o;
}

/* Job j as a line of text, and with --diff how its answer differs. */
static void
replay_job_text(sqlite3 *db, const struct replay_run *run,
    const struct replay_job *j, int colour)
{
	double ot = (double)j->orig_total_us / 1000.0;
	double nt = (double)(j->t_end - j->t_start) / 1000.0;
	char osz[24], nsz[24];

	if (j->refused != NULL) {
		printf(
		    "#%lld  refused: %s\n", (long long)j->orig_id, j->refused);
		return;
	}
	out_size((uint64_t)j->orig_size, osz, sizeof(osz));
	out_size(j->resp_total, nsz, sizeof(nsz));
	printf("#%lld -> #%lld  %s %s  status %d->%d  size %s->%s  "
	       "time %.1fms->%.1fms  body %s%s%s\n",
	    (long long)j->orig_id, (long long)j->new_id, j->method, j->url,
	    j->orig_status, j->status, osz, nsz, ot, nt, replay_match(j),
	    j->error ? "  error: " : "", j->error ? j->error : "");
	if (run->o->diff) {
		json_t *d = replay_diff(db, j);
		if (d != NULL)
			diff_print(stdout, d, colour);
		json_decref(d);
	}
}

static void
replay_print(sqlite3 *db, const struct replay_run *run, int json)
{
	json_t *a = json ? json_array() : NULL;
	int colour = !json && run->o->diff && isatty(STDOUT_FILENO) &&
	    getenv("NO_COLOR") == NULL;

	for (size_t i = 0; i < run->njobs; i++) {
		if (a != NULL)
			json_array_append_new(
			    a, replay_job_json(db, run, &run->jobs[i]));
		else
			replay_job_text(db, run, &run->jobs[i], colour);
	}
	if (a != NULL) {
		json_dumpf(a, stdout, JSON_INDENT(2) | OUT_JSON_REALS);
		putchar('\n');
		json_decref(a);
	}
}

/* ---- the command ---- */

/* --via HOST:PORT into o. 0, or CLI_USAGE after a message. */
static int
replay_opt_via(struct replay_opts *o, char *arg)
{
	const char *colon = strrchr(arg, ':');
	int64_t port;

	if (colon == NULL || colon == arg ||
	    (size_t)(colon - arg) >= sizeof(o->via_host) ||
	    args_int(REPLAY_CMD, "via port", colon + 1, 1, 65535, &port) == -1)
		return args_usage(
		    REPLAY_CMD, "--via wants HOST:PORT, got '%s'", arg);
	memcpy(o->via_host, arg, (size_t)(colon - arg));
	o->via_host[colon - arg] = '\0';
	o->via_port = (unsigned)port;
	o->via = arg;
	return 0;
}

/* The repeatable edits: --set-header, --remove-header, --resolve. */
static int
replay_opt_edit(struct replay_opts *o, int ch, char *arg)
{
	switch (ch) {
	case 'S':
		if (strchr(arg, ':') == NULL || arg[0] == ':' ||
		    strpbrk(arg, "\r\n") != NULL || o->nset >= REPLAY_MAX_EDITS)
			return args_usage(REPLAY_CMD,
			    "--set-header wants 'Name: value', got '%s'", arg);
		o->set[o->nset++] = arg;
		return 0;
	case 'X':
		if (arg[0] == '\0' || strchr(arg, ':') != NULL ||
		    o->nremove >= REPLAY_MAX_EDITS)
			return args_usage(REPLAY_CMD,
			    "--remove-header wants a header name, got '%s'",
			    arg);
		o->remove[o->nremove++] = arg;
		return 0;
	default:
		if (strchr(arg, ':') == NULL || o->nresolve >= REPLAY_MAX_EDITS)
			return args_usage(REPLAY_CMD,
			    "--resolve wants HOST:ADDR, got '%s'", arg);
		o->resolve[o->nresolve++] = arg;
		return 0;
	}
}

/* A numeric option: --repeat, --concurrency, --timeout. */
static int
replay_opt_number(struct replay_opts *o, int ch, const char *arg)
{
	int rc = ch == 'r'
	    ? args_int(REPLAY_CMD, "repeat", arg, 1, 100000, &o->repeat)
	    : ch == 'c'
	    ? args_int(REPLAY_CMD, "concurrency", arg, 1, 1000, &o->concurrency)
	    : args_int(REPLAY_CMD, "timeout", arg, 1, 3600, &o->timeout_s);

	return rc == -1 ? CLI_USAGE : 0;
}

static int
replay_opt(int ch, char *arg, void *opts)
{
	struct replay_opts *o = opts;

	switch (ch) {
	case 'd':
		o->db = arg;
		break;
	case 'f':
		o->filter = arg;
		break;
	case 'v':
		return replay_opt_via(o, arg);
	case 'S':
	case 'X':
	case 'R':
		return replay_opt_edit(o, ch, arg);
	case 'r':
	case 'c':
	case 't':
		return replay_opt_number(o, ch, arg);
	case 'b':
		o->body_file = arg;
		break;
	case 'U':
		o->upstream_ca = arg;
		break;
	case 'T':
		o->allow_truncated = 1;
		break;
	case 'K':
		o->insecure = 1;
		break;
	case 'j':
		o->json = 1;
		break;
	case 'D':
		o->diff = 1;
		break;
	}
	return 0;
}

static int
replay_parse(int argc, char **argv, struct replay_opts *o)
{
	static const struct option longopts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"filter", required_argument, NULL, 'f'},
	    {"via", required_argument, NULL, 'v'},
	    {"set-header", required_argument, NULL, 'S'},
	    {"remove-header", required_argument, NULL, 'X'},
	    {"body", required_argument, NULL, 'b'},
	    {"repeat", required_argument, NULL, 'r'},
	    {"concurrency", required_argument, NULL, 'c'},
	    {"allow-truncated", no_argument, NULL, 'T'},
	    {"resolve", required_argument, NULL, 'R'},
	    {"upstream-ca", required_argument, NULL, 'U'},
	    {"insecure-upstream", no_argument, NULL, 'K'},
	    {"timeout", required_argument, NULL, 't'},
	    {"json", no_argument, NULL, 'j'},
	    {"diff", no_argument, NULL, 'D'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static const struct args_spec spec = {
	    REPLAY_CMD, replay_help, NULL, longopts, replay_opt};
	int rc;

	memset(o, 0, sizeof(*o));
	o->db = CLI_DEFAULT_DB;
	o->repeat = 1;
	o->concurrency = 1;
	o->timeout_s = 30;
	if ((rc = args_parse(&spec, argc, argv, o)) != CLI_OK ||
	    (rc = args_ids(REPLAY_CMD, argc, argv, &o->ids, &o->nids)) != 0)
		return rc;
	if (o->nids == 0 && o->filter == NULL)
		return args_usage(
		    REPLAY_CMD, "which requests? give IDs or --filter EXPR");
	return CLI_OK;
}

/* Load every selected original into run->jobs (repeat times each). */
static int
replay_load(sqlite3 *db, const struct replay_opts *o, struct replay_run *run,
    int64_t file_len)
{
	struct select *sel;
	sqlite3_stmt *st = NULL;
	int64_t id;
	int rc, usage = 0;
	size_t cap = 0;

	sel = select_new(db, REPLAY_CMD, o->ids, o->nids, o->filter, &usage);
	if (sel == NULL)
		return usage ? CLI_USAGE : CLI_ERROR;
	if (sqlite3_prepare_v2(db, "SELECT * FROM requests WHERE id = ?", -1,
		&st, NULL) != SQLITE_OK) {
		db_warn(REPLAY_CMD, db, "cannot read requests");
		select_free(sel);
		return CLI_ERROR;
	}
	while ((rc = select_next(sel, &id)) == 1) {
		for (int64_t k = 0; k < o->repeat; k++) {
			struct replay_job *j;
			if (run->njobs == cap) {
				size_t ncap = cap ? cap * 2 : 16;
				struct replay_job *nj =
				    realloc(run->jobs, ncap * sizeof(*nj));
				if (nj == NULL) {
					rc = -1;
					goto out;
				}
				run->jobs = nj;
				cap = ncap;
			}
			j = &run->jobs[run->njobs++];
			memset(j, 0, sizeof(*j));
			j->run = run;
			sqlite3_reset(st);
			sqlite3_bind_int64(st, 1, id);
			if (sqlite3_step(st) != SQLITE_ROW ||
			    replay_job_load(db, st, j, o, file_len) == -1) {
				fprintf(stderr,
				    "peephole replay: cannot load request "
				    "%lld\n",
				    (long long)id);
				rc = -1;
				goto out;
			}
		}
	}
out:
	sqlite3_finalize(st);
	select_free(sel);
	if (rc == -1)
		return CLI_ERROR;
	if (run->njobs == 0) {
		fprintf(stderr, "peephole replay: no request matches\n");
		return CLI_ERROR;
	}
	return CLI_OK;
}

/* After the store has written everything: the ids the replays got. */
static void
replay_new_ids(sqlite3 *db, struct replay_run *run)
{
	sqlite3_stmt *s = NULL;

	if (sqlite3_prepare_v2(db,
		"SELECT id FROM requests WHERE conn_id = ? AND replay_of = ?",
		-1, &s, NULL) != SQLITE_OK)
		return;
	for (size_t i = 0; i < run->njobs; i++) {
		struct replay_job *j = &run->jobs[i];
		if (j->refused != NULL)
			continue;
		sqlite3_reset(s);
		sqlite3_bind_int64(s, 1, j->conn_id);
		sqlite3_bind_int64(s, 2, j->orig_id);
		if (sqlite3_step(s) == SQLITE_ROW)
			j->new_id = sqlite3_column_int64(s, 0);
	}
	sqlite3_finalize(s);
}

/* --body FILE's length in *len, -1 without one. CLI_OK, or CLI_USAGE
 * when it is not a file (printed). */
static int
replay_body_len(const struct replay_opts *o, int64_t *len)
{
	struct stat sb;

	*len = -1;
	if (o->body_file == NULL)
		return CLI_OK;
	if (stat(o->body_file, &sb) == -1 || !S_ISREG(sb.st_mode)) {
		fprintf(stderr, "peephole replay: --body %s: %s\n",
		    o->body_file,
		    errno ? strerror(errno) : "not a regular file");
		return CLI_USAGE;
	}
	*len = (int64_t)sb.st_size;
	return CLI_OK;
}

/*
 * What the replays run on: the loop, a resolver configured as the proxy's
 * is by default, the origin TLS context, and the store the replays are
 * written through. CLI_OK, or CLI_ERROR (printed); replay_run_free frees
 * what was set up either way.
 */
static int
replay_setup(struct replay_run *run, const struct config *cfg)
{
	const struct replay_opts *o = run->o;
	char err[512];

	if ((run->base = event_base_new()) == NULL ||
	    (run->dns = evdns_base_new(
		 run->base, EVDNS_BASE_DISABLE_WHEN_INACTIVE)) == NULL ||
	    resolve_configure_dns(run->dns, cfg) == -1) {
		fprintf(
		    stderr, "peephole replay: cannot set up the resolver\n");
		return CLI_ERROR;
	}
	if ((run->ctx = tls_origin_ctx_new(o->upstream_ca, err, sizeof(err))) ==
	    NULL) {
		fprintf(stderr, "peephole replay: %s\n", err);
		return CLI_ERROR;
	}
	/* the replays become rows in the same file, written as the proxy
	 * writes them: by the store's own thread */
	if ((run->st = store_open(
		 o->db, (struct store_limits){0, 0}, err, sizeof(err))) != NULL)
		store_set_deriver(run->st, record_derive);
	if (run->st == NULL || store_start(run->st) == -1) {
		fprintf(stderr, "peephole replay: %s\n",
		    run->st ? "cannot start the store" : err);
		return CLI_ERROR;
	}
	return CLI_OK;
}

/* Run every job to its end, then let the store write the last rows. */
static void
replay_dispatch(struct replay_run *run)
{
	replay_settings.on_status_complete = replay_on_status;
	replay_settings.on_status = replay_on_reason;
	replay_settings.on_header_field = replay_on_field;
	replay_settings.on_header_value = replay_on_value;
	replay_settings.on_headers_complete = replay_on_headers;
	replay_settings.on_body = replay_on_body;
	replay_settings.on_message_complete = replay_on_complete;
	replay_start_next(run);
	if (run->done < run->njobs)
		event_base_dispatch(run->base);
	store_close(run->st);
	run->st = NULL;
}

/* 1 if a replay was refused, failed, or got no answer. */
static int
replay_any_failed(const struct replay_run *run)
{
	for (size_t i = 0; i < run->njobs; i++)
		if (run->jobs[i].refused || run->jobs[i].error ||
		    run->jobs[i].status == 0)
			return 1;
	return 0;
}

static void
replay_run_free(struct replay_run *run)
{
	store_close(run->st);
	/* the resolver before the loop: freeing it ends lookups still in
	 * flight, whose requests free their events on the loop */
	if (run->dns != NULL)
		evdns_base_free(run->dns, 1);
	if (run->base != NULL)
		event_base_free(run->base);
	for (size_t i = 0; i < run->njobs; i++)
		replay_job_free(&run->jobs[i]);
	free(run->jobs);
	SSL_CTX_free(run->ctx);
}

int
cli_replay(int argc, char **argv)
{
	struct replay_opts o;
	struct replay_run run;
	struct config defaults;
	sqlite3 *db = NULL;
	int rc;
	int64_t file_len;

	memset(&run, 0, sizeof(run));
	config_init(&defaults);
	if ((rc = replay_parse(argc, argv, &o)) != CLI_OK) {
		rc = rc == ARGS_HELP ? CLI_OK : rc;
		goto out;
	}
	run.o = &o;
	run.capture = defaults.body_capture_bytes;
	if ((rc = replay_body_len(&o, &file_len)) != CLI_OK)
		goto out;
	rc = CLI_ERROR;
	if ((db = db_open_readonly(REPLAY_CMD, o.db)) == NULL)
		goto out;
	if ((rc = replay_load(db, &o, &run, file_len)) != CLI_OK)
		goto out;
	if (o.insecure)
		fprintf(stderr,
		    "peephole replay: --insecure-upstream: origin "
		    "certificates are NOT verified\n");
	if ((rc = replay_setup(&run, &defaults)) != CLI_OK)
		goto out;
	replay_dispatch(&run);
	replay_new_ids(db, &run);
	replay_print(db, &run, o.json);
	rc = replay_any_failed(&run) ? CLI_ERROR : CLI_OK;
out:
	replay_run_free(&run);
	config_free(&defaults);
	sqlite3_close(db);
	free(o.ids);
	return rc;
}
