#!/usr/bin/env bash
# Checks the unit files in packaging/ with systemd's own tools.
#
#   packaging/checks/verify-units.sh target/release/compliance-proxy
#
# `systemd-analyze verify` insists that ExecStart's binary exists, so it is
# run on copies whose ExecStart points at the given, freshly built binary.
# It reports many problems (an unknown key, a value it cannot parse) on
# stderr yet still exits 0, so any output at all fails this check.
# `systemd-analyze security` then guards the sandbox: each service must
# stay at an exposure of 2.0 or less (it is 1.2 today).
set -euo pipefail

binary=$(realpath "$1")
packaging=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for unit in "$packaging"/*.service "$packaging"/*.timer; do
    copy="$work/$(basename "$unit")"
    sed "s#^ExecStart=/usr/bin/compliance-proxy #ExecStart=$binary #" "$unit" >"$copy"
    if grep -q '^ExecStart=' "$copy" && ! grep -q "^ExecStart=$binary " "$copy"; then
        echo "$unit: ExecStart does not run /usr/bin/compliance-proxy" >&2
        exit 1
    fi
done

# A timer whose service is missing passes `verify` silently.
for timer in "$work"/*.timer; do
    if [ ! -f "${timer%.timer}.service" ]; then
        echo "$(basename "$timer"): no $(basename "${timer%.timer}.service") beside it" >&2
        exit 1
    fi
done

output=$(systemd-analyze verify "$work"/* 2>&1) || {
    printf '%s\n' "$output" >&2
    exit 1
}
if [ -n "$output" ]; then
    printf '%s\n' "$output" >&2
    echo "systemd-analyze verify reported problems" >&2
    exit 1
fi
echo "systemd-analyze verify: $(cd "$work" && echo *) OK"

for service in "$work"/*.service; do
    # The threshold is in tenths: 20 is an exposure of 2.0.
    if ! report=$(systemd-analyze security --offline=yes --threshold=20 "$service" 2>&1); then
        printf '%s\n' "$report" >&2
        echo "$(basename "$service"): sandbox weaker than allowed" >&2
        exit 1
    fi
    printf '%s\n' "$report" | tail -n 1
done
