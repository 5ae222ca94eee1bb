/* run: see run.h. */
#include "proxy/cli/run.h"

#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/config.h"
#include "proxy/cli/args.h"
#include "proxy/cli/cli.h"
#include "proxy/log.h"
#include "proxy/net/record.h"
#include "proxy/net/server.h"
#include "proxy/store/flowline.h"
#include "proxy/store/replaydb.h"
#include "proxy/store/store.h"
#include "proxy/web/web.h"

static const char run_help[] =
    "usage: peephole run [options]\n"
    "\n"
    "Start the proxy. Settings come from the defaults, then --conf, "
    "then the flags.\n"
    "\n"
    "  --listen [MODE@]ADDR:PORT  MODE http (default), socks5 or "
    "transparent;\n"
    "                             reverse@ADDR:PORT=HOST:PORT sends "
    "every\n"
    "                             connection to HOST:PORT;\n"
    "                             repeatable; default "
    "127.0.0.1:8080;\n"
    "                             IPv6 as [::1]:8080)\n"
    "  --db FILE                  record flows into FILE (default "
    "peephole.db)\n"
    "  --conf FILE                read settings from FILE (see "
    "conf/peephole.conf)\n"
    "  --workers N                worker threads (default: one per "
    "core)\n"
    "  --quiet                    no line per exchange on stdout\n"
    "  --format text|json         the lines on stdout: text "
    "(default), or one\n"
    "                             JSON object per line\n"
    "  --intercept PATTERN        intercept TLS to matching hosts "
    "(repeatable)\n"
    "  --passthrough PATTERN      relay matching hosts untouched "
    "(repeatable)\n"
    "  --block PATTERN            refuse matching hosts (repeatable)\n"
    "                             PATTERN: name, *.suffix, IP or "
    "CIDR, [:port];\n"
    "                             rules apply in order, first match "
    "wins\n"
    "  --upstream-ca FILE         also trust FILE (PEM) for origins\n"
    "  --insecure-upstream        do not verify origin certificates\n"
    "  --no-auto-passthrough      do not learn pinned hosts\n"
    "  --no-http2                 speak HTTP/1.1 only: h2-only clients "
    "and h2c\n"
    "                             are passed through\n"
    "  --pinning-retry DURATION   pass a host through this long after "
    "its client\n"
    "                             rejects the CA, doubled per "
    "rejection (60s)\n"
    "  --home DIR                 where the CA lives (default "
    "$PEEPHOLE_HOME or ~/.peephole)\n"
    "  --replay-from DB           answer requests from a capture "
    "(server replay):\n"
    "                             same method and URL, logged "
    "order; others 404\n"
    "  --filter EXPR              only the capture's exchanges "
    "matching EXPR\n"
    "  --match-body               the request body must match too\n"
    "  --ignore-param NAME        leave query parameter NAME out of "
    "the match\n"
    "                             (repeatable)\n"
    "  --forward-unmatched        send unmatched requests to their "
    "origins\n"
    "  --web [ADDR:]PORT          serve the web UI there too (default "
    "127.0.0.1:8081);\n"
    "                             prints its link, token included\n"
    "  --web-password PASSWORD    the UI also asks for this (needed "
    "off loopback)\n"
    "  --set KEY=VALUE            any conf-file setting, e.g. --set "
    "idle-timeout=30s\n"
    "  -v, --verbose              CONNECT exchanges get a line too; "
    "debug\n"
    "                             logging on stderr\n"
    "  -h, --help                 this help\n";

#define RUN_CMD "run"

/* A flag as the conf-file setting it stands for. */
struct run_flag {
	const char *key;
	char *value;
};

/* The command line, read before the settings are applied. */
struct run_args {
	struct run_flag *flags; /* in the order given */
	int nflags;
	int nlisten; /* --listen (or --set listen=) given this often */
	const char *conf;
};

