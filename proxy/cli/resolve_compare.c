/*
 * resolve_compare: `peephole resolve-compare`, the dig experiment made
 * repeatable. The names of a capture (--domain, --all, --filter) are
 * resolved, A and AAAA, against several resolvers (--resolver, the system
 * one) and set beside what the capture logged (app-dns, proxy-dns); the
 * answers are stored as one run in resolver_answers and printed with the
 * country and ASN of each address and where the resolvers disagree.
 *
 * The names go RC_CHUNK at a time: their queries run on their own loop,
 * with no transaction open, then their answers are written in short
 * transactions, so a proxy writing the same file waits at most one
 * batch, and the memory held is one chunk's queries whatever the number
 * of names (RC_CHUNK * 32 resolvers * 2 types * sizeof(struct rc_query),
 * 1.5 KB: 25 MB at most). A run that fails part way is deleted, so that
 * no partial run is read later as a complete one.
 */
#include "proxy/cli/cli.h"

#include <ctype.h>
#include <getopt.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proxy/cli/args.h"
#include "proxy/cli/output.h"
#include "proxy/cli/resolve_compare.h"
#include "proxy/store/db.h"
#include "proxy/store/select.h"

/* Domains written per transaction. */
#define RC_BATCH 64
/* Domains resolved, stored and freed together (a multiple of RC_BATCH). */
#define RC_CHUNK 256
_Static_assert(RC_CHUNK % RC_BATCH == 0, "a chunk is whole batches");
_Static_assert(
    (size_t)RC_CHUNK *RC_MAX_RESOLVERS * 2 * sizeof(struct rc_query) <=
	(size_t)32 << 20,
    "one chunk's queries stay under 32 MB");

struct rc_opts {
	const char *db;
	const char **domains; /* --domain values, pointers into argv */
	size_t ndomains;
	int all;
	const char *filter;
	struct rc_resolver res[RC_MAX_RESOLVERS]; /* system first if asked */
	size_t nres;
	int no_system, only_differ, wide;
	struct rc_dns_opts dns;
	int64_t show; /* --show RUN; -1 for --last; 0: query */
	enum out_format fmt;
};

/* The names to resolve: lower case, no trailing dot, sorted, unique. */
struct rc_names {
	char **v;
	size_t n, cap;
};

static const char rc_help[] =
    "usage: peephole resolve-compare (--domain D ... | --all | --filter EXPR)\n"
    "                                [--resolver ADDR[:PORT] ...] "
    "[--no-system]\n"
    "                                [--concurrency N] [--timeout SECONDS]\n"
    "                                [--attempts N] [--only-differ]\n"
    "                                [--json | --csv] [--wide] [--db FILE]\n"
    "       peephole resolve-compare --show RUN | --last [--only-differ]\n"
    "                                [--json | --csv] [--db FILE]\n"
    "\n"
    "Resolve names of the capture, A and AAAA, against several resolvers\n"
    "and show where they disagree: different addresses, different\n"
    "countries, or a resolver that gave no address. The resolvers are\n"
    "each --resolver, the system resolver (the nameservers of\n"
    "/etc/resolv.conf, without its search list or /etc/hosts) and the\n"
    "answers the capture already logged: app-dns (what the app's own DNS,\n"
    "e.g. WeChat's newdns, told it) and proxy-dns (what the proxy got),\n"
    "which are read, not asked. Every answer is stored in the database\n"
    "(table resolver_answers) with its TTL, under a new run number, and\n"
    "printed with the country and ASN of each address (`peephole geo`).\n"
    "\n"
    "  --domain D        resolve D (repeatable)\n"
    "  --all             every name in the catalogue (`peephole domains`),\n"
    "                    IP addresses left out\n"
    "  --filter EXPR     the hosts of the requests matching EXPR (as\n"
    "                    `peephole requests --filter`)\n"
    "  --resolver ADDR   also ask ADDR: 9.9.9.9, 9.9.9.9:5353, 2620:fe::fe,\n"
    "                    [2620:fe::fe]:53 (port 53 by default; repeatable)\n"
    "  --no-system       do not ask the system resolver\n"
    "  --concurrency N   queries in flight at most (default 16)\n"
    "  --timeout S       seconds to wait for an answer (default 3)\n"
    "  --attempts N      tries per query (default 2); a resolver that\n"
    "                    never answers is recorded as \"timeout\", and\n"
    "                    after 16 timeouts its other queries are not\n"
    "                    sent (\"error: not asked (unreachable)\"); names\n"
    "                    go 256 at a time, and each 256 try it again\n"
    "  --only-differ     print only the domains the resolvers disagree on\n"
    "  --show RUN        print stored run RUN again, without querying\n"
    "  --last            print the latest stored run again\n"
    "  --json            print a JSON object (run, domains, summary)\n"
    "  --csv             print CSV with a header row, one answer a row\n"
    "  --wide            do not fit the table to the terminal\n"
    "  --db FILE         database (default " CLI_DEFAULT_DB ")\n"
    "  --help            print this help\n"
    "\n"
    "Statuses: ok, nxdomain, nodata (the name has no address of that\n"
    "type), servfail, refused, timeout, error: ... . Exit status 0 whether\n"
    "or not the resolvers agree; 1 on a runtime error, 2 on a bad flag.\n";

