/*
 * web: the server's life (start, the loop thread, stop), the gate every
 * request passes (Host, token or cookie, password, CSRF), static files,
 * and the reply helpers. See web.h.
 */
#include "proxy/web/web.h"

#include <arpa/inet.h>
#include <errno.h>
#include <sys/queue.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy/http/respond.h"
#include "proxy/web/web_assets.h"
#include "proxy/web/web_int.h"

#define WEB_COOKIE "peephole_session"
/* evhttp's limits on what a client sends: heads, and POST bodies (the
 * API takes its arguments in the URL). */
#define WEB_MAX_HEADERS 16384
#define WEB_MAX_BODY 65536
/* Seconds a connection may sit idle (an event stream is kept busy by its
 * heartbeat; a browser reconnects one that drops, with Last-Event-ID). */
#define WEB_TIMEOUT_S 120

/* The CSP of the UI's own files: its scripts and nothing else. */
static const char web_csp[] =
    "default-src 'self'; script-src 'self'; style-src 'self' "
    "'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/* ---- held requests ---- */

static void
web_req_closecb(struct evhttp_connection *evcon, void *arg)
{
	struct web_req *wr = arg;

	(void)evcon;
	/*
	 * evhttp frees the requests still on the connection right after
	 * this callback; one it let go of (the client left before the
	 * answer: evhttp_connection_incoming_fail) is ours to free.
	 */
	if (wr->req != NULL && evhttp_request_get_connection(wr->req) == NULL)
		evhttp_request_free(wr->req);
	wr->req = NULL;
}

struct web_req *
web_req_hold(struct evhttp_request *req)
{
	struct web_req *wr = calloc(1, sizeof(*wr));
	struct evhttp_connection *evcon;

	if (wr == NULL)
		return NULL;
	wr->req = req;
	if ((evcon = evhttp_request_get_connection(req)) != NULL)
		evhttp_connection_set_closecb(evcon, web_req_closecb, wr);
	return wr;
}

void
web_req_release(struct web_req *wr)
{
	struct evhttp_connection *evcon;

	if (wr == NULL)
		return;
	if (wr->req != NULL &&
	    (evcon = evhttp_request_get_connection(wr->req)) != NULL)
		evhttp_connection_set_closecb(evcon, NULL, NULL);
	free(wr);
}

struct evhttp_request *
web_req_take(struct web_req **wrp)
{
	struct evhttp_request *req = NULL;

	if (*wrp != NULL) {
		req = (*wrp)->req;
		web_req_release(*wrp);
		*wrp = NULL;
	}
	return req;
}

void
web_req_abort(struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);

	if (evcon != NULL)
		evhttp_connection_free(evcon); /* frees req with it */
	else
		evhttp_request_free(req);
}

/* ---- replies ---- */

/* The phrase of status: the proxy's table (respond_reason), and the codes
 * only the UI answers with (kept out of that table: a replayed 304 would
 * change its words). */
static const char *
web_reason(int status)
{
	switch (status) {
	case 303:
		return "See Other";
	case 304:
		return "Not Modified";
	case 401:
		return "Unauthorized";
	}
	return respond_reason(status);
}

void
web_add_common_headers(struct evhttp_request *req)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(h, "X-Frame-Options", "DENY");
	evhttp_add_header(h, "Referrer-Policy", "no-referrer");
	evhttp_add_header(h, "Cross-Origin-Resource-Policy", "same-origin");
	evhttp_add_header(h, "Cache-Control", "no-store");
}

void
web_stream_start(struct evhttp_request *req)
{
	/*
	 * evhttp 2.1 answers an HTTP/1.0 keep-alive request with
	 * "Content-Length: 0" and then the chunks. Without the client's
	 * Connection header it does neither: 1.1 is chunked, 1.0 is closed
	 * at the end, as a body of unknown length must be.
	 */
	evhttp_remove_header(
	    evhttp_request_get_input_headers(req), "Connection");
	evhttp_send_reply_start(req, 200, "OK");
}

static int
web_json_out(const char *buf, size_t len, void *arg)
{
	return evbuffer_add(arg, buf, len);
}

