/*
 * output: how the read-side commands print — aligned text tables, RFC 4180
 * CSV, ISO-8601 times, human sizes, and terminal-safe text. Captured
 * traffic is attacker-controlled, so every string from the database goes
 * through out_safe() before it reaches a terminal.
 */
#ifndef PEEPHOLE_CLI_OUTPUT_H
#define PEEPHOLE_CLI_OUTPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct out_table;
struct sqlite3;
struct sqlite3_stmt;
struct json_t;

/* What a command prints: a table for people, or data for programs. */
enum out_format {
	OUT_TEXT = 0,
	OUT_JSON,
	OUT_CSV,
};

/*
 * Flags for every json_dump of the read side. jansson prints reals with 17
 * significant digits, so 2.61 ms came out as 2.6099999999999999; 12 digits
 * hold every µs-resolution duration exactly and print 2.61.
 */
#define OUT_JSON_REALS JSON_REAL_PRECISION(12)

/* A table with ncols columns named by headers (copied): snake_case names,
 * used as they are in CSV and as "FIRST SEEN" in text. NULL on ENOMEM. */
struct out_table *out_table_new(size_t ncols, const char *const *headers)
    __attribute__((warn_unused_result));
void out_table_free(struct out_table *t);

/* Right-align column col in the text form (for numbers). */
void out_table_align_right(struct out_table *t, size_t col);

/*
 * How a text column behaves on a terminal. Columns without OUT_COL_SHRINK
 * (numbers, ids, status, times) are never cut.
 */
#define OUT_COL_RIGHT 0x01  /* right-aligned */
#define OUT_COL_SHRINK 0x02 /* may be cut with "…", down to minw columns */
/* cut in the middle, keeping scheme+host and the end of the path;
 * implies OUT_COL_SHRINK */
#define OUT_COL_URL 0x04
#define OUT_COL_TIME 0x08   /* local times: the header names the zone */
#define OUT_COL_STATUS 0x10 /* HTTP status, coloured by class */

/*
 * Set column col's flags (OUT_COL_*), the width it may shrink to, and its
 * drop rank: when even the minimum widths overflow the terminal, columns
 * with the highest rank are left out first (0: never).
 */
void out_table_col(
    struct out_table *t, size_t col, unsigned flags, size_t minw, int drop);

/* Show cell col of the last row added in red (an error). */
void out_table_red(struct out_table *t, size_t col);

/*
 * How tables are shown, from the command line and stdout: fitted to the
 * terminal (TIOCGWINSZ, COLUMNS overriding, 80 if unknown) unless wide is
 * set or stdout is not a terminal; coloured on a terminal unless NO_COLOR
 * is set; times local unless utc is set. Call once after parsing.
 */
void out_view_init(int wide, int utc);

/*
 * A time cell for fmt: ISO-8601 UTC (see out_iso_time) for JSON, CSV and
 * --utc; else local, "2026-12-06 14:03:07.123", with the UTC offset added
 * when it differs from today's (the header names today's zone).
 */
void out_time(int64_t us, int ms, enum out_format fmt, char *buf, size_t len);

/* Append a row of ncols cells (copied; NULL prints as empty). 0 / -1. */
int out_table_add(struct out_table *t, const char *const *cells)
    __attribute__((warn_unused_result));

/* Columns padded to their widest cell, two spaces apart, control
 * characters replaced; fitted and coloured as out_view_init() decided. */
void out_table_print(const struct out_table *t, FILE *fp);

/* Header row then one record per row, CRLF line ends, fields quoted when
 * they hold a comma, quote, CR or LF (RFC 4180). */
void out_table_print_csv(const struct out_table *t, FILE *fp);

/* One CSV field, quoted as needed. */
void out_csv_field(FILE *fp, const char *s);

/*
 * Format us (µs since the epoch) as ISO-8601 UTC, "2024-05-01T12:00:00Z",
 * with milliseconds when ms is set. "-" when us is 0 or negative.
 */
void out_iso_time(int64_t us, int ms, char *buf, size_t len);

/* Byte counts for people: exact below 10000, else "12.3K", "4.5M", ... */
void out_size(uint64_t n, char *buf, size_t len);

/* Write s with control characters (and DEL) shown as '?'; when keep_nl is
 * set, newlines and tabs are kept. NULL writes nothing. */
void out_safe(FILE *fp, const char *s, int keep_nl);

/*
 * A JSON value for s: a string, JSON null when s is NULL. Captured bytes
 * need not be UTF-8, which jansson refuses, so invalid bytes become '?'
 * rather than losing the field. NULL only on ENOMEM.
 */
struct json_t *out_json_str(const char *s);

/* Every column of a statement's current row as a JSON object, under the
 * column's name and with its SQL type (NULL stays null). NULL on ENOMEM. */
struct sqlite3_stmt;
struct json_t *out_json_row(struct sqlite3_stmt *s);

/* Text if it has no NUL and nearly every byte is printable, white space
 * or part of a UTF-8 sequence; compressed and image bodies fail this. */
int out_is_text(const unsigned char *p, size_t len);

/* "Name: value\r\n" header lines as stored, as a JSON array of
 * {"name", "value"} objects; JSON null for NULL. NULL on ENOMEM. */
struct json_t *out_json_headers(const char *h);

/* Where an address is (proxy/geo/geo.h) as the keys "country", "asn",
 * "org" and "scope" of object o, each null when unknown. */
struct geo_info;
void out_json_geo(struct json_t *o, const struct geo_info *gi);

/* Column of the current row by name: its index (-1 if absent), text
 * (NULL for SQL NULL or absent), integer (0) and whether it is NULL (or
 * absent). For "SELECT *" rows read by name. */
int out_col(struct sqlite3_stmt *s, const char *name);
const char *out_col_text(struct sqlite3_stmt *s, const char *name);
int64_t out_col_int(struct sqlite3_stmt *s, const char *name);
int out_col_null(struct sqlite3_stmt *s, const char *name);

/* How one command turns a result row into output. */
struct out_rows {
	const char *cmd; /* for messages: "domains" */
	struct out_table *(*table_new)(void);
	struct json_t *(*json_row)(struct sqlite3_stmt *s);
	int (*table_row)(
	    struct out_table *t, struct sqlite3_stmt *s, enum out_format fmt);
};

/*
 * Step s to the end, each row through how->json_row, into a new JSON
 * array (the caller's reference). NULL with a message in err ("query
 * failed: ...", "out of memory"); nothing printed. s is not finalized.
 */
struct json_t *out_json_rows(const struct out_rows *how, struct sqlite3 *db,
    struct sqlite3_stmt *s, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Step s to the end and print every row as fmt on stdout: a JSON array,
 * CSV or an aligned table. Returns 0, or -1 after a message on stderr (a
 * failed query or ENOMEM). s is not finalized.
 */
int out_print_rows(const struct out_rows *how, struct sqlite3 *db,
    struct sqlite3_stmt *s, enum out_format fmt)
    __attribute__((warn_unused_result));

#endif
