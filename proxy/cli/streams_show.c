/*
 * streams_show: `peephole show stream ID`, one stream (streams.h) in full
 * with its event series: a timeline for people, CSV for plotting, or one
 * JSON object.
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
#include "proxy/cli/streams_samples.h"
#include "proxy/cli/views.h"

#define STREAMS_SHOW_CMD "show stream"

static const char streams_show_help[] =
    "usage: peephole show stream ID [--samples] [--csv | --json] [--db "
    "FILE]\n"
    "\n"
    "Print stream (connection) ID in full: endpoints and the name found\n"
    "for a bare address, protocol and decision, times of accept, upstream\n"
    "connected, first and last byte each way and close, bytes and reads\n"
    "each way, who closed it, TCP_INFO of both sockets at close, mmTLS\n"
    "record counts, a summary of its TCP samples (TCP_INFO of both legs\n"
    "read every tcp-sample-interval), then its timeline: ms since accept,\n"
    "direction (-> client to server, <- back), bytes and mmTLS record\n"
    "type.\n"
    "\n"
    "  --samples  print the TCP samples instead of the events, one row per\n"
    "             socket and reading; with --csv, ready for plotting:\n"
    "             t_ms,side,rtt_ms,rttvar_ms,snd_cwnd,unacked,\n"
    "             bytes_in_flight,retrans,total_retrans,delivery_rate,\n"
    "             bytes_acked,bytes_received (t_ms since accept; side\n"
    "             client or origin; cwnd and unacked in segments;\n"
    "             delivery_rate in bytes/s)\n"
    "  --csv      print only the series as CSV: the events\n"
    "             (t_ms,dir,bytes,mmtls_type), or the samples\n"
    "  --json     print one JSON object, events (events_list) and samples\n"
    "             (tcp_samples) included\n"
    "  --db FILE  database to read (default " CLI_DEFAULT_DB ")\n"
    "  --help     print this help\n";

struct streams_show_opts {
	const char *db;
	int64_t id;
	enum out_format fmt;
	int samples; /* --samples: the TCP samples, not the events */
};

static int
streams_show_opt(int ch, char *arg, void *opts)
{
	struct streams_show_opts *o = opts;

	if (ch == 'd')
		o->db = arg;
	else if (ch == 'S')
		o->samples = 1;
	else
		return args_format(STREAMS_SHOW_CMD, ch, &o->fmt);
	return 0;
}

static int
streams_show_parse(int argc, char **argv, struct streams_show_opts *o)
{
	static const struct option longopts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"json", no_argument, NULL, 'j'},
	    {"csv", no_argument, NULL, 'c'},
	    {"samples", no_argument, NULL, 'S'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static const struct args_spec spec = {STREAMS_SHOW_CMD,
	    streams_show_help, NULL, longopts, streams_show_opt};
	int rc;

	memset(o, 0, sizeof(*o));
	o->db = CLI_DEFAULT_DB;
	if ((rc = args_parse(&spec, argc, argv, o)) != CLI_OK)
		return rc;
	return args_one_id(
	    STREAMS_SHOW_CMD, "stream", "streams", argc, argv, &o->id);
}

static const char *
streams_show_type_name(int type)
{
	switch (type) {
	case 0x15:
		return "alert";
	case 0x16:
		return "handshake";
	case 0x17:
		return "data";
	case 0x19:
		return "early";
	}
	return NULL;
}

/* An mmTLS record type for people: its name, "0xNN" if unknown, "" for
 * none. */
static void
streams_show_type(char *buf, size_t len, sqlite3_stmt *ev, int col)
{
	const char *n;
	int type;

	if (sqlite3_column_type(ev, col) == SQLITE_NULL) {
		snprintf(buf, len, "%s", "");
		return;
	}
	type = sqlite3_column_int(ev, col);
	if ((n = streams_show_type_name(type)) != NULL)
		snprintf(buf, len, "%s", n);
	else
		snprintf(buf, len, "0x%02x", type);
}

static void
streams_show_field(FILE *fp, const char *label, const char *value)
{
	if (value == NULL || value[0] == '\0')
		return;
	fprintf(fp, "  %-11s ", label);
	out_safe(fp, value, 0);
	fputc('\n', fp);
}

