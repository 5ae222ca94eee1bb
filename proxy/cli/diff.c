/* diff: see diff.h. */
#include "proxy/cli/diff.h"
#include "proxy/http/head.h"

#include <ctype.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DIFF_RED "\033[31m"
#define DIFF_GREEN "\033[32m"
#define DIFF_CYAN "\033[36m"
#define DIFF_RESET "\033[0m"
/* A JSON value printed in a text line is cut here. */
#define DIFF_VALUE_MAX 200

struct diff_line {
	const char *s;
	size_t len;
};

/* Split text into at most max lines (without their "\n" or "\r\n").
 * Returns the malloc'd array (count in *n), NULL on ENOMEM; *more set when
 * lines were left over. */
static struct diff_line *
diff_split(const char *t, size_t len, size_t max, size_t *n, int *more)
{
	struct diff_line *l = malloc((max + 1) * sizeof(*l));
	size_t i = 0, k = 0;

	*n = 0;
	if (l == NULL)
		return NULL;
	while (k < len) {
		const char *nl = memchr(t + k, '\n', len - k);
		size_t e = nl ? (size_t)(nl - t) : len;
		if (i == max) {
			*more = 1;
			break;
		}
		l[i].s = t + k;
		l[i].len = e - k;
		if (l[i].len > 0 && l[i].s[l[i].len - 1] == '\r')
			l[i].len--;
		i++;
		k = nl ? e + 1 : len;
	}
	*n = i;
	return l;
}

static int
diff_line_eq(const struct diff_line *x, const struct diff_line *y)
{
	return x->len == y->len && memcmp(x->s, y->s, x->len) == 0;
}

static void
diff_push(struct diff_edit *e, size_t *n, enum diff_op op,
    const struct diff_line *l, size_t ai, size_t bi)
{
	e[*n].op = op;
	e[*n].s = l->s;
	e[*n].len = l->len;
	e[*n].ai = ai;
	e[*n].bi = bi;
	(*n)++;
}

/*
 * The LCS table of a[0..ma) and b[0..mb), (ma + 1) x (mb + 1): L[i][j] is
 * the length of the longest common subsequence of a from i and b from j.
 * malloc'd; NULL on ENOMEM.
 */
static uint16_t *
diff_lcs(
    const struct diff_line *a, size_t ma, const struct diff_line *b, size_t mb)
{
	uint16_t *L = calloc((ma + 1) * (mb + 1), sizeof(*L));
	size_t i, j;

	if (L == NULL)
		return NULL;
	for (i = ma; i-- > 0;)
		for (j = mb; j-- > 0;) {
			uint16_t *c = &L[i * (mb + 1) + j];
			if (diff_line_eq(&a[i], &b[j]))
				*c = L[(i + 1) * (mb + 1) + j + 1] + 1;
			else {
				uint16_t d = L[(i + 1) * (mb + 1) + j];
				uint16_t r = L[i * (mb + 1) + j + 1];
				*c = d >= r ? d : r;
			}
		}
	return L;
}

/* The edits between the common prefix (pre lines) and suffix, along the
 * LCS table L of the ma and mb lines in between, appended to e at *k. */
static void
diff_walk(struct diff_edit *e, size_t *k, const struct diff_line *la,
    const struct diff_line *lb, size_t pre, size_t ma, size_t mb,
    const uint16_t *L)
{
	size_t i = 0, j = 0;

	while (i < ma || j < mb) {
		if (i < ma && j < mb &&
		    diff_line_eq(&la[pre + i], &lb[pre + j])) {
			diff_push(
			    e, k, DIFF_SAME, &la[pre + i], pre + i, pre + j);
			i++;
			j++;
		} else if (j == mb ||
		    (i < ma &&
			L[(i + 1) * (mb + 1) + j] >= L[i * (mb + 1) + j + 1])) {
			diff_push(
			    e, k, DIFF_DEL, &la[pre + i], pre + i, pre + j);
			i++;
		} else {
			diff_push(
			    e, k, DIFF_ADD, &lb[pre + j], pre + i, pre + j);
			j++;
		}
	}
}

/*
 * LCS over the part between the common prefix and suffix, a table of
 * uint16_t (max_lines is at most 65535): DIFF_MAX_LINES costs 8 MB at
 * worst, once.
 */
