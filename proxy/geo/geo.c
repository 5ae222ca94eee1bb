/*
 * geo: see geo.h. Country from an MMDB through libmaxminddb (mmap mode),
 * AS and organisation from the range file of proxy/geo/asn.h. Both are
 * read-only maps once open, so lookups from any thread are safe.
 */
#include "proxy/geo/geo.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <maxminddb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ca/ca.h"
#include "proxy/geo/asn.h"

struct geo {
	MMDB_s mmdb;
	int have_country;
	struct asn_db asn;
	int have_asn;
	char dir[PATH_MAX];
	char source[1024]; /* geo_source's text */
};

/* Scope of an IPv4 address in host order. */
static const char *
geo_scope4(uint32_t a)
{
	if ((a >> 24) == 10 || (a >> 20) == (172u << 4 | 1) ||
	    (a >> 16) == (192u << 8 | 168))
		return "private";
	if ((a >> 24) == 127)
		return "loopback";
	if ((a >> 16) == (169u << 8 | 254))
		return "link-local";
	if ((a >> 22) == (100u << 2 | 1)) /* 100.64.0.0/10 */
		return "cgnat";
	if ((a >> 8) == (192u << 16 | 0 << 8 | 2) ||
	    (a >> 8) == (198u << 16 | 51u << 8 | 100) ||
	    (a >> 8) == (203u << 16 | 0 << 8 | 113))
		return "documentation";
	if ((a >> 28) == 14)
		return "multicast";
	if (a == 0)
		return "unspecified";
	if ((a >> 24) == 0 || (a >> 28) == 15 || (a >> 17) == (198u << 7 | 9))
		return "reserved"; /* 0/8, 240/4, 198.18/15 (benchmarking) */
	return NULL;
}

const char *
geo_scope(const char *ip)
{
	unsigned char b[16];
	static const unsigned char zero[16];

	if (ip == NULL)
		return NULL;
	if (inet_pton(AF_INET, ip, b) == 1)
		return geo_scope4((uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
		    (uint32_t)b[2] << 8 | b[3]);
	if (inet_pton(AF_INET6, ip, b) != 1)
		return NULL;
	if (memcmp(b, zero, 10) == 0 && b[10] == 0xff && b[11] == 0xff)
		return geo_scope4((uint32_t)b[12] << 24 |
		    (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 |
		    b[15]); /* v4-mapped */
	if (memcmp(b, zero, 15) == 0)
		return b[15] == 1 ? "loopback"
		    : b[15] == 0  ? "unspecified"
				  : "reserved";
	if ((b[0] & 0xfe) == 0xfc)
		return "private"; /* fc00::/7 unique local */
	if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
		return "link-local";
	if (b[0] == 0xff)
		return "multicast";
	if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8)
		return "documentation"; /* 2001:db8::/32 */
	if ((b[0] & 0xe0) != 0x20)
		return "reserved"; /* outside 2000::/3 */
	return NULL;
}

/*
 * The package and date the data's source.txt gives for file (lines of
 * "FILE PACKAGE VERSION DATE", written by `make deps` and carried along
 * by `geo update`), into buf; 0 when it names none.
 */
static int
geo_source_line(const char *dir, const char *file, char *buf, size_t len)
{
	char path[PATH_MAX + 16], line[512], f[128], pkg[128], ver[32], d[16];
	FILE *fp;
	int found = 0, n = 0;

	snprintf(path, sizeof(path), "%s/source.txt", dir);
	if ((fp = fopen(path, "r")) == NULL)
		return 0;
	while (!found && n++ < 64 && fgets(line, sizeof(line), fp) != NULL)
		if (sscanf(line, "%127s %127s %31s %15s", f, pkg, ver, d) ==
			4 &&
		    strcmp(f, file) == 0) {
			snprintf(buf, len, "%s %s, %s", pkg, ver, d);
			found = 1;
		}
	fclose(fp);
	return found;
}

/* The MMDB's build date, YYYY-MM-DD. */
static void
geo_mmdb_date(const MMDB_s *m, char *buf, size_t len)
{
	time_t t = (time_t)m->metadata.build_epoch;
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(buf, len, "%F", &tm) == 0)
		snprintf(buf, len, "unknown date");
}

