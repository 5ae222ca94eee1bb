/*
 * Unit tests for proxy/cli/output.c's table fitting: UTF-8 widths, the
 * "…" cut (URLs in the middle), minimum widths, columns never cut and
 * columns left out. The .c is included to reach its static functions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "proxy/cli/output.c"

/* Render t fitted to width into a malloc'd string. */
static char *
render(const struct out_table *t, size_t width)
{
	FILE *fp = tmpfile();
	char *buf;
	long len;

	assert_non_null(fp);
	out_table_render(t, fp, width);
	len = ftell(fp);
	assert_true(len >= 0);
	rewind(fp);
	buf = calloc(1, (size_t)len + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)len, fp), (size_t)len);
	fclose(fp);
	return buf;
}

/* Every line of s at most width UTF-8 characters. */
static void
assert_lines_fit(const char *s, size_t width)
{
	const char *nl;
	char line[1024];

	for (; *s != '\0'; s = nl + 1) {
		nl = strchr(s, '\n');
		assert_non_null(nl);
		assert_true((size_t)(nl - s) < sizeof(line));
		memcpy(line, s, (size_t)(nl - s));
		line[nl - s] = '\0';
		if (out_width(line) > width)
			fail_msg("line wider than %zu: '%s'", width, line);
	}
}

static void
test_width_counts_utf8_characters(void **state)
{
	(void)state;
	assert_int_equal(out_width(""), 0);
	assert_int_equal(out_width("abc"), 3);
	assert_int_equal(out_width("caf\xc3\xa9"), 4);
	assert_int_equal(out_width(OUT_ELLIPSIS), 1);
	assert_int_equal(out_width("\xe6\x97\xa5\xe6\x9c\xac"), 2);
}

