#!/usr/bin/env bash
# Runs every check and test: formatting, clippy, unit tests, and the end-to-end tests
# against moto server (two instances: one open, one enforcing IAM), then the template
# checks. Installs what it needs (into the project's venv) and starts what it needs.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"
trap stop_started EXIT INT TERM

ensure_python_tools
mkdir -p "$REPO/.local"
open_port="$(free_port)"
auth_port="$(free_port)"
start_moto "$open_port" "$REPO/.local/moto-test.log"
# IAM is enforced from the first request; the tests open a short window themselves
# (POST /moto-api/reset-auth) to create their admin user.
start_moto "$auth_port" "$REPO/.local/moto-test-auth.log" 0
export IK_MOTO_URL="http://127.0.0.1:$open_port"
export IK_MOTO_AUTH_URL="http://127.0.0.1:$auth_port"
# The end-to-end tests record every response here; the OpenAPI check validates them.
export IK_RESPONSES="$REPO/.local/responses.jsonl"
: > "$IK_RESPONSES"

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy -q --workspace --all-targets -- -D warnings
log "cargo test"
cargo test --workspace --all-targets 2>&1 | tee "$REPO/.local/cargo-test.log"
status=${PIPESTATUS[0]}
[ "$status" -eq 0 ] || exit "$status"
log "OpenAPI: spec and every recorded response"
"$VENV/bin/python" scripts/check_openapi.py "$IK_RESPONSES"
log "template checks (cfn-lint, sam validate --lint, route drift)"
LOCAL_ROUTES_CMD="$REPO/target/debug/local-api --routes" scripts/check-template.sh
log "all checks passed"
