/*
 * Unit tests for filters/newdns.c: a newgetdns response shaped like
 * dns.weixin.qq.com's (XML declaration, several top-level elements, domains
 * with timeouts, builtiniplist, clientip), raw-deflated as the server sends
 * it, plain, zlib-wrapped; truncated and malformed bodies; a zip bomb;
 * invalid addresses and names; request recognition.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ZLIB_CONST /* as newdns.c, included below, wants it */
#include <zlib.h>

/*
 * The module is included, not linked, so that its realloc can be made to
 * fail on demand: test_oom walks every allocation it makes.
 */
static long realloc_fail_at = -1; /* the call that fails; -1 never */
static long realloc_calls;

static void *
oom_realloc(void *p, size_t n)
{
	if (realloc_fail_at >= 0 && realloc_calls++ == realloc_fail_at)
		return NULL;
	return realloc(p, n);
}

#define realloc oom_realloc
#include "filters/newdns.c"
#undef realloc

static const char doc[] =
    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
    "<dns>\n"
    " <domainlist>\n"
    "  <domain name=\"short.weixin.qq.com\" timeout=\"1800\">\n"
    "   <ip>183.3.234.107</ip>\n"
    "   <ip> 183.3.235.71 </ip>\n"
    "   <ip>\n\t58.251.111.105\n</ip>\n"
    "  </domain>\n"
    "  <domain name=\"Long.Weixin.QQ.com\" timeout=\"600\" ver=\"2\">\n"
    "   <ip>183.3.224.139</ip>\n"
    "   <ip>240e:ff:e020:9ae::16</ip>\n"
    "   <ip>58.251.82.206</ip>\n"
    "  </domain>\n"
    " </domainlist>\n"
    "</dns>\n"
    "<builtiniplist>\n"
    " <domain name=\"dns.weixin.qq.com\"><ip>121.51.130.113</ip></domain>\n"
    "</builtiniplist>\n"
    "<clientip>203.0.113.7</clientip>\n";

static const struct {
	const char *domain, *ip;
	int ttl, builtin;
} want[] = {
    {"short.weixin.qq.com", "183.3.234.107", 1800, 0},
    {"short.weixin.qq.com", "183.3.235.71", 1800, 0},
    {"short.weixin.qq.com", "58.251.111.105", 1800, 0},
    {"long.weixin.qq.com", "183.3.224.139", 600, 0},
    {"long.weixin.qq.com", "240e:ff:e020:9ae::16", 600, 0},
    {"long.weixin.qq.com", "58.251.82.206", 600, 0},
    {"dns.weixin.qq.com", "121.51.130.113", -1, 1},
};

/* in deflated with windowBits wbits (-15 raw, 15 zlib); caller frees. */
static unsigned char *
squeeze(const void *in, size_t len, int wbits, size_t *outlen)
{
	z_stream zs;
	unsigned char *out;
	size_t cap;

	memset(&zs, 0, sizeof(zs));
	assert_int_equal(
	    deflateInit2(&zs, 9, Z_DEFLATED, wbits, 9, Z_DEFAULT_STRATEGY),
	    Z_OK);
	cap = deflateBound(&zs, len);
	out = malloc(cap);
	assert_non_null(out);
	zs.next_in = in;
	zs.avail_in = (uInt)len;
	zs.next_out = out;
	zs.avail_out = (uInt)cap;
	assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
	*outlen = zs.total_out;
	deflateEnd(&zs);
	return out;
}

static void
check_doc(const struct newdns_result *r)
{
	assert_int_equal(r->n, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < r->n; i++) {
		assert_string_equal(r->answers[i].domain, want[i].domain);
		assert_string_equal(r->answers[i].ip, want[i].ip);
		assert_int_equal(r->answers[i].ttl, want[i].ttl);
		assert_int_equal(r->answers[i].builtin, want[i].builtin);
	}
	assert_string_equal(r->clientip, "203.0.113.7");
}

