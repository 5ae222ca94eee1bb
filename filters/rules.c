/* rules: see rules.h. */
#include "filters/rules.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RULES_MAX_NAME 253 /* a DNS name in text, without the final dot */

enum rules_kind {
	RULES_K_ANY = 0, /* "*" */
	RULES_K_EXACT,   /* a host name */
	RULES_K_SUFFIX,  /* "*.domain": names under domain */
	RULES_K_NET      /* an address or CIDR block */
};

struct rule {
	enum rules_action action;
	enum rules_kind kind;
	unsigned port;                 /* 0: any port */
	char *pattern;                 /* as given, for *matched */
	char name[RULES_MAX_NAME + 1]; /* lower case, no trailing dot */
	size_t namelen;
	int family; /* AF_INET or AF_INET6, for RULES_K_NET */
	unsigned char addr[16];
	unsigned prefix;
};

struct rules {
	struct rule *v;
	size_t n, cap;
};

struct rules *
rules_new(void)
{
	return calloc(1, sizeof(struct rules));
}

void
rules_free(struct rules *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n; i++)
		free(r->v[i].pattern);
	free(r->v);
	free(r);
}

static void __attribute__((format(printf, 3, 4)))
rules_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int
rules_lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/*
 * Check a host name (len bytes, any trailing dot already removed) and copy
 * it lower-cased into rule->name. Letters, digits, '-' and '_' (seen in
 * real service names) in labels of 1-63.
 */
static int
rules_set_name(struct rule *rule, const char *s, size_t len, char *err,
    size_t errlen, const char *pattern)
{
	size_t label = 0;

	if (len == 0) {
		rules_err(err, errlen, "empty host name in \"%s\"", pattern);
		return -1;
	}
	if (len > RULES_MAX_NAME) {
		rules_err(err, errlen, "host name too long in \"%s\"", pattern);
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (label == 0) {
				rules_err(err, errlen,
				    "empty label in host name \"%s\"", pattern);
				return -1;
			}
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_') {
			if (++label > 63) {
				rules_err(err, errlen,
				    "label longer than 63 in \"%s\"", pattern);
				return -1;
			}
		} else if (c == '*') {
			rules_err(err, errlen,
			    "'*' is only allowed as a leading \"*.\" in \"%s\"",
			    pattern);
			return -1;
		} else {
			rules_err(err, errlen,
			    "bad character '%c' in host name \"%s\"",
			    c > 0x20 && c < 0x7f ? c : '?', pattern);
			return -1;
		}
		rule->name[i] = (char)rules_lower(c);
	}
	rule->name[len] = '\0';
	rule->namelen = len;
	return 0;
}

/* Decimal 1-65535, nothing else. */
static int
rules_parse_port(const char *s, size_t len, unsigned *port)
{
	unsigned long v = 0;

	if (len == 0 || len > 5)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v == 0 || v > 65535)
		return -1;
	*port = (unsigned)v;
	return 0;
}

/* Clear the address bits past the prefix, so matching compares whole bytes. */
static void
rules_mask(unsigned char *addr, size_t alen, unsigned prefix)
{
	for (size_t i = 0; i < alen; i++) {
		if (prefix >= 8) {
			prefix -= 8;
			continue;
		}
		addr[i] &= (unsigned char)(0xff << (8 - prefix));
		prefix = 0;
	}
}

/*
 * An address or CIDR block: s (len bytes) is "addr" or "addr/prefix".
 * Returns 1 when s is one, 0 when it is not an address at all (so it may be
 * a name), -1 when it is a broken one.
 */
static int
rules_set_net(struct rule *rule, const char *s, size_t len, char *err,
    size_t errlen, const char *pattern)
{
	char text[64];
	const char *slash = memchr(s, '/', len);
	size_t alen = slash != NULL ? (size_t)(slash - s) : len;
	unsigned long prefix = 0;
	unsigned max;

	if (alen >= sizeof(text)) {
		if (slash == NULL)
			return 0;
		rules_err(err, errlen, "bad address in \"%s\"", pattern);
		return -1;
	}
	memcpy(text, s, alen);
	text[alen] = '\0';
	if (inet_pton(AF_INET, text, rule->addr) == 1) {
		rule->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, text, rule->addr) == 1) {
		rule->family = AF_INET6;
		max = 128;
	} else {
		if (slash == NULL)
			return 0;
		rules_err(
		    err, errlen, "bad address \"%s\" in \"%s\"", text, pattern);
		return -1;
	}
	prefix = max;
	if (slash != NULL) {
		const char *p = slash + 1;
		size_t plen = len - alen - 1;

		prefix = 0;
		for (size_t i = 0; i < plen && prefix <= max; i++) {
			if (p[i] < '0' || p[i] > '9') {
				prefix = max + 1;
				break;
			}
			prefix = prefix * 10 + (unsigned long)(p[i] - '0');
		}
		if (plen == 0 || plen > 3 || prefix > max) {
			rules_err(err, errlen,
			    "bad prefix length \"%.*s\" in \"%s\" "
			    "(want 0-%u)",
			    (int)(plen > 8 ? 8 : plen), p, pattern, max);
			return -1;
		}
	}
	rule->prefix = (unsigned)prefix;
	rules_mask(rule->addr, max / 8, rule->prefix);
	rule->kind = RULES_K_NET;
	return 1;
}

