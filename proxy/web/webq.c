/* webq: see webq.h. */
#include "proxy/web/webq.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy/cli/output.h"
#include "proxy/cli/streams.h"
#include "proxy/cli/views.h"
#include "proxy/store/db.h"
#include "proxy/store/readable.h"
#include "proxy/store/select.h"

/* The SQL function a filtered query calls; registered for the query only. */
#define WEBQ_MATCH "webq_match"

/* No request row of the connection other than its CONNECT: it is not an
 * HTTP exchange, the flow list does not show it. */
#define WEBQ_NO_EXCHANGE                                                       \
	"NOT EXISTS (SELECT 1 FROM requests r WHERE r.conn_id = c.id"          \
	" AND upper(coalesce(r.method, '')) <> 'CONNECT')"

/* How the proxy closes a connection that went well (proxy/net: conn_close
 * reasons); any other reason, or an error, is a failure. */
#define WEBQ_FAILED                                                            \
	"(c.error IS NOT NULL OR coalesce(c.close_reason, '') NOT IN"          \
	" ('', 'client-eof', 'server-eof', 'idle-timeout', 'done',"            \
	" 'shutdown', 'half-close-timeout'))"

/* A failure of TLS: the client refused the forged certificate or broke
 * the handshake (close reasons client-rejected-cert, client-tls-failed,
 * client-tls-unsupported, tls-timeout), or the origin's TLS failed (the
 * proxy's messages say "TLS", "certificate", "handshake"; matched by case,
 * so that a host named "tls.example" in a message does not count). */
#define WEBQ_TLS_FAILED                                                        \
	"(c.close_reason GLOB '*tls*' OR c.close_reason GLOB '*cert*'"         \
	" OR c.error GLOB '*TLS*' OR c.error GLOB '*certificate*'"             \
	" OR c.error GLOB '*handshake*' OR c.verify_error IS NOT NULL)"

/* CONN's kind, NULL for a connection that is not a CONN row. */
#define WEBQ_KIND                                                              \
	"CASE WHEN c.decision = 'block' AND " WEBQ_NO_EXCHANGE                 \
	" THEN 'blocked' WHEN " STREAMS_WHERE " THEN 'stream'"                 \
	" WHEN coalesce(c.decision, 'intercept') = 'intercept' "               \
	"AND " WEBQ_FAILED " AND " WEBQ_NO_EXCHANGE                            \
	" THEN CASE WHEN " WEBQ_TLS_FAILED                                     \
	" THEN 'tls-failed' ELSE 'failed' END END"

/* CONN rows with wseq in (?1, ?2], oldest first, at most ?3. */
#define WEBQ_CONNS_SQL                                                         \
	"SELECT * FROM (SELECT c.id, c.wseq, " WEBQ_KIND " AS kind,"           \
	" c.t_accept_us, c.client_ip, c.listener_target, c.target_host,"       \
	" c.target_port, c.sni, c.protocol, c.mmtls_bad, c.decision,"          \
	" c.decision_reason, c.error, c.close_reason, c.bytes_from_client,"    \
	" c.bytes_from_server, c.t_close_us FROM connections c"                \
	" WHERE c.wseq > ?1 AND c.wseq <= ?2) WHERE kind IS NOT NULL"          \
	" ORDER BY wseq LIMIT ?3"

enum webq_conn_col {
	WC_ID,
	WC_SEQ,
	WC_KIND,
	WC_T_ACCEPT,
	WC_CLIENT_IP,
	WC_LISTENER_TARGET,
	WC_TARGET_HOST,
	WC_TARGET_PORT,
	WC_SNI,
	WC_PROTOCOL,
	WC_MMTLS_BAD,
	WC_DECISION,
	WC_DECISION_REASON,
	WC_ERROR,
	WC_CLOSE_REASON,
	WC_BYTES_UP,
	WC_BYTES_DOWN,
	WC_T_CLOSE,
};

