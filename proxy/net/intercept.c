/*
 * intercept: see intercept.h.
 *
 * After CONNECT the client is told 200 at once and the origin is reached
 * only once the first bytes say what the tunnel carries:
 *
 *   SNIFF -> tls + intercept -> CONNECT (TCP + TLS, verify) -> TLS_DOWN
 *                               (forged certificate) -> READ_HEAD (https)
 *         -> tls + passthrough, or not TLS -> CONNECT -> TUNNEL
 *         -> http -> READ_HEAD (plain HTTP inside the tunnel)
 *
 * An origin that fails (refused, bad certificate, TLS error) is not hidden:
 * the client still gets a TLS session, under a certificate forged without
 * the origin's, and every request on it is answered 502 with the reason.
 * A client that rejects the forged certificate (pinning) is remembered, and
 * later tunnels to that host:port are relayed untouched.
 */
#include "net/intercept.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca/forge.h"
#include "conf/config.h"
#include "filters/rules.h"
#include "filters/sniff.h"
#include "log.h"
#include "net/conn_int.h"
#include "net/learned.h"
#include "net/server.h"
#include "net/socks.h"
#include "net/tls.h"
#include "net/upstream.h"
#include "net/worker.h"
#include "store/store.h"

/* RFC 1928 REP: connection not allowed by ruleset */
#define INTERCEPT_SOCKS_NOT_ALLOWED 0x02

/* A ClientHello larger than this is not waited for: relay untouched. */
#define INTERCEPT_SNIFF_MAX 16384

const char *
intercept_name(const struct conn *c)
{
	return c->sni[0] ? c->sni : c->tunnel_host;
}

static void
intercept_decide(struct conn *c, const char *decision, const char *reason)
{
	c->decision = decision;
	free(c->decision_reason);
	c->decision_reason = conn_strdup(reason);
	log_debug("c%lld %s %s:%u: %s", (long long)c->id, decision,
	    intercept_name(c), c->tunnel_port, reason);
}

/* Relay the tunnel untouched: connect to the CONNECT target, then bytes. */
static void
intercept_passthrough(struct conn *c, const char *reason)
{
	intercept_decide(c, "passthrough", reason);
	c->inner = CONN_INNER_NONE;
	c->tunnel_raw = 1;
	c->is_connect = 1;
	if (c->late_sniff && c->up != NULL) {
		/* already connected while the bytes were awaited */
		c->late_sniff = 0;
		conn_start_tunnel(c);
		return;
	}
	conn_upstream_go(c);
}

void
intercept_client_eof(struct conn *c)
{
	c->protocol = c->sniffed != NULL ? c->sniffed : "other";
	intercept_passthrough(c,
	    "client closed before its first bytes "
	    "decided anything");
}

void
intercept_server_first(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->up->bev);
	size_t n = evbuffer_get_length(in);
	unsigned char *p = evbuffer_pullup(in, (ev_ssize_t)(n < 64 ? n : 64));

	/* a banner can still say what it is (SSH greets from both sides) */
	c->protocol = "other";
	if (p != NULL && n >= 4 && memcmp(p, "SSH-", 4) == 0)
		c->protocol = "ssh";
	intercept_passthrough(c,
	    "server speaks first (nothing from the "
	    "client within sniff-timeout)");
}

void
intercept_tunnel(
    struct conn *c, const char *host, unsigned port, enum intercept_via via)
{
	const struct config *cfg = c->w->cfg;
	struct evbuffer *out = bufferevent_get_output(c->cbev);
	const char *matched = NULL;
	char why[300];
	int n;

