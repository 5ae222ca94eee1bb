/*
 * Unit tests for proxy/net/conn.c: the connection state machine, driven in
 * process. The client is one end of a socketpair handed to conn_accept();
 * the origin is a thread answering on a loopback socket this test opens.
 * The worker's event loop runs in the test thread, bounded in turns and
 * time. No store: records are dropped, the wire is what is checked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/util.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ca/ca.h"
#include "conf/config.h"
#include "proxy/http/onboard.h"
#include "proxy/log.h"
#include "proxy/net/conn.h"
#include "proxy/net/conn_int.h"
#include "proxy/net/deadline.h"
#include "proxy/net/server.h"
#include "proxy/net/worker.h"

struct origin {
	int lfd;
	unsigned port;
	pthread_t thread;
	const char *response; /* sent once per request head received */
	int nrequests;        /* requests to answer before closing */
	char got[8192];       /* every request head, back to back */
	size_t gotlen;
};

struct fixture {
	struct config cfg;
	struct server srv;
	struct worker *w;
	struct worker *ws[1];
	int client; /* the test's end of the socketpair */
	struct origin origin;
	char hosts[64];
	char home[64]; /* a CA for the proxy's own pages */
	struct ca *ca;
};

/* Blocking origin: read request heads, answer each with o->response. */
static void *
origin_main(void *arg)
{
	struct origin *o = arg;
	int fd = accept(o->lfd, NULL, NULL);
	char buf[4096];
	size_t have = 0;

	if (fd < 0)
		return NULL;
	for (int answered = 0; answered < o->nrequests;) {
		ssize_t n = recv(fd, buf + have, sizeof(buf) - have - 1, 0);
		if (n <= 0)
			break;
		have += (size_t)n;
		buf[have] = '\0';
		char *end;
		while ((end = strstr(buf, "\r\n\r\n")) != NULL) {
			size_t hl = (size_t)(end + 4 - buf);
			if (o->gotlen + hl < sizeof(o->got)) {
				memcpy(o->got + o->gotlen, buf, hl);
				o->gotlen += hl;
				o->got[o->gotlen] = '\0';
			}
			memmove(buf, buf + hl, have - hl + 1);
			have -= hl;
			(void)send(
			    fd, o->response, strlen(o->response), MSG_NOSIGNAL);
			answered++;
		}
	}
	close(fd);
	return NULL;
}

static int
origin_start(struct origin *o, const char *response, int nrequests)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	o->lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (o->lfd < 0 || bind(o->lfd, (struct sockaddr *)&sin, len) ||
	    listen(o->lfd, 4) ||
	    getsockname(o->lfd, (struct sockaddr *)&sin, &len))
		return -1;
	o->port = ntohs(sin.sin_port);
	o->response = response;
	o->nrequests = nrequests;
	return pthread_create(&o->thread, NULL, origin_main, o);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	int sv[2];
	struct sockaddr_in peer;
	char err[128];

	assert_non_null(f);
	evthread_use_pthreads();
	log_set_level(LOG_LEVEL_WARN);
	config_init(&f->cfg);
	/* an empty hosts file and an unused nameserver: never the system's */
	snprintf(f->hosts, sizeof(f->hosts), "/tmp/peephole-test-hosts-%d",
	    (int)getpid());
	FILE *h = fopen(f->hosts, "w");
	assert_non_null(h);
	fclose(h);
	assert_int_equal(
	    config_set(&f->cfg, "hosts-file", f->hosts, err, sizeof(err)), 0);
	assert_int_equal(
	    config_set(&f->cfg, "dns-server", "127.0.0.1:9", err, sizeof(err)),
	    0);
	assert_int_equal(
	    config_set(&f->cfg, "max-header-size", "2K", err, sizeof(err)), 0);
	assert_int_equal(config_parse_listen("127.0.0.1:1", &f->cfg.listen[0],
			     err, sizeof(err)),
	    0);
	f->cfg.nlisten = 1;
	f->srv.cfg = &f->cfg;
	snprintf(f->home, sizeof(f->home), "/tmp/peephole-test-home-XXXXXX");
	assert_non_null(mkdtemp(f->home));
	f->ca = ca_load_or_create(f->home, err, sizeof(err));
	assert_non_null(f->ca);
	f->srv.onboard = onboard_new(f->ca, "127.0.0.1", 1, err, sizeof(err));
	assert_non_null(f->srv.onboard);
	f->w = worker_new(0, &f->cfg, NULL, &f->srv);
	assert_non_null(f->w);
	f->ws[0] = f->w;
	f->srv.workers = f->ws;
	f->srv.nworkers = 1;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	/* as the listener hands sockets over: non-blocking */
	if (evutil_make_socket_nonblocking(sv[1]) == -1)
		abort();
	memset(&peer, 0, sizeof(peer));
	peer.sin_family = AF_INET;
	peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	peer.sin_port = htons(5555);
	assert_int_equal(
	    conn_accept(f->w, sv[1], (struct sockaddr *)&peer, sizeof(peer), 0),
	    0);
	f->client = sv[0];
	f->origin.lfd = -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	close(f->client);
	/* let the conn see the close and free itself */
	for (int i = 0; i < 50 && f->w->live > 0; i++)
		event_base_loop(f->w->base, EVLOOP_NONBLOCK);
	conn_worker_close_all(f->w);
	if (f->origin.lfd >= 0) {
		shutdown(f->origin.lfd, SHUT_RDWR);
		pthread_join(f->origin.thread, NULL);
		close(f->origin.lfd);
	}
	worker_free(f->w);
	config_free(&f->cfg);
	unlink(f->hosts);
	onboard_free(f->srv.onboard);
	ca_free(f->ca);
	{
		char p[128];
		snprintf(p, sizeof(p), "%s/ca.pem", f->home);
		unlink(p);
		snprintf(p, sizeof(p), "%s/ca.key", f->home);
		unlink(p);
		rmdir(f->home);
	}
	free(f);
	return 0;
}

