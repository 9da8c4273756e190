#!/usr/bin/env bash
# The deploy test: SWARR's containers really run, with podman (../shared/docs/CONTAINERS.md).
#   scripts/deploy_test.sh                 set up podman if needed, then every phase below
#   SWARR_DEPLOY_PHASES="compose" scripts/deploy_test.sh     one phase (image, compose, kube)
# Phases (docs/deploy.md "What was run here"):
#   image    the slim image swarr:0.1.0 from the already-built build/bin/swarr (deploy/Dockerfile.ci;
#            SWARR_BIN= another binary) and a Prometheus image from Debian's package
#            (tests/deploy/Dockerfile.prometheus), both on the local base localhost/debian:bookworm
#   compose  deploy/docker-compose.yml (+ tests/deploy/compose.test.yml: the local Prometheus, no
#            Grafana) through podman's Docker API with docker-compose: `up --scale rollout=3`,
#            configs/examples/pipeline_toy.yaml to the end; checks that Prometheus scrapes the
#            coordinator, the learner and all 3 rollouts and loaded the alert rules, that all 3
#            rollouts pushed trajectories, that killing one rollout container (SIGKILL, while it
#            is generating, in the rl stage) loses nothing (summary.json: every rl trajectory
#            trained once, none twice, its groups re-assigned), that a replica added during the
#            run (--scale rollout=4) registers and generates, then `down -v` leaves nothing;
#            security: every service runs with per-role tokens and mutual TLS from
#            deploy/gen-certs.sh, and from inside a container an operator's token over mTLS reads
#            the status, a rollout's token is PERMISSION_DENIED, no client certificate or
#            plaintext gets nothing
#   kube     deploy/k8s/overlays/cpu rendered by `kubectl kustomize`, turned into what `podman kube play` runs
#            (tests/deploy/kube_testcopy.py: Job/StatefulSet -> Pods named as the Services, no
#            host ports; the Secrets swarr-tokens and swarr-tls from deploy/gen-certs.sh), 3 rollout
#            pods, the pipeline to the end (summary.json) over tokens and mTLS, then torn down
# Exit 0: passed; 1: failed (logs kept in the printed folder); 77: cannot run here (not root, no
# apt/podman) - skipped. Everything it starts (containers, pods, volumes, networks, the podman API
# service) is removed on exit, also on failure or Ctrl-C. About 6-7 minutes on 2 cores once podman
# is set up (docs/deploy.md has the measured times).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
T0=$(date +%s)
PHASES=${SWARR_DEPLOY_PHASES:-"image compose kube"}
BIN=${SWARR_BIN:-$ROOT/build/bin/swarr}
BASE=${SWARR_BASE_IMAGE:-localhost/debian:bookworm}
IMAGE=swarr:0.1.0                   # the tag deploy/docker-compose.yml and deploy/k8s use
PROM_IMAGE=localhost/swarr-test-prometheus:latest
PROJECT=swarrdeploytest             # compose project: containers, the runs volume, the network
KNET=swarr-deploytest-kube          # podman network of the kube phase
CONFIG=configs/examples/pipeline_toy.yaml
ROLLOUTS=3
PY=/usr/bin/python3                 # Debian's, with python3-yaml
W=$(mktemp -d /tmp/swarr-deploytest.XXXXXX)
mkdir -p "$W/logs"

log() { echo "[deploy_test $(date -u +%T) +$(( $(date +%s) - T0 ))s] $*"; }
FAILED=0
fail() { log "FAIL: $*"; FAILED=1; exit 1; }
has_phase() { [[ " $PHASES " == *" $1 "* ]]; }