	free(c->tunnel_host);
	c->tunnel_host = strdup(host);
	c->tunnel_port = port;
	if (c->tunnel_host == NULL) {
		conn_close(c, "error", "out of memory");
		return;
	}
	if (c->target_host == NULL) {
		c->target_host = strdup(host);
		c->target_port = (int)port;
	}
	/* the URL the HTTP code and the upstream connect use */
	snprintf(c->url.host, sizeof(c->url.host), "%s", host);
	c->url.port = port;
	c->url.form = URL_FORM_AUTHORITY;
	c->is_connect = 1;
	if (cfg->rules != NULL &&
	    rules_match(cfg->rules, host, port, &matched) == RULES_BLOCK) {
		snprintf(why, sizeof(why), "blocked by rule %s", matched);
		intercept_decide(c, "block", why);
		if (via == INTERCEPT_VIA_CONNECT)
			conn_fail(c, 403, why);
		else {
			if (via == INTERCEPT_VIA_SOCKS)
				(void)socks_reply(
				    c, INTERCEPT_SOCKS_NOT_ALLOWED);
			conn_drain(c, "blocked", why);
		}
		return;
	}
	/* the origin is reached once the first bytes say what to speak */
	if (via == INTERCEPT_VIA_CONNECT) {
		n = evbuffer_add_printf(
		    out, "HTTP/1.1 200 Connection established\r\n\r\n");
		if (n > 0)
			c->bytes_to_client += (uint64_t)n;
		if (c->rec != NULL) {
			c->rec->u.req.status = 200;
			c->rec->u.req.resp_version = strdup("1.1");
			c->rec->u.req.resp_header_bytes =
			    n > 0 ? (uint64_t)n : 0;
		}
		(void)conn_rec_submit(c);
	} else if (via == INTERCEPT_VIA_SOCKS && socks_reply(c, 0) == -1) {
		conn_close(c, "error", "out of memory");
		return;
	}
	c->tunnel_raw = 1;
	conn_enter(c, CONN_SNIFF);
	if (evbuffer_get_length(bufferevent_get_input(c->cbev)) > 0)
		intercept_sniff(c);
}

void
intercept_connect(struct conn *c)
{
	char host[256];

	snprintf(host, sizeof(host), "%s", c->url.host);
	intercept_tunnel(c, host, c->url.port, INTERCEPT_VIA_CONNECT);
}

/* 1 if the client's ALPN list lets us speak HTTP/1.1 to it. */
static int
intercept_alpn_ok(const struct sniff_hello *h)
{
	if (h->nalpn == 0)
		return 1;
	for (int i = 0; i < h->nalpn; i++)
		if (strcmp(h->alpn[i], "http/1.1") == 0)
			return 1;
	return 0;
}

static void intercept_tls_down(struct conn *c, X509 *peer);

/* Start intercepting: TLS to the origin first (its certificate is what
 * the forged one copies), then TLS with the client. */
static void
intercept_start(struct conn *c)
{
	intercept_decide(c, "intercept", "default");
	c->inner = CONN_INNER_HTTPS;
	c->tls_pending = 1;
	c->is_connect = 0;
	if (c->late_sniff) {
		/* the plain connection made while waiting cannot become TLS
		 * under libevent's bufferevents: connect afresh */
		c->late_sniff = 0;
		upstream_free(c->up);
		c->up = NULL;
	}
	if (c->w->srv->replay != NULL && !c->w->cfg->replay_forward_unmatched) {
		/* answering from a capture: no origin is asked, not even for
		 * its certificate; the forged one names the host alone */
		intercept_tls_down(c, NULL);
		return;
	}
	conn_upstream_go(c);
}

static void
intercept_tls_hello(struct conn *c, const unsigned char *p, size_t n)
{
	const struct config *cfg = c->w->cfg;
	struct sniff_hello h;
	const char *matched = NULL;
	char why[300];
	int r = sniff_client_hello(p, n, &h);

	if (r == 0 && n < INTERCEPT_SNIFF_MAX)
		return; /* wait for the rest of the hello */
	if (r != 1) {
		intercept_passthrough(c,
		    r == 0 ? "ClientHello too large" : "malformed ClientHello");
		return;
	}
	snprintf(c->sni, sizeof(c->sni), "%s", h.sni);
	c->alpn[0] = '\0';
	for (int i = 0; i < h.nalpn; i++) {
		size_t len = strlen(c->alpn);
		snprintf(c->alpn + len, sizeof(c->alpn) - len, "%s%s",
		    i ? "," : "", h.alpn[i]);
	}
	const char *name = intercept_name(c);
	enum rules_action act = cfg->rules == NULL
	    ? RULES_INTERCEPT
	    : rules_match(cfg->rules, name, c->tunnel_port, &matched);
	if (act == RULES_BLOCK) {
		snprintf(why, sizeof(why), "blocked by rule %s", matched);
		intercept_decide(c, "block", why);
		conn_close(c, "blocked", why);
		return;
	}
	if (act == RULES_PASSTHROUGH) {
		snprintf(why, sizeof(why), "rule %s", matched);
		intercept_passthrough(c, why);
		return;
	}
	if (cfg->auto_passthrough &&
	    learned_has(c->w->srv->learned, name, (int)c->tunnel_port)) {
		intercept_passthrough(c, "pinned (learned)");
		return;
	}
	if (!intercept_alpn_ok(&h)) {
		intercept_passthrough(c, "client offers only h2");
		return;
	}
	intercept_start(c);
	if (matched != NULL) {
		snprintf(why, sizeof(why), "rule %s", matched);
		intercept_decide(c, "intercept", why);
	}
}

