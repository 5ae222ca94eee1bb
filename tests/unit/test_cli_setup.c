/*
 * Unit tests for proxy/cli/setup.c: each --os prints its key commands for
 * the --proxy given, the default proxy and "all", IPv6, and the usage
 * errors (exit 2).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy/cli/cli.h"

/* Captured stdout of the last run_setup. */
static char *out_text;

/*
 * Run `peephole setup ARGS...` (NULL-terminated) with stdout sent to a
 * temporary file, read back into out_text.  Returns the exit status.
 */
static int
run_setup(const char *arg, ...)
{
	char path[] = "/tmp/peephole-setup-XXXXXX";
	char *argv[16];
	int argc = 0, saved, fd, rc;
	va_list ap;
	FILE *fp;
	long len;

	argv[argc++] = (char *)"setup";
	va_start(ap, arg);
	for (const char *a = arg; a != NULL; a = va_arg(ap, const char *)) {
		assert_true(argc < 15);
		argv[argc++] = (char *)a;
	}
	va_end(ap);
	argv[argc] = NULL;

	assert_true((fd = mkstemp(path)) >= 0);
	fflush(stdout);
	assert_true((saved = dup(STDOUT_FILENO)) >= 0);
	assert_true(dup2(fd, STDOUT_FILENO) >= 0);
	close(fd);
	rc = cli_setup(argc, argv);
	fflush(stdout);
	assert_true(dup2(saved, STDOUT_FILENO) >= 0);
	close(saved);

	free(out_text);
	assert_non_null(fp = fopen(path, "rb"));
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	assert_true((len = ftell(fp)) >= 0);
	rewind(fp);
	assert_non_null(out_text = malloc((size_t)len + 1));
	assert_int_equal(fread(out_text, 1, (size_t)len, fp), (size_t)len);
	out_text[len] = '\0';
	fclose(fp);
	unlink(path);
	return rc;
}

static void
assert_has(const char *s)
{
	if (strstr(out_text, s) == NULL)
		fail_msg("output lacks '%s':\n%s", s, out_text);
}

static void
assert_lacks(const char *s)
{
	if (strstr(out_text, s) != NULL)
		fail_msg("output has '%s':\n%s", s, out_text);
}

/* Every --os names the proxy, the PAC URL and where the CA is. */
static void
assert_common(const char *addr)
{
	char buf[128];

	snprintf(buf, sizeof(buf), "PAC URL: http://%s/proxy.pac", addr);
	assert_has(buf);
	snprintf(buf, sizeof(buf), "open http://%s/", addr);
	assert_has(buf);
	assert_has("peephole.local");
	assert_lacks("{H}");
	assert_lacks("{P}");
	assert_lacks("{A}");
	assert_lacks("{U}");
}

static void
test_macos(void **state)
{
	(void)state;
	assert_int_equal(
	    run_setup("--os", "macos", "--proxy", "10.1.2.3:3128", NULL), 0);
	assert_common("10.1.2.3:3128");
	assert_has("networksetup -setwebproxy \"Wi-Fi\" 10.1.2.3 3128\n");
	assert_has("networksetup -setsecurewebproxy \"Wi-Fi\" 10.1.2.3 3128\n");
	assert_has("networksetup -setautoproxyurl \"Wi-Fi\" "
		   "http://10.1.2.3:3128/proxy.pac\n");
	assert_has("networksetup -setwebproxystate \"Wi-Fi\" off");
	assert_lacks("gsettings");
	assert_lacks("netsh");
}

static void
test_windows(void **state)
{
	(void)state;
	assert_int_equal(
	    run_setup("--os", "windows", "--proxy", "10.1.2.3:3128", NULL), 0);
	assert_common("10.1.2.3:3128");
	assert_has("Settings > Network & internet > Proxy");
	assert_has("netsh winhttp set proxy 10.1.2.3:3128");
	assert_has("netsh winhttp reset proxy");
	assert_lacks("networksetup");
}

static void
test_gnome(void **state)
{
	(void)state;
	assert_int_equal(
	    run_setup("--os", "gnome", "--proxy", "proxy.lan:9000", NULL), 0);
	assert_common("proxy.lan:9000");
	assert_has("gsettings set org.gnome.system.proxy mode 'manual'\n");
	assert_has("gsettings set org.gnome.system.proxy.http host "
		   "'proxy.lan'\n");
	assert_has("gsettings set org.gnome.system.proxy.http port 9000\n");
	assert_has("gsettings set org.gnome.system.proxy.https host "
		   "'proxy.lan'\n");
	assert_has("gsettings set org.gnome.system.proxy.https port 9000\n");
	assert_has("autoconfig-url 'http://proxy.lan:9000/proxy.pac'");
	assert_has("gsettings set org.gnome.system.proxy mode 'none'");
}

static void
test_kde(void **state)
{
	(void)state;
	assert_int_equal(
	    run_setup("--os", "kde", "--proxy", "10.1.2.3:3128", NULL), 0);
	assert_common("10.1.2.3:3128");
	assert_has("System Settings > Network");
	assert_has("kwriteconfig5 --file kioslaverc --group 'Proxy Settings' "
		   "--key ProxyType 1");
	assert_has("--key httpProxy 'http://10.1.2.3 3128'");
	assert_has("--key httpsProxy 'http://10.1.2.3 3128'");
	assert_has("--key ProxyType 0");
}

