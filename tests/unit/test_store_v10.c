/*
 * Unit tests for schema v10 (HTTP/2 and WebSocket): migrating a v9 file,
 * writing a request's new fields, per-leg ALPN and batches of WebSocket
 * messages through the store and reading them back (SQL, and select with
 * ~websocket, ~h2 and ~b over messages), and freeing a message batch.
 *
 * schema.c is included (h2o style) for its steps, so the v9 file is what
 * a v9 build wrote.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy/store/schema.c"
#include "proxy/store/select.h"
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
	snprintf(f->dir, sizeof(f->dir), "/tmp/peephole-v10-XXXXXX");
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

static void *
xmemdup(const void *s, size_t n)
{
	void *p = malloc(n);

	assert_non_null(p);
	memcpy(p, s, n);
	return p;
}

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

/* The text a query returns, malloc'd; NULL for SQL NULL. */
static char *
q_text(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *s;
	const unsigned char *t;
	char *v;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	t = sqlite3_column_text(s, 0);
	v = t != NULL ? xstrdup((const char *)t) : NULL;
	sqlite3_finalize(s);
	return v;
}

static void
expect_text(sqlite3 *db, const char *sql, const char *want)
{
	char *v = q_text(db, sql);

	if (want == NULL)
		assert_null(v);
	else
		assert_string_equal(v, want);
	free(v);
}

static struct store *
open_store(const char *path)
{
	char err[256] = "";
	struct store *st =
	    store_open(path, (struct store_limits){0, 0}, err, sizeof(err));

	if (st == NULL)
		fail_msg("store_open: %s", err);
	return st;
}

static struct store_rec *
mk_req(int64_t conn_id, int seq, const char *path)
{
	struct store_rec *r = store_rec_new(STORE_REC_REQUEST);

	assert_non_null(r);
	r->u.req.conn_id = conn_id;
	r->u.req.seq = seq;
	r->u.req.t_start_us = 1700000000000000;
	r->u.req.scheme = xstrdup("https");
	r->u.req.method = xstrdup("GET");
	r->u.req.host = xstrdup("example.test");
	r->u.req.port = 443;
	r->u.req.path = xstrdup(path);
	r->u.req.req_version = xstrdup("1.1");
	r->u.req.resp_version = xstrdup("1.1");
	r->u.req.status = 200;
	r->u.req.req_headers = xstrdup("Host: example.test\r\n");
	r->u.req.resp_headers = xstrdup("Content-Length: 0\r\n");
	return r;
}

/* An h2 exchange on stream 5, HTTP/1.1 to the origin, with trailers,
 * reset by the client. */
static struct store_rec *
mk_h2_req(int64_t conn_id)
{
	struct store_rec *r = mk_req(conn_id, 1, "/h2");

	free(r->u.req.req_version);
	free(r->u.req.resp_version);
	free(r->u.req.req_headers);
	free(r->u.req.resp_headers);
	r->u.req.req_version = xstrdup("2");
	r->u.req.resp_version = xstrdup("2");
	r->u.req.req_headers = xstrdup(
	    ":method: GET\r\n:scheme: https\r\n"
	    ":authority: example.test\r\n:path: /h2\r\naccept: */*\r\n");
	r->u.req.resp_headers = xstrdup(":status: 200\r\nserver: t\r\n");
	r->u.req.stream_id = 5;
	r->u.req.up_version = xstrdup("1.1");
	r->u.req.req_trailers = xstrdup("x-checksum: 1\r\n");
	r->u.req.resp_trailers = xstrdup("grpc-status: 0\r\n");
	r->u.req.stream_end = xstrdup("rst-client CANCEL");
	return r;
}

/* A batch of n messages of (conn_id, seq) from first_idx: alternately
 * sent text "subscribe N" and received binary "\0pong". */
static struct store_rec *
mk_ws(int64_t conn_id, int seq, int first_idx, size_t n)
{
	static const unsigned char pong[] = {0, 'p', 'o', 'n', 'g'};
	struct store_rec *r = store_rec_new(STORE_REC_WS_MESSAGES);
	char text[32];

	assert_non_null(r);
	r->u.ws.conn_id = conn_id;
	r->u.ws.seq = seq;
	r->u.ws.first_idx = first_idx;
	r->u.ws.n = n;
	r->u.ws.m = calloc(n, sizeof(*r->u.ws.m));
	assert_non_null(r->u.ws.m);
	for (size_t i = 0; i < n; i++) {
		struct store_ws_msg *m = &r->u.ws.m[i];
		m->t_us = 1700000000100000 + (int64_t)(first_idx + i) * 1000;
		m->dir = (uint8_t)((first_idx + i) % 2);
		m->close_code = -1;
		if (m->dir == 0) {
			snprintf(
			    text, sizeof(text), "subscribe %zu", first_idx + i);
			m->opcode = 1;
			m->len = strlen(text);
			m->data = xmemdup(text, m->len);
		} else {
			m->opcode = 2;
			m->compressed = 1;
			m->len = sizeof(pong);
			m->data = xmemdup(pong, sizeof(pong));
		}
		m->size = m->len;
		m->wire_bytes = m->len + 6;
	}
	return r;
}

