#!/bin/sh
# deploy/k8s/pipeline.yaml is configs/examples/pipeline_toy.yaml behind a two-line header
# (kustomize's configMapGenerator cannot read files outside deploy/k8s without
# --load-restrictor LoadRestrictionsNone, so the ConfigMap is generated from this copy).
#   deploy/k8s/gen-pipeline.sh            regenerate the copy (from the repository root)
#   deploy/k8s/gen-pipeline.sh --check    exit 1 if the copy drifted from the source
#   SRC=configs/examples/other.yaml deploy/k8s/gen-pipeline.sh   another pipeline
set -eu
SRC=${SRC:-configs/examples/pipeline_toy.yaml}
DST=deploy/k8s/pipeline.yaml
header() {
  echo "# GENERATED from $SRC by deploy/k8s/gen-pipeline.sh: edit the source and rerun it."
  echo "# Relative paths are resolved against the image's working directory /opt/swarr."
}
if [ "${1:-}" = "--check" ]; then
  { header; cat "$SRC"; } | cmp -s - "$DST" || { echo "$DST drifted from $SRC: run $0" >&2; exit 1; }
  exit 0
fi
{ header; cat "$SRC"; } > "$DST"
