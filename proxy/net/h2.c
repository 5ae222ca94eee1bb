/*
 * h2: both nghttp2 sessions of a connection and the bytes between them
 * (see h2.h). The client's session (down) is a server session, the
 * origin's (up) a client session; a stream's frames cross from one to the
 * other here, and h2_stream.c keeps what each stream says for the record.
 */
#include "proxy/net/h2.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/config.h"
#include "proxy/log.h"
#include "proxy/net/conn_int.h"
#include "proxy/net/exchange.h"
#include "proxy/net/h2_int.h"
#include "proxy/net/relay.h"
#include "proxy/net/stream.h"
#include "proxy/net/upstream.h"
#include "proxy/net/worker.h"
#include "proxy/net/ws.h"

/* The connection window each session opens to its peer: bytes are taken
 * off it as they arrive, so it only spares WINDOW_UPDATE round trips. */
#define H2_CONN_WINDOW (1 << 24)

const char *
h2_error_name(uint32_t code)
{
	static const char *const names[] = {"NO_ERROR", "PROTOCOL_ERROR",
	    "INTERNAL_ERROR", "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT",
	    "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL",
	    "COMPRESSION_ERROR", "CONNECT_ERROR", "ENHANCE_YOUR_CALM",
	    "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED"};

	return code < sizeof(names) / sizeof(names[0]) ? names[code]
						       : "UNKNOWN_ERROR";
}

struct h2_stream *
h2_stream_of(struct conn *c, int32_t down_id)
{
	return nghttp2_session_get_stream_user_data(c->h2->down, down_id);
}

/* ---- sending: frames go into the bufferevents' output ---- */

/* nghttp2's send callback for either leg: into the output buffer, until
 * it holds H2_OUT_LIMIT bytes (the write callback asks for more). */
static ssize_t
h2_send(
    struct bufferevent *bev, uint64_t *count, const uint8_t *data, size_t len)
{
	struct evbuffer *out = bufferevent_get_output(bev);

	if (evbuffer_get_length(out) >= H2_OUT_LIMIT)
		return NGHTTP2_ERR_WOULDBLOCK;
	if (evbuffer_add(out, data, len) != 0)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	*count += len;
	return (ssize_t)len;
}

static ssize_t
h2_send_down(nghttp2_session *session, const uint8_t *data, size_t len,
    int flags, void *arg)
{
	struct conn *c = arg;

	(void)session;
	(void)flags;
	return h2_send(c->cbev, &c->tot.bytes_to_client, data, len);
}

static ssize_t
h2_send_up(nghttp2_session *session, const uint8_t *data, size_t len, int flags,
    void *arg)
{
	struct conn *c = arg;

	(void)session;
	(void)flags;
	if (c->up == NULL)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	return h2_send(c->up->bev, &c->tot.bytes_to_server, data, len);
}

static void h2_up_lost(struct conn *c, const char *why);

/* The client's connection ends after what is queued for it: the origin's
 * leg goes first (DRAIN is the client's alone, and lingers without it). */
static void
h2_drain(struct conn *c, const char *reason, const char *err)
{
	upstream_free(c->up);
	c->up = NULL;
	h2_h1_quiesce(c);
	conn_drain(c, reason, err);
}

/* The end of a connection whose sessions have nothing left to do. */
static void
h2_check_done(struct conn *c)
{
	struct h2 *h = c->h2;

	if (c->state != CONN_H2 || h->down == NULL)
		return;
	if (h->up_gone && h->nstreams == 0 && !h->goaway_sent) {
		/* the origin is gone: so goes the client's connection, as
		 * it would without us, once its streams are done */
		h->goaway_sent = 1;
		(void)nghttp2_session_terminate_session(
		    h->down, NGHTTP2_NO_ERROR);
		(void)nghttp2_session_send(h->down);
	}
	if (!nghttp2_session_want_read(h->down) &&
	    !nghttp2_session_want_write(h->down)) {
		log_debug("c%lld h2 done: up_gone=%d streams=%d",
		    (long long)c->id, h->up_gone, h->nstreams);
		h2_drain(c, c->client_eof ? "client-eof" : "done", NULL);
	}
}

