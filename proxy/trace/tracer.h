/*
 * tracer: a TCP traceroute on one libevent loop. Each probe is a
 * non-blocking TCP socket with its TTL (hop limit) set, connecting to the
 * endpoint's real port, so the kernel sends the SYN and completes or
 * refuses the handshake; routers' ICMP time exceeded and destination
 * unreachable errors are read on a raw ICMP / ICMPv6 socket (hence
 * CAP_NET_RAW) and matched to the probe by the quoted destination and
 * ports. The source port of each probe is bound explicitly, so the kernel
 * keeps it for the probe while the trace runs and a late ICMP error cannot
 * be taken for a later probe's.
 */
#ifndef PEEPHOLE_TRACE_TRACER_H
#define PEEPHOLE_TRACE_TRACER_H

#include <stddef.h>
#include <sys/socket.h>

#include "proxy/trace/path.h"

struct tracer;

struct tracer_opts {
	int max_hops;   /* 1..PATH_MAX_HOPS */
	int nprobes;    /* per hop, 1..PATH_MAX_PROBES */
	int rate;       /* probes sent per second at most */
	int timeout_ms; /* a probe unanswered this long is a timeout */
};

/* Called once per hop, in order, as soon as the hop and every hop before
 * it are done: for printing as the trace goes. */
typedef void (*tracer_hop_cb)(const struct path *p, int ttl, void *ctx);

/*
 * The raw sockets and the event base. NULL with a message in err when the
 * IPv4 raw socket cannot be opened; *eperm is then set when the reason is
 * a missing CAP_NET_RAW. Without IPv6 only IPv6 endpoints fail.
 */
struct tracer *tracer_new(char *err, size_t errlen, int *eperm)
    __attribute__((warn_unused_result));
void tracer_free(struct tracer *t);

/*
 * Trace the path to dst (an AF_INET or AF_INET6 address with the port)
 * into p, calling cb (may be NULL) as hops complete. Blocks the caller
 * (it runs the loop) for at most the probes' pacing plus one timeout.
 * 0 when the trace ran (whether or not it reached dst), -1 with a message
 * in err when it could not (no route, no IPv6, out of sockets).
 */
int tracer_run(struct tracer *t, const struct sockaddr *dst, socklen_t dlen,
    const struct tracer_opts *o, struct path *p, tracer_hop_cb cb, void *ctx,
    char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
