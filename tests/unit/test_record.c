/*
 * Unit tests for proxy/net/record.c: the connections row (every total and
 * TLS field, empty text as NULL, the listener and its target), the origin
 * timings of a fresh and a reused connection, the request and answer head
 * fields, and peephole's own answers parsed back into the record (reason,
 * fields, content type, body, across evbuffer chains, under the capture
 * limits).
 *
 * record.c is included (h2o style) so its static helpers are reachable;
 * the archive's record.o is then never pulled in.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "proxy/net/record.c"

#include "tests/unit/conn_fixture.h"

static int
setup(void **state)
{
	struct fx *f = fx_new();

	assert_non_null(f);
	assert_non_null(f->c);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	store_rec_free(f->c->ex.rec);
	f->c->ex.rec = NULL;
	fx_free(f);
	return 0;
}

/* A request record on c, as exchange_begin leaves one. */
static struct store_request *
req_rec(struct conn *c)
{
	c->ex.rec = store_rec_new(STORE_REC_REQUEST);
	assert_non_null(c->ex.rec);
	return &c->ex.rec->u.req;
}

/* The n bytes of s as a separate evbuffer chain (no coalescing). */
static void
add_chain(struct evbuffer *b, const char *s)
{
	assert_int_equal(
	    evbuffer_add_reference(b, s, strlen(s), NULL, NULL), 0);
}

/* 1 if the n bytes at p hold s (memmem is GNU). */
static int
has_span(const unsigned char *p, size_t n, const char *s)
{
	size_t m = strlen(s);

	for (size_t i = 0; i + m <= n; i++)
		if (memcmp(p + i, s, m) == 0)
			return 1;
	return 0;
}

static void
test_conn_row_copies_every_field(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	int64_t before = now_us();

	c->id = 4242;
	c->tot.t_accept_us = 111;
	c->tot.t_first_byte_us = 222;
	c->tot.bytes_from_client = 1001;
	c->tot.bytes_to_client = 1002;
	c->tot.bytes_to_server = 1003;
	c->tot.bytes_from_server = 1004;
	c->tot.nrequests = 7;
	c->tot.target_host = strdup("example.com");
	c->tot.target_port = 8443;
	snprintf(c->tot.server_ip, sizeof(c->tot.server_ip), "192.0.2.9");
	c->tot.server_port = 443;
	c->tot.protocol = "tunnel";
	snprintf(c->tls.sni, sizeof(c->tls.sni), "sni.example");
	snprintf(c->tls.alpn, sizeof(c->tls.alpn), "h2,http/1.1");
	c->tls.decision = "intercept";
	c->tls.decision_reason = strdup("rule *.example");
	snprintf(c->tls.tls_client, sizeof(c->tls.tls_client), "TLSv1.3/A");
	snprintf(c->tls.tls_server, sizeof(c->tls.tls_server), "TLSv1.2/B");
	snprintf(c->tls.cert_sha, sizeof(c->tls.cert_sha), "%064d", 5);
	snprintf(c->tls.cert_subject, sizeof(c->tls.cert_subject), "CN=s");
	snprintf(c->tls.cert_issuer, sizeof(c->tls.cert_issuer), "CN=i");
	c->tls.verify_error = strdup("self-signed");

	struct store_rec *rec = record_conn_row(c, "client-eof", "boom");
	assert_non_null(rec);
	assert_int_equal(rec->type, STORE_REC_CONN);
	struct store_conn *sc = &rec->u.conn;
	assert_int_equal(sc->id, 4242);
	assert_string_equal(sc->listener, "http");
	assert_string_equal(sc->client_ip, "127.0.0.1");
	assert_int_equal(sc->client_port, 5555);
	assert_string_equal(sc->target_host, "example.com");
	assert_int_equal(sc->target_port, 8443);
	assert_string_equal(sc->server_ip, "192.0.2.9");
	assert_int_equal(sc->server_port, 443);
	assert_string_equal(sc->protocol, "tunnel");
	assert_int_equal(sc->t_accept_us, 111);
	assert_int_equal(sc->t_first_byte_us, 222);
	assert_true(sc->t_close_us >= before && sc->t_close_us <= now_us());
	assert_int_equal(sc->bytes_from_client, 1001);
	assert_int_equal(sc->bytes_to_client, 1002);
	assert_int_equal(sc->bytes_to_server, 1003);
	assert_int_equal(sc->bytes_from_server, 1004);
	assert_int_equal(sc->nrequests, 7);
	assert_string_equal(sc->close_reason, "client-eof");
	assert_string_equal(sc->error, "boom");
	assert_string_equal(sc->sni, "sni.example");
	assert_string_equal(sc->alpn, "h2,http/1.1");
	assert_string_equal(sc->decision, "intercept");
	assert_string_equal(sc->decision_reason, "rule *.example");
	assert_string_equal(sc->tls_client, "TLSv1.3/A");
	assert_string_equal(sc->tls_server, "TLSv1.2/B");
	assert_int_equal(strlen(sc->upstream_cert_sha256), 64);
	assert_string_equal(sc->upstream_cert_subject, "CN=s");
	assert_string_equal(sc->upstream_cert_issuer, "CN=i");
	assert_string_equal(sc->verify_error, "self-signed");
	/* no tunnel target: no listener_target */
	assert_null(sc->listener_target);
	/* the row is its own: nothing points into c */
	assert_ptr_not_equal(sc->target_host, c->tot.target_host);
	assert_ptr_not_equal(sc->decision_reason, c->tls.decision_reason);
	assert_ptr_not_equal(sc->decision, c->tls.decision);
	assert_true(rec->print);
	store_rec_free(rec);
}

