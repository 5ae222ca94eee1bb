/* learned: see learned.h. A mutex-guarded open-addressing hash table with
 * linear probing; the list stays small (one entry per pinned service). */
#include "proxy/net/learned.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct learned_entry {
	char *host;
	int port;
	int rejections;
	int64_t next_retry_us;
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

static void
learned_free_slots(struct learned_entry *slots, size_t cap)
{
	for (size_t i = 0; i < cap; i++)
		free(slots[i].host);
	free(slots);
}

void
learned_free(struct learned *l)
{
	if (l == NULL)
		return;
	learned_free_slots(l->slots, l->cap);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

int64_t
learned_delay(int64_t base_us, int n)
{
	int64_t d = base_us < 0 ? 0 : base_us;

	if (d >= LEARNED_MAX_WAIT_US)
		return LEARNED_MAX_WAIT_US;
	/* doubling stops at the cap, so it cannot overflow */
	for (int i = 1; i < n && d > 0 && d < LEARNED_MAX_WAIT_US; i++)
		d *= 2;
	return d > LEARNED_MAX_WAIT_US ? LEARNED_MAX_WAIT_US : d;
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

/* host:port's entry, made (zeroed) when new. NULL on ENOMEM. lock held. */
static struct learned_entry *
learned_get(struct learned *l, const char *host, int port)
{
	struct learned_entry *e;

	if ((l->n + 1) * 2 > l->cap && learned_grow(l) == -1)
		return NULL;
	e = learned_slot(l->slots, l->cap, host, port);
	if (e->host == NULL) {
		if ((e->host = strdup(host)) == NULL)
			return NULL;
		e->port = port;
		e->rejections = 0;
		e->next_retry_us = 0;
		l->n++;
	}
	return e;
}

int
learned_set(struct learned *l, const char *host, int port, int rejections,
    int64_t next_retry_us)
{
	struct learned_entry *e;

	pthread_mutex_lock(&l->lock);
	e = learned_get(l, host, port);
	if (e != NULL) {
		e->rejections = rejections;
		e->next_retry_us = next_retry_us;
	}
	pthread_mutex_unlock(&l->lock);
	return e != NULL ? 0 : -1;
}

int
learned_reject(struct learned *l, const char *host, int port, int64_t now_us,
    int64_t base_us, int64_t *next_retry_us)
{
	struct learned_entry *e;
	int n = -1;

	pthread_mutex_lock(&l->lock);
	e = learned_get(l, host, port);
	if (e != NULL) {
		if (e->rejections < 1000000)
			e->rejections++;
		n = e->rejections;
		e->next_retry_us = now_us + learned_delay(base_us, n);
		*next_retry_us = e->next_retry_us;
	}
	pthread_mutex_unlock(&l->lock);
	return n;
}

int
learned_backoff(struct learned *l, const char *host, int port, int64_t now_us,
    int64_t *left_us)
{
	struct learned_entry *e;
	int rc;

	pthread_mutex_lock(&l->lock);
	e = learned_slot(l->slots, l->cap, host, port);
	rc = e->host != NULL && now_us < e->next_retry_us;
	if (rc && left_us != NULL)
		*left_us = e->next_retry_us - now_us;
	pthread_mutex_unlock(&l->lock);
	return rc;
}

/*
 * Empty slot i, then move back every later entry of its probe run that
 * would no longer be found past the hole (deletion without tombstones,
 * Knuth 6.4 algorithm R). lock held.
 */
static void
learned_remove_at(struct learned *l, size_t i)
{
	size_t mask = l->cap - 1, j = i, home;

	free(l->slots[i].host);
	l->slots[i].host = NULL;
	l->n--;
	for (;;) {
		j = (j + 1) & mask;
		if (l->slots[j].host == NULL)
			return;
		home = learned_hash(l->slots[j].host, l->slots[j].port) & mask;
		/* stays if its home lies cyclically in (i, j] */
		if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
			continue;
		l->slots[i] = l->slots[j];
		l->slots[j].host = NULL;
		i = j;
	}
}

int
learned_forget(struct learned *l, const char *host, int port)
{
	struct learned_entry *e;
	int rc;

	pthread_mutex_lock(&l->lock);
	e = learned_slot(l->slots, l->cap, host, port);
	rc = e->host != NULL;
	if (rc)
		learned_remove_at(l, (size_t)(e - l->slots));
	pthread_mutex_unlock(&l->lock);
	return rc;
}

size_t
learned_count(struct learned *l)
{
	size_t n;

	pthread_mutex_lock(&l->lock);
	n = l->n;
	pthread_mutex_unlock(&l->lock);
	return n;
}

void
learned_replace(struct learned *l, struct learned *src)
{
	struct learned_entry *old;
	size_t oldcap;

	pthread_mutex_lock(&l->lock);
	old = l->slots;
	oldcap = l->cap;
	l->slots = src->slots;
	l->cap = src->cap;
	l->n = src->n;
	pthread_mutex_unlock(&l->lock);
	src->slots = old;
	src->cap = oldcap;
	learned_free(src);
}
