#!/usr/bin/env bash
# Lints template.yaml (cfn-lint: zero errors and zero warnings; sam validate --lint) and
# checks its HTTP routes against the ones the local stack serves (scripts/check_routes.py).
# Offline: the linters need no AWS access; dummy credentials keep the SAM CLI quiet.
#
#   IK_VENV            Python venv for the linters (default: <repo>/.venv)
#   LOCAL_ROUTES_CMD   command printing the local routes (see scripts/check_routes.py)
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"
ensure_python_tools

export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1
export SAM_CLI_TELEMETRY=0
unset AWS_SESSION_TOKEN AWS_PROFILE

echo "== cfn-lint template.yaml"
# cfn-lint exits 0 only without errors and warnings (2 = errors, 4 = warnings, 8 = infos,
# or'ed); informational findings are printed but do not fail the check.
set +e
"$VENV/bin/cfn-lint" template.yaml
rc=$?
set -e
if (( rc & 7 )); then
  echo "cfn-lint: errors or warnings (exit $rc)" >&2
  exit 1
fi
echo "cfn-lint: no errors, no warnings"

echo "== sam validate --lint"
"$VENV/bin/sam" validate --lint --template-file template.yaml

echo "== environment: no deployable endpoint override"
"$VENV/bin/python3" scripts/check_template_env.py template.yaml

echo "== routes"
"$VENV/bin/python3" scripts/check_routes.py
"$VENV/bin/python3" scripts/check_permissions.py
