/*
 * Unit tests for ca/forge.c: forged certificates verify against the CA with
 * host and IP checks, carry the right profile, copy an upstream's CN and
 * SANs; the cache hits, misses and evicts as an LRU; concurrent callers are
 * race-free and share one certificate per key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sys/stat.h>

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "ca/ca.h"
#include "ca/forge.h"

struct fixture {
	char dir[64];
	struct ca *ca;
	struct forge *forge;
	char err[512];
};

static void
rmtree(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	char sub[512];

	if (d == NULL) {
		unlink(path);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
		rmtree(sub);
	}
	closedir(d);
	rmdir(path);
}

static int
setup_n(void **state, size_t cache_size)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/peephole-forge-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->ca = ca_load_or_create(f->dir, f->err, sizeof(f->err));
	if (f->ca == NULL)
		fail_msg("ca: %s", f->err);
	f->forge = forge_new(f->ca, cache_size, f->err, sizeof(f->err));
	if (f->forge == NULL)
		fail_msg("forge: %s", f->err);
	*state = f;
	return 0;
}

static int
setup(void **state)
{
	return setup_n(state, 64);
}

static int
setup_lru3(void **state)
{
	return setup_n(state, 3);
}

static int
setup_nocache(void **state)
{
	return setup_n(state, 0);
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	forge_free(f->forge);
	ca_free(f->ca);
	rmtree(f->dir);
	free(f);
	return 0;
}

static X509 *
get_ok(struct fixture *f, const char *name, X509 *upstream)
{
	X509 *x;

	f->err[0] = '\0';
	x = forge_get(f->forge, name, upstream, f->err, sizeof(f->err));
	if (x == NULL)
		fail_msg("forge_get %s: %s", name, f->err);
	return x;
}

/*
 * Verify leaf against anchor the way a TLS client does: purpose
 * sslserver, strict X.509 checks, and host (or IP) matching.  Returns the
 * X509_V_* result.
 */
static int
verify(X509 *anchor, X509 *leaf, const char *host, const char *ip)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	X509_VERIFY_PARAM *vp;
	int rc;

	assert_non_null(store);
	assert_non_null(ctx);
	assert_int_equal(X509_STORE_add_cert(store, anchor), 1);
	assert_int_equal(X509_STORE_CTX_init(ctx, store, leaf, NULL), 1);
	vp = X509_STORE_CTX_get0_param(ctx);
	X509_VERIFY_PARAM_set_flags(vp, X509_V_FLAG_X509_STRICT);
	assert_int_equal(
	    X509_VERIFY_PARAM_set_purpose(vp, X509_PURPOSE_SSL_SERVER), 1);
	if (host != NULL)
		assert_int_equal(X509_VERIFY_PARAM_set1_host(vp, host, 0), 1);
	if (ip != NULL)
		assert_int_equal(X509_VERIFY_PARAM_set1_ip_asc(vp, ip), 1);
	rc = X509_verify_cert(ctx) == 1 ? X509_V_OK
					: X509_STORE_CTX_get_error(ctx);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	return rc;
}

/* Add an extension in openssl.cnf syntax to a test certificate. */
static void
add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	X509V3_set_ctx_nodb(&ctx);
	ext = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
	assert_non_null(ext);
	assert_int_equal(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
}

/*
 * A test certificate for key, signed by signkey (issuer NULL: self-signed),
 * valid from now+from to now+to seconds.  cn NULL: no CN; san NULL: none.
 */