# ---------------------------------------------------------------------------------------------
# Clean-up of everything this script started, whatever happened.
SERVICE_PID=""
COMPOSE_UP=0
KUBE_UP=0
KUBE_VOLUMES=""
compose() {
  DOCKER_HOST=unix://$W/podman.sock docker-compose -f deploy/docker-compose.yml -f tests/deploy/compose.test.yml \
    -p "$PROJECT" "$@"
}
save_logs() {  # container logs into $W/logs (before they are removed)
  local c
  for c in $(podman ps -a --format '{{.Names}}' 2>/dev/null | grep -E "^${PROJECT}_|^swarr-(coordinator|learner|rollout)" || true); do
    podman logs "$c" > "$W/logs/$c.log" 2>&1 || true
  done
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ $rc -ne 0 ] && [ $rc -ne 77 ] && FAILED=1
  [ "$FAILED" = 1 ] && save_logs
  if [ "$COMPOSE_UP" = 1 ]; then
    compose down -v --remove-orphans -t 10 >> "$W/logs/compose-down.log" 2>&1 || true
  fi
  # Whatever compose left (it failed, or the API service died): by the project label.
  local ids
  ids=$(podman ps -aq --filter "label=com.docker.compose.project=$PROJECT" 2>/dev/null || true)
  [ -n "$ids" ] && podman rm -f -t 5 $ids > /dev/null 2>&1 || true
  podman volume rm -f "${PROJECT}_runs" > /dev/null 2>&1 || true
  podman network rm -f "${PROJECT}_default" > /dev/null 2>&1 || true
  if [ "$KUBE_UP" = 1 ]; then
    podman kube down "$W/play.yaml" >> "$W/logs/kube-down.log" 2>&1 || true
    local p
    for p in $(podman pod ps --format '{{.Name}}' --filter "network=$KNET" 2>/dev/null || true); do
      podman pod rm -f "$p" > /dev/null 2>&1 || true
    done
    for p in $KUBE_VOLUMES; do podman volume rm -f "$p" > /dev/null 2>&1 || true; done
    podman secret rm swarr-tokens swarr-tls > /dev/null 2>&1 || true
    podman network rm -f "$KNET" > /dev/null 2>&1 || true
  fi
  [ -n "$SERVICE_PID" ] && { kill "$SERVICE_PID" 2>/dev/null || true; wait "$SERVICE_PID" 2>/dev/null || true; }
  if [ "$FAILED" = 1 ]; then
    log "FAILED after $(( $(date +%s) - T0 )) s; logs kept in $W/logs"
    local f
    for f in "$W/logs/${PROJECT}_coordinator_1.log" "$W/logs/swarr-coordinator-coordinator.log"; do [ -f "$f" ] && { echo "--- $f (tail)"; tail -15 "$f"; }; done
    exit 1
  fi
  rm -rf "$W"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
# Set-up: podman, its configuration, the local base image (idempotent; skip when impossible).
set +e
tests/deploy/podman_setup.sh
rc=$?
set -e
if [ $rc = 2 ]; then log "SKIP: podman cannot be set up on this machine"; exit 77; fi
[ $rc = 0 ] || fail "podman set-up failed"
for tool in docker-compose jq curl; do command -v $tool > /dev/null || fail "$tool missing"; done
$PY -c 'import yaml' || fail "$PY lacks yaml (apt-get install python3-yaml)"
# Per-role tokens and TLS certificates for both deployments (what a user makes with the same script).
deploy/gen-certs.sh "$W/secrets" > "$W/logs/gen-certs.log" 2>&1 || { cat "$W/logs/gen-certs.log"; fail "deploy/gen-certs.sh"; }
export SWARR_SECRETS=$W/secrets
log "set-up done"

# What the toy pipeline's rl stage must train: every prompt's every sample, every step.
SAMPLES=$($PY -c 'import sys, yaml; print([s for s in yaml.safe_load(open(sys.argv[1]))["stages"] if "rl" in s][0]["rl"]["samples_per_prompt"])' "$CONFIG")
EXPECT_TRAINED=$($PY - "$CONFIG" <<'EOF'
import sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
rl = [s for s in c["stages"] if "rl" in s]
print(sum(s["rl"]["prompts_per_step"] * s["rl"]["samples_per_prompt"] * s["stop"]["max_steps"] for s in rl))
EOF
)

