/*
 * Unit tests for `peephole locality`: how connections are named and
 * summed from a database written through the real store, the folds by
 * country, AS, domain and what left home over addresses placed by hand,
 * shares and their rounding, --home parsing, and the command's JSON, CSV
 * and usage errors. The .c files are included (h2o style) for their
 * statics.
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

/* strdup fails when the countdown reaches 0 (-1: never), to walk the
 * out-of-memory paths of loc_load. */
static int strdup_countdown = -1;

static char *
test_strdup(const char *s)
{
	if (strdup_countdown >= 0 && strdup_countdown-- == 0)
		return NULL;
	return strdup(s);
}

#define strdup(s) test_strdup(s)
#include "proxy/cli/locality.c"
#include "proxy/cli/locality_data.c"
#include "proxy/cli/locality_fold.c"
#undef strdup
#include "proxy/store/store.h"

#define T0 1700000000000000LL

struct fixture {
	char dir[64];
	char db[96];
	char out[96];
	char *text; /* last captured stdout */
};

static char *
xstrdup(const char *s)
{
	char *p = strdup(s);

	assert_non_null(p);
	return p;
}

/* A closed connection to server (NULL: none reached) with bytes. */
static struct store_rec *
mk_conn(int64_t id, const char *target, const char *server, const char *sni,
    const char *proto, uint64_t up, uint64_t down)
{
	struct store_rec *r = store_rec_new(STORE_REC_CONN);
	struct store_conn *c;

	assert_non_null(r);
	c = &r->u.conn;
	c->id = id;
	c->listener = xstrdup("http");
	c->client_ip = xstrdup("127.0.0.1");
	c->client_port = 40000 + (int)id;
	c->target_host = xstrdup(target);
	c->target_port = 443;
	c->server_ip = server != NULL ? xstrdup(server) : NULL;
	c->server_port = 443;
	c->sni = sni != NULL ? xstrdup(sni) : NULL;
	c->protocol = xstrdup(proto);
	c->decision = xstrdup("passthrough");
	c->t_accept_us = T0 + id * 1000000;
	c->t_close_us = c->t_accept_us + 500000;
	c->bytes_from_client = up;
	c->bytes_to_server = up;
	c->bytes_from_server = down;
	c->bytes_to_client = down;
	c->close_reason = xstrdup("client-eof");
	return r;
}

static void
mk_dip(struct store *st, const char *domain, const char *ip, const char *source)
{
	struct store_rec *r = store_rec_new(STORE_REC_DOMAIN_IP);

	assert_non_null(r);
	r->u.dip.domain = xstrdup(domain);
	r->u.dip.ip = xstrdup(ip);
	r->u.dip.source = xstrdup(source);
	r->u.dip.t_us = T0;
	r->u.dip.ttl = 600;
	r->u.dip.client_ip = xstrdup("127.0.0.1");
	assert_int_equal(store_submit(st, r), 0);
}

/*
 * The capture (bytes up/down):
 *  1 mmTLS to bare 100.200.1.1, named by an app-dns answer     300/3000
 *  2 the same again                                            200/2000
 *  3 TLS to dns.example (target) at 100.200.2.2, SNI too       100/1000
 *  4 TLS to bare 100.200.3.3 with SNI one.example               10/90
 *  5 HTTP to localhost at 127.0.0.1                              50/500
 *  6 a name that never reached a server                           0/0
 *  DNS only: dnsonly.example -> 100.200.9.9 (proxy-dns)
 */
