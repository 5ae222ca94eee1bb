/* web_auth: secrets, Host checks (DNS rebinding), cookies, Basic auth. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/web/web_auth.h"

static void
test_secret(void **state)
{
	char a[WEB_SECRET_HEX + 1], b[WEB_SECRET_HEX + 1];

	(void)state;
	assert_int_equal(web_auth_secret(a), 0);
	assert_int_equal(web_auth_secret(b), 0);
	assert_int_equal(strlen(a), WEB_SECRET_HEX);
	assert_int_equal(strspn(a, "0123456789abcdef"), WEB_SECRET_HEX);
	assert_string_not_equal(a, b);
	assert_true(web_auth_equal(a, a));
	assert_false(web_auth_equal(a, b));
	assert_false(web_auth_equal(a, NULL));
	assert_false(web_auth_equal(NULL, NULL));
	assert_false(web_auth_equal("abc", "abcd"));
}

/* Our names and any address literal pass; another name is how a
 * rebinding page reaches us, and is refused, as is a wrong port. */
static void
test_host(void **state)
{
	(void)state;
	assert_true(web_auth_host_ok("127.0.0.1:8081", "127.0.0.1", 8081));
	assert_true(web_auth_host_ok("localhost:8081", "127.0.0.1", 8081));
	assert_true(web_auth_host_ok("LOCALHOST", "127.0.0.1", 8081));
	assert_true(web_auth_host_ok("[::1]:8081", "::1", 8081));
	assert_true(web_auth_host_ok("10.1.2.3:8081", "0.0.0.0", 8081));
	assert_true(web_auth_host_ok("[fe80::1]", "::", 8081));
	assert_false(web_auth_host_ok("evil.example:8081", "127.0.0.1", 8081));
	assert_false(
	    web_auth_host_ok("localhost.evil.example:8081", "127.0.0.1", 8081));
	assert_false(web_auth_host_ok("127.0.0.1:8082", "127.0.0.1", 8081));
	assert_false(web_auth_host_ok("127.0.0.1:", "127.0.0.1", 8081));
	assert_false(web_auth_host_ok("127.0.0.1:80x", "127.0.0.1", 8081));
	assert_false(web_auth_host_ok("::1", "::1", 8081)); /* no brackets */
	assert_false(web_auth_host_ok("[::1", "::1", 8081));
	assert_false(web_auth_host_ok("", "127.0.0.1", 8081));
	assert_false(web_auth_host_ok(NULL, "127.0.0.1", 8081));
}

static void
test_cookie(void **state)
{
	const char *n = "peephole_session";

	(void)state;
	assert_true(
	    web_auth_cookie_is("a=1; peephole_session=abc; b=2", n, "abc"));
	assert_true(web_auth_cookie_is("peephole_session=xyz", n, "xyz"));
	/* a cookie of our name set by another localhost page comes first:
	 * the real one still counts */
	assert_true(web_auth_cookie_is(
	    "peephole_session=planted; peephole_session=abc", n, "abc"));
	/* a longer name that starts with ours is not ours */
	assert_false(web_auth_cookie_is("peephole_session2=abc", n, "abc"));
	assert_false(web_auth_cookie_is("peephole_session=abcd", n, "abc"));
	assert_false(web_auth_cookie_is("peephole_session=ab", n, "abc"));
	assert_false(web_auth_cookie_is("x=abc", n, "abc"));
	assert_false(web_auth_cookie_is(NULL, n, "abc"));
}

static void
test_basic(void **state)
{
	(void)state;
	/* "user:s3cret", ":s3cret", "user:s3cre" */
	assert_true(web_auth_basic_ok("Basic dXNlcjpzM2NyZXQ=", "s3cret"));
	assert_true(web_auth_basic_ok("basic OnMzY3JldA==", "s3cret"));
	assert_false(web_auth_basic_ok("Basic dXNlcjpzM2NyZQ==", "s3cret"));
	assert_false(web_auth_basic_ok("Basic dXNlcjpzM2NyZXQ=", "other"));
	assert_false(web_auth_basic_ok("Bearer dXNlcjpzM2NyZXQ=", "s3cret"));
	assert_false(web_auth_basic_ok("Basic !!!!", "s3cret"));
	assert_false(web_auth_basic_ok("Basic abc", "s3cret"));
	assert_false(web_auth_basic_ok("Basic ", "s3cret"));
	/* "nocolon" */
	assert_false(web_auth_basic_ok("Basic bm9jb2xvbg==", "nocolon"));
	assert_false(web_auth_basic_ok(NULL, "s3cret"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_secret),
	    cmocka_unit_test(test_host),
	    cmocka_unit_test(test_cookie),
	    cmocka_unit_test(test_basic),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
