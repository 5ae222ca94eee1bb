/* server: see server.h. Main thread only, but server_is_self. */
#include "proxy/net/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "ca/ca.h"
#include "conf/config.h"
#include "proxy/log.h"
#include "proxy/http/onboard.h"
#include "proxy/net/learned.h"
#include "proxy/net/tls.h"
#include "proxy/net/worker.h"
#include "proxy/store/replaydb.h"
#include "proxy/store/store.h"

struct server_main {
	struct server srv;
	struct event_base *base;
	struct evconnlistener *lev[CONFIG_MAX_LISTEN];
	int nlev;
	int next_worker;
	struct event *sigint_ev, *sigterm_ev;
	int stopping;
};

static void
server_acceptcb(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct server_main *m = arg;
	int idx = 0;

	for (int i = 0; i < m->nlev; i++)
		if (m->lev[i] == lev)
			idx = i;
	struct worker *w = m->srv.workers[m->next_worker];
	m->next_worker = (m->next_worker + 1) % m->srv.nworkers;
	worker_hand_fd(w, fd, sa, (socklen_t)salen, idx);
}

static void
server_accept_errorcb(struct evconnlistener *lev, void *arg)
{
	(void)lev;
	(void)arg;
	/* EMFILE and friends: say so and keep listening */
	log_warn("accept");
}

static void
server_signalcb(evutil_socket_t sig, short what, void *arg)
{
	struct server_main *m = arg;

	(void)what;
	if (m->stopping) {
		log_warnx("second signal: stopping without waiting");
		exit(1);
	}
	m->stopping = 1;
	log_info(
	    "signal %d: stopping; finishing in-flight exchanges", (int)sig);
	for (int i = 0; i < m->nlev; i++) {
		evconnlistener_free(m->lev[i]);
		m->lev[i] = NULL;
	}
	m->nlev = 0;
	for (int i = 0; i < m->srv.nworkers; i++)
		worker_shutdown(m->srv.workers[i]);
	event_base_loopexit(m->base, NULL);
}

/* libevent's own warnings (evdns nameserver failures...) go to our log. */
static void
server_libevent_logcb(int severity, const char *msg)
{
	if (severity >= EVENT_LOG_WARN)
		log_warnx("libevent: %s", msg);
	else
		log_debug("libevent: %s", msg);
}

int
server_is_self(const struct server *srv, const char *host, unsigned port)
{
	const struct config *cfg = srv->cfg;
	struct in6_addr a6;
	struct in_addr a4;
	int loopback = strcmp(host, "localhost") == 0 ||
	    (inet_pton(AF_INET, host, &a4) == 1 &&
		(ntohl(a4.s_addr) >> 24) == 127) ||
	    (inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6));

	for (int i = 0; i < cfg->nlisten; i++) {
		const struct config_listen *l = &cfg->listen[i];
		if (l->port != port)
			continue;
		if (strcmp(l->host, host) == 0 || loopback ||
		    strcmp(l->host, "0.0.0.0") == 0 ||
		    strcmp(l->host, "::") == 0)
			return 1;
	}
	return 0;
}

int
server_is_self_addr(const struct server *srv, const struct sockaddr *sa)
{
	char ip[INET6_ADDRSTRLEN];
	unsigned port;
	const void *src;

	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;
		src = &s6->sin6_addr;
		port = ntohs(s6->sin6_port);
	} else if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)sa;
		src = &s4->sin_addr;
		port = ntohs(s4->sin_port);
	} else
		return 0;
	if (inet_ntop(sa->sa_family, src, ip, sizeof(ip)) == NULL)
		return 0;
	return server_is_self(srv, ip, port);
}

static int
server_listen(struct server_main *m, const struct config_listen *l)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	struct evconnlistener *lev;

	memset(&ss, 0, sizeof(ss));
	if (strchr(l->host, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)l->port);
		if (inet_pton(AF_INET6, l->host, &s6->sin6_addr) != 1)
			return -1;
		sslen = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)l->port);
		if (inet_pton(AF_INET, l->host, &s4->sin_addr) != 1)
			return -1;
		sslen = sizeof(*s4);
	}
	lev = evconnlistener_new_bind(m->base, server_acceptcb, m,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
	    1024, (struct sockaddr *)&ss, (int)sslen);
	if (lev == NULL) {
		log_warn("cannot listen on %s%s%s:%u",
		    strchr(l->host, ':') ? "[" : "", l->host,
		    strchr(l->host, ':') ? "]" : "", l->port);
		return -1;
	}
	evconnlistener_set_error_cb(lev, server_accept_errorcb);
	m->lev[m->nlev++] = lev;
	log_info("listening on %s@%s%s%s:%u",
	    l->mode == CONFIG_LISTEN_SOCKS5            ? "socks5"
		: l->mode == CONFIG_LISTEN_TRANSPARENT ? "transparent"
		: l->mode == CONFIG_LISTEN_REVERSE     ? "reverse"
						       : "http",
	    strchr(l->host, ':') ? "[" : "", l->host,
	    strchr(l->host, ':') ? "]" : "", l->port);
	return 0;
}

