/*
 * config: see config.h. Every setting is one row of config_keys[]; the conf
 * file, --set and the dedicated flags all go through config_set(), so a
 * setting is parsed and bounded the same way whichever way it arrives.
 */
#include "conf/config.h"

#include "filters/rules.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define KIB ((unsigned long long)1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)

enum config_type {
	CONFIG_T_STRING,     /* char *, strdup'd */
	CONFIG_T_INT,        /* int within [min, max] */
	CONFIG_T_UINT,       /* unsigned within [min, max] */
	CONFIG_T_BOOL,       /* int 0 / 1 */
	CONFIG_T_LEVEL,      /* int 0 warn, 1 info, 2 debug */
	CONFIG_T_FORMAT,     /* int CONFIG_FORMAT_TEXT | CONFIG_FORMAT_JSON */
	CONFIG_T_DURATION,   /* unsigned milliseconds within [min, max] */
	CONFIG_T_SIZE,       /* size_t bytes within [min, max] */
	CONFIG_T_COUNT,      /* size_t count within [min, max], K/M/G allowed */
	CONFIG_T_LISTEN,     /* appended to listen[] */
	CONFIG_T_DNS,        /* appended to dns_servers[] */
	CONFIG_T_RULE,       /* appended to rules; min is the rules_action */
	CONFIG_T_SOCKS_USER, /* appended to socks_users: "user:password" */
	CONFIG_T_REPLAY_IGNORE, /* appended to replay_ignore */
};

struct config_key {
	const char *name;
	enum config_type type;
	size_t off; /* offset of the field in struct config */
	unsigned long long min, max;
};

#define F(field) offsetof(struct config, field)

static const struct config_key config_keys[] = {
    {"listen", CONFIG_T_LISTEN, 0, 0, 0},
    {"db", CONFIG_T_STRING, F(db_path), 0, 0},
    {"workers", CONFIG_T_INT, F(workers), 0, 256},
    {"quiet", CONFIG_T_BOOL, F(quiet), 0, 1},
    {"verbose", CONFIG_T_BOOL, F(verbose), 0, 1},
    {"format", CONFIG_T_FORMAT, F(format), 0, 1},
    {"log-level", CONFIG_T_LEVEL, F(log_level), 0, 2},
    {"record-flows", CONFIG_T_BOOL, F(record_flows), 0, 1},
    {"connect-timeout", CONFIG_T_DURATION, F(connect_timeout_ms), 1, UINT_MAX},
    {"upstream-timeout", CONFIG_T_DURATION, F(upstream_timeout_ms), 1,
	UINT_MAX},
    {"idle-timeout", CONFIG_T_DURATION, F(idle_timeout_ms), 1, UINT_MAX},
    {"header-timeout", CONFIG_T_DURATION, F(header_timeout_ms), 1, UINT_MAX},
    {"dns-timeout", CONFIG_T_DURATION, F(dns_timeout_ms), 1, UINT_MAX},
    {"shutdown-grace", CONFIG_T_DURATION, F(shutdown_grace_ms), 0, UINT_MAX},
    {"upstream-idle-timeout", CONFIG_T_DURATION, F(upstream_idle_ms), 1,
	UINT_MAX},
    {"upstream-pool-per-host", CONFIG_T_UINT, F(upstream_pool_per_host), 0,
	1024},
    {"max-header-size", CONFIG_T_SIZE, F(max_header_bytes), KIB, MIB},
    {"body-capture-limit", CONFIG_T_SIZE, F(body_capture_bytes), 0, GIB},
    {"relay-buffer", CONFIG_T_SIZE, F(relay_buffer_bytes), 16 * KIB, GIB},
    {"store-queue", CONFIG_T_COUNT, F(store_queue_max), 16, 16 * MIB},
    {"store-queue-bytes", CONFIG_T_SIZE, F(store_queue_bytes), MIB, 64 * GIB},
    {"dns-server", CONFIG_T_DNS, 0, 0, 0},
    {"hosts-file", CONFIG_T_STRING, F(hosts_file), 0, 0},
    {"home", CONFIG_T_STRING, F(home), 0, 0},
    {"upstream-ca", CONFIG_T_STRING, F(upstream_ca), 0, 0},
    {"insecure-upstream", CONFIG_T_BOOL, F(insecure_upstream), 0, 1},
    {"auto-passthrough", CONFIG_T_BOOL, F(auto_passthrough), 0, 1},
    {"pinning-retry", CONFIG_T_DURATION, F(pinning_retry_ms), 0,
	24 * 3600 * 1000},
    {"via", CONFIG_T_BOOL, F(via_header), 0, 1},
    {"http2", CONFIG_T_BOOL, F(http2), 0, 1},
    {"forge-cache-size", CONFIG_T_COUNT, F(forge_cache_size), 1, 16 * MIB},
    {"sniff-timeout", CONFIG_T_DURATION, F(sniff_timeout_ms), 1, UINT_MAX},
    {"intercept", CONFIG_T_RULE, 0, RULES_INTERCEPT, 0},
    {"passthrough", CONFIG_T_RULE, 0, RULES_PASSTHROUGH, 0},
    {"block", CONFIG_T_RULE, 0, RULES_BLOCK, 0},
    {"socks5-user", CONFIG_T_SOCKS_USER, 0, 0, 0},
    {"half-close-timeout", CONFIG_T_DURATION, F(half_close_ms), 1, UINT_MAX},
    {"stream-events-max", CONFIG_T_COUNT, F(stream_events_max), 0, 16 * MIB},
    {"tcp-sample-interval", CONFIG_T_DURATION, F(tcp_sample_interval_ms), 0,
	3600000},
    {"tcp-samples-max", CONFIG_T_COUNT, F(tcp_samples_max), 0, 16 * MIB},
    {"replay-from", CONFIG_T_STRING, F(replay_from), 0, 0},
    {"replay-filter", CONFIG_T_STRING, F(replay_filter), 0, 0},
    {"replay-match-body", CONFIG_T_BOOL, F(replay_match_body), 0, 1},
    {"replay-forward-unmatched", CONFIG_T_BOOL, F(replay_forward_unmatched), 0,
	1},
    {"replay-ignore-param", CONFIG_T_REPLAY_IGNORE, 0, 0, 0},
    {"web", CONFIG_T_STRING, F(web_listen), 0, 0},
    {"web-password", CONFIG_T_STRING, F(web_password), 0, 0},
};

