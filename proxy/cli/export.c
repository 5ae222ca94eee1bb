/*
 * export: `peephole export har FILE | curl ID | bodies DIR`. See export.h.
 */
#include "proxy/cli/export.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proxy/cli/args.h"
#include "proxy/cli/cli.h"
#include "proxy/store/db.h"
#include "proxy/cli/output.h"
#include "proxy/http/head.h"
#include "proxy/store/readable.h"
#include "proxy/store/requrl.h"
#include "proxy/store/select.h"
#include "proxy/http/respond.h"

#define EXPORT_CMD "export"
#define EXPORT_CHUNK (64 * 1024)

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

struct export_opts {
	const char *db, *filter, *what, *target;
	int allow_truncated, request_bodies, force, raw;
	int64_t *ids;
	size_t nids;
};

/* ---- pure helpers ---- */

const char *
export_extension(const char *ct)
{
	static const struct {
		const char *type, *ext;
	} map[] = {
	    {"image/jpeg", "jpg"},
	    {"image/jpg", "jpg"},
	    {"image/png", "png"},
	    {"image/gif", "gif"},
	    {"image/webp", "webp"},
	    {"image/svg+xml", "svg"},
	    {"image/x-icon", "ico"},
	    {"image/vnd.microsoft.icon", "ico"},
	    {"image/avif", "avif"},
	    {"text/html", "html"},
	    {"text/plain", "txt"},
	    {"text/css", "css"},
	    {"text/csv", "csv"},
	    {"text/xml", "xml"},
	    {"text/javascript", "js"},
	    {"application/javascript", "js"},
	    {"application/x-javascript", "js"},
	    {"application/json", "json"},
	    {"application/xml", "xml"},
	    {"application/pdf", "pdf"},
	    {"application/zip", "zip"},
	    {"application/gzip", "gz"},
	    {"application/wasm", "wasm"},
	    {"application/x-www-form-urlencoded", "txt"},
	    {"application/octet-stream", "bin"},
	    {"audio/mpeg", "mp3"},
	    {"video/mp4", "mp4"},
	    {"font/woff2", "woff2"},
	    {"font/woff", "woff"},
	};
	size_t n;

	if (ct == NULL)
		return "bin";
	while (*ct == ' ' || *ct == '\t')
		ct++;
	n = strcspn(ct, "; \t");
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strlen(map[i].type) == n &&
		    strncasecmp(map[i].type, ct, n) == 0)
			return map[i].ext;
	/* application/vnd.foo+json and the like */
	if (n > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0)
		return "json";
	if (n > 4 && strncasecmp(ct + n - 4, "+xml", 4) == 0)
		return "xml";
	return "bin";
}

void
export_shell_quote(FILE *fp, const char *s)
{
	fputc('\'', fp);
	for (; *s; s++) {
		if (*s == '\'')
			fputs("'\\''", fp);
		else
			fputc(*s, fp);
	}
	fputc('\'', fp);
}

void
export_shell_ansi(FILE *fp, const unsigned char *p, size_t len)
{
	fputs("$'", fp);
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\'' || p[i] == '\\')
			fprintf(fp, "\\%c", p[i]);
		else if (p[i] >= 0x20 && p[i] < 0x7f)
			fputc(p[i], fp);
		else
			fprintf(fp, "\\x%02x", p[i]);
	}
	fputc('\'', fp);
}

void
export_shell_printf(FILE *fp, const unsigned char *p, size_t len)
{
	fputc('\'', fp);
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\'')
			fputs("'\\''", fp);
		else if (p[i] == '\\')
			fputs("\\\\", fp);
		else if (p[i] >= 0x20 && p[i] < 0x7f)
			fputc(p[i], fp);
		else
			fprintf(fp, "\\0%03o", p[i]);
	}
	fputc('\'', fp);
}

/* ---- reading a request ---- */

/* Step the "SELECT * FROM requests WHERE id = ?" statement to id. */
static int
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
static unsigned char *
export_body(sqlite3 *db, const char *sha, size_t *len)
{
	unsigned char *data = NULL;

	*len = 0;
	if (sha != NULL && db_body(db, sha, &data, len) != 1)
		return NULL;
	return data;
}

