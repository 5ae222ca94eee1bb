/*
 * libFuzzer harness for filters/wsframe.c. The first three bytes choose
 * the set-up: byte 0 the direction, permessage-deflate on or off, each
 * side's no_context_takeover, and whether the rest is raw stream bytes or
 * records the harness turns into well-formed frames (so the inflater sees
 * plenty of validly framed input); byte 1 both window sizes; byte 2 the
 * capture limit. The stream is fed whole, then in pseudo-random pieces
 * (seeded by the input itself, so a crash replays), then byte by byte
 * when short: every way must give the same messages and verdict, and what
 * is reported must obey wsframe.h (opcodes, sizes, capture bound, close
 * fields, bounded memory).
 *
 * Record format in framed mode: [first header byte][length byte: top bit
 * masks, low 7 bits are the payload length][payload].
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filters/wsframe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct setup {
	int dir;
	size_t cap;
	struct wsframe_deflate pmd;
};

struct seen {
	const struct setup *su;
	struct wsframe *p;
	size_t n;     /* messages reported */
	uint64_t sum; /* a running hash of all of them */
};

static uint64_t
mix(uint64_t h, uint64_t v)
{
	return (h ^ v) * 0x100000001b3ULL;
}

/* Check one message against the header's promises. */
static void
check_msg(const struct setup *su, const struct wsframe_msg *m)
{
	int control = m->opcode >= WSFRAME_CLOSE;

	if (m->opcode != WSFRAME_TEXT && m->opcode != WSFRAME_BINARY &&
	    m->opcode != WSFRAME_CLOSE && m->opcode != WSFRAME_PING &&
	    m->opcode != WSFRAME_PONG)
		abort();
	if (m->dir != su->dir || m->data == NULL || m->len > su->cap ||
	    m->len > m->size || m->truncated != (m->size > m->len))
		abort();
	if (m->fragments < 1 || (control && m->fragments != 1))
		abort();
	if (m->compressed && (control || !su->pmd.enabled))
		abort();
	if (!m->compressed && m->size != m->wire_bytes)
		abort();
	if (control && m->size > WSFRAME_CONTROL_MAX)
		abort();
	if (m->opcode != WSFRAME_CLOSE || m->size == 0) {
		if (m->close_code != -1)
			abort();
	} else if (m->size == 1 || m->close_code < 0 || m->close_code > 65535) {
		abort();
	}
	if (m->close_reason != NULL &&
	    (m->opcode != WSFRAME_CLOSE ||
		m->close_reason != (const char *)m->data + 2 ||
		m->close_reason_len != m->len - 2))
		abort();
	if (m->close_reason == NULL && m->close_reason_len != 0)
		abort();
}

static void
seen_cb(void *arg, const struct wsframe_msg *m)
{
	struct seen *s = arg;
	uint64_t h = s->sum;

	check_msg(s->su, m);
	/* object, capture, scratch, zlib's state and window, with room */
	if (wsframe_memory(s->p) > s->su->cap + 96 * 1024)
		abort();
	h = mix(h, (uint64_t)m->opcode << 32 | (uint32_t)m->fragments);
	h = mix(h, m->size);
	h = mix(h, m->wire_bytes);
	h = mix(h, (uint64_t)m->compressed << 32 | (uint32_t)m->close_code);
	h = mix(h, m->len);
	for (size_t i = 0; i < m->len; i++)
		h = mix(h, m->data[i]);
	s->sum = h;
	s->n++;
}