static X509 *
mkcert(EVP_PKEY *key, EVP_PKEY *signkey, X509 *issuer, const char *cn,
    const char *san, long from, long to, int ca)
{
	X509 *x = X509_new();
	X509_NAME *n;

	assert_non_null(x);
	assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
	assert_int_equal(ca_set_serial(x), 0);
	n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(
	    n, "O", MBSTRING_UTF8, (const unsigned char *)"test", -1, -1, 0);
	if (cn != NULL)
		/* not MBSTRING_*: that enforces the 64 limit we test */
		assert_int_equal(
		    X509_NAME_add_entry_by_txt(n, "CN", V_ASN1_UTF8STRING,
			(const unsigned char *)cn, -1, -1, 0),
		    1);
	assert_int_equal(
	    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : n),
	    1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), from));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), to));
	assert_int_equal(X509_set_pubkey(x, key), 1);
	add_ext(x, issuer ? issuer : x, NID_basic_constraints,
	    ca ? "critical,CA:TRUE" : "CA:FALSE");
	add_ext(x, issuer ? issuer : x, NID_subject_key_identifier, "hash");
	if (ca)
		add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
	if (san != NULL)
		add_ext(x, issuer, NID_subject_alt_name, san);
	assert_true(X509_sign(x, signkey, EVP_sha256()) > 0);
	return x;
}

static EVP_PKEY *
mkkey(void)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

	assert_non_null(k);
	return k;
}

/* An upstream server certificate from its own throwaway CA. */
static X509 *
mkupstream(const char *cn, const char *san)
{
	EVP_PKEY *cakey = mkkey(), *key = mkkey();
	X509 *ca =
	    mkcert(cakey, cakey, NULL, "upstream CA", NULL, -60, 86400, 1);
	X509 *x = mkcert(key, cakey, ca, cn, san, -60, 86400, 0);

	X509_free(ca);
	EVP_PKEY_free(cakey);
	EVP_PKEY_free(key);
	return x;
}

static void
get_cn(X509 *x, char *buf, int len)
{
	assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(x),
			NID_commonName, buf, len) > 0);
}

static int
san_count(X509 *x)
{
	GENERAL_NAMES *g =
	    X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	int n = sk_GENERAL_NAME_num(g);

	GENERAL_NAMES_free(g);
	return n;
}

static void
test_forge_verifies(void **state)
{
	struct fixture *f = *state;
	X509 *x = get_ok(f, "www.example.test", NULL), *cacert;
	X509 *other;
	BASIC_CONSTRAINTS *bc;
	int crit = -1, i, days, secs;
	char cn[128];

	cacert = ca_cert(f->ca);
	assert_int_equal(
	    verify(cacert, x, "www.example.test", NULL), X509_V_OK);
	assert_int_equal(verify(cacert, x, "other.example.test", NULL),
	    X509_V_ERR_HOSTNAME_MISMATCH);
	assert_int_equal(X509_check_host(x, "www.example.test", 0, 0, NULL), 1);
	assert_int_equal(X509_check_host(x, "example.test", 0, 0, NULL), 0);

	/* another CA does not vouch for it */
	{
		EVP_PKEY *k = mkkey();

		other = mkcert(k, k, NULL, "other CA", NULL, -60, 86400, 1);
		assert_int_not_equal(
		    verify(other, x, "www.example.test", NULL), X509_V_OK);
		X509_free(other);
		EVP_PKEY_free(k);
	}

	get_cn(x, cn, sizeof(cn));
	assert_string_equal(cn, "www.example.test");
	assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(x),
			     X509_get_subject_name(cacert)),
	    0);
	assert_int_equal(
	    EVP_PKEY_eq(X509_get0_pubkey(x), forge_key(f->forge)), 1);
	assert_int_equal(X509_get_version(x), X509_VERSION_3);
	assert_int_equal(X509_get_signature_nid(x), NID_ecdsa_with_SHA256);

	/* EKU serverAuth, KU digitalSignature critical, CA:FALSE */
	assert_true(X509_get_extension_flags(x) & EXFLAG_XKUSAGE);
	assert_int_equal(X509_get_extended_key_usage(x), XKU_SSL_SERVER);
	assert_int_equal(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE);
	i = X509_get_ext_by_NID(x, NID_key_usage, -1);
	assert_true(i >= 0);
	assert_int_equal(X509_EXTENSION_get_critical(X509_get_ext(x, i)), 1);
	bc = X509_get_ext_d2i(x, NID_basic_constraints, &crit, NULL);
	assert_non_null(bc);
	assert_false(bc->ca);
	BASIC_CONSTRAINTS_free(bc);
	assert_int_equal(X509_check_ca(x), 0);

	/* AKI = the CA's SKI; an SKI of its own */
	assert_non_null(X509_get0_subject_key_id(x));
	assert_int_equal(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(x),
			     X509_get0_subject_key_id(cacert)),
	    0);

	/* from an hour ago; at most 397 days ahead, 398 in all */
	assert_int_equal(
	    ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notBefore(x)), 1);
	assert_true(days == 0 && secs <= -3590 && secs >= -3610);
	assert_int_equal(
	    ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(x)), 1);
	assert_true(days == 397 || (days == 396 && secs > 86000));
	assert_true(days < 397 || secs <= 10);
	assert_int_equal(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x),
			     X509_get0_notAfter(x)),
	    1);
	assert_true(days < 398);

	/* 128-bit serial, different each time */
	{
		X509 *y = get_ok(f, "www2.example.test", NULL);

		assert_int_equal(X509_get0_serialNumber(x)->length, 16);
		assert_int_not_equal(ASN1_INTEGER_cmp(X509_get0_serialNumber(x),
					 X509_get0_serialNumber(y)),
		    0);
		X509_free(y);
	}
	X509_free(x);
}

