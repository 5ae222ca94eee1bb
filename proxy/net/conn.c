/*
 * conn: the client-side state machine of the HTTP/1.1 forward proxy.
 *
 *   READ_HEAD -> (RESOLVE -> CONNECT | pooled upstream) -> EXCHANGE
 *             -> READ_HEAD (keep-alive) | TUNNEL (101, CONNECT) | DRAIN
 *             -> closed
 *
 * Bodies are never held whole: llhttp is fed the client's (or origin's)
 * input buffer in place, and the bytes it consumed as body are moved to the
 * peer's output buffer untouched (framing included), so chunked, sized and
 * close-delimited bodies all relay as they came. Only the heads are
 * rewritten. Each direction stops moving bytes while the peer's output holds
 * relay-buffer bytes, and the peer's write callback resumes it (as in
 * libevent's le-proxy); the read high-watermark bounds each input buffer.
 *
 * llhttp callbacks only collect spans and set flags; every decision is taken
 * after llhttp_execute() returns, so nothing is freed inside a callback.
 */
#include "proxy/net/conn.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <event2/util.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>
#include <unistd.h>

#include "conf/config.h"
#include "proxy/http/head.h"
#include "proxy/http/onboard.h"
#include "proxy/http/respond.h"
#include "proxy/http/url.h"
#include "proxy/log.h"
#include "proxy/net/resolve.h"
#include "proxy/net/server.h"
#include "proxy/net/upstream.h"
#include "proxy/net/worker.h"
#include "proxy/store/store.h"
#include "proxy/net/conn_int.h"
#include "proxy/net/intercept.h"
#include "proxy/net/learned.h"
#include "proxy/net/offline.h"
#include "proxy/net/socks.h"
#include "proxy/net/stream.h"

/* getsockopt name for netfilter's original destination, the same for IPv4
 * (SOL_IP) and IPv6 (SOL_IPV6); linux/netfilter_ipv4.h clashes with
 * netinet/in.h, so it is spelled here. */
#define CONN_SO_ORIGINAL_DST 80

/* libevent 2.1's largest single socket read (EVBUFFER_MAX_READ). */
#define CONN_LIBEVENT_READ 4096
/* Bytes a plain socket is read in at once (see conn_read_more). */
#define CONN_READ_SLICE 65536

/* How long a closing connection waits for the client's FIN. */
#define CONN_LINGER_US 2000000
/* What a closing connection reads and discards at most. */
#define CONN_LINGER_BYTES (1024 * 1024)
/* Quiet this long between requests: release what idle buffers hold. */
#define CONN_IDLE_TRIM_US 250000

static const char *const conn_state_names[] = {"read-head", "resolve",
    "connect", "exchange", "tunnel", "drain", "sniff", "tls-down", "socks",
    "offline", "closed"};

static void conn_feed_request(struct conn *c);
static void conn_feed_response(struct conn *c);
static void conn_up_eof(struct conn *c);
static void conn_up_failed(struct conn *c, const char *why);
static void conn_quiesce(struct conn *c);
static void conn_relay_unparsed(struct conn *c, const char *why);

static llhttp_settings_t conn_req_settings, conn_resp_settings;

/* llhttp needs a valid pointer even for a zero-length execute, which runs
 * the transitions that consume nothing (a bodyless message's end). */
static const char conn_empty[1];

static int
store_backlogged_safe(struct store *st)
{
	return st != NULL && store_backlogged(st);
}

/* Change state in one place, so every move is trace-logged. */
void
conn_enter(struct conn *c, enum conn_state st)
{
	if (c->state == CONN_CLOSED)
		return; /* closed further down the stack: stay closed */
	log_debug("c%lld state %s -> %s", (long long)c->id,
	    conn_state_names[c->state], conn_state_names[st]);
	c->state = st;
	c->t_state_us = c->t_active_us = now_us();
	conn_arm_timer(c);
}

char *
conn_strdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