/* A v9 file with one request keeps it, gains the v10 columns (NULL for
 * the old row), the ws_messages table and the (conn_id, seq) index. */
static void
test_migrate_v9_to_v10(void **state)
{
	struct fixture *f = *state;
	char err[256] = "";
	sqlite3 *db;
	int k;

	unlink(f->path);
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	for (k = 0; k < 9; k++)
		if (schema_run_step(db, k, err, sizeof(err)) == -1)
			fail_msg("step %d: %s", k, err);
	assert_int_equal(q_int(db, "PRAGMA user_version"), 9);
	assert_int_equal(sqlite3_exec(db,
			     "INSERT INTO connections (id, alpn) VALUES (7,"
			     " 'h2,http/1.1');"
			     "INSERT INTO requests (conn_id, seq, method, host)"
			     " VALUES (7, 1, 'GET', 'old.test');",
			     NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	store_close(open_store(f->path));

	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(
	    q_int(db, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
	assert_int_equal(q_int(db,
			     "SELECT count(*) FROM requests WHERE host ="
			     " 'old.test' AND stream_id IS NULL AND up_version"
			     " IS NULL AND req_trailers IS NULL AND"
			     " resp_trailers IS NULL AND stream_end IS NULL"),
	    1);
	expect_text(db, "SELECT alpn FROM connections", "h2,http/1.1");
	expect_text(db, "SELECT alpn_client FROM connections", NULL);
	assert_int_equal(q_int(db, "SELECT count(*) FROM ws_messages"), 0);
	assert_int_equal(q_int(db,
			     "SELECT count(*) FROM sqlite_master WHERE name IN"
			     " ('requests_conn_seq', 'ws_messages_request')"),
	    2);
	assert_int_equal(schema_check_readable(db, err, sizeof(err)), 0);
	sqlite3_close(db);
}

/* The ids a filter selects, as "1,3," for comparison. */
static void
expect_selected(sqlite3 *db, const char *expr, const char *want)
{
	char got[128] = "";
	struct select *s;
	int64_t id;
	int usage, rc;

	s = select_new(db, "test", NULL, 0, expr, &usage);
	assert_non_null(s);
	while ((rc = select_next(s, &id)) == 1)
		snprintf(got + strlen(got), sizeof(got) - strlen(got), "%lld,",
		    (long long)id);
	assert_int_equal(rc, 0);
	select_free(s);
	if (strcmp(got, want) != 0)
		fail_msg("%s selected '%s', want '%s'", expr, got, want);
}

/* Rows 1 (h2), 2 (a WebSocket, 5 messages in two batches), 3 (plain);
 * a batch without its request is refused and counted. */
static void
write_capture(const char *path)
{
	struct store *st = open_store(path);
	struct store_rec *c, *ws;
	int64_t cid;

	assert_int_equal(store_start(st), 0);
	cid = store_next_conn_id(st);
	assert_int_equal(store_submit(st, mk_h2_req(cid)), 0);
	assert_int_equal(store_submit(st, mk_req(cid, 2, "/ws")), 0);
	assert_int_equal(store_submit(st, mk_ws(cid, 2, 0, 3)), 0);
	ws = mk_ws(cid, 2, 3, 2);
	ws->u.ws.m[1].opcode = 8;
	ws->u.ws.m[1].close_code = 1000;
	ws->u.ws.m[1].close_reason = xstrdup("bye");
	ws->u.ws.m[1].error = xstrdup("frame too large");
	ws->u.ws.m[1].truncated = 1;
	assert_int_equal(store_submit(st, ws), 0);
	assert_int_equal(store_submit(st, mk_req(cid, 3, "/plain")), 0);
	assert_int_equal(store_submit(st, mk_ws(cid, 99, 0, 1)), 0);
	c = store_rec_new(STORE_REC_CONN);
	assert_non_null(c);
	c->u.conn.id = cid;
	c->u.conn.alpn = xstrdup("h2,http/1.1");
	c->u.conn.alpn_client = xstrdup("h2");
	c->u.conn.alpn_server = xstrdup("http/1.1");
	assert_int_equal(store_submit(st, c), 0);
	store_close(st);
}

static void
test_h2_and_ws_roundtrip(void **state)
{
	struct fixture *f = *state;
	sqlite3 *db;

	write_capture(f->path);
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(q_int(db,
			     "SELECT stream_id FROM requests WHERE"
			     " path = '/h2'"),
	    5);
	expect_text(db, "SELECT up_version FROM requests WHERE id = 1", "1.1");
	expect_text(db, "SELECT resp_trailers FROM requests WHERE id = 1",
	    "grpc-status: 0\r\n");
	expect_text(db, "SELECT req_trailers FROM requests WHERE id = 1",
	    "x-checksum: 1\r\n");
	expect_text(db, "SELECT stream_end FROM requests WHERE id = 1",
	    "rst-client CANCEL");
	assert_int_equal(q_int(db,
			     "SELECT count(*) FROM requests WHERE"
			     " stream_id IS NULL AND up_version IS NULL"),
	    2);
	expect_text(db, "SELECT alpn_client FROM connections", "h2");
	expect_text(db, "SELECT alpn_server FROM connections", "http/1.1");
	/* five messages under request 2, idx continuing across batches;
	 * the orphan batch wrote nothing */
	assert_int_equal(q_int(db, "SELECT count(*) FROM ws_messages"), 5);
	assert_int_equal(q_int(db,
			     "SELECT count(DISTINCT idx) FROM"
			     " ws_messages WHERE request_id = 2"),
	    5);
	assert_int_equal(q_int(db, "SELECT max(idx) FROM ws_messages"), 4);
	expect_text(db,
	    "SELECT CAST(payload AS TEXT) FROM ws_messages"
	    " WHERE idx = 2",
	    "subscribe 2");
	assert_int_equal(q_int(db,
			     "SELECT compressed + 10 * dir + 100 *"
			     " opcode FROM ws_messages WHERE idx = 1"),
	    211);
	assert_int_equal(q_int(db,
			     "SELECT count(*) FROM ws_messages WHERE"
			     " close_code IS NULL AND close_reason IS"
			     " NULL AND error IS NULL"),
	    4);
	assert_int_equal(q_int(db,
			     "SELECT close_code + 10000 * truncated"
			     " FROM ws_messages WHERE idx = 4"),
	    11000);
	expect_text(db,
	    "SELECT close_reason || '|' || error FROM ws_messages"
	    " WHERE idx = 4",
	    "bye|frame too large");
	expect_selected(db, "~websocket", "2,");
	expect_selected(db, "~h2", "1,");
	expect_selected(db, "!~ws & !~h2", "3,");
	expect_selected(db, "~b 'subscribe 2'", "2,");
	expect_selected(db, "~bq pong", "");
	expect_selected(db, "~bs pong", "2,");
	expect_selected(db, "~hq ':authority: example'", "1,");
	sqlite3_close(db);
}

/*
 * v11: connections rows carry wseq, their order of writing. Rows of an
 * older file take their id; rows written after are numbered on from the
 * largest, whatever their ids (a connection that opened first and closed
 * last comes last).
 */
static void
test_migrate_v10_to_v11_wseq(void **state)
{
	struct fixture *f = *state;
	char err[256] = "";
	struct store *st;
	struct store_rec *c;
	sqlite3 *db;
	int k;

	unlink(f->path);
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	for (k = 0; k < 10; k++)
		if (schema_run_step(db, k, err, sizeof(err)) == -1)
			fail_msg("step %d: %s", k, err);
	assert_int_equal(
	    sqlite3_exec(db, "INSERT INTO connections (id) VALUES (3), (40);",
		NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);

	st = open_store(f->path);
	assert_int_equal(store_start(st), 0);
	for (k = 0; k < 2; k++) {
		c = store_rec_new(STORE_REC_CONN);
		assert_non_null(c);
		c->u.conn.id = k == 0 ? 50 : 7; /* 7 opened before 50 */
		assert_int_equal(store_submit(st, c), 0);
	}
	store_close(st);

	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(
	    q_int(db, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
	expect_text(db,
	    "SELECT group_concat(id || '=' || wseq, ' ') FROM"
	    " (SELECT id, wseq FROM connections ORDER BY wseq)",
	    "3=3 40=40 50=41 7=42");
	assert_int_equal(q_int(db,
			     "SELECT count(*) FROM sqlite_master WHERE name ="
			     " 'connections_wseq'"),
	    1);
	/* v12: the locality tables, empty */
	assert_int_equal(q_int(db,
			     "SELECT count(*) FROM sqlite_master WHERE name IN"
			     " ('resolver_answers', 'traces', 'trace_hops',"
			     " 'tcp_samples')"),
	    4);
	assert_int_equal(q_int(db, "SELECT count(*) FROM tcp_samples"), 0);
	sqlite3_close(db);
}

/* A batch frees every payload, reason and error (ASan says if not), and
 * the queue counts its payload bytes. */
static void
test_ws_rec_free_and_bytes(void **state)
{
	struct store_rec *r = mk_ws(1, 1, 0, 4), *empty;
	size_t payload = 0;

	(void)state;
	r->u.ws.m[3].close_reason = xstrdup("going away");
	r->u.ws.m[3].error = xstrdup("bad frame");
	for (size_t i = 0; i < r->u.ws.n; i++)
		payload += r->u.ws.m[i].len;
	assert_true(store_rec_bytes(r) >= payload + 4 * sizeof(*r->u.ws.m));
	store_rec_free(r);
	empty = store_rec_new(STORE_REC_WS_MESSAGES);
	assert_non_null(empty);
	store_rec_free(empty);
	r = mk_h2_req(1);
	store_rec_free(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		test_migrate_v9_to_v10, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_h2_and_ws_roundtrip, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_migrate_v10_to_v11_wseq, setup, teardown),
	    cmocka_unit_test(test_ws_rec_free_and_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
