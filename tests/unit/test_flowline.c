/* Unit tests for proxy/store/flowline.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/store/flowline.h"
#include "proxy/store/store.h"

static char *
xstrdup(const char *s)
{
	char *p = strdup(s);

	assert_non_null(p);
	return p;
}

static struct store_rec *
mk_req(const char *host, const char *path, const char *query)
{
	struct store_rec *r = store_rec_new(STORE_REC_REQUEST);

	assert_non_null(r);
	r->u.req.conn_id = 4;
	r->u.req.seq = 2;
	r->u.req.t_start_us = 1700000000123456;
	r->u.req.client_ip = xstrdup("127.0.0.1");
	r->u.req.scheme = xstrdup("http");
	r->u.req.method = xstrdup("GET");
	r->u.req.host = host ? xstrdup(host) : NULL;
	r->u.req.port = 80;
	r->u.req.path = xstrdup(path);
	r->u.req.query = query ? xstrdup(query) : NULL;
	r->u.req.status = 200;
	r->u.req.resp_body.total = 1234;
	r->u.req.total_us = 3200;
	return r;
}

/* The id the insert gave, else the connection and exchange number; the
 * default port left out, an IPv6 host in brackets. */
static void
test_exchange_text(void **state)
{
	struct store_rec *r = mk_req("a.test", "/x", "q=1");
	char buf[FLOWLINE_MAX];
	size_t n;

	(void)state;
	r->row_id = 42;
	n = flowline_format(r, 0, buf, sizeof(buf));
	assert_int_equal(n, strlen(buf));
	assert_true(strncmp(buf, "#42 ", 4) == 0);
	assert_non_null(
	    strstr(buf, " 127.0.0.1 GET http://a.test/x?q=1 200 1234 3.2ms"));
	r->row_id = 0;
	free(r->u.req.host);
	r->u.req.host = xstrdup("::1");
	r->u.req.port = 8080;
	flowline_format(r, 0, buf, sizeof(buf));
	assert_true(strncmp(buf, "c4#2 ", 5) == 0);
	assert_non_null(strstr(buf, " http://[::1]:8080/x?q=1 "));
	store_rec_free(r);
}

/* A long URL is cut, control bytes never break the line. */
static void
test_bounded_and_one_line(void **state)
{
	char *q = malloc(5000), buf[FLOWLINE_MAX];
	struct store_rec *r;

	(void)state;
	assert_non_null(q);
	memset(q, 'x', 4999);
	q[4999] = '\0';
	r = mk_req("a.test", "/", q);
	r->u.req.error = xstrdup("bad\r\nthing");
	assert_true(flowline_format(r, 0, buf, sizeof(buf)) < FLOWLINE_MAX);
	assert_non_null(strstr(buf, "x..."));
	assert_null(strchr(buf, '\n'));
	assert_non_null(strstr(buf, "error=bad??thing"));
	store_rec_free(r);
	free(q);
}

/* JSON lines parse, also with bytes that are not UTF-8. */
static void
test_json(void **state)
{
	struct store_rec *r = mk_req("a.test", "/\xff\xfe", NULL);
	char buf[FLOWLINE_MAX];
	json_error_t jerr;
	json_t *o;

	(void)state;
	r->row_id = 7;
	assert_true(flowline_format(r, 1, buf, sizeof(buf)) > 0);
	o = json_loads(buf, 0, &jerr);
	assert_non_null(o);
	assert_string_equal(
	    json_string_value(json_object_get(o, "kind")), "exchange");
	assert_int_equal(json_integer_value(json_object_get(o, "id")), 7);
	assert_string_equal(
	    json_string_value(json_object_get(o, "url")), "http://a.test/??");
	assert_true(json_real_value(json_object_get(o, "duration_ms")) == 3.2);
	json_decref(o);
	store_rec_free(r);
}

/* Only a passed-through connection is a stream with a line. */
static void
test_stream(void **state)
{
	struct store_rec *r = store_rec_new(STORE_REC_CONN);
	char buf[FLOWLINE_MAX];

	(void)state;
	assert_non_null(r);
	r->u.conn.id = 9;
	r->u.conn.client_ip = xstrdup("10.0.0.2");
	r->u.conn.protocol = xstrdup("tls");
	r->u.conn.listener_target = xstrdup("bank.test:443");
	r->u.conn.bytes_from_client = 10;
	r->u.conn.bytes_from_server = 20;
	r->u.conn.t_accept_us = 1700000000000000;
	r->u.conn.t_close_us = 1700000001500000;
	r->u.conn.decision = xstrdup("intercept");
	assert_int_equal(flowline_format(r, 0, buf, sizeof(buf)), 0);
	free(r->u.conn.decision);
	r->u.conn.decision = xstrdup("passthrough");
	r->u.conn.decision_reason = xstrdup("rule *.bank.test");
	assert_true(flowline_format(r, 0, buf, sizeof(buf)) > 0);
	assert_true(strncmp(buf, "c9 ", 3) == 0);
	assert_non_null(strstr(buf,
	    " 10.0.0.2 stream tls bank.test:443 up=10 down=20 1500.0ms "
	    "passthrough: rule *.bank.test"));
	store_rec_free(r);
}

/* An HTTP/2 exchange says its stream, and how it ended when not cleanly. */
static void
test_h2(void **state)
{
	struct store_rec *r = mk_req("a.test", "/x", NULL);
	char buf[FLOWLINE_MAX];

	(void)state;
	r->u.req.stream_id = 7;
	assert_true(flowline_format(r, 0, buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, " 3.2ms h2=7"));
	assert_null(strstr(buf, "end="));
	r->u.req.stream_end = xstrdup("rst-origin REFUSED_STREAM");
	assert_true(flowline_format(r, 0, buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, " h2=7 end=rst-origin REFUSED_STREAM"));
	assert_true(flowline_format(r, 1, buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, "\"stream_id\":7"));
	assert_non_null(
	    strstr(buf, "\"stream_end\":\"rst-origin REFUSED_STREAM\""));
	store_rec_free(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_exchange_text),
	    cmocka_unit_test(test_bounded_and_one_line),
	    cmocka_unit_test(test_json),
	    cmocka_unit_test(test_stream),
	    cmocka_unit_test(test_h2),
	};

	return cmocka_run_group_tests_name("flowline", tests, NULL, NULL);
}