static char *
conn_strndup(const char *s, size_t n)
{
	char *p = malloc(n + 1);

	if (p != NULL) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

static void
conn_version(char *buf, size_t len, const llhttp_t *p)
{
	snprintf(buf, len, "%u.%u", p->http_major, p->http_minor);
}

/* ---- llhttp callbacks: collect spans, set flags, nothing else ---- */

static int
conn_req_begin(llhttp_t *p)
{
	struct conn *c = p->data;

	c->in_head = 1;
	head_reset(&c->reqh);
	return 0;
}

static int
conn_req_url(llhttp_t *p, const char *at, size_t len)
{
	struct conn *c = p->data;

	if (head_append(&c->reqh, HEAD_PART_TARGET, at, len) == -1) {
		c->head_overflow = 1;
		return HPE_USER;
	}
	return 0;
}

static int
conn_req_field(llhttp_t *p, const char *at, size_t len)
{
	struct conn *c = p->data;

	if (head_append(&c->reqh, HEAD_PART_FIELD, at, len) == -1) {
		c->head_overflow = 1;
		return HPE_USER;
	}
	return 0;
}

static int
conn_req_value(llhttp_t *p, const char *at, size_t len)
{
	struct conn *c = p->data;

	if (head_append(&c->reqh, HEAD_PART_VALUE, at, len) == -1) {
		c->head_overflow = 1;
		return HPE_USER;
	}
	return 0;
}

static int
conn_req_headers_complete(llhttp_t *p)
{
	struct conn *c = p->data;

	c->in_head = 0;
	c->req_expect = (p->flags & F_CONTENT_LENGTH) ? p->content_length : 0;
	/* stop here: the head is rewritten before any body byte moves */
	return HPE_PAUSED;
}

/* Append a body span to a capture, up to the capture limit. */
static void
conn_capture(struct conn *c, struct store_body *b, size_t *room,
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
conn_capture_trim(struct store_body *b, size_t *room)
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

static int
conn_req_body(llhttp_t *p, const char *at, size_t len)
{
	struct conn *c = p->data;

	if (c->rec != NULL)
		conn_capture(c, &c->rec->u.req.req_body, &c->req_room,
		    c->req_expect, at, len);
	if (c->shortlink)
		stream_on_body(c, STREAM_UP, at, len);
	return 0;
}

/* A span of response body from elsewhere than the origin (server replay):
 * captured for the record like an origin's. */
void
conn_capture_resp(struct conn *c, const void *at, size_t len)
{
	if (c->rec != NULL)
		conn_capture(
		    c, &c->rec->u.req.resp_body, &c->resp_room, 0, at, len);
}

static int
conn_req_message_complete(llhttp_t *p)
{
	struct conn *c = p->data;

	c->req_done = 1;
	/* pipelined requests wait in the buffer until this exchange ends */
	return HPE_PAUSED;
}

static int
conn_resp_begin(llhttp_t *p)
{
	struct conn *c = p->data;

	head_reset(&c->resph);
	return 0;
}

static int
conn_resp_status(llhttp_t *p, const char *at, size_t len)
{
	struct conn *c = p->data;

	return head_append(&c->resph, HEAD_PART_TARGET, at, len) ? HPE_USER : 0;
}

static int
conn_resp_field(llhttp_t *p, const char *at, size_t len)
{
	struct conn *c = p->data;

	return head_append(&c->resph, HEAD_PART_FIELD, at, len) ? HPE_USER : 0;
}

static int
conn_resp_value(llhttp_t *p, const char *at, size_t len)
{
	struct conn *c = p->data;

	return head_append(&c->resph, HEAD_PART_VALUE, at, len) ? HPE_USER : 0;
}

static int
conn_resp_headers_complete(llhttp_t *p)
{
	struct conn *c = p->data;
	int st = p->status_code;

	c->resp_interim = st / 100 == 1 && st != 101;
	c->resp_expect = (p->flags & F_CONTENT_LENGTH) ? p->content_length : 0;
	/*
	 * llhttp reads a Content-Length body even after HEAD, 204 and 304;
	 * those never have one. Returning 1 skips the body, and the message
	 * completes at once (where conn_feed_response sees the head end).
	 */
	if (c->is_head || st == 204 || st == 304)
		return 1;
	return HPE_PAUSED;
}

static int
conn_resp_body(llhttp_t *p, const char *at, size_t len)
{
	struct conn *c = p->data;

	if (c->rec != NULL)
		conn_capture(c, &c->rec->u.req.resp_body, &c->resp_room,
		    c->resp_expect, at, len);
	if (c->shortlink)
		stream_on_body(c, STREAM_DOWN, at, len);
	return 0;
}

static int
conn_resp_message_complete(llhttp_t *p)
{
	struct conn *c = p->data;

	if (c->resp_interim) {
		/* a 1xx went to the client; the real response follows */
		c->resp_interim = 0;
		c->resp_head_sent = 0;
		return 0;
	}
	if (p->status_code == 101)
		return 0; /* llhttp returns HPE_PAUSED_UPGRADE next */
	c->resp_done = 1;
	return HPE_PAUSED;
}

/* Fill the two llhttp settings tables; once, through pthread_once, as every
 * worker thread's first accept gets here. */
static void
conn_settings_fill(void)
{
	llhttp_settings_init(&conn_req_settings);
	conn_req_settings.on_message_begin = conn_req_begin;
	conn_req_settings.on_url = conn_req_url;
	conn_req_settings.on_header_field = conn_req_field;
	conn_req_settings.on_header_value = conn_req_value;
	conn_req_settings.on_headers_complete = conn_req_headers_complete;
	conn_req_settings.on_body = conn_req_body;
	conn_req_settings.on_message_complete = conn_req_message_complete;
	llhttp_settings_init(&conn_resp_settings);
	conn_resp_settings.on_message_begin = conn_resp_begin;
	conn_resp_settings.on_status = conn_resp_status;
	conn_resp_settings.on_header_field = conn_resp_field;
	conn_resp_settings.on_header_value = conn_resp_value;
	conn_resp_settings.on_headers_complete = conn_resp_headers_complete;
	conn_resp_settings.on_body = conn_resp_body;
	conn_resp_settings.on_message_complete = conn_resp_message_complete;
}

static void
conn_settings_init(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	(void)pthread_once(&once, conn_settings_fill);
}

/* ---- timers: one per connection, a deadline per state ---- */

/* The absolute deadline (µs) of the current state, 0 for none. */
static int64_t
conn_deadline(const struct conn *c)
{
	const struct config *cfg = c->w->cfg;

	switch (c->state) {
	case CONN_READ_HEAD:
		if (c->in_head || c->head_bytes > 0)
			return c->t_state_us +
			    (int64_t)cfg->header_timeout_ms * 1000;
		if (!c->idle_trimmed &&
		    CONN_IDLE_TRIM_US < (int64_t)cfg->idle_timeout_ms * 1000)
			return c->t_active_us + CONN_IDLE_TRIM_US;
		return c->t_active_us + (int64_t)cfg->idle_timeout_ms * 1000;
	case CONN_RESOLVE:
		/* evdns has its own timeout; this is the backstop */
		return c->t_state_us + (int64_t)cfg->dns_timeout_ms * 3000 +
		    1000000;
	case CONN_CONNECT:
		return c->t_connect_start_us +
		    (int64_t)cfg->connect_timeout_ms * 1000;
	case CONN_EXCHANGE:
		if (!c->req_done)
			return c->t_active_us +
			    (int64_t)cfg->idle_timeout_ms * 1000;
		return c->t_active_us +
		    (int64_t)cfg->upstream_timeout_ms * 1000;
	case CONN_DRAIN:
		if (c->lingering)
			return c->t_active_us + CONN_LINGER_US;
		return c->t_active_us + (int64_t)cfg->idle_timeout_ms * 1000;
	case CONN_TUNNEL:
		/* one side has sent its FIN: the other has half-close-timeout
		 * of silence to finish (as HAProxy's client-fin/server-fin) */
		if (c->client_eof || c->up_eof)
			return c->t_active_us +
			    (int64_t)cfg->half_close_ms * 1000;
		return c->t_active_us + (int64_t)cfg->idle_timeout_ms * 1000;
	case CONN_SNIFF:
		/*
		 * Nothing yet: wait sniff-timeout from the start (a server
		 * speaks first). Bytes trickling in: sniff-timeout after the
		 * last one, within header-timeout overall.
		 */
		if (c->late_sniff)
			return c->t_active_us +
			    (int64_t)cfg->idle_timeout_ms * 1000;
		if (c->t_first_byte_us == 0 ||
		    evbuffer_get_length(bufferevent_get_input(c->cbev)) == 0)
			return c->t_state_us +
			    (int64_t)cfg->sniff_timeout_ms * 1000;
		{
			int64_t idle = c->t_active_us +
			    (int64_t)cfg->sniff_timeout_ms * 1000;
			int64_t cap = c->t_state_us +
			    (int64_t)cfg->header_timeout_ms * 1000;
			return idle < cap ? idle : cap;
		}
	case CONN_TLS_DOWN:
		return c->t_state_us + (int64_t)cfg->connect_timeout_ms * 1000;
	case CONN_SOCKS:
		return c->t_state_us + (int64_t)cfg->header_timeout_ms * 1000;
	case CONN_OFFLINE:
		return c->t_active_us + (int64_t)cfg->idle_timeout_ms * 1000;
	case CONN_CLOSED:
		break;
	}
	return 0;
}

void
conn_arm_timer(struct conn *c)
{
	int64_t dl, left;
	struct timeval tv;

	if (c->state == CONN_CLOSED)
		return;
	dl = conn_deadline(c);
	if (dl == 0) {
		event_del(c->timer);
		return;
	}
	left = dl - now_us();
	if (left < 1000)
		left = 1000;
	tv.tv_sec = left / 1000000;
	tv.tv_usec = left % 1000000;
	evtimer_add(c->timer, &tv);
}

/* ---- the exchange record ---- */

void
conn_rec_fail(struct conn *c, int status, const char *err)
{
	if (c->rec == NULL)
		return;
	if (status && c->rec->u.req.status == 0)
		c->rec->u.req.status = status;
	if (err && c->rec->u.req.error == NULL)
		c->rec->u.req.error = strdup(err);
}

/*
 * Finish the exchange record and hand it to the store. Returns 1 when the
 * store is past its limit (the caller pauses this client), else 0.
 */
int
conn_rec_submit(struct conn *c)
{
	struct store_rec *rec = c->rec;
	struct store_request *r;
	int64_t now = now_us();
	int backlog;

	if (rec == NULL)
		return 0;
	c->rec = NULL;
	r = &rec->u.req;
	r->total_us = now - r->t_start_us;
	if (c->up != NULL && c->up->ip[0]) {
		r->server_ip = strdup(c->up->ip);
		r->server_port = c->up->ip_port;
	}
	atomic_fetch_add_explicit(&c->w->exchanges, 1, memory_order_relaxed);
	if (c->w->store == NULL) {
		store_rec_free(rec);
		return 0;
	}
	conn_capture_trim(&r->req_body, &c->req_room);
	conn_capture_trim(&r->resp_body, &c->resp_room);
	/* the writer prints the line once the row has its id; the CONNECT
	 * that opens a tunnel is noise unless asked for */
	rec->print = !c->w->cfg->quiet &&
	    (c->w->cfg->verbose || r->method == NULL ||
		strcmp(r->method, "CONNECT") != 0);
	backlog = store_submit(c->w->store, rec);
	return backlog;
}

/* Start the record for a request whose head just completed. */
static int
conn_rec_start(struct conn *c, int head_complete)
{
	struct store_request *r;
	char ver[16];

	store_rec_free(c->rec);
	c->idle_trimmed = 0;
	c->req_room = c->resp_room = 0;
	c->req_expect = c->resp_expect = 0;
	c->rec = store_rec_new(STORE_REC_REQUEST);
	if (c->rec == NULL)
		return -1;
	r = &c->rec->u.req;
	r->conn_id = c->id;
	r->seq = ++c->nrequests;
	r->t_start_us = c->t_state_us;
	r->client_ip = strdup(c->client_ip);
	r->scheme = strdup("http");
	r->req_header_bytes = c->head_bytes;
	if (!head_complete) {
		/* a head llhttp rejected: keep what is known */
		size_t tlen;
		const char *t = head_target(&c->reqh, &tlen);
		if (tlen > 0)
			r->path = conn_strndup(t, tlen);
		return 0;
	}
	r->method = strdup(llhttp_method_name(c->reqp.method));
	conn_version(ver, sizeof(ver), &c->reqp);
	r->req_version = strdup(ver);
	r->req_headers = head_fields_text(&c->reqh);
	return 0;
}

/* ---- the end of a client connection ---- */

/*
 * The client has everything it will get: send FIN and keep reading (and
 * discarding) briefly, so that a client still sending — a rejected upload,
 * an oversized head — reads our answer instead of a reset.
 */
static void
conn_linger(struct conn *c)
{
	SSL *ssl;

	if (c->lingering)
		return;
	if (c->craw != NULL && !c->close_notify_sent &&
	    (ssl = bufferevent_openssl_get_ssl(c->cbev)) != NULL &&
	    SSL_is_init_finished(ssl)) {
		/* a TLS client is told the end is the end (close_notify),
		 * not left to guess from a bare FIN */
		c->close_notify_sent = 1;
		(void)SSL_shutdown(ssl);
		ERR_clear_error();
	}
	if (c->craw != NULL &&
	    evbuffer_get_length(bufferevent_get_output(c->craw)) > 0) {
		/*
		 * Over TLS the filter's output is empty once OpenSSL has
		 * taken it, but the records may still wait in the socket's
		 * buffer: a FIN now would cut them off. Look again shortly
		 * (bounded by the drain deadline).
		 */
		static const struct timeval again = {0, 5000};
		c->flush_wait = 1;
		evtimer_add(c->timer, &again);
		return;
	}
	c->lingering = 1;
	(void)shutdown(bufferevent_getfd(c->craw ? c->craw : c->cbev), SHUT_WR);
	bufferevent_enable(c->cbev, EV_READ);
	c->t_active_us = now_us();
	conn_arm_timer(c);
}

/* Finish with the client: flush what is queued, linger, then close. */
void
conn_drain(struct conn *c, const char *reason, const char *err)
{
	c->drain_reason = reason;
	free(c->drain_error);
	c->drain_error = conn_strdup(err);
	conn_enter(c, CONN_DRAIN);
	if (c->client_eof) {
		if (evbuffer_get_length(bufferevent_get_output(c->cbev)) == 0)
			conn_close(c, reason, err);
		return;
	}
	if (evbuffer_get_length(bufferevent_get_output(c->cbev)) == 0)
		conn_linger(c);
}

/* ---- local answers ---- */

/*
 * Record an answer peephole wrote itself (the n bytes at before in out)
 * as it records an origin's: head fields, content type and body.
 */
static void
conn_rec_own_answer(
    struct conn *c, struct evbuffer *out, size_t before, size_t n)
{
	struct store_request *r = &c->rec->u.req;
	struct evbuffer_ptr at, end;
	char buf[2048], *lf, *type;
	size_t head, got, off;
	struct evbuffer_iovec v[16];
	int nv;

	free(r->resp_version);
	r->resp_version = strdup("1.1");
	r->resp_header_bytes = n;
	if (evbuffer_ptr_set(out, &at, before, EVBUFFER_PTR_SET) == -1)
		return;
	end = evbuffer_search(out, "\r\n\r\n", 4, &at);
	if (end.pos < 0 || (size_t)end.pos + 4 > before + n)
		return;
	head = (size_t)end.pos + 4 - before;
	if (head < 4 || head >= sizeof(buf))
		return;
	/*
	 * Peeked, not copied out: evbuffer_copyout_from refuses a buffer
	 * whose front is frozen, as the client's output can be. The head is
	 * copied to parse it; the body is captured span by span.
	 */
	got = off = 0;
	nv = evbuffer_peek(out, (ev_ssize_t)n, &at, v, 16);
	for (int i = 0; i < nv && i < 16 && off < n; i++) {
		size_t take = v[i].iov_len < n - off ? v[i].iov_len : n - off;
		const char *p = v[i].iov_base;
		if (off < head) {
			size_t h = take < head - off ? take : head - off;
			memcpy(buf + off, p, h);
			got += h;
			if (h < take)
				conn_capture_resp(c, p + h, take - h);
		} else
			conn_capture_resp(c, p, take);
		off += take;
	}
	if (got != head)
		return;
	buf[head - 2] = '\0';
	r->resp_header_bytes = head;
	/* "HTTP/1.1 502 Bad Gateway": the reason after the second space */
	{
		const char *sp = memchr(buf, ' ', head);
		sp = sp != NULL ? strchr(sp + 1, ' ') : NULL;
		if (sp != NULL && r->resp_reason == NULL)
			r->resp_reason =
			    strndup(sp + 1, strcspn(sp + 1, "\r\n"));
	}
	/* the fields, after the status line, as logged for any answer */
	if ((lf = strchr(buf, '\n')) != NULL && r->resp_headers == NULL)
		r->resp_headers = strdup(lf + 1);
	if (r->resp_headers != NULL && r->content_type == NULL &&
	    (type = strstr(r->resp_headers, "Content-Type: ")) != NULL) {
		type += 14;
		r->content_type = strndup(type, strcspn(type, "\r"));
	}
}

/*
 * Answer the current request ourselves with an error, record it, and
 * close after the answer is flushed.
 */
void
conn_fail(struct conn *c, int status, const char *detail)
{
	struct evbuffer *out = bufferevent_get_output(c->cbev);
	int n;

	if (intercept_up_failed(c, detail))
		return;
	if (c->rec == NULL && conn_rec_start(c, 0) == -1) {
		conn_close(c, "error", "out of memory");
		return;
	}
	conn_rec_fail(c, status, detail);
	if (!c->resp_head_sent) {
		size_t before = evbuffer_get_length(out);
		n = respond_error(out, status, detail, 0, c->is_head);
		if (n > 0) {
			c->bytes_to_client += (uint64_t)n;
			conn_rec_own_answer(c, out, before, (size_t)n);
		}
	}
	log_info(
	    "c%lld %s %d %s", (long long)c->id, c->client_ip, status, detail);
	(void)conn_rec_submit(c);
	upstream_free(c->up);
	c->up = NULL;
	c->client_ka = 0;
	(void)out;
	conn_drain(c, "error", detail);
}

/*
 * A request to the proxy itself names no origin: record the host it asked
 * for (its Host field), else the address it reached us on, and our port,
 * so the page is logged as http://127.0.0.1:8080/ rather than http:///.
 */
static void
conn_self_name(struct conn *c, const char *local, int local_port)
{
	struct store_request *r = &c->rec->u.req;
	int i = head_find(&c->reqh, "host", 0);
	char *v = i != -1 ? head_value_dup(&c->reqh, i) : NULL;
	char *colon;

	if (r->host != NULL) {
		free(v);
		return;
	}
	r->port = local_port;
	if (v != NULL && v[0] != '\0' && v[0] != '[' &&
	    (colon = strrchr(v, ':')) != NULL && strchr(v, ':') == colon) {
		r->port = atoi(colon + 1);
		*colon = '\0';
	} else if (v != NULL && v[0] == '[' &&
	    (colon = strchr(v, ']')) != NULL) {
		if (colon[1] == ':')
			r->port = atoi(colon + 2);
		memmove(v, v + 1, (size_t)(colon - v - 1));
		v[colon - v - 1] = '\0';
	}
	if (v != NULL && v[0] != '\0')
		r->host = v;
	else {
		free(v);
		r->host = local != NULL && local[0] ? strdup(local) : NULL;
	}
	if (r->path == NULL)
		r->path = strdup("/");
}

/* The proxy's own status page, for requests addressed to peephole. */
static void
conn_answer_self(struct conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->cbev);
	struct server *srv = c->w->srv;
	char page[1024], pac_host[INET6_ADDRSTRLEN];
	uint64_t accepted = 0, exchanges = 0;
	int n, live = 0, status, local_port = 0;
	size_t before = evbuffer_get_length(out);
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);

	for (int i = 0; i < srv->nworkers; i++) {
		struct worker *o = srv->workers[i];

		accepted +=
		    atomic_load_explicit(&o->accepted, memory_order_relaxed);
		exchanges +=
		    atomic_load_explicit(&o->exchanges, memory_order_relaxed);
		live += atomic_load_explicit(&o->live, memory_order_relaxed);
	}
	n = snprintf(page, sizeof(page),
	    "<ul><li>uptime: %lld s</li><li>workers: %d</li>"
	    "<li>connections accepted: %llu (open: %d)</li>"
	    "<li>exchanges: %llu</li><li>records written: %llu (queued: "
	    "%zu)</li></ul>\n",
	    (long long)((now_us() - srv->t_start_us) / 1000000), srv->nworkers,
	    (unsigned long long)accepted, live, (unsigned long long)exchanges,
	    (unsigned long long)(c->w->store ? store_written(c->w->store) : 0),
	    c->w->store ? store_queued(c->w->store) : (size_t)0);
	if (n < 0)
		page[0] = '\0';
	/* the PAC names the address this client reached us on */
	pac_host[0] = '\0';
	if (getsockname(bufferevent_getfd(c->craw ? c->craw : c->cbev),
		(struct sockaddr *)&ss, &sslen) == 0) {
		const void *a = ss.ss_family == AF_INET6
		    ? (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
		    : (const void *)&((struct sockaddr_in *)&ss)->sin_addr;
		if (inet_ntop(ss.ss_family, a, pac_host, sizeof(pac_host)) ==
		    NULL)
			pac_host[0] = '\0';
		local_port = ss.ss_family == AF_INET6
		    ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
		    : ntohs(((struct sockaddr_in *)&ss)->sin_port);
	}
	/* a body sent to us is not read: close rather than parse it as the
	 * next request */
	if (c->reqp.content_length > 0 || (c->reqp.flags & F_CHUNKED))
		c->client_ka = 0;
	c->req_done = 1;
	c->resp_done = 1;
	status = srv->onboard == NULL
	    ? -1
	    : onboard_respond(srv->onboard, c->url.path ? c->url.path : "/",
		  page, pac_host[0] ? pac_host : NULL, c->client_ka, c->is_head,
		  out);
	if (status == -1) {
		conn_fail(c, 500, "cannot build the page");
		return;
	}
	c->rec->u.req.status = status;
	conn_self_name(c, pac_host, local_port);
	c->bytes_to_client += evbuffer_get_length(out) - before;
	conn_rec_own_answer(c, out, before, evbuffer_get_length(out) - before);
	conn_exchange_end(c);
}

/* ---- the request side ---- */

/* A fresh request parser and head: a new protocol starts on this client
 * connection (HTTP found inside a CONNECT tunnel, or over forged TLS). */
void
conn_http_reset(struct conn *c)
{
	llhttp_init(&c->reqp, HTTP_REQUEST, &conn_req_settings);
	c->reqp.data = c;
	head_reset(&c->reqh);
	head_reset(&c->resph);
	c->head_bytes = 0;
	c->in_head = 0;
	c->req_done = c->resp_done = c->resp_head_sent = 0;
	c->resp_interim = c->is_head = c->req_upgrade = 0;
	c->client_ka = 1;
}

/* 1 if the request names this proxy rather than an origin. */
static int
conn_is_self(struct conn *c)
{
	if (c->inner != CONN_INNER_NONE)
		return 0; /* inside a tunnel, origin-form is the norm */
	if (c->url.form == URL_FORM_ORIGIN || c->url.form == URL_FORM_ASTERISK)
		return 1;
	/* the magic name a device can browse to for the CA and PAC file */
	if (strcmp(c->url.host, "peephole.local") == 0)
		return 1;
	return server_is_self(c->w->srv, c->url.host, c->url.port);
}

/* The first m-byte needle in the n bytes at hay, or NULL (memmem is GNU). */
static const char *
conn_find(const char *hay, size_t n, const char *needle, size_t m)
{
	for (size_t i = 0; m > 0 && i + m <= n; i++)
		if (hay[i] == needle[0] && memcmp(hay + i, needle, m) == 0)
			return hay + i;
	return NULL;
}

/* 1 if the n bytes at s are name, ignoring case. */
static int
conn_name_is(const char *s, size_t n, const char *name)
{
	return strlen(name) == n && strncasecmp(s, name, n) == 0;
}

/*
 * The authority of an absolute-form target as sent ("host:port", userinfo
 * left out) and where the origin-form part begins. -1 if there is none.
 */
static int
conn_target_split(
    const char *t, size_t n, const char **auth, size_t *alen, const char **rest)
{
	const char *p = conn_find(t, n, "://", 3), *end = t + n, *a, *e;

	if (p == NULL)
		return -1;
	a = p + 3;
	for (e = a; e < end && *e != '/' && *e != '?' && *e != '#'; e++)
		if (*e == '@')
			a = e + 1;
	*auth = a;
	*alen = (size_t)(e - a);
	*rest = e;
	return 0;
}

struct conn_up_lines {
	const struct head *h;
	const char *auth; /* the target's authority, NUL-terminated */
	int host_seen;
};

/*
 * What the explicit proxy changes in a request head (RFC 9110 7.6.1,
 * RFC 9112 3.2.2): Proxy-Connection, Proxy-Authorization and the fields
 * Connection names go; Host is made to name the target's authority.
 * Everything else, Connection included, goes as the client sent it.
 */
static enum head_verdict
conn_up_line(struct head_line *l, void *arg)
{
	struct conn_up_lines *u = arg;

	if (conn_name_is(l->name, l->nlen, "host")) {
		u->host_seen = 1;
		if (l->vlen == strlen(u->auth) &&
		    strncasecmp(l->value, u->auth, l->vlen) == 0)
			return HEAD_KEEP;
		l->replace = u->auth;
		return HEAD_REPLACE;
	}
	if (conn_name_is(l->name, l->nlen, "proxy-connection") ||
	    conn_name_is(l->name, l->nlen, "proxy-authorization"))
		return HEAD_DROP;
	/* an Upgrade being asked for is relayed with its Connection */
	if (!conn_name_is(l->name, l->nlen, "upgrade") &&
	    head_connection_names(u->h, l->name, l->nlen))
		return HEAD_DROP;
	return HEAD_KEEP;
}

/*
 * Build the head sent upstream. Inside a tunnel (CONNECT, SOCKS,
 * transparent) it is the client's, byte for byte. Through the explicit
 * proxy only what RFC 9110 asks of a proxy changes: the request line
 * becomes origin-form (method and version as sent), and conn_up_line's
 * fields; a Via is added only when the via setting asks for one.
 */
static int
conn_build_up_head(struct conn *c)
{
	struct evbuffer *b = c->up_head;
	size_t len = evbuffer_get_length(c->raw_head), tlen, alen, llen;
	const char *raw = (const char *)evbuffer_pullup(c->raw_head, -1);
	const char *target = head_target(&c->reqh, &tlen), *auth, *rest, *tend;
	const char *lf, *sp;
	struct conn_up_lines u = {&c->reqh, NULL, 0};
	char authz[300], extra[600], *line = NULL;
	int rc = -1, n;

	evbuffer_drain(b, evbuffer_get_length(b));
	if (raw == NULL)
		return -1;
	if (c->inner != CONN_INNER_NONE)
		return evbuffer_add(b, raw, len);
	/* the start line as sent, with the target made origin-form */
	lf = memchr(raw, '\n', len);
	sp = lf ? memchr(raw, ' ', (size_t)(lf - raw)) : NULL;
	if (sp == NULL ||
	    conn_target_split(target, tlen, &auth, &alen, &rest) == -1 ||
	    alen >= sizeof(authz))
		return -1;
	memcpy(authz, auth, alen);
	authz[alen] = '\0';
	u.auth = authz;
	tend = memchr(rest, '#', (size_t)(target + tlen - rest));
	if (tend == NULL)
		tend = target + tlen;
	llen = (size_t)(lf - raw) + 1;
	line = malloc(llen + 2);
	if (line == NULL)
		return -1;
	/* method SP origin-form SP HTTP-version (what follows the target) */
	const char *after = conn_find(raw, llen, target, tlen);
	if (after == NULL)
		goto out;
	after += tlen;
	size_t vlen = (size_t)(lf - after);
	if (vlen > 0 && after[vlen - 1] == '\r')
		vlen--;
	n = snprintf(line, llen + 2, "%.*s%s%.*s%.*s", (int)(sp - raw + 1), raw,
	    rest[0] == '/' ? "" : "/", (int)(tend - rest), rest, (int)vlen,
	    after);
	if (n < 0 || (size_t)n > llen + 1)
		goto out;
	/* an HTTP/1.0 client may send no Host; the origin gets one */
	extra[0] = '\0';
	if (head_find(&c->reqh, "host", 0) == -1)
		snprintf(extra, sizeof(extra), "Host: %s\r\n", authz);
	if (c->w->cfg->via_header)
		snprintf(extra + strlen(extra), sizeof(extra) - strlen(extra),
		    "Via: %u.%u peephole\r\n", c->reqp.http_major,
		    c->reqp.http_minor);
	rc = head_copy_raw(b, raw, len, line, (size_t)n, conn_up_line, &u,
	    extra[0] ? extra : NULL);
out:
	free(line);
	return rc;
}

/*
 * Inside a tunnel the origin is the CONNECT target whatever the request
 * says; the record names the host from the Host header (the site), or the
 * SNI, or the target. 0, or -1 for a target that is neither a path nor an
 * absolute URL.
 */
static int
conn_inner_target(struct conn *c)
{
	int h = head_find(&c->reqh, "host", 0);

	if (c->url.form != URL_FORM_ORIGIN && c->url.form != URL_FORM_ABSOLUTE)
		return -1;
	snprintf(c->url.scheme, sizeof(c->url.scheme), "%s",
	    c->inner == CONN_INNER_HTTPS ? "https" : "http");
	snprintf(c->url.host, sizeof(c->url.host), "%s", c->tunnel_host);
	c->url.port = c->tunnel_port;
	if (c->rec != NULL && h != -1) {
		char *v = head_value_dup(&c->reqh, h);
		if (v != NULL) {
			/* "name:port" or "[v6]:port": keep the name */
			char *e =
			    v[0] == '[' ? strchr(v, ']') : strrchr(v, ':');
			if (v[0] == '[' && e != NULL) {
				*e = '\0';
				memmove(v, v + 1, strlen(v + 1) + 1);
			} else if (e != NULL)
				*e = '\0';
			for (char *q = v; *q; q++)
				*q = (char)tolower((unsigned char)*q);
			if (v[0] != '\0')
				c->rec->u.req.host = v;
			else
				free(v);
		}
	} else if (c->rec != NULL && c->sni[0])
		c->rec->u.req.host = strdup(c->sni);
	return 0;
}

/*
 * WeChat's mmTLS "shortlink": POST /mmtls/<8 hex digits> whose bodies are
 * mmTLS records (DESIGN.md). The bodies are relayed as usual and their
 * record headers recorded like a longlink stream's.
 */
static int
conn_is_shortlink(const struct conn *c)
{
	const char *p = c->url.path;

	if (c->reqp.method != HTTP_POST || p == NULL ||
	    strncmp(p, "/mmtls/", 7) != 0 || strlen(p) != 15)
		return 0;
	for (int i = 7; i < 15; i++)
		if (!isxdigit((unsigned char)p[i]))
			return 0;
	return 1;
}

/* The request head is complete: decide where it goes. */
static void
conn_request_head(struct conn *c)
{
	const char *why = NULL;
	size_t tlen;
	const char *target = head_target(&c->reqh, &tlen);
	struct store_request *r;

	if (conn_rec_start(c, 1) == -1) {
		conn_close(c, "error", "out of memory");
		return;
	}
	r = &c->rec->u.req;
	c->is_head = c->reqp.method == HTTP_HEAD;
	c->is_connect = c->reqp.method == HTTP_CONNECT;
	c->req_upgrade = c->reqp.upgrade && !c->is_connect;
	c->client_ka = llhttp_should_keep_alive(&c->reqp);
	url_clear(&c->url);
	if (url_parse(target, tlen, &c->url, &why) == -1) {
		r->path = conn_strndup(target, tlen);
		conn_fail(c, 400, why);
		return;
	}
	if (c->inner != CONN_INNER_NONE && conn_inner_target(c) == -1) {
		conn_fail(c, 400, "inside a tunnel, requests name a path");
		return;
	}
	if (r->host == NULL)
		r->host = conn_strdup(c->url.host[0] ? c->url.host : NULL);
	r->port = (int)c->url.port;
	r->path = conn_strdup(c->url.path);
	r->query = conn_strdup(c->url.query);
	if (c->inner == CONN_INNER_HTTPS)
		r->scheme = (free(r->scheme), strdup("https"));
	if (c->is_connect) {
		r->scheme = (free(r->scheme), strdup("connect"));
		c->protocol = "tunnel";
	}
	if (c->target_host == NULL && c->url.host[0]) {
		c->target_host = strdup(c->url.host);
		c->target_port = (int)c->url.port;
	}
	if (head_find(&c->reqh, "host", head_find(&c->reqh, "host", 0) + 1) !=
		-1 &&
	    head_find(&c->reqh, "host", 0) != -1) {
		/* RFC 9112 3.2: two Hosts make the target ambiguous */
		conn_fail(c, 400, "more than one Host header");
		return;
	}
	if (c->is_connect != (c->url.form == URL_FORM_AUTHORITY)) {
		conn_fail(c, 400,
		    "CONNECT takes host:port; other methods an "
		    "absolute http:// URL");
		return;
	}
	if (conn_is_self(c)) {
		conn_answer_self(c);
		return;
	}
	/* a capture being replayed answers before any origin is asked */
	if (c->w->srv->replay != NULL && offline_request(c))
		return;
	conn_request_forward(c);
}

/* The request goes to its origin (its body, if any, still unread). */
void
conn_request_forward(struct conn *c)
{
	if (c->verify_error != NULL) {
		/* the origin failed: nothing is forwarded */
		char msg[400];
		if (c->up_unreachable)
			snprintf(msg, sizeof(msg), "cannot reach %s:%u: %s",
			    c->tunnel_host, c->tunnel_port, c->verify_error);
		else
			snprintf(msg, sizeof(msg),
			    "the certificate of %s:%u is not trusted: %s",
			    c->tunnel_host, c->tunnel_port, c->verify_error);
		conn_fail(c, 502, msg);
		return;
	}
	if (c->inner == CONN_INNER_NONE &&
	    strcmp(c->url.scheme, "https") == 0) {
		conn_fail(c, 501, "https:// URLs are reached with CONNECT");
		return;
	}
	if (c->is_connect) {
		intercept_connect(c);
		return;
	}
	c->shortlink = conn_is_shortlink(c) && stream_shortlink_begin(c) == 0;
	if (c->shortlink && c->rec != NULL)
		c->rec->u.req.label = strdup("mmtls-shortlink");
	if (conn_build_up_head(c) == -1) {
		conn_fail(c, 500, "cannot build the upstream request");
		return;
	}
	conn_upstream_go(c);
}

/*
 * Feed the request parser from the client's input while a head is being
 * read. Bytes are drained as llhttp consumes them; the head's spans have
 * been copied into c->reqh by then.
 */
void
conn_parse_request(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->cbev);
	size_t limit = c->w->cfg->max_header_bytes;

	while (c->state == CONN_READ_HEAD && evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		if (c->head_bytes == 0 && !c->in_head) {
			c->t_state_us = now_us();
			evbuffer_drain(
			    c->raw_head, evbuffer_get_length(c->raw_head));
		}
		enum llhttp_errno err =
		    llhttp_execute(&c->reqp, v.iov_base, v.iov_len);
		size_t used = err == HPE_OK
		    ? v.iov_len
		    : (size_t)(llhttp_get_error_pos(&c->reqp) -
			  (const char *)v.iov_base);
		c->head_bytes += used;
		c->bytes_from_client += used;
		/* kept as received: it is what goes upstream */
		evbuffer_remove_buffer(in, c->raw_head, used);
		if (c->head_overflow || c->head_bytes > limit) {
			c->is_head = 0;
			conn_fail(c, 431, "request head over max-header-size");
			return;
		}
		if (err == HPE_PAUSED) {
			llhttp_resume(&c->reqp);
			conn_request_head(c);
			return;
		}
		if (err != HPE_OK) {
			char why[160];
			snprintf(why, sizeof(why), "malformed request: %s",
			    llhttp_get_error_reason(&c->reqp));
			c->is_head = 0;
			conn_fail(c, 400, why);
			return;
		}
	}
	conn_arm_timer(c);
}

