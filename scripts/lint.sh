#!/usr/bin/env bash
# `make lint`: clang-format check and the banned-function grep of STYLE.md.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find lib adaptor providers podvm cli test bench -name '*.[ch]')
if ! clang-format --dry-run --Werror $files; then
	echo "lint: clang-format differences (run 'make format')"
	status=1
fi
banned='\b(sprintf|vsprintf|strcpy|strcat|strncpy|strtok|atoi|atol|gets|system)[[:space:]]*\('
if grep -nE "$banned" $files; then
	echo "lint: banned functions above"
	status=1
fi
# getenv only in lib/config; exit( only in main.c files and test programs.
if grep -nE '\bgetenv[[:space:]]*\(' $(echo "$files" | grep -v '^lib/config/' | grep -v '^test/'); then
	echo "lint: getenv outside lib/config"
	status=1
fi
if grep -nE '(^|[^_a-z])exit[[:space:]]*\(' $(echo "$files" | grep -vE '(^|/)main\.c$|^test/|^bench/'); then
	echo "lint: exit( outside main"
	status=1
fi
((status == 0)) && echo "lint: clean"
exit $status
