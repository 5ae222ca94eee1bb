/*
 * show: `peephole show ID`, one logged exchange in full — request line and
 * headers, response status and headers, body sizes and previews, timings,
 * error and the connection it travelled on — and the way to pull captured
 * bodies out of the store (--body-out, --request-body-out), decoded as
 * their Content-Encoding says or, with --raw, byte for byte.
 */
#include "proxy/cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy/cli/args.h"
#include "proxy/store/db.h"
#include "proxy/cli/output.h"
#include "proxy/cli/views.h"
#include "proxy/cli/wsmsg.h"
#include "proxy/http/head.h"
#include "proxy/store/readable.h"
#include "proxy/store/requrl.h"

#define SHOW_CMD "show"
/* Preview at most this much of a text body, and this many lines. */
#define SHOW_PREVIEW_BYTES 4096
#define SHOW_PREVIEW_LINES 40
/* Bytes of a binary body --hex dumps. */
#define SHOW_HEX_BYTES 1024

struct show_opts {
	const char *db;
	int64_t id;
	const char *body_out;     /* response body to this file */
	const char *req_body_out; /* request body to this file */
	int json;
	int raw;   /* bodies as stored, not decoded */
	int hex;   /* dump binary bodies in hex */
	int force; /* --body-out may overwrite */
};

/* A captured body as the store has it. */
struct show_body {
	int64_t size;        /* bytes the message really had */
	int truncated;       /* fewer bytes captured than size */
	const char *sha;     /* NULL: nothing captured */
	unsigned char *data; /* malloc'd copy of the captured bytes */
	size_t len;
	struct readable view; /* data decoded, or data itself */
};

static const char show_help[] =
    "usage: peephole show ID [--body-out FILE] [--request-body-out FILE]\n"
    "                        [--force] [--raw] [--hex] [--json] [--db FILE]\n"
    "       peephole show stream ID [--csv | --json] [--db FILE]\n"
    "       peephole show trace ID [--json] [--db FILE]\n"
    "\n"
    "Print logged request ID in full: request line and headers, response\n"
    "status and headers, body sizes (and whether they were truncated), a\n"
    "preview of each body, timings, error and the connection it used.\n"
    "Bodies are decoded as their Content-Encoding says (gzip, deflate, br,\n"
    "zstd, stacked) and JSON is pretty-printed.\n"
    "`show stream ID` prints stream (connection) ID and its timeline;\n"
    "see `peephole show stream --help`.\n"
    "`show trace ID` prints a path `peephole trace` stored.\n"
    "\n"
    "  --body-out FILE          write the captured response body to FILE\n"
    "                           (- for stdout), decoded; only a one-line\n"
    "                           summary is printed, on stderr\n"
    "  --request-body-out FILE  the same for the request body\n"
    "  --force                  let --body-out overwrite an existing file\n"
    "  --raw                    bodies as stored (still encoded), for the\n"
    "                           preview and --body-out\n"
    "  --hex                    a hex dump of binary bodies\n"
    "  --json                   print one JSON object\n"
    "  --db FILE                database to read (default " CLI_DEFAULT_DB ")\n"
    "  --help                   print this help\n";

static int
show_opt(int ch, char *arg, void *opts)
{
	struct show_opts *o = opts;

	switch (ch) {
	case 'd':
		o->db = arg;
		break;
	case 'b':
		o->body_out = arg;
		break;
	case 'r':
		o->req_body_out = arg;
		break;
	case 'j':
		o->json = 1;
		break;
	case 'F':
		o->force = 1;
		break;
	case 'R':
		o->raw = 1;
		break;
	case 'x':
		o->hex = 1;
		break;
	}
	return 0;
}

static int
show_parse(int argc, char **argv, struct show_opts *o)
{
	static const struct option longopts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"body-out", required_argument, NULL, 'b'},
	    {"request-body-out", required_argument, NULL, 'r'},
	    {"json", no_argument, NULL, 'j'},
	    {"force", no_argument, NULL, 'F'},
	    {"raw", no_argument, NULL, 'R'},
	    {"hex", no_argument, NULL, 'x'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static const struct args_spec spec = {
	    SHOW_CMD, show_help, NULL, longopts, show_opt};
	int rc;

	memset(o, 0, sizeof(*o));
	o->db = CLI_DEFAULT_DB;
	if ((rc = args_parse(&spec, argc, argv, o)) != CLI_OK)
		return rc;
	return args_one_id(SHOW_CMD, "request", "requests", argc, argv, &o->id);
}

