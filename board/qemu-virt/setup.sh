#!/usr/bin/env bash
# Installs QEMU >= 10 (qemu-system-aarch64) on a Debian 12 machine, from
# bookworm-backports. Debian 12's own QEMU (7.2) has no SMMUv3 stage 2.
#
# The backports source is derived from the machine's own Debian source
# (same URI and keyring, suite bookworm-backports): no host name is written
# here (tests/linux/fetch.sh needs that source too). Idempotent and quiet
# when QEMU >= 10 is installed and the source exists.
set -euo pipefail

need_major=10

qemu_major() {
  command -v qemu-system-aarch64 >/dev/null 2>&1 || { echo 0; return; }
  qemu-system-aarch64 --version | sed -n 's/^QEMU emulator version \([0-9]*\).*/\1/p'
}

list=/etc/apt/sources.list.d/bookworm-backports.sources
# Nothing to do when QEMU is recent enough and the backports source (which
# tests/linux/fetch.sh also needs) is there.
[ "$(qemu_major)" -ge "$need_major" ] && [ -f "$list" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi

# Find the main Debian archive URI and keyring of this machine.
uri=""
keyring=""
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  # deb822 format: take the stanza whose Suites lists plain "bookworm".
  read -r uri keyring < <(awk '
    /^$/ { if (suite_ok && uri != "") { print uri, key; exit } suite_ok=0; uri=""; key="" }
    /^URIs:/ { uri=$2 }
    /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm") suite_ok=1 }
    /^Signed-By:/ { key=$2 }
    END { if (suite_ok && uri != "") print uri, key }
  ' /etc/apt/sources.list.d/debian.sources)
fi
if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
  uri=$(awk '$1 == "deb" && $3 == "bookworm" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)
fi
if [ -z "$uri" ]; then
  echo "setup: cannot find this machine's Debian bookworm apt source; install qemu-system-arm >= $need_major by hand" >&2
  exit 1
fi

if [ ! -f "$list" ]; then
  echo "setup: adding bookworm-backports (from $uri) for qemu-system-arm >= $need_major and Linux" >&2
  {
    echo "Types: deb"
    echo "URIs: $uri"
    echo "Suites: bookworm-backports"
    echo "Components: main"
    [ -n "$keyring" ] && echo "Signed-By: $keyring"
  } | $SUDO tee "$list" >/dev/null
fi

[ "$(qemu_major)" -ge "$need_major" ] && exit 0

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq -t bookworm-backports qemu-system-arm >/dev/null

if [ "$(qemu_major)" -lt "$need_major" ]; then
  echo "setup: qemu-system-aarch64 is still older than $need_major" >&2
  exit 1
fi
