/*
 * Unit tests for the read-side commands (proxy/cli: domains, requests,
 * show) and their output helpers, run against a database written through
 * the real store.
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
#include <sys/stat.h>
#include <unistd.h>

#include "proxy/cli/cli.h"
#include "proxy/cli/output.h"
#include "proxy/store/requrl.h"
#include "proxy/store/store.h"

#define T0 1700000000000000LL /* 2023-11-14T22:13:20Z */

static const unsigned char png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n',
    0, 0, 0, 13, 'I', 'H', 'D', 'R', 0xff, 0x00};

struct fixture {
	char dir[64];
	char db[96];
	char out[96];  /* captured stdout */
	char file[96]; /* --body-out target */
	char *text;    /* last captured stdout */
};

static char *
xstrdup(const char *s)
{
	char *p = strdup(s);

	assert_non_null(p);
	return p;
}

static void
set_body(struct store_body *b, const void *data, size_t len, uint64_t total)
{
	b->data = malloc(len);
	assert_non_null(b->data);
	memcpy(b->data, data, len);
	b->len = len;
	b->total = total;
	b->truncated = total > len;
}

static struct store_rec *
mk_req(int64_t cid, const char *method, const char *host, int port,
    const char *path, int status, int64_t t)
{
	struct store_rec *r = store_rec_new(STORE_REC_REQUEST);

	assert_non_null(r);
	r->u.req.conn_id = cid;
	r->u.req.seq = 1;
	r->u.req.t_start_us = t;
	r->u.req.client_ip = xstrdup("127.0.0.1");
	r->u.req.scheme = xstrdup("http");
	r->u.req.method = xstrdup(method);
	r->u.req.host = xstrdup(host);
	r->u.req.port = port;
	r->u.req.path = xstrdup(path);
	r->u.req.req_version = xstrdup("1.1");
	r->u.req.req_headers = xstrdup("Host: h\r\nUser-Agent: t\r\n");
	r->u.req.req_header_bytes = 100;
	if (status > 0) {
		r->u.req.resp_version = xstrdup("1.1");
		r->u.req.status = status;
		r->u.req.resp_headers =
		    xstrdup("Content-Type: text/plain\r\nX-A: 1\r\n");
		r->u.req.resp_header_bytes = 200;
	}
	r->u.req.server_ip = xstrdup("10.0.0.1");
	r->u.req.server_port = port;
	r->u.req.total_us = 2500;
	return r;
}

static struct store_rec *
mk_conn(int64_t id, const char *host, int port)
{
	struct store_rec *r = store_rec_new(STORE_REC_CONN);

	assert_non_null(r);
	r->u.conn.id = id;
	r->u.conn.listener = xstrdup("http");
	r->u.conn.client_ip = xstrdup("127.0.0.1");
	r->u.conn.client_port = 40000;
	r->u.conn.target_host = xstrdup(host);
	r->u.conn.target_port = port;
	r->u.conn.server_ip = xstrdup("10.0.0.2");
	r->u.conn.server_port = port;
	r->u.conn.protocol = xstrdup("http");
	r->u.conn.t_accept_us = T0;
	r->u.conn.t_close_us = T0 + 9000000;
	r->u.conn.close_reason = xstrdup("client-eof");
	return r;
}

static struct store_rec *
mk_dip(const char *domain, const char *ip)
{
	struct store_rec *r = store_rec_new(STORE_REC_DOMAIN_IP);

	assert_non_null(r);
	r->u.dip.domain = xstrdup(domain);
	r->u.dip.ip = xstrdup(ip);
	r->u.dip.source = xstrdup("app-dns");
	r->u.dip.t_us = T0 + 1000000;
	return r;
}

static void
submit(struct store *st, struct store_rec *r)
{
	assert_int_equal(store_submit(st, r), 0);
}

