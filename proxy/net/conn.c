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
#include "proxy/net/dial.h"
#include "proxy/net/exchange.h"
#include "proxy/net/h1.h"
#include "proxy/net/intercept.h"
#include "proxy/net/learned.h"
#include "proxy/net/offline.h"
#include "proxy/net/record.h"
#include "proxy/net/relay.h"
#include "proxy/net/socks.h"
#include "proxy/net/stream.h"
#include "proxy/net/transparent.h"

/* How long a closing connection waits for the client's FIN. */
#define CONN_LINGER_US 2000000
/* What a closing connection reads and discards at most. */
#define CONN_LINGER_BYTES (1024 * 1024)
/* Quiet this long between requests: release what idle buffers hold. */
#define CONN_IDLE_TRIM_US 250000

static const char *const conn_state_names[] = {"read-head", "resolve",
    "connect", "exchange", "tunnel", "drain", "sniff", "tls-down", "socks",
    "offline", "closed"};

static void conn_quiesce(struct conn *c);
static void conn_linger(struct conn *c);

static int
store_backlogged_safe(struct store *st)
{
	return st != NULL && store_backlogged(st);
}

/*
 * READ_HEAD's entry work: a request may already be buffered (pipelined, or
 * sent with the TLS handshake). While the store is past its limit the
 * client is not read at all, and the store's drain event resumes it
 * (conn_worker_store_drained).
 */
static void
conn_enter_read_head(struct conn *c)
{
	if (store_backlogged_safe(c->w->store)) {
		bufferevent_disable(c->cbev, EV_READ);
		if (!c->waiting_store) {
			c->waiting_store = 1;
			TAILQ_INSERT_TAIL(&c->w->store_wait, c, wait_link);
		}
		return;
	}
	bufferevent_enable(c->cbev, EV_READ | EV_WRITE);
	h1_parse_request(c);
}

/* DRAIN's entry work: the client has everything once its output is out. */
static void
conn_enter_drain(struct conn *c)
{
	int flushed = evbuffer_get_length(bufferevent_get_output(c->cbev)) == 0;

	if (c->client_eof) {
		if (flushed)
			conn_close(c, c->drain_reason, c->drain_error);
		return;
	}
	if (flushed)
		conn_linger(c);
}

/*
 * The transition function: every state change goes through here, is
 * trace-logged, gets the new state's deadline, and runs the new state's
 * entry work (as OpenSMTPD's mta_enter_state). The entry work may move
 * the connection on again, or close it; a caller returns after this.
 */
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
	switch (st) {
	case CONN_READ_HEAD:
		conn_enter_read_head(c);
		break;
	case CONN_RESOLVE:
		dial_resolve(c);
		break;
	case CONN_EXCHANGE:
		h1_exchange_start(c);
		break;
	case CONN_TUNNEL:
		relay_start(c);
		break;
	case CONN_DRAIN:
		conn_enter_drain(c);
		break;
	case CONN_SNIFF:
		if (evbuffer_get_length(bufferevent_get_input(c->cbev)) > 0)
			intercept_sniff(c);
		break;
	case CONN_TLS_DOWN:
		/* the ClientHello already sits in the socket's input buffer,
		 * and no new read would announce it: run the filter over it */
		bufferevent_trigger(
		    c->craw, EV_READ, BEV_TRIG_IGNORE_WATERMARKS);
		break;
	case CONN_SOCKS:
		bufferevent_enable(c->cbev, EV_READ | EV_WRITE);
		break;
	case CONN_CONNECT: /* dial_connect_next started the connect */
	case CONN_OFFLINE: /* offline.c serves or peeks from here */
	case CONN_CLOSED:  /* conn_close, the one teardown */
		break;
	}
}

char *
conn_strdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

char *
conn_strndup(const char *s, size_t n)
{
	char *p = malloc(n + 1);

	if (p != NULL) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

/* ---- timers: one per connection, a deadline per state ---- */

/* SNIFF's deadline (see the comment inside). */
static int64_t
conn_sniff_deadline(const struct conn *c)
{
	const struct config *cfg = c->w->cfg;
	int64_t idle, cap;

	/*
	 * Nothing yet: wait sniff-timeout from the start (a server speaks
	 * first). Bytes trickling in: sniff-timeout after the last one,
	 * within header-timeout overall. Past sniff-timeout with nothing
	 * from the client, the origin is connected and whoever speaks first
	 * decides (late_sniff).
	 */
	if (c->late_sniff)
		return c->t_active_us + (int64_t)cfg->idle_timeout_ms * 1000;
	if (c->t_first_byte_us == 0 ||
	    evbuffer_get_length(bufferevent_get_input(c->cbev)) == 0)
		return c->t_state_us + (int64_t)cfg->sniff_timeout_ms * 1000;
	idle = c->t_active_us + (int64_t)cfg->sniff_timeout_ms * 1000;
	cap = c->t_state_us + (int64_t)cfg->header_timeout_ms * 1000;
	return idle < cap ? idle : cap;
}

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
		return conn_sniff_deadline(c);
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
}