# ---------------------------------------------------------------------------------------------
if has_phase image; then
  [ -x "$BIN" ] || fail "$BIN missing: build it first (scripts/build.sh)"
  t=$(date +%s)
  old_ids="$(podman image inspect -f '{{.Id}}' "$IMAGE" "$PROM_IMAGE" 2>/dev/null || true)"
  STAGE=$W/stage
  mkdir -p "$STAGE/bin"
  cp "$BIN" "$STAGE/bin/swarr"
  cp -r configs data "$STAGE/"
  podman build --network host --build-arg BASE="$BASE" -f deploy/Dockerfile.ci -t "$IMAGE" "$STAGE" \
    > "$W/logs/build-swarr.log" 2>&1 || { tail -20 "$W/logs/build-swarr.log"; fail "podman build deploy/Dockerfile.ci"; }
  rm -rf "$STAGE"
  podman build --network host --build-arg BASE="$BASE" -f tests/deploy/Dockerfile.prometheus -t "$PROM_IMAGE" \
    tests/deploy > "$W/logs/build-prometheus.log" 2>&1 || { tail -20 "$W/logs/build-prometheus.log"; fail "prometheus image"; }
  # The image runs: the entrypoint is the binary, configs and data are in its working directory.
  podman run --rm "$IMAGE" --help > /dev/null || fail "swarr --help in the image"
  podman run --rm --entrypoint /bin/sh "$IMAGE" -c "test -f $CONFIG && test -f data/gsm8k/test.jsonl" \
    || fail "configs/ or data/ missing in the image"
  # The images these replaced (a rebuilt binary): removed once nothing uses them.
  for id in $old_ids; do
    podman image inspect -f '{{.RepoTags}}' "$id" 2>/dev/null | grep -q '^\[\]$' && podman rmi "$id" > /dev/null 2>&1 || true
  done
  log "images built in $(( $(date +%s) - t )) s: $IMAGE ($(podman image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.2f GB", $1/1e9}'))"
fi
podman image exists "$IMAGE" || fail "no image $IMAGE (run the image phase)"

# Podman's Docker API for docker-compose.
if has_phase compose; then
  podman system service --time=0 "unix://$W/podman.sock" > "$W/logs/podman-service.log" 2>&1 &
  SERVICE_PID=$!
  for _ in $(seq 50); do [ -S "$W/podman.sock" ] && break; sleep 0.2; done
  [ -S "$W/podman.sock" ] || fail "podman system service did not start"
fi

