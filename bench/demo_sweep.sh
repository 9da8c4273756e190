#!/usr/bin/env bash
# The window-friendly-share sweep (issue 17; docs/results.md "A rarer window-friendly style"):
# `swarr demo` through the services, once per share and seed, with the swa_sft stage's SFT data
# at that window-friendly share (configs/demo/demo.yaml's wf=... -> wf=SHARE; nothing else
# changed), then the table and the plot (bench/demo_sweep_table.py).
#
#   bench/demo_sweep.sh OUT_DIR "SHARES" "SEEDS"     e.g. bench/demo_sweep.sh runs/sweep "0.005 0.01" "0 1 2"
#
# Runs land in OUT_DIR/wf<SHARE>/seed<S> (a run whose results.json exists is kept, not rerun);
# each takes 3-4 minutes on 2 cores. SWARR (default build/bin/swarr) names the binary.
set -uo pipefail
OUT=$1
SHARES=$2
SEEDS=$3
SRC=$(cd "$(dirname "$0")/.." && pwd)
SWARR=${SWARR:-$SRC/build/bin/swarr}
for share in $SHARES; do
  cfg="$OUT/configs-wf$share"
  if [ ! -f "$cfg/demo.yaml" ]; then
    mkdir -p "$cfg"
    cp -r "$SRC"/configs/demo/. "$cfg"/
    # Only the swa_sft stage's data carries a wf= in demo.yaml; the SA model's path, relative
    # to the repository, becomes absolute. Check that nothing else changed.
    sed -i -e "s|lagsum:m=5,n=6-9,wf=[0-9.]*\"|lagsum:m=5,n=6-9,wf=$share\"|" \
      -e "s|path: configs/demo/sa_model|path: $SRC/configs/demo/sa_model|" "$cfg/demo.yaml"
    n=$(diff "$SRC/configs/demo/demo.yaml" "$cfg/demo.yaml" | grep '^>' | grep -vc "wf=$share\"\|path: $SRC/configs")
    [ "$n" = 0 ] && [ "$(grep -c "wf=$share\"" "$cfg/demo.yaml")" = 1 ] \
      || { echo "demo.yaml for wf=$share: expected only the share and the model path to change" >&2; exit 2; }
  fi
  for seed in $SEEDS; do
    run="$OUT/wf$share/seed$seed"
    [ -f "$run/results.json" ] && { echo "== wf=$share seed=$seed: kept ($run)"; continue; }
    rm -rf "$run"
    mkdir -p "$(dirname "$run")"
    t0=$(date +%s)
    (cd "$SRC" && "$SWARR" demo --seed "$seed" --configs "$cfg" --run-dir "$run") > "$OUT/wf$share-seed$seed.log" 2>&1
    echo "== wf=$share seed=$seed: rc $? in $(( $(date +%s) - t0 )) s ($(date -u +%H:%M))"
  done
done
python3 "$SRC/bench/demo_sweep_table.py" "$OUT"
