/*
 * h1: the byte-faithful HTTP/1 codec (see h1.h).
 *
 * Bodies are never held whole: llhttp is fed the client's (or origin's)
 * input buffer in place, and the bytes it consumed as body are moved to the
 * peer's output buffer untouched (framing included), so chunked, sized and
 * close-delimited bodies all relay as they came. Only the explicit proxy
 * rewrites heads, and only as RFC 9110 asks. Each direction stops moving
 * bytes while the peer's output holds relay-buffer bytes, and the peer's
 * write callback resumes it (as in libevent's le-proxy).
 *
 * llhttp callbacks only collect spans and set flags; every decision is taken
 * after llhttp_execute() returns, so nothing is freed inside a callback.
 */
#include "proxy/net/h1.h"

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
#include "proxy/net/deadline.h"
#include "proxy/net/dial.h"
#include "proxy/net/exchange.h"
#include "proxy/net/intercept.h"
#include "proxy/net/offline.h"
#include "proxy/net/record.h"
#include "proxy/net/relay.h"
#include "proxy/net/ws.h"
#include "proxy/net/resolve.h"
#include "proxy/net/selfpage.h"
#include "proxy/net/server.h"
#include "proxy/net/stream.h"
#include "proxy/net/upstream.h"
#include "proxy/net/worker.h"
#include "proxy/store/store.h"

static void h1_up_eof(struct conn *c);
static llhttp_settings_t h1_req_settings, h1_resp_settings;

/* llhttp needs a valid pointer even for a zero-length execute, which runs
 * the transitions that consume nothing (a bodyless message's end). */
static const char h1_empty[1];

struct h1_up_lines {
	const struct head *h;
	const char *auth; /* the target's authority, NUL-terminated */
	int host_seen;
};

struct h1_down_lines {
	const struct head *h;
	int upgrade; /* a 101 being relayed keeps its Upgrade */
};

void
h1_version(char *buf, size_t len, const llhttp_t *p)
{
	snprintf(buf, len, "%u.%u", p->http_major, p->http_minor);
}

static int
h1_req_begin(llhttp_t *p)
{
	struct conn *c = p->data;

	c->h1.in_head = 1;
	head_reset(&c->h1.reqh);
	return 0;
}

static int
h1_req_url(llhttp_t *p, const char *at, size_t len)
{
	struct conn *c = p->data;

	if (head_append(&c->h1.reqh, HEAD_PART_TARGET, at, len) == -1) {
		c->h1.head_overflow = 1;
		return HPE_USER;
	}
	return 0;
}

static int
h1_req_field(llhttp_t *p, const char *at, size_t len)
{
	struct conn *c = p->data;

	if (head_append(&c->h1.reqh, HEAD_PART_FIELD, at, len) == -1) {
		c->h1.head_overflow = 1;
		return HPE_USER;
	}
	return 0;
}

static int
h1_req_value(llhttp_t *p, const char *at, size_t len)
{
	struct conn *c = p->data;

	if (head_append(&c->h1.reqh, HEAD_PART_VALUE, at, len) == -1) {
		c->h1.head_overflow = 1;
		return HPE_USER;
	}
	return 0;
}

static int
h1_req_headers_complete(llhttp_t *p)
{
	struct conn *c = p->data;

	c->h1.in_head = 0;
	c->ex.req_expect =
	    (p->flags & F_CONTENT_LENGTH) ? p->content_length : 0;
	/* stop here: the head is rewritten before any body byte moves */
	return HPE_PAUSED;
}

static int
h1_req_body(llhttp_t *p, const char *at, size_t len)
{
	struct conn *c = p->data;

	if (c->ex.rec != NULL)
		exchange_capture(c, &c->ex.rec->u.req.req_body, &c->ex.req_room,
		    c->ex.req_expect, at, len);
	if (c->ex.shortlink)
		stream_on_body(c, STREAM_UP, at, len);
	return 0;
}

static int
h1_req_message_complete(llhttp_t *p)
{
	struct conn *c = p->data;

	c->ex.req_done = 1;
	/* pipelined requests wait in the buffer until this exchange ends */
	return HPE_PAUSED;
}

static int
h1_resp_begin(llhttp_t *p)
{
	struct conn *c = p->data;

	head_reset(&c->h1.resph);
	return 0;
}

