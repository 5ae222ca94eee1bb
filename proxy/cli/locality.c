/*
 * locality: `peephole locality`, a MATAdOR-style report of where an app's
 * traffic went: per country, per autonomous system or per domain, the
 * names, addresses, connections and bytes each way, with each row's share
 * of all bytes; with --home, how much left the home region and to which
 * networks. What is counted and how is in locality.h; this file parses
 * the flags and prints.
 */
#include "proxy/cli/cli.h"

#include <getopt.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca/ca.h"
#include "proxy/cli/args.h"
#include "proxy/cli/locality.h"
#include "proxy/cli/output.h"
#include "proxy/geo/geo.h"
#include "proxy/store/db.h"

#define LOC_CMD "locality"
/* How many networks the headline names before "others". */
#define LOC_HEAD_MAX 5

struct loc_opts {
	const char *db;
	struct loc_home home;
	int by;        /* enum loc_by, -1: countries then networks */
	int64_t limit; /* rows per table, -1: all */
	int wide;
	int utc;
	enum out_format fmt;
};

static const char loc_help[] =
    "usage: peephole locality [--home CC[,CC...]] [--by country|asn|domain]\n"
    "                         [--limit N] [--json | --csv] [--wide]\n"
    "                         [--db FILE]\n"
    "\n"
    "Where the capture's traffic went: per country, per network (AS) or\n"
    "per domain, the names, server addresses, connections and bytes each\n"
    "way, and each row's share of all bytes. Bytes are those of the origin\n"
    "leg of every connection, whatever its protocol (HTTP, intercepted or\n"
    "passed-through TLS, mmTLS, raw TCP), counted once: under the host the\n"
    "app asked for, else its SNI, else the name inferred for the bare\n"
    "address (see `peephole streams`), else the address. A connection\n"
    "kept alive from host to host (plain HTTP through the proxy) is shared\n"
    "out among its requests' hosts and addresses (named by \"host\").\n"
    "Requests `peephole replay` sent again are left out.\n"
    "\n"
    "Addresses that are not public are rows of their own (private,\n"
    "loopback, link-local, cgnat, ...) and never count as leaving home;\n"
    "public addresses the geo data does not place are \"unknown\";\n"
    "connections that never reached a server are \"none\".\n"
    "\n"
    "  --home CC,...  the home region (ISO country codes): a headline says\n"
    "                 which share of the bytes left it and to which\n"
    "                 networks, and each row how much of it left\n"
    "  --by KEY       country, asn or domain rows (default: countries,\n"
    "                 then networks; --csv: countries). By domain, names\n"
    "                 seen only in DNS answers are listed too, and\n"
    "                 \"learned\" says where each name's addresses came\n"
    "                 from (proxy-dns, app-dns: WeChat's own DNS, sni,\n"
    "                 connect)\n"
    "  --limit N      at most N rows per table\n"
    "  --json         print one JSON object\n"
    "  --csv          print CSV with a header row\n"
    "  --wide         do not fit the table to the terminal\n"
    "  --db FILE      database to read (default " CLI_DEFAULT_DB ")\n"
    "  --help         print this help\n"
    "\n"
    "By domain, a row is a name as the app used it: asked \"name\" when it\n"
    "asked for the name (target, Host, SNI), \"address\" when it connected to\n"
    "a bare IP that peephole named (named_by says how), \"dns\" when only DNS\n"
    "answers name it. LEFT is the share of the row's bytes that left home.\n"
    "With --json, each name also lists its DNS answers: the address, its\n"
    "country and AS, and who gave it.\n"
    "\n"
    "Countries and networks come from the geo data; without it every public\n"
    "address is unknown. Where the data comes from, its date and the\n"
    "attribution it asks for: `peephole geo --help`.\n";

