/*
 * args: small helpers the sub-commands share for parsing their arguments.
 */
#ifndef PEEPHOLE_CLI_ARGS_H
#define PEEPHOLE_CLI_ARGS_H

#include <stddef.h>
#include <stdint.h>

#include "proxy/cli/output.h"

struct option;

/* A parse function's answer when --help was printed: stop, exit 0. */
#define ARGS_HELP (-1)

/* An option callback's answer for an option this (sub-)command does not
 * take although the table has it: reported as an unknown option. */
#define ARGS_UNKNOWN (-2)

/*
 * One option of a command, as getopt_long returned it (ch, the table's
 * value; arg, its value or NULL): store it in opts. Returns 0 to go on,
 * ARGS_UNKNOWN, or a CLI_* status to stop with once it said why.
 */
typedef int (*args_opt_cb)(int ch, char *arg, void *opts);

/* What args_parse needs to know about a command. */
struct args_spec {
	const char *cmd;               /* "replay": messages, help hint */
	const char *help;              /* --help prints this on stdout */
	const char *shortopts;         /* NULL: ":h" (must start with ':') */
	const struct option *longopts; /* "help" must map to 'h' */
	args_opt_cb opt;               /* every other option */
};

/*
 * The option loop every command runs: a fresh getopt state, --help
 * printed (ARGS_HELP), an unknown option or a missing value reported
 * (CLI_USAGE), the rest handed to spec->opt with opts. Returns CLI_OK
 * with optind at the first operand, else what ended the loop.
 */
int args_parse(const struct args_spec *spec, int argc, char **argv, void *opts)
    __attribute__((warn_unused_result));

/* No operands after the options: CLI_OK, else CLI_USAGE with a message
 * naming the first one. */
int args_no_operands(const char *cmd, int argc, char **argv)
    __attribute__((warn_unused_result));

/*
 * --json ('j') or --csv (any other ch) into *fmt; the two exclude each
 * other. 0, or CLI_USAGE after a message.
 */
int args_format(const char *cmd, int ch, enum out_format *fmt)
    __attribute__((warn_unused_result));

/*
 * The options of a command that prints a table: --json and --csv ('j',
 * 'c', through args_format), --wide ('w'), --utc ('u'). 0 when ch was one
 * of them (stored), ARGS_UNKNOWN when not, CLI_USAGE after a message.
 */
int args_table(const char *cmd, int ch, enum out_format *fmt, int *wide,
    int *utc) __attribute__((warn_unused_result));

/*
 * Exactly one operand left, the positive id of a `what` ("request") as
 * `lister` ("requests") prints it, into *id. CLI_OK, or CLI_USAGE after a
 * message.
 */
int args_one_id(const char *cmd, const char *what, const char *lister, int argc,
    char **argv, int64_t *id) __attribute__((warn_unused_result));

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
