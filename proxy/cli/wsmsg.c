/* wsmsg: see wsmsg.h. */
#include "proxy/cli/wsmsg.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/cli/output.h"
#include "proxy/store/db.h"

/* Characters of a text message the table shows, bytes of a binary one. */
#define WSMSG_PREVIEW_CHARS 60
#define WSMSG_PREVIEW_BYTES 16

enum {
	WSMSG_IDX,
	WSMSG_T_US,
	WSMSG_DIR,
	WSMSG_OPCODE,
	WSMSG_SIZE,
	WSMSG_WIRE,
	WSMSG_COMPRESSED,
	WSMSG_TRUNCATED,
	WSMSG_PAYLOAD,
	WSMSG_CLOSE_CODE,
	WSMSG_CLOSE_REASON,
	WSMSG_ERROR
};

/* The messages of one request in order; the caller steps and finalizes.
 * NULL when the query cannot be prepared. */
static sqlite3_stmt *
wsmsg_query(sqlite3 *db, int64_t req_id)
{
	sqlite3_stmt *s = NULL;

	if (sqlite3_prepare_v2(db,
		"SELECT idx, t_us, dir, opcode, size, wire_bytes, compressed,"
		" truncated, payload, close_code, close_reason, error"
		" FROM ws_messages WHERE request_id = ? ORDER BY idx",
		-1, &s, NULL) != SQLITE_OK)
		return NULL;
	sqlite3_bind_int64(s, 1, req_id);
	return s;
}

static const char *
wsmsg_opname(int op)
{
	switch (op) {
	case 0:
		return "continuation";
	case 1:
		return "text";
	case 2:
		return "binary";
	case 8:
		return "close";
	case 9:
		return "ping";
	case 10:
		return "pong";
	}
	return "other";
}

static const char *
wsmsg_text_col(sqlite3_stmt *s, int i)
{
	return (const char *)sqlite3_column_text(s, i);
}

/* Up to WSMSG_PREVIEW_CHARS of text, C-escaped ("\n", "\x01"), then
 * "..." when there was more. */
static void
wsmsg_preview_text(FILE *fp, const unsigned char *p, size_t len)
{
	size_t i, shown = 0;

	fputc('"', fp);
	for (i = 0; i < len && shown < WSMSG_PREVIEW_CHARS; i++) {
		/* a UTF-8 continuation byte is part of the character shown */
		if ((p[i] & 0xc0) != 0x80)
			shown++;
		if (p[i] == '\n')
			fputs("\\n", fp);
		else if (p[i] == '\r')
			fputs("\\r", fp);
		else if (p[i] == '\t')
			fputs("\\t", fp);
		else if (p[i] == '"' || p[i] == '\\')
			fprintf(fp, "\\%c", p[i]);
		else if (p[i] < 0x20 || p[i] == 0x7f)
			fprintf(fp, "\\x%02x", p[i]);
		else
			fputc(p[i], fp);
	}
	/* finish a character cut in the middle */
	while (i < len && (p[i] & 0xc0) == 0x80)
		fputc(p[i++], fp);
	fputs(i < len ? "\"..." : "\"", fp);
}

static void
wsmsg_preview_hex(FILE *fp, const unsigned char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len && i < WSMSG_PREVIEW_BYTES; i++)
		fprintf(fp, "%s%02x", i ? " " : "", p[i]);
	if (len > WSMSG_PREVIEW_BYTES)
		fputs(" ...", fp);
}