void
web_reply_json(struct evhttp_request *req, int status, json_t *o)
{
	struct evbuffer *b = evbuffer_new();

	if (b == NULL || o == NULL ||
	    json_dump_callback(o, web_json_out, b,
		JSON_COMPACT | JSON_REAL_PRECISION(12)) == -1) {
		if (b != NULL)
			evbuffer_free(b);
		web_reply_error(req, 500, "out of memory");
		return;
	}
	web_add_common_headers(req);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "application/json; charset=utf-8");
	evhttp_send_reply(req, status, web_reason(status), b);
	evbuffer_free(b);
}

void
web_reply_error(struct evhttp_request *req, int status, const char *fmt, ...)
{
	struct evbuffer *b = evbuffer_new();
	char msg[512];
	json_t *o;
	char *s;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	web_add_common_headers(req);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "application/json; charset=utf-8");
	o = json_pack("{s:s}", "error", msg);
	s = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
	if (b != NULL)
		evbuffer_add_printf(
		    b, "%s\n", s != NULL ? s : "{\"error\":\"out of memory\"}");
	evhttp_send_reply(req, status, web_reason(status), b);
	free(s);
	json_decref(o);
	if (b != NULL)
		evbuffer_free(b);
}

void
web_reply_bytes(struct evhttp_request *req, int status, const char *type,
    const void *data, size_t len)
{
	struct evbuffer *b = evbuffer_new();

	if (b == NULL || evbuffer_add(b, data, len) == -1) {
		if (b != NULL)
			evbuffer_free(b);
		web_reply_error(req, 500, "out of memory");
		return;
	}
	web_add_common_headers(req);
	evhttp_add_header(
	    evhttp_request_get_output_headers(req), "Content-Type", type);
	evhttp_send_reply(req, status, web_reason(status), b);
	evbuffer_free(b);
}

/* ---- the gate ---- */

/* The value of query parameter name, decoded, malloc'd; NULL if absent. */
static char *
web_query_param(const char *query, const char *name)
{
	struct evkeyvalq q;
	const char *v;
	char *out = NULL;

	if (query == NULL)
		return NULL;
	TAILQ_INIT(&q);
	if (evhttp_parse_query_str(query, &q) == 0 &&
	    (v = evhttp_find_header(&q, name)) != NULL)
		out = strdup(v);
	evhttp_clear_headers(&q);
	return out;
}

/* query without its token parameter, into out ("" when nothing is
 * left). */
static void
web_query_without_token(const char *query, char *out, size_t len)
{
	const char *p = query;
	size_t n = 0, k;

	out[0] = '\0';
	while (p != NULL && *p != '\0') {
		k = strcspn(p, "&");
		if (strncmp(p, "token=", 6) != 0 && k > 0 && n + k + 2 < len) {
			if (n > 0)
				out[n++] = '&';
			memcpy(out + n, p, k);
			n += k;
			out[n] = '\0';
		}
		p = p[k] == '&' ? p + k + 1 : p + k;
	}
}

/* 1 when the password (if any) came with the request as HTTP Basic. */
static int
web_password_ok(const struct web *w, struct evkeyvalq *in)
{
	return w->password == NULL ||
	    web_auth_basic_ok(
		evhttp_find_header(in, "Authorization"), w->password);
}

/* 1 when a browser's Origin is this server as the Host header names it. */
static int
web_origin_ok(const char *origin, const char *host)
{
	char want[300];

	snprintf(want, sizeof(want), "http://%s", host != NULL ? host : "");
	return strcasecmp(origin, want) == 0;
}

enum web_gate {
	WEB_GATE_OPEN,     /* authenticated: go on */
	WEB_GATE_ANSWERED, /* refused or redirected: done */
};

/*
 * Who may come in: a foreign Host is refused (DNS rebinding); then the
 * session cookie, or the token in X-Peephole-Token or ?token= (with the
 * password, when there is one). A token in the URL is swapped for the
 * cookie and, outside /api/, taken out of the address bar by a redirect.
 * A POST needs the token in its header (a cookie alone could be a forged
 * cross-site form) and, when the browser says, our own Origin.
 */
