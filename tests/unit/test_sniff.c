/*
 * Unit tests for filters/sniff.c: protocol sniffing on real first bytes
 * (a ClientHello OpenSSL wrote, mmTLS, h2, HTTP, SSH) and ClientHello
 * parsing, whole, split at every offset, re-recorded and corrupted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/sniff.h"

/* A byte buffer to build records and messages in. */
struct bb {
	size_t n;
	unsigned char b[1 << 18];
};

static void
put(struct bb *b, const void *p, size_t n)
{
	assert_true(n <= sizeof(b->b) - b->n);
	if (p != NULL)
		memcpy(b->b + b->n, p, n);
	else
		memset(b->b + b->n, 0x5a, n);
	b->n += n;
}

static void
put8(struct bb *b, unsigned v)
{
	unsigned char c = (unsigned char)v;

	put(b, &c, 1);
}

static void
put16(struct bb *b, unsigned v)
{
	put8(b, v >> 8);
	put8(b, v);
}

/* Reserve an nbytes length field; close_len fills it in. */
static size_t
open_len(struct bb *b, size_t nbytes)
{
	size_t at = b->n;

	put(b, "\0\0\0", nbytes);
	return at;
}

static void
close_len(struct bb *b, size_t at, size_t nbytes)
{
	size_t v = b->n - at - nbytes;

	for (size_t i = 0; i < nbytes; i++)
		b->b[at + i] = (unsigned char)(v >> (8 * (nbytes - 1 - i)));
}

/*
 * A ClientHello handshake message (header included) with the extensions
 * block ext, or none when ext is NULL.
 */
static void
hello_msg(struct bb *m, const struct bb *ext)
{
	size_t h;

	m->n = 0;
	put8(m, 1);
	h = open_len(m, 3);
	put16(m, 0x0303);
	put(m, NULL, 32);
	put8(m, 32);
	put(m, NULL, 32);
	put16(m, 4);
	put16(m, 0x1301);
	put16(m, 0x1302);
	put8(m, 1);
	put8(m, 0);
	if (ext != NULL) {
		put16(m, (unsigned)ext->n);
		put(m, ext->b, ext->n);
	}
	close_len(m, h, 3);
}

/* Cut msg into handshake records of at most frag bytes. */
static void
records(struct bb *out, const unsigned char *msg, size_t n, size_t frag)
{
	out->n = 0;
	for (size_t i = 0; i < n; i += frag) {
		size_t k = n - i < frag ? n - i : frag;

		put8(out, 0x16);
		put16(out, 0x0301);
		put16(out, (unsigned)k);
		put(out, msg + i, k);
	}
}

static void
ext_sni(struct bb *e, const char *name)
{
	size_t x, l;

	put16(e, 0);
	x = open_len(e, 2);
	l = open_len(e, 2);
	put8(e, 0);
	put16(e, (unsigned)strlen(name));
	put(e, name, strlen(name));
	close_len(e, l, 2);
	close_len(e, x, 2);
}

static void
ext_alpn(struct bb *e, const char *const *names, size_t n)
{
	size_t x, l;

	put16(e, 16);
	x = open_len(e, 2);
	l = open_len(e, 2);
	for (size_t i = 0; i < n; i++) {
		put8(e, (unsigned)strlen(names[i]));
		put(e, names[i], strlen(names[i]));
	}
	close_len(e, l, 2);
	close_len(e, x, 2);
}

static void
ext_versions(struct bb *e, const unsigned *v, size_t n)
{
	size_t x, l;

	put16(e, 43);
	x = open_len(e, 2);
	l = open_len(e, 1);
	for (size_t i = 0; i < n; i++)
		put16(e, v[i]);
	close_len(e, l, 1);
	close_len(e, x, 2);
}

/* Records holding a hello with the extensions e, 16384-byte fragments. */
static const struct bb *
hello_with(const struct bb *e)
{
	static struct bb m, out;

	hello_msg(&m, e);
	records(&out, m.b, m.n, 16384);
	return &out;
}