/*
 * Send what both sessions have queued. Taking a stream's bytes on one leg
 * opens its window on the other (a WINDOW_UPDATE to send there), so go
 * round until neither has more, a few times at most: the write callbacks
 * call again once the outputs drain.
 */
void
h2_flush(struct conn *c)
{
	struct h2 *h = c->h2;
	int rv;

	if (c->state != CONN_H2)
		return;
	for (int i = 0; i < 4; i++) {
		h->dirty = 0;
		if (h->up != NULL && c->up != NULL && !h->up_gone &&
		    (rv = nghttp2_session_send(h->up)) != 0) {
			log_info("c%lld h2 origin session: %s",
			    (long long)c->id, nghttp2_strerror(rv));
			h2_up_lost(c, nghttp2_strerror(rv));
		}
		if (h->down != NULL &&
		    (rv = nghttp2_session_send(h->down)) != 0) {
			conn_close(c, "error", nghttp2_strerror(rv));
			return;
		}
		if (!h->dirty || c->state != CONN_H2)
			break;
	}
	h2_check_done(c);
}

static int h2_session_new(struct conn *c, int down, nghttp2_session **out);

/* ---- receiving ---- */

/* Feed a session what the bufferevent's input holds. 0, or -1 when the
 * peer broke the protocol (its session has queued a GOAWAY). */
static int
h2_recv(struct conn *c, nghttp2_session *s, struct evbuffer *in,
    uint64_t *count, const char **err)
{
	struct evbuffer_iovec v[8];
	int n;

	while (evbuffer_get_length(in) > 0 && c->state != CONN_CLOSED) {
		size_t used = 0;
		n = evbuffer_peek(in, -1, NULL, v, 8);
		for (int i = 0; i < n && i < 8; i++) {
			ssize_t r = nghttp2_session_mem_recv(
			    s, v[i].iov_base, v[i].iov_len);
			if (r < 0) {
				*err = nghttp2_strerror((int)r);
				evbuffer_drain(in, used);
				return -1;
			}
			used += (size_t)r;
		}
		evbuffer_drain(in, used);
		*count += used;
	}
	return 0;
}

void
h2_client_read(struct conn *c)
{
	const char *err = NULL;

	if (c->h2->down == NULL) {
		/* waiting for the origin's SETTINGS: the client's bytes wait
		 * in its buffer, ours to the origin go */
		h2_flush(c);
		return;
	}
	if (h2_recv(c, c->h2->down, bufferevent_get_input(c->cbev),
		&c->tot.bytes_from_client, &err) == -1) {
		log_info("c%lld h2 client: %s", (long long)c->id, err);
		(void)nghttp2_session_send(c->h2->down);
		h2_close(c, err);
		h2_drain(c, "client-h2-error", err);
		return;
	}
	h2_flush(c);
}

void
h2_up_read(struct conn *c)
{
	const char *err = NULL;

	if (c->h2->up == NULL)
		return; /* an HTTP/1.1 origin: h2_h1.c reads it */
	if (h2_recv(c, c->h2->up, bufferevent_get_input(c->up->bev),
		&c->tot.bytes_from_server, &err) == -1) {
		log_info("c%lld h2 origin: %s", (long long)c->id, err);
		h2_up_event(c, BEV_EVENT_ERROR);
		return;
	}
	if (c->h2->down == NULL && c->h2->up_settings) {
		/* the origin has said what it takes: now the client */
		if (h2_session_new(c, 1, &c->h2->down) == -1) {
			conn_close(c, "error", "cannot set up HTTP/2");
			return;
		}
		h2_client_read(c);
		return;
	}
	h2_flush(c);
}

void
h2_client_write(struct conn *c)
{
	h2_flush(c);
}

