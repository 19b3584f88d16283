# Shulian: one image for every role (registry, init, worker, connectors).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY shulian ./shulian
COPY streams ./streams
COPY connectors ./connectors
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 shulian
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
WORKDIR /app
COPY --chown=shulian:shulian catalog ./catalog
COPY --chown=shulian:shulian schemas ./schemas
COPY --chown=shulian:shulian connectors/examples ./connectors/examples
ENV SHULIAN_CATALOG_DIR=/app/catalog \
    SHULIAN_SCHEMAS_DIR=/app/schemas \
    SHULIAN_LOG_FORMAT=json
USER shulian
ENTRYPOINT ["shulian"]
CMD ["--help"]
