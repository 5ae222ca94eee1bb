/*
 * geo: country, autonomous system and organisation of an IP address,
 * offline, from data files that `make deps` builds out of pinned npm
 * packages (@ip-location-db: geo-whois-asn-country, CC0; asn, CC BY 4.0)
 * and that `peephole geo update --from DIR` replaces. Addresses that are
 * not on the public Internet (private, loopback, link-local, CGNAT,
 * documentation, multicast, reserved) are said to be so rather than
 * looked up. A struct geo is read-only once open: any thread may look up.
 */
#ifndef PEEPHOLE_GEO_H
#define PEEPHOLE_GEO_H

#include <stddef.h>
#include <stdint.h>

struct geo;

/* The files of a data directory. */
#define GEO_COUNTRY_FILE "country.mmdb" /* MMDB, key country_code */
#define GEO_ASN_FILE "asn.bin"          /* see proxy/geo/asn.h */
#define GEO_SOURCE_FILE "source.txt"    /* FILE PACKAGE VERSION DATE */
/* An address every data set places (Google DNS): geo_verify's probe. */
#define GEO_PROBE_IP "8.8.8.8"

struct geo_info {
	char country[3]; /* ISO 3166-1 alpha-2, "" when unknown */
	uint32_t asn;    /* 0 when unknown */
	char org[128];   /* the AS's organisation, "" when unknown */
	/* NULL for a public address; else what the address is instead:
	 * "private", "loopback", "link-local", "cgnat", "documentation",
	 * "multicast", "unspecified", "reserved" */
	const char *scope;
};

/*
 * Open the data files (mmap: cheap) from dir when given, else from
 * $PEEPHOLE_GEO_DIR when set; else the first of home/geo (the updated
 * copy, see `peephole geo update`; home is the peephole home), and beside
 * the binary <exe dir>/geo, <exe dir>/../geo, <exe dir>/build/geo (so
 * ./peephole, build/peephole and build/asan/peephole find build/geo) that
 * holds either file. A directory may hold one file only. NULL with a
 * message in err when no data can be read (the caller may go on without:
 * see geo_lookup(NULL, ...)).
 */
struct geo *geo_open(const char *dir, const char *home, char *err,
    size_t errlen) __attribute__((warn_unused_result));

/*
 * Fill out for ip (text, IPv4 or IPv6). g may be NULL: then only the
 * scope is known. 1 when the address was found in the data (or has a
 * scope), 0 when it is public but unknown, -1 when ip is not an address.
 */
int geo_lookup(const struct geo *g, const char *ip, struct geo_info *out);

/* The scope of ip alone (see geo_info.scope); NULL for public, and for
 * text that is not an address. Pure. */
const char *geo_scope(const char *ip);

/*
 * Which data answered: "country: FILE (DATE); asn: FILE (DATE)" into buf
 * for `peephole geo` and the reports. "" for NULL.
 */
void geo_source(const struct geo *g, char *buf, size_t len);

/*
 * The process's one handle on the default data (geo_open(NULL, the
 * peephole home)), opened on first use by any thread and kept until exit:
 * for commands and views that look many addresses up. NULL when there is
 * no data, with geo_open's message in err (the same message every call).
 */
const struct geo *geo_shared(char *err, size_t errlen);

/*
 * A short label of gi for tables: "CN AS45090", "CN", "AS45090", the scope
 * ("loopback", "private", ...) or "?" when nothing is known.
 */
void geo_label(const struct geo_info *gi, char *buf, size_t len);

/* The directory g was opened from; "" for NULL. */
const char *geo_dir(const struct geo *g);

/*
 * Check every file of g through (the ASN ranges in order and in bounds,
 * every node and data record of the country file) and that the probe address
 * is answered by each: for `geo update` before
 * it installs a directory. 0, or -1 with a message in err.
 */
int geo_verify(const struct geo *g, char *err, size_t errlen);

void geo_close(struct geo *g);

#endif
