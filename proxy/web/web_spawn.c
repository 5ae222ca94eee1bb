/*
 * web_spawn: the UI's actions run peephole's own commands (replay,
 * passthrough retry, export har / curl) as child processes on the same
 * capture, so they behave exactly as on the command line and write
 * through SQLite's own locking. Their output is read from pipes on the
 * web loop, never waited for: collected for a JSON answer, or streamed to
 * the client as it comes (a HAR can be large), pausing the child's pipe
 * while the client is slow.
 */
/* posix_spawn_file_actions_addclosefrom_np (glibc 2.34) */
#define _GNU_SOURCE
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proxy/log.h"
#include "proxy/web/web_int.h"

extern char **environ;

/* Read from a child per callback; bytes queued to a slow client before
 * its child is paused. */
#define WEB_SPAWN_READ 65536
#define WEB_SPAWN_QUEUE (1024 * 1024)
/* A collected answer larger than this is an error, not memory growth. */
#define WEB_SPAWN_COLLECT_MAX (64 * 1024 * 1024)
/* After its pipes close, how often and how long to look for the exit. */
#define WEB_SPAWN_REAP_MS 20
#define WEB_SPAWN_REAP_TRIES 500

struct web_child {
	struct web_child *next;
	struct web *w;
	pid_t pid;
	struct web_req *wr;
	int outfd, errfd;
	struct event *out_ev, *err_ev, *reap_ev;
	struct evbuffer *out;
	char errtext[512];
	size_t errlen;
	const char *stream_type; /* NULL: collect */
	char filename[64];
	int started; /* stream: the head is sent */
	int paused;  /* stream: waiting for the client */
	int reap_tries;
	void (*done)(struct web *, struct web_req *, int, struct evbuffer *,
	    const char *);
};

static void web_child_out_cb(int fd, short what, void *arg);

/* Unlink c and free it; its request must be answered or gone. */
static void
web_child_free(struct web_child *c)
{
	struct web_child **pp;

	for (pp = &c->w->children; *pp != NULL; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			c->w->nchildren--;
			break;
		}
	if (c->out_ev != NULL)
		event_free(c->out_ev);
	if (c->err_ev != NULL)
		event_free(c->err_ev);
	if (c->reap_ev != NULL)
		event_free(c->reap_ev);
	if (c->outfd >= 0)
		close(c->outfd);
	if (c->errfd >= 0)
		close(c->errfd);
	if (c->out != NULL)
		evbuffer_free(c->out);
	web_req_release(c->wr);
	free(c);
}

/* The child is gone with status: answer and free. */
static void
web_child_finish(struct web_child *c, int status)
{
	struct evhttp_request *req;
	struct web_req *wr = c->wr;
	const char *stream_type = c->stream_type;
	int started = c->started;
	char errtext[sizeof(c->errtext)], filename[sizeof(c->filename)];

	/* the first line of what it said on stderr */
	c->errtext[strcspn(c->errtext, "\n")] = '\0';
	if (stream_type == NULL) {
		c->wr = NULL;
		c->done(c->w, wr, status, c->out, c->errtext);
		web_child_free(c);
		return;
	}
	snprintf(errtext, sizeof(errtext), "%s",
	    c->errtext[0] ? c->errtext : "the command failed");
	snprintf(filename, sizeof(filename), "%s", c->filename);
	/* a stream: answer only once the holder is gone (see web_req_take) */
	req = web_req_take(&c->wr);
	web_child_free(c);
	if (req == NULL)
		return;
	if (!started && status == 0)
		web_reply_bytes(req, 200, stream_type, "", 0);
	else if (!started)
		web_reply_error(req, 500, "%s", errtext);
	else if (status == 0)
		evhttp_send_reply_end(req);
	else {
		/* cut it off: a HAR that ends cleanly would look whole */
		log_warnx("web: %s ended with status %d mid-answer: %s",
		    filename, status, errtext);
		web_req_abort(req);
	}
}

static void
web_child_reap_cb(int fd, short what, void *arg)
{
	struct web_child *c = arg;
	const struct timeval again = {0, WEB_SPAWN_REAP_MS * 1000};
	int st;
	pid_t r;

	(void)fd;
	(void)what;
	r = waitpid(c->pid, &st, WNOHANG);
	if (r == c->pid || (r == -1 && errno == ECHILD)) {
		web_child_finish(c,
		    r == -1             ? 127
			: WIFEXITED(st) ? WEXITSTATUS(st)
					: 128 + WTERMSIG(st));
		return;
	}
	if (++c->reap_tries == WEB_SPAWN_REAP_TRIES)
		kill(c->pid, SIGKILL); /* closed its output but lingers */
	event_add(c->reap_ev, &again);
}

