/* newdns: see newdns.h. */
#include "filters/newdns.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <expat.h>
#define ZLIB_CONST
#include <zlib.h>

#define NEWDNS_PATH "/cgi-bin/micromsg-bin/newgetdns"
#define NEWDNS_CHUNK (1u << 20) /* the most handed to zlib or expat at once */
#define NEWDNS_TEXT 128         /* longest <ip> text kept, whitespace aside */

enum newdns_collect { NEWDNS_C_NONE = 0, NEWDNS_C_IP, NEWDNS_C_CLIENTIP };

/* What the expat callbacks share. */
struct newdns_xml {
	XML_Parser xp;
	struct newdns_result *out;
	size_t cap; /* answers allocated */
	size_t max_answers;
	int failed; /* a callback stopped the parser; err is set */
	char *err;
	size_t errlen;

	unsigned depth;
	unsigned builtin;   /* open <builtiniplist> elements */
	unsigned dom_depth; /* depth of the element naming the domain, or 0 */
	int dom_ok;         /* its name was usable */
	char dom[256];
	int dom_ttl;
	int dom_builtin;

	enum newdns_collect collect;
	unsigned col_depth;
	int ip_own; /* the <ip> names its own domain */
	int ip_own_ok;
	char ip_dom[256];
	char text[NEWDNS_TEXT];
	size_t tlen;
	int text_ws;  /* whitespace dropped at the cap */
	int text_bad; /* longer than any address */
};

