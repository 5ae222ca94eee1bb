/* forge: see forge.h. */
#include "ca/forge.h"

#include <arpa/inet.h>

#include <ctype.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#define FORGE_DAYS 397     /* CA/Browser Forum and Apple leaf limit */
#define FORGE_CN_MAX 64    /* ub-common-name, RFC 5280 */
#define FORGE_NAME_MAX 253 /* longest DNS name */
#define FORGE_BUCKETS_MAX (1u << 16)

/* Extensions identical in every forged certificate, built once. */
enum {
	FORGE_EXT_BC,
	FORGE_EXT_KU,
	FORGE_EXT_EKU,
	FORGE_EXT_SKI,
	FORGE_EXT_AKI,
	FORGE_EXT_N
};

struct forge_entry {
	char *key; /* "name\nfingerprint-hex" or "name\nnone" */
	uint64_t hash;
	X509 *cert;                /* one reference owned by the cache */
	struct forge_entry *hnext; /* bucket chain */
	struct forge_entry *prev;  /* LRU list, head = most recent */
	struct forge_entry *next;
};

struct forge {
	pthread_mutex_t lock; /* guards everything below "cache" */
	EVP_PKEY *cakey;      /* reference held */
	EVP_PKEY *leafkey;
	X509_NAME *issuer;
	ASN1_TIME *ca_not_after;
	X509_EXTENSION *ext[FORGE_EXT_N];

	/* cache */
	size_t cache_size;
	size_t entries;
	size_t nbuckets; /* power of two */
	struct forge_entry **buckets;
	struct forge_entry *head, *tail;
	unsigned long hits, misses;
};

static void
forge_sslerr(char *err, size_t errlen, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256];

	if (e == 0)
		snprintf(err, errlen, "%s: unknown error", what);
	else {
		ERR_error_string_n(e, buf, sizeof(buf));
		snprintf(err, errlen, "%s: %s", what, buf);
	}
	ERR_clear_error();
}

static X509_EXTENSION *
forge_ext_conf(int nid, const char *value)
{
	X509V3_CTX ctx;

	X509V3_set_ctx(&ctx, NULL, NULL, NULL, NULL, 0);
	X509V3_set_ctx_nodb(&ctx);
	return X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
}

/*
 * Build the constant extensions.  AKI is the CA's own SKI when it has one
 * (a CA made elsewhere may use another key-id method), else our hash.
 */
static int
forge_exts(struct forge *f, X509 *cacert)
{
	const ASN1_OCTET_STRING *caski = X509_get0_subject_key_id(cacert);
	ASN1_OCTET_STRING *ski = NULL;
	AUTHORITY_KEYID *akid = NULL;
	int rc = -1;

	f->ext[FORGE_EXT_BC] =
	    forge_ext_conf(NID_basic_constraints, "critical,CA:FALSE");
	f->ext[FORGE_EXT_KU] =
	    forge_ext_conf(NID_key_usage, "critical,digitalSignature");
	f->ext[FORGE_EXT_EKU] = forge_ext_conf(NID_ext_key_usage, "serverAuth");
	if ((ski = ca_key_id(f->leafkey)) == NULL)
		goto fail;
	f->ext[FORGE_EXT_SKI] =
	    X509V3_EXT_i2d(NID_subject_key_identifier, 0, ski);
	if ((akid = AUTHORITY_KEYID_new()) == NULL)
		goto fail;
	akid->keyid =
	    caski != NULL ? ASN1_OCTET_STRING_dup(caski) : ca_key_id(f->cakey);
	if (akid->keyid == NULL)
		goto fail;
	f->ext[FORGE_EXT_AKI] =
	    X509V3_EXT_i2d(NID_authority_key_identifier, 0, akid);
	for (int i = 0; i < FORGE_EXT_N; i++)
		if (f->ext[i] == NULL)
			goto fail;
	rc = 0;
fail:
	AUTHORITY_KEYID_free(akid);
	ASN1_OCTET_STRING_free(ski);
	return rc;
}

