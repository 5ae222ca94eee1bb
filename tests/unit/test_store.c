/*
 * Unit tests for proxy/store: records in, rows out, body dedup, truncation,
 * back-pressure and the drain event, connection ids across runs, schema
 * migration (v1 -> v2 and v2 -> v3 included) and refusal of newer files,
 * the learned passthrough list, stream rows and events (v3), naming
 * connections to bare addresses, and WeChat newdns answers.
 *
 * schema.c is included (h2o style) for its v1 step text, so the migration
 * test starts from exactly what a v1 build wrote.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "proxy/store/schema.c"
#include "proxy/net/record.h"
#include "proxy/store/store.h"

struct fixture {
	char dir[64];
	char path[96];
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/peephole-store-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/t.db", f->dir);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char p[128];

	unlink(f->path);
	snprintf(p, sizeof(p), "%s-wal", f->path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", f->path);
	unlink(p);
	rmdir(f->dir);
	free(f);
	return 0;
}

static char *
xstrdup(const char *s)
{
	char *p = strdup(s);

	assert_non_null(p);
	return p;
}

/* A new file as a build of schema version v left it: steps 0..v-1 run. */
static sqlite3 *
db_at_version(const char *path, int v)
{
	char err[256] = "";
	sqlite3 *db;

	unlink(path);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	for (int k = 0; k < v; k++)
		if (schema_run_step(db, k, err, sizeof(err)) == -1)
			fail_msg("step %d: %s", k, err);
	return db;
}

static struct store *
open_store(const char *path, size_t qmax)
{
	char err[256] = "";
	struct store *st =
	    store_open(path, (struct store_limits){qmax, 0}, err, sizeof(err));

	if (st == NULL)
		fail_msg("store_open: %s", err);
	return st;
}

