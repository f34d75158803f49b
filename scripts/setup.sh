#!/bin/sh
# Installs what callscribe needs and is missing, then builds. `npm start` and `npm test` run it first,
# so each works alone from a fresh clone on Debian/Ubuntu.
#   --test   also the packages only the tests use (pocketsphinx_continuous, the WER baseline; chromium
#            for the browser page test, driven by playwright-core, which never downloads a browser;
#            sip-tester, i.e. sipp, for the SIP tests; flite, whose voices speak the call intelligence
#            test's card call, made at test time from its script)
set -eu
cd "$(dirname "$0")/.."

PKGS="nats-server libpocketsphinx3 pocketsphinx-en-us ffmpeg"
[ "${1:-}" = "--test" ] && PKGS="$PKGS pocketsphinx chromium sip-tester curl flite"

missing=""
if command -v dpkg-query >/dev/null 2>&1; then
  for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
  done
else
  echo "callscribe: not a Debian/Ubuntu system; make sure these are installed:$PKGS" >&2
fi

if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "callscribe: installing Debian packages:$missing" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    echo "callscribe: installing Debian packages:$missing" >&2
    sudo apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  else
    echo "callscribe: missing Debian packages:$missing" >&2
    echo "run as root:  apt-get install -y$missing" >&2
    exit 1
  fi
fi

# Node modules: install when absent or when the lock file changed since the last install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "callscribe: installing node modules" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
fi

# Build (incremental: fast when nothing changed).
node node_modules/typescript/bin/tsc -p tsconfig.json
