/*
 * web_sse: GET /api/events, a Server-Sent Events stream of what the
 * capture gains — new exchanges (flow), connections with rows of their
 * own (conn) and WebSocket messages (ws). Each stream keeps a cursor (the
 * last request id, connection write sequence and message id it sent);
 * every tick a reader job asks for rows past it. Event ids are that
 * cursor, "R.C.M", so a browser that reconnects with Last-Event-ID gets
 * exactly what it missed.
 */
#include <sys/queue.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proxy/web/web_int.h"

/* Rows per poll; a stream whose client has this much unsent is skipped
 * until it reads (a stalled tab costs a bounded buffer, not memory). */
#define WEB_SSE_BATCH 1000
#define WEB_SSE_QUEUE (1024 * 1024)
/* A comment this often keeps idle streams (and proxies) from timing out. */
#define WEB_SSE_HEARTBEAT_S 15

struct web_sse {
	struct web_sse *next;
	struct web *w;
	struct web_req *wr;
	char *filter;
	struct webq_cursor cur;
	int have_cursor;
	int busy; /* a job is out */
	time_t last_write;
};

static int64_t
web_sse_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* "R.C.M" into c. 0 / -1. */
static int
web_sse_parse_id(const char *s, struct webq_cursor *c)
{
	int64_t v[3];
	char *end;

	if (s == NULL)
		return -1;
	for (int i = 0; i < 3; i++) {
		if (*s < '0' || *s > '9')
			return -1;
		errno = 0;
		v[i] = strtoll(s, &end, 10);
		if (errno != 0 || *end != (i < 2 ? '.' : '\0'))
			return -1;
		s = end + 1;
	}
	c->req = v[0];
	c->conn = v[1];
	c->ws = v[2];
	return 0;
}

static void
web_sse_free(struct web_sse *s)
{
	struct web_sse **pp;

	for (pp = &s->w->sse; *pp != NULL; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			s->w->nsse--;
			break;
		}
	web_req_release(s->wr);
	free(s->filter);
	free(s);
}

/* 1 when the client has left (or the stream was ended). */
static int
web_sse_gone(const struct web_sse *s)
{
	return s->wr == NULL || s->wr->req == NULL;
}

/* Write text to the stream. */
static void
web_sse_write(struct web_sse *s, struct evbuffer *b)
{
	if (!web_sse_gone(s) && evbuffer_get_length(b) > 0) {
		evhttp_send_reply_chunk(s->wr->req, b);
		s->last_write = web_sse_now();
	}
}

void
web_sse_open(struct web *w, struct evhttp_request *req, const char *query)
{
	struct evkeyvalq q;
	const char *last, *filter;
	struct web_sse *s;
	struct evbuffer *b;
	struct evkeyvalq *h;

	if (w->nsse >= WEB_SSE_MAX) {
		web_reply_error(req, 503, "too many event streams");
		return;
	}
	TAILQ_INIT(&q);
	if (query != NULL)
		evhttp_parse_query_str(query, &q);
	last = evhttp_find_header(
	    evhttp_request_get_input_headers(req), "Last-Event-ID");
	if (last == NULL)
		last = evhttp_find_header(&q, "last");
	filter = evhttp_find_header(&q, "filter");
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (filter != NULL && filter[0] != '\0' &&
		(s->filter = strdup(filter)) == NULL) ||
	    (s->wr = web_req_hold(req)) == NULL ||
	    (b = evbuffer_new()) == NULL) {
		if (s != NULL) {
			free(s->filter);
			web_req_release(s->wr);
		}
		free(s);
		evhttp_clear_headers(&q);
		web_reply_error(req, 500, "out of memory");
		return;
	}
	s->have_cursor = web_sse_parse_id(last, &s->cur) == 0;
	evhttp_clear_headers(&q); /* last may point into it */
	s->w = w;
	s->next = w->sse;
	w->sse = s;
	w->nsse++;
	h = evhttp_request_get_output_headers(req);
	web_add_common_headers(req);
	evhttp_add_header(h, "Content-Type", "text/event-stream");
	web_stream_start(req);
	evbuffer_add_printf(b, ": peephole events\nretry: 1000\n\n");
	web_sse_write(s, b);
	evbuffer_free(b);
	web_sse_tick(w); /* first poll now, not a tick later */
}

