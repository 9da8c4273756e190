#!/usr/bin/env bash
# The embedded experiment's exploration on the GPU machine (docs/demo-task.md): build, pretrain
# the SA model on the GPU, evaluate it, then sweep SFT + RL schedules over seeds on the
# machine's CPU cores (the demo's own CPU settings, one thread per run, runs side by side).
# Everything it produces is packed into $OUT/results.tgz (plus the summary and the SA
# checkpoint) so that it comes back within the device tool's file limits.
#
#   PRETRAIN=1 SWEEP="v1 v2" SEEDS="0 1 2 3 4" bench/demo_device.sh
#
# PRETRAIN=1: pretrain PRETRAIN_SEEDS (default "0 1") side by side on the GPU and keep the most
#   accurate as the SA model; otherwise use configs/demo/sa_model.
# BIN_TGZ=path: use carried binaries (swarr, demo_eval) instead of building.
# SWEEP: variant names; a variant's overrides are the variable VARIANT_<name> (e.g.
#   VARIANT_v2="SFT_WF=0.05"), passed to bench/demo_run.sh as environment.
# DEADLINE: seconds after start by which everything is packed (default 560).
set -uo pipefail
START=$(date +%s)
DEADLINE=${DEADLINE:-560}
OUT=${OUT:-/tmp/out}
W=/tmp/demo
rm -rf "$W" && mkdir -p "$W" "$OUT"
left() { echo $((DEADLINE - ($(date +%s) - START))); }
pack() {
  (cd "$W" && tar czf "$OUT/results.tgz" --exclude='*.safetensors' --exclude='checkpoints' . 2>/dev/null)
  [ -f "$W/summary.md" ] && cp "$W/summary.md" "$OUT/summary.md"
  echo "packed at $(( $(date +%s) - START ))s"
}
trap pack EXIT

if [ -z "${SKIP_ENV:-}" ]; then  # SKIP_ENV=1: a dry run on a CPU machine (with BIN_TGZ)
  rm -rf /tmp/deps
  source .device/env.sh > "$W/env.log" 2>&1
  export CPATH=/tmp/deps/usr/include  # headers of carried packages found by name only (xxhash.h)
fi
nproc > "$W/machine.txt"; nvidia-smi --query-gpu=name --format=csv,noheader >> "$W/machine.txt" 2>&1
lscpu | grep -E "Model name|^CPU\(s\)" >> "$W/machine.txt"
if [ -n "${BIN_TGZ:-}" ]; then
  mkdir -p /tmp/b/bin && tar xzf "$BIN_TGZ" -C /tmp/b/bin
else
  cmake -S . -B /tmp/b -G Ninja -DCMAKE_BUILD_TYPE=Release -DSWARR_WITH_CUDA=ON -DSWARR_SHARED_DIR="$PWD/.device/shared" \
    -DSWARR_BUILD_TESTS=OFF -DCMAKE_PREFIX_PATH="$CMAKE_PREFIX_PATH" > "$W/cmake.log" 2>&1 || { tail -30 "$W/cmake.log"; exit 1; }
  cmake --build /tmp/b -j 16 --target swarr demo_eval > "$W/build.log" 2>&1 || { grep -E "error" "$W/build.log" | head -30; exit 1; }
  (cd /tmp/b/bin && strip swarr demo_eval && tar czf "$OUT/bin.tgz" swarr demo_eval)
fi
BIN=/tmp/b/bin
echo "== binaries ready at $(( $(date +%s) - START ))s"

