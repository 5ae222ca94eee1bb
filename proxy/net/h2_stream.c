/*
 * h2_stream: one HTTP/2 stream, its header lists as they arrived, its
 * body buffers and its record (see h2_int.h). Loop thread only.
 */
#include <event2/buffer.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/config.h"
#include "proxy/log.h"
#include "proxy/net/conn_int.h"
#include "proxy/net/exchange.h"
#include "proxy/net/h2_int.h"
#include "proxy/net/record.h"
#include "proxy/net/upstream.h"
#include "proxy/net/worker.h"
#include "proxy/net/ws.h"
#include "proxy/store/store.h"

int
h2_fields_add(struct h2_fields *f, const uint8_t *name, size_t nlen,
    const uint8_t *value, size_t vlen)
{
	nghttp2_nv *nv;

	if (f->n == f->cap) {
		size_t ncap = f->cap ? f->cap * 2 : 16;
		if ((nv = realloc(f->nv, ncap * sizeof(*nv))) == NULL)
			return -1;
		f->nv = nv;
		f->cap = ncap;
	}
	nv = &f->nv[f->n];
	/* NUL-terminated copies, so values can be read as strings */
	nv->name = malloc(nlen + 1);
	nv->value = malloc(vlen + 1);
	if (nv->name == NULL || nv->value == NULL) {
		free(nv->name);
		free(nv->value);
		return -1;
	}
	memcpy(nv->name, name, nlen);
	nv->name[nlen] = '\0';
	memcpy(nv->value, value, vlen);
	nv->value[vlen] = '\0';
	nv->namelen = nlen;
	nv->valuelen = vlen;
	nv->flags = NGHTTP2_NV_FLAG_NONE;
	f->n++;
	f->bytes += nlen + vlen + 32;
	return 0;
}

void
h2_fields_clear(struct h2_fields *f)
{
	for (size_t i = 0; i < f->n; i++) {
		free(f->nv[i].name);
		free(f->nv[i].value);
	}
	free(f->nv);
	memset(f, 0, sizeof(*f));
}

const char *
h2_fields_get(const struct h2_fields *f, const char *name)
{
	for (size_t i = 0; i < f->n; i++)
		if (strcmp((const char *)f->nv[i].name, name) == 0)
			return (const char *)f->nv[i].value;
	return NULL;
}

/* "name: value\r\n" lines of a list, pseudo-header fields included, in
 * the order they came; NULL for an empty list (or ENOMEM). */
static char *
h2_fields_text(const struct h2_fields *f)
{
	size_t len = 1, off = 0;
	char *t;

	if (f->n == 0)
		return NULL;
	for (size_t i = 0; i < f->n; i++)
		len += f->nv[i].namelen + f->nv[i].valuelen + 4;
	if ((t = malloc(len)) == NULL)
		return NULL;
	for (size_t i = 0; i < f->n; i++)
		off += (size_t)snprintf(t + off, len - off, "%s: %s\r\n",
		    f->nv[i].name, f->nv[i].value);
	return t;
}

struct h2_stream *
h2_stream_new(struct conn *c, int32_t down_id)
{
	struct h2_stream *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->c = c;
	s->down_id = down_id;
	s->req_buf = evbuffer_new();
	s->resp_buf = evbuffer_new();
	if (s->req_buf == NULL || s->resp_buf == NULL) {
		h2_stream_free(s);
		return NULL;
	}
	s->t_start_us = now_us();
	TAILQ_INSERT_TAIL(&c->h2->streams, s, link);
	c->h2->nstreams++;
	return s;
}

void
h2_stream_free(struct h2_stream *s)
{
	if (s == NULL)
		return;
	h2_fields_clear(&s->req);
	h2_fields_clear(&s->resp);
	h2_fields_clear(&s->req_trl);
	h2_fields_clear(&s->resp_trl);
	if (s->req_buf != NULL)
		evbuffer_free(s->req_buf);
	if (s->resp_buf != NULL)
		evbuffer_free(s->resp_buf);
	store_rec_free(s->rec);
	ws_end(s->ws, s->c);
	free(s->end);
	free(s);
}

