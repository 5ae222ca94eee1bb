/*
 * Unit tests for proxy/net/relay.c, the byte tunnel: what was buffered
 * when the tunnel starts goes across and is counted, bytes move with
 * back-pressure, each side's FIN is passed on only once its bytes are
 * through (and both: closed), an origin failure drains the client, the
 * big-slice reads of a plain socket, and relaying unparsed bytes inside a
 * tunnel.
 *
 * relay.c is included (h2o style). The origin is an upstream whose
 * bufferevent holds one end of a socketpair; the test holds the other.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <sys/time.h>

#include "proxy/net/relay.c"

#include "tests/unit/conn_fixture.h"

struct rfx {
	struct fx *f;
	int origin; /* the test's end of the origin socket */
};

static int
setup(void **state)
{
	struct rfx *r = calloc(1, sizeof(*r));
	int sv[2];

	assert_non_null(r);
	r->f = fx_new();
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
	r->f->c->up = upstream_new(r->f->w, "o.test", 443);
	assert_non_null(r->f->c->up);
	assert_int_equal(bufferevent_setfd(r->f->c->up->bev, sv[1]), 0);
	bufferevent_setcb(r->f->c->up->bev, conn_up_readcb, conn_up_writecb,
	    conn_up_eventcb, r->f->c);
	r->origin = sv[0];
	*state = r;
	return 0;
}

static int
teardown(void **state)
{
	struct rfx *r = *state;

	close(r->origin);
	fx_free(r->f);
	free(r);
	return 0;
}

/* 1 if fd reads EOF within a few turns of the loop. */
static int
sees_eof(struct fx *f, int fd)
{
	char buf[4096];

	for (int i = 0; i < 50; i++) {
		fx_loop(f, 1);
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0)
			return 1;
		if (n < 0)
			usleep(1000);
	}
	return 0;
}

static void
test_start_moves_what_is_buffered(void **state)
{
	struct rfx *r = *state;
	struct conn *c = r->f->c;

	c->state = CONN_TUNNEL;
	fx_input_add(c->cbev, "from-client", 11);
	fx_input_add(c->up->bev, "from-origin!", 12);
	c->ex.rec = store_rec_new(STORE_REC_REQUEST);
	assert_non_null(c->ex.rec);
	relay_start(c);
	/* the exchange that opened the tunnel (a 101) is recorded */
	assert_null(c->ex.rec);
	assert_string_equal(c->tot.protocol, "http-upgrade");
	/* nothing was queued: written to both sockets at once */
	assert_string_equal(fx_peer_text(r->origin), "from-client");
	assert_string_equal(fx_peer_text(r->f->client), "from-origin!");
	assert_int_equal(
	    evbuffer_get_length(bufferevent_get_output(c->cbev)), 0);
	assert_int_equal(c->tot.bytes_from_client, 11);
	assert_int_equal(c->tot.bytes_to_server, 11);
	assert_int_equal(c->tot.bytes_from_server, 12);
	assert_int_equal(c->tot.bytes_to_client, 12);
	assert_true(bufferevent_get_enabled(c->cbev) & EV_READ);
	assert_true(bufferevent_get_enabled(c->up->bev) & EV_READ);
}

static void
test_start_keeps_tunnel_protocol(void **state)
{
	struct rfx *r = *state;
	struct conn *c = r->f->c;

	c->state = CONN_TUNNEL;
	c->tot.protocol = "tunnel";
	relay_start(c);
	assert_string_equal(c->tot.protocol, "tunnel");
}

static void
test_start_after_client_fin(void **state)
{
	struct rfx *r = *state;
	struct conn *c = r->f->c;

	/* the client half-closed while the origin was connecting */
	c->state = CONN_TUNNEL;
	c->client_eof = 1;
	/* as libevent leaves a socket bufferevent that read EOF */
	bufferevent_disable(c->cbev, EV_READ);
	relay_start(c);
	assert_false(bufferevent_get_enabled(c->cbev) & EV_READ);
	assert_true(c->end.fin_to_server);
	assert_true(sees_eof(r->f, r->origin));
	assert_true(fx_live(r->f, c));
}

/*
 * relay_send writes at once only when nothing is queued: bytes behind a
 * queued write stay behind it, and an origin leg over TLS always queues
 * (its bufferevent encrypts).
 */