/*
 * The capture every test reads:
 *  1 GET  http://example.com/img.png       200, png body (conn 1)
 *  2 POST http://example.com/api           404, request body (conn 1)
 *  3 GET  http://sub.example.com:8080/x?q  200, truncated text body (conn 2)
 *  4 GET  http://badexample.com/           no response, error (conn 3)
 *  plus connection rows 1 and 2 and a DNS answer for cdn.example.com.
 */
static void
make_db(const char *path)
{
	char err[256] = "";
	struct store *st =
	    store_open(path, (struct store_limits){0, 0}, err, sizeof(err));
	struct store_rec *r;

	if (st == NULL)
		fail_msg("store_open: %s", err);
	r = mk_req(1, "GET", "example.com", 80, "/img.png", 200, T0 + 100);
	set_body(&r->u.req.resp_body, png, sizeof(png), sizeof(png));
	free(r->u.req.content_type);
	r->u.req.content_type = xstrdup("image/png");
	submit(st, r);
	r = mk_req(1, "POST", "example.com", 80, "/api", 404, T0 + 200);
	set_body(&r->u.req.req_body, "{\"a\":1}", 7, 7);
	set_body(&r->u.req.resp_body, "nope", 4, 4);
	submit(st, r);
	r = mk_req(2, "GET", "sub.example.com", 8080, "/x", 200, T0 + 300);
	r->u.req.query = xstrdup("q=1");
	set_body(&r->u.req.resp_body, "line one\nline two\n", 18, 5000);
	submit(st, r);
	r = mk_req(3, "GET", "badexample.com", 80, "/", 0, T0 + 400);
	r->u.req.error = xstrdup("upstream refused, \"port 80\"");
	submit(st, r);
	submit(st, mk_conn(1, "example.com", 80));
	submit(st, mk_conn(2, "sub.example.com", 8080));
	submit(st, mk_dip("cdn.example.com", "192.0.2.7"));
	submit(st, mk_dip("example.com", "192.0.2.1"));
	store_close(st);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/peephole-cli-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->db, sizeof(f->db), "%s/t.db", f->dir);
	snprintf(f->out, sizeof(f->out), "%s/stdout", f->dir);
	snprintf(f->file, sizeof(f->file), "%s/body", f->dir);
	make_db(f->db);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char p[128];

	unlink(f->db);
	snprintf(p, sizeof(p), "%s-wal", f->db);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", f->db);
	unlink(p);
	unlink(f->out);
	unlink(f->file);
	rmdir(f->dir);
	free(f->text);
	free(f);
	return 0;
}

/* The whole of a file, NUL-terminated; *len gets its size. */
static char *
slurp(const char *path, size_t *len)
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
	if (len != NULL)
		*len = (size_t)n;
	return buf;
}

/* Run cmd with argv (NULL-terminated), stdout captured into f->text. */
static int
run(struct fixture *f, int (*cmd)(int, char **), ...)
{
	char *argv[16];
	int argc = 0, fd, saved, rc;
	va_list ap;

	va_start(ap, cmd);
	while ((argv[argc] = va_arg(ap, char *)) != NULL)
		argc++;
	va_end(ap);
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
	free(f->text);
	f->text = slurp(f->out, NULL);
	return rc;
}

static json_t *
parse(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, 0, &e);

	if (j == NULL)
		fail_msg("bad JSON (%s): %s", e.text, text);
	return j;
}

/* The element of a domains array named name. */
static json_t *
find_domain(json_t *arr, const char *name)
{
	size_t i;
	json_t *v;

	for (i = 0; i < json_array_size(arr); i++) {
		v = json_array_get(arr, i);
		if (strcmp(json_string_value(json_object_get(v, "domain")),
			name) == 0)
			return v;
	}
	fail_msg("domain %s missing", name);
	return NULL;
}

static json_int_t
jint(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	assert_true(json_is_integer(v));
	return json_integer_value(v);
}

