/* sniff: see sniff.h. */
#include "filters/sniff.h"

#include <stdint.h>
#include <string.h>

/* What one pattern says about the bytes seen so far. */
enum sniff_match {
	SNIFF_M_NO = 0, /* can no longer match, whatever follows */
	SNIFF_M_MAYBE,  /* a prefix of something that could match */
	SNIFF_M_YES     /* matches; more bytes cannot change that */
};

#define SNIFF_TLS_MAX_RECORD 16384 /* 2^14, RFC 8446 5.1 */

static const char sniff_h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

static enum sniff_match
sniff_prefix(
    const unsigned char *buf, size_t len, const char *pat, size_t patlen)
{
	size_t n = len < patlen ? len : patlen;

	if (memcmp(buf, pat, n) != 0)
		return SNIFF_M_NO;
	return len < patlen ? SNIFF_M_MAYBE : SNIFF_M_YES;
}

/* 16 03 0x, record length 1..2^14, then handshake type 01 (ClientHello). */
static enum sniff_match
sniff_tls(const unsigned char *b, size_t len)
{
	size_t rl;

	if (len >= 1 && b[0] != 0x16)
		return SNIFF_M_NO;
	if (len >= 2 && b[1] != 0x03)
		return SNIFF_M_NO;
	if (len >= 3 && b[2] > 0x0f)
		return SNIFF_M_NO;
	if (len >= 4 && b[3] > (SNIFF_TLS_MAX_RECORD >> 8))
		return SNIFF_M_NO;
	if (len < 5)
		return SNIFF_M_MAYBE;
	rl = (size_t)b[3] << 8 | b[4];
	if (rl == 0 || rl > SNIFF_TLS_MAX_RECORD)
		return SNIFF_M_NO;
	if (len < 6)
		return SNIFF_M_MAYBE;
	return b[5] == 0x01 ? SNIFF_M_YES : SNIFF_M_NO;
}

/*
 * mmTLS keeps a 5-byte TLS-like header whose version is F1 04 (F1 03 on
 * older clients). Alert and data records have nothing more to check; a
 * handshake or 0-RTT record starts with a 4-byte length that is the record
 * length minus those 4 bytes, then the handshake type.
 */
static enum sniff_match
sniff_mmtls(const unsigned char *b, size_t len)
{
	size_t rl, inner;

	if (len >= 1 && b[0] != 0x15 && b[0] != 0x16 && b[0] != 0x17 &&
	    b[0] != 0x19)
		return SNIFF_M_NO;
	if (len >= 2 && b[1] != 0xf1)
		return SNIFF_M_NO;
	if (len >= 3 && b[2] != 0x04 && b[2] != 0x03)
		return SNIFF_M_NO;
	if (len < 5)
		return SNIFF_M_MAYBE;
	if (b[0] == 0x15 || b[0] == 0x17)
		return SNIFF_M_YES;
	rl = (size_t)b[3] << 8 | b[4];
	if (rl < 5) /* room for the inner length and a type byte */
		return SNIFF_M_NO;
	inner = rl - 4;
	for (size_t i = 5; i < 9 && i < len; i++) {
		unsigned shift = (unsigned)(8 - i) * 8;
		if (b[i] != (unsigned char)((uint32_t)inner >> shift))
			return SNIFF_M_NO;
	}
	if (len < 10)
		return SNIFF_M_MAYBE;
	return b[9] == 0x01 || b[9] == 0x02 ? SNIFF_M_YES : SNIFF_M_NO;
}

static enum sniff_match
sniff_h2(const unsigned char *b, size_t len)
{
	return sniff_prefix(
	    b, len, sniff_h2_preface, sizeof(sniff_h2_preface) - 1);
}

static enum sniff_match
sniff_ssh(const unsigned char *b, size_t len)
{
	return sniff_prefix(b, len, "SSH-", 4);
}

/*
 * A method character: tchar (RFC 9110 5.6.2) without lower case, since
 * every registered method is upper case; the first one a letter.
 */
