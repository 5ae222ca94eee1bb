/*
 * replay: `peephole replay` (cli_replay in cli.h). The header rewriting is
 * here on its own, for tests.
 */
#ifndef PEEPHOLE_CLI_REPLAY_H
#define PEEPHOLE_CLI_REPLAY_H

#include <stdint.h>

/*
 * The header fields a replay sends, as "Name: value\r\n" lines: the logged
 * ones (logged) minus the hop-by-hop fields (Connection and those it names,
 * Proxy-Connection, Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade,
 * Proxy-Authorization), Content-Length and Expect; minus the names in
 * remove; with each "Name: value" of set replacing every same-named field;
 * Host: host added when none is left; Content-Length: body_len when there
 * is a body or the method takes one; Connection: close. malloc'd; NULL on
 * ENOMEM.
 */
char *replay_fields(const char *logged, const char *const *set, int nset,
    const char *const *remove, int nremove, const char *host,
    const char *method, int64_t body_len);

#endif
