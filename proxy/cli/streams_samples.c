/* streams_samples: see streams_samples.h. */
#include "proxy/cli/streams_samples.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#define STREAMS_SAMPLES_SQL                                                    \
	"SELECT t_us, side, rtt_us, rttvar_us, snd_cwnd, unacked,"             \
	" bytes_in_flight, retrans, total_retrans, delivery_rate,"             \
	" bytes_acked, bytes_received FROM tcp_samples WHERE conn_id = ?"      \
	" ORDER BY t_us, side, rowid"

/* Columns of STREAMS_SAMPLES_SQL after t_us and side, as JSON keys. */
static const char *const streams_samples_keys[] = {"rtt_us", "rttvar_us",
    "snd_cwnd", "unacked", "bytes_in_flight", "retrans", "total_retrans",
    "delivery_rate", "bytes_acked", "bytes_received"};
#define STREAMS_SAMPLES_NKEYS                                                  \
	(sizeof(streams_samples_keys) / sizeof(streams_samples_keys[0]))

#define STREAMS_SAMPLES_SUMMARY_SQL                                            \
	"SELECT side, count(*), min(rtt_us), max(rtt_us), max(snd_cwnd),"      \
	" max(bytes_in_flight), max(total_retrans) FROM tcp_samples"           \
	" WHERE conn_id = ?1 GROUP BY side ORDER BY side"

/* The median: the middle row (the lower of two) in RTT order. */
#define STREAMS_SAMPLES_MEDIAN_SQL                                             \
	"SELECT rtt_us FROM tcp_samples WHERE conn_id = ?1 AND side = ?2"      \
	" ORDER BY rtt_us LIMIT 1 OFFSET ?3"

static const char *
streams_samples_side(int side)
{
	return side == 0 ? "client" : "origin";
}

static void
streams_samples_err(sqlite3 *db, char *err, size_t errlen)
{
	snprintf(
	    err, errlen, "cannot read TCP samples: %s", sqlite3_errmsg(db));
}

