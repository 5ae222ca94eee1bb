/* path: the bookkeeping of a traceroute and the lines it prints. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/trace/path.h"

static void
test_init_clamps(void **state)
{
	struct path p;

	(void)state;
	path_init(&p, 0, 99);
	assert_int_equal(p.max_hops, 1);
	assert_int_equal(p.nprobes, PATH_MAX_PROBES);
	path_init(&p, 1000, 3);
	assert_int_equal(p.max_hops, PATH_MAX_HOPS);
	assert_int_equal(path_last(&p), PATH_MAX_HOPS);
	assert_false(path_done(&p));
	assert_false(path_hop_done(&p, 1));
	assert_int_equal(path_hops(&p), 1);
}

static void
test_record_and_end(void **state)
{
	struct path p;
	int i;

	(void)state;
	path_init(&p, 30, 2);
	assert_int_equal(
	    path_record(&p, 1, 0, PATH_TIME_EXCEEDED, "10.0.1.1", 210), 1);
	/* a second answer, out of range, pending: dropped */
	assert_int_equal(
	    path_record(&p, 1, 0, PATH_TIME_EXCEEDED, "10.0.9.9", 1), 0);
	assert_int_equal(path_record(&p, 0, 0, PATH_SYN_ACK, "x", 1), 0);
	assert_int_equal(path_record(&p, 31, 0, PATH_SYN_ACK, "x", 1), 0);
	assert_int_equal(path_record(&p, 2, 2, PATH_SYN_ACK, "x", 1), 0);
	assert_int_equal(path_record(&p, 2, 0, PATH_PENDING, "x", 1), 0);
	assert_string_equal(p.probes[0][0].ip, "10.0.1.1");
	assert_false(path_hop_done(&p, 1));
	assert_int_equal(path_record(&p, 1, 1, PATH_TIMEOUT, "ignored", 5), 1);
	assert_true(path_hop_done(&p, 1));
	assert_true(path_hop_any(&p, 1));
	assert_false(path_hop_any(&p, 2));
	assert_false(path_hop_any(&p, 0));
	assert_false(path_hop_any(&p, 31));
	assert_string_equal(p.probes[0][1].ip, "");
	assert_int_equal(p.probes[0][1].rtt_us, -1);
	/* the destination answers at hop 4, then at hop 3: 3 is the end */
	assert_int_equal(path_record(&p, 4, 0, PATH_SYN_ACK, "10.0.3.2", 9), 1);
	assert_int_equal(path_last(&p), 4);
	assert_int_equal(path_record(&p, 3, 1, PATH_SYN_ACK, "10.0.3.2", 8), 1);
	assert_int_equal(path_last(&p), 3);
	assert_int_equal(path_record(&p, 4, 1, PATH_SYN_ACK, "10.0.3.2", 9), 0);
	assert_false(path_done(&p));
	for (i = 0; i < 2; i++)
		assert_int_equal(
		    path_record(&p, 2, i, PATH_TIME_EXCEEDED, "10.0.2.1", 300),
		    1);
	assert_false(path_done(&p));
	assert_int_equal(path_record(&p, 3, 0, PATH_SYN_ACK, "10.0.3.2", 7), 1);
	assert_true(path_done(&p));
	assert_true(path_reached(&p));
	assert_int_equal(path_hops(&p), 3);
}