static struct store_rec *
mk_conn(int64_t id, const char *host)
{
	struct store_rec *r = store_rec_new(STORE_REC_CONN);

	assert_non_null(r);
	r->u.conn.id = id;
	r->u.conn.listener = xstrdup("http");
	r->u.conn.client_ip = xstrdup("127.0.0.1");
	r->u.conn.client_port = 50000;
	r->u.conn.target_host = xstrdup(host);
	r->u.conn.target_port = 80;
	r->u.conn.server_ip = xstrdup("10.0.0.1");
	r->u.conn.server_port = 80;
	r->u.conn.protocol = xstrdup("http");
	r->u.conn.t_accept_us = 1700000000000000;
	r->u.conn.t_close_us = 1700000001000000;
	r->u.conn.bytes_from_client = 111;
	r->u.conn.bytes_to_client = 222;
	r->u.conn.nrequests = 2;
	r->u.conn.close_reason = xstrdup("client-eof");
	return r;
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
mk_req(int64_t conn_id, const char *host, const char *path)
{
	struct store_rec *r = store_rec_new(STORE_REC_REQUEST);

	assert_non_null(r);
	r->u.req.conn_id = conn_id;
	r->u.req.seq = 1;
	r->u.req.t_start_us = 1700000000500000;
	r->u.req.client_ip = xstrdup("127.0.0.1");
	r->u.req.scheme = xstrdup("http");
	r->u.req.method = xstrdup("GET");
	r->u.req.host = xstrdup(host);
	r->u.req.port = 80;
	r->u.req.path = xstrdup(path);
	r->u.req.req_version = xstrdup("1.1");
	r->u.req.resp_version = xstrdup("1.1");
	r->u.req.status = 200;
	r->u.req.req_headers = xstrdup("Host: x\r\n");
	r->u.req.resp_headers = xstrdup("Content-Length: 3\r\n");
	r->u.req.req_header_bytes = 40;
	r->u.req.resp_header_bytes = 60;
	r->u.req.total_us = 1500;
	return r;
}

static struct store_rec *
mk_dip(const char *domain, const char *ip, int64_t t)
{
	struct store_rec *r = store_rec_new(STORE_REC_DOMAIN_IP);

	assert_non_null(r);
	r->u.dip.domain = xstrdup(domain);
	r->u.dip.ip = xstrdup(ip);
	r->u.dip.source = xstrdup("proxy-dns");
	r->u.dip.t_us = t;
	r->u.dip.ttl = 60;
	return r;
}

/* The single integer a query returns. */
static int64_t
q_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *s;
	int64_t v;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

static sqlite3 *
raw_open(const char *path)
{
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	return db;
}

static void
test_rec_new_defaults(void **state)
{
	struct store_rec *r = store_rec_new(STORE_REC_REQUEST);

	(void)state;
	assert_non_null(r);
	assert_int_equal(r->u.req.dns_us, -1);
	assert_int_equal(r->u.req.connect_us, -1);
	assert_int_equal(r->u.req.ttfb_us, -1);
	assert_int_equal(r->u.req.total_us, -1);
	store_rec_free(r);
	assert_null(store_rec_new((enum store_rec_type)42));
	store_rec_free(NULL);
}

static void
test_roundtrip(void **state)
{
	struct fixture *f = *state;
	static const unsigned char png[] = {0x89, 'P', 'N', 'G', 0, 1, 2, 3};
	struct store *st = open_store(f->path, 0);
	struct store_rec *r;
	sqlite3 *db;
	int64_t cid;

	assert_int_equal(store_start(st), 0);
	cid = store_next_conn_id(st);
	assert_int_equal(cid, 1);
	r = mk_req(cid, "example.com", "/a");
	set_body(&r->u.req.req_body, "hello", 5, 5);
	set_body(&r->u.req.resp_body, png, sizeof(png), sizeof(png));
	assert_int_equal(store_submit(st, r), 0);
	/* Same response bytes again: one row in bodies. */
	r = mk_req(cid, "example.com", "/b");
	set_body(&r->u.req.resp_body, png, sizeof(png), sizeof(png));
	assert_int_equal(store_submit(st, r), 0);
	/* Only 4 of 100 bytes captured. */
	r = mk_req(cid, "example.com", "/big");
	set_body(&r->u.req.resp_body, "abcd", 4, 100);
	r->u.req.query = xstrdup("x=1");
	assert_int_equal(store_submit(st, r), 0);
	assert_int_equal(store_submit(st, mk_conn(cid, "example.com")), 0);
	assert_int_equal(
	    store_submit(
		st, mk_dip("example.com", "10.0.0.1", 1700000000000000)),
	    0);
	assert_int_equal(
	    store_submit(
		st, mk_dip("example.com", "10.0.0.1", 1700000009000000)),
	    0);
	store_close(st);

	db = raw_open(f->path);
	assert_int_equal(q_int(db, "SELECT count(*) FROM requests"), 3);
	assert_int_equal(q_int(db, "SELECT count(*) FROM connections"), 1);
	assert_int_equal(q_int(db, "SELECT count(*) FROM bodies"), 3);
	assert_int_equal(q_int(db,
			     "SELECT count(DISTINCT resp_body_sha)"
			     " FROM requests WHERE path IN ('/a', '/b')"),
	    1);
	assert_int_equal(
	    q_int(db,
		"SELECT size FROM bodies WHERE sha256 ="
		" (SELECT resp_body_sha FROM requests WHERE path = '/a')"),
	    8);
	assert_int_equal(q_int(db,
			     "SELECT length(data) FROM bodies WHERE"
			     " sha256 = (SELECT resp_body_sha FROM requests "
			     "WHERE path = '/a')"),
	    8);
	/* sha256("hello") */
	assert_int_equal(q_int(db,
			     "SELECT count(*) FROM requests WHERE"
			     " req_body_sha = "
			     "'2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e"
			     "73043362938b9824' AND req_body_size = 5"),
	    1);
	assert_int_equal(q_int(db,
			     "SELECT resp_body_size FROM requests"
			     " WHERE path = '/big'"),
	    100);
	assert_int_equal(q_int(db,
			     "SELECT resp_body_truncated FROM requests"
			     " WHERE path = '/big'"),
	    1);
	assert_int_equal(q_int(db,
			     "SELECT resp_body_truncated FROM requests"
			     " WHERE path = '/a'"),
	    0);
	assert_int_equal(q_int(db,
			     "SELECT query = 'x=1' FROM requests"
			     " WHERE path = '/big'"),
	    1);
	assert_int_equal(
	    q_int(db,
		"SELECT count(*) FROM requests WHERE"
		" path = '/a' AND query IS NULL AND dns_us IS NULL"
		" AND total_us = 1500 AND req_body_sha IS NOT NULL"),
	    1);
	assert_int_equal(
	    q_int(db,
		"SELECT count(*) FROM requests WHERE"
		" path = '/b' AND req_body_sha IS NULL AND req_body_size = 0"),
	    1);
	assert_int_equal(q_int(db,
			     "SELECT bytes_to_client FROM connections"
			     " WHERE id = 1"),
	    222);
	assert_int_equal(q_int(db, "SELECT count FROM domain_ips"), 2);
	assert_int_equal(q_int(db,
			     "SELECT last_seen - first_seen"
			     " FROM domain_ips"),
	    9000000);
	assert_int_equal(q_int(db,
			     "SELECT requests FROM domain_catalogue"
			     " WHERE name = 'example.com'"),
	    3);
	sqlite3_close(db);
}

/* A record that cannot be written costs only itself, not its batch. */
/*
 * The writer's cache of recent bodies: bodies of one length that differ
 * only in their last bytes, more of them than the cache holds, each sent
 * three times, and a 1 MiB body twice. Every request points at the body
 * with its own bytes, and each distinct body is stored once.
 */
static void
test_body_seen(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_store(f->path, 0);
	struct store_rec *r;
	unsigned char *big;
	char body[64], path[32];
	sqlite3 *db;
	int round, i;

	assert_int_equal(store_start(st), 0);
	for (round = 0; round < 3; round++)
		for (i = 0; i < 40; i++) {
			snprintf(path, sizeof(path), "/p%02d", i);
			memset(body, 'x', sizeof(body));
			memcpy(body + sizeof(body) - 4, path, 4);
			r = mk_req(1, "example.com", path);
			set_body(&r->u.req.resp_body, body, sizeof(body),
			    sizeof(body));
			assert_int_equal(store_submit(st, r), 0);
		}
	assert_non_null(big = malloc(1 << 20));
	memset(big, 'b', 1 << 20);
	for (i = 0; i < 2; i++) {
		r = mk_req(1, "example.com", "/big");
		set_body(&r->u.req.resp_body, big, 1 << 20, 1 << 20);
		assert_int_equal(store_submit(st, r), 0);
	}
	big[(1 << 20) - 1] = 'c';
	r = mk_req(1, "example.com", "/big2");
	set_body(&r->u.req.resp_body, big, 1 << 20, 1 << 20);
	assert_int_equal(store_submit(st, r), 0);
	free(big);
	store_close(st);

	db = raw_open(f->path);
	assert_int_equal(q_int(db, "SELECT count(*) FROM requests"), 123);
	assert_int_equal(q_int(db, "SELECT count(*) FROM bodies"), 42);
	assert_int_equal(q_int(db,
			     "SELECT count(*) FROM requests r JOIN bodies b"
			     " ON b.sha256 = r.resp_body_sha WHERE r.path"
			     " LIKE '/p%' AND substr(b.data, 61, 4) ="
			     " CAST(r.path AS BLOB)"),
	    120);
	assert_int_equal(q_int(db,
			     "SELECT count(DISTINCT resp_body_sha) FROM"
			     " requests WHERE path LIKE '/big%'"),
	    2);
	assert_int_equal(q_int(db,
			     "SELECT count(*) FROM requests r JOIN bodies b"
			     " ON b.sha256 = r.resp_body_sha WHERE r.path ="
			     " '/big2' AND substr(b.data, 1048576, 1) = x'63'"),
	    1);
	sqlite3_close(db);
}

static void
test_failure_keeps_batch(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_store(f->path, 0);
	sqlite3 *db;

	assert_int_equal(store_submit(st, mk_conn(7, "a.test")), 0);
	/* Same primary key: the insert fails, is logged and counted. */
	assert_int_equal(store_submit(st, mk_conn(7, "a.test")), 0);
	assert_int_equal(store_submit(st, mk_req(7, "a.test", "/")), 0);
	assert_int_equal(store_submit(st, NULL), 0);
	assert_int_equal(store_start(st), 0);
	store_close(st);

	db = raw_open(f->path);
	assert_int_equal(q_int(db, "SELECT count(*) FROM requests"), 1);
	assert_int_equal(q_int(db, "SELECT count(*) FROM connections"), 1);
	sqlite3_close(db);
}

static void
test_failed_counted(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_store(f->path, 0);
	int i;

	assert_int_equal(store_start(st), 0);
	assert_int_equal(store_submit(st, mk_conn(3, "a.test")), 0);
	assert_int_equal(store_submit(st, mk_conn(3, "a.test")), 0);
	assert_int_equal(store_submit(st, mk_dip("a.test", "1.2.3.4", 5)), 0);
	/* Bounded wait for the writer. */
	for (i = 0; i < 500 && store_queued(st) > 0; i++)
		usleep(10000);
	assert_int_equal(store_queued(st), 0);
	assert_int_equal(store_written(st), 2);
	assert_int_equal(store_failed(st), 1);
	store_close(st);
}

static void
test_close_flushes_without_writer(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_store(f->path, 0);
	sqlite3 *db;
	int i;

	for (i = 0; i < 1200; i++)
		assert_int_equal(
		    store_submit(st, mk_req(1, "many.test", "/")), 0);
	assert_int_equal(store_queued(st), 1200);
	store_close(st);
	db = raw_open(f->path);
	assert_int_equal(q_int(db, "SELECT count(*) FROM requests"), 1200);
	sqlite3_close(db);
}

static void
drain_cb(evutil_socket_t fd, short what, void *arg)
{
	int *fired = arg;

	(void)fd;
	assert_true(what & EV_READ);
	(*fired)++;
}

static void
test_backpressure(void **state)
{
	struct fixture *f = *state;
	struct event_base *base;
	struct event *ev;
	struct timeval tv = {5, 0};
	struct store *st;
	int fired = 0, i;

	assert_int_equal(evthread_use_pthreads(), 0);
	assert_non_null(base = event_base_new());
	assert_non_null(ev = event_new(base, -1, 0, drain_cb, &fired));
	st = open_store(f->path, 4);
	store_watch_drain(st, ev);
	/* No writer yet, so the queue only grows. */
	for (i = 0; i < 4; i++)
		assert_int_equal(
		    store_submit(st, mk_req(1, "bp.test", "/")), 0);
	assert_int_equal(store_backlogged(st), 0);
	assert_int_equal(store_submit(st, mk_req(1, "bp.test", "/")), 1);
	assert_int_equal(store_submit(st, mk_req(1, "bp.test", "/")), 1);
	assert_int_equal(store_backlogged(st), 1);
	assert_int_equal(store_queued(st), 6);
	assert_int_equal(store_start(st), 0);
	/* Run until the drain event fires, bounded by tv. */
	for (i = 0; i < 50 && fired == 0; i++) {
		tv.tv_sec = 0;
		tv.tv_usec = 100000;
		assert_int_equal(event_base_loopexit(base, &tv), 0);
		assert_int_equal(event_base_dispatch(base), 0);
	}
	assert_int_equal(fired, 1);
	assert_int_equal(store_backlogged(st), 0);
	store_close(st);
	assert_int_equal(fired, 1);
	event_free(ev);
	event_base_free(base);
}

static void
test_next_conn_id_across_runs(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_store(f->path, 0);
	int64_t a, b, c;
	sqlite3 *db;

	a = store_next_conn_id(st);
	b = store_next_conn_id(st);
	assert_int_equal(a, 1);
	assert_int_equal(b, 2);
	assert_int_equal(store_submit(st, mk_conn(a, "x.test")), 0);
	store_close(st);

	/* the first run reserved two blocks; the next starts past them */
	st = open_store(f->path, 0);
	c = store_next_conn_id(st);
	assert_int_equal(c, 1 + 2 * STORE_ID_BLOCK);
	store_close(st);

	/*
	 * A file an earlier version wrote (no id counter): connection 5000
	 * never closed, only its request reached the file. The migration
	 * starts the counter past it.
	 */
	db = db_at_version(f->path, 5);
	assert_int_equal(sqlite3_exec(db,
			     "INSERT INTO requests (conn_id, seq)"
			     " VALUES (5000, 1)",
			     NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	st = open_store(f->path, 0);
	assert_int_equal(store_next_conn_id(st), 5001);
	store_close(st);
}

/* Two processes writing one file (run and replay, or two runs) are two
 * stores here: each hands out ids the other never does, across refills
 * the writers make while the other holds blocks, and every record lands. */
#define IDS_PER_STORE (3 * STORE_ID_BLOCK + 7)

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static void
test_two_writers_disjoint_ids(void **state)
{
	struct fixture *f = *state;
	struct store *s1 = open_store(f->path, 0), *s2 = open_store(f->path, 0);
	static int64_t ids[2 * IDS_PER_STORE];
	int i, n = 0;
	sqlite3 *db;

	assert_int_equal(store_start(s1), 0);
	assert_int_equal(store_start(s2), 0);
	for (i = 0; i < IDS_PER_STORE; i++) {
		ids[n] = store_next_conn_id(s1);
		assert_true(ids[n] > 0);
		(void)store_submit(s1, mk_conn(ids[n++], "one.test"));
		ids[n] = store_next_conn_id(s2);
		assert_true(ids[n] > 0);
		(void)store_submit(s2, mk_conn(ids[n++], "two.test"));
	}
	store_close(s1);
	store_close(s2);
	qsort(ids, (size_t)n, sizeof(ids[0]), cmp_i64);
	for (i = 1; i < n; i++)
		assert_true(ids[i] != ids[i - 1]);
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(
	    q_int(db, "SELECT count(*) FROM connections"), 2 * IDS_PER_STORE);
	assert_int_equal(q_int(db,
			     "SELECT count(*) FROM connections"
			     " WHERE target_host = 'two.test'"),
	    IDS_PER_STORE);
	sqlite3_close(db);
}

/* A request with a body near the byte limit: the queue is past its limit
 * in bytes long before it is in records. */
static void
test_backpressure_bytes(void **state)
{
	struct fixture *f = *state;
	char err[256] = "";
	struct store_limits lim = {1000, 1 << 20};
	struct store *st = store_open(f->path, lim, err, sizeof(err));
	struct store_rec *r;
	size_t one;
	int i;

	assert_non_null(st);
	r = mk_req(1, "big.test", "/");
	assert_non_null(r->u.req.resp_body.data = calloc(1, 400000));
	r->u.req.resp_body.len = r->u.req.resp_body.total = 400000;
	one = store_rec_bytes(r);
	assert_true(one > 400000 && one < 410000);
	assert_int_equal(store_submit(st, r), 0);
	assert_int_equal(store_queued_bytes(st), one);
	for (i = 0; i < 2; i++) {
		r = mk_req(1, "big.test", "/");
		assert_non_null(r->u.req.resp_body.data = calloc(1, 400000));
		r->u.req.resp_body.len = r->u.req.resp_body.total = 400000;
		assert_int_equal(store_submit(st, r), i == 1);
	}
	assert_int_equal(store_backlogged(st), 1);
	assert_int_equal(store_queued(st), 3);
	assert_int_equal(store_start(st), 0);
	for (i = 0; i < 100 && store_backlogged(st); i++)
		usleep(20000);
	assert_int_equal(store_backlogged(st), 0);
	store_close(st);
}

static void
test_migrate_empty(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	sqlite3 *db;

	/* An existing, empty file (user_version 0). */
	db = raw_open(f->path);
	assert_int_equal(q_int(db, "PRAGMA user_version"), 0);
	sqlite3_close(db);
	st = open_store(f->path, 0);
	store_close(st);
	db = raw_open(f->path);
	assert_int_equal(
	    q_int(db, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
	assert_int_equal(
	    q_int(db,
		"SELECT count(*) FROM sqlite_master WHERE"
		" name IN ('connections', 'requests', 'domain_ips', 'bodies',"
		" 'domain_catalogue', 'requests_host', 'requests_conn_id',"
		" 'connections_target_host', 'learned_passthrough')"),
	    9);
	assert_int_equal(q_int(db,
			     "SELECT journal_mode = 'wal'"
			     " FROM pragma_journal_mode"),
	    1);
	sqlite3_close(db);
	/* Reopening a current file is a no-op migration. */
	st = open_store(f->path, 0);
	store_close(st);
}

static void
test_newer_refused(void **state)
{
	struct fixture *f = *state;
	char err[256] = "";
	sqlite3 *db;

	db = raw_open(f->path);
	assert_int_equal(
	    sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	assert_null(
	    store_open(f->path, (struct store_limits){0, 0}, err, sizeof(err)));
	assert_non_null(strstr(err, "newer"));
	assert_non_null(strstr(err, "99"));
	db = raw_open(f->path);
	/* Untouched: still version 99, still not WAL, no tables. */
	assert_int_equal(q_int(db, "PRAGMA user_version"), 99);
	assert_int_equal(q_int(db,
			     "SELECT journal_mode = 'delete'"
			     " FROM pragma_journal_mode"),
	    1);
	assert_int_equal(q_int(db, "SELECT count(*) FROM sqlite_master"), 0);
	sqlite3_close(db);
}

/* The test's printer: the method as the line, and the row id. */
static void
print_method(const struct store_rec *rec, void *arg)
{
	(void)arg;
	printf("%s %lld\n", rec->u.req.method, (long long)rec->row_id);
}

/* The printer of test_newdns_answers: the row id it was given. */
static void
keep_row_id(const struct store_rec *rec, void *arg)
{
	*(int64_t *)arg = rec->row_id;
}

/* Flow lines reach the printer once their records are stored, with the
 * row id of the insert; a discarding store prints them too (no id) and
 * keeps nothing. */
static void
test_print_line_and_discard(void **state)
{
	struct fixture *f = *state;
	char out[128], buf[256];
	struct store_rec *r;
	struct store *st;
	int fd, saved, i;
	ssize_t n;

	snprintf(out, sizeof(out), "%s/stdout", f->dir);
	fflush(stdout);
	saved = dup(STDOUT_FILENO);
	fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(saved >= 0 && fd >= 0);
	assert_true(dup2(fd, STDOUT_FILENO) >= 0);
	close(fd);

	st = open_store(f->path, 0);
	store_set_printer(st, print_method, NULL);
	assert_int_equal(store_start(st), 0);
	r = mk_req(1, "p.test", "/");
	free(r->u.req.method);
	r->u.req.method = xstrdup("line-one");
	r->print = 1;
	assert_int_equal(store_submit(st, r), 0);
	r = mk_req(1, "p.test", "/"); /* not printed */
	assert_int_equal(store_submit(st, r), 0);
	r = mk_req(1, "p.test", "/");
	free(r->u.req.method);
	r->u.req.method = xstrdup("line-three");
	r->print = 1;
	assert_int_equal(store_submit(st, r), 0);
	store_close(st);

	assert_non_null(st = store_open_discard((struct store_limits){2, 0}));
	store_set_printer(st, print_method, NULL);
	assert_int_equal(store_next_conn_id(st), 1);
	assert_int_equal(store_start(st), 0);
	for (i = 0; i < 3; i++) {
		r = mk_req(1, "p.test", "/");
		free(r->u.req.method);
		r->u.req.method = xstrdup("line-two");
		r->print = 1;
		(void)store_submit(st, r);
	}
	for (i = 0; i < 500 && store_queued(st) > 0; i++)
		usleep(10000);
	assert_int_equal(store_queued(st), 0);
	assert_int_equal(store_written(st), 3);
	assert_int_equal(store_failed(st), 0);
	store_close(st);

	fflush(stdout);
	assert_true(dup2(saved, STDOUT_FILENO) >= 0);
	close(saved);
	fd = open(out, O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	unlink(out);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_string_equal(buf,
	    "line-one 1\nline-three 3\nline-two 0\n"
	    "line-two 0\nline-two 0\n");
}

/* A file as a v1 build left it: the v1 step, user_version 1 and a row in
 * each table the catalogue reads. */
static void
make_v1_file(const char *path)
{
	sqlite3 *db = raw_open(path);

	assert_int_equal(
	    sqlite3_exec(db, schema_step_v1, NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
			     "PRAGMA user_version = 1;"
			     "INSERT INTO connections (id, listener,"
			     " target_host, target_port, protocol,"
			     " t_accept_us, t_close_us) VALUES"
			     " (4, 'http', 'old.test', 80, 'http',"
			     " 1600000000000000, 1600000001000000);"
			     "INSERT INTO requests (conn_id, seq, host, port,"
			     " path, status, t_start_us) VALUES"
			     " (4, 1, 'old.test', 80, '/', 200,"
			     " 1600000000500000);",
			     NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
}

static void
test_migrate_v1_to_v2(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	struct store_rec *r;
	sqlite3 *db;

	make_v1_file(f->path);
	st = open_store(f->path, 0);
	/* Ids carry on from the v1 rows. */
	assert_int_equal(store_next_conn_id(st), 5);
	r = mk_conn(5, "new.test");
	r->u.conn.sni = xstrdup("new.test");
	r->u.conn.decision = xstrdup("intercept");
	assert_int_equal(store_submit(st, r), 0);
	store_close(st);

	db = raw_open(f->path);
	assert_int_equal(
	    q_int(db, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
	/* Old rows kept, new columns NULL on them. */
	assert_int_equal(q_int(db,
			     "SELECT count(*) FROM connections WHERE id = 4"
			     " AND target_host = 'old.test' AND sni IS NULL"
			     " AND alpn IS NULL AND decision IS NULL"
			     " AND decision_reason IS NULL"
			     " AND tls_client IS NULL AND tls_server IS NULL"
			     " AND upstream_cert_sha256 IS NULL"
			     " AND upstream_cert_subject IS NULL"
			     " AND upstream_cert_issuer IS NULL"
			     " AND verify_error IS NULL"),
	    1);
	assert_int_equal(q_int(db, "SELECT count(*) FROM requests"), 1);
	assert_int_equal(
	    q_int(db, "SELECT count(*) FROM learned_passthrough"), 0);
	assert_int_equal(q_int(db,
			     "SELECT requests + connections * 10"
			     " FROM domain_catalogue WHERE name = 'old.test'"),
	    11);
	assert_int_equal(q_int(db,
			     "SELECT intercepted * 10 + pinned"
			     " FROM domain_catalogue WHERE name = 'new.test'"),
	    10);
	assert_int_equal(q_int(db,
			     "SELECT protocols = 'http' AND pinned = 0"
			     " AND passed_through = 0 AND intercepted = 0"
			     " FROM domain_catalogue WHERE name = 'old.test'"),
	    1);
	sqlite3_close(db);
}

/* The TLS fields reach their columns; the ones left NULL stay NULL. */
static void
test_conn_tls_fields(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_store(f->path, 0);
	struct store_rec *r;
	struct store_conn *c;
	sqlite3 *db;

	r = mk_conn(1, "10.1.2.3");
	c = &r->u.conn;
	free(c->protocol);
	c->protocol = xstrdup("tls");
	c->target_port = 443;
	c->sni = xstrdup("www.bank.test");
	c->alpn = xstrdup("http/1.1");
	c->decision = xstrdup("passthrough");
	c->decision_reason = xstrdup("rule *.bank.test");
	c->tls_client = xstrdup("TLSv1.3/TLS_AES_256_GCM_SHA384");
	c->tls_server = xstrdup("TLSv1.2/ECDHE-RSA-AES128-GCM-SHA256");
	c->upstream_cert_sha256 = xstrdup("ab12");
	c->upstream_cert_subject = xstrdup("CN=www.bank.test");
	c->upstream_cert_issuer = xstrdup("CN=Test CA");
	c->verify_error = xstrdup("certificate has expired");
	assert_int_equal(store_submit(st, r), 0);
	r = mk_conn(2, "plain.test");
	assert_int_equal(store_submit(st, r), 0);
	store_close(st);

	db = raw_open(f->path);
	assert_int_equal(
	    q_int(db,
		"SELECT count(*) FROM connections WHERE id = 1"
		" AND sni = 'www.bank.test' AND alpn = 'http/1.1'"
		" AND decision = 'passthrough'"
		" AND decision_reason = 'rule *.bank.test'"
		" AND tls_client = 'TLSv1.3/TLS_AES_256_GCM_SHA384'"
		" AND tls_server = 'TLSv1.2/ECDHE-RSA-AES128-GCM-SHA256'"
		" AND upstream_cert_sha256 = 'ab12'"
		" AND upstream_cert_subject = 'CN=www.bank.test'"
		" AND upstream_cert_issuer = 'CN=Test CA'"
		" AND verify_error = 'certificate has expired'"),
	    1);
	assert_int_equal(q_int(db,
			     "SELECT count(*) FROM connections WHERE id = 2"
			     " AND sni IS NULL AND decision IS NULL"
			     " AND verify_error IS NULL"),
	    1);
	/* The connection counts under its SNI as well as the IP asked for. */
	assert_int_equal(q_int(db,
			     "SELECT connections * 100 + passed_through * 10"
			     " + intercepted FROM domain_catalogue"
			     " WHERE name = 'www.bank.test'"),
	    110);
	assert_int_equal(q_int(db,
			     "SELECT passed_through FROM domain_catalogue"
			     " WHERE name = '10.1.2.3'"),
	    1);
	sqlite3_close(db);
}

static struct store_rec *
mk_learned(const char *host, int port, const char *reason, int64_t t)
{
	struct store_rec *r = store_rec_new(STORE_REC_LEARNED_PASSTHROUGH);

	assert_non_null(r);
	r->u.learned.host = xstrdup(host);
	r->u.learned.port = port;
	r->u.learned.reason = reason != NULL ? xstrdup(reason) : NULL;
	r->u.learned.t_us = t;
	r->u.learned.rejections = 1;
	r->u.learned.next_retry_us = t + 60000000;
	return r;
}

struct learned_seen {
	char list[256];
	int n;
};

static void
learned_cb(const struct store_learned_row *row, void *arg)
{
	struct learned_seen *ls = arg;
	size_t len = strlen(ls->list);

	snprintf(ls->list + len, sizeof(ls->list) - len, "%s:%d;", row->host,
	    row->port);
	ls->n++;
}

static void
test_learned_upsert_and_load(void **state)
{
	struct fixture *f = *state;
	struct learned_seen ls = {"", 0};
	struct store *st = open_store(f->path, 0);
	sqlite3 *db;

	/* Empty list: no calls. */
	assert_int_equal(store_load_learned(st, learned_cb, &ls), 0);
	assert_int_equal(ls.n, 0);
	assert_int_equal(store_start(st), 0);
	assert_int_equal(
	    store_submit(st,
		mk_learned("pin.test", 443, "client rejected: unknown ca",
		    1700000000000000)),
	    0);
	assert_int_equal(
	    store_submit(st, mk_learned("b.test", 8443, NULL, 0)), 0);
	assert_int_equal(
	    store_submit(st,
		mk_learned("pin.test", 443, "client rejected: bad cert",
		    1700000005000000)),
	    0);
	/* A later record without a reason or time keeps both. */
	assert_int_equal(
	    store_submit(st, mk_learned("pin.test", 443, NULL, 0)), 0);
	assert_int_equal(
	    store_submit(st, mk_learned("pin.test", 8443, NULL, 5)), 0);
	store_close(st);

	db = raw_open(f->path);
	assert_int_equal(
	    q_int(db, "SELECT count(*) FROM learned_passthrough"), 3);
	assert_int_equal(q_int(db,
			     "SELECT count(*) FROM learned_passthrough"
			     " WHERE host = 'pin.test' AND port = 443"
			     " AND count = 3 AND first_seen = 1700000000000000"
			     " AND last_seen = 1700000005000000"
			     " AND reason = 'client rejected: bad cert'"),
	    1);
	assert_int_equal(q_int(db,
			     "SELECT count(*) FROM learned_passthrough"
			     " WHERE host = 'b.test' AND count = 1"
			     " AND reason IS NULL AND first_seen IS NULL"),
	    1);
	assert_int_equal(q_int(db,
			     "SELECT pinned FROM domain_catalogue"
			     " WHERE name = 'pin.test'"),
	    1);
	sqlite3_close(db);

	st = open_store(f->path, 0);
	assert_int_equal(store_load_learned(st, learned_cb, &ls), 0);
	assert_int_equal(ls.n, 3);
	assert_string_equal(ls.list, "b.test:8443;pin.test:443;pin.test:8443;");
	store_close(st);

	/* A discarding store knows nothing and says so without failing. */
	ls.n = 0;
	assert_non_null(st = store_open_discard((struct store_limits){0, 0}));
	assert_int_equal(store_load_learned(st, learned_cb, &ls), 0);
	assert_int_equal(ls.n, 0);
	store_close(st);
}

static void submit_ok(struct store *st, struct store_rec *r);

/* What the watcher saw; written on the writer thread, hence the lock. */
struct watch_seen {
	pthread_mutex_t mtx;
	int calls;
	struct learned_seen ls;
};

/* The writer's reload: read the table as the proxy's watcher does. */
static void
watch_cb(struct store *st, void *arg)
{
	struct watch_seen *w = arg;
	struct learned_seen ls;

	memset(&ls, 0, sizeof(ls));
	assert_int_equal(store_load_learned(st, learned_cb, &ls), 0);
	pthread_mutex_lock(&w->mtx);
	w->ls = ls;
	w->calls++;
	pthread_mutex_unlock(&w->mtx);
}

/* The watcher's call count, and its last list into ls when not NULL. */
static int
watch_calls(struct watch_seen *w, struct learned_seen *ls)
{
	int n;

	pthread_mutex_lock(&w->mtx);
	n = w->calls;
	if (ls != NULL)
		*ls = w->ls;
	pthread_mutex_unlock(&w->mtx);
	return n;
}

/*
 * The back-off columns: an upsert takes the count and retry time given, a
 * forget record deletes the row, and another connection's edit (the CLI's
 * `passthrough retry`) makes the running writer call its watcher, while
 * the writer's own writes do not.
 */
static void
test_learned_backoff_forget_and_watch(void **state)
{
	struct fixture *f = *state;
	struct watch_seen w;
	struct learned_seen seen;
	struct store *st = open_store(f->path, 0);
	struct store_rec *r;
	sqlite3 *db;

	memset(&w, 0, sizeof(w));
	pthread_mutex_init(&w.mtx, NULL);
	store_watch_learned(st, watch_cb, &w);
	assert_int_equal(store_start(st), 0);
	r = mk_learned("a.test", 443, "client rejected: alert unknown_ca", 10);
	r->u.learned.rejections = 3;
	r->u.learned.next_retry_us = 999;
	submit_ok(st, r);
	submit_ok(st, mk_learned("b.test", 443, NULL, 20));
	submit_ok(st, mk_learned("c.test", 443, NULL, 20));
	r = store_rec_new(STORE_REC_LEARNED_FORGET);
	assert_non_null(r);
	r->u.learned.host = xstrdup("b.test");
	r->u.learned.port = 443;
	submit_ok(st, r);
	r = store_rec_new(STORE_REC_NOTE);
	assert_non_null(r);
	submit_ok(st, r);
	for (int i = 0; i < 200 && store_written(st) < 5; i++)
		usleep(10000);
	assert_int_equal(store_written(st), 5);
	usleep(2 * STORE_POLL_MS * 1000);
	assert_int_equal(watch_calls(&w, NULL), 0);

	db = raw_open(f->path);
	assert_int_equal(q_int(db,
			     "SELECT count(*) FROM learned_passthrough"
			     " WHERE host = 'a.test' AND rejections = 3"
			     " AND next_retry_us = 999"
			     " AND last_reason = 'client rejected: alert "
			     "unknown_ca'"),
	    1);
	assert_int_equal(q_int(db,
			     "SELECT count(*) FROM learned_passthrough"
			     " WHERE host = 'b.test'"),
	    0);
	assert_int_equal(
	    sqlite3_exec(db, "UPDATE learned_passthrough SET next_retry_us = 0",
		NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	for (int i = 0; i < 200 && watch_calls(&w, NULL) == 0; i++)
		usleep(10000);
	assert_int_equal(watch_calls(&w, &seen), 1);
	assert_string_equal(seen.list, "a.test:443;c.test:443;");
	store_close(st);
	pthread_mutex_destroy(&w.mtx);
}

/* v4 -> v5 keeps a learned row, its count becomes the rejections and it
 * is retried at once. */
static void
test_migrate_v4_learned(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	sqlite3 *db = db_at_version(f->path, 4);

	assert_int_equal(sqlite3_exec(db,
			     "INSERT INTO learned_passthrough (host, port,"
			     " reason, first_seen, last_seen, count) VALUES"
			     " ('old.test', 443, 'unsupported protocol', 1, 2,"
			     " 4);",
			     NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	st = open_store(f->path, 0);
	store_close(st);
	db = raw_open(f->path);
	assert_int_equal(
	    q_int(db, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
	assert_int_equal(q_int(db,
			     "SELECT count(*) FROM learned_passthrough"
			     " WHERE host = 'old.test' AND rejections = 4"
			     " AND next_retry_us = 0"
			     " AND last_reason = 'unsupported protocol'"),
	    1);
	sqlite3_close(db);
}

/* Another program's SQLite file, and a file that is not SQLite at all:
 * refused, naming the file, and left as they were. */
static void
test_open_foreign_and_garbage(void **state)
{
	struct fixture *f = *state;
	char err[512] = "";
	sqlite3 *db;
	FILE *fp;

	db = raw_open(f->path);
	assert_int_equal(
	    sqlite3_exec(db, "CREATE TABLE notes (x TEXT)", NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	assert_null(
	    store_open(f->path, (struct store_limits){0, 0}, err, sizeof(err)));
	assert_non_null(strstr(err, f->path));
	assert_non_null(strstr(err, "not peephole's"));
	db = raw_open(f->path);
	assert_int_equal(q_int(db, "SELECT count(*) FROM sqlite_master"), 1);
	sqlite3_close(db);

	assert_non_null(fp = fopen(f->path, "wb"));
	for (int i = 0; i < 4096; i++)
		fputc((i * 7919) & 0xff, fp);
	fclose(fp);
	err[0] = '\0';
	assert_null(
	    store_open(f->path, (struct store_limits){0, 0}, err, sizeof(err)));
	assert_non_null(strstr(err, f->path));
}

static void
test_open_bad_path(void **state)
{
	char err[256] = "";

	(void)state;
	assert_null(store_open("/nonexistent-dir/x/t.db",
	    (struct store_limits){0, 0}, err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent-dir/x/t.db"));
	store_close(NULL);
}

static void
submit_ok(struct store *st, struct store_rec *r)
{
	assert_int_equal(store_submit(st, r), 0);
}

/* A file as a v2 build left it, with a connection and a request. */
static void
make_v2_file(const char *path)
{
	sqlite3 *db = raw_open(path);

	assert_int_equal(
	    sqlite3_exec(db, schema_step_v1, NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(db, schema_step_v2, NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
			     "PRAGMA user_version = 2;"
			     "INSERT INTO connections (id, listener,"
			     " target_host, target_port, protocol, sni,"
			     " decision, t_accept_us, t_close_us) VALUES"
			     " (7, 'http', 'v2.test', 443, 'tls', 'v2.test',"
			     " 'passthrough', 1600000000000000,"
			     " 1600000001000000);"
			     "INSERT INTO requests (conn_id, seq, method, host,"
			     " port, status, t_start_us) VALUES"
			     " (7, 1, 'CONNECT', 'v2.test', 443, 200,"
			     " 1600000000000100);",
			     NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
}

static void
test_migrate_v2_to_v3(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	sqlite3 *db;

	make_v2_file(f->path);
	st = open_store(f->path, 0);
	assert_int_equal(store_next_conn_id(st), 8);
	store_close(st);

	db = raw_open(f->path);
	assert_int_equal(
	    q_int(db, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
	assert_int_equal(
	    q_int(db,
		"SELECT count(*) FROM connections WHERE id = 7"
		" AND sni = 'v2.test' AND decision = 'passthrough'"
		" AND listener_target IS NULL AND closed_by IS NULL"
		" AND tcp_client_rtt_us IS NULL"
		" AND tcp_server_pmtu IS NULL"
		" AND mmtls_records IS NULL AND events IS NULL"),
	    1);
	assert_int_equal(q_int(db, "SELECT count(*) FROM requests"), 1);
	assert_int_equal(q_int(db, "SELECT count(*) FROM stream_events"), 0);
	assert_int_equal(q_int(db,
			     "SELECT count(*) FROM sqlite_master WHERE name IN"
			     " ('stream_events', 'stream_events_conn',"
			     " 'stream_names', 'domain_ips_ip')"),
	    4);
	assert_int_equal(q_int(db,
			     "SELECT connections * 10 + passed_through"
			     " FROM domain_catalogue WHERE name = 'v2.test'"
			     " AND named_by = ''"),
	    11);
	sqlite3_close(db);
}

/* A passed-through mmTLS stream to a bare address, every v3 field set. */
static struct store_rec *
mk_stream(int64_t id, const char *target, const char *sni)
{
	struct store_rec *r = mk_conn(id, target);
	struct store_conn *c = &r->u.conn;

	free(c->protocol);
	c->protocol = xstrdup("mmtls");
	c->target_port = 8080;
	free(c->server_ip);
	c->server_ip = xstrdup(target);
	c->server_port = 8080;
	c->sni = sni != NULL ? xstrdup(sni) : NULL;
	c->decision = xstrdup("passthrough");
	c->decision_reason = xstrdup("not TLS (mmtls)");
	c->listener_target = xstrdup("203.0.113.9:8080");
	c->t_upstream_connected_us = c->t_accept_us + 1000;
	c->t_first_up_us = c->t_accept_us + 1500;
	c->t_last_up_us = c->t_accept_us + 900000;
	c->t_first_down_us = c->t_accept_us + 2500;
	c->t_last_down_us = c->t_accept_us + 950000;
	c->reads_up = 3;
	c->reads_down = 4;
	c->closed_by = xstrdup("server-fin");
	c->events = 250;
	c->events_capped = 1;
	c->has_tcpinfo_client = 1;
	c->tcpinfo_client =
	    (struct store_tcpinfo){1200, 300, 1, 2, 0, 3, 10, 1500};
	c->mmtls_records = 9;
	c->mmtls_handshake = 2;
	c->mmtls_early = 1;
	c->mmtls_data = 5;
	c->mmtls_alert = 1;
	return r;
}

/* n events alternating up and down, every third an mmTLS data record. */
static struct store_rec *
mk_events(int64_t cid, size_t n, int64_t t0)
{
	struct store_rec *r = store_rec_new(STORE_REC_STREAM_EVENTS);
	size_t i;

	assert_non_null(r);
	r->u.sev.conn_id = cid;
	r->u.sev.n = n;
	r->u.sev.ev = calloc(n, sizeof(*r->u.sev.ev));
	assert_non_null(r->u.sev.ev);
	for (i = 0; i < n; i++) {
		r->u.sev.ev[i].t_us = t0 + (int64_t)i * 10;
		r->u.sev.ev[i].dir = i % 2;
		r->u.sev.ev[i].bytes = (uint32_t)i + 1;
		r->u.sev.ev[i].mmtls_type = i % 3 == 0 ? 0x17 : 0;
	}
	return r;
}

static void
test_stream_roundtrip(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_store(f->path, 0);
	sqlite3 *db;

	assert_int_equal(store_start(st), 0);
	/* 2 full multi-row inserts and 50 single rows, then 1 more. */
	assert_int_equal(
	    store_submit(st, mk_events(1, 250, 1700000000001000)), 0);
	assert_int_equal(
	    store_submit(st, mk_events(1, 1, 1700000000009000)), 0);
	assert_int_equal(store_submit(st, mk_events(2, 0, 0)), 0);
	assert_int_equal(
	    store_submit(st, mk_stream(1, "203.0.113.9", NULL)), 0);
	store_close(st);

	db = raw_open(f->path);
	assert_int_equal(
	    q_int(db, "SELECT count(*) FROM stream_events WHERE conn_id = 1"),
	    251);
	assert_int_equal(q_int(db, "SELECT sum(bytes) FROM stream_events"),
	    250 * 251 / 2 + 1);
	assert_int_equal(q_int(db,
			     "SELECT count(*) FROM stream_events"
			     " WHERE mmtls_type = 23"),
	    84 + 1);
	assert_int_equal(q_int(db,
			     "SELECT count(*) FROM stream_events"
			     " WHERE mmtls_type IS NULL"),
	    166);
	assert_int_equal(q_int(db,
			     "SELECT sum(dir) FROM stream_events"
			     " WHERE t_us < 1700000000009000"),
	    125);
	assert_int_equal(
	    q_int(db,
		"SELECT count(*) FROM connections WHERE id = 1"
		" AND listener_target = '203.0.113.9:8080'"
		" AND t_upstream_connected_us = 1700000000001000"
		" AND t_first_up_us = 1700000000001500"
		" AND t_last_up_us = 1700000000900000"
		" AND t_first_down_us = 1700000000002500"
		" AND t_last_down_us = 1700000000950000"
		" AND reads_up = 3 AND reads_down = 4"
		" AND closed_by = 'server-fin' AND events = 250"
		" AND events_capped = 1"
		" AND tcp_client_rtt_us = 1200 AND tcp_client_rttvar_us = 300"
		" AND tcp_client_retransmits = 1"
		" AND tcp_client_total_retrans = 2 AND tcp_client_lost = 0"
		" AND tcp_client_reordering = 3 AND tcp_client_snd_cwnd = 10"
		" AND tcp_client_pmtu = 1500"
		" AND tcp_server_rtt_us IS NULL AND tcp_server_pmtu IS NULL"
		" AND mmtls_bad = 0 AND mmtls_records = 9"
		" AND mmtls_handshake = 2 AND mmtls_early = 1"
		" AND mmtls_data = 5 AND mmtls_alert = 1"),
	    1);
	sqlite3_close(db);
}

static void
q_text(sqlite3 *db, const char *sql, const char *want)
{
	sqlite3_stmt *s;
	const unsigned char *t;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	t = sqlite3_column_text(s, 0);
	if (want == NULL)
		assert_null(t);
	else {
		assert_non_null(t);
		assert_string_equal((const char *)t, want);
	}
	sqlite3_finalize(s);
}

static struct store_rec *
mk_dip_src(const char *domain, const char *ip, const char *src, int64_t t)
{
	struct store_rec *r = mk_dip(domain, ip, t);

	free(r->u.dip.source);
	r->u.dip.source = xstrdup(src);
	return r;
}

/* A name -> address answer given to one client. */
static struct store_rec *
mk_sight(const char *domain, const char *ip, const char *src, int64_t t,
    const char *client, int ttl)
{
	struct store_rec *r = mk_dip_src(domain, ip, src, t);

	r->u.dip.client_ip = xstrdup(client);
	r->u.dip.ttl = ttl;
	return r;
}

/*
 * Streams to bare addresses get names: from their own SNI; else from what
 * the same client was told or used shortly before (its DNS answers through
 * the proxy, app-dns, its own connections by SNI or CONNECT name); never
 * from another client's answers or a stale one; when several names fit,
 * none, marked ambiguous with the candidates. The catalogue counts such
 * inferred connections apart.
 */
static void
test_stream_names(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_store(f->path, 0);
	struct store_rec *r;
	int64_t t0 = 1700000000000000;
	const char *me = "127.0.0.1";
	sqlite3 *db;

	/* 1: its own SNI. */
	submit_ok(st, mk_stream(1, "198.51.100.1", "tls.example"));
	/* 2: app-dns told this client before it opened; a later proxy-dns
	 * answer for the same address (reused) does not rename it. */
	submit_ok(st,
	    mk_sight("sglong.wechat.com", "198.51.100.2", "app-dns",
		t0 - 5000000, me, 600));
	submit_ok(st,
	    mk_sight("later.example", "198.51.100.2", "proxy-dns",
		t0 + 60000000, me, -1));
	submit_ok(st, mk_stream(2, "198.51.100.2", NULL));
	/* 3: this client's CONNECT by name to 198.51.100.3 names a later
	 * stream there. */
	r = mk_stream(4, "tunnel.example", NULL);
	free(r->u.conn.server_ip);
	r->u.conn.server_ip = xstrdup("198.51.100.3");
	r->u.conn.t_accept_us = t0 - 1000000;
	submit_ok(st, r);
	submit_ok(st, mk_stream(3, "198.51.100.3", NULL));
	/* 5: nothing known. 6: IPv6. */
	submit_ok(st, mk_stream(5, "198.51.100.5", NULL));
	submit_ok(st,
	    mk_sight("v6.example", "2001:db8::6", "proxy-dns", t0 - 1, me, -1));
	submit_ok(st, mk_stream(6, "2001:db8::6", NULL));
	/* 7: another client's answer names nothing here. */
	submit_ok(st,
	    mk_sight("other.example", "198.51.100.7", "proxy-dns", t0 - 1000000,
		"10.0.0.99", 600));
	submit_ok(st, mk_stream(7, "198.51.100.7", NULL));
	/* 8: an answer 400 s old with a 60 s TTL is stale (the window is the
	 * TTL, at least 300 s). */
	submit_ok(st,
	    mk_sight("stale.example", "198.51.100.8", "app-dns", t0 - 400000000,
		me, 60));
	submit_ok(st, mk_stream(8, "198.51.100.8", NULL));
	/* 9: one CDN address, two names told to this client: ambiguous. */
	submit_ok(st,
	    mk_sight("a.cdn.example", "198.51.100.9", "proxy-dns", t0 - 2000000,
		me, 60));
	submit_ok(st,
	    mk_sight("b.cdn.example", "198.51.100.9", "app-dns", t0 - 1000000,
		me, 60));
	submit_ok(st, mk_stream(9, "198.51.100.9", NULL));
	store_close(st);

	db = raw_open(f->path);
	q_text(db, "SELECT name FROM stream_names WHERE conn_id = 1",
	    "tls.example");
	q_text(
	    db, "SELECT named_by FROM stream_names WHERE conn_id = 1", "sni");
	q_text(db, "SELECT name FROM stream_names WHERE conn_id = 2",
	    "sglong.wechat.com");
	q_text(db, "SELECT named_by FROM stream_names WHERE conn_id = 2",
	    "app-dns");
	assert_int_equal(q_int(db,
			     "SELECT named_at_us FROM stream_names"
			     " WHERE conn_id = 2"),
	    t0 - 5000000);
	q_text(db,
	    "SELECT name || ' ' || named_by FROM stream_names"
	    " WHERE conn_id = 3",
	    "tunnel.example connect");
	q_text(db, "SELECT name FROM stream_names WHERE conn_id = 5", NULL);
	q_text(db,
	    "SELECT name || ' ' || named_by FROM stream_names"
	    " WHERE conn_id = 6",
	    "v6.example proxy-dns");
	q_text(db, "SELECT name FROM stream_names WHERE conn_id = 7", NULL);
	q_text(db, "SELECT name FROM stream_names WHERE conn_id = 8", NULL);
	q_text(db, "SELECT name FROM stream_names WHERE conn_id = 9", NULL);
	q_text(db, "SELECT named_by FROM stream_names WHERE conn_id = 9",
	    "ambiguous");
	assert_int_equal(q_int(db,
			     "SELECT instr(candidates, 'a.cdn.example') > 0"
			     " AND instr(candidates, 'b.cdn.example') > 0"
			     " FROM stream_names WHERE conn_id = 9"),
	    1);
	/* A connection that asked for a name is not in stream_names. */
	assert_int_equal(
	    q_int(db, "SELECT count(*) FROM stream_names WHERE conn_id = 4"),
	    0);
	/* The SNI of connection 1 became evidence for its address, for
	 * everyone (domain_ips) and for its client (name_sightings). */
	assert_int_equal(q_int(db,
			     "SELECT count(*) FROM domain_ips WHERE"
			     " domain = 'tls.example' AND source = 'sni'"
			     " AND ip = '198.51.100.1'"),
	    1);
	assert_int_equal(q_int(db,
			     "SELECT count(*) FROM name_sightings WHERE"
			     " domain = 'tls.example' AND source = 'sni'"
			     " AND client_ip = '127.0.0.1'"),
	    1);
	/* inferred connections are counted apart from seen ones */
	q_text(db,
	    "SELECT named_by || ' ' || protocols || ' ' || connections"
	    " || ' ' || inferred || ' ' || passed_through"
	    " FROM domain_catalogue WHERE name = 'sglong.wechat.com'",
	    "app-dns mmtls 0 1 1");
	q_text(db,
	    "SELECT connections || ' ' || inferred FROM domain_catalogue"
	    " WHERE name = 'tunnel.example'",
	    "1 1");
	q_text(db,
	    "SELECT named_by FROM domain_catalogue"
	    " WHERE name = 'tunnel.example'",
	    "connect");
	q_text(db,
	    "SELECT named_by FROM domain_catalogue WHERE name = '198.51.100.5'",
	    "");
	assert_int_equal(q_int(db,
			     "SELECT inferred FROM domain_catalogue"
			     " WHERE name = 'a.cdn.example'"),
	    0);
	sqlite3_close(db);
}

/* in, raw-deflated (windowBits -15, what dns.weixin.qq.com sends). */
static unsigned char *
deflate_raw(const char *in, size_t *outlen)
{
	z_stream zs;
	unsigned char *out;
	size_t cap, len = strlen(in);

	memset(&zs, 0, sizeof(zs));
	assert_int_equal(
	    deflateInit2(&zs, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY), Z_OK);
	cap = deflateBound(&zs, len);
	assert_non_null(out = malloc(cap));
	zs.next_in = (unsigned char *)(uintptr_t)in;
	zs.avail_in = (uInt)len;
	zs.next_out = out;
	zs.avail_out = (uInt)cap;
	assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
	*outlen = zs.total_out;
	deflateEnd(&zs);
	return out;
}

static struct store_rec *
mk_newdns(int64_t cid, const void *body, size_t len, uint64_t total)
{
	struct store_rec *r =
	    mk_req(cid, "dns.weixin.qq.com", "/cgi-bin/micromsg-bin/newgetdns");

	free(r->u.req.query);
	r->u.req.query = xstrdup("uin=0&clientversion=1");
	r->u.req.status = 200;
	free(r->u.req.resp_headers);
	r->u.req.resp_headers =
	    xstrdup("Content-Type: text/xml\r\nContent-Encoding: deflate\r\n");
	free(r->u.req.resp_body.data);
	r->u.req.resp_body.data = malloc(len);
	assert_non_null(r->u.req.resp_body.data);
	memcpy(r->u.req.resp_body.data, body, len);
	r->u.req.resp_body.len = len;
	r->u.req.resp_body.total = total;
	r->u.req.resp_body.truncated = total > len;
	return r;
}

/* A newdns answer lands in domain_ips as app-dns with its timeout as
 * TTL; a truncated or garbled one changes nothing but is still a request
 * row. */
static void
test_newdns_answers(void **state)
{
	static const char doc[] =
	    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
	    "<dns><domainlist>"
	    "<domain name=\"sglong.wechat.com\" timeout=\"1800\">"
	    "<ip>198.51.100.7</ip><ip>198.51.100.8</ip></domain>"
	    "<domain name=\"sgshort.wechat.com\" timeout=\"600\">"
	    "<ip>198.51.100.9</ip></domain>"
	    "</domainlist></dns>"
	    "<clientip>203.0.113.7</clientip>\n";
	struct fixture *f = *state;
	struct store *st = open_store(f->path, 0);
	struct store_rec *r;
	unsigned char *z;
	size_t zlen;
	int64_t row = -1;
	sqlite3 *db;

	/* the proxy's deriver (record.c), as peephole run sets it */
	store_set_deriver(st, record_derive);
	z = deflate_raw(doc, &zlen);
	/* its answers are queued before it: the printer still gets the
	 * request's own row id */
	store_set_printer(st, keep_row_id, &row);
	r = mk_newdns(1, z, zlen, zlen);
	r->print = 1;
	submit_ok(st, r);
	/* Truncated capture: not parsed. */
	submit_ok(st, mk_newdns(2, z, zlen / 2, zlen));
	/* Garbage: logged, the row stands. */
	submit_ok(st, mk_newdns(3, "not deflate at all", 18, 18));
	free(z);
	/* the same client, half a second after the answer */
	r = mk_stream(4, "198.51.100.8", NULL);
	r->u.conn.t_accept_us = 1700000001000000;
	submit_ok(st, r);
	store_close(st);

	db = raw_open(f->path);
	assert_int_equal(q_int(db, "SELECT count(*) FROM requests"), 3);
	assert_int_equal(q_int(db,
			     "SELECT count(*) FROM domain_ips"
			     " WHERE source = 'app-dns'"),
	    3);
	assert_int_equal(q_int(db,
			     "SELECT ttl FROM domain_ips WHERE"
			     " domain = 'sglong.wechat.com'"
			     " AND ip = '198.51.100.8'"),
	    1800);
	assert_int_equal(q_int(db,
			     "SELECT ttl FROM domain_ips WHERE"
			     " domain = 'sgshort.wechat.com'"),
	    600);
	q_text(db,
	    "SELECT name || ' ' || named_by FROM stream_names"
	    " WHERE conn_id = 4",
	    "sglong.wechat.com app-dns");
	assert_int_equal(
	    row, q_int(db, "SELECT id FROM requests WHERE conn_id = 1"));
	assert_int_equal(q_int(db,
			     "SELECT count(*) FROM domain_ips"
			     " WHERE ip = '203.0.113.7'"),
	    0);
	sqlite3_close(db);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rec_new_defaults),
	    cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_body_seen, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_failure_keeps_batch, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_failed_counted, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_close_flushes_without_writer, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_backpressure, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_next_conn_id_across_runs, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_two_writers_disjoint_ids, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_backpressure_bytes, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_migrate_empty, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_newer_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_print_line_and_discard, setup, teardown),
	    cmocka_unit_test(test_open_bad_path),
	    cmocka_unit_test_setup_teardown(
		test_open_foreign_and_garbage, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_migrate_v1_to_v2, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_conn_tls_fields, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_learned_upsert_and_load, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_learned_backoff_forget_and_watch, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_migrate_v4_learned, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_migrate_v2_to_v3, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_stream_roundtrip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stream_names, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_newdns_answers, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
