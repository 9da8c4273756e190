#!/usr/bin/env bash
# `swarr demo --device cuda` on the GPU machine: builds the swarr tool with the CUDA option,
# runs the demo's GPU configuration (configs/demo/demo_cuda.yaml) through the services, and
# copies results.json, report.md, the plots and the service logs to $OUT/demo_cuda/.
# Expects .device/ (debs, env.sh) carried, like bench/gpu/device_run.sh.
set -uo pipefail
START=$(date +%s)
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
source .device/env.sh > "$OUT/env.log" 2>&1
export CPATH=/tmp/deps/usr/include
cmake -S . -B /tmp/b -G Ninja -DCMAKE_BUILD_TYPE=Release -DSWARR_WITH_CUDA=ON -DSWARR_BUILD_TESTS=OFF \
  -DSWARR_BUILD_BENCH=OFF -DCMAKE_PREFIX_PATH="$CMAKE_PREFIX_PATH" > "$OUT/cmake.log" 2>&1 || { tail -30 "$OUT/cmake.log"; exit 1; }
cmake --build /tmp/b -j 16 --target swarr > "$OUT/build.log" 2>&1 || { grep -E "error" "$OUT/build.log" | head -30; exit 1; }
echo "== built in $(( $(date +%s) - START )) s"
nvidia-smi --query-gpu=name --format=csv,noheader
/tmp/b/bin/swarr demo --device cuda --seed "${SEED:-0}" --run-dir /tmp/demo_cuda "$@"
rc=$?
mkdir -p "$OUT/demo_cuda"
cp -r /tmp/demo_cuda/results.json /tmp/demo_cuda/report.md /tmp/demo_cuda/plots /tmp/demo_cuda/summary.json \
  /tmp/demo_cuda/logs /tmp/demo_cuda/stages "$OUT/demo_cuda/" 2>/dev/null
rm -f "$OUT"/demo_cuda/stages/*/trajectories.jsonl
echo "== done in $(( $(date +%s) - START )) s (demo status $rc)"
exit $rc
