/*
 * requrl: rebuild the URL of a logged request from its stored parts, for
 * the requests and show commands.
 */
#ifndef PEEPHOLE_REQURL_H
#define PEEPHOLE_REQURL_H

/*
 * "scheme://host[:port]/path[?query]", the port left out when it is the
 * scheme's default and IPv6 literals bracketed; "host:port" for CONNECT.
 * Any argument may be NULL. Returns a malloc'd string the caller frees, or
 * NULL on ENOMEM.
 */
char *requrl_format(const char *scheme, const char *method, const char *host,
    int port, const char *path, const char *query)
    __attribute__((warn_unused_result));

#endif
