#!/usr/bin/env bash
# Sanitizer builds of the torch-free unit and service tests (docs/reliability.md "Sanitizers").
#   scripts/sanitize.sh asan|tsan
# asan: AddressSanitizer + UndefinedBehaviorSanitizer; tsan: ThreadSanitizer (the coordinator,
# the gRPC edge, the distributed-sync simulation and the utilities are threaded). Each in its own
# build directory (build-asan, build-tsan) with the project's compiler; LibTorch code is left out
# (its prebuilt library is not instrumented: TSan would only report OpenMP's own synchronisation).
# Suppressions (none at present) would go in scripts/tsan.supp with a comment per entry.
set -uo pipefail
cd "$(dirname "$0")/.."
MODE=${1:?asan or tsan}
TESTS="subprocess_test sequence_id_set_test fifo_gate_test safetensors_test config_test sampler_test
  tokenizer_test chat_template_test verifier_test latex_expr_test datasets_test prompt_set_test window_task_test
  config_loader_test placement_test rpc_status_test rpc_service_options_test weights_wire_test
  learner_service_io_test coordinator_test eval_stats_test args_test
  weight_orchestrator_test request_checks_test group_id_test
  dist_bucket_plan_test dist_group_membership_test dist_zero_partition_test dist_zero_step_test
  dist_watchdog_test dist_staging_test dist_broadcast_sim_test dist_proto_test"
# TSan cannot see the synchronisation inside Debian's prebuilt (uninstrumented) Abseil, gRPC and
# protobuf libraries: absl::Mutex locks happen in libabsl_synchronization.so, so every access it
# guards is reported as a race (the tokenizer's BPE cache, the coordinator, the gRPC edge), and
# protobuf's headers change Map's layout under TSan, which then crashes against the library
# (config_loader_test). The TSan run therefore covers the tests whose threads synchronise with
# the standard library's primitives (docs/reliability.md "Sanitizers" has the reports seen).
if [ "$MODE" = tsan ]; then
  TESTS="subprocess_test sequence_id_set_test fifo_gate_test dist_group_membership_test dist_watchdog_test
    dist_staging_test dist_broadcast_sim_test dist_zero_step_test"
fi
# SANITIZE_TESTS="a_test b_test" narrows the list (scripts/test.sh runs a fast ASan subset);
# SANITIZE_BUILD_DIR overrides build-<mode>.
[ -n "${SANITIZE_TESTS:-}" ] && TESTS="$SANITIZE_TESTS"
case "$MODE" in
  asan) FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1"
        export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 ;;
  tsan) FLAGS="-fsanitize=thread -fno-omit-frame-pointer -g -O1"
        export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1${TSAN_SUPP:+ suppressions=$TSAN_SUPP}" ;;
  *) echo "usage: scripts/sanitize.sh asan|tsan [test regex]"; exit 2 ;;
esac
B=${SANITIZE_BUILD_DIR:-build-$MODE}
mkdir -p "$B"
# Only targets that exist in this tree (some test lists differ between branches).
cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS="$FLAGS" \
  -DCMAKE_EXE_LINKER_FLAGS="$FLAGS" -DSWARR_BUILD_BENCH=OFF > "$B/cmake.log" 2>&1 || { tail -30 "$B/cmake.log"; exit 1; }
have=$(ninja -C "$B" -t targets all 2>/dev/null | sed 's/:.*//' | sort -u)
targets=""
for t in $TESTS; do
  if grep -qx "$t" <<< "$have"; then targets="$targets $t"; fi
done
start=$(date +%s)
ninja -C "$B" -j2 $targets > "$B/build.log" 2>&1 || { grep -E -A3 "error" "$B/build.log" | head -40; exit 1; }
echo "== $MODE build of$(wc -w <<< "$targets") test binaries: $(( $(date +%s) - start )) s"
status=0
for t in $targets; do
  bin=$(find "$B" -name "$t" -type f -perm -u+x | head -1)
  t0=$(date +%s)
  if "$bin" --gtest_brief=1 > "$B/$t.log" 2>&1; then
    printf "%-32s ok    %4d s\n" "$t" $(( $(date +%s) - t0 ))
  else
    printf "%-32s FAILED (%s)\n" "$t" "$B/$t.log"; status=1
    grep -E "ERROR: |WARNING: ThreadSanitizer|runtime error|Failure" "$B/$t.log" | head -5
  fi
done
exit $status
