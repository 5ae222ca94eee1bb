/*
 * select: explicit ids for now; filter expressions arrive with
 * filters/filter.c (same interface, see select.h).
 */
#include "cli/select.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/db.h"

struct cli_select {
	sqlite3_stmt *st;
	const int64_t *ids;
	size_t nids, next;
	const char *cmd;
};

struct cli_select *
cli_select_new(sqlite3 *db, const char *cmd, const int64_t *ids, size_t nids,
    const char *expr, int *usage)
{
	struct cli_select *s;

	*usage = 0;
	if (expr != NULL) {
		fprintf(stderr, "peephole %s: --filter is not available yet\n",
		    cmd);
		*usage = 1;
		return NULL;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->ids = ids;
	s->nids = nids;
	s->cmd = cmd;
	if (sqlite3_prepare_v2(db,
		nids > 0 ? "SELECT id FROM requests WHERE id = ?"
			 : "SELECT id FROM requests ORDER BY id",
		-1, &s->st, NULL) != SQLITE_OK) {
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
		if (rc == SQLITE_ROW) {
			*id = sqlite3_column_int64(s->st, 0);
			return 1;
		}
		if (rc != SQLITE_DONE) {
			db_warn(s->cmd, sqlite3_db_handle(s->st),
			    "cannot read requests");
			return -1;
		}
		if (s->nids == 0)
			return 0;
	}
}

void
cli_select_free(struct cli_select *s)
{
	if (s == NULL)
		return;
	sqlite3_finalize(s->st);
	free(s);
}
