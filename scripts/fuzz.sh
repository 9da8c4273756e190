#!/usr/bin/env bash
# libFuzzer runs of every fuzz target (docs/fuzzing.md) under ASan + UBSan, in their own build
# directory with clang (the CI build replays the corpus with the project's compiler instead).
#   scripts/fuzz.sh [RUNS (1000000)] [TARGET...]     (FUZZ_MAX_SECONDS=S also stops each after S s)
# Each target starts from its seeds (FuzzSeeds), fuzz/corpus/<t> and fuzz/regressions/<t>; new
# corpus entries go to build-fuzz/corpus/<t> (copy the interesting ones to fuzz/corpus/<t>), a
# crash to build-fuzz/crash-<t>-* (fix it, then commit the input under fuzz/regressions/<t>/).
# Prints one line per target: executions, seconds, corpus size, result.
set -uo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-1000000}
shift || true
TARGETS=${*:-"safetensors model_config tokenizer yaml_config datasets verifier weights_wire rpc_requests"}
B=${FUZZ_BUILD_DIR:-build-fuzz}
mkdir -p "$B"
command -v clang++ > /dev/null || { echo "fuzz.sh: clang++ is needed (apt-get install clang)"; exit 2; }
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1"
cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_CXX_FLAGS="$SAN -fsanitize=fuzzer-no-link" -DCMAKE_EXE_LINKER_FLAGS="$SAN" \
  -DSWARR_FUZZ=ON -DSWARR_BUILD_TESTS=OFF -DSWARR_BUILD_BENCH=OFF > "$B/cmake.log" 2>&1 \
  || { tail -30 "$B/cmake.log"; exit 1; }
ninja -C "$B" $(for t in $TARGETS; do echo fuzz_$t; done) > "$B/build.log" 2>&1 \
  || { grep -E -A3 "error" "$B/build.log" | head -40; exit 1; }
status=0
printf "%-14s %12s %8s %8s  %s\n" target executions seconds corpus result
for t in $TARGETS; do
  mkdir -p "$B/corpus/$t" "$B/seeds/$t"
  # The seeds: the replay build's --write-seeds if present, else the committed corpus alone.
  if [ -x build/fuzz/fuzz_${t}_replay ]; then build/fuzz/fuzz_${t}_replay --write-seeds "$B/seeds/$t" > /dev/null; fi
  start=$(date +%s.%N)
  log="$B/fuzz_$t.log"
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
    "$B/fuzz/fuzz_$t" -runs="$RUNS" ${FUZZ_MAX_SECONDS:+-max_total_time=$FUZZ_MAX_SECONDS} -print_final_stats=1 -max_len=65536 -rss_limit_mb=2048 -timeout=10 -artifact_prefix="$B/crash-$t-" \
    "$B/corpus/$t" "$B/seeds/$t" $(for d in fuzz/corpus/$t fuzz/regressions/$t; do [ -d "$d" ] && echo "$d"; done) \
    > "$log" 2>&1
  rc=$?
  secs=$(echo "$(date +%s.%N) - $start" | bc)
  execs=$(grep -oE "stat::number_of_executed_units: [0-9]+" "$log" | grep -oE "[0-9]+$" || true)
  [ -z "$execs" ] && execs=$(grep -oE "^#[0-9]+" "$log" | tail -1 | tr -d '#')
  corpus=$(ls "$B/corpus/$t" | wc -l)
  result=ok
  if [ $rc -ne 0 ]; then result="FAILED (rc $rc; see $log)"; status=1; fi
  printf "%-14s %12s %8.0f %8s  %s\n" "$t" "$execs" "$secs" "$corpus" "$result"
done
exit $status
