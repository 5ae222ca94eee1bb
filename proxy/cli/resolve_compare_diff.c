/*
 * resolve_compare_diff: where the resolvers disagree about one domain —
 * different address sets (per type), different country sets, or a
 * resolver that was asked and gave no address while another did. Pure:
 * rows in, a verdict out.
 */
#include "proxy/cli/resolve_compare.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A resolver's share of one domain's rows. */
struct rcd_res {
	const char *name;
	int passive;           /* logged (app-dns, proxy-dns), not asked */
	int has[2];            /* an address of type A / AAAA */
	const char *status[2]; /* first status of each type */
	char cc[16][3];        /* known countries of its addresses */
	size_t ncc;
	char countries[64]; /* the same sorted and joined, "CN,SG" */
};

static int
rcd_type(const char *qtype)
{
	return qtype != NULL && strcmp(qtype, "AAAA") == 0;
}

/* The index of resolver name in r[0..*n), added when new (bounded by
 * max: later ones are folded into the last). */
static size_t
rcd_res_find(struct rcd_res *r, size_t *n, size_t max, const char *name)
{
	size_t i;

	for (i = 0; i < *n; i++)
		if (strcmp(r[i].name, name) == 0)
			return i;
	if (*n == max)
		return max - 1;
	memset(&r[*n], 0, sizeof(r[*n]));
	r[*n].name = name;
	r[*n].passive =
	    strcmp(name, RC_APP_DNS) == 0 || strcmp(name, RC_PROXY_DNS) == 0;
	return (*n)++;
}

/* Add cc to r's known countries unless it is there (or unknown). */
static void
rcd_country_add(struct rcd_res *r, const char *cc)
{
	size_t i;

	if (cc[0] == '\0')
		return;
	for (i = 0; i < r->ncc; i++)
		if (strcmp(r->cc[i], cc) == 0)
			return;
	if (r->ncc < sizeof(r->cc) / sizeof(r->cc[0]))
		snprintf(r->cc[r->ncc++], sizeof(r->cc[0]), "%s", cc);
}

static int
rcd_cc_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* r's countries sorted and joined, "CN,SG", into r->countries. */
static void
rcd_country_join(struct rcd_res *r)
{
	qsort(r->cc, r->ncc, sizeof(r->cc[0]), rcd_cc_cmp);
	r->countries[0] = '\0';
	for (size_t i = 0; i < r->ncc; i++) {
		size_t at = strlen(r->countries);

		snprintf(r->countries + at, sizeof(r->countries) - at, "%s%s",
		    i ? "," : "", r->cc[i]);
	}
}

/* Whether resolvers a and b both have addresses of type t and the two
 * sets differ. */
static int
rcd_sets_differ(
    const struct rc_row *rows, size_t n, const char *a, const char *b, int t)
{
	size_t i, j;

	for (int pass = 0; pass < 2; pass++) {
		const char *x = pass ? b : a, *y = pass ? a : b;

		for (i = 0; i < n; i++) {
			int found = 0;

			if (rows[i].ip == NULL ||
			    rcd_type(rows[i].qtype) != t ||
			    strcmp(rows[i].resolver, x) != 0)
				continue;
			for (j = 0; j < n && !found; j++)
				found = rows[j].ip != NULL &&
				    rcd_type(rows[j].qtype) == t &&
				    strcmp(rows[j].resolver, y) == 0 &&
				    strcmp(rows[j].ip, rows[i].ip) == 0;
			if (!found)
				return 1;
		}
	}
	return 0;
}

/* Append s to buf (len), ", " between parts. */
static void
rcd_cat(char *buf, size_t len, const char *s)
{
	size_t at = strlen(buf);

	if (at + 1 >= len)
		return;
	snprintf(buf + at, len - at, "%s%s", at ? ", " : "", s);
}

/* "missing: R status" parts for the resolvers asked that gave nothing
 * (or nothing of a type some resolver answered). */
static void
rcd_missing(const struct rcd_res *r, size_t nr, const int any[2],
    struct rc_verdict *v, char *out, size_t len)
{
	char part[160];
	const char *t[2] = {"A", "AAAA"};