static void
test_phones(void **state)
{
	(void)state;
	assert_int_equal(
	    run_setup("--os", "ios", "--proxy", "192.168.0.9:8080", NULL), 0);
	assert_common("192.168.0.9:8080");
	assert_has("Configure\n  Proxy > Manual: Server 192.168.0.9, Port "
		   "8080");
	assert_has("Automatic, URL http://192.168.0.9:8080/proxy.pac");
	assert_has("Certificate Trust Settings");
	assert_lacks("Android");

	assert_int_equal(
	    run_setup("--proxy", "192.168.0.9:8080", "--os", "android", NULL),
	    0);
	assert_common("192.168.0.9:8080");
	assert_has("Proxy hostname 192.168.0.9, Proxy port 8080");
	assert_has("PAC URL http://192.168.0.9:8080/proxy.pac");
	assert_has("adb shell settings put global http_proxy "
		   "192.168.0.9:8080\n");
	assert_has("Install a certificate > CA\n  certificate");
	assert_lacks("iOS");
}

static void
test_env(void **state)
{
	(void)state;
	assert_int_equal(
	    run_setup("--os", "env", "--proxy", "10.1.2.3:3128", NULL), 0);
	assert_common("10.1.2.3:3128");
	assert_has("http_proxy=http://10.1.2.3:3128");
	assert_has("https_proxy=http://10.1.2.3:3128");
	assert_has("HTTP_PROXY=http://10.1.2.3:3128");
	assert_has("HTTPS_PROXY=http://10.1.2.3:3128");
	assert_has("no_proxy=localhost,127.0.0.1");
	assert_has("unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY");
}

/* No flags: every OS, for 127.0.0.1:8080. */
static void
test_default_all(void **state)
{
	(void)state;
	assert_int_equal(run_setup(NULL), 0);
	assert_common("127.0.0.1:8080");
	assert_has("networksetup -setwebproxy \"Wi-Fi\" 127.0.0.1 8080");
	assert_has("netsh winhttp set proxy 127.0.0.1:8080");
	assert_has("gsettings set org.gnome.system.proxy.http host "
		   "'127.0.0.1'");
	assert_has("kioslaverc");
	assert_has("iOS/iPadOS");
	assert_has("Android");
	assert_has("export http_proxy=http://127.0.0.1:8080");

	assert_int_equal(run_setup("--os", "all", NULL), 0);
	assert_has("networksetup");
	assert_has("export http_proxy=");
}

/* IPv6: bare where a tool wants a host, bracketed in URLs and host:port. */
static void
test_ipv6(void **state)
{
	(void)state;
	assert_int_equal(run_setup("--proxy", "[fd00::5]:3128", NULL), 0);
	assert_common("[fd00::5]:3128");
	assert_has("networksetup -setwebproxy \"Wi-Fi\" fd00::5 3128");
	assert_has("netsh winhttp set proxy [fd00::5]:3128");
	assert_has("proxy.http host 'fd00::5'");
	assert_has("export http_proxy=http://[fd00::5]:3128");
}

static void
test_usage_errors(void **state)
{
	(void)state;
	assert_int_equal(run_setup("--os", "beos", NULL), CLI_USAGE);
	assert_string_equal(out_text, "");
	assert_int_equal(run_setup("--os", NULL), CLI_USAGE);
	assert_int_equal(run_setup("--bogus", NULL), CLI_USAGE);
	assert_int_equal(run_setup("extra", NULL), CLI_USAGE);
	assert_int_equal(run_setup("--proxy", "10.1.2.3", NULL), CLI_USAGE);
	assert_int_equal(run_setup("--proxy", "10.1.2.3:0", NULL), CLI_USAGE);
	assert_int_equal(
	    run_setup("--proxy", "10.1.2.3:65536", NULL), CLI_USAGE);
	assert_int_equal(run_setup("--proxy", "10.1.2.3:80x", NULL), CLI_USAGE);
	assert_int_equal(run_setup("--proxy", ":8080", NULL), CLI_USAGE);
	assert_int_equal(run_setup("--proxy", "fd00::5:80", NULL), CLI_USAGE);
	assert_int_equal(run_setup("--proxy", "[]:80", NULL), CLI_USAGE);
	/* nothing that would need shell quoting gets through */
	assert_int_equal(
	    run_setup("--proxy", "a;rm -rf ~:8080", NULL), CLI_USAGE);
	assert_int_equal(run_setup("--proxy", "a'b:8080", NULL), CLI_USAGE);
	assert_string_equal(out_text, "");
}

static void
test_help(void **state)
{
	(void)state;
	assert_int_equal(run_setup("--help", NULL), CLI_OK);
	assert_has("usage: peephole setup");
	assert_has("--os OS");
	assert_has("--proxy HOST:PORT");
	assert_has("macos, windows, gnome, kde, ios, android, env");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_macos),
	    cmocka_unit_test(test_windows),
	    cmocka_unit_test(test_gnome),
	    cmocka_unit_test(test_kde),
	    cmocka_unit_test(test_phones),
	    cmocka_unit_test(test_env),
	    cmocka_unit_test(test_default_all),
	    cmocka_unit_test(test_ipv6),
	    cmocka_unit_test(test_usage_errors),
	    cmocka_unit_test(test_help),
	};
	int rc;

	rc = cmocka_run_group_tests(tests, NULL, NULL);
	free(out_text);
	return rc;
}