#undef F

/*
 * The default db path is a static buffer rather than a strdup so that
 * config_init() cannot fail; config_free() and the string setter know not
 * to free it. Nobody writes through cfg->db_path (the config is read-only).
 */
static char config_default_db[] = "peephole.db";

static void config_err(char *, size_t, const char *, ...)
    __attribute__((format(printf, 3, 4)));

static void
config_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

void
config_init(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->nlisten = 0;
	cfg->db_path = config_default_db;
	cfg->workers = 0;
	cfg->quiet = 0;
	cfg->log_level = 1;
	cfg->record_flows = 1;
	cfg->http2 = 1;
	cfg->connect_timeout_ms = 10000;
	cfg->upstream_timeout_ms = 60000;
	cfg->idle_timeout_ms = 60000;
	cfg->header_timeout_ms = 30000;
	cfg->dns_timeout_ms = 5000;
	cfg->shutdown_grace_ms = 5000;
	cfg->upstream_idle_ms = 30000;
	cfg->upstream_pool_per_host = 8;
	cfg->max_header_bytes = 65536;
	cfg->body_capture_bytes = MIB;
	cfg->relay_buffer_bytes = 256 * KIB;
	cfg->store_queue_max = 4096;
	cfg->store_queue_bytes = 64 * MIB;
	cfg->ndns = 0;
	cfg->hosts_file = NULL;
	cfg->auto_passthrough = 1;
	cfg->pinning_retry_ms = 60000;
	cfg->forge_cache_size = 1024;
	cfg->sniff_timeout_ms = 300;
	cfg->stream_events_max = 10000;
	cfg->tcp_sample_interval_ms = 100;
	cfg->tcp_samples_max = 10000;
	cfg->half_close_ms = 1000;
}

static void
config_free_string(char **s)
{
	if (*s != config_default_db)
		free(*s);
	*s = NULL;
}

