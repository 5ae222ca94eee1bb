/*
 * ws: WebSocket messages into the store (see ws.h).
 */
#include "proxy/net/ws.h"

#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#include "conf/config.h"
#include "filters/wsframe.h"
#include "proxy/http/head.h"
#include "proxy/log.h"
#include "proxy/net/conn_int.h"
#include "proxy/net/worker.h"
#include "proxy/store/store.h"

struct ws {
	struct wsframe *p[2]; /* one parser per direction */
	int64_t conn_id;
	int seq;
	int next_idx; /* idx of the next batch's first message */
	struct store_ws_msg *m;
	size_t n, cap, bytes;
	int stopped; /* a direction stopped parsing: its error recorded */
	struct conn *c;
};

struct ws *
ws_new(struct conn *c, int seq, const char *extensions)
{
	struct wsframe_deflate pmd;
	size_t cap = c->w->cfg->body_capture_bytes;
	struct ws *w;

	if (c->w->store == NULL || !c->w->cfg->record_flows)
		return NULL;
	memset(&pmd, 0, sizeof(pmd));
	if (extensions != NULL &&
	    wsframe_parse_extensions(extensions, strlen(extensions), &pmd) ==
		-1) {
		log_info("c%lld WebSocket: cannot read the extensions \"%s\": "
			 "compressed messages are recorded as sent",
		    (long long)c->id, extensions);
		memset(&pmd, 0, sizeof(pmd));
	}
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return NULL;
	w->conn_id = c->id;
	w->seq = seq;
	w->c = c;
	w->p[0] = wsframe_new(0, cap, pmd.enabled ? &pmd : NULL);
	w->p[1] = wsframe_new(1, cap, pmd.enabled ? &pmd : NULL);
	if (w->p[0] == NULL || w->p[1] == NULL) {
		wsframe_free(w->p[0]);
		wsframe_free(w->p[1]);
		free(w);
		return NULL;
	}
	return w;
}

/* The batch so far goes to the store. */
static void
ws_submit(struct ws *w, struct conn *c)
{
	struct store_rec *rec;

	if (w->n == 0)
		return;
	if ((rec = store_rec_new(STORE_REC_WS_MESSAGES)) == NULL) {
		log_warnx("c%lld WebSocket: out of memory, %zu messages lost",
		    (long long)c->id, w->n);
		for (size_t i = 0; i < w->n; i++) {
			free(w->m[i].data);
			free(w->m[i].close_reason);
			free(w->m[i].error);
		}
		free(w->m);
	} else {
		rec->u.ws.conn_id = w->conn_id;
		rec->u.ws.seq = w->seq;
		rec->u.ws.first_idx = w->next_idx;
		rec->u.ws.n = w->n;
		rec->u.ws.m = w->m;
		(void)store_submit(c->w->store, rec);
	}
	w->next_idx += (int)w->n;
	w->m = NULL;
	w->n = w->cap = w->bytes = 0;
}

/* Room for one more message in the batch; NULL on ENOMEM. */
static struct store_ws_msg *
ws_slot(struct ws *w)
{
	if (w->n == w->cap) {
		size_t ncap = w->cap ? w->cap * 2 : 8;
		struct store_ws_msg *m = realloc(w->m, ncap * sizeof(*m));
		if (m == NULL)
			return NULL;
		w->m = m;
		w->cap = ncap;
	}
	memset(&w->m[w->n], 0, sizeof(w->m[0]));
	w->m[w->n].close_code = -1;
	return &w->m[w->n++];
}

/* wsframe's callback: one whole message, copied into the batch. */
static void
ws_message(void *arg, const struct wsframe_msg *msg)
{
	struct ws *w = arg;
	struct store_ws_msg *m = ws_slot(w);

	if (m == NULL)
		return;
	m->t_us = now_us();
	m->dir = (uint8_t)msg->dir;
	m->opcode = (uint8_t)msg->opcode;
	m->compressed = (uint8_t)msg->compressed;
	m->truncated = (uint8_t)msg->truncated;
	m->size = msg->size;
	m->wire_bytes = msg->wire_bytes;
	m->close_code = msg->close_code;
	if (msg->close_reason != NULL && msg->close_reason_len > 0)
		m->close_reason =
		    conn_strndup(msg->close_reason, msg->close_reason_len);
	if (msg->len > 0 && (m->data = malloc(msg->len)) != NULL) {
		memcpy(m->data, msg->data, msg->len);
		m->len = msg->len;
	}
	w->bytes += m->len;
	if (w->n >= WS_BATCH_MSGS || w->bytes >= WS_BATCH_BYTES)
		ws_submit(w, w->c);
}

/* A direction stopped being WebSocket: say where and why, once. */
static void
ws_stopped(struct ws *w, struct conn *c, int dir)
{
	struct store_ws_msg *m;
	const char *why = wsframe_error(w->p[dir]);

	if (w->stopped)
		return;
	w->stopped = 1;
	log_info("c%lld WebSocket %s: %s; relayed unread from here",
	    (long long)c->id, dir ? "server->client" : "client->server",
	    why ? why : "not WebSocket");
	if ((m = ws_slot(w)) == NULL)
		return;
	m->t_us = now_us();
	m->dir = (uint8_t)dir;
	m->error = strdup(why ? why : "not WebSocket");
}

void
ws_feed(struct ws *w, struct conn *c, int dir, const void *p, size_t n)
{
	if (w == NULL || n == 0 || w->stopped)
		return;
	if (wsframe_feed(w->p[dir], p, n, ws_message, w) == -1)
		ws_stopped(w, c, dir);
}

void
ws_feed_evbuffer(struct ws *w, struct conn *c, int dir, struct evbuffer *in)
{
	struct evbuffer_iovec v[16];
	int n;
	struct evbuffer_ptr at;

	if (w == NULL || w->stopped)
		return;
	if (evbuffer_ptr_set(in, &at, 0, EVBUFFER_PTR_SET) != 0)
		return;
	/* chunk by chunk, without pulling the buffer up */
	while ((n = evbuffer_peek(in, -1, &at, v, 16)) > 0) {
		size_t done = 0;
		for (int i = 0; i < n && i < 16; i++) {
			ws_feed(w, c, dir, v[i].iov_base, v[i].iov_len);
			done += v[i].iov_len;
		}
		/* with len -1 libevent fills the vector and says no more:
		 * a full one means more chains may follow */
		if (n < 16 ||
		    evbuffer_ptr_set(in, &at, done, EVBUFFER_PTR_ADD) != 0)
			break;
	}
}

void
ws_end(struct ws *w, struct conn *c)
{
	if (w == NULL)
		return;
	ws_submit(w, c);
	wsframe_free(w->p[0]);
	wsframe_free(w->p[1]);
	free(w);
}

void
ws_start_h1(struct conn *c)
{
	int i = head_find(&c->h1.resph, "sec-websocket-extensions", 0);
	char *ext = i != -1 ? head_value_dup(&c->h1.resph, i) : NULL;

	if (head_has_token(&c->h1.reqh, "upgrade", "websocket") &&
	    head_has_token(&c->h1.resph, "upgrade", "websocket"))
		c->ws = ws_new(c, c->tot.nrequests, ext);
	free(ext);
}
