/*
 * Unit tests for ca/ca.c: create and reload, file and directory modes,
 * refusals (loose key mode, half a CA, mismatched pair, existing CA without
 * force), the certificate's profile, export in three formats (to a file
 * and to memory), the home directory and the trust instructions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sys/stat.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509v3.h>

#include "ca/ca.h"

struct fixture {
	char dir[64];   /* the mkdtemp directory */
	char home[96];  /* dir/home: where the CA goes */
	char cert[128]; /* home/ca.pem */
	char key[128];  /* home/ca.key */
	char err[512];
};

/* rm -r of a tree a few levels deep. */
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
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/peephole-ca-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->home, sizeof(f->home), "%s/home", f->dir);
	snprintf(f->cert, sizeof(f->cert), "%s/ca.pem", f->home);
	snprintf(f->key, sizeof(f->key), "%s/ca.key", f->home);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	rmtree(f->dir);
	free(f);
	return 0;
}

static mode_t
file_mode(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_mode & 07777;
}

static struct ca *
load_ok(struct fixture *f)
{
	struct ca *ca;

	f->err[0] = '\0';
	ca = ca_load_or_create(f->home, f->err, sizeof(f->err));
	if (ca == NULL)
		fail_msg("ca_load_or_create: %s", f->err);
	return ca;
}

static void
test_create_and_reload(void **state)
{
	struct fixture *f = *state;
	struct ca *a, *b;
	char line[64];
	FILE *fp;

	a = load_ok(f);
	assert_int_equal(file_mode(f->home), 0700);
	assert_int_equal(file_mode(f->key), 0600);
	assert_int_equal(file_mode(f->cert), 0644);
	/* PKCS#8, not the traditional "BEGIN EC PRIVATE KEY" */
	assert_non_null(fp = fopen(f->key, "r"));
	assert_non_null(fgets(line, sizeof(line), fp));
	fclose(fp);
	assert_string_equal(line, "-----BEGIN PRIVATE KEY-----\n");

	b = load_ok(f);
	assert_int_equal(X509_cmp(ca_cert(a), ca_cert(b)), 0);
	assert_int_equal(EVP_PKEY_eq(ca_key(a), ca_key(b)), 1);
	assert_int_equal(X509_check_private_key(ca_cert(b), ca_key(b)), 1);
	ca_free(a);
	ca_free(b);
	ca_free(NULL);
}

static void
test_nested_dir(void **state)
{
	struct fixture *f = *state;
	char deep[160];
	struct ca *ca;

	snprintf(deep, sizeof(deep), "%s/a/b/c", f->dir);
	ca = ca_load_or_create(deep, f->err, sizeof(f->err));
	assert_non_null(ca);
	assert_int_equal(file_mode(deep), 0700);
	snprintf(deep, sizeof(deep), "%s/a", f->dir);
	assert_int_equal(file_mode(deep), 0700);
	ca_free(ca);

	/* a file where the directory should be */
	snprintf(deep, sizeof(deep), "%s/plain", f->dir);
	fclose(fopen(deep, "w"));
	assert_null(ca_load_or_create(deep, f->err, sizeof(f->err)));
	assert_non_null(strstr(f->err, "not a directory"));
}

