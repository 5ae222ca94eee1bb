/*
 * Unit tests for the HTTPS-interception side of the CLI: `passthrough
 * list | clear`, the pinned / protocol / decision columns of `domains`, and
 * `ca init | path | export | help` in a temporary PEEPHOLE_HOME.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proxy/cli/cli.h"
#include "proxy/store/store.h"

#define T0 1700000000000000LL /* 2023-11-14T22:13:20Z */

struct fixture {
	char dir[64];
	char db[96];
	char out[96];  /* captured stdout */
	char home[96]; /* PEEPHOLE_HOME for the ca commands */
	char file[96]; /* --out target */
	char *text;    /* last captured stdout */
};

static char *
xstrdup(const char *s)
{
	char *p = strdup(s);

	assert_non_null(p);
	return p;
}

static struct store_rec *
mk_conn(int64_t id, const char *host, const char *sni, const char *protocol,
    const char *decision)
{
	struct store_rec *r = store_rec_new(STORE_REC_CONN);

	assert_non_null(r);
	r->u.conn.id = id;
	r->u.conn.listener = xstrdup("http");
	r->u.conn.client_ip = xstrdup("127.0.0.1");
	r->u.conn.client_port = 40000;
	r->u.conn.target_host = xstrdup(host);
	r->u.conn.target_port = 443;
	r->u.conn.protocol = xstrdup(protocol);
	r->u.conn.t_accept_us = T0 + id;
	r->u.conn.t_close_us = T0 + 1000000 + id;
	r->u.conn.close_reason = xstrdup("client-eof");
	if (sni != NULL)
		r->u.conn.sni = xstrdup(sni);
	if (decision != NULL)
		r->u.conn.decision = xstrdup(decision);
	return r;
}

/* 2100-01-01: backing off for as long as the tests run */
#define T_FAR 4102444800000000LL

static struct store_rec *
mk_learned(const char *host, int port, const char *reason, int64_t t)
{
	struct store_rec *r = store_rec_new(STORE_REC_LEARNED_PASSTHROUGH);

	assert_non_null(r);
	r->u.learned.host = xstrdup(host);
	r->u.learned.port = port;
	r->u.learned.reason = xstrdup(reason);
	r->u.learned.t_us = t;
	r->u.learned.rejections = 1;
	r->u.learned.next_retry_us = T_FAR;
	return r;
}

static void
submit(struct store *st, struct store_rec *r)
{
	assert_int_equal(store_submit(st, r), 0);
}