/* --resolver: parsed, kept once, bounded. */
static int
rc_opt_resolver(struct rc_opts *o, const char *arg)
{
	struct rc_resolver r;

	if (rc_resolver_parse(arg, &r) == -1)
		return args_usage(RC_CMD,
		    "bad value for --resolver: '%s' (want an IPv4 or IPv6 "
		    "address, optionally with :PORT)",
		    arg);
	for (size_t i = 0; i < o->nres; i++)
		if (strcmp(o->res[i].name, r.name) == 0)
			return 0;
	if (o->nres == RC_MAX_RESOLVERS - 1)
		return args_usage(
		    RC_CMD, "at most %d --resolver", RC_MAX_RESOLVERS - 1);
	o->res[o->nres++] = r;
	return 0;
}

/* The numeric options; CLI_USAGE after a message. */
static int
rc_opt_num(struct rc_opts *o, int ch, const char *arg)
{
	int64_t v;

	switch (ch) {
	case 'n':
		if (args_int(RC_CMD, "concurrency", arg, 1, 256, &v) == -1)
			return CLI_USAGE;
		o->dns.concurrency = (int)v;
		break;
	case 't':
		if (args_int(RC_CMD, "timeout", arg, 1, 60, &v) == -1)
			return CLI_USAGE;
		o->dns.timeout_s = (int)v;
		break;
	case 'A':
		if (args_int(RC_CMD, "attempts", arg, 1, 5, &v) == -1)
			return CLI_USAGE;
		o->dns.attempts = (int)v;
		break;
	default:
		if (args_int(RC_CMD, "show", arg, 1, INT64_MAX, &v) == -1)
			return CLI_USAGE;
		o->show = v;
	}
	return 0;
}

static int
rc_opt(int ch, char *arg, void *opts)
{
	struct rc_opts *o = opts;

	switch (ch) {
	case 'd':
		o->db = arg;
		return 0;
	case 'D':
		o->domains[o->ndomains++] = arg;
		return 0;
	case 'a':
		o->all = 1;
		return 0;
	case 'f':
		o->filter = arg;
		return 0;
	case 'r':
		return rc_opt_resolver(o, arg);
	case 'S':
		o->no_system = 1;
		return 0;
	case 'o':
		o->only_differ = 1;
		return 0;
	case 'l':
		o->show = -1;
		return 0;
	case 'n':
	case 't':
	case 'A':
	case 's':
		return rc_opt_num(o, ch, arg);
	case 'w':
		o->wide = 1;
		return 0;
	default:
		return args_format(RC_CMD, ch, &o->fmt);
	}
}

/* After the options: what was asked must make sense together. */
static int
rc_check(const struct rc_opts *o)
{
	int names = o->ndomains > 0 || o->all || o->filter != NULL;

	if (o->show != 0) {
		if (names || o->nres > 0 || o->no_system)
			return args_usage(RC_CMD,
			    "--show and --last print a stored run: no names "
			    "or resolvers with them");
		return CLI_OK;
	}
	if (!names)
		return args_usage(RC_CMD,
		    "which names? give --domain D, --all or --filter EXPR");
	if (o->no_system && o->nres == 0)
		return args_usage(
		    RC_CMD, "--no-system leaves no resolver: add --resolver");
	for (size_t i = 0; i < o->ndomains; i++)
		if (!rc_name_ok(o->domains[i]))
			return args_usage(RC_CMD,
			    "bad value for --domain: '%s' (want a DNS name, "
			    "not an address)",
			    o->domains[i]);
	return CLI_OK;
}

