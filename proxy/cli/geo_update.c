/*
 * geo_update: `peephole geo update --from DIR`. The new files are staged
 * in HOME/geo.new.XXXXXX (copied, or the ASN CSVs converted), opened and
 * checked (geo_verify: every ASN range, a lookup answered by each file),
 * then swapped with HOME/geo in one renameat2(RENAME_EXCHANGE) (a plain
 * rename when there is none yet), so a reader sees the old set or the new
 * one, never a mix (where the exchange is not supported, two renames and
 * a note). A file DIR lacks is carried over from the old set. HOME/geo
 * must be a real directory: a symlink there is refused, as the exchange
 * would move the link and the clean-up would reach through it.
 */
#include "proxy/cli/geo_update.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "ca/ca.h"
#include "proxy/cli/args.h"
#include "proxy/cli/cli.h"
#include "proxy/geo/asn.h"
#include "proxy/geo/geo.h"

#define UPD_CMD "geo update"
#define UPD_MAX_FILE (1LL << 30) /* today's files are 8 and 12 MB */
#define UPD_RENAME_EXCHANGE 2    /* linux/fs.h */
#define UPD_MAX_HOME 4000        /* room for "/geo.new.XXXXXX/asn.bin.tmp" */

struct upd_opts {
	const char *from;
	const char *home_arg;
	char home[PATH_MAX];
};

/* Where each file of the new set came from, for the report. */
enum upd_how { UPD_NONE, UPD_NEW, UPD_KEPT };

static const char upd_help[] =
    "usage: peephole geo update --from DIR [--home DIR]\n"
    "\n"
    "Install newer geo data into the peephole home's geo/ (see `peephole\n"
    "geo --help`). DIR holds country.mmdb and/or asn.bin, or ip-location-db\n"
    "release files (geo-whois-asn-country.mmdb, asn-ipv4.csv,\n"
    "asn-ipv6.csv). Nothing is replaced unless the new files open and\n"
    "answer a lookup of " GEO_PROBE_IP ".\n"
    "\n"
    "  --from DIR  the new data\n"
    "  --home DIR  the peephole home (default $PEEPHOLE_HOME, else\n"
    "              ~/.peephole)\n"
    "  --help      print this help\n";

static int
upd_opt(int ch, char *arg, void *opts)
{
	struct upd_opts *o = opts;

	if (ch == 'f')
		o->from = arg;
	else if (ch == 'H')
		o->home_arg = arg;
	else
		return ARGS_UNKNOWN;
	return 0;
}

