/*
 * learned: the host:port pairs whose clients rejected peephole's forged
 * certificate (certificate pinning), shared by all workers. Later
 * connections to them are passed through untouched. Loaded from the store
 * at start; additions are written back through the store.
 */
#ifndef PEEPHOLE_LEARNED_H
#define PEEPHOLE_LEARNED_H

struct learned;

struct learned *learned_new(void) __attribute__((warn_unused_result));
void learned_free(struct learned *l);

/* Add host:port; returns 1 if it was new, 0 if known, -1 on ENOMEM. */
int learned_add(struct learned *l, const char *host, int port);

/* 1 if host:port is on the list. Any thread. */
int learned_has(struct learned *l, const char *host, int port);

#endif
