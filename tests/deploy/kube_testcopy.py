#!/usr/bin/python3
"""Turns the rendered Kubernetes manifests (kubectl kustomize deploy/k8s/overlays/cpu) into what
`podman kube play` (4.3) can run, changing only what podman lacks (../shared/docs/CONTAINERS.md):

- Job and StatefulSet are not supported: each becomes a bare Pod with the same pod spec, named
  after its Service (swarr-coordinator, swarr-learner) so that the Service's DNS name resolves to
  it on the kube network - the stand-in for the Services, which podman ignores. The Job's
  restartPolicy (OnFailure) is kept; the StatefulSet's volumeClaimTemplate becomes the PVC
  runs-swarr-learner-0 a cluster would create.
- The Deployment (rollout servers) stays a Deployment (one pod per replica).
- containerPort entries are dropped (podman publishes every one on the host: replicas collide).
- `$(POD_NAME)` is not expanded by podman: the rollout's `--name $(POD_NAME)` is dropped (the
  server then names itself after its hostname, which is the pod name anyway).
- The Secrets a user creates with kubectl (docs/deploy.md "Security": swarr-tokens, the four
  <role>.token files; swarr-tls: tls.crt, tls.key, ca.crt) come from the folder SWARR_SECRETS
  (env; made by deploy/gen-certs.sh) as hostPath volumes: podman 4.3 mounts a Secret's `data`
  still base64-encoded and ignores `items`. Each pod's token volume is a folder of its own
  holding only the `items` the manifest selects (SWARR_SECRETS/kube/<pod>-<volume>/), so the
  test runs with exactly the tokens a cluster would mount.
- Namespace, Service, PodDisruptionBudget and NetworkPolicy are dropped (podman does not
  implement them; podman ignores metadata.namespace).
- SWARR_ROLLOUT_REPLICAS (env) overrides the rollout replica count.

Usage: SWARR_SECRETS=DIR kube_testcopy.py RENDERED.yaml OUT.yaml   (prints what it changed on stderr)
"""
import os
import shutil
import sys

import yaml


def note(msg):
    print(f"kube_testcopy: {msg}", file=sys.stderr)


# Secret name -> {key: file under SWARR_SECRETS} (what the user's kubectl create secret takes).
SECRET_FILES = {
    "swarr-tokens": {f"{r}.token": f"tokens/{r}.token" for r in ("rollout", "learner", "coordinator", "operator")},
    "swarr-tls": {"tls.crt": "tls/server.pem", "tls.key": "tls/server.key", "ca.crt": "tls/ca.pem"},
}


def secret_to_host_path(pod, v, secrets):
    """The secret volume `v` of `pod` as a hostPath folder holding the selected keys."""
    name = v["secret"]["secretName"]
    if name not in SECRET_FILES:
        sys.exit(f"kube_testcopy: unknown Secret {name}: update this script")
    files = SECRET_FILES[name]
    keys = [i["key"] for i in v["secret"].get("items", [])] or list(files)
    folder = os.path.join(secrets, "kube", f"{pod}-{v['name']}")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    for k in keys:
        shutil.copyfile(os.path.join(secrets, files[k]), os.path.join(folder, k))
        os.chmod(os.path.join(folder, k), 0o600)
    del v["secret"]
    v["hostPath"] = {"path": folder, "type": "Directory"}
    note(f"{pod}: Secret {name} -> hostPath {folder} ({', '.join(sorted(keys))})")


def fix_pod_spec(spec, pod, secrets):
    for c in spec.get("containers", []):
        if c.pop("ports", None) is not None:
            note(f"container {c['name']}: ports dropped")
        args = c.get("args", [])
        if "$(POD_NAME)" in args:
            i = args.index("$(POD_NAME)")
            del args[i - 1:i + 1]
            note(f"container {c['name']}: --name $(POD_NAME) dropped")
    for v in spec.get("volumes", []):
        if "secret" in v:
            secret_to_host_path(pod, v, secrets)


def main():
    src, dst = sys.argv[1], sys.argv[2]
    docs = [d for d in yaml.safe_load_all(open(src)) if d]
    out = []
    secrets = os.environ.get("SWARR_SECRETS")
    if not secrets:
        sys.exit("kube_testcopy: set SWARR_SECRETS to a folder made by deploy/gen-certs.sh")

    secrets = os.path.abspath(secrets)
    kinds = {d["kind"] for d in docs}
    for want in ("Job", "StatefulSet", "Deployment", "ConfigMap", "PersistentVolumeClaim"):
        if want not in kinds:
            sys.exit(f"kube_testcopy: no {want} in {src}: the manifests changed, update this script")
    for d in docs:
        kind, name = d["kind"], d["metadata"]["name"]
        if kind in ("Namespace", "Service", "PodDisruptionBudget", "NetworkPolicy"):
            note(f"{kind} {name} dropped")
            continue
        if kind in ("ConfigMap", "PersistentVolumeClaim"):
            out.append(d)
        elif kind == "Deployment":
            fix_pod_spec(d["spec"]["template"]["spec"], name, secrets)
            if os.environ.get("SWARR_ROLLOUT_REPLICAS"):
                d["spec"]["replicas"] = int(os.environ["SWARR_ROLLOUT_REPLICAS"])
            out.append(d)
        elif kind in ("Job", "StatefulSet"):
            tmpl = d["spec"]["template"]
            spec = tmpl["spec"]
            fix_pod_spec(spec, name, secrets)
            pod_name = name  # the Service's name: DNS on the kube network resolves pod names
            if kind == "StatefulSet":
                for vct in d["spec"].get("volumeClaimTemplates", []):
                    claim = f"{vct['metadata']['name']}-{name}-0"
                    out.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                "metadata": {"name": claim}, "spec": vct["spec"]})
                    spec.setdefault("volumes", []).append(
                        {"name": vct["metadata"]["name"], "persistentVolumeClaim": {"claimName": claim}})
                spec.setdefault("restartPolicy", "Always")
            note(f"{kind} {name} -> Pod {pod_name}")
            out.append({"apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": pod_name, "labels": tmpl["metadata"].get("labels", {}),
                                     "annotations": tmpl["metadata"].get("annotations", {})},
                        "spec": spec})
        else:
            sys.exit(f"kube_testcopy: unexpected {kind} {name}: update this script")
    with open(dst, "w") as f:
        yaml.safe_dump_all(out, f, sort_keys=False)


if __name__ == "__main__":
    main()
