/* Unit tests for conf/config.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/config.h"

#define KIB ((size_t)1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)

static void
set_ok(struct config *cfg, const char *key, const char *value)
{
	char err[256] = "";
	int rc = config_set(cfg, key, value, err, sizeof(err));

	if (rc != 0)
		fail_msg("%s '%s': %s", key, value, err);
}

/* The setting must fail, and its message must contain want (if given). */
static void
set_bad(
    struct config *cfg, const char *key, const char *value, const char *want)
{
	char err[256] = "";

	assert_int_equal(config_set(cfg, key, value, err, sizeof(err)), -1);
	assert_true(err[0] != '\0');
	if (want != NULL && strstr(err, want) == NULL)
		fail_msg(
		    "%s '%s': got '%s', wanted '%s'", key, value, err, want);
}

/* Write text to a fresh temp file; path must hold 64 bytes. */
static void
write_tmp(char *path, const char *text)
{
	const char *dir = getenv("TMPDIR");
	size_t len = strlen(text);
	int fd;

	snprintf(path, 64, "%s/peephole-conf-XXXXXX",
	    dir != NULL && strlen(dir) < 32 ? dir : "/tmp");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

/* Load text as a conf file; returns config_load_file()'s result. */
static int
load_text(
    struct config *cfg, const char *text, char *path, char *err, size_t errlen)
{
	int rc;

	write_tmp(path, text);
	err[0] = '\0';
	rc = config_load_file(cfg, path, err, errlen);
	assert_int_equal(unlink(path), 0);
	return rc;
}

static void
assert_defaults(const struct config *cfg)
{
	assert_int_equal(cfg->nlisten, 0);
	assert_string_equal(cfg->db_path, "peephole.db");
	assert_int_equal(cfg->workers, 0);
	assert_int_equal(cfg->quiet, 0);
	assert_int_equal(cfg->log_level, 1);
	assert_int_equal(cfg->record_flows, 1);
	assert_int_equal(cfg->connect_timeout_ms, 10000);
	assert_int_equal(cfg->upstream_timeout_ms, 60000);
	assert_int_equal(cfg->idle_timeout_ms, 60000);
	assert_int_equal(cfg->header_timeout_ms, 30000);
	assert_int_equal(cfg->dns_timeout_ms, 5000);
	assert_int_equal(cfg->shutdown_grace_ms, 5000);
	assert_int_equal(cfg->upstream_idle_ms, 30000);
	assert_int_equal(cfg->upstream_pool_per_host, 8);
	assert_int_equal(cfg->max_header_bytes, 65536);
	assert_int_equal(cfg->body_capture_bytes, MIB);
	assert_int_equal(cfg->relay_buffer_bytes, 256 * KIB);
	assert_int_equal(cfg->store_queue_max, 4096);
	assert_int_equal(cfg->ndns, 0);
	assert_null(cfg->hosts_file);
	assert_int_equal(cfg->pinning_retry_ms, 60000);
	assert_int_equal(cfg->tcp_sample_interval_ms, 100);
	assert_int_equal(cfg->tcp_samples_max, 10000);
}

static void
test_defaults(void **state)
{
	struct config cfg;

	(void)state;
	config_init(&cfg);
	assert_defaults(&cfg);
	config_free(&cfg);
	/* free leaves it safe to free again and to init again */
	assert_null(cfg.db_path);
	config_free(&cfg);
	config_init(&cfg);
	assert_defaults(&cfg);
	config_free(&cfg);
}

static void
test_every_key(void **state)
{
	struct config cfg;

	(void)state;
	config_init(&cfg);
	set_ok(&cfg, "listen", "0.0.0.0:3128");
	set_ok(&cfg, "db", "/var/lib/peephole/flows.db");
	set_ok(&cfg, "workers", "4");
	set_ok(&cfg, "quiet", "yes");
	set_ok(&cfg, "log-level", "debug");
	set_ok(&cfg, "record-flows", "no");
	set_ok(&cfg, "connect-timeout", "3s");
	set_ok(&cfg, "upstream-timeout", "2m");
	set_ok(&cfg, "idle-timeout", "45");
	set_ok(&cfg, "header-timeout", "1500ms");
	set_ok(&cfg, "dns-timeout", "2s");
	set_ok(&cfg, "shutdown-grace", "0");
	set_ok(&cfg, "upstream-idle-timeout", "90s");
	set_ok(&cfg, "upstream-pool-per-host", "0");
	set_ok(&cfg, "max-header-size", "16K");
	set_ok(&cfg, "body-capture-limit", "0");
	set_ok(&cfg, "relay-buffer", "1MiB");
	set_ok(&cfg, "store-queue", "100");
	set_ok(&cfg, "dns-server", "127.0.0.53");
	set_ok(&cfg, "hosts-file", "/tmp/hosts");

	assert_int_equal(cfg.nlisten, 1);
	assert_string_equal(cfg.listen[0].host, "0.0.0.0");
	assert_int_equal(cfg.listen[0].port, 3128);
	assert_int_equal(cfg.listen[0].mode, CONFIG_LISTEN_HTTP);
	assert_string_equal(cfg.db_path, "/var/lib/peephole/flows.db");
	assert_int_equal(cfg.workers, 4);
	assert_int_equal(cfg.quiet, 1);
	assert_int_equal(cfg.log_level, 2);
	assert_int_equal(cfg.record_flows, 0);
	assert_int_equal(cfg.connect_timeout_ms, 3000);
	assert_int_equal(cfg.upstream_timeout_ms, 120000);
	assert_int_equal(cfg.idle_timeout_ms, 45000);
	assert_int_equal(cfg.header_timeout_ms, 1500);
	assert_int_equal(cfg.dns_timeout_ms, 2000);
	assert_int_equal(cfg.shutdown_grace_ms, 0);
	assert_int_equal(cfg.upstream_idle_ms, 90000);
	assert_int_equal(cfg.upstream_pool_per_host, 0);
	assert_int_equal(cfg.max_header_bytes, 16 * KIB);
	assert_int_equal(cfg.body_capture_bytes, 0);
	assert_int_equal(cfg.relay_buffer_bytes, MIB);
	assert_int_equal(cfg.store_queue_max, 100);
	assert_int_equal(cfg.ndns, 1);
	assert_string_equal(cfg.dns_servers[0], "127.0.0.53");
	assert_string_equal(cfg.hosts_file, "/tmp/hosts");
	config_free(&cfg);
}

static void
test_unknown_and_empty(void **state)
{
	struct config cfg;
	char err[256];

	(void)state;
	config_init(&cfg);
	assert_int_equal(config_set(&cfg, "foo", "1", err, sizeof(err)), -1);
	assert_string_equal(err, "unknown setting 'foo'");
	/* names are exact: no case folding, no underscores */
	set_bad(&cfg, "Workers", "1", "unknown setting");
	set_bad(&cfg, "connect_timeout", "1s", "unknown setting");
	set_bad(&cfg, "db", "", "missing value");
	set_bad(&cfg, "workers", "", "missing value");
	set_bad(&cfg, "listen", "", "missing value");
	assert_defaults(&cfg);
	/* a tiny or absent error buffer is not written past */
	assert_int_equal(config_set(&cfg, "foo", "1", err, 4), -1);
	assert_string_equal(err, "unk");
	assert_int_equal(config_set(&cfg, "foo", "1", NULL, 0), -1);
	config_free(&cfg);
}

static void
test_durations(void **state)
{
	static const struct {
		const char *text;
		unsigned ms;
	} good[] = {
	    {"500ms", 500},
	    {"10s", 10000},
	    {"2m", 120000},
	    {"7", 7000},
	    {"1ms", 1},
	    {"0010s", 10000},
	    {"4294967295ms", 4294967295u},
	    {"4294967s", 4294967000u},
	    {"71582m", 4294920000u},
	};
	static const char *const bad[] = {
	    "x",
	    "s",
	    "ms",
	    "10h",
	    "10 s",
	    "-1",
	    "+5",
	    "1.5s",
	    "10S",
	    "10sec",
	    "5s ",
	    "4294968s",
	    "4294967296ms",
	    "71583m",
	    "99999999999999999999999999",
	    " 5s",
	};
	struct config cfg;

	(void)state;
	config_init(&cfg);
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		set_ok(&cfg, "idle-timeout", good[i].text);
		assert_int_equal(cfg.idle_timeout_ms, good[i].ms);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		set_bad(&cfg, "idle-timeout", bad[i],
		    "expected a duration like 500ms, 10s or 2m, got '");
	set_bad(&cfg, "connect-timeout", "x",
	    "expected a duration like 500ms, 10s or 2m, got 'x'");
	assert_int_equal(cfg.connect_timeout_ms, 10000);

	/* zero is refused everywhere except shutdown-grace */
	static const char *const positive[] = {
	    "connect-timeout",
	    "upstream-timeout",
	    "idle-timeout",
	    "header-timeout",
	    "dns-timeout",
	    "upstream-idle-timeout",
	};
	for (size_t i = 0; i < sizeof(positive) / sizeof(positive[0]); i++) {
		set_bad(&cfg, positive[i], "0", "must be greater than 0");
		set_bad(&cfg, positive[i], "0ms", "must be greater than 0");
		set_ok(&cfg, positive[i], "1ms");
	}
	set_ok(&cfg, "shutdown-grace", "0ms");
	assert_int_equal(cfg.shutdown_grace_ms, 0);
	set_ok(&cfg, "shutdown-grace", "1m");
	assert_int_equal(cfg.shutdown_grace_ms, 60000);
	assert_int_equal(cfg.connect_timeout_ms, 1);
	assert_int_equal(cfg.dns_timeout_ms, 1);
	/* pinning-retry: 0 retries at once; at most the 24 h cap */
	set_ok(&cfg, "pinning-retry", "0");
	assert_int_equal(cfg.pinning_retry_ms, 0);
	set_ok(&cfg, "pinning-retry", "1s");
	assert_int_equal(cfg.pinning_retry_ms, 1000);
	set_ok(&cfg, "pinning-retry", "1440m");
	assert_int_equal(cfg.pinning_retry_ms, 24 * 3600 * 1000);
	set_bad(&cfg, "pinning-retry", "1441m", "must be at most 86400s");
	config_free(&cfg);
}

static void
test_sizes(void **state)
{
	static const struct {
		const char *text;
		size_t n;
	} good[] = {
	    {"65536", 65536},
	    {"64K", 64 * KIB},
	    {"64k", 64 * KIB},
	    {"64KiB", 64 * KIB},
	    {"64kib", 64 * KIB},
	    {"1M", MIB},
	    {"1m", MIB},
	    {"1MiB", MIB},
	    {"1MIB", MIB},
	    {"1G", GIB},
	    {"1gib", GIB},
	    {"0", 0},
	};
	static const char *const bad[] = {
	    "x",
	    "K",
	    "-5",
	    "1.5M",
	    "12X",
	    "1KB",
	    "1 K",
	    "1T",
	    "0x100",
	    "99999999999999999999999999",
	    "18014398509481984K",
	};
	struct config cfg;

	(void)state;
	config_init(&cfg);
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		set_ok(&cfg, "body-capture-limit", good[i].text);
		assert_int_equal(cfg.body_capture_bytes, good[i].n);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		set_bad(
		    &cfg, "body-capture-limit", bad[i], "expected a size like");
	set_bad(&cfg, "body-capture-limit", "1025M", "must be from 0 to 1 GiB");

	/* max-header-size: 1 KiB .. 1 MiB */
	set_bad(&cfg, "max-header-size", "1023",
	    "must be from 1 KiB to 1 MiB, got '1023'");
	set_ok(&cfg, "max-header-size", "1024");
	assert_int_equal(cfg.max_header_bytes, 1024);
	set_ok(&cfg, "max-header-size", "1M");
	assert_int_equal(cfg.max_header_bytes, MIB);
	set_bad(&cfg, "max-header-size", "1048577", "must be from");
	set_bad(&cfg, "max-header-size", "0", "must be from");
	assert_int_equal(cfg.max_header_bytes, MIB);

	/* relay-buffer: at least 16 KiB */
	set_bad(&cfg, "relay-buffer", "16383", "must be from 16 KiB");
	set_ok(&cfg, "relay-buffer", "16k");
	assert_int_equal(cfg.relay_buffer_bytes, 16 * KIB);

	/* store-queue-bytes: a size, 1M to 64G */
	set_bad(&cfg, "store-queue-bytes", "512K", "must be from");
	set_ok(&cfg, "store-queue-bytes", "128M");
	assert_int_equal(cfg.store_queue_bytes, 128u << 20);
	/* store-queue: a count, at least 16; suffixes still multiply */
	set_bad(&cfg, "store-queue", "15", "must be from 16 to");
	set_bad(&cfg, "store-queue", "lots", "expected a number like");
	set_ok(&cfg, "store-queue", "16");
	assert_int_equal(cfg.store_queue_max, 16);
	set_ok(&cfg, "store-queue", "8K");
	assert_int_equal(cfg.store_queue_max, 8192);
	set_bad(&cfg, "store-queue", "1G", "must be from 16 to");
	assert_int_equal(cfg.store_queue_max, 8192);
	config_free(&cfg);
}

static void
test_bools_levels_numbers(void **state)
{
	static const char *const yes[] = {
	    "yes", "true", "on", "1", "YES", "True", "On"};
	static const char *const no[] = {
	    "no", "false", "off", "0", "NO", "False", "OFF"};
	static const char *const bad[] = {"maybe", "2", "y", "n", "yes!", "-1"};
	struct config cfg;

	(void)state;
	config_init(&cfg);
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		cfg.quiet = 0;
		set_ok(&cfg, "quiet", yes[i]);
		assert_int_equal(cfg.quiet, 1);
	}
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		cfg.record_flows = 1;
		set_ok(&cfg, "record-flows", no[i]);
		assert_int_equal(cfg.record_flows, 0);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		set_bad(&cfg, "record-flows", bad[i], "expected yes or no");

	set_ok(&cfg, "log-level", "warn");
	assert_int_equal(cfg.log_level, 0);
	set_ok(&cfg, "log-level", "info");
	assert_int_equal(cfg.log_level, 1);
	set_ok(&cfg, "log-level", "debug");
	assert_int_equal(cfg.log_level, 2);
	set_bad(&cfg, "log-level", "trace", "expected warn, info or debug");
	set_bad(&cfg, "log-level", "3", "expected warn, info or debug");
	assert_int_equal(cfg.log_level, 2);

	set_ok(&cfg, "workers", "256");
	assert_int_equal(cfg.workers, 256);
	set_ok(&cfg, "workers", "0");
	assert_int_equal(cfg.workers, 0);
	set_bad(&cfg, "workers", "257", "from 0 to 256, got '257'");
	set_bad(&cfg, "workers", "-1", "from 0 to 256");
	set_bad(&cfg, "workers", "zero", "from 0 to 256");
	set_bad(&cfg, "workers", "4K", "from 0 to 256");
	set_bad(&cfg, "workers", "99999999999999999999999", "from 0 to 256");
	assert_int_equal(cfg.workers, 0);

	set_ok(&cfg, "upstream-pool-per-host", "1024");
	assert_int_equal(cfg.upstream_pool_per_host, 1024);
	set_bad(&cfg, "upstream-pool-per-host", "1025", "from 0 to 1024");
	assert_int_equal(cfg.upstream_pool_per_host, 1024);
	config_free(&cfg);
}

