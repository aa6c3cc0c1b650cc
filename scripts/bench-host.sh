#!/usr/bin/env bash
# make bench-host: the speed benchmark of issues 5 and 18. Generates the engine
# bench image (fixtures/gen -bench, 8 layers, ~0.85 GiB uncompressed) as a
# docker save tarball, then, for each store of $BENCH_STORES (default
# "docker podman registry", any subset, in that order), puts the image in a
# private store under one temporary directory (removed on exit; daemons
# stopped by pid; no networking beyond loopback), checks that layercheck host
# finds it clean, times its sides in the same run, median of $BENCH_RUNS, the
# sides taking turns, and prints one Markdown table:
#   docker: a private dockerd (overlay2, its own data root, exec root, socket
#     and pidfile) docker loads the image;
#     - docker save IMAGE > /dev/null  (Docker rebuilds every layer's tar
#       stream from tar-split and the overlay2 diff directory and checks its
#       diffID; its CPU is dockerd's, read from /proc, plus the CLI's)
#     - layercheck host --root DATAROOT -q IMAGE  (the same rebuild, plus every
#       file's CRC-64, lstat against each header and the directory walk)
#   podman: podman (rootful, overlay, private --root/--runroot and
#     configuration, no daemon: its CPU is the process's own) loads the image;
#     - podman save IMAGE -o /dev/null  (docker-archive: containers-storage
#       rebuilds each layer from tar-split and the overlay diff directory)
#     - layercheck host --root GRAPHROOT -q IMAGE
#   docker and podman also time, on the same image:
#     - layercheck tar -q SAVE  (the same image's docker save tarball)
#     - a floor: openssl dgst -sha256 of the uncompressed layer tars, two at a
#       time (the machine has 2 cores)
#     - the Go floor: Go's crypto/sha256 of the same tars, two at a time
#       (scripts/sha256floor): no Go tool that hashes every byte can beat it
#   registry: skopeo copies the save (layers gzip-compressed) into a private
#     docker-registry (filesystem storage, 127.0.0.1, stopped before timing);
#     - layercheck host --root STORAGE -q  (every blob hashed, every layer
#       decompressed against its diffID, every link and manifest checked)
#     - floors over every blob data file, two at a time: openssl dgst -sha256;
#       Go's crypto/sha256; Go's crypto/sha256 plus gunzip (klauspost/pgzip, as
#       layercheck) and crypto/sha256 of each gzip layer: the audit's hashing
#       and decompression alone, the reference of that table
#     MB/s there counts the stored (compressed) blob bytes.
# BENCH_CACHE=cold (the default where /proc/sys/vm/drop_caches is writable)
# drops the page cache before every timed run, so every side reads from disk;
# BENCH_CACHE=warm runs each side once untimed first and times it warm.
# Needs root (dockerd, podman's overlay, drop_caches). Timing helpers:
# scripts/bench-lib.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
# BENCH_SHAPE=small-files: one layer of ~256 MiB in files of 512 B to 16 KiB
# (about 30,000, 100 to a directory), where the cost per file dominates;
# the default is 8 layers of files of 1 KiB to 8 MiB.
SHAPE=${BENCH_SHAPE:-mixed}
case $SHAPE in
  mixed) BENCH=${BENCH_DIR:-.bench/host}; SIZE=${BENCH_SIZE:-912680550}; LAYERS=8; GENFLAGS=() ;; # 0.85 GiB
  small-files) BENCH=${BENCH_DIR:-.bench/host-small}; SIZE=${BENCH_SIZE:-268435456}; LAYERS=1; GENFLAGS=(-small-files) ;;
  *) echo "BENCH_SHAPE: unknown shape $SHAPE (mixed, small-files)" >&2; exit 2 ;;
esac
RUNS=${BENCH_RUNS:-3}
JOBS=${BENCH_JOBS:-}
STORES=${BENCH_STORES:-docker podman registry}
IMAGE=layercheck.dev/bench:1
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

for s in $STORES; do
  case $s in docker | podman | registry) ;; *) echo "BENCH_STORES: unknown store $s (docker, podman, registry)" >&2; exit 2 ;; esac
done
has() { case " $STORES " in *" $1 "*) return 0 ;; esac; return 1; }
if [ "$(id -u)" != 0 ]; then
  echo "bench-host starts a dockerd, podman and a registry: run it as root (sudo make bench-host)" >&2; exit 1
fi
apt_need /usr/bin/time time
has podman && apt_need podman podman
TOOLS="openssl python3"
has docker && TOOLS="$TOOLS dockerd docker"
has registry && TOOLS="$TOOLS docker-registry skopeo"
for t in $TOOLS; do
  need "$t" || { echo "bench-host needs $t (sudo scripts/e2e-install.sh installs it)" >&2; exit 1; }