static void
make_db(const char *path)
{
	char err[256] = "";
	struct store *st =
	    store_open(path, (struct store_limits){0, 0}, err, sizeof(err));

	if (st == NULL)
		fail_msg("store_open: %s", err);
	mk_dip(st, "long.example", "100.200.1.1", "app-dns");
	mk_dip(st, "dnsonly.example", "100.200.9.9", "proxy-dns");
	assert_int_equal(store_submit(st,
			     mk_conn(1, "100.200.1.1", "100.200.1.1", NULL,
				 "mmtls", 300, 3000)),
	    0);
	assert_int_equal(store_submit(st,
			     mk_conn(2, "100.200.1.1", "100.200.1.1", NULL,
				 "mmtls", 200, 2000)),
	    0);
	assert_int_equal(store_submit(st,
			     mk_conn(3, "dns.example", "100.200.2.2",
				 "dns.example", "tls", 100, 1000)),
	    0);
	assert_int_equal(store_submit(st,
			     mk_conn(4, "100.200.3.3", "100.200.3.3",
				 "one.example", "tls", 10, 90)),
	    0);
	assert_int_equal(
	    store_submit(st,
		mk_conn(5, "localhost", "127.0.0.1", NULL, "http", 50, 500)),
	    0);
	assert_int_equal(
	    store_submit(
		st, mk_conn(6, "gone.example", NULL, NULL, "tls", 0, 0)),
	    0);
	store_close(st);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/peephole-loc-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->db, sizeof(f->db), "%s/t.db", f->dir);
	snprintf(f->out, sizeof(f->out), "%s/stdout", f->dir);
	make_db(f->db);
	/* no geo data, whatever is built: every public address unknown */
	setenv("PEEPHOLE_GEO_DIR", f->dir, 1);
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
	rmdir(f->dir);
	free(f->text);
	free(f);
	return 0;
}

static sqlite3 *
open_db(const char *path)
{
	sqlite3 *db = NULL;

	assert_int_equal(
	    sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	return db;
}

static const struct loc_fact *
find_fact(const struct loc_data *d, const char *name, const char *how)
{
	for (size_t i = 0; i < d->nfacts; i++)
		if (strcmp(d->facts[i].name, name) == 0 &&
		    strcmp(d->facts[i].how, how) == 0)
			return &d->facts[i];
	fail_msg("no fact %s/%s", name, how);
	return NULL;
}

/* Each connection under one name: asked for, SNI, inferred, address. */
static void
test_load_names(void **state)
{
	struct fixture *f = *state;
	sqlite3 *db = open_db(f->db);
	struct loc_home home = {{{0}}, 0};
	struct loc_data d;
	const struct loc_fact *x;
	char err[256];

	assert_int_equal(loc_load(db, NULL, &home, &d, err, sizeof(err)), 0);
	assert_int_equal(d.conns, 6);
	assert_int_equal(d.up, 660);
	assert_int_equal(d.down, 6590);
	assert_int_equal(d.nfacts, 5);
	x = find_fact(&d, "long.example", "app-dns");
	assert_int_equal(x->conns, 2);
	assert_int_equal(x->up, 500);
	assert_int_equal(x->down, 5000);
	assert_int_equal(x->asked, LOC_ASKED_ADDRESS);
	assert_string_equal(d.addrs[x->addr].ip, "100.200.1.1");
	assert_int_equal(d.addrs[x->addr].where, LOC_UNKNOWN);
	x = find_fact(&d, "dns.example", "target");
	assert_int_equal(x->asked, LOC_ASKED_NAME);
	x = find_fact(&d, "one.example", "sni");
	assert_int_equal(x->asked, LOC_ASKED_NAME);
	x = find_fact(&d, "localhost", "target");
	assert_string_equal(d.addrs[x->addr].country, "loopback");
	assert_int_equal(d.addrs[x->addr].where, LOC_LOCAL);
	x = find_fact(&d, "gone.example", "target");
	assert_int_equal(x->addr, 0);
	assert_string_equal(d.addrs[0].country, "none");
	assert_int_equal(loc_names(&d), 5);
	assert_int_equal(loc_used_addrs(&d), 4);
	loc_data_free(&d);
	sqlite3_close(db);
}

static const struct loc_row *
find_row(const struct loc_rows *r, const char *key)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->v[i].key, key) == 0)
			return &r->v[i];
	fail_msg("no row %s", key);
	return NULL;
}

