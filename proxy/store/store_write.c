/*
 * store_write: the row writers. The prepared statements, the binding of a
 * record's fields to them, one store_write_* per record type, and the
 * batch written in one transaction. Writer thread (or the opener, or
 * store_close, while no writer runs).
 */
#include "proxy/store/store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <strings.h>
#include <sys/socket.h>

#include "proxy/log.h"

/* Stream events per multi-row INSERT: 5 parameters each, well below the
 * 999 an old SQLite allows per statement. */
#define STORE_SEV_ROWS 100

static const char store_sql_conn[] =
    "INSERT INTO connections (id, listener, client_ip, client_port,"
    " target_host, target_port, server_ip, server_port, protocol,"
    " t_accept_us, t_first_byte_us, t_close_us, bytes_from_client,"
    " bytes_to_client, bytes_to_server, bytes_from_server, nrequests,"
    " close_reason, error, sni, alpn, decision, decision_reason,"
    " tls_client, tls_server, upstream_cert_sha256, upstream_cert_subject,"
    " upstream_cert_issuer, verify_error, listener_target,"
    " t_upstream_connected_us, t_first_up_us, t_last_up_us,"
    " t_first_down_us, t_last_down_us, reads_up, reads_down, closed_by,"
    " events, events_capped, tcp_samples_capped,"
    " tcp_client_rtt_us, tcp_client_rttvar_us, tcp_client_retransmits,"
    " tcp_client_total_retrans, tcp_client_lost, tcp_client_reordering,"
    " tcp_client_snd_cwnd, tcp_client_pmtu,"
    " tcp_server_rtt_us, tcp_server_rttvar_us, tcp_server_retransmits,"
    " tcp_server_total_retrans, tcp_server_lost, tcp_server_reordering,"
    " tcp_server_snd_cwnd, tcp_server_pmtu,"
    " mmtls_bad, mmtls_records, mmtls_handshake, mmtls_early, mmtls_data,"
    " mmtls_alert, alpn_client, alpn_server, wseq)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,"
    "?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,"
    /* the writer is the only one, so max + 1 is the order of writing */
    " (SELECT coalesce(max(wseq), 0) + 1 FROM connections))";

/* Followed by ",(?,?,?,?,?)" once per further row. */
static const char store_sql_sev[] =
    "INSERT INTO stream_events (conn_id, t_us, dir, bytes, mmtls_type)"
    " VALUES (?,?,?,?,?)";

static const char store_sql_tcps[] =
    "INSERT INTO tcp_samples (conn_id, t_us, side, rtt_us, rttvar_us,"
    " snd_cwnd, unacked, bytes_in_flight, retrans, total_retrans,"
    " delivery_rate, bytes_acked, bytes_received)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)";

static const char store_sql_req[] =
    "INSERT INTO requests (conn_id, seq, t_start_us, client_ip, scheme,"
    " method, host, port, path, query, req_version, resp_version, status,"
    " req_headers, resp_headers, req_header_bytes, resp_header_bytes,"
    " req_body_size, req_body_sha, req_body_truncated,"
    " resp_body_size, resp_body_sha, resp_body_truncated,"
    " content_type, server_ip, server_port, upstream_reused,"
    " dns_us, connect_us, ttfb_us, total_us, error, replay_of, label,"
    " resp_reason, tls_us, stream_id, up_version, req_trailers,"
    " resp_trailers, stream_end)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,"
    "?,?,?,?,?,?,?,?,?,?,?)";

/* The request a WebSocket batch belongs to: the newest row of (conn, seq),
 * written earlier in the same queue. */
static const char store_sql_req_id[] =
    "SELECT id FROM requests WHERE conn_id = ?1 AND seq = ?2"
    " ORDER BY id DESC LIMIT 1";

static const char store_sql_ws[] =
    "INSERT INTO ws_messages (request_id, idx, t_us, dir, opcode, size,"
    " wire_bytes, compressed, truncated, payload, close_code, close_reason,"
    " error) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)";