static int
loc_opt(int ch, char *arg, void *opts)
{
	static const char *const bys[] = {"country", "asn", "domain"};
	struct loc_opts *o = opts;
	size_t i;

	switch (ch) {
	case 'd':
		o->db = arg;
		return 0;
	case 'H':
		if (loc_home_parse(arg, &o->home) == -1)
			return args_usage(LOC_CMD,
			    "bad value for --home: '%s' (want country codes "
			    "like CN or CN,HK,MO)",
			    arg);
		return 0;
	case 'b':
		for (i = 0; i < sizeof(bys) / sizeof(bys[0]); i++)
			if (strcmp(arg, bys[i]) == 0) {
				o->by = (int)i;
				return 0;
			}
		return args_usage(LOC_CMD,
		    "bad value for --by: '%s' (want country, asn or domain)",
		    arg);
	case 'l':
		return args_int(
			   LOC_CMD, "limit", arg, 1, INT64_MAX, &o->limit) == -1
		    ? CLI_USAGE
		    : 0;
	}
	return args_table(LOC_CMD, ch, &o->fmt, &o->wide, &o->utc);
}

static int
loc_parse(int argc, char **argv, struct loc_opts *o)
{
	static const struct option longopts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"home", required_argument, NULL, 'H'},
	    {"by", required_argument, NULL, 'b'},
	    {"limit", required_argument, NULL, 'l'},
	    {"json", no_argument, NULL, 'j'},
	    {"csv", no_argument, NULL, 'c'},
	    {"wide", no_argument, NULL, 'w'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static const struct args_spec spec = {
	    LOC_CMD, loc_help, NULL, longopts, loc_opt};
	int rc;

	memset(o, 0, sizeof(*o));
	o->db = CLI_DEFAULT_DB;
	o->by = -1;
	o->limit = -1;
	if ((rc = args_parse(&spec, argc, argv, o)) != CLI_OK)
		return rc;
	return args_no_operands(LOC_CMD, argc, argv);
}

static const char *
loc_where_name(enum loc_where w)
{
	static const char *const names[] = {
	    "none", "local", "unknown", "public", "home", "left"};

	return names[w];
}

/* "33.3%" (text) or "33.33" (CSV) of a share in hundredths of a percent. */
static void
loc_pct(int64_t share, enum out_format fmt, char *buf, size_t len)
{
	if (fmt == OUT_CSV)
		snprintf(buf, len, "%lld.%02lld", (long long)(share / 100),
		    (long long)(share % 100));
	else
		snprintf(buf, len, "%.1f%%", (double)share / 100.0);
}

static void
loc_bytes(uint64_t n, enum out_format fmt, char *buf, size_t len)
{
	if (fmt == OUT_CSV)
		snprintf(buf, len, "%llu", (unsigned long long)n);
	else
		out_size(n, buf, len);
}

static json_t *
loc_json_share(int64_t share)
{
	return json_real((double)share / 100.0);
}

static json_t *
loc_json_set(const struct loc_set *s)
{
	json_t *a = json_array();

	for (size_t i = 0; a != NULL && i < s->n; i++)
		json_array_append_new(a, out_json_str(s->v[i]));
	return a;
}

/*
 * Bytes, connections of the facts whose address is `where`. A connection
 * whose requests went to several hosts counts once here however many of
 * its parts are `where` (and once under each `where` its parts reached,
 * so the counts of the headline may add up to more than the total).
 */
static void
loc_sum_where(
    struct loc_data *d, enum loc_where where, uint64_t *bytes, int64_t *conns)
{
	*bytes = 0;
	*conns = 0;
	for (size_t i = 0; i < d->nsplits; i++)
		d->splits[i] = 0;
	for (size_t i = 0; i < d->nfacts; i++) {
		const struct loc_fact *f = &d->facts[i];

		if (d->addrs[f->addr].where != where)
			continue;
		*bytes += f->up + f->down;
		if (f->split == 0)
			*conns += f->conns;
		else if (d->splits[f->split - 1] == 0) {
			d->splits[f->split - 1] = 1;
			(*conns)++;
		}
	}
}

