/* head: see head.h. */
#include "proxy/http/head.h"

#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void
head_init(struct head *h, size_t limit)
{
	memset(h, 0, sizeof(*h));
	h->limit = limit;
}

void
head_reset(struct head *h)
{
	h->len = 0;
	h->target_off = h->target_len = 0;
	h->nfields = 0;
	h->last = 0;
}

void
head_free(struct head *h)
{
	free(h->buf);
	free(h->fields);
	memset(h, 0, sizeof(*h));
}

static int
head_reserve(struct head *h, size_t add)
{
	size_t want = h->len + add, ncap;
	char *nb;

	if (want > h->limit)
		return -1;
	if (want <= h->cap)
		return 0;
	ncap = h->cap ? h->cap : 1024;
	while (ncap < want)
		ncap *= 2;
	if (ncap > h->limit)
		ncap = h->limit;
	nb = realloc(h->buf, ncap);
	if (nb == NULL)
		return -1;
	h->buf = nb;
	h->cap = ncap;
	return 0;
}

int
head_append(struct head *h, enum head_part part, const char *at, size_t len)
{
	struct head_field *f;

	if (head_reserve(h, len) == -1)
		return -1;
	if (part == HEAD_PART_FIELD && h->last != HEAD_PART_FIELD) {
		if (h->nfields == h->fieldcap) {
			int ncap = h->fieldcap ? h->fieldcap * 2 : 32;
			struct head_field *nf =
			    realloc(h->fields, (size_t)ncap * sizeof(*nf));
			if (nf == NULL)
				return -1;
			h->fields = nf;
			h->fieldcap = ncap;
		}
		f = &h->fields[h->nfields++];
		f->name_off = (uint32_t)h->len;
		f->name_len = 0;
		f->value_off = f->value_len = 0;
	}
	if (part == HEAD_PART_VALUE && h->last != HEAD_PART_VALUE) {
		if (h->nfields == 0)
			return -1; /* llhttp never sends a value first */
		h->fields[h->nfields - 1].value_off = (uint32_t)h->len;
	}
	if (part == HEAD_PART_TARGET && h->last != HEAD_PART_TARGET)
		h->target_off = (uint32_t)h->len;
	memcpy(h->buf + h->len, at, len);
	h->len += len;
	switch (part) {
	case HEAD_PART_TARGET:
		h->target_len += (uint32_t)len;
		break;
	case HEAD_PART_FIELD:
		h->fields[h->nfields - 1].name_len += (uint32_t)len;
		break;
	case HEAD_PART_VALUE:
		h->fields[h->nfields - 1].value_len += (uint32_t)len;
		break;
	}
	h->last = part;
	return 0;
}

const char *
head_target(const struct head *h, size_t *len)
{
	*len = h->target_len;
	return h->buf ? h->buf + h->target_off : "";
}

int
head_name_is(const struct head *h, int i, const char *name)
{
	const struct head_field *f = &h->fields[i];

	return strlen(name) == f->name_len &&
	    strncasecmp(h->buf + f->name_off, name, f->name_len) == 0;
}

int
head_find(const struct head *h, const char *name, int start)
{
	for (int i = start; i < h->nfields; i++)
		if (head_name_is(h, i, name))
			return i;
	return -1;
}

char *
head_value_dup(const struct head *h, int i)
{
	const struct head_field *f = &h->fields[i];
	char *s = malloc((size_t)f->value_len + 1);

	if (s == NULL)
		return NULL;
	memcpy(s, h->buf + f->value_off, f->value_len);
	s[f->value_len] = '\0';
	return s;
}

/* 1 if the comma-separated list val (n bytes) holds tok (tok_len bytes). */
static int
head_list_has(const char *val, size_t n, const char *tok, size_t tok_len)
{
	size_t i = 0;

	while (i < n) {
		while (
		    i < n && (val[i] == ' ' || val[i] == '\t' || val[i] == ','))
			i++;
		size_t s = i;
		while (i < n && val[i] != ',')
			i++;
		size_t e = i;
		while (e > s && (val[e - 1] == ' ' || val[e - 1] == '\t'))
			e--;
		if (e - s == tok_len && strncasecmp(val + s, tok, tok_len) == 0)
			return 1;
	}
	return 0;
}