static int
h1_resp_status(llhttp_t *p, const char *at, size_t len)
{
	struct conn *c = p->data;

	return head_append(&c->h1.resph, HEAD_PART_TARGET, at, len) ? HPE_USER
								    : 0;
}

static int
h1_resp_field(llhttp_t *p, const char *at, size_t len)
{
	struct conn *c = p->data;

	return head_append(&c->h1.resph, HEAD_PART_FIELD, at, len) ? HPE_USER
								   : 0;
}

static int
h1_resp_value(llhttp_t *p, const char *at, size_t len)
{
	struct conn *c = p->data;

	return head_append(&c->h1.resph, HEAD_PART_VALUE, at, len) ? HPE_USER
								   : 0;
}

static int
h1_resp_headers_complete(llhttp_t *p)
{
	struct conn *c = p->data;
	int st = p->status_code;

	c->ex.resp_interim = st / 100 == 1 && st != 101;
	c->ex.resp_expect =
	    (p->flags & F_CONTENT_LENGTH) ? p->content_length : 0;
	/*
	 * llhttp reads a Content-Length body even after HEAD, 204 and 304;
	 * those never have one. Returning 1 skips the body, and the message
	 * completes at once (where h1_feed_response sees the head end).
	 */
	if (c->ex.is_head || st == 204 || st == 304)
		return 1;
	return HPE_PAUSED;
}

static int
h1_resp_body(llhttp_t *p, const char *at, size_t len)
{
	struct conn *c = p->data;

	if (c->ex.rec != NULL)
		exchange_capture(c, &c->ex.rec->u.req.resp_body,
		    &c->ex.resp_room, c->ex.resp_expect, at, len);
	if (c->ex.shortlink)
		stream_on_body(c, STREAM_DOWN, at, len);
	return 0;
}

static int
h1_resp_message_complete(llhttp_t *p)
{
	struct conn *c = p->data;

	if (c->ex.resp_interim) {
		/* a 1xx went to the client; the real response follows */
		c->ex.resp_interim = 0;
		c->ex.resp_head_sent = 0;
		return 0;
	}
	/* a 101 llhttp takes for an upgrade (Upgrade and Connection:
	 * upgrade) pauses with HPE_PAUSED_UPGRADE next; any other ends
	 * here, and h1_feed_response sees a complete 101 */
	if (p->status_code == 101 && p->upgrade)
		return 0;
	c->ex.resp_done = 1;
	return HPE_PAUSED;
}

/* Fill the two llhttp settings tables; once, through pthread_once, as every
 * worker thread's first accept gets here. */
static void
h1_settings_fill(void)
{
	llhttp_settings_init(&h1_req_settings);
	h1_req_settings.on_message_begin = h1_req_begin;
	h1_req_settings.on_url = h1_req_url;
	h1_req_settings.on_header_field = h1_req_field;
	h1_req_settings.on_header_value = h1_req_value;
	h1_req_settings.on_headers_complete = h1_req_headers_complete;
	h1_req_settings.on_body = h1_req_body;
	h1_req_settings.on_message_complete = h1_req_message_complete;
	llhttp_settings_init(&h1_resp_settings);
	h1_resp_settings.on_message_begin = h1_resp_begin;
	h1_resp_settings.on_status = h1_resp_status;
	h1_resp_settings.on_header_field = h1_resp_field;
	h1_resp_settings.on_header_value = h1_resp_value;
	h1_resp_settings.on_headers_complete = h1_resp_headers_complete;
	h1_resp_settings.on_body = h1_resp_body;
	h1_resp_settings.on_message_complete = h1_resp_message_complete;
}

void
h1_settings_init(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	(void)pthread_once(&once, h1_settings_fill);
}

/* A fresh request parser and head: a new protocol starts on this client
 * connection (HTTP found inside a CONNECT tunnel, or over forged TLS). */
void
h1_reset(struct conn *c)
{
	llhttp_init(&c->h1.reqp, HTTP_REQUEST, &h1_req_settings);
	c->h1.reqp.data = c;
	head_reset(&c->h1.reqh);
	head_reset(&c->h1.resph);
	c->h1.head_bytes = 0;
	c->h1.in_head = 0;
	c->ex.req_done = c->ex.resp_done = c->ex.resp_head_sent = 0;
	c->ex.resp_interim = c->ex.is_head = c->ex.req_upgrade = 0;
	c->client_ka = 1;
}

