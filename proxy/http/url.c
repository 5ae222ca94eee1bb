/* url: see url.h. */
#include "proxy/http/url.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
url_clear(struct url *u)
{
	free(u->path);
	free(u->query);
	memset(u, 0, sizeof(*u));
}

static char *
url_strndup(const char *s, size_t n)
{
	char *p = malloc(n + 1);

	if (p == NULL)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

/* The port after a colon (the n bytes at p): 1..65535. -1 with why. */
static int
url_parse_port(const char *p, size_t n, struct url *u, const char **why)
{
	unsigned long port = 0;

	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)p[i]) || port > 65535)
			break;
		port = port * 10 + (unsigned long)(p[i] - '0');
		if (i + 1 == n && port > 0 && port <= 65535) {
			u->port = (unsigned)port;
			u->port_given = 1;
			return 0;
		}
	}
	*why = n == 0 ? "empty port" : "bad port";
	return -1;
}

/* Copy the host (hostlen bytes), lower case, refusing what no host name
 * or address holds. */
static int
url_copy_host(const char *host, size_t hostlen, struct url *u, const char **why)
{
	if (hostlen == 0 || hostlen >= sizeof(u->host)) {
		*why = hostlen ? "host name too long" : "empty host";
		return -1;
	}
	for (size_t i = 0; i < hostlen; i++) {
		unsigned char c = (unsigned char)host[i];
		if (c <= ' ' || c == '/' || c == '?' || c == '#' || c == '@' ||
		    c == '\\' || c >= 0x7f) {
			*why = "bad character in host";
			return -1;
		}
		u->host[i] = (char)tolower(c);
	}
	u->host[hostlen] = '\0';
	return 0;
}

/* Parse "host[:port]" or "[v6][:port]" into u->host / u->port. */
static int
url_parse_authority(const char *s, size_t len, struct url *u, const char **why)
{
	const char *host = s, *colon, *at = memchr(s, '@', len), *end;
	size_t hostlen;

	/* userinfo is not part of where we connect; drop it */
	if (at != NULL) {
		len -= (size_t)(at + 1 - s);
		s = host = at + 1;
	}
	end = s + len;
	if (len > 0 && s[0] == '[') {
		const char *close = memchr(s, ']', len);
		if (close == NULL) {
			*why = "unterminated IPv6 literal";
			return -1;
		}
		host = s + 1;
		hostlen = (size_t)(close - host);
		colon = close + 1 < end ? close + 1 : NULL;
		if (colon != NULL && *colon != ':') {
			*why = "junk after IPv6 literal";
			return -1;
		}
	} else {
		colon = memchr(s, ':', len);
		hostlen = colon ? (size_t)(colon - s) : len;
	}
	if (url_copy_host(host, hostlen, u, why) == -1)
		return -1;
	if (colon != NULL)
		return url_parse_port(
		    colon + 1, (size_t)(end - colon - 1), u, why);
	return 0;
}

/* Split "/path?query#frag" into u->path and u->query. */
static int
url_parse_path(const char *s, size_t len, struct url *u, const char **why)
{
	const char *hash = memchr(s, '#', len), *q;

	if (hash != NULL)
		len = (size_t)(hash - s);
	q = memchr(s, '?', len);
	if (q != NULL) {
		u->query = url_strndup(q + 1, len - (size_t)(q + 1 - s));
		len = (size_t)(q - s);
		if (u->query == NULL)
			goto nomem;
	}
	u->path = len ? url_strndup(s, len) : url_strndup("/", 1);
	if (u->path == NULL)
		goto nomem;
	return 0;
nomem:
	*why = "out of memory";
	return -1;
}

/* The scheme of an absolute-form target, up to "://" at sep: http or
 * https, with its default port. */