void
config_free(struct config *cfg)
{
	config_free_string(&cfg->db_path);
	config_free_string(&cfg->hosts_file);
	config_free_string(&cfg->home);
	config_free_string(&cfg->upstream_ca);
	config_free_string(&cfg->replay_from);
	config_free_string(&cfg->replay_filter);
	config_free_string(&cfg->web_listen);
	config_free_string(&cfg->web_password);
	for (int i = 0; i < cfg->nreplay_ignore && i < CONFIG_MAX_REPLAY_IGNORE;
	     i++)
		free(cfg->replay_ignore[i]);
	for (int i = 0; i < cfg->nsocks_users && i < CONFIG_MAX_SOCKS_USERS;
	     i++)
		free(cfg->socks_users[i]);
	rules_free(cfg->rules);
	for (int i = 0; i < cfg->ndns && i < CONFIG_MAX_DNS; i++)
		free(cfg->dns_servers[i]);
	/* zeroed, so a second config_free() (or config_init()) is harmless */
	memset(cfg, 0, sizeof(*cfg));
}

static const struct config_key *
config_lookup(const char *name)
{
	for (size_t i = 0; i < sizeof(config_keys) / sizeof(config_keys[0]);
	     i++)
		if (strcmp(config_keys[i].name, name) == 0)
			return &config_keys[i];
	return NULL;
}

/*
 * Read a run of decimal digits at *pp into *out and advance *pp past them.
 * Returns 0, or -1 if there are no digits or the number overflows.
 */
static int
config_digits(const char **pp, unsigned long long *out)
{
	const char *p = *pp;
	unsigned long long n = 0;

	if (!isdigit((unsigned char)*p))
		return -1;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');

		if (n > (ULLONG_MAX - d) / 10)
			return -1;
		n = n * 10 + d;
	}
	*pp = p;
	*out = n;
	return 0;
}

/* A whole, unsigned decimal number and nothing else. 0 / -1. */
static int
config_number(const char *s, unsigned long long *out)
{
	if (config_digits(&s, out) == -1 || *s != '\0')
		return -1;
	return 0;
}

/*
 * "500ms", "10s", "2m", or a plain number of seconds, into milliseconds.
 * 0 / -1 (not a duration, or more milliseconds than an unsigned holds).
 */
static int
config_duration(const char *s, unsigned long long *ms)
{
	unsigned long long n, mult;

	if (config_digits(&s, &n) == -1)
		return -1;
	if (*s == '\0' || strcmp(s, "s") == 0)
		mult = 1000;
	else if (strcmp(s, "ms") == 0)
		mult = 1;
	else if (strcmp(s, "m") == 0)
		mult = 60000;
	else
		return -1;
	if (n > UINT_MAX / mult)
		return -1;
	*ms = n * mult;
	return 0;
}

/*
 * A number with an optional K/KiB/M/MiB/G/GiB suffix (any case; all binary
 * multiples: a "K" of buffer is 1024 bytes here, as everywhere in peephole).
 * 0 / -1 (not a size, or it overflows).
 */
static int
config_size(const char *s, unsigned long long *out)
{
	unsigned long long n, mult;

	if (config_digits(&s, &n) == -1)
		return -1;
	if (*s == '\0')
		mult = 1;
	else if (strcasecmp(s, "k") == 0 || strcasecmp(s, "kib") == 0)
		mult = KIB;
	else if (strcasecmp(s, "m") == 0 || strcasecmp(s, "mib") == 0)
		mult = MIB;
	else if (strcasecmp(s, "g") == 0 || strcasecmp(s, "gib") == 0)
		mult = GIB;
	else
		return -1;
	if (n > SIZE_MAX / mult)
		return -1;
	*out = n * mult;
	return 0;
}

/* "yes"/"no" and friends. 0 / -1. */
static int
config_bool(const char *s, int *out)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}

/* A byte count for messages: "1 MiB" rather than "1048576" where exact. */
static void
config_fmt_size(char *buf, size_t len, unsigned long long n)
{
	if (n != 0 && n % GIB == 0)
		snprintf(buf, len, "%llu GiB", n / GIB);
	else if (n != 0 && n % MIB == 0)
		snprintf(buf, len, "%llu MiB", n / MIB);
	else if (n != 0 && n % KIB == 0)
		snprintf(buf, len, "%llu KiB", n / KIB);
	else
		snprintf(buf, len, "%llu", n);
}

