/*
 * requests: `peephole requests`, one line per logged HTTP exchange, with
 * filters on host, method and status.
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
#include "proxy/store/requrl.h"
#include "proxy/cli/views.h"
#include "proxy/store/select.h"

#define REQUESTS_CMD "requests"

struct requests_opts {
	const char *db;
	const char *domain; /* NULL: any */
	const char *method; /* NULL: any */
	const char *filter; /* NULL, or a filter expression */
	int64_t status;     /* -1: any */
	int64_t limit;      /* -1: all */
	int raw;            /* --filter bodies as stored, not decoded */
	int wide;           /* full cells on a terminal too */
	int utc;            /* times in UTC, not local */
	enum out_format fmt;
};

static const char requests_help[] =
    "usage: peephole requests [--filter EXPR [--raw]] [--domain D] [--method "
    "M]\n"
    "                         [--status N] [--limit N] [--json | --csv]\n"
    "                         [--wide] [--utc] [--db FILE]\n"
    "\n"
    "One line per logged request: id, time, client, method, URL,\n"
    "status, response body size, total time in ms and the error if any.\n"
    "Filters combine with AND. On a terminal the table fits its width:\n"
    "long cells are cut with '…' (URLs in the middle) and the least useful\n"
    "columns left out; NO_COLOR turns colour off.\n"
    "\n"
    "  --filter EXPR  only requests matching a filter expression, e.g.\n"
    "              '~d api & ~m POST', '~c 404 | ~e', '~t json & !~b token'\n"
    "              (see the README: ~d ~u ~m ~c ~t ~h ~b ~s ~q ~e ~proto,\n"
    "              ! & | and parentheses); ~b ~bq ~bs match bodies\n"
    "              decoded as their Content-Encoding says\n"
    "  --raw       ~b ~bq ~bs match bodies as stored (still encoded)\n"
    "  --domain D  only hosts equal to D or ending in .D\n"
    "  --method M  only this method (case-insensitive)\n"
    "  --status N  only this response status (0: no response)\n"
    "  --limit N   only the N most recent matching requests\n"
    "  --json      print a JSON array of objects\n"
    "  --csv       print CSV with a header row\n"
    "  --wide      do not fit the table to the terminal\n"
    "  --utc       times in ISO-8601 UTC, not local time\n"
    "  --db FILE   database to read (default " CLI_DEFAULT_DB ")\n"
    "  --help      print this help\n";

/* One option of requests. */
static int
requests_opt(int ch, char *arg, void *opts)
{
	struct requests_opts *o = opts;

	switch (ch) {
	case 'd':
		o->db = arg;
		return 0;
	case 'D':
		if (arg[0] == '\0')
			return args_usage(REQUESTS_CMD, "empty --domain");
		o->domain = arg;
		return 0;
	case 'f':
		o->filter = arg;
		return 0;
	case 'm':
		if (arg[0] == '\0')
			return args_usage(REQUESTS_CMD, "empty --method");
		o->method = arg;
		return 0;
	case 's':
		return args_int(REQUESTS_CMD, "status", arg, 0, 999,
			   &o->status) == -1
		    ? CLI_USAGE
		    : 0;
	case 'l':
		return args_int(REQUESTS_CMD, "limit", arg, 1, INT64_MAX,
			   &o->limit) == -1
		    ? CLI_USAGE
		    : 0;
	case 'r':
		o->raw = 1;
		return 0;
	}
	return args_table(REQUESTS_CMD, ch, &o->fmt, &o->wide, &o->utc);
}

