#!/usr/bin/env bash
# Checks packaging/compliance-proxy.env against the binary it configures.
#
#   packaging/checks/check-env-file.sh target/release/compliance-proxy
#
# 1. Every environment variable the binary reads (as `--help` lists them for
#    `serve` and `heartbeat`) is documented in the file, and the file names
#    no variable the binary does not read.
# 2. The defaults the file shows are accepted: with every commented-out
#    setting that has a value switched on, `serve` starts and stops cleanly
#    on SIGTERM, and `heartbeat` runs a round with the client secret taken
#    from $CREDENTIALS_DIRECTORY/client-secret, as under systemd.
set -euo pipefail

binary=$(realpath "$1")
env_file="$(cd "$(dirname "$0")/.." && pwd)/compliance-proxy.env"
work=$(mktemp -d)
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# --- 1. names ---------------------------------------------------------------
{
    "$binary" serve --help
    "$binary" heartbeat --help
} | grep -o '\[env: [A-Z_]*' | sed 's/\[env: //' | sort -u >"$work/binary-names"
sed -n 's/^#\{0,1\}\([A-Z][A-Z_]*\)=.*/\1/p' "$env_file" | sort -u >"$work/file-names"
if ! diff -u --label 'read by the binary' --label 'in compliance-proxy.env' \
    "$work/binary-names" "$work/file-names"; then
    echo "compliance-proxy.env and the binary disagree on the variables above" >&2
    exit 1
fi
echo "compliance-proxy.env documents all $(wc -l <"$work/binary-names") variables"

# --- 2. values --------------------------------------------------------------
# Switch on every example that has a value. The database and listen address
# are then overridden by flags (flags win over the environment), and an API
# key and a client id are added: the file leaves them empty on purpose.
sed 's/^#\([A-Z][A-Z_]*=.\)/\1/' "$env_file" >"$work/defaults.env"
mkdir "$work/credentials"
echo "not-a-real-secret" >"$work/credentials/client-secret"
(
    set -a
    # shellcheck disable=SC1091
    . "$work/defaults.env"
    set +a
    export COMPLIANCE_PROXY_API_KEYS=ci-check-key-0123456789abcdef
    export COMPLIANCE_PROXY_CLIENT_ID=00000000-0000-0000-0000-000000000000
    export CREDENTIALS_DIRECTORY="$work/credentials"
    exec "$binary" serve --simulate-microsoft --listen 127.0.0.1:0 \
        --database "$work/check.db"
) >"$work/serve.log" 2>&1 &
server_pid=$!

for _ in $(seq 100); do
    if grep -q 'listening' "$work/serve.log"; then break; fi
    if ! kill -0 "$server_pid" 2>/dev/null; then break; fi
    sleep 0.1
done
if ! grep -q 'listening' "$work/serve.log"; then
    cat "$work/serve.log" >&2
    echo "serve did not start with the example file's defaults" >&2
    exit 1
fi
kill -TERM "$server_pid"
status=0
wait "$server_pid" || status=$?
server_pid=
if [ "$status" -ne 0 ]; then
    cat "$work/serve.log" >&2
    echo "serve exited with status $status after SIGTERM, not 0" >&2
    exit 1
fi
echo "serve accepted the defaults and stopped cleanly on SIGTERM"

if ! (
    set -a
    # shellcheck disable=SC1091
    . "$work/defaults.env"
    set +a
    export COMPLIANCE_PROXY_CLIENT_ID=00000000-0000-0000-0000-000000000000
    export CREDENTIALS_DIRECTORY="$work/credentials"
    exec "$binary" heartbeat --database "$work/check.db"
) >"$work/heartbeat.log" 2>&1; then
    cat "$work/heartbeat.log" >&2
    echo "heartbeat failed with the example file's defaults" >&2
    exit 1
fi
echo "heartbeat accepted the defaults and read the client secret credential"
