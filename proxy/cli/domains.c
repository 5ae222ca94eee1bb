/*
 * domains: `peephole domains`, the catalogue of every name the capture saw
 * (request hosts, connection targets, DNS answers, names found for streams
 * to bare addresses), from the domain_catalogue view.
 */
#include "proxy/cli/cli.h"

#include <getopt.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/cli/args.h"
#include "proxy/store/db.h"
#include "proxy/cli/output.h"
#include "proxy/cli/views.h"
#include "proxy/geo/geo.h"

#define DOMAINS_CMD "domains"
/* Columns of the text and CSV tables; ips stays last, it is the widest. */
#define DOMAINS_NCOLS 16
/* Addresses of one domain looked up (the rest are listed, not placed). */
#define DOMAINS_GEO_MAX 256

struct domains_opts {
	const char *db;
	const char *order; /* SQL ORDER BY clause, from domains_sorts */
	int wide;          /* full cells on a terminal too */
	int utc;           /* times in UTC, not local */
	enum out_format fmt;
};

/* Counts sort largest first, times oldest first except "last" (newest
 * first, which is what one wants after a capture). */
static const struct {
	const char *name;
	const char *order;
} domains_sorts[] = {
    {"name", "name"},
    {"first", "first_seen_us, name"},
    {"last", "last_seen_us DESC, name"},
    {"requests", "requests DESC, name"},
    {"bytes", "bytes_up + bytes_down DESC, name"},
    {"connections", "connections DESC, name"},
};

static const char domains_help[] =
    "usage: peephole domains [--sort KEY] [--json | --csv] [--wide] [--utc]\n"
    "                        [--db FILE]\n"
    "\n"
    "Every host the capture saw (as a request host, a connection target or\n"
    "TLS server name, or a DNS answer), with first and last seen,\n"
    "connections (that named the host themselves), inferred connections\n"
    "(to a bare address the same client had just seen the name resolve\n"
    "to; see `peephole streams`), requests, bytes up (request headers +\n"
    "bodies) and down\n"
    "(response headers + bodies), ports, protocols, how many connections\n"
    "were intercepted and passed through, whether peephole learned to pass\n"
    "it through (pinned: see `peephole passthrough`), how a connection\n"
    "that asked only for an IP address was given the name (named by: sni,\n"
    "proxy-dns, app-dns or connect; see `peephole streams`), and IP\n"
    "addresses with where each is: country, autonomous system and\n"
    "organisation (\"where\": \"CN AS45090\" per address in the table, with\n"
    "the organisation in CSV; \"ips_geo\", \"country\", \"asn\" and \"org\"\n"
    "in JSON), or what the address is instead (private, loopback, ...).\n"
    "See `peephole geo` for the data and its attribution.\n"
    "\n"
    "  --sort KEY  name (default), first (oldest first), last (newest\n"
    "              first), requests, bytes or connections (largest first)\n"
    "  --json      print a JSON array of objects\n"
    "  --csv       print CSV with a header row\n"
    "  --wide      do not fit the table to the terminal (on a terminal,\n"
    "              long cells are cut with '…' and the least useful\n"
    "              columns left out)\n"
    "  --utc       times in ISO-8601 UTC, not local time\n"
    "  --db FILE   database to read (default " CLI_DEFAULT_DB ")\n"
    "  --help      print this help\n";

static int
domains_opt(int ch, char *arg, void *opts)
{
	struct domains_opts *o = opts;
	size_t i, n = sizeof(domains_sorts) / sizeof(domains_sorts[0]);

	switch (ch) {
	case 'd':
		o->db = arg;
		break;
	case 's':
		for (i = 0; i < n; i++)
			if (strcmp(arg, domains_sorts[i].name) == 0)
				break;
		if (i == n)
			return args_usage(DOMAINS_CMD,
			    "bad value for --sort: '%s' (want name, "
			    "first, last, requests, bytes or "
			    "connections)",
			    arg);
		o->order = domains_sorts[i].order;
		break;
	default:
		return args_table(DOMAINS_CMD, ch, &o->fmt, &o->wide, &o->utc);
	}
	return 0;
}

static int
domains_parse(int argc, char **argv, struct domains_opts *o)
{
	static const struct option longopts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"sort", required_argument, NULL, 's'},
	    {"json", no_argument, NULL, 'j'},
	    {"csv", no_argument, NULL, 'c'},
	    {"wide", no_argument, NULL, 'w'},
	    {"utc", no_argument, NULL, 'u'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static const struct args_spec spec = {
	    DOMAINS_CMD, domains_help, NULL, longopts, domains_opt};
	int rc;

	memset(o, 0, sizeof(*o)); /* --wide and --utc are off unless given */
	o->db = CLI_DEFAULT_DB;
	o->order = domains_sorts[0].order;
	o->fmt = OUT_TEXT;
	if ((rc = args_parse(&spec, argc, argv, o)) != CLI_OK)
		return rc;
	return args_no_operands(DOMAINS_CMD, argc, argv);
}

