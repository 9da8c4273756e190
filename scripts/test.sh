#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
scripts/build.sh
cd build
# ctest runs one test process per core: give each one LibTorch thread. (OpenMP threads that
# outnumber the cores spin against each other and can make a test 50x slower.)
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
ctest -j "$(nproc)" --output-on-failure --timeout 900

# Sanitizers, the fast subset (docs/reliability.md "Sanitizers"; the whole lists are
# scripts/sanitize.sh asan|tsan): ASan+UBSan over the config loader, placement, verifier, data
# sets and the small utilities, TSan over the threaded pieces that synchronise with std::
# primitives. About 2 minutes each from nothing on 2 cores. SWARR_SKIP_SANITIZE=1 skips them.
if [ "${SWARR_SKIP_SANITIZE:-0}" != 1 ]; then
  SANITIZE_TESTS="config_loader_test placement_test fifo_gate_test line_stderr_test verifier_test datasets_test
    sequence_id_set_test" ../scripts/sanitize.sh asan
  ../scripts/sanitize.sh tsan
fi

# The deploy test (docs/deploy.md): the images, docker-compose with 3 rollouts and the Kubernetes
# manifests really run under podman, about 5 minutes here (8 with podman's first set-up).
# It sets podman up itself and exits 77 where it cannot (not root, no apt): skipped then.
# SWARR_SKIP_DEPLOY_TEST=1 skips it.
cd ..
if [ "${SWARR_SKIP_DEPLOY_TEST:-0}" != 1 ]; then
  deploy_rc=0
  scripts/deploy_test.sh || deploy_rc=$?
  if [ "$deploy_rc" -eq 77 ]; then echo "deploy test skipped: podman cannot run on this machine"
  elif [ "$deploy_rc" -ne 0 ]; then exit "$deploy_rc"; fi
fi
