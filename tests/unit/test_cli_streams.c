/*
 * Unit tests for `peephole streams`, `peephole show stream ID` and the
 * stream side of `peephole domains`, run against a database written
 * through the real store.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy/cli/cli.h"
#include "proxy/store/store.h"

#define T0 1700000000000000LL /* 2023-11-14T22:13:20Z */

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

static struct store_rec *
mk_conn(int64_t id, const char *target, int port, const char *proto,
    const char *decision)
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
	c->target_port = port;
	c->server_ip = xstrdup(target);
	c->server_port = port;
	c->protocol = xstrdup(proto);
	c->decision = decision != NULL ? xstrdup(decision) : NULL;
	c->t_accept_us = T0 + id * 1000000;
	c->t_close_us = c->t_accept_us + 2500000;
	c->bytes_from_client = 1000 * (uint64_t)id;
	c->bytes_from_server = 2000 * (uint64_t)id;
	c->close_reason = xstrdup("client-eof");
	return r;
}

static struct store_rec *
mk_req(int64_t cid, const char *method, const char *host)
{
	struct store_rec *r = store_rec_new(STORE_REC_REQUEST);

	assert_non_null(r);
	r->u.req.conn_id = cid;
	r->u.req.seq = 1;
	r->u.req.t_start_us = T0 + cid * 1000000 + 10;
	r->u.req.method = xstrdup(method);
	r->u.req.host = xstrdup(host);
	r->u.req.port = 443;
	r->u.req.status = 200;
	return r;
}

static void
submit(struct store *st, struct store_rec *r)
{
	assert_int_equal(store_submit(st, r), 0);
}

/*
 * The capture:
 *  1 mmTLS longlink to 198.51.100.2:8080, named by an app-dns answer,
 *    TCP_INFO of the client side, 4 events (2 capped away), 5 TCP
 *    samples (3 of the client leg, 2 of the origin's; capped)
 *  2 TLS passed through to 198.51.100.3 with SNI pinned.example
 *  3 a raw CONNECT tunnel (no decision) speaking SSH to ssh.example
 *  4 an intercepted HTTPS connection with a GET inside: not a stream
 *  5 plain HTTP: not a stream
 *  6 garbled mmTLS to 198.51.100.6, nothing known about the address
 */
