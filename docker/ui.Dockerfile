# crackseg-ui: the Streamlit UI (`crackseg ui`). No torch and no ML core: it talks to the predictor over HTTP.
# Build from the repository root:
#   docker build -f docker/ui.Dockerfile -t crackseg-ui .
# Build argument: BASE_IMAGE (any Debian-based Python 3.11 image).
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/venv
WORKDIR /src
COPY docker/requirements.py pyproject.toml ./
# The optional pip_ca secret is a CA bundle for networks that intercept TLS; it never lands in a layer.
RUN --mount=type=secret,id=pip_ca --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi \
 && python3 requirements.py pyproject.toml ui > /tmp/requirements.txt \
 && /opt/venv/bin/pip install --requirement /tmp/requirements.txt
COPY README.md ./
COPY ml ./ml
COPY services ./services
RUN --mount=type=secret,id=pip_ca --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi \
 && /opt/venv/bin/pip install --no-deps . \
 && /opt/venv/bin/pip uninstall --yes pip setuptools wheel \
 && find /opt/venv -name __pycache__ -prune -exec rm -rf {} + \
 && if /opt/venv/bin/python -c "import torch" 2>/dev/null; then echo "torch leaked into the UI image" >&2; exit 1; fi

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="crackseg-ui" \
      org.opencontainers.image.description="Crack segmentation Streamlit UI" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --gid 10001 crackseg \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin crackseg
COPY --from=build /opt/venv /opt/venv
# HOME points at /tmp: Streamlit writes ~/.streamlit and the root filesystem is read-only in Kubernetes.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false \
    CRACKSEG_PREDICTOR_URL=http://127.0.0.1:8000
USER 10001:10001
WORKDIR /tmp
EXPOSE 8500
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8500/_stcore/health', timeout=4)"]
ENTRYPOINT ["crackseg"]
CMD ["ui", "--port", "8500"]
