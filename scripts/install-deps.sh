#!/usr/bin/env bash
# Installs the Debian packages rend needs to build, test and run, only when one is missing.
# Called by `make build`, `make run`, `make test` and `make bench`; safe to run again.
set -euo pipefail

packages=(
  build-essential cmake pkg-config clang-format clang-tidy git
  libuv1-dev librocksdb-dev nlohmann-json3-dev prometheus-cpp-dev
  libspdlog-dev libfmt-dev libxxhash-dev libcli11-dev liburing-dev
  libgtest-dev libgmock-dev libsystemd-dev
  memcached libmemcached-tools nutcracker
  python3 procps prometheus systemd e2fsprogs util-linux lintian
  ansible ansible-lint python3-yaml systemd-container debootstrap iproute2
)
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(gnuplot-nox valgrind)
fi
if [[ "${1:-}" == "--fuzz" ]]; then
  packages+=(clang libclang-rt-dev)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
[[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -q
"${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
