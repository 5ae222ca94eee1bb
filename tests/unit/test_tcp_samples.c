/*
 * Unit tests for TCP timelines: proxy/net/tcpsample.c (reached by
 * including it) reading TCP_INFO, batching, the cap and the timer; the
 * STORE_REC_TCP_SAMPLES record (size, free, rows written) and the
 * connections row's tcp_samples_capped. Real TCP sockets over loopback
 * (TCP_INFO needs TCP), a real store on a temporary file, a fake worker
 * and connection holding only what the sampler reads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "proxy/net/tcpsample.c"

#include <arpa/inet.h>
#include <event2/thread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <unistd.h>

struct tf {
	char dir[64], path[96];
	struct config cfg;
	struct worker w;
	struct conn c;
	struct upstream up;
	int fd[2]; /* a connected TCP pair: fd[0] the "client", fd[1] the
		      "origin" leg */
};

/* Two connected loopback TCP sockets. */
static void
tcp_pair(int fd[2])
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(l >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(l, 1), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&a, &len), 0);
	fd[0] = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(fd[0], (struct sockaddr *)&a, sizeof(a)), 0);
	fd[1] = accept(l, NULL, NULL);
	assert_true(fd[1] >= 0);
	close(l);
}

/* Traffic both ways, delivered: each leg's next reading differs. */
static void
traffic(struct tf *f)
{
	char b;

	assert_int_equal(write(f->fd[0], "a", 1), 1);
	assert_int_equal(read(f->fd[1], &b, 1), 1);
	assert_int_equal(write(f->fd[1], "b", 1), 1);
	assert_int_equal(read(f->fd[0], &b, 1), 1);
}

static int
setup(void **state)
{
	struct tf *f = calloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");
	char err[256] = "";

	assert_non_null(f);
	evthread_use_pthreads();
	log_set_level(LOG_LEVEL_WARN);
	snprintf(f->dir, sizeof(f->dir), "%s/pp-tcps-XXXXXX",
	    tmp != NULL && strlen(tmp) < 32 ? tmp : "/tmp");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/t.db", f->dir);
	config_init(&f->cfg);
	f->w.cfg = &f->cfg;
	assert_non_null(f->w.base = event_base_new());
	f->w.store =
	    store_open(f->path, (struct store_limits){0, 0}, err, sizeof(err));
	if (f->w.store == NULL)
		fail_msg("store_open: %s", err);
	assert_int_equal(store_start(f->w.store), 0);
	tcp_pair(f->fd);
	f->c.w = &f->w;
	f->c.id = 7;
	f->c.state = CONN_TUNNEL;
	f->c.cbev = bufferevent_socket_new(f->w.base, f->fd[0], 0);
	f->up.bev = bufferevent_socket_new(f->w.base, f->fd[1], 0);
	assert_non_null(f->c.cbev);
	assert_non_null(f->up.bev);
	f->c.up = &f->up;
	*state = f;
	return 0;
}

/* Close the store (all written) once; the tests then read the file. */
static void
close_store(struct tf *f)
{
	store_close(f->w.store);
	f->w.store = NULL;
}

