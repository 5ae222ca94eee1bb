/*
 * store_int: what the parts of the store share and nobody else sees — the
 * store itself (its queue, the writer's statements and body cache, the
 * connection ids) and the functions one part calls in another. Included
 * only by proxy/store/store*.c (and unit tests that reach inside).
 *
 *   store.c        the queue, the writer thread, open/close, counters
 *   store_rec.c    records: new, free, size, kind
 *   store_write.c  the row writers: prepared statements, one
 *                  store_write_* per record type, batched transactions
 *   store_body.c   bodies: SHA-256, stored once, the recent-body cache
 *   store_ids.c    connection ids, reserved in blocks
 */
#ifndef PEEPHOLE_STORE_INT_H
#define PEEPHOLE_STORE_INT_H

#include <openssl/evp.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "proxy/store/store.h"

/*
 * Bodies the writer remembers with their SHA-256, so a body seen again (the
 * same avatar, script or API answer) is recognised by a memcmp instead of
 * being hashed: hashing a 1 MiB body costs the writer ~0.6 ms, comparing it
 * ~30 µs. Bounded in entries and in bytes; the bytes are the records' own
 * capture buffers, adopted when the record is freed, not copies.
 */
#define STORE_SEEN_MAX 16
#define STORE_SEEN_BYTES ((size_t)2 << 20)

/* One remembered body. owned: data is the cache's (adopted from a freed
 * record); until then it points into a record of the batch being written. */
struct store_seen {
	unsigned char *data;
	size_t len;
	int owned;
	char hex[65];
};

struct store {
	sqlite3 *db; /* the writer thread's once store_start() returns; NULL
			for a discarding store */
	sqlite3_stmt *ins_conn;
	sqlite3_stmt *ins_req;
	sqlite3_stmt *ins_dip;
	sqlite3_stmt *ins_sight;
	sqlite3_stmt *ins_body;
	sqlite3_stmt *ins_learned;
	sqlite3_stmt *del_learned;
	sqlite3_stmt *ins_sev_many; /* STORE_SEV_ROWS stream events */
	sqlite3_stmt *ins_sev_one;  /* one stream event */
	sqlite3_stmt *sel_req_id;   /* a request's id by (conn_id, seq) */
	sqlite3_stmt *ins_ws;       /* one WebSocket message */
	sqlite3_stmt *ins_tcps;     /* one TCP_INFO sample */
	/* the writer's: the request the last WebSocket batch went under */
	int64_t ws_conn, ws_req;
	int ws_seq;
	/* the writer's: SHA-256 fetched once (an implicit fetch per digest
	 * costs a provider lookup), and recent bodies, newest first */
	EVP_MD *sha256;
	EVP_MD_CTX *md_ctx;
	struct store_seen seen[STORE_SEEN_MAX];
	size_t nseen;
	size_t seen_bytes;

	pthread_t thread;
	int started;

	/* Everything below is guarded by mtx. */
	pthread_mutex_t mtx;
	pthread_cond_t cond;
	struct store_rec *head;
	struct store_rec *tail;
	size_t count; /* queued plus the batch being written */
	size_t bytes; /* their store_rec_bytes */
	size_t queue_max;
	size_t queue_bytes_max;
	int backlogged; /* past a limit, not yet below half of both */
	int stopping;
	struct event **watch;
	size_t nwatch;
	uint64_t written;
	uint64_t failed;

	/*
	 * Connection ids. [id_next, id_end) is the block being handed out,
	 * [spare_first, spare_end) the one reserved next (empty until the
	 * writer has it). id_want asks the writer for a spare; it is set
	 * under id_mtx and the writer is woken through mtx/cond.
	 */
	pthread_mutex_t id_mtx;
	pthread_cond_t id_cond;
	int64_t id_next, id_end, spare_first, spare_end;
	_Atomic int id_want;

	/* the writer's: who reloads the learned list, the file's
	 * data_version when last looked, and when that was */
	void (*learned_cb)(struct store *st, void *arg);
	void *learned_arg;
	int data_version;
	int64_t polled_us;
	FILE *keylog; /* SSLKEYLOGFILE, the writer's once started */
	/* who turns printed records into `peephole run` lines */
	void (*printer)(const struct store_rec *rec, void *arg);
	void *printer_arg;
	struct store_rec *(*derive)(const struct store_request *r);
};

/* store_rec.c */
const char *store_rec_kind(const struct store_rec *rec);

/* store_write.c: the writer thread's (or the opener's before it starts) */
int store_prepare(struct store *st, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void store_stmts_free(struct store *st);
int store_bind_text(sqlite3_stmt *s, int i, const char *v);
int store_bind_u64(sqlite3_stmt *s, int i, uint64_t v);
int store_step(sqlite3_stmt *s);
int store_begin(struct store *st) __attribute__((warn_unused_result));
size_t store_write_batch(struct store *st, struct store_rec *batch);

/* store_body.c: the writer thread's */
int store_put_body(struct store *st, const struct store_body *b, char hex[65])
    __attribute__((warn_unused_result));
void store_seen_adopt(struct store *st, struct store_body *b);
void store_seen_settle(struct store *st);
void store_body_free(struct store *st);

/* store_ids.c */
int store_reserve_ids(struct store *st, int64_t n, int64_t *first)
    __attribute__((warn_unused_result));
void store_refill_ids(struct store *st);

#endif
