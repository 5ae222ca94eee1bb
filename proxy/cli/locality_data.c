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
 * The connections whose requests went to several hosts or addresses: a
 * plain-HTTP proxy connection is kept alive from one host to the next,
 * and the connection row keeps only its first host and its last address.
 */
#define LOC_SPLIT_CTE                                                          \
	"ms AS (SELECT conn_id FROM requests GROUP BY conn_id"                 \
	" HAVING count(DISTINCT host) > 1"                                     \
	" OR count(DISTINCT coalesce(server_ip, '')) > 1)"

/* Requests `peephole replay` sent again are not the app's traffic. */
#define LOC_NOT_REPLAY "coalesce(c.listener, '') <> 'replay'"

/* Each such connection's requests per (host, address), in the order they
 * were first used, with the connection's own byte counts. */
static const char loc_split_sql[] =
    "WITH " LOC_SPLIT_CTE " SELECT r.conn_id, r.host,"
    " nullif(r.server_ip, '') AS ip,"
    " sum(coalesce(r.req_header_bytes, 0) + coalesce(r.req_body_size, 0)),"
    " sum(coalesce(r.resp_header_bytes, 0) + coalesce(r.resp_body_size, 0)),"
    " coalesce(c.bytes_to_server, 0), coalesce(c.bytes_from_server, 0),"
    " r.host IS NULL OR instr(r.host, ':') > 0"
    " OR (r.host GLOB '*.*.*.*' AND r.host NOT GLOB '*[^0-9.]*')"
    " FROM requests r JOIN connections c ON c.id = r.conn_id"
    " WHERE r.conn_id IN (SELECT conn_id FROM ms) AND " LOC_NOT_REPLAY
    " GROUP BY r.conn_id, r.host, ip ORDER BY r.conn_id, min(r.id)";

/*
 * Each connection goes by one name, so that its bytes count once: the
 * host it asked for when that is a name (CONNECT, Host, SOCKS), else its
 * SNI, else the name inferred for the bare address (stream_names), else
 * the address itself. k: 0 target, 1 SNI, 2 asked for an address (told
 * apart from a name as stream_names does).
 */
static const char loc_facts_sql[] =
    "WITH " LOC_SPLIT_CTE ", c AS (SELECT nullif(c.server_ip, '') AS ip,"
    " coalesce(c.bytes_to_server, 0) AS up,"
    " coalesce(c.bytes_from_server, 0) AS down,"
    " CASE WHEN coalesce(c.target_host, '') <> ''"
    " AND NOT (instr(c.target_host, ':') > 0"
    " OR (c.target_host GLOB '*.*.*.*'"
    " AND c.target_host NOT GLOB '*[^0-9.]*')) THEN 0"
    " WHEN coalesce(c.sni, '') <> '' THEN 1 ELSE 2 END AS k,"
    " c.target_host AS th, c.sni AS sni, n.name AS nname,"
    " n.named_by AS nby"
    " FROM connections c LEFT JOIN stream_names n ON n.conn_id = c.id"
    " WHERE c.id NOT IN (SELECT conn_id FROM ms) AND " LOC_NOT_REPLAY ")"
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
    " UNION SELECT server_ip FROM requests"
    " WHERE server_ip IS NOT NULL AND server_ip <> ''"
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

/* Append a fact; name and how are copied, ip looked up in d->addrs.
 * 0 / -1 (ENOMEM). */
static int
loc_fact_add(struct loc_data *d, const char *name, const char *how, int by_addr,
    const char *ip, int64_t conns, uint64_t up, uint64_t down)
{
	struct loc_fact *f;

	if (loc_grow((void **)&d->facts, &d->capfacts, d->nfacts,
		sizeof(*d->facts)) == -1)
		return -1;
	f = &d->facts[d->nfacts];
	memset(f, 0, sizeof(*f));
	d->nfacts++;
	if ((f->name = strdup(name != NULL ? name : "-")) == NULL ||
	    (f->how = strdup(how)) == NULL)
		return -1;
	f->asked = by_addr ? LOC_ASKED_ADDRESS : LOC_ASKED_NAME;
	f->addr = loc_addr_find(d, ip);
	f->conns = conns;
	f->up = up;
	f->down = down;
	d->up += up;
	d->down += down;
	return 0;
}

