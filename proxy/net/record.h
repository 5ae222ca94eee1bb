/*
 * record: what a logged exchange and a logged connection are. Builds the
 * store's rows (struct store_rec) from a connection's and an exchange's
 * state; the store's writer thread only writes them. Loop thread only.
 */
#ifndef PEEPHOLE_RECORD_H
#define PEEPHOLE_RECORD_H

#include <stddef.h>
#include <stdint.h>

struct conn;
struct evbuffer;
struct resolve_result;
struct store_rec;
struct store_request;

/* The request row's head fields, from the parsed request head. */
void record_request_head(struct conn *c);

/* The request row's target fields (host, port, path, query, scheme),
 * from the parsed target. */
void record_request_target(struct conn *c);

/* Inside a tunnel the record names the site: the Host field's name, or
 * else the SNI (the target is the tunnel's whatever the request says). */
void record_site_name(struct conn *c);

/* An authority ("name:port", "[v6]:port", "name") cut to its name, in
 * place: the port and the brackets go. HTTP/1's Host and h2's
 * :authority alike. */
void record_authority_name(char *a);

/* The request row's answer fields, from the parsed answer head. */
void record_response_head(struct conn *c);

/* The origin connection's timings (fresh, or reused: zeros). */
void record_upstream_timings(struct conn *c);

/* Record an answer peephole wrote itself (the n bytes at before in out)
 * as an origin's is recorded: head fields, content type and body. */
void record_own_answer(
    struct conn *c, struct evbuffer *out, size_t before, size_t n);

/* This client was told host -> each address of res: name sightings. */
void record_sightings(struct conn *c, const struct resolve_result *res);

/*
 * The records a request row implies, for the store's writer thread
 * (store_set_deriver): WeChat's own DNS, a complete 200 answer to GET
 * /cgi-bin/micromsg-bin/newgetdns, gives a domain_ips fact (source
 * app-dns, its timeout as the TTL, and a sighting for the client) per
 * (domain, ip) it carries, so streams to those addresses get names. The
 * client address the answer reports is logged, not stored. A document
 * that does not parse is logged and costs nothing else: the request row
 * stands. On the writer thread because the body may be a deflate bomb the
 * parse caps but still spends milliseconds on: not on an event loop.
 */
struct store_rec *record_derive(const struct store_request *r);

/* The connections row for c, closing for reason (err may be NULL); NULL
 * on ENOMEM. The caller submits it. */
struct store_rec *record_conn_row(
    struct conn *c, const char *reason, const char *err);

/*
 * A line for `peephole run`'s output (a NOTE row the writer prints in
 * order with the flow lines). Nothing when quiet or not recording.
 */
void record_note(struct conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The learned passthrough list's rows: (name, port) backed off after its
 * n-th refusal at t until next_us, and forgotten again. */
void record_learned(struct conn *c, const char *name, int port, const char *why,
    int64_t t, int n, int64_t next_us);
void record_learned_forget(struct conn *c, const char *name, int port);

#endif
