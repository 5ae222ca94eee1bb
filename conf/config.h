/*
 * config: peephole's settings, from defaults, then the conf file, then
 * command-line flags (later wins). Pure: no sockets, no exit(); errors come
 * back as "file:line: message" (or "--flag: message") in the caller's buffer.
 *
 * The loaded config is read-only after start-up and shared by all threads.
 */
#ifndef PEEPHOLE_CONFIG_H
#define PEEPHOLE_CONFIG_H

#include <stddef.h>

struct rules;

#define CONFIG_MAX_LISTEN 8
#define CONFIG_MAX_DNS 4
#define CONFIG_MAX_SOCKS_USERS 16
#define CONFIG_MAX_REPLAY_IGNORE 32

enum config_listen_mode {
	CONFIG_LISTEN_HTTP = 0,    /* HTTP proxy: absolute URLs and CONNECT */
	CONFIG_LISTEN_SOCKS5,      /* RFC 1928 CONNECT (RFC 1929 auth) */
	CONFIG_LISTEN_TRANSPARENT, /* netfilter REDIRECT (SO_ORIGINAL_DST) */
	CONFIG_LISTEN_REVERSE,     /* every connection to one fixed origin */
};

struct config_listen {
	enum config_listen_mode mode;
	char host[256]; /* numeric address: "127.0.0.1", "::1", "0.0.0.0" */
	unsigned port;
	/* reverse: where every connection goes, a name or a numeric address
	 * (IPv6 without brackets); "" and 0 for the other modes */
	char target_host[256];
	unsigned target_port;
};

/* How `peephole run` prints its flow lines (format). */
enum config_format {
	CONFIG_FORMAT_TEXT = 0, /* one readable line per flow */
	CONFIG_FORMAT_JSON,     /* one compact JSON object per line */
};

struct config {
	struct config_listen listen[CONFIG_MAX_LISTEN];
	int nlisten; /* 0 after config_init: the default 127.0.0.1:8080 applies
		      */
	char *db_path;    /* "peephole.db" */
	int workers;      /* 0 = number of cores */
	int quiet;        /* no per-exchange line on stdout */
	int verbose;      /* 1: CONNECT exchanges get a line too */
	int format;       /* enum config_format of the lines: text */
	int log_level;    /* 0 warn, 1 info (default), 2 debug */
	int record_flows; /* 1: write flows to the db (default); 0: don't */

	unsigned connect_timeout_ms;     /* upstream TCP connect: 10000 */
	unsigned upstream_timeout_ms;    /* waiting for upstream bytes: 60000 */
	unsigned idle_timeout_ms;        /* idle client keep-alive: 60000 */
	unsigned header_timeout_ms;      /* a whole request head: 30000 */
	unsigned dns_timeout_ms;         /* one resolution: 5000 */
	unsigned shutdown_grace_ms;      /* in-flight on SIGTERM: 5000 */
	unsigned upstream_idle_ms;       /* pooled upstream kept: 30000 */
	unsigned upstream_pool_per_host; /* idle upstreams per host: 8 */

	size_t max_header_bytes;   /* request/response head: 65536 */
	size_t body_capture_bytes; /* captured per body: 1 MiB */
	size_t relay_buffer_bytes; /* per direction before pausing: 256 KiB */
	size_t store_queue_max;    /* records queued before back-pressure */
	size_t store_queue_bytes;  /* their bytes, likewise: 64 MiB */
	int via_header; /* 1: the explicit proxy adds "Via: 1.1 peephole" */
	int http2;      /* 1: intercepted HTTP/2 (ALPN h2, h2c); 0: h1 only */

	char
	    *dns_servers[CONFIG_MAX_DNS]; /* "ip" or "ip:port"; none = system */
	int ndns;
	char *hosts_file; /* NULL = /etc/hosts */

	/* HTTPS interception */
	char *home; /* CA directory; NULL = $PEEPHOLE_HOME, ~/.peephole */
	char *upstream_ca;     /* extra trust anchors for origins (PEM) */
	int insecure_upstream; /* 1: do not verify origins (said at start) */
	int auto_passthrough;  /* 1: pass hosts whose clients reject us */
	/* first back-off after a rejection, doubled per further one: 60000 */
	unsigned pinning_retry_ms;
	size_t forge_cache_size;   /* forged certificates kept: 1024 */
	unsigned sniff_timeout_ms; /* wait for a tunnel's first bytes: 300 */
	struct rules *rules; /* intercept / passthrough / block, in order */

	/* streams */
	char *socks_users[CONFIG_MAX_SOCKS_USERS]; /* "user:password"; none =
						      no authentication */
	int nsocks_users;
	size_t stream_events_max; /* per stream: 10000; 0 = none */
	/* TCP_INFO of both legs of a relayed stream, read every interval
	 * (100; 0 = off); rows kept per leg at most tcp_samples_max
	 * (10000; 0 = none) */
	unsigned tcp_sample_interval_ms;
	size_t tcp_samples_max;
	unsigned half_close_ms; /* after a FIN in a tunnel: 1000 */

	/* server replay: answer from a capture */
	char *replay_from;   /* NULL: off */
	char *replay_filter; /* NULL: every logged exchange */
	int replay_match_body;
	int replay_forward_unmatched; /* 0: unmatched requests get 404 */
	char *replay_ignore[CONFIG_MAX_REPLAY_IGNORE]; /* query params */
	int nreplay_ignore;

	/* the web UI (proxy/web/web.h) */
	char *web_listen;   /* "[ADDR:]PORT"; NULL: no web UI */
	char *web_password; /* NULL: none (then loopback only) */
};

/* Fill defaults. Never fails. */
void config_init(struct config *cfg);

/* Release strings owned by cfg; cfg may then be config_init'ed again. */
void config_free(struct config *cfg);

/*
 * Set one setting by its conf-file name ("connect-timeout", "listen", ...).
 * Returns 0, or -1 with a message (without location) in err.
 */
int config_set(struct config *cfg, const char *key, const char *value,
    char *err, size_t errlen) __attribute__((warn_unused_result));

/*
 * Read a conf file: "key value" per line, '#' comments, blank lines.
 * Returns 0, or -1 with "path:line: message" in err (stops at the first
 * error).
 */
int config_load_file(struct config *cfg, const char *path, char *err,
    size_t errlen) __attribute__((warn_unused_result));

/* Parse "[mode@]host:port" / "[mode@][v6]:port" into out. 0 / -1 + err. */
int config_parse_listen(const char *spec, struct config_listen *out, char *err,
    size_t errlen) __attribute__((warn_unused_result));

#endif
