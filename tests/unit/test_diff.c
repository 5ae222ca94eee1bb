/*
 * diff: the line diff and its unified hunks, the JSON path diff, the
 * header comparison and the choice of body kind for `replay --diff`.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/cli/diff.h"

static char *
unified(const char *a, const char *b, size_t max, int *truncated)
{
	size_t n = 0;
	struct diff_edit *e =
	    diff_lines(a, strlen(a), b, strlen(b), max, &n, truncated);
	char *u;

	assert_non_null(e);
	u = diff_unified(e, n, DIFF_CONTEXT);
	free(e);
	assert_non_null(u);
	return u;
}

static void
test_lines_same_and_empty(void **state)
{
	int t = 1;
	char *u = unified("a\nb\n", "a\nb\n", 100, &t);

	(void)state;
	assert_string_equal(u, "");
	assert_int_equal(t, 0);
	free(u);
	u = unified("", "", 100, &t);
	assert_string_equal(u, "");
	free(u);
	u = unified("", "x\n", 100, &t);
	assert_string_equal(u, "@@ -0,0 +1,1 @@\n+x\n");
	free(u);
}

static void
test_lines_change_in_the_middle(void **state)
{
	int t;
	char *u = unified("1\n2\n3\n4\n5\n6\n7\n8\n9\n",
	    "1\n2\n3\n4\nfive\n6\n7\n8\n9\n", 100, &t);

	(void)state;
	assert_string_equal(u,
	    "@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n"
	    " 6\n 7\n 8\n");
	free(u);
}

static void
test_lines_two_hunks_and_crlf(void **state)
{
	int t;
	char *u = unified("a\r\nb\nc\nd\ne\nf\ng\nh\ni\nj\n",
	    "A\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\n", 100, &t);

	(void)state;
	assert_string_equal(u,
	    "@@ -1,4 +1,4 @@\n-a\n+A\n b\n c\n d\n"
	    "@@ -8,3 +8,4 @@\n h\n i\n j\n+k\n");
	free(u);
}

static void
test_lines_lcs_is_minimal(void **state)
{
	size_t n = 0, dels = 0, adds = 0;
	int t;
	const char *a = "x\na\nb\nc\ny\n", *b = "a\nz\nb\nc\n";
	struct diff_edit *e =
	    diff_lines(a, strlen(a), b, strlen(b), 100, &n, &t);

	(void)state;
	assert_non_null(e);
	for (size_t i = 0; i < n; i++) {
		dels += e[i].op == DIFF_DEL;
		adds += e[i].op == DIFF_ADD;
	}
	/* a, b, c kept: x and y go, z comes */
	assert_int_equal(dels, 2);
	assert_int_equal(adds, 1);
	free(e);
}

static void
test_lines_capped(void **state)
{
	int t = 0;
	char *u = unified("1\n2\n3\n4\n", "1\n2\n3\n5\n", 3, &t);

	(void)state;
	/* only three lines a side compared: no difference seen, but said */
	assert_int_equal(t, 1);
	assert_string_equal(u, "");
	free(u);
}

static json_t *
jdiff(const char *a, const char *b, size_t max, size_t *count)
{
	json_t *ja = json_loads(a, JSON_DECODE_ANY, NULL);
	json_t *jb = json_loads(b, JSON_DECODE_ANY, NULL);
	json_t *c = json_array();

	assert_non_null(ja);
	assert_non_null(jb);
	*count = diff_json(ja, jb, c, max);
	json_decref(ja);
	json_decref(jb);
	return c;
}

static void
assert_change(json_t *c, size_t i, const char *path, const char *op,
    const char *orig, const char *rep)
{
	json_t *x = json_array_get(c, i);
	char *s;

	assert_non_null(x);
	assert_string_equal(
	    json_string_value(json_object_get(x, "path")), path);
	assert_string_equal(json_string_value(json_object_get(x, "op")), op);
	if (orig != NULL) {
		s = json_dumps(json_object_get(x, "original"),
		    JSON_ENCODE_ANY | JSON_COMPACT);
		assert_string_equal(s, orig);
		free(s);
	} else
		assert_null(json_object_get(x, "original"));
	if (rep != NULL) {
		s = json_dumps(json_object_get(x, "replay"),
		    JSON_ENCODE_ANY | JSON_COMPACT);
		assert_string_equal(s, rep);
		free(s);
	} else
		assert_null(json_object_get(x, "replay"));
}

static void
test_json_paths(void **state)
{
	size_t count;
	json_t *c = jdiff("{\"data\":{\"items\":[{\"price\":1},{\"price\":12}],"
			  "\"gone\":true,\"same\":[1,2]},\"a b\":1}",
	    "{\"data\":{\"items\":[{\"price\":1},{\"price\":13},{}],"
	    "\"same\":[1,2],\"new\":\"x\"},\"a b\":2}",
	    100, &count);

	(void)state;
	assert_int_equal(count, 5);
	assert_change(c, 0, "$.data.items[1].price", "changed", "12", "13");
	assert_change(c, 1, "$.data.items[2]", "added", NULL, "{}");
	assert_change(c, 2, "$.data.gone", "removed", "true", NULL);
	assert_change(c, 3, "$.data.new", "added", NULL, "\"x\"");
	assert_change(c, 4, "$[\"a b\"]", "changed", "1", "2");
	json_decref(c);
}

