/* learned: see learned.h. A mutex-guarded open-addressing hash set; the
 * list stays small (one entry per pinned service). */
#include "net/learned.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct learned_entry {
	char *host;
	int port;
};

struct learned {
	pthread_mutex_t lock;
	struct learned_entry *slots;
	size_t cap, n;
};

static size_t
learned_hash(const char *host, int port)
{
	size_t h = 2166136261u;

	for (; *host; host++)
		h = (h ^ (unsigned char)*host) * 16777619u;
	return h ^ (size_t)port;
}

struct learned *
learned_new(void)
{
	struct learned *l = calloc(1, sizeof(*l));

	if (l == NULL)
		return NULL;
	l->cap = 64;
	l->slots = calloc(l->cap, sizeof(*l->slots));
	if (l->slots == NULL || pthread_mutex_init(&l->lock, NULL) != 0) {
		free(l->slots);
		free(l);
		return NULL;
	}
	return l;
}

void
learned_free(struct learned *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->cap; i++)
		free(l->slots[i].host);
	free(l->slots);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

/* The slot holding host:port, or the empty slot where it would go. */
static struct learned_entry *
learned_slot(
    struct learned_entry *slots, size_t cap, const char *host, int port)
{
	size_t i = learned_hash(host, port) & (cap - 1);

	while (slots[i].host != NULL &&
	    (slots[i].port != port || strcmp(slots[i].host, host) != 0))
		i = (i + 1) & (cap - 1);
	return &slots[i];
}

static int
learned_grow(struct learned *l)
{
	size_t ncap = l->cap * 2;
	struct learned_entry *ns = calloc(ncap, sizeof(*ns));

	if (ns == NULL)
		return -1;
	for (size_t i = 0; i < l->cap; i++)
		if (l->slots[i].host != NULL)
			*learned_slot(ns, ncap, l->slots[i].host,
			    l->slots[i].port) = l->slots[i];
	free(l->slots);
	l->slots = ns;
	l->cap = ncap;
	return 0;
}

int
learned_add(struct learned *l, const char *host, int port)
{
	struct learned_entry *e;
	int rc = 0;

	pthread_mutex_lock(&l->lock);
	if ((l->n + 1) * 2 > l->cap && learned_grow(l) == -1) {
		rc = -1;
		goto out;
	}
	e = learned_slot(l->slots, l->cap, host, port);
	if (e->host == NULL) {
		e->host = strdup(host);
		if (e->host == NULL) {
			rc = -1;
			goto out;
		}
		e->port = port;
		l->n++;
		rc = 1;
	}
out:
	pthread_mutex_unlock(&l->lock);
	return rc;
}

int
learned_has(struct learned *l, const char *host, int port)
{
	int rc;

	pthread_mutex_lock(&l->lock);
	rc = learned_slot(l->slots, l->cap, host, port)->host != NULL;
	pthread_mutex_unlock(&l->lock);
	return rc;
}
