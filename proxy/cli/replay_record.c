/*
 * replay: recording — a finished job as the rows the proxy would have
 * written for it (a connection and its one request, replay_of = the
 * original), handed to the flow store's writer thread.
 */
#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/cli/replay_int.h"
#include "proxy/http/head.h"
#include "proxy/store/store.h"

/* The connection row of a replay: one request, its own connection. */
static void
replay_record_conn(const struct replay_job *j, struct store_conn *c)
{
	c->id = j->conn_id;
	c->listener = strdup("replay");
	c->client_ip = strdup("-");
	c->target_host = strdup(j->host);
	c->target_port = (int)j->port;
	c->server_ip = j->server_ip[0] ? strdup(j->server_ip) : NULL;
	c->server_port = (int)j->server_port;
	c->protocol = strdup(j->tls ? "tls" : "http");
	c->t_accept_us = j->t_start;
	c->t_close_us = j->t_end;
	c->bytes_to_server = j->sent_bytes;
	c->bytes_from_server = j->recv_bytes;
	c->nrequests = 1;
	c->close_reason = strdup(j->error ? "error" : "done");
	c->error = j->error ? strdup(j->error) : NULL;
	c->tls_server = j->tls_desc[0] ? strdup(j->tls_desc) : NULL;
}

/* The path and query of r as sent (the URL's, after its authority). */
static void
replay_record_path(const struct replay_job *j, struct store_request *r)
{
	const char *u = strstr(j->url, "://");
	const char *p = u ? strchr(u + 3, '/') : NULL;
	const char *q = p ? strchr(p, '?') : NULL;

	r->path = p ? strndup(p, q ? (size_t)(q - p) : strlen(p)) : strdup("/");
	r->query = q ? strdup(q + 1) : NULL;
}

/*
 * The answer into r: status, head, and the captured body, which moves to
 * the record (its size stays in j for the report). With --diff, j keeps
 * its own copies of the head and body for the comparison.
 */
static void
replay_record_response(struct replay_job *j, struct store_request *r)
{
	size_t hl;

	if (j->status > 0) {
		r->status = j->status;
		r->resp_version = strdup("1.1");
		hl = evbuffer_get_length(j->resp_head);
		r->resp_headers = malloc(hl + 1);
		if (r->resp_headers != NULL) {
			evbuffer_copyout(j->resp_head, r->resp_headers, hl);
			r->resp_headers[hl] = '\0';
		}
		r->resp_header_bytes = hl;
		if (j->run->o->diff && r->resp_headers != NULL)
			j->resp_headers = strdup(r->resp_headers);
	}
	if (j->run->o->diff && j->body.len > 0 &&
	    (j->resp_copy = malloc(j->body.len)) != NULL) {
		memcpy(j->resp_copy, j->body.data, j->body.len);
		j->resp_copy_len = j->body.len;
	}
	/* the capture goes to the record; its size stays for the report */
	j->resp_total = j->body.total;
	j->resp_truncated = j->body.truncated;
	r->resp_body = j->body;
	memset(&j->body, 0, sizeof(j->body));
}

void
replay_record(struct replay_job *j)
{
	struct store_rec *rec = store_rec_new(STORE_REC_REQUEST);
	struct store_rec *crec = store_rec_new(STORE_REC_CONN);
	struct store_request *r;

	if (rec == NULL || crec == NULL || j->conn_id < 0) {
		store_rec_free(rec);
		store_rec_free(crec);
		return;
	}
	r = &rec->u.req;
	r->conn_id = j->conn_id;
	r->seq = 1;
	r->t_start_us = j->t_start;
	r->client_ip = strdup("-");
	r->scheme = strdup(j->scheme);
	r->method = strdup(j->method);
	r->host = strdup(j->host);
	r->port = (int)j->port;
	replay_record_path(j, r);
	r->req_version = strdup("1.1");
	r->req_headers = j->sent_headers;
	j->sent_headers = NULL;
	r->req_header_bytes = j->sent_head_bytes;
	r->req_body = j->sent_body;
	memset(&j->sent_body, 0, sizeof(j->sent_body));
	replay_record_response(j, r);
	{
		size_t n;
		const char *v =
		    head_text_find(r->resp_headers, "content-type", &n);
		if (v != NULL)
			r->content_type = strndup(v, n);
	}
	r->server_ip = j->server_ip[0] ? strdup(j->server_ip) : NULL;
	r->server_port = (int)j->server_port;
	r->dns_us = j->t_dns ? j->t_dns - j->t_start : -1;
	r->connect_us = j->t_connected ? j->t_connected - j->t_dns : -1;
	r->ttfb_us = j->t_first && j->t_sent ? j->t_first - j->t_sent : -1;
	r->total_us = j->t_end - j->t_start;
	r->error = j->error ? strdup(j->error) : NULL;
	r->replay_of = j->orig_id;

	replay_record_conn(j, &crec->u.conn);
	(void)store_submit(j->run->st, crec);
	(void)store_submit(j->run->st, rec);
}