static void
test_json_types_scalars_and_cap(void **state)
{
	size_t count;
	json_t *c = jdiff("{\"a\":[1]}", "{\"a\":{\"0\":1}}", 100, &count);

	(void)state;
	assert_int_equal(count, 1);
	assert_change(c, 0, "$.a", "changed", "[1]", "{\"0\":1}");
	json_decref(c);
	c = jdiff("1", "2", 100, &count);
	assert_change(c, 0, "$", "changed", "1", "2");
	json_decref(c);
	c = jdiff("[1,2,3,4]", "[5,6,7,8]", 2, &count);
	assert_int_equal(count, 4);
	assert_int_equal(json_array_size(c), 2);
	json_decref(c);
	c = jdiff("{\"x\":[1]}", "{\"x\":[1]}", 100, &count);
	assert_int_equal(count, 0);
	assert_int_equal(json_array_size(c), 0);
	json_decref(c);
}

static void
test_headers(void **state)
{
	json_t *h = diff_headers("Content-Type: text/plain\r\n"
				 "Connection: close, X-Hop\r\n"
				 "X-Hop: 1\r\n"
				 "Set-Cookie: a=1\r\n"
				 "set-cookie: b=2\r\n"
				 "X-Gone: yes\r\n",
	    "content-type: application/json\r\n"
	    "Transfer-Encoding: chunked\r\n"
	    "Set-Cookie: a=1, b=2\r\n"
	    "X-New:  v \r\n");

	(void)state;
	assert_non_null(h);
	assert_int_equal(json_array_size(json_object_get(h, "removed")), 1);
	assert_string_equal(
	    json_string_value(json_object_get(
		json_array_get(json_object_get(h, "removed"), 0), "name")),
	    "X-Gone");
	assert_int_equal(json_array_size(json_object_get(h, "added")), 1);
	assert_string_equal(
	    json_string_value(json_object_get(
		json_array_get(json_object_get(h, "added"), 0), "value")),
	    "v");
	assert_int_equal(json_array_size(json_object_get(h, "changed")), 1);
	assert_string_equal(
	    json_string_value(json_object_get(
		json_array_get(json_object_get(h, "changed"), 0), "replay")),
	    "application/json");
	json_decref(h);
}

static void
test_body_kinds(void **state)
{
	static const unsigned char bin1[] = {0, 1, 2, 0xff};
	static const unsigned char bin2[] = {0, 1, 3};
	json_t *b;

	(void)state;
	b = diff_bodies((const unsigned char *)"{\"a\":1}", 7,
	    (const unsigned char *)"{\"a\":2}", 7);
	assert_string_equal(
	    json_string_value(json_object_get(b, "kind")), "json");
	assert_false(json_is_true(json_object_get(b, "same")));
	json_decref(b);
	b = diff_bodies(
	    (const unsigned char *)"x\n", 2, (const unsigned char *)"y\n", 2);
	assert_string_equal(
	    json_string_value(json_object_get(b, "kind")), "text");
	assert_string_equal(json_string_value(json_object_get(b, "unified")),
	    "@@ -1,1 +1,1 @@\n-x\n+y\n");
	json_decref(b);
	b = diff_bodies(bin1, sizeof(bin1), bin2, sizeof(bin2));
	assert_string_equal(
	    json_string_value(json_object_get(b, "kind")), "binary");
	assert_int_equal(json_integer_value(json_object_get(
			     json_object_get(b, "original"), "size")),
	    4);
	assert_int_equal(strlen(json_string_value(json_object_get(
			     json_object_get(b, "replay"), "sha256"))),
	    64);
	json_decref(b);
	assert_true(diff_is_text((const unsigned char *)"caf\xc3\xa9", 5));
	/* a character cut by truncation is still text */
	assert_true(diff_is_text((const unsigned char *)"caf\xc3", 4));
	assert_false(diff_is_text((const unsigned char *)"\xff\xfe", 2));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lines_same_and_empty),
	    cmocka_unit_test(test_lines_change_in_the_middle),
	    cmocka_unit_test(test_lines_two_hunks_and_crlf),
	    cmocka_unit_test(test_lines_lcs_is_minimal),
	    cmocka_unit_test(test_lines_capped),
	    cmocka_unit_test(test_json_paths),
	    cmocka_unit_test(test_json_types_scalars_and_cap),
	    cmocka_unit_test(test_headers),
	    cmocka_unit_test(test_body_kinds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
