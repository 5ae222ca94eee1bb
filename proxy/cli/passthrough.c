/*
 * passthrough: `peephole passthrough list | retry | clear`, the (host,
 * port) pairs the proxy backs off from because their clients refused the
 * forged certificate (certificate pinning, or a CA not trusted yet): each
 * is passed through until its retry time. `retry` makes the next
 * connection intercept again, `clear` forgets; both edit the file, and a
 * running proxy notices (its writer watches PRAGMA data_version) within a
 * second.
 */
#include "proxy/cli/cli.h"

#include <getopt.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "proxy/cli/args.h"
#include "proxy/store/db.h"
#include "proxy/cli/views.h"
#include "proxy/cli/output.h"

#define PT_CMD "passthrough"
#define PT_LIST_CMD "passthrough list"
#define PT_CLEAR_CMD "passthrough clear"
#define PT_RETRY_CMD "passthrough retry"

enum pt_sub { PT_LIST, PT_RETRY, PT_CLEAR };

static const char pt_help[] =
    "usage: peephole passthrough list [--json | --csv] [--wide] [--utc]\n"
    "                                 [--db FILE]\n"
    "       peephole passthrough retry [HOST] [--db FILE]\n"
    "       peephole passthrough clear [HOST] [--db FILE]\n"
    "\n"
    "The hosts and ports whose clients refused peephole's certificate\n"
    "(a pinning app, or a CA not trusted yet). Each is passed through\n"
    "untouched until its next retry, then intercepted again; every\n"
    "further refusal doubles the wait (pinning-retry, 60s, up to 24h),\n"
    "and a client that accepts the certificate removes the entry.\n"
    "\n"
    "  list        each (host, port) with its refusals in a row, the last\n"
    "              reason, when it is retried, first and last seen\n"
    "  retry       intercept the next connection to every entry, or to\n"
    "              HOST's (any port), again\n"
    "  clear       forget every entry, or those for HOST (any port)\n"
    "              A running `peephole run` picks up retry and clear\n"
    "              within a second.\n"
    "\n"
    "  --json      (list) print a JSON array of objects\n"
    "  --csv       (list) print CSV with a header row\n"
    "  --wide      (list) do not fit the table to the terminal (on a\n"
    "              terminal, long cells are cut with '…')\n"
    "  --utc       (list) times in ISO-8601 UTC, not local time\n"
    "  --db FILE   database to use (default " CLI_DEFAULT_DB ")\n"
    "  --help      print this help\n";

#define PT_NCOLS 7

struct pt_opts {
	const char *db;
	const char *host; /* retry, clear: NULL = all */
	const char *cmd;  /* the sub-command, for messages */
	int list;         /* the sub-command is list */
	int wide;         /* list: full cells on a terminal too */
	int utc;          /* list: times in UTC, not local */
	enum out_format fmt;
};

static int
pt_opt(int ch, char *arg, void *opts)
{
	struct pt_opts *o = opts;

	if (ch == 'd') {
		o->db = arg;
		return 0;
	}
	/* the rest shape list's output */
	if (!o->list)
		return ARGS_UNKNOWN;
	return args_table(o->cmd, ch, &o->fmt, &o->wide, &o->utc);
}

/* Flags of a sub-command; argv[0] is the sub-command's name. list takes
 * --json/--csv and no argument, clear at most one HOST. */
static int
pt_parse(const char *cmd, int list, int argc, char **argv, struct pt_opts *o)
{
	static const struct option longopts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"json", no_argument, NULL, 'j'},
	    {"csv", no_argument, NULL, 'c'},
	    {"wide", no_argument, NULL, 'w'},
	    {"utc", no_argument, NULL, 'u'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const struct args_spec spec = {cmd, pt_help, NULL, longopts, pt_opt};
	int rc;

	o->cmd = cmd;
	o->list = list;
	o->db = CLI_DEFAULT_DB;
	o->host = NULL;
	o->wide = o->utc = 0;
	o->fmt = OUT_TEXT;
	if ((rc = args_parse(&spec, argc, argv, o)) != CLI_OK)
		return rc;
	if (!list && optind < argc)
		o->host = argv[optind++];
	if ((rc = args_no_operands(cmd, argc, argv)) != CLI_OK)
		return rc;
	if (o->host != NULL && o->host[0] == '\0')
		return args_usage(cmd, "empty HOST");
	return CLI_OK;
}

