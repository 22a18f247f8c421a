#!/usr/bin/env bash
# Build and run a real Jaeger (v2, all-in-one, in-memory storage) on 127.0.0.1 for tests and CI. No Docker:
# the binary is built from the Go module proxy in a scratch module under the state dir (cold: about 8
# CPU-minutes; the Go build cache makes rebuilds quick), then run in the background.
#
# Usage: deploy/local/jaeger.sh build | start | stop | status | paths
#
# Environment:
#   EMITTER_LOCAL_DIR     state root (default <repo>/.local); state lives in $EMITTER_LOCAL_DIR/jaeger
#   JAEGER_VERSION        module version (default below)
#   JAEGER_OTLP_GRPC      OTLP gRPC receiver (default 127.0.0.1:14317)
#   JAEGER_OTLP_HTTP      OTLP HTTP receiver (default 127.0.0.1:14318)
#   JAEGER_QUERY_HTTP     query API and UI (default 127.0.0.1:16686)
#   JAEGER_QUERY_GRPC     query gRPC (default 127.0.0.1:16685)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
VERSION="${JAEGER_VERSION:-v1.76.0}"
MODULE="github.com/jaegertracing/jaeger/cmd/jaeger"
CONFIG="$SCRIPT_DIR/jaeger/config.yaml"

LOCAL_DIR="${EMITTER_LOCAL_DIR:-$REPO_ROOT/.local}"
case "$LOCAL_DIR" in /*) ;; *) LOCAL_DIR="$PWD/$LOCAL_DIR" ;; esac
STATE_DIR="$LOCAL_DIR/jaeger"
BIN="$STATE_DIR/bin/jaeger-$VERSION"
SRC_DIR="$STATE_DIR/src"
LOG_DIR="$STATE_DIR/logs"
LOG_FILE="$LOG_DIR/jaeger.log"
BUILD_LOG="$LOG_DIR/build.log"
PID_FILE="$STATE_DIR/jaeger.pid"

export JAEGER_OTLP_GRPC="${JAEGER_OTLP_GRPC:-127.0.0.1:14317}"
export JAEGER_OTLP_HTTP="${JAEGER_OTLP_HTTP:-127.0.0.1:14318}"
export JAEGER_QUERY_HTTP="${JAEGER_QUERY_HTTP:-127.0.0.1:16686}"
export JAEGER_QUERY_GRPC="${JAEGER_QUERY_GRPC:-127.0.0.1:16685}"
# Jaeger's own telemetry would export to 127.0.0.1:4317 (our collector) and can stall its shutdown
export OTEL_TRACES_EXPORTER=none OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none OTEL_SDK_DISABLED=true

log() { printf 'jaeger.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

do_build() {
    command -v go >/dev/null || die "needs Go (go is not on PATH)"
    if [[ -x "$BIN" ]]; then return 0; fi
    mkdir -p "$SRC_DIR" "$(dirname "$BIN")" "$LOG_DIR"
    : >"$BUILD_LOG"
    log "building jaeger $VERSION from the module proxy (cold: ~8 CPU-minutes; log: $BUILD_LOG)"
    local t0=$SECONDS
    (
        cd "$SRC_DIR"
        [[ -f go.mod ]] || go mod init emitter-jaeger-build
        GOFLAGS=-mod=mod go get -tool "$MODULE@$VERSION"
        go build -o "$BIN.tmp" "$MODULE"
    ) >>"$BUILD_LOG" 2>&1 || { tail -n 30 "$BUILD_LOG" >&2; die "jaeger build failed (see $BUILD_LOG)"; }
    mv -f "$BIN.tmp" "$BIN"
    log "built $BIN in $((SECONDS - t0))s"
}

running_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(cat "$PID_FILE" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
    [[ "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)" == *jaeger* ]] || return 1
    echo "$pid"
}

do_start() {
    local pid
    if pid="$(running_pid)"; then log "already running (pid $pid)"; return 0; fi
    do_build
    mkdir -p "$LOG_DIR"
    [[ -f "$LOG_FILE" ]] && mv -f "$LOG_FILE" "$LOG_FILE.1"
    nohup "$BIN" --config "$CONFIG" </dev/null >"$LOG_FILE" 2>&1 &
    pid=$!
    echo "$pid" >"$PID_FILE"
    local ticks=0
    until curl -sf "http://$JAEGER_QUERY_HTTP/api/services" >/dev/null 2>&1; do
        if ! kill -0 "$pid" 2>/dev/null; then rm -f "$PID_FILE"; tail -n 30 "$LOG_FILE" >&2; die "jaeger exited during startup"; fi
        if ((ticks++ >= 300)); then tail -n 30 "$LOG_FILE" >&2; do_stop; die "jaeger not ready after 60s"; fi
        sleep 0.2
    done
    log "ready (pid $pid): OTLP gRPC $JAEGER_OTLP_GRPC, query http://$JAEGER_QUERY_HTTP"
}

do_stop() {
    local pid
    if ! pid="$(running_pid)"; then rm -f "$PID_FILE"; log "not running"; return 0; fi
    kill -TERM "$pid" 2>/dev/null || true
    local ticks=0
    while kill -0 "$pid" 2>/dev/null; do
        if ((ticks++ >= 75)); then kill -KILL "$pid" 2>/dev/null || true; break; fi
        sleep 0.2
    done
    rm -f "$PID_FILE"
    log "stopped"
}

case "${1:-}" in
    build) do_build ;;
    start) do_start ;;
    stop) do_stop ;;
    status) running_pid >/dev/null ;;
    paths) echo "binary: $BIN"; echo "log: $LOG_FILE"; echo "query: http://$JAEGER_QUERY_HTTP" ;;
    *) echo "usage: $0 build|start|stop|status|paths" >&2; exit 2 ;;
esac
