/* wsframe: see wsframe.h. */
#include "filters/wsframe.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#define WSFRAME_SCRATCH 16384 /* inflate output, reused */
#define WSFRAME_UNMASK 1024   /* masked input unmasked on the stack */
#define WSFRAME_KEEP 4096     /* capture buffer kept between messages */

/* What a data message has so far (control frames use ctrl[] instead). */
struct wsframe_acc {
	int active; /* a data message has started and not finished */
	int opcode;
	int compressed;
	int fragments;
	uint64_t size, wire;
};

struct wsframe {
	int dir;
	size_t capture_max;
	struct wsframe_deflate pmd; /* enabled: RSV1 allowed */
	int no_takeover;            /* this direction's *_no_context_takeover */
	int wbits;                  /* inflate window: MAX_WBITS (see new) */
	char err[96];               /* non-empty once the stream is refused */

	/* the frame header being collected */
	unsigned char hdr[WSFRAME_HEADER_MAX];
	size_t have, need; /* have == 0: between frames */

	/* the frame whose payload is being read */
	int in_payload;
	int fin, opcode, masked;
	unsigned char key[4];
	uint64_t left; /* payload bytes still to come */
	uint64_t off;  /* payload bytes seen: the mask index */

	struct wsframe_acc msg; /* the data message */
	unsigned char *cap;     /* its captured bytes */
	size_t cap_len, cap_size;

	unsigned char ctrl[WSFRAME_CONTROL_MAX]; /* the control frame */
	size_t ctrl_len;

	z_stream zs;
	int z_ready;
	int z_ended;            /* a final block ended the raw stream */
	unsigned char *scratch; /* WSFRAME_SCRATCH bytes, with zs */
	size_t zbytes;          /* held by zlib, through wsframe_zalloc */
};

/* Refuse the stream from now on; the first reason stays. */
static int
wsframe_fail(struct wsframe *p, const char *why)
{
	if (p->err[0] == '\0')
		snprintf(p->err, sizeof(p->err), "%s", why);
	return -1;
}

/*
 * zlib's allocator hooks, so wsframe_memory can count what zlib holds: each
 * block carries its size in a max_align_t-sized prefix.
 */
static voidpf
wsframe_zalloc(voidpf opaque, uInt items, uInt size)
{
	struct wsframe *p = opaque;
	max_align_t *h;
	size_t n;

	if (size != 0 && items > (SIZE_MAX - sizeof(*h)) / size)
		return Z_NULL;
	n = (size_t)items * size;
	if ((h = malloc(sizeof(*h) + n)) == NULL)
		return Z_NULL;
	memcpy(h, &n, sizeof(n));
	p->zbytes += n;
	return h + 1;
}

static void
wsframe_zfree(voidpf opaque, voidpf addr)
{
	struct wsframe *p = opaque;
	max_align_t *h;
	size_t n;

	if (addr == Z_NULL)
		return;
	h = (max_align_t *)addr - 1;
	memcpy(&n, h, sizeof(n));
	p->zbytes -= n;
	free(h);
}

struct wsframe *
wsframe_new(int dir, size_t capture_max, const struct wsframe_deflate *pmd)
{
	struct wsframe *p;
	int wbits;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	p->dir = dir;
	p->capture_max = capture_max;
	p->need = 2;
	if (pmd != NULL && pmd->enabled) {
		p->pmd = *pmd;
		p->no_takeover = dir == 0 ? pmd->client_no_context_takeover
					  : pmd->server_no_context_takeover;
		wbits = dir == 0 ? pmd->client_max_window_bits
				 : pmd->server_max_window_bits;
		if (wbits < 8 || wbits > 15) {
			free(p);
			return NULL;
		}
		/*
		 * The agreed window is checked, but inflation always uses
		 * the largest, 15 bits. A larger window is always safe for
		 * inflating (a sender keeping to its window never reaches
		 * past it), and zlib checks a distance only against its
		 * window plus what the same call wrote: with the agreed one,
		 * a sender reaching past it was read or refused depending on
		 * how its bytes were chunked (the fuzzer's find). With 32 KiB
		 * every distance DEFLATE can say is in reach, whatever the
		 * chunks. (zlib would refuse a raw 8-bit window anyway.)
		 */
		p->wbits = MAX_WBITS;
	}
	return p;
}

