/*
 * resolve_compare_dns: the queries of `peephole resolve-compare` — A and
 * AAAA for each name against each resolver, on one libevent loop with one
 * evdns base per resolver (evdns gives the TTL with the answer, which
 * getaddrinfo would not). At most --concurrency queries are in flight;
 * each is bounded by evdns' timeout and attempts, the run by a deadline
 * derived from them.
 */
#include "proxy/cli/resolve_compare.h"

#include <arpa/inet.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

/* The state of one run; lives on rc_dns_run's stack. */
struct rcq_run {
	struct event_base *base;
	struct evdns_base *dns[RC_MAX_RESOLVERS];
	const char *const *names;
	struct rc_query *q;
	size_t nq, next, done;
	int inflight, concurrency, progress, stopping;
	/* per resolver: answers of any kind, timeouts since the last one */
	unsigned answered[RC_MAX_RESOLVERS], timeouts[RC_MAX_RESOLVERS];
	int64_t last_progress_us;
};

/* The closure of one query in flight. */
struct rcq_job {
	struct rcq_run *run;
	struct rc_query *q;
};

static int64_t
rcq_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

const char *
rc_status(int result)
{
	switch (result) {
	case DNS_ERR_NONE:
		return "ok";
	case DNS_ERR_NOTEXIST:
		return "nxdomain";
	case DNS_ERR_SERVERFAILED:
		return "servfail";
	case DNS_ERR_TIMEOUT:
	case DNS_ERR_CANCEL:
		return "timeout";
	case DNS_ERR_REFUSED:
		return "refused";
	case DNS_ERR_NODATA:
		return "nodata";
	case DNS_ERR_FORMAT:
		return "error: format";
	case DNS_ERR_NOTIMPL:
		return "error: not implemented";
	case DNS_ERR_TRUNCATED:
		return "error: truncated";
	case DNS_ERR_SHUTDOWN:
		return "error: shutdown";
	case RC_ERR_UNREACHABLE:
		return "error: not asked (unreachable)";
	default:
		return "error: unknown";
	}
}

int
rc_resolver_parse(const char *s, struct rc_resolver *r)
{
	struct sockaddr_storage ss;
	int sslen = (int)sizeof(ss);
	char ip[RC_ADDRLEN];

	memset(r, 0, sizeof(*r));
	memset(&ss, 0, sizeof(ss));
	if (strlen(s) >= sizeof(r->name) ||
	    evutil_parse_sockaddr_port(s, (struct sockaddr *)&ss, &sslen) != 0)
		return -1;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
		snprintf(r->name, sizeof(r->name), "%s:%u", ip,
		    sin->sin_port ? ntohs(sin->sin_port) : 53);
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
		snprintf(r->name, sizeof(r->name), "[%s]:%u", ip,
		    sin6->sin6_port ? ntohs(sin6->sin6_port) : 53);
	} else
		return -1;
	return 0;
}

/* "resolving N/M" on stderr, a few times a second at most. */
static void
rcq_progress(struct rcq_run *run, int last)
{
	int64_t now = rcq_now_us();

	if (!run->progress)
		return;
	if (last) {
		fprintf(stderr, "\r\033[K");
		return;
	}
	if (now - run->last_progress_us < 100000)
		return;
	run->last_progress_us = now;
	fprintf(stderr, "\rresolving %zu/%zu …", run->done, run->nq);
}

static void rcq_pump(struct rcq_run *run);

/* evdns' own messages ("Nameserver ... has failed") are what the
 * statuses already say, per query: keep them off the terminal. */
static void
rcq_log_quiet(int severity, const char *msg)
{
	(void)severity;
	(void)msg;
}

/* evdns' answer to one query (on the loop): keep it, send the next. */
static void
rcq_cb(int result, char type, int count, int ttl, void *addresses, void *arg)
{
	struct rcq_job *job = arg;
	struct rcq_run *run = job->run;
	struct rc_query *q = job->q;

	free(job);
	q->done = 1;
	/* past the deadline evdns_base_free fails what is left */
	q->result = run->stopping ? DNS_ERR_TIMEOUT : result;
	q->t_us = rcq_now_us();
	if (q->result == DNS_ERR_NONE) {
		q->ttl = ttl;
		for (int i = 0; i < count && q->nips < RC_MAX_IPS; i++) {
			const void *a = type == DNS_IPv4_A
			    ? (const void *)((const uint32_t *)addresses + i)
			    : (const void *)((const struct in6_addr *)
						 addresses +
				  i);

			if (inet_ntop(type == DNS_IPv4_A ? AF_INET : AF_INET6,
				a, q->ips[q->nips], RC_ADDRLEN) != NULL)
				q->nips++;
		}
		if (q->nips == 0)
			q->result = DNS_ERR_NODATA;
	}
	if (q->result == DNS_ERR_TIMEOUT)
		run->timeouts[q->resolver]++;
	else {
		run->answered[q->resolver]++;
		run->timeouts[q->resolver] = 0;
	}
	run->inflight--;
	run->done++;
	if (run->stopping)
		return;
	rcq_progress(run, 0);
	rcq_pump(run);
}

/* Whether the resolver of q has never answered and let RC_GIVE_UP
 * queries time out: the rest are not sent (a resolver blocked or down
 * would otherwise cost every query its whole timeout). */
static int
rcq_given_up(const struct rcq_run *run, const struct rc_query *q)
{
	return run->answered[q->resolver] == 0 &&
	    run->timeouts[q->resolver] >= RC_GIVE_UP;
}

/* Record q as finished without a callback: not sent (result). */
static void
rcq_unsent(struct rcq_run *run, struct rc_query *q, int result)
{
	q->done = 1;
	q->result = result;
	q->t_us = rcq_now_us();
	run->done++;
}

