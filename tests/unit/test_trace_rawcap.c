/* rawcap: after rawcap_drop, CAP_NET_RAW is gone from the sets the kernel
 * reports in /proc/self/status, and a raw socket is refused. Meaningful
 * only when the test starts with the capability (as root); skipped else. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy/trace/rawcap.h"

/* The capability set named (e.g. "CapEff") from /proc/self/status. */
static unsigned long long
caps(const char *name)
{
	char line[256];
	unsigned long long v = 0;
	size_t n = strlen(name);
	FILE *f = fopen("/proc/self/status", "r");

	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, name, n) == 0 && line[n] == ':')
			v = strtoull(line + n + 1, NULL, 16);
	fclose(f);
	return v;
}

static void
test_drop(void **state)
{
	const unsigned long long raw = 1ull << 13; /* CAP_NET_RAW */
	int fd;

	(void)state;
	if ((caps("CapEff") & raw) == 0)
		skip(); /* nothing to drop: not root */
	assert_int_equal(rawcap_drop(), 0);
	assert_int_equal(caps("CapEff") & raw, 0);
	assert_int_equal(caps("CapPrm") & raw, 0);
	assert_int_equal(caps("CapInh") & raw, 0);
	assert_int_not_equal(caps("CapEff"), 0); /* the others stay */
	fd = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
	assert_int_equal(fd, -1);
	assert_int_equal(errno, EPERM);
	/* again, without it: nothing to do */
	assert_int_equal(rawcap_drop(), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_drop),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