struct diff_edit *
diff_lines(const char *a, size_t alen, const char *b, size_t blen,
    size_t max_lines, size_t *n, int *truncated)
{
	struct diff_line *la = NULL, *lb = NULL;
	struct diff_edit *e = NULL;
	uint16_t *L = NULL;
	size_t na, nb, pre = 0, suf = 0, ma, mb, k = 0, i;

	*n = 0;
	*truncated = 0;
	if (max_lines > 65535)
		max_lines = 65535;
	if ((la = diff_split(a, alen, max_lines, &na, truncated)) == NULL ||
	    (lb = diff_split(b, blen, max_lines, &nb, truncated)) == NULL ||
	    (e = malloc((na + nb + 1) * sizeof(*e))) == NULL)
		goto fail;
	while (pre < na && pre < nb && diff_line_eq(&la[pre], &lb[pre]))
		pre++;
	while (suf < na - pre && suf < nb - pre &&
	    diff_line_eq(&la[na - 1 - suf], &lb[nb - 1 - suf]))
		suf++;
	ma = na - pre - suf;
	mb = nb - pre - suf;
	if ((L = diff_lcs(la + pre, ma, lb + pre, mb)) == NULL)
		goto fail;
	for (i = 0; i < pre; i++)
		diff_push(e, &k, DIFF_SAME, &la[i], i, i);
	diff_walk(e, &k, la, lb, pre, ma, mb, L);
	for (i = 0; i < suf; i++)
		diff_push(e, &k, DIFF_SAME, &la[na - suf + i], na - suf + i,
		    nb - suf + i);
	*n = k;
	free(L);
	free(la);
	free(lb);
	return e;
fail:
	free(L);
	free(la);
	free(lb);
	free(e);
	return NULL;
}

