/*
 * export: `export har FILE` — HAR 1.2 of the selected requests, written
 * one entry at a time: timings from the log, bodies decoded as their
 * Content-Encoding says, truncated ones noted in the entry's comment.
 */
#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy/cli/cli.h"
#include "proxy/cli/export_int.h"
#include "proxy/cli/output.h"
#include "proxy/cli/wsmsg.h"
#include "proxy/http/head.h"
#include "proxy/http/respond.h"
#include "proxy/store/db.h"
#include "proxy/store/readable.h"
#include "proxy/store/requrl.h"
#include "proxy/store/select.h"

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
	/* the rest, in whole µs: a difference of ms doubles carries float
	 * noise that the 15 digits the HAR is printed with would show */
	int64_t rest_us = (int64_t)(total * 1000.0 + 0.5) -
	    (int64_t)((dns > 0 ? dns : 0) * 1000.0 + 0.5) -
	    (int64_t)((conn > 0 ? conn : 0) * 1000.0 + 0.5) -
	    (int64_t)((wait > 0 ? wait : 0) * 1000.0 + 0.5);
	double receive = (double)rest_us / 1000.0;

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
	json_t *ws;
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
	/* a WebSocket's messages, where Chrome puts them */
	if ((ws = wsmsg_har(db, out_col_int(st, "id"))) == NULL) {
		json_decref(e);
		return NULL;
	}
	if (json_is_null(ws))
		json_decref(ws);
	else
		json_object_set_new(e, "_webSocketMessages", ws);
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
		/* 15 digits: a WebSocket message's time is epoch seconds,
		 * which 12 would cut to 10 ms; 15 keeps 10 µs and is the
		 * most a double holds without noise (8.2 stays 8.2) */
		json_dumpf(e, fp, JSON_COMPACT | JSON_REAL_PRECISION(15));
		json_decref(e);
	}
	return rc == -1 ? -1 : 0;
}

int
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
