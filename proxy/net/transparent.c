/*
 * transparent: a connection netfilter redirected to a transparent
 * listener. Its original destination (SO_ORIGINAL_DST) is the tunnel's
 * target, and from there it is any other tunnel (intercept.c).
 */
#include "proxy/net/transparent.h"

#include <arpa/inet.h>
#include <event2/bufferevent.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "proxy/net/conn_int.h"
#include "proxy/net/intercept.h"
#include "proxy/net/server.h"
#include "proxy/net/worker.h"

/* getsockopt name for netfilter's original destination, the same for IPv4
 * (SOL_IP) and IPv6 (SOL_IPV6); linux/netfilter_ipv4.h clashes with
 * netinet/in.h, so it is spelled here. */
#define TRANSPARENT_SO_ORIGINAL_DST 80

/* Whether ss is the accepted socket's own local address: not redirected. */
static int
transparent_is_local(int fd, const struct sockaddr_storage *ss)
{
	struct sockaddr_storage me;
	socklen_t len = sizeof(me);

	memset(&me, 0, sizeof(me));
	if (getsockname(fd, (struct sockaddr *)&me, &len) == -1 ||
	    me.ss_family != ss->ss_family)
		return 0;
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)&me;
		const struct sockaddr_in6 *b = (const void *)ss;
		return a->sin6_port == b->sin6_port &&
		    memcmp(&a->sin6_addr, &b->sin6_addr, 16) == 0;
	}
	const struct sockaddr_in *a = (const void *)&me;
	const struct sockaddr_in *b = (const void *)ss;
	return a->sin_port == b->sin_port &&
	    a->sin_addr.s_addr == b->sin_addr.s_addr;
}

/*
 * A connection netfilter redirected to us: its original destination is
 * the tunnel's target. One that was not redirected would name ourselves.
 */
void
transparent_start(struct conn *c)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int fd = bufferevent_getfd(c->cbev);
	char ip[INET6_ADDRSTRLEN];
	unsigned port;
	int rc;

	memset(&ss, 0, sizeof(ss));
	rc = getsockopt(fd, SOL_IP, TRANSPARENT_SO_ORIGINAL_DST, &ss, &len);
	if (rc == -1) {
		len = sizeof(ss);
		rc = getsockopt(
		    fd, SOL_IPV6, TRANSPARENT_SO_ORIGINAL_DST, &ss, &len);
	}
	if (rc == -1) {
		conn_close(
		    c, "error", "no original destination (SO_ORIGINAL_DST)");
		return;
	}
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
		port = ntohs(s6->sin6_port);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
		port = ntohs(s4->sin_port);
	}
	if (transparent_is_local(fd, &ss) ||
	    server_is_self_addr(c->w->srv, (struct sockaddr *)&ss)) {
		conn_close(c, "error",
		    "not redirected: the original destination is peephole");
		return;
	}
	intercept_tunnel(c, ip, port, INTERCEPT_VIA_TRANSPARENT);
}
