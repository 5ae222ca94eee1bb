/*
 * record: the rows a connection and its exchanges leave (see record.h).
 */
#include "proxy/net/record.h"

#include <arpa/inet.h>
#include <ctype.h>
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
	size_t tlen;

	buf[head - 2] = '\0';
	r->resp_header_bytes = head;
	/* "HTTP/1.1 502 Bad Gateway" */
	sp = memchr(buf, ' ', head);
	sp = sp != NULL ? strchr(sp + 1, ' ') : NULL;
	if (sp != NULL && r->resp_reason == NULL)
		r->resp_reason = strndup(sp + 1, strcspn(sp + 1, "\r\n"));
	if ((lf = strchr(buf, '\n')) != NULL && r->resp_headers == NULL)
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
	struct store_request *r = &c->rec->u.req;
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
		rec->u.dip.domain = strdup(c->url.host);
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

	if (c->rec == NULL || c->up == NULL)
		return;
	r = &c->rec->u.req;
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
	struct store_request *r = &c->rec->u.req;
	char ver[16];

	r->method = strdup(llhttp_method_name(c->reqp.method));
	h1_version(ver, sizeof(ver), &c->reqp);
	r->req_version = strdup(ver);
	r->req_headers = head_fields_text(&c->reqh);
}

void
record_response_head(struct conn *c)
{
	struct store_request *r = &c->rec->u.req;
	const char *reason;
	size_t rlen;
	char ver[16];
	int ct;

	r->status = c->respp.status_code;
	h1_version(ver, sizeof(ver), &c->respp);
	free(r->resp_version);
	r->resp_version = strdup(ver);
	reason = head_target(&c->resph, &rlen);
	free(r->resp_reason);
	r->resp_reason = reason != NULL ? conn_strndup(reason, rlen) : NULL;
	free(r->resp_headers);
	r->resp_headers = head_fields_text(&c->resph);
	ct = head_find(&c->resph, "content-type", 0);
	if (ct != -1 && r->content_type == NULL)
		r->content_type = head_value_dup(&c->resph, ct);
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
	sc->sni = record_text(c->sni);
	sc->alpn = record_text(c->alpn);
	sc->decision = conn_strdup(c->decision);
	sc->decision_reason = conn_strdup(c->decision_reason);
	sc->tls_client = record_text(c->tls_client);
	sc->tls_server = record_text(c->tls_server);
	sc->upstream_cert_sha256 = record_text(c->cert_sha);
	sc->upstream_cert_subject = record_text(c->cert_subject);
	sc->upstream_cert_issuer = record_text(c->cert_issuer);
	sc->verify_error = conn_strdup(c->verify_error);
	if (c->tunnel_host != NULL) {
		char t[300];
		snprintf(t, sizeof(t),
		    strchr(c->tunnel_host, ':') ? "[%s]:%u" : "%s:%u",
		    c->tunnel_host, c->tunnel_port);
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
							      : "http");
	sc->client_ip = strdup(c->client_ip);
	sc->client_port = c->client_port;
	sc->target_host = conn_strdup(c->target_host);
	sc->target_port = c->target_port;
	sc->server_ip = record_text(c->server_ip);
	sc->server_port = c->server_port;
	sc->protocol = strdup(c->protocol);
	sc->t_accept_us = c->t_accept_us;
	sc->t_first_byte_us = c->t_first_byte_us;
	sc->t_close_us = now_us();
	sc->bytes_from_client = c->bytes_from_client;
	sc->bytes_to_client = c->bytes_to_client;
	sc->bytes_to_server = c->bytes_to_server;
	sc->bytes_from_server = c->bytes_from_server;
	sc->nrequests = c->nrequests;
	sc->close_reason = strdup(reason);
	sc->error = conn_strdup(err);
	record_conn_tls(c, sc);
	stream_finish(c, sc, bufferevent_getfd(c->craw ? c->craw : c->cbev),
	    c->up ? bufferevent_getfd(c->up->bev) : -1);
	/* a stream relayed unread gets its line (flowline picks) */
	rec->print = !c->w->cfg->quiet;
	return rec;
}
