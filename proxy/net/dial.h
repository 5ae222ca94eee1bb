/*
 * dial: get an origin connection for the exchange in flight: the one kept
 * for this client, a pooled one, or resolve and connect (each address in
 * turn), and one retry on a fresh connection when a pooled one was dead.
 * Once connected it moves the connection on with conn_enter() (EXCHANGE,
 * TUNNEL or SNIFF); failures are answered with exchange_fail(). Loop
 * thread only.
 */
#ifndef PEEPHOLE_DIAL_H
#define PEEPHOLE_DIAL_H

struct bufferevent;
struct conn;

/* Start getting an origin connection for c->url (kept, pooled, or new). */
void dial_start(struct conn *c);

/* RESOLVE's entry work: look c->url.host up. */
void dial_resolve(struct conn *c);

/* Try the next resolved address; after the last, answer 502. */
void dial_connect_next(struct conn *c, const char *last_err);

/* The connect (and origin TLS) finished or failed: what the upstream
 * bufferevent's event callback saw while c was in CONN_CONNECT. */
void dial_connect_event(struct conn *c, short what);

/* RESOLVE's or CONNECT's deadline passed. */
void dial_timeout(struct conn *c);

/* Keep c->up as this client's idle origin connection (c->up_idle). */
void dial_keep(struct conn *c);

/*
 * A pooled connection died before answering: send the request again on a
 * fresh one when that is safe. 1 when a retry started, else 0.
 */
int dial_retry_fresh(struct conn *c);

/* Let go of the addresses of the last lookup (connected, or closing). */
void dial_forget(struct conn *c);

/* Small writes go at once: TCP_NODELAY on bev's socket. */
void dial_set_nodelay(struct bufferevent *bev);

#endif
