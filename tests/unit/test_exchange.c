/*
 * Unit tests for proxy/net/exchange.c: the capped body capture (sizing
 * from the announced length, doubling, the cap, truncation, record-flows
 * off) and giving back what it over-reserved; the record begun for a
 * request (and what a refused head keeps), the first status and error
 * kept; the tunnel's idea of the target; the mmTLS shortlink test; and
 * the ends of an exchange: our own error answers, the deadline, the
 * client's FIN, and keeping or closing each side when both messages are
 * done.
 *
 * exchange.c is included (h2o style) for its static helpers. No store:
 * a submitted record is freed, so the tests look at the record before
 * the exchange ends, and at the wire after.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "proxy/net/exchange.c"

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

/* Spans of the bytes 0, 1, 2, ... so a misplaced copy shows. */
static char pattern[1 << 17];

static void
fill_pattern(void)
{
	for (size_t i = 0; i < sizeof(pattern); i++)
		pattern[i] = (char)(i * 7 + i / 251);
}

static void
body_free(struct store_body *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

static void
test_capture_grows_from_16k(void **state)
{
	struct fx *f = *state;
	struct store_body b = {0};
	size_t room = 0;

	fill_pattern();
	exchange_capture(f->c, &b, &room, 0, pattern, 100);
	assert_int_equal(room, 16384);
	assert_int_equal(b.len, 100);
	assert_int_equal(b.total, 100);
	assert_false(b.truncated);
	exchange_capture(f->c, &b, &room, 0, pattern + 100, 16284);
	assert_int_equal(room, 16384); /* exactly full: no growth */
	exchange_capture(f->c, &b, &room, 0, pattern + 16384, 1);
	assert_int_equal(room, 32768); /* then doubled */
	assert_int_equal(b.len, 16385);
	assert_memory_equal(b.data, pattern, 16385);
	body_free(&b);

	/* a first span bigger than 16 KiB: doubled until it fits */
	room = 0;
	exchange_capture(f->c, &b, &room, 0, pattern, 40000);
	assert_int_equal(room, 65536);
	assert_memory_equal(b.data, pattern, 40000);
	body_free(&b);
}

static void
test_capture_sized_from_expect(void **state)
{
	struct fx *f = *state;
	struct store_body b = {0};
	size_t room = 0;

	fill_pattern();
	/* the announced length: one buffer of that size */
	exchange_capture(f->c, &b, &room, 100, pattern, 10);
	assert_int_equal(room, 100);
	exchange_capture(f->c, &b, &room, 100, pattern + 10, 90);
	assert_int_equal(room, 100);
	assert_memory_equal(b.data, pattern, 100);
	/* more than announced (a lying origin): doubling from there */
	exchange_capture(f->c, &b, &room, 100, pattern + 100, 50);
	assert_int_equal(room, 200);
	assert_int_equal(b.len, 150);
	assert_memory_equal(b.data, pattern, 150);
	body_free(&b);

	/* announced, but the first span is already bigger */
	room = 0;
	exchange_capture(f->c, &b, &room, 10, pattern, 25);
	assert_int_equal(room, 40);
	assert_int_equal(b.len, 25);
	body_free(&b);

	/* announced past the cap: the cap */
	f->cfg.body_capture_bytes = 1000;
	room = 0;
	exchange_capture(f->c, &b, &room, 1 << 30, pattern, 10);
	assert_int_equal(room, 1000);
	body_free(&b);
}

static void
test_capture_cap_and_truncation(void **state)
{
	struct fx *f = *state;
	struct store_body b = {0};
	size_t room = 0;

	fill_pattern();
	f->cfg.body_capture_bytes = 10;
	exchange_capture(f->c, &b, &room, 0, pattern, 6);
	assert_int_equal(room, 10); /* never past the cap */
	assert_false(b.truncated);
	exchange_capture(f->c, &b, &room, 0, pattern + 6, 6);
	assert_int_equal(b.len, 10);
	assert_int_equal(b.total, 12);
	assert_true(b.truncated);
	assert_memory_equal(b.data, pattern, 10);
	/* past the cap: only counted */
	exchange_capture(f->c, &b, &room, 0, pattern, 1000);
	assert_int_equal(b.len, 10);
	assert_int_equal(b.total, 1012);
	assert_true(b.truncated);
	assert_int_equal(room, 10);
	body_free(&b);

	/* exactly the cap: whole, not truncated */
	room = 0;
	exchange_capture(f->c, &b, &room, 10, pattern, 10);
	assert_int_equal(b.len, 10);
	assert_false(b.truncated);
	body_free(&b);

	/* doubling stops at the cap */
	f->cfg.body_capture_bytes = 20000;
	room = 0;
	exchange_capture(f->c, &b, &room, 0, pattern, 16384);
	exchange_capture(f->c, &b, &room, 0, pattern + 16384, 16384);
	assert_int_equal(room, 20000);
	assert_int_equal(b.len, 20000);
	assert_int_equal(b.total, 32768);
	assert_memory_equal(b.data, pattern, 20000);
	body_free(&b);
}

static void
test_capture_not_recording(void **state)
{
	struct fx *f = *state;
	struct store_body b = {0};
	size_t room = 0;

	f->cfg.record_flows = 0;
	exchange_capture(f->c, &b, &room, 5, "hello", 5);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(room, 0);
	assert_int_equal(b.total, 5);
	f->cfg.record_flows = 1;
}

static void
test_capture_trim(void **state)
{
	struct store_body b = {0};
	size_t room;

	(void)state;
	/* nothing captured: nothing to do */
	room = 0;
	exchange_capture_trim(&b, &room);
	assert_null(b.data);

	/* a 16 KiB buffer holding 100 bytes: shrunk to them */
	b.data = malloc(16384);
	assert_non_null(b.data);
	memset(b.data, 'x', 100);
	b.len = 100;
	room = 16384;
	exchange_capture_trim(&b, &room);
	assert_int_equal(room, 100);
	assert_non_null(b.data);
	assert_memory_equal(b.data, "xxxx", 4);

	/* within an eighth of the bytes: left alone */
	b.data = realloc(b.data, 110);
	assert_non_null(b.data);
	room = 110;
	exchange_capture_trim(&b, &room);
	assert_int_equal(room, 110);
	room = 113;
	exchange_capture_trim(&b, &room);
	assert_int_equal(room, 100);

	/* a buffer and no bytes: freed */
	b.len = 0;
	room = 100;
	exchange_capture_trim(&b, &room);
	assert_null(b.data);
	assert_int_equal(room, 0);
}

static void
test_capture_resp_and_rec_fail(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	struct store_request *r;

	/* no record: nothing happens */
	exchange_capture_resp(c, "abc", 3);
	exchange_rec_fail(c, 502, "x");
	assert_int_equal(c->ex.resp_room, 0);

	c->ex.rec = store_rec_new(STORE_REC_REQUEST);
	assert_non_null(c->ex.rec);
	r = &c->ex.rec->u.req;
	exchange_capture_resp(c, "abc", 3);
	assert_int_equal(r->resp_body.len, 3);
	assert_memory_equal(r->resp_body.data, "abc", 3);
	assert_int_equal(r->req_body.len, 0);

	/* the first status and the first error stay */
	exchange_rec_fail(c, 0, NULL);
	assert_int_equal(r->status, 0);
	assert_null(r->error);
	exchange_rec_fail(c, 502, "first");
	exchange_rec_fail(c, 504, "second");
	exchange_rec_fail(c, 0, "third");
	assert_int_equal(r->status, 502);
	assert_string_equal(r->error, "first");
	store_rec_free(c->ex.rec);
	c->ex.rec = NULL;
}

/* Parse a request head on c as h1_parse_request does, up to the pause
 * at the head's end. */
static void
parse_head(struct conn *c, const char *raw)
{
	size_t n = strlen(raw);

	assert_int_equal(evbuffer_add(c->h1.raw_head, raw, n), 0);
	assert_int_equal(llhttp_execute(&c->h1.reqp, raw, n), HPE_PAUSED);
	llhttp_resume(&c->h1.reqp);
	c->h1.head_bytes = n;
}

static void
test_begin_fields(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	struct store_request *r;

	parse_head(
	    c, "DELETE http://a.test/x HTTP/1.1\r\nHost: a.test\r\n\r\n");
	c->t_state_us = 12345;
	c->idle_trimmed = 1;
	c->ex.req_room = c->ex.resp_room = 99;
	c->ex.resp_expect = 7;
	assert_int_equal(exchange_begin(c, 1), 0);
	r = &c->ex.rec->u.req;
	assert_int_equal(c->ex.rec->type, STORE_REC_REQUEST);
	assert_int_equal(r->conn_id, c->id);
	assert_int_equal(r->seq, 1);
	assert_int_equal(c->tot.nrequests, 1);
	assert_int_equal(r->t_start_us, 12345);
	assert_string_equal(r->client_ip, "127.0.0.1");
	assert_string_equal(r->scheme, "http");
	assert_int_equal(r->req_header_bytes, c->h1.head_bytes);
	assert_string_equal(r->method, "DELETE");
	assert_string_equal(r->req_version, "1.1");
	assert_false(c->idle_trimmed);
	assert_int_equal(c->ex.req_room, 0);
	assert_int_equal(c->ex.resp_room, 0);
	assert_int_equal(c->ex.resp_expect, 0);
	assert_int_equal(r->dns_us, -1);

	/* a second request replaces the record (ASan: the first is freed)
	 * and counts on */
	assert_int_equal(exchange_begin(c, 1), 0);
	assert_int_equal(c->ex.rec->u.req.seq, 2);
	store_rec_free(c->ex.rec);
	c->ex.rec = NULL;
}

static void
test_begin_refused_head_keeps_target(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	static const char bad[] =
	    "GET http://a.test/seen HTTP/1.1\r\nBad Field";

	/* what llhttp took before refusing */
	(void)llhttp_execute(&c->h1.reqp, bad, sizeof(bad) - 1);
	assert_int_equal(exchange_begin(c, 0), 0);
	assert_string_equal(c->ex.rec->u.req.path, "http://a.test/seen");
	assert_null(c->ex.rec->u.req.method);
	store_rec_free(c->ex.rec);
	c->ex.rec = NULL;

	/* nothing at all: no path */
	h1_reset(c);
	assert_int_equal(exchange_begin(c, 0), 0);
	assert_null(c->ex.rec->u.req.path);
	store_rec_free(c->ex.rec);
	c->ex.rec = NULL;
}

/*
 * Regression: h1_req_headers_complete sets req_expect from Content-Length
 * and exchange_begin used to zero it again, so the request body capture
 * was never sized from the announced length.
 */
static void
test_begin_keeps_request_length(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	uint64_t expect;

	parse_head(c,
	    "POST http://a.test/ HTTP/1.1\r\nHost: a.test\r\n"
	    "Content-Length: 100\r\n\r\n");
	assert_int_equal(c->ex.req_expect, 100);
	assert_int_equal(exchange_begin(c, 1), 0);
	expect = c->ex.req_expect;
	store_rec_free(c->ex.rec);
	c->ex.rec = NULL;
	assert_int_equal(expect, 100);
}

static void
test_inner_target(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	const char *why = NULL;
	static const struct {
		const char *host; /* Host field, NULL for none */
		const char *want; /* the record's host */
	} cases[] = {
	    {"Example.COM:8443", "example.com"},
	    {"b.test", "b.test"},
	    {"[2001:DB8::1]:443", "2001:db8::1"},
	    {NULL, "sni.test"},
	};

	c->inner = CONN_INNER_HTTPS;
	c->tls.tunnel_host = strdup("192.0.2.7");
	c->tls.tunnel_port = 8443;
	snprintf(c->tls.sni, sizeof(c->tls.sni), "sni.test");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char head[256];
		h1_reset(c);
		evbuffer_drain(
		    c->h1.raw_head, evbuffer_get_length(c->h1.raw_head));
		if (cases[i].host != NULL)
			snprintf(head, sizeof(head),
			    "GET /p?q HTTP/1.1\r\nHost: %s\r\n\r\n",
			    cases[i].host);
		else
			snprintf(
			    head, sizeof(head), "GET /p?q HTTP/1.1\r\n\r\n");
		parse_head(c, head);
		c->ex.rec = store_rec_new(STORE_REC_REQUEST);
		assert_non_null(c->ex.rec);
		url_clear(&c->ex.url);
		assert_int_equal(url_parse("/p?q", 4, &c->ex.url, &why), 0);
		assert_int_equal(exchange_inner_target(c), 0);
		/* the origin is the tunnel's, whatever the request says */
		assert_string_equal(c->ex.url.scheme, "https");
		assert_string_equal(c->ex.url.host, "192.0.2.7");
		assert_int_equal(c->ex.url.port, 8443);
		/* the record names the site */
		assert_string_equal(c->ex.rec->u.req.host, cases[i].want);
		store_rec_free(c->ex.rec);
		c->ex.rec = NULL;
	}
	/* plain HTTP inside CONNECT */
	c->inner = CONN_INNER_HTTP;
	assert_int_equal(exchange_inner_target(c), 0);
	assert_string_equal(c->ex.url.scheme, "http");
	/* a CONNECT-style target inside a tunnel: refused */
	url_clear(&c->ex.url);
	assert_int_equal(url_parse("a.test:443", 10, &c->ex.url, &why), 0);
	assert_int_equal(exchange_inner_target(c), -1);
	c->inner = CONN_INNER_NONE;
}

