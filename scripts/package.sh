#!/usr/bin/env bash
# Builds every Lambda function for arm64 (provided.al2023) as a zip with cargo-lambda,
# installing cargo-lambda and zig into the project's venv first, and prints their sizes.
#   bash scripts/package.sh        -> target/lambda/<function>/bootstrap.zip
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"
if [ ! -x "$VENV/bin/python" ]; then python3 -m venv "$VENV"; fi
if [ ! -x "$VENV/bin/cargo-lambda" ]; then
  log "installing cargo-lambda and ziglang into $VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check 'cargo-lambda>=1.8,<2' 'ziglang>=0.13,<1'
fi
export PATH="$VENV/bin:$PATH"
functions=(create-integration manage-integrations test-connection provision-bucket health-check)
args=()
for f in "${functions[@]}"; do args+=(--package "$f"); done
cargo lambda build --release --arm64 --output-format zip "${args[@]}"
for f in "${functions[@]}"; do
  printf '%-22s %s bytes\n' "$f" "$(stat -c %s "target/lambda/$f/bootstrap.zip")"
done
