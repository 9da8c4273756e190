#!/bin/sh
# deploy/k8s/base/pipeline.yaml is configs/examples/pipeline_toy.yaml behind a two-line header
# (kustomize's configMapGenerator cannot read files outside its folder without
# --load-restrictor LoadRestrictionsNone, so the ConfigMap is generated from this copy).
#   deploy/k8s/gen-pipeline.sh            regenerate the copy (from the repository root)
#   deploy/k8s/gen-pipeline.sh --check    exit 1 if the copy drifted from the source
#   SRC=configs/examples/other.yaml deploy/k8s/gen-pipeline.sh   another pipeline
#   SRC=configs/recipes/qwen2.5-math-1.5b.yaml DST=deploy/k8s/overlays/gpu/pipeline.yaml deploy/k8s/gen-pipeline.sh
#                                         the GPU overlay's pipeline (a recipe)
set -eu
SRC=${SRC:-configs/examples/pipeline_toy.yaml}
DST=${DST:-deploy/k8s/base/pipeline.yaml}
header() {
  echo "# GENERATED from $SRC by deploy/k8s/gen-pipeline.sh: edit the source and rerun it."
  echo "# Relative paths are resolved against the image's working directory /opt/swarr."
}
if [ "${1:-}" = "--check" ]; then
  { header; cat "$SRC"; } | cmp -s - "$DST" || { echo "$DST drifted from $SRC: run $0" >&2; exit 1; }
  exit 0
fi
{ header; cat "$SRC"; } > "$DST"
