#!/usr/bin/env bash
# The GPU rollout run (issue: GPU rollout engine), on the GPU machine, from the repository
# root with .device/ carried (debs, env.sh, anchors.py, shared/fixtures/hf; see
# bench/gpu/device_run.sh): builds the CUDA targets it needs, runs the CUDA tests, then in
# ONE run the anchors (HF generate, copy bandwidth, SDPA decode) and SWARR's engine on the
# same saved model, and writes $OUT/gpu_rollout.json (bench/gpu/merge_rollout.py).
#   STAGES="build test anchors bench" (default all)
set -uo pipefail
STAGES=${STAGES:-"build test anchors bench"}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
has() { [[ " $STAGES " == *" $1 "* ]]; }
if has build; then
  rm -rf /tmp/deps
  source .device/env.sh
  cmake -S . -B /tmp/b -G Ninja -DCMAKE_BUILD_TYPE=Release -DSWARR_WITH_CUDA=ON \
    -DSWARR_SHARED_DIR="$PWD/.device/shared" -DCMAKE_PREFIX_PATH="$CMAKE_PREFIX_PATH" > "$OUT/cmake.log" 2>&1 \
    || { tail -40 "$OUT/cmake.log"; exit 1; }
  cmake --build /tmp/b -j 16 --target cuda_test gpu_rollout_bench > "$OUT/build.log" 2>&1 \
    || { grep -E -A3 "error" "$OUT/build.log" | head -60; exit 1; }
  echo "== build ok"
else
  source .device/env.sh > /dev/null
fi
if has test; then
  timeout 300 /tmp/b/common/cuda_test ${CUDA_TEST_FILTER:+--gtest_filter=$CUDA_TEST_FILTER} 2>&1 | tee "$OUT/cuda_test.log" | grep -vE "^\[ (RUN|      OK) " | tail -70
fi
if has anchors; then
  PYTHONUNBUFFERED=1 timeout 420 python3 .device/anchors.py mkmodel copy decode hfgen --dir /tmp/qwen05 2>&1 \
    | grep -E "ANCHOR|section|Error|error" | tail -40
fi
if has bench; then
  rm -f "$OUT/swarr_rollout.jsonl"
  B=/tmp/b/bin/gpu_rollout_bench
  timeout 60 $B --kernel-only 1 --json "$OUT/swarr_rollout.jsonl"
  timeout 200 $B --model /tmp/qwen05 --tag qwen2_0.5b_swa1024 --batches 1,32,128,256 --new 512,2048 \
    --json "$OUT/swarr_rollout.jsonl"
  timeout 60 $B --model /tmp/qwen05 --tag qwen2_0.5b_swa1024 --batches 128 --new 512 --top-k 0 \
    --json "$OUT/swarr_rollout.jsonl"
  timeout 60 $B --model /tmp/qwen05 --tag qwen2_0.5b_swa1024 --batches 128 --new 512 --graphs 0 \
    --json "$OUT/swarr_rollout.jsonl"
  timeout 150 $B --shape qwen2.5-1.5b --tag qwen2.5_1.5b_swa1024 --batches 1,32,128,256 --new 512,2048 \
    --json "$OUT/swarr_rollout.jsonl"
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$OUT/gpu.txt"
  python3 bench/gpu/merge_rollout.py "$OUT" | tee "$OUT/table.md"
fi