/* Both pipes are at their end: look for the exit from now on. */
static void
web_child_maybe_reap(struct web_child *c)
{
	if (c->outfd < 0 && c->errfd < 0)
		web_child_reap_cb(-1, 0, c);
}

/* The client took a streamed chunk: read on if paused. */
static void
web_child_drained_cb(struct evhttp_connection *evcon, void *arg)
{
	struct web_child *c = arg;

	(void)evcon;
	if (c->paused && c->outfd >= 0) {
		c->paused = 0;
		event_add(c->out_ev, NULL);
	}
}

/* Send what the child wrote so far to a streaming client. */
static void
web_child_stream(struct web_child *c)
{
	struct evhttp_request *req = c->wr->req;
	struct evkeyvalq *h;
	struct bufferevent *bev;
	char disp[128];

	if (!c->started) {
		h = evhttp_request_get_output_headers(req);
		web_add_common_headers(req);
		evhttp_add_header(h, "Content-Type", c->stream_type);
		snprintf(disp, sizeof(disp), "attachment; filename=\"%s\"",
		    c->filename);
		evhttp_add_header(h, "Content-Disposition", disp);
		web_stream_start(req);
		c->started = 1;
	}
	evhttp_send_reply_chunk_with_cb(req, c->out, web_child_drained_cb, c);
	bev = evhttp_connection_get_bufferevent(
	    evhttp_request_get_connection(req));
	if (bev != NULL &&
	    evbuffer_get_length(bufferevent_get_output(bev)) >
		WEB_SPAWN_QUEUE) {
		c->paused = 1;
		event_del(c->out_ev);
	}
}

static void
web_child_out_cb(int fd, short what, void *arg)
{
	struct web_child *c = arg;
	int n;

	(void)what;
	n = evbuffer_read(c->out, fd, WEB_SPAWN_READ);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (c->stream_type != NULL && (c->wr == NULL || c->wr->req == NULL)) {
		kill(c->pid, SIGTERM); /* nobody to send it to */
		evbuffer_drain(c->out, evbuffer_get_length(c->out));
	} else if (c->stream_type != NULL && n > 0)
		web_child_stream(c);
	else if (evbuffer_get_length(c->out) > WEB_SPAWN_COLLECT_MAX) {
		kill(c->pid, SIGKILL);
		n = 0;
	}
	if (n <= 0) {
		event_del(c->out_ev);
		close(c->outfd);
		c->outfd = -1;
		web_child_maybe_reap(c);
	}
}

static void
web_child_err_cb(int fd, short what, void *arg)
{
	struct web_child *c = arg;
	char buf[4096];
	ssize_t n;
	size_t k;

	(void)what;
	n = read(fd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0) {
		k = sizeof(c->errtext) - 1 - c->errlen;
		k = (size_t)n < k ? (size_t)n : k;
		memcpy(c->errtext + c->errlen, buf, k);
		c->errlen += k;
		c->errtext[c->errlen] = '\0';
		return;
	}
	event_del(c->err_ev);
	close(c->errfd);
	c->errfd = -1;
	web_child_maybe_reap(c);
}

/* posix_spawn argv with stdout and stderr to the pipes' write ends,
 * stdin from /dev/null. 0 / -1. */
static int
web_child_exec(struct web_child *c, char **argv, int outw, int errw)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, deflt;
	int rc;

	/*
	 * The web thread blocks every signal and the proxy ignores SIGPIPE:
	 * a child would inherit both and shrug off our SIGTERM. It gets an
	 * empty mask and default actions, and none of the proxy's sockets
	 * (libevent's are not close-on-exec): only stdin, stdout, stderr.
	 */
	sigemptyset(&none);
	sigemptyset(&deflt);
	sigaddset(&deflt, SIGPIPE);
	sigaddset(&deflt, SIGINT);
	sigaddset(&deflt, SIGTERM);
	if (posix_spawn_file_actions_init(&fa) != 0)
		return -1;
	if (posix_spawnattr_init(&at) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		return -1;
	}
	rc = posix_spawnattr_setflags(
		 &at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF) != 0 ||
	    posix_spawnattr_setsigmask(&at, &none) != 0 ||
	    posix_spawnattr_setsigdefault(&at, &deflt) != 0 ||
	    posix_spawn_file_actions_addopen(
		&fa, 0, "/dev/null", O_RDONLY, 0) != 0 ||
	    posix_spawn_file_actions_adddup2(&fa, outw, 1) != 0 ||
	    posix_spawn_file_actions_adddup2(&fa, errw, 2) != 0 ||
	    posix_spawn_file_actions_addclosefrom_np(&fa, 3) != 0 ||
	    posix_spawn(&c->pid, argv[0], &fa, &at, argv, environ) != 0;
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	return rc ? -1 : 0;
}

