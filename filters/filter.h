/*
 * filter: mitmproxy-style filter expressions over logged HTTP exchanges,
 * shared by `peephole requests --filter`, `replay`, `export` and the server
 * replay of `run --replay-from`.
 *
 *   ~d REGEX    host                    ~u REGEX   full URL
 *   ~m REGEX    method                  ~c CODE    response status
 *   ~t REGEX    content type (either)   ~tq / ~ts  request / response only
 *   ~h REGEX    a header line (either)  ~hq / ~hs  request / response only
 *   ~b REGEX    a body (either)         ~bq / ~bs  request / response only
 *               or WebSocket message    (messages client->server / back)
 *   ~s          has a response          ~q         has no response
 *   ~e          failed (error set)      ~proto L   label, protocol or scheme
 *   ~websocket  a WebSocket exchange    ~h2        an HTTP/2 exchange
 *               (also ~ws)                         (also ~http2)
 *   ~all        everything              REGEX      bare word: same as ~u
 *   !X  X & Y  X | Y  (X)   — ! binds tightest, then &, then |; two
 *                             expressions side by side mean &
 *
 * Regexes are PCRE2, case-insensitive (as in mitmproxy); a value may be
 * quoted with '...' or "..." (backslash escapes the quote). Header lines
 * are matched as "Name: value". Pure: no I/O; bodies come through a
 * callback so an expression without ~b never loads one. A compiled filter
 * is read-only, so threads may share it (each match uses its own PCRE2
 * match data).
 */
#ifndef PEEPHOLE_FILTER_H
#define PEEPHOLE_FILTER_H

#include <stddef.h>

struct filter;

/* What one logged exchange offers to an expression. NULL strings: absent. */
struct filter_req {
	const char *method;
	const char *url; /* scheme://host[:port]/path[?query] */
	const char *host;
	const char *req_headers;  /* "Name: value\r\n" lines, as stored */
	const char *resp_headers; /* NULL when there was no response */
	const char *req_content_type;
	const char *resp_content_type;
	const char *error;    /* NULL or "" when the exchange succeeded */
	const char *label;    /* requests.label, e.g. "mmtls-shortlink" */
	const char *protocol; /* the connection's protocol, e.g. "http" */
	const char *scheme;   /* "http" | "https" */
	int status;           /* 0: no response */
	/*
	 * Fetch a body for ~b / ~bq / ~bs: which is 0 for the request, 1 for
	 * the response. Sets *data / *len (valid until the next call or the
	 * end of filter_match) and returns 0; returns -1 when no body was
	 * captured. May be NULL: then no body matches.
	 */
	int (*body)(void *arg, int which, const void **data, size_t *len);
	void *body_arg;
	/*
	 * Fetch WebSocket message i (0-based, in order; called with 0, 1, 2
	 * ... until it fails) for ~b: sets *dir (0 client->server, 1 back),
	 * *data / *len (valid until the next call) and returns 0; -1 past
	 * the last. May be NULL: no messages. Called with body_arg.
	 */
	int (*message)(
	    void *arg, size_t i, int *dir, const void **data, size_t *len);
	int http2;       /* 1: an HTTP/2 exchange (a stream id is logged) */
	int ws_messages; /* 1: WebSocket messages are logged for it */
};

/*
 * Compile expr. NULL on error, with a message in err and the 0-based byte
 * offset of the problem in *errpos (when errpos is not NULL).
 */
struct filter *filter_compile(const char *expr, char *err, size_t errlen,
    size_t *errpos) __attribute__((warn_unused_result));

/* 1 if r matches f, 0 if not. */
int filter_match(const struct filter *f, const struct filter_req *r);

/* 1 if f needs bodies (uses ~b, ~bq or ~bs). */
int filter_needs_body(const struct filter *f);

/* Free f; NULL does nothing. */
void filter_free(struct filter *f);

#endif
