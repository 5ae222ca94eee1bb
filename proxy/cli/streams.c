/*
 * streams: `peephole streams`, one line per connection peephole relayed
 * without reading it (passthrough TLS, mmTLS longlink, SSH, raw TCP); what
 * a stream is, see streams.h. `peephole show stream ID` is in
 * streams_show.c.
 */
#include "proxy/cli/cli.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/cli/args.h"
#include "proxy/store/db.h"
#include "proxy/cli/output.h"
#include "proxy/cli/streams.h"
#include "proxy/cli/views.h"

#define STREAMS_CMD "streams"
#define STREAMS_NCOLS 13

/* The target, SNI or found name equals ?1 or ends in ".?1",
 * case-insensitively. */
#define STREAMS_DOMAIN_WHERE                                                   \
	"AND EXISTS (SELECT 1 FROM (SELECT c.target_host AS h"                 \
	" UNION ALL SELECT c.sni UNION ALL SELECT n.name)"                     \
	" WHERE lower(h) = lower(?1) OR (length(h) > length(?1)"               \
	" AND substr(lower(h), -length(?1) - 1) = '.' || lower(?1)))"

struct streams_opts {
	const char *db;
	const char *protocol; /* NULL: any */
	const char *domain;   /* NULL: any */
	int64_t limit;        /* -1: all */
	int wide;             /* full cells on a terminal too */
	int utc;              /* times in UTC, not local */
	enum out_format fmt;
};

static const char streams_help[] =
    "usage: peephole streams [--protocol P] [--domain D] [--limit N]\n"
    "                        [--json | --csv] [--wide] [--utc] [--db FILE]\n"
    "\n"
    "One line per stream peephole relayed without reading it (passed\n"
    "through, or not HTTP): id, start, client, target as asked,\n"
    "host (for a bare IP address, the name peephole saw for it and how:\n"
    "sni, proxy-dns, app-dns or connect), server address used, protocol\n"
    "(mmtls, tls, ssh, h2, other; mmtls? when the records stopped making\n"
    "sense), duration, bytes up (client to server) and down, mmTLS\n"
    "records, and who closed it. `peephole show stream ID` prints one in\n"
    "full with its timeline.\n"
    "\n"
    "  --protocol P  mmtls, tls, other (neither) or any protocol label\n"
    "  --domain D    only streams whose target, SNI or found name equals\n"
    "                D or ends in .D (an address matches itself)\n"
    "  --limit N     only the N most recent matching streams\n"
    "  --json        print a JSON array of objects\n"
    "  --csv         print CSV with a header row\n"
    "  --wide        do not fit the table to the terminal (on a terminal,\n"
    "                long cells are cut with '…' and the least useful\n"
    "                columns left out)\n"
    "  --utc         times in ISO-8601 UTC, not local time\n"
    "  --db FILE     database to read (default " CLI_DEFAULT_DB ")\n"
    "  --help        print this help\n";

static int
streams_opt(int ch, char *arg, void *opts)
{
	struct streams_opts *o = opts;

	switch (ch) {
	case 'd':
		o->db = arg;
		break;
	case 'p':
	case 'D':
		if (arg[0] == '\0')
			return args_usage(STREAMS_CMD, "empty --%s",
			    ch == 'p' ? "protocol" : "domain");
		*(ch == 'p' ? &o->protocol : &o->domain) = arg;
		break;
	case 'l':
		if (args_int(STREAMS_CMD, "limit", arg, 1, INT64_MAX,
			&o->limit) == -1)
			return CLI_USAGE;
		break;
	default:
		return args_table(STREAMS_CMD, ch, &o->fmt, &o->wide, &o->utc);
	}
	return 0;
}

static int
streams_parse(int argc, char **argv, struct streams_opts *o)
{
	static const struct option longopts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"protocol", required_argument, NULL, 'p'},
	    {"domain", required_argument, NULL, 'D'},
	    {"limit", required_argument, NULL, 'l'},
	    {"json", no_argument, NULL, 'j'},
	    {"csv", no_argument, NULL, 'c'},
	    {"wide", no_argument, NULL, 'w'},
	    {"utc", no_argument, NULL, 'u'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static const struct args_spec spec = {
	    STREAMS_CMD, streams_help, NULL, longopts, streams_opt};
	int rc;

	memset(o, 0, sizeof(*o));
	o->db = CLI_DEFAULT_DB;
	o->limit = -1;
	if ((rc = args_parse(&spec, argc, argv, o)) != CLI_OK)
		return rc;
	return args_no_operands(STREAMS_CMD, argc, argv);
}

