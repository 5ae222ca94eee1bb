/*
 * Unit tests for the HTTP/2 codec: proxy/net/h2.c (both sessions and the
 * frames between them), h2_stream.c (a stream's header lists and record)
 * and h2_h1.c (an HTTP/1.1 origin under an h2 client).
 *
 * The pure parts are called directly: header lists, the record's host,
 * error names, the HTTP/1.1 request head rebuilt from h2 fields and the
 * hop-by-hop list. The codec end to end runs over socketpairs only: the
 * fixture's connection, made to look like h2c inside a tunnel
 * (CONN_INNER_HTTP), with an upstream on a socketpair as its origin leg;
 * the test holds an nghttp2 client session on the client's end and an
 * nghttp2 server session on the origin's, and turns the loop a bounded
 * number of times. Records go to a discarding store whose printer copies
 * what the tests read once it closes.
 *
 * All three .c files are included (h2o style), so the library's copies
 * are not linked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>

#include "proxy/net/h2.c"
#include "proxy/net/h2_h1.c"
#include "proxy/net/h2_stream.c"

#include "tests/unit/conn_fixture.h"

#define NV(n, v)                                                               \
	{                                                                      \
		(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1,  \
		    NGHTTP2_NV_FLAG_NONE                                       \
	}

static void
add(struct h2_fields *f, const char *name, const char *value)
{
	assert_int_equal(h2_fields_add(f, (const uint8_t *)name, strlen(name),
			     (const uint8_t *)value, strlen(value)),
	    0);
}

/* ---- header lists ---- */

static void
test_fields_order_and_copies(void **state)
{
	struct h2_fields f = {0};
	char name[8] = "x-a", value[8] = "1";
	char *t;

	(void)state;
	assert_null(h2_fields_text(&f));
	assert_null(h2_fields_get(&f, ":method"));
	add(&f, ":method", "GET");
	add(&f, ":path", "/p");
	/* copies: the caller's bytes may change after */
	assert_int_equal(h2_fields_add(&f, (const uint8_t *)name, 3,
			     (const uint8_t *)value, 1),
	    0);
	strcpy(name, "zzz");
	strcpy(value, "9");
	add(&f, "x-a", "2");
	/* not NUL-terminated input: the copies are */
	assert_int_equal(h2_fields_add(&f, (const uint8_t *)"x-bXX", 3,
			     (const uint8_t *)"vvvYY", 3),
	    0);
	assert_int_equal(f.n, 5);
	assert_string_equal(h2_fields_get(&f, ":method"), "GET");
	/* the first of a repeated name */
	assert_string_equal(h2_fields_get(&f, "x-a"), "1");
	assert_string_equal(h2_fields_get(&f, "x-b"), "vvv");
	assert_null(h2_fields_get(&f, "x-"));
	assert_int_equal(f.nv[4].namelen, 3);
	assert_int_equal(f.nv[4].valuelen, 3);
	/* HPACK's count: name + value + 32 each */
	assert_int_equal(
	    f.bytes, (7 + 3) + (5 + 2) + (3 + 1) + (3 + 1) + (3 + 3) + 5 * 32);
	t = h2_fields_text(&f);
	assert_string_equal(t,
	    ":method: GET\r\n:path: /p\r\nx-a: 1\r\n"
	    "x-a: 2\r\nx-b: vvv\r\n");
	free(t);
	h2_fields_clear(&f);
	assert_int_equal(f.n, 0);
	assert_int_equal(f.bytes, 0);
	assert_null(f.nv);
	h2_fields_clear(&f); /* twice is fine */
}

/* Past the first 16 fields the list grows; empty values are kept. */
static void
test_fields_grow(void **state)
{
	struct h2_fields f = {0};
	char n[16];

	(void)state;
	for (int i = 0; i < 40; i++) {
		snprintf(n, sizeof(n), "h%d", i);
		add(&f, n, i % 2 ? "" : "v");
	}
	assert_int_equal(f.n, 40);
	assert_true(f.cap >= 40);
	assert_string_equal(h2_fields_get(&f, "h39"), "");
	assert_string_equal(h2_fields_get(&f, "h38"), "v");
	assert_string_equal((const char *)f.nv[17].name, "h17");
	h2_fields_clear(&f);
}

static void
test_error_name(void **state)
{
	(void)state;
	assert_string_equal(h2_error_name(NGHTTP2_NO_ERROR), "NO_ERROR");
	assert_string_equal(
	    h2_error_name(NGHTTP2_INTERNAL_ERROR), "INTERNAL_ERROR");
	assert_string_equal(h2_error_name(NGHTTP2_CANCEL), "CANCEL");
	assert_string_equal(
	    h2_error_name(NGHTTP2_REFUSED_STREAM), "REFUSED_STREAM");
	assert_string_equal(
	    h2_error_name(NGHTTP2_HTTP_1_1_REQUIRED), "HTTP_1_1_REQUIRED");
	assert_string_equal(h2_error_name(0xe), "UNKNOWN_ERROR");
	assert_string_equal(h2_error_name(0xffffffffu), "UNKNOWN_ERROR");
}

/* ---- the record's host ---- */