/* ", LABEL +X ms" for a time column, measured from accept. */
static void
streams_show_at(
    char *buf, size_t len, sqlite3_stmt *c, const char *label, const char *col)
{
	size_t n = strlen(buf);

	if (out_col_null(c, col) || n >= len)
		return;
	snprintf(buf + n, len - n, "%s%s +%.3f ms", n > 0 ? ", " : "", label,
	    (double)(out_col_int(c, col) - out_col_int(c, "t_accept_us")) /
		1000.0);
}

/* Column tcp_SIDE_NAME; -1 when NULL (TCP_INFO not read). */
static long long
streams_show_tcp_val(sqlite3_stmt *c, const char *side, const char *name)
{
	char col[40];

	snprintf(col, sizeof(col), "tcp_%s_%s", side, name);
	return out_col_null(c, col) ? -1 : (long long)out_col_int(c, col);
}

/* TCP_INFO of one side, "" when it was not read. */
static void
streams_show_tcp(char *buf, size_t len, sqlite3_stmt *c, const char *side)
{
	buf[0] = '\0';
	if (streams_show_tcp_val(c, side, "rtt_us") < 0)
		return;
	snprintf(buf, len,
	    "rtt %.3f ms, rttvar %.3f ms, retransmits %lld (total %lld), "
	    "lost %lld, reordering %lld, cwnd %lld, pmtu %lld",
	    (double)streams_show_tcp_val(c, side, "rtt_us") / 1000.0,
	    (double)streams_show_tcp_val(c, side, "rttvar_us") / 1000.0,
	    streams_show_tcp_val(c, side, "retransmits"),
	    streams_show_tcp_val(c, side, "total_retrans"),
	    streams_show_tcp_val(c, side, "lost"),
	    streams_show_tcp_val(c, side, "reordering"),
	    streams_show_tcp_val(c, side, "snd_cwnd"),
	    streams_show_tcp_val(c, side, "pmtu"));
}

/* The connection's endpoints, name, protocol and decision. */
static void
streams_show_text_ends(FILE *fp, sqlite3_stmt *c)
{
	char buf[512], ts[40];
	const char *v, *name = out_col_text(c, "named_host");

	fprintf(fp, "stream %lld\n", (long long)out_col_int(c, "id"));
	streams_proto(buf, sizeof(buf), out_col_text(c, "protocol"),
	    (int)out_col_int(c, "mmtls_bad"));
	if (out_col_int(c, "mmtls_bad"))
		snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf),
		    " (mmTLS records stopped parsing)");
	(void)v;
	streams_show_field(fp, "protocol", buf);
	streams_hostport(buf, sizeof(buf), out_col_text(c, "client_ip"),
	    out_col_int(c, "client_port"));
	streams_show_field(fp, "client", buf);
	if ((v = out_col_text(c, "listener_target")) != NULL)
		snprintf(buf, sizeof(buf), "%s", v);
	else
		streams_hostport(buf, sizeof(buf),
		    out_col_text(c, "target_host"),
		    out_col_int(c, "target_port"));
	streams_show_field(fp, "target", buf);
	streams_show_field(fp, "sni", out_col_text(c, "sni"));
	if (name != NULL) {
		out_iso_time(out_col_int(c, "named_at_us"), 1, ts, sizeof(ts));
		snprintf(buf, sizeof(buf), "%s (named by %s, seen %s)", name,
		    (v = out_col_text(c, "named_by")) != NULL ? v : "-", ts);
		streams_show_field(fp, "host", buf);
	} else if ((v = out_col_text(c, "name_candidates")) != NULL) {
		/* several names resolved to the address for this client */
		snprintf(buf, sizeof(buf), "ambiguous: %s", v);
		streams_show_field(fp, "host", buf);
	}
	streams_hostport(buf, sizeof(buf), out_col_text(c, "server_ip"),
	    out_col_int(c, "server_port"));
	streams_show_field(fp, "server", buf);
	if ((v = out_col_text(c, "decision")) != NULL) {
		snprintf(buf, sizeof(buf), "%s", v);
		if ((v = out_col_text(c, "decision_reason")) != NULL)
			snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf),
			    " (%s)", v);
		streams_show_field(fp, "decision", buf);
	}
}

