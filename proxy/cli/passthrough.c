/*
 * passthrough: `peephole passthrough list | clear`, the (host, port) pairs
 * the proxy learned to pass through untouched because their clients
 * refused the forged certificate (certificate pinning). The proxy loads the
 * list at start and adds to it as it runs; `clear` edits the file, so a
 * proxy already running keeps its in-memory list until it restarts.
 */
#include "cli/cli.h"

#include <getopt.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/db.h"
#include "cli/output.h"

#define PT_CMD "passthrough"
#define PT_LIST_CMD "passthrough list"
#define PT_CLEAR_CMD "passthrough clear"

static const char pt_help[] =
    "usage: peephole passthrough list [--json | --csv] [--db FILE]\n"
    "       peephole passthrough clear [HOST] [--db FILE]\n"
    "\n"
    "The hosts and ports peephole learned to pass through without\n"
    "interception because their clients refused its certificate (pinning).\n"
    "\n"
    "  list        each (host, port) with why, first and last seen (UTC)\n"
    "              and how many times it was learned\n"
    "  clear       forget every entry, or those for HOST (any port), so\n"
    "              the next `peephole run` tries to intercept them again;\n"
    "              a proxy already running keeps its list until restart\n"
    "\n"
    "  --json      (list) print a JSON array of objects\n"
    "  --csv       (list) print CSV with a header row\n"
    "  --db FILE   database to use (default " CLI_DEFAULT_DB ")\n"
    "  --help      print this help\n";

struct pt_opts {
	const char *db;
	const char *host; /* clear: NULL = all */
	enum out_format fmt;
};

/* Flags of a sub-command; argv[0] is the sub-command's name. list takes
 * --json/--csv and no argument, clear at most one HOST. */
static int
pt_parse(const char *cmd, int list, int argc, char **argv, struct pt_opts *o)
{
	static const struct option longopts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"json", no_argument, NULL, 'j'},
	    {"csv", no_argument, NULL, 'c'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int ch;

	o->db = CLI_DEFAULT_DB;
	o->host = NULL;
	o->fmt = OUT_TEXT;
	args_reset();
	while ((ch = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			o->db = optarg;
			break;
		case 'j':
		case 'c':
			if (!list)
				return args_bad(cmd, '?', argc, argv);
			if (o->fmt != OUT_TEXT)
				return args_usage(
				    cmd, "--json and --csv are exclusive");
			o->fmt = ch == 'j' ? OUT_JSON : OUT_CSV;
			break;
		case 'h':
			fputs(pt_help, stdout);
			return ARGS_HELP;
		default:
			return args_bad(cmd, ch, argc, argv);
		}
	}
	if (!list && optind < argc)
		o->host = argv[optind++];
	if (optind < argc)
		return args_usage(
		    cmd, "unexpected argument '%s'", argv[optind]);
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

static json_t *
pt_json_row(sqlite3_stmt *s)
{
	json_t *o = json_object();

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
	return o;
}

static int
pt_table_row(struct out_table *t, sqlite3_stmt *s)
{
	char port[16], first[40], last[40], count[24];
	const char *cells[6];

	snprintf(port, sizeof(port), "%d", sqlite3_column_int(s, 1));
	out_iso_time(sqlite3_column_int64(s, 3), 0, first, sizeof(first));
	out_iso_time(sqlite3_column_int64(s, 4), 0, last, sizeof(last));
	snprintf(count, sizeof(count), "%lld",
	    (long long)sqlite3_column_int64(s, 5));
	cells[0] = pt_col(s, 0);
	cells[1] = port;
	cells[2] = pt_col(s, 2);
	cells[3] = first;
	cells[4] = last;
	cells[5] = count;
	return out_table_add(t, cells);
}

/* Print the learned list in fmt. Exit status. */
static int
pt_list(sqlite3 *db, enum out_format fmt)
{
	static const char *const headers[] = {
	    "host", "port", "reason", "first_seen", "last_seen", "count"};
	sqlite3_stmt *s = NULL;
	struct out_table *t = NULL;
	json_t *arr = NULL;
	int rc, nomem = 0, status = CLI_ERROR;

	if (sqlite3_prepare_v2(db,
		"SELECT host, port, reason, first_seen, last_seen, count"
		" FROM learned_passthrough ORDER BY host, port",
		-1, &s, NULL) != SQLITE_OK) {
		db_warn(PT_LIST_CMD, db, "query failed");
		goto fail;
	}
	if (fmt == OUT_JSON ? (arr = json_array()) == NULL
			    : (t = out_table_new(6, headers)) == NULL) {
		nomem = 1;
		goto fail;
	}
	if (t != NULL) {
		out_table_align_right(t, 1);
		out_table_align_right(t, 5);
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (arr != NULL
			? json_array_append_new(arr, pt_json_row(s)) == -1
			: pt_table_row(t, s) == -1) {
			nomem = 1;
			goto fail;
		}
	}
	if (rc != SQLITE_DONE) {
		db_warn(PT_LIST_CMD, db, "query failed");
		goto fail;
	}
	if (arr != NULL) {
		if (json_dumpf(arr, stdout, JSON_INDENT(2)) == -1)
			goto fail;
		putchar('\n');
	} else if (fmt == OUT_CSV)
		out_table_print_csv(t, stdout);
	else
		out_table_print(t, stdout);
	status = CLI_OK;
fail:
	if (nomem)
		fprintf(stderr, "peephole %s: out of memory\n", PT_LIST_CMD);
	json_decref(arr);
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
	if (n > 0)
		printf("a running `peephole run` keeps its in-memory list "
		       "until it restarts\n");
	return CLI_OK;
fail:
	db_warn(PT_CLEAR_CMD, db, "cannot clear");
	sqlite3_finalize(s);
	return CLI_ERROR;
}

int
cli_passthrough(int argc, char **argv)
{
	struct pt_opts o;
	const char *sub, *cmd;
	sqlite3 *db;
	int rc, list;

	if (argc < 2)
		return args_usage(
		    PT_CMD, "missing sub-command (list or clear)");
	sub = argv[1];
	if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 ||
	    strcmp(sub, "help") == 0) {
		fputs(pt_help, stdout);
		return CLI_OK;
	}
	if (strcmp(sub, "list") == 0)
		list = 1;
	else if (strcmp(sub, "clear") == 0)
		list = 0;
	else
		return args_usage(PT_CMD,
		    "unknown sub-command '%s' (want list or clear)", sub);
	cmd = list ? PT_LIST_CMD : PT_CLEAR_CMD;
	if ((rc = pt_parse(cmd, list, argc - 1, argv + 1, &o)) != CLI_OK)
		return rc == ARGS_HELP ? CLI_OK : rc;
	db = list ? db_open_readonly(cmd, o.db) : db_open_readwrite(cmd, o.db);
	if (db == NULL)
		return CLI_ERROR;
	rc = list ? pt_list(db, o.fmt) : pt_clear(db, o.host);
	sqlite3_close(db);
	return rc;
}
