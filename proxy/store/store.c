/* store: see store.h. */
#include "proxy/store/store.h"

#include <event2/event.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <strings.h>
#include <sys/socket.h>

#include "proxy/log.h"
#include "proxy/http/head.h"
#include "proxy/store/schema.h"

/* How long an insert waits for a reader's lock before it fails. */
#define STORE_BUSY_TIMEOUT_MS 5000
/* How long the writer lets a batch gather before a transaction. */
#define STORE_GATHER_NS (5 * 1000000L)
/* Stream events per multi-row INSERT: 5 parameters each, well below the
 * 999 an old SQLite allows per statement. */
#define STORE_SEV_ROWS 100
/*
 * Bodies the writer remembers with their SHA-256, so a body seen again (the
 * same avatar, script or API answer) is recognised by a memcmp instead of
 * being hashed: hashing a 1 MiB body costs the writer ~0.6 ms, comparing it
 * ~30 µs. Bounded in entries and in bytes; the bytes are the records' own
 * capture buffers, adopted when the record is freed, not copies.
 */
#define STORE_SEEN_MAX 16
#define STORE_SEEN_BYTES ((size_t)2 << 20)

/* One remembered body. owned: data is the cache's (adopted from a freed
 * record); until then it points into a record of the batch being written. */
struct store_seen {
	unsigned char *data;
	size_t len;
	int owned;
	char hex[65];
};

struct store {
	sqlite3 *db; /* the writer thread's once store_start() returns; NULL
			for a discarding store */
	sqlite3_stmt *ins_conn;
	sqlite3_stmt *ins_req;
	sqlite3_stmt *ins_dip;
	sqlite3_stmt *ins_sight;
	sqlite3_stmt *ins_body;
	sqlite3_stmt *ins_learned;
	sqlite3_stmt *del_learned;
	sqlite3_stmt *ins_sev_many; /* STORE_SEV_ROWS stream events */
	sqlite3_stmt *ins_sev_one;  /* one stream event */
	/* the writer's: SHA-256 fetched once (an implicit fetch per digest
	 * costs a provider lookup), and recent bodies, newest first */
	EVP_MD *sha256;
	EVP_MD_CTX *md_ctx;
	struct store_seen seen[STORE_SEEN_MAX];
	size_t nseen;
	size_t seen_bytes;

	pthread_t thread;
	int started;

	/* Everything below is guarded by mtx. */
	pthread_mutex_t mtx;
	pthread_cond_t cond;
	struct store_rec *head;
	struct store_rec *tail;
	size_t count; /* queued plus the batch being written */
	size_t bytes; /* their store_rec_bytes */
	size_t queue_max;
	size_t queue_bytes_max;
	int backlogged; /* past a limit, not yet below half of both */
	int stopping;
	struct event **watch;
	size_t nwatch;
	uint64_t written;
	uint64_t failed;

	/*
	 * Connection ids. [id_next, id_end) is the block being handed out,
	 * [spare_first, spare_end) the one reserved next (empty until the
	 * writer has it). id_want asks the writer for a spare; it is set
	 * under id_mtx and the writer is woken through mtx/cond.
	 */
	pthread_mutex_t id_mtx;
	pthread_cond_t id_cond;
	int64_t id_next, id_end, spare_first, spare_end;
	_Atomic int id_want;

	/* the writer's: who reloads the learned list, the file's
	 * data_version when last looked, and when that was */
	void (*learned_cb)(struct store *st, void *arg);
	void *learned_arg;
	int data_version;
	int64_t polled_us;
	FILE *keylog; /* SSLKEYLOGFILE, the writer's once started */
	/* who turns printed records into `peephole run` lines */
	void (*printer)(const struct store_rec *rec, void *arg);
	void *printer_arg;
	struct store_rec *(*derive)(const struct store_request *r);
};

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
    " events, events_capped,"
    " tcp_client_rtt_us, tcp_client_rttvar_us, tcp_client_retransmits,"
    " tcp_client_total_retrans, tcp_client_lost, tcp_client_reordering,"
    " tcp_client_snd_cwnd, tcp_client_pmtu,"
    " tcp_server_rtt_us, tcp_server_rttvar_us, tcp_server_retransmits,"
    " tcp_server_total_retrans, tcp_server_lost, tcp_server_reordering,"
    " tcp_server_snd_cwnd, tcp_server_pmtu,"
    " mmtls_bad, mmtls_records, mmtls_handshake, mmtls_early, mmtls_data,"
    " mmtls_alert)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,"
    "?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";

/* Followed by ",(?,?,?,?,?)" once per further row. */
static const char store_sql_sev[] =
    "INSERT INTO stream_events (conn_id, t_us, dir, bytes, mmtls_type)"
    " VALUES (?,?,?,?,?)";

