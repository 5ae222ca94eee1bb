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
 * A client that rejects the forged certificate (pinning, or a CA not
 * trusted yet) puts its host:port on the learned list, a back-off: later
 * tunnels to it are relayed untouched until pinning-retry has passed, then
 * intercepted again; each further rejection doubles the wait, and a
 * handshake the client completes takes the pair off the list (pinning.c
 * judges the handshake; the learned list is learned.c). Only a
 * refusal of the certificate counts: an alert unknown_ca, bad_certificate,
 * certificate_unknown or access_denied, or a close right after our
 * certificate, before the client's Finished. A client whose TLS versions
 * or ciphers we cannot speak is not pinning: a hello offering nothing
 * newer than TLS 1.1 is relayed untouched, a cipher mismatch found during
 * the handshake is recorded and closed, and nothing is learned.
 */
#include "proxy/net/intercept.h"

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
#include "proxy/log.h"
#include "proxy/net/conn_int.h"
#include "proxy/net/dial.h"
#include "proxy/net/exchange.h"
#include "proxy/net/h1.h"
#include "proxy/net/h2.h"
#include "proxy/net/record.h"
#include "proxy/net/relay.h"
#include "proxy/net/learned.h"
#include "proxy/net/pinning.h"
#include "proxy/net/server.h"
#include "proxy/net/socks.h"
#include "proxy/net/tls.h"
#include "proxy/net/upstream.h"
#include "proxy/net/worker.h"
#include "proxy/store/store.h"

/* RFC 1928 REP: connection not allowed by ruleset */
#define INTERCEPT_SOCKS_NOT_ALLOWED 0x02

/* A ClientHello larger than this is not waited for: relay untouched. */
#define INTERCEPT_SNIFF_MAX 16384

/* The decision reason of a client whose TLS we cannot speak. */
#define INTERCEPT_UNSUPPORTED "client-tls-unsupported"

const char *
intercept_name(const struct conn *c)
{
	return c->tls.sni[0] ? c->tls.sni : c->tls.tunnel_host;
}

static void
intercept_decide(struct conn *c, const char *decision, const char *reason)
{
	c->tls.decision = decision;
	free(c->tls.decision_reason);
	c->tls.decision_reason = conn_strdup(reason);
	log_debug("c%lld %s %s:%u: %s", (long long)c->id, decision,
	    intercept_name(c), c->tls.tunnel_port, reason);
}

/* Relay the tunnel untouched: connect to the CONNECT target, then bytes. */
static void
intercept_passthrough(struct conn *c, const char *reason)
{
	intercept_decide(c, "passthrough", reason);
	c->inner = CONN_INNER_NONE;
	c->tls.tunnel_raw = 1;
	c->ex.is_connect = 1;
	if (c->tls.late_sniff && c->up != NULL) {
		/* already connected while the bytes were awaited */
		c->tls.late_sniff = 0;
		conn_enter(c, CONN_TUNNEL);
		return;
	}
	dial_start(c);
}

