#!/usr/bin/env bash
# Builds, once, the root filesystem the fleet tests boot as hosts: Debian 12 with systemd as PID 1,
# python3 for Ansible, and every package rend's .deb depends on (a host in its own network namespace
# has no network, so apt must find them already installed). Prints the rootfs path on stdout.
#
# Usage: host_image.sh REND_DEB [CACHE_DIR]
# The image is kept in CACHE_DIR (default /var/cache/rend-test), keyed by this script and the .deb's
# dependencies, so it is built again only when either changes. Building takes a few minutes
# (debootstrap from the Debian mirror); a cached one costs nothing.
set -euo pipefail

deb=$1
cache=${2:-/var/cache/rend-test}
mirror=${REND_TEST_MIRROR:-http://deb.debian.org/debian}

# Package names of the .deb's Depends, without versions or alternatives.
depends=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed -e 's/(.*)//' -e 's/|.*//' -e 's/ //g' | grep . | sort -u)
base="systemd systemd-sysv dbus python3 python3-apt iproute2 procps"
key=$( { cat "$0"; echo "$depends"; } | sha256sum | cut -c1-16)
rootfs="$cache/fleet-host-$key"

if [[ -f "$rootfs.ready" ]]; then
  echo "$rootfs"
  exit 0
fi

mkdir -p "$cache"
exec 9>"$cache/fleet-host.lock"
flock 9
if [[ -f "$rootfs.ready" ]]; then  # another run built it while this one waited
  echo "$rootfs"
  exit 0
fi
rm -rf "$rootfs" "$rootfs.tmp"
log="$cache/fleet-host-$key.log"
fail() {
  echo "host_image: $1 failed; see $log" >&2
  exit 1
}
echo "host_image: debootstrap bookworm into $rootfs (once; a few minutes)" >&2
debootstrap --variant=minbase --include="$(echo $base | tr ' ' ',')" bookworm "$rootfs.tmp" "$mirror" >"$log" 2>&1 ||
  fail debootstrap
# rend's dependencies through apt, which (unlike debootstrap) resolves virtual packages such as
# libspdlog1.10-fmt9; with the updates and security suites, as a fleet host has them.
cat >"$rootfs.tmp/etc/apt/sources.list" <<SOURCES
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb ${mirror%/debian}/debian-security bookworm-security main
SOURCES
{
  chroot "$rootfs.tmp" apt-get update -q &&
    DEBIAN_FRONTEND=noninteractive chroot "$rootfs.tmp" apt-get install -y -q --no-install-recommends $depends &&
    DEBIAN_FRONTEND=noninteractive chroot "$rootfs.tmp" apt-get upgrade -y -q
} >>"$log" 2>&1 || fail "apt-get install of rend's dependencies"
# Hosts get their identity at boot: an empty machine-id makes systemd generate one per host.
: >"$rootfs.tmp/etc/machine-id"
rm -f "$rootfs.tmp/var/lib/dbus/machine-id"
# Nothing in a test host needs these, and they slow every boot.
chroot "$rootfs.tmp" systemctl mask --quiet systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer \
  e2scrub_all.timer fstrim.timer getty@tty1.service console-getty.service 2>/dev/null || true
chroot "$rootfs.tmp" apt-get clean
mv "$rootfs.tmp" "$rootfs"
touch "$rootfs.ready"
echo "$rootfs"
