/*
 * Unit tests for proxy/net/deadline.c: the deadline of every state from
 * the configured timeouts (READ_HEAD idle, trimming and mid-head;
 * EXCHANGE before and after the request is done; TUNNEL after a FIN;
 * SNIFF early, trickling and late; DRAIN lingering), the timer it arms,
 * and what happens when each passes (idle buffers released first, then
 * closed; 408 mid-head; 504 waiting on the origin; activity moves the
 * deadline on).
 *
 * deadline.c is included (h2o style) for deadline_of and the helpers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sys/time.h>

#include "proxy/net/deadline.c"

#include "tests/unit/conn_fixture.h"

#define MS 1000LL

/* Times the tests put on the connection, far from each other. */
#define T_STATE 1000000000LL
#define T_ACTIVE 2000000000LL
#define T_CONNECT 3000000000LL

static int
setup(void **state)
{
	struct fx *f = fx_new();
	struct config *cfg = &f->cfg;

	/* every timeout different, so a wrong one shows */
	cfg->header_timeout_ms = 30001;
	cfg->idle_timeout_ms = 60002;
	cfg->upstream_timeout_ms = 45003;
	cfg->connect_timeout_ms = 10004;
	cfg->dns_timeout_ms = 5005;
	cfg->sniff_timeout_ms = 306;
	cfg->half_close_ms = 1007;
	f->c->t_state_us = T_STATE;
	f->c->t_active_us = T_ACTIVE;
	f->c->dial.t_connect_start_us = T_CONNECT;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	fx_free(*state);
	return 0;
}

static void
test_read_head_idle(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;

	c->state = CONN_READ_HEAD;
	/* between requests: first the trim of the idle buffers */
	assert_false(c->idle_trimmed);
	assert_int_equal(deadline_of(c), T_ACTIVE + DEADLINE_IDLE_TRIM_US);
	/* trimmed: the keep-alive idle timeout */
	c->idle_trimmed = 1;
	assert_int_equal(deadline_of(c), T_ACTIVE + 60002 * MS);
	/* an idle timeout shorter than the trim delay: no trim first */
	c->idle_trimmed = 0;
	f->cfg.idle_timeout_ms = 200;
	assert_int_equal(deadline_of(c), T_ACTIVE + 200 * MS);
}

static void
test_read_head_in_head(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;

	c->state = CONN_READ_HEAD;
	/* a head begun: header-timeout from its first byte, however
	 * recent the last one */
	c->h1.in_head = 1;
	assert_int_equal(deadline_of(c), T_STATE + 30001 * MS);
	c->h1.in_head = 0;
	c->h1.head_bytes = 3;
	assert_int_equal(deadline_of(c), T_STATE + 30001 * MS);
	c->idle_trimmed = 1;
	assert_int_equal(deadline_of(c), T_STATE + 30001 * MS);
}

static void
test_resolve_and_connect(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;

	c->state = CONN_RESOLVE;
	/* the backstop behind evdns' own timeout and retries */
	assert_int_equal(deadline_of(c), T_STATE + 5005 * 3000LL + 1000000);
	c->state = CONN_CONNECT;
	/* from the connect's start: a second address gets its own */
	assert_int_equal(deadline_of(c), T_CONNECT + 10004 * MS);
}

static void
test_exchange(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;

	c->state = CONN_EXCHANGE;
	/* the client still sending its body: idle */
	c->ex.req_done = 0;
	assert_int_equal(deadline_of(c), T_ACTIVE + 60002 * MS);
	/* waiting on the origin: upstream-timeout */
	c->ex.req_done = 1;
	assert_int_equal(deadline_of(c), T_ACTIVE + 45003 * MS);
	c->ex.resp_head_sent = 1;
	assert_int_equal(deadline_of(c), T_ACTIVE + 45003 * MS);
}

static void
test_tunnel(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;

	c->state = CONN_TUNNEL;
	assert_int_equal(deadline_of(c), T_ACTIVE + 60002 * MS);
	c->client_eof = 1;
	assert_int_equal(deadline_of(c), T_ACTIVE + 1007 * MS);
	c->client_eof = 0;
	c->up_eof = 1;
	assert_int_equal(deadline_of(c), T_ACTIVE + 1007 * MS);
	c->up_eof = 0;
}