static void
test_cut_tail_keeps_characters_whole(void **state)
{
	char *s;

	(void)state;
	s = out_cut("abcdefgh", 5, 0);
	assert_string_equal(s, "abcd" OUT_ELLIPSIS);
	free(s);
	s = out_cut("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 3, 0);
	assert_string_equal(s, "\xc3\xa9\xc3\xa9" OUT_ELLIPSIS);
	assert_int_equal(out_width(s), 3);
	free(s);
	s = out_cut("short", 10, 0);
	assert_string_equal(s, "short");
	free(s);
}

static void
test_cut_url_keeps_host_and_path_end(void **state)
{
	const char *url = "https://api.example.com/very/long/path/with/many/"
			  "segments/v1/items?id=3";
	char *s;

	(void)state;
	s = out_cut(url, 36, 1);
	assert_string_equal(
	    s, "https://api.example.com/" OUT_ELLIPSIS "/items?id=3");
	assert_true(out_width(s) <= 36);
	free(s);
	s = out_cut(url, 42, 1);
	assert_string_equal(
	    s, "https://api.example.com/" OUT_ELLIPSIS "/v1/items?id=3");
	free(s);
	/* no room for the host: the middle goes */
	s = out_cut(url, 11, 1);
	assert_int_equal(out_width(s), 11);
	assert_memory_equal(s, "https", 5);
	assert_true(strstr(s, OUT_ELLIPSIS) != NULL);
	assert_true(strstr(s, "id=3") != NULL);
	free(s);
}

static struct out_table *
table(void)
{
	static const char *const h[] = {"id", "url", "status", "note"};
	static const char *const r1[] = {"12345",
	    ("https://api.example.com/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/"
	     "t/u/v/w/x/y/z/v1/items?id=3"),
	    "200", "a note that goes on and on and on and on"};
	static const char *const r2[] = {
	    "7", "http://x.test/", "404", "caf\xc3\xa9"};
	struct out_table *t = out_table_new(4, h);

	assert_non_null(t);
	out_table_align_right(t, 0);
	out_table_col(t, 1, OUT_COL_URL, 30, 0);
	out_table_col(t, 2, OUT_COL_RIGHT | OUT_COL_STATUS, 0, 0);
	out_table_col(t, 3, OUT_COL_SHRINK, 10, 1);
	assert_int_equal(out_table_add(t, r1), 0);
	assert_int_equal(out_table_add(t, r2), 0);
	return t;
}

static void
test_fit_shrinks_widest_first_down_to_minimum(void **state)
{
	struct out_table *t = table();
	char *s;

	(void)state;
	s = render(t, 90);
	assert_lines_fit(s, 90);
	/* ids and statuses are never cut */
	assert_non_null(strstr(s, "12345"));
	assert_non_null(strstr(s, "200"));
	assert_non_null(strstr(s, "404"));
	/* the widest gives way first: URL and note end up even */
	assert_non_null(strstr(s, "https://api.example.com/" OUT_ELLIPSIS));
	assert_non_null(strstr(s, "items?id=3 "));
	assert_non_null(strstr(s, "a note that goes on"));
	assert_null(strstr(s, "and on and on and on"));
	assert_non_null(strstr(s, "caf\xc3\xa9"));
	free(s);
	/* no fitting: full cells */
	s = render(t, 0);
	assert_non_null(strstr(s, "v/w/x/y/z/v1/items?id=3"));
	assert_non_null(strstr(s, "on and on and on"));
	assert_null(strstr(s, OUT_ELLIPSIS));
	free(s);
	out_table_free(t);
}

static void
test_fit_leaves_out_columns_then_minimums_give_way(void **state)
{
	struct out_table *t = table();
	char *s;

	(void)state;
	/* 5 + 30 + 6 + 10 + 6 spaces overflow 50: the note goes */
	s = render(t, 50);
	assert_lines_fit(s, 50);
	assert_null(strstr(s, "NOTE"));
	assert_non_null(strstr(s, "URL"));
	free(s);
	/* the URL's minimum gives way rather than overflow */
	s = render(t, 30);
	assert_lines_fit(s, 30);
	assert_non_null(strstr(s, "12345"));
	assert_non_null(strstr(s, "STATUS"));
	free(s);
	out_table_free(t);
}

static void
test_colour_does_not_count(void **state)
{
	struct out_table *t = table();
	char *s, *p;

	(void)state;
	out_view.colour = 1;
	s = render(t, 60);
	out_view.colour = 0;
	assert_non_null(strstr(s, "\033[32m200\033[0m"));
	assert_non_null(strstr(s, "\033[33m404\033[0m"));
	/* strip the codes: still fits */
	while ((p = strstr(s, "\033[")) != NULL)
		memmove(p, strchr(p, 'm') + 1, strlen(strchr(p, 'm') + 1) + 1);
	assert_lines_fit(s, 60);
	free(s);
	out_table_free(t);
}

static void
test_local_time_and_utc(void **state)
{
	char buf[64];
	int64_t us = 1700000000123000LL; /* 2023-11-14T22:13:20.123Z */

	(void)state;
	setenv("TZ", "Asia/Tokyo", 1);
	tzset();
	out_view.utc = 0;
	out_time(us, 1, OUT_TEXT, buf, sizeof(buf));
	assert_string_equal(buf, "2023-11-15 07:13:20.123");
	out_time(us, 1, OUT_CSV, buf, sizeof(buf));
	assert_string_equal(buf, "2023-11-14T22:13:20.123Z");
	out_view.utc = 1;
	out_time(us, 0, OUT_TEXT, buf, sizeof(buf));
	assert_string_equal(buf, "2023-11-14T22:13:20Z");
}

/* Logged header text as JSON: the fields in order, values trimmed (RFC
 * 9110 5.5), colon-less lines left out, a folded value whole. */
static void
test_json_headers(void **state)
{
	json_t *a;
	char *s;

	(void)state;
	a = out_json_headers(NULL);
	assert_true(json_is_null(a));
	json_decref(a);
	a = out_json_headers("");
	assert_int_equal(json_array_size(a), 0);
	json_decref(a);
	a = out_json_headers("Host:  a.example \r\nno colon\nX-Empty:\r\n"
			     "X-Fold: 1\r\n 2\r\nhost: b");
	s = json_dumps(a, JSON_COMPACT);
	assert_string_equal(s,
	    "[{\"name\":\"Host\",\"value\":\"a.example\"},"
	    "{\"name\":\"X-Empty\",\"value\":\"\"},"
	    "{\"name\":\"X-Fold\",\"value\":\"1\\r\\n 2\"},"
	    "{\"name\":\"host\",\"value\":\"b\"}]");
	free(s);
	json_decref(a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_width_counts_utf8_characters),
	    cmocka_unit_test(test_cut_tail_keeps_characters_whole),
	    cmocka_unit_test(test_cut_url_keeps_host_and_path_end),
	    cmocka_unit_test(test_fit_shrinks_widest_first_down_to_minimum),
	    cmocka_unit_test(
		test_fit_leaves_out_columns_then_minimums_give_way),
	    cmocka_unit_test(test_colour_does_not_count),
	    cmocka_unit_test(test_local_time_and_utc),
	    cmocka_unit_test(test_json_headers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
