/* args: see args.h. */
#include "proxy/cli/args.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "proxy/cli/cli.h"

int
args_int(const char *cmd, const char *flag, const char *s, int64_t min,
    int64_t max, int64_t *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (s[0] == '\0' || *end != '\0' || errno == ERANGE || v < min ||
	    v > max) {
		args_usage(cmd,
		    "bad value for --%s: '%s' (want an integer from %lld to "
		    "%lld)",
		    flag, s, (long long)min, (long long)max);
		return -1;
	}
	*out = v;
	return 0;
}

int
args_usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "peephole %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'peephole %s --help'.\n", cmd);
	return CLI_USAGE;
}

int
args_bad(const char *cmd, int ch, int argc, char **argv)
{
	const char *word = "?";

	/* getopt has moved past the word it rejected. */
	if (optind > 0 && optind - 1 < argc)
		word = argv[optind - 1];
	if (ch == ':')
		return args_usage(cmd, "option '%s' needs a value", word);
	return args_usage(cmd, "unknown option '%s'", word);
}

void
args_reset(void)
{
	optind = 0;
	opterr = 0;
}

int
args_ids(const char *cmd, int argc, char **argv, int64_t **ids, size_t *nids)
{
	*nids = 0;
	if ((*ids = calloc((size_t)(argc - optind) + 1, sizeof(**ids))) == NULL)
		return CLI_ERROR;
	for (; optind < argc; optind++)
		if (args_int(cmd, "ID", argv[optind], 1, INT64_MAX,
			&(*ids)[(*nids)++]) == -1)
			return CLI_USAGE;
	return 0;
}

int
args_parse(const struct args_spec *spec, int argc, char **argv, void *opts)
{
	const char *shortopts = spec->shortopts ? spec->shortopts : ":h";
	int ch, rc;

	args_reset();
	while ((ch = getopt_long(
		    argc, argv, shortopts, spec->longopts, NULL)) != -1) {
		switch (ch) {
		case 'h':
			fputs(spec->help, stdout);
			return ARGS_HELP;
		case '?':
		case ':':
			return args_bad(spec->cmd, ch, argc, argv);
		default:
			rc = spec->opt(ch, optarg, opts);
			if (rc == ARGS_UNKNOWN)
				return args_bad(spec->cmd, '?', argc, argv);
			if (rc != 0)
				return rc;
		}
	}
	return CLI_OK;
}

int
args_no_operands(const char *cmd, int argc, char **argv)
{
	if (optind < argc)
		return args_usage(
		    cmd, "unexpected argument '%s'", argv[optind]);
	return CLI_OK;
}

int
args_format(const char *cmd, int ch, enum out_format *fmt)
{
	if (*fmt != OUT_TEXT)
		return args_usage(cmd, "--json and --csv are exclusive");
	*fmt = ch == 'j' ? OUT_JSON : OUT_CSV;
	return 0;
}

int
args_table(const char *cmd, int ch, enum out_format *fmt, int *wide, int *utc)
{
	switch (ch) {
	case 'j':
	case 'c':
		return args_format(cmd, ch, fmt);
	case 'w':
		*wide = 1;
		return 0;
	case 'u':
		*utc = 1;
		return 0;
	}
	return ARGS_UNKNOWN;
}

int
args_one_id(const char *cmd, const char *what, const char *lister, int argc,
    char **argv, int64_t *id)
{
	const char *s;
	char *end;

	if (optind >= argc)
		return args_usage(cmd, "missing %s ID", what);
	if (optind + 1 < argc)
		return args_usage(
		    cmd, "unexpected argument '%s'", argv[optind + 1]);
	s = argv[optind];
	errno = 0;
	*id = strtoll(s, &end, 10);
	if (s[0] == '\0' || *end != '\0' || errno != 0 || *id < 1)
		return args_usage(cmd,
		    "bad %s ID '%s' (want a number from `peephole %s`)", what,
		    s, lister);
	return CLI_OK;
}
