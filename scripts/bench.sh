#!/usr/bin/env bash
# Runtime benchmark of the four Lambda binaries (issue 19), against the local AWS
# (DynamoDB Local + moto, started here and stopped on exit): cold start next to a
# hello-world lambda_runtime floor and a Python 3 + boto3 peer of create, warm latency
# and CPU per route (reads, update, create, Test Connection with and without a role and
# saved, a provisioning run and a stream batch against an IAM user, role and bucket made
# in moto by scripts/bench_aws.py), peak RSS, AWS requests and rounds per operation.
# Writes its section of BENCHMARKS.md (scripts/bench_runtime.py). About 3 minutes with
# the defaults on 2 cores, plus the build.
#   bash scripts/bench.sh [cold-starts] [warm-invocations]     (defaults 20 and 200)
# scripts/bench.py alone (MOTO_URL DYNAMODB_URL BIN_DIR RUNS WARM) still prints the short
# table, e.g. for binaries of another architecture under qemu.
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
# The whole workspace, as every other script builds it (one feature set, nothing built
# twice): the functions and the floor (tests/src/bin/hello-floor.rs) alike.
log "building release binaries"
cargo build -q --release --workspace --bins
"$VENV/bin/python" scripts/bench_runtime.py "http://127.0.0.1:$port" "http://127.0.0.1:$ddb_port" \
  "$REPO/target/release" "${1:-20}" "${2:-200}"
log "wrote the bench-runtime section of BENCHMARKS.md"