static int
parse(const void *b, size_t len, int deflated, struct newdns_result *r,
    char *err, size_t errlen)
{
	return newdns_parse(b, len, deflated, NEWDNS_MAX_OUT,
	    NEWDNS_MAX_ANSWERS, r, err, errlen);
}

static void
test_raw_deflate(void **state)
{
	struct newdns_result r;
	unsigned char *z;
	size_t zlen;
	char err[256];

	(void)state;
	z = squeeze(doc, sizeof(doc) - 1, -15, &zlen);
	assert_int_equal(parse(z, zlen, 1, &r, err, sizeof(err)), 0);
	check_doc(&r);
	newdns_result_free(&r);
	assert_null(r.answers);
	assert_int_equal(r.n, 0);
	newdns_result_free(NULL);
	free(z);
}

static void
test_plain(void **state)
{
	struct newdns_result r;
	char err[256];

	(void)state;
	assert_int_equal(
	    parse(doc, sizeof(doc) - 1, 0, &r, err, sizeof(err)), 0);
	check_doc(&r);
	newdns_result_free(&r);
	/* without the declaration, and with a BOM before it */
	assert_int_equal(
	    parse(strchr(doc, '\n') + 1, strlen(strchr(doc, '\n') + 1), 0, &r,
		err, sizeof(err)),
	    0);
	check_doc(&r);
	newdns_result_free(&r);
	{
		char bom[sizeof(doc) + 3];

		memcpy(bom, "\xef\xbb\xbf", 3);
		memcpy(bom + 3, doc, sizeof(doc));
		assert_int_equal(
		    parse(bom, strlen(bom), 0, &r, err, sizeof(err)), 0);
		check_doc(&r);
		newdns_result_free(&r);
	}
}

static void
test_zlib_fallback(void **state)
{
	struct newdns_result r;
	unsigned char *z;
	size_t zlen;
	char err[256];

	(void)state;
	z = squeeze(doc, sizeof(doc) - 1, 15, &zlen);
	assert_true(z[0] == 0x78);
	assert_int_equal(parse(z, zlen, 1, &r, err, sizeof(err)), 0);
	check_doc(&r);
	newdns_result_free(&r);
	/* a truncated zlib stream fails with the raw error */
	assert_int_equal(parse(z, zlen / 2, 1, &r, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "deflate"));
	free(z);
}

/* Every truncation of the deflated body fails cleanly. */
static void
test_truncated(void **state)
{
	struct newdns_result r;
	unsigned char *z;
	size_t zlen;
	char err[256];

	(void)state;
	z = squeeze(doc, sizeof(doc) - 1, -15, &zlen);
	for (size_t k = 0; k < zlen; k++) {
		err[0] = '\0';
		assert_int_equal(parse(z, k, 1, &r, err, sizeof(err)), -1);
		assert_true(err[0] != '\0');
		assert_null(r.answers);
		assert_int_equal(r.n, 0);
	}
	assert_int_equal(parse(z, 0, 1, &r, err, sizeof(err)), -1);
	assert_string_equal(err, "truncated deflate stream");
	/* the plain document cut short is malformed XML */
	for (size_t k = 0; k < sizeof(doc) - 1; k += 7) {
		if (parse(doc, k, 0, &r, err, sizeof(err)) == 0) {
			/* only cuts that leave whole elements may pass */
			assert_true(
			    k < 40 || doc[k - 1] == '>' || doc[k - 1] == '\n');
			newdns_result_free(&r);
		}
	}
	assert_int_equal(parse(doc, 120, 0, &r, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "malformed XML"));
	free(z);
}

static void
test_garbage_deflate(void **state)
{
	static const unsigned char junk[] = {0xff, 0xff, 0xff, 0xff, 0x00};
	struct newdns_result r;
	char err[256];

	(void)state;
	assert_int_equal(
	    parse(junk, sizeof(junk), 1, &r, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "deflate"));
	/* plain XML labelled deflate is not guessed at */
	assert_int_equal(
	    parse(doc, sizeof(doc) - 1, 1, &r, err, sizeof(err)), -1);
	/* a NULL err is allowed */
	assert_int_equal(parse(junk, sizeof(junk), 1, &r, NULL, 0), -1);
}