/*
 * The capture:
 *  conn 1  shop.test      tls, intercepted
 *  conn 2  shop.test      http, plain proxying
 *  conn 3  pin.test       tls, passed through (learned)
 *  conn 4  10.0.0.9 / SNI app.test  tls, intercepted
 *  learned pin.test:443 (twice), pin.test:8443, other.test:443
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
	r = mk_conn(1, "shop.test", "shop.test", "tls", "intercept");
	r->u.conn.decision_reason = xstrdup("default");
	r->u.conn.tls_client = xstrdup("TLSv1.3/TLS_AES_256_GCM_SHA384");
	r->u.conn.upstream_cert_issuer = xstrdup("CN=Origin CA");
	submit(st, r);
	r = store_rec_new(STORE_REC_REQUEST);
	assert_non_null(r);
	r->u.req.conn_id = 1;
	r->u.req.seq = 1;
	r->u.req.t_start_us = T0 + 10;
	r->u.req.scheme = xstrdup("https");
	r->u.req.method = xstrdup("GET");
	r->u.req.host = xstrdup("shop.test");
	r->u.req.port = 443;
	r->u.req.path = xstrdup("/");
	r->u.req.req_version = xstrdup("1.1");
	submit(st, r);
	submit(st, mk_conn(2, "shop.test", NULL, "http", NULL));
	submit(st, mk_conn(3, "pin.test", "pin.test", "tls", "passthrough"));
	submit(st, mk_conn(4, "10.0.0.9", "app.test", "tls", "intercept"));
	submit(
	    st, mk_learned("pin.test", 443, "client rejected: unknown ca", T0));
	submit(st,
	    mk_learned(
		"pin.test", 443, "client rejected: unknown ca", T0 + 60000000));
	submit(st, mk_learned("pin.test", 8443, "client rejected", T0));
	submit(st, mk_learned("other.test", 443, "client rejected", T0));
	store_close(st);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/peephole-clitls-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->db, sizeof(f->db), "%s/t.db", f->dir);
	snprintf(f->out, sizeof(f->out), "%s/stdout", f->dir);
	snprintf(f->home, sizeof(f->home), "%s/home", f->dir);
	snprintf(f->file, sizeof(f->file), "%s/export", f->dir);
	make_db(f->db);
	assert_int_equal(setenv("PEEPHOLE_HOME", f->home, 1), 0);
	*state = f;
	return 0;
}

static void
rm(const char *dir, const char *name)
{
	char p[160];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	unlink(p);
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	rm(f->dir, "t.db");
	rm(f->dir, "t.db-wal");
	rm(f->dir, "t.db-shm");
	rm(f->home, "ca.pem");
	rm(f->home, "ca.key");
	rmdir(f->home);
	unlink(f->out);
	unlink(f->file);
	rmdir(f->dir);
	unsetenv("PEEPHOLE_HOME");
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

static json_int_t
jint(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	assert_true(json_is_integer(v));
	return json_integer_value(v);
}

static const char *
jstr(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	assert_true(json_is_string(v));
	return json_string_value(v);
}

static json_t *
find_domain(json_t *arr, const char *name)
{
	size_t i;

	for (i = 0; i < json_array_size(arr); i++)
		if (strcmp(jstr(json_array_get(arr, i), "domain"), name) == 0)
			return json_array_get(arr, i);
	fail_msg("domain %s missing", name);
	return NULL;
}

static void
test_passthrough_list(void **state)
{
	struct fixture *f = *state;
	json_t *arr, *e;

	assert_int_equal(run(f, cli_passthrough, "passthrough", "list",
			     "--json", "--db", f->db, NULL),
	    0);
	arr = parse(f->text);
	assert_int_equal(json_array_size(arr), 3);
	/* host, then port order */
	e = json_array_get(arr, 1);
	assert_string_equal(jstr(e, "host"), "pin.test");
	assert_int_equal(jint(e, "port"), 443);
	assert_int_equal(jint(e, "count"), 2);
	assert_string_equal(jstr(e, "reason"), "client rejected: unknown ca");
	assert_string_equal(jstr(e, "first_seen"), "2023-11-14T22:13:20Z");
	assert_string_equal(jstr(e, "last_seen"), "2023-11-14T22:14:20Z");
	assert_int_equal(jint(e, "rejections"), 1);
	assert_string_equal(
	    jstr(e, "last_reason"), "client rejected: unknown ca");
	assert_string_equal(jstr(e, "next_retry"), "2100-01-01T00:00:00Z");
	assert_true(json_is_true(json_object_get(e, "passing_through")));
	assert_string_equal(jstr(json_array_get(arr, 0), "host"), "other.test");
	json_decref(arr);

	assert_int_equal(
	    run(f, cli_passthrough, "passthrough", "list", "--db", f->db, NULL),
	    0);
	assert_non_null(strstr(f->text, "HOST"));
	assert_non_null(strstr(f->text, "FIRST SEEN"));
	assert_non_null(strstr(f->text, "REJECTIONS"));
	assert_non_null(strstr(f->text, "NEXT RETRY"));
	assert_non_null(strstr(f->text, "client rejected: unknown ca"));
	assert_non_null(strstr(f->text, " in "));
	assert_int_equal(run(f, cli_passthrough, "passthrough", "list", "--csv",
			     "--db", f->db, NULL),
	    0);
	assert_non_null(strstr(f->text,
	    "host,port,rejections,last_reason,next_retry,first_seen,"
	    "last_seen\r\n"
	    "other.test,443,1,client rejected,in "));
}

