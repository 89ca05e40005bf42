# crackseg-trainer: the retrain trigger (`crackseg retrain trigger`) and the retraining run (`crackseg retrain run`).
# Build from the repository root:
#   docker build -f docker/trainer.Dockerfile -t crackseg-trainer .
# Build arguments: BASE_IMAGE (any Debian-based Python 3.11 image), TORCH_INDEX_URL and TORCH_SPEC (CPU-only
# wheels by default).
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/venv
WORKDIR /src
# Declared here, after the steps that do not use them: a build argument is part of the cache key of every
# RUN that follows its declaration.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_SPEC="torch<=2.14.1 torchvision<=0.29.1"
# Where torch's own dependencies (filelock, sympy, …) come from when TORCH_INDEX_URL holds torch alone; several
# URLs separated by spaces are searched in order (scripts/images-build.sh passes local index folders first).
ARG PYPI_INDEX_URL=https://pypi.org/simple
# Torch first, from its own (CPU-only) index, then pinned so the PyPI resolution cannot swap it for a CUDA build.
# The optional pip_ca secret is a CA bundle for networks that intercept TLS; it never lands in a layer.
RUN --mount=type=secret,id=pip_ca --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi \
 && extra="" && for url in $PYPI_INDEX_URL; do extra="$extra --extra-index-url $url"; done \
 && /opt/venv/bin/pip install --index-url "$TORCH_INDEX_URL" $extra $TORCH_SPEC \
 && /opt/venv/bin/pip freeze | grep -iE '^torch(vision)?==' > /opt/torch-constraint.txt
# The rest of the dependencies, from pyproject.toml alone: this layer survives code changes.
COPY docker/requirements.py pyproject.toml ./
RUN --mount=type=secret,id=pip_ca --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi \
 && python3 requirements.py pyproject.toml ml k8s > /tmp/requirements.txt \
 && /opt/venv/bin/pip install --constraint /opt/torch-constraint.txt --requirement /tmp/requirements.txt
COPY README.md ./
COPY ml ./ml
COPY services ./services
RUN --mount=type=secret,id=pip_ca --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi \
 && /opt/venv/bin/pip install --no-deps . \
 && /opt/venv/bin/pip uninstall --yes pip setuptools wheel \
 && find /opt/venv -name __pycache__ -prune -exec rm -rf {} +

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="crackseg-trainer" \
      org.opencontainers.image.description="Crack segmentation retraining: trigger and training run" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --gid 10001 crackseg \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin crackseg
COPY --from=build /opt/venv /opt/venv
# HOME and every cache point at /tmp: the root filesystem is read-only in Kubernetes.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    OMP_WAIT_POLICY=PASSIVE \
    CRACKSEG_FEEDBACK_DIR=/data/feedback \
    CRACKSEG_MODELS_DIR=/data/models \
    CRACKSEG_DVC_REMOTE=/data/dvc-storage \
    CRACKSEG_JOB_TEMPLATE=/etc/crackseg/job-template.yaml
USER 10001:10001
WORKDIR /tmp
# A batch container: Kubernetes judges it by its exit code.
HEALTHCHECK NONE
ENTRYPOINT ["crackseg"]
CMD ["retrain", "trigger", "--dry-run"]
