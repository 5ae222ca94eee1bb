/*
 * record: the rows a connection and its exchanges leave (see record.h).
 */
#include "proxy/net/record.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/util.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf/config.h"
#include "proxy/http/head.h"
#include "proxy/http/onboard.h"
#include "proxy/http/respond.h"
#include "proxy/http/url.h"
#include "filters/newdns.h"
#include "proxy/log.h"
#include "proxy/net/conn_int.h"
#include "proxy/net/dial.h"
#include "proxy/net/exchange.h"
#include "proxy/net/h1.h"
#include "proxy/net/intercept.h"
#include "proxy/net/offline.h"
#include "proxy/net/relay.h"
#include "proxy/net/resolve.h"
#include "proxy/net/selfpage.h"
#include "proxy/net/server.h"
#include "proxy/net/stream.h"
#include "proxy/net/upstream.h"
#include "proxy/net/worker.h"
#include "proxy/store/store.h"

/*
 * The answer fields of our own answer's head (head bytes at buf, blank
 * line included): the reason after the status code, the fields after the
 * status line, as logged for any answer, and the content type.
 */
static void
record_own_head(struct store_request *r, char *buf, size_t head)
{
	const char *sp, *type;
	char *lf;
	size_t tlen, line;

	buf[head - 2] = '\0';
	r->resp_header_bytes = head;
	/* "HTTP/1.1 502 Bad Gateway"; the reason may be absent */
	line = strcspn(buf, "\r\n");
	sp = memchr(buf, ' ', line);
	if (sp != NULL && r->status == 0)
		r->status = atoi(sp + 1);
	sp = sp != NULL ? memchr(sp + 1, ' ', line - (size_t)(sp + 1 - buf))
			: NULL;
	if (sp != NULL && r->resp_reason == NULL)
		r->resp_reason = strndup(sp + 1, line - (size_t)(sp + 1 - buf));
	if ((lf = strchr(buf, '\n')) != NULL && lf[1] != '\0' &&
	    r->resp_headers == NULL)
		r->resp_headers = strdup(lf + 1);
	if (r->content_type == NULL &&
	    (type = head_text_find(r->resp_headers, "content-type", &tlen)) !=
		NULL)
		r->content_type = conn_strndup(type, tlen);
}

/*
 * Record an answer peephole wrote itself (the n bytes at before in out)
 * as it records an origin's: head fields, content type and body.
 */
void
record_own_answer(struct conn *c, struct evbuffer *out, size_t before, size_t n)
{
	struct store_request *r = &c->ex.rec->u.req;
	struct evbuffer_ptr at, end;
	char buf[2048];
	size_t head, got, off;
	struct evbuffer_iovec v[16];
	int nv;

	free(r->resp_version);
	r->resp_version = strdup("1.1");
	r->resp_header_bytes = n;
	if (evbuffer_ptr_set(out, &at, before, EVBUFFER_PTR_SET) == -1)
		return;
	end = evbuffer_search(out, "\r\n\r\n", 4, &at);
	if (end.pos < 0 || (size_t)end.pos + 4 > before + n)
		return;
	head = (size_t)end.pos + 4 - before;
	if (head < 4 || head >= sizeof(buf))
		return;
	/*
	 * Peeked, not copied out: evbuffer_copyout_from refuses a buffer
	 * whose front is frozen, as the client's output can be. The head is
	 * copied to parse it; the body is captured span by span.
	 */
	got = off = 0;
	nv = evbuffer_peek(out, (ev_ssize_t)n, &at, v, 16);
	for (int i = 0; i < nv && i < 16 && off < n; i++) {
		size_t take = v[i].iov_len < n - off ? v[i].iov_len : n - off;
		const char *p = v[i].iov_base;
		if (off < head) {
			size_t h = take < head - off ? take : head - off;
			memcpy(buf + off, p, h);
			got += h;
			if (h < take)
				exchange_capture_resp(c, p + h, take - h);
		} else
			exchange_capture_resp(c, p, take);
		off += take;
	}
	if (got == head)
		record_own_head(r, buf, head);
}

