/*
 * prune: `peephole prune` — delete logged requests older than a time or
 * matching a filter, then what only they used: connections left without
 * requests (older than the cutoff), their stream events and TCP samples,
 * and bodies no request refers to any more. Safe beside a running `peephole
 * run`: the deletes go in batches of PRUNE_BATCH rows, each in its own BEGIN
 * IMMEDIATE transaction, so the proxy's writer waits at most one batch
 * (its busy timeout covers that), and a body is deleted only if no request
 * refers to it at the moment of the delete, checked in the same
 * transaction.
 */
#include "proxy/cli/cli.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "proxy/cli/args.h"
#include "proxy/store/db.h"
#include "proxy/cli/output.h"
#include "proxy/store/select.h"
#include "proxy/log.h"

#define PRUNE_CMD "prune"
/* Rows per write transaction: the longest the proxy's writer waits. */
#define PRUNE_BATCH 500
#define PRUNE_BATCH_S "500" /* the same, for the SQL */

static const char prune_help[] =
    "usage: peephole prune [--before TIME] [--filter EXPR] [options]\n"
    "\n"
    "Delete logged requests (and their WebSocket messages), and then what\n"
    "only they used: connections left without requests that are older\n"
    "than --before, their stream events and TCP samples, and bodies no\n"
    "remaining request refers to. Safe while `peephole run` writes the\n"
    "same file: rows go in batches of 500, each\n"
    "in its own short transaction. At least one of --before and --filter\n"
    "is needed; with both, a request must match both.\n"
    "\n"
    "  --before TIME   requests that started before TIME: an ISO-8601 UTC\n"
    "                  date or time (2024-05-01, 2024-05-01T12:00:00Z,\n"
    "                  2024-05-01T12:00+02:00) or an age (90s, 30m, 12h,\n"
    "                  7d, 2w)\n"
    "  --filter EXPR   requests matching a filter expression\n"
    "  --dry-run       say what would be deleted; change nothing\n"
    "  --vacuum        then VACUUM the file to give the space back (holds\n"
    "                  the write lock while it runs); prints the size\n"
    "                  before and after\n"
    "  --db FILE       database (default " CLI_DEFAULT_DB ")\n"
    "  --help          print this help\n"
    "\n"
    "Exit status: 0 on success, 1 on a runtime error, 2 for usage "
    "errors.\n";

struct prune_opts {
	const char *db, *filter;
	int64_t before_us; /* 0: no --before */
	int vacuum, dry_run;
};

struct prune_stats {
	int64_t requests, connections, events, bodies, body_bytes;
};

/* An age "7d" as microseconds in *us: 0, or -1 when s is not one. */
static int
prune_age(const char *s, int64_t *us)
{
	char *end;
	long long n;
	int64_t unit;

	if (!isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	n = strtoll(s, &end, 10);
	if (errno != 0 || end[0] == '\0' || end[1] != '\0')
		return -1;
	switch (end[0]) {
	case 's':
		unit = 1;
		break;
	case 'm':
		unit = 60;
		break;
	case 'h':
		unit = 3600;
		break;
	case 'd':
		unit = 86400;
		break;
	case 'w':
		unit = 7 * 86400;
		break;
	default:
		return -1;
	}
	if (n > INT64_MAX / 1000000 / unit)
		return -1;
	*us = (int64_t)n * unit * 1000000;
	return 0;
}

/*
 * TIME as microseconds since the epoch in *us: an age back from now,
 * or an ISO-8601 date / date-time, UTC unless it carries an offset. 0 / -1.
 */
static int
prune_time(const char *s, int64_t now, int64_t *us)
{
	struct tm tm;
	int y, mo, d, h = 0, mi = 0, sec = 0, n = 0, k;
	int64_t age, off = 0;
	const char *p;
	time_t t;

	if (prune_age(s, &age) == 0) {
		*us = now - age;
		return 0;
	}
	if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10)
		return -1;
	p = s + n;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		if (sscanf(p + 1, "%2d:%2d%n", &h, &mi, &k) != 2 || k != 5)
			return -1;
		p += 1 + k;
		if (*p == ':') {
			if (sscanf(p + 1, "%2d%n", &sec, &k) != 1 || k != 2)
				return -1;
			p += 1 + k;
			if (*p == '.') /* fractions of a second: ignored */
				p += 1 + strspn(p + 1, "0123456789");
		}
		if (*p == 'Z' || *p == 'z')
			p++;
		else if (*p == '+' || *p == '-') {
			int oh, om;
			if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &k) != 2 ||
			    k != 5 || oh > 23 || om > 59)
				return -1;
			off = (int64_t)(oh * 3600 + om * 60) *
			    (*p == '+' ? 1 : -1);
			p += 1 + k;
		}
	}
	if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 ||
	    mi > 59 || sec > 60)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	if ((t = timegm(&tm)) == (time_t)-1)
		return -1;
	*us = ((int64_t)t - off) * 1000000;
	return 0;
}