/* Describe the files open in g into g->source. */
static void
geo_describe(struct geo *g)
{
	char c[256] = "", a[256] = "";
	size_t n;

	if (g->have_country &&
	    !geo_source_line(g->dir, GEO_COUNTRY_FILE, c, sizeof(c)))
		geo_mmdb_date(&g->mmdb, c, sizeof(c));
	if (g->have_asn && !geo_source_line(g->dir, GEO_ASN_FILE, a, sizeof(a)))
		snprintf(a, sizeof(a), "%s", g->asn.date);
	g->source[0] = '\0';
	if (g->have_country)
		snprintf(g->source, sizeof(g->source),
		    "country: %.400s/%s (%s)", g->dir, GEO_COUNTRY_FILE, c);
	n = strlen(g->source);
	if (g->have_asn)
		snprintf(g->source + n, sizeof(g->source) - n,
		    "%sasn: %.400s/%s (%s)", n > 0 ? "; " : "", g->dir,
		    GEO_ASN_FILE, a);
}

static int
geo_exists(int dfd, const char *file)
{
	struct stat st;

	return fstatat(dfd, file, &st, 0) == 0;
}

/* "/proc/self/fd/N/asn.bin: why" in err said as "dir/asn.bin: why". */
static void
geo_err_dir(char *err, size_t errlen, const char *path, const char *dir)
{
	char rest[512];
	size_t n = strlen(path);

	if (strcmp(path, dir) == 0 || strncmp(err, path, n) != 0)
		return;
	snprintf(rest, sizeof(rest), "%s", err + n);
	snprintf(err, errlen, "%.3000s%s", dir, rest);
}

/*
 * Open path/file into g, path being how to reach the open directory
 * (/proc/self/fd/N) and dir its name for messages. 0 / -1 with err.
 */
static int
geo_open_files(struct geo *g, int dfd, const char *path, const char *dir,
    char *err, size_t errlen)
{
	char p[PATH_MAX + 64];
	int rc;

	if (geo_exists(dfd, GEO_COUNTRY_FILE)) {
		snprintf(p, sizeof(p), "%s/%s", path, GEO_COUNTRY_FILE);
		if ((rc = MMDB_open(p, MMDB_MODE_MMAP, &g->mmdb)) !=
		    MMDB_SUCCESS) {
			snprintf(err, errlen, "%.3000s/%s: %s", dir,
			    GEO_COUNTRY_FILE, MMDB_strerror(rc));
			return -1;
		}
		g->have_country = 1;
	}
	if (geo_exists(dfd, GEO_ASN_FILE)) {
		snprintf(p, sizeof(p), "%s/%s", path, GEO_ASN_FILE);
		if (asn_open(&g->asn, p, err, errlen) == -1) {
			geo_err_dir(err, errlen, path, dir);
			return -1;
		}
		g->have_asn = 1;
	}
	return 0;
}

/*
 * Open the data in dir into g. 0; 1 when dir holds neither file (the
 * search goes on); -1 with a message in err when a file is there but
 * cannot be read. The directory is opened once and both files through
 * it (/proc/self/fd/N/...), so that a `geo update` swapping the set in
 * between cannot give one file of each set.
 */
static int
geo_open_dir(struct geo *g, const char *dir, char *err, size_t errlen)
{
	char path[64];
	int dfd, rc;

	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return 1;
	if (!geo_exists(dfd, GEO_COUNTRY_FILE) &&
	    !geo_exists(dfd, GEO_ASN_FILE)) {
		close(dfd);
		return 1;
	}
	snprintf(g->dir, sizeof(g->dir), "%s", dir);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", dfd);
	rc = geo_open_files(
	    g, dfd, access(path, X_OK) == 0 ? path : dir, dir, err, errlen);
	close(dfd);
	if (rc == 0)
		geo_describe(g);
	return rc;
}

/* The directory of the running binary into buf; -1 when unknown. */
static int
geo_exe_dir(char *buf, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", buf, len - 1);
	char *slash;

	if (n <= 0)
		return -1;
	buf[n] = '\0';
	if ((slash = strrchr(buf, '/')) == NULL)
		return -1;
	*slash = '\0';
	return 0;
}