/* Distinct names among the facts (they come sorted by name). */
static int64_t
loc_names(const struct loc_data *d)
{
	int64_t n = 0;

	for (size_t i = 0; i < d->nfacts; i++)
		if (i == 0 || strcmp(d->facts[i].name, d->facts[i - 1].name))
			n++;
	return n;
}

/* Addresses connections reached. */
static int64_t
loc_used_addrs(struct loc_data *d)
{
	int64_t n = 0;

	for (size_t i = 0; i < d->naddrs; i++)
		d->addrs[i].stamp = 0;
	for (size_t i = 0; i < d->nfacts; i++) {
		struct loc_addr *a = &d->addrs[d->facts[i].addr];

		if (d->facts[i].addr != 0 && a->stamp == 0) {
			a->stamp = 1;
			n++;
		}
	}
	return n;
}

/* "CN" or "CN,HK" */
static void
loc_home_join(const struct loc_home *h, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < h->n && off < len; i++)
		off += (size_t)snprintf(
		    buf + off, len - off, "%s%s", i ? "," : "", h->cc[i]);
}

/* The columns of a table, by what it is grouped by and whether --home
 * was given (the where / left columns). */
#define LOC_MAXCOLS 12

static size_t
loc_headers(int by, int home, const char **h)
{
	static const char *const country[] = {"country", "where", "domains",
	    "addresses", "connections", "bytes_up", "bytes_down", "share"};
	static const char *const asn[] = {"asn", "org", "countries", "domains",
	    "addresses", "connections", "bytes_up", "bytes_down", "share",
	    "left"};
	static const char *const domain[] = {"domain", "asked", "named_by",
	    "countries", "asns", "addresses", "connections", "bytes_up",
	    "bytes_down", "share", "left", "learned"};
	const char *const *v = by == LOC_BY_ASN ? asn
	    : by == LOC_BY_DOMAIN               ? domain
						: country;
	size_t n = by == LOC_BY_ASN ? 10 : by == LOC_BY_DOMAIN ? 12 : 8;
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		if (home ||
		    (strcmp(v[i], "where") != 0 && strcmp(v[i], "left") != 0))
			h[k++] = v[i];
	return k;
}

static const char *
loc_asked_name(enum loc_asked a)
{
	return a == LOC_ASKED_NAME   ? "name"
	    : a == LOC_ASKED_ADDRESS ? "address"
				     : "dns";
}

/* Text for column `name` of row r. buf holds what is made. */
static const char *
loc_cell(const char *name, const struct loc_row *r, uint64_t total,
    enum out_format fmt, char *buf, size_t len)
{
	if (strcmp(name, "country") == 0 || strcmp(name, "asn") == 0 ||
	    strcmp(name, "domain") == 0)
		return r->key;
	if (strcmp(name, "where") == 0)
		return loc_where_name(r->where);
	if (strcmp(name, "org") == 0)
		return r->org[0] != '\0' ? r->org : "-";
	if (strcmp(name, "asked") == 0)
		return loc_asked_name(r->asked);
	if (strcmp(name, "named_by") == 0)
		loc_set_join(&r->how, buf, len);
	else if (strcmp(name, "countries") == 0)
		loc_set_join(&r->countries, buf, len);
	else if (strcmp(name, "asns") == 0)
		loc_set_join(&r->asns, buf, len);
	else if (strcmp(name, "learned") == 0)
		loc_set_join(&r->learned, buf, len);
	else if (strcmp(name, "domains") == 0)
		snprintf(buf, len, "%lld", (long long)r->domains);
	else if (strcmp(name, "addresses") == 0)
		snprintf(buf, len, "%lld", (long long)r->addrs);
	else if (strcmp(name, "connections") == 0)
		snprintf(buf, len, "%lld", (long long)r->conns);
	else if (strcmp(name, "bytes_up") == 0)
		loc_bytes(r->up, fmt, buf, len);
	else if (strcmp(name, "bytes_down") == 0)
		loc_bytes(r->down, fmt, buf, len);
	else if (strcmp(name, "share") == 0)
		loc_pct(loc_share(r->up + r->down, total), fmt, buf, len);
	else if (strcmp(name, "left") == 0)
		loc_pct(loc_share(r->left, r->up + r->down), fmt, buf, len);
	return buf;
}

