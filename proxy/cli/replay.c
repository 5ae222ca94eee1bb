/*
 * replay: `peephole replay` — send logged requests again, straight to their
 * origins or through a proxy, on one event loop, a bounded number at a
 * time. Names are resolved and origins' certificates verified by the
 * proxy's own code (proxy/net/resolve.c, proxy/net/tls.c). Each replay is
 * recorded as a new request (replay_of = the original) through the flow store's
 * writer, and the command prints the original and the replay side by side.
 *
 * This file is the command: its options, what the replays run on, and the
 * exit status. The rest is in the files replay_int.h names.
 */
#include "proxy/cli/cli.h"

#include <errno.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <getopt.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "conf/config.h"
#include "proxy/cli/args.h"
#include "proxy/cli/replay_int.h"
#include "proxy/net/record.h"
#include "proxy/net/resolve.h"
#include "proxy/net/tls.h"
#include "proxy/store/db.h"
#include "proxy/store/store.h"

static const char replay_help[] =
    "usage: peephole replay [ID...] [--filter EXPR] [options]\n"
    "\n"
    "Send logged requests again — method, URL, headers and body as\n"
    "captured — and print each original beside its replay: status, size,\n"
    "time and whether the response body matched. Each replay is recorded\n"
    "as a new request with replay_of naming the original.\n"
    "\n"
    "  --filter EXPR          the requests matching a filter expression\n"
    "  --via HOST:PORT        through this HTTP proxy (CONNECT for https)\n"
    "  --set-header 'N: V'    replace (or add) header N; repeatable\n"
    "  --remove-header N      drop header N; repeatable\n"
    "  --body FILE            send FILE as the body instead\n"
    "  --repeat N             send each request N times (default 1)\n"
    "  --concurrency N        at most N in flight (default 1)\n"
    "  --allow-truncated      send a body the log cut short, as logged\n"
    "  --resolve HOST:ADDR    connect to ADDR for HOST (as curl); "
    "repeatable\n"
    "  --dns-server ADDR      resolve through this server "
    "(ip[:port]), as the\n"
    "                         proxy's dns-server setting; repeatable\n"
    "  --hosts-file FILE      names from FILE first (default "
    "/etc/hosts)\n"
    "  --upstream-ca FILE     also trust FILE (PEM) for origins\n"
    "  --insecure-upstream    do not verify origin certificates\n"
    "  --timeout SECONDS      per replay, from start to end (default 30)\n"
    "  --diff                 show how each answer differs: status,\n"
    "                         end-to-end headers, and the bodies decoded\n"
    "                         (JSON by path, text as a unified diff,\n"
    "                         binary by size and SHA-256)\n"
    "  --json                 print a JSON array instead\n"
    "  --db FILE              database (default " CLI_DEFAULT_DB ")\n"
    "  --help                 print this help\n"
    "\n"
    "Exit status: 0 when every replay got a response, 1 when one failed or\n"
    "was refused, 2 for usage errors.\n";

/* ---- the command ---- */

/* --via HOST:PORT into o. 0, or CLI_USAGE after a message. */
static int
replay_opt_via(struct replay_opts *o, char *arg)
{
	const char *colon = strrchr(arg, ':');
	int64_t port;

	if (colon == NULL || colon == arg ||
	    (size_t)(colon - arg) >= sizeof(o->via_host) ||
	    args_int(REPLAY_CMD, "via port", colon + 1, 1, 65535, &port) == -1)
		return args_usage(
		    REPLAY_CMD, "--via wants HOST:PORT, got '%s'", arg);
	memcpy(o->via_host, arg, (size_t)(colon - arg));
	o->via_host[colon - arg] = '\0';
	o->via_port = (unsigned)port;
	o->via = arg;
	return 0;
}

/* The repeatable edits: --set-header, --remove-header, --resolve. */
static int
replay_opt_edit(struct replay_opts *o, int ch, char *arg)
{
	switch (ch) {
	case 'S':
		if (strchr(arg, ':') == NULL || arg[0] == ':' ||
		    strpbrk(arg, "\r\n") != NULL || o->nset >= REPLAY_MAX_EDITS)
			return args_usage(REPLAY_CMD,
			    "--set-header wants 'Name: value', got '%s'", arg);
		o->set[o->nset++] = arg;
		return 0;
	case 'X':
		if (arg[0] == '\0' || strchr(arg, ':') != NULL ||
		    o->nremove >= REPLAY_MAX_EDITS)
			return args_usage(REPLAY_CMD,
			    "--remove-header wants a header name, got '%s'",
			    arg);
		o->remove[o->nremove++] = arg;
		return 0;
	default:
		if (strchr(arg, ':') == NULL || o->nresolve >= REPLAY_MAX_EDITS)
			return args_usage(REPLAY_CMD,
			    "--resolve wants HOST:ADDR, got '%s'", arg);
		o->resolve[o->nresolve++] = arg;
		return 0;
	}
}