static void
listen_ok(const char *spec, const char *host, unsigned port)
{
	struct config_listen l;
	char err[256] = "";

	memset(&l, 0xa5, sizeof(l));
	if (config_parse_listen(spec, &l, err, sizeof(err)) != 0)
		fail_msg("listen '%s': %s", spec, err);
	assert_int_equal(l.mode, CONFIG_LISTEN_HTTP);
	assert_string_equal(l.host, host);
	assert_int_equal(l.port, port);
}

static void
listen_bad(const char *spec, const char *want)
{
	struct config_listen l, before;
	char err[256] = "";

	memset(&l, 0x5a, sizeof(l));
	before = l;
	assert_int_equal(config_parse_listen(spec, &l, err, sizeof(err)), -1);
	if (strstr(err, want) == NULL)
		fail_msg("listen '%s': got '%s', wanted '%s'", spec, err, want);
	/* a failed parse leaves the output alone */
	assert_memory_equal(&l, &before, sizeof(l));
}

static void
test_listen_forms(void **state)
{
	(void)state;
	listen_ok("127.0.0.1:8080", "127.0.0.1", 8080);
	listen_ok("0.0.0.0:1", "0.0.0.0", 1);
	listen_ok("10.1.2.3:65535", "10.1.2.3", 65535);
	listen_ok("[::1]:8080", "::1", 8080);
	listen_ok("[::]:3128", "::", 3128);
	listen_ok("[fe80::1:2]:80", "fe80::1:2", 80);
	listen_ok("localhost:8080", "127.0.0.1", 8080);
	listen_ok("LocalHost:8080", "127.0.0.1", 8080);
	listen_ok("http@127.0.0.1:8080", "127.0.0.1", 8080);
	listen_ok("http@[::1]:9", "::1", 9);
	listen_ok("http@localhost:81", "127.0.0.1", 81);

	/* the stream listeners */
	struct config_listen m;
	char merr[256];
	assert_int_equal(config_parse_listen(
			     "socks5@127.0.0.1:1080", &m, merr, sizeof(merr)),
	    0);
	assert_int_equal(m.mode, CONFIG_LISTEN_SOCKS5);
	assert_int_equal(m.port, 1080);
	assert_int_equal(config_parse_listen(
			     "Transparent@[::1]:8081", &m, merr, sizeof(merr)),
	    0);
	assert_int_equal(m.mode, CONFIG_LISTEN_TRANSPARENT);
	assert_string_equal(m.host, "::1");
	assert_string_equal(m.target_host, "");

	/* reverse: a fixed origin after '=', by name or address */
	assert_int_equal(config_parse_listen("reverse@127.0.0.1:8443="
					     "origin.test:443",
			     &m, merr, sizeof(merr)),
	    0);
	assert_int_equal(m.mode, CONFIG_LISTEN_REVERSE);
	assert_string_equal(m.host, "127.0.0.1");
	assert_int_equal(m.port, 8443);
	assert_string_equal(m.target_host, "origin.test");
	assert_int_equal(m.target_port, 443);
	assert_int_equal(config_parse_listen("REVERSE@[::1]:9=[::1]:8443", &m,
			     merr, sizeof(merr)),
	    0);
	assert_int_equal(m.mode, CONFIG_LISTEN_REVERSE);
	assert_string_equal(m.host, "::1");
	assert_string_equal(m.target_host, "::1");
	assert_int_equal(m.target_port, 8443);
	assert_int_equal(config_parse_listen("reverse@localhost:9="
					     "10.0.0.1:65535",
			     &m, merr, sizeof(merr)),
	    0);
	assert_string_equal(m.host, "127.0.0.1");
	assert_string_equal(m.target_host, "10.0.0.1");
	assert_int_equal(m.target_port, 65535);
	/* the same port on another address is another server */
	assert_int_equal(config_parse_listen("reverse@127.0.0.1:8443="
					     "10.0.0.1:8443",
			     &m, merr, sizeof(merr)),
	    0);

	listen_bad("127.0.0.1:0", "port must be 1..65535, got '0'");
	listen_bad("127.0.0.1:65536", "port must be 1..65535");
	listen_bad("127.0.0.1:", "port must be 1..65535");
	listen_bad("127.0.0.1:80x", "port must be 1..65535");
	listen_bad("127.0.0.1:-1", "port must be 1..65535");
	listen_bad("[::1]:0", "port must be 1..65535");
	listen_bad("127.0.0.1", "expected host:port");
	listen_bad("8080", "expected host:port");
	listen_bad(":8080", "missing host");
	listen_bad("[]:8080", "missing host");
	listen_bad("example.com:80", "not a numeric IPv4 address");
	listen_bad("256.0.0.1:80", "not a numeric IPv4 address");
	listen_bad("127.1:80", "not a numeric IPv4 address");
	listen_bad("[127.0.0.1]:80", "not a numeric IPv6 address");
	listen_bad("[::g]:80", "not a numeric IPv6 address");
	listen_bad("::1:8080", "needs brackets");
	listen_bad("[::1]8080", "expected ':port' after ']'");
	listen_bad("[::1]", "expected ':port' after ']'");
	listen_bad("[::1:8080", "missing ']'");
	listen_bad("socks4@127.0.0.1:1080", "unknown listen mode 'socks4'");
	listen_bad("reverse@127.0.0.1:8443", "needs its origin");
	listen_bad("127.0.0.1:8443=origin.test:443", "only a reverse");
	listen_bad("socks5@127.0.0.1:1080=origin.test:443", "only a reverse");
	listen_bad("reverse@127.0.0.1:8443=", "expected host:port");
	listen_bad("reverse@127.0.0.1:8443=origin.test", "expected host:port");
	listen_bad("reverse@127.0.0.1:8443=origin.test:0", "port must be");
	listen_bad("reverse@127.0.0.1:8443=:443", "missing host");
	listen_bad("reverse@127.0.0.1:8443=::1:443", "needs brackets");
	listen_bad("reverse@127.0.0.1:8443=[::g]:443", "not a numeric IPv6");
	listen_bad("reverse@127.0.0.1:8443=a/b:443", "not a host name");
	listen_bad("reverse@127.0.0.1:8443=a b:443", "not a host name");
	listen_bad("reverse@example.com:8443=origin.test:443",
	    "not a numeric IPv4 address");
	listen_bad("reverse@127.0.0.1:0=origin.test:443", "port must be");
	listen_bad("reverse@127.0.0.1:8443=127.0.0.1:8443", "to itself");
	listen_bad("reverse@127.0.0.1:8443=LOCALHOST:8443", "to itself");
	listen_bad("reverse@0.0.0.0:8443=10.0.0.1:8443", "to itself");
	listen_bad("reverse@[::1]:8443=[::1]:8443", "to itself");
	listen_bad("@127.0.0.1:1080", "unknown listen mode ''");
	listen_bad("", "expected host:port");
}

