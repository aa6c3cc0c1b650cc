#!/usr/bin/env bash
# bench-remote.sh: the registry benchmark of issue 4. Against a registry on
# loopback, times in one run:
#   - layercheck remote REF (one pass per blob);
#   - crane validate --remote REF (go-containerregistry; reads each layer twice);
#   - a floor of standard tools: each blob fetched with curl, its stored bytes
#     hashed with openssl dgst -sha256, gzip layers also inflated with pigz -dc
#     and hashed again, two blobs at a time.
# Prints one Markdown table with wall times (best of $RUNS), ratios to the floor
# and peak RSS, ready for BENCHMARKS.md.
#
# Usage:
#   scripts/bench-remote.sh REF          a running loopback registry, e.g. localhost:5000/bench:latest
#   scripts/bench-remote.sh --serve [DIR] start Debian's docker-registry on 127.0.0.1:$PORT, push the OCI
#                                        layout DIR (default: .bench/oci, made by scripts/bench.sh) and time that
# Environment: RUNS (3), JOBS (layercheck --jobs; default its own), PORT (5055 for --serve).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
export PATH="$PATH:$(go env GOPATH)/bin"

need() { command -v "$1" >/dev/null 2>&1; }
for tool in curl jq openssl pigz /usr/bin/time; do
  need "$tool" || { echo "bench-remote needs $tool (apt-get install curl jq openssl pigz time)" >&2; exit 1; }
done
need crane || go install github.com/google/go-containerregistry/cmd/crane@v0.22.1

LC=bin/layercheck
go build -trimpath -o "$LC" ./cmd/layercheck

REG_PID=""
cleanup() { if [ -n "$REG_PID" ]; then kill "$REG_PID" 2>/dev/null || true; wait "$REG_PID" 2>/dev/null || true; fi; }
trap cleanup EXIT

if [ "${1:-}" = "--serve" ]; then
  LAYOUT=${2:-.bench/oci}
  [ -d "$LAYOUT" ] || { echo "no OCI layout at $LAYOUT: run scripts/bench.sh first, or give a layout directory" >&2; exit 1; }
  need docker-registry || { echo "--serve needs Debian's docker-registry (apt-get install docker-registry)" >&2; exit 1; }
  PORT=${PORT:-5055}
  STORE=$(mktemp -d)
  cat >"$STORE/config.yml" <<EOF
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $STORE/data}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$PORT}
EOF
  docker-registry serve "$STORE/config.yml" >"$STORE/registry.log" 2>&1 &
  REG_PID=$!
  for _ in $(seq 50); do curl -fsS "http://127.0.0.1:$PORT/v2/" >/dev/null 2>&1 && break; sleep 0.2; done
  REF=127.0.0.1:$PORT/bench:latest
  echo "pushing $LAYOUT to $REF (not timed)" >&2
  crane push "$LAYOUT" "$REF" >/dev/null 2>>"$STORE/registry.log"
else
  REF=${1:?usage: scripts/bench-remote.sh REF | --serve [LAYOUT]}
fi

# The floor needs the blob list: resolve REF to one image manifest (the first
# of an index) with curl, outside the timing.
HOSTPART=${REF%%/*}
REST=${REF#*/}
case "$REST" in
  *@*) REPO=${REST%@*}; TAG=${REST#*@} ;;
  *:*) REPO=${REST%:*}; TAG=${REST##*:} ;;
  *)   REPO=$REST; TAG=latest ;;
esac
BASE=http://$HOSTPART/v2/$REPO
ACCEPT='application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json'
MANIFEST=$(curl -fsS -H "Accept: $ACCEPT" "$BASE/manifests/$TAG")
if [ "$(jq -r '.manifests // empty | length' <<<"$MANIFEST")" != "" ]; then
  FIRST=$(jq -r '.manifests[0].digest' <<<"$MANIFEST")
  MANIFEST=$(curl -fsS -H "Accept: $ACCEPT" "$BASE/manifests/$FIRST")
fi
BLOBS=$(jq -r '.layers[] | "\(.digest) \(.mediaType)"' <<<"$MANIFEST")
BYTES=$(jq '[.layers[].size] | add' <<<"$MANIFEST")
export BASE BLOBS

floor() {  # curl each layer; sha256 of the stored bytes; gzip: pigz -dc | sha256 too; two at a time
  printf '%s\n' "$BLOBS" | xargs -P 2 -n 2 bash -c '
    set -o pipefail
    case "$2" in
      *gzip*) curl -fsS "$BASE/blobs/$1" | tee >(openssl dgst -sha256 >/dev/null) | pigz -dc | openssl dgst -sha256 >/dev/null ;;
      *)      curl -fsS "$BASE/blobs/$1" | openssl dgst -sha256 >/dev/null ;;
    esac' _
}
export -f floor

declare -A WALL RSS
time_cmd() {  # time_cmd LABEL CMD...: best wall time of $RUNS runs and the peak RSS (KiB) of that run
  local label=$1; shift
  local best="" bestrss=""
  for _ in $(seq "$RUNS"); do
    local tf out
    tf=$(mktemp)
    /usr/bin/time -f '%e %M' -o "$tf" "$@" >/dev/null 2>&1 || true
    out=$(tail -1 "$tf"); rm -f "$tf"
    local t=${out% *} m=${out#* }
    if [ -z "$best" ] || awk "BEGIN{exit !($t < $best)}"; then best=$t; bestrss=$m; fi
  done
  WALL[$label]=$best; RSS[$label]=$bestrss
}

# Every tool must succeed once (a failing run would time nothing useful).
"$LC" remote -q --no-progress ${JOBS:+--jobs "$JOBS"} "$REF"
crane validate --remote "$REF" >/dev/null
bash -c floor

time_cmd lc    "$LC" remote -q --no-progress ${JOBS:+--jobs "$JOBS"} "$REF"
time_cmd crane crane validate --remote "$REF"
time_cmd floor bash -c floor

ratio() { awk "BEGIN{printf \"%.2fx\", $1 / $2}"; }
cat <<TABLE
Registry on loopback, $REF, $(awk "BEGIN{printf \"%.2f\", $BYTES/1073741824}") GiB of layers in the first image.

| tool | wall (s, best of $RUNS) | vs floor | peak RSS (MiB) |
|---|---|---|---|
| layercheck remote | ${WALL[lc]} | $(ratio "${WALL[lc]}" "${WALL[floor]}") | $(( ${RSS[lc]} / 1024 )) |
| crane validate --remote | ${WALL[crane]} | $(ratio "${WALL[crane]}" "${WALL[floor]}") | $(( ${RSS[crane]} / 1024 )) |
| floor: curl + openssl + pigz -dc x2 | ${WALL[floor]} | 1.00x | - |

layercheck remote is $(ratio "${WALL[crane]}" "${WALL[lc]}") faster than crane validate --remote.
TABLE