/* Times, bytes, close, TCP_INFO and mmTLS counts. */
static void
streams_show_text_shape(FILE *fp, sqlite3_stmt *c)
{
	char buf[512], t1[40], t2[40];
	const char *v;

	out_iso_time(out_col_int(c, "t_accept_us"), 1, t1, sizeof(t1));
	out_iso_time(out_col_int(c, "t_close_us"), 1, t2, sizeof(t2));
	snprintf(buf, sizeof(buf), "%s to %s", t1, t2);
	streams_show_field(fp, "open", buf);
	buf[0] = '\0';
	streams_show_at(
	    buf, sizeof(buf), c, "upstream", "t_upstream_connected_us");
	streams_show_at(buf, sizeof(buf), c, "first up", "t_first_up_us");
	streams_show_at(buf, sizeof(buf), c, "last up", "t_last_up_us");
	streams_show_at(buf, sizeof(buf), c, "first down", "t_first_down_us");
	streams_show_at(buf, sizeof(buf), c, "last down", "t_last_down_us");
	streams_show_at(buf, sizeof(buf), c, "close", "t_close_us");
	streams_show_field(fp, "timing", buf);
	snprintf(buf, sizeof(buf),
	    "up %lld in %lld reads, down %lld in %lld reads",
	    (long long)out_col_int(c, "bytes_from_client"),
	    (long long)out_col_int(c, "reads_up"),
	    (long long)out_col_int(c, "bytes_from_server"),
	    (long long)out_col_int(c, "reads_down"));
	streams_show_field(fp, "bytes", buf);
	snprintf(buf, sizeof(buf), "%s",
	    (v = out_col_text(c, "closed_by")) != NULL ? v : "-");
	if ((v = out_col_text(c, "close_reason")) != NULL)
		snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf),
		    " (proxy: %s)", v);
	streams_show_field(fp, "closed by", buf);
	streams_show_field(fp, "error", out_col_text(c, "error"));
	streams_show_tcp(buf, sizeof(buf), c, "client");
	streams_show_field(fp, "tcp client", buf);
	streams_show_tcp(buf, sizeof(buf), c, "server");
	streams_show_field(fp, "tcp server", buf);
	if (out_col_int(c, "mmtls_records") > 0 ||
	    out_col_int(c, "mmtls_bad")) {
		snprintf(buf, sizeof(buf),
		    "%lld records: %lld handshake, %lld early (0-RTT), %lld "
		    "data, %lld alert%s",
		    (long long)out_col_int(c, "mmtls_records"),
		    (long long)out_col_int(c, "mmtls_handshake"),
		    (long long)out_col_int(c, "mmtls_early"),
		    (long long)out_col_int(c, "mmtls_data"),
		    (long long)out_col_int(c, "mmtls_alert"),
		    out_col_int(c, "mmtls_bad") ? "; then unparseable" : "");
		streams_show_field(fp, "mmtls", buf);
	}
	snprintf(buf, sizeof(buf), "%lld recorded%s",
	    (long long)out_col_int(c, "events"),
	    out_col_int(c, "events_capped") ? " (capped: later ones dropped)"
					    : "");
	streams_show_field(fp, "events", buf);
}

/* One event: ms since accept, direction, bytes, record type. */
static void
streams_show_event(FILE *fp, sqlite3_stmt *ev, int64_t t0, enum out_format fmt)
{
	char type[16];
	double ms = (double)(sqlite3_column_int64(ev, 0) - t0) / 1000.0;
	int down = sqlite3_column_int(ev, 1) != 0;

	streams_show_type(type, sizeof(type), ev, 3);
	if (fmt == OUT_CSV)
		fprintf(fp, "%.3f,%s,%lld,%s\r\n", ms, down ? "down" : "up",
		    (long long)sqlite3_column_int64(ev, 2), type);
	else
		fprintf(fp, "  %12.3f  %s  %8lld%s%s\n", ms, down ? "<-" : "->",
		    (long long)sqlite3_column_int64(ev, 2),
		    type[0] != '\0' ? "  " : "", type);
}

