#!/usr/bin/env bash
# Debian's qemu-user-static, extracted once (cached) without installing it or registering binfmt:
# qemu-aarch64-static for the emulated aarch64 device, qemu-hexagon-static for the Hexagon kernels.
#
#   cross_compile/qemu-user-static.sh [CACHE_DIR]      # prints the folder holding the binaries
#
# CACHE_DIR defaults to ~/.cache/tvm-prune/qemu-user-static. Needs: apt-get, dpkg-deb.
set -euo pipefail

CACHE="${1:-${HOME}/.cache/tvm-prune/qemu-user-static}"
mkdir -p "$CACHE"
cd "$CACHE"
if [ ! -f .qemu.done ]; then
  echo "qemu-user-static: extracting Debian's qemu-user-static (no binfmt registration)" >&2
  apt-get download -qq qemu-user-static
  dpkg-deb -x qemu-user-static_*.deb root
  rm -f qemu-user-static_*.deb
  touch .qemu.done
fi
echo "$CACHE/root/usr/bin"
