/*
 * Unit tests for proxy/net/h1.c, the HTTP/1 codec: the head that goes
 * upstream (the explicit proxy's RFC 9110 rewrites, and byte for byte
 * inside a tunnel), reading a request head from the client's input
 * (partial, complete, malformed, too large), the answer head sent to the
 * client (hop-by-hop fields, the proxy's own Connection field, 1xx and
 * 101), and the answer body relayed as it came (framing included, HEAD
 * and 204 bodiless, back-pressure, a broken answer).
 *
 * h1.c is included (h2o style) to reach h1_emit_response_head and the
 * helpers; the archive's h1.o is then never pulled in. The connection is
 * a real one (conn_fixture.h); the origin is an unconnected upstream whose
 * input the test fills.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "proxy/net/h1.c"

#include "tests/unit/conn_fixture.h"

/* The fixture of the test running, and what reached its client's socket
 * (relay_send writes there at once when nothing is queued). */
static struct fx *h1_fx;
static struct evbuffer *h1_seen, *h1_view;

static int
setup(void **state)
{
	*state = h1_fx = fx_new();
	h1_seen = evbuffer_new();
	h1_view = evbuffer_new();
	return h1_seen == NULL || h1_view == NULL;
}

static int
teardown(void **state)
{
	fx_free(*state);
	evbuffer_free(h1_seen);
	evbuffer_free(h1_view);
	h1_fx = NULL;
	return 0;
}

/* Parse a whole request head as h1_parse_request would, keeping the raw
 * bytes where it keeps them. */
static void
feed_req(struct conn *c, const char *raw)
{
	size_t n = strlen(raw);

	assert_int_equal(evbuffer_add(c->h1.raw_head, raw, n), 0);
	assert_int_equal(llhttp_execute(&c->h1.reqp, raw, n), HPE_PAUSED);
	assert_ptr_equal(llhttp_get_error_pos(&c->h1.reqp), raw + n);
	llhttp_resume(&c->h1.reqp);
}

/* A new request on the same connection, as exchange_end leaves it. */
static void
next_req(struct conn *c)
{
	h1_reset(c);
	evbuffer_drain(c->h1.raw_head, evbuffer_get_length(c->h1.raw_head));
}

/* Build the upstream head of raw and check it against want. */
static void
check_up_head(struct conn *c, const char *raw, const char *want)
{
	feed_req(c, raw);
	assert_int_equal(h1_build_up_head(c), 0);
	assert_string_equal(fx_text(c->h1.up_head), want);
}

static void
test_up_head_explicit_rewrites(void **state)
{
	struct fx *f = *state;

	check_up_head(f->c,
	    "GET http://a.test:8080/a/b?c=d HTTP/1.1\r\n"
	    "Host: wrong\r\n"
	    "Proxy-Connection: keep-alive\r\n"
	    "Proxy-Authorization: Basic eDp5\r\n"
	    "Connection: X-Gone\r\n"
	    "X-Gone: 1\r\n"
	    "X-Kept: 2\r\n\r\n",
	    "GET /a/b?c=d HTTP/1.1\r\n"
	    "Host: a.test:8080\r\n"
	    "Connection: X-Gone\r\n"
	    "X-Kept: 2\r\n\r\n");
}

