# Shared by the scripts: the project's own Python venv (moto server) and local AWS
# processes. Source it; it defines functions and sets REPO and VENV.
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${IK_VENV:-$REPO/.venv}"
PIDS=()

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

PY_TOOLS=('moto[server]>=5.2,<6' 'cfn-lint>=1,<2' 'aws-sam-cli>=1.130,<2'
  'openapi-spec-validator>=0.7,<0.8' 'jsonschema>=4.18,<5' 'pyyaml>=6,<7')

# ensure_python_tools [all|moto]: installs the project's Python tools (moto server; with
# "all" also cfn-lint, SAM CLI and the OpenAPI checkers) into its own venv, unless there.
ensure_python_tools() {
  local what="${1:-all}" probe='import moto, flask, flask_cors' pkgs=("${PY_TOOLS[0]}")
  if [ "$what" = all ]; then
    probe="$probe, cfnlint, samcli, openapi_spec_validator, jsonschema, yaml"
    pkgs=("${PY_TOOLS[@]}")
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating Python venv at $VENV"
    python3 -m venv "$VENV"
  fi
  if ! "$VENV/bin/python" -c "$probe" 2>/dev/null; then
    log "installing into $VENV: ${pkgs[*]}"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${pkgs[@]}"
  fi
}

# A free TCP port on loopback.
free_port() {
  "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_moto PORT LOGFILE [NO_AUTH_COUNT]: starts moto server on 127.0.0.1:PORT in the
# background (with IAM enforcement after NO_AUTH_COUNT requests when given) and waits.
start_moto() {
  local port="$1" logfile="$2" auth="${3:-}"
  if curl -fsS -o /dev/null "http://127.0.0.1:$port/moto-api/" 2>/dev/null; then
    log "moto already answers on 127.0.0.1:$port; reusing it"
    return 0
  fi
  if [ -n "$auth" ]; then
    INITIAL_NO_AUTH_ACTION_COUNT="$auth" "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$logfile" 2>&1 &
  else
    "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$logfile" 2>&1 &
  fi
  PIDS+=("$!")
  for _ in $(seq 1 150); do
    if curl -fsS -o /dev/null "http://127.0.0.1:$port/moto-api/" 2>/dev/null; then
      log "moto server ready on 127.0.0.1:$port${auth:+ (IAM enforced after $auth requests)}"
      return 0
    fi
    sleep 0.2
  done
  log "moto server did not start; its log:"; cat "$logfile" >&2
  return 1
}

stop_started() {
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
}