static void
test_domains_json(void **state)
{
	struct fixture *f = *state;
	json_t *arr, *d, *ports, *ips;

	assert_int_equal(
	    run(f, cli_domains, "domains", "--json", "--db", f->db, NULL), 0);
	arr = parse(f->text);
	assert_true(json_is_array(arr));
	assert_int_equal(json_array_size(arr), 4);
	d = find_domain(arr, "example.com");
	assert_int_equal(jint(d, "requests"), 2);
	assert_int_equal(jint(d, "connections"), 1);
	assert_int_equal(jint(d, "bytes_up"), 100 + 100 + 7);
	assert_int_equal(jint(d, "bytes_down"), 200 + 200 + sizeof(png) + 4);
	assert_string_equal(json_string_value(json_object_get(d, "first_seen")),
	    "2023-11-14T22:13:20Z");
	assert_string_equal(json_string_value(json_object_get(d, "last_seen")),
	    "2023-11-14T22:13:29Z");
	ports = json_object_get(d, "ports");
	assert_int_equal(json_array_size(ports), 1);
	assert_int_equal(json_integer_value(json_array_get(ports, 0)), 80);
	ips = json_object_get(d, "ips");
	/* 10.0.0.1 from requests, 10.0.0.2 from the connection, 192.0.2.1
	 * from DNS. */
	assert_int_equal(json_array_size(ips), 3);
	assert_string_equal(
	    json_string_value(json_array_get(ips, 2)), "192.0.2.1");
	d = find_domain(arr, "cdn.example.com");
	assert_int_equal(jint(d, "requests"), 0);
	assert_int_equal(jint(d, "connections"), 0);
	assert_int_equal(json_array_size(json_object_get(d, "ports")), 0);
	d = find_domain(arr, "badexample.com");
	assert_int_equal(jint(d, "connections"), 1);
	assert_int_equal(jint(d, "bytes_down"), 0);
	json_decref(arr);
}

static void
test_domains_sort_and_csv(void **state)
{
	struct fixture *f = *state;
	json_t *arr;

	assert_int_equal(run(f, cli_domains, "domains", "--sort", "requests",
			     "--json", "--db", f->db, NULL),
	    0);
	arr = parse(f->text);
	assert_string_equal(json_string_value(json_object_get(
				json_array_get(arr, 0), "domain")),
	    "example.com");
	json_decref(arr);
	assert_int_equal(run(f, cli_domains, "domains", "--db", f->db, "--csv",
			     "--sort=name", NULL),
	    0);
	assert_non_null(strstr(f->text,
	    "domain,first_seen,last_seen,connections,inferred,requests,"
	    "bytes_up,bytes_down,ports,protocols,intercepted,passed_through,"
	    "pinned,named_by,where,ips\r\n"));
	assert_non_null(strstr(f->text, "\r\nbadexample.com,"));
	assert_non_null(
	    strstr(f->text, ",\"10.0.0.1,10.0.0.2,192.0.2.1\"\r\n"));
	assert_int_equal(
	    run(f, cli_domains, "domains", "--db", f->db, NULL), 0);
	assert_non_null(strstr(f->text, "DOMAIN"));
	assert_non_null(strstr(f->text, "sub.example.com"));
}

static void
test_domains_usage(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(run(f, cli_domains, "domains", "--bogus", NULL), 2);
	assert_int_equal(run(f, cli_domains, "domains", "--sort", "size",
			     "--db", f->db, NULL),
	    2);
	assert_int_equal(run(f, cli_domains, "domains", "--json", "--csv",
			     "--db", f->db, NULL),
	    2);
	assert_int_equal(run(f, cli_domains, "domains", "extra", NULL), 2);
	assert_int_equal(run(f, cli_domains, "domains", "--help", NULL), 0);
	assert_non_null(strstr(f->text, "--sort"));
	assert_non_null(strstr(f->text, "--csv"));
	assert_non_null(strstr(f->text, "--db"));
	assert_int_equal(run(f, cli_domains, "domains", "--db",
			     "/nonexistent/peephole.db", NULL),
	    1);
	assert_string_equal(f->text, "");
}