static const char store_sql_req[] =
    "INSERT INTO requests (conn_id, seq, t_start_us, client_ip, scheme,"
    " method, host, port, path, query, req_version, resp_version, status,"
    " req_headers, resp_headers, req_header_bytes, resp_header_bytes,"
    " req_body_size, req_body_sha, req_body_truncated,"
    " resp_body_size, resp_body_sha, resp_body_truncated,"
    " content_type, server_ip, server_port, upstream_reused,"
    " dns_us, connect_us, ttfb_us, total_us, error, replay_of, label,"
    " resp_reason, tls_us)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,"
    "?,?,?,?,?,?)";

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

struct store_rec *
store_rec_new(enum store_rec_type type)
{
	struct store_rec *rec;

	if (type != STORE_REC_CONN && type != STORE_REC_REQUEST &&
	    type != STORE_REC_DOMAIN_IP &&
	    type != STORE_REC_LEARNED_PASSTHROUGH &&
	    type != STORE_REC_STREAM_EVENTS && type != STORE_REC_KEYLOG &&
	    type != STORE_REC_LEARNED_FORGET && type != STORE_REC_NOTE)
		return NULL;
	if ((rec = calloc(1, sizeof(*rec))) == NULL)
		return NULL;
	rec->type = type;
	if (type == STORE_REC_REQUEST) {
		rec->u.req.dns_us = -1;
		rec->u.req.connect_us = -1;
		rec->u.req.tls_us = -1;
		rec->u.req.ttfb_us = -1;
		rec->u.req.total_us = -1;
	} else if (type == STORE_REC_DOMAIN_IP)
		rec->u.dip.ttl = -1;
	return rec;
}

/* Free what a connection record's fields own. */
static void
store_conn_clear(struct store_conn *c)
{
	free(c->listener);
	free(c->client_ip);
	free(c->target_host);
	free(c->server_ip);
	free(c->protocol);
	free(c->close_reason);
	free(c->error);
	free(c->sni);
	free(c->alpn);
	free(c->decision);
	free(c->decision_reason);
	free(c->tls_client);
	free(c->tls_server);
	free(c->upstream_cert_sha256);
	free(c->upstream_cert_subject);
	free(c->upstream_cert_issuer);
	free(c->verify_error);
	free(c->listener_target);
	free(c->closed_by);
}

/* Free what a request record's fields own. */
static void
store_request_clear(struct store_request *r)
{
	free(r->client_ip);
	free(r->scheme);
	free(r->method);
	free(r->host);
	free(r->path);
	free(r->query);
	free(r->req_version);
	free(r->resp_version);
	free(r->resp_reason);
	free(r->req_headers);
	free(r->resp_headers);
	free(r->req_body.data);
	free(r->resp_body.data);
	free(r->content_type);
	free(r->server_ip);
	free(r->error);
	free(r->label);
}

void
store_rec_free(struct store_rec *rec)
{
	struct store_domain_ip *d;

	if (rec == NULL)
		return;
	switch (rec->type) {
	case STORE_REC_CONN:
		store_conn_clear(&rec->u.conn);
		break;
	case STORE_REC_REQUEST:
		store_request_clear(&rec->u.req);
		break;
	case STORE_REC_DOMAIN_IP:
		d = &rec->u.dip;
		free(d->domain);
		free(d->ip);
		free(d->source);
		free(d->client_ip);
		break;
	case STORE_REC_LEARNED_PASSTHROUGH:
	case STORE_REC_LEARNED_FORGET:
		free(rec->u.learned.host);
		free(rec->u.learned.reason);
		break;
	case STORE_REC_NOTE:
		free(rec->u.note.client_ip);
		free(rec->u.note.text);
		break;
	case STORE_REC_STREAM_EVENTS:
		free(rec->u.sev.ev);
		break;
	case STORE_REC_KEYLOG:
		free(rec->u.keylog.line);
		break;
	}
	free(rec);
}

static size_t
store_strlen(const char *v)
{
	return v != NULL ? strlen(v) + 1 : 0;
}

size_t
store_rec_bytes(const struct store_rec *rec)
{
	/* the many short strings of a record are put at a flat 256 bytes;
	 * what can be large is counted */
	size_t n = sizeof(*rec) + 256;

	switch (rec->type) {
	case STORE_REC_REQUEST:
		n += store_strlen(rec->u.req.req_headers) +
		    store_strlen(rec->u.req.resp_headers) +
		    rec->u.req.req_body.len + rec->u.req.resp_body.len;
		break;
	case STORE_REC_STREAM_EVENTS:
		n += rec->u.sev.n * sizeof(*rec->u.sev.ev);
		break;
	case STORE_REC_KEYLOG:
		n += store_strlen(rec->u.keylog.line);
		break;
	case STORE_REC_NOTE:
		n += store_strlen(rec->u.note.text);
		break;
	case STORE_REC_CONN:
	case STORE_REC_DOMAIN_IP:
	case STORE_REC_LEARNED_PASSTHROUGH:
	case STORE_REC_LEARNED_FORGET:
		break;
	}
	return n;
}