	for (size_t i = 0; i < nr; i++) {
		const char *s0 = r[i].status[0] ? r[i].status[0] : "-";
		const char *s1 = r[i].status[1] ? r[i].status[1] : "-";

		if (r[i].passive)
			continue;
		if (!r[i].has[0] && !r[i].has[1]) {
			if (strcmp(s0, s1) == 0)
				snprintf(
				    part, sizeof(part), "%s %s", r[i].name, s0);
			else
				snprintf(part, sizeof(part), "%s A %s/AAAA %s",
				    r[i].name, s0, s1);
		} else {
			int k = !r[i].has[0] && any[0] ? 0
			    : !r[i].has[1] && any[1]   ? 1
						       : -1;
			if (k < 0)
				continue;
			snprintf(part, sizeof(part), "%s %s %s", r[i].name,
			    t[k], k ? s1 : s0);
		}
		v->flags |= RC_MISSING;
		rcd_cat(out, len, part);
	}
}

/* "CN vs SG,US": each distinct known-country set, in resolver order,
 * when there are at least two. */
static void
rcd_countries(const struct rcd_res *r, size_t nr, struct rc_verdict *v,
    char *out, size_t len)
{
	const char *seen[RC_MAX_RESOLVERS + 2];
	size_t nseen = 0, i, j;

	out[0] = '\0';
	for (i = 0; i < nr; i++) {
		if (r[i].countries[0] == '\0')
			continue;
		for (j = 0; j < nseen; j++)
			if (strcmp(seen[j], r[i].countries) == 0)
				break;
		if (j == nseen && nseen < sizeof(seen) / sizeof(seen[0]))
			seen[nseen++] = r[i].countries;
	}
	if (nseen < 2)
		return;
	v->flags |= RC_DIFF_COUNTRIES;
	snprintf(out, len, "countries");
	for (i = 0; i < nseen; i++) {
		size_t at = strlen(out);

		snprintf(out + at, len - at, "%s%s", i ? " vs " : " ", seen[i]);
	}
}

/* Whether two resolvers that both answered a type disagree on it. */
static int
rcd_addrs(
    const struct rc_row *rows, size_t n, const struct rcd_res *r, size_t nr)
{
	for (int t = 0; t < 2; t++)
		for (size_t i = 0; i < nr; i++)
			for (size_t j = i + 1; j < nr; j++)
				if (r[i].has[t] && r[j].has[t] &&
				    rcd_sets_differ(
					rows, n, r[i].name, r[j].name, t))
					return 1;
	return 0;
}

void
rc_compare(const struct rc_row *rows, size_t n, struct rc_verdict *v)
{
	struct rcd_res r[RC_MAX_RESOLVERS + 2];
	size_t nr = 0, max = sizeof(r) / sizeof(r[0]);
	char differ[256] = "", countries[200], missing[400] = "";
	int any[2] = {0, 0};

	memset(v, 0, sizeof(*v));
	for (size_t i = 0; i < n; i++) {
		size_t k = rcd_res_find(r, &nr, max, rows[i].resolver);
		int t = rcd_type(rows[i].qtype);

		if (r[k].status[t] == NULL)
			r[k].status[t] = rows[i].status;
		if (rows[i].ip == NULL)
			continue;
		r[k].has[t] = 1;
		any[t] = 1;
		rcd_country_add(&r[k], rows[i].country);
	}
	for (size_t k = 0; k < nr; k++)
		rcd_country_join(&r[k]);
	v->answered = any[0] || any[1];
	if (!v->answered) {
		snprintf(v->text, sizeof(v->text), "no answers");
		return;
	}
	if (rcd_addrs(rows, n, r, nr)) {
		v->flags |= RC_DIFF_ADDRS;
		snprintf(differ, sizeof(differ), "addresses");
	}
	rcd_countries(r, nr, v, countries, sizeof(countries));
	if (countries[0] != '\0') {
		size_t at = strlen(differ);

		snprintf(differ + at, sizeof(differ) - at, "%s%s",
		    at ? ", " : "", countries);
	}
	rcd_missing(r, nr, any, v, missing, sizeof(missing));
	if (differ[0] == '\0' && missing[0] == '\0') {
		snprintf(v->text, sizeof(v->text), "same");
		return;
	}
	snprintf(v->text, sizeof(v->text), "%s%s%s%s%s",
	    differ[0] ? "differ: " : "", differ,
	    differ[0] && missing[0] ? "; " : "", missing[0] ? "missing: " : "",
	    missing);
}

int
rc_name_ok(const char *s)
{
	unsigned char b[16];
	size_t len = strlen(s), label = 0;

	if (len == 0 || len > 253 || inet_pton(AF_INET, s, b) == 1 ||
	    inet_pton(AF_INET6, s, b) == 1 || s[0] == '.')
		return 0;
	for (const char *p = s; *p != '\0'; p++) {
		if (*p == '.') {
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
			return 0;
		if (++label > 63)
			return 0;
	}
	return 1;
}
