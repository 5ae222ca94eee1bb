/* select: see select.h. */
#include "proxy/store/select.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/store/db.h"
#include "proxy/store/readable.h"
#include "proxy/store/requrl.h"
#include "filters/filter.h"

struct select {
	sqlite3 *db;
	sqlite3_stmt *st, *body, *one;
	sqlite3_stmt *msg; /* the row's WebSocket messages, in idx order */
	int64_t row_id;    /* the row being matched */
	size_t msg_next;   /* the message msg steps to next */
	const int64_t *ids;
	size_t nids, next;
	const char *cmd;
	struct filter *f;
	/* the row being matched, for the body callback */
	const char *sha[2];
	const char *headers[2];
	int raw; /* match bodies as stored, not decoded */
	/* decoded bodies of that row, alive until the next row */
	struct readable dec[2];
	unsigned char *blob[2]; /* stored bytes they may point into */
};

#define SELECT_COLS                                                            \
	"SELECT r.id, r.method, r.scheme, r.host, r.port, r.path, r.query,"    \
	" r.req_headers, r.resp_headers, r.content_type, r.error, r.label,"    \
	" c.protocol, r.status, r.req_body_sha, r.resp_body_sha,"              \
	" r.stream_id IS NOT NULL,"                                            \
	" EXISTS (SELECT 1 FROM ws_messages w WHERE w.request_id = r.id)"      \
	" FROM requests r LEFT JOIN connections c ON c.id = r.conn_id"

static const char *
select_text(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}

/* Forget the decoded bodies of the previous row. */
static void
select_drop_bodies(struct select *s)
{
	int i;

	for (i = 0; i < 2; i++) {
		readable_free(&s->dec[i]);
		free(s->blob[i]);
		s->blob[i] = NULL;
	}
}

/* The body filter_match asks for: decoded as its message's
 * Content-Encoding says, unless the selection is raw. */
static int
select_body(void *arg, int which, const void **data, size_t *len)
{
	struct select *s = arg;
	const void *blob;
	size_t n;

	if (s->sha[which] == NULL)
		return -1;
	sqlite3_reset(s->body);
	sqlite3_bind_text(s->body, 1, s->sha[which], -1, SQLITE_TRANSIENT);
	if (sqlite3_step(s->body) != SQLITE_ROW)
		return -1;
	blob = sqlite3_column_blob(s->body, 0);
	n = (size_t)sqlite3_column_bytes(s->body, 0);
	if (blob == NULL)
		blob = "";
	if (s->raw) {
		*data = blob;
		*len = n;
		return 0;
	}
	/* the statement's blob goes with the next step: keep a copy the
	 * readable form may point into */
	readable_free(&s->dec[which]);
	free(s->blob[which]);
	if ((s->blob[which] = malloc(n + 1)) == NULL)
		return -1;
	memcpy(s->blob[which], blob, n);
	readable_body(s->headers[which], s->blob[which], n, &s->dec[which]);
	*data = s->dec[which].data;
	*len = s->dec[which].len;
	return 0;
}

/* WebSocket message i of the row being matched, for ~b: the statement
 * walks them in order; asked for an earlier one, it starts again. Payloads
 * are matched as stored (inflated, as the message carried them). */
static int
select_message(void *arg, size_t i, int *dir, const void **data, size_t *len)
{
	struct select *s = arg;
	const void *blob;

	if (s->msg == NULL &&
	    sqlite3_prepare_v2(s->db,
		"SELECT dir, payload FROM ws_messages WHERE request_id = ?"
		" ORDER BY idx",
		-1, &s->msg, NULL) != SQLITE_OK)
		return -1;
	if (i == 0 || i != s->msg_next) {
		sqlite3_reset(s->msg);
		sqlite3_bind_int64(s->msg, 1, s->row_id);
		s->msg_next = 0;
	}
	for (; s->msg_next <= i; s->msg_next++)
		if (sqlite3_step(s->msg) != SQLITE_ROW)
			return -1;
	*dir = sqlite3_column_int(s->msg, 0);
	blob = sqlite3_column_blob(s->msg, 1);
	*len = (size_t)sqlite3_column_bytes(s->msg, 1);
	*data = blob != NULL ? blob : "";
	return 0;
}

/* 1 if the current row of st matches the expression (or there is none). */
static int
select_row_matches(struct select *s, sqlite3_stmt *st)
{
	struct filter_req r;
	char *url, *ctype;
	int m;

	if (s->f == NULL)
		return 1;
	select_drop_bodies(s);
	memset(&r, 0, sizeof(r));
	r.method = select_text(st, 1);
	r.scheme = select_text(st, 2);
	r.host = select_text(st, 3);
	r.req_headers = select_text(st, 7);
	r.resp_headers = select_text(st, 8);
	r.resp_content_type = select_text(st, 9);
	r.req_content_type = ctype =
	    readable_header(r.req_headers, "content-type");
	r.error = select_text(st, 10);
	r.label = select_text(st, 11);
	r.protocol = select_text(st, 12);
	r.status = sqlite3_column_int(st, 13);
	s->sha[0] = select_text(st, 14);
	s->sha[1] = select_text(st, 15);
	s->headers[0] = r.req_headers;
	s->headers[1] = r.resp_headers;
	r.body = select_body;
	r.body_arg = s;
	r.http2 = sqlite3_column_int(st, 16);
	r.ws_messages = sqlite3_column_int(st, 17);
	if (r.ws_messages)
		r.message = select_message;
	s->row_id = sqlite3_column_int64(st, 0);
	s->msg_next = 0;
	url = requrl_format(r.scheme, r.method, r.host,
	    sqlite3_column_int(st, 4), select_text(st, 5), select_text(st, 6));
	r.url = url;
	m = filter_match(s->f, &r);
	if (s->msg != NULL)
		sqlite3_reset(s->msg); /* no read left open between rows */
	free(url);
	free(ctype);
	return m;
}

