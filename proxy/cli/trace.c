/*
 * trace: `peephole trace`, the path to the server endpoints a capture saw
 * (--ip, --domain, --all): a TCP traceroute to each endpoint's real port
 * (proxy/trace/tracer.h), printed hop by hop as it goes, stored in traces
 * and trace_hops, each address with its country and AS (proxy/geo).
 * `peephole trace --list` lists the stored traces and `peephole show trace
 * ID` prints one.
 */
#include "proxy/cli/cli.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <jansson.h>
#include <netinet/in.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "ca/ca.h"
#include "proxy/cli/args.h"
#include "proxy/cli/output.h"
#include "proxy/cli/trace.h"
#include "proxy/geo/geo.h"
#include "proxy/store/db.h"
#include "proxy/trace/path.h"
#include "proxy/trace/tracer.h"

#define TRACE_CMD "trace"
#define TRACE_MAX_ENDPOINTS 1000
#define TRACE_CAP_MSG                                                          \
	"peephole trace: needs CAP_NET_RAW (run as root or `setcap "           \
	"cap_net_raw+ep peephole`)\n"

struct trace_opts {
	const char *db;
	const char *ip, *domain;
	int all, private_ok, list;
	int port; /* 0: the ports seen for --ip, else 443 */
	int64_t max_endpoints;
	struct tracer_opts t;
	enum out_format fmt;
};

/* One endpoint to trace. */
struct trace_target {
	char ip[PATH_IP_LEN];
	int port;
	char *domain; /* malloc'd, NULL when none */
};

struct trace_targets {
	struct trace_target *v;
	size_t n, cap;
	size_t
	    skipped;   /* left out: loopback, or not public without --private */
	size_t capped; /* left out: past --max-endpoints */
};

static const char trace_help[] =
    "usage: peephole trace (--ip IP [--port P] | --domain NAME | --all)\n"
    "                      [--private] [--max-endpoints N] [--max-hops N]\n"
    "                      [--probes N] [--rate N] [--timeout MS] [--json]\n"
    "                      [--db FILE]\n"
    "       peephole trace --list [--json] [--db FILE]\n"
    "\n"
    "The path to server endpoints, as a TCP traceroute to the endpoint's\n"
    "real port: TCP SYNs with TTL 1, 2, ... sent by connect(), the ICMP\n"
    "time exceeded of each router read on a raw socket, until the server\n"
    "answers (syn-ack, or rst on a closed port) or the hops run out. Each\n"
    "hop is printed as it completes (address, round trips, answer, country\n"
    "and AS or scope) and the trace is stored in the database; `peephole\n"
    "show trace ID` prints it again. Needs CAP_NET_RAW.\n"
    "\n"
    "  --ip IP             trace IP (any address, loopback too)\n"
    "  --port P            its port (default: the ports the capture saw\n"
    "                      for IP, else 443)\n"
    "  --domain NAME       the endpoints of connections and requests to NAME\n"
    "  --all               every server endpoint the capture saw; public\n"
    "                      addresses only unless --private\n"
    "  --private           --all and --domain take private, CGNAT and\n"
    "                      other non-public unicast addresses too\n"
    "  --max-endpoints N   trace at most N endpoints (default 20)\n"
    "  --max-hops N        highest TTL, 1-64 (default 30)\n"
    "  --probes N          probes per hop, 1-5 (default 3)\n"
    "  --rate N            probes sent per second at most (default 20)\n"
    "  --timeout MS        a probe unanswered this long is a timeout\n"
    "                      (default 2000)\n"
    "  --list              list the stored traces\n"
    "  --json              print JSON (an array of traces) instead\n"
    "  --db FILE           database (default " CLI_DEFAULT_DB ")\n"
    "  --help              print this help\n";

/* A bounded integer option into *out. 0, or CLI_USAGE (printed). */
static int
trace_int(const char *flag, const char *arg, int64_t min, int64_t max, int *out)
{
	int64_t v;

	if (args_int(TRACE_CMD, flag, arg, min, max, &v) == -1)
		return CLI_USAGE;
	*out = (int)v;
	return 0;
}

