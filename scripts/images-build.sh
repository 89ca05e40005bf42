#!/usr/bin/env bash
# Build the four crackseg images with the local Docker engine.
#   usage: scripts/images-build.sh [predictor ui trainer mlflow]
# Environment:
#   BASE_IMAGE       base image (default: python:3.11-slim when it can be pulled, else a debootstrap bookworm
#                    image built by scripts/docker-base-image.sh; CRACKSEG_LOCAL_BASE=1 forces the latter)
#   TORCH_WHEEL      a local CPU torch wheel served to the trainer build instead of download.pytorch.org, when no
#                    local index holds the venv's torch pair (the predictor has no torch)
#   TRAINER_TORCH    torch/torchvision pins of the trainer (default: the pair .venv runs, e.g.
#                    "torch==2.14.1 torchvision==0.29.1"), served from the local PEP 503 index folders pip is
#                    configured with (`pip config list`: file:// extra-index-url) when they hold them. The CPU-only
#                    torch wheel has no torchvision that imports, and the retraining run needs torchvision.
#   IMAGE_TAG        tag of the images (default: dev)
#   PIP_CA_BUNDLE    CA bundle passed to pip inside the builds as a BuildKit secret (default: the host's)
# Timings land in build/images/timings.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

docker="${DOCKER:-docker}"
tag="${IMAGE_TAG:-dev}"
cache_dir="${CRACKSEG_IMAGE_CACHE:-build/images}"
ca="${PIP_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
mkdir -p "$cache_dir"
images=("$@")
[[ ${#images[@]} -gt 0 ]] || images=(predictor ui trainer mlflow)

if [[ -z "${BASE_IMAGE:-}" && -z "${CRACKSEG_LOCAL_BASE:-}" ]]; then
  # No registry (this machine): `docker pull` fails, so fall back to the debootstrap base.
  if "$docker" image inspect python:3.11-slim >/dev/null 2>&1 || "$docker" pull -q python:3.11-slim >/dev/null 2>&1; then
    CRACKSEG_LOCAL_BASE=0
  else
    CRACKSEG_LOCAL_BASE=1
  fi
fi
if [[ "${CRACKSEG_LOCAL_BASE:-0}" == 1 ]]; then
  BASE_IMAGE="${BASE_IMAGE:-crackseg-base:bookworm-slim}"
  DOCKER="$docker" scripts/docker-base-image.sh "$BASE_IMAGE"
fi
base="${BASE_IMAGE:-python:3.11-slim}"

# The predictor needs a model folder in the build context: the starter model, or a tiny random one for tests.
model_dir=models/default
if [[ ! -f models/default/config.json ]]; then
  model_dir=build/images/test-model
fi
make_test_model() {
  [[ "$model_dir" == models/default || -f "$model_dir/config.json" ]] && return 0
  echo "models/default is absent: baking a tiny random model ($model_dir) into the predictor image"
  if [[ -x .venv/bin/python ]]; then
    .venv/bin/python scripts/tiny_model.py "$model_dir"
  else
    # No virtualenv (CI): the trainer image has torch and the ML core.
    mkdir -p "$(dirname "$model_dir")"
    "$docker" run --rm --user "$(id -u):$(id -g)" -v "$PWD:/work" -w /work -e PYTHONPATH=/work \
      --entrypoint python3 "crackseg-trainer:$tag" scripts/tiny_model.py "$model_dir"
  fi
}
# The trainer is built before the predictor, which may need it to make the test model.
ordered=()
for name in trainer "${images[@]}"; do
  [[ " ${images[*]} " == *" $name "* && " ${ordered[*]:-} " != *" $name "* ]] && ordered+=("$name")
done
images=("${ordered[@]}")

torch_args=()
server_pid=""
index_pid=""
cleanup() {
  [[ -z "$server_pid" ]] || kill "$server_pid" 2>/dev/null || true
  [[ -z "$index_pid" ]] || kill "$index_pid" 2>/dev/null || true
}
trap cleanup EXIT
if [[ -n "${TORCH_WHEEL:-}" ]]; then
  # Serve the wheel as a one-package PEP 503 index on loopback; the builds use the host network to reach it.
  index="$cache_dir/torch-index"
  wheel_name="$(basename "$TORCH_WHEEL")"
  version="$(echo "$wheel_name" | cut -d- -f2)"
  mkdir -p "$index/simple/torch" "$index/files"
  ln -sfn "$(readlink -f "$TORCH_WHEEL")" "$index/files/$wheel_name"
  printf '<!DOCTYPE html><html><body><a href="../../files/%s">%s</a></body></html>\n' \
    "${wheel_name//+/%2B}" "$wheel_name" > "$index/simple/torch/index.html"
  # A fixed port keeps TORCH_INDEX_URL, and so the layer cache, the same from one build to the next.
  port="${TORCH_INDEX_PORT:-38417}"
  if ! python3 -c "import socket,sys; s=socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1])))" "$port" 2>/dev/null; then
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    echo "port ${TORCH_INDEX_PORT:-38417} is busy: serving torch on $port (the torch layers will rebuild)"
  fi
  python3 -m http.server --bind 127.0.0.1 --directory "$index" "$port" >"$cache_dir/torch-index.log" 2>&1 &
  server_pid=$!
  torch_args=(--build-arg "TORCH_INDEX_URL=http://127.0.0.1:$port/simple" --build-arg "TORCH_SPEC=torch==$version")
fi

# The trainer: the torch/torchvision pair the virtualenv runs, from the local index folders pip is configured with.
trainer_args=()
trainer_torch="${TRAINER_TORCH:-}"
if [[ -z "$trainer_torch" && -x .venv/bin/python ]]; then
  trainer_torch="$(.venv/bin/python -c 'import importlib.metadata as m; print(" ".join(f"{p}=={m.version(p)}" for p in ("torch", "torchvision")))' 2>/dev/null || true)"
fi
local_indexes=()
if command -v pip >/dev/null || [[ -x .venv/bin/pip ]]; then
  pip_cmd="$( [[ -x .venv/bin/pip ]] && echo .venv/bin/pip || echo pip )"
  for url in $("$pip_cmd" config get global.extra-index-url 2>/dev/null | tr -d "'\""); do
    [[ "$url" == file://* && -d "${url#file://}" ]] && local_indexes+=("${url#file://}")
  done
fi
if [[ -n "$trainer_torch" && ${#local_indexes[@]} -gt 0 ]]; then
  served="$cache_dir/local-index"
  rm -rf "$served" && mkdir -p "$served"
  urls=()
  for i in "${!local_indexes[@]}"; do ln -sfn "$(readlink -f "${local_indexes[$i]%/simple}")" "$served/idx$i"; done
  lport="${LOCAL_INDEX_PORT:-38418}"
  if ! python3 -c "import socket,sys; s=socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1])))" "$lport" 2>/dev/null; then
    lport="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  fi
  python3 -m http.server --bind 127.0.0.1 --directory "$served" "$lport" >"$cache_dir/local-index.log" 2>&1 &
  index_pid=$!
  # The folder that holds torch comes first, so an equal version on pypi.org is never downloaded instead.
  first=""; rest=()
  for i in "${!local_indexes[@]}"; do
    if [[ -z "$first" && -d "${local_indexes[$i]}/torch" ]]; then first="http://127.0.0.1:$lport/idx$i/simple"
    else rest+=("http://127.0.0.1:$lport/idx$i/simple"); fi
  done
  if [[ -n "$first" ]]; then
    trainer_args=(--build-arg "TORCH_INDEX_URL=$first" --build-arg "TORCH_SPEC=$trainer_torch"
      --build-arg "PYPI_INDEX_URL=${rest[*]} https://pypi.org/simple")
    echo "trainer: $trainer_torch from the local index folders (${local_indexes[*]})"
  fi
fi

secret_args=()
[[ -s "$ca" ]] && secret_args=(--secret "id=pip_ca,src=$ca")

: > "$cache_dir/timings.txt"
for name in "${images[@]}"; do
  extra=()
  case "$name" in
    predictor) make_test_model; extra=(--build-arg "MODEL_DIR=$model_dir") ;;
    trainer) if [[ ${#trainer_args[@]} -gt 0 ]]; then extra=("${trainer_args[@]}"); else extra=("${torch_args[@]}"); fi ;;
    ui|mlflow) ;;
    *) echo "unknown image $name (predictor, ui, trainer, mlflow)" >&2; exit 2 ;;
  esac
  start=$(date +%s)
  echo "=== building crackseg-$name:$tag from $base"
  DOCKER_BUILDKIT=1 "$docker" build --progress=plain --network host \
    -f "docker/$name.Dockerfile" -t "crackseg-$name:$tag" \
    --build-arg "BASE_IMAGE=$base" "${extra[@]}" "${secret_args[@]}" . \
    >"$cache_dir/build-$name.log" 2>&1 || { tail -40 "$cache_dir/build-$name.log"; exit 1; }
  echo "crackseg-$name $(( $(date +%s) - start ))s" | tee -a "$cache_dir/timings.txt"
done
