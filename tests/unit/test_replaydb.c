/*
 * replaydb: match keys, which logged exchanges are indexed, the order they
 * answer in, body matching, and reads handed back to an event loop.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy/store/replaydb.h"
#include "proxy/store/store.h"

static char *
xstrdup(const char *s)
{
	char *p = strdup(s);

	assert_non_null(p);
	return p;
}

static void
set_body(struct store_body *b, const char *data, uint64_t total)
{
	b->len = strlen(data);
	b->data = (unsigned char *)xstrdup(data);
	b->total = total;
	b->truncated = total > b->len;
}

static struct store_rec *
mk(const char *method, const char *path, const char *query, int status)
{
	struct store_rec *r = store_rec_new(STORE_REC_REQUEST);

	assert_non_null(r);
	r->u.req.conn_id = 1;
	r->u.req.scheme = xstrdup("http");
	r->u.req.method = xstrdup(method);
	r->u.req.host = xstrdup("Example.COM");
	r->u.req.port = 80;
	r->u.req.path = xstrdup(path);
	if (query != NULL)
		r->u.req.query = xstrdup(query);
	r->u.req.req_headers = xstrdup("Host: example.com\r\n");
	if (status > 0) {
		r->u.req.status = status;
		r->u.req.resp_version = xstrdup("1.1");
		r->u.req.resp_headers =
		    xstrdup("Content-Type: text/plain\r\nX-N: 1\r\n");
	}
	return r;
}

/*
 * 1 GET /a  "one"      2 GET /a  "two"      3 GET /err (error)
 * 4 GET /none (no answer)                   5 POST /p body x -> "px"
 * 6 POST /p body y -> "py"                  7 GET /trunc (truncated)
 * 8 GET /a  label server-replay (an answer from a capture: skipped)
 * 9 GET /q?s=1&k=2
 */
static char dbpath[64];

static int
setup(void **state)
{
	char err[256] = "";
	struct store *st;
	struct store_rec *r;
	int fd;

	(void)state;
	snprintf(dbpath, sizeof(dbpath), "/tmp/peephole-rdb-XXXXXX");
	fd = mkstemp(dbpath);
	assert_true(fd >= 0);
	close(fd);
	unlink(dbpath);
	st = store_open(dbpath, (struct store_limits){0, 0}, err, sizeof(err));
	if (st == NULL)
		fail_msg("store_open: %s", err);
	r = mk("GET", "/a", NULL, 200);
	set_body(&r->u.req.resp_body, "one", 3);
	assert_int_equal(store_submit(st, r), 0);
	r = mk("GET", "/a", NULL, 200);
	set_body(&r->u.req.resp_body, "two", 3);
	assert_int_equal(store_submit(st, r), 0);
	r = mk("GET", "/err", NULL, 200);
	r->u.req.error = xstrdup("origin closed mid-body");
	assert_int_equal(store_submit(st, r), 0);
	assert_int_equal(store_submit(st, mk("GET", "/none", NULL, 0)), 0);
	r = mk("POST", "/p", NULL, 200);
	set_body(&r->u.req.req_body, "x", 1);
	set_body(&r->u.req.resp_body, "px", 2);
	assert_int_equal(store_submit(st, r), 0);
	r = mk("POST", "/p", NULL, 200);
	set_body(&r->u.req.req_body, "y", 1);
	set_body(&r->u.req.resp_body, "py", 2);
	assert_int_equal(store_submit(st, r), 0);
	r = mk("GET", "/trunc", NULL, 200);
	set_body(&r->u.req.resp_body, "abc", 5000);
	assert_int_equal(store_submit(st, r), 0);
	r = mk("GET", "/a", NULL, 200);
	r->u.req.label = xstrdup("server-replay");
	assert_int_equal(store_submit(st, r), 0);
	assert_int_equal(store_submit(st, mk("GET", "/q", "s=1&k=2", 200)), 0);
	store_close(st);
	return 0;
}

static int
teardown(void **state)
{
	char p[80];

	(void)state;
	unlink(dbpath);
	snprintf(p, sizeof(p), "%s-wal", dbpath);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", dbpath);
	unlink(p);
	return 0;
}

