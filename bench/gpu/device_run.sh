#!/usr/bin/env bash
# One full GPU-machine run (docs/gpu.md, "Building on the GPU machine"): build with the CUDA option
# against the machine's LibTorch 2.11, run every test (cuda_test included), cross-check
# written checkpoints with HF transformers, and time generation on the GPU.
# Expects .device/ (debs, env.sh, shared/fixtures/hf) carried; writes logs to $OUT.
set -uo pipefail
rm -rf /tmp/deps  # a warm machine may hold an older unpacking of .device/debs
source .device/env.sh
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
SHARED=$PWD/.device/shared
# env.sh joins CMAKE_PREFIX_PATH with ";", which CMake reads only as a cache variable.
cmake -S . -B /tmp/b -G Ninja -DCMAKE_BUILD_TYPE=Release -DSWARR_WITH_CUDA=ON -DSWARR_SHARED_DIR="$SHARED" \
  -DCMAKE_PREFIX_PATH="$CMAKE_PREFIX_PATH" \
  > "$OUT/cmake.log" 2>&1 || { tail -50 "$OUT/cmake.log"; exit 1; }
cmake --build /tmp/b -j 16 > "$OUT/build.log" 2>&1 || { grep -E "error|Error" "$OUT/build.log" | head -40; exit 1; }
echo "== build ok"
if [ -z "${SKIP_CTEST:-}" ]; then
  # Eight test processes at a time: give each two threads, or OpenMP oversubscribes 16 cores.
  (cd /tmp/b && OMP_NUM_THREADS=2 ctest -j 8 --output-on-failure --timeout 600 > "$OUT/ctest.log" 2>&1)
  echo "ctest rc=$?"
  tail -5 "$OUT/ctest.log"
fi
/tmp/b/common/cuda_test 2>&1 | tee "$OUT/cuda_test.log" | grep -vE "^\[ (RUN|      OK) " | tail -60
python3 tests/hf_crosscheck.py /tmp/b/bin/swarr "$SHARED/fixtures/hf" 2>&1 | tee "$OUT/hf_crosscheck.log" | tail -20
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
[ -n "${SKIP_BENCH:-}" ] || timeout 240 /tmp/b/bin/generation_bench --device cuda --dtype bfloat16 --max-len 4096 2>&1 | tee "$OUT/generation_bench_cuda.md"
# The toy SFT and RL stages on the GPU: bf16 compute with float32 master weights.
if [ -z "${SKIP_TRAIN:-}" ]; then
  rm -rf /tmp/runs
  /tmp/b/bin/swarr train --config bench/gpu/sft_toy_cuda.yaml --run-dir /tmp/runs/sft_toy_cuda 2>&1 | tail -2
  /tmp/b/bin/swarr train --config bench/gpu/rl_toy_cuda.yaml --run-dir /tmp/runs/rl_toy_cuda 2>&1 | tail -2
  cp /tmp/runs/sft_toy_cuda/metrics.jsonl "$OUT/sft_toy_cuda_metrics.jsonl"
  cp /tmp/runs/rl_toy_cuda/metrics.jsonl "$OUT/rl_toy_cuda_metrics.jsonl"
  python3 - <<'PY'
import json
for name in ["sft_toy_cuda", "rl_toy_cuda"]:
    rows = [json.loads(l) for l in open(f"/tmp/runs/{name}/metrics.jsonl")]
    key = "loss" if name.startswith("sft") else "reward_mean"
    print(name, "steps", len(rows), key, "first %.4f" % rows[0][key], "last %.4f" % rows[-1][key],
          "seconds %.1f" % rows[-1]["seconds"])
PY
fi
