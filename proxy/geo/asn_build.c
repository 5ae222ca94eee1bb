/*
 * asn_build: the ASN range file (see asn.h) from @ip-location-db/asn
 * CSV files. Runs at build time (proxy/geo/tool/geo_asn_build.c) and in
 * `peephole geo update --from` a directory of CSVs; never on a loop.
 */
#include "proxy/geo/asn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define ASN_MAX_ROWS (16u << 20) /* far above today's ~520,000 */
#define ASN_MAX_LINE 4096
#define ASN_ORG_MAX 127 /* geo_info.org holds 127 bytes and a NUL */

struct asn_range {
	unsigned char first[16], last[16]; /* v4 in the first 4 bytes */
	uint32_t idx;
};

struct asn_slot {
	uint32_t asn, off, used;
};

struct asn_builder {
	struct asn_range *r4, *r6;
	size_t n4, n6, cap4, cap6;
	struct asn_slot *slots; /* (asn, org) interned: open addressing */
	size_t nslots, nas;
	uint32_t *order; /* AS index -> slot */
	char *str;
	size_t slen, strcap;
};

static uint32_t
asn_hash(uint32_t asn, const char *org)
{
	uint32_t h = 2166136261u ^ asn;

	for (; *org != '\0'; org++)
		h = (h ^ (unsigned char)*org) * 16777619u;
	return h;
}

