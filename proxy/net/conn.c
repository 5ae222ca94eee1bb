/*
 * conn: a client connection's state machine, its one timer, the dispatch
 * of its bufferevents' callbacks, and its one teardown.
 *
 *   accept -> SOCKS (socks.c) ---------------------------> SNIFF
 *          -> transparent (original dst) ----------------> SNIFF
 *          -> READ_HEAD <------------------------------------------+
 *               | head (h1.c) -> exchange.c decides:               |
 *               |   our own page (selfpage.c), server replay ->    |
 *               |   OFFLINE (offline.c), CONNECT -> SNIFF,         |
 *               |   else an origin (dial.c):                       |
 *               v                                                  |
 *             RESOLVE -> CONNECT -> EXCHANGE (h1.c relays, parses  |
 *             (or a kept/pooled      a copy) -- keep-alive --------+
 *              connection)           |  101 / llhttp gave up inside
 *                                    v      a tunnel
 *                                  TUNNEL (relay.c)
 *   SNIFF (intercept.c): TLS to intercept -> TLS_DOWN -> READ_HEAD, or
 *          H2 (h2.c) when the client agreed on h2; plain HTTP ->
 *          READ_HEAD; the h2c preface -> H2; else (or passthrough) ->
 *          TUNNEL
 *   any state -> DRAIN (drain.c: flush, FIN, linger) -> CLOSED
 *   any state -> CLOSED (conn_close: the row, quiesce, deferred free)
 *
 * conn_enter() is the one place the state changes: it logs the move,
 * arms the state's deadline and runs the state's entry work. The pieces
 * (h1, exchange, dial, relay, drain, intercept, socks, offline) do their
 * part and move the connection on through conn_enter(), conn_drain() or
 * conn_close(); they never free it. conn_close() quiesces the connection
 * and its free runs from the worker's reap event, so a caller further up
 * the stack that still holds it reads valid memory in state CLOSED.
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
#include "proxy/net/deadline.h"
#include "proxy/net/dial.h"
#include "proxy/net/drain.h"
#include "proxy/net/exchange.h"
#include "proxy/net/h1.h"
#include "proxy/net/h2.h"
#include "proxy/net/intercept.h"
#include "proxy/net/learned.h"
#include "proxy/net/offline.h"
#include "proxy/net/record.h"
#include "proxy/net/relay.h"
#include "proxy/net/socks.h"
#include "proxy/net/stream.h"
#include "proxy/net/transparent.h"
#include "proxy/net/ws.h"

static const char *const conn_state_names[] = {"read-head", "resolve",
    "connect", "exchange", "tunnel", "drain", "sniff", "tls-down", "socks",
    "offline", "h2", "closed"};

static void conn_quiesce(struct conn *c);

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
	relay_enable(c->cbev, EV_READ | EV_WRITE);
	h1_parse_request(c);
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
	deadline_arm(c);
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
		drain_enter(c);
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
		relay_enable(c->cbev, EV_READ | EV_WRITE);
		break;
	case CONN_H2:
		/* a preface (and more) may be buffered; our SETTINGS go */
		h2_client_read(c);
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

/* ---- the end of a client connection ---- */

