/* select: see select.h. */
#include "cli/select.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/db.h"
#include "cli/requrl.h"
#include "filters/filter.h"

struct cli_select {
	sqlite3 *db;
	sqlite3_stmt *st, *body, *one;
	const int64_t *ids;
	size_t nids, next;
	const char *cmd;
	struct filter *f;
	/* the row being matched, for the body callback */
	const char *sha[2];
};

#define SELECT_COLS                                                            \
	"SELECT r.id, r.method, r.scheme, r.host, r.port, r.path, r.query,"    \
	" r.req_headers, r.resp_headers, r.content_type, r.error, r.label,"    \
	" c.protocol, r.status, r.req_body_sha, r.resp_body_sha"               \
	" FROM requests r LEFT JOIN connections c ON c.id = r.conn_id"

static const char *
select_text(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}

/* The value of the request's own Content-Type line, into buf. */
static const char *
select_req_type(const char *h, char *buf, size_t len)
{
	static const char name[] = "content-type:";

	while (h != NULL && *h != '\0') {
		size_t n = strcspn(h, "\r\n");
		if (n > sizeof(name) - 1 &&
		    strncasecmp(h, name, sizeof(name) - 1) == 0) {
			const char *v = h + sizeof(name) - 1;
			v += strspn(v, " \t");
			snprintf(
			    buf, len, "%.*s", (int)(n - (size_t)(v - h)), v);
			return buf;
		}
		h += n;
		h += strspn(h, "\r\n");
	}
	return NULL;
}

static int
select_body(void *arg, int which, const void **data, size_t *len)
{
	struct cli_select *s = arg;

	if (s->sha[which] == NULL)
		return -1;
	sqlite3_reset(s->body);
	sqlite3_bind_text(s->body, 1, s->sha[which], -1, SQLITE_TRANSIENT);
	if (sqlite3_step(s->body) != SQLITE_ROW)
		return -1;
	*data = sqlite3_column_blob(s->body, 0);
	*len = (size_t)sqlite3_column_bytes(s->body, 0);
	if (*data == NULL)
		*data = "";
	return 0;
}

/* 1 if the current row of st matches the expression (or there is none). */
static int
select_matches(struct cli_select *s, sqlite3_stmt *st)
{
	struct filter_req r;
	char ctype[256];
	char *url;
	int m;

	if (s->f == NULL)
		return 1;
	memset(&r, 0, sizeof(r));
	r.method = select_text(st, 1);
	r.scheme = select_text(st, 2);
	r.host = select_text(st, 3);
	r.req_headers = select_text(st, 7);
	r.resp_headers = select_text(st, 8);
	r.resp_content_type = select_text(st, 9);
	r.req_content_type =
	    select_req_type(r.req_headers, ctype, sizeof(ctype));
	r.error = select_text(st, 10);
	r.label = select_text(st, 11);
	r.protocol = select_text(st, 12);
	r.status = sqlite3_column_int(st, 13);
	s->sha[0] = select_text(st, 14);
	s->sha[1] = select_text(st, 15);
	r.body = select_body;
	r.body_arg = s;
	url = requrl_format(r.scheme, r.method, r.host,
	    sqlite3_column_int(st, 4), select_text(st, 5), select_text(st, 6));
	r.url = url;
	m = filter_match(s->f, &r);
	free(url);
	return m;
}

struct cli_select *
cli_select_new(sqlite3 *db, const char *cmd, const int64_t *ids, size_t nids,
    const char *expr, int *usage)
{
	struct cli_select *s;

	*usage = 0;
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		fprintf(stderr, "peephole %s: out of memory\n", cmd);
		return NULL;
	}
	s->db = db;
	s->ids = ids;
	s->nids = nids;
	s->cmd = cmd;
	if (expr != NULL) {
		char err[512] = "";
		size_t pos = 0;
		if ((s->f = filter_compile(expr, err, sizeof(err), &pos)) ==
		    NULL) {
			fprintf(stderr,
			    "peephole %s: bad filter: %s\n  %s\n  %*s^ "
			    "(position %zu)\n",
			    cmd, err, expr, (int)pos, "", pos);
			*usage = 1;
			cli_select_free(s);
			return NULL;
		}
	}
	if (sqlite3_prepare_v2(db,
		nids > 0 ? SELECT_COLS " WHERE r.id = ?"
			 : SELECT_COLS " ORDER BY r.id",
		-1, &s->st, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT data FROM bodies WHERE sha256 = ?",
		-1, &s->body, NULL) != SQLITE_OK) {
		db_warn(cmd, db, "cannot read requests");
		cli_select_free(s);
		return NULL;
	}
	return s;
}

int
cli_select_next(struct cli_select *s, int64_t *id)
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
		if (select_matches(s, s->st)) {
			*id = sqlite3_column_int64(s->st, 0);
			return 1;
		}
	}
}

int
cli_select_match(struct cli_select *s, int64_t id)
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
	return select_matches(s, s->one);
}

void
cli_select_free(struct cli_select *s)
{
	if (s == NULL)
		return;
	sqlite3_finalize(s->st);
	sqlite3_finalize(s->one);
	sqlite3_finalize(s->body);
	filter_free(s->f);
	free(s);
}