static int
url_parse_scheme(
    const char *target, const char *sep, struct url *out, const char **why)
{
	size_t slen = (size_t)(sep - target);

	if (slen < sizeof(out->scheme)) {
		for (size_t i = 0; i < slen; i++)
			out->scheme[i] =
			    (char)tolower((unsigned char)target[i]);
		out->scheme[slen] = '\0';
		if (strcmp(out->scheme, "http") == 0)
			out->port = 80;
		else if (strcmp(out->scheme, "https") == 0)
			out->port = 443;
		if (out->port != 0)
			return 0;
	}
	*why = "unsupported scheme";
	return -1;
}

/* Where "://" ends a scheme at the start of target, or NULL. */
static const char *
url_scheme_end(const char *target, size_t len)
{
	for (size_t i = 0; i + 2 < len; i++) {
		if (target[i] == ':' && target[i + 1] == '/' &&
		    target[i + 2] == '/')
			return target + i;
		if (!isalnum((unsigned char)target[i]) && target[i] != '+' &&
		    target[i] != '-' && target[i] != '.')
			return NULL;
	}
	return NULL;
}

/* What follows the authority of an absolute-form target (s..end): a path,
 * or for "http://h?q" an empty path, so "/" plus the query. */
static int
url_parse_rest(
    const char *s, const char *end, struct url *out, const char **why)
{
	size_t n = (size_t)(end - s);
	char *tmp;
	int rc;

	if (s == end || *s == '/')
		return url_parse_path(s, n, out, why);
	if ((tmp = malloc(n + 2)) == NULL) {
		*why = "out of memory";
		return -1;
	}
	tmp[0] = '/';
	memcpy(tmp + 1, s, n);
	rc = url_parse_path(tmp, n + 1, out, why);
	free(tmp);
	return rc;
}

/* An absolute-form target whose scheme ends at sep. */
static int
url_parse_absolute(const char *target, size_t len, const char *sep,
    struct url *out, const char **why)
{
	const char *auth = sep + 3, *end = target + len, *p = auth;

	if (url_parse_scheme(target, sep, out, why) == -1)
		return -1;
	out->form = URL_FORM_ABSOLUTE;
	while (p < end && *p != '/' && *p != '?' && *p != '#')
		p++;
	if (url_parse_authority(auth, (size_t)(p - auth), out, why) == -1)
		return -1;
	return url_parse_rest(p, end, out, why);
}

int
url_parse(const char *target, size_t len, struct url *out, const char **why)
{
	const char *sep;
	int rc;

	memset(out, 0, sizeof(*out));
	if (len == 0) {
		*why = "empty request target";
		return -1;
	}
	if (len == 1 && target[0] == '*') {
		out->form = URL_FORM_ASTERISK;
		return 0;
	}
	if (target[0] == '/') {
		out->form = URL_FORM_ORIGIN;
		rc = url_parse_path(target, len, out, why);
	} else if ((sep = url_scheme_end(target, len)) != NULL)
		rc = url_parse_absolute(target, len, sep, out, why);
	else {
		/* no scheme: authority-form, as CONNECT uses */
		out->form = URL_FORM_AUTHORITY;
		rc = url_parse_authority(target, len, out, why);
		if (rc == 0 && !out->port_given) {
			*why = "authority-form target needs a port";
			rc = -1;
		}
	}
	if (rc == -1)
		url_clear(out);
	return rc;
}

int
url_authority(const struct url *u, char *buf, size_t buflen)
{
	int v6 = strchr(u->host, ':') != NULL, n;
	int dflt = (strcmp(u->scheme, "http") == 0 && u->port == 80) ||
	    (strcmp(u->scheme, "https") == 0 && u->port == 443) || u->port == 0;

	if (dflt)
		n = snprintf(buf, buflen, v6 ? "[%s]" : "%s", u->host);
	else
		n = snprintf(
		    buf, buflen, v6 ? "[%s]:%u" : "%s:%u", u->host, u->port);
	if (n < 0 || (size_t)n >= buflen)
		return -1;
	return n;
}
