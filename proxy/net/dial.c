/*
 * dial: resolve, connect, pool and retry (see dial.h).
 */
#include "proxy/net/dial.h"

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
#include "proxy/net/exchange.h"
#include "proxy/net/h2.h"
#include "proxy/net/h1.h"
#include "proxy/net/intercept.h"
#include "proxy/net/offline.h"
#include "proxy/net/record.h"
#include "proxy/net/relay.h"
#include "proxy/net/resolve.h"
#include "proxy/net/selfpage.h"
#include "proxy/net/server.h"
#include "proxy/net/stream.h"
#include "proxy/net/upstream.h"
#include "proxy/net/worker.h"
#include "proxy/store/store.h"

void
dial_set_nodelay(struct bufferevent *bev)
{
	int one = 1;
	evutil_socket_t fd = bufferevent_getfd(bev);

	if (fd >= 0)
		(void)setsockopt(
		    fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

void
dial_forget(struct conn *c)
{
	free(c->dial.addrs);
	c->dial.addrs = NULL;
	c->dial.addr_idx = 0;
}

/*
 * The origin connection is up (fresh or pooled): it reports to the
 * connection, which moves on. A CONNECT tunnel relays (or, still
 * undecided, lets whoever speaks first decide); a request goes out.
 */
static void
dial_ready(struct conn *c)
{
	dial_forget(c);
	snprintf(c->tot.server_ip, sizeof(c->tot.server_ip), "%s", c->up->ip);
	c->tot.server_port = c->up->ip_port;
	c->up_eof = 0;
	bufferevent_setcb(
	    c->up->bev, conn_up_readcb, conn_up_writecb, conn_up_eventcb, c);
	bufferevent_setwatermark(
	    c->up->bev, EV_READ, 0, c->w->cfg->relay_buffer_bytes);
	/* write what is queued in one writev, not 16 KiB at a time */
	(void)bufferevent_set_max_single_write(
	    c->up->bev, c->w->cfg->relay_buffer_bytes);
	relay_enable(c->up->bev, EV_READ | EV_WRITE);
	relay_enable(c->cbev, EV_READ);
	c->ex.t_sent_us = now_us();
	if (c->tls.h2c_pending) {
		c->tls.h2c_pending = 0;
		h2_start(c);
	} else if (!c->ex.is_connect)
		conn_enter(c, CONN_EXCHANGE);
	else if (c->tls.late_sniff)
		conn_enter(c, CONN_SNIFF);
	else /* the 200 went out at CONNECT time (intercept_connect) */
		conn_enter(c, CONN_TUNNEL);
}

/* Connect to the next address of the resolved list, or fail. */
void
dial_connect_next(struct conn *c, const char *last_err)
{
	const char *host = c->ex.url.host;

	while (
	    c->dial.addrs != NULL && c->dial.addr_idx < c->dial.addrs->naddrs) {
		int i = c->dial.addr_idx++;
		const struct sockaddr *sa =
		    (const struct sockaddr *)&c->dial.addrs->addrs[i];
		upstream_free(c->up);
		c->up = intercept_upstream_new(c, host, c->ex.url.port);
		if (c->up == NULL)
			break;
		upstream_set_peer(c->up, sa);
		bufferevent_setcb(c->up->bev, NULL, NULL, conn_up_eventcb, c);
		c->dial.t_connect_start_us = now_us();
		if (c->state != CONN_CONNECT)
			conn_enter(c, CONN_CONNECT);
		else
			deadline_arm(c);
		if (bufferevent_socket_connect(
			c->up->bev, sa, (int)c->dial.addrs->addrlens[i]) == 0)
			return;
		last_err = evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR());
	}
	upstream_free(c->up);
	c->up = NULL;
	dial_forget(c);
	char why[300];
	snprintf(why, sizeof(why), "cannot connect to %s:%u: %s", host,
	    c->ex.url.port, last_err ? last_err : "no address");
	exchange_fail(c, 502, why);
}

static void
dial_resolved(const struct resolve_result *res, void *arg)
{
	struct conn *c = arg;
	char why[300];

	c->dial.dns = NULL;
	c->dial.dns_elapsed_us = res->from_cache ? 0 : res->elapsed_us;
	if (c->ex.rec != NULL)
		c->ex.rec->u.req.dns_us = c->dial.dns_elapsed_us;
	if (res->error != 0 || res->naddrs == 0) {
		snprintf(why, sizeof(why), "cannot resolve %s: %s",
		    c->ex.url.host, evutil_gai_strerror(res->error));
		exchange_fail(c, 502, why);
		return;
	}
	if (c->inner == CONN_INNER_NONE && !c->ex.is_connect) {
		for (int i = 0; i < res->naddrs; i++)
			if (server_is_self_addr(c->w->srv,
				(const struct sockaddr *)&res->addrs[i])) {
				/* the name is ours: answer, do not loop */
				selfpage_answer(c);
				return;
			}
	}
	record_sightings(c, res);
	/* held only while connecting (1 KiB a connection otherwise) */
	if (c->dial.addrs == NULL &&
	    (c->dial.addrs = malloc(sizeof(*c->dial.addrs))) == NULL) {
		exchange_fail(c, 502, "out of memory connecting");
		return;
	}
	*c->dial.addrs = *res;
	c->dial.addr_idx = 0;
	dial_connect_next(c, NULL);
}

/*
 * Anything from an idle kept origin connection ends it. Inside a tunnel
 * that connection is the client's own: what the origin sent goes on to the
 * client (or, from an h2 origin, waits for the h2 session), and its close
 * closes the client connection too.
 */
static void
dial_idle_readcb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	if (c->inner == CONN_INNER_NONE) {
		upstream_free(c->dial.up_idle);
		c->dial.up_idle = NULL;
		return;
	}
	if (strcmp(c->tls.alpn_server, "h2") == 0) {
		/* an h2 origin speaks first (its SETTINGS): they wait for the
		 * session h2.c sets up once the client's TLS is done */
		bufferevent_disable(bev, EV_READ);
		return;
	}
	c->tot.bytes_from_server += evbuffer_get_length(in);
	c->tot.bytes_to_client += evbuffer_get_length(in);
	evbuffer_add_buffer(bufferevent_get_output(c->cbev), in);
}

