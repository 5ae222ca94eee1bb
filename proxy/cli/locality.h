/*
 * locality: what `peephole locality` reports, apart from how it prints
 * (locality.c). loc_load reads a capture into facts: one per (name a
 * connection goes by, server address, how it was named) with its
 * connections and bytes, summed in SQL, and one per (DNS answer name,
 * address) with the sources it was learned from; each distinct address is
 * looked up once. loc_fold groups the facts into report rows by country,
 * by AS, by domain, or by where the bytes went (the headline).
 */
#ifndef PEEPHOLE_CLI_LOCALITY_H
#define PEEPHOLE_CLI_LOCALITY_H

#include <stddef.h>
#include <stdint.h>

#include "proxy/geo/geo.h"

struct sqlite3;

/* Where an address is, seen from the home region. */
enum loc_where {
	LOC_NONE = 0, /* no server address (the connection never got one) */
	LOC_LOCAL,    /* not public: private, loopback, link-local, ... */
	LOC_UNKNOWN,  /* public, but the geo data has no country for it */
	LOC_PUBLIC,   /* public with a country, no --home given */
	LOC_HOME,     /* in one of the --home countries */
	LOC_LEFT,     /* outside them: these bytes left home */
};

/* One distinct server or answer address and what geo says of it. */
struct loc_addr {
	char *ip;
	struct geo_info gi;
	char country[16]; /* "US", "unknown", the scope ("loopback"), "none" */
	char asn[24];     /* "AS15169", "unknown", the scope, "none" */
	enum loc_where where;
	unsigned stamp; /* loc_fold's distinct counting */
};

/* How a connection was given its name. */
enum loc_asked {
	LOC_ASKED_NAME = 0, /* the app asked for the name (target, SNI) */
	LOC_ASKED_ADDRESS,  /* the app asked for a bare address */
	LOC_ASKED_NONE,     /* no connection: a name from DNS answers only */
};

/* Connections that go by one name to one address, named one way. */
struct loc_fact {
	char *name; /* target, SNI, inferred name, else the address */
	char *how;  /* "target", "sni", "app-dns", "proxy-dns", ... */
	enum loc_asked asked;
	size_t addr; /* index into loc_data.addrs */
	int64_t conns;
	/* 0, or 1 + the index in loc_data.splits of the one connection this
	 * fact is part of (its requests went to several hosts): a row counts
	 * that connection once however many of its parts it holds */
	size_t split;
	uint64_t up;   /* bytes to the server (origin leg) */
	uint64_t down; /* bytes from the server */
};

/* A DNS answer: name resolved to address, as sources ("app-dns,sni"). */
struct loc_answer {
	char *name;
	char *sources;
	size_t addr;
};

struct loc_data {
	struct loc_addr *addrs; /* sorted by ip; [0] is the "no address" */
	size_t naddrs;
	struct loc_fact *facts; /* sorted by name */
	size_t nfacts, capfacts;
	struct loc_answer *answers; /* sorted by name */
	size_t nanswers;
	unsigned *splits; /* per split connection: loc_fold's stamp */
	size_t nsplits, capsplits;
	int64_t conns; /* totals: distinct connections */
	uint64_t up, down;
	char geo_source[512]; /* geo_source(), "" without data */
};

/* The --home countries: upper-case ISO codes. */
#define LOC_HOME_MAX 16
struct loc_home {
	char cc[LOC_HOME_MAX][3];
	size_t n;
};

/*
 * Read db into *d (zeroed first; free with loc_data_free, also after a
 * failure), looking up each address in g (NULL: scopes only) and placing
 * it against home (n == 0: no home). 0, or -1 with a message in err.
 */
int loc_load(struct sqlite3 *db, const struct geo *g,
    const struct loc_home *home, struct loc_data *d, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void loc_data_free(struct loc_data *d);

/* What the rows are. */
enum loc_by {
	LOC_BY_COUNTRY = 0,
	LOC_BY_ASN,
	LOC_BY_DOMAIN,
	LOC_BY_LEFT, /* (country, AS) of the bytes that left home */
};

/* A small set of short strings, kept in order of first sight. */
#define LOC_SET_MAX 12
struct loc_set {
	char *v[LOC_SET_MAX];
	size_t n;
	int more; /* some were left out */
};

/* One row of a report. */
struct loc_row {
	char *key;            /* country / "AS15169" / domain name */
	char org[128];        /* the AS's organisation (by AS, by left) */
	char country[16];     /* by left: the country */
	enum loc_asked asked; /* by domain */
	enum loc_where where; /* by country and AS: of the first address */
	int64_t domains;      /* distinct names */
	int64_t addrs;        /* distinct addresses with connections */
	int64_t conns;
	uint64_t up, down;
	uint64_t left; /* bytes that left home (by domain) */
	struct loc_set how, countries, asns, learned;
	/* by domain: its DNS answers (indexes into loc_data.answers) */
	size_t answers[LOC_SET_MAX];
	size_t nanswers;
	int more_answers;
};

struct loc_rows {
	struct loc_row *v;
	size_t n;
};

/*
 * Group d's facts into rows by `by`, largest (bytes, then connections)
 * first, ties by key. By domain, names known only from DNS answers are
 * rows too (no connections). 0, or -1 on ENOMEM.
 */
int loc_fold(struct loc_data *d, enum loc_by by, struct loc_rows *out)
    __attribute__((warn_unused_result));
void loc_rows_free(struct loc_rows *r);

/* Add s (copied) unless there or the set is full (then more is set);
 * loc_set_add_list adds each of "a,b,c". 0 / -1 (ENOMEM). */
int loc_set_add(struct loc_set *set, const char *s)
    __attribute__((warn_unused_result));
int loc_set_add_list(struct loc_set *set, const char *list)
    __attribute__((warn_unused_result));
void loc_set_free(struct loc_set *set);

/* "US,HK" of a set, "…" appended when it overflowed, "-" when empty. */
void loc_set_join(const struct loc_set *s, char *buf, size_t len);

/* The share of part in total in hundredths of a percent, rounded half
 * up: 3333 for 1/3; 0 when total is 0. */
int64_t loc_share(uint64_t part, uint64_t total);

/* Parse "CN,hk" into home. 0, or -1 when a code is not two letters or
 * there are too many. */
int loc_home_parse(const char *s, struct loc_home *home)
    __attribute__((warn_unused_result));

#endif
