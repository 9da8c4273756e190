#!/usr/bin/env bash
# Configures and builds SWARR into build/ (Release).
#   scripts/build.sh                  everything: libraries, `swarr`, tests, benchmarks
#   scripts/build.sh --target swarr   only the `swarr` tool and the libraries it links (the demo)
# Other arguments go to CMake's configure step. ccache is used when it is installed
# (scripts/install.sh installs it): a second build of the same sources, in this or another
# clone, then costs seconds instead of minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
targets=()
configure=()
while [ $# -gt 0 ]; do
  case "$1" in
    --target) targets+=(--target "$2"); shift 2 ;;
    *) configure+=("$1"); shift ;;
  esac
done
if command -v ccache >/dev/null; then
  # Clones in different folders share cache entries (paths are rewritten relative to here).
  export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}"
  export CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-1}"
fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release ${configure[@]+"${configure[@]}"} >/dev/null
cmake --build build -j "$(nproc)" ${targets[@]+"${targets[@]}"}