static const char *
pt_col(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);

	return t != NULL ? (const char *)t : "";
}

static json_t *
pt_json_time(sqlite3_stmt *s, int i)
{
	char buf[40];

	if (sqlite3_column_type(s, i) == SQLITE_NULL)
		return json_null();
	out_iso_time(sqlite3_column_int64(s, i), 0, buf, sizeof(buf));
	return json_string(buf);
}

/* When the entry is retried, for people: "now", "in 45s", "in 3.5h". */
static void
pt_human_retry(int64_t next_us, int64_t now_us, char *buf, size_t len)
{
	int64_t s = (next_us - now_us + 999999) / 1000000;

	if (next_us <= now_us)
		snprintf(buf, len, "now");
	else if (s < 120)
		snprintf(buf, len, "in %llds", (long long)s);
	else if (s < 2 * 3600)
		snprintf(buf, len, "in %lldm", (long long)(s + 30) / 60);
	else
		snprintf(buf, len, "in %.1fh", (double)s / 3600.0);
}

static int64_t
pt_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static json_t *
pt_json_row(sqlite3_stmt *s, int64_t now)
{
	json_t *o = json_object();
	int64_t next = sqlite3_column_int64(s, 8);
	char buf[40];

	if (o == NULL)
		return NULL;
	json_object_set_new(o, "host", out_json_str(pt_col(s, 0)));
	json_object_set_new(o, "port", json_integer(sqlite3_column_int(s, 1)));
	json_object_set_new(
	    o, "reason", out_json_str((const char *)sqlite3_column_text(s, 2)));
	json_object_set_new(o, "first_seen", pt_json_time(s, 3));
	json_object_set_new(o, "last_seen", pt_json_time(s, 4));
	json_object_set_new(
	    o, "count", json_integer(sqlite3_column_int64(s, 5)));
	json_object_set_new(
	    o, "rejections", json_integer(sqlite3_column_int64(s, 6)));
	json_object_set_new(o, "last_reason",
	    out_json_str((const char *)sqlite3_column_text(s, 7)));
	if (next > 0) {
		out_iso_time(next, 0, buf, sizeof(buf));
		json_object_set_new(o, "next_retry", json_string(buf));
	} else
		json_object_set_new(o, "next_retry", json_null());
	json_object_set_new(o, "passing_through", json_boolean(next > now));
	pt_human_retry(next, now, buf, sizeof(buf));
	json_object_set_new(o, "retry", json_string(buf));
	return o;
}

static int
pt_table_row(
    struct out_table *t, sqlite3_stmt *s, int64_t now, enum out_format fmt)
{
	char port[16], first[40], last[40], rej[24], retry[40];
	const char *cells[PT_NCOLS];

	snprintf(port, sizeof(port), "%d", sqlite3_column_int(s, 1));
	out_time(sqlite3_column_int64(s, 3), 0, fmt, first, sizeof(first));
	out_time(sqlite3_column_int64(s, 4), 0, fmt, last, sizeof(last));
	snprintf(
	    rej, sizeof(rej), "%lld", (long long)sqlite3_column_int64(s, 6));
	pt_human_retry(sqlite3_column_int64(s, 8), now, retry, sizeof(retry));
	cells[0] = pt_col(s, 0);
	cells[1] = port;
	cells[2] = rej;
	cells[3] = pt_col(s, 7);
	cells[4] = retry;
	cells[5] = first;
	cells[6] = last;
	return out_table_add(t, cells);
}

/* The table `passthrough list` prints, its columns set up. NULL on
 * ENOMEM. */
