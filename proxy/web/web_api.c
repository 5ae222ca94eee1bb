/*
 * web_api: the /api/ routes. Reads become jobs for the reader threads and
 * are answered when they come back; replay, retry, HAR and curl run
 * peephole's own commands (web_spawn.c), so the UI does exactly what the
 * command line does.
 */
#include <sys/queue.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/cli/cli.h"
#include "proxy/web/web_int.h"

/* The query's parameters, parsed (evhttp_clear_headers after). */
static int
web_api_params(const char *query, struct evkeyvalq *q)
{
	TAILQ_INIT(q);
	return query == NULL ? 0 : evhttp_parse_query_str(query, q);
}

/* Parameter name as a non-negative integer into *v (def when absent).
 * 0, or -1 when it is there but not a number. */
static int
web_api_int(struct evkeyvalq *q, const char *name, int64_t def, int64_t *v)
{
	const char *s = evhttp_find_header(q, name);
	char *end;
	long long n;

	*v = def;
	if (s == NULL || *s == '\0')
		return 0;
	n = strtoll(s, &end, 10);
	if (*end != '\0' || n < 0)
		return -1;
	*v = n;
	return 0;
}

/* "/api/flows/123/body" with prefix "/api/flows/": 123 into *id and
 * the rest ("/body", or "") into *rest. 0 / -1. */
static int
web_api_id(const char *path, const char *prefix, int64_t *id, const char **rest)
{
	char *end;
	long long n;

	if (strncmp(path, prefix, strlen(prefix)) != 0)
		return -1;
	path += strlen(prefix);
	if (*path < '0' || *path > '9')
		return -1;
	n = strtoll(path, &end, 10);
	if (n <= 0)
		return -1;
	*id = n;
	*rest = end;
	return 0;
}

/* Queue j for wr's request, or answer 503. */
static void
web_api_submit(struct web_job *j, struct evhttp_request *req)
{
	if ((j->wr = web_req_hold(req)) == NULL || web_job_submit(j) == -1) {
		web_job_free(j);
		web_reply_error(req, 503, "busy: too many requests queued");
	}
}

/* ---- reads ---- */

/* A job of kind with the query's filter (none when absent or empty); NULL
 * after answering 500. */
static struct web_job *
web_api_filter_job(struct web *w, struct evhttp_request *req,
    enum web_job_kind kind, const char *filter)
{
	struct web_job *j = web_job_new(w, kind);

	if (j == NULL ||
	    (filter != NULL && filter[0] != '\0' &&
		(j->filter = strdup(filter)) == NULL)) {
		web_job_free(j);
		web_reply_error(req, 500, "out of memory");
		return NULL;
	}
	j->page.filter = j->filter;
	return j;
}

static void
web_api_page(struct web *w, struct evhttp_request *req, struct evkeyvalq *q,
    enum web_job_kind kind)
{
	struct web_job *j;
	const char *filter = evhttp_find_header(q, "filter");
	int64_t after, before, limit;

	if (web_api_int(q, "after", 0, &after) == -1 ||
	    web_api_int(q, "before", 0, &before) == -1 ||
	    web_api_int(q, "limit", WEBQ_LIMIT_DEFAULT, &limit) == -1) {
		web_reply_error(
		    req, 400, "after, before and limit are numbers");
		return;
	}
	if (limit < 1 || limit > WEBQ_LIMIT_MAX)
		limit = limit < 1 ? 1 : WEBQ_LIMIT_MAX;
	if ((j = web_api_filter_job(w, req, kind, filter)) == NULL)
		return;
	j->page.after = after;
	j->page.before = before;
	j->page.limit = (int)limit;
	web_api_submit(j, req);
}

static void
web_api_simple(struct web *w, struct evhttp_request *req,
    enum web_job_kind kind, int64_t id)
{
	struct web_job *j = web_job_new(w, kind);

	if (j == NULL) {
		web_reply_error(req, 500, "out of memory");
		return;
	}
	j->id = id;
	web_api_submit(j, req);
}