/* The first m-byte needle in the n bytes at hay, or NULL (memmem is GNU). */
static const char *
h1_find(const char *hay, size_t n, const char *needle, size_t m)
{
	for (size_t i = 0; m > 0 && i + m <= n; i++)
		if (hay[i] == needle[0] && memcmp(hay + i, needle, m) == 0)
			return hay + i;
	return NULL;
}

/* 1 if the n bytes at s are name, ignoring case. */
static int
h1_name_is(const char *s, size_t n, const char *name)
{
	return strlen(name) == n && strncasecmp(s, name, n) == 0;
}

/*
 * The authority of an absolute-form target as sent ("host:port", userinfo
 * left out) and where the origin-form part begins. -1 if there is none.
 */
static int
h1_target_split(
    const char *t, size_t n, const char **auth, size_t *alen, const char **rest)
{
	const char *p = h1_find(t, n, "://", 3), *end = t + n, *a, *e;

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

/*
 * What the explicit proxy changes in a request head (RFC 9110 7.6.1,
 * RFC 9112 3.2.2): Proxy-Connection, Proxy-Authorization and the fields
 * Connection names go; Host is made to name the target's authority.
 * Everything else, Connection included, goes as the client sent it.
 */
static enum head_verdict
h1_up_line(struct head_line *l, void *arg)
{
	struct h1_up_lines *u = arg;

	if (h1_name_is(l->name, l->nlen, "host")) {
		u->host_seen = 1;
		if (l->vlen == strlen(u->auth) &&
		    strncasecmp(l->value, u->auth, l->vlen) == 0)
			return HEAD_KEEP;
		l->replace = u->auth;
		return HEAD_REPLACE;
	}
	if (h1_name_is(l->name, l->nlen, "proxy-connection") ||
	    h1_name_is(l->name, l->nlen, "proxy-authorization"))
		return HEAD_DROP;
	/* an Upgrade being asked for is relayed with its Connection */
	if (!h1_name_is(l->name, l->nlen, "upgrade") &&
	    head_connection_names(u->h, l->name, l->nlen))
		return HEAD_DROP;
	return HEAD_KEEP;
}

/*
 * Build the head sent upstream. Inside a tunnel (CONNECT, SOCKS,
 * transparent) it is the client's, byte for byte. Through the explicit
 * proxy only what RFC 9110 asks of a proxy changes: the request line
 * becomes origin-form (method and version as sent), and h1_up_line's
 * fields; a Via is added only when the via setting asks for one.
 */
int
h1_build_up_head(struct conn *c)
{
	struct evbuffer *b = c->h1.up_head;
	size_t len = evbuffer_get_length(c->h1.raw_head), tlen, alen, llen;
	const char *raw = (const char *)evbuffer_pullup(c->h1.raw_head, -1);
	const char *target = head_target(&c->h1.reqh, &tlen), *auth, *rest,
		   *tend;
	const char *lf, *sp;
	struct h1_up_lines u = {&c->h1.reqh, NULL, 0};
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
	    h1_target_split(target, tlen, &auth, &alen, &rest) == -1 ||
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
	const char *after = h1_find(raw, llen, target, tlen);
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
	if (head_find(&c->h1.reqh, "host", 0) == -1)
		snprintf(extra, sizeof(extra), "Host: %s\r\n", authz);
	if (c->w->cfg->via_header)
		snprintf(extra + strlen(extra), sizeof(extra) - strlen(extra),
		    "Via: %u.%u peephole\r\n", c->h1.reqp.http_major,
		    c->h1.reqp.http_minor);
	rc = head_copy_raw(b, raw, len, line, (size_t)n, h1_up_line, &u,
	    extra[0] ? extra : NULL);
out:
	free(line);
	return rc;
}

/*
 * Run llhttp over one span (len 0 runs the transitions that consume
 * nothing). *used is how much of it llhttp took: all of it, or up to
 * where it paused or failed.
 */
static enum llhttp_errno
h1_execute(llhttp_t *p, const struct evbuffer_iovec *v, size_t *used)
{
	enum llhttp_errno err = llhttp_execute(p, v->iov_base, v->iov_len);

	*used = err == HPE_OK
	    ? v->iov_len
	    : (size_t)(llhttp_get_error_pos(p) - (const char *)v->iov_base);
	return err;
}

/*
 * Feed the request parser from the client's input while a head is being
 * read. Bytes are drained as llhttp consumes them; the head's spans have
 * been copied into c->h1.reqh by then.
 */
void
h1_parse_request(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->cbev);
	size_t limit = c->w->cfg->max_header_bytes;

	while (c->state == CONN_READ_HEAD && evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		if (c->h1.head_bytes == 0 && !c->h1.in_head) {
			c->t_state_us = now_us();
			evbuffer_drain(c->h1.raw_head,
			    evbuffer_get_length(c->h1.raw_head));
		}
		size_t used;
		enum llhttp_errno err = h1_execute(&c->h1.reqp, &v, &used);
		c->h1.head_bytes += used;
		c->tot.bytes_from_client += used;
		/* kept as received: it is what goes upstream */
		evbuffer_remove_buffer(in, c->h1.raw_head, used);
		if (c->h1.head_overflow || c->h1.head_bytes > limit) {
			c->ex.is_head = 0;
			exchange_fail(
			    c, 431, "request head over max-header-size");
			return;
		}
		if (err == HPE_PAUSED) {
			llhttp_resume(&c->h1.reqp);
			exchange_request_head(c);
			return;
		}
		if (err != HPE_OK) {
			char why[160];
			snprintf(why, sizeof(why), "malformed request: %s",
			    llhttp_get_error_reason(&c->h1.reqp));
			c->ex.is_head = 0;
			exchange_fail(c, 400, why);
			return;
		}
	}
	deadline_arm(c);
}