static void
test_malformed_xml(void **state)
{
	static const char *bad[] = {
	    "<dns><domainlist><domain name=\"a.qq.com\"><ip>1.2.3.4</ip>",
	    "<dns></dsn>",
	    "<dns><ip>1.2.3.4</ip></dns></r><x/>",
	    "<?xml version=\"1.0\"",
	    "<dns>\x01</dns>",
	    "<!DOCTYPE r [<!ENTITY a \"b\">]><dns>&a;</dns>",
	    "<dns attr=x/>",
	    "<dns>&undefined;</dns>",
	    "<dns>\xff\xfe</dns>",
	};
	struct newdns_result r;
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(
		    parse(bad[i], strlen(bad[i]), 0, &r, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "malformed XML"));
		assert_null(r.answers);
	}
	/* an empty body is a document with no answers */
	assert_int_equal(parse("", 0, 0, &r, err, sizeof(err)), 0);
	assert_int_equal(r.n, 0);
	assert_string_equal(r.clientip, "");
	assert_int_equal(parse(NULL, 0, 0, &r, err, sizeof(err)), 0);
}

/* 100 MiB of spaces deflate to ~100 KiB; inflating stops at max_out. */
static void
test_zip_bomb(void **state)
{
	const size_t big = (size_t)100 << 20;
	struct newdns_result r;
	unsigned char *chunk, *z;
	z_stream zs;
	size_t cap = 1 << 20;
	char err[256];
	clock_t t0;

	(void)state;
	chunk = malloc(1 << 20);
	z = malloc(cap);
	assert_non_null(chunk);
	assert_non_null(z);
	memset(chunk, ' ', 1 << 20);
	memcpy(chunk, "<dns>", 5);
	memset(&zs, 0, sizeof(zs));
	assert_int_equal(
	    deflateInit2(&zs, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY), Z_OK);
	zs.next_out = z;
	zs.avail_out = (uInt)cap;
	for (size_t done = 0; done < big; done += 1 << 20) {
		int last = done + (1 << 20) >= big;

		zs.next_in = chunk;
		zs.avail_in = 1 << 20;
		assert_int_equal(deflate(&zs, last ? Z_FINISH : Z_NO_FLUSH),
		    last ? Z_STREAM_END : Z_OK);
		assert_int_equal(zs.avail_in, 0);
		memset(chunk, ' ', 5);
	}
	assert_true(zs.total_out < cap);
	t0 = clock();
	assert_int_equal(parse(z, zs.total_out, 1, &r, err, sizeof(err)), -1);
	assert_true((clock() - t0) / CLOCKS_PER_SEC < 2);
	assert_non_null(strstr(err, "too large"));
	assert_null(r.answers);
	/* the cap applies to plain bodies too */
	assert_int_equal(
	    newdns_parse(chunk, 1 << 20, 0, 1000, 10, &r, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "too large"));
	deflateEnd(&zs);
	free(chunk);
	free(z);
}

static void
test_max_answers(void **state)
{
	struct newdns_result r;
	char err[256];

	(void)state;
	assert_int_equal(
	    newdns_parse((const unsigned char *)doc, sizeof(doc) - 1, 0,
		NEWDNS_MAX_OUT, 6, &r, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "too large"));
	assert_null(r.answers);
	assert_int_equal(
	    newdns_parse((const unsigned char *)doc, sizeof(doc) - 1, 0,
		NEWDNS_MAX_OUT, 7, &r, err, sizeof(err)),
	    0);
	assert_int_equal(r.n, 7);
	newdns_result_free(&r);
}