static void
test_drain(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;

	c->state = CONN_DRAIN;
	/* the answer not out yet: the client has idle-timeout to read it */
	assert_int_equal(deadline_of(c), T_ACTIVE + 60002 * MS);
	/* FIN sent: the linger, whatever the config */
	c->end.lingering = 1;
	assert_int_equal(deadline_of(c), T_ACTIVE + DEADLINE_LINGER_US);
	assert_int_equal(DEADLINE_LINGER_US, 2000000);
	c->end.lingering = 0;
}

static void
test_sniff(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;

	c->state = CONN_SNIFF;
	/* nothing from the client yet: sniff-timeout from the start */
	assert_int_equal(deadline_of(c), T_STATE + 306 * MS);
	/* a first byte seen but none buffered: still from the start */
	c->tot.t_first_byte_us = T_STATE + 1;
	assert_int_equal(deadline_of(c), T_STATE + 306 * MS);
	/* bytes trickling in: sniff-timeout after the last one ... */
	fx_input_add(c->cbev, "\x16\x03", 2);
	c->t_active_us = T_STATE + 1000 * MS;
	assert_int_equal(deadline_of(c), T_STATE + 1000 * MS + 306 * MS);
	/* ... within header-timeout from the start */
	c->t_active_us = T_STATE + 30001 * MS;
	assert_int_equal(deadline_of(c), T_STATE + 30001 * MS);
	c->t_active_us = T_STATE + 30001 * MS - 306 * MS - 1;
	assert_int_equal(deadline_of(c), T_STATE + 30001 * MS - 1);
	/* late: whoever speaks first, within idle */
	c->t_active_us = T_ACTIVE;
	c->tls.late_sniff = 1;
	assert_int_equal(deadline_of(c), T_ACTIVE + 60002 * MS);
	c->tls.late_sniff = 0;
	evbuffer_drain(bufferevent_get_input(c->cbev), 2);
}

static void
test_other_states(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;

	c->state = CONN_TLS_DOWN;
	assert_int_equal(deadline_of(c), T_STATE + 10004 * MS);
	c->state = CONN_SOCKS;
	assert_int_equal(deadline_of(c), T_STATE + 30001 * MS);
	c->state = CONN_OFFLINE;
	assert_int_equal(deadline_of(c), T_ACTIVE + 60002 * MS);
	c->state = CONN_CLOSED;
	assert_int_equal(deadline_of(c), 0);
	c->state = CONN_READ_HEAD;
}

/* Seconds left on c's timer, or -1 if it is not pending. */
static double
timer_left(const struct conn *c)
{
	struct timeval tv, now;

	if (!evtimer_pending(c->timer, &tv))
		return -1;
	gettimeofday(&now, NULL);
	return (double)(tv.tv_sec - now.tv_sec) +
	    (double)(tv.tv_usec - now.tv_usec) / 1e6;
}

static void
test_arm(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	double left;

	c->state = CONN_TUNNEL;
	c->t_active_us = now_us();
	deadline_arm(c);
	left = timer_left(c);
	assert_true(left > 59.0 && left <= 60.1);
	/* a passed deadline fires at once (1 ms), not never */
	c->t_active_us = now_us() - 100 * 1000000LL;
	deadline_arm(c);
	left = timer_left(c);
	assert_true(left >= 0.0 && left < 0.5);
	/* closed: nothing armed, nothing changed */
	event_del(c->timer);
	c->state = CONN_CLOSED;
	deadline_arm(c);
	assert_true(timer_left(c) < 0);
	c->state = CONN_READ_HEAD;
}

static void
test_cb_activity_moves_the_deadline(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;

	/* the timer fired for an old deadline; there was activity since */
	c->state = CONN_TUNNEL;
	c->t_active_us = now_us();
	deadline_cb(-1, EV_TIMEOUT, c);
	assert_true(fx_live(f, c));
	assert_int_equal(c->state, CONN_TUNNEL);
	assert_true(timer_left(c) > 59.0);
}

