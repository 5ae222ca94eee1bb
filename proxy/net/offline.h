/*
 * offline: server replay — answering requests from a capture
 * (`run --replay-from DB`) instead of the origin. A request whose method
 * and URL (and, with --match-body, body) match a logged exchange gets the
 * logged status, headers and body, read from the capture by replaydb's
 * reader thread a slice at a time; the exchange is logged with replay_of
 * naming the answer it reused. Anything else gets a 404 saying why, or
 * goes to the origin with --forward-unmatched.
 */
#ifndef PEEPHOLE_OFFLINE_H
#define PEEPHOLE_OFFLINE_H

struct conn;

/*
 * A request head is complete (its record started). Returns 1 when the
 * capture answers it (or it was refused, or its body must be read to
 * decide): the connection is offline's until the exchange ends. 0: carry
 * on to the origin.
 */
int offline_request(struct conn *c);

/* The client's input / output moved while the exchange is offline's. */
void offline_read(struct conn *c);
void offline_write(struct conn *c);

/* Drop the exchange's state (the connection is closing or done). */
void offline_free(struct conn *c);

#endif
