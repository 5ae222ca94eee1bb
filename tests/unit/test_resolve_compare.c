/*
 * Unit tests for `peephole resolve-compare`: the comparison of one
 * domain's answers (address sets, countries, missing answers), the names
 * and resolvers it accepts, the statuses, and the rows of the table and
 * CSV it prints. The queries themselves run against real resolvers in
 * tests/e2e/locality/test_resolve_compare.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <event2/dns.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/cli/resolve_compare_diff.c"
#include "proxy/cli/resolve_compare_print.c"

#define R1 "9.9.9.9:53"
#define R2 "[2620:fe::fe]:53"

/* One row; country "" for unknown. */
static struct rc_row
row(const char *res, const char *qt, const char *ip, const char *status,
    const char *cc)
{
	struct rc_row r;

	memset(&r, 0, sizeof(r));
	r.resolver = res;
	r.qtype = qt;
	r.ip = ip;
	r.status = status;
	snprintf(r.country, sizeof(r.country), "%s", cc);
	return r;
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void
test_same(void **state)
{
	/* the same set in another order, AAAA nodata on both */
	struct rc_row r[] = {
	    row(RC_SYSTEM, "A", "192.0.2.1", "ok", ""),
	    row(RC_SYSTEM, "A", "192.0.2.2", "ok", ""),
	    row(RC_SYSTEM, "AAAA", NULL, "nodata", ""),
	    row(R1, "A", "192.0.2.2", "ok", ""),
	    row(R1, "A", "192.0.2.1", "ok", ""),
	    row(R1, "AAAA", NULL, "nodata", ""),
	};
	struct rc_verdict v;

	(void)state;
	rc_compare(r, N(r), &v);
	assert_int_equal(v.flags, 0);
	assert_true(v.answered);
	assert_string_equal(v.text, "same");
}

static void
test_addresses(void **state)
{
	/* a subset differs too; the countries agree */
	struct rc_row r[] = {
	    row(RC_SYSTEM, "A", "192.0.2.1", "ok", "CN"),
	    row(RC_SYSTEM, "A", "192.0.2.2", "ok", "CN"),
	    row(R1, "A", "192.0.2.1", "ok", "CN"),
	};
	struct rc_verdict v;

	(void)state;
	rc_compare(r, N(r), &v);
	assert_int_equal(v.flags, RC_DIFF_ADDRS);
	assert_string_equal(v.text, "differ: addresses");
}

static void
test_countries(void **state)
{
	/* one resolver sends to China, the other to Singapore and the US;
	 * the sets are named sorted, in resolver order */
	struct rc_row r[] = {
	    row(RC_SYSTEM, "A", "101.32.1.1", "ok", "CN"),
	    row(R1, "A", "43.1.1.1", "ok", "US"),
	    row(R1, "A", "43.1.1.2", "ok", "SG"),
	    row(R1, "AAAA", "2001:db8::1", "ok", ""),
	    row(RC_SYSTEM, "AAAA", "2001:db8::1", "ok", ""),
	};
	struct rc_verdict v;

	(void)state;
	rc_compare(r, N(r), &v);
	assert_int_equal(v.flags, RC_DIFF_ADDRS | RC_DIFF_COUNTRIES);
	assert_string_equal(v.text, "differ: addresses, countries CN vs SG,US");
}

static void
test_unknown_country(void **state)
{
	/* an address the data does not place says nothing either way */
	struct rc_row r[] = {
	    row(RC_SYSTEM, "A", "101.32.1.1", "ok", "CN"),
	    row(R1, "A", "101.32.1.1", "ok", "CN"),
	    row(R1, "A", "198.18.0.1", "ok", ""),
	    row(R2, "A", "198.18.0.1", "ok", ""),
	};
	struct rc_verdict v;

	(void)state;
	rc_compare(r, N(r), &v);
	assert_int_equal(v.flags, RC_DIFF_ADDRS);
}

static void
test_missing(void **state)
{
	/* one says the name does not exist, one never answers, one has no
	 * AAAA although another has */
	struct rc_row r[] = {
	    row(RC_SYSTEM, "A", "192.0.2.1", "ok", ""),
	    row(RC_SYSTEM, "AAAA", "2001:db8::1", "ok", ""),
	    row(R1, "A", NULL, "nxdomain", ""),
	    row(R1, "AAAA", NULL, "nxdomain", ""),
	    row(R2, "A", "192.0.2.1", "ok", ""),
	    row(R2, "AAAA", NULL, "nodata", ""),
	    row("127.0.0.1:5399", "A", NULL, "nodata", ""),
	    row("127.0.0.1:5399", "AAAA", NULL, "timeout", ""),
	};
	struct rc_verdict v;

	(void)state;
	rc_compare(r, N(r), &v);
	assert_int_equal(v.flags, RC_MISSING);
	assert_string_equal(v.text,
	    "missing: 9.9.9.9:53 nxdomain, [2620:fe::fe]:53 AAAA nodata, "
	    "127.0.0.1:5399 A nodata/AAAA timeout");
}

static void
test_logged(void **state)
{
	/* app-dns is what the app was told: it differs in addresses, but is
	 * never missing (the app asked for no AAAA; proxy-dns asked for
	 * nothing) */
	struct rc_row r[] = {
	    row(RC_SYSTEM, "A", "192.0.2.1", "ok", ""),
	    row(RC_SYSTEM, "AAAA", "2001:db8::1", "ok", ""),
	    row(RC_APP_DNS, "A", "192.0.2.9", "ok", ""),
	};
	struct rc_verdict v;

	(void)state;
	rc_compare(r, N(r), &v);
	assert_int_equal(v.flags, RC_DIFF_ADDRS);
	assert_string_equal(v.text, "differ: addresses");

	struct rc_row same[] = {
	    row(RC_SYSTEM, "A", "192.0.2.1", "ok", ""),
	    row(RC_APP_DNS, "A", "192.0.2.1", "ok", ""),
	    row(RC_PROXY_DNS, "A", "192.0.2.1", "ok", ""),
	};
	rc_compare(same, N(same), &v);
	assert_int_equal(v.flags, 0);
}

static void
test_all_combined(void **state)
{
	struct rc_row r[] = {
	    row(RC_SYSTEM, "A", "101.32.1.1", "ok", "CN"),
	    row(R1, "A", "43.1.1.2", "ok", "SG"),
	    row(R2, "A", NULL, "servfail", ""),
	    row(R2, "AAAA", NULL, "servfail", ""),
	};
	struct rc_verdict v;

	(void)state;
	rc_compare(r, N(r), &v);
	assert_int_equal(
	    v.flags, RC_DIFF_ADDRS | RC_DIFF_COUNTRIES | RC_MISSING);
	assert_string_equal(v.text,
	    "differ: addresses, countries CN vs SG; missing: "
	    "[2620:fe::fe]:53 servfail");
}

static void
test_no_answers(void **state)
{
	/* nobody has an address: they agree, whatever each said */
	struct rc_row r[] = {
	    row(RC_SYSTEM, "A", NULL, "nxdomain", ""),
	    row(R1, "A", NULL, "timeout", ""),
	};
	struct rc_verdict v;

	(void)state;
	rc_compare(r, N(r), &v);
	assert_int_equal(v.flags, 0);
	assert_false(v.answered);
	assert_string_equal(v.text, "no answers");
	rc_compare(r, 0, &v);
	assert_string_equal(v.text, "no answers");
}

static void
test_name_ok(void **state)
{
	char long_label[80], long_name[300];

	(void)state;
	assert_true(rc_name_ok("a.test"));
	assert_true(rc_name_ok("_dmarc.example.com"));
	assert_true(rc_name_ok("localhost"));
	assert_false(rc_name_ok(""));
	assert_false(rc_name_ok("192.0.2.1"));
	assert_false(rc_name_ok("2001:db8::1"));
	assert_false(rc_name_ok("a..b"));
	assert_false(rc_name_ok(".a"));
	assert_false(rc_name_ok("a b"));
	assert_false(rc_name_ok("a.test:443"));
	memset(long_label, 'a', 64);
	long_label[64] = '\0';
	assert_false(rc_name_ok(long_label));
	long_label[63] = '\0';
	assert_true(rc_name_ok(long_label));
	memset(long_name, 'a', 254);
	for (int i = 10; i < 254; i += 10)
		long_name[i] = '.';
	long_name[254] = '\0';
	assert_false(rc_name_ok(long_name));
}

static void
test_resolver_parse(void **state)
{
	struct rc_resolver r;

	(void)state;
	assert_int_equal(rc_resolver_parse("9.9.9.9", &r), 0);
	assert_string_equal(r.name, "9.9.9.9:53");
	assert_false(r.system);
	assert_int_equal(rc_resolver_parse("127.0.0.1:5353", &r), 0);
	assert_string_equal(r.name, "127.0.0.1:5353");
	assert_int_equal(rc_resolver_parse("2620:fe::fe", &r), 0);
	assert_string_equal(r.name, "[2620:fe::fe]:53");
	assert_int_equal(rc_resolver_parse("[::1]:5300", &r), 0);
	assert_string_equal(r.name, "[::1]:5300");
	assert_int_equal(rc_resolver_parse("dns.quad9.net", &r), -1);
	assert_int_equal(rc_resolver_parse("1.2.3.4:99999", &r), -1);
	assert_int_equal(rc_resolver_parse("", &r), -1);
	assert_int_equal(rc_resolver_parse("1.2.3", &r), -1);
}

static void
test_status(void **state)
{
	(void)state;
	assert_string_equal(rc_status(DNS_ERR_NONE), "ok");
	assert_string_equal(rc_status(DNS_ERR_NOTEXIST), "nxdomain");
	assert_string_equal(rc_status(DNS_ERR_SERVERFAILED), "servfail");
	assert_string_equal(rc_status(DNS_ERR_TIMEOUT), "timeout");
	assert_string_equal(rc_status(DNS_ERR_CANCEL), "timeout");
	assert_string_equal(rc_status(DNS_ERR_REFUSED), "refused");
	assert_string_equal(rc_status(DNS_ERR_NODATA), "nodata");
	assert_string_equal(rc_status(DNS_ERR_FORMAT), "error: format");
	assert_string_equal(
	    rc_status(RC_ERR_UNREACHABLE), "error: not asked (unreachable)");
	assert_string_equal(rc_status(12345), "error: unknown");
}

/* One answer of a printed domain. */
static void
ans(struct rcp_dom *d, const char *res, const char *qt, const char *ip,
    int64_t ttl, const char *status, const char *cc, uint32_t asn,
    const char *org)
{
	struct rcp_ans *a;

	d->a = realloc(d->a, (d->n + 1) * sizeof(*d->a));
	assert_non_null(d->a);
	a = &d->a[d->n++];
	memset(a, 0, sizeof(*a));
	a->resolver = strdup(res);
	a->qtype = strdup(qt);
	a->ip = ip != NULL ? strdup(ip) : NULL;
	a->status = strdup(status);
	a->ttl = ttl;
	if (ip != NULL) {
		snprintf(a->gi.country, sizeof(a->gi.country), "%s", cc);
		a->gi.asn = asn;
		snprintf(a->gi.org, sizeof(a->gi.org), "%s", org);
		a->gi.scope = geo_scope(ip);
	}
}

/* Print one domain through rcp_dom_emit in fmt into a string (the
 * caller frees it). */
static char *
emit(struct rcp_dom *d, int fmt, int only_differ, size_t *ndiffer)
{
	struct rc_print_opts po = {fmt, only_differ, "t.db"};
	struct rcp_out out;
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);

	assert_non_null(fp);
	memset(&out, 0, sizeof(out));
	out.o = &po;
	out.t = rcp_table_new(fmt);
	assert_non_null(out.t);
	out_view_init(1, 1);
	assert_int_equal(rcp_dom_emit(&out, d), 0);
	if (fmt == OUT_CSV)
		out_table_print_csv(out.t, fp);
	else
		out_table_print(out.t, fp);
	fclose(fp);
	*ndiffer = out.ndiffer;
	for (size_t i = 0; i < out.nlines; i++)
		free(out.lines[i]);
	free(out.lines);
	out_table_free(out.t);
	return buf;
}