/* The conf-file key of a flag that takes its value as given. */
static const char *
run_flag_key(int ch)
{
	switch (ch) {
	case 'l':
		return "listen";
	case 'd':
		return "db";
	case 'T':
		return "pinning-retry";
	case 'w':
		return "workers";
	case 'O':
		return "format";
	case 'I':
		return "intercept";
	case 'P':
		return "passthrough";
	case 'B':
		return "block";
	case 'U':
		return "upstream-ca";
	case 'R':
		return "replay-from";
	case 'F':
		return "replay-filter";
	case 'G':
		return "replay-ignore-param";
	case 'H':
		return "home";
	case 'Y':
		return "web-password";
	}
	return NULL;
}

/* The conf-file key a yes/no flag sets, and to what. */
static const char *
run_switch_key(int ch, const char **value)
{
	*value = "yes";
	switch (ch) {
	case 'q':
		return "quiet";
	case 'M':
		return "replay-match-body";
	case 'W':
		return "replay-forward-unmatched";
	case 'K':
		return "insecure-upstream";
	case 'N':
		*value = "no";
		return "auto-passthrough";
	case 'J':
		*value = "no";
		return "http2";
	}
	return NULL;
}

/* Keep key = a copy of value (a NULL copy is reported when applied). */
static void
run_add(struct run_args *a, const char *key, const char *value)
{
	a->flags[a->nflags].key = key;
	a->flags[a->nflags++].value = strdup(value);
	if (strcmp(key, "listen") == 0)
		a->nlisten++;
}

static int
run_opt(int ch, char *arg, void *opts)
{
	struct run_args *a = opts;
	const char *key, *value;
	char *eq;

	if ((key = run_flag_key(ch)) != NULL)
		run_add(a, key, arg);
	else if ((key = run_switch_key(ch, &value)) != NULL)
		run_add(a, key, value);
	else if (ch == 'E')
		run_add(a, "web", arg != NULL ? arg : WEB_DEFAULT_LISTEN);
	else if (ch == 'v') {
		run_add(a, "log-level", "debug");
		run_add(a, "verbose", "yes");
	} else if (ch == 'c')
		a->conf = arg;
	else if (ch == 's') {
		if ((eq = strchr(arg, '=')) == NULL)
			return args_usage(
			    RUN_CMD, "--set wants KEY=VALUE, got '%s'", arg);
		*eq = '\0';
		run_add(a, arg, eq + 1);
	}
	return 0;
}

/* The flags into a (a->flags sized for every one). CLI_OK, ARGS_HELP or
 * CLI_USAGE (printed). */