static int
prune_opt(int ch, char *arg, void *opts)
{
	struct prune_opts *o = opts;

	switch (ch) {
	case 'd':
		o->db = arg;
		break;
	case 'b':
		if (prune_time(arg, now_us(), &o->before_us) == -1)
			return args_usage(PRUNE_CMD,
			    "--before wants an ISO-8601 date or time "
			    "(2024-05-01, 2024-05-01T12:00:00Z) or an "
			    "age (30m, 12h, 7d), got '%s'",
			    arg);
		break;
	case 'f':
		o->filter = arg;
		break;
	case 'V':
		o->vacuum = 1;
		break;
	case 'n':
		o->dry_run = 1;
		break;
	}
	return 0;
}

static int
prune_parse(int argc, char **argv, struct prune_opts *o)
{
	static const struct option longopts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"before", required_argument, NULL, 'b'},
	    {"filter", required_argument, NULL, 'f'},
	    {"vacuum", no_argument, NULL, 'V'},
	    {"dry-run", no_argument, NULL, 'n'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static const struct args_spec spec = {
	    PRUNE_CMD, prune_help, NULL, longopts, prune_opt};
	int rc;

	memset(o, 0, sizeof(*o));
	o->db = CLI_DEFAULT_DB;
	if ((rc = args_parse(&spec, argc, argv, o)) != CLI_OK ||
	    (rc = args_no_operands(PRUNE_CMD, argc, argv)) != CLI_OK)
		return rc;
	if (o->before_us == 0 && o->filter == NULL)
		return args_usage(PRUNE_CMD,
		    "which requests? give --before TIME, --filter EXPR or "
		    "both");
	return CLI_OK;
}

/* Run sql (no rows wanted); -1 after saying what failed. */
static int
prune_exec(sqlite3 *db, const char *sql, const char *what)
{
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		db_warn(PRUNE_CMD, db, what);
		return -1;
	}
	return 0;
}

/* One prepared statement, stepped once with up to two int64 bindings and
 * its first columns read into out[0..nout). 0 / -1 (printed). */
static int
prune_query(sqlite3 *db, const char *sql, int nbind, int64_t b1, int64_t b2,
    int64_t *out, int nout)
{
	sqlite3_stmt *s = NULL;
	int rc;

	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
		db_warn(PRUNE_CMD, db, "cannot prepare");
		return -1;
	}
	if (nbind > 0)
		sqlite3_bind_int64(s, 1, b1);
	if (nbind > 1)
		sqlite3_bind_int64(s, 2, b2);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		for (int i = 0; i < nout; i++)
			out[i] = sqlite3_column_int64(s, i);
	else
		for (int i = 0; i < nout; i++)
			out[i] = 0;
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		db_warn(PRUNE_CMD, db, "cannot read");
		sqlite3_finalize(s);
		return -1;
	}
	sqlite3_finalize(s);
	return 0;
}

/* The requests o->filter selects (and, with --before, older than that)
 * into temp.prune_ids. A CLI_* status, printed. */
static int
prune_collect_filtered(sqlite3 *db, const struct prune_opts *o)
{
	sqlite3_stmt *ins = NULL, *t = NULL;
	struct select *sel;
	int64_t id;
	int rc = CLI_ERROR, usage = 0, n;

	if ((sel = select_new(db, PRUNE_CMD, NULL, 0, o->filter, &usage)) ==
	    NULL)
		return usage ? CLI_USAGE : CLI_ERROR;
	if (sqlite3_prepare_v2(db, "INSERT INTO temp.prune_ids VALUES (?)", -1,
		&ins, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db,
		"SELECT 1 FROM requests WHERE id = ? AND t_start_us < ?", -1,
		&t, NULL) != SQLITE_OK) {
		db_warn(PRUNE_CMD, db, "cannot prepare");
		goto out;
	}
	while ((n = select_next(sel, &id)) == 1) {
		if (o->before_us != 0) {
			sqlite3_reset(t);
			sqlite3_bind_int64(t, 1, id);
			sqlite3_bind_int64(t, 2, o->before_us);
			if (sqlite3_step(t) != SQLITE_ROW)
				continue;
		}
		sqlite3_reset(ins);
		sqlite3_bind_int64(ins, 1, id);
		if (sqlite3_step(ins) != SQLITE_DONE) {
			db_warn(PRUNE_CMD, db, "cannot note a request");
			goto out;
		}
	}
	if (n != -1)
		rc = CLI_OK;
out:
	sqlite3_finalize(ins);
	sqlite3_finalize(t);
	select_free(sel);
	return rc;
}

