/*
 * exchange: one request and its answer (see exchange.h).
 */
#include "proxy/net/exchange.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/util.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf/config.h"
#include "proxy/http/head.h"
#include "proxy/http/onboard.h"
#include "proxy/http/respond.h"
#include "proxy/http/url.h"
#include "proxy/log.h"
#include "proxy/net/conn_int.h"
#include "proxy/net/dial.h"
#include "proxy/net/h1.h"
#include "proxy/net/intercept.h"
#include "proxy/net/offline.h"
#include "proxy/net/record.h"
#include "proxy/net/relay.h"
#include "proxy/net/resolve.h"
#include "proxy/net/selfpage.h"
#include "proxy/net/server.h"
#include "proxy/net/stream.h"
#include "proxy/net/upstream.h"
#include "proxy/net/worker.h"
#include "proxy/store/store.h"

/* Append a body span to a capture, up to the capture limit. */
void
exchange_capture(struct conn *c, struct store_body *b, size_t *room,
    uint64_t expect, const char *at, size_t len)
{
	size_t cap = c->w->cfg->body_capture_bytes, take;

	b->total += len;
	if (!c->w->cfg->record_flows || b->len >= cap) {
		b->truncated = b->total > b->len;
		return;
	}
	take = len < cap - b->len ? len : cap - b->len;
	if (b->len + take > *room) {
		/*
		 * Size the buffer once when the length is announced; else
		 * double from 16 KiB. Either way never past the cap.
		 */
		size_t ncap = *room ? *room * 2 : 16384;
		if (*room == 0 && expect > 0)
			ncap = expect < cap ? (size_t)expect : cap;
		while (ncap < b->len + take)
			ncap *= 2;
		if (ncap > cap)
			ncap = cap;
		unsigned char *nd = realloc(b->data, ncap);
		if (nd == NULL) {
			b->truncated = 1;
			return;
		}
		b->data = nd;
		*room = ncap;
	}
	memcpy(b->data + b->len, at, take);
	b->len += take;
	b->truncated = b->total > b->len;
}

/* Give back what a capture reserved past its bytes before it waits in the
 * store's queue, which counts only the bytes. */
static void
exchange_capture_trim(struct store_body *b, size_t *room)
{
	unsigned char *nd;

	if (b->data == NULL || *room <= b->len + b->len / 8)
		return;
	if (b->len == 0) {
		free(b->data);
		b->data = NULL;
	} else if ((nd = realloc(b->data, b->len)) != NULL)
		b->data = nd;
	else
		return;
	*room = b->len;
}

/* A span of response body from elsewhere than the origin (server replay):
 * captured for the record like an origin's. */
void
exchange_capture_resp(struct conn *c, const void *at, size_t len)
{
	if (c->ex.rec != NULL)
		exchange_capture(c, &c->ex.rec->u.req.resp_body,
		    &c->ex.resp_room, 0, at, len);
}

void
exchange_rec_fail(struct conn *c, int status, const char *err)
{
	if (c->ex.rec == NULL)
		return;
	if (status && c->ex.rec->u.req.status == 0)
		c->ex.rec->u.req.status = status;
	if (err && c->ex.rec->u.req.error == NULL)
		c->ex.rec->u.req.error = strdup(err);
}

/*
 * Finish an exchange record and hand it to the store (the h1 exchange's,
 * or an h2 stream's). Returns 1 when the store is past its limit (the
 * caller pauses this client), else 0.
 */
int
exchange_submit_rec(
    struct conn *c, struct store_rec *rec, size_t *req_room, size_t *resp_room)
{
	struct store_request *r = &rec->u.req;
	int64_t now = now_us();