static void
test_requests_filters(void **state)
{
	struct fixture *f = *state;
	json_t *arr;

	assert_int_equal(
	    run(f, cli_requests, "requests", "--json", "--db", f->db, NULL), 0);
	arr = parse(f->text);
	assert_int_equal(json_array_size(arr), 4);
	assert_string_equal(
	    json_string_value(json_object_get(json_array_get(arr, 2), "url")),
	    "http://sub.example.com:8080/x?q=1");
	assert_true(
	    json_is_null(json_object_get(json_array_get(arr, 3), "status")));
	assert_true(
	    json_is_null(json_object_get(json_array_get(arr, 0), "error")));
	json_decref(arr);

	/* Exact host or a subdomain, never a look-alike. */
	assert_int_equal(run(f, cli_requests, "requests", "--json", "--domain",
			     "EXAMPLE.com", "--db", f->db, NULL),
	    0);
	arr = parse(f->text);
	assert_int_equal(json_array_size(arr), 3);
	json_decref(arr);

	assert_int_equal(run(f, cli_requests, "requests", "--json", "--domain",
			     "example.com", "--method", "get", "--status",
			     "200", "--db", f->db, NULL),
	    0);
	arr = parse(f->text);
	assert_int_equal(json_array_size(arr), 2);
	json_decref(arr);

	/* The most recent one, shown oldest first. */
	assert_int_equal(run(f, cli_requests, "requests", "--json", "--limit",
			     "2", "--db", f->db, NULL),
	    0);
	arr = parse(f->text);
	assert_int_equal(json_array_size(arr), 2);
	assert_int_equal(jint(json_array_get(arr, 0), "id"), 3);
	assert_int_equal(jint(json_array_get(arr, 1), "id"), 4);
	json_decref(arr);
}

static void
test_requests_text_csv_usage(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(run(f, cli_requests, "requests", "--csv", "--status",
			     "0", "--db", f->db, NULL),
	    0);
	assert_string_equal(f->text,
	    "id,time,client,method,url,status,resp_size,total_ms,error\r\n"
	    "4,2023-11-14T22:13:20.000Z,127.0.0.1,GET,http://badexample.com/,"
	    "-,0,2.5,\"upstream refused, \"\"port 80\"\"\"\r\n");
	assert_int_equal(
	    run(f, cli_requests, "requests", "--db", f->db, NULL), 0);
	assert_non_null(strstr(f->text, "http://example.com/img.png"));
	assert_non_null(strstr(f->text, "POST"));
	assert_int_equal(run(f, cli_requests, "requests", "--status", "abc",
			     "--db", f->db, NULL),
	    2);
	assert_int_equal(run(f, cli_requests, "requests", "--status", "1000",
			     "--db", f->db, NULL),
	    2);
	assert_int_equal(run(f, cli_requests, "requests", "--limit", "0",
			     "--db", f->db, NULL),
	    2);
	assert_int_equal(run(f, cli_requests, "requests", "--nope", NULL), 2);
	assert_int_equal(run(f, cli_requests, "requests", "--help", NULL), 0);
	assert_non_null(strstr(f->text, "--domain"));
	assert_non_null(strstr(f->text, "--limit"));
}