static void
test_conn_row_empty_text_is_null(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;

	/* a plain proxied connection: no TLS facts at all */
	struct store_rec *rec = record_conn_row(c, "done", NULL);
	assert_non_null(rec);
	struct store_conn *sc = &rec->u.conn;
	assert_string_equal(sc->protocol, "http");
	assert_null(sc->error);
	assert_null(sc->target_host);
	assert_null(sc->server_ip);
	assert_null(sc->sni);
	assert_null(sc->alpn);
	assert_null(sc->decision);
	assert_null(sc->decision_reason);
	assert_null(sc->tls_client);
	assert_null(sc->tls_server);
	assert_null(sc->upstream_cert_sha256);
	assert_null(sc->upstream_cert_subject);
	assert_null(sc->upstream_cert_issuer);
	assert_null(sc->verify_error);
	assert_null(sc->listener_target);
	/* a socketpair has no TCP_INFO */
	assert_int_equal(sc->has_tcpinfo_client, 0);
	assert_int_equal(sc->has_tcpinfo_server, 0);
	store_rec_free(rec);
}

static void
test_conn_row_listener_target(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	struct store_rec *rec;

	c->tls.tunnel_host = strdup("example.com");
	c->tls.tunnel_port = 443;
	rec = record_conn_row(c, "done", NULL);
	assert_non_null(rec);
	assert_string_equal(rec->u.conn.listener_target, "example.com:443");
	store_rec_free(rec);

	free(c->tls.tunnel_host);
	c->tls.tunnel_host = strdup("2001:db8::1");
	c->tls.tunnel_port = 8443;
	rec = record_conn_row(c, "done", NULL);
	assert_non_null(rec);
	assert_string_equal(rec->u.conn.listener_target, "[2001:db8::1]:8443");
	store_rec_free(rec);

	free(c->tls.tunnel_host);
	c->tls.tunnel_host = strdup("192.0.2.1");
	c->tls.tunnel_port = 80;
	rec = record_conn_row(c, "done", NULL);
	assert_non_null(rec);
	assert_string_equal(rec->u.conn.listener_target, "192.0.2.1:80");
	store_rec_free(rec);
}

static void
test_conn_row_listener_by_mode(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	static const struct {
		int mode;
		const char *name;
	} want[] = {
	    {CONFIG_LISTEN_HTTP, "http"},
	    {CONFIG_LISTEN_SOCKS5, "socks5"},
	    {CONFIG_LISTEN_TRANSPARENT, "transparent"},
	};
	int mode = c->mode;

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		c->mode = want[i].mode;
		struct store_rec *rec = record_conn_row(c, "done", NULL);
		assert_non_null(rec);
		assert_string_equal(rec->u.conn.listener, want[i].name);
		store_rec_free(rec);
	}
	c->mode = mode;
}