/*
 * How column h behaves on a narrow terminal: numbers are right-aligned and
 * never cut; the key, the share and where/left always stay; the rest is
 * left out in the order of drop (highest first), after names were cut
 * down to minw.
 */
static void
loc_col_style(struct out_table *t, size_t col, const char *h)
{
	static const struct {
		const char *name;
		unsigned flags;
		size_t minw;
		int drop;
	} cols[] = {
	    {"country", OUT_COL_SHRINK, 8, 0},
	    {"asn", OUT_COL_SHRINK, 8, 0},
	    {"domain", OUT_COL_SHRINK, 20, 0},
	    {"where", 0, 0, 0},
	    {"share", OUT_COL_RIGHT, 0, 0},
	    {"left", OUT_COL_RIGHT, 0, 0},
	    {"countries", OUT_COL_SHRINK, 6, 2},
	    {"asked", 0, 0, 3},
	    {"org", OUT_COL_SHRINK, 12, 4},
	    {"bytes_down", OUT_COL_RIGHT, 0, 5},
	    {"connections", OUT_COL_RIGHT, 0, 6},
	    {"named_by", OUT_COL_SHRINK, 8, 7},
	    {"asns", OUT_COL_SHRINK, 8, 8},
	    {"bytes_up", OUT_COL_RIGHT, 0, 9},
	    {"domains", OUT_COL_RIGHT, 0, 10},
	    {"learned", OUT_COL_SHRINK, 8, 11},
	    {"addresses", OUT_COL_RIGHT, 0, 12},
	};

	for (size_t i = 0; i < sizeof(cols) / sizeof(cols[0]); i++)
		if (strcmp(h, cols[i].name) == 0) {
			out_table_col(
			    t, col, cols[i].flags, cols[i].minw, cols[i].drop);
			return;
		}
}

/* Print rows (at most limit) as a text or CSV table. 0 / -1 (ENOMEM). */
static int
loc_print_table(const struct loc_opts *o, int by, const struct loc_rows *rows,
    uint64_t total)
{
	const char *h[LOC_MAXCOLS], *cells[LOC_MAXCOLS];
	char bufs[LOC_MAXCOLS][512];
	size_t n = loc_headers(by, o->home.n > 0, h), i, j;
	struct out_table *t;

	if ((t = out_table_new(n, h)) == NULL)
		return -1;
	for (j = 0; j < n; j++)
		loc_col_style(t, j, h[j]);
	for (i = 0; i < rows->n && (o->limit < 0 || (int64_t)i < o->limit);
	     i++) {
		for (j = 0; j < n; j++)
			cells[j] = loc_cell(h[j], &rows->v[i], total, o->fmt,
			    bufs[j], sizeof(bufs[j]));
		if (out_table_add(t, cells) == -1) {
			out_table_free(t);
			return -1;
		}
	}
	if (o->fmt == OUT_CSV)
		out_table_print_csv(t, stdout);
	else
		out_table_print(t, stdout);
	out_table_free(t);
	return 0;
}

static void
loc_json_asn(json_t *o, const char *label)
{
	char *end;
	unsigned long n;

	if (strncmp(label, "AS", 2) == 0) {
		n = strtoul(label + 2, &end, 10);
		if (*end == '\0') {
			json_object_set_new(
			    o, "asn", json_integer((json_int_t)n));
			return;
		}
	}
	json_object_set_new(o, "asn", json_null());
}