/* A pipe whose ends the children of other requests do not inherit
 * (posix_spawn's dup2 clears the flag on the copy it makes). 0 / -1. */
static int
web_child_pipe(int p[2])
{
	if (pipe(p) == -1)
		return -1;
	if (fcntl(p[0], F_SETFD, FD_CLOEXEC) == -1 ||
	    fcntl(p[1], F_SETFD, FD_CLOEXEC) == -1) {
		close(p[0]);
		close(p[1]);
		p[0] = p[1] = -1;
		return -1;
	}
	return 0;
}

/* The full argv: this binary, the command's words, --db PATH. */
static const char **
web_child_argv(struct web *w, char *const *argv)
{
	size_t n = 0;
	const char **full;

	while (argv[n] != NULL)
		n++;
	if ((full = calloc(n + 4, sizeof(*full))) == NULL)
		return NULL;
	full[0] = w->exe;
	memcpy(full + 1, argv, n * sizeof(*full));
	full[n + 1] = "--db";
	full[n + 2] = w->db_path;
	return full;
}

int
web_spawn(struct web *w, struct web_req *wr, char *const *argv,
    const char *stream_type, const char *filename,
    void (*done)(
	struct web *, struct web_req *, int, struct evbuffer *, const char *))
{
	struct web_child *c = NULL;
	int outp[2] = {-1, -1}, errp[2] = {-1, -1};
	const char **full = NULL;

	if (w->nchildren >= WEB_CHILDREN_MAX ||
	    (c = calloc(1, sizeof(*c))) == NULL ||
	    (full = web_child_argv(w, argv)) == NULL)
		goto fail;
	c->w = w;
	c->outfd = c->errfd = -1;
	c->stream_type = stream_type;
	c->done = done;
	snprintf(c->filename, sizeof(c->filename), "%s",
	    filename != NULL ? filename : argv[0]);
	if (web_child_pipe(outp) == -1 || web_child_pipe(errp) == -1 ||
	    fcntl(outp[0], F_SETFL, O_NONBLOCK) == -1 ||
	    fcntl(errp[0], F_SETFL, O_NONBLOCK) == -1 ||
	    (c->out = evbuffer_new()) == NULL ||
	    (c->out_ev = event_new(w->base, outp[0], EV_READ | EV_PERSIST,
		 web_child_out_cb, c)) == NULL ||
	    (c->err_ev = event_new(w->base, errp[0], EV_READ | EV_PERSIST,
		 web_child_err_cb, c)) == NULL ||
	    (c->reap_ev = evtimer_new(w->base, web_child_reap_cb, c)) == NULL ||
	    web_child_exec(c, (char **)full, outp[1], errp[1]) == -1)
		goto fail;
	close(outp[1]);
	close(errp[1]);
	c->outfd = outp[0];
	c->errfd = errp[0];
	event_add(c->out_ev, NULL);
	event_add(c->err_ev, NULL);
	c->wr = wr;
	c->next = w->children;
	w->children = c;
	w->nchildren++;
	free((void *)full);
	return 0;
fail:
	for (int k = 0; k < 2; k++) {
		if (outp[k] >= 0)
			close(outp[k]);
		if (errp[k] >= 0)
			close(errp[k]);
	}
	if (c != NULL) {
		/* not on the list yet, holding no request */
		c->outfd = c->errfd = -1; /* closed above */
		c->w = w;
		web_child_free(c);
	}
	free((void *)full);
	web_req_release(wr);
	return -1;
}

void
web_spawn_tick(struct web *w)
{
	for (struct web_child *c = w->children; c != NULL; c = c->next)
		if (c->stream_type != NULL && c->paused && c->outfd >= 0 &&
		    (c->wr == NULL || c->wr->req == NULL)) {
			/* read on to the end so that it can exit */
			kill(c->pid, SIGTERM);
			c->paused = 0;
			event_add(c->out_ev, NULL);
		}
}

/* Server stop: end every child now and wait for it (it was killed). */
void
web_spawn_kill_all(struct web *w)
{
	struct web_child *c;

	while ((c = w->children) != NULL) {
		int streamed = c->stream_type != NULL && c->started;
		struct evhttp_request *req;

		kill(c->pid, SIGKILL);
		while (waitpid(c->pid, NULL, 0) == -1 && errno == EINTR)
			;
		req = web_req_take(&c->wr);
		web_child_free(c);
		/* after the free: nothing of c is called back from here on */
		if (req != NULL && streamed)
			web_req_abort(req);
		else if (req != NULL)
			web_reply_error(req, 503, "server stopping");
	}
}
