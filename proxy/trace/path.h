/*
 * path: the bookkeeping of one traceroute — which probe of which hop got
 * which answer, when the destination answered (so no further hop
 * matters), when a hop and the whole trace are complete — and the
 * traceroute-style line of one hop. Pure: no sockets, no clock.
 */
#ifndef PEEPHOLE_TRACE_PATH_H
#define PEEPHOLE_TRACE_PATH_H

#include <stddef.h>
#include <stdint.h>

/* Bounds of --max-hops and --probes. */
#define PATH_MAX_HOPS 64
#define PATH_MAX_PROBES 5
/* Room for an IPv6 address in text (INET6_ADDRSTRLEN). */
#define PATH_IP_LEN 46

enum path_kind {
	PATH_PENDING = 0, /* not sent, or no answer yet */
	PATH_TIME_EXCEEDED,
	PATH_SYN_ACK,
	PATH_RST,
	PATH_UNREACHABLE,
	PATH_TIMEOUT,
};

/* What one probe got. */
struct path_probe {
	enum path_kind kind;
	char ip[PATH_IP_LEN]; /* who answered; "" for a timeout */
	int64_t rtt_us;       /* -1 for a timeout */
};

struct path {
	int max_hops, nprobes;
	int end_ttl; /* the hop that ended the trace (syn-ack, rst,
			unreachable), 0 while none did */
	struct path_probe probes[PATH_MAX_HOPS][PATH_MAX_PROBES];
};

/* An empty path for max_hops hops of nprobes probes (clamped to the
 * bounds above and at least 1). */
void path_init(struct path *p, int max_hops, int nprobes);

/*
 * Record the answer to probe (0-based) of hop ttl (1-based). Answers to
 * hops after the end are dropped, and so is a second answer to a probe.
 * A syn-ack, rst or unreachable ends the trace at ttl, or earlier if an
 * earlier hop ends it too. 1 when recorded, 0 when dropped.
 */
int path_record(struct path *p, int ttl, int probe, enum path_kind kind,
    const char *ip, int64_t rtt_us);

/* The last hop that matters: end_ttl, or max_hops while none ended it. */
int path_last(const struct path *p);

/* Whether every probe of hop ttl has its answer (a timeout counts). */
int path_hop_done(const struct path *p, int ttl);

/* Whether any probe of hop ttl has its answer (a stored trace holds the
 * probes that were sent). */
int path_hop_any(const struct path *p, int ttl);

/* Whether every hop up to path_last is done. */
int path_done(const struct path *p);

/* Whether the destination itself answered (syn-ack or rst). */
int path_reached(const struct path *p);

/* The hops a trace covered: where it ended, else the last hop that was
 * sent a probe (a trace cut short stops early), at least 1. */
int path_hops(const struct path *p);

/*
 * How the trace ended, for the line after the hops: "reached IP port P in
 * N hops", "IP port P unreachable (hop N said so)" or "IP port P not
 * reached in N hops". Into buf (len bytes).
 */
void path_format_end(
    const struct path *p, const char *ip, int port, char *buf, size_t len);

/* "time-exceeded", "syn-ack", "rst", "unreachable", "timeout", "pending" */
const char *path_kind_name(enum path_kind k);
/* The kind for one of those names; PATH_PENDING when unknown. */
enum path_kind path_kind_parse(const char *name);

/* What to print after an address: its country and AS, or its scope
 * ("private"); "" when unknown. buf has len bytes. */
typedef void (*path_label_fn)(void *ctx, const char *ip, char *buf, size_t len);

/*
 * The line of hop ttl, as traceroute prints it: the hop number, then each
 * answering address once, followed by the round trips of its probes in
 * ms, the answer when it is not a time exceeded ("[syn-ack]") and the
 * label; "*" for a probe that timed out. label may be NULL. Into buf (len
 * bytes), cut if it does not fit; no newline.
 */
void path_format_hop(int ttl, const struct path_probe *probes, int nprobes,
    path_label_fn label, void *ctx, char *buf, size_t len);

#endif
