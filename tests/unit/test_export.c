/*
 * export's pure pieces: file extensions from content types, and the three
 * ways a value is written for a shell.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/cli/export.h"

/* what f writes for (p, len), as a string */
static char *
written(
    void (*f)(FILE *, const unsigned char *, size_t), const char *p, size_t len)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *fp = open_memstream(&buf, &n);

	assert_non_null(fp);
	f(fp, (const unsigned char *)p, len);
	fclose(fp);
	return buf;
}

static void
test_extensions(void **state)
{
	(void)state;
	assert_string_equal(export_extension("image/jpeg"), "jpg");
	assert_string_equal(export_extension("IMAGE/PNG"), "png");
	assert_string_equal(
	    export_extension(" text/html; charset=utf-8"), "html");
	assert_string_equal(export_extension("application/json"), "json");
	assert_string_equal(
	    export_extension("application/problem+json"), "json");
	assert_string_equal(export_extension("application/atom+xml"), "xml");
	assert_string_equal(export_extension("image/svg+xml"), "svg");
	assert_string_equal(export_extension("text/javascript"), "js");
	assert_string_equal(export_extension("application/x-unknown"), "bin");
	assert_string_equal(export_extension("image/jpegx"), "bin");
	assert_string_equal(export_extension(""), "bin");
	assert_string_equal(export_extension(NULL), "bin");
}

static void
test_shell_quote(void **state)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *fp = open_memstream(&buf, &n);

	(void)state;
	export_shell_quote(fp, "it's $HOME `x` \\n");
	fclose(fp);
	assert_string_equal(buf, "'it'\\''s $HOME `x` \\n'");
	free(buf);
}

static void
test_shell_ansi(void **state)
{
	char *s;

	(void)state;
	s = written(export_shell_ansi,
	    "a'b\\c\n\x01\xff"
	    "9",
	    9);
	/* two hex digits always, so a digit after \x01 stays a digit */
	assert_string_equal(s, "$'a\\'b\\\\c\\x0a\\x01\\xff9'");
	free(s);
}

static void
test_shell_printf(void **state)
{
	char *s;

	(void)state;
	s = written(export_shell_printf,
	    "a\0'\\\x80"
	    "7",
	    6);
	assert_string_equal(s,
	    "'a\\0000'\\''\\\\\\0200"
	    "7'");
	free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_extensions),
	    cmocka_unit_test(test_shell_quote),
	    cmocka_unit_test(test_shell_ansi),
	    cmocka_unit_test(test_shell_printf),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
