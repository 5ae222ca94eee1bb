/*
 * trace: what `peephole trace` (trace.c) and `peephole show trace ID`
 * (trace_show.c) share: the labels of hop addresses and a stored trace as
 * JSON.
 */
#ifndef PEEPHOLE_CLI_TRACE_H
#define PEEPHOLE_CLI_TRACE_H

#include <stddef.h>
#include <stdint.h>

struct geo;
struct json_t;
struct sqlite3;

/* The geo data, from the peephole home ($PEEPHOLE_HOME or ~/.peephole),
 * or NULL when there is none: then only scopes are known. */
struct geo *trace_geo_open(void);

/* A path_label_fn (proxy/trace/path.h) over a struct geo (may be NULL):
 * "CN  AS45090 Tencent", "private", or "" when unknown. */
void trace_label(void *geo, const char *ip, char *buf, size_t len);

/*
 * Stored trace id as a JSON object (the caller's reference), its hops
 * with country and AS. NULL with *missing set when there is no such
 * trace, NULL with a message in err on an error.
 */
struct json_t *trace_json(struct sqlite3 *db, const struct geo *g, int64_t id,
    int *missing, char *err, size_t errlen) __attribute__((warn_unused_result));

/* Print stored trace id as text on stdout. 1, 0 when there is no such
 * trace, -1 after a message. */
int trace_print(struct sqlite3 *db, const struct geo *g, int64_t id);

/* `trace --list`: the stored traces as a table or JSON. Exit status. */
int trace_list(struct sqlite3 *db, int json);

#endif
