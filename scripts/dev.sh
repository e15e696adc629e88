#!/usr/bin/env bash
# Runs the whole system locally: the local AWS (DynamoDB Local for the table and its
# stream on 127.0.0.1:8000, moto server for KMS, STS, IAM and S3 on 127.0.0.1:4566) and
# every route of the HTTP API on http://127.0.0.1:3000 through the real handlers.
# Ports: LOCAL_API_PORT, MOTO_PORT, DYNAMODB_PORT. Token: LOCAL_API_TOKEN (default
# local-dev-token). The local AWS keeps its state in memory only: stopping this script
# loses it, and a restart starts empty.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"
trap stop_started EXIT INT TERM

LOCAL_API_PORT="${LOCAL_API_PORT:-3000}"
MOTO_PORT="${MOTO_PORT:-4566}"
DYNAMODB_PORT="${DYNAMODB_PORT:-8000}"

# Ports first, before anything slow: a taken port fails now, naming what to change.
declare -A seen=()
for var in LOCAL_API_PORT MOTO_PORT DYNAMODB_PORT; do
  port="${!var}"
  if ! [[ "$port" =~ ^[0-9]+$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
    log "$var=$port is not a TCP port"; exit 2
  fi
  if [ -n "${seen[$port]:-}" ]; then
    log "$var and ${seen[$port]} are both $port: give each its own port"; exit 2
  fi
  seen[$port]=$var
  if port_taken "$port"; then
    log "port $port ($var) is already in use (another dev.sh?): stop that, or set $var to a free port, e.g. $var=<port> bash scripts/dev.sh"
    exit 2
  fi
done

mkdir -p "$REPO/.local"
# moto's venv and DynamoDB Local are fetched while cargo compiles (network and disk, little
# CPU); their log is shown if that fails.
setup_log="$REPO/.local/dev-setup.log"
(ensure_python_tools moto && ensure_dynamodb_local) >"$setup_log" 2>&1 &
setup_pid=$!

# No -q: cargo shows its progress. The first build compiles about 300 crates (the AWS SDK
# most of it); later builds take seconds.
if [ -x "$REPO/target/debug/local-api" ]; then
  log "building the local API (cargo; only what changed is rebuilt)"
else
  log "building the local API for the first time: about 2.5 minutes on 2 cores (cargo's progress follows); later runs take seconds"
fi
cargo build -p local-harness --bin local-api
if ! wait "$setup_pid"; then
  log "installing moto or DynamoDB Local failed; its log:"; cat "$setup_log" >&2; exit 1
fi

start_dynamodb_local "$DYNAMODB_PORT" "$REPO/.local/dynamodb-local.log"
start_moto "$MOTO_PORT" "$REPO/.local/moto.log"

export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT"
export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$DYNAMODB_PORT"
export AWS_ENDPOINT_URL_DYNAMODB_STREAMS="http://127.0.0.1:$DYNAMODB_PORT"
export AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-local}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-local}"
export RUST_LOG="${RUST_LOG:-info}"
export LOCAL_API_PORT
log "the local AWS keeps its state in memory only: stopping dev.sh loses every integration, key and bucket; a restart starts empty"
# In the background with a wait, so that a TERM to this script (not only Ctrl-C) stops
# the API as well as the local AWS.
"$REPO/target/debug/local-api" &
PIDS+=("$!")
wait "$!"
