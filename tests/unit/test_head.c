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
	/* bare LF, no space after the colon, spaces around the tokens */
	assert_true(head_text_is_hop("X-Lf", 4, "A: 1\nconnection:x-lf ,  y"));
	/* an empty name is never hop-by-hop, whatever the list holds */
	assert_false(head_text_is_hop("", 0, "Connection: a, ,\r\n"));
	/* a colon-less line is no Connection field */
	assert_false(head_text_is_hop("X-Hop", 5, "Connection x-hop\r\n"));
}

/* The fields head_text_next yields, as "name=value|" for easy comparison. */
static char *
walk(const char *text)
{
	struct head_text_iter it;
	const char *n, *v;
	size_t nl, vl, len = 0;
	char *out = calloc(1, 1);

	assert_non_null(out);
	head_text_init(&it, text);
	while (head_text_next(&it, &n, &nl, &v, &vl)) {
		char *grown = realloc(out, len + nl + vl + 3);
		assert_non_null(grown);
		out = grown;
		memcpy(out + len, n, nl);
		len += nl;
		out[len++] = '=';
		memcpy(out + len, v, vl);
		len += vl;
		out[len++] = '|';
		out[len] = '\0';
		/* the pointers lie inside the field's logged span */
		assert_true(n == it.line);
		assert_true(v + vl <= it.line + it.len);
	}
	/* the end is sticky */
	assert_int_equal(head_text_next(&it, NULL, NULL, NULL, NULL), 0);
	return out;
}

static void
expect_walk(const char *text, const char *want)
{
	char *got = walk(text);

	assert_string_equal(got, want);
	free(got);
}

static void
test_text_iter_basic(void **state)
{
	(void)state;
	expect_walk(NULL, "");
	expect_walk("", "");
	expect_walk("\r\n\r\n", "");
	expect_walk("Host: a\r\nAccept: */*\r\n", "Host=a|Accept=*/*|");
	/* no line break after the last line */
	expect_walk("Host: a\r\nAccept: */*", "Host=a|Accept=*/*|");
	/* bare LF, lone CR, and blank lines in between */
	expect_walk("A: 1\nB: 2\rC: 3\r\n\r\n\nD: 4", "A=1|B=2|C=3|D=4|");
	/* names keep their spelling; repeats come in order */
	expect_walk("set-Cookie: a=1\r\nSet-Cookie: b=2\r\n",
	    "set-Cookie=a=1|Set-Cookie=b=2|");
}

/* RFC 9110 5.5: the whitespace around a value is not part of it. */
static void
test_text_iter_values(void **state)
{
	struct head_text_iter it;
	char *line;

	(void)state;
	/* the line is as logged: spacing kept, trailing whitespace too */
	head_text_init(&it, "Name:value \t\r\n");
	assert_int_equal(head_text_next(&it, NULL, NULL, NULL, NULL), 1);
	assert_int_equal(it.len, strlen("Name:value \t"));
	line = head_text_line(&it);
	assert_non_null(line);
	assert_string_equal(line, "Name:value \t");
	free(line);
	expect_walk("A:1\r\n", "A=1|");
	expect_walk("A: \t 1 2 \t \r\n", "A=1 2|");
	/* empty values, with and without whitespace */
	expect_walk("A:\r\nB: \r\nC:", "A=|B=|C=|");
	/* only the first colon splits */
	expect_walk("Host: a:8080\r\nX: ::\r\n", "Host=a:8080|X=::|");
}

/* Lines that are not fields are skipped, the ones around them kept. */
static void
test_text_iter_not_fields(void **state)
{
	(void)state;
	expect_walk("no colon here\r\nA: 1\r\njunk\r\n", "A=1|");
	expect_walk("junk", "");
	/* the name is what precedes the colon, as logged */
	expect_walk(": empty name\r\nA : 1\r\n", "=empty name|A =1|");
	/* a continuation with no field above it */
	expect_walk(" lead: 1\r\nA: 1\r\n", "A=1|");
	expect_walk("A: 1\r\n\r\n cont: 2\r\n", "A=1|");
	expect_walk("junk\r\n\tcont: 2\r\nB: 3", "B=3|");
}

