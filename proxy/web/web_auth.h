/*
 * web_auth: the web UI's gatekeeping, as pure functions the server calls
 * on every request — the secrets it hands out, which Host headers it
 * answers (DNS rebinding), cookies, HTTP Basic passwords, and comparing
 * secrets in constant time.
 */
#ifndef PEEPHOLE_WEB_AUTH_H
#define PEEPHOLE_WEB_AUTH_H

#include <stddef.h>

/* A secret as hex: 32 random bytes. */
#define WEB_SECRET_HEX 64

/* Fill out (WEB_SECRET_HEX + 1 bytes) with a fresh random secret from
 * OpenSSL's CSPRNG. 0 / -1. */
int web_auth_secret(char *out) __attribute__((warn_unused_result));

/* 1 when a and b are the same string (constant time in their contents);
 * NULL never equals. */
int web_auth_equal(const char *a, const char *b);

/*
 * 1 when a request with Host header host may be answered by a server
 * listening on listen_host:port: "localhost", any IP literal (IPv6 in
 * brackets) or listen_host, each with ":port" or without. A name that is
 * not ours is how DNS rebinding reaches a loopback server: 0. NULL or ""
 * is refused too (HTTP/1.1 requires Host).
 */
int web_auth_host_ok(const char *host, const char *listen_host, unsigned port);

/*
 * 1 when any cookie called name in a Cookie header has the value value
 * (compared in constant time). Any, not the first: a page on another
 * localhost port can set a cookie of the same name that the browser sends
 * first, and it must not lock the real one out.
 */
int web_auth_cookie_is(const char *header, const char *name, const char *value);

/*
 * 1 when an Authorization header carries HTTP Basic credentials whose
 * password is password (any user name), 0 otherwise.
 */
int web_auth_basic_ok(const char *header, const char *password);

#endif
