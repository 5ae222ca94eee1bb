/* replaydb: see replaydb.h. */
#include "proxy/store/replaydb.h"

#include <ctype.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "proxy/http/head.h"
#include "proxy/store/select.h"
#include "proxy/log.h"

#define REPLAYDB_BUCKETS_MIN 1024
#define REPLAYDB_KEY_MAX 8192

/* One logged exchange a request may be answered with. */
struct replaydb_entry {
	int64_t id;
	char body_sha[65]; /* of the request body; "" for none */
	int truncated;     /* the logged response body is incomplete */
	int served;
};

/* Every logged exchange with one match key, in logged order. */
struct replaydb_slot {
	struct replaydb_slot *chain;
	char *key;
	struct replaydb_entry *e;
	size_t n, cap;
};

struct replaydb_read {
	TAILQ_ENTRY(replaydb_read) all_link; /* until delivered */
	struct replaydb_read *qnext;         /* waiting for the reader */
	struct replaydb *db;
	int64_t id, rowid;
	uint64_t offset;
	size_t max;
	struct event_base *base;
	replaydb_read_cb cb;
	void *arg;
	int cancelled; /* touched on base's thread only */
	struct replaydb_chunk ch;
	char *headers;
	char error[200];
};

struct replaydb {
	struct replaydb_slot **bucket;
	size_t nbuckets, count;
	int match_body;
	char **ignore;
	int nignore;
	sqlite3 *sql; /* the reader thread's, once it runs */

	pthread_mutex_t mu; /* everything below, and the slots' cursors */
	pthread_cond_t cv;
	pthread_t thread;
	int started, stop;
	struct replaydb_read *qhead, **qtail;
	TAILQ_HEAD(, replaydb_read) all;
};

static uint64_t
replaydb_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

/* 1 if the parameter starting at p (up to end) is one to ignore. */
static int
replaydb_ignored(const char *p, size_t len, char *const *ignore, int nignore)
{
	const char *eq = memchr(p, '=', len);
	size_t nlen = eq ? (size_t)(eq - p) : len;

	for (int i = 0; i < nignore; i++)
		if (strlen(ignore[i]) == nlen &&
		    memcmp(ignore[i], p, nlen) == 0)
			return 1;
	return 0;
}

int
replaydb_key_text(const struct replaydb_key *k, char *const *ignore,
    int nignore, char *buf, size_t buflen)
{
	size_t n;
	int w;
	char q = '?';

	w = snprintf(buf, buflen, "%s %s://", k->method, k->scheme);
	if (w < 0 || (size_t)w >= buflen)
		return -1;
	n = (size_t)w;
	for (const char *h = k->host; *h; h++) {
		if (n + 1 >= buflen)
			return -1;
		buf[n++] = (char)tolower((unsigned char)*h);
	}
	w = snprintf(buf + n, buflen - n, ":%u%s", k->port,
	    k->path && *k->path ? k->path : "/");
	if (w < 0 || (size_t)w >= buflen - n)
		return -1;
	n += (size_t)w;
	for (const char *p = k->query; p != NULL && *p;) {
		size_t len = strcspn(p, "&");
		if (len > 0 && !replaydb_ignored(p, len, ignore, nignore)) {
			if (n + len + 2 > buflen)
				return -1;
			buf[n++] = q;
			memcpy(buf + n, p, len);
			n += len;
			q = '&';
		}
		p += len + (p[len] == '&');
	}
	buf[n] = '\0';
	return 0;
}

static struct replaydb_slot *
replaydb_slot(const struct replaydb *db, const char *key)
{
	struct replaydb_slot *s =
	    db->bucket[replaydb_hash(key) & (db->nbuckets - 1)];

	while (s != NULL && strcmp(s->key, key) != 0)
		s = s->chain;
	return s;
}

static int
replaydb_add(
    struct replaydb *db, const char *key, const struct replaydb_entry *e)
{
	struct replaydb_slot *s = replaydb_slot(db, key);