/*
 * A real TLS handshake over an in-memory BIO pair: the server presents the
 * forged certificate and the forge's key, the client trusts only the CA
 * and checks the host name, as a browser behind peephole would.
 */
static int
handshake(struct fixture *f, X509 *leaf, const char *host, long *verify_rc)
{
	SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	SSL *s, *c;
	BIO *sb = NULL, *cb = NULL;
	int sdone = 0, cdone = 0, rc;

	assert_non_null(sctx);
	assert_non_null(cctx);
	assert_int_equal(SSL_CTX_use_certificate(sctx, leaf), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(sctx, forge_key(f->forge)), 1);
	assert_int_equal(SSL_CTX_check_private_key(sctx), 1);
	assert_int_equal(
	    X509_STORE_add_cert(SSL_CTX_get_cert_store(cctx), ca_cert(f->ca)),
	    1);
	SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);
	assert_non_null(s = SSL_new(sctx));
	assert_non_null(c = SSL_new(cctx));
	assert_int_equal(SSL_set_tlsext_host_name(c, host), 1);
	assert_int_equal(SSL_set1_host(c, host), 1);
	assert_int_equal(BIO_new_bio_pair(&sb, 0, &cb, 0), 1);
	SSL_set_bio(s, sb, sb);
	SSL_set_bio(c, cb, cb);
	SSL_set_accept_state(s);
	SSL_set_connect_state(c);
	for (int i = 0; i < 20 && !(sdone && cdone); i++) {
		if (!cdone) {
			rc = SSL_do_handshake(c);
			if (rc == 1)
				cdone = 1;
			else if (SSL_get_error(c, rc) != SSL_ERROR_WANT_READ)
				break;
		}
		if (!sdone) {
			rc = SSL_do_handshake(s);
			if (rc == 1)
				sdone = 1;
			else if (SSL_get_error(s, rc) != SSL_ERROR_WANT_READ)
				break;
		}
	}
	*verify_rc = SSL_get_verify_result(c);
	ERR_clear_error();
	SSL_free(s);
	SSL_free(c);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	return cdone && sdone ? 0 : -1;
}

static void
test_forge_tls_handshake(void **state)
{
	struct fixture *f = *state;
	X509 *x = get_ok(f, "www.example.test", NULL);
	long vr;

	assert_int_equal(handshake(f, x, "www.example.test", &vr), 0);
	assert_int_equal(vr, X509_V_OK);
	assert_int_equal(handshake(f, x, "evil.test", &vr), -1);
	assert_int_equal(vr, X509_V_ERR_HOSTNAME_MISMATCH);
	X509_free(x);
}