char *
diff_unified(const struct diff_edit *e, size_t n, size_t ctx)
{
	char *out = NULL;
	size_t outlen = 0, i = 0;
	FILE *f = open_memstream(&out, &outlen);

	if (f == NULL)
		return NULL;
	while (i < n) {
		size_t k = i, last, end, start, ac = 0, bc = 0;
		while (k < n && e[k].op == DIFF_SAME)
			k++;
		if (k == n)
			break;
		start = k - i > ctx ? k - ctx : i;
		last = k;
		for (size_t m = k + 1; m < n; m++) {
			if (e[m].op != DIFF_SAME)
				last = m;
			else if (m - last > 2 * ctx)
				break;
		}
		end = last + ctx + 1 < n ? last + ctx + 1 : n;
		for (size_t m = start; m < end; m++) {
			ac += e[m].op != DIFF_ADD;
			bc += e[m].op != DIFF_DEL;
		}
		fprintf(f, "@@ -%zu,%zu +%zu,%zu @@\n",
		    e[start].ai + (ac ? 1 : 0), ac, e[start].bi + (bc ? 1 : 0),
		    bc);
		for (size_t m = start; m < end; m++)
			fprintf(f, "%c%.*s\n",
			    e[m].op == DIFF_SAME      ? ' '
				: e[m].op == DIFF_DEL ? '-'
						      : '+',
			    (int)e[m].len, e[m].s);
		i = end;
	}
	if (fclose(f) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

/* ---- JSON ---- */

/* Append key to path as .key, or ["key"] when it is not an identifier. */
static int
diff_path_key(char *path, size_t cap, size_t len, const char *key)
{
	int plain = key[0] != '\0' && !isdigit((unsigned char)key[0]);
	int w;

	for (const char *p = key; *p && plain; p++)
		plain = isalnum((unsigned char)*p) || *p == '_';
	if (plain)
		w = snprintf(path + len, cap - len, ".%s", key);
	else {
		json_t *s = json_string(key);
		char *q = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
		w = snprintf(path + len, cap - len, "[%s]", q ? q : "\"?\"");
		free(q);
		json_decref(s);
	}
	return w < 0 || (size_t)w >= cap - len ? -1 : w;
}

static void
diff_change(json_t *changes, size_t max, size_t *count, const char *path,
    const json_t *a, const json_t *b)
{
	json_t *c;

	if ((*count)++ >= max || (c = json_object()) == NULL)
		return;
	json_object_set_new(c, "path", json_string(path));
	json_object_set_new(c, "op",
	    json_string(a == NULL ? "added"
		    : b == NULL   ? "removed"
				  : "changed"));
	if (a != NULL)
		json_object_set(c, "original", (json_t *)(uintptr_t)a);
	if (b != NULL)
		json_object_set(c, "replay", (json_t *)(uintptr_t)b);
	json_array_append_new(changes, c);
}

static void
diff_json_at(const json_t *a, const json_t *b, char *path, size_t cap,
    size_t len, json_t *changes, size_t max, size_t *count)
{
	if (json_equal((json_t *)(uintptr_t)a, (json_t *)(uintptr_t)b))
		return;
	if (json_is_object(a) && json_is_object(b)) {
		const char *key;
		json_t *va;
		json_object_foreach((json_t *)(uintptr_t)a, key, va)
		{
			json_t *vb = json_object_get(b, key);
			int w = diff_path_key(path, cap, len, key);
			if (w < 0) {
				/* too deep to name: the whole value */
				path[len] = '\0';
				diff_change(changes, max, count, path, a, b);
				return;
			}
			if (vb == NULL)
				diff_change(
				    changes, max, count, path, va, NULL);
			else
				diff_json_at(va, vb, path, cap, len + (size_t)w,
				    changes, max, count);
			path[len] = '\0';
		}
		json_object_foreach((json_t *)(uintptr_t)b, key, va)
		{
			if (json_object_get(a, key) != NULL)
				continue;
			if (diff_path_key(path, cap, len, key) >= 0)
				diff_change(
				    changes, max, count, path, NULL, va);
			path[len] = '\0';
		}
		return;
	}
	if (json_is_array(a) && json_is_array(b)) {
		size_t na = json_array_size(a), nb = json_array_size(b);
		for (size_t i = 0; i < na || i < nb; i++) {
			int w = snprintf(path + len, cap - len, "[%zu]", i);
			if (w < 0 || (size_t)w >= cap - len) {
				path[len] = '\0';
				diff_change(changes, max, count, path, a, b);
				return;
			}
			if (i >= nb)
				diff_change(changes, max, count, path,
				    json_array_get(a, i), NULL);
			else if (i >= na)
				diff_change(changes, max, count, path, NULL,
				    json_array_get(b, i));
			else
				diff_json_at(json_array_get(a, i),
				    json_array_get(b, i), path, cap,
				    len + (size_t)w, changes, max, count);
			path[len] = '\0';
		}
		return;
	}
	diff_change(changes, max, count, path, a, b);
}

size_t
diff_json(const json_t *a, const json_t *b, json_t *changes, size_t max)
{
	char path[1024] = "$";
	size_t count = 0;

	diff_json_at(a, b, path, sizeof(path), 1, changes, max, &count);
	return count;
}

/* ---- headers ---- */

/* A JSON string of s[0..n): as it is when it is UTF-8, else with every
 * byte outside ASCII as '?' (a header or a body cut mid-character). */
static json_t *
diff_jstr(const char *s, size_t n)
{
	json_t *j = json_stringn(s, n);
	char *c;

	if (j != NULL || (c = malloc(n + 1)) == NULL)
		return j;
	for (size_t i = 0; i < n; i++)
		c[i] = (unsigned char)s[i] < 0x80 && s[i] != 0 ? s[i] : '?';
	j = json_stringn(c, n);
	free(c);
	return j;
}

/*
 * The end-to-end fields of head h as an object: lower-cased name -> {
 * "name": as first written, "value": values joined with ", " }, in order.
 */
static json_t *
diff_fields(const char *h)
{
	json_t *o = json_object();
	struct head_text_iter it;
	const char *fn, *v;
	size_t nl, vl;

	if (o == NULL)
		return NULL;
	head_text_init(&it, h);
	while (head_text_next(&it, &fn, &nl, &v, &vl)) {
		/* pseudo-headers: an HTTP/2 original against its HTTP/1.1
		 * replay would differ in every one */
		if (nl > 0 && !head_text_pseudo(fn, nl) &&
		    !head_text_is_hop(fn, nl, h)) {
			char *name = strndup(fn, nl), *lc = strndup(fn, nl);
			for (char *c = lc; c && *c; c++)
				*c = (char)tolower((unsigned char)*c);
			if (name != NULL && lc != NULL) {
				json_t *f = json_object_get(o, lc);
				json_t *nv = diff_jstr(v, vl);
				if (f == NULL)
					json_object_set_new(o, lc,
					    json_pack("{s:s,s:o}", "name", name,
						"value", nv));
				else {
					const char *old = json_string_value(
					    json_object_get(f, "value"));
					json_t *j = json_sprintf("%s, %s",
					    old ? old : "",
					    json_string_value(nv));
					json_object_set_new(f, "value", j);
					json_decref(nv);
				}
			}
			free(name);
			free(lc);
		}
	}
	return o;
}

json_t *
diff_headers(const char *a, const char *b)
{
	json_t *fa = diff_fields(a), *fb = diff_fields(b);
	json_t *add = json_array(), *rm = json_array(), *ch = json_array();
	json_t *out = NULL, *f;
	const char *k;

	if (fa == NULL || fb == NULL || add == NULL || rm == NULL || ch == NULL)
		goto done;
	json_object_foreach(fa, k, f)
	{
		json_t *g = json_object_get(fb, k);
		if (g == NULL)
			json_array_append(rm, f);
		else if (!json_equal(json_object_get(f, "value"),
			     json_object_get(g, "value")))
			json_array_append_new(ch,
			    json_pack("{s:O,s:O,s:O}", "name",
				json_object_get(f, "name"), "original",
				json_object_get(f, "value"), "replay",
				json_object_get(g, "value")));
	}
	json_object_foreach(fb, k, f)
	{
		if (json_object_get(fa, k) == NULL)
			json_array_append(add, f);
	}
	out = json_pack(
	    "{s:O,s:O,s:O}", "added", add, "removed", rm, "changed", ch);
done:
	json_decref(fa);
	json_decref(fb);
	json_decref(add);
	json_decref(rm);
	json_decref(ch);
	return out;
}

/* ---- bodies ---- */

int
diff_is_text(const unsigned char *d, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = d[i];
		size_t k;
		if (c == 0)
			return 0;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			k = 1;
		else if (c >= 0xe0 && c <= 0xef)
			k = 2;
		else if (c >= 0xf0 && c <= 0xf4)
			k = 3;
		else
			return 0;
		if (i + k >= len) {
			/* cut off at the end: fine if what is there fits */
			for (size_t m = i + 1; m < len; m++)
				if ((d[m] & 0xc0) != 0x80)
					return 0;
			return 1;
		}
		for (size_t m = 1; m <= k; m++)
			if ((d[i + m] & 0xc0) != 0x80)
				return 0;
		i += k + 1;
	}
	return 1;
}

static json_t *
diff_side(const unsigned char *d, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	char hex[2 * EVP_MAX_MD_SIZE + 1] = "";

	if (EVP_Digest(d, len, md, &mdlen, EVP_sha256(), NULL) == 1)
		for (unsigned i = 0; i < mdlen; i++)
			snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return json_pack("{s:I,s:s}", "size", (json_int_t)len, "sha256", hex);
}

json_t *
diff_bodies(
    const unsigned char *a, size_t alen, const unsigned char *b, size_t blen)
{
	int same = alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
	json_t *ja = NULL, *jb = NULL, *out = NULL;

	if (alen > 0 && blen > 0 &&
	    (ja = json_loadb((const char *)a, alen, JSON_DECODE_ANY, NULL)) !=
		NULL &&
	    (jb = json_loadb((const char *)b, blen, JSON_DECODE_ANY, NULL)) !=
		NULL) {
		json_t *changes = json_array();
		size_t count = diff_json(ja, jb, changes, DIFF_MAX_CHANGES);
		out = json_pack("{s:s,s:b,s:I,s:o}", "kind", "json", "same",
		    count == 0, "count", (json_int_t)count, "changes", changes);
	} else if (diff_is_text(a, alen) && diff_is_text(b, blen)) {
		size_t n = 0;
		int truncated = 0;
		struct diff_edit *e = diff_lines((const char *)a, alen,
		    (const char *)b, blen, DIFF_MAX_LINES, &n, &truncated);
		char *u = e ? diff_unified(e, n, DIFF_CONTEXT) : NULL;
		if (u != NULL)
			out = json_pack("{s:s,s:b,s:o,s:b,s:i}", "kind", "text",
			    "same", same, "unified", diff_jstr(u, strlen(u)),
			    "truncated", truncated, "max_lines",
			    DIFF_MAX_LINES);
		free(u);
		free(e);
	} else
		out = json_pack("{s:s,s:b,s:o,s:o}", "kind", "binary", "same",
		    same, "original", diff_side(a, alen), "replay",
		    diff_side(b, blen));
	json_decref(ja);
	json_decref(jb);
	return out;
}

/* ---- printing ---- */

static void
diff_value(FILE *f, const json_t *v)
{
	char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);

	if (s == NULL)
		return;
	if (strlen(s) > DIFF_VALUE_MAX)
		fprintf(f, "%.*s...", DIFF_VALUE_MAX, s);
	else
		fputs(s, f);
	free(s);
}

