/* worker: see worker.h. */
#include "proxy/net/worker.h"

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/config.h"
#include "proxy/log.h"
#include "proxy/net/conn.h"
#include "proxy/net/resolve.h"
#include "proxy/net/upstream.h"
#include "proxy/store/store.h"

/* Take every socket the main thread queued and make it a connection. */
static void
worker_acceptcb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct worker_pending *list, *p;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&w->lock);
	list = w->pending;
	w->pending = NULL;
	pthread_mutex_unlock(&w->lock);
	/* the list is newest first; reverse it to accept in order */
	struct worker_pending *rev = NULL;
	while (list != NULL) {
		p = list;
		list = p->next;
		p->next = rev;
		rev = p;
	}
	while ((p = rev) != NULL) {
		rev = p->next;
		if (w->shutting_down)
			close(p->fd);
		else if (conn_accept(w, p->fd, (struct sockaddr *)&p->addr,
			     p->addrlen, p->listener) == -1)
			log_warnx("w%d: cannot set up a connection", w->idx);
		free(p);
	}
}

static void
worker_gracecb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	int live = atomic_load_explicit(&w->live, memory_order_relaxed);

	(void)fd;
	(void)what;
	if (live > 0)
		log_info("w%d: shutdown grace over, closing %d connection(s)",
		    w->idx, live);
	conn_worker_close_all(w);
	event_base_loopexit(w->base, NULL);
}

static void
worker_shutdowncb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	const struct config *cfg = w->cfg;
	struct timeval tv;

	(void)fd;
	(void)what;
	w->shutting_down = 1;
	worker_acceptcb(-1, 0, w); /* closes what was queued */
	upstream_pool_clear(w);
	conn_worker_shutdown(w);
	if (atomic_load_explicit(&w->live, memory_order_relaxed) == 0) {
		event_base_loopexit(w->base, NULL);
		return;
	}
	tv.tv_sec = cfg->shutdown_grace_ms / 1000;
	tv.tv_usec = (cfg->shutdown_grace_ms % 1000) * 1000;
	evtimer_add(w->grace_ev, &tv);
}

/* Closed connections are freed here, outside every callback of theirs. */
static void
worker_reapcb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn_worker_reap(arg);
}

static void
worker_draincb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn_worker_store_drained(arg);
}

void
worker_maybe_exit(struct worker *w)
{
	if (w->shutting_down &&
	    atomic_load_explicit(&w->live, memory_order_relaxed) == 0)
		event_base_loopexit(w->base, NULL);
}

struct worker *
worker_new(
    int idx, const struct config *cfg, struct store *store, struct server *srv)
{
	struct worker *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return NULL;
	w->idx = idx;
	w->cfg = cfg;
	w->store = store;
	w->srv = srv;
	TAILQ_INIT(&w->conns);
	TAILQ_INIT(&w->store_wait);
	TAILQ_INIT(&w->reaped);
	TAILQ_INIT(&w->idle_ups);
	if (pthread_mutex_init(&w->lock, NULL) != 0) {
		free(w);
		return NULL;
	}
	w->base = event_base_new();
	if (w->base == NULL)
		goto fail;
	w->dns = evdns_base_new(w->base, 0);
	w->accept_ev = event_new(w->base, -1, 0, worker_acceptcb, w);
	w->shutdown_ev = event_new(w->base, -1, 0, worker_shutdowncb, w);
	w->drain_ev = event_new(w->base, -1, 0, worker_draincb, w);
	w->grace_ev = evtimer_new(w->base, worker_gracecb, w);
	w->reap_ev = event_new(w->base, -1, 0, worker_reapcb, w);
	w->dns_cache = resolve_cache_new();
	if (w->dns == NULL || w->accept_ev == NULL || w->shutdown_ev == NULL ||
	    w->drain_ev == NULL || w->grace_ev == NULL || w->reap_ev == NULL ||
	    w->dns_cache == NULL)
		goto fail;
	if (resolve_configure(w) == -1)
		goto fail;
	if (store != NULL)
		store_watch_drain(store, w->drain_ev);
	return w;
fail:
	worker_free(w);
	return NULL;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	event_base_dispatch(w->base);
	/* anything left (a loopexit from elsewhere): close it properly */
	conn_worker_close_all(w);
	conn_worker_reap(w);
	upstream_pool_clear(w);
	return NULL;
}

int
worker_start(struct worker *w)
{
	if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
		return -1;
	w->started = 1;
	return 0;
}

void
worker_hand_fd(struct worker *w, int fd, const struct sockaddr *sa,
    socklen_t salen, int listener)
{
	struct worker_pending *p = calloc(1, sizeof(*p));

	if (p == NULL) {
		log_warnx(
		    "w%d: out of memory, dropping a new connection", w->idx);
		close(fd);
		return;
	}
	p->fd = fd;
	if (salen > sizeof(p->addr))
		salen = sizeof(p->addr);
	memcpy(&p->addr, sa, salen);
	p->addrlen = salen;
	p->listener = listener;
	pthread_mutex_lock(&w->lock);
	p->next = w->pending;
	w->pending = p;
	pthread_mutex_unlock(&w->lock);
	event_active(w->accept_ev, EV_READ, 0);
}

void
worker_shutdown(struct worker *w)
{
	event_active(w->shutdown_ev, EV_READ, 0);
}

void
worker_join(struct worker *w)
{
	if (w->started)
		pthread_join(w->thread, NULL);
	w->started = 0;
}

void
worker_free(struct worker *w)
{
	struct worker_pending *p;

	if (w == NULL)
		return;
	worker_join(w);
	conn_worker_reap(w);
	while ((p = w->pending) != NULL) {
		w->pending = p->next;
		close(p->fd);
		free(p);
	}
	if (w->accept_ev)
		event_free(w->accept_ev);
	if (w->shutdown_ev)
		event_free(w->shutdown_ev);
	if (w->drain_ev)
		event_free(w->drain_ev);
	if (w->grace_ev)
		event_free(w->grace_ev);
	if (w->reap_ev)
		event_free(w->reap_ev);
	if (w->dns)
		evdns_base_free(w->dns, 1);
	resolve_cache_free(w->dns_cache);
	if (w->base)
		event_base_free(w->base);
	pthread_mutex_destroy(&w->lock);
	free(w);
}
