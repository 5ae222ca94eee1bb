/*
 * Unit tests for filters/mmtls.c: a synthetic longlink stream shaped like
 * Citizen Lab's captures (0-RTT ClientHello, encrypted extensions, data,
 * alert), fed whole, byte by byte and split at every offset; old F1 03
 * clients; garbage; zero-length and over-long records.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/mmtls.h"

/* A byte buffer to build streams in. */
struct bb {
	size_t n;
	unsigned char b[1 << 17];
};

static void
put8(struct bb *b, unsigned v)
{
	assert_true(b->n < sizeof(b->b));
	b->b[b->n++] = (unsigned char)v;
}

static void
put_fill(struct bb *b, size_t n)
{
	assert_true(n <= sizeof(b->b) - b->n);
	for (size_t i = 0; i < n; i++)
		b->b[b->n++] = (unsigned char)(0xa5 ^ i);
}

/* A record of len payload bytes; hello records get the plaintext framing. */
static void
put_rec(struct bb *b, unsigned type, unsigned ver, size_t len, int hs)
{
	put8(b, type);
	put8(b, ver >> 8);
	put8(b, ver);
	put8(b, len >> 8);
	put8(b, len);
	if (hs > 0) {
		assert_true(len >= 5);
		put8(b, (len - 4) >> 24);
		put8(b, (len - 4) >> 16);
		put8(b, (len - 4) >> 8);
		put8(b, len - 4);
		put8(b, (unsigned)hs);
		put_fill(b, len - 5);
	} else {
		put_fill(b, len);
	}
}

/* What the callbacks saw. */
struct seen {
	size_t n;
	struct mmtls_record r[256];
};

static void
seen_cb(const struct mmtls_record *rec, void *arg)
{
	struct seen *s = arg;

	assert_true(s->n < sizeof(s->r) / sizeof(s->r[0]));
	s->r[s->n++] = *rec;
}

static void
seen_eq(const struct seen *a, const struct seen *b)
{
	assert_int_equal(a->n, b->n);
	for (size_t i = 0; i < a->n; i++) {
		assert_int_equal(a->r[i].type, b->r[i].type);
		assert_int_equal(a->r[i].version, b->r[i].version);
		assert_int_equal(a->r[i].length, b->r[i].length);
		assert_int_equal(a->r[i].hs_type, b->r[i].hs_type);
	}
}

/* The 0-RTT longlink request from Citizen Lab's mmtls-network-format.md. */
static void
longlink(struct bb *b)
{
	b->n = 0;
	put_rec(b, 0x19, 0xf104, 0xa1, 1); /* early ClientHello */
	put_rec(b, 0x19, 0xf104, 0x24, 0); /* encrypted extensions */
	put_rec(b, 0x17, 0xf104, 0xc9, 0);
	put_rec(b, 0x17, 0xf104, 0x1234, 0);
	put_rec(b, 0x15, 0xf104, 0x17, 0);
	put_rec(b, 0x16, 0xf104, 0x16e, 1); /* a later 1-RTT ClientHello */
	put_rec(b, 0x16, 0xf104, 0x5e, 0);  /* encrypted certificate */
	put_rec(b, 0x17, 0xf104, 0, 0);     /* zero-length */
	put_rec(b, 0x17, 0xf104, MMTLS_MAX_RECORD, 0);
}

static void
check_longlink(const struct mmtls_parser *p, const struct seen *s)
{
	static const struct {
		uint8_t type;
		uint32_t len;
		uint8_t hs;
	} want[] = {{0x19, 0xa1, 1}, {0x19, 0x24, 0}, {0x17, 0xc9, 0},
	    {0x17, 0x1234, 0}, {0x15, 0x17, 0}, {0x16, 0x16e, 1},
	    {0x16, 0x5e, 0}, {0x17, 0, 0}, {0x17, MMTLS_MAX_RECORD, 0}};

	assert_int_equal(s->n, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < s->n; i++) {
		assert_int_equal(s->r[i].type, want[i].type);
		assert_int_equal(s->r[i].version, 0xf104);
		assert_int_equal(s->r[i].length, want[i].len);
		assert_int_equal(s->r[i].hs_type, want[i].hs);
	}
	assert_int_equal(p->bad, 0);
	assert_int_equal(p->records, 9);
	assert_int_equal(p->n_early, 2);
	assert_int_equal(p->n_data, 4);
	assert_int_equal(p->n_alert, 1);
	assert_int_equal(p->n_handshake, 2);
	assert_int_equal(p->handshake_seen, 1);
	assert_int_equal(p->early_seen, 1);
}

static void
test_whole(void **state)
{
	static struct bb b;
	struct mmtls_parser p;
	struct seen s = {0};

	(void)state;
	longlink(&b);
	mmtls_init(&p);
	assert_int_equal(mmtls_feed(&p, b.b, b.n, seen_cb, &s), 0);
	check_longlink(&p, &s);
	/* a NULL callback only counts */
	mmtls_init(&p);
	assert_int_equal(mmtls_feed(&p, b.b, b.n, NULL, NULL), 0);
	assert_int_equal(p.records, 9);
}

