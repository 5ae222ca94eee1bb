/*
 * Unit tests for proxy/net/ws.c, the WebSocket record: messages parsed
 * from copies of both directions, payloads copied into the batch, close
 * code and reason kept, a batch handed to the store every WS_BATCH_MSGS
 * messages and the last one at ws_end, the "stopped" row once a direction
 * is not WebSocket, ws_feed_evbuffer over many chains, and NULL handling.
 *
 * ws.c is included (h2o style) to read struct ws. The worker gets a
 * discarding store (store_open_discard, never started): store_submit
 * queues, store_queued counts the batches, store_close frees them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "proxy/net/ws.c"

#include "tests/unit/conn_fixture.h"

struct wfx {
	struct fx *f;
	struct store *st;
	struct ws *w;
};

static int
setup(void **state)
{
	struct wfx *x = calloc(1, sizeof(*x));

	assert_non_null(x);
	x->f = fx_new();
	x->st = store_open_discard((struct store_limits){0, 0});
	assert_non_null(x->st);
	x->f->w->store = x->st;
	x->w = ws_new(x->f->c, 7, NULL);
	assert_non_null(x->w);
	*state = x;
	return 0;
}

static int
teardown(void **state)
{
	struct wfx *x = *state;

	ws_end(x->w, x->f->c);
	fx_free(x->f);
	store_close(x->st);
	free(x);
	return 0;
}

/* An unmasked (server) frame: fin, opcode, payload < 126 bytes. */
static size_t
frame(unsigned char *out, int fin, int op, const void *p, size_t n)
{
	assert_true(n < 126);
	out[0] = (unsigned char)((fin ? 0x80 : 0) | op);
	out[1] = (unsigned char)n;
	memcpy(out + 2, p, n);
	return n + 2;
}

/* A masked (client) frame. */
static size_t
mframe(unsigned char *out, int op, const void *p, size_t n)
{
	static const unsigned char key[4] = {0x11, 0x22, 0x33, 0x44};

	assert_true(n < 126);
	out[0] = (unsigned char)(0x80 | op);
	out[1] = (unsigned char)(0x80 | n);
	memcpy(out + 2, key, 4);
	for (size_t i = 0; i < n; i++)
		out[6 + i] = ((const unsigned char *)p)[i] ^ key[i & 3];
	return n + 6;
}

static void
test_ws_new_without_store(void **state)
{
	struct wfx *x = *state;

	x->f->w->store = NULL;
	assert_null(ws_new(x->f->c, 1, NULL));
	x->f->w->store = x->st;
	x->f->cfg.record_flows = 0;
	assert_null(ws_new(x->f->c, 1, NULL));
	x->f->cfg.record_flows = 1;
	/* a bad extension value is logged, the record still made */
	struct ws *w = ws_new(x->f->c, 1, "permessage-deflate; bogus=1");
	assert_non_null(w);
	assert_int_equal(w->seq, 1);
	assert_int_equal(w->conn_id, x->f->c->id);
	ws_end(w, x->f->c);
}

static void
test_ws_end_null(void **state)
{
	struct wfx *x = *state;

	ws_end(NULL, x->f->c);
	ws_feed(NULL, x->f->c, 0, "x", 1);
	ws_feed_evbuffer(NULL, x->f->c, 1, NULL);
	assert_int_equal(store_queued(x->st), 0);
}

/* Both directions: messages in arrival order, payloads unmasked and
 * copied (the source may change after), fragments joined. */
static void
test_ws_messages_copied(void **state)
{
	struct wfx *x = *state;
	unsigned char b[256];
	size_t n;

	n = mframe(b, WSFRAME_TEXT, "hello", 5);
	ws_feed(x->w, x->f->c, 0, b, n);
	memset(b, 0, sizeof(b));
	n = frame(b, 0, WSFRAME_BINARY, "ab", 2);
	n += frame(b + n, 1, WSFRAME_CONT, "cd", 2);
	/* fed byte by byte, as a slow socket would */
	for (size_t i = 0; i < n; i++)
		ws_feed(x->w, x->f->c, 1, b + i, 1);
	memset(b, 0, sizeof(b));

	assert_int_equal(x->w->n, 2);
	assert_int_equal(x->w->m[0].dir, 0);
	assert_int_equal(x->w->m[0].opcode, WSFRAME_TEXT);
	assert_int_equal(x->w->m[0].len, 5);
	assert_memory_equal(x->w->m[0].data, "hello", 5);
	assert_int_equal(x->w->m[0].size, 5);
	assert_int_equal(x->w->m[0].close_code, -1);
	assert_null(x->w->m[0].close_reason);
	assert_true(x->w->m[0].t_us > 0);
	assert_int_equal(x->w->m[1].dir, 1);
	assert_int_equal(x->w->m[1].opcode, WSFRAME_BINARY);
	assert_int_equal(x->w->m[1].len, 4);
	assert_memory_equal(x->w->m[1].data, "abcd", 4);
	assert_int_equal(x->w->m[1].wire_bytes, 4);
	assert_int_equal(x->w->bytes, 9);
	assert_int_equal(store_queued(x->st), 0);
}

