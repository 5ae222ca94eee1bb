/*
 * tls: the OpenSSL side of interception — one client context (peephole to
 * origins: verifying, ALPN the client's list, session reuse) and one server
 * context (peephole to clients: forged certificates, ALPN what the origin
 * chose). Built on the main thread at start-up, read-only after, shared by the
 * workers.
 */
#ifndef PEEPHOLE_TLS_H
#define PEEPHOLE_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>

struct ca;
struct config;
struct forge;
struct store;
struct tls_sesscache;

struct tls {
	SSL_CTX *up_ctx;   /* to origins */
	SSL_CTX *down_ctx; /* to clients; the certificate is set per SSL */
	struct ca *ca;
	struct forge *forge;
	int verify; /* 0 with insecure-upstream */
	/* origin sessions to resume, by host:port/SNI; shared, locked */
	struct tls_sesscache *sess;
};

/* Origin sessions kept for resumption (least recently stored go first). */
#define TLS_SESS_MAX 4096

/*
 * Load (or create) the CA and set up both contexts. With keylog (a store
 * with a key-log file set), both legs' secrets go there. NULL + err.
 */
struct tls *tls_new(const struct config *cfg, struct store *keylog, char *err,
    size_t errlen) __attribute__((warn_unused_result));
void tls_free(struct tls *t);

/*
 * A client-side SSL for an origin at host:port: SNI sni (NULL for an IP),
 * hostname (or IP) checked against host. The handshake itself does not
 * fail on a bad certificate; tls_verify_error() tells afterwards, so a
 * failure can be shown to the client under a forged certificate. A session
 * an earlier connection to the same origin (and SNI) got, and verified, is
 * offered for resumption; each is used once, as TLS 1.3 asks. alpn is
 * the client's offered list ("h2,http/1.1"): the origin is offered the
 * part of it peephole speaks, "" offers nothing. NULL on failure.
 */
SSL *tls_up_new(struct tls *t, const char *sni, const char *host, unsigned port,
    const char *alpn);

/*
 * After the origin handshake: NULL if the origin's certificate is
 * acceptable, else a short reason ("certificate expired", "hostname
 * mismatch", ...).
 */
const char *tls_verify_error(const struct tls *t, SSL *ssl);

/*
 * The origin side on its own, for a client that is not the proxy
 * (`peephole replay`). A context for connections to origins: TLS 1.2 at
 * least, ALPN http/1.1, the system's trust store plus upstream_ca (a PEM
 * file, or NULL). The handshake does not fail on a bad certificate:
 * tls_origin_error() judges afterwards. The caller frees it with
 * SSL_CTX_free. NULL with the reason in err.
 */
SSL_CTX *tls_origin_ctx_new(const char *upstream_ca, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * An SSL on ctx for an origin: SNI sni (NULL or "" for none), certificate
 * checked against host (a name or an IP literal). NULL on failure.
 */
SSL *tls_origin_ssl_new(SSL_CTX *ctx, const char *sni, const char *host)
    __attribute__((warn_unused_result));

/* After an origin handshake on such an SSL: NULL if the certificate
 * verified for its host, else a short reason (as tls_verify_error). */
const char *tls_origin_error(SSL *ssl);

/* A server-side SSL presenting cert (with the forge's key), agreeing with
 * the client on pick (a static string: what the origin chose) when it
 * offers it, else http/1.1, else h2. NULL on failure. */
SSL *tls_down_new(struct tls *t, X509 *cert, const char *pick);

/* "TLSv1.3/TLS_AES_128_GCM_SHA256" of a finished handshake, into buf;
 * " resumed" follows when it resumed a session. */
void tls_describe(SSL *ssl, char *buf, size_t len);

/* SHA-256 fingerprint (hex), subject and issuer (one line) of cert. */
void tls_cert_info(X509 *cert, char *sha, size_t shalen, char *subject,
    size_t sublen, char *issuer, size_t isslen);

#endif