static void
test_cert_profile(void **state)
{
	struct fixture *f = *state;
	struct ca *ca = load_ok(f);
	X509 *x = ca_cert(ca);
	X509_NAME *subj = X509_get_subject_name(x);
	BASIC_CONSTRAINTS *bc;
	BIGNUM *serial;
	char cn[128], o[64], day[16];
	int crit = -1, i, days, secs;
	time_t now = time(NULL);
	struct tm tm;

	assert_int_equal(X509_get_version(x), X509_VERSION_3);

	/* subject: unique per host and day */
	assert_true(X509_NAME_get_text_by_NID(
			subj, NID_commonName, cn, sizeof(cn)) > 0);
	assert_true(X509_NAME_get_text_by_NID(
			subj, NID_organizationName, o, sizeof(o)) > 0);
	assert_string_equal(o, "peephole");
	assert_memory_equal(cn, "peephole CA ", 12);
	/* a random id tells two installs apart: 6 hex digits, a space */
	for (int k = 12; k < 18; k++)
		assert_non_null(strchr("0123456789abcdef", cn[k]));
	assert_int_equal(cn[18], ' ');
	assert_true(strlen(cn) <= 64);
	gmtime_r(&now, &tm);
	strftime(day, sizeof(day), "%Y-%m-%d", &tm);
	assert_non_null(strstr(cn, day));
	assert_int_equal(X509_NAME_cmp(subj, X509_get_issuer_name(x)), 0);

	/* basicConstraints CA:TRUE, critical */
	bc = X509_get_ext_d2i(x, NID_basic_constraints, &crit, NULL);
	assert_non_null(bc);
	assert_int_equal(crit, 1);
	assert_true(bc->ca);
	BASIC_CONSTRAINTS_free(bc);
	assert_int_equal(X509_check_ca(x), 1);

	/* keyUsage keyCertSign + cRLSign only, critical */
	i = X509_get_ext_by_NID(x, NID_key_usage, -1);
	assert_true(i >= 0);
	assert_int_equal(X509_EXTENSION_get_critical(X509_get_ext(x, i)), 1);
	assert_int_equal(X509_get_key_usage(x), KU_KEY_CERT_SIGN | KU_CRL_SIGN);

	/* SKI, and AKI pointing at itself */
	assert_non_null(X509_get0_subject_key_id(x));
	assert_int_equal(ASN1_OCTET_STRING_cmp(X509_get0_subject_key_id(x),
			     X509_get0_authority_key_id(x)),
	    0);

	/* P-256 key, ECDSA-SHA256, self-signed */
	assert_int_equal(EVP_PKEY_is_a(ca_key(ca), "EC"), 1);
	assert_int_equal(EVP_PKEY_get_bits(ca_key(ca)), 256);
	assert_int_equal(X509_get_signature_nid(x), NID_ecdsa_with_SHA256);
	assert_int_equal(X509_verify(x, ca_key(ca)), 1);

	/* 128-bit positive serial */
	serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	assert_non_null(serial);
	assert_false(BN_is_negative(serial));
	assert_int_equal(BN_num_bits(serial), 127);
	BN_free(serial);

	/* from an hour ago, for ten years */
	assert_int_equal(
	    ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notBefore(x)), 1);
	assert_int_equal(days, 0);
	assert_true(secs <= -3590 && secs >= -3610);
	assert_int_equal(
	    ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(x)), 1);
	assert_true(days >= 3650 && days <= 3653);
	ca_free(ca);
}

static void
test_loose_key_mode_refused(void **state)
{
	struct fixture *f = *state;
	static const mode_t bad[] = {0640, 0604, 0660, 0602, 0620};

	ca_free(load_ok(f));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(chmod(f->key, bad[i]), 0);
		f->err[0] = '\0';
		assert_null(ca_load_or_create(f->home, f->err, sizeof(f->err)));
		assert_non_null(strstr(f->err, "chmod 600"));
		assert_non_null(strstr(f->err, f->key));
	}
	assert_int_equal(chmod(f->key, 0400), 0);
	ca_free(load_ok(f));
}

static void
test_half_ca_refused(void **state)
{
	struct fixture *f = *state;
	char saved[160];

	ca_free(load_ok(f));
	snprintf(saved, sizeof(saved), "%s/saved", f->dir);

	assert_int_equal(rename(f->cert, saved), 0);
	assert_null(ca_load_or_create(f->home, f->err, sizeof(f->err)));
	assert_non_null(strstr(f->err, "ca.key but not ca.pem"));
	/* and it did not quietly make a new CA over the old key */
	assert_int_equal(access(f->cert, F_OK), -1);
	assert_int_equal(rename(saved, f->cert), 0);

	assert_int_equal(rename(f->key, saved), 0);
	assert_null(ca_load_or_create(f->home, f->err, sizeof(f->err)));
	assert_non_null(strstr(f->err, "ca.pem but not ca.key"));
	assert_int_equal(rename(saved, f->key), 0);

	ca_free(load_ok(f));
}

static void
test_mismatched_pair_refused(void **state)
{
	struct fixture *f = *state;
	char other[160], otherkey[192];

	ca_free(load_ok(f));
	snprintf(other, sizeof(other), "%s/other", f->dir);
	snprintf(otherkey, sizeof(otherkey), "%s/ca.key", other);
	assert_int_equal(ca_create(other, 0, f->err, sizeof(f->err)), 0);
	assert_int_equal(rename(otherkey, f->key), 0);
	assert_null(ca_load_or_create(f->home, f->err, sizeof(f->err)));
	assert_non_null(strstr(f->err, "do not match"));
}

static void
test_garbage_refused(void **state)
{
	struct fixture *f = *state;
	FILE *fp;

	ca_free(load_ok(f));
	assert_non_null(fp = fopen(f->cert, "w"));
	fputs("not a certificate\n", fp);
	fclose(fp);
	f->err[0] = '\0';
	assert_null(ca_load_or_create(f->home, f->err, sizeof(f->err)));
	assert_non_null(strstr(f->err, f->cert));
}