static const char *
host_of(struct fx *f, const char *authority, int *port)
{
	static char buf[300];
	struct h2_stream s;
	struct store_request r;

	memset(&s, 0, sizeof(s));
	memset(&r, 0, sizeof(r));
	s.c = f->c;
	if (authority != NULL)
		add(&s.req, ":authority", authority);
	h2_stream_host(&s, &r);
	h2_fields_clear(&s.req);
	assert_non_null(r.host);
	snprintf(buf, sizeof(buf), "%s", r.host);
	free(r.host);
	*port = r.port;
	return buf;
}

static void
test_stream_host(void **state)
{
	struct fx *f = fx_new();
	int port;

	(void)state;
	f->c->tls.tunnel_host = strdup("tunnel.test");
	f->c->tls.tunnel_port = 8443;
	assert_string_equal(host_of(f, "a.test:8443", &port), "a.test");
	assert_int_equal(port, 8443);
	assert_string_equal(host_of(f, "a.test", &port), "a.test");
	assert_string_equal(host_of(f, "[::1]:8443", &port), "::1");
	assert_string_equal(host_of(f, "[2001:db8::2]", &port), "2001:db8::2");
	/* no :authority (or an empty one): the SNI, else the tunnel */
	assert_string_equal(host_of(f, NULL, &port), "tunnel.test");
	assert_int_equal(port, 8443);
	assert_string_equal(host_of(f, "", &port), "tunnel.test");
	snprintf(f->c->tls.sni, sizeof(f->c->tls.sni), "sni.test");
	assert_string_equal(host_of(f, NULL, &port), "sni.test");
	/* the port recorded is the tunnel's, whatever :authority says */
	assert_string_equal(host_of(f, "b.test:9999", &port), "b.test");
	assert_int_equal(port, 8443);
	fx_free(f);
}

/* ---- h2_h1: the HTTP/1.1 request head ---- */

static const char *
h1_head(struct h2_stream *s)
{
	static char buf[2048];
	struct h2_h1 l;
	struct evbuffer *out = evbuffer_new();
	size_t n;

	memset(&l, 0, sizeof(l));
	assert_non_null(out);
	assert_int_equal(h2_h1_head(&l, s, out), 0);
	n = evbuffer_get_length(out);
	assert_true(n < sizeof(buf));
	evbuffer_remove(out, buf, n);
	buf[n] = '\0';
	evbuffer_free(out);
	assert_int_equal(l.chunked, strstr(buf, "transfer-encoding") != NULL);
	return buf;
}

static void
stream_init(struct h2_stream *s)
{
	memset(s, 0, sizeof(*s));
	s->req_buf = evbuffer_new();
	assert_non_null(s->req_buf);
}

static void
stream_clear(struct h2_stream *s)
{
	h2_fields_clear(&s->req);
	evbuffer_free(s->req_buf);
}

static void
test_h1_head_get(void **state)
{
	struct h2_stream s;

	(void)state;
	stream_init(&s);
	add(&s.req, ":method", "GET");
	add(&s.req, ":scheme", "https");
	add(&s.req, ":authority", "a.test:8443");
	add(&s.req, ":path", "/x?y=1");
	add(&s.req, "accept", "*/*");
	add(&s.req, "cookie", "a=1");
	add(&s.req, "cookie", "b=2");
	s.req_end = 1;
	/* the request ended with its head: no body, no chunks */
	assert_string_equal(h1_head(&s),
	    "GET /x?y=1 HTTP/1.1\r\n"
	    "Host: a.test:8443\r\n"
	    "accept: */*\r\n"
	    "cookie: a=1; b=2\r\n"
	    "\r\n");
	stream_clear(&s);
}

/* A body follows and no content-length: chunked. With a length: as is.
 * A host field of its own wins over :authority. */
static void
test_h1_head_body(void **state)
{
	struct h2_stream s;

	(void)state;
	stream_init(&s);
	add(&s.req, ":method", "POST");
	add(&s.req, ":authority", "a.test");
	add(&s.req, ":path", "/up");
	add(&s.req, "content-type", "text/plain");
	assert_string_equal(h1_head(&s),
	    "POST /up HTTP/1.1\r\n"
	    "Host: a.test\r\n"
	    "content-type: text/plain\r\n"
	    "transfer-encoding: chunked\r\n"
	    "\r\n");
	/* ended, but its body still buffered: chunked too */
	s.req_end = 1;
	evbuffer_add(s.req_buf, "abc", 3);
	assert_non_null(strstr(h1_head(&s), "transfer-encoding: chunked"));
	add(&s.req, "content-length", "3");
	add(&s.req, "host", "h.test");
	assert_string_equal(h1_head(&s),
	    "POST /up HTTP/1.1\r\n"
	    "content-type: text/plain\r\n"
	    "content-length: 3\r\n"
	    "host: h.test\r\n"
	    "\r\n");
	stream_clear(&s);
	/* no :method nor :path: GET / */
	stream_init(&s);
	s.req_end = 1;
	assert_string_equal(h1_head(&s), "GET / HTTP/1.1\r\n\r\n");
	stream_clear(&s);
}

/*
 * Regression: a field after a cookie was glued to it. h2_h1_head wrote
 * "cookie: a=1" and each further crumb as "; b=2" without a CRLF, ending
 * the line only after the loop, so the fields after the first crumb
 * landed inside the cookie value. The crumbs are now one line where the
 * first stood (h2_h1_cookies).
 */