static void
test_listen_append_and_limit(void **state)
{
	struct config cfg;
	char spec[32];

	(void)state;
	config_init(&cfg);
	/* the first listen appends to an empty list: no default to replace */
	for (int i = 0; i < CONFIG_MAX_LISTEN; i++) {
		snprintf(spec, sizeof(spec), "127.0.0.1:%d", 9000 + i);
		set_ok(&cfg, "listen", spec);
		assert_int_equal(cfg.nlisten, i + 1);
		assert_int_equal(cfg.listen[i].port, 9000 + i);
	}
	set_bad(&cfg, "listen", "127.0.0.1:9999", "too many listen addresses");
	assert_int_equal(cfg.nlisten, CONFIG_MAX_LISTEN);
	config_free(&cfg);

	/* a bad spec does not count */
	config_init(&cfg);
	set_bad(&cfg, "listen", "127.0.0.1:0", "port");
	assert_int_equal(cfg.nlisten, 0);
	set_bad(&cfg, "listen", "bogus@127.0.0.1:1", "mode");
	assert_int_equal(cfg.nlisten, 0);
	config_free(&cfg);
}

static void
test_dns_servers(void **state)
{
	struct config cfg;

	(void)state;
	config_init(&cfg);
	set_ok(&cfg, "dns-server", "127.0.0.53");
	set_ok(&cfg, "dns-server", "127.0.0.1:5353");
	set_ok(&cfg, "dns-server", "[::1]:53");
	set_ok(&cfg, "dns-server", "2001:db8::1");
	assert_int_equal(cfg.ndns, 4);
	assert_string_equal(cfg.dns_servers[0], "127.0.0.53");
	assert_string_equal(cfg.dns_servers[1], "127.0.0.1:5353");
	assert_string_equal(cfg.dns_servers[2], "[::1]:53");
	assert_string_equal(cfg.dns_servers[3], "2001:db8::1");
	set_bad(&cfg, "dns-server", "9.9.9.9", "too many DNS servers");
	assert_int_equal(cfg.ndns, CONFIG_MAX_DNS);
	config_free(&cfg);

	config_init(&cfg);
	set_bad(&cfg, "dns-server", "dns.google", "expected a numeric IP");
	set_bad(&cfg, "dns-server", "dns.google:53", "expected a numeric IP");
	set_bad(&cfg, "dns-server", "1.2.3.4:0", "port must be 1..65535");
	set_bad(&cfg, "dns-server", "1.2.3.4:99999", "port must be 1..65535");
	set_bad(&cfg, "dns-server", "[::1]:x", "port must be 1..65535");
	set_bad(&cfg, "dns-server", "[::1", "missing ']'");
	set_bad(&cfg, "dns-server", "[1.2.3.4]:53", "expected a numeric IP");
	set_bad(&cfg, "dns-server", ":53", "missing host");
	set_bad(&cfg, "dns-server", "::zz", "expected a numeric IP");
	assert_int_equal(cfg.ndns, 0);
	set_ok(&cfg, "dns-server", "[::1]");
	assert_int_equal(cfg.ndns, 1);
	config_free(&cfg);
}