/* ---- HAR ---- */

static json_t *
export_har_query(const char *q)
{
	json_t *a = json_array();

	while (a != NULL && q != NULL && *q != '\0') {
		size_t n = strcspn(q, "&");
		const char *eq = memchr(q, '=', n);
		char *name = strndup(q, eq ? (size_t)(eq - q) : n);
		char *val =
		    eq ? strndup(eq + 1, n - (size_t)(eq + 1 - q)) : strdup("");
		if (n > 0)
			json_array_append_new(a,
			    json_pack("{s:o,s:o}", "name", out_json_str(name),
				"value", out_json_str(val)));
		free(name);
		free(val);
		q += n + (q[n] == '&');
	}
	return a;
}

static json_t *
export_har_cookies(const char *headers, const char *name, int response)
{
	json_t *a = json_array();
	struct head_text_iter it;
	const char *f, *fv;
	size_t fl, fvl, nlen = strlen(name);

	/* Cookie: a=1; b=2 (request) / Set-Cookie: a=1; Path=/ (each) */
	head_text_init(&it, headers);
	while (a != NULL && head_text_next(&it, &f, &fl, &fv, &fvl)) {
		if (fl == nlen && strncasecmp(f, name, nlen) == 0) {
			char *v = strndup(fv, fvl);
			char *save = NULL;
			for (char *c = strtok_r(v, ";", &save); c != NULL;
			     c = response ? NULL : strtok_r(NULL, ";", &save)) {
				char *eq;
				c += strspn(c, " \t");
				if ((eq = strchr(c, '=')) == NULL)
					continue;
				*eq = '\0';
				json_array_append_new(a,
				    json_pack("{s:o,s:o}", "name",
					out_json_str(c), "value",
					out_json_str(eq + 1)));
			}
			free(v);
		}
	}
	return a;
}

/* The body as HAR content: text when it is (UTF-8) text, else base64. */
static void
export_har_text(json_t *o, const unsigned char *data, size_t len)
{
	json_t *t = NULL;

	if (data == NULL)
		return;
	if (out_is_text(data, len))
		t = json_stringn((const char *)data, len);
	if (t != NULL) {
		json_object_set_new(o, "text", t);
		return;
	}
	{
		size_t blen = 4 * ((len + 2) / 3) + 1;
		unsigned char *b = malloc(blen);
		if (b == NULL)
			return;
		EVP_EncodeBlock(b, data, (int)len);
		json_object_set_new(o, "text", json_string((char *)b));
		json_object_set_new(o, "encoding", json_string("base64"));
		free(b);
	}
}

/*
 * HAR content for an answer body: text decoded as its Content-Encoding
 * says, size the decoded length and compression the bytes the encoding
 * saved (HAR 1.2); a body that cannot be decoded goes as stored, with a
 * comment saying why.
 */
static void
export_har_content(json_t *content, const char *headers,
    const unsigned char *body, size_t blen, int64_t wire, int truncated)
{
	struct readable r;

	if (body == NULL) {
		json_object_set_new(content, "size", json_integer(wire));
		return;
	}
	readable_body(headers, body, blen, &r);
	export_har_text(content, r.data, r.len);
	if (r.owned != NULL) {
		/* decoded; a truncated capture decodes to part of it */
		json_object_set_new(
		    content, "size", json_integer((json_int_t)r.len));
		if (!truncated)
			json_object_set_new(content, "compression",
			    json_integer((json_int_t)r.len - wire));
	} else
		json_object_set_new(content, "size", json_integer(wire));
	if (r.result != DECODE_NONE && r.result != DECODE_OK)
		json_object_set_new(content, "comment", out_json_str(r.note));
	readable_free(&r);
}

static void
export_note(
    char *buf, size_t len, const char *what, uint64_t kept, uint64_t total)
{
	size_t n = strlen(buf);

	snprintf(buf + n, len - n, "%s%s body truncated at %llu of %llu bytes",
	    n ? "; " : "", what, (unsigned long long)kept,
	    (unsigned long long)total);
}

