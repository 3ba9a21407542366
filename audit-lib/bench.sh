#!/usr/bin/env bash
# Overhead of the audit library on a start-up with many RPATH lookups.
#
#   audit-lib/bench.sh [path/to/libloadprobe-audit.so] [--libs N] [--runs R] [--keep]
#
# Generates (once, cached in $TMPDIR/lp-audit-bench) a program needing N libraries (default
# 300), each in its own RPATH directory, and times it untraced, with the audit library
# loaded but inert, and recording. Prints medians and the overhead ratio (target <= 1.10).
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
so=""
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then so=$1; shift; fi
so=${so:-${LOADPROBE_AUDIT_SO:-}}
if [ -z "$so" ]; then
    (cd "$root" && swift build --scratch-path .build-audit --product loadprobe-audit) >&2 || exit 1
    so="$(cd "$root" && swift build --scratch-path .build-audit --show-bin-path)/libloadprobe-audit.so"
fi
exec python3 "$here/test/bench.py" "$so" "$@"