static void
test_file_ok(void **state)
{
	struct config cfg;
	char path[64], err[512];

	(void)state;
	config_init(&cfg);
	assert_int_equal(load_text(&cfg,
			     "# a comment\n"
			     "\n"
			     "   \t\n"
			     "  # an indented comment\n"
			     "listen 127.0.0.1:9001\n"
			     "listen\t[::1]:9002   # trailing comment\n"
			     "db   /tmp/a#b.db  \n" /* '#' in a word stays */
			     "workers 3\r\n"        /* CRLF */
			     "\tquiet\ton\n"
			     "connect-timeout 250ms #\n"
			     "hosts-file /etc/my hosts\n" /* rest of line */
			     "dns-server 127.0.0.1:53\n"
			     "dns-server [::1]:53\n"
			     "store-queue 32", /* no final newline */
			     path, err, sizeof(err)),
	    0);
	assert_string_equal(err, "");
	assert_int_equal(cfg.nlisten, 2);
	assert_string_equal(cfg.listen[0].host, "127.0.0.1");
	assert_int_equal(cfg.listen[0].port, 9001);
	assert_string_equal(cfg.listen[1].host, "::1");
	assert_int_equal(cfg.listen[1].port, 9002);
	assert_string_equal(cfg.db_path, "/tmp/a#b.db");
	assert_int_equal(cfg.workers, 3);
	assert_int_equal(cfg.quiet, 1);
	assert_int_equal(cfg.connect_timeout_ms, 250);
	assert_string_equal(cfg.hosts_file, "/etc/my hosts");
	assert_int_equal(cfg.ndns, 2);
	assert_string_equal(cfg.dns_servers[1], "[::1]:53");
	assert_int_equal(cfg.store_queue_max, 32);
	/* untouched settings keep their defaults */
	assert_int_equal(cfg.idle_timeout_ms, 60000);
	config_free(&cfg);

	/* an empty file is fine and changes nothing */
	config_init(&cfg);
	assert_int_equal(load_text(&cfg, "", path, err, sizeof(err)), 0);
	assert_defaults(&cfg);
	config_free(&cfg);
}