static const char *
store_rec_kind(const struct store_rec *rec)
{
	switch (rec->type) {
	case STORE_REC_CONN:
		return "connection";
	case STORE_REC_REQUEST:
		return "request";
	case STORE_REC_DOMAIN_IP:
		return "domain-ip";
	case STORE_REC_LEARNED_PASSTHROUGH:
		return "learned-passthrough";
	case STORE_REC_STREAM_EVENTS:
		return "stream-events";
	case STORE_REC_KEYLOG:
		return "keylog";
	case STORE_REC_LEARNED_FORGET:
		return "learned-forget";
	case STORE_REC_NOTE:
		return "note";
	}
	return "unknown";
}

/* NULL strings become SQL NULL; the record outlives the step, so no copy. */
static int
store_bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v == NULL)
		return sqlite3_bind_null(s, i);
	return sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
}

static int
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
static int
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
	store_bind_tcpinfo(s, i, c->has_tcpinfo_client, &c->tcpinfo_client);
	i += STORE_TCPINFO_COLS;
	store_bind_tcpinfo(s, i, c->has_tcpinfo_server, &c->tcpinfo_server);
	i += STORE_TCPINFO_COLS;
	sqlite3_bind_int(s, i++, c->mmtls_bad);
	store_bind_u64(s, i++, c->mmtls_records);
	store_bind_u64(s, i++, c->mmtls_handshake);
	store_bind_u64(s, i++, c->mmtls_early);
	store_bind_u64(s, i++, c->mmtls_data);
	store_bind_u64(s, i, c->mmtls_alert);
	if (store_step(s) != SQLITE_DONE)
		return -1;
	return store_conn_evidence(st, c);
}

/* Forget remembered body i; frees its bytes if the cache owns them. */
static void
store_seen_drop(struct store *st, size_t i)
{
	struct store_seen *e = &st->seen[i];

	if (e->owned)
		free(e->data);
	st->seen_bytes -= e->len;
	memmove(e, e + 1, (st->nseen - i - 1) * sizeof(*e));
	st->nseen--;
}

/* Copy the digest of a remembered body equal to b into hex and make it the
 * newest. 1 when found, else 0. Writer thread. */
static int
store_seen_find(struct store *st, const struct store_body *b, char hex[65])
{
	struct store_seen e;
	size_t i;

	for (i = 0; i < st->nseen; i++) {
		if (st->seen[i].len != b->len ||
		    (st->seen[i].data != b->data &&
			memcmp(st->seen[i].data, b->data, b->len) != 0))
			continue;
		e = st->seen[i];
		memcpy(hex, e.hex, sizeof(e.hex));
		memmove(&st->seen[1], &st->seen[0], i * sizeof(e));
		st->seen[0] = e;
		return 1;
	}
	return 0;
}

/* Remember b (not owned yet: store_seen_adopt takes its bytes when its
 * record is freed) with its digest, as the newest, evicting the oldest
 * past the bounds. Writer thread. */
static void
store_seen_add(struct store *st, const struct store_body *b, const char *hex)
{
	struct store_seen *e;

	if (b->len > STORE_SEEN_BYTES / 2)
		return;
	while (st->nseen > 0 &&
	    (st->nseen == STORE_SEEN_MAX ||
		st->seen_bytes + b->len > STORE_SEEN_BYTES))
		store_seen_drop(st, st->nseen - 1);
	memmove(&st->seen[1], &st->seen[0], st->nseen * sizeof(*e));
	e = &st->seen[0];
	e->data = b->data;
	e->len = b->len;
	e->owned = 0;
	memcpy(e->hex, hex, sizeof(e->hex));
	st->nseen++;
	st->seen_bytes += b->len;
}

/* A record is about to be freed: remembered bodies that point into it
 * take its buffer (the record lets go of it). Writer thread. */
static void
store_seen_adopt(struct store *st, struct store_body *b)
{
	size_t i;

	if (b->data == NULL)
		return;
	for (i = 0; i < st->nseen; i++)
		if (!st->seen[i].owned && st->seen[i].data == b->data) {
			st->seen[i].owned = 1;
			b->data = NULL;
			return;
		}
}

/* After a batch's records are freed nothing may point into them. */
static void
store_seen_settle(struct store *st)
{
	size_t i = 0;

	while (i < st->nseen)
		if (!st->seen[i].owned)
			store_seen_drop(st, i);
		else
			i++;
}

