#!/usr/bin/env bash
# Installs what SWARR needs from Debian's packages, and only what is missing.
# Idempotent; prints nothing when everything is already there.
set -euo pipefail

PACKAGES=(
  # toolchain
  g++ cmake ninja-build pkg-config ccache
  # LibTorch (Debian's 1.13, CPU) and a fast BLAS: without OpenBLAS LibTorch falls back to
  # the reference BLAS and matmul runs about 30x slower.
  libtorch-dev libopenblas0-openmp
  # services stack (libcpp-httplib-dev: the /metrics server)
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev prometheus-cpp-dev libcpp-httplib-dev
  # libraries
  nlohmann-json3-dev libutf8proc-dev libyaml-cpp-dev libxxhash-dev
  # tests: GoogleTest, openssl (TLS certificates), a real Prometheus server and promtool;
  # ip, ss and iptables for the chaos test's network faults (tests/chaos/netfaults.py)
  libgtest-dev libgmock-dev openssl prometheus iproute2 iptables
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "install: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install: done"
