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
- The token Secret, which a user creates with kubectl, is added with a test token, and secret
  volumes get `optional: false` (podman 4.3 crashes on an unset optional).
- Namespace, Service, PodDisruptionBudget and NetworkPolicy are dropped (podman does not
  implement them; podman ignores metadata.namespace).
- SWARR_ROLLOUT_REPLICAS (env) overrides the rollout replica count.

Usage: kube_testcopy.py RENDERED.yaml OUT.yaml   (prints what it changed on stderr)
"""
import base64
import os
import sys

import yaml


def note(msg):
    print(f"kube_testcopy: {msg}", file=sys.stderr)


def fix_pod_spec(spec):
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
            v["secret"]["optional"] = False


def main():
    src, dst = sys.argv[1], sys.argv[2]
    docs = [d for d in yaml.safe_load_all(open(src)) if d]
    out = []
    token = base64.b64encode(b"swarr-deploy-test-token").decode()
    out.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "swarr-token"},
                "type": "Opaque", "data": {"token": token}})
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
            fix_pod_spec(d["spec"]["template"]["spec"])
            if os.environ.get("SWARR_ROLLOUT_REPLICAS"):
                d["spec"]["replicas"] = int(os.environ["SWARR_ROLLOUT_REPLICAS"])
            out.append(d)
        elif kind in ("Job", "StatefulSet"):
            tmpl = d["spec"]["template"]
            spec = tmpl["spec"]
            fix_pod_spec(spec)
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
