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