/*
 * A domain's DNS answers: [{"ip", "country", "asn", "org", "scope",
 * "sources"}], what each address is and who gave it (app-dns: WeChat's own
 * DNS; proxy-dns: answers through the proxy; sni, connect: a connection).
 */
static json_t *
loc_json_answers(const struct loc_data *d, const struct loc_row *r)
{
	json_t *arr = json_array(), *o;

	for (size_t i = 0; arr != NULL && i < r->nanswers; i++) {
		const struct loc_answer *an = &d->answers[r->answers[i]];
		const struct loc_addr *a = &d->addrs[an->addr];
		struct loc_set src;

		memset(&src, 0, sizeof(src));
		if ((o = json_object()) == NULL ||
		    json_array_append_new(arr, o) == -1 ||
		    loc_set_add_list(&src, an->sources) == -1) {
			loc_set_free(&src);
			json_decref(arr);
			return NULL;
		}
		json_object_set_new(o, "ip", out_json_str(a->ip));
		json_object_set_new(o, "country", out_json_str(a->country));
		loc_json_asn(o, a->asn);
		json_object_set_new(o, "org",
		    a->gi.org[0] != '\0' ? out_json_str(a->gi.org)
					 : json_null());
		json_object_set_new(
		    o, "where", json_string(loc_where_name(a->where)));
		json_object_set_new(o, "sources", loc_json_set(&src));
		loc_set_free(&src);
	}
	return arr;
}

/* The counts every row has. */
static void
loc_json_counts(json_t *o, const struct loc_row *r, uint64_t total, int home)
{
	json_object_set_new(o, "addresses", json_integer(r->addrs));
	json_object_set_new(o, "connections", json_integer(r->conns));
	json_object_set_new(o, "bytes_up", json_integer((json_int_t)r->up));
	json_object_set_new(o, "bytes_down", json_integer((json_int_t)r->down));
	json_object_set_new(
	    o, "bytes", json_integer((json_int_t)(r->up + r->down)));
	json_object_set_new(
	    o, "share", loc_json_share(loc_share(r->up + r->down, total)));
	if (!home)
		return;
	json_object_set_new(o, "bytes_left", json_integer((json_int_t)r->left));
	json_object_set_new(o, "left_share",
	    loc_json_share(loc_share(r->left, r->up + r->down)));
}

static json_t *
loc_json_row(
    const struct loc_data *d, int by, const struct loc_row *r, int home)
{
	uint64_t total = d->up + d->down;
	json_t *o = json_object();

	if (o == NULL)
		return NULL;
	if (by == LOC_BY_COUNTRY) {
		json_object_set_new(o, "country", out_json_str(r->key));
		json_object_set_new(
		    o, "where", json_string(loc_where_name(r->where)));
	} else if (by == LOC_BY_DOMAIN) {
		json_object_set_new(o, "domain", out_json_str(r->key));
		json_object_set_new(
		    o, "asked", json_string(loc_asked_name(r->asked)));
		json_object_set_new(o, "named_by", loc_json_set(&r->how));
		json_object_set_new(o, "asns", loc_json_set(&r->asns));
		json_object_set_new(o, "learned", loc_json_set(&r->learned));
		json_object_set_new(o, "answers", loc_json_answers(d, r));
		json_object_set_new(
		    o, "more_answers", json_boolean(r->more_answers));
	} else {
		if (by == LOC_BY_LEFT)
			json_object_set_new(
			    o, "country", out_json_str(r->country));
		loc_json_asn(o, r->key);
		json_object_set_new(o, "label", out_json_str(r->key));
		json_object_set_new(o, "org",
		    r->org[0] != '\0' ? out_json_str(r->org) : json_null());
	}
	if (by == LOC_BY_ASN || by == LOC_BY_DOMAIN)
		json_object_set_new(
		    o, "countries", loc_json_set(&r->countries));
	if (by != LOC_BY_DOMAIN)
		json_object_set_new(o, "domains", json_integer(r->domains));
	loc_json_counts(o, r, total, home && by != LOC_BY_LEFT);
	return o;
}