static void
test_h1_head_cookie_then_field(void **state)
{
	struct h2_stream s;

	(void)state;
	stream_init(&s);
	add(&s.req, ":method", "GET");
	add(&s.req, ":path", "/");
	add(&s.req, "cookie", "a=1");
	add(&s.req, "cookie", "b=2");
	add(&s.req, "priority", "u=0, i");
	s.req_end = 1;
	const char *h = h1_head(&s);
	/* one cookie line, the other field whole, the head ended */
	assert_non_null(strstr(h, "\r\ncookie: a=1; b=2\r\n"));
	assert_non_null(strstr(h, "\r\npriority: u=0, i\r\n"));
	assert_int_equal(strlen(h),
	    strlen("GET / HTTP/1.1\r\n"
		   "cookie: a=1; b=2\r\n"
		   "priority: u=0, i\r\n\r\n"));
	stream_clear(&s);
}

/* Regression (as above): crumbs apart, a field between them. */
static void
test_h1_head_cookies_apart(void **state)
{
	struct h2_stream s;

	(void)state;
	stream_init(&s);
	add(&s.req, ":method", "GET");
	add(&s.req, ":path", "/");
	add(&s.req, "cookie", "a=1");
	add(&s.req, "accept", "*/*");
	add(&s.req, "cookie", "b=2");
	s.req_end = 1;
	const char *h = h1_head(&s);
	assert_non_null(strstr(h, "\r\naccept: */*\r\n"));
	assert_non_null(strstr(h, "\r\ncookie: a=1; b=2\r\n"));
	stream_clear(&s);
}

static void
test_h1_hop(void **state)
{
	(void)state;
	assert_true(h2_h1_hop("connection"));
	assert_true(h2_h1_hop("Keep-Alive"));
	assert_true(h2_h1_hop("proxy-connection"));
	assert_true(h2_h1_hop("TRANSFER-ENCODING"));
	assert_true(h2_h1_hop("upgrade"));
	assert_false(h2_h1_hop("content-length"));
	assert_false(h2_h1_hop("te"));
	assert_false(h2_h1_hop("connection-x"));
	assert_false(h2_h1_hop(""));
}

/* ---- the codec end to end ---- */

/* What the printer saw of the request records, copied. */
struct seen {
	char *method, *host, *path, *query, *scheme, *req_version;
	char *resp_version, *req_headers, *resp_headers, *resp_trailers;
	char *stream_end, *error, *up_version, *req_trailers;
	int port, status, seq;
	int64_t stream_id;
	char body[64];
	uint64_t body_total;
};
static struct seen seen[8];
static int nseen;