void
h2_up_write(struct conn *c)
{
	h2_flush(c);
}

/* The origin's session is over: every stream still waiting on it is
 * reset towards the client (h2_check_done then ends the client's). */
static void
h2_up_lost(struct conn *c, const char *why)
{
	struct h2 *h = c->h2;
	struct h2_stream *s, *next;

	h->up_gone = 1;
	h->dirty = 1;
	for (s = TAILQ_FIRST(&h->streams); s != NULL; s = next) {
		next = TAILQ_NEXT(s, link);
		if (s->up_id <= 0 || s->up_closed)
			continue;
		s->up_closed = 1;
		if (!s->resp_end) {
			h2_stream_fail(s, why);
			(void)nghttp2_submit_rst_stream(h->down,
			    NGHTTP2_FLAG_NONE, s->down_id,
			    NGHTTP2_INTERNAL_ERROR);
		}
	}
}

/* The origin's connection ended. */
void
h2_up_event(struct conn *c, short what)
{
	const char *why = (what & BEV_EVENT_EOF)
	    ? "origin closed the connection"
	    : "origin connection error";

	if (c->h2->down == NULL) {
		/* gone before its SETTINGS: nothing was asked of it yet */
		c->h2->up_gone = 1;
		conn_close(c, "server-eof", why);
		return;
	}
	h2_up_lost(c, why);
	stream_closed_by(
	    c, (what & BEV_EVENT_EOF) ? "server-fin" : "server-error");
	h2_flush(c);
}

void
h2_client_eof(struct conn *c)
{
	h2_close(c, "client closed the connection");
	conn_close(c, "client-eof", NULL);
}

void
h2_timeout(struct conn *c)
{
	h2_close(c, "idle timeout");
	conn_close(c, "idle-timeout", NULL);
}

/* ---- the client's session: requests ---- */

