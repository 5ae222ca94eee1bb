/*
 * tracer: see tracer.h. One trace at a time: tracer_run sets up the
 * probes, runs the loop until the path is done (or a deadline passes) and
 * tears everything down before it returns.
 */
#include "proxy/trace/tracer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <linux/icmp.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proxy/trace/icmpq.h"

/* Probes in flight at once, whatever the rate. */
#define TRACER_WINDOW 32
/* ICMP errors read per wake-up of a raw socket. */
#define TRACER_READS 64
#define TRACER_PKT 2048

/* One probe: hop ttl, probe idx. */
struct tracer_probe {
	struct tracer *t;
	int fd; /* -1 when closed */
	int ttl, idx;
	uint16_t sport;    /* host order */
	int64_t sent_us;   /* monotonic */
	int answered;      /* recorded in the path */
	struct event *wev; /* the connect's outcome */
	struct event *tmo; /* its timeout */
};

struct tracer {
	struct event_base *base;
	int raw4, raw6; /* -1 when not open */
	struct event *ev4, *ev6;
	/* the trace running */
	struct sockaddr_storage dst;
	socklen_t dlen;
	char dst_ip[PATH_IP_LEN];
	struct tracer_opts o;
	struct path *p;
	tracer_hop_cb cb;
	void *ctx;
	struct tracer_probe probes[PATH_MAX_HOPS * PATH_MAX_PROBES];
	int next;     /* the next probe to send */
	int inflight; /* sent, not answered */
	int emitted;  /* hops handed to cb */
	char *err;    /* tracer_run's; err[0] set when the trace failed */
	size_t errlen;
};

static int64_t
tracer_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int tracer_drain(struct tracer *t, int fd);

static void
tracer_rawcb(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	(void)tracer_drain(arg, fd);
}

/* Let only the errors a probe can cause through to the raw sockets. */
static void
tracer_filters(struct tracer *t)
{
	struct icmp_filter f4;
	struct icmp6_filter f6;

	f4.data = ~((1u << ICMP_TIME_EXCEEDED) | (1u << ICMP_DEST_UNREACH));
	(void)setsockopt(t->raw4, SOL_RAW, ICMP_FILTER, &f4, sizeof(f4));
	if (t->raw6 == -1)
		return;
	ICMP6_FILTER_SETBLOCKALL(&f6);
	ICMP6_FILTER_SETPASS(ICMP6_TIME_EXCEEDED, &f6);
	ICMP6_FILTER_SETPASS(ICMP6_DST_UNREACH, &f6);
	(void)setsockopt(
	    t->raw6, IPPROTO_ICMPV6, ICMP6_FILTER, &f6, sizeof(f6));
}

struct tracer *
tracer_new(char *err, size_t errlen, int *eperm)
{
	struct tracer *t;
	int type = SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC;

	*eperm = 0;
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	t->raw6 = -1;
	if ((t->raw4 = socket(AF_INET, type, IPPROTO_ICMP)) == -1) {
		*eperm = errno == EPERM || errno == EACCES;
		snprintf(err, errlen, "raw ICMP socket: %s", strerror(errno));
		free(t);
		return NULL;
	}
	t->raw6 = socket(AF_INET6, type, IPPROTO_ICMPV6);
	tracer_filters(t);
	if ((t->base = event_base_new()) == NULL ||
	    (t->ev4 = event_new(t->base, t->raw4, EV_READ | EV_PERSIST,
		 tracer_rawcb, t)) == NULL ||
	    event_add(t->ev4, NULL) == -1 ||
	    (t->raw6 != -1 &&
		((t->ev6 = event_new(t->base, t->raw6, EV_READ | EV_PERSIST,
		      tracer_rawcb, t)) == NULL ||
		    event_add(t->ev6, NULL) == -1))) {
		snprintf(err, errlen, "cannot set up the event loop");
		tracer_free(t);
		return NULL;
	}
	return t;
}

void
tracer_free(struct tracer *t)
{
	if (t == NULL)
		return;
	if (t->ev4 != NULL)
		event_free(t->ev4);
	if (t->ev6 != NULL)
		event_free(t->ev6);
	if (t->base != NULL)
		event_base_free(t->base);
	if (t->raw4 != -1)
		close(t->raw4);
	if (t->raw6 != -1)
		close(t->raw6);
	free(t);
}

/* Hand the hops now complete, in order, to the callback; end the loop
 * once the path is done. */