/* Load text, expect failure with exactly "PATH:" followed by want. */
static void
file_bad(const char *text, const char *want)
{
	struct config cfg;
	char path[64], err[512], expect[640];

	config_init(&cfg);
	assert_int_equal(load_text(&cfg, text, path, err, sizeof(err)), -1);
	snprintf(expect, sizeof(expect), "%s:%s", path, want);
	assert_string_equal(err, expect);
	config_free(&cfg);
}

static void
test_file_errors(void **state)
{
	(void)state;
	file_bad("foo 1\n", "1: unknown setting 'foo'");
	file_bad("# one\n\nworkers 2\nfoo bar baz\nworkers 3\n",
	    "4: unknown setting 'foo'");
	file_bad("# c\ndns-server 127.0.0.1:53\nconnect-timeout x\n",
	    "3: connect-timeout: expected a duration like 500ms, 10s or 2m, "
	    "got 'x'");
	file_bad(
	    "\n\n\n\n\nmax-header-size\n", "6: max-header-size: missing value");
	file_bad("record-flows maybe\n",
	    "1: record-flows: expected yes or no (or true/false, on/off, "
	    "1/0), got 'maybe'");
	file_bad("listen 127.0.0.1:8080\nlisten 127.0.0.1:0\n",
	    "2: listen: port must be 1..65535, got '0'");
	file_bad("\r\nconnect_timeout 5s\r\n",
	    "2: unknown setting 'connect_timeout'");
	file_bad(
	    "connect-timeout=5s\n", "1: unknown setting 'connect-timeout=5s'");
	file_bad("max-header-size 2M\n",
	    "1: max-header-size: must be from 1 KiB to 1 MiB, got '2M'");
}

