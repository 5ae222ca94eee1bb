/*
 * socks: the SOCKS5 side of a client connection (RFC 1928 CONNECT, with
 * RFC 1929 user/password when socks5-user is configured). Once the target
 * is known the connection joins the CONNECT path: rules, sniff, intercept
 * or relay. Worker loop thread only.
 */
#ifndef PEEPHOLE_SOCKS_H
#define PEEPHOLE_SOCKS_H

struct conn;

/* Bytes arrived while the SOCKS handshake is under way. */
void socks_read(struct conn *c);

/* Send the reply to the CONNECT request: rep is an RFC 1928 REP code
 * (0 succeeded, 2 not allowed by ruleset, ...). 0 / -1. */
int socks_reply(struct conn *c, int rep);

#endif
