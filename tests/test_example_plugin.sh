#!/usr/bin/env bash
# Installs this build into a scratch prefix, builds the out-of-tree example
# plugin against the installed files (CMake package, then pkg-config), and
# runs it next to `none` with the installed oombench.
set -euo pipefail
src=$1
build=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
cmake -S "$src/docs/example-plugin" -B "$tmp/ex" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/ex" >/dev/null
test -f "$tmp/ex/inplace_infer.so"
# pkg-config route: a plain compiler line.
pc=$(ls -d "$tmp"/prefix/lib*/pkgconfig | head -n1)
cflags=$(PKG_CONFIG_PATH="$pc" pkg-config --cflags oombench)
cc -std=c17 -Wall -Wextra -Werror -shared -fPIC $cflags "$src/docs/example-plugin/inplace_infer.c" \
   -o "$tmp/inplace_pc.so"
"$tmp/prefix/bin/oombench" list --plugin "$tmp/ex/inplace_infer.so" -s /nonexistent >"$tmp/list"
grep -q "inplace_infer" "$tmp/list"
"$tmp/prefix/bin/oombench" run --quiet --no-color --out "$tmp/out" \
    --plugin "$tmp/ex/inplace_infer.so" "$src/docs/example-plugin/scenario.yaml" | tee "$tmp/log"
grep -q "check PASS.*output_rel_err" "$tmp/log"
grep -q "check PASS.*memory.activations" "$tmp/log"
echo "example plugin: built against the installed package and ran: 1 passed, 0 failed"
