#!/usr/bin/env bash
# Prints an access token for the local API from the local OpenID provider that
# `bash scripts/dev.sh` runs, for curl:
#   export AUTH="Authorization: Bearer $(bash scripts/token.sh)"            # the developer
#   bash scripts/token.sh teammate | other-tenant | admin                   # other people
# Issuer: OIDC_ISSUER (default http://127.0.0.1:${OIDC_PROVIDER_PORT:-9400}).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
issuer="${OIDC_ISSUER:-http://127.0.0.1:${OIDC_PROVIDER_PORT:-9400}}"
user="${1:-developer}"
if ! curl -fsS -o /dev/null -m 3 "$issuer/.well-known/openid-configuration" 2>/dev/null; then
  log "no OpenID provider answers at $issuer: start the stack with bash scripts/dev.sh (or set OIDC_ISSUER)"
  exit 1
fi
oidc_token "$issuer" "$user" "${OIDC_PASSWORD:-local-password}"