static void
web_api_flow(struct web *w, struct evhttp_request *req, struct evkeyvalq *q,
    int64_t id, int body)
{
	struct web_job *j = web_job_new(w, body ? WEB_JOB_BODY : WEB_JOB_FLOW);
	const char *raw = evhttp_find_header(q, "raw");
	const char *side = evhttp_find_header(q, "side");
	const char *dl = evhttp_find_header(q, "download");

	if (j == NULL) {
		web_reply_error(req, 500, "out of memory");
		return;
	}
	if (side != NULL && strcmp(side, "req") != 0 &&
	    strcmp(side, "resp") != 0) {
		web_job_free(j);
		web_reply_error(req, 400, "side is req or resp");
		return;
	}
	j->id = id;
	j->raw = raw != NULL && strcmp(raw, "0") != 0;
	j->resp = side == NULL || strcmp(side, "resp") == 0;
	j->download = dl != NULL && strcmp(dl, "0") != 0;
	web_api_submit(j, req);
}

/* A body as a file of its own: its type, kept from running as a page of
 * ours (an SVG or HTML body opened directly). */
static void
web_api_body_reply(struct web_job *j, struct evhttp_request *req)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	char disp[96];

	evhttp_add_header(out, "Content-Security-Policy",
	    "sandbox; default-src 'none'; img-src 'self' data:; "
	    "style-src 'unsafe-inline'");
	if (j->download) {
		snprintf(disp, sizeof(disp),
		    "attachment; filename=\"%" PRId64 ".%s.body\"", j->id,
		    j->resp ? "response" : "request");
		evhttp_add_header(out, "Content-Disposition", disp);
	}
	web_reply_bytes(req, 200,
	    j->blob.type != NULL ? j->blob.type : "application/octet-stream",
	    j->blob.data, j->blob.len);
}

void
web_api_job_done(struct web_job *j)
{
	struct evhttp_request *req = j->wr != NULL ? j->wr->req : NULL;

	if (req == NULL) { /* the client left */
		web_job_free(j);
		return;
	}
	/* answered now: the connection's close is no longer ours to watch */
	web_req_release(j->wr);
	j->wr = NULL;
	if (j->failed)
		web_reply_error(req, j->err.status ? j->err.status : 500, "%s",
		    j->err.msg[0] ? j->err.msg : "cannot read the capture");
	else if (j->then != NULL)
		j->then(j, req); /* a checked filter: now the real work */
	else if (j->kind == WEB_JOB_BODY)
		web_api_body_reply(j, req);
	else
		web_reply_bytes(req, 200, "application/json; charset=utf-8",
		    j->text, strlen(j->text));
	web_job_free(j);
}

/* ---- actions: peephole's own commands ---- */

/* The last command's standard error as one short line, for a message. */
static const char *
web_api_errline(const char *errtext)
{
	return errtext != NULL && errtext[0] != '\0' ? errtext
						     : "the command failed";
}

static void
web_api_replay_done(struct web *w, struct web_req *wr, int status,
    struct evbuffer *out, const char *errtext)
{
	struct evhttp_request *req = wr->req;
	json_t *arr = NULL, *first, *id;
	json_error_t jerr;
	size_t n = out != NULL ? evbuffer_get_length(out) : 0;

	(void)w;
	(void)status; /* 1 also when the replay got no answer: the JSON says */
	web_req_release(wr);
	if (req == NULL)
		return;
	if (n > 0)
		arr = json_loadb(
		    (const char *)evbuffer_pullup(out, -1), n, 0, &jerr);
	first = json_array_get(arr, 0);
	id = json_object_get(first, "replay_id");
	if (first == NULL)
		web_reply_error(
		    req, 502, "replay: %s", web_api_errline(errtext));
	else if (!json_is_integer(id))
		web_reply_error(req, 502, "replay failed: %s",
		    json_string_value(json_object_get(
			json_object_get(first, "replay"), "error"))
			? json_string_value(json_object_get(
			      json_object_get(first, "replay"), "error"))
			: json_is_string(id) ? json_string_value(id)
					     : web_api_errline(errtext));
	else {
		json_t *o = json_pack("{s:O,s:O}", "id", id, "replay", first);
		web_reply_json(req, 200, o);
		json_decref(o);
	}
	json_decref(arr);
}

