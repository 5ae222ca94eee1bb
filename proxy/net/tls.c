/* tls: see tls.h. */
#include "proxy/net/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <pthread.h>
#include <sys/queue.h>
#include <openssl/x509v3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca/ca.h"
#include "ca/forge.h"
#include "conf/config.h"
#include "proxy/log.h"
#include "proxy/store/store.h"

static const unsigned char tls_alpn_h1[] = "\x08http/1.1";

/* Where key-log lines go: the store's writer appends them to the
 * SSLKEYLOGFILE, so no loop thread writes a file. Set once at start. */
static struct store *tls_keylog_store;

static void
tls_keylogcb(const SSL *ssl, const char *line)
{
	struct store_rec *rec;
	size_t n = strlen(line);

	(void)ssl;
	if (tls_keylog_store == NULL ||
	    (rec = store_rec_new(STORE_REC_KEYLOG)) == NULL)
		return;
	rec->u.keylog.line = malloc(n + 2);
	if (rec->u.keylog.line == NULL) {
		store_rec_free(rec);
		return;
	}
	memcpy(rec->u.keylog.line, line, n);
	memcpy(rec->u.keylog.line + n, "\n", 2);
	(void)store_submit(tls_keylog_store, rec);
}

/* ---- origin sessions, for resumption ---- */

#define TLS_SESS_BUCKETS 8192 /* power of two */
#define TLS_SESS_KEY 300

struct tls_sess {
	TAILQ_ENTRY(tls_sess) age; /* oldest first */
	struct tls_sess *chain;    /* same bucket */
	char key[TLS_SESS_KEY];    /* "host:port/sni" */
	SSL_SESSION *session;
};

struct tls_sesscache {
	pthread_mutex_t mu;
	struct tls_sess *bucket[TLS_SESS_BUCKETS];
	TAILQ_HEAD(, tls_sess) ages;
	size_t n;
};

/* SSL ex_data slot: the origin key of an upstream SSL (malloc'd). */
static int tls_key_idx = -1;

static void
tls_key_free(
    void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	free(ptr);
}

static struct tls_sess **
tls_sess_slot(struct tls_sesscache *sc, const char *key)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	struct tls_sess **pp;

	for (const char *p = key; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	pp = &sc->bucket[h & (TLS_SESS_BUCKETS - 1)];
	while (*pp != NULL && strcmp((*pp)->key, key) != 0)
		pp = &(*pp)->chain;
	return pp;
}

static void
tls_sess_unlink(struct tls_sesscache *sc, struct tls_sess **pp)
{
	struct tls_sess *e = *pp;

	*pp = e->chain;
	TAILQ_REMOVE(&sc->ages, e, age);
	SSL_SESSION_free(e->session);
	free(e);
	sc->n--;
}

/* Keep session for key (its reference is ours), replacing an older one. */
static void
tls_sess_put(struct tls_sesscache *sc, const char *key, SSL_SESSION *session)
{
	struct tls_sess **pp, *e = calloc(1, sizeof(*e));

	if (e == NULL) {
		SSL_SESSION_free(session);
		return;
	}
	snprintf(e->key, sizeof(e->key), "%s", key);
	e->session = session;
	pthread_mutex_lock(&sc->mu);
	if (*(pp = tls_sess_slot(sc, key)) != NULL)
		tls_sess_unlink(sc, pp);
	else if (sc->n >= TLS_SESS_MAX) {
		struct tls_sess *old = TAILQ_FIRST(&sc->ages);
		tls_sess_unlink(sc, tls_sess_slot(sc, old->key));
	}
	pp = tls_sess_slot(sc, key);
	e->chain = *pp;
	*pp = e;
	TAILQ_INSERT_TAIL(&sc->ages, e, age);
	sc->n++;
	pthread_mutex_unlock(&sc->mu);
}

/*
 * The session kept for key (a reference the caller frees), or NULL. It
 * stays in the cache until a newer one replaces it: some servers issue no
 * ticket on a resumed handshake, and a tunnel's origin connection ends
 * with its client's, so a session used once would leave every other new
 * tunnel to a full handshake. One no longer resumable is dropped.
 */
static SSL_SESSION *
tls_sess_take(struct tls_sesscache *sc, const char *key)
{
	struct tls_sess **pp;
	SSL_SESSION *session = NULL;

	pthread_mutex_lock(&sc->mu);
	if (*(pp = tls_sess_slot(sc, key)) != NULL) {
		if (SSL_SESSION_is_resumable((*pp)->session) &&
		    SSL_SESSION_up_ref((*pp)->session) == 1)
			session = (*pp)->session;
		else
			tls_sess_unlink(sc, pp);
	}
	pthread_mutex_unlock(&sc->mu);
	return session;
}

