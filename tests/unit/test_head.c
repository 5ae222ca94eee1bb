/* Unit tests for proxy/http/head.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy/http/head.h"

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

/* Drops the fields a Connection field names, and the fixed ones a test
 * asks for; replaces Host. */
static enum head_verdict
hop_line(struct head_line *l, void *arg)
{
	const struct head *h = arg;

	if (l->nlen == 4 && strncasecmp(l->name, "host", 4) == 0) {
		l->replace = "b.test";
		return HEAD_REPLACE;
	}
	if (l->nlen == 19 &&
	    strncasecmp(l->name, "proxy-authorization", 19) == 0)
		return HEAD_DROP;
	return head_connection_names(h, l->name, l->nlen) ? HEAD_DROP
							  : HEAD_KEEP;
}

static char *
drain_text(struct evbuffer *out)
{
	size_t n = evbuffer_get_length(out);
	char *s = malloc(n + 1);

	assert_non_null(s);
	evbuffer_remove(out, s, n);
	s[n] = '\0';
	return s;
}

/* Lines go byte for byte (case, spacing, order); only decided ones
 * change, and an obs-fold continuation follows its field. */
static void
test_copy_raw(void **state)
{
	static const char raw[] =
	    "GET http://a/x HTTP/1.1\r\n"
	    "hOsT:a\r\n"
	    "Connection:  keep-alive, X-Secret ,Upgrade\r\n"
	    "X-Secret: s\r\n"
	    "\tfolded\r\n"
	    "Proxy-Authorization: Basic x\r\n"
	    "Keep-Alive: timeout=5\r\n"
	    "x-odd :  spaced  \r\n"
	    "Accept: */*\r\n"
	    "\r\n";
	struct head h;
	struct evbuffer *out = evbuffer_new();
	char *text;

	(void)state;
	head_init(&h, 4096);
	add(&h, HEAD_PART_FIELD, "hOsT");
	add(&h, HEAD_PART_VALUE, "a");
	add(&h, HEAD_PART_FIELD, "Connection");
	add(&h, HEAD_PART_VALUE, "keep-alive, X-Secret ,Upgrade");
	assert_true(head_connection_names(&h, "x-secret", 8));
	assert_true(head_connection_names(&h, "UPGRADE", 7));
	assert_false(head_connection_names(&h, "close", 5));

	assert_int_equal(
	    head_copy_raw(out, raw, sizeof(raw) - 1, "GET /x HTTP/1.1", 15,
		hop_line, &h, "Via: 1.1 peephole\r\n"),
	    0);
	text = drain_text(out);
	assert_string_equal(text,
	    "GET /x HTTP/1.1\r\n"
	    "hOsT: b.test\r\n"
	    "Connection:  keep-alive, X-Secret ,Upgrade\r\n"
	    "x-odd :  spaced  \r\n"
	    "Accept: */*\r\n"
	    "Via: 1.1 peephole\r\n"
	    "\r\n");
	free(text);

	/* nothing decided: the head as received */
	assert_int_equal(
	    head_copy_raw(out, raw, sizeof(raw) - 1, NULL, 0, NULL, NULL, NULL),
	    0);
	text = drain_text(out);
	assert_string_equal(text, raw);
	free(text);

	/* a head without its blank line is not copied whole */
	assert_int_equal(
	    head_copy_raw(out, raw, sizeof(raw) - 3, NULL, 0, NULL, NULL, NULL),
	    -1);
	evbuffer_free(out);
	head_free(&h);
}

/* Logged header text: the RFC 9110 list and what Connection names. */
static void
test_text_is_hop(void **state)
{
	(void)state;
	assert_true(head_text_is_hop("Keep-Alive", 10, NULL));
	assert_true(head_text_is_hop("TE", 2, "Connection: close\r\n"));
	assert_true(head_text_is_hop("proxy-authorization", 19, NULL));
	assert_false(head_text_is_hop("X-Hop", 5, NULL));
	assert_true(head_text_is_hop(
	    "X-Hop", 5, "Host: a\r\nConnection: keep-alive, x-hop\r\n"));
	assert_false(head_text_is_hop(
	    "X-Ho", 4, "Host: a\r\nConnection: keep-alive, x-hop"));
	assert_false(head_text_is_hop("X-Hop", 5, "X-Note: x-hop\r\n"));
	assert_false(
	    head_text_is_hop("Content-Length", 14, "Connection: close\r\n"));
	/* every Connection line counts, not just the first */
	assert_true(head_text_is_hop(
	    "X-Two", 5, "Connection: close\r\nConnection: x-two\r\n"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_split_spans),
	    cmocka_unit_test(test_limit),
	    cmocka_unit_test(test_value_before_field_rejected),
	    cmocka_unit_test(test_copy_raw),
	    cmocka_unit_test(test_text_is_hop),
	};

	return cmocka_run_group_tests_name("head", tests, NULL, NULL);
}
