#!/usr/bin/env bash
# Contract test of the provisioning API against its own OpenAPI document.
#
# Starts examples/api_for_tests (plain HTTP on 127.0.0.1, throw-away SQLite, known admin
# password) on a free port, runs schemathesis with every check, and exits non-zero on any
# failure. Needs `pip install schemathesis` (4.x). MAX_TIME (seconds, default 120) bounds the run.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
workspace="$(cd "$here/../../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$workspace/target/api}"
password="schemathesis-$RANDOM-$RANDOM"

command -v schemathesis >/dev/null || { echo "schemathesis not found: pip install schemathesis" >&2; exit 2; }
cargo build --quiet -p provisioning --example api_for_tests --manifest-path "$workspace/Cargo.toml"

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
"$CARGO_TARGET_DIR/debug/examples/api_for_tests" "$port" "$password" &
server_pid=$!
# schemathesis keeps its example database in the working directory; keep it out of the repo.
scratch="$(mktemp -d)"
trap 'kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; rm -rf "$scratch"' EXIT
cd "$scratch"

for _ in $(seq 1 100); do
    if python3 -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1',$port)))"; then
        break
    fi
    sleep 0.1
done

export SCHEMATHESIS_USER=administrator SCHEMATHESIS_PASSWORD="$password"
schemathesis --config-file "$here/schemathesis.toml" run "http://127.0.0.1:$port/api/openapi.json" \
    --checks all \
    --max-time "${MAX_TIME:-120}" \
    --workers 2 \
    --no-color \
    "$@"