done
CACHE=${BENCH_CACHE:-}
if [ -z "$CACHE" ]; then
  if sync && echo 3 2>/dev/null >/proc/sys/vm/drop_caches; then CACHE=cold; else CACHE=warm; fi
fi

# LAYERCHECK=path times an already built binary instead of building one.
LC=${LAYERCHECK:-bin/layercheck}
[ -n "${LAYERCHECK:-}" ] || go build -trimpath -o "$LC" ./cmd/layercheck

mkdir -p "$BENCH"
if [ ! -f "$BENCH/docker-save.tar" ] || [ "$(cat "$BENCH/size" 2>/dev/null)" != "$SIZE $SHAPE" ]; then
  echo "generating the benchmark image ($SIZE bytes, $LAYERS layers, $SHAPE) in $BENCH" >&2
  rm -rf "$BENCH"; mkdir -p "$BENCH"
  go run ./fixtures/gen -bench "$BENCH" -size "$SIZE" -layers "$LAYERS" "${GENFLAGS[@]}" >&2
  rm -rf "$BENCH/oci" # only the docker save is used here
  # The floor hashes the uncompressed layer tars as plain files (not timed).
  mkdir -p "$BENCH/save" && tar -xf "$BENCH/docker-save.tar" -C "$BENCH/save"
  echo "$SIZE $SHAPE" >"$BENCH/size"
fi
GOSHA=$(cd "$BENCH" && pwd)/sha256floor
go build -trimpath -o "$GOSHA" ./scripts/sha256floor
SAVE_LAYERS=$(cd "$BENCH/save" && python3 -c 'import json;print(" ".join(json.load(open("manifest.json"))[0]["Layers"]))')
IMAGE_BYTES=$(cd "$BENCH/save" && stat -L -c %s $SAVE_LAYERS | awk '{s+=$1} END{print s}')

# Everything under one temporary directory, removed on exit; PIDS are the
# daemons started, stopped by pid.
TMP=$(mktemp -d "${TMPDIR:-/var/tmp}/layercheck-bench-host.XXXXXX")
PIDS=()
cleanup() {
  set +e # remove everything even when a step fails
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  # dockerd unmounts on a clean stop; anything left is unmounted before removal.
  grep -o " $TMP/[^ ]*" /proc/mounts 2>/dev/null | sort -r | while read -r m; do umount -l "$m"; done
  rm -rf "$TMP"
}
trap cleanup EXIT
mkdir -p "$TMP/client"
echo '{}' >"$TMP/client/config.json"
export DOCKER_CONFIG=$TMP/client DOCKER_CLI_HINTS=false

JFLAG=()
[ -n "$JOBS" ] && JFLAG=(-j "$JOBS")
# audit_clean ROOT [IMAGE]: the audit must be clean, or the timing means nothing.
audit_clean() {
  if ! "$LC" host --root "$1" -q "${JFLAG[@]}" "${@:2}" >&2; then
    echo "layercheck host did not find the bench image clean in $1" >&2; exit 1
  fi
}

# The sides, each run by `bash -c` (exported). floor_openssl and floor_go
# DIR FILE...: hash the files of DIR, two at a time.
floor_openssl() { local d=$1; shift; (cd "$d" && printf '%s\n' "$@" | xargs -P 2 -n 1 openssl dgst -sha256 >/dev/null); }
floor_go() { local d=$1; shift; (cd "$d" && "$GOSHA" -p 2 "$@" >/dev/null); }
floor() { floor_openssl "$BENCH/save" $SAVE_LAYERS; }
gofloor() { floor_go "$BENCH/save" $SAVE_LAYERS; }
tarside() { "$LC" tar -q $JOBS_FLAG "$BENCH/docker-save.tar" >/dev/null; }
export -f floor_openssl floor_go floor gofloor tarside
export BENCH SAVE_LAYERS IMAGE LC GOSHA
export JOBS_FLAG="${JFLAG[*]:-}"
BYTES=$IMAGE_BYTES
IMAGE_DESC="Image: $IMAGE, $(gib "$IMAGE_BYTES") of uncompressed layers ($IMAGE_BYTES bytes)"
[ "$SHAPE" = mixed ] || IMAGE_DESC="$IMAGE_DESC in $LAYERS layer(s) of $SHAPE"