static void
make_db(const char *path)
{
	char err[256] = "";
	struct store *st =
	    store_open(path, (struct store_limits){0, 0}, err, sizeof(err));
	struct store_rec *r;
	struct store_conn *c;
	static const struct store_stream_event ev[] = {
	    {T0 + 1000000 + 1500, 0, 0x19, 517},
	    {T0 + 1000000 + 30000, 1, 0x16, 1200},
	    {T0 + 1000000 + 31000, 0, 0x17, 64},
	    {T0 + 1000000 + 900000, 1, 0, 4000},
	};
	/* t_us, side, rtt, rttvar, cwnd, unacked, retrans, total_retrans,
	 * in flight, delivery rate, acked, received */
	static const struct store_tcp_sample smp[] = {
	    {T0 + 1000000 + 1000, 0, 300, 100, 10, 0, 0, 0, 0, 0, 1, 0},
	    {T0 + 1000000 + 1000, 1, 40000, 20000, 10, 0, 0, 0, 0, 0, 1, 0},
	    {T0 + 1000000 + 101000, 0, 500, 150, 12, 1, 0, 0, 1448, 9000, 517,
		64},
	    {T0 + 1000000 + 101000, 1, 42000, 9000, 14, 2, 1, 3, 2896, 50000,
		581, 1200},
	    {T0 + 1000000 + 201000, 0, 400, 120, 12, 0, 0, 0, 0, 9000, 517, 64},
	};

	if (st == NULL)
		fail_msg("store_open: %s", err);
	r = store_rec_new(STORE_REC_DOMAIN_IP);
	assert_non_null(r);
	r->u.dip.domain = xstrdup("sglong.wechat.com");
	r->u.dip.ip = xstrdup("198.51.100.2");
	r->u.dip.source = xstrdup("app-dns");
	r->u.dip.t_us = T0;
	r->u.dip.ttl = 1800;
	r->u.dip.client_ip = xstrdup("127.0.0.1"); /* the streams' client */
	submit(st, r);

	r = mk_conn(1, "198.51.100.2", 8080, "mmtls", "passthrough");
	c = &r->u.conn;
	c->decision_reason = xstrdup("not TLS (mmtls)");
	c->listener_target = xstrdup("198.51.100.2:8080");
	c->t_upstream_connected_us = c->t_accept_us + 1000;
	c->t_first_up_us = c->t_accept_us + 1500;
	c->t_last_up_us = c->t_accept_us + 31000;
	c->t_first_down_us = c->t_accept_us + 30000;
	c->t_last_down_us = c->t_accept_us + 900000;
	c->reads_up = 2;
	c->reads_down = 2;
	c->closed_by = xstrdup("server-rst");
	c->events = 4;
	c->events_capped = 1;
	c->tcp_samples_capped = 1;
	c->has_tcpinfo_client = 1;
	c->tcpinfo_client =
	    (struct store_tcpinfo){2500, 500, 0, 1, 0, 3, 10, 1500};
	c->mmtls_records = 3;
	c->mmtls_handshake = 1;
	c->mmtls_early = 1;
	c->mmtls_data = 1;
	submit(st, r);
	r = store_rec_new(STORE_REC_STREAM_EVENTS);
	assert_non_null(r);
	r->u.sev.conn_id = 1;
	r->u.sev.n = sizeof(ev) / sizeof(ev[0]);
	r->u.sev.ev = malloc(sizeof(ev));
	assert_non_null(r->u.sev.ev);
	memcpy(r->u.sev.ev, ev, sizeof(ev));
	submit(st, r);
	r = store_rec_new(STORE_REC_TCP_SAMPLES);
	assert_non_null(r);
	r->u.tcps.conn_id = 1;
	r->u.tcps.n = sizeof(smp) / sizeof(smp[0]);
	r->u.tcps.s = malloc(sizeof(smp));
	assert_non_null(r->u.tcps.s);
	memcpy(r->u.tcps.s, smp, sizeof(smp));
	submit(st, r);

	r = mk_conn(2, "198.51.100.3", 443, "tls", "passthrough");
	r->u.conn.sni = xstrdup("pinned.example");
	r->u.conn.closed_by = xstrdup("client-fin");
	submit(st, r);

	submit(st, mk_req(3, "CONNECT", "ssh.example"));
	submit(st, mk_conn(3, "ssh.example", 22, "ssh", NULL));

	submit(st, mk_req(4, "CONNECT", "www.example"));
	submit(st, mk_req(4, "GET", "www.example"));
	submit(st, mk_conn(4, "www.example", 443, "tls", "intercept"));

	submit(st, mk_req(5, "GET", "plain.example"));
	submit(st, mk_conn(5, "plain.example", 80, "http", NULL));

	r = mk_conn(6, "198.51.100.6", 443, "mmtls", "passthrough");
	r->u.conn.mmtls_bad = 1;
	submit(st, r);
	store_close(st);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/peephole-streams-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->db, sizeof(f->db), "%s/t.db", f->dir);
	snprintf(f->out, sizeof(f->out), "%s/stdout", f->dir);
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
	rmdir(f->dir);
	free(f->text);
	free(f);
	return 0;
}

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
	f->text = slurp(f->out);
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

static const char *
jstr(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	assert_true(json_is_string(v));
	return json_string_value(v);
}

static json_int_t
jint(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	assert_true(json_is_integer(v));
	return json_integer_value(v);
}

