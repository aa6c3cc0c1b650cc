# bench-lib.sh: the timing helpers of scripts/bench-host.sh, sourced by it.
# A section times its sides (shell functions, exported, each run by `bash -c`)
# with bench_sides, then prints its table with table_head and table_row.
# Needs $TMP (the run's temporary directory), $RUNS and $CACHE (cold or warm).

need() { command -v "$1" >/dev/null 2>&1; }

# apt_need CMD PACKAGE: installs PACKAGE with apt-get when CMD is missing.
apt_need() {
  need "$1" && return 0
  echo "installing $2 (for $1)" >&2
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null
}

# cpu_of PID: user+system CPU seconds of a process and its waited-for children.
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{print ($14+$15+$16+$17)/hz}' "/proc/$1/stat"; }

# stop_pid PID: SIGTERM, up to 30 s to end, then SIGKILL.
stop_pid() {
  local pid=$1
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
  kill -9 "$pid" 2>/dev/null || true
}

# DAEMON_OF[FUNC]=PID: the side FUNC has a daemon do its work; its CPU is
# read from /proc before and after and added to the side's own.
declare -A DAEMON_OF

# run_once SECTION FUNC: one timed run; appends "wall cpu rss_kib" to
# $TMP/times.SECTION.FUNC.
run_once() {
  local sec=$1 fn=$2 tf c0="" out e u s m cpu dpid=${DAEMON_OF[$2]:-}
  sync
  [ "$CACHE" = cold ] && echo 3 >/proc/sys/vm/drop_caches
  tf=$(mktemp)
  [ -n "$dpid" ] && c0=$(cpu_of "$dpid")
  /usr/bin/time -f '%e %U %S %M' -o "$tf" bash -c "$fn"
  out=$(tail -1 "$tf"); rm -f "$tf"
  read -r e u s m <<<"$out"
  if [ -n "$dpid" ]; then
    cpu=$(awk -v a="$c0" -v b="$(cpu_of "$dpid")" -v u="$u" -v s="$s" 'BEGIN{print b-a+u+s}')
  else
    cpu=$(awk -v u="$u" -v s="$s" 'BEGIN{print u+s}')
  fi
  echo "$e $cpu $m" >>"$TMP/times.$sec.$fn"
}
median() { sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }

# bench_sides SECTION FUNC...: the sides take turns, run after run, so a
# change of load on this shared machine falls on all of them alike; then
# WALL, CPU (medians) and RSS (peak, KiB) hold each FUNC's figures, and
# LOAD0/LOAD1 the load average before and after.
declare -A WALL CPU RSS
bench_sides() {
  local sec=$1 fn; shift
  LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
  if [ "$CACHE" = warm ]; then
    for fn in "$@"; do bash -c "$fn" >/dev/null 2>&1; done
  fi
  for _ in $(seq "$RUNS"); do
    for fn in "$@"; do run_once "$sec" "$fn"; done
  done
  for fn in "$@"; do
    WALL[$fn]=$(awk '{print $1}' "$TMP/times.$sec.$fn" | median)
    CPU[$fn]=$(awk '{print $2}' "$TMP/times.$sec.$fn" | median)
    RSS[$fn]=$(awk '$3>m{m=$3} END{print m}' "$TMP/times.$sec.$fn")
  done
  LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
}

mbs() { awk -v b="$BYTES" -v t="$1" 'BEGIN{printf "%.0f", b/1e6/t}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2fx", a/b}'; }
gib() { awk -v b="$1" 'BEGIN{printf "%.2f GiB", b/1073741824}'; }

# table_head WHAT REF REFNAME: the section's first line (WHAT: the image and
# store; BYTES: what MB/s counts) and the table's head; the ratio column is
# REF's wall time over each row's.
table_head() {
  REF=$2
  echo
  echo "$1; page cache: $CACHE; median of $RUNS, the sides taking turns; $(nproc) CPUs, SHA extensions: $(grep -qw sha_ni /proc/cpuinfo && echo yes || echo no); load average at the start $LOAD0, at the end $LOAD1"
  echo
  echo "| what | wall (s) | MB/s | CPU (s) | MB per CPU-s | $3 / this | peak RSS (MiB) |"
  echo "|---|---|---|---|---|---|---|"
}

# table_row LABEL FUNC [RSS]: one row; RSS replaces the measured peak RSS
# (a side whose work is done elsewhere, or "-" for a floor).
table_row() {
  local rss=${3:-$((${RSS[$2]} / 1024))}
  echo "| $1 | ${WALL[$2]} | $(mbs "${WALL[$2]}") | ${CPU[$2]} | $(mbs "${CPU[$2]}") | $(ratio "${WALL[$REF]}" "${WALL[$2]}") | $rss |"
}
