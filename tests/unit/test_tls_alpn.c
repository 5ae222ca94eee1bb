/*
 * Unit tests for the ALPN part of proxy/net/tls.c: the list offered to an
 * origin (tls_alpn_set: the client's protocols that peephole speaks, in
 * the client's order, http/1.1 added after a lone h2, none for none) and
 * the choice made with a client (tls_alpn_selectcb: the origin's pick when
 * offered, else http/1.1, else h2, else no ALPN).
 *
 * tls.c is included (h2o style) to reach both static functions. What
 * tls_alpn_set put on an SSL is read back from the ClientHello it sends:
 * a server SSL over memory BIOs looks at the extension in its client-hello
 * callback and stops the handshake there; no certificate is needed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "proxy/net/tls.c"

#include <openssl/tls1.h>

/* The ALPN extension the server saw: the wire list, without its 2-byte
 * length; alpn_seen -1 when the ClientHello had none. */
static unsigned char alpn_wire[64];
static int alpn_seen;

static int
hello_cb(SSL *s, int *al, void *arg)
{
	const unsigned char *p;
	size_t n;

	(void)al;
	(void)arg;
	if (SSL_client_hello_get0_ext(s,
		TLSEXT_TYPE_application_layer_protocol_negotiation, &p,
		&n) != 1) {
		alpn_seen = -1;
		return SSL_CLIENT_HELLO_ERROR;
	}
	assert_true(n >= 2 && n - 2 <= sizeof(alpn_wire));
	assert_int_equal((size_t)(p[0] << 8 | p[1]), n - 2);
	memcpy(alpn_wire, p + 2, n - 2);
	alpn_seen = (int)(n - 2);
	return SSL_CLIENT_HELLO_ERROR; /* seen: stop here */
}

/* What a client SSL whose list came from tls_alpn_set(list) offers:
 * its length (the wire list in alpn_wire), -1 for no extension. */
static int
offered(const char *list)
{
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
	SSL *cl, *sv;
	BIO *c2s = BIO_new(BIO_s_mem()), *s2c = BIO_new(BIO_s_mem());

	assert_non_null(cctx);
	assert_non_null(sctx);
	assert_non_null(c2s);
	assert_non_null(s2c);
	SSL_CTX_set_client_hello_cb(sctx, hello_cb, NULL);
	cl = SSL_new(cctx);
	sv = SSL_new(sctx);
	assert_non_null(cl);
	assert_non_null(sv);
	assert_int_equal(tls_alpn_set(cl, list), 0);
	SSL_set_bio(cl, s2c, c2s); /* reads s2c, writes c2s */
	assert_int_equal(BIO_up_ref(c2s), 1);
	SSL_set_bio(sv, c2s, BIO_new(BIO_s_null()));
	assert_true(SSL_connect(cl) <= 0); /* the ClientHello goes out */
	assert_true(BIO_ctrl_pending(c2s) > 0);
	alpn_seen = -2;
	assert_true(SSL_accept(sv) <= 0);
	assert_int_not_equal(alpn_seen, -2);
	ERR_clear_error();
	SSL_free(cl);
	SSL_free(sv);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
	return alpn_seen;
}

#define WIRE_H2 "\x02h2"
#define WIRE_H1 "\x08http/1.1"

static void
assert_offered(const char *list, const char *wire, size_t len)
{
	int n = offered(list);

	assert_int_equal(n, (int)len);
	assert_memory_equal(alpn_wire, wire, len);
}

static void
test_alpn_set_both(void **state)
{
	(void)state;
	assert_offered("h2,http/1.1", WIRE_H2 WIRE_H1, 12);
	/* the client's order is kept */
	assert_offered("http/1.1,h2", WIRE_H1 WIRE_H2, 12);
}

static void
test_alpn_set_h1(void **state)
{
	(void)state;
	assert_offered("http/1.1", WIRE_H1, 9);
}

/* A lone h2: http/1.1 follows it, so an HTTP/1.1-only origin can still
 * answer (h2_h1.c translates). */
static void
test_alpn_set_h2_alone(void **state)
{
	(void)state;
	assert_offered("h2", WIRE_H2 WIRE_H1, 12);
	assert_offered("spdy/3,h2", WIRE_H2 WIRE_H1, 12);
	assert_offered("h2,spdy/3", WIRE_H2 WIRE_H1, 12);
}

