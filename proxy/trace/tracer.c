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
#include <netinet/tcp.h>
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
/*
 * One SYN per probe. The kernel resends an unanswered SYN when its initial
 * RTO (TCP_TIMEOUT_INIT, 1 s) runs out, and an answer to the resend would
 * be timed from the first send (a 0.1 ms hop shown as 1025 ms) and each
 * silent probe would cost 2 or 3 SYNs, above --rate. Neither socket option
 * stops the first resend: TCP_SYNCNT's least value is 1 (one resend), and
 * TCP_USER_TIMEOUT is checked only when the retransmission timer fires,
 * where the kernel counts it from the first resend on. So a probe still
 * connecting this long after its SYN is aborted (connect(AF_UNSPEC): the
 * timer stops, nothing more is sent) and then waits, until its timeout,
 * for a router's ICMP error only; a destination's SYN-ACK or RST later
 * than this shows as a timeout. (Sending SYNs on a raw socket would lift
 * that limit, at the cost of building TCP/IP headers, reading answers on a
 * raw TCP socket and the kernel's RSTs to them: not worth it for a
 * traceroute.) Should the loop be so late that the kernel resent all the
 * same, TCP_INFO says so and the probe's answer counts as a timeout: a
 * round trip never includes a retransmission.
 */
#define TRACER_SYN_MS 900
/* Source ports are chosen here, from this range, and bound explicitly: the
 * kernel keeps an explicitly bound port while the socket is open, also
 * after an ICMP error or connect(AF_UNSPEC) aborted it (a port it picked
 * for bind(0) it frees then, and hands to the next probe). */
#define TRACER_PORT_LO 33000
#define TRACER_PORT_N 28000
#define TRACER_BIND_TRIES 64

/* One probe: hop ttl, probe idx. */
struct tracer_probe {
	struct tracer *t;
	int fd; /* -1 when closed */
	int ttl, idx;
	uint16_t sport;    /* host order */
	int64_t sent_us;   /* monotonic */
	int64_t sent_rt;   /* realtime, for the raw sockets' timestamps */
	int answered;      /* recorded in the path */
	int aborted;       /* connect(AF_UNSPEC) done: waits for ICMP only */
	int resent;        /* the kernel resent the SYN: no round trip */
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
	int next;           /* the next probe to send */
	int inflight;       /* sent, not answered */
	int emitted;        /* hops handed to cb */
	unsigned port_next; /* the next source port to try, as an offset */
	char *err;          /* tracer_run's; err[0] set when the trace failed */
	size_t errlen;
};

