#!/usr/bin/env bash
# Installs what the peer programs in bench/peers need, from Debian only.
# Idempotent: does nothing when dpkg already reports every package installed.
set -euo pipefail
PKGS=(python3 python3-numpy python3-torch libopenblas0-pthread
      libopenmpi-dev openmpi-bin g++ make)
missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed' || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "bench/peers: all packages present"
  exit 0
fi
echo "bench/peers: installing ${missing[*]}"
SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO=sudo
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
