/*
 * wsmsg: the WebSocket messages of one logged exchange (ws_messages, schema
 * v10) as the read commands print them: a table for `show`, a JSON array
 * for `show --json` and HAR's _webSocketMessages for `export har`. Each
 * reads the messages one row at a time from a database the caller opened.
 */
#ifndef PEEPHOLE_WSMSG_H
#define PEEPHOLE_WSMSG_H

#include <stdint.h>
#include <stdio.h>

struct sqlite3;
struct json_t;

/*
 * The message table of request req_id on fp, times in ms from t_start_us
 * (the request's start): index, time, direction (-> client to server, <-
 * back), opcode, size ("deflate" when compressed) and a preview. Nothing
 * when there are none. 0 / -1 (printed, prefixed "peephole CMD: ").
 */
int wsmsg_print(FILE *fp, struct sqlite3 *db, const char *cmd, int64_t req_id,
    int64_t t_start_us) __attribute__((warn_unused_result));

/*
 * The messages of req_id as a JSON array (empty when none) of {"t_us",
 * "dir": "send" | "receive", "opcode", "size", "wire_bytes", "compressed",
 * "truncated", "text" (valid UTF-8, not binary) or "base64", "close_code",
 * "close_reason", "error"}. NULL on error.
 */
struct json_t *wsmsg_json(struct sqlite3 *db, int64_t req_id);

/*
 * The messages of req_id as Chrome's HAR _webSocketMessages: [{"type":
 * "send" | "receive", "time": epoch seconds, "opcode", "data": text as is,
 * binary base64}]. JSON null when there are none, NULL on error.
 */
struct json_t *wsmsg_har(struct sqlite3 *db, int64_t req_id);

#endif
