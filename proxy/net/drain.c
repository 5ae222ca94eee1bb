/*
 * drain: the end of a client connection (CONN_DRAIN): what is queued is
 * flushed, a FIN is sent (close_notify first over TLS), and the client is
 * read and discarded briefly, so that a client still sending (a rejected
 * upload, an oversized head) reads our answer instead of a reset.
 */
#include "proxy/net/drain.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include "proxy/log.h"
#include "proxy/net/conn_int.h"
#include "proxy/net/relay.h"
#include "proxy/net/deadline.h"

/* What a closing connection reads and discards at most. */
#define DRAIN_LINGER_BYTES (1024 * 1024)

/*
 * The client has everything it will get: send FIN and keep reading (and
 * discarding) briefly, so that a client still sending — a rejected upload,
 * an oversized head — reads our answer instead of a reset.
 */
void
drain_linger(struct conn *c)
{
	SSL *ssl;

	if (c->end.lingering)
		return;
	if (c->craw != NULL && !c->end.close_notify_sent &&
	    (ssl = bufferevent_openssl_get_ssl(c->cbev)) != NULL &&
	    SSL_is_init_finished(ssl)) {
		/* a TLS client is told the end is the end (close_notify),
		 * not left to guess from a bare FIN */
		c->end.close_notify_sent = 1;
		(void)SSL_shutdown(ssl);
		ERR_clear_error();
	}
	if (c->craw != NULL &&
	    evbuffer_get_length(bufferevent_get_output(c->craw)) > 0) {
		/*
		 * Over TLS the filter's output is empty once OpenSSL has
		 * taken it, but the records may still wait in the socket's
		 * buffer: a FIN now would cut them off. Look again shortly
		 * (bounded by the drain deadline).
		 */
		static const struct timeval again = {0, 5000};
		c->end.flush_wait = 1;
		evtimer_add(c->timer, &again);
		return;
	}
	c->end.lingering = 1;
	(void)shutdown(bufferevent_getfd(c->craw ? c->craw : c->cbev), SHUT_WR);
	relay_enable(c->cbev, EV_READ);
	c->t_active_us = now_us();
	deadline_arm(c);
}

/* DRAIN's entry work: the client has everything once its output is out. */
void
drain_enter(struct conn *c)
{
	int flushed = evbuffer_get_length(bufferevent_get_output(c->cbev)) == 0;

	if (c->client_eof) {
		if (flushed)
			conn_close(c, c->end.drain_reason, c->end.drain_error);
		return;
	}
	if (flushed)
		drain_linger(c);
}

/* DRAIN's deadline: the FIN was sent and the client said nothing, TLS
 * records were still queued, or the client does not read its answer. */
void
drain_timeout(struct conn *c)
{
	if (c->end.lingering)
		conn_close(c, c->end.drain_reason, c->end.drain_error);
	else if (c->end.flush_wait) {
		c->end.flush_wait = 0;
		drain_linger(c);
	} else
		conn_close(c, "idle-timeout", "client did not read the answer");
}

/* DRAIN: what the client still sends is read and dropped, up to a bound.
 * A tunnel still flushing to its origin leaves it buffered. */
void
drain_client_read(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->cbev);
	size_t n = evbuffer_get_length(in);

	if (c->up != NULL)
		return;
	c->tot.bytes_from_client += n;
	c->end.discarded += n;
	evbuffer_drain(in, n);
	if (c->end.discarded > DRAIN_LINGER_BYTES)
		conn_close(c, c->end.drain_reason, c->end.drain_error);
}
