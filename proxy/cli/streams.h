/*
 * streams: what `peephole streams` (streams.c) and `peephole show stream`
 * (streams_show.c) share.
 *
 * A stream is a connection whose interception decision was "passthrough",
 * or one that was never decided (a tunnel relayed raw) whose protocol is
 * not HTTP and that carried no request other than its CONNECT. An
 * intercepted or blocked connection is not a stream.
 */
#ifndef PEEPHOLE_CLI_STREAMS_H
#define PEEPHOLE_CLI_STREAMS_H

#include <stddef.h>
#include <stdint.h>

/* The definition above, over connections aliased c. */
#define STREAMS_WHERE                                                          \
	"(c.decision = 'passthrough' OR (c.decision IS NULL"                   \
	" AND coalesce(c.protocol, '') NOT IN ('', 'http', 'http-upgrade')"    \
	" AND NOT EXISTS (SELECT 1 FROM requests r WHERE r.conn_id = c.id"     \
	" AND upper(coalesce(r.method, '')) <> 'CONNECT')))"

/* "host:port" into buf, the address in brackets when it is IPv6; "-" for
 * no host. */
void streams_hostport(char *buf, size_t len, const char *host, int64_t port);
/* The protocol label into buf, "mmtls?" when the record layer stopped
 * making sense (bad). */
void streams_proto(char *buf, size_t len, const char *proto, int bad);

#endif