static int
upd_parse(int argc, char **argv, struct upd_opts *o)
{
	static const struct option longopts[] = {
	    {"from", required_argument, NULL, 'f'},
	    {"home", required_argument, NULL, 'H'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static const struct args_spec spec = {
	    UPD_CMD, upd_help, NULL, longopts, upd_opt};
	int rc;

	memset(o, 0, sizeof(*o));
	if ((rc = args_parse(&spec, argc, argv, o)) != CLI_OK ||
	    (rc = args_no_operands(UPD_CMD, argc, argv)) != CLI_OK)
		return rc;
	if (o->from == NULL || o->from[0] == '\0')
		return args_usage(UPD_CMD, "--from DIR is required");
	if (o->home_arg != NULL) {
		if (o->home_arg[0] == '\0' ||
		    strlen(o->home_arg) > UPD_MAX_HOME)
			return args_usage(UPD_CMD,
			    "bad --home (empty, or longer than 4000 bytes)");
		snprintf(o->home, sizeof(o->home), "%s", o->home_arg);
	} else if (ca_home(o->home, sizeof(o->home)) == -1) {
		fprintf(stderr,
		    "peephole " UPD_CMD ": cannot find the peephole "
		    "home: set PEEPHOLE_HOME or use --home DIR\n");
		return CLI_ERROR;
	} else if (strlen(o->home) > UPD_MAX_HOME) {
		fprintf(stderr,
		    "peephole " UPD_CMD ": the peephole home is longer than "
		    "4000 bytes: %.60s...\n",
		    o->home);
		return CLI_ERROR;
	}
	return CLI_OK;
}

static int
upd_exists(const char *dir, const char *file)
{
	char p[PATH_MAX + 64];
	struct stat st;

	snprintf(p, sizeof(p), "%s/%s", dir, file);
	return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/*
 * dir/file opened for reading if it is (or links to) a regular file.
 * O_NONBLOCK: a FIFO swapped in after upd_exists must not block the open
 * (nor the reads: a regular file ignores the flag). -1 with errno.
 */
static int
upd_open_src(const char *path)
{
	struct stat st;
	int fd;

	errno = 0;
	if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) == -1)
		return -1;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
		return fd;
	if (errno == 0)
		errno = EINVAL; /* not a regular file */
	close(fd);
	return -1;
}

/* Copy dir/file to to/as (a new file). 0, or -1 with err. */
static int
upd_copy(const char *dir, const char *file, const char *to, const char *as,
    char *err, size_t errlen)
{
	char src[PATH_MAX + 64], dst[PATH_MAX + 64], buf[65536];
	int in = -1, out = -1, rc = -1;
	long long total = 0;
	ssize_t n;

	snprintf(src, sizeof(src), "%s/%s", dir, file);
	snprintf(dst, sizeof(dst), "%s/%s", to, as);
	if ((in = upd_open_src(src)) == -1 ||
	    (out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) ==
		-1)
		goto fail;
	while ((n = read(in, buf, sizeof(buf))) > 0) {
		if ((total += n) > UPD_MAX_FILE) {
			errno = EFBIG;
			goto fail;
		}
		if (write(out, buf, (size_t)n) != n)
			goto fail;
	}
	if (n == 0 && fsync(out) == 0)
		rc = 0;
fail:
	if (rc == -1)
		snprintf(err, errlen, "%.400s -> %.400s: %s", src, dst,
		    strerror(errno));
	if (in != -1)
		close(in);
	if (out != -1 && close(out) == -1 && rc == 0) {
		snprintf(err, errlen, "%.400s: %s", dst, strerror(errno));
		rc = -1;
	}
	return rc;
}

/* The ASN file from ip-location-db CSVs in dir, dated by their mtime. */
static int
upd_convert(const char *dir, const char *stage, char *err, size_t errlen)
{
	static const char *const names[] = {"asn-ipv4.csv", "asn-ipv6.csv"};
	char paths[2][PATH_MAX + 32], out[PATH_MAX + 32], date[16] = "";
	const char *csv[2];
	struct stat st;
	struct tm tm;
	int n = 0;

	for (int i = 0; i < 2; i++) {
		snprintf(paths[n], sizeof(paths[n]), "%s/%s", dir, names[i]);
		if (stat(paths[n], &st) == 0) {
			if (date[0] == '\0' &&
			    gmtime_r(&st.st_mtime, &tm) != NULL)
				strftime(date, sizeof(date), "%F", &tm);
			csv[n] = paths[n];
			n++;
		}
	}
	snprintf(out, sizeof(out), "%s/%s", stage, GEO_ASN_FILE);
	return asn_build(out, csv, n, date, err, errlen);
}

/*
 * Stage the new country file: DIR's, else the old one. *how says which.
 */
static int
upd_stage_country(const struct upd_opts *o, const char *old, const char *stage,
    enum upd_how *how, char *err, size_t errlen)
{
	static const char release[] = "geo-whois-asn-country.mmdb";

	*how = UPD_NEW;
	if (upd_exists(o->from, GEO_COUNTRY_FILE))
		return upd_copy(o->from, GEO_COUNTRY_FILE, stage,
		    GEO_COUNTRY_FILE, err, errlen);
	if (upd_exists(o->from, release))
		return upd_copy(
		    o->from, release, stage, GEO_COUNTRY_FILE, err, errlen);
	*how = UPD_NONE;
	if (!upd_exists(old, GEO_COUNTRY_FILE))
		return 0;
	*how = UPD_KEPT;
	return upd_copy(
	    old, GEO_COUNTRY_FILE, stage, GEO_COUNTRY_FILE, err, errlen);
}

static int
upd_stage_asn(const struct upd_opts *o, const char *old, const char *stage,
    enum upd_how *how, char *err, size_t errlen)
{
	*how = UPD_NEW;
	if (upd_exists(o->from, GEO_ASN_FILE))
		return upd_copy(
		    o->from, GEO_ASN_FILE, stage, GEO_ASN_FILE, err, errlen);
	if (upd_exists(o->from, "asn-ipv4.csv") ||
	    upd_exists(o->from, "asn-ipv6.csv"))
		return upd_convert(o->from, stage, err, errlen);
	*how = UPD_NONE;
	if (!upd_exists(old, GEO_ASN_FILE))
		return 0;
	*how = UPD_KEPT;
	return upd_copy(old, GEO_ASN_FILE, stage, GEO_ASN_FILE, err, errlen);
}

/*
 * stage/source.txt: for each staged file, its line from the source.txt
 * of where it came from (DIR for new files, the old set for kept ones).
 */
static void
upd_stage_source(const char *from, const char *old, const char *stage,
    const enum upd_how how[2])
{
	static const char *const files[2] = {GEO_COUNTRY_FILE, GEO_ASN_FILE};
	char p[PATH_MAX + 32], line[512];
	FILE *in, *out;

	snprintf(p, sizeof(p), "%s/%s", stage, GEO_SOURCE_FILE);
	if ((out = fopen(p, "w")) == NULL)
		return;
	for (int i = 0; i < 2; i++) {
		int n = 0;

		if (how[i] == UPD_NONE)
			continue;
		snprintf(p, sizeof(p), "%s/%s", how[i] == UPD_NEW ? from : old,
		    GEO_SOURCE_FILE);
		if ((in = fopen(p, "r")) == NULL)
			continue;
		while (n++ < 64 && fgets(line, sizeof(line), in) != NULL)
			if (strncmp(line, files[i], strlen(files[i])) == 0 &&
			    line[strlen(files[i])] == ' ')
				fputs(line, out);
		fclose(in);
	}
	fclose(out);
}

/*
 * Remove a staging or old directory: the files a set may hold, unlinked
 * relative to the directory opened without following a link, so that a
 * symlink in dir's place is never emptied through.
 */
static void
upd_rmdir(const char *dir)
{
	static const char *const files[] = {GEO_COUNTRY_FILE, GEO_ASN_FILE,
	    GEO_SOURCE_FILE, GEO_ASN_FILE ".tmp"};
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd != -1) {
		for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
			unlinkat(fd, files[i], 0);
		close(fd);
	}
	if (rmdir(dir) == -1 && errno != ENOENT)
		fprintf(stderr,
		    "peephole " UPD_CMD ": note: %s left behind: %s\n", dir,
		    strerror(errno));
}

