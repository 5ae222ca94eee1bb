/*
 * Unit tests for proxy/net/drain.c, the end of a client connection: the
 * FIN goes only once the answer is out, the client is then read and its
 * bytes dropped (up to a bound) so it reads our answer instead of a
 * reset, a client that already sent its FIN is closed at once, and what
 * each expiry of the DRAIN deadline does.
 *
 * drain.c is included (h2o style).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "proxy/net/drain.c"

#include "tests/unit/conn_fixture.h"

static int
setup(void **state)
{
	*state = fx_new();
	return 0;
}

static int
teardown(void **state)
{
	fx_free(*state);
	return 0;
}

/* 1 if the client reads EOF (after what) within a few turns. */
static int
client_sees_eof(struct fx *f, const char *what)
{
	char buf[4096];
	size_t have = 0;

	for (int i = 0; i < 50; i++) {
		fx_loop(f, 1);
		ssize_t n = recv(f->client, buf + have, sizeof(buf) - 1 - have,
		    MSG_DONTWAIT);
		if (n == 0) {
			buf[have] = '\0';
			return what == NULL || strcmp(buf, what) == 0;
		}
		if (n > 0)
			have += (size_t)n;
		else
			usleep(1000);
	}
	return 0;
}

static void
test_flushed_lingers_with_fin(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;

	conn_drain(c, "done", NULL);
	assert_int_equal(c->state, CONN_DRAIN);
	assert_true(c->end.lingering);
	assert_true(bufferevent_get_enabled(c->cbev) & EV_READ);
	assert_true(client_sees_eof(f, ""));
	/* still open: reading what the client sends */
	assert_true(fx_live(f, c));
}

static void
test_answer_first_then_fin(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;

	assert_int_equal(
	    evbuffer_add(bufferevent_get_output(c->cbev), "answer", 6), 0);
	conn_drain(c, "error", "why");
	/* the answer is not out yet: no FIN */
	assert_false(c->end.lingering);
	assert_string_equal(c->end.drain_reason, "error");
	assert_string_equal(c->end.drain_error, "why");
	/* the write callback sends it once the answer is out */
	assert_true(client_sees_eof(f, "answer"));
	assert_true(c->end.lingering);
}

static void
test_client_gone_closes(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;

	c->client_eof = 1;
	conn_drain(c, "client-eof", NULL);
	assert_false(fx_live(f, c));
	assert_int_equal(c->state, CONN_CLOSED);
}

static void
test_client_gone_answer_pending(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;

	/* half-closed client: it may still read the answer */
	c->client_eof = 1;
	assert_int_equal(
	    evbuffer_add(bufferevent_get_output(c->cbev), "answer", 6), 0);
	conn_drain(c, "done", NULL);
	assert_true(fx_live(f, c));
	assert_false(c->end.lingering);
}

static void
test_client_read_discarded(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	static char junk[64 * 1024];

	conn_drain(c, "error", NULL);
	fx_input_add(c->cbev, "late upload", 11);
	drain_client_read(c);
	assert_int_equal(
	    evbuffer_get_length(bufferevent_get_input(c->cbev)), 0);
	assert_int_equal(c->end.discarded, 11);
	assert_int_equal(c->tot.bytes_from_client, 11);
	assert_true(fx_live(f, c));
	/* past 1 MiB: enough, closed */
	for (int i = 0; i < 16 && fx_live(f, c); i++) {
		fx_input_add(c->cbev, junk, sizeof(junk));
		drain_client_read(c);
	}
	assert_false(fx_live(f, c));
	assert_true(c->end.discarded > DRAIN_LINGER_BYTES);
	assert_int_equal(c->end.discarded, 11 + 16 * sizeof(junk));
}

static void
test_client_read_kept_for_tunnel_origin(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	struct upstream *up = upstream_new(f->w, "o.test", 80);

	assert_non_null(up);
	c->state = CONN_DRAIN;
	c->up = up;
	fx_input_add(c->cbev, "for the origin", 14);
	drain_client_read(c);
	assert_int_equal(
	    evbuffer_get_length(bufferevent_get_input(c->cbev)), 14);
	assert_int_equal(c->end.discarded, 0);
}

static void
test_timeout_after_linger_closes(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;

	conn_drain(c, "done", NULL);
	assert_true(c->end.lingering);
	drain_timeout(c);
	assert_false(fx_live(f, c));
}

static void
test_timeout_unread_answer_closes(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;

	assert_int_equal(
	    evbuffer_add(bufferevent_get_output(c->cbev), "answer", 6), 0);
	conn_drain(c, "done", NULL);
	assert_false(c->end.lingering);
	drain_timeout(c);
	assert_false(fx_live(f, c));
}

static void
test_timeout_flush_wait_lingers(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;

	/* the look again a TLS flush asked for: now linger */
	c->state = CONN_DRAIN;
	c->end.flush_wait = 1;
	drain_timeout(c);
	assert_false(c->end.flush_wait);
	assert_true(c->end.lingering);
	assert_true(fx_live(f, c));
	/* lingering twice changes nothing */
	drain_linger(c);
	assert_true(c->end.lingering);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		test_flushed_lingers_with_fin, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_answer_first_then_fin, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_client_gone_closes, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_client_gone_answer_pending, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_client_read_discarded, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_client_read_kept_for_tunnel_origin, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_timeout_after_linger_closes, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_timeout_unread_answer_closes, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_timeout_flush_wait_lingers, setup, teardown),
	};

	return cmocka_run_group_tests_name("drain", tests, NULL, NULL);
}
