/*
 * export: logged exchanges out of the store in the forms other tools take —
 * HAR 1.2 (`export har`), a curl command (`export curl`) and the captured
 * bodies as files (`export bodies`). The pure pieces are here for tests.
 */
#ifndef PEEPHOLE_CLI_EXPORT_H
#define PEEPHOLE_CLI_EXPORT_H

#include <stddef.h>
#include <stdio.h>

/* File extension (no dot) for a Content-Type value, parameters ignored:
 * "image/jpeg; q=1" -> "jpg"; unknown or NULL -> "bin". */
const char *export_extension(const char *content_type);

/* Write s as one POSIX-shell word: '...' with ' as '\''. */
void export_shell_quote(FILE *fp, const char *s);

/*
 * Write len bytes as a bash $'...' word (\xHH for anything but printable
 * ASCII, \' and \\ escaped). Bytes must not contain NUL (a shell argument
 * cannot).
 */
void export_shell_ansi(FILE *fp, const unsigned char *p, size_t len);

/* Write len bytes as a printf(1) %b argument: '...' with every byte that
 * is not printable ASCII as \0ooo, and ' and \ escaped. Any bytes. */
void export_shell_printf(FILE *fp, const unsigned char *p, size_t len);

#endif