/* A numeric option: --repeat, --concurrency, --timeout. */
static int
replay_opt_number(struct replay_opts *o, int ch, const char *arg)
{
	int rc = ch == 'r'
	    ? args_int(REPLAY_CMD, "repeat", arg, 1, 100000, &o->repeat)
	    : ch == 'c'
	    ? args_int(REPLAY_CMD, "concurrency", arg, 1, 1000, &o->concurrency)
	    : args_int(REPLAY_CMD, "timeout", arg, 1, 3600, &o->timeout_s);

	return rc == -1 ? CLI_USAGE : 0;
}

static int
replay_opt(int ch, char *arg, void *opts)
{
	struct replay_opts *o = opts;

	switch (ch) {
	case 'd':
		o->db = arg;
		break;
	case 'f':
		o->filter = arg;
		break;
	case 'v':
		return replay_opt_via(o, arg);
	case 'S':
	case 'X':
	case 'R':
		return replay_opt_edit(o, ch, arg);
	case 'r':
	case 'c':
	case 't':
		return replay_opt_number(o, ch, arg);
	case 'b':
		o->body_file = arg;
		break;
	case 'U':
		o->upstream_ca = arg;
		break;
	case 'N':
		if (o->ndns == REPLAY_MAX_EDITS)
			return args_usage(REPLAY_CMD, "too many --dns-server");
		o->dns[o->ndns++] = arg;
		break;
	case 'H':
		o->hosts_file = arg;
		break;
	case 'T':
		o->allow_truncated = 1;
		break;
	case 'K':
		o->insecure = 1;
		break;
	case 'j':
		o->json = 1;
		break;
	case 'D':
		o->diff = 1;
		break;
	}
	return 0;
}

static int
replay_parse(int argc, char **argv, struct replay_opts *o)
{
	static const struct option longopts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"filter", required_argument, NULL, 'f'},
	    {"via", required_argument, NULL, 'v'},
	    {"set-header", required_argument, NULL, 'S'},
	    {"remove-header", required_argument, NULL, 'X'},
	    {"body", required_argument, NULL, 'b'},
	    {"repeat", required_argument, NULL, 'r'},
	    {"concurrency", required_argument, NULL, 'c'},
	    {"allow-truncated", no_argument, NULL, 'T'},
	    {"resolve", required_argument, NULL, 'R'},
	    {"upstream-ca", required_argument, NULL, 'U'},
	    {"dns-server", required_argument, NULL, 'N'},
	    {"hosts-file", required_argument, NULL, 'H'},
	    {"insecure-upstream", no_argument, NULL, 'K'},
	    {"timeout", required_argument, NULL, 't'},
	    {"json", no_argument, NULL, 'j'},
	    {"diff", no_argument, NULL, 'D'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static const struct args_spec spec = {
	    REPLAY_CMD, replay_help, NULL, longopts, replay_opt};
	int rc;

	memset(o, 0, sizeof(*o));
	o->db = CLI_DEFAULT_DB;
	o->repeat = 1;
	o->concurrency = 1;
	o->timeout_s = 30;
	if ((rc = args_parse(&spec, argc, argv, o)) != CLI_OK ||
	    (rc = args_ids(REPLAY_CMD, argc, argv, &o->ids, &o->nids)) != 0)
		return rc;
	if (o->nids == 0 && o->filter == NULL)
		return args_usage(
		    REPLAY_CMD, "which requests? give IDs or --filter EXPR");
	return CLI_OK;
}

/* After the store has written everything: the ids the replays got. */
static void
replay_new_ids(sqlite3 *db, struct replay_run *run)
{
	sqlite3_stmt *s = NULL;

	if (sqlite3_prepare_v2(db,
		"SELECT id FROM requests WHERE conn_id = ? AND replay_of = ?",
		-1, &s, NULL) != SQLITE_OK)
		return;
	for (size_t i = 0; i < run->njobs; i++) {
		struct replay_job *j = &run->jobs[i];
		if (j->refused != NULL)
			continue;
		sqlite3_reset(s);
		sqlite3_bind_int64(s, 1, j->conn_id);
		sqlite3_bind_int64(s, 2, j->orig_id);
		if (sqlite3_step(s) == SQLITE_ROW)
			j->new_id = sqlite3_column_int64(s, 0);
	}
	sqlite3_finalize(s);
}

/* --body FILE's length in *len, -1 without one. CLI_OK, or CLI_USAGE
 * when it is not a file (printed). */
static int
replay_body_len(const struct replay_opts *o, int64_t *len)
{
	struct stat sb;

	*len = -1;
	if (o->body_file == NULL)
		return CLI_OK;
	if (stat(o->body_file, &sb) == -1 || !S_ISREG(sb.st_mode)) {
		fprintf(stderr, "peephole replay: --body %s: %s\n",
		    o->body_file,
		    errno ? strerror(errno) : "not a regular file");
		return CLI_USAGE;
	}
	*len = (int64_t)sb.st_size;
	return CLI_OK;
}

