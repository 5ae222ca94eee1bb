/* stream: see stream.h. */
#include "proxy/net/stream.h"

#include <event2/buffer.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "conf/config.h"
#include "filters/mmtls.h"
#include "proxy/log.h"
#include "proxy/net/conn_int.h"
#include "proxy/net/tcpsample.h"
#include "proxy/net/worker.h"
#include "proxy/store/store.h"

/* Events travel to the store in batches of this many. */
#define STREAM_BATCH 256

struct stream {
	struct store_stream_event *ev; /* the batch being filled */
	size_t nev;
	size_t total; /* events recorded so far, all batches */
	int capped;   /* stream-events-max reached */
	int mmtls;    /* parse mmTLS record headers */
	struct mmtls_parser mm[2];
	/* counts of earlier record streams (shortlink bodies) on this
	 * connection, added up before their parsers were reset */
	uint64_t mm_records, mm_handshake, mm_early, mm_data, mm_alert;
	int mm_bad;
	enum stream_dir cur_dir; /* for the mmTLS callback */
	int64_t t_up_connected;
	int64_t t_first[2], t_last[2];
	uint64_t reads[2];
	const char *closed_by;
	int has_server_tcpi;
	struct store_tcpinfo server_tcpi;
	struct tcpsample *tcps; /* TCP_INFO timeline, NULL when off */
};

int
stream_start(struct conn *c, int mmtls)
{
	struct stream *s = c->stream;

	if (s == NULL) {
		s = calloc(1, sizeof(*s));
		if (s == NULL)
			return -1;
		c->stream = s;
		mmtls_init(&s->mm[0]);
		mmtls_init(&s->mm[1]);
	}
	s->mmtls = mmtls;
	return 0;
}

int
stream_sample_start(struct conn *c)
{
	if (c->stream == NULL || c->stream->tcps != NULL)
		return 0;
	return tcpsample_start(c, &c->stream->tcps);
}

void
stream_quiesce(struct conn *c)
{
	if (c->stream != NULL)
		tcpsample_stop(c->stream->tcps);
}

/* Hand the filled batch to the store. */
static void
stream_flush(struct conn *c)
{
	struct stream *s = c->stream;
	struct store_rec *rec;

	if (s == NULL || s->nev == 0)
		return;
	if (c->w->store == NULL ||
	    (rec = store_rec_new(STORE_REC_STREAM_EVENTS)) == NULL) {
		s->nev = 0;
		return;
	}
	rec->u.sev.conn_id = c->id;
	rec->u.sev.n = s->nev;
	rec->u.sev.ev = s->ev;
	s->ev = NULL;
	s->nev = 0;
	/* events are few per read; no need to pause the stream for them */
	(void)store_submit(c->w->store, rec);
}

static void
stream_event(
    struct conn *c, enum stream_dir dir, uint32_t bytes, uint8_t mmtls_type)
{
	struct stream *s = c->stream;
	size_t max = c->w->cfg->stream_events_max;

	if (!c->w->cfg->record_flows || s->total >= max) {
		s->capped = s->total >= max && max > 0;
		return;
	}
	if (s->ev == NULL) {
		s->ev = malloc(STREAM_BATCH * sizeof(*s->ev));
		if (s->ev == NULL)
			return;
	}
	s->ev[s->nev].t_us = now_us();
	s->ev[s->nev].dir = (uint8_t)dir;
	s->ev[s->nev].bytes = bytes;
	s->ev[s->nev].mmtls_type = mmtls_type;
	s->nev++;
	s->total++;
	if (s->nev == STREAM_BATCH)
		stream_flush(c);
}

static void
stream_mmtls_cb(const struct mmtls_record *rec, void *arg)
{
	struct conn *c = arg;

	stream_event(c, c->stream->cur_dir, rec->length, rec->type);
}

/* Feed bytes to the direction's mmTLS parser; garbage relabels the
 * stream "mmtls?" and stops parsing (the bytes are relayed regardless). */
static void
stream_mmtls_feed(
    struct conn *c, enum stream_dir dir, const unsigned char *p, size_t len)
{
	struct stream *s = c->stream;

	if (!s->mmtls || s->mm[dir].bad)
		return;
	s->cur_dir = dir;
	if (mmtls_feed(&s->mm[dir], p, len, stream_mmtls_cb, c) == -1) {
		c->tot.protocol = "mmtls?";
		log_debug("c%lld mmTLS parse stopped (%s): not mmTLS after all",
		    (long long)c->id, dir == STREAM_UP ? "up" : "down");
	}
}