	if (s == NULL) {
		size_t b = replaydb_hash(key) & (db->nbuckets - 1);
		if ((s = calloc(1, sizeof(*s))) == NULL ||
		    (s->key = strdup(key)) == NULL) {
			free(s);
			return -1;
		}
		s->chain = db->bucket[b];
		db->bucket[b] = s;
	}
	if (s->n == s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 1;
		struct replaydb_entry *ne = realloc(s->e, ncap * sizeof(*ne));
		if (ne == NULL)
			return -1;
		s->e = ne;
		s->cap = ncap;
	}
	s->e[s->n++] = *e;
	db->count++;
	return 0;
}

static const char *
replaydb_col(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return t ? (const char *)t : NULL;
}

/* Index request id if it is an exchange that can be answered again. */
static int
replaydb_index_row(struct replaydb *db, sqlite3_stmt *st, int64_t id)
{
	struct replaydb_entry e;
	struct replaydb_key k;
	const char *err, *label, *sha;
	char key[REPLAYDB_KEY_MAX];
	int rc;

	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, id);
	if ((rc = sqlite3_step(st)) != SQLITE_ROW)
		return rc == SQLITE_DONE ? 0 : -1;
	memset(&k, 0, sizeof(k));
	k.method = replaydb_col(st, 0);
	k.scheme = replaydb_col(st, 1);
	k.host = replaydb_col(st, 2);
	k.port = (unsigned)sqlite3_column_int(st, 3);
	k.path = replaydb_col(st, 4);
	k.query = replaydb_col(st, 5);
	err = replaydb_col(st, 7);
	label = replaydb_col(st, 10);
	/* answered, complete, and not itself an answer from a capture */
	if (k.method == NULL || k.scheme == NULL || k.host == NULL ||
	    sqlite3_column_int(st, 6) < 200 || (err != NULL && *err) ||
	    (strcmp(k.scheme, "http") != 0 && strcmp(k.scheme, "https") != 0) ||
	    (label != NULL && strcmp(label, "server-replay") == 0))
		return 0;
	if (replaydb_key_text(&k, db->ignore, db->nignore, key, sizeof(key)) ==
	    -1)
		return 0; /* a URL longer than any a client will send again */
	memset(&e, 0, sizeof(e));
	e.id = id;
	sha = replaydb_col(st, 8);
	snprintf(e.body_sha, sizeof(e.body_sha), "%s",
	    sha != NULL && sqlite3_column_int64(st, 11) > 0 ? sha : "");
	e.truncated = sqlite3_column_int(st, 9) != 0;
	return replaydb_add(db, key, &e);
}

static struct replaydb *
replaydb_fail(struct replaydb *db, char *err, size_t errlen, const char *what)
{
	snprintf(err, errlen, "%s: %s", what,
	    db != NULL && db->sql != NULL ? sqlite3_errmsg(db->sql)
					  : "out of memory");
	replaydb_close(db);
	return NULL;
}

/* A replaydb with its lock, queue and ignored names; nothing opened.
 * NULL on ENOMEM. */
static struct replaydb *
replaydb_new(const struct replaydb_opts *o)
{
	struct replaydb *db;

	if ((db = calloc(1, sizeof(*db))) == NULL)
		return NULL;
	pthread_mutex_init(&db->mu, NULL);
	pthread_cond_init(&db->cv, NULL);
	db->qtail = &db->qhead;
	TAILQ_INIT(&db->all);
	db->match_body = o->match_body;
	db->nbuckets = REPLAYDB_BUCKETS_MIN;
	if (o->nignore > 0 &&
	    (db->ignore = calloc((size_t)o->nignore, sizeof(char *))) == NULL)
		goto fail;
	for (; db->nignore < o->nignore; db->nignore++)
		if ((db->ignore[db->nignore] =
			    strdup(o->ignore[db->nignore])) == NULL)
			goto fail;
	return db;
fail:
	replaydb_close(db);
	return NULL;
}

/* The hash table, about one bucket per logged exchange so chains stay
 * short. 0 / -1 (ENOMEM). */
static int
replaydb_size(struct replaydb *db)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(db->sql, "SELECT max(id) FROM requests", -1, &st,
		NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		while ((int64_t)db->nbuckets < sqlite3_column_int64(st, 0) &&
		    db->nbuckets < ((size_t)1 << 24))
			db->nbuckets *= 2;
	sqlite3_finalize(st);
	db->bucket = calloc(db->nbuckets, sizeof(*db->bucket));
	return db->bucket != NULL ? 0 : -1;
}

