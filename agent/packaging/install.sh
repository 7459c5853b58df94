#!/bin/sh
# Installs, upgrades or removes the fleet agent on a systemd host (run as root).
#
#   install.sh [--binary FILE] [--relay URL [--ca-file PEM]] [--no-start]   install or upgrade
#   install.sh --uninstall [--purge]                                        remove (--purge: state too)
#
# Install / upgrade: copies the single executable (`npm run build:agent` makes it) to
# /usr/local/bin/fleet-agent (atomically: a running agent keeps its old file until it restarts), the
# unit to /etc/systemd/system/fleet-agent.service (plus restart-backoff.conf where systemd >= 254),
# creates /var/lib/fleet-agent (0700), enrols when --relay is given (token in FLEET_AGENT_TOKEN, so it
# never shows in `ps`), enables the unit and (re)starts it if the host is enrolled. A restart drains:
# the running command finishes first, the journal keeps every command exactly once across it.
#
# --root DIR installs into DIR instead of / and calls no systemctl (packaging, tests).
set -eu

PROG=install.sh
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=
BINARY=
RELAY=
CA_FILE=
START=yes
ACTION=install
PURGE=no

usage() {
  sed -n '2,13s/^# \{0,1\}//p' "$0"
  exit "${1:-0}"
}
die() {
  echo "$PROG: $*" >&2
  exit 1
}

while [ $# -gt 0 ]; do
  case "$1" in
    --binary) BINARY=${2:?--binary needs a file}; shift 2 ;;
    --relay) RELAY=${2:?--relay needs a URL}; shift 2 ;;
    --ca-file) CA_FILE=${2:?--ca-file needs a file}; shift 2 ;;
    --token) die "give the enrolment token in FLEET_AGENT_TOKEN, not as an argument (arguments show in ps)" ;;
    --no-start) START=no; shift ;;
    --uninstall) ACTION=uninstall; shift ;;
    --purge) PURGE=yes; shift ;;
    --root) ROOT=${2:?--root needs a directory}; shift 2 ;;
    -h | --help) usage 0 ;;
    *) echo "$PROG: unknown option $1" >&2; usage 2 ;;
  esac
done

BIN_PATH="$ROOT/usr/local/bin/fleet-agent"
UNIT_PATH="$ROOT/etc/systemd/system/fleet-agent.service"
DROPIN_DIR="$ROOT/etc/systemd/system/fleet-agent.service.d"
STATE_DIR="$ROOT/var/lib/fleet-agent"

if [ -z "$ROOT" ] && [ "$(id -u)" != 0 ]; then
  die "run as root (the agent runs as root for the package managers, and installs into /usr/local/bin and /etc/systemd)"
fi

systemctl_() {
  if [ -z "$ROOT" ]; then systemctl "$@"; fi
}

# The running systemd's version (FLEET_AGENT_SYSTEMD_VERSION overrides it, for --root installs).
systemd_version() {
  if [ -n "${FLEET_AGENT_SYSTEMD_VERSION:-}" ]; then
    echo "$FLEET_AGENT_SYSTEMD_VERSION"
  elif command -v systemctl >/dev/null 2>&1; then
    systemctl --version 2>/dev/null | sed -n '1s/^systemd \([0-9][0-9]*\).*/\1/p'
  fi
}

if [ "$ACTION" = uninstall ]; then
  systemctl_ disable --now fleet-agent.service || true # stop drains the running command
  rm -f "$BIN_PATH" "$UNIT_PATH"
  rm -rf "$DROPIN_DIR"
  systemctl_ daemon-reload || true
  if [ "$PURGE" = yes ]; then
    if [ -f "$STATE_DIR/agent.json" ]; then
      echo "$PROG: removing the key and journal of $(sed -n 's/.*"host_id": *"\([^"]*\)".*/host \1/p' "$STATE_DIR/agent.json"); revoke it on the relay: POST /api/hosts/<host_id>/revoke"
    fi
    rm -rf "$STATE_DIR"
  else
    echo "$PROG: removed; $STATE_DIR (key, certificate, journal) is kept: --purge removes it"
  fi
  exit 0
fi

# The executable: --binary, else beside this script, else the repository's dist/.
if [ -z "$BINARY" ]; then
  arch=$(uname -m)
  case "$arch" in x86_64) arch=x64 ;; aarch64) arch=arm64 ;; esac
  for candidate in "$HERE/fleet-agent-linux-$arch" "$HERE/../../dist/fleet-agent-linux-$arch"; do
    if [ -f "$candidate" ]; then BINARY=$candidate; break; fi
  done
  [ -n "$BINARY" ] || die "no fleet-agent-linux-$arch beside this script or in dist/: build it (npm run build:agent) or give --binary"
fi
[ -f "$BINARY" ] || die "$BINARY: no such file"
VERSION=$("$BINARY" --version) || die "$BINARY does not run on this host"
case "$VERSION" in fleet-agent\ *) ;; *) die "$BINARY is not the fleet agent (its --version says: $VERSION)" ;; esac

mkdir -p "$(dirname "$BIN_PATH")" "$(dirname "$UNIT_PATH")"
install -m 0755 "$BINARY" "$BIN_PATH.new"
mv -f "$BIN_PATH.new" "$BIN_PATH"
install -m 0644 "$HERE/fleet-agent.service" "$UNIT_PATH"
sd=$(systemd_version)
if [ -n "$sd" ] && [ "$sd" -ge 254 ]; then
  mkdir -p "$DROPIN_DIR"
  install -m 0644 "$HERE/restart-backoff.conf" "$DROPIN_DIR/restart-backoff.conf"
else
  rm -f "$DROPIN_DIR/restart-backoff.conf"
  rmdir "$DROPIN_DIR" 2>/dev/null || true
fi
install -d -m 0700 "$STATE_DIR"
echo "$PROG: installed $VERSION as /usr/local/bin/fleet-agent; unit fleet-agent.service (systemd ${sd:-unknown})"

if [ -n "$RELAY" ]; then
  if [ -f "$STATE_DIR/agent.json" ]; then
    echo "$PROG: already enrolled ($STATE_DIR/agent.json); not enrolling again (fleet-agent enroll --force replaces it)"
  else
    [ -n "${FLEET_AGENT_TOKEN:-}" ] || die "--relay needs the enrolment token in FLEET_AGENT_TOKEN"
    set -- enroll --relay "$RELAY" --state-dir "$STATE_DIR"
    if [ -n "$CA_FILE" ]; then set -- "$@" --ca-file "$CA_FILE"; fi
    "$BIN_PATH" "$@"
  fi
fi

systemctl_ daemon-reload
systemctl_ enable fleet-agent.service
if [ ! -f "$STATE_DIR/agent.json" ]; then
  echo "$PROG: not enrolled yet: FLEET_AGENT_TOKEN=<token> fleet-agent enroll --relay <url>, then systemctl start fleet-agent"
elif [ "$START" = yes ]; then
  systemctl_ restart fleet-agent.service # an upgrade: the old agent drains, the new one starts
  echo "$PROG: fleet-agent.service (re)started; logs: journalctl -u fleet-agent -f"
fi
