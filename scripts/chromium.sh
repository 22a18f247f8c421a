#!/usr/bin/env bash
# Headless Chromium for the reports' browser tests: Debian's package, installed once (apt-get needs root).
# Prints the browser's path. EMITTER_CHROMIUM=/path/to/chromium uses another one.
set -euo pipefail
find_chromium() {
  for c in "${EMITTER_CHROMIUM:-}" /usr/lib/chromium/chromium /usr/bin/chromium /usr/bin/chromium-browser; do
    if [[ -n "$c" && -x "$c" ]]; then echo "$c"; return 0; fi
  done
  return 1
}
if find_chromium; then exit 0; fi
if [[ $(id -u) -ne 0 ]]; then
  echo "emitter: headless Chromium is missing; install Debian's 'chromium' package (as root) or set EMITTER_CHROMIUM" >&2
  exit 1
fi
echo "emitter: installing Debian's chromium package (headless browser for the report tests)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq chromium fonts-dejavu-core >&2
find_chromium