/*
 * Index every exchange o->filter selects (all without one). 0, or -1 with
 * a message in err; *usage is set when the filter was bad.
 */
static int
replaydb_index(struct replaydb *db, const struct replaydb_opts *o, int *usage,
    char *err, size_t errlen)
{
	struct select *sel = NULL;
	sqlite3_stmt *st = NULL;
	int64_t id;
	int rc = -1, n;

	if (sqlite3_prepare_v2(db->sql,
		"SELECT method, scheme, host, port, path, query, status, "
		"error, req_body_sha, resp_body_truncated, label, "
		"req_body_size FROM requests WHERE id = ?",
		-1, &st, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s is not a peephole capture: %s",
		    o->path, sqlite3_errmsg(db->sql));
		return -1;
	}
	sel = select_new(db->sql, "run", NULL, 0, o->filter, usage);
	if (sel == NULL) {
		snprintf(err, errlen, "cannot select from %s", o->path);
		goto out;
	}
	while ((n = select_next(sel, &id)) == 1)
		if (replaydb_index_row(db, st, id) == -1) {
			snprintf(err, errlen, "cannot index %s: %s", o->path,
			    sqlite3_errmsg(db->sql));
			goto out;
		}
	if (n == -1) {
		snprintf(err, errlen, "cannot read %s", o->path);
		goto out;
	}
	rc = 0;
out:
	select_free(sel);
	sqlite3_finalize(st);
	return rc;
}

struct replaydb *
replaydb_open(
    const struct replaydb_opts *o, int *usage, char *err, size_t errlen)
{
	struct replaydb *db;

	*usage = 0;
	if ((db = replaydb_new(o)) == NULL)
		return replaydb_fail(db, err, errlen, "replay");
	if (sqlite3_open_v2(o->path, &db->sql, SQLITE_OPEN_READONLY, NULL) !=
	    SQLITE_OK) {
		char what[600];
		snprintf(what, sizeof(what), "cannot open %s", o->path);
		return replaydb_fail(db, err, errlen, what);
	}
	sqlite3_busy_timeout(db->sql, 5000);
	if (replaydb_size(db) == -1)
		return replaydb_fail(db, err, errlen, "replay");
	if (replaydb_index(db, o, usage, err, errlen) == -1) {
		replaydb_close(db);
		return NULL;
	}
	return db;
}

size_t
replaydb_count(const struct replaydb *db)
{
	return db->count;
}

int
replaydb_match_body(const struct replaydb *db)
{
	return db->match_body;
}

int64_t
replaydb_find(
    struct replaydb *db, const struct replaydb_key *k, char *why, size_t whylen)
{
	char key[REPLAYDB_KEY_MAX];
	struct replaydb_slot *s;
	struct replaydb_entry *pick = NULL, *last = NULL;
	int64_t id = 0;

	if (replaydb_key_text(k, db->ignore, db->nignore, key, sizeof(key)) ==
	    -1) {
		snprintf(why, whylen, "URL too long to match");
		return 0;
	}
	if ((s = replaydb_slot(db, key)) == NULL) {
		snprintf(why, whylen, "nothing logged for %s", key);
		return 0;
	}
	if (db->match_body && k->body_sha == NULL)
		return -1;
	pthread_mutex_lock(&db->mu);
	for (size_t i = 0; i < s->n; i++) {
		struct replaydb_entry *e = &s->e[i];
		if (db->match_body && strcmp(e->body_sha, k->body_sha) != 0)
			continue;
		last = e;
		if (!e->served) {
			pick = e;
			break;
		}
	}
	if (pick == NULL)
		pick = last;
	if (pick == NULL)
		snprintf(why, whylen,
		    "%zu logged for %s, none with this request body", s->n,
		    key);
	else if (pick->truncated)
		snprintf(why, whylen,
		    "the logged answer #%lld to %s was truncated at the "
		    "body-capture-limit",
		    (long long)pick->id, key);
	else {
		pick->served = 1;
		id = pick->id;
	}
	pthread_mutex_unlock(&db->mu);
	return id;
}