struct forge *
forge_new(const struct ca *ca, size_t cache_size, char *err, size_t errlen)
{
	struct forge *f;
	X509 *cacert = ca_cert(ca);

	if ((f = calloc(1, sizeof(*f))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (pthread_mutex_init(&f->lock, NULL) != 0) {
		free(f);
		snprintf(err, errlen, "forge: mutex init failed");
		return NULL;
	}
	f->cache_size = cache_size;
	f->nbuckets = 16;
	while (f->nbuckets < FORGE_BUCKETS_MAX && f->nbuckets < cache_size * 2)
		f->nbuckets *= 2;
	if ((f->buckets = calloc(f->nbuckets, sizeof(*f->buckets))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (EVP_PKEY_up_ref(ca_key(ca)) != 1) {
		forge_sslerr(err, errlen, "forge: CA key");
		goto fail;
	}
	f->cakey = ca_key(ca);
	if ((f->leafkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) ==
	    NULL) {
		forge_sslerr(err, errlen, "forge: leaf key generation");
		goto fail;
	}
	if ((f->issuer = X509_NAME_dup(X509_get_subject_name(cacert))) ==
		NULL ||
	    (f->ca_not_after = ASN1_STRING_dup(X509_get0_notAfter(cacert))) ==
		NULL ||
	    forge_exts(f, cacert) == -1) {
		forge_sslerr(err, errlen, "forge: setup");
		goto fail;
	}
	return f;
fail:
	forge_free(f);
	return NULL;
}

void
forge_free(struct forge *f)
{
	struct forge_entry *e, *next;

	if (f == NULL)
		return;
	for (e = f->head; e != NULL; e = next) {
		next = e->next;
		X509_free(e->cert);
		free(e->key);
		free(e);
	}
	free(f->buckets);
	for (int i = 0; i < FORGE_EXT_N; i++)
		X509_EXTENSION_free(f->ext[i]);
	ASN1_TIME_free(f->ca_not_after);
	X509_NAME_free(f->issuer);
	EVP_PKEY_free(f->leafkey);
	EVP_PKEY_free(f->cakey);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

EVP_PKEY *
forge_key(const struct forge *f)
{
	return f->leafkey;
}

void
forge_stats(const struct forge *f, unsigned long *hits, unsigned long *misses,
    size_t *entries)
{
	/* the lock is not part of the forge's logical (const) state */
	pthread_mutex_t *lock = (pthread_mutex_t *)&f->lock;

	pthread_mutex_lock(lock);
	if (hits != NULL)
		*hits = f->hits;
	if (misses != NULL)
		*misses = f->misses;
	if (entries != NULL)
		*entries = f->entries;
	pthread_mutex_unlock(lock);
}

/* The name as it goes into the certificate. */
struct forge_name {
	char host[FORGE_NAME_MAX + 1]; /* lower case, [] stripped */
	unsigned char ip[16];
	int iplen; /* 0: a DNS name */
};

/*
 * Normalise name: strip the brackets of "[v6]", lower-case a DNS name
 * (names compare case-insensitively, so "WWW.x" and "www.x" share a cache
 * entry) and recognise IP literals.
 */
static int
forge_parse_name(
    const char *name, struct forge_name *n, char *err, size_t errlen)
{
	size_t len = name != NULL ? strlen(name) : 0;

	if (len >= 2 && name[0] == '[' && name[len - 1] == ']') {
		name++;
		len -= 2;
	}
	if (len == 0 || len > FORGE_NAME_MAX) {
		snprintf(err, errlen, "forge: bad name '%s'",
		    name != NULL ? name : "");
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c <= ' ' || c >= 0x7f || c == '/' || c == '\\') {
			snprintf(err, errlen, "forge: bad character in name");
			return -1;
		}
		n->host[i] = (char)tolower(c);
	}
	n->host[len] = '\0';
	n->iplen = 0;
	if (inet_pton(AF_INET, n->host, n->ip) == 1)
		n->iplen = 4;
	else if (inet_pton(AF_INET6, n->host, n->ip) == 1)
		n->iplen = 16;
	return 0;
}

static uint64_t
forge_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* Cache key: host and who upstream was, as a new string. */
static char *
forge_cache_key(const char *host, X509 *upstream)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	size_t len = strlen(host) + 1 + 2 * EVP_MAX_MD_SIZE + 1;
	char *key, *p;

	if ((key = malloc(len)) == NULL)
		return NULL;
	p = key + snprintf(key, len, "%s\n", host);
	if (upstream == NULL) {
		snprintf(p, len - (size_t)(p - key), "none");
		return key;
	}
	if (X509_digest(upstream, EVP_sha256(), md, &mdlen) != 1) {
		free(key);
		return NULL;
	}
	for (unsigned int i = 0; i < mdlen; i++)
		p += snprintf(p, len - (size_t)(p - key), "%02x", md[i]);
	return key;
}

/* With the lock held. */
static struct forge_entry *
forge_lookup(struct forge *f, const char *key, uint64_t hash)
{
	struct forge_entry *e = f->buckets[hash & (f->nbuckets - 1)];

	for (; e != NULL; e = e->hnext)
		if (e->hash == hash && strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

/* With the lock held: unlink e from the LRU list. */
static void
forge_lru_unlink(struct forge *f, struct forge_entry *e)
{
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		f->head = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	else
		f->tail = e->prev;
	e->prev = e->next = NULL;
}

/* With the lock held: make e the most recently used. */
static void
forge_lru_front(struct forge *f, struct forge_entry *e)
{
	e->next = f->head;
	e->prev = NULL;
	if (f->head != NULL)
		f->head->prev = e;
	f->head = e;
	if (f->tail == NULL)
		f->tail = e;
}

/*
 * With the lock held: drop the least recently used entry and return it;
 * the caller frees it after unlocking.
 */
static struct forge_entry *
forge_evict(struct forge *f)
{
	struct forge_entry *e = f->tail, **pp;

	if (e == NULL)
		return NULL;
	forge_lru_unlink(f, e);
	pp = &f->buckets[e->hash & (f->nbuckets - 1)];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	f->entries--;
	return e;
}

static void
forge_entry_free(struct forge_entry *e)
{
	if (e == NULL)
		return;
	X509_free(e->cert);
	free(e->key);
	free(e);
}

/* Copy upstream's subject CN, cut to 64 bytes on a UTF-8 boundary. */
static int
forge_upstream_cn(X509 *upstream, char *cn, size_t cnlen)
{
	X509_NAME *subj = X509_get_subject_name(upstream);
	int i = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
	unsigned char *utf8 = NULL;
	size_t n;
	int len;

	if (i < 0)
		return -1;
	len = ASN1_STRING_to_UTF8(
	    &utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i)));
	if (len <= 0) {
		OPENSSL_free(utf8);
		return -1;
	}
	n = (size_t)len;
	if (n >= cnlen) {
		n = cnlen - 1;
		while (n > 0 && (utf8[n] & 0xc0) == 0x80)
			n--;
	}
	memcpy(cn, utf8, n);
	cn[n] = '\0';
	OPENSSL_free(utf8);
	return n > 0 && strlen(cn) == n ? 0 : -1;
}

static int
forge_san_has(GENERAL_NAMES *gens, const GENERAL_NAME *g)
{
	for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *h = sk_GENERAL_NAME_value(gens, i);
		const ASN1_STRING *a, *b;

		if (h->type != g->type)
			continue;
		a = g->type == GEN_DNS ? g->d.dNSName : g->d.iPAddress;
		b = h->type == GEN_DNS ? h->d.dNSName : h->d.iPAddress;
		if (ASN1_STRING_length(a) != ASN1_STRING_length(b))
			continue;
		if (g->type == GEN_DNS
			? strncasecmp((const char *)ASN1_STRING_get0_data(a),
			      (const char *)ASN1_STRING_get0_data(b),
			      (size_t)ASN1_STRING_length(a)) == 0
			: memcmp(ASN1_STRING_get0_data(a),
			      ASN1_STRING_get0_data(b),
			      (size_t)ASN1_STRING_length(a)) == 0)
			return 1;
	}
	return 0;
}

/* Append g to gens unless it is there already; g is consumed either way. */
static int
forge_san_push(GENERAL_NAMES *gens, GENERAL_NAME *g)
{
	if (g == NULL)
		return -1;
	if (forge_san_has(gens, g)) {
		GENERAL_NAME_free(g);
		return 0;
	}
	if (sk_GENERAL_NAME_push(gens, g) <= 0) {
		GENERAL_NAME_free(g);
		return -1;
	}
	return 0;
}

/* The asked-for name first, then upstream's DNS and IP names. */
static GENERAL_NAMES *
forge_sans(const struct forge_name *n, X509 *upstream)
{
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null(), *up = NULL;
	GENERAL_NAME *g = NULL;
	ASN1_STRING *s = NULL;

	if (gens == NULL || (g = GENERAL_NAME_new()) == NULL)
		goto fail;
	if (n->iplen > 0) {
		if ((s = ASN1_OCTET_STRING_new()) == NULL ||
		    ASN1_OCTET_STRING_set(s, n->ip, n->iplen) != 1)
			goto fail;
		GENERAL_NAME_set0_value(g, GEN_IPADD, s);
	} else {
		if ((s = ASN1_IA5STRING_new()) == NULL ||
		    ASN1_STRING_set(s, n->host, -1) != 1)
			goto fail;
		GENERAL_NAME_set0_value(g, GEN_DNS, s);
	}
	s = NULL;
	if (forge_san_push(gens, g) == -1) {
		g = NULL;
		goto fail;
	}
	g = NULL;
	if (upstream != NULL)
		up = X509_get_ext_d2i(
		    upstream, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; i < sk_GENERAL_NAME_num(up); i++) {
		GENERAL_NAME *u = sk_GENERAL_NAME_value(up, i);

		if (u->type != GEN_DNS && u->type != GEN_IPADD)
			continue;
		if (forge_san_push(gens, GENERAL_NAME_dup(u)) == -1)
			goto fail;
	}
	GENERAL_NAMES_free(up);
	return gens;
fail:
	ASN1_STRING_free(s);
	GENERAL_NAME_free(g);
	GENERAL_NAMES_free(up);
	GENERAL_NAMES_free(gens);
	return NULL;
}

/*
 * Make and sign one certificate.  Touches only the forge's immutable
 * fields, so it runs without the lock and workers forge in parallel.
 */
static X509 *
forge_make(struct forge *f, const struct forge_name *n, X509 *upstream)
{
	X509 *x = NULL;
	GENERAL_NAMES *sans = NULL;
	char cn[FORGE_CN_MAX + 1];

	if (upstream == NULL || forge_upstream_cn(upstream, cn, sizeof(cn)))
		snprintf(cn, sizeof(cn), "%.64s", n->host); /* FORGE_CN_MAX */
	if ((x = X509_new()) == NULL ||
	    X509_set_version(x, X509_VERSION_3) != 1 || ca_set_serial(x) ||
	    X509_set_issuer_name(x, f->issuer) != 1 ||
	    X509_NAME_add_entry_by_NID(X509_get_subject_name(x), NID_commonName,
		MBSTRING_UTF8, (unsigned char *)cn, -1, -1, 0) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(x), FORGE_DAYS, 0, NULL) ==
		NULL ||
	    X509_set_pubkey(x, f->leafkey) != 1)
		goto fail;
	/* never outlive the CA: verifiers would reject the chain */
	if (ASN1_TIME_compare(f->ca_not_after, X509_get0_notAfter(x)) < 0 &&
	    X509_set1_notAfter(x, f->ca_not_after) != 1)
		goto fail;
	for (int i = 0; i < FORGE_EXT_N; i++)
		if (X509_add_ext(x, f->ext[i], -1) != 1)
			goto fail;
	if ((sans = forge_sans(n, upstream)) == NULL ||
	    X509_add1_ext_i2d(
		x, NID_subject_alt_name, sans, 0, X509V3_ADD_DEFAULT) != 1 ||
	    X509_sign(x, f->cakey, EVP_sha256()) <= 0)
		goto fail;
	GENERAL_NAMES_free(sans);
	return x;
fail:
	GENERAL_NAMES_free(sans);
	X509_free(x);
	return NULL;
}

/*
 * With the lock held: store cert under key (both consumed) unless another
 * thread got there first; either way return the certificate to hand out,
 * with a reference for the caller, so callers asking for one key share one
 * certificate.  *garbage gets what the caller frees after unlocking: an
 * evicted entry, or our certificate when the race was lost.
 */
static X509 *
forge_insert(struct forge *f, char *key, uint64_t hash, X509 *cert,
    struct forge_entry **evicted, X509 **garbage)
{
	struct forge_entry *e = forge_lookup(f, key, hash), *ne;

	*evicted = NULL;
	*garbage = NULL;
	if (e != NULL) {
		forge_lru_unlink(f, e);
		forge_lru_front(f, e);
		X509_up_ref(e->cert);
		free(key);
		*garbage = cert;
		return e->cert;
	}
	if (f->cache_size == 0 || (ne = calloc(1, sizeof(*ne))) == NULL) {
		free(key);
		return cert; /* not cached: the caller's reference is ours */
	}
	ne->key = key;
	ne->hash = hash;
	ne->cert = cert;
	X509_up_ref(cert);
	ne->hnext = f->buckets[hash & (f->nbuckets - 1)];
	f->buckets[hash & (f->nbuckets - 1)] = ne;
	forge_lru_front(f, ne);
	if (++f->entries > f->cache_size)
		*evicted = forge_evict(f);
	return cert;
}

X509 *
forge_get(
    struct forge *f, const char *name, X509 *upstream, char *err, size_t errlen)
{
	struct forge_name n;
	struct forge_entry *e, *evicted;
	char *key;
	uint64_t hash;
	X509 *x, *garbage;

	if (forge_parse_name(name, &n, err, errlen) == -1)
		return NULL;
	if ((key = forge_cache_key(n.host, upstream)) == NULL) {
		forge_sslerr(err, errlen, "forge: upstream fingerprint");
		return NULL;
	}
	hash = forge_hash(key);

	pthread_mutex_lock(&f->lock);
	if ((e = forge_lookup(f, key, hash)) != NULL) {
		forge_lru_unlink(f, e);
		forge_lru_front(f, e);
		f->hits++;
		x = e->cert;
		X509_up_ref(x);
		pthread_mutex_unlock(&f->lock);
		free(key);
		return x;
	}
	f->misses++;
	pthread_mutex_unlock(&f->lock);

	if ((x = forge_make(f, &n, upstream)) == NULL) {
		forge_sslerr(err, errlen, "forge: signing");
		free(key);
		return NULL;
	}

	pthread_mutex_lock(&f->lock);
	x = forge_insert(f, key, hash, x, &evicted, &garbage);
	pthread_mutex_unlock(&f->lock);
	forge_entry_free(evicted);
	X509_free(garbage);
	return x;
}
