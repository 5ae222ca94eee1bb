/*
 * forge: leaf certificates signed by peephole's CA for the names a client
 * asks for, and an LRU cache of them.  One ECDSA P-256 leaf key is made per
 * run and shared by every forged certificate.  Thread-safe: workers share
 * one struct forge; the cache is behind a mutex, signing happens outside it.
 */
#ifndef PEEPHOLE_FORGE_H
#define PEEPHOLE_FORGE_H

#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "ca/ca.h"

struct forge;

/*
 * Generate the leaf key and prepare to sign with ca, which must outlive
 * the forge.  cache_size 0 disables caching.  NULL with err on failure.
 * Called at start-up: key generation is too slow for an event loop.
 */
struct forge *forge_new(
    const struct ca *ca, size_t cache_size, char *err, size_t errlen) CA_WUR;

void forge_free(struct forge *f);

/*
 * A certificate for name (SNI or CONNECT host; an IPv4/IPv6 literal, with
 * or without [], gets an IP SAN), copying the subject CN and the DNS/IP
 * SANs of upstream when it is not NULL.  Cached by name and the SHA-256 of
 * upstream.  Returns a new reference (the caller X509_free()s it), NULL
 * with err on failure.  Any thread.
 */
X509 *forge_get(struct forge *f, const char *name, X509 *upstream, char *err,
    size_t errlen) CA_WUR;

/* The leaf key all forged certificates carry: borrowed. */
EVP_PKEY *forge_key(const struct forge *f);

/* Cache counters, for tests and the bench. */
void forge_stats(const struct forge *f, unsigned long *hits,
    unsigned long *misses, size_t *entries);

#endif