/* retry makes entries due now and keeps them (and their counts). */
static void
test_passthrough_retry(void **state)
{
	struct fixture *f = *state;
	json_t *arr, *e;

	assert_int_equal(run(f, cli_passthrough, "passthrough", "retry",
			     "PIN.test", "--db", f->db, NULL),
	    0);
	assert_non_null(strstr(f->text,
	    "2 learned passthrough entries for "
	    "PIN.test are intercepted again"));
	assert_int_equal(run(f, cli_passthrough, "passthrough", "list",
			     "--json", "--db", f->db, NULL),
	    0);
	arr = parse(f->text);
	assert_int_equal(json_array_size(arr), 3);
	e = json_array_get(arr, 1);
	assert_string_equal(jstr(e, "host"), "pin.test");
	assert_true(json_is_null(json_object_get(e, "next_retry")));
	assert_true(json_is_false(json_object_get(e, "passing_through")));
	assert_string_equal(jstr(e, "retry"), "now");
	assert_int_equal(jint(e, "count"), 2);
	e = json_array_get(arr, 0);
	assert_true(json_is_true(json_object_get(e, "passing_through")));
	json_decref(arr);

	assert_int_equal(run(f, cli_passthrough, "passthrough", "retry", "--db",
			     f->db, NULL),
	    0);
	assert_non_null(strstr(f->text, "3 learned passthrough entries are"));
	assert_int_equal(
	    run(f, cli_passthrough, "passthrough", "list", "--db", f->db, NULL),
	    0);
	assert_null(strstr(f->text, " in "));
	assert_int_equal(run(f, cli_passthrough, "passthrough", "retry", "a",
			     "b", "--db", f->db, NULL),
	    2);
}

static void
test_passthrough_clear(void **state)
{
	struct fixture *f = *state;
	json_t *arr;

	/* By host: every port of that host, nothing else; case-blind. */
	assert_int_equal(run(f, cli_passthrough, "passthrough", "clear",
			     "PIN.test", "--db", f->db, NULL),
	    0);
	assert_non_null(strstr(f->text, "removed 2 learned passthrough"));
	assert_int_equal(run(f, cli_passthrough, "passthrough", "list",
			     "--json", "--db", f->db, NULL),
	    0);
	arr = parse(f->text);
	assert_int_equal(json_array_size(arr), 1);
	assert_string_equal(jstr(json_array_get(arr, 0), "host"), "other.test");
	json_decref(arr);

	assert_int_equal(run(f, cli_passthrough, "passthrough", "clear",
			     "nothing.test", "--db", f->db, NULL),
	    0);
	assert_non_null(strstr(f->text, "removed 0 learned passthrough"));

	/* All. */
	assert_int_equal(run(f, cli_passthrough, "passthrough", "clear", "--db",
			     f->db, NULL),
	    0);
	assert_non_null(strstr(f->text, "removed 1 learned passthrough entry"));
	assert_int_equal(run(f, cli_passthrough, "passthrough", "list",
			     "--json", "--db", f->db, NULL),
	    0);
	arr = parse(f->text);
	assert_int_equal(json_array_size(arr), 0);
	json_decref(arr);
}

/* clear works while the proxy's store is open and writing. */
static void
test_passthrough_clear_while_running(void **state)
{
	struct fixture *f = *state;
	char err[256];
	struct store *st;
	int i;

	st = store_open(f->db, (struct store_limits){0, 0}, err, sizeof(err));
	assert_non_null(st);
	assert_int_equal(store_start(st), 0);
	submit(st, mk_learned("live.test", 443, "client rejected", T0));
	for (i = 0; i < 500 && store_written(st) < 1; i++)
		usleep(10000);
	assert_int_equal(store_written(st), 1);
	assert_int_equal(run(f, cli_passthrough, "passthrough", "clear",
			     "live.test", "--db", f->db, NULL),
	    0);
	assert_non_null(strstr(f->text, "removed 1 "));
	store_close(st);
}

