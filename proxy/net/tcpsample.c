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

/* A batch starts this small and doubles up to TCPSAMPLE_BATCH: most
 * streams are short, and a long one holds one batch at most. */
#define TCPSAMPLE_FIRST 8

struct tcpsample {
	struct conn *c;   /* the connection sampled (which owns this) */
	struct event *ev; /* the interval timer, persistent */
	struct store_tcp_sample *batch;  /* cap entries, lazily */
	size_t n, cap;                   /* samples in batch, its room */
	size_t ticks;                    /* readings taken (both legs) */
	size_t rows[2];                  /* samples kept per leg */
	struct store_tcp_sample last[2]; /* the last kept per leg */
	int capped; /* a new reading came past tcp-samples-max */
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
	t->cap = 0;
	(void)store_submit(c->w->store, rec);
}

/* 1 if two readings of a leg say the same, their times aside: nothing
 * sent, acknowledged or received, the same RTT and window. */
static int
tcpsample_same(
    const struct store_tcp_sample *a, const struct store_tcp_sample *b)
{
	return a->rtt_us == b->rtt_us && a->rttvar_us == b->rttvar_us &&
	    a->snd_cwnd == b->snd_cwnd && a->unacked == b->unacked &&
	    a->retrans == b->retrans && a->total_retrans == b->total_retrans &&
	    a->bytes_in_flight == b->bytes_in_flight &&
	    a->delivery_rate == b->delivery_rate &&
	    a->bytes_acked == b->bytes_acked &&
	    a->bytes_received == b->bytes_received;
}

/* Room for one more sample: a full batch goes to the store first, a
 * small one grows. 0 / -1 (ENOMEM: this sample is lost). */
static int
tcpsample_room(struct tcpsample *t)
{
	struct store_tcp_sample *b;
	size_t cap;

	if (t->n < t->cap)
		return 0;
	if (t->cap >= TCPSAMPLE_BATCH) {
		tcpsample_flush(t);
		t->cap = 0;
	}
	cap = t->cap == 0 ? TCPSAMPLE_FIRST : t->cap * 2;
	if (cap > TCPSAMPLE_BATCH)
		cap = TCPSAMPLE_BATCH;
	if ((b = realloc(t->batch, cap * sizeof(*b))) == NULL)
		return -1;
	t->batch = b;
	t->cap = cap;
	return 0;
}

/* Read leg side (socket fd, -1: gone) and keep the reading unless it
 * repeats the last one kept: an idle stream costs no rows. Past
 * tcp-samples-max on that leg a new reading is dropped, capped set. */
static void
tcpsample_one(struct tcpsample *t, int fd, int side, int64_t now)
{
	struct store_tcp_sample s;

	if (fd < 0 || !tcpsample_read(fd, side, now, &s))
		return;
	if (t->rows[side] > 0 && tcpsample_same(&s, &t->last[side]))
		return;
	if (t->rows[side] >= t->c->w->cfg->tcp_samples_max) {
		t->capped = 1;
		return;
	}
	if (tcpsample_room(t) == -1)
		return;
	t->batch[t->n++] = s;
	t->last[side] = s;
	t->rows[side]++;
}

/* A reading of both legs at time now (fd -1: that leg is gone). */
static void
tcpsample_tick(struct tcpsample *t, int client_fd, int server_fd, int64_t now)
{
	t->ticks++;
	tcpsample_one(t, client_fd, 0, now);
	tcpsample_one(t, server_fd, 1, now);
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

/* The interval timer (worker loop). It stops for good once every leg
 * still open has its tcp-samples-max rows. */
static void
tcpsample_timercb(evutil_socket_t fd, short what, void *arg)
{
	struct tcpsample *t = arg;
	struct conn *c = t->c;
	size_t max = c->w->cfg->tcp_samples_max;
	int sfd;

	(void)fd;
	(void)what;
	if (c->state == CONN_CLOSED) {
		tcpsample_stop(t);
		return;
	}
	sfd = tcpsample_server_fd(c);
	tcpsample_tick(t, tcpsample_client_fd(c), sfd, now_us());
	if (t->rows[0] >= max && (t->rows[1] >= max || sfd < 0))
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
	tcpsample_tick(
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
	tcpsample_tick(t, client_fd, server_fd, t_us);
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