static int
parse(const struct bb *b, struct sniff_hello *h)
{
	return sniff_client_hello(b->b, b->n, h);
}

/*
 * The first flight of a real OpenSSL client (SNI, ALPN h2 and http/1.1),
 * taken from the network end of a BIO pair. max_version 0 lets it offer
 * TLS 1.3.
 */
static void
openssl_hello(struct bb *out, const char *sni, int max_version)
{
	static const unsigned char alpn[] = "\x02h2\x08http/1.1";
	SSL_CTX *ctx;
	SSL *ssl;
	BIO *inner = NULL, *net = NULL;
	int n;

	ctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(ctx);
	if (max_version != 0)
		assert_int_equal(
		    SSL_CTX_set_max_proto_version(ctx, max_version), 1);
	ssl = SSL_new(ctx);
	assert_non_null(ssl);
	assert_int_equal(BIO_new_bio_pair(&inner, 0, &net, 0), 1);
	SSL_set_bio(ssl, inner, inner);
	SSL_set_connect_state(ssl);
	assert_int_equal(SSL_set_tlsext_host_name(ssl, sni), 1);
	/* SSL_set_alpn_protos returns 0 on success */
	assert_int_equal(SSL_set_alpn_protos(ssl, alpn, sizeof(alpn) - 1), 0);
	assert_int_equal(SSL_do_handshake(ssl), -1);
	assert_int_equal(SSL_get_error(ssl, -1), SSL_ERROR_WANT_READ);
	n = BIO_read(net, out->b, (int)sizeof(out->b));
	assert_true(n > 0);
	out->n = (size_t)n;
	BIO_free(net);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
}

static void
test_openssl_hello(void **state)
{
	static struct bb b;
	struct sniff_hello h;

	(void)state;
	openssl_hello(&b, "WWW.Example.COM", 0);
	assert_int_equal(sniff_detect(b.b, b.n), SNIFF_TLS);
	assert_int_equal(parse(&b, &h), 1);
	assert_string_equal(h.sni, "www.example.com");
	assert_int_equal(h.nalpn, 2);
	assert_string_equal(h.alpn[0], "h2");
	assert_string_equal(h.alpn[1], "http/1.1");
	assert_int_equal(h.legacy_version, 0x0303);
	assert_int_equal(h.has_supported_versions_13, 1);

	openssl_hello(&b, "tls12.example", TLS1_2_VERSION);
	assert_int_equal(sniff_detect(b.b, b.n), SNIFF_TLS);
	assert_int_equal(parse(&b, &h), 1);
	assert_string_equal(h.sni, "tls12.example");
	assert_int_equal(h.has_supported_versions_13, 0);
}

/* Split at every offset: need more until the last byte, then parsed. */
static void
test_openssl_hello_split(void **state)
{
	static struct bb b;
	struct sniff_hello h;

	(void)state;
	openssl_hello(&b, "split.example", 0);
	for (size_t k = 0; k < b.n; k++) {
		enum sniff_proto p = sniff_detect(b.b, k);

		assert_int_equal(p, k < 6 ? SNIFF_NEED_MORE : SNIFF_TLS);
		memset(&h, 0xee, sizeof(h));
		assert_int_equal(sniff_client_hello(b.b, k, &h), 0);
	}
	assert_int_equal(parse(&b, &h), 1);
	assert_string_equal(h.sni, "split.example");
	/* bytes after the hello (a second flight, say) change nothing */
	put(&b, "\x14\x03\x03\x00\x01\x01", 6);
	assert_int_equal(parse(&b, &h), 1);
	assert_string_equal(h.sni, "split.example");
}

