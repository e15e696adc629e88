#!/usr/bin/env bash
# The real function binaries under a Lambda runtime: `sam build`, then the functions run
# in containers under SAM's Runtime Interface Emulator against the local AWS.
#
#   bash scripts/sam-local.sh test    `sam local invoke` for every file in events/ (each
#                                     answer checked), then the user's-day suite through
#                                     the local gateway in front of `sam local start-lambda`
#   bash scripts/sam-local.sh serve   the whole API on http://127.0.0.1:$LOCAL_API_PORT
#                                     (3000) through `sam local start-lambda`, until Ctrl-C
#
# Installs what it needs (Debian's docker.io and debootstrap, SAM CLI in the venv),
# starts dockerd if none runs (it stays up for the next run), builds the base image once
# (a debootstrap rootfs, kept by tag; no container registry is used), and stops what else
# it started. The functions are the workspace's own x86_64 debug binaries
# (scripts/sam_layout.py puts them where `sam build` would): the proof is the binaries,
# the Runtime API loop, the wiring and the template's environment, not AWS's arm64
# release build (scripts/package.sh).
# Ports: LOCAL_API_PORT, SAM_LAMBDA_PORT, MOTO_PORT, DYNAMODB_PORT, OIDC_PROVIDER_PORT
# (free ones by default for `test`; 3000/3001/4566/8000/9400 for `serve`). Callers sign
# in at the local OpenID provider (bash scripts/token.sh prints a token), as with dev.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"
SAM_PGID=""
stop_sam() {
  if [ -n "$SAM_PGID" ]; then
    kill -- "-$SAM_PGID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 -- "-$SAM_PGID" 2>/dev/null || break; sleep 0.1; done
    SAM_PGID=""
  fi
  # start-lambda's warm containers can outlive it: remove every function container.
  docker ps -aq --filter "ancestor=${LAMBDA_BASE_IMAGE%%:*}:rapid-x86_64" | xargs -r docker rm -f >/dev/null 2>&1 || true
}
trap 'stop_started; stop_sam' EXIT INT TERM

mode="${1:-test}"
case "$mode" in test | serve) ;; *) log "usage: bash scripts/sam-local.sh test|serve"; exit 2 ;; esac
started_at=$SECONDS
mkdir -p "$REPO/.local"

ensure_python_tools all
ensure_docker
ensure_lambda_base_image
export PATH="$VENV/bin:$PATH"
export SAM_CLI_TELEMETRY=0 AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-local}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-local}"
unset AWS_SESSION_TOKEN AWS_PROFILE

if [ "$mode" = serve ]; then
  LOCAL_API_PORT="${LOCAL_API_PORT:-3000}" SAM_LAMBDA_PORT="${SAM_LAMBDA_PORT:-3001}"
  MOTO_PORT="${MOTO_PORT:-4566}" DYNAMODB_PORT="${DYNAMODB_PORT:-8000}"
  OIDC_PROVIDER_PORT="${OIDC_PROVIDER_PORT:-9400}"
else
  LOCAL_API_PORT="${LOCAL_API_PORT:-$(free_port)}" SAM_LAMBDA_PORT="${SAM_LAMBDA_PORT:-$(free_port)}"
  MOTO_PORT="${MOTO_PORT:-$(free_port)}" DYNAMODB_PORT="${DYNAMODB_PORT:-$(free_port)}"
  OIDC_PROVIDER_PORT="${OIDC_PROVIDER_PORT:-$(free_port)}"
fi
for var in LOCAL_API_PORT SAM_LAMBDA_PORT MOTO_PORT DYNAMODB_PORT OIDC_PROVIDER_PORT; do
  if port_taken "${!var}"; then log "port ${!var} ($var) is in use: set $var to a free port"; exit 2; fi
done

# ---- build: the workspace's own binaries, laid out as `sam build` would; AL2023's glibc --
# `sam build` would compile every function again in a second target directory (cargo-lambda
# passes an explicit --target): about 7 minutes on 2 cores for the same code. The binaries
# the workspace build made (x86_64, debug, host compiler) are laid out as its artifacts
# instead; `bash scripts/package.sh` (cargo-lambda, arm64, release) builds what deploys.
# The setup page's sign-in names the local provider (started below), as a deployment names
# its own (only config.json reads these: the containers never call the provider).
issuer="http://127.0.0.1:$OIDC_PROVIDER_PORT"
params="Architecture=x86_64 LocalEndpoints=true JwtIssuer=$issuer SetupPageClientId=$OIDC_PAGE_CLIENT"
params="$params SetupPageResource=$OIDC_AUDIENCE"
build_start=$SECONDS
log "building the function binaries (cargo; nothing when the test build made them)"
cargo build -q --workspace --bins
"$VENV/bin/python3" scripts/sam_layout.py --template template.yaml \
  --bin-dir "${CARGO_TARGET_DIR:-$REPO/target}/debug" --out .aws-sam/build