/*
 * This client was told host -> each address (by the proxy's own lookup,
 * cached or not): the evidence that names its later connections to a bare
 * address (stream_names). The domain_ips fact itself is resolve.c's.
 */
void
record_sightings(struct conn *c, const struct resolve_result *res)
{
	char ip[INET6_ADDRSTRLEN];
	struct store_rec *rec;
	int64_t t = now_us();

	if (c->w->store == NULL || !c->w->cfg->record_flows)
		return;
	for (int i = 0; i < res->naddrs; i++) {
		if (resolve_addr_text(&res->addrs[i], ip, sizeof(ip)) == -1 ||
		    (rec = store_rec_new(STORE_REC_DOMAIN_IP)) == NULL)
			continue;
		rec->u.dip.domain = strdup(c->ex.url.host);
		rec->u.dip.ip = strdup(ip);
		rec->u.dip.source = strdup("proxy-dns");
		rec->u.dip.client_ip = strdup(c->client_ip);
		rec->u.dip.t_us = t;
		rec->u.dip.sighting_only = 1;
		/* small; the exchange's own record carries the back-pressure */
		(void)store_submit(c->w->store, rec);
	}
}

void
record_upstream_timings(struct conn *c)
{
	struct store_request *r;

	if (c->ex.rec == NULL || c->up == NULL)
		return;
	r = &c->ex.rec->u.req;
	if (c->up->uses == 0) {
		/* opened for this exchange, or for this client before its
		 * first request (an intercepted tunnel's origin leg): its
		 * opening times are this exchange's */
		r->dns_us = c->up->dns_us;
		r->connect_us = c->up->connect_us;
		r->tls_us = c->up->tls_us;
		return;
	}
	r->upstream_reused = 1;
	r->dns_us = 0;
	r->connect_us = 0;
	if (c->up->tls)
		r->tls_us = 0;
}

void
record_request_head(struct conn *c)
{
	struct store_request *r = &c->ex.rec->u.req;
	char ver[16];

	r->method = strdup(llhttp_method_name(c->h1.reqp.method));
	h1_version(ver, sizeof(ver), &c->h1.reqp);
	r->req_version = strdup(ver);
	r->req_headers = head_fields_text(&c->h1.reqh);
}

void
record_request_target(struct conn *c)
{
	struct store_request *r = &c->ex.rec->u.req;
	const struct url *u = &c->ex.url;

	if (r->host == NULL)
		r->host = conn_strdup(u->host[0] ? u->host : NULL);
	r->port = (int)u->port;
	r->path = conn_strdup(u->path);
	r->query = conn_strdup(u->query);
	if (c->inner == CONN_INNER_HTTPS)
		r->scheme = (free(r->scheme), strdup("https"));
	if (c->ex.is_connect)
		r->scheme = (free(r->scheme), strdup("connect"));
}

void
record_authority_name(char *a)
{
	char *e = a[0] == '[' ? strchr(a, ']') : strrchr(a, ':');

	if (a[0] == '[' && e != NULL) {
		*e = '\0';
		memmove(a, a + 1, strlen(a + 1) + 1);
	} else if (e != NULL)
		*e = '\0';
}

void
record_site_name(struct conn *c)
{
	int h = head_find(&c->h1.reqh, "host", 0);
	char *v;

	if (c->ex.rec == NULL)
		return;
	if (h != -1 && (v = head_value_dup(&c->h1.reqh, h)) != NULL) {
		record_authority_name(v);
		for (char *q = v; *q; q++)
			*q = (char)tolower((unsigned char)*q);
		if (v[0] != '\0') {
			c->ex.rec->u.req.host = v;
			return;
		}
		free(v);
	}
	/* no Host, or one that names nothing: the name the client gave TLS */
	if (c->tls.sni[0])
		c->ex.rec->u.req.host = strdup(c->tls.sni);
}