/*
 * The requests to delete into the temporary table prune_ids, and the
 * bodies they refer to into prune_shas. Only the temp database is
 * written: the proxy's writer is not held up while the filter runs.
 */
static int
prune_collect(sqlite3 *db, const struct prune_opts *o)
{
	int rc;

	if (prune_exec(db,
		"CREATE TEMP TABLE prune_ids (id INTEGER PRIMARY KEY);"
		"CREATE TEMP TABLE prune_shas (sha TEXT PRIMARY KEY);"
		"CREATE TEMP TABLE prune_conns (id INTEGER PRIMARY KEY);",
		"cannot create temporary tables") == -1)
		return CLI_ERROR;
	if (o->filter == NULL) {
		if (prune_query(db,
			"INSERT INTO temp.prune_ids SELECT id FROM requests "
			"WHERE t_start_us < ?",
			1, o->before_us, 0, NULL, 0) == -1)
			return CLI_ERROR;
	} else if ((rc = prune_collect_filtered(db, o)) != CLI_OK)
		return rc;
	if (prune_exec(db,
		"INSERT OR IGNORE INTO temp.prune_shas"
		" SELECT req_body_sha FROM requests WHERE req_body_sha IS NOT"
		" NULL AND id IN temp.prune_ids"
		" UNION SELECT resp_body_sha FROM requests WHERE resp_body_sha"
		" IS NOT NULL AND id IN temp.prune_ids",
		"cannot list the bodies") == -1)
		return CLI_ERROR;
	return CLI_OK;
}

/* --dry-run: what the deletes would free, were nothing else to change. */
static int
prune_estimate(sqlite3 *db, const struct prune_opts *o, struct prune_stats *s)
{
	int64_t v[2];

	if (prune_query(
		db, "SELECT count(*) FROM temp.prune_ids", 0, 0, 0, v, 1) == -1)
		return -1;
	s->requests = v[0];
	if (prune_query(db,
		"SELECT count(*), coalesce(sum(size), 0) FROM bodies"
		" WHERE sha256 IN temp.prune_shas AND sha256 NOT IN ("
		" SELECT req_body_sha FROM requests WHERE req_body_sha IS NOT"
		" NULL AND id NOT IN temp.prune_ids"
		" UNION SELECT resp_body_sha FROM requests WHERE resp_body_sha"
		" IS NOT NULL AND id NOT IN temp.prune_ids)",
		0, 0, 0, v, 2) == -1)
		return -1;
	s->bodies = v[0];
	s->body_bytes = v[1];
	if (o->before_us == 0)
		return 0;
	if (prune_query(db,
		"INSERT INTO temp.prune_conns SELECT id FROM connections c"
		" WHERE t_accept_us < ? AND NOT EXISTS (SELECT 1 FROM requests"
		" r WHERE r.conn_id = c.id AND r.id NOT IN temp.prune_ids)",
		1, o->before_us, 0, NULL, 0) == -1 ||
	    prune_query(db, "SELECT count(*) FROM temp.prune_conns", 0, 0, 0, v,
		1) == -1)
		return -1;
	s->connections = v[0];
	if (prune_query(db,
		"SELECT count(*) FROM stream_events WHERE conn_id IN "
		"temp.prune_conns",
		0, 0, 0, v, 1) == -1)
		return -1;
	s->events = v[0];
	return 0;
}