/* SHA-256 of b as lowercase hex. 0 / -1 (logged). Writer thread. */
static int
store_sha256_hex(struct store *st, const struct store_body *b, char hex[65])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;

	if (st->md_ctx == NULL && (st->md_ctx = EVP_MD_CTX_new()) == NULL)
		goto fail;
	if (st->sha256 == NULL &&
	    (st->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL)
		goto fail;
	if (!EVP_DigestInit_ex(st->md_ctx, st->sha256, NULL) ||
	    !EVP_DigestUpdate(st->md_ctx, b->data, b->len) ||
	    !EVP_DigestFinal_ex(st->md_ctx, md, &mdlen) || mdlen != 32)
		goto fail;
	for (i = 0; i < mdlen; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 0xf];
	}
	hex[64] = '\0';
	return 0;
fail:
	log_ssl_warnx("store: sha256 failed");
	return -1;
}

/*
 * Store the captured bytes of b once, keyed by their SHA-256, and put the
 * lowercase hex digest in hex. hex is "" when nothing was captured. 0 / -1.
 */
static int
store_put_body(struct store *st, const struct store_body *b, char hex[65])
{
	sqlite3_stmt *s = st->ins_body;

	hex[0] = '\0';
	if (b->data == NULL || b->len == 0)
		return 0;
	if (!store_seen_find(st, b, hex)) {
		if (store_sha256_hex(st, b, hex) == -1)
			return -1;
		store_seen_add(st, b, hex);
	}
	sqlite3_bind_text(s, 1, hex, 64, SQLITE_STATIC);
	store_bind_u64(s, 2, b->len);
	sqlite3_bind_blob64(s, 3, b->data, b->len, SQLITE_STATIC);
	if (store_step(s) != SQLITE_DONE) {
		log_warnx("store: cannot write body %s (%zu bytes): %s", hex,
		    b->len, sqlite3_errmsg(st->db));
		return -1;
	}
	return 0;
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
	store_bind_dur(s, i, r->tls_us);
	if (store_step(s) != SQLITE_DONE)
		return -1;
	*row_id = sqlite3_last_insert_rowid(st->db);
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
	case STORE_REC_KEYLOG:
	case STORE_REC_NOTE:
		rc = 0; /* not for SQLite: written beside it, or printed */
		break;
	}
	if (rc == -1)
		log_warnx("c%lld store: cannot write %s record: %s",
		    (long long)cid, store_rec_kind(rec),
		    sqlite3_errmsg(st->db));
	return rc;
}

/*
 * Open a write transaction, taking the file's write lock now: another
 * process (replay, a second run) may hold it, and a deferred BEGIN that
 * meets it halfway cannot wait for it. Each try waits up to the busy
 * timeout. Thread owning db. 0 / -1 (logged).
 */
static int
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
 * Reserve n connection ids in the file; *first is the first of them.
 * Thread owning db. 0 / -1 (logged).
 */
