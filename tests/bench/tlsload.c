/*
 * tlsload — a small HTTPS load client for tests/bench/bench.py.
 *
 * wrk cannot send CONNECT, so this does what the bench needs and no more:
 * N threads, one blocking connection each, HTTP/1.1 GET over TLS, either
 * straight to the origin or through an HTTP proxy (CONNECT first). The
 * certificate is always verified against --ca for --name (SNI, Host and
 * the name checked are the same), so a request through an intercepting
 * proxy only completes if the client trusts the proxy's CA and the forged
 * certificate is valid for the name.
 *
 *   cc -O2 -o tlsload tests/bench/tlsload.c -lssl -lcrypto -lpthread
 *
 *   tlsload --target HOST:PORT [--proxy HOST:PORT] --ca FILE --name NAME
 *           [--path /small] [--conns 50] [--duration 8] [--mode reuse|new]
 *           [--requests MAX] [--timeout 5]
 *
 * --mode reuse  keep-alive: many requests per TLS connection; latency is
 *               per request (connection set-up not included, as in wrk).
 * --mode new    a fresh TCP (+ CONNECT) + full TLS handshake per request,
 *               Connection: close, no session resumption (client session
 *               cache off, tickets not requested); latency includes it all.
 * --requests M  stop after M requests have been started (default: no cap).
 * A "%d" in --name and in the host of --target is replaced, per request,
 * by a counter 1, 2, ... (each request to a different host name; use with
 * --mode new and --requests).
 *
 * A request counts as completed when the status is 200 and the whole
 * Content-Length body was read. Only requests completed before the
 * deadline are counted (in-flight ones at the deadline are dropped, as
 * wrk does). Output: one JSON line on stdout. Exit 0 if it ran (whatever
 * the error count), 2 on bad usage or set-up failure.
 *
 * Bounded: no new request starts after --duration; every socket has a
 * send/receive timeout (--timeout, default 5 s), so the process ends at
 * most that long after the deadline.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

enum err_kind { E_CONNECT, E_PROXY, E_TLS, E_IO, E_STATUS, E_NKINDS };
static const char *err_names[E_NKINDS] = {"connect", "proxy", "tls", "io",
                                          "status"};

static struct {
	char *thost, *tport; /* target */
	char *phost, *pport; /* proxy, or NULL */
	const char *ca, *name, *path;
	int conns;
	double duration, timeout;
	int mode_new;
	long max_requests;
} opt = {.path = "/", .conns = 50, .duration = 8, .timeout = 5};

static SSL_CTX *ctx;
static double t_start, t_end;
static atomic_long started;         /* requests claimed (for --requests) */
static atomic_int first_err_set;
static char first_err[256];

struct worker {
	pthread_t tid;
	long done, handshakes;
	long errs[E_NKINDS];
	unsigned long long bytes;
	double last_done;
	uint32_t *lat; /* µs */
	size_t nlat, caplat;
	/* response buffer */
	char buf[65536 + 1]; /* + 1: room for a NUL after the data */
	size_t pos, len;
};

static double
now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
note_err(struct worker *w, enum err_kind k, const char *fmt, ...)
{
	/* Errors after the deadline are teardown, not failures. */
	if (now() >= t_end)
		return;
	w->errs[k]++;
	if (atomic_exchange(&first_err_set, 1) == 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(first_err, sizeof first_err, fmt, ap);
		va_end(ap);
	}
}

static int
split_hostport(const char *s, char **host, char **port)
{
	const char *c = strrchr(s, ':');
	if (c == NULL || c == s || c[1] == '\0')
		return -1;
	*host = strndup(s, c - s);
	*port = strdup(c + 1);
	return 0;
}

/* Replace the first "%d" in PAT by N into OUT. */
static void
subst(char *out, size_t n, const char *pat, long idx)
{
	const char *p = strstr(pat, "%d");
	if (p == NULL)
		snprintf(out, n, "%s", pat);
	else
		snprintf(out, n, "%.*s%ld%s", (int)(p - pat), pat, idx, p + 2);
}

static int
tcp_connect(const char *host, const char *port)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
	                         .ai_socktype = SOCK_STREAM}, *res, *ai;
	int fd = -1;
	if (getaddrinfo(host, port, &hints, &res) != 0)
		return -1;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		struct timeval tv = {.tv_sec = (long)opt.timeout,
		                     .tv_usec = (long)((opt.timeout -
		                                        (long)opt.timeout) * 1e6)};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

static int
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* CONNECT through the proxy. The proxy sends nothing after its response
 * until our ClientHello, so reading until the blank line cannot swallow
 * TLS bytes; anything extra is an error. */
