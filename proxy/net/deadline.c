/*
 * deadline: a connection's one timer. Each state has a deadline (header,
 * idle, connect, upstream, sniff, half-close timeouts, the linger); when
 * it passes, the piece that owns the state decides what happens. The
 * first quiet spell of a keep-alive connection only releases its idle
 * buffers. Loop thread only.
 */
#include "proxy/net/deadline.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include <stdint.h>

#include "conf/config.h"
#include "proxy/http/head.h"
#include "proxy/log.h"
#include "proxy/net/conn_int.h"
#include "proxy/net/dial.h"
#include "proxy/net/drain.h"
#include "proxy/net/h2.h"
#include "proxy/net/h2_int.h"
#include "proxy/net/exchange.h"
#include "proxy/net/intercept.h"
#include "proxy/net/stream.h"
#include "proxy/net/upstream.h"
#include "proxy/net/worker.h"

/* How long a closing connection waits for the client's FIN. */
#define DEADLINE_LINGER_US 2000000
/* Quiet this long between requests: release what idle buffers hold. */
#define DEADLINE_IDLE_TRIM_US 250000

/* SNIFF's deadline (see the comment inside). */
static int64_t
deadline_sniff(const struct conn *c)
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
	if (c->tls.late_sniff)
		return c->t_active_us + (int64_t)cfg->idle_timeout_ms * 1000;
	if (c->tot.t_first_byte_us == 0 ||
	    evbuffer_get_length(bufferevent_get_input(c->cbev)) == 0)
		return c->t_state_us + (int64_t)cfg->sniff_timeout_ms * 1000;
	idle = c->t_active_us + (int64_t)cfg->sniff_timeout_ms * 1000;
	cap = c->t_state_us + (int64_t)cfg->header_timeout_ms * 1000;
	return idle < cap ? idle : cap;
}

/* The absolute deadline (µs) of the current state, 0 for none. */
static int64_t
deadline_of(const struct conn *c)
{
	const struct config *cfg = c->w->cfg;

	switch (c->state) {
	case CONN_READ_HEAD:
		if (c->h1.in_head || c->h1.head_bytes > 0)
			return c->t_state_us +
			    (int64_t)cfg->header_timeout_ms * 1000;
		if (!c->idle_trimmed &&
		    DEADLINE_IDLE_TRIM_US <
			(int64_t)cfg->idle_timeout_ms * 1000)
			return c->t_active_us + DEADLINE_IDLE_TRIM_US;
		return c->t_active_us + (int64_t)cfg->idle_timeout_ms * 1000;
	case CONN_RESOLVE:
		/* evdns has its own timeout; this is the backstop */
		return c->t_state_us + (int64_t)cfg->dns_timeout_ms * 3000 +
		    1000000;
	case CONN_CONNECT:
		return c->dial.t_connect_start_us +
		    (int64_t)cfg->connect_timeout_ms * 1000;
	case CONN_EXCHANGE:
		if (!c->ex.req_done)
			return c->t_active_us +
			    (int64_t)cfg->idle_timeout_ms * 1000;
		return c->t_active_us +
		    (int64_t)cfg->upstream_timeout_ms * 1000;
	case CONN_DRAIN:
		if (c->end.lingering)
			return c->t_active_us + DEADLINE_LINGER_US;
		return c->t_active_us + (int64_t)cfg->idle_timeout_ms * 1000;
	case CONN_TUNNEL:
		/* one side has sent its FIN: the other has half-close-timeout
		 * of silence to finish (as HAProxy's client-fin/server-fin) */
		if (c->client_eof || c->up_eof)
			return c->t_active_us +
			    (int64_t)cfg->half_close_ms * 1000;
		return c->t_active_us + (int64_t)cfg->idle_timeout_ms * 1000;
	case CONN_SNIFF:
		return deadline_sniff(c);
	case CONN_TLS_DOWN:
		return c->t_state_us + (int64_t)cfg->connect_timeout_ms * 1000;
	case CONN_SOCKS:
		return c->t_state_us + (int64_t)cfg->header_timeout_ms * 1000;
	case CONN_OFFLINE:
		return c->t_active_us + (int64_t)cfg->idle_timeout_ms * 1000;
	case CONN_H2:
		/* streams waiting on the origin wait as an exchange does */
		return c->t_active_us +
		    (int64_t)(c->h2->nstreams > 0 ? cfg->upstream_timeout_ms
						  : cfg->idle_timeout_ms) *
		    1000;
	case CONN_CLOSED:
		break;
	}
	return 0;
}

