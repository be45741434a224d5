# syntax=docker/dockerfile:1
# pynenc-sidecar: the gRPC server as a small image that runs as a non-root user.
# Build it from the repository root:   docker build -t pynenc-sidecar .
# Configure it by environment (PYNENC_SIDECAR_*; `docker run --rm pynenc-sidecar serve --help`).
# With no PYNENC_SIDECAR_REDIS_URL, state lives in the embedded SQLite file
# /data/pynenc-sidecar.db, on the /data volume. See docs/deployment.md.

ARG PYTHON_VERSION=3.11

# --- build: the server, its stubs and their dependencies, in a virtualenv ----------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/pynenc-sidecar
WORKDIR /src
# Only what the two distributions are built from (.dockerignore keeps everything else out):
# the server (pyproject.toml, service/) and the stubs it imports (stubs/python). Not the SDK.
COPY pyproject.toml README.md LICENSE ./
COPY service ./service
COPY stubs/python ./stubs/python
RUN /opt/pynenc-sidecar/bin/pip install --no-cache-dir ./stubs/python .

# --- runtime: the virtualenv on the same slim Python, and nothing else --------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm
LABEL org.opencontainers.image.title="pynenc-sidecar" \
      org.opencontainers.image.description="gRPC sidecar giving workers in any language the Pynenc workflow context" \
      org.opencontainers.image.licenses="MIT"
ARG UID=10001
RUN groupadd --gid "${UID}" sidecar \
    && useradd --uid "${UID}" --gid sidecar --home-dir /data --no-create-home \
               --shell /usr/sbin/nologin sidecar \
    && mkdir -p /data \
    && chown sidecar:sidecar /data
COPY --from=build /opt/pynenc-sidecar /opt/pynenc-sidecar
# Listen on every interface of the container (probes and other containers reach it there),
# log JSON lines, and keep the embedded store in the working directory: /data.
ENV PATH=/opt/pynenc-sidecar/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYNENC_SIDECAR_HOST=0.0.0.0 \
    PYNENC_SIDECAR_PORT=50051 \
    PYNENC_SIDECAR_LOG_FORMAT=json
WORKDIR /data
VOLUME ["/data"]
# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER ${UID}:${UID}
EXPOSE 50051
# grpc.health.v1 through the CLI: exit 0 only while the server answers SERVING.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 CMD ["pynenc-sidecar", "health"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["pynenc-sidecar"]
CMD ["serve"]