static int
proxy_connect(struct worker *w, int fd, const char *thost)
{
	char req[512], resp[4096];
	int n = snprintf(req, sizeof req,
	                 "CONNECT %s:%s HTTP/1.1\r\nHost: %s:%s\r\n\r\n", thost,
	                 opt.tport, thost, opt.tport);
	if (write_all(fd, req, (size_t)n) < 0) {
		note_err(w, E_IO, "CONNECT write: %s", strerror(errno));
		return -1;
	}
	size_t len = 0;
	for (;;) {
		ssize_t k = recv(fd, resp + len, sizeof resp - 1 - len, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			note_err(w, E_PROXY, "CONNECT %s: no response (%s)", thost,
			         k == 0 ? "closed" : strerror(errno));
			return -1;
		}
		len += (size_t)k;
		resp[len] = '\0';
		char *end = strstr(resp, "\r\n\r\n");
		if (end != NULL) {
			if (end + 4 != resp + len || strncmp(resp, "HTTP/1.", 7) ||
			    len < 12 || strncmp(resp + 9, "200", 3)) {
				note_err(w, E_PROXY, "CONNECT %s: %.60s", thost, resp);
				return -1;
			}
			return 0;
		}
		if (len == sizeof resp - 1) {
			note_err(w, E_PROXY, "CONNECT %s: response too long", thost);
			return -1;
		}
	}
}

static void
tls_errstr(char *out, size_t n, SSL *ssl, int rc)
{
	unsigned long e = ERR_peek_last_error();
	long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
	if (vr != X509_V_OK)
		snprintf(out, n, "verify: %s", X509_verify_cert_error_string(vr));
	else if (e != 0)
		ERR_error_string_n(e, out, n);
	else
		snprintf(out, n, "SSL error %d, errno %s",
		         ssl ? SSL_get_error(ssl, rc) : -1, strerror(errno));
	ERR_clear_error();
}

/* Open a verified TLS connection for NAME (target host THOST). */
static SSL *
open_conn(struct worker *w, const char *thost, const char *name, int *fdp)
{
	char es[200];
	int fd;
	if (opt.phost)
		fd = tcp_connect(opt.phost, opt.pport);
	else
		fd = tcp_connect(thost, opt.tport);
	if (fd < 0) {
		note_err(w, E_CONNECT, "connect %s:%s: %s",
		         opt.phost ? opt.phost : thost,
		         opt.phost ? opt.pport : opt.tport, strerror(errno));
		return NULL;
	}
	if (opt.phost && proxy_connect(w, fd, thost) < 0) {
		close(fd);
		return NULL;
	}
	SSL *ssl = SSL_new(ctx);
	if (ssl == NULL || SSL_set_fd(ssl, fd) != 1 ||
	    SSL_set_tlsext_host_name(ssl, name) != 1 ||
	    SSL_set1_host(ssl, name) != 1) {
		tls_errstr(es, sizeof es, ssl, 0);
		note_err(w, E_TLS, "SSL set-up: %s", es);
		SSL_free(ssl);
		close(fd);
		return NULL;
	}
	int rc = SSL_connect(ssl);
	if (rc != 1) {
		tls_errstr(es, sizeof es, ssl, rc);
		note_err(w, E_TLS, "TLS handshake with %s: %s", name, es);
		SSL_free(ssl);
		close(fd);
		return NULL;
	}
	w->handshakes++;
	*fdp = fd;
	return ssl;
}

static void
close_conn(SSL *ssl, int fd)
{
	if (ssl) {
		SSL_shutdown(ssl); /* send close_notify, do not wait */
		SSL_free(ssl);
	}
	if (fd >= 0)
		close(fd);
}

/* Fill the buffer (compacting first); returns bytes read, 0 on EOF, -1. */
static int
fill(struct worker *w, SSL *ssl)
{
	if (w->pos > 0) {
		memmove(w->buf, w->buf + w->pos, w->len - w->pos);
		w->len -= w->pos;
		w->pos = 0;
	}
	if (w->len >= sizeof w->buf - 1)
		return -1; /* headers larger than the buffer */
	int k = SSL_read(ssl, w->buf + w->len,
	                 (int)(sizeof w->buf - 1 - w->len));
	if (k <= 0)
		return SSL_get_error(ssl, k) == SSL_ERROR_ZERO_RETURN ? 0 : -1;
	w->len += (size_t)k;
	return k;
}

/* Send one GET and read the response. 0: a complete 200; -1: failure (the
 * connection must be dropped). */
