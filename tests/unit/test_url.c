/* Unit tests for proxy/http/url.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "proxy/http/url.h"

static void
parse_ok(const char *t, struct url *u)
{
	const char *why = NULL;

	assert_int_equal(url_parse(t, strlen(t), u, &why), 0);
	assert_null(why);
}

static void
parse_bad(const char *t, const char *expect_why)
{
	struct url u;
	const char *why = NULL;

	assert_int_equal(url_parse(t, strlen(t), &u, &why), -1);
	assert_non_null(why);
	if (expect_why != NULL)
		assert_string_equal(why, expect_why);
	assert_null(u.path);
	assert_null(u.query);
}

static void
test_absolute(void **state)
{
	struct url u;

	(void)state;
	parse_ok("http://Example.COM:8080/a/b?x=1&y=2#frag", &u);
	assert_int_equal(u.form, URL_FORM_ABSOLUTE);
	assert_string_equal(u.scheme, "http");
	assert_string_equal(u.host, "example.com");
	assert_int_equal(u.port, 8080);
	assert_int_equal(u.port_given, 1);
	assert_string_equal(u.path, "/a/b");
	assert_string_equal(u.query, "x=1&y=2");
	url_clear(&u);

	parse_ok("http://example.com", &u);
	assert_int_equal(u.port, 80);
	assert_int_equal(u.port_given, 0);
	assert_string_equal(u.path, "/");
	assert_null(u.query);
	url_clear(&u);

	parse_ok("http://h?q=1", &u);
	assert_string_equal(u.path, "/");
	assert_string_equal(u.query, "q=1");
	url_clear(&u);

	parse_ok("HTTPS://user:pw@h.test/", &u);
	assert_string_equal(u.scheme, "https");
	assert_string_equal(u.host, "h.test");
	assert_int_equal(u.port, 443);
	url_clear(&u);
}

static void
test_ipv6(void **state)
{
	struct url u;
	char buf[64];

	(void)state;
	parse_ok("http://[::1]:9000/x", &u);
	assert_string_equal(u.host, "::1");
	assert_int_equal(u.port, 9000);
	assert_int_equal(url_authority(&u, buf, sizeof(buf)), 10);
	assert_string_equal(buf, "[::1]:9000");
	url_clear(&u);
	parse_bad("http://[::1/x", "unterminated IPv6 literal");
	parse_bad("http://[::1]x/", "junk after IPv6 literal");
}

static void
test_other_forms(void **state)
{
	struct url u;

	(void)state;
	parse_ok("/index.html?a", &u);
	assert_int_equal(u.form, URL_FORM_ORIGIN);
	assert_string_equal(u.path, "/index.html");
	assert_string_equal(u.query, "a");
	url_clear(&u);

	parse_ok("*", &u);
	assert_int_equal(u.form, URL_FORM_ASTERISK);
	url_clear(&u);

	parse_ok("example.com:443", &u);
	assert_int_equal(u.form, URL_FORM_AUTHORITY);
	assert_string_equal(u.host, "example.com");
	assert_int_equal(u.port, 443);
	url_clear(&u);
	parse_bad("example.com", "authority-form target needs a port");
}

static void
test_bad(void **state)
{
	(void)state;
	parse_bad("", "empty request target");
	parse_bad("ftp://h/", "unsupported scheme");
	parse_bad("http:///x", "empty host");
	parse_bad("http://h:0/", "bad port");
	parse_bad("http://h:65536/", "bad port");
	parse_bad("http://h:80x/", "bad port");
	parse_bad("http://h:/", "empty port");
	parse_bad("http://a\\b/", "bad character in host");
}

static void
test_authority(void **state)
{
	struct url u;
	char buf[16];

	(void)state;
	parse_ok("http://h.test:80/", &u);
	assert_int_equal(url_authority(&u, buf, sizeof(buf)), 6);
	assert_string_equal(buf, "h.test");
	url_clear(&u);
	parse_ok("http://a-very-long-host.test:81/", &u);
	assert_int_equal(url_authority(&u, buf, sizeof(buf)), -1);
	url_clear(&u);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_absolute),
	    cmocka_unit_test(test_ipv6),
	    cmocka_unit_test(test_other_forms),
	    cmocka_unit_test(test_bad),
	    cmocka_unit_test(test_authority),
	};

	return cmocka_run_group_tests_name("url", tests, NULL, NULL);
}