/* Columns of the list query, by index. */
enum streams_col {
	SC_ID,
	SC_T_ACCEPT,
	SC_CLIENT_IP,
	SC_CLIENT_PORT,
	SC_LISTENER_TARGET,
	SC_TARGET_HOST,
	SC_TARGET_PORT,
	SC_NAME,
	SC_NAMED_BY,
	SC_SERVER_IP,
	SC_SERVER_PORT,
	SC_PROTOCOL,
	SC_MMTLS_BAD,
	SC_T_CLOSE,
	SC_BYTES_UP,
	SC_BYTES_DOWN,
	SC_MMTLS_RECORDS,
	SC_CLOSED_BY,
	SC_CLOSE_REASON,
	SC_SNI,
	SC_EVENTS,
	SC_EVENTS_CAPPED,
};

/*
 * The newest `limit` streams matching o, printed oldest first. Numbered
 * parameters, so a filter left out leaves the others alone: ?1 domain,
 * ?2 protocol, ?3 limit.
 */
static int
streams_prepare(sqlite3 *db, const struct streams_opts *o, sqlite3_stmt **s)
{
	char sql[2048];
	const char *proto = "";

	if (o->protocol != NULL)
		proto = strcmp(o->protocol, "other") == 0
		    ? "AND coalesce(c.protocol, '') NOT IN ('mmtls', 'tls')"
		    : "AND c.protocol = lower(?2)";
	snprintf(sql, sizeof(sql),
	    "SELECT * FROM (SELECT c.id, c.t_accept_us, c.client_ip,"
	    " c.client_port, c.listener_target, c.target_host, c.target_port,"
	    " n.name, n.named_by, c.server_ip, c.server_port, c.protocol,"
	    " c.mmtls_bad, c.t_close_us, c.bytes_from_client,"
	    " c.bytes_from_server, c.mmtls_records, c.closed_by,"
	    " c.close_reason, c.sni, c.events, c.events_capped"
	    " FROM connections c LEFT JOIN stream_names n ON n.conn_id = c.id"
	    " WHERE " STREAMS_WHERE " %s %s"
	    " ORDER BY c.id DESC LIMIT ?3) ORDER BY id",
	    proto, o->domain == NULL ? "" : STREAMS_DOMAIN_WHERE);
	if (sqlite3_prepare_v2(db, sql, -1, s, NULL) != SQLITE_OK)
		return -1;
	if (o->domain != NULL)
		sqlite3_bind_text(*s, 1, o->domain, -1, SQLITE_STATIC);
	if (o->protocol != NULL)
		sqlite3_bind_text(*s, 2, o->protocol, -1, SQLITE_STATIC);
	sqlite3_bind_int64(*s, 3, o->limit);
	return 0;
}

static const char *
streams_col(sqlite3_stmt *s, int i)
{
	return (const char *)sqlite3_column_text(s, i);
}

/* "host:port", the address in brackets when it is IPv6. */
void
streams_hostport(char *buf, size_t len, const char *host, int64_t port)
{
	if (host == NULL || host[0] == '\0')
		snprintf(buf, len, "-");
	else if (strchr(host, ':') != NULL)
		snprintf(buf, len, "[%s]:%lld", host, (long long)port);
	else
		snprintf(buf, len, "%s:%lld", host, (long long)port);
}

/* The target the client asked for: as the listener recorded it, else
 * from target host and port. */
static void
streams_target(char *buf, size_t len, sqlite3_stmt *s)
{
	const char *lt = streams_col(s, SC_LISTENER_TARGET);

	if (lt != NULL && lt[0] != '\0')
		snprintf(buf, len, "%s", lt);
	else
		streams_hostport(buf, len, streams_col(s, SC_TARGET_HOST),
		    sqlite3_column_int64(s, SC_TARGET_PORT));
}

/* The host a person knows the stream by: the name found for a bare
 * address, else the SNI, else the target asked for. */
static const char *
streams_host(sqlite3_stmt *s)
{
	const char *n = streams_col(s, SC_NAME);

	if (n == NULL)
		n = streams_col(s, SC_SNI);
	if (n == NULL)
		n = streams_col(s, SC_TARGET_HOST);
	return n;
}

/* "mmtls?" when the record layer stopped making sense. */
void
streams_proto(char *buf, size_t len, const char *proto, int bad)
{
	const char *p = proto != NULL ? proto : "-";
	size_t n = strlen(p);

	/* the proxy already labels such a stream "mmtls?" */
	snprintf(
	    buf, len, "%s%s", p, bad && (n == 0 || p[n - 1] != '?') ? "?" : "");
}

/* Who closed it, else why the proxy did. */
static const char *
streams_closed(sqlite3_stmt *s)
{
	const char *by = streams_col(s, SC_CLOSED_BY);

	return by != NULL ? by : streams_col(s, SC_CLOSE_REASON);
}

