# syntax=docker/dockerfile:1
#
# The `audit-stream` command (receiver, worker, topics) on python:3.11-slim.
#
#   docker build -t audit-stream .
#   docker run --rm audit-stream --help
#   docker run --rm -p 4317:4317 -p 4318:4318 -e AUDIT_STREAM_KAFKA_BOOTSTRAP=kafka:9092 \
#       audit-stream receiver
#
# Two stages: the first builds a virtualenv, the second copies only that virtualenv onto a fresh
# slim image, so pip's build backend and the wheel cache never reach the runtime image.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
# A C compiler for the compiled build of the per-record modules (setup.py, mypyc).
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/audit-stream
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY audit_stream ./audit_stream
COPY agents ./agents
# The project is built into a wheel with its per-record modules compiled by mypyc. mypyc type
# checks the whole package first, so the build tools live in their own virtualenv next to the
# project's dependencies (a pure install of the project), and never reach the runtime image.
# The dependencies of the runtime virtualenv come from binary wheels only. All of them publish
# manylinux wheels for CPython 3.11 (x86_64 and aarch64): a missing wheel should fail the build
# here rather than quietly require a compiler.
RUN python -m venv /opt/build \
 && /opt/build/bin/pip install "setuptools>=77" wheel "mypy>=1.13" types-PyYAML \
 && AUDIT_STREAM_MYPYC=0 /opt/build/bin/pip install . \
 && AUDIT_STREAM_MYPYC=1 /opt/build/bin/pip wheel --no-build-isolation --no-deps --wheel-dir /wheels . \
 && /opt/audit-stream/bin/pip install --only-binary=:all: /wheels/*.whl \
 && /opt/audit-stream/bin/python -c "import audit_stream.cli, agents.app; from audit_stream import native; print(native.describe()); assert native.compiled_modules()" \
 && /opt/audit-stream/bin/pip uninstall --yes --quiet pip setuptools


FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="audit-stream" \
      org.opencontainers.image.description="Service-mesh telemetry (OTLP) in, an access-audit trail on Kafka out." \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed numeric uid lets Kubernetes' runAsNonRoot verify the user without a passwd lookup.
RUN groupadd --system --gid 10001 audit \
 && useradd --system --uid 10001 --gid audit --home-dir /var/lib/audit-stream \
        --shell /usr/sbin/nologin audit \
 && install -d -o audit -g audit -m 0750 /var/lib/audit-stream /var/lib/audit-stream/worker

COPY --from=build /opt/audit-stream /opt/audit-stream

# Inside a container the receiver must listen on all interfaces to be reachable at all; the
# command's own defaults (127.0.0.1) suit a process on a workstation instead.
ENV PATH=/opt/audit-stream/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    AUDIT_STREAM_GRPC_LISTEN=0.0.0.0:4317 \
    AUDIT_STREAM_HTTP_LISTEN=0.0.0.0:4318 \
    AUDIT_STREAM_DATA_DIR=/var/lib/audit-stream/worker

USER 10001:10001
WORKDIR /var/lib/audit-stream
# 4317 OTLP/gRPC, 4318 OTLP/HTTP + /healthz + /metrics (receiver); 6066 /audit/metrics (worker)
EXPOSE 4317 4318 6066
ENTRYPOINT ["audit-stream"]
CMD ["--help"]