/* A command whose success is all there is to say. */
static void
web_api_ok_done(struct web *w, struct web_req *wr, int status,
    struct evbuffer *out, const char *errtext)
{
	struct evhttp_request *req = wr->req;
	json_t *o;

	(void)w;
	(void)out;
	web_req_release(wr);
	if (req == NULL)
		return;
	if (status != 0) {
		web_reply_error(req, 500, "%s", web_api_errline(errtext));
		return;
	}
	o = json_pack("{s:b}", "ok", 1);
	web_reply_json(req, 200, o);
	json_decref(o);
}

static void
web_api_text_done(struct web *w, struct web_req *wr, int status,
    struct evbuffer *out, const char *errtext)
{
	struct evhttp_request *req = wr->req;
	size_t n = out != NULL ? evbuffer_get_length(out) : 0;

	(void)w;
	web_req_release(wr);
	if (req == NULL)
		return;
	if (status != 0)
		web_reply_error(req, status == 1 ? 404 : 500, "%s",
		    web_api_errline(errtext));
	else
		web_reply_bytes(req, 200, "text/plain; charset=utf-8",
		    n ? evbuffer_pullup(out, -1) : (unsigned char *)"", n);
}

/* Start argv for req; on failure answer it. */
static void
web_api_spawn(struct web *w, struct evhttp_request *req, char *const *argv,
    const char *stream_type, const char *filename,
    void (*done)(
	struct web *, struct web_req *, int, struct evbuffer *, const char *))
{
	struct web_req *wr = web_req_hold(req);

	if (wr == NULL) {
		web_reply_error(req, 500, "out of memory");
		return;
	}
	if (web_spawn(w, wr, argv, stream_type, filename, done) == -1)
		web_reply_error(req, 503, "cannot run the command now");
}

static void
web_api_replay(struct web *w, struct evhttp_request *req, int64_t id)
{
	char ids[24];
	const char *argv[12 + 2 * WEB_DNS_MAX];
	int n = 0;

	if (w->readonly) {
		web_reply_error(req, 403,
		    "read-only: `peephole web` serves a capture as it is; "
		    "replay from `peephole run --web`");
		return;
	}
	snprintf(ids, sizeof(ids), "%" PRId64, id);
	argv[n++] = "replay";
	argv[n++] = ids;
	argv[n++] = "--json";
	argv[n++] = "--diff";
	if (w->upstream_ca != NULL) {
		argv[n++] = "--upstream-ca";
		argv[n++] = w->upstream_ca;
	}
	if (w->insecure_upstream)
		argv[n++] = "--insecure-upstream";
	for (int i = 0; i < w->ndns; i++) {
		argv[n++] = "--dns-server";
		argv[n++] = w->dns_servers[i];
	}
	if (w->hosts_file != NULL) {
		argv[n++] = "--hosts-file";
		argv[n++] = w->hosts_file;
	}
	argv[n] = NULL;
	web_api_spawn(
	    w, req, (char *const *)argv, NULL, NULL, web_api_replay_done);
}

static void
web_api_retry(struct web *w, struct evhttp_request *req, struct evkeyvalq *q)
{
	const char *host = evhttp_find_header(q, "host");
	const char *argv[4] = {"passthrough", "retry", host, NULL};

	if (w->readonly) {
		web_reply_error(req, 403,
		    "read-only: `peephole web` does not change the capture");
		return;
	}
	if (host == NULL || host[0] == '\0' || host[0] == '-') {
		web_reply_error(req, 400, "retry needs ?host=");
		return;
	}
	web_api_spawn(w, req, (char *const *)argv, NULL, NULL, web_api_ok_done);
}

static void
web_api_curl(struct web *w, struct evhttp_request *req, int64_t id)
{
	char ids[24];
	const char *argv[4] = {"export", "curl", ids, NULL};

	snprintf(ids, sizeof(ids), "%" PRId64, id);
	web_api_spawn(
	    w, req, (char *const *)argv, NULL, NULL, web_api_text_done);
}