# tar_rows: the rows every image section shares; summary TOOL SAVEFN AUDITFN.
tar_rows() {
  table_row "layercheck tar -q SAVE (the same image's docker save)" tarside
  table_row "floor: openssl dgst -sha256 of the layer tars, 2 at a time" floor -
  table_row "Go floor: crypto/sha256 of the layer tars, 2 at a time" gofloor -
}
summary() {
  echo
  echo "layercheck host: $(ratio "${WALL[$2]}" "${WALL[$3]}") faster than $1 in wall time (target 5x with SHA extensions, 4x without) and $(ratio "${CPU[$2]}" "${CPU[$3]}") less CPU; $(ratio "${CPU[$3]}" "${CPU[tarside]}") the CPU of layercheck tar (target at most 2x); $(ratio "${WALL[$3]}" "${WALL[floor]}") of the openssl floor's wall time and $(ratio "${WALL[$3]}" "${WALL[gofloor]}") of the Go floor's."
}

bench_docker() {
  local data=$TMP/docker/data sock=$TMP/docker/docker.sock pidfile=$TMP/docker/docker.pid dpid
  mkdir -p "$data" "$TMP/docker/exec"
  echo "{\"deprecated-key-path\": \"$TMP/docker/key.json\"}" >"$TMP/docker/daemon.json"
  export DOCKER_HOST=unix://$sock DDATA=$data
  dockerd --config-file "$TMP/docker/daemon.json" --data-root "$data" --exec-root "$TMP/docker/exec" \
    -H "unix://$sock" --pidfile "$pidfile" --storage-driver=overlay2 \
    --iptables=false --ip6tables=false --ip-masq=false --bridge=none --userland-proxy=false \
    --log-level warn >"$TMP/docker/dockerd.log" 2>&1 &
  PIDS+=($!)
  for i in $(seq 120); do
    docker info --format '{{.Driver}}' >/dev/null 2>&1 && break
    [ "$i" = 120 ] && { echo "dockerd did not start:" >&2; tail -20 "$TMP/docker/dockerd.log" >&2; exit 1; }
    sleep 0.5
  done
  [ "$(docker info --format '{{.Driver}}')" = overlay2 ] || { echo "dockerd is not running overlay2" >&2; exit 1; }
  echo "loading the image into the private dockerd" >&2
  docker load -q -i "$BENCH/docker-save.tar" >/dev/null
  dpid=$(cat "$pidfile")
  audit_clean "$data" "$IMAGE"
  DAEMON_OF[dsave]=$dpid
  bench_sides docker dsave tarside daudit floor gofloor
  table_head "$IMAGE_DESC, overlay2" dsave "docker save"
  table_row "docker save IMAGE > /dev/null (dockerd $(dockerd --version | awk '{print $3}' | tr -d ,))" dsave "- (work done in dockerd)"
  table_row "layercheck host -q IMAGE" daudit
  tar_rows
  summary "docker save" dsave daudit
  stop_pid "$dpid"; PIDS=()
}
dsave() { docker save "$IMAGE" >/dev/null; }
daudit() { "$LC" host --root "$DDATA" -q $JOBS_FLAG "$IMAGE" >/dev/null; }

# containers.conf and friends for podman and skopeo: nothing read from or
# written to the host's configuration (no CNI, no events log, no auth).
containers_conf() {
  local c=$TMP/containers
  [ -d "$c" ] && return 0
  mkdir -p "$c/net.d" "$c/tmp" "$c/home"
  echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$c/policy.json"
  echo '{"auths":{}}' >"$c/auth.json"
  printf 'unqualified-search-registries = []\nshort-name-mode = "disabled"\n' >"$c/registries.conf"
  printf '[containers]\nnetns = "none"\n[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "none"\ntmp_dir = "%s"\n[network]\nnetwork_backend = "cni"\nnetwork_config_dir = "%s"\n' \
    "$c/tmp" "$c/net.d" >"$c/containers.conf"
  export CONTAINERS_CONF=$c/containers.conf CONTAINERS_REGISTRIES_CONF=$c/registries.conf \
    REGISTRY_AUTH_FILE=$c/auth.json CONTAINERS_POLICY=$c/policy.json
}

