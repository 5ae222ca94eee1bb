/*
 * Unit tests for the web API's queries (proxy/web/webq.c), run against a
 * database written through the real store and read through a read-only
 * handle, as a web reader thread has it. Where an answer is a CLI view,
 * it is compared with what the command prints.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "proxy/cli/cli.h"
#include "proxy/cli/output.h"
#include "proxy/store/db.h"
#include "proxy/store/store.h"
#include "proxy/web/webq.h"

#define T0 1700000000000000LL /* 2023-11-14T22:13:20Z */
#define NREQ 9                /* requests in the fixture */
#define NCONN_ROWS 4          /* of its connections, the CONN rows */

static const unsigned char png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n',
    0, 0, 0, 13, 'I', 'H', 'D', 'R', 0xff, 0x00};
static const char secret_json[] = "{\"token\":\"sekrit\"}";

struct fixture {
	char dir[256];
	char db[300];
	char out[300]; /* captured stdout */
	char *text;    /* last captured stdout */
	sqlite3 *rdb;  /* read-only, as a web reader has it */
	int seq;       /* exchange counter for mk_req */
};

static char *
xstrdup(const char *s)
{
	char *p = strdup(s);

	assert_non_null(p);
	return p;
}

static void
set_body(struct store_body *b, const void *data, size_t len)
{
	b->data = malloc(len);
	assert_non_null(b->data);
	memcpy(b->data, data, len);
	b->len = len;
	b->total = len;
}

/* s gzip-compressed into b. */
static void
set_gzip_body(struct store_body *b, const char *s)
{
	unsigned char out[256];
	z_stream zs;

	memset(&zs, 0, sizeof(zs));
	assert_int_equal(
	    deflateInit2(&zs, 9, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY), Z_OK);
	zs.next_in = (unsigned char *)(uintptr_t)s;
	zs.avail_in = (uInt)strlen(s);
	zs.next_out = out;
	zs.avail_out = sizeof(out);
	assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
	set_body(b, out, sizeof(out) - zs.avail_out);
	deflateEnd(&zs);
}

static struct store_rec *
mk_req(struct fixture *f, int64_t cid, const char *method, const char *host,
    const char *path, int status)
{
	struct store_rec *r = store_rec_new(STORE_REC_REQUEST);

	assert_non_null(r);
	r->u.req.conn_id = cid;
	r->u.req.seq = ++f->seq;
	r->u.req.t_start_us = T0 + f->seq * 1000;
	r->u.req.client_ip = xstrdup("127.0.0.1");
	r->u.req.scheme = xstrdup(strcmp(method, "CONNECT") ? "http" : "");
	r->u.req.method = xstrdup(method);
	r->u.req.host = xstrdup(host);
	r->u.req.port = strcmp(method, "CONNECT") ? 80 : 443;
	r->u.req.path = xstrdup(path);
	r->u.req.req_version = xstrdup("1.1");
	r->u.req.req_headers = xstrdup("Host: h\r\nUser-Agent: t\r\n");
	if (status > 0) {
		r->u.req.resp_version = xstrdup("1.1");
		r->u.req.status = status;
		r->u.req.resp_headers = xstrdup("Content-Type: text/plain\r\n");
	}
	r->u.req.total_us = 2500;
	r->u.req.dns_us = 1000;
	return r;
}

static struct store_rec *
mk_conn(int64_t id, const char *host, const char *proto, const char *decision,
    const char *close_reason, const char *error)
{
	struct store_rec *r = store_rec_new(STORE_REC_CONN);

	assert_non_null(r);
	r->u.conn.id = id;
	r->u.conn.listener = xstrdup("http");
	r->u.conn.client_ip = xstrdup("127.0.0.1");
	r->u.conn.client_port = 40000 + (int)id;
	r->u.conn.target_host = xstrdup(host);
	r->u.conn.target_port = 443;
	r->u.conn.protocol = proto != NULL ? xstrdup(proto) : NULL;
	r->u.conn.decision = decision != NULL ? xstrdup(decision) : NULL;
	r->u.conn.close_reason = xstrdup(close_reason);
	r->u.conn.error = error != NULL ? xstrdup(error) : NULL;
	r->u.conn.t_accept_us = T0 + id * 10;
	r->u.conn.t_close_us = T0 + id * 10 + 5000;
	r->u.conn.bytes_from_client = 100;
	r->u.conn.bytes_from_server = 200;
	return r;
}

