/* output: see output.h. */
#include "cli/output.h"

#include "cli/db.h"

#include <ctype.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct out_table {
	size_t ncols;
	char **cells; /* (nrows + 1) * ncols, row 0 is the header */
	size_t nrows; /* without the header */
	size_t cap;   /* rows allocated, header included */
	int *right;   /* per column */
};

void
out_table_free(struct out_table *t)
{
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < (t->nrows + 1) * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t->right);
	free(t);
}

/* Copy n cells into the next row; the row count only grows once every
 * copy succeeded, so out_table_free never sees a half-filled row. */
static int
out_table_append(struct out_table *t, size_t row, const char *const *cells)
{
	char **c;
	size_t i, ncap;

	if (row + 1 > t->cap) {
		ncap = t->cap > 0 ? t->cap * 2 : 16;
		c = realloc(t->cells, ncap * t->ncols * sizeof(*c));
		if (c == NULL)
			return -1;
		t->cells = c;
		t->cap = ncap;
	}
	c = t->cells + row * t->ncols;
	for (i = 0; i < t->ncols; i++) {
		c[i] = strdup(cells[i] != NULL ? cells[i] : "");
		if (c[i] == NULL) {
			while (i-- > 0)
				free(c[i]);
			return -1;
		}
	}
	return 0;
}

struct out_table *
out_table_new(size_t ncols, const char *const *headers)
{
	struct out_table *t;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	t->ncols = ncols;
	if ((t->right = calloc(ncols, sizeof(*t->right))) == NULL ||
	    out_table_append(t, 0, headers) == -1) {
		free(t->right);
		free(t->cells);
		free(t);
		return NULL;
	}
	return t;
}

void
out_table_align_right(struct out_table *t, size_t col)
{
	if (col < t->ncols)
		t->right[col] = 1;
}

int
out_table_add(struct out_table *t, const char *const *cells)
{
	if (out_table_append(t, t->nrows + 1, cells) == -1)
		return -1;
	t->nrows++;
	return 0;
}

/* Headers are named for programs ("first_seen", the CSV header); people
 * get "FIRST SEEN". */
static void
out_table_header(FILE *fp, const char *s)
{
	for (; *s != '\0'; s++)
		fputc(*s == '_' ? ' ' : toupper((unsigned char)*s), fp);
}

void
out_table_print(const struct out_table *t, FILE *fp)
{
	size_t *w, r, c, len, pending;
	const char *s;

	if ((w = calloc(t->ncols, sizeof(*w))) == NULL)
		return;
	for (r = 0; r <= t->nrows; r++)
		for (c = 0; c < t->ncols; c++) {
			len = strlen(t->cells[r * t->ncols + c]);
			if (len > w[c])
				w[c] = len;
		}
	for (r = 0; r <= t->nrows; r++) {
		/* Padding is owed, not written, until something follows it,
		 * so empty trailing cells leave no blanks at the line end. */
		pending = 0;
		for (c = 0; c < t->ncols; c++) {
			s = t->cells[r * t->ncols + c];
			len = strlen(s);
			if (t->right[c])
				pending += w[c] - len;
			if (len > 0) {
				fprintf(fp, "%*s", (int)pending, "");
				pending = 0;
				if (r == 0)
					out_table_header(fp, s);
				else
					out_safe(fp, s, 0);
			}
			if (!t->right[c])
				pending += w[c] - len;
			pending += 2;
		}
		fputc('\n', fp);
	}
	free(w);
}

void
out_csv_field(FILE *fp, const char *s)
{
	if (s == NULL)
		return;
	if (strpbrk(s, ",\"\r\n") == NULL) {
		fputs(s, fp);
		return;
	}
	fputc('"', fp);
	for (; *s != '\0'; s++) {
		if (*s == '"')
			fputc('"', fp);
		fputc(*s, fp);
	}
	fputc('"', fp);
}

void
out_table_print_csv(const struct out_table *t, FILE *fp)
{
	size_t r, c;

	for (r = 0; r <= t->nrows; r++) {
		for (c = 0; c < t->ncols; c++) {
			if (c > 0)
				fputc(',', fp);
			out_csv_field(fp, t->cells[r * t->ncols + c]);
		}
		fputs("\r\n", fp);
	}
}

void
out_iso_time(int64_t us, int ms, char *buf, size_t len)
{
	struct tm tm;
	time_t secs;
	size_t n;

	secs = (time_t)(us / 1000000);
	if (us <= 0 || gmtime_r(&secs, &tm) == NULL ||
	    (n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm)) == 0) {
		snprintf(buf, len, "-");
		return;
	}
	if (ms)
		snprintf(
		    buf + n, len - n, ".%03dZ", (int)((us % 1000000) / 1000));
	else
		snprintf(buf + n, len - n, "Z");
}

void
out_size(uint64_t n, char *buf, size_t len)
{
	static const char units[] = "KMGTPE";
	double v = (double)n;
	size_t u = 0;

	if (n < 10000) {
		snprintf(buf, len, "%llu", (unsigned long long)n);
		return;
	}
	v /= 1024;
	while (v >= 1024 && u + 1 < sizeof(units) - 1) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, "%.1f%c", v, units[u]);
}