/* Duration in ms, -1 when the stream has no close time. */
static double
streams_ms(sqlite3_stmt *s)
{
	if (sqlite3_column_type(s, SC_T_CLOSE) == SQLITE_NULL ||
	    sqlite3_column_type(s, SC_T_ACCEPT) == SQLITE_NULL)
		return -1;
	return (double)(sqlite3_column_int64(s, SC_T_CLOSE) -
		   sqlite3_column_int64(s, SC_T_ACCEPT)) /
	    1000.0;
}

static json_t *
streams_json_row(sqlite3_stmt *s)
{
	json_t *o;
	char when[40], buf[320];
	double ms = streams_ms(s);

	if ((o = json_object()) == NULL)
		return NULL;
	out_iso_time(
	    sqlite3_column_int64(s, SC_T_ACCEPT), 1, when, sizeof(when));
	json_object_set_new(
	    o, "id", json_integer(sqlite3_column_int64(s, SC_ID)));
	json_object_set_new(o, "start", json_string(when));
	json_object_set_new(
	    o, "start_us", json_integer(sqlite3_column_int64(s, SC_T_ACCEPT)));
	streams_hostport(buf, sizeof(buf), streams_col(s, SC_CLIENT_IP),
	    sqlite3_column_int64(s, SC_CLIENT_PORT));
	json_object_set_new(o, "client", out_json_str(buf));
	streams_target(buf, sizeof(buf), s);
	json_object_set_new(o, "target", out_json_str(buf));
	json_object_set_new(
	    o, "target_host", out_json_str(streams_col(s, SC_TARGET_HOST)));
	json_object_set_new(o, "target_port",
	    json_integer(sqlite3_column_int64(s, SC_TARGET_PORT)));
	json_object_set_new(o, "sni", out_json_str(streams_col(s, SC_SNI)));
	json_object_set_new(o, "host", out_json_str(streams_host(s)));
	json_object_set_new(
	    o, "named_by", out_json_str(streams_col(s, SC_NAMED_BY)));
	json_object_set_new(
	    o, "server_ip", out_json_str(streams_col(s, SC_SERVER_IP)));
	json_object_set_new(o, "server_port",
	    json_integer(sqlite3_column_int64(s, SC_SERVER_PORT)));
	streams_proto(buf, sizeof(buf), streams_col(s, SC_PROTOCOL),
	    sqlite3_column_int(s, SC_MMTLS_BAD));
	json_object_set_new(o, "protocol", out_json_str(buf));
	json_object_set_new(
	    o, "duration_ms", ms < 0 ? json_null() : json_real(ms));
	json_object_set_new(
	    o, "bytes_up", json_integer(sqlite3_column_int64(s, SC_BYTES_UP)));
	json_object_set_new(o, "bytes_down",
	    json_integer(sqlite3_column_int64(s, SC_BYTES_DOWN)));
	json_object_set_new(o, "mmtls_records",
	    json_integer(sqlite3_column_int64(s, SC_MMTLS_RECORDS)));
	json_object_set_new(
	    o, "events", json_integer(sqlite3_column_int64(s, SC_EVENTS)));
	json_object_set_new(o, "events_capped",
	    json_boolean(sqlite3_column_int(s, SC_EVENTS_CAPPED) != 0));
	json_object_set_new(
	    o, "closed_by", out_json_str(streams_col(s, SC_CLOSED_BY)));
	json_object_set_new(
	    o, "close_reason", out_json_str(streams_col(s, SC_CLOSE_REASON)));
	return o;
}

