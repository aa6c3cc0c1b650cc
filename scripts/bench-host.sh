#!/usr/bin/env bash
# make bench-host: the speed benchmark of issue 5. Generates the engine bench
# image (fixtures/gen -bench, 8 layers, ~0.85 GiB uncompressed) as a docker
# save tarball, starts a private dockerd (overlay2, its own data root, exec
# root, socket and pidfile under a temporary directory, no networking), docker
# loads the image, then times in the same run, median of $BENCH_RUNS:
#   - docker save IMAGE > /dev/null  (Docker rebuilds every layer's tar stream
#     from tar-split and the overlay2 diff directory and checks its diffID)
#   - layercheck host --root DATAROOT -q IMAGE  (the same rebuild, plus every
#     file's CRC-64, lstat against each header and the directory walk)
#   - a floor: openssl dgst -sha256 of the same uncompressed layer tars, two at
#     a time (the machine has 2 cores)
#   - the Go floor: Go's crypto/sha256 of the same tars, two at a time
#     (scripts/sha256floor): no Go tool that hashes every byte can beat it
# BENCH_CACHE=cold (the default where /proc/sys/vm/drop_caches is writable)
# drops the page cache before every timed run, so every side reads from disk;
# BENCH_CACHE=warm runs each side once untimed first and times it warm.
# Needs root (dockerd). Prints one Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=${BENCH_DIR:-.bench/host}
SIZE=${BENCH_SIZE:-912680550} # 0.85 GiB
RUNS=${BENCH_RUNS:-3}
JOBS=${BENCH_JOBS:-}
IMAGE=layercheck.dev/bench:1

if [ "$(id -u)" != 0 ]; then
  echo "bench-host starts a dockerd: run it as root (sudo make bench-host)" >&2; exit 1
fi
need() { command -v "$1" >/dev/null 2>&1; }
if ! need /usr/bin/time; then
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
fi
for t in dockerd docker openssl python3; do
  need "$t" || { echo "bench-host needs $t" >&2; exit 1; }
done
CACHE=${BENCH_CACHE:-}
if [ -z "$CACHE" ]; then
  if sync && echo 3 2>/dev/null >/proc/sys/vm/drop_caches; then CACHE=cold; else CACHE=warm; fi
fi

# LAYERCHECK=path times an already built binary instead of building one.
LC=${LAYERCHECK:-bin/layercheck}
[ -n "${LAYERCHECK:-}" ] || go build -trimpath -o "$LC" ./cmd/layercheck

mkdir -p "$BENCH"
if [ ! -f "$BENCH/docker-save.tar" ] || [ "$(cat "$BENCH/size" 2>/dev/null)" != "$SIZE" ]; then
  echo "generating the benchmark image ($SIZE bytes, 8 layers) in $BENCH" >&2
  rm -rf "$BENCH"; mkdir -p "$BENCH"
  go run ./fixtures/gen -bench "$BENCH" -size "$SIZE" >&2
  rm -rf "$BENCH/oci" # only the docker save is used here
  # The floor hashes the uncompressed layer tars as plain files (not timed).
  mkdir -p "$BENCH/save" && tar -xf "$BENCH/docker-save.tar" -C "$BENCH/save"
  echo "$SIZE" >"$BENCH/size"
fi
GOSHA=$(cd "$BENCH" && pwd)/sha256floor
go build -trimpath -o "$GOSHA" ./scripts/sha256floor
SAVE_LAYERS=$(cd "$BENCH/save" && python3 -c 'import json;print(" ".join(json.load(open("manifest.json"))[0]["Layers"]))')
IMAGE_BYTES=$(cd "$BENCH/save" && stat -L -c %s $SAVE_LAYERS | awk '{s+=$1} END{print s}')