/* Many connections need many descriptors: raise the soft limit. */
static void
server_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		log_warn("cannot raise the open-file limit");
}

static void
server_learned_cb(const struct store_learned_row *row, void *arg)
{
	if (learned_set(arg, row->host, row->port, row->rejections,
		row->next_retry_us) == -1)
		log_warnx("out of memory loading the learned passthrough list");
}

/*
 * Another process changed the database (`peephole passthrough retry`, say):
 * read the learned table afresh and swap it in whole. Writer thread, the
 * only one that may touch the file.
 */
static void
server_learned_reload(struct store *st, void *arg)
{
	struct learned *fresh = learned_new();

	if (fresh == NULL ||
	    store_load_learned(st, server_learned_cb, fresh) == -1) {
		learned_free(fresh);
		return;
	}
	learned_replace(arg, fresh);
	log_info("learned passthrough list reloaded from the database: %zu "
		 "entr%s",
	    learned_count(arg), learned_count(arg) == 1 ? "y" : "ies");
}

/* Say which CA this run forges with, so a user can compare it with the
 * one their trust store holds. */
static void
server_log_ca(const struct ca *ca)
{
	char sub[256], fp[EVP_MAX_MD_SIZE * 3 + 1];

	X509_NAME_oneline(X509_get_subject_name(ca_cert(ca)), sub, sizeof(sub));
	if (ca_fingerprint(ca, fp, sizeof(fp)) == -1)
		snprintf(fp, sizeof(fp), "?");
	log_info("CA %s%s: subject %s, SHA-256 %s", ca_cert_path(ca),
	    ca_created(ca) ? " (just created: trust it before sending HTTPS "
			     "traffic, see `peephole ca`)"
			   : "",
	    sub, fp);
}

/*
 * The TLS side: SSLKEYLOGFILE (through the store's writer) when set, then
 * the CA and both contexts into m->srv.tls. 0, or -1 logged.
 */
static int
server_setup_tls(struct server_main *m)
{
	const struct config *cfg = m->srv.cfg;
	struct store *store = m->srv.store;
	const char *keylog = getenv("SSLKEYLOGFILE");
	int use_keylog = keylog != NULL && keylog[0] != '\0' && store != NULL;
	char err[512];

	if (use_keylog &&
	    store_set_keylog(store, keylog, err, sizeof(err)) == -1) {
		log_warnx("%s", err);
		return -1;
	}
	if (use_keylog)
		log_info(
		    "SSLKEYLOGFILE: TLS secrets of both legs go to %s", keylog);
	m->srv.tls = tls_new(cfg, use_keylog ? store : NULL, err, sizeof(err));
	if (m->srv.tls == NULL) {
		log_warnx("%s", err);
		return -1;
	}
	server_log_ca(m->srv.tls->ca);
	return 0;
}

/* The onboarding pages and PAC, which name the first HTTP listener (a
 * wildcard one as 127.0.0.1). 0, or -1 logged. */
static int
server_setup_onboard(struct server_main *m)
{
	const struct config *cfg = m->srv.cfg;
	const struct config_listen *l = &cfg->listen[0];
	const char *host;
	char err[256];

	for (int i = 0; i < cfg->nlisten; i++)
		if (cfg->listen[i].mode == CONFIG_LISTEN_HTTP) {
			l = &cfg->listen[i];
			break;
		}
	host = strcmp(l->host, "0.0.0.0") == 0 || strcmp(l->host, "::") == 0
	    ? "127.0.0.1"
	    : l->host;
	m->srv.onboard =
	    onboard_new(m->srv.tls->ca, host, l->port, err, sizeof(err));
	if (m->srv.onboard == NULL) {
		log_warnx("onboarding page: %s", err);
		return -1;
	}
	return 0;
}

/* The learned passthrough list, loaded from the store and reloaded when
 * another process changes it. 0, or -1 logged. */
static int
server_setup_learned(struct server_main *m)
{
	struct store *store = m->srv.store;

	m->srv.learned = learned_new();
	if (m->srv.learned == NULL ||
	    (store != NULL &&
		store_load_learned(store, server_learned_cb, m->srv.learned) ==
		    -1)) {
		log_warnx("cannot load the learned passthrough list");
		return -1;
	}
	if (store != NULL)
		store_watch_learned(
		    store, server_learned_reload, m->srv.learned);
	return 0;
}

/* The main loop and the workers (one a core unless configured), not yet
 * started, then the listeners. 0, or -1 (logged where it says why). */