void
stream_on_read(struct conn *c, enum stream_dir dir, struct evbuffer *in)
{
	struct stream *s = c->stream;
	size_t n = evbuffer_get_length(in);
	int64_t now;

	if (s == NULL || n == 0)
		return;
	now = now_us();
	if (s->t_first[dir] == 0)
		s->t_first[dir] = now;
	s->t_last[dir] = now;
	s->reads[dir]++;
	stream_event(c, dir, n > UINT32_MAX ? UINT32_MAX : (uint32_t)n, 0);
	if (s->mmtls && !s->mm[dir].bad) {
		struct evbuffer_ptr pos;
		struct evbuffer_iovec v[8];
		int nv;
		/* walk the chains in place: the relay moves them untouched */
		evbuffer_ptr_set(in, &pos, 0, EVBUFFER_PTR_SET);
		while ((nv = evbuffer_peek(in, -1, &pos, v, 8)) > 0) {
			size_t done = 0;
			for (int i = 0; i < nv && i < 8; i++) {
				stream_mmtls_feed(
				    c, dir, v[i].iov_base, v[i].iov_len);
				done += v[i].iov_len;
			}
			if (nv <= 8 ||
			    evbuffer_ptr_set(in, &pos, done, EVBUFFER_PTR_ADD))
				break;
		}
	}
}

int
stream_shortlink_begin(struct conn *c)
{
	struct stream *s;

	if (stream_start(c, 1) == -1)
		return -1;
	s = c->stream;
	for (int d = 0; d < 2; d++) {
		/* each exchange's bodies are new record streams; keep the
		 * connection's totals */
		s->mm_records += s->mm[d].records;
		s->mm_handshake += s->mm[d].n_handshake;
		s->mm_early += s->mm[d].n_early;
		s->mm_data += s->mm[d].n_data;
		s->mm_alert += s->mm[d].n_alert;
		s->mm_bad |= s->mm[d].bad;
		mmtls_init(&s->mm[d]);
	}
	return 0;
}

void
stream_on_body(struct conn *c, enum stream_dir dir, const char *at, size_t len)
{
	if (c->stream == NULL && stream_start(c, 1) == -1)
		return;
	if (c->stream->t_first[dir] == 0)
		c->stream->t_first[dir] = now_us();
	c->stream->t_last[dir] = now_us();
	stream_mmtls_feed(c, dir, (const unsigned char *)at, len);
}

void
stream_upstream_connected(struct conn *c)
{
	if (c->stream != NULL && c->stream->t_up_connected == 0)
		c->stream->t_up_connected = now_us();
}

void
stream_closed_by(struct conn *c, const char *who)
{
	if (c->stream != NULL && c->stream->closed_by == NULL)
		c->stream->closed_by = who;
}

int
stream_tcpinfo(int fd, struct store_tcpinfo *out)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(out, 0, sizeof(*out));
	if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == -1)
		return 0;
	out->rtt_us = ti.tcpi_rtt;
	out->rttvar_us = ti.tcpi_rttvar;
	out->retransmits = ti.tcpi_retransmits;
	out->total_retrans = ti.tcpi_total_retrans;
	out->lost = ti.tcpi_lost;
	out->reordering = ti.tcpi_reordering;
	out->snd_cwnd = ti.tcpi_snd_cwnd;
	out->pmtu = ti.tcpi_pmtu;
	return 1;
}

void
stream_snap_server(struct conn *c, int fd)
{
	struct stream *s = c->stream;

	if (s != NULL && !s->has_server_tcpi)
		s->has_server_tcpi = stream_tcpinfo(fd, &s->server_tcpi);
}

void
stream_finish(
    struct conn *c, struct store_conn *sc, int client_fd, int server_fd)
{
	struct stream *s = c->stream;

	sc->has_tcpinfo_client = stream_tcpinfo(client_fd, &sc->tcpinfo_client);
	if (s == NULL) {
		sc->has_tcpinfo_server =
		    stream_tcpinfo(server_fd, &sc->tcpinfo_server);
		return;
	}
	stream_flush(c);
	sc->tcp_samples_capped =
	    tcpsample_finish(s->tcps, client_fd, server_fd, sc->t_close_us);
	if (server_fd >= 0)
		stream_snap_server(c, server_fd);
	sc->has_tcpinfo_server = s->has_server_tcpi;
	sc->tcpinfo_server = s->server_tcpi;
	sc->t_upstream_connected_us = s->t_up_connected;
	sc->t_first_up_us = s->t_first[STREAM_UP];
	sc->t_last_up_us = s->t_last[STREAM_UP];
	sc->t_first_down_us = s->t_first[STREAM_DOWN];
	sc->t_last_down_us = s->t_last[STREAM_DOWN];
	sc->reads_up = s->reads[STREAM_UP];
	sc->reads_down = s->reads[STREAM_DOWN];
	sc->closed_by = s->closed_by ? strdup(s->closed_by) : NULL;
	sc->events = (int)s->total;
	sc->events_capped = s->capped;
	if (s->mmtls) {
		const struct mmtls_parser *u = &s->mm[0], *d = &s->mm[1];
		sc->mmtls_bad = u->bad || d->bad || s->mm_bad;
		sc->mmtls_records = u->records + d->records + s->mm_records;
		sc->mmtls_handshake =
		    u->n_handshake + d->n_handshake + s->mm_handshake;
		sc->mmtls_early = u->n_early + d->n_early + s->mm_early;
		sc->mmtls_data = u->n_data + d->n_data + s->mm_data;
		sc->mmtls_alert = u->n_alert + d->n_alert + s->mm_alert;
	}
}

void
stream_free(struct conn *c)
{
	if (c->stream == NULL)
		return;
	tcpsample_free(c->stream->tcps);
	free(c->stream->ev);
	free(c->stream);
	c->stream = NULL;
}