static void
test_file_stops_at_first_error(void **state)
{
	struct config cfg;
	char path[64], err[512];

	(void)state;
	config_init(&cfg);
	assert_int_equal(load_text(&cfg,
			     "workers 2\n"
			     "workers lots\n"
			     "workers 5\n"
			     "bogus 1\n",
			     path, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, ":2: workers:"));
	/* the line before the error applied, the lines after it did not */
	assert_int_equal(cfg.workers, 2);
	config_free(&cfg);
}

static void
test_file_missing(void **state)
{
	struct config cfg;
	char err[512], expect[600];
	const char *path = "/nonexistent/peephole-test.conf";

	(void)state;
	config_init(&cfg);
	assert_int_equal(config_load_file(&cfg, path, err, sizeof(err)), -1);
	snprintf(expect, sizeof(expect), "%s: cannot open: %s", path,
	    strerror(ENOENT));
	assert_string_equal(err, expect);
	assert_defaults(&cfg);

	/* a directory opens but cannot be read */
	assert_int_equal(config_load_file(&cfg, "/", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "/: cannot"));
	assert_defaults(&cfg);
	config_free(&cfg);
}

/* Run under ASan: replaced strings must be freed, exactly once. */
static void
test_strings_replace(void **state)
{
	struct config cfg;
	char path[64], err[512];

	(void)state;
	config_init(&cfg);
	set_ok(&cfg, "db", "one.db");
	set_ok(&cfg, "db", "two.db");
	set_ok(&cfg, "hosts-file", "/tmp/h1");
	set_ok(&cfg, "hosts-file", "/tmp/h2");
	assert_int_equal(load_text(&cfg,
			     "db three.db\ndb four.db\n"
			     "hosts-file /tmp/h3\n"
			     "dns-server 1.1.1.1\n",
			     path, err, sizeof(err)),
	    0);
	assert_string_equal(cfg.db_path, "four.db");
	assert_string_equal(cfg.hosts_file, "/tmp/h3");
	set_ok(&cfg, "db", "five.db");
	assert_string_equal(cfg.db_path, "five.db");
	config_free(&cfg);
	assert_null(cfg.db_path);
	assert_null(cfg.hosts_file);
	assert_int_equal(cfg.ndns, 0);
	config_free(&cfg);

	/* a failing load still leaves everything for config_free */
	config_init(&cfg);
	assert_int_equal(load_text(&cfg,
			     "db x.db\ndns-server 1.1.1.1\nhosts-file /h\n"
			     "nope\n",
			     path, err, sizeof(err)),
	    -1);
	assert_string_equal(cfg.db_path, "x.db");
	config_free(&cfg);
}

