/*
 * mmtls: follow the record layer of one direction of a WeChat mmTLS stream
 * (longlink, or a shortlink body) without decrypting it. Every record keeps
 * a 5-byte header -- type, version F1 04 (F1 03 on older clients), 16-bit
 * big-endian length -- so types and sizes can be logged per record
 * (DESIGN.md "Recognising streams"; Citizen Lab's mmtls-network-format.md).
 * Incremental: bytes may arrive split anywhere; payloads are skipped, never
 * copied. Pure: no allocation, never reads past len.
 */
#ifndef PEEPHOLE_MMTLS_H
#define PEEPHOLE_MMTLS_H

#include <stddef.h>
#include <stdint.h>

enum mmtls_type {
	MMTLS_ALERT = 0x15,
	MMTLS_HANDSHAKE = 0x16,
	MMTLS_DATA = 0x17,
	MMTLS_EARLY = 0x19 /* 0-RTT: early ClientHello, encrypted extensions */
};

#define MMTLS_HEADER 5      /* type, version, length */
#define MMTLS_HELLO_PEEK 10 /* header, 4-byte section length, hello type */

/*
 * The default longest record accepted: 2^14 + 2048, the TLS 1.2 ciphertext
 * bound (RFC 5246 6.2.3), the loosest the TLS record layer mmTLS copies
 * allows (TLS 1.3 allows 2^14 + 256). The wire field could say up to 65535;
 * a longer "record" is far more likely garbage or a lost sync than real, and
 * after a wrong length every later header would be read from payload. A
 * caller that sees real streams exceed it may raise p->max_length (up to
 * 65535) after mmtls_init.
 */
#define MMTLS_MAX_RECORD (16384 + 2048)

struct mmtls_record {
	uint8_t type;     /* enum mmtls_type */
	uint16_t version; /* 0xF104 or 0xF103 */
	uint32_t length;  /* payload bytes after the 5-byte header */
	/*
	 * For handshake and early records in the plaintext hello framing
	 * (bytes 5-8 = length - 4): byte 9, 1 ClientHello or 2 ServerHello.
	 * 0 otherwise: later handshake records (certificate, ticket,
	 * finished) are encrypted, and their byte 9 means nothing.
	 */
	uint8_t hs_type;
};

/* One direction of one stream. Fields below "public" may be read. */
struct mmtls_parser {
	/* private */
	unsigned char hdr[MMTLS_HELLO_PEEK]; /* the current record's head */
	size_t have;                         /* bytes of hdr collected */
	size_t need;   /* bytes of hdr wanted before the callback */
	uint32_t len;  /* the current record's length, once known */
	uint32_t skip; /* payload bytes of the current record left */

	/* public */
	uint32_t max_length; /* MMTLS_MAX_RECORD unless raised */
	int bad;             /* garbage seen: parsing has stopped */
	uint64_t records;    /* complete headers reported */
	uint64_t n_alert, n_handshake, n_data, n_early;
	int handshake_seen; /* a handshake record was seen */
	int early_seen;     /* an early-data (0-RTT) record was seen */
};

/* Reset p for a new stream direction. */
void mmtls_init(struct mmtls_parser *p);

/*
 * Consume len more bytes of the stream (any split). cb(rec, arg) is called
 * once per record, in order, as soon as its header is known -- for handshake
 * and early records, its first 10 bytes (or the whole record when shorter);
 * cb may be NULL. Counters are updated before each call. Returns 0, or -1
 * once the bytes are not mmTLS (type not 15/16/17/19, version not F1 04 or
 * F1 03, length above p->max_length): p->bad is set, records before the
 * garbage have been reported, and every later call returns -1 at once.
 * The same bytes give the same callbacks and result however they are split.
 */
int mmtls_feed(struct mmtls_parser *p, const unsigned char *buf, size_t len,
    void (*cb)(const struct mmtls_record *rec, void *arg), void *arg)
    __attribute__((warn_unused_result));

/* "alert", "handshake", "data", "early-data"; "unknown" otherwise. */
const char *mmtls_type_name(uint8_t type);

#endif