static void
test_byte_by_byte(void **state)
{
	static struct bb b;
	struct mmtls_parser p;
	struct seen s = {0};

	(void)state;
	longlink(&b);
	mmtls_init(&p);
	for (size_t i = 0; i < b.n; i++)
		assert_int_equal(mmtls_feed(&p, b.b + i, 1, seen_cb, &s), 0);
	assert_int_equal(mmtls_feed(&p, b.b, 0, seen_cb, &s), 0);
	check_longlink(&p, &s);
}

/* Every two-way split, and a three-way split around every header. */
static void
test_every_split(void **state)
{
	static struct bb b;
	static struct seen whole, s;
	struct mmtls_parser p;

	(void)state;
	longlink(&b);
	memset(&whole, 0, sizeof(whole));
	mmtls_init(&p);
	assert_int_equal(mmtls_feed(&p, b.b, b.n, seen_cb, &whole), 0);
	for (size_t k = 0; k <= b.n; k++) {
		memset(&s, 0, sizeof(s));
		mmtls_init(&p);
		assert_int_equal(mmtls_feed(&p, b.b, k, seen_cb, &s), 0);
		assert_int_equal(
		    mmtls_feed(&p, b.b + k, b.n - k, seen_cb, &s), 0);
		seen_eq(&s, &whole);
		check_longlink(&p, &s);
	}
	for (size_t k = 0; k + 3 <= b.n && k < 2000; k++) {
		memset(&s, 0, sizeof(s));
		mmtls_init(&p);
		assert_int_equal(mmtls_feed(&p, b.b, k, seen_cb, &s), 0);
		assert_int_equal(mmtls_feed(&p, b.b + k, 3, seen_cb, &s), 0);
		assert_int_equal(
		    mmtls_feed(&p, b.b + k + 3, b.n - k - 3, seen_cb, &s), 0);
		seen_eq(&s, &whole);
	}
}

/* Records reported as soon as their heads are in, not at the payload end. */
static void
test_early_report(void **state)
{
	struct bb b;
	struct mmtls_parser p;
	struct seen s = {0};

	(void)state;
	b.n = 0;
	put_rec(&b, 0x16, 0xf104, 0xd4, 2); /* ServerHello */
	put_rec(&b, 0x17, 0xf104, 0x157, 0);
	mmtls_init(&p);
	assert_int_equal(mmtls_feed(&p, b.b, 9, seen_cb, &s), 0);
	assert_int_equal(s.n, 0);
	assert_int_equal(mmtls_feed(&p, b.b + 9, 1, seen_cb, &s), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.r[0].hs_type, 2);
	assert_int_equal(
	    mmtls_feed(&p, b.b + 10, 5 + 0xd4 - 10, seen_cb, &s), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(mmtls_feed(&p, b.b + 5 + 0xd4, 5, seen_cb, &s), 0);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.r[1].type, MMTLS_DATA);
	assert_int_equal(s.r[1].length, 0x157);
	assert_int_equal(p.handshake_seen, 1);
	assert_int_equal(p.early_seen, 0);
}

static void
test_old_version(void **state)
{
	struct bb b;
	struct mmtls_parser p;
	struct seen s = {0};

	(void)state;
	b.n = 0;
	put_rec(&b, 0x16, 0xf103, 0x40, 1);
	put_rec(&b, 0x17, 0xf103, 0x20, 0);
	put_rec(&b, 0x15, 0xf103, 0x17, 0);
	mmtls_init(&p);
	assert_int_equal(mmtls_feed(&p, b.b, b.n, seen_cb, &s), 0);
	assert_int_equal(s.n, 3);
	for (size_t i = 0; i < s.n; i++)
		assert_int_equal(s.r[i].version, 0xf103);
	assert_int_equal(s.r[0].hs_type, 1);
	assert_int_equal(p.early_seen, 0);
}

/* Garbage at the start: nothing reported, and nothing after either. */
static void
test_garbage_start(void **state)
{
	static const unsigned char tls[] = {0x16, 0x03, 0x01, 0x00, 0x05};
	static const unsigned char http[] = "GET / HTTP/1.1\r\n";
	static const unsigned char badver[] = {0x17, 0xf1, 0x05, 0, 0};
	static const unsigned char cc[] = {0x14, 0xf1, 0x04, 0, 1, 1};
	const unsigned char *cases[] = {tls, http, badver, cc};
	struct bb b;
	struct mmtls_parser p;
	struct seen s = {0};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		mmtls_init(&p);
		assert_int_equal(mmtls_feed(&p, cases[i], 5, seen_cb, &s), -1);
		assert_int_equal(p.bad, 1);
		assert_int_equal(p.records, 0);
	}
	/* refused at the first wrong byte, before the header is complete */
	mmtls_init(&p);
	assert_int_equal(mmtls_feed(&p, http, 1, seen_cb, &s), -1);
	/* and a bad parser stays bad, even for valid bytes */
	b.n = 0;
	put_rec(&b, 0x17, 0xf104, 3, 0);
	assert_int_equal(mmtls_feed(&p, b.b, b.n, seen_cb, &s), -1);
	assert_int_equal(s.n, 0);
	assert_int_equal(p.records, 0);
}