/* A decimal port 1..65535. 0 / -1. */
static int
config_port(const char *s, unsigned *port)
{
	unsigned long long n;

	if (config_number(s, &n) == -1 || n < 1 || n > 65535)
		return -1;
	*port = (unsigned)n;
	return 0;
}

/*
 * Split "host:port" or "[v6]:port" (brackets removed) into host and the
 * port text. *v6 says whether the host was bracketed. With port_optional, a
 * bare host (no port) is accepted and *portp is NULL. 0 / -1 + err.
 */
static int
config_split_hostport(const char *spec, char *host, size_t hostlen,
    const char **portp, int *v6, int port_optional, char *err, size_t errlen)
{
	const char *hbeg, *hend, *port = NULL;
	size_t n;

	*v6 = 0;
	if (*spec == '[') {
		hbeg = spec + 1;
		hend = strchr(hbeg, ']');
		if (hend == NULL) {
			config_err(err, errlen, "missing ']' in '%s'", spec);
			return -1;
		}
		if (hend[1] == ':')
			port = hend + 2;
		else if (hend[1] != '\0' || !port_optional) {
			config_err(err, errlen,
			    "expected ':port' after ']' in '%s'", spec);
			return -1;
		}
		*v6 = 1;
	} else {
		hbeg = spec;
		hend = strrchr(spec, ':');
		if (hend != NULL && memchr(spec, ':', (size_t)(hend - spec))) {
			/* several colons: a bare IPv6 address */
			if (!port_optional) {
				config_err(err, errlen,
				    "an IPv6 address needs brackets, as in "
				    "[::1]:8080; got '%s'",
				    spec);
				return -1;
			}
			hend = spec + strlen(spec);
			*v6 = 1;
		} else if (hend != NULL)
			port = hend + 1;
		else if (port_optional)
			hend = spec + strlen(spec);
		else {
			config_err(
			    err, errlen, "expected host:port, got '%s'", spec);
			return -1;
		}
	}
	n = (size_t)(hend - hbeg);
	if (n == 0) {
		config_err(err, errlen, "missing host in '%s'", spec);
		return -1;
	}
	if (n >= hostlen) {
		config_err(err, errlen, "host too long in '%s'", spec);
		return -1;
	}
	memcpy(host, hbeg, n);
	host[n] = '\0';
	*portp = port;
	return 0;
}

/*
 * The mode in front of '@' (n bytes of spec). 0 / -1 + err.
 */
static int
config_listen_mode(const char *spec, size_t n, enum config_listen_mode *mode,
    char *err, size_t errlen)
{
	static const struct {
		const char *name;
		enum config_listen_mode mode;
	} modes[] = {
	    {"http", CONFIG_LISTEN_HTTP},
	    {"socks5", CONFIG_LISTEN_SOCKS5},
	    {"transparent", CONFIG_LISTEN_TRANSPARENT},
	    {"reverse", CONFIG_LISTEN_REVERSE},
	};

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		if (strlen(modes[i].name) == n &&
		    strncasecmp(spec, modes[i].name, n) == 0) {
			*mode = modes[i].mode;
			return 0;
		}
	config_err(err, errlen,
	    "unknown listen mode '%.*s' (http, socks5, transparent or "
	    "reverse)",
	    (int)(n > 32 ? 32 : n), spec);
	return -1;
}

/*
 * A reverse listener's origin, "host:port" or "[v6]:port": a DNS name
 * (resolved per connection, like a CONNECT target) or a numeric address.
 * 0 / -1 + err.
 */
static int
config_listen_target(
    const char *spec, struct config_listen *l, char *err, size_t errlen)
{
	unsigned char addr[sizeof(struct in6_addr)];
	const char *port;
	int v6;

	if (config_split_hostport(spec, l->target_host, sizeof(l->target_host),
		&port, &v6, 0, err, errlen) == -1)
		return -1;
	if (v6 && inet_pton(AF_INET6, l->target_host, addr) != 1) {
		config_err(err, errlen, "'%s' is not a numeric IPv6 address",
		    l->target_host);
		return -1;
	}
	if (!v6 &&
	    strspn(l->target_host,
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		"0123456789.-_") != strlen(l->target_host)) {
		config_err(err, errlen, "'%s' is not a host name or address",
		    l->target_host);
		return -1;
	}
	if (config_port(port, &l->target_port) == -1) {
		config_err(
		    err, errlen, "port must be 1..65535, got '%s'", port);
		return -1;
	}
	return 0;
}

