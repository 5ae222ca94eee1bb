/*
 * log: one line per event on stderr, safe from any thread.
 *
 * log_warn appends strerror(errno); log_ssl_warnx drains the OpenSSL error
 * queue into the same line. Connection lines start with "c<ID>" and then
 * key=value pairs.
 */
#ifndef PEEPHOLE_LOG_H
#define PEEPHOLE_LOG_H

#include <stdint.h>

enum log_level {
	LOG_LEVEL_WARN = 0,
	LOG_LEVEL_INFO = 1,
	LOG_LEVEL_DEBUG = 2,
};

void log_set_level(enum log_level level);
enum log_level log_get_level(void);

void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_ssl_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* For start-up errors and broken invariants: log and exit(1). */
void fatalx(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

/* Wall-clock time in microseconds since the epoch. */
int64_t now_us(void);

#endif