# The private dockerd: everything under one temporary directory, removed on exit.
TMP=$(mktemp -d "${TMPDIR:-/var/tmp}/layercheck-bench-host.XXXXXX")
DATA=$TMP/data
SOCK=$TMP/docker.sock
PIDFILE=$TMP/docker.pid
mkdir -p "$DATA" "$TMP/exec" "$TMP/client"
echo '{}' >"$TMP/client/config.json"
echo "{\"deprecated-key-path\": \"$TMP/key.json\"}" >"$TMP/daemon.json"
cleanup() {
  set +e # remove everything even when a step fails
  local pid=${DOCKERD_PID:-}
  [ -f "$PIDFILE" ] && pid=$(cat "$PIDFILE")
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  # dockerd unmounts on a clean stop; anything left is unmounted before removal.
  grep -o " $TMP/[^ ]*" /proc/mounts 2>/dev/null | sort -r | while read -r m; do umount -l "$m"; done
  rm -rf "$TMP"
}
trap cleanup EXIT
export DOCKER_HOST=unix://$SOCK DOCKER_CONFIG=$TMP/client DOCKER_CLI_HINTS=false
dockerd --config-file "$TMP/daemon.json" --data-root "$DATA" --exec-root "$TMP/exec" \
  -H "unix://$SOCK" --pidfile "$PIDFILE" --storage-driver=overlay2 \
  --iptables=false --ip6tables=false --ip-masq=false --bridge=none --userland-proxy=false \
  --log-level warn >"$TMP/dockerd.log" 2>&1 &
DOCKERD_PID=$!
for i in $(seq 120); do
  docker info --format '{{.Driver}}' >/dev/null 2>&1 && break
  [ "$i" = 120 ] && { echo "dockerd did not start:" >&2; tail -20 "$TMP/dockerd.log" >&2; exit 1; }
  sleep 0.5
done
[ "$(docker info --format '{{.Driver}}')" = overlay2 ] || { echo "dockerd is not running overlay2" >&2; exit 1; }
echo "loading the image into the private dockerd" >&2
docker load -q -i "$BENCH/docker-save.tar" >/dev/null
DPID=$(cat "$PIDFILE")

JFLAG=()
[ -n "$JOBS" ] && JFLAG=(-j "$JOBS")
# The audit must be clean, or the timing means nothing.
if ! "$LC" host --root "$DATA" -q "${JFLAG[@]}" "$IMAGE" >&2; then
  echo "layercheck host did not find the bench image clean" >&2; exit 1
fi

# cpu_of PID: user+system CPU seconds of a process and its waited-for children.
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{print ($14+$15+$16+$17)/hz}' "/proc/$1/stat"; }

floor() {
  (cd "$BENCH/save" && printf '%s\n' $SAVE_LAYERS | xargs -P 2 -n 1 openssl dgst -sha256 >/dev/null)
}
gofloor() {
  (cd "$BENCH/save" && "$GOSHA" -p 2 $SAVE_LAYERS >/dev/null)
}
save() { docker save "$IMAGE" >/dev/null; }
tarside() { "$LC" tar -q $JOBS_FLAG "$BENCH/docker-save.tar" >/dev/null; }
audit() { "$LC" host --root "$DATA" -q $JOBS_FLAG "$IMAGE" >/dev/null; }
export -f floor gofloor save tarside audit; export BENCH SAVE_LAYERS IMAGE LC DATA GOSHA
export JOBS_FLAG="${JFLAG[*]:-}"

# run_once FUNC: one timed run; appends "wall cpu rss_kib" to $TMP/times.FUNC.
# For docker save the CPU is dockerd's (and its containerd's), read from /proc
# before and after, plus the CLI's own: the CLI only copies bytes.
run_once() {
  local fn=$1 tf c0 out e u s m cpu
  sync
  [ "$CACHE" = cold ] && echo 3 >/proc/sys/vm/drop_caches
  tf=$(mktemp)
  c0=$(cpu_of "$DPID")
  /usr/bin/time -f '%e %U %S %M' -o "$tf" bash -c "$fn"
  out=$(tail -1 "$tf"); rm -f "$tf"
  read -r e u s m <<<"$out"
  if [ "$fn" = save ]; then
    cpu=$(awk -v a="$c0" -v b="$(cpu_of "$DPID")" -v u="$u" -v s="$s" 'BEGIN{print b-a+u+s}')
  else
    cpu=$(awk -v u="$u" -v s="$s" 'BEGIN{print u+s}')
  fi
  echo "$e $cpu $m" >>"$TMP/times.$fn"
}
median() { sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }

