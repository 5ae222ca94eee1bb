/* decode: see decode.h. */
#include "filters/decode.h"

#include <brotli/decode.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>
#include <zstd.h>

/* Encodings stacked on one body, at most. */
#define DECODE_MAX_STAGES 4
/* Output grows by at least this much at a time. */
#define DECODE_CHUNK 65536
/* zstd frames may ask for a window up to 2^27; HTTP clients refuse more
 * than 8 MiB (RFC 9659), and so do we: it bounds the decoder's memory. */
#define DECODE_ZSTD_WINDOW_LOG 23

enum decode_coding {
	CODING_GZIP,
	CODING_DEFLATE,
	CODING_BR,
	CODING_ZSTD,
};

/* Growing output that never holds more than cap bytes. */
struct sink {
	unsigned char *p;
	size_t len, room, cap;
	int capped; /* output was cut at cap */
};

/* Room for at least one more byte (up to the cap): 0, or -1 when the cap
 * is reached (capped set) or memory ran out. */
static int
sink_grow(struct sink *s)
{
	size_t nroom;
	unsigned char *np;

	if (s->len < s->room)
		return 0;
	if (s->len >= s->cap) {
		s->capped = 1;
		return -1;
	}
	nroom = s->room < DECODE_CHUNK ? DECODE_CHUNK : s->room * 2;
	if (nroom > s->cap)
		nroom = s->cap;
	/* one spare byte for the NUL decode_body adds */
	if ((np = realloc(s->p, nroom + 1)) == NULL)
		return -1;
	s->p = np;
	s->room = nroom;
	return 0;
}

/* inflate with the given window bits: 16 + 15 for gzip, 15 for zlib, -15
 * for raw deflate. Back-to-back gzip members are read as one body. */
static enum decode_result
decode_zlib(const unsigned char *in, size_t inlen, int wbits, struct sink *s,
    char *err, size_t errlen)
{
	z_stream z;
	int rc = Z_OK;
	enum decode_result res = DECODE_OK;

	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, wbits) != Z_OK) {
		snprintf(err, errlen, "out of memory");
		return DECODE_ERROR;
	}
	z.next_in = (unsigned char *)(uintptr_t)in;
	for (;;) {
		/* avail_in is a uInt: feed a large input in slices */
		if (z.avail_in == 0 && inlen > 0) {
			z.avail_in =
			    inlen > UINT32_MAX ? UINT32_MAX : (uInt)inlen;
			inlen -= z.avail_in;
		}
		if (sink_grow(s) == -1) {
			res = s->capped ? DECODE_CAPPED : DECODE_ERROR;
			if (!s->capped)
				snprintf(err, errlen, "out of memory");
			break;
		}
		z.next_out = s->p + s->len;
		z.avail_out = (uInt)(s->room - s->len);
		rc = inflate(&z, Z_NO_FLUSH);
		s->len = s->room - z.avail_out;
		if (rc == Z_STREAM_END) {
			if (z.avail_in == 0 && inlen == 0)
				break;
			/* another gzip member follows; anything else after
			 * the end is junk we ignore, as browsers do */
			if (wbits > 15 && z.avail_in >= 2 &&
			    z.next_in[0] == 0x1f && z.next_in[1] == 0x8b &&
			    inflateReset(&z) == Z_OK)
				continue;
			break;
		}
		if (rc != Z_OK && rc != Z_BUF_ERROR) {
			snprintf(err, errlen, "%s",
			    z.msg != NULL ? z.msg : "corrupt data");
			res = DECODE_ERROR;
			break;
		}
		/* all input taken and the output had room: nothing more */
		if (z.avail_in == 0 && inlen == 0 && z.avail_out > 0) {
			res = DECODE_PARTIAL;
			break;
		}
	}
	inflateEnd(&z);
	return res;
}