/* Move request body bytes from the client to the upstream. */
static void
conn_feed_request(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->cbev);
	struct evbuffer *out;
	size_t limit = c->w->cfg->relay_buffer_bytes;

	if (c->up == NULL || c->state != CONN_EXCHANGE)
		return;
	out = bufferevent_get_output(c->up->bev);
	while (!c->req_done) {
		if (evbuffer_get_length(out) >= limit) {
			/* resume from the upstream's write callback */
			bufferevent_setwatermark(
			    c->up->bev, EV_WRITE, limit / 2, 0);
			return;
		}
		struct evbuffer_iovec v = {(void *)conn_empty, 0};
		if (evbuffer_get_length(in) > 0 &&
		    evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		enum llhttp_errno err =
		    llhttp_execute(&c->reqp, v.iov_base, v.iov_len);
		size_t used = err == HPE_OK
		    ? v.iov_len
		    : (size_t)(llhttp_get_error_pos(&c->reqp) -
			  (const char *)v.iov_base);
		if (used > 0) {
			evbuffer_remove_buffer(in, out, used);
			c->bytes_to_server += used;
			c->bytes_from_client += used;
		}
		if (err == HPE_PAUSED) {
			llhttp_resume(&c->reqp);
			break;
		}
		if (err == HPE_PAUSED_UPGRADE) {
			/* the rest belongs to the upgraded protocol */
			c->req_done = 1;
			break;
		}
		if (err != HPE_OK) {
			char why[160];
			snprintf(why, sizeof(why), "malformed request body: %s",
			    llhttp_get_error_reason(&c->reqp));
			if (c->inner != CONN_INNER_NONE)
				conn_relay_unparsed(c, why);
			else if (c->resp_head_sent) {
				conn_rec_fail(c, 0, why);
				(void)conn_rec_submit(c);
				conn_close(c, "error", why);
			} else
				conn_fail(c, 400, why);
			return;
		}
		if (v.iov_len == 0)
			break;
	}
	bufferevent_setwatermark(c->up->bev, EV_WRITE, 0, 0);
	if (!c->req_done && c->client_eof && evbuffer_get_length(in) == 0) {
		conn_rec_fail(c, 0, "client closed mid-request");
		(void)conn_rec_submit(c);
		conn_close(c, "client-eof", "client closed mid-request");
		return;
	}
	if (c->req_done && c->resp_done)
		conn_exchange_end(c);
	else
		conn_arm_timer(c);
}

