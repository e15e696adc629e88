#!/usr/bin/env bash
# Runs every check and test: formatting, clippy, unit tests, the end-to-end tests
# against the local AWS (DynamoDB Local for the tables and their streams; two moto
# servers for KMS, STS, IAM and S3: one open, one enforcing IAM), the user's-day suite
# against a stack started exactly as the README starts it (scripts/dev.sh), then the
# template checks, the setup page in headless Chromium (scripts/browser-test.sh), and the
# sam local stage. Installs what it needs and starts what it needs.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"

DAY_PGID=""
stop_all() {
  # The user's-day stack runs in its own process group: end all of it (dev.sh, its
  # local API, DynamoDB Local and moto), then what this script started itself.
  if [ -n "$DAY_PGID" ]; then
    kill -TERM -- "-$DAY_PGID" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 -- "-$DAY_PGID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL -- "-$DAY_PGID" 2>/dev/null || true
    DAY_PGID=""
  fi
  stop_started
}
trap stop_all EXIT INT TERM

ensure_python_tools
ensure_dynamodb_local
mkdir -p "$REPO/.local"
ddb_port="$(free_port)"
open_port="$(free_port)"
auth_port="$(free_port)"
start_dynamodb_local "$ddb_port" "$REPO/.local/dynamodb-local-test.log"
start_moto "$open_port" "$REPO/.local/moto-test.log"
# IAM is enforced from the first request; the tests open a short window themselves
# (POST /moto-api/reset-auth) to create their admin user.
start_moto "$auth_port" "$REPO/.local/moto-test-auth.log" 0
export IK_DYNAMODB_URL="http://127.0.0.1:$ddb_port"
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

# The user's day: one long-lived stack started the README's way, its own free ports.
day_api="$(free_port)"; day_moto="$(free_port)"; day_ddb="$(free_port)"
day_log="$REPO/.local/user-day-stack.log"
log "user's day: starting the stack with bash scripts/dev.sh (log: $day_log)"
LOCAL_API_PORT="$day_api" MOTO_PORT="$day_moto" DYNAMODB_PORT="$day_ddb" \
  setsid bash scripts/dev.sh >"$day_log" 2>&1 </dev/null &
DAY_PGID=$!
for _ in $(seq 1 1800); do
  if curl -fsS -o /dev/null "http://127.0.0.1:$day_api/integrations/aws" \
       -H "Authorization: Bearer local-dev-token" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$DAY_PGID" 2>/dev/null; then
    log "dev.sh ended before the API answered; its log:"; cat "$day_log" >&2; exit 1
  fi
  sleep 0.5
done
curl -fsS -o /dev/null "http://127.0.0.1:$day_api/integrations/aws" \
  -H "Authorization: Bearer local-dev-token" \
  || { log "the stack did not answer within 15 minutes; its log:"; cat "$day_log" >&2; exit 1; }
log "user's day: the stack answers on 127.0.0.1:$day_api; running tests/tests/user_day.rs"
day_start=$SECONDS
# The same cargo selection as the test run above, so nothing is rebuilt: `-p local-harness`
# alone would unify other features and compile the workspace a third time. Only the
# ignored user's-day test matches the filter; every other binary runs nothing.
set +e
IK_STACK_URL="http://127.0.0.1:$day_api" IK_STACK_TOKEN="local-dev-token" \
  IK_STACK_MOTO_URL="http://127.0.0.1:$day_moto" IK_STACK_DYNAMODB_URL="http://127.0.0.1:$day_ddb" \
  cargo test --workspace --all-targets -- --ignored --exact a_users_day_on_one_long_lived_stack \
    --test-threads=1 --nocapture 2>&1 \
  | tee "$REPO/.local/user-day.log"
status=${PIPESTATUS[0]}
set -e
log "user's day: $((SECONDS - day_start)) s"
if [ "$status" -ne 0 ]; then
  log "the user's day failed; the stack's log (last 80 lines):"; tail -n 80 "$day_log" >&2
  exit "$status"
fi
# Generated requests on the same long-lived stack, after the day's traffic.
st_start=$SECONDS
bash scripts/schemathesis.sh "http://127.0.0.1:$day_api" local-dev-token
log "schemathesis: $((SECONDS - st_start)) s"
stop_all

log "OpenAPI: spec and every recorded response"
"$VENV/bin/python" scripts/check_openapi.py "$IK_RESPONSES"
log "template checks (cfn-lint, sam validate --lint, route drift)"
LOCAL_ROUTES_CMD="$REPO/target/debug/local-api --routes" scripts/check-template.sh

# The setup page in headless Chromium, against a stack of its own whose moto enforces IAM.
browser_start=$SECONDS
set +e
bash scripts/browser-test.sh 2>&1 | tee "$REPO/.local/browser-stage.log"
status=${PIPESTATUS[0]}
set -e
log "browser tests stage: $((SECONDS - browser_start)) s"
[ "$status" -eq 0 ] || exit "$status"

# The real binaries under a Lambda runtime: sam build, sam local invoke for every event,
# and the user's day again through sam local start-lambda (SKIP_SAM_LOCAL=1 skips it).
if [ "${SKIP_SAM_LOCAL:-0}" = 1 ]; then
  log "sam local: skipped (SKIP_SAM_LOCAL=1)"
  : >"$REPO/.local/sam-user-day.log"
else
  sam_start=$SECONDS
  bash scripts/sam-local.sh test
  log "sam local stage: $((SECONDS - sam_start)) s"
fi
log "all checks passed"
# One closing line for every test run above (the cargo suites, both user's days, and the
# browser tests' own closing line).
awk '/^test result:/ { p += $4; f += $6 }
     /^browser tests: [0-9]+ passed, [0-9]+ failed$/ { p += $3; f += $5 }
     END { printf "tests: %d passed, %d failed\n", p, f }' \
  "$REPO/.local/cargo-test.log" "$REPO/.local/user-day.log" "$REPO/.local/sam-user-day.log" \
  "$REPO/.local/browser-stage.log"