static int
trace_opt(int ch, char *arg, void *opts)
{
	struct trace_opts *o = opts;

	switch (ch) {
	case 'd':
		o->db = arg;
		return 0;
	case 'i':
		o->ip = arg;
		return 0;
	case 'D':
		o->domain = arg;
		return 0;
	case 'a':
		o->all = 1;
		return 0;
	case 'P':
		o->private_ok = 1;
		return 0;
	case 'l':
		o->list = 1;
		return 0;
	case 'p':
		return trace_int("port", arg, 1, 65535, &o->port);
	case 'm':
		return trace_int(
		    "max-hops", arg, 1, PATH_MAX_HOPS, &o->t.max_hops);
	case 'q':
		return trace_int(
		    "probes", arg, 1, PATH_MAX_PROBES, &o->t.nprobes);
	case 'r':
		return trace_int("rate", arg, 1, 1000, &o->t.rate);
	case 't':
		return trace_int("timeout", arg, 10, 60000, &o->t.timeout_ms);
	case 'e':
		return args_int(TRACE_CMD, "max-endpoints", arg, 1,
			   TRACE_MAX_ENDPOINTS, &o->max_endpoints) == -1
		    ? CLI_USAGE
		    : 0;
	}
	return args_format(TRACE_CMD, ch, &o->fmt);
}

/* What the options ask for, checked. CLI_OK or CLI_USAGE (printed). */
static int
trace_check(const struct trace_opts *o)
{
	unsigned char b[16];
	int n = (o->ip != NULL) + (o->domain != NULL) + o->all + o->list;

	if (n == 0)
		return args_usage(
		    TRACE_CMD, "say what to trace: --ip, --domain or --all");
	if (n > 1)
		return args_usage(TRACE_CMD,
		    "--ip, --domain, --all and --list exclude each other");
	if (o->ip != NULL && inet_pton(AF_INET, o->ip, b) != 1 &&
	    inet_pton(AF_INET6, o->ip, b) != 1)
		return args_usage(TRACE_CMD, "not an IP address: '%s'", o->ip);
	if (o->port != 0 && o->ip == NULL)
		return args_usage(TRACE_CMD, "--port goes with --ip");
	if (o->fmt == OUT_CSV)
		return args_usage(TRACE_CMD, "no --csv: use --json");
	return CLI_OK;
}

static int
trace_parse(int argc, char **argv, struct trace_opts *o)
{
	static const struct option longopts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"ip", required_argument, NULL, 'i'},
	    {"port", required_argument, NULL, 'p'},
	    {"domain", required_argument, NULL, 'D'},
	    {"all", no_argument, NULL, 'a'},
	    {"private", no_argument, NULL, 'P'},
	    {"max-endpoints", required_argument, NULL, 'e'},
	    {"max-hops", required_argument, NULL, 'm'},
	    {"probes", required_argument, NULL, 'q'},
	    {"rate", required_argument, NULL, 'r'},
	    {"timeout", required_argument, NULL, 't'},
	    {"list", no_argument, NULL, 'l'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static const struct args_spec spec = {
	    TRACE_CMD, trace_help, NULL, longopts, trace_opt};
	int rc;

	memset(o, 0, sizeof(*o));
	o->db = CLI_DEFAULT_DB;
	o->max_endpoints = 20;
	o->t.max_hops = 30;
	o->t.nprobes = 3;
	o->t.rate = 20;
	o->t.timeout_ms = 2000;
	if ((rc = args_parse(&spec, argc, argv, o)) != CLI_OK ||
	    (rc = args_no_operands(TRACE_CMD, argc, argv)) != CLI_OK)
		return rc;
	return trace_check(o);
}

static void
trace_targets_free(struct trace_targets *ts)
{
	size_t i;

	for (i = 0; i < ts->n; i++)
		free(ts->v[i].domain);
	free(ts->v);
	memset(ts, 0, sizeof(*ts));
}

/* Whether --all / --domain trace ip: never loopback, link-local,
 * multicast or unspecified (no path to trace); other non-public
 * addresses only with --private. */
