/*
 * streams_samples: the TCP timeline of one stream (tcp_samples: TCP_INFO
 * of the client's socket, side 0, and the origin's, side 1, read every
 * tcp-sample-interval while it was relayed) as `peephole show stream`
 * prints it: a summary, the series as a table or CSV, or a JSON array for
 * --json and the web UI. Any thread that owns its sqlite3 handle.
 */
#ifndef PEEPHOLE_CLI_STREAMS_SAMPLES_H
#define PEEPHOLE_CLI_STREAMS_SAMPLES_H

#include <stdint.h>
#include <stdio.h>

#include "proxy/cli/output.h"

struct sqlite3;
struct json_t;

/* The CSV header of the series, without the line end. */
#define STREAMS_SAMPLES_CSV_HEADER                                             \
	"t_ms,side,rtt_ms,rttvar_ms,snd_cwnd,unacked,bytes_in_flight,"         \
	"retrans,total_retrans,delivery_rate,bytes_acked,bytes_received"

/*
 * The summary lines of stream id's samples: how many per side (and
 * whether tcp-samples-max cut them, capped), then per side RTT min /
 * median / max, the largest cwnd and in-flight bytes, retransmits.
 * 0 / -1 (a message in err).
 */
int streams_samples_summary(FILE *fp, struct sqlite3 *db, int64_t id,
    int capped, char *err, size_t errlen) __attribute__((warn_unused_result));

/*
 * The series of stream id, a row per sample in time order, t_ms measured
 * from t0 (the accept): a table (OUT_TEXT) or CSV with the header above.
 * 0 / -1 (a message in err).
 */
int streams_samples_print(FILE *fp, struct sqlite3 *db, int64_t id, int64_t t0,
    enum out_format fmt, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* The series as a JSON array of objects (t_ms, t_us, side "client" /
 * "origin", the columns in their units). NULL with a message in err. */
struct json_t *streams_samples_json(struct sqlite3 *db, int64_t id, int64_t t0,
    char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