/* The preview column of the current row. */
static void
wsmsg_preview(FILE *fp, sqlite3_stmt *s, int op)
{
	const unsigned char *p = sqlite3_column_blob(s, WSMSG_PAYLOAD);
	size_t len = (size_t)sqlite3_column_bytes(s, WSMSG_PAYLOAD);

	if (op == 8) {
		if (sqlite3_column_type(s, WSMSG_CLOSE_CODE) != SQLITE_NULL)
			fprintf(fp, "code %d",
			    sqlite3_column_int(s, WSMSG_CLOSE_CODE));
		else
			fputs("no code", fp);
		if (wsmsg_text_col(s, WSMSG_CLOSE_REASON) != NULL) {
			fputs(" ", fp);
			wsmsg_preview_text(fp,
			    (const unsigned char *)wsmsg_text_col(
				s, WSMSG_CLOSE_REASON),
			    strlen(wsmsg_text_col(s, WSMSG_CLOSE_REASON)));
		}
		return;
	}
	if (p == NULL || len == 0)
		return;
	if (op != 2 && out_is_text(p, len))
		wsmsg_preview_text(fp, p, len);
	else
		wsmsg_preview_hex(fp, p, len);
}

/* One table line for the current row. */
static void
wsmsg_line(FILE *fp, sqlite3_stmt *s, int64_t t_start_us)
{
	int op = sqlite3_column_int(s, WSMSG_OPCODE);
	int64_t t = sqlite3_column_int64(s, WSMSG_T_US);
	char size[48];

	snprintf(size, sizeof(size), "%lld%s%s",
	    (long long)sqlite3_column_int64(s, WSMSG_SIZE),
	    sqlite3_column_int(s, WSMSG_COMPRESSED) ? " deflate" : "",
	    sqlite3_column_int(s, WSMSG_TRUNCATED) ? " (cut)" : "");
	fprintf(fp, "  %4d %10.1f %s %-6s %-16s ",
	    sqlite3_column_int(s, WSMSG_IDX),
	    t_start_us > 0 && t > 0 ? (double)(t - t_start_us) / 1000.0 : 0.0,
	    sqlite3_column_int(s, WSMSG_DIR) ? "<-" : "->", wsmsg_opname(op),
	    size);
	wsmsg_preview(fp, s, op);
	fputc('\n', fp);
	if (wsmsg_text_col(s, WSMSG_ERROR) != NULL) {
		fputs("  stopped reading frames: ", fp);
		out_safe(fp, wsmsg_text_col(s, WSMSG_ERROR), 0);
		fputc('\n', fp);
	}
}

int
wsmsg_print(
    FILE *fp, sqlite3 *db, const char *cmd, int64_t req_id, int64_t t_start_us)
{
	sqlite3_stmt *s = wsmsg_query(db, req_id);
	int rc, n = 0;

	if (s == NULL) {
		db_warn(cmd, db, "cannot read WebSocket messages");
		return -1;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (n++ == 0)
			fprintf(fp,
			    "\nwebsocket messages\n  %4s %10s %s %-6s %-16s "
			    "%s\n",
			    "#", "ms", "  ", "type", "size", "preview");
		wsmsg_line(fp, s, t_start_us);
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		db_warn(cmd, db, "cannot read WebSocket messages");
		return -1;
	}
	if (n > 0)
		fprintf(fp, "  (%d message%s)\n", n, n == 1 ? "" : "s");
	return 0;
}

/* p as base64, a new JSON string (NULL on ENOMEM). */
static json_t *
wsmsg_base64(const unsigned char *p, size_t len)
{
	unsigned char *b = malloc(4 * ((len + 2) / 3) + 1);
	json_t *v;

	if (b == NULL)
		return NULL;
	EVP_EncodeBlock(b, p != NULL ? p : (const unsigned char *)"", (int)len);
	v = json_string((const char *)b);
	free(b);
	return v;
}

/* The payload as text (valid UTF-8, not a binary message) under key_text,
 * else base64 under key_b64 (the same key for HAR's "data"). */
static void
wsmsg_payload(
    json_t *o, sqlite3_stmt *s, const char *key_text, const char *key_b64)
{
	const unsigned char *p = sqlite3_column_blob(s, WSMSG_PAYLOAD);
	size_t len = (size_t)sqlite3_column_bytes(s, WSMSG_PAYLOAD);
	json_t *t = NULL;

	if (sqlite3_column_int(s, WSMSG_OPCODE) != 2)
		t = json_stringn(p != NULL ? (const char *)p : "", len);
	if (t != NULL)
		json_object_set_new(o, key_text, t);
	else
		json_object_set_new(o, key_b64, wsmsg_base64(p, len));
}

