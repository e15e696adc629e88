#!/usr/bin/env bash
# The setup page (/integrations/aws/setup) end to end in real browsers: Debian's headless
# Chromium driven by playwright-core (every test), and Debian's Firefox ESR driven by
# puppeteer-core over WebDriver BiDi (a smoke test), against a local stack of its own on
# free ports: DynamoDB Local + moto, which ENFORCES IAM (real users, keys, a role and its
# trust policy) + the local OpenID provider (scripts/oidc-provider: the tests sign in on
# its login page) + target/debug/local-api, checking that provider's JWTs. Installs what
# it needs (Debian's chromium and firefox-esr; playwright-core, puppeteer-core and
# axe-core from the npm registry into tests/browser/node_modules, as
# tests/browser/package-lock.json pins them), stops what it started, and ends with one
# line `browser tests: N passed, N failed`.
# The role-delegation tests create their users' roles in that moto as its admin (the
# local API's own identity, hence the platform principal): IK_PYTHON runs
# moto_principals.py role with IK_ADMIN_KEY_ID and IK_ADMIN_SECRET against IK_MOTO_URL.
# Screenshots: tests/browser/screenshots/. Logs: .local/browser-*.log.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"
trap stop_started EXIT INT TERM

BROWSER_DIR="$REPO/tests/browser"
started=$SECONDS
mkdir -p "$REPO/.local"

ensure_browser_tools
ensure_python_tools moto
ensure_dynamodb_local
ensure_oidc_provider

log "building the local API (nothing to do after the test build)"
cargo build -q -p local-harness --bin local-api

ddb_port="$(free_port)"; moto_port="$(free_port)"; api_port="$(free_port)"; oidc_port="$(free_port)"
start_dynamodb_local "$ddb_port" "$REPO/.local/browser-dynamodb-local.log"
# IAM enforced from the first request; moto_principals.py opens its own short window.
start_moto "$moto_port" "$REPO/.local/browser-moto.log" 0
principals="$REPO/.local/browser-principals.json"
"$VENV/bin/python" "$BROWSER_DIR/moto_principals.py" "http://127.0.0.1:$moto_port" >"$principals"

# The provider's users: the local ones the tests use, and one whose access tokens live
# 8 s (the page counts a token as ended 5 s early), for the expired-session test.
base="http://127.0.0.1:$api_port"
issuer="http://127.0.0.1:$oidc_port"
users="$REPO/.local/browser-oidc-users.json"
cat >"$users" <<'JSON'
[
  {"username": "developer", "sub": "local-developer", "name": "Local Developer", "password": "local-password", "groups": ["local-team"]},
  {"username": "other-tenant", "sub": "local-other-tenant", "name": "Other Tenant", "password": "local-password", "groups": ["other-team"]},
  {"username": "short-session", "sub": "local-short-session", "name": "Short Session", "password": "local-password", "groups": ["local-team"], "access_token_ttl": 8}
]
JSON
OIDC_REDIRECT_URIS="$base/integrations/aws/setup" OIDC_USERS_FILE="$users" \
  start_oidc_provider "$oidc_port" "$REPO/.local/browser-oidc-provider.log"
# The tests' own API calls (creating, listing) carry these users' tokens.
token="$(oidc_token "$issuer" developer)"
token_other="$(oidc_token "$issuer" other-tenant)"

admin_id="$("$VENV/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["admin"]["id"])' "$principals")"
admin_secret="$("$VENV/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["admin"]["secret"])' "$principals")"
api_log="$REPO/.local/browser-local-api.log"
# The service itself signs with the moto admin's keys (IAM is enforced for it too).
AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port" \
  AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$ddb_port" \
  AWS_ENDPOINT_URL_DYNAMODB_STREAMS="http://127.0.0.1:$ddb_port" \
  AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID="$admin_id" AWS_SECRET_ACCESS_KEY="$admin_secret" \
  LOCAL_API_PORT="$api_port" RUST_LOG="${RUST_LOG:-info}" \
  LOCAL_JWT_ISSUER="$issuer" LOCAL_JWT_AUDIENCE="$OIDC_AUDIENCE" GROUPS_CLAIM=groups \
  SETUP_PAGE_OIDC_ISSUER="$issuer" SETUP_PAGE_OIDC_CLIENT_ID="$OIDC_PAGE_CLIENT" \
  SETUP_PAGE_OIDC_SCOPES="$OIDC_PAGE_SCOPES" SETUP_PAGE_OIDC_RESOURCE="$OIDC_AUDIENCE" \
  "${CARGO_TARGET_DIR:-$REPO/target}/debug/local-api" >"$api_log" 2>&1 &
api_pid=$!
PIDS+=("$api_pid")
for _ in $(seq 1 300); do
  curl -fsS -o /dev/null "$base/integrations/aws/setup" 2>/dev/null && break
  kill -0 "$api_pid" 2>/dev/null || { log "local-api ended; its log:"; cat "$api_log" >&2; exit 1; }
  sleep 0.2
done
curl -fsS -o /dev/null "$base/integrations/aws/setup" \
  || { log "local-api did not answer; its log:"; tail -40 "$api_log" >&2; exit 1; }
log "stack ready (API $base, OpenID provider $issuer, moto enforcing IAM on $moto_port); running the browser tests in $CHROMIUM and $FIREFOX"

out="$REPO/.local/browser-test.log"
set +e
(cd "$BROWSER_DIR" && IK_BASE_URL="$base" IK_ISSUER="$issuer" IK_TOKEN="$token" \
  IK_TOKEN_OTHER="$token_other" IK_PRINCIPALS="$principals" \
  IK_PYTHON="$VENV/bin/python" IK_MOTO_URL="http://127.0.0.1:$moto_port" \
  IK_ADMIN_KEY_ID="$admin_id" IK_ADMIN_SECRET="$admin_secret" IK_API_PID="$api_pid" \
  CHROMIUM="$CHROMIUM" FIREFOX="$FIREFOX" timeout 900 node --test --test-reporter=spec \
  setup-page.test.mjs firefox.test.mjs) 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
set -e
passed="$(sed -n 's/^ℹ pass \([0-9]*\)$/\1/p' "$out" | tail -1)"
failed="$(sed -n 's/^ℹ fail \([0-9]*\)$/\1/p' "$out" | tail -1)"
passed="${passed:-0}"; failed="${failed:-0}"
# A runner that died without its summary (time-out, crash) is a failure too.
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
log "browser tests: $((SECONDS - started)) s in all (stack log: $api_log)"
if [ "$status" -ne 0 ]; then
  log "browser tests FAILED; the local API's log (last 40 lines):"; tail -40 "$api_log" >&2
fi
echo "browser tests: $passed passed, $failed failed"
exit "$status"