static int
server_setup_workers(struct server_main *m)
{
	const struct config *cfg = m->srv.cfg;
	int nworkers = cfg->workers;

	if (nworkers <= 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		nworkers = n > 0 ? (int)n : 1;
	}
	m->base = event_base_new();
	m->srv.workers = calloc((size_t)nworkers, sizeof(*m->srv.workers));
	if (m->base == NULL || m->srv.workers == NULL)
		return -1;
	/*
	 * SIGINT / SIGTERM are caught before any listener exists: a client
	 * that sees the port open may stop us at once, and the default
	 * action would kill the process with its records unwritten. The
	 * callback runs when the loop starts.
	 */
	m->sigint_ev = evsignal_new(m->base, SIGINT, server_signalcb, m);
	m->sigterm_ev = evsignal_new(m->base, SIGTERM, server_signalcb, m);
	if (m->sigint_ev == NULL || m->sigterm_ev == NULL ||
	    evsignal_add(m->sigint_ev, NULL) == -1 ||
	    evsignal_add(m->sigterm_ev, NULL) == -1)
		return -1;
	for (int i = 0; i < nworkers; i++) {
		m->srv.workers[i] = worker_new(i, cfg, m->srv.store, &m->srv);
		if (m->srv.workers[i] == NULL) {
			log_warnx("cannot set up worker %d", i);
			return -1;
		}
		m->srv.nworkers++;
	}
	for (int i = 0; i < cfg->nlisten; i++)
		if (server_listen(m, &cfg->listen[i]) == -1)
			return -1;
	return 0;
}

/* Start the threads: the replay reader, the store writer, the workers;
 * then catch SIGINT and SIGTERM. 0, or -1 (logged where it says why). */
static int
server_start(struct server_main *m)
{
	const struct config *cfg = m->srv.cfg;
	struct replaydb *replay = m->srv.replay;

	if (replay != NULL && replaydb_start(replay) == -1) {
		log_warnx("cannot start the replay reader");
		return -1;
	}
	if (replay != NULL)
		log_info("answering from %s: %zu logged exchange(s)%s",
		    cfg->replay_from, replaydb_count(replay),
		    cfg->replay_forward_unmatched
			? "; the rest go to their origins"
			: "; the rest get 404");
	if (m->srv.store != NULL && store_start(m->srv.store) == -1) {
		log_warnx("cannot start the store writer");
		return -1;
	}
	for (int i = 0; i < m->srv.nworkers; i++)
		if (worker_start(m->srv.workers[i]) == -1) {
			log_warnx("cannot start worker %d", i);
			return -1;
		}
	return 0;
}

/* Stop and free everything server_run set up, in dependency order. */
static void
server_teardown(struct server_main *m)
{
	for (int i = 0; i < m->nlev; i++)
		evconnlistener_free(m->lev[i]);
	for (int i = 0; i < m->srv.nworkers; i++) {
		worker_shutdown(m->srv.workers[i]);
		worker_join(m->srv.workers[i]);
	}
	/* before the workers' bases go: the reader may still post to them */
	replaydb_close(m->srv.replay);
	/* the workers are done: every record is queued; write them all */
	store_close(m->srv.store);
	for (int i = 0; i < m->srv.nworkers; i++)
		worker_free(m->srv.workers[i]);
	free(m->srv.workers);
	onboard_free(m->srv.onboard);
	tls_free(m->srv.tls);
	learned_free(m->srv.learned);
	if (m->sigint_ev)
		event_free(m->sigint_ev);
	if (m->sigterm_ev)
		event_free(m->sigterm_ev);
	if (m->base)
		event_base_free(m->base);
}

int
server_run(
    const struct config *cfg, struct store *store, struct replaydb *replay)
{
	struct server_main m;
	int rc = 1;

	memset(&m, 0, sizeof(m));
	m.srv.cfg = cfg;
	m.srv.store = store;
	m.srv.replay = replay;
	m.srv.t_start_us = now_us();
	if (evthread_use_pthreads() != 0) {
		log_warnx("libevent: no pthreads support");
		return 1;
	}
	event_set_log_callback(server_libevent_logcb);
	server_raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	if (server_setup_tls(&m) == -1 || server_setup_onboard(&m) == -1)
		goto out;
	if (cfg->insecure_upstream)
		log_warnx("insecure-upstream: origin certificates are NOT "
			  "verified");
	if (server_setup_learned(&m) == -1 || server_setup_workers(&m) == -1 ||
	    server_start(&m) == -1)
		goto out;
	log_info("%d worker(s); database %s", m.srv.nworkers,
	    store ? cfg->db_path : "(not recording)");
	event_base_dispatch(m.base);
	rc = 0;
out:
	server_teardown(&m);
	if (rc == 0)
		log_info("stopped");
	return rc;
}