static void
test_ws_close_code_reason(void **state)
{
	struct wfx *x = *state;
	unsigned char b[64];
	size_t n = frame(b, 1, WSFRAME_CLOSE, "\x03\xe8going away", 12);

	ws_feed(x->w, x->f->c, 1, b, n);
	/* an empty close: no code, no reason */
	n = mframe(b, WSFRAME_CLOSE, "", 0);
	ws_feed(x->w, x->f->c, 0, b, n);
	assert_int_equal(x->w->n, 2);
	assert_int_equal(x->w->m[0].close_code, 1000);
	assert_string_equal(x->w->m[0].close_reason, "going away");
	assert_int_equal(x->w->m[0].opcode, WSFRAME_CLOSE);
	assert_int_equal(x->w->m[1].close_code, -1);
	assert_null(x->w->m[1].close_reason);
	assert_null(x->w->m[1].data);
	assert_int_equal(x->w->m[1].len, 0);
}

/* Every WS_BATCH_MSGS messages a batch goes to the store; its indexes
 * carry on; ws_end sends the rest. */
static void
test_ws_batches(void **state)
{
	struct wfx *x = *state;
	unsigned char b[16];
	size_t n = frame(b, 1, WSFRAME_TEXT, "m", 1);

	for (int i = 0; i < WS_BATCH_MSGS - 1; i++)
		ws_feed(x->w, x->f->c, 1, b, n);
	assert_int_equal(x->w->n, WS_BATCH_MSGS - 1);
	assert_int_equal(store_queued(x->st), 0);
	ws_feed(x->w, x->f->c, 1, b, n);
	assert_int_equal(x->w->n, 0);
	assert_null(x->w->m);
	assert_int_equal(x->w->bytes, 0);
	assert_int_equal(x->w->next_idx, WS_BATCH_MSGS);
	assert_int_equal(store_queued(x->st), 1);
	/* two more in one call: both parsed, no batch yet */
	memcpy(b + n, b, n);
	ws_feed(x->w, x->f->c, 1, b, 2 * n);
	assert_int_equal(x->w->n, 2);
	assert_int_equal(store_queued(x->st), 1);
	ws_end(x->w, x->f->c);
	x->w = NULL;
	assert_int_equal(store_queued(x->st), 2);
}

/* A batch also goes at WS_BATCH_BYTES of captured payload. */
static void
test_ws_batch_bytes(void **state)
{
	struct wfx *x = *state;
	size_t big = WS_BATCH_BYTES / 2 + 1;
	unsigned char *b = malloc(big + 10);

	assert_non_null(b);
	b[0] = 0x82;
	b[1] = 127;
	for (int i = 0; i < 8; i++)
		b[2 + i] = (unsigned char)((uint64_t)big >> (56 - 8 * i));
	memset(b + 10, 'z', big);
	ws_feed(x->w, x->f->c, 1, b, big + 10);
	assert_int_equal(x->w->n, 1);
	assert_int_equal(x->w->m[0].len, big);
	assert_int_equal(store_queued(x->st), 0);
	ws_feed(x->w, x->f->c, 1, b, big + 10);
	assert_int_equal(x->w->n, 0);
	assert_int_equal(x->w->next_idx, 2);
	assert_int_equal(store_queued(x->st), 1);
	free(b);
}

/* A reserved opcode: the direction stops, one error row says why, and
 * nothing more is parsed in either direction. */