static int
requests_parse(int argc, char **argv, struct requests_opts *o)
{
	static const struct option longopts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"domain", required_argument, NULL, 'D'},
	    {"method", required_argument, NULL, 'm'},
	    {"filter", required_argument, NULL, 'f'},
	    {"status", required_argument, NULL, 's'},
	    {"limit", required_argument, NULL, 'l'},
	    {"json", no_argument, NULL, 'j'},
	    {"csv", no_argument, NULL, 'c'},
	    {"raw", no_argument, NULL, 'r'},
	    {"wide", no_argument, NULL, 'w'},
	    {"utc", no_argument, NULL, 'u'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static const struct args_spec spec = {
	    REQUESTS_CMD, requests_help, NULL, longopts, requests_opt};
	int rc;

	memset(o, 0, sizeof(*o));
	o->db = CLI_DEFAULT_DB;
	o->status = -1;
	o->limit = -1;
	if ((rc = args_parse(&spec, argc, argv, o)) != CLI_OK)
		return rc;
	return args_no_operands(REQUESTS_CMD, argc, argv);
}

/*
 * The newest `limit` matches, printed oldest first. Parameters are
 * numbered so a filter left out leaves the others' numbers alone:
 * ?1 domain, ?2 method, ?3 status, ?4 limit.
 */
static int
requests_prepare(sqlite3 *db, const struct requests_opts *o, sqlite3_stmt **s)
{
	char sql[2048];

	snprintf(sql, sizeof(sql),
	    "SELECT * FROM (SELECT " VIEWS_REQUEST_COLS
	    " FROM requests WHERE 1 %s %s %s %s"
	    " ORDER BY id DESC LIMIT ?4) ORDER BY id",
	    o->domain == NULL
		? ""
		: "AND (lower(host) = lower(?1) OR (length(host) > length(?1)"
		  " AND substr(lower(host), -length(?1) - 1) = '.' || "
		  "lower(?1)))",
	    o->method == NULL ? "" : "AND upper(method) = upper(?2)",
	    o->status < 0 ? "" : "AND status = ?3",
	    o->filter == NULL ? "" : "AND peephole_match(id)");
	if (sqlite3_prepare_v2(db, sql, -1, s, NULL) != SQLITE_OK)
		return -1;
	if (o->domain != NULL)
		sqlite3_bind_text(*s, 1, o->domain, -1, SQLITE_STATIC);
	if (o->method != NULL)
		sqlite3_bind_text(*s, 2, o->method, -1, SQLITE_STATIC);
	if (o->status >= 0)
		sqlite3_bind_int64(*s, 3, o->status);
	sqlite3_bind_int64(*s, 4, o->limit);
	return 0;
}

static const char *
requests_col(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);

	return t != NULL ? (const char *)t : NULL;
}

static char *
requests_url(sqlite3_stmt *s)
{
	return requrl_format(requests_col(s, 4), requests_col(s, 3),
	    requests_col(s, 5), sqlite3_column_int(s, 6), requests_col(s, 7),
	    requests_col(s, 8));
}

/*
 * What the last column says when there is no error and no label: an
 * HTTP/2 exchange's stream (and how it ended, when not cleanly), or a
 * WebSocket's message count. "" for a plain exchange.
 */
static void
requests_note(sqlite3_stmt *s, char *buf, size_t len)
{
	int64_t nws = sqlite3_column_int64(s, 18);

	buf[0] = '\0';
	if (sqlite3_column_type(s, 16) != SQLITE_NULL)
		snprintf(buf, len, "h2 stream %lld%s%s",
		    (long long)sqlite3_column_int64(s, 16),
		    requests_col(s, 17) != NULL ? ", " : "",
		    requests_col(s, 17) != NULL ? requests_col(s, 17) : "");
	if (nws > 0)
		snprintf(buf + strlen(buf), len - strlen(buf),
		    "%swebsocket, %lld message%s", buf[0] ? "; " : "",
		    (long long)nws, nws == 1 ? "" : "s");
}

