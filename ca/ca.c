/* ca: see ca.h. */
#include "ca/ca.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/buffer.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#define CA_CERT_FILE "ca.pem"
#define CA_KEY_FILE "ca.key"
#define CA_FRIENDLY_NAME "peephole CA"
#define CA_VALID_DAYS 3652 /* ten years, leap days included */
#define CA_CN_MAX 64       /* ub-common-name, RFC 5280 */

struct ca {
	X509 *cert;
	EVP_PKEY *key;
	char *path;  /* the certificate's file */
	int created; /* made by this ca_load_or_create */
};

/* Paths of the two files in dir; the caller's buffers are PATH_MAX-ish. */
struct ca_paths {
	char cert[4096];
	char key[4096];
};

/*
 * Drain the OpenSSL error queue into one line: "what: reason".  The
 * earliest error is the root cause; the later ones only say who called.
 */
static void
ca_sslerr(char *err, size_t errlen, const char *what)
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

/* A CA file OpenSSL could not read: its reason in words, and what to do. */
static void
ca_unreadable(char *err, size_t errlen, const char *path)
{
	unsigned long e = ERR_peek_last_error();
	const char *why = e != 0 ? ERR_reason_error_string(e) : NULL;

	snprintf(err, errlen,
	    "%s: cannot read it (%s): the file is damaged or not PEM; move it "
	    "away and run `peephole ca init --force` for a new CA, which "
	    "clients must then trust again",
	    path, why != NULL ? why : "unknown error");
	ERR_clear_error();
}

static int
ca_paths(const char *dir, struct ca_paths *p, char *err, size_t errlen)
{
	int n, m;

	n = snprintf(p->cert, sizeof(p->cert), "%s/%s", dir, CA_CERT_FILE);
	m = snprintf(p->key, sizeof(p->key), "%s/%s", dir, CA_KEY_FILE);
	if (n < 0 || m < 0 || (size_t)n >= sizeof(p->cert) ||
	    (size_t)m >= sizeof(p->key)) {
		snprintf(err, errlen, "CA directory name too long: %s", dir);
		return -1;
	}
	return 0;
}

/*
 * mkdir -p dir, each new component 0700: the CA key lives there, and a
 * directory others can write to would let them swap the key.  An existing
 * directory is left as it is.
 */
static int
ca_mkdir(const char *dir, char *err, size_t errlen)
{
	char path[4096];
	struct stat st;
	size_t len = strlen(dir);

	if (len == 0 || len >= sizeof(path)) {
		snprintf(err, errlen, "bad CA directory name: '%s'", dir);
		return -1;
	}
	memcpy(path, dir, len + 1);
	for (char *p = path + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0700) == -1 && errno != EEXIST) {
			snprintf(
			    err, errlen, "mkdir %s: %s", path, strerror(errno));
			return -1;
		}
		*p = '/';
	}
	if (mkdir(path, 0700) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "mkdir %s: %s", path, strerror(errno));
		return -1;
	}
	if (stat(path, &st) == -1 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: not a directory", path);
		return -1;
	}
	return 0;
}

ASN1_OCTET_STRING *
ca_key_id(EVP_PKEY *pkey)
{
	X509_PUBKEY *xpk = NULL;
	ASN1_OCTET_STRING *id = NULL;
	const unsigned char *bits;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int bitslen;

	if (X509_PUBKEY_set(&xpk, pkey) != 1 ||
	    X509_PUBKEY_get0_param(NULL, &bits, &bitslen, NULL, xpk) != 1 ||
	    EVP_Digest(bits, (size_t)bitslen, md, &mdlen, EVP_sha1(), NULL) !=
		1)
		goto fail;
	if ((id = ASN1_OCTET_STRING_new()) == NULL ||
	    ASN1_OCTET_STRING_set(id, md, (int)mdlen) != 1)
		goto fail;
	X509_PUBKEY_free(xpk);
	return id;
fail:
	ASN1_OCTET_STRING_free(id);
	X509_PUBKEY_free(xpk);
	return NULL;
}

