/*
 * exchange: one request and its answer on a connection: where the request
 * goes, its timings, the capped capture of both bodies, the proxy's own
 * error answers, and handing the finished record to the store. The codec
 * (h1.c, later h2) reports heads and ends here. Loop thread only.
 */
#ifndef PEEPHOLE_EXCHANGE_H
#define PEEPHOLE_EXCHANGE_H

#include <stddef.h>
#include <stdint.h>

struct conn;
struct store_body;
struct store_rec;

/* Start the record of a request; head_complete 0 for a head llhttp
 * refused (what is known is kept). 0, or -1 on ENOMEM. */
int exchange_begin(struct conn *c, int head_complete)
    __attribute__((warn_unused_result));

/* The request head is complete: decide where it goes. */
void exchange_request_head(struct conn *c);

/* The request goes to its origin (its body, if any, still unread). */
void exchange_forward(struct conn *c);

/* Append a body span to capture b (room: its buffer size), up to the
 * capture limit; expect is the announced length, 0 if none. */
void exchange_capture(struct conn *c, struct store_body *b, size_t *room,
    uint64_t expect, const char *at, size_t len);

/* A span of answer body from elsewhere than the origin (server replay, our
 * own pages), captured like an origin's. */
void exchange_capture_resp(struct conn *c, const void *at, size_t len);

/* Note a status and an error on the record (the first of each stays). */
void exchange_rec_fail(struct conn *c, int status, const char *err);

/* Hand the record to the store. 1 when the store is past its limit (the
 * caller pauses this client), else 0. */
int exchange_submit(struct conn *c);

/* The same for a record that is not c->ex.rec (an h2 stream's); the
 * record belongs to the store after. */
int exchange_submit_rec(
    struct conn *c, struct store_rec *rec, size_t *req_room, size_t *resp_room);

/* Why the intercepted origin gets nothing (c->tls.verify_error set): it
 * could not be reached, or its certificate is not trusted. Into buf. */
void exchange_origin_failure(const struct conn *c, char *buf, size_t len);

/* Answer the request ourselves with an error, record it, and drain. */
void exchange_fail(struct conn *c, int status, const char *detail);

/* Both messages are complete: record, then keep or close each side. */
void exchange_end(struct conn *c);

/* The origin failed or closed before the answer was complete. */
void exchange_up_failed(struct conn *c, const char *why);

/* The client sent its FIN (CONN_EXCHANGE). */
void exchange_client_eof(struct conn *c);

/* The current state's deadline passed (CONN_EXCHANGE). */
void exchange_timeout(struct conn *c);

#endif