static struct out_table *
pt_table_new(void)
{
	static const char *const headers[PT_NCOLS] = {"host", "port",
	    "rejections", "last_reason", "next_retry", "first_seen",
	    "last_seen"};
	struct out_table *t = out_table_new(PT_NCOLS, headers);

	if (t == NULL)
		return NULL;
	out_table_col(t, 0, OUT_COL_SHRINK, 16, 0);
	out_table_align_right(t, 1);
	out_table_align_right(t, 2);
	out_table_col(t, 3, OUT_COL_SHRINK, 12, 0);
	out_table_col(t, 5, OUT_COL_TIME, 0, 2);
	out_table_col(t, 6, OUT_COL_TIME, 0, 1);
	return t;
}

/* The learned list, host then port. 0 / -1 (SQLite's error on db). */
static int
pt_prepare(sqlite3 *db, sqlite3_stmt **s)
{
	return sqlite3_prepare_v2(db,
		   "SELECT host, port, reason, first_seen, last_seen, count,"
		   " rejections, coalesce(last_reason, reason),"
		   " coalesce(next_retry_us, 0)"
		   " FROM learned_passthrough ORDER BY host, port",
		   -1, s, NULL) == SQLITE_OK
	    ? 0
	    : -1;
}

json_t *
views_passthrough(sqlite3 *db, char *err, size_t errlen)
{
	int64_t now = pt_now_us();
	sqlite3_stmt *s = NULL;
	json_t *arr = NULL;
	int rc;

	if (pt_prepare(db, &s) == -1)
		goto fail;
	if ((arr = json_array()) == NULL)
		goto nomem;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if (json_array_append_new(arr, pt_json_row(s, now)) == -1)
			goto nomem;
	if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(s);
	return arr;
nomem:
	snprintf(err, errlen, "out of memory");
	goto out;
fail:
	snprintf(err, errlen, "query failed: %s", sqlite3_errmsg(db));
out:
	json_decref(arr);
	sqlite3_finalize(s);
	return NULL;
}

/* The JSON form of pt_list. Exit status. */
static int
pt_list_json(sqlite3 *db)
{
	char err[512];
	json_t *arr;
	int rc = CLI_ERROR;

	if ((arr = views_passthrough(db, err, sizeof(err))) == NULL) {
		fprintf(stderr, "peephole %s: %s\n", PT_LIST_CMD, err);
		return CLI_ERROR;
	}
	if (json_dumpf(arr, stdout, JSON_INDENT(2) | OUT_JSON_REALS) == 0) {
		putchar('\n');
		rc = CLI_OK;
	}
	json_decref(arr);
	return rc;
}

/* Print the learned list in fmt. Exit status. */
static int
pt_list(sqlite3 *db, enum out_format fmt)
{
	int64_t now = pt_now_us();
	sqlite3_stmt *s = NULL;
	struct out_table *t = NULL;
	int rc, nomem = 0, status = CLI_ERROR;

	if (fmt == OUT_JSON)
		return pt_list_json(db);
	if (pt_prepare(db, &s) == -1) {
		db_warn(PT_LIST_CMD, db, "query failed");
		goto fail;
	}
	if ((t = pt_table_new()) == NULL) {
		nomem = 1;
		goto fail;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (pt_table_row(t, s, now, fmt) == -1) {
			nomem = 1;
			goto fail;
		}
	}
	if (rc != SQLITE_DONE) {
		db_warn(PT_LIST_CMD, db, "query failed");
		goto fail;
	}
	if (fmt == OUT_CSV)
		out_table_print_csv(t, stdout);
	else
		out_table_print(t, stdout);
	status = CLI_OK;
fail:
	if (nomem)
		fprintf(stderr, "peephole %s: out of memory\n", PT_LIST_CMD);
	out_table_free(t);
	sqlite3_finalize(s);
	return status;
}

