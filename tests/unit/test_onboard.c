/*
 * Unit tests for proxy/http/onboard.c: every path's status, Content-Type
 * and Content-Length, the CA bytes, the PAC file and its host override,
 * HEAD, 404, HTML escaping, and the constructor's refusals.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>

#include "ca/ca.h"
#include "proxy/http/onboard.h"

struct fixture {
	char dir[64];
	char home[96];
	char err[256];
	struct ca *ca;
	struct onboard *o;
};

/* One response split apart; head and body are NUL-terminated copies. */
struct resp {
	char *raw;
	size_t rawlen;
	int status;
	char *head;       /* status line and fields, up to the blank line */
	const char *body; /* into raw */
	size_t bodylen;
};

static void
rmtree(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	char sub[512];

	if (d == NULL) {
		unlink(path);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
		rmtree(sub);
	}
	closedir(d);
	rmdir(path);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/peephole-onboard-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->home, sizeof(f->home), "%s/home", f->dir);
	f->ca = ca_load_or_create(f->home, f->err, sizeof(f->err));
	if (f->ca == NULL)
		fail_msg("ca_load_or_create: %s", f->err);
	f->o = onboard_new(f->ca, "127.0.0.1", 8080, f->err, sizeof(f->err));
	if (f->o == NULL)
		fail_msg("onboard_new: %s", f->err);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	onboard_free(f->o);
	ca_free(f->ca);
	rmtree(f->dir);
	free(f);
	return 0;
}

/*
 * Ask for path and split the answer; checks the parts every response
 * shares: the status line, one Content-Length equal to the body length
 * (or, for HEAD, no body at all), Cache-Control and Connection.
 */
static void
ask(struct fixture *f, const char *path, const char *status_html,
    const char *pac_host, int keep_alive, int head_only, struct resp *r)
{
	struct evbuffer *out = evbuffer_new();
	const char *cl, *end;
	size_t headlen;
	int rc;

	assert_non_null(out);
	memset(r, 0, sizeof(*r));
	rc = onboard_respond(
	    f->o, path, status_html, pac_host, keep_alive, head_only, out);
	assert_true(rc == 200 || rc == 404);
	r->status = rc;
	r->rawlen = evbuffer_get_length(out);
	assert_non_null(r->raw = malloc(r->rawlen + 1));
	assert_int_equal(evbuffer_remove(out, r->raw, r->rawlen), r->rawlen);
	r->raw[r->rawlen] = '\0';
	evbuffer_free(out);

	end = strstr(r->raw, "\r\n\r\n");
	assert_non_null(end);
	headlen = (size_t)(end - r->raw) + 2;
	assert_non_null(r->head = strndup(r->raw, headlen));
	r->body = end + 4;
	r->bodylen = r->rawlen - (size_t)(r->body - r->raw);

	assert_int_equal(strncmp(r->head, "HTTP/1.1 ", 9), 0);
	assert_int_equal(atoi(r->head + 9), rc);
	assert_non_null(strstr(r->head, "\r\nCache-Control: no-store\r\n"));
	assert_non_null(strstr(r->head,
	    keep_alive ? "\r\nConnection: keep-alive\r\n"
		       : "\r\nConnection: close\r\n"));
	assert_non_null(cl = strstr(r->head, "\r\nContent-Length: "));
	assert_null(strstr(cl + 2, "\r\nContent-Length: "));
	if (head_only)
		assert_int_equal(r->bodylen, 0);
	else
		assert_int_equal(
		    strtoul(cl + strlen("\r\nContent-Length: "), NULL, 10),
		    r->bodylen);
}

static void
resp_free(struct resp *r)
{
	free(r->raw);
	free(r->head);
}