/* Split pattern into host part and port. */
static int
rules_split(const char *pattern, const char **host, size_t *hostlen,
    unsigned *port, char *err, size_t errlen)
{
	size_t len = strlen(pattern);
	const char *colon = NULL, *portstr;

	*port = 0;
	if (pattern[0] == '[') {
		const char *close = memchr(pattern, ']', len);

		if (close == NULL) {
			rules_err(
			    err, errlen, "missing ']' in \"%s\"", pattern);
			return -1;
		}
		*host = pattern + 1;
		*hostlen = (size_t)(close - *host);
		if (close[1] != '\0' && close[1] != ':') {
			rules_err(
			    err, errlen, "junk after ']' in \"%s\"", pattern);
			return -1;
		}
		if (close[1] == ':')
			colon = close + 1;
		if (*hostlen == 0 || memchr(*host, ':', *hostlen) == NULL) {
			rules_err(err, errlen,
			    "brackets hold no IPv6 address in \"%s\"", pattern);
			return -1;
		}
	} else {
		/* two colons or more: a bare IPv6 address, so no port */
		colon = strchr(pattern, ':');
		if (colon != NULL && strchr(colon + 1, ':') != NULL)
			colon = NULL;
		*host = pattern;
		*hostlen = colon != NULL ? (size_t)(colon - pattern) : len;
	}
	if (colon == NULL)
		return 0;
	portstr = colon + 1;
	if (rules_parse_port(portstr, strlen(portstr), port) == -1) {
		rules_err(err, errlen,
		    "bad port \"%s\" in \"%s\" (want 1-65535)", portstr,
		    pattern);
		return -1;
	}
	return 0;
}

/* Parse pattern into rule (all but action and the pattern copy). */
static int
rules_parse(struct rule *rule, const char *pattern, char *err, size_t errlen)
{
	const char *host;
	size_t hostlen;
	int r;

	if (pattern[0] == '\0') {
		rules_err(err, errlen, "empty pattern");
		return -1;
	}
	for (const char *p = pattern; *p != '\0'; p++) {
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
			rules_err(err, errlen,
			    "space or control character in pattern \"%s\"",
			    pattern);
			return -1;
		}
	}
	if (rules_split(pattern, &host, &hostlen, &rule->port, err, errlen) ==
	    -1)
		return -1;
	if (hostlen == 1 && host[0] == '*') {
		rule->kind = RULES_K_ANY;
		return 0;
	}
	r = rules_set_net(rule, host, hostlen, err, errlen, pattern);
	if (r != 0)
		return r == 1 ? 0 : -1;
	if (pattern[0] == '[' || memchr(host, ':', hostlen) != NULL) {
		rules_err(err, errlen, "bad IPv6 address in \"%s\"", pattern);
		return -1;
	}
	rule->kind = RULES_K_EXACT;
	if (hostlen >= 2 && host[0] == '*' && host[1] == '.') {
		host += 2;
		hostlen -= 2;
		rule->kind = RULES_K_SUFFIX;
	} else if (hostlen >= 1 && host[0] == '.') {
		host++;
		hostlen--;
		rule->kind = RULES_K_SUFFIX;
	}
	if (hostlen > 0 && host[hostlen - 1] == '.')
		hostlen--;
	if (rule->kind == RULES_K_SUFFIX && hostlen == 0) {
		rules_err(
		    err, errlen, "no domain after \"*.\" in \"%s\"", pattern);
		return -1;
	}
	return rules_set_name(rule, host, hostlen, err, errlen, pattern);
}