/* The ids of a streams --json answer, as "1,2,3". */
static void
ids(json_t *arr, char *buf, size_t len)
{
	size_t i, n = 0;

	buf[0] = '\0';
	for (i = 0; i < json_array_size(arr); i++)
		n += (size_t)snprintf(buf + n, len - n, "%s%lld",
		    i > 0 ? "," : "",
		    (long long)jint(json_array_get(arr, i), "id"));
}

static void
expect_ids(struct fixture *f, const char *want, ...)
{
	char *argv[12] = {0}, got[64];
	int argc = 0;
	va_list ap;
	json_t *arr;

	argv[argc++] = (char *)(uintptr_t) "streams";
	va_start(ap, want);
	while ((argv[argc] = va_arg(ap, char *)) != NULL)
		argc++;
	va_end(ap);
	argv[argc++] = (char *)(uintptr_t) "--json";
	argv[argc++] = (char *)(uintptr_t) "--db";
	argv[argc++] = f->db;
	argv[argc] = NULL;
	assert_int_equal(
	    run(f, cli_streams, argv[0], argv[1], argv[2], argv[3], argv[4],
		argv[5], argv[6], argv[7], argv[8], argv[9], argv[10], NULL),
	    0);
	arr = parse(f->text);
	ids(arr, got, sizeof(got));
	assert_string_equal(got, want);
	json_decref(arr);
}

static void
test_streams_json(void **state)
{
	struct fixture *f = *state;
	json_t *arr, *s;

	assert_int_equal(
	    run(f, cli_streams, "streams", "--json", "--db", f->db, NULL), 0);
	arr = parse(f->text);
	/* Not 4 (intercepted, a GET inside) nor 5 (plain HTTP). */
	assert_int_equal(json_array_size(arr), 4);
	s = json_array_get(arr, 0);
	assert_int_equal(jint(s, "id"), 1);
	assert_string_equal(jstr(s, "start"), "2023-11-14T22:13:21.000Z");
	assert_string_equal(jstr(s, "client"), "127.0.0.1:40001");
	assert_string_equal(jstr(s, "target"), "198.51.100.2:8080");
	assert_string_equal(jstr(s, "host"), "sglong.wechat.com");
	assert_string_equal(jstr(s, "named_by"), "app-dns");
	assert_string_equal(jstr(s, "protocol"), "mmtls");
	assert_true(
	    json_real_value(json_object_get(s, "duration_ms")) == 2500.0);
	assert_int_equal(jint(s, "bytes_up"), 1000);
	assert_int_equal(jint(s, "bytes_down"), 2000);
	assert_int_equal(jint(s, "mmtls_records"), 3);
	assert_true(json_is_true(json_object_get(s, "events_capped")));
	assert_string_equal(jstr(s, "closed_by"), "server-rst");
	s = json_array_get(arr, 1);
	assert_string_equal(jstr(s, "host"), "pinned.example");
	assert_string_equal(jstr(s, "named_by"), "sni");
	s = json_array_get(arr, 2);
	assert_int_equal(jint(s, "id"), 3);
	assert_string_equal(jstr(s, "host"), "ssh.example");
	assert_true(json_is_null(json_object_get(s, "named_by")));
	s = json_array_get(arr, 3);
	assert_string_equal(jstr(s, "protocol"), "mmtls?");
	assert_string_equal(jstr(s, "host"), "198.51.100.6");
	json_decref(arr);
}

static void
test_streams_filters(void **state)
{
	struct fixture *f = *state;

	expect_ids(f, "1,6", "--protocol", "mmtls", NULL);
	expect_ids(f, "2", "--protocol", "tls", NULL);
	expect_ids(f, "3", "--protocol", "other", NULL);
	expect_ids(f, "3", "--protocol", "SSH", NULL);
	/* By found name, by SNI, by parent domain, by address. */
	expect_ids(f, "1", "--domain", "sglong.wechat.com", NULL);
	expect_ids(f, "1", "--domain", "WeChat.com", NULL);
	expect_ids(f, "2", "--domain", "pinned.example", NULL);
	expect_ids(f, "6", "--domain", "198.51.100.6", NULL);
	expect_ids(f, "", "--domain", "hat.com", NULL);
	expect_ids(f, "3,6", "--limit", "2", NULL);
	expect_ids(f, "6", "--protocol", "mmtls", "--limit", "1", NULL);
}