/* The same message re-cut into small records parses the same. */
static void
test_hello_many_records(void **state)
{
	static struct bb b, msg, r;
	static const size_t frags[] = {1, 2, 3, 7, 64, 100};
	struct sniff_hello h;

	(void)state;
	openssl_hello(&b, "frag.example", 0);
	/* one record, so the message is the payload after its header */
	assert_int_equal((size_t)b.b[3] << 8 | b.b[4], b.n - 5);
	msg.n = 0;
	put(&msg, b.b + 5, b.n - 5);
	for (size_t f = 0; f < sizeof(frags) / sizeof(frags[0]); f++) {
		records(&r, msg.b, msg.n, frags[f]);
		assert_int_equal(sniff_detect(r.b, r.n), SNIFF_TLS);
		for (size_t k = 0; k < r.n; k++)
			assert_int_equal(sniff_client_hello(r.b, k, &h), 0);
		assert_int_equal(parse(&r, &h), 1);
		assert_string_equal(h.sni, "frag.example");
		assert_int_equal(h.nalpn, 2);
		assert_string_equal(h.alpn[1], "http/1.1");
	}
	/* a record that is not a handshake in the middle */
	records(&r, msg.b, msg.n, 64);
	r.b[64 + 5] = 0x17;
	assert_int_equal(parse(&r, &h), -1);
}

/* A hello bigger than one record (a padded post-quantum hello, say). */
static void
test_hello_big(void **state)
{
	static struct bb e, m, r;
	struct sniff_hello h;
	size_t x;

	(void)state;
	e.n = 0;
	ext_sni(&e, "big.example");
	put16(&e, 21); /* padding */
	x = open_len(&e, 2);
	put(&e, NULL, 30000);
	close_len(&e, x, 2);
	hello_msg(&m, &e);
	records(&r, m.b, m.n, 16384);
	assert_int_equal(sniff_detect(r.b, r.n), SNIFF_TLS);
	assert_int_equal(parse(&r, &h), 1);
	assert_string_equal(h.sni, "big.example");
	assert_int_equal(sniff_client_hello(r.b, r.n - 1, &h), 0);
	assert_int_equal(sniff_client_hello(r.b, 16384 + 5, &h), 0);

	/* past 64 KiB: refused from the header alone */
	hello_msg(&m, NULL);
	m.b[1] = 0x01;
	m.b[2] = 0x00;
	m.b[3] = 0x01;
	records(&r, m.b, m.n, 16384);
	assert_int_equal(sniff_client_hello(r.b, 9, &h), -1);
	m.b[3] = 0x00; /* exactly 64 KiB is allowed */
	records(&r, m.b, m.n, 16384);
	assert_int_equal(sniff_client_hello(r.b, 9, &h), 0);
	assert_int_equal(parse(&r, &h), 0);
}

static void
test_hello_fields(void **state)
{
	static struct bb e;
	static const char *const many[] = {"a", "b", "c", "d", "e", "f", "g",
	    "h", "i", "j", "k", "l", "m", "n", "o", "p", "q"};
	static const unsigned v12[] = {0x0303, 0x0302};
	static const unsigned v13[] = {0x7a7a, 0x0304, 0x0303};
	char long64[65], name255[256];
	const char *odd[3];
	struct sniff_hello h;

	(void)state;
	/* no extensions at all: still a hello */
	assert_int_equal(parse(hello_with(NULL), &h), 1);
	assert_string_equal(h.sni, "");
	assert_int_equal(h.nalpn, 0);
	assert_int_equal(h.has_supported_versions_13, 0);
	/* an empty extensions block */
	e.n = 0;
	assert_int_equal(parse(hello_with(&e), &h), 1);

	/* more than 16 ALPN names: the first 16 kept */
	e.n = 0;
	ext_alpn(&e, many, 17);
	assert_int_equal(parse(hello_with(&e), &h), 1);
	assert_int_equal(h.nalpn, SNIFF_MAX_ALPN);
	assert_string_equal(h.alpn[15], "p");

	/* too long or binary names skipped, the rest kept in order */
	memset(long64, 'x', 64);
	long64[64] = '\0';
	odd[0] = long64;
	odd[1] = "\x01\x02";
	odd[2] = "h2";
	e.n = 0;
	ext_alpn(&e, odd, 3);
	assert_int_equal(parse(hello_with(&e), &h), 1);
	assert_int_equal(h.nalpn, 1);
	assert_string_equal(h.alpn[0], "h2");

	e.n = 0;
	ext_versions(&e, v12, 2);
	assert_int_equal(parse(hello_with(&e), &h), 1);
	assert_int_equal(h.has_supported_versions_13, 0);
	e.n = 0;
	ext_versions(&e, v13, 3);
	assert_int_equal(parse(hello_with(&e), &h), 1);
	assert_int_equal(h.has_supported_versions_13, 1);

	/* the longest name that fits; one more byte is not a DNS name */
	memset(name255, 'a', 255);
	name255[255] = '\0';
	for (size_t i = 63; i < 255; i += 64)
		name255[i] = '.';
	e.n = 0;
	ext_sni(&e, name255);
	assert_int_equal(parse(hello_with(&e), &h), 1);
	assert_string_equal(h.sni, name255);
	e.n = 0;
	ext_sni(&e, "");
	assert_int_equal(parse(hello_with(&e), &h), -1);

	/* unknown extensions are skipped; an empty SNI is tolerated */
	e.n = 0;
	put16(&e, 0xfafa);
	put16(&e, 0);
	put16(&e, 0);
	put16(&e, 0);
	ext_sni(&e, "b.example"); /* a duplicate */
	assert_int_equal(parse(hello_with(&e), &h), -1);
	e.n = 0;
	put16(&e, 0xfafa);
	put16(&e, 1);
	put8(&e, 0);
	put16(&e, 0);
	put16(&e, 0);
	assert_int_equal(parse(hello_with(&e), &h), 1);
	assert_string_equal(h.sni, "");
}

