/*
 * web: the listen address, the token's removal from a redirect, Origin
 * checks, and the server itself started on a fresh capture and asked over
 * a loopback socket (gate, session, a reader-thread query, stop).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "proxy/web/web.c"

#include <arpa/inet.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy/store/store.h"

static void
test_parse_listen(void **state)
{
	char host[64], err[256];
	unsigned port;

	(void)state;
	assert_int_equal(web_parse_listen("8082", host, sizeof(host), &port,
			     err, sizeof(err)),
	    0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 8082);
	assert_int_equal(
	    web_parse_listen(NULL, host, sizeof(host), &port, err, sizeof(err)),
	    0);
	assert_int_equal(port, 8081);
	assert_int_equal(web_parse_listen("[::1]:0", host, sizeof(host), &port,
			     err, sizeof(err)),
	    0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 0);
	assert_int_equal(web_parse_listen("localhost:9", host, sizeof(host),
			     &port, err, sizeof(err)),
	    0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(web_parse_listen("example.com:80", host, sizeof(host),
			     &port, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "IP address"));
	assert_int_equal(web_parse_listen("127.0.0.1:99999", host, sizeof(host),
			     &port, err, sizeof(err)),
	    -1);
	assert_int_equal(web_parse_listen("127.0.0.1:", host, sizeof(host),
			     &port, err, sizeof(err)),
	    -1);
	assert_int_equal(web_parse_listen("[::1]8081", host, sizeof(host),
			     &port, err, sizeof(err)),
	    -1);
	assert_true(web_is_loopback("127.3.2.1"));
	assert_true(web_is_loopback("::1"));
	assert_false(web_is_loopback("0.0.0.0"));
	assert_false(web_is_loopback("10.0.0.1"));
}

static void
test_redirect_and_origin(void **state)
{
	char out[128];

	(void)state;
	web_query_without_token("token=abc&filter=x&b=2", out, sizeof(out));
	assert_string_equal(out, "filter=x&b=2");
	web_query_without_token("filter=x&token=abc", out, sizeof(out));
	assert_string_equal(out, "filter=x");
	web_query_without_token("token=abc", out, sizeof(out));
	assert_string_equal(out, "");
	web_query_without_token(NULL, out, sizeof(out));
	assert_string_equal(out, "");
	assert_true(web_origin_ok("http://127.0.0.1:8081", "127.0.0.1:8081"));
	assert_false(web_origin_ok("http://evil.test", "127.0.0.1:8081"));
	assert_false(web_origin_ok("null", "127.0.0.1:8081"));
}

/* GET path from the server with extra header lines; the answer's head
 * and body into buf. Returns the status. */
static int
http_get(
    unsigned port, const char *path, const char *extra, char *buf, size_t len)
{
	struct sockaddr_in sa;
	char req[1024];
	size_t got = 0;
	ssize_t n;
	int fd, status = -1;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true((fd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	snprintf(req, sizeof(req),
	    "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n%sConnection: close\r\n"
	    "\r\n",
	    path, port, extra);
	assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	while (got + 1 < len && (n = read(fd, buf + got, len - 1 - got)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
	close(fd);
	sscanf(buf, "HTTP/1.1 %d", &status);
	return status;
}

static void
test_server(void **state)
{
	char path[] = "/tmp/peephole-test-web-XXXXXX", db[64], err[256];
	char buf[8192], hdr[128], *url;
	struct web_opts o;
	struct store *st;
	struct web *w;
	FILE *announce;
	size_t alen = 0;
	int fd;

	(void)state;
	assert_true((fd = mkstemp(path)) >= 0);
	close(fd);
	unlink(path);
	snprintf(db, sizeof(db), "%s.db", path);
	st = store_open(db, (struct store_limits){0, 0}, err, sizeof(err));
	assert_non_null(st);
	store_close(st);

	memset(&o, 0, sizeof(o));
	o.listen = "127.0.0.1:0";
	o.db_path = db;
	o.readonly = 1;
	assert_non_null(announce = open_memstream(&url, &alen));
	o.announce = announce;
	w = web_start(&o, err, sizeof(err));
	assert_non_null(w);
	fclose(announce);
	assert_non_null(strstr(url, w->token));
	free(url);

	assert_int_equal(
	    http_get(w->port, "/api/session", "", buf, sizeof(buf)), 401);
	snprintf(hdr, sizeof(hdr), "X-Peephole-Token: %s\r\n", w->token);
	assert_int_equal(
	    http_get(w->port, "/api/session", hdr, buf, sizeof(buf)), 200);
	assert_non_null(strstr(buf, "\"readonly\":true"));
	/* a query, answered from a reader thread */
	assert_int_equal(
	    http_get(w->port, "/api/flows", hdr, buf, sizeof(buf)), 200);
	assert_non_null(strstr(buf, "\"flows\":[]"));
	assert_int_equal(
	    http_get(w->port, "/api/flows/7", hdr, buf, sizeof(buf)), 404);
	web_stop(w);

	/* off loopback, a password is required */
	o.listen = "0.0.0.0:0";
	assert_null(web_start(&o, err, sizeof(err)));
	assert_non_null(strstr(err, "--web-password"));
	unlink(db);
	snprintf(buf, sizeof(buf), "%s-wal", db);
	unlink(buf);
	snprintf(buf, sizeof(buf), "%s-shm", db);
	unlink(buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_listen),
	    cmocka_unit_test(test_redirect_and_origin),
	    cmocka_unit_test(test_server),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