void
record_response_head(struct conn *c)
{
	struct store_request *r = &c->ex.rec->u.req;
	const char *reason;
	size_t rlen;
	char ver[16];
	int ct;

	r->status = c->h1.respp.status_code;
	h1_version(ver, sizeof(ver), &c->h1.respp);
	free(r->resp_version);
	r->resp_version = strdup(ver);
	reason = head_target(&c->h1.resph, &rlen);
	free(r->resp_reason);
	r->resp_reason = reason != NULL ? conn_strndup(reason, rlen) : NULL;
	free(r->resp_headers);
	r->resp_headers = head_fields_text(&c->h1.resph);
	ct = head_find(&c->h1.resph, "content-type", 0);
	if (ct != -1 && r->content_type == NULL)
		r->content_type = head_value_dup(&c->h1.resph, ct);
}

/* A copy of s if it is not empty, else NULL. */
static char *
record_text(const char *s)
{
	return s != NULL && s[0] != '\0' ? strdup(s) : NULL;
}

/* The TLS and interception facts of the connections row. */
static void
record_conn_tls(const struct conn *c, struct store_conn *sc)
{
	sc->sni = record_text(c->tls.sni);
	sc->alpn = record_text(c->tls.alpn);
	sc->alpn_client = record_text(c->tls.alpn_client);
	sc->alpn_server = record_text(c->tls.alpn_server);
	sc->decision = conn_strdup(c->tls.decision);
	sc->decision_reason = conn_strdup(c->tls.decision_reason);
	sc->tls_client = record_text(c->tls.tls_client);
	sc->tls_server = record_text(c->tls.tls_server);
	sc->upstream_cert_sha256 = record_text(c->tls.cert_sha);
	sc->upstream_cert_subject = record_text(c->tls.cert_subject);
	sc->upstream_cert_issuer = record_text(c->tls.cert_issuer);
	sc->verify_error = conn_strdup(c->tls.verify_error);
	if (c->tls.tunnel_host != NULL) {
		char t[300];
		snprintf(t, sizeof(t),
		    strchr(c->tls.tunnel_host, ':') ? "[%s]:%u" : "%s:%u",
		    c->tls.tunnel_host, c->tls.tunnel_port);
		sc->listener_target = strdup(t);
	}
}

struct store_rec *
record_conn_row(struct conn *c, const char *reason, const char *err)
{
	struct store_rec *rec = store_rec_new(STORE_REC_CONN);
	struct store_conn *sc;

	if (rec == NULL)
		return NULL;
	sc = &rec->u.conn;
	sc->id = c->id;
	sc->listener = strdup(c->mode == CONFIG_LISTEN_SOCKS5 ? "socks5"
		: c->mode == CONFIG_LISTEN_TRANSPARENT        ? "transparent"
		: c->mode == CONFIG_LISTEN_REVERSE            ? "reverse"
							      : "http");
	sc->client_ip = strdup(c->client_ip);
	sc->client_port = c->client_port;
	sc->target_host = conn_strdup(c->tot.target_host);
	sc->target_port = c->tot.target_port;
	sc->server_ip = record_text(c->tot.server_ip);
	sc->server_port = c->tot.server_port;
	sc->protocol = strdup(c->tot.protocol);
	sc->t_accept_us = c->tot.t_accept_us;
	sc->t_first_byte_us = c->tot.t_first_byte_us;
	sc->t_close_us = now_us();
	sc->bytes_from_client = c->tot.bytes_from_client;
	sc->bytes_to_client = c->tot.bytes_to_client;
	sc->bytes_to_server = c->tot.bytes_to_server;
	sc->bytes_from_server = c->tot.bytes_from_server;
	sc->nrequests = c->tot.nrequests;
	sc->close_reason = strdup(reason);
	sc->error = conn_strdup(err);
	record_conn_tls(c, sc);
	stream_finish(c, sc, bufferevent_getfd(c->craw ? c->craw : c->cbev),
	    c->up ? bufferevent_getfd(c->up->bev) : -1);
	/* a stream relayed unread gets its line (flowline picks) */
	rec->print = !c->w->cfg->quiet;
	return rec;
}

/* 1 if logged fields h have a Content-Encoding naming deflate. */
static int
record_deflated(const char *h)
{
	size_t vl;
	const char *v = head_text_find(h, "content-encoding", &vl);

	for (size_t i = 0; v != NULL && i + 7 <= vl; i++)
		if (strncasecmp(v + i, "deflate", 7) == 0)
			return 1;
	return 0;
}

