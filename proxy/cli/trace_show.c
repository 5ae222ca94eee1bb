/*
 * trace_show: stored traces read back — `peephole show trace ID` (text or
 * JSON), `peephole trace --list`, and the JSON of one trace that
 * `peephole trace --json` prints too.
 */
#include "proxy/cli/cli.h"

#include <getopt.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/cli/args.h"
#include "proxy/cli/output.h"
#include "proxy/cli/trace.h"
#include "proxy/geo/geo.h"
#include "proxy/store/db.h"
#include "proxy/trace/path.h"

#define TRACE_SHOW_CMD "show trace"
#define TRACE_LIST_NCOLS 7

static const char trace_show_help[] =
    "usage: peephole show trace ID [--json] [--db FILE]\n"
    "\n"
    "Print stored trace ID (see `peephole trace`, `peephole trace --list`):\n"
    "the endpoint, when it ran, each hop's addresses with their round trips,\n"
    "answer and country and AS (or scope), and whether it reached the\n"
    "endpoint.\n"
    "\n"
    "  --json     print one JSON object\n"
    "  --db FILE  database to read (default " CLI_DEFAULT_DB ")\n"
    "  --help     print this help\n";

/* A stored trace: its traces row and its hops as a path. */
struct trace_stored {
	sqlite3_stmt *row;
	struct path p;
};

/* Hop rows of trace id into p, sized by them. 0 / -1 (in err). */
static int
trace_show_hops(
    sqlite3 *db, int64_t id, int hops, struct path *p, char *err, size_t errlen)
{
	static const char sql[] = "SELECT ttl, probe, ip, rtt_us, kind"
				  " FROM trace_hops WHERE trace_id = ?"
				  " ORDER BY ttl, probe";
	sqlite3_stmt *s;
	int ttl, probe, rc, maxp = 1;

	path_init(p, hops, PATH_MAX_PROBES);
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "query failed: %s", sqlite3_errmsg(db));
		return -1;
	}
	sqlite3_bind_int64(s, 1, id);
	/* path_record as the trace did: the end hop comes out the same */
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		ttl = sqlite3_column_int(s, 0);
		probe = sqlite3_column_int(s, 1);
		if (probe > maxp && probe <= PATH_MAX_PROBES)
			maxp = probe;
		(void)path_record(p, ttl, probe - 1,
		    path_kind_parse((const char *)sqlite3_column_text(s, 4)),
		    (const char *)sqlite3_column_text(s, 2),
		    sqlite3_column_type(s, 3) == SQLITE_NULL
			? -1
			: sqlite3_column_int64(s, 3));
	}
	p->nprobes = maxp;
	if (rc != SQLITE_DONE)
		snprintf(err, errlen, "query failed: %s", sqlite3_errmsg(db));
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* Load trace id into ts (ts->row finalized by the caller whatever this
 * returns). 1, 0 when there is none, -1 (in err). */
static int
trace_show_load(
    sqlite3 *db, int64_t id, struct trace_stored *ts, char *err, size_t errlen)
{
	int rc;

	ts->row = NULL;
	if (sqlite3_prepare_v2(db, "SELECT * FROM traces WHERE id = ?", -1,
		&ts->row, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "query failed: %s", sqlite3_errmsg(db));
		return -1;
	}
	sqlite3_bind_int64(ts->row, 1, id);
	if ((rc = sqlite3_step(ts->row)) == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW) {
		snprintf(err, errlen, "query failed: %s", sqlite3_errmsg(db));
		return -1;
	}
	return trace_show_hops(db, id, (int)out_col_int(ts->row, "hops"),
		   &ts->p, err, errlen) == -1
	    ? -1
	    : 1;
}

/* One probe as JSON, with the country and AS of its address. */
static json_t *
trace_show_probe_json(const struct geo *g, const struct path_probe *pr, int i)
{
	struct geo_info gi;
	json_t *o = json_object();

	if (o == NULL)
		return NULL;
	json_object_set_new(o, "probe", json_integer(i + 1));
	json_object_set_new(o, "kind", json_string(path_kind_name(pr->kind)));
	json_object_set_new(
	    o, "ip", pr->ip[0] != '\0' ? json_string(pr->ip) : json_null());
	json_object_set_new(o, "rtt_ms",
	    pr->rtt_us >= 0 ? json_real((double)pr->rtt_us / 1000.0)
			    : json_null());
	if (pr->ip[0] == '\0' || geo_lookup(g, pr->ip, &gi) == -1)
		return o;
	out_json_geo(o, &gi);
	return o;
}

