#!/usr/bin/env bash
# Clients generated from openapi.yaml with the common generators, driven against a running
# stack:
#   - Python: openapi-python-client generates a client package (--fail-on-warning: a
#     schema it cannot model, which it would otherwise drop with a warning, fails this);
#   - TypeScript: openapi-typescript generates the types, openapi-fetch is the client, and
#     tsc checks the driver against the generated types.
# Each driver (scripts/client_codegen_test.py, scripts/client_codegen_test.mjs) creates an
# integration with a unique name through its generated client, gets it back, finds it in
# the list, deletes it (with the ETag in If-Match) and gets 404 for it.
#
#   bash scripts/client-codegen.sh <base url> <bearer token>
#   bash scripts/client-codegen.sh --install     # only install the tools
#
# The tools are pinned in scripts/client-codegen/ (requirements.txt for the Python venv;
# package.json + package-lock.json for node_modules) and installed under
# .local/client-codegen/ (venv/, node_modules/), never in the repo; a second run installs
# nothing. The generated code goes to .local/client-codegen/python/ik_api_client and
# .local/client-codegen/ts/api.d.ts. Prints one line per check, `check ok: ...` or
# `check FAILED: ...`, and exits non-zero when any check failed.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"

PIN_DIR="$REPO/scripts/client-codegen"
CG="$REPO/.local/client-codegen"
mkdir -p "$CG"

# ensure_codegen_tools: the pinned Python and npm tools under $CG, unless already there
# (a stamp holds the hash of the pin files they were installed from). Concurrent runs
# (e.g. test.sh's background install and a stage) take turns on a lock.
ensure_codegen_tools() {
  local py_pins js_pins
  py_pins="$(sha256sum "$PIN_DIR/requirements.txt" | cut -c1-64)"
  js_pins="$(cat "$PIN_DIR/package.json" "$PIN_DIR/package-lock.json" | sha256sum | cut -c1-64)"
  if [ "$(cat "$CG/venv/.pins.sha256" 2>/dev/null)" = "$py_pins" ] \
     && [ "$(cat "$CG/node_modules/.pins.sha256" 2>/dev/null)" = "$js_pins" ]; then
    return 0
  fi
  (
    flock 9
    if [ "$(cat "$CG/venv/.pins.sha256" 2>/dev/null)" != "$py_pins" ]; then
      python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || { log "openapi-python-client needs Python 3.11+; python3 is $(python3 --version)"; return 1; }
      [ -x "$CG/venv/bin/python" ] || python3 -m venv "$CG/venv"
      log "installing openapi-python-client (scripts/client-codegen/requirements.txt) into .local/client-codegen/venv"
      "$CG/venv/bin/python" -m pip install -q --disable-pip-version-check -r "$PIN_DIR/requirements.txt"
      echo "$py_pins" >"$CG/venv/.pins.sha256"
    fi
    if [ "$(cat "$CG/node_modules/.pins.sha256" 2>/dev/null)" != "$js_pins" ]; then
      command -v npm >/dev/null 2>&1 || apt_install nodejs npm
      local major
      major="$(node -p 'process.versions.node.split(".")[0]')"
      [ "$major" -ge 20 ] || { log "the TypeScript tools need Node.js 20+; node is $(node --version)"; return 1; }
      log "installing openapi-typescript, openapi-fetch, typescript (scripts/client-codegen/package-lock.json) into .local/client-codegen/node_modules"
      cp "$PIN_DIR/package.json" "$PIN_DIR/package-lock.json" "$CG/"
      (cd "$CG" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
      echo "$js_pins" >"$CG/node_modules/.pins.sha256"
    fi
  ) 9>"$CG/.install.lock"
}

if [ "${1:-}" = --install ]; then
  ensure_codegen_tools
  exit 0
fi
url="${1:?usage: bash scripts/client-codegen.sh <base url> <bearer token>}"
token="${2:?usage: bash scripts/client-codegen.sh <base url> <bearer token>}"
url="${url%/}"
ensure_codegen_tools

failed=0
ok() { echo "check ok: $*"; }
fail() { echo "check FAILED: $*"; failed=1; }

# ---- generate -------------------------------------------------------------------------
py_version="$("$CG/venv/bin/openapi-python-client" --version | sed 's/.* //')"
gen_log="$CG/python-generate.log"
rm -rf "$CG/python"
mkdir -p "$CG/python"
# Its post-hooks run ruff (from the venv) over the generated code.
if PATH="$CG/venv/bin:$PATH" "$CG/venv/bin/openapi-python-client" generate \
     --path "$REPO/openapi.yaml" --output-path "$CG/python/ik_api_client" --meta none \
     --fail-on-warning >"$gen_log" 2>&1; then
  ok "openapi-python-client $py_version generates a Python client from openapi.yaml with no warning"
else
  cat "$gen_log"
  fail "openapi-python-client $py_version generates a Python client from openapi.yaml with no warning (log: ${gen_log#"$REPO"/})"
fi

ts_version="$(node -p 'require(process.argv[1]).version' "$CG/node_modules/openapi-typescript/package.json")"
gen_log="$CG/ts-generate.log"
rm -rf "$CG/ts"
mkdir -p "$CG/ts"
# --default-non-nullable=false: by default openapi-typescript makes a property with a
# `default` required in the type of a schema under components (it means it for responses),
# so IntegrationForm's aws_session_duration, aws_default_region and create_state_bucket,
# optional in the contract, would have to be sent. No response schema has a `default`.
if "$CG/node_modules/.bin/openapi-typescript" "$REPO/openapi.yaml" -o "$CG/ts/api.d.ts" \
     --default-non-nullable=false >"$gen_log" 2>&1 \
   && ! grep -vE '^(✨|🚀) ' "$gen_log" | grep -q .; then
  ok "openapi-typescript $ts_version generates TypeScript types from openapi.yaml with no warning"
else
  cat "$gen_log"
  fail "openapi-typescript $ts_version generates TypeScript types from openapi.yaml with no warning (log: ${gen_log#"$REPO"/})"
fi

if [ -s "$CG/ts/api.d.ts" ]; then
  if "$CG/node_modules/.bin/tsc" -p "$PIN_DIR/tsconfig.json" >"$CG/tsc.log" 2>&1; then
    ok "tsc (strict) type-checks scripts/client_codegen_test.mjs against the generated types and openapi-fetch"
  else
    cat "$CG/tsc.log"
    fail "tsc (strict) type-checks scripts/client_codegen_test.mjs against the generated types and openapi-fetch"
  fi
fi

# ---- drive the API through each generated client -------------------------------------------
if [ -d "$CG/python/ik_api_client" ]; then
  log "Python client against $url"
  "$CG/venv/bin/python" "$REPO/scripts/client_codegen_test.py" "$url" "$token" "$CG/python" || failed=1
fi
if [ -s "$CG/ts/api.d.ts" ]; then
  log "TypeScript client (openapi-fetch) against $url"
  node "$REPO/scripts/client_codegen_test.mjs" "$url" "$token" || failed=1
fi

[ "$failed" -eq 0 ] || { log "client codegen: some checks failed"; exit 1; }
log "client codegen: every check passed"