static void
test_show_body_out(void **state)
{
	struct fixture *f = *state;
	size_t len;
	char *got;

	assert_int_equal(run(f, cli_show, "show", "1", "--body-out", f->file,
			     "--db", f->db, NULL),
	    0);
	got = slurp(f->file, &len);
	assert_int_equal(len, sizeof(png));
	assert_memory_equal(got, png, sizeof(png));
	free(got);
	/* the body was asked for: no show text on stdout */
	assert_string_equal(f->text, "");
	/* an existing file is kept unless --force */
	assert_int_equal(run(f, cli_show, "show", "2", "--body-out", f->file,
			     "--db", f->db, NULL),
	    1);
	got = slurp(f->file, &len);
	assert_int_equal(len, sizeof(png));
	free(got);
	assert_int_equal(run(f, cli_show, "show", "1", "--db", f->db, NULL), 0);
	assert_non_null(strstr(f->text, "> GET /img.png HTTP/1.1"));
	assert_non_null(strstr(f->text, "< HTTP/1.1 200"));
	assert_non_null(strstr(f->text, "(binary, "));
	assert_int_equal(
	    run(f, cli_show, "show", "1", "--hex", "--db", f->db, NULL), 0);
	assert_non_null(strstr(f->text, "  00000000  89 50 4e 47"));

	/* Request body, from a request with a 404; "-" is stdout. */
	assert_int_equal(run(f, cli_show, "show", "--request-body-out", "-",
			     "2", "--db", f->db, NULL),
	    0);
	assert_string_equal(f->text, "{\"a\":1}");
	assert_int_equal(run(f, cli_show, "show", "2", "--db", f->db, NULL), 0);
	/* JSON is pretty-printed */
	assert_non_null(strstr(f->text, "  | {\n  |   \"a\": 1\n  | }"));

	/* Truncated: exactly the captured bytes. */
	assert_int_equal(run(f, cli_show, "show", "3", "--body-out", f->file,
			     "--force", "--db", f->db, NULL),
	    0);
	got = slurp(f->file, &len);
	assert_int_equal(len, 18);
	free(got);
	assert_int_equal(run(f, cli_show, "show", "3", "--db", f->db, NULL), 0);
	assert_non_null(strstr(f->text, "5000 bytes, 18 captured (truncated)"));
	assert_non_null(strstr(f->text, "  | line two\n"));

	/* Request 4 had no response; its (empty) request body is fine. */
	assert_int_equal(run(f, cli_show, "show", "4", "--request-body-out",
			     f->file, "--force", "--db", f->db, NULL),
	    0);
	assert_int_equal(run(f, cli_show, "show", "4", "--db", f->db, NULL), 0);
	assert_non_null(strstr(f->text, "no response"));
	assert_non_null(strstr(f->text, "not recorded"));
}

static void
test_show_json_and_errors(void **state)
{
	struct fixture *f = *state;
	json_t *o, *h;

	assert_int_equal(
	    run(f, cli_show, "show", "3", "--json", "--db", f->db, NULL), 0);
	o = parse(f->text);
	assert_int_equal(jint(o, "status"), 200);
	assert_int_equal(jint(o, "resp_body_size"), 5000);
	assert_int_equal(jint(o, "resp_body_truncated"), 1);
	assert_int_equal(jint(o, "resp_body_captured"), 18);
	assert_string_equal(json_string_value(json_object_get(o, "url")),
	    "http://sub.example.com:8080/x?q=1");
	h = json_object_get(o, "resp_headers");
	assert_int_equal(json_array_size(h), 2);
	assert_string_equal(
	    json_string_value(json_object_get(json_array_get(h, 0), "value")),
	    "text/plain");
	assert_int_equal(jint(json_object_get(o, "connection"), "id"), 2);
	json_decref(o);

	assert_int_equal(
	    run(f, cli_show, "show", "99", "--db", f->db, NULL), 1);
	assert_int_equal(run(f, cli_show, "show", "--db", f->db, NULL), 2);
	assert_int_equal(
	    run(f, cli_show, "show", "x1", "--db", f->db, NULL), 2);
	assert_int_equal(
	    run(f, cli_show, "show", "1", "2", "--db", f->db, NULL), 2);
	assert_int_equal(
	    run(f, cli_show, "show", "1", "--db", "/nonexistent.db", NULL), 1);
	assert_int_equal(run(f, cli_show, "show", "--help", NULL), 0);
	assert_non_null(strstr(f->text, "--body-out"));
	assert_non_null(strstr(f->text, "--request-body-out"));
}

