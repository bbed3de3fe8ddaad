#!/usr/bin/env bash
# Installs, upgrades, removes and purges the .deb on this machine without
# changing it, and checks what each step leaves behind.
#
#   packaging/checks/test-install.sh target/debian/compliance-proxy_*.deb
#
# Needs root and mount namespaces: the script re-runs itself in a private
# mount namespace where /etc, /usr and /var are overlays whose writes go to
# a tmpfs that disappears with the namespace. systemd is not PID 1 there
# (nor, usually, in CI), so the maintainer scripts skip their systemctl
# calls; what is checked is the files, the user and the conffile handling.
set -euo pipefail

deb=$(realpath "$1")

if [ -z "${COMPLIANCE_PROXY_SCRATCH:-}" ]; then
    # The mount point stays empty on the host; the tmpfs exists only inside.
    scratch=$(mktemp -d)
    status=0
    unshare --mount --propagation private \
        env COMPLIANCE_PROXY_SCRATCH="$scratch" "$0" "$deb" || status=$?
    rmdir "$scratch"
    exit "$status"
fi

scratch=$COMPLIANCE_PROXY_SCRATCH
mount -t tmpfs scratch "$scratch"
for dir in etc usr var; do
    mkdir "$scratch/$dir.upper" "$scratch/$dir.work"
    mount -t overlay overlay \
        -o "lowerdir=/$dir,upperdir=$scratch/$dir.upper,workdir=$scratch/$dir.work" "/$dir"
done

fail() {
    echo "test-install: $*" >&2
    exit 1
}
db=/var/lib/compliance-proxy/compliance-proxy.db
env_file=/etc/compliance-proxy/compliance-proxy.env

echo "-- install"
dpkg -i "$deb"
getent passwd compliance-proxy | grep -q ':/var/lib/compliance-proxy:/usr/sbin/nologin$' ||
    fail "no compliance-proxy system user with home /var/lib/compliance-proxy"
for unit in compliance-proxy.service compliance-proxy-heartbeat.service \
    compliance-proxy-heartbeat.timer; do
    [ -f "/usr/lib/systemd/system/$unit" ] || fail "$unit is not installed"
done
if find /etc/systemd/system -name 'compliance-proxy*' | grep -q .; then
    fail "a unit was enabled on install; it must wait for configuration"
fi
[ "$(stat -c '%a %U' "$env_file")" = "600 root" ] || fail "$env_file is not 0600 root"
dpkg-query -W -f='${Conffiles}\n' compliance-proxy | grep -q " $env_file " ||
    fail "$env_file is not a conffile"
/usr/bin/compliance-proxy --version

echo "-- admin subcommands as the service user"
# What systemd's StateDirectory= would create at the first start.
install -d -o compliance-proxy -g compliance-proxy -m 0700 /var/lib/compliance-proxy
runuser -u compliance-proxy -- compliance-proxy migrate --database "$db"
runuser -u compliance-proxy -- compliance-proxy migrate --status --database "$db" |
    grep -q 'up to date' || fail "migrate --status does not report up to date"

echo "-- upgrade keeps the operator's configuration"
echo "COMPLIANCE_PROXY_LISTEN=127.0.0.1:9090" >>"$env_file"
dpkg -i "$deb"
grep -q '^COMPLIANCE_PROXY_LISTEN=127.0.0.1:9090$' "$env_file" ||
    fail "the upgrade replaced the edited $env_file"

echo "-- remove, then purge"
dpkg -r compliance-proxy
[ ! -e /usr/bin/compliance-proxy ] || fail "remove left the binary"
[ -f "$env_file" ] || fail "remove deleted the configuration"
dpkg --purge compliance-proxy
[ ! -e "$env_file" ] || fail "purge left $env_file"
[ -f "$db" ] || fail "purge deleted the database; it must be left for the operator"

echo "install, upgrade, remove and purge behave"
