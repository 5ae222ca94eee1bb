/*
 * sniff: recognise a client's protocol from the first bytes it sent, and
 * read the names a TLS ClientHello carries (SNI, ALPN, versions), before any
 * TLS object exists. The patterns are DESIGN.md's "Recognising streams"
 * table. Pure: functions of bytes, no allocation, never read past len.
 */
#ifndef PEEPHOLE_SNIFF_H
#define PEEPHOLE_SNIFF_H

#include <stddef.h>

enum sniff_proto {
	SNIFF_NEED_MORE = 0,
	SNIFF_TLS,
	SNIFF_MMTLS,
	SNIFF_H2,
	SNIFF_HTTP,
	SNIFF_SSH,
	SNIFF_OTHER
};

/* The longest HTTP request line sniff_detect waits for before "other". */
#define SNIFF_HTTP_MAX_LINE 8192

/*
 * Classify the first bytes a client sent. SNIFF_NEED_MORE while buf is a
 * prefix of something that could still match a pattern (the caller waits
 * for more up to its timeout, then treats the stream as other); once an
 * answer other than SNIFF_NEED_MORE is given, more bytes never change it.
 */
enum sniff_proto sniff_detect(const unsigned char *buf, size_t len);

/* "tls", "mmtls", "h2", "http", "ssh", "other"; "unknown" otherwise. */
const char *sniff_name(enum sniff_proto p);

#define SNIFF_MAX_ALPN 16
#define SNIFF_MAX_HELLO 65536 /* longest ClientHello body accepted */

struct sniff_hello {
	char sni[256]; /* lower-cased host_name; "" when absent */
	int nalpn;
	/*
	 * Protocol names in client order. Names that are not printable ASCII
	 * or longer than 63 bytes are skipped, as are names past the 16th.
	 */
	char alpn[SNIFF_MAX_ALPN][64];
	unsigned legacy_version;       /* e.g. 0x0303 */
	int has_supported_versions_13; /* supported_versions offers 0x0304 */
};

/*
 * Parse a ClientHello from the start of a TLS stream (the handshake message
 * may span several records). Returns 1 with out filled in, 0 when more bytes
 * are needed, -1 when the bytes are malformed or not a ClientHello
 * (including one claiming more than SNIFF_MAX_HELLO bytes). out is written
 * only when 1 is returned. As with sniff_detect, a 1 or -1 for some bytes
 * stays the answer when more bytes follow.
 */
int sniff_client_hello(const unsigned char *buf, size_t len,
    struct sniff_hello *out) __attribute__((warn_unused_result));

#endif