static void
test_unreachable_not_reached(void **state)
{
	struct path p;
	char buf[128];

	(void)state;
	path_init(&p, 5, 1);
	assert_int_equal(
	    path_record(&p, 1, 0, PATH_TIME_EXCEEDED, "10.0.1.1", 100), 1);
	assert_int_equal(
	    path_record(&p, 2, 0, PATH_UNREACHABLE, "10.0.2.1", 100), 1);
	assert_true(path_done(&p));
	assert_false(path_reached(&p));
	path_format_end(&p, "10.9.9.9", 80, buf, sizeof(buf));
	assert_string_equal(
	    buf, "10.9.9.9 port 80 unreachable (hop 2 said so)");
	path_init(&p, 5, 1);
	assert_int_equal(path_record(&p, 1, 0, PATH_RST, "10.0.1.9", 100), 1);
	assert_true(path_reached(&p));
	path_format_end(&p, "10.0.1.9", 81, buf, sizeof(buf));
	assert_string_equal(buf, "reached 10.0.1.9 port 81 in 1 hop");
	/* timeouts all the way: the hops probed */
	path_init(&p, 3, 1);
	assert_int_equal(path_record(&p, 1, 0, PATH_TIMEOUT, NULL, 0), 1);
	assert_int_equal(path_record(&p, 2, 0, PATH_TIMEOUT, NULL, 0), 1);
	assert_false(path_done(&p));
	assert_int_equal(path_hops(&p), 2);
	assert_int_equal(path_record(&p, 3, 0, PATH_TIMEOUT, NULL, 0), 1);
	assert_true(path_done(&p));
	path_format_end(&p, "::1", 443, buf, sizeof(buf));
	assert_string_equal(buf, "::1 port 443 not reached in 3 hops");
}

static void
test_kinds(void **state)
{
	int k;

	(void)state;
	for (k = PATH_PENDING; k <= PATH_TIMEOUT; k++)
		assert_int_equal(
		    path_kind_parse(path_kind_name((enum path_kind)k)), k);
	assert_string_equal(path_kind_name(PATH_SYN_ACK), "syn-ack");
	assert_string_equal(
	    path_kind_name(PATH_TIME_EXCEEDED), "time-exceeded");
	assert_int_equal(path_kind_parse("bogus"), PATH_PENDING);
	assert_int_equal(path_kind_parse(NULL), PATH_PENDING);
}

static void
label(void *ctx, const char *ip, char *buf, size_t len)
{
	(*(int *)ctx)++;
	snprintf(buf, len, "%s", strncmp(ip, "10.", 3) == 0 ? "private" : "");
}

static void
test_format_hop(void **state)
{
	struct path_probe pr[3];
	char buf[256];
	int calls = 0;

	(void)state;
	memset(pr, 0, sizeof(pr));
	pr[0] = (struct path_probe){PATH_TIME_EXCEEDED, "10.1.0.1", 210};
	pr[1] = (struct path_probe){PATH_TIME_EXCEEDED, "10.1.0.1", 180};
	pr[2] = (struct path_probe){PATH_TIME_EXCEEDED, "10.1.0.1", 190};
	path_format_hop(1, pr, 3, label, &calls, buf, sizeof(buf));
	assert_string_equal(
	    buf, " 1  10.1.0.1  0.210 ms  0.180 ms  0.190 ms  private");
	assert_int_equal(calls, 1);
	/* two routers and a timeout, no label */
	pr[1] = (struct path_probe){PATH_TIMEOUT, "", -1};
	pr[2] = (struct path_probe){PATH_TIME_EXCEEDED, "203.0.113.9", 12345};
	path_format_hop(12, pr, 3, NULL, NULL, buf, sizeof(buf));
	assert_string_equal(buf,
	    "12  10.1.0.1  0.210 ms  *  203.0.113.9  "
	    "12.345 ms");
	/* the destination */
	pr[0] = (struct path_probe){PATH_SYN_ACK, "10.3.0.2", 1000};
	pr[1] = (struct path_probe){PATH_SYN_ACK, "10.3.0.2", 2000};
	pr[2] = (struct path_probe){PATH_PENDING, "", 0};
	path_format_hop(3, pr, 3, label, &calls, buf, sizeof(buf));
	assert_string_equal(
	    buf, " 3  10.3.0.2  1.000 ms  2.000 ms  [syn-ack]  private  *");
	/* cut, never overrun */
	path_format_hop(3, pr, 3, label, &calls, buf, 10);
	assert_string_equal(buf, " 3  10.3.");
	/* more probes than a hop holds are not read */
	path_format_hop(3, pr, PATH_MAX_PROBES + 9, NULL, NULL, buf, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_init_clamps),
	    cmocka_unit_test(test_record_and_end),
	    cmocka_unit_test(test_unreachable_not_reached),
	    cmocka_unit_test(test_kinds),
	    cmocka_unit_test(test_format_hop),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