static struct replaydb *
open_db(int match_body, char *const *ignore, int nignore)
{
	struct replaydb_opts o = {dbpath, NULL, match_body, ignore, nignore};
	char err[256] = "";
	int usage = 0;
	struct replaydb *db = replaydb_open(&o, &usage, err, sizeof(err));

	if (db == NULL)
		fail_msg("replaydb_open: %s", err);
	return db;
}

static struct replaydb_key
key(const char *method, const char *path, const char *query)
{
	struct replaydb_key k = {
	    method, "http", "example.com", 80, path, query, NULL};
	return k;
}

static void
sha_hex(const char *s, char out[65])
{
	unsigned char md[32];
	unsigned n = 0;

	assert_int_equal(
	    EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL), 1);
	for (unsigned i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void
test_key_text(void **state)
{
	char session[] = "session", t[] = "t";
	char *ignore[] = {session, t};
	struct replaydb_key k = {"GET", "https", "API.Example.com", 443, NULL,
	    "t=1&a=2&session=x&b", NULL};
	char buf[256];

	(void)state;
	assert_int_equal(replaydb_key_text(&k, ignore, 2, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "GET https://api.example.com:443/?a=2&b");
	k.query = "t=1&session";
	k.path = "/x";
	assert_int_equal(replaydb_key_text(&k, ignore, 2, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "GET https://api.example.com:443/x");
	/* "t" is not "tt": only whole names are ignored */
	k.query = "tt=1";
	assert_int_equal(replaydb_key_text(&k, ignore, 2, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "GET https://api.example.com:443/x?tt=1");
	assert_int_equal(replaydb_key_text(&k, ignore, 2, buf, 10), -1);
}

static void
test_index_and_order(void **state)
{
	struct replaydb *db = open_db(0, NULL, 0);
	struct replaydb_key k = key("GET", "/a", NULL);
	char why[256];

	(void)state;
	/* /a twice, /p twice, /trunc, /q: not the error, the unanswered or
	 * the answer from a capture */
	assert_int_equal(replaydb_count(db), 6);
	assert_int_equal(replaydb_find(db, &k, why, sizeof(why)), 1);
	assert_int_equal(replaydb_find(db, &k, why, sizeof(why)), 2);
	assert_int_equal(replaydb_find(db, &k, why, sizeof(why)), 2);
	k = key("get", "/a", NULL); /* methods are case-sensitive */
	assert_int_equal(replaydb_find(db, &k, why, sizeof(why)), 0);
	assert_non_null(strstr(why, "nothing logged"));
	k = key("GET", "/err", NULL);
	assert_int_equal(replaydb_find(db, &k, why, sizeof(why)), 0);
	k = key("GET", "/trunc", NULL);
	assert_int_equal(replaydb_find(db, &k, why, sizeof(why)), 0);
	assert_non_null(strstr(why, "truncated"));
	/* without --match-body the body does not count */
	k = key("POST", "/p", NULL);
	assert_int_equal(replaydb_find(db, &k, why, sizeof(why)), 5);
	k = key("GET", "/q", "k=2&s=1"); /* order matters, as in mitmproxy */
	assert_int_equal(replaydb_find(db, &k, why, sizeof(why)), 0);
	replaydb_close(db);
}

static void
test_ignore_param(void **state)
{
	char s[] = "s";
	char *ignore[] = {s};
	struct replaydb *db = open_db(0, ignore, 1);
	struct replaydb_key k = key("GET", "/q", "s=99&k=2");
	char why[256];

	(void)state;
	assert_int_equal(replaydb_find(db, &k, why, sizeof(why)), 9);
	k.query = "k=2";
	assert_int_equal(replaydb_find(db, &k, why, sizeof(why)), 9);
	k.query = "k=3";
	assert_int_equal(replaydb_find(db, &k, why, sizeof(why)), 0);
	replaydb_close(db);
}

static void
test_match_body(void **state)
{
	struct replaydb *db = open_db(1, NULL, 0);
	struct replaydb_key k = key("POST", "/p", NULL);
	char why[256], x[65], y[65], z[65];

	(void)state;
	sha_hex("x", x);
	sha_hex("y", y);
	sha_hex("z", z);
	/* the body decides: read it first */
	assert_int_equal(replaydb_find(db, &k, why, sizeof(why)), -1);
	k.body_sha = y;
	assert_int_equal(replaydb_find(db, &k, why, sizeof(why)), 6);
	k.body_sha = x;
	assert_int_equal(replaydb_find(db, &k, why, sizeof(why)), 5);
	k.body_sha = z;
	assert_int_equal(replaydb_find(db, &k, why, sizeof(why)), 0);
	assert_non_null(strstr(why, "none with this request body"));
	k.body_sha = ""; /* no body at all */
	assert_int_equal(replaydb_find(db, &k, why, sizeof(why)), 0);
	/* a request without a body matches one logged without */
	k = key("GET", "/a", NULL);
	k.body_sha = "";
	assert_int_equal(replaydb_find(db, &k, why, sizeof(why)), 1);
	k = key("GET", "/nothing", NULL);
	assert_int_equal(replaydb_find(db, &k, why, sizeof(why)), 0);
	replaydb_close(db);
}

struct got {
	struct event_base *base;
	int calls, status;
	char headers[128], body[64];
	int64_t rowid;
	uint64_t len;
};

static void
read_cb(struct replaydb_chunk *ch, void *arg)
{
	struct got *g = arg;
	size_t n = evbuffer_get_length(ch->data);

	assert_null(ch->error);
	g->calls++;
	g->status = ch->status;
	if (ch->resp_headers != NULL)
		snprintf(
		    g->headers, sizeof(g->headers), "%s", ch->resp_headers);
	g->rowid = ch->body_rowid;
	g->len = ch->body_len;
	assert_true(n < sizeof(g->body));
	evbuffer_remove(ch->data, g->body, n);
	g->body[n] = '\0';
	event_base_loopbreak(g->base);
}

static void
run_until_called(struct got *g, int calls)
{
	for (int i = 0; i < 200 && g->calls < calls; i++) {
		struct timeval tv = {0, 10000};
		event_base_loopexit(g->base, &tv);
		event_base_dispatch(g->base);
	}
	assert_int_equal(g->calls, calls);
}

static void
test_reads_come_back_on_the_loop(void **state)
{
	struct replaydb *db = open_db(0, NULL, 0);
	struct got g;
	struct replaydb_read *r;

	(void)state;
	memset(&g, 0, sizeof(g));
	assert_int_equal(evthread_use_pthreads(), 0);
	g.base = event_base_new();
	assert_non_null(g.base);
	assert_int_equal(replaydb_start(db), 0);
	r = replaydb_read(db, 2, 0, 0, 2, g.base, read_cb, &g);
	assert_non_null(r);
	run_until_called(&g, 1);
	assert_int_equal(g.status, 200);
	assert_string_equal(
	    g.headers, "Content-Type: text/plain\r\nX-N: 1\r\n");
	assert_int_equal(g.len, 3);
	assert_true(g.rowid > 0);
	assert_string_equal(g.body, "tw"); /* at most max bytes */
	r = replaydb_read(db, 2, g.rowid, 2, 64, g.base, read_cb, &g);
	assert_non_null(r);
	run_until_called(&g, 2);
	assert_string_equal(g.body, "o");
	/* a cancelled read never calls back; close frees what is left */
	r = replaydb_read(db, 1, 0, 0, 64, g.base, read_cb, &g);
	assert_non_null(r);
	replaydb_read_cancel(r);
	for (int i = 0; i < 5; i++) {
		struct timeval tv = {0, 10000};
		event_base_loopexit(g.base, &tv);
		event_base_dispatch(g.base);
	}
	assert_int_equal(g.calls, 2);
	r = replaydb_read(db, 1, 0, 0, 64, g.base, read_cb, &g);
	assert_non_null(r);
	replaydb_close(db); /* before the loop ever delivers it */
	event_base_free(g.base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_key_text),
	    cmocka_unit_test(test_index_and_order),
	    cmocka_unit_test(test_ignore_param),
	    cmocka_unit_test(test_match_body),
	    cmocka_unit_test(test_reads_come_back_on_the_loop),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