/* ---- the response side ---- */

struct conn_down_lines {
	const struct head *h;
	int upgrade; /* a 101 being relayed keeps its Upgrade */
};

/* What the explicit proxy leaves out of an answer head: the origin's
 * connection management, which is for its hop only. */
static enum head_verdict
conn_down_line(struct head_line *l, void *arg)
{
	struct conn_down_lines *d = arg;

	if (conn_name_is(l->name, l->nlen, "connection") ||
	    conn_name_is(l->name, l->nlen, "keep-alive") ||
	    conn_name_is(l->name, l->nlen, "proxy-connection"))
		return HEAD_DROP;
	if (d->upgrade && conn_name_is(l->name, l->nlen, "upgrade"))
		return HEAD_KEEP;
	return head_connection_names(d->h, l->name, l->nlen) ? HEAD_DROP
							     : HEAD_KEEP;
}

/*
 * Send the answer head (c->raw_resp, as the origin sent it) to the client.
 * Inside a tunnel it goes byte for byte, and whether the client connection
 * stays open follows what the two ends said. Through the explicit proxy the
 * status line and the end-to-end fields go byte for byte, and the proxy's
 * own Connection field says what happens to the client connection.
 */
static int
conn_emit_response_head(struct conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->cbev);
	struct store_request *r = &c->rec->u.req;
	size_t before = evbuffer_get_length(out);
	size_t len = evbuffer_get_length(c->raw_resp);
	const char *raw = (const char *)evbuffer_pullup(c->raw_resp, -1);
	int st = c->respp.status_code;
	int upgrade = st == 101 && c->req_upgrade;
	struct conn_down_lines d = {&c->resph, upgrade};
	const char *conn_hdr = NULL;
	char ver[16];
	int rc;

	if (raw == NULL)
		return -1;
	if (!c->resp_interim && !upgrade) {
		if (c->inner != CONN_INNER_NONE) {
			/* end to end: the client hears the origin's say */
			if (!llhttp_should_keep_alive(&c->respp) ||
			    c->w->shutting_down)
				c->client_ka = 0;
		} else {
			if (!c->req_done ||
			    llhttp_message_needs_eof(&c->respp) ||
			    c->w->shutting_down || c->req_upgrade)
				c->client_ka = 0;
			if (!c->client_ka)
				conn_hdr = "Connection: close\r\n";
			else if (c->reqp.http_major == 1 &&
			    c->reqp.http_minor == 0)
				conn_hdr = "Connection: keep-alive\r\n";
		}
	} else if (upgrade && c->inner == CONN_INNER_NONE)
		conn_hdr = "Connection: Upgrade\r\n";
	if (c->inner != CONN_INNER_NONE)
		rc = evbuffer_add(out, raw, len);
	else
		rc = head_copy_raw(
		    out, raw, len, NULL, 0, conn_down_line, &d, conn_hdr);
	evbuffer_drain(c->raw_resp, len);
	if (rc == -1)
		return -1;
	c->bytes_to_client += evbuffer_get_length(out) - before;
	if (c->resp_interim)
		return 0; /* a 1xx went on as is; the record keeps the final */
	r->status = st;
	conn_version(ver, sizeof(ver), &c->respp);
	free(r->resp_version);
	r->resp_version = strdup(ver);
	{
		size_t rlen;
		const char *reason = head_target(&c->resph, &rlen);
		free(r->resp_reason);
		r->resp_reason =
		    reason != NULL ? conn_strndup(reason, rlen) : NULL;
	}
	free(r->resp_headers);
	r->resp_headers = head_fields_text(&c->resph);
	int ct = head_find(&c->resph, "content-type", 0);
	if (ct != -1 && r->content_type == NULL)
		r->content_type = head_value_dup(&c->resph, ct);
	return 0;
}

/*
 * Half-close in a tunnel: once a side that sent its FIN has had all its
 * bytes delivered, pass the FIN on (shutdown for writing) and go on
 * relaying the other way; when both ways are done, close. A stream relay
 * must not cut off the answer to a request the client ended with FIN.
 */
void
conn_tunnel_check(struct conn *c)
{
	if (c->state != CONN_TUNNEL || c->up == NULL)
		return;
	if (c->client_eof && !c->fin_to_server &&
	    evbuffer_get_length(bufferevent_get_output(c->up->bev)) == 0) {
		(void)shutdown(bufferevent_getfd(c->up->bev), SHUT_WR);
		c->fin_to_server = 1;
	}
	if (c->up_eof && !c->fin_to_client &&
	    evbuffer_get_length(bufferevent_get_output(c->cbev)) == 0) {
		(void)shutdown(
		    bufferevent_getfd(c->craw ? c->craw : c->cbev), SHUT_WR);
		c->fin_to_client = 1;
	}
	if (c->fin_to_server && c->fin_to_client)
		conn_close(c, "done", NULL);
}

/* Start relaying bytes both ways, untouched: after a 101 or CONNECT. */
void
conn_start_tunnel(struct conn *c)
{
	struct evbuffer *cin = bufferevent_get_input(c->cbev);
	struct evbuffer *uin = bufferevent_get_input(c->up->bev);

	if (c->rec != NULL)
		(void)conn_rec_submit(c);
	if (strcmp(c->protocol, "http") == 0)
		c->protocol = "http-upgrade";
	conn_enter(c, CONN_TUNNEL);
	if (stream_start(c, strcmp(c->protocol, "mmtls") == 0) == 0) {
		stream_upstream_connected(c);
		stream_on_read(c, STREAM_UP, cin);
		stream_on_read(c, STREAM_DOWN, uin);
	}
	/* whatever already arrived belongs to the tunnel */
	c->bytes_from_client += evbuffer_get_length(cin);
	c->bytes_to_server += evbuffer_get_length(cin);
	c->bytes_from_server += evbuffer_get_length(uin);
	c->bytes_to_client += evbuffer_get_length(uin);
	evbuffer_add_buffer(bufferevent_get_output(c->up->bev), cin);
	evbuffer_add_buffer(bufferevent_get_output(c->cbev), uin);
	bufferevent_enable(
	    c->cbev, c->client_eof ? EV_WRITE : EV_READ | EV_WRITE);
	bufferevent_enable(c->up->bev, EV_READ | EV_WRITE);
	/* a client that half-closed while we connected: its FIN follows */
	if (c->client_eof)
		conn_tunnel_check(c);
}

