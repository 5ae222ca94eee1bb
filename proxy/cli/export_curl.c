/*
 * export: `export curl ID` — one curl command that sends a logged request
 * again, byte for byte, and the shell quoting it is written with.
 */
#include "proxy/cli/export.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy/cli/cli.h"
#include "proxy/cli/export_int.h"
#include "proxy/cli/output.h"
#include "proxy/http/head.h"
#include "proxy/store/readable.h"
#include "proxy/store/requrl.h"
#include "proxy/store/select.h"

/* ---- shell quoting ---- */

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

/* ---- curl ---- */

/* Fields curl makes itself, or that belong to the hop (head_text_is_hop's
 * list and what headers' Connection names), not the request. */
static int
export_curl_skip(const char *name, size_t n, const char *headers)
{
	/* an HTTP/2 exchange's pseudo-headers: curl's URL and method */
	return head_text_pseudo(name, n) ||
	    head_text_is_hop(name, n, headers) ||
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

int
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
