/*
 * resolve: non-blocking name resolution for one event loop (a worker's, or
 * `peephole replay`'s) — numeric addresses directly, then a small cache,
 * then evdns. Fresh answers become domain_ips rows (source proxy-dns) when
 * there is a store to write them to. The callback always runs later on the
 * loop, never inside resolve_start, so callers need no re-entrancy care.
 */
#ifndef PEEPHOLE_RESOLVE_H
#define PEEPHOLE_RESOLVE_H

#include <stdint.h>
#include <sys/socket.h>

struct config;
struct dns_cache;
struct event_base;
struct evdns_base;
struct resolve_req;
struct store;
struct worker;

#define RESOLVE_MAX_ADDRS 8

struct resolve_result {
	int error; /* 0, or an EVUTIL_EAI_* code */
	int naddrs;
	struct sockaddr_storage addrs[RESOLVE_MAX_ADDRS];
	socklen_t addrlens[RESOLVE_MAX_ADDRS];
	int from_cache; /* 1 if no lookup was needed */
	int64_t elapsed_us;
};

/* The address part of ss as text into ip (INET6_ADDRSTRLEN bytes
 * suffice). 0 / -1. */
int resolve_addr_text(const struct sockaddr_storage *ss, char *ip, size_t len);

typedef void (*resolve_cb)(const struct resolve_result *res, void *arg);

/*
 * Start resolving host (port is copied into every address). Returns a
 * handle to cancel with, or NULL on ENOMEM (the callback then never runs).
 */
struct resolve_req *resolve_start(
    struct worker *w, const char *host, unsigned port, resolve_cb cb, void *arg)
    __attribute__((warn_unused_result));

/* What a lookup runs on; a worker has one of each. */
struct resolve_ctx {
	struct event_base *base; /* the callback runs on its thread */
	struct evdns_base *dns;
	struct dns_cache *cache; /* NULL: every name is looked up */
	struct store *store;     /* NULL: answers are not recorded */
};

/*
 * resolve_start on ctx's loop rather than a worker's; ctx is copied, what
 * it points to must outlive the request. NULL on ENOMEM.
 */
struct resolve_req *resolve_start_ctx(const struct resolve_ctx *ctx,
    const char *host, unsigned port, resolve_cb cb, void *arg)
    __attribute__((warn_unused_result));

/* Cancel: the callback will not run. NULL ok. */
void resolve_cancel(struct resolve_req *r);

/* The per-worker cache. */
struct dns_cache *resolve_cache_new(void);
void resolve_cache_free(struct dns_cache *c);

/* Configure w->dns from the config (servers, hosts file, timeout). 0/-1. */
int resolve_configure(struct worker *w) __attribute__((warn_unused_result));

/* The same for any evdns_base: dns-server (else /etc/resolv.conf),
 * hosts-file (else /etc/hosts), dns-timeout. 0 / -1, logged. */
int resolve_configure_dns(struct evdns_base *dns, const struct config *cfg)
    __attribute__((warn_unused_result));

#endif
