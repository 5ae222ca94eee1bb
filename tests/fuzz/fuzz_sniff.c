/*
 * libFuzzer harness for filters/sniff.c: sniff_detect and
 * sniff_client_hello on arbitrary bytes. Besides memory errors (ASan) it
 * checks the promises sniff.h makes: a decided answer never changes when
 * more bytes follow, a parsed hello holds terminated strings, and only
 * bytes sniffed as TLS can parse as a ClientHello.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filters/sniff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_hello(const struct sniff_hello *h)
{
	if (memchr(h->sni, '\0', sizeof(h->sni)) == NULL)
		abort();
	for (const char *s = h->sni; *s != '\0'; s++)
		if (*s >= 'A' && *s <= 'Z')
			abort();
	if (h->nalpn < 0 || h->nalpn > SNIFF_MAX_ALPN)
		abort();
	for (int i = 0; i < h->nalpn; i++)
		if (memchr(h->alpn[i], '\0', sizeof(h->alpn[i])) == NULL ||
		    h->alpn[i][0] == '\0')
			abort();
	if (h->legacy_version >> 8 != 3)
		abort();
}

static int
same_hello(const struct sniff_hello *a, const struct sniff_hello *b)
{
	if (strcmp(a->sni, b->sni) != 0 || a->nalpn != b->nalpn ||
	    a->legacy_version != b->legacy_version ||
	    a->has_supported_versions_13 != b->has_supported_versions_13)
		return 0;
	for (int i = 0; i < a->nalpn; i++)
		if (strcmp(a->alpn[i], b->alpn[i]) != 0)
			return 0;
	return 1;
}

/* What the first k bytes say must agree with what all size bytes say. */
static void
check_prefix(const uint8_t *data, size_t k, enum sniff_proto p, int r,
    const struct sniff_hello *h)
{
	struct sniff_hello hk;
	enum sniff_proto pk = sniff_detect(data, k);
	int rk = sniff_client_hello(data, k, &hk);

	if (pk != SNIFF_NEED_MORE && pk != p)
		abort();
	if (rk != 0 && rk != r)
		abort();
	if (rk == 1 && !same_hello(&hk, h))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sniff_hello h;
	enum sniff_proto p;
	int r;

	p = sniff_detect(data, size);
	if (p < SNIFF_NEED_MORE || p > SNIFF_OTHER)
		abort();
	if (strcmp(sniff_name(p), "") == 0)
		abort();
	r = sniff_client_hello(data, size, &h);
	if (r < -1 || r > 1)
		abort();
	if (r == 1) {
		check_hello(&h);
		if (p != SNIFF_TLS)
			abort();
	}
	if (p != SNIFF_TLS && p != SNIFF_NEED_MORE && r != -1)
		abort();
	/* every prefix of small inputs, a sample of large ones */
	if (size <= 256) {
		for (size_t k = 0; k < size; k++)
			check_prefix(data, k, p, r, &h);
	} else {
		size_t cuts[] = {size - 1, size / 2, size / 3, 5, 9,
		    ((size_t)data[0] << 8 | data[1]) % size};
		for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++)
			check_prefix(data, cuts[i], p, r, &h);
	}
	return 0;
}