/* Build a hello and corrupt one byte of the message (offset past hs hdr). */
static int
parse_corrupt(const struct bb *e, size_t off, unsigned char v)
{
	static struct bb m, r;
	struct sniff_hello h;

	hello_msg(&m, e);
	assert_true(off < m.n);
	m.b[off] = v;
	records(&r, m.b, m.n, 16384);
	return parse(&r, &h);
}

static void
test_hello_malformed(void **state)
{
	static struct bb e, r;
	struct sniff_hello h;
	/* message offsets: type 0, length 1-3, version 4, random 6,
	 * sid len 38, sid 39, suites len 71, suites 73, comp len 77,
	 * comp 78, extensions len 79, extensions 81 */
	const size_t ext0 = 81;

	(void)state;
	e.n = 0;
	ext_sni(&e, "m.example");
	assert_int_equal(parse_corrupt(&e, 0, 1), 1);
	assert_int_equal(parse_corrupt(&e, 0, 2), -1);     /* ServerHello */
	assert_int_equal(parse_corrupt(&e, 4, 2), -1);     /* version 2.x */
	assert_int_equal(parse_corrupt(&e, 38, 33), -1);   /* sid > 32 */
	assert_int_equal(parse_corrupt(&e, 72, 3), -1);    /* odd suites */
	assert_int_equal(parse_corrupt(&e, 72, 0), -1);    /* no suites */
	assert_int_equal(parse_corrupt(&e, 77, 0), -1);    /* no compression */
	assert_int_equal(parse_corrupt(&e, 80, 0xff), -1); /* ext len */
	assert_int_equal(parse_corrupt(&e, 80, 0), -1);    /* trailing */
	assert_int_equal(parse_corrupt(&e, ext0 + 3, 0xff), -1);
	assert_int_equal(parse_corrupt(&e, ext0 + 5, 0x30), -1); /* list */
	assert_int_equal(parse_corrupt(&e, ext0 + 8, 0x30), -1); /* name */
	assert_int_equal(parse_corrupt(&e, ext0 + 9, 0), -1);    /* NUL */
	/* an unknown name type is skipped */
	assert_int_equal(parse_corrupt(&e, ext0 + 6, 7), 1);

	/* record headers */
	records(&r, hello_with(&e)->b + 5, hello_with(&e)->n - 5, 16384);
	r.b[2] = 0x10;
	assert_int_equal(parse(&r, &h), -1);
	r.b[2] = 0x01;
	r.b[3] = 0x40;
	r.b[4] = 0x01; /* 16385 */
	assert_int_equal(parse(&r, &h), -1);
	r.b[3] = 0;
	r.b[4] = 0;
	assert_int_equal(parse(&r, &h), -1);
	/* a record shorter than the message: need the next record */
	r.b[4] = 20;
	assert_int_equal(sniff_client_hello(r.b, 25, &h), 0);
	r.b[25] = 0x16;
	assert_int_equal(sniff_client_hello(r.b, 26, &h), 0);
	r.b[25] = 0x15;
	assert_int_equal(sniff_client_hello(r.b, 30, &h), -1);
	assert_int_equal(sniff_client_hello(NULL, 0, &h), 0);
}

