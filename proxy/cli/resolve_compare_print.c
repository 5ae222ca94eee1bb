/*
 * resolve_compare_print: a stored run of `peephole resolve-compare` on
 * stdout — read back from resolver_answers one domain at a time, each
 * address looked up in the geo data (so a run printed again after
 * `peephole geo update` shows the newer data), compared, and printed as
 * a table, CSV or JSON.
 */
#include "proxy/cli/resolve_compare.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca/ca.h"
#include "proxy/cli/cli.h"
#include "proxy/cli/output.h"
#include "proxy/geo/geo.h"
#include "proxy/store/db.h"

/* Text merges the scope into the country cell; CSV keeps it apart. */
#define RCP_NCOLS 11
#define RCP_NCOLS_TEXT 10

/* One stored answer, with the strings it owns and its geo answer. */
struct rcp_ans {
	char *resolver, *qtype, *ip, *status;
	int64_t ttl; /* -1: NULL */
	struct geo_info gi;
};

/* One domain's answers while it is compared and printed. */
struct rcp_dom {
	char *name;
	struct rcp_ans *a;
	size_t n, cap;
};

/* What printing a run builds and counts. */
struct rcp_out {
	const struct rc_print_opts *o;
	struct geo *geo;
	struct out_table *t;
	json_t *domains;
	char **lines; /* text: "domain  verdict" of each that differs */
	size_t nlines, ndom, ndiffer, naddrs, ncountries, nmissing, nnone;
	size_t nanswers;
	int64_t t_us; /* the run's latest answer */
};

static void
rcp_dom_clear(struct rcp_dom *d)
{
	for (size_t i = 0; i < d->n; i++) {
		free(d->a[i].resolver);
		free(d->a[i].qtype);
		free(d->a[i].ip);
		free(d->a[i].status);
	}
	free(d->name);
	d->name = NULL;
	d->n = 0;
}

static char *
rcp_dup(sqlite3_stmt *s, int col)
{
	const unsigned char *t = sqlite3_column_text(s, col);

	return t != NULL ? strdup((const char *)t) : NULL;
}

/* Append the current row (domain, resolver, qtype, ip, ttl, status) to
 * d, looking its address up. 0 / -1 on ENOMEM. */
static int
rcp_dom_add(struct rcp_dom *d, sqlite3_stmt *s, const struct geo *g)
{
	struct rcp_ans *a;

	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 16;
		struct rcp_ans *v = realloc(d->a, cap * sizeof(*v));

		if (v == NULL)
			return -1;
		d->a = v;
		d->cap = cap;
	}
	a = &d->a[d->n];
	memset(a, 0, sizeof(*a));
	a->resolver = rcp_dup(s, 1);
	a->qtype = rcp_dup(s, 2);
	a->ip = rcp_dup(s, 3);
	a->ttl = sqlite3_column_type(s, 4) == SQLITE_NULL
	    ? -1
	    : sqlite3_column_int64(s, 4);
	a->status = rcp_dup(s, 5);
	d->n++;
	if (a->resolver == NULL || a->qtype == NULL || a->status == NULL ||
	    (a->ip == NULL && sqlite3_column_type(s, 3) != SQLITE_NULL))
		return -1;
	if (a->ip != NULL)
		geo_lookup(g, a->ip, &a->gi);
	return 0;
}

/* The country cell: the code, else (text) what the address is instead,
 * "?" for a public address the data does not know. */
static const char *
rcp_country(const struct rcp_ans *a, int csv)
{
	if (a->ip == NULL || (csv && a->gi.country[0] == '\0'))
		return "";
	if (a->gi.country[0] != '\0')
		return a->gi.country;
	return a->gi.scope != NULL ? a->gi.scope : "?";
}

