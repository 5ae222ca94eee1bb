/* offline: see offline.h. */
#include "proxy/net/offline.h"

#include <ctype.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/config.h"
#include "proxy/http/head.h"
#include "proxy/http/respond.h"
#include "proxy/log.h"
#include "proxy/net/conn_int.h"
#include "proxy/net/deadline.h"
#include "proxy/net/dial.h"
#include "proxy/net/exchange.h"
#include "proxy/net/h1.h"
#include "proxy/net/relay.h"
#include "proxy/net/server.h"
#include "proxy/net/worker.h"
#include "proxy/store/replaydb.h"
#include "proxy/store/store.h"

/* Body read from the capture per trip to the reader thread. */
#define OFFLINE_SLICE (256 * 1024)

struct offline {
	int64_t id;    /* the logged exchange answering this request */
	int64_t rowid; /* its body's row in the bodies table, 0: none */
	uint64_t len, sent;
	int head_sent, bodyless;
	struct replaydb_read *rd; /* a read in flight */
	/* --match-body: the request body is hashed where it lies in the
	 * input buffer, by a copy of the parser, before anything is decided
	 * (so an unmatched request can still go to the origin intact) */
	int peeking, peek_done;
	llhttp_t peekp;
	size_t scanned;
	EVP_MD_CTX *sha;
};

static int offline_peek_body(llhttp_t *p, const char *at, size_t len);
static int offline_peek_complete(llhttp_t *p);
static llhttp_settings_t offline_peek_settings;

static struct offline *
offline_get(struct conn *c)
{
	if (c->ex.off == NULL)
		c->ex.off = calloc(1, sizeof(*c->ex.off));
	return c->ex.off;
}

void
offline_free(struct conn *c)
{
	struct offline *o = c->ex.off;

	if (o == NULL)
		return;
	replaydb_read_cancel(o->rd);
	EVP_MD_CTX_free(o->sha);
	free(o);
	c->ex.off = NULL;
}

/* The match key of the request in c's record. */
static void
offline_key(const struct conn *c, struct replaydb_key *k, const char *sha)
{
	const struct store_request *r = &c->ex.rec->u.req;

	memset(k, 0, sizeof(*k));
	k->method = r->method;
	k->scheme = r->scheme;
	k->host = r->host ? r->host : "";
	k->port = (unsigned)r->port;
	k->path = r->path;
	k->query = r->query;
	k->body_sha = sha;
}

/* Not in the capture: to the origin, or a 404 that says why. 1 if taken. */
static int
offline_unmatched(struct conn *c, const char *why)
{
	char msg[600];

	offline_free(c);
	if (c->w->cfg->replay_forward_unmatched)
		return 0;
	snprintf(msg, sizeof(msg), "not in the replayed capture: %s", why);
	exchange_fail(c, 404, msg);
	return 1;
}

static void offline_chunk(struct replaydb_chunk *ch, void *arg);

static int
offline_fetch(struct conn *c)
{
	struct offline *o = c->ex.off;

	o->rd = replaydb_read(c->w->srv->replay, o->id, o->rowid, o->sent,
	    OFFLINE_SLICE, c->w->base, offline_chunk, c);
	return o->rd == NULL ? -1 : 0;
}

/* Answer from logged exchange id: read the request's body away (it is
 * recorded, not sent anywhere) while the answer is fetched. */
static void
offline_serve(struct conn *c, int64_t id)
{
	struct offline *o = c->ex.off;
	struct store_request *r = &c->ex.rec->u.req;

	o->id = id;
	o->peeking = 0;
	r->replay_of = id;
	free(r->label);
	r->label = strdup("server-replay");
	c->ex.t_sent_us = now_us();
	conn_enter(c, CONN_OFFLINE);
	/* a client waiting to be invited to send its body is invited:
	 * the body is read (and recorded) whatever the answer */
	if (c->h1.reqp.http_minor >= 1 &&
	    head_find(&c->h1.reqh, "expect", 0) != -1) {
		int n = evbuffer_add_printf(bufferevent_get_output(c->cbev),
		    "HTTP/1.1 100 Continue\r\n\r\n");
		if (n > 0)
			c->tot.bytes_to_client += (uint64_t)n;
	}
	if (offline_fetch(c) == -1) {
		exchange_fail(c, 500, "out of memory");
		return;
	}
	offline_read(c);
}

