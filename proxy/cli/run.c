/* run: see run.h. */
#include "proxy/cli/run.h"

#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/config.h"
#include "proxy/log.h"
#include "proxy/net/server.h"
#include "proxy/store/flowline.h"
#include "proxy/store/replaydb.h"
#include "proxy/store/store.h"

static void
run_usage(FILE *f)
{
	fprintf(f,
	    "usage: peephole run [options]\n"
	    "\n"
	    "Start the proxy. Settings come from the defaults, then --conf, "
	    "then the flags.\n"
	    "\n"
	    "  --listen [MODE@]ADDR:PORT  MODE http (default), socks5 or "
	    "transparent;\n"
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
	    "  --set KEY=VALUE            any conf-file setting, e.g. --set "
	    "idle-timeout=30s\n"
	    "  -v, --verbose              CONNECT exchanges get a line too; "
	    "debug\n"
	    "                             logging on stderr\n"
	    "  -h, --help                 this help\n");
}

struct run_flag {
	const char *key;
	char *value;
};

int
cli_run(int argc, char **argv)
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
	    {"pinning-retry", required_argument, NULL, 'T'},
	    {"home", required_argument, NULL, 'H'},
	    {"replay-from", required_argument, NULL, 'R'},
	    {"filter", required_argument, NULL, 'F'},
	    {"ignore-param", required_argument, NULL, 'G'},
	    {"match-body", no_argument, NULL, 'M'},
	    {"forward-unmatched", no_argument, NULL, 'W'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct config cfg;
	struct run_flag *flags = NULL;
	int nflags = 0, ch, rc = 2, nlisten_flags = 0;
	const char *conf = NULL;
	char err[512];
	struct store *st = NULL;
	struct store_limits lim;
	struct replaydb *replay = NULL;

	config_init(&cfg);
	flags = calloc(2 * (size_t)argc + 1, sizeof(*flags));
	if (flags == NULL)
		goto out;
	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":vh", opts, NULL)) != -1) {
		switch (ch) {
		case 'l':
			flags[nflags].key = "listen";
			flags[nflags++].value = strdup(optarg);
			nlisten_flags++;
			break;
		case 'd':
			flags[nflags].key = "db";
			flags[nflags++].value = strdup(optarg);
			break;
		case 'T':
			flags[nflags].key = "pinning-retry";
			flags[nflags++].value = strdup(optarg);
			break;
		case 'w':
			flags[nflags].key = "workers";
			flags[nflags++].value = strdup(optarg);
			break;
		case 'q':
			flags[nflags].key = "quiet";
			flags[nflags++].value = strdup("yes");
			break;
		case 'v':
			flags[nflags].key = "log-level";
			flags[nflags++].value = strdup("debug");
			flags[nflags].key = "verbose";
			flags[nflags++].value = strdup("yes");
			break;
		case 'O':
			flags[nflags].key = "format";
			flags[nflags++].value = strdup(optarg);
			break;
		case 'c':
			conf = optarg;
			break;
		case 'I':
		case 'P':
		case 'B':
		case 'U':
		case 'H':
		case 'R':
		case 'F':
		case 'G':
			flags[nflags].key = ch == 'I' ? "intercept"
			    : ch == 'P'               ? "passthrough"
			    : ch == 'B'               ? "block"
			    : ch == 'U'               ? "upstream-ca"
			    : ch == 'R'               ? "replay-from"
			    : ch == 'F'               ? "replay-filter"
			    : ch == 'G'               ? "replay-ignore-param"
						      : "home";
			flags[nflags++].value = strdup(optarg);
			break;
		case 'M':
		case 'W':
			flags[nflags].key = ch == 'M'
			    ? "replay-match-body"
			    : "replay-forward-unmatched";
			flags[nflags++].value = strdup("yes");
			break;
		case 'K':
			flags[nflags].key = "insecure-upstream";
			flags[nflags++].value = strdup("yes");
			break;
		case 'N':
			flags[nflags].key = "auto-passthrough";
			flags[nflags++].value = strdup("no");
			break;
		case 's': {
			char *eq = strchr(optarg, '=');
			if (eq == NULL) {
				fprintf(stderr,
				    "peephole run: --set wants "
				    "KEY=VALUE, got '%s'\n",
				    optarg);
				goto out;
			}
			*eq = '\0';
			flags[nflags].key = optarg;
			flags[nflags++].value = strdup(eq + 1);
			if (strcmp(optarg, "listen") == 0)
				nlisten_flags++;
			break;
		}
		case 'h':
			run_usage(stdout);
			rc = 0;
			goto out;
		case ':':
			fprintf(stderr, "peephole run: %s needs a value\n",
			    argv[optind - 1]);
			goto out;
		default:
			fprintf(stderr, "peephole run: unknown option '%s'\n",
			    argv[optind - 1]);
			run_usage(stderr);
			goto out;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "peephole run: unexpected argument '%s'\n",
		    argv[optind]);
		goto out;
	}
	if (conf != NULL && config_load_file(&cfg, conf, err, sizeof(err))) {
		fprintf(stderr, "peephole: %s\n", err);
		goto out;
	}
	/* listen flags replace the file's listeners rather than adding */
	if (nlisten_flags > 0)
		cfg.nlisten = 0;
	for (int i = 0; i < nflags; i++) {
		if (flags[i].value == NULL ||
		    config_set(&cfg, flags[i].key, flags[i].value, err,
			sizeof(err)) == -1) {
			fprintf(stderr, "peephole run: --%s: %s\n",
			    strcmp(flags[i].key, "log-level") == 0
				? "verbose"
				: flags[i].key,
			    flags[i].value ? err : "out of memory");
			goto out;
		}
	}
	if (cfg.nlisten == 0 &&
	    config_parse_listen("127.0.0.1:8080", &cfg.listen[cfg.nlisten++],
		err, sizeof(err)) == -1)
		goto out;
	log_set_level((enum log_level)cfg.log_level);
	/*
	 * Captured bodies are up to body-capture-limit each and live for one
	 * exchange. Served by mmap, every one would be fresh zeroed pages
	 * (page faults dominated a 1 MiB relay in perf); from the heap they
	 * are reused.
	 */
	if (cfg.body_capture_bytes < 64 * 1024 * 1024) {
		mallopt(M_MMAP_THRESHOLD,
		    (int)(cfg.body_capture_bytes * 2 + 65536));
		mallopt(M_TRIM_THRESHOLD,
		    (int)(cfg.body_capture_bytes * 8 + 1024 * 1024));
	}
	/* a capture to answer from is checked before anything is created */
	if (cfg.replay_from != NULL) {
		struct replaydb_opts ro = {cfg.replay_from, cfg.replay_filter,
		    cfg.replay_match_body, cfg.replay_ignore,
		    cfg.nreplay_ignore};
		int usage = 0;
		replay = replaydb_open(&ro, &usage, err, sizeof(err));
		if (replay == NULL) {
			fprintf(
			    stderr, "peephole run: --replay-from: %s\n", err);
			rc = usage ? 2 : 1;
			goto out;
		}
	} else if (cfg.replay_filter != NULL || cfg.replay_match_body ||
	    cfg.replay_forward_unmatched || cfg.nreplay_ignore > 0) {
		fprintf(stderr,
		    "peephole run: --filter, --match-body, --ignore-param and "
		    "--forward-unmatched go with --replay-from\n");
		rc = 2;
		goto out;
	}
	lim.queue_max = cfg.store_queue_max;
	lim.queue_bytes_max = cfg.store_queue_bytes;
	if (cfg.record_flows)
		st = store_open(cfg.db_path, lim, err, sizeof(err));
	else
		st = store_open_discard(lim);
	if (st == NULL) {
		fprintf(stderr, "peephole: %s\n",
		    cfg.record_flows ? err : "cannot start the store");
		replaydb_close(replay);
		rc = 1;
		goto out;
	}
	/* the writer prints each flow line once its row is written */
	store_set_printer(st, flowline_print, &cfg.format);
	rc = server_run(&cfg, st, replay);
	st = NULL; /* server_run closed it */
out:
	if (flags != NULL)
		for (int i = 0; i < nflags; i++)
			free(flags[i].value);
	free(flags);
	config_free(&cfg);
	return rc;
}