/* Host and port of the request, from :authority (or the tunnel). */
static void
h2_stream_host(struct h2_stream *s, struct store_request *r)
{
	const char *a = h2_fields_get(&s->req, ":authority");
	struct conn *c = s->c;

	r->port = (int)c->tls.tunnel_port;
	if (a == NULL || a[0] == '\0') {
		r->host =
		    strdup(c->tls.sni[0] ? c->tls.sni : c->tls.tunnel_host);
		return;
	}
	if ((r->host = strdup(a)) != NULL)
		record_authority_name(r->host);
}

int
h2_stream_request(struct h2_stream *s)
{
	struct conn *c = s->c;
	struct store_request *r;
	const char *m = h2_fields_get(&s->req, ":method");
	const char *p = h2_fields_get(&s->req, ":path");
	const char *sch = h2_fields_get(&s->req, ":scheme");
	const char *q;

	if ((s->rec = store_rec_new(STORE_REC_REQUEST)) == NULL)
		return -1;
	r = &s->rec->u.req;
	r->conn_id = c->id;
	r->seq = ++c->tot.nrequests;
	r->t_start_us = s->t_start_us;
	r->client_ip = strdup(c->client_ip);
	r->scheme = strdup(sch != NULL         ? sch
		: c->inner == CONN_INNER_HTTPS ? "https"
					       : "http");
	r->method = conn_strdup(m);
	h2_stream_host(s, r);
	if (p != NULL && (q = strchr(p, '?')) != NULL) {
		r->path = conn_strndup(p, (size_t)(q - p));
		r->query = strdup(q + 1);
	} else
		r->path = conn_strdup(p);
	r->req_version = strdup("2");
	r->req_headers = h2_fields_text(&s->req);
	r->req_header_bytes = s->req.bytes;
	r->stream_id = s->down_id;
	r->dns_us = r->connect_us = r->tls_us = -1;
	if (c->up != NULL && c->up->uses++ == 0) {
		/* the origin connection was opened for the first stream */
		r->dns_us = c->up->dns_us;
		r->connect_us = c->up->connect_us;
		r->tls_us = c->up->tls_us;
	} else if (c->up != NULL)
		r->upstream_reused = 1;
	return 0;
}

void
h2_stream_response(struct h2_stream *s, const char *version)
{
	struct store_request *r;
	const char *st = h2_fields_get(&s->resp, ":status");
	const char *ct = h2_fields_get(&s->resp, "content-type");

	if (s->rec == NULL)
		return;
	r = &s->rec->u.req;
	if (r->status == 0 && st != NULL)
		r->status = atoi(st);
	free(r->resp_version);
	r->resp_version = strdup(version);
	free(r->resp_headers);
	r->resp_headers = h2_fields_text(&s->resp);
	r->resp_header_bytes = s->resp.bytes;
	if (ct != NULL && r->content_type == NULL)
		r->content_type = strdup(ct);
	if (s->t_sent_us > 0)
		r->ttfb_us = now_us() - s->t_sent_us;
	if (strcmp(version, "2") != 0) {
		free(r->up_version);
		r->up_version = strdup(version);
	}
}

void
h2_stream_capture(struct h2_stream *s, int resp, const uint8_t *at, size_t len)
{
	if (s->rec == NULL)
		return;
	if (resp)
		exchange_capture(s->c, &s->rec->u.req.resp_body, &s->resp_room,
		    0, (const char *)at, len);
	else
		exchange_capture(s->c, &s->rec->u.req.req_body, &s->req_room, 0,
		    (const char *)at, len);
}

void
h2_stream_fail(struct h2_stream *s, const char *why)
{
	if (s->rec != NULL && s->rec->u.req.error == NULL && why != NULL)
		s->rec->u.req.error = strdup(why);
}

