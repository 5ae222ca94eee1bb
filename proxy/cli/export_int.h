/*
 * export internals, shared by the files of `peephole export` and by
 * nothing else: the options, reading a request row (export.c), and the
 * three formats (export_har.c, export_curl.c, export_bodies.c).
 */
#ifndef PEEPHOLE_CLI_EXPORT_INT_H
#define PEEPHOLE_CLI_EXPORT_INT_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#define EXPORT_CMD "export"
#define EXPORT_CHUNK (64 * 1024)

struct export_opts {
	const char *db, *filter, *what, *target;
	int allow_truncated, request_bodies, force, raw;
	int64_t *ids;
	size_t nids;
};

/* Step the "SELECT * FROM requests WHERE id = ?" statement st to id.
 * 0, or -1 after a message. export.c. */
int export_load(sqlite3 *db, sqlite3_stmt *st, int64_t id)
    __attribute__((warn_unused_result));

/* A captured body, whole (it is at most body-capture-limit), malloc'd
 * with a spare NUL. NULL with *len 0 when nothing was captured. export.c. */
unsigned char *export_body(sqlite3 *db, const char *sha, size_t *len);

/*
 * The formats, each from db as o selects: CLI_OK, CLI_USAGE or CLI_ERROR
 * (printed). export_har.c, export_curl.c, export_bodies.c.
 */
int export_har(sqlite3 *db, const struct export_opts *o);
int export_curl(sqlite3 *db, const struct export_opts *o);
int export_bodies(sqlite3 *db, const struct export_opts *o);

#endif