/* Split "a,b,c" into a JSON array, numbers when numeric is set. */
static json_t *
domains_list(const char *s, int numeric)
{
	json_t *a;
	char *copy, *p, *tok, *save = NULL;

	if ((a = json_array()) == NULL || (copy = strdup(s)) == NULL) {
		json_decref(a);
		return NULL;
	}
	for (p = copy; (tok = strtok_r(p, ",", &save)) != NULL; p = NULL)
		json_array_append_new(a,
		    numeric ? json_integer(strtoll(tok, NULL, 10))
			    : out_json_str(tok));
	free(copy);
	return a;
}

/* Append v to the JSON array a unless it is there already. */
static void
domains_add_distinct(json_t *a, json_t *v)
{
	for (size_t i = 0; i < json_array_size(a); i++)
		if (json_equal(json_array_get(a, i), v)) {
			json_decref(v);
			return;
		}
	json_array_append_new(a, v);
}

/* One address of ips_geo: ip, country, asn, org, scope (null unknown). */
static json_t *
domains_geo_one(const char *ip, const struct geo_info *gi)
{
	json_t *o = json_object();

	if (o == NULL)
		return NULL;
	json_object_set_new(o, "ip", out_json_str(ip));
	out_json_geo(o, gi);
	return o;
}

/*
 * The geo keys of a domain's JSON object from its "a,b,c" addresses:
 * "ips_geo" (one object per address) and the distinct "country" (or
 * scope), "asn" and "org" values for the web UI's columns.
 */
static void
domains_geo_json(json_t *o, const char *ips)
{
	const struct geo *g = geo_shared(NULL, 0);
	json_t *all = json_array(), *cc = json_array(), *asn = json_array();
	json_t *org = json_array();
	char *copy = strdup(ips), *p, *tok, *save = NULL;
	struct geo_info gi;
	int n = 0;

	for (p = copy; copy != NULL && n < DOMAINS_GEO_MAX &&
	     (tok = strtok_r(p, ",", &save)) != NULL;
	     p = NULL, n++) {
		if (geo_lookup(g, tok, &gi) == -1)
			continue;
		json_array_append_new(all, domains_geo_one(tok, &gi));
		if (gi.scope != NULL || gi.country[0] != '\0')
			domains_add_distinct(
			    cc, json_string(gi.scope ? gi.scope : gi.country));
		if (gi.asn != 0)
			domains_add_distinct(asn, json_integer(gi.asn));
		if (gi.org[0] != '\0')
			domains_add_distinct(org, out_json_str(gi.org));
	}
	free(copy);
	json_object_set_new(o, "ips_geo", all);
	json_object_set_new(o, "country", cc);
	json_object_set_new(o, "asn", asn);
	json_object_set_new(o, "org", org);
}

/*
 * The "where" cell: geo_label per address, in the order of ips, joined
 * by ","; in CSV with the organisation too, joined by "; " (names have
 * commas).
 */
static void
domains_where(const char *ips, enum out_format fmt, char *buf, size_t len)
{
	const struct geo *g = geo_shared(NULL, 0);
	char *copy = strdup(ips), *p, *tok, *save = NULL, lab[64];
	struct geo_info gi;
	size_t off = 0;
	int n = 0;

	buf[0] = '\0';
	for (p = copy; copy != NULL && n < DOMAINS_GEO_MAX && off < len &&
	     (tok = strtok_r(p, ",", &save)) != NULL;
	     p = NULL, n++) {
		if (geo_lookup(g, tok, &gi) == -1)
			snprintf(lab, sizeof(lab), "?");
		else
			geo_label(&gi, lab, sizeof(lab));
		if (fmt == OUT_CSV)
			off += (size_t)snprintf(buf + off, len - off,
			    "%s%s%s%s", n ? "; " : "", lab,
			    gi.org[0] ? " " : "", gi.org);
		else
			off += (size_t)snprintf(
			    buf + off, len - off, "%s%s", n ? "," : "", lab);
	}
	free(copy);
}

static const char *
domains_col(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);

	return t != NULL ? (const char *)t : "";
}

