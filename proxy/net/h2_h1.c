/*
 * h2_h1: an HTTP/1.1 origin under an h2 client. The client's streams are
 * carried as HTTP/1.1 requests over up to H2_H1_LEGS origin connections,
 * one exchange at a time on each, the rest queued in order. The request
 * head is rebuilt from the h2 fields (Host from :authority, cookie crumbs
 * joined as RFC 9113 8.2.3 asks, a body without a length sent chunked);
 * the answer's connection-specific fields, which h2 forbids, are left out.
 * That translation is the one place peephole changes a header block, and
 * only because the two legs speak different protocols. Loop thread only.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/util.h>
#include <llhttp.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/config.h"
#include "proxy/log.h"
#include "proxy/net/conn_int.h"
#include "proxy/net/dial.h"
#include "proxy/net/h2_int.h"
#include "proxy/net/relay.h"
#include "proxy/net/server.h"
#include "proxy/net/tls.h"
#include "proxy/net/upstream.h"
#include "proxy/net/worker.h"
#include "proxy/store/store.h"

#define H2_H1_LEGS ((int)(sizeof(((struct h2 *)0)->h1_legs) / sizeof(void *)))

/* One HTTP/1.1 origin connection and the stream it carries. */
struct h2_h1 {
	struct conn *c;
	struct upstream *up;
	struct h2_stream *s; /* NULL while idle */
	llhttp_t p;
	int connected;
	int chunked;     /* the request body goes chunked */
	int req_done;    /* the whole request went out */
	int in_trailers; /* header fields now are the answer's trailers */
	int done;        /* the answer is complete */
	int keep;        /* ... and the connection can carry another */
	char *name;      /* the field name being read */
	size_t nlen;
	char *value;
	size_t vlen;
};

static llhttp_settings_t h2_h1_settings;

static void h2_h1_next(struct conn *c);
static void h2_h1_leg_free(struct h2_h1 *l);
static void h2_h1_fail(struct h2_h1 *l, const char *why);

/* ---- the answer, parsed by llhttp ---- */

/* Append at to *buf (NUL-terminated, *len bytes). 0 or -1. */
static int
h2_h1_grow(char **buf, size_t *len, const char *at, size_t n)
{
	char *p = realloc(*buf, *len + n + 1);

	if (p == NULL)
		return -1;
	memcpy(p + *len, at, n);
	*len += n;
	p[*len] = '\0';
	*buf = p;
	return 0;
}

/* h2 forbids connection-specific fields (RFC 9113 8.2.2). */
static int
h2_h1_hop(const char *name)
{
	static const char *const hop[] = {"connection", "keep-alive",
	    "proxy-connection", "transfer-encoding", "upgrade"};

	for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
		if (strcasecmp(name, hop[i]) == 0)
			return 1;
	return 0;
}