static json_t *
streams_show_event_json(sqlite3_stmt *ev, int64_t t0)
{
	char type[16];

	streams_show_type(type, sizeof(type), ev, 3);
	return json_pack("{s:f,s:I,s:s,s:I,s:o}", "t_ms",
	    (double)(sqlite3_column_int64(ev, 0) - t0) / 1000.0, "t_us",
	    (json_int_t)sqlite3_column_int64(ev, 0), "dir",
	    sqlite3_column_int(ev, 1) != 0 ? "down" : "up", "bytes",
	    (json_int_t)sqlite3_column_int64(ev, 2), "mmtls_type",
	    type[0] != '\0' ? json_string(type) : json_null());
}

#define STREAMS_SHOW_EVENTS_SQL                                                \
	"SELECT t_us, dir, bytes, mmtls_type FROM stream_events"               \
	" WHERE conn_id = ? ORDER BY t_us, rowid"

/* The events of stream c, printed in fmt (text or CSV). Exit status. */
static int
streams_show_events(sqlite3 *db, sqlite3_stmt *c, enum out_format fmt)
{
	sqlite3_stmt *ev = NULL;
	int64_t t0 = out_col_int(c, "t_accept_us");
	int rc, n = 0;

	if (sqlite3_prepare_v2(db, STREAMS_SHOW_EVENTS_SQL, -1, &ev, NULL) !=
	    SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(ev, 1, out_col_int(c, "id"));
	if (fmt == OUT_CSV)
		fputs("t_ms,dir,bytes,mmtls_type\r\n", stdout);
	else
		printf("\ntimeline (ms since accept)\n");
	while ((rc = sqlite3_step(ev)) == SQLITE_ROW) {
		streams_show_event(stdout, ev, t0, fmt);
		n++;
	}
	if (rc != SQLITE_DONE)
		goto fail;
	if (fmt == OUT_TEXT && n == 0)
		printf("  (no events recorded)\n");
	sqlite3_finalize(ev);
	return CLI_OK;
fail:
	db_warn(STREAMS_SHOW_CMD, db, "cannot read stream events");
	sqlite3_finalize(ev);
	return CLI_ERROR;
}

/* The events of stream c appended to arr. 0 / -1 with err. */
static int
streams_show_events_json(
    sqlite3 *db, sqlite3_stmt *c, json_t *arr, char *err, size_t errlen)
{
	sqlite3_stmt *ev = NULL;
	int64_t t0 = out_col_int(c, "t_accept_us");
	int rc;

	if (sqlite3_prepare_v2(db, STREAMS_SHOW_EVENTS_SQL, -1, &ev, NULL) !=
	    SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(ev, 1, out_col_int(c, "id"));
	while ((rc = sqlite3_step(ev)) == SQLITE_ROW)
		if (json_array_append_new(
			arr, streams_show_event_json(ev, t0)) == -1) {
			snprintf(err, errlen, "out of memory");
			sqlite3_finalize(ev);
			return -1;
		}
	if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(ev);
	return 0;
fail:
	snprintf(
	    err, errlen, "cannot read stream events: %s", sqlite3_errmsg(db));
	sqlite3_finalize(ev);
	return -1;
}

/* The --json object of stream c, events and TCP samples included. NULL
 * with err. */
static json_t *
streams_show_json_new(sqlite3 *db, sqlite3_stmt *c, char *err, size_t errlen)
{
	json_t *o, *arr, *smp;

	if ((o = out_json_row(c)) == NULL || (arr = json_array()) == NULL) {
		json_decref(o);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	json_object_set_new(o, "events_list", arr);
	if (streams_show_events_json(db, c, arr, err, errlen) == -1 ||
	    (smp = streams_samples_json(db, out_col_int(c, "id"),
		 out_col_int(c, "t_accept_us"), err, errlen)) == NULL) {
		json_decref(o);
		return NULL;
	}
	json_object_set_new(o, "tcp_samples", smp);
	return o;
}

static int
streams_show_json(sqlite3 *db, sqlite3_stmt *c)
{
	char err[512];
	json_t *o;
	int rc = CLI_ERROR;

	if ((o = streams_show_json_new(db, c, err, sizeof(err))) == NULL) {
		fprintf(stderr, "peephole %s: %s\n", STREAMS_SHOW_CMD, err);
		return CLI_ERROR;
	}
	if (json_dumpf(o, stdout, JSON_INDENT(2) | OUT_JSON_REALS) == 0) {
		putchar('\n');
		rc = CLI_OK;
	}
	json_decref(o);
	return rc;
}

/* Connection id's row in *c, with the name found for it. 1, 0 when there
 * is none, -1 with err. */
static int
streams_show_row(
    sqlite3 *db, int64_t id, sqlite3_stmt **c, char *err, size_t errlen)
{
	int rc;

	if (sqlite3_prepare_v2(db,
		"SELECT c.*, n.name AS named_host, n.named_by,"
		" n.named_at_us, n.candidates AS "
		"name_candidates, " STREAMS_WHERE " AS is_stream"
		" FROM connections c LEFT JOIN stream_names n"
		" ON n.conn_id = c.id WHERE c.id = ?",
		-1, c, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(*c, 1, id);
	if ((rc = sqlite3_step(*c)) == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
fail:
	snprintf(err, errlen, "query failed: %s", sqlite3_errmsg(db));
	return -1;
}

int
views_stream(sqlite3 *db, int64_t id, json_t **out, char *err, size_t errlen)
{
	sqlite3_stmt *c = NULL;
	int rc;

	*out = NULL;
	if ((rc = streams_show_row(db, id, &c, err, errlen)) == 1 &&
	    (*out = streams_show_json_new(db, c, err, errlen)) == NULL)
		rc = -1;
	sqlite3_finalize(c);
	return rc;
}

/* The text header of stream c: what it was, its shape, its samples.
 * 0 / -1 with err. */
static int
streams_show_text(sqlite3 *db, sqlite3_stmt *c, char *err, size_t errlen)
{
	streams_show_text_ends(stdout, c);
	streams_show_text_shape(stdout, c);
	if (streams_samples_summary(stdout, db, out_col_int(c, "id"),
		(int)out_col_int(c, "tcp_samples_capped"), err, errlen) == -1)
		return -1;
	if (!out_col_int(c, "is_stream"))
		printf("  (not a stream: HTTP was parsed on "
		       "it; see `peephole requests`)\n");
	return 0;
}

static int
streams_show_print(sqlite3 *db, const struct streams_show_opts *o)
{
	sqlite3_stmt *c = NULL;
	char err[512];
	int rc, status = CLI_ERROR;

	if ((rc = streams_show_row(db, o->id, &c, err, sizeof(err))) != 1) {
		if (rc == 0)
			fprintf(stderr,
			    "peephole %s: no connection with id %lld\n",
			    STREAMS_SHOW_CMD, (long long)o->id);
		else
			fprintf(
			    stderr, "peephole %s: %s\n", STREAMS_SHOW_CMD, err);
		goto fail;
	}
	if (o->fmt == OUT_JSON)
		status = streams_show_json(db, c);
	else if (o->fmt == OUT_TEXT &&
	    streams_show_text(db, c, err, sizeof(err)) == -1)
		fprintf(stderr, "peephole %s: %s\n", STREAMS_SHOW_CMD, err);
	else if (!o->samples)
		status = streams_show_events(db, c, o->fmt);
	else if (streams_samples_print(stdout, db, o->id,
		     out_col_int(c, "t_accept_us"), o->fmt, err,
		     sizeof(err)) == -1)
		fprintf(stderr, "peephole %s: %s\n", STREAMS_SHOW_CMD, err);
	else
		status = CLI_OK;
fail:
	sqlite3_finalize(c);
	return status;
}

int
cli_show_stream(int argc, char **argv)
{
	struct streams_show_opts o;
	sqlite3 *db;
	int rc;

	if ((rc = streams_show_parse(argc, argv, &o)) != CLI_OK)
		return rc == ARGS_HELP ? CLI_OK : rc;
	if ((db = db_open_readonly(STREAMS_SHOW_CMD, o.db)) == NULL)
		return CLI_ERROR;
	rc = streams_show_print(db, &o);
	sqlite3_close(db);
	return rc;
}
