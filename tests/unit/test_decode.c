/* Unit tests for filters/decode.c: every coding, stacked, cut and broken. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <brotli/encode.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "filters/decode.h"

#define MIB (1024 * 1024)

/* Some text that compresses, n bytes. */
static unsigned char *
sample(size_t n)
{
	unsigned char *p = malloc(n);
	size_t i;

	assert_non_null(p);
	for (i = 0; i < n; i++)
		p[i] = (unsigned char)("the quick brown fox "[i % 20] +
		    (i / 997) % 3);
	return p;
}

/* deflate with window bits wbits (31 gzip, 15 zlib, -15 raw). */
static unsigned char *
zcompress(const unsigned char *in, size_t n, int wbits, size_t *outn)
{
	z_stream z;
	size_t room = deflateBound(NULL, n) + 64;
	unsigned char *out = malloc(room);

	assert_non_null(out);
	memset(&z, 0, sizeof(z));
	assert_int_equal(
	    deflateInit2(&z, 6, Z_DEFLATED, wbits, 8, Z_DEFAULT_STRATEGY),
	    Z_OK);
	z.next_in = (unsigned char *)(uintptr_t)in;
	z.avail_in = (uInt)n;
	z.next_out = out;
	z.avail_out = (uInt)room;
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	*outn = room - z.avail_out;
	deflateEnd(&z);
	return out;
}

static unsigned char *
brcompress(const unsigned char *in, size_t n, size_t *outn)
{
	size_t room = BrotliEncoderMaxCompressedSize(n) + 64;
	unsigned char *out = malloc(room);

	assert_non_null(out);
	*outn = room;
	assert_true(BrotliEncoderCompress(
	    5, 22, BROTLI_MODE_GENERIC, n, in, outn, out));
	return out;
}

static unsigned char *
zstdcompress(const unsigned char *in, size_t n, size_t *outn)
{
	size_t room = ZSTD_compressBound(n);
	unsigned char *out = malloc(room);

	assert_non_null(out);
	*outn = ZSTD_compress(out, room, in, n, 3);
	assert_false(ZSTD_isError(*outn));
	return out;
}

/* Decode enc and expect want[0..n) back whole. */
static void
expect_ok(const char *enc, const unsigned char *in, size_t inlen,
    const unsigned char *want, size_t n)
{
	unsigned char *out = NULL;
	size_t outlen = 0;
	char err[128];

	assert_int_equal(decode_body(enc, in, inlen, 4 * MIB, &out, &outlen,
			     err, sizeof(err)),
	    DECODE_OK);
	assert_int_equal(outlen, n);
	assert_memory_equal(out, want, n);
	assert_int_equal(out[n], '\0');
	free(out);
}

static void
test_each_coding(void **state)
{
	size_t n = 300000, cn;
	unsigned char *plain = sample(n), *c;

	(void)state;
	c = zcompress(plain, n, 16 + 15, &cn);
	expect_ok("gzip", c, cn, plain, n);
	expect_ok("X-GZIP", c, cn, plain, n);
	free(c);
	c = zcompress(plain, n, 15, &cn);
	expect_ok("deflate", c, cn, plain, n);
	free(c);
	c = zcompress(plain, n, -15, &cn); /* raw, as some servers send */
	expect_ok("deflate", c, cn, plain, n);
	free(c);
	c = brcompress(plain, n, &cn);
	expect_ok("br", c, cn, plain, n);
	free(c);
	c = zstdcompress(plain, n, &cn);
	expect_ok(" zstd ", c, cn, plain, n);
	free(c);
	free(plain);
}

