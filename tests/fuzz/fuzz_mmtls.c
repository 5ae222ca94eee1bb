/*
 * libFuzzer harness for filters/mmtls.c. The input is one direction of a
 * stream, fed whole, then in pseudo-random pieces (seeded by the input
 * itself, so a crash replays), then byte by byte when short: every way must
 * give the same callbacks, counters and verdict, and what is reported must
 * obey mmtls.h (valid types and versions, lengths within the bound, hs_type
 * only on hello records, counters that add up).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filters/mmtls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SEEN_MAX 4096

struct seen {
	size_t n;     /* records reported */
	uint64_t sum; /* a running hash of all of them */
	struct mmtls_record r[SEEN_MAX];
	uint32_t max_length;
};

static void
seen_cb(const struct mmtls_record *rec, void *arg)
{
	struct seen *s = arg;
	uint64_t v;

	if (rec->type != MMTLS_ALERT && rec->type != MMTLS_HANDSHAKE &&
	    rec->type != MMTLS_DATA && rec->type != MMTLS_EARLY)
		abort();
	if (rec->version != 0xf104 && rec->version != 0xf103)
		abort();
	if (rec->length > s->max_length)
		abort();
	if (rec->hs_type != 0 && rec->type != MMTLS_HANDSHAKE &&
	    rec->type != MMTLS_EARLY)
		abort();
	if (rec->hs_type != 0 && rec->length < 5)
		abort();
	if (strcmp(mmtls_type_name(rec->type), "unknown") == 0)
		abort();
	v = (uint64_t)rec->type << 56 | (uint64_t)rec->version << 40 |
	    (uint64_t)rec->length << 8 | rec->hs_type;
	s->sum = s->sum * 0x100000001b3ULL ^ v;
	if (s->n < SEEN_MAX)
		s->r[s->n] = *rec;
	s->n++;
}

static void
check_counts(const struct mmtls_parser *p, const struct seen *s)
{
	if (p->records != s->n)
		abort();
	if (p->n_alert + p->n_handshake + p->n_data + p->n_early != p->records)
		abort();
	if (p->handshake_seen != (p->n_handshake > 0) ||
	    p->early_seen != (p->n_early > 0))
		abort();
	if (p->bad != 0 && p->bad != 1)
		abort();
}

static void
same(const struct mmtls_parser *pa, const struct seen *a,
    const struct mmtls_parser *pb, const struct seen *b)
{
	if (a->n != b->n || a->sum != b->sum)
		abort();
	for (size_t i = 0; i < a->n && i < SEEN_MAX; i++)
		if (a->r[i].type != b->r[i].type ||
		    a->r[i].version != b->r[i].version ||
		    a->r[i].length != b->r[i].length ||
		    a->r[i].hs_type != b->r[i].hs_type)
			abort();
	if (pa->bad != pb->bad || pa->records != pb->records ||
	    pa->n_alert != pb->n_alert || pa->n_handshake != pb->n_handshake ||
	    pa->n_data != pb->n_data || pa->n_early != pb->n_early)
		abort();
}

static uint64_t
rng_next(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* Feed data in pieces from the generator; the verdict must not change. */
static void
feed_split(const uint8_t *data, size_t size, uint64_t seed, uint32_t max,
    int want_rc, const struct mmtls_parser *pw, const struct seen *sw)
{
	static struct seen s;
	struct mmtls_parser p;
	size_t off = 0, n;
	int rc = 0, r;

	memset(&s, 0, sizeof(s));
	s.max_length = max;
	mmtls_init(&p);
	p.max_length = max;
	while (off < size) {
		uint64_t v = rng_next(&seed);

		switch (v & 3) {
		case 0:
			n = 1;
			break;
		case 1:
			n = (v >> 8) % 12;
			break;
		default:
			n = (v >> 8) % (size - off + 1);
			break;
		}
		if (n > size - off)
			n = size - off;
		r = mmtls_feed(&p, data + off, n, seen_cb, &s);
		/* once -1, always -1 */
		if (rc == -1 && r != -1)
			abort();
		rc = r;
		off += n;
	}
	if (mmtls_feed(&p, data, 0, seen_cb, &s) != (size == 0 ? 0 : rc))
		abort();
	if (size > 0 && rc != want_rc)
		abort();
	check_counts(&p, &s);
	same(pw, sw, &p, &s);
}

static void
run(const uint8_t *data, size_t size, uint32_t max)
{
	static struct seen whole;
	struct mmtls_parser p;
	uint64_t seed = 0xcbf29ce484222325ULL;
	int rc;

	memset(&whole, 0, sizeof(whole));
	whole.max_length = max;
	mmtls_init(&p);
	if (p.max_length != MMTLS_MAX_RECORD || p.bad || p.records)
		abort();
	p.max_length = max;
	rc = mmtls_feed(&p, data, size, seen_cb, &whole);
	if (rc != 0 && rc != -1)
		abort();
	if ((rc == -1) != (p.bad == 1))
		abort();
	check_counts(&p, &whole);
	/* a stream of records needs at least 5 bytes for each */
	if (whole.n * MMTLS_HEADER > size)
		abort();

	for (size_t i = 0; i < size; i++)
		seed = (seed ^ data[i]) * 0x100000001b3ULL;
	for (int k = 0; k < 4; k++)
		feed_split(data, size,
		    (seed + (uint64_t)k * 0x9e3779b97f4a7c15ULL) | 1, max, rc,
		    &p, &whole);
	if (size <= 512) {
		static struct seen s;
		struct mmtls_parser q;

		memset(&s, 0, sizeof(s));
		s.max_length = max;
		mmtls_init(&q);
		q.max_length = max;
		for (size_t i = 0; i < size; i++)
			(void)mmtls_feed(&q, data + i, 1, seen_cb, &s);
		same(&p, &whole, &q, &s);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	run(data, size, MMTLS_MAX_RECORD);
	run(data, size, 0xffff);
	run(data, size, 0);
	return 0;
}