/*
 * The shipped conf/peephole.conf: as is it must load and change nothing;
 * with every "#setting value" line switched on it must still load, and the
 * values it documents must be the real defaults.
 */
/* TCP timelines: the interval is a duration (0 turns sampling off, at
 * most an hour), the cap a count (0 records none). */
static void
test_tcp_samples(void **state)
{
	struct config cfg;

	(void)state;
	config_init(&cfg);
	set_ok(&cfg, "tcp-sample-interval", "50ms");
	assert_int_equal(cfg.tcp_sample_interval_ms, 50);
	set_ok(&cfg, "tcp-sample-interval", "2s");
	assert_int_equal(cfg.tcp_sample_interval_ms, 2000);
	set_ok(&cfg, "tcp-sample-interval", "0");
	assert_int_equal(cfg.tcp_sample_interval_ms, 0);
	set_ok(&cfg, "tcp-sample-interval", "60m");
	assert_int_equal(cfg.tcp_sample_interval_ms, 3600000);
	set_bad(&cfg, "tcp-sample-interval", "61m", "at most 3600s");
	set_bad(&cfg, "tcp-sample-interval", "fast", "duration");
	set_bad(&cfg, "tcp-sample-interval", "-1ms", "duration");
	assert_int_equal(cfg.tcp_sample_interval_ms, 3600000);
	set_ok(&cfg, "tcp-samples-max", "5");
	assert_int_equal(cfg.tcp_samples_max, 5);
	set_ok(&cfg, "tcp-samples-max", "0");
	assert_int_equal(cfg.tcp_samples_max, 0);
	set_bad(&cfg, "tcp-samples-max", "many", NULL);
	set_bad(&cfg, "tcp-samples-max", "-5", NULL);
	set_bad(&cfg, "tcp-samples-max", "17M", NULL);
	config_free(&cfg);
}