static void
test_forge_ip(void **state)
{
	struct fixture *f = *state;
	X509 *x = get_ok(f, "127.0.0.1", NULL);

	assert_int_equal(X509_check_ip_asc(x, "127.0.0.1", 0), 1);
	assert_int_equal(X509_check_ip_asc(x, "127.0.0.2", 0), 0);
	assert_int_equal(
	    verify(ca_cert(f->ca), x, NULL, "127.0.0.1"), X509_V_OK);
	assert_int_equal(verify(ca_cert(f->ca), x, NULL, "10.0.0.1"),
	    X509_V_ERR_IP_ADDRESS_MISMATCH);
	/* an IP SAN, not a DNS name spelling the address */
	assert_int_equal(san_count(x), 1);
	{
		GENERAL_NAMES *g =
		    X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);

		assert_int_equal(sk_GENERAL_NAME_value(g, 0)->type, GEN_IPADD);
		GENERAL_NAMES_free(g);
	}
	X509_free(x);

	/* IPv6, bracketed as in a CONNECT line or not */
	x = get_ok(f, "[2001:db8::1]", NULL);
	assert_int_equal(X509_check_ip_asc(x, "2001:db8::1", 0), 1);
	assert_int_equal(
	    verify(ca_cert(f->ca), x, NULL, "2001:db8::1"), X509_V_OK);
	X509_free(x);
	x = get_ok(f, "::1", NULL);
	assert_int_equal(X509_check_ip_asc(x, "::1", 0), 1);
	X509_free(x);
}

static void
test_forge_upstream(void **state)
{
	struct fixture *f = *state;
	X509 *up =
	    mkupstream("up.test", "DNS:up.test,DNS:*.up.test,IP:127.0.0.1");
	X509 *x;
	char cn[128];

	/* a name under the wildcard: CN copied, 3 SANs + the name */
	x = get_ok(f, "a.up.test", up);
	get_cn(x, cn, sizeof(cn));
	assert_string_equal(cn, "up.test");
	assert_int_equal(san_count(x), 4);
	assert_int_equal(X509_check_host(x, "up.test", 0, 0, NULL), 1);
	assert_int_equal(X509_check_host(x, "a.up.test", 0, 0, NULL), 1);
	assert_int_equal(X509_check_host(x, "b.up.test", 0, 0, NULL), 1);
	assert_int_equal(X509_check_ip_asc(x, "127.0.0.1", 0), 1);
	assert_int_equal(
	    verify(ca_cert(f->ca), x, "b.up.test", NULL), X509_V_OK);
	assert_int_equal(
	    verify(ca_cert(f->ca), x, NULL, "127.0.0.1"), X509_V_OK);
	X509_free(x);

	/* the name is among upstream's SANs already: no duplicate */
	x = get_ok(f, "UP.test", up);
	assert_int_equal(san_count(x), 3);
	X509_free(x);
	x = get_ok(f, "127.0.0.1", up);
	assert_int_equal(san_count(x), 3);
	X509_free(x);
	X509_free(up);

	/* a CN longer than 64 is cut to 64 */
	{
		char longcn[81];

		memset(longcn, 'a', 80);
		longcn[80] = '\0';
		up = mkupstream(longcn, "DNS:long.test");
		x = get_ok(f, "long.test", up);
		get_cn(x, cn, sizeof(cn));
		assert_int_equal(strlen(cn), 64);
		assert_memory_equal(cn, longcn, 64);
		assert_int_equal(
		    verify(ca_cert(f->ca), x, "long.test", NULL), X509_V_OK);
		X509_free(x);
		X509_free(up);
	}

	/* no CN upstream: the name is the CN */
	up = mkupstream(NULL, "DNS:nocn.test");
	x = get_ok(f, "nocn.test", up);
	get_cn(x, cn, sizeof(cn));
	assert_string_equal(cn, "nocn.test");
	X509_free(x);
	X509_free(up);
}

