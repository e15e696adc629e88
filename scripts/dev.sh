#!/usr/bin/env bash
# Runs the whole system locally: the local AWS (DynamoDB Local for the table and its
# stream on 127.0.0.1:8000, moto server for KMS, STS, IAM and S3 on 127.0.0.1:4566), the
# local OpenID provider (http://127.0.0.1:9400: the local people sign in there, and the
# gateway checks their JWTs as API Gateway does) and every route of the HTTP API on
# http://127.0.0.1:3000 through the real handlers.
#
#   bash scripts/dev.sh                 # moto accepts any key and role (quick to try)
#   bash scripts/dev.sh --enforce-iam   # moto enforces IAM: real users, keys and a role
#                                       # with a trust policy, printed at start; wrong
#                                       # keys and untrusted roles fail as in AWS
#
# Ports: LOCAL_API_PORT, MOTO_PORT, DYNAMODB_PORT, OIDC_PROVIDER_PORT. A token for curl:
# `bash scripts/token.sh [developer|teammate|other-tenant|admin]`. The local AWS and the
# provider keep their state in memory only: stopping this script loses it, and a restart
# starts empty (and signs the provider's tokens with a new key).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"
trap stop_started EXIT INT TERM

LOCAL_API_PORT="${LOCAL_API_PORT:-3000}"
MOTO_PORT="${MOTO_PORT:-4566}"
DYNAMODB_PORT="${DYNAMODB_PORT:-8000}"
OIDC_PROVIDER_PORT="${OIDC_PROVIDER_PORT:-9400}"
ENFORCE_IAM=0
for arg in "$@"; do
  case "$arg" in
    --enforce-iam) ENFORCE_IAM=1 ;;
    *) log "unknown option $arg (the one option is --enforce-iam)"; exit 2 ;;
  esac
done

# Ports first, before anything slow: a taken port fails now, naming what to change.
declare -A seen=()
for var in LOCAL_API_PORT MOTO_PORT DYNAMODB_PORT OIDC_PROVIDER_PORT; do
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
(ensure_python_tools moto && ensure_dynamodb_local && ensure_oidc_provider) >"$setup_log" 2>&1 &
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
  log "installing moto, DynamoDB Local or the OpenID provider failed; its log:"; cat "$setup_log" >&2; exit 1
fi

start_dynamodb_local "$DYNAMODB_PORT" "$REPO/.local/dynamodb-local.log"
page="http://127.0.0.1:$LOCAL_API_PORT/integrations/aws/setup"
issuer="http://127.0.0.1:$OIDC_PROVIDER_PORT"
OIDC_REDIRECT_URIS="$page,http://localhost:$LOCAL_API_PORT/integrations/aws/setup" \
  start_oidc_provider "$OIDC_PROVIDER_PORT" "$REPO/.local/oidc-provider.log"

export AWS_REGION="${AWS_REGION:-us-east-1}"
if [ "$ENFORCE_IAM" = 1 ]; then
  # IAM enforced from the first request; the principals script opens its own short window
  # to create an admin, then makes a user, a role that trusts it and a user it does not.
  start_moto "$MOTO_PORT" "$REPO/.local/moto.log" 0
  principals="$REPO/.local/dev-principals.json"
  "$VENV/bin/python" "$REPO/tests/browser/moto_principals.py" "http://127.0.0.1:$MOTO_PORT" >"$principals"
  read -r admin_id admin_secret < <("$VENV/bin/python" -c 'import json,sys
p = json.load(open(sys.argv[1])); print(p["admin"]["id"], p["admin"]["secret"])' "$principals")
  # The service itself signs as the emulator's admin: IAM is enforced for it too.
  export AWS_ACCESS_KEY_ID="$admin_id" AWS_SECRET_ACCESS_KEY="$admin_secret"
else
  start_moto "$MOTO_PORT" "$REPO/.local/moto.log"
  export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-local}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-local}"
fi

export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT"
export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$DYNAMODB_PORT"
export AWS_ENDPOINT_URL_DYNAMODB_STREAMS="http://127.0.0.1:$DYNAMODB_PORT"
export RUST_LOG="${RUST_LOG:-info}"
export LOCAL_API_PORT
# The gateway checks every bearer JWT against the provider (as API Gateway's JWT
# authorizer: template.yaml JwtIssuer/JwtAudience), and the page signs people in there
# (template.yaml SetupPage* parameters).
export LOCAL_JWT_ISSUER="$issuer" LOCAL_JWT_AUDIENCE="$OIDC_AUDIENCE" GROUPS_CLAIM=groups
export SETUP_PAGE_OIDC_ISSUER="$issuer" SETUP_PAGE_OIDC_CLIENT_ID="$OIDC_PAGE_CLIENT" \
  SETUP_PAGE_OIDC_SCOPES="$OIDC_PAGE_SCOPES" SETUP_PAGE_OIDC_RESOURCE="$OIDC_AUDIENCE"
log "the local AWS keeps its state in memory only: stopping dev.sh loses every integration, key and bucket; a restart starts empty"
{
  echo
  echo "  setup page:  $page"
  echo "               sign in as developer, teammate, other-tenant or admin (password local-password)"
  echo "  OpenID:      $issuer"
  port_env=""; [ "$OIDC_PROVIDER_PORT" = 9400 ] || port_env="OIDC_PROVIDER_PORT=$OIDC_PROVIDER_PORT "
  echo "               a token for curl: export AUTH=\"Authorization: Bearer \$(${port_env}bash scripts/token.sh)\""
  if [ "$ENFORCE_IAM" = 1 ]; then
    "$VENV/bin/python" -c 'import json, sys
p = json.load(open(sys.argv[1]))
print(f"""  local AWS:   enforces IAM (account {p["account"]}). To try the form:
    works:             access key {p["user"]["id"]}, secret {p["user"]["secret"]}, role {p["role"]}
    role step fails:   access key {p["other"]["id"]}, secret {p["other"]["secret"]}, role {p["role"]}
                       (the role trust policy does not name this user: AccessDenied, with the policies that fix it)
    credentials fail:  any other key or secret""")' "$principals"
  else
    echo "  local AWS:   accepts ANY access key, secret and role for account 123456789012, so every"
    echo "               Test Connection passes; to see the failures AWS gives (a refused role, a wrong"
    echo "               secret), run: bash scripts/dev.sh --enforce-iam"
  fi
  echo
} >&2
# In the background with a wait, so that a TERM to this script (not only Ctrl-C) stops
# the API as well as the local AWS.
"$REPO/target/debug/local-api" &
PIDS+=("$!")
wait "$!"