static enum web_gate
web_gate(struct web *w, struct evhttp_request *req, const char *path,
    const char *query)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	const char *host = evhttp_find_header(in, "Host");
	const char *hdr_token = evhttp_find_header(in, "X-Peephole-Token");
	const char *origin = evhttp_find_header(in, "Origin");
	char rest[2048], loc[4096], set[256];
	char *qtoken = NULL;
	int post = evhttp_request_get_command(req) == EVHTTP_REQ_POST;
	int by_cookie, by_header, by_query;

	if (!web_auth_host_ok(host, w->host, w->port)) {
		web_reply_error(req, 403, "Host '%s' is not this server",
		    host != NULL ? host : "");
		return WEB_GATE_ANSWERED;
	}
	by_cookie = web_auth_cookie_is(
	    evhttp_find_header(in, "Cookie"), WEB_COOKIE, w->session);
	by_header =
	    web_auth_equal(hdr_token, w->token) && web_password_ok(w, in);
	if (!by_cookie && !by_header) {
		qtoken = web_query_param(query, "token");
		by_query = !post && web_auth_equal(qtoken, w->token);
		free(qtoken);
		if (by_query && !web_password_ok(w, in)) {
			evhttp_add_header(out, "WWW-Authenticate",
			    "Basic realm=\"peephole\", charset=\"UTF-8\"");
			web_reply_error(req, 401, "password required");
			return WEB_GATE_ANSWERED;
		}
		if (!by_query) {
			web_reply_error(req, 401,
			    "open the link peephole printed at start (it "
			    "carries ?token=), or send X-Peephole-Token");
			return WEB_GATE_ANSWERED;
		}
		snprintf(set, sizeof(set),
		    WEB_COOKIE "=%s; HttpOnly; SameSite=Strict; Path=/",
		    w->session);
		evhttp_add_header(out, "Set-Cookie", set);
		if (strncmp(path, "/api/", 5) != 0) {
			web_query_without_token(query, rest, sizeof(rest));
			snprintf(loc, sizeof(loc), "%s%s%s", path,
			    rest[0] ? "?" : "", rest);
			evhttp_add_header(out, "Location", loc);
			web_reply_bytes(req, 303, "text/plain", "", 0);
			return WEB_GATE_ANSWERED;
		}
	}
	if (post &&
	    (!web_auth_equal(hdr_token, w->token) ||
		(origin != NULL && !web_origin_ok(origin, host)))) {
		web_reply_error(req, 403,
		    "a POST needs X-Peephole-Token and no foreign Origin");
		return WEB_GATE_ANSWERED;
	}
	return WEB_GATE_OPEN;
}

/* ---- static files ---- */

static void
web_static(struct evhttp_request *req, const char *path)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	const struct web_asset *a;
	const char *inm;
	struct evbuffer *b;
	char etag[80];

	if (strcmp(path, "/") == 0)
		path = "/index.html";
	if ((a = web_asset_find(path)) == NULL) {
		web_reply_error(req, 404, "no such page");
		return;
	}
	snprintf(etag, sizeof(etag), "%s", a->etag);
	evhttp_add_header(out, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(out, "X-Frame-Options", "DENY");
	evhttp_add_header(out, "Referrer-Policy", "no-referrer");
	evhttp_add_header(out, "Content-Security-Policy", web_csp);
	/* the files change only with the binary: revalidate by ETag */
	evhttp_add_header(out, "Cache-Control", "no-cache");
	evhttp_add_header(out, "ETag", etag);
	inm = evhttp_find_header(
	    evhttp_request_get_input_headers(req), "If-None-Match");
	if (inm != NULL && strcmp(inm, etag) == 0) {
		evhttp_send_reply(req, 304, "Not Modified", NULL);
		return;
	}
	evhttp_add_header(out, "Content-Type", a->type);
	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
		/* evhttp 2.1 would send a body with HEAD: the length alone */
		char n[24];
		snprintf(n, sizeof(n), "%zu", a->len);
		evhttp_add_header(out, "Content-Length", n);
		evhttp_send_reply(req, 200, "OK", NULL);
		return;
	}
	if ((b = evbuffer_new()) == NULL ||
	    evbuffer_add_reference(b, a->data, a->len, NULL, NULL) == -1) {
		if (b != NULL)
			evbuffer_free(b);
		web_reply_error(req, 500, "out of memory");
		return;
	}
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