/* Delete every row, or host's (any port, any case). Exit status. */
static int
pt_clear(sqlite3 *db, const char *host)
{
	sqlite3_stmt *s = NULL;
	int n;

	if (sqlite3_prepare_v2(db,
		host != NULL ? "DELETE FROM learned_passthrough"
			       " WHERE host = ?1 COLLATE NOCASE"
			     : "DELETE FROM learned_passthrough",
		-1, &s, NULL) != SQLITE_OK)
		goto fail;
	if (host != NULL)
		sqlite3_bind_text(s, 1, host, -1, SQLITE_STATIC);
	if (sqlite3_step(s) != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(s);
	n = sqlite3_changes(db);
	printf(
	    "removed %d learned passthrough entr%s", n, n == 1 ? "y" : "ies");
	if (host != NULL) {
		fputs(" for ", stdout);
		out_safe(stdout, host, 0);
	}
	fputs("\n", stdout);
	return CLI_OK;
fail:
	db_warn(PT_CLEAR_CMD, db, "cannot clear");
	sqlite3_finalize(s);
	return CLI_ERROR;
}

/* Make every entry, or host's (any port, any case), due now: the next
 * connection is intercepted again. The entry and its count stay, so a
 * client that still refuses backs off longer. Exit status. */
static int
pt_retry(sqlite3 *db, const char *host)
{
	sqlite3_stmt *s = NULL;
	int n;

	if (sqlite3_prepare_v2(db,
		host != NULL
		    ? "UPDATE learned_passthrough SET next_retry_us = 0"
		      " WHERE host = ?1 COLLATE NOCASE"
		    : "UPDATE learned_passthrough SET next_retry_us = 0",
		-1, &s, NULL) != SQLITE_OK)
		goto fail;
	if (host != NULL)
		sqlite3_bind_text(s, 1, host, -1, SQLITE_STATIC);
	if (sqlite3_step(s) != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(s);
	n = sqlite3_changes(db);
	printf("%d learned passthrough entr%s", n, n == 1 ? "y" : "ies");
	if (host != NULL) {
		fputs(" for ", stdout);
		out_safe(stdout, host, 0);
	}
	fputs(n == 1 ? " is" : " are", stdout);
	fputs(" intercepted again from the next connection\n", stdout);
	return CLI_OK;
fail:
	db_warn(PT_RETRY_CMD, db, "cannot retry");
	sqlite3_finalize(s);
	return CLI_ERROR;
}

int
cli_passthrough(int argc, char **argv)
{
	struct pt_opts o;
	const char *sub, *cmd;
	sqlite3 *db;
	enum pt_sub which;
	int rc, list;

	if (argc < 2)
		return args_usage(
		    PT_CMD, "missing sub-command (list, retry or clear)");
	sub = argv[1];
	if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 ||
	    strcmp(sub, "help") == 0) {
		fputs(pt_help, stdout);
		return CLI_OK;
	}
	if (strcmp(sub, "list") == 0)
		which = PT_LIST;
	else if (strcmp(sub, "retry") == 0)
		which = PT_RETRY;
	else if (strcmp(sub, "clear") == 0)
		which = PT_CLEAR;
	else
		return args_usage(PT_CMD,
		    "unknown sub-command '%s' (want list, retry or clear)",
		    sub);
	list = which == PT_LIST;
	cmd = list              ? PT_LIST_CMD
	    : which == PT_RETRY ? PT_RETRY_CMD
				: PT_CLEAR_CMD;
	if ((rc = pt_parse(cmd, list, argc - 1, argv + 1, &o)) != CLI_OK)
		return rc == ARGS_HELP ? CLI_OK : rc;
	db = list ? db_open_readonly(cmd, o.db) : db_open_readwrite(cmd, o.db);
	if (db == NULL)
		return CLI_ERROR;
	if (list)
		out_view_init(o.wide, o.utc);
	rc = list               ? pt_list(db, o.fmt)
	    : which == PT_RETRY ? pt_retry(db, o.host)
				: pt_clear(db, o.host);
	sqlite3_close(db);
	return rc;
}