/*
 * Inside a tunnel the bytes are the app's, and llhttp refusing some of them
 * (a chunk-extension form it does not know, say) is no reason to break the
 * app: the exchange is recorded with why, what was read of an answer head
 * goes on to the client, and the rest of the connection is relayed unread,
 * both ways. Only with an origin connection (CONN_EXCHANGE).
 */
static void
conn_relay_unparsed(struct conn *c, const char *why)
{
	struct evbuffer *out = bufferevent_get_output(c->cbev);

	conn_rec_fail(c, 0, why);
	if (!c->resp_head_sent) {
		c->bytes_to_client += evbuffer_get_length(c->raw_resp);
		evbuffer_add_buffer(out, c->raw_resp);
	}
	conn_start_tunnel(c);
	c->protocol = "http"; /* not an upgrade: still what it was */
}

/* Move bytes from one side to the other in a tunnel, with back-pressure. */
static void
conn_tunnel_move(struct conn *c, struct bufferevent *from,
    struct bufferevent *to, uint64_t *counter_in, uint64_t *counter_out)
{
	struct evbuffer *in = bufferevent_get_input(from);
	struct evbuffer *out = bufferevent_get_output(to);
	size_t limit = c->w->cfg->relay_buffer_bytes;

	c->t_active_us = now_us();
	*counter_in += evbuffer_get_length(in);
	*counter_out += evbuffer_get_length(in);
	stream_on_read(c, from == c->cbev ? STREAM_UP : STREAM_DOWN, in);
	evbuffer_add_buffer(out, in);
	if (evbuffer_get_length(out) >= limit) {
		bufferevent_disable(from, EV_READ);
		bufferevent_setwatermark(to, EV_WRITE, limit / 2, 0);
	}
}

static void
conn_feed_response(struct conn *c)
{
	struct evbuffer *in, *out = bufferevent_get_output(c->cbev);
	size_t limit = c->w->cfg->relay_buffer_bytes;

	if (c->up == NULL || c->state != CONN_EXCHANGE)
		return;
	in = bufferevent_get_input(c->up->bev);
	while (!c->resp_done) {
		if (evbuffer_get_length(out) >= limit) {
			bufferevent_setwatermark(
			    c->cbev, EV_WRITE, limit / 2, 0);
			return;
		}
		struct evbuffer_iovec v = {(void *)conn_empty, 0};
		if (evbuffer_get_length(in) > 0) {
			if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
				break;
		} else if (!c->resp_head_sent)
			break; /* nothing to parse before the head starts */
		if (v.iov_len > 0 && c->rec != NULL &&
		    c->rec->u.req.ttfb_us < 0)
			c->rec->u.req.ttfb_us = now_us() - c->t_sent_us;
		int in_head = !c->resp_head_sent;
		enum llhttp_errno err =
		    llhttp_execute(&c->respp, v.iov_base, v.iov_len);
		size_t used = err == HPE_OK
		    ? v.iov_len
		    : (size_t)(llhttp_get_error_pos(&c->respp) -
			  (const char *)v.iov_base);
		c->bytes_from_server += used;
		if (in_head) {
			/* the head goes on once it is whole and decided */
			evbuffer_remove_buffer(in, c->raw_resp, used);
			if (c->rec)
				c->rec->u.req.resp_header_bytes += used;
			if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE ||
			    c->resp_done) {
				int interim = c->resp_interim;
				if (conn_emit_response_head(c) == -1) {
					conn_close(c, "error", "out of memory");
					return;
				}
				c->resp_head_sent = !interim;
			}
		} else if (used > 0) {
			c->bytes_to_client += used;
			evbuffer_remove_buffer(in, out, used);
		}
		if (err == HPE_PAUSED) {
			llhttp_resume(&c->respp);
			continue;
		}
		if (err == HPE_PAUSED_UPGRADE) {
			if (c->respp.status_code == 101 && c->req_upgrade) {
				conn_start_tunnel(c);
				return;
			}
			/* 101 we did not ask for: end here, reuse nothing */
			c->resp_done = 1;
			c->client_ka = 0;
			c->req_upgrade = 1;
			break;
		}
		if (err != HPE_OK) {
			char why[160];
			snprintf(why, sizeof(why),
			    "bad response from origin: %s",
			    llhttp_get_error_reason(&c->respp));
			if (c->inner != CONN_INNER_NONE)
				conn_relay_unparsed(c, why);
			else if (!c->resp_head_sent) {
				conn_fail(c, 502, why);
			} else {
				conn_rec_fail(c, 0, why);
				(void)conn_rec_submit(c);
				conn_close(c, "error", why);
			}
			return;
		}
		if (v.iov_len == 0)
			break;
	}
	bufferevent_setwatermark(c->cbev, EV_WRITE, 0, 0);
	if (!c->resp_done && c->up_eof && evbuffer_get_length(in) == 0) {
		conn_up_eof(c);
		return;
	}
	if (c->req_done && c->resp_done)
		conn_exchange_end(c);
	else
		conn_arm_timer(c);
}

/* Both messages are complete: record, then keep or close each side. */
void
conn_exchange_end(struct conn *c)
{
	int backlog, up_ok, tunnel = c->inner != CONN_INNER_NONE;

	up_ok = c->up != NULL && llhttp_should_keep_alive(&c->respp) &&
	    !c->req_upgrade;
	/* inside a tunnel the two connections live and end together */
	if (tunnel && !up_ok)
		c->client_ka = 0;
	backlog = conn_rec_submit(c);
	if (c->up != NULL) {
		c->up->uses++;
		if (up_ok && c->client_ka && !c->client_eof &&
		    !c->w->shutting_down)
			conn_keep_upstream(c);
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
	c->req_done = c->resp_done = c->resp_head_sent = 0;
	c->resp_interim = c->is_head = c->req_upgrade = 0;
	c->head_bytes = 0;
	c->retried = 0;
	head_reset(&c->reqh);
	head_reset(&c->resph);
	conn_enter(c, CONN_READ_HEAD);
	if (backlog || store_backlogged_safe(c->w->store)) {
		/* the store is behind: stop reading until it drains */
		bufferevent_disable(c->cbev, EV_READ);
		if (!c->waiting_store) {
			c->waiting_store = 1;
			TAILQ_INSERT_TAIL(&c->w->store_wait, c, wait_link);
		}
		return;
	}
	bufferevent_enable(c->cbev, EV_READ);
	conn_parse_request(c);
}

/* ---- upstream connection ---- */

static void conn_up_readcb(struct bufferevent *bev, void *arg);
static void conn_up_writecb(struct bufferevent *bev, void *arg);
static void conn_up_eventcb(struct bufferevent *bev, short what, void *arg);

static void
conn_set_nodelay(struct bufferevent *bev)
{
	int one = 1;
	evutil_socket_t fd = bufferevent_getfd(bev);

	if (fd >= 0)
		(void)setsockopt(
		    fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* The upstream is connected (fresh or pooled): send the head, relay. */
static void
conn_upstream_ready(struct conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->up->bev);
	struct evbuffer *cout = bufferevent_get_output(c->cbev);

	snprintf(c->server_ip, sizeof(c->server_ip), "%s", c->up->ip);
	c->server_port = c->up->ip_port;
	c->up_eof = 0;
	bufferevent_setcb(
	    c->up->bev, conn_up_readcb, conn_up_writecb, conn_up_eventcb, c);
	bufferevent_setwatermark(
	    c->up->bev, EV_READ, 0, c->w->cfg->relay_buffer_bytes);
	/* write what is queued in one writev, not 16 KiB at a time */
	(void)bufferevent_set_max_single_write(
	    c->up->bev, c->w->cfg->relay_buffer_bytes);
	bufferevent_enable(c->up->bev, EV_READ | EV_WRITE);
	bufferevent_enable(c->cbev, EV_READ);
	c->t_sent_us = now_us();
	if (c->is_connect) {
		/* the 200 went out at CONNECT time (intercept_connect) */
		(void)cout;
		if (c->late_sniff) {
			/* still undecided: whoever speaks first decides */
			conn_enter(c, CONN_SNIFF);
			if (evbuffer_get_length(bufferevent_get_input(c->cbev)))
				intercept_sniff(c);
			return;
		}
		conn_start_tunnel(c);
		return;
	}
	c->bytes_to_server += evbuffer_get_length(c->up_head);
	evbuffer_add_buffer(out, c->up_head);
	llhttp_init(&c->respp, HTTP_RESPONSE, &conn_resp_settings);
	c->respp.data = c;
	evbuffer_drain(c->raw_resp, evbuffer_get_length(c->raw_resp));
	conn_enter(c, CONN_EXCHANGE);
	conn_feed_request(c);
	if (c->state == CONN_EXCHANGE)
		conn_feed_response(c);
}

/* Connect to the next address of the resolved list, or fail. */
static void
conn_connect_next(struct conn *c, const char *last_err)
{
	const char *host = c->url.host;

	while (c->addr_idx < c->addrs.naddrs) {
		int i = c->addr_idx++;
		const struct sockaddr *sa =
		    (const struct sockaddr *)&c->addrs.addrs[i];
		upstream_free(c->up);
		c->up = intercept_upstream_new(c, host, c->url.port);
		if (c->up == NULL)
			break;
		upstream_set_peer(c->up, sa);
		bufferevent_setcb(c->up->bev, NULL, NULL, conn_up_eventcb, c);
		c->t_connect_start_us = now_us();
		if (c->state != CONN_CONNECT)
			conn_enter(c, CONN_CONNECT);
		else
			conn_arm_timer(c);
		if (bufferevent_socket_connect(
			c->up->bev, sa, (int)c->addrs.addrlens[i]) == 0)
			return;
		last_err = evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR());
	}
	upstream_free(c->up);
	c->up = NULL;
	char why[300];
	snprintf(why, sizeof(why), "cannot connect to %s:%u: %s", host,
	    c->url.port, last_err ? last_err : "no address");
	conn_fail(c, 502, why);
}

/*
 * This client was told host -> each address (by the proxy's own lookup,
 * cached or not): the evidence that names its later connections to a bare
 * address (stream_names). The domain_ips fact itself is resolve.c's.
 */
static void
conn_note_sightings(struct conn *c, const struct resolve_result *res)
{
	char ip[INET6_ADDRSTRLEN];
	struct store_rec *rec;
	int64_t t = now_us();

	if (c->w->store == NULL || !c->w->cfg->record_flows)
		return;
	for (int i = 0; i < res->naddrs; i++) {
		if (resolve_addr_text(&res->addrs[i], ip, sizeof(ip)) == -1 ||
		    (rec = store_rec_new(STORE_REC_DOMAIN_IP)) == NULL)
			continue;
		rec->u.dip.domain = strdup(c->url.host);
		rec->u.dip.ip = strdup(ip);
		rec->u.dip.source = strdup("proxy-dns");
		rec->u.dip.client_ip = strdup(c->client_ip);
		rec->u.dip.t_us = t;
		rec->u.dip.sighting_only = 1;
		/* small; the exchange's own record carries the back-pressure */
		(void)store_submit(c->w->store, rec);
	}
}

static void
conn_resolved(const struct resolve_result *res, void *arg)
{
	struct conn *c = arg;
	char why[300];

	c->dns = NULL;
	c->dns_elapsed_us = res->from_cache ? 0 : res->elapsed_us;
	if (c->rec != NULL)
		c->rec->u.req.dns_us = c->dns_elapsed_us;
	if (res->error != 0 || res->naddrs == 0) {
		snprintf(why, sizeof(why), "cannot resolve %s: %s", c->url.host,
		    evutil_gai_strerror(res->error));
		conn_fail(c, 502, why);
		return;
	}
	if (c->inner == CONN_INNER_NONE && !c->is_connect) {
		for (int i = 0; i < res->naddrs; i++)
			if (server_is_self_addr(c->w->srv,
				(const struct sockaddr *)&res->addrs[i])) {
				/* the name is ours: answer, do not loop */
				conn_answer_self(c);
				return;
			}
	}
	conn_note_sightings(c, res);
	c->addrs = *res;
	c->addr_idx = 0;
	conn_connect_next(c, NULL);
}

/*
 * Anything from an idle kept origin connection ends it. Inside a tunnel
 * that connection is the client's own: what the origin sent goes on to the
 * client, and its close closes the client connection too.
 */
static void
conn_up_idle_readcb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	if (c->inner == CONN_INNER_NONE) {
		upstream_free(c->up_idle);
		c->up_idle = NULL;
		return;
	}
	c->bytes_from_server += evbuffer_get_length(in);
	c->bytes_to_client += evbuffer_get_length(in);
	evbuffer_add_buffer(bufferevent_get_output(c->cbev), in);
}