/* Parse argv into o (o->domains is malloc'd: the caller frees it). */
static int
rc_parse(int argc, char **argv, struct rc_opts *o)
{
	static const struct option longopts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"domain", required_argument, NULL, 'D'},
	    {"all", no_argument, NULL, 'a'},
	    {"filter", required_argument, NULL, 'f'},
	    {"resolver", required_argument, NULL, 'r'},
	    {"no-system", no_argument, NULL, 'S'},
	    {"concurrency", required_argument, NULL, 'n'},
	    {"timeout", required_argument, NULL, 't'},
	    {"attempts", required_argument, NULL, 'A'},
	    {"only-differ", no_argument, NULL, 'o'},
	    {"show", required_argument, NULL, 's'},
	    {"last", no_argument, NULL, 'l'},
	    {"json", no_argument, NULL, 'j'},
	    {"csv", no_argument, NULL, 'c'},
	    {"wide", no_argument, NULL, 'w'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static const struct args_spec spec = {
	    RC_CMD, rc_help, NULL, longopts, rc_opt};
	int rc;

	memset(o, 0, sizeof(*o));
	o->db = CLI_DEFAULT_DB;
	o->fmt = OUT_TEXT;
	o->dns.concurrency = 16;
	o->dns.timeout_s = 3;
	o->dns.attempts = 2;
	if ((o->domains = calloc((size_t)argc + 1, sizeof(char *))) == NULL) {
		fprintf(stderr, "peephole %s: out of memory\n", RC_CMD);
		return CLI_ERROR;
	}
	if ((rc = args_parse(&spec, argc, argv, o)) != CLI_OK)
		return rc;
	if ((rc = args_no_operands(RC_CMD, argc, argv)) != CLI_OK)
		return rc;
	return rc_check(o);
}

static void
rc_names_free(struct rc_names *nm)
{
	for (size_t i = 0; i < nm->n; i++)
		free(nm->v[i]);
	free(nm->v);
	memset(nm, 0, sizeof(*nm));
}

/* Add s (lower-cased, without a trailing dot) unless it is no name to
 * ask. 0, or -1 after a message (ENOMEM, too many names). */
static int
rc_names_add(struct rc_names *nm, const char *s)
{
	char *c;
	size_t len;

	if (s == NULL)
		return 0;
	if (nm->n == RC_MAX_NAMES) {
		fprintf(stderr, "peephole %s: more than %d names\n", RC_CMD,
		    RC_MAX_NAMES);
		return -1;
	}
	if (nm->n == nm->cap) {
		size_t cap = nm->cap ? nm->cap * 2 : 64;
		char **v = realloc(nm->v, cap * sizeof(*v));

		if (v == NULL)
			goto oom;
		nm->v = v;
		nm->cap = cap;
	}
	if ((c = strdup(s)) == NULL)
		goto oom;
	len = strlen(c);
	if (len > 1 && c[len - 1] == '.')
		c[len - 1] = '\0';
	for (char *p = c; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	if (!rc_name_ok(c)) {
		free(c);
		return 0;
	}
	nm->v[nm->n++] = c;
	return 0;
oom:
	fprintf(stderr, "peephole %s: out of memory\n", RC_CMD);
	return -1;
}

static int
rc_strcmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sort and drop repeats. */
static void
rc_names_uniq(struct rc_names *nm)
{
	size_t i, k = 0;

	if (nm->n == 0)
		return;
	qsort(nm->v, nm->n, sizeof(nm->v[0]), rc_strcmp);
	for (i = 1; i < nm->n; i++) {
		if (strcmp(nm->v[i], nm->v[k]) == 0)
			free(nm->v[i]);
		else
			nm->v[++k] = nm->v[i];
	}
	nm->n = k + 1;
}

/* Every row of sql's first column into nm. 0 / -1 after a message. */
static int
rc_names_sql(sqlite3 *db, const char *sql, struct rc_names *nm)
{
	sqlite3_stmt *s = NULL;
	int rc;

	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
		db_warn(RC_CMD, db, "cannot read the catalogue");
		return -1;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if (rc_names_add(nm, (const char *)sqlite3_column_text(s, 0)) ==
		    -1) {
			sqlite3_finalize(s);
			return -1;
		}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		db_warn(RC_CMD, db, "cannot read the catalogue");
		return -1;
	}
	return 0;
}

/* The hosts of the requests matching expr. CLI_OK, CLI_USAGE for a bad
 * expression, CLI_ERROR; messages printed. */