/* The data set in dir described, or why it cannot be read. */
static void
upd_describe(const char *dir, char *buf, size_t len)
{
	char err[512];
	struct geo *g = geo_open(dir, NULL, err, sizeof(err));

	if (g == NULL)
		snprintf(buf, len, "%s", err);
	else
		geo_source(g, buf, len);
	geo_close(g);
}

/* Drop the staging directory from a message: "new country.mmdb: ...". */
static void
upd_unstage(const char *stage, char *err, size_t errlen)
{
	size_t n = strlen(stage);
	char *p = strstr(err, stage);

	if (p != NULL && p[n] == '/' && errlen > 4) {
		memmove(p + 4, p + n + 1, strlen(p + n + 1) + 1);
		memcpy(p, "new ", 4);
	}
}

/* Stage and check the new set. 0, or -1 with err (stage removed). */
static int
upd_stage(const struct upd_opts *o, const char *old, const char *stage,
    enum upd_how how[2], char *err, size_t errlen)
{
	struct geo *g;

	if (upd_stage_country(o, old, stage, &how[0], err, errlen) == -1 ||
	    upd_stage_asn(o, old, stage, &how[1], err, errlen) == -1)
		return -1;
	if (how[0] != UPD_NEW && how[1] != UPD_NEW) {
		snprintf(err, errlen,
		    "%s holds none of " GEO_COUNTRY_FILE ", " GEO_ASN_FILE
		    ", geo-whois-asn-country.mmdb, asn-ipv4.csv, asn-ipv6.csv",
		    o->from);
		return -1;
	}
	upd_stage_source(o->from, old, stage, how);
	if ((g = geo_open(stage, NULL, err, errlen)) == NULL)
		return -1;
	if (geo_verify(g, err, errlen) == -1) {
		geo_close(g);
		return -1;
	}
	geo_close(g);
	return 0;
}

/*
 * Swap stage in for old (stage then holds the old set). Where the file
 * system or kernel has no RENAME_EXCHANGE (EINVAL, ENOSYS), two renames:
 * old to a second name, stage to old, the old set back to stage; a
 * reader between the two finds no geo/ and falls back to the data
 * beside the binary for that moment. Said on stderr. 0 / -1 (errno).
 */