static void
test_forge_long_name(void **state)
{
	struct fixture *f = *state;
	char name[300], cn[128];
	X509 *x;

	/* 4 labels of 62 + dots = 251 bytes, a legal DNS name */
	memset(name, 'b', 251);
	name[62] = name[125] = name[188] = '.';
	name[251] = '\0';
	x = get_ok(f, name, NULL);
	get_cn(x, cn, sizeof(cn));
	assert_int_equal(strlen(cn), 64);
	assert_int_equal(verify(ca_cert(f->ca), x, name, NULL), X509_V_OK);
	X509_free(x);

	memset(name, 'c', 254);
	name[254] = '\0';
	assert_null(forge_get(f->forge, name, NULL, f->err, sizeof(f->err)));
	assert_non_null(strstr(f->err, "bad name"));
}

static void
test_forge_bad_names(void **state)
{
	struct fixture *f = *state;
	static const char *bad[] = {"", "[]", "a b", "a/b", "x\ty", "\xc3\xa9"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		f->err[0] = '\0';
		assert_null(
		    forge_get(f->forge, bad[i], NULL, f->err, sizeof(f->err)));
		assert_true(f->err[0] != '\0');
	}
	assert_null(forge_get(f->forge, NULL, NULL, f->err, sizeof(f->err)));
}

static void
test_forge_cache(void **state)
{
	struct fixture *f = *state;
	X509 *a, *b, *c, *up1, *up2, *d, *e, *g;
	unsigned long hits, misses;
	size_t entries;

	a = get_ok(f, "www.example.test", NULL);
	b = get_ok(f, "www.example.test", NULL);
	assert_ptr_equal(a, b);
	c = get_ok(f, "WWW.Example.TEST", NULL); /* names are case-blind */
	assert_ptr_equal(a, c);
	forge_stats(f->forge, &hits, &misses, &entries);
	assert_int_equal(hits, 2);
	assert_int_equal(misses, 1);
	assert_int_equal(entries, 1);

	/* same name, different upstream fingerprints: different entries */
	up1 = mkupstream("www.example.test", "DNS:www.example.test");
	up2 = mkupstream("www.example.test", "DNS:www.example.test");
	d = get_ok(f, "www.example.test", up1);
	e = get_ok(f, "www.example.test", up2);
	g = get_ok(f, "www.example.test", up1);
	assert_ptr_not_equal(d, a);
	assert_ptr_not_equal(d, e);
	assert_ptr_equal(d, g);
	forge_stats(f->forge, &hits, &misses, &entries);
	assert_int_equal(hits, 3);
	assert_int_equal(misses, 3);
	assert_int_equal(entries, 3);

	/* the references handed out outlive the forge */
	forge_free(f->forge);
	f->forge = NULL;
	assert_int_equal(
	    verify(ca_cert(f->ca), a, "www.example.test", NULL), X509_V_OK);
	X509_free(a);
	X509_free(b);
	X509_free(c);
	X509_free(d);
	X509_free(e);
	X509_free(g);
	X509_free(up1);
	X509_free(up2);
}