void
wsframe_free(struct wsframe *p)
{
	if (p == NULL)
		return;
	if (p->z_ready)
		inflateEnd(&p->zs);
	free(p->scratch);
	free(p->cap);
	free(p);
}

const char *
wsframe_error(const struct wsframe *p)
{
	return p->err[0] != '\0' ? p->err : NULL;
}

size_t
wsframe_memory(const struct wsframe *p)
{
	return sizeof(*p) + p->cap_size + (p->scratch ? WSFRAME_SCRATCH : 0) +
	    p->zbytes;
}

/* Keep what fits of n more message bytes in the capture buffer. */
static void
wsframe_capture(struct wsframe *p, const unsigned char *b, size_t n)
{
	size_t room, want, ns;
	unsigned char *nb;

	if (p->cap_len >= p->capture_max || n == 0)
		return;
	room = p->capture_max - p->cap_len;
	want = p->cap_len + (n < room ? n : room);
	if (want > p->cap_size) {
		ns = p->cap_size ? p->cap_size : 256;
		while (ns < want)
			ns = ns > SIZE_MAX / 2 ? want : ns * 2;
		if (ns > p->capture_max)
			ns = p->capture_max;
		/* out of memory: keep what we have, the rest is counted */
		if ((nb = realloc(p->cap, ns)) == NULL)
			return;
		p->cap = nb;
		p->cap_size = ns;
	}
	memcpy(p->cap + p->cap_len, b, want - p->cap_len);
	p->cap_len = want;
}

/* Make the inflater and its scratch buffer, the first time they are used. */
static int
wsframe_zinit(struct wsframe *p)
{
	if (p->z_ready)
		return 0;
	if (p->scratch == NULL &&
	    (p->scratch = malloc(WSFRAME_SCRATCH)) == NULL)
		return wsframe_fail(p, "out of memory for the inflater");
	memset(&p->zs, 0, sizeof(p->zs));
	p->zs.zalloc = wsframe_zalloc;
	p->zs.zfree = wsframe_zfree;
	p->zs.opaque = p;
	if (inflateInit2(&p->zs, -p->wbits) != Z_OK)
		return wsframe_fail(p, "out of memory for the inflater");
	p->z_ready = 1;
	return 0;
}

/*
 * A DEFLATE block with BFINAL set ended the raw stream (RFC 7692 7.2.3.4
 * lets a sender flush that way, then add a 00 octet so the appended
 * 00 00 ff ff still reads as an empty stored block). Start a new stream
 * for what follows, keeping the window: later data may refer to it (the
 * caller resets instead at a message's end without context takeover). The
 * window is copied through a buffer of its size, freed here.
 */
static int
wsframe_zrestart(struct wsframe *p)
{
	unsigned char *dict;
	uInt dlen = 0;
	int rc = 0;

	p->z_ended = 0;
	if ((dict = malloc((size_t)1 << p->wbits)) == NULL)
		return wsframe_fail(p, "out of memory for the inflater");
	if (inflateGetDictionary(&p->zs, dict, &dlen) != Z_OK)
		dlen = 0;
	if (inflateReset(&p->zs) != Z_OK)
		rc = wsframe_fail(p, "inflate reset failed");
	else if (dlen > 0 && inflateSetDictionary(&p->zs, dict, dlen) != Z_OK)
		rc = wsframe_fail(p, "inflate dictionary failed");
	free(dict);
	return rc;
}

/*
 * Inflate n compressed bytes of the current message through the scratch
 * buffer: all output is counted in size, what fits is captured. tail says
 * in is the 00 00 ff ff appended at the message's end, which is skipped
 * when a final block has just ended the stream (a sender that did not add
 * the 00 octet RFC 7692 7.2.3.4 asks for).
 */
