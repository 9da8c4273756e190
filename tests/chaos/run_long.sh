#!/usr/bin/env bash
# Long chaos runs (docs/reliability.md "Chaos"): first one undisturbed run of the pipeline (the
# eval accuracy the chaos runs are compared with), then for each seed the same pipeline with 20+
# faults (kill -9, SIGSTOP beyond the lease, network delay / loss / dropped connections); each
# chaos run fails unless its eval accuracy is at least the undisturbed one minus ACC_BOUND. One
# JSON line per run in $OUT (default /tmp/swarr_chaos_long.jsonl), then a table. Not in ctest
# (minutes per run). Needs root for the network namespace; NO_NET=1 runs without network faults.
#   tests/chaos/run_long.sh [SEEDS...]        (default seeds: 1 2 3)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="$(cd "$here/../.." && pwd)"
swarr="${SWARR:-$src/build/bin/swarr}"
out="${OUT:-/tmp/swarr_chaos_long.jsonl}"
faults="${FAULTS:-20}"
rl_steps="${RL_STEPS:-120}"
sft_steps="${SFT_STEPS:-300}"
acc_bound="${ACC_BOUND:-0.05}"
min_net="${MIN_NET_FAULTS:-5}"
net=()
[ "${NO_NET:-0}" = 1 ] && { net=(--no-net); min_net=0; }
seeds=("$@")
[ ${#seeds[@]} -eq 0 ] && seeds=(1 2 3)
: > "$out"
status=0
common=(--swarr "$swarr" --rl-steps "$rl_steps" --sft-steps "$sft_steps" --eval-problems 100 --timeout 1200)
# The same pipeline without faults: the accuracy the chaos runs are compared with.
python3 "$here/chaos.py" "${common[@]}" "${net[@]}" --seed 0 --faults 0 >> "$out" || status=1
base=$(tail -n 1 "$out" | python3 -c 'import json, sys; print(json.load(sys.stdin)["eval_accuracy"])')
min_acc=$(python3 -c "print(round($base - $acc_bound, 4))")
echo "undisturbed eval accuracy $base; chaos runs must reach $min_acc" >&2
for seed in "${seeds[@]}"; do
  python3 "$here/chaos.py" "${common[@]}" "${net[@]}" --seed "$seed" --faults "$faults" --gap 0.3 2 \
      --min-accuracy "$min_acc" --min-net-faults "$min_net" >> "$out" || status=1
done
python3 - "$out" <<'EOF'
import json, sys
print("seed | faults by kind | wall s | RL steps | reassigned | re-dispatched after learner restart | "
      "acked never trained | trained twice | eval accuracy | failures")
for line in open(sys.argv[1]):
    r = json.loads(line)
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(r["faults_by_kind"].items()))
    print(f"{r['seed']} | {len(r['faults'])} ({kinds}) | {r['wall_seconds']} | {r['rl_steps']} | "
          f"{r['groups_reassigned']} | {r['groups_redispatched_after_learner_restart']} | "
          f"{r['groups_acked_never_trained']} | {r['trajectory_ids_trained_twice']} | {r['eval_accuracy']} | "
          f"{'; '.join(r['failures']) or 'none'}")
EOF
exit $status