static void
test_shipped_conf(void **state)
{
	const char *shipped = "conf/peephole.conf";
	struct config cfg;
	char path[64], err[512], *line = NULL, *text = NULL;
	size_t cap = 0, len = 0, tcap = 0;
	ssize_t n;
	FILE *fp;
	int on = 0;

	(void)state;
	config_init(&cfg);
	if (config_load_file(&cfg, shipped, err, sizeof(err)) != 0)
		fail_msg("%s (run from the top of the tree)", err);
	assert_defaults(&cfg);
	config_free(&cfg);

	fp = fopen(shipped, "r");
	assert_non_null(fp);
	while ((n = getline(&line, &cap, fp)) != -1) {
		char *p = line;

		/* "#key value": a setting; "# text" or "##": prose */
		if (p[0] == '#' && p[1] >= 'a' && p[1] <= 'z') {
			p++;
			n--;
			on++;
		}
		if (len + (size_t)n + 1 > tcap) {
			char *t;

			tcap = (len + (size_t)n + 1) * 2;
			t = realloc(text, tcap);
			assert_non_null(t);
			text = t;
		}
		memcpy(text + len, p, (size_t)n);
		len += (size_t)n;
		text[len] = '\0';
	}
	free(line);
	fclose(fp);
	assert_non_null(text);
	assert_true(on >= 20); /* one line per setting, at least */

	config_init(&cfg);
	if (load_text(&cfg, text, path, err, sizeof(err)) != 0)
		fail_msg("switched-on shipped conf: %s", err);
	free(text);
	/* the examples: the default listener, one v6 and a reverse one, two
	 * DNS servers */
	assert_int_equal(cfg.nlisten, 3);
	assert_string_equal(cfg.listen[0].host, "127.0.0.1");
	assert_int_equal(cfg.listen[0].port, 8080);
	assert_int_equal(cfg.listen[2].mode, CONFIG_LISTEN_REVERSE);
	assert_string_equal(cfg.listen[2].target_host, "api.example.com");
	assert_int_equal(cfg.listen[2].target_port, 443);
	assert_int_equal(cfg.ndns, 2);
	assert_string_equal(cfg.hosts_file, "/etc/hosts");
	cfg.nlisten = 0;
	for (int i = 0; i < cfg.ndns; i++)
		free(cfg.dns_servers[i]);
	cfg.ndns = 0;
	free(cfg.hosts_file);
	cfg.hosts_file = NULL;
	assert_defaults(&cfg);
	config_free(&cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_every_key),
	    cmocka_unit_test(test_unknown_and_empty),
	    cmocka_unit_test(test_durations),
	    cmocka_unit_test(test_sizes),
	    cmocka_unit_test(test_bools_levels_numbers),
	    cmocka_unit_test(test_listen_forms),
	    cmocka_unit_test(test_listen_append_and_limit),
	    cmocka_unit_test(test_dns_servers),
	    cmocka_unit_test(test_file_ok),
	    cmocka_unit_test(test_file_errors),
	    cmocka_unit_test(test_file_stops_at_first_error),
	    cmocka_unit_test(test_file_missing),
	    cmocka_unit_test(test_strings_replace),
	    cmocka_unit_test(test_tcp_samples),
	    cmocka_unit_test(test_shipped_conf),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
