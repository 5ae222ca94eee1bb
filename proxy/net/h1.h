/*
 * h1: the byte-faithful HTTP/1 codec of a connection. Heads are kept as
 * received (raw_head, raw_resp) and llhttp parses a copy for the record;
 * bodies move from one side's input to the other's output as they came,
 * framing included. What it learns it reports to the exchange
 * (exchange_request_head, exchange_end, exchange_fail). Loop thread only.
 */
#ifndef PEEPHOLE_H1_H
#define PEEPHOLE_H1_H

#include <stddef.h>

#include <llhttp.h>

struct conn;

/* The llhttp settings tables, filled once for every worker. */
void h1_settings_init(void);

/* A fresh request parser and head: a new protocol starts on this client
 * connection (the first accept, HTTP inside a tunnel, forged TLS). */
void h1_reset(struct conn *c);

/* A fresh response parser for the answer to the request just sent. */
void h1_response_start(struct conn *c);

/* "major.minor" of the message p parsed. */
void h1_version(char *buf, size_t len, const llhttp_t *p);

/* Read a request head from the client's input (CONN_READ_HEAD). */
void h1_parse_request(struct conn *c);

/* Build c->up_head, the request head that goes to the origin. 0 or -1. */
int h1_build_up_head(struct conn *c);

/* EXCHANGE's entry work: the head goes to the origin, both directions
 * start moving. */
void h1_exchange_start(struct conn *c);

/* Move request body bytes client -> origin (CONN_EXCHANGE). */
void h1_feed_request(struct conn *c);

/* Move the answer origin -> client, head first (CONN_EXCHANGE). */
void h1_feed_response(struct conn *c);

#endif
