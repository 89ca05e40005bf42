#!/usr/bin/env bash
# End to end on a real kind cluster (`make e2e`; CI: .github/workflows/e2e.yml):
#   create the cluster (Traefik, kube-prometheus-stack) → build and load the images → seed the datasets volume →
#   install the chart → predict → send labelled feedback over the threshold → run the trigger now → wait for the
#   retraining Job → wait until the predictor serves the new version.
# Needs docker, kind, kubectl, helm. KEEP_CLUSTER=1 leaves the cluster up afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

ns="${K8S_NAMESPACE:-crackseg}"
cluster="${KIND_CLUSTER:-crackseg}"
tag="${IMAGE_TAG:-dev}"
threshold="${E2E_THRESHOLD:-3}"
work="build/e2e"
pf_pid=""
mkdir -p "$work"

log() { printf '\n=== %s\n' "$*"; }
cleanup() {
  [[ -z "$pf_pid" ]] || kill "$pf_pid" 2>/dev/null || true
  if [[ "${KEEP_CLUSTER:-0}" != 1 ]]; then kind delete cluster --name "$cluster" || true; fi
}
trap cleanup EXIT
dump() {
  kubectl -n "$ns" get pods,jobs,deploy -o wide || true
  kubectl -n "$ns" logs -l app.kubernetes.io/component=retrain --tail=200 || true
  kubectl -n "$ns" logs -l app.kubernetes.io/component=predictor --tail=100 || true
}
trap 'dump' ERR

forward() {  # forward the predictor Service to 127.0.0.1:18000 (again after each rollout: the old pod is gone)
  [[ -z "$pf_pid" ]] || kill "$pf_pid" 2>/dev/null || true
  kubectl -n "$ns" port-forward svc/crackseg-predictor 18000:8000 >"$work/port-forward.log" 2>&1 &
  pf_pid=$!
  for _ in $(seq 1 30); do curl -fsS http://127.0.0.1:18000/ping >/dev/null 2>&1 && return 0; sleep 1; done
  echo "port-forward to the predictor failed" >&2; cat "$work/port-forward.log" >&2; return 1
}

log "cluster"
make --no-print-directory cluster KIND_CLUSTER="$cluster"

log "images"
make --no-print-directory images IMAGE_TAG="$tag"
for i in predictor ui trainer mlflow; do kind load docker-image --name "$cluster" "crackseg-$i:$tag"; done

log "install"
# A tiny training budget and a tolerance that always promotes: the e2e checks the loop, not the model quality.
helm upgrade --install crackseg charts/crackseg --namespace "$ns" --set image.tag="$tag" \
  --set retrainThreshold="$threshold" --set retrain.trigger.suspend=true \
  --set-json 'retrain.job.extraEnv=[{"name":"CRACKSEG_RETRAIN_PARAMS","value":"/data/base/e2e-params.yaml"},{"name":"CRACKSEG_RETRAIN_TOLERANCE","value":"1"},{"name":"CRACKSEG_EVAL_SPLIT","value":""}]' \
  --set-json 'retrain.job.resources={"requests":{"cpu":"500m","memory":"1Gi"},"limits":{"cpu":"2","memory":"4Gi"}}' \
  --wait --timeout 10m

log "seed the datasets volume (synthetic base and eval sets, a small training budget)"
kubectl -n "$ns" apply -f k8s/e2e/seed-datasets-job.yaml
kubectl -n "$ns" wait --for=condition=complete job/crackseg-e2e-seed --timeout=10m

log "predict"
forward
before="$(curl -fsS http://127.0.0.1:18000/ping | python3 -c 'import json,sys; print(json.load(sys.stdin)["model_version"])')"
echo "serving version $before"
docker run --rm --user "$(id -u):$(id -g)" -v "$PWD/$work:/out" --entrypoint python3 "crackseg-trainer:$tag" \
  -c "from ml.data.synthetic import generate; generate($threshold + 1, '/out/samples', size=(96, 128), seed=7)"
first="$(ls "$work/samples/images" | head -1)"
curl -fsS -F "file=@$work/samples/images/$first" http://127.0.0.1:18000/predict | python3 -c \
  'import json,sys; r=json.load(sys.stdin); assert r["width"] == 128, r; print("predict ok", r["statistics"])'

log "feedback over the threshold ($threshold labelled)"
for img in "$work"/samples/images/*.png; do
  name="$(basename "$img")"
  curl -fsS -F "file=@$img" -F "mask=@$work/samples/masks/$name" -F verdict=missed_cracks \
    http://127.0.0.1:18000/save-for-retrain >/dev/null
done
curl -fsS http://127.0.0.1:18000/v1/feedback/stats

log "force a retrain: run the trigger CronJob now"
kubectl -n "$ns" create job --from=cronjob/crackseg-retrain-trigger crackseg-e2e-trigger
kubectl -n "$ns" wait --for=condition=complete job/crackseg-e2e-trigger --timeout=5m
kubectl -n "$ns" logs job/crackseg-e2e-trigger
job="$(kubectl -n "$ns" get jobs -l app.kubernetes.io/component=retrain -o jsonpath='{.items[0].metadata.name}')"
[[ -n "$job" ]] || { echo "the trigger created no retraining Job" >&2; exit 1; }
echo "retraining Job: $job"
kubectl -n "$ns" wait --for=condition=complete "job/$job" --timeout=40m

log "wait for the predictor to serve the new version"
kubectl -n "$ns" rollout status deployment/crackseg-predictor --timeout=10m
forward
after="$(curl -fsS http://127.0.0.1:18000/ping | python3 -c 'import json,sys; print(json.load(sys.stdin)["model_version"])')"
echo "serving version $after (was $before)"
[[ "$after" != "$before" ]] || { echo "the predictor still serves $before" >&2; exit 1; }
log "e2e passed"