static void
test_streams_text_csv_usage(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(run(f, cli_streams, "streams", "--csv", "--protocol",
			     "tls", "--db", f->db, NULL),
	    0);
	assert_string_equal(f->text,
	    "id,start,client,target,host,named_by,server,protocol,"
	    "duration_ms,bytes_up,bytes_down,mmtls_records,closed_by\r\n"
	    "2,2023-11-14T22:13:22.000Z,127.0.0.1:40002,198.51.100.3:443,"
	    "pinned.example,sni,198.51.100.3:443,tls,2500.0,2000,4000,0,"
	    "client-fin\r\n");
	assert_int_equal(
	    run(f, cli_streams, "streams", "--db", f->db, NULL), 0);
	assert_non_null(strstr(f->text, "NAMED BY"));
	assert_non_null(strstr(f->text, "sglong.wechat.com"));
	/* No close_by recorded: the proxy's close reason stands in. */
	assert_non_null(strstr(f->text, "client-eof"));
	assert_int_equal(
	    run(f, cli_streams, "streams", "--limit", "0", "--db", f->db, NULL),
	    2);
	assert_int_equal(run(f, cli_streams, "streams", "--json", "--csv",
			     "--db", f->db, NULL),
	    2);
	assert_int_equal(run(f, cli_streams, "streams", "--protocol", "",
			     "--db", f->db, NULL),
	    2);
	assert_int_equal(run(f, cli_streams, "streams", "x", NULL), 2);
	assert_int_equal(run(f, cli_streams, "streams", "--help", NULL), 0);
	assert_non_null(strstr(f->text, "--protocol"));
	assert_int_equal(
	    run(f, cli_streams, "streams", "--db", "/nonexistent.db", NULL), 1);
}

static void
test_show_stream_text(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(
	    run(f, cli_show, "show", "stream", "1", "--db", f->db, NULL), 0);
	assert_non_null(strstr(f->text, "stream 1\n"));
	assert_non_null(strstr(f->text,
	    "sglong.wechat.com (named by app-dns, seen "
	    "2023-11-14T22:13:20.000Z)"));
	assert_non_null(strstr(f->text, "passthrough (not TLS (mmtls))"));
	assert_non_null(strstr(f->text,
	    "upstream +1.000 ms, first up +1.500 ms, last up +31.000 ms, "
	    "first down +30.000 ms, last down +900.000 ms, close "
	    "+2500.000 ms"));
	assert_non_null(
	    strstr(f->text, "up 1000 in 2 reads, down 2000 in 2 reads"));
	assert_non_null(strstr(f->text, "server-rst (proxy: client-eof)"));
	assert_non_null(strstr(f->text,
	    "rtt 2.500 ms, rttvar 0.500 ms, retransmits 0 (total 1), lost 0, "
	    "reordering 3, cwnd 10, pmtu 1500"));
	assert_null(strstr(f->text, "tcp server"));
	assert_non_null(strstr(f->text,
	    "3 records: 1 handshake, 1 early (0-RTT), 1 data, 0 alert"));
	assert_non_null(strstr(f->text, "4 recorded (capped"));
	assert_non_null(
	    strstr(f->text, "         1.500  ->       517  early\n"));
	assert_non_null(strstr(f->text, "       900.000  <-      4000\n"));

	/* A connection that was not a stream is shown, and says so. */
	assert_int_equal(
	    run(f, cli_show, "show", "stream", "4", "--db", f->db, NULL), 0);
	assert_non_null(strstr(f->text, "not a stream"));
	assert_non_null(strstr(f->text, "(no events recorded)"));
	/* mmtls? explained */
	assert_int_equal(
	    run(f, cli_show, "show", "stream", "6", "--db", f->db, NULL), 0);
	assert_non_null(strstr(f->text, "mmtls? (mmTLS records stopped"));
}