/* The value of header name (a copy to free), NULL if absent. */
static char *
header(const struct resp *r, const char *name)
{
	const char *p = r->head;
	size_t n = strlen(name);

	while ((p = strstr(p, "\r\n")) != NULL) {
		p += 2;
		if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
			p += n + 1;
			while (*p == ' ')
				p++;
			return strndup(p, strcspn(p, "\r"));
		}
	}
	return NULL;
}

static void
assert_header(const struct resp *r, const char *name, const char *want)
{
	char *v = header(r, name);

	if (v == NULL)
		fail_msg("no %s header", name);
	assert_string_equal(v, want);
	free(v);
}

/* Whether the body holds s (bodies may hold NULs: the DER CA). */
static int
body_has(const struct resp *r, const char *s)
{
	size_t n = strlen(s), i;

	for (i = 0; i + n <= r->bodylen; i++)
		if (memcmp(r->body + i, s, n) == 0)
			return 1;
	return 0;
}

static void
test_home_page(void **state)
{
	struct fixture *f = *state;
	struct resp r;

	ask(f, "/", "<p>3 connections open</p>", NULL, 1, 0, &r);
	assert_int_equal(r.status, 200);
	assert_header(&r, "Content-Type", "text/html; charset=utf-8");
	assert_null(header(&r, "Content-Disposition"));
	assert_true(body_has(&r, "peephole"));
	assert_true(body_has(&r, "href=\"/ca.pem\""));
	assert_true(body_has(&r, "href=\"/ca.cer\""));
	assert_true(body_has(&r, "href=\"/ca.p12\""));
	assert_true(body_has(&r, "href=\"/proxy.pac\""));
	assert_true(body_has(&r, "http://127.0.0.1:8080/proxy.pac"));
	assert_true(body_has(&r, "peephole.local"));
	/* status_html goes in as given */
	assert_true(body_has(&r, "<p>3 connections open</p>"));
	/* the trust steps are ca_help's, escaped: Android's text has XML */
	assert_true(body_has(&r, "security add-trusted-cert"));
	assert_true(body_has(&r, "certutil -addstore Root peephole-ca.pem"));
	assert_true(body_has(&r, "&lt;certificates src=&quot;user&quot;/&gt;"));
	assert_false(body_has(&r, "<certificates"));
	resp_free(&r);

	/* "" is "/", and no status section without a status */
	ask(f, "", NULL, NULL, 0, 0, &r);
	assert_int_equal(r.status, 200);
	assert_false(body_has(&r, "<h2>Status</h2>"));
	resp_free(&r);
}

/* What the proxy learned from the network must come through escaped. */
static void
test_escape(void **state)
{
	struct fixture *f = *state;
	char *s, *html;
	struct resp r;

	s = onboard_escape("<script>alert('x')</script> & \"q\"");
	assert_non_null(s);
	assert_string_equal(s,
	    "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; "
	    "&quot;q&quot;");
	assert_non_null(html = malloc(strlen(s) + 8));
	snprintf(html, strlen(s) + 8, "<p>%s</p>", s);
	ask(f, "/", html, NULL, 1, 0, &r);
	assert_true(body_has(&r, "&lt;script&gt;alert(&#39;x&#39;)"));
	assert_false(body_has(&r, "<script>"));
	resp_free(&r);
	free(html);
	free(s);

	assert_non_null(s = onboard_escape(""));
	assert_string_equal(s, "");
	free(s);
	assert_non_null(s = onboard_escape("plain text"));
	assert_string_equal(s, "plain text");
	free(s);
}

