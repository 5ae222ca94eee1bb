/*
 * filter: every operator, precedence, quoting, case, bodies through the
 * callback (and only when asked for), and the errors with their positions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/filter.h"

static int body_calls;

static int
body_cb(void *arg, int which, const void **data, size_t *len)
{
	static const char req[] = "user=alice&token=s3cret";
	static const unsigned char resp[] = {
	    0xff, 0xd8, 0xff, 'J', 'F', 'I', 'F', 0xc3, 0x28};

	(void)arg;
	body_calls++;
	if (which == 0) {
		*data = req;
		*len = sizeof(req) - 1;
	} else {
		*data = resp;
		*len = sizeof(resp);
	}
	return 0;
}

static struct filter_req
sample(void)
{
	struct filter_req r = {
	    .method = "POST",
	    .url = "https://api.example.com/v1/login?next=%2F",
	    .host = "api.example.com",
	    .req_headers =
		"Host: api.example.com\r\nUser-Agent: TestApp/1.0\r\n"
		"Content-Type: application/x-www-form-urlencoded\r\n",
	    .resp_headers = "Content-Type: image/jpeg\r\nX-Cache: HIT\r\n",
	    .req_content_type = "application/x-www-form-urlencoded",
	    .resp_content_type = "image/jpeg",
	    .error = NULL,
	    .label = NULL,
	    .protocol = "tls",
	    .scheme = "https",
	    .status = 200,
	    .body = body_cb,
	};
	return r;
}

/* compile, match against r, free; fail the test on a compile error */
static int
m(const char *expr, const struct filter_req *r)
{
	char err[256] = "";
	size_t pos = 0;
	struct filter *f = filter_compile(expr, err, sizeof(err), &pos);
	int v;

	if (f == NULL)
		fail_msg("'%s' did not compile: %s at %zu", expr, err, pos);
	v = filter_match(f, r);
	filter_free(f);
	return v;
}

/* the error position of a bad expression, with err containing want */
static size_t
bad(const char *expr, const char *want)
{
	char err[256] = "";
	size_t pos = 999;
	struct filter *f = filter_compile(expr, err, sizeof(err), &pos);

	if (f != NULL)
		fail_msg("'%s' compiled", expr);
	if (strstr(err, want) == NULL)
		fail_msg("'%s': error '%s' lacks '%s'", expr, err, want);
	return pos;
}

static void
test_fields(void **state)
{
	struct filter_req r = sample();

	(void)state;
	assert_true(m("~d example\\.com$", &r));
	assert_false(m("~d ^example", &r));
	assert_true(m("~u /v1/login", &r));
	assert_true(m("~m post", &r)); /* case-insensitive, as mitmproxy */
	assert_false(m("~m ^GET$", &r));
	assert_true(m("~c 200", &r));
	assert_false(m("~c 404", &r));
	assert_true(m("~t jpeg", &r));
	assert_true(m("~t form-urlencoded", &r));
	assert_true(m("~tq form", &r));
	assert_false(m("~tq jpeg", &r));
	assert_true(m("~ts jpeg", &r));
	assert_true(m("~h \"^user-agent: testapp\"", &r));
	assert_false(m("~hq x-cache", &r));
	assert_true(m("~hs x-cache", &r));
	assert_true(m("~s", &r));
	assert_false(m("~q", &r));
	assert_false(m("~e", &r));
	assert_true(m("~all", &r));
	assert_true(m("~proto tls", &r));
	assert_true(m("~proto HTTPS", &r));
	assert_false(m("~proto mmtls-shortlink", &r));
	r.label = "mmtls-shortlink";
	assert_true(m("~proto mmtls-shortlink", &r));
	/* a bare value is a URL regex */
	assert_true(m("login", &r));
	assert_false(m("logout", &r));
}

static void
test_no_response_and_errors(void **state)
{
	struct filter_req r = sample();

	(void)state;
	r.status = 0;
	r.resp_headers = NULL;
	r.resp_content_type = NULL;
	r.error = "cannot reach api.example.com:443: refused";
	assert_true(m("~q", &r));
	assert_false(m("~s", &r));
	assert_true(m("~e", &r));
	assert_false(m("~c 0", &r)); /* no response is not a status */
	assert_false(m("~hs .", &r));
	r.error = "";
	assert_false(m("~e", &r));
}

static void
test_operators_and_precedence(void **state)
{
	struct filter_req r = sample();

	(void)state;
	assert_true(m("~d api & ~m POST", &r));
	assert_true(m("~d api ~m POST", &r)); /* side by side: and */
	assert_false(m("~d api & ~m GET", &r));
	assert_true(m("~m GET | ~m POST", &r));
	assert_true(m("!~m GET", &r));
	assert_false(m("!~m POST", &r));
	assert_true(m("!!~m POST", &r));
	/* & binds tighter than |: false | (true & true) */
	assert_true(m("~m GET | ~d api & ~c 200", &r));
	/* (false | true) & false */
	assert_false(m("(~m GET | ~d api) & ~c 404", &r));
	assert_true(m("~m GET | ~d api & !~c 404", &r));
	/* ! binds tighter than &: (!false) & true */
	assert_true(m("!~m GET & ~d api", &r));
	assert_false(m("!(~m POST & ~d api)", &r));
	assert_true(m("((((~all))))", &r));
	assert_true(m("~d api&~m POST", &r)); /* no spaces needed */
}

