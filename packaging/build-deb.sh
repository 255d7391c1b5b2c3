#!/bin/sh
# Builds the Debian package: dist/slot-agent_<version>_<arch>.deb, for this machine's
# architecture (dpkg --print-architecture) and Python version.
#
# The package holds a ready virtual environment in /opt/slot-agent/venv with slot-agent and
# every dependency (installing it needs no network and no pip), the docs in
# /opt/slot-agent/docs (the units' Documentation=), the agent's and the hub's units in
# /lib/systemd/system (the hub's is not enabled), /etc/slot-agent/config.yaml from
# config.example.yaml (a conffile: an edited file is kept on upgrade). postinst creates the
# slot-agent system user, in dialout, and the slot-hub system user.
#
#   packaging/build-deb.sh [--out DIR] [--wheelhouse TARBALL]
#
# --wheelhouse reuses a tarball from build-wheelhouse.sh (same version, Python and
# architecture); without it one is built first, into the same --out directory (the only step
# that needs the package index).
# Build on the Debian release and architecture of the terminal PCs: an arm64 package is built
# on an arm64 machine (or an arm64 container, docs/operations.md).
# Environment: PYTHON, the interpreter the terminal PCs run (default /usr/bin/python3; the
# virtual environment links to it, so it must be the distribution's).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT="$ROOT/dist"
WHEELHOUSE=
while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUT=$2; shift 2 ;;
        --wheelhouse) WHEELHOUSE=$2; shift 2 ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-deb.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done
PYTHON=${PYTHON:-/usr/bin/python3}
case "$PYTHON" in
    /usr/bin/*) ;;
    *) echo "build-deb.sh: PYTHON must be the distribution's interpreter (/usr/bin/...), got $PYTHON" >&2
       exit 1 ;;
esac
command -v dpkg-deb >/dev/null || { echo "build-deb.sh: needs dpkg-deb" >&2; exit 1; }

VERSION=$("$PYTHON" -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' "$ROOT/pyproject.toml")
PYVER=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
PYNEXT=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1] + 1}")')
ARCH=$(dpkg --print-architecture)
DEST=/opt/slot-agent

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT INT TERM

if [ -z "$WHEELHOUSE" ]; then
    WHEELHOUSE=$(PYTHON="$PYTHON" "$ROOT/packaging/build-wheelhouse.sh" --out "$OUT" | tail -n 1)
fi
tar -xzf "$WHEELHOUSE" -C "$WORK"
HOUSE=$(find "$WORK" -maxdepth 1 -type d -name 'slot-agent-*-wheelhouse-*' | head -n 1)
read -r H_VERSION H_PYTAG H_ARCH < "$HOUSE/BUILD"
if [ "$H_VERSION $H_PYTAG $H_ARCH" != "$VERSION py$(echo "$PYVER" | tr -d .) $ARCH" ]; then
    echo "build-deb.sh: the wheelhouse is $H_VERSION $H_PYTAG $H_ARCH, this build $VERSION py$PYVER $ARCH" >&2
    exit 1
fi

PKG="$WORK/pkg"
VENV="$PKG$DEST/venv"
mkdir -p "$PKG$DEST"
# The virtual environment is built in the staging tree, then its absolute paths (script
# shebangs, activate scripts, pyvenv.cfg) are rewritten to the installed location.
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check --no-compile --no-index \
    --find-links "$HOUSE/wheels" --require-hashes -r "$HOUSE/requirements.txt"
grep -rlI --null "$VENV" "$VENV" | xargs -0 -r sed -i "s|$VENV|$DEST/venv|g"
if grep -rqI "$PKG" "$VENV"; then
    echo "build-deb.sh: a staging path is left in the virtual environment" >&2
    exit 1
fi
# Byte-code compiled now, with the installed paths in it: the service's file system is
# read-only (ProtectSystem=strict), so Python could not write it at run time.
"$PYTHON" -m compileall -q -j 0 -s "$PKG" -p / "$VENV/lib" >/dev/null

cp -r "$HOUSE/docs" "$PKG$DEST/docs"
cp "$HOUSE/README.md" "$HOUSE/config.example.yaml" "$PKG$DEST/"
install -D -m 0644 "$HOUSE/slot-agent.service" "$PKG/lib/systemd/system/slot-agent.service"
install -D -m 0644 "$HOUSE/slot-hub.service" "$PKG/lib/systemd/system/slot-hub.service"
install -D -m 0640 "$HOUSE/config.example.yaml" "$PKG/etc/slot-agent/config.yaml"
mkdir -p "$PKG/usr/share/doc/slot-agent"
cat > "$PKG/usr/share/doc/slot-agent/README.Debian" <<TXT
slot-agent for Debian

The program is in $DEST/venv, its documentation in $DEST/docs (start with
$DEST/docs/operations.md). Edit /etc/slot-agent/config.yaml, put the hub token in
/etc/slot-agent/token (0640 root:slot-agent), check with
  sudo -u slot-agent $DEST/venv/bin/slot-agent check-config --config /etc/slot-agent/config.yaml
then: systemctl enable --now slot-agent

On the one server that runs the reference hub instead: /etc/slot-hub/hub.yaml and its
token file (0640 root:slot-hub), then: systemctl enable --now slot-hub
($DEST/docs/operations.md, "Running the hub as a service"). The package never enables it.
TXT

mkdir -p "$PKG/DEBIAN"
for script in postinst prerm postrm; do
    install -m 0755 "$ROOT/packaging/debian/$script" "$PKG/DEBIAN/$script"
done
echo /etc/slot-agent/config.yaml > "$PKG/DEBIAN/conffiles"
SIZE=$(du -sk --exclude=DEBIAN "$PKG" | cut -f1)
cat > "$PKG/DEBIAN/control" <<CTL
Package: slot-agent
Version: $VERSION
Architecture: $ARCH
Maintainer: slot-agent maintainers <slot-agent@localhost>
Installed-Size: $SIZE
Depends: python3 (>= $PYVER), python3 (<< $PYNEXT), passwd
Recommends: systemd, libpq5
Section: misc
Priority: optional
Homepage: file://$DEST/docs/operations.md
Description: SAS polling agent for casino slot machines
 Polls a slot machine over SAS, keeps its events in a local outbox and streams
 them to a hub over WSS; remote actions, diagnostics and Prometheus metrics.
 Also the reference hub, as the slot-hub service (not enabled by default).
 A self-contained virtual environment in $DEST/venv: installs with no network.
CTL

mkdir -p "$OUT"
DEB="$OUT/slot-agent_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group -Zgzip --build "$PKG" "$DEB" >/dev/null
echo "$DEB"