static struct out_table *
rcp_table_new(int fmt)
{
	static const char *const headers[RCP_NCOLS] = {"domain", "resolver",
	    "type", "address", "ttl", "country", "asn", "org", "status",
	    "compare", "scope"};
	struct out_table *t;

	if ((t = out_table_new(
		 fmt == OUT_CSV ? RCP_NCOLS : RCP_NCOLS_TEXT, headers)) == NULL)
		return NULL;
	out_table_col(t, 0, OUT_COL_SHRINK, 16, 0);
	out_table_col(t, 1, 0, 0, 0);
	out_table_col(t, 3, 0, 0, 0);
	out_table_col(t, 4, OUT_COL_RIGHT, 0, 3);
	out_table_col(t, 6, OUT_COL_RIGHT, 0, 2);
	out_table_col(t, 7, OUT_COL_SHRINK, 8, 1);
	out_table_col(t, 9, OUT_COL_SHRINK, 12, 4);
	return t;
}

/* d's rows into the table: the domain and verdict on its first row only
 * in text (it reads as a group), on every row in CSV. 0 / -1. */
static int
rcp_table_rows(
    struct rcp_out *out, const struct rcp_dom *d, const struct rc_verdict *v)
{
	int csv = out->o->fmt == OUT_CSV;

	for (size_t i = 0; i < d->n; i++) {
		const struct rcp_ans *a = &d->a[i];
		char ttl[24] = "", asn[24] = "";
		const char *cells[RCP_NCOLS];

		if (a->ttl >= 0)
			snprintf(ttl, sizeof(ttl), "%lld", (long long)a->ttl);
		if (a->gi.asn != 0)
			snprintf(asn, sizeof(asn), "%s%u", csv ? "" : "AS",
			    a->gi.asn);
		cells[0] = i == 0 || csv ? d->name : "";
		cells[1] = a->resolver;
		cells[2] = a->qtype;
		cells[3] = a->ip;
		cells[4] = ttl;
		cells[5] = rcp_country(a, csv);
		cells[6] = asn;
		cells[7] = a->gi.org;
		cells[8] = a->status;
		cells[9] = i == 0 || csv ? v->text : "";
		cells[10] = a->gi.scope;
		if (out_table_add(out->t, cells) == -1)
			return -1;
		if (!csv && strcmp(a->status, "ok") != 0)
			out_table_red(out->t, 8);
	}
	return 0;
}

/* One answer as a JSON object. */
static json_t *
rcp_json_ans(const struct rcp_ans *a)
{
	json_t *j = json_object();

	if (j == NULL)
		return NULL;
	json_object_set_new(j, "resolver", out_json_str(a->resolver));
	json_object_set_new(j, "qtype", out_json_str(a->qtype));
	json_object_set_new(j, "ip", out_json_str(a->ip));
	json_object_set_new(
	    j, "ttl", a->ttl >= 0 ? json_integer(a->ttl) : json_null());
	json_object_set_new(j, "status", out_json_str(a->status));
	out_json_geo(j, &a->gi);
	return j;
}

/* d as a JSON object in out->domains. 0 / -1. */
static int
rcp_json_dom(
    struct rcp_out *out, const struct rcp_dom *d, const struct rc_verdict *v)
{
	json_t *o = json_object(), *ans = json_array(), *fl = json_array();

	if (o == NULL || ans == NULL || fl == NULL) {
		json_decref(o);
		json_decref(ans);
		json_decref(fl);
		return -1;
	}
	if (v->flags & RC_DIFF_ADDRS)
		json_array_append_new(fl, json_string("addresses"));
	if (v->flags & RC_DIFF_COUNTRIES)
		json_array_append_new(fl, json_string("countries"));
	if (v->flags & RC_MISSING)
		json_array_append_new(fl, json_string("missing"));
	for (size_t i = 0; i < d->n; i++)
		json_array_append_new(ans, rcp_json_ans(&d->a[i]));
	json_object_set_new(o, "domain", out_json_str(d->name));
	json_object_set_new(o, "differ", json_boolean(v->flags != 0));
	json_object_set_new(o, "flags", fl);
	json_object_set_new(o, "compare", json_string(v->text));
	json_object_set_new(o, "answers", ans);
	return json_array_append_new(out->domains, o) == 0 ? 0 : -1;
}

/* Remember "domain  verdict" for the list after the table. 0 / -1. */
static int
rcp_line(
    struct rcp_out *out, const struct rcp_dom *d, const struct rc_verdict *v)
{
	char **l = realloc(out->lines, (out->nlines + 1) * sizeof(*l));
	size_t len = strlen(d->name) + strlen(v->text) + 8;

