/*
 * libFuzzer harness for filters/decode.c. The first byte picks the
 * Content-Encoding (one coding or a stack of two); the rest is the body.
 * Every result must obey decode.h: output only on OK / CAPPED / PARTIAL,
 * never more than the cap, NUL-terminated, and a reason on every result
 * but NONE and OK.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filters/decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CAP (256u << 10)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const enc[] = {"gzip", "deflate", "br", "zstd",
	    "gzip, br", "deflate, zstd", "br, gzip", "identity", "x-gzip",
	    "zstd, deflate"};
	unsigned char *out = NULL;
	size_t outlen = 7;
	char err[128];
	const char *e;
	enum decode_result r;

	if (size < 1)
		return 0;
	e = enc[data[0] % (sizeof(enc) / sizeof(enc[0]))];
	r = decode_body(
	    e, data + 1, size - 1, CAP, &out, &outlen, err, sizeof(err));
	switch (r) {
	case DECODE_OK:
	case DECODE_CAPPED:
	case DECODE_PARTIAL:
		if (out == NULL || outlen > CAP || out[outlen] != '\0')
			abort();
		if (r != DECODE_OK && err[0] == '\0')
			abort();
		/* one coding cut at the cap holds exactly the cap; a stack
		 * whose inner stage was cut may hold less */
		if (r == DECODE_CAPPED && strchr(e, ',') == NULL &&
		    outlen != CAP)
			abort();
		break;
	case DECODE_NONE:
	case DECODE_UNKNOWN:
	case DECODE_ERROR:
		if (out != NULL)
			abort();
		if (r != DECODE_NONE && err[0] == '\0')
			abort();
		break;
	}
	free(out);
	return 0;
}