/*
 * The listening address, "host:port" or "[v6]:port", numeric (or
 * localhost): the engine never resolves a listener. 0 / -1 + err.
 */
static int
config_listen_addr(
    const char *spec, struct config_listen *l, char *err, size_t errlen)
{
	unsigned char addr[sizeof(struct in6_addr)];
	const char *port;
	int v6;

	if (config_split_hostport(spec, l->host, sizeof(l->host), &port, &v6, 0,
		err, errlen) == -1)
		return -1;
	if (v6) {
		if (inet_pton(AF_INET6, l->host, addr) != 1) {
			config_err(err, errlen,
			    "'%s' is not a numeric IPv6 address", l->host);
			return -1;
		}
	} else if (strcasecmp(l->host, "localhost") == 0) {
		snprintf(l->host, sizeof(l->host), "127.0.0.1");
	} else if (inet_pton(AF_INET, l->host, addr) != 1) {
		config_err(err, errlen,
		    "host '%s' is not a numeric IPv4 address, [IPv6] address "
		    "or localhost",
		    l->host);
		return -1;
	}
	if (config_port(port, &l->port) == -1) {
		config_err(
		    err, errlen, "port must be 1..65535, got '%s'", port);
		return -1;
	}
	return 0;
}

/*
 * Whether a reverse listener's origin is obviously the listener itself
 * (same port, and the same address, a loopback name for it, or a wildcard
 * listen): every connection would open another, until descriptors run out.
 * Names other than localhost are not resolved here (conf is pure).
 */
static int
config_listen_is_self(const struct config_listen *l)
{
	static const char *const loop[] = {"localhost", "127.0.0.1", "::1"};
	int wild =
	    strcmp(l->host, "0.0.0.0") == 0 || strcmp(l->host, "::") == 0;

	if (l->target_port != l->port)
		return 0;
	if (wild || strcasecmp(l->target_host, l->host) == 0)
		return 1;
	for (size_t i = 0; i < sizeof(loop) / sizeof(loop[0]); i++)
		if (strcasecmp(l->target_host, loop[i]) == 0 &&
		    (strcmp(l->host, "127.0.0.1") == 0 ||
			strcmp(l->host, "::1") == 0))
			return 1;
	return 0;
}

int
config_parse_listen(
    const char *spec, struct config_listen *out, char *err, size_t errlen)
{
	struct config_listen l;
	char addr[300];
	const char *at, *p = spec, *eq;
	size_t n;

	memset(&l, 0, sizeof(l));
	l.mode = CONFIG_LISTEN_HTTP;
	if ((at = strchr(spec, '@')) != NULL) {
		if (config_listen_mode(
			spec, (size_t)(at - spec), &l.mode, err, errlen) == -1)
			return -1;
		p = at + 1;
	}
	/* reverse@ADDR:PORT=HOST:PORT: the origin follows the '=' */
	eq = strchr(p, '=');
	if ((eq != NULL) != (l.mode == CONFIG_LISTEN_REVERSE)) {
		config_err(err, errlen,
		    eq != NULL ? "only a reverse listener takes =HOST:PORT"
			       : "a reverse listener needs its origin: "
				 "reverse@ADDR:PORT=HOST:PORT");
		return -1;
	}
	n = eq != NULL ? (size_t)(eq - p) : strlen(p);
	if (n >= sizeof(addr)) {
		config_err(err, errlen, "listen address too long");
		return -1;
	}
	memcpy(addr, p, n);
	addr[n] = '\0';
	if (config_listen_addr(addr, &l, err, errlen) == -1 ||
	    (eq != NULL && config_listen_target(eq + 1, &l, err, errlen) == -1))
		return -1;
	if (eq != NULL && config_listen_is_self(&l)) {
		config_err(err, errlen,
		    "a reverse listener cannot send connections to itself");
		return -1;
	}
	*out = l;
	return 0;
}

