#!/usr/bin/env bash
# make fuzz: run every Go fuzz target of the module for a bounded time each
# (default 30s; `make fuzz FUZZTIME=5m` for the long run). Crashers land in
# the package's testdata/fuzz/ and then run as regression tests in `make test`.
#
# FUZZPARALLEL: fuzz workers per target (default: half the CPUs, at least 1,
# so a run leaves room for other work; the Go default is every CPU).
# FUZZMINIMIZETIME: time spent shrinking each new interesting input (default
# 10s; Go's 60s default lets the heavy targets, which unpack and verify a
# whole image per input, spend most of a short run minimizing).
set -euo pipefail
cd "$(dirname "$0")/.."
t=${1:-30s}
ncpu=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
par=${FUZZPARALLEL:-$(( ncpu / 2 > 0 ? ncpu / 2 : 1 ))}
mini=${FUZZMINIMIZETIME:-10s}
status=0
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "== $pkg $target ($t, $par workers)"
    go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$t" -fuzzminimizetime "$mini" -parallel "$par" || status=1
  done
done
exit $status
