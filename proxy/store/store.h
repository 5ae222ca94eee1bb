/*
 * store: the flow store. One SQLite file in WAL mode, written only by the
 * writer thread, which drains a bounded queue in batched transactions.
 *
 * Worker threads build a struct store_rec and hand it to store_submit(); the
 * record then belongs to the store. The queue never drops a record: when it
 * is past its limit store_submit() still takes the record and returns 1, and
 * the caller stops reading from its client until the store's drain event
 * (registered with store_watch_drain) fires.
 */
#ifndef PEEPHOLE_STORE_H
#define PEEPHOLE_STORE_H

#include <stddef.h>
#include <stdint.h>

struct event;
struct store;

#define STORE_SCHEMA_VERSION 12
/* queue_max used when store_open() is given 0. */
#define STORE_QUEUE_MAX_DEFAULT 8192
/* queue_bytes_max used when store_open() is given 0. */
#define STORE_QUEUE_BYTES_DEFAULT ((size_t)64 << 20)
/* Records, and record bytes, written per BEGIN/COMMIT at most. */
#define STORE_BATCH_MAX 512
#define STORE_BATCH_BYTES ((size_t)8 << 20)
/* Connection ids a process reserves from the file at a time. */
#define STORE_ID_BLOCK 1024

enum store_rec_type {
	/* a client connection, written when it closes; its SNI and, for a
	 * tunnel, the name it asked for also become domain_ips evidence
	 * (source "sni" / "connect") for the server address it reached */
	STORE_REC_CONN = 1,
	/* one HTTP exchange, written when it ends; a complete 200 answer to
	 * WeChat's newgetdns also puts its answers in domain_ips (app-dns) */
	STORE_REC_REQUEST,
	STORE_REC_DOMAIN_IP, /* a name -> address fact (DNS answer, ...) */
	/* a (host, port) whose client refused the forged certificate: its
	 * back-off state after this rejection (struct store_learned) */
	STORE_REC_LEARNED_PASSTHROUGH,
	STORE_REC_STREAM_EVENTS, /* struct store_stream_events */
	STORE_REC_KEYLOG,        /* a TLS key-log line for SSLKEYLOGFILE */
	/* a (host, port) whose client accepted us: delete its learned row
	 * (u.learned.host and port only) */
	STORE_REC_LEARNED_FORGET,
	/* nothing to store: only printed, in order with the flow lines (a
	 * passthrough decision worth telling the user); struct store_note */
	STORE_REC_NOTE,
	/* messages of a WebSocket exchange (struct store_ws_messages,
	 * rec->u.ws), submitted after its request record */
	STORE_REC_WS_MESSAGES,
	/* TCP_INFO readings of a relayed connection's two sockets (struct
	 * store_tcp_samples, rec->u.tcps): tcp_samples rows */
	STORE_REC_TCP_SAMPLES
};

/* One captured body: up to the capture limit, bytes owned by the record. */
struct store_body {
	unsigned char *data; /* malloc'd, NULL when nothing captured */
	size_t len;          /* bytes in data */
	uint64_t total;      /* bytes the message body really had */
	int truncated;       /* total > len */
};

struct store_conn {
	int64_t id;     /* from store_next_conn_id() */
	char *listener; /* "http" */
	char *client_ip;
	int client_port;
	char *target_host; /* first host asked for on this connection */
	int target_port;
	char *server_ip; /* last upstream address used */
	int server_port;
	char *protocol; /* "http" */
	int64_t t_accept_us;
	int64_t t_first_byte_us; /* first byte from the client */
	int64_t t_close_us;
	uint64_t bytes_from_client;
	uint64_t bytes_to_client;
	uint64_t bytes_to_server;
	uint64_t bytes_from_server;
	int nrequests;
	char *close_reason; /* "client-eof", "idle-timeout", "error", ... */
	char *error;        /* NULL or text */
	/* HTTPS interception; every one NULL (SQL NULL) when it does not
	 * apply, e.g. for plain proxying. */
	char *sni;      /* server name the client's ClientHello asked for */
	char *alpn;     /* the list the client offered, "h2,http/1.1" */
	char *decision; /* "intercept" | "passthrough" | "block" */
	char *decision_reason; /* "rule *.bank.test", "pinned (learned)",
				  "not TLS", "upstream verify failed: ..." */
	char *tls_client; /* client leg, "TLSv1.3/TLS_AES_256_GCM_SHA384" */
	char *tls_server; /* origin leg, same form */
	char *upstream_cert_sha256;  /* hex SHA-256 of the origin's leaf */
	char *upstream_cert_subject; /* one-line DN */
	char *upstream_cert_issuer;
	char *verify_error; /* why the origin's chain was refused */
	/* ALPN (schema v10): the protocol agreed on the client leg, "h2" /
	 * "http/1.1", and the one the origin selected; NULL: none */
	char *alpn_client, *alpn_server;

