#!/usr/bin/env bash
# One seed of the embedded experiment's conversion + adaptation with `swarr train` (in-process
# stages), evaluated with demo_eval: SFT under the window -> eval -> RL -> eval. The SA
# model's own evaluation is shared by all seeds (run it once with demo_eval).
#
#   bench/demo_run.sh BIN_DIR RUN_DIR SEED
#
# Settings are the committed configs/demo/*.yaml; these variables override single settings
# for a sweep (unset = the committed value):
#   SA_MODEL  SFT_STEPS SFT_WF SFT_LR  RL_STEPS RL_LR RL_PROMPTS RL_SAMPLES RL_KL
#   EVAL_N (greedy evaluation problems)  SAMPLE_N (problems for the sampled-style share)
# Writes RUN_DIR/{swa_sft,swa_rl}/ (the stages' run directories), RUN_DIR/eval_*.json and
# RUN_DIR/times.txt (wall seconds per phase).
set -uo pipefail
BIN=$1
RUN=$2
SEED=$3
SRC=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$RUN"
CFG=$SRC/configs/demo
EVAL_N=${EVAL_N:-500}
SAMPLE_N=${SAMPLE_N:-200}

# Stage configs of this run: the committed ones with the seed and any override applied.
sed -e "s|^seed: 0|seed: $SEED|" \
    -e "s|^  seed: 0 .*|  seed: $SEED|" \
    -e "s|^  path: configs/demo/sa_model|  path: ${SA_MODEL:-$CFG/sa_model}|" \
    ${SFT_STEPS:+-e "s|^  max_steps: 300|  max_steps: $SFT_STEPS|"} \
    ${SFT_WF:+-e "s|wf=0.1\"|wf=$SFT_WF\"|"} \
    ${SFT_LR:+-e "s|^  lr: 3.0e-4|  lr: $SFT_LR|"} \
    "$CFG/swa_sft.yaml" > "$RUN/swa_sft.yaml"
sed -e "s|^seed: 0 .*|seed: $SEED|" \
    -e "s|^  seed: 0|  seed: $SEED|" \
    -e "s|^  path: runs/demo/swa_sft/final|  path: $RUN/swa_sft/final|" \
    ${RL_STEPS:+-e "s|^  max_steps: 80|  max_steps: $RL_STEPS|"} \
    ${RL_LR:+-e "s|^  lr: 1.0e-4|  lr: $RL_LR|"} \
    ${RL_PROMPTS:+-e "s|^  prompts_per_step: 16|  prompts_per_step: $RL_PROMPTS|"} \
    ${RL_SAMPLES:+-e "s|^  samples_per_prompt: 8|  samples_per_prompt: $RL_SAMPLES|"} \
    ${RL_KL:+-e "s|^  kl_coef: 0.0|  kl_coef: $RL_KL|"} \
    "$CFG/swa_rl.yaml" > "$RUN/swa_rl.yaml"

now() { date +%s.%N; }
eval_model() {  # NAME MODEL_DIR
  "$BIN/demo_eval" --config "$CFG/eval.yaml" --model "$2" --window 12 --n "$EVAL_N" --out "$RUN/eval_$1.json" \
    --samples "$RUN/samples_$1.jsonl" > /dev/null || echo "eval $1 failed" >&2
  "$BIN/demo_eval" --config "$CFG/eval.yaml" --model "$2" --window 12 --n "$SAMPLE_N" --temperature 1 --seed "$SEED" \
    --out "$RUN/eval_$1_sampled.json" > /dev/null || echo "sampled eval $1 failed" >&2
}

t0=$(now)
"$BIN/swarr" train --config "$RUN/swa_sft.yaml" --run-dir "$RUN/swa_sft" > "$RUN/swa_sft.log" 2>&1 || { echo "sft failed"; tail -3 "$RUN/swa_sft.log"; exit 1; }
t1=$(now)
eval_model swa_sft "$RUN/swa_sft/final"
t2=$(now)
"$BIN/swarr" train --config "$RUN/swa_rl.yaml" --run-dir "$RUN/swa_rl" > "$RUN/swa_rl.log" 2>&1 || { echo "rl failed"; tail -3 "$RUN/swa_rl.log"; exit 1; }
t3=$(now)
eval_model swa_rl "$RUN/swa_rl/final"
t4=$(now)
awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" -v e="$t4" \
  'BEGIN { printf "sft %.1f eval_sft %.1f rl %.1f eval_rl %.1f\n", b - a, c - b, d - c, e - d }' > "$RUN/times.txt"
