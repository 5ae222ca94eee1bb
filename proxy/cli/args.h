/*
 * args: small helpers the sub-commands share for parsing their arguments.
 */
#ifndef PEEPHOLE_CLI_ARGS_H
#define PEEPHOLE_CLI_ARGS_H

#include <stddef.h>
#include <stdint.h>

/* A parse function's answer when --help was printed: stop, exit 0. */
#define ARGS_HELP (-1)

/*
 * Parse s as a decimal integer in [min, max] into *out. On failure print
 * "peephole CMD: bad value for --FLAG: 'S' (...)" on stderr and return -1.
 */
int args_int(const char *cmd, const char *flag, const char *s, int64_t min,
    int64_t max, int64_t *out) __attribute__((warn_unused_result));

/* Print "peephole CMD: MESSAGE" and the --help hint on stderr. Returns
 * CLI_USAGE so callers can `return args_usage(...)`. */
int args_usage(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * What to say when getopt_long returned '?' (unknown option) or ':'
 * (option without its value): the word at fault, then the --help hint.
 * Returns CLI_USAGE. Needs the optstring to start with ':' so getopt stays
 * quiet and tells the two apart.
 */
int args_bad(const char *cmd, int ch, int argc, char **argv);

/*
 * The request ids left in argv[optind..argc), each a positive integer,
 * into a malloc'd array (*ids, *nids; the caller frees it, also on
 * failure). Returns 0, CLI_USAGE after a message for a bad id, or
 * CLI_ERROR on ENOMEM.
 */
int args_ids(const char *cmd, int argc, char **argv, int64_t **ids,
    size_t *nids) __attribute__((warn_unused_result));

/*
 * Prepare getopt_long for a fresh parse. The dispatcher and the unit tests
 * call several commands in one process, and glibc keeps state between
 * calls unless optind is 0.
 */
void args_reset(void);

#endif