static void
test_create_force(void **state)
{
	struct fixture *f = *state;
	struct ca *a, *b;

	a = load_ok(f);
	f->err[0] = '\0';
	assert_int_equal(ca_create(f->home, 0, f->err, sizeof(f->err)), -1);
	assert_non_null(strstr(f->err, "already exists"));
	b = load_ok(f);
	assert_int_equal(X509_cmp(ca_cert(a), ca_cert(b)), 0);
	ca_free(b);

	assert_int_equal(ca_create(f->home, 1, f->err, sizeof(f->err)), 0);
	assert_int_equal(file_mode(f->key), 0600);
	assert_int_equal(file_mode(f->cert), 0644);
	b = load_ok(f);
	assert_int_not_equal(X509_cmp(ca_cert(a), ca_cert(b)), 0);
	assert_int_equal(EVP_PKEY_eq(ca_key(a), ca_key(b)), 0);
	ca_free(a);
	ca_free(b);

	/* no temporary files left behind */
	{
		DIR *d = opendir(f->home);
		struct dirent *de;
		int n = 0;

		assert_non_null(d);
		while ((de = readdir(d)) != NULL)
			if (de->d_name[0] != '.')
				n++;
		closedir(d);
		assert_int_equal(n, 2);
	}
}

static void
test_export(void **state)
{
	struct fixture *f = *state;
	struct ca *ca = load_ok(f);
	char path[160];
	FILE *fp;
	X509 *x;
	PKCS12 *p12;
	EVP_PKEY *pkey = NULL;
	X509 *pcert = NULL;
	STACK_OF(X509) *others = NULL;
	unsigned char buf[8192];
	const unsigned char *p;
	size_t n;

	/* PEM */
	snprintf(path, sizeof(path), "%s/ca-export.pem", f->dir);
	assert_int_equal(ca_export(ca, "pem", path, f->err, sizeof(f->err)), 0);
	assert_non_null(fp = fopen(path, "r"));
	x = PEM_read_X509(fp, NULL, NULL, NULL);
	fclose(fp);
	assert_non_null(x);
	assert_int_equal(X509_cmp(x, ca_cert(ca)), 0);
	X509_free(x);

	/* DER */
	snprintf(path, sizeof(path), "%s/ca-export.der", f->dir);
	assert_int_equal(ca_export(ca, "der", path, f->err, sizeof(f->err)), 0);
	assert_non_null(fp = fopen(path, "rb"));
	n = fread(buf, 1, sizeof(buf), fp);
	fclose(fp);
	p = buf;
	x = d2i_X509(NULL, &p, (long)n);
	assert_non_null(x);
	assert_ptr_equal(p, buf + n);
	assert_int_equal(X509_cmp(x, ca_cert(ca)), 0);
	X509_free(x);

	/* PKCS#12: the certificate, no key, empty password */
	snprintf(path, sizeof(path), "%s/ca-export.p12", f->dir);
	assert_int_equal(ca_export(ca, "p12", path, f->err, sizeof(f->err)), 0);
	assert_non_null(fp = fopen(path, "rb"));
	n = fread(buf, 1, sizeof(buf), fp);
	fclose(fp);
	p = buf;
	p12 = d2i_PKCS12(NULL, &p, (long)n);
	assert_non_null(p12);
	assert_int_equal(PKCS12_mac_present(p12), 1);
	assert_int_equal(PKCS12_verify_mac(p12, "", 0), 1);
	/* SHA-1 MAC: what older macOS / Android importers accept */
	{
		const X509_ALGOR *macalg = NULL;
		const ASN1_OBJECT *obj = NULL;

		PKCS12_get0_mac(NULL, &macalg, NULL, NULL, p12);
		assert_non_null(macalg);
		X509_ALGOR_get0(&obj, NULL, NULL, macalg);
		assert_int_equal(OBJ_obj2nid(obj), NID_sha1);
	}
	assert_int_equal(PKCS12_parse(p12, "", &pkey, &pcert, &others), 1);
	assert_null(pkey);
	/* with no key to pair it with, the certificate lands in "others" */
	if (pcert == NULL) {
		assert_int_equal(sk_X509_num(others), 1);
		pcert = sk_X509_shift(others);
	}
	assert_non_null(pcert);
	assert_int_equal(X509_cmp(pcert, ca_cert(ca)), 0);
	assert_non_null(X509_alias_get0(pcert, NULL));
	assert_string_equal(
	    (const char *)X509_alias_get0(pcert, NULL), "peephole CA");
	X509_free(pcert);
	sk_X509_pop_free(others, X509_free);
	PKCS12_free(p12);

	/* bad format, unwritable path */
	assert_int_equal(
	    ca_export(ca, "txt", path, f->err, sizeof(f->err)), -1);
	assert_non_null(strstr(f->err, "txt"));
	assert_int_equal(ca_export(ca, "pem", "/nonexistent/dir/ca.pem", f->err,
			     sizeof(f->err)),
	    -1);
	assert_non_null(strstr(f->err, "/nonexistent/dir/ca.pem"));
	ca_free(ca);
}