static void
test_show_stream_csv_json(void **state)
{
	struct fixture *f = *state;
	json_t *o, *ev;

	assert_int_equal(run(f, cli_show, "show", "stream", "1", "--csv",
			     "--db", f->db, NULL),
	    0);
	assert_string_equal(f->text,
	    "t_ms,dir,bytes,mmtls_type\r\n"
	    "1.500,up,517,early\r\n"
	    "30.000,down,1200,handshake\r\n"
	    "31.000,up,64,data\r\n"
	    "900.000,down,4000,\r\n");
	assert_int_equal(run(f, cli_show, "show", "stream", "--json", "1",
			     "--db", f->db, NULL),
	    0);
	o = parse(f->text);
	assert_int_equal(jint(o, "id"), 1);
	assert_string_equal(jstr(o, "named_host"), "sglong.wechat.com");
	assert_string_equal(jstr(o, "named_by"), "app-dns");
	assert_int_equal(jint(o, "tcp_client_rtt_us"), 2500);
	assert_true(json_is_null(json_object_get(o, "tcp_server_rtt_us")));
	assert_int_equal(jint(o, "events_capped"), 1);
	ev = json_object_get(o, "events_list");
	assert_int_equal(json_array_size(ev), 4);
	assert_string_equal(jstr(json_array_get(ev, 1), "dir"), "down");
	assert_string_equal(
	    jstr(json_array_get(ev, 1), "mmtls_type"), "handshake");
	assert_true(
	    json_is_null(json_object_get(json_array_get(ev, 3), "mmtls_type")));
	json_decref(o);

	assert_int_equal(
	    run(f, cli_show, "show", "stream", "99", "--db", f->db, NULL), 1);
	assert_int_equal(
	    run(f, cli_show, "show", "stream", "--db", f->db, NULL), 2);
	assert_int_equal(
	    run(f, cli_show, "show", "stream", "x", "--db", f->db, NULL), 2);
	assert_int_equal(run(f, cli_show, "show", "stream", "1", "--csv",
			     "--json", "--db", f->db, NULL),
	    2);
	assert_int_equal(run(f, cli_show, "show", "stream", "--help", NULL), 0);
	assert_non_null(strstr(f->text, "t_ms,dir,bytes,mmtls_type"));
	/* `show ID` is still a request. */
	assert_int_equal(run(f, cli_show, "show", "1", "--db", f->db, NULL), 0);
	assert_non_null(strstr(f->text, "request 1"));
}

/* The TCP samples: a summary in the text, the series as a table or CSV
 * (--samples), an array in the JSON; none said so. */