static int
trace_wanted(const struct trace_opts *o, const char *ip)
{
	const char *scope = geo_scope(ip);
	unsigned char b[16];

	if (inet_pton(AF_INET, ip, b) != 1 && inet_pton(AF_INET6, ip, b) != 1)
		return 0;
	if (scope == NULL)
		return 1;
	if (strcmp(scope, "loopback") == 0 ||
	    strcmp(scope, "link-local") == 0 ||
	    strcmp(scope, "multicast") == 0 ||
	    strcmp(scope, "unspecified") == 0)
		return 0;
	return o->private_ok;
}

/* Add an endpoint (ip, port, domain may be NULL); past the cap it is
 * counted as skipped. 0 / -1 on ENOMEM. */
static int
trace_add(struct trace_targets *ts, size_t cap, const char *ip, int port,
    const char *domain)
{
	struct trace_target *v;

	if (ts->n >= cap) {
		ts->capped++;
		return 0;
	}
	if (ts->n == ts->cap) {
		ts->cap = ts->cap ? ts->cap * 2 : 16;
		if ((v = realloc(ts->v, ts->cap * sizeof(*v))) == NULL)
			return -1;
		ts->v = v;
	}
	v = &ts->v[ts->n];
	memset(v, 0, sizeof(*v));
	snprintf(v->ip, sizeof(v->ip), "%s", ip);
	v->port = port;
	if (domain != NULL && strcmp(domain, ip) != 0 &&
	    (v->domain = strdup(domain)) == NULL)
		return -1;
	ts->n++;
	return 0;
}

/* Endpoints of connections and requests: (ip, port, a name). */
static const char trace_sql_all[] =
    "SELECT ip, port, MIN(name) FROM ("
    " SELECT c.server_ip AS ip, c.server_port AS port, n.name AS name"
    "  FROM connections c LEFT JOIN name_conns n ON n.id = c.id"
    "  AND n.inferred = 0"
    " UNION ALL SELECT server_ip, server_port, host FROM requests)"
    " WHERE ip IS NOT NULL AND ip <> '' AND port > 0"
    " GROUP BY ip, port ORDER BY ip, port";

static const char trace_sql_domain[] =
    "SELECT ip, port, MIN(name) FROM ("
    " SELECT c.server_ip AS ip, c.server_port AS port, n.name AS name"
    "  FROM name_conns n JOIN connections c ON c.id = n.id"
    "  WHERE n.name = ?1 COLLATE NOCASE"
    " UNION ALL SELECT server_ip, server_port, host FROM requests"
    "  WHERE host = ?1 COLLATE NOCASE)"
    " WHERE ip IS NOT NULL AND ip <> '' AND port > 0"
    " GROUP BY ip, port ORDER BY ip, port";

static const char trace_sql_ip[] =
    "SELECT ?1, server_port, MIN(target_host) FROM connections"
    " WHERE server_ip = ?1 AND server_port > 0 GROUP BY server_port"
    " UNION SELECT ?1, server_port, MIN(host) FROM requests"
    " WHERE server_ip = ?1 AND server_port > 0 GROUP BY server_port"
    " ORDER BY 2";

/* The endpoints the options name, from the capture. 0, or -1 after a
 * message. */
static int
trace_collect(sqlite3 *db, const struct trace_opts *o, struct trace_targets *ts)
{
	const char *sql = o->all ? trace_sql_all
	    : o->domain != NULL  ? trace_sql_domain
				 : trace_sql_ip;
	sqlite3_stmt *s = NULL;
	const char *ip;
	int rc;

	if (o->ip != NULL && o->port != 0)
		return trace_add(ts, 1, o->ip, o->port, NULL);
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
		db_warn(TRACE_CMD, db, "query failed");
		return -1;
	}
	sqlite3_bind_text(
	    s, 1, o->ip != NULL ? o->ip : o->domain, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		ip = (const char *)sqlite3_column_text(s, 0);
		if (ip == NULL || (o->ip == NULL && !trace_wanted(o, ip))) {
			ts->skipped++;
			continue;
		}
		if (trace_add(ts, (size_t)o->max_endpoints, ip,
			sqlite3_column_int(s, 1),
			(const char *)sqlite3_column_text(s, 2)) == -1)
			break;
	}
	if (rc != SQLITE_DONE)
		db_warn(TRACE_CMD, db, "query failed");
	sqlite3_finalize(s);
	if (rc == SQLITE_DONE && o->ip != NULL && ts->n == 0)
		return trace_add(ts, 1, o->ip, 443, NULL);
	return rc == SQLITE_DONE ? 0 : -1;
}

