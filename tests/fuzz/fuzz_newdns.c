/*
 * libFuzzer harness for filters/newdns.c. The input is parsed as a body
 * both ways the header can say: deflated (raw, or zlib by the fallback) and
 * plain. Then it is deflated here, raw and zlib-wrapped, and parsed again:
 * those must give exactly what the plain parse gave. Every result must obey
 * newdns.h: answers within the limit, names printable lower-case ASCII,
 * addresses that inet_pton accepts, an error message on every failure.
 */
#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ZLIB_CONST
#include <zlib.h>

#include "filters/newdns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_OUT (256u << 10)
#define MAX_ANSWERS 64

static void
check_addr(const char *s, size_t cap, int may_be_empty)
{
	unsigned char a[16];

	if (memchr(s, '\0', cap) == NULL)
		abort();
	if (may_be_empty && s[0] == '\0')
		return;
	if (inet_pton(AF_INET, s, a) != 1 && inet_pton(AF_INET6, s, a) != 1)
		abort();
}

static void
check(int rc, const struct newdns_result *r, const char *err)
{
	if (rc == -1) {
		if (err[0] == '\0' || r->answers != NULL || r->n != 0 ||
		    r->clientip[0] != '\0')
			abort();
		return;
	}
	if (rc != 0 || r->n > MAX_ANSWERS || (r->n > 0) != (r->answers != NULL))
		abort();
	check_addr(r->clientip, sizeof(r->clientip), 1);
	for (size_t i = 0; i < r->n; i++) {
		const struct newdns_answer *a = &r->answers[i];
		size_t len = strnlen(a->domain, sizeof(a->domain));

		if (len == 0 || len == sizeof(a->domain))
			abort();
		for (size_t j = 0; j < len; j++)
			if (a->domain[j] < 0x21 || a->domain[j] > 0x7e ||
			    (a->domain[j] >= 'A' && a->domain[j] <= 'Z'))
				abort();
		check_addr(a->ip, sizeof(a->ip), 0);
		if (a->ttl < -1 || (a->builtin != 0 && a->builtin != 1))
			abort();
	}
}

static int
same(const struct newdns_result *a, const struct newdns_result *b)
{
	if (a->n != b->n || strcmp(a->clientip, b->clientip) != 0)
		return 0;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->answers[i].domain, b->answers[i].domain) != 0 ||
		    strcmp(a->answers[i].ip, b->answers[i].ip) != 0 ||
		    a->answers[i].ttl != b->answers[i].ttl ||
		    a->answers[i].builtin != b->answers[i].builtin)
			return 0;
	return 1;
}

/* data deflated with windowBits wbits into a malloc'd buffer, or NULL. */
static unsigned char *
squeeze(const uint8_t *data, size_t size, int wbits, size_t *outlen)
{
	z_stream zs;
	unsigned char *out;
	size_t cap;

	memset(&zs, 0, sizeof(zs));
	if (deflateInit2(&zs, 6, Z_DEFLATED, wbits, 8, Z_DEFAULT_STRATEGY) !=
	    Z_OK)
		abort();
	cap = deflateBound(&zs, size);
	if ((out = malloc(cap)) == NULL)
		abort();
	zs.next_in = data;
	zs.avail_in = (uInt)size;
	zs.next_out = out;
	zs.avail_out = (uInt)cap;
	if (deflate(&zs, Z_FINISH) != Z_STREAM_END)
		abort();
	*outlen = zs.total_out;
	deflateEnd(&zs);
	return out;
}

static int
parse(const uint8_t *b, size_t len, int deflated, struct newdns_result *r,
    char *err, size_t errlen)
{
	int rc;

	err[0] = '\0';
	rc = newdns_parse(
	    b, len, deflated, MAX_OUT, MAX_ANSWERS, r, err, errlen);
	check(rc, r, err);
	return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int wbits[] = {-15, 15};
	struct newdns_result plain, other;
	unsigned char *z;
	size_t zlen;
	char err[256];
	int rc;

	/* as a body labelled deflate */
	(void)parse(data, size, 1, &other, err, sizeof(err));
	newdns_result_free(&other);
	/* as plain XML, and the same document deflated both ways */
	rc = parse(data, size, 0, &plain, err, sizeof(err));
	for (size_t i = 0; i < sizeof(wbits) / sizeof(wbits[0]); i++) {
		z = squeeze(data, size, wbits[i], &zlen);
		if (parse(z, zlen, 1, &other, err, sizeof(err)) != rc)
			abort();
		if (rc == 0 && !same(&plain, &other))
			abort();
		newdns_result_free(&other);
		/* max_out holds to the byte: size passes, size - 1 does not */
		err[0] = '\0';
		if (newdns_parse(z, zlen, 1, size, MAX_ANSWERS, &other, err,
			sizeof(err)) != rc)
			abort();
		newdns_result_free(&other);
		if (size > 0 &&
		    (newdns_parse(z, zlen, 1, size - 1, MAX_ANSWERS, &other,
			 err, sizeof(err)) != -1 ||
			strstr(err, "too large") == NULL))
			abort();
		/* cut short, a deflated body never parses */
		if (zlen > 0 &&
		    parse(z, zlen - 1, 1, &other, err, sizeof(err)) != -1)
			abort();
		free(z);
	}
	newdns_result_free(&plain);
	/* as a request path */
	if ((z = malloc(size + 1)) == NULL)
		abort();
	memcpy(z, data, size);
	z[size] = '\0';
	rc = newdns_is_request("GET", (const char *)z);
	if (rc != 0 && rc != 1)
		abort();
	free(z);
	return 0;
}