	/* Streams (schema v3). Times are µs since the epoch, 0 = never. */
	char *listener_target; /* "host:port" as asked (CONNECT, SOCKS, orig
				  dst) */
	int64_t t_upstream_connected_us;
	int64_t t_first_up_us, t_last_up_us;     /* client -> server bytes */
	int64_t t_first_down_us, t_last_down_us; /* server -> client bytes */
	uint64_t reads_up, reads_down; /* socket reads carrying data */
	char *closed_by;   /* "client-fin", "client-rst", "server-fin",
			      "server-rst", "idle-timeout", "error", ... */
	int events;        /* stream_events rows written for this connection */
	int events_capped; /* 1 when the per-stream cap stopped recording */
	int tcp_samples_capped; /* 1 when tcp-samples-max stopped sampling */
	/* TCP_INFO of each socket at close; has_tcpinfo_* = 0 when unknown */
	int has_tcpinfo_client, has_tcpinfo_server;
	struct store_tcpinfo {
		uint32_t rtt_us, rttvar_us, retransmits, total_retrans, lost,
		    reordering, snd_cwnd, pmtu;
	} tcpinfo_client, tcpinfo_server;
	/* mmTLS (longlink) record counts, both directions together */
	int mmtls_bad; /* garbage seen: parsing stopped ("mmtls?") */
	uint64_t mmtls_records, mmtls_handshake, mmtls_early, mmtls_data,
	    mmtls_alert;
};

/* One observation in a stream peephole relays without reading it. */
struct store_stream_event {
	int64_t t_us;
	uint8_t dir;        /* 0 client->server, 1 server->client */
	uint8_t mmtls_type; /* 0, or the mmTLS record type (0x15...0x19) */
	uint32_t bytes;     /* bytes read (or the mmTLS record length) */
};

/* A batch of events of one connection (sent every few hundred events and
 * at close, so a long stream never holds them all). */
struct store_stream_events {
	int64_t conn_id;
	size_t n;
	struct store_stream_event *ev; /* malloc'd array of n */
};

/*
 * One TCP_INFO reading of one socket of a relayed connection (Linux's
 * struct tcp_info). bytes_in_flight is what Linux counts as in flight
 * (tcp_packets_in_flight: unacked - sacked - lost + retrans segments)
 * times the send MSS; delivery_rate is in bytes per second.
 */
struct store_tcp_sample {
	int64_t t_us;
	uint8_t side; /* 0 the client's socket, 1 the origin's */
	uint32_t rtt_us, rttvar_us;
	uint32_t snd_cwnd; /* segments */
	uint32_t unacked;  /* segments sent, not yet acknowledged */
	uint32_t retrans;  /* tcpi_retransmits: RTOs in a row, now */
	uint32_t total_retrans;
	uint64_t bytes_in_flight, delivery_rate, bytes_acked, bytes_received;
};

/* A batch of samples of one connection (sent every few dozen and at
 * close, so a long stream never holds them all). */
struct store_tcp_samples {
	int64_t conn_id;
	size_t n;
	struct store_tcp_sample *s; /* malloc'd array of n */
};

struct store_request {
	int64_t conn_id;
	int seq; /* 1-based index of the exchange on its connection */
	int64_t t_start_us; /* first byte of the request */
	char *client_ip;
	char *scheme; /* "http" */
	char *method;
	char *host;
	int port;
	char *path;         /* without the query */
	char *query;        /* NULL when the URL has none, else without '?' */
	char *req_version;  /* "1.1" */
	char *resp_version; /* NULL if no response */
	int status;         /* 0 if no response */
	char *resp_reason;  /* the reason phrase as sent, NULL if none */
	char *req_headers;  /* "Name: value\r\n" lines as received */
	char *resp_headers; /* same, NULL if no response */
	uint64_t req_header_bytes;
	uint64_t resp_header_bytes;
	struct store_body req_body;
	struct store_body resp_body;
	char *content_type; /* of the response */
	char *server_ip;
	int server_port;
	int upstream_reused; /* 1 if the upstream connection was pooled */
	/* durations in µs; -1 when the phase did not happen */
	int64_t dns_us;
	int64_t connect_us; /* TCP and, for TLS, the handshake */
	int64_t tls_us;     /* the TLS handshake with the origin alone */
	int64_t ttfb_us;    /* request sent -> first response byte */
	int64_t total_us;
	char *error;       /* NULL, or why the exchange failed */
	int64_t replay_of; /* 0 = not a replay */
	char *label;       /* NULL, or "mmtls-shortlink" */
	/* HTTP/2 (schema v10). For an h2 exchange req_headers / resp_headers
	 * start with the pseudo-headers (":method: GET\r\n:path: /x\r\n"),
	 * then the fields in arrival order; req_version is "2". */
	int64_t stream_id; /* HTTP/2 client-leg stream id, 0 = HTTP/1 (stored
			      NULL) */
	char *up_version;  /* NULL = same as req_version */
	char *req_trailers, *resp_trailers; /* "Name: value\r\n" lines, NULL
					       none */
	char *stream_end; /* NULL = ended cleanly, else "rst-client CANCEL",
			     "rst-origin REFUSED_STREAM", "goaway-origin
			     NO_ERROR", ... */
};