void
intercept_client_eof(struct conn *c)
{
	if (evbuffer_get_length(bufferevent_get_input(c->cbev)) == 0) {
		conn_close(c, "client-eof", NULL);
		return;
	}
	/* it sent something and half-closed: relay what it sent */
	bufferevent_disable(c->cbev, EV_READ);
	c->tot.protocol = c->tls.sniffed != NULL ? c->tls.sniffed : "other";
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
	c->tot.protocol = "other";
	if (p != NULL && n >= 4 && memcmp(p, "SSH-", 4) == 0)
		c->tot.protocol = "ssh";
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

	free(c->tls.tunnel_host);
	c->tls.tunnel_host = strdup(host);
	c->tls.tunnel_port = port;
	if (c->tls.tunnel_host == NULL) {
		conn_close(c, "error", "out of memory");
		return;
	}
	if (c->tot.target_host == NULL) {
		c->tot.target_host = strdup(host);
		c->tot.target_port = (int)port;
	}
	/* the URL the HTTP code and the upstream connect use */
	snprintf(c->ex.url.host, sizeof(c->ex.url.host), "%s", host);
	c->ex.url.port = port;
	c->ex.url.form = URL_FORM_AUTHORITY;
	c->ex.is_connect = 1;
	if (cfg->rules != NULL &&
	    rules_match(cfg->rules, host, port, &matched) == RULES_BLOCK) {
		snprintf(why, sizeof(why), "blocked by rule %s", matched);
		intercept_decide(c, "block", why);
		if (via == INTERCEPT_VIA_CONNECT)
			exchange_fail(c, 403, why);
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
		size_t before = evbuffer_get_length(out);
		n = evbuffer_add_printf(
		    out, "HTTP/1.1 200 Connection established\r\n\r\n");
		if (n > 0) {
			c->tot.bytes_to_client += (uint64_t)n;
			if (c->ex.rec != NULL)
				record_own_answer(c, out, before, (size_t)n);
		}
		(void)exchange_submit(c);
	} else if (via == INTERCEPT_VIA_SOCKS && socks_reply(c, 0) == -1) {
		conn_close(c, "error", "out of memory");
		return;
	}
	c->tls.tunnel_raw = 1;
	conn_enter(c, CONN_SNIFF);
}

void
intercept_connect(struct conn *c)
{
	char host[256];

	snprintf(host, sizeof(host), "%s", c->ex.url.host);
	intercept_tunnel(c, host, c->ex.url.port, INTERCEPT_VIA_CONNECT);
}

/* 1 if the client's ALPN list lets us speak HTTP/1.1 (or h2, unless
 * http2 is off) to it. */
static int
intercept_alpn_ok(const struct sniff_hello *h, int http2)
{
	if (h->nalpn == 0)
		return 1;
	for (int i = 0; i < h->nalpn; i++)
		if (strcmp(h->alpn[i], "http/1.1") == 0 ||
		    (http2 && strcmp(h->alpn[i], "h2") == 0))
			return 1;
	return 0;
}

static void intercept_tls_down(struct conn *c, X509 *peer);

/* Start intercepting: TLS to the origin first (its certificate is what
 * the forged one copies), then TLS with the client. */
static void
intercept_start(struct conn *c, const char *why)
{
	intercept_decide(c, "intercept", why);
	c->inner = CONN_INNER_HTTPS;
	c->tls.tls_pending = 1;
	c->ex.is_connect = 0;
	if (c->tls.late_sniff) {
		/* the plain connection made while waiting cannot become TLS
		 * under libevent's bufferevents: connect afresh */
		c->tls.late_sniff = 0;
		upstream_free(c->up);
		c->up = NULL;
	}
	if (c->w->srv->replay != NULL && !c->w->cfg->replay_forward_unmatched) {
		/* answering from a capture: no origin is asked, not even for
		 * its certificate; the forged one names the host alone */
		intercept_tls_down(c, NULL);
		return;
	}
	dial_start(c);
}

/* The hello's SNI and ALPN list, kept for the record and the origin. */
static void
intercept_keep_hello(struct conn *c, const struct sniff_hello *h)
{
	snprintf(c->tls.sni, sizeof(c->tls.sni), "%s", h->sni);
	c->tls.alpn[0] = '\0';
	for (int i = 0; i < h->nalpn; i++) {
		size_t len = strlen(c->tls.alpn);
		snprintf(c->tls.alpn + len, sizeof(c->tls.alpn) - len, "%s%s",
		    i ? "," : "", h->alpn[i]);
	}
}

/* The rules on the hello's name: 1 if a block or passthrough rule took
 * the tunnel, else 0 with *matched the intercept rule that matched, if
 * any. */
static int
intercept_by_rule(struct conn *c, const char **matched)
{
	const struct config *cfg = c->w->cfg;
	enum rules_action act;
	char why[300];

	*matched = NULL;
	if (cfg->rules == NULL)
		return 0;
	act = rules_match(
	    cfg->rules, intercept_name(c), c->tls.tunnel_port, matched);
	if (act == RULES_BLOCK) {
		snprintf(why, sizeof(why), "blocked by rule %s", *matched);
		intercept_decide(c, "block", why);
		conn_close(c, "blocked", why);
		return 1;
	}
	if (act == RULES_PASSTHROUGH) {
		snprintf(why, sizeof(why), "rule %s", *matched);
		intercept_passthrough(c, why);
		return 1;
	}
	return 0;
}