/* A name seen again keeps its first sighting and counts the new one. */
static const char store_sql_dip[] =
    "INSERT INTO domain_ips (domain, ip, source, first_seen, last_seen,"
    " ttl, count) VALUES (?1, ?2, ?3, ?4, ?4, ?5, 1)"
    " ON CONFLICT (domain, ip, source) DO UPDATE SET"
    " first_seen = min(first_seen, excluded.first_seen),"
    " last_seen = max(last_seen, excluded.last_seen),"
    " ttl = coalesce(excluded.ttl, ttl), count = count + 1";

/* A pair learned again: keep the first sighting, the latest reason, the
 * back-off the proxy computed. A time of 0 is NULL, which min/max would
 * spread, hence the coalesces. */
static const char store_sql_learned[] =
    "INSERT INTO learned_passthrough (host, port, reason, first_seen,"
    " last_seen, count, rejections, last_reason, next_retry_us)"
    " VALUES (?1, ?2, ?3, ?4, ?4, 1, ?5, ?3, ?6)"
    " ON CONFLICT (host, port) DO UPDATE SET"
    " reason = coalesce(excluded.reason, reason),"
    " last_reason = excluded.last_reason,"
    " rejections = excluded.rejections,"
    " next_retry_us = excluded.next_retry_us,"
    " first_seen = coalesce(min(first_seen, excluded.first_seen),"
    "  first_seen, excluded.first_seen),"
    " last_seen = coalesce(max(last_seen, excluded.last_seen),"
    "  last_seen, excluded.last_seen),"
    " count = count + 1";

/* A client accepted the forged certificate: the pair is not pinned. */
static const char store_sql_forget[] =
    "DELETE FROM learned_passthrough WHERE host = ?1 AND port = ?2";

/* A client saw name -> address again: keep the span it was seen over. */
static const char store_sql_sight[] =
    "INSERT INTO name_sightings (client_ip, domain, ip, source, first_seen,"
    " last_seen, ttl, count) VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, 1)"
    " ON CONFLICT (client_ip, domain, ip, source) DO UPDATE SET"
    " first_seen = min(first_seen, excluded.first_seen),"
    " last_seen = max(last_seen, excluded.last_seen),"
    " ttl = coalesce(excluded.ttl, ttl), count = count + 1";

static const char store_sql_body[] =
    "INSERT INTO bodies (sha256, size, data) VALUES (?, ?, ?)"
    " ON CONFLICT (sha256) DO NOTHING";

/* NULL strings become SQL NULL; the record outlives the step, so no copy. */
int
store_bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v == NULL)
		return sqlite3_bind_null(s, i);
	return sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
}

int
store_bind_u64(sqlite3_stmt *s, int i, uint64_t v)
{
	return sqlite3_bind_int64(s, i, (sqlite3_int64)v);
}

/* A timestamp of 0 (never happened) is stored as NULL. */
static int
store_bind_time(sqlite3_stmt *s, int i, int64_t v)
{
	if (v <= 0)
		return sqlite3_bind_null(s, i);
	return sqlite3_bind_int64(s, i, v);
}

/* A duration of -1 (phase did not happen) is stored as NULL. */
static int
store_bind_dur(sqlite3_stmt *s, int i, int64_t v)
{
	if (v < 0)
		return sqlite3_bind_null(s, i);
	return sqlite3_bind_int64(s, i, v);
}

/* Step a fully bound insert and make the statement reusable. SQLITE_DONE
 * on success, else the error code (errmsg still describes it). */
int
store_step(sqlite3_stmt *s)
{
	int rc;

	rc = sqlite3_step(s);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc;
}

/* What one client saw of name -> address, upserted. */
static int
store_put_sighting(struct store *st, const char *client, const char *domain,
    const char *ip, const char *source, int64_t t_us, int ttl)
{
	sqlite3_stmt *s = st->ins_sight;

	store_bind_text(s, 1, client);
	store_bind_text(s, 2, domain);
	store_bind_text(s, 3, ip);
	store_bind_text(s, 4, source);
	store_bind_time(s, 5, t_us);
	store_bind_dur(s, 6, ttl);
	return store_step(s) == SQLITE_DONE ? 0 : -1;
}