static void
diff_colour_on(FILE *f, int colour, const char *c)
{
	if (colour)
		fputs(c, f);
}

static void
diff_print_headers(FILE *f, const json_t *h, int colour)
{
	const json_t *x;
	size_t i;

	json_array_foreach(json_object_get(h, "removed"), i, x)
	{
		diff_colour_on(f, colour, DIFF_RED);
		fprintf(f, "    - %s: %s",
		    json_string_value(json_object_get(x, "name")),
		    json_string_value(json_object_get(x, "value")));
		diff_colour_on(f, colour, DIFF_RESET);
		fputc('\n', f);
	}
	json_array_foreach(json_object_get(h, "added"), i, x)
	{
		diff_colour_on(f, colour, DIFF_GREEN);
		fprintf(f, "    + %s: %s",
		    json_string_value(json_object_get(x, "name")),
		    json_string_value(json_object_get(x, "value")));
		diff_colour_on(f, colour, DIFF_RESET);
		fputc('\n', f);
	}
	json_array_foreach(json_object_get(h, "changed"), i, x)
	{
		fprintf(f, "    ~ %s: ",
		    json_string_value(json_object_get(x, "name")));
		diff_colour_on(f, colour, DIFF_RED);
		fputs(json_string_value(json_object_get(x, "original")), f);
		diff_colour_on(f, colour, DIFF_RESET);
		fputs(" -> ", f);
		diff_colour_on(f, colour, DIFF_GREEN);
		fputs(json_string_value(json_object_get(x, "replay")), f);
		diff_colour_on(f, colour, DIFF_RESET);
		fputc('\n', f);
	}
}

