/*
 * locality_fold: grouping the facts of `peephole locality` into report
 * rows (see locality.h). The facts are sorted by the row key and folded
 * in one pass; distinct addresses are counted with a stamp per address
 * rather than a set, so a fold is O(n log n) whatever the grouping.
 */
#include "proxy/cli/locality.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A fact as one grouping sees it: its key, then the name inside it. */
struct loc_item {
	const char *k1;
	const char *k2;
	int k3;
	const struct loc_fact *f;
};

/* Whether two items belong to the same row. */
static int
loc_item_same(const struct loc_item *x, const struct loc_item *y)
{
	return strcmp(x->k1, y->k1) == 0 && strcmp(x->k2, y->k2) == 0 &&
	    x->k3 == y->k3;
}

static int
loc_item_cmp(const void *a, const void *b)
{
	const struct loc_item *x = a, *y = b;
	int c;

	if ((c = strcmp(x->k1, y->k1)) != 0 || (c = strcmp(x->k2, y->k2)) != 0)
		return c;
	if (x->k3 != y->k3)
		return x->k3 < y->k3 ? -1 : 1;
	return strcmp(x->f->name, y->f->name);
}

int
loc_set_add(struct loc_set *set, const char *s)
{
	for (size_t i = 0; i < set->n; i++)
		if (strcmp(set->v[i], s) == 0)
			return 0;
	if (set->n == LOC_SET_MAX) {
		set->more = 1;
		return 0;
	}
	if ((set->v[set->n] = strdup(s)) == NULL)
		return -1;
	set->n++;
	return 0;
}

int
loc_set_add_list(struct loc_set *set, const char *list)
{
	char buf[256], *p, *tok, *save = NULL;

	snprintf(buf, sizeof(buf), "%s", list);
	for (p = buf; (tok = strtok_r(p, ",", &save)) != NULL; p = NULL)
		if (loc_set_add(set, tok) == -1)
			return -1;
	return 0;
}

void
loc_set_free(struct loc_set *set)
{
	for (size_t i = 0; i < set->n; i++)
		free(set->v[i]);
	memset(set, 0, sizeof(*set));
}

void
loc_set_join(const struct loc_set *s, char *buf, size_t len)
{
	size_t off = 0;

	if (len == 0)
		return;
	buf[0] = '\0';
	if (s->n == 0) {
		snprintf(buf, len, "-");
		return;
	}
	for (size_t i = 0; i < s->n && off < len; i++)
		off += (size_t)snprintf(
		    buf + off, len - off, "%s%s", i ? "," : "", s->v[i]);
	if (s->more && off < len)
		snprintf(buf + off, len - off, ",…");
}

/* The items of `by` over d's facts (LOC_BY_LEFT: those that left). */
static struct loc_item *
loc_items(const struct loc_data *d, enum loc_by by, size_t *n)
{
	struct loc_item *it = calloc(d->nfacts + 1, sizeof(*it));
	size_t i, k = 0;

	if (it == NULL)
		return NULL;
	for (i = 0; i < d->nfacts; i++) {
		const struct loc_fact *f = &d->facts[i];
		const struct loc_addr *a = &d->addrs[f->addr];
		struct loc_item *x = &it[k];

		x->f = f;
		x->k2 = "";
		if (by == LOC_BY_COUNTRY)
			x->k1 = a->country;
		else if (by == LOC_BY_ASN)
			x->k1 = a->asn;
		else if (by == LOC_BY_DOMAIN) {
			x->k1 = f->name;
			x->k3 = (int)f->asked;
		} else if (a->where == LOC_LEFT) {
			x->k1 = a->country;
			x->k2 = a->asn;
		} else
			continue;
		k++;
	}
	if (k > 1)
		qsort(it, k, sizeof(*it), loc_item_cmp);
	*n = k;
	return it;
}

/* Fold one fact into row r of `by`; stamp marks this row's addresses. */
static int
loc_row_add(struct loc_data *d, enum loc_by by, struct loc_row *r,
    const struct loc_fact *f, unsigned stamp)
{
	struct loc_addr *a = &d->addrs[f->addr];

	if (f->split == 0)
		r->conns += f->conns;
	else if (d->splits[f->split - 1] != stamp) {
		d->splits[f->split - 1] = stamp; /* once per row */
		r->conns++;
	}
	r->up += f->up;
	r->down += f->down;
	if (a->where == LOC_LEFT)
		r->left += f->up + f->down;
	if (f->addr != 0 && a->stamp != stamp) {
		a->stamp = stamp;
		r->addrs++;
	}
	if (r->org[0] == '\0' && a->gi.org[0] != '\0')
		snprintf(r->org, sizeof(r->org), "%s", a->gi.org);
	if (by == LOC_BY_DOMAIN && loc_set_add(&r->how, f->how) == -1)
		return -1;
	if ((by == LOC_BY_DOMAIN || by == LOC_BY_ASN) &&
	    loc_set_add(&r->countries, a->country) == -1)
		return -1;
	if (by == LOC_BY_DOMAIN && loc_set_add(&r->asns, a->asn) == -1)
		return -1;
	return 0;
}

/* Start a row for item x. 0 / -1. */
static int
loc_row_start(
    const struct loc_data *d, struct loc_row *r, const struct loc_item *x)
{
	const struct loc_addr *a = &d->addrs[x->f->addr];

	memset(r, 0, sizeof(*r));
	if ((r->key = strdup(x->k2[0] != '\0' ? x->k2 : x->k1)) == NULL)
		return -1;
	snprintf(r->country, sizeof(r->country), "%s", a->country);
	r->where = a->where;
	r->asked = (enum loc_asked)x->k3;
	return 0;
}