static void
test_conn_row_print_follows_quiet(void **state)
{
	struct fx *f = *state;
	struct store_rec *rec;

	f->cfg.quiet = 1;
	rec = record_conn_row(f->c, "done", NULL);
	assert_non_null(rec);
	assert_false(rec->print);
	store_rec_free(rec);
	f->cfg.quiet = 0;
	rec = record_conn_row(f->c, "done", NULL);
	assert_non_null(rec);
	assert_true(rec->print);
	store_rec_free(rec);
}

static void
test_upstream_timings_fresh(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	struct upstream u;
	struct store_request *r = req_rec(c);

	memset(&u, 0, sizeof(u));
	u.dns_us = 10;
	u.connect_us = 20;
	u.tls_us = 30;
	u.tls = 1;
	c->up = &u;
	record_upstream_timings(c);
	c->up = NULL;
	assert_int_equal(r->upstream_reused, 0);
	assert_int_equal(r->dns_us, 10);
	assert_int_equal(r->connect_us, 20);
	assert_int_equal(r->tls_us, 30);
}

static void
test_upstream_timings_reused(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	struct upstream u;
	struct store_request *r = req_rec(c);

	memset(&u, 0, sizeof(u));
	u.dns_us = 10;
	u.connect_us = 20;
	u.tls_us = 30;
	u.uses = 2;
	u.tls = 1;
	c->up = &u;
	record_upstream_timings(c);
	assert_int_equal(r->upstream_reused, 1);
	assert_int_equal(r->dns_us, 0);
	assert_int_equal(r->connect_us, 0);
	assert_int_equal(r->tls_us, 0);

	/* plain TCP reused: no TLS phase, tls_us stays "did not happen" */
	store_rec_free(c->ex.rec);
	r = req_rec(c);
	u.tls = 0;
	record_upstream_timings(c);
	c->up = NULL;
	assert_int_equal(r->upstream_reused, 1);
	assert_int_equal(r->dns_us, 0);
	assert_int_equal(r->connect_us, 0);
	assert_int_equal(r->tls_us, -1);
}

static void
test_upstream_timings_without_rec_or_up(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	struct upstream u;

	memset(&u, 0, sizeof(u));
	c->up = &u;
	record_upstream_timings(c); /* no record: nothing to do */
	c->up = NULL;
	struct store_request *r = req_rec(c);
	record_upstream_timings(c); /* no origin: left as is */
	assert_int_equal(r->dns_us, -1);
	assert_int_equal(r->connect_us, -1);
	assert_int_equal(r->upstream_reused, 0);
}

static void
test_request_head_fields(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	static const char req[] = "PUT http://a.test/x HTTP/1.0\r\n"
				  "Host: a.test\r\nX-One: 1\r\n\r\n";
	struct store_request *r = req_rec(c);

	assert_int_equal(
	    llhttp_execute(&c->h1.reqp, req, sizeof(req) - 1), HPE_PAUSED);
	llhttp_resume(&c->h1.reqp);
	record_request_head(c);
	assert_string_equal(r->method, "PUT");
	assert_string_equal(r->req_version, "1.0");
	assert_non_null(r->req_headers);
	assert_non_null(strstr(r->req_headers, "Host: a.test"));
	assert_non_null(strstr(r->req_headers, "X-One: 1"));
	assert_null(strstr(r->req_headers, "PUT"));
}

static void
test_response_head_fields(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	static const char resp[] = "HTTP/1.0 404 Not Here\r\n"
				   "content-TYPE: text/x-test\r\n"
				   "X-Two: 2\r\nContent-Length: 0\r\n\r\n";
	struct store_request *r = req_rec(c);

	h1_response_start(c);
	assert_int_equal(
	    llhttp_execute(&c->h1.respp, resp, sizeof(resp) - 1), HPE_PAUSED);
	/* what record_own_answer may have said before is replaced */
	r->resp_version = strdup("9.9");
	r->resp_reason = strdup("old");
	record_response_head(c);
	assert_int_equal(r->status, 404);
	assert_string_equal(r->resp_version, "1.0");
	assert_string_equal(r->resp_reason, "Not Here");
	assert_non_null(strstr(r->resp_headers, "X-Two: 2"));
	assert_string_equal(r->content_type, "text/x-test");
}

