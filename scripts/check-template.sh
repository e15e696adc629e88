#!/usr/bin/env bash
# Lints template.yaml (cfn-lint: zero errors and zero warnings; sam validate --lint) and
# checks it against the code: no deployable endpoint override, the HTTP routes the local
# stack serves (scripts/check_routes.py), and each role's actions against the ones the
# adapters list (scripts/check_permissions.py), and what an operator watches: alarms,
# tracing and the dashboard for everything that runs (scripts/check_alarms.py). Offline:
# the linters need no AWS access; dummy credentials keep the SAM CLI quiet. Prints
# `check ok: NAME` or `check FAILED: NAME` for each of its seven checks, runs them all,
# and fails if any failed.
#
#   IK_VENV            Python venv for the linters (default: <repo>/.venv)
#   LOCAL_ROUTES_CMD   command printing the local routes (see scripts/check_routes.py)
#   LOCAL_PERMISSIONS_CMD  command printing the actions per function (check_permissions.py)
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"
ensure_python_tools

export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1
export SAM_CLI_TELEMETRY=0
unset AWS_SESSION_TOKEN AWS_PROFILE

failures=0
check() {
  local name="$1"; shift
  echo "== $name"
  if "$@"; then echo "check ok: $name"; else echo "check FAILED: $name"; failures=$((failures + 1)); fi
}

# cfn-lint exits 0 only without errors and warnings (2 = errors, 4 = warnings, 8 = infos,
# or'ed); informational findings are printed but do not fail the check.
cfn_lint() {
  local rc=0
  "$VENV/bin/cfn-lint" template.yaml || rc=$?
  if (( rc & 7 )); then echo "cfn-lint: errors or warnings (exit $rc)" >&2; return 1; fi
}
check "cfn-lint template.yaml" cfn_lint
check "sam validate --lint" "$VENV/bin/sam" validate --lint --template-file template.yaml
check "environment: no deployable endpoint override" "$VENV/bin/python3" scripts/check_template_env.py template.yaml
check "routes: template.yaml against the code's route table" "$VENV/bin/python3" scripts/check_routes.py
check "permissions: each role's actions against the adapters' list" "$VENV/bin/python3" scripts/check_permissions.py
check "alarms: every function, the failure queue, the API and the table alarmed; tracing; dashboard" "$VENV/bin/python3" scripts/check_alarms.py
# Role delegation's CloudFormation template (issue 21), as the platform renders it for a
# principal: cfn-lint with zero errors and warnings too.
delegation_template() {
  local out="$REPO/.local/delegation-role-template.json" rc=0
  mkdir -p "$REPO/.local"
  ${LOCAL_DELEGATION_TEMPLATE_CMD:-"$REPO/target/debug/local-api" --delegation-template} \
    arn:aws:iam::999999999999:role/infrakitchen-platform >"$out" || return 1
  "$VENV/bin/cfn-lint" "$out" || rc=$?
  if (( rc & 7 )); then echo "cfn-lint: errors or warnings in the delegation template (exit $rc)" >&2; return 1; fi
}
check "cfn-lint: the role delegation template" delegation_template
[ "$failures" -eq 0 ]