static int
store_reserve_ids(struct store *st, int64_t n, int64_t *first)
{
	sqlite3_stmt *s = NULL;
	int ok;

	if (store_begin(st) == -1)
		return -1;
	ok = sqlite3_prepare_v2(st->db,
		 "UPDATE conn_ids SET next = next + ?1 RETURNING next - ?1", -1,
		 &s, NULL) == SQLITE_OK &&
	    sqlite3_bind_int64(s, 1, n) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW;
	if (ok)
		*first = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	if (ok && sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
		return 0;
	log_warnx(
	    "store: cannot reserve connection ids: %s", sqlite3_errmsg(st->db));
	if (!sqlite3_get_autocommit(st->db))
		(void)sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

/* Ask the writer for the next block of ids. Any thread; mtx not held. */
static void
store_want_ids(struct store *st)
{
	atomic_store(&st->id_want, 1);
	pthread_mutex_lock(&st->mtx);
	pthread_cond_signal(&st->cond);
	pthread_mutex_unlock(&st->mtx);
}

/* Writer thread: reserve a spare block unless one is waiting already.
 * A failure leaves none; the next store_next_conn_id asks again. */
static void
store_refill_ids(struct store *st)
{
	int64_t first;
	int have;

	atomic_store(&st->id_want, 0);
	pthread_mutex_lock(&st->id_mtx);
	have = st->spare_end > st->spare_first;
	pthread_mutex_unlock(&st->id_mtx);
	if (have || st->db == NULL ||
	    store_reserve_ids(st, STORE_ID_BLOCK, &first) == -1)
		return;
	pthread_mutex_lock(&st->id_mtx);
	st->spare_first = first;
	st->spare_end = first + STORE_ID_BLOCK;
	pthread_cond_broadcast(&st->id_cond);
	pthread_mutex_unlock(&st->id_mtx);
}

/*
 * Write a batch in one transaction; returns how many records failed. If the
 * transaction is lost (COMMIT fails, or an I/O error made SQLite roll back
 * on its own), every record is tried again on its own, so one bad record or
 * a full disk costs only the records that really cannot be written. A
 * discarding store has no file: nothing to write, nothing fails.
 * Writer thread (or store_close after the writer has stopped).
 */
static size_t
store_write_batch(struct store *st, struct store_rec *batch)
{
	struct store_rec *rec;
	size_t nfail = 0;
	int intx, lost = 0;

	if (st->db == NULL)
		return 0;
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
	nfail = 0;
	for (rec = batch; rec != NULL; rec = rec->next)
		if (store_write_rec(st, rec) == -1)
			nfail++;
	return nfail;
}

/* Called with mtx held once the queue shrank: lift the back-pressure when
 * it falls to half the limit. Not while stopping, since the loops that own
 * the events may be gone by then. */
static void
store_check_drain(struct store *st)
{
	size_t i;

	if (!st->backlogged || st->count > st->queue_max / 2 ||
	    st->bytes > st->queue_bytes_max / 2)
		return;
	st->backlogged = 0;
	if (st->stopping)
		return;
	for (i = 0; i < st->nwatch; i++)
		event_active(st->watch[i], EV_READ, 0);
}

/* Take up to STORE_BATCH_MAX records, and STORE_BATCH_BYTES (at least one
 * record), off the queue. mtx held. */
static struct store_rec *
store_take_batch(struct store *st, size_t *n, size_t *bytes)
{
	struct store_rec *batch = st->head, *last = st->head;

	*n = 1;
	*bytes = last->bytes;
	while (*n < STORE_BATCH_MAX && last->next != NULL &&
	    *bytes + last->next->bytes <= STORE_BATCH_BYTES) {
		last = last->next;
		(*n)++;
		*bytes += last->bytes;
	}
	st->head = last->next;
	if (st->head == NULL)
		st->tail = NULL;
	last->next = NULL;
	return batch;
}

/* The file's PRAGMA data_version: it changes when another connection
 * (another process) commits, never for this connection's own writes. */
static int
store_data_version(struct store *st, int *v)
{
	sqlite3_stmt *s = NULL;
	int rc = -1;

	if (sqlite3_prepare_v2(st->db, "PRAGMA data_version", -1, &s, NULL) ==
		SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW) {
		*v = sqlite3_column_int(s, 0);
		rc = 0;
	}
	sqlite3_finalize(s);
	return rc;
}

static int64_t
store_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * At most every STORE_POLL_MS: if another process changed the file since
 * the last look, let the watcher reload the learned list. Writer thread,
 * mtx not held.
 */
static void
store_poll(struct store *st)
{
	int64_t now;
	int v;

	if (st->learned_cb == NULL || st->db == NULL)
		return;
	now = store_mono_us();
	if (now - st->polled_us < (int64_t)STORE_POLL_MS * 1000)
		return;
	st->polled_us = now;
	if (store_data_version(st, &v) == -1 || v == st->data_version)
		return;
	st->data_version = v;
	st->learned_cb(st, st->learned_arg);
}

/* Wait on cond for at most ns. mtx held. */
static void
store_timedwait(struct store *st, long ns)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ns / 1000000000L;
	ts.tv_nsec += ns % 1000000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	(void)pthread_cond_timedwait(&st->cond, &st->mtx, &ts);
}

/*
 * A written batch: print the flow lines asked for, append key-log lines,
 * free the records. The writer thread (store_close once it has gone),
 * without the lock.
 */
static void
store_batch_done(struct store *st, struct store_rec *batch)
{
	struct store_rec *rec;

	while ((rec = batch) != NULL) {
		batch = rec->next;
		if (rec->print && st->printer != NULL)
			st->printer(rec, st->printer_arg);
		if (rec->type == STORE_REC_KEYLOG && st->keylog != NULL &&
		    rec->u.keylog.line != NULL)
			fputs(rec->u.keylog.line, st->keylog);
		if (rec->type == STORE_REC_REQUEST) {
			/* the body cache takes the capture buffers over */
			store_seen_adopt(st, &rec->u.req.req_body);
			store_seen_adopt(st, &rec->u.req.resp_body);
		}
		store_rec_free(rec);
	}
	store_seen_settle(st);
	if (st->keylog != NULL)
		fflush(st->keylog);
	/* One flush per batch: flow lines appear as their records reach the
	 * file, without a write per line. */
	fflush(stdout);
}

/* Write and free whatever is queued until the queue is empty, or, when
 * wait is set, until stopping is set and the queue is empty. mtx held on
 * entry and exit; dropped while writing. */
static void
store_drain(struct store *st, int wait)
{
	struct store_rec *batch;
	size_t n, nbytes, nfail;

	for (;;) {
		while (wait && st->head == NULL && !st->stopping &&
		    !atomic_load(&st->id_want)) {
			if (st->learned_cb == NULL) {
				pthread_cond_wait(&st->cond, &st->mtx);
				continue;
			}
			/* idle, but another process may edit the list */
			store_timedwait(st, STORE_POLL_MS * 1000000L);
			pthread_mutex_unlock(&st->mtx);
			store_poll(st);
			pthread_mutex_lock(&st->mtx);
		}
		if (wait && atomic_load(&st->id_want)) {
			pthread_mutex_unlock(&st->mtx);
			store_refill_ids(st);
			pthread_mutex_lock(&st->mtx);
			continue;
		}
		if (st->head == NULL)
			break;
		if (wait && !st->stopping && st->count < STORE_BATCH_MAX) {
			/*
			 * Let a batch gather. Woken per record, the writer
			 * would take one transaction and two context switches
			 * per exchange; a few ms of delay on the flow line
			 * costs nothing. Submitters only signal an empty
			 * queue, so this sleeps the whole window unless
			 * store_close() signals.
			 */
			store_timedwait(st, STORE_GATHER_NS);
		}
		batch = store_take_batch(st, &n, &nbytes);
		pthread_mutex_unlock(&st->mtx);
		nfail = store_write_batch(st, batch);
		store_batch_done(st, batch);
		if (wait)
			store_poll(st); /* a busy writer looks too */
		pthread_mutex_lock(&st->mtx);
		st->count -= n;
		st->bytes -= nbytes;
		st->written += n - nfail;
		st->failed += nfail;
		store_check_drain(st);
	}
}

static void *
store_writer(void *arg)
{
	struct store *st = arg;

	pthread_mutex_lock(&st->mtx);
	store_drain(st, 1);
	pthread_mutex_unlock(&st->mtx);
	return NULL;
}

/* journal_mode answers with the mode it ended up in; anything but "wal"
 * (a filesystem without shared memory, say) is worth refusing loudly. */
static int
store_set_wal(sqlite3 *db, char *err, size_t errlen)
{
	sqlite3_stmt *s = NULL;
	const unsigned char *mode;

	if (sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &s, NULL) !=
		SQLITE_OK ||
	    sqlite3_step(s) != SQLITE_ROW) {
		snprintf(
		    err, errlen, "cannot set WAL mode: %s", sqlite3_errmsg(db));
		goto fail;
	}
	mode = sqlite3_column_text(s, 0);
	if (mode == NULL || strcmp((const char *)mode, "wal") != 0) {
		snprintf(err, errlen, "cannot set WAL mode (got %s)",
		    mode != NULL ? (const char *)mode : "nothing");
		goto fail;
	}
	sqlite3_finalize(s);
	return 0;
fail:
	sqlite3_finalize(s);
	return -1;
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

static int
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
		NULL) != SQLITE_OK) {
		snprintf(err, errlen, "cannot prepare statements: %s",
		    sqlite3_errmsg(st->db));
		return -1;
	}
	return 0;
}

