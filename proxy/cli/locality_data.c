/*
 * locality_data: reading a capture into the facts of `peephole locality`
 * (see locality.h). The database does the heavy part: connections are
 * summed per (name, how named, server address) and DNS answers per
 * (name, address) in SQL, so a million connections come back as a few
 * thousand rows; each distinct address is then looked up once.
 */
#include "proxy/cli/locality.h"

#include <ctype.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Each connection goes by one name, so that its bytes count once: the
 * host it asked for when that is a name (CONNECT, Host, SOCKS), else its
 * SNI, else the name inferred for the bare address (stream_names), else
 * the address itself. k: 0 target, 1 SNI, 2 asked for an address (told
 * apart from a name as stream_names does).
 */
static const char loc_facts_sql[] =
    "WITH c AS (SELECT nullif(c.server_ip, '') AS ip,"
    " coalesce(c.bytes_to_server, 0) AS up,"
    " coalesce(c.bytes_from_server, 0) AS down,"
    " CASE WHEN coalesce(c.target_host, '') <> ''"
    " AND NOT (instr(c.target_host, ':') > 0"
    " OR (c.target_host GLOB '*.*.*.*'"
    " AND c.target_host NOT GLOB '*[^0-9.]*')) THEN 0"
    " WHEN coalesce(c.sni, '') <> '' THEN 1 ELSE 2 END AS k,"
    " c.target_host AS th, c.sni AS sni, n.name AS nname,"
    " n.named_by AS nby"
    " FROM connections c LEFT JOIN stream_names n ON n.conn_id = c.id)"
    " SELECT CASE k WHEN 0 THEN th WHEN 1 THEN sni"
    " ELSE coalesce(nname, nullif(th, ''), ip, '-') END AS name,"
    " CASE WHEN k = 0 THEN 'target' WHEN k = 1 THEN 'sni'"
    " WHEN nname IS NOT NULL THEN coalesce(nby, 'inferred')"
    " ELSE 'address' END AS how,"
    " k = 2 AS by_addr, ip, count(*), sum(up), sum(down)"
    " FROM c GROUP BY name, how, ip ORDER BY name, how, ip";

/* Every address a connection reached or an answer gave, sorted. */
static const char loc_addrs_sql[] =
    "SELECT server_ip FROM connections"
    " WHERE server_ip IS NOT NULL AND server_ip <> ''"
    " UNION SELECT ip FROM domain_ips WHERE domain <> ip AND ip <> ''"
    " ORDER BY 1";

/* Each (name, address) a DNS answer or a connection tied together, with
 * its sources in order. */
static const char loc_answers_sql[] =
    "SELECT domain, ip, group_concat(source, ',') FROM"
    " (SELECT DISTINCT domain, ip, source FROM domain_ips"
    " WHERE domain <> ip AND ip <> '' AND domain <> ''"
    " ORDER BY domain, ip, source)"
    " GROUP BY domain, ip ORDER BY domain, ip";

int64_t
loc_share(uint64_t part, uint64_t total)
{
	long double x;

	if (total == 0)
		return 0;
	x = (long double)part * 10000.0L / (long double)total;
	return (int64_t)(x + 0.5L);
}

int
loc_home_parse(const char *s, struct loc_home *home)
{
	const char *p = s;

	memset(home, 0, sizeof(*home));
	for (;;) {
		if (!isalpha((unsigned char)p[0]) ||
		    !isalpha((unsigned char)p[1]) ||
		    (p[2] != ',' && p[2] != '\0') || home->n == LOC_HOME_MAX)
			return -1;
		home->cc[home->n][0] = (char)toupper((unsigned char)p[0]);
		home->cc[home->n][1] = (char)toupper((unsigned char)p[1]);
		home->n++;
		if (p[2] == '\0')
			return 0;
		p += 3;
	}
}

static int
loc_is_home(const struct loc_home *home, const char *cc)
{
	for (size_t i = 0; i < home->n; i++)
		if (strcmp(home->cc[i], cc) == 0)
			return 1;
	return 0;
}

/* Look ip up and label it. a->ip is set. */
static void
loc_place(struct loc_addr *a, const struct geo *g, const struct loc_home *home)
{
	int rc = geo_lookup(g, a->ip, &a->gi);

	if (rc == 1 && a->gi.scope != NULL) {
		snprintf(a->country, sizeof(a->country), "%s", a->gi.scope);
		snprintf(a->asn, sizeof(a->asn), "%s", a->gi.scope);
		a->where = LOC_LOCAL;
		return;
	}
	if (rc == 1 && a->gi.asn != 0)
		snprintf(a->asn, sizeof(a->asn), "AS%u", a->gi.asn);
	else
		snprintf(a->asn, sizeof(a->asn), "unknown");
	if (rc != 1 || a->gi.country[0] == '\0') {
		snprintf(a->country, sizeof(a->country), "unknown");
		a->where = LOC_UNKNOWN;
		return;
	}
	snprintf(a->country, sizeof(a->country), "%s", a->gi.country);
	if (home->n == 0)
		a->where = LOC_PUBLIC;
	else
		a->where =
		    loc_is_home(home, a->gi.country) ? LOC_HOME : LOC_LEFT;
}

static int
loc_addr_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct loc_addr *)elem)->ip);
}

/* Index of ip in d->addrs; 0 (no address) for NULL or one not listed. */
static size_t
loc_addr_find(const struct loc_data *d, const char *ip)
{
	const struct loc_addr *a;

	if (ip == NULL || d->naddrs < 2)
		return 0;
	a = bsearch(ip, d->addrs + 1, d->naddrs - 1, sizeof(*a), loc_addr_cmp);
	return a == NULL ? 0 : (size_t)(a - d->addrs);
}

