#!/usr/bin/env bash
# Installs what is missing, builds, and runs SWARR's main job. Until the embedded demo
# exists, that is the generation benchmark: SWA (ring KV cache) against full attention.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
scripts/build.sh
build/bin/generation_bench "$@"
