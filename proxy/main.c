/*
 * peephole: an intercepting proxy that records what applications talk to.
 * main dispatches to the sub-commands in proxy/cli/.
 */
#include <stdio.h>
#include <string.h>

#include "proxy/cli/cli.h"
#include "proxy/cli/run.h"

struct main_cmd {
	const char *name;
	int (*fn)(int, char **);
	const char *what;
};

static const struct main_cmd main_cmds[] = {
    {"run", cli_run, "start the proxy (127.0.0.1:8080, writing peephole.db)"},
    {"domains", cli_domains, "the catalogue of every host seen"},
    {"requests", cli_requests, "list recorded HTTP exchanges"},
    {"show", cli_show,
	"one exchange in full (--body-out extracts its body); show stream ID"},
    {"streams", cli_streams,
	"streams relayed unread (mmTLS, pinned TLS, raw TCP): shape, names"},
    {"trace", cli_trace,
	"the path to server endpoints: TCP traceroute, hops stored"},
    {"passthrough", cli_passthrough,
	"list, retry or clear the hosts backed off from (pinning)"},
    {"ca", cli_ca, "create, locate and export the root CA; how to trust it"},
    {"setup", cli_setup,
	"how to point macOS, Windows, Linux, phones or a shell at the proxy"},
    {"replay", cli_replay,
	"send logged requests again and compare the answers"},
    {"export", cli_export,
	"logged requests as HAR, as a curl command, or their bodies as files"},
    {"web", cli_web,
	"the web UI over a capture, read-only (run --web serves it live)"},
    {"resolve-compare", cli_resolve_compare,
	"resolve names against several resolvers; where they disagree"},
    {"prune", cli_prune,
	"delete old or matching requests and what only they used"},
    {"geo", cli_geo, "country, AS and organisation of addresses; update"},
    {"locality", cli_locality,
	"where the traffic went: countries, networks, what left --home"},
    {NULL, NULL, NULL},
};

static void
main_usage(FILE *f)
{
	fprintf(f, "usage: peephole COMMAND [options]\n\ncommands:\n");
	for (const struct main_cmd *c = main_cmds; c->name; c++)
		fprintf(f, "  %-16s %s\n", c->name, c->what);
	fprintf(f,
	    "\n`peephole COMMAND --help` describes the command's "
	    "flags.\n");
}

int
main(int argc, char **argv)
{
	if (argc < 2) {
		main_usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		main_usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("peephole %s\n", PEEPHOLE_VERSION);
		return 0;
	}
	for (const struct main_cmd *c = main_cmds; c->name; c++)
		if (strcmp(argv[1], c->name) == 0)
			return c->fn(argc - 1, argv + 1);
	fprintf(stderr, "peephole: unknown command '%s'\n\n", argv[1]);
	main_usage(stderr);
	return 2;
}