static void
test_forge_lru(void **state)
{
	struct fixture *f = *state; /* cache_size 3 */
	X509 *a, *b, *c, *d, *x;
	unsigned long hits, misses;
	size_t entries;

	a = get_ok(f, "a.test", NULL);
	b = get_ok(f, "b.test", NULL);
	c = get_ok(f, "c.test", NULL);
	x = get_ok(f, "a.test", NULL); /* a becomes the most recent */
	assert_ptr_equal(x, a);
	X509_free(x);
	d = get_ok(f, "d.test", NULL); /* evicts b, the least recent */
	forge_stats(f->forge, &hits, &misses, &entries);
	assert_int_equal(entries, 3);
	assert_int_equal(hits, 1);
	assert_int_equal(misses, 4);

	x = get_ok(f, "a.test", NULL);
	assert_ptr_equal(x, a);
	X509_free(x);
	x = get_ok(f, "c.test", NULL);
	assert_ptr_equal(x, c);
	X509_free(x);
	x = get_ok(f, "b.test", NULL); /* forged again: a new certificate */
	assert_ptr_not_equal(x, b);
	assert_int_not_equal(ASN1_INTEGER_cmp(X509_get0_serialNumber(x),
				 X509_get0_serialNumber(b)),
	    0);
	X509_free(x);
	forge_stats(f->forge, &hits, &misses, &entries);
	assert_int_equal(hits, 3);
	assert_int_equal(misses, 5);
	assert_int_equal(entries, 3);
	/* b's return evicted d (least recent after a, c were used) */
	x = get_ok(f, "d.test", NULL);
	assert_ptr_not_equal(x, d);
	X509_free(x);

	X509_free(a);
	X509_free(b);
	X509_free(c);
	X509_free(d);
}

static void
test_forge_nocache(void **state)
{
	struct fixture *f = *state; /* cache_size 0 */
	X509 *a = get_ok(f, "a.test", NULL), *b = get_ok(f, "a.test", NULL);
	unsigned long hits, misses;
	size_t entries;

	assert_ptr_not_equal(a, b);
	assert_int_equal(verify(ca_cert(f->ca), b, "a.test", NULL), X509_V_OK);
	forge_stats(f->forge, &hits, &misses, &entries);
	assert_int_equal(hits, 0);
	assert_int_equal(misses, 2);
	assert_int_equal(entries, 0);
	X509_free(a);
	X509_free(b);
}

/* Write a CA (cert + key) into dir as ca_load_or_create expects it. */
static void
write_ca(const char *dir, X509 *cert, EVP_PKEY *key)
{
	char path[160];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/ca.pem", dir);
	assert_non_null(fp = fopen(path, "w"));
	assert_int_equal(PEM_write_X509(fp, cert), 1);
	fclose(fp);
	snprintf(path, sizeof(path), "%s/ca.key", dir);
	assert_non_null(fp = fopen(path, "w"));
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(
	    PEM_write_PrivateKey(fp, key, NULL, NULL, 0, NULL, NULL), 1);
	fclose(fp);
}

/*
 * A CA made elsewhere that expires in 30 days: leaves must not outlive
 * it.  Its SKI is not our hash, so AKI must be copied, not recomputed.
 */