static enum decode_result
decode_br(const unsigned char *in, size_t inlen, struct sink *s, char *err,
    size_t errlen)
{
	BrotliDecoderState *st = BrotliDecoderCreateInstance(NULL, NULL, NULL);
	BrotliDecoderResult rc;
	enum decode_result res = DECODE_OK;
	size_t avail_out;
	uint8_t *next_out;

	if (st == NULL) {
		snprintf(err, errlen, "out of memory");
		return DECODE_ERROR;
	}
	for (;;) {
		if (sink_grow(s) == -1) {
			res = s->capped ? DECODE_CAPPED : DECODE_ERROR;
			if (!s->capped)
				snprintf(err, errlen, "out of memory");
			break;
		}
		next_out = s->p + s->len;
		avail_out = s->room - s->len;
		rc = BrotliDecoderDecompressStream(
		    st, &inlen, &in, &avail_out, &next_out, NULL);
		s->len = s->room - avail_out;
		if (rc == BROTLI_DECODER_RESULT_SUCCESS)
			break;
		if (rc == BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT) {
			res = DECODE_PARTIAL;
			break;
		}
		if (rc == BROTLI_DECODER_RESULT_ERROR) {
			snprintf(err, errlen, "%s",
			    BrotliDecoderErrorString(
				BrotliDecoderGetErrorCode(st)));
			res = DECODE_ERROR;
			break;
		}
	}
	BrotliDecoderDestroyInstance(st);
	return res;
}

static enum decode_result
decode_zstd(const unsigned char *in, size_t inlen, struct sink *s, char *err,
    size_t errlen)
{
	ZSTD_DCtx *dc = ZSTD_createDCtx();
	ZSTD_inBuffer ib = {in, inlen, 0};
	enum decode_result res = DECODE_OK;
	size_t rc = 0;

	if (dc == NULL) {
		snprintf(err, errlen, "out of memory");
		return DECODE_ERROR;
	}
	(void)ZSTD_DCtx_setParameter(
	    dc, ZSTD_d_windowLogMax, DECODE_ZSTD_WINDOW_LOG);
	for (;;) {
		ZSTD_outBuffer ob;
		if (sink_grow(s) == -1) {
			res = s->capped ? DECODE_CAPPED : DECODE_ERROR;
			if (!s->capped)
				snprintf(err, errlen, "out of memory");
			break;
		}
		ob.dst = s->p + s->len;
		ob.size = s->room - s->len;
		ob.pos = 0;
		rc = ZSTD_decompressStream(dc, &ob, &ib);
		s->len += ob.pos;
		if (ZSTD_isError(rc)) {
			snprintf(err, errlen, "%s", ZSTD_getErrorName(rc));
			res = DECODE_ERROR;
			break;
		}
		/* a frame ended and no input is left: done; more frames
		 * may follow in the same body */
		if (rc == 0 && ib.pos == ib.size)
			break;
		/* input used up mid-frame, and the output had room left:
		 * nothing more will come */
		if (ib.pos == ib.size && ob.pos < ob.size) {
			res = DECODE_PARTIAL;
			break;
		}
	}
	ZSTD_freeDCtx(dc);
	return res;
}

/* One stage into a fresh sink. */
static enum decode_result
decode_stage(enum decode_coding c, const unsigned char *in, size_t inlen,
    struct sink *s, char *err, size_t errlen)
{
	switch (c) {
	case CODING_GZIP:
		return decode_zlib(in, inlen, 16 + MAX_WBITS, s, err, errlen);
	case CODING_DEFLATE:
		/* RFC 9110 says zlib-wrapped; some servers send raw deflate.
		 * A zlib header is CMF/FLG with method 8 and a check that
		 * makes the pair a multiple of 31. */
		if (inlen >= 2 && (in[0] & 0x0f) == 8 &&
		    ((in[0] << 8) | in[1]) % 31 == 0)
			return decode_zlib(
			    in, inlen, MAX_WBITS, s, err, errlen);
		return decode_zlib(in, inlen, -MAX_WBITS, s, err, errlen);
	case CODING_BR:
		return decode_br(in, inlen, s, err, errlen);
	case CODING_ZSTD:
		return decode_zstd(in, inlen, s, err, errlen);
	}
	return DECODE_ERROR;
}

