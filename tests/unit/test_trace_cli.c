/* trace (the command): the label of a hop address, the endpoints a
 * capture offers to trace, and the flags. The .c is included to reach its
 * statics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "proxy/cli/trace.c"

static void
test_label(void **state)
{
	struct geo_info gi;
	char buf[160];

	(void)state;
	memset(&gi, 0, sizeof(gi));
	snprintf(gi.country, sizeof(gi.country), "CN");
	gi.asn = 45090;
	snprintf(gi.org, sizeof(gi.org), "Shenzhen Tencent Computer Systems");
	trace_label_info(&gi, buf, sizeof(buf));
	assert_string_equal(
	    buf, "CN  AS45090 Shenzhen Tencent Computer Systems");
	gi.org[0] = '\0';
	trace_label_info(&gi, buf, sizeof(buf));
	assert_string_equal(buf, "CN  AS45090");
	gi.country[0] = '\0';
	trace_label_info(&gi, buf, sizeof(buf));
	assert_string_equal(buf, "AS45090");
	gi.asn = 0;
	trace_label_info(&gi, buf, sizeof(buf));
	assert_string_equal(buf, "");
	gi.scope = "private";
	trace_label_info(&gi, buf, sizeof(buf));
	assert_string_equal(buf, "private");
	/* through geo without data: scopes only */
	trace_label(NULL, "192.168.1.1", buf, sizeof(buf));
	assert_string_equal(buf, "private");
	trace_label(NULL, "::1", buf, sizeof(buf));
	assert_string_equal(buf, "loopback");
	trace_label(NULL, "", buf, sizeof(buf));
	assert_string_equal(buf, "");
	trace_label(NULL, "not an address", buf, sizeof(buf));
	assert_string_equal(buf, "");
}

static void
test_wanted(void **state)
{
	struct trace_opts o;

	(void)state;
	memset(&o, 0, sizeof(o));
	assert_true(trace_wanted(&o, "8.8.8.8"));
	assert_true(trace_wanted(&o, "2001:4860:4860::8888"));
	assert_false(trace_wanted(&o, "10.1.2.3"));
	assert_false(trace_wanted(&o, "127.0.0.1"));
	assert_false(trace_wanted(&o, "nope"));
	o.private_ok = 1;
	assert_true(trace_wanted(&o, "10.1.2.3"));
	assert_true(trace_wanted(&o, "100.64.0.1"));
	assert_false(trace_wanted(&o, "127.0.0.1"));
	assert_false(trace_wanted(&o, "::1"));
	assert_false(trace_wanted(&o, "fe80::1"));
	assert_false(trace_wanted(&o, "224.0.0.1"));
	assert_false(trace_wanted(&o, "0.0.0.0"));
}

static void
test_add_cap(void **state)
{
	struct trace_targets ts = {0};
	int i;

	(void)state;
	for (i = 0; i < 40; i++)
		assert_int_equal(
		    trace_add(&ts, 20, "10.0.0.1", 1000 + i, "a.test"), 0);
	assert_int_equal(ts.n, 20);
	assert_int_equal(ts.capped, 20);
	assert_string_equal(ts.v[19].domain, "a.test");
	assert_int_equal(ts.v[19].port, 1019);
	/* a name that is the address itself is no name */
	trace_targets_free(&ts);
	assert_int_equal(trace_add(&ts, 5, "10.0.0.2", 80, "10.0.0.2"), 0);
	assert_null(ts.v[0].domain);
	trace_targets_free(&ts);
}

/* trace_parse over the words given (NULL-terminated), copied so that
 * getopt may permute them. */
static int
parse(struct trace_opts *o, ...)
{
	static char words[16][64];
	char *argv[16];
	const char *w;
	int argc = 0;
	va_list ap;

	va_start(ap, o);
	while (argc < 16 && (w = va_arg(ap, const char *)) != NULL) {
		snprintf(words[argc], sizeof(words[argc]), "%s", w);
		argv[argc] = words[argc];
		argc++;
	}
	va_end(ap);
	args_reset();
	return trace_parse(argc, argv, o);
}

static void
test_parse(void **state)
{
	struct trace_opts o;

	(void)state;
	assert_int_equal(parse(&o, "trace", "--ip", "::1", "--port", "443",
			     "--probes", "2", "--max-hops", "5", "--rate", "7",
			     "--timeout", "300", "--json", NULL),
	    CLI_OK);
	assert_string_equal(o.ip, "::1");
	assert_int_equal(o.port, 443);
	assert_int_equal(o.t.nprobes, 2);
	assert_int_equal(o.t.max_hops, 5);
	assert_int_equal(o.t.rate, 7);
	assert_int_equal(o.t.timeout_ms, 300);
	assert_int_equal(o.fmt, OUT_JSON);
	assert_int_equal(parse(&o, "trace", "--all", NULL), CLI_OK);
	assert_int_equal(o.t.max_hops, 30);
	assert_int_equal(o.t.nprobes, 3);
	assert_int_equal(o.t.rate, 20);
	assert_int_equal(o.t.timeout_ms, 2000);
	assert_int_equal(o.max_endpoints, 20);
	assert_int_equal(
	    parse(&o, "trace", "--domain", "a.test", "--all", NULL), CLI_USAGE);
	assert_int_equal(
	    parse(&o, "trace", "--all", "--port", "1", NULL), CLI_USAGE);
	assert_int_equal(parse(&o, "trace", "--ip", "1.2.3", NULL), CLI_USAGE);
	assert_int_equal(
	    parse(&o, "trace", "--all", "--rate", "0", NULL), CLI_USAGE);
	assert_int_equal(parse(&o, "trace", NULL), CLI_USAGE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_label),
	    cmocka_unit_test(test_wanted),
	    cmocka_unit_test(test_add_cap),
	    cmocka_unit_test(test_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