	r->total_us = now - r->t_start_us;
	if (r->server_ip == NULL && c->up != NULL && c->up->ip[0]) {
		r->server_ip = strdup(c->up->ip);
		r->server_port = c->up->ip_port;
	}
	atomic_fetch_add_explicit(&c->w->exchanges, 1, memory_order_relaxed);
	if (c->w->store == NULL) {
		store_rec_free(rec);
		return 0;
	}
	exchange_capture_trim(&r->req_body, req_room);
	exchange_capture_trim(&r->resp_body, resp_room);
	/* the writer prints the line once the row has its id; the CONNECT
	 * that opens a tunnel is noise unless asked for */
	rec->print = !c->w->cfg->quiet &&
	    (c->w->cfg->verbose || r->method == NULL ||
		strcmp(r->method, "CONNECT") != 0);
	return store_submit(c->w->store, rec);
}

int
exchange_submit(struct conn *c)
{
	struct store_rec *rec = c->ex.rec;

	if (rec == NULL)
		return 0;
	c->ex.rec = NULL;
	return exchange_submit_rec(c, rec, &c->ex.req_room, &c->ex.resp_room);
}

/* Start the record for a request whose head just completed. */
int
exchange_begin(struct conn *c, int head_complete)
{
	struct store_request *r;

	store_rec_free(c->ex.rec);
	c->idle_trimmed = 0;
	c->ex.req_room = c->ex.resp_room = 0;
	/* req_expect is the head's, set as it completed */
	c->ex.resp_expect = 0;
	c->ex.rec = store_rec_new(STORE_REC_REQUEST);
	if (c->ex.rec == NULL)
		return -1;
	r = &c->ex.rec->u.req;
	r->conn_id = c->id;
	r->seq = ++c->tot.nrequests;
	r->t_start_us = c->t_state_us;
	r->client_ip = strdup(c->client_ip);
	r->scheme = strdup("http");
	r->req_header_bytes = c->h1.head_bytes;
	if (!head_complete) {
		/* a head llhttp rejected: keep what is known */
		size_t tlen;
		const char *t = head_target(&c->h1.reqh, &tlen);
		if (tlen > 0)
			r->path = conn_strndup(t, tlen);
		return 0;
	}
	record_request_head(c);
	return 0;
}

/*
 * Answer the current request ourselves with an error, record it, and
 * close after the answer is flushed.
 */
void
exchange_fail(struct conn *c, int status, const char *detail)
{
	struct evbuffer *out = bufferevent_get_output(c->cbev);
	int n;

	if (intercept_up_failed(c, detail))
		return;
	if (c->ex.rec == NULL && exchange_begin(c, 0) == -1) {
		conn_close(c, "error", "out of memory");
		return;
	}
	exchange_rec_fail(c, status, detail);
	if (!c->ex.resp_head_sent) {
		size_t before = evbuffer_get_length(out);
		n = respond_error(out, status, detail, 0, c->ex.is_head);
		if (n > 0) {
			c->tot.bytes_to_client += (uint64_t)n;
			record_own_answer(c, out, before, (size_t)n);
		}
	}
	log_info(
	    "c%lld %s %d %s", (long long)c->id, c->client_ip, status, detail);
	(void)exchange_submit(c);
	upstream_free(c->up);
	c->up = NULL;
	c->client_ka = 0;
	(void)out;
	conn_drain(c, "error", detail);
}

/*
 * Inside a tunnel the origin is the CONNECT target whatever the request
 * says; the record names the host from the Host header (the site), or the
 * SNI, or the target. 0, or -1 for a target that is neither a path nor an
 * absolute URL.
 */
static int
exchange_inner_target(struct conn *c)
{
	if (c->ex.url.form != URL_FORM_ORIGIN &&
	    c->ex.url.form != URL_FORM_ABSOLUTE)
		return -1;
	snprintf(c->ex.url.scheme, sizeof(c->ex.url.scheme), "%s",
	    c->inner == CONN_INNER_HTTPS ? "https" : "http");
	snprintf(
	    c->ex.url.host, sizeof(c->ex.url.host), "%s", c->tls.tunnel_host);
	c->ex.url.port = c->tls.tunnel_port;
	record_site_name(c);
	return 0;
}