int
offline_request(struct conn *c)
{
	struct replaydb *db = c->w->srv->replay;
	struct replaydb_key k;
	char why[512];
	int64_t id;
	int has_body;

	if (db == NULL || c->ex.is_connect || c->ex.req_upgrade ||
	    c->ex.rec == NULL)
		return 0;
	if (offline_get(c) == NULL) {
		exchange_fail(c, 500, "out of memory");
		return 1;
	}
	has_body = (c->h1.reqp.flags & F_CHUNKED) ||
	    ((c->h1.reqp.flags & F_CONTENT_LENGTH) &&
		c->h1.reqp.content_length > 0);
	offline_key(c, &k, replaydb_match_body(db) && !has_body ? "" : NULL);
	why[0] = '\0';
	id = replaydb_find(db, &k, why, sizeof(why));
	if (id == 0)
		return offline_unmatched(c, why);
	if (id > 0) {
		offline_serve(c, id);
		return 1;
	}
	/* some logged exchange has this URL: hash the body, then decide */
	c->ex.off->peeking = 1;
	c->ex.off->peekp = c->h1.reqp;
	c->ex.off->peekp.settings = &offline_peek_settings;
	c->ex.off->peekp.data = c;
	if ((c->ex.off->sha = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(c->ex.off->sha, EVP_sha256(), NULL) != 1) {
		exchange_fail(c, 500, "out of memory");
		return 1;
	}
	conn_enter(c, CONN_OFFLINE);
	offline_read(c);
	return 1;
}

/* ---- --match-body: hashing the body in place ---- */

static int
offline_peek_body(llhttp_t *p, const char *at, size_t len)
{
	struct conn *c = p->data;

	EVP_DigestUpdate(c->ex.off->sha, at, len);
	return 0;
}

static int
offline_peek_complete(llhttp_t *p)
{
	struct conn *c = p->data;

	c->ex.off->peek_done = 1;
	return HPE_PAUSED;
}

static void
offline_peek_decide(struct conn *c)
{
	struct offline *o = c->ex.off;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	char hex[2 * EVP_MAX_MD_SIZE + 1], why[512];
	struct replaydb_key k;
	int64_t id;

	if (EVP_DigestFinal_ex(o->sha, md, &mdlen) != 1) {
		exchange_fail(c, 500, "cannot hash the request body");
		return;
	}
	for (unsigned i = 0; i < mdlen; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	hex[2 * mdlen] = '\0';
	offline_key(c, &k, hex);
	why[0] = '\0';
	id = replaydb_find(c->w->srv->replay, &k, why, sizeof(why));
	if (id > 0) {
		offline_serve(c, id);
		return;
	}
	if (!offline_unmatched(c, why))
		exchange_forward(c); /* the body is still unread */
}

static void
offline_peek(struct conn *c)
{
	struct offline *o = c->ex.off;
	struct evbuffer *in = bufferevent_get_input(c->cbev);
	size_t have = evbuffer_get_length(in);

	while (!o->peek_done && o->scanned < have) {
		struct evbuffer_ptr pos;
		struct evbuffer_iovec v;
		if (evbuffer_ptr_set(in, &pos, o->scanned, EVBUFFER_PTR_SET) ==
			-1 ||
		    evbuffer_peek(in, -1, &pos, &v, 1) < 1)
			break;
		enum llhttp_errno err =
		    llhttp_execute(&o->peekp, v.iov_base, v.iov_len);
		if (err == HPE_PAUSED) {
			o->peek_done = 1;
			break;
		}
		if (err != HPE_OK) {
			char why[160];
			snprintf(why, sizeof(why), "malformed request body: %s",
			    llhttp_get_error_reason(&o->peekp));
			exchange_fail(c, 400, why);
			return;
		}
		o->scanned += v.iov_len;
	}
	if (o->peek_done) {
		offline_peek_decide(c);
		return;
	}
	/* the whole body must fit where the client's bytes wait */
	if (have >= c->w->cfg->relay_buffer_bytes) {
		if (!offline_unmatched(
			c, "request body too large to compare (relay-buffer)"))
			exchange_forward(c);
		return;
	}
	if (c->client_eof) {
		conn_close(c, "client-eof", "client closed mid-request");
		return;
	}
	deadline_arm(c);
}

/* ---- the answer ---- */

/* 1 for the hop-by-hop fields of a logged head and those we recompute. */
static int
offline_drop_field(const char *name, size_t len, const char *headers)
{
	return head_text_is_hop(name, len, headers) ||
	    (len == 14 && strncasecmp(name, "content-length", 14) == 0);
}

/* The logged head's fields h, less those offline_drop_field drops, as
 * lines into kept. 0, or -1 out of memory. */
static int
offline_kept_fields(const char *h, struct evbuffer *kept)
{
	struct head_text_iter it;
	const char *name;
	size_t nlen;

	head_text_init(&it, h);
	while (head_text_next(&it, &name, &nlen, NULL, NULL)) {
		char *line;
		if (offline_drop_field(name, nlen, h))
			continue;
		if ((line = head_text_line(&it)) == NULL ||
		    evbuffer_add_printf(kept, "%s\r\n", line) < 0) {
			free(line);
			return -1;
		}
		free(line);
	}
	return 0;
}

/* The Connection field this client needs: close when either side ends
 * the connection (we do when shutting down), keep-alive for an HTTP/1.0
 * client that keeps it, else none. */
static const char *
offline_conn_field(struct conn *c)
{
	if (c->w->shutting_down)
		c->client_ka = 0;
	if (!c->client_ka)
		return "Connection: close\r\n";
	if (c->h1.reqp.http_major == 1 && c->h1.reqp.http_minor == 0)
		return "Connection: keep-alive\r\n";
	return "";
}

/* Content-Length of the answer into out: the body we send, or for a HEAD
 * the length the origin announced (cl, clen; cl NULL if it announced
 * none). 0, or -1 out of memory. */
static int
offline_length_field(
    struct conn *c, struct evbuffer *out, const char *cl, size_t clen)
{
	struct offline *o = c->ex.off;
	int rc = 0;

	if (!o->bodyless)
		rc = evbuffer_add_printf(out, "Content-Length: %llu\r\n",
		    (unsigned long long)o->len);
	else if (cl != NULL && c->ex.is_head)
		rc = evbuffer_add_printf(
		    out, "Content-Length: %.*s\r\n", (int)clen, cl);
	return rc < 0 ? -1 : 0;
}

/* The head (bytes long) is queued to the client: note it in the record. */
static void
offline_record_head(
    struct conn *c, const struct replaydb_chunk *ch, size_t bytes)
{
	struct store_request *r = &c->ex.rec->u.req;

	c->tot.bytes_to_client += bytes;
	r->status = ch->status;
	r->resp_version = strdup("1.1");
	r->resp_headers = strdup(ch->resp_headers);
	r->resp_header_bytes = bytes;
	r->ttfb_us = now_us() - c->ex.t_sent_us;
	c->ex.off->head_sent = 1;
	c->ex.resp_head_sent = 1;
}

/* Status line and the logged fields, framed anew for this client. */
static int
offline_emit_head(struct conn *c, const struct replaydb_chunk *ch)
{
	struct offline *o = c->ex.off;
	struct store_request *r = &c->ex.rec->u.req;
	struct evbuffer *out = bufferevent_get_output(c->cbev);
	struct evbuffer *kept = evbuffer_new();
	size_t before = evbuffer_get_length(out), clen, vlen;
	const char *h = ch->resp_headers, *conn_hdr;
	const char *cl = head_text_find(h, "content-length", &clen);
	const char *ct = head_text_find(h, "content-type", &vlen);
	int st = ch->status, rc = -1;

	if (kept == NULL)
		return -1;
	if (ct != NULL && r->content_type == NULL)
		r->content_type = strndup(ct, vlen);
	if (offline_kept_fields(h, kept) == -1)
		goto out;
	o->bodyless = c->ex.is_head || st == 204 || st == 304 || st < 200;
	o->len = o->bodyless ? 0 : ch->body_len;
	conn_hdr = offline_conn_field(c);
	if (evbuffer_add_printf(
		out, "HTTP/1.1 %d %s\r\n", st, respond_reason(st)) < 0 ||
	    evbuffer_add_buffer(out, kept) == -1 ||
	    offline_length_field(c, out, cl, clen) == -1 ||
	    evbuffer_add_printf(out, "X-Peephole-Replay-Of: %lld\r\n%s\r\n",
		(long long)o->id, conn_hdr) < 0)
		goto out;
	rc = 0;
	offline_record_head(c, ch, evbuffer_get_length(out) - before);
out:
	evbuffer_free(kept);
	return rc;
}

/* Both sides are done with the answer's body and the request's: end the
 * exchange. 1 if it did (c may be gone: the caller returns at once). */
static int
offline_maybe_end(struct conn *c)
{
	if (!c->ex.req_done || !c->ex.resp_done)
		return 0;
	bufferevent_setwatermark(c->cbev, EV_WRITE, 0, 0);
	offline_free(c);
	exchange_end(c);
	return 1;
}

/* The reader failed: a 502 while nothing is sent, else cut short. */
static void
offline_chunk_error(struct conn *c, const char *error)
{
	struct offline *o = c->ex.off;

	log_warn("c%lld replay of #%lld: %s", (long long)c->id,
	    (long long)o->id, error);
	if (!o->head_sent)
		exchange_fail(c, 502, error);
	else
		conn_close(c, "error", error);
}

/* This slice's part of the body, captured for the record and queued to
 * the client. The bytes sent: none past the length (HEAD, 204, 304 send
 * no body). */
static size_t
offline_send_slice(struct conn *c, struct replaydb_chunk *ch)
{
	struct offline *o = c->ex.off;
	struct evbuffer *out = bufferevent_get_output(c->cbev);
	size_t n = evbuffer_get_length(ch->data);

	if (n > o->len - o->sent)
		n = (size_t)(o->len - o->sent);
	if (n > 0) {
		struct evbuffer_iovec v[8];
		int nv = evbuffer_peek(ch->data, (ev_ssize_t)n, NULL, v, 8);
		for (int i = 0; i < nv && i < 8; i++)
			exchange_capture_resp(c, v[i].iov_base, v[i].iov_len);
		evbuffer_remove_buffer(ch->data, out, n);
		o->sent += n;
		c->tot.bytes_to_client += n;
	}
	return n;
}

/* More body to send: fetch the next slice now, or once the client has
 * taken this one (offline_write, at the write low-watermark). */
static void
offline_more(struct conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->cbev);

	if (evbuffer_get_length(out) < c->w->cfg->relay_buffer_bytes) {
		if (offline_fetch(c) == -1)
			conn_close(c, "error", "out of memory");
	} else
		bufferevent_setwatermark(
		    c->cbev, EV_WRITE, c->w->cfg->relay_buffer_bytes / 2, 0);
	deadline_arm(c);
}

/* A slice of the logged answer has come back from the reader thread: the
 * head first, then the body slice by slice. Worker thread. */
static void
offline_chunk(struct replaydb_chunk *ch, void *arg)
{
	struct conn *c = arg;
	struct offline *o = c->ex.off;
	size_t n;

	o->rd = NULL;
	if (ch->error != NULL) {
		offline_chunk_error(c, ch->error);
		return;
	}
	if (!o->head_sent) {
		o->rowid = ch->body_rowid;
		if (offline_emit_head(c, ch) == -1) {
			exchange_fail(c, 500, "cannot build the answer");
			return;
		}
	}
	n = offline_send_slice(c, ch);
	c->t_active_us = now_us();
	if (o->sent < o->len && n > 0) {
		offline_more(c);
		return;
	}
	if (o->sent < o->len) {
		/* the file holds less than its size said: cut short */
		conn_close(c, "error", "logged body shorter than recorded");
		return;
	}
	c->ex.resp_done = 1;
	if (offline_maybe_end(c))
		return;
	deadline_arm(c);
}

void
offline_write(struct conn *c)
{
	struct offline *o = c->ex.off;

	if (o == NULL || o->rd != NULL || !o->head_sent || o->sent >= o->len)
		return;
	bufferevent_setwatermark(c->cbev, EV_WRITE, 0, 0);
	if (offline_fetch(c) == -1)
		conn_close(c, "error", "out of memory");
}

/* Read the request body away (captured for the record by the parser's
 * callbacks) until the message ends. */
void
offline_read(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->cbev);

	if (c->ex.off == NULL)
		return;
	if (c->ex.off->peeking) {
		offline_peek(c);
		return;
	}
	while (!c->ex.req_done) {
		struct evbuffer_iovec v = {(void *)"", 0};
		if (evbuffer_get_length(in) > 0 &&
		    evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		enum llhttp_errno err =
		    llhttp_execute(&c->h1.reqp, v.iov_base, v.iov_len);
		size_t used = err == HPE_OK
		    ? v.iov_len
		    : (size_t)(llhttp_get_error_pos(&c->h1.reqp) -
			  (const char *)v.iov_base);
		evbuffer_drain(in, used);
		c->tot.bytes_from_client += used;
		if (err == HPE_PAUSED) {
			llhttp_resume(&c->h1.reqp);
			break;
		}
		if (err != HPE_OK) {
			char why[160];
			snprintf(why, sizeof(why), "malformed request body: %s",
			    llhttp_get_error_reason(&c->h1.reqp));
			if (c->ex.off->head_sent)
				conn_close(c, "error", why);
			else
				exchange_fail(c, 400, why);
			return;
		}
		if (v.iov_len == 0)
			break;
	}
	if (!c->ex.req_done && c->client_eof && evbuffer_get_length(in) == 0) {
		conn_close(c, "client-eof", "client closed mid-request");
		return;
	}
	if (offline_maybe_end(c))
		return;
	deadline_arm(c);
}

static llhttp_settings_t offline_peek_settings = {
    .on_body = offline_peek_body,
    .on_message_complete = offline_peek_complete,
};
