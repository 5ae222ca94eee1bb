/*
 * webq: the read side of the web API (issue 13, web-spec.md) — the JSON
 * each GET under /api/ answers with, and the changes the live feed
 * (/api/events) sends. Every function runs on a web reader thread with that
 * thread's own read-only handle (db_open_readonly); nothing here touches a
 * socket or an event loop, and nothing is printed: errors come back in a
 * struct webq_err with the HTTP status to answer with.
 *
 * The objects are the CLI's (proxy/cli/views.h), so the API and `peephole
 * ... --json` never drift apart. A returned json_t is the caller's
 * reference.
 */
#ifndef PEEPHOLE_WEBQ_H
#define PEEPHOLE_WEBQ_H

#include <stddef.h>
#include <stdint.h>

struct sqlite3;
struct json_t;

/* Why a query failed: the HTTP status (400 bad input, 404 unknown id, 500
 * SQLite error or out of memory) and the message for {"error": msg}. */
struct webq_err {
	int status;
	char msg[256];
};

/* GET /api/flows. limit 0 takes WEBQ_LIMIT_DEFAULT; others are clamped to
 * 1..WEBQ_LIMIT_MAX. */
#define WEBQ_LIMIT_DEFAULT 500
#define WEBQ_LIMIT_MAX 5000
struct webq_page {
	const char *filter; /* NULL or "": every request */
	int64_t after;      /* only ids above this (0: from the start) */
	int64_t before;     /* > 0: the newest matches below this id */
	int limit;
};

/*
 * GET /api/flows: {"flows": [FLOW...], "last": ID, "more": bool}, id
 * ascending. Without before, the first limit matches above after and
 * "more" says whether there are others; with before, the newest limit
 * matches between after and before and "more" says whether older ones
 * remain. "last" is the id of the last row, or after when there is none.
 * A bad filter is a 400 "filter: ... at position N". NULL with e on error.
 */
struct json_t *webq_flows(struct sqlite3 *db, const struct webq_page *p,
    struct webq_err *e) __attribute__((warn_unused_result));

/*
 * GET /api/conns: {"conns": [CONN...], "last": SEQ, "more": bool} — the
 * connections that are not HTTP exchanges (streams, failed TLS or
 * upstream connections, blocked ones) with wseq above after_seq, in wseq
 * order. limit as for webq_flows. NULL with e on error.
 */
struct json_t *webq_conns(struct sqlite3 *db, int64_t after_seq, int limit,
    struct webq_err *e) __attribute__((warn_unused_result));

/*
 * GET /api/flows/ID[?raw=1]: what `peephole show ID --json` prints (bodies
 * as stored when raw), plus "timing" {"dns_ms", "connect_ms", "tls_ms",
 * "ttfb_ms", "total_ms"} and req_/resp_body_type. NULL with e (404 when
 * there is no such request).
 */
struct json_t *webq_flow(struct sqlite3 *db, int64_t id, int raw,
    struct webq_err *e) __attribute__((warn_unused_result));

/* A body for GET /api/flows/ID/body: malloc'd bytes and the message's
 * Content-Type (malloc'd, NULL when it had none). */
struct webq_blob {
	unsigned char *data;
	size_t len;
	char *type;
};

/*
 * The request's (resp 0) or response's (resp 1) captured body of request
 * id into *out, decoded as its Content-Encoding says unless raw. 0, or -1
 * with e (404 when there is no such request or nothing was captured) and
 * *out empty. Free with webq_blob_free.
 */
int webq_body(struct sqlite3 *db, int64_t id, int resp, int raw,
    struct webq_blob *out, struct webq_err *e)
    __attribute__((warn_unused_result));

/* Free what b holds and empty it. NULL does nothing. */
void webq_blob_free(struct webq_blob *b);

/* GET /api/domains, /api/streams, /api/passthrough: the CLI's --json
 * arrays. NULL with e. */
struct json_t *webq_domains(struct sqlite3 *db, struct webq_err *e)
    __attribute__((warn_unused_result));
struct json_t *webq_streams(struct sqlite3 *db, struct webq_err *e)
    __attribute__((warn_unused_result));
struct json_t *webq_passthrough(struct sqlite3 *db, struct webq_err *e)
    __attribute__((warn_unused_result));

/* GET /api/streams/ID: `peephole show stream ID --json`. NULL with e (404
 * when there is no such connection). */
struct json_t *webq_stream(struct sqlite3 *db, int64_t conn_id,
    struct webq_err *e) __attribute__((warn_unused_result));

/*
 * Where the live feed stands: the largest requests.id, connections.wseq
 * and ws_messages.id sent (the SSE id "R.C.M").
 */
struct webq_cursor {
	int64_t req, conn, ws;
};

/* The cursor of everything written so far ("now"). 0 / -1 with e. */
int webq_cursor_now(struct sqlite3 *db, struct webq_cursor *c,
    struct webq_err *e) __attribute__((warn_unused_result));

/*
 * Append to out (a JSON array) up to limit changes past *c, each
 * {"event": "flow" | "conn" | "ws", "data": ...}: new flows (FLOW, as
 * webq_flows; only those matching filter when it is not NULL or "", but
 * the cursor moves past the others too), then new CONN rows, then
 * {"request_id", "messages": count now} for flows sent earlier that got
 * WebSocket messages. Each kind comes oldest first, read from one
 * snapshot; *c is advanced past what was sent (and what was skipped).
 * limit as for webq_flows. 0, or -1 with e (400 bad filter); *c is left
 * alone on error.
 */
int webq_changes(struct sqlite3 *db, struct webq_cursor *c, const char *filter,
    int limit, struct json_t *out, struct webq_err *e)
    __attribute__((warn_unused_result));

#endif