static void
test_quoting(void **state)
{
	struct filter_req r = sample();

	(void)state;
	assert_true(m("~u 'login\\?next'", &r));
	assert_true(m("~u \"v1/(login|logout)\"", &r));
	assert_true(m("~h 'User-Agent: TestApp/1\\.0'", &r));
	r.url = "http://h/it's";
	assert_true(m("~u 'it\\'s'", &r));
	assert_true(m("~u \"it's\"", &r));
	/* a quoted "~d" is a value, not a filter */
	r.url = "http://h/~d";
	assert_true(m("'~d'", &r));
}

static void
test_bodies_only_when_asked(void **state)
{
	struct filter_req r = sample();
	char err[128];
	struct filter *f;

	(void)state;
	body_calls = 0;
	assert_true(m("~d api & ~m POST | ~c 500", &r));
	assert_int_equal(body_calls, 0);
	assert_true(m("~bq token=s3cret", &r));
	assert_int_equal(body_calls, 1);
	assert_false(m("~bs token", &r));
	assert_true(m("~b JFIF", &r)); /* binary, invalid UTF-8 */
	assert_false(m("~bq JFIF", &r));
	r.body = NULL; /* nothing captured */
	assert_false(m("~b .", &r));
	f = filter_compile("~d a | !~b x", err, sizeof(err), NULL);
	assert_non_null(f);
	assert_true(filter_needs_body(f));
	filter_free(f);
	f = filter_compile("~d a | !~h x", err, sizeof(err), NULL);
	assert_non_null(f);
	assert_false(filter_needs_body(f));
	filter_free(f);
}

static void
test_errors_point_at_the_problem(void **state)
{
	char deep[400];
	size_t n = 0;

	(void)state;
	assert_int_equal(bad("~d api & ", "after '&'"), 9);
	assert_int_equal(bad("~d api |", "after '|'"), 8);
	assert_int_equal(bad("~x foo", "unknown filter ~x"), 0);
	assert_int_equal(bad("~d api & ~zz", "unknown filter ~zz"), 9);
	assert_int_equal(bad("~c abc", "status code"), 3);
	assert_int_equal(bad("~c 2000", "status code"), 3);
	assert_int_equal(bad("~d", "needs a value"), 2);
	assert_int_equal(bad("(~d api", "expected ')'"), 7);
	assert_int_equal(bad("~d api)", "unexpected ')'"), 6);
	assert_int_equal(bad("", "expected an expression"), 0);
	assert_int_equal(bad("!", "expected an expression"), 1);
	assert_int_equal(bad("& ~d x", "before '&'"), 0);
	assert_int_equal(bad("~u 'abc", "unterminated"), 3);
	/* PCRE2's own message, pointing into the regex */
	assert_int_equal(bad("~u 'a(b'", "bad regex"), 7);
	assert_int_equal(
	    bad("~d api & ~u 'x('", "missing closing parenthesis"), 15);
	/* unquoted, '(' starts a group: regexes with them are quoted */
	assert_int_equal(bad("~d api & ~u x(", "expected an expression"), 14);
	/* nesting is bounded */
	for (int i = 0; i < 150; i++)
		deep[n++] = '(';
	memcpy(deep + n, "~all", 5);
	bad(deep, "nested more than");
	n = 0;
	for (int i = 0; i < 150; i++)
		deep[n++] = '!';
	memcpy(deep + n, "~all", 5);
	bad(deep, "nested more than");
}

/* Two WebSocket messages: a text one sent, a binary one received. */
static int
message_cb(void *arg, size_t i, int *dir, const void **data, size_t *len)
{
	static const char sent[] = "{\"op\":\"subscribe\"}";
	static const unsigned char got[] = {0x00, 0x01, 'p', 'o', 'n', 'g'};

	(void)arg;
	if (i == 0) {
		*dir = 0;
		*data = sent;
		*len = sizeof(sent) - 1;
		return 0;
	}
	if (i == 1) {
		*dir = 1;
		*data = got;
		*len = sizeof(got);
		return 0;
	}
	return -1;
}

/* ~websocket: logged messages or a 101 upgrade to websocket; ~b also
 * reads messages (~bq sent ones, ~bs received ones); ~h2. */
static void
test_websocket_and_h2(void **state)
{
	struct filter_req r = sample();

	(void)state;
	assert_false(m("~websocket", &r));
	assert_false(m("~h2", &r));
	r.status = 101;
	r.resp_headers = "Connection: Upgrade\r\nUpgrade: WebSocket\r\n";
	assert_true(m("~websocket", &r));
	assert_true(m("~ws", &r));
	r.resp_headers = "Upgrade: h2c\r\n";
	assert_false(m("~websocket", &r));
	r.resp_headers = "Upgrade: foo, websocket\r\n";
	assert_true(m("~websocket", &r));
	r.status = 200;
	assert_false(m("~websocket", &r));
	r.ws_messages = 1;
	assert_true(m("~websocket", &r));
	/* messages only through the callback */
	assert_false(m("~b subscribe", &r));
	r.message = message_cb;
	assert_true(m("~b subscribe", &r));
	assert_true(m("~bq subscribe", &r));
	assert_false(m("~bs subscribe", &r));
	assert_true(m("~bs pong", &r));
	assert_false(m("~bq pong", &r));
	assert_true(m("~b alice", &r)); /* bodies still count */
	assert_false(m("~b nowhere", &r));
	r.http2 = 1;
	assert_true(m("~h2 & ~http2 & ~websocket", &r));
	assert_false(m("!~h2", &r));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fields),
	    cmocka_unit_test(test_no_response_and_errors),
	    cmocka_unit_test(test_operators_and_precedence),
	    cmocka_unit_test(test_quoting),
	    cmocka_unit_test(test_bodies_only_when_asked),
	    cmocka_unit_test(test_errors_point_at_the_problem),
	    cmocka_unit_test(test_websocket_and_h2),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
