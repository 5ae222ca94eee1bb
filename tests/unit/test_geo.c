/* geo: what an address is when it is not on the public Internet. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/geo/geo.h"

static void
test_scope(void **state)
{
	static const struct {
		const char *ip, *scope;
	} cases[] = {
	    {"10.1.2.3", "private"},
	    {"172.16.0.1", "private"},
	    {"172.31.255.255", "private"},
	    {"172.32.0.1", NULL},
	    {"192.168.1.1", "private"},
	    {"127.0.0.1", "loopback"},
	    {"169.254.1.1", "link-local"},
	    {"100.64.0.1", "cgnat"},
	    {"100.127.255.255", "cgnat"},
	    {"100.128.0.1", NULL},
	    {"192.0.2.7", "documentation"},
	    {"198.51.100.7", "documentation"},
	    {"203.0.113.7", "documentation"},
	    {"224.0.0.251", "multicast"},
	    {"0.0.0.0", "unspecified"},
	    {"240.0.0.1", "reserved"},
	    {"198.18.0.1", "reserved"},
	    {"8.8.8.8", NULL},
	    {"183.3.224.1", NULL},
	    {"::1", "loopback"},
	    {"::", "unspecified"},
	    {"fd00::1", "private"},
	    {"fe80::1", "link-local"},
	    {"ff02::1", "multicast"},
	    {"2001:db8::1", "documentation"},
	    {"::ffff:192.168.0.1", "private"},
	    {"::ffff:8.8.8.8", NULL},
	    {"2408:8000::1", NULL},
	    {"not an address", NULL},
	};
	struct geo_info gi;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *s = geo_scope(cases[i].ip);
		if ((s == NULL) != (cases[i].scope == NULL) ||
		    (s != NULL && strcmp(s, cases[i].scope) != 0))
			fail_msg("%s: %s, want %s", cases[i].ip,
			    s ? s : "public",
			    cases[i].scope ? cases[i].scope : "public");
	}
	/* without data, a scoped address is still answered */
	assert_int_equal(geo_lookup(NULL, "192.168.0.1", &gi), 1);
	assert_string_equal(gi.scope, "private");
	assert_int_equal(geo_lookup(NULL, "8.8.8.8", &gi), 0);
	assert_null(gi.scope);
	assert_int_equal(geo_lookup(NULL, "nope", &gi), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_scope),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