static int
wsframe_inflate(struct wsframe *p, const unsigned char *in, size_t n, int tail)
{
	size_t out;
	int r;

	if (wsframe_zinit(p) == -1)
		return -1;
	if (p->z_ended) {
		if (tail)
			return 0;
		if (wsframe_zrestart(p) == -1)
			return -1;
	}
	p->zs.next_in = (Bytef *)(uintptr_t)in;
	p->zs.avail_in = (uInt)n;
	for (;;) {
		p->zs.next_out = p->scratch;
		p->zs.avail_out = WSFRAME_SCRATCH;
		r = inflate(&p->zs, Z_SYNC_FLUSH);
		out = WSFRAME_SCRATCH - p->zs.avail_out;
		p->msg.size += out;
		wsframe_capture(p, p->scratch, out);
		if (r == Z_STREAM_END) {
			p->z_ended = 1;
			if (p->zs.avail_in == 0)
				return 0;
			if (wsframe_zrestart(p) == -1)
				return -1;
			continue;
		}
		if (r == Z_MEM_ERROR)
			return wsframe_fail(
			    p, "out of memory for the inflater");
		if (r != Z_OK && r != Z_BUF_ERROR) {
			snprintf(p->err, sizeof(p->err),
			    "permessage-deflate data does not inflate (%s)",
			    p->zs.msg != NULL ? p->zs.msg : "?");
			return -1;
		}
		/* room left: inflate took all the input it could */
		if (p->zs.avail_out != 0)
			return 0;
	}
}

/* Payload bytes of the current frame: unmask and hand them on. */
static int
wsframe_payload(struct wsframe *p, const unsigned char *b, size_t n)
{
	unsigned char tmp[WSFRAME_UNMASK];
	size_t i, k;

	if (p->opcode >= WSFRAME_CLOSE) {
		for (i = 0; i < n; i++)
			p->ctrl[p->ctrl_len++] =
			    p->masked ? b[i] ^ p->key[(p->off + i) & 3] : b[i];
		p->off += n;
		return 0;
	}
	for (i = 0; i < n; i += k) {
		k = n - i < sizeof(tmp) ? n - i : sizeof(tmp);
		if (p->masked)
			for (size_t j = 0; j < k; j++)
				tmp[j] = b[i + j] ^ p->key[(p->off + j) & 3];
		else
			memcpy(tmp, b + i, k);
		p->off += k;
		if (!p->msg.compressed) {
			p->msg.size += k;
			wsframe_capture(p, tmp, k);
		} else if (wsframe_inflate(p, tmp, k, 0) == -1)
			return -1;
	}
	return 0;
}

/* Report a message whose payload is in data[0..len) out of size bytes. */
static void
wsframe_emit(struct wsframe *p, const struct wsframe_acc *a,
    const unsigned char *data, size_t len, wsframe_msg_cb cb, void *arg)
{
	struct wsframe_msg m;

	memset(&m, 0, sizeof(m));
	m.dir = p->dir;
	m.opcode = a->opcode;
	m.size = a->size;
	m.wire_bytes = a->wire;
	m.compressed = a->compressed;
	m.fragments = a->fragments;
	m.data = data != NULL ? data : (const unsigned char *)"";
	m.len = len;
	m.truncated = a->size > len;
	m.close_code = -1;
	if (a->opcode == WSFRAME_CLOSE && a->size >= 2) {
		m.close_code = data[0] << 8 | data[1];
		if (len > 2) {
			m.close_reason = (const char *)data + 2;
			m.close_reason_len = len - 2;
		}
	}
	if (cb != NULL)
		cb(arg, &m);
}

/* A control frame is complete: check a close body, report it. */
static int
wsframe_control_end(struct wsframe *p, wsframe_msg_cb cb, void *arg)
{
	struct wsframe_acc a;
	size_t len;

	if (p->opcode == WSFRAME_CLOSE && p->ctrl_len == 1)
		return wsframe_fail(p, "close frame with a 1-byte body");
	memset(&a, 0, sizeof(a));
	a.opcode = p->opcode;
	a.fragments = 1;
	a.size = a.wire = p->ctrl_len;
	/* ctrl[] holds it all: the close code is read even past len */
	len = p->ctrl_len < p->capture_max ? p->ctrl_len : p->capture_max;
	wsframe_emit(p, &a, p->ctrl, len, cb, arg);
	return 0;
}