static int
one_request(struct worker *w, SSL *ssl, const char *name)
{
	char req[1024], es[200];
	int n = snprintf(req, sizeof req,
	                 "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: tlsload\r\n"
	                 "Accept: */*\r\nConnection: %s\r\n\r\n",
	                 opt.path, name, opt.mode_new ? "close" : "keep-alive");
	int k = SSL_write(ssl, req, n);
	if (k != n) {
		tls_errstr(es, sizeof es, ssl, k);
		note_err(w, E_IO, "write request: %s", es);
		return -1;
	}
	/* Headers. */
	char *hend;
	for (;;) {
		w->buf[w->len] = '\0';
		hend = w->len > w->pos
		           ? memmem(w->buf + w->pos, w->len - w->pos, "\r\n\r\n", 4)
		           : NULL;
		if (hend != NULL)
			break;
		int r = fill(w, ssl);
		if (r <= 0) {
			if (r == 0)
				note_err(w, E_IO, "connection closed before response "
				                  "headers");
			else {
				tls_errstr(es, sizeof es, ssl, -1);
				note_err(w, E_IO, "read headers: %s", es);
			}
			return -1;
		}
	}
	char *h = w->buf + w->pos;
	size_t hlen = (size_t)(hend + 4 - h);
	int status = 0;
	if (hlen < 12 || strncmp(h, "HTTP/1.", 7) != 0 ||
	    sscanf(h + 9, "%3d", &status) != 1 || status != 200) {
		note_err(w, E_STATUS, "status line: %.40s", h);
		return -1;
	}
	long long clen = -1;
	for (char *line = strstr(h, "\r\n") + 2; line < hend;
	     line = strstr(line, "\r\n") + 2) {
		if (strncasecmp(line, "Content-Length:", 15) == 0)
			clen = strtoll(line + 15, NULL, 10);
	}
	if (clen < 0) {
		note_err(w, E_STATUS, "response without Content-Length");
		return -1;
	}
	w->pos += hlen;
	w->bytes += hlen;
	/* Body. */
	long long left = clen;
	for (;;) {
		size_t have = w->len - w->pos;
		size_t take = (long long)have < left ? have : (size_t)left;
		w->pos += take;
		left -= (long long)take;
		if (left == 0)
			break;
		w->pos = w->len = 0; /* nothing buffered is needed any more */
		int r = fill(w, ssl);
		if (r <= 0) {
			note_err(w, E_IO, "body cut short: %lld of %lld bytes",
			         clen - left, clen);
			return -1;
		}
	}
	w->bytes += (unsigned long long)clen;
	return 0;
}

static void
record(struct worker *w, double t0)
{
	double t = now();
	if (t >= t_end)
		return; /* completed after the deadline: not counted */
	if (w->nlat == w->caplat) {
		w->caplat = w->caplat ? 2 * w->caplat : 4096;
		w->lat = realloc(w->lat, w->caplat * sizeof *w->lat);
		if (w->lat == NULL)
			abort();
	}
	double us = (t - t0) * 1e6;
	w->lat[w->nlat++] = us > 4e9 ? 4000000000u : (uint32_t)us;
	w->done++;
	w->last_done = t;
}