prom() {  # prom QUERY -> the API's JSON
  curl -sf --max-time 5 http://127.0.0.1:9090/api/v1/query --data-urlencode "query=$1"
}
state_of() { podman inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$1" 2>/dev/null || echo "gone -1"; }
summary_ok() {  # summary_ok FILE WHAT: the pipeline's end as summary.json records it
  local s=$1
  [ -f "$s" ] || fail "$2: no summary.json"
  cp "$s" "$W/logs/$2-summary.json"
  jq -e 'has("error") | not' "$s" > /dev/null || fail "$2: pipeline failed: $(jq -r .error "$s")"
  jq -e '[.stages[].state] | all(. == "done")' "$s" > /dev/null || fail "$2: not every stage done: $(jq -c '[.stages[] | [.name, .state]]' "$s")"
  local trained twice
  trained=$(jq .trajectories_trained "$s"); twice=$(jq .trajectory_ids_trained_twice "$s")
  [ "$trained" = "$EXPECT_TRAINED" ] || fail "$2: $trained trajectories trained, expected $EXPECT_TRAINED"
  [ "$twice" = 0 ] || fail "$2: $twice trajectory ids trained twice"
  log "$2: summary.json: $(jq -c '{trajectories_trained, trajectory_ids_trained_twice, trajectories_duplicate, groups_dispatched, groups_reassigned, wall_seconds: (.wall_seconds | floor), eval: [.stages[] | select(.kind == "eval") | .metrics.accuracy]}' "$s")"
}

# ---------------------------------------------------------------------------------------------
if has_phase compose; then
  t=$(date +%s)
  # Prometheus is published on 127.0.0.1:9090 (deploy/docker-compose.yml): it must be free.
  if curl -s --max-time 2 -o /dev/null http://127.0.0.1:9090/; then fail "127.0.0.1:9090 is taken: compose's Prometheus needs it"; fi
  ! podman ps -aq --filter "label=com.docker.compose.project=$PROJECT" | grep -q . || fail "project $PROJECT exists already"
  export GRAFANA_ADMIN_PASSWORD=deploy-test-unused   # required by the compose file; Grafana is not started
  export SWARR_CONFIG=$CONFIG SWARR_RUN=pipeline
  COMPOSE_UP=1
  compose up -d --scale rollout=$ROLLOUTS learner coordinator rollout prometheus > "$W/logs/compose-up.log" 2>&1 \
    || { cat "$W/logs/compose-up.log"; fail "docker-compose up"; }
  COORD=${PROJECT}_coordinator_1
  log "compose: up with $ROLLOUTS rollouts"

  # Prometheus scrapes every service: coordinator, learner and each rollout replica (DNS discovery).
  want=$(( 2 + ROLLOUTS )); up=0
  for _ in $(seq 120); do
    up=$(curl -sf --max-time 5 http://127.0.0.1:9090/api/v1/targets \
      | jq '[.data.activeTargets[] | select(.health == "up")] | length' 2>/dev/null || echo 0)
    [ "$up" -ge "$want" ] && break
    read -r st _ <<< "$(state_of "$COORD")"; [ "$st" = running ] || fail "compose: coordinator $st before the targets were up"
    sleep 1
  done
  curl -sf http://127.0.0.1:9090/api/v1/targets | jq -c '[.data.activeTargets[] | [.labels.service, .labels.instance, .health]]' \
    > "$W/logs/compose-targets.json" || true
  [ "$up" -ge "$want" ] || fail "compose: Prometheus scrapes $up targets up, expected $want: $(cat "$W/logs/compose-targets.json")"
  for svc in swarr-coordinator swarr-learner swarr-rollout; do
    n=$(prom "up{service=\"$svc\"} == 1" | jq '.data.result | length')
    [ "$n" -ge 1 ] || fail "compose: no $svc target up"
  done
  [ "$(prom 'count(up{service="swarr-rollout"} == 1)' | jq -r '.data.result[0].value[1]')" = "$ROLLOUTS" ] \
    || fail "compose: not all $ROLLOUTS rollouts scraped"
  curl -sf http://127.0.0.1:9090/api/v1/rules | jq -e '[.data.groups[].rules[].name] | index("SwarrServiceDown")' > /dev/null \
    || fail "compose: Prometheus did not load deploy/prometheus/alerts.yml"
  # Secure by default: calls over mutual TLS with a role's token, from inside a rollout container
  # (its mounts: the CA, the certificate and key, its own and its callers' tokens).
  tls="--tls-ca /etc/swarr/tls/ca.pem --tls-cert /etc/swarr/tls/server.pem --tls-key /etc/swarr/tls/server.key"
  C1=${PROJECT}_rollout_1
  podman exec "$C1" swarr status --coordinator coordinator:50051 --token-dir /etc/swarr/tokens $tls \
    > "$W/logs/compose-status.txt" 2>&1 || { cat "$W/logs/compose-status.txt"; fail "compose: an operator's status over mTLS failed"; }
  out=$(podman exec "$C1" swarr status --coordinator coordinator:50051 --token-file /etc/swarr/tokens/rollout.token $tls 2>&1) \
    && fail "compose: a rollout's token read the coordinator's status"
  grep -q "PERMISSION_DENIED: role rollout may not call Coordinator.GetStatus" <<< "$out" \
    || fail "compose: a rollout's token calling Coordinator.GetStatus: $out"
  out=$(podman exec "$C1" swarr status --coordinator coordinator:50051 --token-dir /etc/swarr/tokens \
          --tls-ca /etc/swarr/tls/ca.pem 2>&1) && fail "compose: a call without a client certificate was answered"
  out=$(podman exec "$C1" swarr status --coordinator coordinator:50051 --token-dir /etc/swarr/tokens 2>&1) \
    && fail "compose: a plaintext call was answered"
  log "compose: security: operator over mTLS answered; rollout token PERMISSION_DENIED; no client cert / plaintext refused"
  log "compose: Prometheus scrapes all $want targets ($(jq -r 'map(.[0]) | group_by(.) | map("\(.[0]) x\(length)") | join(", ")' "$W/logs/compose-targets.json")), alert rules loaded"

  # Mid-rl, SIGKILL one rollout container while it holds sequences.
  VICTIM=${PROJECT}_rollout_2
  for _ in $(seq 600); do
    podman logs "$COORD" 2>&1 | grep -q "stage 1 'rl' (rl)" && break
    read -r st _ <<< "$(state_of "$COORD")"; [ "$st" = running ] || fail "compose: coordinator $st before the rl stage"
    sleep 0.5
  done
  podman logs "$COORD" 2>&1 | grep -q "stage 1 'rl' (rl)" || fail "compose: the rl stage did not start in 300 s"
  ip=$(podman inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$VICTIM")
  # It must have pushed trajectories already (all 3 rollouts contribute) and be generating now.
  busy=0; pushed=0
  for _ in $(seq 600); do
    m=$(curl -sf --max-time 2 "http://$ip:9103/metrics" || true)
    a=$(awk '$1 == "swarr_rollout_active_sequences" {print int($2)}' <<< "$m")
    pushed=$(awk '$1 == "swarr_rollout_trajectories_pushed_total" {print int($2)}' <<< "$m")
    # at least 2 groups' worth generating: some group is surely unfinished when it dies
    if [ "${pushed:-0}" -gt 0 ] && [ "${a:-0}" -ge $(( 2 * SAMPLES )) ]; then busy=$a; break; fi
    sleep 0.1
  done
  [ "$busy" -gt 0 ] || fail "compose: $VICTIM never generated after its first push in the rl stage"
  podman kill --signal KILL "$VICTIM" > /dev/null
  log "compose: killed $VICTIM (SIGKILL) in the rl stage with $busy active sequences, after pushing $pushed trajectories"
  ORIGINAL=$(podman ps --format '{{.Names}}' --filter "label=com.docker.compose.project=$PROJECT" \
               --filter "label=com.docker.compose.service=rollout" | sort)
  # Each replica's address while it runs: the rollout servers exit when the pipeline ends (the
  # coordinator tells them), so their counters are read back from Prometheus by instance then.
  declare -A IP
  ip_of() { podman inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$1"; }
  for c in $ORIGINAL; do IP[$c]=$(ip_of "$c"); done
  # Scaling up during the run: once the coordinator has declared the victim dead, one more replica.
  for _ in $(seq 100); do podman logs "$COORD" 2>&1 | grep -q "is dead" && break; sleep 0.2; done
  compose up -d --no-recreate --scale rollout=$(( ROLLOUTS + 1 )) rollout > "$W/logs/compose-scale.log" 2>&1 \
    || { cat "$W/logs/compose-scale.log"; fail "docker-compose up --scale rollout=$(( ROLLOUTS + 1 )) during the run"; }
  ADDED=$(podman ps --format '{{.Names}}' --filter "label=com.docker.compose.project=$PROJECT" \
            --filter "label=com.docker.compose.service=rollout" | sort | comm -13 <(echo "$ORIGINAL") -)
  [ -n "$ADDED" ] || fail "compose: scaling to $(( ROLLOUTS + 1 )) during the run started no container"
  for _ in $(seq 50); do
    missing=0
    for c in $ADDED; do IP[$c]=$(ip_of "$c"); [ -n "${IP[$c]}" ] || missing=1; done
    [ $missing = 0 ] && break
    sleep 0.2
  done
  log "compose: scaled to $(( ROLLOUTS + 1 )) rollouts during the rl stage: started $(echo $ADDED) (the killed one again and a new one)"

  for _ in $(seq 600); do
    read -r st code <<< "$(state_of "$COORD")"
    [ "$st" = exited ] && break
    sleep 1
  done
  [ "$st" = exited ] || fail "compose: the coordinator did not finish in 600 s"
  [ "$code" = 0 ] || fail "compose: the coordinator exited $code"
  podman logs "$COORD" > "$W/logs/compose-coordinator.log" 2>&1
  grep -q "is dead" "$W/logs/compose-coordinator.log" || fail "compose: the coordinator never declared the killed rollout dead"
  grep "is dead" "$W/logs/compose-coordinator.log" | sed 's/^/    /'
  summary_ok "$(podman volume inspect "${PROJECT}_runs" -f '{{.Mountpoint}}')/pipeline/summary.json" compose
  s=$W/logs/compose-summary.json
  [ "$(jq .groups_reassigned "$s")" -ge 1 ] || fail "compose: the killed rollout's groups were not re-assigned"
  # Every rollout pushed trajectories: each replica's own counter (its /metrics; the killed one's
  # as read just before the kill).
  per="${VICTIM##*_}:$pushed"
  last() {  # last METRIC CONTAINER: the largest value Prometheus scraped from that replica
    prom "max_over_time($1{instance=\"${IP[$2]}:9103\"}[30m])" | jq -r '.data.result[0].value[1] // "0"' | cut -d. -f1
  }
  for c in $ORIGINAL; do
    n=$(last swarr_rollout_trajectories_pushed_total "$c")
    per="$per ${c##*_}:${n:-0}"
  done
  echo "$per" > "$W/logs/compose-pushed.txt"
  n=$(tr ' ' '\n' <<< "$per" | awk -F: '$2 > 0' | wc -l)
  [ "$n" = "$ROLLOUTS" ] || fail "compose: $n of $ROLLOUTS rollouts pushed trajectories (replica:pushed): $per"
  log "compose: trajectories pushed per rollout replica (replica:pushed): $per"
  # The replicas started by the scale-up registered and generated (rl or eval groups). docker-compose
  # 1.29 starts the killed container again and adds one: both count.
  nreg=$(grep -c "registered:" "$W/logs/compose-coordinator.log" || true)
  nadded=$(wc -w <<< "$ADDED")
  [ "$nreg" -ge $(( ROLLOUTS + nadded )) ] || fail "compose: $nreg registrations, expected $ROLLOUTS + $nadded added"
  for c in $ADDED; do
    tok=$(last swarr_rollout_tokens_generated_total "$c")
    [ "${tok:-0}" -gt 0 ] || fail "compose: $c, started during the run, generated no token"
    log "compose: $c (started during the run) registered and generated $tok tokens"
  done

  compose down -v -t 30 > "$W/logs/compose-down.log" 2>&1 || fail "docker-compose down -v"
  COMPOSE_UP=0
  left=$(podman ps -aq --filter "label=com.docker.compose.project=$PROJECT"; podman volume ls -q | grep "^${PROJECT}_" || true;
         podman network ls -q | grep "^${PROJECT}_" || true)
  [ -z "$left" ] || fail "compose: down -v left: $left"
  log "compose: PASSED in $(( $(date +%s) - t )) s (down -v left no container, volume or network)"
  kill "$SERVICE_PID"; wait "$SERVICE_PID" 2>/dev/null || true; SERVICE_PID=""
fi

# ---------------------------------------------------------------------------------------------
if has_phase kube && ! command -v kubectl > /dev/null; then
  # kubectl (kustomize) is not a Debian package: where it is missing the manifests cannot be rendered.
  log "kube: SKIPPED - kubectl missing (it renders deploy/k8s/overlays/cpu with kustomize)"
  PHASES=${PHASES/kube/kube(skipped)}
fi
if has_phase kube; then
  t=$(date +%s)
  kubectl kustomize deploy/k8s/overlays/cpu > "$W/rendered.yaml"
  SWARR_ROLLOUT_REPLICAS=$ROLLOUTS $PY tests/deploy/kube_testcopy.py "$W/rendered.yaml" "$W/play.yaml" 2> "$W/logs/kube-testcopy.log" \
    || { cat "$W/logs/kube-testcopy.log"; fail "kube: test copy"; }
  cp "$W/play.yaml" "$W/logs/play.yaml"
  # Volumes podman makes for the PVCs, ConfigMaps and the Secret: they must not exist yet.
  KUBE_VOLUMES=$($PY -c 'import sys, yaml; print(" ".join(d["metadata"]["name"] for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] in ("PersistentVolumeClaim", "ConfigMap", "Secret")))' "$W/play.yaml")
  for v in $KUBE_VOLUMES; do ! podman volume exists "$v" || fail "kube: volume $v exists already (an earlier run?)"; done
  for sct in swarr-tokens swarr-tls; do
    ! podman secret inspect $sct > /dev/null 2>&1 || fail "kube: podman secret $sct exists already"
  done
  ! podman network exists "$KNET" || fail "kube: network $KNET exists already"
  KUBE_UP=1
  podman network create "$KNET" > /dev/null
  podman kube play --network "$KNET" "$W/play.yaml" > "$W/logs/kube-play.log" 2>&1 || { cat "$W/logs/kube-play.log"; fail "kube: podman kube play"; }
  log "kube: playing $(podman pod ps --filter "network=$KNET" --format '{{.Name}}' | sort | tr '\n' ' ')"
  COORD=swarr-coordinator-coordinator
  for _ in $(seq 600); do
    read -r st code <<< "$(state_of "$COORD")"
    [ "$st" = exited ] && break
    sleep 1
  done
  [ "$st" = exited ] || fail "kube: the coordinator did not finish in 600 s"
  [ "$code" = 0 ] || fail "kube: the coordinator exited $code"
  podman logs "$COORD" > "$W/logs/kube-coordinator.log" 2>&1
  n=$(grep -c "registered:" "$W/logs/kube-coordinator.log" || true)
  [ "$n" -ge "$ROLLOUTS" ] || fail "kube: $n rollout pods registered, expected $ROLLOUTS"
  summary_ok "$(podman volume inspect swarr-coordinator-runs -f '{{.Mountpoint}}')/pipeline/summary.json" kube
  # Each pod got only its own and its callers' tokens: a rollout pod holds no coordinator token.
  rp=$(podman ps --format '{{.Names}}' | grep -- '^swarr-rollout-pod-.*-rollout$' | head -1 || true)
  [ -n "$rp" ] || fail "kube: no rollout container running after the pipeline ended (--at-end idle)"
  podman exec "$rp" test -f /etc/swarr/tokens/rollout.token -a ! -e /etc/swarr/tokens/coordinator.token \
    || fail "kube: $rp: tokens mounted: $(podman exec "$rp" ls /etc/swarr/tokens 2>&1 | tr '\n' ' ')"
  # The learner wrote its part of the run on its own volume (the StatefulSet's claim).
  lv=$(podman volume inspect runs-swarr-learner-0 -f '{{.Mountpoint}}')
  [ -f "$lv/pipeline/learner/state.json" ] || fail "kube: no learner/state.json on runs-swarr-learner-0"
  log "kube: PASSED in $(( $(date +%s) - t )) s ($n rollout pods registered; learner state on its own volume; tokens and mTLS, a rollout pod without the coordinator's token)"
fi

log "PASSED in $(( $(date +%s) - T0 )) s (phases: $PHASES)"