/* One (domain, ip, source) fact, upserted, and the sighting of client
 * (NULL: none known). ttl -1 is unknown. */
static int
store_put_dip(struct store *st, const char *client, const char *domain,
    const char *ip, const char *source, int64_t t_us, int ttl)
{
	sqlite3_stmt *s = st->ins_dip;

	store_bind_text(s, 1, domain);
	store_bind_text(s, 2, ip);
	store_bind_text(s, 3, source);
	store_bind_time(s, 4, t_us);
	store_bind_dur(s, 5, ttl);
	if (store_step(s) != SQLITE_DONE)
		return -1;
	return client != NULL && client[0] != '\0'
	    ? store_put_sighting(st, client, domain, ip, source, t_us, ttl)
	    : 0;
}

/* Columns per socket: rtt, rttvar, retransmits, total retransmits, lost,
 * reordering, cwnd, pmtu. */
#define STORE_TCPINFO_COLS 8

/* TCP_INFO of one socket into 8 columns from i, all NULL when unknown. */
static void
store_bind_tcpinfo(
    sqlite3_stmt *s, int i, int have, const struct store_tcpinfo *t)
{
	const uint32_t v[STORE_TCPINFO_COLS] = {t->rtt_us, t->rttvar_us,
	    t->retransmits, t->total_retrans, t->lost, t->reordering,
	    t->snd_cwnd, t->pmtu};
	int k;

	for (k = 0; k < STORE_TCPINFO_COLS; k++) {
		if (have)
			sqlite3_bind_int64(s, i + k, v[k]);
		else
			sqlite3_bind_null(s, i + k);
	}
}

/* 1 if s is an IPv4 or IPv6 address literal rather than a name. */
static int
store_is_ip(const char *s)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, s, buf) == 1 ||
	    inet_pton(AF_INET6, s, buf) == 1;
}

/*
 * What a closed connection says about names and addresses, kept in
 * domain_ips so a later connection to a bare address can be named from it
 * (stream_names): the SNI its client sent ("sni"), and, for a tunnel
 * (CONNECT, SOCKS, ...), the name it asked for ("connect"), each with the
 * server address it reached. A plain HTTP connection is left out: it may
 * carry requests to several hosts, and its server_ip is only the last.
 * Writer thread. 0 / -1.
 */
static int
store_conn_evidence(struct store *st, const struct store_conn *c)
{
	int tunnel = c->decision != NULL ||
	    (c->protocol != NULL && strcmp(c->protocol, "http") != 0 &&
		strcmp(c->protocol, "http-upgrade") != 0);

	if (c->server_ip == NULL || c->server_ip[0] == '\0')
		return 0;
	if (c->sni != NULL && c->sni[0] != '\0' && !store_is_ip(c->sni) &&
	    store_put_dip(st, c->client_ip, c->sni, c->server_ip, "sni",
		c->t_accept_us, -1) == -1)
		return -1;
	if (tunnel && c->target_host != NULL && c->target_host[0] != '\0' &&
	    !store_is_ip(c->target_host) &&
	    (c->sni == NULL || strcasecmp(c->sni, c->target_host) != 0) &&
	    store_put_dip(st, c->client_ip, c->target_host, c->server_ip,
		"connect", c->t_accept_us, -1) == -1)
		return -1;
	return 0;
}

