#!/usr/bin/env bash
# make fuzz: run every Go fuzz target of the module for a bounded time each
# (default 30s; `make fuzz FUZZTIME=5m` for the long run). Crashers land in
# the package's testdata/fuzz/ and then run as regression tests in `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
t=${1:-30s}
status=0
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "== $pkg $target ($t)"
    go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$t" -parallel 2 || status=1
  done
done
exit $status
