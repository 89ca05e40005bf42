#!/usr/bin/env bash
# End to end on a real kind cluster (`make e2e`; CI: .github/workflows/e2e.yml):
#   create its own cluster (Traefik, metrics-server, kube-prometheus-stack) → build the images → load them under
#   content tags and install the chart (which seeds the datasets volume) → predict → send labelled feedback over the threshold → run the trigger now → wait for the
#   retraining Job → wait until the predictor serves the new version.
# Needs docker, kind, kubectl, helm. It never touches the developer's cluster (`make cluster`, named crackseg): its
# own is E2E_CLUSTER (crackseg-e2e), deleted at the end unless KEEP_CLUSTER=1.
set -euo pipefail
cd "$(dirname "$0")/.."

ns="${K8S_NAMESPACE:-crackseg}"
cluster="${E2E_CLUSTER:-crackseg-e2e}"
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

log "install (content-tagged images; the chart's seed Job fills the datasets volume)"
# A small synthetic set, a tiny training budget and a tolerance that always promotes: the e2e checks the loop,
# not the model quality.
KIND_CLUSTER="$cluster" K8S_NAMESPACE="$ns" IMAGE_TAG="$tag" scripts/deploy.sh \
  --set retrainThreshold="$threshold" --set retrain.trigger.suspend=true \
  --set datasets.seed.baseImages=24 --set datasets.seed.evalImages=8 \
  --set datasets.seed.height=128 --set datasets.seed.width=160 \
  --set-json 'retrain.job.params={"epochs":1,"steps_per_epoch":2,"batch_size":2,"crop_size":64,"train_split":null,"val_fraction":0.25,"amp":false,"device":"cpu"}' \
  --set-json 'retrain.job.extraEnv=[{"name":"CRACKSEG_RETRAIN_TOLERANCE","value":"1"},{"name":"CRACKSEG_EVAL_SPLIT","value":""}]' \
  --set-json 'retrain.job.resources={"requests":{"cpu":"500m","memory":"1Gi"},"limits":{"cpu":"2","memory":"4Gi"}}'
kubectl -n "$ns" wait --for=condition=complete job -l app.kubernetes.io/component=seed --timeout=10m

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

# wait_job JOB TIMEOUT_S: poll until the Job is Complete (exit 0) or Failed (exit 1): `kubectl wait` on one
# condition alone would sit out its whole timeout on the other.
wait_job() {
  local deadline=$(( $(date +%s) + $2 )) state
  while (( $(date +%s) < deadline )); do
    state="$(kubectl -n "$ns" get "job/$1" -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type}{" "}{end}')"
    [[ " $state " == *" Complete "* ]] && return 0
    [[ " $state " == *" Failed "* ]] && { echo "Job $1 failed" >&2; kubectl -n "$ns" logs "job/$1" --tail=100 >&2 || true; return 1; }
    sleep 5
  done
  echo "Job $1 did not finish in $2 s" >&2; return 1
}

log "force a retrain: run the trigger CronJob now"
kubectl -n "$ns" create job --from=cronjob/crackseg-retrain-trigger crackseg-e2e-trigger
wait_job crackseg-e2e-trigger 300
kubectl -n "$ns" logs job/crackseg-e2e-trigger
# The trigger's decision names the run; its Job carries the label crackseg.io/run (one Job per attempt).
run="$(kubectl -n "$ns" logs job/crackseg-e2e-trigger | python3 -c '
import json, sys
for line in sys.stdin:
    try:
        event = json.loads(line)
    except ValueError:
        continue
    if event.get("event") == "trigger_decision" and event.get("created"):
        print(event["run_name"])
')"
[[ -n "$run" ]] || { echo "the trigger created no retraining Job" >&2; exit 1; }
job="$(kubectl -n "$ns" get jobs -l "crackseg.io/run=$run" -o jsonpath='{.items[*].metadata.name}')"
[[ "$job" != *" "* && -n "$job" ]] || { echo "expected one Job for run $run, got: '$job'" >&2; exit 1; }
echo "retraining Job: $job"
wait_job "$job" 2400

log "wait for the predictor to serve the new version"
kubectl -n "$ns" rollout status deployment/crackseg-predictor --timeout=10m
forward
after="$(curl -fsS http://127.0.0.1:18000/ping | python3 -c 'import json,sys; print(json.load(sys.stdin)["model_version"])')"
echo "serving version $after (was $before)"
[[ "$after" != "$before" ]] || { echo "the predictor still serves $before" >&2; exit 1; }
log "e2e passed"