/* A complete field: lower-cased into the answer head or its trailers. */
static int
h2_h1_field_done(struct h2_h1 *l)
{
	int rv = 0;

	if (l->name == NULL || l->s == NULL)
		goto out;
	for (char *p = l->name; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	if (!h2_h1_hop(l->name))
		rv = h2_fields_add(
		    l->in_trailers ? &l->s->resp_trl : &l->s->resp,
		    (const uint8_t *)l->name, l->nlen,
		    (const uint8_t *)(l->value ? l->value : ""), l->vlen);
out:
	free(l->name);
	free(l->value);
	l->name = l->value = NULL;
	l->nlen = l->vlen = 0;
	return rv;
}

static int
h2_h1_on_field(llhttp_t *p, const char *at, size_t n)
{
	struct h2_h1 *l = p->data;

	if (l->value != NULL && h2_h1_field_done(l) == -1)
		return HPE_USER;
	return h2_h1_grow(&l->name, &l->nlen, at, n) == 0 ? 0 : HPE_USER;
}

static int
h2_h1_on_value(llhttp_t *p, const char *at, size_t n)
{
	struct h2_h1 *l = p->data;

	if (l->value == NULL && h2_h1_grow(&l->value, &l->vlen, "", 0) == -1)
		return HPE_USER;
	return h2_h1_grow(&l->value, &l->vlen, at, n) == 0 ? 0 : HPE_USER;
}

static int
h2_h1_on_headers(llhttp_t *p)
{
	struct h2_h1 *l = p->data;
	struct h2_stream *s = l->s;
	char st[8];

	if (h2_h1_field_done(l) == -1 || s == NULL)
		return -1;
	snprintf(st, sizeof(st), "%d", p->status_code);
	/* :status goes first: move it to the front */
	if (h2_fields_add(&s->resp, (const uint8_t *)":status", 7,
		(const uint8_t *)st, strlen(st)) == -1)
		return -1;
	nghttp2_nv last = s->resp.nv[s->resp.n - 1];
	memmove(&s->resp.nv[1], &s->resp.nv[0],
	    (s->resp.n - 1) * sizeof(nghttp2_nv));
	s->resp.nv[0] = last;
	if (p->status_code / 100 == 1) {
		/* interim: to the client as is, the answer follows */
		(void)nghttp2_submit_headers(l->c->h2->down, NGHTTP2_FLAG_NONE,
		    s->down_id, NULL, s->resp.nv, s->resp.n, NULL);
		h2_fields_clear(&s->resp);
		l->c->h2->dirty = 1;
		return 0;
	}
	s->resp_head = 1;
	l->in_trailers = 1;
	h2_stream_response(s, "1.1");
	if (h2_stream_send_response(s) == -1)
		return -1;
	/* a HEAD answer has no body whatever its length says */
	return s->rec != NULL && s->rec->u.req.method != NULL &&
		strcmp(s->rec->u.req.method, "HEAD") == 0
	    ? 1
	    : 0;
}

static int
h2_h1_on_body(llhttp_t *p, const char *at, size_t n)
{
	struct h2_h1 *l = p->data;

	if (l->s == NULL)
		return 0;
	if (evbuffer_add(l->s->resp_buf, at, n) != 0)
		return HPE_USER;
	h2_stream_capture(l->s, 1, (const uint8_t *)at, n);
	h2_down_more(l->s);
	return 0;
}

static int
h2_h1_on_complete(llhttp_t *p)
{
	struct h2_h1 *l = p->data;

	if (h2_h1_field_done(l) == -1)
		return HPE_USER;
	if (p->status_code / 100 == 1 && p->status_code != 101) {
		l->in_trailers = 0;
		return 0; /* the final answer is still to come */
	}
	l->done = 1;
	l->keep = llhttp_should_keep_alive(p);
	return HPE_PAUSED;
}

/* ---- the request ---- */

/* One cookie field of the crumbs from f->nv[first] on. 0, or 1 on
 * ENOMEM (or'ed into the caller's result). */
static int
h2_h1_cookies(const struct h2_fields *f, size_t first, struct evbuffer *out)
{
	int rv = evbuffer_add(out, "cookie: ", 8) != 0;
	const char *sep = "";

	for (size_t i = first; i < f->n; i++) {
		if (strcmp((const char *)f->nv[i].name, "cookie") != 0)
			continue;
		rv |= evbuffer_add_printf(
			  out, "%s%s", sep, (const char *)f->nv[i].value) < 0;
		sep = "; ";
	}
	return rv | (evbuffer_add(out, "\r\n", 2) != 0);
}

/* The request head from the stream's h2 fields. 0 or -1. */
static int
h2_h1_head(struct h2_h1 *l, struct h2_stream *s, struct evbuffer *out)
{
	const struct h2_fields *f = &s->req;
	const char *m = h2_fields_get(f, ":method");
	const char *path = h2_fields_get(f, ":path");
	const char *auth = h2_fields_get(f, ":authority");
	int cookies = 0, rv = 0;

	l->chunked = h2_fields_get(f, "content-length") == NULL &&
	    !(s->req_end && evbuffer_get_length(s->req_buf) == 0);
	rv |= evbuffer_add_printf(out, "%s %s HTTP/1.1\r\n", m ? m : "GET",
		  path ? path : "/") < 0;
	if (auth != NULL && h2_fields_get(f, "host") == NULL)
		rv |= evbuffer_add_printf(out, "Host: %s\r\n", auth) < 0;
	for (size_t i = 0; i < f->n; i++) {
		const char *name = (const char *)f->nv[i].name;
		if (name[0] == ':')
			continue;
		if (strcmp(name, "cookie") == 0) {
			/* the crumbs joined into one field where the first
			 * stood (RFC 9113 8.2.3) */
			if (cookies++ == 0)
				rv |= h2_h1_cookies(f, i, out);
			continue;
		}
		rv |= evbuffer_add_printf(out, "%s: %s\r\n", name,
			  (const char *)f->nv[i].value) < 0;
	}
	if (l->chunked)
		rv |= evbuffer_add_printf(
			  out, "transfer-encoding: chunked\r\n") < 0;
	rv |= evbuffer_add(out, "\r\n", 2);
	return rv ? -1 : 0;
}

/* Request body bytes from the stream's buffer to the origin, as far as
 * its output has room; the client's window opens by as much. */
void
h2_h1_request_more(struct h2_stream *s)
{
	struct h2_h1 *l = s->h1;
	struct evbuffer *out;
	size_t n;

	if (l == NULL || !l->connected || l->req_done)
		return;
	out = bufferevent_get_output(l->up->bev);
	while ((n = evbuffer_get_length(s->req_buf)) > 0 &&
	    evbuffer_get_length(out) < H2_OUT_LIMIT) {
		if (n > H2_OUT_LIMIT)
			n = H2_OUT_LIMIT;
		if (l->chunked)
			(void)evbuffer_add_printf(out, "%zx\r\n", n);
		(void)evbuffer_remove_buffer(s->req_buf, out, n);
		if (l->chunked)
			(void)evbuffer_add(out, "\r\n", 2);
		s->c->tot.bytes_to_server += n;
		(void)nghttp2_session_consume_stream(
		    s->c->h2->down, s->down_id, n);
		s->c->h2->dirty = 1;
	}
	if (!s->req_end || evbuffer_get_length(s->req_buf) > 0)
		return;
	l->req_done = 1;
	if (!l->chunked)
		return;
	(void)evbuffer_add(out, "0\r\n", 3);
	for (size_t i = 0; i < s->req_trl.n; i++)
		(void)evbuffer_add_printf(out, "%s: %s\r\n",
		    (const char *)s->req_trl.nv[i].name,
		    (const char *)s->req_trl.nv[i].value);
	(void)evbuffer_add(out, "\r\n", 2);
}

/* Start the stream on a connected, idle leg. */
static void
h2_h1_start(struct h2_h1 *l, struct h2_stream *s)
{
	struct store_request *r = s->rec != NULL ? &s->rec->u.req : NULL;
	struct evbuffer *out = bufferevent_get_output(l->up->bev);
	size_t before = evbuffer_get_length(out);

	l->s = s;
	s->h1 = l;
	l->req_done = l->done = l->keep = l->in_trailers = 0;
	llhttp_init(&l->p, HTTP_RESPONSE, &h2_h1_settings);
	l->p.data = l;
	if (r != NULL) {
		free(r->server_ip);
		r->server_ip = strdup(l->up->ip);
		r->server_port = l->up->ip_port;
		if (l->up->uses++ == 0) {
			r->dns_us = l->up->dns_us;
			r->connect_us = l->up->connect_us;
			r->tls_us = l->up->tls_us;
		} else
			r->upstream_reused = 1;
	}
	if (h2_h1_head(l, s, out) == -1) {
		h2_stream_answer(s, 502, "cannot build the HTTP/1.1 request");
		return;
	}
	s->c->tot.bytes_to_server += evbuffer_get_length(out) - before;
	s->t_sent_us = now_us();
	h2_h1_request_more(s);
}

/* ---- the legs ---- */

/* The stream is gone (finished, or reset by the client). */
void
h2_h1_stream_gone(struct h2_stream *s)
{
	struct h2 *h = s->c->h2;
	struct h2_h1 *l = s->h1;

	if (s->queued) {
		TAILQ_REMOVE(&h->h1_queue, s, wait);
		s->queued = 0;
	}
	s->h1 = NULL;
	if (l == NULL)
		return;
	l->s = NULL;
	/* HTTP/1.1 cannot abandon an exchange midway: the leg goes */
	if (!l->done)
		h2_h1_leg_free(l);
}

void
h2_h1_response_taken(struct h2_stream *s)
{
	struct h2_h1 *l = s->h1;

	/* called while nghttp2 sends: the parse resumes from the loop */
	if (l != NULL && evbuffer_get_length(s->resp_buf) < H2_STREAM_WINDOW &&
	    !(bufferevent_get_enabled(l->up->bev) & EV_READ)) {
		relay_enable(l->up->bev, EV_READ);
		bufferevent_trigger(l->up->bev, EV_READ,
		    BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
	}
}

/* The leg's answer is complete: the stream's origin side is done, and
 * the leg carries the next queued stream or waits. */
static void
h2_h1_answered(struct h2_h1 *l)
{
	struct h2_stream *s = l->s;
	struct conn *c = l->c;

	l->s = NULL;
	if (s != NULL) {
		s->h1 = NULL;
		s->resp_end = 1;
		s->up_closed = 1;
		h2_down_more(s);
		h2_stream_maybe_finish(s);
	}
	if (!l->keep || !l->req_done)
		h2_h1_leg_free(l);
	h2_h1_next(c);
}

/* Parse what the origin sent, as far as the stream's buffer has room. */
static void
h2_h1_parse(struct h2_h1 *l)
{
	struct evbuffer *in = bufferevent_get_input(l->up->bev);
	struct evbuffer_iovec v;
	enum llhttp_errno e;

	while (l->s != NULL && evbuffer_peek(in, -1, NULL, &v, 1) > 0) {
		if (evbuffer_get_length(l->s->resp_buf) >= H2_STREAM_WINDOW) {
			bufferevent_disable(l->up->bev, EV_READ);
			return;
		}
		e = llhttp_execute(&l->p, v.iov_base, v.iov_len);
		size_t used = e == HPE_OK
		    ? v.iov_len
		    : (size_t)(llhttp_get_error_pos(&l->p) -
			  (const char *)v.iov_base);
		l->c->tot.bytes_from_server += used;
		evbuffer_drain(in, used);
		if (e == HPE_PAUSED) {
			llhttp_resume(&l->p);
			h2_h1_answered(l);
			return;
		}
		if (e != HPE_OK) {
			h2_stream_fail(l->s, llhttp_errno_name(e));
			h2_h1_fail(
			    l, "the origin's HTTP/1.1 answer is malformed");
			return;
		}
	}
}

/* The leg failed the stream it carries: our 502 if the client has no
 * answer head yet, else a reset; then the leg goes. */
static void
h2_h1_fail(struct h2_h1 *l, const char *why)
{
	struct h2_stream *s = l->s;
	struct conn *c = l->c;

	if (s != NULL) {
		l->s = NULL;
		s->h1 = NULL;
		if (!s->resp_sent)
			h2_stream_answer(s, 502, why);
		else {
			h2_stream_fail(s, why);
			(void)nghttp2_submit_rst_stream(c->h2->down,
			    NGHTTP2_FLAG_NONE, s->down_id,
			    NGHTTP2_INTERNAL_ERROR);
			s->up_closed = 1;
			c->h2->dirty = 1;
		}
	}
	h2_h1_leg_free(l);
	h2_h1_next(c);
}

static void
h2_h1_readcb(struct bufferevent *bev, void *arg)
{
	struct h2_h1 *l = arg;
	struct conn *c = l->c;

	(void)bev;
	c->t_active_us = now_us();
	if (l->s == NULL) {
		/* bytes from an idle HTTP/1.1 origin: it is done with us */
		h2_h1_leg_free(l);
	} else
		h2_h1_parse(l);
	h2_flush(c);
}

static void
h2_h1_writecb(struct bufferevent *bev, void *arg)
{
	struct h2_h1 *l = arg;

	(void)bev;
	if (l->s != NULL)
		h2_h1_request_more(l->s);
	h2_flush(l->c);
}

/* The origin closed: 1 if that completed the answer (one delimited by
 * the close; on_message_complete pauses the parser, so HPE_PAUSED is the
 * good end). */
static int
h2_h1_finish(struct h2_h1 *l)
{
	enum llhttp_errno e = llhttp_finish(&l->p);

	return (e == HPE_OK || e == HPE_PAUSED) && l->done;
}

/* The leg's connection is up: its certificate judged, its stream sent. */
static void
h2_h1_connected(struct h2_h1 *l)
{
	struct conn *c = l->c;
	const char *verr = NULL;
	SSL *ssl;

	l->up->connect_us = now_us() - l->up->t_idle_us;
	l->up->dns_us = 0;
	if (l->up->tls && (ssl = bufferevent_openssl_get_ssl(l->up->bev)) &&
	    (verr = tls_verify_error(c->w->srv->tls, ssl)) != NULL) {
		char why[300];
		snprintf(
		    why, sizeof(why), "origin certificate rejected: %s", verr);
		h2_h1_fail(l, why);
		return;
	}
	l->connected = 1;
	dial_set_nodelay(l->up->bev);
	if (l->s != NULL)
		h2_h1_start(l, l->s);
}

static void
h2_h1_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct h2_h1 *l = arg;
	struct conn *c = l->c;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		h2_h1_connected(l);
	} else if (l->s != NULL && (what & BEV_EVENT_EOF) && h2_h1_finish(l)) {
		/* an answer whose end is the close */
		l->keep = 0;
		h2_h1_answered(l);
	} else
		h2_h1_fail(l,
		    (what & BEV_EVENT_EOF)
			? "the origin closed before the answer was complete"
			: "origin connection error");
	h2_flush(c);
}