static int64_t
tracer_clock(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t
tracer_now(void)
{
	return tracer_clock(CLOCK_MONOTONIC);
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
	int on = 1;

	f4.data = ~((1u << ICMP_TIME_EXCEEDED) | (1u << ICMP_DEST_UNREACH));
	(void)setsockopt(t->raw4, SOL_RAW, ICMP_FILTER, &f4, sizeof(f4));
	/* an error's arrival time from the kernel, not from the loop */
	(void)setsockopt(t->raw4, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof(on));
	if (t->raw6 == -1)
		return;
	(void)setsockopt(t->raw6, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof(on));
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
	t->port_next = (unsigned)(getpid() ^ tracer_now()) % TRACER_PORT_N;
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

/* Whether the kernel has sent the probe's SYN more than once. */
static int
tracer_resent(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == -1)
		return 0;
	return ti.tcpi_retransmits > 0 || ti.tcpi_total_retrans > 0;
}

/* Stop the kernel from connecting (and so from resending the SYN); the
 * socket, bound explicitly, keeps its port until the trace ends. */
static void
tracer_abort(struct tracer_probe *pr)
{
	struct sockaddr sa;

	if (pr->fd == -1 || pr->aborted)
		return;
	if (tracer_resent(pr->fd))
		pr->resent = 1;
	pr->aborted = 1;
	memset(&sa, 0, sizeof(sa));
	sa.sa_family = AF_UNSPEC;
	(void)connect(pr->fd, &sa, sizeof(sa));
}

/* The probe has its answer, rtt_us after its SYN (-1: now): record it,
 * stop its events. An answer to a probe whose SYN was resent is recorded
 * as a timeout: its round trip is unknown. A probe still connecting is
 * aborted but keeps its socket until the trace ends. */
static void
tracer_answer(struct tracer_probe *pr, enum path_kind kind, const char *ip,
    int64_t rtt_us)
{
	struct tracer *t = pr->t;

	if (pr->answered)
		return;
	pr->answered = 1;
	t->inflight--;
	if (pr->wev != NULL)
		event_del(pr->wev);
	if (pr->tmo != NULL)
		event_del(pr->tmo);
	if (rtt_us < 0)
		rtt_us = tracer_now() - pr->sent_us;
	if (!pr->aborted && pr->fd != -1 && tracer_resent(pr->fd))
		pr->resent = 1;
	if (kind == PATH_SYN_ACK || kind == PATH_RST)
		tracer_close(pr, 1);
	else
		tracer_abort(pr);
	if (pr->resent)
		kind = PATH_TIMEOUT, ip = NULL;
	(void)path_record(t->p, pr->ttl, pr->idx, kind, ip, rtt_us);
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

/* An ICMP error read from a raw socket, from address from, that arrived
 * at realtime at_rt (0: unknown). */
static void
tracer_icmp(
    struct tracer *t, const struct icmpq *q, const char *from, int64_t at_rt)
{
	struct tracer_probe *pr;
	int64_t rtt;
	int i;

	for (i = 0; i < t->next; i++) {
		pr = &t->probes[i];
		if (!tracer_matches(t, pr, q))
			continue;
		rtt = at_rt - pr->sent_rt;
		/* a clock step between the two: the loop's time then */
		if (at_rt == 0 || rtt < 0 ||
		    rtt > tracer_now() - pr->sent_us + 1000)
			rtt = -1;
		tracer_answer(pr,
		    q->kind == ICMPQ_TIME_EXCEEDED ? PATH_TIME_EXCEEDED
						   : PATH_UNREACHABLE,
		    from, rtt);
		return;
	}
}

/* The kernel's receive time of message m (SO_TIMESTAMPNS), realtime in
 * microseconds; 0 when it did not say. */
static int64_t
tracer_stamp(struct msghdr *m)
{
	struct cmsghdr *c;
	struct timespec ts;

	for (c = CMSG_FIRSTHDR(m); c != NULL; c = CMSG_NXTHDR(m, c))
		if (c->cmsg_level == SOL_SOCKET &&
		    c->cmsg_type == SCM_TIMESTAMPNS &&
		    c->cmsg_len >= CMSG_LEN(sizeof(ts))) {
			memcpy(&ts, CMSG_DATA(c), sizeof(ts));
			return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
		}
	return 0;
}

/* Read what raw socket fd holds, a bounded number of packets. Returns the
 * packets read. */
static int
tracer_drain(struct tracer *t, int fd)
{
	unsigned char buf[TRACER_PKT];
	union {
		struct cmsghdr h;
		unsigned char b[CMSG_SPACE(sizeof(struct timespec)) + 64];
	} ctl;
	struct sockaddr_storage from;
	struct iovec iov = {buf, sizeof(buf)};
	struct msghdr m;
	char ip[PATH_IP_LEN];
	struct icmpq q;
	ssize_t n;
	int i, rc;

	for (i = 0; i < TRACER_READS; i++) {
		memset(&m, 0, sizeof(m));
		m.msg_name = &from;
		m.msg_namelen = sizeof(from);
		m.msg_iov = &iov;
		m.msg_iovlen = 1;
		m.msg_control = ctl.b;
		m.msg_controllen = sizeof(ctl.b);
		if ((n = recvmsg(fd, &m, MSG_DONTWAIT)) < 0)
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
			tracer_icmp(t, &q, ip, tracer_stamp(&m));
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
		tracer_answer(pr, PATH_SYN_ACK, t->dst_ip, -1);
		return;
	}
	tracer_drain_family(t);
	if (!pr->answered && e == ECONNREFUSED)
		tracer_answer(pr, PATH_RST, t->dst_ip, -1);
	/* else the ICMP error was read, or the timeout will tell */
}

/* The probe's timer: first, TRACER_SYN_MS after the SYN (if the timeout
 * is longer), it stops the kernel's connecting before it resends the SYN
 * and waits on for an ICMP error; then its timeout. */
static void
tracer_tmocb(evutil_socket_t fd, short what, void *arg)
{
	struct tracer_probe *pr = arg;
	int64_t left;
	struct timeval tv;

	(void)fd;
	(void)what;
	left =
	    (int64_t)pr->t->o.timeout_ms * 1000 - (tracer_now() - pr->sent_us);
	if (left <= 0 || pr->aborted || pr->fd == -1) {
		tracer_answer(pr, PATH_TIMEOUT, NULL, -1);
		return;
	}
	tracer_abort(pr);
	event_del(pr->wev);
	tv.tv_sec = (time_t)(left / 1000000);
	tv.tv_usec = (suseconds_t)(left % 1000000);
	if (event_add(pr->tmo, &tv) == -1)
		tracer_answer(pr, PATH_TIMEOUT, NULL, -1);
}

/* Bind fd to a source port chosen here (in *sport), the next free one of
 * the range: the ports of one tracer do not repeat until the range wraps.
 * 0 / -1 with errno. */
static int
tracer_bind(struct tracer *t, int fd, uint16_t *sport)
{
	struct sockaddr_storage a;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&a;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a;
	socklen_t alen;
	uint16_t port;
	int i;

	memset(&a, 0, sizeof(a));
	a.ss_family = t->dst.ss_family;
	alen = a.ss_family == AF_INET ? sizeof(*s4) : sizeof(*s6);
	for (i = 0; i < TRACER_BIND_TRIES; i++) {
		port = (uint16_t)(TRACER_PORT_LO + t->port_next);
		t->port_next = (t->port_next + 1) % TRACER_PORT_N;
		if (a.ss_family == AF_INET)
			s4->sin_port = htons(port);
		else
			s6->sin6_port = htons(port);
		if (bind(fd, (struct sockaddr *)&a, alen) == 0) {
			*sport = port;
			return 0;
		}
		if (errno != EADDRINUSE)
			return -1;
	}
	return -1;
}

/* A non-blocking TCP socket with TTL ttl, bound to a port of its own
 * (returned in *sport). -1 with errno. */
static int
tracer_socket(struct tracer *t, int ttl, uint16_t *sport)
{
	int fam = t->dst.ss_family, fd, rc, e;

	fd = socket(fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	if (fam == AF_INET)
		rc = setsockopt(fd, IPPROTO_IP, IP_TTL, &ttl, sizeof(ttl));
	else
		rc = setsockopt(
		    fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &ttl, sizeof(ttl));
	if (rc == -1 || tracer_bind(t, fd, sport) == -1) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
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
	int ms =
	    t->o.timeout_ms < TRACER_SYN_MS ? t->o.timeout_ms : TRACER_SYN_MS;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
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
	pr->sent_rt = tracer_clock(CLOCK_REALTIME);
	pr->sent_us = tracer_now();
	rc = connect(pr->fd, (struct sockaddr *)&t->dst, t->dlen);
	if (rc == 0)
		tracer_answer(pr, PATH_SYN_ACK, t->dst_ip, -1);
	else if (errno == ECONNREFUSED)
		tracer_answer(pr, PATH_RST, t->dst_ip, -1);
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

/*
 * How long a trace of total probes may take at most, in ms. Every probe
 * has its own timeout, so this only guards against a broken invariant; it
 * must not cut a trace that runs as designed. Probes go out one per tick
 * of the rate, but only TRACER_WINDOW at a time: probe i waits for probe
 * i - TRACER_WINDOW to end (a timeout at most) and then for a tick, so the
 * last one ends within total ticks plus ceil(total / TRACER_WINDOW) times
 * a timeout and a tick. Twice that, and slack for a busy machine.
 */
static int64_t
tracer_deadline_ms(int total, int rate, int timeout_ms)
{
	int64_t tick = 1000 / rate + 1;
	int64_t rounds = (total + TRACER_WINDOW - 1) / TRACER_WINDOW;

	return 2 * (total * tick + rounds * (timeout_ms + tick)) + 2000;
}

/* The deadline passed: the trace is cut, and says so (an error stored with
 * it), rather than pass for a path that was not reached. */
static void
tracer_deadlinecb(evutil_socket_t fd, short what, void *arg)
{
	struct tracer *t = arg;

	(void)fd;
	(void)what;
	if (!path_done(t->p))
		snprintf(t->err, t->errlen,
		    "cut at hop %d of %d: no end within the deadline",
		    t->emitted + 1, path_last(t->p));
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
			tracer_answer(&t->probes[i], PATH_TIMEOUT, NULL, -1);
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
	total_ms = tracer_deadline_ms(
	    p->max_hops * p->nprobes, t->o.rate, t->o.timeout_ms);
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