static int
store_write_conn(struct store *st, const struct store_conn *c)
{
	sqlite3_stmt *s = st->ins_conn;
	int i = 1;

	sqlite3_bind_int64(s, i++, c->id);
	store_bind_text(s, i++, c->listener);
	store_bind_text(s, i++, c->client_ip);
	sqlite3_bind_int(s, i++, c->client_port);
	store_bind_text(s, i++, c->target_host);
	sqlite3_bind_int(s, i++, c->target_port);
	store_bind_text(s, i++, c->server_ip);
	sqlite3_bind_int(s, i++, c->server_port);
	store_bind_text(s, i++, c->protocol);
	store_bind_time(s, i++, c->t_accept_us);
	store_bind_time(s, i++, c->t_first_byte_us);
	store_bind_time(s, i++, c->t_close_us);
	store_bind_u64(s, i++, c->bytes_from_client);
	store_bind_u64(s, i++, c->bytes_to_client);
	store_bind_u64(s, i++, c->bytes_to_server);
	store_bind_u64(s, i++, c->bytes_from_server);
	sqlite3_bind_int(s, i++, c->nrequests);
	store_bind_text(s, i++, c->close_reason);
	store_bind_text(s, i++, c->error);
	store_bind_text(s, i++, c->sni);
	store_bind_text(s, i++, c->alpn);
	store_bind_text(s, i++, c->decision);
	store_bind_text(s, i++, c->decision_reason);
	store_bind_text(s, i++, c->tls_client);
	store_bind_text(s, i++, c->tls_server);
	store_bind_text(s, i++, c->upstream_cert_sha256);
	store_bind_text(s, i++, c->upstream_cert_subject);
	store_bind_text(s, i++, c->upstream_cert_issuer);
	store_bind_text(s, i++, c->verify_error);
	store_bind_text(s, i++, c->listener_target);
	store_bind_time(s, i++, c->t_upstream_connected_us);
	store_bind_time(s, i++, c->t_first_up_us);
	store_bind_time(s, i++, c->t_last_up_us);
	store_bind_time(s, i++, c->t_first_down_us);
	store_bind_time(s, i++, c->t_last_down_us);
	store_bind_u64(s, i++, c->reads_up);
	store_bind_u64(s, i++, c->reads_down);
	store_bind_text(s, i++, c->closed_by);
	sqlite3_bind_int(s, i++, c->events);
	sqlite3_bind_int(s, i++, c->events_capped);
	sqlite3_bind_int(s, i++, c->tcp_samples_capped);
	store_bind_tcpinfo(s, i, c->has_tcpinfo_client, &c->tcpinfo_client);
	i += STORE_TCPINFO_COLS;
	store_bind_tcpinfo(s, i, c->has_tcpinfo_server, &c->tcpinfo_server);
	i += STORE_TCPINFO_COLS;
	sqlite3_bind_int(s, i++, c->mmtls_bad);
	store_bind_u64(s, i++, c->mmtls_records);
	store_bind_u64(s, i++, c->mmtls_handshake);
	store_bind_u64(s, i++, c->mmtls_early);
	store_bind_u64(s, i++, c->mmtls_data);
	store_bind_u64(s, i++, c->mmtls_alert);
	store_bind_text(s, i++, c->alpn_client);
	store_bind_text(s, i, c->alpn_server);
	if (store_step(s) != SQLITE_DONE)
		return -1;
	return store_conn_evidence(st, c);
}

/* The real size is what the message had; captured bytes may be fewer. */
static void
store_bind_body(
    sqlite3_stmt *s, int i, const struct store_body *b, const char *hex)
{
	uint64_t total = b->total > b->len ? b->total : b->len;

	store_bind_u64(s, i, total);
	store_bind_text(s, i + 1, hex[0] != '\0' ? hex : NULL);
	sqlite3_bind_int(s, i + 2, b->truncated || b->total > b->len);
}

static int store_write_rec(struct store *st, struct store_rec *rec);

/* Write and free the records a request row implies (store_set_deriver). */
static void
store_write_derived(struct store *st, struct store_rec *list)
{
	struct store_rec *rec;

	while ((rec = list) != NULL) {
		list = rec->next;
		(void)store_write_rec(st, rec);
		store_rec_free(rec);
	}
}

static int
store_write_req(
    struct store *st, const struct store_request *r, int64_t *row_id)
{
	sqlite3_stmt *s = st->ins_req;
	char req_sha[65], resp_sha[65];
	int i = 1;