/* Every byte of a real hello set to a few values: no crash, sane answer. */
static void
test_hello_mutations(void **state)
{
	static struct bb b, m;
	static const unsigned char vals[] = {0x00, 0x01, 0x7f, 0x80, 0xff};
	struct sniff_hello h;

	(void)state;
	openssl_hello(&b, "mutate.example", 0);
	for (size_t i = 0; i < b.n; i++) {
		for (size_t v = 0; v < sizeof(vals); v++) {
			int r, rf;

			memcpy(m.b, b.b, b.n);
			m.n = b.n;
			m.b[i] = vals[v];
			rf = parse(&m, &h);
			assert_true(rf >= -1 && rf <= 1);
			/* a decided prefix stays decided */
			r = sniff_client_hello(m.b, i + 1, &h);
			if (r != 0)
				assert_int_equal(r, rf);
			if (rf == 1)
				assert_true(strlen(h.sni) < sizeof(h.sni));
		}
	}
}

static void
expect(const char *s, size_t len, enum sniff_proto p)
{
	assert_int_equal(sniff_detect((const unsigned char *)s, len), p);
}

static void
expect_str(const char *s, enum sniff_proto p)
{
	expect(s, strlen(s), p);
}

/* Every strict prefix needs more; the whole is p. */
static void
expect_prefixes(
    const char *s, size_t len, size_t decided_at, enum sniff_proto p)
{
	for (size_t k = 0; k < decided_at; k++)
		expect(s, k, SNIFF_NEED_MORE);
	for (size_t k = decided_at; k <= len; k++)
		expect(s, k, p);
}

static void
test_mmtls(void **state)
{
	/* handshake: length 0x0a, inner length 0x0a-4 = 6, ClientHello */
	static const char hs[] = "\x16\xf1\x04\x00\x0a\x00\x00\x00\x06\x01"
				 "\x03\xf1\x04\x00\x00";
	char b[sizeof(hs)];

	(void)state;
	expect_prefixes(hs, sizeof(hs) - 1, 10, SNIFF_MMTLS);
	memcpy(b, hs, sizeof(hs));
	b[2] = 0x03; /* older clients */
	expect(b, 10, SNIFF_MMTLS);
	b[0] = 0x19; /* 0-RTT */
	expect(b, 10, SNIFF_MMTLS);
	b[9] = 0x02; /* ServerHello */
	expect(b, 10, SNIFF_MMTLS);
	b[9] = 0x03;
	expect(b, 10, SNIFF_OTHER);
	b[9] = 0x01;
	b[8] = 0x07; /* inner length is not length - 4 */
	expect(b, 9, SNIFF_OTHER);
	b[8] = 0x06;
	b[5] = 0x01;
	expect(b, 6, SNIFF_OTHER);
	b[5] = 0x00;
	b[4] = 0x04; /* no room for the type byte */
	expect(b, 5, SNIFF_OTHER);
	b[4] = 0x0a;
	b[2] = 0x05;
	expect(b, 3, SNIFF_OTHER);
	b[2] = 0x04;
	b[1] = 0x03; /* then it is TLS, but byte 5 is no ClientHello */
	expect(b, 10, SNIFF_OTHER);
	b[1] = (char)0xf1;
	b[0] = 0x18;
	expect(b, 1, SNIFF_OTHER);

	/* application data and alerts: the header is all there is */
	expect_prefixes("\x17\xf1\x04\x01\x00\xaa\xbb", 7, 5, SNIFF_MMTLS);
	expect_prefixes("\x15\xf1\x03\x00\x02\x02\x28", 7, 5, SNIFF_MMTLS);
}