/*
 * Run the loop until the client has read `want` occurrences of "HTTP/1."
 * status lines plus their bodies settle, or EOF, bounded by 5 s. Returns
 * what the client received.
 */
static char *
client_exchange(
    struct fixture *f, const char *send_data, int want, size_t *outlen)
{
	static char got[65536];
	size_t have = 0;
	struct timespec t0, t;

	if (send_data != NULL)
		assert_int_equal(
		    send(f->client, send_data, strlen(send_data), 0),
		    (ssize_t)strlen(send_data));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int turn = 0; turn < 100000; turn++) {
		event_base_loop(f->w->base, EVLOOP_NONBLOCK);
		ssize_t n = recv(f->client, got + have, sizeof(got) - have - 1,
		    MSG_DONTWAIT);
		if (n > 0) {
			have += (size_t)n;
			got[have] = '\0';
		} else if (n == 0)
			break;
		int seen = 0;
		for (char *p = got; (p = strstr(p, "HTTP/1.")) != NULL; p++)
			seen++;
		if (seen >= want && n < 0) {
			/* give a trailing body a few more turns */
			for (int i = 0; i < 20; i++)
				event_base_loop(f->w->base, EVLOOP_NONBLOCK);
			n = recv(f->client, got + have, sizeof(got) - have - 1,
			    MSG_DONTWAIT);
			if (n > 0) {
				have += (size_t)n;
				got[have] = '\0';
			}
			break;
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec > 5)
			break;
		if (n < 0)
			usleep(200);
	}
	*outlen = have;
	return got;
}