/* Send queries until o->concurrency are in flight; break the loop once
 * every query has its answer. */
static void
rcq_pump(struct rcq_run *run)
{
	while (run->inflight < run->concurrency && run->next < run->nq) {
		struct rc_query *q = &run->q[run->next++];
		struct evdns_base *dns = run->dns[q->resolver];
		const char *name = run->names[q->domain];
		struct rcq_job *job;
		struct evdns_request *req;

		if (rcq_given_up(run, q)) {
			rcq_unsent(run, q, RC_ERR_UNREACHABLE);
			continue;
		}
		if ((job = malloc(sizeof(*job))) == NULL) {
			rcq_unsent(run, q, DNS_ERR_UNKNOWN);
			continue;
		}
		job->run = run;
		job->q = q;
		run->inflight++;
		req = q->aaaa ? evdns_base_resolve_ipv6(
				    dns, name, DNS_QUERY_NO_SEARCH, rcq_cb, job)
			      : evdns_base_resolve_ipv4(dns, name,
				    DNS_QUERY_NO_SEARCH, rcq_cb, job);
		if (req == NULL && !q->done) {
			/* not sent, so no callback will come */
			run->inflight--;
			free(job);
			rcq_unsent(run, q, DNS_ERR_UNKNOWN);
		}
	}
	if (run->done == run->nq)
		event_base_loopbreak(run->base);
}

/* An evdns base for r: its nameserver, our timeout and attempts, no
 * search list, no hosts file, case kept (as dig asks). NULL after a
 * message. */
static struct evdns_base *
rcq_dns_new(struct event_base *base, const struct rc_resolver *r,
    const struct rc_dns_opts *o)
{
	struct evdns_base *dns;
	char tmo[16], att[16], inflight[16];

	if ((dns = evdns_base_new(base, 0)) == NULL) {
		fprintf(stderr, "peephole %s: out of memory\n", RC_CMD);
		return NULL;
	}
	if (r->system) {
		if (evdns_base_resolv_conf_parse(dns,
			DNS_OPTION_NAMESERVERS | DNS_OPTION_MISC,
			"/etc/resolv.conf") != 0)
			fprintf(stderr,
			    "peephole %s: /etc/resolv.conf unusable; the "
			    "system resolver is asked at 127.0.0.1\n",
			    RC_CMD);
	} else if (evdns_base_nameserver_ip_add(dns, r->name) != 0) {
		fprintf(stderr, "peephole %s: resolver %s: not usable\n",
		    RC_CMD, r->name);
		evdns_base_free(dns, 0);
		return NULL;
	}
	snprintf(tmo, sizeof(tmo), "%d", o->timeout_s);
	snprintf(att, sizeof(att), "%d", o->attempts);
	/* evdns holds back what passes its own cap (64) untimed: let ours
	 * be the only one */
	snprintf(inflight, sizeof(inflight), "%d", o->concurrency);
	if (evdns_base_set_option(dns, "timeout:", tmo) != 0 ||
	    evdns_base_set_option(dns, "attempts:", att) != 0 ||
	    evdns_base_set_option(dns, "max-inflight:", inflight) != 0 ||
	    evdns_base_set_option(dns, "randomize-case:", "0") != 0) {
		fprintf(stderr, "peephole %s: cannot set resolver options\n",
		    RC_CMD);
		evdns_base_free(dns, 0);
		return NULL;
	}
	return dns;
}

/* The run's deadline: every round of queries could take every attempt,
 * plus slack; evdns' own timeouts end each query well before. */
static struct timeval
rcq_deadline(size_t nq, const struct rc_dns_opts *o)
{
	size_t rounds =
	    (nq + (size_t)o->concurrency - 1) / (size_t)o->concurrency;
	struct timeval tv = {0, 0};

	tv.tv_sec = (time_t)((rounds + 1) * (size_t)o->timeout_s *
		((size_t)o->attempts + 1) +
	    5);
	return tv;
}

int
rc_dns_run(const char *const *names, const struct rc_resolver *res, size_t nres,
    struct rc_query *q, size_t nq, const struct rc_dns_opts *o)
{
	struct rcq_run run;
	struct timeval dl;
	int rc = -1;

	memset(&run, 0, sizeof(run));
	evdns_set_log_fn(rcq_log_quiet);
	run.names = names;
	run.q = q;
	run.nq = nq;
	run.concurrency = o->concurrency;
	run.progress = o->progress;
	if (nres > RC_MAX_RESOLVERS || (run.base = event_base_new()) == NULL) {
		fprintf(stderr, "peephole %s: cannot start the event loop\n",
		    RC_CMD);
		return -1;
	}
	for (size_t i = 0; i < nres; i++)
		if ((run.dns[i] = rcq_dns_new(run.base, &res[i], o)) == NULL)
			goto fail;
	if (nq > 0) {
		dl = rcq_deadline(nq, o);
		event_base_loopexit(run.base, &dl);
		rcq_pump(&run);
		if (run.done < run.nq)
			event_base_dispatch(run.base);
	}
	rcq_progress(&run, 1);
	rc = 0;
fail:
	/* Whatever is still in flight past the deadline is dropped here: its
	 * callback comes with DNS_ERR_SHUTDOWN and is not pumped further. */
	run.stopping = 1;
	for (size_t i = 0; i < nres; i++)
		if (run.dns[i] != NULL)
			evdns_base_free(run.dns[i], 1);
	if (run.done < run.nq)
		event_base_loop(run.base, EVLOOP_NONBLOCK);
	for (size_t i = 0; i < nq; i++)
		if (!q[i].done) {
			q[i].done = 1;
			q[i].result = DNS_ERR_TIMEOUT;
			q[i].t_us = rcq_now_us();
		}
	event_base_free(run.base);
	return rc;
}