	if (store_put_body(st, &r->req_body, req_sha) == -1 ||
	    store_put_body(st, &r->resp_body, resp_sha) == -1)
		return -1;
	sqlite3_bind_int64(s, i++, r->conn_id);
	sqlite3_bind_int(s, i++, r->seq);
	store_bind_time(s, i++, r->t_start_us);
	store_bind_text(s, i++, r->client_ip);
	store_bind_text(s, i++, r->scheme);
	store_bind_text(s, i++, r->method);
	store_bind_text(s, i++, r->host);
	sqlite3_bind_int(s, i++, r->port);
	store_bind_text(s, i++, r->path);
	store_bind_text(s, i++, r->query);
	store_bind_text(s, i++, r->req_version);
	store_bind_text(s, i++, r->resp_version);
	sqlite3_bind_int(s, i++, r->status);
	store_bind_text(s, i++, r->req_headers);
	store_bind_text(s, i++, r->resp_headers);
	store_bind_u64(s, i++, r->req_header_bytes);
	store_bind_u64(s, i++, r->resp_header_bytes);
	store_bind_body(s, i, &r->req_body, req_sha);
	i += 3;
	store_bind_body(s, i, &r->resp_body, resp_sha);
	i += 3;
	store_bind_text(s, i++, r->content_type);
	store_bind_text(s, i++, r->server_ip);
	sqlite3_bind_int(s, i++, r->server_port);
	sqlite3_bind_int(s, i++, r->upstream_reused);
	store_bind_dur(s, i++, r->dns_us);
	store_bind_dur(s, i++, r->connect_us);
	store_bind_dur(s, i++, r->ttfb_us);
	store_bind_dur(s, i++, r->total_us);
	store_bind_text(s, i++, r->error);
	sqlite3_bind_int64(s, i++, r->replay_of);
	store_bind_text(s, i++, r->label);
	store_bind_text(s, i++, r->resp_reason);
	store_bind_dur(s, i++, r->tls_us);
	if (r->stream_id > 0)
		sqlite3_bind_int64(s, i, r->stream_id);
	else
		sqlite3_bind_null(s, i);
	i++;
	store_bind_text(s, i++, r->up_version);
	store_bind_text(s, i++, r->req_trailers);
	store_bind_text(s, i++, r->resp_trailers);
	store_bind_text(s, i, r->stream_end);
	if (store_step(s) != SQLITE_DONE)
		return -1;
	*row_id = sqlite3_last_insert_rowid(st->db);
	st->ws_req = 0; /* a (conn, seq) written again names a new row */
	if (st->derive != NULL)
		store_write_derived(st, st->derive(r));
	return 0;
}

static int
store_write_dip(struct store *st, const struct store_domain_ip *d)
{
	if (d->sighting_only)
		return d->client_ip != NULL
		    ? store_put_sighting(st, d->client_ip, d->domain, d->ip,
			  d->source, d->t_us, d->ttl)
		    : 0;
	return store_put_dip(
	    st, d->client_ip, d->domain, d->ip, d->source, d->t_us, d->ttl);
}

/* Bind event e of connection cid to the 5 parameters from i. */
static void
store_bind_sev(
    sqlite3_stmt *s, int i, int64_t cid, const struct store_stream_event *e)
{
	sqlite3_bind_int64(s, i, cid);
	sqlite3_bind_int64(s, i + 1, e->t_us);
	sqlite3_bind_int(s, i + 2, e->dir);
	sqlite3_bind_int64(s, i + 3, e->bytes);
	if (e->mmtls_type != 0)
		sqlite3_bind_int(s, i + 4, e->mmtls_type);
	else
		sqlite3_bind_null(s, i + 4);
}

/* A batch of stream events: STORE_SEV_ROWS per statement, then the rest
 * one by one, all inside the writer's transaction. 0 / -1. */
static int
store_write_sev(struct store *st, const struct store_stream_events *e)
{
	size_t k = 0, j;

	if (e->n > 0 && e->ev == NULL)
		return -1;
	for (; e->n - k >= STORE_SEV_ROWS; k += STORE_SEV_ROWS) {
		for (j = 0; j < STORE_SEV_ROWS; j++)
			store_bind_sev(st->ins_sev_many, (int)(j * 5 + 1),
			    e->conn_id, &e->ev[k + j]);
		if (store_step(st->ins_sev_many) != SQLITE_DONE)
			return -1;
	}
	for (; k < e->n; k++) {
		store_bind_sev(st->ins_sev_one, 1, e->conn_id, &e->ev[k]);
		if (store_step(st->ins_sev_one) != SQLITE_DONE)
			return -1;
	}
	return 0;
}