/* By domain: DNS-only names are rows, answers say how they were learned. */
static void
test_fold_domain_db(void **state)
{
	struct fixture *f = *state;
	sqlite3 *db = open_db(f->db);
	struct loc_home home = {{{0}}, 0};
	struct loc_data d;
	struct loc_rows rows;
	const struct loc_row *r;
	char err[256], buf[256];

	assert_int_equal(loc_load(db, NULL, &home, &d, err, sizeof(err)), 0);
	assert_int_equal(loc_fold(&d, LOC_BY_DOMAIN, &rows), 0);
	assert_int_equal(rows.n, 6);
	assert_string_equal(rows.v[0].key, "long.example"); /* most bytes */
	assert_int_equal(rows.v[0].asked, LOC_ASKED_ADDRESS);
	loc_set_join(&rows.v[0].learned, buf, sizeof(buf));
	assert_string_equal(buf, "app-dns");
	r = find_row(&rows, "dnsonly.example");
	assert_int_equal(r->asked, LOC_ASKED_NONE);
	assert_int_equal(r->conns, 0);
	loc_set_join(&r->learned, buf, sizeof(buf));
	assert_string_equal(buf, "proxy-dns");
	loc_set_join(&r->countries, buf, sizeof(buf));
	assert_string_equal(buf, "unknown");
	r = find_row(&rows, "dns.example");
	loc_set_join(&r->learned, buf, sizeof(buf));
	assert_string_equal(buf, "sni"); /* the store's own evidence */
	assert_string_equal(rows.v[rows.n - 1].key, "dnsonly.example");
	loc_rows_free(&rows);
	assert_int_equal(loc_fold(&d, LOC_BY_COUNTRY, &rows), 0);
	assert_int_equal(rows.n, 3);
	assert_string_equal(rows.v[0].key, "unknown");
	assert_int_equal(rows.v[0].conns, 4);
	assert_int_equal(rows.v[0].domains, 3);
	assert_int_equal(rows.v[0].addrs, 3);
	assert_string_equal(rows.v[1].key, "loopback");
	assert_string_equal(rows.v[2].key, "none");
	assert_int_equal(rows.v[2].addrs, 0);
	loc_rows_free(&rows);
	loc_data_free(&d);
	sqlite3_close(db);
}

static struct store_rec *
mk_req(int64_t cid, int seq, const char *host, const char *server, uint64_t up,
    uint64_t down)
{
	struct store_rec *r = store_rec_new(STORE_REC_REQUEST);

	assert_non_null(r);
	r->u.req.conn_id = cid;
	r->u.req.seq = seq;
	r->u.req.t_start_us = T0 + cid * 1000000 + seq;
	r->u.req.method = xstrdup("GET");
	r->u.req.scheme = xstrdup("http");
	r->u.req.host = xstrdup(host);
	r->u.req.port = 80;
	r->u.req.path = xstrdup("/");
	r->u.req.status = 200;
	r->u.req.server_ip = xstrdup(server);
	r->u.req.req_header_bytes = up; /* no bodies: heads carry it all */
	r->u.req.resp_header_bytes = down;
	return r;
}

/*
 * One plain-HTTP proxy connection kept alive from alpha.example
 * (100.200.5.5) to beta.example (100.200.6.6) and back, 1000 bytes up
 * and 10000 down on the wire; its requests carried 300 + 100 / 3000 +
 * 1000 for alpha and 600 / 5000 for beta. A second connection to one
 * host is not split; a replayed one is not counted.
 */
/* Regression: a connection whose requests went to two hosts counted
 * twice in the headline and in a row holding both (no geo: both
 * addresses are "unknown"); each domain row still counts it once. */
static void
split_counts(struct loc_data *d)
{
	struct loc_rows rows;
	uint64_t bytes;
	int64_t conns;

	loc_sum_where(d, LOC_UNKNOWN, &bytes, &conns);
	assert_int_equal(bytes, d->up + d->down);
	assert_int_equal(conns, 2);
	assert_int_equal(loc_fold(d, LOC_BY_COUNTRY, &rows), 0);
	assert_int_equal(rows.n, 1);
	assert_int_equal(rows.v[0].conns, 2);
	loc_rows_free(&rows);
	assert_int_equal(loc_fold(d, LOC_BY_DOMAIN, &rows), 0);
	for (size_t i = 0; i < rows.n; i++)
		assert_int_equal(rows.v[i].conns, 1);
	loc_rows_free(&rows);
}