/* ---- upstream connection ---- */

void
conn_up_readcb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	c->t_active_us = now_us();
	if (!c->up->tls)
		relay_read_more(c, bev);
	if (c->state == CONN_TUNNEL)
		relay_move(c, bev, c->cbev, &c->bytes_from_server,
		    &c->bytes_to_client);
	else if (c->state == CONN_SNIFF)
		intercept_server_first(c);
	else
		h1_feed_response(c);
}

void
conn_up_writecb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	c->t_active_us = now_us();
	if (c->state == CONN_TUNNEL) {
		bufferevent_setwatermark(c->up->bev, EV_WRITE, 0, 0);
		if (!c->client_eof)
			bufferevent_enable(c->cbev, EV_READ);
		relay_check_fin(c);
	} else if (c->state == CONN_EXCHANGE)
		h1_feed_request(c);
	else if (c->state == CONN_DRAIN && c->client_eof)
		conn_close(c, "client-eof", NULL);
}

void
conn_up_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	char why[300];

	if (c->state == CONN_CONNECT) {
		dial_connect_event(c, what);
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
	switch (c->state) {
	case CONN_SNIFF:
		/* the origin gave up before either side spoke */
		conn_close(c, "server-eof", "origin closed before any byte");
		break;
	case CONN_TUNNEL:
		relay_up_event(c, what);
		break;
	case CONN_EXCHANGE:
		if (what & BEV_EVENT_EOF) {
			/* bytes may still wait behind client back-pressure:
			 * the end is handled once they are through */
			c->up_eof = 1;
			bufferevent_disable(bev, EV_READ);
			h1_feed_response(c);
			break;
		}
		snprintf(why, sizeof(why), "origin connection error: %s",
		    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		exchange_up_failed(c, why);
		break;
	default:
		break;
	}
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
		relay_read_more(c, bev);
	switch (c->state) {
	case CONN_READ_HEAD:
		if (c->waiting_store)
			return;
		h1_parse_request(c);
		break;
	case CONN_EXCHANGE:
		h1_feed_request(c);
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
		relay_move(c, bev, c->up->bev, &c->bytes_from_client,
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
		h1_feed_response(c);
		break;
	case CONN_OFFLINE:
		offline_write(c);
		break;
	case CONN_TUNNEL:
		bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
		if (c->up != NULL && !c->up_eof)
			bufferevent_enable(c->up->bev, EV_READ);
		relay_check_fin(c);
		break;
	default:
		break;
	}
}

/* The client's socket failed (a reset, most often): record and close. */
static void
conn_client_error(struct conn *c)
{
	char why[200];
	int serr = EVUTIL_SOCKET_ERROR();

	stream_closed_by(c, serr == ECONNRESET ? "client-rst" : "client-error");
	snprintf(why, sizeof(why), "client connection error: %s",
	    evutil_socket_error_to_string(serr));
	conn_close(c, "client-error", why);
}

void
conn_client_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	if (what & BEV_EVENT_ERROR) {
		conn_client_error(c);
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
		exchange_rec_fail(c, 0, "client closed mid-request");
		(void)exchange_submit(c);
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
		relay_check_fin(c);
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
		exchange_rec_fail(
		    c, 0, "client closed before the origin answered");
		(void)exchange_submit(c);
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

/* READ_HEAD's deadline: a head too slow, or a keep-alive too quiet (the
 * first quiet spell only releases the idle buffers). */
static void
conn_read_head_timeout(struct conn *c)
{
	if (!c->in_head && c->head_bytes == 0 && !c->idle_trimmed) {
		conn_trim_idle(c);
		c->idle_trimmed = 1;
		conn_arm_timer(c);
	} else if (c->in_head || c->head_bytes > 0)
		exchange_fail(c, 408, "request head not received in time");
	else
		conn_close(c, "idle-timeout", NULL);
}

/* DRAIN's deadline: the FIN was sent and the client said nothing, TLS
 * records were still queued, or the client does not read its answer. */
static void
conn_drain_timeout(struct conn *c)
{
	if (c->lingering)
		conn_close(c, c->drain_reason, c->drain_error);
	else if (c->flush_wait) {
		c->flush_wait = 0;
		conn_linger(c);
	} else
		conn_close(c, "idle-timeout", "client did not read the answer");
}

/* TUNNEL's deadline: half-close-timeout after one FIN, else idle. */
static void
conn_tunnel_timeout(struct conn *c)
{
	if (c->client_eof || c->up_eof) {
		conn_close(c, "half-close-timeout", NULL);
		return;
	}
	stream_closed_by(c, "idle-timeout");
	conn_close(c, "idle-timeout", NULL);
}

/* The connection's one timer: the current state's deadline passed (or
 * activity moved it, and the timer is set again). */
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
	switch (c->state) {
	case CONN_READ_HEAD:
		conn_read_head_timeout(c);
		break;
	case CONN_RESOLVE:
	case CONN_CONNECT:
		dial_timeout(c);
		break;
	case CONN_EXCHANGE:
		exchange_timeout(c);
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
		conn_drain_timeout(c);
		break;
	case CONN_TUNNEL:
		conn_tunnel_timeout(c);
		break;
	case CONN_OFFLINE:
	case CONN_CLOSED:
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
		exchange_rec_fail(c, 0, err ? err : reason);
		(void)exchange_submit(c);
	}
	if (w->store != NULL && (rec = record_conn_row(c, reason, err)) != NULL)
		(void)store_submit(w->store, rec);
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

/* The connection's id: the store's numbering, or with no store the
 * worker's own count, made unique across workers by its index. -1 when
 * the store cannot give one (it logged why). */
static int64_t
conn_new_id(struct worker *w)
{
	uint64_t n;

	if (w->store != NULL)
		return store_next_conn_id(w->store);
	n = atomic_fetch_add_explicit(&w->accepted, 1, memory_order_relaxed);
	return (int64_t)((n + 1) * 64 + (uint64_t)w->idx);
}

/* The client's address as text and port. */
static void
conn_set_client(struct conn *c, const struct sockaddr *sa)
{
	const void *src;

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
}

/* Free what conn_new allocated, for a connection never started. */
static void
conn_new_undo(struct conn *c)
{
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

/*
 * A connection object for an accepted socket, not yet started: NULL on
 * ENOMEM or without an id (fd is then still the caller's). On success the
 * client bufferevent owns fd.
 */
static struct conn *
conn_new(struct worker *w, int fd, const struct sockaddr *sa, int listener)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->w = w;
	c->listener = listener;
	c->mode = (int)w->cfg->listen[listener].mode;
	c->protocol = "http";
	c->id = conn_new_id(w);
	conn_set_client(c, sa);
	c->t_accept_us = now_us();
	c->dns_elapsed_us = -1;
	head_init(&c->reqh, w->cfg->max_header_bytes);
	head_init(&c->resph, w->cfg->max_header_bytes);
	c->up_head = evbuffer_new();
	c->raw_head = evbuffer_new();
	c->raw_resp = evbuffer_new();
	c->timer = evtimer_new(w->base, conn_timeoutcb, c);
	if (c->id < 0 || c->up_head == NULL || c->raw_head == NULL ||
	    c->raw_resp == NULL || c->timer == NULL ||
	    (c->cbev = bufferevent_socket_new(
		 w->base, fd, BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		conn_new_undo(c);
		return NULL;
	}
	return c;
}

/*
 * Take an accepted client socket (the worker's accept callback, loop
 * thread): start its connection in the state its listener's mode asks
 * for. 0, or -1 with fd closed.
 */
int
conn_accept(struct worker *w, int fd, const struct sockaddr *sa,
    socklen_t salen, int listener)
{
	struct conn *c;

	(void)salen;
	h1_settings_init();
	if ((c = conn_new(w, fd, sa, listener)) == NULL) {
		close(fd);
		return -1;
	}
	h1_reset(c);
	bufferevent_setcb(c->cbev, conn_client_readcb, conn_client_writecb,
	    conn_client_eventcb, c);
	bufferevent_setwatermark(
	    c->cbev, EV_READ, 0, w->cfg->relay_buffer_bytes);
	(void)bufferevent_set_max_single_write(
	    c->cbev, w->cfg->relay_buffer_bytes);
	dial_set_nodelay(c->cbev);
	TAILQ_INSERT_TAIL(&w->conns, c, link);
	atomic_fetch_add_explicit(&w->live, 1, memory_order_relaxed);
	if (w->store != NULL)
		atomic_fetch_add_explicit(
		    &w->accepted, 1, memory_order_relaxed);
	c->state = CONN_READ_HEAD;
	if (c->mode == CONFIG_LISTEN_SOCKS5)
		conn_enter(c, CONN_SOCKS);
	else if (c->mode == CONFIG_LISTEN_TRANSPARENT) {
		bufferevent_enable(c->cbev, EV_READ | EV_WRITE);
		transparent_start(c);
	} else
		conn_enter(c, CONN_READ_HEAD);
	return 0;
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
		h1_parse_request(c);
		if (store_backlogged_safe(w->store))
			break;
	}
}
