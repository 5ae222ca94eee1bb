/*
 * db: how the CLI commands open the flow store — read-only (or, for the few
 * that edit it, read-write), with a busy timeout so they work while
 * `peephole run` is writing, and only if the schema is one this build
 * reads.
 */
#ifndef PEEPHOLE_DB_H
#define PEEPHOLE_DB_H

#include <stddef.h>

struct sqlite3;

/*
 * Open path read-only. On failure print why on stderr, prefixed with
 * "peephole CMD: ", and return NULL. The caller closes with sqlite3_close.
 */
struct sqlite3 *db_open_readonly(const char *cmd, const char *path)
    __attribute__((warn_unused_result));

/*
 * The same, read-write, for the few commands that change the file (e.g.
 * `passthrough clear`). The busy timeout lets it wait out the running
 * proxy's write transactions. The caller closes with sqlite3_close.
 */
struct sqlite3 *db_open_readwrite(const char *cmd, const char *path)
    __attribute__((warn_unused_result));

/*
 * The stored body whose SHA-256 is sha (hex) as a malloc'd copy in *data,
 * with a NUL one past its end, and its length in *len; the caller frees
 * it. 1, 0 when the file holds no such body, -1 on an SQLite error or
 * ENOMEM (nothing printed). *data is NULL and *len 0 unless 1.
 */
int db_body(struct sqlite3 *db, const char *sha, unsigned char **data,
    size_t *len) __attribute__((warn_unused_result));

/* Print "peephole CMD: WHAT: <sqlite error>" on stderr. */
void db_warn(const char *cmd, struct sqlite3 *db, const char *what);

#endif