/* max_out is the most accepted, inflated or plain, to the byte. */
static void
test_max_out_edge(void **state)
{
	const size_t n = sizeof(doc) - 1;
	struct newdns_result r;
	unsigned char *z[2];
	size_t zlen[2];
	char err[256];

	(void)state;
	z[0] = squeeze(doc, n, -15, &zlen[0]);
	z[1] = squeeze(doc, n, 15, &zlen[1]);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(
		    newdns_parse(z[i], zlen[i], 1, n, 10, &r, err, sizeof(err)),
		    0);
		check_doc(&r);
		newdns_result_free(&r);
		/* the stream ends right at max_out + 1 bytes */
		assert_int_equal(newdns_parse(z[i], zlen[i], 1, n - 1, 10, &r,
				     err, sizeof(err)),
		    -1);
		assert_non_null(strstr(err, "too large"));
		assert_int_equal(
		    newdns_parse(z[i], zlen[i], 1, 0, 10, &r, err, sizeof(err)),
		    -1);
		assert_non_null(strstr(err, "too large"));
		free(z[i]);
	}
	assert_int_equal(newdns_parse((const unsigned char *)doc, n, 0, n, 10,
			     &r, err, sizeof(err)),
	    0);
	newdns_result_free(&r);
	assert_int_equal(newdns_parse((const unsigned char *)doc, n, 0, n - 1,
			     10, &r, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "too large"));
}

/* Bad addresses and names are skipped; the rest of the document stands. */
static void
test_invalid_skipped(void **state)
{
	static const char d[] =
	    "<dns><domainlist>"
	    "<domain name=\"a.qq.com\" timeout=\"x\">"
	    "<ip>1.2.3.4</ip><ip>1.2.3.256</ip><ip>not-an-ip</ip><ip></ip>"
	    "<ip>1.2.3.4 5</ip><ip>::ffff:1.2.3.4</ip>"
	    "<ip>1111111111111111111111111111111111111111111111111111111111"
	    "111111111111111111111111111111111111111111111111111111111111"
	    "111111111111111111111111111111111111111111111111111111111111"
	    "</ip>"
	    "<ip>5.6.7.8"
	    "                                                            "
	    "                                                            "
	    "                                                            "
	    "</ip>"
	    "</domain>"
	    "<domain name=\"bad name\"><ip>9.9.9.9</ip></domain>"
	    "<domain name=\"\"><ip>9.9.9.8</ip></domain>"
	    "<domain name=\"caf\xc3\xa9.example\"><ip>9.9.9.7</ip></domain>"
	    "<domain><ip>9.9.9.6</ip></domain>"
	    "<domain name=\"b.qq.com\" timeout=\"99999999999\">"
	    "<ip>1.1.1.1<!-- split --></ip>"
	    "</domain>"
	    "</domainlist></dns>"
	    "<ip>8.8.8.8</ip>"
	    "<builtiniplist><builtin name=\" C.QQ.COM \" timeout=\" 5 \">"
	    "<ip>2.2.2.2</ip></builtin>"
	    "<ip domain=\"d.qq.com\">3.3.3.3</ip></builtiniplist>"
	    "<clientip>garbage</clientip>";
	static const struct {
		const char *domain, *ip;
		int ttl, builtin;
	} w[] = {
	    {"a.qq.com", "1.2.3.4", -1, 0},
	    {"a.qq.com", "::ffff:1.2.3.4", -1, 0},
	    {"a.qq.com", "5.6.7.8", -1, 0},
	    {"b.qq.com", "1.1.1.1", -1, 0},
	    {"c.qq.com", "2.2.2.2", 5, 1},
	    {"d.qq.com", "3.3.3.3", -1, 1},
	};
	struct newdns_result r;
	char err[256];

	(void)state;
	assert_int_equal(parse(d, sizeof(d) - 1, 0, &r, err, sizeof(err)), 0);
	assert_int_equal(r.n, sizeof(w) / sizeof(w[0]));
	for (size_t i = 0; i < r.n; i++) {
		assert_string_equal(r.answers[i].domain, w[i].domain);
		assert_string_equal(r.answers[i].ip, w[i].ip);
		assert_int_equal(r.answers[i].ttl, w[i].ttl);
		assert_int_equal(r.answers[i].builtin, w[i].builtin);
	}
	assert_string_equal(r.clientip, "");
	newdns_result_free(&r);
}

