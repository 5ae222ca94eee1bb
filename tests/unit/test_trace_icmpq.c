/* icmpq: ICMP and ICMPv6 errors quoting a TCP probe, built here byte by
 * byte, and the packets that must not match. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "proxy/trace/icmpq.h"

static const unsigned char dst4[4] = {10, 200, 3, 2};
static const unsigned char dst6[16] = {
    0xfd, 0, 0, 0x20, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};

/* The TCP bytes a probe from sport to dport with sequence seq quotes. */
static size_t
put_tcp(unsigned char *p, uint16_t sport, uint16_t dport, uint32_t seq)
{
	p[0] = (unsigned char)(sport >> 8);
	p[1] = (unsigned char)sport;
	p[2] = (unsigned char)(dport >> 8);
	p[3] = (unsigned char)dport;
	p[4] = (unsigned char)(seq >> 24);
	p[5] = (unsigned char)(seq >> 16);
	p[6] = (unsigned char)(seq >> 8);
	p[7] = (unsigned char)seq;
	return 8;
}

/* An IPv4 header of ihl words, protocol proto, to dst. */
static size_t
put_ip4(unsigned char *p, int ihl, int proto, const unsigned char *dst)
{
	memset(p, 0, (size_t)ihl * 4);
	p[0] = (unsigned char)(0x40 | ihl);
	p[8] = 1; /* TTL left */
	p[9] = (unsigned char)proto;
	p[12] = 10, p[13] = 200, p[14] = 1, p[15] = 2;
	memcpy(p + 16, dst, 4);
	return (size_t)ihl * 4;
}

/* What a raw ICMP socket reads for an error of type/code from a router,
 * quoting a TCP probe with ihl words of IP header. Its length. */
static size_t
build4(unsigned char *buf, int type, int code, int qihl, int proto)
{
	size_t n = put_ip4(buf, 5, 1, (const unsigned char[]){10, 200, 1, 2});

	memset(buf + n, 0, 8);
	buf[n] = (unsigned char)type;
	buf[n + 1] = (unsigned char)code;
	n += 8;
	n += put_ip4(buf + n, qihl, proto, dst4);
	n += put_tcp(buf + n, 40001, 8080, 0x01020304);
	return n;
}

static void
test_v4_time_exceeded(void **state)
{
	unsigned char buf[128];
	struct icmpq q;
	size_t n = build4(buf, 11, 0, 5, 6);

	(void)state;
	assert_int_equal(icmpq_parse4(buf, n, &q), 0);
	assert_int_equal(q.kind, ICMPQ_TIME_EXCEEDED);
	assert_int_equal(q.family, AF_INET);
	assert_memory_equal(q.dst, dst4, 4);
	assert_int_equal(q.sport, 40001);
	assert_int_equal(q.dport, 8080);
	assert_int_equal(q.seq, 0x01020304);
	/* routers quote at least 8 bytes of TCP: exactly 8 is enough */
	assert_int_equal(icmpq_parse4(buf, n - 1, &q), -1);
}

static void
test_v4_unreachable_and_options(void **state)
{
	unsigned char buf[128];
	struct icmpq q;
	size_t n = build4(buf, 3, 1, 6, 6); /* host unreachable, IP options */

	(void)state;
	assert_int_equal(icmpq_parse4(buf, n, &q), 0);
	assert_int_equal(q.kind, ICMPQ_UNREACHABLE);
	assert_int_equal(q.code, 1);
	assert_int_equal(q.dport, 8080);
}

static void
test_v4_rejects(void **state)
{
	unsigned char buf[128];
	struct icmpq q;
	size_t n, i;

	(void)state;
	n = build4(buf, 0, 0, 5, 6); /* echo reply */
	assert_int_equal(icmpq_parse4(buf, n, &q), -1);
	n = build4(buf, 11, 0, 5, 17); /* quotes UDP */
	assert_int_equal(icmpq_parse4(buf, n, &q), -1);
	n = build4(buf, 11, 0, 5, 6);
	buf[28] = 0x65; /* quoted header not IPv4 */
	assert_int_equal(icmpq_parse4(buf, n, &q), -1);
	n = build4(buf, 11, 0, 5, 6);
	buf[0] = 0x4f; /* outer header longer than the packet's start */
	assert_int_equal(icmpq_parse4(buf, 40, &q), -1);
	/* every truncation fails cleanly */
	n = build4(buf, 11, 0, 5, 6);
	for (i = 0; i < n; i++)
		assert_int_equal(icmpq_parse4(buf, i, &q), -1);
}

/* What a raw ICMPv6 socket reads: the ICMPv6 message, quoting an IPv6
 * probe, with one hop-by-hop header first when hbh is set. */
static size_t
build6(unsigned char *buf, int type, int hbh, int proto)
{
	size_t n = 8;

	memset(buf, 0, 8 + 40 + 8);
	buf[0] = (unsigned char)type;
	buf[n] = 0x60;
	buf[n + 6] = (unsigned char)(hbh ? 0 : proto);
	buf[n + 7] = 1;
	memcpy(buf + n + 24, dst6, 16);
	n += 40;
	if (hbh) {
		memset(buf + n, 0, 8);
		buf[n] = (unsigned char)proto;
		buf[n + 1] = 0; /* 8 bytes */
		n += 8;
	}
	n += put_tcp(buf + n, 40002, 443, 7);
	return n;
}

static void
test_v6(void **state)
{
	unsigned char buf[160];
	struct icmpq q;
	size_t n, i;

	(void)state;
	n = build6(buf, 3, 0, 6);
	assert_int_equal(icmpq_parse6(buf, n, &q), 0);
	assert_int_equal(q.kind, ICMPQ_TIME_EXCEEDED);
	assert_int_equal(q.family, AF_INET6);
	assert_memory_equal(q.dst, dst6, 16);
	assert_int_equal(q.sport, 40002);
	assert_int_equal(q.dport, 443);
	assert_int_equal(q.seq, 7);
	n = build6(buf, 1, 1, 6); /* unreachable, hop-by-hop header */
	assert_int_equal(icmpq_parse6(buf, n, &q), 0);
	assert_int_equal(q.kind, ICMPQ_UNREACHABLE);
	assert_int_equal(q.sport, 40002);
	for (i = 0; i < n; i++)
		assert_int_equal(icmpq_parse6(buf, i, &q), -1);
	n = build6(buf, 128, 0, 6); /* echo request */
	assert_int_equal(icmpq_parse6(buf, n, &q), -1);
	n = build6(buf, 3, 0, 17); /* UDP */
	assert_int_equal(icmpq_parse6(buf, n, &q), -1);
	n = build6(buf, 3, 0, 6);
	buf[8] = 0x40; /* quoted header not IPv6 */
	assert_int_equal(icmpq_parse6(buf, n, &q), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_v4_time_exceeded),
	    cmocka_unit_test(test_v4_unreachable_and_options),
	    cmocka_unit_test(test_v4_rejects),
	    cmocka_unit_test(test_v6),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
