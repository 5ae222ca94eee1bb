/*
 * conn_fixture: one real connection object for the unit tests of the
 * connection engine's pieces (record, h1, deadline, exchange, relay,
 * drain). A worker with no store and no CA; the client is one end of a
 * socketpair handed to conn_accept(), so c->cbev, c->timer and the h1
 * buffers are the ones the engine really uses. The test reaches into c
 * and calls the piece under test directly; the loop only runs when a test
 * asks (fx_loop), bounded in turns.
 *
 * Included by a test after cmocka.h and the .c it tests (h2o style);
 * every helper is static and may go unused.
 */
#ifndef PEEPHOLE_TEST_CONN_FIXTURE_H
#define PEEPHOLE_TEST_CONN_FIXTURE_H

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf/config.h"
#include "proxy/log.h"
#include "proxy/net/conn.h"
#include "proxy/net/conn_int.h"
#include "proxy/net/server.h"
#include "proxy/net/upstream.h"
#include "proxy/net/worker.h"

#define FX_UNUSED __attribute__((unused))

struct fx {
	struct config cfg;
	struct server srv;
	struct worker *w;
	struct worker *ws[1];
	int client; /* the test's end of the socketpair */
	struct conn *c;
	char hosts[64];
};

/* Set up the config (no system resolver, small heads), then accept. */
static FX_UNUSED struct fx *
fx_new_mode(const char *listen_spec)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct sockaddr_in peer;
	char err[128];
	int sv[2];
	FILE *h;

	if (f == NULL)
		abort();
	/* the proxy ignores it (main.c); teardown closes the client first */
	signal(SIGPIPE, SIG_IGN);
	evthread_use_pthreads();
	log_set_level(LOG_LEVEL_WARN);
	config_init(&f->cfg);
	snprintf(f->hosts, sizeof(f->hosts), "/tmp/peephole-fx-hosts-%d",
	    (int)getpid());
	if ((h = fopen(f->hosts, "w")) == NULL)
		abort();
	fclose(h);
	if (config_set(&f->cfg, "hosts-file", f->hosts, err, sizeof(err)) ||
	    config_set(
		&f->cfg, "dns-server", "127.0.0.1:9", err, sizeof(err)) ||
	    config_set(&f->cfg, "max-header-size", "2K", err, sizeof(err)) ||
	    config_parse_listen(
		listen_spec, &f->cfg.listen[0], err, sizeof(err)))
		abort();
	f->cfg.nlisten = 1;
	f->srv.cfg = &f->cfg;
	if ((f->w = worker_new(0, &f->cfg, NULL, &f->srv)) == NULL)
		abort();
	f->ws[0] = f->w;
	f->srv.workers = f->ws;
	f->srv.nworkers = 1;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		abort();
	/* as the listener hands sockets over: non-blocking */
	if (evutil_make_socket_nonblocking(sv[1]) == -1)
		abort();
	memset(&peer, 0, sizeof(peer));
	peer.sin_family = AF_INET;
	peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	peer.sin_port = htons(5555);
	if (conn_accept(
		f->w, sv[1], (struct sockaddr *)&peer, sizeof(peer), 0) == -1)
		abort();
	f->client = sv[0];
	f->c = TAILQ_FIRST(&f->w->conns);
	return f;
}

static FX_UNUSED struct fx *
fx_new(void)
{
	return fx_new_mode("127.0.0.1:1");
}

/* Run the worker's loop a few turns without blocking. */
static FX_UNUSED void
fx_loop(struct fx *f, int turns)
{
	for (int i = 0; i < turns; i++)
		event_base_loop(f->w->base, EVLOOP_NONBLOCK);
}

/* What the client has received so far (NUL-terminated, at most len-1),
 * after a few turns of the loop. */