static void newdns_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
newdns_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int
newdns_space(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* zlib's header check (RFC 1950 2.2): deflate, window <= 32K, FCHECK. */
static int
newdns_zlib_header(const unsigned char *b, size_t len)
{
	return len >= 2 && (b[0] & 0x0f) == 8 && (b[0] >> 4) <= 7 &&
	    ((unsigned)b[0] << 8 | b[1]) % 31 == 0;
}

/*
 * Room for more inflated bytes: *buf grown from *cap bytes, doubling, up
 * to limit (max_out + 1). 0, -2 when limit is reached (too large), -1 on
 * ENOMEM; err says which.
 */
static int
newdns_grow(unsigned char **buf, size_t *cap, size_t limit, size_t max_out,
    char *err, size_t errlen)
{
	unsigned char *nb;
	size_t ncap;

	if (*cap == limit) {
		newdns_err(err, errlen,
		    "too large: more than %zu bytes inflated", max_out);
		return -2;
	}
	ncap = *cap == 0 ? 16384 : *cap * 2;
	if (ncap < *cap || ncap > limit)
		ncap = limit;
	if ((nb = realloc(*buf, ncap)) == NULL) {
		newdns_err(err, errlen, "out of memory");
		return -1;
	}
	*buf = nb;
	*cap = ncap;
	return 0;
}

/* Give zs the next chunk of in[0..len), from *fed on. */
static void
newdns_feed(z_stream *zs, const unsigned char *in, size_t len, size_t *fed)
{
	size_t n = len - *fed < NEWDNS_CHUNK ? len - *fed : NEWDNS_CHUNK;

	zs->next_in = in + *fed;
	zs->avail_in = (uInt)n;
	*fed += n;
}

/*
 * What inflate's answer r means, all input given (all_in) or not: 1 the
 * stream ended, 0 go on, -1 it cannot go on (err says why).
 */
static int
newdns_inflated(z_stream *zs, int r, int all_in, char *err, size_t errlen)
{
	if (r == Z_STREAM_END)
		return 1;
	if (r == Z_MEM_ERROR) {
		newdns_err(err, errlen, "out of memory (inflate)");
		return -1;
	}
	if (r != Z_OK && r != Z_BUF_ERROR) {
		newdns_err(err, errlen, "malformed deflate stream: %s",
		    zs->msg != NULL ? zs->msg : "error");
		return -1;
	}
	if (zs->avail_in == 0 && all_in && zs->avail_out > 0) {
		newdns_err(err, errlen, "truncated deflate stream");
		return -1;
	}
	return 0;
}

/*
 * Inflate in[0..len) with windowBits wbits (-15 raw, 15 zlib) into a buffer
 * grown by doubling up to max_out + 1 bytes, so a bomb costs at most that.
 * Returns 0 with *outp (the caller frees) and *outlen; -1 with err set and
 * *produced telling whether any output came before the failure; -2 when
 * the output passes max_out (not worth retrying as zlib).
 */
static int
newdns_inflate(const unsigned char *in, size_t len, int wbits, size_t max_out,
    unsigned char **outp, size_t *outlen, int *produced, char *err,
    size_t errlen)
{
	z_stream zs;
	unsigned char *buf = NULL;
	size_t cap = 0, used = 0, fed = 0, limit, n;
	int r, ret = -1;

	*outp = NULL;
	*outlen = 0;
	*produced = 0;
	memset(&zs, 0, sizeof(zs));
	if (inflateInit2(&zs, wbits) != Z_OK) {
		newdns_err(err, errlen, "out of memory (inflate)");
		return -1;
	}
	limit = max_out < SIZE_MAX ? max_out + 1 : SIZE_MAX;
	for (;;) {
		if (used == cap &&
		    (r = newdns_grow(
			 &buf, &cap, limit, max_out, err, errlen)) != 0) {
			ret = r;
			goto fail;
		}
		if (zs.avail_in == 0 && fed < len)
			newdns_feed(&zs, in, len, &fed);
		n = cap - used < NEWDNS_CHUNK ? cap - used : NEWDNS_CHUNK;
		zs.next_out = buf + used;
		zs.avail_out = (uInt)n;
		r = inflate(&zs, Z_NO_FLUSH);
		used += n - zs.avail_out;
		if (used > 0)
			*produced = 1;
		if ((r = newdns_inflated(&zs, r, fed == len, err, errlen)) == 1)
			break;
		if (r == -1)
			goto fail;
	}
	if (used > max_out) { /* the stream ended right at max_out + 1 */
		newdns_err(err, errlen,
		    "too large: more than %zu bytes inflated", max_out);
		ret = -2;
		goto fail;
	}
	/* bytes after the end of the stream are ignored */
	inflateEnd(&zs);
	*outp = buf;
	*outlen = used;
	return 0;
fail:
	inflateEnd(&zs);
	free(buf);
	return ret;
}

/*
 * Raw deflate first; when that fails and the body starts with a valid zlib
 * header, try it as zlib-wrapped. A zlib body can pass for the start of a
 * raw one (a stored block whose lengths happen to match, found by the
 * fuzzer), so the raw attempt may have produced bytes and still be wrong.
 * When both fail, zlib's error is reported if it ran out of room or raw
 * produced nothing, else raw's.
 */
static int
newdns_decompress(const unsigned char *in, size_t len, size_t max_out,
    unsigned char **outp, size_t *outlen, char *err, size_t errlen)
{
	char zerr[128];
	int produced, zproduced, r, rz;

	r = newdns_inflate(
	    in, len, -MAX_WBITS, max_out, outp, outlen, &produced, err, errlen);
	if (r == 0)
		return 0;
	if (!newdns_zlib_header(in, len))
		return -1;
	rz = newdns_inflate(in, len, MAX_WBITS, max_out, outp, outlen,
	    &zproduced, zerr, sizeof(zerr));
	if (rz == 0)
		return 0;
	if (rz == -2 || !produced)
		newdns_err(err, errlen, "%s", zerr);
	return -1;
}

/*
 * Copy a name attribute, trimmed and lower-cased, into dst[256]. 0 when it
 * is 1-255 bytes of printable ASCII, else -1 (dst then empty).
 */
static int
newdns_name(const char *s, char *dst)
{
	size_t n;

	dst[0] = '\0';
	while (newdns_space((unsigned char)*s))
		s++;
	n = strlen(s);
	while (n > 0 && newdns_space((unsigned char)s[n - 1]))
		n--;
	if (n == 0 || n > 255)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x21 || c > 0x7e)
			return -1;
		dst[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
	}
	dst[n] = '\0';
	return 0;
}

/* A timeout attribute: decimal seconds, 0..INT_MAX; -1 otherwise. */
static int
newdns_ttl(const char *s)
{
	long v = 0;

	if (s == NULL)
		return -1;
	while (newdns_space((unsigned char)*s))
		s++;
	if (*s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		v = v * 10 + (*s - '0');
		if (v > INT_MAX)
			return -1;
	}
	while (newdns_space((unsigned char)*s))
		s++;
	return *s == '\0' ? (int)v : -1;
}

/* s as an IPv4 or IPv6 address in inet_ntop's form into dst[64]; or -1. */
static int
newdns_addr(const char *s, char *dst)
{
	unsigned char a[16];

	if (inet_pton(AF_INET, s, a) == 1)
		return inet_ntop(AF_INET, a, dst, 64) != NULL ? 0 : -1;
	if (inet_pton(AF_INET6, s, a) == 1)
		return inet_ntop(AF_INET6, a, dst, 64) != NULL ? 0 : -1;
	return -1;
}

static const char *
newdns_attr(const char **atts, const char *name)
{
	for (size_t i = 0; atts[i] != NULL; i += 2)
		if (strcmp(atts[i], name) == 0)
			return atts[i + 1];
	return NULL;
}

static void
newdns_stop(struct newdns_xml *x)
{
	x->failed = 1;
	(void)XML_StopParser(x->xp, XML_FALSE);
}

