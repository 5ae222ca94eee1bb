/* readable: see readable.h. */
#include "proxy/store/readable.h"

#include "proxy/http/head.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

char *
readable_header(const char *h, const char *name)
{
	size_t nlen = strlen(name), total = 0, fl, vl;
	char *out = NULL, *grown;
	struct head_text_iter it;
	const char *f, *v;

	head_text_init(&it, h);
	while (head_text_next(&it, &f, &fl, &v, &vl)) {
		if (fl != nlen || strncasecmp(f, name, nlen) != 0)
			continue;
		grown = realloc(out, total + vl + 3);
		if (grown == NULL) {
			free(out);
			return NULL;
		}
		out = grown;
		if (total > 0) {
			memcpy(out + total, ", ", 2);
			total += 2;
		}
		memcpy(out + total, v, vl);
		total += vl;
		out[total] = '\0';
	}
	return out;
}

void
readable_body(
    const char *headers, const void *raw, size_t rawlen, struct readable *r)
{
	char err[128];
	size_t outlen = 0;

	memset(r, 0, sizeof(*r));
	r->data = raw;
	r->len = rawlen;
	r->result = DECODE_NONE;
	if ((r->encoding = readable_header(headers, "content-encoding")) ==
	    NULL)
		return;
	r->result = decode_body(r->encoding, raw, rawlen, READABLE_CAP,
	    &r->owned, &outlen, err, sizeof(err));
	switch (r->result) {
	case DECODE_NONE:
		break;
	case DECODE_OK:
		snprintf(r->note, sizeof(r->note), "%.40s, %zu bytes stored",
		    r->encoding, rawlen);
		break;
	case DECODE_CAPPED:
	case DECODE_PARTIAL:
		snprintf(r->note, sizeof(r->note),
		    "%.40s, %zu bytes stored; %.80s", r->encoding, rawlen, err);
		break;
	case DECODE_UNKNOWN:
	case DECODE_ERROR:
		snprintf(r->note, sizeof(r->note),
		    "%.40s, shown as stored: cannot decode: %.80s", r->encoding,
		    err);
		return;
	}
	if (r->owned != NULL) {
		r->data = r->owned;
		r->len = outlen;
	}
}

void
readable_free(struct readable *r)
{
	free(r->owned);
	free(r->encoding);
	r->owned = NULL;
	r->encoding = NULL;
}