/* n WebSocket messages of exchange (cid, seq) from index first. */
static struct store_rec *
mk_ws(int64_t cid, int seq, int first, size_t n)
{
	struct store_rec *r = store_rec_new(STORE_REC_WS_MESSAGES);
	size_t i;

	assert_non_null(r);
	r->u.ws.conn_id = cid;
	r->u.ws.seq = seq;
	r->u.ws.first_idx = first;
	r->u.ws.n = n;
	r->u.ws.m = calloc(n, sizeof(*r->u.ws.m));
	assert_non_null(r->u.ws.m);
	for (i = 0; i < n; i++) {
		struct store_ws_msg *m = &r->u.ws.m[i];
		m->t_us = T0 + 100000 + (int64_t)i;
		m->opcode = 1;
		m->close_code = -1;
		m->data = (unsigned char *)xstrdup("hi");
		m->len = m->size = 2;
		m->wire_bytes = 4;
	}
	return r;
}

static void
submit(struct store *st, struct store_rec *r)
{
	assert_int_equal(store_submit(st, r), 0);
}

static struct store *
open_store(struct fixture *f)
{
	char err[256] = "";
	struct store *st =
	    store_open(f->db, (struct store_limits){0, 0}, err, sizeof(err));

	if (st == NULL)
		fail_msg("store_open: %s", err);
	return st;
}

/* The pinned stream's events, its connection and its learned row. */
static void
make_stream(struct store *st)
{
	static const struct store_stream_event ev[] = {
	    {T0 + 200, 0, 0x16, 517},
	    {T0 + 900, 1, 0x16, 2400},
	};
	struct store_rec *r = store_rec_new(STORE_REC_STREAM_EVENTS);

	assert_non_null(r);
	r->u.sev.conn_id = 10;
	r->u.sev.n = 2;
	r->u.sev.ev = malloc(sizeof(ev));
	assert_non_null(r->u.sev.ev);
	memcpy(r->u.sev.ev, ev, sizeof(ev));
	submit(st, r);
	r = mk_conn(
	    10, "pinned.example", "tls", "passthrough", "client-eof", NULL);
	r->u.conn.sni = xstrdup("pinned.example");
	r->u.conn.events = 2;
	submit(st, r);
	r = store_rec_new(STORE_REC_LEARNED_PASSTHROUGH);
	assert_non_null(r);
	r->u.learned.host = xstrdup("pinned.example");
	r->u.learned.port = 443;
	r->u.learned.reason = xstrdup("client rejected: alert unknown_ca");
	r->u.learned.t_us = T0;
	r->u.learned.rejections = 1;
	r->u.learned.next_retry_us = T0 + 1000000;
	submit(st, r);
}

/*
 * The capture:
 *  1 GET  http://a.example/one      200 text            conn 1
 *  2 POST http://a.example/api      200 gzip JSON answer conn 1
 *  3 GET  http://b.example/img.png  200 png              conn 1
 *  4 GET  http://b.example/ws       101, 3 messages      conn 1
 *  5 GET  http://c.example/x        404                  conn 1
 *  6 CONNECT pinned.example         200, passed through  conn 10 (stream)
 *  7 CONNECT tls.example            200, cert refused    conn 11 (tls-failed)
 *  8 CONNECT refused.example        502                  conn 12 (failed)
 *  9 CONNECT blocked.example        403                  conn 13 (blocked)
 */
