/*
 * replay: loading the originals — each selected request row into a job,
 * refused when it cannot be sent again — and building the request each
 * job sends (replay_fields rewrites the header fields).
 */
#include "proxy/cli/cli.h"

#include <event2/buffer.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "proxy/cli/output.h"
#include "proxy/cli/replay.h"
#include "proxy/cli/replay_int.h"
#include "proxy/http/head.h"
#include "proxy/store/db.h"
#include "proxy/store/requrl.h"
#include "proxy/store/select.h"

/* ---- building the request ---- */

/* Not sent again: the hop-by-hop fields, the framing the replay computes
 * itself, and an HTTP/2 exchange's pseudo-headers (":path"): a replay goes
 * out as HTTP/1.1, whose request line and Host carry them. */
static int
replay_hop_by_hop(const char *name, size_t n, const char *headers)
{
	return head_text_pseudo(name, n) ||
	    head_text_is_hop(name, n, headers) ||
	    (n == 14 && strncasecmp(name, "content-length", 14) == 0) ||
	    (n == 6 && strncasecmp(name, "expect", 6) == 0);
}

static int
replay_named(const char *name, size_t n, const char *const *list, int count)
{
	for (int i = 0; i < count; i++) {
		size_t k = strcspn(list[i], ":");
		while (k > 0 && list[i][k - 1] == ' ')
			k--;
		if (k == n && strncasecmp(list[i], name, n) == 0)
			return 1;
	}
	return 0;
}

char *
replay_fields(const char *logged, const char *const *set, int nset,
    const char *const *remove, int nremove, const char *host,
    const char *method, int64_t body_len)
{
	struct evbuffer *f = evbuffer_new();
	struct head_text_iter it;
	const char *name;
	int have_host = 0;
	size_t flen, nl;
	char *out = NULL;

	if (f == NULL)
		return NULL;
	head_text_init(&it, logged);
	while (head_text_next(&it, &name, &nl, NULL, NULL))
		if (!replay_hop_by_hop(name, nl, logged) &&
		    !replay_named(name, nl, remove, nremove) &&
		    !replay_named(name, nl, set, nset)) {
			char *line = head_text_line(&it);
			if (line == NULL) {
				evbuffer_free(f);
				return NULL;
			}
			evbuffer_add_printf(f, "%s\r\n", line);
			free(line);
			if (nl == 4 && strncasecmp(name, "host", 4) == 0)
				have_host = 1;
		}
	for (int i = 0; i < nset; i++) {
		evbuffer_add_printf(f, "%s\r\n", set[i]);
		if (strncasecmp(set[i], "host:", 5) == 0)
			have_host = 1;
	}
	if (!have_host && !replay_named("host", 4, remove, nremove))
		evbuffer_add_printf(f, "Host: %s\r\n", host);
	/* a body, or a method that takes one: its real length */
	if (body_len > 0 || strcmp(method, "POST") == 0 ||
	    strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0)
		evbuffer_add_printf(
		    f, "Content-Length: %lld\r\n", (long long)body_len);
	evbuffer_add_printf(f, "Connection: close\r\n");
	flen = evbuffer_get_length(f);
	if ((out = malloc(flen + 1)) != NULL) {
		evbuffer_copyout(f, out, flen);
		out[flen] = '\0';
	}
	evbuffer_free(f);
	return out;
}

/*
 * The request to send: line, fields (replay_fields), body — logged, or
 * --body FILE, streamed from the file by the evbuffer.
 */