/* A pair whose client lately rejected our certificate is relayed
 * untouched until its back-off ends. 1 if passed through. */
static int
intercept_pinned(struct conn *c)
{
	const char *name = intercept_name(c);
	int64_t left = 0;
	char hb[32];

	if (!c->w->cfg->auto_passthrough ||
	    !learned_backoff(c->w->srv->learned, name, (int)c->tls.tunnel_port,
		now_us(), &left))
		return 0;
	record_note(c,
	    "passthrough %s:%u pinned (learned): its client rejected "
	    "our certificate; intercepting again in %s",
	    name, c->tls.tunnel_port, pinning_human(left, hb, sizeof(hb)));
	intercept_passthrough(c, "pinned (learned)");
	return 1;
}

/* A hello offering TLS 1.0/1.1 at most: our side refuses it, the origin
 * may not, so relay it untouched. 1 if passed through. */
static int
intercept_legacy_tls(struct conn *c, const struct sniff_hello *h)
{
	if (h->legacy_version >= 0x0303 || h->has_supported_versions_13)
		return 0;
	record_note(c,
	    "passthrough %s:%u " INTERCEPT_UNSUPPORTED
	    ": the client offers TLS %s at most",
	    intercept_name(c), c->tls.tunnel_port,
	    h->legacy_version == 0x0302       ? "1.1"
		: h->legacy_version == 0x0301 ? "1.0"
					      : "< 1.0");
	intercept_passthrough(c, INTERCEPT_UNSUPPORTED);
	return 1;
}

/* A ClientHello (whole or in part) in p: intercept or pass through. */
static void
intercept_tls_hello(struct conn *c, const unsigned char *p, size_t n)
{
	struct sniff_hello h;
	const char *matched;
	char why[300];
	int r = sniff_client_hello(p, n, &h);

	if (r == 0 && n < INTERCEPT_SNIFF_MAX)
		return; /* wait for the rest of the hello */
	if (r != 1) {
		intercept_passthrough(c,
		    r == 0 ? "ClientHello too large" : "malformed ClientHello");
		return;
	}
	intercept_keep_hello(c, &h);
	if (intercept_by_rule(c, &matched) || intercept_pinned(c) ||
	    intercept_legacy_tls(c, &h))
		return;
	if (!intercept_alpn_ok(&h, c->w->cfg->http2)) {
		intercept_passthrough(c,
		    c->w->cfg->http2 ? "client offers neither h2 nor http/1.1"
				     : "client offers only h2 (http2 off)");
		return;
	}
	/* decided before the origin is dialled: that may end the
	 * connection, and its row says why it was intercepted */
	if (matched != NULL)
		snprintf(why, sizeof(why), "rule %s", matched);
	intercept_start(c, matched != NULL ? why : "default");
}

/* HTTP/2 with prior knowledge (h2c) in the tunnel: an h2 origin leg,
 * then both sessions (h2.c). */