/* Median RTT of one side with n samples, µs; -1 on error. */
static long long
streams_samples_median(sqlite3 *db, int64_t id, int side, long long n)
{
	sqlite3_stmt *s = NULL;
	long long v = -1;

	if (sqlite3_prepare_v2(db, STREAMS_SAMPLES_MEDIAN_SQL, -1, &s, NULL) !=
	    SQLITE_OK)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_int(s, 2, side);
	sqlite3_bind_int64(s, 3, (n - 1) / 2);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

/* One side's summary line from the current row of the summary query. */
static int
streams_samples_side_line(FILE *fp, sqlite3 *db, int64_t id, sqlite3_stmt *s)
{
	int side = sqlite3_column_int(s, 0);
	long long n = sqlite3_column_int64(s, 1);
	long long med = streams_samples_median(db, id, side, n);

	if (med < 0)
		return -1;
	fprintf(fp,
	    "  %-11s rtt %.3f / %.3f / %.3f ms (min / median / max), "
	    "cwnd max %lld, in flight max %lld bytes, retransmits %lld\n",
	    side == 0 ? "client leg" : "origin leg",
	    (double)sqlite3_column_int64(s, 2) / 1000.0, (double)med / 1000.0,
	    (double)sqlite3_column_int64(s, 3) / 1000.0,
	    (long long)sqlite3_column_int64(s, 4),
	    (long long)sqlite3_column_int64(s, 5),
	    (long long)sqlite3_column_int64(s, 6));
	return 0;
}

int
streams_samples_summary(
    FILE *fp, sqlite3 *db, int64_t id, int capped, char *err, size_t errlen)
{
	sqlite3_stmt *s = NULL;
	long long n[2] = {0, 0};
	int rc;

	if (sqlite3_prepare_v2(db, STREAMS_SAMPLES_SUMMARY_SQL, -1, &s, NULL) !=
	    SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(s, 1, id);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		n[sqlite3_column_int(s, 0) != 0] += sqlite3_column_int64(s, 1);
	if (rc != SQLITE_DONE || sqlite3_reset(s) != SQLITE_OK)
		goto fail;
	fprintf(fp, "  %-11s %lld client, %lld origin%s\n", "tcp samples", n[0],
	    n[1],
	    capped                 ? " (capped: tcp-samples-max reached)"
		: n[0] + n[1] == 0 ? " (sampling off, or not a relayed stream)"
				   : "");
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if (streams_samples_side_line(fp, db, id, s) == -1)
			goto fail;
	if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(s);
	return 0;
fail:
	streams_samples_err(db, err, errlen);
	sqlite3_finalize(s);
	return -1;
}

/* One sample, text or CSV. */
static void
streams_samples_row(FILE *fp, sqlite3_stmt *s, int64_t t0, enum out_format fmt)
{
	double ms = (double)(sqlite3_column_int64(s, 0) - t0) / 1000.0;
	const char *side = streams_samples_side(sqlite3_column_int(s, 1));
	long long v[STREAMS_SAMPLES_NKEYS];

	for (size_t k = 0; k < STREAMS_SAMPLES_NKEYS; k++)
		v[k] = (long long)sqlite3_column_int64(s, (int)k + 2);
	if (fmt == OUT_CSV)
		fprintf(fp,
		    "%.3f,%s,%.3f,%.3f,%lld,%lld,%lld,%lld,%lld,%lld,%lld,"
		    "%lld\r\n",
		    ms, side, (double)v[0] / 1000.0, (double)v[1] / 1000.0,
		    v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9]);
	else
		fprintf(fp,
		    "  %12.3f  %-6s  %9.3f  %9.3f  %6lld  %10lld  %5lld  "
		    "%12lld\n",
		    ms, side, (double)v[0] / 1000.0, (double)v[1] / 1000.0,
		    v[2], v[4], v[6], v[8]);
}

int
streams_samples_print(FILE *fp, sqlite3 *db, int64_t id, int64_t t0,
    enum out_format fmt, char *err, size_t errlen)
{
	sqlite3_stmt *s = NULL;
	int rc, n = 0;

	if (sqlite3_prepare_v2(db, STREAMS_SAMPLES_SQL, -1, &s, NULL) !=
	    SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(s, 1, id);
	if (fmt == OUT_CSV)
		fputs(STREAMS_SAMPLES_CSV_HEADER "\r\n", fp);
	else
		fprintf(fp,
		    "\nTCP samples (ms since accept)\n"
		    "  %12s  %-6s  %9s  %9s  %6s  %10s  %5s  %12s\n",
		    "t_ms", "side", "rtt_ms", "rttvar_ms", "cwnd", "in_flight",
		    "retr", "bytes_acked");
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		streams_samples_row(fp, s, t0, fmt);
		n++;
	}
	if (rc != SQLITE_DONE)
		goto fail;
	if (fmt == OUT_TEXT && n == 0)
		fprintf(fp, "  (no samples recorded)\n");
	sqlite3_finalize(s);
	return 0;
fail:
	streams_samples_err(db, err, errlen);
	sqlite3_finalize(s);
	return -1;
}

/* The JSON object of the current sample. NULL on ENOMEM. */
static json_t *
streams_samples_obj(sqlite3_stmt *s, int64_t t0)
{
	json_t *o = json_pack("{s:f,s:I,s:s}", "t_ms",
	    (double)(sqlite3_column_int64(s, 0) - t0) / 1000.0, "t_us",
	    (json_int_t)sqlite3_column_int64(s, 0), "side",
	    streams_samples_side(sqlite3_column_int(s, 1)));

	for (size_t k = 0; o != NULL && k < STREAMS_SAMPLES_NKEYS; k++)
		if (json_object_set_new(o, streams_samples_keys[k],
			json_integer(sqlite3_column_int64(s, (int)k + 2))) ==
		    -1) {
			json_decref(o);
			return NULL;
		}
	return o;
}

json_t *
streams_samples_json(
    sqlite3 *db, int64_t id, int64_t t0, char *err, size_t errlen)
{
	sqlite3_stmt *s = NULL;
	json_t *arr = json_array();
	int rc;

	if (arr == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (sqlite3_prepare_v2(db, STREAMS_SAMPLES_SQL, -1, &s, NULL) !=
	    SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(s, 1, id);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if (json_array_append_new(arr, streams_samples_obj(s, t0)) ==
		    -1) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
	if (rc == SQLITE_DONE) {
		sqlite3_finalize(s);
		return arr;
	}
fail:
	streams_samples_err(db, err, errlen);
out:
	sqlite3_finalize(s);
	json_decref(arr);
	return NULL;
}