/* out NULL writes to stdout; DER must come through byte-exact. */
static void
test_export_stdout(void **state)
{
	struct fixture *f = *state;
	struct ca *ca = load_ok(f);
	char path[160];
	unsigned char buf[8192];
	const unsigned char *p = buf;
	int saved, fd, rc;
	FILE *fp;
	size_t n;
	X509 *x;

	snprintf(path, sizeof(path), "%s/stdout.der", f->dir);
	fflush(stdout);
	saved = dup(STDOUT_FILENO);
	assert_true(saved >= 0);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_true(dup2(fd, STDOUT_FILENO) >= 0);
	close(fd);
	rc = ca_export(ca, "der", NULL, f->err, sizeof(f->err));
	fflush(stdout);
	assert_true(dup2(saved, STDOUT_FILENO) >= 0);
	close(saved);
	assert_int_equal(rc, 0);

	assert_non_null(fp = fopen(path, "rb"));
	n = fread(buf, 1, sizeof(buf), fp);
	fclose(fp);
	x = d2i_X509(NULL, &p, (long)n);
	assert_non_null(x);
	assert_int_equal(X509_cmp(x, ca_cert(ca)), 0);
	X509_free(x);
	ca_free(ca);
}

/* Read a whole small file into a malloc'd buffer. */
static unsigned char *
slurp(const char *path, size_t *len)
{
	unsigned char *buf = malloc(16384);
	FILE *fp;

	assert_non_null(buf);
	assert_non_null(fp = fopen(path, "rb"));
	*len = fread(buf, 1, 16384, fp);
	fclose(fp);
	assert_true(*len > 0 && *len < 16384);
	return buf;
}

/* The certificate inside a PKCS#12 with the empty password (new ref). */
static X509 *
p12_cert(const unsigned char *buf, size_t len)
{
	const unsigned char *p = buf;
	PKCS12 *p12 = d2i_PKCS12(NULL, &p, (long)len);
	EVP_PKEY *pkey = NULL;
	X509 *cert = NULL;
	STACK_OF(X509) *others = NULL;

	assert_non_null(p12);
	assert_ptr_equal(p, buf + len);
	assert_int_equal(PKCS12_verify_mac(p12, "", 0), 1);
	assert_int_equal(PKCS12_parse(p12, "", &pkey, &cert, &others), 1);
	assert_null(pkey);
	if (cert == NULL)
		cert = sk_X509_shift(others);
	sk_X509_pop_free(others, X509_free);
	PKCS12_free(p12);
	assert_non_null(cert);
	return cert;
}

/*
 * ca_export_mem gives the bytes ca_export writes.  PEM and DER are
 * deterministic; PKCS#12 has a random MAC salt, so there the two must be
 * the same size and hold the same certificate.
 */
static void
test_export_mem(void **state)
{
	static const char *const fmts[] = {"pem", "der", "p12"};
	struct fixture *f = *state;
	struct ca *ca = load_ok(f);
	unsigned char *mem, *file;
	size_t memlen, filelen, i;
	char path[160];
	X509 *a, *b;

	for (i = 0; i < sizeof(fmts) / sizeof(fmts[0]); i++) {
		snprintf(path, sizeof(path), "%s/mem.%s", f->dir, fmts[i]);
		assert_int_equal(
		    ca_export(ca, fmts[i], path, f->err, sizeof(f->err)), 0);
		file = slurp(path, &filelen);
		mem = NULL;
		assert_int_equal(ca_export_mem(ca, fmts[i], &mem, &memlen,
				     f->err, sizeof(f->err)),
		    0);
		assert_non_null(mem);
		assert_int_equal(memlen, filelen);
		if (strcmp(fmts[i], "p12") != 0)
			assert_memory_equal(mem, file, memlen);
		else {
			a = p12_cert(mem, memlen);
			b = p12_cert(file, filelen);
			assert_int_equal(X509_cmp(a, b), 0);
			assert_int_equal(X509_cmp(a, ca_cert(ca)), 0);
			X509_free(a);
			X509_free(b);
		}
		free(mem);
		free(file);
	}

	/* unknown format: -1, message, nothing allocated */
	mem = (unsigned char *)"sentinel";
	memlen = 99;
	assert_int_equal(
	    ca_export_mem(ca, "txt", &mem, &memlen, f->err, sizeof(f->err)),
	    -1);
	assert_null(mem);
	assert_int_equal(memlen, 0);
	assert_non_null(strstr(f->err, "txt"));
	assert_int_equal(
	    ca_export_mem(ca, NULL, &mem, &memlen, f->err, sizeof(f->err)), -1);
	ca_free(ca);
}

