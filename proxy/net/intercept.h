/*
 * intercept: what happens after CONNECT — answer 200, sniff the first bytes,
 * apply the host rules, and either relay the bytes untouched, parse plain
 * HTTP, or intercept TLS: verify the origin, forge a certificate for the
 * client, and hand the decrypted stream to the HTTP state machine.
 * Worker loop thread only.
 */
#ifndef PEEPHOLE_INTERCEPT_H
#define PEEPHOLE_INTERCEPT_H

struct conn;
struct upstream;
struct worker;

/* How the tunnel's target became known, which decides how to answer. */
enum intercept_via {
	INTERCEPT_VIA_CONNECT = 0, /* HTTP CONNECT: 200 or 403 */
	INTERCEPT_VIA_SOCKS,       /* SOCKS5 reply: succeeded or not allowed */
	INTERCEPT_VIA_TRANSPARENT  /* original destination: nothing to say */
};

/* A CONNECT head was parsed (c->url is host:port): take it from here. */
void intercept_connect(struct conn *c);

/* The target of a tunnel is known: apply block rules, answer the client as
 * its protocol wants, then sniff the first bytes. */
void intercept_tunnel(
    struct conn *c, const char *host, unsigned port, enum intercept_via via);

/* Client bytes arrived while sniffing. */
void intercept_sniff(struct conn *c);

/*
 * The sniff wait ran out. With nothing from the client, the origin is
 * connected and the first side to speak decides (a late ClientHello is
 * still intercepted); with undecidable bytes, relay untouched.
 */
void intercept_sniff_timeout(struct conn *c);

/* The client sent its FIN while sniffing: nothing sent, close; some bytes
 * that decided nothing: relay them untouched. */
void intercept_client_eof(struct conn *c);

/* While undecided after sniff-timeout, the origin spoke first. */
void intercept_server_first(struct conn *c);

/*
 * A new upstream for the current request: TLS (to be verified in
 * intercept_up_ready) inside an intercepted tunnel, plain TCP otherwise.
 */
struct upstream *intercept_upstream_new(
    struct conn *c, const char *host, unsigned port);

/*
 * An origin connection of an intercepted tunnel finished its TLS handshake.
 * Returns 0 when the exchange can go on, -1 when the connection was taken
 * over (client TLS started, or a 502 sent).
 */
int intercept_up_ready(struct conn *c);

/*
 * Connecting to the origin failed. Returns 1 if interception took it over
 * (the client gets a forged session answering 502), 0 if the caller should
 * fail as usual.
 */
int intercept_up_failed(struct conn *c, const char *why);

/* The origin-side SNI / name for upstream TLS of this tunnel. */
const char *intercept_name(const struct conn *c);

#endif