/* A time column as an ISO string, or JSON null when never seen. */
static json_t *
domains_json_time(sqlite3_stmt *s, int i)
{
	char buf[40];

	if (sqlite3_column_type(s, i) == SQLITE_NULL)
		return json_null();
	out_iso_time(sqlite3_column_int64(s, i), 0, buf, sizeof(buf));
	return json_string(buf);
}

static json_t *
domains_json_row(sqlite3_stmt *s)
{
	json_t *o = json_object();

	if (o == NULL)
		return NULL;
	json_object_set_new(o, "domain", out_json_str(domains_col(s, 0)));
	json_object_set_new(o, "first_seen", domains_json_time(s, 1));
	json_object_set_new(o, "last_seen", domains_json_time(s, 2));
	json_object_set_new(
	    o, "connections", json_integer(sqlite3_column_int64(s, 3)));
	json_object_set_new(
	    o, "requests", json_integer(sqlite3_column_int64(s, 4)));
	json_object_set_new(
	    o, "bytes_up", json_integer(sqlite3_column_int64(s, 5)));
	json_object_set_new(
	    o, "bytes_down", json_integer(sqlite3_column_int64(s, 6)));
	json_object_set_new(o, "ports", domains_list(domains_col(s, 7), 1));
	json_object_set_new(o, "ips", domains_list(domains_col(s, 8), 0));
	domains_geo_json(o, domains_col(s, 8));
	json_object_set_new(o, "protocols", domains_list(domains_col(s, 9), 0));
	json_object_set_new(
	    o, "intercepted", json_integer(sqlite3_column_int64(s, 10)));
	json_object_set_new(
	    o, "passed_through", json_integer(sqlite3_column_int64(s, 11)));
	json_object_set_new(
	    o, "pinned", json_boolean(sqlite3_column_int(s, 12) != 0));
	json_object_set_new(o, "named_by", domains_list(domains_col(s, 13), 0));
	json_object_set_new(
	    o, "inferred", json_integer(sqlite3_column_int64(s, 14)));
	return o;
}

/* People get readable sizes; CSV keeps exact numbers for spreadsheets. */
static int
domains_table_row(struct out_table *t, sqlite3_stmt *s, enum out_format fmt)
{
	char first[40], last[40], conns[24], reqs[24], up[24], down[24];
	char nint[24], npass[24], ninf[24], where[16384];
	const char *cells[DOMAINS_NCOLS], *pinned;
	int pin = sqlite3_column_int(s, 12) != 0;

	out_time(sqlite3_column_int64(s, 1), 0, fmt, first, sizeof(first));
	out_time(sqlite3_column_int64(s, 2), 0, fmt, last, sizeof(last));
	snprintf(conns, sizeof(conns), "%lld",
	    (long long)sqlite3_column_int64(s, 3));
	snprintf(
	    reqs, sizeof(reqs), "%lld", (long long)sqlite3_column_int64(s, 4));
	if (fmt == OUT_CSV) {
		snprintf(up, sizeof(up), "%lld",
		    (long long)sqlite3_column_int64(s, 5));
		snprintf(down, sizeof(down), "%lld",
		    (long long)sqlite3_column_int64(s, 6));
	} else {
		out_size((uint64_t)sqlite3_column_int64(s, 5), up, sizeof(up));
		out_size(
		    (uint64_t)sqlite3_column_int64(s, 6), down, sizeof(down));
	}
	snprintf(
	    ninf, sizeof(ninf), "%lld", (long long)sqlite3_column_int64(s, 14));
	cells[0] = domains_col(s, 0);
	cells[1] = first;
	cells[2] = last;
	cells[3] = conns;
	cells[4] = ninf;
	cells[5] = reqs;
	cells[6] = up;
	cells[7] = down;
	snprintf(
	    nint, sizeof(nint), "%lld", (long long)sqlite3_column_int64(s, 10));
	snprintf(npass, sizeof(npass), "%lld",
	    (long long)sqlite3_column_int64(s, 11));
	/* A word people can spot in a column of blanks; 1/0 for programs. */
	if (fmt == OUT_CSV)
		pinned = pin ? "1" : "0";
	else
		pinned = pin ? "pinned" : "";
	cells[8] = domains_col(s, 7);
	cells[9] = domains_col(s, 9);
	cells[10] = nint;
	cells[11] = npass;
	cells[12] = pinned;
	cells[13] = domains_col(s, 13);
	domains_where(domains_col(s, 8), fmt, where, sizeof(where));
	cells[14] = where;
	cells[15] = domains_col(s, 8);
	return out_table_add(t, cells);
}