static void
test_up_head_is_rebuilt_each_time(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;

	check_up_head(c, "GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n",
	    "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
	/* a second build replaces, it does not append */
	assert_int_equal(h1_build_up_head(c), 0);
	assert_string_equal(
	    fx_text(c->h1.up_head), "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
}

static void
test_up_head_host_kept_as_spelled(void **state)
{
	struct fx *f = *state;

	/* the right authority in other case: left as the client wrote it */
	check_up_head(f->c,
	    "POST http://A.Test:81/p HTTP/1.1\r\nX-A: 1\r\n"
	    "HOST: a.test:81\r\nContent-Length: 0\r\n\r\n",
	    "POST /p HTTP/1.1\r\nX-A: 1\r\nHOST: a.test:81\r\n"
	    "Content-Length: 0\r\n\r\n");
}

static void
test_up_head_target_forms(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;

	/* no path: "/"; a query straight after the authority; userinfo
	 * left out of Host; a fragment never sent */
	check_up_head(c, "GET http://a.test HTTP/1.1\r\nHost: a.test\r\n\r\n",
	    "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
	next_req(c);
	check_up_head(c,
	    "GET http://a.test?q=1 HTTP/1.1\r\nHost: a.test\r\n\r\n",
	    "GET /?q=1 HTTP/1.1\r\nHost: a.test\r\n\r\n");
	next_req(c);
	check_up_head(c,
	    "GET http://u:pw@a.test:8000/x HTTP/1.1\r\nHost: a.test\r\n\r\n",
	    "GET /x HTTP/1.1\r\nHost: a.test:8000\r\n\r\n");
}

static void
test_up_head_connection_named_fields(void **state)
{
	struct fx *f = *state;

	/* every field Connection names goes, whatever its case; the
	 * Connection field itself and an asked-for Upgrade stay */
	check_up_head(f->c,
	    "GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n"
	    "Connection: keep-alive, X-A ,Upgrade\r\n"
	    "Keep-Alive: timeout=5\r\nx-a: 1\r\nX-B: 2\r\n"
	    "Upgrade: websocket\r\nX-A: 3\r\n\r\n",
	    "GET / HTTP/1.1\r\nHost: a.test\r\n"
	    "Connection: keep-alive, X-A ,Upgrade\r\n"
	    "X-B: 2\r\nUpgrade: websocket\r\n\r\n");
}

static void
test_up_head_http10_gets_host(void **state)
{
	struct fx *f = *state;

	check_up_head(f->c,
	    "GET http://a.test:8080/x HTTP/1.0\r\nAccept: */*\r\n\r\n",
	    "GET /x HTTP/1.0\r\nAccept: */*\r\nHost: a.test:8080\r\n\r\n");
}

static void
test_up_head_via_only_when_asked(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;

	f->cfg.via_header = 1;
	check_up_head(c, "GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n",
	    "GET / HTTP/1.1\r\nHost: a.test\r\nVia: 1.1 peephole\r\n\r\n");
	h1_reset(c);
	next_req(c);
	check_up_head(c, "GET http://a.test/ HTTP/1.0\r\n\r\n",
	    "GET / HTTP/1.0\r\nHost: a.test\r\nVia: 1.0 peephole\r\n\r\n");
}

static void
test_up_head_tunnel_byte_for_byte(void **state)
{
	struct fx *f = *state;
	static const char raw[] = "GET /p?x HTTP/1.1\r\nHost: Other\r\n"
				  "Proxy-Connection: keep-alive\r\n"
				  "Connection: X-A\r\nX-A: 1\r\n\r\n";

	f->cfg.via_header = 1;
	f->c->inner = CONN_INNER_HTTPS;
	check_up_head(f->c, raw, raw);
	f->c->inner = CONN_INNER_HTTP;
	assert_int_equal(h1_build_up_head(f->c), 0);
	assert_string_equal(fx_text(f->c->h1.up_head), raw);
}

static void
test_up_head_origin_form_refused(void **state)
{
	struct fx *f = *state;

	/* the explicit proxy needs an absolute URL to name the origin */
	feed_req(f->c, "GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n");
	assert_int_equal(h1_build_up_head(f->c), -1);
	assert_int_equal(evbuffer_get_length(f->c->h1.up_head), 0);
}

/* Put bytes in the client's input as a read would, and parse. */
static void
client_sends(struct conn *c, const char *s)
{
	fx_input_add(c->cbev, s, strlen(s));
	h1_parse_request(c);
}

static void
test_parse_partial_head(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	static const char part[] = "GET http://a.test/ HTTP/1.1\r\nHost: a";

	client_sends(c, part);
	assert_int_equal(c->state, CONN_READ_HEAD);
	assert_true(c->h1.in_head);
	assert_int_equal(c->h1.head_bytes, sizeof(part) - 1);
	assert_int_equal(c->tot.bytes_from_client, sizeof(part) - 1);
	assert_int_equal(
	    evbuffer_get_length(bufferevent_get_input(c->cbev)), 0);
	assert_string_equal(fx_text(c->h1.raw_head), part);
	assert_null(c->ex.rec);
}

static void
test_parse_complete_head(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	static const char head[] = "GET https://a.test/x HTTP/1.1\r\n"
				   "Host: a.test\r\n\r\n";
	char got[2048];

	/* complete in two reads; the pipelined bytes after it stay unread
	 * by the head parser. https:// through the explicit proxy: 501 */
	client_sends(c, "GET https://a.test/x HT");
	client_sends(c, "TP/1.1\r\nHost: a.test\r\n\r\nGET /next");
	assert_false(c->h1.in_head);
	assert_int_equal(c->h1.head_bytes, sizeof(head) - 1);
	assert_string_equal(fx_text(c->h1.raw_head), head);
	assert_int_equal(c->tot.nrequests, 1);
	assert_int_equal(c->state, CONN_DRAIN);
	fx_client_read(f, got, sizeof(got));
	assert_non_null(strstr(got, "HTTP/1.1 501 Not Implemented\r\n"));
	assert_non_null(strstr(got, "reached with CONNECT"));
}

static void
test_parse_malformed_is_400(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	char got[2048];

	client_sends(c, "GET http://a.test/ HTTP/1.1\r\nBad Field: x\r\n\r\n");
	assert_int_equal(c->state, CONN_DRAIN);
	assert_false(c->client_ka);
	fx_client_read(f, got, sizeof(got));
	assert_non_null(strstr(got, "HTTP/1.1 400 Bad Request\r\n"));
	assert_non_null(strstr(got, "Connection: close\r\n"));
	assert_non_null(strstr(got, "malformed request"));
}

static void
test_parse_head_over_limit_is_431(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	char big[3000], got[2048];

	/* over the 2K max-header-size, in slices: the limit counts the
	 * whole head, not one read */
	client_sends(c, "GET http://a.test/ HTTP/1.1\r\n");
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "X-Big: ", 7);
	client_sends(c, big);
	assert_int_equal(c->state, CONN_DRAIN);
	fx_client_read(f, got, sizeof(got));
	assert_non_null(
	    strstr(got, "HTTP/1.1 431 Request Header Fields Too Large\r\n"));
}

static void
test_parse_two_hosts_is_400(void **state)
{
	struct fx *f = *state;
	char got[2048];

	client_sends(f->c,
	    "GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n"
	    "Host: b.test\r\n\r\n");
	fx_client_read(f, got, sizeof(got));
	assert_non_null(strstr(got, "HTTP/1.1 400 Bad Request\r\n"));
	assert_non_null(strstr(got, "more than one Host"));
}

/* A request (whose head is req) in EXCHANGE with an unconnected origin,
 * its record begun. */
static void
exchange_with_origin(struct fx *f, const char *req)
{
	struct conn *c = f->c;

	feed_req(c, req);
	assert_int_equal(exchange_begin(c, 1), 0);
	c->ex.is_head = c->h1.reqp.method == HTTP_HEAD;
	c->ex.req_upgrade = c->h1.reqp.upgrade;
	c->up = upstream_new(f->w, "a.test", 80);
	assert_non_null(c->up);
	c->state = CONN_EXCHANGE;
	h1_response_start(c);
}

/* The origin sends s; the codec moves what it can. */
static void
origin_sends(struct conn *c, const char *s)
{
	fx_input_add(c->up->bev, s, strlen(s));
	h1_feed_response(c);
}

/*
 * Everything sent to the client and not yet taken by the test: what
 * reached its socket, then what is still queued on the connection's
 * output, then an answer head h1 holds back to send with the body's
 * first bytes. A copy: client_written() takes all three.
 */
static struct evbuffer *
client_out(struct conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->cbev);
	struct evbuffer_iovec v[64];
	char buf[4096];
	ssize_t n;
	int nv;

	while ((n = recv(h1_fx->client, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
		assert_int_equal(evbuffer_add(h1_seen, buf, (size_t)n), 0);
	evbuffer_drain(h1_view, evbuffer_get_length(h1_view));
	nv = evbuffer_peek(h1_seen, -1, NULL, v, 64);
	for (int i = 0; i < nv && i < 64; i++)
		evbuffer_add(h1_view, v[i].iov_base, v[i].iov_len);
	nv = evbuffer_peek(out, -1, NULL, v, 64);
	for (int i = 0; i < nv && i < 64; i++)
		evbuffer_add(h1_view, v[i].iov_base, v[i].iov_len);
	/* an answer head waiting for its body's first bytes */
	nv = evbuffer_peek(c->h1.down_head, -1, NULL, v, 64);
	for (int i = 0; i < nv && i < 64; i++)
		evbuffer_add(h1_view, v[i].iov_base, v[i].iov_len);
	return h1_view;
}

/* The test has read what the client was sent. */
static void
client_written(struct conn *c)
{
	(void)client_out(c);
	evbuffer_drain(h1_seen, evbuffer_get_length(h1_seen));
	evbuffer_drain(c->h1.down_head, evbuffer_get_length(c->h1.down_head));
	fx_written(bufferevent_get_output(c->cbev));
}

/* Parse an answer head into raw_resp and resph, as h1_feed_response does
 * before it emits it. */
static void
feed_resp(struct conn *c, const char *raw)
{
	size_t n = strlen(raw);

	h1_response_start(c);
	assert_int_equal(evbuffer_add(c->h1.raw_resp, raw, n), 0);
	assert_int_equal(llhttp_execute(&c->h1.respp, raw, n), HPE_PAUSED);
}

static void
test_emit_drops_hop_fields(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;

	feed_req(c, "GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n");
	assert_int_equal(exchange_begin(c, 1), 0);
	c->ex.req_done = 1;
	feed_resp(c,
	    "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\n"
	    "Keep-Alive: timeout=5\r\nX-Hop: 1\r\nProxy-Connection: x\r\n"
	    "X-End: 2\r\nContent-Length: 0\r\n\r\n");
	assert_int_equal(h1_emit_response_head(c), 0);
	/* an HTTP/1.1 client kept alive needs no Connection field */
	assert_string_equal(fx_text(client_out(c)),
	    "HTTP/1.1 200 OK\r\nX-End: 2\r\nContent-Length: 0\r\n\r\n");
	assert_true(c->client_ka);
	assert_int_equal(evbuffer_get_length(c->h1.raw_resp), 0);
	assert_int_equal(
	    c->tot.bytes_to_client, evbuffer_get_length(client_out(c)));
	/* the record has the origin's head as it came */
	assert_int_equal(c->ex.rec->u.req.status, 200);
	assert_non_null(strstr(c->ex.rec->u.req.resp_headers, "X-Hop: 1"));
}

static void
test_emit_connection_field(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;

	/* HTTP/1.0 client kept alive: told so */
	feed_req(c, "GET http://a.test/ HTTP/1.0\r\n\r\n");
	assert_int_equal(exchange_begin(c, 1), 0);
	c->ex.req_done = 1;
	feed_resp(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
	assert_int_equal(h1_emit_response_head(c), 0);
	assert_string_equal(fx_text(client_out(c)),
	    "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
	    "Connection: keep-alive\r\n\r\n");
	client_written(c);

	/* request body not all read: the client connection cannot go on */
	c->ex.req_done = 0;
	feed_resp(c, "HTTP/1.1 413 Too Big\r\nContent-Length: 0\r\n\r\n");
	assert_int_equal(h1_emit_response_head(c), 0);
	assert_false(c->client_ka);
	assert_string_equal(fx_text(client_out(c)),
	    "HTTP/1.1 413 Too Big\r\nContent-Length: 0\r\n"
	    "Connection: close\r\n\r\n");
	client_written(c);

	/* a close-delimited body ends the client connection too */
	c->client_ka = 1;
	c->ex.req_done = 1;
	feed_resp(c, "HTTP/1.1 200 OK\r\n\r\n");
	assert_int_equal(h1_emit_response_head(c), 0);
	assert_false(c->client_ka);
	assert_non_null(
	    strstr(fx_text(client_out(c)), "Connection: close\r\n"));
	client_written(c);

	/* shutting down: close */
	c->client_ka = 1;
	f->w->shutting_down = 1;
	feed_resp(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
	assert_int_equal(h1_emit_response_head(c), 0);
	f->w->shutting_down = 0;
	assert_false(c->client_ka);
	assert_non_null(
	    strstr(fx_text(client_out(c)), "Connection: close\r\n"));
}

static void
test_emit_tunnel_byte_for_byte(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	static const char resp[] = "HTTP/1.1 200 OK\r\nConnection: close\r\n"
				   "Keep-Alive: x\r\nContent-Length: 0\r\n\r\n";

	c->inner = CONN_INNER_HTTPS;
	feed_req(c, "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
	assert_int_equal(exchange_begin(c, 1), 0);
	c->ex.req_done = 1;
	feed_resp(c, resp);
	assert_int_equal(h1_emit_response_head(c), 0);
	assert_string_equal(fx_text(client_out(c)), resp);
	/* end to end: the origin said close, so the client's goes too */
	assert_false(c->client_ka);
}

static void
test_emit_interim_and_upgrade(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;

	feed_req(c,
	    "GET http://a.test/ws HTTP/1.1\r\nHost: a.test\r\n"
	    "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
	assert_int_equal(exchange_begin(c, 1), 0);
	c->ex.req_upgrade = 1;
	/* a 100 goes on as it is; the record waits for the final answer */
	feed_resp(c, "HTTP/1.1 100 Continue\r\n\r\n");
	assert_true(c->ex.resp_interim);
	assert_int_equal(h1_emit_response_head(c), 0);
	assert_string_equal(
	    fx_text(client_out(c)), "HTTP/1.1 100 Continue\r\n\r\n");
	assert_int_equal(c->ex.rec->u.req.status, 0);
	assert_true(c->client_ka);
	client_written(c);

	/* 101 to an asked-for upgrade: Upgrade kept, Connection: Upgrade */
	feed_resp(c,
	    "HTTP/1.1 101 Switching Protocols\r\n"
	    "Connection: upgrade\r\nUpgrade: websocket\r\n"
	    "Sec-WebSocket-Accept: x\r\n\r\n");
	c->ex.resp_interim = 0;
	assert_int_equal(h1_emit_response_head(c), 0);
	assert_string_equal(fx_text(client_out(c)),
	    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
	    "Sec-WebSocket-Accept: x\r\nConnection: Upgrade\r\n\r\n");
	assert_int_equal(c->ex.rec->u.req.status, 101);
}

static void
test_feed_response_chunked_as_is(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	static const char body[] = "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";

	exchange_with_origin(
	    f, "GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n");
	origin_sends(
	    c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
	assert_true(c->ex.resp_head_sent);
	assert_false(c->ex.resp_done);
	/* the body in two reads, split inside a chunk */
	origin_sends(c, "5\r\nhel");
	origin_sends(c, body + 6);
	assert_true(c->ex.resp_done);
	/* the request is not marked done here (h1_feed_request has not
	 * run): the exchange stays, and the client is told it ends */
	assert_int_equal(c->state, CONN_EXCHANGE);
	assert_string_equal(fx_text(client_out(c)),
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
	    "Connection: close\r\n\r\n"
	    "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
	/* framing on the wire, the payload alone in the record */
	struct store_body *b = &c->ex.rec->u.req.resp_body;
	assert_int_equal(b->len, 11);
	assert_memory_equal(b->data, "hello world", 11);
	assert_int_equal(
	    c->tot.bytes_to_client, evbuffer_get_length(client_out(c)));
	/* what came from the origin, and ours: the Connection field */
	assert_int_equal(c->tot.bytes_from_server + 19, c->tot.bytes_to_client);
	assert_int_equal(
	    evbuffer_get_length(bufferevent_get_input(c->up->bev)), 0);
}

static void
test_feed_response_bodiless(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;

	/* HEAD: a Content-Length, but no body follows */
	exchange_with_origin(
	    f, "HEAD http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n");
	assert_true(c->ex.is_head);
	origin_sends(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
	assert_true(c->ex.resp_done);
	assert_true(c->ex.resp_head_sent);
	assert_string_equal(fx_text(client_out(c)),
	    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
	    "Connection: close\r\n\r\n");
}

static void
test_exchange_ends_and_keeps_origin(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	struct upstream *up;

	exchange_with_origin(
	    f, "GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n");
	up = c->up;
	/* a bodyless request completes on the first (empty) feed */
	h1_feed_request(c);
	assert_true(c->ex.req_done);
	assert_int_equal(c->state, CONN_EXCHANGE);
	origin_sends(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
	/* both done: recorded, the origin kept for this client, the next
	 * request awaited */
	assert_int_equal(c->state, CONN_READ_HEAD);
	assert_null(c->ex.rec);
	assert_null(c->up);
	assert_ptr_equal(c->dial.up_idle, up);
	assert_int_equal(up->uses, 1);
	assert_true(c->client_ka);
	assert_false(c->ex.req_done || c->ex.resp_done);
	assert_int_equal(c->h1.head_bytes, 0);
	assert_string_equal(fx_text(client_out(c)),
	    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
}

static void
test_feed_response_204_bodiless(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;

	exchange_with_origin(
	    f, "GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n");
	origin_sends(c, "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n");
	assert_true(c->ex.resp_done);
	assert_int_equal(c->ex.rec->u.req.status, 204);
}

static void
test_feed_response_back_pressure(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	char body[4096];
	struct evbuffer *in;

	f->cfg.relay_buffer_bytes = 1024;
	exchange_with_origin(
	    f, "GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n");
	in = bufferevent_get_input(c->up->bev);
	origin_sends(c, "HTTP/1.1 200 OK\r\nContent-Length: 8192\r\n\r\n");
	memset(body, 'b', sizeof(body));
	/* one chain per slice: the codec moves whole spans */
	assert_int_equal(evbuffer_unfreeze(in, 0), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(
		    evbuffer_add_reference(in, body, 1024, NULL, NULL), 0);
	assert_int_equal(evbuffer_freeze(in, 0), 0);
	/* a client that does not read: its socket is full, so the body
	 * queues on the output instead of going out at once */
	fx_fill_socket(bufferevent_getfd(c->cbev));
	h1_feed_response(c);
	/* stopped once the client's output passed the limit */
	assert_true(evbuffer_get_length(client_out(c)) >= 1024);
	assert_true(evbuffer_get_length(in) > 0);
	assert_false(c->ex.resp_done);
	/* the client read it all: the rest moves */
	client_written(c);
	h1_feed_response(c);
	client_written(c);
	h1_feed_response(c);
	client_written(c);
	h1_feed_response(c);
	assert_int_equal(evbuffer_get_length(in), 0);
	assert_int_equal(c->ex.rec->u.req.resp_body.total, 4096);
}

static void
test_feed_response_bad_head_is_502(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	char got[2048];

	exchange_with_origin(
	    f, "GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n");
	origin_sends(c, "HTTP/1.1 2OO OK\r\n\r\n");
	assert_int_equal(c->state, CONN_DRAIN);
	assert_null(c->up);
	fx_client_read(f, got, sizeof(got));
	assert_non_null(strstr(got, "HTTP/1.1 502 Bad Gateway\r\n"));
	assert_non_null(strstr(got, "bad response from origin"));
}

static void
test_feed_request_body_moves(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	struct evbuffer *up_out;

	exchange_with_origin(f,
	    "POST http://a.test/ HTTP/1.1\r\nHost: a.test\r\n"
	    "Content-Length: 6\r\n\r\n");
	up_out = bufferevent_get_output(c->up->bev);
	/* the body and a pipelined request behind it */
	fx_input_add(c->cbev, "abcdefGET /n", 12);
	h1_feed_request(c);
	assert_true(c->ex.req_done);
	assert_string_equal(fx_text(up_out), "abcdef");
	assert_string_equal(fx_text(bufferevent_get_input(c->cbev)), "GET /n");
	assert_int_equal(c->ex.rec->u.req.req_body.len, 6);
	assert_memory_equal(c->ex.rec->u.req.req_body.data, "abcdef", 6);
	assert_int_equal(c->tot.bytes_to_server, 6);
}

static void
test_close_delimited_ends_at_origin_eof(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	char got[2048];

	exchange_with_origin(
	    f, "GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n");
	h1_feed_request(c);
	assert_true(c->ex.req_done);
	origin_sends(c, "HTTP/1.1 200 OK\r\n\r\nabc");
	assert_false(c->ex.resp_done);
	/* the origin's FIN ends the body (conn_up_eventcb, then this) */
	c->up_eof = 1;
	h1_feed_response(c);
	assert_null(c->up);
	assert_false(c->client_ka);
	assert_int_equal(c->state, CONN_DRAIN);
	fx_client_read(f, got, sizeof(got));
	assert_string_equal(
	    got, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nabc");
}

static void
test_origin_eof_before_answer_is_502(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	char got[2048];

	exchange_with_origin(
	    f, "GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n");
	h1_feed_request(c);
	/* a fresh connection: nothing to retry */
	c->up_eof = 1;
	h1_up_eof(c);
	assert_int_equal(c->state, CONN_DRAIN);
	fx_client_read(f, got, sizeof(got));
	assert_non_null(strstr(got, "HTTP/1.1 502 Bad Gateway\r\n"));
	assert_non_null(strstr(got, "before responding"));
}

static void
test_origin_eof_mid_answer_closes(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;

	exchange_with_origin(
	    f, "GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n");
	h1_feed_request(c);
	origin_sends(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
	c->up_eof = 1;
	h1_feed_response(c);
	/* the client cannot be told otherwise: its connection is cut */
	assert_false(fx_live(f, c));
	assert_int_equal(c->state, CONN_CLOSED);
}

static void
test_unasked_101_ends_exchange(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;

	exchange_with_origin(
	    f, "GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n");
	assert_false(c->ex.req_upgrade);
	origin_sends(c,
	    "HTTP/1.1 101 Switching Protocols\r\n"
	    "Connection: upgrade\r\nUpgrade: x\r\n\r\n");
	/* not a tunnel: the exchange ends and nothing is reused */
	assert_int_not_equal(c->state, CONN_TUNNEL);
	assert_true(c->ex.resp_done);
	assert_false(c->client_ka);
	assert_null(strstr(fx_text(client_out(c)), "Upgrade: x"));
}

/*
 * Regression: llhttp flags an upgrade only when a 101 has both Upgrade
 * and "Connection: upgrade". A 101 without the Connection token used to
 * complete as a bodiless message with no pause after it: the exchange
 * waited for upstream-timeout and what the origin sent next was parsed
 * as a new answer. Any complete 101 now switches protocols: unasked, the
 * exchange ends and nothing is reused.
 */
static void
test_101_without_connection_upgrade_ends(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	int ended;

	exchange_with_origin(
	    f, "GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n");
	origin_sends(c,
	    "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: x\r\n\r\n");
	assert_true(c->ex.resp_head_sent);
	ended = c->ex.resp_done || c->state != CONN_EXCHANGE;
	assert_true(ended);
	assert_int_not_equal(c->state, CONN_TUNNEL);
	assert_false(c->client_ka);
}

/* The same 101 to a client that asked for the upgrade: a tunnel. */
static void
test_asked_101_without_connection_upgrade(void **state)
{
	struct fx *f = *state;
	struct conn *c = f->c;
	int ended;

	exchange_with_origin(f,
	    "GET http://a.test/ws HTTP/1.1\r\nHost: a.test\r\n"
	    "Connection: Upgrade\r\nUpgrade: x\r\n\r\n");
	assert_true(c->ex.req_upgrade);
	h1_feed_request(c);
	origin_sends(
	    c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n");
	assert_true(c->ex.resp_head_sent);
	ended = c->ex.resp_done || c->state != CONN_EXCHANGE;
	assert_true(ended);
	/* the client asked and the origin switched: a tunnel */
	assert_int_equal(c->state, CONN_TUNNEL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		test_up_head_explicit_rewrites, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_up_head_is_rebuilt_each_time, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_up_head_host_kept_as_spelled, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_up_head_target_forms, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_up_head_connection_named_fields, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_up_head_http10_gets_host, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_up_head_via_only_when_asked, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_up_head_tunnel_byte_for_byte, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_up_head_origin_form_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_parse_partial_head, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_parse_complete_head, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_parse_malformed_is_400, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_parse_head_over_limit_is_431, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_parse_two_hosts_is_400, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_emit_drops_hop_fields, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_emit_connection_field, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_emit_tunnel_byte_for_byte, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_emit_interim_and_upgrade, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_feed_response_chunked_as_is, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_feed_response_bodiless, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_feed_response_204_bodiless, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_exchange_ends_and_keeps_origin, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_feed_response_back_pressure, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_feed_response_bad_head_is_502, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_feed_request_body_moves, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_close_delimited_ends_at_origin_eof, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_origin_eof_before_answer_is_502, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_origin_eof_mid_answer_closes, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_unasked_101_ends_exchange, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_101_without_connection_upgrade_ends, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_asked_101_without_connection_upgrade, setup, teardown),
	};

	return cmocka_run_group_tests_name("h1", tests, NULL, NULL);
}