/* One WebSocket message (a whole message: fragments joined). */
struct store_ws_msg {
	int64_t t_us;
	uint8_t dir;         /* 0 client->server, 1 server->client */
	uint8_t opcode;      /* 1 text, 2 binary, 8 close, 9 ping, 10 pong */
	uint8_t compressed;  /* permessage-deflate: size is the inflated size */
	uint8_t truncated;   /* data holds less than size */
	uint64_t size;       /* payload bytes (inflated) */
	uint64_t wire_bytes; /* bytes on the wire, frame headers included */
	int close_code;      /* -1 none */
	char *close_reason;  /* NULL or malloc'd */
	unsigned char *data; /* malloc'd payload, NULL if none */
	size_t len;          /* bytes in data, up to the body capture limit */
	char *error; /* NULL or malloc'd: why parsing of this connection's
			frames stopped (on the last message) */
};

/*
 * A batch of messages of the request (conn_id, seq): sent every few dozen
 * messages and at the end, never all held at once. The request row is
 * always submitted BEFORE its messages (same worker, same FIFO queue), so
 * the writer finds the request id by (conn_id, seq). first_idx is the idx
 * of m[0] (0-based order within the request, continuing across batches).
 * A batch whose request row is not there is dropped (logged).
 */
struct store_ws_messages {
	int64_t conn_id;
	int seq;
	int first_idx;
	size_t n;
	struct store_ws_msg *m; /* malloc'd array of n */
};

struct store_domain_ip {
	char *domain;
	char *ip;
	char *source; /* "proxy-dns" | "app-dns" | "sni" | "connect" */
	int64_t t_us;
	int ttl; /* seconds, -1 unknown */
	/* NULL, or the client this answer was for: also a name_sightings
	 * row, which names that client's later bare-address connections */
	char *client_ip;
	int sighting_only; /* the domain_ips fact is written elsewhere */
};

/*
 * A (host, port) whose clients refuse the forged certificate. Written as an
 * upsert: a pair seen again keeps its first sighting, moves last_seen,
 * counts one more and takes the back-off state as given (the proxy's
 * in-memory set computes it).
 */
struct store_learned {
	char *host;
	int port;
	char *reason; /* "client rejected forged certificate: ..." or NULL */
	int64_t t_us;
	int rejections;        /* in a row, this one included */
	int64_t next_retry_us; /* passed through until then */
};

/* One learned row as store_load_learned hands it over. */
struct store_learned_row {
	const char *host;
	int port;
	int rejections;
	int64_t next_retry_us; /* 0: intercept the next connection */
};

/* A line for `peephole run`'s output that is not a row (STORE_REC_NOTE). */
struct store_note {
	int64_t conn_id;
	int64_t t_us;
	char *client_ip;
	char *text; /* "passthrough host:port pinned (learned): ..." */
};

struct store_rec {
	enum store_rec_type type;
	struct store_rec *next; /* queue link, owned by the store */
	size_t bytes;           /* memory it holds, set by store_submit */
	/* 1: once the record is stored, the writer hands it to the printer
	 * (store_set_printer): the `peephole run` flow line */
	int print;
	/* set by the writer: the requests row id the insert got; 0 when the
	 * record was not written (a discarding store, a failure) */
	int64_t row_id;
	union {
		struct store_conn conn;
		struct store_request req;
		struct store_domain_ip dip;
		struct store_learned learned;
		struct store_stream_events sev;
		struct store_tcp_samples tcps;
		struct store_note note;
		struct store_ws_messages ws;
		struct {
			char *line; /* NSS key-log format, with its newline */
		} keylog;
	} u;
};