/* A new origin connection for the queue's first stream: the one intercept
 * kept when there is one, else a fresh one to the address it used. */
static struct h2_h1 *
h2_h1_leg_new(struct conn *c)
{
	struct h2_h1 *l = calloc(1, sizeof(*l));
	struct sockaddr_storage ss;
	int sl = (int)sizeof(ss);
	char addr[INET6_ADDRSTRLEN + 16];
	const char *sni = c->tls.sni[0] ? c->tls.sni : NULL;
	SSL *ssl;

	if (l == NULL)
		return NULL;
	l->c = c;
	if (c->dial.up_idle != NULL) {
		l->up = c->dial.up_idle;
		c->dial.up_idle = NULL;
		l->connected = 1;
		goto ready;
	}
	snprintf(addr, sizeof(addr),
	    strchr(c->tot.server_ip, ':') ? "[%s]:%d" : "%s:%d",
	    c->tot.server_ip, c->tot.server_port);
	if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &sl) != 0)
		goto fail;
	if (c->inner != CONN_INNER_HTTPS)
		l->up =
		    upstream_new(c->w, c->tls.tunnel_host, c->tls.tunnel_port);
	else if ((ssl = tls_up_new(c->w->srv->tls, sni,
		      sni ? sni : c->tls.tunnel_host, c->tls.tunnel_port,
		      "http/1.1")) != NULL &&
	    (l->up = upstream_new_tls(
		 c->w, c->tls.tunnel_host, c->tls.tunnel_port, ssl)) == NULL)
		SSL_free(ssl);
	if (l->up == NULL)
		goto fail;
	upstream_set_peer(l->up, (struct sockaddr *)&ss);
	l->up->t_idle_us = now_us(); /* the connect's start, until up */
	if (bufferevent_socket_connect(
		l->up->bev, (struct sockaddr *)&ss, sl) != 0)
		goto fail;