/*
 * Regression: a Host field whose name is empty (":443") names nothing;
 * inside a tunnel the record then names the SNI, as with no Host at all.
 */
static void
test_inner_target_empty_host_falls_back_to_sni(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	const char *why = NULL;
	char *host;

	c->inner = CONN_INNER_HTTPS;
	c->tls.tunnel_host = strdup("192.0.2.7");
	c->tls.tunnel_port = 8443;
	snprintf(c->tls.sni, sizeof(c->tls.sni), "sni.test");
	parse_head(c, "GET / HTTP/1.1\r\nHost: :443\r\n\r\n");
	c->ex.rec = store_rec_new(STORE_REC_REQUEST);
	assert_non_null(c->ex.rec);
	assert_int_equal(url_parse("/", 1, &c->ex.url, &why), 0);
	assert_int_equal(exchange_inner_target(c), 0);
	host = c->ex.rec->u.req.host != NULL ? strdup(c->ex.rec->u.req.host)
					     : NULL;
	store_rec_free(c->ex.rec);
	c->ex.rec = NULL;
	c->inner = CONN_INNER_NONE;
	assert_non_null(host);
	assert_string_equal(host, "sni.test");
	free(host);
}

static void
test_is_shortlink(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	const char *why = NULL;
	static const struct {
		const char *method, *path;
		int want;
	} cases[] = {
	    {"POST", "/mmtls/0123abCD", 1},
	    {"GET", "/mmtls/0123abcd", 0},
	    {"POST", "/mmtls/0123abcx", 0},
	    {"POST", "/mmtls/0123abcd0", 0},
	    {"POST", "/mmtls/0123abc", 0},
	    {"POST", "/mmtlz/0123abcd", 0},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char head[256];
		h1_reset(c);
		evbuffer_drain(
		    c->h1.raw_head, evbuffer_get_length(c->h1.raw_head));
		snprintf(head, sizeof(head),
		    "%s %s HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
		    cases[i].method, cases[i].path);
		parse_head(c, head);
		url_clear(&c->ex.url);
		assert_int_equal(url_parse(cases[i].path, strlen(cases[i].path),
				     &c->ex.url, &why),
		    0);
		assert_int_equal(exchange_is_shortlink(c), cases[i].want);
	}
}