/*
 * What the replays run on: the loop, a resolver configured as the proxy's
 * is by default, the origin TLS context, and the store the replays are
 * written through. CLI_OK, or CLI_ERROR (printed); replay_run_free frees
 * what was set up either way.
 */
static int
replay_setup(struct replay_run *run, const struct config *cfg)
{
	const struct replay_opts *o = run->o;
	char err[512];

	if ((run->base = event_base_new()) == NULL ||
	    (run->dns = evdns_base_new(
		 run->base, EVDNS_BASE_DISABLE_WHEN_INACTIVE)) == NULL ||
	    resolve_configure_dns(run->dns, cfg) == -1) {
		fprintf(
		    stderr, "peephole replay: cannot set up the resolver\n");
		return CLI_ERROR;
	}
	if ((run->ctx = tls_origin_ctx_new(o->upstream_ca, err, sizeof(err))) ==
	    NULL) {
		fprintf(stderr, "peephole replay: %s\n", err);
		return CLI_ERROR;
	}
	/* the replays become rows in the same file, written as the proxy
	 * writes them: by the store's own thread */
	if ((run->st = store_open(
		 o->db, (struct store_limits){0, 0}, err, sizeof(err))) != NULL)
		store_set_deriver(run->st, record_derive);
	if (run->st == NULL || store_start(run->st) == -1) {
		fprintf(stderr, "peephole replay: %s\n",
		    run->st ? "cannot start the store" : err);
		return CLI_ERROR;
	}
	return CLI_OK;
}

/* --dns-server and --hosts-file into cfg. CLI_OK, or CLI_USAGE after a
 * message. */
static int
replay_resolver_settings(const struct replay_opts *o, struct config *cfg)
{
	char err[256];

	for (int i = 0; i < o->ndns; i++)
		if (config_set(
			cfg, "dns-server", o->dns[i], err, sizeof(err)) == -1)
			return args_usage(REPLAY_CMD, "--dns-server: %s", err);
	if (o->hosts_file != NULL &&
	    config_set(cfg, "hosts-file", o->hosts_file, err, sizeof(err)) ==
		-1)
		return args_usage(REPLAY_CMD, "--hosts-file: %s", err);
	return CLI_OK;
}

/* 1 if a replay was refused, failed, or got no answer. */
static int
replay_any_failed(const struct replay_run *run)
{
	for (size_t i = 0; i < run->njobs; i++)
		if (run->jobs[i].refused || run->jobs[i].error ||
		    run->jobs[i].status == 0)
			return 1;
	return 0;
}

static void
replay_run_free(struct replay_run *run)
{
	store_close(run->st);
	/* the resolver before the loop: freeing it ends lookups still in
	 * flight, whose requests free their events on the loop */
	if (run->dns != NULL)
		evdns_base_free(run->dns, 1);
	if (run->base != NULL)
		event_base_free(run->base);
	for (size_t i = 0; i < run->njobs; i++)
		replay_job_free(&run->jobs[i]);
	free(run->jobs);
	SSL_CTX_free(run->ctx);
}

int
cli_replay(int argc, char **argv)
{
	struct replay_opts o;
	struct replay_run run;
	struct config defaults;
	sqlite3 *db = NULL;
	int rc;
	int64_t file_len;

	memset(&run, 0, sizeof(run));
	config_init(&defaults);
	if ((rc = replay_parse(argc, argv, &o)) != CLI_OK) {
		rc = rc == ARGS_HELP ? CLI_OK : rc;
		goto out;
	}
	run.o = &o;
	if ((rc = replay_resolver_settings(&o, &defaults)) != CLI_OK)
		goto out;
	run.capture = defaults.body_capture_bytes;
	if ((rc = replay_body_len(&o, &file_len)) != CLI_OK)
		goto out;
	rc = CLI_ERROR;
	if ((db = db_open_readonly(REPLAY_CMD, o.db)) == NULL)
		goto out;
	if ((rc = replay_load(db, &o, &run, file_len)) != CLI_OK)
		goto out;
	if (o.insecure)
		fprintf(stderr,
		    "peephole replay: --insecure-upstream: origin "
		    "certificates are NOT verified\n");
	if ((rc = replay_setup(&run, &defaults)) != CLI_OK)
		goto out;
	replay_dispatch(&run);
	replay_new_ids(db, &run);
	replay_print(db, &run, o.json);
	rc = replay_any_failed(&run) ? CLI_ERROR : CLI_OK;
out:
	replay_run_free(&run);
	config_free(&defaults);
	sqlite3_close(db);
	free(o.ids);
	return rc;
}