static json_t *
loc_json_rows(const struct loc_opts *o, const struct loc_data *d, int by,
    const struct loc_rows *rows)
{
	json_t *a = json_array();

	for (size_t i = 0; a != NULL && i < rows->n &&
	     (o->limit < 0 || (int64_t)i < o->limit || by == LOC_BY_LEFT);
	     i++)
		if (json_array_append_new(
			a, loc_json_row(d, by, &rows->v[i], o->home.n > 0)) ==
		    -1) {
			json_decref(a);
			return NULL;
		}
	return a;
}

/* {"bytes", "share", "connections"} of the facts at `where`. */
static json_t *
loc_json_where(struct loc_data *d, enum loc_where w)
{
	uint64_t b;
	int64_t c;

	loc_sum_where(d, w, &b, &c);
	return json_pack("{s:I, s:o, s:I}", "bytes", (json_int_t)b, "share",
	    loc_json_share(loc_share(b, d->up + d->down)), "connections",
	    (json_int_t)c);
}

/* The tables a run prints: --by's, else countries then networks (CSV
 * holds one table: countries). */
static size_t
loc_tables(const struct loc_opts *o, int *bys)
{
	if (o->by >= 0) {
		bys[0] = o->by;
		return 1;
	}
	bys[0] = LOC_BY_COUNTRY;
	bys[1] = LOC_BY_ASN;
	return o->fmt == OUT_CSV ? 1 : 2;
}

static const char *
loc_table_key(int by)
{
	return by == LOC_BY_ASN   ? "asns"
	    : by == LOC_BY_DOMAIN ? "domains"
				  : "countries";
}

/* The totals and where the bytes went, into o. -1 on ENOMEM. */
static int
loc_json_summary(json_t *j, struct loc_data *d, const struct loc_opts *o)
{
	static const enum loc_where ws[] = {
	    LOC_HOME, LOC_LEFT, LOC_PUBLIC, LOC_UNKNOWN, LOC_LOCAL, LOC_NONE};
	json_t *where = json_object(), *home = json_array();
	int rc = 0;

	if (where == NULL || home == NULL) {
		json_decref(where);
		json_decref(home);
		return -1;
	}
	for (size_t i = 0; i < o->home.n; i++)
		json_array_append_new(home, json_string(o->home.cc[i]));
	for (size_t i = 0; i < sizeof(ws) / sizeof(ws[0]); i++)
		if (o->home.n > 0 ? ws[i] != LOC_PUBLIC
				  : ws[i] != LOC_HOME && ws[i] != LOC_LEFT)
			rc |= json_object_set_new(where, loc_where_name(ws[i]),
			    loc_json_where(d, ws[i]));
	rc |= json_object_set_new(j, "geo",
	    d->geo_source[0] != '\0' ? json_string(d->geo_source)
				     : json_null());
	rc |=
	    json_object_set_new(j, "home", o->home.n > 0 ? home : json_null());
	if (o->home.n == 0)
		json_decref(home);
	rc |= json_object_set_new(j, "connections", json_integer(d->conns));
	rc |=
	    json_object_set_new(j, "bytes_up", json_integer((json_int_t)d->up));
	rc |= json_object_set_new(
	    j, "bytes_down", json_integer((json_int_t)d->down));
	rc |= json_object_set_new(
	    j, "bytes", json_integer((json_int_t)(d->up + d->down)));
	rc |= json_object_set_new(j, "names", json_integer(loc_names(d)));
	rc |= json_object_set_new(
	    j, "addresses", json_integer(loc_used_addrs(d)));
	rc |= json_object_set_new(j, "where", where);
	return rc != 0 ? -1 : 0;
}