static int
sniff_method_char(unsigned char c, int first)
{
	if (c >= 'A' && c <= 'Z')
		return 1;
	if (first)
		return 0;
	if (c >= '0' && c <= '9')
		return 1;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/*
 * method SP request-target SP "HTTP/1." DIGIT CRLF, the whole line within
 * SNIFF_HTTP_MAX_LINE bytes. The target is the only unbounded part, so the
 * bound is applied there: it is what lets a slow or endless line end as
 * "other" instead of waiting for ever.
 */
static enum sniff_match
sniff_http(const unsigned char *b, size_t len)
{
	static const char tail[] = " HTTP/1.";
	const size_t taillen = sizeof(tail) - 1;
	size_t i = 0, n;

	for (n = 0; i < len && b[i] != ' '; i++, n++)
		if (n == 20 || !sniff_method_char(b[i], n == 0))
			return SNIFF_M_NO;
	if (i == len)
		return SNIFF_M_MAYBE;
	if (n == 0)
		return SNIFF_M_NO;
	i++;
	for (n = 0; i < len && b[i] != ' '; i++, n++) {
		/* this byte, SP "HTTP/1.x" CRLF must still fit */
		if (b[i] <= 0x20 || b[i] == 0x7f ||
		    i + 1 + taillen + 3 > SNIFF_HTTP_MAX_LINE)
			return SNIFF_M_NO;
	}
	if (i == len)
		return SNIFF_M_MAYBE;
	if (n == 0)
		return SNIFF_M_NO;
	switch (sniff_prefix(b + i, len - i, tail, taillen)) {
	case SNIFF_M_NO:
		return SNIFF_M_NO;
	case SNIFF_M_MAYBE:
		return SNIFF_M_MAYBE;
	case SNIFF_M_YES:
		break;
	}
	i += taillen;
	if (i < len && (b[i] < '0' || b[i] > '9'))
		return SNIFF_M_NO;
	if (++i < len && b[i] != '\r')
		return SNIFF_M_NO;
	if (++i < len && b[i] != '\n')
		return SNIFF_M_NO;
	return ++i <= len ? SNIFF_M_YES : SNIFF_M_MAYBE;
}

enum sniff_proto
sniff_detect(const unsigned char *buf, size_t len)
{
	/*
	 * The patterns only overlap where one is decided before the other
	 * can be: "SSH-" is settled at 4 bytes, while an HTTP request line
	 * starting that way needs at least 14, so SSH is tried first and the
	 * answer never changes as bytes arrive. TLS and mmTLS part at byte
	 * 1, h2 and HTTP at the version.
	 */
	static const struct {
		enum sniff_proto proto;
		enum sniff_match (*match)(const unsigned char *, size_t);
	} pats[] = {
	    {SNIFF_TLS, sniff_tls},
	    {SNIFF_MMTLS, sniff_mmtls},
	    {SNIFF_H2, sniff_h2},
	    {SNIFF_SSH, sniff_ssh},
	    {SNIFF_HTTP, sniff_http},
	};
	int maybe = 0;

	if (buf == NULL || len == 0)
		return SNIFF_NEED_MORE;
	for (size_t i = 0; i < sizeof(pats) / sizeof(pats[0]); i++) {
		switch (pats[i].match(buf, len)) {
		case SNIFF_M_YES:
			return pats[i].proto;
		case SNIFF_M_MAYBE:
			maybe = 1;
			break;
		case SNIFF_M_NO:
			break;
		}
	}
	return maybe ? SNIFF_NEED_MORE : SNIFF_OTHER;
}

const char *
sniff_name(enum sniff_proto p)
{
	switch (p) {
	case SNIFF_TLS:
		return "tls";
	case SNIFF_MMTLS:
		return "mmtls";
	case SNIFF_H2:
		return "h2";
	case SNIFF_HTTP:
		return "http";
	case SNIFF_SSH:
		return "ssh";
	case SNIFF_OTHER:
		return "other";
	case SNIFF_NEED_MORE:
		break;
	}
	return "unknown";
}

/*
 * ClientHello parsing. The handshake message may be cut into several
 * records, so it is read through a cursor that steps over record headers
 * (checking each) rather than by copying the message together: no
 * allocation, and nothing is read past len.
 */

enum hello_err {
	HELLO_OK = 0,
	HELLO_MORE, /* ran out of bytes: need more */
	HELLO_BAD   /* malformed, or not a ClientHello */
};

struct hello_rd {
	const unsigned char *buf;
	size_t len;
	size_t pos;      /* next unread byte of buf */
	size_t rec_left; /* payload bytes left in the current record */
	size_t off;      /* bytes read of the handshake message body */
	enum hello_err err;
};

/* Make a payload byte available at rd->pos, entering the next record. */
static int
hello_fill(struct hello_rd *rd)
{
	if (rd->rec_left == 0) {
		const unsigned char *h = rd->buf + rd->pos;
		size_t have = rd->len - rd->pos, rl;

		/*
		 * Judge what there is of the header before asking for more,
		 * so that bytes sniff_detect calls other are refused here too
		 * rather than waited on.
		 */
		if ((have >= 1 && h[0] != 0x16) ||
		    (have >= 2 && h[1] != 0x03) || (have >= 3 && h[2] > 0x0f) ||
		    (have >= 4 && h[3] > SNIFF_TLS_MAX_RECORD >> 8)) {
			rd->err = HELLO_BAD;
			return -1;
		}
		if (have < 5) {
			rd->err = HELLO_MORE;
			return -1;
		}
		rl = (size_t)h[3] << 8 | h[4];
		/* zero-length handshake fragments are forbidden (5.1) */
		if (rl == 0 || rl > SNIFF_TLS_MAX_RECORD) {
			rd->err = HELLO_BAD;
			return -1;
		}
		rd->pos += 5;
		rd->rec_left = rl;
	}
	if (rd->pos == rd->len) {
		rd->err = HELLO_MORE;
		return -1;
	}
	return 0;
}

/*
 * Read n bytes of the handshake message into dst (or skip them when dst is
 * NULL). end is where the enclosing structure ends: a length that runs past
 * it makes the hello malformed before any of those bytes are needed.
 */
static int
hello_read(struct hello_rd *rd, size_t end, void *dst, size_t n)
{
	unsigned char *d = dst;

	if (rd->err != HELLO_OK)
		return -1;
	if (end < rd->off || n > end - rd->off) {
		rd->err = HELLO_BAD;
		return -1;
	}
	while (n > 0) {
		size_t chunk;

		if (hello_fill(rd) == -1)
			return -1;
		chunk = n;
		if (chunk > rd->rec_left)
			chunk = rd->rec_left;
		if (chunk > rd->len - rd->pos)
			chunk = rd->len - rd->pos;
		if (d != NULL) {
			memcpy(d, rd->buf + rd->pos, chunk);
			d += chunk;
		}
		rd->pos += chunk;
		rd->rec_left -= chunk;
		rd->off += chunk;
		n -= chunk;
	}
	return 0;
}

static int
hello_u8(struct hello_rd *rd, size_t end, size_t *v)
{
	unsigned char b[1];

	if (hello_read(rd, end, b, sizeof(b)) == -1)
		return -1;
	*v = b[0];
	return 0;
}

static int
hello_u16(struct hello_rd *rd, size_t end, size_t *v)
{
	unsigned char b[2];

	if (hello_read(rd, end, b, sizeof(b)) == -1)
		return -1;
	*v = (size_t)b[0] << 8 | b[1];
	return 0;
}

static int
hello_bad(struct hello_rd *rd)
{
	rd->err = HELLO_BAD;
	return -1;
}

/* Bytes that may be kept as text: printable ASCII, no space. */
static int
hello_printable(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] <= 0x20 || s[i] >= 0x7f)
			return 0;
	return 1;
}