struct select *
select_open(sqlite3 *db, const int64_t *ids, size_t nids, const char *expr,
    struct select_err *e)
{
	struct select *s;

	memset(e, 0, sizeof(*e));
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		snprintf(e->msg, sizeof(e->msg), "out of memory");
		return NULL;
	}
	s->db = db;
	s->ids = ids;
	s->nids = nids;
	s->cmd = "select";
	if (expr != NULL &&
	    (s->f = filter_compile(expr, e->msg, sizeof(e->msg), &e->pos)) ==
		NULL) {
		e->usage = 1;
		select_free(s);
		return NULL;
	}
	if (sqlite3_prepare_v2(db,
		nids > 0 ? SELECT_COLS " WHERE r.id = ?"
			 : SELECT_COLS " ORDER BY r.id",
		-1, &s->st, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT data FROM bodies WHERE sha256 = ?",
		-1, &s->body, NULL) != SQLITE_OK) {
		snprintf(e->msg, sizeof(e->msg), "cannot read requests: %s",
		    sqlite3_errmsg(db));
		select_free(s);
		return NULL;
	}
	return s;
}

struct select *
select_new(sqlite3 *db, const char *cmd, const int64_t *ids, size_t nids,
    const char *expr, int *usage)
{
	struct select_err e;
	struct select *s = select_open(db, ids, nids, expr, &e);

	*usage = e.usage;
	if (s == NULL && e.usage)
		fprintf(stderr,
		    "peephole %s: bad filter: %s\n  %s\n  %*s^ "
		    "(position %zu)\n",
		    cmd, e.msg, expr, (int)e.pos, "", e.pos);
	else if (s == NULL)
		fprintf(stderr, "peephole %s: %s\n", cmd, e.msg);
	else
		s->cmd = cmd;
	return s;
}

int
select_next(struct select *s, int64_t *id)
{
	int rc;

	for (;;) {
		if (s->nids > 0) {
			if (s->next == s->nids)
				return 0;
			sqlite3_reset(s->st);
			sqlite3_bind_int64(s->st, 1, s->ids[s->next++]);
		}
		rc = sqlite3_step(s->st);
		if (rc == SQLITE_DONE && s->nids > 0) {
			fprintf(stderr, "peephole %s: no request %lld\n",
			    s->cmd, (long long)s->ids[s->next - 1]);
			return -1;
		}
		if (rc == SQLITE_DONE)
			return 0;
		if (rc != SQLITE_ROW) {
			db_warn(s->cmd, s->db, "cannot read requests");
			return -1;
		}
		if (select_row_matches(s, s->st)) {
			*id = sqlite3_column_int64(s->st, 0);
			return 1;
		}
	}
}

int
select_match(struct select *s, int64_t id)
{
	int rc;

	if (s->f == NULL)
		return 1;
	if (s->one == NULL &&
	    sqlite3_prepare_v2(s->db, SELECT_COLS " WHERE r.id = ?", -1,
		&s->one, NULL) != SQLITE_OK)
		return -1;
	sqlite3_reset(s->one);
	sqlite3_bind_int64(s->one, 1, id);
	if ((rc = sqlite3_step(s->one)) == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return -1;
	return select_row_matches(s, s->one);
}

void
select_free(struct select *s)
{
	if (s == NULL)
		return;
	sqlite3_finalize(s->st);
	sqlite3_finalize(s->one);
	sqlite3_finalize(s->body);
	sqlite3_finalize(s->msg);
	select_drop_bodies(s);
	filter_free(s->f);
	free(s);
}

void
select_set_raw(struct select *s, int raw)
{
	s->raw = raw;
}

/* name(id) in SQL: select_match on the selection in the user data. */
static void
select_sqlfn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	int m;

	(void)argc;
	m = select_match(sqlite3_user_data(ctx), sqlite3_value_int64(argv[0]));
	if (m == -1)
		sqlite3_result_error(ctx, "cannot read a request", -1);
	else
		sqlite3_result_int(ctx, m);
}

int
select_sql_install(sqlite3 *db, const char *name, struct select *s)
{
	return sqlite3_create_function(db, name, 1, SQLITE_UTF8, s,
		   s != NULL ? select_sqlfn : NULL, NULL, NULL) == SQLITE_OK
	    ? 0
	    : -1;
}
