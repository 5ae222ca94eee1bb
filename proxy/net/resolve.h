/*
 * resolve: non-blocking name resolution for one worker — numeric addresses
 * directly, then a small per-worker cache, then evdns. Fresh answers become
 * domain_ips rows (source proxy-dns). The callback always runs later on the
 * worker's loop, never inside resolve_start, so callers need no re-entrancy
 * care.
 */
#ifndef PEEPHOLE_RESOLVE_H
#define PEEPHOLE_RESOLVE_H

#include <stdint.h>
#include <sys/socket.h>

struct worker;
struct resolve_req;

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

/* Cancel: the callback will not run. NULL ok. */
void resolve_cancel(struct resolve_req *r);

/* The per-worker cache. */
struct dns_cache *resolve_cache_new(void);
void resolve_cache_free(struct dns_cache *c);

/* Configure w->dns from the config (servers, hosts file, timeout). 0/-1. */
int resolve_configure(struct worker *w) __attribute__((warn_unused_result));

#endif