/*
 * The last frame of a data message is complete: finish inflating (RFC 7692
 * 7.2.2: append 00 00 ff ff), report it, get ready for the next message.
 */
static int
wsframe_data_end(struct wsframe *p, wsframe_msg_cb cb, void *arg)
{
	static const unsigned char tail[4] = {0x00, 0x00, 0xff, 0xff};

	if (p->msg.compressed) {
		if (wsframe_inflate(p, tail, sizeof(tail), 1) == -1)
			return -1;
		if (p->no_takeover) {
			p->z_ended = 0;
			if (inflateReset(&p->zs) != Z_OK)
				return wsframe_fail(p, "inflate reset failed");
		} else if (p->z_ended && wsframe_zrestart(p) == -1)
			return -1;
	}
	wsframe_emit(p, &p->msg, p->cap, p->cap_len, cb, arg);
	memset(&p->msg, 0, sizeof(p->msg));
	p->cap_len = 0;
	if (p->cap_size > WSFRAME_KEEP) {
		free(p->cap);
		p->cap = NULL;
		p->cap_size = 0;
	}
	return 0;
}

/* The current frame's payload is all in. */
static int
wsframe_frame_end(struct wsframe *p, wsframe_msg_cb cb, void *arg)
{
	p->in_payload = 0;
	if (p->opcode >= WSFRAME_CLOSE)
		return wsframe_control_end(p, cb, arg);
	if (p->fin)
		return wsframe_data_end(p, cb, arg);
	return 0;
}

/*
 * Judge the first header byte as soon as it arrives, so a refusal comes at
 * the same byte whatever the split: reserved bits, opcode, fragmentation.
 */
static int
wsframe_check0(struct wsframe *p, unsigned char b)
{
	int op = b & 0x0f, rsv1 = (b & 0x40) != 0;

	if (b & 0x30)
		return wsframe_fail(p, "reserved bit RSV2 or RSV3 set");
	if (op >= 3 && op <= 7)
		return wsframe_fail(p, "reserved data opcode");
	if (op > WSFRAME_PONG)
		return wsframe_fail(p, "reserved control opcode");
	if (op >= WSFRAME_CLOSE && !(b & 0x80))
		return wsframe_fail(p, "fragmented control frame");
	if (rsv1 && !p->pmd.enabled)
		return wsframe_fail(p, "RSV1 set without permessage-deflate");
	if (rsv1 && op >= WSFRAME_CLOSE)
		return wsframe_fail(p, "RSV1 set on a control frame");
	if (op == WSFRAME_CONT && !p->msg.active)
		return wsframe_fail(p, "continuation frame without a message");
	if (rsv1 && op == WSFRAME_CONT)
		return wsframe_fail(p, "RSV1 set on a continuation frame");
	if (op != WSFRAME_CONT && op < WSFRAME_CLOSE && p->msg.active)
		return wsframe_fail(p, "new message inside a fragmented one");
	return 0;
}

/* Judge the second header byte and learn the header's full length. */
static int
wsframe_check1(struct wsframe *p, unsigned char b)
{
	unsigned len7 = b & 0x7f;

	if ((p->hdr[0] & 0x0f) >= WSFRAME_CLOSE && len7 > WSFRAME_CONTROL_MAX)
		return wsframe_fail(p, "control frame longer than 125 bytes");
	p->need = 2 +
	    (len7 == 126          ? 2
		    : len7 == 127 ? 8
				  : 0) +
	    (b & 0x80 ? 4 : 0);
	return 0;
}

