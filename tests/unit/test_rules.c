/* Unit tests for filters/rules.c: every pattern form, ports, order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "filters/rules.h"

static struct rules *
mk(void)
{
	struct rules *r = rules_new();

	assert_non_null(r);
	return r;
}

static void
add(struct rules *r, enum rules_action a, const char *pattern)
{
	char err[256] = "";

	if (rules_add(r, a, pattern, err, sizeof(err)) != 0)
		fail_msg("rules_add(\"%s\"): %s", pattern, err);
}

/* host:port gets action a, by the rule written as pattern. */
static void
hit(const struct rules *r, const char *host, unsigned port, enum rules_action a,
    const char *pattern)
{
	const char *m = "unset";

	assert_int_equal(rules_match(r, host, port, &m), a);
	if (pattern == NULL)
		assert_null(m);
	else
		assert_string_equal(m, pattern);
}

static void
miss(const struct rules *r, const char *host, unsigned port)
{
	hit(r, host, port, RULES_INTERCEPT, NULL);
}

static void
test_default(void **state)
{
	struct rules *r = mk();
	const char *m = "unset";

	(void)state;
	miss(r, "example.com", 443);
	miss(r, "1.2.3.4", 0);
	assert_int_equal(
	    rules_match(NULL, "example.com", 443, &m), RULES_INTERCEPT);
	assert_null(m);
	assert_int_equal(rules_match(r, NULL, 443, NULL), RULES_INTERCEPT);
	rules_free(r);
	rules_free(NULL);
}

static void
test_exact(void **state)
{
	struct rules *r = mk();

	(void)state;
	add(r, RULES_BLOCK, "api.example.com");
	add(r, RULES_PASSTHROUGH, "Other.Example.NET.");
	hit(r, "api.example.com", 443, RULES_BLOCK, "api.example.com");
	hit(r, "API.Example.COM", 80, RULES_BLOCK, "api.example.com");
	hit(r, "api.example.com.", 0, RULES_BLOCK, "api.example.com");
	miss(r, "example.com", 443);
	miss(r, "x.api.example.com", 443);
	miss(r, "api.example.com.evil", 443);
	miss(r, "api.example.co", 443);
	miss(r, "api.example.com..", 443);
	miss(r, "", 443);
	hit(r, "other.example.net", 443, RULES_PASSTHROUGH,
	    "Other.Example.NET.");
	rules_free(r);
}

static void
test_suffix(void **state)
{
	struct rules *r = mk();

	(void)state;
	add(r, RULES_PASSTHROUGH, "*.example.com");
	add(r, RULES_BLOCK, ".Tracker.ORG.");
	hit(r, "a.example.com", 443, RULES_PASSTHROUGH, "*.example.com");
	hit(r, "a.b.example.com", 443, RULES_PASSTHROUGH, "*.example.com");
	hit(r, "A.EXAMPLE.COM.", 443, RULES_PASSTHROUGH, "*.example.com");
	miss(r, "example.com", 443);
	miss(r, "example.com.", 443);
	miss(r, ".example.com", 443);
	miss(r, "badexample.com", 443);
	miss(r, "a.example.com.evil", 443);
	hit(r, "x.tracker.org", 1, RULES_BLOCK, ".Tracker.ORG.");
	miss(r, "tracker.org", 443);
	rules_free(r);
}

static void
test_addresses(void **state)
{
	struct rules *r = mk();

	(void)state;
	add(r, RULES_BLOCK, "192.0.2.1");
	add(r, RULES_PASSTHROUGH, "2001:db8::1");
	hit(r, "192.0.2.1", 443, RULES_BLOCK, "192.0.2.1");
	/* how a dual-stack socket names an IPv4 peer */
	hit(r, "::ffff:192.0.2.1", 443, RULES_BLOCK, "192.0.2.1");
	miss(r, "192.0.2.2", 443);
	miss(r, "192.0.2.1.example", 443);
	hit(r, "2001:DB8:0:0::1", 443, RULES_PASSTHROUGH, "2001:db8::1");
	hit(r, "[2001:db8::1]", 443, RULES_PASSTHROUGH, "2001:db8::1");
	miss(r, "2001:db8::2", 443);
	miss(r, "[2001:db8::1", 443);
	rules_free(r);
}