/* The places searched when neither dir nor $PEEPHOLE_GEO_DIR is given. */
static int
geo_candidates(const char *home, char (*c)[PATH_MAX], int max)
{
	char exe[PATH_MAX];
	int n = 0;

	if (home != NULL && home[0] != '\0' && n < max)
		snprintf(c[n++], PATH_MAX, "%s/geo", home);
	if (geo_exe_dir(exe, sizeof(exe) - 16) == 0) {
		static const char *const rel[] = {"geo", "../geo", "build/geo"};

		char p[PATH_MAX];

		for (size_t i = 0; i < 3 && n < max; i++) {
			snprintf(p, sizeof(p), "%.*s/%s", PATH_MAX - 16, exe,
			    rel[i]);
			/* build/geo rather than build/asan/../geo */
			if (realpath(p, c[n]) == NULL)
				snprintf(c[n], PATH_MAX, "%s", p);
			n++;
		}
	}
	return n;
}

struct geo *
geo_open(const char *dir, const char *home, char *err, size_t errlen)
{
	char cand[4][PATH_MAX], tried[1024] = "";
	const char *env = getenv("PEEPHOLE_GEO_DIR");
	struct geo *g;
	int n, rc = 1;

	if ((g = calloc(1, sizeof(*g))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (dir == NULL && env != NULL && env[0] != '\0')
		dir = env;
	if (dir != NULL) {
		snprintf(cand[0], sizeof(cand[0]), "%s", dir);
		n = 1;
	} else
		n = geo_candidates(home, cand, 4);
	for (int i = 0; i < n && rc == 1; i++) {
		size_t t = strlen(tried);

		snprintf(tried + t, sizeof(tried) - t, "%s%s", t ? ", " : "",
		    cand[i]);
		if ((rc = geo_open_dir(g, cand[i], err, errlen)) == -1)
			break;
	}
	if (rc == 0)
		return g;
	if (rc == 1)
		snprintf(err, errlen,
		    "no geo data (%s, %s) in %s: run make deps, or "
		    "peephole geo update --from DIR",
		    GEO_COUNTRY_FILE, GEO_ASN_FILE, tried);
	geo_close(g);
	return NULL;
}

/* The country code of sa into out (3 bytes); 1 when found. */
static int
geo_country(const struct geo *g, const struct sockaddr *sa, char *out)
{
	MMDB_lookup_result_s res;
	MMDB_entry_data_s d;
	int mmerr;

	if (!g->have_country)
		return 0;
	res = MMDB_lookup_sockaddr(&g->mmdb, sa, &mmerr);
	if (mmerr != MMDB_SUCCESS || !res.found_entry)
		return 0;
	if (MMDB_get_value(&res.entry, &d, "country_code", NULL) !=
		MMDB_SUCCESS ||
	    !d.has_data || d.type != MMDB_DATA_TYPE_UTF8_STRING ||
	    d.data_size != 2)
		return 0;
	memcpy(out, d.utf8_string, 2);
	out[2] = '\0';
	return 1;
}

int
geo_lookup(const struct geo *g, const char *ip, struct geo_info *out)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	const char *org = "";
	int found = 0, v4;

	memset(out, 0, sizeof(*out));
	memset(&sin, 0, sizeof(sin));
	memset(&sin6, 0, sizeof(sin6));
	sin.sin_family = AF_INET;
	sin6.sin6_family = AF_INET6;
	if (ip == NULL)
		return -1;
	v4 = inet_pton(AF_INET, ip, &sin.sin_addr) == 1;
	if (!v4 && inet_pton(AF_INET6, ip, &sin6.sin6_addr) != 1)
		return -1;
	if (!v4 && IN6_IS_ADDR_V4MAPPED(&sin6.sin6_addr)) {
		/* the MMDB's IPv6 tree does not alias ::ffff:0:0/96 */
		memcpy(&sin.sin_addr, sin6.sin6_addr.s6_addr + 12, 4);
		v4 = 1;
	}
	if ((out->scope = geo_scope(ip)) != NULL)
		return 1;
	if (g == NULL)
		return 0;
	if (v4) {
		found |= geo_country(g, (struct sockaddr *)&sin, out->country);
		found |= g->have_asn &&
		    asn_lookup(&g->asn, (const unsigned char *)&sin.sin_addr, 4,
			&out->asn, &org);
	} else {
		found |= geo_country(g, (struct sockaddr *)&sin6, out->country);
		found |= g->have_asn &&
		    asn_lookup(
			&g->asn, sin6.sin6_addr.s6_addr, 16, &out->asn, &org);
	}
	if (out->asn != 0)
		snprintf(out->org, sizeof(out->org), "%s", org);
	return found;
}

void
geo_source(const struct geo *g, char *buf, size_t len)
{
	if (len > 0)
		snprintf(buf, len, "%s", g != NULL ? g->source : "");
}

static pthread_once_t geo_shared_once = PTHREAD_ONCE_INIT;
static struct geo *geo_shared_g;
static char geo_shared_err[1024];

static void
geo_shared_open(void)
{
	char home[PATH_MAX];

	geo_shared_g =
	    geo_open(NULL, ca_home(home, sizeof(home)) == 0 ? home : NULL,
		geo_shared_err, sizeof(geo_shared_err));
}

const struct geo *
geo_shared(char *err, size_t errlen)
{
	pthread_once(&geo_shared_once, geo_shared_open);
	if (geo_shared_g == NULL && errlen > 0)
		snprintf(err, errlen, "%s", geo_shared_err);
	return geo_shared_g;
}

void
geo_label(const struct geo_info *gi, char *buf, size_t len)
{
	if (gi->scope != NULL)
		snprintf(buf, len, "%s", gi->scope);
	else if (gi->country[0] != '\0' && gi->asn != 0)
		snprintf(buf, len, "%s AS%u", gi->country, gi->asn);
	else if (gi->country[0] != '\0')
		snprintf(buf, len, "%s", gi->country);
	else if (gi->asn != 0)
		snprintf(buf, len, "AS%u", gi->asn);
	else
		snprintf(buf, len, "?");
}

const char *
geo_dir(const struct geo *g)
{
	return g != NULL ? g->dir : "";
}

/* One record of a search node: a node, empty, or data that decodes. */
static int
geo_mmdb_record(MMDB_entry_s *e, uint8_t type, uint32_t *last)
{
	MMDB_entry_data_list_s *list = NULL;
	int rc;

	if (type == MMDB_RECORD_TYPE_INVALID)
		return -1;
	if (type != MMDB_RECORD_TYPE_DATA || e->offset == *last)
		return 0;
	rc = MMDB_get_entry_data_list(e, &list);
	MMDB_free_entry_data_list(list);
	*last = e->offset;
	return rc;
}

/*
 * The whole country file read through, as libmaxminddb's (unexported)
 * MMDB_verify_database would: the metadata decodes, every node of the
 * search tree reads, each record is a node, empty, or data that decodes.
 * Consecutive records mostly share their data: it is decoded once per
 * run. 0; an MMDB_ error code; -1 for a record out of range.
 */
static int
geo_mmdb_verify(const MMDB_s *mmdb)
{
	MMDB_entry_data_list_s *meta = NULL;
	MMDB_search_node_s node;
	uint32_t last = UINT32_MAX;
	int rc;

	rc = MMDB_get_metadata_as_entry_data_list(mmdb, &meta);
	MMDB_free_entry_data_list(meta);
	if (rc != MMDB_SUCCESS)
		return rc;
	for (uint32_t i = 0; i < mmdb->metadata.node_count; i++) {
		if ((rc = MMDB_read_node(mmdb, i, &node)) != MMDB_SUCCESS)
			return rc;
		if ((rc = geo_mmdb_record(&node.left_record_entry,
			 node.left_record_type, &last)) != 0 ||
		    (rc = geo_mmdb_record(&node.right_record_entry,
			 node.right_record_type, &last)) != 0)
			return rc;
	}
	return 0;
}

int
geo_verify(const struct geo *g, char *err, size_t errlen)
{
	struct geo_info gi;

	int rc;

	if (g->have_asn && asn_verify(&g->asn, err, errlen) == -1)
		return -1;
	/* the whole search tree and data section: a lookup of one address
	 * reads a few nodes and would pass most corrupted files */
	if (g->have_country && (rc = geo_mmdb_verify(&g->mmdb)) != 0) {
		snprintf(err, errlen, "%.3000s/%s: %s", g->dir,
		    GEO_COUNTRY_FILE,
		    rc > 0 ? MMDB_strerror(rc)
			   : "a search tree record is out of range");
		return -1;
	}
	if (geo_lookup(g, GEO_PROBE_IP, &gi) != 1 ||
	    (g->have_country && gi.country[0] == '\0') ||
	    (g->have_asn && gi.asn == 0)) {
		snprintf(
		    err, errlen, "%s: no answer for %s", g->dir, GEO_PROBE_IP);
		return -1;
	}
	return 0;
}

void
geo_close(struct geo *g)
{
	if (g == NULL)
		return;
	if (g->have_country)
		MMDB_close(&g->mmdb);
	if (g->have_asn)
		asn_close(&g->asn);
	free(g);
}
