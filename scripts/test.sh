#!/usr/bin/env bash
# Runs every check and test (the README's test command; .ci/run runs exactly this):
# formatting; one workspace build with clippy's lints in it; the unit and end-to-end tests
# against the local AWS (DynamoDB Local for the tables and their streams; two moto servers
# for KMS, STS, IAM and S3: one open, one enforcing IAM); the user's-day suite and
# schemathesis against one stack started exactly as the README starts it (scripts/dev.sh);
# the OpenAPI contract over every recorded response; the template checks; the setup page
# in headless browsers (scripts/browser-test.sh); and the real binaries under a Lambda
# runtime (scripts/sam-local.sh). Installs what it needs and starts what it needs: the
# installs (Python tools, DynamoDB Local, browsers, Docker and its base image) run in the
# background while cargo compiles.
#
# Ends with a table of its stages (time, checks passed and failed) and one closing line
# `tests: N passed, N failed` counting every stage's checks, also when a stage fails.
# SKIP_SAM_LOCAL=1 skips the sam stage and MAX_EXAMPLES sets schemathesis' examples per
# operation, for local runs only: with CI=true neither applies, and a skipped stage is
# always named in the table.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"
mkdir -p "$REPO/.local"

if [ "${CI:-}" = true ]; then
  unset SKIP_SAM_LOCAL
  export MAX_EXAMPLES=100
fi

# ---- bookkeeping: one row per stage, totals for the closing line ---------------------
ROWS=() PASSED=0 FAILED=0 RUN_START=$SECONDS SUMMARY_DONE=""
add_row() { # NAME SECONDS PASSED FAILED RESULT
  ROWS+=("$(printf '%-44s %5s s %7s %7s  %s' "$1" "$2" "$3" "$4" "$5")")
  PASSED=$((PASSED + $3)); FAILED=$((FAILED + $4))
}
summary() {
  [ -z "$SUMMARY_DONE" ] || return 0
  SUMMARY_DONE=1
  printf '\n%-44s %7s %7s %7s  %s\n' "stage" "time" "passed" "failed" "result"
  local r
  for r in "${ROWS[@]}"; do printf '%s\n' "$r"; done
  printf '%-44s %5s s\n' "all stages" "$((SECONDS - RUN_START))"
  echo "tests: $PASSED passed, $FAILED failed"
}

