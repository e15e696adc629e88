#!/usr/bin/env bash
# The local stack's STS says no where AWS says no: an IAM-enforcing moto on a free port,
# the trust-policy proxy (scripts/sts-trust-proxy) in front of it, and
# scripts/check_trust_proxy.py against both (wrong / missing ExternalId, untrusted
# principal, aws:PrincipalArn conditions, cross-account role chaining, pass-through).
# Installs what it needs (moto into the venv; the proxy's npm packages as its lockfile
# pins them), stops what it started, prints one `check ok:` / `check FAILED:` line per
# case. Logs: .local/trust-proxy-*.log.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"
trap stop_started EXIT INT TERM


started=$SECONDS
mkdir -p "$REPO/.local"
ensure_python_tools moto
ensure_sts_trust_proxy

moto_port="$(free_port)"; proxy_port="$(free_port)"
# IAM enforced from the first request; the check opens its own short window for the admins.
start_moto "$moto_port" "$REPO/.local/trust-proxy-moto.log" 0
moto="http://127.0.0.1:$moto_port"
admins="$REPO/.local/trust-proxy-admins.txt"
"$VENV/bin/python" scripts/check_trust_proxy.py admins "$moto" >"$admins"
{ read -r STS_PROXY_ADMIN_ACCESS_KEY_ID; read -r STS_PROXY_ADMIN_SECRET_ACCESS_KEY; } <"$admins"
export STS_PROXY_ADMIN_ACCESS_KEY_ID STS_PROXY_ADMIN_SECRET_ACCESS_KEY

start_sts_trust_proxy "$proxy_port" "$moto" "$REPO/.local/trust-proxy.log"
status=0
# The delegation role's CloudFormation template, as the platform renders it, is deployed
# and tried too (local-api is built by the test build; without it that part is skipped).
local_api="${CARGO_TARGET_DIR:-$REPO/target}/debug/local-api"
if [ -x "$local_api" ]; then export IK_DELEGATION_TEMPLATE_CMD="$local_api --delegation-template"; fi
"$VENV/bin/python" scripts/check_trust_proxy.py "http://127.0.0.1:$proxy_port" "$moto" || status=$?
log "the proxy's decisions (.local/trust-proxy.log):"
sed 's/^/  /' "$REPO/.local/trust-proxy.log" >&2
log "trust-proxy checks done in $((SECONDS - started)) s (exit $status)"
exit "$status"