/* The hops of p as a JSON array of {ttl, probes: [...]}. */
static json_t *
trace_show_path_json(const struct geo *g, const struct path *p)
{
	json_t *arr = json_array(), *hop, *probes;
	int ttl, i;

	for (ttl = 1; arr != NULL && ttl <= p->max_hops; ttl++) {
		if ((hop = json_object()) == NULL ||
		    (probes = json_array()) == NULL) {
			json_decref(hop);
			json_decref(arr);
			return NULL;
		}
		json_object_set_new(hop, "ttl", json_integer(ttl));
		for (i = 0; i < p->nprobes; i++)
			if (p->probes[ttl - 1][i].kind != PATH_PENDING)
				json_array_append_new(probes,
				    trace_show_probe_json(
					g, &p->probes[ttl - 1][i], i));
		json_object_set_new(hop, "probes", probes);
		json_array_append_new(arr, hop);
	}
	return arr;
}

json_t *
trace_json(sqlite3 *db, const struct geo *g, int64_t id, int *missing,
    char *err, size_t errlen)
{
	struct trace_stored *ts;
	json_t *o = NULL;
	char when[40];
	int rc;

	*missing = 0;
	if ((ts = calloc(1, sizeof(*ts))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if ((rc = trace_show_load(db, id, ts, err, errlen)) == 1 &&
	    (o = json_object()) != NULL) {
		out_iso_time(
		    out_col_int(ts->row, "t_us"), 1, when, sizeof(when));
		json_object_set_new(o, "id", json_integer(id));
		json_object_set_new(o, "time", json_string(when));
		json_object_set_new(
		    o, "ip", out_json_str(out_col_text(ts->row, "ip")));
		json_object_set_new(
		    o, "port", json_integer(out_col_int(ts->row, "port")));
		json_object_set_new(
		    o, "domain", out_json_str(out_col_text(ts->row, "domain")));
		json_object_set_new(
		    o, "method", out_json_str(out_col_text(ts->row, "method")));
		json_object_set_new(o, "reached",
		    json_boolean(out_col_int(ts->row, "reached") != 0));
		json_object_set_new(
		    o, "hops", json_integer(out_col_int(ts->row, "hops")));
		json_object_set_new(
		    o, "error", out_json_str(out_col_text(ts->row, "error")));
		json_object_set_new(o, "path", trace_show_path_json(g, &ts->p));
	} else if (rc == 1)
		snprintf(err, errlen, "out of memory");
	*missing = rc == 0;
	sqlite3_finalize(ts->row);
	free(ts);
	return o;
}

/* The first and last lines of a stored trace in text. */
static void
trace_show_head(sqlite3_stmt *row)
{
	char when[48];
	const char *domain = out_col_text(row, "domain");

	out_time(out_col_int(row, "t_us"), 1, OUT_TEXT, when, sizeof(when));
	printf("trace %lld  %s  to ", (long long)out_col_int(row, "id"), when);
	out_safe(stdout, out_col_text(row, "ip"), 0);
	printf(" port %lld", (long long)out_col_int(row, "port"));
	if (domain != NULL) {
		fputs(" (", stdout);
		out_safe(stdout, domain, 0);
		fputc(')', stdout);
	}
	fputs(", ", stdout);
	out_safe(stdout, out_col_text(row, "method"), 0);
	fputc('\n', stdout);
}

static void
trace_show_tail(sqlite3_stmt *row, const struct path *p)
{
	const char *error = out_col_text(row, "error");
	const char *ip = out_col_text(row, "ip");
	char end[160];

	if (error != NULL) {
		fputs("error: ", stdout);
		out_safe(stdout, error, 0);
		fputc('\n', stdout);
		return;
	}
	path_format_end(p, ip != NULL ? ip : "-", (int)out_col_int(row, "port"),
	    end, sizeof(end));
	out_safe(stdout, end, 0);
	fputc('\n', stdout);
}

int
trace_print(sqlite3 *db, const struct geo *g, int64_t id)
{
	struct trace_stored *ts;
	char err[256], line[1024];
	int rc, ttl;

	if ((ts = calloc(1, sizeof(*ts))) == NULL) {
		fprintf(stderr, "peephole %s: out of memory\n", TRACE_SHOW_CMD);
		return -1;
	}
	if ((rc = trace_show_load(db, id, ts, err, sizeof(err))) == 1) {
		trace_show_head(ts->row);
		for (ttl = 1; ttl <= ts->p.max_hops; ttl++) {
			if (!path_hop_any(&ts->p, ttl))
				continue; /* never sent: the trace failed */
			path_format_hop(ttl, ts->p.probes[ttl - 1],
			    ts->p.nprobes, trace_label, (void *)g, line,
			    sizeof(line));
			out_safe(stdout, line, 0);
			fputc('\n', stdout);
		}
		trace_show_tail(ts->row, &ts->p);
	} else if (rc == -1)
		fprintf(stderr, "peephole %s: %s\n", TRACE_SHOW_CMD, err);
	sqlite3_finalize(ts->row);
	free(ts);
	return rc;
}

static struct out_table *
trace_list_table_new(void)
{
	static const char *const headers[TRACE_LIST_NCOLS] = {
	    "id", "time", "endpoint", "domain", "reached", "hops", "error"};
	struct out_table *t;

	if ((t = out_table_new(TRACE_LIST_NCOLS, headers)) == NULL)
		return NULL;
	out_table_col(t, 0, OUT_COL_RIGHT, 0, 0);
	out_table_col(t, 1, OUT_COL_TIME, 0, 0);
	out_table_col(t, 3, OUT_COL_SHRINK, 12, 2);
	out_table_col(t, 5, OUT_COL_RIGHT, 0, 0);
	out_table_col(t, 6, OUT_COL_SHRINK, 10, 1);
	return t;
}

static int
trace_list_table_row(struct out_table *t, sqlite3_stmt *s, enum out_format fmt)
{
	char id[24], when[48], ep[80], hops[16];
	const char *ip = out_col_text(s, "ip");
	const char *cells[TRACE_LIST_NCOLS];

	snprintf(id, sizeof(id), "%lld", (long long)out_col_int(s, "id"));
	out_time(out_col_int(s, "t_us"), 0, fmt, when, sizeof(when));
	snprintf(ep, sizeof(ep),
	    strchr(ip != NULL ? ip : "", ':') != NULL ? "[%s]:%lld" : "%s:%lld",
	    ip != NULL ? ip : "-", (long long)out_col_int(s, "port"));
	snprintf(hops, sizeof(hops), "%lld", (long long)out_col_int(s, "hops"));
	cells[0] = id;
	cells[1] = when;
	cells[2] = ep;
	cells[3] = out_col_text(s, "domain");
	cells[4] = out_col_int(s, "reached") ? "yes" : "no";
	cells[5] = hops;
	cells[6] = out_col_text(s, "error");
	return out_table_add(t, cells);
}

static const struct out_rows trace_list_rows = {
    "trace", trace_list_table_new, out_json_row, trace_list_table_row};

int
trace_list(sqlite3 *db, int json)
{
	sqlite3_stmt *s = NULL;
	int rc;

	out_view_init(0, 0);
	if (sqlite3_prepare_v2(db,
		"SELECT id, t_us, ip, port, domain, method, reached, hops,"
		" error FROM traces ORDER BY id",
		-1, &s, NULL) != SQLITE_OK) {
		db_warn("trace", db, "query failed");
		return CLI_ERROR;
	}
	rc =
	    out_print_rows(&trace_list_rows, db, s, json ? OUT_JSON : OUT_TEXT);
	sqlite3_finalize(s);
	return rc == 0 ? CLI_OK : CLI_ERROR;
}

struct trace_show_opts {
	const char *db;
	int64_t id;
	int json;
};

static int
trace_show_opt(int ch, char *arg, void *opts)
{
	struct trace_show_opts *o = opts;

	if (ch == 'd')
		o->db = arg;
	else if (ch == 'j')
		o->json = 1;
	else
		return ARGS_UNKNOWN;
	return 0;
}

/* Print trace o->id. Exit status. */
static int
trace_show_print(sqlite3 *db, const struct trace_show_opts *o)
{
	struct geo *g = trace_geo_open();
	char err[256];
	json_t *v = NULL;
	int rc, missing = 0;

	if (o->json) {
		v = trace_json(db, g, o->id, &missing, err, sizeof(err));
		rc = v != NULL ? 1 : missing ? 0 : -1;
		if (v != NULL) {
			json_dumpf(v, stdout, JSON_INDENT(2) | OUT_JSON_REALS);
			fputc('\n', stdout);
		} else if (!missing)
			fprintf(
			    stderr, "peephole %s: %s\n", TRACE_SHOW_CMD, err);
		json_decref(v);
	} else
		rc = trace_print(db, g, o->id);
	geo_close(g);
	if (rc == 0)
		fprintf(stderr, "peephole %s: no trace with id %lld\n",
		    TRACE_SHOW_CMD, (long long)o->id);
	return rc == 1 ? CLI_OK : CLI_ERROR;
}

int
cli_show_trace(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static const struct args_spec spec = {
	    TRACE_SHOW_CMD, trace_show_help, NULL, longopts, trace_show_opt};
	struct trace_show_opts o = {CLI_DEFAULT_DB, 0, 0};
	sqlite3 *db;
	int rc;

	if ((rc = args_parse(&spec, argc, argv, &o)) != CLI_OK)
		return rc == ARGS_HELP ? CLI_OK : rc;
	if ((rc = args_one_id(TRACE_SHOW_CMD, "trace", "trace --list", argc,
		 argv, &o.id)) != CLI_OK)
		return rc;
	if ((db = db_open_readonly(TRACE_SHOW_CMD, o.db)) == NULL)
		return CLI_ERROR;
	out_view_init(0, 0);
	rc = trace_show_print(db, &o);
	sqlite3_close(db);
	return rc;
}
