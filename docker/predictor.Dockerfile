# crackseg-predictor: the lean predictor (`crackseg serve` on ONNX Runtime; no PyTorch) with the starter model.
# Build from the repository root:
#   docker build -f docker/predictor.Dockerfile -t crackseg-predictor .
# Build arguments: BASE_IMAGE (any Debian-based Python 3.11 image), PYPI_INDEX_URL, MODEL_DIR (a model folder
# with config.json and model.onnx, copied to /opt/crackseg/models/default).
# The image installs crackseg[serve] only; CRACKSEG_RUNTIME=torch needs crackseg[train] and a bigger image.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/venv
WORKDIR /src
ARG PYPI_INDEX_URL=https://pypi.org/simple
# The dependencies, from pyproject.toml alone: this layer survives code changes.
# The optional pip_ca secret is a CA bundle for networks that intercept TLS; it never lands in a layer.
COPY docker/requirements.py pyproject.toml ./
RUN --mount=type=secret,id=pip_ca --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi \
 && python3 requirements.py pyproject.toml serve > /tmp/requirements.txt \
 && /opt/venv/bin/pip install --index-url "$PYPI_INDEX_URL" --requirement /tmp/requirements.txt \
 && if /opt/venv/bin/python -c "import torch" 2>/dev/null; then echo "torch must not be in the serve image" >&2; exit 1; fi
COPY README.md ./
COPY ml ./ml
COPY services ./services
COPY docker/prune-venv.sh docker/predictor_smoke.py ./
RUN --mount=type=secret,id=pip_ca --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi \
 && /opt/venv/bin/pip install --no-deps --no-compile . \
 && /opt/venv/bin/pip uninstall --yes pip setuptools wheel \
 && find /opt/venv -name __pycache__ -prune -exec rm -rf {} + \
 && sh prune-venv.sh /opt/venv
# The model is copied here, not in the final stage, to make it world-readable whatever its modes on the host
# (checkpoints are written 0600): the container runs as another user than the one that built it.
ARG MODEL_DIR=models/default
COPY ${MODEL_DIR} /model
RUN chmod -R a+rX,go-w /model
# Serve a real photo through every API on the pruned venv (the build fails if serving misses anything), with
# bytecode writing on: the root filesystem is read-only at run time, and this compiles exactly the modules that
# serving imports (compiling all of site-packages would add 100+ MB of .pyc no request reads).
RUN cd /tmp && PYTHONDONTWRITEBYTECODE= OMP_WAIT_POLICY=PASSIVE /opt/venv/bin/python /src/predictor_smoke.py /model \
      "$(echo /opt/venv/lib/python3*/site-packages)/services/ui/samples/concrete_single_crack.jpg" \
 && rm -rf /tmp/smoke-feedback

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="crackseg-predictor" \
      org.opencontainers.image.description="Crack segmentation predictor (KServe model server)" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --gid 10001 crackseg \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin crackseg
COPY --from=build /opt/venv /opt/venv
COPY --from=build /model /opt/crackseg/models/default
# HOME and every cache point at /tmp: the root filesystem is read-only in Kubernetes.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    OMP_WAIT_POLICY=PASSIVE \
    CRACKSEG_MODEL_SOURCE=/opt/crackseg/models/default \
    CRACKSEG_RUNTIME=onnx \
    CRACKSEG_MODEL_CACHE_DIR=/tmp/model-cache \
    CRACKSEG_FEEDBACK_DIR=/data/feedback \
    CRACKSEG_MODELS_DIR=/data/models
USER 10001:10001
WORKDIR /tmp
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/v2/health/ready', timeout=4)"]
ENTRYPOINT ["crackseg"]
CMD ["serve", "--model", "/opt/crackseg/models/default", "--port", "8000"]