struct geo *
trace_geo_open(void)
{
	char home[4096], err[256];

	if (ca_home(home, sizeof(home)) == -1)
		home[0] = '\0';
	return geo_open(NULL, home[0] != '\0' ? home : NULL, err, sizeof(err));
}

/* What trace_label prints for what geo found. */
static void
trace_label_info(const struct geo_info *gi, char *buf, size_t len)
{
	size_t off;

	if (gi->scope != NULL) {
		snprintf(buf, len, "%s", gi->scope);
		return;
	}
	snprintf(buf, len, "%s", gi->country);
	off = strlen(buf);
	if (gi->asn != 0 && off + 1 < len)
		snprintf(buf + off, len - off, "%sAS%u%s%s", off ? "  " : "",
		    (unsigned)gi->asn, gi->org[0] != '\0' ? " " : "", gi->org);
}

void
trace_label(void *geo, const char *ip, char *buf, size_t len)
{
	struct geo_info gi;

	buf[0] = '\0';
	if (ip == NULL || ip[0] == '\0' || geo_lookup(geo, ip, &gi) != 1)
		return;
	trace_label_info(&gi, buf, len);
}

/* What a trace being run prints as it goes. */
struct trace_run {
	const struct trace_opts *o;
	struct geo *geo;
};

static void
trace_hopcb(const struct path *p, int ttl, void *ctx)
{
	struct trace_run *r = ctx;
	char line[1024];

	if (r->o->fmt == OUT_JSON)
		return;
	path_format_hop(ttl, p->probes[ttl - 1], p->nprobes, trace_label,
	    r->geo, line, sizeof(line));
	out_safe(stdout, line, 0);
	fputc('\n', stdout);
	fflush(stdout);
}

static int
trace_store_hops(sqlite3 *db, int64_t id, const struct path *p)
{
	static const char sql[] = "INSERT INTO trace_hops"
				  " (trace_id, ttl, probe, ip, rtt_us, kind)"
				  " VALUES (?, ?, ?, ?, ?, ?)";
	const struct path_probe *pr;
	sqlite3_stmt *s;
	int ttl, i, rc = SQLITE_DONE;

	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
		return -1;
	for (ttl = 1; ttl <= path_hops(p) && rc == SQLITE_DONE; ttl++)
		for (i = 0; i < p->nprobes && rc == SQLITE_DONE; i++) {
			pr = &p->probes[ttl - 1][i];
			if (pr->kind == PATH_PENDING)
				continue;
			sqlite3_reset(s);
			sqlite3_bind_int64(s, 1, id);
			sqlite3_bind_int(s, 2, ttl);
			sqlite3_bind_int(s, 3, i + 1);
			if (pr->ip[0] != '\0')
				sqlite3_bind_text(
				    s, 4, pr->ip, -1, SQLITE_STATIC);
			else
				sqlite3_bind_null(s, 4);
			if (pr->rtt_us >= 0)
				sqlite3_bind_int64(s, 5, pr->rtt_us);
			else
				sqlite3_bind_null(s, 5);
			sqlite3_bind_text(
			    s, 6, path_kind_name(pr->kind), -1, SQLITE_STATIC);
			rc = sqlite3_step(s);
		}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

/*
 * Store one trace and its hops in one short transaction (the proxy may be
 * writing the same file: the busy timeout waits its turn). The new id, or
 * -1 after a message.
 */
static int64_t
trace_store(sqlite3 *db, const struct trace_target *tg, int64_t t_us,
    const struct path *p, const char *error)
{
	static const char sql[] =
	    "INSERT INTO traces (t_us, ip, port, domain, method, reached,"
	    " hops, error) VALUES (?, ?, ?, ?, 'tcp-syn', ?, ?, ?)";
	sqlite3_stmt *s = NULL;
	int64_t id = -1;

	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(s, 1, t_us);
	sqlite3_bind_text(s, 2, tg->ip, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 3, tg->port);
	sqlite3_bind_text(s, 4, tg->domain, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 5, path_reached(p));
	sqlite3_bind_int(s, 6, path_hops(p));
	if (error != NULL && error[0] != '\0')
		sqlite3_bind_text(s, 7, error, -1, SQLITE_STATIC);
	if (sqlite3_step(s) != SQLITE_DONE)
		goto fail;
	id = sqlite3_last_insert_rowid(db);
	if (trace_store_hops(db, id, p) == -1 ||
	    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_finalize(s);
	return id;
fail:
	db_warn(TRACE_CMD, db, "cannot store the trace");
	sqlite3_finalize(s);
	(void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

/* tg as a socket address. 0 / -1. */
static int
trace_addr(
    const struct trace_target *tg, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, tg->ip, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)tg->port);
		*len = sizeof(*s4);
		return 0;
	}
	if (inet_pton(AF_INET6, tg->ip, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)tg->port);
		*len = sizeof(*s6);
		return 0;
	}
	return -1;
}