	if (l == NULL)
		return -1;
	out->lines = l;
	if ((l[out->nlines] = malloc(len)) == NULL)
		return -1;
	snprintf(l[out->nlines++], len, "  %s  %s", d->name, v->text);
	return 0;
}

/* Compare d, count it and emit it as the format asks. 0 / -1. */
static int
rcp_dom_emit(struct rcp_out *out, const struct rcp_dom *d)
{
	struct rc_row *rows = calloc(d->n ? d->n : 1, sizeof(*rows));
	struct rc_verdict v;

	if (rows == NULL)
		return -1;
	for (size_t i = 0; i < d->n; i++) {
		rows[i].resolver = d->a[i].resolver;
		rows[i].qtype = d->a[i].qtype;
		rows[i].ip = d->a[i].ip;
		rows[i].status = d->a[i].status;
		memcpy(rows[i].country, d->a[i].gi.country, 3);
	}
	rc_compare(rows, d->n, &v);
	free(rows);
	out->ndom++;
	out->nanswers += d->n;
	out->ndiffer += v.flags != 0;
	out->naddrs += (v.flags & RC_DIFF_ADDRS) != 0;
	out->ncountries += (v.flags & RC_DIFF_COUNTRIES) != 0;
	out->nmissing += (v.flags & RC_MISSING) != 0;
	out->nnone += !v.answered;
	if (v.flags != 0 && out->o->fmt == OUT_TEXT && rcp_line(out, d, &v))
		return -1;
	if (out->o->only_differ && v.flags == 0)
		return 0;
	if (out->o->fmt == OUT_JSON)
		return rcp_json_dom(out, d, &v);
	return rcp_table_rows(out, d, &v);
}

/* The text form's end: the domains that differ, then the counts. */
static void
rcp_text_end(const struct rcp_out *out, int64_t run)
{
	const struct rc_print_opts *o = out->o;

	if (out->ndiffer == 0)
		printf("\nNo disagreement among %zu domain%s", out->ndom,
		    out->ndom == 1 ? "" : "s");
	else
		printf("\n%zu of %zu domains differ (addresses %zu, countries "
		       "%zu, missing %zu)",
		    out->ndiffer, out->ndom, out->naddrs, out->ncountries,
		    out->nmissing);
	if (out->nnone > 0)
		printf("; %zu without any address", out->nnone);
	printf("%s\n", out->ndiffer ? ":" : ".");
	for (size_t i = 0; i < out->nlines; i++) {
		out_safe(stdout, out->lines[i], 0);
		putchar('\n');
	}
	printf("Run %lld in %s: %zu answers (`peephole resolve-compare --show "
	       "%lld` prints it again).\n",
	    (long long)run, o->db, out->nanswers, (long long)run);
}

/* The JSON form: the run, its domains and the counts. 0 / -1. */
static int
rcp_json_print(struct rcp_out *out, int64_t run)
{
	json_t *top = json_object(), *sum = json_object();
	char t[40];
	int rc;

	if (top == NULL || sum == NULL) {
		json_decref(top);
		json_decref(sum);
		return -1;
	}
	out_iso_time(out->t_us, 1, t, sizeof(t));
	json_object_set_new(top, "run", json_integer(run));
	json_object_set_new(top, "time", json_string(t));
	json_object_set(top, "domains", out->domains);
	json_object_set_new(
	    sum, "domains", json_integer((json_int_t)out->ndom));
	json_object_set_new(
	    sum, "differ", json_integer((json_int_t)out->ndiffer));
	json_object_set_new(
	    sum, "addresses", json_integer((json_int_t)out->naddrs));
	json_object_set_new(
	    sum, "countries", json_integer((json_int_t)out->ncountries));
	json_object_set_new(
	    sum, "missing", json_integer((json_int_t)out->nmissing));
	json_object_set_new(
	    sum, "no_answers", json_integer((json_int_t)out->nnone));
	json_object_set_new(
	    sum, "answers", json_integer((json_int_t)out->nanswers));
	json_object_set_new(top, "summary", sum);
	rc = json_dumpf(top, stdout, JSON_INDENT(2));
	putchar('\n');
	json_decref(top);
	return rc;
}