static void
tracer_progress(struct tracer *t)
{
	while (t->emitted < path_last(t->p) &&
	    path_hop_done(t->p, t->emitted + 1)) {
		t->emitted++;
		if (t->cb != NULL)
			t->cb(t->p, t->emitted, t->ctx);
	}
	if (path_done(t->p))
		event_base_loopbreak(t->base);
}

/* Close the probe's socket; with reset, at once with an RST (a handshake
 * the destination completed is not left open, nor in TIME_WAIT). */
static void
tracer_close(struct tracer_probe *pr, int reset)
{
	struct linger l = {1, 0};

	if (pr->fd == -1)
		return;
	if (reset)
		(void)setsockopt(pr->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(pr->fd);
	pr->fd = -1;
}

/* The probe has its answer: record it, stop its events. A probe still
 * connecting is aborted (no SYN retransmits) but keeps its socket, and
 * with it its source port, until the trace ends. */
static void
tracer_answer(struct tracer_probe *pr, enum path_kind kind, const char *ip)
{
	struct tracer *t = pr->t;
	struct sockaddr sa;

	if (pr->answered)
		return;
	pr->answered = 1;
	t->inflight--;
	if (pr->wev != NULL)
		event_del(pr->wev);
	if (pr->tmo != NULL)
		event_del(pr->tmo);
	(void)path_record(
	    t->p, pr->ttl, pr->idx, kind, ip, tracer_now() - pr->sent_us);
	if (kind == PATH_SYN_ACK || kind == PATH_RST)
		tracer_close(pr, 1);
	else if (pr->fd != -1) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_family = AF_UNSPEC;
		(void)connect(pr->fd, &sa, sizeof(sa));
	}
	tracer_progress(t);
}

/* Whether ICMP error q quotes probe pr. */
static int
tracer_matches(const struct tracer *t, const struct tracer_probe *pr,
    const struct icmpq *q)
{
	const void *addr;
	size_t alen;
	uint16_t port;

	if (q->family != t->dst.ss_family || pr->answered || pr->sent_us == 0)
		return 0;
	if (q->family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)&t->dst;

		addr = &s4->sin_addr;
		alen = 4;
		port = ntohs(s4->sin_port);
	} else {
		const struct sockaddr_in6 *s6 = (const void *)&t->dst;

		addr = &s6->sin6_addr;
		alen = 16;
		port = ntohs(s6->sin6_port);
	}
	return q->dport == port && q->sport == pr->sport &&
	    memcmp(q->dst, addr, alen) == 0;
}

/* An ICMP error read from a raw socket, from address from. */
static void
tracer_icmp(struct tracer *t, const struct icmpq *q, const char *from)
{
	int i;

	for (i = 0; i < t->next; i++)
		if (tracer_matches(t, &t->probes[i], q)) {
			tracer_answer(&t->probes[i],
			    q->kind == ICMPQ_TIME_EXCEEDED ? PATH_TIME_EXCEEDED
							   : PATH_UNREACHABLE,
			    from);
			return;
		}
}

/* Read what raw socket fd holds, a bounded number of packets. Returns the
 * packets read. */
static int
tracer_drain(struct tracer *t, int fd)
{
	unsigned char buf[TRACER_PKT];
	struct sockaddr_storage from;
	socklen_t flen;
	char ip[PATH_IP_LEN];
	struct icmpq q;
	ssize_t n;
	int i, rc;

	for (i = 0; i < TRACER_READS; i++) {
		flen = sizeof(from);
		n = recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT,
		    (struct sockaddr *)&from, &flen);
		if (n < 0)
			break;
		if (from.ss_family == AF_INET) {
			rc = icmpq_parse4(buf, (size_t)n, &q);
			inet_ntop(AF_INET,
			    &((struct sockaddr_in *)&from)->sin_addr, ip,
			    sizeof(ip));
		} else {
			rc = icmpq_parse6(buf, (size_t)n, &q);
			inet_ntop(AF_INET6,
			    &((struct sockaddr_in6 *)&from)->sin6_addr, ip,
			    sizeof(ip));
		}
		if (rc == 0 && t->p != NULL)
			tracer_icmp(t, &q, ip);
	}
	return i;
}

/* An ICMP error that ended the connect may be waiting on the raw socket:
 * read it first, so that a router's unreachable is not taken for the
 * destination's RST. */