/* Answer the stream ourselves (the origin failed): status, a text body,
 * recorded like an origin's answer. */
void
h2_stream_answer(struct h2_stream *s, int status, const char *why)
{
	char st[8], body[512];
	int n = snprintf(body, sizeof(body), "peephole: %s\n", why);
	static const uint8_t ctype[] = "text/plain; charset=utf-8";

	h2_stream_fail(s, why);
	snprintf(st, sizeof(st), "%d", status);
	h2_fields_clear(&s->resp);
	if (h2_fields_add(&s->resp, (const uint8_t *)":status", 7,
		(const uint8_t *)st, strlen(st)) == -1 ||
	    h2_fields_add(&s->resp, (const uint8_t *)"content-type", 12, ctype,
		sizeof(ctype) - 1) == -1 ||
	    evbuffer_add(s->resp_buf, body, (size_t)n) != 0) {
		(void)nghttp2_submit_rst_stream(s->c->h2->down,
		    NGHTTP2_FLAG_NONE, s->down_id, NGHTTP2_INTERNAL_ERROR);
		return;
	}
	s->own_answer = 1;
	s->up_closed = 1;
	s->resp_head = s->resp_end = 1;
	h2_stream_response(s, "2");
	h2_stream_capture(s, 1, (const uint8_t *)body, (size_t)n);
	if (h2_stream_send_response(s) == -1)
		(void)nghttp2_submit_rst_stream(s->c->h2->down,
		    NGHTTP2_FLAG_NONE, s->down_id, NGHTTP2_INTERNAL_ERROR);
}

static void h2_stream_submit(struct h2_stream *s);

/* Both legs are done: the record goes to the store, the stream away. */
void
h2_stream_finish(struct h2_stream *s)
{
	struct conn *c = s->c;

	TAILQ_REMOVE(&c->h2->streams, s, link);
	c->h2->nstreams--;
	if (s->queued || s->h1 != NULL)
		h2_h1_stream_gone(s);
	h2_stream_submit(s);
	ws_end(s->ws, c);
	s->ws = NULL;
	if (!s->down_closed && c->state != CONN_CLOSED)
		(void)nghttp2_session_set_stream_user_data(
		    c->h2->down, s->down_id, NULL);
	h2_stream_free(s);
}

/* The stream's record goes to the store as it stands. */
static void
h2_stream_submit(struct h2_stream *s)
{
	struct conn *c = s->c;
	struct store_request *r;

	if (s->rec != NULL) {
		r = &s->rec->u.req;
		r->req_trailers = h2_fields_text(&s->req_trl);
		r->resp_trailers = h2_fields_text(&s->resp_trl);
		r->stream_end = s->end;
		s->end = NULL;
		if (r->up_version == NULL &&
		    strcmp(c->h2->up_version, "2") != 0)
			r->up_version = strdup(c->h2->up_version);
		(void)exchange_submit_rec(
		    c, s->rec, &s->req_room, &s->resp_room);
		s->rec = NULL;
	}
}

/*
 * An extended CONNECT (RFC 8441) for a WebSocket that the origin took: the
 * exchange is recorded now, as a 101 is, and the stream's DATA is parsed
 * as WebSocket frames from here.
 */
void
h2_stream_ws_begin(struct h2_stream *s)
{
	const char *m = h2_fields_get(&s->req, ":method");
	const char *p = h2_fields_get(&s->req, ":protocol");
	const char *st = h2_fields_get(&s->resp, ":status");
	int seq;

	if (m == NULL || strcmp(m, "CONNECT") != 0 || p == NULL ||
	    strcasecmp(p, "websocket") != 0 || st == NULL || st[0] != '2' ||
	    s->rec == NULL)
		return;
	seq = s->rec->u.req.seq;
	h2_stream_submit(s);
	s->ws = ws_new(
	    s->c, seq, h2_fields_get(&s->resp, "sec-websocket-extensions"));
}