static void
test_passthrough_usage(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(run(f, cli_passthrough, "passthrough", NULL), 2);
	assert_int_equal(
	    run(f, cli_passthrough, "passthrough", "forget", NULL), 2);
	assert_int_equal(
	    run(f, cli_passthrough, "passthrough", "list", "--bogus", NULL), 2);
	assert_int_equal(run(f, cli_passthrough, "passthrough", "list", "extra",
			     "--db", f->db, NULL),
	    2);
	assert_int_equal(run(f, cli_passthrough, "passthrough", "list",
			     "--json", "--csv", "--db", f->db, NULL),
	    2);
	assert_int_equal(run(f, cli_passthrough, "passthrough", "clear",
			     "--json", "--db", f->db, NULL),
	    2);
	assert_int_equal(run(f, cli_passthrough, "passthrough", "clear", "a",
			     "b", "--db", f->db, NULL),
	    2);
	assert_int_equal(
	    run(f, cli_passthrough, "passthrough", "clear", "--db", NULL), 2);
	assert_int_equal(run(f, cli_passthrough, "passthrough", "clear", "--db",
			     "/nonexistent/peephole.db", NULL),
	    1);
	assert_int_equal(
	    run(f, cli_passthrough, "passthrough", "--help", NULL), 0);
	assert_non_null(strstr(f->text, "clear [HOST]"));
	assert_int_equal(
	    run(f, cli_passthrough, "passthrough", "list", "--help", NULL), 0);
	assert_non_null(strstr(f->text, "--db"));
}

static void
test_domains_tls_columns(void **state)
{
	struct fixture *f = *state;
	json_t *arr, *d, *p;

	assert_int_equal(
	    run(f, cli_domains, "domains", "--json", "--db", f->db, NULL), 0);
	arr = parse(f->text);
	d = find_domain(arr, "shop.test");
	assert_int_equal(jint(d, "connections"), 2);
	assert_int_equal(jint(d, "intercepted"), 1);
	assert_int_equal(jint(d, "passed_through"), 0);
	assert_true(json_is_false(json_object_get(d, "pinned")));
	p = json_object_get(d, "protocols");
	assert_int_equal(json_array_size(p), 2);
	assert_string_equal(json_string_value(json_array_get(p, 0)), "http");
	assert_string_equal(json_string_value(json_array_get(p, 1)), "tls");
	d = find_domain(arr, "pin.test");
	assert_true(json_is_true(json_object_get(d, "pinned")));
	assert_int_equal(jint(d, "passed_through"), 1);
	/* Known only from the learned list. */
	d = find_domain(arr, "other.test");
	assert_true(json_is_true(json_object_get(d, "pinned")));
	assert_int_equal(jint(d, "connections"), 0);
	/* Reached by IP, named by its SNI. */
	d = find_domain(arr, "app.test");
	assert_int_equal(jint(d, "intercepted"), 1);
	assert_int_equal(jint(d, "connections"), 1);
	json_decref(arr);

	assert_int_equal(
	    run(f, cli_domains, "domains", "--csv", "--db", f->db, NULL), 0);
	assert_non_null(strstr(f->text,
	    "domain,first_seen,last_seen,connections,inferred,requests,"
	    "bytes_up,bytes_down,ports,protocols,intercepted,passed_through,"
	    "pinned,named_by,where,ips\r\n"));
	assert_non_null(strstr(f->text, ",443,tls,0,1,1,,,\r\n"));
	assert_non_null(strstr(f->text, ",443,\"http,tls\",1,0,0,,,\r\n"));

	assert_int_equal(
	    run(f, cli_domains, "domains", "--db", f->db, NULL), 0);
	assert_non_null(strstr(f->text, "PINNED"));
	assert_non_null(strstr(f->text, "PASSED THROUGH"));
	assert_non_null(strstr(f->text, "pinned\n"));
}

/* show prints what interception made of the request's connection. */
static void
test_show_tls_fields(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(run(f, cli_show, "show", "1", "--db", f->db, NULL), 0);
	assert_non_null(strstr(f->text, "sni        shop.test\n"));
	assert_non_null(strstr(f->text, "decision   intercept (default)\n"));
	assert_non_null(
	    strstr(f->text, "tls client TLSv1.3/TLS_AES_256_GCM_SHA384\n"));
	assert_non_null(strstr(f->text, "issuer     CN=Origin CA\n"));
	assert_null(strstr(f->text, "verify"));
}