static void
intercept_h2c(struct conn *c)
{
	intercept_decide(c, "intercept", "h2c (prior knowledge) in the tunnel");
	c->inner = CONN_INNER_HTTP;
	c->tls.tunnel_raw = 0;
	c->ex.is_connect = 0;
	c->tls.h2c_pending = 1;
	if (c->tls.late_sniff && c->up != NULL) {
		c->tls.late_sniff = 0;
		c->tls.h2c_pending = 0;
		h2_start(c);
		return;
	}
	c->tls.late_sniff = 0;
	dial_start(c);
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
	c->tot.protocol = c->tls.sniffed = sniff_name(proto);
	switch (proto) {
	case SNIFF_TLS:
		intercept_tls_hello(c, p, n);
		break;
	case SNIFF_HTTP:
		/* plain HTTP inside the tunnel: parse and record it */
		intercept_decide(c, "intercept", "plain HTTP in the tunnel");
		c->inner = CONN_INNER_HTTP;
		c->tls.tunnel_raw = 0;
		c->ex.is_connect = 0;
		if (c->tls.late_sniff) {
			/* the connection made while waiting serves the first
			 * request */
			c->tls.late_sniff = 0;
			if (c->up != NULL)
				dial_keep(c);
		}
		h1_reset(c);
		conn_enter(c, CONN_READ_HEAD);
		break;
	case SNIFF_H2:
		if (c->w->cfg->http2)
			intercept_h2c(c);
		else
			intercept_passthrough(c, "h2c (http2 off)");
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

	if (c->tls.late_sniff) {
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
		c->tls.late_sniff = 1;
		c->ex.is_connect = 1;
		c->tot.protocol = "other";
		dial_start(c);
		return;
	}
	if (c->tls.sniffed == NULL) {
		c->tot.protocol = "other";
		intercept_passthrough(
		    c, "first bytes undecided within sniff-timeout");
		return;
	}
	/* the bytes said what it is, but stopped before the end */
	c->tot.protocol = c->tls.sniffed;
	snprintf(why, sizeof(why), "incomplete %s within sniff-timeout",
	    strcmp(c->tls.sniffed, "tls") == 0 ? "ClientHello"
					       : c->tls.sniffed);
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
	/* the origin is offered what the client offered (h2_h1.c's legs
	 * are HTTP/1.1 alone) */
	ssl = tls_up_new(tls, c->tls.sni[0] ? c->tls.sni : NULL,
	    c->tls.sni[0] ? c->tls.sni : host, port,
	    c->w->cfg->http2 || c->tls.alpn[0] == '\0' ? c->tls.alpn
						       : "http/1.1");
	if (ssl == NULL)
		return NULL;
	u = upstream_new_tls(c->w, host, port, ssl);
	if (u == NULL)
		SSL_free(ssl);
	return u;
}

/* The protocol a finished handshake agreed on, into buf (16 bytes). */
static void
intercept_alpn_of(SSL *ssl, char *buf)
{
	const unsigned char *p = NULL;
	unsigned len = 0;

	SSL_get0_alpn_selected(ssl, &p, &len);
	if (len >= 16)
		len = 0;
	if (len > 0)
		memcpy(buf, p, len);
	buf[len] = '\0';
}

/* The client finished (or failed) the handshake on the forged cert. */
static void
intercept_down_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	const struct config *cfg = c->w->cfg;
	char why[300];
	unsigned long e, more;

	if (what & BEV_EVENT_CONNECTED) {
		SSL *ssl = bufferevent_openssl_get_ssl(bev);
		tls_describe(ssl, c->tls.tls_client, sizeof(c->tls.tls_client));
		intercept_alpn_of(ssl, c->tls.alpn_client);
		if (cfg->auto_passthrough)
			pinning_accepted(c);
		c->tls.tunnel_raw = 0;
		bufferevent_setcb(bev, conn_client_readcb, conn_client_writecb,
		    conn_client_eventcb, c);
		if (strcmp(c->tls.alpn_client, "h2") == 0) {
			h2_start(c);
			return;
		}
		h1_reset(c);
		conn_enter(c, CONN_READ_HEAD);
		return;
	}
	e = bufferevent_get_openssl_error(bev);
	while ((more = bufferevent_get_openssl_error(bev)) != 0)
		if (e == 0)
			e = more;
	switch (pinning_verdict(c, e, why, sizeof(why))) {
	case PINNING_V_COMPLETED:
		if (cfg->auto_passthrough)
			pinning_accepted(c);
		ERR_clear_error();
		log_debug("c%lld %s", (long long)c->id, why);
		conn_close(c, "client-eof", NULL);
		return;
	case PINNING_V_REJECTED:
		intercept_decide(c, "intercept", why);
		if (cfg->auto_passthrough)
			pinning_rejected(c, why);
		ERR_clear_error();
		conn_close(c, "client-rejected-cert", why);
		return;
	case PINNING_V_UNSUPPORTED:
		/* the hello is consumed: too late to pass it through */
		intercept_decide(c, "intercept", INTERCEPT_UNSUPPORTED);
		record_note(c, "closed %s:%u " INTERCEPT_UNSUPPORTED ": %s",
		    intercept_name(c), c->tls.tunnel_port, why);
		ERR_clear_error();
		conn_close(c, INTERCEPT_UNSUPPORTED, why);
		return;
	case PINNING_V_FAILED:
		intercept_decide(c, "intercept", why);
		ERR_clear_error();
		conn_close(c, "client-tls-failed", why);
		return;
	}
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

	c->tls.tls_pending = 0;
	cert = forge_get(tls->forge, intercept_name(c), peer, err, sizeof(err));
	if (cert == NULL) {
		conn_close(c, "error", err);
		return;
	}
	/* the client gets what the origin chose, if it offered that */
	ssl = tls_down_new(tls, cert,
	    strcmp(c->tls.alpn_server, "h2") == 0             ? "h2"
		: strcmp(c->tls.alpn_server, "http/1.1") == 0 ? "http/1.1"
							      : NULL);
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
	c->tls.tls_alert_in = c->tls.tls_alert_out = -1;
	c->tls.tls_cert_sent = c->tls.tls_client_fin = 0;
	SSL_set_msg_callback(ssl, pinning_msgcb);
	SSL_set_msg_callback_arg(ssl, c);
	c->craw = c->cbev;
	c->cbev = f;
	bufferevent_setcb(f, NULL, NULL, intercept_down_eventcb, c);
	bufferevent_setwatermark(f, EV_READ, 0, c->w->cfg->relay_buffer_bytes);
	bufferevent_enable(f, EV_READ | EV_WRITE);
	conn_enter(c, CONN_TLS_DOWN);
}