static int
teardown(void **state)
{
	struct tf *f = *state;
	char p[128];

	close_store(f);
	bufferevent_free(f->c.cbev);
	bufferevent_free(f->up.bev);
	close(f->fd[0]);
	close(f->fd[1]);
	event_base_free(f->w.base);
	config_free(&f->cfg);
	unlink(f->path);
	snprintf(p, sizeof(p), "%s-wal", f->path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", f->path);
	unlink(p);
	rmdir(f->dir);
	free(f);
	return 0;
}

static long long
q_int(const char *path, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	long long v = -1;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

/* TCP_INFO of a TCP socket is read; of anything else, not. */
static void
test_read(void **state)
{
	struct tf *f = *state;
	struct store_tcp_sample s;
	int sv[2];

	assert_int_equal(write(f->fd[0], "hello", 5), 5);
	assert_int_equal(tcpsample_read(f->fd[0], 1, 42, &s), 1);
	assert_int_equal(s.side, 1);
	assert_int_equal(s.t_us, 42);
	assert_true(s.snd_cwnd > 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(tcpsample_read(sv[0], 0, 1, &s), 0);
	assert_int_equal(tcpsample_read(-1, 0, 1, &s), 0);
	close(sv[0]);
	close(sv[1]);
}

/* Interval 0, max 0, or no store: no sampler at all. */
static void
test_off(void **state)
{
	struct tf *f = *state;
	struct tcpsample *t = (struct tcpsample *)1;
	struct store *st = f->w.store;

	f->cfg.tcp_sample_interval_ms = 0;
	assert_int_equal(tcpsample_start(&f->c, &t), 0);
	assert_null(t);
	f->cfg.tcp_sample_interval_ms = 100;
	f->cfg.tcp_samples_max = 0;
	assert_int_equal(tcpsample_start(&f->c, &t), 0);
	assert_null(t);
	f->cfg.tcp_samples_max = 10;
	f->w.store = NULL;
	assert_int_equal(tcpsample_start(&f->c, &t), 0);
	assert_null(t);
	f->w.store = st;
	assert_int_equal(tcpsample_finish(NULL, -1, -1, 0), 0);
	tcpsample_stop(NULL);
	tcpsample_free(NULL);
}

/* tcp-samples-max=5: five rows per leg, then capped; the close reading
 * is the one cut. */
static void
test_cap(void **state)
{
	struct tf *f = *state;
	struct tcpsample *t = NULL;

	f->cfg.tcp_samples_max = 5;
	assert_int_equal(tcpsample_start(&f->c, &t), 0);
	assert_non_null(t);
	assert_int_equal(t->rows[0], 1);
	assert_int_equal(t->rows[1], 1);
	for (int i = 0; i < 4; i++) {
		traffic(f);
		tcpsample_tick(t, f->fd[0], f->fd[1], now_us());
	}
	assert_int_equal(t->rows[0], 5);
	assert_int_equal(t->rows[1], 5);
	assert_int_equal(t->capped, 0);
	traffic(f);
	assert_int_equal(tcpsample_finish(t, f->fd[0], f->fd[1], now_us()), 1);
	tcpsample_free(t);
	close_store(f);
	assert_int_equal(q_int(f->path,
			     "SELECT count(*) FROM tcp_samples"
			     " WHERE conn_id = 7 AND side = 0"),
	    5);
	assert_int_equal(q_int(f->path,
			     "SELECT count(*) FROM tcp_samples"
			     " WHERE conn_id = 7 AND side = 1"),
	    5);
}

/* At the cap with nothing new at close, nothing was cut: not capped. */
static void
test_cap_exact(void **state)
{
	struct tf *f = *state;
	struct tcpsample *t = NULL;

	f->cfg.tcp_samples_max = 2;
	assert_int_equal(tcpsample_start(&f->c, &t), 0);
	traffic(f);
	tcpsample_tick(t, f->fd[0], f->fd[1], now_us());
	assert_int_equal(t->rows[0], 2);
	assert_int_equal(tcpsample_finish(t, f->fd[0], f->fd[1], now_us()), 0);
	tcpsample_free(t);
}

/* An idle stream: readings that repeat the last one are not kept. */
static void
test_idle(void **state)
{
	struct tf *f = *state;
	struct tcpsample *t = NULL;

	assert_int_equal(tcpsample_start(&f->c, &t), 0);
	for (int i = 0; i < 20; i++)
		tcpsample_tick(t, f->fd[0], f->fd[1], now_us());
	assert_int_equal(t->ticks, 21);
	assert_int_equal(t->rows[0], 1);
	assert_int_equal(t->rows[1], 1);
	traffic(f);
	tcpsample_tick(t, f->fd[0], f->fd[1], now_us());
	assert_int_equal(t->rows[0], 2);
	assert_int_equal(t->rows[1], 2);
	assert_int_equal(tcpsample_finish(t, f->fd[0], f->fd[1], now_us()), 0);
	tcpsample_free(t);
	close_store(f);
	assert_int_equal(q_int(f->path, "SELECT count(*) FROM tcp_samples"), 4);
	assert_int_equal(q_int(f->path,
			     "SELECT min(bytes_received)"
			     " FROM tcp_samples WHERE side = 1"),
	    0);
	assert_int_equal(q_int(f->path,
			     "SELECT max(bytes_received)"
			     " FROM tcp_samples WHERE side = 1"),
	    1);
}

/* A long stream holds one batch at most: it starts small, grows to
 * TCPSAMPLE_BATCH, full ones go to the store, every sample is written. */
static void
test_batches(void **state)
{
	struct tf *f = *state;
	struct tcpsample *t = NULL;
	int i;

	f->cfg.tcp_samples_max = 1000;
	assert_int_equal(tcpsample_start(&f->c, &t), 0);
	assert_int_equal(t->cap, TCPSAMPLE_FIRST);
	for (i = 0; i < 199; i++) {
		traffic(f);
		tcpsample_tick(t, f->fd[0], f->fd[1], now_us());
		assert_true(t->n <= t->cap);
		assert_true(t->cap <= TCPSAMPLE_BATCH);
	}
	/* the origin leg is gone at close: its reading is skipped */
	traffic(f);
	assert_int_equal(tcpsample_finish(t, f->fd[0], -1, now_us()), 0);
	assert_int_equal(t->n, 0);
	assert_null(t->batch);
	tcpsample_free(t);
	close_store(f);
	assert_int_equal(
	    q_int(f->path, "SELECT count(*) FROM tcp_samples"), 201 * 2 - 1);
	assert_int_equal(q_int(f->path,
			     "SELECT count(DISTINCT t_us)"
			     " FROM tcp_samples WHERE side = 1"),
	    200);
}

/* The timer reads on the loop by itself; when every leg has its rows it
 * stops. */
static void
test_timer(void **state)
{
	struct tf *f = *state;
	struct tcpsample *t = NULL;
	int i;

	f->cfg.tcp_sample_interval_ms = 1;
	f->cfg.tcp_samples_max = 3;
	assert_int_equal(tcpsample_start(&f->c, &t), 0);
	for (i = 0; i < 1000 && t->ticks < 3; i++)
		event_base_loop(f->w.base, EVLOOP_ONCE);
	assert_true(t->ticks >= 3);
	assert_int_equal(t->rows[0], 1); /* idle: nothing new */
	assert_true(event_pending(t->ev, EV_TIMEOUT, NULL));
	for (i = 0; i < 1000 && (t->rows[0] < 3 || t->rows[1] < 3); i++) {
		traffic(f);
		event_base_loop(f->w.base, EVLOOP_ONCE);
	}
	assert_int_equal(t->rows[0], 3);
	assert_int_equal(t->rows[1], 3);
	assert_int_equal(event_pending(t->ev, EV_TIMEOUT, NULL), 0);
	tcpsample_free(t);
}

/* A closed connection's timer does nothing but stop. */
static void
test_timer_closed(void **state)
{
	struct tf *f = *state;
	struct tcpsample *t = NULL;

	f->cfg.tcp_sample_interval_ms = 1;
	assert_int_equal(tcpsample_start(&f->c, &t), 0);
	f->c.state = CONN_CLOSED;
	tcpsample_timercb(-1, EV_TIMEOUT, t);
	assert_int_equal(t->ticks, 1);
	assert_int_equal(event_pending(t->ev, EV_TIMEOUT, NULL), 0);
	tcpsample_free(t);
}

/* The record: its bytes counted for the queue bound, freed in full
 * (ASan), named in log lines. */
static void
test_record(void **state)
{
	struct store_rec *r = store_rec_new(STORE_REC_TCP_SAMPLES);

	(void)state;
	assert_non_null(r);
	assert_int_equal(store_rec_bytes(r), sizeof(*r) + 256);
	r->u.tcps.n = 7;
	r->u.tcps.s = calloc(7, sizeof(*r->u.tcps.s));
	assert_non_null(r->u.tcps.s);
	assert_int_equal(store_rec_bytes(r),
	    sizeof(*r) + 256 + 7 * sizeof(struct store_tcp_sample));
	store_rec_free(r);
}

/* The row's tcp_samples_capped, and sample columns as given. */
static void
test_store_rows(void **state)
{
	struct tf *f = *state;
	struct store_rec *c = store_rec_new(STORE_REC_CONN);
	struct store_rec *r = store_rec_new(STORE_REC_TCP_SAMPLES);
	struct store_tcp_sample *s;

	assert_non_null(c);
	assert_non_null(r);
	c->u.conn.id = 9;
	c->u.conn.tcp_samples_capped = 1;
	r->u.tcps.conn_id = 9;
	r->u.tcps.n = 1;
	r->u.tcps.s = s = calloc(1, sizeof(*s));
	assert_non_null(s);
	*s = (struct store_tcp_sample){.t_us = 1700000000000001,
	    .side = 1,
	    .rtt_us = 40123,
	    .rttvar_us = 77,
	    .snd_cwnd = 10,
	    .unacked = 3,
	    .retrans = 1,
	    .total_retrans = 2,
	    .bytes_in_flight = 4344,
	    .delivery_rate = 1000000,
	    .bytes_acked = (uint64_t)5 << 32,
	    .bytes_received = 6};
	(void)store_submit(f->w.store, r);
	(void)store_submit(f->w.store, c);
	close_store(f);
	assert_int_equal(q_int(f->path,
			     "SELECT tcp_samples_capped"
			     " FROM connections WHERE id = 9"),
	    1);
	assert_int_equal(q_int(f->path,
			     "SELECT rtt_us + rttvar_us + snd_cwnd"
			     " + unacked + retrans + total_retrans"
			     " + bytes_in_flight + delivery_rate"
			     " + bytes_received FROM tcp_samples"
			     " WHERE conn_id = 9 AND side = 1"),
	    40123 + 77 + 10 + 3 + 1 + 2 + 4344 + 1000000 + 6);
	assert_int_equal(q_int(f->path,
			     "SELECT bytes_acked FROM tcp_samples"
			     " WHERE conn_id = 9"),
	    (long long)5 << 32);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_read),
	    T(test_off),
	    T(test_cap),
	    T(test_cap_exact),
	    T(test_idle),
	    T(test_batches),
	    T(test_timer),
	    T(test_timer_closed),
	    T(test_record),
	    T(test_store_rows),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