void
intercept_sniff(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->cbev);
	size_t len = evbuffer_get_length(in);
	size_t n = len < INTERCEPT_SNIFF_MAX ? len : INTERCEPT_SNIFF_MAX;
	unsigned char *p;
	enum sniff_proto proto;

	if (n == 0)
		return;
	p = evbuffer_pullup(in, (ev_ssize_t)n);
	if (p == NULL) {
		conn_close(c, "error", "out of memory");
		return;
	}
	proto = sniff_detect(p, n);
	if (proto == SNIFF_NEED_MORE) {
		if (n < INTERCEPT_SNIFF_MAX)
			return;
		proto = SNIFF_OTHER;
	}
	c->protocol = c->sniffed = sniff_name(proto);
	switch (proto) {
	case SNIFF_TLS:
		intercept_tls_hello(c, p, n);
		break;
	case SNIFF_HTTP:
		/* plain HTTP inside the tunnel: parse and record it */
		intercept_decide(c, "intercept", "plain HTTP in the tunnel");
		c->inner = CONN_INNER_HTTP;
		c->tunnel_raw = 0;
		c->is_connect = 0;
		if (c->late_sniff) {
			/* the connection made while waiting serves the first
			 * request */
			c->late_sniff = 0;
			if (c->up != NULL)
				conn_keep_upstream(c);
		}
		conn_http_reset(c);
		conn_enter(c, CONN_READ_HEAD);
		conn_parse_request(c);
		break;
	default: {
		char why[64];
		snprintf(why, sizeof(why), "not TLS (%s)", sniff_name(proto));
		intercept_passthrough(c, why);
		break;
	}
	}
}

void
intercept_sniff_timeout(struct conn *c)
{
	size_t have = evbuffer_get_length(bufferevent_get_input(c->cbev));
	char why[128];

	if (c->late_sniff) {
		/* a whole idle-timeout with neither side speaking */
		conn_close(c, "idle-timeout", "no byte from either side");
		return;
	}
	if (have == 0) {
		/*
		 * Maybe the server speaks first (SMTP, SSH); maybe the client
		 * is only slow. Connect and let the first bytes decide, so a
		 * late ClientHello is intercepted, not waved through.
		 */
		c->late_sniff = 1;
		c->is_connect = 1;
		c->protocol = "other";
		conn_upstream_go(c);
		return;
	}
	if (c->sniffed == NULL) {
		c->protocol = "other";
		intercept_passthrough(
		    c, "first bytes undecided within sniff-timeout");
		return;
	}
	/* the bytes said what it is, but stopped before the end */
	c->protocol = c->sniffed;
	snprintf(why, sizeof(why), "incomplete %s within sniff-timeout",
	    strcmp(c->sniffed, "tls") == 0 ? "ClientHello" : c->sniffed);
	intercept_passthrough(c, why);
}

struct upstream *
intercept_upstream_new(struct conn *c, const char *host, unsigned port)
{
	struct tls *tls = c->w->srv->tls;
	struct upstream *u;
	SSL *ssl;

	if (c->inner != CONN_INNER_HTTPS)
		return upstream_new(c->w, host, port);
	/* SNI as the client sent it; an IP literal gets none */
	ssl = tls_up_new(
	    tls, c->sni[0] ? c->sni : NULL, c->sni[0] ? c->sni : host, port);
	if (ssl == NULL)
		return NULL;
	u = upstream_new_tls(c->w, host, port, ssl);
	if (u == NULL)
		SSL_free(ssl);
	return u;
}