/* One event of a changes batch, its id the cursor after it. */
static void
web_sse_event(struct web_sse *s, json_t *ev, struct evbuffer *b)
{
	const char *name = json_string_value(json_object_get(ev, "event"));
	json_t *data = json_object_get(ev, "data");
	char *text;

	if (name == NULL || data == NULL ||
	    (text = json_dumps(data, JSON_COMPACT | JSON_REAL_PRECISION(12))) ==
		NULL)
		return;
	if (strcmp(name, "flow") == 0)
		s->cur.req = json_integer_value(json_object_get(data, "id"));
	else if (strcmp(name, "conn") == 0)
		s->cur.conn = json_integer_value(json_object_get(data, "seq"));
	else if (strcmp(name, "ws") == 0 &&
	    json_is_integer(json_object_get(data, "ws_id")))
		s->cur.ws = json_integer_value(json_object_get(data, "ws_id"));
	evbuffer_add_printf(b,
	    "id: %" PRId64 ".%" PRId64 ".%" PRId64 "\nevent: %s\ndata: %s\n\n",
	    s->cur.req, s->cur.conn, s->cur.ws, name, text);
	free(text);
}

void
web_sse_job_done(struct web_job *j)
{
	struct web_sse *s = j->sse;
	struct evbuffer *b;
	struct webq_cursor end = j->cursor;
	size_t i;
	json_t *ev;

	s->busy = 0;
	if (web_sse_gone(s) || (b = evbuffer_new()) == NULL) {
		web_job_free(j);
		return;
	}
	if (j->failed) {
		evbuffer_add_printf(b, "event: error\ndata: ");
		json_t *o = json_pack("{s:s}", "error", j->err.msg);
		char *t = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
		evbuffer_add_printf(b, "%s\n\n", t != NULL ? t : "{}");
		free(t);
		json_decref(o);
		web_sse_write(s, b);
		/* a bad filter will not get better: end this stream (s->wr
		 * becomes NULL: the next tick frees s) */
		evhttp_send_reply_end(web_req_take(&s->wr));
	} else if (j->kind == WEB_JOB_CURSOR) {
		s->cur = j->cursor;
		s->have_cursor = 1;
	} else {
		json_array_foreach(j->json, i, ev) web_sse_event(s, ev, b);
		s->cur = end; /* also past rows the filter left out */
		web_sse_write(s, b);
	}
	evbuffer_free(b);
	web_job_free(j);
}

/* Bytes queued to s's client and not yet sent. */
static size_t
web_sse_queued(const struct web_sse *s)
{
	struct evhttp_connection *evcon =
	    evhttp_request_get_connection(s->wr->req);
	struct bufferevent *bev =
	    evcon != NULL ? evhttp_connection_get_bufferevent(evcon) : NULL;

	return bev != NULL ? evbuffer_get_length(bufferevent_get_output(bev))
			   : 0;
}

/* Poll for s, or beat its heart. */
static void
web_sse_poll(struct web_sse *s)
{
	struct web_job *j;
	struct evbuffer *b;

	if (s->busy || web_sse_queued(s) > WEB_SSE_QUEUE)
		return;
	if ((j = web_job_new(s->w,
		 s->have_cursor ? WEB_JOB_CHANGES : WEB_JOB_CURSOR)) != NULL &&
	    (s->filter == NULL || (j->filter = strdup(s->filter)) != NULL)) {
		j->sse = s;
		j->cursor = s->cur;
		j->limit = WEB_SSE_BATCH;
		if (web_job_submit(j) == 0)
			s->busy = 1;
		else
			web_job_free(j);
	} else
		web_job_free(j);
	if (web_sse_now() - s->last_write >= WEB_SSE_HEARTBEAT_S &&
	    (b = evbuffer_new()) != NULL) {
		evbuffer_add_printf(b, ": keep-alive\n\n");
		web_sse_write(s, b);
		evbuffer_free(b);
	}
}

void
web_sse_tick(struct web *w)
{
	struct web_sse *s, *next;

	for (s = w->sse; s != NULL; s = next) {
		next = s->next;
		if (!web_sse_gone(s))
			web_sse_poll(s);
		else if (!s->busy)
			web_sse_free(s);
	}
}

void
web_sse_close_all(struct web *w)
{
	struct web_sse *s;

	w->closing = 1; /* jobs still out are freed with the readers */
	while ((s = w->sse) != NULL) {
		struct evhttp_request *req = web_req_take(&s->wr);
		if (req != NULL)
			evhttp_send_reply_end(req);
		web_sse_free(s);
	}
}
