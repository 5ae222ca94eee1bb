#!/bin/sh
# List C functions longer than N lines (default 60), longest first:
#   tests/long-functions.sh [-n N] FILE...
# A function body is what lies between a line that is exactly "{" and the
# next line that is exactly "}" (KNF: braces of functions on their own
# line); the name is taken from the line holding "name(" above the brace.
max=60
if [ "$1" = -n ]; then
	max=$2
	shift 2
fi
awk -v max="$max" '
/^[A-Za-z_][A-Za-z0-9_]*\(/ { name = $0; sub(/\(.*/, "", name) }
/^\{$/ { start = FNR; fn = name }
/^\}/ && start {
	n = FNR - start + 1
	if (n > max)
		printf "%5d %s:%d %s\n", n, FILENAME, start, fn
	start = 0
}
' "$@" | sort -rn