/* A batch of TCP_INFO samples, a row each, inside the writer's
 * transaction (a few rows a second per stream: one statement does). */
static int
store_write_tcps(struct store *st, const struct store_tcp_samples *t)
{
	sqlite3_stmt *s = st->ins_tcps;
	size_t k;

	if (t->n > 0 && t->s == NULL)
		return -1;
	for (k = 0; k < t->n; k++) {
		const struct store_tcp_sample *p = &t->s[k];
		sqlite3_bind_int64(s, 1, t->conn_id);
		sqlite3_bind_int64(s, 2, p->t_us);
		sqlite3_bind_int(s, 3, p->side);
		sqlite3_bind_int64(s, 4, p->rtt_us);
		sqlite3_bind_int64(s, 5, p->rttvar_us);
		sqlite3_bind_int64(s, 6, p->snd_cwnd);
		sqlite3_bind_int64(s, 7, p->unacked);
		store_bind_u64(s, 8, p->bytes_in_flight);
		sqlite3_bind_int64(s, 9, p->retrans);
		sqlite3_bind_int64(s, 10, p->total_retrans);
		store_bind_u64(s, 11, p->delivery_rate);
		store_bind_u64(s, 12, p->bytes_acked);
		store_bind_u64(s, 13, p->bytes_received);
		if (store_step(s) != SQLITE_DONE)
			return -1;
	}
	return 0;
}

/* The id of request (conn_id, seq), remembered for the next batch of the
 * same request. 1 found, 0 not there, -1 on error. */
static int
store_ws_request(struct store *st, int64_t conn_id, int seq, int64_t *id)
{
	sqlite3_stmt *s = st->sel_req_id;
	int rc;

	if (st->ws_conn == conn_id && st->ws_seq == seq && st->ws_req > 0) {
		*id = st->ws_req;
		return 1;
	}
	sqlite3_bind_int64(s, 1, conn_id);
	sqlite3_bind_int(s, 2, seq);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*id = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc == SQLITE_ROW) {
		st->ws_conn = conn_id;
		st->ws_seq = seq;
		st->ws_req = *id;
		return 1;
	}
	return rc == SQLITE_DONE ? 0 : -1;
}

/* One WebSocket message of request req at position idx. 0 / -1. */
static int
store_put_ws(
    struct store *st, int64_t req, int idx, const struct store_ws_msg *m)
{
	sqlite3_stmt *s = st->ins_ws;

	sqlite3_bind_int64(s, 1, req);
	sqlite3_bind_int(s, 2, idx);
	sqlite3_bind_int64(s, 3, m->t_us);
	sqlite3_bind_int(s, 4, m->dir);
	sqlite3_bind_int(s, 5, m->opcode);
	store_bind_u64(s, 6, m->size);
	store_bind_u64(s, 7, m->wire_bytes);
	sqlite3_bind_int(s, 8, m->compressed != 0);
	sqlite3_bind_int(s, 9, m->truncated != 0 || m->size > m->len);
	if (m->data != NULL)
		sqlite3_bind_blob64(s, 10, m->data, m->len, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, 10);
	if (m->close_code >= 0)
		sqlite3_bind_int(s, 11, m->close_code);
	else
		sqlite3_bind_null(s, 11);
	store_bind_text(s, 12, m->close_reason);
	store_bind_text(s, 13, m->error);
	return store_step(s) == SQLITE_DONE ? 0 : -1;
}

/* A batch of WebSocket messages, under the request row written before
 * it. A batch without its request is not written: nothing could show it
 * (-2, logged here; -1 for an SQLite error the caller logs). */