void
deadline_arm(struct conn *c)
{
	int64_t dl, left;
	struct timeval tv;

	if (c->state == CONN_CLOSED)
		return;
	dl = deadline_of(c);
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

/*
 * An empty evbuffer can still hold the chain a read reserved and found
 * nothing for: an SSL bufferevent reserves 16 KiB per attempt, and keeps
 * it while the connection idles. One byte in and out frees every chain.
 */
static void
deadline_release_chains(struct bufferevent *bev)
{
	struct evbuffer *b = bufferevent_get_input(bev);

	if (evbuffer_get_length(b) == 0 && evbuffer_prepend(b, "", 1) == 0)
		evbuffer_drain(b, 1);
}

/* A connection waiting for its next request holds no read buffers (its
 * own and its SSL object's: OpenSSL keeps a record buffer after the
 * session tickets) and no origin connection of its own. */
static void
deadline_trim_idle(struct conn *c)
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
		deadline_release_chains(c->craw);
	}
	deadline_release_chains(c->cbev);
	if ((ssl = bufferevent_openssl_get_ssl(c->cbev)) != NULL)
		(void)SSL_free_buffers(ssl);
	/* the last heads: kept for nothing now (the next request's head
	 * starts them again) */
	evbuffer_drain(c->h1.raw_head, evbuffer_get_length(c->h1.raw_head));
	head_free(&c->h1.reqh);
	head_free(&c->h1.resph);
	head_init(&c->h1.reqh, c->w->cfg->max_header_bytes);
	head_init(&c->h1.resph, c->w->cfg->max_header_bytes);
	if (c->dial.up_idle != NULL) {
		/*
		 * The origin connection kept for this client goes back to
		 * the worker's pool (upstream-pool-per-host of them per
		 * origin; the rest are closed): a thousand quiet tunnels to
		 * one site need not hold a thousand origin sessions. The
		 * next request takes one from the pool, or resumes.
		 */
		deadline_release_chains(c->dial.up_idle->bev);
		if ((ssl = bufferevent_openssl_get_ssl(c->dial.up_idle->bev)) !=
		    NULL)
			(void)SSL_free_buffers(ssl);
		/* a tunnel keeps its own (one origin connection per client
		 * connection, end to end) */
		if (c->inner == CONN_INNER_NONE) {
			upstream_pool_put(c->dial.up_idle);
			c->dial.up_idle = NULL;
		}
	}
}

/* READ_HEAD's deadline: a head too slow, or a keep-alive too quiet (the
 * first quiet spell only releases the idle buffers). */
static void
deadline_read_head(struct conn *c)
{
	if (!c->h1.in_head && c->h1.head_bytes == 0 && !c->idle_trimmed) {
		deadline_trim_idle(c);
		c->idle_trimmed = 1;
		deadline_arm(c);
	} else if (c->h1.in_head || c->h1.head_bytes > 0)
		exchange_fail(c, 408, "request head not received in time");
	else
		conn_close(c, "idle-timeout", NULL);
}

/* TUNNEL's deadline: half-close-timeout after one FIN, else idle. */
static void
deadline_tunnel(struct conn *c)
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
void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	int64_t dl = deadline_of(c);

	(void)fd;
	(void)what;
	if (dl == 0)
		return;
	if (c->state == CONN_DRAIN && c->end.flush_wait && now_us() < dl) {
		/* not the deadline: the look again conn_linger asked for */
		c->end.flush_wait = 0;
		drain_linger(c);
		return;
	}
	if (now_us() < dl) {
		/* there was activity since the timer was set: wait on */
		deadline_arm(c);
		return;
	}
	switch (c->state) {
	case CONN_READ_HEAD:
		deadline_read_head(c);
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
		drain_timeout(c);
		break;
	case CONN_TUNNEL:
		deadline_tunnel(c);
		break;
	case CONN_H2:
		h2_timeout(c);
		break;
	case CONN_OFFLINE:
	case CONN_CLOSED:
		stream_closed_by(c, "idle-timeout");
		conn_close(c, "idle-timeout", NULL);
		break;
	}
}