static char *
dup0(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

static void
printer(const struct store_rec *rec, void *arg)
{
	const struct store_request *r = &rec->u.req;
	struct seen *x;

	(void)arg;
	if (rec->type != STORE_REC_REQUEST || nseen == 8)
		return;
	x = &seen[nseen++];
	x->method = dup0(r->method);
	x->host = dup0(r->host);
	x->path = dup0(r->path);
	x->query = dup0(r->query);
	x->scheme = dup0(r->scheme);
	x->req_version = dup0(r->req_version);
	x->resp_version = dup0(r->resp_version);
	x->req_headers = dup0(r->req_headers);
	x->resp_headers = dup0(r->resp_headers);
	x->resp_trailers = dup0(r->resp_trailers);
	x->stream_end = dup0(r->stream_end);
	x->error = dup0(r->error);
	x->up_version = dup0(r->up_version);
	x->req_trailers = dup0(r->req_trailers);
	x->port = r->port;
	x->status = r->status;
	x->seq = r->seq;
	x->stream_id = r->stream_id;
	x->body_total = r->resp_body.total;
	if (r->resp_body.data != NULL && r->resp_body.len < sizeof(x->body))
		memcpy(x->body, r->resp_body.data, r->resp_body.len);
}

static void
seen_clear(void)
{
	for (int i = 0; i < nseen; i++) {
		struct seen *x = &seen[i];
		char *all[] = {x->method, x->host, x->path, x->query, x->scheme,
		    x->req_version, x->resp_version, x->req_headers,
		    x->resp_headers, x->resp_trailers, x->stream_end, x->error,
		    x->up_version, x->req_trailers};
		for (size_t j = 0; j < sizeof(all) / sizeof(all[0]); j++)
			free(all[j]);
	}
	memset(seen, 0, sizeof(seen));
	nseen = 0;
}

enum origin_mode {
	ORIGIN_ANSWER, /* 200, "hello h2", a trailer */
	ORIGIN_SILENT, /* takes the request, answers nothing */
	ORIGIN_RST,    /* RST_STREAM(INTERNAL_ERROR) */
	ORIGIN_BIG     /* 200 and 1 MiB */
};

#define BIG_BODY (1024 * 1024)

/* One end held by the test: a client session or an origin one. */
struct peer {
	int fd;
	nghttp2_session *s;
	int origin;
	enum origin_mode mode;
	char heads[4096]; /* "name: value\n", trailers as "+name: value\n" */
	size_t hlen;
	char body[256];
	size_t blen, body_total;
	size_t big_left;
	int answer_sent;
	int32_t stream_id; /* the last stream it saw */
	int closed;
	uint32_t close_code;
};

static ssize_t
peer_send(nghttp2_session *session, const uint8_t *data, size_t len, int flags,
    void *arg)
{
	struct peer *p = arg;
	ssize_t n = send(p->fd, data, len, MSG_DONTWAIT);

	(void)session;
	(void)flags;
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK
		    ? NGHTTP2_ERR_WOULDBLOCK
		    : NGHTTP2_ERR_CALLBACK_FAILURE;
	return n;
}

static int
peer_header(nghttp2_session *session, const nghttp2_frame *frame,
    const uint8_t *name, size_t nlen, const uint8_t *value, size_t vlen,
    uint8_t flags, void *arg)
{
	struct peer *p = arg;
	int n;

	(void)session;
	(void)flags;
	n = snprintf(p->heads + p->hlen, sizeof(p->heads) - p->hlen,
	    "%s%.*s: %.*s\n",
	    frame->headers.cat == NGHTTP2_HCAT_HEADERS ? "+" : "", (int)nlen,
	    (const char *)name, (int)vlen, (const char *)value);
	assert_true(n > 0 && (size_t)n < sizeof(p->heads) - p->hlen);
	p->hlen += (size_t)n;
	p->stream_id = frame->hd.stream_id;
	return 0;
}

static int
peer_data(nghttp2_session *session, uint8_t flags, int32_t id,
    const uint8_t *data, size_t len, void *arg)
{
	struct peer *p = arg;
	size_t room = sizeof(p->body) - 1 - p->blen;

	(void)session;
	(void)flags;
	(void)id;
	memcpy(p->body + p->blen, data, len < room ? len : room);
	p->blen += len < room ? len : room;
	p->body[p->blen] = '\0';
	p->body_total += len;
	return 0;
}

static int
peer_close(nghttp2_session *session, int32_t id, uint32_t code, void *arg)
{
	struct peer *p = arg;

	(void)session;
	(void)id;
	p->closed++;
	p->close_code = code;
	return 0;
}

/* The origin's answer body. */
static ssize_t
origin_body(nghttp2_session *session, int32_t id, uint8_t *buf, size_t len,
    uint32_t *flags, nghttp2_data_source *src, void *arg)
{
	struct peer *p = arg;
	static const nghttp2_nv trl[] = {NV("x-trailer", "yes")};
	size_t n;

	(void)src;
	if (p->mode == ORIGIN_BIG) {
		n = len < p->big_left ? len : p->big_left;
		memset(buf, 'x', n);
		p->big_left -= n;
		if (p->big_left == 0)
			*flags |= NGHTTP2_DATA_FLAG_EOF;
		return (ssize_t)n;
	}
	memcpy(buf, "hello h2", 8);
	*flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
	assert_int_equal(nghttp2_submit_trailer(session, id, trl, 1), 0);
	return 8;
}

static int
peer_frame(nghttp2_session *session, const nghttp2_frame *frame, void *arg)
{
	struct peer *p = arg;
	static const nghttp2_nv resp[] = {NV(":status", "200"),
	    NV("content-type", "text/plain"), NV("x-b", "2")};
	nghttp2_data_provider prd = {{.ptr = p}, origin_body};

	if (!p->origin || frame->hd.type != NGHTTP2_HEADERS ||
	    !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	p->stream_id = frame->hd.stream_id;
	switch (p->mode) {
	case ORIGIN_ANSWER:
	case ORIGIN_BIG:
		p->big_left = BIG_BODY;
		assert_int_equal(nghttp2_submit_response(session,
				     frame->hd.stream_id, resp, 3, &prd),
		    0);
		break;
	case ORIGIN_RST:
		assert_int_equal(
		    nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE,
			frame->hd.stream_id, NGHTTP2_INTERNAL_ERROR),
		    0);
		break;
	case ORIGIN_SILENT:
		break;
	}
	p->answer_sent = 1;
	return 0;
}

/* A session for one end; no window updates of its own when hold is set
 * (a client that does not read). */
static void
peer_open(struct peer *p, int fd, int origin, int hold)
{
	nghttp2_session_callbacks *cb;
	nghttp2_option *opt;

	memset(p, 0, sizeof(*p));
	p->fd = fd;
	p->origin = origin;
	assert_int_equal(nghttp2_session_callbacks_new(&cb), 0);
	assert_int_equal(nghttp2_option_new(&opt), 0);
	nghttp2_option_set_no_auto_window_update(opt, hold);
	nghttp2_session_callbacks_set_send_callback(cb, peer_send);
	nghttp2_session_callbacks_set_on_header_callback(cb, peer_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
	    cb, peer_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, peer_close);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, peer_frame);
	assert_int_equal(origin
		? nghttp2_session_server_new2(&p->s, cb, p, opt)
		: nghttp2_session_client_new2(&p->s, cb, p, opt),
	    0);
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cb);
	assert_int_equal(
	    nghttp2_submit_settings(p->s, NGHTTP2_FLAG_NONE, NULL, 0), 0);
}

