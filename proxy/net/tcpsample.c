/* tcpsample: see tcpsample.h. */
#include "proxy/net/tcpsample.h"

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <linux/tcp.h> /* glibc's tcp_info stops before delivery_rate */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "conf/config.h"
#include "proxy/log.h"
#include "proxy/net/conn_int.h"
#include "proxy/net/upstream.h"
#include "proxy/net/worker.h"
#include "proxy/store/store.h"

struct tcpsample {
	struct conn *c;   /* the connection sampled (which owns this) */
	struct event *ev; /* the interval timer, persistent */
	struct store_tcp_sample *batch; /* TCPSAMPLE_BATCH, lazily */
	size_t n;                       /* samples in batch */
	size_t ticks;                   /* readings taken so far */
	int capped;                     /* a reading was due past the cap */
};

int
tcpsample_read(int fd, int side, int64_t t_us, struct store_tcp_sample *out)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	int64_t flight;

	memset(out, 0, sizeof(*out));
	memset(&ti, 0, sizeof(ti));
	if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == -1)
		return 0;
	out->t_us = t_us;
	out->side = (uint8_t)side;
	out->rtt_us = ti.tcpi_rtt;
	out->rttvar_us = ti.tcpi_rttvar;
	out->snd_cwnd = ti.tcpi_snd_cwnd;
	out->unacked = ti.tcpi_unacked;
	out->retrans = ti.tcpi_retransmits;
	out->total_retrans = ti.tcpi_total_retrans;
	/* Linux's tcp_packets_in_flight(): sent, minus what the peer has
	 * (SACKed) or what is deemed lost, plus what was sent again */
	flight = (int64_t)ti.tcpi_unacked - ti.tcpi_sacked - ti.tcpi_lost +
	    ti.tcpi_retrans;
	out->bytes_in_flight =
	    flight > 0 ? (uint64_t)flight * ti.tcpi_snd_mss : 0;
	/* fields an older kernel does not fill stay 0 (len says so) */
	out->delivery_rate = ti.tcpi_delivery_rate;
	out->bytes_acked = ti.tcpi_bytes_acked;
	out->bytes_received = ti.tcpi_bytes_received;
	return 1;
}

/* Hand the batch to the store. Its samples are a few a second per
 * stream: like stream events, no reason to pause the stream for them
 * (their bytes count in the queue's bound, which pauses the clients). */
static void
tcpsample_flush(struct tcpsample *t)
{
	struct conn *c = t->c;
	struct store_rec *rec;

	if (t->n == 0)
		return;
	if (c->w->store == NULL ||
	    (rec = store_rec_new(STORE_REC_TCP_SAMPLES)) == NULL) {
		t->n = 0;
		return;
	}
	rec->u.tcps.conn_id = c->id;
	rec->u.tcps.n = t->n;
	rec->u.tcps.s = t->batch;
	t->batch = NULL;
	t->n = 0;
	(void)store_submit(c->w->store, rec);
}

/* One sample of fd into the batch (if it can be read). */
static void
tcpsample_one(struct tcpsample *t, int fd, int side, int64_t now)
{
	if (fd < 0)
		return;
	if (t->batch == NULL &&
	    (t->batch = malloc(TCPSAMPLE_BATCH * sizeof(*t->batch))) == NULL)
		return;
	if (tcpsample_read(fd, side, now, &t->batch[t->n]))
		t->n++;
}

/* A reading of both sockets at time now (fd -1: that leg is gone). 0, or
 * -1 when the cap is reached: nothing read, capped set. */
static int
tcpsample_tick(struct tcpsample *t, int client_fd, int server_fd, int64_t now)
{
	if (t->ticks >= t->c->w->cfg->tcp_samples_max) {
		t->capped = 1;
		return -1;
	}
	t->ticks++;
	/* both readings of a tick go in one batch */
	if (t->n + 2 > TCPSAMPLE_BATCH)
		tcpsample_flush(t);
	tcpsample_one(t, client_fd, 0, now);
	tcpsample_one(t, server_fd, 1, now);
	return 0;
}

static int
tcpsample_client_fd(struct conn *c)
{
	return c->cbev != NULL ? bufferevent_getfd(c->craw ? c->craw : c->cbev)
			       : -1;
}

static int
tcpsample_server_fd(struct conn *c)
{
	return c->up != NULL && c->up->bev != NULL
	    ? bufferevent_getfd(c->up->bev)
	    : -1;
}

/* The interval timer (worker loop). */
static void
tcpsample_timercb(evutil_socket_t fd, short what, void *arg)
{
	struct tcpsample *t = arg;
	struct conn *c = t->c;

	(void)fd;
	(void)what;
	if (c->state == CONN_CLOSED ||
	    tcpsample_tick(t, tcpsample_client_fd(c), tcpsample_server_fd(c),
		now_us()) == -1)
		tcpsample_stop(t);
}

int
tcpsample_start(struct conn *c, struct tcpsample **out)
{
	const struct config *cfg = c->w->cfg;
	unsigned ms = cfg->tcp_sample_interval_ms;
	struct timeval tv = {ms / 1000, (long)(ms % 1000) * 1000};
	struct tcpsample *t;

	*out = NULL;
	if (ms == 0 || cfg->tcp_samples_max == 0 || c->w->store == NULL ||
	    !cfg->record_flows)
		return 0;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return -1;
	t->c = c;
	if ((t->ev = event_new(
		 c->w->base, -1, EV_PERSIST, tcpsample_timercb, t)) == NULL ||
	    event_add(t->ev, &tv) == -1) {
		tcpsample_free(t);
		return -1;
	}
	(void)tcpsample_tick(
	    t, tcpsample_client_fd(c), tcpsample_server_fd(c), now_us());
	*out = t;
	return 0;
}

void
tcpsample_stop(struct tcpsample *t)
{
	if (t != NULL && t->ev != NULL)
		event_del(t->ev);
}

int
tcpsample_finish(
    struct tcpsample *t, int client_fd, int server_fd, int64_t t_us)
{
	if (t == NULL)
		return 0;
	tcpsample_stop(t);
	(void)tcpsample_tick(t, client_fd, server_fd, t_us);
	tcpsample_flush(t);
	return t->capped;
}

void
tcpsample_free(struct tcpsample *t)
{
	if (t == NULL)
		return;
	if (t->ev != NULL)
		event_free(t->ev);
	free(t->batch);
	free(t);
}