static json_t *
wsmsg_col_or_null(sqlite3_stmt *s, int i)
{
	if (sqlite3_column_type(s, i) == SQLITE_NULL)
		return json_null();
	if (sqlite3_column_type(s, i) == SQLITE_INTEGER)
		return json_integer(sqlite3_column_int64(s, i));
	return out_json_str(wsmsg_text_col(s, i));
}

/* show --json's object for the current row. */
static json_t *
wsmsg_json_row(sqlite3_stmt *s)
{
	json_t *o = json_object();

	if (o == NULL)
		return NULL;
	json_object_set_new(
	    o, "t_us", json_integer(sqlite3_column_int64(s, WSMSG_T_US)));
	json_object_set_new(o, "dir",
	    json_string(sqlite3_column_int(s, WSMSG_DIR) ? "receive" : "send"));
	json_object_set_new(
	    o, "opcode", json_integer(sqlite3_column_int(s, WSMSG_OPCODE)));
	json_object_set_new(
	    o, "size", json_integer(sqlite3_column_int64(s, WSMSG_SIZE)));
	json_object_set_new(
	    o, "wire_bytes", json_integer(sqlite3_column_int64(s, WSMSG_WIRE)));
	json_object_set_new(o, "compressed",
	    json_boolean(sqlite3_column_int(s, WSMSG_COMPRESSED)));
	json_object_set_new(o, "truncated",
	    json_boolean(sqlite3_column_int(s, WSMSG_TRUNCATED)));
	wsmsg_payload(o, s, "text", "base64");
	json_object_set_new(
	    o, "close_code", wsmsg_col_or_null(s, WSMSG_CLOSE_CODE));
	json_object_set_new(
	    o, "close_reason", wsmsg_col_or_null(s, WSMSG_CLOSE_REASON));
	json_object_set_new(o, "error", wsmsg_col_or_null(s, WSMSG_ERROR));
	return o;
}

/* HAR's object for the current row. */
static json_t *
wsmsg_har_row(sqlite3_stmt *s)
{
	json_t *o = json_object();

	if (o == NULL)
		return NULL;
	json_object_set_new(o, "type",
	    json_string(sqlite3_column_int(s, WSMSG_DIR) ? "receive" : "send"));
	json_object_set_new(o, "time",
	    json_real((double)sqlite3_column_int64(s, WSMSG_T_US) / 1e6));
	json_object_set_new(
	    o, "opcode", json_integer(sqlite3_column_int(s, WSMSG_OPCODE)));
	wsmsg_payload(o, s, "data", "data");
	return o;
}

/* Every row through row() into an array; NULL on error. */
static json_t *
wsmsg_array(sqlite3 *db, int64_t req_id, json_t *(*row)(sqlite3_stmt *s))
{
	sqlite3_stmt *s = wsmsg_query(db, req_id);
	json_t *a = json_array(), *o;
	int rc;

	if (s == NULL || a == NULL) {
		sqlite3_finalize(s);
		json_decref(a);
		return NULL;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if ((o = row(s)) == NULL || json_array_append_new(a, o) != 0) {
			rc = SQLITE_NOMEM;
			break;
		}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		json_decref(a);
		return NULL;
	}
	return a;
}

json_t *
wsmsg_json(sqlite3 *db, int64_t req_id)
{
	return wsmsg_array(db, req_id, wsmsg_json_row);
}

json_t *
wsmsg_har(sqlite3 *db, int64_t req_id)
{
	json_t *a = wsmsg_array(db, req_id, wsmsg_har_row);

	if (a != NULL && json_array_size(a) == 0) {
		json_decref(a);
		return json_null();
	}
	return a;
}
