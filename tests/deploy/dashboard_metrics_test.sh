#!/usr/bin/env bash
# Every metric the Grafana dashboard (deploy/grafana/dashboards/*.json) and the alert rules
# (deploy/prometheus/alerts.yml) name is a family the services export, and every exported family
# is on the dashboard or listed below as deliberately left off. The exported families are read
# from the services themselves: a learner, a coordinator and a rollout server started on loopback
# (the toy pipeline; nothing runs a stage), each scraped once at /metrics.
#   tests/deploy/dashboard_metrics_test.sh [SWARR_BINARY]      (ctest: deploy_dashboard_metrics_test)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-build/bin/swarr}
[ -x "$BIN" ] || { echo "no $BIN: build the swarr target first"; exit 1; }
# Exported but not on the dashboard, with the reason (they are in /metrics for ad-hoc queries).
NOT_ON_DASHBOARD="
swarr_rollout_weight_version   the per-worker weight versions panel shows the coordinator's view of the same
"
W=$(mktemp -d /tmp/swarr-dashtest.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT
wait_file() { for _ in $(seq 100); do [ -s "$1" ] && return 0; sleep 0.1; done; echo "timeout waiting for $1"; cat "$W"/*.log; exit 1; }
"$BIN" learner --insecure --run-dir "$W/run" --listen 127.0.0.1:0 --port-file "$W/l.port" \
  --metrics-listen 127.0.0.1:0 --metrics-port-file "$W/l.mport" > "$W/learner.log" 2>&1 & PIDS+=($!)
wait_file "$W/l.port"; wait_file "$W/l.mport"
"$BIN" coordinator --insecure --config configs/examples/pipeline_toy.yaml --run-dir "$W/run" --learner "127.0.0.1:$(cat "$W/l.port")" \
  --listen 127.0.0.1:0 --port-file "$W/c.port" --metrics-listen 127.0.0.1:0 --metrics-port-file "$W/c.mport" \
  > "$W/coordinator.log" 2>&1 & PIDS+=($!)
wait_file "$W/c.port"; wait_file "$W/c.mport"
"$BIN" rollout --insecure --coordinator "127.0.0.1:$(cat "$W/c.port")" --listen 127.0.0.1:0 --port-file "$W/r.port" \
  --metrics-listen 127.0.0.1:0 --metrics-port-file "$W/r.mport" > "$W/rollout.log" 2>&1 & PIDS+=($!)
wait_file "$W/r.mport"
for s in l c r; do
  curl -sf --max-time 5 "http://127.0.0.1:$(cat "$W/$s.mport")/metrics" > "$W/$s.metrics" || { echo "scrape $s failed"; exit 1; }
done
# Families (# TYPE lines) and the series names they produce (histograms: _bucket, _sum, _count).
awk '$1 == "#" && $2 == "TYPE" && $3 ~ /^swarr_/ {print $3, $4}' "$W"/*.metrics | sort -u > "$W/families"
awk '{print $1; if ($2 == "histogram" || $2 == "summary") {print $1 "_bucket"; print $1 "_sum"; print $1 "_count"}}' \
  "$W/families" | sort -u > "$W/series_names"
echo "exported: $(wc -l < "$W/families") swarr_* families (learner, coordinator, rollout)"
# A labelled family has no series (and no # TYPE line) before its first sample, e.g.
# swarr_coordinator_eval_accuracy{stage} until an eval stage ends: those are taken from the
# sources' registrations (.Name("swarr_...") in the services' non-test C++).
grep -rhoE --include=*.cc --include=*.h --exclude='*_test.cc' 'Name\("swarr_[a-z0-9_]+"\)' common learner rollout_server coordinator tools \
  | sed -E 's/Name\("(.*)"\)/\1/' | sort -u > "$W/source_families"

fail=0
dash_exprs=$(jq -r '.. | .expr? // empty' "${SWARR_DASHBOARD_DIR:-deploy/grafana/dashboards}"/*.json)
[ -n "$dash_exprs" ] || { echo "FAIL: no expressions in the dashboard"; exit 1; }
alert_exprs=$(/usr/bin/python3 -c 'import sys, yaml; [print(r["expr"]) for g in yaml.safe_load(open(sys.argv[1]))["groups"] for r in g["rules"]]' deploy/prometheus/alerts.yml)
check_names() {  # check_names WHAT EXPRS
  local n
  for n in $(grep -o 'swarr_[a-z0-9_]*' <<< "$2" | sort -u); do
    grep -qx "$n" "$W/series_names" && continue
    if grep -qx "$(sed -E 's/_(bucket|sum|count)$//' <<< "$n")" "$W/source_families"; then
      echo "note: $1 names $n: registered in the sources, no series before its first sample"; continue
    fi
    echo "FAIL: $1 names $n, which no service exports"; fail=1
  done
}
check_names "the dashboard" "$dash_exprs"
check_names "alerts.yml" "$alert_exprs"
on_dash=$(grep -o 'swarr_[a-z0-9_]*' <<< "$dash_exprs" | sed -E 's/_(bucket|sum|count)$//' | sort -u)
while read -r fam _; do
  grep -qx "$fam" <<< "$on_dash" && continue
  grep -q "^$fam " <<< "$NOT_ON_DASHBOARD" && continue
  # the learner's per-key rl step gauges (swarr_learner_rl_*) mirror metrics.jsonl: one panel
  # shows them all by name regex, or none are expected
  if [[ $fam == swarr_learner_rl_* ]] && grep -q 'swarr_learner_rl_' <<< "$dash_exprs"; then continue; fi
  if [[ $fam == swarr_learner_rl_* ]]; then echo "note: $fam (rl step gauge) not on the dashboard"; continue; fi
  echo "FAIL: $fam is exported but neither on the dashboard nor in NOT_ON_DASHBOARD"; fail=1
done < "$W/families"
[ $fail = 0 ] && echo "PASS: $(grep -o 'swarr_[a-z0-9_]*' <<< "$dash_exprs" | sort -u | wc -l) dashboard and $(grep -o 'swarr_[a-z0-9_]*' <<< "$alert_exprs" | sort -u | wc -l) alert metric names are exported"
exit $fail
