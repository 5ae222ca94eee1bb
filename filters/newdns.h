/*
 * newdns: WeChat's own DNS. The app asks
 * `GET /cgi-bin/micromsg-bin/newgetdns?...` of dns.weixin.qq.com over plain
 * HTTP and gets text/xml, usually with `Content-Encoding: deflate`, holding
 * `<domainlist><domain name=".." timeout=".."><ip>..</ip>...</domain>`,
 * `<builtiniplist>` and `<clientip>` (DESIGN.md "Recognising streams").
 * Its answers go into the domain catalogue as app-dns answers. Pure: no
 * sockets, no logging; memory bounded by the caller's limits.
 */
#ifndef PEEPHOLE_NEWDNS_H
#define PEEPHOLE_NEWDNS_H

#include <stddef.h>

#define NEWDNS_MAX_OUT (4u << 20) /* a sane max_out */
#define NEWDNS_MAX_ANSWERS 4096   /* a sane max_answers */

struct newdns_answer {
	char domain[256]; /* lower-cased, printable ASCII, non-empty */
	char ip[64];      /* an IPv4 or IPv6 address, as inet_ntop writes it */
	int ttl;          /* the domain's timeout attribute; -1 if absent */
	int builtin;      /* 1 when from <builtiniplist> */
};

struct newdns_result {
	struct newdns_answer *answers; /* n of them, in document order */
	size_t n;
	char clientip[64]; /* as inet_ntop writes it; "" when absent */
};

/*
 * Parse a newgetdns response body as received: deflated when deflated is
 * not 0 (Content-Encoding: deflate), plain XML otherwise. Deflate is tried
 * raw first (what the header means and what dns.weixin.qq.com sends); when
 * that fails at the first byte and the body starts with a zlib header, as
 * from servers that follow zlib's reading of "deflate", zlib-wrapped.
 *
 * The document has several top-level elements, so it is parsed inside a
 * synthetic root, its XML declaration removed. Every <domain name=".."> (and
 * every element with a name attribute inside <builtiniplist>) starts a
 * domain; each <ip> inside it is an answer. Answers whose IP does not parse
 * and domains whose name is not printable ASCII (at most 255 bytes) are
 * skipped, not fatal.
 *
 * More than max_out bytes of XML (inflated or plain), or more than
 * max_answers answers, fail with "too large"; the inflated text is never
 * allocated beyond max_out + 1 bytes. Returns 0 with *out filled (the caller
 * frees it with newdns_result_free), or -1 with *out empty and a message in
 * err (when err is not NULL): malformed or truncated deflate, malformed XML,
 * too large, out of memory.
 */
int newdns_parse(const unsigned char *body, size_t len, int deflated,
    size_t max_out, size_t max_answers, struct newdns_result *out, char *err,
    size_t errlen) __attribute__((warn_unused_result));

/* Free what newdns_parse put in r and empty it; NULL does nothing. */
void newdns_result_free(struct newdns_result *r);

/*
 * 1 when method and path (origin-form, or absolute-form
 * http://host/path as a proxy sees it) are a newdns request: a GET whose
 * path starts with /cgi-bin/micromsg-bin/newgetdns. 0 otherwise.
 */
int newdns_is_request(const char *method, const char *path);

#endif