/*
 * A DNS server as evdns_base_nameserver_ip_add() takes it: "ip", "ip:port"
 * or "[v6]:port" (or a bare v6 address), numeric only. 0 / -1 + err.
 */
static int
config_check_dns(const char *spec, char *err, size_t errlen)
{
	char host[INET6_ADDRSTRLEN + 1];
	unsigned char addr[sizeof(struct in6_addr)];
	const char *port;
	unsigned p;
	int v6;

	if (config_split_hostport(
		spec, host, sizeof(host), &port, &v6, 1, err, errlen) == -1)
		return -1;
	if (inet_pton(v6 ? AF_INET6 : AF_INET, host, addr) != 1) {
		config_err(err, errlen,
		    "expected a numeric IP, IP:port or [IPv6]:port, got '%s'",
		    spec);
		return -1;
	}
	if (port != NULL && config_port(port, &p) == -1) {
		config_err(
		    err, errlen, "port must be 1..65535, got '%s'", port);
		return -1;
	}
	return 0;
}

/* Replace the string at *slot with a copy of value. 0 / -1 + err. */
static int
config_set_string(char **slot, const char *value, char *err, size_t errlen)
{
	char *s = strdup(value);

	if (s == NULL) {
		config_err(err, errlen, "out of memory");
		return -1;
	}
	config_free_string(slot);
	*slot = s;
	return 0;
}

/* CONFIG_T_INT / CONFIG_T_UINT: a whole number in [k->min, k->max]. */
static int
config_apply_number(const struct config_key *k, char *field, const char *value,
    char *err, size_t errlen)
{
	unsigned long long n;

	if (config_number(value, &n) == -1 || n < k->min || n > k->max) {
		config_err(err, errlen,
		    "expected a whole number from %llu to %llu, got '%s'",
		    k->min, k->max, value);
		return -1;
	}
	if (k->type == CONFIG_T_INT)
		*(int *)(void *)field = (int)n;
	else
		*(unsigned *)(void *)field = (unsigned)n;
	return 0;
}

/* CONFIG_T_BOOL, CONFIG_T_LEVEL, CONFIG_T_FORMAT: one word of a few,
 * stored as an int. */
static int
config_apply_word(const struct config_key *k, char *field, const char *value,
    char *err, size_t errlen)
{
	int b = -1;

	if (k->type == CONFIG_T_BOOL) {
		if (config_bool(value, &b) == -1) {
			config_err(err, errlen,
			    "expected yes or no (or true/false, on/off, 1/0), "
			    "got '%s'",
			    value);
			return -1;
		}
	} else if (k->type == CONFIG_T_LEVEL) {
		b = strcasecmp(value, "warn") == 0    ? 0
		    : strcasecmp(value, "info") == 0  ? 1
		    : strcasecmp(value, "debug") == 0 ? 2
						      : -1;
		if (b == -1) {
			config_err(err, errlen,
			    "expected warn, info or debug, got '%s'", value);
			return -1;
		}
	} else {
		b = strcasecmp(value, "text") == 0   ? CONFIG_FORMAT_TEXT
		    : strcasecmp(value, "json") == 0 ? CONFIG_FORMAT_JSON
						     : -1;
		if (b == -1) {
			config_err(err, errlen,
			    "expected text or json, got '%s'", value);
			return -1;
		}
	}
	*(int *)(void *)field = b;
	return 0;
}

/* CONFIG_T_DURATION: milliseconds in [k->min, k->max]. */
static int
config_apply_duration(const struct config_key *k, char *field,
    const char *value, char *err, size_t errlen)
{
	unsigned long long n;

	if (config_duration(value, &n) == -1) {
		config_err(err, errlen,
		    "expected a duration like 500ms, 10s or 2m, got '%s'",
		    value);
		return -1;
	}
	if (n < k->min) {
		config_err(
		    err, errlen, "must be greater than 0, got '%s'", value);
		return -1;
	}
	if (n > k->max) {
		config_err(err, errlen, "must be at most %llus, got '%s'",
		    (unsigned long long)k->max / 1000, value);
		return -1;
	}
	*(unsigned *)(void *)field = (unsigned)n;
	return 0;
}