/* The header is complete: start the frame, and the message if it is new. */
static int
wsframe_start(struct wsframe *p)
{
	const unsigned char *h = p->hdr;
	unsigned len7 = h[1] & 0x7f;
	size_t at = 2;
	uint64_t len = len7;

	if (len7 >= 126) {
		len = 0;
		for (size_t n = len7 == 126 ? 2 : 8; n > 0; n--)
			len = len << 8 | h[at++];
		if (len >> 63)
			return wsframe_fail(p,
			    "64-bit length with the top bit "
			    "set");
	}
	p->fin = (h[0] & 0x80) != 0;
	p->opcode = h[0] & 0x0f;
	p->masked = (h[1] & 0x80) != 0;
	if (p->masked)
		memcpy(p->key, h + at, 4);
	p->left = len;
	p->off = 0;
	p->ctrl_len = 0;
	p->in_payload = 1;
	p->have = 0;
	p->need = 2;
	if (p->opcode >= WSFRAME_CLOSE)
		return 0;
	if (p->opcode != WSFRAME_CONT) {
		p->msg.active = 1;
		p->msg.opcode = p->opcode;
		p->msg.compressed = (h[0] & 0x40) != 0;
	}
	if (p->msg.wire + len < p->msg.wire)
		return wsframe_fail(p, "message longer than 2^64 bytes");
	p->msg.wire += len;
	if (p->msg.fragments < INT_MAX)
		p->msg.fragments++;
	return 0;
}

/* One header byte: store it, judge it, start the frame when complete. */
static int
wsframe_header_byte(struct wsframe *p, unsigned char b)
{
	p->hdr[p->have++] = b;
	if (p->have == 1)
		return wsframe_check0(p, b);
	if (p->have == 2 && wsframe_check1(p, b) == -1)
		return -1;
	if (p->have < p->need)
		return 0;
	return wsframe_start(p);
}

int
wsframe_feed(struct wsframe *p, const unsigned char *buf, size_t len,
    wsframe_msg_cb cb, void *arg)
{
	size_t i = 0, n;

	if (p->err[0] != '\0')
		return -1;
	while (i < len || (p->in_payload && p->left == 0)) {
		if (p->in_payload && p->left == 0) {
			if (wsframe_frame_end(p, cb, arg) == -1)
				return -1;
			continue;
		}
		if (!p->in_payload) {
			if (wsframe_header_byte(p, buf[i++]) == -1)
				return -1;
			continue;
		}
		n = len - i;
		if ((uint64_t)n > p->left)
			n = (size_t)p->left;
		if (wsframe_payload(p, buf + i, n) == -1)
			return -1;
		p->left -= n;
		i += n;
	}
	return 0;
}

/* A Sec-WebSocket-Extensions value being read (RFC 6455 9.1). */
struct wsframe_lex {
	const char *s;
	size_t len, i;
};