static void
diff_print_json(FILE *f, const json_t *b, int colour)
{
	const json_t *x;
	size_t i;
	json_int_t count = json_integer_value(json_object_get(b, "count"));

	json_array_foreach(json_object_get(b, "changes"), i, x)
	{
		const char *op = json_string_value(json_object_get(x, "op"));
		const char *path =
		    json_string_value(json_object_get(x, "path"));
		if (strcmp(op, "changed") == 0) {
			fprintf(f, "    %s: ", path);
			diff_colour_on(f, colour, DIFF_RED);
			diff_value(f, json_object_get(x, "original"));
			diff_colour_on(f, colour, DIFF_RESET);
			fputs(" -> ", f);
			diff_colour_on(f, colour, DIFF_GREEN);
			diff_value(f, json_object_get(x, "replay"));
		} else {
			int add = strcmp(op, "added") == 0;
			diff_colour_on(f, colour, add ? DIFF_GREEN : DIFF_RED);
			fprintf(f, "    %c %s: ", add ? '+' : '-', path);
			diff_value(
			    f, json_object_get(x, add ? "replay" : "original"));
		}
		diff_colour_on(f, colour, DIFF_RESET);
		fputc('\n', f);
	}
	if ((size_t)count > json_array_size(json_object_get(b, "changes")))
		fprintf(f, "    ... %lld changes in all, the first %zu shown\n",
		    (long long)count,
		    json_array_size(json_object_get(b, "changes")));
}

