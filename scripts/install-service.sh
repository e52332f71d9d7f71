#!/usr/bin/env bash
# Installs the rtpipeline node as a systemd service (npm run install-service).
#
#   sudo npm run install-service                       install into /opt/rtpipeline, enable and start
#   sudo scripts/install-service.sh --no-start         install and enable, start later
#   scripts/install-service.sh --root /tmp/stage       stage the files under a root (packaging, tests):
#                                                      no user, no chown, no systemctl
#
# What it does:
#   1. copies the built node (dist/, production node_modules, config/) to PREFIX (/opt/rtpipeline);
#   2. creates the system user and group `rtpipeline`;
#   3. writes /etc/rtpipeline/config.yaml and /etc/rtpipeline/rtpipeline.env if they do not exist
#      (an existing file is never overwritten) and validates the config;
#   4. installs /etc/systemd/system/rtpipeline.service with this machine's node and PREFIX,
#      checks it with systemd-analyze verify, then daemon-reload, enable, start.
set -euo pipefail

PREFIX=/opt/rtpipeline
ROOT=
START=1
usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX=${2:?--prefix needs a directory}; shift 2 ;;
    --root) ROOT=${2:?--root needs a directory}; shift 2 ;;
    --no-start) START=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install-service: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

fail() { echo "install-service: $*" >&2; exit 1; }
say() { echo "install-service: $*"; }

REPO=$(cd "$(dirname "$0")/.." && pwd)
[ -f "$REPO/dist/src/cli.js" ] || fail "$REPO/dist/src/cli.js not found: build first (npm ci)"
NODE=$(command -v node) || fail "node not found on PATH: install Node.js >= 20.19"
"$NODE" -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' \
  || fail "$NODE is Node.js $("$NODE" -v); rtpipeline needs >= 20.19"
if [ -z "$ROOT" ] && [ "$(id -u)" -ne 0 ]; then fail "run as root (sudo npm run install-service), or stage with --root DIR"; fi

DEST="$ROOT$PREFIX"
ETC="$ROOT/etc/rtpipeline"
UNIT_DIR="$ROOT/etc/systemd/system"

say "installing the node into $DEST"
mkdir -p "$DEST/dist" "$ETC" "$UNIT_DIR"
rm -rf "$DEST/dist/src" "$DEST/dist/jobs" "$DEST/node_modules" "$DEST/config"
cp -a "$REPO/dist/src" "$REPO/dist/jobs" "$DEST/dist/"
cp -a "$REPO/config" "$DEST/config"
cp -a "$REPO/package.json" "$REPO/package-lock.json" "$REPO/README.md" "$DEST/"
cp -a "$REPO/node_modules" "$DEST/node_modules"
# Dev dependencies (TypeScript, vitest) are not needed to run; prune works offline from the lockfile.
(cd "$DEST" && npm prune --omit=dev --ignore-scripts --no-audit --no-fund >/dev/null) || fail "npm prune failed in $DEST"
chmod 755 "$DEST/dist/src/cli.js"

if [ -z "$ROOT" ]; then
  if ! getent group rtpipeline >/dev/null; then groupadd --system rtpipeline; fi
  if ! getent passwd rtpipeline >/dev/null; then
    useradd --system --gid rtpipeline --home-dir /var/lib/rtpipeline --no-create-home --shell /usr/sbin/nologin rtpipeline
    say "created system user rtpipeline"
  fi
fi

if [ ! -f "$ETC/config.yaml" ]; then
  cat >"$ETC/config.yaml" <<'YAML'
# rtpipeline node (systemd). Every key: README "Configuration reference". Check: rtpipeline validate --config FILE
output_dir: /var/lib/rtpipeline/batch-output
logs_dir: /var/log/rtpipeline
node:
  aet: RTPIPELINE
  dicom_port: 11112
  http_port: 8080
  data_dir: /var/lib/rtpipeline
  allowed_callers: []          # e.g. [CT_SIM, ECLIPSE, PACS]
  destinations: []             # e.g. [{aet: PACS, host: 10.20.30.40, port: 104}]
YAML
  say "wrote $ETC/config.yaml (set allowed_callers and destinations)"
else
  say "kept the existing $ETC/config.yaml"
fi
if [ ! -f "$ETC/rtpipeline.env" ]; then
  cp "$REPO/systemd/rtpipeline.env.example" "$ETC/rtpipeline.env"
  chmod 640 "$ETC/rtpipeline.env"
  say "wrote $ETC/rtpipeline.env"
fi
"$NODE" "$DEST/dist/src/cli.js" validate --config "$ETC/config.yaml" >/dev/null \
  || fail "$ETC/config.yaml is not valid (see above); fix it and run again"

# The shipped unit names /usr/bin/node and /opt/rtpipeline; write this machine's paths.
sed -e "s|^ExecStart=/usr/bin/node /opt/rtpipeline/|ExecStart=$NODE $PREFIX/|" \
    -e "s|file:///opt/rtpipeline/|file://$PREFIX/|" \
    "$REPO/systemd/rtpipeline.service" >"$UNIT_DIR/rtpipeline.service"
grep -q "^ExecStart=$NODE $PREFIX/dist/src/cli.js serve$" "$UNIT_DIR/rtpipeline.service" \
  || fail "could not set ExecStart in $UNIT_DIR/rtpipeline.service (was systemd/rtpipeline.service edited?)"
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify "$UNIT_DIR/rtpipeline.service" || fail "systemd-analyze verify refused $UNIT_DIR/rtpipeline.service"
fi
say "installed $UNIT_DIR/rtpipeline.service"

if [ -n "$ROOT" ]; then
  say "staged under $ROOT (no user, no systemctl)"
  exit 0
fi
chown root:rtpipeline "$ETC/config.yaml" "$ETC/rtpipeline.env"
chmod 640 "$ETC/config.yaml"
systemctl daemon-reload
if [ "$START" -eq 1 ]; then
  systemctl enable --now rtpipeline.service
  say "started: systemctl status rtpipeline; journalctl -u rtpipeline -f; curl localhost:8080/health"
else
  systemctl enable rtpipeline.service
  say "enabled; start with: systemctl start rtpipeline"
fi