static int
asn_grow(void **p, size_t *cap, size_t n, size_t size)
{
	void *np;
	size_t ncap;

	if (n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 4096;
	if ((np = realloc(*p, ncap * size)) == NULL)
		return -1;
	*p = np;
	*cap = ncap;
	return 0;
}

/* Rehash into twice the slots. */
static int
asn_rehash(struct asn_builder *b)
{
	size_t n = b->nslots ? b->nslots * 2 : 1u << 16;
	struct asn_slot *s = calloc(n, sizeof(*s));
	uint32_t *o = realloc(b->order, n / 2 * sizeof(*o));

	if (s == NULL || o == NULL) {
		free(s);
		if (o != NULL)
			b->order = o;
		return -1;
	}
	b->order = o;
	for (size_t i = 0; i < b->nas; i++) {
		struct asn_slot *old = &b->slots[b->order[i]];
		size_t j = asn_hash(old->asn, b->str + old->off) & (n - 1);

		while (s[j].used)
			j = (j + 1) & (n - 1);
		s[j] = *old;
		b->order[i] = (uint32_t)j;
	}
	free(b->slots);
	b->slots = s;
	b->nslots = n;
	return 0;
}

/* The AS index of (asn, org), added when new; -1 on memory. */
static long
asn_intern(struct asn_builder *b, uint32_t asn, const char *org)
{
	size_t j, len = strlen(org) + 1;
	void *str = b->str;

	if ((b->nas + 1) * 2 > b->nslots && asn_rehash(b) == -1)
		return -1;
	j = asn_hash(asn, org) & (b->nslots - 1);
	for (; b->slots[j].used; j = (j + 1) & (b->nslots - 1))
		if (b->slots[j].asn == asn &&
		    strcmp(b->str + b->slots[j].off, org) == 0)
			return b->slots[j].used - 1;
	while (b->slen + len > b->strcap) {
		size_t ncap = b->strcap ? b->strcap * 2 : 1u << 20;

		if ((str = realloc(b->str, ncap)) == NULL)
			return -1;
		b->str = str;
		b->strcap = ncap;
	}
	memcpy(b->str + b->slen, org, len);
	b->slots[j] =
	    (struct asn_slot){asn, (uint32_t)b->slen, (uint32_t)b->nas + 1};
	b->slen += len;
	b->order[b->nas] = (uint32_t)j;
	return (long)b->nas++;
}

/*
 * Split one CSV line into at most nf fields in place ("" inside quotes is
 * a quote). The number of fields.
 */
static int
asn_csv_split(char *line, char **f, int nf)
{
	int n = 0;
	char *r = line, *w;

	while (n < nf) {
		f[n++] = w = r;
		if (*r == '"') {
			for (r++; *r != '\0'; r++) {
				if (*r == '"' && r[1] == '"')
					r++;
				else if (*r == '"') {
					r++;
					break;
				}
				*w++ = *r;
			}
		}
		while (*r != '\0' && *r != ',' && *r != '\n' && *r != '\r')
			*w++ = *r++;
		if (*r != ',') {
			*w = '\0';
			break;
		}
		r++;
		*w = '\0';
	}
	return n;
}

/* Cut org to ASN_ORG_MAX bytes on a UTF-8 character boundary. */
static void
asn_cut(char *org)
{
	size_t n = strlen(org);

	if (n <= ASN_ORG_MAX)
		return;
	n = ASN_ORG_MAX;
	while (n > 0 && ((unsigned char)org[n] & 0xc0) == 0x80)
		n--;
	org[n] = '\0';
}

/* One data row into b. 0, or -1 with a message in err. */
static int
asn_row(struct asn_builder *b, char *line, char *err, size_t errlen)
{
	char *f[4], *end;
	struct asn_range r;
	unsigned long asn;
	long idx;
	int v4;

	memset(&r, 0, sizeof(r));
	if (asn_csv_split(line, f, 4) != 4) {
		snprintf(err, errlen, "not 4 fields");
		return -1;
	}
	v4 = inet_pton(AF_INET, f[0], r.first) == 1 &&
	    inet_pton(AF_INET, f[1], r.last) == 1;
	if (!v4 &&
	    (inet_pton(AF_INET6, f[0], r.first) != 1 ||
		inet_pton(AF_INET6, f[1], r.last) != 1)) {
		snprintf(
		    err, errlen, "not an address range: %s,%s", f[0], f[1]);
		return -1;
	}
	errno = 0;
	asn = strtoul(f[2], &end, 10);
	if (errno != 0 || end == f[2] || *end != '\0' || asn > UINT32_MAX ||
	    memcmp(r.first, r.last, v4 ? 4 : 16) > 0) {
		snprintf(err, errlen, "bad AS number or range: %s", f[2]);
		return -1;
	}
	asn_cut(f[3]);
	if ((idx = asn_intern(b, (uint32_t)asn, f[3])) < 0)
		goto nomem;
	r.idx = (uint32_t)idx;
	if (v4 ? asn_grow((void **)&b->r4, &b->cap4, b->n4, sizeof(r))
	       : asn_grow((void **)&b->r6, &b->cap6, b->n6, sizeof(r)))
		goto nomem;
	if (v4)
		b->r4[b->n4++] = r;
	else
		b->r6[b->n6++] = r;
	return 0;
nomem:
	snprintf(err, errlen, "out of memory");
	return -1;
}

/* Every row of one CSV file into b. */
static int
asn_read_csv(struct asn_builder *b, const char *path, char *err, size_t errlen)
{
	char line[ASN_MAX_LINE], why[200];
	unsigned long lineno = 0;
	FILE *fp;

	if ((fp = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), fp) != NULL) {
		lineno++;
		if (strchr(line, '\n') == NULL && !feof(fp)) {
			snprintf(why, sizeof(why), "line too long");
			goto fail;
		}
		if (line[0] == '\n' || line[0] == '\r' || line[0] == '\0')
			continue;
		if (b->n4 + b->n6 >= ASN_MAX_ROWS) {
			snprintf(why, sizeof(why), "more than %u rows",
			    ASN_MAX_ROWS);
			goto fail;
		}
		if (asn_row(b, line, why, sizeof(why)) == -1)
			goto fail;
	}
	if (ferror(fp)) {
		snprintf(why, sizeof(why), "read error");
		goto fail;
	}
	fclose(fp);
	return 0;
fail:
	snprintf(err, errlen, "%s:%lu: %s", path, lineno, why);
	fclose(fp);
	return -1;
}

static int
asn_cmp4(const void *a, const void *b)
{
	return memcmp(((const struct asn_range *)a)->first,
	    ((const struct asn_range *)b)->first, 4);
}

static int
asn_cmp6(const void *a, const void *b)
{
	return memcmp(((const struct asn_range *)a)->first,
	    ((const struct asn_range *)b)->first, 16);
}

/* addr - 1, alen bytes in network order; addr is not all zero. */
static void
asn_dec(unsigned char *addr, size_t alen)
{
	for (size_t i = alen; i-- > 0;)
		if (addr[i]-- != 0)
			break;
}

