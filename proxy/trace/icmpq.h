/*
 * icmpq: what an ICMP or ICMPv6 error says about the TCP probe it quotes.
 * A router that drops a probe for its TTL (time exceeded) or cannot
 * deliver it (destination unreachable) sends back the probe's IP header
 * and the first bytes of its TCP header; the destination address and the
 * two ports identify the probe. Pure: no sockets, for the unit tests.
 */
#ifndef PEEPHOLE_TRACE_ICMPQ_H
#define PEEPHOLE_TRACE_ICMPQ_H

#include <stddef.h>
#include <stdint.h>

enum icmpq_kind {
	ICMPQ_TIME_EXCEEDED = 1,
	ICMPQ_UNREACHABLE,
};

/* One ICMP error quoting a TCP segment. */
struct icmpq {
	enum icmpq_kind kind;
	int type, code;        /* as sent */
	int family;            /* AF_INET or AF_INET6 of the quoted packet */
	unsigned char dst[16]; /* quoted destination: 4 or 16 bytes */
	uint16_t sport, dport; /* quoted TCP ports, host order */
	uint32_t seq;          /* quoted TCP sequence number */
};

/*
 * p is what a raw AF_INET IPPROTO_ICMP socket reads: the IPv4 header, then
 * the ICMP message. 0 with q filled when it is a time exceeded or
 * destination unreachable quoting a TCP segment, else -1.
 */
int icmpq_parse4(const unsigned char *p, size_t len, struct icmpq *q)
    __attribute__((warn_unused_result));

/*
 * p is what a raw AF_INET6 IPPROTO_ICMPV6 socket reads: the ICMPv6
 * message (no IPv6 header). The same answer as icmpq_parse4; extension
 * headers in the quoted packet are skipped (hop-by-hop, routing,
 * destination options).
 */
int icmpq_parse6(const unsigned char *p, size_t len, struct icmpq *q)
    __attribute__((warn_unused_result));

#endif