static void
test_response_head_keeps_content_type(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	static const char resp[] = "HTTP/1.1 200 OK\r\n"
				   "Content-Type: text/html\r\n"
				   "Content-Length: 0\r\n\r\n";
	struct store_request *r = req_rec(c);

	h1_response_start(c);
	assert_int_equal(
	    llhttp_execute(&c->h1.respp, resp, sizeof(resp) - 1), HPE_PAUSED);
	r->content_type = strdup("application/first");
	record_response_head(c);
	assert_string_equal(r->content_type, "application/first");
	assert_int_equal(r->status, 200);
	assert_string_equal(r->resp_reason, "OK");
}

static const char own_head[] = "HTTP/1.1 502 Bad Gateway\r\n"
			       "content-TYPE: text/plain\r\n"
			       "Content-Length: 4\r\n"
			       "Connection: close\r\n\r\n";

static void
test_own_answer_parsed(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	struct evbuffer *out = evbuffer_new();
	struct store_request *r = req_rec(c);
	size_t before, n;

	assert_non_null(out);
	/* bytes of an earlier answer still queued ahead of this one */
	evbuffer_add_printf(out, "HTTP/1.1 200 OK\r\n\r\nolder");
	before = evbuffer_get_length(out);
	evbuffer_add_printf(out, "%sbody", own_head);
	n = evbuffer_get_length(out) - before;
	record_own_answer(c, out, before, n);
	assert_string_equal(r->resp_version, "1.1");
	assert_string_equal(r->resp_reason, "Bad Gateway");
	assert_int_equal(r->resp_header_bytes, sizeof(own_head) - 1);
	assert_string_equal(r->resp_headers,
	    "content-TYPE: text/plain\r\nContent-Length: 4\r\n"
	    "Connection: close\r\n");
	assert_string_equal(r->content_type, "text/plain");
	assert_int_equal(r->resp_body.len, 4);
	assert_int_equal(r->resp_body.total, 4);
	assert_false(r->resp_body.truncated);
	assert_memory_equal(r->resp_body.data, "body", 4);
	/* nothing was taken from the buffer */
	assert_int_equal(evbuffer_get_length(out), before + n);
	evbuffer_free(out);
}

static void
test_own_answer_across_chains(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	struct evbuffer *out = evbuffer_new();
	struct store_request *r = req_rec(c);

	assert_non_null(out);
	/* the head split mid-line, the head's end and the body's start in
	 * one chain, the body's rest in another */
	add_chain(out, "HTTP/1.1 503 Service Unav");
	add_chain(out, "ailable\r\nContent-Type: text/plain\r\n");
	add_chain(out, "Content-Length: 10\r\n\r\nfirst");
	add_chain(out, "-half");
	record_own_answer(c, out, 0, evbuffer_get_length(out));
	assert_string_equal(r->resp_reason, "Service Unavailable");
	assert_string_equal(r->content_type, "text/plain");
	assert_int_equal(r->resp_body.len, 10);
	assert_memory_equal(r->resp_body.data, "first-half", 10);
	evbuffer_free(out);
}

static void
test_own_answer_n_bounds_the_body(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	struct evbuffer *out = evbuffer_new();
	struct store_request *r = req_rec(c);
	size_t n;

	assert_non_null(out);
	evbuffer_add_printf(out, "%sbody", own_head);
	n = evbuffer_get_length(out);
	/* bytes queued after this answer are not its body */
	evbuffer_add_printf(out, "HTTP/1.1 200 OK\r\n\r\nlater");
	record_own_answer(c, out, 0, n);
	assert_int_equal(r->resp_body.len, 4);
	assert_memory_equal(r->resp_body.data, "body", 4);
	evbuffer_free(out);
}

