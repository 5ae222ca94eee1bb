/*
 * h2_int: the HTTP/2 codec's objects, shared by h2.c (the two nghttp2
 * sessions and their I/O), h2_stream.c (one stream: its heads, bodies and
 * record) and h2_h1.c (an HTTP/1.1 origin under an h2 client). Nothing
 * outside proxy/net/h2*.c includes this.
 */
#ifndef PEEPHOLE_H2_INT_H
#define PEEPHOLE_H2_INT_H

#include <nghttp2/nghttp2.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

struct conn;
struct evbuffer;
struct store_rec;
struct h2_h1;
struct ws;

/* A header list as it arrived: names and values copied, in order. */
struct h2_fields {
	nghttp2_nv *nv;
	size_t n, cap;
	size_t bytes; /* names and values, as HPACK counts them (+32 each) */
};

/*
 * One stream: a request from the client and its answer. The client leg's
 * stream id is down_id; the origin's is up_id (an h2 origin), or the
 * stream rides an HTTP/1.1 origin connection (h1 != NULL).
 */
struct h2_stream {
	TAILQ_ENTRY(h2_stream) link; /* h2->streams */
	TAILQ_ENTRY(h2_stream) wait; /* h2->h1_queue: waiting for an h1 leg */
	struct conn *c;
	int32_t down_id, up_id;
	struct h2_fields req, resp, req_trl, resp_trl;
	struct evbuffer *req_buf;  /* request body not yet sent on */
	struct evbuffer *resp_buf; /* answer body not yet sent on */
	struct store_rec *rec;     /* its record, until submitted */
	size_t req_room, resp_room;
	int req_end;     /* the client ended its side */
	int resp_head;   /* the answer head is known */
	int resp_end;    /* the origin ended its side */
	int resp_sent;   /* the answer head went to the client */
	int down_closed; /* the client leg's stream is closed */
	int up_closed;   /* the origin leg's stream is closed (or none) */
	int queued;      /* on h2->h1_queue */
	int own_answer;  /* answered by us (502...), no origin */
	int64_t t_start_us, t_sent_us;
	char *end;        /* "rst-client CANCEL", ... or NULL */
	struct h2_h1 *h1; /* the HTTP/1.1 origin leg carrying it */
	struct ws *ws;    /* an RFC 8441 WebSocket's record */
};

TAILQ_HEAD(h2_streams, h2_stream);
TAILQ_HEAD(h2_waitq, h2_stream);

/* The codec of a connection whose client speaks HTTP/2. */
struct h2 {
	nghttp2_session *down; /* peephole as the client's server */
	nghttp2_session *up;   /* peephole as an h2 origin's client, or NULL */
	struct h2_streams streams;
	int nstreams;
	int dirty;              /* a session has frames to send */
	int up_gone;            /* the origin connection ended or said GOAWAY */
	int goaway_sent;        /* we told the client to stop */
	int connect_proto;      /* the origin takes RFC 8441 extended CONNECT */
	int up_settings;        /* the origin's first SETTINGS arrived */
	const char *up_version; /* "2", or "1.1" for an HTTP/1.1 origin */
	struct h2_waitq h1_queue; /* streams waiting for an h1 leg */
	struct h2_h1 *h1_legs[6]; /* HTTP/1.1 origin connections */
	int nh1;
};

/* Streams and bytes an HTTP/2 client may have in flight (h2.c). */
#define H2_MAX_STREAMS 100
#define H2_STREAM_WINDOW (256 * 1024)
#define H2_OUT_LIMIT (64 * 1024)

/* h2.c */
void h2_flush(struct conn *c);
/* more of the answer can go to the client */
void h2_down_more(struct h2_stream *s);
/* both legs are done with the stream: record and free it */
void h2_stream_maybe_finish(struct h2_stream *s);
struct h2_stream *h2_stream_of(struct conn *c, int32_t down_id);
const char *h2_error_name(uint32_t code);

/* h2_stream.c */
struct h2_stream *h2_stream_new(struct conn *c, int32_t down_id);
void h2_stream_free(struct h2_stream *s);
int h2_fields_add(struct h2_fields *f, const uint8_t *name, size_t nlen,
    const uint8_t *value, size_t vlen) __attribute__((warn_unused_result));
void h2_fields_clear(struct h2_fields *f);
/* the value of the first field called name, or NULL (NUL-terminated) */
const char *h2_fields_get(const struct h2_fields *f, const char *name);
/* the request head is complete: start the record */
int h2_stream_request(struct h2_stream *s) __attribute__((warn_unused_result));
/* the answer head is complete: record it */
void h2_stream_response(struct h2_stream *s, const char *version);
void h2_stream_capture(
    struct h2_stream *s, int resp, const uint8_t *at, size_t len);
/* both legs are done with the stream: record it, free it */
void h2_stream_finish(struct h2_stream *s);
/* answer the stream ourselves: status and a short text body */
void h2_stream_answer(struct h2_stream *s, int status, const char *why);
/* give the client the answer head collected in s->resp */
int h2_stream_send_response(struct h2_stream *s);
void h2_stream_fail(struct h2_stream *s, const char *why);
/* a 2xx to an RFC 8441 WebSocket CONNECT: record it, parse its DATA */
void h2_stream_ws_begin(struct h2_stream *s);

/* h2_h1.c: an HTTP/1.1 origin leg for h2 streams */
void h2_h1_submit(struct h2_stream *s);
void h2_h1_request_more(struct h2_stream *s);
void h2_h1_response_taken(struct h2_stream *s);
void h2_h1_stream_gone(struct h2_stream *s);
void h2_h1_quiesce(struct conn *c);
void h2_h1_free_all(struct conn *c);

#endif