static double
export_ms(sqlite3_stmt *st, const char *name)
{
	if (out_col_null(st, name) || out_col_int(st, name) < 0)
		return -1;
	return (double)out_col_int(st, name) / 1000.0;
}

/* The HAR request object of row st; a truncated body adds to comment. A
 * new reference, NULL on ENOMEM. */
static json_t *
export_har_request(sqlite3 *db, sqlite3_stmt *st, char *comment, size_t len)
{
	json_t *req = json_object();
	const char *rh = out_col_text(st, "req_headers");
	char ver[24], *url, *ct;
	unsigned char *body;
	size_t blen;

	if (req == NULL)
		return NULL;
	url = requrl_format(out_col_text(st, "scheme"),
	    out_col_text(st, "method"), out_col_text(st, "host"),
	    (int)out_col_int(st, "port"), out_col_text(st, "path"),
	    out_col_text(st, "query"));
	snprintf(ver, sizeof(ver), "HTTP/%s",
	    out_col_text(st, "req_version") ? out_col_text(st, "req_version")
					    : "1.1");
	json_object_set_new(
	    req, "method", out_json_str(out_col_text(st, "method")));
	json_object_set_new(req, "url", out_json_str(url));
	json_object_set_new(req, "httpVersion", json_string(ver));
	json_object_set_new(
	    req, "cookies", export_har_cookies(rh, "cookie", 0));
	json_object_set_new(
	    req, "headers", rh ? out_json_headers(rh) : json_array());
	json_object_set_new(
	    req, "queryString", export_har_query(out_col_text(st, "query")));
	json_object_set_new(req, "headersSize",
	    json_integer(out_col_int(st, "req_header_bytes")));
	json_object_set_new(
	    req, "bodySize", json_integer(out_col_int(st, "req_body_size")));
	if (out_col_int(st, "req_body_size") > 0) {
		json_t *pd = json_object();
		ct = readable_header(rh, "content-type");
		json_object_set_new(pd, "mimeType",
		    json_string(ct ? ct : "application/octet-stream"));
		free(ct);
		body = export_body(db, out_col_text(st, "req_body_sha"), &blen);
		if (body != NULL) {
			struct readable r;
			readable_body(rh, body, blen, &r);
			export_har_text(pd, r.data, r.len);
			readable_free(&r);
		}
		if (json_object_get(pd, "text") == NULL)
			json_object_set_new(pd, "text", json_string(""));
		free(body);
		if (out_col_int(st, "req_body_truncated"))
			export_note(comment, len, "request", blen,
			    (uint64_t)out_col_int(st, "req_body_size"));
		json_object_set_new(req, "postData", pd);
	}
	free(url);
	return req;
}

/* The HAR response object of row st; a truncated body adds to comment. A
 * new reference, NULL on ENOMEM. */