static int
newdns_add(struct newdns_xml *x, const char *dom, const char *ip)
{
	struct newdns_result *o = x->out;
	struct newdns_answer *a, *na;
	size_t ncap;

	if (o->n == x->max_answers) {
		newdns_err(x->err, x->errlen,
		    "too large: more than %zu answers", x->max_answers);
		return -1;
	}
	if (o->n == x->cap) {
		ncap = x->cap == 0 ? 16 : x->cap * 2;
		if (ncap > x->max_answers)
			ncap = x->max_answers;
		na = realloc(o->answers, ncap * sizeof(*na));
		if (na == NULL) {
			newdns_err(x->err, x->errlen, "out of memory");
			return -1;
		}
		o->answers = na;
		x->cap = ncap;
	}
	a = &o->answers[o->n++];
	memset(a, 0, sizeof(*a));
	memcpy(a->domain, dom, strlen(dom) + 1);
	memcpy(a->ip, ip, strlen(ip) + 1);
	a->ttl = x->dom_ttl;
	a->builtin = x->dom_builtin;
	return 0;
}

/*
 * An element that names a domain: <domain name=".."> anywhere, or any
 * element with a name attribute inside <builtiniplist> (whose exact shape
 * varies). <ip> itself only when it carries the name: see newdns_start.
 */
static void
newdns_domain(struct newdns_xml *x, const char **atts)
{
	const char *name = newdns_attr(atts, "name");
	const char *ttl = newdns_attr(atts, "timeout");

	if (ttl == NULL)
		ttl = newdns_attr(atts, "ttl");
	x->dom_depth = x->depth;
	x->dom_ok = name != NULL && newdns_name(name, x->dom) == 0;
	x->dom_ttl = newdns_ttl(ttl);
	x->dom_builtin = x->builtin > 0;
}

static void XMLCALL
newdns_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
	struct newdns_xml *x = ud;
	const char *own;

	x->depth++;
	if (strcmp(name, "builtiniplist") == 0) {
		x->builtin++;
		return;
	}
	if (strcmp(name, "clientip") == 0 || strcmp(name, "ip") == 0) {
		x->collect = name[0] == 'c' ? NEWDNS_C_CLIENTIP : NEWDNS_C_IP;
		x->col_depth = x->depth;
		x->tlen = 0;
		x->text_ws = x->text_bad = 0;
		own = newdns_attr(atts, "domain");
		if (own == NULL)
			own = newdns_attr(atts, "name");
		x->ip_own = own != NULL;
		x->ip_own_ok = own != NULL && newdns_name(own, x->ip_dom) == 0;
		return;
	}
	if (strcmp(name, "domain") == 0 ||
	    (x->builtin > 0 && newdns_attr(atts, "name") != NULL))
		newdns_domain(x, atts);
}

static void XMLCALL
newdns_text(void *ud, const XML_Char *s, int len)
{
	struct newdns_xml *x = ud;

	if (x->collect == NEWDNS_C_NONE)
		return;
	for (int i = 0; i < len; i++) {
		int sp = newdns_space((unsigned char)s[i]);

		if (sp && x->tlen == 0)
			continue;
		if (x->text_ws && !sp)
			x->text_bad = 1;
		if (x->tlen < sizeof(x->text) - 1)
			x->text[x->tlen++] = s[i];
		else if (sp)
			x->text_ws = 1;
		else
			x->text_bad = 1;
	}
}

/* The end of an <ip> or <clientip>: validate its text and keep it. */
static void
newdns_collected(struct newdns_xml *x)
{
	char addr[64];
	const char *dom;
	int ok;

	while (x->tlen > 0 && newdns_space((unsigned char)x->text[x->tlen - 1]))
		x->tlen--;
	x->text[x->tlen] = '\0';
	if (x->text_bad || newdns_addr(x->text, addr) == -1)
		return; /* not an address: skipped, not fatal */
	if (x->collect == NEWDNS_C_CLIENTIP) {
		memcpy(x->out->clientip, addr, sizeof(addr));
		return;
	}
	if (x->ip_own) {
		dom = x->ip_dom;
		ok = x->ip_own_ok;
		if (x->dom_depth == 0) {
			x->dom_ttl = -1;
			x->dom_builtin = x->builtin > 0;
		}
	} else {
		dom = x->dom;
		ok = x->dom_depth > 0 && x->dom_ok;
	}
	if (ok && newdns_add(x, dom, addr) == -1)
		newdns_stop(x);
}

static void XMLCALL
newdns_end(void *ud, const XML_Char *name)
{
	struct newdns_xml *x = ud;

	if (x->collect != NEWDNS_C_NONE && x->depth == x->col_depth) {
		newdns_collected(x);
		x->collect = NEWDNS_C_NONE;
	}
	if (x->depth == x->dom_depth)
		x->dom_depth = 0;
	if (strcmp(name, "builtiniplist") == 0 && x->builtin > 0)
		x->builtin--;
	x->depth--;
}

