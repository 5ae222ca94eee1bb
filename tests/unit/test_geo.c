/*
 * geo: what an address is when it is not on the public Internet, and
 * country / AS / organisation of public ones against the data `make deps`
 * builds into build/geo (run from the top of the tree). The expected
 * answers were checked in @ip-location-db 2.3.2026061719 (data of
 * 2026-06-17) with mmdblookup and grep of the ASN CSVs; a newer pin may
 * move them.
 */
#include <arpa/inet.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "proxy/geo/asn.h"
#include "proxy/geo/geo.h"

#define DATA "build/geo"
#define DATA_VERSION "2.3.2026061719"

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

static struct geo *
open_data(void)
{
	char err[512];
	struct geo *g = geo_open(DATA, NULL, err, sizeof(err));

	if (g == NULL)
		fail_msg("%s (run make deps)", err);
	return g;
}

/* Known public addresses: country, AS, organisation. */
static void
test_lookup(void **state)
{
	static const struct {
		const char *ip, *cc;
		uint32_t asn;
		const char *org;
	} cases[] = {
	    /* Tencent cloud, Shenzhen: AS45090 */
	    {"43.137.0.1", "CN", 45090,
		"Shenzhen Tencent Computer Systems Company Limited"},
	    {"121.51.0.1", "CN", 45090,
		"Shenzhen Tencent Computer Systems Company Limited"},
	    {"8.8.8.8", "US", 15169, "Google LLC"},
	    {"::ffff:8.8.8.8", "US", 15169, "Google LLC"},
	    {"2001:4860:4860::8888", "US", 15169, "Google LLC"},
	    {"1.1.1.1", "AU", 13335, "Cloudflare, Inc."},
	    /* DNSPod's public resolver: Tencent's AS132203, HK by whois */
	    {"119.29.29.29", "HK", 132203,
		"Shenzhen Tencent Computer Systems Company Limited"},
	};
	struct geo *g = open_data();
	struct geo_info gi;
	char src[1024];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(geo_lookup(g, cases[i].ip, &gi), 1);
		if (strcmp(gi.country, cases[i].cc) != 0 ||
		    gi.asn != cases[i].asn || strcmp(gi.org, cases[i].org) != 0)
			fail_msg("%s: %s AS%u %s, want %s AS%u %s", cases[i].ip,
			    gi.country, gi.asn, gi.org, cases[i].cc,
			    cases[i].asn, cases[i].org);
		assert_null(gi.scope);
	}
	/* scoped addresses are not looked up */
	assert_int_equal(geo_lookup(g, "10.0.0.1", &gi), 1);
	assert_string_equal(gi.scope, "private");
	assert_string_equal(gi.country, "");
	assert_int_equal(geo_lookup(g, "::1", &gi), 1);
	assert_string_equal(gi.scope, "loopback");
	assert_int_equal(geo_lookup(g, "x", &gi), -1);
	geo_source(g, src, sizeof(src));
	assert_non_null(strstr(src, "country: " DATA "/country.mmdb ("));
	assert_non_null(strstr(src, "asn: " DATA "/asn.bin ("));
	assert_non_null(strstr(src, DATA_VERSION ", 2026-06-17)"));
	assert_int_equal(geo_verify(g, src, sizeof(src)), 0);
	geo_close(g);
}

/* A scratch directory holding links to DATA's files (which). */
static void
scratch(char *dir, size_t len, const char *sub, int which)
{
	char cwd[PATH_MAX], from[PATH_MAX * 2], to[PATH_MAX * 2];

	assert_non_null(getcwd(cwd, sizeof(cwd)));
	snprintf(dir, len, "%.3000s/build/tests/geo-scratch/%s", cwd, sub);
	snprintf(from, sizeof(from), "rm -rf '%s' && mkdir -p '%s'", dir, dir);
	assert_int_equal(system(from), 0);
	for (int i = 0; i < 2; i++) {
		const char *f = i == 0 ? GEO_COUNTRY_FILE : GEO_ASN_FILE;

		if (!(which & (1 << i)))
			continue;
		snprintf(from, sizeof(from), "%s/" DATA "/%s", cwd, f);
		snprintf(to, sizeof(to), "%s/%s", dir, f);
		assert_int_equal(symlink(from, to), 0);
	}
}

