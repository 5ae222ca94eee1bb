/*
 * asn_build: the ASN range file (see asn.h) from @ip-location-db/asn
 * CSV files. Runs at build time (proxy/geo/tool/geo_asn_build.c) and in
 * `peephole geo update --from` a directory of CSVs; never on a loop.
 */
#include "proxy/geo/asn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define ASN_MAX_ROWS (4u << 20)  /* far above today's ~520,000 */
#define ASN_MAX_CSV (64LL << 20) /* per file; today's are 8 and 12 MB */
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

/*
 * path opened for reading if it is (or links to) a regular file:
 * O_NONBLOCK so that a FIFO put there does not block the open. Links are
 * followed: only read, and a directory of links to the release files is
 * a fair way to point at them. NULL with errno (EINVAL: not a regular
 * file).
 */
static FILE *
asn_fopen(const char *path)
{
	struct stat st;
	FILE *fp;
	int fd;

	if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) == -1)
		return NULL;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    fcntl(fd, F_SETFL, 0) == -1 || (fp = fdopen(fd, "r")) == NULL) {
		int e = errno;

		if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode))
			e = EINVAL;
		close(fd);
		errno = e;
		return NULL;
	}
	return fp;
}

/* Every row of one CSV file into b. */
static int
asn_read_csv(struct asn_builder *b, const char *path, char *err, size_t errlen)
{
	char line[ASN_MAX_LINE], why[200];
	unsigned long lineno = 0;
	long long bytes = 0;
	FILE *fp;

	if ((fp = asn_fopen(path)) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), fp) != NULL) {
		lineno++;
		if ((bytes += (long long)strlen(line)) > ASN_MAX_CSV) {
			snprintf(why, sizeof(why), "larger than %lld MiB",
			    ASN_MAX_CSV >> 20);
			goto fail;
		}
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
	const struct asn_range *x = a, *y = b;
	int c = memcmp(x->first, y->first, 4);

	/* Same start: the wider range first, so the narrower one nests. */
	return c != 0 ? c : memcmp(y->last, x->last, 4);
}

static int
asn_cmp6(const void *a, const void *b)
{
	const struct asn_range *x = a, *y = b;
	int c = memcmp(x->first, y->first, 16);

	return c != 0 ? c : memcmp(y->last, x->last, 16);
}

/* addr - 1, alen bytes in network order; addr is not all zero. */
static void
asn_dec(unsigned char *addr, size_t alen)
{
	for (size_t i = alen; i-- > 0;)
		if (addr[i]-- != 0)
			break;
}

/* addr + 1; 1 when it wrapped past the last address. */
static int
asn_inc(unsigned char *addr, size_t alen)
{
	for (size_t i = alen; i-- > 0;)
		if (++addr[i] != 0)
			return 0;
	return 1;
}

/* The state of asn_sort's sweep: ranges still open, and what is out. */
struct asn_sweep {
	const struct asn_range **stack; /* open ranges, innermost last */
	size_t depth;
	struct asn_range *out;
	size_t nout;
	unsigned char pos[16]; /* the first address not yet written */
	int done;              /* pos wrapped: every address written */
	size_t alen;
};

/* Write [pos, last] with the innermost open range's AS; pos = last + 1. */
static void
asn_emit(struct asn_sweep *s, const unsigned char *last)
{
	struct asn_range *o = s->out != NULL ? &s->out[s->nout] : NULL;

	s->nout++; /* only counted on the first pass (out NULL) */
	if (o != NULL) {
		memset(o, 0, sizeof(*o));
		memcpy(o->first, s->pos, s->alen);
		memcpy(o->last, last, s->alen);
		o->idx = s->stack[s->depth - 1]->idx;
	}
	memcpy(s->pos, last, s->alen);
	s->done = asn_inc(s->pos, s->alen);
}

/*
 * Write the open ranges up to before (all of them when before is NULL):
 * the innermost covers pos; a range that ends is closed and the one
 * around it goes on after it.
 */
static void
asn_flush(struct asn_sweep *s, const unsigned char *before)
{
	unsigned char end[16];
	size_t alen = s->alen;

	while (s->depth > 0 && !s->done &&
	    (before == NULL || memcmp(s->pos, before, alen) < 0)) {
		const struct asn_range *top = s->stack[s->depth - 1];

		if (memcmp(top->last, s->pos, alen) < 0) {
			s->depth--;
			continue;
		}
		memcpy(end, top->last, alen);
		if (before != NULL && memcmp(before, top->last, alen) <= 0) {
			memcpy(end, before, alen);
			asn_dec(end, alen); /* before > pos >= 0 */
		}
		asn_emit(s, end);
	}
}

/* The sweep over the sorted ranges in[0..n). */
static void
asn_sweep_run(struct asn_sweep *s, const struct asn_range *in, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		asn_flush(s, in[i].first);
		if (s->depth == 0 || s->done) {
			memcpy(s->pos, in[i].first, s->alen);
			s->done = 0;
			s->depth = 0;
		}
		s->stack[s->depth++] = &in[i];
	}
	asn_flush(s, NULL);
}

/*
 * Sort by first address and cut overlaps. The published data has a few
 * overlapping rows (2.3.2026061719: 214.95.0.0-215.0.255.255 and
 * 215.0.0.0-215.1.3.255) and nested ones: the later start is the more
 * specific announcement, so it wins where it lies, and the range around
 * it goes on after its end (1.0.0.0-1.255.255.255 around 1.2.0.0/16
 * becomes 1.0.0.0-1.1.255.255, 1.2.0.0/16, 1.3.0.0-1.255.255.255).
 * Replaces *r with a new array of *n sorted, disjoint ranges (at most
 * twice as many: each range splits the one around it in two at most;
 * a first pass counts them, so the array is the size it needs). 0, or
 * -1 when out of memory (*r unchanged).
 */
static int
asn_sort(struct asn_range **r, size_t *n, size_t alen)
{
	struct asn_sweep s;
	struct asn_range *in = *r;
	size_t nout = 0;

	if (*n == 0)
		return 0;
	qsort(in, *n, sizeof(*in), alen == 4 ? asn_cmp4 : asn_cmp6);
	for (int pass = 0; pass < 2; pass++) {
		memset(&s, 0, sizeof(s));
		s.alen = alen;
		s.stack = calloc(*n, sizeof(*s.stack));
		if (s.stack == NULL ||
		    (pass == 1 &&
			(s.out = calloc(nout, sizeof(*s.out))) == NULL)) {
			free(s.stack);
			return -1;
		}
		asn_sweep_run(&s, in, *n);
		free(s.stack);
		nout = s.nout;
	}
	free(in);
	*r = s.out;
	*n = nout;
	return 0;
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
	if (asn_sort(&b.r4, &b.n4, 4) == -1 ||
	    asn_sort(&b.r6, &b.n6, 16) == -1) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
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
