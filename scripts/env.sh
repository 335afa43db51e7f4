# Sourced by the other scripts: installs the build prerequisites on Debian if missing and sets
# up a fast build (shared target directory, mold linker, two build jobs).
# shellcheck shell=bash

need=()
command -v clang >/dev/null 2>&1 || need+=(clang)
command -v mold >/dev/null 2>&1 || need+=(mold)
command -v g++ >/dev/null 2>&1 || need+=(g++)
[ -n "$(find /usr/lib -name 'libclang*.so*' -print -quit 2>/dev/null)" ] || need+=(libclang-dev)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing build prerequisites: ${need[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target}"
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER=clang
export RUSTFLAGS="${RUSTFLAGS:--C link-arg=-fuse-ld=mold}"
