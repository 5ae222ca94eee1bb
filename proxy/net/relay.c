/*
 * relay: the byte tunnel (see relay.h).
 */
#include "proxy/net/relay.h"

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
#include "proxy/net/h1.h"
#include "proxy/net/intercept.h"
#include "proxy/net/offline.h"
#include "proxy/net/record.h"
#include "proxy/net/resolve.h"
#include "proxy/net/selfpage.h"
#include "proxy/net/server.h"
#include "proxy/net/stream.h"
#include "proxy/net/ws.h"
#include "proxy/net/upstream.h"
#include "proxy/net/worker.h"
#include "proxy/store/store.h"

/* libevent 2.1's largest single socket read (EVBUFFER_MAX_READ). */
#define RELAY_LIBEVENT_READ 4096
/* The most a TLS record carries. */
#define RELAY_TLS_RECORD 16384
/* Bytes a plain socket is read in at once (see relay_read_more). */
#define RELAY_READ_SLICE 65536

/*
 * libevent 2.1 reads a socket 4096 bytes at a time (EVBUFFER_MAX_READ) and
 * goes back to epoll between reads: a 1 MiB body cost ~256 loop turns and
 * syscalls each way (perf). When a plain socket has data, relay_read_more
 * reads what is there in 64 KiB slices straight into the input buffer, up
 * to the relay limit. EOF and errors are left for libevent's next read.
 */

/*
 * Move n bytes from the front of src to the bufferevent to (c's client or
 * origin side). When nothing is queued there and it is a plain socket,
 * they are written to the socket at once: queued, libevent would arm
 * EV_WRITE, write on the next loop turn and disarm again, two epoll_ctl
 * calls a direction for what the socket takes in one writev. What it does
 * not take (EAGAIN, a short write, an error libevent then reports) is
 * queued as before, behind nothing, so the order holds.
 */
void
relay_send(
    struct conn *c, struct bufferevent *to, struct evbuffer *src, size_t n)
{
	struct evbuffer *out = bufferevent_get_output(to);
	int plain =
	    to == c->cbev ? c->craw == NULL : c->up != NULL && !c->up->tls;
	int w;

	if (n > 0 && plain && evbuffer_get_length(out) == 0) {
		w = evbuffer_write_atmost(
		    src, bufferevent_getfd(to), (ev_ssize_t)n);
		if (w > 0)
			n -= (size_t)w;
	} else if (!plain && n > 0 && n <= RELAY_TLS_RECORD)
		/* OpenSSL's filter writes a record per chain: a small
		 * message in one chain leaves in one record */
		(void)evbuffer_pullup(src, (ev_ssize_t)n);
	if (n > 0)
		evbuffer_remove_buffer(src, out, n);
}

/*
 * Enable what (EV_READ, EV_WRITE) on bev where it is not enabled yet.
 * Enabling EV_WRITE again on a socket bufferevent arms its write event
 * even with nothing to write, and the write callback then disarms it: two
 * epoll_ctl calls for nothing, once per exchange.
 */
void
relay_enable(struct bufferevent *bev, short what)
{
	what &= (short)~bufferevent_get_enabled(bev);
	if (what != 0)
		bufferevent_enable(bev, what);
}

/*
 * Half-close in a tunnel: once a side that sent its FIN has had all its
 * bytes delivered, pass the FIN on (shutdown for writing) and go on
 * relaying the other way; when both ways are done, close. A stream relay
 * must not cut off the answer to a request the client ended with FIN.
 */
void
relay_check_fin(struct conn *c)
{
	if (c->state != CONN_TUNNEL || c->up == NULL)
		return;
	if (c->client_eof && !c->end.fin_to_server &&
	    evbuffer_get_length(bufferevent_get_output(c->up->bev)) == 0) {
		(void)shutdown(bufferevent_getfd(c->up->bev), SHUT_WR);
		c->end.fin_to_server = 1;
	}
	if (c->up_eof && !c->end.fin_to_client &&
	    evbuffer_get_length(bufferevent_get_output(c->cbev)) == 0) {
		(void)shutdown(
		    bufferevent_getfd(c->craw ? c->craw : c->cbev), SHUT_WR);
		c->end.fin_to_client = 1;
	}
	if (c->end.fin_to_server && c->end.fin_to_client)
		conn_close(c, "done", NULL);
}

/* TUNNEL's entry work: relay bytes both ways, untouched, from now on
 * (after a 101, a CONNECT, or bytes llhttp refused inside a tunnel). */
void
relay_start(struct conn *c)
{
	struct evbuffer *cin = bufferevent_get_input(c->cbev);
	struct evbuffer *uin = bufferevent_get_input(c->up->bev);

	if (c->ex.rec != NULL)
		(void)exchange_submit(c);
	/* after a 101 the connection speaks something else; bytes llhttp
	 * refused inside a tunnel are still what they were */
	if (strcmp(c->tot.protocol, "http") == 0 && !c->ex.unparsed)
		c->tot.protocol = "http-upgrade";
	if (stream_start(c, strcmp(c->tot.protocol, "mmtls") == 0) == 0) {
		stream_upstream_connected(c);
		if (stream_sample_start(c) == -1)
			log_warnx("c%lld TCP sampling: out of memory",
			    (long long)c->id);
		stream_on_read(c, STREAM_UP, cin);
		stream_on_read(c, STREAM_DOWN, uin);
	}
	ws_feed_evbuffer(c->ws, c, 0, cin);
	ws_feed_evbuffer(c->ws, c, 1, uin);
	/* whatever already arrived belongs to the tunnel */
	c->tot.bytes_from_client += evbuffer_get_length(cin);
	c->tot.bytes_to_server += evbuffer_get_length(cin);
	c->tot.bytes_from_server += evbuffer_get_length(uin);
	c->tot.bytes_to_client += evbuffer_get_length(uin);
	relay_send(c, c->up->bev, cin, evbuffer_get_length(cin));
	relay_send(c, c->cbev, uin, evbuffer_get_length(uin));
	relay_enable(c->cbev, c->client_eof ? EV_WRITE : EV_READ | EV_WRITE);
	relay_enable(c->up->bev, EV_READ | EV_WRITE);
	/* a client that half-closed while we connected: its FIN follows */
	if (c->client_eof)
		relay_check_fin(c);
}