/* Whitespace past the text cap, then more text: not an address. */
static void
test_long_text(void **state)
{
	char d[512];
	struct newdns_result r;
	char err[256];
	int n;

	(void)state;
	n = snprintf(d, sizeof(d),
	    "  <?xml version='1.0'?><domain name='a.qq.com'><ip>1.2.3.4%*s5"
	    "</ip><ip>1.2.3.5%*s</ip></domain>",
	    NEWDNS_TEXT, "", NEWDNS_TEXT, "");
	assert_true(n > 0 && (size_t)n < sizeof(d));
	assert_int_equal(parse(d, (size_t)n, 0, &r, err, sizeof(err)), 0);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.answers[0].ip, "1.2.3.5");
	newdns_result_free(&r);
}

/* Every allocation of ours failing in turn: -1, a message, nothing leaked. */
static void
test_oom(void **state)
{
	struct newdns_result r;
	unsigned char *z;
	size_t zlen;
	char err[256];
	long i;
	int rc;

	(void)state;
	z = squeeze(doc, sizeof(doc) - 1, -15, &zlen);
	for (i = 0;; i++) {
		realloc_calls = 0;
		realloc_fail_at = i;
		rc = parse(z, zlen, 1, &r, err, sizeof(err));
		if (rc == 0)
			break;
		assert_string_equal(err, "out of memory");
		assert_null(r.answers);
	}
	realloc_fail_at = -1;
	assert_true(i >= 2); /* the inflate buffer and the answers */
	check_doc(&r);
	newdns_result_free(&r);
	free(z);
}

/* An <ip> split across expat's character-data callbacks and chunks. */
static void
test_split_text(void **state)
{
	static const char d[] = "<domain name=\"x.qq.com\"><ip>10.&#48;.0."
				"1</ip><ip>fe80::&#x31;</ip></domain>";
	struct newdns_result r;
	char err[256];

	(void)state;
	assert_int_equal(parse(d, sizeof(d) - 1, 0, &r, err, sizeof(err)), 0);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.answers[0].ip, "10.0.0.1");
	assert_string_equal(r.answers[1].ip, "fe80::1");
	newdns_result_free(&r);
}

static void
test_is_request(void **state)
{
	(void)state;
	assert_int_equal(newdns_is_request("GET",
			     "/cgi-bin/micromsg-bin/newgetdns?uin=0&clientip="
			     "0&scene=0&net=1"),
	    1);
	assert_int_equal(
	    newdns_is_request("GET", "/cgi-bin/micromsg-bin/newgetdns"), 1);
	assert_int_equal(newdns_is_request("GET",
			     "http://dns.weixin.qq.com/cgi-bin/micromsg-bin/"
			     "newgetdns?uin=1"),
	    1);
	assert_int_equal(
	    newdns_is_request("GET", "HTTP://dns.weixin.qq.com"), 0);
	assert_int_equal(
	    newdns_is_request("POST", "/cgi-bin/micromsg-bin/newgetdns"), 0);
	assert_int_equal(
	    newdns_is_request("get", "/cgi-bin/micromsg-bin/newgetdns"), 0);
	assert_int_equal(
	    newdns_is_request("GET", "/cgi-bin/micromsg-bin/getdns"), 0);
	assert_int_equal(newdns_is_request("GET", "/"), 0);
	assert_int_equal(newdns_is_request(NULL, "/"), 0);
	assert_int_equal(newdns_is_request("GET", NULL), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_raw_deflate),
	    cmocka_unit_test(test_plain),
	    cmocka_unit_test(test_zlib_fallback),
	    cmocka_unit_test(test_truncated),
	    cmocka_unit_test(test_garbage_deflate),
	    cmocka_unit_test(test_malformed_xml),
	    cmocka_unit_test(test_zip_bomb),
	    cmocka_unit_test(test_max_answers),
	    cmocka_unit_test(test_max_out_edge),
	    cmocka_unit_test(test_invalid_skipped),
	    cmocka_unit_test(test_split_text),
	    cmocka_unit_test(test_long_text),
	    cmocka_unit_test(test_oom),
	    cmocka_unit_test(test_is_request),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
