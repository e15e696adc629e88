#!/usr/bin/env bash
# Cold-start and memory benchmark of the four Lambda binaries (release build, this
# machine's architecture) against the local AWS (DynamoDB Local + moto): init time, first
# and warm invocation, peak RSS.
#   bash scripts/bench.sh [runs] [warm-invocations]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"
trap stop_started EXIT INT TERM
ensure_python_tools moto
ensure_dynamodb_local
mkdir -p "$REPO/.local"
port="$(free_port)"
ddb_port="$(free_port)"
start_moto "$port" "$REPO/.local/moto-bench.log"
start_dynamodb_local "$ddb_port" "$REPO/.local/dynamodb-local-bench.log"
log "building release binaries"
cargo build -q --release -p create-integration -p manage-integrations -p test-connection -p provision-bucket
"$VENV/bin/python" scripts/bench.py "http://127.0.0.1:$port" "http://127.0.0.1:$ddb_port" "$REPO/target/release" "${1:-10}" "${2:-20}"