static void
conn_up_idle_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	(void)what;
	if (c->inner == CONN_INNER_NONE) {
		conn_up_idle_readcb(bev, arg);
		return;
	}
	upstream_free(c->up_idle);
	c->up_idle = NULL;
	conn_drain(c, "server-eof", NULL);
}

/* Keep c->up for this client's next request (see up_idle). */
void
conn_keep_upstream(struct conn *c)
{
	if (c->up_idle != NULL)
		upstream_pool_put(c->up_idle);
	c->up_idle = c->up;
	c->up = NULL;
	bufferevent_setcb(c->up_idle->bev, conn_up_idle_readcb, NULL,
	    conn_up_idle_eventcb, c);
	bufferevent_setwatermark(c->up_idle->bev, EV_WRITE, 0, 0);
	bufferevent_enable(c->up_idle->bev, EV_READ);
}

/* Get an upstream for the current request: kept, pooled, or resolve +
 * connect. */
void
conn_upstream_go(struct conn *c)
{
	if (c->up_idle != NULL && c->up_idle->port == c->url.port &&
	    c->up_idle->tls == (c->inner == CONN_INNER_HTTPS) &&
	    strcmp(c->up_idle->host, c->url.host) == 0) {
		c->up = c->up_idle;
		c->up_idle = NULL;
	} else if (c->inner != CONN_INNER_NONE) {
		/* a tunnel's first request: its own origin connection, never
		 * one another client used */
		upstream_free(c->up_idle);
		c->up_idle = NULL;
	} else {
		if (c->up_idle != NULL)
			upstream_pool_put(c->up_idle);
		c->up_idle = NULL;
		c->up = upstream_pool_get(c->w, c->url.host, c->url.port,
		    c->inner == CONN_INNER_HTTPS);
	}
	if (c->up != NULL) {
		if (c->rec != NULL && c->up->uses == 0) {
			/* opened for this client before its first request (an
			 * intercepted tunnel's origin leg): its opening times
			 * are this exchange's */
			c->rec->u.req.dns_us = c->up->dns_us;
			c->rec->u.req.connect_us = c->up->connect_us;
			c->rec->u.req.tls_us = c->up->tls_us;
		} else if (c->rec != NULL) {
			c->rec->u.req.upstream_reused = 1;
			c->rec->u.req.dns_us = 0;
			c->rec->u.req.connect_us = 0;
			if (c->up->tls)
				c->rec->u.req.tls_us = 0;
		}
		/* a pooled TLS origin: its certificate still decides what the
		 * client is shown (and whether it is trusted) */
		if (c->up->tls && intercept_up_ready(c) == -1)
			return;
		conn_upstream_ready(c);
		return;
	}
	conn_enter(c, CONN_RESOLVE);
	c->dns =
	    resolve_start(c->w, c->url.host, c->url.port, conn_resolved, c);
	if (c->dns == NULL)
		conn_fail(c, 502, "out of memory resolving");
}

/*
 * A pooled upstream closed before answering: the origin dropped an idle
 * connection as we reused it. Safe to send again on a fresh one when no
 * byte of a request body went out and nothing came back.
 */
static int
conn_retry_fresh(struct conn *c)
{
	if (c->inner != CONN_INNER_NONE)
		return 0; /* a tunnel's origin connection is not replaced */
	if (c->retried || c->rec == NULL || !c->rec->u.req.upstream_reused ||
	    c->rec->u.req.req_body.total > 0 || c->resp_head_sent ||
	    c->rec->u.req.resp_header_bytes > 0 || !c->req_done)
		return 0;
	c->retried = 1;
	upstream_free(c->up);
	c->up = NULL;
	c->rec->u.req.upstream_reused = 0;
	if (conn_build_up_head(c) == -1)
		return 0;
	conn_enter(c, CONN_RESOLVE);
	c->dns =
	    resolve_start(c->w, c->url.host, c->url.port, conn_resolved, c);
	if (c->dns == NULL)
		conn_fail(c, 502, "out of memory resolving");
	return 1;
}

/*
 * libevent 2.1 reads a socket 4096 bytes at a time (EVBUFFER_MAX_READ) and
 * goes back to epoll between reads: a 1 MiB body cost ~256 loop turns and
 * syscalls each way (perf). When a plain socket has data, read what is
 * there in 64 KiB slices straight into the input buffer, up to the relay
 * limit. EOF and errors are left for libevent's next read to report.
 */
/* Read slices into in until the socket is drained or in holds limit. */
static void
conn_read_slices(struct evbuffer *in, evutil_socket_t fd, size_t limit)
{
	for (int i = 0; i < 16 && evbuffer_get_length(in) < limit; i++) {
		struct evbuffer_iovec v[2];
		struct iovec iov[2];
		int nv = evbuffer_reserve_space(in, CONN_READ_SLICE, v, 2);
		if (nv <= 0)
			return;
		for (int k = 0; k < nv; k++) {
			iov[k].iov_base = v[k].iov_base;
			iov[k].iov_len = v[k].iov_len;
		}
		ssize_t r = readv(fd, iov, nv);
		if (r <= 0) {
			(void)evbuffer_commit_space(in, NULL, 0);
			return;
		}
		size_t left = (size_t)r, total = 0;
		int used = 0;
		for (int k = 0; k < nv && left > 0; k++, used++) {
			if (v[k].iov_len > left)
				v[k].iov_len = left;
			left -= v[k].iov_len;
			total += v[k].iov_len;
		}
		if (evbuffer_commit_space(in, v, used) == -1)
			return;
		if (total < CONN_READ_SLICE)
			return; /* the socket is drained */
	}
}

static void
conn_read_more(struct conn *c, struct bufferevent *bev)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	evutil_socket_t fd = bufferevent_getfd(bev);

	/* libevent's read took less than its 4 KiB: the socket is drained,
	 * and another read would only cost a syscall to learn EAGAIN */
	if (evbuffer_get_length(in) < CONN_LIBEVENT_READ)
		return;
	/* a bufferevent's input is frozen at the end against outside
	 * writers; thaw it for our reads, as libevent's own read does */
	if (fd < 0 || evbuffer_unfreeze(in, 0) == -1)
		return;
	conn_read_slices(in, fd, c->w->cfg->relay_buffer_bytes);
	(void)evbuffer_freeze(in, 0);
}

static void
conn_up_readcb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	c->t_active_us = now_us();
	if (!c->up->tls)
		conn_read_more(c, bev);
	if (c->state == CONN_TUNNEL)
		conn_tunnel_move(c, bev, c->cbev, &c->bytes_from_server,
		    &c->bytes_to_client);
	else if (c->state == CONN_SNIFF)
		intercept_server_first(c);
	else
		conn_feed_response(c);
}

static void
conn_up_writecb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	c->t_active_us = now_us();
	if (c->state == CONN_TUNNEL) {
		bufferevent_setwatermark(c->up->bev, EV_WRITE, 0, 0);
		if (!c->client_eof)
			bufferevent_enable(c->cbev, EV_READ);
		conn_tunnel_check(c);
	} else if (c->state == CONN_EXCHANGE)
		conn_feed_request(c);
	else if (c->state == CONN_DRAIN && c->client_eof)
		conn_close(c, "client-eof", NULL);
}

static void
conn_up_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	char why[300];

	(void)bev;
	if (c->state == CONN_CONNECT) {
		if (what & BEV_EVENT_CONNECTED) {
			int64_t t = now_us();
			c->up->dns_us = c->dns_elapsed_us;
			c->up->connect_us = t - c->t_connect_start_us;
			if (c->up->tls && c->up->t_tls_start_us > 0)
				c->up->tls_us = t - c->up->t_tls_start_us;
			if (c->rec != NULL) {
				c->rec->u.req.connect_us = c->up->connect_us;
				c->rec->u.req.tls_us = c->up->tls_us;
			}
			conn_set_nodelay(c->up->bev);
			if (c->up->tls && intercept_up_ready(c) == -1)
				return;
			conn_upstream_ready(c);
			return;
		}
		int serr = EVUTIL_SOCKET_ERROR();
		int tcp_failed = serr == ECONNREFUSED || serr == ETIMEDOUT ||
		    serr == EHOSTUNREACH || serr == ENETUNREACH ||
		    serr == ECONNRESET;
		if (c->up->tls && !tcp_failed) {
			unsigned long e = bufferevent_get_openssl_error(bev);
			if (e != 0) {
				snprintf(why, sizeof(why),
				    "TLS handshake with the origin failed: %s",
				    ERR_reason_error_string(e)
					? ERR_reason_error_string(e)
					: "TLS error");
				while (bufferevent_get_openssl_error(bev))
					;
				conn_connect_next(c, why);
				return;
			}
		}
		while (c->up->tls && bufferevent_get_openssl_error(bev) != 0)
			;
		conn_connect_next(c, evutil_socket_error_to_string(serr));
		return;
	}
	if (c->up->tls && !c->up->end_seen &&
	    (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))) {
		/*
		 * libevent's TLS bufferevent reports the close before it adds
		 * the bytes it read in the same pass to the input (do_read in
		 * bufferevent_openssl.c): an answer followed at once by the
		 * origin's close would be lost. See the close again from the
		 * loop, after conn_up_readcb has had those bytes.
		 */
		c->up->end_seen = 1;
		bufferevent_trigger_event(bev, what, BEV_TRIG_DEFER_CALLBACKS);
		return;
	}
	if (c->state == CONN_SNIFF) {
		/* the origin gave up before either side spoke */
		conn_close(c, "server-eof", "origin closed before any byte");
		return;
	}
	if (c->state == CONN_TUNNEL && (what & BEV_EVENT_EOF)) {
		/* the origin is done sending: pass its FIN on once its bytes
		 * are through, and keep relaying the other way */
		stream_closed_by(c, "server-fin");
		c->up_eof = 1;
		bufferevent_disable(c->up->bev, EV_READ);
		conn_arm_timer(c); /* now half-close-timeout */
		conn_tunnel_check(c);
		return;
	}
	if (c->state == CONN_TUNNEL) {
		/* the origin failed: flush to the client, then close */
		stream_closed_by(c,
		    (what & BEV_EVENT_EOF)                    ? "server-fin"
			: EVUTIL_SOCKET_ERROR() == ECONNRESET ? "server-rst"
							      : "server-error");
		stream_snap_server(c, bufferevent_getfd(c->up->bev));
		upstream_free(c->up);
		c->up = NULL;
		conn_drain(c, "server-eof", NULL);
		return;
	}
	if (c->state != CONN_EXCHANGE)
		return;
	if (what & BEV_EVENT_EOF) {
		/* bytes may still wait behind client back-pressure: the end
		 * is handled once they are through */
		c->up_eof = 1;
		bufferevent_disable(bev, EV_READ);
		conn_feed_response(c);
		return;
	}
	snprintf(why, sizeof(why), "origin connection error: %s",
	    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	conn_up_failed(c, why);
}

