/*
 * store_ids: connection ids, reserved in the file a block at a time (so
 * two processes writing one file never share an id) and handed out
 * without touching it: the writer keeps a spare block ready.
 */
#include "proxy/store/store_int.h"

#include <errno.h>
#include <time.h>

#include "proxy/log.h"

/*
 * Reserve n connection ids in the file; *first is the first of them.
 * Thread owning db. 0 / -1 (logged).
 */
int
store_reserve_ids(struct store *st, int64_t n, int64_t *first)
{
	sqlite3_stmt *s = NULL;
	int ok;

	if (store_begin(st) == -1)
		return -1;
	ok = sqlite3_prepare_v2(st->db,
		 "UPDATE conn_ids SET next = next + ?1 RETURNING next - ?1", -1,
		 &s, NULL) == SQLITE_OK &&
	    sqlite3_bind_int64(s, 1, n) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW;
	if (ok)
		*first = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	if (ok && sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
		return 0;
	log_warnx(
	    "store: cannot reserve connection ids: %s", sqlite3_errmsg(st->db));
	if (!sqlite3_get_autocommit(st->db))
		(void)sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

/* Ask the writer for the next block of ids. Any thread; mtx not held. */
static void
store_want_ids(struct store *st)
{
	atomic_store(&st->id_want, 1);
	pthread_mutex_lock(&st->mtx);
	pthread_cond_signal(&st->cond);
	pthread_mutex_unlock(&st->mtx);
}

/* Writer thread: reserve a spare block unless one is waiting already.
 * A failure leaves none; the next store_next_conn_id asks again. */
void
store_refill_ids(struct store *st)
{
	int64_t first;
	int have;

	atomic_store(&st->id_want, 0);
	pthread_mutex_lock(&st->id_mtx);
	have = st->spare_end > st->spare_first;
	pthread_mutex_unlock(&st->id_mtx);
	if (have || st->db == NULL ||
	    store_reserve_ids(st, STORE_ID_BLOCK, &first) == -1)
		return;
	pthread_mutex_lock(&st->id_mtx);
	st->spare_first = first;
	st->spare_end = first + STORE_ID_BLOCK;
	pthread_cond_broadcast(&st->id_cond);
	pthread_mutex_unlock(&st->id_mtx);
}

int64_t
store_next_conn_id(struct store *st)
{
	struct timespec dl;
	int64_t id = -1;
	int want = 0, timed = 0;

	pthread_mutex_lock(&st->id_mtx);
	while (st->id_next >= st->id_end) {
		if (st->spare_end > st->spare_first) {
			st->id_next = st->spare_first;
			st->id_end = st->spare_end;
			st->spare_first = st->spare_end = 0;
			want = 1;
			break;
		}
		if (!timed) {
			/* no spare: the writer is behind on reserving (the
			 * file's write lock is held elsewhere); wait a while.
			 * id_mtx before mtx is the lock order. */
			clock_gettime(CLOCK_REALTIME, &dl);
			dl.tv_sec += STORE_ID_WAIT_MS / 1000;
			dl.tv_nsec += (STORE_ID_WAIT_MS % 1000) * 1000000L;
			if (dl.tv_nsec >= 1000000000L) {
				dl.tv_sec++;
				dl.tv_nsec -= 1000000000L;
			}
			timed = 1;
			store_want_ids(st);
		}
		if (pthread_cond_timedwait(&st->id_cond, &st->id_mtx, &dl) ==
			ETIMEDOUT &&
		    st->spare_end <= st->spare_first)
			break;
	}
	if (st->id_next < st->id_end)
		id = st->id_next++;
	pthread_mutex_unlock(&st->id_mtx);
	if (want)
		store_want_ids(st);
	if (id == -1)
		log_warnx("store: no connection id free after %d ms (the "
			  "database is locked by another process)",
		    STORE_ID_WAIT_MS);
	return id;
}
