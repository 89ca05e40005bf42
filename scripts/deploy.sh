#!/usr/bin/env bash
# Load the built images into a kind cluster under tags derived from their content, then install the chart with
# those tags (`make deploy`, scripts/e2e.sh). A fixed tag with `IfNotPresent` would keep the node's old image: an
# image ID names exactly one content, so a rebuild that changed anything gets a new tag and rolls the pods.
#   usage: scripts/deploy.sh [extra helm arguments...]
# Environment: KIND_CLUSTER (crackseg), K8S_NAMESPACE (crackseg), IMAGE_TAG (the tag `make images` built, dev),
# DOCKER, KIND, HELM (the tools), HELM_TIMEOUT (10m), KIND_LOAD_LOG (where each load's time is appended:
# build/kind-load-times.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build

docker="${DOCKER:-docker}"
kind="${KIND:-kind}"
helm="${HELM:-helm}"
cluster="${KIND_CLUSTER:-crackseg}"
ns="${K8S_NAMESPACE:-crackseg}"
built="${IMAGE_TAG:-dev}"

# component value key → image name
declare -A images=([predictor]=predictor [ui]=ui [retrain]=trainer [mlflow]=mlflow)
set_args=()
for key in predictor ui retrain mlflow; do
  image="crackseg-${images[$key]}"
  id="$("$docker" image inspect --format '{{.Id}}' "$image:$built")" \
    || { echo "image $image:$built is not built: run make images" >&2; exit 2; }
  tag="c-${id#sha256:}"
  tag="${tag:0:18}"
  "$docker" tag "$image:$built" "$image:$tag"
  start=$(date +%s%N)
  "$kind" load docker-image --name "$cluster" "$image:$tag"
  ms=$((($(date +%s%N) - start) / 1000000))
  set_args+=(--set "$key.image.tag=$tag")
  echo "$image:$tag (kind load: ${ms} ms)"
  # kind-load times, one line per load (`benchmarks/images.py --kind-cluster` measures them the same way).
  echo "$(date -u +%FT%TZ) $image $("$docker" image inspect --format '{{.Size}}' "$image:$tag") bytes kind-load ${ms} ms" \
    >> "${KIND_LOAD_LOG:-build/kind-load-times.txt}"
done

"$helm" upgrade --install crackseg charts/crackseg --namespace "$ns" "${set_args[@]}" "$@" \
  --wait --timeout "${HELM_TIMEOUT:-10m}"
