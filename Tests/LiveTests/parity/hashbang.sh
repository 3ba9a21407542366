#!/bin/sh
# A #! script: its arguments, a computation, and its own exit status.
printf 'script %s: %d arguments, first [%s]\n' "$0" "$#" "$1"
echo "sum $((40 + 2))"
echo "to stderr" >&2
exit 4