/* ---- the reader thread ---- */

static void
replaydb_free_read(struct replaydb_read *r)
{
	if (r->ch.data != NULL)
		evbuffer_free(r->ch.data);
	free(r->headers);
	free(r);
}

/* On the requester's thread. */
static void
replaydb_deliver(evutil_socket_t fd, short what, void *arg)
{
	struct replaydb_read *r = arg;
	struct replaydb *db = r->db;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&db->mu);
	TAILQ_REMOVE(&db->all, r, all_link);
	pthread_mutex_unlock(&db->mu);
	if (!r->cancelled)
		r->cb(&r->ch, r->arg);
	replaydb_free_read(r);
}

static void
replaydb_read_fail(struct replaydb_read *r, const char *what)
{
	snprintf(r->error, sizeof(r->error), "%s: %s", what,
	    sqlite3_errmsg(r->db->sql));
	r->ch.error = r->error;
}

/* The logged header text h without an HTTP/2 exchange's pseudo-headers
 * (":status: 200"): the answer is served as HTTP/1.1, which has none.
 * malloc'd, NULL on ENOMEM. */
static char *
replaydb_strip_pseudo(const char *h)
{
	struct head_text_iter it;
	const char *name;
	size_t nl, len = 0;
	char *out;

	if ((out = malloc(strlen(h) + 3)) == NULL)
		return NULL;
	head_text_init(&it, h);
	while (head_text_next(&it, &name, &nl, NULL, NULL)) {
		if (head_text_pseudo(name, nl))
			continue;
		memcpy(out + len, it.line, it.len);
		len += it.len;
		memcpy(out + len, "\r\n", 2);
		len += 2;
	}
	out[len] = '\0';
	return out;
}

/* The head of the logged response, and where its body lives. */
static int
replaydb_read_head(
    struct replaydb_read *r, sqlite3_stmt *head, sqlite3_stmt *body)
{
	const char *h, *sha;

	sqlite3_reset(head);
	sqlite3_bind_int64(head, 1, r->id);
	if (sqlite3_step(head) != SQLITE_ROW) {
		replaydb_read_fail(r, "cannot read the logged exchange");
		return -1;
	}
	r->ch.status = sqlite3_column_int(head, 0);
	h = replaydb_col(head, 1);
	if ((r->headers = replaydb_strip_pseudo(h ? h : "")) == NULL) {
		snprintf(r->error, sizeof(r->error), "out of memory");
		r->ch.error = r->error;
		return -1;
	}
	r->ch.resp_headers = r->headers;
	sha = replaydb_col(head, 2);
	r->rowid = 0;
	if (sha != NULL) {
		sqlite3_reset(body);
		sqlite3_bind_text(body, 1, sha, -1, SQLITE_TRANSIENT);
		if (sqlite3_step(body) == SQLITE_ROW)
			r->rowid = sqlite3_column_int64(body, 0);
	}
	r->ch.body_rowid = r->rowid;
	return 0;
}

static void
replaydb_read_body(struct replaydb_read *r)
{
	sqlite3_blob *blob = NULL;
	struct evbuffer_iovec v;
	uint64_t size;
	size_t n;

	if (r->rowid == 0)
		return;
	if (sqlite3_blob_open(r->db->sql, "main", "bodies", "data", r->rowid, 0,
		&blob) != SQLITE_OK) {
		replaydb_read_fail(r, "cannot open the logged body");
		sqlite3_blob_close(blob);
		return;
	}
	size = (uint64_t)sqlite3_blob_bytes(blob);
	r->ch.body_len = size;
	n = r->offset >= size           ? 0
	    : size - r->offset < r->max ? (size_t)(size - r->offset)
					: r->max;
	if (n > 0) {
		if (evbuffer_reserve_space(r->ch.data, (ev_ssize_t)n, &v, 1) <
			1 ||
		    sqlite3_blob_read(blob, v.iov_base, (int)n,
			(int)r->offset) != SQLITE_OK) {
			replaydb_read_fail(r, "cannot read the logged body");
		} else {
			v.iov_len = n;
			evbuffer_commit_space(r->ch.data, &v, 1);
		}
	}
	sqlite3_blob_close(blob);
}

