/*
 * pinning: the verdict of a client's handshake on a forged certificate,
 * and the learned back-off it feeds (see pinning.c).
 */
#ifndef PEEPHOLE_PINNING_H
#define PEEPHOLE_PINNING_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

struct conn;

enum pinning_verdict {
	PINNING_V_COMPLETED,   /* the client's Finished arrived */
	PINNING_V_REJECTED,    /* it refused the forged certificate */
	PINNING_V_UNSUPPORTED, /* no TLS version or cipher in common */
	PINNING_V_FAILED       /* anything else: nothing to learn */
};

/* OpenSSL's message callback for the client leg (arg: the conn). */
void pinning_msgcb(int write_p, int version, int content_type, const void *buf,
    size_t len, SSL *ssl, void *arg);

/* Why the client's handshake ended without completing, from what the
 * message callback saw and OpenSSL's error e; why is filled in. */
enum pinning_verdict pinning_verdict(
    const struct conn *c, unsigned long e, char *why, size_t len);

/* The client completed a handshake: forget its pair's back-off. */
void pinning_accepted(struct conn *c);

/* The client refused the forged certificate: back off from the pair. */
void pinning_rejected(struct conn *c, const char *why);

/* A wait for people ("45s", "12m", "3.5h") into buf; returns buf. */
const char *pinning_human(int64_t us, char *buf, size_t len);

#endif