/*
 * WeChat's mmTLS "shortlink": POST /mmtls/<8 hex digits> whose bodies are
 * mmTLS records (DESIGN.md). The bodies are relayed as usual and their
 * record headers recorded like a longlink stream's.
 */
static int
exchange_is_shortlink(const struct conn *c)
{
	const char *p = c->ex.url.path;

	if (c->h1.reqp.method != HTTP_POST || p == NULL ||
	    strncmp(p, "/mmtls/", 7) != 0 || strlen(p) != 15)
		return 0;
	for (int i = 7; i < 15; i++)
		if (!isxdigit((unsigned char)p[i]))
			return 0;
	return 1;
}

/* Why a parsed request cannot be forwarded as it is, or NULL. */
static const char *
exchange_refuse(const struct conn *c)
{
	int host = head_find(&c->h1.reqh, "host", 0);

	/* RFC 9112 3.2: two Hosts make the target ambiguous */
	if (host != -1 && head_find(&c->h1.reqh, "host", host + 1) != -1)
		return "more than one Host header";
	if (c->ex.is_connect != (c->ex.url.form == URL_FORM_AUTHORITY))
		return "CONNECT takes host:port; other methods an absolute "
		       "http:// URL";
	return NULL;
}

/* The request head is complete: decide where it goes. */
void
exchange_request_head(struct conn *c)
{
	const char *why = NULL;
	size_t tlen;
	const char *target = head_target(&c->h1.reqh, &tlen);
	struct store_request *r;

	if (exchange_begin(c, 1) == -1) {
		conn_close(c, "error", "out of memory");
		return;
	}
	r = &c->ex.rec->u.req;
	c->ex.is_head = c->h1.reqp.method == HTTP_HEAD;
	c->ex.is_connect = c->h1.reqp.method == HTTP_CONNECT;
	c->ex.req_upgrade = c->h1.reqp.upgrade && !c->ex.is_connect;
	c->client_ka = llhttp_should_keep_alive(&c->h1.reqp);
	url_clear(&c->ex.url);
	if (url_parse(target, tlen, &c->ex.url, &why) == -1) {
		r->path = conn_strndup(target, tlen);
		exchange_fail(c, 400, why);
		return;
	}
	if (c->inner != CONN_INNER_NONE && exchange_inner_target(c) == -1) {
		exchange_fail(c, 400, "inside a tunnel, requests name a path");
		return;
	}
	record_request_target(c);
	if (c->ex.is_connect)
		c->tot.protocol = "tunnel";
	if (c->tot.target_host == NULL && c->ex.url.host[0]) {
		c->tot.target_host = strdup(c->ex.url.host);
		c->tot.target_port = (int)c->ex.url.port;
	}
	if ((why = exchange_refuse(c)) != NULL) {
		exchange_fail(c, 400, why);
		return;
	}
	if (selfpage_is_for_us(c)) {
		selfpage_answer(c);
		return;
	}
	/* a capture being replayed answers before any origin is asked */
	if (c->w->srv->replay != NULL && offline_request(c))
		return;
	exchange_forward(c);
}

void
exchange_origin_failure(const struct conn *c, char *buf, size_t len)
{
	if (c->tls.up_unreachable)
		snprintf(buf, len, "cannot reach %s:%u: %s", c->tls.tunnel_host,
		    c->tls.tunnel_port, c->tls.verify_error);
	else
		snprintf(buf, len,
		    "the certificate of %s:%u is not trusted: %s",
		    c->tls.tunnel_host, c->tls.tunnel_port,
		    c->tls.verify_error);
}