/* People get readable sizes; CSV keeps exact numbers. */
static int
streams_table_row(struct out_table *t, sqlite3_stmt *s, enum out_format fmt)
{
	char id[24], when[40], client[80], target[320], server[80];
	char proto[40], dur[32], up[24], down[24], recs[24];
	const char *cells[STREAMS_NCOLS];
	double ms = streams_ms(s);
	uint64_t nup = (uint64_t)sqlite3_column_int64(s, SC_BYTES_UP);
	uint64_t ndown = (uint64_t)sqlite3_column_int64(s, SC_BYTES_DOWN);

	snprintf(
	    id, sizeof(id), "%lld", (long long)sqlite3_column_int64(s, SC_ID));
	out_time(
	    sqlite3_column_int64(s, SC_T_ACCEPT), 1, fmt, when, sizeof(when));
	streams_hostport(client, sizeof(client), streams_col(s, SC_CLIENT_IP),
	    sqlite3_column_int64(s, SC_CLIENT_PORT));
	streams_target(target, sizeof(target), s);
	streams_hostport(server, sizeof(server), streams_col(s, SC_SERVER_IP),
	    sqlite3_column_int64(s, SC_SERVER_PORT));
	streams_proto(proto, sizeof(proto), streams_col(s, SC_PROTOCOL),
	    sqlite3_column_int(s, SC_MMTLS_BAD));
	if (ms < 0)
		snprintf(dur, sizeof(dur), "-");
	else
		snprintf(dur, sizeof(dur), "%.1f", ms);
	if (fmt == OUT_CSV) {
		snprintf(up, sizeof(up), "%llu", (unsigned long long)nup);
		snprintf(down, sizeof(down), "%llu", (unsigned long long)ndown);
	} else {
		out_size(nup, up, sizeof(up));
		out_size(ndown, down, sizeof(down));
	}
	snprintf(recs, sizeof(recs), "%lld",
	    (long long)sqlite3_column_int64(s, SC_MMTLS_RECORDS));
	cells[0] = id;
	cells[1] = when;
	cells[2] = client;
	cells[3] = target;
	cells[4] = streams_host(s);
	cells[5] = streams_col(s, SC_NAMED_BY);
	cells[6] = server;
	cells[7] = proto;
	cells[8] = dur;
	cells[9] = up;
	cells[10] = down;
	cells[11] = recs;
	cells[12] = streams_closed(s);
	return out_table_add(t, cells);
}

static struct out_table *
streams_table_new(void)
{
	static const char *const headers[STREAMS_NCOLS] = {"id", "start",
	    "client", "target", "host", "named_by", "server", "protocol",
	    "duration_ms", "bytes_up", "bytes_down", "mmtls_records",
	    "closed_by"};
	/* On a narrow terminal target, host and protocol stay; the
	 * addresses and counts are left out first. */
	static const struct {
		unsigned flags;
		size_t minw;
		int drop;
	} cols[STREAMS_NCOLS] = {
	    {OUT_COL_RIGHT, 0, 0},
	    {OUT_COL_TIME, 0, 0},
	    {OUT_COL_SHRINK, 9, 5},
	    {OUT_COL_SHRINK, 16, 0},
	    {OUT_COL_SHRINK, 16, 0},
	    {OUT_COL_SHRINK, 8, 8},
	    {OUT_COL_SHRINK, 9, 7},
	    {OUT_COL_SHRINK, 5, 0},
	    {OUT_COL_RIGHT, 0, 3},
	    {OUT_COL_RIGHT, 0, 2},
	    {OUT_COL_RIGHT, 0, 1},
	    {OUT_COL_RIGHT, 0, 6},
	    {OUT_COL_SHRINK, 8, 4},
	};
	struct out_table *t;
	size_t i;

	if ((t = out_table_new(STREAMS_NCOLS, headers)) == NULL)
		return NULL;
	for (i = 0; i < STREAMS_NCOLS; i++)
		out_table_col(t, i, cols[i].flags, cols[i].minw, cols[i].drop);
	return t;
}

static const struct out_rows streams_rows = {
    STREAMS_CMD, streams_table_new, streams_json_row, streams_table_row};

json_t *
views_streams(sqlite3 *db, char *err, size_t errlen)
{
	struct streams_opts o;
	sqlite3_stmt *s = NULL;
	json_t *arr;

	memset(&o, 0, sizeof(o));
	o.limit = -1;
	if (streams_prepare(db, &o, &s) == -1) {
		snprintf(err, errlen, "query failed: %s", sqlite3_errmsg(db));
		sqlite3_finalize(s);
		return NULL;
	}
	arr = out_json_rows(&streams_rows, db, s, err, errlen);
	sqlite3_finalize(s);
	return arr;
}

static int
streams_print(sqlite3 *db, const struct streams_opts *o)
{
	sqlite3_stmt *s = NULL;
	int status = CLI_ERROR;

	if (streams_prepare(db, o, &s) == -1) {
		db_warn(STREAMS_CMD, db, "query failed");
		goto fail;
	}
	status = out_print_rows(&streams_rows, db, s, o->fmt) == 0 ? CLI_OK
								   : CLI_ERROR;
fail:
	sqlite3_finalize(s);
	return status;
}

int
cli_streams(int argc, char **argv)
{
	struct streams_opts o;
	sqlite3 *db;
	int rc;

	if ((rc = streams_parse(argc, argv, &o)) != CLI_OK)
		return rc == ARGS_HELP ? CLI_OK : rc;
	if ((db = db_open_readonly(STREAMS_CMD, o.db)) == NULL)
		return CLI_ERROR;
	out_view_init(o.wide, o.utc);
	rc = streams_print(db, &o);
	sqlite3_close(db);
	return rc;
}
