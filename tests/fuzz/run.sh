#!/usr/bin/env bash
# Runs every libFuzzer target of a REND_FUZZ build for FUZZ_SECONDS each (make fuzz), and prints
# per target the executions, the coverage reached (libFuzzer's cov/ft) and whether it crashed.
#
#   tests/fuzz/run.sh FUZZ_BUILD_DIR SECONDS
#
# New inputs go to FUZZ_BUILD_DIR/corpus/<target> (the repo's corpus stays the seeds plus what
# was added by hand); a crash's input is saved as FUZZ_BUILD_DIR/crashes/<target>-crash-*: fix
# the bug, then copy the input into tests/fuzz/corpus/<target>/ so `make test` replays it.
set -uo pipefail
build=$1
seconds=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
read -r -a targets <<<"${FUZZ_TARGETS:-text_request binary_request backend_response chunk_format l2_value config control_request}"
mkdir -p "$build/crashes"
failed=0
summary=()
for t in "${targets[@]}"; do
  mkdir -p "$build/corpus/$t"
  log="$build/fuzz-$t.log"
  echo "fuzz: $t for ${seconds}s"
  "$build/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$build/crashes/$t-" "$build/corpus/$t" "$here/corpus/$t" >"$log" 2>&1
  rc=$?
  execs=$(grep -oP 'stat::number_of_executed_units:\s*\K[0-9]+' "$log" | tail -1)
  cov=$(grep -oP '(#\d+\s+(DONE|pulse|NEW|REDUCE|INITED)).*?cov: \K[0-9]+' "$log" | tail -1)
  ft=$(grep -oP 'cov: [0-9]+ ft: \K[0-9]+' "$log" | tail -1)
  corpus=$(ls "$build/corpus/$t" | wc -l)
  verdict=ok
  if [[ $rc -ne 0 ]]; then
    verdict="CRASH (see $log)"
    failed=1
  fi
  summary+=("| $t | ${execs:-?} | ${cov:-?} | ${ft:-?} | $corpus | $verdict |")
done
echo
echo "| target | executions | coverage (edges) | features | corpus | result |"
echo "|---|---:|---:|---:|---:|---|"
printf '%s\n' "${summary[@]}"
exit $failed