void
out_safe(FILE *fp, const char *s, int keep_nl)
{
	unsigned char ch;

	if (s == NULL)
		return;
	for (; *s != '\0'; s++) {
		ch = (unsigned char)*s;
		if ((ch < 0x20 && !(keep_nl && (ch == '\n' || ch == '\t'))) ||
		    ch == 0x7f)
			ch = '?';
		fputc(ch, fp);
	}
}

json_t *
out_json_str(const char *s)
{
	json_t *j;
	char *copy, *p;

	if (s == NULL)
		return json_null();
	if ((j = json_string(s)) != NULL)
		return j;
	/* Not UTF-8: keep the ASCII, mark the rest. */
	if ((copy = strdup(s)) == NULL)
		return NULL;
	for (p = copy; *p != '\0'; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	j = json_string(copy);
	free(copy);
	return j;
}

json_t *
out_json_row(sqlite3_stmt *s)
{
	json_t *o, *v;
	int i;

	if ((o = json_object()) == NULL)
		return NULL;
	for (i = 0; i < sqlite3_column_count(s); i++) {
		switch (sqlite3_column_type(s, i)) {
		case SQLITE_INTEGER:
			v = json_integer(sqlite3_column_int64(s, i));
			break;
		case SQLITE_FLOAT:
			v = json_real(sqlite3_column_double(s, i));
			break;
		case SQLITE_NULL:
			v = json_null();
			break;
		default:
			v = out_json_str(
			    (const char *)sqlite3_column_text(s, i));
		}
		json_object_set_new(o, sqlite3_column_name(s, i), v);
	}
	return o;
}

int
out_print_rows(const struct out_rows *how, struct sqlite3 *db,
    struct sqlite3_stmt *s, enum out_format fmt)
{
	struct out_table *t = NULL;
	json_t *arr = NULL;
	int rc, nomem = 0, status = -1;

	if (fmt == OUT_JSON ? (arr = json_array()) == NULL
			    : (t = how->table_new()) == NULL) {
		nomem = 1;
		goto fail;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (arr != NULL
			? json_array_append_new(arr, how->json_row(s)) == -1
			: how->table_row(t, s, fmt) == -1) {
			nomem = 1;
			goto fail;
		}
	}
	if (rc != SQLITE_DONE) {
		db_warn(how->cmd, db, "query failed");
		goto fail;
	}
	if (arr != NULL) {
		if (json_dumpf(arr, stdout, JSON_INDENT(2) | OUT_JSON_REALS) ==
		    -1)
			goto fail;
		putchar('\n');
	} else if (fmt == OUT_CSV)
		out_table_print_csv(t, stdout);
	else
		out_table_print(t, stdout);
	status = 0;
fail:
	if (nomem)
		fprintf(stderr, "peephole %s: out of memory\n", how->cmd);
	json_decref(arr);
	out_table_free(t);
	return status;
}

/* Text if it has no NUL and nearly every byte is printable, white space
 * or part of a UTF-8 sequence; compressed and image bodies fail this. */
int
out_is_text(const unsigned char *p, size_t len)
{
	size_t i, odd = 0;

	for (i = 0; i < len; i++) {
		if (p[i] == '\0')
			return 0;
		if (p[i] < 0x20 && p[i] != '\n' && p[i] != '\r' && p[i] != '\t')
			odd++;
	}
	return odd * 20 <= len;
}

/* Headers as [{"name": .., "value": ..}], in order (names repeat). */
json_t *
out_json_headers(const char *h)
{
	json_t *a;
	const char *end, *colon, *v;
	char *name, *val;

	if (h == NULL)
		return json_null();
	if ((a = json_array()) == NULL)
		return NULL;
	while (*h != '\0') {
		end = h + strcspn(h, "\r\n");
		colon = memchr(h, ':', (size_t)(end - h));
		if (colon != NULL) {
			for (v = colon + 1;
			     v < end && (*v == ' ' || *v == '\t'); v++)
				;
			name = strndup(h, (size_t)(colon - h));
			val = strndup(v, (size_t)(end - v));
			json_array_append_new(a,
			    json_pack("{s:o,s:o}", "name", out_json_str(name),
				"value", out_json_str(val)));
			free(name);
			free(val);
		}
		h = end + strspn(end, "\r\n");
	}
	return a;
}

int
out_col(sqlite3_stmt *s, const char *name)
{
	int i, n = sqlite3_column_count(s);

	for (i = 0; i < n; i++)
		if (strcmp(sqlite3_column_name(s, i), name) == 0)
			return i;
	return -1;
}

const char *
out_col_text(sqlite3_stmt *s, const char *name)
{
	int i = out_col(s, name);

	return i < 0 ? NULL : (const char *)sqlite3_column_text(s, i);
}

int64_t
out_col_int(sqlite3_stmt *s, const char *name)
{
	int i = out_col(s, name);

	return i < 0 ? 0 : sqlite3_column_int64(s, i);
}

int
out_col_null(sqlite3_stmt *s, const char *name)
{
	int i = out_col(s, name);

	return i < 0 || sqlite3_column_type(s, i) == SQLITE_NULL;
}
