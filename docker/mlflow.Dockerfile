# crackseg-mlflow: the MLflow tracking server and model registry (SQLite on a volume, or an external database).
# Build from the repository root:
#   docker build -f docker/mlflow.Dockerfile -t crackseg-mlflow .
# Build arguments: BASE_IMAGE (any Debian-based Python 3.11 image), MLFLOW_SPEC.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
# mlflow 3.18 does not install (its skinny package is missing); the project pins 3.17.
ARG MLFLOW_SPEC="mlflow>=3.17,<3.18"
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/venv
# psycopg2-binary and PyMySQL: drivers for an external backend store (mlflow.backendStore.existingSecret).
RUN --mount=type=secret,id=pip_ca --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi \
 && /opt/venv/bin/pip install "$MLFLOW_SPEC" psycopg2-binary pymysql \
 && /opt/venv/bin/pip uninstall --yes pip setuptools wheel \
 && find /opt/venv -name __pycache__ -prune -exec rm -rf {} +

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="crackseg-mlflow" \
      org.opencontainers.image.description="MLflow tracking server and registry for crackseg" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --gid 10001 crackseg \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin crackseg \
 && mkdir -p /mlflow && chown 10001:10001 /mlflow
COPY --from=build /opt/venv /opt/venv
# The job runner multiplies the server's memory by five and is not used here.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
USER 10001:10001
WORKDIR /tmp
VOLUME ["/mlflow"]
EXPOSE 5000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/health', timeout=4)"]
ENTRYPOINT ["mlflow"]
CMD ["server", "--backend-store-uri", "sqlite:////mlflow/mlflow.db", "--artifacts-destination", "/mlflow/artifacts", \
     "--serve-artifacts", "--host", "0.0.0.0", "--port", "5000", "--workers", "1"]
