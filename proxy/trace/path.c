/*
 * path: see path.h.
 */
#include "proxy/trace/path.h"

#include <stdio.h>
#include <string.h>

static const char *const path_kind_names[] = {
    [PATH_PENDING] = "pending",
    [PATH_TIME_EXCEEDED] = "time-exceeded",
    [PATH_SYN_ACK] = "syn-ack",
    [PATH_RST] = "rst",
    [PATH_UNREACHABLE] = "unreachable",
    [PATH_TIMEOUT] = "timeout",
};

#define PATH_NKINDS (sizeof(path_kind_names) / sizeof(path_kind_names[0]))

static int
path_clamp(int v, int max)
{
	return v < 1 ? 1 : v > max ? max : v;
}

void
path_init(struct path *p, int max_hops, int nprobes)
{
	memset(p, 0, sizeof(*p));
	p->max_hops = path_clamp(max_hops, PATH_MAX_HOPS);
	p->nprobes = path_clamp(nprobes, PATH_MAX_PROBES);
}

static int
path_ends(enum path_kind kind)
{
	return kind == PATH_SYN_ACK || kind == PATH_RST ||
	    kind == PATH_UNREACHABLE;
}

int
path_record(struct path *p, int ttl, int probe, enum path_kind kind,
    const char *ip, int64_t rtt_us)
{
	struct path_probe *pr;

	if (ttl < 1 || ttl > path_last(p) || probe < 0 || probe >= p->nprobes ||
	    kind == PATH_PENDING)
		return 0;
	pr = &p->probes[ttl - 1][probe];
	if (pr->kind != PATH_PENDING)
		return 0;
	pr->kind = kind;
	snprintf(pr->ip, sizeof(pr->ip), "%s",
	    kind == PATH_TIMEOUT || ip == NULL ? "" : ip);
	pr->rtt_us = kind == PATH_TIMEOUT ? -1 : rtt_us;
	if (path_ends(kind) && (p->end_ttl == 0 || ttl < p->end_ttl))
		p->end_ttl = ttl;
	return 1;
}

int
path_last(const struct path *p)
{
	return p->end_ttl > 0 ? p->end_ttl : p->max_hops;
}

int
path_hop_done(const struct path *p, int ttl)
{
	int i;

	if (ttl < 1 || ttl > p->max_hops)
		return 0;
	for (i = 0; i < p->nprobes; i++)
		if (p->probes[ttl - 1][i].kind == PATH_PENDING)
			return 0;
	return 1;
}

int
path_hop_any(const struct path *p, int ttl)
{
	int i;

	if (ttl < 1 || ttl > p->max_hops)
		return 0;
	for (i = 0; i < p->nprobes; i++)
		if (p->probes[ttl - 1][i].kind != PATH_PENDING)
			return 1;
	return 0;
}

int
path_done(const struct path *p)
{
	int ttl;

	for (ttl = 1; ttl <= path_last(p); ttl++)
		if (!path_hop_done(p, ttl))
			return 0;
	return 1;
}

int
path_reached(const struct path *p)
{
	int i;

	if (p->end_ttl == 0)
		return 0;
	for (i = 0; i < p->nprobes; i++) {
		enum path_kind k = p->probes[p->end_ttl - 1][i].kind;

		if (k == PATH_SYN_ACK || k == PATH_RST)
			return 1;
	}
	return 0;
}

int
path_hops(const struct path *p)
{
	int ttl, i;

	if (p->end_ttl > 0)
		return p->end_ttl;
	for (ttl = p->max_hops; ttl > 1; ttl--)
		for (i = 0; i < p->nprobes; i++)
			if (p->probes[ttl - 1][i].kind != PATH_PENDING)
				return ttl;
	return 1;
}

void
path_format_end(
    const struct path *p, const char *ip, int port, char *buf, size_t len)
{
	int n = path_hops(p);
	char ep[PATH_IP_LEN + 16];

	snprintf(ep, sizeof(ep), "%s port %d", ip, port);
	if (path_reached(p))
		snprintf(buf, len, "reached %s in %d hop%s", ep, n,
		    n == 1 ? "" : "s");
	else if (p->end_ttl > 0)
		snprintf(buf, len, "%s unreachable (hop %d said so)", ep, n);
	else
		snprintf(buf, len, "%s not reached in %d hop%s", ep, n,
		    n == 1 ? "" : "s");
}

const char *
path_kind_name(enum path_kind k)
{
	if ((size_t)k >= PATH_NKINDS)
		return "pending";
	return path_kind_names[k];
}

enum path_kind
path_kind_parse(const char *name)
{
	size_t i;

	for (i = 0; name != NULL && i < PATH_NKINDS; i++)
		if (strcmp(name, path_kind_names[i]) == 0)
			return (enum path_kind)i;
	return PATH_PENDING;
}

/* Append to buf at *off, never past len. */
static void
path_put(char *buf, size_t len, size_t *off, const char *s)
{
	size_t n = strlen(s);

	if (*off >= len)
		return;
	if (n > len - *off - 1)
		n = len - *off - 1;
	memcpy(buf + *off, s, n);
	*off += n;
	buf[*off] = '\0';
}

/* The probes that address ip answered, from probe `from` on: their round
 * trips, the answer kind, then the label. Marks them in seen. */
static void
path_format_addr(const struct path_probe *probes, int nprobes, int from,
    int *seen, path_label_fn label, void *ctx, char *buf, size_t len,
    size_t *off)
{
	const char *ip = probes[from].ip;
	enum path_kind kind = PATH_TIME_EXCEEDED;
	char tmp[160];
	int i;

	path_put(buf, len, off, "  ");
	path_put(buf, len, off, ip);
	for (i = from; i < nprobes; i++) {
		if (seen[i] || probes[i].kind == PATH_TIMEOUT ||
		    probes[i].kind == PATH_PENDING ||
		    strcmp(probes[i].ip, ip) != 0)
			continue;
		seen[i] = 1;
		snprintf(tmp, sizeof(tmp), "  %.3f ms",
		    (double)probes[i].rtt_us / 1000.0);
		path_put(buf, len, off, tmp);
		if (probes[i].kind != PATH_TIME_EXCEEDED)
			kind = probes[i].kind;
	}
	if (kind != PATH_TIME_EXCEEDED) {
		snprintf(tmp, sizeof(tmp), "  [%s]", path_kind_name(kind));
		path_put(buf, len, off, tmp);
	}
	tmp[0] = '\0';
	if (label != NULL)
		label(ctx, ip, tmp, sizeof(tmp));
	if (tmp[0] != '\0') {
		path_put(buf, len, off, "  ");
		path_put(buf, len, off, tmp);
	}
}

void
path_format_hop(int ttl, const struct path_probe *probes, int nprobes,
    path_label_fn label, void *ctx, char *buf, size_t len)
{
	int seen[PATH_MAX_PROBES] = {0};
	char num[16];
	size_t off = 0;
	int i;

	if (len == 0)
		return;
	buf[0] = '\0';
	if (nprobes > PATH_MAX_PROBES)
		nprobes = PATH_MAX_PROBES;
	snprintf(num, sizeof(num), "%2d", ttl);
	path_put(buf, len, &off, num);
	for (i = 0; i < nprobes; i++) {
		if (seen[i])
			continue;
		if (probes[i].kind == PATH_TIMEOUT ||
		    probes[i].kind == PATH_PENDING) {
			path_put(buf, len, &off, "  *");
			seen[i] = 1;
			continue;
		}
		path_format_addr(
		    probes, nprobes, i, seen, label, ctx, buf, len, &off);
	}
}
