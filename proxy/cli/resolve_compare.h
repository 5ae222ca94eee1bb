/*
 * resolve_compare: what the parts of `peephole resolve-compare` share —
 * the query engine (resolve_compare_dns.c: evdns, one loop, bounded
 * concurrency), the comparison of one domain's answers
 * (resolve_compare_diff.c, pure) and the command (resolve_compare.c:
 * names, storage, output).
 */
#ifndef PEEPHOLE_CLI_RESOLVE_COMPARE_H
#define PEEPHOLE_CLI_RESOLVE_COMPARE_H

#include <stddef.h>
#include <stdint.h>

#define RC_CMD "resolve-compare"

/* Bounds: what one invocation asks, and what one answer may hold. */
#define RC_MAX_RESOLVERS 32 /* --resolver, plus the system resolver */
#define RC_MAX_NAMES 100000 /* names per run */
#define RC_MAX_IPS 32       /* addresses kept per answer */
#define RC_ADDRLEN 46       /* INET6_ADDRSTRLEN */

/* A resolver that never answered is given up after this many timeouts;
 * its other queries are recorded with RC_ERR_UNREACHABLE, not sent. */
#define RC_GIVE_UP 16
#define RC_ERR_UNREACHABLE 1000 /* beside evdns' DNS_ERR_* */

/* Names of the resolvers that are read from the capture, not queried. */
#define RC_APP_DNS "app-dns"
#define RC_PROXY_DNS "proxy-dns"
#define RC_SYSTEM "system"

/* A resolver to query: "system" (/etc/resolv.conf) or an address. */
struct rc_resolver {
	char name[64]; /* "system", "9.9.9.9:53", "[::1]:5353" */
	int system;    /* 1: nameservers from /etc/resolv.conf */
};

/* One query (domain x resolver x type) and, once done, its answer. */
struct rc_query {
	size_t domain;   /* index into the caller's names */
	size_t resolver; /* index into the caller's resolvers */
	int aaaa;        /* 0: A, 1: AAAA */
	int done;
	int result;   /* DNS_ERR_* from evdns */
	int ttl;      /* of the answer, when result is DNS_ERR_NONE */
	int64_t t_us; /* when the answer came */
	int nips;
	char ips[RC_MAX_IPS][RC_ADDRLEN];
};

/* How the engine queries. */
struct rc_dns_opts {
	int concurrency; /* queries in flight at most */
	int timeout_s;   /* per attempt */
	int attempts;
	int progress; /* print "resolving N/M" on stderr (a terminal) */
};

/*
 * Resolve every query in q[0..nq) on one event loop: one evdns base per
 * resolver, at most o->concurrency in flight, each query bounded by
 * evdns' timeout and attempts and the whole run by a deadline derived
 * from them. Fills each query's answer. 0, or -1 after a message on
 * stderr (the loop or a resolver could not be set up).
 */
int rc_dns_run(const char *const *names, const struct rc_resolver *res,
    size_t nres, struct rc_query *q, size_t nq, const struct rc_dns_opts *o)
    __attribute__((warn_unused_result));

/* The status word stored for an evdns result: "ok", "nxdomain", ... */
const char *rc_status(int result);

/*
 * Parse --resolver's value, "ADDR[:PORT]" (IPv6 as "[ADDR]:PORT" or a
 * bare address), port 53 by default, into r. 0, or -1 when it is not an
 * address literal.
 */
int rc_resolver_parse(const char *s, struct rc_resolver *r)
    __attribute__((warn_unused_result));

/* One stored answer of a domain, with what geo said of its address. */
struct rc_row {
	const char *resolver;
	const char *qtype; /* "A" / "AAAA" */
	const char *ip;    /* NULL: no address (status says why) */
	const char *status;
	char country[3]; /* "" unknown */
};

/* What the comparison of a domain found. */
#define RC_DIFF_ADDRS 0x1     /* different address sets */
#define RC_DIFF_COUNTRIES 0x2 /* different country sets */
#define RC_MISSING 0x4        /* a resolver queried gave no address */

struct rc_verdict {
	unsigned flags;
	int answered;   /* some resolver gave an address */
	char text[704]; /* "same", "no answers", "differ: ...; missing: ..." */
};

/*
 * Compare the answers of one domain (rows grouped by resolver in the
 * order they should be named). app-dns and proxy-dns are what was logged,
 * not asked: they take part in the address and country comparison but
 * are never "missing". Pure.
 */
void rc_compare(const struct rc_row *rows, size_t n, struct rc_verdict *v);

struct sqlite3;

/* How a stored run is printed. */
struct rc_print_opts {
	int fmt;         /* enum out_format */
	int only_differ; /* leave out the domains the resolvers agree on */
	const char *db;  /* for the closing line */
};

/*
 * Print run `run` of db's resolver_answers on stdout as o says: every
 * domain's answers with the country and ASN of each address, the
 * verdict, and (text) the disagreements and a count. CLI_OK, or
 * CLI_ERROR after a message (no such run, SQLite, ENOMEM).
 */
int rc_print_run(struct sqlite3 *db, int64_t run, const struct rc_print_opts *o)
    __attribute__((warn_unused_result));

/* Whether s is a name worth querying: not an address literal, a DNS name
 * of letters, digits, '-', '_' and dots (labels 1..63, 253 in all). */
int rc_name_ok(const char *s);

#endif