static uint64_t
rng_next(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

struct verdict {
	int rc;
	size_t n;
	uint64_t sum;
	char err[128];
};

/*
 * Feed the stream to a new parser: whole (seed 0), byte by byte (seed 1),
 * or in pieces from the generator seeded with seed. Once -1, always -1.
 */
static void
feed(const struct setup *su, const uint8_t *b, size_t size, uint64_t seed,
    struct verdict *v)
{
	struct seen s;
	size_t off = 0, n;
	int rc = 0, r, mode = seed < 2 ? (int)seed : 2;

	memset(&s, 0, sizeof(s));
	s.su = su;
	if ((s.p = wsframe_new(su->dir, su->cap, &su->pmd)) == NULL)
		abort();
	while (off < size) {
		uint64_t x = mode == 2 ? rng_next(&seed) : 0;

		if (mode == 0)
			n = size - off;
		else if (mode == 1)
			n = 1;
		else
			n = x & 1 ? (x >> 8) % 16 : (x >> 8) % (size - off + 1);
		if (n > size - off)
			n = size - off;
		r = wsframe_feed(s.p, b + off, n, seen_cb, &s);
		if ((r != 0 && r != -1) || (rc == -1 && r != -1))
			abort();
		rc = r;
		off += n;
	}
	if (wsframe_feed(s.p, b, 0, seen_cb, &s) != rc)
		abort();
	if ((rc == -1) != (wsframe_error(s.p) != NULL))
		abort();
	v->rc = rc;
	v->n = s.n;
	v->sum = s.sum;
	v->err[0] = '\0';
	if (rc == -1)
		strncat(v->err, wsframe_error(s.p), sizeof(v->err) - 1);
	wsframe_free(s.p);
}

static void
same(const struct verdict *a, const struct verdict *b)
{
	if (a->rc != b->rc || a->n != b->n || a->sum != b->sum ||
	    strcmp(a->err, b->err) != 0)
		abort();
}

/* Turn records into frames in out (of room bytes); returns the length. */
static size_t
frame(const uint8_t *in, size_t len, uint8_t *out, size_t room)
{
	static const uint8_t key[4] = {0x9c, 0x01, 0x5e, 0xa7};
	size_t i = 0, o = 0, pl;
	int masked;

	while (i + 2 <= len && o + 6 + 127 <= room) {
		out[o++] = in[i];
		masked = (in[i + 1] & 0x80) != 0;
		pl = in[i + 1] & 0x7f;
		i += 2;
		if (pl > len - i)
			pl = len - i;
		out[o++] = (uint8_t)((masked ? 0x80 : 0) | pl);
		if (masked) {
			memcpy(out + o, key, 4);
			o += 4;
		}
		for (size_t k = 0; k < pl; k++)
			out[o++] = masked ? in[i + k] ^ key[k & 3] : in[i + k];
		i += pl;
	}
	return o;
}

/* The input as a Sec-WebSocket-Extensions value: no crash, sane output. */
static void
check_extensions(const uint8_t *data, size_t size)
{
	struct wsframe_deflate d;

	if (wsframe_parse_extensions((const char *)data, size, &d) != 0)
		return;
	if (d.client_max_window_bits < 8 || d.client_max_window_bits > 15 ||
	    d.server_max_window_bits < 8 || d.server_max_window_bits > 15)
		abort();
	if (!d.enabled &&
	    (d.client_no_context_takeover || d.server_no_context_takeover ||
		d.client_max_window_bits != 15 ||
		d.server_max_window_bits != 15))
		abort();
	/* what parses can be used */
	wsframe_free(wsframe_new(0, 16, &d));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t caps[8] = {0, 1, 2, 3, 16, 125, 200, 4096};
	static uint8_t framed[3 * 8192 + 256];
	struct setup su;
	struct verdict whole, v;
	const uint8_t *b;
	uint64_t seed = 0xcbf29ce484222325ULL;

	check_extensions(data, size);
	if (size < 3)
		return 0;
	memset(&su, 0, sizeof(su));
	su.dir = data[0] & 1;
	su.pmd.enabled = (data[0] & 2) != 0;
	su.pmd.client_no_context_takeover = (data[0] & 4) != 0;
	su.pmd.server_no_context_takeover = (data[0] & 8) != 0;
	su.pmd.client_max_window_bits = 8 + (data[1] & 7);
	su.pmd.server_max_window_bits = 8 + (data[1] >> 3 & 7);
	su.cap = caps[data[2] & 7];
	b = data + 3;
	size -= 3;
	if (data[0] & 16) {
		size = frame(b, size, framed, sizeof(framed));
		b = framed;
	}
	feed(&su, b, size, 0, &whole);
	for (size_t i = 0; i < size; i++)
		seed = mix(seed, b[i]);
	for (int k = 0; k < 4; k++) {
		feed(&su, b, size,
		    (seed + (uint64_t)k * 0x9e3779b97f4a7c15ULL) | 2, &v);
		same(&whole, &v);
	}
	if (size <= 1024) {
		feed(&su, b, size, 1, &v);
		same(&whole, &v);
	}
	return 0;
}
