/*
 * rawcap: give up CAP_NET_RAW. Only `peephole trace` needs raw sockets,
 * and only to open them; with `setcap cap_net_raw+ep peephole` every
 * command would hold the capability, also those that parse untrusted
 * traffic (run, web, replay). main drops it before any other command
 * runs, trace right after its raw sockets are open.
 */
#ifndef PEEPHOLE_TRACE_RAWCAP_H
#define PEEPHOLE_TRACE_RAWCAP_H

/* Clear CAP_NET_RAW from this thread's effective, permitted and
 * inheritable sets (the ambient set follows the permitted one); it cannot
 * come back short of an exec. 0 (also when it was not held) / -1 with
 * errno. Call it before any thread is started. */
int rawcap_drop(void) __attribute__((warn_unused_result));

#endif
