/* output: see output.h. */
#include "proxy/cli/output.h"

#include "proxy/geo/geo.h"
#include "proxy/http/head.h"
#include "proxy/store/db.h"

#include <ctype.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define OUT_ELLIPSIS "\xe2\x80\xa6" /* "…", one column */

struct out_table {
	size_t ncols;
	char **cells;       /* (nrows + 1) * ncols, row 0 is the header */
	unsigned char *red; /* per cell: shown in red */
	size_t nrows;       /* without the header */
	size_t cap;         /* rows allocated, header included */
	unsigned *flags;    /* per column, OUT_COL_* */
	size_t *minw;       /* per column, for OUT_COL_SHRINK */
	int *drop;          /* per column, drop rank */
};

/* What out_view_init() decided; the defaults print full cells. */
static struct {
	size_t width; /* 0: do not fit */
	int colour;
	int utc;
} out_view = {0, 0, 1};

void
out_table_free(struct out_table *t)
{
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < (t->nrows + 1) * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t->red);
	free(t->flags);
	free(t->minw);
	free(t->drop);
	free(t);
}

/* Copy n cells into the next row; the row count only grows once every
 * copy succeeded, so out_table_free never sees a half-filled row. */
static int
out_table_append(struct out_table *t, size_t row, const char *const *cells)
{
	char **c;
	unsigned char *red;
	size_t i, ncap;

	if (row + 1 > t->cap) {
		ncap = t->cap > 0 ? t->cap * 2 : 16;
		c = realloc(t->cells, ncap * t->ncols * sizeof(*c));
		if (c == NULL)
			return -1;
		t->cells = c;
		red = realloc(t->red, ncap * t->ncols);
		if (red == NULL)
			return -1;
		t->red = red;
		t->cap = ncap;
	}
	memset(t->red + row * t->ncols, 0, t->ncols);
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
	if ((t->flags = calloc(ncols, sizeof(*t->flags))) == NULL ||
	    (t->minw = calloc(ncols, sizeof(*t->minw))) == NULL ||
	    (t->drop = calloc(ncols, sizeof(*t->drop))) == NULL ||
	    out_table_append(t, 0, headers) == -1) {
		free(t->flags);
		free(t->minw);
		free(t->drop);
		free(t->red);
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
		t->flags[col] |= OUT_COL_RIGHT;
}

void
out_table_col(
    struct out_table *t, size_t col, unsigned flags, size_t minw, int drop)
{
	if (col >= t->ncols)
		return;
	if (flags & OUT_COL_URL)
		flags |= OUT_COL_SHRINK;
	t->flags[col] = flags;
	t->minw[col] = minw;
	t->drop[col] = drop;
}

void
out_table_red(struct out_table *t, size_t col)
{
	if (t->nrows > 0 && col < t->ncols)
		t->red[t->nrows * t->ncols + col] = 1;
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

/* Columns s takes on a terminal: one per UTF-8 character (continuation
 * bytes take none); control characters print as one '?'. */
static size_t
out_width(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

/* The first byte after n characters of s (or its end). */
static const char *
out_skip(const char *s, size_t n)
{
	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xc0) != 0x80 && n-- == 0)
			break;
	return s;
}

/* Where the last n characters of s start. */
static const char *
out_tail(const char *s, size_t n)
{
	size_t w = out_width(s);

	return out_skip(s, w > n ? w - n : 0);
}

/* head bytes of s, "…", then tail. NULL on ENOMEM. */
static char *
out_join(const char *s, size_t head, const char *tail)
{
	size_t tl = strlen(tail);
	char *r;

	if ((r = malloc(head + sizeof(OUT_ELLIPSIS) + tl)) == NULL)
		return NULL;
	memcpy(r, s, head);
	memcpy(r + head, OUT_ELLIPSIS, sizeof(OUT_ELLIPSIS) - 1);
	memcpy(r + head + sizeof(OUT_ELLIPSIS) - 1, tail, tl + 1);
	return r;
}

/*
 * A URL cut to w columns (w > 0, the URL wider): scheme, host and the
 * slash after them, "…", then as much of the end as fits, starting at a
 * slash when one is near: "https://api.example.com/…/v1/items?id=3".
 * When the host itself leaves no room, the middle goes.
 */
static char *
out_cut_url(const char *s, size_t w)
{
	const char *p, *slash = NULL, *tail, *q;
	size_t pw, budget;

	if ((p = strstr(s, "://")) != NULL)
		slash = strchr(p + 3, '/');
	if (slash != NULL) {
		pw = out_width(s) - out_width(slash + 1);
		if (pw + 1 + 8 <= w) {
			budget = w - pw - 1;
			tail = out_tail(slash + 1, budget);
			q = strchr(tail, '/');
			if (q != NULL && q[1] != '\0' &&
			    out_width(tail) - out_width(q) <= budget / 2)
				tail = q;
			return out_join(s, (size_t)(slash + 1 - s), tail);
		}
	}
	budget = w - 1;
	return out_join(s, (size_t)(out_skip(s, budget - budget / 2) - s),
	    out_tail(s, budget / 2));
}

/*
 * s cut to at most w columns with "…" (the tail goes; for a URL the
 * middle), or a copy when it fits. The caller frees it; NULL on ENOMEM.
 */
static char *
out_cut(const char *s, size_t w, int url)
{
	if (out_width(s) <= w)
		return strdup(s);
	if (w == 0)
		return strdup("");
	if (url)
		return out_cut_url(s, w);
	return out_join(s, (size_t)(out_skip(s, w - 1) - s), "");
}

/* The zone the header of a local time column names: " (JST)". */
static void
out_zone(char *buf, size_t len)
{
	struct tm tm;
	time_t now = time(NULL);

	buf[0] = '\0';
	if (out_view.utc || localtime_r(&now, &tm) == NULL)
		return;
	buf[0] = ' ';
	buf[1] = '(';
	if (strftime(buf + 2, len - 3, "%Z", &tm) == 0 &&
	    strftime(buf + 2, len - 3, "%z", &tm) == 0) {
		buf[0] = '\0';
		return;
	}
	strcat(buf, ")");
}

static size_t
out_total(const struct out_table *t, const size_t *w, const int *hide)
{
	size_t c, n = 0, total = 0;

	for (c = 0; c < t->ncols; c++)
		if (!hide[c]) {
			total += w[c];
			n++;
		}
	return n > 0 ? total + 2 * (n - 1) : 0;
}

/* Take a column at a time from the widest visible column above its
 * minimum until total fits width or none is left; the new total. */
static size_t
out_table_shrink(const struct out_table *t, size_t width, size_t total,
    size_t *w, const size_t *minw, const int *hide)
{
	size_t c, best;

	for (; total > width; total--) {
		for (best = t->ncols, c = 0; c < t->ncols; c++)
			if (!hide[c] && w[c] > minw[c] &&
			    (best == t->ncols || w[c] > w[best]))
				best = c;
		if (best == t->ncols)
			break;
		w[best]--;
	}
	return total;
}

/*
 * Widths that fit width columns: left-out columns first (highest drop
 * rank) while even the minimums overflow, then the widest shrinkable
 * column loses a column at a time. w holds the natural widths and hw the
 * headers' on entry; w the widths to print and hide the left-out columns
 * on return.
 */
static void
out_table_fit(const struct out_table *t, size_t width, size_t *w,
    const size_t *hw, size_t *minw, int *hide)
{
	size_t c, best, total;

	for (c = 0; c < t->ncols; c++) {
		minw[c] = w[c];
		if ((t->flags[c] & OUT_COL_SHRINK) && t->minw[c] < w[c])
			minw[c] = t->minw[c] > hw[c] ? t->minw[c] : hw[c];
	}
	while (out_total(t, minw, hide) > width) {
		for (best = t->ncols, c = 0; c < t->ncols; c++)
			if (!hide[c] && t->drop[c] > 0 &&
			    (best == t->ncols || t->drop[c] > t->drop[best]))
				best = c;
		if (best == t->ncols)
			break;
		hide[best] = 1;
	}
	total = out_total(t, w, hide);
	total = out_table_shrink(t, width, total, w, minw, hide);
	/* Still too wide with nothing left to leave out: the minimums give
	 * way, down to the headers. */
	for (c = 0; c < t->ncols; c++)
		if (t->flags[c] & OUT_COL_SHRINK)
			minw[c] = hw[c];
	out_table_shrink(t, width, total, w, minw, hide);
}

/* The SGR colour of a body cell, 0 for none. */
static int
out_table_colour(const struct out_table *t, size_t r, size_t c)
{
	const char *s = t->cells[r * t->ncols + c];

	if (t->red[r * t->ncols + c])
		return 31;
	if (!(t->flags[c] & OUT_COL_STATUS))
		return 0;
	switch (s[0]) {
	case '2':
		return 32;
	case '3':
		return 36;
	case '4':
		return 33;
	case '5':
		return 31;
	}
	return 0;
}

/* One cell: the header's name, or the text cut to width when fitting. */
static void
out_table_cell(const struct out_table *t, FILE *fp, size_t r, size_t c,
    const char *s, const char *zone)
{
	int colour;

	if (r == 0) {
		out_table_header(fp, s);
		if (t->flags[c] & OUT_COL_TIME)
			fputs(zone, fp);
		return;
	}
	colour = out_view.colour ? out_table_colour(t, r, c) : 0;
	if (colour != 0)
		fprintf(fp, "\033[%dm", colour);
	out_safe(fp, s, 0);
	if (colour != 0)
		fputs("\033[0m", fp);
}

/*
 * Row r (0: the header) at widths w (hw: the header's), columns in hide
 * left out, cells wider than their column cut. 0, or -1 on ENOMEM (the
 * line is left unfinished).
 */
static int
out_table_render_row(const struct out_table *t, FILE *fp, size_t r,
    const size_t *w, const size_t *hw, const int *hide, const char *zone)
{
	size_t c, len, pending = 0;
	const char *s;
	char *cut;

	/* Padding is owed, not written, until something follows it, so
	 * empty trailing cells leave no blanks at the line end. */
	for (c = 0; c < t->ncols; c++) {
		if (hide[c])
			continue;
		s = t->cells[r * t->ncols + c];
		cut = NULL;
		if (r > 0 && out_width(s) > w[c]) {
			if ((cut = out_cut(s, w[c],
				 (t->flags[c] & OUT_COL_URL) != 0)) == NULL)
				return -1;
			s = cut;
		}
		len = r == 0 ? hw[c] : out_width(s);
		if (t->flags[c] & OUT_COL_RIGHT)
			pending += w[c] - len;
		if (len > 0) {
			fprintf(fp, "%*s", (int)pending, "");
			pending = 0;
			out_table_cell(t, fp, r, c, s, zone);
		}
		if (!(t->flags[c] & OUT_COL_RIGHT))
			pending += w[c] - len;
		pending += 2;
		free(cut);
	}
	fputc('\n', fp);
	return 0;
}

/* The body of out_table_print: width 0 prints full cells. */
static void
out_table_render(const struct out_table *t, FILE *fp, size_t width)
{
	size_t *w, *hw, *minw, r, c, len;
	int *hide;
	char zone[64];

	w = calloc(t->ncols, sizeof(*w));
	hw = calloc(t->ncols, sizeof(*hw));
	minw = calloc(t->ncols, sizeof(*minw));
	hide = calloc(t->ncols, sizeof(*hide));
	if (w == NULL || hw == NULL || minw == NULL || hide == NULL)
		goto done;
	out_zone(zone, sizeof(zone));
	for (c = 0; c < t->ncols; c++) {
		hw[c] = out_width(t->cells[c]) +
		    (t->flags[c] & OUT_COL_TIME ? strlen(zone) : 0);
		w[c] = hw[c];
	}
	for (r = 1; r <= t->nrows; r++)
		for (c = 0; c < t->ncols; c++) {
			len = out_width(t->cells[r * t->ncols + c]);
			if (len > w[c])
				w[c] = len;
		}
	if (width > 0)
		out_table_fit(t, width, w, hw, minw, hide);
	for (r = 0; r <= t->nrows; r++)
		if (out_table_render_row(t, fp, r, w, hw, hide, zone) == -1)
			break;
done:
	free(w);
	free(hw);
	free(minw);
	free(hide);
}

void
out_table_print(const struct out_table *t, FILE *fp)
{
	out_table_render(t, fp, out_view.width);
}

void
out_view_init(int wide, int utc)
{
	struct winsize ws;
	const char *e;
	char *end;
	long n;

	out_view.utc = utc;
	out_view.width = 0;
	out_view.colour = 0;
	if (!isatty(STDOUT_FILENO))
		return;
	e = getenv("NO_COLOR");
	out_view.colour = e == NULL || e[0] == '\0';
	if (wide)
		return;
	out_view.width = 80;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		out_view.width = ws.ws_col;
	if ((e = getenv("COLUMNS")) != NULL && e[0] != '\0') {
		n = strtol(e, &end, 10);
		if (*end == '\0' && n > 0 && n < 100000)
			out_view.width = (size_t)n;
	}
}

void
out_time(int64_t us, int ms, enum out_format fmt, char *buf, size_t len)
{
	struct tm tm, now_tm;
	time_t secs = (time_t)(us / 1000000), now = time(NULL);
	char z[16], nz[16];
	size_t n;

	if (fmt != OUT_TEXT || out_view.utc) {
		out_iso_time(us, ms, buf, len);
		return;
	}
	if (us <= 0 || localtime_r(&secs, &tm) == NULL ||
	    (n = strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm)) == 0) {
		snprintf(buf, len, "-");
		return;
	}
	if (ms)
		n += (size_t)snprintf(
		    buf + n, len - n, ".%03d", (int)((us % 1000000) / 1000));
	/* The header names today's zone; a summer time in winter says so. */
	if (n < len && localtime_r(&now, &now_tm) != NULL &&
	    strftime(z, sizeof(z), "%z", &tm) > 0 &&
	    strftime(nz, sizeof(nz), "%z", &now_tm) > 0 && strcmp(z, nz) != 0)
		snprintf(buf + n, len - n, " %s", z);
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

json_t *
out_json_rows(const struct out_rows *how, struct sqlite3 *db,
    struct sqlite3_stmt *s, char *err, size_t errlen)
{
	json_t *arr;
	int rc;

	if ((arr = json_array()) == NULL)
		goto nomem;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if (json_array_append_new(arr, how->json_row(s)) == -1)
			goto nomem;
	if (rc != SQLITE_DONE) {
		snprintf(err, errlen, "query failed: %s", sqlite3_errmsg(db));
		json_decref(arr);
		return NULL;
	}
	return arr;
nomem:
	snprintf(err, errlen, "out of memory");
	json_decref(arr);
	return NULL;
}

/* The JSON form of out_print_rows. */
static int
out_print_json(
    const struct out_rows *how, struct sqlite3 *db, struct sqlite3_stmt *s)
{
	char err[512];
	json_t *arr;
	int rc;

	if ((arr = out_json_rows(how, db, s, err, sizeof(err))) == NULL) {
		fprintf(stderr, "peephole %s: %s\n", how->cmd, err);
		return -1;
	}
	rc = json_dumpf(arr, stdout, JSON_INDENT(2) | OUT_JSON_REALS);
	if (rc == 0)
		putchar('\n');
	json_decref(arr);
	return rc;
}

int
out_print_rows(const struct out_rows *how, struct sqlite3 *db,
    struct sqlite3_stmt *s, enum out_format fmt)
{
	struct out_table *t = NULL;
	int rc, nomem = 0, status = -1;

	if (fmt == OUT_JSON)
		return out_print_json(how, db, s);
	if ((t = how->table_new()) == NULL) {
		nomem = 1;
		goto fail;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (how->table_row(t, s, fmt) == -1) {
			nomem = 1;
			goto fail;
		}
	}
	if (rc != SQLITE_DONE) {
		db_warn(how->cmd, db, "query failed");
		goto fail;
	}
	if (fmt == OUT_CSV)
		out_table_print_csv(t, stdout);
	else
		out_table_print(t, stdout);
	status = 0;
fail:
	if (nomem)
		fprintf(stderr, "peephole %s: out of memory\n", how->cmd);
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
	struct head_text_iter it;
	const char *n, *v;
	size_t nl, vl;
	char *name, *val;

	if (h == NULL)
		return json_null();
	if ((a = json_array()) == NULL)
		return NULL;
	head_text_init(&it, h);
	while (head_text_next(&it, &n, &nl, &v, &vl)) {
		name = strndup(n, nl);
		val = strndup(v, vl);
		json_array_append_new(a,
		    json_pack("{s:o,s:o}", "name", out_json_str(name), "value",
			out_json_str(val)));
		free(name);
		free(val);
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

void
out_json_geo(json_t *o, const struct geo_info *gi)
{
	json_object_set_new(o, "country",
	    gi->country[0] != '\0' ? json_string(gi->country) : json_null());
	json_object_set_new(
	    o, "asn", gi->asn != 0 ? json_integer(gi->asn) : json_null());
	json_object_set_new(
	    o, "org", gi->org[0] != '\0' ? out_json_str(gi->org) : json_null());
	json_object_set_new(o, "scope", out_json_str(gi->scope));
}