/* CONFIG_T_SIZE (bytes) / CONFIG_T_COUNT: a size_t in [k->min, k->max],
 * K/M/G suffixes allowed. */
static int
config_apply_size(const struct config_key *k, char *field, const char *value,
    char *err, size_t errlen)
{
	unsigned long long n;
	char lo[32], hi[32];

	if (config_size(value, &n) == -1) {
		if (k->type == CONFIG_T_SIZE)
			config_err(err, errlen,
			    "expected a size like 65536, 64K or 1MiB, got "
			    "'%s'",
			    value);
		else
			config_err(err, errlen,
			    "expected a number like 4096 or 4K, got '%s'",
			    value);
		return -1;
	}
	if (n < k->min || n > k->max) {
		if (k->type == CONFIG_T_SIZE) {
			config_fmt_size(lo, sizeof(lo), k->min);
			config_fmt_size(hi, sizeof(hi), k->max);
		} else {
			snprintf(lo, sizeof(lo), "%llu", k->min);
			snprintf(hi, sizeof(hi), "%llu", k->max);
		}
		config_err(err, errlen, "must be from %s to %s, got '%s'", lo,
		    hi, value);
		return -1;
	}
	*(size_t *)(void *)field = (size_t)n;
	return 0;
}

/*
 * Append a copy of value to list (*n entries, room for max) for a
 * repeatable setting: "too many WHAT (at most MAX)" when full, then
 * check(value) when check is set. 0 / -1 + err.
 */
static int
config_list_add(char **list, int *n, int max, const char *what,
    const char *value, int (*check)(const char *, char *, size_t), char *err,
    size_t errlen)
{
	if (*n >= max) {
		config_err(err, errlen, "too many %s (at most %d)", what, max);
		return -1;
	}
	if (check != NULL && check(value, err, errlen) == -1)
		return -1;
	if ((list[*n] = strdup(value)) == NULL) {
		config_err(err, errlen, "out of memory");
		return -1;
	}
	(*n)++;
	return 0;
}

/* RFC 1929: user and password of 1..255 bytes each. 0 / -1 + err. */
static int
config_check_socks_user(const char *value, char *err, size_t errlen)
{
	const char *colon = strchr(value, ':');
	size_t ulen = colon ? (size_t)(colon - value) : 0;

	if (colon == NULL || ulen == 0 || ulen > 255 || colon[1] == '\0' ||
	    strlen(colon + 1) > 255) {
		config_err(err, errlen,
		    "expected user:password (each 1 to 255 bytes)");
		return -1;
	}
	return 0;
}

/* The settings that add to a list rather than set one value. */
static int
config_apply_list(struct config *cfg, const struct config_key *k,
    const char *value, char *err, size_t errlen)
{
	switch (k->type) {
	case CONFIG_T_LISTEN:
		if (cfg->nlisten >= CONFIG_MAX_LISTEN) {
			config_err(err, errlen,
			    "too many listen addresses (at most %d)",
			    CONFIG_MAX_LISTEN);
			return -1;
		}
		if (config_parse_listen(
			value, &cfg->listen[cfg->nlisten], err, errlen) == -1)
			return -1;
		cfg->nlisten++;
		return 0;
	case CONFIG_T_DNS:
		return config_list_add(cfg->dns_servers, &cfg->ndns,
		    CONFIG_MAX_DNS, "DNS servers", value, config_check_dns, err,
		    errlen);
	case CONFIG_T_SOCKS_USER:
		/* the value is checked before the count, as it always was */
		if (config_check_socks_user(value, err, errlen) == -1)
			return -1;
		return config_list_add(cfg->socks_users, &cfg->nsocks_users,
		    CONFIG_MAX_SOCKS_USERS, "socks5-user lines", value, NULL,
		    err, errlen);
	case CONFIG_T_REPLAY_IGNORE:
		return config_list_add(cfg->replay_ignore, &cfg->nreplay_ignore,
		    CONFIG_MAX_REPLAY_IGNORE, "replay-ignore-param lines",
		    value, NULL, err, errlen);
	default:
		/* rules are pure: validate here, so a bad pattern gets its
		 * file:line like any other value */
		if (cfg->rules == NULL && (cfg->rules = rules_new()) == NULL) {
			config_err(err, errlen, "out of memory");
			return -1;
		}
		return rules_add(
		    cfg->rules, (enum rules_action)k->min, value, err, errlen);
	}
}

