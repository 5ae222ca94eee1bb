/*
 * export: `peephole export har FILE | curl ID | bodies DIR`. See export.h.
 * This file is the command (options, operands, which format) and reading
 * a request row; each format is in its own file: export_har.c,
 * export_curl.c, export_bodies.c.
 */
#include "proxy/cli/export.h"

#include <getopt.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/cli/args.h"
#include "proxy/cli/cli.h"
#include "proxy/cli/export_int.h"
#include "proxy/store/db.h"

static const char export_help[] =
    "usage: peephole export har FILE [ID...] [--filter EXPR] [--db DB]\n"
    "       peephole export curl ID [--allow-truncated] [--db DB]\n"
    "       peephole export bodies DIR [ID...] [--filter EXPR]\n"
    "                              [--request-bodies] [--force] [--raw]\n"
    "                              [--db DB]\n"
    "\n"
    "har     HAR 1.2 of the selected requests (all by default) into FILE\n"
    "        (- for stdout): timings from the log, bodies decoded as their\n"
    "        Content-Encoding says (content.size and compression set), binary\n"
    "        ones base64, truncated ones noted in the entry's comment. Chrome\n"
    "        DevTools (Network > Import HAR) and HAR viewers open it.\n"
    "curl    one curl command that sends request ID again, byte for byte\n"
    "        (a body with NUL bytes is piped in by printf).\n"
    "bodies  each captured response body as DIR/ID.EXT, EXT from its\n"
    "        Content-Type; a truncated one as DIR/ID.partial.EXT. Decoded\n"
    "        as its Content-Encoding says unless --raw.\n"
    "\n"
    "  --filter EXPR      only requests matching a filter expression\n"
    "  --allow-truncated  curl: print it even if the body was cut short\n"
    "  --request-bodies   bodies: request bodies too, as ID.request.EXT\n"
    "  --force            bodies: overwrite files that exist\n"
    "  --raw              bodies: as stored, still encoded\n"
    "  --db FILE          database to read (default " CLI_DEFAULT_DB ")\n"
    "  --help             print this help\n";

/* ---- reading a request ---- */

/* Step the "SELECT * FROM requests WHERE id = ?" statement to id. */
int
export_load(sqlite3 *db, sqlite3_stmt *st, int64_t id)
{
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) == SQLITE_ROW)
		return 0;
	db_warn(EXPORT_CMD, db, "cannot read a request");
	return -1;
}

/* A captured body, whole (it is at most body-capture-limit), malloc'd
 * with a spare NUL. NULL with *len 0 when nothing was captured. */
unsigned char *
export_body(sqlite3 *db, const char *sha, size_t *len)
{
	unsigned char *data = NULL;

	*len = 0;
	if (sha != NULL && db_body(db, sha, &data, len) != 1)
		return NULL;
	return data;
}

/* ---- the command ---- */

static int
export_opt(int ch, char *arg, void *opts)
{
	struct export_opts *o = opts;

	switch (ch) {
	case 'd':
		o->db = arg;
		break;
	case 'f':
		o->filter = arg;
		break;
	case 'T':
		o->allow_truncated = 1;
		break;
	case 'R':
		o->request_bodies = 1;
		break;
	case 'F':
		o->force = 1;
		break;
	case 'r':
		o->raw = 1;
		break;
	}
	return 0;
}

/* What follows the options: the format, its FILE or DIR, the ids; and
 * the options that only go with some formats. */
static int
export_operands(int argc, char **argv, struct export_opts *o)
{
	int rc;

	if (optind >= argc)
		return args_usage(EXPORT_CMD,
		    "what to export: har, curl or "
		    "bodies");
	o->what = argv[optind++];
	if (strcmp(o->what, "har") != 0 && strcmp(o->what, "curl") != 0 &&
	    strcmp(o->what, "bodies") != 0)
		return args_usage(EXPORT_CMD,
		    "unknown format '%s' (har, curl or bodies)", o->what);
	if (strcmp(o->what, "curl") != 0) {
		if (optind >= argc)
			return args_usage(EXPORT_CMD, "export %s needs a %s",
			    o->what,
			    strcmp(o->what, "har") == 0 ? "FILE" : "DIR");
		o->target = argv[optind++];
	}
	if ((rc = args_ids(EXPORT_CMD, argc, argv, &o->ids, &o->nids)) != 0)
		return rc;
	if (strcmp(o->what, "curl") == 0) {
		if (o->nids != 1)
			return args_usage(
			    EXPORT_CMD, "export curl takes one request ID");
		if (o->filter != NULL)
			return args_usage(EXPORT_CMD,
			    "export curl takes an ID, not --filter");
	}
	if (o->allow_truncated && strcmp(o->what, "curl") != 0)
		return args_usage(EXPORT_CMD, "--allow-truncated is for curl");
	if ((o->request_bodies || o->force) && strcmp(o->what, "bodies") != 0)
		return args_usage(
		    EXPORT_CMD, "--request-bodies and --force are for bodies");
	return CLI_OK;
}

static int
export_parse(int argc, char **argv, struct export_opts *o)
{
	static const struct option longopts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"filter", required_argument, NULL, 'f'},
	    {"allow-truncated", no_argument, NULL, 'T'},
	    {"request-bodies", no_argument, NULL, 'R'},
	    {"force", no_argument, NULL, 'F'},
	    {"raw", no_argument, NULL, 'r'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static const struct args_spec spec = {
	    EXPORT_CMD, export_help, NULL, longopts, export_opt};
	int rc;

	memset(o, 0, sizeof(*o));
	o->db = CLI_DEFAULT_DB;
	if ((rc = args_parse(&spec, argc, argv, o)) != CLI_OK)
		return rc;
	return export_operands(argc, argv, o);
}

int
cli_export(int argc, char **argv)
{
	struct export_opts o;
	sqlite3 *db;
	int rc;

	if ((rc = export_parse(argc, argv, &o)) != CLI_OK) {
		free(o.ids);
		return rc == ARGS_HELP ? CLI_OK : rc;
	}
	if ((db = db_open_readonly(EXPORT_CMD, o.db)) == NULL) {
		free(o.ids);
		return CLI_ERROR;
	}
	if (strcmp(o.what, "har") == 0)
		rc = export_har(db, &o);
	else if (strcmp(o.what, "curl") == 0)
		rc = export_curl(db, &o);
	else
		rc = export_bodies(db, &o);
	sqlite3_close(db);
	free(o.ids);
	return rc;
}
