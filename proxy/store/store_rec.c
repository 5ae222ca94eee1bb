/*
 * store_rec: the records the store is handed (store.h): made with their
 * "unknown" defaults, freed with everything they own, and sized for the
 * queue's byte bound. Any thread; a record has one owner at a time.
 */
#include "proxy/store/store_int.h"

#include <stdlib.h>
#include <string.h>

struct store_rec *
store_rec_new(enum store_rec_type type)
{
	struct store_rec *rec;

	if (type != STORE_REC_CONN && type != STORE_REC_REQUEST &&
	    type != STORE_REC_DOMAIN_IP &&
	    type != STORE_REC_LEARNED_PASSTHROUGH &&
	    type != STORE_REC_STREAM_EVENTS && type != STORE_REC_KEYLOG &&
	    type != STORE_REC_LEARNED_FORGET && type != STORE_REC_NOTE &&
	    type != STORE_REC_WS_MESSAGES && type != STORE_REC_TCP_SAMPLES)
		return NULL;
	if ((rec = calloc(1, sizeof(*rec))) == NULL)
		return NULL;
	rec->type = type;
	if (type == STORE_REC_REQUEST) {
		rec->u.req.dns_us = -1;
		rec->u.req.connect_us = -1;
		rec->u.req.tls_us = -1;
		rec->u.req.ttfb_us = -1;
		rec->u.req.total_us = -1;
	} else if (type == STORE_REC_DOMAIN_IP)
		rec->u.dip.ttl = -1;
	return rec;
}

/* Free what a connection record's fields own. */
static void
store_conn_clear(struct store_conn *c)
{
	free(c->listener);
	free(c->client_ip);
	free(c->target_host);
	free(c->server_ip);
	free(c->protocol);
	free(c->close_reason);
	free(c->error);
	free(c->sni);
	free(c->alpn);
	free(c->decision);
	free(c->decision_reason);
	free(c->tls_client);
	free(c->tls_server);
	free(c->upstream_cert_sha256);
	free(c->upstream_cert_subject);
	free(c->upstream_cert_issuer);
	free(c->verify_error);
	free(c->listener_target);
	free(c->closed_by);
	free(c->alpn_client);
	free(c->alpn_server);
}

/* Free what a request record's fields own. */
static void
store_request_clear(struct store_request *r)
{
	free(r->client_ip);
	free(r->scheme);
	free(r->method);
	free(r->host);
	free(r->path);
	free(r->query);
	free(r->req_version);
	free(r->resp_version);
	free(r->resp_reason);
	free(r->req_headers);
	free(r->resp_headers);
	free(r->req_body.data);
	free(r->resp_body.data);
	free(r->content_type);
	free(r->server_ip);
	free(r->error);
	free(r->label);
	free(r->up_version);
	free(r->req_trailers);
	free(r->resp_trailers);
	free(r->stream_end);
}

/* Free a WebSocket batch's messages and what each one owns. */
static void
store_ws_clear(struct store_ws_messages *w)
{
	size_t i;

	for (i = 0; w->m != NULL && i < w->n; i++) {
		free(w->m[i].close_reason);
		free(w->m[i].data);
		free(w->m[i].error);
	}
	free(w->m);
}

void
store_rec_free(struct store_rec *rec)
{
	struct store_domain_ip *d;

	if (rec == NULL)
		return;
	switch (rec->type) {
	case STORE_REC_CONN:
		store_conn_clear(&rec->u.conn);
		break;
	case STORE_REC_REQUEST:
		store_request_clear(&rec->u.req);
		break;
	case STORE_REC_DOMAIN_IP:
		d = &rec->u.dip;
		free(d->domain);
		free(d->ip);
		free(d->source);
		free(d->client_ip);
		break;
	case STORE_REC_LEARNED_PASSTHROUGH:
	case STORE_REC_LEARNED_FORGET:
		free(rec->u.learned.host);
		free(rec->u.learned.reason);
		break;
	case STORE_REC_NOTE:
		free(rec->u.note.client_ip);
		free(rec->u.note.text);
		break;
	case STORE_REC_STREAM_EVENTS:
		free(rec->u.sev.ev);
		break;
	case STORE_REC_TCP_SAMPLES:
		free(rec->u.tcps.s);
		break;
	case STORE_REC_KEYLOG:
		free(rec->u.keylog.line);
		break;
	case STORE_REC_WS_MESSAGES:
		store_ws_clear(&rec->u.ws);
		break;
	}
	free(rec);
}

static size_t
store_strlen(const char *v)
{
	return v != NULL ? strlen(v) + 1 : 0;
}

/* A WebSocket batch: its array, every payload, reason and error. */
static size_t
store_ws_bytes(const struct store_ws_messages *w)
{
	size_t i, n = w->n * sizeof(*w->m);

	for (i = 0; w->m != NULL && i < w->n; i++)
		n += w->m[i].len + store_strlen(w->m[i].close_reason) +
		    store_strlen(w->m[i].error);
	return n;
}

size_t
store_rec_bytes(const struct store_rec *rec)
{
	/* the many short strings of a record are put at a flat 256 bytes;
	 * what can be large is counted */
	size_t n = sizeof(*rec) + 256;

	switch (rec->type) {
	case STORE_REC_REQUEST:
		n += store_strlen(rec->u.req.req_headers) +
		    store_strlen(rec->u.req.resp_headers) +
		    rec->u.req.req_body.len + rec->u.req.resp_body.len +
		    store_strlen(rec->u.req.req_trailers) +
		    store_strlen(rec->u.req.resp_trailers);
		break;
	case STORE_REC_WS_MESSAGES:
		n += store_ws_bytes(&rec->u.ws);
		break;
	case STORE_REC_STREAM_EVENTS:
		n += rec->u.sev.n * sizeof(*rec->u.sev.ev);
		break;
	case STORE_REC_TCP_SAMPLES:
		n += rec->u.tcps.n * sizeof(*rec->u.tcps.s);
		break;
	case STORE_REC_KEYLOG:
		n += store_strlen(rec->u.keylog.line);
		break;
	case STORE_REC_NOTE:
		n += store_strlen(rec->u.note.text);
		break;
	case STORE_REC_CONN:
	case STORE_REC_DOMAIN_IP:
	case STORE_REC_LEARNED_PASSTHROUGH:
	case STORE_REC_LEARNED_FORGET:
		break;
	}
	return n;
}

const char *
store_rec_kind(const struct store_rec *rec)
{
	switch (rec->type) {
	case STORE_REC_CONN:
		return "connection";
	case STORE_REC_REQUEST:
		return "request";
	case STORE_REC_DOMAIN_IP:
		return "domain-ip";
	case STORE_REC_LEARNED_PASSTHROUGH:
		return "learned-passthrough";
	case STORE_REC_STREAM_EVENTS:
		return "stream-events";
	case STORE_REC_KEYLOG:
		return "keylog";
	case STORE_REC_LEARNED_FORGET:
		return "learned-forget";
	case STORE_REC_NOTE:
		return "note";
	case STORE_REC_WS_MESSAGES:
		return "websocket-messages";
	case STORE_REC_TCP_SAMPLES:
		return "tcp-samples";
	}
	return "unknown";
}
