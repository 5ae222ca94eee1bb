/*
 * Unit tests for proxy/net/learned.c: the pinning back-off. A rejection
 * passes a host:port through for pinning-retry, each further one doubles
 * the wait up to a day, the wait expires, and a forget removes the pair
 * without losing the others of its probe run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>

#include "proxy/net/learned.h"

#define SEC 1000000LL

static void
test_delay(void **state)
{
	(void)state;
	assert_int_equal(learned_delay(60 * SEC, 1), 60 * SEC);
	assert_int_equal(learned_delay(60 * SEC, 2), 120 * SEC);
	assert_int_equal(learned_delay(60 * SEC, 3), 240 * SEC);
	assert_int_equal(learned_delay(60 * SEC, 11), 61440 * SEC);
	/* 60 s * 2^11 is past a day: capped */
	assert_int_equal(learned_delay(60 * SEC, 12), LEARNED_MAX_WAIT_US);
	assert_int_equal(learned_delay(60 * SEC, 1000000), LEARNED_MAX_WAIT_US);
	assert_int_equal(
	    learned_delay(2 * LEARNED_MAX_WAIT_US, 1), LEARNED_MAX_WAIT_US);
	assert_int_equal(learned_delay(0, 5), 0);
}

static void
test_reject_doubles_and_expires(void **state)
{
	struct learned *l = learned_new();
	int64_t now = 1000 * SEC, next = 0, left = 0;

	(void)state;
	assert_non_null(l);
	assert_int_equal(learned_backoff(l, "a.test", 443, now, &left), 0);
	assert_int_equal(
	    learned_reject(l, "a.test", 443, now, 60 * SEC, &next), 1);
	assert_int_equal(next, now + 60 * SEC);
	assert_int_equal(learned_backoff(l, "a.test", 443, now, &left), 1);
	assert_int_equal(left, 60 * SEC);
	/* other ports and hosts are not affected */
	assert_int_equal(learned_backoff(l, "a.test", 8443, now, NULL), 0);
	assert_int_equal(learned_backoff(l, "b.test", 443, now, NULL), 0);
	/* expiry: the next connection is intercepted again */
	assert_int_equal(
	    learned_backoff(l, "a.test", 443, now + 60 * SEC - 1, NULL), 1);
	assert_int_equal(
	    learned_backoff(l, "a.test", 443, now + 60 * SEC, NULL), 0);
	/* a second rejection doubles the wait, a third again */
	now += 60 * SEC;
	assert_int_equal(
	    learned_reject(l, "a.test", 443, now, 60 * SEC, &next), 2);
	assert_int_equal(next, now + 120 * SEC);
	assert_int_equal(
	    learned_reject(l, "a.test", 443, now, 60 * SEC, &next), 3);
	assert_int_equal(next, now + 240 * SEC);
	assert_int_equal(learned_count(l), 1);
	learned_free(l);
}

static void
test_cap(void **state)
{
	struct learned *l = learned_new();
	int64_t next = 0;
	int n = 0;

	(void)state;
	for (int i = 0; i < 40; i++)
		n = learned_reject(l, "a.test", 443, 0, 60 * SEC, &next);
	assert_int_equal(n, 40);
	assert_int_equal(next, LEARNED_MAX_WAIT_US);
	assert_int_equal(
	    learned_backoff(l, "a.test", 443, LEARNED_MAX_WAIT_US - 1, NULL),
	    1);
	assert_int_equal(
	    learned_backoff(l, "a.test", 443, LEARNED_MAX_WAIT_US, NULL), 0);
	learned_free(l);
}

static void
test_forget(void **state)
{
	struct learned *l = learned_new();
	char host[32];
	int64_t next;

	(void)state;
	assert_int_equal(learned_forget(l, "a.test", 443), 0);
	/* enough pairs to grow the table and make long probe runs */
	for (int i = 0; i < 500; i++) {
		snprintf(host, sizeof(host), "h%d.test", i);
		assert_int_equal(
		    learned_reject(l, host, 443, 0, 60 * SEC, &next), 1);
	}
	assert_int_equal(learned_count(l), 500);
	for (int i = 0; i < 500; i += 2) {
		snprintf(host, sizeof(host), "h%d.test", i);
		assert_int_equal(learned_forget(l, host, 443), 1);
		assert_int_equal(learned_forget(l, host, 443), 0);
	}
	assert_int_equal(learned_count(l), 250);
	for (int i = 0; i < 500; i++) {
		snprintf(host, sizeof(host), "h%d.test", i);
		assert_int_equal(
		    learned_backoff(l, host, 443, 1, NULL), i % 2 == 1);
	}
	/* a forgotten pair starts again at one rejection */
	assert_int_equal(learned_reject(l, "h0.test", 443, 0, SEC, &next), 1);
	assert_int_equal(next, SEC);
	learned_free(l);
}

static void
test_set_and_replace(void **state)
{
	struct learned *l = learned_new(), *fresh = learned_new();
	int64_t next;

	(void)state;
	assert_int_equal(learned_set(l, "a.test", 443, 3, 100 * SEC), 0);
	assert_int_equal(learned_backoff(l, "a.test", 443, 99 * SEC, NULL), 1);
	/* a loaded count goes on doubling */
	assert_int_equal(learned_reject(l, "a.test", 443, 0, SEC, &next), 4);
	assert_int_equal(next, 8 * SEC);
	/* `passthrough retry` from another process: retry time 0 */
	assert_int_equal(learned_set(fresh, "a.test", 443, 4, 0), 0);
	assert_int_equal(learned_set(fresh, "b.test", 443, 1, 100 * SEC), 0);
	learned_replace(l, fresh);
	assert_int_equal(learned_count(l), 2);
	assert_int_equal(learned_backoff(l, "a.test", 443, 1, NULL), 0);
	assert_int_equal(learned_backoff(l, "b.test", 443, 1, NULL), 1);
	learned_free(l);
	learned_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_delay),
	    cmocka_unit_test(test_reject_doubles_and_expires),
	    cmocka_unit_test(test_cap),
	    cmocka_unit_test(test_forget),
	    cmocka_unit_test(test_set_and_replace),
	};

	return cmocka_run_group_tests_name("learned", tests, NULL, NULL);
}
