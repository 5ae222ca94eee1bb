/*
 * decode: undo a Content-Encoding so people (show, filters, HAR, export) can
 * read a body that is stored as it was received. Knows gzip (and x-gzip),
 * deflate (zlib-wrapped, and the raw deflate some servers send under that
 * name), br and zstd, stacked in any order: "gzip, br" was gzipped first,
 * so it is decoded br first. Each stage streams through its library in
 * chunks and stops at a cap on its output, so a zip bomb costs at most cap
 * bytes. Pure: no I/O.
 */
#ifndef PEEPHOLE_DECODE_H
#define PEEPHOLE_DECODE_H

#include <stddef.h>

enum decode_result {
	DECODE_NONE = 0, /* no encoding, or identity: nothing to undo */
	DECODE_OK,       /* decoded whole */
	DECODE_CAPPED,   /* a stage stopped at the cap: out holds cap bytes,
			    or fewer when an inner stage of a stack was
			    cut and the outer ones decoded what it gave */
	DECODE_PARTIAL,  /* the input ended mid-stream (a truncated capture);
			    out holds what it decoded to */
	DECODE_UNKNOWN,  /* an encoding this does not know; out unset */
	DECODE_ERROR,    /* corrupt data; out unset, err says why */
};

/*
 * Decode in[0..inlen) as the Content-Encoding value encoding says (NULL or
 * "" is no encoding). On DECODE_OK, _CAPPED and _PARTIAL, *out is a malloc'd
 * buffer of *outlen bytes (plus a NUL not counted) the caller frees. err
 * gets a short reason for every result but NONE and OK.
 */
enum decode_result decode_body(const char *encoding, const void *in,
    size_t inlen, size_t cap, unsigned char **out, size_t *outlen, char *err,
    size_t errlen) __attribute__((warn_unused_result));

/* "decoded", "cut at the cap", ... for messages. */
const char *decode_result_str(enum decode_result r);

#endif
