/*
 * transparent: connections netfilter redirected to a transparent listener.
 */
#ifndef PEEPHOLE_TRANSPARENT_H
#define PEEPHOLE_TRANSPARENT_H

struct conn;

/*
 * Start a redirected connection: its original destination becomes the
 * tunnel's target. Closes it when there is none, or when that is peephole
 * itself (the connection was not redirected).
 */
void transparent_start(struct conn *c);

#endif