SA=$PWD/configs/demo/sa_model
if [ -n "${PRETRAIN:-}" ]; then
  for s in ${PRETRAIN_SEEDS:-0 1}; do
    # On the GPU; max_minutes makes sure a final model is written before the deadline.
    sed -e "s|^seed: 0 .*|seed: $s|" -e "s|device: cpu|device: ${PRETRAIN_DEVICE:-cuda}|" \
      ${PRETRAIN_STEPS:+-e "s|max_steps: 4000|max_steps: $PRETRAIN_STEPS|"} \
      ${PRETRAIN_EXTRA:+-e "$PRETRAIN_EXTRA"} \
      -e "s|^  max_steps: \(.*\)|  max_steps: \1\n  max_minutes: ${PRETRAIN_MINUTES:-4}|" \
      configs/demo/sa_pretrain.yaml > "$W/sa_pretrain_$s.yaml"
    ("$BIN/swarr" train --config "$W/sa_pretrain_$s.yaml" --run-dir "$W/pre$s" > "$W/pre$s.log" 2>&1;
     OMP_NUM_THREADS=4 "$BIN/demo_eval" --config configs/demo/eval.yaml --model "$W/pre$s/final" --window 0 --out "$W/pre$s/eval_sa.json" --samples "$W/pre$s/samples_sa.jsonl" > /dev/null;
     OMP_NUM_THREADS=4 "$BIN/demo_eval" --config configs/demo/eval.yaml --model "$W/pre$s/final" --window 0 --n 300 --temperature 1 --out "$W/pre$s/eval_sa_sampled.json" > /dev/null;
     OMP_NUM_THREADS=4 "$BIN/demo_eval" --config configs/demo/eval.yaml --model "$W/pre$s/final" --window 12 --out "$W/pre$s/eval_swa_nosft.json" > /dev/null;
     OMP_NUM_THREADS=4 "$BIN/demo_eval" --config configs/demo/eval.yaml --model "$W/pre$s/final" --window 12 --n 300 --temperature 1 --out "$W/pre$s/eval_swa_nosft_sampled.json" > /dev/null) &
  done
  wait
  best=""; best_acc=-1
  for s in ${PRETRAIN_SEEDS:-0 1}; do
    acc=$(python3 -c "import json; print(json.load(open('$W/pre$s/eval_sa.json'))['accuracy'])" 2>/dev/null || echo -1)
    echo "pretrain seed $s: SA accuracy $acc, $(tail -1 "$W/pre$s.log")"
    tail -1 "$W/pre$s/metrics.jsonl"
    if python3 -c "import sys; sys.exit(0 if $acc > $best_acc else 1)"; then best=$s; best_acc=$acc; fi
  done
  [ -n "$best" ] || exit 1
  SA=$W/pre$best/final
  mkdir -p "$OUT/sa_model" && cp "$SA/config.json" "$SA/model.safetensors" "$OUT/sa_model/"
  cp "$W/pre$best/metrics.jsonl" "$OUT/sa_model/metrics.jsonl"
  echo "== SA model: pretrain seed $best (accuracy $best_acc) at $(( $(date +%s) - START ))s"
  cp "$W/pre$best/eval_sa.json" "$W/eval_sa.json"
else
  OMP_NUM_THREADS=4 "$BIN/demo_eval" --config configs/demo/eval.yaml --model "$SA" --window 0 --out "$W/eval_sa.json" > /dev/null
fi

if [ -n "${SWEEP:-}" ]; then
  runs=()
  for v in $SWEEP; do
    var="VARIANT_$v"
    for s in ${SEEDS:-0 1 2 3 4}; do
      runs+=("$W/sweep/$v/seed$s")
      (env ${!var:-} SA_MODEL="$SA" OMP_NUM_THREADS=1 timeout $(( $(left) - 15 )) bench/demo_run.sh "$BIN" "$W/sweep/$v/seed$s" "$s" \
        > "$W/sweep_${v}_$s.log" 2>&1) &
    done
  done
  wait
  python3 bench/demo_summary.py "$W/eval_sa.json" "${runs[@]}" > "$W/summary.md"
  cat "$W/summary.md"
  for r in "${runs[@]}"; do echo "$r $(cat "$r/times.txt" 2>/dev/null)"; done
fi
