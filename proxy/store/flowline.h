/*
 * flowline: the lines `peephole run` prints, one per exchange, stream or
 * note, as text or as one compact JSON object. The one place they are
 * formatted: the worker only marks a record for printing, and the store's
 * writer thread calls flowline_print once the record is written, so an
 * exchange line carries the requests row id `peephole show` takes.
 *
 *   #42 06:03:41.123 127.0.0.1 GET http://a.test/x 200 1234 3.2ms
 *   c7 06:03:41.500 127.0.0.1 stream tls a.test:443 up=517 down=3120
 *       1203.4ms passthrough: rule a.test        (one line)
 *   c8 06:03:42.010 127.0.0.1 passthrough a.test:443 pinned (learned): ...
 */
#ifndef PEEPHOLE_FLOWLINE_H
#define PEEPHOLE_FLOWLINE_H

#include <stddef.h>

struct store_rec;

/* Lines stay shorter than this, newline included: the URL, error and
 * reason are cut to fit. */
#define FLOWLINE_MAX 1024

/*
 * Format rec's line into buf (NUL-terminated, no newline, cut to len - 1
 * bytes at most); json: a JSON object rather than text. Returns the
 * length, 0 for a record with no line. Any thread; no I/O.
 */
size_t flowline_format(
    const struct store_rec *rec, int json, char *buf, size_t len);

/*
 * The store's printer (store_set_printer): writes rec's line and a newline
 * to stdout (flushed by the writer per batch). arg points to an int, the
 * enum config_format. Writer thread.
 */
void flowline_print(const struct store_rec *rec, void *arg);

#endif