static int
upd_install(const char *stage, const char *old, int had_old)
{
	char aside[PATH_MAX + 16];

	if (!had_old)
		return rename(stage, old);
	if (syscall(SYS_renameat2, AT_FDCWD, stage, AT_FDCWD, old,
		UPD_RENAME_EXCHANGE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	fprintf(stderr,
	    "peephole " UPD_CMD ": note: no atomic exchange here (%s); "
	    "replacing %s with two renames\n",
	    strerror(errno), old);
	snprintf(aside, sizeof(aside), "%.4040s.old", stage);
	if (rename(old, aside) == -1)
		return -1;
	if (rename(stage, old) == -1) {
		int e = errno;

		rename(aside, old);
		errno = e;
		return -1;
	}
	return rename(aside, stage);
}

/*
 * Whether old (HOME/geo) holds a set: 1 a directory, 0 nothing there,
 * -1 with a message when it is something else. A symlink is refused: the
 * exchange would swap the link itself into the staging name and the
 * clean-up would then unlink through it, in the link's target.
 */
static int
upd_check_old(const char *old)
{
	struct stat st;

	if (lstat(old, &st) == -1) {
		if (errno == ENOENT)
			return 0;
		fprintf(stderr, "peephole " UPD_CMD ": %s: %s\n", old,
		    strerror(errno));
		return -1;
	}
	if (S_ISDIR(st.st_mode))
		return 1;
	fprintf(stderr,
	    "peephole " UPD_CMD ": %s is %s, not a directory: refusing to "
	    "replace it (make it a directory, or remove it, and run again); "
	    "nothing replaced\n",
	    old, S_ISLNK(st.st_mode) ? "a symbolic link" : "a file");
	return -1;
}

static void
upd_report(
    const char *old, const char *was, int had_old, const enum upd_how how[2])
{
	static const char *const files[2] = {GEO_COUNTRY_FILE, GEO_ASN_FILE};
	char now[1024];

	upd_describe(old, now, sizeof(now));
	printf("installed into %s\n", old);
	for (int i = 0; i < 2; i++)
		if (how[i] != UPD_NONE)
			printf("  %-13s %s\n", files[i],
			    how[i] == UPD_KEPT ? "kept"
				: had_old      ? "replaced"
					       : "added");
	printf("was: %s\nnow: %s\n", had_old ? was : "(none)", now);
}

int
cli_geo_update(int argc, char **argv)
{
	struct upd_opts o;
	char old[PATH_MAX], stage[PATH_MAX], was[1024], err[1024];
	enum upd_how how[2];
	int rc, had_old;

	if ((rc = upd_parse(argc, argv, &o)) != CLI_OK)
		return rc == ARGS_HELP ? CLI_OK : rc;
	/* o.home is at most UPD_MAX_HOME (4000) bytes: nothing is cut */
	snprintf(old, sizeof(old), "%.4000s/geo", o.home);
	snprintf(stage, sizeof(stage), "%.4000s/geo.new.XXXXXX", o.home);
	if ((had_old = upd_check_old(old)) == -1)
		return CLI_ERROR;
	if ((mkdir(o.home, 0700) == -1 && errno != EEXIST) ||
	    mkdtemp(stage) == NULL) {
		fprintf(stderr, "peephole " UPD_CMD ": %s: %s\n", o.home,
		    strerror(errno));
		return CLI_ERROR;
	}
	upd_describe(old, was, sizeof(was));
	if (upd_stage(&o, old, stage, how, err, sizeof(err)) == -1) {
		upd_unstage(stage, err, sizeof(err));
		fprintf(stderr,
		    "peephole " UPD_CMD ": %s refused: %s; nothing replaced\n",
		    o.from, err);
		upd_rmdir(stage);
		return CLI_ERROR;
	}
	if (upd_install(stage, old, had_old) == -1) {
		fprintf(stderr, "peephole " UPD_CMD ": rename %s -> %s: %s\n",
		    stage, old, strerror(errno));
		upd_rmdir(stage);
		return CLI_ERROR;
	}
	if (had_old)
		upd_rmdir(stage); /* the old set, swapped out */
	chmod(old, 0755);
	upd_report(old, was, had_old, how);
	return CLI_OK;
}