int
rules_add(struct rules *r, enum rules_action action, const char *pattern,
    char *err, size_t errlen)
{
	struct rule rule;

	if (action != RULES_INTERCEPT && action != RULES_PASSTHROUGH &&
	    action != RULES_BLOCK) {
		rules_err(err, errlen, "unknown rule action %d", (int)action);
		return -1;
	}
	if (pattern == NULL) {
		rules_err(err, errlen, "empty pattern");
		return -1;
	}
	memset(&rule, 0, sizeof(rule));
	rule.action = action;
	if (rules_parse(&rule, pattern, err, errlen) == -1)
		return -1;
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 8;
		struct rule *v = realloc(r->v, cap * sizeof(*v));

		if (v == NULL)
			goto nomem;
		r->v = v;
		r->cap = cap;
	}
	if ((rule.pattern = strdup(pattern)) == NULL)
		goto nomem;
	r->v[r->n++] = rule;
	return 0;
nomem:
	rules_err(err, errlen, "out of memory");
	return -1;
}

/* host (len bytes) equals name, ignoring case. */
static int
rules_name_eq(const char *host, size_t len, const char *name, size_t namelen)
{
	if (len != namelen)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (rules_lower((unsigned char)host[i]) != name[i])
			return 0;
	return 1;
}

/* The host as an address, if it is one. Returns the family or 0. */
static int
rules_host_addr(const char *host, size_t len, unsigned char addr[16])
{
	static const unsigned char mapped[12] = {
	    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	char text[64];

	if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
		host++;
		len -= 2;
	}
	if (len == 0 || len >= sizeof(text))
		return 0;
	memcpy(text, host, len);
	text[len] = '\0';
	if (inet_pton(AF_INET, text, addr) == 1)
		return AF_INET;
	if (inet_pton(AF_INET6, text, addr) != 1)
		return 0;
	/* ::ffff:a.b.c.d is how a dual-stack socket shows an IPv4 peer */
	if (memcmp(addr, mapped, sizeof(mapped)) == 0) {
		memmove(addr, addr + 12, 4);
		return AF_INET;
	}
	return AF_INET6;
}

static int
rules_net_match(const struct rule *rule, int family, const unsigned char *addr)
{
	unsigned char a[16];
	size_t alen = family == AF_INET ? 4 : 16;

	if (family != rule->family)
		return 0;
	memcpy(a, addr, alen);
	rules_mask(a, alen, rule->prefix);
	return memcmp(a, rule->addr, alen) == 0;
}

enum rules_action
rules_match(const struct rules *r, const char *host, unsigned port,
    const char **matched)
{
	unsigned char addr[16];
	size_t len;
	int family;

	if (matched != NULL)
		*matched = NULL;
	if (r == NULL || host == NULL)
		return RULES_INTERCEPT;
	len = strlen(host);
	family = rules_host_addr(host, len, addr);
	if (family == 0 && len > 0 && host[len - 1] == '.')
		len--;
	for (size_t i = 0; i < r->n; i++) {
		const struct rule *rule = &r->v[i];
		int hit = 0;

		if (rule->port != 0 && rule->port != port)
			continue;
		switch (rule->kind) {
		case RULES_K_ANY:
			hit = len > 0;
			break;
		case RULES_K_EXACT:
			hit = family == 0 &&
			    rules_name_eq(host, len, rule->name, rule->namelen);
			break;
		case RULES_K_SUFFIX:
			/* "a.example.com", not "example.com" nor "aexample.com"
			 */
			hit = family == 0 && len > rule->namelen + 1 &&
			    host[len - rule->namelen - 1] == '.' &&
			    rules_name_eq(host + len - rule->namelen,
				rule->namelen, rule->name, rule->namelen);
			break;
		case RULES_K_NET:
			hit =
			    family != 0 && rules_net_match(rule, family, addr);
			break;
		}
		if (hit) {
			if (matched != NULL)
				*matched = rule->pattern;
			return rule->action;
		}
	}
	return RULES_INTERCEPT;
}

const char *
rules_action_name(enum rules_action a)
{
	switch (a) {
	case RULES_INTERCEPT:
		return "intercept";
	case RULES_PASSTHROUGH:
		return "passthrough";
	case RULES_BLOCK:
		return "block";
	}
	return "unknown";
}

int
rules_parse_action(const char *s, enum rules_action *out)
{
	static const enum rules_action all[] = {
	    RULES_INTERCEPT, RULES_PASSTHROUGH, RULES_BLOCK};

	if (s == NULL)
		return -1;
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (strcasecmp(s, rules_action_name(all[i])) == 0) {
			*out = all[i];
			return 0;
		}
	}
	return -1;
}