static void
test_own_answer_capture_limits(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	struct evbuffer *out = evbuffer_new();
	struct store_request *r;

	assert_non_null(out);
	f->cfg.body_capture_bytes = 2;
	r = req_rec(c);
	evbuffer_add_printf(out, "%sbody", own_head);
	record_own_answer(c, out, 0, evbuffer_get_length(out));
	assert_int_equal(r->resp_body.len, 2);
	assert_int_equal(r->resp_body.total, 4);
	assert_true(r->resp_body.truncated);
	assert_memory_equal(r->resp_body.data, "bo", 2);
	/* the head is recorded whatever the body limit */
	assert_string_equal(r->resp_reason, "Bad Gateway");

	/* record-flows no: nothing kept, the size still counted */
	store_rec_free(c->ex.rec);
	f->cfg.body_capture_bytes = 1024;
	f->cfg.record_flows = 0;
	c->ex.resp_room = 0;
	r = req_rec(c);
	record_own_answer(c, out, 0, evbuffer_get_length(out));
	assert_int_equal(r->resp_body.len, 0);
	assert_null(r->resp_body.data);
	assert_int_equal(r->resp_body.total, 4);
	f->cfg.record_flows = 1;
	evbuffer_free(out);
}

static void
test_own_answer_without_blank_line(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	struct evbuffer *out = evbuffer_new();
	struct store_request *r = req_rec(c);

	assert_non_null(out);
	evbuffer_add_printf(out, "HTTP/1.1 502 Bad Gateway\r\nX: y\r\n");
	record_own_answer(c, out, 0, evbuffer_get_length(out));
	assert_string_equal(r->resp_version, "1.1");
	assert_int_equal(r->resp_header_bytes, evbuffer_get_length(out));
	assert_null(r->resp_reason);
	assert_null(r->resp_headers);
	assert_null(r->resp_body.data);

	/* a blank line past the n bytes does not count */
	store_rec_free(c->ex.rec);
	r = req_rec(c);
	size_t n = evbuffer_get_length(out);
	evbuffer_add_printf(out, "\r\nbody");
	record_own_answer(c, out, 0, n);
	assert_null(r->resp_reason);
	assert_null(r->resp_headers);
	evbuffer_free(out);
}

static void
test_own_answer_from_respond_error(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	struct evbuffer *out = evbuffer_new();
	struct store_request *r = req_rec(c);
	int n;

	assert_non_null(out);
	n = respond_error(out, 504, "origin did not answer in time", 0, 0);
	assert_true(n > 0);
	record_own_answer(c, out, 0, (size_t)n);
	assert_string_equal(r->resp_reason, "Gateway Timeout");
	assert_string_equal(r->content_type, "text/plain; charset=utf-8");
	assert_non_null(r->resp_body.data);
	assert_true(r->resp_body.len > 0);
	assert_int_equal(r->resp_body.len + r->resp_header_bytes, (size_t)n);
	assert_true(has_span(r->resp_body.data, r->resp_body.len,
	    "origin did not answer in time"));
	evbuffer_free(out);
}

/*
 * Regression: a status line without a reason phrase ("HTTP/1.1 204\r\n",
 * which RFC 9112 allows) took its "reason" from the next line.
 */
static void
test_own_answer_no_reason_phrase(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	struct evbuffer *out = evbuffer_new();
	struct store_request *r = req_rec(c);

	assert_non_null(out);
	evbuffer_add_printf(out, "HTTP/1.1 204\r\nX-A: b c\r\n\r\n");
	record_own_answer(c, out, 0, evbuffer_get_length(out));
	assert_string_equal(r->resp_headers, "X-A: b c\r\n");
	assert_null(r->resp_reason);
	assert_int_equal(r->status, 204);
	evbuffer_free(out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		test_conn_row_copies_every_field, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_conn_row_empty_text_is_null, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_conn_row_listener_target, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_conn_row_listener_by_mode, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_conn_row_print_follows_quiet, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_upstream_timings_fresh, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_upstream_timings_reused, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_upstream_timings_without_rec_or_up, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_request_head_fields, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_response_head_fields, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_response_head_keeps_content_type, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_own_answer_parsed, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_own_answer_across_chains, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_own_answer_n_bounds_the_body, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_own_answer_capture_limits, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_own_answer_without_blank_line, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_own_answer_from_respond_error, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_own_answer_no_reason_phrase, setup, teardown),
	};

	return cmocka_run_group_tests_name("record", tests, NULL, NULL);
}
