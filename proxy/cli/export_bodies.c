/*
 * export: `export bodies DIR` — each captured body as a file named by its
 * request id and an extension from its Content-Type, decoded unless --raw.
 */
#include "proxy/cli/export.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proxy/cli/cli.h"
#include "proxy/cli/export_int.h"
#include "proxy/cli/output.h"
#include "proxy/store/db.h"
#include "proxy/store/readable.h"
#include "proxy/store/select.h"

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

int
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