static void webq_fail(struct webq_err *e, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
webq_fail(struct webq_err *e, int status, const char *fmt, ...)
{
	va_list ap;

	e->status = status;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
}

/* A 500 naming what failed and SQLite's reason. */
static void
webq_dberr(struct webq_err *e, sqlite3 *db, const char *what)
{
	webq_fail(e, 500, "%s: %s", what, sqlite3_errmsg(db));
}

static void
webq_nomem(struct webq_err *e)
{
	webq_fail(e, 500, "out of memory");
}

static int
webq_limit(int limit)
{
	if (limit == 0)
		return WEBQ_LIMIT_DEFAULT;
	if (limit < 1)
		return 1;
	return limit > WEBQ_LIMIT_MAX ? WEBQ_LIMIT_MAX : limit;
}

static const char *
webq_col(sqlite3_stmt *s, int i)
{
	return (const char *)sqlite3_column_text(s, i);
}

/*
 * The selection for filter (*sel NULL when there is none), installed as
 * WEBQ_MATCH(id) on db. 0 / -1 with e (400 for a bad expression).
 */
static int
webq_filter_open(
    sqlite3 *db, const char *filter, struct select **sel, struct webq_err *e)
{
	struct select_err se;

	*sel = NULL;
	if (filter == NULL || filter[0] == '\0')
		return 0;
	if ((*sel = select_open(db, NULL, 0, filter, &se)) == NULL) {
		if (se.usage)
			webq_fail(e, 400, "filter: %s at position %zu", se.msg,
			    se.pos);
		else
			webq_fail(e, 500, "%s", se.msg);
		return -1;
	}
	if (select_sql_install(db, WEBQ_MATCH, *sel) == -1) {
		webq_dberr(e, db, "cannot set up the filter");
		select_free(*sel);
		*sel = NULL;
		return -1;
	}
	return 0;
}

/* Free the selection and take its function off db. The selection's own
 * statements go first: SQLite will not drop a function while a statement
 * is still stepping. */
static void
webq_filter_close(sqlite3 *db, struct select *sel)
{
	if (sel == NULL)
		return;
	select_free(sel);
	(void)select_sql_install(db, WEBQ_MATCH, NULL);
}

/* Step s to the end, each row through row() into a new array. NULL with
 * e. */
static json_t *
webq_rows(sqlite3 *db, sqlite3_stmt *s, json_t *(*row)(sqlite3_stmt *),
    struct webq_err *e)
{
	json_t *arr;
	int rc;

	if ((arr = json_array()) == NULL) {
		webq_nomem(e);
		return NULL;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (json_array_append_new(arr, row(s)) == -1) {
			webq_nomem(e);
			json_decref(arr);
			return NULL;
		}
	}
	if (rc != SQLITE_DONE) {
		webq_dberr(e, db, "query failed");
		json_decref(arr);
		return NULL;
	}
	return arr;
}

/*
 * {key: rows, "last", "more"} from rows fetched with one row more than
 * limit: the extra row only says there is more, and goes (the first, the
 * oldest, of a newest-first page when drop_first, else the last). "last"
 * is the last row's idkey, or after when there are none. Takes rows; NULL
 * on ENOMEM.
 */
static json_t *
webq_page_new(const char *key, const char *idkey, json_t *rows, int limit,
    int drop_first, int64_t after)
{
	size_t n = json_array_size(rows);
	int more = n > (size_t)limit;
	int64_t last = after;
	json_t *o;

	if (more)
		json_array_remove(rows, drop_first ? 0 : n - 1);
	if ((n = json_array_size(rows)) > 0)
		last = json_integer_value(
		    json_object_get(json_array_get(rows, n - 1), idkey));
	if ((o = json_object()) == NULL) {
		json_decref(rows);
		return NULL;
	}
	json_object_set_new(o, key, rows);
	json_object_set_new(o, "last", json_integer(last));
	json_object_set_new(o, "more", json_boolean(more));
	return o;
}

/* The flows page's query: ?1 after, ?2 before, ?3 rows wanted. */
static int
webq_flows_prepare(sqlite3 *db, const struct webq_page *p, int filtered,
    int want, sqlite3_stmt **s)
{
	char sql[2048];
	const char *match = filtered ? " AND " WEBQ_MATCH "(id)" : "";

	if (p->before > 0)
		snprintf(sql, sizeof(sql),
		    "SELECT * FROM (SELECT " VIEWS_REQUEST_COLS
		    " FROM requests WHERE id > ?1 AND id < ?2%s"
		    " ORDER BY id DESC LIMIT ?3) ORDER BY id",
		    match);
	else
		snprintf(sql, sizeof(sql),
		    "SELECT " VIEWS_REQUEST_COLS " FROM requests"
		    " WHERE id > ?1%s ORDER BY id LIMIT ?3",
		    match);
	if (sqlite3_prepare_v2(db, sql, -1, s, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(*s, 1, p->after);
	if (p->before > 0)
		sqlite3_bind_int64(*s, 2, p->before);
	sqlite3_bind_int(*s, 3, want);
	return 0;
}

json_t *
webq_flows(sqlite3 *db, const struct webq_page *p, struct webq_err *e)
{
	struct select *sel = NULL;
	sqlite3_stmt *s = NULL;
	json_t *rows = NULL, *o = NULL;
	int limit = webq_limit(p->limit);

	if (webq_filter_open(db, p->filter, &sel, e) == -1)
		return NULL;
	if (webq_flows_prepare(db, p, sel != NULL, limit + 1, &s) == -1) {
		webq_dberr(e, db, "query failed");
		goto fail;
	}
	if ((rows = webq_rows(db, s, views_flow, e)) == NULL)
		goto fail;
	if ((o = webq_page_new(
		 "flows", "id", rows, limit, p->before > 0, p->after)) == NULL)
		webq_nomem(e);
fail:
	sqlite3_finalize(s);
	webq_filter_close(db, sel);
	return o;
}

/* "host:port" the client asked for: as the listener recorded it, else
 * from target host and port. */
static void
webq_target(char *buf, size_t len, sqlite3_stmt *s)
{
	const char *lt = webq_col(s, WC_LISTENER_TARGET);

	if (lt != NULL && lt[0] != '\0')
		snprintf(buf, len, "%s", lt);
	else
		streams_hostport(buf, len, webq_col(s, WC_TARGET_HOST),
		    sqlite3_column_int64(s, WC_TARGET_PORT));
}

/* One CONN object from a WEBQ_CONNS_SQL row. NULL on ENOMEM. */
static json_t *
webq_conn_row(sqlite3_stmt *s)
{
	char when[40], buf[320];
	json_t *o;

	if ((o = json_object()) == NULL)
		return NULL;
	out_iso_time(
	    sqlite3_column_int64(s, WC_T_ACCEPT), 1, when, sizeof(when));
	json_object_set_new(
	    o, "conn_id", json_integer(sqlite3_column_int64(s, WC_ID)));
	json_object_set_new(
	    o, "seq", json_integer(sqlite3_column_int64(s, WC_SEQ)));
	json_object_set_new(o, "kind", out_json_str(webq_col(s, WC_KIND)));
	json_object_set_new(o, "time", json_string(when));
	json_object_set_new(
	    o, "time_us", json_integer(sqlite3_column_int64(s, WC_T_ACCEPT)));
	json_object_set_new(
	    o, "client", out_json_str(webq_col(s, WC_CLIENT_IP)));
	webq_target(buf, sizeof(buf), s);
	json_object_set_new(o, "target", out_json_str(buf));
	json_object_set_new(o, "sni", out_json_str(webq_col(s, WC_SNI)));
	streams_proto(buf, sizeof(buf), webq_col(s, WC_PROTOCOL),
	    sqlite3_column_int(s, WC_MMTLS_BAD));
	json_object_set_new(o, "protocol", out_json_str(buf));
	json_object_set_new(
	    o, "decision", out_json_str(webq_col(s, WC_DECISION)));
	json_object_set_new(
	    o, "reason", out_json_str(webq_col(s, WC_DECISION_REASON)));
	json_object_set_new(o, "error", out_json_str(webq_col(s, WC_ERROR)));
	json_object_set_new(
	    o, "close_reason", out_json_str(webq_col(s, WC_CLOSE_REASON)));
	json_object_set_new(
	    o, "bytes_up", json_integer(sqlite3_column_int64(s, WC_BYTES_UP)));
	json_object_set_new(o, "bytes_down",
	    json_integer(sqlite3_column_int64(s, WC_BYTES_DOWN)));
	json_object_set_new(o, "duration_ms",
	    sqlite3_column_type(s, WC_T_CLOSE) == SQLITE_NULL ||
		    sqlite3_column_type(s, WC_T_ACCEPT) == SQLITE_NULL
		? json_null()
		: json_real((double)(sqlite3_column_int64(s, WC_T_CLOSE) -
				sqlite3_column_int64(s, WC_T_ACCEPT)) /
		      1000.0));
	return o;
}

/* CONN rows with wseq in (after, upto], at most want. */
static int
webq_conns_prepare(
    sqlite3 *db, int64_t after, int64_t upto, int want, sqlite3_stmt **s)
{
	if (sqlite3_prepare_v2(db, WEBQ_CONNS_SQL, -1, s, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(*s, 1, after);
	sqlite3_bind_int64(*s, 2, upto);
	sqlite3_bind_int(*s, 3, want);
	return 0;
}

json_t *
webq_conns(sqlite3 *db, int64_t after_seq, int limit, struct webq_err *e)
{
	sqlite3_stmt *s = NULL;
	json_t *rows, *o = NULL;

	limit = webq_limit(limit);
	if (webq_conns_prepare(db, after_seq, INT64_MAX, limit + 1, &s) == -1) {
		webq_dberr(e, db, "query failed");
		goto fail;
	}
	if ((rows = webq_rows(db, s, webq_conn_row, e)) == NULL)
		goto fail;
	if ((o = webq_page_new("conns", "seq", rows, limit, 0, after_seq)) ==
	    NULL)
		webq_nomem(e);
fail:
	sqlite3_finalize(s);
	return o;
}

/* The value of the first header called name in a show --json header
 * array, or NULL. */
static const char *
webq_header(json_t *headers, const char *name)
{
	size_t i;
	json_t *h;
	const char *n;

	json_array_foreach(headers, i, h)
	{
		n = json_string_value(json_object_get(h, "name"));
		if (n != NULL && strcasecmp(n, name) == 0)
			return json_string_value(json_object_get(h, "value"));
	}
	return NULL;
}

/* "timing": the show object's X_us durations in ms, null when unknown. */
static json_t *
webq_timing(json_t *o)
{
	static const char *const phases[] = {
	    "dns", "connect", "tls", "ttfb", "total"};
	char us[16], ms[16];
	json_t *t, *v;
	size_t i;

	if ((t = json_object()) == NULL)
		return NULL;
	for (i = 0; i < sizeof(phases) / sizeof(phases[0]); i++) {
		snprintf(us, sizeof(us), "%s_us", phases[i]);
		snprintf(ms, sizeof(ms), "%s_ms", phases[i]);
		v = json_object_get(o, us);
		json_object_set_new(t, ms,
		    json_is_integer(v)
			? json_real((double)json_integer_value(v) / 1000.0)
			: json_null());
	}
	return t;
}

json_t *
webq_flow(sqlite3 *db, int64_t id, int raw, struct webq_err *e)
{
	char err[256];
	json_t *o;
	const char *type;
	int rc;

	if ((rc = views_show(db, id, raw, &o, err, sizeof(err))) == 0) {
		webq_fail(e, 404, "no request %lld", (long long)id);
		return NULL;
	}
	if (rc == -1) {
		webq_fail(e, 500, "%s", err);
		return NULL;
	}
	json_object_set_new(o, "req_body_type",
	    out_json_str(webq_header(
		json_object_get(o, "req_headers"), "content-type")));
	type = json_string_value(json_object_get(o, "content_type"));
	if (type == NULL)
		type = webq_header(
		    json_object_get(o, "resp_headers"), "content-type");
	json_object_set_new(o, "resp_body_type", out_json_str(type));
	if (json_object_set_new(o, "timing", webq_timing(o)) == -1) {
		json_decref(o);
		webq_nomem(e);
		return NULL;
	}
	return o;
}

/* The stored body of a message: its sha, headers and content type. */
static const char *const webq_body_sql[2] = {
    "SELECT req_body_sha, req_headers, NULL FROM requests WHERE id = ?",
    "SELECT resp_body_sha, resp_headers, content_type FROM requests"
    " WHERE id = ?",
};

/* data[0..len) (malloc'd, owned by out from now on) decoded as headers
 * say into out; the stored bytes when they cannot be decoded. */
static void
webq_decode(
    const char *headers, unsigned char *data, size_t len, struct webq_blob *out)
{
	struct readable r;

	readable_body(headers, data, len, &r);
	if (r.owned != NULL) {
		out->data = r.owned;
		out->len = r.len;
		r.owned = NULL;
		free(data);
	} else {
		out->data = data;
		out->len = len;
	}
	readable_free(&r);
}

/* The message's Content-Type, malloc'd; NULL when it had none. */
static char *
webq_body_type(sqlite3_stmt *s)
{
	const char *t = webq_col(s, 2);

	return t != NULL ? strdup(t)
			 : readable_header(webq_col(s, 1), "content-type");
}

int
webq_body(sqlite3 *db, int64_t id, int resp, int raw, struct webq_blob *out,
    struct webq_err *e)
{
	sqlite3_stmt *s = NULL;
	unsigned char *data = NULL;
	size_t len = 0;
	int rc, status = -1;

	memset(out, 0, sizeof(*out));
	if (sqlite3_prepare_v2(db, webq_body_sql[resp != 0], -1, &s, NULL) !=
	    SQLITE_OK)
		goto dberr;
	sqlite3_bind_int64(s, 1, id);
	if ((rc = sqlite3_step(s)) == SQLITE_DONE) {
		webq_fail(e, 404, "no request %lld", (long long)id);
		goto fail;
	}
	if (rc != SQLITE_ROW)
		goto dberr;
	if (webq_col(s, 0) == NULL ||
	    (rc = db_body(db, webq_col(s, 0), &data, &len)) == 0) {
		webq_fail(e, 404,
		    "the %s body of request %lld was not captured",
		    resp ? "response" : "request", (long long)id);
		goto fail;
	}
	if (rc == -1)
		goto dberr;
	if (raw) {
		out->data = data;
		out->len = len;
	} else
		webq_decode(webq_col(s, 1), data, len, out);
	out->type = webq_body_type(s);
	status = 0;
	goto fail;
dberr:
	webq_dberr(e, db, "cannot read the body");
fail:
	sqlite3_finalize(s);
	return status;
}

void
webq_blob_free(struct webq_blob *b)
{
	if (b == NULL)
		return;
	free(b->data);
	free(b->type);
	memset(b, 0, sizeof(*b));
}

json_t *
webq_domains(sqlite3 *db, struct webq_err *e)
{
	json_t *a = views_domains(db, e->msg, sizeof(e->msg));

	if (a == NULL)
		e->status = 500;
	return a;
}

json_t *
webq_streams(sqlite3 *db, struct webq_err *e)
{
	json_t *a = views_streams(db, e->msg, sizeof(e->msg));

	if (a == NULL)
		e->status = 500;
	return a;
}

json_t *
webq_passthrough(sqlite3 *db, struct webq_err *e)
{
	json_t *a = views_passthrough(db, e->msg, sizeof(e->msg));

	if (a == NULL)
		e->status = 500;
	return a;
}

json_t *
webq_stream(sqlite3 *db, int64_t conn_id, struct webq_err *e)
{
	json_t *o;
	int rc = views_stream(db, conn_id, &o, e->msg, sizeof(e->msg));

	if (rc == 0)
		webq_fail(e, 404, "no connection %lld", (long long)conn_id);
	else if (rc == -1)
		e->status = 500;
	return o;
}

int
webq_cursor_now(sqlite3 *db, struct webq_cursor *c, struct webq_err *e)
{
	sqlite3_stmt *s = NULL;
	int rc;

	if (sqlite3_prepare_v2(db,
		"SELECT coalesce((SELECT max(id) FROM requests), 0),"
		" coalesce((SELECT max(wseq) FROM connections), 0),"
		" coalesce((SELECT max(id) FROM ws_messages), 0)",
		-1, &s, NULL) != SQLITE_OK ||
	    (rc = sqlite3_step(s)) != SQLITE_ROW) {
		webq_dberr(e, db, "cannot read the feed position");
		sqlite3_finalize(s);
		return -1;
	}
	c->req = sqlite3_column_int64(s, 0);
	c->conn = sqlite3_column_int64(s, 1);
	c->ws = sqlite3_column_int64(s, 2);
	sqlite3_finalize(s);
	return 0;
}

/* The live feed being read: one snapshot, from cursor c up to now. */
struct webq_feed {
	sqlite3 *db;
	struct select *sel;     /* the flows' filter, NULL for none */
	struct webq_cursor c;   /* advanced as events are added */
	struct webq_cursor now; /* what the snapshot holds */
	int left;               /* events still wanted */
	json_t *events;
	struct webq_err *e;
};

/* Add {"event": name, "data": data} (taken). 0 / -1 with e. */
static int
webq_feed_add(struct webq_feed *f, const char *name, json_t *data)
{
	json_t *ev;

	if (data == NULL || (ev = json_object()) == NULL) {
		json_decref(data);
		webq_nomem(f->e);
		return -1;
	}
	json_object_set_new(ev, "event", json_string(name));
	json_object_set_new(ev, "data", data);
	if (json_array_append_new(f->events, ev) == -1) {
		webq_nomem(f->e);
		return -1;
	}
	f->left--;
	return 0;
}

/* The new flows (matching ones), oldest first. 0 / -1 with e. */
static int
webq_feed_flows(struct webq_feed *f)
{
	sqlite3_stmt *s = NULL;
	char sql[1024];
	int rc, want = f->left;

	snprintf(sql, sizeof(sql),
	    "SELECT " VIEWS_REQUEST_COLS " FROM requests"
	    " WHERE id > ?1 AND id <= ?2%s ORDER BY id LIMIT ?3",
	    f->sel != NULL ? " AND " WEBQ_MATCH "(id)" : "");
	if (sqlite3_prepare_v2(f->db, sql, -1, &s, NULL) != SQLITE_OK)
		goto dberr;
	sqlite3_bind_int64(s, 1, f->c.req);
	sqlite3_bind_int64(s, 2, f->now.req);
	sqlite3_bind_int(s, 3, want);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (webq_feed_add(f, "flow", views_flow(s)) == -1)
			goto fail;
		f->c.req = sqlite3_column_int64(s, 0);
	}
	if (rc != SQLITE_DONE)
		goto dberr;
	/* fewer than asked for: nothing else matches up to now */
	if (f->left > 0)
		f->c.req = f->now.req;
	sqlite3_finalize(s);
	return 0;
dberr:
	webq_dberr(f->e, f->db, "cannot read new flows");
fail:
	sqlite3_finalize(s);
	return -1;
}

/* The new CONN rows, in wseq order. 0 / -1 with e. */
static int
webq_feed_conns(struct webq_feed *f)
{
	sqlite3_stmt *s = NULL;
	int rc;

	if (webq_conns_prepare(f->db, f->c.conn, f->now.conn, f->left, &s) ==
	    -1)
		goto dberr;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (webq_feed_add(f, "conn", webq_conn_row(s)) == -1)
			goto fail;
		f->c.conn = sqlite3_column_int64(s, WC_SEQ);
	}
	if (rc != SQLITE_DONE)
		goto dberr;
	if (f->left > 0)
		f->c.conn = f->now.conn;
	sqlite3_finalize(s);
	return 0;
dberr:
	webq_dberr(f->e, f->db, "cannot read new connections");
fail:
	sqlite3_finalize(s);
	return -1;
}

/* {"request_id": rid, "messages": its messages up to now}. 0 / -1. */
static int
webq_feed_ws_count(struct webq_feed *f, sqlite3_stmt *count, int64_t rid)
{
	sqlite3_reset(count);
	sqlite3_bind_int64(count, 1, rid);
	sqlite3_bind_int64(count, 2, f->now.ws);
	if (sqlite3_step(count) != SQLITE_ROW) {
		webq_dberr(f->e, f->db, "cannot count WebSocket messages");
		return -1;
	}
	return webq_feed_add(f, "ws",
	    json_pack("{s:I,s:I}", "request_id", (json_int_t)rid, "messages",
		(json_int_t)sqlite3_column_int64(count, 0)));
}

/*
 * Whether the feed tells about new messages of request rid: one it has
 * sent (a later flow event will carry its count) that matches the filter.
 * *skip remembers the last one that did not match, as messages come in
 * runs. 1 / 0 / -1 with e.
 */
static int
webq_feed_ws_wanted(struct webq_feed *f, int64_t rid, int64_t *skip)
{
	int m;

	if (rid > f->c.req || rid == *skip)
		return 0;
	if (f->sel == NULL)
		return 1;
	if ((m = select_match(f->sel, rid)) == -1)
		webq_dberr(f->e, f->db, "cannot match a request");
	else if (m == 0)
		*skip = rid;
	return m;
}

/* Index of rid in ids[0..n), or n. */
static size_t
webq_find(const int64_t *ids, size_t n, int64_t rid)
{
	size_t i;

	for (i = 0; i < n && ids[i] != rid; i++)
		;
	return i;
}

/*
 * The requests that got WebSocket messages, one event each with its count
 * now. Messages are walked in id order; the walk stops before a message
 * of one request more than there are events left, so the cursor never
 * passes one that is not told. 0 / -1 with e.
 */
static int
webq_feed_ws(struct webq_feed *f)
{
	sqlite3_stmt *s = NULL, *count = NULL;
	int64_t *ids, rid, skip = 0;
	size_t n = 0, i, max = (size_t)f->left;
	int rc = SQLITE_DONE, w, status = -1;

	if ((ids = calloc(max, sizeof(*ids))) == NULL) {
		webq_nomem(f->e);
		return -1;
	}
	if (sqlite3_prepare_v2(f->db,
		"SELECT id, request_id FROM ws_messages"
		" WHERE id > ?1 AND id <= ?2 ORDER BY id",
		-1, &s, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(f->db,
		"SELECT count(*) FROM ws_messages"
		" WHERE request_id = ?1 AND id <= ?2",
		-1, &count, NULL) != SQLITE_OK)
		goto dberr;
	sqlite3_bind_int64(s, 1, f->c.ws);
	sqlite3_bind_int64(s, 2, f->now.ws);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		rid = sqlite3_column_int64(s, 1);
		if ((w = webq_feed_ws_wanted(f, rid, &skip)) == -1)
			goto fail;
		if (w && webq_find(ids, n, rid) == n) {
			if (n == max)
				break;
			ids[n++] = rid;
		}
		f->c.ws = sqlite3_column_int64(s, 0);
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		goto dberr;
	if (rc == SQLITE_DONE)
		f->c.ws = f->now.ws;
	for (i = 0; i < n; i++)
		if (webq_feed_ws_count(f, count, ids[i]) == -1)
			goto fail;
	status = 0;
	goto fail;
dberr:
	webq_dberr(f->e, f->db, "cannot read WebSocket messages");
fail:
	sqlite3_finalize(s);
	sqlite3_finalize(count);
	free(ids);
	return status;
}

/* Read the feed inside one read transaction (unless the caller holds
 * one), so every part sees the same snapshot. 0 / -1 with e. */
static int
webq_feed_read(struct webq_feed *f, const char *filter)
{
	if (webq_cursor_now(f->db, &f->now, f->e) == -1 ||
	    webq_filter_open(f->db, filter, &f->sel, f->e) == -1)
		return -1;
	if (webq_feed_flows(f) == -1)
		return -1;
	if (f->left > 0 && webq_feed_conns(f) == -1)
		return -1;
	if (f->left > 0 && webq_feed_ws(f) == -1)
		return -1;
	return 0;
}

int
webq_changes(sqlite3 *db, struct webq_cursor *c, const char *filter, int limit,
    json_t *out, struct webq_err *e)
{
	struct webq_feed f;
	int began = 0, rc = -1;

	memset(&f, 0, sizeof(f));
	f.db = db;
	f.c = *c;
	f.left = webq_limit(limit);
	f.e = e;
	if ((f.events = json_array()) == NULL) {
		webq_nomem(e);
		return -1;
	}
	if (sqlite3_get_autocommit(db)) {
		if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
			webq_dberr(e, db, "cannot read");
			goto fail;
		}
		began = 1;
	}
	if (webq_feed_read(&f, filter) == -1)
		goto fail;
	if (json_array_extend(out, f.events) == -1) {
		webq_nomem(e);
		goto fail;
	}
	*c = f.c;
	rc = 0;
fail:
	webq_filter_close(db, f.sel);
	if (began)
		(void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	json_decref(f.events);
	return rc;
}