json_t *
views_request(sqlite3_stmt *s)
{
	json_t *o;
	char when[40], *url;
	int status = sqlite3_column_int(s, 9);

	if ((url = requests_url(s)) == NULL || (o = json_object()) == NULL) {
		free(url);
		return NULL;
	}
	out_iso_time(sqlite3_column_int64(s, 1), 1, when, sizeof(when));
	json_object_set_new(o, "id", json_integer(sqlite3_column_int64(s, 0)));
	json_object_set_new(
	    o, "conn_id", json_integer(sqlite3_column_int64(s, 13)));
	json_object_set_new(o, "time", json_string(when));
	json_object_set_new(
	    o, "time_us", json_integer(sqlite3_column_int64(s, 1)));
	json_object_set_new(o, "client", out_json_str(requests_col(s, 2)));
	json_object_set_new(o, "method", out_json_str(requests_col(s, 3)));
	json_object_set_new(o, "host", out_json_str(requests_col(s, 5)));
	json_object_set_new(o, "url", out_json_str(url));
	json_object_set_new(
	    o, "status", status > 0 ? json_integer(status) : json_null());
	json_object_set_new(
	    o, "resp_size", json_integer(sqlite3_column_int64(s, 10)));
	json_object_set_new(o, "total_ms",
	    sqlite3_column_type(s, 11) == SQLITE_NULL
		? json_null()
		: json_real((double)sqlite3_column_int64(s, 11) / 1000.0));
	json_object_set_new(o, "error", out_json_str(requests_col(s, 12)));
	/* what peephole recognised the exchange as: "mmtls-shortlink" */
	json_object_set_new(o, "label", out_json_str(requests_col(s, 14)));
	json_object_set_new(o, "version", out_json_str(requests_col(s, 15)));
	json_object_set_new(o, "stream_id",
	    sqlite3_column_type(s, 16) == SQLITE_NULL
		? json_null()
		: json_integer(sqlite3_column_int64(s, 16)));
	json_object_set_new(o, "stream_end", out_json_str(requests_col(s, 17)));
	json_object_set_new(
	    o, "websocket_messages", json_integer(sqlite3_column_int64(s, 18)));
	free(url);
	return o;
}

/* Columns past the ones views_request reads. */
enum {
	REQUESTS_UP_VERSION = 19,
	REQUESTS_REQ_SIZE,
	REQUESTS_CONTENT_TYPE,
	REQUESTS_REPLAY_OF,
};

json_t *
views_flow(sqlite3_stmt *s)
{
	json_t *o;

	if ((o = views_request(s)) == NULL)
		return NULL;
	json_object_set_new(o, "scheme", out_json_str(requests_col(s, 4)));
	json_object_set_new(o, "port", json_integer(sqlite3_column_int(s, 6)));
	json_object_set_new(o, "path", out_json_str(requests_col(s, 7)));
	json_object_set_new(o, "up_version",
	    out_json_str(requests_col(s, REQUESTS_UP_VERSION)));
	json_object_set_new(o, "req_size",
	    json_integer(sqlite3_column_int64(s, REQUESTS_REQ_SIZE)));
	json_object_set_new(o, "content_type",
	    out_json_str(requests_col(s, REQUESTS_CONTENT_TYPE)));
	json_object_set_new(o, "replay_of",
	    json_integer(sqlite3_column_int64(s, REQUESTS_REPLAY_OF)));
	return o;
}

