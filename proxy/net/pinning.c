/*
 * pinning: what the client's handshake on a forged certificate says. The
 * TLS message callback notes the alerts each way, our Certificate going
 * out and the client's Finished coming in; when the handshake ends the
 * verdict tells a client refusing the certificate (pinning, or a CA not
 * trusted yet) from one that cannot speak our TLS or that simply closed.
 * A refusal puts the host:port on the learned list, a back-off doubling
 * from pinning-retry; a completed handshake takes it off. Worker thread.
 */
#include "proxy/net/pinning.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <stdio.h>

#include "conf/config.h"
#include "proxy/log.h"
#include "proxy/net/conn_int.h"
#include "proxy/net/intercept.h"
#include "proxy/net/learned.h"
#include "proxy/net/record.h"
#include "proxy/net/server.h"
#include "proxy/net/worker.h"

/* TLS alert descriptions (RFC 8446 6) the verdict looks at. */
#define ALERT_CLOSE_NOTIFY 0
#define ALERT_HANDSHAKE_FAILURE 40
#define ALERT_BAD_CERTIFICATE 42
#define ALERT_CERTIFICATE_UNKNOWN 46
#define ALERT_UNKNOWN_CA 48
#define ALERT_ACCESS_DENIED 49
#define ALERT_PROTOCOL_VERSION 70
#define ALERT_INSUFFICIENT_SECURITY 71
#define ALERT_USER_CANCELED 90

/* A wait for people: "45s", "12m", "3.5h". */
const char *
pinning_human(int64_t us, char *buf, size_t len)
{
	int64_t s = (us + 999999) / 1000000;

	if (s < 120)
		snprintf(buf, len, "%llds", (long long)s);
	else if (s < 2 * 3600)
		snprintf(buf, len, "%lldm", (long long)(s + 30) / 60);
	else
		snprintf(buf, len, "%.1fh", (double)s / 3600.0);
	return buf;
}

/*
 * OpenSSL's message callback on the client leg: note the alerts each way,
 * our Certificate going out and the client's Finished coming in (TLS 1.3
 * reports them decrypted), which is what tells a client refusing the
 * forged certificate from one that cannot speak our TLS or that simply
 * closes. Worker thread, inside SSL calls: only records.
 */
void
pinning_msgcb(int write_p, int version, int content_type, const void *buf,
    size_t len, SSL *ssl, void *arg)
{
	struct conn *c = arg;
	const unsigned char *p = buf;

	(void)version;
	(void)ssl;
	if (c == NULL || len < 1)
		return;
	if (content_type == SSL3_RT_ALERT && len >= 2) {
		if (write_p)
			c->tls.tls_alert_out = p[1];
		else if (c->tls.tls_alert_in == -1)
			c->tls.tls_alert_in = p[1];
	} else if (content_type == SSL3_RT_HANDSHAKE) {
		if (write_p && p[0] == SSL3_MT_CERTIFICATE)
			c->tls.tls_cert_sent = 1;
		else if (!write_p && p[0] == SSL3_MT_FINISHED)
			c->tls.tls_client_fin = 1;
	}
}

static const char *
pinning_alert_name(int a)
{
	switch (a) {
	case ALERT_CLOSE_NOTIFY:
		return "close_notify";
	case ALERT_HANDSHAKE_FAILURE:
		return "handshake_failure";
	case ALERT_BAD_CERTIFICATE:
		return "bad_certificate";
	case ALERT_CERTIFICATE_UNKNOWN:
		return "certificate_unknown";
	case ALERT_UNKNOWN_CA:
		return "unknown_ca";
	case ALERT_ACCESS_DENIED:
		return "access_denied";
	case ALERT_PROTOCOL_VERSION:
		return "protocol_version";
	case ALERT_INSUFFICIENT_SECURITY:
		return "insufficient_security";
	default:
		return SSL_alert_desc_string_long(a);
	}
}

/* An alert about TLS versions or ciphers, not about our certificate. */
static int
pinning_alert_unsupported(int a)
{
	return a == ALERT_HANDSHAKE_FAILURE || a == ALERT_PROTOCOL_VERSION ||
	    a == ALERT_INSUFFICIENT_SECURITY;
}