static void
test_tls_header(void **state)
{
	(void)state;
	expect_prefixes("\x16\x03\x01\x00\x05\x01", 6, 6, SNIFF_TLS);
	expect("\x16\x03\x00\x40\x00\x01", 6, SNIFF_TLS); /* 2^14 */
	expect("\x16\x03\x01\x40\x01\x01", 6, SNIFF_OTHER);
	expect("\x16\x03\x01\x41", 4, SNIFF_OTHER);
	expect("\x16\x03\x01\x00\x00\x01", 6, SNIFF_OTHER);
	expect("\x16\x03\x01\x00\x05\x02", 6, SNIFF_OTHER);
	expect("\x16\x03\x10", 3, SNIFF_OTHER);
	expect("\x16\x02", 2, SNIFF_OTHER);
	expect("\x17\x03\x03\x00\x05\x01", 6, SNIFF_OTHER);
}

static void
test_h2(void **state)
{
	static const char pre[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
				  "\x00\x00\x00\x04\x00\x00\x00\x00\x00";

	(void)state;
	expect_prefixes(pre, sizeof(pre) - 1, 24, SNIFF_H2);
	expect_str("PRI * HTTP/2.0\r\n\r\nXM\r\n\r\n", SNIFF_OTHER);
	expect_str("PRI * HTTP/1.1\r\n", SNIFF_HTTP);
}

static void
test_http(void **state)
{
	static const char *const yes[] = {"GET / HTTP/1.1\r\n",
	    "GET /index.html?q=1 HTTP/1.0\r\nHost: a\r\n\r\n",
	    "POST /mmtls/0a1b2c3d HTTP/1.1\r\nUpgrade: mmtls\r\n",
	    "CONNECT example.com:443 HTTP/1.1\r\n", "OPTIONS * HTTP/1.1\r\n",
	    "HEAD http://a/ HTTP/1.1\r\n", "M-SEARCH * HTTP/1.1\r\n",
	    "ABCDEFGHIJKLMNOPQRST / HTTP/1.1\r\n"};
	static const char *const no[] = {"GET / HTTP/2.0\r\n",
	    "GET / HTTP/1.1\n", "GET / HTTP/1.x\r\n", "GET / HTTP/1.1 \r\n",
	    "get / HTTP/1.1\r\n", "GET  / HTTP/1.1\r\n", " GET / HTTP/1.1\r\n",
	    "GET\t/ HTTP/1.1\r\n", "GET /\x01 HTTP/1.1\r\n",
	    "ABCDEFGHIJKLMNOPQRSTU / HTTP/1.1\r\n", "1GET / HTTP/1.1\r\n",
	    "GET / FTP/1.1\r\n", "GET / HTTP/1.1\rX"};
	static char line[SNIFF_HTTP_MAX_LINE + 16];
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		const char *eol = strstr(yes[i], "\r\n");

		expect_prefixes(yes[i], strlen(yes[i]),
		    (size_t)(eol - yes[i]) + 2, SNIFF_HTTP);
	}
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		expect_str(no[i], SNIFF_OTHER);
	expect_str("GET / HTTP/1.1", SNIFF_NEED_MORE);

	/* a line of exactly SNIFF_HTTP_MAX_LINE bytes, CRLF included */
	memset(line, 'a', sizeof(line));
	memcpy(line, "GET /", 5);
	n = SNIFF_HTTP_MAX_LINE;
	memcpy(line + n - 11, " HTTP/1.1\r\n", 11);
	expect(line, n, SNIFF_HTTP);
	expect(line, n - 1, SNIFF_NEED_MORE);
	/* one byte longer: other, as soon as the target is too long */
	memset(line, 'a', sizeof(line));
	memcpy(line, "GET /", 5);
	memcpy(line + n + 1 - 11, " HTTP/1.1\r\n", 11);
	expect(line, n + 1, SNIFF_OTHER);
	expect(line, n - 11, SNIFF_NEED_MORE);
	expect(line, n - 10, SNIFF_OTHER);
}