/*
 * Where the document proper starts: after a UTF-8 BOM and an XML
 * declaration, which may only come first and so cannot stay inside the
 * synthetic root. -1 for a declaration that never ends.
 */
static int
newdns_skip_decl(const char *doc, size_t len, size_t *start)
{
	size_t i = 0;

	if (len >= 3 && memcmp(doc, "\xef\xbb\xbf", 3) == 0)
		i = 3;
	while (i < len && newdns_space((unsigned char)doc[i]))
		i++;
	*start = i;
	if (len - i < 6 || memcmp(doc + i, "<?xml", 5) != 0 ||
	    (!newdns_space((unsigned char)doc[i + 5]) && doc[i + 5] != '?'))
		return 0;
	for (i += 5; i + 1 < len; i++)
		if (doc[i] == '?' && doc[i + 1] == '>') {
			*start = i + 2;
			return 0;
		}
	return -1;
}

static int
newdns_xml_feed(struct newdns_xml *x, const char *s, size_t len, int final)
{
	size_t n;

	do {
		n = len < NEWDNS_CHUNK ? len : NEWDNS_CHUNK;
		if (XML_Parse(x->xp, s, (int)n, final && n == len) !=
		    XML_STATUS_OK)
			return -1;
		s += n;
		len -= n;
	} while (len > 0);
	return 0;
}

/* Parse the XML document doc[0..len) into x->out. */
static int
newdns_xml(struct newdns_xml *x, const char *doc, size_t len)
{
	size_t start;

	if (newdns_skip_decl(doc, len, &start) == -1) {
		newdns_err(x->err, x->errlen,
		    "malformed XML: unterminated declaration");
		return -1;
	}
	if ((x->xp = XML_ParserCreate("UTF-8")) == NULL) {
		newdns_err(x->err, x->errlen, "out of memory (expat)");
		return -1;
	}
	XML_SetUserData(x->xp, x);
	XML_SetElementHandler(x->xp, newdns_start, newdns_end);
	XML_SetCharacterDataHandler(x->xp, newdns_text);
	if (newdns_xml_feed(x, "<r>", 3, 0) == -1 ||
	    newdns_xml_feed(x, doc + start, len - start, 0) == -1 ||
	    newdns_xml_feed(x, "</r>", 4, 1) == -1)
		goto fail;
	XML_ParserFree(x->xp);
	x->xp = NULL;
	return 0;
fail:
	if (!x->failed)
		newdns_err(x->err, x->errlen,
		    "malformed XML: %s at line %lu column %lu",
		    XML_ErrorString(XML_GetErrorCode(x->xp)),
		    (unsigned long)XML_GetCurrentLineNumber(x->xp),
		    (unsigned long)XML_GetCurrentColumnNumber(x->xp));
	XML_ParserFree(x->xp);
	x->xp = NULL;
	return -1;
}

int
newdns_parse(const unsigned char *body, size_t len, int deflated,
    size_t max_out, size_t max_answers, struct newdns_result *out, char *err,
    size_t errlen)
{
	struct newdns_xml x;
	unsigned char *plain = NULL;
	size_t plen;

	memset(out, 0, sizeof(*out));
	newdns_err(err, errlen, "%s", "");
	if (body == NULL || len == 0) {
		body = (const unsigned char *)"";
		len = 0;
	}
	if (deflated) {
		if (newdns_decompress(
			body, len, max_out, &plain, &plen, err, errlen) == -1)
			goto fail;
	} else if (len > max_out) {
		newdns_err(
		    err, errlen, "too large: more than %zu bytes", max_out);
		goto fail;
	}
	memset(&x, 0, sizeof(x));
	x.out = out;
	x.max_answers = max_answers;
	x.err = err;
	x.errlen = errlen;
	if (newdns_xml(&x, deflated ? (const char *)plain : (const char *)body,
		deflated ? plen : len) == -1)
		goto fail;
	free(plain);
	return 0;
fail:
	free(plain);
	newdns_result_free(out);
	return -1;
}

void
newdns_result_free(struct newdns_result *r)
{
	if (r == NULL)
		return;
	free(r->answers);
	memset(r, 0, sizeof(*r));
}

int
newdns_is_request(const char *method, const char *path)
{
	size_t n = sizeof(NEWDNS_PATH) - 1;

	if (method == NULL || path == NULL || strcmp(method, "GET") != 0)
		return 0;
	if (strncasecmp(path, "http://", 7) == 0) {
		path = strchr(path + 7, '/');
		if (path == NULL)
			return 0;
	}
	return strncmp(path, NEWDNS_PATH, n) == 0;
}
