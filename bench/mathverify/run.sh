#!/usr/bin/env bash
# Math-Verify comparison: true-pair acceptance and false positives of swarr's verifier on
# the cases of Math-Verify's test suite (bench/mathverify/README.md). Not run in CI.
#   bench/mathverify/run.sh [BUILD_DIR] [--verbose]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="${1:-$root/build}"
shift || true
bin="$build/bin/verifier_bench"
if [[ ! -x "$bin" ]]; then
  echo "run.sh: $bin not found; build it: cmake --build $build --target verifier_bench" >&2
  exit 2
fi
exec "$bin" --mathverify "$here/cases.jsonl" "$@"