/* OpenSSL found nothing in common with the client's hello. */
static int
pinning_err_unsupported(unsigned long e)
{
	switch (ERR_GET_REASON(e)) {
	case SSL_R_NO_SHARED_CIPHER:
	case SSL_R_UNSUPPORTED_PROTOCOL:
	case SSL_R_VERSION_TOO_LOW:
	case SSL_R_NO_SHARED_SIGNATURE_ALGORITHMS:
	case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
		return 1;
	default:
		return 0;
	}
}

/*
 * Why the client's handshake ended without BEV_EVENT_CONNECTED, from what
 * the message callback saw and OpenSSL's error e; why is filled in.
 */
enum pinning_verdict
pinning_verdict(const struct conn *c, unsigned long e, char *why, size_t len)
{
	const char *es = e != 0 ? ERR_reason_error_string(e) : NULL;
	int in = c->tls.tls_alert_in, out = c->tls.tls_alert_out;

	if (c->tls.tls_client_fin) {
		snprintf(why, len, "client closed after the TLS handshake");
		return PINNING_V_COMPLETED;
	}
	if (in == ALERT_UNKNOWN_CA || in == ALERT_BAD_CERTIFICATE ||
	    in == ALERT_CERTIFICATE_UNKNOWN || in == ALERT_ACCESS_DENIED) {
		snprintf(why, len,
		    "client rejected the forged certificate: alert %s",
		    pinning_alert_name(in));
		return PINNING_V_REJECTED;
	}
	if (pinning_alert_unsupported(in) || pinning_alert_unsupported(out) ||
	    pinning_err_unsupported(e)) {
		snprintf(why, len, "no TLS version or cipher in common: %s",
		    in != -1         ? pinning_alert_name(in)
			: es != NULL ? es
				     : pinning_alert_name(out));
		return PINNING_V_UNSUPPORTED;
	}
	if (c->tls.tls_cert_sent && out == -1 &&
	    (in == -1 || in == ALERT_CLOSE_NOTIFY ||
		in == ALERT_USER_CANCELED)) {
		snprintf(why, len,
		    "client rejected the forged certificate: closed after "
		    "it, before its Finished");
		return PINNING_V_REJECTED;
	}
	if (in != -1)
		snprintf(why, len, "client TLS handshake failed: alert %s",
		    pinning_alert_name(in));
	else if (es != NULL)
		snprintf(why, len, "client TLS handshake failed: %s", es);
	else
		snprintf(why, len, "client closed during the TLS handshake");
	return PINNING_V_FAILED;
}

/* A handshake the client completed: if its pair was backing off, it is
 * not pinned after all (the CA is trusted now): forget it. */
void
pinning_accepted(struct conn *c)
{
	const char *name = intercept_name(c);
	int port = (int)c->tls.tunnel_port;

	if (!learned_forget(c->w->srv->learned, name, port))
		return;
	log_info("c%lld %s:%d: the client accepts our certificate now; "
		 "no longer passed through",
	    (long long)c->id, name, port);
	record_note(c,
	    "intercept %s:%d the client accepts our certificate now; no "
	    "longer passed through",
	    name, port);
	record_learned_forget(c, name, port);
}

/* The client refused the forged certificate: back off from this pair. */
void
pinning_rejected(struct conn *c, const char *why)
{
	const char *name = intercept_name(c);
	int port = (int)c->tls.tunnel_port;
	int64_t now = now_us(), next = 0;
	char hb[32];
	int n;

	n = learned_reject(c->w->srv->learned, name, port, now,
	    (int64_t)c->w->cfg->pinning_retry_ms * 1000, &next);
	if (n == -1) {
		log_warnx("c%lld out of memory learning %s:%d",
		    (long long)c->id, name, port);
		return;
	}
	pinning_human(next - now, hb, sizeof(hb));
	log_info("c%lld %s:%d: client rejects our certificate (%d in a row); "
		 "passing it through for %s",
	    (long long)c->id, name, port, n, hb);
	record_note(c,
	    "rejected %s:%d %s; passing it through for %s (rejection %d; "
	    "`peephole passthrough retry` to try again sooner)",
	    name, port, why, hb, n);
	record_learned(c, name, port, why, now, n, next);
}