static json_t *
export_har_response(sqlite3 *db, sqlite3_stmt *st, char *comment, size_t len)
{
	json_t *resp = json_object(), *content = json_object();
	const char *sh = out_col_text(st, "resp_headers");
	int status = (int)out_col_int(st, "status");
	char ver[24], *loc;
	unsigned char *body;
	size_t blen;

	if (resp == NULL || content == NULL) {
		json_decref(resp);
		json_decref(content);
		return NULL;
	}
	snprintf(ver, sizeof(ver), "HTTP/%s",
	    out_col_text(st, "resp_version") ? out_col_text(st, "resp_version")
					     : "1.1");
	json_object_set_new(resp, "status", json_integer(status));
	/* the phrase the origin sent; files from before v7 have none */
	json_object_set_new(resp, "statusText",
	    out_col_text(st, "resp_reason") != NULL
		? out_json_str(out_col_text(st, "resp_reason"))
		: json_string(status > 0 ? respond_reason(status) : ""));
	json_object_set_new(resp, "httpVersion", json_string(ver));
	json_object_set_new(
	    resp, "cookies", export_har_cookies(sh, "set-cookie", 1));
	json_object_set_new(
	    resp, "headers", sh ? out_json_headers(sh) : json_array());
	json_object_set_new(content, "mimeType",
	    out_json_str(out_col_text(st, "content_type")
		    ? out_col_text(st, "content_type")
		    : "x-unknown"));
	body = export_body(db, out_col_text(st, "resp_body_sha"), &blen);
	export_har_content(content, sh, body, blen,
	    out_col_int(st, "resp_body_size"),
	    out_col_int(st, "resp_body_truncated") != 0);
	free(body);
	if (out_col_int(st, "resp_body_truncated")) {
		export_note(comment, len, "response", blen,
		    (uint64_t)out_col_int(st, "resp_body_size"));
		if (json_object_get(content, "comment") == NULL)
			json_object_set_new(content, "comment",
			    json_string("body truncated at the capture limit"));
	}
	json_object_set_new(resp, "content", content);
	loc = readable_header(sh, "location");
	json_object_set_new(resp, "redirectURL", out_json_str(loc ? loc : ""));
	free(loc);
	json_object_set_new(resp, "headersSize",
	    json_integer(sh ? out_col_int(st, "resp_header_bytes") : -1));
	json_object_set_new(
	    resp, "bodySize", json_integer(out_col_int(st, "resp_body_size")));
	return resp;
}

/* The HAR timings of row st: what the log has is dns, connect, time to
 * first byte and total. A new reference, NULL on ENOMEM. */
static json_t *
export_har_timings(sqlite3_stmt *st)
{
	json_t *timings = json_object();
	double dns = export_ms(st, "dns_us"),
	       conn = export_ms(st, "connect_us"),
	       wait = export_ms(st, "ttfb_us"),
	       total = export_ms(st, "total_us"), ssl = export_ms(st, "tls_us");
	double receive = total - (dns > 0 ? dns : 0) - (conn > 0 ? conn : 0) -
	    (wait > 0 ? wait : 0);

	if (timings == NULL)
		return NULL;
	json_object_set_new(timings, "blocked", json_integer(-1));
	json_object_set_new(timings, "dns", json_real(dns >= 0 ? dns : -1));
	json_object_set_new(
	    timings, "connect", json_real(conn >= 0 ? conn : -1));
	json_object_set_new(timings, "ssl", json_real(ssl >= 0 ? ssl : -1));
	json_object_set_new(timings, "send", json_integer(0));
	json_object_set_new(timings, "wait", json_real(wait > 0 ? wait : 0));
	json_object_set_new(
	    timings, "receive", json_real(receive > 0 ? receive : 0));
	return timings;
}

/* What HAR has no field for: server address, connection, peephole's own
 * ids, the error, and the comment gathered so far (error appended). */
static void
export_har_extras(json_t *e, sqlite3_stmt *st, char *comment, size_t len)
{
	char cid[24];

	if (out_col_text(st, "server_ip") != NULL)
		json_object_set_new(e, "serverIPAddress",
		    out_json_str(out_col_text(st, "server_ip")));
	snprintf(
	    cid, sizeof(cid), "%lld", (long long)out_col_int(st, "conn_id"));
	json_object_set_new(e, "connection", json_string(cid));
	json_object_set_new(e, "_id", json_integer(out_col_int(st, "id")));
	if (out_col_int(st, "replay_of") > 0)
		json_object_set_new(e, "_replay_of",
		    json_integer(out_col_int(st, "replay_of")));
	if (out_col_text(st, "error") != NULL) {
		size_t n = strlen(comment);
		snprintf(comment + n, len - n, "%serror: %s", n ? "; " : "",
		    out_col_text(st, "error"));
		json_object_set_new(
		    e, "_error", out_json_str(out_col_text(st, "error")));
	}
	if (comment[0] != '\0')
		json_object_set_new(e, "comment", out_json_str(comment));
}