static void
diff_print_text(FILE *f, const json_t *b, int colour)
{
	const char *u = json_string_value(json_object_get(b, "unified"));

	while (u != NULL && *u) {
		size_t n = strcspn(u, "\n");
		const char *c = *u == '-' ? DIFF_RED
		    : *u == '+'           ? DIFF_GREEN
		    : *u == '@'           ? DIFF_CYAN
					  : NULL;
		fputs("    ", f);
		if (c != NULL)
			diff_colour_on(f, colour, c);
		fwrite(u, 1, n, f);
		if (c != NULL)
			diff_colour_on(f, colour, DIFF_RESET);
		fputc('\n', f);
		u += n;
		if (*u == '\n')
			u++;
	}
	if (json_is_true(json_object_get(b, "truncated")))
		fprintf(f,
		    "    (only the first %d lines of each body compared)\n",
		    DIFF_MAX_LINES);
}

/* The status line: same, or original -> replay with their reasons. */
static void
diff_print_status(FILE *f, const json_t *s, int colour)
{
	if (json_is_true(json_object_get(s, "same")))
		fprintf(f, "  status: same (%lld)\n",
		    (long long)json_integer_value(
			json_object_get(s, "original")));
	else {
		fputs("  status: ", f);
		diff_colour_on(f, colour, DIFF_RED);
		fprintf(f, "%lld %s",
		    (long long)json_integer_value(
			json_object_get(s, "original")),
		    json_string_value(json_object_get(s, "original_reason"))
			? json_string_value(
			      json_object_get(s, "original_reason"))
			: "");
		diff_colour_on(f, colour, DIFF_RESET);
		fputs(" -> ", f);
		diff_colour_on(f, colour, DIFF_GREEN);
		fprintf(f, "%lld %s",
		    (long long)json_integer_value(json_object_get(s, "replay")),
		    json_string_value(json_object_get(s, "replay_reason"))
			? json_string_value(json_object_get(s, "replay_reason"))
			: "");
		diff_colour_on(f, colour, DIFF_RESET);
		fputc('\n', f);
	}
}

/* Bodies compared as bytes: each one's size and SHA-256, the original's
 * line "-" in red, the replay's "+" in green. */
static void
diff_print_binary(FILE *f, const json_t *b, int colour)
{
	static const char *const key[2] = {"original", "replay"};
	static const char *const hue[2] = {DIFF_RED, DIFF_GREEN};

	for (int i = 0; i < 2; i++) {
		const json_t *side = json_object_get(b, key[i]);
		diff_colour_on(f, colour, hue[i]);
		fprintf(f, "    %c %lld bytes sha256 %s", i == 0 ? '-' : '+',
		    (long long)json_integer_value(
			json_object_get(side, "size")),
		    json_string_value(json_object_get(side, "sha256")));
		diff_colour_on(f, colour, DIFF_RESET);
		fputc('\n', f);
	}
}

void
diff_print(FILE *f, const json_t *diff, int colour)
{
	const json_t *s = json_object_get(diff, "status");
	const json_t *h = json_object_get(diff, "headers");
	const json_t *b = json_object_get(diff, "body");
	const char *kind = json_string_value(json_object_get(b, "kind"));
	const char *note;
	size_t nh;

	diff_print_status(f, s, colour);
	nh = json_array_size(json_object_get(h, "added")) +
	    json_array_size(json_object_get(h, "removed")) +
	    json_array_size(json_object_get(h, "changed"));
	if (nh == 0)
		fputs("  headers: same\n", f);
	else {
		fputs("  headers:\n", f);
		diff_print_headers(f, h, colour);
	}
	if (b == NULL || kind == NULL) {
		note = json_string_value(json_object_get(diff, "body_note"));
		fprintf(f, "  body: %s\n", note ? note : "not compared");
		return;
	}
	note = json_string_value(json_object_get(b, "note"));
	fprintf(f, "  body (%s%s%s): %s\n", kind, note ? "; " : "",
	    note ? note : "",
	    json_is_true(json_object_get(b, "same")) ? "same" : "differs");
	if (json_is_true(json_object_get(b, "same")))
		return;
	if (strcmp(kind, "json") == 0)
		diff_print_json(f, b, colour);
	else if (strcmp(kind, "text") == 0)
		diff_print_text(f, b, colour);
	else
		diff_print_binary(f, b, colour);
}