/* The client finished (or failed) the handshake on the forged cert. */
static void
intercept_down_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	const struct config *cfg = c->w->cfg;
	char why[300];
	unsigned long e;

	if (what & BEV_EVENT_CONNECTED) {
		tls_describe(bufferevent_openssl_get_ssl(bev), c->tls_client,
		    sizeof(c->tls_client));
		c->tunnel_raw = 0;
		bufferevent_setcb(bev, conn_client_readcb, conn_client_writecb,
		    conn_client_eventcb, c);
		conn_http_reset(c);
		conn_enter(c, CONN_READ_HEAD);
		conn_parse_request(c);
		return;
	}
	/*
	 * An alert from the client during our handshake — or a close right
	 * after our flight — means it does not accept the forged
	 * certificate: a pinned app, or a CA not installed.
	 */
	e = bufferevent_get_openssl_error(bev);
	if (e != 0)
		snprintf(why, sizeof(why),
		    "client rejected the forged certificate: %s",
		    ERR_reason_error_string(e) ? ERR_reason_error_string(e)
					       : "TLS error");
	else
		snprintf(
		    why, sizeof(why), "client closed during the TLS handshake");
	while (bufferevent_get_openssl_error(bev) != 0)
		;
	ERR_clear_error();
	intercept_decide(c, "intercept", why);
	if (cfg->auto_passthrough) {
		const char *name = intercept_name(c);
		int port = (int)c->tunnel_port;
		if (learned_add(c->w->srv->learned, name, port) == 1) {
			struct store_rec *rec = NULL;
			log_info("c%lld %s:%d: client rejects our certificate; "
				 "passing it through from now on",
			    (long long)c->id, name, port);
			if (c->w->store != NULL)
				rec = store_rec_new(
				    STORE_REC_LEARNED_PASSTHROUGH);
			if (rec != NULL) {
				rec->u.learned.host = strdup(name);
				rec->u.learned.port = port;
				rec->u.learned.reason = strdup(why);
				rec->u.learned.t_us = now_us();
				(void)store_submit(c->w->store, rec);
			}
		}
	}
	conn_close(c, "client-rejected-cert", why);
}

/* TLS with the client under a certificate forged for the name, copying
 * peer (the origin's certificate) when there is one. */
static void
intercept_tls_down(struct conn *c, X509 *peer)
{
	struct tls *tls = c->w->srv->tls;
	char err[256];
	X509 *cert;
	SSL *ssl;
	struct bufferevent *f;

	c->tls_pending = 0;
	cert = forge_get(tls->forge, intercept_name(c), peer, err, sizeof(err));
	if (cert == NULL) {
		conn_close(c, "error", err);
		return;
	}
	ssl = tls_down_new(tls, cert);
	X509_free(cert);
	if (ssl == NULL) {
		conn_close(c, "error", "cannot set up client TLS");
		return;
	}
	f = bufferevent_openssl_filter_new(c->w->base, c->cbev, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (f == NULL) {
		SSL_free(ssl);
		conn_close(c, "error", "cannot set up client TLS");
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(f, 1);
	c->craw = c->cbev;
	c->cbev = f;
	bufferevent_setcb(f, NULL, NULL, intercept_down_eventcb, c);
	bufferevent_setwatermark(f, EV_READ, 0, c->w->cfg->relay_buffer_bytes);
	bufferevent_enable(f, EV_READ | EV_WRITE);
	conn_enter(c, CONN_TLS_DOWN);
	/* the ClientHello already sits in the socket's input buffer, and no
	 * new read would announce it: run the filter over it now */
	bufferevent_trigger(c->craw, EV_READ, BEV_TRIG_IGNORE_WATERMARKS);
}

int
intercept_up_ready(struct conn *c)
{
	struct tls *tls = c->w->srv->tls;
	SSL *ssl = bufferevent_openssl_get_ssl(c->up->bev);
	X509 *peer = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
	const char *verr = ssl ? tls_verify_error(tls, ssl) : "no TLS";
	char why[300];

	if (!c->tls_pending) {
		/* a later origin connection of an established tunnel */
		if (verr == NULL)
			return 0;
		snprintf(
		    why, sizeof(why), "origin certificate rejected: %s", verr);
		conn_fail(c, 502, why);
		return -1;
	}
	tls_describe(ssl, c->tls_server, sizeof(c->tls_server));
	tls_cert_info(peer, c->cert_sha, sizeof(c->cert_sha), c->cert_subject,
	    sizeof(c->cert_subject), c->cert_issuer, sizeof(c->cert_issuer));
	snprintf(c->server_ip, sizeof(c->server_ip), "%s", c->up->ip);
	c->server_port = c->up->ip_port;
	if (verr != NULL) {
		free(c->verify_error);
		c->verify_error = strdup(verr);
		/* nothing goes to an origin that failed verification */
		upstream_free(c->up);
		c->up = NULL;
		intercept_tls_down(c, NULL);
		return -1;
	}
	/* the first request of the tunnel will use this connection */
	conn_keep_upstream(c);
	intercept_tls_down(c, peer);
	return -1;
}

int
intercept_up_failed(struct conn *c, const char *why)
{
	if (c->tls_pending) {
		free(c->verify_error);
		c->verify_error = strdup(why);
		c->up_unreachable = 1;
		upstream_free(c->up);
		c->up = NULL;
		intercept_tls_down(c, NULL);
		return 1;
	}
	if (c->tunnel_raw) {
		/* a byte tunnel has no way to carry an error page */
		conn_close(c, "error", why);
		return 1;
	}
	return 0;
}