log "function binaries laid out: $((SECONDS - build_start)) s"
check_glibc_floor 2.34 .aws-sam/build/*Function/bootstrap

# ---- the local AWS, reachable from the containers through the bridge's gateway ----------
# The host's address on Docker's default bridge (docker0), where containers reach it.
bridge="$(ip -4 -o addr show docker0 2>/dev/null | awk '{print $4}' | cut -d/ -f1 | head -1)"
[ -n "$bridge" ] || bridge="$(docker network inspect bridge -f '{{range .IPAM.Config}}{{.Gateway}}{{end}}')"
[ -n "$bridge" ] || { log "cannot tell the host's address on Docker's bridge network"; exit 1; }
start_dynamodb_local "$DYNAMODB_PORT" "$REPO/.local/sam-dynamodb-local.log" # all interfaces
start_moto "$MOTO_PORT" "$REPO/.local/sam-moto.log" "" 0.0.0.0
table="infrakitchen-integrations" key="alias/infrakitchen-integrations"
env_file="$REPO/.local/sam-env.json"
cat >"$env_file" <<JSON
{"Parameters": {
  "AWS_ENDPOINT_URL": "http://$bridge:$MOTO_PORT",
  "AWS_ENDPOINT_URL_DYNAMODB": "http://$bridge:$DYNAMODB_PORT",
  "TABLE_NAME": "$table",
  "KMS_KEY_ID": "$key",
  "HMAC_KEY_ID": "$key-hmac",
  "GROUPS_CLAIM": "groups",
  "RUST_LOG": "info"
}}
JSON
log "env-vars file for the functions: $env_file (containers reach the host at $bridge)"

# The local gateway and the stream poller run on the host, on loopback.
export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT"
export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$DYNAMODB_PORT"
export AWS_ENDPOINT_URL_DYNAMODB_STREAMS="http://127.0.0.1:$DYNAMODB_PORT"
export TABLE_NAME="$table" KMS_KEY_ID="$key"
cargo build -q -p local-harness --bin local-api
"$REPO/target/debug/local-api" --bootstrap-only

sam_args=(--template .aws-sam/build/template.yaml --env-vars "$env_file"
  --parameter-overrides "$params" --invoke-image "$LAMBDA_BASE_IMAGE" --skip-pull-image)

# ---- sam local invoke, every event -------------------------------------------------------
if [ "$mode" = test ]; then
  invoke_start=$SECONDS
  log "sam local invoke: every file in events/"
  "$VENV/bin/python3" scripts/sam_invoke_events.py --sam "$VENV/bin/sam" \
    --template .aws-sam/build/template.yaml --env-vars "$env_file" \
    --image "$LAMBDA_BASE_IMAGE" --parameter-overrides "$params" --out "$REPO/.local/events"
  log "sam local invoke: $((SECONDS - invoke_start)) s"
fi

# ---- the whole API through sam local start-lambda ----------------------------------------
log "sam local start-lambda on 127.0.0.1:$SAM_LAMBDA_PORT (warm containers)"
# Something else answering there would pass for start-lambda below.
if port_taken "$SAM_LAMBDA_PORT"; then
  log "port $SAM_LAMBDA_PORT is taken: start-lambda cannot listen there"; exit 1
fi
setsid sam local start-lambda "${sam_args[@]}" --port "$SAM_LAMBDA_PORT" \
  --warm-containers EAGER >"$REPO/.local/sam-start-lambda.log" 2>&1 &
SAM_PGID=$!
for _ in $(seq 1 300); do
  http_answers "$SAM_LAMBDA_PORT" && break
  kill -0 "$SAM_PGID" 2>/dev/null || { log "start-lambda stopped; its log:"; tail -30 "$REPO/.local/sam-start-lambda.log" >&2; exit 1; }
  sleep 0.5
done
http_answers "$SAM_LAMBDA_PORT" || { log "start-lambda did not answer"; exit 1; }

OIDC_REDIRECT_URIS="http://127.0.0.1:$LOCAL_API_PORT/integrations/aws/setup" \
  start_oidc_provider "$OIDC_PROVIDER_PORT" "$REPO/.local/sam-oidc-provider.log"
export LOCAL_JWT_ISSUER="$issuer" LOCAL_JWT_AUDIENCE="$OIDC_AUDIENCE"
export LOCAL_LAMBDA_ENDPOINT="http://127.0.0.1:$SAM_LAMBDA_PORT" LOCAL_LAMBDA_NAMES=template
export LOCAL_API_PORT RUST_LOG="${RUST_LOG:-info}"
"$REPO/target/debug/local-api" >"$REPO/.local/sam-local-api.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 1 150); do http_answers "$LOCAL_API_PORT" && break; sleep 0.2; done
http_answers "$LOCAL_API_PORT" || { log "local-api did not start"; tail -30 "$REPO/.local/sam-local-api.log" >&2; exit 1; }

if [ "$mode" = serve ]; then
  log "the API: http://127.0.0.1:$LOCAL_API_PORT (a token: OIDC_ISSUER=$issuer bash scripts/token.sh), every function through sam local start-lambda; Ctrl-C stops"
  wait "${PIDS[-1]}"
  exit 0
fi

day_start=$SECONDS
log "the user's day through sam local start-lambda"
# Its responses come from the real binaries: they are recorded apart and checked against
# the OpenAPI spec below, after the day (not by the test run's check, which ran before).
sam_responses="$REPO/.local/responses-sam.jsonl"
: >"$sam_responses"
status=0
IK_RESPONSES="$sam_responses" IK_STACK_URL="http://127.0.0.1:$LOCAL_API_PORT" IK_STACK_ISSUER="$issuer" \
  IK_STACK_MOTO_URL="http://127.0.0.1:$MOTO_PORT" IK_STACK_DYNAMODB_URL="http://127.0.0.1:$DYNAMODB_PORT" \
  users_day "$REPO/.local/sam-user-day.log" || status=$?
log "the user's day through start-lambda: $((SECONDS - day_start)) s"
if [ "$status" -ne 0 ]; then
  log "it failed; start-lambda's log (last 60 lines):"; tail -60 "$REPO/.local/sam-start-lambda.log" >&2
  exit "$status"
fi
log "OpenAPI: the real binaries' responses"
"$VENV/bin/python3" scripts/check_openapi.py "$sam_responses"
log "sam-local: every event invoked and the user's day passed through real binaries in $((SECONDS - started_at)) s"