int
ca_set_serial(X509 *x)
{
	unsigned char buf[16];
	BIGNUM *bn = NULL;
	ASN1_INTEGER *ai = NULL;
	int rc = -1;

	if (RAND_bytes(buf, sizeof(buf)) != 1)
		return -1;
	/*
	 * Top bit clear keeps the DER INTEGER positive in 16 octets; the
	 * next bit set keeps it non-zero and of constant length.
	 */
	buf[0] = (unsigned char)((buf[0] & 0x7f) | 0x40);
	if ((bn = BN_bin2bn(buf, sizeof(buf), NULL)) == NULL ||
	    (ai = BN_to_ASN1_INTEGER(bn, NULL)) == NULL ||
	    X509_set_serialNumber(x, ai) != 1)
		goto fail;
	rc = 0;
fail:
	ASN1_INTEGER_free(ai);
	BN_free(bn);
	return rc;
}

/* Add one extension given in openssl.cnf syntax ("critical,CA:TRUE"). */
static int
ca_add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext;
	int rc;

	ext = X509V3_EXT_nconf_nid(NULL, ctx, nid, value);
	if (ext == NULL)
		return -1;
	rc = X509_add_ext(x, ext, -1) == 1 ? 0 : -1;
	X509_EXTENSION_free(ext);
	return rc;
}

/*
 * "peephole CA <id> <host> <date>", id six random hex digits: two installs
 * never share a name (not even two on one host the same day), so a user
 * who trusted an old CA can tell it from the new one in a trust store.
 */
static int
ca_subject(X509_NAME *name)
{
	char host[256], day[16], cn[CA_CN_MAX + 1];
	unsigned char rnd[3];
	struct tm tm;
	time_t now = time(NULL);

	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return -1;

	if (gethostname(host, sizeof(host)) == -1 || host[0] == '\0')
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	if (gmtime_r(&now, &tm) == NULL ||
	    strftime(day, sizeof(day), "%Y-%m-%d", &tm) == 0)
		return -1;
	/* "peephole CA " + id + " " + host + " " + day, host cut to fit 64 */
	snprintf(cn, sizeof(cn), "peephole CA %02x%02x%02x %.*s %s", rnd[0],
	    rnd[1], rnd[2], (int)(CA_CN_MAX - 20 - strlen(day)), host, day);
	if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
		(const unsigned char *)cn, -1, -1, 0) != 1 ||
	    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
		(const unsigned char *)"peephole", -1, -1, 0) != 1)
		return -1;
	return 0;
}

/* Generate a P-256 key and a self-signed CA certificate for it. */
static int
ca_generate(X509 **certp, EVP_PKEY **keyp, char *err, size_t errlen)
{
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	ASN1_OCTET_STRING *id = NULL;
	AUTHORITY_KEYID *akid = NULL;
	X509V3_CTX ctx;

	if ((key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) == NULL) {
		ca_sslerr(err, errlen, "CA key generation");
		goto fail;
	}
	if ((x = X509_new()) == NULL ||
	    X509_set_version(x, X509_VERSION_3) != 1 || ca_set_serial(x) ||
	    ca_subject(X509_get_subject_name(x)) == -1 ||
	    X509_set_issuer_name(x, X509_get_subject_name(x)) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(x), CA_VALID_DAYS, 0, NULL) ==
		NULL ||
	    X509_set_pubkey(x, key) != 1)
		goto sslfail;

	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	if (ca_add_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE") ||
	    ca_add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign"))
		goto sslfail;
	/* SKI, and the same id as AKI as `openssl req -x509` does */
	if ((id = ca_key_id(key)) == NULL ||
	    X509_add1_ext_i2d(x, NID_subject_key_identifier, id, 0,
		X509V3_ADD_DEFAULT) != 1 ||
	    (akid = AUTHORITY_KEYID_new()) == NULL)
		goto sslfail;
	akid->keyid = id;
	id = NULL;
	if (X509_add1_ext_i2d(x, NID_authority_key_identifier, akid, 0,
		X509V3_ADD_DEFAULT) != 1 ||
	    X509_sign(x, key, EVP_sha256()) <= 0)
		goto sslfail;
	AUTHORITY_KEYID_free(akid);
	*certp = x;
	*keyp = key;
	return 0;
sslfail:
	ca_sslerr(err, errlen, "CA certificate");
fail:
	AUTHORITY_KEYID_free(akid);
	ASN1_OCTET_STRING_free(id);
	X509_free(x);
	EVP_PKEY_free(key);
	return -1;
}

/*
 * Write data to a new temporary file next to path (O_CREAT|O_EXCL, 0600
 * via mkstemp), chmod it to mode, fsync it.  The caller renames tmp over
 * path, so a crash never leaves a half-written key or certificate.
 */