/* RFC 9110 tchar. */
static int
wsframe_tchar(int c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	    (c >= 'A' && c <= 'Z') ||
	    (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static void
wsframe_ows(struct wsframe_lex *x)
{
	while (x->i < x->len && (x->s[x->i] == ' ' || x->s[x->i] == '\t'))
		x->i++;
}

/* The token at x, or -1 when there is none. */
static int
wsframe_token(struct wsframe_lex *x, const char **t, size_t *tl)
{
	size_t start = x->i;

	while (x->i < x->len && wsframe_tchar((unsigned char)x->s[x->i]))
		x->i++;
	*t = x->s + start;
	*tl = x->i - start;
	return *tl > 0 ? 0 : -1;
}

/*
 * A parameter value, token or quoted-string (unescaped), copied into
 * out[0..outsz) with a NUL; a longer value is cut, *vl says its length.
 * -1 when there is none or the quotes are not closed.
 */
static int
wsframe_value(struct wsframe_lex *x, char *out, size_t outsz, size_t *vl)
{
	const char *t;
	size_t n = 0;

	if (x->i == x->len)
		return -1;
	if (x->s[x->i] != '"') {
		if (wsframe_token(x, &t, vl) == -1)
			return -1;
		n = *vl < outsz - 1 ? *vl : outsz - 1;
		memcpy(out, t, n);
		out[n] = '\0';
		return 0;
	}
	for (x->i++, *vl = 0; x->i < x->len && x->s[x->i] != '"'; x->i++) {
		if (x->s[x->i] == '\\' && ++x->i == x->len)
			return -1;
		if (n < outsz - 1)
			out[n++] = x->s[x->i];
		(*vl)++;
	}
	out[n] = '\0';
	if (x->i == x->len)
		return -1;
	x->i++;
	return 0;
}

/* Does t[0..tl) spell name (case aside)? */
static int
wsframe_is(const char *t, size_t tl, const char *name)
{
	return tl == strlen(name) && strncasecmp(t, name, tl) == 0;
}

/* "8".."15", no leading zero; -1 otherwise. */
static int
wsframe_wbits(const char *v, size_t vl)
{
	int n;

	if (vl == 0 || vl > 2 || v[0] == '0')
		return -1;
	if (v[0] < '0' || v[0] > '9' || (vl == 2 && (v[1] < '0' || v[1] > '9')))
		return -1;
	n = vl == 1 ? v[0] - '0' : (v[0] - '0') * 10 + v[1] - '0';
	return n >= 8 && n <= 15 ? n : -1;
}

/* One permessage-deflate parameter; *seen stops repeats. */
static int
wsframe_pmd_param(struct wsframe_deflate *out, const char *t, size_t tl,
    const char *v, size_t vl, int hasval, unsigned *seen)
{
	static const char *const names[4] = {"server_no_context_takeover",
	    "client_no_context_takeover", "server_max_window_bits",
	    "client_max_window_bits"};
	int k, bits = 15;

	for (k = 0; k < 4 && !wsframe_is(t, tl, names[k]); k++)
		;
	if (k == 4 || (*seen & 1u << k))
		return -1;
	*seen |= 1u << k;
	if (k < 2 && hasval)
		return -1;
	if (k >= 2 && hasval && (bits = wsframe_wbits(v, vl)) == -1)
		return -1;
	if (k == 0)
		out->server_no_context_takeover = 1;
	else if (k == 1)
		out->client_no_context_takeover = 1;
	else if (k == 2)
		out->server_max_window_bits = bits;
	else
		out->client_max_window_bits = bits;
	return 0;
}

/*
 * The parameters after an extension's name, up to the next comma or the
 * end; applied to out when pmd says the extension is permessage-deflate.
 */
static int
wsframe_params(struct wsframe_lex *x, int pmd, struct wsframe_deflate *out)
{
	const char *t;
	size_t tl, vl;
	char v[16];
	unsigned seen = 0;
	int hasval;

	for (;;) {
		wsframe_ows(x);
		if (x->i == x->len || x->s[x->i] == ',')
			return 0;
		if (x->s[x->i] != ';')
			return -1;
		x->i++;
		wsframe_ows(x);
		if (wsframe_token(x, &t, &tl) == -1)
			return -1;
		wsframe_ows(x);
		v[0] = '\0';
		vl = 0;
		hasval = x->i < x->len && x->s[x->i] == '=';
		if (hasval) {
			x->i++;
			wsframe_ows(x);
			if (wsframe_value(x, v, sizeof(v), &vl) == -1)
				return -1;
		}
		if (pmd &&
		    wsframe_pmd_param(out, t, tl, v, vl, hasval, &seen) == -1)
			return -1;
	}
}

int
wsframe_parse_extensions(
    const char *value, size_t len, struct wsframe_deflate *out)
{
	struct wsframe_lex x = {value, len, 0};
	const char *t;
	size_t tl;
	int pmd;

	memset(out, 0, sizeof(*out));
	out->client_max_window_bits = out->server_max_window_bits = 15;
	for (;;) {
		wsframe_ows(&x);
		if (x.i == x.len)
			return 0;
		if (x.s[x.i] == ',') { /* empty list elements are allowed */
			x.i++;
			continue;
		}
		if (wsframe_token(&x, &t, &tl) == -1)
			return -1;
		pmd = wsframe_is(t, tl, "permessage-deflate");
		if (pmd && out->enabled)
			return -1;
		if (wsframe_params(&x, pmd, out) == -1)
			return -1;
		if (pmd)
			out->enabled = 1;
	}
}
