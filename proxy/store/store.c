/*
 * store: see store.h. The queue, the writer thread that drains it, open
 * and close, and the counters; store_int.h names the other parts.
 */
#include "proxy/store/store.h"

#include <event2/event.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "proxy/log.h"
#include "proxy/store/schema.h"
#include "proxy/store/store_int.h"

/* How long an insert waits for a reader's lock before it fails. */
#define STORE_BUSY_TIMEOUT_MS 5000
/* How long the writer lets a batch gather before a transaction. */
#define STORE_GATHER_NS (5 * 1000000L)

/* Called with mtx held once the queue shrank: lift the back-pressure when
 * it falls to half the limit. Not while stopping, since the loops that own
 * the events may be gone by then. */
static void
store_check_drain(struct store *st)
{
	size_t i;

	if (!st->backlogged || st->count > st->queue_max / 2 ||
	    st->bytes > st->queue_bytes_max / 2)
		return;
	st->backlogged = 0;
	if (st->stopping)
		return;
	for (i = 0; i < st->nwatch; i++)
		event_active(st->watch[i], EV_READ, 0);
}

/* Take up to STORE_BATCH_MAX records, and STORE_BATCH_BYTES (at least one
 * record), off the queue. mtx held. */
static struct store_rec *
store_take_batch(struct store *st, size_t *n, size_t *bytes)
{
	struct store_rec *batch = st->head, *last = st->head;

	*n = 1;
	*bytes = last->bytes;
	while (*n < STORE_BATCH_MAX && last->next != NULL &&
	    *bytes + last->next->bytes <= STORE_BATCH_BYTES) {
		last = last->next;
		(*n)++;
		*bytes += last->bytes;
	}
	st->head = last->next;
	if (st->head == NULL)
		st->tail = NULL;
	last->next = NULL;
	return batch;
}

/* The file's PRAGMA data_version: it changes when another connection
 * (another process) commits, never for this connection's own writes. */
static int
store_data_version(struct store *st, int *v)
{
	sqlite3_stmt *s = NULL;
	int rc = -1;

	if (sqlite3_prepare_v2(st->db, "PRAGMA data_version", -1, &s, NULL) ==
		SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW) {
		*v = sqlite3_column_int(s, 0);
		rc = 0;
	}
	sqlite3_finalize(s);
	return rc;
}

static int64_t
store_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * At most every STORE_POLL_MS: if another process changed the file since
 * the last look, let the watcher reload the learned list. Writer thread,
 * mtx not held.
 */
static void
store_poll(struct store *st)
{
	int64_t now;
	int v;

	if (st->learned_cb == NULL || st->db == NULL)
		return;
	now = store_mono_us();
	if (now - st->polled_us < (int64_t)STORE_POLL_MS * 1000)
		return;
	st->polled_us = now;
	if (store_data_version(st, &v) == -1 || v == st->data_version)
		return;
	st->data_version = v;
	st->learned_cb(st, st->learned_arg);
}

/* Wait on cond for at most ns. mtx held. */
static void
store_timedwait(struct store *st, long ns)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ns / 1000000000L;
	ts.tv_nsec += ns % 1000000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	(void)pthread_cond_timedwait(&st->cond, &st->mtx, &ts);
}

/*
 * A written batch: print the flow lines asked for, append key-log lines,
 * free the records. The writer thread (store_close once it has gone),
 * without the lock.
 */
static void
store_batch_done(struct store *st, struct store_rec *batch)
{
	struct store_rec *rec;

	while ((rec = batch) != NULL) {
		batch = rec->next;
		if (rec->print && st->printer != NULL)
			st->printer(rec, st->printer_arg);
		if (rec->type == STORE_REC_KEYLOG && st->keylog != NULL &&
		    rec->u.keylog.line != NULL)
			fputs(rec->u.keylog.line, st->keylog);
		if (rec->type == STORE_REC_REQUEST) {
			/* the body cache takes the capture buffers over */
			store_seen_adopt(st, &rec->u.req.req_body);
			store_seen_adopt(st, &rec->u.req.resp_body);
		}
		store_rec_free(rec);
	}
	store_seen_settle(st);
	if (st->keylog != NULL)
		fflush(st->keylog);
	/* One flush per batch: flow lines appear as their records reach the
	 * file, without a write per line. */
	fflush(stdout);
}

/* Write and free whatever is queued until the queue is empty, or, when
 * wait is set, until stopping is set and the queue is empty. mtx held on
 * entry and exit; dropped while writing. */
