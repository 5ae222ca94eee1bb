/*
 * views: the JSON objects the read commands print with --json, built
 * without printing, so that the web API (proxy/web/webq.c) serves the very
 * objects `peephole requests | show | domains | streams | show stream |
 * passthrough list` print. Each reads a database the caller opened and
 * keeps open; a returned json_t is the caller's reference. Errors come back
 * as a message in err ("query failed: <SQLite's>", "out of memory"),
 * never printed. Any thread that owns its sqlite3 handle.
 */
#ifndef PEEPHOLE_CLI_VIEWS_H
#define PEEPHOLE_CLI_VIEWS_H

#include <stddef.h>
#include <stdint.h>

struct sqlite3;
struct sqlite3_stmt;
struct json_t;

/*
 * The columns views_request and views_flow read, in this order:
 * "SELECT " VIEWS_REQUEST_COLS " FROM requests WHERE ..." (the table
 * unaliased: the WebSocket count refers to it by name).
 */
#define VIEWS_REQUEST_COLS                                                     \
	"id, t_start_us, client_ip, method, scheme, host, port, path, query,"  \
	" status, resp_body_size, total_us, error, conn_id, label,"            \
	" req_version, stream_id, stream_end,"                                 \
	" (SELECT count(*) FROM ws_messages w"                                 \
	" WHERE w.request_id = requests.id),"                                  \
	" up_version, req_body_size, content_type, replay_of"

/* One object of `peephole requests --json` from the current row of a
 * VIEWS_REQUEST_COLS statement. NULL on ENOMEM. */
struct json_t *views_request(struct sqlite3_stmt *s);

/* The web list's row: views_request plus "scheme", "port", "path",
 * "up_version", "req_size", "content_type" and "replay_of". NULL on
 * ENOMEM. */
struct json_t *views_flow(struct sqlite3_stmt *s);

/*
 * What `peephole show ID --json` prints: request id in full, its bodies
 * decoded as their Content-Encoding says unless raw. 1 with *out set, 0
 * when there is no such request, -1 with a message in err.
 */
int views_show(struct sqlite3 *db, int64_t id, int raw, struct json_t **out,
    char *err, size_t errlen) __attribute__((warn_unused_result));

/* `peephole domains --json` (sorted by name). NULL with err. */
struct json_t *views_domains(struct sqlite3 *db, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* `peephole streams --json`: every stream, oldest first. NULL with err. */
struct json_t *views_streams(struct sqlite3 *db, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * `peephole show stream ID --json`: connection id with its "events_list".
 * 1 with *out set, 0 when there is no such connection, -1 with err.
 */
int views_stream(struct sqlite3 *db, int64_t id, struct json_t **out, char *err,
    size_t errlen) __attribute__((warn_unused_result));

/* `peephole passthrough list --json`. NULL with err. */
struct json_t *views_passthrough(struct sqlite3 *db, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