/* A fresh response parser for the answer to the request just sent. */
void
h1_response_start(struct conn *c)
{
	llhttp_init(&c->h1.respp, HTTP_RESPONSE, &h1_resp_settings);
	c->h1.respp.data = c;
	evbuffer_drain(c->h1.raw_resp, evbuffer_get_length(c->h1.raw_resp));
}

void
h1_exchange_start(struct conn *c)
{
	c->tot.bytes_to_server += evbuffer_get_length(c->h1.up_head);
	relay_send(
	    c, c->up->bev, c->h1.up_head, evbuffer_get_length(c->h1.up_head));
	h1_response_start(c);
	h1_feed_request(c);
	if (c->state == CONN_EXCHANGE)
		h1_feed_response(c);
}

/* Send the answer head(s) down_head holds, if any. */
static void
h1_flush_head(struct conn *c)
{
	size_t n = evbuffer_get_length(c->h1.down_head);

	if (n > 0)
		relay_send(c, c->cbev, c->h1.down_head, n);
}

/*
 * llhttp refused bytes of a message (p) in flight. Inside a tunnel they
 * are the app's: recorded, then relayed unread. Through the explicit
 * proxy, before the answer head went out the client gets status; after,
 * the exchange is recorded with why and the connection closed.
 */
static void
h1_refused(struct conn *c, llhttp_t *p, const char *what, int status)
{
	char why[160];

	snprintf(why, sizeof(why), "%s: %s", what, llhttp_get_error_reason(p));
	h1_flush_head(c); /* what was decided goes before what follows */
	if (c->inner != CONN_INNER_NONE)
		relay_unparsed(c, why);
	else if (c->ex.resp_head_sent) {
		conn_close(c, "error", why);
	} else
		exchange_fail(c, status, why);
}

/* After bytes moved either way: the exchange ends when both messages are
 * complete; else the deadline moves on. */
static void
h1_moved(struct conn *c)
{
	if (c->ex.req_done && c->ex.resp_done)
		exchange_end(c);
	else
		deadline_arm(c);
}

/* Move request body bytes from the client to the upstream. */
void
h1_feed_request(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->cbev), *out;
	size_t limit = c->w->cfg->relay_buffer_bytes, used;
	enum llhttp_errno err;

	if (c->up == NULL || c->state != CONN_EXCHANGE)
		return;
	out = bufferevent_get_output(c->up->bev);
	while (!c->ex.req_done) {
		struct evbuffer_iovec v = {(void *)h1_empty, 0};
		if (evbuffer_get_length(out) >= limit) {
			/* resume from the upstream's write callback */
			bufferevent_setwatermark(
			    c->up->bev, EV_WRITE, limit / 2, 0);
			return;
		}
		if (evbuffer_get_length(in) > 0 &&
		    evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		err = h1_execute(&c->h1.reqp, &v, &used);
		relay_send(c, c->up->bev, in, used);
		c->tot.bytes_to_server += used;
		c->tot.bytes_from_client += used;
		if (err == HPE_PAUSED) {
			llhttp_resume(&c->h1.reqp);
			break;
		}
		if (err == HPE_PAUSED_UPGRADE) {
			/* the rest belongs to the upgraded protocol */
			c->ex.req_done = 1;
			break;
		}
		if (err != HPE_OK) {
			h1_refused(
			    c, &c->h1.reqp, "malformed request body", 400);
			return;
		}
		if (v.iov_len == 0)
			break;
	}
	bufferevent_setwatermark(c->up->bev, EV_WRITE, 0, 0);
	if (!c->ex.req_done && c->client_eof && evbuffer_get_length(in) == 0) {
		conn_close(c, "client-eof", "client closed mid-request");
		return;
	}
	h1_moved(c);
}