bench_podman() {
  local p=$TMP/podman
  containers_conf
  mkdir -p "$p/root" "$p/run" "$p/tmp"
  # podman 4.3 refuses to start when the storage.conf it reads names no runroot.
  printf '[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "%s"\n' "$p/root" "$p/run" >"$p/storage.conf"
  export PROOT=$p/root PRUN=$p/run PTMP=$p/tmp CONTAINERS_STORAGE_CONF=$p/storage.conf
  [ "$(pod info --format '{{.Store.GraphDriverName}}')" = overlay ] || { echo "podman is not running overlay" >&2; exit 1; }
  echo "loading the image into the private podman store" >&2
  pod load -q -i "$BENCH/docker-save.tar" >/dev/null
  audit_clean "$PROOT" "$IMAGE"
  bench_sides podman psave tarside paudit floor gofloor
  table_head "$IMAGE_DESC, containers-storage overlay" psave "podman save"
  table_row "podman save -q IMAGE -o /dev/null (podman $(podman --version | awk '{print $3}'))" psave
  table_row "layercheck host -q IMAGE" paudit
  tar_rows
  summary "podman save" psave paudit
}
pod() {
  HOME=$TMP/containers/home TMPDIR=$PTMP podman --root "$PROOT" --runroot "$PRUN" --storage-driver overlay \
    --cgroup-manager cgroupfs --events-backend none --tmpdir "$PTMP" "$@"
}
psave() { pod save -q "$IMAGE" -o /dev/null; }
paudit() { "$LC" host --root "$PROOT" -q $JOBS_FLAG "$IMAGE" >/dev/null; }
export -f pod psave daudit paudit dsave
export TMP

bench_registry() {
  local r=$TMP/registry addr rpid i ngz
  containers_conf
  export RROOT=$r/storage
  mkdir -p "$RROOT"
  addr=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print("127.0.0.1:%d"%s.getsockname()[1])')
  printf '{version: 0.1, log: {level: warn, accesslog: {disabled: true}}, http: {addr: "%s"},
  storage: {filesystem: {rootdirectory: "%s"}, maintenance: {uploadpurging: {enabled: false}}}}\n' \
    "$addr" "$RROOT" >"$r/config.yml"
  # The registry reads REGISTRY_* variables as configuration: not skopeo's.
  env -u REGISTRY_AUTH_FILE docker-registry serve "$r/config.yml" >"$r/registry.log" 2>&1 &
  rpid=$!
  PIDS+=("$rpid")
  for i in $(seq 60); do
    python3 -c "import urllib.request;urllib.request.urlopen('http://$addr/v2/',timeout=1)" 2>/dev/null && break
    [ "$i" = 60 ] && { echo "docker-registry did not start:" >&2; tail -20 "$r/registry.log" >&2; exit 1; }
    sleep 0.5
  done
  echo "pushing the image into the private registry (skopeo, gzip)" >&2
  HOME=$TMP/containers/home skopeo --policy "$CONTAINERS_POLICY" copy -q --dest-tls-verify=false \
    "docker-archive:$BENCH/docker-save.tar" "docker://$addr/bench:1"
  stop_pid "$rpid"; PIDS=() # the audit and the floors read the storage offline
  BLOBS=$RROOT/docker/registry/v2/blobs
  REG_BLOBS=$(cd "$BLOBS" && find . -name data -type f | sort | tr '\n' ' ')
  export BLOBS REG_BLOBS
  BYTES=$(cd "$BLOBS" && stat -c %s $REG_BLOBS | awk '{s+=$1} END{print s}')
  ngz=$(cd "$BLOBS" && for f in $REG_BLOBS; do head -c2 "$f" | od -An -tx1 | tr -d ' '; done | grep -c 1f8b)
  audit_clean "$RROOT"
  bench_sides registry raudit rfloor rgofloor rgzfloor
  table_head "Image: $IMAGE pushed by skopeo $(skopeo --version | awk '{print $3}') to docker-registry $(docker-registry --version | awk '{print $3}'), $(echo $REG_BLOBS | wc -w) blobs ($ngz gzip layers), $(gib "$BYTES") stored ($BYTES bytes; MB/s counts these)" rgzfloor "gunzip floor"
  table_row "layercheck host --root STORAGE -q" raudit
  table_row "floor: openssl dgst -sha256 of every blob, 2 at a time" rfloor -
  table_row "Go floor: crypto/sha256 of every blob, 2 at a time" rgofloor -
  table_row "gunzip floor: crypto/sha256 of every blob and gunzip (pgzip) + crypto/sha256 of each gzip layer, 2 at a time" rgzfloor -
  echo
  echo "layercheck host: $(ratio "${WALL[raudit]}" "${WALL[rgzfloor]}") of the gunzip floor's wall time and $(ratio "${CPU[raudit]}" "${CPU[rgzfloor]}") its CPU; $(ratio "${WALL[raudit]}" "${WALL[rgofloor]}") of the Go floor's wall time (hashing the stored bytes only)."
}
raudit() { "$LC" host --root "$RROOT" -q $JOBS_FLAG >/dev/null; }
rfloor() { floor_openssl "$BLOBS" $REG_BLOBS; }
rgofloor() { floor_go "$BLOBS" $REG_BLOBS; }
rgzfloor() { floor_go "$BLOBS" -gunzip $REG_BLOBS; }
export -f raudit rfloor rgofloor rgzfloor

for s in $STORES; do "bench_$s"; done