static void
test_fail_answers_and_drains(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	uint64_t before = atomic_load(&f->w->exchanges);
	char got[2048];

	parse_head(c, "GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n");
	c->up = upstream_new(f->w, "a.test", 80);
	assert_non_null(c->up);
	exchange_fail(c, 502, "it broke");
	/* a record was begun for it and handed on */
	assert_null(c->ex.rec);
	assert_int_equal(atomic_load(&f->w->exchanges), before + 1);
	assert_int_equal(c->tot.nrequests, 1);
	assert_null(c->up);
	assert_false(c->client_ka);
	assert_int_equal(c->state, CONN_DRAIN);
	assert_true(c->tot.bytes_to_client > 0);
	fx_client_read(f, got, sizeof(got));
	assert_non_null(strstr(got, "HTTP/1.1 502 Bad Gateway\r\n"));
	assert_non_null(strstr(got, "Connection: close\r\n"));
	assert_non_null(strstr(got, "peephole: it broke"));
	assert_int_equal(strlen(got), c->tot.bytes_to_client);
}

static void
test_fail_after_head_sent_adds_nothing(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;

	/* the answer already began: no second head on the wire */
	c->ex.resp_head_sent = 1;
	exchange_fail(c, 502, "mid-answer");
	assert_int_equal(c->tot.bytes_to_client, 0);
	assert_int_equal(
	    evbuffer_get_length(bufferevent_get_output(c->cbev)), 0);
	assert_int_equal(c->state, CONN_DRAIN);
}

