/*
 * geo: see geo.h. STUB until the data files land: scopes are real, every
 * public address is unknown.
 */
#include "proxy/geo/geo.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct geo {
	int unused;
};

/* Scope of an IPv4 address in host order. */
static const char *
geo_scope4(uint32_t a)
{
	if ((a >> 24) == 10 || (a >> 20) == (172u << 4 | 1) ||
	    (a >> 16) == (192u << 8 | 168))
		return "private";
	if ((a >> 24) == 127)
		return "loopback";
	if ((a >> 16) == (169u << 8 | 254))
		return "link-local";
	if ((a >> 22) == (100u << 2 | 1)) /* 100.64.0.0/10 */
		return "cgnat";
	if ((a >> 8) == (192u << 16 | 0 << 8 | 2) ||
	    (a >> 8) == (198u << 16 | 51u << 8 | 100) ||
	    (a >> 8) == (203u << 16 | 0 << 8 | 113))
		return "documentation";
	if ((a >> 28) == 14)
		return "multicast";
	if (a == 0)
		return "unspecified";
	if ((a >> 24) == 0 || (a >> 28) == 15 || (a >> 17) == (198u << 7 | 9))
		return "reserved"; /* 0/8, 240/4, 198.18/15 (benchmarking) */
	return NULL;
}

const char *
geo_scope(const char *ip)
{
	unsigned char b[16];
	static const unsigned char zero[16];

	if (ip == NULL)
		return NULL;
	if (inet_pton(AF_INET, ip, b) == 1)
		return geo_scope4((uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
		    (uint32_t)b[2] << 8 | b[3]);
	if (inet_pton(AF_INET6, ip, b) != 1)
		return NULL;
	if (memcmp(b, zero, 10) == 0 && b[10] == 0xff && b[11] == 0xff)
		return geo_scope4((uint32_t)b[12] << 24 |
		    (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 |
		    b[15]); /* v4-mapped */
	if (memcmp(b, zero, 15) == 0)
		return b[15] == 1 ? "loopback"
		    : b[15] == 0  ? "unspecified"
				  : "reserved";
	if ((b[0] & 0xfe) == 0xfc)
		return "private"; /* fc00::/7 unique local */
	if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
		return "link-local";
	if (b[0] == 0xff)
		return "multicast";
	if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8)
		return "documentation"; /* 2001:db8::/32 */
	if ((b[0] & 0xe0) != 0x20)
		return "reserved"; /* outside 2000::/3 */
	return NULL;
}

struct geo *
geo_open(const char *dir, const char *home, char *err, size_t errlen)
{
	(void)dir;
	(void)home;
	snprintf(err, errlen, "no geo data (not built yet)");
	return NULL;
}

int
geo_lookup(const struct geo *g, const char *ip, struct geo_info *out)
{
	unsigned char b[16];

	(void)g;
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, ip, b) != 1 && inet_pton(AF_INET6, ip, b) != 1)
		return -1;
	out->scope = geo_scope(ip);
	return out->scope != NULL;
}

void
geo_source(const struct geo *g, char *buf, size_t len)
{
	(void)g;
	if (len > 0)
		buf[0] = '\0';
}

void
geo_close(struct geo *g)
{
	free(g);
}