/* The HAR entry of request row st. A new reference, NULL on ENOMEM. */
static json_t *
export_har_entry(sqlite3 *db, sqlite3_stmt *st)
{
	json_t *e = json_object(), *req = NULL, *resp = NULL, *timings = NULL;
	char when[40], comment[512] = "";
	double total = export_ms(st, "total_us");

	if (e == NULL ||
	    (req = export_har_request(db, st, comment, sizeof(comment))) ==
		NULL ||
	    (resp = export_har_response(db, st, comment, sizeof(comment))) ==
		NULL ||
	    (timings = export_har_timings(st)) == NULL) {
		json_decref(e);
		json_decref(req);
		json_decref(resp);
		return NULL;
	}
	out_iso_time(out_col_int(st, "t_start_us"), 1, when, sizeof(when));
	json_object_set_new(e, "startedDateTime", json_string(when));
	json_object_set_new(e, "time", json_real(total > 0 ? total : 0));
	json_object_set_new(e, "request", req);
	json_object_set_new(e, "response", resp);
	json_object_set_new(e, "cache", json_object());
	json_object_set_new(e, "timings", timings);
	export_har_extras(e, st, comment, sizeof(comment));
	return e;
}

/* Each selected request as a HAR entry on fp, comma-separated, counted
 * in *n; st reads a row. 0, or -1 after a message. */
static int
export_har_entries(
    sqlite3 *db, struct select *sel, sqlite3_stmt *st, FILE *fp, int *n)
{
	int64_t id;
	int rc;

	while ((rc = select_next(sel, &id)) == 1) {
		json_t *e;
		if (export_load(db, st, id) == -1)
			return -1;
		/* CONNECT rows are tunnels, not requests a HAR can hold */
		if (out_col_text(st, "scheme") != NULL &&
		    strcmp(out_col_text(st, "scheme"), "connect") == 0)
			continue;
		if ((e = export_har_entry(db, st)) == NULL) {
			fprintf(stderr, "peephole export: out of memory\n");
			return -1;
		}
		if ((*n)++ > 0)
			fputs(",\n", fp);
		json_dumpf(e, fp, JSON_COMPACT | OUT_JSON_REALS);
		json_decref(e);
	}
	return rc == -1 ? -1 : 0;
}

static int
export_har(sqlite3 *db, const struct export_opts *o)
{
	struct select *sel;
	sqlite3_stmt *st = NULL;
	FILE *fp;
	int usage = 0, n = 0, status = CLI_ERROR;

	sel = select_new(db, EXPORT_CMD, o->ids, o->nids, o->filter, &usage);
	if (sel == NULL)
		return usage ? CLI_USAGE : CLI_ERROR;
	if (strcmp(o->target, "-") == 0)
		fp = stdout;
	else if ((fp = fopen(o->target, "w")) == NULL) {
		fprintf(stderr, "peephole export: %s: %s\n", o->target,
		    strerror(errno));
		select_free(sel);
		return CLI_ERROR;
	}
	if (sqlite3_prepare_v2(db, "SELECT * FROM requests WHERE id = ?", -1,
		&st, NULL) != SQLITE_OK) {
		db_warn(EXPORT_CMD, db, "cannot read requests");
		goto out;
	}
	/* the envelope by hand, the entries one at a time: a capture of
	 * any size never becomes one tree in memory */
	fprintf(fp,
	    "{\"log\": {\"version\": \"1.2\", \"creator\": "
	    "{\"name\": \"peephole\", \"version\": \"" PEEPHOLE_VERSION
	    "\"}, \"pages\": [], \"entries\": [\n");
	if (export_har_entries(db, sel, st, fp, &n) == -1)
		goto out;
	fputs("\n]}}\n", fp);
	if (fflush(fp) != 0 || ferror(fp)) {
		fprintf(stderr, "peephole export: %s: %s\n", o->target,
		    strerror(errno));
		goto out;
	}
	if (fp != stdout)
		fprintf(stderr, "peephole export: %d entr%s written to %s\n", n,
		    n == 1 ? "y" : "ies", o->target);
	status = CLI_OK;
out:
	if (fp != stdout && fclose(fp) != 0 && status == CLI_OK) {
		fprintf(stderr, "peephole export: %s: %s\n", o->target,
		    strerror(errno));
		status = CLI_ERROR;
	}
	sqlite3_finalize(st);
	select_free(sel);
	return status;
}