static void
store_drain(struct store *st, int wait)
{
	struct store_rec *batch;
	size_t n, nbytes, nfail;

	for (;;) {
		while (wait && st->head == NULL && !st->stopping &&
		    !atomic_load(&st->id_want)) {
			if (st->learned_cb == NULL) {
				pthread_cond_wait(&st->cond, &st->mtx);
				continue;
			}
			/* idle, but another process may edit the list */
			store_timedwait(st, STORE_POLL_MS * 1000000L);
			pthread_mutex_unlock(&st->mtx);
			store_poll(st);
			pthread_mutex_lock(&st->mtx);
		}
		if (wait && atomic_load(&st->id_want)) {
			pthread_mutex_unlock(&st->mtx);
			store_refill_ids(st);
			pthread_mutex_lock(&st->mtx);
			continue;
		}
		if (st->head == NULL)
			break;
		if (wait && !st->stopping && st->count < STORE_BATCH_MAX) {
			/*
			 * Let a batch gather. Woken per record, the writer
			 * would take one transaction and two context switches
			 * per exchange; a few ms of delay on the flow line
			 * costs nothing. Submitters only signal an empty
			 * queue, so this sleeps the whole window unless
			 * store_close() signals.
			 */
			store_timedwait(st, STORE_GATHER_NS);
		}
		batch = store_take_batch(st, &n, &nbytes);
		pthread_mutex_unlock(&st->mtx);
		nfail = store_write_batch(st, batch);
		store_batch_done(st, batch);
		if (wait)
			store_poll(st); /* a busy writer looks too */
		pthread_mutex_lock(&st->mtx);
		st->count -= n;
		st->bytes -= nbytes;
		st->written += n - nfail;
		st->failed += nfail;
		store_check_drain(st);
	}
}

static void *
store_writer(void *arg)
{
	struct store *st = arg;

	pthread_mutex_lock(&st->mtx);
	store_drain(st, 1);
	pthread_mutex_unlock(&st->mtx);
	return NULL;
}

/* journal_mode answers with the mode it ended up in; anything but "wal"
 * (a filesystem without shared memory, say) is worth refusing loudly. */
static int
store_set_wal(sqlite3 *db, char *err, size_t errlen)
{
	sqlite3_stmt *s = NULL;
	const unsigned char *mode;

	if (sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &s, NULL) !=
		SQLITE_OK ||
	    sqlite3_step(s) != SQLITE_ROW) {
		snprintf(
		    err, errlen, "cannot set WAL mode: %s", sqlite3_errmsg(db));
		goto fail;
	}
	mode = sqlite3_column_text(s, 0);
	if (mode == NULL || strcmp((const char *)mode, "wal") != 0) {
		snprintf(err, errlen, "cannot set WAL mode (got %s)",
		    mode != NULL ? (const char *)mode : "nothing");
		goto fail;
	}
	sqlite3_finalize(s);
	return 0;
fail:
	sqlite3_finalize(s);
	return -1;
}

/* Release what store_open set up; the writer must not be running. */
static void
store_free(struct store *st)
{
	store_stmts_free(st);
	store_body_free(st);
	if (st->db != NULL && sqlite3_close(st->db) != SQLITE_OK)
		log_warnx("store: close failed: %s", sqlite3_errmsg(st->db));
	pthread_cond_destroy(&st->cond);
	pthread_mutex_destroy(&st->mtx);
	pthread_cond_destroy(&st->id_cond);
	pthread_mutex_destroy(&st->id_mtx);
	free(st->watch);
	if (st->keylog != NULL)
		fclose(st->keylog);
	free(st);
}