static void
make_db(struct fixture *f)
{
	struct store *st = open_store(f);
	struct store_rec *r;

	submit(st, mk_req(f, 1, "GET", "a.example", "/one", 200));
	r = mk_req(f, 1, "POST", "a.example", "/api", 200);
	free(r->u.req.req_headers);
	r->u.req.req_headers = xstrdup("Content-Type: application/json\r\n");
	set_body(&r->u.req.req_body, "{\"q\":1}", 7);
	free(r->u.req.resp_headers);
	r->u.req.resp_headers = xstrdup("Content-Type: application/json\r\n"
					"Content-Encoding: gzip\r\n");
	r->u.req.content_type = xstrdup("application/json");
	set_gzip_body(&r->u.req.resp_body, secret_json);
	submit(st, r);
	r = mk_req(f, 1, "GET", "b.example", "/img.png", 200);
	r->u.req.content_type = xstrdup("image/png");
	set_body(&r->u.req.resp_body, png, sizeof(png));
	submit(st, r);
	submit(st, mk_req(f, 1, "GET", "b.example", "/ws", 101));
	submit(st, mk_ws(1, f->seq, 0, 3));
	submit(st, mk_req(f, 1, "GET", "c.example", "/x", 404));
	submit(st, mk_req(f, 10, "CONNECT", "pinned.example", "", 200));
	submit(st, mk_req(f, 11, "CONNECT", "tls.example", "", 200));
	r = mk_req(f, 12, "CONNECT", "refused.example", "", 502);
	r->u.req.error = xstrdup("connect: Connection refused");
	submit(st, r);
	submit(st, mk_req(f, 13, "CONNECT", "blocked.example", "", 403));
	submit(st, mk_conn(1, "a.example", "http", NULL, "client-eof", NULL));
	make_stream(st);
	submit(st,
	    mk_conn(11, "tls.example", "tls", "intercept",
		"client-rejected-cert",
		"client rejected the forged certificate"));
	submit(st,
	    mk_conn(12, "refused.example", NULL, NULL, "error",
		"connect: Connection refused"));
	submit(st,
	    mk_conn(13, "blocked.example", "tls", "block", "blocked",
		"blocked by rule blocked.example"));
	store_close(st);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "%s/peephole-webq-XXXXXX",
	    tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->db, sizeof(f->db), "%s/t.db", f->dir);
	snprintf(f->out, sizeof(f->out), "%s/stdout", f->dir);
	make_db(f);
	f->rdb = db_open_readonly("test", f->db);
	assert_non_null(f->rdb);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char p[320];

	sqlite3_close(f->rdb);
	unlink(f->db);
	snprintf(p, sizeof(p), "%s-wal", f->db);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", f->db);
	unlink(p);
	unlink(f->out);
	rmdir(f->dir);
	free(f->text);
	free(f);
	return 0;
}

/* The whole of a file, NUL-terminated. */
static char *
slurp(const char *path)
{
	FILE *fp = fopen(path, "rb");
	char *buf;
	long n;

	assert_non_null(fp);
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	n = ftell(fp);
	assert_true(n >= 0);
	rewind(fp);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
	buf[n] = '\0';
	fclose(fp);
	return buf;
}

/* Run a CLI command (argv NULL-terminated) on the fixture's database and
 * return what it printed, parsed. */
static json_t *
cli_json(struct fixture *f, int (*cmd)(int, char **), ...)
{
	char *argv[16];
	int argc = 0, fd, saved, rc;
	json_error_t je;
	json_t *j;
	va_list ap;

	va_start(ap, cmd);
	while ((argv[argc] = va_arg(ap, char *)) != NULL)
		argc++;
	va_end(ap);
	argv[argc++] = (char *)"--db";
	argv[argc++] = f->db;
	argv[argc] = NULL;
	fflush(stdout);
	saved = dup(STDOUT_FILENO);
	fd = open(f->out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(saved >= 0 && fd >= 0);
	assert_true(dup2(fd, STDOUT_FILENO) >= 0);
	close(fd);
	rc = cmd(argc, argv);
	fflush(stdout);
	assert_true(dup2(saved, STDOUT_FILENO) >= 0);
	close(saved);
	assert_int_equal(rc, CLI_OK);
	free(f->text);
	f->text = slurp(f->out);
	if ((j = json_loads(f->text, 0, &je)) == NULL)
		fail_msg("bad JSON (%s): %s", je.text, f->text);
	return j;
}

/* a and b print the same (keys sorted, reals as the CLI prints them). */
static void
assert_same_json(json_t *a, json_t *b)
{
	size_t flags = JSON_SORT_KEYS | JSON_COMPACT | OUT_JSON_REALS;
	char *sa = json_dumps(a, flags), *sb = json_dumps(b, flags);

	assert_non_null(sa);
	assert_non_null(sb);
	assert_string_equal(sa, sb);
	free(sa);
	free(sb);
}

static json_int_t
jint(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_integer(v))
		fail_msg("%s is not an integer", key);
	return json_integer_value(v);
}

