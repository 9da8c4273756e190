#!/usr/bin/env bash
# The one-GPU dress rehearsal of the 1.5B recipe (issue 13; docs/recipes.md "Rehearsal"), on the
# GPU machine from the repository root with .device/ carried: debs and env.sh as for
# bench/gpu/rollout_bench.sh, plus .device/shared/fixtures/tokenizer (the Qwen2 tokenizer):
#   mkdir -p .device/shared/fixtures && cp -r ../shared/fixtures/tokenizer .device/shared/fixtures/
# Builds swarr with CUDA, then bench/gpu/rehearsal.py: eval -> SFT -> RL -> eval at Qwen2.5-1.5B's
# shape (random init) with the learner and two rollout servers on cuda:0, weight handoff timed by
# both paths; writes $OUT/gpu_rehearsal.json. Pass SWARR_COMMIT=<hash of the commit measured>.
#   REHEARSAL_BUDGET: seconds for this whole script (build included; default 590, so that one
#   10-minute device call holds it); the run gets what the build leaves, and still writes its JSON.
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
T0=$(date +%s)
BUDGET=${REHEARSAL_BUDGET:-590}
if [ -z "${SKIP_BUILD:-}" ]; then
  rm -rf /tmp/deps
  source .device/env.sh
  cmake -S . -B /tmp/b -G Ninja -DCMAKE_BUILD_TYPE=Release -DSWARR_WITH_CUDA=ON \
    -DSWARR_SHARED_DIR="$PWD/.device/shared" -DCMAKE_PREFIX_PATH="$CMAKE_PREFIX_PATH" > "$OUT/cmake.log" 2>&1 \
    || { tail -40 "$OUT/cmake.log"; exit 1; }
  cmake --build /tmp/b -j 16 --target swarr weights_ipc_test > "$OUT/build.log" 2>&1 \
    || { grep -E -A3 "error" "$OUT/build.log" | head -60; exit 1; }
  echo "== build ok"
else
  source .device/env.sh > /dev/null
fi
/tmp/b/rollout_server/weights_ipc_test 2>&1 | tail -3
LEFT=$(( BUDGET - ($(date +%s) - T0) ))
echo "== rehearsal: ${LEFT} s left"
timeout $(( LEFT - 5 )) python3 bench/gpu/rehearsal.py --swarr /tmp/b/bin/swarr --shared .device/shared \
  --out "$OUT" --commit "${SWARR_COMMIT:-}" --timeout $(( LEFT - 40 )) ${REHEARSAL_ARGS:-}
RC=$?
# The device tool returns at most 8 files from $OUT: keep the JSON, pack the rest.
tar czf /tmp/rehearsal_logs.tgz -C "$OUT" --exclude=./gpu_rehearsal.json . \
  && find "$OUT" -mindepth 1 -maxdepth 1 -not -name gpu_rehearsal.json -exec rm -rf {} + \
  && mv /tmp/rehearsal_logs.tgz "$OUT/"
exit $RC
