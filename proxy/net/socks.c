/* socks: see socks.h. */
#include "proxy/net/socks.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/config.h"
#include "proxy/log.h"
#include "proxy/net/conn_int.h"
#include "proxy/net/dial.h"
#include "proxy/net/exchange.h"
#include "proxy/net/h1.h"
#include "proxy/net/relay.h"
#include "proxy/net/intercept.h"
#include "proxy/net/worker.h"

enum socks_step {
	SOCKS_GREETING = 0, /* VER NMETHODS METHODS */
	SOCKS_AUTH,         /* RFC 1929 VER ULEN UNAME PLEN PASSWD */
	SOCKS_REQUEST       /* VER CMD RSV ATYP DST.ADDR DST.PORT */
};

#define SOCKS_REP_OK 0x00
#define SOCKS_REP_FAILURE 0x01
#define SOCKS_REP_CMD 0x07
#define SOCKS_REP_ATYP 0x08

/* Fail the handshake: optional reply bytes, then close. */
static void
socks_fail(struct conn *c, const char *why)
{
	log_info("c%lld %s socks5: %s", (long long)c->id, c->client_ip, why);
	conn_drain(c, "socks-error", why);
}

static int
socks_send(struct conn *c, const unsigned char *b, size_t n)
{
	if (bufferevent_write(c->cbev, b, n) == -1)
		return -1;
	c->bytes_to_client += n;
	return 0;
}

/* 1 if user:password (RFC 1929 fields) is a configured socks5-user. */
static int
socks_auth_ok(const struct config *cfg, const unsigned char *u, size_t ulen,
    const unsigned char *p, size_t plen)
{
	for (int i = 0; i < cfg->nsocks_users; i++) {
		const char *e = cfg->socks_users[i], *colon = strchr(e, ':');
		if (colon == NULL || (size_t)(colon - e) != ulen ||
		    strlen(colon + 1) != plen)
			continue;
		if (memcmp(e, u, ulen) == 0 && memcmp(colon + 1, p, plen) == 0)
			return 1;
	}
	return 0;
}

int
socks_reply(struct conn *c, int rep)
{
	/* BND.ADDR 0.0.0.0:0: the target is reached only once the first
	 * bytes are known, as after CONNECT */
	unsigned char r[10] = {5, (unsigned char)rep, 0, 1, 0, 0, 0, 0, 0, 0};

	return socks_send(c, r, sizeof(r));
}

/* Parse one step if its bytes are all there. 1 done, 0 need more, -1
 * failed (closed). */
static int
socks_step(struct conn *c, struct evbuffer *in)
{
	const struct config *cfg = c->w->cfg;
	size_t have = evbuffer_get_length(in), need;
	unsigned char *b, reply[2];

	switch (c->socks_step) {
	case SOCKS_GREETING: {
		if (have < 2)
			return 0;
		b = evbuffer_pullup(in, 2);
		if (b[0] != 5) {
			socks_fail(c, "not SOCKS version 5");
			return -1;
		}
		need = 2 + (size_t)b[1];
		if (have < need)
			return 0;
		b = evbuffer_pullup(in, (ev_ssize_t)need);
		int want = cfg->nsocks_users > 0 ? 2 : 0, ok = 0;
		for (size_t i = 2; i < need; i++)
			ok |= b[i] == want;
		evbuffer_drain(in, need);
		c->bytes_from_client += need;
		reply[0] = 5;
		reply[1] = ok ? (unsigned char)want : 0xff;
		if (socks_send(c, reply, 2) == -1 || !ok) {
			socks_fail(c,
			    want ? "client does not offer "
				   "user/password authentication"
				 : "client does not offer no-auth");
			return -1;
		}
		c->socks_step = want ? SOCKS_AUTH : SOCKS_REQUEST;
		return 1;
	}
	case SOCKS_AUTH: {
		if (have < 2)
			return 0;
		b = evbuffer_pullup(in, 2);
		size_t ulen = b[1];
		if (b[0] != 1) {
			socks_fail(c, "bad user/password version");
			return -1;
		}
		if (have < 3 + ulen)
			return 0;
		b = evbuffer_pullup(in, (ev_ssize_t)(3 + ulen));
		size_t plen = b[2 + ulen];
		need = 3 + ulen + plen;
		if (have < need)
			return 0;
		b = evbuffer_pullup(in, (ev_ssize_t)need);
		int ok = socks_auth_ok(cfg, b + 2, ulen, b + 3 + ulen, plen);
		evbuffer_drain(in, need);
		c->bytes_from_client += need;
		reply[0] = 1;
		reply[1] = ok ? 0 : 1;
		if (socks_send(c, reply, 2) == -1 || !ok) {
			socks_fail(c, "wrong user or password");
			return -1;
		}
		c->socks_step = SOCKS_REQUEST;
		return 1;
	}
	case SOCKS_REQUEST: {
		if (have < 5)
			return 0;
		b = evbuffer_pullup(in, 5);
		if (b[0] != 5 || b[2] != 0) {
			socks_fail(c, "malformed request");
			return -1;
		}
		int cmd = b[1], atyp = b[3];
		size_t alen = atyp == 1 ? 4
		    : atyp == 4         ? 16
		    : atyp == 3         ? 1u + b[4]
					: 0;
		if (alen == 0) {
			(void)socks_reply(c, SOCKS_REP_ATYP);
			socks_fail(c, "unsupported address type");
			return -1;
		}
		need = 4 + alen + 2;
		if (have < need)
			return 0;
		b = evbuffer_pullup(in, (ev_ssize_t)need);
		char host[256];
		if (atyp == 1)
			inet_ntop(AF_INET, b + 4, host, sizeof(host));
		else if (atyp == 4)
			inet_ntop(AF_INET6, b + 4, host, sizeof(host));
		else {
			size_t n = b[4];
			for (size_t i = 0; i < n; i++)
				host[i] = (char)tolower(b[5 + i]);
			host[n] = '\0';
		}
		unsigned port = ((unsigned)b[4 + alen] << 8) | b[5 + alen];
		evbuffer_drain(in, need);
		c->bytes_from_client += need;
		if (cmd != 1) {
			(void)socks_reply(c, SOCKS_REP_CMD);
			socks_fail(c, "only CONNECT is supported");
			return -1;
		}
		if (host[0] == '\0' || port == 0 || strchr(host, ' ')) {
			(void)socks_reply(c, SOCKS_REP_FAILURE);
			socks_fail(c, "bad target");
			return -1;
		}
		intercept_tunnel(c, host, port, INTERCEPT_VIA_SOCKS);
		return -1; /* the tunnel has taken over */
	}
	}
	return -1;
}

void
socks_read(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->cbev);

	while (c->state == CONN_SOCKS) {
		int r = socks_step(c, in);
		if (r != 1)
			return;
	}
}