# The three sides take turns, run after run, so a change of load on this
# shared machine falls on all of them alike.
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
if [ "$CACHE" = warm ]; then
  for fn in save tarside audit floor gofloor; do bash -c "$fn" >/dev/null 2>&1; done
fi
for _ in $(seq "$RUNS"); do
  for fn in save tarside audit floor gofloor; do run_once "$fn"; done
done
declare -A WALL CPU RSS
for pair in save:save tar:tarside lc:audit floor:floor gofloor:gofloor; do
  label=${pair%%:*} fn=${pair#*:}
  WALL[$label]=$(awk '{print $1}' "$TMP/times.$fn" | median)
  CPU[$label]=$(awk '{print $2}' "$TMP/times.$fn" | median)
  RSS[$label]=$(awk '$3>m{m=$3} END{print m}' "$TMP/times.$fn")
done

mbs() { awk -v b="$IMAGE_BYTES" -v t="$1" 'BEGIN{printf "%.0f", b/1e6/t}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2fx", a/b}'; }
cat <<TABLE
Image: $IMAGE, $(awk -v b="$IMAGE_BYTES" 'BEGIN{printf "%.2f GiB", b/1073741824}') of uncompressed layers ($IMAGE_BYTES bytes), overlay2; page cache: $CACHE; median of $RUNS, the sides taking turns; $(nproc) CPUs, SHA extensions: $(grep -qw sha_ni /proc/cpuinfo && echo yes || echo no); load average at the start $LOAD0, at the end $(cut -d' ' -f1-3 /proc/loadavg)

| what | wall (s) | MB/s | CPU (s) | MB per CPU-s | docker save / this | peak RSS (MiB) |
|---|---|---|---|---|---|---|
| docker save IMAGE > /dev/null (dockerd $(dockerd --version | awk '{print $3}' | tr -d ,)) | ${WALL[save]} | $(mbs "${WALL[save]}") | ${CPU[save]} | $(mbs "${CPU[save]}") | 1.00x | - (work done in dockerd) |
| layercheck tar -q SAVE (the same image's docker save) | ${WALL[tar]} | $(mbs "${WALL[tar]}") | ${CPU[tar]} | $(mbs "${CPU[tar]}") | $(ratio "${WALL[save]}" "${WALL[tar]}") | $(( ${RSS[tar]} / 1024 )) |
| layercheck host -q IMAGE | ${WALL[lc]} | $(mbs "${WALL[lc]}") | ${CPU[lc]} | $(mbs "${CPU[lc]}") | $(ratio "${WALL[save]}" "${WALL[lc]}") | $(( ${RSS[lc]} / 1024 )) |
| floor: openssl dgst -sha256 of the layer tars, 2 at a time | ${WALL[floor]} | $(mbs "${WALL[floor]}") | ${CPU[floor]} | $(mbs "${CPU[floor]}") | $(ratio "${WALL[save]}" "${WALL[floor]}") | - |
| Go floor: crypto/sha256 of the layer tars, 2 at a time | ${WALL[gofloor]} | $(mbs "${WALL[gofloor]}") | ${CPU[gofloor]} | $(mbs "${CPU[gofloor]}") | $(ratio "${WALL[save]}" "${WALL[gofloor]}") | - |

layercheck host: $(ratio "${WALL[save]}" "${WALL[lc]}") faster than docker save in wall time (target 5x with SHA extensions, 4x without) and $(ratio "${CPU[save]}" "${CPU[lc]}") less CPU; $(ratio "${CPU[lc]}" "${CPU[tar]}") the CPU of layercheck tar (target at most 2x); $(ratio "${WALL[lc]}" "${WALL[floor]}") of the openssl floor's wall time and $(ratio "${WALL[lc]}" "${WALL[gofloor]}") of the Go floor's.
TABLE