/* Step s (the run's rows by domain, then id) to the end, one domain at a
 * time through rcp_dom_emit. 0 / -1 after a message. */
static int
rcp_walk(sqlite3 *db, sqlite3_stmt *s, struct rcp_out *out)
{
	struct rcp_dom d = {NULL, NULL, 0, 0};
	int rc, ok = 0;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *dom = (const char *)sqlite3_column_text(s, 0);
		int64_t t = sqlite3_column_int64(s, 6);

		if (t > out->t_us)
			out->t_us = t;
		if (d.name != NULL && dom != NULL && strcmp(d.name, dom) != 0) {
			if (rcp_dom_emit(out, &d) == -1)
				goto oom;
			rcp_dom_clear(&d);
		}
		if (d.name == NULL &&
		    (d.name = strdup(dom != NULL ? dom : "")) == NULL)
			goto oom;
		if (rcp_dom_add(&d, s, out->geo) == -1)
			goto oom;
	}
	if (rc != SQLITE_DONE)
		db_warn(RC_CMD, db, "cannot read resolver_answers");
	else if (d.name != NULL && rcp_dom_emit(out, &d) == -1)
		goto oom;
	else
		ok = 1;
	goto done;
oom:
	fprintf(stderr, "peephole %s: out of memory\n", RC_CMD);
done:
	rcp_dom_clear(&d);
	free(d.a);
	return ok ? 0 : -1;
}

/* The geo data, or NULL (scopes only) with a note once on stderr. */
static struct geo *
rcp_geo(void)
{
	char home[4096], err[256];
	struct geo *g;

	g = geo_open(NULL, ca_home(home, sizeof(home)) == 0 ? home : NULL, err,
	    sizeof(err));
	if (g == NULL)
		fprintf(stderr, "peephole %s: countries unknown: %s\n", RC_CMD,
		    err);
	return g;
}

/* Print what out holds in the format asked. 0 / -1. */
static int
rcp_finish(struct rcp_out *out, int64_t run)
{
	if (out->o->fmt == OUT_JSON)
		return rcp_json_print(out, run);
	if (out->o->fmt == OUT_CSV) {
		out_table_print_csv(out->t, stdout);
		return 0;
	}
	out_table_print(out->t, stdout);
	rcp_text_end(out, run);
	return 0;
}

int
rc_print_run(struct sqlite3 *db, int64_t run, const struct rc_print_opts *o)
{
	struct rcp_out out;
	sqlite3_stmt *s = NULL;
	int status = CLI_ERROR;

	memset(&out, 0, sizeof(out));
	out.o = o;
	if (sqlite3_prepare_v2(db,
		"SELECT domain, resolver, qtype, ip, ttl, status, t_us FROM"
		" resolver_answers WHERE run_id = ? ORDER BY domain, id",
		-1, &s, NULL) != SQLITE_OK) {
		db_warn(RC_CMD, db, "cannot read resolver_answers");
		return CLI_ERROR;
	}
	sqlite3_bind_int64(s, 1, run);
	if (sqlite3_step(s) != SQLITE_ROW) {
		fprintf(stderr, "peephole %s: no run %lld in %s\n", RC_CMD,
		    (long long)run, o->db);
		goto fail;
	}
	sqlite3_reset(s);
	out.geo = rcp_geo();
	if ((o->fmt == OUT_JSON && (out.domains = json_array()) == NULL) ||
	    (o->fmt != OUT_JSON && (out.t = rcp_table_new(o->fmt)) == NULL)) {
		fprintf(stderr, "peephole %s: out of memory\n", RC_CMD);
		goto fail;
	}
	if (rcp_walk(db, s, &out) == -1)
		goto fail;
	status = rcp_finish(&out, run) == 0 ? CLI_OK : CLI_ERROR;
fail:
	for (size_t i = 0; i < out.nlines; i++)
		free(out.lines[i]);
	free(out.lines);
	json_decref(out.domains);
	out_table_free(out.t);
	geo_close(out.geo);
	sqlite3_finalize(s);
	return status;
}
