/*
 * replay_fields: what a replay sends in place of the logged head.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "proxy/cli/replay.h"

static const char logged[] = "Host: api.example.com\r\n"
			     "User-Agent: App/2\r\n"
			     "Connection: keep-alive, X-Hop\r\n"
			     "X-Hop: drop me\r\n"
			     "Keep-Alive: timeout=5\r\n"
			     "Proxy-Connection: keep-alive\r\n"
			     "Proxy-Authorization: Basic Zm9vOmJhcg==\r\n"
			     "Transfer-Encoding: chunked\r\n"
			     "Content-Length: 99\r\n"
			     "Expect: 100-continue\r\n"
			     "Cookie: a=1\r\n"
			     "X-Trace: one\r\n"
			     "x-trace: two\r\n";

static void
test_hop_by_hop_and_framing_go(void **state)
{
	char *f = replay_fields(
	    logged, NULL, 0, NULL, 0, "api.example.com", "POST", 12);

	(void)state;
	assert_non_null(f);
	assert_string_equal(f,
	    "Host: api.example.com\r\n"
	    "User-Agent: App/2\r\n"
	    "Cookie: a=1\r\n"
	    "X-Trace: one\r\n"
	    "x-trace: two\r\n"
	    "Content-Length: 12\r\n"
	    "Connection: close\r\n");
	free(f);
}

static void
test_set_and_remove(void **state)
{
	const char *set[] = {"X-Trace: replayed", "Authorization: Bearer t"};
	const char *rm[] = {"cookie", "HOST"};
	char *f =
	    replay_fields(logged, set, 2, rm, 2, "api.example.com", "GET", 0);

	(void)state;
	assert_non_null(f);
	/* both x-trace lines replaced by one; removing Host means none */
	assert_string_equal(f,
	    "User-Agent: App/2\r\n"
	    "X-Trace: replayed\r\n"
	    "Authorization: Bearer t\r\n"
	    "Connection: close\r\n");
	free(f);
}

static void
test_host_added_and_empty_posts_framed(void **state)
{
	char *f = replay_fields(
	    "Accept: */*\r\n", NULL, 0, NULL, 0, "h.example", "POST", 0);

	(void)state;
	assert_string_equal(f,
	    "Accept: */*\r\nHost: h.example\r\n"
	    "Content-Length: 0\r\nConnection: close\r\n");
	free(f);
	f = replay_fields(NULL, NULL, 0, NULL, 0, "h.example", "GET", 0);
	assert_string_equal(f, "Host: h.example\r\nConnection: close\r\n");
	free(f);
}

/* Logged text read back tolerantly: bare LF, a fold sent unfolded (no
 * sender may generate obs-fold), a colon-less line left out, and the
 * fields a Connection line names dropped. */
static void
test_logged_text_tolerated(void **state)
{
	char *f = replay_fields("Accept: */*\n"
				"X-Fold: a\r\n  b\r\n"
				"not a field\r\n"
				"Connection: x-hop\r\n"
				"X-Hop: 1\r\n"
				"Host:h.example",
	    NULL, 0, NULL, 0, "other.example", "GET", 0);

	(void)state;
	assert_non_null(f);
	assert_string_equal(f,
	    "Accept: */*\r\n"
	    "X-Fold: a b\r\n"
	    "Host:h.example\r\n"
	    "Connection: close\r\n");
	free(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hop_by_hop_and_framing_go),
	    cmocka_unit_test(test_set_and_remove),
	    cmocka_unit_test(test_host_added_and_empty_posts_framed),
	    cmocka_unit_test(test_logged_text_tolerated),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