/* Garbage after valid records: those before are kept, counts stop. */
static void
test_garbage_after(void **state)
{
	struct bb b;
	struct mmtls_parser p;
	struct seen s = {0};
	size_t good;

	(void)state;
	b.n = 0;
	put_rec(&b, 0x16, 0xf104, 0x20, 1);
	put_rec(&b, 0x17, 0xf104, 0x30, 0);
	good = b.n;
	put8(&b, 0x17);
	put8(&b, 0xf1);
	put8(&b, 0x00); /* not a version */
	put_rec(&b, 0x17, 0xf104, 0x30, 0);
	for (size_t k = 0; k <= b.n; k++) {
		int r1, r2;

		memset(&s, 0, sizeof(s));
		mmtls_init(&p);
		r1 = mmtls_feed(&p, b.b, k, seen_cb, &s);
		r2 = mmtls_feed(&p, b.b + k, b.n - k, seen_cb, &s);
		assert_int_equal(r1, k >= good + 3 ? -1 : 0);
		assert_int_equal(r2, -1);
		assert_int_equal(p.bad, 1);
		assert_int_equal(s.n, 2);
		assert_int_equal(p.records, 2);
		assert_int_equal(p.n_data, 1);
		assert_int_equal(p.n_handshake, 1);
	}
}

/* Zero-length and short hello records: no peek past their end. */
static void
test_zero_length(void **state)
{
	struct bb b;
	struct mmtls_parser p;
	struct seen s = {0};

	(void)state;
	b.n = 0;
	put_rec(&b, 0x16, 0xf104, 0, 0);
	put_rec(&b, 0x19, 0xf104, 0, 0);
	put_rec(&b, 0x15, 0xf104, 0, 0);
	put_rec(&b, 0x17, 0xf104, 0, 0);
	put_rec(&b, 0x16, 0xf104, 3, 0);
	put_rec(&b, 0x16, 0xf104, 5, 0); /* section length 0xa5a4a7a6 */
	put_rec(&b, 0x19, 0xf104, 5, 1);
	mmtls_init(&p);
	for (size_t i = 0; i < b.n; i++)
		assert_int_equal(mmtls_feed(&p, b.b + i, 1, seen_cb, &s), 0);
	assert_int_equal(s.n, 7);
	assert_int_equal(p.records, 7);
	assert_int_equal(s.r[4].length, 3);
	assert_int_equal(s.r[4].hs_type, 0);
	assert_int_equal(s.r[5].hs_type, 0);
	assert_int_equal(s.r[6].hs_type, 1);
	assert_int_equal(p.n_handshake, 3);
	assert_int_equal(p.n_early, 2);
	assert_int_equal(p.have, 0);
	assert_int_equal(p.skip, 0);
}

static void
test_huge_length(void **state)
{
	struct bb b;
	struct mmtls_parser p;
	struct seen s = {0};

	(void)state;
	b.n = 0;
	put8(&b, 0x17);
	put8(&b, 0xf1);
	put8(&b, 0x04);
	put8(&b, 0xff);
	put8(&b, 0xff);
	mmtls_init(&p);
	assert_int_equal(mmtls_feed(&p, b.b, 4, seen_cb, &s), 0);
	assert_int_equal(mmtls_feed(&p, b.b + 4, 1, seen_cb, &s), -1);
	assert_int_equal(s.n, 0);
	/* one past the bound */
	b.n = 3;
	put8(&b, (MMTLS_MAX_RECORD + 1) >> 8);
	put8(&b, (MMTLS_MAX_RECORD + 1) & 0xff);
	mmtls_init(&p);
	assert_int_equal(mmtls_feed(&p, b.b, b.n, seen_cb, &s), -1);
	/* a caller may raise the bound */
	mmtls_init(&p);
	p.max_length = 0xffff;
	assert_int_equal(mmtls_feed(&p, b.b, b.n, seen_cb, &s), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.r[0].length, MMTLS_MAX_RECORD + 1);
}

static void
test_names(void **state)
{
	(void)state;
	assert_string_equal(mmtls_type_name(MMTLS_ALERT), "alert");
	assert_string_equal(mmtls_type_name(MMTLS_HANDSHAKE), "handshake");
	assert_string_equal(mmtls_type_name(MMTLS_DATA), "data");
	assert_string_equal(mmtls_type_name(MMTLS_EARLY), "early-data");
	assert_string_equal(mmtls_type_name(0x14), "unknown");
	assert_string_equal(mmtls_type_name(0), "unknown");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_whole),
	    cmocka_unit_test(test_byte_by_byte),
	    cmocka_unit_test(test_every_split),
	    cmocka_unit_test(test_early_report),
	    cmocka_unit_test(test_old_version),
	    cmocka_unit_test(test_garbage_start),
	    cmocka_unit_test(test_garbage_after),
	    cmocka_unit_test(test_zero_length),
	    cmocka_unit_test(test_huge_length),
	    cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