/* Regression: when the last split connection's flush failed, its parts'
 * strings were freed twice (ASan, or glibc, aborts). Every strdup made
 * to fail in turn; the read transaction is closed after each failure. */
static void
split_nomem(sqlite3 *db)
{
	char err[256];
	struct loc_home home = {{{0}}, 0};
	struct loc_data d;
	int k, rc = -1;

	for (k = 0; k < 1000 && rc == -1; k++) {
		strdup_countdown = k;
		rc = loc_load(db, NULL, &home, &d, err, sizeof(err));
		strdup_countdown = -1;
		if (rc == -1)
			assert_string_equal(err, "out of memory");
		assert_int_not_equal(sqlite3_get_autocommit(db), 0);
		loc_data_free(&d);
	}
	assert_int_equal(rc, 0);
	assert_true(k > 5);
}

/* A connection another process commits while loc_load reads. */
static const char *snap_path;
static int snap_done;

static int
snap_trace(unsigned type, void *ctx, void *p, void *x)
{
	sqlite3 *w = NULL;

	(void)type;
	(void)ctx;
	(void)x;
	if (snap_done ||
	    strstr(sqlite3_sql(p), "SELECT count(*) FROM connections") == NULL)
		return 0;
	snap_done = 1;
	assert_int_equal(sqlite3_open(snap_path, &w), SQLITE_OK);
	assert_int_equal(sqlite3_exec(w,
			     "CREATE TEMP TABLE t AS SELECT * FROM connections"
			     " WHERE id = 2; UPDATE t SET id = 99;"
			     " INSERT INTO connections SELECT * FROM t;",
			     NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(w);
	return 0;
}

/* Regression: the five reads saw different snapshots: a connection
 * committed before the count was counted but in no fact. */
static void
split_snapshot(sqlite3 *db, const char *path)
{
	char err[256];
	struct loc_home home = {{{0}}, 0};
	struct loc_data d;

	snap_path = path;
	snap_done = 0;
	sqlite3_trace_v2(db, SQLITE_TRACE_STMT, snap_trace, NULL);
	assert_int_equal(loc_load(db, NULL, &home, &d, err, sizeof(err)), 0);
	sqlite3_trace_v2(db, 0, NULL, NULL);
	assert_true(snap_done);
	assert_int_equal(d.conns, 2); /* the snapshot of the first read */
	loc_data_free(&d);
	assert_int_equal(loc_load(db, NULL, &home, &d, err, sizeof(err)), 0);
	assert_int_equal(d.conns, 3); /* the next load sees it */
	loc_data_free(&d);
}

static void
test_split_keepalive(void **state)
{
	struct fixture *f = *state;
	char path[128], err[256] = "";
	struct store *st;
	struct store_rec *r;
	struct loc_home home = {{{0}}, 0};
	struct loc_data d;
	sqlite3 *db;
	const struct loc_fact *a, *b;

	snprintf(path, sizeof(path), "%s/split.db", f->dir);
	st = store_open(path, (struct store_limits){0, 0}, err, sizeof(err));
	if (st == NULL)
		fail_msg("store_open: %s", err);
	r = mk_conn(
	    1, "alpha.example", "100.200.6.6", NULL, "http", 1000, 10000);
	assert_int_equal(store_submit(st, r), 0);
	assert_int_equal(
	    store_submit(
		st, mk_req(1, 1, "alpha.example", "100.200.5.5", 300, 3000)),
	    0);
	assert_int_equal(
	    store_submit(
		st, mk_req(1, 2, "beta.example", "100.200.6.6", 600, 5000)),
	    0);
	assert_int_equal(
	    store_submit(
		st, mk_req(1, 3, "alpha.example", "100.200.5.5", 100, 1000)),
	    0);
	r = mk_conn(2, "gamma.example", "100.200.7.7", NULL, "http", 50, 70);
	assert_int_equal(store_submit(st, r), 0);
	/* what `peephole replay` sent again is not the app's traffic */
	r = mk_conn(3, "gamma.example", "100.200.7.7", NULL, "http", 999, 999);
	free(r->u.conn.listener);
	r->u.conn.listener = xstrdup("replay");
	assert_int_equal(store_submit(st, r), 0);
	assert_int_equal(
	    store_submit(
		st, mk_req(2, 1, "gamma.example", "100.200.7.7", 40, 60)),
	    0);
	store_close(st);

	db = open_db(path);
	assert_int_equal(loc_load(db, NULL, &home, &d, err, sizeof(err)), 0);
	assert_int_equal(d.conns, 2);
	assert_int_equal(d.up, 1050);
	assert_int_equal(d.down, 10070);
	assert_int_equal(d.nfacts, 3);
	a = find_fact(&d, "alpha.example", "host");
	b = find_fact(&d, "beta.example", "host");
	assert_string_equal(d.addrs[a->addr].ip, "100.200.5.5");
	assert_string_equal(d.addrs[b->addr].ip, "100.200.6.6");
	/* beta: 1000 * 600 / 1000 up, 10000 * 5000 / 9000 down (down); the
	 * rest is alpha's */
	assert_int_equal(b->up, 600);
	assert_int_equal(b->down, 5555);
	assert_int_equal(a->up, 400);
	assert_int_equal(a->down, 4445);
	assert_int_equal(a->conns + b->conns, 2); /* under each host */
	assert_int_equal(find_fact(&d, "gamma.example", "target")->up, 50);
	assert_int_equal(loc_names(&d), 3);
	split_counts(&d);
	loc_data_free(&d);
	split_nomem(db);
	split_snapshot(db, path);
	sqlite3_close(db);
	unlink(path);
	snprintf(path, sizeof(path), "%s/split.db-wal", f->dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/split.db-shm", f->dir);
	unlink(path);
}

/* A loc_data built by hand: addresses in CN, US (two), HK, private. */
static void
hand_data(struct loc_data *d)
{
	static const struct {
		const char *ip, *cc;
		uint32_t asn;
		const char *org;
	} a[] = {
	    {"", "", 0, ""},
	    {"10.0.0.1", "", 0, ""},
	    {"1.1.1.1", "US", 13335, "Cloudflare"},
	    {"43.1.1.1", "HK", 132203, "Tencent"},
	    {"8.8.8.8", "US", 15169, "Google"},
	    {"9.9.9.9", "CN", 45090, "Tencent"},
	};
	static const struct {
		const char *name, *how;
		size_t addr;
		uint64_t up, down;
	} fs[] = {
	    {"a.example", "target", 5, 100, 900}, /* CN 1000 */
	    {"a.example", "app-dns", 3, 50, 450}, /* HK 500 */
	    {"b.example", "sni", 4, 200, 1800},   /* US Google 2000 */
	    {"c.example", "target", 2, 10, 490},  /* US Cloudflare 500 */
	    {"d.example", "target", 1, 100, 900}, /* private 1000 */
	    {"e.example", "target", 0, 0, 0},     /* no server */
	};
	struct loc_home home;
	size_t i;

	memset(d, 0, sizeof(*d));
	assert_int_equal(loc_home_parse("cn", &home), 0);
	d->naddrs = sizeof(a) / sizeof(a[0]);
	d->addrs = calloc(d->naddrs, sizeof(*d->addrs));
	assert_non_null(d->addrs);
	for (i = 0; i < d->naddrs; i++) {
		struct loc_addr *x = &d->addrs[i];

		x->ip = xstrdup(a[i].ip);
		if (i == 0) {
			snprintf(x->country, sizeof(x->country), "none");
			snprintf(x->asn, sizeof(x->asn), "none");
			continue;
		}
		if (i == 1) {
			loc_place(x, NULL, &home);
			continue;
		}
		memcpy(x->gi.country, a[i].cc, 3);
		x->gi.asn = a[i].asn;
		snprintf(x->gi.org, sizeof(x->gi.org), "%s", a[i].org);
		snprintf(x->country, sizeof(x->country), "%s", a[i].cc);
		snprintf(x->asn, sizeof(x->asn), "AS%u", a[i].asn);
		x->where = strcmp(a[i].cc, "CN") == 0 ? LOC_HOME : LOC_LEFT;
	}
	d->nfacts = sizeof(fs) / sizeof(fs[0]);
	d->facts = calloc(d->nfacts, sizeof(*d->facts));
	assert_non_null(d->facts);
	for (i = 0; i < d->nfacts; i++) {
		struct loc_fact *x = &d->facts[i];

		x->name = xstrdup(fs[i].name);
		x->how = xstrdup(fs[i].how);
		x->asked = strcmp(fs[i].how, "app-dns") == 0 ? LOC_ASKED_ADDRESS
							     : LOC_ASKED_NAME;
		x->addr = fs[i].addr;
		x->conns = 1;
		x->up = fs[i].up;
		x->down = fs[i].down;
		d->conns++;
		d->up += x->up;
		d->down += x->down;
	}
}

static void
test_fold_home(void **state)
{
	struct loc_data d;
	struct loc_rows rows;
	const struct loc_row *r;
	uint64_t b;
	int64_t c;
	char buf[128];

	(void)state;
	hand_data(&d);
	assert_string_equal(d.addrs[1].country, "private");
	assert_int_equal(d.addrs[1].where, LOC_LOCAL);
	loc_sum_where(&d, LOC_LEFT, &b, &c);
	assert_int_equal(b, 3000);
	assert_int_equal(c, 3);
	assert_int_equal(loc_share(b, d.up + d.down), 6000); /* 3000/5000 */
	loc_sum_where(&d, LOC_HOME, &b, &c);
	assert_int_equal(b, 1000);
	loc_sum_where(&d, LOC_LOCAL, &b, &c);
	assert_int_equal(b, 1000);

	assert_int_equal(loc_fold(&d, LOC_BY_COUNTRY, &rows), 0);
	assert_int_equal(rows.n, 5);
	assert_string_equal(rows.v[0].key, "US"); /* 2500 */
	assert_int_equal(rows.v[0].addrs, 2);
	assert_int_equal(rows.v[0].domains, 2);
	assert_int_equal(rows.v[0].where, LOC_LEFT);
	assert_int_equal(rows.v[0].left, 2500);
	/* CN and private tie on bytes and connections: by key */
	assert_string_equal(rows.v[1].key, "CN");
	assert_int_equal(rows.v[1].where, LOC_HOME);
	assert_string_equal(rows.v[2].key, "private");
	assert_string_equal(rows.v[3].key, "HK");
	assert_string_equal(rows.v[4].key, "none");
	loc_rows_free(&rows);

	assert_int_equal(loc_fold(&d, LOC_BY_LEFT, &rows), 0);
	assert_int_equal(rows.n, 3);
	assert_string_equal(rows.v[0].key, "AS15169");
	assert_string_equal(rows.v[0].country, "US");
	assert_string_equal(rows.v[0].org, "Google");
	/* HK Tencent and US Cloudflare tie at 500: by key (as text) */
	assert_string_equal(rows.v[1].key, "AS132203");
	assert_string_equal(rows.v[1].country, "HK");
	assert_string_equal(rows.v[2].key, "AS13335");
	loc_rows_free(&rows);

	assert_int_equal(loc_fold(&d, LOC_BY_DOMAIN, &rows), 0);
	assert_int_equal(rows.n, 6); /* a.example twice: name, address */
	r = find_row(&rows, "a.example");
	assert_int_equal(r->asked, LOC_ASKED_NAME);
	assert_int_equal(r->left, 0);
	assert_int_equal(rows.v[0].left, 2000); /* b.example */
	for (size_t i = 0; i < rows.n; i++)
		if (strcmp(rows.v[i].key, "a.example") == 0 &&
		    rows.v[i].asked == LOC_ASKED_ADDRESS) {
			assert_int_equal(rows.v[i].left, 500);
			loc_set_join(&rows.v[i].asns, buf, sizeof(buf));
			assert_string_equal(buf, "AS132203");
		}
	loc_rows_free(&rows);

	assert_int_equal(loc_fold(&d, LOC_BY_ASN, &rows), 0);
	r = find_row(&rows, "AS15169");
	loc_set_join(&r->countries, buf, sizeof(buf));
	assert_string_equal(buf, "US");
	loc_rows_free(&rows);
	loc_data_free(&d);
}

/* Nothing at all: no rows, and no qsort or bsearch over NULL. */
static void
test_fold_empty(void **state)
{
	struct loc_data d;
	struct loc_rows rows;
	struct loc_addr none;

	(void)state;
	memset(&d, 0, sizeof(d));
	memset(&none, 0, sizeof(none));
	d.addrs = &none;
	d.naddrs = 1;
	for (int by = LOC_BY_COUNTRY; by <= LOC_BY_LEFT; by++) {
		assert_int_equal(loc_fold(&d, (enum loc_by)by, &rows), 0);
		assert_int_equal(rows.n, 0);
		loc_rows_free(&rows);
	}
	assert_int_equal(loc_addr_find(&d, "8.8.8.8"), 0);
	assert_int_equal(loc_names(&d), 0);
}

static void
test_share_home_set(void **state)
{
	struct loc_home h;
	struct loc_set s;
	char buf[256], name[8];

	(void)state;
	assert_int_equal(loc_share(1, 3), 3333);
	assert_int_equal(loc_share(2, 3), 6667);
	assert_int_equal(loc_share(0, 0), 0);
	assert_int_equal(loc_share(5, 5), 10000);
	assert_int_equal(loc_share(UINT64_MAX / 2, UINT64_MAX), 5000);
	assert_int_equal(loc_home_parse("cn,Hk,MO", &h), 0);
	assert_int_equal(h.n, 3);
	assert_string_equal(h.cc[1], "HK");
	assert_int_equal(loc_home_parse("CHN", &h), -1);
	assert_int_equal(loc_home_parse("CN,", &h), -1);
	assert_int_equal(loc_home_parse("", &h), -1);
	assert_int_equal(loc_home_parse("C1", &h), -1);
	memset(&s, 0, sizeof(s));
	loc_set_join(&s, buf, sizeof(buf));
	assert_string_equal(buf, "-");
	for (int i = 0; i < LOC_SET_MAX + 3; i++) {
		snprintf(name, sizeof(name), "x%d", i % (LOC_SET_MAX + 2));
		assert_int_equal(loc_set_add(&s, name), 0);
	}
	assert_int_equal(s.n, LOC_SET_MAX);
	assert_true(s.more);
	loc_set_join(&s, buf, sizeof(buf));
	assert_non_null(strstr(buf, "x0,x1,"));
	assert_non_null(strstr(buf, ",…"));
	loc_set_free(&s);
}

/* Run cli_locality with argv (NULL-terminated), stdout into f->text. */
static int
run(struct fixture *f, ...)
{
	char *argv[16];
	int argc = 0, fd, saved, rc;
	FILE *fp;
	long n;
	va_list ap;

	va_start(ap, f);
	while ((argv[argc] = va_arg(ap, char *)) != NULL)
		argc++;
	va_end(ap);
	fflush(stdout);
	saved = dup(STDOUT_FILENO);
	fd = open(f->out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(saved >= 0 && fd >= 0);
	assert_true(dup2(fd, STDOUT_FILENO) >= 0);
	close(fd);
	args_reset();
	rc = cli_locality(argc, argv);
	fflush(stdout);
	assert_true(dup2(saved, STDOUT_FILENO) >= 0);
	close(saved);
	free(f->text);
	assert_non_null(fp = fopen(f->out, "rb"));
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	rewind(fp);
	assert_non_null(f->text = calloc(1, (size_t)n + 1));
	assert_int_equal(fread(f->text, 1, (size_t)n, fp), (size_t)n);
	fclose(fp);
	return rc;
}

static json_int_t
jint(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	assert_true(json_is_integer(v));
	return json_integer_value(v);
}

static void
test_cli_json(void **state)
{
	struct fixture *f = *state;
	json_t *j, *rows, *w;
	json_error_t e;

	assert_int_equal(
	    run(f, "locality", "--db", f->db, "--home", "CN", "--json", NULL),
	    0);
	j = json_loads(f->text, 0, &e);
	if (j == NULL)
		fail_msg("bad JSON (%s): %s", e.text, f->text);
	assert_int_equal(jint(j, "connections"), 6);
	assert_int_equal(jint(j, "bytes"), 7250);
	assert_int_equal(jint(j, "names"), 5);
	assert_true(json_is_null(json_object_get(j, "geo")));
	w = json_object_get(json_object_get(j, "where"), "unknown");
	assert_int_equal(jint(w, "bytes"), 6700);
	assert_true(json_real_value(json_object_get(w, "share")) == 92.41);
	w = json_object_get(json_object_get(j, "where"), "left");
	assert_int_equal(jint(w, "bytes"), 0);
	rows = json_object_get(j, "countries");
	assert_int_equal(json_array_size(rows), 3);
	assert_int_equal(json_array_size(json_object_get(j, "asns")), 3);
	assert_int_equal(json_array_size(json_object_get(j, "left_to")), 0);
	assert_null(json_object_get(j, "domains"));
	json_decref(j);

	assert_int_equal(run(f, "locality", "--db", f->db, "--by", "domain",
			     "--json", "--limit", "2", NULL),
	    0);
	j = json_loads(f->text, 0, &e);
	assert_non_null(j);
	rows = json_object_get(j, "domains");
	assert_int_equal(json_array_size(rows), 2);
	assert_string_equal(json_string_value(json_object_get(
				json_array_get(rows, 0), "asked")),
	    "address");
	assert_null(json_object_get(j, "left_to"));
	assert_true(json_is_null(json_object_get(j, "home")));
	w = json_object_get(j, "where");
	assert_null(json_object_get(w, "left"));
	assert_null(json_object_get(w, "home"));
	assert_int_equal(jint(json_object_get(w, "unknown"), "bytes"), 6700);
	assert_int_equal(jint(json_object_get(w, "local"), "bytes"), 550);
	assert_int_equal(jint(json_object_get(w, "public"), "bytes"), 0);
	json_decref(j);
}

static void
test_cli_csv_text_usage(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(
	    run(f, "locality", "--db", f->db, "--by", "asn", "--csv", NULL), 0);
	assert_non_null(strstr(f->text,
	    "asn,org,countries,domains,addresses,connections,bytes_up,"
	    "bytes_down,share\r\n"));
	assert_non_null(strstr(f->text,
	    "unknown,-,unknown,3,3,4,610,6090,"
	    "92.41\r\n"));
	assert_int_equal(
	    run(f, "locality", "--db", f->db, "--home", "CN,HK", NULL), 0);
	assert_non_null(
	    strstr(f->text, "0.0% of bytes (0 of 7250) left CN,HK"));
	assert_non_null(strstr(f->text, "by network (AS):"));
	assert_int_equal(run(f, "locality", "--by", "city", NULL), CLI_USAGE);
	assert_int_equal(run(f, "locality", "--home", "CHN", NULL), CLI_USAGE);
	assert_int_equal(
	    run(f, "locality", "--json", "--csv", NULL), CLI_USAGE);
	assert_int_equal(run(f, "locality", "--limit", "0", NULL), CLI_USAGE);
	assert_int_equal(run(f, "locality", "extra", NULL), CLI_USAGE);
	assert_int_equal(run(f, "locality", "--nope", NULL), CLI_USAGE);
	assert_int_equal(run(f, "locality", "--help", NULL), CLI_OK);
	assert_non_null(strstr(f->text, "usage: peephole locality"));
	assert_int_equal(
	    run(f, "locality", "--db", "/nonexistent/x.db", NULL), CLI_ERROR);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_load_names, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_fold_domain_db, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_split_keepalive, setup, teardown),
	    cmocka_unit_test(test_fold_home),
	    cmocka_unit_test(test_fold_empty),
	    cmocka_unit_test(test_share_home_set),
	    cmocka_unit_test_setup_teardown(test_cli_json, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_cli_csv_text_usage, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