/*
 * Inside a tunnel the bytes are the app's, and llhttp refusing some of them
 * (a chunk-extension form it does not know, say) is no reason to break the
 * app: the exchange is recorded with why, what was read of an answer head
 * goes on to the client, and the rest of the connection is relayed unread,
 * both ways. Only with an origin connection (CONN_EXCHANGE).
 */
void
relay_unparsed(struct conn *c, const char *why)
{
	size_t n = evbuffer_get_length(c->h1.raw_resp);

	exchange_rec_fail(c, 0, why);
	if (!c->ex.resp_head_sent) {
		c->tot.bytes_to_client += n;
		relay_send(c, c->cbev, c->h1.raw_resp, n);
	}
	c->ex.unparsed = 1;
	conn_enter(c, CONN_TUNNEL);
}

/* Move bytes from one side to the other in a tunnel, with back-pressure. */
void
relay_move(struct conn *c, struct bufferevent *from, struct bufferevent *to,
    uint64_t *counter_in, uint64_t *counter_out)
{
	struct evbuffer *in = bufferevent_get_input(from);
	struct evbuffer *out = bufferevent_get_output(to);
	size_t limit = c->w->cfg->relay_buffer_bytes;

	c->t_active_us = now_us();
	*counter_in += evbuffer_get_length(in);
	*counter_out += evbuffer_get_length(in);
	stream_on_read(c, from == c->cbev ? STREAM_UP : STREAM_DOWN, in);
	ws_feed_evbuffer(c->ws, c, from == c->cbev ? 0 : 1, in);
	relay_send(c, to, in, evbuffer_get_length(in));
	if (evbuffer_get_length(out) >= limit) {
		bufferevent_disable(from, EV_READ);
		bufferevent_setwatermark(to, EV_WRITE, limit / 2, 0);
	}
}

/* Read slices into in until the socket is drained or in holds limit. */
static void
relay_read_slices(struct evbuffer *in, evutil_socket_t fd, size_t limit)
{
	for (int i = 0; i < 16 && evbuffer_get_length(in) < limit; i++) {
		struct evbuffer_iovec v[2];
		struct iovec iov[2];
		int nv = evbuffer_reserve_space(in, RELAY_READ_SLICE, v, 2);
		if (nv <= 0)
			return;
		for (int k = 0; k < nv; k++) {
			iov[k].iov_base = v[k].iov_base;
			iov[k].iov_len = v[k].iov_len;
		}
		ssize_t r = readv(fd, iov, nv);
		if (r <= 0) {
			(void)evbuffer_commit_space(in, NULL, 0);
			return;
		}
		size_t left = (size_t)r, total = 0;
		int used = 0;
		for (int k = 0; k < nv && left > 0; k++, used++) {
			if (v[k].iov_len > left)
				v[k].iov_len = left;
			left -= v[k].iov_len;
			total += v[k].iov_len;
		}
		if (evbuffer_commit_space(in, v, used) == -1)
			return;
		if (total < RELAY_READ_SLICE)
			return; /* the socket is drained */
	}
}

void
relay_read_more(struct conn *c, struct bufferevent *bev)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	evutil_socket_t fd = bufferevent_getfd(bev);

	/* libevent's read took less than its 4 KiB: the socket is drained,
	 * and another read would only cost a syscall to learn EAGAIN */
	if (evbuffer_get_length(in) < RELAY_LIBEVENT_READ)
		return;
	/* a bufferevent's input is frozen at the end against outside
	 * writers; thaw it for our reads, as libevent's own read does */
	if (fd < 0 || evbuffer_unfreeze(in, 0) == -1)
		return;
	relay_read_slices(in, fd, c->w->cfg->relay_buffer_bytes);
	(void)evbuffer_freeze(in, 0);
}

/*
 * The origin's end of a tunnel closed or failed. A FIN is passed on once
 * its bytes are through, and the other way keeps relaying; a failure
 * flushes to the client, then closes.
 */
void
relay_up_event(struct conn *c, short what)
{
	if (what & BEV_EVENT_EOF) {
		stream_closed_by(c, "server-fin");
		c->up_eof = 1;
		bufferevent_disable(c->up->bev, EV_READ);
		deadline_arm(c); /* now half-close-timeout */
		relay_check_fin(c);
		return;
	}
	stream_closed_by(c,
	    EVUTIL_SOCKET_ERROR() == ECONNRESET ? "server-rst"
						: "server-error");
	stream_snap_server(c, bufferevent_getfd(c->up->bev));
	upstream_free(c->up);
	c->up = NULL;
	conn_drain(c, "server-eof", NULL);
}

/* The client is done sending: its FIN is passed on once its bytes are
 * through, and the other way keeps relaying. */
void
relay_client_eof(struct conn *c)
{
	bufferevent_disable(c->cbev, EV_READ);
	deadline_arm(c); /* now half-close-timeout */
	relay_check_fin(c);
}