static void
test_table_rows(void **state)
{
	struct rcp_dom d = {NULL, NULL, 0, 0};
	size_t nd;
	char *text, *csv;

	(void)state;
	d.name = strdup("a.test");
	ans(&d, RC_SYSTEM, "A", "101.32.1.1", 300, "ok", "CN", 132203,
	    "Tencent");
	ans(&d, RC_SYSTEM, "AAAA", NULL, -1, "nodata", "", 0, "");
	ans(&d, R1, "A", "192.0.2.7", 60, "ok", "", 0, "");
	ans(&d, R1, "AAAA", NULL, -1, "nodata", "", 0, "");
	ans(&d, RC_APP_DNS, "A", "43.1.1.2", 600, "ok", "SG", 0, "");
	text = emit(&d, OUT_TEXT, 0, &nd);
	assert_int_equal(nd, 1);
	/* the domain and its verdict head the group; scopes fill the
	 * country column; no address, no TTL */
	assert_string_equal(text,
	    "DOMAIN  RESOLVER    TYPE  ADDRESS     TTL  COUNTRY             "
	    "ASN  ORG      STATUS  COMPARE\n"
	    "a.test  system      A     101.32.1.1  300  CN             "
	    "AS132203  Tencent  ok      differ: addresses, countries CN vs SG\n"
	    "        system      AAAA                                          "
	    "           nodata\n"
	    "        9.9.9.9:53  A     192.0.2.7    60  documentation          "
	    "           ok\n"
	    "        9.9.9.9:53  AAAA                                          "
	    "           nodata\n"
	    "        app-dns     A     43.1.1.2    600  SG                     "
	    "           ok\n");
	csv = emit(&d, OUT_CSV, 0, &nd);
	assert_string_equal(csv,
	    "domain,resolver,type,address,ttl,country,asn,org,status,compare,"
	    "scope\r\n"
	    "a.test,system,A,101.32.1.1,300,CN,132203,Tencent,ok,"
	    "\"differ: addresses, countries CN vs SG\",\r\n"
	    "a.test,system,AAAA,,,,,,nodata,"
	    "\"differ: addresses, countries CN vs SG\",\r\n"
	    "a.test,9.9.9.9:53,A,192.0.2.7,60,,,,ok,"
	    "\"differ: addresses, countries CN vs SG\",documentation\r\n"
	    "a.test,9.9.9.9:53,AAAA,,,,,,nodata,"
	    "\"differ: addresses, countries CN vs SG\",\r\n"
	    "a.test,app-dns,A,43.1.1.2,600,SG,,,ok,"
	    "\"differ: addresses, countries CN vs SG\",\r\n");
	free(text);
	free(csv);
	rcp_dom_clear(&d);
	free(d.a);
}