static int
replay_build(struct replay_job *j, const struct replay_opts *o,
    const char *path, const char *query, const unsigned char *body, size_t blen,
    int64_t file_len)
{
	struct evbuffer *b = j->request = evbuffer_new();
	int rc = -1;

	if (b == NULL ||
	    (j->sent_headers = replay_fields(j->req_headers, o->set, o->nset,
		 o->remove, o->nremove, j->host, j->method,
		 file_len >= 0 ? file_len : (int64_t)blen)) == NULL)
		goto out;
	/* through a proxy, plain http takes the absolute form */
	if (o->via != NULL && !j->tls)
		evbuffer_add_printf(b, "%s %s HTTP/1.1\r\n", j->method, j->url);
	else
		evbuffer_add_printf(b, "%s %s%s%s HTTP/1.1\r\n", j->method,
		    path && *path ? path : "/", query ? "?" : "",
		    query ? query : "");
	evbuffer_add_printf(b, "%s\r\n", j->sent_headers);
	j->sent_head_bytes = evbuffer_get_length(b);
	if (file_len >= 0) {
		int fd = open(o->body_file, O_RDONLY | O_CLOEXEC);
		if (fd == -1 || evbuffer_add_file(b, fd, 0, file_len) == -1) {
			if (fd != -1)
				close(fd);
			goto out;
		}
		j->sent_body_bytes = (uint64_t)file_len;
		/* the record keeps what the capture limit allows */
		size_t keep = (uint64_t)file_len < j->run->capture
		    ? (size_t)file_len
		    : j->run->capture;
		if (keep > 0 && (j->sent_body.data = malloc(keep)) != NULL &&
		    pread(fd, j->sent_body.data, keep, 0) == (ssize_t)keep)
			j->sent_body.len = keep;
	} else if (blen > 0) {
		evbuffer_add(b, body, blen);
		j->sent_body_bytes = blen;
		if ((j->sent_body.data = malloc(blen)) != NULL) {
			memcpy(j->sent_body.data, body, blen);
			j->sent_body.len = blen;
		}
	}
	j->sent_body.total = j->sent_body_bytes;
	j->sent_body.truncated = j->sent_body.total > j->sent_body.len;
	rc = 0;
out:
	return rc;
}

/* ---- loading the originals ---- */

static char *
replay_dup(sqlite3_stmt *st, const char *name)
{
	const char *t = out_col_text(st, name);

	return t ? strdup(t) : NULL;
}

/*
 * Whether row st is to be refused rather than sent: not an HTTP request,
 * or its body cut at the capture limit (unless --allow-truncated or
 * --body). 1 with the reason in j->refused, else 0.
 */