static void
test_forward_verify_error_is_502(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	char got[2048];

	c->tls.tunnel_host = strdup("o.test");
	c->tls.tunnel_port = 443;
	c->tls.verify_error = strdup("self-signed certificate");
	exchange_forward(c);
	fx_client_read(f, got, sizeof(got));
	assert_non_null(strstr(got, "HTTP/1.1 502 Bad Gateway\r\n"));
	assert_non_null(strstr(got,
	    "the certificate of o.test:443 is not "
	    "trusted: self-signed certificate"));
}

static void
test_forward_unreachable_is_502(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	char got[2048];

	c->tls.tunnel_host = strdup("o.test");
	c->tls.tunnel_port = 443;
	c->tls.verify_error = strdup("connection refused");
	c->tls.up_unreachable = 1;
	exchange_forward(c);
	fx_client_read(f, got, sizeof(got));
	assert_non_null(strstr(got, "HTTP/1.1 502 Bad Gateway\r\n"));
	assert_non_null(
	    strstr(got, "cannot reach o.test:443: connection refused"));
}

static void
test_request_head_connect_needs_authority(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	char got[2048];

	/* (llhttp itself refuses an authority-form GET) */
	parse_head(
	    c, "CONNECT http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n");
	exchange_request_head(c);
	fx_client_read(f, got, sizeof(got));
	assert_non_null(strstr(got, "HTTP/1.1 400 Bad Request\r\n"));
	assert_non_null(strstr(got, "CONNECT takes host:port"));
}

