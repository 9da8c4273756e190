#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
scripts/build.sh
cd build
# ctest runs one test process per core: give each one LibTorch thread. (OpenMP threads that
# outnumber the cores spin against each other and can make a test 50x slower.)
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
ctest -j "$(nproc)" --output-on-failure --timeout 900
