#!/usr/bin/env bash
# rend benchmark: memcached direct vs nutcracker vs rend (workers=1 and 2),
# same memcaslap load for all, ops/s and CPU per request; then the cost of
# metrics in instructions per request (callgrind), rend-loadgen's bench
# profile, the L2 tier (L1 hits with L2 on, the
# L1-miss/L2-hit path), rend vs memcached extstore, chunked L1, text vs meta
# protocol, backfill admission, the L2 hop's floor (memcached standing in for
# rend-l2); a gnuplot latency plot.
#
#   ./bench/run.sh [BUILD_DIR]        (make bench runs ./bench/run.sh build)
#
# Environment knobs (all optional): BENCH_OPS (ops per run, default 500000),
# BENCH_REPS (runs per target, default 3), BENCH_RUN_TIMEOUT (s per run,
# default 180), BENCH_QUIET_WAIT (max s to wait for an idle machine before
# each run, default 120), BENCH_RETRIES (redo a run disturbed by other CPU use,
# default 2), BENCH_TARGETS (comma list: memcached,nutcracker,rend-w1,rend-w2,
# rend-w1-nometrics,rend-l1l2), BENCH_SECTIONS (comma list:
# metrics-ir,loadgen,l2hit,extstore,floor,chunked,meta,admission,plot), BENCH_METRICS_REPS, BENCH_IR_OPS,
# BENCH_IR_ROUNDS, BENCH_LOADGEN_SECONDS,
# BENCH_L2_KEYS, BENCH_EXT_KEYS, BENCH_EXT_VALUE, BENCH_EXT_RAM_MB,
# BENCH_EXT_FLASH_MB, BENCH_EXT_READS, BENCH_ADMISSION_ROUNDS (see bench/README.md),
# BENCH_KEEP_WORKDIR=1 (keep the temp dir with configs and logs).
#
# The measuring is done by bench/bench.py. This wrapper checks the tools,
# owns the temp dir, and is the last line of cleanup: whatever bench.py
# started is killed here even if bench.py itself dies.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
build_dir=${1:-build}
# Relative build dirs are relative to the repo (that is how `make bench` passes it).
[[ "$build_dir" = /* ]] || build_dir="$repo/$build_dir"

die() { echo "bench: $*" >&2; exit 2; }

check_tools() {
  [[ -x "$build_dir/supervisor/rend" ]] || die "$build_dir/supervisor/rend not found; build first (make build)"
  [[ -x "$build_dir/worker/rend-worker" ]] || die "$build_dir/worker/rend-worker not found; build first"
  [[ -x /usr/bin/python3 ]] || die "/usr/bin/python3 is required"
  local tool
  for tool in memcached memcaslap; do
    command -v "$tool" >/dev/null || die "$tool not found (Debian: memcached, libmemcached-tools)"
  done
  # nutcracker is optional: bench.py reports its row as failed if it is missing.
  # rend-l2, rend-loadgen, gnuplot and valgrind are optional too: what needs
  # them is reported as skipped (with the reason) if they are missing.
}

# Refuse to measure on a busy machine: the numbers would be noise.
check_idle() {
  local load1
  load1=$(cut -d' ' -f1 /proc/loadavg)
  if awk -v l="$load1" -v n="$(nproc)" 'BEGIN { exit !(l > n * 0.5) }'; then
    echo "bench: warning: 1-minute load average is $load1 on $(nproc) CPUs; results may be noisy" >&2
  fi
}

workdir=""
py_pid=""

# Kill everything bench.py recorded (by pid, and its process group: rend's
# workers), then remove the temp dir. Runs on every exit path.
cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  if [[ -n "$py_pid" ]] && kill -0 "$py_pid" 2>/dev/null; then
    kill -TERM "$py_pid" 2>/dev/null || true
    # bench.py needs a moment to stop its servers gracefully.
    for _ in $(seq 1 150); do kill -0 "$py_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$py_pid" 2>/dev/null || true
  fi
  if [[ -n "$workdir" && -f "$workdir/pids" ]]; then
    local pid
    while read -r pid; do
      [[ -n "$pid" ]] || continue
      kill -KILL -- "-$pid" 2>/dev/null || true   # its process group
      kill -KILL "$pid" 2>/dev/null || true
    done < "$workdir/pids"
  fi
  if [[ -n "$workdir" ]]; then
    if [[ $rc -ne 0 || "${BENCH_KEEP_WORKDIR:-0}" = 1 ]]; then
      echo "bench: configs and logs kept in $workdir" >&2
    else
      rm -rf "$workdir"
    fi
  fi
  exit "$rc"
}

on_signal() {
  echo "bench: interrupted, stopping servers" >&2
  exit 130   # the EXIT trap does the cleanup
}

main() {
  check_tools
  check_idle
  workdir=$(mktemp -d "${TMPDIR:-/tmp}/rend-bench.XXXXXX")
  trap cleanup EXIT
  trap on_signal INT TERM HUP

  # In the background + wait, so that a signal to this script is handled
  # at once (bash defers traps while a foreground child runs).
  /usr/bin/python3 -B "$here/bench.py" --build-dir "$build_dir" --work-dir "$workdir" \
    --results-dir "$here/results" &
  py_pid=$!
  local rc=0
  wait "$py_pid" || rc=$?
  py_pid=""
  return "$rc"
}

main "$@"