static void
test_only_differ(void **state)
{
	struct rcp_dom d = {NULL, NULL, 0, 0};
	size_t nd;
	char *text;

	(void)state;
	d.name = strdup("b.test");
	ans(&d, RC_SYSTEM, "A", "192.0.2.1", 300, "ok", "", 0, "");
	ans(&d, R1, "A", "192.0.2.1", 300, "ok", "", 0, "");
	text = emit(&d, OUT_TEXT, 1, &nd);
	assert_int_equal(nd, 0);
	/* the header alone: the domain agrees */
	assert_null(strstr(text, "b.test"));
	free(text);
	text = emit(&d, OUT_TEXT, 0, &nd);
	assert_non_null(strstr(text, "b.test  system"));
	assert_non_null(strstr(text, "same"));
	free(text);
	rcp_dom_clear(&d);
	free(d.a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_same),
	    cmocka_unit_test(test_addresses),
	    cmocka_unit_test(test_countries),
	    cmocka_unit_test(test_unknown_country),
	    cmocka_unit_test(test_missing),
	    cmocka_unit_test(test_logged),
	    cmocka_unit_test(test_all_combined),
	    cmocka_unit_test(test_no_answers),
	    cmocka_unit_test(test_name_ok),
	    cmocka_unit_test(test_resolver_parse),
	    cmocka_unit_test(test_status),
	    cmocka_unit_test(test_table_rows),
	    cmocka_unit_test(test_only_differ),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
