/*
 * libFuzzer harness for filters/filter.c. The input is an expression; when
 * it compiles it is matched against a fixed exchange (bodies through the
 * callback, one of them not valid UTF-8; two WebSocket messages through
 * theirs; an HTTP/2 stream). Checks: a failure always comes
 * with a message and a position inside the expression; matching never
 * crashes, and "!X" always disagrees with X.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filters/filter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const unsigned char bodies[2][8] = {
    {'a', '=', '1', '&', 'b', '=', '2', 0},
    {0xff, 0xfe, 'o', 'k', 0xc3, 0x28, 0x80, 0}};

static int
body(void *arg, int which, const void **d, size_t *len)
{
	(void)arg;
	*d = bodies[which];
	*len = sizeof(bodies[which]);
	return 0;
}

static int
message(void *arg, size_t i, int *dir, const void **d, size_t *len)
{
	(void)arg;
	if (i >= 2)
		return -1;
	*dir = (int)i;
	*d = bodies[1 - i];
	*len = sizeof(bodies[1 - i]);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct filter_req r = {
	    .method = "POST",
	    .url = "https://api.example.com/v1/x?q=1",
	    .host = "api.example.com",
	    .req_headers = "Host: api.example.com\r\nContent-Type: text/x\r\n",
	    .resp_headers = "Content-Type: application/json\r\n",
	    .req_content_type = "text/x",
	    .resp_content_type = "application/json",
	    .label = "mmtls-shortlink",
	    .protocol = "tls",
	    .scheme = "https",
	    .status = 200,
	    .body = body,
	    .message = message,
	    .http2 = 1,
	    .ws_messages = 1,
	};
	char *expr = malloc(size + 3), err[256];
	struct filter *f;
	size_t pos = (size_t)-1;

	if (expr == NULL)
		return 0;
	memcpy(expr, data, size);
	expr[size] = '\0';
	err[0] = '\0';
	f = filter_compile(expr, err, sizeof(err), &pos);
	if (f == NULL) {
		if (err[0] == '\0' || pos > strlen(expr) + 1)
			abort();
		free(expr);
		return 0;
	}
	int m = filter_match(f, &r);
	filter_free(f);
	/* the negation, parenthesised, must compile and disagree */
	memmove(expr + 2, expr, size + 1);
	expr[0] = '!';
	expr[1] = '(';
	char *neg = malloc(size + 4);
	if (neg != NULL) {
		memcpy(neg, expr, size + 2);
		memcpy(neg + size + 2, ")", 2);
		f = filter_compile(neg, err, sizeof(err), &pos);
		/* a NUL inside the input cuts the expression short; the
		 * negation of what compiled must compile too */
		if (strlen(neg) == size + 3) {
			/* two levels more may pass the nesting bound */
			if (f == NULL &&
			    strstr(err, "nested more than") == NULL)
				abort();
			if (f != NULL && filter_match(f, &r) == m)
				abort();
		}
		filter_free(f);
		free(neg);
	}
	free(expr);
	return 0;
}
