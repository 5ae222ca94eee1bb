/*
 * conn_int: the connection object, shared inside proxy/net by conn.c (the
 * HTTP state machine) and intercept.c (CONNECT, sniffing, TLS). Nothing
 * outside proxy/net includes this.
 */
#ifndef PEEPHOLE_CONN_INT_H
#define PEEPHOLE_CONN_INT_H

#include <llhttp.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/queue.h>

#include "proxy/http/head.h"
#include "proxy/http/url.h"
#include "proxy/net/resolve.h"

struct bufferevent;
struct stream;
struct event;
struct evbuffer;
struct h2;
struct ws;
struct offline;
struct resolve_req;
struct store_rec;
struct upstream;
struct worker;

enum conn_state {
	CONN_READ_HEAD = 0, /* waiting for, or reading, a request head */
	CONN_RESOLVE,       /* looking up the origin's name */
	CONN_CONNECT,       /* TCP connect to the origin */
	CONN_EXCHANGE,      /* request body and response flowing */
	CONN_TUNNEL,        /* bytes both ways (after 101 or CONNECT) */
	CONN_DRAIN,         /* flushing the last bytes to the client */
	CONN_SNIFF,         /* after CONNECT: waiting for the first bytes */
	CONN_TLS_DOWN,      /* TLS handshake with the client (forged cert) */
	CONN_SOCKS,         /* SOCKS5 greeting, authentication, request */
	CONN_OFFLINE,       /* answered from a replayed capture (offline.c) */
	CONN_H2,            /* HTTP/2 with the client, streams (h2.c) */
	CONN_CLOSED
};

/* What a CONNECT tunnel carries once peephole has looked inside. */
enum conn_inner {
	CONN_INNER_NONE = 0, /* the forward proxy itself, or a byte tunnel */
	CONN_INNER_HTTP,     /* plain HTTP inside CONNECT */
	CONN_INNER_HTTPS     /* intercepted TLS: HTTP over forged TLS */
};

/*
 * The HTTP/1 codec's state (h1.c): both parsers, both heads as parsed and
 * as received, and the head that goes upstream.
 */
struct conn_h1 {
	llhttp_t reqp, respp;
	struct head reqh, resph;
	size_t head_bytes; /* raw bytes of the request head so far */
	int head_overflow; /* a head outgrew max-header-size */
	int in_head;       /* between message begin and headers complete */
	struct evbuffer *raw_head;  /* the request head as the client sent it */
	struct evbuffer *raw_resp;  /* the answer head as the origin sent it */
	struct evbuffer *up_head;   /* the request head that goes upstream */
	struct evbuffer *down_head; /* the answer head the explicit proxy
				       rewrote, on its way to the client */
};

/* The exchange in flight (exchange.c): one request and its answer. */
struct conn_exchange {
	struct store_rec *rec;            /* its record, until submitted */
	size_t req_room, resp_room;       /* capture buffer sizes */
	uint64_t req_expect, resp_expect; /* announced Content-Length */
	struct url url;
	int req_done, resp_done; /* each message complete */
	int resp_head_sent;      /* the answer head went to the client */
	int resp_interim;        /* the answer being read is a 1xx */
	int is_head, is_connect, req_upgrade;
	int64_t t_sent_us;   /* the request went to the origin */
	int retried;         /* sent again on a fresh origin connection */
	int shortlink;       /* an mmTLS shortlink exchange (POST /mmtls/) */
	int unparsed;        /* llhttp refused it: relayed unread from here */
	struct offline *off; /* server replay's state for this exchange */
};

/* Getting an origin connection (dial.c). */
struct conn_dial {
	struct resolve_req *dns; /* the lookup in flight */
	/*
	 * The origin connection of the last exchange, kept for this client's
	 * next request: clients mostly ask the same host again, and keeping
	 * it here spares the shared pool (and its limit) the churn.
	 */
	struct upstream *up_idle;
	struct resolve_result *addrs; /* tried in turn, while connecting */
	int addr_idx;
	int64_t t_connect_start_us;
	int64_t dns_elapsed_us; /* the last lookup for an origin, -1 none */
};

