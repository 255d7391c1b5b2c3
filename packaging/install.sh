#!/bin/sh
# Installs slot-agent from this wheelhouse on a PC with no network (pip --no-index).
#
#   sudo ./install.sh                        the program in /opt/slot-agent/venv, the
#                                            slot-agent user (in dialout), the slot-hub
#                                            user, both units (the hub's not enabled),
#                                            /etc/slot-agent/config.yaml (kept if present),
#                                            the docs in /opt/slot-agent/docs
#   sudo ./install.sh --uninstall            stops the services, removes the program and the
#                                            units; keeps /etc/slot-agent, /etc/slot-hub,
#                                            the outbox and the hub's database
#   ./install.sh --venv-only --prefix DIR    only the virtual environment, in DIR/venv
#
# Upgrading is running the new wheelhouse's install.sh with the service stopped: the
# virtual environment is rebuilt, the configuration, the token and the outbox are kept.
# Needs Python of the version the wheelhouse was built for and its venv module
# (Debian: python3-venv, from the installation media).
# Environment: PYTHON (default /usr/bin/python3).
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
PREFIX=/opt/slot-agent
MODE=full
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) PREFIX=$2; shift 2 ;;
        --venv-only) MODE=venv; shift ;;
        --uninstall) MODE=uninstall; shift ;;
        -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done
PYTHON=${PYTHON:-/usr/bin/python3}
UNIT=/etc/systemd/system/slot-agent.service
HUB_UNIT=/etc/systemd/system/slot-hub.service
systemd_running() { [ -d /run/systemd/system ]; }

if [ "$MODE" != venv ] && [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: run it as root (sudo), or use --venv-only --prefix DIR" >&2
    exit 1
fi

if [ "$MODE" = uninstall ]; then
    if systemd_running; then
        systemctl disable --now slot-agent.service 2>/dev/null || true
        systemctl disable --now slot-hub.service 2>/dev/null || true
    fi
    rm -f "$UNIT" "$HUB_UNIT"
    systemd_running && systemctl daemon-reload
    rm -rf "$PREFIX"
    echo "removed $PREFIX, $UNIT and $HUB_UNIT; kept /etc/slot-agent (configuration, token),"
    echo "/var/lib/slot-agent (the outbox: events the hub may not have acknowledged yet),"
    echo "/etc/slot-hub and /var/lib/slot-hub (the hub's configuration and database), if any"
    exit 0
fi

read -r VERSION PYTAG ARCH < "$HERE/BUILD"
HAVE=$("$PYTHON" -c 'import sys; print(f"py{sys.version_info[0]}{sys.version_info[1]}")' 2>/dev/null || echo none)
if [ "$HAVE" != "$PYTAG" ]; then
    echo "install.sh: this wheelhouse is for $PYTAG on $ARCH; $PYTHON is $HAVE" >&2
    exit 1
fi
if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
    echo "install.sh: $PYTHON has no venv module; on Debian: apt-get install python3-venv" >&2
    exit 1
fi

# The virtual environment: rebuilt from scratch, so an upgrade leaves nothing of the old one.
rm -rf "$PREFIX/venv"
mkdir -p "$PREFIX"
"$PYTHON" -m venv "$PREFIX/venv"
"$PREFIX/venv/bin/pip" install --quiet --disable-pip-version-check --no-index \
    --find-links "$HERE/wheels" --require-hashes -r "$HERE/requirements.txt"
"$PREFIX/venv/bin/slot-agent" --version

[ "$MODE" = venv ] && exit 0

# The service user: a system user without a login; serial ports through dialout.
getent group dialout >/dev/null || groupadd --system dialout
getent group slot-agent >/dev/null || groupadd --system slot-agent
if ! getent passwd slot-agent >/dev/null; then
    useradd --system --gid slot-agent --groups dialout --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin --comment "slot-agent" slot-agent
fi
usermod --append --groups dialout slot-agent
# The hub's user (systemd/slot-hub.service): no login, no other group.
getent group slot-hub >/dev/null || groupadd --system slot-hub
if ! getent passwd slot-hub >/dev/null; then
    useradd --system --gid slot-hub --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin --comment "slot-agent hub" slot-hub
fi

install -d -m 0755 /etc/slot-agent
install -m 0644 "$HERE/config.example.yaml" "$PREFIX/config.example.yaml"
if [ ! -e /etc/slot-agent/config.yaml ]; then
    install -m 0640 -o root -g slot-agent "$HERE/config.example.yaml" /etc/slot-agent/config.yaml
fi
rm -rf "$PREFIX/docs"
cp -r "$HERE/docs" "$PREFIX/docs"
cp "$HERE/README.md" "$PREFIX/README.md"
install -m 0644 "$HERE/slot-agent.service" "$UNIT"
install -m 0644 "$HERE/slot-hub.service" "$HUB_UNIT"
systemd_running && systemctl daemon-reload

echo "slot-agent $VERSION installed in $PREFIX. Next: docs/operations.md, 'Install on a terminal PC'"
echo "(edit /etc/slot-agent/config.yaml, create /etc/slot-agent/token, then"
echo " systemctl enable --now slot-agent)"
echo "On the hub's server instead: docs/operations.md, 'Running the hub as a service'"
echo "(/etc/slot-hub/hub.yaml, then systemctl enable --now slot-hub)"
