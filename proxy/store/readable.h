/*
 * readable: a logged body as people read it. Bodies are stored as they came
 * off the wire; when their message says Content-Encoding, the read side
 * (show, filters, HAR, export) decodes them here (filters/decode.h), up to
 * READABLE_CAP decoded bytes, and says what it did in a short phrase.
 */
#ifndef PEEPHOLE_READABLE_H
#define PEEPHOLE_READABLE_H

#include <stddef.h>

#include "filters/decode.h"

/* Decoded bytes kept at most; a body that decodes to more is cut here and
 * says so (a zip bomb costs no more than this). */
#define READABLE_CAP ((size_t)64 << 20)

/* A body's readable form. */
struct readable {
	const unsigned char *data; /* decoded bytes, or the stored ones */
	size_t len;
	enum decode_result result; /* DECODE_NONE: data is the stored body */
	char *encoding;            /* the Content-Encoding value, or NULL */
	char note[160];            /* "gzip, 812 bytes stored", "" if none */
	unsigned char *owned;      /* what readable_free frees */
};

/*
 * The value of header name in stored "Name: value\r\n" lines, malloc'd;
 * several lines of the name are joined with ", " (RFC 9110 5.3). NULL when
 * absent (or on ENOMEM).
 */
char *readable_header(const char *headers, const char *name);

/*
 * Fill r for raw[0..rawlen) sent with headers. When raw is not encoded, or
 * cannot be decoded (unknown coding, corrupt), r->data is raw itself and
 * the note says why; raw must then outlive r. Out of memory is reported
 * as a body that cannot be decoded.
 */
void readable_body(
    const char *headers, const void *raw, size_t rawlen, struct readable *r);

void readable_free(struct readable *r);

#endif