/* server_name (RFC 6066 3): keep the first host_name, lower-cased. */
static int
hello_ext_sni(struct hello_rd *rd, size_t end, struct sniff_hello *h)
{
	unsigned char name[255];
	size_t listlen, type, n;

	/* an empty extension is what servers echo; tolerate it */
	if (rd->off == end)
		return 0;
	if (hello_u16(rd, end, &listlen) == -1)
		return -1;
	if (listlen == 0 || listlen != end - rd->off)
		return hello_bad(rd);
	while (rd->off < end) {
		if (hello_u8(rd, end, &type) == -1 ||
		    hello_u16(rd, end, &n) == -1)
			return -1;
		if (n == 0)
			return hello_bad(rd);
		if (type != 0 || h->sni[0] != '\0') {
			if (hello_read(rd, end, NULL, n) == -1)
				return -1;
			continue;
		}
		/* a DNS name fits; NUL or control bytes would lie in logs */
		if (n > sizeof(name))
			return hello_bad(rd);
		if (hello_read(rd, end, name, n) == -1)
			return -1;
		if (!hello_printable(name, n))
			return hello_bad(rd);
		for (size_t i = 0; i < n; i++)
			h->sni[i] = (char)(name[i] >= 'A' && name[i] <= 'Z'
				? name[i] - 'A' + 'a'
				: name[i]);
		h->sni[n] = '\0';
	}
	return 0;
}

/* application_layer_protocol_negotiation (RFC 7301 3.1). */
static int
hello_ext_alpn(struct hello_rd *rd, size_t end, struct sniff_hello *h)
{
	unsigned char name[255];
	size_t listlen, n;

	if (hello_u16(rd, end, &listlen) == -1)
		return -1;
	if (listlen < 2 || listlen != end - rd->off)
		return hello_bad(rd);
	while (rd->off < end) {
		if (hello_u8(rd, end, &n) == -1)
			return -1;
		if (n == 0)
			return hello_bad(rd);
		if (hello_read(rd, end, name, n) == -1)
			return -1;
		if (h->nalpn < SNIFF_MAX_ALPN && n < sizeof(h->alpn[0]) &&
		    hello_printable(name, n)) {
			memcpy(h->alpn[h->nalpn], name, n);
			h->alpn[h->nalpn][n] = '\0';
			h->nalpn++;
		}
	}
	return 0;
}