static void
tracer_drain_family(struct tracer *t)
{
	int fd = t->dst.ss_family == AF_INET ? t->raw4 : t->raw6;

	if (fd != -1)
		(void)tracer_drain(t, fd);
}

static void
tracer_wcb(evutil_socket_t fd, short what, void *arg)
{
	struct tracer_probe *pr = arg;
	struct tracer *t = pr->t;
	socklen_t len = sizeof(int);
	int e = 0;

	(void)what;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) == -1)
		e = errno;
	if (e == 0) {
		tracer_answer(pr, PATH_SYN_ACK, t->dst_ip);
		return;
	}
	tracer_drain_family(t);
	if (!pr->answered && e == ECONNREFUSED)
		tracer_answer(pr, PATH_RST, t->dst_ip);
	/* else the ICMP error was read, or the timeout will tell */
}

static void
tracer_tmocb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	tracer_answer(arg, PATH_TIMEOUT, NULL);
}

/* A non-blocking TCP socket with TTL ttl, bound to a port of its own
 * (returned in *sport). -1 with errno. */
static int
tracer_socket(const struct tracer *t, int ttl, uint16_t *sport)
{
	struct sockaddr_storage a;
	socklen_t alen;
	int fam = t->dst.ss_family, fd, rc, e;

	fd = socket(fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	memset(&a, 0, sizeof(a));
	a.ss_family = (sa_family_t)fam;
	alen = fam == AF_INET ? sizeof(struct sockaddr_in)
			      : sizeof(struct sockaddr_in6);
	if (fam == AF_INET)
		rc = setsockopt(fd, IPPROTO_IP, IP_TTL, &ttl, sizeof(ttl));
	else
		rc = setsockopt(
		    fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &ttl, sizeof(ttl));
	if (rc == -1 || bind(fd, (struct sockaddr *)&a, alen) == -1 ||
	    getsockname(fd, (struct sockaddr *)&a, &alen) == -1) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	*sport = ntohs(fam == AF_INET ? ((struct sockaddr_in *)&a)->sin_port
				      : ((struct sockaddr_in6 *)&a)->sin6_port);
	return fd;
}

/* A probe that could not be sent: no answer to record, not in flight. */
static void
tracer_unsent(struct tracer_probe *pr)
{
	pr->answered = 1;
	pr->t->inflight--;
	tracer_close(pr, 0);
}

/* Send the next probe: its socket connects, the kernel sends the SYN.
 * 0, or -1 with t->err set when no probe can be sent. */
static int
tracer_send(struct tracer *t)
{
	struct tracer_probe *pr = &t->probes[t->next];
	struct timeval tv = {
	    t->o.timeout_ms / 1000, (t->o.timeout_ms % 1000) * 1000};
	int rc;

	memset(pr, 0, sizeof(*pr));
	pr->t = t;
	pr->ttl = t->next / t->p->nprobes + 1;
	pr->idx = t->next % t->p->nprobes;
	if ((pr->fd = tracer_socket(t, pr->ttl, &pr->sport)) == -1) {
		snprintf(
		    t->err, t->errlen, "probe socket: %s", strerror(errno));
		return -1;
	}
	/* counted from here: tracer_finish frees what is set */
	t->next++;
	t->inflight++;
	if ((pr->wev = event_new(t->base, pr->fd, EV_WRITE, tracer_wcb, pr)) ==
		NULL ||
	    (pr->tmo = evtimer_new(t->base, tracer_tmocb, pr)) == NULL) {
		snprintf(t->err, t->errlen, "out of memory");
		tracer_unsent(pr);
		return -1;
	}
	pr->sent_us = tracer_now();
	rc = connect(pr->fd, (struct sockaddr *)&t->dst, t->dlen);
	if (rc == 0)
		tracer_answer(pr, PATH_SYN_ACK, t->dst_ip);
	else if (errno == ECONNREFUSED)
		tracer_answer(pr, PATH_RST, t->dst_ip);
	else if (errno == EINPROGRESS) {
		event_add(pr->wev, NULL);
		event_add(pr->tmo, &tv);
	} else {
		snprintf(t->err, t->errlen, "connect to %s: %s", t->dst_ip,
		    strerror(errno));
		tracer_unsent(pr);
		return -1;
	}
	return 0;
}

/* The pacing timer: one probe per tick while the window has room and
 * hops up to the end are left to probe. */
static void
tracer_pacecb(evutil_socket_t fd, short what, void *arg)
{
	struct tracer *t = arg;
	int total = t->p->max_hops * t->p->nprobes;

	(void)fd;
	(void)what;
	if (t->next >= total || t->next / t->p->nprobes + 1 > path_last(t->p) ||
	    t->inflight >= TRACER_WINDOW)
		return;
	if (tracer_send(t) == -1)
		event_base_loopbreak(t->base);
}

static void
tracer_deadlinecb(evutil_socket_t fd, short what, void *arg)
{
	struct tracer *t = arg;

	(void)fd;
	(void)what;
	event_base_loopbreak(t->base);
}

/* After the loop: what is still unanswered timed out; every socket and
 * event goes. */
static void
tracer_finish(struct tracer *t)
{
	int i;

	for (i = 0; i < t->next; i++)
		if (!t->probes[i].answered)
			tracer_answer(&t->probes[i], PATH_TIMEOUT, NULL);
	for (i = 0; i < t->next; i++) {
		struct tracer_probe *pr = &t->probes[i];

		tracer_close(pr, 1);
		if (pr->wev != NULL)
			event_free(pr->wev);
		if (pr->tmo != NULL)
			event_free(pr->tmo);
		pr->wev = pr->tmo = NULL;
	}
	t->p = NULL;
}

/* Set up the trace to dst. 0 / -1 (in err). */
static int
tracer_start(struct tracer *t, const struct sockaddr *dst, socklen_t dlen,
    const struct tracer_opts *o, struct path *p)
{
	const void *a;

	if (dlen > sizeof(t->dst) ||
	    (dst->sa_family != AF_INET && dst->sa_family != AF_INET6)) {
		snprintf(t->err, t->errlen, "not an IP address");
		return -1;
	}
	if (dst->sa_family == AF_INET6 && t->raw6 == -1) {
		snprintf(t->err, t->errlen, "no raw ICMPv6 socket (IPv6 off?)");
		return -1;
	}
	memset(&t->dst, 0, sizeof(t->dst));
	memcpy(&t->dst, dst, dlen);
	t->dlen = dlen;
	a = dst->sa_family == AF_INET
	    ? (const void *)&((const struct sockaddr_in *)dst)->sin_addr
	    : (const void *)&((const struct sockaddr_in6 *)dst)->sin6_addr;
	inet_ntop(dst->sa_family, a, t->dst_ip, sizeof(t->dst_ip));
	t->o = *o;
	if (t->o.rate < 1)
		t->o.rate = 1;
	if (t->o.timeout_ms < 1)
		t->o.timeout_ms = 1;
	path_init(p, o->max_hops, o->nprobes);
	t->p = p;
	t->next = t->inflight = t->emitted = 0;
	return 0;
}

int
tracer_run(struct tracer *t, const struct sockaddr *dst, socklen_t dlen,
    const struct tracer_opts *o, struct path *p, tracer_hop_cb cb, void *ctx,
    char *err, size_t errlen)
{
	struct event *pace = NULL, *deadline = NULL;
	struct timeval tick, end;
	int64_t total_ms;

	err[0] = '\0';
	t->err = err;
	t->errlen = errlen;
	t->cb = cb;
	t->ctx = ctx;
	if (tracer_start(t, dst, dlen, o, p) == -1)
		return -1;
	tick.tv_sec = 0;
	tick.tv_usec = 1000000 / t->o.rate;
	if (t->o.rate == 1)
		tick.tv_sec = 1, tick.tv_usec = 0;
	total_ms = (int64_t)p->max_hops * p->nprobes * 1000 / t->o.rate +
	    t->o.timeout_ms + 1000;
	end.tv_sec = (time_t)(total_ms / 1000);
	end.tv_usec = (suseconds_t)(total_ms % 1000) * 1000;
	if ((pace = event_new(t->base, -1, EV_PERSIST, tracer_pacecb, t)) ==
		NULL ||
	    (deadline = evtimer_new(t->base, tracer_deadlinecb, t)) == NULL ||
	    event_add(pace, &tick) == -1 || event_add(deadline, &end) == -1)
		snprintf(err, errlen, "cannot set up the event loop");
	else {
		tracer_pacecb(-1, 0, t);
		if (err[0] == '\0' && !path_done(p))
			event_base_dispatch(t->base);
	}
	if (pace != NULL)
		event_free(pace);
	if (deadline != NULL)
		event_free(deadline);
	tracer_finish(t);
	return err[0] != '\0' ? -1 : 0;
}