/* A tunnel and what interception learned of it (intercept.c). */
struct conn_tls {
	char *tunnel_host; /* the CONNECT (SOCKS, original dst) target */
	unsigned tunnel_port;
	int tunnel_raw;  /* the tunnel relays bytes: no HTTP error pages */
	int tls_pending; /* origin TLS under way, client TLS not yet */
	char sni[256];
	char alpn[64];        /* what the client offered, comma separated */
	char alpn_server[16]; /* what the origin chose ("" none) */
	char alpn_client[16]; /* what we agreed with the client */
	const char *decision; /* "intercept" | "passthrough" | "block" */
	char *decision_reason;
	char *verify_error; /* origin failed: every request gets a 502 */
	int up_unreachable; /* ... because it could not be reached at all */
	char tls_client[96], tls_server[96];
	char cert_sha[65], cert_subject[256], cert_issuer[256];
	/* the client TLS handshake as intercept's message callback saw it:
	 * alerts each way (-1 none), our Certificate sent, the client's
	 * Finished received */
	int tls_alert_in, tls_alert_out;
	int tls_cert_sent, tls_client_fin;
	const char *sniffed; /* what the first bytes said, once decided */
	/* sniff-timeout passed with nothing from the client: the origin is
	 * connected and whoever speaks first decides */
	int late_sniff;
	int h2c_pending; /* h2c in the tunnel: h2.c takes the origin leg */
};

/* The end of the connection (drain.c, relay.c's half-close). */
struct conn_end {
	int lingering;            /* FIN sent; waiting for the client's */
	int close_notify_sent;    /* ... after a TLS close_notify */
	int flush_wait;           /* TLS records still queued on the socket */
	uint64_t discarded;       /* bytes read and dropped while closing */
	const char *drain_reason; /* close reason once drained */
	char *drain_error;
	int fin_to_server, fin_to_client; /* tunnel half-close passed on */
};

/* Totals for the connections row (record.c). */
struct conn_totals {
	int64_t t_accept_us, t_first_byte_us;
	uint64_t bytes_from_client, bytes_to_client;
	uint64_t bytes_to_server, bytes_from_server;
	int nrequests;
	char *target_host;
	int target_port;
	char server_ip[INET6_ADDRSTRLEN];
	int server_port;
	const char *protocol;
};

/*
 * A client connection. conn.c owns it and the fields at the top; each
 * piece owns its part below and is the one that changes it. Only conn_free
 * releases what they hold.
 */
struct conn {
	TAILQ_ENTRY(conn) link;      /* w->conns */
	TAILQ_ENTRY(conn) wait_link; /* w->store_wait while waiting */
	int waiting_store;
	struct worker *w;
	int64_t id;
	enum conn_state state; /* changed by conn_enter() only */
	int listener;
	int mode; /* enum config_listen_mode of the listener */
	char client_ip[INET6_ADDRSTRLEN];
	int client_port;
	struct bufferevent *cbev; /* the client: its socket, or TLS filter */
	struct bufferevent *craw; /* the client socket under the TLS filter */
	struct upstream *up;      /* the origin connection in use */
	struct event *timer;      /* deadline.c */
	int64_t t_active_us;      /* last progress, for the idle deadlines */
	int64_t t_state_us;       /* when the current state began */
	enum conn_inner inner;    /* what a tunnel carries, once known */
	int client_ka;    /* keep the client connection after this exchange */
	int client_eof;   /* the client sent its FIN */
	int up_eof;       /* the origin closed; parse what is left, then end */
	int idle_trimmed; /* idle buffers released (deadline.c) */
	int read_throttled;    /* ... and the TLS filter reads 1 byte at most */
	int socks_step;        /* socks.c's handshake position */
	struct stream *stream; /* stream.c's record of a relayed stream */
	struct h2 *h2;         /* h2.c's codec, in CONN_H2 */
	struct ws *ws;         /* ws.c's record of a WebSocket tunnel */

	struct conn_h1 h1;
	struct conn_exchange ex;
	struct conn_dial dial;
	struct conn_tls tls;
	struct conn_end end;
	struct conn_totals tot;
};

/*
 * conn.c: the transition function and the one teardown, for the pieces
 * (dial, h1, exchange, relay, intercept, socks, offline).
 */
void conn_enter(struct conn *c, enum conn_state st);
void conn_close(struct conn *c, const char *reason, const char *err);
void conn_drain(struct conn *c, const char *reason, const char *err);
/* the callbacks of the client's bufferevent, and of the origin's */
void conn_client_readcb(struct bufferevent *bev, void *arg);
void conn_client_writecb(struct bufferevent *bev, void *arg);
void conn_client_eventcb(struct bufferevent *bev, short what, void *arg);
void conn_up_readcb(struct bufferevent *bev, void *arg);
void conn_up_writecb(struct bufferevent *bev, void *arg);
void conn_up_eventcb(struct bufferevent *bev, short what, void *arg);
char *conn_strdup(const char *s);
char *conn_strndup(const char *s, size_t n);

#endif
