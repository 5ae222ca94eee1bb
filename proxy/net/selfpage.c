/*
 * selfpage: answering requests addressed to peephole itself (selfpage.h).
 */
#include "proxy/net/selfpage.h"

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
#include "proxy/net/record.h"
#include "proxy/net/relay.h"
#include "proxy/net/resolve.h"
#include "proxy/net/server.h"
#include "proxy/net/stream.h"
#include "proxy/net/upstream.h"
#include "proxy/net/worker.h"
#include "proxy/store/store.h"

/*
 * A request to the proxy itself names no origin: record the host it asked
 * for (its Host field), else the address it reached us on, and our port,
 * so the page is logged as http://127.0.0.1:8080/ rather than http:///.
 */
static void
selfpage_name(struct conn *c, const char *local, int local_port)
{
	struct store_request *r = &c->rec->u.req;
	int i = head_find(&c->reqh, "host", 0);
	char *v = i != -1 ? head_value_dup(&c->reqh, i) : NULL;
	char *colon;

	if (r->host != NULL) {
		free(v);
		return;
	}
	r->port = local_port;
	if (v != NULL && v[0] != '\0' && v[0] != '[' &&
	    (colon = strrchr(v, ':')) != NULL && strchr(v, ':') == colon) {
		r->port = atoi(colon + 1);
		*colon = '\0';
	} else if (v != NULL && v[0] == '[' &&
	    (colon = strchr(v, ']')) != NULL) {
		if (colon[1] == ':')
			r->port = atoi(colon + 2);
		memmove(v, v + 1, (size_t)(colon - v - 1));
		v[colon - v - 1] = '\0';
	}
	if (v != NULL && v[0] != '\0')
		r->host = v;
	else {
		free(v);
		r->host = local != NULL && local[0] ? strdup(local) : NULL;
	}
	if (r->path == NULL)
		r->path = strdup("/");
}

/* The proxy's own status page, for requests addressed to peephole. */
void
selfpage_answer(struct conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->cbev);
	struct server *srv = c->w->srv;
	char page[1024], pac_host[INET6_ADDRSTRLEN];
	uint64_t accepted = 0, exchanges = 0;
	int n, live = 0, status, local_port = 0;
	size_t before = evbuffer_get_length(out);
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);

	for (int i = 0; i < srv->nworkers; i++) {
		struct worker *o = srv->workers[i];

		accepted +=
		    atomic_load_explicit(&o->accepted, memory_order_relaxed);
		exchanges +=
		    atomic_load_explicit(&o->exchanges, memory_order_relaxed);
		live += atomic_load_explicit(&o->live, memory_order_relaxed);
	}
	n = snprintf(page, sizeof(page),
	    "<ul><li>uptime: %lld s</li><li>workers: %d</li>"
	    "<li>connections accepted: %llu (open: %d)</li>"
	    "<li>exchanges: %llu</li><li>records written: %llu (queued: "
	    "%zu)</li></ul>\n",
	    (long long)((now_us() - srv->t_start_us) / 1000000), srv->nworkers,
	    (unsigned long long)accepted, live, (unsigned long long)exchanges,
	    (unsigned long long)(c->w->store ? store_written(c->w->store) : 0),
	    c->w->store ? store_queued(c->w->store) : (size_t)0);
	if (n < 0)
		page[0] = '\0';
	/* the PAC names the address this client reached us on */
	pac_host[0] = '\0';
	if (getsockname(bufferevent_getfd(c->craw ? c->craw : c->cbev),
		(struct sockaddr *)&ss, &sslen) == 0) {
		const void *a = ss.ss_family == AF_INET6
		    ? (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
		    : (const void *)&((struct sockaddr_in *)&ss)->sin_addr;
		if (inet_ntop(ss.ss_family, a, pac_host, sizeof(pac_host)) ==
		    NULL)
			pac_host[0] = '\0';
		local_port = ss.ss_family == AF_INET6
		    ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
		    : ntohs(((struct sockaddr_in *)&ss)->sin_port);
	}
	/* a body sent to us is not read: close rather than parse it as the
	 * next request */
	if (c->reqp.content_length > 0 || (c->reqp.flags & F_CHUNKED))
		c->client_ka = 0;
	c->req_done = 1;
	c->resp_done = 1;
	status = srv->onboard == NULL
	    ? -1
	    : onboard_respond(srv->onboard, c->url.path ? c->url.path : "/",
		  page, pac_host[0] ? pac_host : NULL, c->client_ka, c->is_head,
		  out);
	if (status == -1) {
		exchange_fail(c, 500, "cannot build the page");
		return;
	}
	c->rec->u.req.status = status;
	selfpage_name(c, pac_host, local_port);
	c->bytes_to_client += evbuffer_get_length(out) - before;
	record_own_answer(c, out, before, evbuffer_get_length(out) - before);
	exchange_end(c);
}

/* 1 if the request names this proxy rather than an origin. */
int
selfpage_is_for_us(struct conn *c)
{
	if (c->inner != CONN_INNER_NONE)
		return 0; /* inside a tunnel, origin-form is the norm */
	if (c->url.form == URL_FORM_ORIGIN || c->url.form == URL_FORM_ASTERISK)
		return 1;
	/* the magic name a device can browse to for the CA and PAC file */
	if (strcmp(c->url.host, "peephole.local") == 0)
		return 1;
	return server_is_self(c->w->srv, c->url.host, c->url.port);
}