/* dir argument, then $PEEPHOLE_GEO_DIR, then home/geo; a missing or
 * broken directory is an error that names it. */
static void
test_search(void **state)
{
	char a[PATH_MAX], h[PATH_MAX], hg[PATH_MAX + 8], err[1024];
	struct geo *g;
	struct geo_info gi;
	FILE *fp;

	(void)state;
	scratch(a, sizeof(a), "env", 3);
	scratch(h, sizeof(h), "home", 0);
	snprintf(hg, sizeof(hg), "%s/geo", h);
	assert_int_equal(mkdir(hg, 0700), 0);
	assert_int_equal(symlink("../../../../geo/" GEO_ASN_FILE,
			     strcat(strcpy(err, hg), "/" GEO_ASN_FILE)),
	    0);
	setenv("PEEPHOLE_GEO_DIR", a, 1);
	g = geo_open(NULL, h, err, sizeof(err));
	assert_non_null(g);
	assert_string_equal(geo_dir(g), a);
	geo_close(g);
	g = geo_open(DATA, h, err, sizeof(err)); /* the argument wins */
	assert_non_null(g);
	assert_string_equal(geo_dir(g), DATA);
	geo_close(g);
	unsetenv("PEEPHOLE_GEO_DIR");
	g = geo_open(NULL, h, err, sizeof(err)); /* home/geo: ASN only */
	assert_non_null(g);
	assert_string_equal(geo_dir(g), hg);
	assert_int_equal(geo_lookup(g, "8.8.8.8", &gi), 1);
	assert_int_equal(gi.asn, 15169);
	assert_string_equal(gi.country, "");
	geo_source(g, err, sizeof(err));
	assert_null(strstr(err, "country:"));
	geo_close(g);
	setenv("PEEPHOLE_GEO_DIR", "build/tests/geo-scratch/missing", 1);
	assert_null(geo_open(NULL, h, err, sizeof(err)));
	assert_non_null(strstr(err, "build/tests/geo-scratch/missing"));
	unsetenv("PEEPHOLE_GEO_DIR");
	/* a broken file is an error, not a fall-through */
	snprintf(hg, sizeof(hg), "%s/%s", a, GEO_ASN_FILE);
	unlink(hg);
	assert_non_null(fp = fopen(hg, "w"));
	fputs("PPHASN1\nshort", fp);
	fclose(fp);
	assert_null(geo_open(a, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "asn.bin"));
	/* opened through the directory's fd, named by its path */
	assert_int_equal(strncmp(err, a, strlen(a)), 0);
	assert_null(strstr(err, "/proc/self/fd"));
	unlink(hg);
	{
		char cf[PATH_MAX + 32];

		snprintf(cf, sizeof(cf), "%s/%s", a, GEO_COUNTRY_FILE);
		unlink(cf); /* a link to the real data: not written through */
		assert_non_null(fp = fopen(cf, "w"));
		fputs("not an mmdb", fp);
		fclose(fp);
		assert_null(geo_open(a, NULL, err, sizeof(err)));
		assert_int_equal(strncmp(err, a, strlen(a)), 0);
		assert_non_null(strstr(err, "country.mmdb"));
		unlink(cf);
	}
}

/* The converter: quoted names, both families, an overlap cut short; the
 * reader's checks on a file whose ranges are out of order. */