static void
test_ws_stopped(void **state)
{
	struct wfx *x = *state;
	unsigned char b[32];
	size_t n = frame(b, 1, WSFRAME_TEXT, "ok", 2);

	ws_feed(x->w, x->f->c, 1, b, n);
	b[0] = 0x83; /* opcode 3 is reserved */
	ws_feed(x->w, x->f->c, 1, b, n);
	assert_int_equal(x->w->stopped, 1);
	assert_int_equal(x->w->n, 2);
	assert_int_equal(x->w->m[1].dir, 1);
	assert_non_null(x->w->m[1].error);
	assert_true(strlen(x->w->m[1].error) > 0);
	assert_null(x->w->m[1].data);
	assert_int_equal(x->w->m[1].close_code, -1);
	/* once: a second bad frame, or good ones, add nothing */
	ws_feed(x->w, x->f->c, 1, b, n);
	n = mframe(b, WSFRAME_TEXT, "late", 4);
	ws_feed(x->w, x->f->c, 0, b, n);
	assert_int_equal(x->w->n, 2);
	ws_end(x->w, x->f->c);
	x->w = NULL;
	assert_int_equal(store_queued(x->st), 1);
}

static void
ref_done(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	(void)arg;
}

/* Feed frames held in an evbuffer of one chain per 3 bytes. */
static struct evbuffer *
chained(const unsigned char *b, size_t n)
{
	struct evbuffer *in = evbuffer_new();

	assert_non_null(in);
	for (size_t off = 0; off < n; off += 3)
		assert_int_equal(
		    evbuffer_add_reference(in, b + off,
			off + 3 <= n ? 3 : n - off, ref_done, NULL),
		    0);
	return in;
}

/* An evbuffer of a few chains: every byte read once, in order, and the
 * buffer left as it was. */
static void
test_ws_feed_evbuffer(void **state)
{
	struct wfx *x = *state;
	unsigned char b[64];
	struct evbuffer *in;
	size_t n;

	n = frame(b, 1, WSFRAME_TEXT, "0123456789abcdefghij", 20);
	n += frame(b + n, 1, WSFRAME_PING, "p", 1);
	in = chained(b, n); /* 9 chains */
	assert_int_equal(evbuffer_peek(in, (ssize_t)n, NULL, NULL, 0), 9);
	ws_feed_evbuffer(x->w, x->f->c, 1, in);
	assert_int_equal(evbuffer_get_length(in), n);
	assert_int_equal(x->w->n, 2);
	assert_int_equal(x->w->m[0].len, 20);
	assert_memory_equal(x->w->m[0].data, "0123456789abcdefghij", 20);
	assert_int_equal(x->w->m[1].opcode, WSFRAME_PING);
	assert_memory_equal(x->w->m[1].data, "p", 1);
	evbuffer_free(in);
}

/*
 * Regression: ws_feed_evbuffer read only the first 16 chains of its
 * buffer: evbuffer_peek with len -1 fills the vector and returns at most
 * its size, and "n <= 16" ended the loop; the bytes past the 16th chain
 * went on unparsed and the parser lost its place.
 */
static void
test_ws_feed_evbuffer_many_chains(void **state)
{
	struct wfx *x = *state;
	unsigned char b[128];
	char payload[100];
	struct evbuffer *in;
	size_t n;

	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (char)('a' + i % 26);
	n = frame(b, 1, WSFRAME_TEXT, payload, sizeof(payload));
	n += frame(b + n, 1, WSFRAME_PING, "p", 1);
	assert_true(n <= sizeof(b));
	in = chained(b, n); /* 35 chains */
	assert_int_equal(evbuffer_peek(in, (ssize_t)n, NULL, NULL, 0), 35);
	ws_feed_evbuffer(x->w, x->f->c, 1, in);
	assert_int_equal(evbuffer_get_length(in), n);
	assert_int_equal(x->w->n, 2);
	assert_int_equal(x->w->m[0].len, sizeof(payload));
	assert_memory_equal(x->w->m[0].data, payload, sizeof(payload));
	assert_int_equal(x->w->m[1].opcode, WSFRAME_PING);
	evbuffer_free(in);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		test_ws_new_without_store, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ws_end_null, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_ws_messages_copied, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_ws_close_code_reason, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ws_batches, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_ws_batch_bytes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ws_stopped, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_ws_feed_evbuffer, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_ws_feed_evbuffer_many_chains, setup, teardown),

	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
