#!/usr/bin/env bash
# Long chaos runs (docs/reliability.md "Chaos"): for each seed, a longer toy pipeline with
# 20+ faults, then one undisturbed run for the eval-accuracy comparison. One JSON line per run
# in $OUT (default /tmp/swarr_chaos_long.jsonl). Not in ctest (minutes per run).
#   tests/chaos/run_long.sh [SEEDS...]        (default seeds: 1 2 3)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="$(cd "$here/../.." && pwd)"
swarr="${SWARR:-$src/build/bin/swarr}"
out="${OUT:-/tmp/swarr_chaos_long.jsonl}"
faults="${FAULTS:-20}"
rl_steps="${RL_STEPS:-120}"
seeds=("$@")
[ ${#seeds[@]} -eq 0 ] && seeds=(1 2 3)
: > "$out"
status=0
for seed in "${seeds[@]}"; do
  python3 "$here/chaos.py" --swarr "$swarr" --seed "$seed" --faults "$faults" --rl-steps "$rl_steps" \
      --sft-steps 300 --eval-problems 100 --gap 0.3 2 --timeout 1200 >> "$out" || status=1
done
# The same pipeline without faults: the accuracy the chaos runs are compared with.
python3 "$here/chaos.py" --swarr "$swarr" --seed 0 --faults 0 --rl-steps "$rl_steps" --sft-steps 300 \
    --eval-problems 100 --timeout 1200 >> "$out" || status=1
cat "$out"
exit $status
