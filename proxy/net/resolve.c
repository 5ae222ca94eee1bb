/* resolve: see resolve.h. Runs on the loop thread of its resolve_ctx only. */
#include "proxy/net/resolve.h"

#include <arpa/inet.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/config.h"
#include "proxy/log.h"
#include "proxy/net/worker.h"
#include "proxy/store/store.h"

/* Answers are kept this long; evdns_getaddrinfo does not report TTLs. */
#define RESOLVE_CACHE_US (60 * 1000000LL)
#define RESOLVE_CACHE_SLOTS 256

struct dns_cache_entry {
	char host[256];
	int64_t expires_us;
	int naddrs;
	struct sockaddr_storage addrs[RESOLVE_MAX_ADDRS];
	socklen_t addrlens[RESOLVE_MAX_ADDRS];
};

/* Direct-mapped: a colliding name replaces the slot's entry. */
struct dns_cache {
	struct dns_cache_entry *slot[RESOLVE_CACHE_SLOTS];
};

struct resolve_req {
	struct resolve_ctx ctx;
	char host[256];
	unsigned port;
	resolve_cb cb;
	void *arg;
	struct evdns_getaddrinfo_request *dreq;
	struct event *deliver; /* runs cb on a later loop turn */
	int64_t t_start_us;
	struct resolve_result res;
};

struct dns_cache *
resolve_cache_new(void)
{
	return calloc(1, sizeof(struct dns_cache));
}

void
resolve_cache_free(struct dns_cache *c)
{
	if (c == NULL)
		return;
	for (int i = 0; i < RESOLVE_CACHE_SLOTS; i++)
		free(c->slot[i]);
	free(c);
}

static unsigned
resolve_hash(const char *s)
{
	unsigned h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % RESOLVE_CACHE_SLOTS;
}

