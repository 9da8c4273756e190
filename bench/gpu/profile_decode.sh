#!/usr/bin/env bash
# Where a decode step's GPU time goes (issue 11's batch-1 target), on the GPU machine after a
# build in /tmp/b (bench/gpu/rollout_bench.sh STAGES=build): Nsight Compute times every kernel of
# short eager generations (a graph replays the same kernels) of the Qwen2.5-1.5B-shaped model at
# batch 1 and 128, and bench/gpu/ncu_table.py sums them by kernel. Writes $OUT/ncu_b{1,128}.csv
# and prints the tables.
set -uo pipefail
OUT=${OUT:-/tmp/out}
B=/tmp/b/bin/gpu_rollout_bench
for batch in ${PROFILE_BATCHES:-1 128}; do
  timeout ${PROFILE_TIMEOUT:-150} ncu --metrics gpu__time_duration.sum --csv --log-file "$OUT/ncu_b$batch.csv" \
    $B --batches $batch --new ${PROFILE_NEW:-8} --prompt 64 --graphs 0 > /dev/null 2>&1
  echo "== batch $batch (rc $?)"
  python3 bench/gpu/ncu_table.py "$OUT/ncu_b$batch.csv" --steps $(( ${PROFILE_NEW:-8} + 16 ))
done