static void
trace_header(const struct trace_opts *o, const struct trace_target *tg)
{
	if (o->fmt == OUT_JSON)
		return;
	printf("trace to %s port %d", tg->ip, tg->port);
	if (tg->domain != NULL) {
		fputs(" (", stdout);
		out_safe(stdout, tg->domain, 0);
		fputc(')', stdout);
	}
	printf(", %d hops max, %d probe%s per hop, TCP SYN\n", o->t.max_hops,
	    o->t.nprobes, o->t.nprobes == 1 ? "" : "s");
	fflush(stdout);
}

static void
trace_footer(const struct trace_opts *o, const struct trace_target *tg,
    int64_t id, const struct path *p, const char *error)
{
	if (o->fmt == OUT_JSON)
		return;
	char end[160];

	path_format_end(p, tg->ip, tg->port, end, sizeof(end));
	printf("trace %lld: ", (long long)id);
	if (error[0] != '\0')
		printf("error: %s\n", error);
	else
		printf("%s\n", end);
	fflush(stdout);
}

/* Trace tg and store it, also when the trace failed (with its error;
 * *failed is then set). The stored id, or -1 after a message. */
static int64_t
trace_one(sqlite3 *db, struct tracer *tr, struct trace_run *r,
    const struct trace_target *tg, int *failed)
{
	struct sockaddr_storage ss;
	socklen_t len;
	struct path *p;
	struct timeval now;
	char err[256];
	int64_t id = -1;

	*failed = 1;
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		fprintf(stderr, "peephole %s: out of memory\n", TRACE_CMD);
		return -1;
	}
	gettimeofday(&now, NULL);
	trace_header(r->o, tg);
	if (trace_addr(tg, &ss, &len) == -1)
		snprintf(err, sizeof(err), "not an IP address");
	else if (tracer_run(tr, (struct sockaddr *)&ss, len, &r->o->t, p,
		     trace_hopcb, r, err, sizeof(err)) == -1 &&
	    err[0] == '\0')
		snprintf(err, sizeof(err), "trace failed");
	if (err[0] != '\0')
		fprintf(stderr, "peephole %s: %s port %d: %s\n", TRACE_CMD,
		    tg->ip, tg->port, err);
	id = trace_store(
	    db, tg, (int64_t)now.tv_sec * 1000000 + now.tv_usec, p, err);
	if (id != -1)
		trace_footer(r->o, tg, id, p, err);
	free(p);
	*failed = err[0] != '\0' || id == -1;
	return id;
}