static void
resolve_set_port(struct sockaddr_storage *ss, unsigned port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
	else if (ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
}

static void
resolve_deliver_cb(evutil_socket_t fd, short what, void *arg)
{
	struct resolve_req *r = arg;

	(void)fd;
	(void)what;
	r->res.elapsed_us = now_us() - r->t_start_us;
	r->cb(&r->res, r->arg);
	event_free(r->deliver);
	free(r);
}

static void
resolve_schedule(struct resolve_req *r)
{
	static const struct timeval zero = {0, 0};

	event_add(r->deliver, &zero);
}

int
resolve_addr_text(const struct sockaddr_storage *ss, char *ip, size_t len)
{
	const void *src = ss->ss_family == AF_INET6
	    ? (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr
	    : (const void *)&((const struct sockaddr_in *)ss)->sin_addr;

	return inet_ntop(ss->ss_family, src, ip, (socklen_t)len) != NULL ? 0
									 : -1;
}

/* Record a fresh answer in the store as a domain_ips fact. */
static void
resolve_record(
    struct store *st, const char *host, const struct sockaddr_storage *ss)
{
	char ip[INET6_ADDRSTRLEN];
	struct store_rec *rec;

	if (st == NULL || resolve_addr_text(ss, ip, sizeof(ip)) == -1)
		return;
	rec = store_rec_new(STORE_REC_DOMAIN_IP);
	if (rec == NULL)
		return;
	rec->u.dip.domain = strdup(host);
	rec->u.dip.ip = strdup(ip);
	rec->u.dip.source = strdup("proxy-dns");
	rec->u.dip.t_us = now_us();
	rec->u.dip.ttl = -1;
	/* a DNS fact is small and rare; no need to pause on back-pressure */
	(void)store_submit(st, rec);
}

static void
resolve_evdns_cb(int err, struct evutil_addrinfo *ai, void *arg)
{
	struct resolve_req *r = arg;
	struct dns_cache_entry *e;
	unsigned slot;

	r->dreq = NULL;
	if (r->cb == NULL) {
		/* cancelled while the lookup was in flight */
		if (ai != NULL)
			evutil_freeaddrinfo(ai);
		event_free(r->deliver);
		free(r);
		return;
	}
	if (err != 0) {
		r->res.error = err;
		goto out;
	}
	/* IPv4 first: loopback test servers and most origins listen there */
	for (int pass = 0; pass < 2; pass++)
		for (struct evutil_addrinfo *p = ai;
		     p != NULL && r->res.naddrs < RESOLVE_MAX_ADDRS;
		     p = p->ai_next) {
			int want = pass == 0 ? AF_INET : AF_INET6;
			if (p->ai_family != want ||
			    p->ai_addrlen > sizeof(struct sockaddr_storage))
				continue;
			int i = r->res.naddrs++;
			memcpy(&r->res.addrs[i], p->ai_addr, p->ai_addrlen);
			r->res.addrlens[i] = (socklen_t)p->ai_addrlen;
		}
	if (r->res.naddrs == 0)
		r->res.error = EVUTIL_EAI_NONAME;
	for (int i = 0; i < r->res.naddrs; i++)
		resolve_record(r->ctx.store, r->host, &r->res.addrs[i]);
	if (r->res.naddrs > 0 && r->ctx.cache != NULL) {
		slot = resolve_hash(r->host);
		e = r->ctx.cache->slot[slot];
		if (e == NULL)
			e = malloc(sizeof(*e));
		if (e != NULL) {
			snprintf(e->host, sizeof(e->host), "%s", r->host);
			e->expires_us = now_us() + RESOLVE_CACHE_US;
			e->naddrs = r->res.naddrs;
			memcpy(e->addrs, r->res.addrs, sizeof(e->addrs));
			memcpy(
			    e->addrlens, r->res.addrlens, sizeof(e->addrlens));
			r->ctx.cache->slot[slot] = e;
		}
	}
	for (int i = 0; i < r->res.naddrs; i++)
		resolve_set_port(&r->res.addrs[i], r->port);
out:
	if (ai != NULL)
		evutil_freeaddrinfo(ai);
	resolve_schedule(r);
}

/* Numeric address or cache hit: fill r->res and return 1; else 0. */
static int
resolve_local(struct resolve_req *r)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&r->res.addrs[0];
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&r->res.addrs[0];
	struct dns_cache_entry *e;

	memset(&r->res.addrs[0], 0, sizeof(r->res.addrs[0]));
	if (inet_pton(AF_INET, r->host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		r->res.addrlens[0] = sizeof(*sin);
		r->res.naddrs = 1;
	} else if (inet_pton(AF_INET6, r->host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		r->res.addrlens[0] = sizeof(*sin6);
		r->res.naddrs = 1;
	} else if (r->ctx.cache != NULL &&
	    (e = r->ctx.cache->slot[resolve_hash(r->host)]) != NULL &&
	    strcmp(e->host, r->host) == 0 && e->expires_us > now_us()) {
		r->res.naddrs = e->naddrs;
		memcpy(r->res.addrs, e->addrs, sizeof(e->addrs));
		memcpy(r->res.addrlens, e->addrlens, sizeof(e->addrlens));
	} else
		return 0;
	for (int i = 0; i < r->res.naddrs; i++)
		resolve_set_port(&r->res.addrs[i], r->port);
	r->res.from_cache = 1;
	return 1;
}

struct resolve_req *
resolve_start(
    struct worker *w, const char *host, unsigned port, resolve_cb cb, void *arg)
{
	struct resolve_ctx ctx = {w->base, w->dns, w->dns_cache, w->store};

	return resolve_start_ctx(&ctx, host, port, cb, arg);
}

struct resolve_req *
resolve_start_ctx(const struct resolve_ctx *ctx, const char *host,
    unsigned port, resolve_cb cb, void *arg)
{
	struct resolve_req *r;
	struct evutil_addrinfo hints;

	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return NULL;
	r->ctx = *ctx;
	snprintf(r->host, sizeof(r->host), "%s", host);
	r->port = port;
	r->cb = cb;
	r->arg = arg;
	r->t_start_us = now_us();
	r->deliver = evtimer_new(ctx->base, resolve_deliver_cb, r);
	if (r->deliver == NULL) {
		free(r);
		return NULL;
	}
	if (resolve_local(r)) {
		resolve_schedule(r);
		return r;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	hints.ai_flags = EVUTIL_AI_ADDRCONFIG;
	/*
	 * evdns may answer from its hosts table before returning; the
	 * callback then only schedules delivery, so this is still safe.
	 */
	r->dreq = evdns_getaddrinfo(
	    ctx->dns, host, NULL, &hints, resolve_evdns_cb, r);
	return r;
}

void
resolve_cancel(struct resolve_req *r)
{
	if (r == NULL)
		return;
	if (r->dreq != NULL) {
		/* cancelling still calls back, with EVUTIL_EAI_CANCEL: let the
		 * callback run and drop the result */
		r->cb = NULL;
		evdns_getaddrinfo_cancel(r->dreq);
		return;
	}
	event_free(r->deliver);
	free(r);
}

int
resolve_configure(struct worker *w)
{
	return resolve_configure_dns(w->dns, w->cfg);
}

/* The configured dns-server list, each once (evdns refuses a repeat). */
static int
resolve_add_servers(struct evdns_base *dns, const struct config *cfg)
{
	for (int i = 0; i < cfg->ndns; i++) {
		int dup = 0;
		for (int j = 0; j < i; j++)
			dup |= strcmp(cfg->dns_servers[i],
				   cfg->dns_servers[j]) == 0;
		if (dup)
			continue;
		if (evdns_base_nameserver_ip_add(dns, cfg->dns_servers[i]) !=
		    0) {
			log_warnx(
			    "dns-server %s: not usable", cfg->dns_servers[i]);
			return -1;
		}
	}
	return 0;
}

int
resolve_configure_dns(struct evdns_base *dns, const struct config *cfg)
{
	char tmo[32];

	if (cfg->ndns > 0) {
		if (resolve_add_servers(dns, cfg) == -1)
			return -1;
	} else if (evdns_base_resolv_conf_parse(
		       dns, DNS_OPTIONS_ALL, "/etc/resolv.conf") != 0)
		log_warnx("/etc/resolv.conf unusable; evdns falls back to "
			  "127.0.0.1");
	if (evdns_base_load_hosts(
		dns, cfg->hosts_file ? cfg->hosts_file : "/etc/hosts") != 0 &&
	    cfg->hosts_file != NULL) {
		log_warnx("hosts-file %s: cannot read", cfg->hosts_file);
		return -1;
	}
	snprintf(tmo, sizeof(tmo), "%u.%03u", cfg->dns_timeout_ms / 1000,
	    cfg->dns_timeout_ms % 1000);
	if (evdns_base_set_option(dns, "timeout:", tmo) != 0 ||
	    evdns_base_set_option(dns, "attempts:", "2") != 0)
		return -1;
	return 0;
}