/* COMMIT, or ROLLBACK after a failed step; -1 in that case. */
static int
prune_end(sqlite3 *db, int ok)
{
	if (ok && prune_exec(db, "COMMIT", "cannot commit") == 0)
		return 0;
	(void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

/* The requests, PRUNE_BATCH at a time in id order, and their WebSocket
 * messages in the same transaction (first: requests.changes counts). */
static int
prune_requests(sqlite3 *db, struct prune_stats *s)
{
	int64_t last = 0, v[1];

	for (;;) {
		if (prune_query(db,
			"SELECT max(id) FROM (SELECT id FROM temp.prune_ids"
			" WHERE id > ? ORDER BY id LIMIT " PRUNE_BATCH_S ")",
			1, last, 0, v, 1) == -1)
			return -1;
		if (v[0] == 0)
			return 0;
		if (prune_exec(db, "BEGIN IMMEDIATE", "cannot start") == -1)
			return -1;
		if (prune_end(db,
			prune_query(db,
			    "DELETE FROM ws_messages WHERE request_id IN"
			    " (SELECT id FROM temp.prune_ids WHERE id > ?"
			    " AND id <= ?)",
			    2, last, v[0], NULL, 0) == 0 &&
			    prune_query(db,
				"DELETE FROM requests WHERE id IN (SELECT id"
				" FROM temp.prune_ids WHERE id > ? AND id <= "
				"?)",
				2, last, v[0], NULL, 0) == 0) == -1)
			return -1;
		s->requests += sqlite3_changes(db);
		last = v[0];
	}
}

/*
 * Connections older than the cutoff that no request names any more, and
 * their stream events and TCP samples: found and deleted in the same
 * transaction, so a request the proxy wrote a moment ago keeps its
 * connection.
 */
static int
prune_connections(sqlite3 *db, int64_t before_us, struct prune_stats *s)
{
	int64_t last = 0, v[2];

	for (;;) {
		if (prune_exec(db, "BEGIN IMMEDIATE", "cannot start") == -1)
			return -1;
		int ok = prune_exec(db, "DELETE FROM temp.prune_conns",
			     "cannot clear") == 0 &&
		    prune_query(db,
			"INSERT INTO temp.prune_conns SELECT id FROM"
			" connections c WHERE id > ? AND t_accept_us < ? AND"
			" NOT EXISTS (SELECT 1 FROM requests r WHERE"
			" r.conn_id = c.id) ORDER BY id LIMIT " PRUNE_BATCH_S,
			2, last, before_us, NULL, 0) == 0 &&
		    prune_query(db,
			"SELECT count(*), coalesce(max(id), 0) FROM "
			"temp.prune_conns",
			0, 0, 0, v, 2) == 0;
		if (ok && v[0] > 0) {
			ok = prune_query(db,
				 "DELETE FROM stream_events WHERE conn_id IN"
				 " temp.prune_conns",
				 0, 0, 0, NULL, 0) == 0;
			s->events += ok ? sqlite3_changes(db) : 0;
			/* their TCP samples go with them (not counted) */
			ok = ok &&
			    prune_query(db,
				"DELETE FROM tcp_samples WHERE conn_id IN"
				" temp.prune_conns",
				0, 0, 0, NULL, 0) == 0;
			ok = ok &&
			    prune_query(db,
				"DELETE FROM connections WHERE id IN"
				" temp.prune_conns",
				0, 0, 0, NULL, 0) == 0;
			s->connections += ok ? sqlite3_changes(db) : 0;
		}
		if (prune_end(db, ok) == -1)
			return -1;
		if (v[0] < PRUNE_BATCH)
			return 0;
		last = v[1];
	}
}

/*
 * The bodies the deleted requests referred to, PRUNE_BATCH shas at a time,
 * each deleted only if no request refers to it now (the check and the
 * delete in one transaction: the proxy may just have logged the same
 * bytes again).
 */
static int
prune_bodies(sqlite3 *db, struct prune_stats *s)
{
	static const char batch[] =
	    " WHERE sha256 IN (SELECT sha FROM temp.prune_shas WHERE sha > ?"
	    " ORDER BY sha LIMIT " PRUNE_BATCH_S ") AND sha256 NOT IN ("
	    " SELECT req_body_sha FROM requests WHERE req_body_sha IS NOT"
	    " NULL UNION SELECT resp_body_sha FROM requests WHERE"
	    " resp_body_sha IS NOT NULL)";
	sqlite3_stmt *next = NULL;
	char sql[1024], last[80] = "";
	int rc = -1;

	if (sqlite3_prepare_v2(db,
		"SELECT max(sha) FROM (SELECT sha FROM temp.prune_shas WHERE"
		" sha > ? ORDER BY sha LIMIT " PRUNE_BATCH_S ")",
		-1, &next, NULL) != SQLITE_OK) {
		db_warn(PRUNE_CMD, db, "cannot prepare");
		return -1;
	}
	for (;;) {
		sqlite3_stmt *q = NULL, *del = NULL;
		const unsigned char *m;
		int ok;

		sqlite3_reset(next);
		sqlite3_bind_text(next, 1, last, -1, SQLITE_TRANSIENT);
		if (sqlite3_step(next) != SQLITE_ROW ||
		    (m = sqlite3_column_text(next, 0)) == NULL) {
			rc = 0;
			break;
		}
		if (prune_exec(db, "BEGIN IMMEDIATE", "cannot start") == -1)
			break;
		snprintf(sql, sizeof(sql),
		    "SELECT count(*), coalesce(sum(size), 0) FROM bodies%s",
		    batch);
		ok = sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK;
		snprintf(sql, sizeof(sql), "DELETE FROM bodies%s", batch);
		ok = ok &&
		    sqlite3_prepare_v2(db, sql, -1, &del, NULL) == SQLITE_OK;
		if (ok) {
			sqlite3_bind_text(q, 1, last, -1, SQLITE_TRANSIENT);
			sqlite3_bind_text(del, 1, last, -1, SQLITE_TRANSIENT);
			ok = sqlite3_step(q) == SQLITE_ROW;
			if (ok) {
				s->bodies += sqlite3_column_int64(q, 0);
				s->body_bytes += sqlite3_column_int64(q, 1);
			}
			ok = ok && sqlite3_step(del) == SQLITE_DONE;
		}
		if (!ok)
			db_warn(PRUNE_CMD, db, "cannot delete bodies");
		sqlite3_finalize(q);
		sqlite3_finalize(del);
		snprintf(last, sizeof(last), "%s", (const char *)m);
		if (prune_end(db, ok) == -1)
			break;
	}
	sqlite3_finalize(next);
	return rc;
}

static int64_t
prune_file_size(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0 ? (int64_t)sb.st_size : -1;
}

static void
prune_report(const struct prune_opts *o, const struct prune_stats *s)
{
	char sz[24];

	out_size((uint64_t)s->body_bytes, sz, sizeof(sz));
	printf("%s %lld requests, %lld connections (%lld stream events), "
	       "%lld bodies (%s of body data)\n",
	    o->dry_run ? "would delete" : "deleted", (long long)s->requests,
	    (long long)s->connections, (long long)s->events,
	    (long long)s->bodies, sz);
}

/* VACUUM, then a checkpoint so the file itself shrinks; sizes printed. */
static int
prune_vacuum(sqlite3 *db, const char *path)
{
	int64_t before = prune_file_size(path), after;
	char a[24], b[24];

	if (prune_exec(db, "VACUUM", "cannot vacuum") == -1)
		return -1;
	(void)sqlite3_exec(
	    db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
	after = prune_file_size(path);
	out_size((uint64_t)(before < 0 ? 0 : before), b, sizeof(b));
	out_size((uint64_t)(after < 0 ? 0 : after), a, sizeof(a));
	printf("vacuumed %s: %s -> %s\n", path, b, a);
	return 0;
}

int
cli_prune(int argc, char **argv)
{
	struct prune_opts o;
	struct prune_stats s;
	sqlite3 *db = NULL;
	int rc;

	memset(&s, 0, sizeof(s));
	if ((rc = prune_parse(argc, argv, &o)) != CLI_OK)
		return rc == ARGS_HELP ? CLI_OK : rc;
	if ((db = o.dry_run ? db_open_readonly(PRUNE_CMD, o.db)
			    : db_open_readwrite(PRUNE_CMD, o.db)) == NULL)
		return CLI_ERROR;
	/* the proxy's files are WAL already; a file made otherwise becomes
	 * one, so readers and this writer do not block each other */
	if (!o.dry_run)
		(void)sqlite3_exec(
		    db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL);
	if ((rc = prune_collect(db, &o)) != CLI_OK)
		goto out;
	rc = CLI_ERROR;
	if (o.dry_run) {
		if (prune_estimate(db, &o, &s) == -1)
			goto out;
		prune_report(&o, &s);
		if (o.vacuum)
			printf("--dry-run: not vacuumed\n");
		rc = CLI_OK;
		goto out;
	}
	if (prune_requests(db, &s) == -1 ||
	    (o.before_us != 0 &&
		prune_connections(db, o.before_us, &s) == -1) ||
	    prune_bodies(db, &s) == -1) {
		prune_report(&o, &s);
		goto out;
	}
	prune_report(&o, &s);
	if (o.vacuum && prune_vacuum(db, o.db) == -1)
		goto out;
	rc = CLI_OK;
out:
	sqlite3_close(db);
	return rc;
}
