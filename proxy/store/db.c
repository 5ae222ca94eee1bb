/* db: see db.h. */
#include "proxy/store/db.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "proxy/store/schema.h"

/* Long enough to ride out a writer's checkpoint, short enough to notice. */
#define DB_BUSY_TIMEOUT_MS 5000

/* Open path with flags (never CREATE: a missing file is an error, told
 * in words a new user can act on), with the busy timeout, if its schema is
 * one this build reads. NULL on failure, printed. */
static struct sqlite3 *
db_open(const char *cmd, const char *path, int flags)
{
	sqlite3 *db = NULL;
	struct stat sb;
	char err[256];

	/* SQLite's own message for a missing file ("unable to open database
	 * file") does not tell a new user what to do. */
	if (stat(path, &sb) == -1 || !S_ISREG(sb.st_mode)) {
		fprintf(stderr,
		    "peephole %s: no database at %s (run `peephole run` "
		    "first)\n",
		    cmd, path);
		return NULL;
	}
	if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
		fprintf(stderr, "peephole %s: cannot open %s: %s\n", cmd, path,
		    db != NULL ? sqlite3_errmsg(db) : "out of memory");
		goto fail;
	}
	sqlite3_busy_timeout(db, DB_BUSY_TIMEOUT_MS);
	if (schema_check_readable(db, err, sizeof(err)) == -1) {
		fprintf(stderr, "peephole %s: %s: %s\n", cmd, path, err);
		goto fail;
	}
	return db;
fail:
	sqlite3_close(db);
	return NULL;
}

struct sqlite3 *
db_open_readonly(const char *cmd, const char *path)
{
	return db_open(cmd, path, SQLITE_OPEN_READONLY);
}

struct sqlite3 *
db_open_readwrite(const char *cmd, const char *path)
{
	return db_open(cmd, path, SQLITE_OPEN_READWRITE);
}

int
db_body(struct sqlite3 *db, const char *sha, unsigned char **data, size_t *len)
{
	sqlite3_stmt *s = NULL;
	int rc;

	*data = NULL;
	*len = 0;
	if (sqlite3_prepare_v2(db, "SELECT data FROM bodies WHERE sha256 = ?",
		-1, &s, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(s, 1, sha, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
		sqlite3_finalize(s);
		return rc == SQLITE_DONE ? 0 : -1;
	}
	*len = (size_t)sqlite3_column_bytes(s, 0);
	/* one spare byte: an empty body still gets a buffer, text ends */
	if ((*data = malloc(*len + 1)) == NULL) {
		*len = 0;
		sqlite3_finalize(s);
		return -1;
	}
	if (*len > 0)
		memcpy(*data, sqlite3_column_blob(s, 0), *len);
	(*data)[*len] = '\0';
	sqlite3_finalize(s);
	return 1;
}

void
db_warn(const char *cmd, struct sqlite3 *db, const char *what)
{
	fprintf(stderr, "peephole %s: %s: %s\n", cmd, what, sqlite3_errmsg(db));
}
