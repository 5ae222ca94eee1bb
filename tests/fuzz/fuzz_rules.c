/*
 * libFuzzer harness for filters/rules.c. The first byte picks an action,
 * the rest is a pattern for rules_add; a few hosts are then matched against
 * it, the input itself too (as a host, and as a pattern matched against
 * itself). Checks: an error always comes with a message, a match names
 * the pattern as given, an exact name or address matches itself.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filters/rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const hosts[] = {"example.com", "a.example.com",
    "EXAMPLE.com.", "1.2.3.4", "10.9.8.7", "::1", "[::1]", "fd00::1",
    "::ffff:10.1.2.3", "*", ".", "", "[", "]", "a..b", "x:1"};

static void
match_all(const struct rules *r, const char *self)
{
	static const unsigned ports[] = {0, 1, 80, 443, 65535, 70000};
	const char *m;

	for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++)
		for (size_t j = 0; j < sizeof(ports) / sizeof(ports[0]); j++) {
			enum rules_action a =
			    rules_match(r, hosts[i], ports[j], &m);
			if (m == NULL && a != RULES_INTERCEPT)
				abort();
		}
	(void)rules_match(r, self, 443, &m);
	(void)rules_match(r, self, 0, NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rules *r, *fixed;
	enum rules_action action, a;
	const char *m;
	char *s, err[128];
	size_t plen;

	if (size == 0)
		return 0;
	action = (enum rules_action)(data[0] % 4);
	if ((s = malloc(size)) == NULL)
		return 0;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	plen = strlen(s);
	if ((r = rules_new()) == NULL)
		goto out;
	err[0] = '\0';
	if (rules_add(r, action, s, err, sizeof(err)) == -1) {
		if (err[0] == '\0' || memchr(err, '\0', sizeof(err)) == NULL)
			abort();
	} else {
		if ((int)action > RULES_BLOCK)
			abort();
		match_all(r, s);
		/* a plain name or address, without port, matches itself */
		a = rules_match(r, s, 443, &m);
		if (m != NULL && (strcmp(m, s) != 0 || a != action))
			abort();
		if (plen > 0 && strpbrk(s, "*/[") == NULL &&
		    (s[0] != '.' && strchr(s, ':') == NULL) && m == NULL)
			abort();
	}
	(void)rules_add(r, RULES_BLOCK, s, NULL, 0);
	rules_free(r);

	/* the input as a host against every kind of rule */
	if ((fixed = rules_new()) == NULL)
		goto out;
	if (rules_add(fixed, RULES_BLOCK, "*.example.com:443", NULL, 0) ||
	    rules_add(fixed, RULES_PASSTHROUGH, "10.0.0.0/8", NULL, 0) ||
	    rules_add(fixed, RULES_PASSTHROUGH, "[fd00::/8]:443", NULL, 0) ||
	    rules_add(fixed, RULES_BLOCK, "api.example.net", NULL, 0) ||
	    rules_add(fixed, RULES_BLOCK, "::1", NULL, 0))
		abort();
	a = rules_match(fixed, s, (unsigned)size, &m);
	if ((a == RULES_INTERCEPT) != (m == NULL))
		abort();
	rules_free(fixed);
out:
	free(s);
	return 0;
}