int
head_has_token(const struct head *h, const char *name, const char *tok)
{
	for (int i = head_find(h, name, 0); i != -1;
	     i = head_find(h, name, i + 1)) {
		const struct head_field *f = &h->fields[i];
		if (head_list_has(
			h->buf + f->value_off, f->value_len, tok, strlen(tok)))
			return 1;
	}
	return 0;
}

int
head_connection_names(const struct head *h, const char *name, size_t nlen)
{
	for (int c = head_find(h, "connection", 0); c != -1;
	     c = head_find(h, "connection", c + 1)) {
		const struct head_field *cf = &h->fields[c];
		if (head_list_has(
			h->buf + cf->value_off, cf->value_len, name, nlen))
			return 1;
	}
	return 0;
}

/* The length of the line at p (up to and including its LF), or 0. */
static size_t
head_line_len(const char *p, size_t left)
{
	const char *lf = memchr(p, '\n', left);

	return lf == NULL ? 0 : (size_t)(lf - p) + 1;
}

/* Split a header line into name and trimmed value (CR/LF excluded). */
static void
head_line_split(const char *p, size_t n, struct head_line *l)
{
	const char *colon = memchr(p, ':', n);
	size_t e = n;

	while (e > 0 && (p[e - 1] == '\n' || p[e - 1] == '\r'))
		e--;
	l->name = p;
	l->nlen = colon ? (size_t)(colon - p) : e;
	l->value = colon ? colon + 1 : p + e;
	l->vlen = colon ? e - l->nlen - 1 : 0;
	while (l->vlen > 0 && (*l->value == ' ' || *l->value == '\t')) {
		l->value++;
		l->vlen--;
	}
	while (l->vlen > 0 &&
	    (l->value[l->vlen - 1] == ' ' || l->value[l->vlen - 1] == '\t'))
		l->vlen--;
}

int
head_copy_raw(struct evbuffer *out, const char *raw, size_t len,
    const char *start, size_t start_len, head_line_fn fn, void *arg,
    const char *extra)
{
	size_t off = 0, n = head_line_len(raw, len);
	enum head_verdict last = HEAD_KEEP;

	if (n == 0)
		return -1;
	/* the start line, replaced or as received */
	if (start != NULL) {
		if (evbuffer_add(out, start, start_len) == -1 ||
		    evbuffer_add(out, "\r\n", 2) == -1)
			return -1;
	} else if (evbuffer_add(out, raw, n) == -1)
		return -1;
	for (off = n; off < len; off += n) {
		struct head_line l;
		const char *p = raw + off;
		n = head_line_len(p, len - off);
		if (n == 0)
			return -1;
		if (p[0] == '\r' || p[0] == '\n') {
			/* the blank line ends the head */
			if (extra != NULL &&
			    evbuffer_add(out, extra, strlen(extra)) == -1)
				return -1;
			return evbuffer_add(out, p, len - off);
		}
		/* an obs-fold continuation shares its field's fate */
		if (p[0] != ' ' && p[0] != '\t') {
			memset(&l, 0, sizeof(l));
			head_line_split(p, n, &l);
			last = fn != NULL ? fn(&l, arg) : HEAD_KEEP;
			if (last == HEAD_REPLACE &&
			    (evbuffer_add(out, l.name, l.nlen) == -1 ||
				evbuffer_add_printf(
				    out, ": %s\r\n", l.replace) < 0))
				return -1;
		}
		if (last == HEAD_KEEP && evbuffer_add(out, p, n) == -1)
			return -1;
	}
	return -1; /* no blank line: not a complete head */
}

char *
head_fields_text(const struct head *h)
{
	size_t n = 1;
	char *s, *p;

	for (int i = 0; i < h->nfields; i++)
		n += h->fields[i].name_len + h->fields[i].value_len + 4;
	s = malloc(n);
	if (s == NULL)
		return NULL;
	p = s;
	for (int i = 0; i < h->nfields; i++) {
		const struct head_field *f = &h->fields[i];
		memcpy(p, h->buf + f->name_off, f->name_len);
		p += f->name_len;
		memcpy(p, ": ", 2);
		p += 2;
		memcpy(p, h->buf + f->value_off, f->value_len);
		p += f->value_len;
		memcpy(p, "\r\n", 2);
		p += 2;
	}
	*p = '\0';
	return s;
}

