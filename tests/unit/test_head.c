/* Unit tests for proxy/http/head.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#include "http/head.h"

static void
add(struct head *h, enum head_part part, const char *s)
{
	assert_int_equal(head_append(h, part, s, strlen(s)), 0);
}

/* llhttp may split any token across reads: pieces must join. */
static void
test_split_spans(void **state)
{
	struct head h;
	size_t len;
	char *v;

	(void)state;
	head_init(&h, 4096);
	add(&h, HEAD_PART_TARGET, "http://a/");
	add(&h, HEAD_PART_TARGET, "x?y");
	add(&h, HEAD_PART_FIELD, "Ho");
	add(&h, HEAD_PART_FIELD, "st");
	add(&h, HEAD_PART_VALUE, "a");
	add(&h, HEAD_PART_VALUE, ".test");
	add(&h, HEAD_PART_FIELD, "X-One");
	add(&h, HEAD_PART_VALUE, "1");
	assert_int_equal(h.nfields, 2);
	const char *t = head_target(&h, &len);
	assert_int_equal(len, 12);
	assert_memory_equal(t, "http://a/x?y", 12);
	assert_int_equal(head_find(&h, "HOST", 0), 0);
	assert_int_equal(head_find(&h, "x-one", 0), 1);
	assert_int_equal(head_find(&h, "x-two", 0), -1);
	v = head_value_dup(&h, 0);
	assert_string_equal(v, "a.test");
	free(v);
	v = head_fields_text(&h);
	assert_string_equal(v, "Host: a.test\r\nX-One: 1\r\n");
	free(v);
	head_reset(&h);
	assert_int_equal(h.nfields, 0);
	add(&h, HEAD_PART_FIELD, "A");
	add(&h, HEAD_PART_VALUE, "b");
	v = head_fields_text(&h);
	assert_string_equal(v, "A: b\r\n");
	free(v);
	head_free(&h);
}

static void
test_limit(void **state)
{
	struct head h;

	(void)state;
	head_init(&h, 10);
	assert_int_equal(head_append(&h, HEAD_PART_FIELD, "12345", 5), 0);
	assert_int_equal(head_append(&h, HEAD_PART_VALUE, "678910", 6), -1);
	head_free(&h);
}

static void
test_value_before_field_rejected(void **state)
{
	struct head h;

	(void)state;
	head_init(&h, 100);
	assert_int_equal(head_append(&h, HEAD_PART_VALUE, "x", 1), -1);
	head_free(&h);
}

static void
test_hop_by_hop(void **state)
{
	static const char *const skip[] = {"host", NULL};
	struct head h;
	struct evbuffer *out = evbuffer_new();
	char buf[512];
	size_t n;

	(void)state;
	head_init(&h, 4096);
	add(&h, HEAD_PART_FIELD, "Host");
	add(&h, HEAD_PART_VALUE, "a");
	add(&h, HEAD_PART_FIELD, "Connection");
	add(&h, HEAD_PART_VALUE, "keep-alive, X-Secret ,Upgrade");
	add(&h, HEAD_PART_FIELD, "X-Secret");
	add(&h, HEAD_PART_VALUE, "s");
	add(&h, HEAD_PART_FIELD, "Proxy-Authorization");
	add(&h, HEAD_PART_VALUE, "Basic x");
	add(&h, HEAD_PART_FIELD, "TE");
	add(&h, HEAD_PART_VALUE, "trailers");
	add(&h, HEAD_PART_FIELD, "Keep-Alive");
	add(&h, HEAD_PART_VALUE, "timeout=5");
	add(&h, HEAD_PART_FIELD, "Upgrade");
	add(&h, HEAD_PART_VALUE, "websocket");
	add(&h, HEAD_PART_FIELD, "Accept");
	add(&h, HEAD_PART_VALUE, "*/*");
	assert_true(head_has_token(&h, "connection", "x-secret"));
	assert_true(head_has_token(&h, "Connection", "UPGRADE"));
	assert_false(head_has_token(&h, "connection", "close"));

	assert_int_equal(head_write_fields(&h, out, 1, 0, skip), 0);
	n = evbuffer_remove(out, buf, sizeof(buf) - 1);
	buf[n] = '\0';
	assert_string_equal(buf, "Accept: */*\r\n");

	/* a WebSocket upgrade keeps Upgrade */
	assert_int_equal(head_write_fields(&h, out, 1, 1, NULL), 0);
	n = evbuffer_remove(out, buf, sizeof(buf) - 1);
	buf[n] = '\0';
	assert_string_equal(
	    buf, "Host: a\r\nUpgrade: websocket\r\nAccept: */*\r\n");
	evbuffer_free(out);
	head_free(&h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_split_spans),
	    cmocka_unit_test(test_limit),
	    cmocka_unit_test(test_value_before_field_rejected),
	    cmocka_unit_test(test_hop_by_hop),
	};

	return cmocka_run_group_tests_name("head", tests, NULL, NULL);
}