static void
test_asn_build(void **state)
{
	static const char csv_text[] =
	    "1.0.0.0,1.0.0.255,13335,\"Cloudflare, Inc.\"\n"
	    "10.0.0.0,10.0.255.255,64500,\"A \"\"quoted\"\" name\"\n"
	    "10.0.128.0,10.1.0.255,64501,Later\n"
	    "2001:db8::,2001:db8:ffff:ffff:ffff:ffff:ffff:ffff,64502,Six\n";
	const char *csv[] = {"build/tests/geo-scratch/t.csv"};
	const char *bin = "build/tests/geo-scratch/t.bin";
	char err[512];
	struct asn_db db;
	uint32_t asn;
	const char *org;
	unsigned char b[16];
	FILE *fp;

	(void)state;
	assert_int_equal(system("mkdir -p build/tests/geo-scratch"), 0);
	assert_non_null(fp = fopen(csv[0], "w"));
	fputs(csv_text, fp);
	fclose(fp);
	assert_int_equal(
	    asn_build(bin, csv, 1, "2026-01-02", err, sizeof(err)), 0);
	assert_int_equal(asn_open(&db, bin, err, sizeof(err)), 0);
	assert_int_equal(asn_verify(&db, err, sizeof(err)), 0);
	assert_string_equal(db.date, "2026-01-02");
	assert_int_equal(db.n4, 3);
	assert_int_equal(db.n6, 1);
	inet_pton(AF_INET, "1.0.0.7", b);
	assert_int_equal(asn_lookup(&db, b, 4, &asn, &org), 1);
	assert_int_equal(asn, 13335);
	assert_string_equal(org, "Cloudflare, Inc.");
	inet_pton(AF_INET, "10.0.1.1", b);
	assert_int_equal(asn_lookup(&db, b, 4, &asn, &org), 1);
	assert_string_equal(org, "A \"quoted\" name");
	inet_pton(AF_INET, "10.0.200.1", b); /* the overlap: the later row */
	assert_int_equal(asn_lookup(&db, b, 4, &asn, &org), 1);
	assert_int_equal(asn, 64501);
	inet_pton(AF_INET, "10.2.0.0", b);
	assert_int_equal(asn_lookup(&db, b, 4, &asn, &org), 0);
	inet_pton(AF_INET6, "2001:db8::5", b);
	assert_int_equal(asn_lookup(&db, b, 16, &asn, &org), 1);
	assert_int_equal(asn, 64502);
	asn_close(&db);
	/* swap the first two IPv4 ranges: opens (cheap), fails the walk */
	{
		unsigned char rec[2][ASN_V4_REC];

		assert_non_null(fp = fopen(bin, "r+b"));
		assert_int_equal(fseek(fp, ASN_HEADER, SEEK_SET), 0);
		assert_int_equal(fread(rec, ASN_V4_REC, 2, fp), 2);
		assert_int_equal(fseek(fp, ASN_HEADER, SEEK_SET), 0);
		fwrite(rec[1], ASN_V4_REC, 1, fp);
		fwrite(rec[0], ASN_V4_REC, 1, fp);
		fclose(fp);
	}
	assert_int_equal(asn_open(&db, bin, err, sizeof(err)), 0);
	assert_int_equal(asn_verify(&db, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "out of order"));
	asn_close(&db);
	/* a bad row names its file and line */
	assert_non_null(fp = fopen(csv[0], "w"));
	fputs("1.0.0.0,1.0.0.255,13335,x\n1.0.1.0,nope,1,y\n", fp);
	fclose(fp);
	assert_int_equal(asn_build(bin, csv, 1, "", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "t.csv:2: not an address range"));
}

/* The AS of ip in the file bin, 0 when none. */
static uint32_t
asn_of(const char *bin, const char *ip)
{
	char err[512];
	struct asn_db db;
	uint32_t asn = 0;
	const char *org;
	unsigned char b[16];
	int v6 = strchr(ip, ':') != NULL;

	assert_int_equal(asn_open(&db, bin, err, sizeof(err)), 0);
	assert_int_equal(asn_verify(&db, err, sizeof(err)), 0);
	assert_int_equal(inet_pton(v6 ? AF_INET6 : AF_INET, ip, b), 1);
	if (asn_lookup(&db, b, v6 ? 16 : 4, &asn, &org) != 1)
		asn = 0;
	asn_close(&db);
	return asn;
}

/* Regression: a range that contains another lost its tail (1.3.0.1 had
 * no AS); nested two deep, overlapping, same start, v4 and v6. */