static void
test_send_keeps_order(void **state)
{
	struct rfx *r = *state;
	struct conn *c = r->f->c;
	struct evbuffer *src = evbuffer_new(), *out;

	assert_non_null(src);
	out = bufferevent_get_output(c->up->bev);
	/* nothing queued: straight to the socket */
	assert_int_equal(evbuffer_add(src, "one", 3), 0);
	relay_send(c, c->up->bev, src, 3);
	assert_int_equal(evbuffer_get_length(src), 0);
	assert_int_equal(evbuffer_get_length(out), 0);
	assert_string_equal(fx_peer_text(r->origin), "one");
	/* something queued: the new bytes queue behind it */
	assert_int_equal(evbuffer_add(out, "two", 3), 0);
	assert_int_equal(evbuffer_add(src, "three", 5), 0);
	relay_send(c, c->up->bev, src, 5);
	assert_string_equal(fx_text(out), "twothree");
	assert_string_equal(fx_peer_text(r->origin), "");
	fx_written(out);
	/* only part of src moves */
	assert_int_equal(evbuffer_add(src, "fourfive", 8), 0);
	relay_send(c, c->up->bev, src, 4);
	assert_string_equal(fx_peer_text(r->origin), "four");
	assert_int_equal(evbuffer_get_length(src), 4);
	/* a TLS origin leg: queued for the bufferevent to encrypt */
	c->up->tls = 1;
	relay_send(c, c->up->bev, src, 4);
	assert_string_equal(fx_text(out), "five");
	assert_string_equal(fx_peer_text(r->origin), "");
	c->up->tls = 0;
	fx_written(out);
	evbuffer_free(src);
}

static void
test_move_and_back_pressure(void **state)
{
	struct rfx *r = *state;
	struct conn *c = r->f->c;
	char big[3000];
	size_t lo, hi;

	r->f->cfg.relay_buffer_bytes = 4096;
	c->state = CONN_TUNNEL;
	bufferevent_enable(c->cbev, EV_READ);
	fx_input_add(c->cbev, "abc", 3);
	relay_move(c, c->cbev, c->up->bev, &c->tot.bytes_from_client,
	    &c->tot.bytes_to_server);
	assert_string_equal(fx_peer_text(r->origin), "abc");
	assert_int_equal(
	    evbuffer_get_length(bufferevent_get_input(c->cbev)), 0);
	assert_int_equal(c->tot.bytes_from_client, 3);
	assert_int_equal(c->tot.bytes_to_server, 3);
	assert_true(bufferevent_get_enabled(c->cbev) & EV_READ);
	/* an origin that does not read: the output queues, passes the
	 * limit, and the client is not read; resume at half (the write
	 * callback) */
	fx_fill_socket(bufferevent_getfd(c->up->bev));
	memset(big, 'z', sizeof(big));
	fx_input_add(c->cbev, big, sizeof(big));
	relay_move(c, c->cbev, c->up->bev, &c->tot.bytes_from_client,
	    &c->tot.bytes_to_server);
	fx_input_add(c->cbev, big, sizeof(big));
	relay_move(c, c->cbev, c->up->bev, &c->tot.bytes_from_client,
	    &c->tot.bytes_to_server);
	assert_false(bufferevent_get_enabled(c->cbev) & EV_READ);
	assert_int_equal(
	    bufferevent_getwatermark(c->up->bev, EV_WRITE, &lo, &hi), 0);
	assert_int_equal(lo, 2048);
	assert_int_equal(c->tot.bytes_to_server, 6003);
}

static void
test_fin_waits_for_bytes(void **state)
{
	struct rfx *r = *state;
	struct conn *c = r->f->c;
	struct evbuffer *up_out = bufferevent_get_output(c->up->bev);

	c->state = CONN_TUNNEL;
	c->client_eof = 1;
	/* bytes still queued for the origin: no FIN yet */
	assert_int_equal(evbuffer_add(up_out, "last", 4), 0);
	relay_client_eof(c);
	assert_false(c->end.fin_to_server);
	assert_false(bufferevent_get_enabled(c->cbev) & EV_READ);
	/* written: now it goes */
	fx_written(up_out);
	relay_check_fin(c);
	assert_true(c->end.fin_to_server);
	assert_true(sees_eof(r->f, r->origin));
	assert_true(fx_live(r->f, c));
	/* the deadline is now the half-close one */
	c->t_active_us = now_us();
	deadline_arm(c);
	struct timeval tv, now;
	assert_true(evtimer_pending(c->timer, &tv));
	gettimeofday(&now, NULL);
	assert_true(tv.tv_sec - now.tv_sec <= 2);
}