static void
test_forge_short_ca(void **state)
{
	struct fixture *f = *state;
	char dir[128];
	EVP_PKEY *k = mkkey();
	X509 *cacert = mkcert(k, k, NULL, "short CA", NULL, -60, 30 * 86400, 1);
	struct ca *ca;
	struct forge *fg;
	X509 *x;

	snprintf(dir, sizeof(dir), "%s/short", f->dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	write_ca(dir, cacert, k);
	ca = ca_load_or_create(dir, f->err, sizeof(f->err));
	assert_non_null(ca);
	fg = forge_new(ca, 4, f->err, sizeof(f->err));
	assert_non_null(fg);
	x = forge_get(fg, "s.test", NULL, f->err, sizeof(f->err));
	assert_non_null(x);
	assert_int_equal(ASN1_TIME_compare(
			     X509_get0_notAfter(x), X509_get0_notAfter(cacert)),
	    0);
	assert_int_equal(verify(cacert, x, "s.test", NULL), X509_V_OK);
	X509_free(x);
	forge_free(fg);
	ca_free(ca);
	X509_free(cacert);

	/* and an expired CA is refused at load, with what to do */
	cacert = mkcert(k, k, NULL, "old CA", NULL, -86400, -60, 1);
	write_ca(dir, cacert, k);
	assert_null(ca_load_or_create(dir, f->err, sizeof(f->err)));
	assert_non_null(strstr(f->err, "expired"));
	X509_free(cacert);

	/* a leaf is not a CA */
	cacert = mkcert(k, k, NULL, "leaf", NULL, -60, 86400, 0);
	write_ca(dir, cacert, k);
	assert_null(ca_load_or_create(dir, f->err, sizeof(f->err)));
	assert_non_null(strstr(f->err, "not a CA"));
	X509_free(cacert);
	EVP_PKEY_free(k);
}

/* Concurrency: threads record, the main thread asserts. */
#define NTHREADS 4
#define NCALLS 60

struct worker {
	struct forge *forge;
	pthread_barrier_t *barrier;
	int id;
	int failures;
	int wrong_cn;
	X509 *same; /* result of the simultaneous "same.test" call */
};

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	char name[64], cn[128], err[256];
	X509 *x;

	pthread_barrier_wait(w->barrier);
	w->same = forge_get(w->forge, "same.test", NULL, err, sizeof(err));
	for (int i = 0; i < NCALLS; i++) {
		/* half shared names (5), half this thread's own (7) */
		if (i % 2 == 0)
			snprintf(name, sizeof(name), "s%d.test", i % 10);
		else
			snprintf(
			    name, sizeof(name), "t%d-%d.test", w->id, i % 7);
		x = forge_get(w->forge, name, NULL, err, sizeof(err));
		if (x == NULL) {
			w->failures++;
			continue;
		}
		if (X509_NAME_get_text_by_NID(X509_get_subject_name(x),
			NID_commonName, cn, sizeof(cn)) <= 0 ||
		    strcmp(cn, name) != 0)
			w->wrong_cn++;
		X509_free(x);
	}
	return NULL;
}

static void
run_threads(struct fixture *f, size_t cache_size)
{
	struct forge *fg = forge_new(f->ca, cache_size, f->err, sizeof(f->err));
	pthread_t th[NTHREADS];
	struct worker w[NTHREADS];
	pthread_barrier_t barrier;
	unsigned long hits, misses;
	size_t entries;

	assert_non_null(fg);
	assert_int_equal(pthread_barrier_init(&barrier, NULL, NTHREADS), 0);
	for (int i = 0; i < NTHREADS; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].forge = fg;
		w[i].barrier = &barrier;
		w[i].id = i;
		assert_int_equal(
		    pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
	}
	for (int i = 0; i < NTHREADS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	pthread_barrier_destroy(&barrier);

	for (int i = 0; i < NTHREADS; i++) {
		assert_int_equal(w[i].failures, 0);
		assert_int_equal(w[i].wrong_cn, 0);
		assert_non_null(w[i].same);
		/*
		 * A lost insert race hands out the winner's certificate
		 * (with a small cache the winner may be evicted first).
		 */
		if (cache_size >= 64)
			assert_ptr_equal(w[i].same, w[0].same);
	}
	forge_stats(fg, &hits, &misses, &entries);
	assert_int_equal(hits + misses, NTHREADS * (NCALLS + 1));
	assert_true(entries <= cache_size);
	if (cache_size >= 64) {
		/* same.test + 5 shared + 7 per thread, all kept */
		assert_int_equal(entries, 1 + 5 + 7 * NTHREADS);
		assert_true(misses >= entries);
	}
	for (int i = 0; i < NTHREADS; i++)
		X509_free(w[i].same);
	forge_free(fg);
}

static void
test_forge_threads(void **state)
{
	struct fixture *f = *state;

	run_threads(f, 64); /* all fit: hits and the insert race */
	run_threads(f, 5);  /* constant eviction under contention */
	run_threads(f, 0);  /* no cache */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		test_forge_verifies, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_forge_tls_handshake, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_forge_ip, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_forge_upstream, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_forge_long_name, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_forge_bad_names, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_forge_cache, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_forge_lru, setup_lru3, teardown),
	    cmocka_unit_test_setup_teardown(
		test_forge_nocache, setup_nocache, teardown),
	    cmocka_unit_test_setup_teardown(
		test_forge_short_ca, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_forge_threads, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