/* The origin failed or closed before the response was complete. */
static void
conn_up_failed(struct conn *c, const char *why)
{
	if (!c->resp_head_sent && conn_retry_fresh(c))
		return;
	if (c->inner != CONN_INNER_NONE && !c->resp_head_sent &&
	    c->rec != NULL && c->rec->u.req.upstream_reused &&
	    c->rec->u.req.resp_header_bytes == 0) {
		/* the origin closed the connection the client was reusing:
		 * so does the client's, as it would without us */
		conn_rec_fail(c, 0, why);
		(void)conn_rec_submit(c);
		conn_close(c, "server-eof", why);
		return;
	}
	if (!c->resp_head_sent)
		conn_fail(c, 502, why);
	else {
		conn_rec_fail(c, 0, why);
		(void)conn_rec_submit(c);
		conn_close(c, "server-error", why);
	}
}

/* The origin closed and everything it sent has been parsed. */
static void
conn_up_eof(struct conn *c)
{
	/* close-delimited bodies end here */
	if (c->resp_head_sent) {
		(void)llhttp_finish(&c->respp);
		if (c->resp_done) {
			upstream_free(c->up);
			c->up = NULL;
			c->client_ka = 0;
			if (c->req_done)
				conn_exchange_end(c);
			else
				conn_fail(c, 0, "origin closed mid-request");
			return;
		}
	}
	conn_up_failed(c,
	    c->resp_head_sent
		? "origin closed the connection mid-response"
		: "origin closed the connection before responding");
}

/* ---- client callbacks ---- */

void
conn_client_readcb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	c->t_active_us = now_us();
	if (c->t_first_byte_us == 0)
		c->t_first_byte_us = c->t_active_us;
	if (c->read_throttled) {
		c->read_throttled = 0;
		bufferevent_setwatermark(
		    bev, EV_READ, 0, c->w->cfg->relay_buffer_bytes);
	}
	if (c->craw == NULL &&
	    (c->state == CONN_EXCHANGE || c->state == CONN_TUNNEL))
		conn_read_more(c, bev);
	switch (c->state) {
	case CONN_READ_HEAD:
		if (c->waiting_store)
			return;
		conn_parse_request(c);
		break;
	case CONN_EXCHANGE:
		conn_feed_request(c);
		break;
	case CONN_OFFLINE:
		offline_read(c);
		break;
	case CONN_SNIFF:
		intercept_sniff(c);
		break;
	case CONN_SOCKS:
		socks_read(c);
		break;
	case CONN_TUNNEL:
		conn_tunnel_move(c, bev, c->up->bev, &c->bytes_from_client,
		    &c->bytes_to_server);
		break;
	case CONN_DRAIN: {
		struct evbuffer *in = bufferevent_get_input(bev);
		size_t n = evbuffer_get_length(in);
		if (c->up != NULL)
			break; /* tunnel flushing to the origin */
		c->bytes_from_client += n;
		c->discarded += n;
		evbuffer_drain(in, n);
		if (c->discarded > CONN_LINGER_BYTES)
			conn_close(c, c->drain_reason, c->drain_error);
		break;
	}
	default:
		/* RESOLVE / CONNECT / DRAIN: leave it buffered; the read
		 * high-watermark stops the socket reads */
		break;
	}
}

void
conn_client_writecb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *out = bufferevent_get_output(bev);

	c->t_active_us = now_us();
	switch (c->state) {
	case CONN_DRAIN:
		if (evbuffer_get_length(out) == 0 && c->up == NULL)
			conn_linger(c);
		break;
	case CONN_EXCHANGE:
		conn_feed_response(c);
		break;
	case CONN_OFFLINE:
		offline_write(c);
		break;
	case CONN_TUNNEL:
		bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
		if (c->up != NULL && !c->up_eof)
			bufferevent_enable(c->up->bev, EV_READ);
		conn_tunnel_check(c);
		break;
	default:
		break;
	}
}

void
conn_client_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	if (what & BEV_EVENT_ERROR) {
		char why[200];
		int serr = EVUTIL_SOCKET_ERROR();
		stream_closed_by(
		    c, serr == ECONNRESET ? "client-rst" : "client-error");
		snprintf(why, sizeof(why), "client connection error: %s",
		    evutil_socket_error_to_string(serr));
		conn_rec_fail(c, 0, why);
		(void)conn_rec_submit(c);
		conn_close(c, "client-error", why);
		return;
	}
	c->client_eof = 1;
	stream_closed_by(c, "client-fin");
	if (c->state == CONN_DRAIN && c->up == NULL) {
		conn_close(c, c->drain_reason, c->drain_error);
		return;
	}
	switch (c->state) {
	case CONN_READ_HEAD:
		if (c->in_head || c->head_bytes > 0)
			conn_close(c, "client-eof", "client closed mid-head");
		else
			conn_close(c, "client-eof", NULL);
		break;
	case CONN_EXCHANGE:
		if (c->req_done ||
		    evbuffer_get_length(bufferevent_get_input(c->cbev)) > 0)
			break; /* finish what can be finished, then close */
		conn_rec_fail(c, 0, "client closed mid-request");
		(void)conn_rec_submit(c);
		conn_close(c, "client-eof", "client closed mid-request");
		break;
	case CONN_OFFLINE:
		/* the answer may still be owed; offline_read sees the EOF */
		offline_read(c);
		break;
	case CONN_TUNNEL:
		/* the client is done sending: pass its FIN on once its bytes
		 * are through, and keep relaying the other way */
		bufferevent_disable(c->cbev, EV_READ);
		conn_arm_timer(c); /* now half-close-timeout */
		conn_tunnel_check(c);
		break;
	case CONN_SNIFF:
		if (evbuffer_get_length(bufferevent_get_input(c->cbev)) == 0) {
			conn_close(c, "client-eof", NULL);
			break;
		}
		/* it sent something and half-closed: relay what it sent */
		bufferevent_disable(c->cbev, EV_READ);
		intercept_client_eof(c);
		break;
	case CONN_RESOLVE:
	case CONN_CONNECT:
		if (c->tunnel_raw && !c->tls_pending) {
			/* a stream to relay: its FIN follows its bytes */
			bufferevent_disable(c->cbev, EV_READ);
			break;
		}
		conn_rec_fail(c, 0, "client closed before the origin answered");
		(void)conn_rec_submit(c);
		conn_close(c, "client-eof", "client closed early");
		break;
	default:
		conn_close(c, "client-eof", NULL);
		break;
	}
}

/*
 * An empty evbuffer can still hold the chain a read reserved and found
 * nothing for: an SSL bufferevent reserves 16 KiB per attempt, and keeps
 * it while the connection idles. One byte in and out frees every chain.
 */
static void
conn_release_chains(struct bufferevent *bev)
{
	struct evbuffer *b = bufferevent_get_input(bev);

	if (evbuffer_get_length(b) == 0 && evbuffer_prepend(b, "", 1) == 0)
		evbuffer_drain(b, 1);
}

/* A connection waiting for its next request holds no read buffers (its
 * own and its SSL object's: OpenSSL keeps a record buffer after the
 * session tickets) and no origin connection of its own. */
static void
conn_trim_idle(struct conn *c)
{
	SSL *ssl;

	log_debug("c%lld idle: releasing read buffers", (long long)c->id);
	if (c->craw != NULL) {
		/*
		 * The TLS filter reserves room for a read whenever it may
		 * read; while idle let it reserve one byte. The first byte
		 * of the next request lifts the limit (conn_client_readcb).
		 */
		bufferevent_setwatermark(c->cbev, EV_READ, 0, 1);
		c->read_throttled = 1;
		conn_release_chains(c->craw);
	}
	conn_release_chains(c->cbev);
	if ((ssl = bufferevent_openssl_get_ssl(c->cbev)) != NULL)
		(void)SSL_free_buffers(ssl);
	if (c->up_idle != NULL) {
		/*
		 * The origin connection kept for this client goes back to
		 * the worker's pool (upstream-pool-per-host of them per
		 * origin; the rest are closed): a thousand quiet tunnels to
		 * one site need not hold a thousand origin sessions. The
		 * next request takes one from the pool, or resumes.
		 */
		conn_release_chains(c->up_idle->bev);
		if ((ssl = bufferevent_openssl_get_ssl(c->up_idle->bev)) !=
		    NULL)
			(void)SSL_free_buffers(ssl);
		/* a tunnel keeps its own (one origin connection per client
		 * connection, end to end) */
		if (c->inner == CONN_INNER_NONE) {
			upstream_pool_put(c->up_idle);
			c->up_idle = NULL;
		}
	}
}

static void
conn_timeoutcb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	int64_t dl = conn_deadline(c);

	(void)fd;
	(void)what;
	if (dl == 0)
		return;
	if (c->state == CONN_DRAIN && c->flush_wait && now_us() < dl) {
		c->flush_wait = 0;
		conn_linger(c);
		return;
	}
	if (now_us() < dl) {
		/* there was activity since the timer was set: wait on */
		conn_arm_timer(c);
		return;
	}
	if (c->state == CONN_READ_HEAD && !c->in_head && c->head_bytes == 0 &&
	    !c->idle_trimmed) {
		conn_trim_idle(c);
		c->idle_trimmed = 1;
		conn_arm_timer(c);
		return;
	}
	switch (c->state) {
	case CONN_READ_HEAD:
		if (c->in_head || c->head_bytes > 0)
			conn_fail(c, 408, "request head not received in time");
		else
			conn_close(c, "idle-timeout", NULL);
		break;
	case CONN_RESOLVE:
		resolve_cancel(c->dns);
		c->dns = NULL;
		conn_fail(c, 504, "name resolution timed out");
		break;
	case CONN_CONNECT:
		if (c->addr_idx < c->addrs.naddrs) {
			conn_connect_next(c, "connect timed out");
			break;
		}
		upstream_free(c->up);
		c->up = NULL;
		conn_fail(c, 504, "connecting to the origin timed out");
		break;
	case CONN_EXCHANGE:
		if (!c->req_done) {
			conn_rec_fail(
			    c, 408, "client stopped sending the body");
			(void)conn_rec_submit(c);
			conn_close(c, "idle-timeout", "client body timeout");
		} else if (!c->resp_head_sent)
			conn_fail(c, 504, "origin did not answer in time");
		else {
			conn_rec_fail(c, 0, "origin stalled mid-response");
			(void)conn_rec_submit(c);
			conn_close(c, "upstream-timeout", "origin stalled");
		}
		break;
	case CONN_SNIFF:
		intercept_sniff_timeout(c);
		break;
	case CONN_TLS_DOWN:
		conn_close(c, "tls-timeout", "client TLS handshake timed out");
		break;
	case CONN_SOCKS:
		conn_close(c, "idle-timeout", "SOCKS handshake timed out");
		break;
	case CONN_DRAIN:
		if (c->lingering) {
			conn_close(c, c->drain_reason, c->drain_error);
			break;
		}
		if (c->flush_wait) {
			c->flush_wait = 0;
			conn_linger(c);
			break;
		}
		conn_close(c, "idle-timeout", "client did not read the answer");
		break;
	case CONN_TUNNEL:
		if (c->client_eof || c->up_eof) {
			conn_close(c, "half-close-timeout", NULL);
			break;
		}
		stream_closed_by(c, "idle-timeout");
		conn_close(c, "idle-timeout", NULL);
		break;
	default:
		stream_closed_by(c, "idle-timeout");
		conn_close(c, "idle-timeout", NULL);
		break;
	}
}

/* ---- life cycle ---- */

/* Write the connection row, then free everything the conn owns. The one
 * teardown path. */