/* Every request: the gate, then the API or a file. Web thread. */
static void
web_gencb(struct evhttp_request *req, void *arg)
{
	struct web *w = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	const char *query = uri != NULL ? evhttp_uri_get_query(uri) : NULL;

	/* "//x" or "/\\x" would make the token's redirect leave the site */
	if (path == NULL || path[0] != '/' || path[1] == '/' ||
	    path[1] == '\\') {
		web_reply_error(req, 400, "bad request target");
		return;
	}
	if (web_gate(w, req, path, query) != WEB_GATE_OPEN)
		return;
	if (strncmp(path, "/api/", 5) == 0) {
		if (cmd == EVHTTP_REQ_HEAD) { /* evhttp 2.1 sends bodies */
			evhttp_add_header(
			    evhttp_request_get_output_headers(req), "Allow",
			    "GET, POST");
			web_reply_error(req, 405, "no HEAD on the API");
			return;
		}
		web_api_route(w, req, path, query);
		return;
	}
	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		web_reply_error(req, 405, "GET only here");
		return;
	}
	web_static(req, path);
}

/* ---- life ---- */

int
web_parse_listen(const char *spec, char *host, size_t hostlen, unsigned *port,
    char *err, size_t errlen)
{
	const char *colon, *p = spec;
	unsigned char addr[16];
	unsigned long n;
	char *end;
	size_t hl;

	if (spec == NULL || *spec == '\0')
		spec = p = WEB_DEFAULT_LISTEN;
	if (spec[0] == '[') {
		const char *rb = strchr(spec, ']');
		if (rb == NULL || rb[1] != ':')
			goto bad;
		hl = (size_t)(rb - spec - 1);
		p = spec + 1;
		colon = rb + 1;
	} else if ((colon = strrchr(spec, ':')) != NULL) {
		hl = (size_t)(colon - spec);
	} else {
		hl = 0;
		colon = spec - 1; /* only a port */
	}
	if (hl >= hostlen)
		goto bad;
	if (hl == 0)
		snprintf(host, hostlen, "127.0.0.1");
	else {
		memcpy(host, p, hl);
		host[hl] = '\0';
	}
	if (strcasecmp(host, "localhost") == 0)
		snprintf(host, hostlen, "127.0.0.1");
	if (inet_pton(AF_INET, host, addr) != 1 &&
	    inet_pton(AF_INET6, host, addr) != 1) {
		snprintf(err, errlen,
		    "'%s': the web UI listens on an IP address, not a name",
		    spec);
		return -1;
	}
	errno = 0;
	n = strtoul(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || errno != 0 || n > 65535)
		goto bad;
	*port = (unsigned)n;
	return 0;
bad:
	snprintf(
	    err, errlen, "'%s': want [ADDR:]PORT, e.g. 127.0.0.1:8081", spec);
	return -1;
}

/* 1 when host (an IP literal) is a loopback address. */
static int
web_is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return 0;
}

static void
web_stop_cb(int fd, short what, void *arg)
{
	struct web *w = arg;

	(void)fd;
	(void)what;
	web_sse_close_all(w);
	web_spawn_kill_all(w);
	event_base_loopexit(w->base, NULL);
}

static void
web_tick_cb(int fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	web_sse_tick(arg);
	web_spawn_tick(arg);
}

static void *
web_main(void *arg)
{
	struct web *w = arg;

	event_base_dispatch(w->base);
	return NULL;
}

/* Bind the listener; the real port when 0 was asked. 0 / -1 (err). */
static int
web_bind(struct web *w, char *err, size_t errlen)
{
	struct evhttp_bound_socket *bs;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if ((bs = evhttp_bind_socket_with_handle(
		 w->http, w->host, (ev_uint16_t)w->port)) == NULL) {
		snprintf(err, errlen, "cannot listen on %s port %u: %s",
		    w->host, w->port, strerror(errno));
		return -1;
	}
	if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss,
		&sl) == 0)
		w->port = ntohs(ss.ss_family == AF_INET6
			? ((struct sockaddr_in6 *)&ss)->sin6_port
			: ((struct sockaddr_in *)&ss)->sin_port);
	return 0;
}