/* ---- curl ---- */

/* Fields curl makes itself, or that belong to the hop (head_text_is_hop's
 * list and what headers' Connection names), not the request. */
static int
export_curl_skip(const char *name, size_t n, const char *headers)
{
	return head_text_is_hop(name, n, headers) ||
	    (n == 14 && strncasecmp(name, "content-length", 14) == 0) ||
	    (n == 6 && strncasecmp(name, "expect", 6) == 0);
}

/*
 * The one request `export curl` prints, read into *st (the caller
 * finalizes it) and checked: an HTTP request, with its whole body unless
 * --allow-truncated. 0, or -1 after a message.
 */
static int
export_curl_load(sqlite3 *db, const struct export_opts *o, sqlite3_stmt **st)
{
	struct select *sel;
	const char *method;
	int64_t id;
	int usage, rc = -1;

	*st = NULL;
	if ((sel = select_new(db, EXPORT_CMD, o->ids, 1, NULL, &usage)) == NULL)
		return -1;
	if (select_next(sel, &id) != 1)
		goto out;
	if (sqlite3_prepare_v2(db, "SELECT * FROM requests WHERE id = ?", -1,
		st, NULL) != SQLITE_OK ||
	    export_load(db, *st, id) == -1)
		goto out;
	method = out_col_text(*st, "method");
	if (method == NULL || strcmp(method, "CONNECT") == 0) {
		fprintf(stderr,
		    "peephole export: request %lld is %s: there is no HTTP "
		    "request to send again\n",
		    (long long)id,
		    method ? "a CONNECT tunnel" : "not a readable request");
		goto out;
	}
	if (out_col_int(*st, "req_body_truncated") && !o->allow_truncated) {
		fprintf(stderr,
		    "peephole export: the body of request %lld was truncated "
		    "at the capture limit (%lld bytes logged); "
		    "--allow-truncated prints it anyway\n",
		    (long long)id,
		    (long long)out_col_int(*st, "req_body_size"));
		goto out;
	}
	rc = 0;
out:
	select_free(sel);
	return rc;
}

/* The command up to its headers: a body holding NUL bytes piped in by
 * printf, curl, the method where curl would not guess it, the URL. */
static void
export_curl_head(const char *method, const char *url, const unsigned char *body,
    size_t blen, int has_nul)
{
	if (has_nul) {
		fputs("printf '%b' ", stdout);
		export_shell_printf(stdout, body, blen);
		fputs(" | ", stdout);
	}
	fputs("curl --http1.1", stdout);
	if (strcmp(method, "HEAD") == 0)
		fputs(" --head", stdout);
	else if (strcmp(method, "GET") != 0 || blen > 0) {
		fputs(" -X ", stdout);
		export_shell_quote(stdout, method);
	}
	fputc(' ', stdout);
	export_shell_quote(stdout, url);
}

