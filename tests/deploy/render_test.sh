#!/usr/bin/env bash
# The fast part of the deploy checks (ctest: deploy_render_test, seconds): what renders and
# parses without starting a container. scripts/deploy_test.sh runs them for real.
#  - the Dockerfiles parse (tests/deploy/dockerfile_lint.py: instructions, ARG bases, stages,
#    COPY sources in their contexts); the GPU one is only ever parsed here;
#  - deploy/k8s/base/pipeline.yaml is configs/examples/pipeline_toy.yaml (gen-pipeline.sh --check);
#  - kustomize renders the base and the cpu and gpu overlays (kubectl kustomize; skipped with a
#    note where kubectl is missing): the right kinds, the namespace, GPU requests in the gpu overlay
#    only, every referenced ConfigMap/Secret/PVC defined or documented, every service with per-role
#    tokens (--token-dir, only its own and its callers' tokens mounted) and mTLS, the podman test copy
#    (tests/deploy/kube_testcopy.py) builds from the cpu overlay;
#  - docker-compose config accepts deploy/docker-compose.yml with GRAFANA_ADMIN_PASSWORD and refuses
#    it without; published ports are on 127.0.0.1; every service has --token-dir and mTLS with its
#    own and its callers' tokens mounted (skipped where docker-compose is missing);
#  - promtool checks the compose Prometheus config and the alert rules.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=/usr/bin/python3
W=$(mktemp -d /tmp/swarr-rendertest.XXXXXX)
trap 'rm -rf "$W"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }
ok() { echo "ok: $*"; }

# Dockerfiles. Dockerfile.ci's context is the staging folder scripts/deploy_test.sh makes.
mkdir -p "$W/stage/bin" "$W/stage/configs" "$W/stage/data" && touch "$W/stage/bin/swarr"
$PY tests/deploy/dockerfile_lint.py deploy/Dockerfile deploy/Dockerfile.gpu "deploy/Dockerfile.ci=$W/stage" \
  tests/deploy/Dockerfile.prometheus=tests/deploy || bad "Dockerfiles"

deploy/k8s/gen-pipeline.sh --check && ok "k8s/base/pipeline.yaml matches configs/examples/pipeline_toy.yaml" || bad "gen-pipeline --check"

if command -v kubectl > /dev/null; then
  for o in base overlays/cpu overlays/gpu; do
    kubectl kustomize "deploy/k8s/$o" > "$W/$(basename "$o").yaml" 2> "$W/err" || { cat "$W/err"; bad "kustomize deploy/k8s/$o"; }
  done
  $PY - "$W" <<'PYEOF' || fail=1
import sys, yaml
w = sys.argv[1]
bad = []
def load(name):
    return [d for d in yaml.safe_load_all(open(f"{w}/{name}.yaml")) if d]
def workloads(docs):
    return {d["kind"] + "/" + d["metadata"]["name"]: d for d in docs
            if d["kind"] in ("Job", "StatefulSet", "Deployment")}
def containers(d):
    return d["spec"]["template"]["spec"]["containers"]