/* What the explicit proxy leaves out of an answer head: the origin's
 * connection management, which is for its hop only. */
static enum head_verdict
h1_down_line(struct head_line *l, void *arg)
{
	struct h1_down_lines *d = arg;

	if (h1_name_is(l->name, l->nlen, "connection") ||
	    h1_name_is(l->name, l->nlen, "keep-alive") ||
	    h1_name_is(l->name, l->nlen, "proxy-connection"))
		return HEAD_DROP;
	if (d->upgrade && h1_name_is(l->name, l->nlen, "upgrade"))
		return HEAD_KEEP;
	return head_connection_names(d->h, l->name, l->nlen) ? HEAD_DROP
							     : HEAD_KEEP;
}

/*
 * Send the answer head (c->h1.raw_resp, as the origin sent it) to the client.
 * Inside a tunnel it goes byte for byte, and whether the client connection
 * stays open follows what the two ends said. Through the explicit proxy the
 * status line and the end-to-end fields go byte for byte, and the proxy's
 * own Connection field says what happens to the client connection.
 */
static int
h1_emit_response_head(struct conn *c)
{
	struct evbuffer *out = c->h1.down_head;
	size_t before, len = evbuffer_get_length(c->h1.raw_resp);
	const char *raw = (const char *)evbuffer_pullup(c->h1.raw_resp, -1);
	int st = c->h1.respp.status_code;
	int upgrade = st == 101 && c->ex.req_upgrade;
	struct h1_down_lines d = {&c->h1.resph, upgrade};
	const char *conn_hdr = NULL;
	int rc;

	if (raw == NULL)
		return -1;
	if (!c->ex.resp_interim && !upgrade) {
		if (c->inner != CONN_INNER_NONE) {
			/* end to end: the client hears the origin's say */
			if (!llhttp_should_keep_alive(&c->h1.respp) ||
			    c->w->shutting_down)
				c->client_ka = 0;
		} else {
			if (!c->ex.req_done ||
			    llhttp_message_needs_eof(&c->h1.respp) ||
			    c->w->shutting_down || c->ex.req_upgrade)
				c->client_ka = 0;
			if (!c->client_ka)
				conn_hdr = "Connection: close\r\n";
			else if (c->h1.reqp.http_major == 1 &&
			    c->h1.reqp.http_minor == 0)
				conn_hdr = "Connection: keep-alive\r\n";
		}
	} else if (upgrade && c->inner == CONN_INNER_NONE)
		conn_hdr = "Connection: Upgrade\r\n";
	/* down_head holds it until the body's first bytes join it (one
	 * write for a small answer) or h1_feed_response flushes it: inside
	 * a tunnel the head as received, else rewritten */
	before = evbuffer_get_length(out);
	if (c->inner == CONN_INNER_NONE) {
		rc = head_copy_raw(
		    out, raw, len, NULL, 0, h1_down_line, &d, conn_hdr);
		evbuffer_drain(c->h1.raw_resp, len);
		if (rc == -1)
			return -1;
	} else
		evbuffer_add_buffer(out, c->h1.raw_resp);
	c->tot.bytes_to_client += evbuffer_get_length(out) - before;
	if (c->ex.resp_interim)
		return 0; /* a 1xx went on as is; the record keeps the final */
	record_response_head(c);
	return 0;
}

/*
 * used answer bytes were parsed: a head goes to raw_resp until whole, then
 * to the client once decided (err paused at its end); body bytes go to
 * the client as they came. -1 when the connection was closed.
 */
static int
h1_resp_took(struct conn *c, struct evbuffer *in, size_t used,
    enum llhttp_errno err, int in_head)
{
	c->tot.bytes_from_server += used;
	if (!in_head) {
		c->tot.bytes_to_client += used;
		if (evbuffer_get_length(c->h1.down_head) > 0) {
			/* the head still waits: head and body in one write */
			evbuffer_remove_buffer(in, c->h1.down_head, used);
			h1_flush_head(c);
		} else
			relay_send(c, c->cbev, in, used);
		return 0;
	}
	evbuffer_remove_buffer(in, c->h1.raw_resp, used);
	if (c->ex.rec)
		c->ex.rec->u.req.resp_header_bytes += used;
	if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE || c->ex.resp_done) {
		int interim = c->ex.resp_interim;
		if (h1_emit_response_head(c) == -1) {
			conn_close(c, "error", "out of memory");
			return -1;
		}
		c->ex.resp_head_sent = !interim;
	}
	return 0;
}

/*
 * The origin switched protocols (a complete 101, with or without
 * Connection: upgrade): what follows is not HTTP. Asked for, it is a
 * tunnel from here (1); not asked for, the exchange ends and nothing is
 * reused (0).
 */
static int
h1_switched(struct conn *c)
{
	if (c->h1.respp.status_code == 101 && c->ex.req_upgrade) {
		ws_start_h1(c);
		h1_flush_head(c);
		conn_enter(c, CONN_TUNNEL);
		return 1;
	}
	c->ex.resp_done = 1;
	c->client_ka = 0;
	c->ex.req_upgrade = 1;
	return 0;
}

/*
 * Parse the answer from the origin's input and move it to the client,
 * head first, while the client's output is under the relay limit.
 */
void
h1_feed_response(struct conn *c)
{
	struct evbuffer *in, *out = bufferevent_get_output(c->cbev);
	size_t limit = c->w->cfg->relay_buffer_bytes, used;
	enum llhttp_errno err;

	if (c->up == NULL || c->state != CONN_EXCHANGE)
		return;
	in = bufferevent_get_input(c->up->bev);
	while (!c->ex.resp_done) {
		struct evbuffer_iovec v = {(void *)h1_empty, 0};
		int in_head = !c->ex.resp_head_sent;
		if (evbuffer_get_length(out) >= limit) {
			bufferevent_setwatermark(
			    c->cbev, EV_WRITE, limit / 2, 0);
			h1_flush_head(c);
			return;
		}
		if (evbuffer_get_length(in) > 0) {
			if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
				break;
		} else if (in_head)
			break; /* nothing to parse before the head starts */
		if (v.iov_len > 0 && c->ex.rec != NULL &&
		    c->ex.rec->u.req.ttfb_us < 0)
			c->ex.rec->u.req.ttfb_us = now_us() - c->ex.t_sent_us;
		err = h1_execute(&c->h1.respp, &v, &used);
		if (h1_resp_took(c, in, used, err, in_head) == -1)
			return;
		if (err == HPE_PAUSED_UPGRADE ||
		    (err == HPE_PAUSED && c->ex.resp_done &&
			c->h1.respp.status_code == 101)) {
			if (h1_switched(c))
				return;
			break;
		}
		if (err == HPE_PAUSED) {
			llhttp_resume(&c->h1.respp);
			continue;
		}
		if (err != HPE_OK) {
			h1_refused(
			    c, &c->h1.respp, "bad response from origin", 502);
			return;
		}
		if (v.iov_len == 0)
			break;
	}
	h1_flush_head(c);
	bufferevent_setwatermark(c->cbev, EV_WRITE, 0, 0);
	if (!c->ex.resp_done && c->up_eof && evbuffer_get_length(in) == 0)
		h1_up_eof(c);
	else
		h1_moved(c);
}

/* The origin closed and everything it sent has been parsed. */
static void
h1_up_eof(struct conn *c)
{
	/* close-delimited bodies end here */
	if (c->ex.resp_head_sent) {
		(void)llhttp_finish(&c->h1.respp);
		if (c->ex.resp_done) {
			upstream_free(c->up);
			c->up = NULL;
			c->client_ka = 0;
			if (c->ex.req_done)
				exchange_end(c);
			else
				exchange_fail(
				    c, 0, "origin closed mid-request");
			return;
		}
	}
	exchange_up_failed(c,
	    c->ex.resp_head_sent
		? "origin closed the connection mid-response"
		: "origin closed the connection before responding");
}