/* obs-fold: continuation lines are the field's, as logged. */
static void
test_text_iter_fold(void **state)
{
	struct head_text_iter it;
	const char *n, *v;
	size_t nl, vl;
	const char *t = "A: 1\r\n 2\r\n\t3 \r\nB: x\r\n";
	char *line;

	(void)state;
	head_text_init(&it, t);
	assert_int_equal(head_text_next(&it, &n, &nl, &v, &vl), 1);
	assert_int_equal(nl, 1);
	assert_int_equal(vl, strlen("1\r\n 2\r\n\t3"));
	assert_memory_equal(v, "1\r\n 2\r\n\t3", vl);
	assert_true(it.line == t);
	assert_int_equal(it.len, strlen("A: 1\r\n 2\r\n\t3 "));
	line = head_text_line(&it);
	assert_non_null(line);
	assert_string_equal(line, "A: 1 2 3 ");
	free(line);
	assert_int_equal(head_text_next(&it, &n, &nl, &v, &vl), 1);
	assert_memory_equal(n, "B", nl);
	assert_memory_equal(v, "x", vl);
	/* a field without a fold comes back byte for byte */
	line = head_text_line(&it);
	assert_non_null(line);
	assert_string_equal(line, "B: x");
	free(line);
	assert_int_equal(head_text_next(&it, &n, &nl, &v, &vl), 0);
	/* a value that starts or ends in a fold is trimmed past it */
	expect_walk("A:\r\n  1\r\n  \r\nB: 2", "A=1|B=2|");
	expect_walk("A: 1\n 2", "A=1\n 2|");
}

/* No fixed buffers: a field of any length comes back whole. */
static void
test_text_iter_long(void **state)
{
	size_t big = 1 << 20;
	char *t = malloc(big + 64);
	const char *v;
	size_t vl;

	(void)state;
	assert_non_null(t);
	strcpy(t, "A: 1\r\nX-Big: ");
	memset(t + 13, 'v', big);
	strcpy(t + 13 + big, "  \r\nB: 2");
	v = head_text_find(t, "x-big", &vl);
	assert_non_null(v);
	assert_int_equal(vl, big);
	assert_true(v == t + 13);
	v = head_text_find(t, "B", &vl);
	assert_non_null(v);
	assert_memory_equal(v, "2", vl);
	free(t);
}

/* HTTP/2 pseudo-headers are logged first, ":name: value": the name keeps
 * its colon and ends at the second one. */
static void
test_text_iter_pseudo(void **state)
{
	(void)state;
	expect_walk(":method: GET\r\n:scheme: https\r\n"
		    ":authority: example.test:8443\r\n:path: /x?a=b:c\r\n"
		    "accept: */*\r\n",
	    ":method=GET|:scheme=https|:authority=example.test:8443|"
	    ":path=/x?a=b:c|accept=*/*|");
	expect_walk(":status: 200\r\nserver: t\r\n", ":status=200|server=t|");
	/* no second colon, or no token after the first: an empty name */
	expect_walk(":path\r\n: x\r\n::y\r\n", "=path|=x|=:y|");
	assert_true(head_text_pseudo(":path", 5));
	assert_false(head_text_pseudo(":", 1));
	assert_false(head_text_pseudo("path", 4));
	assert_string_equal(
	    head_text_find(":path: /a\r\nPath: /b", "path", NULL), "/b");
	{
		size_t vl = 0;
		const char *v = head_text_find(":path: /a\r\n", ":path", &vl);
		assert_non_null(v);
		assert_int_equal(vl, 2);
		assert_memory_equal(v, "/a", 2);
	}
}

static void
test_text_find(void **state)
{
	const char *t =
	    "Content-Type: text/html \r\nX: 1\r\ncontent-type: b\r\n";
	const char *v;
	size_t vl = 99;

	(void)state;
	v = head_text_find(t, "content-type", &vl);
	assert_non_null(v);
	assert_int_equal(vl, 9);
	assert_memory_equal(v, "text/html", 9);
	assert_non_null(head_text_find(t, "X", NULL));
	/* whole names only: no prefix, no longer name */
	assert_null(head_text_find(t, "content", &vl));
	assert_null(head_text_find(t, "x-1", &vl));
	assert_null(head_text_find("Xy: 1", "x", &vl));
	assert_null(head_text_find(NULL, "x", &vl));
	assert_null(head_text_find("", "x", &vl));
	/* a colon-less line never matches */
	assert_null(head_text_find("content-type\r\n", "content-type", &vl));
	v = head_text_find("A:\r\n", "a", &vl);
	assert_non_null(v);
	assert_int_equal(vl, 0);
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
	    cmocka_unit_test(test_text_iter_basic),
	    cmocka_unit_test(test_text_iter_values),
	    cmocka_unit_test(test_text_iter_not_fields),
	    cmocka_unit_test(test_text_iter_fold),
	    cmocka_unit_test(test_text_iter_long),
	    cmocka_unit_test(test_text_iter_pseudo),
	    cmocka_unit_test(test_text_find),
	};

	return cmocka_run_group_tests_name("head", tests, NULL, NULL);
}
