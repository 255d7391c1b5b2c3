#!/bin/sh
# Builds the offline wheelhouse: dist/slot-agent-<version>-wheelhouse-py<XY>-<arch>.tar.gz
#
# The tarball holds a wheel of slot-agent and of every dependency (psycopg too, for a hub
# on PostgreSQL), built for this machine's Python version and CPU architecture (PyYAML and
# websockets carry compiled code), the systemd units (the agent's, the hub's),
# config.example.yaml, docs/ and install.sh, which installs all of it on a PC with no
# network (pip --no-index). Build it on the same Debian release and architecture as
# the terminal PCs (docs/operations.md, "Building the release"). Only this build needs the
# package index.
#
#   packaging/build-wheelhouse.sh [--out DIR]
#
# Environment: PYTHON, the interpreter the terminal PCs run (default /usr/bin/python3).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT="$ROOT/dist"
while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUT=$2; shift 2 ;;
        -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-wheelhouse.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done
PYTHON=${PYTHON:-/usr/bin/python3}

"$PYTHON" -c 'import sys, venv, ensurepip; assert sys.version_info >= (3, 11)' 2>/dev/null || {
    echo "build-wheelhouse.sh: $PYTHON is not Python >= 3.11 with venv (Debian: apt-get install python3-venv)" >&2
    exit 1
}
VERSION=$("$PYTHON" -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' "$ROOT/pyproject.toml")
PYTAG=$("$PYTHON" -c 'import sys; print(f"py{sys.version_info[0]}{sys.version_info[1]}")')
ARCH=$(dpkg --print-architecture 2>/dev/null || uname -m)
NAME="slot-agent-$VERSION-wheelhouse-$PYTAG-$ARCH"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT INT TERM

# A copy of the source: the build leaves build/ and *.egg-info behind, not in the checkout.
mkdir "$WORK/src"
(cd "$ROOT" && tar -cf - --exclude=__pycache__ --exclude='*.pyc' pyproject.toml README.md \
    $(for d in */; do [ -f "$d/__init__.py" ] && [ "$d" != "tests/" ] && echo "${d%/}"; done)) \
    | tar -xf - -C "$WORK/src"

"$PYTHON" -m venv "$WORK/build-env"
STAGE="$WORK/$NAME"
mkdir -p "$STAGE/wheels"
# With the postgresql extra: psycopg (pure Python; it calls the system's libpq, Debian's
# libpq5) for a hub whose store is PostgreSQL.
"$WORK/build-env/bin/pip" wheel --quiet --disable-pip-version-check --wheel-dir "$STAGE/wheels" \
    "$WORK/src[postgresql]"

# The exact set, with hashes: install.sh installs these and nothing else.
(cd "$STAGE/wheels" && "$PYTHON" - <<'PY' > ../requirements.txt
import hashlib, pathlib
for wheel in sorted(pathlib.Path(".").glob("*.whl")):
    name, version = wheel.name.split("-")[:2]
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    print(f"{name.replace('_', '-')}=={version} --hash=sha256:{digest}")
PY
)
cp "$ROOT/packaging/install.sh" "$STAGE/install.sh"
chmod 0755 "$STAGE/install.sh"
cp "$ROOT/config.example.yaml" "$ROOT/README.md" "$STAGE/"
cp "$ROOT/systemd/slot-agent.service" "$ROOT/systemd/slot-hub.service" "$STAGE/"
cp -r "$ROOT/docs" "$STAGE/docs"
echo "$VERSION $PYTAG $ARCH" > "$STAGE/BUILD"

mkdir -p "$OUT"
tar -czf "$OUT/$NAME.tar.gz" -C "$WORK" "$NAME"
echo "$OUT/$NAME.tar.gz"
