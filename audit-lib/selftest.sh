#!/usr/bin/env bash
# Self-test of the loadprobe audit library (LD_AUDIT).
#
#   audit-lib/selftest.sh [path/to/libloadprobe-audit.so]
#
# Without an argument (and without $LOADPROBE_AUDIT_SO) it builds the library with
# `swift build --scratch-path .build-audit --product loadprobe-audit`.
# Needs: python3, a C compiler (cc or $CC), readelf; strace is optional.
# Exits 0 when all checks pass, 1 on failure (with the reasons), 2 on bad usage/setup.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
so=${1:-${LOADPROBE_AUDIT_SO:-}}
for tool in python3 readelf "${CC:-cc}"; do
    command -v "$tool" >/dev/null 2>&1 || { echo "selftest: '$tool' not found" >&2; exit 2; }
done
if [ -z "$so" ]; then
    if ! (cd "$root" && swift build --scratch-path .build-audit --product loadprobe-audit) >&2; then
        echo "selftest: swift build of loadprobe-audit failed" >&2
        exit 1
    fi
    so="$(cd "$root" && swift build --scratch-path .build-audit --show-bin-path)/libloadprobe-audit.so"
fi
exec python3 "$here/test/selftest.py" "$so"
