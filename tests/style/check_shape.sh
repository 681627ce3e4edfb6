#!/usr/bin/env bash
# The code's shape, checked so it stays: every C++ file is as .clang-format formats it, no file in
# worker/, l2/, supervisor/ or loadgen/ passes 500 lines, and no function there passes 80 lines
# (clang-tidy's readability-function-size, on the build's compile_commands.json).
# Usage: check_shape.sh SOURCE_DIR BUILD_DIR
set -uo pipefail
src=${1:?source dir}
build=${2:?build dir}
cd "$src"
status=0

mapfile -t files < <(git ls-files '*.cc' '*.h' 2>/dev/null || find common worker l2 supervisor loadgen tests -name '*.cc' -o -name '*.h')
unformatted=()
for f in "${files[@]}"; do
  clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || unformatted+=("$f")
done
if ((${#unformatted[@]})); then
  echo "not formatted as .clang-format says (run clang-format -i): ${unformatted[*]}"
  status=1
fi

shaped=()
for f in "${files[@]}"; do
  case "$f" in worker/*|l2/*|supervisor/*|loadgen/*) shaped+=("$f") ;; esac
done
for f in "${shaped[@]}"; do
  n=$(wc -l < "$f")
  if ((n > 500)); then
    echo "$f: $n lines (at most 500)"
    status=1
  fi
done

sources=()
for f in "${shaped[@]}"; do [[ "$f" == *.cc ]] && sources+=("$f"); done
long=$(printf '%s\n' "${sources[@]}" | xargs -P "$(nproc)" -n 8 clang-tidy -p "$build" --quiet \
  --checks='-*,readability-function-size' \
  --config='{CheckOptions: [{key: readability-function-size.LineThreshold, value: 80}]}' 2>/dev/null |
  grep 'warning:' | sort -u)
if [[ -n "$long" ]]; then
  echo "functions over 80 lines:"
  echo "$long"
  status=1
fi
if ((status == 0)); then
  echo "shape ok: ${#files[@]} files formatted, ${#shaped[@]} files within 500 lines, ${#sources[@]} sources without a function over 80 lines"
fi
exit $status