/* The codings of a Content-Encoding value in the order they were applied,
 * identity left out. Returns how many, or -1 (err set). */
static int
decode_parse(const char *enc, enum decode_coding *c, char *err, size_t errlen)
{
	static const struct {
		const char *name;
		enum decode_coding c;
	} known[] = {
	    {"gzip", CODING_GZIP},
	    {"x-gzip", CODING_GZIP},
	    {"deflate", CODING_DEFLATE},
	    {"br", CODING_BR},
	    {"zstd", CODING_ZSTD},
	};
	int n = 0;
	size_t i;

	while (enc != NULL && *enc != '\0') {
		size_t len;
		enc += strspn(enc, " \t,");
		len = strcspn(enc, " \t,;");
		if (len == 0)
			break;
		if (!(len == 8 && strncasecmp(enc, "identity", 8) == 0)) {
			for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
				if (strlen(known[i].name) == len &&
				    strncasecmp(known[i].name, enc, len) == 0)
					break;
			if (i == sizeof(known) / sizeof(known[0])) {
				snprintf(err, errlen,
				    "unknown content-encoding '%.*s'",
				    (int)(len > 32 ? 32 : len), enc);
				return -1;
			}
			if (n == DECODE_MAX_STAGES) {
				snprintf(err, errlen,
				    "more than %d content-encodings",
				    DECODE_MAX_STAGES);
				return -1;
			}
			c[n++] = known[i].c;
		}
		enc += len;
		enc += strcspn(enc, ","); /* parameters are not ours */
	}
	return n;
}

enum decode_result
decode_body(const char *encoding, const void *in, size_t inlen, size_t cap,
    unsigned char **out, size_t *outlen, char *err, size_t errlen)
{
	enum decode_coding c[DECODE_MAX_STAGES];
	enum decode_result res = DECODE_OK, r;
	const unsigned char *cur = in;
	unsigned char *held = NULL;
	size_t curlen = inlen;
	int n, k;

	if (errlen > 0)
		err[0] = '\0';
	*out = NULL;
	*outlen = 0;
	if ((n = decode_parse(encoding, c, err, errlen)) == -1)
		return DECODE_UNKNOWN;
	if (n == 0)
		return DECODE_NONE;
	/* the last applied comes off first */
	for (k = n - 1; k >= 0; k--) {
		struct sink s = {NULL, 0, 0, cap, 0};
		r = decode_stage(c[k], cur, curlen, &s, err, errlen);
		free(held);
		held = NULL;
		if (r == DECODE_ERROR) {
			free(s.p);
			return DECODE_ERROR;
		}
		if (s.p == NULL && sink_grow(&s) == -1 && !s.capped) {
			snprintf(err, errlen, "out of memory");
			return DECODE_ERROR;
		}
		if (r == DECODE_CAPPED)
			res = DECODE_CAPPED;
		else if (r == DECODE_PARTIAL && res == DECODE_OK)
			res = DECODE_PARTIAL;
		held = s.p;
		cur = s.p;
		curlen = s.len;
	}
	if (held == NULL && (held = malloc(1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return DECODE_ERROR;
	}
	held[curlen] = '\0';
	*out = held;
	*outlen = curlen;
	if (res == DECODE_CAPPED)
		snprintf(err, errlen, "decoded size cut at %zu bytes", cap);
	else if (res == DECODE_PARTIAL)
		snprintf(err, errlen, "the encoded body ends early");
	return res;
}

const char *
decode_result_str(enum decode_result r)
{
	switch (r) {
	case DECODE_NONE:
		return "not encoded";
	case DECODE_OK:
		return "decoded";
	case DECODE_CAPPED:
		return "decoded, cut at the cap";
	case DECODE_PARTIAL:
		return "decoded in part (the body ends early)";
	case DECODE_UNKNOWN:
		return "unknown encoding";
	case DECODE_ERROR:
		return "cannot decode";
	}
	return "?";
}