static int
replay_job_refused(sqlite3_stmt *st, struct replay_job *j,
    const struct replay_opts *o, int64_t file_len)
{
	const char *scheme = out_col_text(st, "scheme");
	char why[300];

	if (out_col_text(st, "method") == NULL || scheme == NULL ||
	    (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
		snprintf(why, sizeof(why),
		    "#%lld is %s: there is no HTTP request to send again",
		    (long long)j->orig_id,
		    scheme && strcmp(scheme, "connect") == 0
			? "a CONNECT tunnel (its requests have their own ids)"
			: "not a readable request");
		j->refused = strdup(why);
		return 1;
	}
	if (out_col_int(st, "req_body_truncated") && file_len < 0 &&
	    !o->allow_truncated) {
		snprintf(why, sizeof(why),
		    "#%lld's body was truncated at the capture limit (%lld "
		    "bytes logged): not sent (--allow-truncated sends what was "
		    "kept, --body FILE another body)",
		    (long long)j->orig_id,
		    (long long)out_col_int(st, "req_body_size"));
		j->refused = strdup(why);
		return 1;
	}
	return 0;
}

/* Fill job j from request row st (already stepped). 0 / -1. */
static int
replay_job_load(sqlite3 *db, sqlite3_stmt *st, struct replay_job *j,
    const struct replay_opts *o, int64_t file_len)
{
	const char *scheme = out_col_text(st, "scheme");
	const char *method = out_col_text(st, "method");
	unsigned char *body = NULL;
	size_t blen = 0;
	int rc;

	j->orig_id = out_col_int(st, "id");
	j->orig_status = (int)out_col_int(st, "status");
	j->orig_size = out_col_int(st, "resp_body_size");
	j->orig_total_us = out_col_int(st, "total_us");
	j->orig_sha = replay_dup(st, "resp_body_sha");
	j->orig_truncated = (int)out_col_int(st, "resp_body_truncated");
	if (o->diff) {
		j->orig_headers = replay_dup(st, "resp_headers");
		j->orig_reason = replay_dup(st, "resp_reason");
	}
	if (replay_job_refused(st, j, o, file_len))
		return 0;
	j->method = strdup(method);
	j->scheme = strdup(scheme);
	j->host = replay_dup(st, "host");
	j->port = (unsigned)out_col_int(st, "port");
	j->req_headers = replay_dup(st, "req_headers");
	j->tls = strcmp(scheme, "https") == 0;
	j->is_head = strcmp(method, "HEAD") == 0;
	j->url = requrl_format(scheme, method, j->host, (int)j->port,
	    out_col_text(st, "path"), out_col_text(st, "query"));
	if (j->host == NULL || j->url == NULL)
		return -1;
	if (file_len < 0 && out_col_text(st, "req_body_sha") != NULL &&
	    db_body(db, out_col_text(st, "req_body_sha"), &body, &blen) == -1)
		return -1;
	rc = replay_build(j, o, out_col_text(st, "path"),
	    out_col_text(st, "query"), body, blen, file_len);
	free(body);
	return rc;
}

void
replay_job_free(struct replay_job *j)
{
	free(j->orig_sha);
	free(j->orig_headers);
	free(j->orig_reason);
	free(j->resp_headers);
	free(j->resp_copy);
	free(j->method);
	free(j->scheme);
	free(j->host);
	free(j->url);
	free(j->req_headers);
	free(j->sent_headers);
	free(j->refused);
	free(j->error);
	free(j->body.data);
	free(j->sent_body.data);
	if (j->request != NULL)
		evbuffer_free(j->request);
	if (j->resp_head != NULL)
		evbuffer_free(j->resp_head);
	EVP_MD_CTX_free(j->sha);
}

/* Load every selected original into run->jobs (repeat times each). */
int
replay_load(sqlite3 *db, const struct replay_opts *o, struct replay_run *run,
    int64_t file_len)
{
	struct select *sel;
	sqlite3_stmt *st = NULL;
	int64_t id;
	int rc, usage = 0;
	size_t cap = 0;

	sel = select_new(db, REPLAY_CMD, o->ids, o->nids, o->filter, &usage);
	if (sel == NULL)
		return usage ? CLI_USAGE : CLI_ERROR;
	if (sqlite3_prepare_v2(db, "SELECT * FROM requests WHERE id = ?", -1,
		&st, NULL) != SQLITE_OK) {
		db_warn(REPLAY_CMD, db, "cannot read requests");
		select_free(sel);
		return CLI_ERROR;
	}
	while ((rc = select_next(sel, &id)) == 1) {
		for (int64_t k = 0; k < o->repeat; k++) {
			struct replay_job *j;
			if (run->njobs == cap) {
				size_t ncap = cap ? cap * 2 : 16;
				struct replay_job *nj =
				    realloc(run->jobs, ncap * sizeof(*nj));
				if (nj == NULL) {
					rc = -1;
					goto out;
				}
				run->jobs = nj;
				cap = ncap;
			}
			j = &run->jobs[run->njobs++];
			memset(j, 0, sizeof(*j));
			j->run = run;
			sqlite3_reset(st);
			sqlite3_bind_int64(st, 1, id);
			if (sqlite3_step(st) != SQLITE_ROW ||
			    replay_job_load(db, st, j, o, file_len) == -1) {
				fprintf(stderr,
				    "peephole replay: cannot load request "
				    "%lld\n",
				    (long long)id);
				rc = -1;
				goto out;
			}
		}
	}
out:
	sqlite3_finalize(st);
	select_free(sel);
	if (rc == -1)
		return CLI_ERROR;
	if (run->njobs == 0) {
		fprintf(stderr, "peephole replay: no request matches\n");
		return CLI_ERROR;
	}
	return CLI_OK;
}