static void
test_origin_fin_passed_then_both_close(void **state)
{
	struct rfx *r = *state;
	struct conn *c = r->f->c;

	c->state = CONN_TUNNEL;
	relay_up_event(c, BEV_EVENT_EOF | BEV_EVENT_READING);
	assert_true(c->up_eof);
	assert_true(c->end.fin_to_client);
	assert_true(sees_eof(r->f, r->f->client));
	assert_true(fx_live(r->f, c));
	/* the client's way still relays; its FIN ends the tunnel */
	c->client_eof = 1;
	relay_client_eof(c);
	assert_true(c->end.fin_to_server);
	assert_false(fx_live(r->f, c));
	assert_int_equal(c->state, CONN_CLOSED);
}

static void
test_origin_error_drains(void **state)
{
	struct rfx *r = *state;
	struct conn *c = r->f->c;

	c->state = CONN_TUNNEL;
	relay_up_event(c, BEV_EVENT_ERROR | BEV_EVENT_READING);
	assert_null(c->up);
	assert_int_equal(c->state, CONN_DRAIN);
	assert_string_equal(c->end.drain_reason, "server-eof");
}

static void
test_read_more_in_slices(void **state)
{
	struct rfx *r = *state;
	struct conn *c = r->f->c;
	struct evbuffer *in = bufferevent_get_input(c->up->bev);
	static char data[100000];
	size_t sent = 0;
	ssize_t n;

	/* what libevent's one read left: under 4 KiB, nothing more read */
	memset(data, 'd', sizeof(data));
	n = send(r->origin, data, 5000, MSG_DONTWAIT);
	assert_int_equal(n, 5000);
	fx_input_add(c->up->bev, data, 100);
	relay_read_more(c, c->up->bev);
	assert_int_equal(evbuffer_get_length(in), 100);
	/* a full 4 KiB read: the socket is read out */
	fx_input_add(c->up->bev, data, 4096 - 100);
	while (sent + 5000 < sizeof(data) &&
	    (n = send(r->origin, data, sizeof(data) - 5000 - sent,
		 MSG_DONTWAIT)) > 0)
		sent += (size_t)n;
	relay_read_more(c, c->up->bev);
	assert_int_equal(evbuffer_get_length(in), 4096 + 5000 + sent);
	/* and the input is frozen at the end again, as libevent wants */
	assert_int_equal(evbuffer_add(in, "x", 1), -1);
}

static void
test_read_more_stops_at_limit(void **state)
{
	struct rfx *r = *state;
	struct conn *c = r->f->c;
	struct evbuffer *in = bufferevent_get_input(c->up->bev);
	static char data[4096];
	size_t sent = 0;
	ssize_t n;

	r->f->cfg.relay_buffer_bytes = 4096;
	memset(data, 'd', sizeof(data));
	while ((n = send(r->origin, data, sizeof(data), MSG_DONTWAIT)) > 0)
		sent += (size_t)n;
	fx_input_add(c->up->bev, data, 4096);
	relay_read_more(c, c->up->bev);
	/* already at the limit: not one more read */
	assert_int_equal(evbuffer_get_length(in), 4096);
	assert_true(sent > 0); /* more was there to read */
}

static void
test_unparsed_relays_the_rest(void **state)
{
	struct rfx *r = *state;
	struct conn *c = r->f->c;

	/* inside a tunnel an answer llhttp refused mid-head */
	c->inner = CONN_INNER_HTTPS;
	c->state = CONN_EXCHANGE;
	c->tot.protocol = "http";
	assert_int_equal(
	    evbuffer_add(c->h1.raw_resp, "HTTP/1.1 200 OK\r\nX", 18), 0);
	c->ex.rec = store_rec_new(STORE_REC_REQUEST);
	assert_non_null(c->ex.rec);
	relay_unparsed(c, "bad response from origin: x");
	/* what was read of the head went on; bytes flow unread from now */
	assert_int_equal(c->state, CONN_TUNNEL);
	assert_string_equal(c->tot.protocol, "http");
	assert_string_equal(fx_peer_text(r->f->client), "HTTP/1.1 200 OK\r\nX");
	assert_int_equal(evbuffer_get_length(c->h1.raw_resp), 0);
	assert_int_equal(c->tot.bytes_to_client, 18);
	assert_null(c->ex.rec);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		test_start_moves_what_is_buffered, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_start_keeps_tunnel_protocol, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_start_after_client_fin, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_move_and_back_pressure, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_send_keeps_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_fin_waits_for_bytes, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_origin_fin_passed_then_both_close, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_origin_error_drains, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_read_more_in_slices, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_read_more_stops_at_limit, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_unparsed_relays_the_rest, setup, teardown),
	};

	return cmocka_run_group_tests_name("relay", tests, NULL, NULL);
}
