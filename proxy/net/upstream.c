/* upstream: see upstream.h. */
#include "proxy/net/upstream.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/config.h"
#include "proxy/log.h"
#include "proxy/net/worker.h"

struct upstream *
upstream_new(struct worker *w, const char *host, unsigned port)
{
	struct upstream *u = calloc(1, sizeof(*u));

	if (u == NULL)
		return NULL;
	u->w = w;
	snprintf(u->host, sizeof(u->host), "%s", host);
	u->port = port;
	u->dns_us = u->connect_us = u->tls_us = -1;
	u->bev = bufferevent_socket_new(w->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (u->bev == NULL) {
		free(u);
		return NULL;
	}
	return u;
}

/* The first handshake message marks the end of the TCP connect: what
 * comes after is TLS (HAR's "ssl" timing). Later handshake messages (TLS
 * 1.3 tickets) leave the mark alone. */
static void
upstream_tls_infocb(const SSL *ssl, int where, int ret)
{
	struct upstream *u = SSL_get_app_data(ssl);

	(void)ret;
	if ((where & SSL_CB_HANDSHAKE_START) && u != NULL &&
	    u->t_tls_start_us == 0)
		u->t_tls_start_us = now_us();
}

struct upstream *
upstream_new_tls(
    struct worker *w, const char *host, unsigned port, struct ssl_st *ssl)
{
	struct upstream *u = calloc(1, sizeof(*u));

	if (u == NULL)
		return NULL;
	u->w = w;
	snprintf(u->host, sizeof(u->host), "%s", host);
	u->port = port;
	u->tls = 1;
	u->dns_us = u->connect_us = u->tls_us = -1;
	/* origins often close without close_notify; OpenSSL 3 makes that an
	 * error unless told to take it as the end it is */
	SSL_set_options(ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_set_app_data(ssl, u);
	SSL_set_info_callback(ssl, upstream_tls_infocb);
	/* with CLOSE_ON_FREE the bufferevent frees the SSL and the socket */
	u->bev = bufferevent_openssl_socket_new(w->base, -1, ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (u->bev == NULL) {
		free(u);
		return NULL;
	}
	/* origins often close without close_notify: that is an EOF here */
	bufferevent_openssl_set_allow_dirty_shutdown(u->bev, 1);
	return u;
}

void
upstream_free(struct upstream *u)
{
	SSL *ssl;

	if (u == NULL)
		return;
	if (u->idle_ev != NULL)
		event_free(u->idle_ev);
	if (u->tls && u->bev != NULL &&
	    (ssl = bufferevent_openssl_get_ssl(u->bev)) != NULL &&
	    SSL_is_init_finished(ssl)) {
		/*
		 * close_notify, best effort: OpenSSL marks the session of a
		 * connection freed without one not resumable, and a tunnel's
		 * origin connection ends with its client's, so the next
		 * tunnel to this origin would pay a full handshake.
		 */
		(void)SSL_shutdown(ssl);
		ERR_clear_error();
	}
	if (u->bev != NULL)
		bufferevent_free(u->bev);
	free(u);
}

void
upstream_set_peer(struct upstream *u, const struct sockaddr *sa)
{
	const void *src;

	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;
		src = &s6->sin6_addr;
		u->ip_port = ntohs(s6->sin6_port);
	} else {
		const struct sockaddr_in *s4 = (const void *)sa;
		src = &s4->sin_addr;
		u->ip_port = ntohs(s4->sin_port);
	}
	if (inet_ntop(sa->sa_family, src, u->ip, sizeof(u->ip)) == NULL)
		u->ip[0] = '\0';
}

static void
upstream_pool_remove(struct upstream *u)
{
	TAILQ_REMOVE(&u->w->idle_ups, u, link);
	u->w->nidle_ups--;
	event_del(u->idle_ev);
}

/* Anything from an idle origin — bytes, EOF, error — ends the connection:
 * there is no request it could be answering. */
static void
upstream_idle_readcb(struct bufferevent *bev, void *arg)
{
	struct upstream *u = arg;

	(void)bev;
	upstream_pool_remove(u);
	upstream_free(u);
}

static void
upstream_idle_eventcb(struct bufferevent *bev, short what, void *arg)
{
	(void)what;
	upstream_idle_readcb(bev, arg);
}

static void
upstream_idle_timeoutcb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	upstream_idle_readcb(NULL, arg);
}

struct upstream *
upstream_pool_get(struct worker *w, const char *host, unsigned port, int tls)
{
	struct upstream *u;

	/* newest first: the least likely to have been closed by the origin */
	for (u = TAILQ_LAST(&w->idle_ups, upstream_list); u != NULL;
	     u = TAILQ_PREV(u, upstream_list, link)) {
		if (u->port == port && u->tls == tls &&
		    strcmp(u->host, host) == 0) {
			upstream_pool_remove(u);
			bufferevent_setcb(u->bev, NULL, NULL, NULL, NULL);
			return u;
		}
	}
	return NULL;
}

void
upstream_pool_put(struct upstream *u)
{
	struct worker *w = u->w;
	const struct config *cfg = w->cfg;
	struct timeval tv;
	int same = 0;
	struct upstream *o, *oldest = NULL;

	if (w->shutting_down || cfg->upstream_pool_per_host == 0 ||
	    evbuffer_get_length(bufferevent_get_input(u->bev)) > 0)
		goto drop;
	TAILQ_FOREACH(o, &w->idle_ups, link)
	{
		if (o->port == u->port && o->tls == u->tls &&
		    strcmp(o->host, u->host) == 0) {
			if (oldest == NULL)
				oldest = o;
			same++;
		}
	}
	if (same >= (int)cfg->upstream_pool_per_host && oldest != NULL) {
		upstream_pool_remove(oldest);
		upstream_free(oldest);
	}
	if (u->idle_ev == NULL) {
		u->idle_ev = evtimer_new(w->base, upstream_idle_timeoutcb, u);
		if (u->idle_ev == NULL)
			goto drop;
	}
	tv.tv_sec = cfg->upstream_idle_ms / 1000;
	tv.tv_usec = (cfg->upstream_idle_ms % 1000) * 1000;
	evtimer_add(u->idle_ev, &tv);
	bufferevent_setcb(
	    u->bev, upstream_idle_readcb, NULL, upstream_idle_eventcb, u);
	bufferevent_set_timeouts(u->bev, NULL, NULL);
	bufferevent_setwatermark(u->bev, EV_READ | EV_WRITE, 0, 0);
	bufferevent_enable(u->bev, EV_READ);
	TAILQ_INSERT_TAIL(&w->idle_ups, u, link);
	w->nidle_ups++;
	return;
drop:
	upstream_free(u);
}

void
upstream_pool_clear(struct worker *w)
{
	struct upstream *u;

	while ((u = TAILQ_FIRST(&w->idle_ups)) != NULL) {
		upstream_pool_remove(u);
		upstream_free(u);
	}
}