void
conn_close(struct conn *c, const char *reason, const char *err)
{
	struct worker *w = c->w;
	struct store_rec *rec;

	if (c->state == CONN_CLOSED)
		return;
	log_debug("c%lld close reason=%s%s%s", (long long)c->id, reason,
	    err ? " error=" : "", err ? err : "");
	if (c->rec != NULL) {
		conn_rec_fail(c, 0, err ? err : reason);
		(void)conn_rec_submit(c);
	}
	if (w->store != NULL && (rec = store_rec_new(STORE_REC_CONN)) != NULL) {
		struct store_conn *sc = &rec->u.conn;
		sc->id = c->id;
		sc->listener = strdup(c->mode == CONFIG_LISTEN_SOCKS5 ? "socks5"
			: c->mode == CONFIG_LISTEN_TRANSPARENT ? "transparent"
							       : "http");
		sc->client_ip = strdup(c->client_ip);
		sc->client_port = c->client_port;
		sc->target_host = conn_strdup(c->target_host);
		sc->target_port = c->target_port;
		sc->server_ip = c->server_ip[0] ? strdup(c->server_ip) : NULL;
		sc->server_port = c->server_port;
		sc->protocol = strdup(c->protocol);
		sc->t_accept_us = c->t_accept_us;
		sc->t_first_byte_us = c->t_first_byte_us;
		sc->t_close_us = now_us();
		sc->bytes_from_client = c->bytes_from_client;
		sc->bytes_to_client = c->bytes_to_client;
		sc->bytes_to_server = c->bytes_to_server;
		sc->bytes_from_server = c->bytes_from_server;
		sc->nrequests = c->nrequests;
		sc->close_reason = strdup(reason);
		sc->error = conn_strdup(err);
		sc->sni = c->sni[0] ? strdup(c->sni) : NULL;
		sc->alpn = c->alpn[0] ? strdup(c->alpn) : NULL;
		sc->decision = conn_strdup(c->decision);
		sc->decision_reason = conn_strdup(c->decision_reason);
		sc->tls_client =
		    c->tls_client[0] ? strdup(c->tls_client) : NULL;
		sc->tls_server =
		    c->tls_server[0] ? strdup(c->tls_server) : NULL;
		sc->upstream_cert_sha256 =
		    c->cert_sha[0] ? strdup(c->cert_sha) : NULL;
		sc->upstream_cert_subject =
		    c->cert_subject[0] ? strdup(c->cert_subject) : NULL;
		sc->upstream_cert_issuer =
		    c->cert_issuer[0] ? strdup(c->cert_issuer) : NULL;
		sc->verify_error = conn_strdup(c->verify_error);
		if (c->tunnel_host != NULL) {
			char t[300];
			snprintf(t, sizeof(t),
			    strchr(c->tunnel_host, ':') ? "[%s]:%u" : "%s:%u",
			    c->tunnel_host, c->tunnel_port);
			sc->listener_target = strdup(t);
		}
		stream_finish(c, sc,
		    bufferevent_getfd(c->craw ? c->craw : c->cbev),
		    c->up ? bufferevent_getfd(c->up->bev) : -1);
		/* a stream relayed unread gets its line (flowline picks) */
		rec->print = !w->cfg->quiet;
		(void)store_submit(w->store, rec);
	}
	c->state = CONN_CLOSED;
	conn_quiesce(c);
	TAILQ_REMOVE(&w->conns, c, link);
	TAILQ_INSERT_TAIL(&w->reaped, c, link);
	event_active(w->reap_ev, EV_READ, 0);
	atomic_fetch_sub_explicit(&w->live, 1, memory_order_relaxed);
	if (w->shutting_down)
		worker_maybe_exit(w);
}

/*
 * Make a closed connection inert: nothing it owns can call back into it
 * any more, but every object stays allocated until conn_free runs from the
 * worker's reap event. A caller further up the stack that still holds c
 * (an OpenSSL or llhttp callback, intercept.c after a failed enable) reads
 * valid memory and finds the state CLOSED.
 */
static void
conn_quiesce(struct conn *c)
{
	/* (c->craw, under a TLS filter, calls only the filter) */
	struct bufferevent *bevs[2] = {c->cbev, c->up ? c->up->bev : NULL};

	resolve_cancel(c->dns);
	c->dns = NULL;
	event_del(c->timer);
	for (size_t i = 0; i < 2; i++) {
		if (bevs[i] == NULL)
			continue;
		bufferevent_setcb(bevs[i], NULL, NULL, NULL, NULL);
		bufferevent_disable(bevs[i], EV_READ | EV_WRITE);
	}
	if (c->waiting_store) {
		TAILQ_REMOVE(&c->w->store_wait, c, wait_link);
		c->waiting_store = 0;
	}
	/* an origin connection this client no longer needs can serve others
	 * (never one kept inside a tunnel: it belongs to that client) */
	if (c->up_idle != NULL) {
		if (c->inner == CONN_INNER_NONE)
			upstream_pool_put(c->up_idle);
		else
			upstream_free(c->up_idle);
		c->up_idle = NULL;
	}
}

/* Free a closed connection and everything it owns; from the reap event
 * only, never inside a callback of the connection's own objects. */
static void
conn_free(struct conn *c)
{
	if (c == NULL)
		return;
	upstream_free(c->up);
	offline_free(c);
	event_free(c->timer);
	bufferevent_free(c->cbev);
	evbuffer_free(c->up_head);
	evbuffer_free(c->raw_head);
	evbuffer_free(c->raw_resp);
	head_free(&c->reqh);
	head_free(&c->resph);
	url_clear(&c->url);
	free(c->target_host);
	free(c->drain_error);
	stream_free(c);
	free(c->tunnel_host);
	free(c->decision_reason);
	free(c->verify_error);
	free(c);
}

/* The worker's reap event: free the connections closed since the last. */
void
conn_worker_reap(struct worker *w)
{
	struct conn *c;

	while ((c = TAILQ_FIRST(&w->reaped)) != NULL) {
		TAILQ_REMOVE(&w->reaped, c, link);
		conn_free(c);
	}
}

/* Whether ss is the accepted socket's own local address: not redirected. */
static int
conn_is_local_addr(int fd, const struct sockaddr_storage *ss)
{
	struct sockaddr_storage me;
	socklen_t len = sizeof(me);

	memset(&me, 0, sizeof(me));
	if (getsockname(fd, (struct sockaddr *)&me, &len) == -1 ||
	    me.ss_family != ss->ss_family)
		return 0;
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)&me;
		const struct sockaddr_in6 *b = (const void *)ss;
		return a->sin6_port == b->sin6_port &&
		    memcmp(&a->sin6_addr, &b->sin6_addr, 16) == 0;
	}
	const struct sockaddr_in *a = (const void *)&me;
	const struct sockaddr_in *b = (const void *)ss;
	return a->sin_port == b->sin_port &&
	    a->sin_addr.s_addr == b->sin_addr.s_addr;
}

/*
 * A connection netfilter redirected to us: its original destination is
 * the tunnel's target. One that was not redirected would name ourselves.
 */
static void
conn_transparent(struct conn *c)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int fd = bufferevent_getfd(c->cbev);
	char ip[INET6_ADDRSTRLEN];
	unsigned port;
	int rc;

	memset(&ss, 0, sizeof(ss));
	rc = getsockopt(fd, SOL_IP, CONN_SO_ORIGINAL_DST, &ss, &len);
	if (rc == -1) {
		len = sizeof(ss);
		rc = getsockopt(fd, SOL_IPV6, CONN_SO_ORIGINAL_DST, &ss, &len);
	}
	if (rc == -1) {
		conn_close(
		    c, "error", "no original destination (SO_ORIGINAL_DST)");
		return;
	}
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
		port = ntohs(s6->sin6_port);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
		port = ntohs(s4->sin_port);
	}
	if (conn_is_local_addr(fd, &ss) ||
	    server_is_self_addr(c->w->srv, (struct sockaddr *)&ss)) {
		conn_close(c, "error",
		    "not redirected: the original destination is peephole");
		return;
	}
	intercept_tunnel(c, ip, port, INTERCEPT_VIA_TRANSPARENT);
}

int
conn_accept(struct worker *w, int fd, const struct sockaddr *sa,
    socklen_t salen, int listener)
{
	struct conn *c;
	const void *src;

	(void)salen;
	conn_settings_init();
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		goto fail;
	c->w = w;
	c->listener = listener;
	c->protocol = "http";
	if (w->store != NULL) {
		c->id = store_next_conn_id(w->store);
		if (c->id < 0)
			goto fail; /* logged by the store; the client sees a
				      close */
	} else {
		/* no store to number them: the worker's own count, made unique
		 * across workers by its index */
		uint64_t n = atomic_fetch_add_explicit(
		    &w->accepted, 1, memory_order_relaxed);

		c->id = (int64_t)((n + 1) * 64 + (uint64_t)w->idx);
	}
	if (sa->sa_family == AF_INET6) {
		src = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		c->client_port =
		    ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	} else {
		src = &((const struct sockaddr_in *)sa)->sin_addr;
		c->client_port =
		    ntohs(((const struct sockaddr_in *)sa)->sin_port);
	}
	if (inet_ntop(sa->sa_family, src, c->client_ip, sizeof(c->client_ip)) ==
	    NULL)
		snprintf(c->client_ip, sizeof(c->client_ip), "?");
	c->t_accept_us = now_us();
	head_init(&c->reqh, w->cfg->max_header_bytes);
	head_init(&c->resph, w->cfg->max_header_bytes);
	c->up_head = evbuffer_new();
	c->raw_head = evbuffer_new();
	c->raw_resp = evbuffer_new();
	c->dns_elapsed_us = -1;
	c->timer = evtimer_new(w->base, conn_timeoutcb, c);
	c->cbev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->up_head == NULL || c->raw_head == NULL || c->raw_resp == NULL ||
	    c->timer == NULL || c->cbev == NULL)
		goto fail;
	fd = -1; /* the bufferevent owns it now */
	llhttp_init(&c->reqp, HTTP_REQUEST, &conn_req_settings);
	c->reqp.data = c;
	bufferevent_setcb(c->cbev, conn_client_readcb, conn_client_writecb,
	    conn_client_eventcb, c);
	bufferevent_setwatermark(
	    c->cbev, EV_READ, 0, w->cfg->relay_buffer_bytes);
	(void)bufferevent_set_max_single_write(
	    c->cbev, w->cfg->relay_buffer_bytes);
	conn_set_nodelay(c->cbev);
	TAILQ_INSERT_TAIL(&w->conns, c, link);
	atomic_fetch_add_explicit(&w->live, 1, memory_order_relaxed);
	if (w->store != NULL)
		atomic_fetch_add_explicit(
		    &w->accepted, 1, memory_order_relaxed);
	c->state = CONN_READ_HEAD;
	c->mode = (int)w->cfg->listen[listener].mode;
	if (c->mode == CONFIG_LISTEN_SOCKS5) {
		conn_enter(c, CONN_SOCKS);
		bufferevent_enable(c->cbev, EV_READ | EV_WRITE);
		return 0;
	}
	if (c->mode == CONFIG_LISTEN_TRANSPARENT) {
		bufferevent_enable(c->cbev, EV_READ | EV_WRITE);
		conn_transparent(c);
		return 0;
	}
	conn_enter(c, CONN_READ_HEAD);
	if (store_backlogged_safe(w->store)) {
		c->waiting_store = 1;
		TAILQ_INSERT_TAIL(&w->store_wait, c, wait_link);
		return 0;
	}
	bufferevent_enable(c->cbev, EV_READ | EV_WRITE);
	return 0;
fail:
	if (c != NULL) {
		if (c->timer)
			event_free(c->timer);
		if (c->cbev)
			bufferevent_free(c->cbev);
		if (c->up_head)
			evbuffer_free(c->up_head);
		if (c->raw_head)
			evbuffer_free(c->raw_head);
		if (c->raw_resp)
			evbuffer_free(c->raw_resp);
		head_free(&c->reqh);
		head_free(&c->resph);
		free(c);
	}
	if (fd >= 0)
		close(fd);
	return -1;
}

void
conn_worker_shutdown(struct worker *w)
{
	struct conn *c, *next;

	for (c = TAILQ_FIRST(&w->conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, link);
		/* between requests: nothing in flight, close now */
		if (c->state == CONN_READ_HEAD && !c->in_head &&
		    c->head_bytes == 0)
			conn_close(c, "shutdown", NULL);
	}
}

void
conn_worker_close_all(struct worker *w)
{
	struct conn *c;

	while ((c = TAILQ_FIRST(&w->conns)) != NULL)
		conn_close(c, "shutdown", "shutdown grace period over");
}

void
conn_worker_store_drained(struct worker *w)
{
	struct conn *c;

	while ((c = TAILQ_FIRST(&w->store_wait)) != NULL) {
		TAILQ_REMOVE(&w->store_wait, c, wait_link);
		c->waiting_store = 0;
		bufferevent_enable(c->cbev, EV_READ | EV_WRITE);
		conn_parse_request(c);
		if (store_backlogged_safe(w->store))
			break;
	}
}