/* Everything but the threads; 0 / -1 (err). */
static int
web_setup(struct web *w, const struct web_opts *o, char *err, size_t errlen)
{
	const struct timeval tick = {0, 250000};
	const char *password = o->password;
	ssize_t n;

	if (web_parse_listen(o->listen, w->host, sizeof(w->host), &w->port, err,
		errlen) == -1)
		return -1;
	/* the environment keeps the password out of `ps` */
	if (password == NULL || password[0] == '\0')
		password = getenv("PEEPHOLE_WEB_PASSWORD");
	if (password != NULL && password[0] == '\0')
		password = NULL;
	if (!web_is_loopback(w->host) && password == NULL) {
		snprintf(err, errlen,
		    "listening on %s (not loopback) needs --web-password",
		    w->host);
		return -1;
	}
	if ((n = readlink("/proc/self/exe", w->exe, sizeof(w->exe) - 1)) <= 0) {
		snprintf(err, errlen, "cannot find this program's path");
		return -1;
	}
	w->exe[n] = '\0';
	w->readonly = o->readonly;
	w->insecure_upstream = o->insecure_upstream;
	for (int i = 0; i < o->ndns && i < WEB_DNS_MAX; i++)
		if ((w->dns_servers[w->ndns++] = strdup(o->dns_servers[i])) ==
		    NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	if ((o->hosts_file != NULL &&
		(w->hosts_file = strdup(o->hosts_file)) == NULL) ||
	    (w->db_path = strdup(o->db_path)) == NULL ||
	    (password != NULL && (w->password = strdup(password)) == NULL) ||
	    (o->upstream_ca != NULL &&
		(w->upstream_ca = strdup(o->upstream_ca)) == NULL) ||
	    web_auth_secret(w->token) == -1 ||
	    web_auth_secret(w->session) == -1) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (evthread_use_pthreads() != 0 ||
	    (w->base = event_base_new()) == NULL ||
	    (w->http = evhttp_new(w->base)) == NULL ||
	    (w->stop_ev = event_new(w->base, -1, 0, web_stop_cb, w)) == NULL ||
	    (w->done_ev = event_new(w->base, -1, 0, web_readers_done_cb, w)) ==
		NULL ||
	    (w->tick_ev = event_new(w->base, -1, EV_PERSIST, web_tick_cb, w)) ==
		NULL ||
	    event_add(w->tick_ev, &tick) == -1) {
		snprintf(err, errlen, "cannot start the web server's loop");
		return -1;
	}
	evhttp_set_gencb(w->http, web_gencb, w);
	evhttp_set_allowed_methods(
	    w->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST);
	evhttp_set_max_headers_size(w->http, WEB_MAX_HEADERS);
	evhttp_set_max_body_size(w->http, WEB_MAX_BODY);
	evhttp_set_timeout(w->http, WEB_TIMEOUT_S);
	return web_bind(w, err, errlen);
}

struct web *
web_start(const struct web_opts *o, char *err, size_t errlen)
{
	struct web *w = calloc(1, sizeof(*w));
	sigset_t all, old;
	int v6;

	if (w == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	if (web_setup(w, o, err, errlen) == -1 ||
	    web_readers_start(w, err, errlen) == -1)
		goto fail;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	w->thread_started = pthread_create(&w->thread, NULL, web_main, w) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!w->thread_started) {
		snprintf(err, errlen, "cannot start the web server thread");
		goto fail;
	}
	v6 = strchr(w->host, ':') != NULL;
	fprintf(o->announce != NULL ? o->announce : stdout,
	    "web UI: http://%s%s%s:%u/?token=%s\n", v6 ? "[" : "", w->host,
	    v6 ? "]" : "", w->port, w->token);
	fflush(o->announce != NULL ? o->announce : stdout);
	return w;
fail:
	web_stop(w);
	return NULL;
}

void
web_stop(struct web *w)
{
	if (w == NULL)
		return;
	if (w->thread_started) {
		event_active(w->stop_ev, EV_READ, 0);
		pthread_join(w->thread, NULL);
	}
	/* the loop has stopped: the readers' done list is dropped with them */
	web_readers_stop(w);
	if (w->http != NULL)
		evhttp_free(w->http);
	if (w->tick_ev != NULL)
		event_free(w->tick_ev);
	if (w->done_ev != NULL)
		event_free(w->done_ev);
	if (w->stop_ev != NULL)
		event_free(w->stop_ev);
	if (w->base != NULL)
		event_base_free(w->base);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	free(w->db_path);
	free(w->password);
	free(w->upstream_ca);
	free(w->hosts_file);
	for (int i = 0; i < w->ndns; i++)
		free(w->dns_servers[i]);
	free(w);
}