static void
test_ca_files(void **state)
{
	struct fixture *f = *state;
	unsigned char *der = NULL;
	const unsigned char *p;
	size_t derlen;
	struct resp r;
	BIO *b;
	X509 *x;
	PKCS12 *p12;

	/* PEM */
	ask(f, "/ca.pem", NULL, NULL, 1, 0, &r);
	assert_int_equal(r.status, 200);
	assert_header(&r, "Content-Type", "application/x-pem-file");
	assert_header(&r, "Content-Disposition",
	    "attachment; filename=\"peephole-ca.pem\"");
	assert_non_null(b = BIO_new_mem_buf(r.body, (int)r.bodylen));
	assert_non_null(x = PEM_read_bio_X509(b, NULL, NULL, NULL));
	assert_int_equal(X509_cmp(x, ca_cert(f->ca)), 0);
	X509_free(x);
	BIO_free(b);
	resp_free(&r);

	/* DER: the bytes of ca_export_mem */
	ask(f, "/ca.cer", NULL, NULL, 1, 0, &r);
	assert_int_equal(r.status, 200);
	assert_header(&r, "Content-Type", "application/pkix-cert");
	assert_header(&r, "Content-Disposition",
	    "attachment; filename=\"peephole-ca.cer\"");
	assert_int_equal(
	    ca_export_mem(f->ca, "der", &der, &derlen, f->err, sizeof(f->err)),
	    0);
	assert_int_equal(r.bodylen, derlen);
	assert_memory_equal(r.body, der, derlen);
	free(der);
	resp_free(&r);

	/* PKCS#12: certificate only, empty password */
	ask(f, "/ca.p12", NULL, NULL, 0, 0, &r);
	assert_int_equal(r.status, 200);
	assert_header(&r, "Content-Type", "application/x-pkcs12");
	assert_header(&r, "Content-Disposition",
	    "attachment; filename=\"peephole-ca.p12\"");
	p = (const unsigned char *)r.body;
	assert_non_null(p12 = d2i_PKCS12(NULL, &p, (long)r.bodylen));
	assert_int_equal(PKCS12_verify_mac(p12, "", 0), 1);
	PKCS12_free(p12);
	resp_free(&r);
}

static void
test_pac(void **state)
{
	struct fixture *f = *state;
	struct resp r;

	ask(f, "/proxy.pac", NULL, NULL, 1, 0, &r);
	assert_int_equal(r.status, 200);
	assert_header(&r, "Content-Type", "application/x-ns-proxy-autoconfig");
	assert_null(header(&r, "Content-Disposition"));
	assert_true(body_has(&r, "function FindProxyForURL(url, host)"));
	assert_true(body_has(&r, "\"PROXY 127.0.0.1:8080; DIRECT\""));
	assert_true(body_has(&r, "isPlainHostName(host)"));
	assert_true(body_has(&r, "host == \"localhost\""));
	assert_true(
	    body_has(&r, "isInNet(host, \"127.0.0.0\", \"255.0.0.0\")"));
	resp_free(&r);

	/* the address the client connected to, for a wildcard listener */
	ask(f, "/proxy.pac", NULL, "192.168.1.20", 1, 0, &r);
	assert_true(body_has(&r, "\"PROXY 192.168.1.20:8080; DIRECT\""));
	assert_false(body_has(&r, "127.0.0.1:8080"));
	resp_free(&r);
	ask(f, "/", NULL, "192.168.1.20", 1, 0, &r);
	assert_true(body_has(&r, "http://192.168.1.20:8080/proxy.pac"));
	resp_free(&r);

	/* IPv6, bare or bracketed */
	ask(f, "/proxy.pac", NULL, "fd00::1", 1, 0, &r);
	assert_true(body_has(&r, "\"PROXY [fd00::1]:8080; DIRECT\""));
	resp_free(&r);
	ask(f, "/proxy.pac", NULL, "[fd00::2]", 1, 0, &r);
	assert_true(body_has(&r, "\"PROXY [fd00::2]:8080; DIRECT\""));
	resp_free(&r);

	/* anything that could break out of the JavaScript string is ignored */
	ask(f, "/proxy.pac", NULL, "x\";alert(1);//", 1, 0, &r);
	assert_true(body_has(&r, "\"PROXY 127.0.0.1:8080; DIRECT\""));
	assert_false(body_has(&r, "alert"));
	resp_free(&r);
	ask(f, "/proxy.pac", NULL, "", 1, 0, &r);
	assert_true(body_has(&r, "\"PROXY 127.0.0.1:8080; DIRECT\""));
	resp_free(&r);
}