static void
test_forward_rewrites_head(void **state)
{
	struct fixture *f = *state;
	char req[512];
	size_t n;

	assert_int_equal(origin_start(&f->origin,
			     "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
			     "Keep-Alive: timeout=5\r\n\r\nhello",
			     1),
	    0);
	snprintf(req, sizeof(req),
	    "GET http://127.0.0.1:%u/a/b?c=d HTTP/1.1\r\nHost: wrong\r\n"
	    "Proxy-Connection: keep-alive\r\nConnection: X-Gone\r\n"
	    "X-Gone: 1\r\nX-Kept: 2\r\n\r\n",
	    f->origin.port);
	char *got = client_exchange(f, req, 1, &n);
	assert_non_null(strstr(got, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(got, "\r\n\r\nhello"));
	assert_null(strstr(got, "Keep-Alive"));
	/* what the origin saw: origin-form, Host from the URL (its name as
	 * the client spelled it), no Proxy-* or Connection-named fields, the
	 * rest byte for byte and in order, and no Via */
	assert_non_null(strstr(f->origin.got, "GET /a/b?c=d HTTP/1.1\r\n"));
	char host[64];
	snprintf(host, sizeof(host), "Host: 127.0.0.1:%u\r\n", f->origin.port);
	assert_non_null(strstr(f->origin.got, host));
	assert_null(strstr(f->origin.got, "wrong"));
	assert_null(strstr(f->origin.got, "Proxy-Connection"));
	assert_null(strstr(f->origin.got, "X-Gone: 1"));
	assert_non_null(
	    strstr(f->origin.got, "\r\nConnection: X-Gone\r\nX-Kept: 2\r\n"));
	assert_null(strstr(f->origin.got, "Via"));
}

static void
test_pipelined_in_order(void **state)
{
	struct fixture *f = *state;
	char req[1024];
	size_t n;

	assert_int_equal(origin_start(&f->origin,
			     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
			     "\r\n3\r\nabc\r\n0\r\n\r\n",
			     3),
	    0);
	snprintf(req, sizeof(req),
	    "GET http://127.0.0.1:%u/1 HTTP/1.1\r\nHost: x\r\n\r\n"
	    "GET http://127.0.0.1:%u/2 HTTP/1.1\r\nHost: x\r\n\r\n"
	    "GET http://127.0.0.1:%u/3 HTTP/1.1\r\nHost: x\r\n\r\n",
	    f->origin.port, f->origin.port, f->origin.port);
	char *got = client_exchange(f, req, 3, &n);
	int count = 0;
	for (char *p = got; (p = strstr(p, "3\r\nabc\r\n0\r\n\r\n")); p++)
		count++;
	assert_int_equal(count, 3);
	char *p1 = strstr(f->origin.got, "GET /1 ");
	char *p2 = strstr(f->origin.got, "GET /2 ");
	char *p3 = strstr(f->origin.got, "GET /3 ");
	assert_non_null(p1);
	assert_non_null(p2);
	assert_non_null(p3);
	assert_true(p1 < p2 && p2 < p3);
}

static void
test_malformed_is_400(void **state)
{
	struct fixture *f = *state;
	size_t n;
	char *got = client_exchange(f,
	    "POST http://127.0.0.1:1/ HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc",
	    1, &n);

	assert_non_null(strstr(got, "HTTP/1.1 400 Bad Request\r\n"));
	assert_non_null(strstr(got, "Connection: close\r\n"));
}

static void
test_head_too_large_is_431(void **state)
{
	struct fixture *f = *state;
	char req[4096];
	size_t n;

	memset(req, 0, sizeof(req));
	strcpy(req, "GET http://127.0.0.1:1/ HTTP/1.1\r\nX-Big: ");
	memset(req + strlen(req), 'a', 3000);
	strcat(req, "\r\n\r\n");
	char *got = client_exchange(f, req, 1, &n);
	assert_non_null(strstr(got, "HTTP/1.1 431 "));
}

static void
test_self_status_page(void **state)
{
	struct fixture *f = *state;
	size_t n;
	char *got =
	    client_exchange(f, "GET / HTTP/1.1\r\nHost: me\r\n\r\n", 1, &n);

	assert_non_null(strstr(got, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(got, "<h1>peephole</h1>"));
}

static void
test_refused_is_502(void **state)
{
	struct fixture *f = *state;
	struct origin *o = &f->origin;
	char req[256];
	size_t n;

	/* a port that was just free: bind, note it, close */
	assert_int_equal(origin_start(o, "", 0), 0);
	shutdown(o->lfd, SHUT_RDWR);
	pthread_join(o->thread, NULL);
	close(o->lfd);
	o->lfd = -1;
	snprintf(req, sizeof(req),
	    "GET http://127.0.0.1:%u/ HTTP/1.1\r\nHost: x\r\n\r\n", o->port);
	char *got = client_exchange(f, req, 1, &n);
	assert_non_null(strstr(got, "HTTP/1.1 502 Bad Gateway\r\n"));
	assert_non_null(strstr(got, "refused"));
}

/*
 * A connection closed further down the stack stays valid (and closed)
 * until the worker's reap event: intercept.c once called conn_enter on a
 * connection a failed bufferevent_enable had just freed (ASan in
 * test-san catches a regression here).
 */
static void
test_close_defers_free(void **state)
{
	struct fixture *f = *state;
	struct conn *c = TAILQ_FIRST(&f->w->conns);

	assert_non_null(c);
	conn_close(c, "error", "closed by the test");
	assert_true(TAILQ_EMPTY(&f->w->conns));
	assert_int_equal(f->w->live, 0);
	/* what the caller up the stack did next */
	conn_enter(c, CONN_TLS_DOWN);
	deadline_arm(c);
	conn_close(c, "error", "closed twice");
	assert_int_equal(c->state, CONN_CLOSED);
	assert_ptr_equal(TAILQ_FIRST(&f->w->reaped), c);
	event_base_loop(f->w->base, EVLOOP_NONBLOCK);
	assert_true(TAILQ_EMPTY(&f->w->reaped));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		test_close_defers_free, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_forward_rewrites_head, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_pipelined_in_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_malformed_is_400, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_head_too_large_is_431, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_self_status_page, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_refused_is_502, setup, teardown),
	};

	return cmocka_run_group_tests_name("conn", tests, NULL, NULL);
}
