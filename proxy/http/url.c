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

/* Parse "host[:port]" or "[v6][:port]" into u->host / u->port. */
static int
url_parse_authority(const char *s, size_t len, struct url *u, const char **why)
{
	const char *host, *colon = NULL, *at;
	size_t hostlen;

	/* userinfo is not part of where we connect; drop it */
	at = memchr(s, '@', len);
	if (at != NULL) {
		len -= (size_t)(at + 1 - s);
		s = at + 1;
	}
	if (len == 0) {
		*why = "empty host";
		return -1;
	}
	if (s[0] == '[') {
		const char *close = memchr(s, ']', len);
		if (close == NULL) {
			*why = "unterminated IPv6 literal";
			return -1;
		}
		host = s + 1;
		hostlen = (size_t)(close - host);
		if (close + 1 < s + len) {
			if (close[1] != ':') {
				*why = "junk after IPv6 literal";
				return -1;
			}
			colon = close + 1;
		}
	} else {
		host = s;
		colon = memchr(s, ':', len);
		hostlen = colon ? (size_t)(colon - s) : len;
	}
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
	if (colon != NULL) {
		const char *p = colon + 1, *end = s + len;
		unsigned long port = 0;
		if (p == end) {
			*why = "empty port";
			return -1;
		}
		for (; p < end; p++) {
			if (!isdigit((unsigned char)*p) || port > 65535) {
				*why = "bad port";
				return -1;
			}
			port = port * 10 + (unsigned long)(*p - '0');
		}
		if (port == 0 || port > 65535) {
			*why = "bad port";
			return -1;
		}
		u->port = (unsigned)port;
		u->port_given = 1;
	}
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

int
url_parse(const char *target, size_t len, struct url *out, const char **why)
{
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
		if (url_parse_path(target, len, out, why) == -1)
			goto fail;
		return 0;
	}
	const char *sep = NULL;
	for (size_t i = 0; i + 2 < len; i++) {
		if (target[i] == ':' && target[i + 1] == '/' &&
		    target[i + 2] == '/') {
			sep = target + i;
			break;
		}
		if (!isalnum((unsigned char)target[i]) && target[i] != '+' &&
		    target[i] != '-' && target[i] != '.')
			break;
	}
	if (sep == NULL) {
		/* no scheme: authority-form, as CONNECT uses */
		out->form = URL_FORM_AUTHORITY;
		if (url_parse_authority(target, len, out, why) == -1)
			goto fail;
		if (!out->port_given) {
			*why = "authority-form target needs a port";
			goto fail;
		}
		return 0;
	}
	size_t slen = (size_t)(sep - target);
	if (slen >= sizeof(out->scheme)) {
		*why = "unsupported scheme";
		goto fail;
	}
	for (size_t i = 0; i < slen; i++)
		out->scheme[i] = (char)tolower((unsigned char)target[i]);
	out->scheme[slen] = '\0';
	if (strcmp(out->scheme, "http") == 0)
		out->port = 80;
	else if (strcmp(out->scheme, "https") == 0)
		out->port = 443;
	else {
		*why = "unsupported scheme";
		goto fail;
	}
	out->form = URL_FORM_ABSOLUTE;
	const char *auth = sep + 3, *end = target + len, *pathp = auth;
	while (pathp < end && *pathp != '/' && *pathp != '?' && *pathp != '#')
		pathp++;
	if (url_parse_authority(auth, (size_t)(pathp - auth), out, why) == -1)
		goto fail;
	if (pathp < end && *pathp != '/') {
		/* "http://h?q": the path is empty, so "/" plus the query */
		char *tmp = malloc((size_t)(end - pathp) + 2);
		if (tmp == NULL) {
			*why = "out of memory";
			goto fail;
		}
		tmp[0] = '/';
		memcpy(tmp + 1, pathp, (size_t)(end - pathp));
		int rc =
		    url_parse_path(tmp, (size_t)(end - pathp) + 1, out, why);
		free(tmp);
		if (rc == -1)
			goto fail;
	} else if (url_parse_path(pathp, (size_t)(end - pathp), out, why) == -1)
		goto fail;
	return 0;
fail:
	url_clear(out);
	return -1;
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