/* The request goes to its origin (its body, if any, still unread). */
void
exchange_forward(struct conn *c)
{
	if (c->tls.verify_error != NULL) {
		/* the origin failed: nothing is forwarded */
		char msg[400];
		exchange_origin_failure(c, msg, sizeof(msg));
		exchange_fail(c, 502, msg);
		return;
	}
	if (c->inner == CONN_INNER_NONE &&
	    strcmp(c->ex.url.scheme, "https") == 0) {
		exchange_fail(c, 501, "https:// URLs are reached with CONNECT");
		return;
	}
	if (c->ex.is_connect) {
		intercept_connect(c);
		return;
	}
	c->ex.shortlink =
	    exchange_is_shortlink(c) && stream_shortlink_begin(c) == 0;
	if (c->ex.shortlink && c->ex.rec != NULL)
		c->ex.rec->u.req.label = strdup("mmtls-shortlink");
	if (h1_build_up_head(c) == -1) {
		exchange_fail(c, 500, "cannot build the upstream request");
		return;
	}
	dial_start(c);
}

/* Both messages are complete: record, then keep or close each side. */
void
exchange_end(struct conn *c)
{
	int up_ok, tunnel = c->inner != CONN_INNER_NONE;

	up_ok = c->up != NULL && llhttp_should_keep_alive(&c->h1.respp) &&
	    !c->ex.req_upgrade;
	/* inside a tunnel the two connections live and end together */
	if (tunnel && !up_ok)
		c->client_ka = 0;
	(void)exchange_submit(c);
	if (c->up != NULL) {
		c->up->uses++;
		if (up_ok && c->client_ka && !c->client_eof &&
		    !c->w->shutting_down)
			dial_keep(c);
		else if (up_ok && !tunnel)
			upstream_pool_put(c->up);
		else
			upstream_free(c->up);
		c->up = NULL;
	}
	if (!c->client_ka || c->client_eof || c->w->shutting_down) {
		conn_drain(c, c->client_eof ? "client-eof" : "done", NULL);
		return;
	}
	/* ready for the next request, which may already be buffered */
	c->ex.req_done = c->ex.resp_done = c->ex.resp_head_sent = 0;
	c->ex.resp_interim = c->ex.is_head = c->ex.req_upgrade = 0;
	c->h1.head_bytes = 0;
	c->ex.retried = 0;
	head_reset(&c->h1.reqh);
	head_reset(&c->h1.resph);
	conn_enter(c, CONN_READ_HEAD);
}

/* The origin failed or closed before the response was complete. */
void
exchange_up_failed(struct conn *c, const char *why)
{
	if (!c->ex.resp_head_sent && dial_retry_fresh(c))
		return;
	if (c->inner != CONN_INNER_NONE && !c->ex.resp_head_sent &&
	    c->ex.rec != NULL && c->ex.rec->u.req.upstream_reused &&
	    c->ex.rec->u.req.resp_header_bytes == 0) {
		/* the origin closed the connection the client was reusing:
		 * so does the client's, as it would without us */
		conn_close(c, "server-eof", why);
		return;
	}
	if (!c->ex.resp_head_sent)
		exchange_fail(c, 502, why);
	else
		conn_close(c, "server-error", why);
}

/*
 * EXCHANGE's deadline: the client stopped sending its body, the origin
 * did not answer, or it stalled mid-answer. Recorded, then closed (an
 * answer not yet begun is ours to give: 504).
 */
void
exchange_timeout(struct conn *c)
{
	if (!c->ex.req_done) {
		exchange_rec_fail(c, 408, "client stopped sending the body");
		conn_close(c, "idle-timeout", "client body timeout");
	} else if (!c->ex.resp_head_sent)
		exchange_fail(c, 504, "origin did not answer in time");
	else {
		exchange_rec_fail(c, 0, "origin stalled mid-response");
		conn_close(c, "upstream-timeout", "origin stalled");
	}
}

/* The client sent its FIN mid-exchange: what can be finished is (a
 * complete request, or body bytes still buffered); else it is recorded
 * and closed. */
void
exchange_client_eof(struct conn *c)
{
	if (c->ex.req_done ||
	    evbuffer_get_length(bufferevent_get_input(c->cbev)) > 0)
		return;
	conn_close(c, "client-eof", "client closed mid-request");
}
