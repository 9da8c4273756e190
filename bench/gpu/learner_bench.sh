#!/usr/bin/env bash
# The GPU learner run (issue: GPU learner), on the GPU machine, from the repository root with
# .device/ carried (see bench/gpu/rollout_bench.sh): builds the CUDA targets, runs the GPU
# learner tests, then in ONE run the anchors (FlexAttention and LibTorch's windowed
# FlashAttention-2: anchors.py `attn fa2win`; HF transformers SFT: hf_sft_anchor.py) and
# SWARR's gpu_learner_bench, and writes $OUT/gpu_learner.json (bench/gpu/merge_learner.py).
#   STAGES="build test anchors bench" (default all)
set -uo pipefail
STAGES=${STAGES:-"build test anchors bench"}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
has() { [[ " $STAGES " == *" $1 "* ]]; }
if has build; then
  source .device/env.sh
  cmake -S . -B /tmp/b -G Ninja -DCMAKE_BUILD_TYPE=Release -DSWARR_WITH_CUDA=ON \
    -DSWARR_SHARED_DIR="$PWD/.device/shared" -DCMAKE_PREFIX_PATH="$CMAKE_PREFIX_PATH" > "$OUT/cmake.log" 2>&1 \
    || { tail -40 "$OUT/cmake.log"; exit 1; }
  cmake --build /tmp/b -j 16 --target cuda_learner_test fused_logprobs_test memory_estimate_test gpu_learner_bench ${EXTRA_TARGETS:-} > "$OUT/build.log" 2>&1 \
    || { grep -E -A3 "error" "$OUT/build.log" | head -60; exit 1; }
  echo "== build ok"
else
  source .device/env.sh > /dev/null
fi
if has test; then
  timeout 300 /tmp/b/learner/cuda_learner_test 2>&1 | tee "$OUT/cuda_learner_test.log" | grep -vE "^\[ (RUN|      OK) " | tail -40
  for t in fused_logprobs_test memory_estimate_test; do
    timeout 120 /tmp/b/learner/$t 2>&1 | tee "$OUT/$t.log" | grep -E "FAILED|PASSED|Failure" -A3 | tail -12
  done
fi
if has anchors; then
  PYTHONUNBUFFERED=1 timeout 300 python3 .device/anchors.py attn fa2win 2>&1 | grep -E "ANCHOR|section|Error|error" | tail -20
  PYTHONUNBUFFERED=1 timeout 300 python3 bench/gpu/hf_sft_anchor.py --attn sdpa 2>&1 | grep -E "ANCHOR|Error|error" | tail -10
fi
if has bench; then
  rm -f "$OUT/swarr_learner.jsonl"
  timeout 400 /tmp/b/bin/gpu_learner_bench --sections attn,sft,rl --sft-checkpoint ${SFT_CHECKPOINT:-1,14,0} \
    --json "$OUT/swarr_learner.jsonl"
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$OUT/gpu.txt"
  python3 bench/gpu/merge_learner.py "$OUT" | tee "$OUT/table.md"
fi