static int
store_write_ws(struct store *st, const struct store_ws_messages *w)
{
	int64_t req = 0;
	size_t k;
	int rc;

	if (w->n > 0 && w->m == NULL)
		return -1;
	if ((rc = store_ws_request(st, w->conn_id, w->seq, &req)) == 0) {
		log_warnx("c%lld store: %zu WebSocket messages of exchange %d,"
			  " which has no request row: not written",
		    (long long)w->conn_id, w->n, w->seq);
		return -2;
	}
	if (rc == -1)
		return -1;
	for (k = 0; k < w->n; k++)
		if (store_put_ws(st, req, w->first_idx + (int)k, &w->m[k]) ==
		    -1)
			return -1;
	return 0;
}

static int
store_write_learned(struct store *st, const struct store_learned *l)
{
	sqlite3_stmt *s = st->ins_learned;

	store_bind_text(s, 1, l->host);
	sqlite3_bind_int(s, 2, l->port);
	store_bind_text(s, 3, l->reason);
	store_bind_time(s, 4, l->t_us);
	sqlite3_bind_int(s, 5, l->rejections);
	sqlite3_bind_int64(s, 6, l->next_retry_us);
	return store_step(s) == SQLITE_DONE ? 0 : -1;
}

static int
store_write_forget(struct store *st, const struct store_learned *l)
{
	sqlite3_stmt *s = st->del_learned;

	store_bind_text(s, 1, l->host);
	sqlite3_bind_int(s, 2, l->port);
	return store_step(s) == SQLITE_DONE ? 0 : -1;
}

/* Write one record; a failure is logged here with its kind. A request
 * keeps the row id it got, for its flow line. 0 / -1. */
static int
store_write_rec(struct store *st, struct store_rec *rec)
{
	int rc = -1;
	int64_t cid = 0;

	rec->row_id = 0;
	switch (rec->type) {
	case STORE_REC_CONN:
		rc = store_write_conn(st, &rec->u.conn);
		cid = rec->u.conn.id;
		break;
	case STORE_REC_REQUEST:
		rc = store_write_req(st, &rec->u.req, &rec->row_id);
		cid = rec->u.req.conn_id;
		break;
	case STORE_REC_DOMAIN_IP:
		rc = store_write_dip(st, &rec->u.dip);
		break;
	case STORE_REC_LEARNED_PASSTHROUGH:
		rc = store_write_learned(st, &rec->u.learned);
		break;
	case STORE_REC_STREAM_EVENTS:
		rc = store_write_sev(st, &rec->u.sev);
		cid = rec->u.sev.conn_id;
		break;
	case STORE_REC_LEARNED_FORGET:
		rc = store_write_forget(st, &rec->u.learned);
		break;
	case STORE_REC_TCP_SAMPLES:
		rc = store_write_tcps(st, &rec->u.tcps);
		cid = rec->u.tcps.conn_id;
		break;
	case STORE_REC_WS_MESSAGES:
		rc = store_write_ws(st, &rec->u.ws);
		cid = rec->u.ws.conn_id;
		break;
	case STORE_REC_KEYLOG:
	case STORE_REC_NOTE:
		rc = 0; /* not for SQLite: written beside it, or printed */
		break;
	}
	if (rc == -1)
		log_warnx("c%lld store: cannot write %s record: %s",
		    (long long)cid, store_rec_kind(rec),
		    sqlite3_errmsg(st->db));
	return rc < 0 ? -1 : 0;
}

/*
 * Open a write transaction, taking the file's write lock now: another
 * process (replay, a second run) may hold it, and a deferred BEGIN that
 * meets it halfway cannot wait for it. Each try waits up to the busy
 * timeout. Thread owning db. 0 / -1 (logged).
 */
int
store_begin(struct store *st)
{
	int tries, rc = SQLITE_ERROR;

	for (tries = 0; tries < 4; tries++) {
		rc = sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
		if (rc == SQLITE_OK)
			return 0;
		if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED)
			break;
	}
	log_warnx(
	    "store: cannot start a transaction: %s", sqlite3_errmsg(st->db));
	return -1;
}

/*
 * Write a batch in one transaction; returns how many records failed. If the
 * transaction is lost (COMMIT fails, or an I/O error made SQLite roll back
 * on its own), every record is tried again on its own, so one bad record or
 * a full disk costs only the records that really cannot be written. A
 * discarding store has no file: nothing to write, nothing fails.
 * Writer thread (or store_close after the writer has stopped).
 */
