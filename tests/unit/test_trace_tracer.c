/* tracer: the deadline that must not cut a trace running as designed, and
 * the source ports it binds. The .c is included to reach its statics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "proxy/trace/tracer.c"

/* The longest a trace can run by design: probe i goes out a tick after
 * probe i - TRACER_WINDOW ended (a timeout at most) and a tick after
 * probe i - 1. */
static int64_t
longest_ms(int total, int rate, int timeout_ms)
{
	int64_t tick = 1000 / rate + 1, send = 0, end = 0;
	int64_t ends[PATH_MAX_HOPS * PATH_MAX_PROBES];
	int i;

	for (i = 0; i < total; i++) {
		if (i > 0)
			send += tick;
		if (i >= TRACER_WINDOW && ends[i - TRACER_WINDOW] + tick > send)
			send = ends[i - TRACER_WINDOW] + tick;
		ends[i] = send + timeout_ms;
		if (ends[i] > end)
			end = ends[i];
	}
	return end;
}

static void
test_deadline(void **state)
{
	static const int rates[] = {1, 20, 100, 1000};
	static const int timeouts[] = {10, 300, 2000, 5000, 60000};
	size_t r, k;
	int total;

	(void)state;
	/* the review's case: 90 probes at 100/s, 5 s each, stopped at hop 21 */
	assert_true(
	    tracer_deadline_ms(90, 100, 5000) > longest_ms(90, 100, 5000));
	assert_true(tracer_deadline_ms(90, 100, 5000) >= 3 * 5000 + 900);
	for (total = 1; total <= PATH_MAX_HOPS * PATH_MAX_PROBES; total += 7)
		for (r = 0; r < sizeof(rates) / sizeof(rates[0]); r++)
			for (k = 0; k < sizeof(timeouts) / sizeof(timeouts[0]);
			     k++)
				assert_true(tracer_deadline_ms(
						total, rates[r], timeouts[k]) >
				    longest_ms(total, rates[r], timeouts[k]));
}

/* A probe aborted (connect(AF_UNSPEC), as after its timeout or an ICMP
 * error) keeps its explicitly bound port: the next probe gets another
 * one, so a late ICMP error quoting the port cannot match it. */
static void
test_bind_keeps_port(void **state)
{
	struct tracer t;
	struct sockaddr_in *d = (struct sockaddr_in *)&t.dst;
	struct sockaddr sa;
	uint16_t p1, p2;
	int fd1, fd2;

	(void)state;
	memset(&t, 0, sizeof(t));
	d->sin_family = AF_INET;
	d->sin_port = htons(9);
	d->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* ports in use on this machine are skipped: no exact port expected */
	t.port_next = 12345;
	assert_int_not_equal(fd1 = tracer_socket(&t, 1, &p1), -1);
	assert_true(p1 >= TRACER_PORT_LO + 12345);
	assert_true(p1 < TRACER_PORT_LO + TRACER_PORT_N);
	/* refused (nothing on port 9) or still connecting: aborted either
	 * way, as a probe is */
	(void)connect(fd1, (struct sockaddr *)d, sizeof(*d));
	memset(&sa, 0, sizeof(sa));
	sa.sa_family = AF_UNSPEC;
	(void)connect(fd1, &sa, sizeof(sa));
	/* the same port first: it is still taken */
	t.port_next = (unsigned)(p1 - TRACER_PORT_LO);
	assert_int_not_equal(fd2 = tracer_socket(&t, 1, &p2), -1);
	assert_int_not_equal(p2, p1);
	assert_true(p2 > p1);
	close(fd1);
	close(fd2);
	/* the range wraps */
	t.port_next = TRACER_PORT_N - 1;
	assert_int_not_equal(fd1 = tracer_socket(&t, 1, &p1), -1);
	assert_true(
	    p1 >= TRACER_PORT_LO && p1 < TRACER_PORT_LO + TRACER_PORT_N);
	assert_true(t.port_next < TRACER_BIND_TRIES);
	close(fd1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_deadline),
	    cmocka_unit_test(test_bind_keeps_port),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
