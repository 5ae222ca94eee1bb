/*
 * url: split an HTTP request-target (RFC 9112 3.2) into its parts.
 * Pure: no allocation beyond the struct's own strings.
 */
#ifndef PEEPHOLE_URL_H
#define PEEPHOLE_URL_H

#include <stddef.h>

enum url_form {
	URL_FORM_ORIGIN = 1, /* "/path?query" */
	URL_FORM_ABSOLUTE,   /* "http://host:port/path?query" */
	URL_FORM_AUTHORITY,  /* "host:port" (CONNECT) */
	URL_FORM_ASTERISK    /* "*" (OPTIONS) */
};

struct url {
	enum url_form form;
	char scheme[8]; /* "http", lower case; "" for origin/authority form */
	char host[256]; /* without brackets for IPv6; lower case */
	unsigned port;  /* explicit or the scheme's default; 0 if none */
	int port_given; /* 1 if the target named the port */
	char *path;     /* "/" at least for absolute/origin form; malloc'd */
	char *query;    /* without '?', NULL when absent; malloc'd */
};

/*
 * Parse target (len bytes, not NUL-terminated). Returns 0, or -1 with a
 * static reason in *why. On success free the strings with url_clear().
 */
int url_parse(const char *target, size_t len, struct url *out, const char **why)
    __attribute__((warn_unused_result));

/* Free the strings of u and zero it. */
void url_clear(struct url *u);

/*
 * Write "host" or "host:port" ("[v6]:port" for IPv6) for a Host header into
 * buf; the port is left out when it is the scheme's default. Returns the
 * length, or -1 if buf is too small.
 */
int url_authority(const struct url *u, char *buf, size_t buflen);

#endif