static void
test_ssh_and_other(void **state)
{
	uint32_t x = 2463534242u;
	unsigned char rnd[64];

	(void)state;
	expect_prefixes("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", 32, 4, SNIFF_SSH);
	expect_str("SSH-1.99-x\r\n", SNIFF_SSH);
	/* SS could still be an HTTP method */
	expect_str("SSX", SNIFF_NEED_MORE);
	expect_str("SSX-", SNIFF_NEED_MORE);
	expect_str("SSh", SNIFF_OTHER);
	expect(NULL, 0, SNIFF_NEED_MORE);
	expect("", 0, SNIFF_NEED_MORE);
	expect("\x00", 1, SNIFF_OTHER);
	expect_str("\xff\xfe", SNIFF_OTHER);
	expect_str("hello", SNIFF_OTHER);
	for (int round = 0; round < 1000; round++) {
		enum sniff_proto p;

		for (size_t i = 0; i < sizeof(rnd); i++) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			rnd[i] = (unsigned char)x;
		}
		p = sniff_detect(rnd, sizeof(rnd));
		assert_int_equal(p, SNIFF_OTHER);
		for (size_t k = 0; k < sizeof(rnd); k++) {
			enum sniff_proto q = sniff_detect(rnd, k);
			assert_true(q == SNIFF_NEED_MORE || q == p);
		}
	}
}

/*
 * Inputs the fuzzer (tests/fuzz/fuzz_sniff.c) found, and their kin: bytes
 * sniff_detect already calls other must not leave sniff_client_hello
 * waiting for more (a partial record header was judged only once whole).
 */
static void
test_fuzz_regressions(void **state)
{
	static const struct {
		const char *b;
		size_t len;
	} other[] = {
	    {"\x95\x0a\x00", 3},
	    {"\x16\x04", 2},
	    {"\x16\x03\x11", 3},
	    {"\x16\x03\x01\x41", 4},
	    {"\x16\x03\x01\x00\x00", 5},
	    {"\x16\x03\x01\x00\x05\x02", 6},
	};
	struct sniff_hello h;

	(void)state;
	for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
		const unsigned char *b = (const unsigned char *)other[i].b;

		assert_int_equal(sniff_detect(b, other[i].len), SNIFF_OTHER);
		assert_int_equal(sniff_client_hello(b, other[i].len, &h), -1);
	}
}

static void
test_names(void **state)
{
	(void)state;
	assert_string_equal(sniff_name(SNIFF_TLS), "tls");
	assert_string_equal(sniff_name(SNIFF_MMTLS), "mmtls");
	assert_string_equal(sniff_name(SNIFF_H2), "h2");
	assert_string_equal(sniff_name(SNIFF_HTTP), "http");
	assert_string_equal(sniff_name(SNIFF_SSH), "ssh");
	assert_string_equal(sniff_name(SNIFF_OTHER), "other");
	assert_string_equal(sniff_name(SNIFF_NEED_MORE), "unknown");
	assert_string_equal(sniff_name((enum sniff_proto)42), "unknown");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_openssl_hello),
	    cmocka_unit_test(test_openssl_hello_split),
	    cmocka_unit_test(test_hello_many_records),
	    cmocka_unit_test(test_hello_big),
	    cmocka_unit_test(test_hello_fields),
	    cmocka_unit_test(test_hello_malformed),
	    cmocka_unit_test(test_hello_mutations),
	    cmocka_unit_test(test_mmtls),
	    cmocka_unit_test(test_tls_header),
	    cmocka_unit_test(test_h2),
	    cmocka_unit_test(test_http),
	    cmocka_unit_test(test_ssh_and_other),
	    cmocka_unit_test(test_fuzz_regressions),
	    cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests_name("sniff", tests, NULL, NULL);
}