/* Like show_text, "-" for NULL, for building strings. */
static const char *
show_textd(sqlite3_stmt *s, const char *name)
{
	const char *t = out_col_text(s, name);

	return t != NULL ? t : "-";
}

/* One exchange as show reads it. */
struct show_exchange {
	sqlite3_stmt *s; /* its requests row */
	sqlite3_stmt *c; /* its connections row, NULL when not written yet */
	struct show_body req, resp;
	char *url;
};

/* Prepare sql with one integer parameter and step to its row. 1 row, 0 no
 * row, -1 error (in err). */
static int
show_row(sqlite3 *db, const char *sql, int64_t id, sqlite3_stmt **s, char *err,
    size_t errlen)
{
	int rc;

	if (sqlite3_prepare_v2(db, sql, -1, s, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "query failed: %s", sqlite3_errmsg(db));
		return -1;
	}
	sqlite3_bind_int64(*s, 1, id);
	if ((rc = sqlite3_step(*s)) == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	snprintf(err, errlen, "query failed: %s", sqlite3_errmsg(db));
	return -1;
}

/* Fill b from the request row's PREFIX_body_* columns and the bodies
 * table, and its readable view: decoded as PREFIX_headers say unless raw.
 * 0 / -1 (in err). */
static int
show_body_load(sqlite3 *db, sqlite3_stmt *req, const char *prefix, int raw,
    struct show_body *b, char *err, size_t errlen)
{
	char col[32];
	int rc;

	snprintf(col, sizeof(col), "%s_body_size", prefix);
	b->size = out_col_int(req, col);
	snprintf(col, sizeof(col), "%s_body_truncated", prefix);
	b->truncated = out_col_int(req, col) != 0;
	snprintf(col, sizeof(col), "%s_body_sha", prefix);
	if ((b->sha = out_col_text(req, col)) == NULL)
		return 0;
	if ((rc = db_body(db, b->sha, &b->data, &b->len)) == -1) {
		snprintf(
		    err, errlen, "cannot read body: %s", sqlite3_errmsg(db));
		return -1;
	}
	if (rc == 0) {
		/* The request row names a body the file does not hold. */
		b->sha = NULL;
		return 0;
	}
	snprintf(col, sizeof(col), "%s_headers", prefix);
	if (raw) {
		b->view.data = b->data;
		b->view.len = b->len;
	} else
		readable_body(
		    out_col_text(req, col), b->data, b->len, &b->view);
	return 0;
}

static void
show_unload(struct show_exchange *x)
{
	free(x->url);
	readable_free(&x->req.view);
	readable_free(&x->resp.view);
	free(x->req.data);
	free(x->resp.data);
	sqlite3_finalize(x->c);
	sqlite3_finalize(x->s);
	memset(x, 0, sizeof(*x));
}

/* Read request id, its connection and its bodies into x (zeroed first;
 * show_unload frees it whatever this returns). 1, 0 when there is no such
 * request, -1 with a message in err. */
static int
show_load(sqlite3 *db, int64_t id, int raw, struct show_exchange *x, char *err,
    size_t errlen)
{
	sqlite3_stmt *s;
	int rc;

	memset(x, 0, sizeof(*x));
	if ((rc = show_row(db, "SELECT * FROM requests WHERE id = ?", id, &x->s,
		 err, errlen)) != 1)
		return rc;
	s = x->s;
	if ((rc = show_row(db, "SELECT * FROM connections WHERE id = ?",
		 out_col_int(s, "conn_id"), &x->c, err, errlen)) == -1)
		return -1;
	if (rc == 0) {
		sqlite3_finalize(x->c);
		x->c = NULL;
	}
	if (show_body_load(db, s, "req", raw, &x->req, err, errlen) == -1 ||
	    show_body_load(db, s, "resp", raw, &x->resp, err, errlen) == -1)
		return -1;
	x->url =
	    requrl_format(out_col_text(s, "scheme"), out_col_text(s, "method"),
		out_col_text(s, "host"), (int)out_col_int(s, "port"),
		out_col_text(s, "path"), out_col_text(s, "query"));
	return 1;
}

static void
show_preview_line(FILE *fp, const char *line)
{
	fputs("  | ", fp);
	out_safe(fp, line, 0);
	fputc('\n', fp);
}

/* A hex dump of the first SHOW_HEX_BYTES, 16 bytes a line. */
static void
show_hex(FILE *fp, const unsigned char *p, size_t len)
{
	size_t n = len < SHOW_HEX_BYTES ? len : SHOW_HEX_BYTES, i, j;

	for (i = 0; i < n; i += 16) {
		fprintf(fp, "  %08zx  ", i);
		for (j = i; j < i + 16; j++)
			if (j < n)
				fprintf(fp, "%02x%s", p[j],
				    j == i + 7 ? "  " : " ");
			else
				fputs(j == i + 7 ? "    " : "   ", fp);
		fputs(" |", fp);
		for (j = i; j < i + 16 && j < n; j++)
			fputc(p[j] >= 0x20 && p[j] < 0x7f ? p[j] : '.', fp);
		fputs("|\n", fp);
	}
	if (n < len)
		fprintf(fp, "  ... (%zu more bytes)\n", len - n);
}

/* JSON re-indented, malloc'd, or NULL when p is not JSON. */
static char *
show_pretty_json(const unsigned char *p, size_t len)
{
	json_t *v;
	char *out;
	size_t i = 0;

	while (i < len &&
	    (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
		i++;
	if (i == len || (p[i] != '{' && p[i] != '['))
		return NULL;
	if ((v = json_loadb((const char *)p, len, 0, NULL)) == NULL)
		return NULL;
	/* 15 digits: a body's 2.61 stays 2.61 (jansson's 17 print noise) */
	out = json_dumps(
	    v, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
	json_decref(v);
	return out;
}

/* The first lines of a text body, control characters masked; JSON
 * pretty-printed; binary as a size or, with hex, a dump. */
static void
show_preview(FILE *fp, const struct show_body *b, int hex)
{
	char line[SHOW_PREVIEW_BYTES + 1];
	const unsigned char *p = b->view.data;
	size_t len = b->view.len, i, n, ll = 0, lines = 0;
	char *pretty = NULL;

	if (b->data == NULL || len == 0)
		return;
	n = len < SHOW_PREVIEW_BYTES ? len : SHOW_PREVIEW_BYTES;
	if (!out_is_text(p, n)) {
		if (hex)
			show_hex(fp, p, len);
		else
			fprintf(
			    fp, "  (binary, %zu bytes; --hex to dump)\n", len);
		return;
	}
	if ((pretty = show_pretty_json(p, len)) != NULL) {
		p = (const unsigned char *)pretty;
		len = strlen(pretty);
		n = len < SHOW_PREVIEW_BYTES ? len : SHOW_PREVIEW_BYTES;
	}
	for (i = 0; i < n && lines < SHOW_PREVIEW_LINES; i++) {
		if (p[i] == '\n') {
			line[ll] = '\0';
			show_preview_line(fp, line);
			lines++;
			ll = 0;
		} else if (p[i] != '\r')
			line[ll++] = (char)p[i];
	}
	if (ll > 0) {
		line[ll] = '\0';
		show_preview_line(fp, line);
	}
	/* More captured than shown, or more sent than captured. */
	if (i < len || (int64_t)b->len < b->size)
		fprintf(fp, "  | ...\n");
	free(pretty);
}

static void
show_body_text(FILE *fp, const char *what, const struct show_body *b, int hex)
{
	fprintf(fp, "%s body: %lld bytes", what, (long long)b->size);
	if (b->sha != NULL) {
		fprintf(fp, ", %zu captured", b->len);
		if (b->truncated)
			fputs(" (truncated)", fp);
		fprintf(fp, ", sha256 %s", b->sha);
	} else if (b->size > 0)
		fputs(", not captured", fp);
	fputc('\n', fp);
	if (b->view.note[0] != '\0') {
		fputs("  encoding: ", fp);
		out_safe(fp, b->view.note, 0);
		if (b->view.owned != NULL)
			fprintf(fp, "; decoded: %zu bytes", b->view.len);
		fputc('\n', fp);
	}
	show_preview(fp, b, hex);
}

/* The fields of "Name: value\r\n" lines h, one line each after mark. */
static void
show_headers(FILE *fp, const char *mark, const char *h)
{
	struct head_text_iter it;
	char *line;

	head_text_init(&it, h);
	while (head_text_next(&it, NULL, NULL, NULL, NULL)) {
		if ((line = head_text_line(&it)) == NULL)
			return;
		fputs(mark, fp);
		out_safe(fp, line, 0);
		fputc('\n', fp);
		free(line);
	}
}

static void
show_dur(
    FILE *fp, sqlite3_stmt *s, const char *label, const char *col, int *first)
{
	if (out_col_null(s, col))
		return;
	fprintf(fp, "%s%s %.1f ms", *first ? "" : ", ", label,
	    (double)out_col_int(s, col) / 1000.0);
	*first = 0;
}

static void
show_field(FILE *fp, const char *label, const char *value)
{
	if (value == NULL || value[0] == '\0')
		return;
	fprintf(fp, "  %-10s ", label);
	out_safe(fp, value, 0);
	fputc('\n', fp);
}

/* An HTTP/2 exchange: its stream, both legs' versions and how the stream
 * ended when not cleanly. Nothing for HTTP/1. */
static void
show_h2(FILE *fp, sqlite3_stmt *s)
{
	const char *v = out_col_text(s, "req_version");
	const char *up = out_col_text(s, "up_version");
	char buf[96];

	if (!out_col_null(s, "stream_id")) {
		snprintf(buf, sizeof(buf), "%lld",
		    (long long)out_col_int(s, "stream_id"));
		show_field(fp, "stream", buf);
	}
	if (up != NULL && (v == NULL || strcmp(up, v) != 0)) {
		snprintf(buf, sizeof(buf), "HTTP/%s -> origin HTTP/%s",
		    v != NULL ? v : "?", up);
		show_field(fp, "versions", buf);
	}
}

static void
show_summary(FILE *fp, sqlite3_stmt *s, const char *url)
{
	char when[40], buf[96];
	int first = 1;

	fprintf(fp, "request %lld (connection %lld, exchange %lld)\n",
	    (long long)out_col_int(s, "id"),
	    (long long)out_col_int(s, "conn_id"),
	    (long long)out_col_int(s, "seq"));
	out_iso_time(out_col_int(s, "t_start_us"), 1, when, sizeof(when));
	show_field(fp, "time", when);
	show_field(fp, "client", out_col_text(s, "client_ip"));
	show_field(fp, "url", url);
	show_h2(fp, s);
	if (!out_col_null(s, "server_ip")) {
		snprintf(buf, sizeof(buf), "%s:%lld%s",
		    show_textd(s, "server_ip"),
		    (long long)out_col_int(s, "server_port"),
		    out_col_int(s, "upstream_reused") ? " (reused connection)"
						      : "");
		show_field(fp, "server", buf);
	}
	show_field(fp, "type", out_col_text(s, "content_type"));
	show_field(fp, "error", out_col_text(s, "error"));
	if (out_col_int(s, "replay_of") > 0) {
		snprintf(buf, sizeof(buf), "%lld",
		    (long long)out_col_int(s, "replay_of"));
		show_field(fp, "replay of", buf);
	}
	fprintf(fp, "  %-10s ", "timings");
	show_dur(fp, s, "dns", "dns_us", &first);
	show_dur(fp, s, "connect", "connect_us", &first);
	show_dur(fp, s, "tls", "tls_us", &first);
	show_dur(fp, s, "ttfb", "ttfb_us", &first);
	show_dur(fp, s, "total", "total_us", &first);
	fputs(first ? "-\n" : "\n", fp);
}

/* A message's trailer fields, after its body. */
static void
show_trailers(FILE *fp, const char *mark, const char *t)
{
	if (t == NULL || t[0] == '\0')
		return;
	fputs("trailers:\n", fp);
	show_headers(fp, mark, t);
}

static void
show_message(FILE *fp, sqlite3_stmt *s, const struct show_body *req,
    const struct show_body *resp, int hex)
{
	const char *q = out_col_text(s, "query");
	const char *path = out_col_text(s, "path");

	fputs("\n> ", fp);
	out_safe(fp, out_col_text(s, "method"), 0);
	fputc(' ', fp);
	if (path == NULL || path[0] == '\0') {
		/* CONNECT: the target is the authority */
		out_safe(fp, out_col_text(s, "host"), 0);
		fprintf(fp, ":%lld", (long long)out_col_int(s, "port"));
	} else
		out_safe(fp, path, 0);
	if (q != NULL) {
		fputc('?', fp);
		out_safe(fp, q, 0);
	}
	fputs(" HTTP/", fp);
	out_safe(fp, out_col_text(s, "req_version"), 0);
	fputc('\n', fp);
	show_headers(fp, "> ", out_col_text(s, "req_headers"));
	show_body_text(fp, "request", req, hex);
	show_trailers(fp, "> ", out_col_text(s, "req_trailers"));
	if (out_col_int(s, "status") <= 0) {
		fputs("\nno response\n", fp);
		return;
	}
	fputs("\n< HTTP/", fp);
	out_safe(fp, out_col_text(s, "resp_version"), 0);
	fprintf(fp, " %lld", (long long)out_col_int(s, "status"));
	if (out_col_text(s, "resp_reason") != NULL) {
		fputc(' ', fp);
		out_safe(fp, out_col_text(s, "resp_reason"), 0);
	}
	fputc('\n', fp);
	show_headers(fp, "< ", out_col_text(s, "resp_headers"));
	show_body_text(fp, "response", resp, hex);
	show_trailers(fp, "< ", out_col_text(s, "resp_trailers"));
}

/* How an HTTP/2 stream ended when not cleanly, after both messages. */
static void
show_stream_end(FILE *fp, sqlite3_stmt *s)
{
	if (out_col_text(s, "stream_end") == NULL)
		return;
	fputs("\nstream ended: ", fp);
	out_safe(fp, out_col_text(s, "stream_end"), 0);
	fputc('\n', fp);
}

/* What interception made of the connection; nothing for plain HTTP, whose
 * rows leave these columns NULL. */
static void
show_conn_tls(FILE *fp, sqlite3_stmt *c)
{
	char buf[512];
	const char *decision = out_col_text(c, "decision");
	const char *why;

	show_field(fp, "sni", out_col_text(c, "sni"));
	/* ALPN: what the client offered, what each leg agreed on */
	show_field(fp, "alpn", out_col_text(c, "alpn"));
	show_field(fp, "alpn cli", out_col_text(c, "alpn_client"));
	show_field(fp, "alpn up", out_col_text(c, "alpn_server"));
	if (decision != NULL) {
		snprintf(buf, sizeof(buf), "%s", decision);
		if ((why = out_col_text(c, "decision_reason")) != NULL)
			snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf),
			    " (%s)", why);
		show_field(fp, "decision", buf);
	}
	show_field(fp, "tls client", out_col_text(c, "tls_client"));
	show_field(fp, "tls server", out_col_text(c, "tls_server"));
	show_field(fp, "cert", out_col_text(c, "upstream_cert_subject"));
	show_field(fp, "issuer", out_col_text(c, "upstream_cert_issuer"));
	show_field(fp, "sha256", out_col_text(c, "upstream_cert_sha256"));
	show_field(fp, "verify", out_col_text(c, "verify_error"));
}

static void
show_conn_text(FILE *fp, sqlite3_stmt *c)
{
	char buf[256], t1[40], t2[40];

	if (c == NULL) {
		fputs("\nconnection: not recorded yet (still open?)\n", fp);
		return;
	}
	fprintf(fp, "\nconnection %lld\n", (long long)out_col_int(c, "id"));
	show_field(fp, "listener", out_col_text(c, "listener"));
	show_field(fp, "protocol", out_col_text(c, "protocol"));
	snprintf(buf, sizeof(buf), "%s:%lld", show_textd(c, "client_ip"),
	    (long long)out_col_int(c, "client_port"));
	show_field(fp, "client", buf);
	snprintf(buf, sizeof(buf), "%s:%lld", show_textd(c, "target_host"),
	    (long long)out_col_int(c, "target_port"));
	show_field(fp, "target", buf);
	out_iso_time(out_col_int(c, "t_accept_us"), 1, t1, sizeof(t1));
	out_iso_time(out_col_int(c, "t_close_us"), 1, t2, sizeof(t2));
	snprintf(buf, sizeof(buf), "%s to %s (%s)", t1, t2,
	    show_textd(c, "close_reason"));
	show_field(fp, "open", buf);
	snprintf(buf, sizeof(buf),
	    "client->proxy %lld, proxy->client %lld, proxy->server %lld, "
	    "server->proxy %lld",
	    (long long)out_col_int(c, "bytes_from_client"),
	    (long long)out_col_int(c, "bytes_to_client"),
	    (long long)out_col_int(c, "bytes_to_server"),
	    (long long)out_col_int(c, "bytes_from_server"));
	show_field(fp, "bytes", buf);
	show_field(fp, "error", out_col_text(c, "error"));
	show_conn_tls(fp, c);
}

/* PREFIX_body_captured (stored bytes), and the readable form:
 * PREFIX_body_encoding, _decoding (what was done), _text (decoded text, or
 * null for binary or nothing captured). */
static void
show_json_body(json_t *o, const char *prefix, const struct show_body *b)
{
	char key[40];

	snprintf(key, sizeof(key), "%s_body_captured", prefix);
	json_object_set_new(o, key,
	    b->sha != NULL ? json_integer((json_int_t)b->len) : json_null());
	snprintf(key, sizeof(key), "%s_body_encoding", prefix);
	json_object_set_new(o, key, out_json_str(b->view.encoding));
	snprintf(key, sizeof(key), "%s_body_decoding", prefix);
	json_object_set_new(o, key,
	    b->view.note[0] != '\0' ? out_json_str(b->view.note) : json_null());
	snprintf(key, sizeof(key), "%s_body_text", prefix);
	json_object_set_new(o, key,
	    b->data != NULL && out_is_text(b->view.data, b->view.len)
		? json_stringn((const char *)b->view.data, b->view.len)
		: json_null());
}

/* The show --json object of x. NULL with a message in err. */
static json_t *
show_json_new(
    sqlite3 *db, const struct show_exchange *x, char *err, size_t errlen)
{
	sqlite3_stmt *s = x->s;
	json_t *o, *ws;
	char when[40];

	if ((ws = wsmsg_json(db, out_col_int(s, "id"))) == NULL) {
		snprintf(err, errlen, "cannot read WebSocket messages: %s",
		    sqlite3_errmsg(db));
		return NULL;
	}
	if ((o = out_json_row(s)) == NULL) {
		json_decref(ws);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	json_object_set_new(o, "websocket_messages", ws);
	out_iso_time(out_col_int(s, "t_start_us"), 1, when, sizeof(when));
	json_object_set_new(o, "time", json_string(when));
	json_object_set_new(o, "url", out_json_str(x->url));
	json_object_set_new(
	    o, "req_headers", out_json_headers(out_col_text(s, "req_headers")));
	json_object_set_new(o, "resp_headers",
	    out_json_headers(out_col_text(s, "resp_headers")));
	show_json_body(o, "req", &x->req);
	show_json_body(o, "resp", &x->resp);
	json_object_set_new(
	    o, "connection", x->c != NULL ? out_json_row(x->c) : json_null());
	return o;
}

int
views_show(
    sqlite3 *db, int64_t id, int raw, json_t **out, char *err, size_t errlen)
{
	struct show_exchange x;
	int rc;

	*out = NULL;
	if ((rc = show_load(db, id, raw, &x, err, errlen)) == 1 &&
	    (*out = show_json_new(db, &x, err, errlen)) == NULL)
		rc = -1;
	show_unload(&x);
	return rc;
}

static int
show_json(sqlite3 *db, const struct show_exchange *x)
{
	char err[512];
	json_t *o;
	int rc;

	if ((o = show_json_new(db, x, err, sizeof(err))) == NULL) {
		fprintf(stderr, "peephole %s: %s\n", SHOW_CMD, err);
		return -1;
	}
	rc = json_dumpf(o, stdout, JSON_INDENT(2) | OUT_JSON_REALS);
	putchar('\n');
	json_decref(o);
	return rc;
}

/*
 * Write b's readable bytes (decoded, or as stored with --raw) to path, or
 * stdout for "-"; an existing file only with force. One line on stderr
 * says what was written. 0 / -1 (printed).
 */
static int
show_write_body(
    const char *what, const struct show_body *b, const char *path, int force)
{
	int fd, tostdout = strcmp(path, "-") == 0;
	size_t off = 0;
	ssize_t w;

	if (b->sha == NULL && b->size > 0) {
		fprintf(stderr,
		    "peephole %s: the %s body (%lld bytes) was not captured\n",
		    SHOW_CMD, what, (long long)b->size);
		return -1;
	}
	fd = tostdout
	    ? STDOUT_FILENO
	    : open(path,
		  O_WRONLY | O_CREAT | O_CLOEXEC | (force ? O_TRUNC : O_EXCL),
		  0644);
	if (fd == -1) {
		fprintf(stderr, "peephole %s: cannot write %s: %s%s\n",
		    SHOW_CMD, path, strerror(errno),
		    errno == EEXIST ? " (--force to overwrite)" : "");
		return -1;
	}
	while (off < b->view.len) {
		w = write(fd, b->view.data + off, b->view.len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	if (off < b->view.len || (!tostdout && close(fd) != 0)) {
		fprintf(stderr, "peephole %s: cannot write %s: %s\n", SHOW_CMD,
		    path, strerror(errno));
		if (!tostdout)
			(void)close(fd);
		return -1;
	}
	fprintf(stderr, "peephole %s: wrote %zu bytes of the %s body to %s",
	    SHOW_CMD, b->view.len, what, tostdout ? "stdout" : path);
	if (b->view.note[0] != '\0')
		fprintf(stderr, " (%s)", b->view.note);
	if (b->truncated)
		fprintf(stderr, "; truncated: %zu of %lld bytes were captured",
		    b->len, (long long)b->size);
	fputc('\n', stderr);
	return 0;
}

/* Print request o->id and write the bodies asked for. Exit status. */
static int
show_print(sqlite3 *db, const struct show_opts *o)
{
	struct show_exchange x;
	char err[512];
	int rc, status = CLI_ERROR;

	if ((rc = show_load(db, o->id, o->raw, &x, err, sizeof(err))) != 1) {
		if (rc == 0)
			fprintf(stderr,
			    "peephole %s: no request with id %lld\n", SHOW_CMD,
			    (long long)o->id);
		else
			fprintf(stderr, "peephole %s: %s\n", SHOW_CMD, err);
		goto fail;
	}
	if (o->body_out != NULL || o->req_body_out != NULL) {
		/* the bodies are what was asked for: no show text */
		if ((o->body_out != NULL &&
			show_write_body("response", &x.resp, o->body_out,
			    o->force) == -1) ||
		    (o->req_body_out != NULL &&
			show_write_body("request", &x.req, o->req_body_out,
			    o->force) == -1))
			goto fail;
	} else if (o->json) {
		if (show_json(db, &x) == -1)
			goto fail;
	} else {
		show_summary(stdout, x.s, x.url);
		show_message(stdout, x.s, &x.req, &x.resp, o->hex);
		show_stream_end(stdout, x.s);
		if (wsmsg_print(stdout, db, SHOW_CMD, o->id,
			out_col_int(x.s, "t_start_us")) == -1)
			goto fail;
		show_conn_text(stdout, x.c);
	}
	status = CLI_OK;
fail:
	show_unload(&x);
	return status;
}

int
cli_show(int argc, char **argv)
{
	struct show_opts o;
	sqlite3 *db;
	int rc;

	/* `show stream ID`: a connection peephole relayed unread. */
	if (argc > 1 && strcmp(argv[1], "stream") == 0)
		return cli_show_stream(argc - 1, argv + 1);
	/* `show trace ID`: a path `peephole trace` stored. */
	if (argc > 1 && strcmp(argv[1], "trace") == 0)
		return cli_show_trace(argc - 1, argv + 1);
	if ((rc = show_parse(argc, argv, &o)) != CLI_OK)
		return rc == ARGS_HELP ? CLI_OK : rc;
	if ((db = db_open_readonly(SHOW_CMD, o.db)) == NULL)
		return CLI_ERROR;
	rc = show_print(db, &o);
	sqlite3_close(db);
	return rc;
}