static void
dial_idle_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	(void)what;
	if (c->inner == CONN_INNER_NONE) {
		dial_idle_readcb(bev, arg);
		return;
	}
	upstream_free(c->dial.up_idle);
	c->dial.up_idle = NULL;
	conn_drain(c, "server-eof", NULL);
}

/* Keep c->up for this client's next request (see up_idle). */
void
dial_keep(struct conn *c)
{
	if (c->dial.up_idle != NULL)
		upstream_pool_put(c->dial.up_idle);
	c->dial.up_idle = c->up;
	c->up = NULL;
	bufferevent_setcb(
	    c->dial.up_idle->bev, dial_idle_readcb, NULL, dial_idle_eventcb, c);
	bufferevent_setwatermark(c->dial.up_idle->bev, EV_WRITE, 0, 0);
	relay_enable(c->dial.up_idle->bev, EV_READ);
}

/* Get an upstream for the current request: kept, pooled, or resolve +
 * connect. */
void
dial_start(struct conn *c)
{
	if (c->dial.up_idle != NULL &&
	    c->dial.up_idle->port == c->ex.url.port &&
	    c->dial.up_idle->tls == (c->inner == CONN_INNER_HTTPS) &&
	    strcmp(c->dial.up_idle->host, c->ex.url.host) == 0) {
		c->up = c->dial.up_idle;
		c->dial.up_idle = NULL;
	} else if (c->inner != CONN_INNER_NONE) {
		/* a tunnel's first request: its own origin connection, never
		 * one another client used */
		upstream_free(c->dial.up_idle);
		c->dial.up_idle = NULL;
	} else {
		if (c->dial.up_idle != NULL)
			upstream_pool_put(c->dial.up_idle);
		c->dial.up_idle = NULL;
		c->up = upstream_pool_get(c->w, c->ex.url.host, c->ex.url.port,
		    c->inner == CONN_INNER_HTTPS);
	}
	if (c->up != NULL) {
		record_upstream_timings(c);
		/* a pooled TLS origin: its certificate still decides what the
		 * client is shown (and whether it is trusted) */
		if (c->up->tls && intercept_up_ready(c) == -1)
			return;
		dial_ready(c);
		return;
	}
	conn_enter(c, CONN_RESOLVE);
}