static int
requests_table_row(struct out_table *t, sqlite3_stmt *s, enum out_format fmt)
{
	char id[24], when[40], status[16], size[24], ms[32], note[128], *url;
	const char *cells[9];
	int rc;

	if ((url = requests_url(s)) == NULL)
		return -1;
	snprintf(id, sizeof(id), "%lld", (long long)sqlite3_column_int64(s, 0));
	out_time(sqlite3_column_int64(s, 1), 1, fmt, when, sizeof(when));
	if (sqlite3_column_int(s, 9) > 0)
		snprintf(
		    status, sizeof(status), "%d", sqlite3_column_int(s, 9));
	else
		snprintf(status, sizeof(status), "-");
	if (fmt == OUT_CSV)
		snprintf(size, sizeof(size), "%lld",
		    (long long)sqlite3_column_int64(s, 10));
	else
		out_size(
		    (uint64_t)sqlite3_column_int64(s, 10), size, sizeof(size));
	if (sqlite3_column_type(s, 11) == SQLITE_NULL)
		snprintf(ms, sizeof(ms), "-");
	else
		snprintf(ms, sizeof(ms), "%.1f",
		    (double)sqlite3_column_int64(s, 11) / 1000.0);
	cells[0] = id;
	cells[1] = when;
	cells[2] = requests_col(s, 2);
	cells[3] = requests_col(s, 3);
	cells[4] = url;
	cells[5] = status;
	cells[6] = size;
	cells[7] = ms;
	/* the error, else what peephole recognised it as, else what
	 * kind of exchange it was when not plain HTTP/1 */
	requests_note(s, note, sizeof(note));
	cells[8] = requests_col(s, 12) != NULL ? requests_col(s, 12)
	    : requests_col(s, 14) != NULL      ? requests_col(s, 14)
	    : note[0] != '\0'                  ? note
					       : NULL;
	rc = out_table_add(t, cells);
	if (rc == 0 && requests_col(s, 12) != NULL)
		out_table_red(t, 8);
	free(url);
	return rc;
}

static struct out_table *
requests_table_new(void)
{
	static const char *const headers[] = {"id", "time", "client", "method",
	    "url", "status", "resp_size", "total_ms", "error"};
	struct out_table *t;

	if ((t = out_table_new(9, headers)) == NULL)
		return NULL;
	/* On a narrow terminal the URL keeps 40 columns; client, then the
	 * sizes and times, make room for it first. */
	out_table_align_right(t, 0);
	out_table_col(t, 1, OUT_COL_TIME, 0, 0);
	out_table_col(t, 2, OUT_COL_SHRINK, 9, 4);
	out_table_col(t, 4, OUT_COL_URL, 40, 0);
	out_table_col(t, 5, OUT_COL_RIGHT | OUT_COL_STATUS, 0, 0);
	out_table_col(t, 6, OUT_COL_RIGHT, 0, 2);
	out_table_col(t, 7, OUT_COL_RIGHT, 0, 3);
	out_table_col(t, 8, OUT_COL_SHRINK, 12, 1);
	return t;
}

static const struct out_rows requests_rows = {
    REQUESTS_CMD, requests_table_new, views_request, requests_table_row};

static int
requests_print(sqlite3 *db, const struct requests_opts *o)
{
	sqlite3_stmt *s = NULL;
	struct select *sel = NULL;
	int status = CLI_ERROR, usage = 0;

	if (o->filter != NULL) {
		sel = select_new(db, REQUESTS_CMD, NULL, 0, o->filter, &usage);
		if (sel == NULL)
			return usage ? CLI_USAGE : CLI_ERROR;
		select_set_raw(sel, o->raw);
		if (select_sql_install(db, "peephole_match", sel) == -1) {
			db_warn(REQUESTS_CMD, db, "cannot set up --filter");
			goto fail;
		}
	}
	if (requests_prepare(db, o, &s) == -1) {
		db_warn(REQUESTS_CMD, db, "query failed");
		goto fail;
	}
	status = out_print_rows(&requests_rows, db, s, o->fmt) == 0 ? CLI_OK
								    : CLI_ERROR;
fail:
	sqlite3_finalize(s);
	select_free(sel);
	return status;
}

int
cli_requests(int argc, char **argv)
{
	struct requests_opts o;
	sqlite3 *db;
	int rc;

	if ((rc = requests_parse(argc, argv, &o)) != CLI_OK)
		return rc == ARGS_HELP ? CLI_OK : rc;
	if ((db = db_open_readonly(REQUESTS_CMD, o.db)) == NULL)
		return CLI_ERROR;
	out_view_init(o.wide, o.utc);
	rc = requests_print(db, &o);
	sqlite3_close(db);
	return rc;
}