static const char *
loc_col(sqlite3_stmt *s, int i)
{
	return (const char *)sqlite3_column_text(s, i);
}

static int
loc_load_facts(sqlite3 *db, struct loc_data *d)
{
	sqlite3_stmt *s = NULL;
	int rc;

	if (sqlite3_prepare_v2(db, loc_facts_sql, -1, &s, NULL) != SQLITE_OK)
		return -1;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if (loc_fact_add(d, loc_col(s, 0), loc_col(s, 1),
			sqlite3_column_int(s, 2), loc_col(s, 3),
			sqlite3_column_int64(s, 4),
			(uint64_t)sqlite3_column_int64(s, 5),
			(uint64_t)sqlite3_column_int64(s, 6)) == -1)
			goto fail;
	if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(s);
	return 0;
fail:
	sqlite3_finalize(s);
	return -1;
}

/* One (host, address) of a connection that went to several. */
struct loc_part {
	char *host;
	char *ip;
	int by_addr;
	uint64_t up, down; /* what its requests carried */
};

/* part/whole of total, rounded down (0 when whole is 0). */
static uint64_t
loc_part_of(uint64_t total, uint64_t part, uint64_t whole)
{
	long double x;

	if (whole == 0)
		return 0;
	x = (long double)total * (long double)part / (long double)whole;
	return x >= (long double)total ? total : (uint64_t)x;
}

/*
 * Share one connection's bytes (up, down) out among its parts in
 * proportion to what their requests carried (framing and unanswered
 * bytes included), the rounding to the first, so that the connection's
 * bytes count exactly once. Each part is a fact of one connection (its
 * conns is 1, its split names the connection), so that a row holding
 * several parts counts the connection once. Frees the parts' strings
 * whatever the outcome: the caller forgets them. 0 / -1.
 */
static int
loc_split_flush(struct loc_data *d, struct loc_part *p, size_t n, uint64_t up,
    uint64_t down)
{
	uint64_t rup = 0, rdown = 0, gup = 0, gdown = 0, u, w;
	int rc = 0;
	size_t i;

	if (loc_grow((void **)&d->splits, &d->capsplits, d->nsplits,
		sizeof(*d->splits)) == -1)
		rc = -1;
	else
		d->splits[d->nsplits++] = 0;
	for (i = 0; i < n; i++) {
		rup += p[i].up;
		rdown += p[i].down;
	}
	for (i = n; i-- > 0;) {
		u = i > 0 ? loc_part_of(up, p[i].up, rup) : up - gup;
		w = i > 0 ? loc_part_of(down, p[i].down, rdown) : down - gdown;
		if (i > 0 && (u > up - gup || w > down - gdown))
			u = w = 0; /* cannot happen: rounding is down */
		gup += u;
		gdown += w;
		if (rc == 0 &&
		    loc_fact_add(d, p[i].host,
			p[i].by_addr ? "address" : "host", p[i].by_addr,
			p[i].ip, 1, u, w) == -1)
			rc = -1;
		else if (rc == 0)
			d->facts[d->nfacts - 1].split = d->nsplits;
		free(p[i].host);
		free(p[i].ip);
	}
	return rc;
}