static int
ca_write_tmp(const char *path, const char *data, size_t len, mode_t mode,
    char *tmp, size_t tmplen, char *err, size_t errlen)
{
	int fd = -1;
	size_t off = 0;

	if ((size_t)snprintf(tmp, tmplen, "%s.tmp-XXXXXX", path) >= tmplen) {
		snprintf(err, errlen, "path too long: %s", path);
		tmp[0] = '\0';
		return -1;
	}
	if ((fd = mkstemp(tmp)) == -1) {
		snprintf(err, errlen, "create %s: %s", tmp, strerror(errno));
		tmp[0] = '\0';
		return -1;
	}
	if (mode != 0600 && fchmod(fd, mode) == -1)
		goto fail;
	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			goto fail;
		off += (size_t)n;
	}
	if (fsync(fd) == -1)
		goto fail;
	if (close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	return 0;
fail:
	snprintf(err, errlen, "write %s: %s", tmp, strerror(errno));
	if (fd != -1)
		close(fd);
	unlink(tmp);
	tmp[0] = '\0';
	return -1;
}

/* Serialise the CA: key as PKCS#8 PEM, certificate as PEM. */
static int
ca_pem(X509 *cert, EVP_PKEY *key, BIO **certbio, BIO **keybio)
{
	*certbio = BIO_new(BIO_s_mem());
	*keybio = BIO_new(BIO_s_mem());
	if (*certbio == NULL || *keybio == NULL ||
	    PEM_write_bio_X509(*certbio, cert) != 1 ||
	    /* PKCS#8 "BEGIN PRIVATE KEY", unencrypted: mode 0600 guards it */
	    PEM_write_bio_PKCS8PrivateKey(
		*keybio, key, NULL, NULL, 0, NULL, NULL) != 1)
		return -1;
	return 0;
}

/* fsync directory dir so the names just given in it last; best effort. */
static void
ca_sync_dir(const char *dir)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);

	if (dfd != -1) {
		(void)fsync(dfd);
		close(dfd);
	}
}

int
ca_create(const char *dir, int force, char *err, size_t errlen)
{
	struct ca_paths p;
	struct stat st;
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	BIO *cb = NULL, *kb = NULL;
	char ctmp[4200] = "", ktmp[4200] = "";
	char *cdata, *kdata;
	long clen, klen;
	int rc = -1;

	if (ca_mkdir(dir, err, errlen) == -1 ||
	    ca_paths(dir, &p, err, errlen) == -1)
		return -1;
	if (!force && (lstat(p.cert, &st) == 0 || lstat(p.key, &st) == 0)) {
		snprintf(err, errlen,
		    "a CA already exists in %s; force replaces it", dir);
		return -1;
	}
	if (ca_generate(&cert, &key, err, errlen) == -1)
		goto fail;
	if (ca_pem(cert, key, &cb, &kb) == -1) {
		ca_sslerr(err, errlen, "CA encoding");
		goto fail;
	}
	clen = BIO_get_mem_data(cb, &cdata);
	klen = BIO_get_mem_data(kb, &kdata);
	if (ca_write_tmp(p.key, kdata, (size_t)klen, 0600, ktmp, sizeof(ktmp),
		err, errlen) == -1 ||
	    ca_write_tmp(p.cert, cdata, (size_t)clen, 0644, ctmp, sizeof(ctmp),
		err, errlen) == -1)
		goto fail;
	/* both files are complete on disk before either takes its name */
	if (rename(ktmp, p.key) == -1) {
		snprintf(err, errlen, "rename %s: %s", p.key, strerror(errno));
		goto fail;
	}
	ktmp[0] = '\0';
	if (rename(ctmp, p.cert) == -1) {
		snprintf(err, errlen, "rename %s: %s", p.cert, strerror(errno));
		goto fail;
	}
	ctmp[0] = '\0';
	ca_sync_dir(dir); /* make the renames durable too */
	rc = 0;
fail:
	if (ktmp[0] != '\0')
		unlink(ktmp);
	if (ctmp[0] != '\0')
		unlink(ctmp);
	BIO_free(cb);
	BIO_free(kb);
	X509_free(cert);
	EVP_PKEY_free(key);
	return rc;
}

