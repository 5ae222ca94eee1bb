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
 * 1 if a Connection field of h names the field name (nlen bytes): that
 * field is for this hop only (RFC 9110 7.6.1).
 */
int head_connection_names(const struct head *h, const char *name, size_t nlen);

/*
 * A walk over logged header text: the "Name: value\r\n" lines of the
 * requests table (req_headers, resp_headers), as head_fields_text writes
 * them, or as a raw head logs them. head_text_next allocates nothing and
 * points into the text. Tolerant, since the text is read back from a
 * database and may have been written by an older build:
 *  - a line ends at "\r\n", "\n" or a lone "\r"; the last may have no
 *    line break; blank lines are skipped;
 *  - a line that starts with SP or HT right after a field's line continues
 *    that field (obs-fold, RFC 9112 5.2): the value runs on to the end of
 *    the last continuation line, fold bytes included as logged; a
 *    continuation with no field above it (first line, after a blank line
 *    or a colon-less line) is skipped;
 *  - a line without a colon is not a field and is skipped;
 *  - the name is every byte before the first colon, as logged (it may be
 *    empty, or end in whitespace, which matches no real field name); a
 *    line that starts with ':' is an HTTP/2 pseudo-header (":path: /x"),
 *    whose name runs to the second colon and keeps the first (consumers
 *    that rebuild an HTTP/1 message skip such names, head_text_pseudo);
 *  - the value has its surrounding whitespace (SP, HT, and the CR/LF of a
 *    fold) trimmed, RFC 9110 5.5; it may be empty.
 */
struct head_text_iter {
	const char *p;    /* the next unread byte; NULL or at the NUL: done */
	const char *line; /* the field last returned, as logged (folds */
	size_t len;       /* included), without its final line break */
};

/* Start a walk over headers (NULL: no fields). */
void head_text_init(struct head_text_iter *it, const char *headers);

/*
 * The next field: 1 with name (nlen bytes) and value (vlen bytes) pointing
 * into the text and it->line / it->len set, or 0 at the end. Any output
 * pointer may be NULL.
 */
int head_text_next(struct head_text_iter *it, const char **name, size_t *nlen,
    const char **value, size_t *vlen);

/*
 * The field head_text_next last returned as one line, malloc'd and
 * NUL-terminated, no line break: as logged, but with each obs-fold
 * replaced by one SP (RFC 9112 5.2), since no sender may generate folds.
 * For re-sending or printing a field. NULL on ENOMEM.
 */
char *head_text_line(const struct head_text_iter *it)
    __attribute__((warn_unused_result));

/* 1 if a field name (n bytes) is an HTTP/2 pseudo-header (":method"). */
int head_text_pseudo(const char *name, size_t n);

/*
 * The value of the first field named name (case-insensitive) in headers,
 * vlen bytes (vlen may be NULL) pointing into headers; NULL if none.
 */
const char *head_text_find(const char *headers, const char *name, size_t *vlen);

/*
 * For logged header text ("Name: value\r\n" lines, NULL for none): 1 if
 * field name (n bytes) is for one hop only in that message: one of RFC
 * 9110's hop-by-hop fields (Connection, Proxy-Connection, Keep-Alive, TE,
 * Trailer, Transfer-Encoding, Upgrade, Proxy-Authenticate,
 * Proxy-Authorization), or a field one of its Connection lines names.
 */
int head_text_is_hop(const char *name, size_t n, const char *headers);

/* One header line of a raw head, as head_copy_raw's callback sees it. */
struct head_line {
	const char *name; /* as received, nlen bytes */
	size_t nlen;
	const char *value; /* without surrounding whitespace, vlen bytes */
	size_t vlen;
	const char *replace; /* HEAD_REPLACE: the new value, NUL-terminated */
};

enum head_verdict {
	HEAD_KEEP = 0, /* forward the line byte for byte */
	HEAD_DROP,     /* leave it out */
	HEAD_REPLACE   /* "name: replace": the name keeps its spelling */
};

typedef enum head_verdict (*head_line_fn)(struct head_line *l, void *arg);

/*
 * Copy a raw message head (len bytes: start line, header lines and the
 * blank line, as received and as llhttp accepted them) to out, line by
 * line and byte for byte. start (start_len bytes, no CRLF), if not NULL,
 * replaces the start line; fn (NULL: keep all) decides each header line;
 * extra, if not NULL, holds whole CRLF-ended lines added before the blank
 * line. Returns 0, or -1 on ENOMEM or a head without its blank line.
 */
int head_copy_raw(struct evbuffer *out, const char *raw, size_t len,
    const char *start, size_t start_len, head_line_fn fn, void *arg,
    const char *extra) __attribute__((warn_unused_result));

/* All fields as received, "Name: value\r\n" lines, malloc'd; NULL on ENOMEM. */
char *head_fields_text(const struct head *h);

#endif