static const char *
jstr(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* The ids of a page's rows under key, as "1,2,3". */
static void
ids_of(json_t *page, const char *key, const char *idkey, char *buf, size_t len)
{
	json_t *rows = json_object_get(page, key), *v;
	size_t i, n = 0;

	assert_true(json_is_array(rows));
	buf[0] = '\0';
	json_array_foreach(rows, i, v)
	{
		n += (size_t)snprintf(buf + n, len - n, "%s%lld", i ? "," : "",
		    (long long)jint(v, idkey));
		assert_true(n < len);
	}
}

/* webq_flows with these parameters: the ids, "last" and "more". */
static void
check_page(struct fixture *f, const struct webq_page *p, const char *ids,
    json_int_t last, int more)
{
	struct webq_err e = {0, ""};
	json_t *o = webq_flows(f->rdb, p, &e);
	char got[256];

	if (o == NULL)
		fail_msg("webq_flows: %d %s", e.status, e.msg);
	ids_of(o, "flows", "id", got, sizeof(got));
	assert_string_equal(got, ids);
	assert_int_equal(jint(o, "last"), last);
	assert_int_equal(json_is_true(json_object_get(o, "more")), more);
	json_decref(o);
}

static void
test_flows_paging(void **state)
{
	struct fixture *f = *state;
	struct webq_page p = {NULL, 0, 0, 2};

	check_page(f, &p, "1,2", 2, 1);
	p.after = 2;
	p.limit = 100;
	check_page(f, &p, "3,4,5,6,7,8,9", 9, 0);
	p.after = 9;
	check_page(f, &p, "", 9, 0); /* nothing new: last stays after */
	p.after = 0;
	p.limit = 0; /* the default, 500 */
	check_page(f, &p, "1,2,3,4,5,6,7,8,9", 9, 0);
	/* newest first: the 2 newest below 6, returned ascending */
	p.before = 6;
	p.limit = 2;
	check_page(f, &p, "4,5", 5, 1);
	p.before = 3;
	p.limit = 5;
	check_page(f, &p, "1,2", 2, 0);
	p.before = 100; /* the newest of all */
	p.limit = 3;
	check_page(f, &p, "7,8,9", 9, 1);
	p.after = 7; /* both bounds */
	check_page(f, &p, "8,9", 9, 0);
	p.after = 0;
	p.before = 0;
	p.limit = -4; /* clamped to 1 */
	check_page(f, &p, "1", 1, 1);
}

/* FLOW: the requests --json row and the web's columns. */
static void
test_flow_row(void **state)
{
	struct fixture *f = *state;
	struct webq_page p = {NULL, 1, 3, 1};
	struct webq_err e = {0, ""};
	json_t *o = webq_flows(f->rdb, &p, &e), *cli, *row, *clirow;
	const char *key;
	json_t *v;

	assert_non_null(o);
	row = json_array_get(json_object_get(o, "flows"), 0);
	assert_int_equal(jint(row, "id"), 2);
	assert_string_equal(jstr(row, "url"), "http://a.example/api");
	assert_string_equal(jstr(row, "scheme"), "http");
	assert_string_equal(jstr(row, "path"), "/api");
	assert_string_equal(jstr(row, "version"), "1.1");
	assert_string_equal(jstr(row, "content_type"), "application/json");
	assert_int_equal(jint(row, "port"), 80);
	assert_int_equal(jint(row, "req_size"), 7);
	assert_int_equal(jint(row, "replay_of"), 0);
	assert_int_equal(jint(row, "status"), 200);
	assert_true(json_is_null(json_object_get(row, "up_version")));
	/* every key `requests --json` has, with the same value */
	cli = cli_json(f, cli_requests, "requests", "--json", NULL);
	clirow = json_array_get(cli, 1);
	assert_int_equal(jint(clirow, "id"), 2);
	json_object_foreach(clirow, key, v)
	{
		json_t *w = json_object_get(row, key);
		if (w == NULL || !json_equal(v, w))
			fail_msg(
			    "FLOW differs from requests --json at %s", key);
	}
	json_decref(cli);
	json_decref(o);
}

static void
test_flows_filter(void **state)
{
	struct fixture *f = *state;
	struct webq_page p = {"~d b.example", 0, 0, 0};
	struct webq_err e = {0, ""};

	check_page(f, &p, "3,4", 4, 0);
	/* ~b reads the gzip body decoded */
	p.filter = "~bs sekrit";
	check_page(f, &p, "2", 2, 0);
	p.filter = "~b sekrit | ~m CONNECT";
	p.limit = 2;
	check_page(f, &p, "2,6", 6, 1);
	p.filter = ""; /* none */
	p.limit = 0;
	check_page(f, &p, "1,2,3,4,5,6,7,8,9", 9, 0);
	p.filter = "~d a.example & (~c 200";
	assert_null(webq_flows(f->rdb, &p, &e));
	assert_int_equal(e.status, 400);
	assert_true(strncmp(e.msg, "filter: ", 8) == 0);
	assert_non_null(strstr(e.msg, "at position"));
	/* the function the filter used is gone; the handle still works */
	p.filter = "~d a.example";
	check_page(f, &p, "1,2", 2, 0);
}

/* The show --json object, minus what the web adds. */
static void
check_flow_is_show(struct fixture *f, json_t *o, const char *id, int raw)
{
	json_t *cli, *copy = json_deep_copy(o);

	assert_non_null(copy);
	assert_int_equal(json_object_del(copy, "timing"), 0);
	assert_int_equal(json_object_del(copy, "req_body_type"), 0);
	assert_int_equal(json_object_del(copy, "resp_body_type"), 0);
	cli = raw ? cli_json(f, cli_show, "show", id, "--json", "--raw", NULL)
		  : cli_json(f, cli_show, "show", id, "--json", NULL);
	assert_same_json(copy, cli);
	json_decref(cli);
	json_decref(copy);
}

static void
test_flow_detail(void **state)
{
	struct fixture *f = *state;
	struct webq_err e = {0, ""};
	json_t *o, *t;

	o = webq_flow(f->rdb, 2, 0, &e);
	assert_non_null(o);
	assert_string_equal(jstr(o, "resp_body_text"), secret_json);
	assert_string_equal(jstr(o, "resp_body_encoding"), "gzip");
	assert_string_equal(jstr(o, "req_body_text"), "{\"q\":1}");
	assert_string_equal(jstr(o, "req_body_type"), "application/json");
	assert_string_equal(jstr(o, "resp_body_type"), "application/json");
	assert_int_equal(
	    jint(o, "resp_body_size"), jint(o, "resp_body_captured"));
	assert_int_equal(jint(o, "resp_body_truncated"), 0);
	t = json_object_get(o, "timing");
	assert_true(json_real_value(json_object_get(t, "total_ms")) == 2.5);
	assert_true(json_real_value(json_object_get(t, "dns_ms")) == 1.0);
	assert_true(json_is_null(json_object_get(t, "tls_ms")));
	assert_true(json_is_object(json_object_get(o, "connection")));
	check_flow_is_show(f, o, "2", 0);
	json_decref(o);
	/* raw: the stored gzip bytes are no text */
	o = webq_flow(f->rdb, 2, 1, &e);
	assert_non_null(o);
	assert_true(json_is_null(json_object_get(o, "resp_body_text")));
	check_flow_is_show(f, o, "2", 1);
	json_decref(o);
	/* WebSocket messages; a request without a body has no type */
	o = webq_flow(f->rdb, 4, 0, &e);
	assert_non_null(o);
	assert_int_equal(
	    json_array_size(json_object_get(o, "websocket_messages")), 3);
	assert_true(json_is_null(json_object_get(o, "req_body_type")));
	assert_string_equal(jstr(o, "resp_body_type"), "text/plain");
	check_flow_is_show(f, o, "4", 0);
	json_decref(o);
	assert_null(webq_flow(f->rdb, 999, 0, &e));
	assert_int_equal(e.status, 404);
}

static void
test_body(void **state)
{
	struct fixture *f = *state;
	struct webq_err e = {0, ""};
	struct webq_blob b;

	assert_int_equal(webq_body(f->rdb, 2, 1, 0, &b, &e), 0);
	assert_int_equal(b.len, strlen(secret_json));
	assert_memory_equal(b.data, secret_json, b.len);
	assert_string_equal(b.type, "application/json");
	webq_blob_free(&b);
	assert_null(b.data);
	/* raw: gzip as stored */
	assert_int_equal(webq_body(f->rdb, 2, 1, 1, &b, &e), 0);
	assert_true(b.len > 2 && b.data[0] == 0x1f && b.data[1] == 0x8b);
	webq_blob_free(&b);
	/* the request's body, typed by its own header */
	assert_int_equal(webq_body(f->rdb, 2, 0, 0, &b, &e), 0);
	assert_int_equal(b.len, 7);
	assert_string_equal(b.type, "application/json");
	webq_blob_free(&b);
	assert_int_equal(webq_body(f->rdb, 3, 1, 0, &b, &e), 0);
	assert_int_equal(b.len, sizeof(png));
	assert_memory_equal(b.data, png, sizeof(png));
	assert_string_equal(b.type, "image/png");
	webq_blob_free(&b);
	/* nothing captured, no such request */
	assert_int_equal(webq_body(f->rdb, 1, 0, 0, &b, &e), -1);
	assert_int_equal(e.status, 404);
	assert_null(b.data);
	assert_int_equal(webq_body(f->rdb, 999, 1, 0, &b, &e), -1);
	assert_int_equal(e.status, 404);
	webq_blob_free(NULL);
}

static void
test_conns(void **state)
{
	struct fixture *f = *state;
	struct webq_err e = {0, ""};
	json_t *o, *rows, *c;
	char got[128];
	static const char *const kinds[] = {
	    "stream", "tls-failed", "failed", "blocked"};
	size_t i;

	o = webq_conns(f->rdb, 0, 0, &e);
	assert_non_null(o);
	ids_of(o, "conns", "conn_id", got, sizeof(got));
	assert_string_equal(got, "10,11,12,13");
	rows = json_object_get(o, "conns");
	for (i = 0; i < NCONN_ROWS; i++) {
		c = json_array_get(rows, i);
		assert_string_equal(jstr(c, "kind"), kinds[i]);
		/* written after connection 1: wseq 2.. */
		assert_int_equal(jint(c, "seq"), (json_int_t)i + 2);
	}
	assert_int_equal(jint(o, "last"), 5);
	assert_false(json_is_true(json_object_get(o, "more")));
	c = json_array_get(rows, 0);
	assert_string_equal(jstr(c, "target"), "pinned.example:443");
	assert_string_equal(jstr(c, "sni"), "pinned.example");
	assert_string_equal(jstr(c, "protocol"), "tls");
	assert_string_equal(jstr(c, "decision"), "passthrough");
	assert_string_equal(jstr(c, "client"), "127.0.0.1");
	assert_string_equal(jstr(c, "time"), "2023-11-14T22:13:20.000Z");
	assert_int_equal(jint(c, "bytes_up"), 100);
	assert_int_equal(jint(c, "bytes_down"), 200);
	assert_true(json_real_value(json_object_get(c, "duration_ms")) == 5.0);
	c = json_array_get(rows, 1);
	assert_string_equal(jstr(c, "close_reason"), "client-rejected-cert");
	json_decref(o);
	/* paging */
	o = webq_conns(f->rdb, 2, 2, &e);
	assert_non_null(o);
	ids_of(o, "conns", "conn_id", got, sizeof(got));
	assert_string_equal(got, "11,12");
	assert_int_equal(jint(o, "last"), 4);
	assert_true(json_is_true(json_object_get(o, "more")));
	json_decref(o);
	o = webq_conns(f->rdb, 5, 10, &e);
	assert_non_null(o);
	assert_int_equal(json_array_size(json_object_get(o, "conns")), 0);
	assert_int_equal(jint(o, "last"), 5);
	json_decref(o);
}

/* The events' names and ids: "flow 1,conn 10,ws 4". */
static void
events_of(json_t *events, char *buf, size_t len)
{
	json_t *ev, *d;
	size_t i, n = 0;
	const char *name;
	json_int_t id;

	buf[0] = '\0';
	json_array_foreach(events, i, ev)
	{
		name = jstr(ev, "event");
		d = json_object_get(ev, "data");
		id = strcmp(name, "flow") == 0  ? jint(d, "id")
		    : strcmp(name, "conn") == 0 ? jint(d, "conn_id")
						: jint(d, "request_id");
		n += (size_t)snprintf(buf + n, len - n, "%s%s %lld",
		    i ? "," : "", name, (long long)id);
		assert_true(n < len);
	}
}

/* webq_changes from *c: the events it gives, as events_of prints them. */
static void
check_changes(struct fixture *f, struct webq_cursor *c, const char *filter,
    int limit, const char *want)
{
	struct webq_err e = {0, ""};
	json_t *out = json_array();
	char got[512];

	assert_non_null(out);
	if (webq_changes(f->rdb, c, filter, limit, out, &e) == -1)
		fail_msg("webq_changes: %d %s", e.status, e.msg);
	events_of(out, got, sizeof(got));
	assert_string_equal(got, want);
	json_decref(out);
}

static void
test_changes(void **state)
{
	struct fixture *f = *state;
	struct webq_err e = {0, ""};
	struct webq_cursor c = {0, 0, 0}, now;
	json_t *out;

	assert_int_equal(webq_cursor_now(f->rdb, &now, &e), 0);
	assert_int_equal(now.req, NREQ);
	assert_int_equal(now.conn, 5);
	assert_int_equal(now.ws, 3);
	check_changes(f, &c, NULL, 0,
	    "flow 1,flow 2,flow 3,flow 4,flow 5,flow 6,flow 7,flow 8,flow 9,"
	    "conn 10,conn 11,conn 12,conn 13,ws 4");
	assert_memory_equal(&c, &now, sizeof(c));
	check_changes(f, &c, NULL, 0, "");
	assert_memory_equal(&c, &now, sizeof(c));
	/* a few at a time */
	memset(&c, 0, sizeof(c));
	check_changes(f, &c, NULL, 4, "flow 1,flow 2,flow 3,flow 4");
	assert_int_equal(c.req, 4);
	assert_int_equal(c.conn, 0);
	check_changes(
	    f, &c, NULL, 6, "flow 5,flow 6,flow 7,flow 8,flow 9,conn 10");
	assert_int_equal(c.conn, 2);
	check_changes(f, &c, NULL, 3, "conn 11,conn 12,conn 13");
	assert_int_equal(c.conn, 5);
	assert_int_equal(c.ws, 0);
	check_changes(f, &c, NULL, 3, "ws 4");
	assert_memory_equal(&c, &now, sizeof(c));
	/* filtered: the cursor moves past what does not match */
	memset(&c, 0, sizeof(c));
	check_changes(f, &c, "~d a.example", 0,
	    "flow 1,flow 2,conn 10,conn 11,conn 12,conn 13");
	assert_memory_equal(&c, &now, sizeof(c));
	memset(&c, 0, sizeof(c));
	check_changes(f, &c, "~d b.example", 0,
	    "flow 3,flow 4,conn 10,conn 11,conn 12,conn 13,ws 4");
	/* a bad filter leaves the cursor alone */
	memset(&c, 0, sizeof(c));
	out = json_array();
	assert_int_equal(webq_changes(f->rdb, &c, "~q (", 0, out, &e), -1);
	assert_int_equal(e.status, 400);
	assert_int_equal(json_array_size(out), 0);
	assert_int_equal(c.req, 0);
	json_decref(out);
}

/* Rows written while the reader holds its cursor come next, and only
 * they; a WebSocket of an earlier flow tells its count. */
static void
test_changes_live(void **state)
{
	struct fixture *f = *state;
	struct webq_err e = {0, ""};
	struct webq_cursor c;
	struct store *st;
	json_t *out, *d;

	assert_int_equal(webq_cursor_now(f->rdb, &c, &e), 0);
	check_changes(f, &c, NULL, 0, "");
	st = open_store(f);
	submit(st, mk_ws(1, 4, 3, 2)); /* request 4 again */
	submit(st, mk_req(f, 20, "GET", "d.example", "/new", 200));
	submit(st, mk_conn(20, "d.example", "http", NULL, "client-eof", NULL));
	submit(st,
	    mk_conn(21, "tls.example", NULL, NULL, "upstream-timeout",
		"connect to tls.example:443 timed out"));
	submit(st,
	    mk_conn(22, "e.example", NULL, NULL, "error",
		"TLS handshake with the origin failed: EOF"));
	store_close(st);
	out = json_array();
	assert_non_null(out);
	assert_int_equal(webq_changes(f->rdb, &c, NULL, 0, out, &e), 0);
	assert_int_equal(json_array_size(out), 4);
	d = json_object_get(json_array_get(out, 0), "data");
	assert_int_equal(jint(d, "id"), 10);
	assert_string_equal(jstr(d, "url"), "http://d.example/new");
	d = json_object_get(json_array_get(out, 1), "data");
	assert_int_equal(jint(d, "conn_id"), 21);
	assert_string_equal(jstr(d, "kind"), "failed");
	d = json_object_get(json_array_get(out, 2), "data");
	assert_int_equal(jint(d, "conn_id"), 22);
	assert_string_equal(jstr(d, "kind"), "tls-failed");
	d = json_object_get(json_array_get(out, 3), "data");
	assert_int_equal(jint(d, "request_id"), 4);
	assert_int_equal(jint(d, "messages"), 5);
	json_decref(out);
	assert_int_equal(c.req, 10);
	assert_int_equal(c.conn, 8);
	assert_int_equal(c.ws, 5);
}

/* The catalogue views are the CLI's --json output. */
static void
test_views(void **state)
{
	struct fixture *f = *state;
	struct webq_err e = {0, ""};
	json_t *o, *cli;

	o = webq_domains(f->rdb, &e);
	assert_non_null(o);
	assert_true(json_array_size(o) >= 5);
	cli = cli_json(f, cli_domains, "domains", "--json", NULL);
	assert_same_json(o, cli);
	json_decref(cli);
	json_decref(o);

	o = webq_streams(f->rdb, &e);
	assert_non_null(o);
	assert_int_equal(json_array_size(o), 1);
	assert_int_equal(jint(json_array_get(o, 0), "id"), 10);
	cli = cli_json(f, cli_streams, "streams", "--json", NULL);
	assert_same_json(o, cli);
	json_decref(cli);
	json_decref(o);

	o = webq_stream(f->rdb, 10, &e);
	assert_non_null(o);
	assert_int_equal(json_array_size(json_object_get(o, "events_list")), 2);
	cli = cli_json(f, cli_show, "show", "stream", "10", "--json", NULL);
	assert_same_json(o, cli);
	json_decref(cli);
	json_decref(o);
	assert_null(webq_stream(f->rdb, 999, &e));
	assert_int_equal(e.status, 404);

	o = webq_passthrough(f->rdb, &e);
	assert_non_null(o);
	assert_int_equal(json_array_size(o), 1);
	assert_string_equal(
	    jstr(json_array_get(o, 0), "host"), "pinned.example");
	cli =
	    cli_json(f, cli_passthrough, "passthrough", "list", "--json", NULL);
	assert_int_equal(json_array_size(cli), 1);
	/* "retry" moves with the clock; the rest is the same */
	json_object_del(json_array_get(o, 0), "retry");
	json_object_del(json_array_get(cli, 0), "retry");
	assert_same_json(o, cli);
	json_decref(cli);
	json_decref(o);
}

/* A broken handle: SQLite's errors are 500s with a message. */
static void
test_sql_errors(void **state)
{
	struct fixture *f = *state;
	struct webq_err e = {0, ""};
	struct webq_page p = {NULL, 0, 0, 0};
	struct webq_cursor c = {0, 0, 0};
	struct webq_blob b;
	sqlite3 *db;
	json_t *out = json_array();

	/* an empty in-memory database has none of the tables */
	assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
	assert_null(webq_flows(db, &p, &e));
	assert_int_equal(e.status, 500);
	assert_non_null(strstr(e.msg, "no such table"));
	assert_null(webq_conns(db, 0, 0, &e));
	assert_int_equal(e.status, 500);
	assert_null(webq_flow(db, 1, 0, &e));
	assert_int_equal(e.status, 500);
	assert_int_equal(webq_body(db, 1, 1, 0, &b, &e), -1);
	assert_int_equal(e.status, 500);
	assert_null(webq_domains(db, &e));
	assert_int_equal(e.status, 500);
	assert_null(webq_streams(db, &e));
	assert_null(webq_stream(db, 1, &e));
	assert_int_equal(e.status, 500);
	assert_null(webq_passthrough(db, &e));
	assert_int_equal(webq_cursor_now(db, &c, &e), -1);
	assert_int_equal(webq_changes(db, &c, NULL, 0, out, &e), -1);
	assert_int_equal(e.status, 500);
	sqlite3_close(db);
	json_decref(out);
	(void)f;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_flows_paging, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flow_row, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flows_filter, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flow_detail, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_body, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_conns, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_changes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_changes_live, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_views, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sql_errors, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
