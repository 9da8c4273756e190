#!/usr/bin/env bash
# Installs what is missing, builds, and runs SWARR's main job: the embedded experiment
# (`swarr demo`, docs/demo.md) through the real services on this machine — the SA model, the
# same model converted to a sliding window by SFT, and after RL under the window — ending with
# the results table and the path of the report. Extra arguments go to `swarr demo`
# (e.g. --quick, --seed 3, --run-dir DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
# Only what the demo runs: the `swarr` tool and its libraries (scripts/test.sh builds the tests
# and benchmarks too).
scripts/build.sh --target swarr
build/bin/swarr demo "$@"