/*
 * Parse value for the setting k into cfg. The message in err names neither
 * the place nor the setting: callers prefix "file:line: key: " or "--key: ".
 */
static int
config_apply(struct config *cfg, const struct config_key *k, const char *value,
    char *err, size_t errlen)
{
	char *field = (char *)cfg + k->off;

	if (*value == '\0') {
		config_err(err, errlen, "missing value");
		return -1;
	}
	switch (k->type) {
	case CONFIG_T_STRING:
		return config_set_string(
		    (char **)(void *)field, value, err, errlen);
	case CONFIG_T_INT:
	case CONFIG_T_UINT:
		return config_apply_number(k, field, value, err, errlen);
	case CONFIG_T_BOOL:
	case CONFIG_T_LEVEL:
	case CONFIG_T_FORMAT:
		return config_apply_word(k, field, value, err, errlen);
	case CONFIG_T_DURATION:
		return config_apply_duration(k, field, value, err, errlen);
	case CONFIG_T_SIZE:
	case CONFIG_T_COUNT:
		return config_apply_size(k, field, value, err, errlen);
	case CONFIG_T_LISTEN:
	case CONFIG_T_DNS:
	case CONFIG_T_SOCKS_USER:
	case CONFIG_T_REPLAY_IGNORE:
	case CONFIG_T_RULE:
		return config_apply_list(cfg, k, value, err, errlen);
	}
	config_err(err, errlen, "internal error: bad setting type");
	return -1;
}

int
config_set(struct config *cfg, const char *key, const char *value, char *err,
    size_t errlen)
{
	const struct config_key *k = config_lookup(key);

	if (k == NULL) {
		config_err(err, errlen, "unknown setting '%s'", key);
		return -1;
	}
	return config_apply(cfg, k, value, err, errlen);
}

/*
 * Cut a comment off line and trim it in place; returns the start of what is
 * left (possibly ""). '#' starts a comment only at the start of the line or
 * after whitespace, so a value such as a path may contain '#'.
 */
static char *
config_clean_line(char *line)
{
	char *end;

	for (char *p = line; *p != '\0'; p++)
		if (*p == '#' && (p == line || isspace((unsigned char)p[-1]))) {
			*p = '\0';
			break;
		}
	while (isspace((unsigned char)*line))
		line++;
	end = line + strlen(line);
	while (end > line && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return line;
}

int
config_load_file(struct config *cfg, const char *path, char *err, size_t errlen)
{
	FILE *fp = NULL;
	char *line = NULL, *key, *value, msg[512];
	size_t cap = 0;
	unsigned long lineno = 0;
	const struct config_key *k;
	int rc = -1;

	if ((fp = fopen(path, "r")) == NULL) {
		config_err(
		    err, errlen, "%s: cannot open: %s", path, strerror(errno));
		goto fail;
	}
	while (getline(&line, &cap, fp) != -1) {
		lineno++;
		key = config_clean_line(line);
		if (*key == '\0')
			continue;
		for (value = key;
		     *value != '\0' && !isspace((unsigned char)*value); value++)
			;
		if (*value != '\0') {
			*value++ = '\0';
			while (isspace((unsigned char)*value))
				value++;
		}
		if ((k = config_lookup(key)) == NULL) {
			config_err(err, errlen, "%s:%lu: unknown setting '%s'",
			    path, lineno, key);
			goto fail;
		}
		if (config_apply(cfg, k, value, msg, sizeof(msg)) == -1) {
			config_err(err, errlen, "%s:%lu: %s: %s", path, lineno,
			    k->name, msg);
			goto fail;
		}
	}
	if (ferror(fp)) {
		config_err(
		    err, errlen, "%s: cannot read: %s", path, strerror(errno));
		goto fail;
	}
	rc = 0;
fail:
	free(line);
	if (fp != NULL)
		fclose(fp);
	return rc;
}