/* One app-dns fact: the app was told domain -> ip, valid ttl seconds;
 * pushed on *list. */
static void
record_app_dns_answer(struct store_rec **list, const struct store_request *r,
    const struct newdns_answer *a, int64_t t)
{
	struct store_rec *rec = store_rec_new(STORE_REC_DOMAIN_IP);

	if (rec == NULL)
		return;
	rec->u.dip.domain = strdup(a->domain);
	rec->u.dip.ip = strdup(a->ip);
	rec->u.dip.source = strdup("app-dns");
	rec->u.dip.client_ip = conn_strdup(r->client_ip);
	rec->u.dip.t_us = t;
	rec->u.dip.ttl = a->ttl;
	rec->next = *list;
	*list = rec;
}

struct store_rec *
record_derive(const struct store_request *r)
{
	struct newdns_result res = {0};
	struct store_rec *list = NULL;
	char err[128] = "";
	const struct store_body *b = &r->resp_body;
	int64_t t = r->t_start_us + (r->total_us > 0 ? r->total_us : 0);

	if (r->method == NULL || r->path == NULL ||
	    !newdns_is_request(r->method, r->path) || r->status != 200 ||
	    b->data == NULL || b->len == 0 || b->truncated || b->total > b->len)
		return NULL;
	if (newdns_parse(b->data, b->len, record_deflated(r->resp_headers),
		NEWDNS_MAX_OUT, NEWDNS_MAX_ANSWERS, &res, err,
		sizeof(err)) == -1) {
		log_warnx("c%lld newdns: unreadable answer from %s: %s",
		    (long long)r->conn_id, r->host != NULL ? r->host : "-",
		    err);
		return NULL;
	}
	/* pushed in reverse, so the list keeps the document's order */
	for (size_t i = res.n; i > 0; i--)
		record_app_dns_answer(&list, r, &res.answers[i - 1], t);
	log_info("c%lld newdns: %zu answers, clientip=%s",
	    (long long)r->conn_id, res.n,
	    res.clientip[0] != '\0' ? res.clientip : "-");
	newdns_result_free(&res);
	return list;
}

/*
 * A line for `peephole run`'s output, printed by the writer in order with
 * the flow lines (flowline formats it: "c12 <time> <client> <what>
 * host:port ..."). Nothing when quiet or not recording. Worker thread.
 */
void
record_note(struct conn *c, const char *fmt, ...)
{
	struct store_rec *rec;
	char line[600];
	va_list ap;

	if (c->w->store == NULL || c->w->cfg->quiet)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if ((rec = store_rec_new(STORE_REC_NOTE)) == NULL)
		return;
	rec->print = 1;
	rec->u.note.conn_id = c->id;
	rec->u.note.t_us = now_us();
	if ((rec->u.note.client_ip = strdup(c->client_ip)) == NULL ||
	    (rec->u.note.text = strdup(line)) == NULL) {
		store_rec_free(rec);
		return;
	}
	(void)store_submit(c->w->store, rec);
}

/* A learned passthrough entry for (name, port): the n-th rejection at t,
 * next try at next_us. */
void
record_learned(struct conn *c, const char *name, int port, const char *why,
    int64_t t, int n, int64_t next_us)
{
	struct store_rec *rec;

	if (c->w->store == NULL ||
	    (rec = store_rec_new(STORE_REC_LEARNED_PASSTHROUGH)) == NULL)
		return;
	rec->u.learned.host = strdup(name);
	rec->u.learned.port = port;
	rec->u.learned.reason = strdup(why);
	rec->u.learned.t_us = t;
	rec->u.learned.rejections = n;
	rec->u.learned.next_retry_us = next_us;
	(void)store_submit(c->w->store, rec);
}

/* (name, port) leaves the learned list. */
void
record_learned_forget(struct conn *c, const char *name, int port)
{
	struct store_rec *rec;

	if (c->w->store == NULL ||
	    (rec = store_rec_new(STORE_REC_LEARNED_FORGET)) == NULL)
		return;
	rec->u.learned.host = strdup(name);
	rec->u.learned.port = port;
	(void)store_submit(c->w->store, rec);
}