static void
test_ca_init_path_export(void **state)
{
	struct fixture *f = *state;
	char pem[160];
	X509 *x;
	FILE *fp;
	struct stat sb;

	snprintf(pem, sizeof(pem), "%s/ca.pem\n", f->home);
	assert_int_equal(run(f, cli_ca, "ca", "path", NULL), 0);
	assert_string_equal(f->text, pem);
	assert_int_equal(run(f, cli_ca, "ca", "init", NULL), 0);
	assert_non_null(strstr(f->text, f->home));
	snprintf(pem, sizeof(pem), "%s/ca.key", f->home);
	assert_int_equal(stat(pem, &sb), 0);
	assert_int_equal(sb.st_mode & 077, 0);

	/* Never replaced by accident. */
	assert_int_equal(run(f, cli_ca, "ca", "init", NULL), 1);

	assert_int_equal(run(f, cli_ca, "ca", "export", "--format", "pem",
			     "--out", f->file, NULL),
	    0);
	assert_non_null(fp = fopen(f->file, "r"));
	x = PEM_read_X509(fp, NULL, NULL, NULL);
	fclose(fp);
	assert_non_null(x);
	X509_free(x);

	assert_int_equal(run(f, cli_ca, "ca", "export", "--format", "der",
			     "--out", f->file, NULL),
	    0);
	assert_non_null(fp = fopen(f->file, "rb"));
	x = d2i_X509_fp(fp, NULL);
	fclose(fp);
	assert_non_null(x);
	X509_free(x);

	/* PEM on stdout by default. */
	assert_int_equal(run(f, cli_ca, "ca", "export", NULL), 0);
	assert_non_null(strstr(f->text, "-----BEGIN CERTIFICATE-----"));
	assert_null(strstr(f->text, "PRIVATE"));

	assert_int_equal(run(f, cli_ca, "ca", "init", "--force", NULL), 0);
}

static void
test_ca_home_flag_and_errors(void **state)
{
	struct fixture *f = *state;
	char other[128], path[160];

	snprintf(other, sizeof(other), "%s/other", f->dir);
	snprintf(path, sizeof(path), "%s/ca.pem\n", other);
	assert_int_equal(
	    run(f, cli_ca, "ca", "path", "--home", other, NULL), 0);
	assert_string_equal(f->text, path);
	/* Nothing to export yet: an error, and no CA is made. */
	assert_int_equal(
	    run(f, cli_ca, "ca", "export", "--home", other, NULL), 1);
	assert_int_equal(access(other, F_OK), -1);

	assert_int_equal(
	    run(f, cli_ca, "ca", "export", "--format", "jpg", NULL), 2);
	assert_int_equal(run(f, cli_ca, "ca", "help", "--os", "beos", NULL), 2);
	assert_int_equal(run(f, cli_ca, "ca", NULL), 2);
	assert_int_equal(run(f, cli_ca, "ca", "burn", NULL), 2);
	assert_int_equal(run(f, cli_ca, "ca", "path", "--force", NULL), 2);
	assert_int_equal(run(f, cli_ca, "ca", "init", "extra", NULL), 2);
	assert_int_equal(run(f, cli_ca, "ca", "export", "--out", NULL), 2);

	assert_int_equal(run(f, cli_ca, "ca", "help", NULL), 0);
	assert_non_null(strstr(f->text, "Firefox"));
	assert_non_null(strstr(f->text, f->home));
	assert_int_equal(run(f, cli_ca, "ca", "help", "--os", "ios", NULL), 0);
	assert_null(strstr(f->text, "Firefox"));
	assert_int_equal(run(f, cli_ca, "ca", "--help", NULL), 0);
	assert_non_null(strstr(f->text, "--format"));
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_passthrough_list),
	    T(test_passthrough_clear),
	    T(test_passthrough_retry),
	    T(test_passthrough_clear_while_running),
	    T(test_passthrough_usage),
	    T(test_domains_tls_columns),
	    T(test_show_tls_fields),
	    T(test_ca_init_path_export),
	    T(test_ca_home_flag_and_errors),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