static int
rc_names_filter(sqlite3 *db, const char *expr, struct rc_names *nm)
{
	sqlite3_stmt *h = NULL;
	struct select *sel;
	int64_t id;
	int usage = 0, rc, status = CLI_ERROR;

	if ((sel = select_new(db, RC_CMD, NULL, 0, expr, &usage)) == NULL)
		return usage ? CLI_USAGE : CLI_ERROR;
	if (sqlite3_prepare_v2(db, "SELECT host FROM requests WHERE id = ?", -1,
		&h, NULL) != SQLITE_OK) {
		db_warn(RC_CMD, db, "cannot read requests");
		goto fail;
	}
	while ((rc = select_next(sel, &id)) == 1) {
		sqlite3_bind_int64(h, 1, id);
		if (sqlite3_step(h) == SQLITE_ROW &&
		    rc_names_add(nm, (const char *)sqlite3_column_text(h, 0)) ==
			-1)
			goto fail;
		sqlite3_reset(h);
	}
	if (rc == 0)
		status = CLI_OK;
fail:
	sqlite3_finalize(h);
	select_free(sel);
	return status;
}

/* The names o asks for, into nm (sorted, unique). Exit status. */
static int
rc_names_get(sqlite3 *db, const struct rc_opts *o, struct rc_names *nm)
{
	int rc;

	for (size_t i = 0; i < o->ndomains; i++)
		if (rc_names_add(nm, o->domains[i]) == -1)
			return CLI_ERROR;
	if (o->all &&
	    rc_names_sql(db,
		"SELECT name FROM domain_catalogue UNION SELECT domain FROM"
		" domain_ips UNION SELECT host FROM requests UNION SELECT"
		" target_host FROM connections UNION SELECT sni FROM"
		" connections",
		nm) == -1)
		return CLI_ERROR;
	if (o->filter != NULL &&
	    (rc = rc_names_filter(db, o->filter, nm)) != CLI_OK)
		return rc;
	rc_names_uniq(nm);
	return CLI_OK;
}

/* The queries of nnames names into q (room for them): each name, each
 * resolver, A then AAAA. Their number. */
static size_t
rc_queries(struct rc_query *q, size_t nnames, size_t nres)
{
	size_t k = 0;

	memset(q, 0, nnames * nres * 2 * sizeof(*q));
	for (size_t d = 0; d < nnames; d++)
		for (size_t r = 0; r < nres; r++)
			for (int t = 0; t < 2; t++, k++) {
				q[k].domain = d;
				q[k].resolver = r;
				q[k].aaaa = t;
			}
	return k;
}

static int
rc_ipcmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* The statements one run writes with. */
struct rc_store {
	sqlite3 *db;
	sqlite3_stmt *ins;    /* one answer */
	sqlite3_stmt *logged; /* the app-dns / proxy-dns rows of a name */
	int64_t run, now_us;
};