for name in ("base", "cpu", "gpu"):
    docs = load(name)
    kinds = sorted(d["kind"] + "/" + d["metadata"]["name"] for d in docs)
    want = ["Job/swarr-coordinator", "StatefulSet/swarr-learner", "Deployment/swarr-rollout",
            "Service/swarr-coordinator", "Service/swarr-learner", "PodDisruptionBudget/swarr-rollout",
            "NetworkPolicy/swarr", "PersistentVolumeClaim/swarr-coordinator-runs"]
    for k in want:
        if k not in kinds:
            bad.append(f"{name}: no {k}")
    defined = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for k, d in workloads(docs).items():
        spec = d["spec"]["template"]["spec"]
        for v in spec.get("volumes", []):
            if "configMap" in v and ("ConfigMap", v["configMap"]["name"]) not in defined:
                bad.append(f"{name}: {k} mounts ConfigMap {v['configMap']['name']}, not rendered")
            if "persistentVolumeClaim" in v and ("PersistentVolumeClaim", v["persistentVolumeClaim"]["claimName"]) not in defined:
                bad.append(f"{name}: {k} mounts PVC {v['persistentVolumeClaim']['claimName']}, not rendered")
            if "secret" in v and v["secret"]["secretName"] not in ("swarr-tokens", "swarr-tls"):
                bad.append(f"{name}: {k} mounts an unknown Secret {v['secret']['secretName']}")
        # Secure by default: per-role tokens (only its own and its callers') and mutual TLS.
        role = k.split("swarr-")[-1]
        want_tokens = {"coordinator": {"coordinator", "rollout", "operator"},
                       "learner": {"rollout", "coordinator", "operator"},
                       "rollout": {"rollout", "operator"}}[role]
        vols = {v["name"]: v for v in spec.get("volumes", [])}
        tok = vols.get("tokens", {}).get("secret", {})
        got = {i["path"].removesuffix(".token") for i in tok.get("items", [])}
        if tok.get("secretName") != "swarr-tokens" or got != want_tokens:
            bad.append(f"{name}: {k} mounts tokens {sorted(got)} of {tok.get('secretName')}, expected {sorted(want_tokens)}")
        if vols.get("tls", {}).get("secret", {}).get("secretName") != "swarr-tls":
            bad.append(f"{name}: {k} mounts no Secret swarr-tls")
        a = containers(d)[0]["args"]
        for flag, value in (("--token-dir", "/etc/swarr/tokens"), ("--tls-cert", "/etc/swarr/tls/tls.crt"),
                            ("--tls-key", "/etc/swarr/tls/tls.key"), ("--tls-ca", "/etc/swarr/tls/ca.crt")):
            if flag not in a or a[a.index(flag) + 1] != value:
                bad.append(f"{name}: {k} lacks {flag} {value}")
        if "--insecure" in a:
            bad.append(f"{name}: {k} runs --insecure")
        for c in containers(d):
            gpus = c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu")
            img = c["image"]
            if name == "gpu" and k != "Job/swarr-coordinator":
                if gpus != 1: bad.append(f"gpu: {k} has no nvidia.com/gpu limit of 1")
                if c["resources"]["requests"].get("nvidia.com/gpu") != 1: bad.append(f"gpu: {k} requests no GPU")
                if not img.endswith("-gpu"): bad.append(f"gpu: {k} image {img} is not the GPU one")
            elif gpus is not None:
                bad.append(f"{name}: {k} asks for GPUs")
            if name != "gpu" and img != "swarr:0.1.0":
                bad.append(f"{name}: {k} image {img}")
            if c.get("imagePullPolicy") != "IfNotPresent":
                bad.append(f"{name}: {k} imagePullPolicy {c.get('imagePullPolicy')}")
    ns = {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"}
    if name != "base" and ns != {"swarr"}:
        bad.append(f"{name}: namespaces {ns}, expected swarr everywhere")
    if name != "base" and ("Namespace", "swarr") not in defined:
        bad.append(f"{name}: no Namespace swarr")
gpu_rollout = workloads(load("gpu"))["Deployment/swarr-rollout"]
args = containers(gpu_rollout)[0]["args"]
if "--device" not in args or args[args.index("--device") + 1] != "cuda":
    bad.append("gpu: rollout servers not on --device cuda")
cm = [d for d in load("gpu") if d["kind"] == "ConfigMap"]
if len(cm) != 1 or "qwen2.5-math" not in cm[0]["data"]["pipeline.yaml"]:
    bad.append("gpu: the pipeline ConfigMap is not the recipe's")
for b in bad:
    print("FAIL:", b)
print("ok: kustomize base, overlays/cpu, overlays/gpu" if not bad else "kustomize checks failed")
sys.exit(1 if bad else 0)
PYEOF
  deploy/gen-certs.sh "$W/secrets" > /dev/null && ok "deploy/gen-certs.sh: tokens and certificates" || bad "deploy/gen-certs.sh"
  SWARR_SECRETS=$W/secrets $PY tests/deploy/kube_testcopy.py "$W/cpu.yaml" "$W/play.yaml" 2> /dev/null \
    && ok "podman test copy of overlays/cpu" || bad "kube_testcopy.py"
  # The HPA example (deploy/k8s/hpa, rendering only): it scales the rendered rollout Deployment on
  # the External metric the adapter rule serves, from a gauge the coordinator exports.
  kubectl kustomize deploy/k8s/hpa > "$W/hpa.yaml" 2> "$W/err" || { cat "$W/err"; bad "kustomize deploy/k8s/hpa"; }
  $PY - "$W" <<'PYEOF' && ok "k8s/hpa: HPA on swarr_coordinator_groups_queued" || bad "k8s/hpa"
import sys, yaml
w = sys.argv[1]
hpa = [d for d in yaml.safe_load_all(open(f"{w}/hpa.yaml")) if d]
cpu = [d for d in yaml.safe_load_all(open(f"{w}/cpu.yaml")) if d]
rules = yaml.safe_load(open("deploy/k8s/hpa/prometheus-adapter-rules.yaml"))["rules"]["external"]
metrics_src = open("coordinator/coordinator_metrics.cc").read()
assert [d["kind"] for d in hpa] == ["HorizontalPodAutoscaler"] and hpa[0]["apiVersion"] == "autoscaling/v2", hpa
h = hpa[0]
ref = h["spec"]["scaleTargetRef"]
target = [d for d in cpu if d["kind"] == ref["kind"] and d["metadata"]["name"] == ref["name"]]
assert target and h["metadata"]["namespace"] == target[0]["metadata"]["namespace"], ("no such target", ref)
name = h["spec"]["metrics"][0]["external"]["metric"]["name"]
assert any(r["name"]["as"] == name for r in rules), f"no adapter rule serves {name}"
for r in rules:
    series = r["seriesQuery"].split("{")[0]
    assert f'.Name("{series}")' in metrics_src, f"the coordinator exports no {series}"
PYEOF
else
  echo "note: kubectl missing: the kustomize renders were not checked"
fi

if command -v docker-compose > /dev/null; then
  GRAFANA_ADMIN_PASSWORD=x docker-compose -f deploy/docker-compose.yml config > "$W/compose.yaml" 2> "$W/err" \
    || { cat "$W/err"; bad "docker-compose config"; }
  if env -u GRAFANA_ADMIN_PASSWORD docker-compose -f deploy/docker-compose.yml config > /dev/null 2>&1; then
    bad "docker-compose config accepted the file without GRAFANA_ADMIN_PASSWORD"
  fi
  $PY - "$W/compose.yaml" <<'PYEOF' || fail=1
import sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
bad = []
for name, s in c["services"].items():
    for p in s.get("ports", []):
        ip = p.get("host_ip") if isinstance(p, dict) else str(p).split(":")[0]
        if ip != "127.0.0.1":
            bad.append(f"{name} publishes {p} beyond 127.0.0.1")
for want in ("coordinator", "learner", "rollout", "prometheus", "grafana"):
    if want not in c["services"]:
        bad.append(f"no service {want}")
callers = {"coordinator": {"coordinator", "rollout", "operator"}, "learner": {"rollout", "coordinator", "operator"},
           "rollout": {"rollout", "operator"}}
for name, want_tokens in callers.items():
    s = c["services"].get(name, {})
    cmd = s.get("command", [])
    for flag, value in (("--token-dir", "/etc/swarr/tokens"), ("--tls-cert", "/etc/swarr/tls/server.pem"),
                        ("--tls-key", "/etc/swarr/tls/server.key"), ("--tls-ca", "/etc/swarr/tls/ca.pem")):
        if flag not in cmd or cmd[cmd.index(flag) + 1] != value:
            bad.append(f"{name} lacks {flag} {value}")
    targets = [v["target"] if isinstance(v, dict) else v.split(":")[1] for v in s.get("volumes", [])]
    got = {t.split("/")[-1].removesuffix(".token") for t in targets if t.startswith("/etc/swarr/tokens/")}
    if got != want_tokens:
        bad.append(f"{name} mounts tokens {sorted(got)}, expected {sorted(want_tokens)}")
    for f in ("server.pem", "server.key", "ca.pem"):
        if "/etc/swarr/tls/" + f not in targets:
            bad.append(f"{name} does not mount /etc/swarr/tls/{f}")
for b in bad:
    print("FAIL: compose:", b)
print("ok: compose config (ports on 127.0.0.1, Grafana needs its password, tokens and mTLS)" if not bad
      else "compose checks failed")
sys.exit(1 if bad else 0)
PYEOF
  GRAFANA_ADMIN_PASSWORD=x docker-compose -f deploy/docker-compose.yml -f tests/deploy/compose.test.yml config > /dev/null \
    && ok "compose + test override" || bad "compose + tests/deploy/compose.test.yml"
else
  echo "note: docker-compose missing: the compose file was not checked"
fi

if command -v promtool > /dev/null; then
  promtool check config deploy/prometheus/prometheus.compose.yml > "$W/out" 2>&1 && ok "promtool check config" || { cat "$W/out"; bad "promtool check config"; }
  promtool check rules deploy/prometheus/alerts.yml > "$W/out" 2>&1 && ok "promtool check rules" || { cat "$W/out"; bad "promtool check rules"; }
else
  echo "note: promtool missing"
fi
[ $fail = 0 ] && echo "PASS" || echo "FAILED"
exit $fail