/* A zeroed record of the given type (durations set to -1). NULL on ENOMEM. */
struct store_rec *store_rec_new(enum store_rec_type type);
/* Free a record and every string it holds. NULL does nothing. */
void store_rec_free(struct store_rec *rec);

/* Bytes of memory a record holds (strings, bodies, events), roughly. */
size_t store_rec_bytes(const struct store_rec *rec);

/* How much the queue holds before store_submit asks for back-pressure;
 * 0 in either takes the default. */
struct store_limits {
	size_t queue_max;       /* records */
	size_t queue_bytes_max; /* bytes, as store_rec_bytes counts them */
};

/*
 * Open (creating and migrating as needed) the database at path, in WAL mode,
 * and reserve a first block of connection ids. Called on the main thread
 * before any worker starts. NULL with a message in err on failure.
 */
struct store *store_open(const char *path, struct store_limits lim, char *err,
    size_t errlen) __attribute__((warn_unused_result));

/* Start the writer thread. 0 / -1. */
int store_start(struct store *st) __attribute__((warn_unused_result));

/*
 * Next connection id, unique among every process that writes this file, now
 * or earlier: ids come from blocks the writer thread reserves in the file
 * ahead of need. Any thread; it waits only if the next block is not there
 * yet (another process holding the file's write lock for seconds), and
 * after STORE_ID_WAIT_MS returns -1 (logged).
 */
int64_t store_next_conn_id(struct store *st);
#define STORE_ID_WAIT_MS 2000

/*
 * Hand rec to the writer (ownership moves). Any thread. Returns 0, or 1 when
 * the queue is past its limit in records or in bytes: the caller should
 * pause its client until the drain events fire.
 */
int store_submit(struct store *st, struct store_rec *rec);

/* 1 while the queue is past its limit. Any thread. */
int store_backlogged(struct store *st);

/*
 * Register an event the writer activates (event_active) each time the queue
 * falls from past its limit to below half of it (both records and bytes).
 * Call before store_start.
 */
void store_watch_drain(struct store *st, struct event *ev);

/*
 * A store that keeps nothing (record-flows no): the writer thread only hands
 * records to the printer and frees them, so the proxy runs the same path
 * either way.
 */
struct store *store_open_discard(struct store_limits lim)
    __attribute__((warn_unused_result));

/*
 * Call cb for every learned (host, port) in the open store, host then port
 * order, so the proxy starts with what earlier runs learned. Main thread,
 * after store_open and before store_start (the writer owns the file once
 * it runs), or the writer thread inside a store_watch_learned callback. A
 * discarding store has nothing and returns 0. 0 / -1 (logged).
 */
int store_load_learned(struct store *st,
    void (*cb)(const struct store_learned_row *row, void *arg), void *arg)
    __attribute__((warn_unused_result));

/*
 * Have the writer thread call cb(st, arg) when another process (`peephole
 * passthrough retry | clear`) changed the file: it looks at PRAGMA
 * data_version about every STORE_POLL_MS, so the callback can reload the
 * learned list with store_load_learned. Call before store_start.
 */
#define STORE_POLL_MS 250
void store_watch_learned(
    struct store *st, void (*cb)(struct store *st, void *arg), void *arg);

/*
 * Append STORE_REC_KEYLOG lines to path (created 0600): the SSLKEYLOGFILE
 * Wireshark reads. Main thread, before store_start. 0 / -1 + err.
 */
int store_set_keylog(struct store *st, const char *path, char *err,
    size_t errlen) __attribute__((warn_unused_result));

/*
 * Have the writer thread call cb(rec, arg) for every record with print set,
 * once it is written (rec->row_id known), in queue order; cb must not keep
 * rec. The writer flushes stdout after each batch. Call before store_start.
 */
void store_set_printer(struct store *st,
    void (*cb)(const struct store_rec *rec, void *arg), void *arg);

/*
 * Have the writer thread call derive(r) for every request row it writes:
 * it returns the records that row implies (linked by next, NULL for none),
 * which the writer writes in the same batch and frees. derive runs on the
 * writer thread, off the event loops, so it may parse a captured body;
 * it must touch nothing but r. Call before store_start.
 */
void store_set_deriver(struct store *st,
    struct store_rec *(*derive)(const struct store_request *r));

/* Write everything queued, stop the writer, close the file. NULL ok. */
void store_close(struct store *st);

/* Counters for the status page and tests. Any thread. */
uint64_t store_written(struct store *st);
size_t store_queued(struct store *st);
/* Bytes held by queued records (and the batch being written). */
size_t store_queued_bytes(struct store *st);
/* Records that could not be written (each one logged). Any thread. */
uint64_t store_failed(struct store *st);

#endif