static void *
replaydb_reader(void *arg)
{
	struct replaydb *db = arg;
	sqlite3_stmt *head = NULL, *body = NULL;
	struct replaydb_read *r;
	static const struct timeval now = {0, 0};

	if (sqlite3_prepare_v2(db->sql,
		"SELECT status, resp_headers, resp_body_sha FROM requests "
		"WHERE id = ?",
		-1, &head, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db->sql,
		"SELECT rowid FROM bodies WHERE sha256 = ?", -1, &body,
		NULL) != SQLITE_OK)
		log_warn("replay: cannot query the capture: %s",
		    sqlite3_errmsg(db->sql));
	for (;;) {
		pthread_mutex_lock(&db->mu);
		while (db->qhead == NULL && !db->stop)
			pthread_cond_wait(&db->cv, &db->mu);
		if (db->stop) {
			pthread_mutex_unlock(&db->mu);
			break;
		}
		r = db->qhead;
		if ((db->qhead = r->qnext) == NULL)
			db->qtail = &db->qhead;
		pthread_mutex_unlock(&db->mu);

		if (head == NULL || body == NULL) {
			snprintf(r->error, sizeof(r->error),
			    "the capture cannot be read");
			r->ch.error = r->error;
		} else if (r->offset == 0 && r->rowid == 0 &&
		    replaydb_read_head(r, head, body) == -1)
			; /* error set */
		else
			replaydb_read_body(r);
		if (event_base_once(r->base, -1, EV_TIMEOUT, replaydb_deliver,
			r, &now) == -1)
			log_warn("replay: cannot hand a read back");
		/* (then it stays on db->all and replaydb_close frees it) */
	}
	sqlite3_finalize(head);
	sqlite3_finalize(body);
	return NULL;
}

int
replaydb_start(struct replaydb *db)
{
	if (pthread_create(&db->thread, NULL, replaydb_reader, db) != 0)
		return -1;
	db->started = 1;
	return 0;
}

struct replaydb_read *
replaydb_read(struct replaydb *db, int64_t id, int64_t body_rowid,
    uint64_t offset, size_t max, struct event_base *base, replaydb_read_cb cb,
    void *arg)
{
	struct replaydb_read *r = calloc(1, sizeof(*r));

	if (r == NULL || (r->ch.data = evbuffer_new()) == NULL) {
		free(r);
		return NULL;
	}
	r->db = db;
	r->id = id;
	r->rowid = body_rowid;
	r->ch.body_rowid = body_rowid;
	r->offset = offset;
	r->max = max;
	r->base = base;
	r->cb = cb;
	r->arg = arg;
	pthread_mutex_lock(&db->mu);
	TAILQ_INSERT_TAIL(&db->all, r, all_link);
	*db->qtail = r;
	db->qtail = &r->qnext;
	pthread_cond_signal(&db->cv);
	pthread_mutex_unlock(&db->mu);
	return r;
}

void
replaydb_read_cancel(struct replaydb_read *r)
{
	if (r != NULL)
		r->cancelled = 1;
}

void
replaydb_close(struct replaydb *db)
{
	struct replaydb_read *r;

	if (db == NULL)
		return;
	if (db->started) {
		pthread_mutex_lock(&db->mu);
		db->stop = 1;
		pthread_cond_signal(&db->cv);
		pthread_mutex_unlock(&db->mu);
		pthread_join(db->thread, NULL);
	}
	while ((r = TAILQ_FIRST(&db->all)) != NULL) {
		TAILQ_REMOVE(&db->all, r, all_link);
		replaydb_free_read(r);
	}
	for (size_t b = 0; db->bucket != NULL && b < db->nbuckets; b++)
		for (struct replaydb_slot *s = db->bucket[b], *nx; s; s = nx) {
			nx = s->chain;
			free(s->key);
			free(s->e);
			free(s);
		}
	free(db->bucket);
	for (int i = 0; i < db->nignore; i++)
		free(db->ignore[i]);
	free(db->ignore);
	sqlite3_close(db->sql);
	pthread_cond_destroy(&db->cv);
	pthread_mutex_destroy(&db->mu);
	free(db);
}
