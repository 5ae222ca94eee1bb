/*
 * replay: the client — one job's send on the event loop: resolve, connect
 * (to the origin, or CONNECT through --via), TLS with the origin's
 * certificate judged as the proxy judges it, send, parse the answer with
 * llhttp, and at the end (replay_finish) record it and start the next.
 * Everything here runs on the one loop thread of the command.
 */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy/cli/replay_int.h"
#include "proxy/log.h"
#include "proxy/net/resolve.h"
#include "proxy/net/tls.h"
#include "proxy/store/store.h"

static llhttp_settings_t replay_settings;

static void replay_start_next(struct replay_run *run);
static void replay_finish(struct replay_job *j, const char *error);

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

/* Run every job to its end, then let the store write the last rows. */
void
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
