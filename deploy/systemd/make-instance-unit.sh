#!/bin/sh
# Writes rend@.service (one rend of several on a host) from rend.service on stdout: instance NAME
# reads /etc/rend/NAME.json and gets /run/rend/NAME and /var/lib/rend/NAME. One source for both
# units, so their hardening never drifts apart. Usage: make-instance-unit.sh rend.service
set -eu
sed -e 's|^# Its configuration is /etc/rend/rend.json (run dir /run/rend, data under /var/lib/rend).$|# One of several on a host: instance NAME reads /etc/rend/NAME.json, whose run_dir must be\n# /run/rend/NAME and l2.data_dir under /var/lib/rend/NAME, with ports of its own.|' \
    -e 's|^Description=\(.*\)$|Description=\1 (%i)|' \
    -e 's|/etc/rend/rend.json|/etc/rend/%i.json|g' \
    -e 's|^RuntimeDirectory=rend$|RuntimeDirectory=rend/%i|' \
    -e 's|^StateDirectory=rend$|StateDirectory=rend/%i|' \
    -e 's|^WorkingDirectory=/var/lib/rend$|WorkingDirectory=/var/lib/rend/%i|' "$1"