static void
test_request_head_origin_form_in_tunnel_needs_path(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	char got[2048];

	c->inner = CONN_INNER_HTTP;
	c->tls.tunnel_host = strdup("o.test");
	c->tls.tunnel_port = 80;
	parse_head(c, "OPTIONS * HTTP/1.1\r\nHost: o.test\r\n\r\n");
	exchange_request_head(c);
	fx_client_read(f, got, sizeof(got));
	assert_non_null(strstr(got, "HTTP/1.1 400 Bad Request\r\n"));
	assert_non_null(strstr(got, "inside a tunnel, requests name a path"));
}

static void
test_timeout_body_stalled_closes(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;

	/* the client stopped sending its body: closed, no answer */
	c->state = CONN_EXCHANGE;
	c->ex.req_done = 0;
	exchange_timeout(c);
	assert_false(fx_live(f, c));
	assert_int_equal(c->state, CONN_CLOSED);
	assert_int_equal(
	    evbuffer_get_length(bufferevent_get_output(c->cbev)), 0);
}

static void
test_timeout_mid_answer_closes(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;

	c->state = CONN_EXCHANGE;
	c->ex.req_done = 1;
	c->ex.resp_head_sent = 1;
	exchange_timeout(c);
	assert_false(fx_live(f, c));
	assert_int_equal(
	    evbuffer_get_length(bufferevent_get_output(c->cbev)), 0);
}

