/*
 * replay: the report — each original beside its replay, as text or JSON,
 * and with --diff how the answers differ.
 */
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy/cli/diff.h"
#include "proxy/cli/output.h"
#include "proxy/cli/replay_int.h"
#include "proxy/store/db.h"
#include "proxy/store/readable.h"

static const char *
replay_match(const struct replay_job *j)
{
	if (j->error != NULL || j->orig_sha == NULL || j->orig_truncated ||
	    j->resp_truncated)
		return j->orig_sha == NULL && j->error == NULL &&
			j->resp_total == 0 && j->orig_size == 0
		    ? "same"
		    : "unknown";
	return strcmp(j->orig_sha, j->resp_sha) == 0 ? "same" : "differs";
}

/* The original's stored response body (sha) as a malloc'd copy in *out,
 * *len; 0, or -1 when it is gone. */
static int
replay_orig_body(sqlite3 *db, const char *sha, unsigned char **out, size_t *len)
{
	*out = NULL;
	*len = 0;
	if (sha == NULL)
		return 0;
	return db_body(db, sha, out, len) == 1 ? 0 : -1;
}

/*
 * --diff: how job j's answer differs from its original's, as the object
 * diff_print prints: status, end-to-end headers, the bodies decoded per
 * their Content-Encoding. A new reference, NULL when there is no answer
 * to compare.
 */
static json_t *
replay_diff(sqlite3 *db, const struct replay_job *j)
{
	struct readable ro, rr;
	unsigned char *ob = NULL;
	size_t olen = 0;
	json_t *d, *body = NULL;
	char note[400];

	if (j->refused != NULL || j->status == 0)
		return NULL;
	d = json_object();
	json_object_set_new(d, "status",
	    json_pack("{s:b,s:i,s:i,s:o,s:o}", "same",
		j->orig_status == j->status, "original", j->orig_status,
		"replay", j->status, "original_reason",
		out_json_str(j->orig_reason), "replay_reason",
		out_json_str(j->reason)));
	json_object_set_new(
	    d, "headers", diff_headers(j->orig_headers, j->resp_headers));
	if (replay_orig_body(db, j->orig_sha, &ob, &olen) == -1) {
		json_object_set_new(d, "body", json_null());
		json_object_set_new(d, "body_note",
		    json_string("the original's body is no longer in the "
				"database"));
		return d;
	}
	readable_body(j->orig_headers, ob ? (const void *)ob : "", olen, &ro);
	readable_body(j->resp_headers,
	    j->resp_copy ? (const void *)j->resp_copy : "", j->resp_copy_len,
	    &rr);
	body = diff_bodies(ro.data, ro.len, rr.data, rr.len);
	if (body != NULL) {
		snprintf(note, sizeof(note), "%s%s%s%s%s%s",
		    ro.note[0] ? "original: " : "", ro.note,
		    ro.note[0] && rr.note[0] ? "; " : "",
		    rr.note[0] ? "replay: " : "", rr.note,
		    j->orig_truncated || j->resp_truncated
			? (ro.note[0] || rr.note[0]
				  ? "; cut at the capture limit"
				  : "cut at the capture limit")
			: "");
		if (note[0])
			json_object_set_new(body, "note", json_string(note));
		json_object_set_new(d, "body", body);
	}
	readable_free(&ro);
	readable_free(&rr);
	free(ob);
	return d;
}

/* Job j as an object of the --json array. A new reference. */
static json_t *
replay_job_json(
    sqlite3 *db, const struct replay_run *run, const struct replay_job *j)
{
	double ot = (double)j->orig_total_us / 1000.0;
	double nt = (double)(j->t_end - j->t_start) / 1000.0;
	json_t *o;

	if (j->refused != NULL)
		return json_pack("{s:I,s:n,s:s}", "id", (json_int_t)j->orig_id,
		    "replay_id", "refused", j->refused);
	o = json_object();
	json_object_set_new(o, "id", json_integer(j->orig_id));
	json_object_set_new(o, "replay_id",
	    j->new_id > 0 ? json_integer(j->new_id) : json_null());
	json_object_set_new(o, "method", json_string(j->method));
	json_object_set_new(o, "url", out_json_str(j->url));
	json_object_set_new(o, "original",
	    json_pack("{s:i,s:I,s:f}", "status", j->orig_status, "size",
		(json_int_t)j->orig_size, "time_ms", ot));
	json_object_set_new(o, "replay",
	    json_pack("{s:i,s:I,s:f,s:o}", "status", j->status, "size",
		(json_int_t)j->resp_total, "time_ms", nt, "error",
		out_json_str(j->error)));
	json_object_set_new(o, "body", json_string(replay_match(j)));
	if (run->o->diff) {
		json_t *d = replay_diff(db, j);
		json_object_set_new(o, "diff", d ? d : json_null());
	}
	return o;
}

/* Job j as a line of text, and with --diff how its answer differs. */
static void
replay_job_text(sqlite3 *db, const struct replay_run *run,
    const struct replay_job *j, int colour)
{
	double ot = (double)j->orig_total_us / 1000.0;
	double nt = (double)(j->t_end - j->t_start) / 1000.0;
	char osz[24], nsz[24];

	if (j->refused != NULL) {
		printf(
		    "#%lld  refused: %s\n", (long long)j->orig_id, j->refused);
		return;
	}
	out_size((uint64_t)j->orig_size, osz, sizeof(osz));
	out_size(j->resp_total, nsz, sizeof(nsz));
	printf("#%lld -> #%lld  %s %s  status %d->%d  size %s->%s  "
	       "time %.1fms->%.1fms  body %s%s%s\n",
	    (long long)j->orig_id, (long long)j->new_id, j->method, j->url,
	    j->orig_status, j->status, osz, nsz, ot, nt, replay_match(j),
	    j->error ? "  error: " : "", j->error ? j->error : "");
	if (run->o->diff) {
		json_t *d = replay_diff(db, j);
		if (d != NULL)
			diff_print(stdout, d, colour);
		json_decref(d);
	}
}

void
replay_print(sqlite3 *db, const struct replay_run *run, int json)
{
	json_t *a = json ? json_array() : NULL;
	int colour = !json && run->o->diff && isatty(STDOUT_FILENO) &&
	    getenv("NO_COLOR") == NULL;

	for (size_t i = 0; i < run->njobs; i++) {
		if (a != NULL)
			json_array_append_new(
			    a, replay_job_json(db, run, &run->jobs[i]));
		else
			replay_job_text(db, run, &run->jobs[i], colour);
	}
	if (a != NULL) {
		json_dumpf(a, stdout, JSON_INDENT(2) | OUT_JSON_REALS);
		putchar('\n');
		json_decref(a);
	}
}
