/*
 * web_reader: the reader threads. Each owns a read-only SQLite connection
 * and takes jobs from one queue; a finished job goes on the done list and
 * wakes the web loop (event_active), which answers it. The loop never
 * calls SQLite.
 */
#include <event2/event.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/store/db.h"
#include "proxy/web/web_int.h"

struct web_job *
web_job_new(struct web *w, enum web_job_kind kind)
{
	struct web_job *j = calloc(1, sizeof(*j));

	if (j == NULL)
		return NULL;
	j->w = w;
	j->kind = kind;
	return j;
}

void
web_job_free(struct web_job *j)
{
	if (j == NULL)
		return;
	json_decref(j->json);
	free(j->text);
	webq_blob_free(&j->blob);
	free(j->filter);
	free(j->arg);
	if (j->wr != NULL)
		web_req_release(j->wr);
	free(j);
}

int
web_job_submit(struct web_job *j)
{
	struct web *w = j->w;
	int rc = -1;

	pthread_mutex_lock(&w->mu);
	if (!w->stopping && w->nqueued < WEB_QUEUE_MAX) {
		j->next = NULL;
		if (w->queue_tail != NULL)
			w->queue_tail->next = j;
		else
			w->queue = j;
		w->queue_tail = j;
		w->nqueued++;
		pthread_cond_signal(&w->cv);
		rc = 0;
	}
	pthread_mutex_unlock(&w->mu);
	return rc;
}

/* Run j's query on db, filling its results. Reader thread. */
static void
web_job_run(struct web_job *j, sqlite3 *db)
{
	struct webq_err *e = &j->err;

	e->status = 500;
	e->msg[0] = '\0';
	switch (j->kind) {
	case WEB_JOB_FLOWS:
	case WEB_JOB_CHECK:
		j->json = webq_flows(db, &j->page, e);
		break;
	case WEB_JOB_CONNS:
		j->json = webq_conns(db, j->page.after, j->page.limit, e);
		break;
	case WEB_JOB_FLOW:
		j->json = webq_flow(db, j->id, j->raw, e);
		break;
	case WEB_JOB_BODY:
		j->failed =
		    webq_body(db, j->id, j->resp, j->raw, &j->blob, e) == -1;
		return;
	case WEB_JOB_DOMAINS:
		j->json = webq_domains(db, e);
		break;
	case WEB_JOB_STREAMS:
		j->json = webq_streams(db, e);
		break;
	case WEB_JOB_STREAM:
		j->json = webq_stream(db, j->id, e);
		break;
	case WEB_JOB_PASSTHROUGH:
		j->json = webq_passthrough(db, e);
		break;
	case WEB_JOB_CURSOR:
		j->failed = webq_cursor_now(db, &j->cursor, e) == -1;
		return;
	case WEB_JOB_CHANGES:
		if ((j->json = json_array()) != NULL &&
		    webq_changes(db, &j->cursor, j->filter, j->limit, j->json,
			e) == -1) {
			json_decref(j->json);
			j->json = NULL;
		}
		break;
	}
	j->failed = j->json == NULL;
	/* an answer's JSON is written out here, not on the web loop (a page
	 * of 5000 flows is megabytes) */
	if (j->json != NULL && j->sse == NULL && j->kind != WEB_JOB_CHECK) {
		j->text =
		    json_dumps(j->json, JSON_COMPACT | JSON_REAL_PRECISION(12));
		json_decref(j->json);
		j->json = NULL;
		if (j->text == NULL) {
			j->failed = 1;
			e->status = 500;
			snprintf(e->msg, sizeof(e->msg), "out of memory");
		}
	}
}

static void *
web_reader_main(void *arg)
{
	struct web *w = arg;
	struct web_job *j;
	sqlite3 *db;

	pthread_mutex_lock(&w->mu);
	db = w->dbs[w->nreaders++]; /* each thread its own connection */
	for (;;) {
		while (w->queue == NULL && !w->stopping)
			pthread_cond_wait(&w->cv, &w->mu);
		if (w->stopping)
			break;
		j = w->queue;
		if ((w->queue = j->next) == NULL)
			w->queue_tail = NULL;
		w->nqueued--;
		pthread_mutex_unlock(&w->mu);

		web_job_run(j, db);

		pthread_mutex_lock(&w->mu);
		j->next = NULL;
		if (w->done_tail != NULL)
			w->done_tail->next = j;
		else
			w->done = j;
		w->done_tail = j;
		event_active(w->done_ev, EV_READ, 0);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

void
web_readers_done_cb(int fd, short what, void *arg)
{
	struct web *w = arg;
	struct web_job *j, *next;

	(void)fd;
	(void)what;
	if (w->closing)
		return; /* web_readers_stop frees them */
	pthread_mutex_lock(&w->mu);
	j = w->done;
	w->done = w->done_tail = NULL;
	pthread_mutex_unlock(&w->mu);
	for (; j != NULL; j = next) {
		next = j->next;
		if (j->sse != NULL)
			web_sse_job_done(j);
		else
			web_api_job_done(j);
	}
}

int
web_readers_start(struct web *w, char *err, size_t errlen)
{
	sigset_t all, old;
	int k, started = 0;

	for (k = 0; k < WEB_READERS; k++) {
		if ((w->dbs[k] = db_open_readonly("web", w->db_path)) == NULL) {
			snprintf(err, errlen, "cannot read %s", w->db_path);
			return -1;
		}
	}
	/* signals stay with the main thread */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (k = 0; k < WEB_READERS; k++) {
		if (pthread_create(&w->readers[k], NULL, web_reader_main, w) !=
		    0)
			break;
		started++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	w->nstarted = started;
	if (started < WEB_READERS) {
		snprintf(err, errlen, "cannot start the reader threads");
		pthread_mutex_lock(&w->mu);
		w->stopping = 1;
		pthread_cond_broadcast(&w->cv);
		pthread_mutex_unlock(&w->mu);
		for (k = 0; k < started; k++)
			pthread_join(w->readers[k], NULL);
		w->nstarted = 0;
		return -1;
	}
	return 0;
}

/* Stop the readers (each finishes the job in hand), then free every job
 * still queued or done: their requests are ended with the server. */
void
web_readers_stop(struct web *w)
{
	struct web_job *j, *next;
	int k;

	pthread_mutex_lock(&w->mu);
	w->stopping = 1;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	/* a reader deep in a long body search stops at once */
	for (k = 0; k < WEB_READERS; k++)
		if (w->dbs[k] != NULL)
			sqlite3_interrupt(w->dbs[k]);
	for (k = 0; k < w->nstarted; k++)
		pthread_join(w->readers[k], NULL);
	for (int pass = 0; pass < 2; pass++) {
		j = pass == 0 ? w->queue : w->done;
		for (; j != NULL; j = next) {
			next = j->next;
			web_job_free(j);
		}
	}
	w->queue = w->queue_tail = w->done = w->done_tail = NULL;
	for (k = 0; k < WEB_READERS; k++) {
		sqlite3_close(w->dbs[k]);
		w->dbs[k] = NULL;
	}
}