size_t
store_write_batch(struct store *st, struct store_rec *batch)
{
	struct store_rec *rec;
	size_t nfail = 0;
	int intx, lost = 0;

	if (st->db == NULL)
		return 0;
	st->ws_req = 0; /* a rolled-back batch may have held that row */
	intx = store_begin(st) == 0;
	for (rec = batch; rec != NULL; rec = rec->next) {
		if (store_write_rec(st, rec) == -1)
			nfail++;
		if (intx && sqlite3_get_autocommit(st->db)) {
			lost = 1;
			break;
		}
	}
	if (intx && !lost &&
	    sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		log_warnx("store: commit failed: %s", sqlite3_errmsg(st->db));
		lost = 1;
	}
	if (!lost)
		return nfail;
	if (!sqlite3_get_autocommit(st->db))
		(void)sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	log_warnx("store: batch rolled back, writing its records one by one");
	st->ws_req = 0;
	nfail = 0;
	for (rec = batch; rec != NULL; rec = rec->next)
		if (store_write_rec(st, rec) == -1)
			nfail++;
	return nfail;
}

/* The stream-event insert with STORE_SEV_ROWS rows of parameters. */
static int
store_prepare_sev(struct store *st)
{
	char sql[sizeof(store_sql_sev) + STORE_SEV_ROWS * 12];
	size_t len, j;

	len = (size_t)snprintf(sql, sizeof(sql), "%s", store_sql_sev);
	for (j = 1; j < STORE_SEV_ROWS; j++)
		len += (size_t)snprintf(
		    sql + len, sizeof(sql) - len, ",(?,?,?,?,?)");
	return sqlite3_prepare_v2(st->db, sql, -1, &st->ins_sev_many, NULL) ==
		    SQLITE_OK &&
		sqlite3_prepare_v2(st->db, store_sql_sev, -1, &st->ins_sev_one,
		    NULL) == SQLITE_OK
	    ? 0
	    : -1;
}

int
store_prepare(struct store *st, char *err, size_t errlen)
{
	if (store_prepare_sev(st) == -1 ||
	    sqlite3_prepare_v2(
		st->db, store_sql_conn, -1, &st->ins_conn, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(st->db, store_sql_req, -1, &st->ins_req, NULL) !=
		SQLITE_OK ||
	    sqlite3_prepare_v2(st->db, store_sql_sight, -1, &st->ins_sight,
		NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(st->db, store_sql_dip, -1, &st->ins_dip, NULL) !=
		SQLITE_OK ||
	    sqlite3_prepare_v2(
		st->db, store_sql_body, -1, &st->ins_body, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(st->db, store_sql_learned, -1, &st->ins_learned,
		NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(st->db, store_sql_forget, -1, &st->del_learned,
		NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(st->db, store_sql_req_id, -1, &st->sel_req_id,
		NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(st->db, store_sql_ws, -1, &st->ins_ws, NULL) !=
		SQLITE_OK ||
	    sqlite3_prepare_v2(
		st->db, store_sql_tcps, -1, &st->ins_tcps, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "cannot prepare statements: %s",
		    sqlite3_errmsg(st->db));
		return -1;
	}
	return 0;
}

/* Finalize the statements store_prepare made (NULL ones are no-ops). */
void
store_stmts_free(struct store *st)
{
	sqlite3_finalize(st->ins_conn);
	sqlite3_finalize(st->ins_req);
	sqlite3_finalize(st->ins_dip);
	sqlite3_finalize(st->ins_sight);
	sqlite3_finalize(st->ins_body);
	sqlite3_finalize(st->ins_learned);
	sqlite3_finalize(st->del_learned);
	sqlite3_finalize(st->ins_sev_many);
	sqlite3_finalize(st->ins_sev_one);
	sqlite3_finalize(st->sel_req_id);
	sqlite3_finalize(st->ins_ws);
	sqlite3_finalize(st->ins_tcps);
}