static void
test_cidr(void **state)
{
	struct rules *r = mk();

	(void)state;
	add(r, RULES_PASSTHROUGH, "10.0.0.0/8");
	add(r, RULES_BLOCK, "fd00::/8");
	add(r, RULES_BLOCK, "192.168.1.128/25");
	add(r, RULES_PASSTHROUGH, "172.16.5.4/12"); /* host bits ignored */
	add(r, RULES_BLOCK, "2001:db8::/127");
	hit(r, "10.0.0.0", 443, RULES_PASSTHROUGH, "10.0.0.0/8");
	hit(r, "10.255.255.255", 443, RULES_PASSTHROUGH, "10.0.0.0/8");
	miss(r, "11.0.0.1", 443);
	miss(r, "9.255.255.255", 443);
	hit(r, "fd12:3456::1", 443, RULES_BLOCK, "fd00::/8");
	hit(r, "fdff::", 443, RULES_BLOCK, "fd00::/8");
	miss(r, "fe80::1", 443);
	miss(r, "fc00::1", 443);
	hit(r, "192.168.1.200", 443, RULES_BLOCK, "192.168.1.128/25");
	hit(r, "192.168.1.128", 443, RULES_BLOCK, "192.168.1.128/25");
	miss(r, "192.168.1.127", 443);
	hit(r, "172.31.0.1", 443, RULES_PASSTHROUGH, "172.16.5.4/12");
	miss(r, "172.32.0.1", 443);
	hit(r, "2001:db8::1", 443, RULES_BLOCK, "2001:db8::/127");
	miss(r, "2001:db8::2", 443);
	/* names never match addresses */
	miss(r, "10.example.com", 443);
	rules_free(r);

	r = mk();
	add(r, RULES_BLOCK, "0.0.0.0/0");
	hit(r, "203.0.113.9", 1, RULES_BLOCK, "0.0.0.0/0");
	miss(r, "::1", 1);
	miss(r, "example.com", 1);
	add(r, RULES_PASSTHROUGH, "::/0");
	hit(r, "::1", 1, RULES_PASSTHROUGH, "::/0");
	rules_free(r);
}

static void
test_ports(void **state)
{
	struct rules *r = mk();

	(void)state;
	add(r, RULES_BLOCK, "*.example.com:443");
	add(r, RULES_PASSTHROUGH, "[::1]:8443");
	add(r, RULES_PASSTHROUGH, "192.0.2.1:80");
	add(r, RULES_BLOCK, "10.0.0.0/8:8080");
	add(r, RULES_BLOCK, "[fd00::/8]:443");
	add(r, RULES_PASSTHROUGH, "host.example:65535");
	add(r, RULES_PASSTHROUGH, "*:5222");
	hit(r, "a.example.com", 443, RULES_BLOCK, "*.example.com:443");
	miss(r, "a.example.com", 80);
	miss(r, "a.example.com", 0); /* port unknown */
	hit(r, "::1", 8443, RULES_PASSTHROUGH, "[::1]:8443");
	miss(r, "::1", 443);
	hit(r, "192.0.2.1", 80, RULES_PASSTHROUGH, "192.0.2.1:80");
	miss(r, "192.0.2.1", 443);
	hit(r, "10.1.1.1", 8080, RULES_BLOCK, "10.0.0.0/8:8080");
	hit(r, "fd00::5", 443, RULES_BLOCK, "[fd00::/8]:443");
	hit(r, "host.example", 65535, RULES_PASSTHROUGH, "host.example:65535");
	hit(r, "anything.at.all", 5222, RULES_PASSTHROUGH, "*:5222");
	hit(r, "198.51.100.7", 5222, RULES_PASSTHROUGH, "*:5222");
	miss(r, "anything.at.all", 5223);
	rules_free(r);
}

/* First match wins, in the order added. */
static void
test_order(void **state)
{
	struct rules *r = mk();

	(void)state;
	add(r, RULES_INTERCEPT, "api.example.com");
	add(r, RULES_BLOCK, "*.Example.com");
	add(r, RULES_PASSTHROUGH, "*");
	hit(r, "api.example.com", 443, RULES_INTERCEPT, "api.example.com");
	hit(r, "cdn.example.com", 443, RULES_BLOCK, "*.Example.com");
	hit(r, "example.com", 443, RULES_PASSTHROUGH, "*");
	hit(r, "10.0.0.1", 443, RULES_PASSTHROUGH, "*");
	miss(r, "", 443);
	rules_free(r);

	r = mk();
	add(r, RULES_PASSTHROUGH, "*");
	add(r, RULES_BLOCK, "api.example.com");
	hit(r, "api.example.com", 443, RULES_PASSTHROUGH, "*");
	rules_free(r);
}

static void
bad(const char *pattern, const char *why)
{
	struct rules *r = mk();
	char err[256] = "";

	assert_int_equal(
	    rules_add(r, RULES_BLOCK, pattern, err, sizeof(err)), -1);
	if (strstr(err, why) == NULL)
		fail_msg("\"%s\": \"%s\" lacks \"%s\"", pattern, err, why);
	/* nothing was added */
	miss(r, "example.com", 443);
	miss(r, "1.2.3.4", 443);
	rules_free(r);
}