/*
 * Sort by first address. The published data has a few overlapping rows
 * (2.3.2026061719: 214.95.0.0-215.0.255.255 and 215.0.0.0-215.1.3.255):
 * a range that starts inside the one before it cuts that one short there,
 * as the later start is the more specific announcement. A range left
 * empty is dropped. The number of ranges kept.
 */
static size_t
asn_sort(struct asn_range *r, size_t n, size_t alen)
{
	size_t w = 0;

	qsort(r, n, sizeof(*r), alen == 4 ? asn_cmp4 : asn_cmp6);
	for (size_t i = 0; i < n; i++) {
		if (w > 0 && memcmp(r[i].first, r[w - 1].last, alen) <= 0) {
			if (memcmp(r[i].first, r[w - 1].first, alen) == 0)
				w--; /* same start: the later row wins */
			else {
				memcpy(r[w - 1].last, r[i].first, alen);
				asn_dec(r[w - 1].last, alen);
			}
		}
		r[w++] = r[i];
	}
	return w;
}

static void
asn_put32(FILE *fp, uint32_t v)
{
	unsigned char p[4] = {(unsigned char)v, (unsigned char)(v >> 8),
	    (unsigned char)(v >> 16), (unsigned char)(v >> 24)};

	fwrite(p, 1, 4, fp);
}

static uint32_t
asn_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

/* The whole file to fp; fclose's result. */
static int
asn_write(const struct asn_builder *b, FILE *fp, const char *date)
{
	char d[16] = {0};
	static const char pad[24];

	strncpy(d, date, sizeof(d) - 1);
	fwrite(ASN_MAGIC, 1, sizeof(ASN_MAGIC) - 1, fp);
	asn_put32(fp, (uint32_t)b->n4);
	asn_put32(fp, (uint32_t)b->n6);
	asn_put32(fp, (uint32_t)b->nas);
	asn_put32(fp, (uint32_t)b->slen);
	fwrite(d, 1, sizeof(d), fp);
	fwrite(pad, 1, sizeof(pad), fp);
	for (size_t i = 0; i < b->n4; i++) {
		asn_put32(fp, asn_be32(b->r4[i].first));
		asn_put32(fp, asn_be32(b->r4[i].last));
		asn_put32(fp, b->r4[i].idx);
	}
	for (size_t i = 0; i < b->n6; i++) {
		fwrite(b->r6[i].first, 1, 16, fp);
		fwrite(b->r6[i].last, 1, 16, fp);
		asn_put32(fp, b->r6[i].idx);
	}
	for (size_t i = 0; i < b->nas; i++) {
		asn_put32(fp, b->slots[b->order[i]].asn);
		asn_put32(fp, b->slots[b->order[i]].off);
	}
	fwrite(b->str, 1, b->slen, fp);
	return ferror(fp) ? (fclose(fp), -1) : fclose(fp);
}

static void
asn_builder_free(struct asn_builder *b)
{
	free(b->r4);
	free(b->r6);
	free(b->slots);
	free(b->order);
	free(b->str);
}

int
asn_build(const char *path, const char *const *csv, int ncsv, const char *date,
    char *err, size_t errlen)
{
	struct asn_builder b;
	char tmp[4096];
	FILE *fp;
	int rc = -1;

	memset(&b, 0, sizeof(b));
	for (int i = 0; i < ncsv; i++)
		if (asn_read_csv(&b, csv[i], err, errlen) == -1)
			goto out;
	if (b.nas == 0) {
		snprintf(err, errlen, "no rows in the CSV files");
		goto out;
	}
	b.n4 = asn_sort(b.r4, b.n4, 4);
	b.n6 = asn_sort(b.r6, b.n6, 16);
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp) ||
	    (fp = fopen(tmp, "wb")) == NULL) {
		snprintf(err, errlen, "%s.tmp: %s", path, strerror(errno));
		goto out;
	}
	if (asn_write(&b, fp, date) != 0 || rename(tmp, path) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		unlink(tmp);
		goto out;
	}
	rc = 0;
out:
	asn_builder_free(&b);
	return rc;
}