/* RESOLVE's entry work: look the origin's name up (dial_resolved). */
void
dial_resolve(struct conn *c)
{
	c->dial.dns = resolve_start(
	    c->w, c->ex.url.host, c->ex.url.port, dial_resolved, c);
	if (c->dial.dns == NULL)
		exchange_fail(c, 502, "out of memory resolving");
}

/*
 * A pooled upstream closed before answering: the origin dropped an idle
 * connection as we reused it. Safe to send again on a fresh one when no
 * byte of a request body went out and nothing came back.
 */
int
dial_retry_fresh(struct conn *c)
{
	if (c->inner != CONN_INNER_NONE)
		return 0; /* a tunnel's origin connection is not replaced */
	if (c->ex.retried || c->ex.rec == NULL ||
	    !c->ex.rec->u.req.upstream_reused ||
	    c->ex.rec->u.req.req_body.total > 0 || c->ex.resp_head_sent ||
	    c->ex.rec->u.req.resp_header_bytes > 0 || !c->ex.req_done)
		return 0;
	c->ex.retried = 1;
	upstream_free(c->up);
	c->up = NULL;
	c->ex.rec->u.req.upstream_reused = 0;
	if (h1_build_up_head(c) == -1)
		return 0;
	conn_enter(c, CONN_RESOLVE);
	return 1;
}

/*
 * What the origin connection's event callback saw in CONN_CONNECT: the
 * connect (and, for an intercepted tunnel, the origin TLS handshake)
 * finished, or failed and the next address is tried.
 */
void
dial_connect_event(struct conn *c, short what)
{
	struct bufferevent *bev = c->up->bev;
	char why[300];

	if (what & BEV_EVENT_CONNECTED) {
		int64_t t = now_us();
		dial_forget(c); /* connected: the other addresses are moot */
		c->up->dns_us = c->dial.dns_elapsed_us;
		c->up->connect_us = t - c->dial.t_connect_start_us;
		if (c->up->tls && c->up->t_tls_start_us > 0)
			c->up->tls_us = t - c->up->t_tls_start_us;
		record_upstream_timings(c);
		dial_set_nodelay(c->up->bev);
		if (c->up->tls && intercept_up_ready(c) == -1)
			return;
		dial_ready(c);
		return;
	}
	int serr = EVUTIL_SOCKET_ERROR();
	int tcp_failed = serr == ECONNREFUSED || serr == ETIMEDOUT ||
	    serr == EHOSTUNREACH || serr == ENETUNREACH || serr == ECONNRESET;
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
			dial_connect_next(c, why);
			return;
		}
	}
	while (c->up->tls && bufferevent_get_openssl_error(bev) != 0)
		;
	dial_connect_next(c, evutil_socket_error_to_string(serr));
}

/* RESOLVE's or CONNECT's deadline: a slow address gives way to the next;
 * after the last, the client is told 504. */
void
dial_timeout(struct conn *c)
{
	if (c->state == CONN_RESOLVE) {
		resolve_cancel(c->dial.dns);
		c->dial.dns = NULL;
		exchange_fail(c, 504, "name resolution timed out");
		return;
	}
	if (c->dial.addrs != NULL && c->dial.addr_idx < c->dial.addrs->naddrs) {
		dial_connect_next(c, "connect timed out");
		return;
	}
	upstream_free(c->up);
	c->up = NULL;
	exchange_fail(c, 504, "connecting to the origin timed out");
}
