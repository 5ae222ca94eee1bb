/*
 * select: which logged requests a command acts on — explicit ids, a filter
 * expression (filters/filter.h), or both (ids that also match) — walked in
 * id order, one id at a time, so a capture of any size streams through.
 * Used by `requests --filter`, `replay`, `export` and `run --replay-from`.
 */
#ifndef PEEPHOLE_SELECT_H
#define PEEPHOLE_SELECT_H

#include <stddef.h>
#include <stdint.h>

struct sqlite3;
struct select;

/* Why select_open failed. */
struct select_err {
	int usage;     /* 1: the expression was bad (msg says why, at pos) */
	size_t pos;    /* 0-based byte offset of the problem in it */
	char msg[512]; /* the filter's complaint, or "cannot read requests:
			  ...", "out of memory" */
};

/*
 * Start a selection on db (opened by the caller, which keeps it open until
 * select_free). ids / nids: only these ids (nids 0: every request);
 * expr: NULL or a filter expression. NULL on error, with why in *e;
 * nothing printed (the web API answers with it).
 */
struct select *select_open(struct sqlite3 *db, const int64_t *ids, size_t nids,
    const char *expr, struct select_err *e) __attribute__((warn_unused_result));

/*
 * select_open for a command: on error returns NULL and prints on
 * stderr, prefixed "peephole CMD: "; *usage is set to 1 when the
 * expression was bad (the message points at the position: exit 2) and to 0
 * for other failures (exit 1).
 */
struct select *select_new(struct sqlite3 *db, const char *cmd,
    const int64_t *ids, size_t nids, const char *expr, int *usage)
    __attribute__((warn_unused_result));

/* The next matching request id in *id: 1, 0 at the end, -1 on error
 * (printed). */
int select_next(struct select *s, int64_t *id)
    __attribute__((warn_unused_result));

/*
 * Whether request id matches s's expression (always, with none): 1 / 0,
 * -1 when it cannot be read (nothing printed). For a query that filters
 * in SQL as well (requests --filter keeps its LIMIT of newest matches).
 */
int select_match(struct select *s, int64_t id);

/* Match ~b / ~bq / ~bs against bodies as stored (raw set) rather than
 * decoded as their Content-Encoding says (the default). */
void select_set_raw(struct select *s, int raw);

/*
 * Make name(id) an SQL function of db answering select_match(s, id) (an
 * SQL error when the row cannot be read), for a query that filters in SQL;
 * s NULL removes it (do so before freeing s). 0 / -1 (SQLite busy or
 * ENOMEM).
 */
int select_sql_install(struct sqlite3 *db, const char *name, struct select *s);

void select_free(struct select *s);

#endif