/* Finish with the client: flush what is queued, linger, then close. */
void
conn_drain(struct conn *c, const char *reason, const char *err)
{
	c->end.drain_reason = reason;
	free(c->end.drain_error);
	c->end.drain_error = conn_strdup(err);
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
		relay_move(c, bev, c->cbev, &c->tot.bytes_from_server,
		    &c->tot.bytes_to_client);
	else if (c->state == CONN_SNIFF)
		intercept_server_first(c);
	else if (c->state == CONN_H2)
		h2_up_read(c);
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
			relay_enable(c->cbev, EV_READ);
		relay_check_fin(c);
	} else if (c->state == CONN_EXCHANGE)
		h1_feed_request(c);
	else if (c->state == CONN_H2)
		h2_up_write(c);
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
	case CONN_H2:
		h2_up_event(c, what);
		break;
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
	if (c->tot.t_first_byte_us == 0)
		c->tot.t_first_byte_us = c->t_active_us;
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
	case CONN_H2:
		h2_client_read(c);
		break;
	case CONN_TUNNEL:
		relay_move(c, bev, c->up->bev, &c->tot.bytes_from_client,
		    &c->tot.bytes_to_server);
		break;
	case CONN_DRAIN:
		drain_client_read(c);
		break;
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
			drain_linger(c);
		break;
	case CONN_EXCHANGE:
		h1_feed_response(c);
		break;
	case CONN_OFFLINE:
		offline_write(c);
		break;
	case CONN_H2:
		h2_client_write(c);
		break;
	case CONN_TUNNEL:
		bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
		if (c->up != NULL && !c->up_eof)
			relay_enable(c->up->bev, EV_READ);
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
		conn_close(c, c->end.drain_reason, c->end.drain_error);
		return;
	}
	switch (c->state) {
	case CONN_READ_HEAD:
		conn_close(c, "client-eof",
		    c->h1.in_head || c->h1.head_bytes > 0
			? "client closed mid-head"
			: NULL);
		break;
	case CONN_EXCHANGE:
		exchange_client_eof(c);
		break;
	case CONN_OFFLINE:
		/* the answer may still be owed; offline_read sees the EOF */
		offline_read(c);
		break;
	case CONN_TUNNEL:
		relay_client_eof(c);
		break;
	case CONN_SNIFF:
		intercept_client_eof(c);
		break;
	case CONN_H2:
		h2_client_eof(c);
		break;
	case CONN_RESOLVE:
	case CONN_CONNECT:
		if (c->tls.tunnel_raw && !c->tls.tls_pending) {
			/* a stream to relay: its FIN follows its bytes */
			bufferevent_disable(c->cbev, EV_READ);
			break;
		}
		exchange_rec_fail(
		    c, 0, "client closed before the origin answered");
		conn_close(c, "client-eof", "client closed early");
		break;
	default:
		conn_close(c, "client-eof", NULL);
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
	if (c->ex.rec != NULL) {
		exchange_rec_fail(c, 0, err ? err : reason);
		(void)exchange_submit(c);
	}
	h2_close(c, err ? err : reason);
	ws_end(c->ws, c);
	c->ws = NULL;
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

	resolve_cancel(c->dial.dns);
	c->dial.dns = NULL;
	event_del(c->timer);
	stream_quiesce(c);
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
	if (c->dial.up_idle != NULL) {
		if (c->inner == CONN_INNER_NONE)
			upstream_pool_put(c->dial.up_idle);
		else
			upstream_free(c->dial.up_idle);
		c->dial.up_idle = NULL;
	}
}

/* Free a closed connection and everything it owns; from the reap event
 * only, never inside a callback of the connection's own objects. */
static void
conn_free(struct conn *c)
{
	if (c == NULL)
		return;
	h2_free(c);
	upstream_free(c->up);
	dial_forget(c);
	offline_free(c);
	event_free(c->timer);
	bufferevent_free(c->cbev);
	evbuffer_free(c->h1.up_head);
	evbuffer_free(c->h1.down_head);
	evbuffer_free(c->h1.raw_head);
	evbuffer_free(c->h1.raw_resp);
	head_free(&c->h1.reqh);
	head_free(&c->h1.resph);
	url_clear(&c->ex.url);
	free(c->tot.target_host);
	free(c->end.drain_error);
	stream_free(c);
	free(c->tls.tunnel_host);
	free(c->tls.decision_reason);
	free(c->tls.verify_error);
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
	if (c->h1.up_head)
		evbuffer_free(c->h1.up_head);
	if (c->h1.down_head)
		evbuffer_free(c->h1.down_head);
	if (c->h1.raw_head)
		evbuffer_free(c->h1.raw_head);
	if (c->h1.raw_resp)
		evbuffer_free(c->h1.raw_resp);
	head_free(&c->h1.reqh);
	head_free(&c->h1.resph);
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
	c->tot.protocol = "http";
	c->id = conn_new_id(w);
	conn_set_client(c, sa);
	c->tot.t_accept_us = now_us();
	c->dial.dns_elapsed_us = -1;
	head_init(&c->h1.reqh, w->cfg->max_header_bytes);
	head_init(&c->h1.resph, w->cfg->max_header_bytes);
	c->h1.up_head = evbuffer_new();
	c->h1.down_head = evbuffer_new();
	c->h1.raw_head = evbuffer_new();
	c->h1.raw_resp = evbuffer_new();
	c->timer = evtimer_new(w->base, deadline_cb, c);
	if (c->id < 0 || c->h1.up_head == NULL || c->h1.down_head == NULL ||
	    c->h1.raw_head == NULL || c->h1.raw_resp == NULL ||
	    c->timer == NULL ||
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
		relay_enable(c->cbev, EV_READ | EV_WRITE);
		transparent_start(c);
	} else if (c->mode == CONFIG_LISTEN_REVERSE) {
		const struct config_listen *l = &w->cfg->listen[listener];

		relay_enable(c->cbev, EV_READ | EV_WRITE);
		intercept_tunnel(c, l->target_host, l->target_port,
		    INTERCEPT_VIA_TRANSPARENT);
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
		if (c->state == CONN_READ_HEAD && !c->h1.in_head &&
		    c->h1.head_bytes == 0)
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
		relay_enable(c->cbev, EV_READ | EV_WRITE);
		h1_parse_request(c);
		if (store_backlogged_safe(w->store))
			break;
	}
}