static void
test_show_stream_samples(void **state)
{
	struct fixture *f = *state;
	json_t *o, *a, *s;

	assert_int_equal(
	    run(f, cli_show, "show", "stream", "1", "--db", f->db, NULL), 0);
	assert_non_null(strstr(f->text,
	    "  tcp samples 3 client, 2 origin "
	    "(capped: tcp-samples-max reached)\n"));
	assert_non_null(strstr(f->text,
	    "  client leg  rtt 0.300 / 0.400 / 0.500 ms (min / median / max), "
	    "cwnd max 12, in flight max 1448 bytes, retransmits 0\n"));
	assert_non_null(strstr(f->text,
	    "  origin leg  rtt 40.000 / 40.000 / 42.000 ms (min / median / "
	    "max), cwnd max 14, in flight max 2896 bytes, retransmits 3\n"));
	/* the events timeline is still what text mode ends with */
	assert_non_null(strstr(f->text, "timeline (ms since accept)"));
	assert_int_equal(run(f, cli_show, "show", "stream", "1", "--samples",
			     "--csv", "--db", f->db, NULL),
	    0);
	assert_string_equal(f->text,
	    "t_ms,side,rtt_ms,rttvar_ms,snd_cwnd,unacked,bytes_in_flight,"
	    "retrans,total_retrans,delivery_rate,bytes_acked,bytes_received\r\n"
	    "1.000,client,0.300,0.100,10,0,0,0,0,0,1,0\r\n"
	    "1.000,origin,40.000,20.000,10,0,0,0,0,0,1,0\r\n"
	    "101.000,client,0.500,0.150,12,1,1448,0,0,9000,517,64\r\n"
	    "101.000,origin,42.000,9.000,14,2,2896,1,3,50000,581,1200\r\n"
	    "201.000,client,0.400,0.120,12,0,0,0,0,9000,517,64\r\n");
	assert_int_equal(run(f, cli_show, "show", "stream", "1", "--samples",
			     "--db", f->db, NULL),
	    0);
	assert_non_null(strstr(f->text, "TCP samples (ms since accept)"));
	assert_null(strstr(f->text, "timeline (ms since accept)"));
	assert_non_null(strstr(f->text, "     101.000  origin     42.000"));
	assert_int_equal(run(f, cli_show, "show", "stream", "1", "--json",
			     "--db", f->db, NULL),
	    0);
	o = parse(f->text);
	assert_int_equal(jint(o, "tcp_samples_capped"), 1);
	a = json_object_get(o, "tcp_samples");
	assert_int_equal(json_array_size(a), 5);
	s = json_array_get(a, 3);
	assert_string_equal(jstr(s, "side"), "origin");
	assert_int_equal(jint(s, "rtt_us"), 42000);
	assert_int_equal(jint(s, "bytes_in_flight"), 2896);
	assert_int_equal(jint(s, "delivery_rate"), 50000);
	assert_int_equal(jint(s, "bytes_received"), 1200);
	assert_int_equal(jint(s, "t_us"), T0 + 1000000 + 101000);
	json_decref(o);
	/* a stream without samples */
	assert_int_equal(
	    run(f, cli_show, "show", "stream", "2", "--db", f->db, NULL), 0);
	assert_non_null(strstr(f->text,
	    "  tcp samples 0 client, 0 origin "
	    "(sampling off, or not a relayed "
	    "stream)\n"));
	assert_int_equal(run(f, cli_show, "show", "stream", "2", "--samples",
			     "--db", f->db, NULL),
	    0);
	assert_non_null(strstr(f->text, "(no samples recorded)"));
	assert_int_equal(run(f, cli_show, "show", "stream", "2", "--json",
			     "--db", f->db, NULL),
	    0);
	o = parse(f->text);
	assert_int_equal(json_array_size(json_object_get(o, "tcp_samples")), 0);
	json_decref(o);
}

/* Stream-only hosts are in the catalogue, with how they were named. */
static void
test_domains_streams(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(
	    run(f, cli_domains, "domains", "--csv", "--db", f->db, NULL), 0);
	assert_non_null(strstr(f->text,
	    "\r\nsglong.wechat.com,2023-11-14T22:13:20Z,2023-11-14T22:13:23Z,"
	    "0,1,0,0,0,8080,mmtls,0,1,0,app-dns,"
	    "documentation,198.51.100.2\r\n"));
	assert_non_null(strstr(f->text,
	    "\r\npinned.example,2023-11-14T22:13:22Z,2023-11-14T22:13:24Z,"
	    "1,0,0,0,0,443,tls,0,1,0,sni,"
	    "documentation,198.51.100.3\r\n"));
	assert_non_null(strstr(f->text, "\r\nssh.example,"));
	assert_non_null(strstr(f->text, ",ssh,0,0,0,,"));
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_streams_json),
	    T(test_streams_filters),
	    T(test_streams_text_csv_usage),
	    T(test_show_stream_text),
	    T(test_show_stream_csv_json),
	    T(test_show_stream_samples),
	    T(test_domains_streams),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