/* Release what store_open set up; the writer must not be running. */
static void
store_free(struct store *st)
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
	while (st->nseen > 0)
		store_seen_drop(st, st->nseen - 1);
	EVP_MD_CTX_free(st->md_ctx);
	EVP_MD_free(st->sha256);
	if (st->db != NULL && sqlite3_close(st->db) != SQLITE_OK)
		log_warnx("store: close failed: %s", sqlite3_errmsg(st->db));
	pthread_cond_destroy(&st->cond);
	pthread_mutex_destroy(&st->mtx);
	pthread_cond_destroy(&st->id_cond);
	pthread_mutex_destroy(&st->id_mtx);
	free(st->watch);
	if (st->keylog != NULL)
		fclose(st->keylog);
	free(st);
}

int
store_set_keylog(struct store *st, const char *path, char *err, size_t errlen)
{
	/* the secrets decrypt everything: readable by the owner only */
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

	if (fd == -1 || (st->keylog = fdopen(fd, "a")) == NULL) {
		snprintf(
		    err, errlen, "SSLKEYLOGFILE %s: %s", path, strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	return 0;
}

/* A store with its locks and limits, nothing open. NULL on ENOMEM. */
static struct store *
store_new(struct store_limits lim)
{
	struct store *st;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return NULL;
	pthread_mutex_init(&st->mtx, NULL);
	pthread_cond_init(&st->cond, NULL);
	pthread_mutex_init(&st->id_mtx, NULL);
	pthread_cond_init(&st->id_cond, NULL);
	st->queue_max =
	    lim.queue_max > 0 ? lim.queue_max : STORE_QUEUE_MAX_DEFAULT;
	st->queue_bytes_max = lim.queue_bytes_max > 0
	    ? lim.queue_bytes_max
	    : STORE_QUEUE_BYTES_DEFAULT;
	return st;
}

/* Put "PATH: " in front of the message in err. */
static void
store_err_path(char *err, size_t errlen, const char *path)
{
	char msg[256];

	snprintf(msg, sizeof(msg), "%s", err);
	snprintf(err, errlen, "%s: %s", path, msg);
}

/* 1 if the file holds any table (a user_version 0 file that is not new). */
static int
store_has_tables(sqlite3 *db)
{
	sqlite3_stmt *s = NULL;
	int n = 0;

	if (sqlite3_prepare_v2(db,
		"SELECT count(*) FROM sqlite_master WHERE type = 'table'", -1,
		&s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return n > 0;
}

/*
 * Whether db (at path) is one this build may write to: empty, or
 * peephole's at a schema version it knows. A newer file is refused before
 * WAL mode is set: not even that write is ours to make. 0 / -1 + err.
 */
static int
store_check_version(sqlite3 *db, const char *path, char *err, size_t errlen)
{
	int version;

	if (schema_version(db, &version, err, errlen) == -1) {
		store_err_path(err, errlen, path);
		return -1;
	}
	if (version == 0 && store_has_tables(db)) {
		/* someone else's database: adding our tables would change it */
		snprintf(err, errlen,
		    "%s: a SQLite database that is not peephole's (it has "
		    "tables and no peephole schema version); refusing to add "
		    "to it",
		    path);
		return -1;
	}
	if (version > STORE_SCHEMA_VERSION) {
		snprintf(err, errlen,
		    "%s: database schema version %d is newer than this "
		    "peephole "
		    "understands (%d); refusing to touch it",
		    path, version, STORE_SCHEMA_VERSION);
		return -1;
	}
	return 0;
}

struct store *
store_open(const char *path, struct store_limits lim, char *err, size_t errlen)
{
	struct store *st;
	int64_t first;

	if ((st = store_new(lim)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	/* NOMUTEX: one thread at a time uses the connection (main thread
	 * until store_start, then the writer), so SQLite's own per-call
	 * mutexes only cost the writer a lock/unlock per API call. */
	if (sqlite3_open_v2(path, &st->db,
		SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
		    SQLITE_OPEN_NOMUTEX,
		NULL) != SQLITE_OK) {
		snprintf(err, errlen, "cannot open database %s: %s", path,
		    st->db != NULL ? sqlite3_errmsg(st->db) : "out of memory");
		goto fail;
	}
	sqlite3_busy_timeout(st->db, STORE_BUSY_TIMEOUT_MS);
	if (store_check_version(st->db, path, err, errlen) == -1)
		goto fail;
	if (store_set_wal(st->db, err, errlen) == -1 ||
	    sqlite3_exec(st->db, "PRAGMA synchronous = NORMAL", NULL, NULL,
		NULL) != SQLITE_OK ||
	    schema_migrate(st->db, err, errlen) == -1 ||
	    store_prepare(st, err, errlen) == -1)
		goto fail;
	/* a block to hand out and a spare, so the writer has a whole block's
	 * worth of connections to reserve the next one */
	if (store_reserve_ids(st, 2 * STORE_ID_BLOCK, &first) == -1) {
		snprintf(err, errlen, "%s: cannot reserve connection ids: %s",
		    path, sqlite3_errmsg(st->db));
		goto fail;
	}
	st->id_next = first;
	st->id_end = st->spare_first = first + STORE_ID_BLOCK;
	st->spare_end = first + 2 * STORE_ID_BLOCK;
	return st;
fail:
	store_free(st);
	return NULL;
}

struct store *
store_open_discard(struct store_limits lim)
{
	struct store *st;

	if ((st = store_new(lim)) == NULL)
		return NULL;
	st->id_next = 1; /* nothing is written: one block without end */
	st->id_end = INT64_MAX;
	return st;
}

int
store_start(struct store *st)
{
	int rc;

	if ((rc = pthread_create(&st->thread, NULL, store_writer, st)) != 0) {
		log_warnx(
		    "store: cannot start writer thread: %s", strerror(rc));
		return -1;
	}
	st->started = 1;
	return 0;
}

int64_t
store_next_conn_id(struct store *st)
{
	struct timespec dl;
	int64_t id = -1;
	int want = 0, timed = 0;

	pthread_mutex_lock(&st->id_mtx);
	while (st->id_next >= st->id_end) {
		if (st->spare_end > st->spare_first) {
			st->id_next = st->spare_first;
			st->id_end = st->spare_end;
			st->spare_first = st->spare_end = 0;
			want = 1;
			break;
		}
		if (!timed) {
			/* no spare: the writer is behind on reserving (the
			 * file's write lock is held elsewhere); wait a while.
			 * id_mtx before mtx is the lock order. */
			clock_gettime(CLOCK_REALTIME, &dl);
			dl.tv_sec += STORE_ID_WAIT_MS / 1000;
			dl.tv_nsec += (STORE_ID_WAIT_MS % 1000) * 1000000L;
			if (dl.tv_nsec >= 1000000000L) {
				dl.tv_sec++;
				dl.tv_nsec -= 1000000000L;
			}
			timed = 1;
			store_want_ids(st);
		}
		if (pthread_cond_timedwait(&st->id_cond, &st->id_mtx, &dl) ==
			ETIMEDOUT &&
		    st->spare_end <= st->spare_first)
			break;
	}
	if (st->id_next < st->id_end)
		id = st->id_next++;
	pthread_mutex_unlock(&st->id_mtx);
	if (want)
		store_want_ids(st);
	if (id == -1)
		log_warnx("store: no connection id free after %d ms (the "
			  "database is locked by another process)",
		    STORE_ID_WAIT_MS);
	return id;
}

int
store_submit(struct store *st, struct store_rec *rec)
{
	int past;

	if (rec == NULL)
		return 0;
	rec->next = NULL;
	rec->bytes = store_rec_bytes(rec);
	pthread_mutex_lock(&st->mtx);
	if (st->tail != NULL)
		st->tail->next = rec;
	else {
		st->head = rec;
		pthread_cond_signal(&st->cond);
	}
	st->tail = rec;
	st->count++;
	st->bytes += rec->bytes;
	past = st->count > st->queue_max || st->bytes > st->queue_bytes_max;
	if (past)
		st->backlogged = 1;
	pthread_mutex_unlock(&st->mtx);
	return past;
}

/* The writer's counters, read together under the lock. */
struct store_counts {
	uint64_t written, failed;
	size_t queued, queued_bytes;
	int backlogged;
};

static void
store_counts(struct store *st, struct store_counts *c)
{
	pthread_mutex_lock(&st->mtx);
	c->written = st->written;
	c->failed = st->failed;
	c->queued = st->count;
	c->queued_bytes = st->bytes;
	c->backlogged = st->backlogged;
	pthread_mutex_unlock(&st->mtx);
}

int
store_backlogged(struct store *st)
{
	struct store_counts c;

	store_counts(st, &c);
	return c.backlogged;
}

void
store_watch_drain(struct store *st, struct event *ev)
{
	struct event **w;

	pthread_mutex_lock(&st->mtx);
	w = realloc(st->watch, (st->nwatch + 1) * sizeof(*w));
	if (w == NULL)
		fatalx("store: out of memory");
	st->watch = w;
	st->watch[st->nwatch++] = ev;
	pthread_mutex_unlock(&st->mtx);
}

int
store_load_learned(struct store *st,
    void (*cb)(const struct store_learned_row *row, void *arg), void *arg)
{
	sqlite3_stmt *s = NULL;
	struct store_learned_row row;
	int rc;

	if (st->db == NULL)
		return 0;
	if (sqlite3_prepare_v2(st->db,
		"SELECT host, port, rejections, coalesce(next_retry_us, 0)"
		" FROM learned_passthrough ORDER BY host, port",
		-1, &s, NULL) != SQLITE_OK)
		goto fail;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		row.host = (const char *)sqlite3_column_text(s, 0);
		row.port = sqlite3_column_int(s, 1);
		row.rejections = sqlite3_column_int(s, 2);
		row.next_retry_us = sqlite3_column_int64(s, 3);
		if (row.host != NULL)
			cb(&row, arg);
	}
	if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(s);
	return 0;
fail:
	log_warnx("store: cannot read learned passthrough list: %s",
	    sqlite3_errmsg(st->db));
	sqlite3_finalize(s);
	return -1;
}

void
store_watch_learned(
    struct store *st, void (*cb)(struct store *st, void *arg), void *arg)
{
	st->learned_cb = cb;
	st->learned_arg = arg;
	if (st->db != NULL)
		(void)store_data_version(st, &st->data_version);
}

void
store_set_deriver(struct store *st,
    struct store_rec *(*derive)(const struct store_request *r))
{
	st->derive = derive;
}

void
store_set_printer(struct store *st,
    void (*cb)(const struct store_rec *rec, void *arg), void *arg)
{
	st->printer = cb;
	st->printer_arg = arg;
}

void
store_close(struct store *st)
{
	if (st == NULL)
		return;
	pthread_mutex_lock(&st->mtx);
	st->stopping = 1;
	pthread_cond_signal(&st->cond);
	pthread_mutex_unlock(&st->mtx);
	if (st->started)
		pthread_join(st->thread, NULL);
	/* Records submitted without a writer, or after it left. */
	pthread_mutex_lock(&st->mtx);
	store_drain(st, 0);
	pthread_mutex_unlock(&st->mtx);
	if (st->failed > 0)
		log_warnx("store: %llu records could not be written",
		    (unsigned long long)st->failed);
	store_free(st);
}

uint64_t
store_written(struct store *st)
{
	struct store_counts c;

	store_counts(st, &c);
	return c.written;
}

uint64_t
store_failed(struct store *st)
{
	struct store_counts c;

	store_counts(st, &c);
	return c.failed;
}

size_t
store_queued(struct store *st)
{
	struct store_counts c;

	store_counts(st, &c);
	return c.queued;
}

size_t
store_queued_bytes(struct store *st)
{
	struct store_counts c;

	store_counts(st, &c);
	return c.queued_bytes;
}
