#!/usr/bin/env bash
# Set up (once, cached) an emulated aarch64 Linux device that runs the stock TVM RPC server:
# an arm64 Debian sysroot with Python 3.11, the aarch64 apache-tvm wheel, and qemu-aarch64.
# Nothing is installed on the host system: apt runs with a private configuration and state.
#
#   cross_compile/emulated-aarch64.sh [CACHE_DIR]      # prints CACHE_DIR/bin/python3 at the end
#
# CACHE_DIR defaults to ~/.cache/tvm-prune/emulated-aarch64. Safe to run again: finished steps
# are skipped (each leaves a stamp file). Needs: apt-get, dpkg-deb, pip, python3.11 (host).
set -euo pipefail

CACHE="${1:-${HOME}/.cache/tvm-prune/emulated-aarch64}"
HERE="$(cd "$(dirname "$0")" && pwd)"
TVM_VERSION="0.27.0.post1"
TVM_FFI_VERSION="0.1.14.post1"
HOST_PYTHON="${HOST_PYTHON:-$(command -v python3.11 || command -v python3)}"
mkdir -p "$CACHE"
cd "$CACHE"
step() { echo "emulated-aarch64: $*" >&2; }

if [ ! -f .sysroot.done ]; then
  step "arm64 sysroot with python3.11 (private apt state; the host's apt/dpkg are untouched)"
  mkdir -p apt/state/lists/partial apt/cache/archives/partial apt/etc sysroot
  : > apt/state/status
  cat > apt/etc/apt.conf <<CONF
APT::Architecture "arm64";
APT::Architectures { "arm64"; };
Dir::State "$CACHE/apt/state";
Dir::State::status "$CACHE/apt/state/status";
Dir::Cache "$CACHE/apt/cache";
Dir::Etc::SourceList "/etc/apt/sources.list";
Dir::Etc::SourceParts "/etc/apt/sources.list.d";
Debug::NoLocking "true";
CONF
  export APT_CONFIG="$CACHE/apt/etc/apt.conf"
  apt-get update -qq
  apt-get install -d -y -qq python3.11-minimal:arm64 libpython3.11-stdlib:arm64 libstdc++6:arm64 >/dev/null
  for deb in apt/cache/archives/*.deb; do dpkg-deb -x "$deb" sysroot; done
  unset APT_CONFIG
  touch .sysroot.done
fi

QEMU_BIN="$("$HERE/qemu-user-static.sh" "$CACHE/qemu")"

if [ ! -f .tvm.done ]; then
  step "aarch64 apache-tvm $TVM_VERSION wheel (runtime only is used on the device)"
  "$HOST_PYTHON" -m pip install -q --disable-pip-version-check --target site \
    --platform manylinux_2_28_aarch64 --platform manylinux2014_aarch64 \
    --python-version 3.11 --implementation cp --only-binary=:all: \
    "apache-tvm[rpc]==$TVM_VERSION" "apache-tvm-ffi==$TVM_FFI_VERSION"
  touch .tvm.done
fi

if [ ! -f .pyc.done ]; then
  step "byte-compiling the guest stdlib with the host's CPython 3.11 (same magic; 7x faster start)"
  "$HOST_PYTHON" -m compileall -q -j 0 sysroot/usr/lib/python3.11 site >/dev/null 2>&1 || true
  touch .pyc.done
fi

mkdir -p bin
cat > bin/python3 <<WRAP
#!/bin/sh
# The device's python3: arm64 CPython under qemu-aarch64. -0 makes children that the RPC server
# spawns through sys.executable (this script) go through qemu too.
export PYTHONHOME="$CACHE/sysroot/usr"
export PYTHONPATH="$CACHE/site"
export TVM_USE_RUNTIME_LIB=1
export QEMU_CPU="\${QEMU_CPU:-cortex-a72}"
exec "$QEMU_BIN/qemu-aarch64-static" -L "$CACHE/sysroot" -0 "$CACHE/bin/python3" \
  "$CACHE/sysroot/usr/bin/python3.11" "\$@"
WRAP
chmod +x bin/python3
echo "$CACHE/bin/python3"