static void
test_stacked_and_identity(void **state)
{
	size_t n = 50000, gn, bn;
	unsigned char *plain = sample(n), *g, *b, *out = NULL;
	size_t outlen;
	char err[128];

	(void)state;
	/* gzip applied first, then br: "gzip, br" */
	g = zcompress(plain, n, 16 + 15, &gn);
	b = brcompress(g, gn, &bn);
	expect_ok("gzip, br", b, bn, plain, n);
	expect_ok("identity,gzip,identity, br", b, bn, plain, n);
	/* the wrong order is an error, not garbage */
	assert_int_equal(decode_body("br, gzip", b, bn, MIB, &out, &outlen, err,
			     sizeof(err)),
	    DECODE_ERROR);
	assert_null(out);
	assert_true(strlen(err) > 0);
	assert_int_equal(
	    decode_body(NULL, plain, n, MIB, &out, &outlen, err, sizeof(err)),
	    DECODE_NONE);
	assert_int_equal(decode_body("identity", plain, n, MIB, &out, &outlen,
			     err, sizeof(err)),
	    DECODE_NONE);
	assert_int_equal(decode_body("compress", plain, n, MIB, &out, &outlen,
			     err, sizeof(err)),
	    DECODE_UNKNOWN);
	assert_non_null(strstr(err, "compress"));
	free(g);
	free(b);
	free(plain);
}

/* 64 MiB of zeros gzip to about 64 KiB: the cap stops it. */
static void
test_bomb_capped(void **state)
{
	size_t n = 64 * (size_t)MIB, cn, outlen = 0;
	unsigned char *zeros = calloc(1, n), *c, *out = NULL;
	char err[128];

	(void)state;
	assert_non_null(zeros);
	c = zcompress(zeros, n, 16 + 15, &cn);
	free(zeros);
	assert_true(cn < n / 100);
	assert_int_equal(
	    decode_body("gzip", c, cn, MIB, &out, &outlen, err, sizeof(err)),
	    DECODE_CAPPED);
	assert_int_equal(outlen, MIB);
	assert_int_equal(out[0], 0);
	assert_non_null(strstr(err, "cut"));
	free(out);
	free(c);
}

/* A capture truncated mid-stream gives what it holds, and says so. */
static void
test_truncated_and_corrupt(void **state)
{
	size_t n = 200000, cn, outlen = 0;
	unsigned char *plain = sample(n), *c, *out = NULL;
	char err[128];
	int k;

	(void)state;
	for (k = 0; k < 3; k++) {
		if (k == 0)
			c = zcompress(plain, n, 16 + 15, &cn);
		else if (k == 1)
			c = brcompress(plain, n, &cn);
		else
			c = zstdcompress(plain, n, &cn);
		assert_int_equal(
		    decode_body(k == 0 ? "gzip"
			    : k == 1   ? "br"
				       : "zstd",
			c, cn / 2, 4 * MIB, &out, &outlen, err, sizeof(err)),
		    DECODE_PARTIAL);
		/* zstd gives nothing of a block before its end */
		if (!((outlen > 0 || k == 2) && outlen < n))
			fail_msg("k=%d outlen=%zu cn=%zu", k, outlen, cn);
		assert_memory_equal(out, plain, outlen);
		free(out);
		out = NULL;
		/* garbage in the middle */
		memset(c + 20, 0xff, 64);
		assert_int_equal(
		    decode_body(k == 0 ? "gzip"
			    : k == 1   ? "br"
				       : "zstd",
			c, cn, 4 * MIB, &out, &outlen, err, sizeof(err)),
		    DECODE_ERROR);
		assert_null(out);
		free(c);
	}
	free(plain);
}

static void
test_empty(void **state)
{
	size_t cn, outlen = 1;
	unsigned char *c = zcompress((const unsigned char *)"", 0, 31, &cn);
	unsigned char *out = NULL;
	char err[64];

	(void)state;
	assert_int_equal(
	    decode_body("gzip", c, cn, MIB, &out, &outlen, err, sizeof(err)),
	    DECODE_OK);
	assert_int_equal(outlen, 0);
	assert_non_null(out);
	free(out);
	/* nothing at all under an encoding: it ends early */
	assert_int_equal(
	    decode_body("gzip", c, 0, MIB, &out, &outlen, err, sizeof(err)),
	    DECODE_PARTIAL);
	assert_int_equal(outlen, 0);
	free(out);
	free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_each_coding),
	    cmocka_unit_test(test_stacked_and_identity),
	    cmocka_unit_test(test_bomb_capped),
	    cmocka_unit_test(test_truncated_and_corrupt),
	    cmocka_unit_test(test_empty),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