static FX_UNUSED size_t
fx_client_read(struct fx *f, char *buf, size_t len)
{
	size_t have = 0;

	for (int turn = 0; turn < 50 && have + 1 < len; turn++) {
		fx_loop(f, 1);
		ssize_t n =
		    recv(f->client, buf + have, len - 1 - have, MSG_DONTWAIT);
		if (n > 0)
			have += (size_t)n;
		else if (n == 0)
			break;
	}
	buf[have] = '\0';
	return have;
}

/* 1 if c is still on the worker's live list (not closed). */
static FX_UNUSED int
fx_live(struct fx *f, const struct conn *c)
{
	const struct conn *x;

	TAILQ_FOREACH(x, &f->w->conns, link)
	if (x == c)
		return 1;
	return 0;
}

/* Append to a bufferevent's input as its read would: the end of a
 * bufferevent's input is frozen to everyone else. */
static FX_UNUSED void
fx_input_add(struct bufferevent *bev, const void *s, size_t n)
{
	struct evbuffer *in = bufferevent_get_input(bev);

	assert_int_equal(evbuffer_unfreeze(in, 0), 0);
	assert_int_equal(evbuffer_add(in, s, n), 0);
	assert_int_equal(evbuffer_freeze(in, 0), 0);
}

/* The whole of b as a string (static buffer, for the assertions).
 * Peeked: evbuffer_copyout refuses a bufferevent's output, whose front
 * is frozen. */
static FX_UNUSED const char *
fx_text(struct evbuffer *b)
{
	static char buf[16384];
	struct evbuffer_iovec v[64];
	size_t n = evbuffer_get_length(b), off = 0;
	int nv = evbuffer_peek(b, -1, NULL, v, 64);

	assert_true(n < sizeof(buf));
	assert_true(nv >= 0 && nv <= 64);
	for (int i = 0; i < nv; i++) {
		memcpy(buf + off, v[i].iov_base, v[i].iov_len);
		off += v[i].iov_len;
	}
	assert_int_equal(off, n);
	buf[n] = '\0';
	return buf;
}

/*
 * What the peer at fd has been sent so far (read now, without waiting),
 * as text. relay_send writes to a plain socket at once when nothing is
 * queued, so a test reads the socket rather than the output buffer.
 */
static FX_UNUSED const char *
fx_peer_text(int fd)
{
	static char buf[16384];
	size_t have = 0;
	ssize_t n;

	while (have + 1 < sizeof(buf) &&
	    (n = recv(fd, buf + have, sizeof(buf) - 1 - have, MSG_DONTWAIT)) >
		0)
		have += (size_t)n;
	buf[have] = '\0';
	return buf;
}

/* Fill the socket fd (the proxy's end) until it takes no more: a peer
 * that does not read, so that output queues and back-pressure shows. */
static FX_UNUSED void
fx_fill_socket(int fd)
{
	int small = 4096;
	char junk[4096];

	memset(junk, 'j', sizeof(junk));
	assert_int_equal(
	    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	for (int i = 0; i < 4096; i++)
		if (send(fd, junk, sizeof(junk), MSG_DONTWAIT) < 0)
			return;
	fail_msg("the socket never filled");
}

/* Empty a bufferevent's output as its writes would. */
static FX_UNUSED void
fx_written(struct evbuffer *out)
{
	assert_int_equal(evbuffer_unfreeze(out, 1), 0);
	assert_int_equal(evbuffer_drain(out, evbuffer_get_length(out)), 0);
	assert_int_equal(evbuffer_freeze(out, 1), 0);
}

static FX_UNUSED void
fx_free(struct fx *f)
{
	if (f == NULL)
		return;
	close(f->client);
	fx_loop(f, 5);
	conn_worker_close_all(f->w);
	fx_loop(f, 2);
	/* the worker thread clears its pool as it exits; this one never ran */
	upstream_pool_clear(f->w);
	worker_free(f->w);
	config_free(&f->cfg);
	unlink(f->hosts);
	free(f);
}

#endif