static struct out_table *
domains_table_new(void)
{
	static const char *const headers[DOMAINS_NCOLS] = {"domain",
	    "first_seen", "last_seen", "connections", "inferred", "requests",
	    "bytes_up", "bytes_down", "ports", "protocols", "intercepted",
	    "passed_through", "pinned", "named_by", "where", "ips"};
	/* Drop ranks: on a narrow terminal the domain, last seen and the
	 * counts stay; what explains a domain goes first. */
	static const int drop[DOMAINS_NCOLS] = {
	    0, 7, 0, 0, 8, 0, 3, 2, 6, 5, 9, 10, 4, 11, 13, 12};
	struct out_table *t;
	size_t c;

	if ((t = out_table_new(DOMAINS_NCOLS, headers)) == NULL)
		return NULL;
	for (c = 0; c < DOMAINS_NCOLS; c++)
		out_table_col(t, c, 0, 0, drop[c]);
	out_table_col(t, 0, OUT_COL_SHRINK, 16, 0);
	out_table_col(t, 1, OUT_COL_TIME, 0, drop[1]);
	out_table_col(t, 2, OUT_COL_TIME, 0, drop[2]);
	for (c = 3; c <= 7; c++)
		out_table_col(t, c, OUT_COL_RIGHT, 0, drop[c]);
	out_table_col(t, 8, OUT_COL_SHRINK, 8, drop[8]);
	out_table_col(t, 9, OUT_COL_SHRINK, 8, drop[9]);
	out_table_col(t, 10, OUT_COL_RIGHT, 0, drop[10]);
	out_table_col(t, 11, OUT_COL_RIGHT, 0, drop[11]);
	out_table_col(t, 13, OUT_COL_SHRINK, 8, drop[13]);
	out_table_col(t, 14, OUT_COL_SHRINK, 10, drop[14]);
	out_table_col(t, 15, OUT_COL_SHRINK, 15, drop[15]);
	return t;
}

static const struct out_rows domains_rows = {
    DOMAINS_CMD, domains_table_new, domains_json_row, domains_table_row};

/* The catalogue query, rows in the order order says (an ORDER BY clause
 * from domains_sorts). 0 / -1 (SQLite's error on db). */
static int
domains_prepare(sqlite3 *db, const char *order, sqlite3_stmt **s)
{
	char sql[512];

	snprintf(sql, sizeof(sql),
	    "SELECT name, first_seen_us, last_seen_us, connections, requests,"
	    " bytes_up, bytes_down, ports, ips, protocols, intercepted,"
	    " passed_through, pinned, named_by, inferred FROM domain_catalogue"
	    " ORDER BY %s",
	    order);
	return sqlite3_prepare_v2(db, sql, -1, s, NULL) == SQLITE_OK ? 0 : -1;
}

json_t *
views_domains(sqlite3 *db, char *err, size_t errlen)
{
	sqlite3_stmt *s = NULL;
	json_t *arr;

	if (domains_prepare(db, domains_sorts[0].order, &s) == -1) {
		snprintf(err, errlen, "query failed: %s", sqlite3_errmsg(db));
		sqlite3_finalize(s);
		return NULL;
	}
	arr = out_json_rows(&domains_rows, db, s, err, errlen);
	sqlite3_finalize(s);
	return arr;
}

/* Run the catalogue query and print it in o->fmt. Exit status. */
static int
domains_print(sqlite3 *db, const struct domains_opts *o)
{
	sqlite3_stmt *s = NULL;
	int status = CLI_ERROR;

	if (domains_prepare(db, o->order, &s) == -1) {
		db_warn(DOMAINS_CMD, db, "query failed");
		goto fail;
	}
	status = out_print_rows(&domains_rows, db, s, o->fmt) == 0 ? CLI_OK
								   : CLI_ERROR;
fail:
	sqlite3_finalize(s);
	return status;
}

int
cli_domains(int argc, char **argv)
{
	struct domains_opts o;
	sqlite3 *db;
	char err[1024];
	int rc;

	if ((rc = domains_parse(argc, argv, &o)) != CLI_OK)
		return rc == ARGS_HELP ? CLI_OK : rc;
	if ((db = db_open_readonly(DOMAINS_CMD, o.db)) == NULL)
		return CLI_ERROR;
	if (geo_shared(err, sizeof(err)) == NULL)
		fprintf(stderr,
		    "peephole " DOMAINS_CMD ": note: %s; addresses are listed "
		    "without country and AS\n",
		    err);
	out_view_init(o.wide, o.utc);
	rc = domains_print(db, &o);
	sqlite3_close(db);
	return rc;
}