int
intercept_up_ready(struct conn *c)
{
	struct tls *tls = c->w->srv->tls;
	SSL *ssl = bufferevent_openssl_get_ssl(c->up->bev);
	X509 *peer;
	const char *verr;
	char why[300];

	/* a kept or pooled connection's verdict does not change */
	if (!c->tls.tls_pending && c->up->verified)
		return 0;
	peer = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
	verr = ssl ? tls_verify_error(tls, ssl) : "no TLS";
	c->up->verified = verr == NULL;
	if (!c->tls.tls_pending) {
		/* a later origin connection of an established tunnel */
		if (verr == NULL)
			return 0;
		snprintf(
		    why, sizeof(why), "origin certificate rejected: %s", verr);
		exchange_fail(c, 502, why);
		return -1;
	}
	tls_describe(ssl, c->tls.tls_server, sizeof(c->tls.tls_server));
	if (ssl != NULL)
		intercept_alpn_of(ssl, c->tls.alpn_server);
	tls_cert_info(peer, c->tls.cert_sha, sizeof(c->tls.cert_sha),
	    c->tls.cert_subject, sizeof(c->tls.cert_subject),
	    c->tls.cert_issuer, sizeof(c->tls.cert_issuer));
	snprintf(c->tot.server_ip, sizeof(c->tot.server_ip), "%s", c->up->ip);
	c->tot.server_port = c->up->ip_port;
	if (verr != NULL) {
		free(c->tls.verify_error);
		c->tls.verify_error = strdup(verr);
		/* nothing goes to an origin that failed verification */
		upstream_free(c->up);
		c->up = NULL;
		intercept_tls_down(c, NULL);
		return -1;
	}
	/* the first request of the tunnel will use this connection */
	dial_keep(c);
	intercept_tls_down(c, peer);
	return -1;
}

int
intercept_up_failed(struct conn *c, const char *why)
{
	if (c->tls.tls_pending) {
		free(c->tls.verify_error);
		c->tls.verify_error = strdup(why);
		c->tls.up_unreachable = 1;
		upstream_free(c->up);
		c->up = NULL;
		intercept_tls_down(c, NULL);
		return 1;
	}
	if (c->tls.tunnel_raw) {
		/* a byte tunnel has no way to carry an error page */
		conn_close(c, "error", why);
		return 1;
	}
	return 0;
}
