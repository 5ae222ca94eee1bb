/*
 * ca: peephole's root CA -- create, load, export, and tell the user how to
 * trust it.  Pure: no sockets, no event loop, no exit(); errors go into the
 * caller's buffer.  A loaded struct ca is read-only and may be shared by
 * every worker thread.
 */
#ifndef PEEPHOLE_CA_H
#define PEEPHOLE_CA_H

#include <stddef.h>
#include <stdio.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#define CA_WUR __attribute__((warn_unused_result))

struct ca;

/*
 * Load the CA from dir (ca.pem = certificate, ca.key = PKCS#8 PEM key),
 * creating dir (0700) and a new CA when neither file exists.  Refuses
 * (NULL, message in err) when ca.key is group/other accessible, when only
 * one of the two files exists, when they do not match, or when the CA has
 * expired.
 */
struct ca *ca_load_or_create(const char *dir, char *err, size_t errlen) CA_WUR;

/* Create a new CA in dir; force replaces an existing one.  0 / -1. */
int ca_create(const char *dir, int force, char *err, size_t errlen) CA_WUR;

void ca_free(struct ca *ca);

X509 *ca_cert(const struct ca *ca); /* borrowed */
/* The certificate's file, as loaded (borrowed). */
const char *ca_cert_path(const struct ca *ca);
/* 1 if ca_load_or_create made this CA just now, else 0. */
int ca_created(const struct ca *ca);
/*
 * The certificate's SHA-256 as `openssl x509 -fingerprint -sha256` prints
 * it ("AB:CD:..."), into buf of at least 96 bytes.  0 / -1.
 */
int ca_fingerprint(const struct ca *ca, char *buf, size_t len) CA_WUR;
EVP_PKEY *ca_key(const struct ca *ca); /* borrowed */

/* Default CA directory: $PEEPHOLE_HOME, else $HOME/.peephole.  0 / -1. */
int ca_home(char *buf, size_t len) CA_WUR;

/*
 * Export the CA certificate (never the key) as fmt "pem", "der" or "p12"
 * (PKCS#12, certificate only, empty password, friendly name "peephole CA")
 * to the file out, or to stdout when out is NULL.  0 / -1.
 */
int ca_export(const struct ca *ca, const char *fmt, const char *out, char *err,
    size_t errlen) CA_WUR;

/*
 * The CA certificate as fmt ("pem" | "der" | "p12", encoded as for
 * ca_export) in a malloc'd buffer: *out, *outlen; the caller frees *out.
 * 0 / -1 with a message in err (*out NULL).  Any thread.
 */
int ca_export_mem(const struct ca *ca, const char *fmt, unsigned char **out,
    size_t *outlen, char *err, size_t errlen) CA_WUR;

/*
 * Print to out the steps to trust the CA on os: "macos", "windows",
 * "linux", "firefox", "chromium", "ios", "android"; NULL prints all of
 * them.  pem_path is the CA certificate's path as the user should type it
 * (NULL: a placeholder).  0, or -1 for an unknown os (nothing printed).
 */
int ca_help(const char *os, const char *pem_path, FILE *out);

/*
 * The RFC 5280 4.2.1.2 (1) key identifier of pkey: SHA-1 of its
 * subjectPublicKey bits.  Both the CA and forge use it for SKI / AKI.
 * Returns a new octet string the caller frees, NULL on failure.
 */
ASN1_OCTET_STRING *ca_key_id(EVP_PKEY *pkey) CA_WUR;

/* A random positive 128-bit serial number, set on x.  0 / -1. */
int ca_set_serial(X509 *x) CA_WUR;

#endif