static int
export_curl(sqlite3 *db, const struct export_opts *o)
{
	sqlite3_stmt *st = NULL;
	const char *method, *h;
	char *url = NULL, *host = NULL;
	struct head_text_iter it;
	const char *name;
	size_t nlen;
	unsigned char *body = NULL;
	size_t blen = 0;
	int status = CLI_ERROR, has_nul = 0;

	if (export_curl_load(db, o, &st) == -1)
		goto out;
	method = out_col_text(st, "method");
	url = requrl_format(out_col_text(st, "scheme"), method,
	    out_col_text(st, "host"), (int)out_col_int(st, "port"),
	    out_col_text(st, "path"), out_col_text(st, "query"));
	body = export_body(db, out_col_text(st, "req_body_sha"), &blen);
	has_nul = body != NULL && memchr(body, '\0', blen) != NULL;
	export_curl_head(method, url, body, blen, has_nul);
	h = out_col_text(st, "req_headers");
	host = readable_header(h, "host");
	head_text_init(&it, h);
	while (head_text_next(&it, &name, &nlen, NULL, NULL)) {
		if (export_curl_skip(name, nlen, h))
			continue;
		char *line = head_text_line(&it);
		/* Host as the URL names it is curl's own */
		int same_host = nlen == 4 &&
		    strncasecmp(name, "host", 4) == 0 && host != NULL &&
		    strstr(url, host) != NULL;
		if (line != NULL && !same_host) {
			fputs(" \\\n  -H ", stdout);
			export_shell_quote(stdout, line);
		}
		free(line);
	}
	if (body != NULL && blen > 0) {
		fputs(" \\\n  --data-binary ", stdout);
		if (has_nul)
			fputs("@-", stdout);
		else
			export_shell_ansi(stdout, body, blen);
	}
	fputc('\n', stdout);
	status = CLI_OK;
out:
	free(url);
	free(host);
	free(body);
	sqlite3_finalize(st);
	return status;
}

/* ---- bodies ---- */

/* A new file for a body (O_EXCL unless force): fd, or -1 (printed). */
static int
export_open_out(const char *path, int force)
{
	int fd = open(path,
	    O_WRONLY | O_CREAT | O_CLOEXEC | (force ? O_TRUNC : O_EXCL), 0644);

	if (fd == -1)
		fprintf(stderr, "peephole export: %s: %s%s\n", path,
		    strerror(errno),
		    errno == EEXIST ? " (--force overwrites)" : "");
	return fd;
}

/* All of buf to fd. 0 / -1 (printed). */
static int
export_write_all(int fd, const unsigned char *buf, size_t n, const char *path)
{
	size_t done = 0;

	while (done < n) {
		ssize_t w = write(fd, buf + done, n - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			fprintf(stderr, "peephole export: %s: %s\n", path,
			    strerror(errno));
			return -1;
		}
		done += (size_t)w;
	}
	return 0;
}

/* Close a body file, saying why it failed. 0 / -1. */
static int
export_close_out(int fd, const char *path)
{
	if (close(fd) == 0)
		return 0;
	fprintf(stderr, "peephole export: %s: %s\n", path, strerror(errno));
	return -1;
}

/* Stream the body whose sha is given into path as stored. */
static int
export_write_body(sqlite3 *db, const char *sha, const char *path, int force,
    uint64_t *written)
{
	sqlite3_stmt *s = NULL;
	sqlite3_blob *blob = NULL;
	unsigned char *buf = NULL;
	int fd = -1, rc = -1, size, off;

	*written = 0;
	if (sqlite3_prepare_v2(db, "SELECT rowid FROM bodies WHERE sha256 = ?",
		-1, &s, NULL) != SQLITE_OK)
		goto out;
	sqlite3_bind_text(s, 1, sha, -1, SQLITE_STATIC);
	if (sqlite3_step(s) != SQLITE_ROW ||
	    sqlite3_blob_open(db, "main", "bodies", "data",
		sqlite3_column_int64(s, 0), 0, &blob) != SQLITE_OK) {
		fprintf(stderr, "peephole export: body %s is not in the file\n",
		    sha);
		goto out;
	}
	if ((fd = export_open_out(path, force)) == -1)
		goto out;
	if ((buf = malloc(EXPORT_CHUNK)) == NULL)
		goto out;
	size = sqlite3_blob_bytes(blob);
	for (off = 0; off < size;) {
		int n = size - off < EXPORT_CHUNK ? size - off : EXPORT_CHUNK;
		if (sqlite3_blob_read(blob, buf, n, off) != SQLITE_OK ||
		    export_write_all(fd, buf, (size_t)n, path) == -1)
			goto out;
		off += n;
	}
	*written = (uint64_t)size;
	rc = 0;
out:
	if (fd != -1 && export_close_out(fd, path) == -1)
		rc = -1;
	free(buf);
	sqlite3_blob_close(blob);
	sqlite3_finalize(s);
	return rc;
}

/* The body decoded as headers say into path; note gets what was done.
 * 0 / -1 (printed). */
