/* mmtls: see mmtls.h. */
#include "filters/mmtls.h"

#include <string.h>

void
mmtls_init(struct mmtls_parser *p)
{
	memset(p, 0, sizeof(*p));
	p->need = MMTLS_HEADER;
	p->max_length = MMTLS_MAX_RECORD;
}

const char *
mmtls_type_name(uint8_t type)
{
	switch (type) {
	case MMTLS_ALERT:
		return "alert";
	case MMTLS_HANDSHAKE:
		return "handshake";
	case MMTLS_DATA:
		return "data";
	case MMTLS_EARLY:
		return "early-data";
	default:
		return "unknown";
	}
}

static int
mmtls_hello_type(uint8_t t)
{
	return t == MMTLS_HANDSHAKE || t == MMTLS_EARLY;
}

/*
 * Check header byte p->have - 1, just stored, as soon as it can be judged,
 * so garbage is refused at the same byte whatever the split. Once the
 * length is known, work out how much of the record to collect: 10 bytes of
 * a handshake or early record (fewer when it is shorter), else the header.
 */
static int
mmtls_check(struct mmtls_parser *p)
{
	const unsigned char *h = p->hdr;
	size_t peek;

	switch (p->have) {
	case 1:
		return h[0] == MMTLS_ALERT || mmtls_hello_type(h[0]) ||
			h[0] == MMTLS_DATA
		    ? 0
		    : -1;
	case 2:
		return h[1] == 0xf1 ? 0 : -1;
	case 3:
		return h[2] == 0x04 || h[2] == 0x03 ? 0 : -1;
	case MMTLS_HEADER:
		p->len = (uint32_t)h[3] << 8 | h[4];
		if (p->len > p->max_length)
			return -1;
		peek = MMTLS_HELLO_PEEK - MMTLS_HEADER;
		if (!mmtls_hello_type(h[0]))
			peek = 0;
		else if (p->len < peek)
			peek = p->len;
		p->need = MMTLS_HEADER + peek;
		return 0;
	default:
		return 0;
	}
}

/* The record whose head is in p->hdr: count it, report it, skip the rest. */
static void
mmtls_emit(struct mmtls_parser *p,
    void (*cb)(const struct mmtls_record *rec, void *arg), void *arg)
{
	const unsigned char *h = p->hdr;
	struct mmtls_record rec;
	uint32_t section;

	memset(&rec, 0, sizeof(rec));
	rec.type = h[0];
	rec.version = (uint16_t)(h[1] << 8 | h[2]);
	rec.length = p->len;
	if (p->need == MMTLS_HELLO_PEEK) {
		section = (uint32_t)h[5] << 24 | (uint32_t)h[6] << 16 |
		    (uint32_t)h[7] << 8 | h[8];
		if (section == p->len - 4)
			rec.hs_type = h[9];
	}
	switch (rec.type) {
	case MMTLS_ALERT:
		p->n_alert++;
		break;
	case MMTLS_HANDSHAKE:
		p->n_handshake++;
		p->handshake_seen = 1;
		break;
	case MMTLS_DATA:
		p->n_data++;
		break;
	default:
		p->n_early++;
		p->early_seen = 1;
		break;
	}
	p->records++;
	p->skip = p->len - (uint32_t)(p->need - MMTLS_HEADER);
	p->have = 0;
	p->need = MMTLS_HEADER;
	if (cb != NULL)
		cb(&rec, arg);
}

int
mmtls_feed(struct mmtls_parser *p, const unsigned char *buf, size_t len,
    void (*cb)(const struct mmtls_record *rec, void *arg), void *arg)
{
	size_t i = 0, n;

	if (p->bad)
		return -1;
	while (i < len) {
		if (p->skip > 0) {
			n = len - i < p->skip ? len - i : p->skip;
			p->skip -= (uint32_t)n;
			i += n;
			continue;
		}
		p->hdr[p->have++] = buf[i++];
		if (mmtls_check(p) == -1) {
			p->bad = 1;
			return -1;
		}
		if (p->have == p->need)
			mmtls_emit(p, cb, arg);
	}
	return 0;
}