ready:
	bufferevent_setcb(
	    l->up->bev, h2_h1_readcb, h2_h1_writecb, h2_h1_eventcb, l);
	bufferevent_setwatermark(l->up->bev, EV_WRITE, H2_OUT_LIMIT / 2, 0);
	relay_enable(l->up->bev, EV_READ | EV_WRITE);
	c->h2->h1_legs[c->h2->nh1++] = l;
	return l;
fail:
	upstream_free(l->up);
	free(l);
	return NULL;
}

static void
h2_h1_leg_free(struct h2_h1 *l)
{
	struct h2 *h = l->c->h2;

	for (int i = 0; i < h->nh1; i++)
		if (h->h1_legs[i] == l) {
			h->h1_legs[i] = h->h1_legs[--h->nh1];
			break;
		}
	if (l->s != NULL)
		l->s->h1 = NULL;
	upstream_free(l->up);
	free(l->name);
	free(l->value);
	free(l);
}

/* Give queued streams a leg: an idle one, or a new one while there are
 * fewer than H2_H1_LEGS. */
static void
h2_h1_next(struct conn *c)
{
	struct h2 *h = c->h2;
	struct h2_stream *s;
	struct h2_h1 *l;

	while ((s = TAILQ_FIRST(&h->h1_queue)) != NULL) {
		l = NULL;
		for (int i = 0; i < h->nh1 && l == NULL; i++)
			if (h->h1_legs[i]->s == NULL)
				l = h->h1_legs[i];
		if (l == NULL && h->nh1 < H2_H1_LEGS &&
		    (l = h2_h1_leg_new(c)) == NULL) {
			TAILQ_REMOVE(&h->h1_queue, s, wait);
			s->queued = 0;
			h2_stream_answer(
			    s, 502, "cannot connect to the origin");
			continue;
		}
		if (l == NULL)
			return;
		TAILQ_REMOVE(&h->h1_queue, s, wait);
		s->queued = 0;
		l->s = s;
		s->h1 = l;
		if (l->connected)
			h2_h1_start(l, s);
	}
}

void
h2_h1_submit(struct h2_stream *s)
{
	if (h2_h1_settings.on_message_complete == NULL) {
		llhttp_settings_init(&h2_h1_settings);
		h2_h1_settings.on_header_field = h2_h1_on_field;
		h2_h1_settings.on_header_value = h2_h1_on_value;
		h2_h1_settings.on_headers_complete = h2_h1_on_headers;
		h2_h1_settings.on_body = h2_h1_on_body;
		h2_h1_settings.on_message_complete = h2_h1_on_complete;
	}
	TAILQ_INSERT_TAIL(&s->c->h2->h1_queue, s, wait);
	s->queued = 1;
	h2_h1_next(s->c);
}

/* conn_close: the legs call back no more (freed by h2_h1_free_all). */
void
h2_h1_quiesce(struct conn *c)
{
	for (int i = 0; i < c->h2->nh1; i++) {
		struct bufferevent *bev = c->h2->h1_legs[i]->up->bev;
		bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
		bufferevent_disable(bev, EV_READ | EV_WRITE);
	}
}

void
h2_h1_free_all(struct conn *c)
{
	while (c->h2->nh1 > 0)
		h2_h1_leg_free(c->h2->h1_legs[0]);
}
