/*
 * asn: the autonomous system and organisation of an address, from a
 * compact range file (asn.bin) that `make deps` builds out of the
 * @ip-location-db/asn CSVs (proxy/geo/tool/geo_asn_build.c) and that lookups
 * mmap and binary-search. Read-only once open: any thread may look up.
 *
 * The file, all integers little-endian:
 *   header (64 bytes): magic "PPHASN1\n", u32 n4, u32 n6, u32 nas,
 *     u32 strsize, char date[16] (the data's date, NUL padded), 24 zero
 *   n4 IPv4 ranges of 12 bytes: u32 first, u32 last, u32 as index
 *   n6 IPv6 ranges of 36 bytes: first[16], last[16] (network order),
 *     u32 as index
 *   nas AS entries of 8 bytes: u32 asn, u32 offset of the organisation
 *     in the strings
 *   strsize bytes of NUL-terminated organisation names
 * Ranges are sorted by their first address and do not overlap.
 */
#ifndef PEEPHOLE_GEO_ASN_H
#define PEEPHOLE_GEO_ASN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define ASN_MAGIC "PPHASN1\n"
#define ASN_HEADER 64
#define ASN_V4_REC 12
#define ASN_V6_REC 36
#define ASN_AS_REC 8

struct asn_db {
	void *map;
	size_t len;
	const unsigned char *v4, *v6, *as;
	const char *str;
	uint32_t n4, n6, nas, strsize;
	char date[17];
};

/*
 * Map path and check its header against its size (cheap: the ranges are
 * not walked; see asn_verify). 0, or -1 with a message in err.
 */
int asn_open(struct asn_db *db, const char *path, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Walk every range and AS entry: sorted, in bounds. For `geo update`
 * before a file is installed. 0, or -1 with a message in err.
 */
int asn_verify(const struct asn_db *db, char *err, size_t errlen);

/*
 * The AS of the address in b (4 or 16 bytes, network order; a v4-mapped
 * IPv6 address is looked up as IPv4). 1 with asn and org (pointing into
 * the map) set, 0 when no range holds it.
 */
int asn_lookup(const struct asn_db *db, const unsigned char *b, size_t blen,
    uint32_t *asn, const char **org);

void asn_close(struct asn_db *db);

/*
 * Build an asn.bin from the CSV files (ip_first,ip_last,asn,org; IPv4
 * and IPv6 rows may be mixed), with date (YYYY-MM-DD) in the header.
 * Writes path.tmp and renames it over path. 0, or -1 with a message in
 * err. For proxy/geo/tool/geo_asn_build.c and `geo update --from` a CSV
 * release.
 */
int asn_build(const char *path, const char *const *csv, int ncsv,
    const char *date, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
