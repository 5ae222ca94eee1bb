/* web_auth: see web_auth.h. */
#include "proxy/web/web_auth.h"

#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int
web_auth_secret(char *out)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char raw[WEB_SECRET_HEX / 2];

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -1;
	for (size_t i = 0; i < sizeof(raw); i++) {
		out[2 * i] = hex[raw[i] >> 4];
		out[2 * i + 1] = hex[raw[i] & 15];
	}
	out[WEB_SECRET_HEX] = '\0';
	OPENSSL_cleanse(raw, sizeof(raw));
	return 0;
}

int
web_auth_equal(const char *a, const char *b)
{
	size_t n;

	if (a == NULL || b == NULL || (n = strlen(a)) != strlen(b))
		return 0;
	return CRYPTO_memcmp(a, b, n) == 0;
}

/* host[:port] into name (brackets of an IPv6 literal removed) and the
 * port (0 when none). 0, or -1 when malformed. */
static int
web_auth_split_host(const char *host, char *name, size_t len, unsigned *port)
{
	const char *end, *colon;
	size_t n;
	char *stop;
	unsigned long p;

	*port = 0;
	if (host[0] == '[') {
		if ((end = strchr(host, ']')) == NULL)
			return -1;
		n = (size_t)(end - host - 1);
		host++;
		colon = end[1] == ':' ? end + 1 : NULL;
		if (end[1] != '\0' && colon == NULL)
			return -1;
	} else {
		colon = strrchr(host, ':');
		n = colon != NULL ? (size_t)(colon - host) : strlen(host);
		if (colon != NULL && strchr(host, ':') != colon)
			return -1; /* IPv6 without brackets */
	}
	if (n == 0 || n >= len)
		return -1;
	memcpy(name, host, n);
	name[n] = '\0';
	if (colon != NULL) {
		p = strtoul(colon + 1, &stop, 10);
		if (colon[1] == '\0' || *stop != '\0' || p == 0 || p > 65535)
			return -1;
		*port = (unsigned)p;
	}
	return 0;
}

int
web_auth_host_ok(const char *host, const char *listen_host, unsigned port)
{
	char name[256];
	unsigned char addr[16];
	unsigned p;

	if (host == NULL ||
	    web_auth_split_host(host, name, sizeof(name), &p) == -1)
		return 0;
	if (p != 0 && p != port)
		return 0;
	if (strcasecmp(name, "localhost") == 0 ||
	    inet_pton(AF_INET, name, addr) == 1 ||
	    inet_pton(AF_INET6, name, addr) == 1)
		return 1;
	return listen_host != NULL && strcasecmp(name, listen_host) == 0;
}

int
web_auth_cookie_is(const char *header, const char *name, const char *value)
{
	size_t nlen = strlen(name), vlen, want = strlen(value);
	const char *p = header, *v;
	int hit = 0;

	while (p != NULL && *p != '\0') {
		while (*p == ' ' || *p == ';')
			p++;
		if (strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
			v = p + nlen + 1;
			vlen = strcspn(v, ";");
			while (vlen > 0 && v[vlen - 1] == ' ')
				vlen--;
			if (vlen == want && CRYPTO_memcmp(v, value, want) == 0)
				hit = 1;
		}
		p = strchr(p, ';');
	}
	return hit;
}

int
web_auth_basic_ok(const char *header, const char *password)
{
	unsigned char dec[512];
	const char *b64, *colon;
	size_t n;
	int len, ok;

	if (header == NULL || password == NULL ||
	    strncasecmp(header, "Basic ", 6) != 0)
		return 0;
	b64 = header + 6;
	while (*b64 == ' ')
		b64++;
	n = strlen(b64);
	if (n == 0 || n % 4 != 0 || n / 4 * 3 >= sizeof(dec))
		return 0;
	if ((len = EVP_DecodeBlock(dec, (const unsigned char *)b64, (int)n)) <
	    0)
		return 0;
	/* EVP_DecodeBlock counts the padding as zero bytes */
	if (n >= 1 && b64[n - 1] == '=')
		len--;
	if (n >= 2 && b64[n - 2] == '=')
		len--;
	dec[len] = '\0';
	if (memchr(dec, '\0', (size_t)len) != NULL ||
	    (colon = strchr((char *)dec, ':')) == NULL)
		return 0;
	ok = web_auth_equal(colon + 1, password);
	OPENSSL_cleanse(dec, sizeof(dec));
	return ok;
}