/* With --json: the traces stored, as one array on stdout. 0 / -1. */
static int
trace_print_json(sqlite3 *db, const struct geo *g, const int64_t *ids, size_t n)
{
	json_t *arr = json_array(), *v;
	char err[256];
	int missing;
	size_t i;

	if (arr == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		if (ids[i] <= 0)
			continue;
		if ((v = trace_json(
			 db, g, ids[i], &missing, err, sizeof(err))) == NULL ||
		    json_array_append_new(arr, v) == -1) {
			fprintf(stderr, "peephole %s: %s\n", TRACE_CMD,
			    missing ? "trace vanished" : err);
			json_decref(arr);
			return -1;
		}
	}
	json_dumpf(arr, stdout, JSON_INDENT(2) | OUT_JSON_REALS);
	fputc('\n', stdout);
	json_decref(arr);
	return 0;
}

/* Trace every target, then print JSON if asked. Exit status. */
static int
trace_all(sqlite3 *db, struct tracer *tr, const struct trace_opts *o,
    const struct trace_targets *ts)
{
	struct trace_run r = {o, trace_geo_open()};
	int64_t *ids;
	size_t i;
	int status = CLI_OK, failed;

	if ((ids = calloc(ts->n + 1, sizeof(*ids))) == NULL) {
		geo_close(r.geo);
		return CLI_ERROR;
	}
	for (i = 0; i < ts->n; i++) {
		if (i > 0 && o->fmt != OUT_JSON)
			fputc('\n', stdout);
		ids[i] = trace_one(db, tr, &r, &ts->v[i], &failed);
		if (failed)
			status = CLI_ERROR;
	}
	if (o->fmt == OUT_JSON && trace_print_json(db, r.geo, ids, ts->n) == -1)
		status = CLI_ERROR;
	free(ids);
	geo_close(r.geo);
	return status;
}

/* The endpoints to trace, from db; CLI_OK, or CLI_ERROR after a message
 * (none found included). */
static int
trace_targets(sqlite3 *db, const struct trace_opts *o, struct trace_targets *ts)
{
	if (trace_collect(db, o, ts) == -1)
		return CLI_ERROR;
	if (ts->capped > 0)
		fprintf(stderr,
		    "peephole %s: tracing %zu endpoints, %zu more left out "
		    "(--max-endpoints)\n",
		    TRACE_CMD, ts->n, ts->capped);
	if (ts->n == 0) {
		fprintf(stderr,
		    "peephole %s: no server endpoint to trace in %s%s\n",
		    TRACE_CMD, o->db,
		    ts->skipped > 0 ? " (--private takes private addresses "
				      "too; loopback only with --ip)"
				    : "");
		return CLI_ERROR;
	}
	return CLI_OK;
}

int
cli_trace(int argc, char **argv)
{
	struct trace_opts o;
	struct trace_targets ts = {0};
	struct tracer *tr = NULL;
	sqlite3 *db = NULL;
	char err[256];
	int rc, eperm;

	if ((rc = trace_parse(argc, argv, &o)) != CLI_OK)
		return rc == ARGS_HELP ? CLI_OK : rc;
	if (o.list) {
		if ((db = db_open_readonly(TRACE_CMD, o.db)) == NULL)
			return CLI_ERROR;
		rc = trace_list(db, o.fmt == OUT_JSON);
		sqlite3_close(db);
		return rc;
	}
	/* The capability first: without it nothing else matters. */
	if ((tr = tracer_new(err, sizeof(err), &eperm)) == NULL) {
		if (eperm)
			fputs(TRACE_CAP_MSG, stderr);
		else
			fprintf(stderr, "peephole %s: %s\n", TRACE_CMD, err);
		return CLI_ERROR;
	}
	rc = CLI_ERROR;
	if ((db = db_open_readwrite(TRACE_CMD, o.db)) != NULL &&
	    (rc = trace_targets(db, &o, &ts)) == CLI_OK)
		rc = trace_all(db, tr, &o, &ts);
	trace_targets_free(&ts);
	sqlite3_close(db);
	tracer_free(tr);
	return rc;
}