static void *
run(void *arg)
{
	struct worker *w = arg;
	SSL *ssl = NULL;
	int fd = -1;
	char thost[256], name[256];
	subst(thost, sizeof thost, opt.thost, 0);
	subst(name, sizeof name, opt.name, 0);
	while (now() < t_end) {
		long idx = atomic_fetch_add(&started, 1) + 1;
		if (opt.max_requests > 0 && idx > opt.max_requests)
			break;
		double t0 = now();
		if (ssl == NULL) {
			if (opt.mode_new) {
				subst(thost, sizeof thost, opt.thost, idx);
				subst(name, sizeof name, opt.name, idx);
			}
			w->pos = w->len = 0;
			ssl = open_conn(w, thost, name, &fd);
			if (ssl == NULL) {
				usleep(1000); /* do not spin on a refusing server */
				continue;
			}
			if (!opt.mode_new)
				t0 = now(); /* as wrk: set-up not in latency */
		}
		int rc = one_request(w, ssl, name);
		if (rc == 0)
			record(w, t0);
		if (rc != 0 || opt.mode_new) {
			close_conn(ssl, fd);
			ssl = NULL;
			fd = -1;
		}
	}
	close_conn(ssl, fd);
	return NULL;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static void
usage(void)
{
	fprintf(stderr,
	        "usage: tlsload --target HOST:PORT [--proxy HOST:PORT] --ca FILE"
	        " --name NAME\n"
	        "               [--path P] [--conns N] [--duration S]"
	        " [--mode reuse|new]\n"
	        "               [--requests MAX] [--timeout S]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
	    {"target", 1, 0, 't'},   {"proxy", 1, 0, 'x'},
	    {"ca", 1, 0, 'c'},       {"name", 1, 0, 'n'},
	    {"path", 1, 0, 'p'},     {"conns", 1, 0, 'C'},
	    {"duration", 1, 0, 'd'}, {"mode", 1, 0, 'm'},
	    {"requests", 1, 0, 'r'}, {"timeout", 1, 0, 'T'},
	    {0, 0, 0, 0}};
	int c;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 't':
			if (split_hostport(optarg, &opt.thost, &opt.tport) < 0)
				usage();
			break;
		case 'x':
			if (split_hostport(optarg, &opt.phost, &opt.pport) < 0)
				usage();
			break;
		case 'c': opt.ca = optarg; break;
		case 'n': opt.name = optarg; break;
		case 'p': opt.path = optarg; break;
		case 'C': opt.conns = atoi(optarg); break;
		case 'd': opt.duration = atof(optarg); break;
		case 'r': opt.max_requests = atol(optarg); break;
		case 'T': opt.timeout = atof(optarg); break;
		case 'm':
			if (strcmp(optarg, "new") == 0)
				opt.mode_new = 1;
			else if (strcmp(optarg, "reuse") != 0)
				usage();
			break;
		default: usage();
		}
	}
	if (optind != argc || !opt.thost || !opt.ca || !opt.name ||
	    opt.conns < 1 || opt.conns > 10000 || opt.duration <= 0 ||
	    opt.timeout <= 0 || strlen(opt.name) > 200 || strlen(opt.path) > 800)
		usage();

	signal(SIGPIPE, SIG_IGN);
	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL || SSL_CTX_load_verify_locations(ctx, opt.ca, NULL) != 1) {
		fprintf(stderr, "tlsload: cannot load CA file %s\n", opt.ca);
		ERR_print_errors_fp(stderr);
		return 2;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* No resumption: every handshake in --mode new is a full one. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);

	struct worker *ws = calloc((size_t)opt.conns, sizeof *ws);
	if (ws == NULL)
		return 2;
	t_start = now();
	t_end = t_start + opt.duration;
	for (int i = 0; i < opt.conns; i++) {
		if (pthread_create(&ws[i].tid, NULL, run, &ws[i]) != 0) {
			fprintf(stderr, "tlsload: pthread_create failed\n");
			t_end = 0; /* stop the others */
			for (int j = 0; j < i; j++)
				pthread_join(ws[j].tid, NULL);
			return 2;
		}
	}
	long done = 0, hs = 0, errs[E_NKINDS] = {0};
	unsigned long long bytes = 0;
	double last = t_start;
	size_t nlat = 0;
	for (int i = 0; i < opt.conns; i++) {
		pthread_join(ws[i].tid, NULL);
		done += ws[i].done;
		hs += ws[i].handshakes;
		bytes += ws[i].bytes;
		nlat += ws[i].nlat;
		for (int k = 0; k < E_NKINDS; k++)
			errs[k] += ws[i].errs[k];
		if (ws[i].last_done > last)
			last = ws[i].last_done;
	}
	/* Elapsed: the whole duration, or less when --requests ran out. */
	double fin = now();
	double elapsed = (fin < t_end ? fin : t_end) - t_start;
	if (opt.max_requests > 0 && last < t_end && last > t_start)
		elapsed = last - t_start;
	uint32_t *all = malloc((nlat ? nlat : 1) * sizeof *all);
	size_t off = 0;
	double sum = 0;
	for (int i = 0; i < opt.conns; i++) {
		memcpy(all + off, ws[i].lat, ws[i].nlat * sizeof *all);
		off += ws[i].nlat;
	}
	for (size_t i = 0; i < nlat; i++)
		sum += all[i];
	qsort(all, nlat, sizeof *all, cmp_u32);
	uint32_t p50 = nlat ? all[(size_t)((nlat - 1) * 0.50)] : 0;
	uint32_t p99 = nlat ? all[(size_t)((nlat - 1) * 0.99)] : 0;
	long nerr = 0;
	for (int k = 0; k < E_NKINDS; k++)
		nerr += errs[k];

	printf("{\"requests\":%ld,\"errors\":%ld,\"duration_us\":%.0f,"
	       "\"rps\":%.1f,\"bytes\":%llu,\"handshakes\":%ld,"
	       "\"p50\":%u,\"p99\":%u,\"mean\":%.1f",
	       done, nerr, elapsed * 1e6, elapsed > 0 ? done / elapsed : 0.0,
	       bytes, hs, p50, p99, nlat ? sum / nlat : 0.0);
	for (int k = 0; k < E_NKINDS; k++)
		printf(",\"err_%s\":%ld", err_names[k], errs[k]);
	printf(",\"first_error\":\"");
	for (const char *p = first_err; *p; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7f)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	printf("\"}\n");
	fflush(stdout);
	return 0;
}