/* Print the whole report as one JSON object. 0 / -1 (ENOMEM). */
static int
loc_print_json(struct loc_data *d, const struct loc_opts *o)
{
	json_t *j = json_object(), *a;
	struct loc_rows rows;
	int bys[2], rc = 0;
	size_t n = loc_tables(o, bys);

	if (j == NULL || loc_json_summary(j, d, o) == -1)
		goto fail;
	for (size_t i = 0; i < n + (o->home.n > 0); i++) {
		int by = i < n ? bys[i] : LOC_BY_LEFT;

		if (loc_fold(d, by, &rows) == -1)
			goto fail;
		a = loc_json_rows(o, d, by, &rows);
		loc_rows_free(&rows);
		if (a == NULL ||
		    json_object_set_new(j,
			by == LOC_BY_LEFT ? "left_to" : loc_table_key(by),
			a) == -1)
			goto fail;
	}
	rc = json_dumpf(j, stdout, JSON_INDENT(2) | OUT_JSON_REALS);
	fputc('\n', stdout);
	json_decref(j);
	return rc;
fail:
	json_decref(j);
	return -1;
}

/* "US (AS15169 Google LLC) 30.0%" for a row of the left table. */
static void
loc_head_dest(const struct loc_row *r, uint64_t total, char *buf, size_t len)
{
	char pct[16];

	loc_pct(loc_share(r->up + r->down, total), OUT_TEXT, pct, sizeof(pct));
	if (r->org[0] != '\0')
		snprintf(
		    buf, len, "%s (%s %s) %s", r->country, r->key, r->org, pct);
	else
		snprintf(buf, len, "%s (%s) %s", r->country, r->key, pct);
}

/*
 * "42.0% of bytes (5.2M of 12.3M) left CN: to US (AS15169 Google LLC)
 * 30.0%, ..., others 1.0%" on stdout. 0 / -1 (ENOMEM).
 */
static int
loc_head_left(struct loc_data *d, const struct loc_opts *o)
{
	struct loc_rows rows;
	uint64_t left, others = 0, total = d->up + d->down;
	int64_t c;
	char home[64], pct[16], x[24], y[24], dest[256];
	size_t i;

	if (loc_fold(d, LOC_BY_LEFT, &rows) == -1)
		return -1;
	loc_sum_where(d, LOC_LEFT, &left, &c);
	loc_home_join(&o->home, home, sizeof(home));
	loc_pct(loc_share(left, total), OUT_TEXT, pct, sizeof(pct));
	out_size(left, x, sizeof(x));
	out_size(total, y, sizeof(y));
	printf("%s of bytes (%s of %s) left %s", pct, x, y, home);
	for (i = 0; i < rows.n; i++) {
		if (i >= LOC_HEAD_MAX) {
			others += rows.v[i].up + rows.v[i].down;
			continue;
		}
		loc_head_dest(&rows.v[i], total, dest, sizeof(dest));
		fputs(i == 0 ? ": to " : ", ", stdout);
		out_safe(stdout, dest, 0);
	}
	if (others > 0) {
		loc_pct(loc_share(others, total), OUT_TEXT, pct, sizeof(pct));
		printf(", others %s", pct);
	}
	fputs("\n", stdout);
	loc_rows_free(&rows);
	return 0;
}

/* "stayed in CN 50.0%; unknown country 5.0%; ..." with what is not 0. */
static void
loc_head_rest(struct loc_data *d, const struct loc_opts *o)
{
	static const struct {
		enum loc_where w;
		const char *what;
	} ws[] = {
	    {LOC_HOME, "stayed home"},
	    {LOC_PUBLIC, "public"},
	    {LOC_UNKNOWN, "public, country unknown"},
	    {LOC_LOCAL, "not public (private, loopback, ...)"},
	    {LOC_NONE, "no server reached"},
	};
	const char *sep = "";
	char pct[16], x[24];
	uint64_t b;
	int64_t c;

	for (size_t i = 0; i < sizeof(ws) / sizeof(ws[0]); i++) {
		loc_sum_where(d, ws[i].w, &b, &c);
		if (c == 0 && !(ws[i].w == LOC_HOME && o->home.n > 0))
			continue;
		loc_pct(
		    loc_share(b, d->up + d->down), OUT_TEXT, pct, sizeof(pct));
		out_size(b, x, sizeof(x));
		printf("%s%s %s (%s, %lld conns)", sep, ws[i].what, pct, x,
		    (long long)c);
		sep = "; ";
	}
	if (sep[0] != '\0')
		fputs("\n", stdout);
}

