# syntax=docker/dockerfile:1
# clfserve server image; the model is not in it: it comes from the MLflow registry at start
# (CLFSERVE_MODEL_URI=models:/NAME@ALIAS, MLFLOW_TRACKING_URI=...) or from a mounted folder
# (CLFSERVE_MODEL_URI=/models/NAME).
#
#   docker build -t clfserve:0.1.0-cpu .                          # onnxruntime, CPU
#   docker build -t clfserve:0.1.0-gpu --build-arg ORT=gpu .      # onnxruntime-gpu on CUDA 13
#
# ORT picks both the base image (below) and the extra installed (.[cpu] or .[gpu]).
ARG ORT=cpu
ARG CPU_BASE=python:3.11-slim-bookworm
ARG GPU_BASE=nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04

FROM ${CPU_BASE} AS base-cpu
ENV VENV=/opt/clfserve
RUN python -m venv "$VENV"

FROM ${GPU_BASE} AS base-gpu
ENV VENV=/opt/clfserve
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv "$VENV"

# hadolint ignore=DL3006
FROM base-${ORT} AS build
ARG ORT
WORKDIR /src
COPY pyproject.toml README.md ./
COPY runtime runtime
COPY evaluation evaluation
COPY registry registry
COPY export export
COPY service service
COPY cli cli
COPY client client
RUN "$VENV/bin/pip" install --no-cache-dir --upgrade pip \
    && "$VENV/bin/pip" install --no-cache-dir ".[${ORT},service]"

# hadolint ignore=DL3006
FROM base-${ORT}
ARG ORT
LABEL org.opencontainers.image.title="clfserve" \
      org.opencontainers.image.description="Text classification with ONNX models over HTTP (${ORT})"
COPY --from=build /opt/clfserve /opt/clfserve
RUN groupadd --system --gid 10001 clfserve \
    && useradd --system --uid 10001 --gid clfserve --home-dir /var/lib/clfserve \
       --create-home --shell /usr/sbin/nologin clfserve
ENV PATH="/opt/clfserve/bin:$PATH" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/var/lib/clfserve \
    CLFSERVE_HOME=/var/lib/clfserve \
    CLFSERVE_HOST=0.0.0.0 \
    CLFSERVE_PORT=5000
USER 10001:10001
WORKDIR /var/lib/clfserve
VOLUME ["/var/lib/clfserve"]
EXPOSE 5000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s \
    CMD ["python3", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:5000/health/live', timeout=2)"]
ENTRYPOINT ["clfserve", "serve"]