static void
test_asn_nested(void **state)
{
	static const char csv_text[] =
	    "1.0.0.0,1.255.255.255,100,Outer\n"
	    "1.2.0.0,1.2.255.255,200,Inner\n"
	    "1.2.3.0,1.2.3.255,300,Innermost\n"
	    "1.2.3.128,1.3.0.255,400,Overlap\n"
	    "5.0.0.0,5.0.255.255,500,Wide\n"
	    "5.0.0.0,5.0.0.255,600,Narrow\n"
	    "255.255.255.0,255.255.255.255,700,End\n"
	    "2001:db8::,2001:db8:ffff:ffff:ffff:ffff:ffff:ffff,6000,Six\n"
	    "2001:db8:1::,2001:db8:1:ffff:ffff:ffff:ffff:ffff,6001,In\n";
	static const struct {
		const char *ip;
		uint32_t asn;
	} cases[] = {
	    {"1.0.0.1", 100},
	    {"1.1.255.255", 100},
	    {"1.2.0.0", 200},
	    {"1.2.2.255", 200},
	    {"1.2.3.1", 300},
	    {"1.2.3.128", 400},
	    {"1.3.0.255", 400},
	    {"1.3.0.1", 400},
	    {"1.3.1.0", 100},
	    {"1.255.255.255", 100},
	    {"2.0.0.0", 0},
	    {"5.0.0.1", 600},
	    {"5.0.1.0", 500},
	    {"255.255.255.255", 700},
	    {"2001:db8::1", 6000},
	    {"2001:db8:1::1", 6001},
	    {"2001:db8:2::1", 6000},
	    {"2001:db9::1", 0},
	};
	const char *csv[] = {"build/tests/geo-scratch/nest.csv"};
	const char *bin = "build/tests/geo-scratch/nest.bin";
	char err[512];
	FILE *fp;

	(void)state;
	assert_int_equal(system("mkdir -p build/tests/geo-scratch"), 0);
	assert_non_null(fp = fopen(csv[0], "w"));
	fputs(csv_text, fp);
	fclose(fp);
	assert_int_equal(asn_build(bin, csv, 1, "", err, sizeof(err)), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (asn_of(bin, cases[i].ip) != cases[i].asn)
			fail_msg("%s: AS%u, want AS%u", cases[i].ip,
			    asn_of(bin, cases[i].ip), cases[i].asn);
	}
}

/* A FIFO in place of a CSV is refused, not waited on. */
static void
test_asn_fifo(void **state)
{
	const char *csv[] = {"build/tests/geo-scratch/fifo.csv"};
	char err[512];

	(void)state;
	assert_int_equal(system("mkdir -p build/tests/geo-scratch"), 0);
	unlink(csv[0]);
	assert_int_equal(mkfifo(csv[0], 0600), 0);
	assert_int_equal(asn_build("build/tests/geo-scratch/fifo.bin", csv, 1,
			     "", err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "fifo.csv"));
	unlink(csv[0]);
}

/* Lookups through the shared handle from several threads at once (the
 * TSan build checks them). */
static void *
lookup_thread(void *arg)
{
	const struct geo *g = geo_shared(NULL, 0);
	struct geo_info gi;
	char ip[32];
	long bad = 0;

	(void)arg;
	for (int i = 0; i < 2000; i++) {
		snprintf(
		    ip, sizeof(ip), "43.137.%d.%d", i / 256 % 256, i % 256);
		if (geo_lookup(g, ip, &gi) != 1 || gi.asn != 45090)
			bad++;
	}
	return (void *)bad;
}

static void
test_threads(void **state)
{
	pthread_t t[4];
	void *bad;
	char err[512];

	(void)state;
	setenv("PEEPHOLE_GEO_DIR", DATA, 1);
	for (int i = 0; i < 4; i++)
		assert_int_equal(
		    pthread_create(&t[i], NULL, lookup_thread, NULL), 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], &bad), 0);
		assert_null(bad);
	}
	assert_non_null(geo_shared(err, sizeof(err)));
	assert_string_equal(geo_dir(geo_shared(NULL, 0)), DATA);
	unsetenv("PEEPHOLE_GEO_DIR");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_scope),
	    cmocka_unit_test(test_lookup),
	    cmocka_unit_test(test_search),
	    cmocka_unit_test(test_asn_build),
	    cmocka_unit_test(test_asn_nested),
	    cmocka_unit_test(test_asn_fifo),
	    cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
