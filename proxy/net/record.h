/*
 * record: what a logged exchange and a logged connection are. Builds the
 * store's rows (struct store_rec) from a connection's and an exchange's
 * state; the store's writer thread only writes them. Loop thread only.
 */
#ifndef PEEPHOLE_RECORD_H
#define PEEPHOLE_RECORD_H

#include <stddef.h>

struct conn;
struct evbuffer;
struct resolve_result;
struct store_rec;

/* The request row's head fields, from the parsed request head. */
void record_request_head(struct conn *c);

/* The request row's answer fields, from the parsed answer head. */
void record_response_head(struct conn *c);

/* The origin connection's timings (fresh, or reused: zeros). */
void record_upstream_timings(struct conn *c);

/* Record an answer peephole wrote itself (the n bytes at before in out)
 * as an origin's is recorded: head fields, content type and body. */
void record_own_answer(
    struct conn *c, struct evbuffer *out, size_t before, size_t n);

/* This client was told host -> each address of res: name sightings. */
void record_sightings(struct conn *c, const struct resolve_result *res);

/* The connections row for c, closing for reason (err may be NULL); NULL
 * on ENOMEM. The caller submits it. */
struct store_rec *record_conn_row(
    struct conn *c, const char *reason, const char *err);

#endif
