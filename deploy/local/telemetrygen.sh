#!/usr/bin/env bash
# Install telemetrygen (the OpenTelemetry load generator) from the Go module proxy into
# ${EMITTER_LOCAL_DIR:-<repo>/.local}/otelcol/bin and print its path on stdout (cached:
# installed once per version).
#
# Usage:
#   deploy/local/telemetrygen.sh                 install if needed, print the binary path
#   deploy/local/telemetrygen.sh traces [flags]  install if needed, then run telemetrygen
#
# Examples (collector from deploy/local/otelcol.sh):
#   deploy/local/telemetrygen.sh traces --otlp-endpoint 127.0.0.1:4317 --otlp-insecure --traces 10
#   deploy/local/telemetrygen.sh traces --otlp-http --otlp-endpoint 127.0.0.1:4318 --otlp-insecure --traces 10
#   deploy/local/telemetrygen.sh traces --otlp-endpoint 127.0.0.1:4317 --otlp-insecure \
#       --workers 2 --rate 0 --duration 10s
# Each trace is 1 parent + --child-spans (default 1) spans; --rate is per worker (0 = unthrottled).
#
# Environment: EMITTER_LOCAL_DIR, TELEMETRYGEN_VERSION (default below).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"

# v0.161.0 is the newest telemetrygen release the module proxy serves (0.162-0.165 are not).
# It only speaks OTLP, so it need not match the collector's release (0.165).
VERSION="${TELEMETRYGEN_VERSION:-v0.161.0}"
MODULE="github.com/open-telemetry/opentelemetry-collector-contrib/cmd/telemetrygen"

LOCAL_DIR="${EMITTER_LOCAL_DIR:-$REPO_ROOT/.local}"
case "$LOCAL_DIR" in /*) ;; *) LOCAL_DIR="$PWD/$LOCAL_DIR" ;; esac # GOBIN must be absolute
BIN_DIR="$LOCAL_DIR/otelcol/bin"
BIN="$BIN_DIR/telemetrygen"
STAMP="$BIN.version"

log() { printf 'telemetrygen.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

if ! [[ -x "$BIN" && -f "$STAMP" && "$(cat "$STAMP")" == "$VERSION" ]]; then
    command -v go >/dev/null 2>&1 || die "'go' not found on PATH"
    mkdir -p "$BIN_DIR"
    log "installing $MODULE@$VERSION into $BIN_DIR"
    out="$(GOBIN="$BIN_DIR" go install "$MODULE@$VERSION" 2>&1)" || {
        printf '%s\n' "$out" | tail -n 20 | sed 's/^/    /' >&2
        die "could not install telemetrygen $VERSION"
    }
    [[ -x "$BIN" ]] || die "go install succeeded but $BIN is missing"
    echo "$VERSION" >"$STAMP"
fi

if [[ $# -eq 0 ]]; then
    echo "$BIN"
else
    exec "$BIN" "$@"
fi