static int
loc_load_split(sqlite3 *db, struct loc_data *d)
{
	sqlite3_stmt *s = NULL;
	struct loc_part *p = NULL, *q;
	size_t n = 0, cap = 0;
	int64_t cid = -1;
	uint64_t up = 0, down = 0;
	int rc;

	if (sqlite3_prepare_v2(db, loc_split_sql, -1, &s, NULL) != SQLITE_OK)
		return -1;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (sqlite3_column_int64(s, 0) != cid && n > 0) {
			rc = loc_split_flush(d, p, n, up, down);
			n = 0;
			if (rc == -1)
				goto fail;
		}
		cid = sqlite3_column_int64(s, 0);
		up = (uint64_t)sqlite3_column_int64(s, 5);
		down = (uint64_t)sqlite3_column_int64(s, 6);
		if (loc_grow((void **)&p, &cap, n, sizeof(*p)) == -1)
			goto fail;
		q = &p[n++];
		memset(q, 0, sizeof(*q));
		if ((loc_col(s, 1) != NULL &&
			(q->host = strdup(loc_col(s, 1))) == NULL) ||
		    (loc_col(s, 2) != NULL &&
			(q->ip = strdup(loc_col(s, 2))) == NULL))
			goto fail;
		q->by_addr = sqlite3_column_int(s, 7);
		q->up = (uint64_t)sqlite3_column_int64(s, 3);
		q->down = (uint64_t)sqlite3_column_int64(s, 4);
	}
	if (rc != SQLITE_DONE)
		goto fail;
	if (n > 0) {
		rc = loc_split_flush(d, p, n, up, down);
		n = 0; /* freed by the flush, whatever it returned */
		if (rc == -1)
			goto fail;
	}
	free(p);
	sqlite3_finalize(s);
	return 0;
fail:
	for (size_t i = 0; i < n; i++) {
		free(p[i].host);
		free(p[i].ip);
	}
	free(p);
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

/* Connections, counted once each (a fact may share one). 0 / -1. */
static int
loc_count(sqlite3 *db, struct loc_data *d)
{
	sqlite3_stmt *s = NULL;
	int rc = -1;

	if (sqlite3_prepare_v2(db,
		"SELECT count(*) FROM connections c"
		" WHERE " LOC_NOT_REPLAY,
		-1, &s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW) {
		d->conns = sqlite3_column_int64(s, 0);
		rc = 0;
	}
	sqlite3_finalize(s);
	return rc;
}

/* Facts by name, then how they were named: what loc_names counts. */
static int
loc_fact_cmp(const void *a, const void *b)
{
	const struct loc_fact *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c != 0 ? c : strcmp(x->how, y->how);
}

/* Why the last read failed, into err. */
static void
loc_load_err(sqlite3 *db, char *err, size_t errlen)
{
	if (sqlite3_errcode(db) == SQLITE_NOMEM ||
	    sqlite3_errcode(db) == SQLITE_OK ||
	    sqlite3_errcode(db) == SQLITE_ROW)
		snprintf(err, errlen, "out of memory");
	else
		snprintf(err, errlen, "query failed: %s", sqlite3_errmsg(db));
}

/*
 * The five reads run in one read transaction, so that they see one
 * snapshot of a capture the proxy is still writing (WAL): without it a
 * connection committed between two of them is in the facts and not in
 * the count, or an address is in the facts and not in the address list.
 */
int
loc_load(sqlite3 *db, const struct geo *g, const struct loc_home *home,
    struct loc_data *d, char *err, size_t errlen)
{
	memset(d, 0, sizeof(*d));
	geo_source(g, d->geo_source, sizeof(d->geo_source));
	if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
		loc_load_err(db, err, errlen);
		return -1;
	}
	if (loc_load_addrs(db, g, home, d) == -1 ||
	    loc_load_facts(db, d) == -1 || loc_load_split(db, d) == -1 ||
	    loc_count(db, d) == -1 || loc_load_answers(db, d) == -1 ||
	    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		loc_load_err(db, err, errlen);
		if (!sqlite3_get_autocommit(db))
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	if (d->nfacts > 1)
		qsort(d->facts, d->nfacts, sizeof(*d->facts), loc_fact_cmp);
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
	free(d->splits);
	memset(d, 0, sizeof(*d));
}
