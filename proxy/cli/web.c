/*
 * web: `peephole web --db FILE`, the web UI over a capture on its own,
 * read-only (replay and retry are refused; HAR, curl and every view work).
 * The server is proxy/web/web.h; this file only parses the command line
 * and waits for SIGINT / SIGTERM.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/cli/args.h"
#include "proxy/cli/cli.h"
#include "proxy/web/web.h"

#define WEB_CMD "web"

static const char web_help[] =
    "usage: peephole web [--db FILE] [--listen [ADDR:]PORT]\n"
    "                    [--web-password PASSWORD]\n"
    "\n"
    "Serve the web UI over a capture, read-only: the flow list (live\n"
    "while a `peephole run` writes the same file), bodies, the domain\n"
    "catalogue, stream plots, HAR and curl export. Replay and retry\n"
    "need `peephole run --web`. Prints the link to open, token included:\n"
    "  web UI: http://127.0.0.1:8081/?token=...\n"
    "\n"
    "  --db FILE                the capture (default " CLI_DEFAULT_DB ")\n"
    "  --listen [ADDR:]PORT     where to listen (default "
    "127.0.0.1:8081;\n"
    "                           port 0 picks a free one)\n"
    "  --web-password PASSWORD  also ask for this (HTTP Basic; required\n"
    "                           off loopback); PEEPHOLE_WEB_PASSWORD in\n"
    "                           the environment keeps it out of ps\n"
    "  --help                   print this help\n";

struct web_cli_opts {
	const char *db, *listen, *password;
};

static int
web_cli_opt(int ch, char *arg, void *opts)
{
	struct web_cli_opts *o = opts;

	if (ch == 'd')
		o->db = arg;
	else if (ch == 'l')
		o->listen = arg;
	else if (ch == 'p')
		o->password = arg;
	return 0;
}

int
cli_web(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"listen", required_argument, NULL, 'l'},
	    {"web-password", required_argument, NULL, 'p'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static const struct args_spec spec = {
	    WEB_CMD, web_help, ":h", opts, web_cli_opt};
	struct web_cli_opts o = {CLI_DEFAULT_DB, NULL, NULL};
	struct web_opts wo;
	struct web *w;
	sigset_t stop;
	char err[512], host[64];
	unsigned port;
	int rc, sig;

	if ((rc = args_parse(&spec, argc, argv, &o)) != CLI_OK)
		return rc == ARGS_HELP ? CLI_OK : rc;
	if ((rc = args_no_operands(WEB_CMD, argc, argv)) != CLI_OK)
		return rc;
	if (web_parse_listen(
		o.listen, host, sizeof(host), &port, err, sizeof(err)) == -1)
		return args_usage(WEB_CMD, "--listen: %s", err);
	memset(&wo, 0, sizeof(wo));
	wo.listen = o.listen;
	wo.password = o.password;
	wo.db_path = o.db;
	wo.readonly = 1;
	wo.announce = stdout;
	/* SIGINT / SIGTERM are taken by sigwait below, in this thread */
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	if ((w = web_start(&wo, err, sizeof(err))) == NULL) {
		fprintf(stderr, "peephole web: %s\n", err);
		return CLI_ERROR;
	}
	while (sigwait(&stop, &sig) != 0)
		;
	web_stop(w);
	return CLI_OK;
}