/* The lines above the tables. 0 / -1 (ENOMEM). */
static int
loc_print_head(struct loc_data *d, const struct loc_opts *o)
{
	char up[24], down[24], all[24];

	out_size(d->up, up, sizeof(up));
	out_size(d->down, down, sizeof(down));
	out_size(d->up + d->down, all, sizeof(all));
	printf("%lld connections, %s bytes (up %s, down %s), %lld names, "
	       "%lld server addresses\n",
	    (long long)d->conns, all, up, down, (long long)loc_names(d),
	    (long long)loc_used_addrs(d));
	printf("geo data: ");
	out_safe(stdout,
	    d->geo_source[0] != '\0' ? d->geo_source
				     : "none (public addresses are unknown)",
	    0);
	fputs("\n", stdout);
	if (o->home.n > 0 && loc_head_left(d, o) == -1)
		return -1;
	loc_head_rest(d, o);
	return 0;
}

/* Text: the head, then each table under a title; CSV: the table. */
static int
loc_print_text(struct loc_data *d, const struct loc_opts *o)
{
	static const char *const titles[] = {
	    "by country", "by network (AS)", "by domain"};
	struct loc_rows rows;
	int bys[2], rc = 0;
	size_t n = loc_tables(o, bys);

	if (o->fmt == OUT_TEXT && loc_print_head(d, o) == -1)
		return -1;
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (loc_fold(d, bys[i], &rows) == -1)
			return -1;
		if (o->fmt == OUT_TEXT)
			printf("\n%s:\n", titles[bys[i]]);
		rc = loc_print_table(o, bys[i], &rows, d->up + d->down);
		loc_rows_free(&rows);
	}
	return rc;
}

/* The geo data, or NULL after saying on stderr why there is none. */
static struct geo *
loc_geo_open(void)
{
	char home[1024], err[256];
	struct geo *g;

	if (ca_home(home, sizeof(home)) == -1)
		home[0] = '\0';
	g = geo_open(NULL, home[0] != '\0' ? home : NULL, err, sizeof(err));
	if (g == NULL)
		fprintf(stderr,
		    "peephole " LOC_CMD ": %s: countries and networks of "
		    "public addresses are unknown\n",
		    err);
	return g;
}

int
cli_locality(int argc, char **argv)
{
	struct loc_opts o;
	struct loc_data d;
	struct geo *g;
	sqlite3 *db;
	char err[256];
	int rc;

	if ((rc = loc_parse(argc, argv, &o)) != CLI_OK)
		return rc == ARGS_HELP ? CLI_OK : rc;
	if ((db = db_open_readonly(LOC_CMD, o.db)) == NULL)
		return CLI_ERROR;
	g = loc_geo_open();
	out_view_init(o.wide, 1);
	rc = CLI_ERROR;
	if (loc_load(db, g, &o.home, &d, err, sizeof(err)) == -1)
		fprintf(stderr, "peephole " LOC_CMD ": %s\n", err);
	else if ((o.fmt == OUT_JSON ? loc_print_json(&d, &o)
				    : loc_print_text(&d, &o)) == -1)
		fprintf(stderr, "peephole " LOC_CMD ": out of memory\n");
	else
		rc = CLI_OK;
	loc_data_free(&d);
	geo_close(g);
	sqlite3_close(db);
	return rc;
}