/* HAR of the filter (checked first, so a typo is a 400 and not a broken
 * download), streamed from `peephole export har -` as it is written. */
static void
web_api_har_run(struct web_job *j, struct evhttp_request *req)
{
	const char *argv[6] = {"export", "har", "-", NULL, NULL, NULL};

	if (j->filter != NULL) {
		argv[3] = "--filter";
		argv[4] = j->filter;
	}
	web_api_spawn(j->w, req, (char *const *)argv,
	    "application/json; charset=utf-8", "peephole.har", NULL);
}

static void
web_api_har(struct web *w, struct evhttp_request *req, struct evkeyvalq *q)
{
	struct web_job *j = web_api_filter_job(
	    w, req, WEB_JOB_CHECK, evhttp_find_header(q, "filter"));

	if (j == NULL)
		return;
	j->page.limit = 1;
	j->then = web_api_har_run;
	web_api_submit(j, req);
}

static void
web_api_session(struct web *w, struct evhttp_request *req)
{
	json_t *o =
	    json_pack("{s:s,s:b,s:s,s:s}", "token", w->token, "readonly",
		w->readonly, "db", w->db_path, "version", PEEPHOLE_VERSION);

	web_reply_json(req, 200, o);
	json_decref(o);
}

/* GET routes. */
static void
web_api_get(struct web *w, struct evhttp_request *req, const char *path,
    const char *query, struct evkeyvalq *q)
{
	const char *rest;
	int64_t id;

	if (strcmp(path, "/api/session") == 0)
		web_api_session(w, req);
	else if (strcmp(path, "/api/flows") == 0)
		web_api_page(w, req, q, WEB_JOB_FLOWS);
	else if (strcmp(path, "/api/conns") == 0)
		web_api_page(w, req, q, WEB_JOB_CONNS);
	else if (strcmp(path, "/api/events") == 0)
		web_sse_open(w, req, query);
	else if (strcmp(path, "/api/domains") == 0)
		web_api_simple(w, req, WEB_JOB_DOMAINS, 0);
	else if (strcmp(path, "/api/streams") == 0)
		web_api_simple(w, req, WEB_JOB_STREAMS, 0);
	else if (strcmp(path, "/api/passthrough") == 0)
		web_api_simple(w, req, WEB_JOB_PASSTHROUGH, 0);
	else if (web_api_id(path, "/api/streams/", &id, &rest) == 0 &&
	    *rest == '\0')
		web_api_simple(w, req, WEB_JOB_STREAM, id);
	else if (web_api_id(path, "/api/flows/", &id, &rest) == 0 &&
	    (*rest == '\0' || strcmp(rest, "/body") == 0))
		web_api_flow(w, req, q, id, *rest != '\0');
	else if (web_api_id(path, "/api/flows/", &id, &rest) == 0 &&
	    strcmp(rest, "/curl") == 0)
		web_api_curl(w, req, id);
	else
		web_reply_error(req, 404, "no such API: %s", path);
}

void
web_api_route(struct web *w, struct evhttp_request *req, const char *path,
    const char *query)
{
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	struct evkeyvalq q;
	const char *rest;
	int64_t id;

	if (web_api_params(query, &q) == -1) {
		web_reply_error(req, 400, "bad query string");
		return;
	}
	if (cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD)
		web_api_get(w, req, path, query, &q);
	else if (cmd != EVHTTP_REQ_POST)
		web_reply_error(req, 405, "GET or POST");
	else if (web_api_id(path, "/api/flows/", &id, &rest) == 0 &&
	    strcmp(rest, "/replay") == 0)
		web_api_replay(w, req, id);
	else if (strcmp(path, "/api/passthrough/retry") == 0)
		web_api_retry(w, req, &q);
	else if (strcmp(path, "/api/har") == 0)
		web_api_har(w, req, &q);
	else
		web_reply_error(req, 404, "no such action: %s", path);
	evhttp_clear_headers(&q);
}