static int
loc_rows_grow(struct loc_rows *out, size_t *cap)
{
	void *p;
	size_t c;

	if (out->n < *cap)
		return 0;
	c = *cap == 0 ? 32 : *cap * 2;
	if ((p = realloc(out->v, c * sizeof(*out->v))) == NULL)
		return -1;
	out->v = p;
	*cap = c;
	return 0;
}

/* One row per run of equal keys in the sorted items. 0 / -1. */
static int
loc_fold_items(struct loc_data *d, enum loc_by by, const struct loc_item *it,
    size_t n, struct loc_rows *out, size_t *cap)
{
	struct loc_row *r = NULL;
	const char *last_name = NULL;
	unsigned stamp = 0;

	for (size_t i = 0; i < n; i++) {
		if (i == 0 || !loc_item_same(&it[i], &it[i - 1])) {
			if (loc_rows_grow(out, cap) == -1)
				return -1;
			r = &out->v[out->n];
			if (loc_row_start(d, r, &it[i]) == -1)
				return -1;
			out->n++;
			stamp++;
			last_name = NULL;
		}
		if (last_name == NULL || strcmp(last_name, it[i].f->name) != 0)
			r->domains++;
		last_name = it[i].f->name;
		if (loc_row_add(d, by, r, it[i].f, stamp) == -1)
			return -1;
	}
	return 0;
}

static int
loc_row_key_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct loc_row *)elem)->key);
}

/* Fold answer a into row r: where its name resolved and how it was
 * learned. 0 / -1. */
static int
loc_row_answer(
    const struct loc_data *d, struct loc_row *r, const struct loc_answer *a)
{
	const struct loc_addr *ad = &d->addrs[a->addr];

	if (r->nanswers < LOC_SET_MAX)
		r->answers[r->nanswers++] = (size_t)(a - d->answers);
	else
		r->more_answers = 1;
	if (loc_set_add(&r->countries, ad->country) == -1 ||
	    loc_set_add(&r->asns, ad->asn) == -1 ||
	    loc_set_add_list(&r->learned, a->sources) == -1)
		return -1;
	return 0;
}

/*
 * By domain: each answer joins the rows of its name (the first n0 rows,
 * sorted by name), or starts a row of its own, a name known only from
 * DNS. 0 / -1.
 */
static int
loc_fold_answers(struct loc_data *d, struct loc_rows *out, size_t *cap)
{
	size_t n0 = out->n, i, j;
	struct loc_row *r;

	for (i = 0; i < d->nanswers; i++) {
		const char *name = d->answers[i].name;

		r = n0 == 0 ? NULL
			    : bsearch(name, out->v, n0, sizeof(*out->v),
				  loc_row_key_cmp);
		if (r != NULL) {
			while (r > out->v && strcmp(r[-1].key, name) == 0)
				r--;
			for (; r < out->v + n0 && strcmp(r->key, name) == 0;
			     r++)
				if (loc_row_answer(d, r, &d->answers[i]) == -1)
					return -1;
			continue;
		}
		if (out->n == n0 || strcmp(out->v[out->n - 1].key, name) != 0) {
			if (loc_rows_grow(out, cap) == -1)
				return -1;
			r = &out->v[out->n];
			memset(r, 0, sizeof(*r));
			r->asked = LOC_ASKED_NONE;
			if ((r->key = strdup(name)) == NULL)
				return -1;
			out->n++;
		}
		j = out->n - 1;
		if (loc_row_answer(d, &out->v[j], &d->answers[i]) == -1)
			return -1;
	}
	return 0;
}

/* Most bytes first, then most connections, then by key. */
static int
loc_row_cmp(const void *a, const void *b)
{
	const struct loc_row *x = a, *y = b;
	uint64_t bx = x->up + x->down, by = y->up + y->down;
	int c;

	if (bx != by)
		return bx > by ? -1 : 1;
	if (x->conns != y->conns)
		return x->conns > y->conns ? -1 : 1;
	if ((c = strcmp(x->key, y->key)) != 0 ||
	    (c = strcmp(x->country, y->country)) != 0)
		return c;
	return (int)x->asked - (int)y->asked;
}

int
loc_fold(struct loc_data *d, enum loc_by by, struct loc_rows *out)
{
	struct loc_item *it;
	size_t n = 0, cap = 0, i;
	int rc;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < d->naddrs; i++)
		d->addrs[i].stamp = 0;
	for (i = 0; i < d->nsplits; i++)
		d->splits[i] = 0;
	if ((it = loc_items(d, by, &n)) == NULL)
		return -1;
	rc = loc_fold_items(d, by, it, n, out, &cap);
	free(it);
	if (rc == 0 && by == LOC_BY_DOMAIN)
		rc = loc_fold_answers(d, out, &cap);
	if (rc == -1)
		return -1;
	if (out->n > 1) /* qsort wants a non-NULL base even for 0 */
		qsort(out->v, out->n, sizeof(*out->v), loc_row_cmp);
	return 0;
}

void
loc_rows_free(struct loc_rows *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->v[i].key);
		loc_set_free(&r->v[i].how);
		loc_set_free(&r->v[i].countries);
		loc_set_free(&r->v[i].asns);
		loc_set_free(&r->v[i].learned);
	}
	free(r->v);
	memset(r, 0, sizeof(*r));
}