static void
test_client_eof(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;

	c->state = CONN_EXCHANGE;
	/* the request is whole: the answer can still be delivered */
	c->ex.req_done = 1;
	exchange_client_eof(c);
	assert_true(fx_live(f, c));
	/* body bytes still buffered: they go on first */
	c->ex.req_done = 0;
	fx_input_add(c->cbev, "x", 1);
	exchange_client_eof(c);
	assert_true(fx_live(f, c));
	evbuffer_drain(bufferevent_get_input(c->cbev), 1);
	/* nothing left and the request unfinished: closed */
	exchange_client_eof(c);
	assert_false(fx_live(f, c));
}

static void
test_end_closes_when_asked(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	static const char resp[] =
	    "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

	parse_head(c,
	    "GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n"
	    "Connection: close\r\n\r\n");
	assert_int_equal(exchange_begin(c, 1), 0);
	c->client_ka = llhttp_should_keep_alive(&c->h1.reqp);
	assert_false(c->client_ka);
	c->up = upstream_new(f->w, "a.test", 80);
	assert_non_null(c->up);
	h1_response_start(c);
	assert_int_equal(
	    llhttp_execute(&c->h1.respp, resp, sizeof(resp) - 1), HPE_PAUSED);
	c->state = CONN_EXCHANGE;
	exchange_end(c);
	/* the client asked to close: drained; the healthy origin pooled */
	assert_int_equal(c->state, CONN_DRAIN);
	assert_null(c->up);
	assert_null(c->dial.up_idle);
	assert_int_equal(f->w->nidle_ups, 1);
	assert_null(c->ex.rec);
}

static void
test_end_in_tunnel_follows_origin(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	static const char resp[] = "HTTP/1.1 200 OK\r\nConnection: close\r\n"
				   "Content-Length: 0\r\n\r\n";

	c->inner = CONN_INNER_HTTPS;
	parse_head(c, "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
	assert_int_equal(exchange_begin(c, 1), 0);
	assert_true(c->client_ka);
	c->up = upstream_new(f->w, "a.test", 443);
	assert_non_null(c->up);
	h1_response_start(c);
	assert_int_equal(
	    llhttp_execute(&c->h1.respp, resp, sizeof(resp) - 1), HPE_PAUSED);
	c->state = CONN_EXCHANGE;
	exchange_end(c);
	/* the two ends of a tunnel live and end together; its origin
	 * connection is never pooled */
	assert_false(c->client_ka);
	assert_int_equal(c->state, CONN_DRAIN);
	assert_null(c->up);
	assert_int_equal(f->w->nidle_ups, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		test_capture_grows_from_16k, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_capture_sized_from_expect, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_capture_cap_and_truncation, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_capture_not_recording, setup, teardown),
	    cmocka_unit_test(test_capture_trim),
	    cmocka_unit_test_setup_teardown(
		test_capture_resp_and_rec_fail, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_begin_fields, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_begin_refused_head_keeps_target, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_begin_keeps_request_length, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_inner_target, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_inner_target_empty_host_falls_back_to_sni, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(test_is_shortlink, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_fail_answers_and_drains, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_fail_after_head_sent_adds_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_forward_verify_error_is_502, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_forward_unreachable_is_502, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_request_head_connect_needs_authority, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_request_head_origin_form_in_tunnel_needs_path, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(
		test_timeout_body_stalled_closes, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_timeout_mid_answer_closes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_client_eof, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_end_closes_when_asked, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_end_in_tunnel_follows_origin, setup, teardown),
	};

	return cmocka_run_group_tests_name("exchange", tests, NULL, NULL);
}
