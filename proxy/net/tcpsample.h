/*
 * tcpsample: TCP timelines. While a stream is relayed, a timer on its
 * worker's loop reads TCP_INFO of both sockets (side 0 the client's, 1 the
 * origin's) every tcp-sample-interval: when relaying starts, every
 * interval, and at close. A reading that repeats the last one kept for its
 * leg (nothing sent, acknowledged or received, same RTT and window) is not
 * kept, so an idle stream costs no rows; each leg keeps at most
 * tcp-samples-max. The readings go to the store in batches
 * (STORE_REC_TCP_SAMPLES), so a long stream never holds more than one.
 * getsockopt(TCP_INFO) does not block. Worker loop thread only.
 */
#ifndef PEEPHOLE_TCPSAMPLE_H
#define PEEPHOLE_TCPSAMPLE_H

#include <stddef.h>
#include <stdint.h>

struct conn;
struct store_tcp_sample;
struct tcpsample;

/* Samples a batch holds at most before it goes to the store: a bound on
 * the memory a stream's sampling holds, whatever its length. */
#define TCPSAMPLE_BATCH 128

/*
 * Start sampling c's two sockets (relaying starts): the first reading now,
 * then one per interval. *out is the new sampler, which the caller owns
 * (c->stream), or NULL when sampling is off (interval or max 0, no store).
 * 0 / -1 (ENOMEM: the stream is relayed unsampled).
 */
int tcpsample_start(struct conn *c, struct tcpsample **out)
    __attribute__((warn_unused_result));

/* Stop the timer (the connection closes); NULL does nothing. */
void tcpsample_stop(struct tcpsample *t);

/*
 * At close (t_us, the row's close time): the last reading of the sockets
 * still open (fd -1: gone), the batch to the store, the timer stopped. 1
 * when the cap cut the samples short, else 0. NULL does nothing (0).
 */
int tcpsample_finish(
    struct tcpsample *t, int client_fd, int server_fd, int64_t t_us);

/* Free the sampler and its batch; NULL does nothing. */
void tcpsample_free(struct tcpsample *t);

/* Read TCP_INFO of fd into *out (side, t_us set). 1 read, 0 not (not a
 * TCP socket, closed, fd -1). */
int tcpsample_read(
    int fd, int side, int64_t t_us, struct store_tcp_sample *out);

#endif