/* supported_versions (RFC 8446 4.2.1), ClientHello form. */
static int
hello_ext_versions(struct hello_rd *rd, size_t end, struct sniff_hello *h)
{
	size_t listlen, v;

	if (hello_u8(rd, end, &listlen) == -1)
		return -1;
	if (listlen < 2 || listlen % 2 != 0 || listlen != end - rd->off)
		return hello_bad(rd);
	while (rd->off < end) {
		if (hello_u16(rd, end, &v) == -1)
			return -1;
		if (v == 0x0304)
			h->has_supported_versions_13 = 1;
	}
	return 0;
}

/* The extensions block, which must end exactly where the message does. */
static int
hello_extensions(struct hello_rd *rd, size_t end, struct sniff_hello *h)
{
	size_t total, type, n, eend;
	int seen_sni = 0, seen_alpn = 0, seen_versions = 0, r;

	if (hello_u16(rd, end, &total) == -1)
		return -1;
	if (total != end - rd->off)
		return hello_bad(rd);
	while (rd->off < end) {
		if (hello_u16(rd, end, &type) == -1 ||
		    hello_u16(rd, end, &n) == -1)
			return -1;
		if (n > end - rd->off)
			return hello_bad(rd);
		eend = rd->off + n;
		/* a repeated extension is illegal (8446 4.2), and ambiguous */
		if (type == 0 && seen_sni++)
			return hello_bad(rd);
		if (type == 16 && seen_alpn++)
			return hello_bad(rd);
		if (type == 43 && seen_versions++)
			return hello_bad(rd);
		switch (type) {
		case 0:
			r = hello_ext_sni(rd, eend, h);
			break;
		case 16:
			r = hello_ext_alpn(rd, eend, h);
			break;
		case 43:
			r = hello_ext_versions(rd, eend, h);
			break;
		default:
			r = hello_read(rd, eend, NULL, n);
			break;
		}
		if (r == -1)
			return -1;
		if (rd->off != eend)
			return hello_bad(rd);
	}
	return 0;
}

/* The ClientHello (RFC 8446 4.1.2) after its 4-byte handshake header. */
static int
hello_body(struct hello_rd *rd, size_t end, struct sniff_hello *h)
{
	size_t v, n;

	if (hello_u16(rd, end, &v) == -1)
		return -1;
	if (v >> 8 != 3)
		return hello_bad(rd);
	h->legacy_version = (unsigned)v;
	if (hello_read(rd, end, NULL, 32) == -1) /* random */
		return -1;
	if (hello_u8(rd, end, &n) == -1)
		return -1;
	if (n > 32)
		return hello_bad(rd);
	if (hello_read(rd, end, NULL, n) == -1) /* legacy_session_id */
		return -1;
	if (hello_u16(rd, end, &n) == -1)
		return -1;
	if (n < 2 || n % 2 != 0)
		return hello_bad(rd);
	if (hello_read(rd, end, NULL, n) == -1) /* cipher_suites */
		return -1;
	if (hello_u8(rd, end, &n) == -1)
		return -1;
	if (n < 1)
		return hello_bad(rd);
	if (hello_read(rd, end, NULL, n) == -1) /* compression_methods */
		return -1;
	/* a hello without extensions (SSLv3-era) simply ends here */
	if (rd->off == end)
		return 0;
	return hello_extensions(rd, end, h);
}

int
sniff_client_hello(
    const unsigned char *buf, size_t len, struct sniff_hello *out)
{
	struct hello_rd rd;
	struct sniff_hello h;
	unsigned char hdr[3];
	size_t type, body;

	memset(&rd, 0, sizeof(rd));
	memset(&h, 0, sizeof(h));
	rd.buf = buf;
	rd.len = buf != NULL ? len : 0;
	/* the type alone decides, as early as sniff_detect does */
	if (hello_u8(&rd, 1, &type) == -1)
		goto fail;
	if (type != 0x01) {
		rd.err = HELLO_BAD;
		goto fail;
	}
	if (hello_read(&rd, 4, hdr, sizeof(hdr)) == -1)
		goto fail;
	body = (size_t)hdr[0] << 16 | (size_t)hdr[1] << 8 | hdr[2];
	if (body > SNIFF_MAX_HELLO) {
		rd.err = HELLO_BAD;
		goto fail;
	}
	rd.off = 0;
	if (hello_body(&rd, body, &h) == -1)
		goto fail;
	*out = h;
	return 1;
fail:
	return rd.err == HELLO_MORE ? 0 : -1;
}