/* Grow *v (of size elem) to hold one more than *n. 0 / -1. */
static int
loc_grow(void **v, size_t *cap, size_t n, size_t elem)
{
	void *p;
	size_t c;

	if (n < *cap)
		return 0;
	c = *cap == 0 ? 64 : *cap * 2;
	if ((p = realloc(*v, c * elem)) == NULL)
		return -1;
	*v = p;
	*cap = c;
	return 0;
}

static int
loc_load_addrs(sqlite3 *db, const struct geo *g, const struct loc_home *home,
    struct loc_data *d)
{
	sqlite3_stmt *s = NULL;
	size_t cap = 0;
	int rc;

	if (sqlite3_prepare_v2(db, loc_addrs_sql, -1, &s, NULL) != SQLITE_OK)
		return -1;
	if (loc_grow((void **)&d->addrs, &cap, 0, sizeof(*d->addrs)) == -1)
		goto fail;
	memset(&d->addrs[0], 0, sizeof(d->addrs[0]));
	d->naddrs = 1;
	if ((d->addrs[0].ip = strdup("")) == NULL)
		goto fail;
	snprintf(d->addrs[0].country, sizeof(d->addrs[0].country), "none");
	snprintf(d->addrs[0].asn, sizeof(d->addrs[0].asn), "none");
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct loc_addr *a;

		if (loc_grow((void **)&d->addrs, &cap, d->naddrs,
			sizeof(*d->addrs)) == -1)
			goto fail;
		a = &d->addrs[d->naddrs];
		memset(a, 0, sizeof(*a));
		if ((a->ip = strdup((const char *)sqlite3_column_text(s, 0))) ==
		    NULL)
			goto fail;
		d->naddrs++;
		loc_place(a, g, home);
	}
	if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(s);
	return 0;
fail:
	sqlite3_finalize(s);
	return -1;
}

static char *
loc_col_dup(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);

	return strdup(t != NULL ? (const char *)t : "");
}

static int
loc_load_facts(sqlite3 *db, struct loc_data *d)
{
	sqlite3_stmt *s = NULL;
	size_t cap = 0;
	int rc;

	if (sqlite3_prepare_v2(db, loc_facts_sql, -1, &s, NULL) != SQLITE_OK)
		return -1;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct loc_fact *f;

		if (loc_grow((void **)&d->facts, &cap, d->nfacts,
			sizeof(*d->facts)) == -1)
			goto fail;
		f = &d->facts[d->nfacts];
		memset(f, 0, sizeof(*f));
		d->nfacts++;
		if ((f->name = loc_col_dup(s, 0)) == NULL ||
		    (f->how = loc_col_dup(s, 1)) == NULL)
			goto fail;
		f->asked = sqlite3_column_int(s, 2) ? LOC_ASKED_ADDRESS
						    : LOC_ASKED_NAME;
		f->addr =
		    loc_addr_find(d, (const char *)sqlite3_column_text(s, 3));
		f->conns = sqlite3_column_int64(s, 4);
		f->up = (uint64_t)sqlite3_column_int64(s, 5);
		f->down = (uint64_t)sqlite3_column_int64(s, 6);
		d->conns += f->conns;
		d->up += f->up;
		d->down += f->down;
	}
	if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(s);
	return 0;
fail:
	sqlite3_finalize(s);
	return -1;
}

static int
loc_load_answers(sqlite3 *db, struct loc_data *d)
{
	sqlite3_stmt *s = NULL;
	size_t cap = 0;
	int rc;

	if (sqlite3_prepare_v2(db, loc_answers_sql, -1, &s, NULL) != SQLITE_OK)
		return -1;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct loc_answer *a;

		if (loc_grow((void **)&d->answers, &cap, d->nanswers,
			sizeof(*d->answers)) == -1)
			goto fail;
		a = &d->answers[d->nanswers];
		memset(a, 0, sizeof(*a));
		d->nanswers++;
		if ((a->name = loc_col_dup(s, 0)) == NULL ||
		    (a->sources = loc_col_dup(s, 2)) == NULL)
			goto fail;
		a->addr =
		    loc_addr_find(d, (const char *)sqlite3_column_text(s, 1));
	}
	if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(s);
	return 0;
fail:
	sqlite3_finalize(s);
	return -1;
}

int
loc_load(sqlite3 *db, const struct geo *g, const struct loc_home *home,
    struct loc_data *d, char *err, size_t errlen)
{
	memset(d, 0, sizeof(*d));
	geo_source(g, d->geo_source, sizeof(d->geo_source));
	if (loc_load_addrs(db, g, home, d) == -1 ||
	    loc_load_facts(db, d) == -1 || loc_load_answers(db, d) == -1) {
		if (sqlite3_errcode(db) == SQLITE_NOMEM ||
		    sqlite3_errcode(db) == SQLITE_OK ||
		    sqlite3_errcode(db) == SQLITE_ROW)
			snprintf(err, errlen, "out of memory");
		else
			snprintf(err, errlen, "query failed: %s",
			    sqlite3_errmsg(db));
		return -1;
	}
	return 0;
}

void
loc_data_free(struct loc_data *d)
{
	size_t i;

	for (i = 0; i < d->naddrs; i++)
		free(d->addrs[i].ip);
	for (i = 0; i < d->nfacts; i++) {
		free(d->facts[i].name);
		free(d->facts[i].how);
	}
	for (i = 0; i < d->nanswers; i++) {
		free(d->answers[i].name);
		free(d->answers[i].sources);
	}
	free(d->addrs);
	free(d->facts);
	free(d->answers);
	memset(d, 0, sizeof(*d));
}
