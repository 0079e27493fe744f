# Sourced by the shell tests, after `set -euo pipefail`, with the test's own
# arguments SOURCE_DIR BUILD_DIR: sets src, build, bin (the oombench binary),
# tmp (a folder removed on exit) and fail (the failed checks so far, counted
# by bad MESSAGE, which prints it and lets the test go on).
src=$1
build=$2
bin="$build/oombench"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }
