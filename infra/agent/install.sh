#!/bin/sh
# Install the Lantian field agent on Raspberry Pi OS (Bookworm, Python 3.11) or Debian 12.
#
#   sudo infra/agent/install.sh                       # from a checkout, packages from PyPI
#   sudo infra/agent/install.sh --wheelhouse /media/usb/wheels   # offline: wheels on a stick
#
# The wheelhouse holds the wheels of requirements/agent.lock plus lantian-*.whl
# (make them on a connected machine: pip download --no-deps -r requirements/agent.lock -d wheels
#  && pip wheel --no-deps . -w wheels). Re-running the script upgrades in place; agent.toml, keys
# and the queue are kept.
set -eu

PREFIX=/opt/lantian-agent
USER_NAME=lantian-agent
CONF_DIR=/etc/lantian-agent
STATE_DIR=/var/lib/lantian-agent
UNIT=/etc/systemd/system/lantian-agent.service
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
WHEELHOUSE=""

while [ $# -gt 0 ]; do
    case "$1" in
        --wheelhouse) WHEELHOUSE=$2; shift 2 ;;
        --prefix) PREFIX=$2; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

die() { echo "install.sh: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (sudo $0)"
command -v python3 >/dev/null || die "python3 is missing: apt-get install python3"
python3 -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' \
    || die "Python 3.11 is required (found $(python3 -V 2>&1)); Raspberry Pi OS Bookworm has it"
python3 -c 'import venv, ensurepip' 2>/dev/null \
    || { echo ">> installing python3-venv"; apt-get install -y python3-venv; }
[ -f "$SRC/requirements/agent.lock" ] || die "requirements/agent.lock not found under $SRC"

echo ">> system user $USER_NAME (member of dialout for the serial ports)"
if ! id "$USER_NAME" >/dev/null 2>&1; then
    useradd --system --home-dir "$STATE_DIR" --no-create-home --shell /usr/sbin/nologin \
        --groups dialout "$USER_NAME"
else
    usermod -a -G dialout "$USER_NAME"
fi

echo ">> virtualenv in $PREFIX/venv"
install -d -m 0755 "$PREFIX"
[ -x "$PREFIX/venv/bin/python" ] || python3 -m venv "$PREFIX/venv"
PIP="$PREFIX/venv/bin/pip --disable-pip-version-check"
if [ -n "$WHEELHOUSE" ]; then
    # Offline: every package from the stick, exactly the pinned versions, nothing else.
    $PIP install --no-index --find-links "$WHEELHOUSE" --no-deps -r "$SRC/requirements/agent.lock"
    $PIP install --no-index --find-links "$WHEELHOUSE" --no-deps --force-reinstall lantian
else
    $PIP install --no-deps -r "$SRC/requirements/agent.lock"
    $PIP install --no-deps --force-reinstall "$SRC"
fi
# The agent must not have pulled the central side (pandas, Airflow ...): check, don't assume.
"$PREFIX/venv/bin/python" - <<'PY'
import sys
import agents.cli, agents.runner  # noqa: F401
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("pandas", "great_expectations", "airflow", "fastapi"))
if bad:
    sys.exit(f"install.sh: the agent imported {bad}; this install is wrong")
PY
ln -sf "$PREFIX/venv/bin/lantian-agent" /usr/local/bin/lantian-agent
install -m 0644 "$HERE/README.md" "$PREFIX/README.md"

echo ">> configuration in $CONF_DIR, state in $STATE_DIR"
install -d -m 0755 "$CONF_DIR"
if [ ! -f "$CONF_DIR/agent.toml" ]; then
    install -m 0640 -o root -g "$USER_NAME" "$HERE/agent.example.toml" "$CONF_DIR/agent.toml"
    FRESH=1
else
    FRESH=0
fi
install -d -m 0700 -o "$USER_NAME" -g "$USER_NAME" "$STATE_DIR"

echo ">> systemd unit"
install -m 0644 "$HERE/lantian-agent.service" "$UNIT"
systemctl daemon-reload
systemctl enable lantian-agent.service

if [ "$FRESH" -eq 1 ]; then
    cat <<MSG

Installed. Next steps (see $PREFIX/README.md):
  1. edit $CONF_DIR/agent.toml: box id, server, ports (ls /dev/serial/by-id/), devices, units
  2. check it:        sudo -u $USER_NAME lantian-agent doctor --config $CONF_DIR/agent.toml
  3. enrol each MN:   sudo -u $USER_NAME lantian-agent enroll --config $CONF_DIR/agent.toml --device <MN> --code <code>
  4. start:           sudo systemctl start lantian-agent && journalctl -u lantian-agent -f
MSG
else
    systemctl restart lantian-agent.service
    echo "Upgraded and restarted; configuration, keys and queue kept."
fi
