#!/usr/bin/env bash
# Runs the whole system locally: moto server as the local AWS on 127.0.0.1:4566, and
# every route of the HTTP API on http://127.0.0.1:3000 through the real handlers.
# Ports: MOTO_PORT, LOCAL_API_PORT. Token: LOCAL_API_TOKEN (default local-dev-token).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"
trap stop_started EXIT INT TERM

ensure_python_tools moto
MOTO_PORT="${MOTO_PORT:-4566}"
mkdir -p "$REPO/.local"
start_moto "$MOTO_PORT" "$REPO/.local/moto.log"

export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT"
export AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-local}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-local}"
export RUST_LOG="${RUST_LOG:-info}"
log "building the local API (first build takes a few minutes)"
cargo build -q -p local-stack --bin local-api
"$REPO/target/debug/local-api"
