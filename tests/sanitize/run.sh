#!/usr/bin/env bash
# make test-sanitize: the tests of a build made with ASan + UBSan (cmake -DREND_SANITIZE=ON), and a
# check that no sanitized process reported anything.
#
# Usage: tests/sanitize/run.sh BUILD_DIR [unit|all]
#   unit: the unit tests and the fuzz corpora replays (what .ci/run runs).
#   all:  those, and the process tests that drive the worker, rend-l2 and the supervisor through
#         their real binaries (every process test but the ones that measure memory or time, which
#         the sanitizers' shadow memory and slowdown make meaningless; see PROCESS_SKIPPED).
#
# The processes a process test starts (rend, its workers, rend-l2) are sanitized too, but their
# stderr goes to rend's log, which nobody reads when the test passes. So every report is written
# to a file under a directory of its own (ASan's and UBSan's log_path), and the run fails if any
# file is there at the end, whatever the tests said. UBSan stops the process at the first finding
# (-fno-sanitize-recover), so it cannot go unnoticed either.
set -euo pipefail

build=$(cd "${1:?usage: run.sh BUILD_DIR [unit|all]}" && pwd)
scope=${2:-all}

# Not meaningful under the sanitizers: per-connection memory against memcached's (ASan's shadow
# memory and quarantine), the package (lintian would judge a sanitized build), and the fleet tests
# (they deploy the package; their rend is the release build's). Other tests keep running but skip
# their RSS bounds (REND_SANITIZED).
PROCESS_SKIPPED='test_connections|test_package'

reports=$(mktemp -d /tmp/rend-sanitize-XXXXXX)
trap 'rm -rf "$reports"' EXIT
# detect_leaks: a process that exits normally (SIGTERM, a drained worker) is checked for leaks.
# Processes killed on purpose (SIGKILL in tests) simply report nothing.
export ASAN_OPTIONS="log_path=$reports/asan:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1"
export UBSAN_OPTIONS="log_path=$reports/ubsan:print_stacktrace=1:halt_on_error=1"
export REND_SANITIZED=1  # tests skip their bounds on a process's RSS (rendtest.SANITIZED)

case "$scope" in
  unit) select=(-E '^(process\.|style\.|fleet\.)') ;;
  all) select=(-E "^(style\.|fleet\.|process\.($PROCESS_SKIPPED)\$)") ;;
  *) echo "run.sh: scope must be unit or all, not $scope" >&2; exit 2 ;;
esac

status=0
# Generous timeouts: everything runs two to three times slower.
(cd "$build" && ctest --output-on-failure --timeout 900 -j "$(nproc)" "${select[@]}") || status=$?

shopt -s nullglob
found=("$reports"/*)
if ((${#found[@]} > 0)); then
  echo "sanitizer reports (${#found[@]}):" >&2
  for f in "${found[@]}"; do
    echo "==== $f" >&2
    head -c 20000 "$f" >&2
  done
  status=1
fi
if ((status == 0)); then
  echo "test-sanitize ($scope): clean"
fi
exit "$status"
