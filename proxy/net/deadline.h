/*
 * deadline: a connection's one timer, a deadline per state.
 */
#ifndef PEEPHOLE_DEADLINE_H
#define PEEPHOLE_DEADLINE_H

#include <event2/util.h>

struct conn;

/* (Re)arm c's timer for its current state's deadline; none: disarmed. */
void deadline_arm(struct conn *c);

/* The timer's callback (arg: the struct conn). */
void deadline_cb(evutil_socket_t fd, short what, void *arg);

#endif
