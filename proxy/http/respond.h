/*
 * respond: responses peephole writes itself — errors explaining what went
 * wrong (400, 431, 502, 504, ...) and the proxy's own status page.
 */
#ifndef PEEPHOLE_RESPOND_H
#define PEEPHOLE_RESPOND_H

#include <stddef.h>

struct evbuffer;

/*
 * Append a complete response to out: status line, Content-Type text/plain,
 * Content-Length, Connection: close unless keep_alive, then a body of the
 * reason phrase and detail. Returns the number of bytes appended, -1 on
 * ENOMEM. head_only leaves the body out (a HEAD request).
 */
int respond_error(struct evbuffer *out, int status, const char *detail,
    int keep_alive, int head_only) __attribute__((warn_unused_result));

/* Append a 200 text/html response with body (len bytes). As above. */
int respond_page(struct evbuffer *out, const char *body, size_t len,
    int keep_alive, int head_only) __attribute__((warn_unused_result));

/* The standard reason phrase for status, "Unknown" otherwise. */
const char *respond_reason(int status);

#endif