int
store_set_keylog(struct store *st, const char *path, char *err, size_t errlen)
{
	/* the secrets decrypt everything: readable by the owner only */
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

	if (fd == -1 || (st->keylog = fdopen(fd, "a")) == NULL) {
		snprintf(
		    err, errlen, "SSLKEYLOGFILE %s: %s", path, strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	return 0;
}

/* A store with its locks and limits, nothing open. NULL on ENOMEM. */
static struct store *
store_new(struct store_limits lim)
{
	struct store *st;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return NULL;
	pthread_mutex_init(&st->mtx, NULL);
	pthread_cond_init(&st->cond, NULL);
	pthread_mutex_init(&st->id_mtx, NULL);
	pthread_cond_init(&st->id_cond, NULL);
	st->queue_max =
	    lim.queue_max > 0 ? lim.queue_max : STORE_QUEUE_MAX_DEFAULT;
	st->queue_bytes_max = lim.queue_bytes_max > 0
	    ? lim.queue_bytes_max
	    : STORE_QUEUE_BYTES_DEFAULT;
	return st;
}

/* Put "PATH: " in front of the message in err. */
static void
store_err_path(char *err, size_t errlen, const char *path)
{
	char msg[256];

	snprintf(msg, sizeof(msg), "%s", err);
	snprintf(err, errlen, "%s: %s", path, msg);
}

/* 1 if the file holds any table (a user_version 0 file that is not new). */
static int
store_has_tables(sqlite3 *db)
{
	sqlite3_stmt *s = NULL;
	int n = 0;

	if (sqlite3_prepare_v2(db,
		"SELECT count(*) FROM sqlite_master WHERE type = 'table'", -1,
		&s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return n > 0;
}

/*
 * Whether db (at path) is one this build may write to: empty, or
 * peephole's at a schema version it knows. A newer file is refused before
 * WAL mode is set: not even that write is ours to make. 0 / -1 + err.
 */
static int
store_check_version(sqlite3 *db, const char *path, char *err, size_t errlen)
{
	int version;

	if (schema_version(db, &version, err, errlen) == -1) {
		store_err_path(err, errlen, path);
		return -1;
	}
	if (version == 0 && store_has_tables(db)) {
		/* someone else's database: adding our tables would change it */
		snprintf(err, errlen,
		    "%s: a SQLite database that is not peephole's (it has "
		    "tables and no peephole schema version); refusing to add "
		    "to it",
		    path);
		return -1;
	}
	if (version > STORE_SCHEMA_VERSION) {
		snprintf(err, errlen,
		    "%s: database schema version %d is newer than this "
		    "peephole "
		    "understands (%d); refusing to touch it",
		    path, version, STORE_SCHEMA_VERSION);
		return -1;
	}
	return 0;
}

struct store *
store_open(const char *path, struct store_limits lim, char *err, size_t errlen)
{
	struct store *st;
	int64_t first;

	if ((st = store_new(lim)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	/* NOMUTEX: one thread at a time uses the connection (main thread
	 * until store_start, then the writer), so SQLite's own per-call
	 * mutexes only cost the writer a lock/unlock per API call. */
	if (sqlite3_open_v2(path, &st->db,
		SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
		    SQLITE_OPEN_NOMUTEX,
		NULL) != SQLITE_OK) {
		snprintf(err, errlen, "cannot open database %s: %s", path,
		    st->db != NULL ? sqlite3_errmsg(st->db) : "out of memory");
		goto fail;
	}
	sqlite3_busy_timeout(st->db, STORE_BUSY_TIMEOUT_MS);
	if (store_check_version(st->db, path, err, errlen) == -1)
		goto fail;
	if (store_set_wal(st->db, err, errlen) == -1 ||
	    sqlite3_exec(st->db, "PRAGMA synchronous = NORMAL", NULL, NULL,
		NULL) != SQLITE_OK ||
	    schema_migrate(st->db, err, errlen) == -1 ||
	    store_prepare(st, err, errlen) == -1)
		goto fail;
	/* a block to hand out and a spare, so the writer has a whole block's
	 * worth of connections to reserve the next one */
	if (store_reserve_ids(st, 2 * STORE_ID_BLOCK, &first) == -1) {
		snprintf(err, errlen, "%s: cannot reserve connection ids: %s",
		    path, sqlite3_errmsg(st->db));
		goto fail;
	}
	st->id_next = first;
	st->id_end = st->spare_first = first + STORE_ID_BLOCK;
	st->spare_end = first + 2 * STORE_ID_BLOCK;
	return st;
fail:
	store_free(st);
	return NULL;
}

struct store *
store_open_discard(struct store_limits lim)
{
	struct store *st;

	if ((st = store_new(lim)) == NULL)
		return NULL;
	st->id_next = 1; /* nothing is written: one block without end */
	st->id_end = INT64_MAX;
	return st;
}

int
store_start(struct store *st)
{
	int rc;

	if ((rc = pthread_create(&st->thread, NULL, store_writer, st)) != 0) {
		log_warnx(
		    "store: cannot start writer thread: %s", strerror(rc));
		return -1;
	}
	st->started = 1;
	return 0;
}

int
store_submit(struct store *st, struct store_rec *rec)
{
	int past;

	if (rec == NULL)
		return 0;
	rec->next = NULL;
	rec->bytes = store_rec_bytes(rec);
	pthread_mutex_lock(&st->mtx);
	if (st->tail != NULL)
		st->tail->next = rec;
	else {
		st->head = rec;
		pthread_cond_signal(&st->cond);
	}
	st->tail = rec;
	st->count++;
	st->bytes += rec->bytes;
	past = st->count > st->queue_max || st->bytes > st->queue_bytes_max;
	if (past)
		st->backlogged = 1;
	pthread_mutex_unlock(&st->mtx);
	return past;
}

/* The writer's counters, read together under the lock. */
struct store_counts {
	uint64_t written, failed;
	size_t queued, queued_bytes;
	int backlogged;
};

static void
store_counts(struct store *st, struct store_counts *c)
{
	pthread_mutex_lock(&st->mtx);
	c->written = st->written;
	c->failed = st->failed;
	c->queued = st->count;
	c->queued_bytes = st->bytes;
	c->backlogged = st->backlogged;
	pthread_mutex_unlock(&st->mtx);
}

int
store_backlogged(struct store *st)
{
	struct store_counts c;

	store_counts(st, &c);
	return c.backlogged;
}

void
store_watch_drain(struct store *st, struct event *ev)
{
	struct event **w;

	pthread_mutex_lock(&st->mtx);
	w = realloc(st->watch, (st->nwatch + 1) * sizeof(*w));
	if (w == NULL)
		fatalx("store: out of memory");
	st->watch = w;
	st->watch[st->nwatch++] = ev;
	pthread_mutex_unlock(&st->mtx);
}

int
store_load_learned(struct store *st,
    void (*cb)(const struct store_learned_row *row, void *arg), void *arg)
{
	sqlite3_stmt *s = NULL;
	struct store_learned_row row;
	int rc;

	if (st->db == NULL)
		return 0;
	if (sqlite3_prepare_v2(st->db,
		"SELECT host, port, rejections, coalesce(next_retry_us, 0)"
		" FROM learned_passthrough ORDER BY host, port",
		-1, &s, NULL) != SQLITE_OK)
		goto fail;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		row.host = (const char *)sqlite3_column_text(s, 0);
		row.port = sqlite3_column_int(s, 1);
		row.rejections = sqlite3_column_int(s, 2);
		row.next_retry_us = sqlite3_column_int64(s, 3);
		if (row.host != NULL)
			cb(&row, arg);
	}
	if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(s);
	return 0;
fail:
	log_warnx("store: cannot read learned passthrough list: %s",
	    sqlite3_errmsg(st->db));
	sqlite3_finalize(s);
	return -1;
}

void
store_watch_learned(
    struct store *st, void (*cb)(struct store *st, void *arg), void *arg)
{
	st->learned_cb = cb;
	st->learned_arg = arg;
	if (st->db != NULL)
		(void)store_data_version(st, &st->data_version);
}

void
store_set_deriver(struct store *st,
    struct store_rec *(*derive)(const struct store_request *r))
{
	st->derive = derive;
}

void
store_set_printer(struct store *st,
    void (*cb)(const struct store_rec *rec, void *arg), void *arg)
{
	st->printer = cb;
	st->printer_arg = arg;
}

void
store_close(struct store *st)
{
	if (st == NULL)
		return;
	pthread_mutex_lock(&st->mtx);
	st->stopping = 1;
	pthread_cond_signal(&st->cond);
	pthread_mutex_unlock(&st->mtx);
	if (st->started)
		pthread_join(st->thread, NULL);
	/* Records submitted without a writer, or after it left. */
	pthread_mutex_lock(&st->mtx);
	store_drain(st, 0);
	pthread_mutex_unlock(&st->mtx);
	if (st->failed > 0)
		log_warnx("store: %llu records could not be written",
		    (unsigned long long)st->failed);
	store_free(st);
}

uint64_t
store_written(struct store *st)
{
	struct store_counts c;

	store_counts(st, &c);
	return c.written;
}

uint64_t
store_failed(struct store *st)
{
	struct store_counts c;

	store_counts(st, &c);
	return c.failed;
}

size_t
store_queued(struct store *st)
{
	struct store_counts c;

	store_counts(st, &c);
	return c.queued;
}

size_t
store_queued_bytes(struct store *st)
{
	struct store_counts c;

	store_counts(st, &c);
	return c.queued_bytes;
}