static int
export_write_decoded(sqlite3 *db, const char *sha, const char *headers,
    const char *path, int force, uint64_t *written, char *note, size_t notelen)
{
	struct readable r;
	unsigned char *body;
	size_t blen;
	int fd, rc = -1;

	if ((body = export_body(db, sha, &blen)) == NULL) {
		fprintf(stderr, "peephole export: body %s is not in the file\n",
		    sha);
		return -1;
	}
	readable_body(headers, body, blen, &r);
	snprintf(note, notelen, "%s", r.note);
	if ((fd = export_open_out(path, force)) != -1) {
		rc = export_write_all(fd, r.data, r.len, path);
		if (export_close_out(fd, path) == -1)
			rc = -1;
	}
	*written = r.len;
	readable_free(&r);
	free(body);
	return rc;
}

static int
export_one_body(sqlite3 *db, sqlite3_stmt *st, const struct export_opts *o,
    const char *prefix, const char *ctype, const char *kind)
{
	char col[40], path[4096], size[24], note[160] = "";
	const char *sha, *headers;
	char *enc;
	uint64_t n;
	int truncated, rc;

	snprintf(col, sizeof(col), "%s_body_sha", prefix);
	if ((sha = out_col_text(st, col)) == NULL)
		return 0; /* nothing captured */
	snprintf(col, sizeof(col), "%s_body_truncated", prefix);
	truncated = out_col_int(st, col) != 0;
	snprintf(path, sizeof(path), "%s/%lld%s%s.%s", o->target,
	    (long long)out_col_int(st, "id"), kind, truncated ? ".partial" : "",
	    export_extension(ctype));
	snprintf(col, sizeof(col), "%s_headers", prefix);
	headers = out_col_text(st, col);
	enc = o->raw ? NULL : readable_header(headers, "content-encoding");
	if (enc == NULL)
		rc = export_write_body(db, sha, path, o->force, &n);
	else
		rc = export_write_decoded(
		    db, sha, headers, path, o->force, &n, note, sizeof(note));
	free(enc);
	if (rc == -1)
		return -1;
	out_size(n, size, sizeof(size));
	printf("%s  %s%s", path, size,
	    truncated ? "  (truncated at the capture limit)" : "");
	if (note[0] != '\0') {
		fputs("  (", stdout);
		out_safe(stdout, note, 0);
		fputs(")", stdout);
	}
	putchar('\n');
	return 0;
}

static int
export_bodies(sqlite3 *db, const struct export_opts *o)
{
	struct select *sel;
	sqlite3_stmt *st = NULL;
	int64_t id;
	int usage = 0, rc, failed = 0;

	if (mkdir(o->target, 0755) == -1 && errno != EEXIST) {
		fprintf(stderr, "peephole export: %s: %s\n", o->target,
		    strerror(errno));
		return CLI_ERROR;
	}
	sel = select_new(db, EXPORT_CMD, o->ids, o->nids, o->filter, &usage);
	if (sel == NULL)
		return usage ? CLI_USAGE : CLI_ERROR;
	if (sqlite3_prepare_v2(db, "SELECT * FROM requests WHERE id = ?", -1,
		&st, NULL) != SQLITE_OK) {
		db_warn(EXPORT_CMD, db, "cannot read requests");
		select_free(sel);
		return CLI_ERROR;
	}
	while ((rc = select_next(sel, &id)) == 1) {
		if (export_load(db, st, id) == -1) {
			failed = 1;
			break;
		}
		if (export_one_body(db, st, o, "resp",
			out_col_text(st, "content_type"), "") == -1)
			failed = 1;
		if (o->request_bodies) {
			char *ct = readable_header(
			    out_col_text(st, "req_headers"), "content-type");
			if (export_one_body(db, st, o, "req", ct, ".request") ==
			    -1)
				failed = 1;
			free(ct);
		}
	}
	sqlite3_finalize(st);
	select_free(sel);
	return rc == -1 || failed ? CLI_ERROR : CLI_OK;
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