/* A body that was never captured cannot be written out. */
static void
test_show_uncaptured(void **state)
{
	struct fixture *f = *state;
	char err[256];
	struct store *st;
	struct store_rec *r;

	st = store_open(f->db, (struct store_limits){0, 0}, err, sizeof(err));
	assert_non_null(st);
	r = mk_req(5, "GET", "big.test", 80, "/", 200, T0 + 500);
	r->u.req.resp_body.total = 123456;
	r->u.req.resp_body.truncated = 1;
	assert_int_equal(store_submit(st, r), 0);
	store_close(st);
	assert_int_equal(run(f, cli_show, "show", "5", "--body-out", f->file,
			     "--db", f->db, NULL),
	    1);
	assert_int_equal(run(f, cli_show, "show", "5", "--db", f->db, NULL), 0);
	assert_non_null(strstr(f->text, "123456 bytes, not captured"));
}

/* The commands read while the proxy's store is open and writing. */
static void
test_read_while_writing(void **state)
{
	struct fixture *f = *state;
	char err[256];
	struct store *st;
	json_t *arr;
	int i;

	st = store_open(f->db, (struct store_limits){0, 0}, err, sizeof(err));
	assert_non_null(st);
	assert_int_equal(store_start(st), 0);
	assert_int_equal(
	    store_submit(
		st, mk_req(9, "GET", "live.test", 80, "/", 200, T0 + 900)),
	    0);
	for (i = 0; i < 500 && store_written(st) < 1; i++)
		usleep(10000);
	assert_int_equal(store_written(st), 1);
	assert_int_equal(run(f, cli_requests, "requests", "--json", "--domain",
			     "live.test", "--db", f->db, NULL),
	    0);
	arr = parse(f->text);
	assert_int_equal(json_array_size(arr), 1);
	json_decref(arr);
	store_close(st);
}

static void
test_newer_schema_refused(void **state)
{
	struct fixture *f = *state;
	sqlite3 *db;

	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(
	    run(f, cli_domains, "domains", "--db", f->db, NULL), 1);
	assert_int_equal(run(f, cli_show, "show", "1", "--db", f->db, NULL), 1);
}

static void
test_output_helpers(void **state)
{
	char buf[64], *url;
	FILE *fp;
	char *mem = NULL;
	size_t len = 0;

	(void)state;
	out_iso_time(T0 + 123456, 1, buf, sizeof(buf));
	assert_string_equal(buf, "2023-11-14T22:13:20.123Z");
	out_iso_time(0, 0, buf, sizeof(buf));
	assert_string_equal(buf, "-");
	out_size(9999, buf, sizeof(buf));
	assert_string_equal(buf, "9999");
	out_size(3 * 1024 * 1024, buf, sizeof(buf));
	assert_string_equal(buf, "3.0M");

	assert_non_null(fp = open_memstream(&mem, &len));
	out_csv_field(fp, "plain");
	fputc('|', fp);
	out_csv_field(fp, "a,b");
	fputc('|', fp);
	out_csv_field(fp, "say \"hi\"");
	fputc('|', fp);
	out_csv_field(fp, "two\nlines");
	fputc('|', fp);
	out_safe(fp, "esc\x1b[31mred\x7f", 0);
	fclose(fp);
	assert_string_equal(mem,
	    "plain|\"a,b\"|\"say \"\"hi\"\"\"|\"two\nlines\"|esc?[31mred?");
	free(mem);

	url = requrl_format("https", "GET", "::1", 443, NULL, "a=b");
	assert_string_equal(url, "https://[::1]/?a=b");
	free(url);
	url = requrl_format("http", "CONNECT", "example.com", 443, NULL, NULL);
	assert_string_equal(url, "example.com:443");
	free(url);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_domains_json),
	    T(test_domains_sort_and_csv),
	    T(test_domains_usage),
	    T(test_requests_filters),
	    T(test_requests_text_csv_usage),
	    T(test_show_body_out),
	    T(test_show_json_and_errors),
	    T(test_show_uncaptured),
	    T(test_read_while_writing),
	    T(test_newer_schema_refused),
	    cmocka_unit_test(test_output_helpers),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