static void
tls_sess_free(struct tls_sesscache *sc)
{
	struct tls_sess *e;

	if (sc == NULL)
		return;
	while ((e = TAILQ_FIRST(&sc->ages)) != NULL)
		tls_sess_unlink(sc, tls_sess_slot(sc, e->key));
	pthread_mutex_destroy(&sc->mu);
	free(sc);
}

/*
 * An origin handed us a session (TLS 1.3: a ticket after the handshake).
 * Kept only if the origin's certificate verified: a resumed handshake
 * shows no certificate, and the session carries the old verdict.
 */
static int
tls_new_sessioncb(SSL *ssl, SSL_SESSION *session)
{
	struct tls *t = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	const char *key = SSL_get_ex_data(ssl, tls_key_idx);

	if (t == NULL || key == NULL || !SSL_SESSION_is_resumable(session) ||
	    (t->verify && SSL_get_verify_result(ssl) != X509_V_OK))
		return 0;
	tls_sess_put(t->sess, key, session);
	return 1;
}

/* The protocol to agree on with one client (tls_down_new's pick). */
static int tls_pick_idx = -1;

/* The entry (its length byte) naming protocol p in the client's wire
 * list in, or NULL when it is not offered. */
static const unsigned char *
tls_alpn_find(const unsigned char *in, unsigned inlen, const char *p)
{
	size_t len = strlen(p);

	for (unsigned i = 0; i < inlen; i += 1u + in[i])
		if (in[i] == len && i + 1 + len <= inlen &&
		    memcmp(in + i + 1, p, len) == 0)
			return in + i;
	return NULL;
}

/*
 * Agree with the client on what the origin chose (the pick), when the
 * client offered it; else on http/1.1, else h2 (an h2-only client of an
 * HTTP/1.1 origin: h2_h1.c translates). Nothing else is spoken.
 */
static int
tls_alpn_selectcb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
    const unsigned char *in, unsigned inlen, void *arg)
{
	const char *pick = SSL_get_ex_data(ssl, tls_pick_idx);
	const char *order[] = {pick, "http/1.1", "h2"};

	(void)arg;
	for (size_t i = 0; i < 3; i++) {
		const unsigned char *e;
		if (order[i] == NULL ||
		    (e = tls_alpn_find(in, inlen, order[i])) == NULL)
			continue;
		*out = e + 1;
		*outlen = e[0];
		return SSL_TLSEXT_ERR_OK;
	}
	return SSL_TLSEXT_ERR_NOACK;
}

/* Why upstream-ca path could not be loaded, in words. */
static void
tls_ca_file_err(char *err, size_t errlen, const char *path)
{
	unsigned long e = ERR_peek_last_error();
	const char *why = e != 0 ? ERR_reason_error_string(e) : NULL;
	FILE *fp = fopen(path, "r");

	if (fp == NULL)
		snprintf(
		    err, errlen, "upstream-ca %s: %s", path, strerror(errno));
	else {
		fclose(fp);
		snprintf(err, errlen,
		    "upstream-ca %s: no certificate could be read from it "
		    "(%s); it should hold PEM CA certificates (-----BEGIN "
		    "CERTIFICATE-----)",
		    path, why != NULL ? why : "unknown error");
	}
	ERR_clear_error();
}

/* The OpenSSL error queue's first entry as "WHAT: reason" in err, the
 * queue cleared. */
static void
tls_ssl_err(char *err, size_t errlen, const char *what)
{
	unsigned long e = ERR_get_error();

	snprintf(err, errlen, "%s: %s", what,
	    e ? ERR_error_string(e, NULL) : "unknown error");
	ERR_clear_error();
}

SSL_CTX *
tls_origin_ctx_new(const char *upstream_ca, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL)
		goto sslfail;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (SSL_CTX_set_default_verify_paths(ctx) != 1)
		goto sslfail;
	if (upstream_ca != NULL &&
	    SSL_CTX_load_verify_locations(ctx, upstream_ca, NULL) != 1) {
		tls_ca_file_err(err, errlen, upstream_ca);
		SSL_CTX_free(ctx);
		return NULL;
	}
	/* verify in the handshake but decide afterwards (tls_origin_error) */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (SSL_CTX_set_alpn_protos(
		ctx, tls_alpn_h1, sizeof(tls_alpn_h1) - 1) != 0)
		goto sslfail;
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	return ctx;
sslfail:
	tls_ssl_err(err, errlen, "TLS setup");
	SSL_CTX_free(ctx);
	return NULL;
}