/* What peephole does not speak is left out; nothing left: no ALPN. */
static void
test_alpn_set_none(void **state)
{
	(void)state;
	assert_int_equal(offered(""), -1);
	assert_int_equal(offered("spdy/3,h3"), -1);
	/* names that only start like ours */
	assert_int_equal(offered("h2c,http/1.10,h"), -1);
	assert_offered("h2c,http/1.1", WIRE_H1, 9);
}

/* The selection callback with the pick tls_down_new would store. */
static int
select_with(
    const char *pick, const unsigned char *in, unsigned inlen, const char **got)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	SSL *ssl;
	const unsigned char *out = NULL;
	unsigned char outlen = 0;
	static char buf[32];
	int rv;

	assert_non_null(ctx);
	if (tls_pick_idx == -1)
		tls_pick_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	assert_int_not_equal(tls_pick_idx, -1);
	ssl = SSL_new(ctx);
	assert_non_null(ssl);
	assert_int_equal(
	    SSL_set_ex_data(ssl, tls_pick_idx, (void *)(uintptr_t)pick), 1);
	rv = tls_alpn_selectcb(ssl, &out, &outlen, in, inlen, NULL);
	*got = NULL;
	if (rv == SSL_TLSEXT_ERR_OK) {
		/* out points into the client's list */
		assert_true(out > in && out + outlen <= in + inlen);
		memcpy(buf, out, outlen);
		buf[outlen] = '\0';
		*got = buf;
	}
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	return rv;
}

#define IN(s) (const unsigned char *)(s), (unsigned)(sizeof(s) - 1)

static void
test_alpn_select_pick(void **state)
{
	const char *got;

	(void)state;
	assert_int_equal(
	    select_with("h2", IN(WIRE_H1 WIRE_H2), &got), SSL_TLSEXT_ERR_OK);
	assert_string_equal(got, "h2");
	assert_int_equal(select_with("http/1.1", IN(WIRE_H2 WIRE_H1), &got),
	    SSL_TLSEXT_ERR_OK);
	assert_string_equal(got, "http/1.1");
}

/* The pick not offered, or no pick: http/1.1, else h2. */
static void
test_alpn_select_fallback(void **state)
{
	const char *got;

	(void)state;
	assert_int_equal(select_with("h2", IN("\x06spdy/3" WIRE_H1), &got),
	    SSL_TLSEXT_ERR_OK);
	assert_string_equal(got, "http/1.1");
	assert_int_equal(
	    select_with(NULL, IN(WIRE_H2 WIRE_H1), &got), SSL_TLSEXT_ERR_OK);
	assert_string_equal(got, "http/1.1");
	/* an h2-only client of an HTTP/1.1 origin */
	assert_int_equal(
	    select_with("http/1.1", IN("\x06spdy/3" WIRE_H2), &got),
	    SSL_TLSEXT_ERR_OK);
	assert_string_equal(got, "h2");
	assert_int_equal(
	    select_with(NULL, IN(WIRE_H2), &got), SSL_TLSEXT_ERR_OK);
	assert_string_equal(got, "h2");
}

static void
test_alpn_select_noack(void **state)
{
	const char *got;

	(void)state;
	assert_int_equal(select_with("h2", IN("\x06spdy/3\x02h3"), &got),
	    SSL_TLSEXT_ERR_NOACK);
	assert_null(got);
	/* the pick is honoured whatever it is (tls_down_new passes what the
	 * origin chose from our h2/http/1.1 offer) */
	assert_int_equal(
	    select_with("spdy/3", IN("\x06spdy/3"), &got), SSL_TLSEXT_ERR_OK);
	assert_string_equal(got, "spdy/3");
	/* prefixes are not matches */
	assert_int_equal(select_with(NULL, IN("\x03h2c\x07http/1"), &got),
	    SSL_TLSEXT_ERR_NOACK);
	assert_int_equal(select_with(NULL, IN(""), &got), SSL_TLSEXT_ERR_NOACK);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_alpn_set_both),
	    cmocka_unit_test(test_alpn_set_h1),
	    cmocka_unit_test(test_alpn_set_h2_alone),
	    cmocka_unit_test(test_alpn_set_none),
	    cmocka_unit_test(test_alpn_select_pick),
	    cmocka_unit_test(test_alpn_select_fallback),
	    cmocka_unit_test(test_alpn_select_noack),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
