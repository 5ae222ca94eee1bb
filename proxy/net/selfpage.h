/*
 * selfpage: requests addressed to peephole itself (origin-form through the
 * explicit proxy, peephole.local, one of our own addresses): the status
 * page, the CA download and the PAC file (http/onboard.c builds them).
 */
#ifndef PEEPHOLE_SELFPAGE_H
#define PEEPHOLE_SELFPAGE_H

struct conn;

/* 1 if the request names this proxy rather than an origin. */
int selfpage_is_for_us(struct conn *c);

/* Answer the request with our own page, record it, end the exchange. */
void selfpage_answer(struct conn *c);

#endif
