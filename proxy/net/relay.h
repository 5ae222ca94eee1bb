/*
 * relay: bytes both ways, untouched, after a 101 or a CONNECT whose
 * content is not read (or no longer can be): back-pressure each way,
 * half-close passed on, and the stream's record-level shape noted by
 * stream.c. Loop thread only.
 */
#ifndef PEEPHOLE_RELAY_H
#define PEEPHOLE_RELAY_H

#include <stddef.h>
#include <stdint.h>

struct bufferevent;
struct evbuffer;
struct conn;

/* Move n bytes from src to c's side to: written at once when nothing is
 * queued there and it is a plain socket, else queued on its output. */
void relay_send(
    struct conn *c, struct bufferevent *to, struct evbuffer *src, size_t n);

/* Enable what on bev where it is not enabled yet (no epoll churn). */
void relay_enable(struct bufferevent *bev, short what);

/* Enter CONN_TUNNEL's work: move what is buffered, relay from now on. */
void relay_start(struct conn *c);

/* Inside a tunnel, llhttp refused the app's bytes: record why, relay the
 * rest unread. */
void relay_unparsed(struct conn *c, const char *why);

/* Move bytes from one side to the other, with back-pressure. */
void relay_move(struct conn *c, struct bufferevent *from,
    struct bufferevent *to, uint64_t *counter_in, uint64_t *counter_out);

/* Pass each side's FIN on once its bytes are through; both done: close. */
void relay_check_fin(struct conn *c);

/* The client side of the tunnel sent its FIN. */
void relay_client_eof(struct conn *c);

/* The origin side of the tunnel closed (EOF) or failed. */
void relay_up_event(struct conn *c, short what);

/* A plain socket with more to read: read it in big slices now. */
void relay_read_more(struct conn *c, struct bufferevent *bev);

#endif
