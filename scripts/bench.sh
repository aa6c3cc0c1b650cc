#!/usr/bin/env bash
# make bench: the speed benchmark of issue 2. Generates a ~1 GiB image of 8 gzip
# layers with mixed content in docker-save and OCI-layout forms, then times, in
# the same run: layercheck, `crane validate --tarball` (go-containerregistry
# v0.22.1), and a floor of standard tools (openssl dgst -sha256 of each stored
# layer; for gzip layers pigz -dc | openssl dgst -sha256; two layers at a time
# on this 2-core machine). Prints one Markdown table with ratios and peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=${BENCH_DIR:-.bench}
SIZE=${BENCH_SIZE:-1073741824}
RUNS=${BENCH_RUNS:-3}
mkdir -p "$BENCH"
export PATH="$PATH:$(go env GOPATH)/bin"

need() { command -v "$1" >/dev/null 2>&1; }
if ! need pigz || ! need /usr/bin/time; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pigz time >/dev/null
  else
    echo "bench needs pigz and GNU time (apt-get install pigz time)" >&2; exit 1
  fi
fi
need crane || go install github.com/google/go-containerregistry/cmd/crane@v0.22.1
need openssl || { echo "bench needs openssl" >&2; exit 1; }

LC=bin/layercheck
[ -x "$LC" ] || go build -trimpath -o "$LC" ./cmd/layercheck

if [ ! -f "$BENCH/docker-save.tar" ] || [ ! -d "$BENCH/oci" ] || [ "$(cat "$BENCH/size" 2>/dev/null)" != "$SIZE" ]; then
  echo "generating the benchmark image ($SIZE bytes, 8 gzip layers) in $BENCH" >&2
  rm -rf "$BENCH"; mkdir -p "$BENCH"
  go run ./fixtures/gen -bench "$BENCH" -size "$SIZE"
  # The floor reads the docker-save layers as plain files: extract them (not timed).
  mkdir -p "$BENCH/save" && tar -xf "$BENCH/docker-save.tar" -C "$BENCH/save"
  echo "$SIZE" > "$BENCH/size"
fi
IMAGE_TAR=$BENCH/docker-save.tar
LAYOUT=$BENCH/oci
SAVE_LAYERS=$(cd "$BENCH/save" && python3 -c 'import json;print(" ".join(json.load(open("manifest.json"))[0]["Layers"]))')

# time_cmd LABEL CMD...: best wall time of $RUNS runs and the peak RSS (KiB) of the best run.
declare -A WALL RSS
time_cmd() {
  local label=$1; shift
  local best="" bestrss=""
  for _ in $(seq "$RUNS"); do
    sync
    local tf out
    tf=$(mktemp)
    /usr/bin/time -f '%e %M' -o "$tf" "$@" >/dev/null 2>&1 || true
    out=$(tail -1 "$tf"); rm -f "$tf"
    local t=${out% *} m=${out#* }
    if [ -z "$best" ] || awk "BEGIN{exit !($t < $best)}"; then best=$t; bestrss=$m; fi
  done
  WALL[$label]=$best; RSS[$label]=$bestrss
}

floor_save() {  # uncompressed docker-save layers: sha256 of each layer.tar, two at a time
  (cd "$BENCH/save" && printf '%s\n' $SAVE_LAYERS | xargs -P 2 -n 1 openssl dgst -sha256 >/dev/null)
}
floor_layout() {  # gzip layers: sha256 of stored bytes, and pigz -dc | sha256, two layers at a time
  find "$BENCH/oci/blobs/sha256" -type f -size +1M | xargs -P 2 -I{} sh -c 'openssl dgst -sha256 {} >/dev/null; pigz -dc {} 2>/dev/null | openssl dgst -sha256 >/dev/null || true'
}
export -f floor_save floor_layout; export BENCH SAVE_LAYERS

time_cmd lc_save      "$LC" tar -q "$IMAGE_TAR"
time_cmd lc_layout    "$LC" layout -q "$LAYOUT"
time_cmd crane_save   crane validate --tarball "$IMAGE_TAR"
time_cmd floor_save   bash -c floor_save
time_cmd floor_layout bash -c floor_layout

ratio() { awk "BEGIN{printf \"%.2fx\", $1 / $2}"; }
cat <<TABLE
| form | tool | wall (s, best of $RUNS) | vs floor | peak RSS (MiB) |
|---|---|---|---|---|
| docker-save (uncompressed layers) | layercheck tar | ${WALL[lc_save]} | $(ratio "${WALL[lc_save]}" "${WALL[floor_save]}") | $(( ${RSS[lc_save]} / 1024 )) |
| docker-save (uncompressed layers) | crane validate --tarball | ${WALL[crane_save]} | $(ratio "${WALL[crane_save]}" "${WALL[floor_save]}") | $(( ${RSS[crane_save]} / 1024 )) |
| docker-save (uncompressed layers) | floor: openssl sha256 x2 | ${WALL[floor_save]} | 1.00x | - |
| OCI layout (gzip layers) | layercheck layout | ${WALL[lc_layout]} | $(ratio "${WALL[lc_layout]}" "${WALL[floor_layout]}") | $(( ${RSS[lc_layout]} / 1024 )) |
| OCI layout (gzip layers) | floor: openssl + pigz -dc x2 | ${WALL[floor_layout]} | 1.00x | - |

layercheck tar is $(ratio "${WALL[crane_save]}" "${WALL[lc_save]}") faster than crane validate --tarball on the same tarball.
TABLE