struct tls *
tls_new(
    const struct config *cfg, struct store *keylog, char *err, size_t errlen)
{
	struct tls *t = calloc(1, sizeof(*t));
	char home[4096];

	if (t == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (cfg->home != NULL)
		snprintf(home, sizeof(home), "%s", cfg->home);
	else if (ca_home(home, sizeof(home)) == -1) {
		snprintf(err, errlen, "no home for the CA: set PEEPHOLE_HOME");
		goto fail;
	}
	t->ca = ca_load_or_create(home, err, errlen);
	if (t->ca == NULL)
		goto fail;
	t->forge = forge_new(t->ca, cfg->forge_cache_size, err, errlen);
	if (t->forge == NULL)
		goto fail;
	t->verify = !cfg->insecure_upstream;

	if ((t->up_ctx = tls_origin_ctx_new(cfg->upstream_ca, err, errlen)) ==
	    NULL)
		goto fail;
	t->down_ctx = SSL_CTX_new(TLS_server_method());
	if (t->down_ctx == NULL)
		goto sslfail;
	/* origin sessions live in our cache, keyed by origin, not OpenSSL's */
	if ((t->sess = calloc(1, sizeof(*t->sess))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	pthread_mutex_init(&t->sess->mu, NULL);
	TAILQ_INIT(&t->sess->ages);
	if (tls_pick_idx == -1)
		tls_pick_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	if (tls_key_idx == -1)
		tls_key_idx =
		    SSL_get_ex_new_index(0, NULL, NULL, NULL, tls_key_free);
	SSL_CTX_set_app_data(t->up_ctx, t);
	SSL_CTX_set_session_cache_mode(t->up_ctx,
	    SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(t->up_ctx, tls_new_sessioncb);

	SSL_CTX_set_min_proto_version(t->down_ctx, TLS1_2_VERSION);
	SSL_CTX_set_alpn_select_cb(t->down_ctx, tls_alpn_selectcb, NULL);
	SSL_CTX_set_mode(t->down_ctx, SSL_MODE_RELEASE_BUFFERS);
	if (keylog != NULL) {
		/* both legs, so a capture beside the proxy decrypts fully */
		tls_keylog_store = keylog;
		SSL_CTX_set_keylog_callback(t->up_ctx, tls_keylogcb);
		SSL_CTX_set_keylog_callback(t->down_ctx, tls_keylogcb);
	}
	return t;
sslfail:
	tls_ssl_err(err, errlen, "TLS setup");
fail:
	tls_free(t);
	return NULL;
}

void
tls_free(struct tls *t)
{
	if (t == NULL)
		return;
	SSL_CTX_free(t->up_ctx);
	SSL_CTX_free(t->down_ctx);
	tls_sess_free(t->sess);
	forge_free(t->forge);
	ca_free(t->ca);
	free(t);
}

SSL *
tls_origin_ssl_new(SSL_CTX *ctx, const char *sni, const char *host)
{
	SSL *ssl = SSL_new(ctx);
	X509_VERIFY_PARAM *vp;
	unsigned char ip[16];

	if (ssl == NULL)
		return NULL;
	if (sni != NULL && sni[0] && SSL_set_tlsext_host_name(ssl, sni) != 1)
		goto fail;
	vp = SSL_get0_param(ssl);
	if (inet_pton(AF_INET, host, ip) == 1 ||
	    inet_pton(AF_INET6, host, ip) == 1) {
		if (X509_VERIFY_PARAM_set1_ip_asc(vp, host) != 1)
			goto fail;
	} else if (X509_VERIFY_PARAM_set1_host(vp, host, 0) != 1)
		goto fail;
	return ssl;
fail:
	SSL_free(ssl);
	return NULL;
}

static int tls_alpn_set(SSL *ssl, const char *list);

SSL *
tls_up_new(struct tls *t, const char *sni, const char *host, unsigned port,
    const char *alpn)
{
	SSL *ssl = tls_origin_ssl_new(t->up_ctx, sni, host);
	SSL_SESSION *session;
	char *key;

	if (ssl == NULL)
		return NULL;
	if (alpn != NULL && tls_alpn_set(ssl, alpn) == -1) {
		SSL_free(ssl);
		return NULL;
	}
	if ((key = malloc(TLS_SESS_KEY)) == NULL ||
	    SSL_set_ex_data(ssl, tls_key_idx, key) != 1) {
		free(key);
		SSL_free(ssl);
		return NULL;
	}
	snprintf(key, TLS_SESS_KEY, "%s:%u/%s", host, port, sni ? sni : "");
	if ((session = tls_sess_take(t->sess, key)) != NULL) {
		/* a failure here only costs the resumption */
		(void)SSL_set_session(ssl, session);
		SSL_SESSION_free(session);
	}
	return ssl;
}

/* Offer the origin the protocols of list ("h2,http/1.1", the client's)
 * that peephole speaks, in the client's order (http/1.1 added after a
 * lone h2); none when it offered none. 0 or -1. */
static int
tls_alpn_set(SSL *ssl, const char *list)
{
	unsigned char wire[32];
	size_t n = 0;
	const char *p = list, *e;

	while (*p != '\0') {
		e = strchr(p, ',');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		if ((len == 2 && memcmp(p, "h2", 2) == 0) ||
		    (len == 8 && memcmp(p, "http/1.1", 8) == 0)) {
			if (n + 1 + len > sizeof(wire))
				break;
			wire[n++] = (unsigned char)len;
			memcpy(wire + n, p, len);
			n += len;
		}
		p += len + (e != NULL);
	}
	if (n == 3 && memcmp(wire, "\x02h2", 3) == 0 && n + 9 <= sizeof(wire)) {
		/* an h2-only client: an HTTP/1.1-only origin may refuse the
		 * handshake over it, and peephole can translate (h2_h1.c) */
		memcpy(wire + n, "\x08http/1.1", 9);
		n += 9;
	}
	return SSL_set_alpn_protos(ssl, n ? wire : NULL, (unsigned)n) == 0 ? 0
									   : -1;
}

const char *
tls_verify_error(const struct tls *t, SSL *ssl)
{
	return t->verify ? tls_origin_error(ssl) : NULL;
}

const char *
tls_origin_error(SSL *ssl)
{
	long v;
	X509 *peer;

	peer = SSL_get0_peer_certificate(ssl);
	if (peer == NULL)
		return "no certificate";
	v = SSL_get_verify_result(ssl);
	switch (v) {
	case X509_V_OK:
		return NULL;
	case X509_V_ERR_CERT_HAS_EXPIRED:
		return "certificate expired";
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return "certificate not yet valid";
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
		return "self-signed certificate";
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
		return "unknown issuer";
	case X509_V_ERR_HOSTNAME_MISMATCH:
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
		return "hostname mismatch";
	case X509_V_ERR_CERT_REVOKED:
		return "certificate revoked";
	default:
		return X509_verify_cert_error_string(v);
	}
}

SSL *
tls_down_new(struct tls *t, X509 *cert, const char *pick)
{
	SSL *ssl = SSL_new(t->down_ctx);

	if (ssl == NULL)
		return NULL;
	if (SSL_use_certificate(ssl, cert) != 1 ||
	    SSL_use_PrivateKey(ssl, forge_key(t->forge)) != 1 ||
	    SSL_set_ex_data(ssl, tls_pick_idx, (void *)(uintptr_t)pick) != 1) {
		SSL_free(ssl);
		return NULL;
	}
	return ssl;
}

void
tls_describe(SSL *ssl, char *buf, size_t len)
{
	const SSL_CIPHER *c = SSL_get_current_cipher(ssl);

	snprintf(buf, len, "%s/%s%s", SSL_get_version(ssl),
	    c ? SSL_CIPHER_get_name(c) : "none",
	    SSL_session_reused(ssl) ? " resumed" : "");
}

void
tls_cert_info(X509 *cert, char *sha, size_t shalen, char *subject,
    size_t sublen, char *issuer, size_t isslen)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	sha[0] = subject[0] = issuer[0] = '\0';
	if (cert == NULL)
		return;
	if (X509_digest(cert, EVP_sha256(), md, &n) == 1)
		for (unsigned i = 0; i < n && 2 * i + 2 < shalen; i++)
			snprintf(sha + 2 * i, 3, "%02x", md[i]);
	X509_NAME_oneline(X509_get_subject_name(cert), subject, (int)sublen);
	X509_NAME_oneline(X509_get_issuer_name(cert), issuer, (int)isslen);
}