static void
test_home(void **state)
{
	char buf[256], small[8];
	char *oldhome = getenv("HOME"), *oldpp = getenv("PEEPHOLE_HOME");
	char *sh = oldhome ? strdup(oldhome) : NULL;
	char *sp = oldpp ? strdup(oldpp) : NULL;

	(void)state;
	setenv("PEEPHOLE_HOME", "/srv/pp", 1);
	setenv("HOME", "/home/u", 1);
	assert_int_equal(ca_home(buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/srv/pp");

	unsetenv("PEEPHOLE_HOME");
	assert_int_equal(ca_home(buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/home/u/.peephole");
	assert_int_equal(ca_home(small, sizeof(small)), -1);

	setenv("PEEPHOLE_HOME", "", 1); /* empty counts as unset */
	assert_int_equal(ca_home(buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/home/u/.peephole");

	unsetenv("PEEPHOLE_HOME");
	unsetenv("HOME");
	assert_int_equal(ca_home(buf, sizeof(buf)), -1);

	if (sh != NULL)
		setenv("HOME", sh, 1);
	if (sp != NULL)
		setenv("PEEPHOLE_HOME", sp, 1);
	free(sh);
	free(sp);
}

static char *
help_text(const char *os, int *rc)
{
	char *text = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&text, &len);

	assert_non_null(fp);
	*rc = ca_help(os, "/the/ca.pem", fp);
	fclose(fp);
	return text;
}

static void
test_help(void **state)
{
	static const struct {
		const char *os;
		const char *must[3];
	} cases[] = {
	    {"macos",
		{"security add-trusted-cert -d -r trustRoot",
		    "/Library/Keychains/System.keychain", NULL}},
	    {"windows", {"certutil -addstore Root /the/ca.pem", NULL}},
	    {"linux", {"update-ca-certificates", "update-ca-trust", NULL}},
	    {"firefox",
		{"certutil -d sql:", "-t C,,", "ImportEnterpriseRoots"}},
	    {"chromium", {"certutil -d sql:$HOME/.pki/nssdb -A -t C,,", NULL}},
	    {"ios", {"Certificate Trust Settings", "About", NULL}},
	    {"android", {"network_security_config", "API level 24", "root"}},
	};
	char *all, *t;
	int rc;

	(void)state;
	all = help_text(NULL, &rc);
	assert_int_equal(rc, 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		t = help_text(cases[i].os, &rc);
		assert_int_equal(rc, 0);
		assert_non_null(strstr(t, "/the/ca.pem"));
		assert_null(strchr(t, '@')); /* every placeholder replaced */
		for (int j = 0; j < 3 && cases[i].must[j] != NULL; j++) {
			if (strstr(t, cases[i].must[j]) == NULL)
				fail_msg("%s: no '%s'", cases[i].os,
				    cases[i].must[j]);
			assert_non_null(strstr(all, cases[i].must[j]));
		}
		free(t);
	}
	free(all);

	t = help_text("beos", &rc);
	assert_int_equal(rc, -1);
	assert_string_equal(t, "");
	free(t);

	/* no path given: a placeholder, not "(null)" */
	{
		char *text = NULL;
		size_t len = 0;
		FILE *fp = open_memstream(&text, &len);

		assert_int_equal(ca_help("windows", NULL, fp), 0);
		fclose(fp);
		assert_null(strstr(text, "(null)"));
		assert_non_null(strstr(text, "ca.pem"));
		free(text);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		test_create_and_reload, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_nested_dir, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cert_profile, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_loose_key_mode_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_half_ca_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_mismatched_pair_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_garbage_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_create_force, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_export, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_export_stdout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_export_mem, setup, teardown),
	    cmocka_unit_test(test_home),
	    cmocka_unit_test(test_help),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
