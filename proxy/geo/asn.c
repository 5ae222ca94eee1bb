/*
 * asn: the read side of the ASN range file (see asn.h).
 */
#include "proxy/geo/asn.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static uint32_t
asn_le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

/* Check the header's counts against the file's size; set the sections. */
static int
asn_layout(struct asn_db *db, char *err, size_t errlen)
{
	const unsigned char *h = db->map;
	uint64_t need;

	if (db->len < ASN_HEADER ||
	    memcmp(h, ASN_MAGIC, sizeof(ASN_MAGIC) - 1) != 0) {
		snprintf(err, errlen, "not an ASN range file (bad magic)");
		return -1;
	}
	db->n4 = asn_le32(h + 8);
	db->n6 = asn_le32(h + 12);
	db->nas = asn_le32(h + 16);
	db->strsize = asn_le32(h + 20);
	memcpy(db->date, h + 24, 16);
	db->date[16] = '\0';
	need = (uint64_t)ASN_HEADER + (uint64_t)db->n4 * ASN_V4_REC +
	    (uint64_t)db->n6 * ASN_V6_REC + (uint64_t)db->nas * ASN_AS_REC +
	    db->strsize;
	if (need != db->len || db->strsize == 0) {
		snprintf(err, errlen,
		    "ASN range file: size %zu, header says %llu", db->len,
		    (unsigned long long)need);
		return -1;
	}
	db->v4 = h + ASN_HEADER;
	db->v6 = db->v4 + (size_t)db->n4 * ASN_V4_REC;
	db->as = db->v6 + (size_t)db->n6 * ASN_V6_REC;
	db->str = (const char *)(db->as + (size_t)db->nas * ASN_AS_REC);
	if (db->str[db->strsize - 1] != '\0') {
		snprintf(err, errlen, "ASN range file: strings not terminated");
		return -1;
	}
	return 0;
}

int
asn_open(struct asn_db *db, const char *path, char *err, size_t errlen)
{
	struct stat st;
	int fd;

	memset(db, 0, sizeof(*db));
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) || st.st_size == 0) {
		snprintf(err, errlen, "%s: not a regular non-empty file", path);
		close(fd);
		return -1;
	}
	db->len = (size_t)st.st_size;
	db->map = mmap(NULL, db->len, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (db->map == MAP_FAILED) {
		db->map = NULL;
		snprintf(err, errlen, "%s: mmap: %s", path, strerror(errno));
		return -1;
	}
	if (asn_layout(db, err, errlen) == -1) {
		char why[200];

		snprintf(why, sizeof(why), "%s", err);
		snprintf(err, errlen, "%s: %s", path, why);
		asn_close(db);
		return -1;
	}
	return 0;
}

int
asn_verify(const struct asn_db *db, char *err, size_t errlen)
{
	for (uint32_t i = 0; i < db->n4; i++) {
		const unsigned char *r = db->v4 + (size_t)i * ASN_V4_REC;

		if (asn_le32(r) > asn_le32(r + 4) ||
		    asn_le32(r + 8) >= db->nas ||
		    (i > 0 && asn_le32(r) <= asn_le32(r - ASN_V4_REC + 4))) {
			snprintf(err, errlen, "IPv4 range %u out of order", i);
			return -1;
		}
	}
	for (uint32_t i = 0; i < db->n6; i++) {
		const unsigned char *r = db->v6 + (size_t)i * ASN_V6_REC;

		if (memcmp(r, r + 16, 16) > 0 || asn_le32(r + 32) >= db->nas ||
		    (i > 0 && memcmp(r, r - ASN_V6_REC + 16, 16) <= 0)) {
			snprintf(err, errlen, "IPv6 range %u out of order", i);
			return -1;
		}
	}
	for (uint32_t i = 0; i < db->nas; i++)
		if (asn_le32(db->as + (size_t)i * ASN_AS_REC + 4) >=
		    db->strsize) {
			snprintf(err, errlen, "AS entry %u out of bounds", i);
			return -1;
		}
	return 0;
}

/* The AS entry idx: 1 with asn/org set, 0 when the file is inconsistent. */
static int
asn_entry(
    const struct asn_db *db, uint32_t idx, uint32_t *asn, const char **org)
{
	uint32_t off;

	if (idx >= db->nas)
		return 0;
	*asn = asn_le32(db->as + (size_t)idx * ASN_AS_REC);
	off = asn_le32(db->as + (size_t)idx * ASN_AS_REC + 4);
	*org = off < db->strsize ? db->str + off : "";
	return 1;
}

/* The last IPv4 range whose first address is <= a: index + 1, 0 if none. */
static uint32_t
asn_find4(const struct asn_db *db, uint32_t a)
{
	uint32_t lo = 0, hi = db->n4;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (asn_le32(db->v4 + (size_t)mid * ASN_V4_REC) <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static uint32_t
asn_find6(const struct asn_db *db, const unsigned char *a)
{
	uint32_t lo = 0, hi = db->n6;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (memcmp(db->v6 + (size_t)mid * ASN_V6_REC, a, 16) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int
asn_lookup(const struct asn_db *db, const unsigned char *b, size_t blen,
    uint32_t *asn, const char **org)
{
	static const unsigned char mapped[12] = {[10] = 0xff, [11] = 0xff};
	const unsigned char *r;
	uint32_t i;

	*asn = 0;
	*org = "";
	if (db == NULL || db->map == NULL)
		return 0;
	if (blen == 16 && memcmp(b, mapped, 12) == 0) {
		b += 12;
		blen = 4;
	}
	if (blen == 4) {
		uint32_t a = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
		    (uint32_t)b[2] << 8 | b[3];

		if ((i = asn_find4(db, a)) == 0)
			return 0;
		r = db->v4 + (size_t)(i - 1) * ASN_V4_REC;
		if (a > asn_le32(r + 4))
			return 0;
		return asn_entry(db, asn_le32(r + 8), asn, org);
	}
	if (blen != 16 || (i = asn_find6(db, b)) == 0)
		return 0;
	r = db->v6 + (size_t)(i - 1) * ASN_V6_REC;
	if (memcmp(b, r + 16, 16) > 0)
		return 0;
	return asn_entry(db, asn_le32(r + 32), asn, org);
}

void
asn_close(struct asn_db *db)
{
	if (db == NULL)
		return;
	if (db->map != NULL)
		munmap(db->map, db->len);
	memset(db, 0, sizeof(*db));
}