static int
rc_store_prepare(struct rc_store *st)
{
	static const char ins[] =
	    "INSERT INTO resolver_answers (run_id, t_us, domain, resolver,"
	    " qtype, ip, ttl, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
	/* What the capture logged is read, not asked: one "ok" row per
	 * address, at the time it was last seen, app-dns before proxy-dns. */
	static const char logged[] =
	    "INSERT INTO resolver_answers (run_id, t_us, domain, resolver,"
	    " qtype, ip, ttl, status)"
	    " SELECT ?1, coalesce(last_seen, ?2), ?3, source,"
	    " CASE WHEN instr(ip, ':') > 0 THEN 'AAAA' ELSE 'A' END AS qt, ip,"
	    " ttl, 'ok' FROM domain_ips"
	    " WHERE domain = ?3 COLLATE NOCASE"
	    " AND source IN ('" RC_APP_DNS "', '" RC_PROXY_DNS "')"
	    " GROUP BY source, ip"
	    " ORDER BY source = '" RC_PROXY_DNS "', qt, ip";

	if (sqlite3_prepare_v2(st->db, ins, -1, &st->ins, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(st->db, logged, -1, &st->logged, NULL) !=
		SQLITE_OK) {
		db_warn(RC_CMD, st->db, "cannot store answers");
		return -1;
	}
	return 0;
}

/* One row of ins. 0 / -1. */
static int
rc_store_row(struct rc_store *st, const char *domain, const char *resolver,
    const struct rc_query *q, const char *ip)
{
	sqlite3_stmt *s = st->ins;
	int rc;

	sqlite3_bind_int64(s, 1, st->run);
	sqlite3_bind_int64(s, 2, q->t_us);
	sqlite3_bind_text(s, 3, domain, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, resolver, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 5, q->aaaa ? "AAAA" : "A", -1, SQLITE_STATIC);
	if (ip != NULL) {
		sqlite3_bind_text(s, 6, ip, -1, SQLITE_STATIC);
		sqlite3_bind_int(s, 7, q->ttl);
	} else {
		sqlite3_bind_null(s, 6);
		sqlite3_bind_null(s, 7);
	}
	sqlite3_bind_text(s, 8, rc_status(q->result), -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* The rows of one name: each query's addresses (sorted), or one row with
 * its status; then what the capture logged. 0 / -1. */
static int
rc_store_name(struct rc_store *st, const char *name,
    const struct rc_resolver *res, struct rc_query *q, size_t nq)
{
	int rc;

	for (size_t i = 0; i < nq; i++) {
		const char *rn = res[q[i].resolver].name;

		qsort(q[i].ips, (size_t)q[i].nips, RC_ADDRLEN, rc_ipcmp);
		if (q[i].nips == 0 && rc_store_row(st, name, rn, &q[i], NULL))
			return -1;
		for (int k = 0; k < q[i].nips; k++)
			if (rc_store_row(st, name, rn, &q[i], q[i].ips[k]))
				return -1;
	}
	sqlite3_bind_int64(st->logged, 1, st->run);
	sqlite3_bind_int64(st->logged, 2, st->now_us);
	sqlite3_bind_text(st->logged, 3, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st->logged);
	sqlite3_reset(st->logged);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* Begin a batch; the first one takes the run number, max + 1, inside its
 * write transaction so two runs at once get two numbers. */
static int
rc_store_begin(struct rc_store *st)
{
	sqlite3_stmt *s = NULL;
	int ok;

	if (sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) !=
	    SQLITE_OK)
		return -1;
	if (st->run != 0)
		return 0;
	ok = sqlite3_prepare_v2(st->db,
		 "SELECT coalesce(max(run_id), 0) + 1 FROM resolver_answers",
		 -1, &s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW;
	if (ok)
		st->run = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return ok ? 0 : -1;
}

/* Write the answers of names[0..n) as run st->run (chosen by the first
 * batch), RC_BATCH names per transaction. 0, or -1 after a message. */
static int
rc_store_all(struct rc_store *st, char *const *names, size_t n,
    const struct rc_resolver *res, size_t nres, struct rc_query *q)
{
	size_t per = nres * 2;

	for (size_t d = 0; d < n; d += RC_BATCH) {
		size_t end = d + RC_BATCH < n ? d + RC_BATCH : n;

		if (rc_store_begin(st) == -1)
			goto fail;
		for (size_t k = d; k < end; k++)
			if (rc_store_name(st, names[k], res, q + k * per, per))
				goto fail;
		if (sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) !=
		    SQLITE_OK)
			goto fail;
	}
	return 0;
fail:
	db_warn(RC_CMD, st->db, "cannot store answers");
	sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

static int64_t
rc_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The resolvers to ask: the system one first unless --no-system, then
 * each --resolver. */
static size_t
rc_resolvers(const struct rc_opts *o, struct rc_resolver *res)
{
	size_t n = 0;

	if (!o->no_system) {
		memset(&res[0], 0, sizeof(res[0]));
		snprintf(res[0].name, sizeof(res[0].name), "%s", RC_SYSTEM);
		res[0].system = 1;
		n = 1;
	}
	for (size_t i = 0; i < o->nres; i++)
		res[n++] = o->res[i];
	return n;
}

/*
 * A run that failed part way: its rows are deleted (the batches before
 * the failure were committed), so that `--last` does not show it as a
 * complete run. Says so on stderr.
 */
static void
rc_run_discard(struct rc_store *st)
{
	sqlite3_stmt *s = NULL;
	int ok;

	if (st->run == 0)
		return;
	ok = sqlite3_prepare_v2(st->db,
		 "DELETE FROM resolver_answers WHERE run_id = ?", -1, &s,
		 NULL) == SQLITE_OK;
	if (ok) {
		sqlite3_bind_int64(s, 1, st->run);
		ok = sqlite3_step(s) == SQLITE_DONE;
	}
	sqlite3_finalize(s);
	if (ok)
		fprintf(stderr,
		    "peephole %s: run %lld was not stored whole: its rows "
		    "are deleted\n",
		    RC_CMD, (long long)st->run);
	else
		fprintf(stderr,
		    "peephole %s: run %lld is incomplete and could not be "
		    "deleted (%s): delete its rows from resolver_answers\n",
		    RC_CMD, (long long)st->run, sqlite3_errmsg(st->db));
}

/*
 * Resolve and store the names RC_CHUNK at a time, reusing one chunk's
 * queries (the memory bound). 0, or -1 after a message, the run's rows
 * then deleted.
 */
static int
rc_run_chunks(struct rc_store *st, const struct rc_names *nm,
    const struct rc_resolver *res, size_t nres, const struct rc_dns_opts *dns)
{
	size_t chunk = nm->n < RC_CHUNK ? nm->n : RC_CHUNK, nq;
	struct rc_query *q = calloc(chunk * nres * 2, sizeof(*q));
	int rc = 0;

	if (q == NULL) {
		fprintf(stderr, "peephole %s: out of memory\n", RC_CMD);
		return -1;
	}
	if (rc_store_prepare(st) == -1)
		rc = -1;
	for (size_t d = 0; rc == 0 && d < nm->n; d += chunk) {
		size_t n = d + chunk < nm->n ? chunk : nm->n - d;

		nq = rc_queries(q, n, nres);
		if (rc_dns_run((const char *const *)nm->v + d, res, nres, q, nq,
			dns) == -1 ||
		    rc_store_all(st, nm->v + d, n, res, nres, q) == -1)
			rc = -1;
	}
	if (rc == -1)
		rc_run_discard(st);
	free(q);
	return rc;
}

/* Query, store and print a new run. Exit status. */
static int
rc_run(sqlite3 *db, const struct rc_opts *o)
{
	struct rc_resolver res[RC_MAX_RESOLVERS];
	struct rc_store st = {db, NULL, NULL, 0, rc_now_us()};
	struct rc_names nm = {NULL, 0, 0};
	struct rc_dns_opts dns = o->dns;
	struct rc_print_opts po = {(int)o->fmt, o->only_differ, o->db};
	size_t nres = rc_resolvers(o, res);
	int status;

	if ((status = rc_names_get(db, o, &nm)) != CLI_OK)
		goto done;
	status = CLI_ERROR;
	if (nm.n == 0) {
		fprintf(stderr, "peephole %s: no names to resolve\n", RC_CMD);
		status = CLI_OK;
		goto done;
	}
	dns.progress = isatty(STDERR_FILENO);
	if (rc_run_chunks(&st, &nm, res, nres, &dns) == -1)
		goto done;
	status = rc_print_run(db, st.run, &po);
done:
	sqlite3_finalize(st.ins);
	sqlite3_finalize(st.logged);
	rc_names_free(&nm);
	return status;
}

/* The latest run in *run (0 when there is none). 0 / -1 printed. */
static int
rc_last_run(sqlite3 *db, int64_t *run)
{
	sqlite3_stmt *s = NULL;
	int ok;

	ok = sqlite3_prepare_v2(db,
		 "SELECT coalesce(max(run_id), 0) FROM resolver_answers", -1,
		 &s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW;
	if (ok)
		*run = sqlite3_column_int64(s, 0);
	else
		db_warn(RC_CMD, db, "cannot read resolver_answers");
	sqlite3_finalize(s);
	return ok ? 0 : -1;
}

/* --show RUN / --last. Exit status. */
static int
rc_show(sqlite3 *db, const struct rc_opts *o)
{
	struct rc_print_opts po = {(int)o->fmt, o->only_differ, o->db};
	int64_t run = o->show;

	if (run == -1) {
		if (rc_last_run(db, &run) == -1)
			return CLI_ERROR;
		if (run == 0) {
			fprintf(stderr,
			    "peephole %s: no run stored yet in %s\n", RC_CMD,
			    o->db);
			return CLI_ERROR;
		}
	}
	return rc_print_run(db, run, &po);
}

int
cli_resolve_compare(int argc, char **argv)
{
	struct rc_opts o;
	sqlite3 *db;
	int rc;

	rc = rc_parse(argc, argv, &o);
	if (rc != CLI_OK) {
		free(o.domains);
		return rc == ARGS_HELP ? CLI_OK : rc;
	}
	db = o.show != 0 ? db_open_readonly(RC_CMD, o.db)
			 : db_open_readwrite(RC_CMD, o.db);
	if (db == NULL) {
		free(o.domains);
		return CLI_ERROR;
	}
	out_view_init(o.wide, 0);
	rc = o.show != 0 ? rc_show(db, &o) : rc_run(db, &o);
	sqlite3_close(db);
	free(o.domains);
	return rc;
}
