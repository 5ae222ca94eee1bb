/*
 * learned: the host:port pairs whose clients rejected peephole's forged
 * certificate (certificate pinning, or a CA not trusted yet), shared by all
 * workers. An entry is a back-off, not a verdict: after a rejection the
 * pair is passed through until its retry time, then intercepted again;
 * each further rejection doubles the wait (up to LEARNED_MAX_WAIT_US), and
 * a handshake the client completes forgets the pair. Loaded from the store
 * at start and reloaded when another process edits the table; changes are
 * written back through the store.
 */
#ifndef PEEPHOLE_LEARNED_H
#define PEEPHOLE_LEARNED_H

#include <stddef.h>
#include <stdint.h>

/* The longest back-off: a day. */
#define LEARNED_MAX_WAIT_US (24LL * 3600 * 1000000)

struct learned;

struct learned *learned_new(void) __attribute__((warn_unused_result));
void learned_free(struct learned *l);

/*
 * The wait after the nth rejection in a row (n >= 1): base_us doubled
 * n - 1 times, capped at LEARNED_MAX_WAIT_US. Pure.
 */
int64_t learned_delay(int64_t base_us, int n);

/*
 * Set host:port's state as loaded from the store: rejections in a row and
 * the time (µs since the epoch) before which it is passed through. 0, or
 * -1 on ENOMEM. Any thread.
 */
int learned_set(struct learned *l, const char *host, int port, int rejections,
    int64_t next_retry_us) __attribute__((warn_unused_result));

/*
 * A rejection at now_us: one more in a row, passed through for
 * learned_delay(base_us, rejections). Returns the new count of rejections
 * (1 for a new pair) with the retry time in *next_retry_us, or -1 on
 * ENOMEM. Any thread.
 */
int learned_reject(struct learned *l, const char *host, int port,
    int64_t now_us, int64_t base_us, int64_t *next_retry_us)
    __attribute__((warn_unused_result));

/*
 * 1 if host:port is backing off at now_us (pass it through), with the time
 * left in *left_us when left_us is not NULL; 0 if unknown or due for
 * another try. Any thread.
 */
int learned_backoff(struct learned *l, const char *host, int port,
    int64_t now_us, int64_t *left_us);

/* Forget host:port (a client accepted us). 1 if it was known, else 0. */
int learned_forget(struct learned *l, const char *host, int port);

/* The number of pairs known. Any thread. */
size_t learned_count(struct learned *l);

/*
 * Replace l's entries by src's and free src: the reload after another
 * process changed the table. Readers see the old set or the new one, never
 * a mix. Any thread.
 */
void learned_replace(struct learned *l, struct learned *src);

#endif
