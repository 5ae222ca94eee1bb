/*
 * rules: which hosts to intercept, pass through untouched, or block.
 * A rule is an action and a pattern; the first rule that matches decides.
 * Pure: no sockets, no DNS (a name rule never matches an address, nor the
 * other way round). Read-only after loading, so threads may share it.
 */
#ifndef PEEPHOLE_RULES_H
#define PEEPHOLE_RULES_H

#include <stddef.h>

enum rules_action { RULES_INTERCEPT = 0, RULES_PASSTHROUGH, RULES_BLOCK };

struct rules;

/* An empty rule list (everything intercepted); NULL on ENOMEM. */
struct rules *rules_new(void) __attribute__((warn_unused_result));
/* Free r and its rules; NULL does nothing. */
void rules_free(struct rules *r);

/*
 * Append a rule. Patterns, each optionally followed by ":port" (1-65535):
 *   api.example.com         that host only
 *   *.example.com           its subdomains, not example.com itself;
 *   .example.com            the same
 *   *                       every host and address
 *   192.0.2.1, 2001:db8::1  that address ("[2001:db8::1]:443" with a port)
 *   10.0.0.0/8, fd00::/8    a CIDR block ("[fd00::/8]:443" with a port)
 * Names are matched case-insensitively, a trailing dot ignored. Returns 0,
 * or -1 with a message naming what is wrong in err (when err is not NULL).
 */
int rules_add(struct rules *r, enum rules_action action, const char *pattern,
    char *err, size_t errlen) __attribute__((warn_unused_result));

/*
 * The action for host (a name, or an IP literal; IPv6 with or without
 * brackets) on port. The first matching rule in the order added wins and
 * *matched (when matched is not NULL) points at its pattern as given,
 * valid until rules_free; with no match RULES_INTERCEPT and *matched = NULL.
 * A rule with a port never matches port 0 (port unknown).
 */
enum rules_action rules_match(const struct rules *r, const char *host,
    unsigned port, const char **matched);

/* "intercept", "passthrough", "block"; "unknown" otherwise. */
const char *rules_action_name(enum rules_action a);
/* Parse an action name (any case) into *out. Returns 0, or -1. */
int rules_parse_action(const char *s, enum rules_action *out)
    __attribute__((warn_unused_result));

#endif
