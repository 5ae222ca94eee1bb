/*
 * schema: the flow store's tables, created and migrated forward in steps
 * keyed on PRAGMA user_version. Used by the store at open (read-write) and
 * by the CLI to check a file it opens read-only.
 */
#ifndef PEEPHOLE_SCHEMA_H
#define PEEPHOLE_SCHEMA_H

#include <stddef.h>

struct sqlite3;

/*
 * Bring db up to STORE_SCHEMA_VERSION: an empty file gets every table, an
 * older one runs each missing step in its own transaction. A file written
 * by a newer peephole is refused. 0 / -1 with a message in err. Caller's
 * thread, before the writer starts.
 */
int schema_migrate(struct sqlite3 *db, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Read the file's schema version into *version. 0 / -1 with a message in
 * err. Does not write.
 */
int schema_version(struct sqlite3 *db, int *version, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Check that a database opened read-only can be read by this build: the
 * version must be exactly STORE_SCHEMA_VERSION (an older file is migrated by
 * the next `peephole run`). 0 / -1 with a message in err.
 */
int schema_check_readable(struct sqlite3 *db, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
