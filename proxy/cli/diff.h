/*
 * diff: how an original exchange and its replay differ, for `replay
 * --diff`. Pure functions, no I/O but the printer: a line diff (LCS over at
 * most DIFF_MAX_LINES lines a side, rendered as unified hunks), a
 * structural JSON diff that names each change by its path ($.a.b[3]), the
 * end-to-end response headers compared by name, and the three put together
 * into one JSON object that both --json and the text printer use.
 */
#ifndef PEEPHOLE_CLI_DIFF_H
#define PEEPHOLE_CLI_DIFF_H

#include <stddef.h>
#include <stdio.h>

struct json_t;

/* Lines compared at most per side; a longer body is compared up to here
 * and says so. */
#define DIFF_MAX_LINES 2000
/* JSON changes listed at most; more are counted, not listed. */
#define DIFF_MAX_CHANGES 500
/* Context lines around a change in a unified hunk. */
#define DIFF_CONTEXT 3

enum diff_op { DIFF_SAME, DIFF_DEL, DIFF_ADD };

/* One line of a line diff; s points into the caller's text. ai / bi: the
 * lines of a and b before this one. */
struct diff_edit {
	enum diff_op op;
	const char *s;
	size_t len;
	size_t ai, bi;
};

/*
 * The edit script from a[0..alen) to b[0..blen), by lines (a shortest one:
 * LCS). Only the first max_lines lines of each side are compared;
 * *truncated is set when either had more. Returns a malloc'd array of *n
 * edits pointing into a and b (never NULL but on ENOMEM, also when *n is
 * 0); the caller frees it.
 */
struct diff_edit *diff_lines(const char *a, size_t alen, const char *b,
    size_t blen, size_t max_lines, size_t *n, int *truncated);

/*
 * The edits as unified hunks ("@@ -1,3 +1,4 @@", then " ", "-", "+"
 * lines) with ctx lines of context, malloc'd and NUL-terminated; "" when
 * nothing changed; NULL on ENOMEM.
 */
char *diff_unified(const struct diff_edit *e, size_t n, size_t ctx);

/*
 * Append to changes (a JSON array) one object per difference between a
 * and b: {"path": "$.x[1].y", "op": "changed"|"added"|"removed",
 * "original": v, "replay": v} (only the sides that exist), at most max
 * objects. Returns the number of differences found, listed or not.
 */
size_t diff_json(const struct json_t *a, const struct json_t *b,
    struct json_t *changes, size_t max);

/*
 * The end-to-end fields of two stored heads ("Name: value\r\n" lines)
 * compared by name (case-insensitive, repeated fields joined with ", "),
 * hop-by-hop ones ignored: {"added": [{"name", "value"}], "removed": [...],
 * "changed": [{"name", "original", "replay"}]}. A new reference; NULL on
 * ENOMEM.
 */
struct json_t *diff_headers(const char *a, const char *b);

/*
 * Two decoded bodies compared: {"kind": "json"|"text"|"binary", "same":
 * bool, ...}: JSON ones (both parse) with "changes" and "count", text
 * ones with "unified" and "truncated", binary ones with the "size" and
 * "sha256" of each side. A new reference; NULL on ENOMEM.
 */
struct json_t *diff_bodies(
    const unsigned char *a, size_t alen, const unsigned char *b, size_t blen);

/* Whether data looks like text: no NUL, valid UTF-8 (a sequence cut off
 * at the very end allowed: bodies may be truncated). */
int diff_is_text(const unsigned char *data, size_t len);

/*
 * Print a diff object as built by replay (keys "status", "headers",
 * "body") to f, each line indented by two spaces; colour: red for what
 * the original had, green for what the replay has.
 */
void diff_print(FILE *f, const struct json_t *diff, int colour);

#endif