static void
test_cb_read_head_trims_then_closes(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	struct upstream *up = upstream_new(f->w, "a.test", 80);

	assert_non_null(up);
	c->state = CONN_READ_HEAD;
	c->dial.up_idle = up;
	c->t_active_us = now_us() - DEADLINE_IDLE_TRIM_US - 1;
	/* the first quiet spell: buffers released, origin to the pool */
	deadline_cb(-1, EV_TIMEOUT, c);
	assert_true(fx_live(f, c));
	assert_true(c->idle_trimmed);
	assert_null(c->dial.up_idle);
	assert_int_equal(f->w->nidle_ups, 1);
	assert_ptr_equal(TAILQ_FIRST(&f->w->idle_ups), up);
	/* re-armed for the idle timeout proper */
	assert_true(timer_left(c) > 59.0);
	/* idle-timeout passes: closed */
	c->t_active_us = now_us() - 60003 * MS;
	deadline_cb(-1, EV_TIMEOUT, c);
	assert_false(fx_live(f, c));
	assert_int_equal(c->state, CONN_CLOSED);
}

static void
test_cb_trim_keeps_tunnel_origin(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	struct upstream *up = upstream_new(f->w, "a.test", 443);

	assert_non_null(up);
	/* inside a tunnel the origin connection is this client's alone */
	c->inner = CONN_INNER_HTTPS;
	c->state = CONN_READ_HEAD;
	c->dial.up_idle = up;
	c->t_active_us = now_us() - DEADLINE_IDLE_TRIM_US - 1;
	deadline_cb(-1, EV_TIMEOUT, c);
	assert_true(c->idle_trimmed);
	assert_ptr_equal(c->dial.up_idle, up);
	assert_int_equal(f->w->nidle_ups, 0);
}

static void
test_cb_head_too_slow_is_408(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	char got[2048];

	c->state = CONN_READ_HEAD;
	c->h1.in_head = 1;
	c->h1.head_bytes = 5;
	c->t_state_us = now_us() - 30002 * MS;
	deadline_cb(-1, EV_TIMEOUT, c);
	assert_int_equal(c->state, CONN_DRAIN);
	fx_client_read(f, got, sizeof(got));
	assert_non_null(strstr(got, "HTTP/1.1 408 Request Timeout\r\n"));
	assert_non_null(strstr(got, "request head not received in time"));
}

static void
test_cb_origin_silent_is_504(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	char got[2048];

	c->state = CONN_EXCHANGE;
	c->ex.req_done = 1;
	c->t_active_us = now_us() - 45004 * MS;
	deadline_cb(-1, EV_TIMEOUT, c);
	assert_int_equal(c->state, CONN_DRAIN);
	fx_client_read(f, got, sizeof(got));
	assert_non_null(strstr(got, "HTTP/1.1 504 Gateway Timeout\r\n"));
}

static void
test_cb_tunnel_half_close(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;

	c->state = CONN_TUNNEL;
	c->up_eof = 1;
	/* within half-close-timeout: waits on */
	c->t_active_us = now_us() - 500 * MS;
	deadline_cb(-1, EV_TIMEOUT, c);
	assert_true(fx_live(f, c));
	/* past it: closed, long before idle-timeout */
	c->t_active_us = now_us() - 1008 * MS;
	deadline_cb(-1, EV_TIMEOUT, c);
	assert_false(fx_live(f, c));
}

static void
test_cb_tls_down_closes(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;

	c->state = CONN_TLS_DOWN;
	c->t_state_us = now_us() - 10005 * MS;
	deadline_cb(-1, EV_TIMEOUT, c);
	assert_false(fx_live(f, c));
	assert_int_equal(c->state, CONN_CLOSED);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		test_read_head_idle, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_read_head_in_head, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_resolve_and_connect, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_exchange, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tunnel, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_drain, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sniff, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_other_states, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_arm, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_cb_activity_moves_the_deadline, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_cb_read_head_trims_then_closes, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_cb_trim_keeps_tunnel_origin, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_cb_head_too_slow_is_408, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_cb_origin_silent_is_504, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_cb_tunnel_half_close, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_cb_tls_down_closes, setup, teardown),
	};

	return cmocka_run_group_tests_name("deadline", tests, NULL, NULL);
}
