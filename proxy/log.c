/* log: see log.h. */
#include "proxy/log.h"

#include <errno.h>
#include <openssl/err.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static enum log_level log_level = LOG_LEVEL_INFO;

void
log_set_level(enum log_level level)
{
	log_level = level;
}

enum log_level
log_get_level(void)
{
	return log_level;
}

static void log_emit(const char *, const char *, const char *, va_list)
    __attribute__((format(printf, 3, 0)));

/* Format one line into a local buffer and write it with one call, so lines
 * from worker threads do not interleave. */
static void
log_emit(const char *prefix, const char *suffix, const char *fmt, va_list ap)
{
	char line[2048];
	int n;

	n = snprintf(line, sizeof(line), "peephole: %s", prefix);
	if (n < 0 || (size_t)n >= sizeof(line))
		n = 0;
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	if (suffix != NULL) {
		size_t len = strlen(line);
		snprintf(line + len, sizeof(line) - len, ": %s", suffix);
	}
	fprintf(stderr, "%s\n", line);
}

void
log_warn(const char *fmt, ...)
{
	va_list ap;
	char ebuf[128];
	int saved = errno;

	if (strerror_r(saved, ebuf, sizeof(ebuf)) != 0)
		snprintf(ebuf, sizeof(ebuf), "errno %d", saved);
	va_start(ap, fmt);
	log_emit("", ebuf, fmt, ap);
	va_end(ap);
	errno = saved;
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit("", NULL, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	if (log_level < LOG_LEVEL_INFO)
		return;
	va_start(ap, fmt);
	log_emit("", NULL, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	if (log_level < LOG_LEVEL_DEBUG)
		return;
	va_start(ap, fmt);
	log_emit("debug: ", NULL, fmt, ap);
	va_end(ap);
}

void
log_ssl_warnx(const char *fmt, ...)
{
	va_list ap;
	char errs[512];
	size_t off = 0;
	unsigned long e;

	errs[0] = '\0';
	while ((e = ERR_get_error()) != 0) {
		char one[256];
		ERR_error_string_n(e, one, sizeof(one));
		if (off < sizeof(errs)) {
			int n = snprintf(errs + off, sizeof(errs) - off, "%s%s",
			    off ? "; " : "", one);
			if (n > 0)
				off += (size_t)n;
		}
	}
	va_start(ap, fmt);
	log_emit("", errs[0] ? errs : "no OpenSSL error", fmt, ap);
	va_end(ap);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit("fatal: ", NULL, fmt, ap);
	va_end(ap);
	exit(1);
}

int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
