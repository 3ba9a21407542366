#!/usr/bin/env bash
# Builds a small program whose N libraries each sit in their own RPATH
# directory — the shape of an HPC application built by Spack or Nix — into
# OUT (default: examples/long-rpath/out). Usage: build.sh [N] [OUT]
set -euo pipefail
n=${1:-40}
here=$(cd "$(dirname "$0")" && pwd)
out=${2:-$here/out}
rm -rf "$out"
mkdir -p "$out/src"
rpath=""
libs=""
for i in $(seq 1 "$n"); do
  d="$out/pkgs/dep$i/lib"
  mkdir -p "$d"
  printf 'int dep%d_value(void) { return %d; }\n' "$i" "$i" > "$out/src/dep$i.c"
  gcc -shared -fPIC -o "$d/libdep$i.so" -Wl,-soname,libdep$i.so "$out/src/dep$i.c" &
  rpath="$rpath${rpath:+:}$d"
  libs="$libs -L$d -ldep$i"
  if (( i % 8 == 0 )); then wait; fi
done
wait
{
  for i in $(seq 1 "$n"); do printf 'int dep%d_value(void);\n' "$i"; done
  printf '#include <stdio.h>\nint main(void) {\n  long sum = 0;\n'
  for i in $(seq 1 "$n"); do printf '  sum += dep%d_value();\n' "$i"; done
  printf '  printf("sum of %d libraries: %%ld\\n", sum);\n  return 0;\n}\n' "$n"
} > "$out/src/main.c"
# shellcheck disable=SC2086
gcc -o "$out/example" "$out/src/main.c" $libs -Wl,--disable-new-dtags,-rpath,"$rpath"
echo "$out/example"