# Counters: COUNTER LOG STATUS prints "PASSED FAILED" for a stage's log. A stage that
# failed without a failure in its own count still counts one failure.
at_least_one_failure() { # PASSED FAILED STATUS
  if [ "$3" -ne 0 ] && [ "$2" -eq 0 ]; then echo "$1 1"; else echo "$1 $2"; fi
}
count_one() { if [ "$2" -eq 0 ]; then echo "1 0"; else echo "0 1"; fi; }
count_cargo() {
  at_least_one_failure $(test_result_counts "$1") "$2"
}
count_checks() {
  at_least_one_failure "$(grep -c '^check ok: ' "$1" || true)" "$(grep -c '^check FAILED: ' "$1" || true)" "$2"
}
count_browser() {
  at_least_one_failure $(sed -n 's/^browser tests: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$1" | tail -1 | grep . || echo "0 0") "$2"
}
count_schemathesis() {
  # schemathesis' summary: "Test cases:" then "  N generated, N passed[, N failed]...".
  local line p f
  line="$(grep -A1 '^Test cases:' "$1" | tail -1)"
  p="$(sed -n 's/.* \([0-9][0-9]*\) passed.*/\1/p' <<<"$line")"
  f="$(sed -n 's/.* \([0-9][0-9]*\) failed.*/\1/p' <<<"$line")"
  at_least_one_failure "${p:-0}" "${f:-0}" "$2"
}
count_sam() {
  # Every checked `sam local invoke`, the user's day through start-lambda, and the
  # OpenAPI check of the real binaries' responses.
  local inv day_p day_f oa
  inv="$(sed -n 's/^sam local invoke: \([0-9]*\) invocations.*/\1/p' "$1" | tail -1)"
  read -r day_p day_f < <(test_result_counts "$1")
  oa="$(grep -c '^openapi: spec valid' "$1" || true)"
  at_least_one_failure "$(( ${inv:-0} + day_p + oa ))" "$day_f" "$2"
}

# stage NAME COUNTER CMD...: runs CMD (output on the terminal and in .local/stage-*.log),
# times it and counts its checks. A failed stage ends the run, after the summary.
stage() {
  local name="$1" counter="$2" start=$SECONDS status=0 out p f
  shift 2
  out="$REPO/.local/stage-$(tr -cs 'a-zA-Z0-9' '-' <<<"$name" | sed 's/-$//').log"
  log "== $name"
  set +e
  "$@" 2>&1 | tee "$out"
  status=${PIPESTATUS[0]}
  set -e
  read -r p f < <("$counter" "$out" "$status")
  add_row "$name" "$((SECONDS - start))" "$p" "$f" \
    "$([ "$status" -eq 0 ] && echo ok || echo "FAILED (exit $status; log: ${out#"$REPO"/})")"
  [ "$status" -eq 0 ] || exit "$status"
}
skipped() { add_row "$1" 0 0 0 "skipped: $2"; }

# ---- what runs in the background -----------------------------------------------------
DAY_PGID="" PREP_PID=""
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
  [ -z "$PREP_PID" ] || kill -- "-$PREP_PID" 2>/dev/null || true
  stop_started
}
on_exit() {
  local status=$?
  stop_all
  summary
  exit "$status"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# Installs (network and disk more than CPU) overlap the compile. Their own process group,
# so that a failed run stops them too.
prepare() {
  ensure_python_tools all
  ensure_dynamodb_local
  ensure_browser_tools
  ensure_oidc_provider
  ensure_sts_trust_proxy
  bash scripts/client-codegen.sh --install
  if [ "${SKIP_SAM_LOCAL:-0}" != 1 ]; then
    ensure_docker
    ensure_lambda_base_image
  fi
}
prep_log="$REPO/.local/prepare.log"
prep_start=$SECONDS
rm -f "$REPO/.local/prepare.seconds"
setsid bash -c "source scripts/lib.sh; $(declare -f prepare); prepare && echo \$SECONDS >.local/prepare.seconds" \
  >"$prep_log" 2>&1 </dev/null &
PREP_PID=$!
log "installing the tools in the background (log: .local/prepare.log)"

# ---- the build: once, with clippy in it -----------------------------------------------
stage "cargo fmt --check" count_one cargo fmt --all -- --check
build() {
  # Every test target and every binary (the functions' for the sam stage, the local API),
  # in one feature set; clippy-driver lints every workspace target as it compiles.
  cargo test --workspace --all-targets --no-run && cargo build --workspace --bins
}
stage "build + clippy (-D warnings), all targets" count_one build

prep_status=0
wait "$PREP_PID" || prep_status=$?
PREP_PID=""
if [ "$prep_status" -ne 0 ]; then
  add_row "installs (background)" "$((SECONDS - prep_start))" 0 1 "FAILED (log: .local/prepare.log)"
  tail -40 "$prep_log" >&2
  exit 1
fi
add_row "installs (in the background, during the build)" "$(cat "$REPO/.local/prepare.seconds")" 0 0 ok

# ---- unit and end-to-end tests -----------------------------------------------------------
stage "template checks" count_checks env LOCAL_ROUTES_CMD="$REPO/target/debug/local-api --routes" \
  LOCAL_PERMISSIONS_CMD="$REPO/target/debug/local-api --permissions" bash scripts/check-template.sh

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
# The end-to-end tests and the user's day record every response here; the OpenAPI check
# validates them (the sam stage records and checks its own).
export IK_RESPONSES="$REPO/.local/responses.jsonl"
: >"$IK_RESPONSES"
stage "cargo test (unit, property, end to end)" count_cargo cargo test --workspace --all-targets --no-fail-fast
stop_started
PIDS=()

# ---- the user's day: one long-lived stack started the README's way ------------------------
day_api="$(free_port)"; day_moto="$(free_port)"; day_ddb="$(free_port)"; day_oidc="$(free_port)"
day_issuer="http://127.0.0.1:$day_oidc"
day_log="$REPO/.local/user-day-stack.log"
log "user's day: starting the stack with bash scripts/dev.sh (log: $day_log)"
LOCAL_API_PORT="$day_api" MOTO_PORT="$day_moto" DYNAMODB_PORT="$day_ddb" OIDC_PROVIDER_PORT="$day_oidc" \
  setsid bash scripts/dev.sh >"$day_log" 2>&1 </dev/null &
DAY_PGID=$!
wait_for_stack() {
  local token=""
  for _ in $(seq 1 600); do
    # A signed-in developer's request: the provider, the gateway's JWT check and the API.
    [ -n "$token" ] || token="$(oidc_token "$day_issuer" developer 2>/dev/null || true)"
    if [ -n "$token" ] && curl -fsS -o /dev/null "http://127.0.0.1:$day_api/integrations/aws" \
         -H "Authorization: Bearer $token" 2>/dev/null; then
      log "the stack answers on 127.0.0.1:$day_api"; return 0
    fi
    if ! kill -0 "$DAY_PGID" 2>/dev/null; then
      log "dev.sh ended before the API answered; its log:"; cat "$day_log" >&2; return 1
    fi
    sleep 0.5
  done
  log "the stack did not answer within 5 minutes; its log:"; tail -40 "$day_log" >&2
  return 1
}
stage "user's day: dev.sh answers" count_one wait_for_stack
day() {
  IK_STACK_URL="http://127.0.0.1:$day_api" IK_STACK_ISSUER="$day_issuer" \
    IK_STACK_MOTO_URL="http://127.0.0.1:$day_moto" IK_STACK_DYNAMODB_URL="http://127.0.0.1:$day_ddb" \
    users_day "$REPO/.local/user-day.log" \
    || { log "the stack's log (last 80 lines):"; tail -n 80 "$day_log" >&2; return 1; }
}
stage "user's day on the dev.sh stack" count_cargo day
# Generated requests on the same long-lived stack, after the day's traffic.
stage "schemathesis on the same stack" count_schemathesis \
  bash scripts/schemathesis.sh "http://127.0.0.1:$day_api" "$(oidc_token "$day_issuer" developer)"
# Clients generated from the spec (Python, TypeScript) drive the same stack.
stage "generated clients (Python, TypeScript) on the same stack" count_checks \
  bash scripts/client-codegen.sh "http://127.0.0.1:$day_api" "$(oidc_token "$day_issuer" developer)"
stop_all

stage "OpenAPI: spec and every recorded response" count_one \
  "$VENV/bin/python" scripts/check_openapi.py "$IK_RESPONSES"

# ---- STS says no where AWS says no: the trust-policy proxy in front of moto ---------------
stage "STS trust policies (proxy in front of an IAM-enforcing moto)" count_checks bash scripts/trust-proxy-test.sh

# ---- the setup page in real browsers, against a stack whose moto enforces IAM -------------
stage "browser tests (Chromium, Firefox)" count_browser bash scripts/browser-test.sh

# ---- the real binaries under a Lambda runtime ---------------------------------------------
if [ "${SKIP_SAM_LOCAL:-0}" = 1 ]; then
  skipped "sam local" "SKIP_SAM_LOCAL=1"
else
  stage "sam local: every event, the user's day" count_sam bash scripts/sam-local.sh test
fi
log "all checks passed"