static int
run_parse(int argc, char **argv, struct run_args *a)
{
	static const struct option opts[] = {
	    {"listen", required_argument, NULL, 'l'},
	    {"db", required_argument, NULL, 'd'},
	    {"conf", required_argument, NULL, 'c'},
	    {"workers", required_argument, NULL, 'w'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"format", required_argument, NULL, 'O'},
	    {"set", required_argument, NULL, 's'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"intercept", required_argument, NULL, 'I'},
	    {"passthrough", required_argument, NULL, 'P'},
	    {"block", required_argument, NULL, 'B'},
	    {"upstream-ca", required_argument, NULL, 'U'},
	    {"insecure-upstream", no_argument, NULL, 'K'},
	    {"no-auto-passthrough", no_argument, NULL, 'N'},
	    {"no-http2", no_argument, NULL, 'J'},
	    {"pinning-retry", required_argument, NULL, 'T'},
	    {"home", required_argument, NULL, 'H'},
	    {"replay-from", required_argument, NULL, 'R'},
	    {"filter", required_argument, NULL, 'F'},
	    {"ignore-param", required_argument, NULL, 'G'},
	    {"match-body", no_argument, NULL, 'M'},
	    {"forward-unmatched", no_argument, NULL, 'W'},
	    {"web", optional_argument, NULL, 'E'},
	    {"web-password", required_argument, NULL, 'Y'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static const struct args_spec spec = {
	    RUN_CMD, run_help, ":vh", opts, run_opt};
	int rc;

	if ((rc = args_parse(&spec, argc, argv, a)) != CLI_OK)
		return rc;
	return args_no_operands(RUN_CMD, argc, argv);
}

/* The web settings make sense: 0, or -1 after a message. */
static int
run_check_web(const struct config *cfg)
{
	char host[64], err[256];
	unsigned port;

	if (cfg->web_listen == NULL) {
		if (cfg->web_password == NULL)
			return 0;
		fprintf(
		    stderr, "peephole run: --web-password goes with --web\n");
		return -1;
	}
	if (web_parse_listen(cfg->web_listen, host, sizeof(host), &port, err,
		sizeof(err)) == -1) {
		fprintf(stderr, "peephole run: --web: %s\n", err);
		return -1;
	}
	if (!cfg->record_flows) {
		fprintf(stderr,
		    "peephole run: the web UI shows the capture: it "
		    "needs record-flows yes\n");
		return -1;
	}
	return 0;
}

/*
 * `--web PORT` as `--web=PORT`: getopt takes an optional argument only
 * glued on, and --web alone must work too. A following word is taken when
 * it looks like [ADDR:]PORT. Rewrites argv in place; the strings are
 * kept in *keep (freed by the caller).
 */
static int
run_glue_web(int argc, char **argv, char ***keep)
{
	int n = 0;

	if ((*keep = calloc((size_t)argc + 1, sizeof(**keep))) == NULL)
		return -1;
	for (int i = 1; i + 1 < argc; i++) {
		const char *v = argv[i + 1];
		if (strcmp(argv[i], "--web") != 0 || v[0] == '-' ||
		    v[strspn(v, "0123456789.:[]abcdefABCDEFlocalhst")] !=
			'\0' ||
		    strpbrk(v, "0123456789") == NULL)
			continue;
		size_t len = strlen(v) + sizeof("--web=");
		if (((*keep)[n] = malloc(len)) == NULL)
			return -1;
		snprintf((*keep)[n], len, "--web=%s", v);
		argv[i] = (*keep)[n++];
		memmove(&argv[i + 1], &argv[i + 2],
		    (size_t)(argc - i - 2) * sizeof(*argv));
		argv[--argc] = NULL;
	}
	return argc;
}

/*
 * The settings: the defaults, then --conf, then the flags in order
 * (--listen replacing the file's listeners rather than adding). 0, or -1
 * after a message.
 */
static int
run_configure(struct config *cfg, const struct run_args *a)
{
	char err[512];

	if (a->conf != NULL &&
	    config_load_file(cfg, a->conf, err, sizeof(err))) {
		fprintf(stderr, "peephole: %s\n", err);
		return -1;
	}
	if (a->nlisten > 0)
		cfg->nlisten = 0;
	for (int i = 0; i < a->nflags; i++) {
		const struct run_flag *f = &a->flags[i];
		if (f->value == NULL ||
		    config_set(cfg, f->key, f->value, err, sizeof(err)) == -1) {
			fprintf(stderr, "peephole run: --%s: %s\n",
			    strcmp(f->key, "log-level") == 0 ? "verbose"
							     : f->key,
			    f->value ? err : "out of memory");
			return -1;
		}
	}
	if (cfg->nlisten == 0 &&
	    config_parse_listen("127.0.0.1:8080", &cfg->listen[cfg->nlisten++],
		err, sizeof(err)) == -1)
		return -1;
	return run_check_web(cfg);
}

/*
 * Captured bodies are up to body-capture-limit each and live for one
 * exchange. Served by mmap, every one would be fresh zeroed pages (page
 * faults dominated a 1 MiB relay in perf); from the heap they are reused.
 */
static void
run_tune_malloc(const struct config *cfg)
{
	if (cfg->body_capture_bytes < 64 * 1024 * 1024) {
		mallopt(M_MMAP_THRESHOLD,
		    (int)(cfg->body_capture_bytes * 2 + 65536));
		mallopt(M_TRIM_THRESHOLD,
		    (int)(cfg->body_capture_bytes * 8 + 1024 * 1024));
	}
}

/*
 * The capture to answer from, opened and checked before anything else is
 * created, into *replay (NULL without --replay-from). 0, or the exit
 * status after a message.
 */
static int
run_open_replay(const struct config *cfg, struct replaydb **replay)
{
	char err[512];
	int usage = 0;

	*replay = NULL;
	if (cfg->replay_from != NULL) {
		struct replaydb_opts ro = {cfg->replay_from, cfg->replay_filter,
		    cfg->replay_match_body, cfg->replay_ignore,
		    cfg->nreplay_ignore};
		if ((*replay = replaydb_open(&ro, &usage, err, sizeof(err))) ==
		    NULL) {
			fprintf(
			    stderr, "peephole run: --replay-from: %s\n", err);
			return usage ? CLI_USAGE : CLI_ERROR;
		}
	} else if (cfg->replay_filter != NULL || cfg->replay_match_body ||
	    cfg->replay_forward_unmatched || cfg->nreplay_ignore > 0) {
		fprintf(stderr,
		    "peephole run: --filter, --match-body, --ignore-param and "
		    "--forward-unmatched go with --replay-from\n");
		return CLI_USAGE;
	}
	return 0;
}

/* The flow store (or one that discards, without record-flows). NULL after
 * a message. */
static struct store *
run_open_store(struct config *cfg)
{
	struct store_limits lim;
	struct store *st;
	char err[512];

	lim.queue_max = cfg->store_queue_max;
	lim.queue_bytes_max = cfg->store_queue_bytes;
	if (cfg->record_flows)
		st = store_open(cfg->db_path, lim, err, sizeof(err));
	else
		st = store_open_discard(lim);
	if (st == NULL) {
		fprintf(stderr, "peephole: %s\n",
		    cfg->record_flows ? err : "cannot start the store");
		return NULL;
	}
	/* the writer prints each flow line once its row is written */
	store_set_printer(st, flowline_print, &cfg->format);
	store_set_deriver(st, record_derive);
	return st;
}

/* The web UI over the capture being written. NULL after a message. */
static struct web *
run_start_web(const struct config *cfg)
{
	struct web_opts wo = {cfg->web_listen, cfg->web_password, cfg->db_path,
	    0, cfg->upstream_ca, cfg->insecure_upstream, cfg->dns_servers,
	    cfg->ndns, cfg->hosts_file, stdout};
	struct web *w;
	char err[512];

	if ((w = web_start(&wo, err, sizeof(err))) == NULL)
		fprintf(stderr, "peephole run: web UI: %s\n", err);
	return w;
}

int
cli_run(int argc, char **argv)
{
	struct config cfg;
	struct run_args a = {NULL, 0, 0, NULL};
	struct replaydb *replay = NULL;
	struct store *st;
	struct web *web = NULL;
	char **keep = NULL;
	int rc = CLI_USAGE;

	config_init(&cfg);
	if ((argc = run_glue_web(argc, argv, &keep)) == -1) {
		rc = CLI_ERROR;
		goto out;
	}
	/* -v sets two keys: room for two a flag */
	if ((a.flags = calloc(2 * (size_t)argc + 1, sizeof(*a.flags))) == NULL)
		goto out;
	if ((rc = run_parse(argc, argv, &a)) != CLI_OK) {
		rc = rc == ARGS_HELP ? CLI_OK : rc;
		goto out;
	}
	rc = CLI_USAGE;
	if (run_configure(&cfg, &a) == -1)
		goto out;
	log_set_level((enum log_level)cfg.log_level);
	run_tune_malloc(&cfg);
	if ((rc = run_open_replay(&cfg, &replay)) != 0)
		goto out;
	if ((st = run_open_store(&cfg)) == NULL) {
		replaydb_close(replay);
		rc = CLI_ERROR;
		goto out;
	}
	if (cfg.web_listen != NULL && (web = run_start_web(&cfg)) == NULL) {
		store_close(st);
		replaydb_close(replay);
		rc = CLI_ERROR;
		goto out;
	}
	rc = server_run(&cfg, st, replay); /* closes st and replay */
	web_stop(web);
out:
	for (int i = 0; i < a.nflags; i++)
		free(a.flags[i].value);
	free(a.flags);
	for (int i = 0; keep != NULL && keep[i] != NULL; i++)
		free(keep[i]);
	free(keep);
	config_free(&cfg);
	return rc;
}
