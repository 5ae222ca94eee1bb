/*
 * head: an HTTP message head (request line or status line, then header
 * fields) collected from llhttp's span callbacks, which may split any token
 * across reads. Bounded: past its limit head_append fails and the caller
 * answers 431. Pure: no sockets, no event loop.
 */
#ifndef PEEPHOLE_HEAD_H
#define PEEPHOLE_HEAD_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;

enum head_part {
	HEAD_PART_TARGET = 1, /* request-target, or reason phrase */
	HEAD_PART_FIELD,
	HEAD_PART_VALUE
};

struct head_field {
	uint32_t name_off, name_len;
	uint32_t value_off, value_len;
};

struct head {
	char *buf; /* all spans, back to back */
	size_t len, cap, limit;
	uint32_t target_off, target_len;
	struct head_field *fields;
	int nfields, fieldcap;
	enum head_part last; /* which part the previous span extended */
};

/* Empty head with a byte limit; no allocation until the first span. */
void head_init(struct head *h, size_t limit);
/* Forget the content but keep the buffers, for the next message. */
void head_reset(struct head *h);
/* Free the buffers. */
void head_free(struct head *h);

/*
 * Append a span of one part (llhttp may deliver a token in pieces; pieces of
 * the same part are joined). Returns 0, or -1 past the limit or on ENOMEM.
 */
int head_append(struct head *h, enum head_part part, const char *at, size_t len)
    __attribute__((warn_unused_result));

/* The target (or reason) as pointer + length. */
const char *head_target(const struct head *h, size_t *len);

/* Index of the first field named name (case-insensitive), from start; -1. */
int head_find(const struct head *h, const char *name, int start);

/* Value of field i as a NUL-terminated copy; caller frees. NULL on ENOMEM. */
char *head_value_dup(const struct head *h, int i);

/* 1 if field i's name is name (case-insensitive). */
int head_name_is(const struct head *h, int i, const char *name);

/* 1 if some field named name has comma-separated token tok. */
int head_has_token(const struct head *h, const char *name, const char *tok);

/*
 * 1 if field i must not be forwarded: the fixed hop-by-hop set (Connection,
 * Proxy-Connection, Keep-Alive, TE, Trailer, Proxy-Authorization,
 * Proxy-Authenticate) and any header a Connection field names — except
 * Upgrade when keep_upgrade (a protocol switch being relayed).
 */
int head_is_hop_by_hop(const struct head *h, int i, int keep_upgrade);

/*
 * Append the fields to out as "Name: value\r\n", skipping hop-by-hop ones
 * when strip is set and any field named in skip (NULL-terminated list).
 * Returns 0 / -1.
 */
int head_write_fields(const struct head *h, struct evbuffer *out, int strip,
    int keep_upgrade, const char *const *skip)
    __attribute__((warn_unused_result));

/* All fields as received, "Name: value\r\n" lines, malloc'd; NULL on ENOMEM. */
char *head_fields_text(const struct head *h);

#endif
