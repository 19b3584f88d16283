#!/bin/sh
# Entry point of the Shulian image.
# - Every replica gets its own worker id: `docker compose up --scale worker=N` starts N identical
#   containers, and audit records name the worker that took each decision, so a replica without
#   SHULIAN_WORKER_ID uses its hostname (the container id under Docker).
# - A chain worker needs the shared HMAC key: without it each worker would invent its own and
#   the same record key would get different pseudonyms on different workers.
set -eu
if [ -z "${SHULIAN_WORKER_ID:-}" ]; then
    SHULIAN_WORKER_ID="$(hostname)"
    export SHULIAN_WORKER_ID
fi
if [ "${1:-}" = "shulian" ] && [ "${2:-}" = "worker" ] && [ -z "${SHULIAN_HMAC_MASTER_KEY:-}" ]; then
    echo "error: SHULIAN_HMAC_MASTER_KEY is not set (deploy/shulian.env); every worker must" \
         "share one key" >&2
    exit 64
fi
exec "$@"