/* Never prompt on a terminal for a passphrase: the key must be plain. */
static int
ca_nopass_cb(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/*
 * Read and check the key: it must be readable and writable by its owner
 * only, checked on the opened descriptor so the file cannot be swapped
 * between check and read.
 */
static EVP_PKEY *
ca_read_key(const char *path, char *err, size_t errlen)
{
	FILE *fp;
	struct stat st;
	EVP_PKEY *key;

	if ((fp = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fileno(fp), &st) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		fclose(fp);
		return NULL;
	}
	if ((st.st_mode & 077) != 0) {
		snprintf(err, errlen,
		    "%s: mode %04o lets group or others at the CA key; "
		    "run chmod 600 %s",
		    path, (unsigned)(st.st_mode & 07777), path);
		fclose(fp);
		return NULL;
	}
	key = PEM_read_PrivateKey(fp, NULL, ca_nopass_cb, NULL);
	fclose(fp);
	if (key == NULL)
		ca_unreadable(err, errlen, path);
	return key;
}

static struct ca *
ca_load(const struct ca_paths *p, const char *dir, char *err, size_t errlen)
{
	struct ca *ca = NULL;
	FILE *fp = NULL;

	if ((ca = calloc(1, sizeof(*ca))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if ((ca->key = ca_read_key(p->key, err, errlen)) == NULL)
		goto fail;
	if ((fp = fopen(p->cert, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", p->cert, strerror(errno));
		goto fail;
	}
	ca->cert = PEM_read_X509(fp, NULL, NULL, NULL);
	fclose(fp);
	if (ca->cert == NULL) {
		ca_unreadable(err, errlen, p->cert);
		goto fail;
	}
	if (X509_check_private_key(ca->cert, ca->key) != 1) {
		ERR_clear_error();
		snprintf(
		    err, errlen, "%s and %s do not match", p->cert, p->key);
		goto fail;
	}
	/*
	 * X509_check_ca also fills the certificate's extension cache now,
	 * while one thread owns it, instead of lazily under worker threads.
	 */
	if (X509_check_ca(ca->cert) != 1) {
		snprintf(err, errlen, "%s is not a CA certificate", p->cert);
		goto fail;
	}
	if (X509_cmp_current_time(X509_get0_notAfter(ca->cert)) < 0) {
		snprintf(err, errlen,
		    "the CA in %s has expired; remove %s and %s to create a "
		    "new one (and trust it again)",
		    dir, CA_CERT_FILE, CA_KEY_FILE);
		goto fail;
	}
	if ((ca->path = strdup(p->cert)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	return ca;
fail:
	ca_free(ca);
	return NULL;
}

struct ca *
ca_load_or_create(const char *dir, char *err, size_t errlen)
{
	struct ca_paths p;
	struct stat st;
	struct ca *ca;
	int have_cert, have_key;

	if (ca_mkdir(dir, err, errlen) == -1 ||
	    ca_paths(dir, &p, err, errlen) == -1)
		return NULL;
	have_cert = lstat(p.cert, &st) == 0;
	have_key = lstat(p.key, &st) == 0;
	if (have_cert != have_key) {
		snprintf(err, errlen,
		    "%s has %s but not %s: restore it, or remove %s to "
		    "create a new CA",
		    dir, have_cert ? CA_CERT_FILE : CA_KEY_FILE,
		    have_cert ? CA_KEY_FILE : CA_CERT_FILE,
		    have_cert ? CA_CERT_FILE : CA_KEY_FILE);
		return NULL;
	}
	if (!have_cert && ca_create(dir, 0, err, errlen) == -1)
		return NULL;
	if ((ca = ca_load(&p, dir, err, errlen)) != NULL)
		ca->created = !have_cert;
	return ca;
}

const char *
ca_cert_path(const struct ca *ca)
{
	return ca->path;
}

int
ca_created(const struct ca *ca)
{
	return ca->created;
}

int
ca_fingerprint(const struct ca *ca, char *buf, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	if (len < 1 || X509_digest(ca->cert, EVP_sha256(), md, &n) != 1 ||
	    len < (size_t)n * 3)
		return -1;
	for (unsigned int i = 0; i < n; i++)
		snprintf(buf + 3 * i, 4, "%02X%s", md[i], i + 1 < n ? ":" : "");
	return 0;
}

void
ca_free(struct ca *ca)
{
	if (ca == NULL)
		return;
	X509_free(ca->cert);
	EVP_PKEY_free(ca->key);
	free(ca->path);
	free(ca);
}

X509 *
ca_cert(const struct ca *ca)
{
	return ca->cert;
}

EVP_PKEY *
ca_key(const struct ca *ca)
{
	return ca->key;
}

int
ca_home(char *buf, size_t len)
{
	const char *env = getenv("PEEPHOLE_HOME");
	int n;

	if (env != NULL && env[0] != '\0')
		n = snprintf(buf, len, "%s", env);
	else if ((env = getenv("HOME")) != NULL && env[0] != '\0')
		n = snprintf(buf, len, "%s/.peephole", env);
	else
		return -1;
	if (n < 0 || (size_t)n >= len)
		return -1;
	return 0;
}

/*
 * PKCS#12 holding the certificate only.  The certificate bag is left
 * unencrypted (nid_cert -1) and the MAC is HMAC-SHA1: OpenSSL 3's defaults
 * (AES/PBKDF2 bags, SHA-256 MAC) are what older macOS, iOS and Android
 * importers reject, and the content is a public certificate anyway.  The
 * MAC over the empty password stays, as importers expect one.
 */
static int
ca_write_p12(BIO *b, X509 *cert)
{
	PKCS12 *p12;
	int rc = -1;

	p12 = PKCS12_create(
	    "", CA_FRIENDLY_NAME, NULL, cert, NULL, 0, -1, 0, -1, 0);
	if (p12 == NULL)
		return -1;
	if (PKCS12_set_mac(
		p12, "", -1, NULL, 0, PKCS12_DEFAULT_ITER, EVP_sha1()) == 1 &&
	    i2d_PKCS12_bio(b, p12) == 1)
		rc = 0;
	PKCS12_free(p12);
	return rc;
}

/*
 * The one place that encodes the certificate: ca_export and the proxy's
 * onboarding page both come through here, so a file and a download carry
 * the same bytes (up to PKCS#12's random MAC salt).
 */
int
ca_export_mem(const struct ca *ca, const char *fmt, unsigned char **out,
    size_t *outlen, char *err, size_t errlen)
{
	BIO *b = NULL;
	BUF_MEM *bm = NULL;
	unsigned char *buf = NULL;
	int rc = -1, ok;

	*out = NULL;
	*outlen = 0;
	if (fmt == NULL ||
	    (strcmp(fmt, "pem") != 0 && strcmp(fmt, "der") != 0 &&
		strcmp(fmt, "p12") != 0)) {
		snprintf(err, errlen, "unknown format '%s': pem, der or p12",
		    fmt ? fmt : "");
		return -1;
	}
	if ((b = BIO_new(BIO_s_mem())) == NULL) {
		ca_sslerr(err, errlen, "export");
		goto fail;
	}
	if (strcmp(fmt, "pem") == 0)
		ok = PEM_write_bio_X509(b, ca->cert) == 1;
	else if (strcmp(fmt, "der") == 0)
		ok = i2d_X509_bio(b, ca->cert) == 1;
	else
		ok = ca_write_p12(b, ca->cert) == 0;
	if (!ok || BIO_get_mem_ptr(b, &bm) != 1 || bm == NULL ||
	    bm->length == 0) {
		ca_sslerr(err, errlen, "export");
		goto fail;
	}
	if ((buf = malloc(bm->length)) == NULL) {
		snprintf(err, errlen, "export: %s", strerror(ENOMEM));
		goto fail;
	}
	memcpy(buf, bm->data, bm->length);
	*out = buf;
	*outlen = bm->length;
	rc = 0;
fail:
	BIO_free(b);
	return rc;
}

int
ca_export(const struct ca *ca, const char *fmt, const char *out, char *err,
    size_t errlen)
{
	unsigned char *buf = NULL;
	size_t len;
	FILE *fp = NULL;
	int rc = -1;

	if (ca_export_mem(ca, fmt, &buf, &len, err, errlen) == -1)
		return -1;
	fp = out == NULL ? stdout : fopen(out, "wb");
	if (fp == NULL) {
		snprintf(err, errlen, "%s: %s", out, strerror(errno));
		goto fail;
	}
	if (fwrite(buf, 1, len, fp) != len || fflush(fp) != 0) {
		snprintf(err, errlen, "%s: %s", out ? out : "stdout",
		    strerror(errno));
		goto fail;
	}
	rc = 0;
fail:
	if (fp != NULL && fp != stdout && fclose(fp) != 0 && rc == 0) {
		snprintf(err, errlen, "%s: %s", out, strerror(errno));
		rc = -1;
	}
	free(buf);
	return rc;
}

/*
 * Per-OS trust steps.  "%1$s" would be neater but is not C11; each text
 * instead marks the certificate path with @ and ca_help substitutes it.
 */
static const struct {
	const char *os;
	const char *text;
} ca_help_texts[] = {
    {"macos",
	"macOS: trust the CA system-wide (asks for your password):\n"
	"  sudo security add-trusted-cert -d -r trustRoot \\\n"
	"    -k /Library/Keychains/System.keychain @\n"
	"  To undo: Keychain Access > System, delete \"peephole CA ...\".\n"},
    {"windows",
	"Windows: in an elevated Command Prompt (machine store):\n"
	"  certutil -addstore Root @\n"
	"  or for the current user only: certutil -user -addstore Root @\n"
	"  To undo: certmgr.msc > Trusted Root Certification Authorities.\n"},
    {"linux",
	"Linux, Debian/Ubuntu (the file name must end in .crt):\n"
	"  sudo cp @ /usr/local/share/ca-certificates/peephole.crt\n"
	"  sudo update-ca-certificates\n"
	"Linux, Fedora/RHEL:\n"
	"  sudo cp @ /etc/pki/ca-trust/source/anchors/peephole.pem\n"
	"  sudo update-ca-trust\n"
	"  Firefox and Chromium keep their own stores: see below.\n"},
    {"firefox",
	"Firefox: Settings > Privacy & Security > Certificates > View\n"
	"  Certificates > Authorities > Import @, tick \"Trust this CA to\n"
	"  identify websites\"; or with NSS certutil (libnss3-tools) on the\n"
	"  profile directory, Firefox closed:\n"
	"  certutil -d sql:<profile dir> -A -t C,, -n \"peephole CA\" -i @\n"
	"  or by enterprise policy: policies.json\n"
	"  {\"policies\": {\"Certificates\": {\"Install\": [\"@\"]}}}, or\n"
	"  \"ImportEnterpriseRoots\": true (set security.enterprise_roots.\n"
	"  enabled) to use the roots trusted by Windows or macOS.\n"},
    {"chromium",
	"Chromium/Chrome on Linux: the NSS database in your home\n"
	"  (certutil from libnss3-tools), then restart the browser:\n"
	"  certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n \"peephole CA\" -i @\n"
	"  On macOS and Windows it uses the system store: see those steps.\n"},
    {"ios",
	"iOS/iPadOS: get @ onto the device (AirDrop, mail, or Safari\n"
	"  through the proxy), then Settings > General > VPN & Device\n"
	"  Management > the downloaded profile > Install.  Then turn on full\n"
	"  trust: Settings > General > About > Certificate Trust Settings >\n"
	"  enable \"peephole CA ...\".  Without that switch TLS still "
	"fails.\n"},
    {"android",
	"Android: copy @ to the device as peephole.crt; Settings > Security\n"
	"  > Encryption & credentials > Install a certificate > CA\n"
	"  certificate (the menu path varies by vendor).  That is the user\n"
	"  store: apps targeting API level 24 (Android 7) or later ignore\n"
	"  user CAs unless their network_security_config trusts them\n"
	"  (<certificates src=\"user\"/>); browsers usually do.  The system\n"
	"  store needs root: install as <hash>.0, hash from\n"
	"  openssl x509 -subject_hash_old -noout -in @\n"
	"  (Android 14+: the Conscrypt APEX, /apex/com.android.conscrypt/\n"
	"  cacerts).\n"},
};

#define CA_NHELP (sizeof(ca_help_texts) / sizeof(ca_help_texts[0]))

static void
ca_help_print(const char *text, const char *pem_path, FILE *out)
{
	for (const char *s = text; *s != '\0'; s++) {
		if (*s == '@')
			fputs(pem_path, out);
		else
			fputc(*s, out);
	}
}

int
ca_help(const char *os, const char *pem_path, FILE *out)
{
	size_t i;

	if (pem_path == NULL)
		pem_path = "<path to ca.pem>";
	if (os == NULL) {
		for (i = 0; i < CA_NHELP; i++) {
			if (i > 0)
				fputc('\n', out);
			ca_help_print(ca_help_texts[i].text, pem_path, out);
		}
		return 0;
	}
	for (i = 0; i < CA_NHELP; i++)
		if (strcmp(ca_help_texts[i].os, os) == 0) {
			ca_help_print(ca_help_texts[i].text, pem_path, out);
			return 0;
		}
	return -1;
}