void
head_text_init(struct head_text_iter *it, const char *headers)
{
	it->p = headers;
	it->line = NULL;
	it->len = 0;
}

/* Past the line break at p, if any: "\r\n", "\n" or a lone "\r". */
static const char *
head_text_past_break(const char *p)
{
	if (*p == '\r')
		p++;
	if (*p == '\n')
		p++;
	return p;
}

/* Whitespace around a logged value: OWS, and the line breaks of a fold. */
static int
head_text_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The colon that ends a field's name: the first one, except that an
 * HTTP/2 pseudo-header (":method: GET", a colon then a token) keeps its
 * leading colon in the name. ": x" stays a field with an empty name, as
 * before. NULL for a colon-less line. */
static const char *
head_text_colon(const char *line, const char *end)
{
	const char *second;

	if (*line == ':' && end - line > 1 && !head_text_ws(line[1]) &&
	    line[1] != ':' &&
	    (second = memchr(line + 1, ':', (size_t)(end - line - 1))) != NULL)
		return second;
	return memchr(line, ':', (size_t)(end - line));
}

int
head_text_pseudo(const char *name, size_t n)
{
	return n > 1 && name[0] == ':';
}

int
head_text_next(struct head_text_iter *it, const char **name, size_t *nlen,
    const char **value, size_t *vlen)
{
	const char *p = it->p, *line, *end, *colon, *v;

	while (p != NULL && *p != '\0') {
		line = p;
		end = p + strcspn(p, "\r\n");
		p = head_text_past_break(end);
		/* a continuation without its field, a blank or colon-less
		 * line: not a field */
		if (*line == ' ' || *line == '\t' ||
		    (colon = head_text_colon(line, end)) == NULL)
			continue;
		/* obs-fold: the lines that start with SP or HT are this
		 * field's */
		while (*p == ' ' || *p == '\t') {
			end = p + strcspn(p, "\r\n");
			p = head_text_past_break(end);
		}
		it->p = p;
		it->line = line;
		it->len = (size_t)(end - line);
		for (v = colon + 1; v < end && head_text_ws(*v); v++)
			;
		while (end > v && head_text_ws(end[-1]))
			end--;
		if (name != NULL)
			*name = line;
		if (nlen != NULL)
			*nlen = (size_t)(colon - line);
		if (value != NULL)
			*value = v;
		if (vlen != NULL)
			*vlen = (size_t)(end - v);
		return 1;
	}
	it->p = p;
	return 0;
}

char *
head_text_line(const struct head_text_iter *it)
{
	const char *p = it->line, *end = it->line + it->len;
	char *s = malloc(it->len + 1), *o = s;

	if (s == NULL)
		return NULL;
	while (p < end)
		if (*p == '\r' || *p == '\n') {
			/* a fold: its line break and the whitespace after it
			 * become one SP */
			while (p < end && head_text_ws(*p))
				p++;
			*o++ = ' ';
		} else
			*o++ = *p++;
	*o = '\0';
	return s;
}

const char *
head_text_find(const char *headers, const char *name, size_t *vlen)
{
	struct head_text_iter it;
	const char *n, *v;
	size_t nl, vl, want = strlen(name);

	head_text_init(&it, headers);
	while (head_text_next(&it, &n, &nl, &v, &vl))
		if (nl == want && strncasecmp(n, name, nl) == 0) {
			if (vlen != NULL)
				*vlen = vl;
			return v;
		}
	return NULL;
}

int
head_text_is_hop(const char *name, size_t n, const char *headers)
{
	static const char *const hop[] = {"connection", "proxy-connection",
	    "keep-alive", "te", "trailer", "transfer-encoding", "upgrade",
	    "proxy-authenticate", "proxy-authorization"};
	struct head_text_iter it;
	const char *fn, *v;
	size_t fl, vl;

	if (n == 0)
		return 0; /* an empty token is no field name */
	for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
		if (strlen(hop[i]) == n && strncasecmp(hop[i], name, n) == 0)
			return 1;
	/* the tokens of every Connection line */
	head_text_init(&it, headers);
	while (head_text_next(&it, &fn, &fl, &v, &vl))
		if (fl == 10 && strncasecmp(fn, "connection", 10) == 0 &&
		    head_list_has(v, vl, name, n))
			return 1;
	return 0;
}
