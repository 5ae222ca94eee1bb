/*
 * icmpq: see icmpq.h. Every length is checked before it is read: the
 * packets come from the network.
 */
#include "proxy/trace/icmpq.h"

#include <string.h>
#include <sys/socket.h>

#define ICMPQ_TCP 6
#define ICMPQ_V4_TIME_EXCEEDED 11
#define ICMPQ_V4_UNREACH 3
#define ICMPQ_V6_TIME_EXCEEDED 3
#define ICMPQ_V6_UNREACH 1
/* ICMP header: type, code, checksum, 4 bytes unused (or MTU) */
#define ICMPQ_HDR 8
/* The quoted TCP bytes read: ports and sequence number. */
#define ICMPQ_TCP_MIN 8
#define ICMPQ_IP6_HDR 40

static uint16_t
icmpq_u16(const unsigned char *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t
icmpq_u32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

/* Ports and sequence number from the quoted TCP header at p. 0 / -1. */
static int
icmpq_tcp(const unsigned char *p, size_t len, struct icmpq *q)
{
	if (len < ICMPQ_TCP_MIN)
		return -1;
	q->sport = icmpq_u16(p);
	q->dport = icmpq_u16(p + 2);
	q->seq = icmpq_u32(p + 4);
	return 0;
}

int
icmpq_parse4(const unsigned char *p, size_t len, struct icmpq *q)
{
	size_t ihl, qihl;
	const unsigned char *in;

	memset(q, 0, sizeof(*q));
	if (len < 20 || (p[0] >> 4) != 4 ||
	    (ihl = (size_t)(p[0] & 0x0f) * 4) < 20 || len < ihl + ICMPQ_HDR)
		return -1;
	q->type = p[ihl];
	q->code = p[ihl + 1];
	if (q->type == ICMPQ_V4_TIME_EXCEEDED)
		q->kind = ICMPQ_TIME_EXCEEDED;
	else if (q->type == ICMPQ_V4_UNREACH)
		q->kind = ICMPQ_UNREACHABLE;
	else
		return -1;
	in = p + ihl + ICMPQ_HDR;
	len -= ihl + ICMPQ_HDR;
	if (len < 20 || (in[0] >> 4) != 4 ||
	    (qihl = (size_t)(in[0] & 0x0f) * 4) < 20 || len < qihl ||
	    in[9] != ICMPQ_TCP)
		return -1;
	q->family = AF_INET;
	memcpy(q->dst, in + 16, 4);
	return icmpq_tcp(in + qihl, len - qihl, q);
}

/* Whether nh is an IPv6 extension header icmpq_parse6 steps over. */
static int
icmpq_ext6(int nh)
{
	return nh == 0 || nh == 43 || nh == 60;
}

int
icmpq_parse6(const unsigned char *p, size_t len, struct icmpq *q)
{
	const unsigned char *in;
	size_t off, ext;
	int nh, i;

	memset(q, 0, sizeof(*q));
	if (len < ICMPQ_HDR)
		return -1;
	q->type = p[0];
	q->code = p[1];
	if (q->type == ICMPQ_V6_TIME_EXCEEDED)
		q->kind = ICMPQ_TIME_EXCEEDED;
	else if (q->type == ICMPQ_V6_UNREACH)
		q->kind = ICMPQ_UNREACHABLE;
	else
		return -1;
	in = p + ICMPQ_HDR;
	len -= ICMPQ_HDR;
	if (len < ICMPQ_IP6_HDR || (in[0] >> 4) != 6)
		return -1;
	nh = in[6];
	off = ICMPQ_IP6_HDR;
	/* A few extension headers at most: the loop is bounded. */
	for (i = 0; i < 4 && icmpq_ext6(nh); i++) {
		if (len < off + 8)
			return -1;
		ext = ((size_t)in[off + 1] + 1) * 8;
		nh = in[off];
		off += ext;
	}
	if (nh != ICMPQ_TCP || len < off)
		return -1;
	q->family = AF_INET6;
	memcpy(q->dst, in + 24, 16);
	return icmpq_tcp(in + off, len - off, q);
}