static void
test_bad(void **state)
{
	char longname[300], longlabel[80];
	struct rules *r;
	char err[8];

	(void)state;
	bad("", "empty pattern");
	bad(NULL, "empty pattern");
	bad("*.", "no domain after \"*.\" in \"*.\"");
	bad(".", "no domain");
	bad("*..", "no domain");
	bad("1.2.3.4/33",
	    "bad prefix length \"33\" in \"1.2.3.4/33\" "
	    "(want 0-32)");
	bad("::1/129", "(want 0-128)");
	bad("10.0.0.0/", "bad prefix length");
	bad("10.0.0.0/x", "bad prefix length");
	bad("10.0.0.0/0008", "bad prefix length");
	bad("example.com/8", "bad address \"example.com\"");
	bad("host:0", "bad port \"0\" in \"host:0\" (want 1-65535)");
	bad("host:99999", "bad port \"99999\"");
	bad("host:65536", "bad port");
	bad("host:", "bad port \"\"");
	bad("host:8a", "bad port");
	bad("host:-1", "bad port");
	bad("[::1", "missing ']' in \"[::1\"");
	bad("[::1]x", "junk after ']'");
	bad("[::1]:", "bad port");
	bad("[]", "brackets hold no IPv6 address");
	bad("[example.com]:443", "brackets hold no IPv6 address");
	bad("[1::zz]", "bad IPv6 address");
	bad("1:2:3:zz", "bad IPv6 address");
	bad("fe80::1%eth0", "bad IPv6 address");
	bad("a..b", "empty label");
	bad("a.*.com", "'*' is only allowed as a leading \"*.\"");
	bad("**.example.com", "'*' is only allowed");
	bad("*.*.example.com", "'*' is only allowed");
	bad("exa mple.com", "space or control character");
	bad("tab\t.com", "space or control character");
	bad("bad/char.com", "bad address");
	bad("bad!char.com", "bad character '!'");
	memset(longlabel, 'a', 64);
	memcpy(longlabel + 64, ".com", 5);
	bad(longlabel, "label longer than 63");
	for (size_t i = 0; i < 254; i++)
		longname[i] = i % 10 == 9 ? '.' : 'a';
	longname[254] = '\0';
	bad(longname, "host name too long");

	/* a short buffer gets a truncated, terminated message; NULL none */
	r = mk();
	memset(err, 'x', sizeof(err));
	assert_int_equal(
	    rules_add(r, RULES_BLOCK, "host:0", err, sizeof(err)), -1);
	assert_int_equal(strlen(err), sizeof(err) - 1);
	assert_int_equal(rules_add(r, RULES_BLOCK, "host:0", NULL, 0), -1);
	assert_int_equal(rules_add(r, (enum rules_action)7, "a", NULL, 0), -1);
	rules_free(r);
}

/* The longest legal forms are accepted. */
static void
test_limits(void **state)
{
	char name[254], pat[260];
	struct rules *r = mk();

	(void)state;
	for (size_t i = 0; i < 253; i++)
		name[i] = i % 10 == 9 ? '.' : 'a';
	name[253] = '\0';
	add(r, RULES_BLOCK, name);
	snprintf(pat, sizeof(pat), "%s.", name);
	hit(r, pat, 1, RULES_BLOCK, name);
	add(r, RULES_BLOCK, "x_y-z.example.com");
	hit(r, "X_Y-Z.example.com", 1, RULES_BLOCK, "x_y-z.example.com");
	rules_free(r);

	/* many rules: the list grows, order holds */
	r = mk();
	for (int i = 0; i < 100; i++) {
		snprintf(pat, sizeof(pat), "h%d.example", i);
		add(r, i % 2 ? RULES_BLOCK : RULES_PASSTHROUGH, pat);
	}
	hit(r, "h99.example", 443, RULES_BLOCK, "h99.example");
	hit(r, "h0.example", 443, RULES_PASSTHROUGH, "h0.example");
	rules_free(r);
}

static void
test_actions(void **state)
{
	enum rules_action a = RULES_BLOCK;

	(void)state;
	assert_string_equal(rules_action_name(RULES_INTERCEPT), "intercept");
	assert_string_equal(
	    rules_action_name(RULES_PASSTHROUGH), "passthrough");
	assert_string_equal(rules_action_name(RULES_BLOCK), "block");
	assert_string_equal(rules_action_name((enum rules_action)9), "unknown");
	assert_int_equal(rules_parse_action("intercept", &a), 0);
	assert_int_equal(a, RULES_INTERCEPT);
	assert_int_equal(rules_parse_action("PassThrough", &a), 0);
	assert_int_equal(a, RULES_PASSTHROUGH);
	assert_int_equal(rules_parse_action("block", &a), 0);
	assert_int_equal(a, RULES_BLOCK);
	assert_int_equal(rules_parse_action("allow", &a), -1);
	assert_int_equal(rules_parse_action("", &a), -1);
	assert_int_equal(rules_parse_action(NULL, &a), -1);
	assert_int_equal(a, RULES_BLOCK);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_default),
	    cmocka_unit_test(test_exact),
	    cmocka_unit_test(test_suffix),
	    cmocka_unit_test(test_addresses),
	    cmocka_unit_test(test_cidr),
	    cmocka_unit_test(test_ports),
	    cmocka_unit_test(test_order),
	    cmocka_unit_test(test_bad),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_actions),
	};

	return cmocka_run_group_tests_name("rules", tests, NULL, NULL);
}
