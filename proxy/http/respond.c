/* respond: see respond.h. */
#include "proxy/http/respond.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <string.h>

const char *
respond_reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 413:
		return "Content Too Large";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	case 508:
		return "Loop Detected";
	default:
		return "Unknown";
	}
}

static int
respond_write(struct evbuffer *out, int status, const char *ctype,
    const char *body, size_t len, int keep_alive, int head_only)
{
	size_t before = evbuffer_get_length(out);

	if (evbuffer_add_printf(out,
		"HTTP/1.1 %d %s\r\n"
		"Server: peephole\r\n"
		"Content-Type: %s\r\n"
		"Content-Length: %zu\r\n"
		"Cache-Control: no-store\r\n"
		"Connection: %s\r\n\r\n",
		status, respond_reason(status), ctype, len,
		keep_alive ? "keep-alive" : "close") < 0)
		return -1;
	if (!head_only && len && evbuffer_add(out, body, len) == -1)
		return -1;
	return (int)(evbuffer_get_length(out) - before);
}

int
respond_error(struct evbuffer *out, int status, const char *detail,
    int keep_alive, int head_only)
{
	char body[1024];
	int n;

	n = snprintf(body, sizeof(body), "%d %s\n\npeephole: %s\n", status,
	    respond_reason(status), detail ? detail : respond_reason(status));
	if (n < 0)
		return -1;
	if ((size_t)n >= sizeof(body))
		n = (int)sizeof(body) - 1;
	return respond_write(out, status, "text/plain; charset=utf-8", body,
	    (size_t)n, keep_alive, head_only);
}

int
respond_page(struct evbuffer *out, const char *body, size_t len, int keep_alive,
    int head_only)
{
	return respond_write(out, 200, "text/html; charset=utf-8", body, len,
	    keep_alive, head_only);
}