static int
h2_down_begin_headers(
    nghttp2_session *session, const nghttp2_frame *frame, void *arg)
{
	struct conn *c = arg;
	struct h2_stream *s;

	if (frame->hd.type != NGHTTP2_HEADERS ||
	    frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	if ((s = h2_stream_new(c, frame->hd.stream_id)) == NULL)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	(void)nghttp2_session_set_stream_user_data(
	    session, frame->hd.stream_id, s);
	return 0;
}

/* A header field of either session: into the stream's head, or its
 * trailers once the head is complete. */
static int
h2_on_header(nghttp2_session *session, const nghttp2_frame *frame,
    const uint8_t *name, size_t nlen, const uint8_t *value, size_t vlen,
    uint8_t flags, void *arg)
{
	struct conn *c = arg;
	struct h2_stream *s;
	struct h2_fields *f;

	(void)flags;
	if (frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	if (s == NULL)
		return 0;
	if (session == c->h2->down)
		f = frame->headers.cat == NGHTTP2_HCAT_REQUEST ? &s->req
							       : &s->req_trl;
	else
		f = s->resp_head ? &s->resp_trl : &s->resp;
	/* the peer ignored our MAX_HEADER_LIST_SIZE: the stream goes */
	if (f->bytes + nlen + vlen + 32 > c->w->cfg->max_header_bytes ||
	    h2_fields_add(f, name, nlen, value, vlen) == -1)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	return 0;
}

/* More of the request can go to the origin. */
static void
h2_up_more(struct h2_stream *s)
{
	struct h2 *h = s->c->h2;

	if (s->up_id > 0 && !s->up_closed && h->up != NULL) {
		(void)nghttp2_session_resume_data(h->up, s->up_id);
		h->dirty = 1;
	} else if (s->h1 != NULL)
		h2_h1_request_more(s);
}

/* More of the answer can go to the client. */
void
h2_down_more(struct h2_stream *s)
{
	if (s->resp_sent && !s->down_closed)
		(void)nghttp2_session_resume_data(s->c->h2->down, s->down_id);
	s->c->h2->dirty = 1;
}

static ssize_t h2_up_read_body(nghttp2_session *session, int32_t id,
    uint8_t *buf, size_t len, uint32_t *flags, nghttp2_data_source *src,
    void *arg);

/* The request head is complete: record it and send it to the origin. */
static void
h2_request(struct conn *c, struct h2_stream *s)
{
	struct h2 *h = c->h2;
	nghttp2_data_provider prd = {{.ptr = s}, h2_up_read_body};
	int end = s->req_end && s->req_trl.n == 0;

	if (h2_stream_request(s) == -1) {
		(void)nghttp2_submit_rst_stream(h->down, NGHTTP2_FLAG_NONE,
		    s->down_id, NGHTTP2_INTERNAL_ERROR);
		return;
	}
	if (c->tls.verify_error != NULL) {
		char msg[400];
		exchange_origin_failure(c, msg, sizeof(msg));
		h2_stream_answer(s, 502, msg);
		return;
	}
	if (h->up_gone) {
		/* the origin said GOAWAY (or went): the client may retry
		 * this stream on a new connection */
		h2_stream_fail(s, "the origin connection is gone");
		(void)nghttp2_submit_rst_stream(h->down, NGHTTP2_FLAG_NONE,
		    s->down_id, NGHTTP2_REFUSED_STREAM);
		return;
	}
	if (h->up == NULL) {
		h2_h1_submit(s);
		return;
	}
	s->t_sent_us = now_us();
	s->up_id = nghttp2_submit_request(
	    h->up, NULL, s->req.nv, s->req.n, end ? NULL : &prd, s);
	if (s->up_id < 0) {
		h2_stream_answer(s, 502, nghttp2_strerror(s->up_id));
		s->up_id = 0;
		return;
	}
	h->dirty = 1;
}

static int
h2_down_frame(nghttp2_session *session, const nghttp2_frame *frame, void *arg)
{
	struct conn *c = arg;
	struct h2_stream *s;
	int end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;

	if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
		return 0;
	s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	if (s == NULL)
		return 0;
	if (end)
		s->req_end = 1;
	if (frame->hd.type == NGHTTP2_HEADERS &&
	    frame->headers.cat == NGHTTP2_HCAT_REQUEST)
		h2_request(c, s);
	else
		h2_up_more(s);
	return 0;
}

static int
h2_down_data(nghttp2_session *session, uint8_t flags, int32_t id,
    const uint8_t *data, size_t len, void *arg)
{
	struct conn *c = arg;
	struct h2_stream *s = nghttp2_session_get_stream_user_data(session, id);

	(void)flags;
	/* the connection's window opens at once: only streams hold bytes */
	(void)nghttp2_session_consume_connection(session, len);
	c->h2->dirty = 1;
	if (s == NULL || s->own_answer || (s->up_closed && s->h1 == NULL)) {
		/* nobody will take these: let the stream's window open */
		(void)nghttp2_session_consume_stream(session, id, len);
		if (s != NULL)
			h2_stream_capture(s, 0, data, len);
		return 0;
	}
	if (evbuffer_add(s->req_buf, data, len) != 0)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	h2_stream_capture(s, 0, data, len);
	ws_feed(s->ws, c, 0, data, len);
	h2_up_more(s);
	return 0;
}

/* Both legs are done with the stream: record and free it. */
void
h2_stream_maybe_finish(struct h2_stream *s)
{
	if (s->down_closed && s->up_closed)
		h2_stream_finish(s);
}

static int
h2_down_close(nghttp2_session *session, int32_t id, uint32_t code, void *arg)
{
	struct conn *c = arg;
	struct h2 *h = c->h2;
	struct h2_stream *s = nghttp2_session_get_stream_user_data(session, id);
	char why[64];

	if (s == NULL)
		return 0;
	s->down_closed = 1;
	if (code != NGHTTP2_NO_ERROR && s->end == NULL) {
		snprintf(
		    why, sizeof(why), "rst-client %s", h2_error_name(code));
		s->end = strdup(why);
	}
	if (!s->up_closed) {
		/* the client gave up on it: so does the origin */
		if (s->up_id > 0 && h->up != NULL) {
			(void)nghttp2_session_set_stream_user_data(
			    h->up, s->up_id, NULL);
			(void)nghttp2_submit_rst_stream(h->up,
			    NGHTTP2_FLAG_NONE, s->up_id,
			    code != NGHTTP2_NO_ERROR ? code : NGHTTP2_CANCEL);
			h->dirty = 1;
		} else if (s->h1 != NULL || s->queued)
			h2_h1_stream_gone(s);
		s->up_closed = 1;
	}
	h2_stream_maybe_finish(s);
	return 0;
}

/*
 * A data provider's read: up to len body bytes from one side's buffer
 * into nghttp2's frame, and at the end the END_STREAM flag, or the
 * trailers. Returns the bytes taken (the caller opens the other leg's
 * window by as many), or NGHTTP2_ERR_DEFERRED while the buffer is empty
 * and more is to come.
 */
static ssize_t
h2_take_body(nghttp2_session *session, int32_t id, uint8_t *buf, size_t len,
    uint32_t *flags, struct evbuffer *from, int end,
    const struct h2_fields *trl)
{
	int n = evbuffer_remove(from, buf, len);

	if (evbuffer_get_length(from) == 0 && end) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		if (trl->n > 0) {
			*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
			(void)nghttp2_submit_trailer(
			    session, id, trl->nv, trl->n);
		}
	} else if (n <= 0)
		return NGHTTP2_ERR_DEFERRED;
	return n > 0 ? n : 0;
}

/* The request body for the origin, from the stream's buffer. */
static ssize_t
h2_up_read_body(nghttp2_session *session, int32_t id, uint8_t *buf, size_t len,
    uint32_t *flags, nghttp2_data_source *src, void *arg)
{
	struct conn *c = arg;
	struct h2_stream *s = src->ptr;
	ssize_t n = h2_take_body(
	    session, id, buf, len, flags, s->req_buf, s->req_end, &s->req_trl);

	if (n > 0) {
		/* the client may send as much again */
		(void)nghttp2_session_consume_stream(
		    c->h2->down, s->down_id, (size_t)n);
		c->h2->dirty = 1;
	}
	return n;
}

/* ---- the origin's session: answers ---- */

static ssize_t h2_down_read_body(nghttp2_session *session, int32_t id,
    uint8_t *buf, size_t len, uint32_t *flags, nghttp2_data_source *src,
    void *arg);

/* The origin's answer head (or an interim 1xx) for a stream. */
static void
h2_response(struct conn *c, struct h2_stream *s, int end)
{
	const char *st = h2_fields_get(&s->resp, ":status");

	if (st != NULL && st[0] == '1') {
		/* 1xx: on to the client as it came, the answer follows */
		(void)nghttp2_submit_headers(c->h2->down, NGHTTP2_FLAG_NONE,
		    s->down_id, NULL, s->resp.nv, s->resp.n, NULL);
		h2_fields_clear(&s->resp);
		c->h2->dirty = 1;
		return;
	}
	s->resp_head = 1;
	s->resp_end = end;
	h2_stream_response(s, "2");
	h2_stream_ws_begin(s);
	if (h2_stream_send_response(s) == -1)
		(void)nghttp2_submit_rst_stream(c->h2->down, NGHTTP2_FLAG_NONE,
		    s->down_id, NGHTTP2_INTERNAL_ERROR);
}

/* A SETTINGS from the origin: what the client may use follows it. */
static void
h2_up_settings(struct conn *c, const nghttp2_settings *set)
{
	c->h2->up_settings = 1;
	for (size_t i = 0; i < set->niv; i++) {
		if (set->iv[i].settings_id !=
			NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL ||
		    set->iv[i].value != 1)
			continue;
		/* RFC 8441: the origin takes WebSockets over h2; so may the
		 * client (in our first SETTINGS if its session is not up) */
		nghttp2_settings_entry iv = {
		    NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1};
		if (c->h2->connect_proto)
			continue;
		c->h2->connect_proto = 1;
		if (c->h2->down == NULL)
			continue;
		(void)nghttp2_submit_settings(
		    c->h2->down, NGHTTP2_FLAG_NONE, &iv, 1);
		c->h2->dirty = 1;
	}
}

static int
h2_up_frame(nghttp2_session *session, const nghttp2_frame *frame, void *arg)
{
	struct conn *c = arg;
	struct h2_stream *s;
	int end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;

	if (frame->hd.type == NGHTTP2_SETTINGS &&
	    !(frame->hd.flags & NGHTTP2_FLAG_ACK)) {
		h2_up_settings(c, &frame->settings);
		return 0;
	}
	if (frame->hd.type == NGHTTP2_GOAWAY) {
		/* streams the origin took finish; new ones are refused
		 * (REFUSED_STREAM: the client retries them elsewhere), and
		 * the client gets its GOAWAY once they are done
		 * (h2_check_done): sooner, some clients drop the answers
		 * still on their way */
		c->h2->up_gone = 1;
		log_debug("c%lld h2 origin GOAWAY %s", (long long)c->id,
		    h2_error_name(frame->goaway.error_code));
		return 0;
	}
	if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
		return 0;
	s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	if (s == NULL)
		return 0;
	if (frame->hd.type == NGHTTP2_HEADERS && !s->resp_head) {
		h2_response(c, s, end);
		return 0;
	}
	if (end)
		s->resp_end = 1;
	h2_down_more(s);
	return 0;
}

static int
h2_up_data(nghttp2_session *session, uint8_t flags, int32_t id,
    const uint8_t *data, size_t len, void *arg)
{
	struct conn *c = arg;
	struct h2_stream *s = nghttp2_session_get_stream_user_data(session, id);

	(void)flags;
	(void)nghttp2_session_consume_connection(session, len);
	c->h2->dirty = 1;
	if (s == NULL || s->down_closed) {
		(void)nghttp2_session_consume_stream(session, id, len);
		return 0;
	}
	if (evbuffer_add(s->resp_buf, data, len) != 0)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	h2_stream_capture(s, 1, data, len);
	ws_feed(s->ws, c, 1, data, len);
	h2_down_more(s);
	return 0;
}

static int
h2_up_close(nghttp2_session *session, int32_t id, uint32_t code, void *arg)
{
	struct conn *c = arg;
	struct h2_stream *s = nghttp2_session_get_stream_user_data(session, id);
	char why[64];

	if (s == NULL)
		return 0;
	s->up_closed = 1;
	if ((code != NGHTTP2_NO_ERROR || !s->resp_end) && !s->down_closed) {
		if (s->end == NULL) {
			snprintf(why, sizeof(why), "%s %s",
			    c->h2->up_gone && code == NGHTTP2_REFUSED_STREAM
				? "goaway-origin"
				: "rst-origin",
			    h2_error_name(code));
			s->end = strdup(why);
		}
		(void)nghttp2_submit_rst_stream(c->h2->down, NGHTTP2_FLAG_NONE,
		    s->down_id,
		    code != NGHTTP2_NO_ERROR ? code : NGHTTP2_INTERNAL_ERROR);
		c->h2->dirty = 1;
	}
	h2_stream_maybe_finish(s);
	return 0;
}

/* The answer body for the client, from the stream's buffer. */
static ssize_t
h2_down_read_body(nghttp2_session *session, int32_t id, uint8_t *buf,
    size_t len, uint32_t *flags, nghttp2_data_source *src, void *arg)
{
	struct conn *c = arg;
	struct h2_stream *s = src->ptr;
	ssize_t n = h2_take_body(session, id, buf, len, flags, s->resp_buf,
	    s->resp_end, &s->resp_trl);

	if (n > 0 && s->up_id > 0 && !s->up_closed && c->h2->up != NULL) {
		/* the origin may send as much again */
		(void)nghttp2_session_consume_stream(
		    c->h2->up, s->up_id, (size_t)n);
		c->h2->dirty = 1;
	} else if (n > 0 && s->h1 != NULL)
		h2_h1_response_taken(s);
	return n;
}

int
h2_stream_send_response(struct h2_stream *s)
{
	nghttp2_data_provider prd = {{.ptr = s}, h2_down_read_body};
	int empty = s->resp_end && evbuffer_get_length(s->resp_buf) == 0 &&
	    s->resp_trl.n == 0;

	s->resp_sent = 1;
	s->c->h2->dirty = 1;
	return nghttp2_submit_response(s->c->h2->down, s->down_id, s->resp.nv,
		   s->resp.n, empty ? NULL : &prd) == 0
	    ? 0
	    : -1;
}

/* ---- set-up and teardown ---- */

/* Debug lines for the frames that end streams or sessions. */
static int
h2_frame_sent(nghttp2_session *session, const nghttp2_frame *frame, void *arg)
{
	struct conn *c = arg;
	const char *leg = session == c->h2->down ? "client" : "origin";

	if (frame->hd.type == NGHTTP2_GOAWAY)
		log_debug("c%lld h2 GOAWAY %s to the %s: %.*s",
		    (long long)c->id, h2_error_name(frame->goaway.error_code),
		    leg, (int)frame->goaway.opaque_data_len,
		    (const char *)frame->goaway.opaque_data);
	else if (frame->hd.type == NGHTTP2_RST_STREAM)
		log_debug("c%lld h2 RST_STREAM %d %s to the %s",
		    (long long)c->id, frame->hd.stream_id,
		    h2_error_name(frame->rst_stream.error_code), leg);
	return 0;
}

static nghttp2_session_callbacks *
h2_callbacks(int down)
{
	nghttp2_session_callbacks *cb;

	if (nghttp2_session_callbacks_new(&cb) != 0)
		return NULL;
	nghttp2_session_callbacks_set_send_callback(
	    cb, down ? h2_send_down : h2_send_up);
	nghttp2_session_callbacks_set_on_header_callback(cb, h2_on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(
	    cb, down ? h2_down_frame : h2_up_frame);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
	    cb, down ? h2_down_data : h2_up_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(
	    cb, down ? h2_down_close : h2_up_close);
	nghttp2_session_callbacks_set_on_frame_send_callback(cb, h2_frame_sent);
	if (down)
		nghttp2_session_callbacks_set_on_begin_headers_callback(
		    cb, h2_down_begin_headers);
	return cb;
}

/* One session: server (the client's leg) or client (the origin's), with
 * windows opened by hand (h2.h) and our SETTINGS queued. 0 or -1. */
static int
h2_session_new(struct conn *c, int down, nghttp2_session **out)
{
	nghttp2_session_callbacks *cb = h2_callbacks(down);
	nghttp2_option *opt = NULL;
	nghttp2_settings_entry iv[4] = {
	    {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, H2_MAX_STREAMS},
	    {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_STREAM_WINDOW},
	    /* a head as large as an HTTP/1 one may be, and no larger */
	    {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
		(uint32_t)c->w->cfg->max_header_bytes}};
	size_t n = 3;
	int rv = -1;

	if (cb == NULL || nghttp2_option_new(&opt) != 0)
		goto out;
	nghttp2_option_set_no_auto_window_update(opt, 1);
	if (!down) /* the origin is asked not to push */
		iv[n++] =
		    (nghttp2_settings_entry){NGHTTP2_SETTINGS_ENABLE_PUSH, 0};
	else if (c->h2->connect_proto) /* RFC 8441, as the origin said */
		iv[n++] = (nghttp2_settings_entry){
		    NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1};
	if ((down ? nghttp2_session_server_new2(out, cb, c, opt)
		  : nghttp2_session_client_new2(out, cb, c, opt)) != 0)
		goto out;
	if (nghttp2_submit_settings(*out, NGHTTP2_FLAG_NONE, iv, n) != 0 ||
	    nghttp2_session_set_local_window_size(
		*out, NGHTTP2_FLAG_NONE, 0, H2_CONN_WINDOW) != 0)
		goto out;
	rv = 0;
out:
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cb);
	return rv;
}

/* The origin leg: an h2 origin gets its own session on the connection
 * intercept kept; any other speaks HTTP/1.1 (h2_h1.c). 0 or -1. */
static int
h2_origin_leg(struct conn *c)
{
	struct h2 *h = c->h2;

	h->up_version = "1.1";
	if (c->up == NULL) {
		c->up = c->dial.up_idle;
		c->dial.up_idle = NULL;
	}
	if (c->tls.verify_error != NULL || c->up == NULL)
		return 0;
	if (strcmp(c->tls.alpn_server, "h2") != 0 &&
	    c->inner != CONN_INNER_HTTP) {
		/* HTTP/1.1: h2_h1.c takes it for its first leg */
		c->dial.up_idle = c->up;
		c->up = NULL;
		return 0;
	}
	h->up_version = "2";
	bufferevent_setcb(
	    c->up->bev, conn_up_readcb, conn_up_writecb, conn_up_eventcb, c);
	bufferevent_setwatermark(c->up->bev, EV_WRITE, H2_OUT_LIMIT / 2, 0);
	relay_enable(c->up->bev, EV_READ | EV_WRITE);
	return h2_session_new(c, 0, &h->up);
}

/* Feed the origin's session what its connection already holds. */
static int
h2_origin_said(struct conn *c)
{
	const char *err = NULL;

	if (c->h2->up == NULL || c->up == NULL)
		return 0;
	return h2_recv(c, c->h2->up, bufferevent_get_input(c->up->bev),
	    &c->tot.bytes_from_server, &err);
}

void
h2_start(struct conn *c)
{
	struct h2 *h = calloc(1, sizeof(*h));

	if (h == NULL) {
		conn_close(c, "error", "out of memory");
		return;
	}
	c->h2 = h;
	TAILQ_INIT(&h->streams);
	TAILQ_INIT(&h->h1_queue);
	/* the origin's leg first: its SETTINGS shape ours to the client, so
	 * the client's session starts once they are in (h2_up_read) */
	if (h2_origin_leg(c) == -1 || h2_origin_said(c) == -1 ||
	    ((h->up == NULL || h->up_settings) &&
		h2_session_new(c, 1, &h->down) == -1)) {
		conn_close(c, "error", "cannot set up HTTP/2");
		return;
	}
	bufferevent_setwatermark(c->cbev, EV_WRITE, H2_OUT_LIMIT / 2, 0);
	relay_enable(c->cbev, EV_READ | EV_WRITE);
	conn_enter(c, CONN_H2);
}

/* Every stream still open is recorded with why it ended here. */
void
h2_close(struct conn *c, const char *why)
{
	struct h2_stream *s;

	if (c->h2 == NULL)
		return;
	h2_h1_quiesce(c);
	while ((s = TAILQ_FIRST(&c->h2->streams)) != NULL) {
		h2_stream_fail(s, why);
		h2_stream_finish(s);
	}
}

void
h2_free(struct conn *c)
{
	struct h2 *h = c->h2;
	struct h2_stream *s;

	if (h == NULL)
		return;
	while ((s = TAILQ_FIRST(&h->streams)) != NULL)
		h2_stream_finish(s);
	h2_h1_free_all(c);
	nghttp2_session_del(h->down);
	nghttp2_session_del(h->up);
	free(h);
	c->h2 = NULL;
}
