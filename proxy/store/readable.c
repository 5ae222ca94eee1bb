/* readable: see readable.h. */
#include "proxy/store/readable.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

char *
readable_header(const char *h, const char *name)
{
	size_t nlen = strlen(name), total = 0;
	char *out = NULL, *grown;

	while (h != NULL && *h != '\0') {
		size_t n = strcspn(h, "\r\n");
		if (n > nlen && h[nlen] == ':' &&
		    strncasecmp(h, name, nlen) == 0) {
			const char *v = h + nlen + 1, *end = h + n;
			v += strspn(v, " \t");
			while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
				end--;
			grown = realloc(out, total + (size_t)(end - v) + 3);
			if (grown == NULL) {
				free(out);
				return NULL;
			}
			out = grown;
			if (total > 0) {
				memcpy(out + total, ", ", 2);
				total += 2;
			}
			memcpy(out + total, v, (size_t)(end - v));
			total += (size_t)(end - v);
			out[total] = '\0';
		}
		h += n;
		h += strspn(h, "\r\n");
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