/* HEAD: the same head as GET, Content-Length included, and no body. */
static void
test_head(void **state)
{
	static const char *const paths[] = {
	    "/", "/ca.pem", "/ca.cer", "/ca.p12", "/proxy.pac", "/nope"};
	struct fixture *f = *state;
	struct resp get, head;
	size_t i;

	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		ask(f, paths[i], "<b>up</b>", NULL, 1, 0, &get);
		ask(f, paths[i], "<b>up</b>", NULL, 1, 1, &head);
		assert_int_equal(head.status, get.status);
		assert_string_equal(head.head, get.head);
		assert_int_equal(head.bodylen, 0);
		assert_true(get.bodylen > 0);
		resp_free(&get);
		resp_free(&head);
	}
}

static void
test_not_found(void **state)
{
	struct fixture *f = *state;
	struct resp r;

	ask(f, "/<img src=x>", NULL, NULL, 0, 0, &r);
	assert_int_equal(r.status, 404);
	assert_int_equal(strncmp(r.head, "HTTP/1.1 404 Not Found\r\n", 24), 0);
	assert_header(&r, "Content-Type", "text/html; charset=utf-8");
	assert_true(body_has(&r, "&lt;img src=x&gt;"));
	assert_false(body_has(&r, "<img"));
	assert_true(body_has(&r, "href=\"/\""));
	resp_free(&r);

	/* a CA file's name is matched exactly */
	ask(f, "/ca.pem/", NULL, NULL, 0, 0, &r);
	assert_int_equal(r.status, 404);
	resp_free(&r);
	ask(f, "/CA.PEM", NULL, NULL, 0, 0, &r);
	assert_int_equal(r.status, 404);
	resp_free(&r);
}

/* The response is appended: what was already in out stays first. */
static void
test_appends(void **state)
{
	struct fixture *f = *state;
	struct evbuffer *out = evbuffer_new();
	char first[9];

	assert_non_null(out);
	assert_int_equal(evbuffer_add(out, "previous", 8), 0);
	assert_int_equal(
	    onboard_respond(f->o, "/proxy.pac", NULL, NULL, 1, 0, out), 200);
	assert_int_equal(evbuffer_remove(out, first, 8), 8);
	first[8] = '\0';
	assert_string_equal(first, "previous");
	assert_int_equal(evbuffer_remove(out, first, 8), 8);
	assert_memory_equal(first, "HTTP/1.1", 8);
	evbuffer_free(out);
}

static void
test_new_refusals(void **state)
{
	struct fixture *f = *state;
	struct onboard *o;

	onboard_free(NULL);
	o = onboard_new(f->ca, "127.0.0.1", 0, f->err, sizeof(f->err));
	assert_null(o);
	assert_non_null(strstr(f->err, "port"));
	o = onboard_new(f->ca, "127.0.0.1", 70000, f->err, sizeof(f->err));
	assert_null(o);
	o = onboard_new(f->ca, "", 8080, f->err, sizeof(f->err));
	assert_null(o);
	assert_non_null(strstr(f->err, "host"));
	o = onboard_new(f->ca, NULL, 8080, f->err, sizeof(f->err));
	assert_null(o);
	o = onboard_new(f->ca, "a b", 8080, f->err, sizeof(f->err));
	assert_null(o);

	/* a wildcard IPv6 listener and a name are fine */
	o = onboard_new(f->ca, "::", 3128, f->err, sizeof(f->err));
	assert_non_null(o);
	onboard_free(o);
	o = onboard_new(f->ca, "proxy.example", 3128, f->err, sizeof(f->err));
	assert_non_null(o);
	onboard_free(o);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_home_page, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_escape, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ca_files, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pac, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_head, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_not_found, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_appends, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_new_refusals, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