/* Send what the session has, take what the socket holds. */
static void
peer_io(struct peer *p)
{
	uint8_t buf[16384];
	ssize_t n;

	assert_int_equal(nghttp2_session_send(p->s), 0);
	while ((n = recv(p->fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
		assert_int_equal(
		    nghttp2_session_mem_recv(p->s, buf, (size_t)n), n);
	assert_int_equal(nghttp2_session_send(p->s), 0);
}

struct hfx {
	struct fx *f;
	struct store *st;
	struct peer cl, or ;
};

/* The codec over socketpairs; h1: the origin speaks HTTP/1.1 (an
 * intercepted TLS origin that chose it; the test reads and writes its
 * socket raw), else h2c with the test's server session. */
static struct hfx *
hfx_new_leg(int hold, int h1)
{
	struct hfx *x = calloc(1, sizeof(*x));
	struct conn *c;
	int sv[2];

	assert_non_null(x);
	x->f = fx_new();
	c = x->f->c;
	x->st = store_open_discard((struct store_limits){0, 0});
	assert_non_null(x->st);
	store_set_printer(x->st, printer, NULL);
	x->f->w->store = x->st;
	/* h2c inside a tunnel: cleartext on both legs */
	c->inner = h1 ? CONN_INNER_HTTPS : CONN_INNER_HTTP;
	c->tls.tunnel_host = strdup("o.test");
	c->tls.tunnel_port = 8080;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
	c->up = upstream_new(x->f->w, "o.test", 8080);
	assert_non_null(c->up);
	assert_int_equal(bufferevent_setfd(c->up->bev, sv[1]), 0);
	h2_start(c);
	assert_int_equal(c->state, CONN_H2);
	peer_open(&x->cl, x->f->client, 0, hold);
	if (h1) {
		/* h2_h1.c takes the connection for its first leg */
		assert_null(c->h2->up);
		assert_non_null(c->h2->down);
		assert_null(c->up);
		assert_non_null(c->dial.up_idle);
		assert_string_equal(c->h2->up_version, "1.1");
		x->or.fd = sv[0];
		return x;
	}
	assert_non_null(c->h2->up);
	assert_string_equal(c->h2->up_version, "2");
	peer_open(&x->or, sv[0], 1, 0);
	return x;
}

static struct hfx *
hfx_new(int hold)
{
	return hfx_new_leg(hold, 0);
}

/* Turn the loop and both peers, a bounded number of times. */
static void
hfx_pump(struct hfx *x, int turns)
{
	for (int i = 0; i < turns; i++) {
		peer_io(&x->cl);
		fx_loop(x->f, 1);
		if (x->or.s != NULL)
			peer_io(&x->or);
		fx_loop(x->f, 1);
	}
}

/* Tear down; the records come out of the store as it closes. */
static void
hfx_free(struct hfx *x)
{
	nghttp2_session_del(x->cl.s);
	nghttp2_session_del(x->or.s);
	close(x->or.fd);
	fx_free(x->f);
	store_close(x->st);
	free(x);
}

static int32_t
client_get(struct hfx *x, const char *path)
{
	nghttp2_nv req[] = {NV(":method", "GET"), NV(":scheme", "http"),
	    NV(":authority", "o.test:8080"),
	    {(uint8_t *)":path", (uint8_t *)(uintptr_t)path, 5, strlen(path),
		NGHTTP2_NV_FLAG_NONE},
	    NV("user-agent", "t"), NV("accept", "*/*"), NV("x-order", "1"),
	    NV("x-order", "2")};
	int32_t id = nghttp2_submit_request(
	    x->cl.s, NULL, req, sizeof(req) / sizeof(req[0]), NULL, NULL);

	assert_true(id > 0);
	return id;
}

/* The record of test_e2e_get's exchange, as the store got it. */
static void
check_get_record(void)
{
	assert_int_equal(nseen, 1);
	assert_string_equal(seen[0].method, "GET");
	assert_string_equal(seen[0].scheme, "http");
	assert_string_equal(seen[0].host, "o.test");
	assert_int_equal(seen[0].port, 8080);
	assert_string_equal(seen[0].path, "/a");
	assert_string_equal(seen[0].query, "b=1");
	assert_string_equal(seen[0].req_version, "2");
	assert_string_equal(seen[0].resp_version, "2");
	assert_int_equal(seen[0].status, 200);
	assert_int_equal(seen[0].seq, 1);
	assert_int_equal(seen[0].stream_id, 1);
	assert_null(seen[0].stream_end);
	assert_null(seen[0].error);
	assert_null(seen[0].up_version);
	assert_string_equal(seen[0].req_headers,
	    ":method: GET\r\n:scheme: http\r\n:authority: o.test:8080\r\n"
	    ":path: /a?b=1\r\nuser-agent: t\r\naccept: */*\r\n"
	    "x-order: 1\r\nx-order: 2\r\n");
	assert_string_equal(seen[0].resp_headers,
	    ":status: 200\r\ncontent-type: text/plain\r\nx-b: 2\r\n");
	assert_string_equal(seen[0].resp_trailers, "x-trailer: yes\r\n");
	assert_string_equal(seen[0].body, "hello h2");
	assert_int_equal(seen[0].body_total, 8);
}

static void
test_e2e_get(void **state)
{
	struct hfx *x = hfx_new(0);
	struct conn *c = x->f->c;

	(void)state;
	seen_clear();
	client_get(x, "/a?b=1");
	hfx_pump(x, 20);
	/* the origin got the head in order, pseudo-header fields first */
	assert_string_equal(x->or.heads,
	    ":method: GET\n"
	    ":scheme: http\n"
	    ":authority: o.test:8080\n"
	    ":path: /a?b=1\n"
	    "user-agent: t\n"
	    "accept: */*\n"
	    "x-order: 1\n"
	    "x-order: 2\n");
	assert_int_equal(x->or.stream_id, 1);
	/* the client got the answer, its body and its trailer */
	assert_string_equal(x->cl.heads,
	    ":status: 200\n"
	    "content-type: text/plain\n"
	    "x-b: 2\n"
	    "+x-trailer: yes\n");
	assert_string_equal(x->cl.body, "hello h2");
	assert_int_equal(x->cl.closed, 1);
	assert_int_equal(x->cl.close_code, NGHTTP2_NO_ERROR);
	assert_int_equal(x->or.closed, 1);
	/* the stream is done and gone; the connection lives on */
	assert_true(fx_live(x->f, c));
	assert_int_equal(c->state, CONN_H2);
	assert_int_equal(c->h2->nstreams, 0);
	assert_int_equal(c->tot.nrequests, 1);
	assert_true(c->tot.bytes_from_client > 24); /* the preface and more */
	assert_true(c->tot.bytes_to_server > 24);
	assert_true(c->tot.bytes_from_server > 8);
	assert_true(c->tot.bytes_to_client > 8);
	hfx_free(x);
	check_get_record();
	seen_clear();
}

/* Two streams on the one connection: both answered, both recorded. */
static void
test_e2e_two_streams(void **state)
{
	struct hfx *x = hfx_new(0);

	(void)state;
	seen_clear();
	assert_int_equal(client_get(x, "/one"), 1);
	assert_int_equal(client_get(x, "/two"), 3);
	hfx_pump(x, 20);
	assert_int_equal(x->cl.closed, 2);
	assert_int_equal(x->or.closed, 2);
	assert_int_equal(x->f->c->tot.nrequests, 2);
	hfx_free(x);
	assert_int_equal(nseen, 2);
	assert_int_equal(seen[0].seq + seen[1].seq, 3);
	assert_int_equal(seen[0].stream_id + seen[1].stream_id, 4);
	seen_clear();
}

/* The client's request body: "abc", then a trailer. */
static ssize_t
client_body(nghttp2_session *session, int32_t id, uint8_t *buf, size_t len,
    uint32_t *flags, nghttp2_data_source *src, void *arg)
{
	static const nghttp2_nv trl[] = {NV("x-rt", "1")};

	(void)src;
	(void)arg;
	assert_true(len >= 3);
	memcpy(buf, "abc", 3);
	*flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
	assert_int_equal(nghttp2_submit_trailer(session, id, trl, 1), 0);
	return 3;
}

/* A request body and its trailer reach the h2 origin; the record has
 * the body. */
static void
test_e2e_post_trailer(void **state)
{
	static const nghttp2_nv req[] = {NV(":method", "POST"),
	    NV(":scheme", "http"), NV(":authority", "o.test:8080"),
	    NV(":path", "/up")};
	nghttp2_data_provider prd = {{.ptr = NULL}, client_body};
	struct hfx *x = hfx_new(0);

	(void)state;
	seen_clear();
	assert_int_equal(nghttp2_submit_request(x->cl.s, NULL, req,
			     sizeof(req) / sizeof(req[0]), &prd, NULL),
	    1);
	hfx_pump(x, 20);
	assert_string_equal(x->or.heads,
	    ":method: POST\n"
	    ":scheme: http\n"
	    ":authority: o.test:8080\n"
	    ":path: /up\n"
	    "+x-rt: 1\n");
	assert_string_equal(x->or.body, "abc");
	assert_int_equal(x->cl.closed, 1);
	assert_int_equal(x->cl.close_code, NGHTTP2_NO_ERROR);
	assert_string_equal(x->cl.body, "hello h2");
	hfx_free(x);
	assert_int_equal(nseen, 1);
	assert_string_equal(seen[0].method, "POST");
	assert_string_equal(seen[0].req_trailers, "x-rt: 1\r\n");
	assert_int_equal(seen[0].status, 200);
	seen_clear();
}

/* The client cancels: the origin's stream is reset too (CANCEL). */
static void
test_e2e_client_cancel(void **state)
{
	struct hfx *x = hfx_new(0);
	int32_t id;

	(void)state;
	seen_clear();
	x->or.mode = ORIGIN_SILENT;
	id = client_get(x, "/slow");
	hfx_pump(x, 10);
	assert_int_equal(x->or.answer_sent, 1);
	assert_int_equal(x->or.closed, 0);
	assert_int_equal(nghttp2_submit_rst_stream(
			     x->cl.s, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL),
	    0);
	hfx_pump(x, 10);
	assert_int_equal(x->or.closed, 1);
	assert_int_equal(x->or.close_code, NGHTTP2_CANCEL);
	assert_int_equal(x->f->c->h2->nstreams, 0);
	assert_true(fx_live(x->f, x->f->c));
	hfx_free(x);
	assert_int_equal(nseen, 1);
	assert_string_equal(seen[0].stream_end, "rst-client CANCEL");
	assert_int_equal(seen[0].status, 0);
	seen_clear();
}

/* The origin resets: so is the client's stream, with its code. */
static void
test_e2e_origin_rst(void **state)
{
	struct hfx *x = hfx_new(0);

	(void)state;
	seen_clear();
	x->or.mode = ORIGIN_RST;
	client_get(x, "/boom");
	hfx_pump(x, 20);
	assert_int_equal(x->or.answer_sent, 1);
	assert_int_equal(x->cl.closed, 1);
	assert_int_equal(x->cl.close_code, NGHTTP2_INTERNAL_ERROR);
	assert_int_equal(x->cl.hlen, 0);
	assert_int_equal(x->f->c->h2->nstreams, 0);
	hfx_free(x);
	assert_int_equal(nseen, 1);
	assert_string_equal(seen[0].stream_end, "rst-origin INTERNAL_ERROR");
	seen_clear();
}

/*
 * The origin sends 1 MiB, the client takes nothing (no WINDOW_UPDATE):
 * peephole holds at most one stream window (H2_STREAM_WINDOW, what it gave
 * the origin) in the stream's buffer, and its outputs stay within
 * H2_OUT_LIMIT and a frame; the origin is left waiting for window.
 */
static void
test_e2e_flow_control(void **state)
{
	struct hfx *x = hfx_new(1);
	struct conn *c = x->f->c;
	struct h2_stream *s;
	size_t held;

	(void)state;
	seen_clear();
	x->or.mode = ORIGIN_BIG;
	client_get(x, "/big");
	hfx_pump(x, 60);
	s = TAILQ_FIRST(&c->h2->streams);
	assert_non_null(s);
	held = evbuffer_get_length(s->resp_buf);
	/* the client has what its window allowed, no more */
	assert_true(x->cl.body_total <= NGHTTP2_INITIAL_WINDOW_SIZE);
	assert_true(x->cl.body_total > 0);
	/* the origin sent a stream window and what the client took */
	assert_true(x->or.big_left > 0);
	assert_true(
	    BIG_BODY - x->or
		.big_left <= H2_STREAM_WINDOW + NGHTTP2_INITIAL_WINDOW_SIZE);
	assert_int_equal(
	    nghttp2_session_get_stream_remote_window_size(x->or.s, 1), 0);
	assert_true(held <= H2_STREAM_WINDOW);
	assert_true(held > 0);
	assert_true(evbuffer_get_length(bufferevent_get_output(c->cbev)) <=
	    H2_OUT_LIMIT + 16384 + 9);
	assert_true(evbuffer_get_length(bufferevent_get_output(c->up->bev)) <=
	    H2_OUT_LIMIT + 16384 + 9);
	assert_int_equal(
	    evbuffer_get_length(bufferevent_get_input(c->up->bev)), 0);
	/* nothing moves while the client waits */
	hfx_pump(x, 10);
	assert_int_equal(evbuffer_get_length(s->resp_buf), held);
	/* the client opens its window: the rest comes through */
	assert_int_equal(
	    nghttp2_session_consume(x->cl.s, 1, x->cl.body_total), 0);
	for (int i = 0; i < 400 && x->cl.closed == 0; i++) {
		size_t before = x->cl.body_total;
		hfx_pump(x, 2);
		if (x->cl.body_total > before)
			assert_int_equal(nghttp2_session_consume(x->cl.s, 1,
					     x->cl.body_total - before),
			    0);
	}
	assert_int_equal(x->cl.closed, 1);
	assert_int_equal(x->cl.close_code, NGHTTP2_NO_ERROR);
	assert_int_equal(x->cl.body_total, BIG_BODY);
	hfx_free(x);
	assert_int_equal(nseen, 1);
	assert_int_equal(seen[0].body_total, BIG_BODY);
	seen_clear();
}

static void
client_request(struct hfx *x, const nghttp2_nv *nv, size_t n)
{
	assert_true(
	    nghttp2_submit_request(x->cl.s, NULL, nv, n, NULL, NULL) > 0);
}

/* The origin's socket after a few turns: what it was sent. */
static const char *
origin_got(struct hfx *x)
{
	hfx_pump(x, 5);
	return fx_peer_text(x->or.fd);
}

static void
origin_says(struct hfx *x, const char *text)
{
	assert_int_equal(
	    send(x->or.fd, text, strlen(text), 0), (ssize_t)strlen(text));
	hfx_pump(x, 10);
}

/* An HTTP/1.1 origin under an h2 client: the request head rebuilt (Host
 * from :authority, cookie crumbs joined: see
 * test_h1_head_cookie_then_field), the chunked answer's hop-by-hop
 * fields dropped, its trailer passed on as an h2 trailer. */
static void
test_e2e_h1_origin(void **state)
{
	static const nghttp2_nv req[] = {NV(":method", "GET"),
	    NV(":scheme", "https"), NV(":authority", "o.test:8443"),
	    NV(":path", "/h1"), NV("accept", "*/*"), NV("cookie", "a=1"),
	    NV("cookie", "b=2")};
	struct hfx *x = hfx_new_leg(0, 1);

	(void)state;
	seen_clear();
	client_request(x, req, sizeof(req) / sizeof(req[0]));
	assert_string_equal(origin_got(x),
	    "GET /h1 HTTP/1.1\r\n"
	    "Host: o.test:8443\r\n"
	    "accept: */*\r\n"
	    "cookie: a=1; b=2\r\n"
	    "\r\n");
	origin_says(x,
	    "HTTP/1.1 200 OK\r\n"
	    "Transfer-Encoding: chunked\r\n"
	    "Connection: keep-alive\r\n"
	    "X-Y: z\r\n\r\n"
	    "5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n");
	assert_string_equal(x->cl.heads,
	    ":status: 200\n"
	    "x-y: z\n"
	    "+x-t: 1\n");
	assert_string_equal(x->cl.body, "hello");
	assert_int_equal(x->cl.closed, 1);
	assert_int_equal(x->cl.close_code, NGHTTP2_NO_ERROR);
	/* the leg stays for the next stream */
	assert_int_equal(x->f->c->h2->nh1, 1);
	assert_int_equal(x->f->c->h2->nstreams, 0);
	hfx_free(x);
	assert_int_equal(nseen, 1);
	assert_string_equal(seen[0].req_version, "2");
	/* the answer's version as the origin spoke it */
	assert_string_equal(seen[0].resp_version, "1.1");
	assert_string_equal(seen[0].up_version, "1.1");
	assert_int_equal(seen[0].status, 200);
	assert_string_equal(seen[0].resp_trailers, "x-t: 1\r\n");
	assert_string_equal(seen[0].body, "hello");
	assert_null(seen[0].stream_end);
	seen_clear();
}

/*
 * Regression: an HTTP/1.1 answer whose end is the close (no length, not
 * chunked) was reset instead of ended: llhttp_finish returns the
 * HPE_PAUSED that on_message_complete asks for, and only HPE_OK was taken
 * as the good end (h2_h1_finish now takes both).
 */
static void
test_e2e_h1_origin_close_ends(void **state)
{
	static const nghttp2_nv req[] = {NV(":method", "GET"),
	    NV(":scheme", "https"), NV(":authority", "o.test"),
	    NV(":path", "/eof")};
	struct hfx *x = hfx_new_leg(0, 1);

	(void)state;
	seen_clear();
	client_request(x, req, sizeof(req) / sizeof(req[0]));
	assert_non_null(strstr(origin_got(x), "GET /eof HTTP/1.1\r\n"));
	origin_says(x, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbye");
	assert_int_equal(shutdown(x->or.fd, SHUT_WR), 0);
	hfx_pump(x, 10);
	assert_string_equal(x->cl.body, "bye");
	assert_int_equal(x->cl.closed, 1);
	assert_int_equal(x->cl.close_code, NGHTTP2_NO_ERROR);
	hfx_free(x);
	assert_int_equal(nseen, 1);
	assert_null(seen[0].error);
	assert_null(seen[0].stream_end);
	seen_clear();
}

/* The h2 origin's connection ends mid-answer: the client's stream is
 * reset, the record says why, and the client is told to go away. */
static void
test_e2e_origin_eof(void **state)
{
	struct hfx *x = hfx_new(0);

	(void)state;
	seen_clear();
	x->or.mode = ORIGIN_SILENT;
	client_get(x, "/gone");
	hfx_pump(x, 10);
	assert_int_equal(x->or.answer_sent, 1);
	nghttp2_session_del(x->or.s);
	x->or.s = NULL;
	assert_int_equal(shutdown(x->or.fd, SHUT_RDWR), 0);
	hfx_pump(x, 10);
	assert_int_equal(x->cl.closed, 1);
	assert_int_equal(x->cl.close_code, NGHTTP2_INTERNAL_ERROR);
	assert_int_equal(x->f->c->h2->up_gone, 1);
	assert_int_equal(x->f->c->h2->goaway_sent, 1);
	hfx_free(x);
	assert_int_equal(nseen, 1);
	assert_string_equal(seen[0].error, "origin closed the connection");
	seen_clear();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fields_order_and_copies),
	    cmocka_unit_test(test_fields_grow),
	    cmocka_unit_test(test_error_name),
	    cmocka_unit_test(test_stream_host),
	    cmocka_unit_test(test_h1_head_get),
	    cmocka_unit_test(test_h1_head_body),
	    cmocka_unit_test(test_h1_hop),
	    cmocka_unit_test(test_e2e_get),
	    cmocka_unit_test(test_e2e_two_streams),
	    cmocka_unit_test(test_e2e_post_trailer),
	    cmocka_unit_test(test_e2e_client_cancel),
	    cmocka_unit_test(test_e2e_origin_rst),
	    cmocka_unit_test(test_e2e_flow_control),
	    cmocka_unit_test(test_e2e_h1_origin),
	    cmocka_unit_test(test_e2e_origin_eof),
	    cmocka_unit_test(test_h1_head_cookie_then_field),
	    cmocka_unit_test(test_h1_head_cookies_apart),
	    cmocka_unit_test(test_e2e_h1_origin_close_ends),

	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
